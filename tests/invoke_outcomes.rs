//! Whatever the function does, each invoke gets its one record, with the outcome Lambda gives
//! it: errors whose stack trace fills a large request header (the X-Ray error cause) and
//! results the Runtime API refuses (`413`), with the real Python and Node.js runtime clients,
//! each run compared with the same run without the library.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use lambda_sim::Outcome as Ended;
use serde_json::{Value, json};
use std::path::Path;
use support::compare::ending;
use support::scenario::by_request_id;
use support::*;

/// The client a run uses.
#[derive(Clone, Copy, Debug)]
enum Client {
    Python,
    NodeNative,
    NodeJavaScript,
}

impl Client {
    fn command(self) -> Vec<String> {
        match self {
            Client::Python => python_command("handler.dispatch"),
            Client::NodeNative | Client::NodeJavaScript => node_command("index.handler"),
        }
    }

    fn dir(self) -> std::path::PathBuf {
        match self {
            Client::Python => python_function_dir(),
            Client::NodeNative | Client::NodeJavaScript => node_function_dir(),
        }
    }

    fn env(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Client::NodeJavaScript => vec![("AWS_LAMBDA_NODEJS_USE_ALTERNATIVE_CLIENT_1", "true")],
            _ => vec![],
        }
    }
}

fn run_client(client: Client, payloads: &[Value], wrapper: Option<&Path>) -> Outcome {
    let command = client.command();
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    run_until(
        lambda_sim::Config {
            events: events(payloads),
            ..lambda_sim::Config::default()
        },
        &command,
        wrapper,
        &client.env(),
        &client.dir(),
        std::time::Duration::from_secs(60),
    )
}

/// Runs `payloads` without and with the library: the runtime must see the same, and every
/// invoke the simulator saw end must have one record that says how. Returns the records by
/// request id.
fn check(client: Client, payloads: &[Value]) -> std::collections::HashMap<String, Value> {
    let layer = Layer::new();
    let plain = run_client(client, payloads, None);
    let metered = run_client(client, payloads, Some(&layer.wrapper()));
    assert_eq!(
        plain.invoke_endings(),
        metered.invoke_endings(),
        "{client:?}: the invokes ended differently with the library; stderr:\n{}",
        metered.run.stderr
    );
    assert_eq!(
        ending(&plain),
        ending(&metered),
        "{client:?}: the runtime ended differently"
    );
    let raw = metered.raw_records();
    assert_valid_emf(&raw);
    let records = metered.records();
    let by_id = by_request_id(&records);
    assert_eq!(
        by_id.len(),
        records.len(),
        "{client:?}: one record per invoke"
    );
    for (i, result) in metered.sim.results().into_iter().enumerate() {
        let Some(result) = result else { continue };
        let r = by_id.get(&result.request_id).unwrap_or_else(|| {
            panic!(
                "{client:?}: invoke {i} ({:?}) has no record; stdout:\n{}\nstderr:\n{}",
                result.outcome, metered.run.stdout, metered.run.stderr
            )
        });
        let errored = result.outcome != Ended::Response;
        assert_eq!(
            r["Errors"].as_f64(),
            Some(f64::from(u8::from(errored))),
            "{client:?}: invoke {i} ended {:?}: {r}",
            result.outcome
        );
        assert_eq!(
            r["Timeouts"].as_f64(),
            Some(f64::from(u8::from(result.outcome == Ended::Timeout))),
            "{client:?}: invoke {i}: {r}"
        );
        if let Ended::Error {
            error_type: Some(t),
        } = &result.outcome
            && t.starts_with("Function.")
        {
            // A failure the Runtime API decided: the record names it as Lambda does.
            assert_eq!(r["errorType"], t.as_str(), "{client:?}: invoke {i}");
        }
    }
    by_id
}

fn id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// Errors whose trace is larger than any header line the library keeps: 20 KB and 200 KB
/// messages, a 300-frame traceback.
fn big_errors() -> Vec<Value> {
    vec![
        json!({"action": "ok"}),
        json!({"action": "fail", "type": "ValueError", "message_bytes": 20_000}),
        json!({"action": "ok"}),
        json!({"action": "fail", "type": "KeyError", "depth": 300}),
        json!({"action": "ok"}),
        json!({"action": "fail", "type": "OrderNotFound", "message_bytes": 200_000, "depth": 50}),
        json!({"action": "ok"}),
    ]
}

fn check_big_errors(client: Client) {
    let records = check(client, &big_errors());
    assert_eq!(records.len(), 7, "{client:?}: {records:?}");
    let types = [(2, "ValueError"), (4, "KeyError"), (6, "OrderNotFound")];
    for (n, t) in types {
        let r = &records[&id(n)];
        assert_eq!(r["errorType"], t, "{client:?}: {r}");
    }
}

#[test]
fn python_errors_of_any_size_keep_their_type_and_metering_goes_on() {
    check_big_errors(Client::Python);
}

#[test]
fn node_native_errors_of_any_size_keep_their_type_and_metering_goes_on() {
    check_big_errors(Client::NodeNative);
}

#[test]
fn node_javascript_errors_of_any_size_keep_their_type_and_metering_goes_on() {
    check_big_errors(Client::NodeJavaScript);
}

/// A result over the 6 MB Lambda takes, between two that fit.
fn too_large() -> Vec<Value> {
    vec![
        json!({"action": "ok"}),
        json!({"action": "big", "bytes": 7_000_000}),
        json!({"action": "ok"}),
    ]
}

fn check_too_large(client: Client) {
    let records = check(client, &too_large());
    let r = records
        .get(&id(2))
        .unwrap_or_else(|| panic!("{client:?}: the refused invoke has no record: {records:?}"));
    assert_eq!(r["Errors"], 1.0, "{client:?}: {r}");
    assert_eq!(
        r["errorType"], "Function.ResponseSizeTooLarge",
        "{client:?}: {r}"
    );
}

#[test]
fn python_a_result_the_runtime_api_refuses_is_an_error() {
    check_too_large(Client::Python);
}

#[test]
fn node_native_a_result_the_runtime_api_refuses_is_an_error() {
    check_too_large(Client::NodeNative);
}

#[test]
fn node_javascript_a_result_the_runtime_api_refuses_is_an_error() {
    check_too_large(Client::NodeJavaScript);
}
