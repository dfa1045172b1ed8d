//! Facts about the Lambda Runtime API: its address, its paths, its header names, and where an
//! error's type is in what a runtime sends.

use crate::http::{Fields, Target, Wanted};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The API version prefix every path starts with.
pub const BASE: &str = "/2018-06-01";

pub const HDR_REQUEST_ID: &str = "lambda-runtime-aws-request-id";
pub const HDR_DEADLINE_MS: &str = "lambda-runtime-deadline-ms";
pub const HDR_TRACE_ID: &str = "lambda-runtime-trace-id";
pub const HDR_ERROR_TYPE: &str = "lambda-runtime-function-error-type";
pub const HDR_RESPONSE_MODE: &str = "lambda-runtime-function-response-mode";

/// The longest request id kept, in bytes (a longer one is cut, on the event and on its result
/// alike, so the two still match).
pub const MAX_ID_LEN: usize = 256;
/// The longest trace header kept.
pub const MAX_TRACE_LEN: usize = 1024;
/// The error type Lambda gives an invoke during which the runtime exited.
pub const EXIT_ERROR_TYPE: &str = "Runtime.ExitError";
/// The longest error type kept (CloudWatch's limit for a property is far larger; Lambda's
/// error types are short names).
pub const MAX_ERROR_TYPE_LEN: usize = 255;

/// The header fields the library reads, by their index in [`FIELDS`].
pub mod field {
    pub const REQUEST_ID: usize = 0;
    pub const DEADLINE_MS: usize = 1;
    pub const TRACE_ID: usize = 2;
    pub const ERROR_TYPE: usize = 3;
    pub const RESPONSE_MODE: usize = 4;
    /// In trailers.
    pub const TRAILER_ERROR_TYPE: usize = 0;
}

/// What the HTTP parser keeps of Runtime API messages: every other header is read past.
pub const FIELDS: Fields = Fields {
    head: &[
        Wanted {
            name: HDR_REQUEST_ID,
            max: MAX_ID_LEN,
        },
        Wanted {
            name: HDR_DEADLINE_MS,
            max: 32,
        },
        Wanted {
            name: HDR_TRACE_ID,
            max: MAX_TRACE_LEN,
        },
        Wanted {
            name: HDR_ERROR_TYPE,
            max: MAX_ERROR_TYPE_LEN,
        },
        Wanted {
            name: HDR_RESPONSE_MODE,
            max: 16,
        },
    ],
    trailers: &[Wanted {
        name: HDR_ERROR_TYPE,
        max: MAX_ERROR_TYPE_LEN,
    }],
};

/// What a request to the Runtime API is, from its method and path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RequestKind {
    /// `GET /runtime/invocation/next`: asks for the next event.
    Next,
    /// `POST /runtime/invocation/{id}/response`: the result of an invoke.
    Response,
    /// `POST /runtime/invocation/{id}/error`: the invoke failed.
    Error,
    /// `POST /runtime/init/error`.
    InitError,
    /// `GET /runtime/restore/next` (SnapStart).
    RestoreNext,
    /// `POST /runtime/restore/error` (SnapStart).
    RestoreError,
    /// Anything else (other APIs on the same port, unknown future paths).
    #[default]
    Other,
}

/// The path of a target, without an absolute form's scheme and host and without a query.
fn path_of(target: &[u8]) -> &[u8] {
    let target = match target.strip_prefix(b"http://") {
        Some(rest) => match crate::text::find_byte(b'/', rest) {
            Some(i) => rest.get(i..).unwrap_or_default(),
            None => b"/",
        },
        None => target,
    };
    match crate::text::find_byte(b'?', target) {
        Some(q) => target.get(..q).unwrap_or_default(),
        None => target,
    }
}

impl RequestKind {
    /// Classifies a request by its method and target, and borrows the invoke id from the
    /// target where it has one (cut to [`MAX_ID_LEN`] bytes). A target too long to be kept
    /// whole can only be a result with a long id: its kept start and the end of its path say.
    /// (The path is compared as bytes; only an id is text, checked as such.)
    pub fn classify<'t>(method: &str, target: &'t Target) -> (RequestKind, &'t str) {
        let kept = target.prefix();
        if target.is_whole() {
            return classify_path(method, path_of(kept));
        }
        let Some(rest) = path_of(kept).strip_prefix(b"/2018-06-01/runtime/invocation/") else {
            return (RequestKind::Other, "");
        };
        // The id as far as it is text.
        let rest = crate::text::utf8_prefix(rest, rest.len());
        if method != "POST" || rest.contains('/') {
            return (RequestKind::Other, "");
        }
        let kind = match target.path_tail() {
            t if t.ends_with(b"/response") => RequestKind::Response,
            t if t.ends_with(b"/error") => RequestKind::Error,
            _ => return (RequestKind::Other, ""),
        };
        (kind, crate::text::bounded_str(rest, MAX_ID_LEN))
    }

    /// Whether the body of this request is worth a look (the error type may be inside).
    pub fn carries_error(self) -> bool {
        matches!(
            self,
            RequestKind::Error | RequestKind::InitError | RequestKind::RestoreError
        )
    }
}

/// Classifies a whole path.
fn classify_path<'p>(method: &str, path: &'p [u8]) -> (RequestKind, &'p str) {
    let Some(rest) = path.strip_prefix(BASE.as_bytes()) else {
        return (RequestKind::Other, "");
    };
    match (method, rest) {
        ("GET", b"/runtime/invocation/next") => (RequestKind::Next, ""),
        ("POST", b"/runtime/init/error") => (RequestKind::InitError, ""),
        ("GET", b"/runtime/restore/next") => (RequestKind::RestoreNext, ""),
        ("POST", b"/runtime/restore/error") => (RequestKind::RestoreError, ""),
        ("POST", rest) => {
            // `/runtime/invocation/<id>/response` or `…/error`: an id of one segment, of text.
            let Some(tail) = rest.strip_prefix(b"/runtime/invocation/") else {
                return (RequestKind::Other, "");
            };
            let (id, kind) = if let Some(id) = tail.strip_suffix(b"/response") {
                (id, RequestKind::Response)
            } else if let Some(id) = tail.strip_suffix(b"/error") {
                (id, RequestKind::Error)
            } else {
                return (RequestKind::Other, "");
            };
            // (An id is ASCII: the quick check first.)
            let text = crate::text::as_ascii(id).or_else(|| std::str::from_utf8(id).ok());
            match text {
                Some(id)
                    if !id.is_empty() && crate::text::find_byte(b'/', id.as_bytes()).is_none() =>
                {
                    (kind, crate::text::bounded_str(id, MAX_ID_LEN))
                }
                _ => (RequestKind::Other, ""),
            }
        }
        _ => (RequestKind::Other, ""),
    }
}

/// The socket addresses that reach the Runtime API, from `AWS_LAMBDA_RUNTIME_API` ("host:port"):
/// a few, kept inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiAddress {
    addrs: [Option<SocketAddr>; 4],
}

/// Why `AWS_LAMBDA_RUNTIME_API` cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressError {
    NoPort,
    BadPort,
    /// A host name other than `localhost`: resolving it inside the host's process at load time
    /// is not safe, and Lambda always sets an IP address.
    NotAnAddress,
}

impl AddressError {
    /// Why, for the one warning line.
    pub fn describe(self) -> &'static str {
        match self {
            AddressError::NoPort => "it has no port",
            AddressError::BadPort => "its port is not a number",
            AddressError::NotAnAddress => "its host is not an IP address or localhost",
        }
    }
}

impl ApiAddress {
    pub fn parse(value: &str) -> Result<ApiAddress, AddressError> {
        let value = value.trim();
        let value = value.strip_prefix("http://").unwrap_or(value);
        let value = value.trim_end_matches('/');
        let (host, port) = if let Some(rest) = value.strip_prefix('[') {
            rest.split_once("]:").ok_or(AddressError::NoPort)?
        } else {
            value.rsplit_once(':').ok_or(AddressError::NoPort)?
        };
        let port: u16 = port.parse().map_err(|_| AddressError::BadPort)?;
        let ips: [Option<IpAddr>; 2] = if host.eq_ignore_ascii_case("localhost") {
            [
                Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ]
        } else {
            [
                Some(host.parse().map_err(|_| AddressError::NotAnAddress)?),
                None,
            ]
        };
        let mut out = ApiAddress { addrs: [None; 4] };
        let mut n = 0;
        let mut add = |a: SocketAddr| {
            if let Some(slot) = out.addrs.get_mut(n) {
                *slot = Some(a);
                n += 1;
            }
        };
        for ip in ips.into_iter().flatten() {
            add(SocketAddr::new(ip, port));
            if let IpAddr::V4(v4) = ip {
                // Java and dual-stack clients connect AF_INET6 sockets to ::ffff:a.b.c.d.
                add(SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), port));
            }
            if let IpAddr::V6(v6) = ip
                && let Some(v4) = v6.to_ipv4_mapped()
            {
                add(SocketAddr::new(IpAddr::V4(v4), port));
            }
        }
        Ok(out)
    }

    pub fn matches(&self, addr: &SocketAddr) -> bool {
        self.addrs
            .iter()
            .flatten()
            .any(|a| a.ip() == addr.ip() && a.port() == addr.port())
    }
}

/// Finds the error type in an error body as it goes by, in pieces of any size: the string value
/// of the top-level `"errorType"` member of a JSON object, as the Python and Node clients send
/// it (after a message and a stack trace of any length). Keeps nothing but the value (cut to
/// [`MAX_ERROR_TYPE_LEN`] bytes) and a few bytes of state.
#[derive(Clone, Copy, Debug)]
pub struct ErrorTypeScanner {
    state: Scan,
    /// Nesting depth outside strings (1: inside the top-level object).
    depth: u32,
    /// At depth 1, what comes next: a key, or a value.
    expect_key: bool,
    /// How much of `"errorType"` the key being read matched so far (`None`: it does not).
    key_match: Option<u8>,
    /// The key just read was `errorType`: its value is the one wanted.
    wanted: bool,
    /// A `\u` escape being read: its four hex digits so far, and how many.
    hex: u32,
    hex_digits: u8,
    /// A high surrogate waiting for its low half.
    high: Option<u32>,
    /// The value's bytes as UTF-8 (raw bytes as they come, escapes decoded), cut when read.
    value: [u8; MAX_ERROR_TYPE_LEN],
    value_len: u16,
    found: bool,
    /// The body is not one JSON object: nothing more is looked at.
    gave_up: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scan {
    /// Before the object's `{`.
    Start,
    /// Between tokens.
    Between,
    /// Inside a string (a key, a value, or something nested).
    InString { escaped: bool },
    /// Inside a `\u` escape of a string.
    InUnicode,
    /// Inside a number, `true`, `false` or `null`.
    InWord,
    /// After the object ended.
    Done,
}

const KEY: &[u8] = b"errorType";

impl Default for ErrorTypeScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl ErrorTypeScanner {
    pub const fn new() -> Self {
        ErrorTypeScanner {
            state: Scan::Start,
            depth: 0,
            expect_key: true,
            key_match: None,
            wanted: false,
            hex: 0,
            hex_digits: 0,
            high: None,
            value: [0; MAX_ERROR_TYPE_LEN],
            value_len: 0,
            found: false,
            gave_up: false,
        }
    }

    /// Starts over, for the next body: as [`ErrorTypeScanner::new`] makes one, but the value's
    /// bytes (never read past its length) are not cleared.
    pub fn reset(&mut self) {
        let ErrorTypeScanner {
            state,
            depth,
            expect_key,
            key_match,
            wanted,
            hex,
            hex_digits,
            high,
            value: _,
            value_len,
            found,
            gave_up,
        } = self;
        *state = Scan::Start;
        *depth = 0;
        *expect_key = true;
        *key_match = None;
        *wanted = false;
        *hex = 0;
        *hex_digits = 0;
        *high = None;
        *value_len = 0;
        *found = false;
        *gave_up = false;
    }

    /// The error type found, once its string ended (never empty).
    pub fn error_type(&self) -> Option<&str> {
        let bytes = self
            .value
            .get(..usize::from(self.value_len))
            .unwrap_or_default();
        let text = crate::text::utf8_prefix(bytes, bytes.len());
        (self.found && !text.is_empty()).then_some(text)
    }

    /// Bytes of the body went by unseen: a type found already stands, nothing after them is
    /// looked at (they could not be read in step).
    pub fn lost(&mut self) {
        self.gave_up = true;
    }

    /// Looks at the next bytes of the body.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.found || self.gave_up || self.state == Scan::Done {
                return;
            }
            self.byte(b);
        }
    }

    fn in_wanted_value(&self) -> bool {
        self.wanted && self.depth == 1 && !self.expect_key
    }

    fn keep(&mut self, c: char) {
        if self.in_wanted_value() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                self.push_raw(b);
            }
        }
    }

    fn byte(&mut self, b: u8) {
        match self.state {
            Scan::Start => match b {
                b' ' | b'\t' | b'\r' | b'\n' => {}
                b'{' => {
                    self.depth = 1;
                    self.expect_key = true;
                    self.state = Scan::Between;
                }
                _ => self.gave_up = true,
            },
            Scan::Between => self.between(b),
            Scan::InWord => {
                if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                    self.state = Scan::Between;
                    self.between(b);
                }
            }
            Scan::InString { escaped: true } => {
                self.state = Scan::InString { escaped: false };
                let c = match b {
                    b'n' => '\n',
                    b't' => '\t',
                    b'r' => '\r',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'u' => {
                        self.hex = 0;
                        self.hex_digits = 0;
                        self.state = Scan::InUnicode;
                        return;
                    }
                    other => char::from(other),
                };
                self.key_byte(None);
                self.keep(c);
            }
            Scan::InUnicode => {
                let Some(d) = char::from(b).to_digit(16) else {
                    self.gave_up = true;
                    return;
                };
                self.hex = self.hex * 16 + d;
                self.hex_digits += 1;
                if self.hex_digits == 4 {
                    self.state = Scan::InString { escaped: false };
                    self.key_byte(None);
                    let unit = self.hex;
                    let c = match (self.high.take(), unit) {
                        (None, 0xd800..=0xdbff) => {
                            self.high = Some(unit);
                            return;
                        }
                        (Some(hi), 0xdc00..=0xdfff) => {
                            char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (unit - 0xdc00))
                        }
                        (_, u) => char::from_u32(u),
                    };
                    self.keep(c.unwrap_or('\u{fffd}'));
                }
            }
            Scan::InString { escaped: false } => match b {
                b'\\' => self.state = Scan::InString { escaped: true },
                b'"' => self.end_string(),
                _ => {
                    self.key_byte(Some(b));
                    if self.in_wanted_value() {
                        // Raw bytes of a UTF-8 string: kept as they come, cut at a character
                        // boundary when read.
                        self.push_raw(b);
                    }
                }
            },
            Scan::Done => {}
        }
    }

    fn push_raw(&mut self, b: u8) {
        if let Some(slot) = self.value.get_mut(usize::from(self.value_len)) {
            *slot = b;
            self.value_len += 1;
        }
    }

    /// A byte (or, `None`, an escaped character) of a key being compared with `errorType`.
    fn key_byte(&mut self, b: Option<u8>) {
        if self.depth != 1 || !self.expect_key {
            return;
        }
        self.key_match = match (self.key_match, b) {
            (Some(i), Some(b)) if KEY.get(usize::from(i)) == Some(&b) => Some(i + 1),
            _ => None,
        };
    }

    fn end_string(&mut self) {
        self.state = Scan::Between;
        if self.depth != 1 {
            return;
        }
        if self.expect_key {
            self.wanted = self.key_match == Some(KEY.len() as u8);
        } else if self.wanted {
            self.found = true;
        }
    }

    fn between(&mut self, b: u8) {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => {}
            b'"' => {
                self.state = Scan::InString { escaped: false };
                self.hex = 0;
                if self.depth == 1 && self.expect_key {
                    self.key_match = Some(0);
                }
                if self.in_wanted_value() {
                    self.value_len = 0;
                }
            }
            b':' if self.depth == 1 => self.expect_key = false,
            b',' if self.depth == 1 => {
                self.expect_key = true;
                self.wanted = false;
            }
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 0 {
                    self.state = Scan::Done;
                }
            }
            b',' | b':' => {}
            _ => self.state = Scan::InWord,
        }
    }
}

/// The Runtime API's messages as Lambda and a runtime client send them, for the core's tests,
/// its allocation count and its property checks: one source of truth for every fixture.
#[cfg(any(test, feature = "props"))]
pub mod fixtures {
    /// A runtime's `/next` request.
    pub const NEXT: &[u8] =
        b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nUser-Agent: aws-lambda-python/3.11\r\nAccept: */*\r\n\r\n";

    /// The Runtime API's answer to a result.
    pub const ACCEPTED: &[u8] = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nDate: Fri, 27 Nov 2026 08:00:00 GMT\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n";

    /// The answer to `/next`: event `body` for request `id`, due at `deadline_ms` (epoch), with
    /// the headers Lambda sends.
    pub fn event(id: &str, deadline_ms: u64, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {id}\r\nLambda-Runtime-Deadline-Ms: {deadline_ms}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:orders\r\nLambda-Runtime-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1\r\nDate: Fri, 27 Nov 2026 08:00:00 GMT\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// A runtime's result request: `kind` is `response` or `error`, `extra` more header lines
    /// (each ending in CRLF).
    pub fn result(id: &str, kind: &str, body: &str, extra: &str) -> Vec<u8> {
        format!(
            "POST /2018-06-01/runtime/invocation/{id}/{kind} HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nUser-Agent: aws-lambda-python/3.11\r\nContent-Length: {}\r\n{extra}\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::http::{Direction, Event, Parser};

    /// The target of a request line, as the parser keeps it.
    fn target_of(method: &str, target: &str) -> (RequestKind, String) {
        let line = format!("{method} {target} HTTP/1.1\r\n\r\n");
        let mut p = Parser::new(Direction::Request, FIELDS);
        let mut data = line.as_bytes();
        assert_eq!(p.step(&mut data), Ok(Some(Event::Head)));
        let (kind, id) = RequestKind::classify(p.head().method(), p.head().target());
        (kind, id.to_string())
    }

    #[test]
    fn classify_paths() {
        use RequestKind::*;
        let cases = [
            ("GET", "/2018-06-01/runtime/invocation/next", Next, ""),
            (
                "GET",
                "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next",
                Next,
                "",
            ),
            (
                "POST",
                "/2018-06-01/runtime/invocation/8476a536-e9f4-11e8/response",
                Response,
                "8476a536-e9f4-11e8",
            ),
            (
                "POST",
                "/2018-06-01/runtime/invocation/id1/error?x=1",
                Error,
                "id1",
            ),
            ("POST", "/2018-06-01/runtime/init/error", InitError, ""),
            ("GET", "/2018-06-01/runtime/restore/next", RestoreNext, ""),
            (
                "POST",
                "/2018-06-01/runtime/restore/error",
                RestoreError,
                "",
            ),
            ("POST", "/2018-06-01/runtime/invocation/next", Other, ""),
            (
                "POST",
                "/2018-06-01/runtime/invocation//response",
                Other,
                "",
            ),
            (
                "POST",
                "/2018-06-01/runtime/invocation/a/b/response",
                Other,
                "",
            ),
            ("GET", "/2020-01-01/extension/event/next", Other, ""),
            ("GET", "/2018-06-01/runtime/invocation/next/", Other, ""),
            (
                "GET",
                "/2018-06-01/runtime/invocation/id/response",
                Other,
                "",
            ),
            (
                "POST",
                "/2018-06-01/runtime/invocation/id/response/",
                Other,
                "",
            ),
            ("POST", "/2018-06-01/runtime/invocation/response", Other, ""),
            ("POST", "/2018-06-01/runtime/invocation/error", Other, ""),
            ("POST", "/2018-06-01/runtime/init/error/", Other, ""),
        ];
        for (method, target, kind, id) in cases {
            assert_eq!(
                target_of(method, target),
                (kind, id.to_string()),
                "{target}"
            );
        }
        // An id is text: one that is not UTF-8 is no id; one that is, whatever its letters, is.
        for (target, kind, id) in [
            (
                &b"/2018-06-01/runtime/invocation/ab\xffcd/response"[..],
                Other,
                "",
            ),
            (
                "/2018-06-01/runtime/invocation/é€/error".as_bytes(),
                Error,
                "é€",
            ),
        ] {
            let mut line = b"POST ".to_vec();
            line.extend_from_slice(target);
            line.extend_from_slice(b" HTTP/1.1\r\n\r\n");
            let mut p = Parser::new(Direction::Request, FIELDS);
            let mut data = &line[..];
            assert_eq!(p.step(&mut data), Ok(Some(Event::Head)));
            let got = RequestKind::classify(p.head().method(), p.head().target());
            assert_eq!(got, (kind, id));
        }
        // An id longer than the parser keeps: the kind from the end of the path, the id cut.
        let long = "x".repeat(3_000);
        let (kind, id) = target_of(
            "POST",
            &format!("/2018-06-01/runtime/invocation/{long}/error"),
        );
        assert_eq!((kind, id.len()), (Error, MAX_ID_LEN));
        let (kind, _) = target_of(
            "POST",
            &format!("/2018-06-01/runtime/invocation/{long}/other"),
        );
        assert_eq!(kind, Other);
    }

    #[test]
    fn the_fields_fit_a_head() {
        let total: usize = FIELDS
            .head
            .iter()
            .chain(FIELDS.trailers)
            .map(|w| w.max)
            .sum();
        assert!(total <= crate::http::KEPT_BYTES);
        assert!(FIELDS.head.len() + FIELDS.trailers.len() <= crate::http::MAX_FIELDS);
    }

    #[test]
    fn address_forms() {
        let a = ApiAddress::parse("127.0.0.1:9001").unwrap();
        assert!(a.matches(&"127.0.0.1:9001".parse().unwrap()));
        assert!(a.matches(&"[::ffff:127.0.0.1]:9001".parse().unwrap()));
        assert!(!a.matches(&"127.0.0.1:9002".parse().unwrap()));
        assert!(!a.matches(&"127.0.0.2:9001".parse().unwrap()));
        let l = ApiAddress::parse("localhost:80").unwrap();
        assert!(l.matches(&"[::1]:80".parse().unwrap()));
        assert!(l.matches(&"127.0.0.1:80".parse().unwrap()));
        assert!(l.matches(&"[::ffff:127.0.0.1]:80".parse().unwrap()));
        let v6 = ApiAddress::parse("[::1]:9001").unwrap();
        assert!(v6.matches(&"[::1]:9001".parse().unwrap()));
        assert_eq!(ApiAddress::parse("127.0.0.1"), Err(AddressError::NoPort));
        assert_eq!(ApiAddress::parse("127.0.0.1:x"), Err(AddressError::BadPort));
        assert_eq!(
            ApiAddress::parse("runtime.internal:9001"),
            Err(AddressError::NotAnAddress)
        );
    }

    fn scan(body: &[u8], step: usize) -> Option<String> {
        let mut s = ErrorTypeScanner::new();
        for piece in body.chunks(step) {
            s.feed(piece);
        }
        let found = s.error_type().map(str::to_string);
        // A scanner reset after any body reads the next as a new one does.
        for before in [
            &b"{\"errorType\":\"Earlier.Longer.Type\""[..],
            b"[",
            b"{\"a\":\"\\u12",
        ] {
            let mut r = ErrorTypeScanner::new();
            r.feed(before);
            r.reset();
            for piece in body.chunks(step) {
                r.feed(piece);
            }
            assert_eq!(r.error_type().map(str::to_string), found);
        }
        found
    }

    #[test]
    fn the_error_type_is_found_after_a_message_of_any_size() {
        let message = "m\\\"".repeat(20_000);
        let trace: Vec<String> = (0..200).map(|i| format!("\"  File x{i}\"")).collect();
        let body = format!(
            r#"{{"errorMessage":"{message}","nested":{{"errorType":"NotThis"}},"stackTrace":[{}],"errorType":"ValueError","requestId":"r"}}"#,
            trace.join(",")
        );
        for step in [1, 7, 4096, 1 << 20] {
            assert_eq!(
                scan(body.as_bytes(), step).as_deref(),
                Some("ValueError"),
                "{step}"
            );
        }
        assert_eq!(
            scan(r#"{"errorType":"caf\u00e9\ud83d\ude00 é\n"}"#.as_bytes(), 1).as_deref(),
            Some("café😀 é\n")
        );
        let long = "T".repeat(400);
        assert_eq!(
            scan(format!(r#"{{"errorType":"{long}"}}"#).as_bytes(), 3).map(|t| t.len()),
            Some(MAX_ERROR_TYPE_LEN)
        );
        for none in [
            &br#"{"errorType":""}"#[..],
            br#"{"errorType":7}"#,
            br#"{"type":"errorType"}"#,
            br#"["errorType","x"]"#,
            b"not json",
            br#"{"errorMessage":"truncated"#,
        ] {
            assert_eq!(scan(none, 2), None, "{:?}", String::from_utf8_lossy(none));
        }
    }
}
