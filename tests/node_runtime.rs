//! Node.js: the real `aws-lambda-ric` from npm (native client and JavaScript client, buffered
//! and streaming handlers, an init error) and a plain `node:http` runtime loop, on the system's
//! Node.js (20, with `aws-lambda-ric` 3.3.0, its last release for it); and `aws-lambda-ric` 4
//! on the Node.js 22 and 24 builds Lambda runs, on Lambda Managed Instances too.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::json;
use std::path::PathBuf;
use support::scenario::Scenario;
use support::*;

fn node_dir() -> PathBuf {
    node_function_dir()
}

#[test]
fn node_native_client() {
    let out = Scenario::node("index.handler").check();
    for r in out.records() {
        assert_eq!(r["runtime"], "node");
    }
}

#[test]
fn node_native_client_adversarial_transport() {
    Scenario::node("index.handler").tiny_writes().check();
}

#[test]
fn node_javascript_client() {
    Scenario::node("index.handler")
        .env("AWS_LAMBDA_NODEJS_USE_ALTERNATIVE_CLIENT_1", "true")
        .check();
}

#[test]
fn node_javascript_client_adversarial_transport() {
    Scenario::node("index.handler")
        .env("AWS_LAMBDA_NODEJS_USE_ALTERNATIVE_CLIENT_1", "true")
        .tiny_writes()
        .check();
}

fn streaming_scenario() -> Scenario {
    let mut s = Scenario::node("streaming.handler");
    s.payloads = vec![
        json!({"action": "ok"}),
        json!({"action": "big", "bytes": 300_000}),
        json!({"action": "fail", "type": "StreamBroke"}),
        json!({"action": "big", "bytes": 2_000_000}),
        json!({"action": "ok", "reconnect": true}),
        json!({"action": "fail", "type": "TypeError"}),
        json!({"action": "echo", "pad": "p".repeat(300_000)}),
        json!({"action": "ok"}),
    ];
    s
}

#[test]
fn node_streaming_responses_with_error_trailers() {
    let out = streaming_scenario().check();
    // The streamed results really were chunked, and the failures really were trailers.
    let reqs = out.sim.requests();
    assert!(reqs.iter().any(|r| r.chunked), "no chunked result was sent");
    let results = out.sim.results();
    let with_trailers = results
        .iter()
        .flatten()
        .filter(|r| !r.trailers.is_empty())
        .count();
    assert_eq!(with_trailers, 2);
}

#[test]
fn node_streaming_adversarial_transport() {
    streaming_scenario().tiny_writes().check();
}

#[test]
fn node_init_error_runs_as_without_the_layer() {
    let dir = node_dir();
    let cmd = node_command("init-error.handler");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let env = [("LAMBDA_TASK_ROOT", dir.to_str().unwrap())];
    let layer = Layer::new();
    let plain = run(events(&[json!({})]), &cmd, None, &env, &dir);
    let metered = run(
        events(&[json!({})]),
        &cmd,
        Some(&layer.wrapper()),
        &env,
        &dir,
    );
    let (a, b) = (
        plain.sim.init_error().unwrap(),
        metered.sim.init_error().unwrap(),
    );
    assert_eq!(a.body, b.body);
    assert_eq!(
        a.header("lambda-runtime-function-error-type"),
        b.header("lambda-runtime-function-error-type")
    );
    assert!(String::from_utf8_lossy(&a.body).contains("TypeError"));
    assert!(
        !metered.run.stderr.contains("lambda-meter"),
        "{}",
        metered.run.stderr
    );
    // One record: the init error, with its type and how long init ran.
    let records = metered.records();
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["InitErrors"], 1.0);
    assert!(r["InitDuration"].as_f64().unwrap() > 0.0);
    let sent: serde_json::Value = serde_json::from_slice(&b.body).unwrap();
    assert_eq!(r["errorType"], sent["errorType"]);
    assert!(r.get("requestId").is_none() && r.get("Duration").is_none());
    assert_valid_emf(&records);
}

#[test]
fn node_http_runtime_loop() {
    Scenario::new(vec!["node".into(), "http-loop.mjs".into()], node_dir()).check();
}

#[test]
fn node_http_runtime_loop_adversarial_transport() {
    Scenario::new(vec!["node".into(), "http-loop.mjs".into()], node_dir())
        .tiny_writes()
        .check();
}

/// The Node.js build Lambda's `nodejs<version>.x` runtime runs (the official x64 build, from npm:
/// an optional dependency of the test functions, installed by tests/setup.sh); `None` on a
/// machine of another architecture, which npm skips it on.
fn lambda_node(version: u32) -> Option<String> {
    let bin = node_dir().join(format!("node_modules/node{version}/bin/node"));
    if !cfg!(target_arch = "x86_64") {
        eprintln!("no Node.js {version} build for this architecture on npm: not run");
        return None;
    }
    assert!(
        bin.is_file(),
        "{} is missing: run `make test` (tests/setup.sh)",
        bin.display()
    );
    Some(bin.display().to_string())
}

/// `aws-lambda-ric` 4 (Node.js 22 and later) on `node`, with `handler` in `_HANDLER`, where
/// Lambda names it (this client reads no argument).
fn ric4_scenario(node: String, handler: &str) -> Scenario {
    let bin = node_dir().join("node_modules/aws-lambda-ric-4/index.mjs");
    assert!(
        bin.is_file(),
        "{} is missing: run `make test` (tests/setup.sh)",
        bin.display()
    );
    Scenario::new(vec![node, bin.display().to_string()], node_dir())
        .env("LAMBDA_TASK_ROOT", node_dir().to_str().unwrap())
        .env("_HANDLER", handler)
}

/// `aws-lambda-ric` 4 on Node.js `version` as Lambda runs it, with the client it picks there and
/// with its JavaScript client: the standard mix, each run with and without the library.
fn on_lambda_node(version: u32) {
    let Some(node) = lambda_node(version) else {
        return;
    };
    for javascript in [false, true] {
        let mut s = ric4_scenario(node.clone(), "index.handler");
        if javascript {
            s = s.env("AWS_LAMBDA_NODEJS_USE_ALTERNATIVE_CLIENT_1", "true");
        }
        let out = s.check();
        for r in out.records() {
            assert_eq!(r["runtime"], "node", "{r}");
        }
    }
}

#[test]
fn node22_as_lambda_runs_it() {
    on_lambda_node(22);
}

#[test]
fn node24_as_lambda_runs_it() {
    on_lambda_node(24);
}

/// Lambda Managed Instances on Node.js as AWS documents them: `aws-lambda-ric` 4 starts
/// `AWS_LAMBDA_MAX_CONCURRENCY` worker threads, and each interleaves invokes on its event loop
/// (it asks for the next event as soon as one arrives). Each invoke adds a value, waits while
/// others run, and adds another: both must reach its own record (the layer's shim names the
/// invoke from the client's invoke store), and records of invokes that overlapped say how many
/// were open at once, their `CpuTime` being the process's. Compared with the same run without
/// the library (the shim on `NODE_PATH` by hand, where it does nothing).
#[test]
fn node_on_managed_instances_interleaves_invokes_on_worker_threads() {
    let Some(node) = lambda_node(24) else {
        return;
    };
    // Kept while the runs last: the plain run finds the shim in it.
    let layer = Layer::new();
    let shim = layer.node_path();
    let mut s = ric4_scenario(node, "index.handler").env("NODE_PATH", &shim);
    s.payloads = (0..12)
        .map(|i| {
            json!({
                "action": "custom",
                "calls": [["putMetric", "Before", i, "Count"]],
                "ms": 100,
                "after": [["putMetric", "After", i * 10, "Count"]],
            })
        })
        .collect();
    s.max_concurrency = 3;
    let out = s.check();
    let records = out.records();
    let mut overlapped = 0;
    for (i, event) in s.payloads.iter().enumerate() {
        let id = format!("00000000-0000-4000-8000-{:012}", i + 1);
        let rec = records
            .iter()
            .find(|r| r["requestId"] == id.as_str())
            .unwrap_or_else(|| panic!("no record of {id} (event {event})"));
        assert_eq!(rec["Before"], json!(i as f64), "{rec}");
        assert_eq!(rec["After"], json!((i * 10) as f64), "{rec}");
        assert!(rec["CpuTime"].as_f64().is_some(), "{rec}");
        if let Some(n) = rec["ConcurrentInvokes"].as_f64() {
            assert!((2.0..=3.0).contains(&n), "{rec}");
            overlapped += 1;
        }
    }
    assert!(overlapped > 0, "no invoke overlapped another: {records:?}");
}
