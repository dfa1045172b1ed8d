//! Runs of a small host program against the simulator, without and with the library, and
//! what the host saw in each, compared.

use super::*;
use lambda_sim::Config;
use serde_json::json;
use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

/// Runs `command` against a simulator serving `invokes` events, through the wrapper when
/// `wrapped`.
pub fn run_host(command: &[&str], invokes: usize, env: &[(&str, &str)], wrapped: bool) -> Outcome {
    run_host_timeout(command, invokes, env, wrapped, Config::default().timeout)
}

/// [`run_host`] with a function timeout of `timeout`.
pub fn run_host_timeout(
    command: &[&str],
    invokes: usize,
    env: &[(&str, &str)],
    wrapped: bool,
    timeout: Duration,
) -> Outcome {
    let layer = Layer::new();
    let payloads: Vec<_> = (0..invokes).map(|i| json!({"invoke": i})).collect();
    run_until(
        Config {
            events: events(&payloads),
            timeout,
            ..Config::default()
        },
        command,
        wrapped.then_some(layer.wrapper().as_path()),
        env,
        &root(),
        Duration::from_secs(40),
    )
}

/// How a run ended, as the runner saw it.
pub fn ending(o: &Outcome) -> String {
    match o.run.exited {
        None if o.run.idle => "waiting for the next event when the simulator was idle".into(),
        None => "neither idle nor ended within the limit".into(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit status {c}"),
            (_, Some(sig)) => format!("killed by signal {sig} (core dumped: {})", s.core_dumped()),
            _ => format!("{s:?}"),
        },
    }
}

/// The lines of the two outputs that differ, line by line (`-` without, `+` with the library).
pub fn differences(plain: &[String], metered: &[String]) -> String {
    let mut out = String::new();
    for i in 0..plain.len().max(metered.len()) {
        let (a, b) = (plain.get(i), metered.get(i));
        if a != b {
            if let Some(a) = a {
                out.push_str(&format!("- {a}\n"));
            }
            if let Some(b) = b {
                out.push_str(&format!("+ {b}\n"));
            }
        }
    }
    out
}

/// The host saw the same with and without the library: what it printed (EMF records left
/// out), its stderr, and how it ended.
pub fn assert_host_saw_the_same(what: &str, plain: &Outcome, metered: &Outcome) {
    let (a, b) = (plain.other_stdout(), metered.other_stdout());
    assert!(
        a == b,
        "{what}: the host saw something else with the library (- without, + with):\n{}\nstderr with the library:\n{}",
        differences(&a, &b),
        metered.run.stderr
    );
    assert_eq!(
        plain.run.stderr, metered.run.stderr,
        "{what}: stderr differs with the library"
    );
    assert_eq!(
        ending(plain),
        ending(metered),
        "{what}: the runtime ended differently with the library"
    );
}

/// The plain run went as the probe intends (so the comparison means something).
pub fn assert_plain_printed(plain: &Outcome, line: &str) {
    assert!(
        plain.other_stdout().iter().any(|l| l.starts_with(line)),
        "without the library the probe did not print {line:?} ({}):\n{}\n{}",
        ending(plain),
        plain.run.stdout,
        plain.run.stderr
    );
}

/// Every one of the `invokes` events has its valid record.
pub fn assert_every_invoke_metered(what: &str, metered: &Outcome, invokes: usize) {
    let records = metered.records();
    let ids: HashSet<String> = records
        .iter()
        .filter_map(|r| r["requestId"].as_str().map(str::to_string))
        .collect();
    let missing: Vec<String> = (1..=invokes)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .filter(|id| !ids.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{what}: {} of {invokes} invokes have no record (the first: {}); stderr:\n{}",
        missing.len(),
        missing[0],
        metered.run.stderr
    );
    assert_valid_emf(&records);
}
