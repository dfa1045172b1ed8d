//! Lifecycle truth, through the wrapper with real runtime clients: timeouts, freeze and thaw,
//! init errors, cold-start kinds (provisioned, proactive, SnapStart), streaming, post-response
//! time, opt-in metrics, and every setting with its answer to a wrong value.

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
use std::path::PathBuf;
use std::time::Duration;
use support::scenario::by_request_id;
use support::*;

/// Runs the Python test function through the wrapper with `config`'s events and settings.
fn python_run(config: Config, env: &[(&str, &str)]) -> Outcome {
    python_handler_run("handler.dispatch", config, env)
}

fn python_handler_run(handler: &str, config: Config, env: &[(&str, &str)]) -> Outcome {
    let layer = Layer::new();
    let cmd = python_command(handler);
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    run_with(
        config,
        &cmd,
        Some(&layer.wrapper()),
        env,
        &python_function_dir(),
    )
}

fn config(payloads: &[Value]) -> Config {
    Config {
        events: events(payloads),
        ..Config::default()
    }
}

fn record_for(records: &[Value], event: usize) -> &Value {
    let id = format!("00000000-0000-4000-8000-{:012}", event + 1);
    records
        .iter()
        .find(|r| r["requestId"] == id.as_str())
        .unwrap_or_else(|| panic!("no record for event {event}"))
}

fn metric_names(record: &Value) -> Vec<String> {
    record["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap().to_string())
        .collect()
}

fn no_library_stderr(out: &Outcome) {
    assert!(
        !out.run.stderr.contains("lambda-meter"),
        "{}",
        out.run.stderr
    );
}

/// glibc takes every thread's static TLS out of that thread's stack: a host whose objects hold
/// a quarter of a megabyte of it (here the loader's surplus, raised with a tunable) would leave
/// a watchdog on a plain 256 KiB stack nothing (it overflowed into its guard page) or no
/// thread at all (creation fails). The watchdog asks for its own room on top, and the
/// timed-out invoke still has its record.
#[test]
fn a_host_with_large_static_tls_still_gets_its_timeout_record() {
    for kb in [240, 400] {
        let mut cfg = config(&[
            json!({"action": "ok"}),
            json!({"action": "sleep", "ms": 3_000}),
        ]);
        cfg.timeout = Duration::from_millis(1_000);
        let tunable = format!("glibc.rtld.optional_static_tls={}", kb * 1024);
        let out = python_run(cfg, &[("GLIBC_TUNABLES", &tunable)]);
        no_library_stderr(&out);
        let records = out.records();
        let t = record_for(&records, 1);
        assert_eq!(t["Timeouts"], 1.0, "{kb} KiB of static TLS: {t}");
        assert_eq!(t["errorType"], "Sandbox.Timedout", "{t}");
    }
}

#[test]
fn a_timeout_is_recorded_before_the_kill_and_the_next_environment_starts_cold() {
    let mut cfg = config(&[
        json!({"action": "ok"}),
        json!({"action": "sleep", "ms": 5_000}),
        json!({"action": "ok"}),
        json!({"action": "ok"}),
    ]);
    cfg.timeout = Duration::from_millis(1_500);
    let out = python_run(cfg, &[]);
    no_library_stderr(&out);
    // The simulator stopped the runtime at the deadline and started a new one.
    assert_eq!(out.run.starts, 2);
    assert_eq!(out.sim.timeout_count(), 1);
    assert!(matches!(
        out.sim.results()[1].as_ref().unwrap().outcome,
        SimOutcome::Timeout
    ));
    let records = out.records();
    assert_valid_emf(&records);
    assert_eq!(
        by_request_id(&records).len(),
        4,
        "one record per invoke, the timed-out one too"
    );
    let t = record_for(&records, 1);
    assert_eq!(t["Timeouts"], 1.0);
    assert_eq!(t["Errors"], 1.0);
    // A timeout record (not the `Runtime.ExitError` a successor writes for a process that
    // vanished) can only come from the process itself, before the simulator stopped it at the
    // deadline.
    assert_eq!(t["errorType"], "Sandbox.Timedout");
    assert!(t.get("exitReason").is_none(), "{t}");
    for i in [0, 2, 3] {
        assert_eq!(record_for(&records, i)["Timeouts"], 0.0);
    }
    // Each environment had its own cold start.
    assert_eq!(record_for(&records, 0)["ColdStart"], 1.0);
    assert_eq!(record_for(&records, 2)["ColdStart"], 1.0);
    assert_eq!(record_for(&records, 3)["ColdStart"], 0.0);
}

/// Runs `command` (in `cwd`) without and with the layer, its first process taking 3 s to
/// load under a 1.5 s timeout: the first event times out waiting for that init, the runtime is
/// stopped, and the next one (fast) serves the rest. Returns the metered run.
fn slow_first_init(command: &[String], cwd: &std::path::Path, env: &[(&str, &str)]) -> Outcome {
    let layer = Layer::new();
    let cmd: Vec<&str> = command.iter().map(String::as_str).collect();
    let mut env = env.to_vec();
    env.push(("TEST_SLOW_FIRST_INIT_MS", "3000"));
    let run = |wrapped: bool| {
        let mut cfg = config(&[
            json!({"action": "ok"}),
            json!({"action": "ok"}),
            json!({"action": "ok"}),
        ]);
        cfg.timeout = Duration::from_millis(1_500);
        let wrapper = layer.wrapper();
        run_with(cfg, &cmd, wrapped.then_some(wrapper.as_path()), &env, cwd)
    };
    let (plain, metered) = (run(false), run(true));
    for o in [&plain, &metered] {
        assert_eq!(
            o.sim.init_timeout_count(),
            1,
            "the first init ran past the timeout"
        );
        assert_eq!(o.run.starts, 2);
    }
    assert_eq!(plain.invoke_endings(), metered.invoke_endings());
    assert!(plain.raw_records().is_empty());
    no_library_stderr(&metered);
    metered
}

/// The invoke that waited for the init that ran past the timeout has its record (no request
/// id: the runtime never saw it); the two that followed have theirs, the first of them the
/// new environment's one cold start.
fn check_slow_first_init(metered: &Outcome) {
    let records = metered.records();
    assert_valid_emf(&records);
    assert_eq!(records.len(), 3, "one record per invoke: {records:?}");
    let waited: Vec<&Value> = records
        .iter()
        .filter(|r| r.get("requestId").is_none())
        .collect();
    assert_eq!(waited.len(), 1, "{records:?}");
    let w = waited[0];
    assert_eq!(w["Timeouts"], 1.0, "{w}");
    assert_eq!(w["Errors"], 1.0);
    assert_eq!(w["errorType"], "Sandbox.Timedout");
    assert_eq!(w["initStatus"], "timeout");
    assert_eq!(w["ColdStart"], 1.0);
    assert!(
        w.get("InitDuration").is_some() && w.get("CpuTime").is_none(),
        "{w}"
    );
    assert!(
        w.get("MaxMemoryUsed").is_none(),
        "not known after the kill: {w}"
    );
    assert_eq!(record_for(&records, 1)["ColdStart"], 1.0);
    assert_eq!(record_for(&records, 1)["Timeouts"], 0.0);
    assert_eq!(record_for(&records, 2)["ColdStart"], 0.0);
    let timeouts: f64 = records
        .iter()
        .map(|r| r["Timeouts"].as_f64().unwrap())
        .sum();
    assert_eq!(timeouts, 1.0);
}

#[test]
fn python_an_invoke_that_waited_for_an_init_past_the_timeout_has_its_record() {
    let metered = slow_first_init(
        &python_command("handler.dispatch"),
        &python_function_dir(),
        &[],
    );
    check_slow_first_init(&metered);
}

#[test]
fn node_an_invoke_that_waited_for_an_init_past_the_timeout_has_its_record() {
    let metered = slow_first_init(&node_command("index.handler"), &node_function_dir(), &[]);
    check_slow_first_init(&metered);
}

#[test]
fn a_result_after_the_timeout_record_gives_no_second_record() {
    // Reported 1 s into the invoke (3 s before a 4 s deadline); the handler sleeps 2 s, so it
    // finishes after the report and before the deadline, each by a second: twice the time to
    // the report, half the time to the deadline, whatever the machine's speed.
    let mut cfg = config(&[
        json!({"action": "sleep", "ms": 2_000}),
        json!({"action": "ok"}),
    ]);
    cfg.timeout = Duration::from_millis(4_000);
    let out = python_run(cfg, &[("LAMBDA_METER_TIMEOUT_MARGIN_MS", "3000")]);
    no_library_stderr(&out);
    assert_eq!(out.run.starts, 1, "no deadline passed");
    assert!(matches!(
        out.sim.results()[0].as_ref().unwrap().outcome,
        SimOutcome::Response
    ));
    let records = out.records();
    assert_eq!(by_request_id(&records).len(), 2);
    assert_eq!(record_for(&records, 0)["Timeouts"], 1.0);
    assert_eq!(record_for(&records, 1)["Timeouts"], 0.0);
}

#[test]
fn freeze_and_thaw_between_invokes_fire_no_watchdog() {
    let mut cfg = config(&[
        json!({"action": "sleep", "ms": 50}),
        json!({"action": "ok"}),
        json!({"action": "ok"}),
    ]);
    // 2 s, not 1: the runtime must also ask for its first event within the timeout of its
    // start (the simulator's init deadline), and the Python client's start on two busy cores
    // (up to 0.4 s seen) should not come near it.
    cfg.timeout = Duration::from_millis(2_000);
    // Frozen longer than the timeout, after each invoke.
    cfg.freeze_between = Some(Duration::from_millis(2_500));
    let out = python_run(cfg, &[]);
    no_library_stderr(&out);
    assert_eq!(out.sim.timeout_count(), 0);
    let records = out.records();
    assert_eq!(by_request_id(&records).len(), 3);
    for r in &records {
        assert_eq!(r["Timeouts"], 0.0, "{r}");
        assert_eq!(r["Errors"], 0.0, "{r}");
    }
}

#[test]
fn an_init_error_is_a_record_with_its_type_and_init_duration() {
    let out = python_handler_run("init_error.handler", config(&[json!({})]), &[]);
    no_library_stderr(&out);
    let sent = out
        .sim
        .init_error()
        .expect("the runtime reported an init error");
    let sent: Value = serde_json::from_slice(&sent.body).unwrap();
    let records = out.records();
    assert_valid_emf(&records);
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["InitErrors"], 1.0);
    assert_eq!(r["errorType"], sent["errorType"]);
    assert!(r["InitDuration"].as_f64().unwrap() > 0.0);
    assert!(!metric_names(r).contains(&"Duration".to_string()));
}

#[test]
fn provisioned_concurrency_is_never_a_cold_start() {
    let out = python_run(
        config(&[json!({"action": "ok"}), json!({"action": "ok"})]),
        &[("AWS_LAMBDA_INITIALIZATION_TYPE", "provisioned-concurrency")],
    );
    for r in out.records() {
        assert_eq!(r["ColdStart"], 0.0);
        assert_eq!(r["initType"], "provisioned-concurrency");
        assert!(r.get("InitDuration").is_none());
    }
}

#[test]
fn a_proactive_init_is_reported_as_such_not_as_a_cold_start() {
    let proactive = |env: &[(&str, &str)]| {
        let mut cfg = config(&[json!({"action": "ok"}), json!({"action": "ok"})]);
        cfg.first_event_delay = Some(Duration::from_millis(1_500));
        python_run(cfg, env).raw_records()
    };
    let records = proactive(&[]);
    let first = record_for(&records, 0);
    assert_eq!(first["ColdStart"], 0.0);
    assert_eq!(first["initType"], "proactive-initialization");
    // The environment was initialised ahead of demand: its later records say so through the
    // stream's first record (the property is not repeated).
    assert!(record_for(&records, 1).get("initType").is_none());
    // With a higher threshold the same wait is an ordinary cold start.
    let records = proactive(&[("LAMBDA_METER_PROACTIVE_INIT_MS", "10000")]);
    assert_eq!(record_for(&records, 0)["ColdStart"], 1.0);
    assert_eq!(record_for(&records, 0)["initType"], "on-demand");
}

#[test]
fn snapstart_restore_gives_restore_duration_on_the_first_invoke() {
    let mut cfg = config(&[json!({"action": "ok"}), json!({"action": "ok"})]);
    cfg.restore_delay = Duration::from_millis(100);
    let out = python_run(cfg, &[("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")]);
    no_library_stderr(&out);
    assert!(
        out.sim
            .requests()
            .iter()
            .any(|r| r.target.ends_with("/runtime/restore/next")),
        "the real client asked for its restore"
    );
    let records = out.records();
    assert_valid_emf(&records);
    let first = record_for(&records, 0);
    assert_eq!(first["restored"], true);
    assert!(first["RestoreDuration"].is_number(), "{first}");
    assert_eq!(first["ColdStart"], 0.0);
    assert_eq!(first["initType"], "snap-start");
    let second = record_for(&records, 1);
    assert!(second.get("restored").is_none() && second.get("RestoreDuration").is_none());
}

fn node_dir() -> PathBuf {
    node_function_dir()
}

#[test]
fn streamed_results_report_time_to_first_byte() {
    let dir = node_dir();
    let bin = dir.join("node_modules/aws-lambda-ric/bin/index.mjs");
    let layer = Layer::new();
    let out = run(
        events(&[
            json!({"action": "ok"}),
            json!({"action": "big", "bytes": 300_000}),
        ]),
        &["node", bin.to_str().unwrap(), "streaming.handler"],
        Some(&layer.wrapper()),
        &[("LAMBDA_TASK_ROOT", dir.to_str().unwrap())],
        &dir,
    );
    let records = out.records();
    assert_eq!(records.len(), 2);
    for (i, r) in records.iter().enumerate() {
        let ttfb = r["TimeToFirstByte"].as_f64().expect("TimeToFirstByte");
        assert!(ttfb <= r["Duration"].as_f64().unwrap(), "{r}");
        let results = out.sim.results();
        let body = &results[i].as_ref().unwrap().body;
        assert_eq!(
            record_for(&records, i)["ResponseBytes"].as_f64().unwrap() as usize,
            body.len()
        );
    }
}

#[test]
fn post_response_time_is_measured_to_the_next_request() {
    let layer = Layer::new();
    let out = run(
        events(&[
            json!({"action": "ok"}),
            json!({"action": "ok", "postMs": 300}),
            json!({"action": "ok"}),
        ]),
        &["node", "http-loop.mjs"],
        Some(&layer.wrapper()),
        &[],
        &node_dir(),
    );
    let records = out.records();
    assert_eq!(records.len(), 3);
    let slow = record_for(&records, 1)["PostResponseDuration"]
        .as_f64()
        .unwrap();
    // A lower bound a 300 ms sleep guarantees, however slow the machine.
    assert!(
        slow >= 300.0,
        "PostResponseDuration {slow} covers the work after the response"
    );
    // The Python client asks for the next event right away: present on every record.
    let py = python_run(
        config(&[json!({"action": "ok"}), json!({"action": "ok"})]),
        &[],
    );
    for r in py.records() {
        assert!(r["PostResponseDuration"].is_number(), "{r}");
    }
}

#[test]
fn extended_metrics_are_opt_in() {
    let payloads = [
        json!({"action": "ok"}),
        json!({"action": "fds", "n": 25}),
        json!({"action": "threads", "n": 4}),
    ];
    let default = python_run(config(&payloads), &[]);
    for r in default.records() {
        for m in [
            "OpenFds",
            "Threads",
            "TmpUsed",
            "NetworkBytesIn",
            "NetworkBytesOut",
        ] {
            assert!(
                !metric_names(&r).contains(&m.to_string()),
                "{m} is off by default"
            );
            assert!(r.get(m).is_none());
        }
    }
    let all = python_run(config(&payloads), &[("LAMBDA_METER_METRICS", "all")]);
    no_library_stderr(&all);
    let records = all.records();
    assert_valid_emf(&records);
    let (base, fds, threads) = (
        record_for(&records, 0),
        record_for(&records, 1),
        record_for(&records, 2),
    );
    assert!(fds["OpenFds"].as_f64().unwrap() >= base["OpenFds"].as_f64().unwrap() + 25.0);
    assert!(threads["Threads"].as_f64().unwrap() >= base["Threads"].as_f64().unwrap() + 4.0);
    for r in &records {
        assert!(r["TmpUsed"].as_f64().unwrap() > 0.0);
        // Counters' changes: whole numbers, present on every record.
        assert!(r["NetworkBytesIn"].is_u64(), "{r}");
        assert!(r["NetworkBytesOut"].is_u64(), "{r}");
    }
}

#[test]
fn service_dimensions_metric_selection_and_resolution() {
    let one = [json!({"action": "ok"})];
    let r = &python_run(config(&one), &[("LAMBDA_METER_SERVICE", "shop")]).records()[0];
    assert_eq!(
        r["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["FunctionName", "service"]])
    );
    assert_eq!(r["service"], "shop");
    let r = &python_run(config(&one), &[("POWERTOOLS_SERVICE_NAME", "cart")]).records()[0];
    assert_eq!(r["service"], "cart");
    let out = python_run(
        config(&one),
        &[
            ("LAMBDA_METER_SERVICE", "shop"),
            ("LAMBDA_METER_DIMENSIONS", "FunctionName;service,runtime"),
        ],
    );
    let records = out.records();
    assert_valid_emf(&records);
    assert_eq!(
        records[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["FunctionName"], ["service", "runtime"]])
    );
    let r = &python_run(config(&one), &[("LAMBDA_METER_METRICS", "Duration,Errors")]).records()[0];
    assert_eq!(metric_names(r), vec!["Duration", "Errors"]);
    // The others stay in the record as plain values, not billed.
    assert!(r["ColdStart"].is_number() && r["CpuTime"].is_number());
    let records = python_run(config(&one), &[("LAMBDA_METER_RESOLUTION", "1")]).records();
    assert_valid_emf(&records);
    for m in records[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
    {
        assert_eq!(m["StorageResolution"], 1, "{m}");
    }
}

/// The records a run with `LAMBDA_METER_DESTINATION=dest` sent to a stream its listener hands
/// to `accept` (the first two lines of the first connection): run on another thread.
fn lines_streamed<S: std::io::Read>(
    accept: impl FnOnce() -> S + Send + 'static,
) -> std::thread::JoinHandle<Vec<Value>> {
    use std::io::{BufRead, BufReader};
    std::thread::spawn(move || {
        let lines: Vec<String> = BufReader::new(accept())
            .lines()
            .take(2)
            .map(|l| l.unwrap())
            .collect();
        lambda_sim::summary::emf_records(&lines.join("\n"))
    })
}

/// The records in the first two datagrams `recv` takes (20 s at most each).
fn records_in_datagrams(recv: impl Fn(&mut [u8]) -> std::io::Result<usize>) -> Vec<Value> {
    let mut buf = vec![0u8; 65536];
    let got: Vec<String> = (0..2)
        .map(|_| {
            let n = recv(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        })
        .collect();
    lambda_sim::summary::emf_records(&got.join(""))
}

#[test]
fn destinations_stderr_file_tcp_udp_unix() {
    use std::net::{TcpListener, UdpSocket};
    use std::os::unix::net::{UnixDatagram, UnixListener};
    let two = [json!({"action": "ok"}), json!({"action": "ok"})];
    let to = |dest: &str| {
        let out = python_run(config(&two), &[("LAMBDA_METER_DESTINATION", dest)]);
        assert!(out.records().is_empty(), "nothing on stdout");
        out
    };
    // stderr
    let out = to("stderr");
    assert_eq!(lambda_sim::summary::emf_records(&out.run.stderr).len(), 2);
    // file
    let dir = tempdir::TempDir::new("dest");
    let file = dir.path().join("emf.log");
    no_library_stderr(&to(&format!("file:{}", file.display())));
    let text = std::fs::read_to_string(&file).unwrap();
    let records = lambda_sim::summary::emf_records(&text);
    assert_eq!(records.len(), 2);
    assert_valid_emf(&records);
    // tcp: the CloudWatch agent's EMF endpoint
    let agent = TcpListener::bind("127.0.0.1:0").unwrap();
    let dest = format!("tcp://{}", agent.local_addr().unwrap());
    let reader = lines_streamed(move || agent.accept().unwrap().0);
    no_library_stderr(&to(&dest));
    assert_eq!(reader.join().unwrap().len(), 2);
    // udp
    let agent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let timeout = Some(Duration::from_secs(20));
    agent.set_read_timeout(timeout).unwrap();
    no_library_stderr(&to(&format!("udp://{}", agent.local_addr().unwrap())));
    assert_eq!(records_in_datagrams(|b| agent.recv(b)).len(), 2);
    // unix: a log router's socket, datagram or stream (Vector's `socket` source takes both)
    let sock = dir.path().join("router.sock");
    let dest = format!("unix:{}", sock.display());
    let router = UnixDatagram::bind(&sock).unwrap();
    router.set_read_timeout(timeout).unwrap();
    no_library_stderr(&to(&dest));
    assert_eq!(records_in_datagrams(|b| router.recv(b)).len(), 2);
    drop(router);
    std::fs::remove_file(&sock).unwrap();
    let router = UnixListener::bind(&sock).unwrap();
    let reader = lines_streamed(move || router.accept().unwrap().0);
    no_library_stderr(&to(&dest));
    assert_eq!(reader.join().unwrap().len(), 2);
}

#[test]
fn an_agent_that_is_down_costs_a_counted_warning_never_the_invoke() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dest = format!("tcp://127.0.0.1:{port}");
    let payloads: Vec<Value> = (0..3).map(|_| json!({"action": "ok"})).collect();
    let plain = {
        let cmd = python_command("handler.dispatch");
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        run(events(&payloads), &cmd, None, &[], &python_function_dir())
    };
    let out = python_run(config(&payloads), &[("LAMBDA_METER_DESTINATION", &dest)]);
    support::scenario::assert_same_results(&plain, &out);
    assert!(out.records().is_empty());
    let warnings: Vec<&str> = out
        .run
        .stderr
        .lines()
        .filter(|l| l.contains("lambda-meter"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("unreachable") && warnings[0].contains("1 EMF record(s) dropped"),
        "{warnings:?}"
    );
}

#[test]
fn diagnostics_follow_the_log_level() {
    let one = [json!({"action": "ok"})];
    let quiet = python_run(config(&one), &[]);
    no_library_stderr(&quiet);
    let chatty = python_run(config(&one), &[("LAMBDA_METER_LOG", "debug")]);
    assert!(
        chatty.run.stderr.contains("lambda-meter: debug: metering"),
        "{}",
        chatty.run.stderr
    );
    assert_eq!(chatty.records().len(), 1);
}

#[test]
fn every_invalid_setting_gets_one_warning_and_the_function_runs_on_defaults() {
    // Every setting that can refuse a value, with the value its table row refuses (the README's
    // settings table is that table: tests/catalogs.rs).
    let bad: Vec<(&str, &str)> = lambda_meter_core::settings::SETTINGS
        .iter()
        .filter_map(|s| Some((s.var, s.refused?)))
        .collect();
    assert!(bad.len() >= 10, "{bad:?}");
    let out = python_run(
        config(&[json!({"action": "ok"}), json!({"action": "ok"})]),
        &bad,
    );
    let warnings: Vec<&str> = out
        .run
        .stderr
        .lines()
        .filter(|l| l.contains("lambda-meter"))
        .collect();
    assert_eq!(warnings.len(), bad.len(), "{warnings:?}");
    for (var, value) in &bad {
        let w = warnings
            .iter()
            .find(|w| w.contains(&format!("{var}=")))
            .unwrap_or_else(|| panic!("no warning for {var}"));
        assert!(w.contains(value) && w.contains("using "), "{w}");
    }
    let records = out.records();
    assert_eq!(records.len(), 2);
    assert_valid_emf(&records);
    assert_eq!(
        records[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "LambdaMeter"
    );
}

#[test]
fn hostile_names_never_break_a_record() {
    let long = "q\"uote\nnew\\line".repeat(400);
    let out = python_run(
        config(&[
            json!({"action": "ok"}),
            json!({"action": "fail", "type": "ValueError"}),
        ]),
        &[
            ("AWS_LAMBDA_FUNCTION_NAME", &long),
            ("LAMBDA_METER_SERVICE", &long),
            ("LAMBDA_METER_DIMENSIONS", "FunctionName,service"),
        ],
    );
    let records = out.records();
    assert_eq!(records.len(), 2);
    assert_valid_emf(&records);
    for r in &records {
        assert!(r["FunctionName"].as_str().unwrap().len() <= 1024);
        assert!(r["service"].as_str().unwrap().len() <= 1024);
    }
}
