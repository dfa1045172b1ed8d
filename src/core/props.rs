//! Properties the pure core keeps for every input: one set of checks, two drivers. `cargo test`
//! feeds them seeded pseudo-random bytes (stable Rust, part of `make test`); the fuzz targets
//! in `fuzz/` feed them libFuzzer's inputs (`make fuzz`). Each check reads its whole scenario —
//! messages, chunk sizes, operation orders, names and values — from the bytes it is given, and
//! panics when a property fails.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::custom::{Custom, Pool};
use crate::emf;
use crate::http::{Direction, Event, Parser};
use crate::journal;
use crate::runtime_api::FIELDS;
use crate::settings::Settings;
use crate::text::Out;
use crate::tracker::{
    self, ErrorType, EventInfo, Gauges, InvokeRecord, Lifecycle, Outcome, Probe, RecordKind,
    RequestId, TraceId, Tracker,
};
use serde_json::Value;

/// What `write` puts in a large buffer, as text; `None` when it wrote nothing.
fn line_of(write: impl FnOnce(&mut Out) -> bool) -> Option<String> {
    let mut buf = vec![0u8; 1 << 20];
    let mut out = Out::new(&mut buf);
    write(&mut out).then(|| String::from_utf8(out.written().to_vec()).expect("utf-8"))
}

/// Reads a scenario from arbitrary bytes; past the end every read is 0.
pub struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data, at: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.at >= self.data.len()
    }

    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    /// A yes or no.
    pub fn coin(&mut self) -> bool {
        self.byte() & 1 == 0
    }

    pub fn number(&mut self) -> u64 {
        (0..8).fold(0u64, |n, _| (n << 8) | u64::from(self.byte()))
    }

    /// A number below `bound` (bound > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        let b = u64::from(self.byte()) | (u64::from(self.byte()) << 8);
        b % bound
    }

    /// A string with the characters that break naive encoders: quotes, backslashes, control
    /// characters, line separators, non-ASCII; sometimes thousands of characters long.
    pub fn text(&mut self) -> String {
        const ODD: [char; 12] = [
            '"', '\\', '\n', '\r', '\t', '\u{0}', '\u{1f}', '\u{7f}', '\u{2028}', 'é', '😀', '/',
        ];
        let len = match self.byte() {
            0..=200 => usize::from(self.byte() % 40),
            201..=250 => usize::from(self.byte()) * 4,
            _ => 1_000 + usize::from(self.byte()) * 20,
        };
        (0..len)
            .map(|i| {
                let b = self.byte();
                if b < 32 {
                    ODD[usize::from(b) % ODD.len()]
                } else if b < 127 {
                    char::from(b)
                } else {
                    char::from(b'a' + (i % 26) as u8)
                }
            })
            .collect()
    }
}

/// One valid message of `dir`, its body length chosen by the input.
fn valid_message(input: &mut Input, dir: Direction) -> (Vec<u8>, u64) {
    let body_len = input.below(3000);
    let body: Vec<u8> = (0..body_len).map(|i| b'a' + (i % 26) as u8).collect();
    let mut m = Vec::new();
    let kind = input.byte() % 4;
    match dir {
        Direction::Request => match kind {
            0 => {
                m.extend_from_slice(crate::runtime_api::fixtures::NEXT);
                return (m, 0);
            }
            1 | 2 => {
                let what = if kind == 1 { "response" } else { "error" };
                m.extend_from_slice(
                    format!(
                        "POST /2018-06-01/runtime/invocation/id-{}/{what} HTTP/1.1\r\nContent-Length: {body_len}\r\nLambda-Runtime-Function-Error-Type: T\r\n\r\n",
                        input.byte()
                    )
                    .as_bytes(),
                );
            }
            _ => {
                // Streamed: chunks, then trailers.
                m.extend_from_slice(b"POST /2018-06-01/runtime/invocation/s/response HTTP/1.1\r\nLambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n\r\n");
                let mut left = body.as_slice();
                while !left.is_empty() {
                    let n = (input.below(700) as usize + 1).min(left.len());
                    m.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                    m.extend_from_slice(&left[..n]);
                    m.extend_from_slice(b"\r\n");
                    left = &left[n..];
                }
                m.extend_from_slice(b"0\r\n");
                if input.coin() {
                    m.extend_from_slice(b"Lambda-Runtime-Function-Error-Type: Stream.Broke\r\n");
                }
                m.extend_from_slice(b"\r\n");
                return (m, body_len);
            }
        },
        Direction::Response => {
            let status = [
                "200 OK",
                "202 Accepted",
                "500 Internal Server Error",
                "400 Bad Request",
            ][usize::from(kind)];
            m.extend_from_slice(
                format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: r-{}\r\nContent-Length: {body_len}\r\n\r\n",
                    input.byte()
                )
                .as_bytes(),
            );
        }
    }
    m.extend_from_slice(&body);
    (m, body_len)
}

/// One message as the parser reported it: its head's status, method, target and kept
/// values, how many body bytes came with it, and its completion's body length.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    method: String,
    target: Vec<u8>,
    path_tail: Vec<u8>,
    values: Vec<Option<String>>,
    trailer: Option<String>,
    body_bytes: u64,
    first_marks: usize,
    body_len: u64,
}

fn seen(p: &Parser, body_bytes: u64, first_marks: usize, body_len: u64) -> Seen {
    let h = p.head();
    Seen {
        status: h.status,
        method: h.method().to_string(),
        target: h.target().prefix().to_vec(),
        path_tail: h.target().path_tail().to_vec(),
        values: (0..FIELDS.head.len())
            .map(|i| h.value(i).map(str::to_string))
            .collect(),
        trailer: h.trailer(&FIELDS, 0).map(str::to_string),
        body_bytes,
        first_marks,
        body_len,
    }
}

fn feed_in_pieces(dir: Direction, stream: &[u8], sizes: &mut Input) -> Vec<Seen> {
    let mut p = Parser::new(dir, FIELDS);
    let mut done = Vec::new();
    let (mut body, mut firsts) = (0u64, 0usize);
    let mut rest = stream;
    while !rest.is_empty() {
        let n = match sizes.byte() {
            0..=99 => 1,
            100..=199 => usize::from(sizes.byte() % 16) + 1,
            _ => usize::from(sizes.byte()) * 64 + 1,
        }
        .min(rest.len());
        let mut piece = &rest[..n];
        while let Some(ev) = p.step(&mut piece).expect("a valid stream parses") {
            match ev {
                Event::Head => {}
                Event::Body { bytes, first } => {
                    body += bytes.len() as u64;
                    firsts += usize::from(first);
                }
                Event::Complete { body_len } => {
                    done.push(seen(&p, body, firsts, body_len));
                    (body, firsts) = (0, 0);
                }
            }
        }
        rest = &rest[n..];
    }
    assert!(
        p.is_idle(),
        "a whole stream leaves the parser between messages"
    );
    done
}

/// Valid message streams give the same events however they are split.
pub fn http_chunkings(data: &[u8]) {
    let mut input = Input::new(data);
    let dir = if input.coin() {
        Direction::Request
    } else {
        Direction::Response
    };
    let mut stream = Vec::new();
    let mut lengths = Vec::new();
    for _ in 0..(input.byte() % 6 + 1) {
        let (m, len) = valid_message(&mut input, dir);
        stream.extend_from_slice(&m);
        lengths.push(len);
    }
    let whole = feed_in_pieces(dir, &stream, &mut Input::new(&[255, 255]));
    let pieces = feed_in_pieces(dir, &stream, &mut input);
    assert_eq!(whole, pieces, "events depend on how the stream was split");
    let complete: Vec<u64> = whole.iter().map(|m| m.body_len).collect();
    assert_eq!(
        complete, lengths,
        "one message per message, with its body length"
    );
    for m in &whole {
        assert_eq!(m.body_bytes, m.body_len, "every body byte is reported once");
        assert_eq!(m.first_marks, usize::from(m.body_len > 0));
    }
}

/// Arbitrary bytes, after an optional valid start, in arbitrary pieces: never a panic, and after
/// an error nothing more is fed. (The parser's memory is its fixed size, whatever it is fed.)
pub fn http_garbage(data: &[u8]) {
    let mut input = Input::new(data);
    let dir = if input.coin() {
        Direction::Request
    } else {
        Direction::Response
    };
    let mut stream = match input.byte() % 3 {
        0 => valid_message(&mut input, dir).0,
        1 => b"HTTP/1.1 200 OK\r\n".to_vec(),
        _ => Vec::new(),
    };
    stream.extend_from_slice(data.get(input.at.min(data.len())..).unwrap_or_default());
    let mut p = Parser::new(dir, FIELDS);
    let mut rest = stream.as_slice();
    let mut sizes = Input::new(data);
    while !rest.is_empty() {
        let n = (usize::from(sizes.byte() % 32) + 1).min(rest.len());
        let mut piece = &rest[..n];
        loop {
            match p.step(&mut piece) {
                Ok(Some(Event::Body { bytes, .. })) => assert!(bytes.len() <= n),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        rest = &rest[n..];
    }
    let _ = p.end_of_stream();
}

/// What a parser made of a whole stream fed in pieces of `size()` bytes: the messages it
/// completed, and the error it stopped at.
fn trace(
    dir: Direction,
    stream: &[u8],
    size: impl FnMut() -> usize,
) -> (Vec<Seen>, Option<crate::http::ParseError>) {
    trace_shaped(dir, stream, size, false)
}

/// [`trace`], the parser keeping head shapes where `shaped` ([`Parser::step_shaped`]).
fn trace_shaped(
    dir: Direction,
    stream: &[u8],
    mut size: impl FnMut() -> usize,
    shaped: bool,
) -> (Vec<Seen>, Option<crate::http::ParseError>) {
    let mut shapes = vec![0u8; if shaped { crate::http::SHAPES_BYTES } else { 0 }];
    let mut p = Parser::new(dir, FIELDS);
    let mut done = Vec::new();
    let (mut body, mut firsts) = (0u64, 0usize);
    let mut rest = stream;
    while !rest.is_empty() {
        let n = size().clamp(1, rest.len());
        let mut piece = &rest[..n];
        loop {
            match p.step_shaped(&mut piece, &mut shapes) {
                Ok(Some(Event::Head)) => {}
                Ok(Some(Event::Body { bytes, first })) => {
                    body += bytes.len() as u64;
                    firsts += usize::from(first);
                }
                Ok(Some(Event::Complete { body_len })) => {
                    done.push(seen(&p, body, firsts, body_len));
                    (body, firsts) = (0, 0);
                }
                Ok(None) => break,
                Err(e) => return (done, Some(e)),
            }
        }
        rest = &rest[n..];
    }
    (done, None)
}

/// Header lines made of the parts that decide a parse (names the parser keeps or acts on, in
/// any case and too long, missing or doubled colons, whitespace, bare CRs and LFs, values too
/// long to keep, odd bytes) between start lines and valid messages: the parser reads them the
/// same whether a line comes whole or a byte at a time, up to the same messages and the same
/// error.
pub fn http_lines_any_split(data: &[u8]) {
    let long_value = "v".repeat(100);
    let long_name = format!("content-length{}", "x".repeat(60));
    let names: [&str; 10] = [
        "Content-Length",
        "Lambda-Runtime-Deadline-Ms",
        "transfer-ENCODING",
        "Lambda-Runtime-Aws-Request-Id",
        "lambda-runtime-function-error-type",
        "X-Other",
        &long_name,
        "",
        "A B",
        "\u{1}",
    ];
    let long_path = format!("/{}/end", "p".repeat(600));
    let long_query = format!("/q/tail-of-path?{}", "k=v&".repeat(200));
    let targets: [&str; 6] = [
        "/x",
        "/2018-06-01/runtime/invocation/abc/response",
        "/a/b?c=d/e?f",
        &long_path,
        &long_query,
        "/ctl\u{1}",
    ];
    let seps = [":", ":", "::", " :", ""];
    let leads = ["", " ", "\t", " \t "];
    let values: [&str; 8] = [
        "",
        "12",
        "chunked",
        "gzip, chunked",
        "1x",
        &long_value,
        "\r",
        "9999999999999999999999",
    ];
    let trails = ["", " ", "\t", "\r"];
    let ends = ["\r\n", "\n", "\r\r\n", ""];
    let mut input = Input::new(data);
    let dir = if input.coin() {
        Direction::Request
    } else {
        Direction::Response
    };
    let mut stream = Vec::new();
    // The last names and separators break a line: one line in eight may use them.
    let pick = |input: &mut Input, from: &[&str], ok: usize, any: bool| -> Vec<u8> {
        let n = if any { from.len() } else { ok };
        from[usize::from(input.byte()) % n].as_bytes().to_vec()
    };
    while !input.is_empty() {
        match input.byte() % 5 {
            0 => stream.extend_from_slice(&valid_message(&mut input, dir).0),
            1 => {
                // A start line made of the parts that decide one: each part good (the first
                // ones of its list), or in one line of eight, anything.
                let parts: [(&[&str], usize); 5] = match dir {
                    Direction::Request => [
                        (&["GET", "POST", "get", "G3T", "", "AAAAAAAAAAAAAAAAA"], 2),
                        (&[" ", "  ", "", "\t"], 1),
                        (&["/x", "/a?b", "", "/\u{1}", "x y"], 2),
                        (&[" ", "  ", ""], 1),
                        (
                            &[
                                "HTTP/1.1",
                                "HTTP/1.0",
                                "HTTP/1.1\r",
                                "HTTP/2",
                                "HTTP/1.1 x",
                                "",
                            ],
                            3,
                        ),
                    ],
                    Direction::Response => [
                        (&["HTTP/1.1", "HTTP/1.0", "HTTP/2", "", "HTTP/1.1\r"], 2),
                        (&[" ", "  ", ""], 1),
                        (
                            &[
                                "200",
                                "204",
                                "99",
                                "1000",
                                "20",
                                "2x0",
                                "",
                                "600",
                                "000000000000000200",
                            ],
                            2,
                        ),
                        (&[" ", "", "\r"], 3),
                        (&["OK", "", "\r", "\r\r", "x y", "\u{1}"], 6),
                    ],
                };
                let any = input.byte().is_multiple_of(8);
                for (part, good) in parts {
                    let p = pick(&mut input, part, good, any);
                    stream.extend_from_slice(&p);
                }
                stream.extend_from_slice(&pick(&mut input, &ends, ends.len(), true));
            }
            _ => {
                let start = match dir {
                    Direction::Request => {
                        format!(
                            "GET {} HTTP/1.1\r\n",
                            String::from_utf8_lossy(&pick(&mut input, &targets, 5, true))
                        )
                    }
                    Direction::Response => "HTTP/1.1 200 OK\r\n".to_string(),
                };
                stream.extend_from_slice(start.as_bytes());
                for _ in 0..input.byte() % 6 {
                    let any = input.byte().is_multiple_of(8);
                    stream.extend_from_slice(&pick(&mut input, &names, 7, any));
                    stream.extend_from_slice(&pick(&mut input, &seps, 3, any));
                    for part in [&leads[..], &values, &trails, &ends] {
                        let p = pick(&mut input, part, part.len(), true);
                        stream.extend_from_slice(&p);
                    }
                }
                if !input.byte().is_multiple_of(8) {
                    stream.extend_from_slice(b"\r\n");
                }
                if input.byte().is_multiple_of(8) {
                    stream.push(input.byte());
                }
            }
        }
    }
    let bytewise = trace(dir, &stream, || 1);
    let whole = trace(dir, &stream, || usize::MAX);
    let mut sizes = Input::new(data);
    let pieces = trace(dir, &stream, || usize::from(sizes.byte() % 40));
    assert_eq!(bytewise, whole, "a whole line is read as its bytes are");
    assert_eq!(
        bytewise, pieces,
        "a line in pieces is read as its bytes are"
    );
    let shaped = trace_shaped(dir, &stream, || usize::MAX, true);
    assert_eq!(bytewise, shaped, "a head is read alike with shapes kept");
}

/// Heads like the ones before them — a Runtime API head again, a few of its bytes changed to
/// bytes that matter to a parse (line ends, separators, whitespace, control bytes, digits) or
/// to any byte — are read the same whether the parser keeps head shapes or not, whole or in
/// pieces: the same messages, the same error.
pub fn http_shapes(data: &[u8]) {
    const REQUESTS: [&[u8]; 4] = [
        crate::runtime_api::fixtures::NEXT,
        b"POST /2018-06-01/runtime/invocation/8476a536-e9f4-11e8-9739-2dfe598c3fcd/response HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nUser-Agent: aws-lambda-rust/1.1.1\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
        b"POST /2018-06-01/runtime/invocation/8476a536-e9f4-11e8-9739-2dfe598c3fcd/error HTTP/1.1\r\nLambda-Runtime-Function-Error-Type: Runtime.Unknown\r\ncontent-length: 2\r\n\r\n{}",
        b"POST /2018-06-01/runtime/invocation/s-1/response HTTP/1.1\r\nLambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nLambda-Runtime-Function-Error-Type: X\r\n\r\n",
    ];
    const RESPONSES: [&[u8]; 4] = [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: 8476a536-e9f4-11e8-9739-2dfe598c3fcd\r\nLambda-Runtime-Deadline-Ms: 1542409706888\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-2:123456789012:function:custom-runtime\r\nLambda-Runtime-Trace-Id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1\r\nLambda-Runtime-Client-Context: {\"a\":1}\r\nDate: Sun, 06 Dec 2026 05:42:12 GMT\r\nContent-Length: 15\r\n\r\n{\"action\":\"ok\"}",
        b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nDate: Sun, 06 Dec 2026 05:42:12 GMT\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n",
        b"HTTP/1.1 200 OK\nlambda-runtime-aws-request-id:r-1\nTransfer-Encoding: chunked\n\n3\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nContent-Length: 7\r\nX: y\r\n\r\n",
    ];
    const MATTER: [u8; 14] = [
        b'\n', b'\r', b' ', b'\t', b':', 0x01, 0x7f, b'x', b'7', b'0', b'A', b'/', b'?', b',',
    ];
    let mut input = Input::new(data);
    let (dir, bases) = if input.coin() {
        (Direction::Request, REQUESTS)
    } else {
        (Direction::Response, RESPONSES)
    };
    let mut stream = Vec::new();
    for _ in 0..input.byte() % 12 + 2 {
        let mut m = bases[usize::from(input.byte()) % bases.len()].to_vec();
        for _ in 0..input.byte() % 4 {
            let at = input.below(m.len() as u64) as usize;
            m[at] = match input.byte() {
                b @ 0..=200 => MATTER[usize::from(b) % MATTER.len()],
                _ => input.byte(),
            };
        }
        stream.extend_from_slice(&m);
    }
    let plain = trace(dir, &stream, || usize::MAX);
    let bytewise = trace(dir, &stream, || 1);
    let shaped = trace_shaped(dir, &stream, || usize::MAX, true);
    let mut sizes = Input::new(data);
    let pieces = trace_shaped(dir, &stream, || usize::from(sizes.byte()) * 4, true);
    assert_eq!(plain, bytewise, "a whole head is read as its bytes are");
    assert_eq!(plain, shaped, "a head is read alike with shapes kept");
    assert_eq!(
        plain, pieces,
        "a head in pieces is read alike with shapes kept"
    );
}

fn probe_at(ms: u64) -> Probe {
    Probe {
        mono_ns: ms * 1_000_000,
        wall_ms: 1_700_000_000_000 + ms,
        cpu_ns: ms * 10_000,
        max_rss_kb: 10_240 + ms,
        process_rss_kb: 10_240,
        gauges: ms.is_multiple_of(3).then_some(Gauges {
            net_rx_bytes: ms,
            net_tx_bytes: ms / 2,
            tmp_used_bytes: 4096,
            open_fds: 9,
            threads: 2,
        }),
        env: None,
    }
}

/// The invoke tracker under any order of Runtime API events: never a panic, bounded state,
/// at most one cold start, and every record well formed and encodable.
pub fn tracker_orders(data: &[u8]) {
    let mut input = Input::new(data);
    let lifecycle = Lifecycle {
        on_demand: !input.byte().is_multiple_of(4),
        proactive_threshold_ns: input.below(2_000) * 1_000_000,
        timeout_margin_ns: input.below(100) * 1_000_000,
    };
    let mut t = Tracker::try_new(0, lifecycle).expect("room");
    let ids = ["a", "b", "c", "", "\"q\"\n", "x"];
    let long_id = "L".repeat(400);
    let mut now = 0u64;
    let mut records: Vec<InvokeRecord> = Vec::new();
    let settings = Settings::from_env(&|_| None, "props").0;
    let none = |_: &str| false;
    for _ in 0..200 {
        if input.is_empty() {
            break;
        }
        now += input.below(500);
        let p = probe_at(now);
        let id = match input.byte() % 8 {
            7 => long_id.as_str(),
            i => ids[usize::from(i) % ids.len()],
        };
        match input.byte() % 10 {
            0 => records.extend(t.next_requested(&p)),
            1 => records.extend(t.next_starting(&p)),
            2 => {
                let deadline = (input.coin()).then(|| p.wall_ms + input.below(3_000));
                let event = EventInfo {
                    request_id: RequestId::new(id),
                    trace_id: (input.coin()).then(|| TraceId::new("Root=1-x")),
                    deadline_ms: deadline,
                    request_bytes: input.below(1 << 20),
                    thread: 0,
                };
                records.extend(t.event_received(event, &p, &none));
            }
            3 => {
                let errored = input.coin();
                let outcome = Outcome {
                    response_bytes: input.below(1 << 20),
                    errored,
                    error_type: errored
                        .then(|| ErrorType::new(&"E".repeat(usize::from(input.byte()) * 2))),
                    streamed: input.coin(),
                };
                let a = t.flush();
                let b = t.result_sent(&RequestId::new(id), &outcome, &p, &tracker::Channel::NONE);
                records.extend(a.into_iter().chain(b));
            }
            4 => t.result_first_byte(&RequestId::new(id), &p),
            5 => records.extend(std::iter::from_fn(|| t.tick(&p))),
            6 => records.push(t.init_error(Some(id), &p, &tracker::Channel::NONE)),
            7 => t.restore_answered(&p),
            8 => t.next_refused(),
            _ => records.extend(t.flush()),
        }
        assert!(t.open_count() <= tracker::MAX_OPEN);
    }
    let cold = records.iter().filter(|r| r.cold_start).count();
    assert!(cold <= 1, "{cold} cold starts");
    for r in &records {
        if r.kind == RecordKind::Invoke {
            assert!(!r.request_id.is_empty());
            assert!(r.request_id.len() <= tracker::MAX_ID_LEN);
            assert!(r.duration_ns.unwrap_or(0) <= now * 1_000_000);
        }
        if let Some(e) = &r.error_type {
            assert!(e.len() <= tracker::MAX_ERROR_TYPE_LEN);
        }
        if let Some(line) = line_of(|o| emf::encode(r, &settings, t.pool_ref(), o)) {
            check_emf_line(&line);
        }
    }
}

/// CloudWatch's rules for one EMF line; panics where one is broken.
pub fn check_emf_line(line: &str) -> Value {
    assert!(line.ends_with('\n'), "a record ends its line");
    assert_eq!(line.matches('\n').count(), 1, "a record is one line");
    assert!(line.len() <= 1 << 20, "a record is at most 1 MB");
    let v: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("a record is JSON ({e}): {line}"));
    let aws = &v["_aws"];
    assert!(aws["Timestamp"].is_u64());
    let directives = aws["CloudWatchMetrics"].as_array().expect("directives");
    assert_eq!(directives.len(), 1);
    for d in directives {
        let ns = d["Namespace"].as_str().expect("namespace");
        assert!((1..=255).contains(&ns.chars().count()), "namespace {ns:?}");
        let metrics = d["Metrics"].as_array().expect("metrics");
        assert!((1..=100).contains(&metrics.len()));
        for m in metrics {
            let name = m["Name"].as_str().expect("metric name");
            assert!((1..=255).contains(&name.chars().count()));
            assert!(v[name].is_number(), "metric {name} has a number");
        }
        for set in d["Dimensions"].as_array().expect("dimension sets") {
            let set = set.as_array().expect("a dimension set");
            assert!(set.len() <= 30);
            for key in set {
                let value = v[key.as_str().expect("dimension key")]
                    .as_str()
                    .expect("a dimension value is a string member");
                assert!(value.chars().count() <= 1024, "dimension value too long");
            }
        }
    }
    v
}

/// The EMF encoder under arbitrary settings, names and values: always CloudWatch-valid lines,
/// and the prepared record of an ending stays valid once rendered.
pub fn emf_records(data: &[u8]) {
    let mut input = Input::new(data);
    const KEYS: [&str; 12] = [
        "AWS_LAMBDA_FUNCTION_NAME",
        "LAMBDA_METER_SERVICE",
        "LAMBDA_METER_NAMESPACE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "LAMBDA_METER_DIMENSIONS",
        "LAMBDA_METER_METRICS",
        "LAMBDA_METER_RESOLUTION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
    ];
    let mut env: Vec<(&str, String)> = Vec::new();
    for key in KEYS {
        match input.byte() % 4 {
            0 => {}
            1 => env.push((key, input.text())),
            _ => env.push((
                key,
                match key {
                    "LAMBDA_METER_DIMENSIONS" => [
                        "FunctionName,service;runtime",
                        "none",
                        "initType,functionVersion",
                    ][usize::from(input.byte() % 3)]
                    .to_string(),
                    "LAMBDA_METER_METRICS" => ["all", "default,OpenFds", "Duration"]
                        [usize::from(input.byte() % 3)]
                    .to_string(),
                    "LAMBDA_METER_RESOLUTION" => "1".to_string(),
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => input.below(10_241).to_string(),
                    _ => input.text(),
                },
            )),
        }
    }
    let exe = input.text();
    let (settings, _) = Settings::from_env(
        &|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()),
        &exe,
    );
    let opt = |input: &mut Input| (input.coin()).then(|| input.number());
    let record = InvokeRecord {
        kind: if input.byte().is_multiple_of(5) {
            RecordKind::InitError
        } else {
            RecordKind::Invoke
        },
        request_id: RequestId::new(&input.text()),
        trace_id: (input.coin()).then(|| TraceId::new(&input.text())),
        timestamp_ms: input.number(),
        duration_ns: opt(&mut input),
        cold_start: input.coin(),
        proactive_init: input.coin(),
        init_duration_ns: opt(&mut input),
        restored: input.coin(),
        restore_duration_ns: opt(&mut input),
        errored: input.coin(),
        timed_out: input.coin(),
        error_type: (input.coin()).then(|| ErrorType::new(&input.text())),
        cpu_ns: opt(&mut input),
        max_rss_kb: input.number(),
        process_rss_kb: opt(&mut input),
        concurrent: (input.coin()).then(|| input.byte().into()),
        request_bytes: opt(&mut input),
        response_bytes: opt(&mut input),
        post_response_ns: opt(&mut input),
        time_to_first_byte_ns: opt(&mut input),
        downstream: (input.coin()).then(|| crate::downstream::Sum {
            calls: input.byte().into(),
            time_ns: input.number(),
        }),
        gauges: (input.coin()).then(|| Gauges {
            net_rx_bytes: input.number(),
            net_tx_bytes: input.number(),
            tmp_used_bytes: input.number(),
            open_fds: input.number(),
            threads: input.number(),
        }),
        custom: Custom::NONE,
        journal_slot: None,
    };
    let pool = Pool::reserve().expect("room");
    let encode = |r: &InvokeRecord| line_of(|o| emf::encode(r, &settings, &pool, o));
    let Some(line) = encode(&record) else {
        return;
    };
    let v = check_emf_line(&line);
    // With the constant part rendered once and reused: the same line, for this record and for
    // another of the same shape with other values.
    let mut prefixes = emf::Prefixes::try_new().expect("room");
    let mut cached =
        |r: &InvokeRecord| line_of(|o| emf::encode_cached(r, &settings, &pool, &mut prefixes, o));
    assert_eq!(cached(&record).as_deref(), Some(line.as_str()));
    let shift = |v: Option<u64>| v.map(|n| n / 3 + 7);
    let other = InvokeRecord {
        request_id: RequestId::new(&format!("{}-other", record.request_id)),
        timestamp_ms: record.timestamp_ms / 2 + 1,
        duration_ns: shift(record.duration_ns),
        cpu_ns: shift(record.cpu_ns),
        max_rss_kb: record.max_rss_kb / 5,
        request_bytes: shift(record.request_bytes),
        response_bytes: shift(record.response_bytes),
        ..record
    };
    // The environment's constant properties are written once per log stream: the cached
    // line of a record that does not start one is the uncached line without them.
    let cached = cached(&other);
    let alone = encode(&other);
    if emf::starts_stream(&other) {
        assert_eq!(cached, alone);
    } else {
        let mut expected: serde_json::Value =
            serde_json::from_str(alone.as_deref().unwrap()).unwrap();
        let dimensions: Vec<&str> = settings
            .dimension_sets
            .iter()
            .flatten()
            .map(|d| d.key())
            .collect();
        for k in [
            "functionVersion",
            "service",
            "initType",
            "runtime",
            "memorySize",
        ] {
            if !dimensions.contains(&k) {
                expected.as_object_mut().unwrap().remove(k);
            }
        }
        let got: serde_json::Value = serde_json::from_str(cached.as_deref().unwrap()).unwrap();
        assert_eq!(got, expected);
    }
    // The same record prepared for an ending, rendered with known and unknown values.
    let template = line_of(|o| journal::prepare(line.as_bytes(), o))
        .expect("every record can be prepared")
        .into_bytes();
    for known in [true, false] {
        let values = journal::Values {
            wall_ms: input.number() >> 20,
            duration_ns: known.then(|| input.number() >> 16),
            post_response_ns: None,
            cpu_ns: known.then(|| input.number() >> 16),
            max_rss_kb: input.number() >> 24,
            memory_size_mb: input.below(10_241),
            reason: b"signal: aborted",
            request_id: b"",
            trace_id: None,
            request_bytes: 0,
        };
        let mut out = Vec::new();
        assert!(journal::render(&template, &values, &mut |parts| {
            out = parts.concat();
        }));
        let rendered = check_emf_line(std::str::from_utf8(&out).expect("utf-8"));
        assert_eq!(rendered["exitReason"], "signal: aborted");
        for key in ["requestId", "FunctionName", "errorType"] {
            assert_eq!(rendered[key], v[key], "{key} is carried over");
        }
        // The template invokes share (made from the same record with placeholders), filled
        // with this record's own id, trace id and request bytes, reads byte for byte the same.
        // (An invoke always has a request id: the tracker opens none without.)
        if record.request_id.is_empty() {
            continue;
        }
        let mut model = record;
        model.request_id = RequestId::new(journal::REQUEST_ID_PLACEHOLDER);
        model.trace_id = record
            .trace_id
            .as_ref()
            .map(|_| TraceId::new(journal::TRACE_ID_PLACEHOLDER));
        model.request_bytes = record
            .request_bytes
            .map(|_| journal::REQUEST_BYTES_PLACEHOLDER);
        let shared = encode(&model)
            .and_then(|l| line_of(|o| journal::shared_template(l.as_bytes(), o)))
            .expect("a shared template")
            .into_bytes();
        let escaped = |s: &str| {
            let lit = serde_json::to_string(s).expect("json");
            lit.as_bytes()[1..lit.len() - 1].to_vec()
        };
        let id = escaped(&record.request_id);
        let trace = record.trace_id.as_deref().map(escaped);
        let filled = journal::Values {
            request_id: &id,
            trace_id: trace.as_deref(),
            request_bytes: record.request_bytes.unwrap_or(0),
            ..values
        };
        let mut again = Vec::new();
        assert!(journal::render(&shared, &filled, &mut |parts| {
            again = parts.concat();
        }));
        assert_eq!(
            String::from_utf8_lossy(&again),
            String::from_utf8_lossy(&out)
        );
    }
}

#[cfg(test)]
mod tests {
    /// xorshift64*: a fixed seed gives the same inputs on every run.
    struct Seeded(u64);

    impl Seeded {
        fn bytes(&mut self) -> Vec<u8> {
            let mut next = || {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
            };
            let len = (next() % 4096) as usize;
            (0..len).map(|_| (next() >> 56) as u8).collect()
        }
    }

    fn run(check: fn(&[u8]), cases: usize, seed: u64) {
        let mut g = Seeded(seed);
        for _ in 0..cases {
            let data = g.bytes();
            check(&data);
        }
        // The edges: nothing, and all ones.
        check(&[]);
        check(&[0xff; 600]);
    }

    #[test]
    fn http_events_do_not_depend_on_chunking() {
        run(super::http_chunkings, 400, 0x5eed_0001);
    }

    #[test]
    fn http_garbage_is_bounded_and_never_panics() {
        run(super::http_garbage, 2_000, 0x5eed_0002);
    }

    #[test]
    fn http_lines_read_whole_or_bytewise_alike() {
        run(super::http_lines_any_split, 2_000, 0x5eed_0007);
    }

    #[test]
    fn http_heads_read_alike_with_shapes_kept() {
        run(super::http_shapes, 3_000, 0x5eed_0008);
    }

    #[test]
    fn tracker_survives_any_event_order() {
        run(super::tracker_orders, 2_000, 0x5eed_0003);
    }

    #[test]
    fn emf_lines_are_valid_for_any_names_and_values() {
        run(super::emf_records, 1_000, 0x5eed_0004);
    }
}
