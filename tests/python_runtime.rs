//! The real Python runtime client (`awslambdaric` from PyPI), run through the wrapper against
//! the simulator, compared with the same run without lambda-meter.

mod support;

use lambda_sim::Outcome as SimOutcome;
use serde_json::{Value, json};
use std::collections::HashMap;
use support::*;

const SLEEP_MS: u64 = 50;
const BIG: usize = 300_000;

/// The event mix: success, sleep, failures of two types, a 300 KB result, a 300 KB event.
fn mix() -> Vec<Value> {
    vec![
        json!({"action": "ok"}),
        json!({"action": "sleep", "ms": SLEEP_MS}),
        json!({"action": "fail", "type": "ValueError"}),
        json!({"action": "big", "bytes": BIG}),
        json!({"action": "echo", "pad": "p".repeat(BIG)}),
        json!({"action": "fail", "type": "OrderNotFound"}),
        json!({"action": "ok"}),
        json!({"action": "sleep", "ms": SLEEP_MS}),
        json!({"action": "print", "text": "{\"_aws\" is not at the start of this line"}),
        json!({"action": "ok"}),
    ]
}

fn python_command() -> Vec<String> {
    vec![
        python().display().to_string(),
        "-m".into(),
        "awslambdaric".into(),
        "handler.dispatch".into(),
    ]
}

fn run_python(wrapped: bool, env: &[(&str, &str)]) -> support::Outcome {
    let layer = Layer::new();
    let cmd = python_command();
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let wrapper = layer.wrapper();
    run(
        events(&mix()),
        &cmd,
        wrapped.then_some(wrapper.as_path()),
        env,
        &python_function_dir(),
    )
}

fn by_request_id(records: &[Value]) -> HashMap<String, Value> {
    let mut map = HashMap::new();
    for r in records {
        let id = r["requestId"].as_str().expect("requestId").to_string();
        assert!(
            map.insert(id.clone(), r.clone()).is_none(),
            "two records for {id}"
        );
    }
    map
}

fn assert_same_requests(a: &support::Outcome, b: &support::Outcome) {
    let view = |o: &support::Outcome| {
        o.sim
            .requests()
            .into_iter()
            .map(|r| {
                let headers: Vec<_> = r
                    .headers
                    .into_iter()
                    .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
                    .collect();
                (r.method, r.target, headers, r.body)
            })
            .collect::<Vec<_>>()
    };
    let (x, y) = (view(a), view(b));
    assert_eq!(x.len(), y.len(), "number of requests");
    for (i, (p, q)) in x.iter().zip(&y).enumerate() {
        assert!(
            p == q,
            "request {i} differs: {} {} ({} body bytes) vs {} {} ({} body bytes), headers {:?} vs {:?}",
            p.0,
            p.1,
            p.3.len(),
            q.0,
            q.1,
            q.3.len(),
            p.2,
            q.2
        );
    }
}

fn check_python_run(env: &[(&str, &str)]) {
    let plain = run_python(false, env);
    let metered = run_python(true, env);

    // Nothing of ours on stderr, and nothing at all on stderr that the plain run did not have.
    assert!(
        !metered.run.stderr.contains("lambda-meter"),
        "stderr: {}",
        metered.run.stderr
    );
    assert_eq!(plain.run.stderr, metered.run.stderr);
    // The handler's own stdout is untouched; only EMF lines were added.
    assert!(plain.records().is_empty());
    assert_eq!(plain.other_stdout(), metered.other_stdout());

    // The results the Runtime API received are byte-identical.
    let (a, b) = (plain.sim.results(), metered.sim.results());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        let (x, y) = (
            x.as_ref().expect("plain result"),
            y.as_ref().expect("metered result"),
        );
        assert_eq!(x.request_id, y.request_id);
        assert_eq!(x.outcome, y.outcome);
        assert_eq!(x.body, y.body, "result body of {} differs", x.request_id);
    }
    // And every request the runtime made is the same, in the same order (the Host header names
    // each run's own simulator port, so it is left out).
    assert_same_requests(&plain, &metered);

    let records = metered.records();
    assert_valid_emf(&records);
    let by_id = by_request_id(&records);
    let results = metered.sim.results();
    assert_eq!(
        by_id.len(),
        results.len(),
        "exactly one record per request id"
    );

    let payloads = mix();
    let evs = events(&payloads);
    let mut cold = 0;
    for (i, (event, result)) in evs.iter().zip(&results).enumerate() {
        let result = result.as_ref().unwrap();
        let id = event.request_id.as_deref().unwrap();
        let rec = by_id
            .get(id)
            .unwrap_or_else(|| panic!("no record for {id}"));
        let p = &payloads[i];
        assert_eq!(rec["FunctionName"], "lambda-meter-test");
        assert_eq!(
            rec["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "LambdaMeter"
        );
        assert_eq!(
            rec["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["FunctionName"]])
        );
        assert!(rec["traceId"].as_str().unwrap().starts_with("Root=1-"));
        assert_eq!(rec["functionVersion"], "$LATEST");
        assert_eq!(rec["memorySize"], 128);
        assert_eq!(rec["initType"], "on-demand");
        assert_eq!(
            rec["RequestBytes"].as_f64().unwrap() as usize,
            event.payload.len()
        );
        assert_eq!(
            rec["ResponseBytes"].as_f64().unwrap() as usize,
            result.body.len()
        );
        assert!(rec["MaxMemoryUsed"].as_f64().unwrap() > 0.0);
        assert!(rec["CpuTime"].as_f64().unwrap() >= 0.0);
        let failing = p["action"] == "fail";
        let expected_errors = if failing { 1.0 } else { 0.0 };
        assert_eq!(
            rec["Errors"].as_f64(),
            Some(expected_errors),
            "Errors of {id}"
        );
        if failing {
            assert_eq!(rec["errorType"], p["type"], "errorType of {id}");
            assert!(matches!(result.outcome, SimOutcome::Error { .. }));
        } else {
            assert!(rec.get("errorType").is_none());
        }
        if p["action"] == "sleep" {
            assert!(
                rec["Duration"].as_f64().unwrap() >= SLEEP_MS as f64,
                "Duration {} of a {SLEEP_MS} ms sleep",
                rec["Duration"]
            );
        }
        if rec["ColdStart"].as_f64() == Some(1.0) {
            cold += 1;
            assert_eq!(i, 0, "the cold start is the first invoke");
            assert_eq!(rec["coldStart"], true);
            assert!(rec["InitDuration"].as_f64().unwrap() > 0.0);
        } else {
            assert_eq!(rec["ColdStart"].as_f64(), Some(0.0));
            assert_eq!(rec["coldStart"], false);
            assert!(
                rec.get("InitDuration").is_none(),
                "InitDuration only on the cold start"
            );
        }
    }
    assert_eq!(cold, 1, "exactly one cold start");
}

#[test]
fn python_default_mode() {
    check_python_run(&[]);
}

#[test]
fn python_threaded_polling_mode() {
    // python3.12+ managed runtimes ask for each event on a new thread.
    check_python_run(&[("AWS_EXECUTION_ENV", "AWS_Lambda_python3.12")]);
}

#[test]
fn runtime_name_comes_from_the_execution_environment() {
    let metered = run_python(true, &[("AWS_EXECUTION_ENV", "AWS_Lambda_python3.12")]);
    for r in metered.records() {
        assert_eq!(r["runtime"], "python3.12");
    }
    let plain_env = run_python(true, &[]);
    for r in plain_env.records() {
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
            &python_command()
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
    // AWS_LAMBDA_MAX_CONCURRENCY: awslambdaric forks that many workers, each with its own
    // Runtime API connection, and invokes run in several processes at once.
    let payloads: Vec<Value> = (0..12)
        .map(|_| json!({"action": "pid", "ms": 30}))
        .collect();
    let layer = Layer::new();
    let cmd = python_command();
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let out = run_with(
        lambda_sim::Config {
            events: events(&payloads),
            max_concurrency: 3,
            ..lambda_sim::Config::default()
        },
        &cmd,
        Some(&layer.wrapper()),
        &[("AWS_LAMBDA_MAX_CONCURRENCY", "3")],
        &python_function_dir(),
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
    }
}
