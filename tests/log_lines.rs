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

/// The handler's own text stays exactly as it was, apart from the line breaks before records;
/// and no line break was added where no line was open (no empty line).
fn assert_text_kept(out: &Outcome, texts: &[&str]) {
    let stdout = &out.run.stdout;
    for t in texts {
        assert!(
            stdout.contains(&format!("{t}\n{{\"_aws\"")),
            "{t:?} is followed by a record on a line of its own:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("\n\n") && !stdout.starts_with('\n'),
        "an empty line was added:\n{stdout}"
    );
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

/// Partial lines left by processes the runtime starts: each has the library too (`LD_PRELOAD`
/// is inherited) and notes the open line in the environment's shared page.
fn children_mix(hows: &[&str]) -> Vec<serde_json::Value> {
    let mut v = vec![json!({"action": "ok"})];
    for how in hows {
        v.push(json!({"action": "child_partial", "how": how, "text": format!("{how}: 50%")}));
        v.push(json!({"action": "ok"}));
    }
    v
}

#[test]
fn python_childrens_partial_lines() {
    let hows = ["system", "printf", "curl"];
    let out = Scenario::python(children_mix(&hows)).check();
    let texts: Vec<String> = hows.iter().map(|h| format!("{h}: 50%")).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    assert_text_kept(&out, &texts);
}

#[test]
fn node_childrens_partial_lines() {
    let mut s = Scenario::node("index.handler");
    s.payloads = children_mix(&["node child"]);
    let out = s.check();
    assert_text_kept(&out, &["node child: 50%"]);
}

#[test]
fn c_runtime_stdio_and_childrens_partial_lines() {
    let bin = compile_program("c_runtime", "c_runtime_partial", &["-O1"]);
    // stdout buffered by stdio (a pipe: fully), flushed with fflush or fflush_unlocked.
    let mut s = Scenario::new(vec![bin.display().to_string()], root())
        .env("C_RUNTIME_BUFFERED_STDOUT", "1");
    s.compare_output = true;
    s.payloads = vec![
        json!({"action": "ok"}),
        json!({"action": "stdio_partial"}),
        json!({"action": "ok"}),
        json!({"action": "stdio_partial_unlocked"}),
        json!({"action": "ok"}),
        json!({"action": "child_partial"}),
        json!({"action": "ok"}),
    ];
    let out = s.check();
    assert_text_kept(&out, &["stdio: 50%", "stdio unlocked: 50%", "child: 50%"]);
}

#[test]
fn shell_runtime_partial_lines_of_its_shell() {
    // The bootstrap's own `echo -n` (bash, the environment's root) leaves the line open; the
    // record is written by the `curl` that posts the result.
    let dir = root().join("tests/functions/shell");
    let mut s = Scenario::new(
        vec![dir.join("bootstrap").display().to_string()],
        dir.clone(),
    )
    .env("LAMBDA_TASK_ROOT", dir.to_str().unwrap())
    .env("_HANDLER", "function.handler")
    .env("SHELL_RUNTIME_LOG", "1");
    s.payloads = vec![
        json!({"action": "ok"}),
        json!({"action": "partial"}),
        json!({"action": "ok"}),
        json!({"action": "partial"}),
    ];
    let out = s.check();
    let ids: Vec<String> = [2, 4]
        .iter()
        .map(|n| format!("handling 00000000-0000-4000-8000-{n:012}"))
        .collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_text_kept(&out, &ids);
}

#[test]
fn python_forked_workers_childrens_partial_lines() {
    // AWS_LAMBDA_MAX_CONCURRENCY=2: worker processes forked before any of them talked to the
    // Runtime API each join the environment's line page. One invoke only: a record another
    // worker wrote while the child was printing could land before the child's line is noted
    // (writers to one stream race; no library can order them).
    let payloads = vec![json!({
        "action": "child_partial", "how": "system", "text": "worker child: 50%"
    })];
    let layer = Layer::new();
    let cmd = python_command("handler.dispatch");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let run = |wrapped: bool| {
        run_with(
            lambda_sim::Config {
                events: events(&payloads),
                max_concurrency: 2,
                ..lambda_sim::Config::default()
            },
            &cmd,
            wrapped.then(|| layer.wrapper()).as_deref(),
            &[("AWS_LAMBDA_MAX_CONCURRENCY", "2")],
            &python_function_dir(),
        )
    };
    let (plain, metered) = (run(false), run(true));
    assert_eq!(
        plain.other_stdout().concat(),
        metered.other_stdout().concat()
    );
    let records = metered.records();
    assert_valid_emf(&records);
    assert_eq!(records.len(), payloads.len());
    assert_text_kept(&metered, &["worker child: 50%"]);
}
