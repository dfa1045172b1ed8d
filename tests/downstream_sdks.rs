//! What each invoke waited on, with the AWS SDKs: boto3 in the Python runtime client and the AWS
//! SDK for JavaScript v3 in the Node.js one call S3 and DynamoDB as a function does, against a
//! local stand-in of the AWS APIs (moto in server mode) behind a proxy that delays each answer
//! by a known time and counts the requests it passes. Every run is compared with the same run
//! without lambda-meter, and each invoke's `downstream` figures with what the SDK sent and the
//! stand-in received.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::downstream_server::only_entry;
use support::downstream_server::records_by_payload;
use support::scenario::Scenario;
use support::*;

/// The bucket and the table the stand-in is given before the runs.
const BUCKET: &str = "lambda-meter-test";
const TABLE: &str = "lambda-meter-test";

/// The delay the proxy adds to every answer: well above what moto takes to answer even on a
/// busy machine (the wait is checked to be under twice the delays), and both moto's time and
/// the delay count in the wait.
const DELAY_MS: u64 = 200;

/// Credentials and settings the SDKs read from the environment, as Lambda gives them (the
/// simulator sets the region): no credential lookup over the network, no file of this machine's.
const SDK_ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_SESSION_TOKEN", "testing"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
    (
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/aws-credentials",
    ),
];

/// moto's server, on a loopback port, with [`BUCKET`] and [`TABLE`] made and each operation the
/// tests use done once (moto loads a service's code at its first request), stopped on drop.
struct Moto {
    port: u16,
    child: Child,
}

const MOTO: &str = r#"
import logging, sys
logging.getLogger("werkzeug").setLevel(logging.ERROR)
import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

bucket, table = sys.argv[1], sys.argv[2]
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
port = server.get_host_and_port()[1]
url = f"http://127.0.0.1:{port}"
s3 = boto3.client("s3", endpoint_url=url, config=Config(s3={"addressing_style": "path"}))
s3.create_bucket(Bucket=bucket)
s3.put_object(Bucket=bucket, Key="warm-up", Body=b"warm-up")
s3.get_object(Bucket=bucket, Key="warm-up")["Body"].read()
ddb = boto3.client("dynamodb", endpoint_url=url)
ddb.create_table(
    TableName=table,
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    BillingMode="PAY_PER_REQUEST",
)
ddb.put_item(TableName=table, Item={"pk": {"S": "warm-up"}})
ddb.get_item(TableName=table, Key={"pk": {"S": "warm-up"}})
print(port, flush=True)
sys.stdin.read()
server.stop()
"#;

impl Moto {
    fn start() -> Moto {
        let mut child = Command::new(python())
            .args(["-c", MOTO, BUCKET, TABLE])
            .envs(SDK_ENV.iter().copied())
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("moto");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("moto did not start (it printed {line:?}); is tests/setup.sh's venv current?")
        });
        Moto { port, child }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the proxy passed on, from its start.
#[derive(Clone, Default, Debug)]
struct Seen {
    /// `METHOD target` of each request, in the order they arrived.
    requests: Vec<String>,
    /// Requests that asked for a `100 Continue` before their body, which moto gave.
    continues: usize,
    /// Connections accepted from clients.
    connections: usize,
    /// Bytes received from the clients, and sent to them.
    bytes_in: usize,
    bytes_out: usize,
}

/// An HTTP/1.1 proxy on a loopback port (IPv4, and IPv6 where the machine has it, so that
/// `localhost` reaches it whichever address a client tries first) in front of moto: each
/// request is passed on whole, and its final answer held [`DELAY_MS`] before it is passed back
/// (moto's first `100 Continue` at once, as AWS's endpoints give it). moto closes its
/// connection after every answer; the proxy opens one to it per request and keeps the client's
/// open, as AWS's endpoints do (moto's `Connection: close` is left out of the answer).
struct DelayProxy {
    port: u16,
    seen: Arc<Mutex<Seen>>,
}

impl DelayProxy {
    fn start(upstream: u16) -> DelayProxy {
        let listeners = loopback_listeners();
        let port = listeners[0].local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        for l in listeners {
            let seen = seen.clone();
            std::thread::spawn(move || {
                for conn in l.incoming().flatten() {
                    seen.lock().unwrap().connections += 1;
                    let seen = seen.clone();
                    std::thread::spawn(move || proxy(conn, upstream, &seen));
                }
            });
        }
        DelayProxy { port, seen }
    }

    fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    fn endpoint(&self) -> String {
        format!("http://localhost:{}", self.port)
    }
}

/// Listeners on one port of 127.0.0.1 and, where the machine has IPv6, of ::1: a port taken on
/// ::1 alone is passed over, lest a client that tries ::1 first be refused there.
fn loopback_listeners() -> Vec<TcpListener> {
    for _ in 0..100 {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        match TcpListener::bind(("::1", port)) {
            Ok(v6) => return vec![v4, v6],
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(_) => return vec![v4],
        }
    }
    panic!("no port free on both 127.0.0.1 and ::1");
}

/// Reads HTTP/1.1 messages from a stream, byte for byte as they came.
struct Messages {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Messages {
    fn new(stream: &TcpStream) -> Messages {
        Messages {
            stream: stream.try_clone().unwrap(),
            buf: Vec::new(),
        }
    }

    /// More bytes into the buffer; false at the end of the stream.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next `n` bytes.
    fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill(), "the stream ended inside a message");
        }
        self.buf.drain(..n).collect()
    }

    /// Through the next `\r\n\r\n` (a head, or a chunked body's trailer) or `\r\n` (a line);
    /// `None` at the end of the stream before any byte of it.
    fn through(&mut self, end: &[u8]) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(end.len()).position(|w| w == end) {
                return Some(self.buf.drain(..i + end.len()).collect());
            }
            if !self.fill() {
                assert!(self.buf.is_empty(), "the stream ended inside a head");
                return None;
            }
        }
    }

    fn head(&mut self) -> Option<Head> {
        self.through(b"\r\n\r\n").map(Head::new)
    }

    /// The body that `head` announces: by its length, chunked, or (`to_end`) to the end of the
    /// stream.
    fn body(&mut self, head: &Head, to_end: bool) -> Vec<u8> {
        if head
            .header("transfer-encoding")
            .is_some_and(|t| t.contains("chunked"))
        {
            let mut body = Vec::new();
            loop {
                let line = self.through(b"\r\n").expect("a chunk's size");
                let text = String::from_utf8_lossy(&line);
                let hex = text.split(';').next().unwrap().trim();
                let size = usize::from_str_radix(hex, 16).expect("a chunk's size");
                body.extend_from_slice(&line);
                if size == 0 {
                    // Trailers, then an empty line.
                    loop {
                        let line = self.through(b"\r\n").expect("a trailer");
                        body.extend_from_slice(&line);
                        if line == b"\r\n" {
                            return body;
                        }
                    }
                }
                body.extend(self.take(size + 2));
            }
        }
        if let Some(n) = head.header("content-length") {
            return self.take(n.parse().expect("Content-Length"));
        }
        if to_end {
            while self.fill() {}
            return std::mem::take(&mut self.buf);
        }
        Vec::new()
    }
}

/// A request's or an answer's head, as it came, and its first line and headers.
struct Head {
    raw: Vec<u8>,
    first: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn new(raw: Vec<u8>) -> Head {
        let text = String::from_utf8_lossy(&raw).into_owned();
        let mut lines = text.split("\r\n");
        let first = lines.next().unwrap().to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Head {
            raw,
            first,
            headers,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// An answer's status code.
    fn status(&self) -> u16 {
        self.first.split(' ').nth(1).unwrap().parse().unwrap()
    }

    /// The head without its `Connection` header.
    fn kept_alive(&self) -> Vec<u8> {
        let text = String::from_utf8_lossy(&self.raw);
        text.split_inclusive("\r\n")
            .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
            .collect::<String>()
            .into_bytes()
    }
}

/// One client connection: each request to moto on a connection of its own, its answer back
/// after the delay.
fn proxy(client: TcpStream, upstream: u16, seen: &Mutex<Seen>) {
    let mut requests = Messages::new(&client);
    let mut to_client = client;
    while let Some(request) = requests.head() {
        let mut parts = request.first.split(' ');
        let (method, target) = (parts.next().unwrap(), parts.next().unwrap());
        let mut moto = TcpStream::connect(("127.0.0.1", upstream)).expect("moto");
        let mut answers = Messages::new(&moto);
        moto.write_all(&request.raw).unwrap();
        let mut bytes_out = 0;
        let expects = request
            .header("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
        if expects {
            // The client waits for it before it sends the body: passed on at once.
            let interim = answers
                .head()
                .expect("moto's answer to Expect: 100-continue");
            assert_eq!(interim.status(), 100, "{}", interim.first);
            to_client.write_all(&interim.raw).unwrap();
            bytes_out += interim.raw.len();
        }
        let body = requests.body(&request, false);
        moto.write_all(&body).unwrap();
        // The final answer. moto's server (Werkzeug) sends a second `100 Continue` once it
        // reads the body: left out, as an AWS endpoint sends one.
        let answer = loop {
            let answer = answers.head().expect("moto's answer");
            if answer.status() >= 200 {
                break answer;
            }
            assert!(expects && answer.status() == 100, "{}", answer.first);
        };
        let bodiless = method == "HEAD" || matches!(answer.status(), 204 | 304);
        let framed = answer.header("content-length").is_some()
            || answer.header("transfer-encoding").is_some();
        let answer_body = if bodiless {
            Vec::new()
        } else {
            answers.body(&answer, true)
        };
        // An answer that ends with its connection is passed on as it is, and ends the client's.
        let keep = bodiless || framed;
        let mut out = if keep {
            answer.kept_alive()
        } else {
            answer.raw.clone()
        };
        out.extend_from_slice(&answer_body);
        std::thread::sleep(Duration::from_millis(DELAY_MS));
        {
            let mut s = seen.lock().unwrap();
            s.requests.push(format!("{method} {target}"));
            s.continues += usize::from(expects);
            s.bytes_in += request.raw.len() + body.len();
            s.bytes_out += bytes_out + out.len();
        }
        if to_client.write_all(&out).is_err() || !keep {
            return;
        }
        if request
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
        {
            return;
        }
    }
}

/// One scenario's two runs, and what the metered one gave.
struct Metered {
    /// The records, in the order of the events.
    records: Vec<Value>,
    /// The handler's results, in the same order.
    results: Vec<Value>,
    /// What the proxy passed on during the metered run.
    seen: Seen,
}

/// `scenario` run without and with the library against `proxy`: the same results, Runtime API
/// requests and requests to the stand-in (as [`support::downstream_server::both_ways`] checks
/// them against its own server), nothing of the library's on stderr, and valid records.
fn both_ways(scenario: Scenario, proxy: &DelayProxy) -> Metered {
    let before = proxy.seen();
    let plain = scenario.run(false);
    let between = proxy.seen();
    let metered = scenario.run(true);
    let after = proxy.seen();
    let records = records_by_payload(&plain, &metered);
    let plain_requests = &between.requests[before.requests.len()..];
    let metered_requests = &after.requests[between.requests.len()..];
    assert_eq!(
        plain_requests, metered_requests,
        "the requests the stand-in received"
    );
    assert_eq!(
        between.continues - before.continues,
        after.continues - between.continues
    );
    let results: Vec<Value> = metered
        .sim
        .results()
        .iter()
        .map(|r| serde_json::from_slice(&r.as_ref().unwrap().body).unwrap())
        .collect();
    Metered {
        records,
        results,
        seen: Seen {
            requests: metered_requests.to_vec(),
            continues: after.continues - between.continues,
            connections: after.connections - between.connections,
            bytes_in: after.bytes_in - between.bytes_in,
            bytes_out: after.bytes_out - between.bytes_out,
        },
    }
}

/// Payloads of `invokes` invokes that each put and get `items` items (S3 objects or DynamoDB
/// items) of 200 bytes: `2 * items` requests (`expect_continue`: the Node.js handler's S3
/// client that asks for a `100 Continue` before each body).
fn payloads(service: &str, invokes: usize, items: u64, expect_continue: bool) -> Vec<Value> {
    (0..invokes)
        .map(|i| {
            json!({
                "service": service, "bucket": BUCKET, "table": TABLE,
                "prefix": format!("invoke-{i}"), "items": items, "size": 200,
                "expectContinue": expect_continue,
            })
        })
        .collect()
}

/// The checks of every test: each invoke's SDK sent exactly its operations, one request each
/// (no retry, no credential lookup), and the stand-in received exactly those; each record has
/// one remote name, the endpoint's host, whose calls are the invoke's requests, whose wait is at least the delay the proxy added and less than
/// twice it, and whose connections and bytes add up to what the proxy saw.
fn check(m: &Metered, requests_per_invoke: usize) {
    let mut all_sent = Vec::new();
    for result in &m.results {
        let sent: Vec<String> = result["sent"]
            .as_array()
            .unwrap_or_else(|| panic!("{result}"))
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        assert_eq!(sent.len(), requests_per_invoke, "{result}");
        assert!(
            result["read"].as_array().unwrap().iter().all(|r| r == 200),
            "{result}"
        );
        all_sent.extend(sent);
    }
    assert_eq!(all_sent, m.seen.requests, "what the SDK sent, and moto got");
    let (mut connects, mut bytes_out, mut bytes_in) = (0, 0, 0);
    for (record, result) in m.records.iter().zip(&m.results) {
        let e = only_entry(record);
        assert_eq!(e["name"], "localhost", "{record}");
        assert_eq!(
            e["calls"].as_u64().unwrap() as usize,
            requests_per_invoke,
            "calls, for the SDK's requests {}: {record}",
            result["sent"]
        );
        let injected = (requests_per_invoke as u64 * DELAY_MS) as f64;
        let wait = e["waitMs"].as_f64().unwrap();
        assert!(
            wait >= injected && wait < 2.0 * injected,
            "waited {wait} ms for {injected} ms of delay: {record}"
        );
        for failure in ["refused", "reset", "timedOut", "shared", "missed"] {
            assert!(e.get(failure).is_none(), "{record}");
        }
        // Each connection to the endpoint follows a lookup of its name, in both SDKs.
        assert_eq!(e.get("lookups"), e.get("connects"), "{record}");
        assert_eq!(
            e.get("connects").is_some(),
            e.get("connectMs").is_some(),
            "{record}"
        );
        connects += e["connects"].as_u64().unwrap_or(0);
        bytes_out += e["bytesOut"].as_u64().unwrap();
        bytes_in += e["bytesIn"].as_u64().unwrap();
    }
    assert_eq!(connects, m.seen.connections as u64, "{:?}", m.records);
    assert_eq!(bytes_out, m.seen.bytes_in as u64, "{:?}", m.records);
    assert_eq!(bytes_in, m.seen.bytes_out as u64, "{:?}", m.records);
}

fn python_scenario(proxy: &DelayProxy, service: &str) -> Scenario {
    let mut s = Scenario::new(
        python_command("downstream_sdk.handler"),
        python_function_dir(),
    );
    s.env = SDK_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    s = s.env("DS_ENDPOINT", &proxy.endpoint());
    s.payloads = payloads(service, 3, 2, false);
    s
}

fn node_scenario(proxy: &DelayProxy, service: &str, expect_continue: bool) -> Scenario {
    let mut s = Scenario::node("downstream-sdk.handler").env("DS_ENDPOINT", &proxy.endpoint());
    s.env
        .extend(SDK_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    s.payloads = payloads(service, 3, 2, expect_continue);
    s
}

/// boto3's DynamoDB client (PutItem, GetItem): one call per request.
#[test]
fn boto3_dynamodb_calls_are_the_sdks_requests() {
    let moto = Moto::start();
    let proxy = DelayProxy::start(moto.port);
    let m = both_ways(python_scenario(&proxy, "dynamodb"), &proxy);
    assert_eq!(m.seen.continues, 0);
    check(&m, 4);
}

/// boto3's S3 client (PutObject, GetObject): boto3 sends every PutObject with
/// `Expect: 100-continue`, and its body once the `100 Continue` came, as S3 gives it. Each
/// PutObject is one request of the SDK, one call: the `100 Continue` is part of it (its wait
/// counts), not a turn of its own.
#[test]
fn boto3_s3_calls_are_the_sdks_requests() {
    let moto = Moto::start();
    let proxy = DelayProxy::start(moto.port);
    let m = both_ways(python_scenario(&proxy, "s3"), &proxy);
    assert_eq!(m.seen.continues, 6, "{:?}", m.seen);
    check(&m, 4);
}

/// The JavaScript SDK's DynamoDB client (PutItem, GetItem) in Node.js: one call per request.
#[test]
fn node_sdk_dynamodb_calls_are_the_sdks_requests() {
    let moto = Moto::start();
    let proxy = DelayProxy::start(moto.port);
    let m = both_ways(node_scenario(&proxy, "dynamodb", false), &proxy);
    assert_eq!(m.seen.continues, 0);
    check(&m, 4);
}

/// The JavaScript SDK's S3 client (PutObject, GetObject) in Node.js: one call per request (it
/// asks for a `100 Continue` only before a body of 2 MB or more).
#[test]
fn node_sdk_s3_calls_are_the_sdks_requests() {
    let moto = Moto::start();
    let proxy = DelayProxy::start(moto.port);
    let m = both_ways(node_scenario(&proxy, "s3", false), &proxy);
    assert_eq!(m.seen.continues, 0);
    check(&m, 4);
}

/// The JavaScript SDK's S3 client told to ask for a `100 Continue` before every body
/// (`expectContinueHeader: true`; it then opens a connection for each such request, closed
/// after it): one call per request, as for boto3.
#[test]
fn node_sdk_s3_with_100_continue_calls_are_the_sdks_requests() {
    let moto = Moto::start();
    let proxy = DelayProxy::start(moto.port);
    let m = both_ways(node_scenario(&proxy, "s3", true), &proxy);
    assert_eq!(m.seen.continues, 6, "{:?}", m.seen);
    // A connection for each PutObject, and the kept one for the GetObjects.
    assert_eq!(m.seen.connections, 7, "{:?}", m.seen);
    check(&m, 4);
}
