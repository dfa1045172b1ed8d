//! The CloudWatch bill on real runs: the default record declares at most 8 custom metrics and
//! weighs at most 700 bytes, nothing that was queryable is gone, and batched records
//! (`LAMBDA_METER_BATCH`) count every invoke once, without ever holding a record where a
//! frozen environment could lose it.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use support::scenario::{assert_environment_once, assert_same_results, by_request_id};
use support::*;

fn demo_payloads() -> Vec<Value> {
    serde_json::from_str(
        &std::fs::read_to_string(python_function_dir().join("demo-events.json")).unwrap(),
    )
    .unwrap()
}

fn python(config: lambda_sim::Config, env: &[(&str, &str)], wrapped: bool) -> Outcome {
    let layer = Layer::new();
    let cmd = python_command("handler.dispatch");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    run_with(
        config,
        &cmd,
        wrapped.then(|| layer.wrapper()).as_deref(),
        env,
        &python_function_dir(),
    )
}

fn config(payloads: &[Value]) -> lambda_sim::Config {
    lambda_sim::Config {
        events: events(payloads),
        ..lambda_sim::Config::default()
    }
}

/// The EMF lines of stdout as written (with their line break, as CloudWatch stores them).
fn emf_lines(out: &Outcome) -> Vec<String> {
    out.run
        .stdout
        .lines()
        .filter(|l| !lambda_sim::summary::emf_records(l).is_empty())
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The names lambda-meter's own directive (the first) declares over all `records`.
fn declared(records: &[Value]) -> BTreeSet<String> {
    records
        .iter()
        .flat_map(|r| {
            r["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["Name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_default_record_declares_at_most_8_metrics_and_weighs_at_most_700_bytes() {
    let payloads = demo_payloads();
    let out = python(config(&payloads), &[], true);
    let raw = out.raw_records();
    assert_eq!(raw.len(), payloads.len());
    assert_valid_emf(&raw);
    let names = declared(&raw);
    assert!(names.len() <= 8, "{names:?}");
    for free in ["Duration", "Errors"] {
        assert!(!names.contains(free), "{free} is free in AWS/Lambda");
    }
    // Every record but the stream's first (it carries the environment's properties) and the
    // one with the function's own metric is at most 700 bytes.
    let lines = emf_lines(&out);
    let mut measured = 0;
    for (line, r) in lines.iter().zip(&raw) {
        let own_only = r["_aws"]["CloudWatchMetrics"].as_array().unwrap().len() == 1;
        if own_only && r.get("runtime").is_none() {
            measured += 1;
            assert!(line.len() <= 700, "{} bytes: {line}", line.len());
        }
    }
    assert!(
        measured >= payloads.len() - 3,
        "{measured} records measured"
    );
    assert_environment_once(&raw);
    // Nothing that was queryable is gone: every value is on every record, and the
    // environment's properties are the stream's.
    for r in out.records() {
        for k in [
            "Duration",
            "ColdStart",
            "Errors",
            "Timeouts",
            "MaxMemoryUsed",
            "MemoryUtilization",
            "CpuTime",
            "RequestBytes",
            "ResponseBytes",
            "requestId",
            "traceId",
            "functionVersion",
            "memorySize",
            "runtime",
            "initType",
        ] {
            assert!(r.get(k).is_some(), "{k} missing: {r}");
        }
    }
}

/// awslambdaric's Lambda Managed Instances mode on four workers with `LAMBDA_METER_BATCH=10`,
/// stopped with SIGTERM (to the runtime's process alone with `term_runtime_only`), run without
/// and with the layer: the same results, no warning, valid records. The metered run.
fn managed_instances(payloads: &[Value], term_runtime_only: bool) -> Outcome {
    let lmi = |wrapped: bool| {
        let mut cfg = config(payloads);
        cfg.max_concurrency = 4;
        cfg.term_runtime_only = term_runtime_only;
        python(cfg, &[("LAMBDA_METER_BATCH", "10")], wrapped)
    };
    let plain = lmi(false);
    let metered = lmi(true);
    assert_same_results(&plain, &metered);
    assert!(
        !metered.run.stderr.contains("lambda-meter"),
        "{}",
        metered.run.stderr
    );
    assert_valid_emf(&metered.raw_records());
    metered
}

#[test]
fn in_lambdas_default_model_no_record_is_held_across_a_next() {
    // The simulator freezes the runtime between invokes, as Lambda does: had a record been
    // held across a /next, it would wait in a frozen process (and die with it on shutdown).
    let payloads: Vec<Value> = (0..6).map(|_| json!({"action": "ok"})).collect();
    let mut cfg = config(&payloads);
    cfg.freeze_between = Some(Duration::from_millis(200));
    let out = python(cfg, &[("LAMBDA_METER_BATCH", "10")], true);
    let raw = out.raw_records();
    assert_eq!(raw.len(), payloads.len(), "a record each");
    assert!(raw.iter().all(|r| r.get("invokes").is_none()));
    assert_eq!(by_request_id(&raw).len(), payloads.len());
}

#[test]
fn batched_records_of_lambda_managed_instances_count_every_invoke_once() {
    // Four worker processes (awslambdaric's multi-concurrency), invokes at once, and at the
    // end the SIGTERM Lambda Managed Instances stop a runtime with.
    let mut payloads = Vec::new();
    for i in 0..48 {
        payloads.push(match i % 6 {
            0 => json!({"action": "sleep", "ms": 30}),
            3 => json!({"action": "fail", "type": "OrderNotFound"}),
            _ => json!({"action": "ok"}),
        });
    }
    let metered = managed_instances(&payloads, false);
    let raw = metered.raw_records();
    let batched: Vec<&Value> = raw.iter().filter(|r| r.get("invokes").is_some()).collect();
    assert!(!batched.is_empty(), "no batch in {} records", raw.len());
    for b in &batched {
        let n = b["invokes"].as_u64().unwrap() as usize;
        assert!((2..=10).contains(&n), "{b}");
        // Every declared metric is an array of at most 100 values; those every invoke has
        // hold one value per invoke, so SampleCount counts the invokes.
        for m in b["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
        {
            let values = b[m["Name"].as_str().unwrap()].as_array().unwrap();
            assert!(!values.is_empty() && values.len() <= 100);
        }
        for k in ["ColdStart", "Timeouts", "Errors", "Duration", "CpuTime"] {
            assert_eq!(b[k].as_array().unwrap().len(), n, "{k} of {b}");
        }
        assert_eq!(b["requestId"].as_array().unwrap().len(), n);
    }
    // Counts add up: one record (or one batch entry) per invoke, ColdStart's samples are
    // the invokes, and the errors are the failing events.
    let each = metered.records();
    assert_eq!(by_request_id(&each).len(), payloads.len());
    let samples: usize = raw
        .iter()
        .map(|r| r["ColdStart"].as_array().map_or(1, Vec::len))
        .sum();
    assert_eq!(samples, payloads.len());
    let errors = each.iter().filter(|r| r["Errors"] == 1.0).count();
    assert_eq!(errors, payloads.len() / 6);
    for r in each.iter().filter(|r| r["Errors"] == 1.0) {
        assert_eq!(r["errorType"], "OrderNotFound", "{r}");
    }
    // Fewer bytes than a record each.
    let bytes: usize = emf_lines(&metered).iter().map(String::len).sum();
    let one_each = python(config(&payloads[..12]), &[], true);
    let single: usize = emf_lines(&one_each).iter().map(String::len).sum();
    assert!(
        (bytes as f64 / payloads.len() as f64) < (single as f64 / 12.0),
        "{bytes} bytes for {} invokes batched; {single} for 12 alone",
        payloads.len()
    );
}

#[test]
fn records_held_by_workers_are_written_when_a_shutdown_signals_only_the_runtime() {
    // Python's Lambda Managed Instances runtime: a root process forks four workers, each
    // holding its records for a batch. Here SIGTERM reaches the root alone, and the workers
    // are killed once it is gone, with no signal they could write on: the root's end writes
    // what they hold (with fewer than 10 invokes a worker, nothing went out before).
    let payloads: Vec<Value> = (0..24)
        .map(|i| match i % 4 {
            0 => json!({"action": "sleep", "ms": 20}),
            _ => json!({"action": "ok"}),
        })
        .collect();
    let metered = managed_instances(&payloads, true);
    let each = metered.records();
    assert_eq!(each.len(), payloads.len(), "one record an invoke");
    assert_eq!(by_request_id(&each).len(), payloads.len());
}

#[test]
fn the_opt_in_invocations_count_is_one_a_record_and_absent_by_default() {
    let payloads: Vec<Value> = (0..4).map(|_| json!({"action": "ok"})).collect();
    let out = python(
        config(&payloads),
        &[("LAMBDA_METER_METRICS", "default,Invocations")],
        true,
    );
    let raw = out.raw_records();
    assert_eq!(raw.len(), payloads.len());
    assert_valid_emf(&raw);
    for r in &raw {
        assert!(
            declared(std::slice::from_ref(r)).contains("Invocations"),
            "{r}"
        );
        assert_eq!(r["Invocations"], 1, "{r}");
    }
    let plain = python(config(&payloads), &[], true);
    assert!(
        plain
            .raw_records()
            .iter()
            .all(|r| r.get("Invocations").is_none())
    );
}
