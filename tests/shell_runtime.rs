//! A shell custom runtime (the AWS tutorial's bash + curl CLI): every request is its own
//! short-lived curl process, so an invoke starts in one process and ends in another that did
//! not exist when it started. One record per invoke and one cold start per environment all the
//! same, through the per-environment state the processes share.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::json;
use support::scenario::{Launch, Scenario, standard_mix};
use support::*;

fn shell() -> Scenario {
    let dir = root().join("tests/functions/shell");
    let mut s = Scenario::new(
        vec![dir.join("bootstrap").display().to_string()],
        dir.clone(),
    )
    .env("LAMBDA_TASK_ROOT", dir.to_str().unwrap())
    .env("_HANDLER", "function.handler");
    s.compare_output = true;
    s
}

#[test]
fn shell_runtime_with_curl_processes() {
    let out = shell().check();
    // Every request was its own connection, from its own curl process.
    let requests = out.sim.requests().len() as u64;
    assert_eq!(out.sim.connection_count(), requests);
    // The 2 MB result made curl ask for 100-continue.
    let expects = out
        .sim
        .requests()
        .iter()
        .filter(|r| r.header("expect") == Some("100-continue"))
        .count();
    assert!(expects >= 1, "curl sent no Expect: 100-continue");
    for r in out.records() {
        assert_eq!(r["runtime"], "curl", "the process that posted the result");
    }
}

#[test]
fn shell_runtime_adversarial_transport() {
    shell().tiny_writes().check();
}

#[test]
fn shell_runtime_environment_state_is_private_and_left_clean() {
    // The state lives under the environment's TMPDIR; on Lambda, /tmp is per environment.
    let tmp = tempdir::TempDir::new("shell-tmp");
    let mut s = shell().env("TMPDIR", tmp.path().to_str().unwrap());
    s.payloads = (0..5).map(|_| json!({"action": "ok"})).collect();
    let out = s.check();
    assert_eq!(out.records().len(), 5);
    let dirs: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".lambda-meter-")
                && e.path().is_dir()
        })
        .collect();
    assert_eq!(
        dirs.len(),
        1,
        "one state directory for the one metered environment"
    );
    let dir = dirs[0].path();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(dir.join("cold").is_file(), "the cold start was claimed");
    let left: Vec<_> = std::fs::read_dir(dir.join("open")).unwrap().collect();
    assert!(
        left.is_empty(),
        "every handed-off invoke was taken: {left:?}"
    );
}

#[test]
fn shell_runtime_with_ld_preload_in_the_functions_environment() {
    // Lambda starts an OS-only runtime's bootstrap directly (no exec wrapper): with the library
    // named in LD_PRELOAD, bash and every curl load it, and the curl processes still share the
    // environment's one cold start (check() counts it) without the wrapper's help.
    let out = shell().launched(Launch::Preload).check();
    assert_eq!(out.records().len(), standard_mix().len());
}

#[test]
fn shell_runtime_with_the_handover_line_in_its_bootstrap() {
    shell().launched(Launch::HandoverLine).check();
}

#[test]
fn the_readme_gives_the_tested_handover_line() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains(support::scenario::README_HANDOVER),
        "README.md must carry the line tests/support/scenario.rs tests"
    );
}

/// What a shell runtime whose stdout is a regular file (`"file"`) or a Unix socket
/// (`"socket"`) wrote there, run through the wrapper when `wrapped`; with the result curl's
/// stdout and stderr sent to /dev/null when `post_null` (its records must then find the
/// root's stdout without inheriting it).
fn shell_with_stdout(kind: &str, post_null: bool, wrapped: bool) -> Outcome {
    let dir = root().join("tests/functions/shell");
    let tmp = tempdir::TempDir::new("shell-stdout");
    let path = tmp.path().join("stdout");
    let collected = (kind == "socket").then(|| {
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut conn, &mut text).unwrap();
            text
        })
    });
    let layer = Layer::new();
    let wrapper = layer.wrapper().display().to_string();
    let launcher = root().join("tests/programs/stdout_as.py");
    let mut command = vec![
        python().display().to_string(),
        launcher.display().to_string(),
        kind.to_string(),
        path.display().to_string(),
        "--".to_string(),
    ];
    if wrapped {
        command.push(wrapper);
    }
    command.push(dir.join("bootstrap").display().to_string());
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    let payloads: Vec<_> = (0..10)
        .map(|i| match i % 5 {
            3 => json!({"action": "fail", "type": "Oops"}),
            _ => json!({"action": "ok"}),
        })
        .collect();
    let mut env = vec![
        ("LAMBDA_TASK_ROOT", dir.to_str().unwrap()),
        ("_HANDLER", "function.handler"),
        ("SHELL_RUNTIME_LOG", "1"),
    ];
    if post_null {
        env.push(("SHELL_RUNTIME_POST_OUTPUT", "null"));
    }
    let mut out = run(events(&payloads), &command, None, &env, &dir);
    out.run.stdout = match collected {
        Some(reader) => reader.join().unwrap(),
        None => std::fs::read_to_string(&path).unwrap(),
    };
    out
}

fn check_shell_with_stdout(kind: &str, post_null: bool) {
    let what = format!("stdout a {kind}, the result curl's output to /dev/null: {post_null}");
    let plain = shell_with_stdout(kind, post_null, false);
    let metered = shell_with_stdout(kind, post_null, true);
    assert_eq!(
        plain.other_stdout().len(),
        10,
        "{what}: {}",
        plain.run.stdout
    );
    assert_eq!(
        plain.other_stdout(),
        metered.other_stdout(),
        "{what}: the function's own output differs with the library:\n{}\nstderr:\n{}",
        metered.run.stdout,
        metered.run.stderr
    );
    assert!(
        !metered.run.stderr.contains("lambda-meter"),
        "{what}: {}",
        metered.run.stderr
    );
    compare::assert_every_invoke_metered(&what, &metered, 10);
    // Each record follows the line of its own invoke: in step with the runtime's writes.
    let lines: Vec<&str> = metered.run.stdout.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(id) = line.strip_prefix("handling ") {
            let next = lines.get(i + 1).copied().unwrap_or_default();
            assert!(
                next.starts_with("{\"_aws\"") && next.contains(id),
                "{what}: the line after {line:?} is not its record: {next:?}"
            );
        }
    }
}

#[test]
fn helpers_records_reach_a_file_stdout_whole_and_in_order() {
    check_shell_with_stdout("file", false);
}

#[test]
fn helpers_records_reach_a_socket_stdout_whole_and_in_order() {
    check_shell_with_stdout("socket", false);
}

#[test]
fn helpers_records_reach_a_file_stdout_they_do_not_share() {
    check_shell_with_stdout("file", true);
}

#[test]
fn helpers_records_reach_a_socket_stdout_they_do_not_share() {
    check_shell_with_stdout("socket", true);
}

#[test]
fn a_next_wrapper_that_runs_the_runtime_as_its_child_keeps_its_cpu_time() {
    // Some vendor wrappers start the runtime as a child and wait for it. The waiting shell is
    // the environment's root, but the runtime below it is what spends the CPU.
    let tmp = tempdir::TempDir::new("next-wrapper");
    let next = tmp.path().join("next-wrapper");
    write_executable(&next, "#!/bin/sh\n\"$@\" &\nwait\n");
    // Each burn runs in the runtime shell itself until its own CPU time (utime + stime in
    // /proc, the clock ticks the library reads too) has grown by `TICKS`: a count, whatever
    // the machine's speed. The waiting wrapper spends none of it.
    const TICKS: u64 = 5;
    let payloads: Vec<_> = (0..4)
        .map(|_| json!({"action": "burn", "ticks": TICKS}))
        .collect();
    let mut s = shell().env("LAMBDA_METER_NEXT_WRAPPER", next.to_str().unwrap());
    s.payloads = payloads;
    let out = s.check();
    let results = out.sim.results();
    let by_id = support::scenario::by_request_id(&out.records());
    assert_eq!(by_id.len(), results.len());
    for result in &results {
        let result = result.as_ref().expect("result");
        let body: serde_json::Value = serde_json::from_slice(&result.body).expect("JSON result");
        assert_eq!(body["ticks"], TICKS, "{body}");
        let tick_ms = 1000.0 / body["clk_tck"].as_f64().expect("clk_tck");
        let r = &by_id[&result.request_id];
        let cpu = r["CpuTime"].as_f64().expect("CpuTime");
        // The shell read its ticks between the invoke's start and end, so the record counts at
        // least the growth it saw. Less one tick, in case the start's reading summed a process
        // the end's did not (a subshell between the runtime shell and the curl that read the
        // event: bash 5 makes none, it execs curl in the command substitution's child).
        let floor = (TICKS - 1) as f64 * tick_ms;
        assert!(
            cpu >= floor,
            "the runtime shell spent {TICKS} ticks in the invoke, the record has {cpu} ms: {r}"
        );
    }
}

/// The records of `payloads` served to `tests/functions/shell/then_runtime` (the first event
/// answered with curl, the rest by a C runtime it runs without exec), through the wrapper, with
/// a timeout of 1.5 s; one per event, by event.
fn runtime_after_curl(payloads: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let dir = root().join("tests/functions/shell");
    let layer = Layer::new();
    let runtime = compile_program("c_runtime", "c_runtime_after_curl", &["-O1"]);
    let bootstrap = dir.join("then_runtime").display().to_string();
    let runtime = runtime.display().to_string();
    let config = lambda_sim::Config {
        events: events(payloads),
        timeout: std::time::Duration::from_millis(1_500),
        ..lambda_sim::Config::default()
    };
    let env = [("LAMBDA_METER_LOG", "debug")];
    let out = run_with(
        config,
        &[&bootstrap, &runtime],
        Some(layer.wrapper().as_path()),
        &env,
        &dir,
    );
    let stderr = &out.run.stderr;
    let records = out.records();
    out.sim
        .results()
        .iter()
        .enumerate()
        .map(|(event, result)| {
            let id = &result.as_ref().expect("a result").request_id;
            records
                .iter()
                .find(|r| r["requestId"] == id.as_str())
                .unwrap_or_else(|| panic!("no record for event {event}: {stderr}"))
                .clone()
        })
        .collect()
}

/// A timeout record the process wrote itself before the deadline (not a successor's account of
/// a process that vanished).
fn assert_own_timeout(t: &serde_json::Value) {
    assert_eq!(t["Timeouts"], 1.0, "{t}");
    assert_eq!(t["errorType"], "Sandbox.Timedout", "{t}");
    assert!(t.get("exitReason").is_none(), "{t}");
}

#[test]
fn a_runtime_that_joins_after_the_helpers_reports_its_first_invokes_timeout() {
    // The runtime joins an environment where a helper was seen: its first invoke, held past
    // the deadline, still gets its own timeout record.
    let records = runtime_after_curl(&[
        json!({"action": "ok"}),
        json!({"action": "sleep", "ms": 5_000}),
        json!({"action": "ok"}),
    ]);
    assert_eq!(records[0]["runtime"], "curl");
    assert_own_timeout(&records[1]);
    assert_eq!(records[2]["Timeouts"], 0.0);
}

#[test]
fn a_runtime_that_joins_after_the_helpers_reports_a_later_timeout() {
    // As above, its third invoke timing out, after its second request showed it is a runtime
    // of its own.
    let records = runtime_after_curl(&[
        json!({"action": "ok"}),
        json!({"action": "ok"}),
        json!({"action": "sleep", "ms": 5_000}),
        json!({"action": "ok"}),
    ]);
    assert_eq!(records[0]["runtime"], "curl");
    assert_own_timeout(&records[2]);
    for i in [0, 1, 3] {
        assert_eq!(records[i]["Timeouts"], 0.0);
    }
}
