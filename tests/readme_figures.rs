//! The figures the README states are the ones the commands produce: the layer's sizes, the
//! custom metrics per function and the log bytes per invoke under the default settings.

mod support;

use serde_json::Value;
use std::collections::BTreeSet;
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
        let triple = if arch == "arm64" { "aarch64" } else { "x86_64" };
        let lib = std::fs::metadata(root().join(format!(
            "target/{triple}-unknown-linux-gnu/release/liblambda_meter.so"
        )))
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

#[test]
fn custom_metrics_per_function_and_log_bytes_per_invoke_are_the_demos() {
    let payloads: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(python_function_dir().join("demo-events.json")).unwrap(),
    )
    .unwrap();
    let layer = Layer::new();
    let cmd = python_command("handler.dispatch");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let out = run(
        events(&payloads),
        &cmd,
        Some(&layer.wrapper()),
        &[],
        &python_function_dir(),
    );
    let lines: Vec<&str> = out
        .run
        .stdout
        .lines()
        .filter(|l| l.starts_with("{\"_aws\""))
        .collect();
    assert_eq!(lines.len(), payloads.len());
    // Each (metric, dimension set) pair of lambda-meter's own directive is one billed custom
    // metric (the demo also adds one of its own, which the README does not count).
    let own: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| {
            let r: Value = serde_json::from_str(l).unwrap();
            r["_aws"]["CloudWatchMetrics"].as_array().unwrap().len() == 1
        })
        .collect();
    assert_eq!(
        own.len(),
        lines.len() - 1,
        "one record with a custom metric"
    );
    let mut billed = BTreeSet::new();
    for l in &lines {
        let r: Value = serde_json::from_str(l).unwrap();
        let d = &r["_aws"]["CloudWatchMetrics"][0];
        for m in d["Metrics"].as_array().unwrap() {
            for set in d["Dimensions"].as_array().unwrap() {
                billed.insert((m["Name"].to_string(), set.to_string()));
            }
        }
    }
    let bytes: Vec<f64> = own.iter().map(|l| l.len() as f64 + 1.0).collect();
    let mean = bytes.iter().sum::<f64>() / bytes.len() as f64;
    let text = readme();
    let stated_metrics = number_after(&text, "that is\n**");
    assert_eq!(
        stated_metrics as usize,
        billed.len(),
        "custom metrics per function"
    );
    let stated_bytes = number_after(&text, "every invoke writes about **");
    // Request ids, timings and memory vary by a few bytes between runs.
    assert!(
        (stated_bytes - mean).abs() <= mean * 0.03,
        "README says {stated_bytes} bytes per invoke; this run wrote {mean:.0} on average"
    );
}
