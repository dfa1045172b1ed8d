//! The wrapper script, run by dash as Lambda runs `AWS_LAMBDA_EXEC_WRAPPER`.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use support::*;

fn wrap(wrapper: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("dash");
    cmd.arg(wrapper)
        .args(args)
        .env_remove("LD_PRELOAD")
        .env_remove("LAMBDA_METER_LIB")
        .env_remove("LAMBDA_METER_DISABLE")
        .env_remove("AWS_LAMBDA_RUNTIME_API");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("dash")
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
    let out = wrap(
        wrapper,
        &["sh", "-c", "printf '%s' \"${LD_PRELOAD:-none}\"; exit 7"],
        env,
    );
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(stdout(&out), "none");
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("lambda-meter: warning: "), "{lines:?}");
    assert!(lines[0].contains(expect), "{lines:?}");
}

#[test]
fn disabled_by_setting() {
    let layer = Layer::new();
    for v in ["true", "TRUE", "1", "yes"] {
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

#[test]
fn no_command_is_an_error_not_a_hang() {
    let layer = Layer::new();
    let out = wrap(&layer.wrapper(), &[], &[]);
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(stderr_lines(&out).len(), 1);
}

#[test]
fn an_invalid_disable_value_warns_once_and_meters_anyway() {
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
    // The library in the sh process (and only there: printf is a builtin) warns once.
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("LAMBDA_METER_DISABLE=\"perhaps\"") && lines[0].contains("using false")
    );
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
    let note = layer.dir.path().join("lib/liblambda_meter.so.loader");
    std::fs::write(&note, "65794 183 /nonexistent/ld-linux-other.so.1\n").unwrap();
    assert_fails_open(
        &layer.wrapper(),
        &[],
        "not a shared object for this machine",
    );
}
