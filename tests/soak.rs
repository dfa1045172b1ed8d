//! Soak: many invokes of a mixed event set through the real Python client, with and without
//! the library. Records equal invokes; the runtime's resident memory grows no more than
//! without the library; no fd is left behind. `make test` runs 3,000 invokes; `make soak`
//! runs 100,000 (LAMBDA_METER_SOAK_INVOKES sets any number).

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use lambda_sim::Outcome as SimOutcome;
use serde_json::{Value, json};
use support::scenario::by_request_id;
use support::*;

fn invokes() -> usize {
    std::env::var("LAMBDA_METER_SOAK_INVOKES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000)
}

/// The mix, with a `stats` event at the end of the warm-up (a tenth) and as the last event.
fn payloads(n: usize) -> Vec<Value> {
    let mix = [
        json!({"action": "ok"}),
        json!({"action": "echo", "pad": "p".repeat(2_000)}),
        json!({"action": "fail", "type": "KeyError"}),
        json!({"action": "big", "bytes": 30_000}),
        json!({"action": "ok"}),
        json!({"action": "print", "text": "a handler log line"}),
        json!({"action": "partial", "text": "no newline"}),
    ];
    let warm = n / 10;
    (0..n)
        .map(|i| {
            if i == warm || i == n - 1 {
                json!({"action": "stats"})
            } else {
                mix[i % mix.len()].clone()
            }
        })
        .collect()
}

/// (resident KiB, open fds) from the `stats` results: after warm-up and at the end.
fn stats(out: &Outcome, payloads: &[Value]) -> Vec<(i64, i64)> {
    payloads
        .iter()
        .zip(out.sim.results())
        .filter(|(p, _)| p["action"] == "stats")
        .map(|(_, r)| {
            let v: Value = serde_json::from_slice(&r.expect("result").body).expect("stats json");
            (v["rss_kb"].as_i64().unwrap(), v["fds"].as_i64().unwrap())
        })
        .collect()
}

#[test]
fn soak_python_client() {
    let n = invokes().max(20);
    let payloads = payloads(n);
    let command = python_command("handler.dispatch");
    let cmd: Vec<&str> = command.iter().map(String::as_str).collect();
    let layer = Layer::new();
    // About a millisecond an invoke on these machines; a generous limit for the long form.
    let limit = std::time::Duration::from_secs(90 + n as u64 / 200);
    let run = |wrapped: bool| {
        run_for(
            lambda_sim::Config {
                events: events(&payloads),
                ..lambda_sim::Config::default()
            },
            &cmd,
            wrapped.then_some(layer.wrapper().as_path()),
            &[],
            &python_function_dir(),
            limit,
        )
    };
    let plain = run(false);
    let metered = run(true);
    assert!(
        !metered.run.stderr.contains("lambda-meter: "),
        "{}",
        metered.run.stderr
    );
    assert_eq!(
        plain.other_stdout().concat(),
        metered.other_stdout().concat(),
        "the handler's own output"
    );

    let records = metered.records();
    let by_id = by_request_id(&records);
    assert_eq!(by_id.len(), n, "one record per invoke");
    let results = metered.sim.results();
    let mut errors = 0;
    for r in &results {
        let r = r.as_ref().expect("result");
        let rec = &by_id[&r.request_id];
        let failed = matches!(r.outcome, SimOutcome::Error { .. });
        errors += usize::from(failed);
        assert_eq!(rec["Errors"], if failed { 1.0 } else { 0.0 });
        assert_eq!(
            rec["ResponseBytes"].as_f64().unwrap() as usize,
            r.body.len()
        );
    }
    assert_eq!(
        errors,
        (0..n).filter(|i| payloads[*i]["action"] == "fail").count()
    );
    // Schema-check a sample (the validator takes about a millisecond a record).
    assert_valid_emf(&records[..records.len().min(500)]);
    assert_valid_emf(&records[records.len().saturating_sub(100)..]);

    let (p, m) = (stats(&plain, &payloads), stats(&metered, &payloads));
    let growth = |s: &[(i64, i64)]| s[1].0 - s[0].0;
    eprintln!(
        "soak: {n} invokes; resident growth after warm-up {} KiB without, {} KiB with lambda-meter; fds {:?} / {:?}",
        growth(&p),
        growth(&m),
        p,
        m
    );
    // The library's state is bounded: its growth over the run is the runtime's own, within
    // allocator noise.
    assert!(
        growth(&m) <= growth(&p) + 1024,
        "resident memory grew {} KiB with the library, {} KiB without",
        growth(&m),
        growth(&p)
    );
    assert_eq!(m[0].1, m[1].1, "open fds after warm-up and at the end");
    assert_eq!(p[1].1, m[1].1, "open fds with and without the library");
}
