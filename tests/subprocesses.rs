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

/// Lambda's `Max Memory Used` counts every process of the environment, so a handler whose child
/// fills 64 MiB must show it in `MaxMemoryUsed` (and `MemoryUtilization`), while
/// `ProcessMaxMemoryUsed` keeps the runtime process's own peak. The handler sleeps after the
/// child so the end of its invoke is past the library's reading interval (100 ms).
fn child_memory(in_cgroup: bool) -> (Vec<Value>, Option<u64>) {
    let payloads = vec![
        json!({"action": "ok"}),
        json!({"action": "child_memory", "mb": 64, "ms": 150}),
        json!({"action": "ok"}),
        // The runtime itself grows later, long after the child ended.
        json!({"action": "hold", "mb": 40}),
        json!({"action": "sleep", "ms": 150}),
    ];
    let mut scenario = Scenario::python(payloads);
    if in_cgroup {
        scenario = scenario.in_memory_cgroup();
    }
    let out = scenario.check();
    let records = out.records();
    assert_eq!(records.len(), 5);
    let mb = |r: &Value, k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
    let child = &records[1];
    let (max, own) = (
        mb(child, "MaxMemoryUsed"),
        mb(child, "ProcessMaxMemoryUsed"),
    );
    assert!(
        max >= 64.0,
        "the child's 64 MiB are in MaxMemoryUsed: {child}"
    );
    assert!(own < 64.0, "the runtime's own peak is its own: {child}");
    let utilization = mb(child, "MemoryUtilization");
    assert!(
        (utilization - max * 100.0 / 128.0).abs() < 0.01,
        "MemoryUtilization is of the environment's figure: {child}"
    );
    // A peak stays the peak.
    assert!(mb(&records[2], "MaxMemoryUsed") >= max);
    (records, out.run.memory_peak_kb)
}

/// In the environment's memory cgroup (the simulator makes one limited to the function's memory
/// size, as Lambda does): its peak, never above what the cgroup says when the environment ends.
#[test]
fn a_child_process_memory_is_in_the_environment_figure_from_its_cgroup() {
    let (records, peak_kb) = child_memory(true);
    let cgroup_mb = peak_kb
        .expect("the simulator read its cgroup")
        .div_ceil(1024) as f64;
    let last = records[2]["MaxMemoryUsed"].as_f64().unwrap();
    assert!(
        last <= cgroup_mb,
        "MaxMemoryUsed {last} MB above the cgroup's own peak {cgroup_mb} MB"
    );
}

/// Without that cgroup: the process's peak plus the largest among the children it waited for.
#[test]
fn a_child_process_memory_is_in_the_environment_figure_without_a_cgroup() {
    let (records, peak_kb) = child_memory(false);
    assert_eq!(peak_kb, None);
    // The runtime's later growth is not added to the child's peak: they never ran together.
    let last = &records[4];
    let (max, own) = (
        last["MaxMemoryUsed"].as_f64().unwrap(),
        last["ProcessMaxMemoryUsed"].as_f64().unwrap_or(0.0),
    );
    assert!(own >= 40.0 && max < own + 64.0, "{last}");
    // Before any child, the figure is the process's own.
    assert!(
        records[0].get("ProcessMaxMemoryUsed").is_none(),
        "{}",
        records[0]
    );
}
