//! The host never notices the library: defects a safety review reproduced with small host
//! programs, each run once without and once with the library through the wrapper, comparing
//! exit status, results and output.

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

/// Runs a test program against a simulator serving `payloads`, through the wrapper or not,
/// for at most 20 s, whether or not it finishes them.
fn run_program(
    program: &std::path::Path,
    payloads: &[serde_json::Value],
    wrapped: bool,
) -> Outcome {
    let layer = Layer::new();
    run_until(
        lambda_sim::Config {
            events: events(payloads),
            ..lambda_sim::Config::default()
        },
        &[program.to_str().unwrap()],
        wrapped.then_some(layer.wrapper().as_path()),
        &[],
        &root(),
        std::time::Duration::from_secs(20),
    )
}

#[test]
fn seccomp_filters_see_no_call_the_host_does_not_make() {
    // Container profiles answer calls they do not allow with SIGSYS or EPERM. The write hook
    // once peeked at the host's buffer with process_vm_readv: under "trap" the host died of
    // SIGSYS, under "errno" a bad pointer crashed it and a good write left errno EPERM.
    let seccomp = compile_program("seccomp_exec", "seccomp_exec", &[]);
    let runtime = compile_program("c_runtime", "c_runtime_seccomp", &["-O1"]);
    for mode in ["trap", "errno"] {
        let mut s = Scenario::new(
            vec![
                seccomp.display().to_string(),
                mode.into(),
                runtime.display().to_string(),
            ],
            root(),
        );
        s.compare_output = true;
        s.payloads = vec![
            json!({"action": "ok"}),
            json!({"action": "probe_writes"}),
            json!({"action": "ok"}),
        ];
        let out = s.check();
        let probe = out.sim.results()[1].clone().expect("result").body;
        assert_eq!(
            String::from_utf8_lossy(&probe),
            r#"{"bad":-1,"bad_errno":14,"errno_after":00}"#,
            "under {mode}: EFAULT for a bad pointer, errno untouched by a good write"
        );
    }
}

#[test]
fn hooks_work_before_the_library_constructor() {
    // Another preloaded library's constructor runs before ours: its fcntl calls once failed
    // with ENOSYS. Every hook must work from the first instruction of the process.
    let early = profile_dir().join("test-programs/libearly_ctor.so");
    std::fs::create_dir_all(early.parent().unwrap()).unwrap();
    let status = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&early)
        .arg(root().join("tests/programs/early_ctor.c"))
        .status()
        .expect("cc");
    assert!(status.success());
    let run = |preload: String| {
        let out = std::process::Command::new("sh")
            .args(["-c", "exit 0"])
            .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
            .env("LD_PRELOAD", preload)
            .output()
            .expect("sh");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let plain = run(early.display().to_string());
    let metered = run(format!("{} {}", library().display(), early.display()));
    assert_eq!(
        plain,
        "early: fcntl=0 errno=0 dupfd=ok sigaction=0 default=1\n"
    );
    assert_eq!(plain, metered);
}

#[test]
fn warnings_come_from_the_runtime_process_only() {
    // Every process that inherits the preload may read the settings; a handler that captures a
    // command's output, $(sh -c uname 2>&1), once captured the warning too. Only the process
    // that talks to the Runtime API says what is wrong with them, once.
    let layer = Layer::new();
    let command = python_command("handler.dispatch");
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    let events = || {
        events(&[
            json!({"action": "subprocess", "how": "run"}),
            json!({"action": "subprocess", "how": "check_output"}),
        ])
    };
    let env = [("LAMBDA_METER_NAMESPACE", "not valid!")];
    let dir = python_function_dir();
    let plain = run(events(), &command, None, &env, &dir);
    let metered = run(events(), &command, Some(&layer.wrapper()), &env, &dir);
    let results = |o: &Outcome| -> Vec<Vec<u8>> {
        o.sim
            .results()
            .iter()
            .map(|r| r.clone().unwrap().body)
            .collect()
    };
    assert_eq!(
        results(&plain),
        results(&metered),
        "what the children printed"
    );
    let warnings: Vec<&str> = metered
        .run
        .stderr
        .lines()
        .filter(|l| l.contains("lambda-meter"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning, from the runtime: {warnings:?}"
    );
    assert!(warnings[0].contains("LAMBDA_METER_NAMESPACE"));
}

#[test]
fn fork_with_atfork_handlers_that_touch_the_runtime_api_socket() {
    // The prepare handler dups and closes the socket, the child handler closes it. With the
    // fork hook holding its locks across the real fork, the parent hung.
    let probe = compile_program("atfork_probe", "atfork_probe", &["-pthread"]);
    let run = |wrapped: bool| run_program(&probe, &[], wrapped);
    let (plain, metered) = (run(false), run(true));
    let expected = "connect 0\nfork 0: child exited 7\nfork 1: child exited 7\n";
    assert_eq!(plain.run.stdout, expected);
    assert_eq!(
        metered.run.stdout, expected,
        "stderr: {}",
        metered.run.stderr
    );
    assert_eq!(plain.run.exited.map(|s| s.code()), Some(Some(0)));
    assert_eq!(metered.run.exited.map(|s| s.code()), Some(Some(0)));
}

#[test]
fn recv_with_msg_trunc_on_the_runtime_api_socket() {
    // TCP discards MSG_TRUNC bytes without copying them (the buffer may be NULL): the library
    // cannot see them, so it stops following that connection instead of reading the buffer.
    let probe = compile_program("trunc_probe", "trunc_probe", &[]);
    let run = |wrapped: bool| run_program(&probe, &[json!({"action": "ok"})], wrapped);
    let (plain, metered) = (run(false), run(true));
    assert_eq!(
        plain.run.stdout,
        "peeked head, dropped all of it\nposted: 202\n"
    );
    assert_eq!(
        plain.run.stdout, metered.run.stdout,
        "{}",
        metered.run.stderr
    );
    assert_eq!(
        plain.run.exited.map(|s| s.code()),
        metered.run.exited.map(|s| s.code())
    );
    assert!(!metered.run.stderr.contains("lambda-meter: "));
}

#[test]
fn a_still_connected_check_keeps_the_connection_followed() {
    // A second connect() on the connected socket fails with EISCONN: once that stopped the
    // library following it, and no invoke was recorded.
    let runtime = compile_program("c_runtime", "c_runtime_isconn", &["-O1"]);
    let mut s = Scenario::new(vec![runtime.display().to_string()], root())
        .env("C_RUNTIME_CHECK_CONNECTED", "1");
    s.compare_output = true;
    s.check();
}

#[test]
fn fclose_of_a_stdio_wrapped_socket_untracks_it() {
    let probe = compile_program("fclose_probe", "fclose_probe", &[]);
    let run = |wrapped: bool| run_program(&probe, &[], wrapped);
    let (plain, metered) = (run(false), run(true));
    assert_eq!(
        plain.run.stdout,
        "reused fd: yes, read the whole file: yes\n"
    );
    assert_eq!(
        (&plain.run.stdout, &plain.run.stderr),
        (&metered.run.stdout, &metered.run.stderr)
    );
}

/// Runs the C runtime on `payloads` with a stdout pipe whose reader has exited (the runtime
/// never writes there itself), through the wrapper or not, with `env`.
fn run_with_readerless_stdout(
    payloads: &[serde_json::Value],
    env: &[(&str, &str)],
    wrapped: bool,
) -> Outcome {
    let runtime = compile_program("c_runtime", "c_runtime_sigpipe", &["-O1"]);
    let layer = Layer::new();
    let rt = runtime.display().to_string();
    let wrapper = layer.wrapper().display().to_string();
    let mut cmd = vec!["sh".to_string(), "-c".into()];
    if wrapped {
        cmd.extend(["( exec \"$0\" \"$1\" ) | true".into(), wrapper, rt]);
    } else {
        cmd.extend(["( exec \"$0\" ) | true".into(), rt]);
    }
    run_command(&cmd, payloads, env, 20)
}

/// [`run_with_readerless_stdout`] without and with the library: every event answered both
/// ways, with the same results. Returns the metered run.
fn readerless_stdout_both_ways(payloads: &[serde_json::Value], env: &[(&str, &str)]) -> Outcome {
    let plain = run_with_readerless_stdout(payloads, env, false);
    let metered = run_with_readerless_stdout(payloads, env, true);
    assert!(plain.run.idle, "every event answered without the library");
    assert!(
        metered.run.idle,
        "every event answered with it: {}",
        metered.run.stderr
    );
    support::scenario::assert_same_results(&plain, &metered);
    metered
}

#[test]
fn a_stdout_whose_reader_is_gone_raises_no_sigpipe() {
    // Our record's write must not kill the runtime with a SIGPIPE it would never have got.
    let payloads = [
        json!({"action": "ok"}),
        json!({"action": "ok"}),
        json!({"action": "ok"}),
    ];
    let metered = readerless_stdout_both_ways(&payloads, &[]);
    let ours: Vec<&str> = metered
        .run
        .stderr
        .lines()
        .filter(|l| l.starts_with("lambda-meter: "))
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "one warning about the dropped record: {ours:?}"
    );
}

#[test]
fn a_stdout_whose_reader_is_gone_raises_no_sigpipe_after_the_host_stops_ignoring_it() {
    // The runtime ignores SIGPIPE, so the first record's write to its reader-less stdout
    // raises none; then the handler puts the default action back with a raw rt_sigaction,
    // which only the syscall hook sees. The records after it must not kill the runtime with
    // the SIGPIPE the kept "ignored" would no longer stop.
    let payloads = [
        json!({"action": "ok"}),
        json!({"action": "sigpipe_default"}),
        json!({"action": "ok"}),
        json!({"action": "ok"}),
    ];
    let env = [("C_RUNTIME_IGNORE_SIGPIPE", "1")];
    readerless_stdout_both_ways(&payloads, &env);
}

#[test]
fn a_file_put_on_stdout_with_a_raw_dup3_gets_no_record() {
    // After one record went to stdout, the handler puts a file of its own on fd 1 with a raw
    // dup3 (past libc's wrapper: only the syscall hook sees it) and writes a line there. What
    // the library knew of fd 1 is forgotten: the file holds the handler's line alone, as
    // without the library, and the later records are not written there.
    let runtime = compile_program("c_runtime", "c_runtime_stdout_file", &["-O1"]);
    let layer = Layer::new();
    let tmp = tempdir::TempDir::new("stdout-file");
    let file = |wrapped: bool| tmp.path().join(format!("stdout-{wrapped}"));
    let run = |wrapped: bool| {
        let path = file(wrapped).display().to_string();
        run_until(
            lambda_sim::Config {
                events: events(&[
                    json!({"action": "ok"}),
                    json!({"action": "stdout_to_file"}),
                    json!({"action": "ok"}),
                    json!({"action": "ok"}),
                ]),
                ..lambda_sim::Config::default()
            },
            &[runtime.to_str().unwrap()],
            wrapped.then_some(layer.wrapper().as_path()),
            &[("C_RUNTIME_STDOUT_FILE", path.as_str())],
            &root(),
            std::time::Duration::from_secs(20),
        )
    };
    let (plain, metered) = (run(false), run(true));
    assert!(
        metered.run.idle,
        "every event answered: {}",
        metered.run.stderr
    );
    support::scenario::assert_same_results(&plain, &metered);
    let read = |wrapped: bool| std::fs::read_to_string(file(wrapped)).unwrap();
    assert_eq!(read(false), "the handler's own file\n");
    assert_eq!(read(true), read(false), "the handler's file on fd 1");
    assert!(
        !metered.records().is_empty(),
        "the first invoke's record went to the runtime's stdout"
    );
}

#[test]
fn a_signal_handler_that_writes_to_and_closes_the_socket() {
    // The handler writes a prepared /error one byte per SIGALRM (every 100 µs, while the main
    // thread allocates in a loop), then closes the socket. Hooks that allocated or locked inside
    // the handler hung when the signal landed inside malloc. Three runs: the hang needed luck.
    let probe = compile_program("signal_probe", "signal_probe", &["-O1"]);
    let run = |wrapped: bool| run_program(&probe, &[json!({"action": "ok"})], wrapped);
    let plain = run(false);
    assert!(
        plain
            .run
            .stdout
            .ends_with("from the handler, then closed\n"),
        "{}",
        plain.run.stdout
    );
    for _ in 0..3 {
        let metered = run(true);
        assert_eq!(
            plain.other_stdout(),
            metered.other_stdout(),
            "{}",
            metered.run.stderr
        );
        // What the handler sent is replayed once the engine can be entered again: the invoke
        // ended with its /error, as the Runtime API saw it.
        let records = metered.records();
        assert_eq!(records.len(), 1, "{}", metered.run.stdout);
        assert_eq!(records[0]["errorType"], "Crashed");
        assert_eq!(records[0]["Errors"], 1.0);
        assert!(!metered.run.stderr.contains("lambda-meter: "));
        assert_eq!(
            plain.run.exited.map(|s| s.code()),
            metered.run.exited.map(|s| s.code())
        );
        support::scenario::assert_same_results(&plain, &metered);
    }
}

#[test]
fn the_host_sees_its_own_signal_handlers() {
    // The host must read back exactly what it installed (handler, flags, mask), for sigaction
    // and signal, after SA_RESETHAND fired, and after leaving a handler with siglongjmp.
    let probe = compile_program("sigview_probe", "sigview_probe", &[]);
    let run = |preload: bool| {
        let mut c = std::process::Command::new(&probe);
        c.env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
            .env_remove("LD_PRELOAD");
        if preload {
            c.env("LD_PRELOAD", library());
        }
        let out = c.output().expect("sigview_probe");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let plain = run(false);
    assert!(plain.contains("SIGUSR1: with_info") && plain.contains("jumped back with 11"));
    assert_eq!(plain, run(true));
}

/// Runs `runtime` (with `env`) with its stdout piped into `reader`, a shell command, through
/// the wrapper or not. The reader runs in a session of its own, out of the process group the
/// runner kills once the simulator is idle, and is in it before the runtime starts: it reads
/// the pipe (a FIFO) to its end, so every byte the runtime wrote is in the output however far
/// behind the reader was.
fn piped(
    runtime: &std::path::Path,
    reader: &str,
    payloads: &[serde_json::Value],
    env: &[(&str, &str)],
    wrapped: bool,
) -> Outcome {
    let layer = Layer::new();
    let dir = tempdir::TempDir::new("fifo");
    let fifo = dir.path().join("stdout");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    // Opening the FIFO to write waits for the reader to open it, after its setsid.
    let script = format!(
        "fifo=$1; shift; setsid sh -c 'exec <\"$0\"; {reader}' \"$fifo\" & exec \"$@\" >\"$fifo\""
    );
    let mut cmd = vec!["sh".to_string(), "-c".into(), script, "sh".into()];
    cmd.push(fifo.display().to_string());
    if wrapped {
        cmd.push(layer.wrapper().display().to_string());
    }
    cmd.push(runtime.display().to_string());
    run_command(&cmd, payloads, env, 30)
}

/// Runs `cmd` (which starts the runtime itself, wrapper or not) against a simulator serving
/// `payloads`, for at most `seconds`.
fn run_command(
    cmd: &[String],
    payloads: &[serde_json::Value],
    env: &[(&str, &str)],
    seconds: u64,
) -> Outcome {
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    run_until(
        lambda_sim::Config {
            events: events(payloads),
            ..lambda_sim::Config::default()
        },
        &cmd,
        None,
        env,
        &root(),
        std::time::Duration::from_secs(seconds),
    )
}

#[test]
fn a_full_non_blocking_stdout_loses_no_record() {
    // The runtime sets O_NONBLOCK on its stdout (Node does on pipes) and fills it; nobody reads
    // the pipe until the runtime's watcher has seen either a thread blocked in ppoll (the
    // record waiting for room) or the runtime go on to its next event. The record must wait
    // for room instead of being dropped, whatever the machine's speed.
    let runtime = compile_program("c_runtime", "c_runtime_nonblock", &["-O1", "-pthread"]);
    let payloads = [
        json!({"action": "fill_stdout"}),
        json!({"action": "ok"}),
        json!({"action": "fill_stdout"}),
        json!({"action": "ok"}),
    ];
    // The reader opens the pipe at once but reads it only once the marker is there (checked
    // every 10 ms; after 20 s it reads anyway, and the marker's check below fails).
    let reader = r#"i=0; while [ ! -e "$C_RUNTIME_FULL_MARKER" ] && [ $i -lt 2000 ]; do sleep 0.01; i=$((i+1)); done; exec cat"#;
    let dir = tempdir::TempDir::new("full-stdout");
    let run = |wrapped: bool| {
        let marker = dir.path().join(if wrapped { "metered" } else { "plain" });
        let marker_text = marker.display().to_string();
        let env = [
            ("C_RUNTIME_NONBLOCK_STDOUT", "1"),
            ("C_RUNTIME_FULL_MARKER", marker_text.as_str()),
        ];
        let outcome = piped(&runtime, reader, &payloads, &env, wrapped);
        let seen = std::fs::read_to_string(&marker).unwrap_or_default();
        (outcome, seen)
    };
    let (plain, plain_seen) = run(false);
    let (metered, metered_seen) = run(true);
    assert!(plain.run.idle && metered.run.idle, "{}", metered.run.stderr);
    // Without the library nothing waits: the runtime went on with its stdout full. With it,
    // the first invoke's record found the pipe full and waited in ppoll for the reader.
    assert_eq!(plain_seen, "went on\n", "{}", plain.run.stderr);
    assert_eq!(metered_seen, "waited\n", "{}", metered.run.stderr);
    support::scenario::assert_same_results(&plain, &metered);
    // (The outputs are not compared line for line: how many lines the second fill writes
    // depends on how fast the reader drains the pipe by then.)
    assert_eq!(metered.records().len(), 4, "{}", metered.run.stderr);
    // Every line arrived whole: the runtime's own 1 KiB lines, and in the metered run records.
    let full_pipes = |o: &Outcome| {
        let fill = "f".repeat(1023);
        let lines: Vec<&str> = o.run.stdout.lines().collect();
        let own = lines.iter().filter(|l| **l == fill).count();
        let records = lines.iter().filter(|l| l.starts_with("{\"_aws\"")).count();
        assert_eq!(own + records, lines.len(), "a line was torn");
        own
    };
    // The first fill filled the 64 KiB pipe in both runs, and the reader got all of it.
    let (p, m) = (full_pipes(&plain), full_pipes(&metered));
    assert!(p >= 64 && m >= 64, "{p} {m}");
    assert!(
        !metered.run.stderr.contains("lambda-meter: "),
        "{}",
        metered.run.stderr
    );
}

#[test]
fn a_fork_around_the_fork_hook_writes_no_record_twice() {
    // A raw clone() forks without the hook while a finished invoke's record waits for the next
    // /next; the child then exits normally. The child must not write the parent's record (nor
    // wait for a lock the parent held): one record per invoke.
    let runtime = compile_program("c_runtime", "c_runtime_rawfork", &["-O1"]);
    let mut s = Scenario::new(vec![runtime.display().to_string()], root());
    s.compare_output = true;
    s.payloads = vec![
        json!({"action": "ok"}),
        json!({"action": "rawfork"}),
        json!({"action": "ok"}),
        json!({"action": "rawfork"}),
    ];
    s.check();
}

#[test]
fn sendfile_to_the_socket_stops_following_it_quietly() {
    let probe = compile_program("sendfile_probe", "sendfile_probe", &[]);
    let run = |wrapped: bool| run_program(&probe, &[json!({"action": "ok"})], wrapped);
    let (plain, metered) = (run(false), run(true));
    assert_eq!(plain.run.stdout, "sendfile whole, posted 202\n");
    assert_eq!(plain.run.stdout, metered.run.stdout);
    assert!(
        !metered.run.stderr.contains("lambda-meter: "),
        "{}",
        metered.run.stderr
    );
}

fn stdio_runtime() -> Scenario {
    // Compiled once: two tests run it at the same time.
    static BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let runtime = BIN.get_or_init(|| compile_program("stdio_runtime", "stdio_runtime", &["-O1"]));
    let mut s = Scenario::new(vec![runtime.display().to_string()], root());
    s.compare_output = true;
    s.payloads = vec![
        json!({"action": "ok"}),
        json!({"action": "fail", "type": "ValueError"}),
        json!({"action": "big", "bytes": 300_000}),
        json!({"action": "echo", "pad": "p".repeat(50_000)}),
        json!({"action": "ok"}),
    ];
    s
}

#[test]
fn a_runtime_that_talks_through_stdio_is_followed() {
    // fdopen'd streams on the socket: fputs/fprintf/fwrite out, fgets/fgetc/fread in. The
    // bytes move inside libc, where only the stdio hooks can see them.
    stdio_runtime().check();
}

#[test]
fn a_runtime_that_talks_through_stdio_over_tiny_writes() {
    stdio_runtime().tiny_writes().check();
}
