//! A record always starts a line of its own, whatever the handler left on stdout: CloudWatch
//! drops a line whose JSON does not start it. Each handler writes `progress: 50%` without a
//! newline; the record written after it must still be a line of its own (the checker counts
//! one record per invoke, and only lines starting with `{"_aws"` are records).

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::json;
use support::scenario::Scenario;
use support::*;

fn partial_mix() -> Vec<serde_json::Value> {
    vec![
        json!({"action": "ok"}),
        json!({"action": "partial", "text": "progress: 50%"}),
        json!({"action": "ok"}),
        json!({"action": "partial", "text": "{\"_aws\": not a record"}),
        json!({"action": "partial", "text": "no newline either"}),
        json!({"action": "ok"}),
    ]
}

/// The handler's own text stays exactly as it was, apart from the line breaks before records.
fn assert_text_kept(out: &Outcome, texts: &[&str]) {
    let stdout = &out.run.stdout;
    for t in texts {
        assert!(
            stdout.contains(&format!("{t}\n{{\"_aws\"")),
            "{t:?} is followed by a record on a line of its own:\n{stdout}"
        );
    }
}

#[test]
fn python_partial_lines() {
    let out = Scenario::python(partial_mix()).check();
    assert_text_kept(&out, &["progress: 50%", "no newline either"]);
}

#[test]
fn node_partial_lines() {
    let mut s = Scenario::node("index.handler");
    s.payloads = partial_mix();
    let out = s.check();
    assert_text_kept(&out, &["progress: 50%", "no newline either"]);
}

#[test]
fn c_runtime_partial_lines() {
    let bin = compile_program("c_runtime", "c_runtime_partial", &["-O1"]);
    let mut s = Scenario::new(vec![bin.display().to_string()], root());
    s.compare_output = true;
    s.payloads = vec![
        json!({"action": "partial"}),
        json!({"action": "ok"}),
        json!({"action": "partial"}),
    ];
    let out = s.check();
    assert_text_kept(&out, &["progress: 50%"]);
}
