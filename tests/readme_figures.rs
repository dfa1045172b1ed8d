//! The figures the README states are the ones the commands produce: the layer's sizes, and the
//! cost table (custom metrics per function, log bytes per invoke, monthly dollars) for the
//! default settings, `all` and batching, computed from real runs.

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
use support::downstream_server::Server;
use support::*;

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

/// The number written after `before` in the README (digits and thousands commas).
fn number_after(text: &str, before: &str) -> f64 {
    let at = text
        .find(before)
        .unwrap_or_else(|| panic!("README lacks {before:?}"))
        + before.len();
    let digits: String = text[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',' || *c == '.')
        .filter(|c| *c != ',')
        .collect();
    digits
        .trim_end_matches('.')
        .parse()
        .unwrap_or_else(|_| panic!("no number after {before:?}"))
}

#[test]
fn the_layer_sizes_are_within_five_percent_of_the_zips_built() {
    let text = readme();
    for arch in ["x86_64", "arm64"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{arch:<7} library")))
            .unwrap_or_else(|| panic!("no size line for {arch}"));
        let zip_path = line.split_whitespace().last().unwrap();
        let stated_zip = number_after(line, "zip");
        let stated_lib = number_after(line, "library");
        let zip = std::fs::metadata(root().join(zip_path))
            .expect("make layer first (make test does)")
            .len() as f64;
        let lib =
            std::fs::metadata(root().join(format!("target/layer/{arch}/lib/liblambda_meter.so")))
                .unwrap()
                .len() as f64;
        for (what, stated, real) in [("zip", stated_zip, zip), ("library", stated_lib, lib)] {
            assert!(
                (stated - real).abs() <= real * 0.05,
                "README says the {arch} {what} is {stated} bytes; make layer built {real}: update README.md"
            );
        }
    }
}

/// One row of the README's cost table: custom metrics, log bytes per invoke, and the monthly
/// dollars at 1 and 100 million invokes.
#[derive(Debug)]
struct Row {
    metrics: f64,
    bytes: f64,
    million: f64,
    hundred_million: f64,
}

fn row(text: &str, label: &str) -> Row {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("| {label} |")))
        .unwrap_or_else(|| panic!("README's cost table has no row {label:?}"));
    let cells: Vec<&str> = line.split('|').map(str::trim).collect();
    let num = |cell: &str| number_after(cell, "");
    Row {
        metrics: num(cells[2]),
        bytes: num(cells[3].trim_start_matches("about ")),
        million: num(cells[4].trim_start_matches('$')),
        hundred_million: num(cells[5].trim_start_matches('$')),
    }
}

/// The run's figures: lambda-meter's own declared metrics (each name and dimension set is one
/// billed metric; the demo's own OrdersPlaced is not counted), and log bytes per invoke over
/// `lines` (records with lambda-meter's directive only).
fn measured(lines: &[&str], invokes: usize, records: &[Value]) -> Row {
    let mut billed = BTreeSet::new();
    for r in records {
        let d = &r["_aws"]["CloudWatchMetrics"][0];
        for m in d["Metrics"].as_array().unwrap() {
            for set in d["Dimensions"].as_array().unwrap() {
                billed.insert((m["Name"].to_string(), set.to_string()));
            }
        }
    }
    let bytes = lines.iter().map(|l| l.len() + 1).sum::<usize>() as f64 / invokes as f64;
    let usd = |n| lambda_sim::summary::monthly_usd(billed.len(), bytes, n);
    Row {
        metrics: billed.len() as f64,
        bytes,
        million: usd(1e6),
        hundred_million: usd(1e8),
    }
}

fn assert_row(label: &str, stated: &Row, run: &Row, tolerance: f64) {
    assert_eq!(
        stated.metrics, run.metrics,
        "{label}: custom metrics, run {run:?}"
    );
    for (what, s, r) in [
        ("log bytes per invoke", stated.bytes, run.bytes),
        ("dollars at 1 million", stated.million, run.million),
        (
            "dollars at 100 million",
            stated.hundred_million,
            run.hundred_million,
        ),
    ] {
        assert!(
            (s - r).abs() <= r * tolerance,
            "README's {label} row says {s} {what}; the run gives {r:.2} ({run:?}): update README.md"
        );
    }
}

fn demo_run(env: &[(&str, &str)], payloads: &[Value], max_concurrency: usize) -> String {
    handler_run("handler.dispatch", env, payloads, max_concurrency)
}

fn handler_run(
    handler: &str,
    env: &[(&str, &str)],
    payloads: &[Value],
    max_concurrency: usize,
) -> String {
    let layer = Layer::new();
    let cmd = python_command(handler);
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let out = run_with(
        lambda_sim::Config {
            events: events(payloads),
            max_concurrency,
            ..lambda_sim::Config::default()
        },
        &cmd,
        Some(&layer.wrapper()),
        env,
        &python_function_dir(),
    );
    out.run.stdout
}

fn emf_lines(stdout: &str) -> Vec<(&str, Value)> {
    stdout
        .lines()
        .filter(|l| l.starts_with("{\"_aws\""))
        .map(|l| (l, serde_json::from_str(l).unwrap()))
        .collect()
}

#[test]
fn the_cost_table_holds_the_figures_of_real_runs() {
    let text = readme();
    let demo: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(python_function_dir().join("demo-events.json")).unwrap(),
    )
    .unwrap();
    // The default settings and `all`, on the demo's events (less the one record that also
    // carries the demo's own metric).
    for (label, env) in [
        ("lambda-meter, default", &[][..]),
        (
            "lambda-meter, `LAMBDA_METER_METRICS=all`",
            &[("LAMBDA_METER_METRICS", "all")][..],
        ),
    ] {
        let stdout = demo_run(env, &demo, 1);
        let lines = emf_lines(&stdout);
        assert_eq!(lines.len(), demo.len());
        let own: Vec<&str> = lines
            .iter()
            .filter(|(_, r)| r["_aws"]["CloudWatchMetrics"].as_array().unwrap().len() == 1)
            .map(|(l, _)| *l)
            .collect();
        assert_eq!(own.len(), demo.len() - 1, "one record with a custom metric");
        let records: Vec<Value> = lines.into_iter().map(|(_, r)| r).collect();
        assert_row(
            label,
            &row(&text, label),
            &measured(&own, own.len(), &records),
            0.05,
        );
    }
    // The default settings where each invoke calls three servers (`downstream`'s three names,
    // by address: 127.0.0.1:port).
    let servers = [Server::start(), Server::start(), Server::start()];
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let payload = json!({
        "client": "http.client", "host": "127.0.0.1", "ports": ports, "ms": 1, "calls": 2,
    });
    let stdout = handler_run("downstream.handler", &[], &vec![payload; 20], 1);
    let lines = emf_lines(&stdout);
    assert_eq!(lines.len(), 20);
    for (_, r) in &lines {
        assert_eq!(r["downstream"].as_array().map(Vec::len), Some(3), "{r}");
    }
    let own: Vec<&str> = lines.iter().map(|(l, _)| *l).collect();
    let records: Vec<Value> = lines.iter().map(|(_, r)| r.clone()).collect();
    let label = "lambda-meter, default, each invoke calling 3 remote names";
    assert_row(
        label,
        &row(&text, label),
        &measured(&own, own.len(), &records),
        0.05,
    );
    // Batching on Lambda Managed Instances: the full batches of a run of four workers.
    let payloads: Vec<Value> = (0..48)
        .map(|i| match i % 6 {
            0 => json!({"action": "sleep", "ms": 30}),
            3 => json!({"action": "fail", "type": "OrderNotFound"}),
            _ => json!({"action": "ok"}),
        })
        .collect();
    let stdout = demo_run(&[("LAMBDA_METER_BATCH", "10")], &payloads, 4);
    let lines = emf_lines(&stdout);
    let full: Vec<&str> = lines
        .iter()
        .filter(|(_, r)| r["invokes"] == 10)
        .map(|(l, _)| *l)
        .collect();
    assert!(!full.is_empty());
    let records: Vec<Value> = lines.into_iter().map(|(_, r)| r).collect();
    let label = "lambda-meter, `LAMBDA_METER_BATCH=10`, full batches";
    assert_row(
        label,
        &row(&text, label),
        &measured(&full, full.len() * 10, &records),
        0.05,
    );
    // Lambda Insights by AWS's own figures.
    let label = "Lambda Insights (AWS's figures)";
    let insights = Row {
        metrics: lambda_sim::summary::INSIGHTS_METRICS as f64,
        bytes: lambda_sim::summary::INSIGHTS_BYTES_PER_INVOKE,
        million: lambda_sim::summary::monthly_usd(
            lambda_sim::summary::INSIGHTS_METRICS,
            lambda_sim::summary::INSIGHTS_BYTES_PER_INVOKE,
            1e6,
        ),
        hundred_million: lambda_sim::summary::monthly_usd(
            lambda_sim::summary::INSIGHTS_METRICS,
            lambda_sim::summary::INSIGHTS_BYTES_PER_INVOKE,
            1e8,
        ),
    };
    assert_row(label, &row(&text, label), &insights, 0.01);
    // The prices are the ones the estimate uses, with their date.
    assert!(text.contains(&format!(
        "us-east-1 list prices of {}",
        lambda_sim::summary::PRICES_DATED
    )));
    eprintln!("figures checked against README.md");
}
