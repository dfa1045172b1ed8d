//! Disk, memory and quiet processes (issue 20, properties 4, 5 and 8): what the host's machine
//! runs short of is the host's business, and a process that never talks to the Runtime API
//! sees nothing of the library.
//!
//! - Property 4, nothing on disk can crash the host: a full `/tmp` (a tiny tmpfs) at start, or
//!   one that fills up later while invokes overlap, means no journal and at most one warning,
//!   never SIGBUS; a journal path that is a hard link is refused like a symlink; the
//!   custom-metrics channel file stays bounded once its values were read.
//! - Property 5, out of memory is the host's business: a runtime capped with `RLIMIT_AS` that
//!   recovers from `MemoryError`/`ENOMEM` recovers the same with the library.
//! - Property 8, a process that never talks to the Runtime API sees nothing: the constructor
//!   makes no system call (strace, and a seccomp allowlist built from the process's own
//!   trace), and no fd the library keeps is in the host's range under a low `RLIMIT_NOFILE`.
//!
//! Each test runs the host without and with the library and compares what it observed. The
//! tmpfs tests need root (to mount); they say so and return early without it.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use lambda_sim::{Config, RunOptions, Simulator, run_function};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::scenario::{assert_same_results, by_request_id};
use support::*;

/// The test functions of this file (tests/functions/python/disk_memory_handler.py).
const HANDLER: &str = "disk_memory_handler.dispatch";

// ---- running a function ----

/// Runs `command` against `sim` (already started, so a test can look at its names first),
/// through `wrapper` when given, for at most 30 s, whether or not it finishes.
fn run_on(
    sim: Simulator,
    command: &[String],
    wrapper: Option<&Path>,
    env: &[(&str, &str)],
    cwd: &Path,
) -> Outcome {
    let opts = RunOptions {
        command: command.iter().map(Into::into).collect(),
        wrapper: wrapper.map(Path::to_path_buf),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        env_remove: vec![
            "LAMBDA_METER_LIB".into(),
            "LAMBDA_METER_DISABLE".into(),
            "AWS_EXECUTION_ENV".into(),
        ],
        cwd: Some(cwd.to_path_buf()),
        timeout: Some(Duration::from_secs(30)),
        echo: false,
    };
    let run = run_function(&sim, &opts).expect("run function");
    Outcome { sim, run }
}

fn config(payloads: &[Value]) -> Config {
    Config {
        events: events(payloads),
        ..Config::default()
    }
}

/// The Python client on this file's handler, with or without the layer's wrapper.
fn run_python(config: Config, wrapped: bool, env: &[(&str, &str)]) -> Outcome {
    let layer = Layer::new();
    let sim = Simulator::start(config).expect("simulator");
    run_on(
        sim,
        &python_command(HANDLER),
        wrapped.then(|| layer.wrapper()).as_deref(),
        env,
        &python_function_dir(),
    )
}

/// The lines lambda-meter wrote on stderr (its warnings, or the allocation-failure message).
fn own_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("lambda-meter") || l.contains("memory allocation of"))
        .collect()
}

/// How far a run got, for messages.
fn progress(out: &Outcome) -> String {
    let answered = out.sim.results().iter().filter(|r| r.is_some()).count();
    format!(
        "{answered}/{} events answered, runtime exits {:?}, stderr:\n{}",
        out.sim.config().events.len(),
        out.run.exits,
        out.run.stderr
    )
}

/// The metered run went exactly as the plain one: it finished every event without the runtime
/// ending, with byte-identical results, the same stderr apart from at most one line of
/// lambda-meter, and the same stdout apart from the records.
fn assert_runs_as_without(plain: &Outcome, metered: &Outcome, what: &str) {
    assert!(
        plain.run.idle && plain.run.exits.is_empty(),
        "{what}: without the library: {}",
        progress(plain)
    );
    assert!(
        metered.run.idle && metered.run.exits.is_empty(),
        "{what}: with the library the runtime did not go on as without it: {}",
        progress(metered)
    );
    assert_same_results(plain, metered);
    let own = own_lines(&metered.run.stderr);
    assert!(
        own.len() <= 1,
        "{what}: more than one line of lambda-meter on stderr: {own:?}"
    );
    let others = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| own_lines(l).is_empty())
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        others(&plain.run.stderr),
        others(&metered.run.stderr),
        "{what}: the runtime's own stderr"
    );
    assert_eq!(
        plain.other_stdout(),
        metered.other_stdout(),
        "{what}: the runtime's own stdout"
    );
}

/// One valid record for each request id of `payloads` but those at `except` (by index).
fn assert_records(metered: &Outcome, payloads: &[Value], except: &[usize], what: &str) {
    let records = metered.records();
    assert_valid_emf(&records);
    let by_id = by_request_id(&records);
    for (i, e) in events(payloads).iter().enumerate() {
        if except.contains(&i) {
            continue;
        }
        let id = e.request_id.as_deref().unwrap();
        assert!(
            by_id.contains_key(id),
            "{what}: no record for invoke {i} ({}) among {} records",
            payloads[i],
            records.len()
        );
    }
}

// ---- a tiny /tmp ----

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A tmpfs mounted on a fresh directory, unmounted (and the directory removed) on drop.
struct Tmpfs {
    dir: tempdir::TempDir,
}

impl Tmpfs {
    /// A tmpfs of `size` (as mount's `size=` option takes it).
    fn mount(size: &str) -> Tmpfs {
        let dir = tempdir::TempDir::new("tmpfs");
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=1777"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(
            status.success(),
            "mount -t tmpfs on {}",
            dir.path().display()
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn tmpdir(&self) -> String {
        self.path().display().to_string()
    }

    /// Fills the file system up (a file written until ENOSPC), then gives `leave` bytes back.
    fn fill(&self, leave: u64) {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let block = vec![b'f'; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        let len = std::fs::metadata(&path).unwrap().len();
        f.set_len(len.saturating_sub(leave)).unwrap();
    }

    /// Bytes still free on the file system.
    fn free(&self) -> u64 {
        let path = std::ffi::CString::new(self.tmpdir()).unwrap();
        // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: a NUL-terminated path; statvfs writes only the struct we pass.
        assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut st) }, 0);
        st.f_bavail * st.f_frsize
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Something still holds it (a runtime that is being killed): detach it.
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

/// The tmpfs tests mount; without root they cannot run.
fn can_mount() -> bool {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
    }
    is_root()
}

// ---- property 4: nothing on disk can crash the host ----

#[test]
fn a_full_tmp_at_start_means_no_journal_and_one_warning_never_sigbus() {
    if !can_mount() {
        return;
    }
    let payloads = vec![
        json!({"action": "ok"}),
        json!({"action": "sleep", "ms": 20}),
        json!({"action": "ok"}),
    ];
    // Nothing left, and a little left (less than the journal's 256 KiB).
    for leave in [0, 32 * 1024] {
        let run = |wrapped: bool| {
            let tmp = Tmpfs::mount("64k");
            tmp.fill(leave);
            assert!(tmp.free() <= leave, "the tmpfs is not as full as meant");
            run_python(config(&payloads), wrapped, &[("TMPDIR", &tmp.tmpdir())])
        };
        let (plain, metered) = (run(false), run(true));
        let what = format!("/tmp with {leave} bytes free at start");
        assert_runs_as_without(&plain, &metered, &what);
        assert_records(&metered, &payloads, &[], &what);
    }
}

#[test]
fn a_tmp_that_fills_up_later_while_invokes_overlap_never_sigbus() {
    if !can_mount() {
        return;
    }
    // Two awslambdaric workers (Lambda Managed Instances) holding batched records in the
    // journal: /tmp has room when they start, then the first invoke fills it up, then more
    // invokes overlap and their records are held (a batch grows past a page of its slot).
    // One-second periods and a last invoke of 2.5 s (two and a half periods, so the watchdog
    // may be late by more than a period) let every other batch be written before the runtime
    // is stopped; the last invoke's own record may still be held then.
    let mut payloads = vec![json!({"action": "fill_tmp"})];
    payloads.extend((0..40).map(|_| json!({"action": "sleep", "ms": 2})));
    payloads.push(json!({"action": "sleep", "ms": 2500}));
    let last = payloads.len() - 1;
    let run = |wrapped: bool| {
        let tmp = Tmpfs::mount("512k");
        let cfg = Config {
            max_concurrency: 2,
            ..config(&payloads)
        };
        let env = [
            ("TMPDIR", tmp.tmpdir()),
            ("LAMBDA_METER_BATCH", "20".to_string()),
            ("LAMBDA_METER_RESOLUTION", "1".to_string()),
        ];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let out = run_python(cfg, wrapped, &env);
        assert_eq!(tmp.free(), 0, "the handler filled /tmp up");
        out
    };
    let (plain, metered) = (run(false), run(true));
    assert_eq!(
        plain.sim.results()[0].as_ref().unwrap().body,
        br#"{"full": true}"#
    );
    let what = "/tmp filled up by an invoke while invokes overlap";
    assert_runs_as_without(&plain, &metered, what);
    assert_records(&metered, &payloads, &[last], what);
}

/// lambda-meter's journal name for the environment `sim` runs (src/glue/ending.rs
/// `journal_path`: an FNV-1a hash of the log stream, function name and Runtime API address).
fn journal_path(tmp: &Path, sim: &Simulator) -> PathBuf {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let api = sim.api_address();
    for part in [sim.log_stream(), sim.config().function_name.as_str(), &api] {
        for b in part.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    tmp.join(format!(".lambda-meter-journal-{h:016x}"))
}

#[test]
fn a_journal_path_that_is_a_hard_link_is_refused() {
    let payloads = vec![
        json!({"action": "ok"}),
        json!({"action": "sleep", "ms": 10}),
    ];
    let layer = Layer::new();
    let command = python_command(HANDLER);
    let metered = |sim: Simulator, tmp: &Path| {
        run_on(
            sim,
            &command,
            Some(&layer.wrapper()),
            &[("TMPDIR", tmp.to_str().unwrap())],
            &python_function_dir(),
        )
    };
    // The journal's name is computed right: a run with the library leaves the journal there.
    let tmp = tempdir::TempDir::new("journal-name");
    let sim = Simulator::start(config(&payloads)).unwrap();
    let journal = journal_path(tmp.path(), &sim);
    let first = metered(sim, tmp.path());
    assert!(first.run.idle, "{}", progress(&first));
    let size = std::fs::metadata(&journal)
        .unwrap_or_else(|e| panic!("no journal at {}: {e}", journal.display()))
        .len();
    // Another file of the function's, linked where the journal goes: empty, or exactly the
    // journal's size (its own data).
    let plain = run_python(config(&payloads), false, &[]);
    for victim_size in [0, size] {
        let tmp = tempdir::TempDir::new("journal-link");
        let victim = tmp.path().join("data.bin");
        let contents: Vec<u8> = (0..victim_size).map(|i| (i % 251) as u8 + 1).collect();
        std::fs::write(&victim, &contents).unwrap();
        let sim = Simulator::start(config(&payloads)).unwrap();
        let journal = journal_path(tmp.path(), &sim);
        std::fs::hard_link(&victim, &journal).unwrap();
        let out = metered(sim, tmp.path());
        let what = format!("the journal path hard-linked to a file of {victim_size} bytes");
        assert_runs_as_without(&plain, &out, &what);
        assert_records(&out, &payloads, &[], &what);
        let now = std::fs::read(&victim).unwrap();
        assert!(
            now == contents,
            "{what}: the linked file was changed: {} bytes now, {} before, first bytes {:?}",
            now.len(),
            contents.len(),
            &now[..now.len().min(16)]
        );
    }
}

#[test]
fn the_channel_stays_bounded_once_its_values_are_read() {
    // 150 invokes, each writing 10 custom values of about 2 KB to the channel by hand (3 MB
    // in all): once the library has read them, the file must not keep them all. The property's
    // own bound: a week at 1,000 invokes a second with 10 values each stays under 1 MiB.
    const BOUND: u64 = 1 << 20;
    let payloads: Vec<Value> = (0..150)
        .map(|_| json!({"action": "channel", "lines": 10, "bytes": 2000}))
        .collect();
    let tmp = tempdir::TempDir::new("channel");
    let channel = tmp.path().join("metrics.channel");
    let plain = run_python(config(&payloads), false, &[]);
    let metered = run_python(
        config(&payloads),
        true,
        &[("LAMBDA_METER_CHANNEL", channel.to_str().unwrap())],
    );
    assert_runs_as_without(&plain, &metered, "values written to the channel");
    assert_records(&metered, &payloads, &[], "values written to the channel");
    // Every record carries its invoke's ten values: they were read.
    for r in metered.records() {
        for i in 0..10 {
            assert!(r.get(format!("p{i}")).is_some(), "value p{i} missing: {r}");
        }
    }
    // The file and the generation rotated before it.
    let old = tmp.path().join("metrics.channel.old");
    let size = [&channel, &old]
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum::<u64>();
    assert!(
        size < BOUND,
        "the channel file holds {size} bytes after {} invokes wrote {} values that were all \
         read (bound {BOUND})",
        payloads.len(),
        payloads.len() * 10
    );
}

// ---- property 5: out of memory is the host's business ----

#[test]
fn a_python_runtime_capped_with_rlimit_as_recovers_from_memory_error_the_same() {
    // The address space is capped before awslambdaric starts; the handler allocates until
    // MemoryError, catches it, frees and returns, several times.
    let preamble = r#"import resource, runpy, sys
size = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (size * 1024 + (48 << 20), resource.RLIM_INFINITY))
sys.argv = ["awslambdaric", sys.argv[1]]
runpy.run_module("awslambdaric", run_name="__main__", alter_sys=True)"#;
    let command = vec![
        python().display().to_string(),
        "-c".into(),
        preamble.into(),
        HANDLER.into(),
    ];
    let payloads = vec![
        json!({"action": "ok"}),
        json!({"action": "hog"}),
        json!({"action": "ok"}),
        json!({"action": "hog"}),
        json!({"action": "sleep", "ms": 10}),
        json!({"action": "hog"}),
    ];
    let layer = Layer::new();
    let run = |wrapped: bool| {
        let sim = Simulator::start(config(&payloads)).unwrap();
        run_on(
            sim,
            &command,
            wrapped.then(|| layer.wrapper()).as_deref(),
            &[],
            &python_function_dir(),
        )
    };
    let (plain, metered) = (run(false), run(true));
    assert_eq!(
        plain.sim.results()[1].as_ref().unwrap().body,
        br#"{"hogged": true}"#
    );
    let what = "a handler that recovers from MemoryError under RLIMIT_AS";
    assert_runs_as_without(&plain, &metered, what);
    assert_records(&metered, &payloads, &[], what);
}

#[test]
fn a_custom_metric_given_while_memory_is_exhausted_does_not_abort() {
    // The handler takes every byte malloc gives under a cap, then counts the event with a
    // custom metric (as an `except MemoryError:` clause would), frees and returns. The shim
    // never raises; without the library it does nothing.
    let payloads = vec![
        json!({"action": "ok"}),
        json!({"action": "starve"}),
        json!({"action": "ok"}),
        json!({"action": "starve"}),
        json!({"action": "ok"}),
    ];
    let layer = Layer::new();
    let shim = layer.dir().join("python").display().to_string();
    let plain = run_python(config(&payloads), false, &[("PYTHONPATH", &shim)]);
    let metered = run_python(config(&payloads), true, &[]);
    assert_eq!(
        plain.sim.results()[1].as_ref().unwrap().body,
        br#"{"exhausted": true}"#,
        "the handler exhausted memory"
    );
    let what = "a custom metric while memory is exhausted";
    assert_runs_as_without(&plain, &metered, what);
    assert_records(&metered, &payloads, &[], what);
}

#[test]
fn a_c_runtime_that_posts_while_malloc_fails_keeps_going() {
    // tests/programs/oom_runtime.c posts with static buffers while every byte malloc gives is
    // taken, then frees and goes on.
    let program = compile_program("oom_runtime", "oom_runtime", &["-O1"]);
    let payloads = vec![
        json!({"action": "ok"}),
        json!({"action": "starve"}),
        json!({"action": "ok"}),
        json!({"action": "starve"}),
        json!({"action": "ok"}),
    ];
    let layer = Layer::new();
    let command = vec![program.display().to_string()];
    let run = |wrapped: bool| {
        let sim = Simulator::start(config(&payloads)).unwrap();
        run_on(
            sim,
            &command,
            wrapped.then(|| layer.wrapper()).as_deref(),
            &[],
            &root(),
        )
    };
    let (plain, metered) = (run(false), run(true));
    assert_eq!(
        plain.sim.results()[1].as_ref().unwrap().body,
        br#"{"invoke":2,"exhausted":1}"#,
        "the runtime exhausted memory"
    );
    let what = "a C runtime posting with memory exhausted";
    assert_runs_as_without(&plain, &metered, what);
    // The invokes that ran out of memory may go without a record; the others may not.
    assert_records(&metered, &payloads, &[1, 3], what);
}

// ---- property 8: a process that never talks to the Runtime API sees nothing ----

/// The system calls `argv` makes (strace lines without the pid), with `preload` in its
/// `LD_PRELOAD` and `AWS_LAMBDA_RUNTIME_API` set; and its exit status and stdout.
fn strace(
    argv: &[&str],
    preload: Option<&Path>,
    numbers: bool,
) -> (Vec<String>, std::process::Output) {
    let dir = tempdir::TempDir::new("strace");
    let file = dir.path().join("trace");
    let mut c = Command::new("strace");
    c.args(["-f", "-qq"]);
    if numbers {
        c.arg("-n");
    }
    c.arg("-o").arg(&file);
    if let Some(lib) = preload {
        c.arg("-E").arg(format!("LD_PRELOAD={}", lib.display()));
    }
    let out = c
        .args(argv)
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env_remove("LD_PRELOAD")
        .env_remove("LAMBDA_METER_ENV_ID")
        .env_remove("LAMBDA_METER_CHANNEL")
        .output()
        .expect("strace");
    let text = std::fs::read_to_string(&file).expect("strace output");
    let lines = text
        .lines()
        .map(|l| {
            l.trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_start()
                .to_string()
        })
        .collect();
    (lines, out)
}

/// The path an `openat` line opens, and whether it succeeded.
fn opened(line: &str) -> Option<(String, bool)> {
    let rest = line.strip_prefix("openat(")?;
    let start = rest.find('"')? + 1;
    let len = rest[start..].find('"')?;
    let ok = !line.contains("= -1 ");
    Some((rest[start..start + len].to_string(), ok))
}

/// `line` (an `mmap` or `mprotect`) as its numbers: the first argument, the second, the
/// result.
fn address_args(line: &str) -> (u64, u64, u64) {
    let hex = |s: &str| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).unwrap_or(0);
    let args = &line[line.find('(').unwrap() + 1..];
    let mut parts = args.split(", ");
    let first = hex(parts.next().unwrap_or(""));
    let second = parts.next().unwrap_or("0").trim().parse().unwrap_or(0);
    let result = line.rsplit(" = ").next().map_or(0, hex);
    (first, second, result)
}

/// The metered trace without what the dynamic loader did to load the library and what it
/// needs (files the plain run never opened): their `openat` … `close`, and the `mprotect`s
/// of their mappings.
fn without_loading(metered: &[String], plain: &[String]) -> Vec<String> {
    let known: HashSet<String> = plain
        .iter()
        .filter_map(|l| opened(l))
        .map(|o| o.0)
        .collect();
    let mut kept = Vec::new();
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut loading: Option<String> = None;
    for l in metered {
        if let Some(fd) = &loading {
            if l.starts_with("mmap(") {
                let (_, len, at) = address_args(l);
                ranges.push((at, at + len));
            }
            if l.starts_with(&format!("close({fd})")) {
                loading = None;
            }
            continue;
        }
        if let Some((path, ok)) = opened(l)
            && !known.contains(&path)
        {
            if ok {
                loading = Some(l.rsplit(" = ").next().unwrap().trim().to_string());
            }
            continue;
        }
        if l.starts_with("mprotect(") {
            let (at, _, _) = address_args(l);
            if ranges.iter().any(|(a, b)| (*a..*b).contains(&at)) {
                continue;
            }
        }
        kept.push(l.clone());
    }
    kept
}

fn names(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .map(|l| l.split('(').next().unwrap_or(""))
        .collect()
}

#[test]
fn the_constructor_makes_no_system_call_in_a_process_that_never_talks_to_the_runtime_api() {
    let probe = compile_program("quiet_probe", "quiet_probe_strace", &[]);
    let library = library();
    for argv in [vec!["/bin/true"], vec![probe.to_str().unwrap()]] {
        let (plain, plain_out) = strace(&argv, None, false);
        let (metered, metered_out) = strace(&argv, Some(&library), false);
        assert_eq!(
            plain_out.status.code(),
            metered_out.status.code(),
            "{argv:?}"
        );
        assert_eq!(plain_out.stdout, metered_out.stdout, "{argv:?}");
        let rest = without_loading(&metered, &plain);
        let (a, b) = (names(&plain), names(&rest));
        if a != b {
            let same = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            panic!(
                "{argv:?} with the library preloaded (AWS_LAMBDA_RUNTIME_API set, never used) \
                 makes other system calls than without it, from call {same} on:\n\
                 without: {:?}\nwith:    {:?}",
                &plain[same.min(plain.len())..],
                &rest[same.min(rest.len())..]
            );
        }
    }
}

/// Runs `quiet_probe` under a seccomp allowlist of the system calls it makes without the
/// library, with the library preloaded, and `env` set: it must end as it does without it.
fn check_own_allowlist(env: &[(&str, &str)]) {
    use std::os::unix::process::ExitStatusExt;
    let probe = compile_program("quiet_probe", "quiet_probe_seccomp", &[]);
    let launcher = compile_program("seccomp_allowlist", "seccomp_allowlist", &[]);
    // The program's own system calls, by number, as strace saw them without the library.
    let (trace, _) = strace(&[probe.to_str().unwrap()], None, true);
    let mut numbers: Vec<u32> = trace
        .iter()
        .filter_map(|l| {
            let n = l.strip_prefix('[')?.split(']').next()?;
            n.trim().parse().ok()
        })
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert!(numbers.len() > 5, "{trace:?}");
    let list: Vec<String> = numbers.iter().map(u32::to_string).collect();
    let run = |preload: Option<&Path>| {
        let mut c = Command::new(&launcher);
        c.arg(list.join(","))
            .arg(&probe)
            .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
            .env_remove("LD_PRELOAD")
            .env_remove("LAMBDA_METER_ENV_ID")
            .env_remove("LAMBDA_METER_CHANNEL")
            .envs(env.iter().copied());
        if let Some(lib) = preload {
            c.env("SECCOMP_PRELOAD", lib);
        }
        c.output().expect("seccomp_allowlist")
    };
    let plain = run(None);
    assert!(
        plain.status.success(),
        "the allowlist lets the program run: {:?} {}",
        plain.status,
        String::from_utf8_lossy(&plain.stderr)
    );
    let metered = run(Some(&library()));
    assert!(
        metered.status.success() && metered.status.signal().is_none(),
        "with the library preloaded ({env:?}) the program under its own allowlist ended with \
         {:?} (SIGSYS is {}): the library made a system call the program never makes",
        metered.status,
        libc::SIGSYS
    );
    assert_eq!(plain.stdout, metered.stdout);
    assert_eq!(plain.stderr, metered.stderr);
}

#[test]
fn a_seccomp_allowlist_built_from_the_process_own_trace_keeps_working() {
    check_own_allowlist(&[]);
}

#[test]
fn a_sandboxed_child_of_a_wrapped_environment_that_writes_whole_lines_keeps_working() {
    // A child of a runtime the wrapper started (LAMBDA_METER_ENV_ID set), whose environment has
    // its line page already: writing whole lines, it makes no system call for it.
    let tmp = tempdir::TempDir::new("seccomp-lines");
    let root = "4242";
    let mut page = b"LMLINES1".to_vec();
    page.resize(4096, 0);
    let path = tmp.path().join(format!(".lambda-meter-lines-{root}"));
    std::fs::write(&path, page).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    check_own_allowlist(&[
        ("LAMBDA_METER_ENV_ID", root),
        ("TMPDIR", tmp.path().to_str().unwrap()),
    ]);
}

#[test]
fn under_a_low_rlimit_nofile_the_library_keeps_no_fd_in_the_host_range() {
    // `ulimit -n 64`: the handler opens files and lists its fds after records were written to
    // a destination of the library's own (a file, a UDP socket).
    let payloads = vec![
        json!({"action": "ok"}),
        json!({"action": "fds", "open": 3}),
        json!({"action": "ok"}),
        json!({"action": "fds", "open": 3}),
    ];
    let mut command = vec!["prlimit".to_string(), "--nofile=64:64".into()];
    command.extend(python_command(HANDLER));
    let layer = Layer::new();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // The agent's TCP endpoint: every connection's bytes, gathered.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_addr = tcp.local_addr().unwrap();
    let tcp_got = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let got = tcp_got.clone();
        std::thread::spawn(move || {
            for conn in tcp.incoming().flatten() {
                let got = got.clone();
                std::thread::spawn(move || {
                    use std::io::Read;
                    let mut text = String::new();
                    let _ = (&conn).read_to_string(&mut text);
                    got.lock().unwrap().push_str(&text);
                });
            }
        });
    }
    let tmp = tempdir::TempDir::new("nofile");
    let file = tmp.path().join("records.log");
    for destination in [
        format!("file:{}", file.display()),
        format!("udp://{}", udp.local_addr().unwrap()),
        format!("tcp://{tcp_addr}"),
    ] {
        let run = |wrapped: bool| {
            let sim = Simulator::start(config(&payloads)).unwrap();
            run_on(
                sim,
                &command,
                wrapped.then(|| layer.wrapper()).as_deref(),
                &[("LAMBDA_METER_DESTINATION", &destination)],
                &python_function_dir(),
            )
        };
        let plain = run(false);
        let metered = run(true);
        let what = format!("RLIMIT_NOFILE 64 with LAMBDA_METER_DESTINATION={destination}");
        for i in [1, 3] {
            let body = |o: &Outcome| {
                serde_json::from_slice::<Value>(&o.sim.results()[i].as_ref().unwrap().body).unwrap()
            };
            assert_eq!(
                body(&plain),
                body(&metered),
                "{what}: the files the handler opened and the fds it saw (invoke {i})"
            );
        }
        assert_runs_as_without(&plain, &metered, &what);
        // The records went to the destination.
        let records = if destination.starts_with("file:") {
            std::fs::read_to_string(&file).unwrap()
        } else if destination.starts_with("tcp:") {
            // Each record comes on a connection of its own, read by a thread of the listener:
            // until they are all in (or 10 s passed).
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let got = tcp_got.lock().unwrap().clone();
                let n = lambda_sim::summary::emf_records(&got).len();
                if n >= payloads.len() - 1 || std::time::Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            std::mem::take(&mut *tcp_got.lock().unwrap())
        } else {
            let mut all = String::new();
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = udp.recv(&mut buf) {
                all.push_str(&String::from_utf8_lossy(&buf[..n]));
                all.push('\n');
            }
            all
        };
        let got = lambda_sim::summary::emf_records(&records).len();
        assert!(got >= payloads.len() - 1, "{what}: {got} records arrived");
    }
}
