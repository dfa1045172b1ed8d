//! The CDK Aspect of `layer/cdk/lambda-meter.js`, synthesized with the real `aws-cdk-lib` from
//! npm (no AWS account: nothing is deployed) and the templates checked with cfn-lint.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::Value;
use std::process::Command;
use support::*;

/// Synthesizes tests/cdk/app.js: the templates by stack name and the warnings raised.
fn synth() -> (tempdir::TempDir, Value) {
    let out = tempdir::TempDir::new("cdk");
    let zips = root().join("target/layer");
    assert!(zips.is_dir(), "run make layer first (make test does)");
    let run = Command::new("node")
        .arg(root().join("tests/cdk/app.js"))
        .arg(out.path())
        .arg(&zips)
        .env("NODE_PATH", root().join("tests/cdk/node_modules"))
        .output()
        .expect("node");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = String::from_utf8_lossy(&run.stdout);
    let summary: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    (out, summary)
}

fn template(summary: &Value, stack: &str) -> Value {
    let path = summary["templates"][stack].as_str().unwrap();
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The function whose logical id starts with `name`: its layers (as JSON text) and variables.
fn function(t: &Value, name: &str) -> (String, Value) {
    let (_, f) = t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(id, r)| id.starts_with(name) && r["Type"] == "AWS::Lambda::Function")
        .unwrap_or_else(|| panic!("no function {name}"));
    let p = &f["Properties"];
    (
        p["Layers"].to_string(),
        p["Environment"]["Variables"].clone(),
    )
}

#[test]
fn the_aspect_meters_every_function_of_a_scope_the_way_its_runtime_needs() {
    let (_dir, summary) = synth();
    let fleet = template(&summary, "Fleet");
    let layer_ids: Vec<(&String, &Value)> = fleet["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Lambda::LayerVersion")
        .collect();
    assert_eq!(layer_ids.len(), 2);
    let runtimes: Vec<String> = std::fs::read_to_string(root().join("layer/runtimes"))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    for (id, layer) in &layer_ids {
        assert_eq!(layer["DeletionPolicy"], "Retain", "{id}");
        let listed: Vec<&str> = layer["Properties"]["CompatibleRuntimes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert_eq!(listed, runtimes, "the one runtime list");
    }
    let x86 = layer_ids
        .iter()
        .find(|(id, _)| id.contains("x8664"))
        .unwrap()
        .0;
    let arm = layer_ids
        .iter()
        .find(|(id, _)| id.contains("arm64"))
        .unwrap()
        .0;

    // A managed runtime: the wrapper, and the layer of its architecture.
    let (layers, env) = function(&fleet, "Python");
    assert_eq!(layers, format!("[{{\"Ref\":\"{x86}\"}}]"));
    assert_eq!(env["AWS_LAMBDA_EXEC_WRAPPER"], "/opt/lambda-meter");
    // A function with a wrapper and a layer of its own keeps both: the wrapper runs next.
    let (layers, env) = function(&fleet, "NodeWithOtel");
    assert!(
        layers.contains("aws-otel-nodejs-arm64") && layers.contains(arm.as_str()),
        "{layers}"
    );
    assert_eq!(env["AWS_LAMBDA_EXEC_WRAPPER"], "/opt/lambda-meter");
    assert_eq!(env["LAMBDA_METER_NEXT_WRAPPER"], "/opt/otel-instrument");
    assert_eq!(env["KEEP"], "me");
    // An OS-only runtime gets LD_PRELOAD (Lambda runs no wrapper there), before its own:
    // provided.al2023 the library built for its glibc (2.34).
    let (layers, env) = function(&fleet, "ShellOnProvided");
    assert!(layers.contains(arm.as_str()), "{layers}");
    assert_eq!(
        env["LD_PRELOAD"],
        "/opt/lib/glibc-2.34/liblambda_meter.so:/opt/lib/libother.so"
    );
    assert!(env.get("AWS_LAMBDA_EXEC_WRAPPER").is_none());
    // Opted out: untouched. A container image: untouched, with a warning.
    let (layers, env) = function(&fleet, "OptedOut");
    assert_eq!(layers, "null");
    assert_eq!(env.as_object().unwrap().len(), 1);
    assert_eq!(function(&fleet, "Image").0, "null");
    let warnings = summary["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0]["path"] == "/Fleet/Image"
            && warnings[0]["text"]
                .as_str()
                .unwrap()
                .contains("container image")
    );

    // Layers published elsewhere, by ARN; the aspect added twice meters once.
    let team = template(&summary, "Team");
    let (layers, env) = function(&team, "Java");
    assert_eq!(
        layers,
        "[\"arn:aws:lambda:eu-west-1:123456789012:layer:lambda-meter-x86_64:3\"]"
    );
    assert_eq!(env["AWS_LAMBDA_EXEC_WRAPPER"], "/opt/lambda-meter");

    // cfn-lint passes both templates. (W3005 is CDK's own DependsOn beside a GetAtt.)
    let lint = python().with_file_name("cfn-lint");
    for stack in ["Fleet", "Team"] {
        let path = summary["templates"][stack].as_str().unwrap();
        let out = Command::new(&lint)
            .args(["--ignore-checks", "W3005", "--", path])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{stack}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
