//! Safe by construction: once a process became a runtime (its first Runtime API connection
//! reserved everything metering needs), nothing of the library allocates or frees. A test
//! build of the library whose allocator refuses every allocation and aborts at every free
//! from then on (`--features alloc-guard`) runs the real Python and Node.js clients' loops,
//! each compared with the same run without the library, every record intact. The same build
//! refuses allocations while the environment's root gets ready at its first fork (Python's
//! Lambda Managed Instances runtime forks its workers there).

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::json;
use support::scenario::{Scenario, by_request_id, standard_mix};
use support::*;

/// The scenario with the failing-allocator build, and a check that it never said so.
fn guarded(s: Scenario) -> Outcome {
    let out = s.with_library(alloc_guard_library()).check();
    assert!(
        !out.run.stderr.contains("alloc-guard") && !out.run.stderr.contains("memory allocation"),
        "the library allocated after the process became a runtime:\n{}",
        out.run.stderr
    );
    out
}

#[test]
fn python_loop_with_every_allocation_refused() {
    let mut payloads = standard_mix();
    payloads.extend([
        json!({"action": "fail", "type": "KeyError"}),
        json!({"action": "big", "bytes": 1_000_000}),
        json!({"action": "ok", "reconnect": true}),
    ]);
    let out = guarded(Scenario::python(payloads.clone()));
    assert_eq!(out.records().len(), payloads.len());
}

#[test]
fn python_managed_instances_root_forks_its_workers_with_every_allocation_refused() {
    // The runtime process forks its workers: at its first fork (which a host may make in a
    // signal handler that interrupted malloc) the library gets ready without allocating.
    let payloads: Vec<serde_json::Value> = (0..12).map(|_| json!({"action": "ok"})).collect();
    let layer = Layer::with_library(&alloc_guard_library());
    let cmd = python_command("handler.dispatch");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let out = run_with(
        lambda_sim::Config {
            events: events(&payloads),
            max_concurrency: 4,
            ..lambda_sim::Config::default()
        },
        &cmd,
        Some(&layer.wrapper()),
        &[("LAMBDA_METER_BATCH", "10")],
        &python_function_dir(),
    );
    assert!(
        !out.run.stderr.contains("alloc-guard") && !out.run.stderr.contains("memory allocation"),
        "the library allocated where it must not:\n{}",
        out.run.stderr
    );
    assert!(
        !out.run.stderr.contains("lambda-meter"),
        "{}",
        out.run.stderr
    );
    assert_eq!(by_request_id(&out.records()).len(), payloads.len());
}

#[test]
fn python_loop_with_custom_metrics_and_every_allocation_refused() {
    let custom = |calls: serde_json::Value| json!({"action": "custom", "calls": calls});
    let payloads = vec![
        custom(json!([
            ["add_metric", "Orders", "Count", 2],
            ["add_dimension", "tenant", "acme"],
            ["add_metadata", "order", {"id": 7}]
        ])),
        json!({"action": "ok"}),
        custom(json!([
            ["add_metric", "Orders", "Count", 1],
            ["add_metric", "Orders", "Count", 3]
        ])),
    ];
    // Values given during init (before the first Runtime API connection) too.
    let shim = root().join("layer/shims/python").display().to_string();
    let out = guarded(
        Scenario::python(payloads)
            .env("PYTHONPATH", &shim)
            .env("LAMBDA_METER_TEST_AT_INIT", "1"),
    );
    let records = out.records();
    assert_eq!(records[0]["InitMetric"], 1.0);
    assert_eq!(records[0]["Orders"], 2.0);
    assert_eq!(records[0]["tenant"], "acme");
    assert_eq!(records[0]["order"], json!({"id": 7}));
    assert_eq!(records[2]["Orders"], json!([1.0, 3.0]));
}

#[test]
fn node_native_client_with_every_allocation_refused() {
    guarded(Scenario::node("index.handler"));
}

#[test]
fn node_javascript_client_with_every_allocation_refused() {
    guarded(
        Scenario::node("index.handler").env("AWS_LAMBDA_NODEJS_USE_ALTERNATIVE_CLIENT_1", "true"),
    );
}

#[test]
fn node_streaming_with_every_allocation_refused() {
    let mut s = Scenario::node("streaming.handler");
    s.payloads = vec![
        json!({"action": "ok"}),
        json!({"action": "big", "bytes": 300_000}),
        json!({"action": "fail", "type": "StreamBroke"}),
        json!({"action": "ok", "reconnect": true}),
    ];
    guarded(s);
}
