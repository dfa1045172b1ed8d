//! The language versions of Lambda's `python3.13`, `python3.14` and `ruby3.3` runtimes, which
//! these machines (Debian 12: Python 3.11, Ruby 3.1) do not have: each runs in the Debian root
//! file system tests/setup.sh makes (Debian 13's Python 3.13 and Ruby 3.3, Python 3.14 from
//! Debian's testing suite, each on its own C library), started by tests/rootfs/enter as one
//! process from the wrapper to the interpreter, as Lambda starts a runtime. Each runs the
//! standard mix with and without the library, then a custom metric through the layer's shim.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{Value, json};
use std::process::Command;
use support::scenario::Scenario;
use support::*;

/// What `program` prints, run in the root file system.
fn output_in_debian(program: &[&str]) -> String {
    let cmd = in_debian(program);
    let out = Command::new(&cmd[0]).args(&cmd[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The record of the one invoke a metered run of `scenario` with `payload` makes, after
/// checking that its result is not an error and the library said nothing on stderr.
fn one_record(mut scenario: Scenario, payload: Value) -> Value {
    scenario.payloads = vec![payload];
    let out = scenario.run(true);
    assert!(
        !out.run.stderr.contains("lambda-meter"),
        "{}",
        out.run.stderr
    );
    let records = out.records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["Errors"], 0.0, "{}", records[0]);
    records[0].clone()
}

/// awslambdaric (its wheel for `version`, tests/setup.sh) on Debian's Python `version`, as the
/// managed runtime `python<version>` starts it.
fn python_in_debian(version: &str) {
    let python = format!("/usr/bin/python{version}");
    assert_eq!(
        output_in_debian(&[
            &python,
            "-c",
            "import sys; print('%d.%d' % sys.version_info[:2])"
        ]),
        version
    );
    let packages = root().join(format!("target/test-env/debian-python{version}"));
    let mut s = Scenario::new(
        in_debian(&[&python, "-m", "awslambdaric", "handler.dispatch"]),
        python_function_dir(),
    )
    .env("AWS_EXECUTION_ENV", &format!("AWS_Lambda_python{version}"))
    .env("PYTHONPATH", packages.to_str().unwrap());
    s.compare_output = true;
    let out = s.check();
    for r in out.records() {
        assert_eq!(r["runtime"], format!("python{version}"), "{r}");
    }
    // The layer's Python module, on the path the wrapper gives it, calls the library.
    let calls = json!([["add_metric", "OrdersPlaced", "Count", 2]]);
    let rec = one_record(s, json!({"action": "custom", "calls": calls}));
    assert_eq!(rec["OrdersPlaced"], 2.0, "{rec}");
}

#[test]
fn python313_in_debian_13() {
    python_in_debian("3.13");
}

#[test]
fn python314_from_debian_testing() {
    python_in_debian("3.14");
}

/// The Net::HTTP runtime loop (the HTTP stack of Ruby's runtime interface client) on Debian
/// 13's Ruby 3.3, and the layer's Fiddle shim.
#[test]
fn ruby33_in_debian_13() {
    assert!(output_in_debian(&["/usr/bin/ruby3.3", "-e", "puts RUBY_VERSION"]).starts_with("3.3."));
    let mut s = Scenario::new(
        in_debian(&["/usr/bin/ruby3.3", "runtime.rb"]),
        root().join("tests/functions/ruby"),
    )
    .env("AWS_EXECUTION_ENV", "AWS_Lambda_ruby3.3");
    s.compare_output = true;
    let out = s.check();
    for r in out.records() {
        assert_eq!(r["runtime"], "ruby3.3", "{r}");
    }
    let calls = json!([["put_metric", "CacheHits", 3, "Count"]]);
    let rec = one_record(s, json!({"action": "custom", "calls": calls}));
    assert_eq!(rec["CacheHits"], 3.0, "{rec}");
}
