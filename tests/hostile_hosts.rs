//! Hosts that are not the happy client: handlers that fork, move stdout, flood it from threads
//! while records are written, run under a signal storm, exhaust their fds or their memory.
//! Each runs through the real Python client and the wrapper, compared with the same run
//! without the library (results, requests, output), and every invoke has its whole record.

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

#[test]
fn handlers_that_fork_with_and_without_exec() {
    let out = Scenario::python(vec![
        json!({"action": "ok"}),
        json!({"action": "fork", "how": "exit"}),
        json!({"action": "fork", "how": "exec"}),
        json!({"action": "fork", "how": "pipe"}),
        json!({"action": "ok"}),
    ])
    .check();
    let results = out.sim.results();
    assert_eq!(
        results[3].as_ref().unwrap().body,
        br#"{"status": 0, "got": "from the child"}"#
    );
}

#[test]
fn a_handler_that_moves_stdout_and_back() {
    Scenario::python(vec![
        json!({"action": "ok"}),
        json!({"action": "redirect"}),
        json!({"action": "print", "text": "back on stdout"}),
        json!({"action": "redirect"}),
        json!({"action": "ok"}),
    ])
    .check();
}

#[test]
fn threads_flooding_stdout_never_break_a_record() {
    // Four threads write 300 whole 1 KB lines each, going on after the handler returned, while
    // the records of this and the next invokes are written.
    let mut s = Scenario::python(vec![
        json!({"action": "ok"}),
        json!({"action": "flood", "threads": 4, "lines": 300}),
        json!({"action": "ok"}),
        json!({"action": "ok"}),
        json!({"action": "flood_join"}),
        json!({"action": "ok"}),
    ]);
    s.compare_output = false; // the threads interleave differently in each run
    let out = s.check();
    let flood: Vec<&str> = out
        .run
        .stdout
        .lines()
        .filter(|l| l.contains("flood "))
        .collect();
    assert_eq!(flood.len(), 1200, "every flood line is a line of its own");
    for line in flood {
        assert!(
            line.starts_with("flood ") && line.ends_with(&"x".repeat(1000)) && line.len() < 1020,
            "a flood line was broken: {line:.80}"
        );
    }
}

#[test]
fn a_signal_storm_interrupts_every_call() {
    // SIGALRM every 200 µs across three invokes: every hooked call may return EINTR.
    Scenario::python(vec![
        json!({"action": "alarm_storm", "us": 200}),
        json!({"action": "sleep", "ms": 30}),
        json!({"action": "big", "bytes": 300_000}),
        json!({"action": "echo", "pad": "p".repeat(100_000)}),
        json!({"action": "alarm_stop"}),
        json!({"action": "ok"}),
    ])
    .check();
}

#[test]
fn exhausting_fds_finds_the_same_number_free() {
    // Results are compared byte for byte: as many files open with the library as without.
    Scenario::python(vec![
        json!({"action": "ok"}),
        json!({"action": "exhaust_fds"}),
        json!({"action": "ok"}),
        json!({"action": "exhaust_fds"}),
    ])
    .check();
}

#[test]
fn exhausting_memory() {
    Scenario::python(vec![
        json!({"action": "ok"}),
        json!({"action": "exhaust_memory"}),
        json!({"action": "ok"}),
    ])
    .check();
}

#[test]
fn a_handler_that_closes_stdout() {
    // After the handler closes fd 1 and opens a file that gets the number, the runtime goes
    // on exactly as without the library; the records of the later invokes have nowhere to go.
    let payloads = vec![
        json!({"action": "ok"}),
        json!({"action": "close_stdout"}),
        json!({"action": "ok"}),
        json!({"action": "ok"}),
    ];
    let cmd = python_command("handler.dispatch");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let layer = Layer::new();
    let tmp = [
        tempdir::TempDir::new("closed-plain"),
        tempdir::TempDir::new("closed-metered"),
    ];
    let run = |wrapped: bool| {
        let dir = tmp[usize::from(wrapped)]
            .path()
            .to_str()
            .unwrap()
            .to_string();
        run(
            events(&payloads),
            &cmd,
            wrapped.then_some(layer.wrapper().as_path()),
            &[("TMPDIR", dir.as_str())],
            &python_function_dir(),
        )
    };
    let (plain, metered) = (run(false), run(true));
    // The file that took fd 1 is the handler's: nothing of ours may appear in it.
    let file = |i: usize| std::fs::read_to_string(tmp[i].path().join("after-close.log")).unwrap();
    assert_eq!(file(0), file(1), "the handler's file that got fd 1");
    support::scenario::assert_same_results(&plain, &metered);
    support::scenario::assert_same_requests(&plain, &metered);
    let results = metered.sim.results();
    assert_eq!(results[1].as_ref().unwrap().body, br#"{"stdout": 1}"#);
    // The records written before the close are whole lines on stdout.
    let records = metered.records();
    assert_valid_emf(&records);
    assert!(!records.is_empty());
    let ours: Vec<&str> = metered
        .run
        .stderr
        .lines()
        .filter(|l| l.starts_with("lambda-meter: "))
        .collect();
    assert!(ours.len() <= 1, "at most one warning: {ours:?}");
}
