//! Invokes that end the process: `exit`, `_exit`, fatal signals, SIGTERM and SIGKILL. Lambda reports
//! each as `Runtime.ExitError` and starts a new runtime process; lambda-meter must write one
//! record for each (from the dying process, or, after SIGKILL, from the next one), and the
//! host must end exactly as it does without the library: same exit status, same signal, same
//! core, same output.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use lambda_sim::{Config, Outcome as SimOutcome};
use serde_json::{Value, json};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use support::scenario::{assert_same_requests, by_request_id};
use support::*;

/// An event and, if it ends the process, the `exitReason` its record must carry.
struct Case {
    payload: Value,
    reason: Option<&'static str>,
}

fn ok() -> Case {
    Case {
        payload: json!({"action": "ok"}),
        reason: None,
    }
}

fn dies(payload: Value, reason: &'static str) -> Case {
    Case {
        payload,
        reason: Some(reason),
    }
}

struct Endings {
    command: Vec<String>,
    cwd: PathBuf,
    env: Vec<(String, String)>,
    cases: Vec<Case>,
    /// The runtime's output carries nothing run-specific and must be equal.
    compare_output: bool,
}

impl Endings {
    fn run(&self, wrapped: bool) -> Outcome {
        let layer = Layer::new();
        let wrapper = layer.wrapper();
        let payloads: Vec<Value> = self.cases.iter().map(|c| c.payload.clone()).collect();
        let cmd: Vec<&str> = self.command.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        run_with(
            Config {
                events: events(&payloads),
                restart_on_exit: true,
                ..Config::default()
            },
            &cmd,
            wrapped.then_some(wrapper.as_path()),
            &env,
            &self.cwd,
        )
    }

    /// Runs both ways, compares them, checks the records; returns the metered run.
    fn check(&self) -> Outcome {
        let plain = self.run(false);
        let metered = self.run(true);
        assert!(
            !metered.run.stderr.contains("lambda-meter: "),
            "the library wrote to stderr:\n{}",
            metered.run.stderr
        );
        // The host ended the same way each time.
        let ends = |o: &Outcome| -> Vec<(Option<i32>, Option<i32>, bool)> {
            o.run
                .exits
                .iter()
                .map(|s| (s.code(), s.signal(), s.core_dumped()))
                .collect()
        };
        assert_eq!(ends(&plain), ends(&metered), "how the runtimes ended");
        assert_eq!(plain.run.starts, metered.run.starts, "runtime starts");
        let dying = self.cases.iter().filter(|c| c.reason.is_some()).count();
        assert_eq!(metered.run.exits.len(), dying, "one runtime ended per case");
        if self.compare_output {
            assert_eq!(plain.run.stderr, metered.run.stderr);
            assert_eq!(plain.other_stdout(), metered.other_stdout());
        }
        let (a, b) = (plain.sim.results(), metered.sim.results());
        for (x, y) in a.iter().zip(&b) {
            let (x, y) = (x.as_ref().expect("result"), y.as_ref().expect("result"));
            assert_eq!(x.outcome, y.outcome, "outcome of {}", x.request_id);
            assert!(x.body == y.body, "result of {}", x.request_id);
        }
        assert_same_requests(&plain, &metered);
        assert!(plain.records().is_empty());

        let records = metered.records();
        assert_valid_emf(&records);
        let by_id = by_request_id(&records);
        assert_eq!(by_id.len(), self.cases.len(), "one record per invoke");
        // After each ending the next event starts a new runtime: a cold start again, as on
        // Lambda.
        let mut after_ending = true;
        for (case, result) in self.cases.iter().zip(&b) {
            let result = result.as_ref().expect("result");
            let rec = &by_id[&result.request_id];
            match case.reason {
                Some(reason) => {
                    assert_eq!(result.outcome, SimOutcome::ExitError);
                    assert_eq!(rec["Errors"], 1.0, "{rec}");
                    assert_eq!(rec["errorType"], "Runtime.ExitError");
                    assert_eq!(rec["exitReason"], reason, "{}", case.payload);
                    assert_eq!(rec["Timeouts"], 0.0);
                    assert!(rec["MaxMemoryUsed"].as_f64().unwrap() > 0.0);
                    // Only a vanished process leaves its duration unknown.
                    let gone = reason.starts_with("killed");
                    assert_eq!(rec.get("Duration").is_none(), gone, "{rec}");
                    assert_eq!(rec.get("CpuTime").is_none(), gone, "{rec}");
                }
                None => {
                    assert_eq!(rec["Errors"], 0.0, "{rec}");
                    assert!(rec.get("exitReason").is_none());
                }
            }
            let cold = if after_ending { 1.0 } else { 0.0 };
            assert_eq!(rec["ColdStart"], cold, "{rec}");
            after_ending = case.reason.is_some();
        }
        metered
    }
}

fn python_endings(cases: Vec<Case>) -> Endings {
    Endings {
        command: python_command("handler.dispatch"),
        cwd: python_function_dir(),
        env: Vec::new(),
        cases,
        compare_output: true,
    }
}

#[test]
fn python_exit_and_exit_now() {
    let cases = vec![
        ok(),
        dies(
            json!({"action": "exit", "how": "sys.exit", "code": 3}),
            "exit",
        ),
        ok(),
        dies(
            json!({"action": "exit", "how": "os._exit", "code": 5}),
            "exit status 5",
        ),
        ok(),
    ];
    python_endings(cases).check();
}

#[test]
fn python_fatal_signals() {
    let sig = |name: &str, how: &str| json!({"action": "crash", "signal": name, "how": how});
    python_endings(vec![
        ok(),
        dies(sig("SIGSEGV", "fault"), "signal: segmentation fault"),
        dies(sig("SIGABRT", "abort"), "signal: aborted"),
        dies(sig("SIGBUS", "kill"), "signal: bus error"),
        dies(sig("SIGFPE", "kill"), "signal: floating point exception"),
        dies(sig("SIGILL", "kill"), "signal: illegal instruction"),
        // How Lambda Managed Instances stop a runtime.
        dies(sig("SIGTERM", "kill"), "signal: terminated"),
        ok(),
    ])
    .check();
}

#[test]
fn python_sigkill_is_reported_by_the_next_process() {
    let cases = vec![
        ok(),
        dies(
            json!({"action": "crash", "signal": "SIGKILL", "how": "kill"}),
            "killed (no exit seen)",
        ),
        ok(),
        ok(),
    ];
    python_endings(cases).check();
}

#[test]
fn python_sigkill_after_the_function_cleaned_its_tmp_is_still_reported() {
    // The journal's file goes with the rest of /tmp: it is made again, with the next invoke's
    // slot in it, so the process that follows a SIGKILL still finds it.
    let cleaned = Case {
        payload: json!({"action": "clean_tmp"}),
        reason: None,
    };
    let cases = vec![
        ok(),
        cleaned,
        dies(
            json!({"action": "crash", "signal": "SIGKILL", "how": "kill"}),
            "killed (no exit seen)",
        ),
        ok(),
    ];
    python_endings(cases).check();
}

#[test]
fn python_sigkill_after_a_quiet_while_and_a_cleaned_tmp_is_still_reported() {
    // As above, after invokes long enough apart that the directory's look is trusted: the
    // cleaning changes it, and the journal is made again before the next invoke opens.
    let cleaned = Case {
        payload: json!({"action": "clean_tmp"}),
        reason: None,
    };
    let quiet = || Case {
        payload: json!({"action": "sleep", "ms": 150}),
        reason: None,
    };
    let cases = vec![
        quiet(),
        quiet(),
        cleaned,
        dies(
            json!({"action": "crash", "signal": "SIGKILL", "how": "kill"}),
            "killed (no exit seen)",
        ),
        ok(),
    ];
    python_endings(cases).check();
}

#[test]
fn node_process_exit_and_abort() {
    let dir = node_function_dir();
    for alternative in [false, true] {
        let mut env = vec![("LAMBDA_TASK_ROOT".to_string(), dir.display().to_string())];
        if alternative {
            env.push((
                "AWS_LAMBDA_NODEJS_USE_ALTERNATIVE_CLIENT_1".into(),
                "true".into(),
            ));
        }
        Endings {
            command: node_command("index.handler"),
            cwd: dir.clone(),
            env,
            cases: vec![
                ok(),
                dies(json!({"action": "exit", "code": 3}), "exit status 3"),
                ok(),
                dies(json!({"action": "crash"}), "signal: aborted"),
                ok(),
            ],
            // Node prints a native backtrace with addresses on abort.
            compare_output: false,
        }
        .check();
    }
}

/// The C runtime in its own directory, with core dumps on, so each crash leaves a core there
/// exactly as it does without the library.
/// Each test compiles its own binary: tests run at once, and one must not rewrite the file
/// another is running.
fn c_endings(name: &str, cases: Vec<Case>, env: &[(&str, &str)], cores: &Path) -> Endings {
    let bin = compile_program("c_runtime", name, &["-O1"]);
    Endings {
        command: vec![
            "sh".into(),
            "-c".into(),
            "ulimit -c unlimited 2>/dev/null; exec \"$0\"".into(),
            bin.display().to_string(),
        ],
        cwd: cores.to_path_buf(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        cases,
        compare_output: true,
    }
}

fn die(how: &str) -> Value {
    json!({"action": "die", "how": how, "code": 7})
}

#[test]
fn c_runtime_faults_keep_their_status_and_core() {
    let cores = tempdir::TempDir::new("cores");
    let out = c_endings(
        "c_runtime_faults",
        vec![
            ok(),
            dies(die("segv"), "signal: segmentation fault"),
            dies(die("fpe"), "signal: floating point exception"),
            dies(die("ill"), "signal: illegal instruction"),
            dies(die("bus"), "signal: bus error"),
            dies(die("abort"), "signal: aborted"),
            dies(die("exit"), "exit status 7"),
            dies(die("_exit"), "exit status 7"),
            ok(),
        ],
        &[],
        cores.path(),
    )
    .check();
    let signals: Vec<Option<i32>> = out.run.exits.iter().map(|s| s.signal()).collect();
    assert_eq!(
        signals,
        [
            Some(libc::SIGSEGV),
            Some(libc::SIGFPE),
            Some(libc::SIGILL),
            Some(libc::SIGBUS),
            Some(libc::SIGABRT),
            None,
            None
        ]
    );
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    if pattern.trim() == "core" {
        assert!(
            out.run.exits.iter().take(5).all(|s| s.core_dumped()),
            "each crash dumped core"
        );
    }
}

#[test]
fn c_runtime_own_crash_handlers_stay_in_charge() {
    // The runtime installs its own SIGSEGV (signal) and SIGABRT (sigaction) handlers, which
    // print a line and _exit(41 / 46): they run, not ours, and the record says how it ended.
    let cores = tempdir::TempDir::new("own-handlers");
    c_endings(
        "c_runtime_own_handlers",
        vec![
            ok(),
            dies(die("segv"), "exit status 41"),
            dies(die("abort"), "exit status 46"),
            ok(),
        ],
        &[("C_RUNTIME_OWN_HANDLER", "1")],
        cores.path(),
    )
    .check();
}
