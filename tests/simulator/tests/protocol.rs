//! The simulator speaks the Runtime API as Lambda does; checked with a raw TCP client.

use lambda_sim::{Config, Event, Outcome, Simulator, epoch_ms};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Client {
    fn connect(sim: &Simulator) -> Client {
        let s = TcpStream::connect(sim.addr()).unwrap();
        Client {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    fn send(&mut self, raw: &[u8]) {
        self.writer.write_all(raw).unwrap();
    }

    fn read_response(&mut self) -> Response {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (n, v) = h.split_once(':').unwrap();
            headers.push((n.to_string(), v.trim().to_string()));
        }
        let mut r = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let len: usize = r
            .header("content-length")
            .map(|v| v.parse().unwrap())
            .unwrap_or(0);
        r.body.resize(len, 0);
        self.reader.read_exact(&mut r.body).unwrap();
        r
    }

    fn next(&mut self) -> Response {
        self.send(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n");
        self.read_response()
    }

    fn post(&mut self, path: &str, body: &[u8], extra: &str) -> Response {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n{extra}\r\n",
            body.len()
        );
        self.send(head.as_bytes());
        self.send(body);
        self.read_response()
    }
}

fn sim(events: Vec<Event>) -> Simulator {
    Simulator::start(Config {
        events,
        timeout: Duration::from_secs(3),
        ..Config::default()
    })
    .unwrap()
}

#[test]
fn next_carries_the_event_and_every_header() {
    let s = sim(vec![Event {
        client_context: Some("{\"custom\":1}".into()),
        ..Event::json(&serde_json::json!({"hello": "world"}))
    }]);
    let mut c = Client::connect(&s);
    let before = epoch_ms();
    let r = c.next();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, br#"{"hello":"world"}"#);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let id = r
        .header("lambda-runtime-aws-request-id")
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 36);
    let deadline: u64 = r
        .header("lambda-runtime-deadline-ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!(deadline >= before + 3000 && deadline <= epoch_ms() + 3000);
    assert_eq!(
        r.header("lambda-runtime-invoked-function-arn"),
        Some("arn:aws:lambda:us-east-1:123456789012:function:lambda-meter-test")
    );
    assert!(
        r.header("lambda-runtime-trace-id")
            .unwrap()
            .starts_with("Root=1-")
    );
    assert_eq!(
        r.header("lambda-runtime-client-context"),
        Some("{\"custom\":1}")
    );
    assert!(r.header("date").unwrap().ends_with(" GMT"));

    // Keep-alive: the result goes on the same connection.
    let ok = c.post(
        &format!("/2018-06-01/runtime/invocation/{id}/response"),
        b"\"done\"",
        "",
    );
    assert_eq!(ok.status, 202);
    assert_eq!(ok.body, b"{\"status\":\"OK\"}\n");
    let bad = c.post("/2018-06-01/runtime/invocation/nope/response", b"x", "");
    assert_eq!(bad.status, 400);
    let results = s.results();
    let res = results[0].as_ref().unwrap();
    assert_eq!(res.body, b"\"done\"");
    assert_eq!(res.outcome, Outcome::Response);
    assert_eq!(s.requests().len(), 3);
}

#[test]
fn chunked_results_with_trailers_and_expect_continue() {
    let s = sim(vec![
        Event::json(&serde_json::json!(1)),
        Event::json(&serde_json::json!(2)),
    ]);
    let mut c = Client::connect(&s);
    let id = c
        .next()
        .header("lambda-runtime-aws-request-id")
        .unwrap()
        .to_string();
    c.send(format!("POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: x\r\nLambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\nTrailer: Lambda-Runtime-Function-Error-Type\r\n\r\n4\r\npart\r\n3\r\nial\r\n0\r\nLambda-Runtime-Function-Error-Type: Stream.Cut\r\n\r\n").as_bytes());
    assert_eq!(c.read_response().status, 202);
    let id2 = c
        .next()
        .header("lambda-runtime-aws-request-id")
        .unwrap()
        .to_string();
    c.send(format!("POST /2018-06-01/runtime/invocation/{id2}/error HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nLambda-Runtime-Function-Error-Type: Oops\r\nContent-Length: 2\r\n\r\n").as_bytes());
    let cont = c.read_response();
    assert_eq!(cont.status, 100);
    c.send(b"{}");
    assert_eq!(c.read_response().status, 202);
    let r = s.results();
    let first = r[0].as_ref().unwrap();
    assert_eq!(first.body, b"partial");
    assert_eq!(
        first.trailers,
        vec![(
            "Lambda-Runtime-Function-Error-Type".to_string(),
            "Stream.Cut".to_string()
        )]
    );
    assert_eq!(
        r[1].as_ref().unwrap().outcome,
        Outcome::Error {
            error_type: Some("Oops".into())
        }
    );
}

#[test]
fn one_invoke_at_a_time_across_connections() {
    let s = sim(vec![
        Event::json(&serde_json::json!("a")),
        Event::json(&serde_json::json!("b")),
    ]);
    let mut a = Client::connect(&s);
    let mut b = Client::connect(&s);
    let first = a.next();
    let id = first
        .header("lambda-runtime-aws-request-id")
        .unwrap()
        .to_string();
    b.send(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n");
    // The second event is not handed out while the first is in flight.
    b.writer
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut probe = [0u8; 1];
    assert!(
        b.reader.get_mut().peek(&mut probe).is_err(),
        "second /next answered too early"
    );
    b.writer.set_read_timeout(None).unwrap();
    assert!(!s.is_idle());
    assert_eq!(
        a.post(
            &format!("/2018-06-01/runtime/invocation/{id}/response"),
            b"1",
            ""
        )
        .status,
        202
    );
    let second = b.read_response();
    assert_eq!(second.body, b"\"b\"");
    let id2 = second
        .header("lambda-runtime-aws-request-id")
        .unwrap()
        .to_string();
    assert_eq!(
        b.post(
            &format!("/2018-06-01/runtime/invocation/{id2}/response"),
            b"2",
            ""
        )
        .status,
        202
    );
    assert!(
        !s.is_idle(),
        "idle only once the runtime waits on /next again"
    );
    a.send(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(s.wait_idle(Duration::from_secs(5)));
    assert_eq!(s.connection_count(), 2);
}

#[test]
fn init_error_is_recorded() {
    let s = sim(vec![Event::json(&serde_json::json!({}))]);
    let mut c = Client::connect(&s);
    let r = c.post(
        "/2018-06-01/runtime/init/error",
        br#"{"errorMessage":"bad handler","errorType":"Runtime.ImportModuleError"}"#,
        "Lambda-Runtime-Function-Error-Type: Runtime.ImportModuleError\r\n",
    );
    assert_eq!(r.status, 202);
    let e = s.init_error().unwrap();
    assert_eq!(
        e.header("lambda-runtime-function-error-type"),
        Some("Runtime.ImportModuleError")
    );
    assert!(
        !s.is_idle(),
        "an init error is not idle: the runner waits for the runtime to exit"
    );
}
