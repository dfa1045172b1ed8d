//! Records that must survive, and writes that must not block (issue 20, properties 3 and 9).
//!
//! - Every finished invoke's record survives any ending. After a runtime posts an invoke's
//!   result, the library keeps the record until the runtime's next `GET /next` (to measure
//!   `PostResponseDuration`); a process that ends in between — `_exit`, a fatal signal with its
//!   default disposition, a default SIGTERM, `exit` from inside a signal handler, a normal
//!   `exit` — must still write it: one record per invoke, with the outcome that was posted.
//!   Checked with a small C runtime (`tests/programs/post_then_end.c`), the Python client
//!   (`tests/functions/python/end_after_post.py`) and the Node.js client
//!   (`tests/functions/node/end-after-post.mjs`), each compared with the run without the
//!   library (exit statuses, results, requests, output).
//! - No record write blocks the host on someone else's pipe. With `LD_PRELOAD` alone, the first
//!   process that loads the library may be `strace`, `timeout`, `env` or a shell that does not
//!   exec; the runtime that really talks to the Runtime API must finish every invoke with one
//!   record each on its own stdout, however the first loader's stdout is set up. And a
//!   destination that blocks (a full pipe nobody reads for a while: stdout, stderr, a FIFO as
//!   `file:`) holds a record up at most about a second: the runtime finishes its invokes.
//!   Only hangs are detected, with a generous limit; no speed is asserted.

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
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use support::scenario::{assert_same_requests, assert_same_results};
use support::*;

// ---- property 3: a record waiting for the next /next survives the process's end ----

/// The C runtime, compiled once: tests run at once, and one must not rewrite the file another
/// is running.
fn c_runtime() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| compile_program("post_then_end", "post_then_end", &["-O1", "-Wall"]))
        .clone()
}

/// A runtime fed `payloads`, with a new runtime process after each one that ends, as Lambda
/// starts one.
struct AfterPost {
    command: Vec<String>,
    cwd: PathBuf,
    env: Vec<(String, String)>,
    payloads: Vec<Value>,
    /// The runtime's output carries nothing run-specific and must be equal.
    compare_output: bool,
    /// The function timeout (the simulator's own when `None`).
    timeout: Option<Duration>,
}

/// `ok`, then each ending after a success and after a failure, with a plain invoke after each
/// (the first invoke of a new runtime process).
fn endings(hows: &[&str], fail_type: &str) -> Vec<Value> {
    let mut p = vec![json!({})];
    for how in hows {
        p.push(json!({"then": how}));
        p.push(json!({}));
        p.push(json!({"then": how, "fail": fail_type}));
        p.push(json!({}));
    }
    p
}

/// No process started by these tests dumps core (none litters the working directory, and
/// both runs of a comparison end alike whatever the machine's default).
fn no_core_dumps() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only touch the struct we pass.
    unsafe {
        libc::getrlimit(libc::RLIMIT_CORE, &mut limit);
        limit.rlim_cur = 0;
        libc::setrlimit(libc::RLIMIT_CORE, &limit);
    }
}

fn ends(o: &Outcome) -> Vec<(Option<i32>, Option<i32>, bool)> {
    o.run
        .exits
        .iter()
        .map(|s| (s.code(), s.signal(), s.core_dumped()))
        .collect()
}

impl AfterPost {
    fn c(hows: &[&str]) -> AfterPost {
        AfterPost {
            command: vec![c_runtime().display().to_string()],
            cwd: root(),
            env: Vec::new(),
            payloads: endings(hows, "OrderNotFound"),
            compare_output: true,
            timeout: None,
        }
    }

    fn python(hows: &[&str]) -> AfterPost {
        AfterPost {
            command: python_command("end_after_post.handler"),
            cwd: python_function_dir(),
            env: Vec::new(),
            payloads: endings(hows, "OrderNotFound"),
            compare_output: true,
            timeout: None,
        }
    }

    fn node(hows: &[&str]) -> AfterPost {
        let dir = node_function_dir();
        AfterPost {
            command: node_command("end-after-post.handler"),
            cwd: dir.clone(),
            env: vec![("LAMBDA_TASK_ROOT".into(), dir.display().to_string())],
            payloads: endings(hows, "OrderNotFound"),
            // Node's log lines carry timestamps, and abort prints a native backtrace.
            compare_output: false,
            timeout: None,
        }
    }

    fn run(&self, wrapped: bool) -> Outcome {
        let layer = Layer::new();
        let wrapper = layer.wrapper();
        let cmd: Vec<&str> = self.command.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        run_with(
            Config {
                events: events(&self.payloads),
                restart_on_exit: true,
                timeout: self.timeout.unwrap_or(Config::default().timeout),
                ..Config::default()
            },
            &cmd,
            wrapped.then_some(wrapper.as_path()),
            &env,
            &self.cwd,
        )
    }

    /// Runs without and with the library, compares the two, and checks the records.
    fn check(&self) {
        no_core_dumps();
        let plain = self.run(false);
        let metered = self.run(true);
        assert!(
            !metered.run.stderr.contains("lambda-meter: "),
            "the library wrote to stderr:\n{}",
            metered.run.stderr
        );
        let dying = self
            .payloads
            .iter()
            .filter(|p| p.get("then").is_some())
            .count();
        assert_eq!(plain.run.exits.len(), dying, "one process ends per ending");
        assert_eq!(ends(&plain), ends(&metered), "how the runtimes ended");
        assert_eq!(plain.run.starts, metered.run.starts, "runtime starts");
        if self.compare_output {
            assert_eq!(plain.run.stderr, metered.run.stderr, "stderr");
            assert_eq!(plain.other_stdout(), metered.other_stdout(), "stdout");
        }
        assert_same_results(&plain, &metered);
        assert_same_requests(&plain, &metered);
        assert!(plain.records().is_empty());

        let records = metered.records();
        assert_valid_emf(&records);
        let results = metered.sim.results();
        // Every invoke is looked at before failing, so the message names each one in trouble.
        let mut problems = Vec::new();
        let mut first_of_process = true;
        for (p, result) in self.payloads.iter().zip(&results) {
            let result = result.as_ref().expect("result");
            let id = &result.request_id;
            // Every result was posted before the process ended.
            assert!(
                matches!(
                    result.outcome,
                    SimOutcome::Response | SimOutcome::Error { .. }
                ),
                "{id} ({p}): {:?}",
                result.outcome
            );
            let cold = if first_of_process { 1.0 } else { 0.0 };
            first_of_process = p.get("then").is_some();
            let mine: Vec<&Value> = records.iter().filter(|r| r["requestId"] == **id).collect();
            let [rec] = mine[..] else {
                problems.push(format!(
                    "{} records for {id} (event {p}), whose result was posted before the process \
                     ended",
                    mine.len()
                ));
                continue;
            };
            let (errors, error_type) = match p.get("fail") {
                Some(t) => (1.0, Some(t)),
                None => (0.0, None),
            };
            if rec["Errors"] != errors || rec.get("errorType") != error_type {
                problems.push(format!(
                    "{id} (event {p}): outcome other than posted: {rec}"
                ));
            }
            if rec["Timeouts"] != 0.0 || rec["ColdStart"] != cold {
                problems.push(format!("{id} (event {p}): Timeouts or ColdStart: {rec}"));
            }
        }
        if records.len() != self.payloads.len() {
            problems.push(format!(
                "{} records for {} invokes",
                records.len(),
                self.payloads.len()
            ));
        }
        assert!(
            problems.is_empty(),
            "every finished invoke has exactly one record with its posted outcome:\n{}",
            problems.join("\n")
        );
    }
}

#[test]
fn c_runtime_exit_now_after_posting() {
    AfterPost::c(&["_exit"]).check();
}

#[test]
fn c_runtime_fatal_signals_after_posting() {
    AfterPost::c(&["segv", "fault", "abort"]).check();
}

#[test]
fn c_runtime_default_sigterm_after_posting() {
    AfterPost::c(&["term"]).check();
}

#[test]
fn c_runtime_exit_inside_a_signal_handler_after_posting() {
    AfterPost::c(&["usr1_exit", "alarm_exit"]).check();
}

/// Ending right after the result is sent, before its answer is read: the Runtime API took
/// it, and the record says so (the journal keeps the final record while the answer is
/// awaited), from the dying process or, after SIGKILL, from the next one.
#[test]
fn c_runtime_ends_before_reading_the_answer() {
    let mut run = AfterPost::c(&["_exit", "segv", "kill", "exit"]);
    for p in &mut run.payloads {
        if p.get("then").is_some() {
            p["unread"] = json!(1);
        }
    }
    run.check();
}

/// A runtime that never reads a result's answer, leaves its connection open and goes on: the
/// answer's wait (a second) ends that invoke while the next one runs (2.5 s of CPU), so it has
/// its record, posted outcome and all, though the run ends right after. The wait wakes the
/// watchdog at the library's next call (the runtime's next `/next`), not when the result is
/// sent: without that wake, and with a deadline far off (60 s, so that the open invoke's
/// deadline does not wake it instead), nothing else wakes it in time, and the record is lost. (Only a watchdog more than 1.5 s
/// late could fail it: no speed is asserted.)
#[test]
fn c_runtime_that_never_reads_an_answer_gets_its_record_after_the_wait() {
    AfterPost {
        // The first invoke: no earlier record's wait for `/next` has the watchdog look then.
        payloads: vec![json!({"unread": 1}), json!({"burn_ms": 2500}), json!({})],
        timeout: Some(Duration::from_secs(60)),
        ..AfterPost::c(&[])
    }
    .check();
}

/// Work after the result for longer than the record waits for `/next` (2 s): the watchdog
/// writes the record then, from its journal slot (it was lost: the slot was freed first).
/// A watchdog late by more than a second writes nothing then, and the `/next` writes the
/// record: the test passes either way, and catches the loss whenever the watchdog is on time.
#[test]
fn c_runtime_working_long_after_its_result_keeps_the_record() {
    AfterPost {
        payloads: vec![json!({}), json!({"after_ms": 3000}), json!({})],
        ..AfterPost::c(&[])
    }
    .check();
}

/// A plain `exit` after posting: the library's destructor writes the waiting record.
#[test]
fn c_runtime_exit_after_posting() {
    AfterPost::c(&["exit"]).check();
}

#[test]
fn python_exit_now_after_posting() {
    AfterPost::python(&["_exit", "thread_exit"]).check();
}

#[test]
fn python_fatal_signals_after_posting() {
    AfterPost::python(&["term", "abort", "segv"]).check();
}

/// `sys.exit` after posting: a normal interpreter exit, through `exit()` and the destructor.
#[test]
fn python_sys_exit_after_posting() {
    AfterPost::python(&["exit"]).check();
}

#[test]
fn node_sigterm_and_abort_after_posting() {
    AfterPost::node(&["term", "abort"]).check();
}

/// `process.exit` after posting: Node calls `exit()`, and the destructor writes the record.
#[test]
fn node_process_exit_after_posting() {
    AfterPost::node(&["exit"]).check();
}

// ---- property 9: no record write blocks the host ----

/// How long a run may take before it counts as hung. A runtime held up at most about a second
/// per record finishes far sooner.
const HANG: Duration = Duration::from_secs(25);

/// A few invokes; the second burns 200 ms of the runtime's CPU.
fn few_invokes() -> Vec<Value> {
    vec![
        json!({}),
        json!({"burn_ms": 200}),
        json!({"fail": "OrderNotFound"}),
        json!({}),
        json!({}),
    ]
}

/// `n` invokes, every tenth failing; the second burns 200 ms of the runtime's CPU. Their
/// records are more than a pipe holds (64 KiB).
fn many_invokes(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| match i {
            1 => json!({"burn_ms": 200}),
            _ if i % 10 == 9 => json!({"fail": "OrderNotFound"}),
            _ => json!({}),
        })
        .collect()
}

/// Runs `command` against `payloads` until every invoke is done, the runtime exits, or
/// [`HANG`]; with `LD_PRELOAD` set to the library in its environment when `preload`.
fn run_preloaded(
    command: &[String],
    cwd: &Path,
    payloads: &[Value],
    env: &[(&str, &str)],
    preload: bool,
) -> Outcome {
    let library = library().display().to_string();
    let mut env = env.to_vec();
    if preload {
        env.push(("LD_PRELOAD", &library));
    }
    let cmd: Vec<&str> = command.iter().map(String::as_str).collect();
    run_until(
        Config {
            events: events(payloads),
            ..Config::default()
        },
        &cmd,
        None,
        &env,
        cwd,
        HANG,
    )
}

/// Asserts the run finished its invokes (did not hang), saying how far it got.
fn assert_finished(what: &str, o: &Outcome, payloads: &[Value]) {
    let requests = o.sim.requests();
    let done = o.sim.results().iter().filter(|r| r.is_some()).count();
    let last: Vec<String> = requests
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    assert!(
        o.run.idle,
        "{what}: the runtime did not finish its {} invokes within {HANG:?}: it hangs ({done} \
         results in, {} requests, exited: {:?}; last requests: {last:?})\nstderr:\n{}",
        payloads.len(),
        requests.len(),
        o.run.exited,
        o.run.stderr
    );
}

/// What is wrong with the records on the runtime's own stdout: each invoke must have exactly
/// one, with the outcome the runtime posted.
fn record_problems(o: &Outcome, payloads: &[Value]) -> Vec<String> {
    let records = o.records();
    assert_valid_emf(&records);
    let mut problems = Vec::new();
    let mut missing = 0;
    for (p, result) in payloads.iter().zip(o.sim.results()) {
        let id = result.expect("result").request_id;
        let mine: Vec<&Value> = records.iter().filter(|r| r["requestId"] == *id).collect();
        let [rec] = mine[..] else {
            if mine.is_empty() {
                missing += 1;
            } else {
                problems.push(format!("{} records for {id}", mine.len()));
            }
            continue;
        };
        let errors = if p.get("fail").is_some() { 1.0 } else { 0.0 };
        if rec["Errors"] != errors {
            problems.push(format!(
                "{id} (event {p}): outcome other than posted: {rec}"
            ));
        }
    }
    if missing > 0 {
        problems.push(format!(
            "{missing} of {} invokes have no record on the runtime's stdout",
            payloads.len()
        ));
    }
    if records.len() != payloads.len() {
        problems.push(format!(
            "{} records on the runtime's stdout for {} invokes",
            records.len(),
            payloads.len()
        ));
    }
    problems
}

/// The member names of each record.
fn record_keys(o: &Outcome) -> Vec<Vec<String>> {
    o.records()
        .iter()
        .map(|r| {
            let mut k: Vec<String> = r.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        })
        .collect()
}

/// `command` runs the runtime, whose command line is `runtime` (the end of `command`), under
/// a first process that loads the library before it. Without and with `LD_PRELOAD`, and with
/// the runtime started directly for reference: the wrapped runtime finishes every invoke, its
/// results are those without the library, and its records — on its own stdout, one per invoke
/// — are what it writes when it is started directly: the same members, its own CPU.
fn check_first_loader(
    what: &str,
    command: &[String],
    runtime: &[String],
    cwd: &Path,
    payloads: &[Value],
    env: &[(&str, &str)],
) {
    let plain = run_preloaded(command, cwd, payloads, env, false);
    assert_finished(&format!("{what} without the library"), &plain, payloads);
    let metered = run_preloaded(command, cwd, payloads, env, true);
    assert_finished(what, &metered, payloads);
    assert_same_results(&plain, &metered);
    let direct = run_preloaded(runtime, cwd, payloads, env, true);
    assert_finished(
        &format!("{what}: the runtime started directly"),
        &direct,
        payloads,
    );
    let mut problems = record_problems(&metered, payloads);
    let (keys, direct_keys) = (record_keys(&metered), record_keys(&direct));
    if let Some(i) = (0..keys.len().min(direct_keys.len())).find(|i| keys[*i] != direct_keys[*i]) {
        problems.push(format!(
            "record {i} has members {:?}; started directly, the runtime's has {:?}",
            keys[i], direct_keys[i]
        ));
    }
    let burner = metered.sim.results()[1].clone().expect("result").request_id;
    if let Some(rec) = metered
        .records()
        .into_iter()
        .find(|r| r["requestId"] == *burner)
    {
        let burnt = rec["CpuTime"].as_f64().unwrap_or(0.0);
        if burnt < 150.0 {
            problems.push(format!(
                "the invoke that burnt 200 ms of the runtime's CPU has CpuTime {burnt}: the \
                 record measures another process"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{what}: the runtime's records are not its own:\n{}",
        problems.join("\n")
    );
}

fn c_command() -> Vec<String> {
    vec![c_runtime().display().to_string()]
}

fn wrapped(first: &[&str], runtime: &[String]) -> Vec<String> {
    let mut c: Vec<String> = first.iter().map(|s| s.to_string()).collect();
    c.extend(runtime.iter().cloned());
    c
}

#[test]
fn preloaded_runtime_under_env() {
    let rt = c_command();
    check_first_loader(
        "env X=1 <runtime>",
        &wrapped(&["env", "X=1"], &rt),
        &rt,
        &root(),
        &few_invokes(),
        &[],
    );
}

#[test]
fn preloaded_runtime_under_timeout() {
    let rt = c_command();
    check_first_loader(
        "timeout 60 <runtime>",
        &wrapped(&["timeout", "60"], &rt),
        &rt,
        &root(),
        &few_invokes(),
        &[],
    );
}

#[test]
fn preloaded_runtime_under_a_shell_that_does_not_exec() {
    let rt = c_command();
    check_first_loader(
        "sh -c '<runtime>; true'",
        &wrapped(&["sh", "-c", "\"$@\"; true", "sh"], &rt),
        &rt,
        &root(),
        &few_invokes(),
        &[],
    );
}

/// strace loads the library first and becomes the environment's root; it replaces its own
/// stdout with a pipe nobody reads (its children keep the real one). The runtime's records
/// must go to the runtime's stdout, and the runtime must never wait on strace's pipe: more
/// records than the pipe holds.
#[test]
fn preloaded_runtime_under_strace() {
    let rt = c_command();
    check_first_loader(
        "strace -f -o /dev/null <runtime>",
        &wrapped(&["strace", "-f", "-o", "/dev/null"], &rt),
        &rt,
        &root(),
        &many_invokes(150),
        &[],
    );
}

#[test]
fn preloaded_python_runtime_under_strace() {
    let rt = python_command("end_after_post.handler");
    check_first_loader(
        "strace -f -o /dev/null python -m awslambdaric",
        &wrapped(&["strace", "-f", "-o", "/dev/null"], &rt),
        &rt,
        &python_function_dir(),
        &many_invokes(150),
        &[],
    );
}

/// A FIFO in a directory of its own, removed on drop.
struct Fifo {
    dir: tempdir::TempDir,
    /// The read end and a write end while the pipe is held full.
    held: Option<(std::fs::File, std::fs::File)>,
}

impl Fifo {
    fn new(prefix: &str) -> Fifo {
        let dir = tempdir::TempDir::new(prefix);
        let path = std::ffi::CString::new(dir.path().join("pipe").as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "mkfifo");
        Fifo { dir, held: None }
    }

    fn path(&self) -> String {
        self.dir.path().join("pipe").display().to_string()
    }

    /// Opens the read end (never read from) and fills the pipe until it takes no more: a
    /// blocking write to it then waits until someone reads, which no one does while the
    /// `Fifo` lives.
    fn full(prefix: &str) -> Fifo {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut fifo = Fifo::new(prefix);
        let open = |read: bool| {
            std::fs::OpenOptions::new()
                .read(read)
                .write(!read)
                .custom_flags(libc::O_NONBLOCK)
                .open(fifo.path())
                .expect("fifo")
        };
        let reader = open(true);
        let mut writer = open(false);
        let block = [b'f'; 4096];
        loop {
            match writer.write(&block) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("filling the fifo: {e}"),
            }
        }
        fifo.held = Some((reader, writer));
        fifo
    }
}

/// A shell that does not exec loads the library first, with its own stdout a FIFO nobody reads
/// (`LM_PIPE`), and runs the runtime with the real log as its stdout. No reader at all: the
/// shell opens the FIFO beside a reader of its own, which it then closes. (The runtime is
/// started through an inner `sh` that moves its stdout: dash applies a simple command's own
/// redirections in the parent while the command runs, which would give the outer shell the
/// real log as its stdout for that time.)
#[test]
fn preloaded_runtime_under_a_shell_whose_stdout_has_no_reader() {
    let fifo = Fifo::new("no-reader");
    let path = fifo.path();
    let rt = c_command();
    let script = "exec 4<>\"$LM_PIPE\"; exec 3>&1 >\"$LM_PIPE\"; exec 4<&-; \
                  sh -c 'exec \"$@\" >&3 3>&-' sh \"$@\"; true";
    check_first_loader(
        "sh (stdout: a FIFO without reader) -c '<runtime>; true'",
        &wrapped(&["sh", "-c", script, "sh"], &rt),
        &rt,
        &root(),
        &few_invokes(),
        &[("LM_PIPE", &path)],
    );
}

/// The same with the shell's stdout a full FIFO that the test holds and never reads.
#[test]
fn preloaded_runtime_under_a_shell_whose_stdout_is_full() {
    let fifo = Fifo::full("full-shell-stdout");
    let path = fifo.path();
    let rt = c_command();
    let script = "exec 3>&1 >\"$LM_PIPE\"; sh -c 'exec \"$@\" >&3 3>&-' sh \"$@\"; true";
    check_first_loader(
        "sh (stdout: a full FIFO nobody reads) -c '<runtime>; true'",
        &wrapped(&["sh", "-c", script, "sh"], &rt),
        &rt,
        &root(),
        &few_invokes(),
        &[("LM_PIPE", &path)],
    );
}

/// The runtime's record destination blocks: `stdout` or `stderr` a full pipe nobody reads
/// during the run, or `file:` a FIFO, full or without reader. The runtime writes nothing
/// itself, so only the library's writes could wait; it must finish every invoke, with the
/// results it gives without the library.
fn check_blocking_destination(what: &str, destination: &str) {
    let payloads = few_invokes();
    let fifo = if destination == "file-no-reader" {
        Fifo::new("no-reader-destination")
    } else {
        Fifo::full("full-destination")
    };
    let path = fifo.path();
    let (script, setting) = match destination {
        "stdout" => ("exec \"$@\" >\"$LM_PIPE\"", "stdout".to_string()),
        "stderr" => ("exec \"$@\" 2>\"$LM_PIPE\"", "stderr".to_string()),
        _ => ("exec \"$@\"", format!("file:{path}")),
    };
    let command = wrapped(&["sh", "-c", script, "sh"], &c_command());
    let env = [
        ("LM_PIPE", path.as_str()),
        ("LAMBDA_METER_DESTINATION", setting.as_str()),
    ];
    let plain = run_preloaded(&command, &root(), &payloads, &env, false);
    assert_finished(&format!("{what} without the library"), &plain, &payloads);
    let metered = run_preloaded(&command, &root(), &payloads, &env, true);
    assert_finished(what, &metered, &payloads);
    assert_same_results(&plain, &metered);
    assert_same_requests(&plain, &metered);
}

#[test]
fn a_full_stdout_pipe_holds_the_runtime_up_only_briefly() {
    check_blocking_destination("stdout: a full pipe nobody reads", "stdout");
}

#[test]
fn a_full_stderr_pipe_holds_the_runtime_up_only_briefly() {
    check_blocking_destination(
        "LAMBDA_METER_DESTINATION=stderr: a full pipe nobody reads",
        "stderr",
    );
}

#[test]
fn a_full_fifo_as_file_destination_holds_the_runtime_up_only_briefly() {
    check_blocking_destination("file: a full FIFO nobody reads", "file");
}

#[test]
fn a_fifo_without_reader_as_file_destination_never_blocks_the_runtime() {
    check_blocking_destination("file: a FIFO nobody opened for reading", "file-no-reader");
}
