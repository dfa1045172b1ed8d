//! A Runtime API that misbehaves: a reset in the middle of a `/next` answer, a truncated body,
//! a `500`, bytes that are not HTTP, 20 KB of headers, a lying `Content-Length`, a deadline in
//! the past, hostile request ids, a server that never answers. Each runs the real Python client
//! through the wrapper and without it: the runtime must behave exactly the same (results,
//! requests, how it ended, its own output), the library may print at most one warning, and
//! every invoke that got a result has exactly one record.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use lambda_sim::{Config, Event, Fault};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;
use support::*;

/// Three plain events around the faulty one (the second).
fn around(fault: Fault) -> Vec<Event> {
    let mut evs = events(&[
        json!({"action": "ok"}),
        json!({"action": "echo", "pad": "p".repeat(500)}),
        json!({"action": "ok"}),
    ]);
    evs[1].fault = Some(fault);
    evs
}

fn run_both(evs: Vec<Event>, limit: Duration) -> (Outcome, Outcome) {
    let cmd = python_command("handler.dispatch");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let layer = Layer::new();
    let run = |wrapped: bool| {
        run_until(
            Config {
                events: evs.clone(),
                restart_on_exit: true,
                timeout: Duration::from_secs(20),
                ..Config::default()
            },
            &cmd,
            wrapped.then_some(layer.wrapper().as_path()),
            &[],
            &python_function_dir(),
            limit,
        )
    };
    (run(false), run(true))
}

/// The comparisons every fault shares; returns the metered run's records by request id.
fn check_same(plain: &Outcome, metered: &Outcome) -> HashMap<String, Value> {
    assert_eq!(
        plain.run.idle, metered.run.idle,
        "both runs end the same way"
    );
    let ends = |o: &Outcome| -> Vec<(Option<i32>, Option<i32>)> {
        o.run.exits.iter().map(|s| (s.code(), s.signal())).collect()
    };
    assert_eq!(ends(plain), ends(metered), "how the runtimes ended");
    assert_eq!(plain.run.starts, metered.run.starts);
    let (a, b) = (plain.sim.results(), metered.sim.results());
    for (x, y) in a.iter().zip(&b) {
        match (x, y) {
            (Some(x), Some(y)) => {
                assert_eq!(x.outcome, y.outcome, "outcome of {}", x.request_id);
                assert!(x.body == y.body, "result of {}", x.request_id);
            }
            (None, None) => {}
            _ => panic!("one run has a result the other has not: {x:?} / {y:?}"),
        }
    }
    support::scenario::assert_same_requests(plain, metered);
    // The runtime's own output, the library's lines aside and the client's log timestamps
    // (13-digit epoch milliseconds) made equal.
    let own = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|l| !l.starts_with("lambda-meter: "))
            .map(|l| without_timestamps(&l))
            .collect()
    };
    let stderr = |o: &Outcome| o.run.stderr.lines().map(str::to_string).collect();
    assert_eq!(
        own(stderr(plain)),
        own(stderr(metered)),
        "the runtime's stderr"
    );
    assert_eq!(
        own(plain.other_stdout()),
        own(metered.other_stdout()),
        "the runtime's stdout"
    );
    let warnings = metered
        .run
        .stderr
        .lines()
        .filter(|l| l.starts_with("lambda-meter: "))
        .count();
    assert!(
        warnings <= 1,
        "at most one warning:\n{}",
        metered.run.stderr
    );
    let records = metered.records();
    assert_valid_emf(&records);
    let mut by_id: HashMap<String, Value> = HashMap::new();
    for r in records {
        let id = r["requestId"].as_str().expect("requestId").to_string();
        assert!(
            by_id.insert(id.clone(), r).is_none(),
            "two records for {id}"
        );
    }
    // Records carry request ids bounded to 256 characters.
    let answered: Vec<String> = b
        .iter()
        .flatten()
        .map(|r| r.request_id.chars().take(256).collect())
        .collect();
    for id in &answered {
        assert!(by_id.contains_key(id), "no record for {id}");
    }
    assert_eq!(
        by_id.len(),
        answered.len(),
        "a record only for invokes with a result"
    );
    by_id
}

/// `line` with every run of 10 or more digits (a timestamp) replaced by `#`.
fn without_timestamps(line: &str) -> String {
    let mut out = String::new();
    let mut digits = String::new();
    for c in line.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if digits.len() >= 10 {
            out.push('#');
        } else {
            out.push_str(&digits);
        }
        digits.clear();
        out.push(c);
    }
    out.pop();
    out
}

fn check_fault(fault: Fault) -> (Outcome, HashMap<String, Value>) {
    let (plain, metered) = run_both(around(fault), Duration::from_secs(60));
    assert!(
        plain.run.idle,
        "every event was answered in the end ({fault:?})"
    );
    let by_id = check_same(&plain, &metered);
    (metered, by_id)
}

#[test]
fn reset_in_the_middle_of_a_next_answer() {
    check_fault(Fault::ResetMidAnswer);
}

#[test]
fn truncated_next_body() {
    check_fault(Fault::TruncatedBody);
}

#[test]
fn server_error_on_next() {
    check_fault(Fault::ServerError);
}

#[test]
fn a_next_answer_that_is_not_http() {
    check_fault(Fault::NotHttp);
}

#[test]
fn headers_over_16_kib() {
    // Legal HTTP: the connection must still be followed, and every invoke recorded.
    let (out, by_id) = check_fault(Fault::HugeHeaders);
    assert_eq!(by_id.len(), 3);
    assert!(
        !out.run.stderr.contains("lambda-meter: "),
        "{}",
        out.run.stderr
    );
}

#[test]
fn a_lying_content_length() {
    check_fault(Fault::LyingContentLength);
}

#[test]
fn a_deadline_in_the_past() {
    let (_, by_id) = check_fault(Fault::PastDeadline);
    let id = "00000000-0000-4000-8000-000000000002";
    assert_eq!(by_id[id]["Timeouts"], 1.0, "the invoke was already late");
    assert_eq!(by_id[id]["errorType"], "Sandbox.Timedout");
}

#[test]
fn hostile_request_ids() {
    let quoted = format!("\"quoted\\\\id{}", "x".repeat(2_000));
    let mut evs = events(&[
        json!({"action": "ok"}),
        json!({"action": "ok"}),
        json!({"action": "ok"}),
        json!({"action": "ok"}),
        json!({"action": "ok"}),
    ]);
    evs[1].request_id = Some(quoted.clone());
    // A raw line break inside the header value: the rest reads as a line without a colon.
    evs[3].request_id = Some("split\r\nacross lines".to_string());
    let (plain, metered) = run_both(evs, Duration::from_secs(60));
    assert!(plain.run.idle && metered.run.idle);
    let results = metered.sim.results();
    // The runtime itself cannot read the split answer and exits (Lambda: Runtime.ExitError);
    // lambda-meter stops following that connection, with its one warning, and follows the
    // next runtime process's connection again.
    assert_eq!(
        results[3].as_ref().unwrap().outcome,
        lambda_sim::Outcome::ExitError
    );
    assert!(
        metered
            .run
            .stderr
            .contains("lambda-meter: warning: stopped following a Runtime API connection (malformed header line)"),
        "{}",
        metered.run.stderr
    );
    let records = metered.records();
    assert_valid_emf(&records);
    let ids: Vec<String> = records
        .iter()
        .map(|r| r["requestId"].as_str().unwrap().to_string())
        .collect();
    let bounded: String = quoted.chars().take(256).collect();
    assert_eq!(
        ids,
        [
            "00000000-0000-4000-8000-000000000001",
            bounded.as_str(),
            "00000000-0000-4000-8000-000000000003",
            "00000000-0000-4000-8000-000000000005"
        ],
        "every invoke the runtime could read is recorded, the long id bounded and escaped"
    );
    // The same run without the library: the same results, requests and output.
    assert_eq!(plain.run.starts, metered.run.starts);
    support::scenario::assert_same_requests(&plain, &metered);
    for (x, y) in plain.sim.results().iter().zip(&results) {
        let (x, y) = (x.as_ref().unwrap(), y.as_ref().unwrap());
        assert_eq!((&x.outcome, &x.body), (&y.outcome, &y.body));
    }
}

#[test]
fn a_server_that_never_answers() {
    // The second /next is never answered: both runtimes wait, alive, until the run ends.
    let mut evs = events(&[json!({"action": "ok"}), json!({"action": "ok"})]);
    evs[1].fault = Some(Fault::NeverAnswer);
    let (plain, metered) = run_both(evs, Duration::from_secs(4));
    assert!(!plain.run.idle && !metered.run.idle);
    assert!(plain.run.exits.is_empty() && metered.run.exits.is_empty());
    let by_id = check_same(&plain, &metered);
    assert_eq!(by_id.len(), 1, "the first invoke was recorded");
}
