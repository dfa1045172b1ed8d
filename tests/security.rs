//! What SECURITY.md promises, each as a test: no payload, result, error message, header value
//! (beyond the documented properties) or environment value reaches the output; records carry
//! only documented keys; the library opens no file or socket but its destination and its own
//! state files; the wrapper never runs a setting as shell code.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use lambda_sim::{Config, Event};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::Command;
use support::*;

#[test]
fn no_secret_reaches_a_record() {
    let secrets = [
        "SECRET-PAYLOAD-7f3a",
        "SECRET-RESULT-91cc",
        "SECRET-MESSAGE-4d20",
        "SECRET-CONTEXT-5e11",
        "SECRET-COGNITO-0b7d",
        "SECRET-ENV-a1b2",
        "SECRET-KEY-c3d4",
    ];
    let mut evs = events(&[
        json!({"action": "echo", "card": secrets[0]}),
        json!({"action": "secret", "secret": secrets[1]}),
        json!({"action": "fail", "type": "KeyError", "message": secrets[2]}),
        json!({"action": "secret", "secret": secrets[1]}),
    ]);
    evs[3] = Event {
        client_context: Some(format!("{{\"custom\":{{\"k\":\"{}\"}}}}", secrets[3])),
        cognito_identity: Some(format!(
            "{{\"cognitoIdentityId\":\"{}\",\"cognitoIdentityPoolId\":\"p\"}}",
            secrets[4]
        )),
        ..evs[3].clone()
    };
    let layer = Layer::new();
    let out = run_with(
        Config {
            events: evs,
            ..Config::default()
        },
        &python_command("handler.dispatch")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        Some(layer.wrapper().as_path()),
        &[
            ("MY_APP_SECRET", secrets[5]),
            ("AWS_SECRET_ACCESS_KEY", secrets[6]),
            ("LAMBDA_METER_METRICS", "all"),
        ],
        &python_function_dir(),
    );
    // The secrets really went through the runtime: the results carry them.
    let results: Vec<Vec<u8>> = out
        .sim
        .results()
        .into_iter()
        .map(|r| r.expect("result").body)
        .collect();
    let all_results = String::from_utf8_lossy(&results.concat()).into_owned();
    assert!(all_results.contains(secrets[1]) && all_results.contains(secrets[2]));
    assert!(all_results.contains(secrets[3]), "{all_results}");
    let records = out.records();
    assert_eq!(records.len(), 4);
    assert_valid_emf(&records);
    let ours: Vec<&str> = out
        .run
        .stdout
        .lines()
        .filter(|l| !lambda_sim::summary::emf_records(l).is_empty())
        .chain(
            out.run
                .stderr
                .lines()
                .filter(|l| l.starts_with("lambda-meter")),
        )
        .collect();
    for line in &ours {
        for s in secrets {
            assert!(!line.contains(s), "{s} reached the output: {line}");
        }
    }
    // Only keys of lambda-meter's own (each documented in the README: tests/catalogs.rs).
    for r in &records {
        for key in r.as_object().unwrap().keys() {
            assert!(
                lambda_meter_core::emf::record_keys().any(|k| k == key),
                "undocumented key {key}"
            );
        }
    }
    assert_eq!(records[2]["errorType"], "KeyError");
}

/// `(syscall, what it named)` for each file or socket call, with run-specific parts made
/// uniform: pids under /proc, the temporary directory.
fn traced_calls(trace: &str, tmp: &str) -> BTreeSet<String> {
    let mut calls = BTreeSet::new();
    for line in trace.lines() {
        let line = line.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
        let Some(paren) = line.find('(') else {
            continue;
        };
        let name = &line[..paren];
        if line.contains("= -1 ENOENT") {
            continue; // lookups that found nothing (the loader's search path)
        }
        let arg = match line.find('"') {
            Some(q) => line[q + 1..]
                .split('"')
                .next()
                .unwrap_or_default()
                .to_string(),
            None => line[paren..]
                .split(',')
                .take(2)
                .collect::<Vec<_>>()
                .join(","),
        };
        let mut arg = arg.replace(tmp, "$TMPDIR");
        if let Some(rest) = arg.strip_prefix("/proc/") {
            let tail: String = rest.chars().skip_while(char::is_ascii_digit).collect();
            arg = format!("/proc/PID{tail}");
        }
        if let Some(at) = arg.find(".lambda-meter-journal-") {
            arg.truncate(at + ".lambda-meter-journal-".len());
        }
        calls.insert(format!("{name} {arg}"));
    }
    calls
}

#[test]
fn the_library_opens_only_its_destination_and_its_state() {
    let rt = compile_program("c_runtime", "c_runtime_traced", &["-O1"]);
    let tmp = tempdir::TempDir::new("traced");
    let tmp_path = tmp.path().to_str().unwrap().to_string();
    let run = |preload: bool| {
        let trace = tmp.path().join(if preload {
            "metered.trace"
        } else {
            "plain.trace"
        });
        let mut cmd = vec![
            "strace".to_string(),
            "-f".into(),
            "-qq".into(),
            "-o".into(),
            trace.display().to_string(),
            "-e".into(),
            "trace=open,openat,creat,mkdir,unlink,rename,socket,connect,bind".into(),
            "env".into(),
        ];
        if preload {
            cmd.push(format!("LD_PRELOAD={}", library().display()));
        }
        cmd.push(rt.display().to_string());
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let out = run(
            events(&[
                json!({"action": "ok"}),
                json!({"action": "fail", "type": "E"}),
                json!({"action": "vfork"}),
                json!({"action": "ok"}),
            ]),
            &cmd,
            None,
            &[("TMPDIR", tmp_path.as_str())],
            &root(),
        );
        (
            out.records().len(),
            traced_calls(&std::fs::read_to_string(trace).unwrap(), &tmp_path),
        )
    };
    let (plain_records, plain) = run(false);
    let (metered_records, metered) = run(true);
    assert_eq!((plain_records, metered_records), (0, 4));
    let extra: Vec<&String> = metered.difference(&plain).collect();
    eprintln!("plain: {} calls; the library added: {extra:?}", plain.len());
    let lib = library().display().to_string();
    for call in &extra {
        let allowed = call == &&format!("openat {lib}")
            // The loader opening the library's own dependencies.
            || (call.starts_with("openat /") && call.contains(".so"))
            // Its process's start time (pid reuse), and the environment's journal.
            || call.as_str() == "openat /proc/PID/stat"
            // Without the wrapper, the environment's identity: whether an ancestor process
            // loaded the library for the same Runtime API (SECURITY.md).
            || call.as_str() == "openat /proc/PID/environ"
            // The environment's memory figure: which memory cgroup the process is in (the
            // trace's /proc/self), and that cgroup's limit and peak, read only.
            || call.as_str() == "openat /proc/PIDself/cgroup"
            || (call.starts_with("openat /sys/fs/cgroup/")
                && ["limit_in_bytes", "max_usage_in_bytes", "memory.max", "memory.peak"]
                    .iter()
                    .any(|f| call.ends_with(f)))
            || call.as_str() == "openat $TMPDIR/.lambda-meter-journal-";
        assert!(
            allowed,
            "the library made a call the runtime does not: {call}\nall extra: {extra:?}"
        );
    }
    assert!(
        extra.iter().any(|c| c.contains(".lambda-meter-journal-")),
        "the trace saw the journal: {extra:?}"
    );
    assert!(
        !extra
            .iter()
            .any(|c| c.starts_with("socket") || c.starts_with("connect")),
        "no socket of its own with the default destination"
    );
}

#[test]
fn the_wrapper_never_runs_a_setting_as_shell_code() {
    let layer = Layer::new();
    let marks = tempdir::TempDir::new("marks");
    let m = |n: u32| marks.path().join(format!("ran-{n}")).display().to_string();
    let hostile: Vec<(String, String)> = vec![
        ("LAMBDA_METER_DISABLE".into(), format!("$(touch {})", m(1))),
        (
            "LAMBDA_METER_NEXT_WRAPPER".into(),
            format!("`touch {}`", m(2)),
        ),
        ("LAMBDA_METER_LIB".into(), format!("$(touch {});x", m(3))),
        (
            "LAMBDA_METER_NAMESPACE".into(),
            format!("'; touch {}; '", m(4)),
        ),
        (
            "AWS_LAMBDA_RUNTIME_API".into(),
            format!("127.0.0.1:1$(touch {})", m(5)),
        ),
        (
            "LAMBDA_METER_SERVICE".into(),
            format!("\"$(touch {})\"", m(6)),
        ),
    ];
    for (k, v) in &hostile {
        let out = Command::new("dash")
            .arg(layer.wrapper())
            .args(["sh", "-c", "echo started"])
            .env_remove("LD_PRELOAD")
            .env(k, v)
            .output()
            .expect("dash");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "started\n", "{k}={v}");
    }
    let ran: Vec<_> = std::fs::read_dir(marks.path()).unwrap().flatten().collect();
    assert!(ran.is_empty(), "a setting ran as shell code: {ran:?}");
}

#[test]
fn hostile_names_are_escaped_into_valid_records() {
    let weird = "fn\"quote\\back\nnew\u{7}bell\u{2028}sep";
    let out = run(
        events(&[json!({"action": "ok"})]),
        &python_command("handler.dispatch")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        Some(Layer::new().wrapper().as_path()),
        &[
            ("LAMBDA_METER_SERVICE", weird),
            ("AWS_LAMBDA_FUNCTION_VERSION", weird),
        ],
        &python_function_dir(),
    );
    let records = out.records();
    assert_eq!(records.len(), 1, "{}", out.run.stdout);
    assert_valid_emf(&records);
    let r: &Value = &records[0];
    assert_eq!(r["functionVersion"], weird);
    assert_eq!(r["service"], weird);
}
