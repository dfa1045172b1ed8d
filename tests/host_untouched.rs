//! The host never notices the library: same results, same errno, same fds, same output, for
//! programs that talk to the Runtime API and for programs that never do.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use lambda_sim::{Config, Event, Simulator};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::*;

fn run_cmd(program: &Path, args: &[&str], preload: bool, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_remove("LD_PRELOAD")
        .env_remove("LAMBDA_METER_LOG");
    if preload {
        cmd.env("LD_PRELOAD", library());
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("spawn")
}

fn assert_same(a: &Output, b: &Output, what: &str) {
    assert_eq!(a.status.code(), b.status.code(), "{what}: exit status");
    assert_eq!(
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout),
        "{what}: stdout"
    );
    assert_eq!(
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr),
        "{what}: stderr"
    );
}

#[test]
fn failing_and_succeeding_calls_keep_rc_and_errno() {
    let probe = compile_program(
        "errno_probe",
        "errno_probe",
        &["-O2", "-D_FORTIFY_SOURCE=2", "-Wall"],
    );
    let outputs: Vec<Output> = [false, true]
        .iter()
        .map(|&preload| {
            let sim = Simulator::start(Config {
                events: vec![Event::json(&serde_json::json!({"k": "v"}))],
                ..Config::default()
            })
            .unwrap();
            let addr = sim.addr();
            let api = sim.api_address();
            let host = addr.ip().to_string();
            let port = addr.port().to_string();
            // Active mode: the probe's socket is the Runtime API for the library, and the
            // probe is a per-request process of an environment (LAMBDA_METER_ENV_ID names
            // another live process), so joining that environment runs inside its connect:
            // regression for a connect that returned EINPROGRESS with errno clobbered.
            let tmp = tempdir::TempDir::new("errno-env");
            run_cmd(
                &probe,
                &[&host, &port],
                preload,
                &[
                    ("AWS_LAMBDA_RUNTIME_API", &api),
                    ("LAMBDA_METER_ENV_ID", &std::process::id().to_string()),
                    ("TMPDIR", tmp.path().to_str().unwrap()),
                ],
            )
        })
        .collect();
    let text = String::from_utf8_lossy(&outputs[0].stdout);
    // The probe really exercised what it claims (these would fail on a broken probe).
    assert!(
        text.contains("read(-1)                     rc=-1 errno=9"),
        "{text}"
    );
    assert!(
        text.contains("connect(refused)             rc=-1 errno=111"),
        "{text}"
    );
    assert!(
        text.contains("read(api,EFAULT)             rc=-1 errno=14"),
        "{text}"
    );
    assert!(text.contains("peeked==read: yes"), "{text}");
    assert!(text.contains("reused number: yes"), "{text}");
    assert!(!text.contains("errno-kept=NO"), "{text}");
    assert_same(&outputs[0], &outputs[1], "errno probe");

    // And the library really followed the probe's Runtime API socket in that mode.
    let sim = Simulator::start(Config {
        events: vec![Event::json(&serde_json::json!({"k": "v"}))],
        ..Config::default()
    })
    .unwrap();
    let (host, port) = (sim.addr().ip().to_string(), sim.addr().port().to_string());
    let debug = run_cmd(
        &probe,
        &[&host, &port],
        true,
        &[
            ("AWS_LAMBDA_RUNTIME_API", &sim.api_address()),
            ("LAMBDA_METER_LOG", "debug"),
        ],
    );
    let log = String::from_utf8_lossy(&debug.stderr);
    assert!(log.contains("Runtime API connection"), "{log}");
}

/// The loader's search order for a program's own symbols (`LD_DEBUG=scopes`, the program's
/// first scope), with `preload` in `LD_PRELOAD` or none.
fn search_order(program: &Path, preload: Option<&Path>) -> Vec<String> {
    let mut cmd = Command::new(program);
    cmd.arg("--version")
        .env_remove("LD_PRELOAD")
        .env("LD_DEBUG", "scopes");
    if let Some(lib) = preload {
        cmd.env("LD_PRELOAD", lib);
    }
    let out = cmd.output().expect("spawn");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find_map(|l| l.split_once("scope 0:").map(|(_, list)| list.to_string()))
        .unwrap_or_else(|| panic!("no search order in {stderr}"));
    line.split_whitespace().map(str::to_string).collect()
}

#[test]
fn a_preloaded_library_leaves_the_programs_search_order_as_it_was() {
    // With the library preloaded, the program's libraries are looked through in the order they
    // were, the library second (LD_PRELOAD's place). A library that needed the dynamic loader
    // would bring the loader forward, ahead of most of curl's 30 libraries, and each of their
    // symbol lookups at load would look through it first.
    let curl = Path::new("/usr/bin/curl");
    assert!(curl.is_file(), "curl (tests/setup.sh installs it)");
    let plain = search_order(curl, None);
    assert!(plain.len() > 10, "{plain:?}");
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    };
    let layer =
        |build: &str| root().join(format!("target/layer/{arch}/{build}/liblambda_meter.so"));
    for lib in [library(), layer("lib"), layer("lib/glibc-2.34")] {
        assert!(lib.is_file(), "{} (make layer)", lib.display());
        let with = search_order(curl, Some(&lib));
        assert_eq!(with.get(1), Some(&lib.display().to_string()), "{with:?}");
        let kept: Vec<String> = with.iter().filter(|o| plain.contains(o)).cloned().collect();
        assert_eq!(kept, plain, "{}", lib.display());
        // What the library itself brings: only the glibc 2.26 build's two libraries (glibc
        // 2.34 and later have them inside libc; here they are stubs).
        for added in with.iter().skip(2).filter(|o| !plain.contains(o)) {
            assert!(
                added.ends_with("/libpthread.so.0") || added.ends_with("/libdl.so.2"),
                "{} brings {added}: {with:?}",
                lib.display()
            );
        }
    }
}

#[test]
fn programs_that_never_talk_to_the_runtime_api_are_unchanged() {
    let py = python();
    let script = r#"
import os, socket, subprocess, sys, tempfile
d = tempfile.mkdtemp()
p = os.path.join(d, "f")
with open(p, "wb") as f:
    f.write(b"x" * 100000)
print(os.path.getsize(p))
a, b = socket.socketpair()
a.sendall(b"ping")
print(b.recv(4))
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(w, b"from child")
    os._exit(7)
_, status = os.waitpid(pid, 0)
print(os.read(r, 100), os.waitstatus_to_exitcode(status))
print(subprocess.run(["sh", "-c", "echo sub; echo err >&2; exit 3"], capture_output=True))
try:
    os.read(12345, 1)
except OSError as e:
    print("errno", e.errno)
s = socket.socket()
print("refused", s.connect_ex(("127.0.0.1", 1)))
print(sorted(os.listdir("/proc/self/fd")) == sorted(os.listdir("/proc/self/fd")))
sys.stderr.write("done\n")
"#;
    let cases: Vec<(PathBuf, Vec<&str>)> = vec![
        (py.clone(), vec!["-c", script]),
        // A directory nothing else changes while the tests run (`/` holds `/tmp`, whose link
        // count other tests change).
        (
            PathBuf::from("/bin/ls"),
            vec!["-la", "/usr/lib", "/etc/ssl"],
        ),
        (
            PathBuf::from("/bin/sh"),
            vec!["-c", "echo a | tr a b; cat /etc/hostname | wc -c; exit 5"],
        ),
    ];
    for env in [vec![], vec![("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")]] {
        for (prog, args) in &cases {
            let plain = run_cmd(prog, args, false, &env);
            let loaded = run_cmd(prog, args, true, &env);
            assert_same(
                &plain,
                &loaded,
                &format!("{} {:?} env {:?}", prog.display(), args.first(), env),
            );
        }
    }
}

#[test]
fn ld_preload_alone_adds_no_variable_to_the_environment() {
    // With LD_PRELOAD in the function's environment and no wrapper, the library finds the
    // environment's identity and the channel without naming them in environ, so what a
    // handler's child inherits is what it would inherit without the library.
    let command = python_command("handler.dispatch");
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    let lib = library().display().to_string();
    let names = |preload: bool| -> serde_json::Value {
        let env: Vec<(&str, &str)> = if preload {
            vec![("LD_PRELOAD", lib.as_str())]
        } else {
            vec![]
        };
        let out = run(
            events(&[
                serde_json::json!({"action": "ok"}),
                serde_json::json!({"action": "c_environ"}),
            ]),
            &command,
            None,
            &env,
            &python_function_dir(),
        );
        if preload {
            assert_eq!(out.records().len(), 2, "{}", out.run.stderr);
        }
        let results = out.sim.results();
        let body = &results[1].as_ref().expect("result").body;
        let mut v: serde_json::Value = serde_json::from_slice(body).expect("json");
        if let Some(list) = v["names"].as_array_mut() {
            list.retain(|n| n != "LD_PRELOAD");
        }
        v
    };
    assert_eq!(names(false), names(true));
}

/// What `fork_faults` saw: the children's page faults, the parent's over the loop, and the
/// pages of the library a child wrote.
fn fork_faults(program: &Path, forks: u32, preload: bool) -> (i64, i64, i64) {
    let out = run_cmd(
        program,
        &[&forks.to_string()],
        preload,
        &[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")],
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let n: Vec<i64> = text
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    (n[0], n[1], n[2])
}

/// A shell forks for every pipeline and command substitution. In a process the library never
/// became active in, its fork hook writes one page of the library in the child (the note that
/// the child is not its parent's per-request helper) and none in the parent: every page written
/// after `fork` is a copy-on-write fault on that side. (Clearing tables that were already empty
/// and storing values fields already held wrote 9 pages in each child and faulted the
/// parent twice a fork.) The written pages are counted from `/proc/self/pagemap`; the parent's
/// faults are deterministic here (the program turns address randomization off for itself: where
/// its stack starts decides whether its frames span two pages or three), one in ten forks
/// allowed for what the kernel maps around a fault.
#[test]
fn a_fork_writes_at_most_one_page_of_the_library() {
    let probe = compile_program("fork_faults", "fork_faults", &["-O1", "-Wl,-z,now"]);
    let forks = 50;
    let (_, plain_parent, plain_written) = fork_faults(&probe, forks, false);
    let (_, loaded_parent, loaded_written) = fork_faults(&probe, forks, true);
    assert_eq!(plain_written, 0, "no library, no pages of it");
    assert!(
        (0..=1).contains(&loaded_written),
        "a forked child wrote {loaded_written} pages of the library"
    );
    assert!(
        loaded_parent <= plain_parent + i64::from(forks) / 10,
        "parent: {loaded_parent} faults over {forks} forks with the library, {plain_parent} without"
    );
}

#[test]
fn open_fds_are_the_same_with_and_without_the_library() {
    let cmd = [
        "-c",
        "import os; print(sorted(os.listdir('/proc/self/fd')))",
    ];
    let env = [("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")];
    let plain = run_cmd(&python(), &cmd, false, &env);
    let loaded = run_cmd(&python(), &cmd, true, &env);
    assert_same(&plain, &loaded, "fd list");
}

#[test]
fn test_binaries_do_not_carry_the_hooks() {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&exe)
        .output()
        .expect("nm");
    let text = String::from_utf8_lossy(&out.stdout);
    // None of the library's exports (the table's hooks and the C ABI, as the build wrote them).
    for hook in EXPORTS.lines() {
        assert!(
            !text
                .lines()
                .any(|l| l.split_whitespace().last() == Some(hook)),
            "test binary exports {hook}"
        );
    }
}

#[test]
fn the_library_exports_exactly_the_hooks_and_the_c_abi() {
    assert_exports_exactly_the_hooks(&library());
}

/// The README's "Hooked:" paragraph names exactly the table's hooks (`src/glue/table.rs`): the
/// names in backticks outside parentheses (inside them are notes: `SYS_close`, `F_DUPFD*`, …).
#[test]
fn the_readme_names_exactly_the_hooked_functions() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("\nHooked: ")
        .expect("the README's \"Hooked:\" paragraph")
        + 1;
    let paragraph = &readme[start..];
    let paragraph = &paragraph[..paragraph.find("\n\n").unwrap_or(paragraph.len())];
    let mut depth = 0usize;
    let outside: String = paragraph
        .chars()
        .filter(|&c| {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ => return depth == 0,
            }
            false
        })
        .collect();
    let named: std::collections::BTreeSet<&str> = outside.split('`').skip(1).step_by(2).collect();
    let hooked: std::collections::BTreeSet<&str> = HOOKS.lines().collect();
    let unnamed: Vec<_> = hooked.difference(&named).collect();
    let not_hooked: Vec<_> = named.difference(&hooked).collect();
    assert!(
        unnamed.is_empty() && not_hooked.is_empty(),
        "README.md's Hooked: list lacks {unnamed:?} and names {not_hooked:?}, which src/glue/table.rs does not hook"
    );
}

#[test]
fn a_broken_server_gets_one_warning_and_the_client_sees_the_same_bytes() {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    // A "Runtime API" that answers garbage; the client prints exactly what it received.
    let client = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
data = b""
while True:
    chunk = s.recv(3)
    if not chunk:
        break
    data += chunk
s.sendall(b"POST /2018-06-01/runtime/invocation/x/response HTTP/1.1\r\nContent-Length: 2\r\n\r\nok")
print(repr(data))
"#;
    let garbage: &[u8] = b"\x16\x03\x01 definitely not HTTP\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
    let mut outputs = Vec::new();
    for preload in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf);
            s.write_all(garbage).unwrap();
            let _ = s.shutdown(std::net::Shutdown::Write);
            let _ = s.read(&mut buf);
        });
        let api = format!("127.0.0.1:{port}");
        let out = run_cmd(
            &python(),
            &["-c", client, &port.to_string()],
            preload,
            &[("AWS_LAMBDA_RUNTIME_API", &api)],
        );
        server.join().unwrap();
        outputs.push(out);
    }
    assert!(outputs[0].status.success());
    assert_eq!(outputs[0].stdout, outputs[1].stdout);
    assert_eq!(outputs[0].status.code(), outputs[1].status.code());
    assert!(outputs[0].stderr.is_empty());
    let warnings = String::from_utf8_lossy(&outputs[1].stderr);
    let lines: Vec<&str> = warnings.lines().collect();
    assert_eq!(lines.len(), 1, "{warnings}");
    assert!(
        lines[0].starts_with("lambda-meter: warning: stopped following a Runtime API connection"),
        "{warnings}"
    );
}

/// A line page for a wrapped environment rooted at a made-up pid, in `dir`, whose stdout is
/// `stdout` (device, inode): what `LAMBDA_METER_ENV_ID` children find.
fn line_page(dir: &Path, root: &str, stdout: (u64, u64)) -> PathBuf {
    let mut page = b"LMLINES1".to_vec();
    page.extend_from_slice(&stdout.0.to_le_bytes());
    page.extend_from_slice(&stdout.1.to_le_bytes());
    page.resize(4096, 0);
    let path = dir.join(format!(".lambda-meter-lines-{root}"));
    std::fs::write(&path, page).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn stdio_log_probe() -> PathBuf {
    compile_program("stdio_log_probe", "stdio_log_probe", &["-O1"])
}

#[test]
fn a_stdout_the_host_reassigned_and_closed_is_never_looked_at() {
    // glibc never touches the old `stdout` again: the library's look at what stdio is about
    // to flush (fflush(NULL), the process's end) must not either.
    let probe = stdio_log_probe();
    let env = [("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")];
    let plain = run_cmd(&probe, &["reassigned"], false, &env);
    let metered = run_cmd(&probe, &["reassigned"], true, &env);
    assert!(plain.status.success(), "{plain:?}");
    assert_same(&plain, &metered, "stdout reassigned and closed");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(plain.status.signal(), metered.status.signal());
}

#[test]
fn noting_an_open_line_keeps_the_hosts_errno_when_the_page_cannot_be_mapped() {
    let probe = stdio_log_probe();
    let tmp = tempdir::TempDir::new("errno-lines");
    line_page(tmp.path(), "4243", (0, 0));
    let env = [
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9"),
        ("LAMBDA_METER_ENV_ID", "4243"),
        ("TMPDIR", tmp.path().to_str().unwrap()),
    ];
    let plain = run_cmd(&probe, &["errno"], false, &env);
    let metered = run_cmd(&probe, &["errno"], true, &env);
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("errno 1234"),
        "{plain:?}"
    );
    assert_same(
        &plain,
        &metered,
        "a write leaving a line open, the page unmappable",
    );
}

#[test]
fn after_fclose_of_stdout_a_file_on_fd_1_is_not_the_log() {
    // The line left open on the real stdout stays open for the next record, whatever the
    // file that gets fd 1 next receives.
    let probe = stdio_log_probe();
    let tmp = tempdir::TempDir::new("fclose-lines");
    let log = tmp.path().join("log");
    let file = tmp.path().join("file");
    let log_file = std::fs::File::create(&log).unwrap();
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&log).unwrap();
    let page = line_page(tmp.path(), "4244", (meta.dev(), meta.ino()));
    let status = Command::new(&probe)
        .args(["fclose", file.to_str().unwrap()])
        .env("LD_PRELOAD", library())
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("LAMBDA_METER_ENV_ID", "4244")
        .env("TMPDIR", tmp.path())
        .stdout(log_file)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "PARTIAL");
    let page = std::fs::read(&page).unwrap();
    assert_eq!(page[24], 1, "the log's line is still open");
}

/// Runs `next_host` with `LD_PRELOAD=preload` (and `env`): what it prints.
fn next_host(host: &Path, preload: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(host);
    cmd.env_remove("LAMBDA_METER_LOG")
        .env("LD_PRELOAD", preload)
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("spawn");
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The library finds the real functions behind its hooks as `dlsym(RTLD_NEXT, …)` would, in
/// the loaded objects' own tables: another library preloaded after it that wraps `write` and
/// `close` still sees every call the host makes (one preloaded before it sees them first), as
/// it does alone; so does it where the loader's own lookup answers instead
/// (`LD_DYNAMIC_WEAK` set: the reading leaves a lookup whose rules it changes to `dlsym`).
#[test]
fn a_library_preloaded_after_it_still_wraps_what_it_wraps() {
    let host = compile_program("next_host", "next_host", &["-O1"]);
    let wrapper = compile_program(
        "next_wrapper",
        "next_wrapper.so",
        &["-shared", "-fPIC", "-O1", "-ldl"],
    );
    let (lib, wrapper) = (library(), wrapper.display().to_string());
    let lib = lib.display().to_string();
    assert_eq!(next_host(&host, "", &[]), "- -");
    assert_eq!(next_host(&host, &wrapper, &[]), "10 1", "the wrapper alone");
    let after = format!("{lib}:{wrapper}");
    let before = format!("{wrapper}:{lib}");
    assert_eq!(next_host(&host, &after, &[]), "10 1", "preloaded after");
    assert_eq!(next_host(&host, &before, &[]), "10 1", "preloaded before");
    let weak = [("LD_DYNAMIC_WEAK", "1")];
    assert_eq!(next_host(&host, &after, &weak), "10 1", "through dlsym");
}

/// …and without asking `dlsym` for them (some 800 instructions each, and pages of libc's code
/// to fault in, in every process the library is loaded into): the loader, asked to say every
/// lookup it makes, looks up none of the hooked functions the host never calls itself, the C
/// interposers' (`dlopen`, of two versions in libc, `fcntl64`, `__vfprintf_chk`) included.
#[test]
fn the_real_functions_are_found_without_dlsym() {
    let host = compile_program("next_host", "next_host", &["-O1"]);
    let dir = tempdir::TempDir::new("ld-debug");
    let lib = library().display().to_string();
    let lookups = |env: &[(&str, &str)]| -> String {
        let prefix = dir.path().join("symbols");
        let mut all = vec![
            ("LD_DEBUG", "symbols"),
            ("LD_DEBUG_OUTPUT", prefix.to_str().unwrap()),
        ];
        all.extend_from_slice(env);
        next_host(&host, &lib, &all);
        let mut text = String::new();
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let path = e.unwrap().path();
            text.push_str(&std::fs::read_to_string(&path).unwrap());
            std::fs::remove_file(&path).unwrap();
        }
        text
    };
    let count = |text: &str, name: &str| text.matches(&format!("symbol={name};")).count();
    let own = lookups(&[]);
    for name in [
        "recvmmsg",
        "sendmmsg",
        "splice",
        "fputs_unlocked",
        "sigaction",
        "dlopen",
        "fcntl64",
        "__vfprintf_chk",
    ] {
        assert_eq!(count(&own, name), 0, "{name} looked up:\n{own}");
    }
    // Where the reading is not trusted, dlsym answers, and the loader says so.
    let asked = lookups(&[("LD_DYNAMIC_WEAK", "1")]);
    assert!(count(&asked, "recvmmsg") > 0, "{asked}");
}

/// A library the program links before libc that defines `write` as an indirect function (a
/// definition only the loader's own lookup follows): the library finds its real `write` when
/// it loads, not on the program's first call, so that call makes no `dlsym` of the library's
/// on the host's path — one would take the loader's lock and clear the error `dlerror` still
/// holds from the program's failed `dlopen` just before.
#[test]
fn an_object_before_libc_that_defines_write_otherwise_leaves_dlerror_alone() {
    let ifunc = compile_program(
        "ifunc_write",
        "libifunc_write.so",
        &["-shared", "-fPIC", "-O1"],
    );
    let dir = ifunc.parent().expect("dir").display().to_string();
    let host = compile_program(
        "dlerror_after_write",
        "dlerror_after_write",
        &[
            "-O1",
            "-Wl,--no-as-needed",
            &ifunc.display().to_string(),
            &format!("-Wl,-rpath,{dir}"),
            "-ldl",
        ],
    );
    for env in [&[][..], &[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")][..]] {
        let plain = run_cmd(&host, &[], false, env);
        let loaded = run_cmd(&host, &[], true, env);
        assert!(
            String::from_utf8_lossy(&plain.stdout).contains("cannot open shared object file"),
            "{plain:?}"
        );
        assert_same(&plain, &loaded, "a failed dlopen, a first write, dlerror");
    }
}

/// An auditing module the program names itself (`DT_AUDIT`, no `LD_AUDIT`) may rebind lookups,
/// `dlsym`'s included: where one is loaded the library leaves its lookups to the loader, so a
/// module that wraps `write` sees the host's calls as it does without the library.
#[test]
fn an_audit_module_the_program_names_sees_what_it_sees_without_the_library() {
    let audit = compile_program(
        "audit_write",
        "libaudit_write.so",
        &["-shared", "-fPIC", "-O1"],
    );
    let flag = format!("-Wl,--audit={}", audit.display());
    let host = compile_program("next_host", "next_host_audited", &["-O1", &flag]);
    let env = [("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")];
    let plain = run_cmd(&host, &[], false, &env);
    let loaded = run_cmd(&host, &[], true, &env);
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("<A><A><A><A><A><A><A><A><A><A>"),
        "the module wraps the host's writes: {plain:?}"
    );
    assert_same(&plain, &loaded, "a host with an audit module of its own");
}
