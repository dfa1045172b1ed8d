//! The wrapper script, run by dash as Lambda runs `AWS_LAMBDA_EXEC_WRAPPER`.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;
use std::process::{Command, Output};
use support::*;

fn wrap(wrapper: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("dash");
    cmd.arg(wrapper);
    run_wrapper(cmd, args, env)
}

/// `cmd` (which starts the wrapper) with `args` after it, in an environment without the
/// variables a test sets itself, and with `env`.
fn run_wrapper(mut cmd: Command, args: &[&str], env: &[(&str, &str)]) -> Output {
    // The wrapper notes each runtime it starts in TMPDIR: in the test's own, unless it sets one.
    let tmp = tempdir::TempDir::new("wrapper-tmp");
    cmd.env("TMPDIR", tmp.path());
    cmd.args(args)
        .env_remove("LD_PRELOAD")
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("LAMBDA_METER_LIB")
        .env_remove("LAMBDA_METER_DISABLE")
        .env_remove("AWS_LAMBDA_RUNTIME_API");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the wrapper's shell")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr_lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_argument_arrives_intact() {
    let layer = Layer::new();
    let args = [
        "printf",
        "[%s]",
        "a b",
        "",
        "q'\"z",
        "*",
        "$HOME",
        "-n",
        "tab\there",
        "new\nline",
    ];
    let out = wrap(&layer.wrapper(), &args, &[]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "[a b][][q'\"z][*][$HOME][-n][tab\there][new\nline]"
    );
    assert!(out.stderr.is_empty(), "{:?}", stderr_lines(&out));
}

#[test]
fn finds_the_library_beside_itself_and_prepends_it() {
    let layer = Layer::new();
    let lib = layer.dir.path().join("lib/liblambda_meter.so");
    let out = wrap(
        &layer.wrapper(),
        &["sh", "-c", "printf %s \"$LD_PRELOAD\""],
        &[],
    );
    assert_eq!(stdout(&out), lib.display().to_string());
    let out = wrap(
        &layer.wrapper(),
        &["sh", "-c", "printf %s \"$LD_PRELOAD\""],
        &[("LD_PRELOAD", "libm.so.6")],
    );
    assert_eq!(stdout(&out), format!("{}:libm.so.6", lib.display()));
    assert!(out.stderr.is_empty(), "{:?}", stderr_lines(&out));
}

#[test]
fn lambda_meter_lib_overrides_the_location() {
    let dir = tempdir::TempDir::new("wrapper-only");
    let w = dir.path().join("lambda-meter");
    std::fs::copy(wrapper_source(), &w).unwrap();
    let lib = library();
    let out = wrap(
        &w,
        &["sh", "-c", "printf %s \"$LD_PRELOAD\""],
        &[("LAMBDA_METER_LIB", lib.to_str().unwrap())],
    );
    assert_eq!(stdout(&out), lib.display().to_string());
}

#[test]
fn the_runtime_replaces_the_wrapper_process() {
    let layer = Layer::new();
    let child = Command::new("dash")
        .arg(layer.wrapper())
        .args(["sh", "-c", "echo $$"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        stdout(&out).trim(),
        pid.to_string(),
        "exec, not a child process"
    );
}

/// Each case: one warning line, the runtime starts anyway without the library, and its exit
/// status passes through.
fn assert_fails_open(wrapper: &Path, env: &[(&str, &str)], expect: &str) {
    assert_failed_open(&wrap(wrapper, &FAILS_OPEN, env), expect);
}

/// The runtime of the fails-open cases: prints its LD_PRELOAD and exits 7.
const FAILS_OPEN: [&str; 3] = ["sh", "-c", "printf '%s' \"${LD_PRELOAD:-none}\"; exit 7"];

fn assert_failed_open(out: &Output, expect: &str) {
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(stdout(out), "none");
    let lines = stderr_lines(out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("lambda-meter: warning: "), "{lines:?}");
    assert!(lines[0].contains(expect), "{lines:?}");
}

#[test]
fn disabled_by_setting() {
    let layer = Layer::new();
    // Read as the library reads it: any case, white space around.
    for v in ["true", "TRUE", "1", "yes", "TrUe", " on\t", "Yes\n"] {
        assert_fails_open(
            &layer.wrapper(),
            &[("LAMBDA_METER_DISABLE", v)],
            "LAMBDA_METER_DISABLE",
        );
    }
}

#[test]
fn missing_library() {
    let dir = tempdir::TempDir::new("no-lib");
    let w = dir.path().join("lambda-meter");
    std::fs::copy(wrapper_source(), &w).unwrap();
    assert_fails_open(&w, &[], "not found");
    assert_fails_open(
        &w,
        &[("LAMBDA_METER_LIB", "/nonexistent/lib.so")],
        "not found",
    );
}

#[test]
fn unloadable_library() {
    let dir = tempdir::TempDir::new("bad-lib");
    let junk = dir.path().join("junk.so");
    std::fs::write(&junk, b"this is not an ELF file at all, just text").unwrap();
    let layer = Layer::new();
    assert_fails_open(
        &layer.wrapper(),
        &[("LAMBDA_METER_LIB", junk.to_str().unwrap())],
        "not a shared object",
    );
    // A real library, but for another machine (the ELF e_machine field says aarch64/x86_64).
    let mut bytes = std::fs::read(library()).unwrap();
    let other: u16 = if cfg!(target_arch = "x86_64") {
        183
    } else {
        62
    };
    bytes[18..20].copy_from_slice(&other.to_le_bytes());
    let foreign = dir.path().join("foreign.so");
    std::fs::write(&foreign, bytes).unwrap();
    assert_fails_open(
        &layer.wrapper(),
        &[("LAMBDA_METER_LIB", foreign.to_str().unwrap())],
        "not a shared object",
    );
}

/// The wrapper run as `wrap` runs it, in a mount namespace of its own where an empty file hides
/// the system's `file` in each directory the wrapper looks in.
fn wrap_hiding(file: &str, wrapper: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let hide = format!(
        "for d in /lib64 /usr/lib64 /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu \
         /lib/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu; do \
         if [ -e $d/{file} ]; then mount --bind /dev/null $d/{file} || exit 99; fi; \
         done"
    );
    wrap_in_namespace(&hide, wrapper, args, env)
}

/// The wrapper run as `wrap` runs it, after `setup` (shell commands) in a mount namespace of
/// its own.
fn wrap_in_namespace(setup: &str, wrapper: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let script = format!("{setup}; exec dash \"$@\"");
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-c", &script, "sh"]).arg(wrapper);
    run_wrapper(cmd, args, env)
}

#[test]
fn a_system_without_libgcc_s_is_metered_all_the_same() {
    // The library loads no unwinder (c-abi/unwind.c finds the system's when something unwinds):
    // where libgcc_s.so.1 is missing, the preloaded runtime starts, with no word from the
    // loader, as it would if it needed it ("error while loading shared libraries", exit 127).
    let layer = Layer::new();
    let out = wrap_hiding(
        "libgcc_s.so.1",
        &layer.wrapper(),
        &["sh", "-c", "printf '%s' \"${LD_PRELOAD:-none}\"; exit 7"],
        &[],
    );
    assert_eq!(out.status.code(), Some(7), "{:?}", stderr_lines(&out));
    assert!(
        stdout(&out).ends_with("liblambda_meter.so"),
        "{}",
        stdout(&out)
    );
    assert!(out.stderr.is_empty(), "{:?}", stderr_lines(&out));
}

#[test]
fn on_glibc_2_34_and_later_the_library_built_for_it_is_preloaded() {
    // A layer with both builds (here the test library twice: which one is preloaded is the
    // question).
    let dir = tempdir::TempDir::new("two-builds");
    let status = Command::new("sh")
        .arg(root().join("layer/assemble.sh"))
        .arg(library())
        .arg(dir.path())
        .arg(library())
        .status()
        .unwrap();
    assert!(status.success());
    let wrapper = dir.path().join("lambda-meter");
    let preload = ["sh", "-c", "printf '%s' \"${LD_PRELOAD:-none}\""];
    let glibc = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .unwrap();
    let glibc = String::from_utf8_lossy(&glibc.stdout).trim().to_string();
    let minor: u32 = glibc
        .strip_prefix("glibc 2.")
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("{glibc:?}"));
    assert!(
        minor >= 34,
        "these tests run on glibc 2.34 or later: {glibc}"
    );
    // The run preloaded the layer's library at `relative`, without a word.
    let preloaded = |out: &Output, relative: &str| {
        assert_eq!(
            stdout(out),
            format!("{}/{relative}", dir.path().display()),
            "{:?}",
            stderr_lines(out)
        );
        assert!(out.stderr.is_empty(), "{:?}", stderr_lines(out));
    };
    let out = wrap(&wrapper, &preload, &[]);
    preloaded(&out, "lib/glibc-2.34/liblambda_meter.so");
    // Without libc_malloc_debug.so.0 (new in 2.34) beside libc.so.6, the glibc 2.26 build.
    let out = wrap_hiding("libc_malloc_debug.so.0", &wrapper, &preload, &[]);
    preloaded(&out, "lib/liblambda_meter.so");
    // Amazon Linux 2's /lib64/libc.so.6 is a link to libc-2.26.so: a /lib64 whose libc.so.6 is
    // a link (to this system's, which loads) gets the glibc 2.26 build, even with
    // libc_malloc_debug.so.0 beside it (each of the two signs is checked).
    let lib64 = tempdir::TempDir::new("lib64");
    for entry in std::fs::read_dir("/lib64").unwrap() {
        let entry = entry.unwrap().path();
        let target = std::fs::canonicalize(&entry).unwrap();
        std::os::unix::fs::symlink(target, lib64.path().join(entry.file_name().unwrap())).unwrap();
    }
    let libc = ["/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/lib64"]
        .iter()
        .map(|d| Path::new(d).join("libc.so.6"))
        .find(|f| f.is_file())
        .unwrap();
    for name in ["libc.so.6", "libc_malloc_debug.so.0"] {
        let linked = lib64.path().join(name);
        if !linked.exists() {
            let real = std::fs::canonicalize(libc.with_file_name(name)).unwrap();
            std::os::unix::fs::symlink(real, &linked).unwrap();
        }
    }
    let setup = format!("mount --bind {} /lib64", lib64.path().display());
    let out = wrap_in_namespace(&setup, &wrapper, &preload, &[]);
    preloaded(&out, "lib/liblambda_meter.so");
    // LAMBDA_METER_LIB names the library, whatever the system.
    let named = library().display().to_string();
    let out = wrap(&wrapper, &preload, &[("LAMBDA_METER_LIB", &named)]);
    assert_eq!(stdout(&out), named);
}

#[test]
fn no_command_is_an_error_not_a_hang() {
    let layer = Layer::new();
    let out = wrap(&layer.wrapper(), &[], &[]);
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(stderr_lines(&out).len(), 1);
}

#[test]
fn an_invalid_setting_is_not_said_by_a_process_that_never_talks_to_the_runtime_api() {
    // The library is preloaded anyway, and the sh process (printf is a builtin) never talks to
    // the Runtime API: it sees nothing of the library, not even its warnings. The runtime says
    // them, once (tests/lifecycle.rs
    // `every_invalid_setting_gets_one_warning_and_the_function_runs_on_defaults`).
    let layer = Layer::new();
    let out = wrap(
        &layer.wrapper(),
        &["sh", "-c", "printf %s \"$LD_PRELOAD\""],
        &[
            ("LAMBDA_METER_DISABLE", "perhaps"),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9"),
        ],
    );
    assert!(stdout(&out).ends_with("liblambda_meter.so"));
    let lines = stderr_lines(&out);
    assert!(lines.is_empty(), "{lines:?}");
}

/// The `rt_sigaction` calls of `bash -c script` and every process it starts, as strace sees
/// them, with `preload` in the traced program's environment only.
fn sigaction_calls(script: &str, preload: Option<&Path>) -> usize {
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-e", "signal=none", "-e", "trace=rt_sigaction"]);
    if let Some(lib) = preload {
        cmd.arg("-E").arg(format!("LD_PRELOAD={}", lib.display()));
    }
    let out = cmd
        .args(["bash", "-c", script])
        .env_remove("LD_PRELOAD")
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .output()
        .expect("strace");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("rt_sigaction("))
        .count()
}

#[test]
fn a_shell_that_resets_its_signals_in_each_child_makes_no_more_sigaction_calls() {
    // A shell custom runtime's bash forks a child for each command and resets every signal it
    // traps there; with the library preloaded (and never talking to the Runtime API) that
    // costs no extra system call: nothing of the library's is in to settle.
    let script = r#"trap "true" EXIT; /bin/true; x=$(/bin/true); exit 0"#;
    let without = sigaction_calls(script, None);
    assert!(without > 0);
    assert_eq!(sigaction_calls(script, Some(&library())), without);
}

/// The processes (clone, fork, vfork) `dash wrapper args…` starts, as strace sees them.
fn processes_started(wrapper: &Path, args: &[&str]) -> Vec<String> {
    let out = Command::new("strace")
        .args(["-f", "-qq", "-e", "signal=none", "-e"])
        .arg("trace=clone,clone3,fork,vfork")
        .arg("dash")
        .arg(wrapper)
        .args(args)
        .env_remove("LD_PRELOAD")
        .env_remove("LAMBDA_METER_LIB")
        .output()
        .expect("strace");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("clone") || l.contains("fork"))
        .map(str::to_string)
        .collect()
}

#[test]
fn on_lambdas_path_the_wrapper_starts_no_process() {
    let layer = Layer::new();
    // A runtime found in PATH and one named by its path, both where managed and system
    // runtimes live: no subshell, no od (the layer's machine note stands in for reading the
    // library).
    for runtime in ["true", "/bin/true"] {
        assert_eq!(
            processes_started(&layer.wrapper(), &[runtime]),
            Vec::<String>::new(),
            "{runtime}"
        );
    }
    let out = wrap(&layer.wrapper(), &["env"], &[]);
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("LD_PRELOAD=") && l.ends_with("lib/liblambda_meter.so")),
        "{}",
        stdout(&out)
    );
    assert!(out.stderr.is_empty(), "{:?}", stderr_lines(&out));
    // A custom runtime outside those places is read once, for the static-binary check.
    let custom = tempdir::TempDir::new("custom-runtime");
    let bootstrap = custom.path().join("bootstrap");
    std::fs::copy("/bin/true", &bootstrap).unwrap();
    assert_eq!(
        processes_started(&layer.wrapper(), &[bootstrap.to_str().unwrap()]).len(),
        1
    );
}

#[test]
fn a_machine_note_for_another_machine_starts_the_runtime_untouched() {
    let layer = Layer::new();
    // The machine note assemble.sh wrote into the wrapper, made another machine's.
    let wrapper = layer.wrapper();
    let script = std::fs::read_to_string(&wrapper).unwrap();
    let foreign = script
        .lines()
        .map(|l| match l {
            l if l.starts_with("lm_layer_sig=") => "lm_layer_sig='65794 183'",
            l if l.starts_with("lm_layer_loader=") => {
                "lm_layer_loader=/nonexistent/ld-linux-other.so.1"
            }
            l => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(script.trim_end(), foreign, "the wrapper has a machine note");
    std::fs::write(&wrapper, foreign + "\n").unwrap();
    assert_fails_open(
        &layer.wrapper(),
        &[],
        "not a shared object for this machine",
    );
}

/// The variables the runtime gets from `env` run as `command` (a link to env named so).
fn variables_for(command: &str, env: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    let layer = Layer::new();
    let dir = tempdir::TempDir::new("family");
    let link = dir.path().join(command);
    std::os::unix::fs::symlink("/usr/bin/env", &link).unwrap();
    let mut env = env.to_vec();
    // Not inherited from the test's own environment.
    if !env.iter().any(|(k, _)| *k == "AWS_EXECUTION_ENV") {
        env.push(("AWS_EXECUTION_ENV", ""));
    }
    let out = wrap(&layer.wrapper(), &[link.to_str().unwrap()], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_wrapper_names_the_family_and_appends_only_its_shims_path() {
    // From the command's name: the family's one variable grows, after the user's entries.
    let vars = variables_for("python3.12", &[("PYTHONPATH", "/user/a:/user b")]);
    assert_eq!(vars["LAMBDA_METER_RUNTIME_FAMILY"], "python");
    let path = &vars["PYTHONPATH"];
    assert!(
        path.starts_with("/user/a:/user b:") && path.ends_with("/python"),
        "{path}"
    );
    assert!(!vars.contains_key("NODE_PATH") && !vars.contains_key("RUBYLIB"));
    // AWS_EXECUTION_ENV wins over the command's name.
    let vars = variables_for(
        "python3.12",
        &[("AWS_EXECUTION_ENV", "AWS_Lambda_nodejs22.x")],
    );
    assert_eq!(vars["LAMBDA_METER_RUNTIME_FAMILY"], "nodejs");
    assert!(vars["NODE_PATH"].ends_with("/nodejs/node_modules"));
    assert!(!vars.contains_key("PYTHONPATH"));
    let vars = variables_for("ruby", &[("RUBYLIB", "/mine")]);
    assert_eq!(vars["LAMBDA_METER_RUNTIME_FAMILY"], "ruby");
    assert!(vars["RUBYLIB"].starts_with("/mine:") && vars["RUBYLIB"].ends_with("/ruby/lib"));
    // A custom runtime (a shell bootstrap, a binary) gets the shell shim on PATH, at the end.
    let vars = variables_for("bootstrap", &[("PATH", "/usr/bin:/bin")]);
    assert_eq!(vars["LAMBDA_METER_RUNTIME_FAMILY"], "custom");
    assert!(vars["PATH"].starts_with("/usr/bin:/bin:") && vars["PATH"].ends_with("/bin"));
    // Run by a relative path, the wrapper still appends an absolute directory.
    let layer = Layer::new();
    let dir = tempdir::TempDir::new("relative");
    let link = dir.path().join("python3");
    std::os::unix::fs::symlink("/usr/bin/env", &link).unwrap();
    let out = Command::new("dash")
        .arg("./lambda-meter")
        .arg(&link)
        .current_dir(layer.dir())
        .env_remove("LD_PRELOAD")
        .env_remove("PYTHONPATH")
        .env("AWS_EXECUTION_ENV", "")
        .output()
        .unwrap();
    let shim = format!("PYTHONPATH={}/./python", layer.dir().display());
    assert!(stdout(&out).lines().any(|l| l == shim), "{}", stdout(&out));
    // Given again (a bootstrap that hands over twice), nothing is added twice.
    let layer = Layer::new();
    let shim = layer.dir().join("python").display().to_string();
    let dir = tempdir::TempDir::new("again");
    let link = dir.path().join("python3");
    std::os::unix::fs::symlink("/usr/bin/env", &link).unwrap();
    let out = wrap(
        &layer.wrapper(),
        &[link.to_str().unwrap()],
        &[("PYTHONPATH", &shim)],
    );
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l == format!("PYTHONPATH={shim}")),
        "{}",
        stdout(&out)
    );
}
