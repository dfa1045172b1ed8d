//! Handlers that start processes. CPython starts children with `vfork`, and its child closes
//! the inherited fds (`close_range`, `dup2`) in the parent's memory before `exec`: those hooks
//! must not touch the parent's state. Each case is followed by more invokes, and every invoke
//! must have its record; each run is compared with the same run without the library. (Java's
//! `ProcessBuilder` is in `java_runtime.rs`, beside the JVM it needs.)

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{Value, json};
use support::scenario::Scenario;
use support::*;

/// Each case twice between plain invokes, so an invoke after each one must be recorded.
fn around(cases: &[Value]) -> Vec<Value> {
    let mut payloads = vec![json!({"action": "ok"})];
    for c in cases.iter().chain(cases) {
        payloads.push(c.clone());
        payloads.push(json!({"action": "ok"}));
    }
    payloads
}

fn python_scenario(cases: &[Value]) -> Scenario {
    Scenario::python(around(cases))
}

#[test]
fn python_subprocess_run_popen_and_check_output() {
    let out = python_scenario(&[
        json!({"action": "subprocess", "how": "run"}),
        json!({"action": "subprocess", "how": "popen"}),
        json!({"action": "subprocess", "how": "check_output"}),
    ])
    .check();
    assert_eq!(out.records().len(), 13);
}

#[test]
fn python_os_posix_spawn() {
    python_scenario(&[json!({"action": "subprocess", "how": "posix_spawn"})]).check();
}

#[test]
fn python_subprocess_in_threaded_polling_mode() {
    python_scenario(&[json!({"action": "subprocess", "how": "run"})])
        .env("AWS_EXECUTION_ENV", "AWS_Lambda_python3.12")
        .check();
}

#[test]
fn python_subprocess_over_tiny_writes() {
    python_scenario(&[json!({"action": "subprocess", "how": "popen"})])
        .tiny_writes()
        .check();
}

fn node(cases: &[Value], alternative_client: bool) -> Scenario {
    let mut s = Scenario::node("index.handler");
    if alternative_client {
        s = s.env("AWS_LAMBDA_NODEJS_USE_ALTERNATIVE_CLIENT_1", "true");
    }
    s.payloads = around(cases);
    s
}

#[test]
fn node_child_process_spawn_and_exec_sync() {
    let cases = [
        json!({"action": "subprocess", "how": "spawn"}),
        json!({"action": "subprocess", "how": "execSync"}),
    ];
    node(&cases, false).check();
    node(&cases, true).check();
}

#[test]
fn c_runtime_vfork_and_execve() {
    // The result connection is open, and followed, while the vfork child closes every fd.
    let bin = compile_program("c_runtime", "c_runtime_vfork", &["-O1"]);
    let mut s = Scenario::new(vec![bin.display().to_string()], root());
    s.compare_output = true;
    s.payloads = around(&[json!({"action": "vfork"})]);
    let out = s.check();
    let results = out.sim.results();
    for (p, r) in s.payloads.iter().zip(&results) {
        if p["action"] == "vfork" {
            let body = &r.as_ref().expect("result").body;
            assert_eq!(
                body.as_slice(),
                b"{\"status\":0}",
                "the child ran /bin/true"
            );
        }
    }
}
