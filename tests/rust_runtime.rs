//! Rust: functions on the real `lambda_runtime` crate (hyper on tokio, which waits with
//! edge-triggered epoll), buffered and streaming (tests/functions/rust).

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
use support::scenario::{Launch, Scenario};
use support::*;

fn binary(name: &str) -> PathBuf {
    let bin = profile_dir().join(name);
    assert!(
        bin.is_file(),
        "{} is missing: build the workspace first (make test does)",
        bin.display()
    );
    bin
}

fn scenario(name: &str) -> Scenario {
    let mut s = Scenario::new(vec![binary(name).display().to_string()], root());
    s.compare_output = true;
    s
}

#[test]
fn rust_lambda_runtime_buffered() {
    scenario("rust-buffered").check();
}

#[test]
fn rust_lambda_runtime_buffered_adversarial_transport() {
    scenario("rust-buffered").tiny_writes().check();
}

/// On `provided.al2023` Lambda starts `bootstrap` itself and never runs an exec wrapper: the
/// two ways the README gives such functions.
#[test]
fn rust_lambda_runtime_with_ld_preload_in_the_functions_environment() {
    scenario("rust-buffered").launched(Launch::Preload).check();
}

#[test]
fn rust_lambda_runtime_with_a_bootstrap_that_execs_the_wrapper() {
    let out = scenario("rust-buffered")
        .launched(Launch::Bootstrap)
        .check();
    for r in out.records() {
        assert_eq!(r["runtime"], "rust-buffered", "the program, not the script");
    }
}

fn streaming() -> Scenario {
    let mut s = scenario("rust-streaming");
    s.payloads = vec![
        json!({"action": "ok"}),
        json!({"action": "big", "bytes": 300_000}),
        json!({"action": "big", "bytes": 2_000_000}),
        json!({"action": "ok", "reconnect": true}),
        json!({"action": "echo", "pad": "p".repeat(300_000)}),
    ];
    s
}

#[test]
fn rust_lambda_runtime_streaming() {
    let out = streaming().check();
    assert!(out.sim.requests().iter().any(|r| r.chunked));
}

#[test]
fn rust_lambda_runtime_streaming_adversarial_transport() {
    streaming().tiny_writes().check();
}

/// lambda_runtime 1.5 sends a mid-stream error as body data that reads like trailers, not as
/// HTTP trailers, so the Runtime API does not see an error. lambda-meter reports what the
/// Runtime API sees. If the crate starts sending real trailers, this test says so.
#[test]
fn rust_mid_stream_error_is_body_data_for_the_runtime_api_too() {
    let mut s = scenario("rust-streaming");
    s.payloads = vec![
        json!({"action": "ok"}),
        json!({"action": "fail", "type": "x"}),
    ];
    let out = run(
        events(&s.payloads),
        &[s.command[0].as_str()],
        Some(&Layer::new().wrapper()),
        &[],
        &root(),
    );
    let results = out.sim.results();
    let failed = results[1].as_ref().unwrap();
    assert!(
        failed.trailers.is_empty(),
        "real trailers now: update the scenario expectations"
    );
    assert!(
        String::from_utf8_lossy(&failed.body)
            .contains("Lambda-Runtime-Function-Error-Type: Runtime.StreamError")
    );
    let records = out.records();
    assert_eq!(records.len(), 2);
    let rec = records
        .iter()
        .find(|r| r["requestId"] == failed.request_id)
        .unwrap();
    assert_eq!(rec["Errors"], 0.0);
    assert_eq!(
        rec["ResponseBytes"].as_f64().unwrap() as usize,
        failed.body.len()
    );
}
