//! Custom metrics from the function (the C ABI of lambda_meter.h through the Python shim in
//! layer/shims): they land in the record of the invoke that gave them, under the record's
//! rules, with the wrapper putting the shim on the path after the user's own entries.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{Value, json};
use support::scenario::{assert_same_requests, assert_same_results, by_request_id};
use support::*;

fn python(
    payloads: &[Value],
    wrapped: bool,
    env: &[(&str, &str)],
    max_concurrency: usize,
) -> Outcome {
    let layer = Layer::new();
    let cmd = python_command("handler.dispatch");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    // Without the layer the shim is still importable (the same code runs anywhere).
    let shim = layer.dir().join("python").display().to_string();
    let mut env = env.to_vec();
    if !wrapped {
        env.push(("PYTHONPATH", &shim));
    }
    run_with(
        lambda_sim::Config {
            events: events(payloads),
            max_concurrency,
            ..lambda_sim::Config::default()
        },
        &cmd,
        wrapped.then(|| layer.wrapper()).as_deref(),
        &env,
        &python_function_dir(),
    )
}

fn custom(calls: Value) -> Value {
    json!({"action": "custom", "calls": calls})
}

/// The metered run's records by request id, in the order of `payloads`' events, after checking
/// they are valid EMF and the library said nothing on stderr.
fn records_in_order(metered: &Outcome, payloads: &[Value]) -> Vec<Value> {
    assert!(
        !metered.run.stderr.contains("lambda-meter"),
        "{}",
        metered.run.stderr
    );
    let records = metered.records();
    assert_valid_emf(&records);
    let by_id = by_request_id(&records);
    assert_eq!(by_id.len(), payloads.len(), "one record per invoke");
    events(payloads)
        .iter()
        .map(|e| by_id[e.request_id.as_deref().unwrap()].clone())
        .collect()
}

/// `r` carries custom metric `name` with `values`, dimension `key` = `value` and property
/// `prop` = `json`, its metrics in a directive of their own (the function's dimension set plus
/// the custom one).
fn assert_custom(
    r: &Value,
    name: &str,
    values: Value,
    (key, value): (&str, &str),
    (prop, json): (&str, Value),
) {
    assert_eq!(r[name], values, "{r}");
    assert_eq!(r[key], value);
    assert_eq!(r[prop], json);
    assert_eq!(
        r["_aws"]["CloudWatchMetrics"][1]["Dimensions"],
        json!([["FunctionName", key]])
    );
}

/// The `n`th result's body as JSON.
fn body_of(o: &Outcome, n: usize) -> Value {
    serde_json::from_slice(&o.sim.results()[n].clone().unwrap().body).unwrap()
}

#[test]
fn python_custom_metrics_land_in_their_invokes_record() {
    let payloads = vec![
        custom(json!([
            ["add_metric", "OrdersPlaced", "Count", 1],
            ["add_metric", "OrdersPlaced", "Count", 2],
            ["put_metric", "BasketValue", 99.5, "None"],
            ["add_dimension", "tenant", "acme"],
            ["add_metadata", "order", {"id": 7, "items": ["book"]}],
        ])),
        json!({"action": "ok"}),
        custom(json!([["add_metric", "OrdersPlaced", "Count", 5]])),
        json!({"action": "fail", "type": "OrderNotFound"}),
    ];
    let env = [("LAMBDA_METER_TEST_AT_INIT", "1")];
    let plain = python(&payloads, false, &env, 1);
    let metered = python(&payloads, true, &env, 1);
    // The function does exactly the same with and without the layer.
    assert_same_results(&plain, &metered);
    assert_same_requests(&plain, &metered);
    assert!(plain.records().is_empty());
    let recs = records_in_order(&metered, &payloads);
    let first = &recs[0];
    // Given during init: on the first invoke's record. Given twice: a value array.
    assert_eq!(first["InitMetric"], 1.0);
    assert_eq!(first["OrdersPlaced"], json!([1.0, 2.0]));
    assert_eq!(first["BasketValue"], 99.5);
    assert_eq!(first["tenant"], "acme");
    assert_eq!(first["order"], json!({"id": 7, "items": ["book"]}));
    let directives = first["_aws"]["CloudWatchMetrics"].as_array().unwrap();
    assert_eq!(directives.len(), 2);
    assert_eq!(
        directives[1]["Dimensions"],
        json!([["FunctionName", "tenant"]])
    );
    let names: Vec<&str> = directives[1]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["InitMetric", "OrdersPlaced", "BasketValue"]);
    // The built-in directive is untouched: custom dimensions never apply to it.
    assert_eq!(directives[0]["Dimensions"], json!([["FunctionName"]]));
    // Nothing leaks into the next invoke's record.
    let second = &recs[1];
    assert_eq!(
        second["_aws"]["CloudWatchMetrics"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(second.get("OrdersPlaced").is_none() && second.get("tenant").is_none());
    assert_eq!(recs[2]["OrdersPlaced"], 5.0);
    assert!(recs[2].get("tenant").is_none(), "dimensions are per invoke");
    assert_eq!(recs[3]["errorType"], "OrderNotFound");
}

#[test]
fn a_powertools_handler_moves_over_by_its_import_alone() {
    // tests/functions/python/powertools_style.py, written for Powertools' Metrics (a Metrics
    // object, its log_metrics decorator with options, MetricUnit), run with Powertools itself
    // and with lambda-meter's module in its place: the same results, and each invoke's values,
    // dimensions and metadata in lambda-meter's record of it.
    let payloads = vec![
        json!({"orders": [1, 2], "basket": 99.5, "id": 7}),
        json!({"orders": [], "id": 8}),
        json!({"orders": [5], "id": 9}),
    ];
    let cmd = python_command("powertools_style.handler");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let powertools = run(
        events(&payloads),
        &cmd,
        None,
        &[
            ("LAMBDA_METER_TEST_POWERTOOLS", "1"),
            ("POWERTOOLS_SERVICE_NAME", "orders"),
        ],
        &python_function_dir(),
    );
    let layer = Layer::new();
    let metered = run(
        events(&payloads),
        &cmd,
        Some(&layer.wrapper()),
        &[("POWERTOOLS_SERVICE_NAME", "orders")],
        &python_function_dir(),
    );
    assert_same_results(&powertools, &metered);
    // Powertools' own lines: one per invoke that added a metric (its cold-start line aside),
    // by order id; a value given once is a one-element array there, a number in ours.
    let theirs: std::collections::HashMap<String, Value> = powertools
        .run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| Some((v.get("orderId")?.to_string(), v)))
        .collect();
    assert_eq!(theirs.len(), 2, "{}", powertools.run.stdout);
    let one = |v: Option<&Value>| match v {
        Some(Value::Array(a)) if a.len() == 1 => Some(a[0].clone()),
        v => v.cloned(),
    };
    let ours = records_in_order(&metered, &payloads);
    for (p, o) in payloads.iter().zip(&ours) {
        assert_eq!(o["orderId"], p["id"]);
        let Some(t) = theirs.get(&p["id"].to_string()) else {
            assert_eq!(o.get("OrdersPlaced"), None, "{o}");
            continue;
        };
        for key in ["OrdersPlaced", "BasketValue", "service", "tier"] {
            assert_eq!(
                one(o.get(key)),
                one(t.get(key)),
                "{key} of {p}: {o} against {t}"
            );
        }
    }
    assert_eq!(ours[0]["OrdersPlaced"], json!([1.0, 2.0]));
    assert_eq!(ours[0]["service"], "orders");
    assert_eq!(ours[0]["tier"], "gold");
    assert_eq!(ours[1].get("OrdersPlaced"), None);
    // The custom metrics' directive has the function's dimension set (with the service)
    // plus the default dimension.
    assert_eq!(
        ours[2]["_aws"]["CloudWatchMetrics"][1]["Dimensions"],
        json!([["FunctionName", "service", "tier"]])
    );
}

#[test]
fn channel_values_after_the_function_cleaned_its_tmp_reach_their_record() {
    // The channel file is removed with the rest of /tmp and made again by the next value
    // (often with the inode number the old one had): its values are read from its start.
    let many: serde_json::Map<String, Value> =
        (0..30).map(|i| (format!("Before{i}"), json!(i))).collect();
    let payloads = vec![
        json!({"action": "channel", "metrics": many}),
        json!({"action": "clean_tmp"}),
        json!({"action": "channel", "metrics": {"After": 7}}),
        json!({"action": "clean_tmp"}),
        json!({"action": "channel", "metrics": {"AfterAgain": 8}}),
        json!({"action": "channel", "metrics": many}),
        // Cut short: what a file made again with the removed one's inode number looks like.
        json!({"action": "channel", "metrics": {"AfterCut": 9}, "truncate": true}),
    ];
    let plain = python(
        &payloads,
        false,
        &[("LAMBDA_METER_CHANNEL", "/dev/null")],
        1,
    );
    let metered = python(&payloads, true, &[], 1);
    assert_eq!(plain.invoke_endings(), metered.invoke_endings());
    let recs = records_in_order(&metered, &payloads);
    assert_eq!(recs[0]["Before29"], 29.0, "{}", recs[0]);
    assert_eq!(recs[2]["After"], 7.0, "{}", recs[2]);
    assert_eq!(recs[4]["AfterAgain"], 8.0, "{}", recs[4]);
    assert_eq!(recs[6]["AfterCut"], 9.0, "{}", recs[6]);
}

#[test]
fn a_channel_made_after_a_quiet_while_reaches_its_record() {
    // While there is no channel file the reader looks only at its directory, whose times it
    // trusts once they are older than a clock tick or so: sleeps make them so. A file made
    // there then, or made again after the function cleaned its tmp (and the journal was made
    // again meanwhile), is still read at its invoke's result.
    let payloads = vec![
        json!({"action": "sleep", "ms": 150}),
        json!({"action": "channel", "metrics": {"First": 1}}),
        json!({"action": "sleep", "ms": 150}),
        json!({"action": "clean_tmp"}),
        json!({"action": "sleep", "ms": 150}),
        json!({"action": "sleep", "ms": 150}),
        json!({"action": "channel", "metrics": {"After": 2}}),
        json!({"action": "sleep", "ms": 150}),
    ];
    let metered = python(&payloads, true, &[], 1);
    let recs = records_in_order(&metered, &payloads);
    assert_eq!(recs[1]["First"], 1.0, "{}", recs[1]);
    assert_eq!(recs[6]["After"], 2.0, "{}", recs[6]);
    for i in [0, 2, 3, 4, 5, 7] {
        assert!(
            recs[i].get("First").is_none() && recs[i].get("After").is_none(),
            "{}",
            recs[i]
        );
    }
}

#[test]
fn bad_custom_values_get_a_status_code_and_never_reach_a_record() {
    let mut report = custom(json!([
        ["add_metric", "Good", "Count", 1],
        ["add_metric", "Parsecs", "Lightyears", 1],
        ["add_metric", "NotANumber", "Count", "NaN"],
        ["add_metric", "Duration", "Milliseconds", 1],
        ["add_metric", "", "Count", 1],
        ["add_metric", "bad\nname", "Count", 1],
        ["add_dimension", "requestId", "x"],
        ["add_dimension", "empty", ""],
        ["add_metadata", "_aws", 1],
        ["add_metadata", "Good", 2],
        ["add_metric", "n".repeat(256), "Count", 1],
    ]));
    report["report"] = json!(true);
    let metered = python(&[report.clone()], true, &[("PYTHONPATH", "/user/first")], 1);
    let result = metered.sim.results()[0].clone().unwrap();
    let body: Value = serde_json::from_slice(&result.body).unwrap();
    // OK, then BAD_UNIT, BAD_VALUE, BAD_NAME (taken, empty, control character), BAD_NAME
    // (a reserved dimension key), BAD_VALUE (empty), BAD_NAME (_aws; a metric's name), BAD_NAME.
    assert_eq!(
        body["statuses"],
        json!([0, -3, -2, -1, -1, -1, -1, -2, -1, -1, -1])
    );
    // The wrapper appended the shim to the user's PYTHONPATH, never replaced it.
    let path = body["PYTHONPATH"].as_str().unwrap();
    assert!(
        path.starts_with("/user/first:") && path.ends_with("/python"),
        "{path}"
    );
    let records = metered.records();
    assert_valid_emf(&records);
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["Good"], 1.0);
    assert_eq!(
        r["_aws"]["CloudWatchMetrics"][1]["Metrics"],
        json!([{"Name": "Good", "Unit": "Count"}])
    );
    assert_eq!(r["requestId"], result.request_id);
    for absent in ["Parsecs", "NotANumber", "empty", ""] {
        assert!(r.get(absent).is_none(), "{absent}");
    }
    // Without the layer the shim answers ABSENT to every call and the handler runs on.
    let plain = python(&[report], false, &[], 1);
    let body = body_of(&plain, 0);
    assert_eq!(body["statuses"], json!(vec![-100; 11]));
}

#[test]
fn python_forked_workers_keep_each_invokes_metrics_apart() {
    // AWS_LAMBDA_MAX_CONCURRENCY=3: three worker processes, invokes in flight at once, each
    // metric in the record of the invoke that gave it.
    let payloads: Vec<Value> = (0..9)
        .map(|i| {
            json!({"action": "custom", "ms": 40, "calls": [
                ["add_metric", "Event", "Count", i],
                ["add_metadata", "event", i],
            ]})
        })
        .collect();
    let metered = python(&payloads, true, &[("AWS_LAMBDA_MAX_CONCURRENCY", "3")], 3);
    assert!(
        !metered.run.stderr.contains("lambda-meter"),
        "{}",
        metered.run.stderr
    );
    let records = metered.records();
    assert_valid_emf(&records);
    let by_id = by_request_id(&records);
    assert_eq!(by_id.len(), payloads.len());
    let evs = events(&payloads);
    for (i, e) in evs.iter().enumerate() {
        let r = &by_id[e.request_id.as_deref().unwrap()];
        assert_eq!(r["Event"], i as f64, "{r}");
        assert_eq!(r["event"], i);
    }
}

/// The Ruby runtime (a Net::HTTP loop) with the Fiddle shim, through the wrapper or, without
/// the layer, with the shim on RUBYLIB by hand.
fn ruby(payloads: &[Value], wrapped: bool, env: &[(&str, &str)]) -> Outcome {
    let layer = Layer::new();
    let shim = layer.dir().join("ruby/lib").display().to_string();
    let mut env = env.to_vec();
    if !wrapped {
        env.push(("RUBYLIB", &shim));
    }
    run_with(
        lambda_sim::Config {
            events: events(payloads),
            ..lambda_sim::Config::default()
        },
        &["ruby", "runtime.rb"],
        wrapped.then(|| layer.wrapper()).as_deref(),
        &env,
        &root().join("tests/functions/ruby"),
    )
}

#[test]
fn ruby_custom_metrics_through_fiddle() {
    let payloads = vec![
        custom(json!([
            ["put_metric", "CacheHits", 3, "Count"],
            ["put_metric", "CacheHits", 4, "Count"],
            ["put_dimensions", {"region": "eu"}],
            ["set_property", "cart", {"lines": 2}],
        ])),
        json!({"action": "ok"}),
    ];
    let plain = ruby(&payloads, false, &[]);
    let metered = ruby(&payloads, true, &[("RUBYLIB", "/user/ruby")]);
    assert_same_results(&plain, &metered);
    let recs = records_in_order(&metered, &payloads);
    assert_custom(
        &recs[0],
        "CacheHits",
        json!([3.0, 4.0]),
        ("region", "eu"),
        ("cart", json!({"lines": 2})),
    );
    assert!(recs[1].get("CacheHits").is_none());
    // Status codes, and RUBYLIB appended to, not replaced.
    let mut report = custom(json!([
        ["put_metric", "Fine", 1, "Count"],
        ["put_metric", "Fine", 1, "Furlongs"],
        ["add_dimension", "coldStart", "x"],
    ]));
    report["report"] = json!(true);
    let metered = ruby(&[report.clone()], true, &[("RUBYLIB", "/user/ruby")]);
    let body = body_of(&metered, 0);
    assert_eq!(body["statuses"], json!([0, -3, -1]));
    let lib = body["RUBYLIB"].as_str().unwrap();
    assert!(
        lib.starts_with("/user/ruby:") && lib.ends_with("/ruby/lib"),
        "{lib}"
    );
    let plain = ruby(&[report], false, &[]);
    let body = body_of(&plain, 0);
    assert_eq!(body["statuses"], json!([-100, -100, -100]));
}

/// aws-lambda-ric on Node.js with the channel shim, through the wrapper or, without the layer,
/// with the shim on NODE_PATH by hand.
fn node(payloads: &[Value], wrapped: bool, env: &[(&str, &str)]) -> Outcome {
    let layer = Layer::new();
    let shim = layer.node_path();
    let dir = node_function_dir();
    let task_root = dir.display().to_string();
    let mut env = env.to_vec();
    env.push(("LAMBDA_TASK_ROOT", &task_root));
    if !wrapped {
        env.push(("NODE_PATH", &shim));
    }
    let cmd = node_command("index.handler");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    run_with(
        lambda_sim::Config {
            events: events(payloads),
            ..lambda_sim::Config::default()
        },
        &cmd,
        wrapped.then(|| layer.wrapper()).as_deref(),
        &env,
        &dir,
    )
}

#[test]
fn node_custom_metrics_through_the_channel() {
    let payloads = vec![
        custom(json!([
            ["putMetric", "OrdersPlaced", 1, "Count"],
            ["addMetric", "OrdersPlaced", "Count", 2],
            ["putDimensions", {"tenant": "acme"}],
            ["setProperty", "order", {"id": 7}],
        ])),
        json!({"action": "ok"}),
        custom(json!([["putMetric", "OrdersPlaced", 5, "Count"]])),
    ];
    let tmp = tempdir::TempDir::new("node-channel");
    let tmp_path = tmp.path().display().to_string();
    let plain = node(&payloads, false, &[]);
    let metered = node(
        &payloads,
        true,
        &[("NODE_PATH", "/user/node"), ("TMPDIR", &tmp_path)],
    );
    assert_same_results(&plain, &metered);
    let recs = records_in_order(&metered, &payloads);
    assert_custom(
        &recs[0],
        "OrdersPlaced",
        json!([1.0, 2.0]),
        ("tenant", "acme"),
        ("order", json!({"id": 7})),
    );
    assert!(recs[1].get("OrdersPlaced").is_none());
    assert_eq!(recs[2]["OrdersPlaced"], 5.0);
    // The channel is a file of the environment's /tmp, only the owner's.
    let channel: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".channel"))
        .collect();
    assert_eq!(channel.len(), 1);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        channel[0].metadata().unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Status codes, and NODE_PATH appended to, not replaced; ABSENT without the layer.
    let mut report = custom(json!([
        ["putMetric", "Fine", 1, "Count"],
        ["putMetric", "Fine", "x", "Count"],
        ["putMetric", "Fine", 1, "Furlongs"],
        ["addDimension", "", "v"],
    ]));
    report["report"] = json!(true);
    let metered = node(
        &[report.clone()],
        true,
        &[("NODE_PATH", "/user/node"), ("TMPDIR", &tmp_path)],
    );
    let body = body_of(&metered, 0);
    assert_eq!(body["statuses"], json!([0, -2, -3, -1]));
    let path = body["NODE_PATH"].as_str().unwrap();
    assert!(
        path.starts_with("/user/node:") && path.ends_with("/nodejs/node_modules"),
        "{path}"
    );
    assert_eq!(metered.records()[0]["Fine"], 1.0);
    let plain = node(&[report], false, &[]);
    let body = body_of(&plain, 0);
    assert_eq!(body["statuses"], json!([-100, -2, -3, -1]));
}

/// The bash + curl runtime: the handler runs in the bootstrap shell, its result is posted by
/// a curl process that did not exist when the values were written.
fn shell(payloads: &[Value], wrapped: bool) -> Outcome {
    let layer = Layer::new();
    let dir = root().join("tests/functions/shell");
    let task_root = dir.display().to_string();
    // Without the layer the shim is found the same way (PATH), and says so.
    let path = format!(
        "{}:{}",
        std::env::var("PATH").unwrap(),
        layer.dir().join("bin").display()
    );
    let mut env = vec![
        ("LAMBDA_TASK_ROOT", task_root.as_str()),
        ("_HANDLER", "function.handler"),
    ];
    if !wrapped {
        env.push(("PATH", &path));
    }
    let bootstrap = dir.join("bootstrap").display().to_string();
    run_with(
        lambda_sim::Config {
            events: events(payloads),
            ..lambda_sim::Config::default()
        },
        &[bootstrap.as_str()],
        wrapped.then(|| layer.wrapper()).as_deref(),
        &env,
        &dir,
    )
}

#[test]
fn shell_runtime_custom_metrics_through_the_channel() {
    let payloads = vec![
        json!({"action": "custom"}),
        json!({"action": "ok"}),
        json!({"action": "custom"}),
    ];
    let metered = shell(&payloads, true);
    assert!(
        !metered.run.stderr.contains("lambda-meter"),
        "{}",
        metered.run.stderr
    );
    let records = metered.records();
    assert_valid_emf(&records);
    let by_id = by_request_id(&records);
    assert_eq!(by_id.len(), 3);
    let evs = events(&payloads);
    for (i, e) in evs.iter().enumerate() {
        let r = &by_id[e.request_id.as_deref().unwrap()];
        let result = metered.sim.results()[i].clone().unwrap();
        if i == 1 {
            assert!(r.get("OrdersPlaced").is_none(), "{r}");
            continue;
        }
        let body: Value = serde_json::from_slice(&result.body).unwrap();
        // Written, written, written, written, a quote in the name, a value that is no number.
        assert_eq!(body["statuses"], json!([0, 0, 0, 0, 1, 2]));
        assert_eq!(r["OrdersPlaced"], json!([2.0, 3.0]), "{r}");
        assert_eq!(r["tenant"], "acme");
        assert_eq!(r["order"], json!({"id": 7}));
    }
    // Without the layer: every call says 100 (nothing here) or refuses bad input, and the
    // function answers.
    let plain = shell(&payloads[..1], false);
    let body = body_of(&plain, 0);
    assert_eq!(body["statuses"], json!([100, 100, 100, 100, 1, 2]));
}

#[test]
fn the_channel_written_by_hand_from_forked_workers() {
    // Three awslambdaric worker processes share one channel file: each line carries its
    // writer's pid, and each worker's library takes only its own, for its own invoke.
    let payloads: Vec<Value> = (0..9)
        .map(|i| json!({"action": "channel", "ms": 40, "metrics": {"ByHand": i}}))
        .collect();
    let metered = python(&payloads, true, &[("AWS_LAMBDA_MAX_CONCURRENCY", "3")], 3);
    let recs = records_in_order(&metered, &payloads);
    let pids: std::collections::BTreeSet<u64> = (0..payloads.len())
        .map(|i| body_of(&metered, i)["pid"].as_u64().unwrap())
        .collect();
    assert!(pids.len() > 1, "invokes ran in several workers: {pids:?}");
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["ByHand"], i as f64, "{r}");
    }
}
