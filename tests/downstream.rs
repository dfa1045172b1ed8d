//! What each invoke waited on: real HTTP clients in real runtime clients call a local server
//! that answers after a known delay, and each invoke's record carries its `downstream`
//! property. Every run is compared with the same run without lambda-meter.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{Value, json};
use std::net::TcpListener;
use std::time::Duration;
use support::downstream_server::*;
use support::scenario::{Scenario, assert_same_results, by_request_id};
use support::*;

/// Each invoke of each Python client makes `CALLS` calls of `MS` ms: its record counts them
/// exactly, and their wait is at least the server's delay and less than twice it.
#[test]
fn python_clients_calls_are_counted_and_timed_per_invoke() {
    const CALLS: u64 = 3;
    const MS: u64 = 60;
    let server = Server::start();
    // (client, connections per invoke)
    for (client, connects) in [("http.client", 1), ("urllib", CALLS), ("requests", 1)] {
        let payload = json!({
            "client": client, "host": "localhost", "port": server.port, "ms": MS,
            "calls": CALLS,
        });
        let mut scenario =
            Scenario::new(python_command("downstream.handler"), python_function_dir());
        scenario.payloads = vec![payload.clone(), payload];
        let (records, accepted) = both_ways(scenario, &server);
        assert_eq!(accepted as u64, 2 * connects, "{client}");
        for record in records {
            let e = only_entry(&record);
            assert_eq!(e["name"], "localhost", "{client}: {record}");
            assert_eq!(e["calls"], CALLS, "{client}: {record}");
            assert_eq!(e["connects"], connects, "{client}: {record}");
            let wait = e["waitMs"].as_f64().unwrap();
            let injected = (CALLS * MS) as f64;
            assert!(
                wait >= injected && wait < 2.0 * injected,
                "{client}: waited {wait} ms for {injected} ms of delay: {record}"
            );
            assert!(e["connectMs"].as_f64().unwrap() < injected, "{record}");
            assert!(e["lookups"].as_u64().unwrap() >= 1, "{client}: {record}");
            assert!(
                e["bytesIn"].as_u64().unwrap() >= CALLS * BODY as u64,
                "{record}"
            );
            assert!(e["bytesOut"].as_u64().unwrap() > 0, "{record}");
            for failure in ["refused", "reset", "timedOut", "shared", "missed"] {
                assert!(e.get(failure).is_none(), "{client}: {record}");
            }
        }
    }
}

/// A handler that runs `curl` (a child process per call, as `subprocess` starts it): each curl
/// hands the calls it made to the runtime at its exit, and they are in the invoke's record,
/// exactly, as if the runtime had made them. curl resolves `localhost` itself, not through
/// getaddrinfo: its connections go by their address.
#[test]
fn a_child_processs_calls_are_in_the_invokes_record() {
    const CALLS: u64 = 3;
    const MS: u64 = 60;
    let server = Server::start();
    let payload = json!({
        "client": "curl", "host": "127.0.0.1", "port": server.port, "ms": MS, "calls": CALLS,
    });
    let mut scenario = Scenario::new(python_command("downstream.handler"), python_function_dir());
    scenario.payloads = vec![payload.clone(), payload];
    let (records, accepted) = both_ways(scenario, &server);
    assert_eq!(accepted as u64, 2 * CALLS, "a connection per curl");
    for record in records {
        let e = only_entry(&record);
        assert_eq!(e["name"], format!("127.0.0.1:{}", server.port), "{record}");
        assert_eq!(e["calls"], CALLS, "{record}");
        assert_eq!(e["connects"], CALLS, "{record}");
        let wait = e["waitMs"].as_f64().unwrap();
        let injected = (CALLS * MS) as f64;
        assert!(
            wait >= injected && wait < 2.0 * injected,
            "waited {wait} ms for {injected} ms of delay: {record}"
        );
        assert!(
            e["bytesIn"].as_u64().unwrap() >= CALLS * BODY as u64,
            "{record}"
        );
        for failure in ["refused", "reset", "timedOut", "shared", "missed"] {
            assert!(e.get(failure).is_none(), "{record}");
        }
    }
}

/// A connection made at init, outside the handler, is followed from there: its calls in each
/// invoke are that invoke's, named by the lookup made at init (no connect or lookup of their
/// own).
#[test]
fn a_connection_made_at_init_is_followed_into_the_invokes() {
    const CALLS: u64 = 2;
    const MS: u64 = 40;
    let server = Server::start();
    let payload = json!({
        "client": "kept", "host": "localhost", "port": server.port, "ms": MS, "calls": CALLS,
    });
    let mut scenario = Scenario::new(python_command("downstream.handler"), python_function_dir())
        .env("DS_PORT", &server.port.to_string());
    scenario.payloads = vec![payload.clone(), payload];
    for record in both_ways(scenario, &server).0 {
        let e = only_entry(&record);
        assert_eq!(e["name"], "localhost", "{record}");
        assert_eq!(e["calls"], CALLS, "{record}");
        let wait = e["waitMs"].as_f64().unwrap();
        let injected = (CALLS * MS) as f64;
        assert!(wait >= injected && wait < 2.0 * injected, "{record}");
        for member in ["connects", "lookups", "carriedOver"] {
            assert!(e.get(member).is_none(), "{member}: {record}");
        }
    }
}

/// A function that makes no call has no `downstream` property, and a refused connection is
/// counted as one.
#[test]
fn no_calls_no_property_and_a_refused_connect_is_counted() {
    // A port nothing listens on: bound, then let go.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut scenario = Scenario::new(python_command("handler.dispatch"), python_function_dir());
    scenario.payloads = vec![
        json!({"action": "ok"}),
        json!({"action": "connect", "host": "127.0.0.1", "port": closed}),
    ];
    let server = Server::start();
    let records = both_ways(scenario, &server).0;
    assert!(records[0].get("downstream").is_none(), "{}", records[0]);
    let e = only_entry(&records[1]);
    assert_eq!(e["name"], format!("127.0.0.1:{closed}"), "{}", records[1]);
    assert_eq!(e["refused"], 1, "{}", records[1]);
    assert_eq!(e["connects"], 1, "{}", records[1]);
    assert!(e.get("calls").is_none(), "{}", records[1]);
}

/// Socket calls at the edges, in a C runtime (`tests/programs/downstream_edges.c`), each
/// compared with the same run without the library: a connect the kernel refuses before it
/// reads the address (an unreadable one) is the host's alone; a connect that succeeds is
/// followed whatever errno held before it; and a `siglongjmp` out of a signal handler that
/// interrupted the library's count of a call does not stop the counting of the calls after.
/// Calls made after an invoke's result, before the next event was asked for, are its
/// post-response ones. A UDP socket connected and closed unused is no entry; one that carried
/// a datagram and its answer is a call.
#[test]
fn connects_the_kernel_refuses_stale_errno_and_siglongjmp_out_of_a_count() {
    let port = echo_server();
    let udp_port = udp_echo_server();
    let program = compile_program("downstream_edges", "downstream_edges", &["-O1"]);
    let mut scenario = Scenario::new(vec![program.display().to_string()], std::env::temp_dir())
        .env("ECHO_PORT", &port.to_string())
        .env("UDP_ECHO_PORT", &udp_port.to_string());
    scenario.payloads = [
        "bad_address",
        "stale_errno",
        "longjmp",
        "turns",
        "turns",
        "after",
        "udp_probe",
    ]
    .iter()
    .map(|c| json!({ "case": c }))
    .collect();
    let plain = scenario.run(false);
    let metered = scenario.run(true);
    assert_eq!(metered.run.exits, plain.run.exits, "{}", metered.run.stderr);
    assert!(metered.run.idle, "{}", metered.run.stderr);
    assert_same_results(&plain, &metered);
    let records = by_request_id(&metered.records());
    let results = metered.sim.results();
    let record_of = |i: usize| {
        let id = &results[i].as_ref().unwrap().request_id;
        records[id.as_str()].clone()
    };
    let echo = format!("127.0.0.1:{port}");
    // The first invoke connected the kept connection; the refused connects count nowhere.
    let e = only_entry(&record_of(0)).clone();
    assert_eq!(
        (e["name"].as_str(), e["connects"].as_u64()),
        (Some(echo.as_str()), Some(1))
    );
    assert!(
        e.get("calls").is_none() && e.get("refused").is_none(),
        "{e}"
    );
    let e = only_entry(&record_of(1)).clone();
    assert_eq!(
        (e["calls"].as_u64(), e["connects"].as_u64()),
        (Some(1), Some(1)),
        "{e}"
    );
    for i in [3, 4] {
        let r = record_of(i);
        let e = only_entry(&r);
        assert_eq!(e["calls"], 5, "{r}");
        assert!(e.get("connects").is_none(), "{r}");
        assert!(r.get("downstreamPostResponse").is_none(), "{r}");
    }
    let r = record_of(5);
    assert_eq!(only_entry(&r)["calls"], 2, "{r}");
    let after = r["downstreamPostResponse"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(after.len(), 1, "{r}");
    assert_eq!(
        (after[0]["name"].as_str(), after[0]["calls"].as_u64()),
        (Some(echo.as_str()), Some(3)),
        "{r}"
    );
    assert!(r["PostResponseDuration"].as_f64().is_some(), "{r}");
    let r = record_of(6);
    let e = only_entry(&r);
    assert_eq!(e["name"], format!("127.0.0.1:{udp_port}"), "{r}");
    for (member, n) in [
        ("calls", 1),
        ("connects", 1),
        ("bytesOut", 1),
        ("bytesIn", 1),
    ] {
        assert_eq!(e[member], n, "{member}: {r}");
    }
}

/// A UDP server on 127.0.0.1 that sends each datagram back; its port.
fn udp_echo_server() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut b = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut b) {
            let _ = socket.send_to(&b[..n], from);
        }
    });
    port
}

/// Node.js's own `fetch` (undici, on libuv's non-blocking sockets and its thread pool's name
/// lookups) in the real runtime client: each invoke's calls counted and timed, on one kept
/// connection.
#[test]
fn node_fetch_calls_are_counted_and_timed_per_invoke() {
    const CALLS: u64 = 3;
    const MS: u64 = 60;
    let server = Server::start();
    let payload = json!({
        "host": "localhost", "port": server.port, "ms": MS, "calls": CALLS,
    });
    let mut scenario = Scenario::node("downstream.handler");
    scenario.payloads = vec![payload.clone(), payload];
    let (records, accepted) = both_ways(scenario, &server);
    let mut connects = 0;
    for record in &records {
        let e = only_entry(record);
        assert_eq!(e["name"], "localhost", "{record}");
        assert_eq!(e["calls"], CALLS, "{record}");
        let wait = e["waitMs"].as_f64().unwrap();
        let injected = (CALLS * MS) as f64;
        assert!(wait >= injected && wait < 2.0 * injected, "{record}");
        connects += e["connects"].as_u64().unwrap_or(0);
    }
    // undici keeps connections for later calls, and opens another when it sees fit: every one
    // the server accepted is in the invoke that made it.
    assert_eq!(connects, accepted as u64, "{records:?}");
}

/// `LAMBDA_METER_DOWNSTREAM=false`: no connection is followed, no record has the property.
#[test]
fn the_setting_turns_it_off() {
    let server = Server::start();
    let payload = json!({
        "client": "http.client", "host": "localhost", "port": server.port, "ms": 1, "calls": 2,
    });
    let mut scenario = Scenario::new(python_command("downstream.handler"), python_function_dir())
        .env("LAMBDA_METER_DOWNSTREAM", "false");
    scenario.payloads = vec![payload.clone(), payload];
    for record in both_ways(scenario, &server).0 {
        assert!(record.get("downstream").is_none(), "{record}");
    }
}

/// A timeout's record names the call the invoke was still waiting on when the deadline came
/// (`waitingOn`), and counts the calls it had made (`downstream`).
#[test]
fn a_timeout_names_the_call_still_waiting() {
    let server = Server::start();
    let slow = json!({
        "client": "slow", "host": "localhost", "port": server.port, "ms": 4_000, "calls": 1,
    });
    let mut scenario = Scenario::new(python_command("downstream.handler"), python_function_dir());
    scenario.timeout = Some(Duration::from_millis(1_000));
    scenario.payloads = vec![slow];
    let records = both_ways(scenario, &server).0;
    let r = &records[0];
    assert_eq!(r["errorType"], "Sandbox.Timedout", "{r}");
    let waiting = r["waitingOn"].as_array().unwrap_or_else(|| panic!("{r}"));
    assert_eq!(waiting.len(), 1, "{r}");
    let w = &waiting[0];
    assert_eq!(w["name"], "localhost", "{r}");
    let age = w["ageMs"].as_f64().unwrap();
    // Sent after init and a quick call, and waited on until the deadline (less the margin).
    assert!(age > 500.0 && age < 1_000.0, "{r}");
    assert!(
        w["bytesOut"].as_u64().unwrap() > 0 && w.get("bytesIn").is_none(),
        "{r}"
    );
    let e = only_entry(r);
    assert_eq!(
        (e["calls"].as_u64(), e["connects"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
    // The handler's thread is in the system call that waits for the answer (Python's socket
    // with a timeout polls its one fd before it reads), on that connection.
    let blocked = r["blockedIn"].as_array().unwrap_or_else(|| panic!("{r}"));
    let on_it: Vec<&Value> = blocked
        .iter()
        .filter(|b| b["name"] == "localhost")
        .collect();
    assert_eq!(on_it.len(), 1, "{r}");
    let b = on_it[0];
    assert!(
        ["poll", "ppoll", "recvfrom", "read"].contains(&b["syscall"].as_str().unwrap()),
        "{r}"
    );
    assert!(
        b["fd"].as_u64().is_some() && b["thread"].as_u64().is_some(),
        "{r}"
    );
    assert_eq!(b["ageMs"], w["ageMs"], "{r}");
}

/// On Lambda Managed Instances records are batched (`LAMBDA_METER_BATCH`): each invoke's calls
/// ride in its batched record as its entry of the `downstream` array (the order of
/// `requestId`). Python runs a process per invoke at once there: the first is the
/// environment's runtime, the others are runtimes of their own, started by it. Every invoke's
/// figures are exact.
#[test]
fn batched_records_carry_each_invokes_calls() {
    let server = Server::start();
    let calls_of = |i: usize| 1 + i as u64 % 3;
    let mut scenario = Scenario::new(python_command("downstream.handler"), python_function_dir())
        .env("LAMBDA_METER_BATCH", "3");
    scenario.max_concurrency = 4;
    scenario.payloads = (0..24)
        .map(|i| {
            json!({
                "client": "http.client", "host": "localhost", "port": server.port, "ms": 1,
                "calls": calls_of(i),
            })
        })
        .collect();
    let plain = scenario.run(false);
    let metered = scenario.run(true);
    assert!(
        !metered.run.stderr.contains("lambda-meter"),
        "{}",
        metered.run.stderr
    );
    assert_same_results(&plain, &metered);
    let raw = metered.raw_records();
    assert_valid_emf(&raw);
    let batches: Vec<&Value> = raw
        .iter()
        .filter(|r| r["invokes"].as_u64().is_some_and(|n| n > 1))
        .collect();
    assert!(!batches.is_empty(), "no batched record: {raw:?}");
    for b in &batches {
        let entries = b["downstream"].as_array().unwrap();
        assert_eq!(
            entries.len(),
            b["requestId"].as_array().unwrap().len(),
            "{b}"
        );
    }
    let each = by_request_id(&metered.records());
    let results = metered.sim.results();
    assert_eq!(each.len(), results.len());
    for (i, result) in results.iter().enumerate() {
        let id = &result.as_ref().unwrap().request_id;
        let record = &each[id.as_str()];
        let e = only_entry(record);
        assert_eq!(e["calls"], calls_of(i), "{record}");
        assert_eq!(e["name"], "localhost", "{record}");
    }
}

/// Python's `http.client` over TLS (the `ssl` module, OpenSSL) to a local TLS server: the
/// handshake's turn is not a call (`tlsHandshakes`, `tlsMs`), so the calls are the requests,
/// and their wait is within the bound of the delay.
#[test]
fn a_tls_handshake_is_not_a_call() {
    const CALLS: u64 = 3;
    const MS: u64 = 60;
    let dir = support::tempdir::TempDir::new("tls");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{made:?}");
    let mut server = std::process::Command::new(python())
        .arg(python_function_dir().join("tls_server.py"))
        .arg(&cert)
        .arg(&key)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the TLS server");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(server.stdout.take().unwrap()));
    let port: u16 = lines.next().unwrap().unwrap().trim().parse().unwrap();
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for _ in lines.map_while(Result::ok) {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let payload = json!({
        "client": "https", "host": "localhost", "port": port, "ms": MS, "calls": CALLS,
    });
    let mut scenario = Scenario::new(python_command("downstream.handler"), python_function_dir())
        .env("DS_CA", cert.to_str().unwrap());
    scenario.payloads = vec![payload.clone(), payload];
    let plain = scenario.run(false);
    let metered = scenario.run(true);
    let records = records_by_payload(&plain, &metered);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(
        requests.load(std::sync::atomic::Ordering::SeqCst) as u64,
        4 * CALLS,
        "requests the server answered, both runs"
    );
    for record in &records {
        let e = only_entry(record);
        assert_eq!(e["name"], "localhost", "{record}");
        assert_eq!(e["calls"], CALLS, "{record}");
        assert_eq!(e["tlsHandshakes"], 1, "{record}");
        assert!(e["tlsMs"].as_f64().unwrap() > 0.0, "{record}");
        let wait = e["waitMs"].as_f64().unwrap();
        let injected = (CALLS * MS) as f64;
        assert!(
            wait >= injected && wait < 2.0 * injected,
            "waited {wait} ms for {injected} ms of delay: {record}"
        );
    }
}
