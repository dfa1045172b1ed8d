//! The real Python runtime client (`awslambdaric` from PyPI), run through the wrapper against
//! the simulator, compared with the same run without lambda-meter.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{Value, json};
use std::collections::HashMap;
use support::scenario::{Scenario, by_request_id};
use support::*;

fn python_scenario() -> Scenario {
    let mut s = Scenario::new(python_command("handler.dispatch"), python_function_dir());
    // The Python client's own output has no timestamps: it must be identical.
    s.compare_output = true;
    // A handler line that looks like EMF at first sight is the handler's, not ours.
    s.payloads
        .push(json!({"action": "print", "text": "{\"_aws\" is not at the start of this line"}));
    s
}

#[test]
fn python_default_mode() {
    python_scenario().check();
}

#[test]
fn python_threaded_polling_mode() {
    // python3.12+ managed runtimes ask for each event on a new thread.
    let out = python_scenario()
        .env("AWS_EXECUTION_ENV", "AWS_Lambda_python3.12")
        .check();
    for r in out.records() {
        assert_eq!(r["runtime"], "python3.12");
    }
}

#[test]
fn python_threaded_polling_mode_adversarial_transport() {
    python_scenario()
        .env("AWS_EXECUTION_ENV", "AWS_Lambda_python3.12")
        .tiny_writes()
        .check();
}

#[test]
fn python_adversarial_transport() {
    python_scenario().tiny_writes().check();
}

#[test]
fn runtime_name_defaults_to_the_executable() {
    let out = python_scenario().check();
    for r in out.records() {
        assert!(
            r["runtime"].as_str().unwrap().starts_with("python"),
            "{}",
            r["runtime"]
        );
    }
}

#[test]
fn namespace_settings() {
    let ns = |env: &[(&str, &str)]| {
        let o = run(
            events(&[json!({"action": "ok"})]),
            &python_command("handler.dispatch")
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            Some(Layer::new().wrapper().as_path()),
            env,
            &python_function_dir(),
        );
        let recs = o.records();
        assert_eq!(recs.len(), 1);
        (
            recs[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"].clone(),
            o.run.stderr,
        )
    };
    assert_eq!(ns(&[("POWERTOOLS_METRICS_NAMESPACE", "Shop")]).0, "Shop");
    assert_eq!(
        ns(&[
            ("POWERTOOLS_METRICS_NAMESPACE", "Shop"),
            ("LAMBDA_METER_NAMESPACE", "Mine")
        ])
        .0,
        "Mine"
    );
    let (bad, stderr) = ns(&[("LAMBDA_METER_NAMESPACE", "not valid!")]);
    assert_eq!(bad, "LambdaMeter");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("lambda-meter"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning line: {stderr}");
    assert!(warnings[0].contains("LAMBDA_METER_NAMESPACE") && warnings[0].contains("not valid!"));
}

#[test]
fn python_forked_workers_each_a_runtime() {
    check_forked_workers(None);
}

#[test]
fn python_forked_workers_adversarial_transport() {
    check_forked_workers(Some(3));
}

/// awslambdaric through the wrapper with AWS_LAMBDA_MAX_CONCURRENCY=3 on `payloads`, under
/// `config` (its events and concurrency set here), with `env` besides.
fn three_workers(payloads: &[Value], config: lambda_sim::Config, env: &[(&str, &str)]) -> Outcome {
    let layer = Layer::new();
    let cmd = python_command("handler.dispatch");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let mut env = env.to_vec();
    env.push(("AWS_LAMBDA_MAX_CONCURRENCY", "3"));
    run_with(
        lambda_sim::Config {
            events: events(payloads),
            max_concurrency: 3,
            ..config
        },
        &cmd,
        Some(&layer.wrapper()),
        &env,
        &python_function_dir(),
    )
}

/// AWS_LAMBDA_MAX_CONCURRENCY: awslambdaric forks that many workers, each with its own
/// Runtime API connection, and invokes run in several processes at once.
fn check_forked_workers(write_chunk: Option<usize>) {
    let payloads: Vec<Value> = (0..12)
        .map(|_| json!({"action": "pid", "ms": 30}))
        .collect();
    let out = three_workers(
        &payloads,
        lambda_sim::Config {
            write_chunk,
            ..lambda_sim::Config::default()
        },
        &[],
    );
    assert!(
        !out.run.stderr.contains("lambda-meter"),
        "{}",
        out.run.stderr
    );
    let records = out.records();
    assert_valid_emf(&records);
    let by_id = by_request_id(&records);
    let results = out.sim.results();
    assert_eq!(
        by_id.len(),
        results.len(),
        "one record per invoke, none lost, none doubled"
    );
    // Which worker ran each invoke, from the handler's own answer.
    let pid_of: HashMap<String, u64> = results
        .iter()
        .map(|r| {
            let r = r.as_ref().unwrap();
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            (r.request_id.clone(), v["pid"].as_u64().unwrap())
        })
        .collect();
    let mut first_seen: HashMap<u64, String> = HashMap::new();
    for rec in &records {
        let id = rec["requestId"].as_str().unwrap().to_string();
        first_seen.entry(pid_of[&id]).or_insert(id);
    }
    assert!(
        first_seen.len() >= 2,
        "invokes ran in more than one worker: {first_seen:?}"
    );
    for rec in &records {
        let id = rec["requestId"].as_str().unwrap();
        let first = first_seen[&pid_of[id]] == id;
        assert_eq!(
            rec["ColdStart"].as_f64() == Some(1.0),
            first,
            "the cold start of each worker is its first invoke, and only that ({id})"
        );
        assert_eq!(rec.get("InitDuration").is_some(), first);
        // Each worker process runs one invoke at a time: its CPU time is its own.
        assert!(rec.get("ConcurrentInvokes").is_none(), "{rec}");
    }
}

#[test]
fn a_worker_killed_on_a_managed_instance_has_its_invoke_reported_while_the_others_run() {
    // Lambda Managed Instances (AWS_LAMBDA_MAX_CONCURRENCY): a worker that crashes is not
    // replaced, the environment runs on with the others, and a timed-out invoke fails alone
    // (the simulator does as Lambda documents). No next process comes to find the killed
    // worker's open invoke in the journal: a surviving worker's watchdog reports it, while
    // the environment still runs, not at its end.
    let mut payloads = vec![json!({"action": "pid", "ms": 200}); 3];
    payloads.push(json!({"action": "crash", "signal": "SIGKILL", "how": "kill"}));
    payloads.extend((0..30).map(|_| json!({"action": "pid", "ms": 300})));
    let killed = events(&payloads)[3].request_id.clone().unwrap();
    let run = |wrapped: bool| {
        let layer = Layer::new();
        let cmd = python_command("handler.dispatch");
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        run_with(
            lambda_sim::Config {
                events: events(&payloads),
                max_concurrency: 3,
                timeout: std::time::Duration::from_millis(1_500),
                ..lambda_sim::Config::default()
            },
            &cmd,
            wrapped.then(|| layer.wrapper()).as_deref(),
            &[("AWS_LAMBDA_MAX_CONCURRENCY", "3")],
            &python_function_dir(),
        )
    };
    let (plain, metered) = (run(false), run(true));
    for out in [&plain, &metered] {
        assert_eq!(out.run.starts, 1, "the environment ran on");
        assert_eq!(
            out.sim.timeout_count(),
            1,
            "the killed worker's invoke timed out"
        );
        let answered = out.sim.results().iter().filter(|r| r.is_some()).count();
        assert_eq!(answered, payloads.len());
    }
    assert!(
        !metered.run.stderr.contains("lambda-meter"),
        "{}",
        metered.run.stderr
    );
    let records = metered.raw_records();
    assert_valid_emf(&records);
    let by_id = by_request_id(&records);
    assert_eq!(by_id.len(), payloads.len(), "one record per invoke");
    let gone = &by_id[&killed];
    assert_eq!(gone["exitReason"], "killed (no exit seen)", "{gone}");
    // Reported while invokes still ran: records of later invokes come after it.
    let at = records
        .iter()
        .position(|r| r["requestId"] == killed.as_str())
        .unwrap();
    assert!(
        at + 5 < records.len(),
        "the killed worker's invoke was reported at the end ({at} of {})",
        records.len()
    );
}

/// On Lambda Managed Instances Python runs a worker process per concurrent invoke, and Lambda's
/// memory figure counts them all: in the environment's memory cgroup, a worker's record shows
/// what another worker holds (48 MiB) in `MaxMemoryUsed`, and its own peak, below that, in
/// `ProcessMaxMemoryUsed`. Each invoke sleeps past the library's reading interval.
#[test]
fn python_workers_report_the_memory_of_the_whole_environment() {
    let mut payloads = vec![json!({"action": "hold", "mb": 48, "pid": true})];
    payloads.extend((0..11).map(|_| json!({"action": "pid", "ms": 150})));
    let out = three_workers(
        &payloads,
        lambda_sim::Config {
            memory_cgroup: true,
            ..lambda_sim::Config::default()
        },
        &[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")],
    );
    let records = out.records();
    assert_eq!(records.len(), payloads.len(), "{}", out.run.stderr);
    let results = out.sim.results();
    let pid_of = |i: usize| -> u64 {
        let r = results[i].as_ref().unwrap();
        serde_json::from_slice::<Value>(&r.body).unwrap()["pid"]
            .as_u64()
            .unwrap()
    };
    let holder = pid_of(0);
    let held_at = events(&payloads)[0].request_id.clone().unwrap();
    let mut others = 0;
    for (i, e) in events(&payloads).iter().enumerate().skip(4) {
        // Events from the fifth on start after one of the first three ended: the hold's
        // included, it being the shortest.
        let id = e.request_id.as_deref().unwrap();
        let rec = records.iter().find(|r| r["requestId"] == id).unwrap();
        if pid_of(i) == holder {
            continue;
        }
        others += 1;
        let (max, own) = (
            rec["MaxMemoryUsed"].as_f64().unwrap(),
            rec["ProcessMaxMemoryUsed"].as_f64().unwrap_or(0.0),
        );
        assert!(
            max >= 48.0,
            "the holder's 48 MiB are the environment's: {rec}"
        );
        assert!(
            own > 0.0 && own < 48.0,
            "its own peak is its own: {rec} ({held_at})"
        );
    }
    assert!(others > 0, "no later invoke ran in another worker");
    let cgroup_mb = out.run.memory_peak_kb.unwrap().div_ceil(1024) as f64;
    for r in &records {
        assert!(r["MaxMemoryUsed"].as_f64().unwrap() <= cgroup_mb, "{r}");
    }
}
