//! The fleet dashboard (`layer/dashboard`, `make dashboard`): built from the records of a real
//! run under the same settings, it graphs exactly what those settings emit, for every function
//! (SEARCH expressions), and the checked-in body is the one the default settings give.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use support::*;

/// The records of two invokes (a cold one that succeeds, a failing one) of the Python
/// function through the wrapper, under `settings`.
fn records_under(settings: &[(&str, &str)]) -> Vec<Value> {
    let layer = Layer::new();
    let cmd = python_command("handler.dispatch");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let out = run(
        events(&[
            json!({"action": "ok"}),
            json!({"action": "fail", "type": "ValueError"}),
        ]),
        &cmd,
        Some(&layer.wrapper()),
        settings,
        &python_function_dir(),
    );
    let records = out.records();
    assert_eq!(records.len(), 2, "{}", out.run.stderr);
    records
}

/// `layer/dashboard` on `records`, with `args`.
fn dashboard(records: &[Value], args: &[&str]) -> String {
    let mut child = Command::new(root().join("layer/dashboard"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("layer/dashboard");
    {
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "a log line that is not a record").unwrap();
        for r in records {
            writeln!(stdin, "{r}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// Namespace, first dimension set and every metric the records declare.
fn declared(records: &[Value]) -> (String, Vec<String>, BTreeSet<String>) {
    let decl = &records[0]["_aws"]["CloudWatchMetrics"][0];
    let sets: Vec<Vec<String>> = decl["Dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d.as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string())
                .collect()
        })
        .collect();
    // Per function where a set has FunctionName.
    let dims = sets
        .iter()
        .find(|s| s.iter().any(|k| k == "FunctionName"))
        .or(sets.first())
        .cloned()
        .unwrap_or_default();
    let mut metrics = BTreeSet::new();
    for r in records {
        for m in r["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
        {
            metrics.insert(m["Name"].as_str().unwrap().to_string());
        }
    }
    (
        decl["Namespace"].as_str().unwrap().to_string(),
        dims,
        metrics,
    )
}

/// Checks the body's structure, and that every metric it graphs is one the records declare,
/// under their namespace and dimension set. Returns the graphed (metric, expression) pairs.
fn check_body(body: &Value, records: &[Value], region: &str) -> Vec<(String, String)> {
    let (namespace, dims, metrics) = declared(records);
    let quote = |n: &str| {
        if n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            n.to_string()
        } else {
            format!("\"{n}\"")
        }
    };
    let schema = format!(
        "{{{}}}",
        std::iter::once(&namespace)
            .chain(&dims)
            .map(|n| quote(n))
            .collect::<Vec<_>>()
            .join(",")
    );
    let widgets = body["widgets"].as_array().expect("widgets");
    assert!(widgets.len() >= 4, "{body}");
    let mut cells = BTreeSet::new();
    let mut graphed = Vec::new();
    for w in widgets {
        let (x, y) = (w["x"].as_u64().unwrap(), w["y"].as_u64().unwrap());
        let (width, height) = (w["width"].as_u64().unwrap(), w["height"].as_u64().unwrap());
        assert!(x + width <= 24 && width > 0 && height > 0, "{w}");
        for cx in x..x + width {
            for cy in y..y + height {
                assert!(cells.insert((cx, cy)), "widgets overlap at {cx},{cy}");
            }
        }
        let p = &w["properties"];
        assert_eq!(p["region"], region);
        assert!(!p["title"].as_str().unwrap().is_empty());
        match w["type"].as_str().unwrap() {
            "metric" => {
                for m in p["metrics"].as_array().unwrap() {
                    let e = m[0]["expression"].as_str().expect("an expression");
                    let at = e.find("SEARCH('").expect("a SEARCH") + 8;
                    let rest = &e[at..];
                    let (got_schema, rest) = rest.split_once(" MetricName=\"").unwrap();
                    let metric = rest.split('"').next().unwrap();
                    if metrics.contains(metric) {
                        assert_eq!(got_schema, schema, "{e}");
                    } else {
                        // Lambda's own per-function metrics (no charge) stand in for those
                        // lambda-meter leaves undeclared.
                        assert!(
                            ["Duration", "Errors"].contains(&metric)
                                && got_schema == "{AWS/Lambda,FunctionName}"
                                && dims.iter().any(|d| d == "FunctionName"),
                            "{metric} is graphed, not emitted: {e}"
                        );
                    }
                    graphed.push((metric.to_string(), e.to_string()));
                }
            }
            "log" => {
                let q = p["query"].as_str().unwrap();
                assert!(q.starts_with("SOURCE "), "{q}");
                assert!(q.contains(&format!("Namespace = '{namespace}'")), "{q}");
            }
            other => panic!("widget type {other}"),
        }
    }
    graphed
}

#[test]
fn the_dashboard_graphs_what_each_setting_emits_for_every_function() {
    for settings in [
        &[][..],
        &[("POWERTOOLS_SERVICE_NAME", "cart")][..],
        &[
            ("LAMBDA_METER_NAMESPACE", "Shop Floor"),
            ("LAMBDA_METER_METRICS", "all"),
        ][..],
        &[
            ("LAMBDA_METER_DIMENSIONS", "runtime;FunctionName"),
            ("LAMBDA_METER_METRICS", "Duration,Errors"),
        ][..],
    ] {
        let records = records_under(settings);
        let text = dashboard(
            &records,
            &[
                "--region",
                "eu-west-1",
                "--log-group",
                "/aws/lambda/a b",
                "--top",
                "5",
            ],
        );
        let body: Value = serde_json::from_str(&text).unwrap();
        let graphed = check_body(&body, &records, "eu-west-1");
        let (_, dims, _) = declared(&records);
        assert!(
            dims.iter().any(|d| d == "FunctionName"),
            "graphed per function"
        );
        let (_, _, metrics) = declared(&records);
        let has = |m: &str, needle: &str| graphed.iter().any(|(g, e)| g == m && e.contains(needle));
        // Latency for every function, and the top 5 by errors and cold starts where emitted.
        assert!(has("Duration", "'p99'"), "{settings:?}");
        assert!(has("Errors", "SUM, DESC, 5)"), "{settings:?}");
        assert_eq!(
            has("ColdStart", "SUM, DESC, 5)"),
            metrics.contains("ColdStart")
        );
        // Every metric of the default set that is emitted is graphed.
        for m in ["InitDuration", "Timeouts", "MemoryUtilization", "CpuTime"] {
            assert_eq!(
                graphed.iter().any(|(g, _)| g == m),
                metrics.contains(m),
                "{m} {settings:?}"
            );
        }
        // The Logs Insights widgets read the log groups named, errors by errorType first.
        let logs: Vec<&str> = body["widgets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["type"] == "log")
            .map(|w| w["properties"]["query"].as_str().unwrap())
            .collect();
        assert_eq!(logs.len(), 3);
        assert!(logs[0].starts_with("SOURCE '/aws/lambda/a b' | "));
        assert!(
            logs[0].contains("stats count(*) as errors by errorType")
                && logs[0].contains("limit 5")
        );
        // The errorType that query counts is in the records it reads.
        assert!(records.iter().any(|r| r["errorType"] == "ValueError"));
        // The slowest downstream names: a row per entry of each record's `downstream`.
        assert!(
            logs[2].contains("unnest record.downstream into call")
                && logs[2].contains("by call.name, FunctionName | sort waitMs desc | limit 5"),
            "{}",
            logs[2]
        );
    }
}

#[test]
fn the_checked_in_body_is_the_one_the_default_settings_give() {
    let records = records_under(&[]);
    let text = dashboard(&records, &["--region", "${Region}"]);
    let body: Value = serde_json::from_str(&text).unwrap();
    check_body(&body, &records, "${Region}");
    let checked_in = std::fs::read_to_string(root().join("layer/dashboard.json")).unwrap();
    assert_eq!(
        text.trim(),
        checked_in.trim(),
        "layer/dashboard.json is stale: make -s dashboard REGION='${{Region}}' > layer/dashboard.json && layer/sync"
    );
    // Without log groups the Logs Insights widgets read every function's log group.
    assert!(text.contains("SOURCE logGroups(namePrefix: ['/aws/lambda/'])"));
    // The SAM template carries the same body (layer/sync writes it), with only the region to
    // fill in; Terraform reads the file.
    assert_layer_sync_fresh();
    let template = std::fs::read_to_string(root().join("layer/template.yaml")).unwrap();
    assert!(template.contains(checked_in.lines().nth(1).unwrap()));
    let placeholders: BTreeSet<&str> = checked_in
        .match_indices("${")
        .map(|(i, _)| &checked_in[i..i + checked_in[i..].find('}').unwrap() + 1])
        .collect();
    assert_eq!(placeholders, BTreeSet::from(["${Region}"]));
}
