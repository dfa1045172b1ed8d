//! A local HTTP server with a known delay per call, for the tests of what each invoke waited
//! on (its `downstream` property), and how to run a scenario with and without the library
//! against it.

use super::scenario::{Scenario, assert_same_requests, assert_same_results};
use super::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Bytes of every answer's body.
pub const BODY: usize = 1000;

/// An HTTP/1.1 server on a loopback port (IPv4, and IPv6 where the machine has it, so that
/// `localhost` reaches it whichever address a client tries first): `GET /<ms>` is answered
/// after `ms` milliseconds with [`BODY`] bytes, on a kept-alive connection unless the client
/// asks to close it.
pub struct Server {
    pub port: u16,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl Server {
    pub fn start() -> Server {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let mut listeners = vec![v4];
        if let Ok(v6) = TcpListener::bind(("::1", port)) {
            listeners.push(v6);
        }
        for l in listeners {
            let (requests, connections) = (requests.clone(), connections.clone());
            std::thread::spawn(move || {
                for conn in l.incoming().flatten() {
                    connections.fetch_add(1, Ordering::SeqCst);
                    let requests = requests.clone();
                    std::thread::spawn(move || serve(conn, &requests));
                }
            });
        }
        Server {
            port,
            requests,
            connections,
        }
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

pub fn serve(mut conn: TcpStream, requests: &AtomicUsize) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        buf.drain(..end);
        let ms: u64 = head
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.trim_start_matches('/').parse().ok())
            .unwrap_or(0);
        requests.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(ms));
        let close = head.contains("connection: close");
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {BODY}\r\n{}\r\n{}",
            if close { "Connection: close\r\n" } else { "" },
            "x".repeat(BODY)
        );
        if conn.write_all(answer.as_bytes()).is_err() || close {
            return;
        }
    }
}

/// The one entry of a record's `downstream` property (the server is its only remote name).
pub fn only_entry(record: &Value) -> &Value {
    let entries = record["downstream"].as_array().unwrap_or_else(|| {
        panic!("no downstream property: {record}");
    });
    assert_eq!(entries.len(), 1, "{record}");
    &entries[0]
}

/// `payloads` run by `scenario`'s runtime with and without the library: the same results,
/// Runtime API requests and calls to the server; the metered run's records, by payload, and
/// how many connections the server accepted in that run.
pub fn both_ways(scenario: Scenario, server: &Server) -> (Vec<Value>, usize) {
    let before = server.requests();
    let plain = scenario.run(false);
    let plain_calls = server.requests() - before;
    let connections_before = server.connections();
    let metered = scenario.run(true);
    let metered_calls = server.requests() - before - plain_calls;
    let connections = server.connections() - connections_before;
    assert_eq!(plain_calls, metered_calls, "calls the server answered");
    (records_by_payload(&plain, &metered), connections)
}

/// The checks of a run with the library against the same run without it (`plain`): nothing
/// of the library's on stderr, the same results and Runtime API requests, valid records; the
/// metered run's records, in the order of its payloads.
pub fn records_by_payload(plain: &Outcome, metered: &Outcome) -> Vec<Value> {
    assert!(
        !metered.run.stderr.contains("lambda-meter"),
        "{}",
        metered.run.stderr
    );
    assert_same_results(plain, metered);
    assert_same_requests(plain, metered);
    let records = metered.records();
    assert_valid_emf(&records);
    metered
        .sim
        .results()
        .iter()
        .map(|r| {
            let id = &r.as_ref().unwrap().request_id;
            records
                .iter()
                .find(|rec| rec["requestId"] == id.as_str())
                .unwrap_or_else(|| panic!("no record of {id}"))
                .clone()
        })
        .collect()
}

/// An echo server on a loopback port: every byte it gets, it sends back at once.
pub fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut b = [0u8; 4096];
                while let Ok(n) = conn.read(&mut b) {
                    if n == 0 || conn.write_all(&b[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}
