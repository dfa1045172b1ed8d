//! Custom runtimes: a C runtime built with FORTIFY (reads through `__read_chk`/`__recv_chk`,
//! closes with `syscall(SYS_close)`, a new connection per request), and a statically linked
//! runtime that cannot be metered and must start untouched with one warning.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::PathBuf;
use std::process::Command;
use support::scenario::{self, Launch, Scenario};
use support::*;

fn dynamic_symbols(binary: &PathBuf) -> String {
    let out = Command::new("nm")
        .args(["-D", "--undefined-only"])
        .arg(binary)
        .output()
        .expect("nm");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fortified_runtime() -> PathBuf {
    // Compiled once: two tests run it at the same time, and one must not rewrite the file the
    // other is running.
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let bin = BIN
        .get_or_init(|| {
            compile_program(
                "c_runtime",
                "c_runtime_fortify",
                &["-O2", "-D_FORTIFY_SOURCE=2", "-Wall", "-Wno-unused-result"],
            )
        })
        .clone();
    let syms = dynamic_symbols(&bin);
    // The binary really takes the FORTIFY paths the library must hook.
    assert!(syms.contains("__read_chk"), "{syms}");
    assert!(syms.contains("__recv_chk"), "{syms}");
    bin
}

#[test]
fn fortified_c_runtime() {
    let bin = fortified_runtime();
    let mut s = Scenario::new(vec![bin.display().to_string()], root());
    s.compare_output = true;
    let out = s.check();
    // A new connection for every request: the simulator saw many.
    assert!(
        out.sim.connection_count() >= 20,
        "{}",
        out.sim.connection_count()
    );
    for r in out.records() {
        assert_eq!(r["runtime"], "c_runtime_fortify");
    }
}

/// An OS-only runtime (`provided.*`) the two ways Lambda allows: `LD_PRELOAD` in the
/// function's environment, or a `bootstrap` script that execs the wrapper.
#[test]
fn fortified_c_runtime_with_ld_preload_in_the_functions_environment() {
    let bin = fortified_runtime();
    let mut s = Scenario::new(vec![bin.display().to_string()], root()).launched(Launch::Preload);
    s.compare_output = true;
    s.check();
}

#[test]
fn fortified_c_runtime_with_a_bootstrap_that_execs_the_wrapper() {
    let bin = fortified_runtime();
    let mut s = Scenario::new(vec![bin.display().to_string()], root()).launched(Launch::Bootstrap);
    s.compare_output = true;
    let out = s.check();
    for r in out.records() {
        assert_eq!(r["runtime"], "c_runtime_fortify");
    }
}

#[test]
fn fortified_c_runtime_adversarial_transport() {
    let bin = fortified_runtime();
    Scenario::new(vec![bin.display().to_string()], root())
        .tiny_writes()
        .check();
}

#[test]
fn statically_linked_runtime_starts_untouched_with_one_warning() {
    let bin = compile_program(
        "c_runtime",
        "c_runtime_static",
        &["-O2", "-static", "-Wno-unused-result"],
    );
    let file = Command::new("od")
        .args(["-An", "-c", "-N4"])
        .arg(&bin)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&file.stdout).contains("E   L   F"));
    assert!(
        dynamic_symbols(&bin).trim().is_empty(),
        "the runtime is really static"
    );
    let payloads = scenario::standard_mix();
    let layer = Layer::new();
    let cmd = [bin.to_str().unwrap()];
    let plain = run(events(&payloads), &cmd, None, &[], &root());
    let wrapped = run(
        events(&payloads),
        &cmd,
        Some(&layer.wrapper()),
        &[],
        &root(),
    );
    scenario::assert_same_results(&plain, &wrapped);
    scenario::assert_same_requests(&plain, &wrapped);
    assert!(wrapped.records().is_empty());
    let lines: Vec<&str> = wrapped.run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", wrapped.run.stderr);
    assert!(
        lines[0].starts_with("lambda-meter: warning: ") && lines[0].contains("statically linked"),
        "{lines:?}"
    );
    assert!(plain.run.stderr.is_empty());
    // What a static Go bootstrap gets with LD_PRELOAD in its environment: nothing at all, not
    // even a warning (no dynamic loader ever reads the variable). The README says so.
    let library = layer.library();
    let preloaded = run(
        events(&payloads),
        &cmd,
        None,
        &[("LD_PRELOAD", library.to_str().unwrap())],
        &root(),
    );
    scenario::assert_same_results(&plain, &preloaded);
    assert!(preloaded.records().is_empty());
    assert_eq!(plain.run.stdout, preloaded.run.stdout);
    assert!(preloaded.run.stderr.is_empty(), "{}", preloaded.run.stderr);
}

fn ruby_scenario() -> Scenario {
    let mut s = Scenario::new(
        vec!["ruby".into(), "runtime.rb".into()],
        root().join("tests/functions/ruby"),
    );
    s.compare_output = true;
    s
}

#[test]
fn ruby_net_http_loop() {
    let out = ruby_scenario().check();
    for r in out.records() {
        assert!(
            r["runtime"].as_str().unwrap().starts_with("ruby"),
            "{}",
            r["runtime"]
        );
    }
}

#[test]
fn ruby_net_http_loop_adversarial_transport() {
    ruby_scenario().tiny_writes().check();
}
