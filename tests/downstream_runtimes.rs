//! What each invoke waited on, with the clients of other runtimes: Java's
//! `java.net.http.HttpClient` (JDK 21, Lambda's `java21`), Ruby's `Net::HTTP`, the `curl` CLI of
//! a shell runtime (a child process per call) and Python's `grpcio` (HTTP/2) call local servers
//! that answer after a known delay, and each invoke's record carries its `downstream` property.
//! Every run is compared with the same run without lambda-meter: the same results, Runtime API
//! requests and calls answered by the server.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{Value, json};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use support::downstream_server::*;
use support::scenario::{Launch, Scenario};
use support::*;

/// Calls per invoke, and the server's delay for each.
const CALLS: u64 = 3;
const MS: u64 = 60;

/// `e`'s wait covers the delay the server put into `calls` calls, and is less than twice it.
fn assert_waited(e: &Value, calls: u64, what: &str, record: &Value) {
    let wait = e["waitMs"]
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: no waitMs: {record}"));
    let injected = (calls * MS) as f64;
    assert!(
        wait >= injected && wait < 2.0 * injected,
        "{what}: waited {wait} ms for {injected} ms of delay: {record}"
    );
}

/// No entry of `record` says a connection failed, a call was carried over or shared, or a
/// socket call was missed.
fn assert_no_failures(record: &Value, what: &str) {
    for e in record["downstream"].as_array().into_iter().flatten() {
        for member in [
            "refused",
            "reset",
            "timedOut",
            "carriedOver",
            "shared",
            "missed",
        ] {
            assert!(e.get(member).is_none(), "{what}: {member}: {record}");
        }
    }
}

/// The one entry of `record` with calls: the connection that carried them. Every other entry
/// has no calls and no bytes.
fn calls_entry<'a>(record: &'a Value, what: &str) -> &'a Value {
    let entries = record["downstream"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no downstream property: {record}"));
    let (with, without): (Vec<&Value>, Vec<&Value>) =
        entries.iter().partition(|e| e.get("calls").is_some());
    assert_eq!(with.len(), 1, "{what}: {record}");
    for e in without {
        for member in ["bytesOut", "bytesIn", "waitMs"] {
            assert!(e.get(member).is_none(), "{what}: {member}: {record}");
        }
    }
    with[0]
}

// ---------------------------------------------------------------------------------------------
// Java: java.net.http.HttpClient on the JDK of Lambda's java21.

/// Compiles tests/functions/java once per test binary (into a directory of its own); returns
/// the class directory.
fn java_classes() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| compile_java_runtime("java-downstream"))
        .clone()
}

/// tests/functions/java/JavaRuntime.java on JDK 21, each invoke making [`CALLS`] calls of
/// [`MS`] to `server` through its kept HttpClient of `version` ("h1": HTTP/1.1, "h2": the
/// client's default HTTP/2 attempt, h2c upgrade headers on HTTP/1.1).
fn java_scenario(server: &Server, version: &str) -> Scenario {
    let cmd = vec![
        lambda_java(21),
        "-Xshare:auto".into(),
        "-cp".into(),
        java_classes().display().to_string(),
        "JavaRuntime".into(),
        "httpclient".into(),
    ];
    let mut s = Scenario::new(cmd, root());
    let payload = json!({
        "action": "downstream", "host": "localhost", "port": server.port, "ms": MS,
        "calls": CALLS, "version": version,
    });
    s.payloads = vec![payload.clone(), payload];
    s
}

/// The JDK's HttpClient, kept for the process as a function keeps an SDK client: its calls
/// (written and read on the client's own threads) counted and timed in the invoke that made
/// them, its one connection in the first invoke, and its one lookup of `localhost` (the JDK
/// caches it). The connection's name: see the next test.
#[test]
fn java_httpclient_calls_are_counted_and_timed_per_invoke() {
    let server = Server::start();
    for version in ["h1", "h2"] {
        let (records, accepted) = both_ways(java_scenario(&server, version), &server);
        assert_eq!(accepted, 1, "{version}: one kept connection");
        let (mut connects, mut lookups) = (0, 0);
        for record in &records {
            assert_no_failures(record, version);
            let e = calls_entry(record, version);
            assert_eq!(e["calls"], CALLS, "{version}: {record}");
            assert_waited(e, CALLS, version, record);
            assert!(
                e["bytesIn"].as_u64().unwrap() >= CALLS * BODY as u64,
                "{version}: {record}"
            );
            assert!(e["bytesOut"].as_u64().unwrap() > 0, "{version}: {record}");
            // By the name looked up, or else by the address connected (IPv4 or IPv6, and the
            // JDK's IPv4-mapped IPv6 one).
            let port = server.port;
            let names = [
                "localhost".to_string(),
                format!("127.0.0.1:{port}"),
                format!("[::1]:{port}"),
                format!("[::ffff:127.0.0.1]:{port}"),
            ];
            assert!(
                names.iter().any(|n| e["name"] == n.as_str()),
                "{version}: {record}"
            );
            connects += e["connects"].as_u64().unwrap_or(0);
            for entry in record["downstream"].as_array().unwrap() {
                if entry["name"] == "localhost" {
                    lookups += entry["lookups"].as_u64().unwrap_or(0);
                }
            }
        }
        assert_eq!(connects, 1, "{version}: {records:?}");
        assert_eq!(lookups, 1, "{version}: {records:?}");
    }
}

/// The JDK's HttpClient: one entry per invoke, named `localhost`,
/// with the lookup and the connect in the first invoke's.
#[test]
fn java_httpclient_connection_goes_by_the_name_looked_up() {
    let server = Server::start();
    let (records, _) = both_ways(java_scenario(&server, "h1"), &server);
    for (i, record) in records.iter().enumerate() {
        let e = only_entry(record);
        assert_eq!(e["name"], "localhost", "{record}");
        assert_eq!(e["calls"], CALLS, "{record}");
        let first = if i == 0 { Some(1) } else { None };
        assert_eq!(e["connects"].as_u64(), first, "{record}");
        assert_eq!(e["lookups"].as_u64(), first, "{record}");
    }
}

/// What the JDK does there, in a few lines of Python (tests/functions/python/
/// downstream_mapped.py): `localhost` looked up with getaddrinfo (IPv4), its address connected
/// as `::ffff:127.0.0.1` on an AF_INET6 socket, one call. gRPC's native resolver
/// (`GRPC_DNS_RESOLVER=native`) connects the same way and gets the same names.
#[test]
fn an_ipv4_mapped_connect_goes_by_the_name_looked_up() {
    let server = Server::start();
    let mut s = Scenario::new(
        python_command("downstream_mapped.handler"),
        python_function_dir(),
    );
    s.payloads = vec![json!({"host": "localhost", "port": server.port, "ms": MS})];
    let (records, accepted) = both_ways(s, &server);
    assert_eq!(accepted, 1);
    let e = only_entry(&records[0]);
    assert_eq!(e["name"], "localhost", "{}", records[0]);
    assert_eq!(
        (
            e["calls"].as_u64(),
            e["connects"].as_u64(),
            e["lookups"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{}",
        records[0]
    );
}

// ---------------------------------------------------------------------------------------------
// Ruby: Net::HTTP in tests/functions/ruby/runtime.rb.

/// Ruby's runtime (`command`) makes [`CALLS`] calls of [`MS`] per invoke on one Net::HTTP
/// connection of the invoke's own: each counted, timed and named by the lookup.
fn ruby_net_http_calls(command: Vec<String>) {
    let server = Server::start();
    let mut s = Scenario::new(command, root().join("tests/functions/ruby"));
    let payload = json!({
        "action": "downstream", "host": "localhost", "port": server.port, "ms": MS,
        "calls": CALLS,
    });
    s.payloads = vec![payload.clone(), payload];
    let (records, accepted) = both_ways(s, &server);
    assert_eq!(accepted, 2, "a connection per invoke");
    for record in &records {
        assert_no_failures(record, "ruby");
        let e = only_entry(record);
        assert_eq!(e["name"], "localhost", "{record}");
        assert_eq!(e["calls"], CALLS, "{record}");
        assert_eq!(e["connects"], 1, "{record}");
        assert_eq!(e["lookups"], 1, "{record}");
        assert_waited(e, CALLS, "ruby", record);
        assert!(
            e["bytesIn"].as_u64().unwrap() >= CALLS * BODY as u64,
            "{record}"
        );
    }
}

/// The machine's Ruby (Debian 12's 3.1).
#[test]
fn ruby_net_http_calls_are_counted_and_timed_per_invoke() {
    ruby_net_http_calls(vec!["ruby".into(), "runtime.rb".into()]);
}

/// Ruby 3.3 (Lambda's ruby3.3), in the Debian 13 root file system of tests/setup.sh: its
/// getaddrinfo runs on a thread of its own, not the one that read the event.
#[test]
fn ruby33_net_http_calls_are_counted_and_timed_per_invoke() {
    ruby_net_http_calls(in_debian(&["/usr/bin/ruby3.3", "runtime.rb"]));
}

// ---------------------------------------------------------------------------------------------
// Shell: the curl CLI, a child process of the runtime shell per call.

/// The shell runtime of tests/functions/shell, whose handler curls `server` [`CALLS`] times
/// an invoke, each a curl process of its own. The URL names 127.0.0.1: curl resolves
/// `localhost` itself (no getaddrinfo), so the only name it could have is the address.
fn shell_curls(server: &Server) -> Scenario {
    let dir = root().join("tests/functions/shell");
    let mut s = Scenario::new(
        vec![dir.join("bootstrap").display().to_string()],
        dir.clone(),
    )
    .env("LAMBDA_TASK_ROOT", dir.to_str().unwrap())
    .env("_HANDLER", "downstream.curls");
    let payload = json!({"host": "127.0.0.1", "port": server.port, "ms": MS, "calls": CALLS});
    s.payloads = vec![payload.clone(), payload];
    s
}

/// A shell function's curls: each is a process of its own, which hands the calls it made to
/// the environment's runtime at its exit (the custom-metrics channel); the process that posts
/// the result puts them in the invoke's record.
#[test]
fn shell_curl_calls_are_counted_and_timed_per_invoke() {
    let server = Server::start();
    let (records, _) = both_ways(shell_curls(&server), &server);
    for record in &records {
        assert_no_failures(record, "curl");
        let e = only_entry(record);
        assert_eq!(e["name"], format!("127.0.0.1:{}", server.port), "{record}");
        assert_eq!(e["calls"], CALLS, "{record}");
        assert_eq!(e["connects"], CALLS, "{record}");
        assert_waited(e, CALLS, "curl", record);
    }
}

// ---------------------------------------------------------------------------------------------
// gRPC: grpcio's unary calls, HTTP/2 streams on one connection.

/// tests/functions/python/downstream_grpc_server.py with `args`: a grpcio server whose
/// `/delay.Delay/Wait` answers after the milliseconds its request says, and says each call it
/// gets (with its client's address) on a line.
struct GrpcServer {
    port: u16,
    calls: Arc<Mutex<Vec<String>>>,
    child: Child,
}

impl GrpcServer {
    fn start(args: &[&str]) -> GrpcServer {
        let mut child = Command::new(python())
            .arg(python_function_dir().join("downstream_grpc_server.py"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the gRPC server");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let port = lines
            .next()
            .and_then(Result::ok)
            .and_then(|l| l.trim().parse().ok())
            .expect("the gRPC server's port");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let said = calls.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                said.lock().unwrap().push(line);
            }
        });
        GrpcServer { port, calls, child }
    }

    /// The calls said since the `from`th, once `want` of them are (or 5 s have passed): each
    /// is said on receipt, before its answer, but read here by another thread.
    fn calls_since(&self, from: usize, want: usize) -> Vec<String> {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let calls = self.calls.lock().unwrap().clone();
            if calls.len() >= from + want || Instant::now() > end {
                return calls[from..].to_vec();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        // Its standard input closed, it stops.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// `payloads` (each [`CALLS`] calls) run by the Python runtime client on
/// downstream_grpc.handler, with and without the library: the same results, Runtime API
/// requests and calls the server got. The metered run's records, by payload, and the address
/// (`[::1]:<port>` or `127.0.0.1:<port>`) and number of the connections its calls came on.
fn grpc_both_ways(server: &GrpcServer, payloads: Vec<Value>) -> (Vec<Value>, String, usize) {
    let mut s = Scenario::new(
        python_command("downstream_grpc.handler"),
        python_function_dir(),
    );
    let want = payloads.len() * CALLS as usize;
    s.payloads = payloads;
    let before = server.calls.lock().unwrap().len();
    let plain = s.run(false);
    let plain_calls = server.calls_since(before, want);
    assert_eq!(plain_calls.len(), want, "calls without the library");
    let before = before + want;
    let metered = s.run(true);
    let metered_calls = server.calls_since(before, want);
    assert_eq!(metered_calls.len(), want, "calls with the library");
    let records = records_by_payload(&plain, &metered);
    // `call ipv6:%5B::1%5D:50684` or `call ipv4:127.0.0.1:47048`: the client's address and
    // port, one connection each.
    let mut peers: Vec<&str> = metered_calls
        .iter()
        .map(|l| l.trim_start_matches("call "))
        .collect();
    let address = if peers[0].starts_with("ipv6:") {
        format!("[::1]:{}", server.port)
    } else {
        format!("127.0.0.1:{}", server.port)
    };
    peers.sort();
    peers.dedup();
    (records, address, peers.len())
}

/// grpcio's defaults, client and server: each invoke's channel is one HTTP/2 connection
/// without TLS, on which both sides send PING frames (gRPC's bandwidth-delay probes) while a
/// call is out, besides the connection's SETTINGS. The library follows h2c by its frames: a
/// call per RPC (a stream the client opens), its wait from the request's end to the answer's
/// first frame, and the connection as the only entry. It goes by its address: gRPC resolves
/// `localhost` itself (c-ares, no getaddrinfo). Its resolver's UDP sockets connected to learn
/// the usable addresses (RFC 6724 sorting; no datagram is sent) are no entry: their connects
/// carried nothing.
#[test]
fn grpc_unary_rpcs_are_the_calls() {
    let server = GrpcServer::start(&[]);
    let payload = json!({"host": "localhost", "port": server.port, "ms": MS, "calls": CALLS});
    let (records, address, connections) = grpc_both_ways(&server, vec![payload.clone(), payload]);
    assert_connect_per_connection(&records, connections);
    for record in &records {
        assert_no_failures(record, "grpc");
        let e = only_entry(record);
        assert_eq!(e["name"], address.as_str(), "{record}");
        assert_eq!(e["calls"], CALLS, "{record}");
        assert_waited(e, CALLS, "grpc", record);
        assert!(
            e["bytesIn"].as_u64().unwrap() >= CALLS * BODY as u64,
            "{record}"
        );
        assert!(e.get("lookups").is_none(), "{record}");
    }
}

/// Each invoke opens a channel of its own, and closes it: most often a connection each, but
/// gRPC keeps a closed channel's connection a moment for the next channel to the same target
/// (its subchannel pool). The records' connects are the connections the server accepted, the
/// first invoke's one; the only entry of each record is the TCP connection (the resolver's
/// UDP sockets carried nothing).
fn assert_connect_per_connection(records: &[Value], connections: usize) {
    assert!(connections == 1 || connections == 2, "{connections}");
    let connects: Vec<u64> = records
        .iter()
        .map(|r| only_entry(r)["connects"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(connects[0], 1, "{records:?}");
    assert_eq!(
        connects.iter().sum::<u64>(),
        connections as u64,
        "{records:?}"
    );
}

/// grpcio with its bandwidth-delay probes off on both sides (`grpc.http2.bdp_probe` 0): no
/// PING frames, and the connection's handshake (SETTINGS both ways, and their
/// acknowledgements, which the server may send with its own or apart) is no call either: a
/// call per RPC, as with the probes on.
#[test]
fn grpc_unary_rpcs_without_ping_frames_are_the_calls() {
    let server = GrpcServer::start(&["--no-bdp-probe"]);
    let payload = json!({
        "host": "localhost", "port": server.port, "ms": MS, "calls": CALLS, "bdp_probe": false,
    });
    let (records, address, connections) = grpc_both_ways(&server, vec![payload.clone(), payload]);
    assert_connect_per_connection(&records, connections);
    for record in &records {
        assert_no_failures(record, "grpc");
        let e = only_entry(record);
        assert_eq!(e["name"], address.as_str(), "{record}");
        assert_eq!(e["calls"], CALLS, "{record}");
        assert_waited(e, CALLS, "grpc", record);
    }
}

// ---------------------------------------------------------------------------------------------
// A runtime started by another process that loaded the library.

/// The Python runtime client started by `timeout` (as by `strace`, or a shell `bootstrap` that
/// runs its program without `exec`), through the wrapper and with `LD_PRELOAD` alone: the
/// records are the runtime's, and so should its calls be (tests/downstream.rs's http.client
/// handler, one connection of [`CALLS`] calls an invoke).
#[test]
fn a_runtime_started_by_another_process_has_its_calls_counted() {
    let server = Server::start();
    let payload = json!({
        "client": "http.client", "host": "localhost", "port": server.port, "ms": MS,
        "calls": CALLS,
    });
    for launch in [Launch::ExecWrapper, Launch::Preload] {
        let mut command = vec!["timeout".to_string(), "60".to_string()];
        command.extend(python_command("downstream.handler"));
        let mut s = Scenario::new(command, python_function_dir()).launched(launch);
        s.payloads = vec![payload.clone(), payload.clone()];
        let (records, _) = both_ways(s, &server);
        for record in &records {
            let e = only_entry(record);
            assert_eq!(e["name"], "localhost", "{launch:?}: {record}");
            assert_eq!(e["calls"], CALLS, "{launch:?}: {record}");
            assert_waited(e, CALLS, "timeout", record);
        }
    }
}
