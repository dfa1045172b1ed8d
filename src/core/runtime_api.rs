//! Facts about the Lambda Runtime API: its address, its paths and its header names.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The API version prefix every path starts with.
pub const BASE: &str = "/2018-06-01";

pub const HDR_REQUEST_ID: &str = "lambda-runtime-aws-request-id";
pub const HDR_DEADLINE_MS: &str = "lambda-runtime-deadline-ms";
pub const HDR_TRACE_ID: &str = "lambda-runtime-trace-id";
pub const HDR_ERROR_TYPE: &str = "lambda-runtime-function-error-type";
pub const HDR_RESPONSE_MODE: &str = "lambda-runtime-function-response-mode";

/// What a request to the Runtime API is, from its method and path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// `GET /runtime/invocation/next`: asks for the next event.
    Next,
    /// `POST /runtime/invocation/{id}/response`: the result of an invoke.
    Response(String),
    /// `POST /runtime/invocation/{id}/error`: the invoke failed.
    Error(String),
    /// `POST /runtime/init/error`.
    InitError,
    /// `GET /runtime/restore/next` (SnapStart).
    RestoreNext,
    /// `POST /runtime/restore/error` (SnapStart).
    RestoreError,
    /// Anything else (other APIs on the same port, unknown future paths).
    Other,
}

/// The kind of a request without its invoke id, and the id borrowed from the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Next,
    Response,
    Error,
    InitError,
    RestoreNext,
    RestoreError,
    Other,
}

/// Reads a request line's method and path without allocating. Query strings are ignored.
fn shape<'a>(method: &str, target: &'a str) -> (Shape, &'a str) {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    // Absolute-form targets ("http://host/...") keep only their path.
    let path = match path.strip_prefix("http://") {
        Some(rest) => rest.find('/').and_then(|i| rest.get(i..)).unwrap_or("/"),
        None => path,
    };
    let Some(rest) = path.strip_prefix(BASE) else {
        return (Shape::Other, "");
    };
    // At most five segments matter; a sixth means none of ours.
    let mut parts = [""; 6];
    let mut n = 0;
    let mut left = rest;
    loop {
        let end = crate::http::find_byte(b'/', left.as_bytes());
        match parts.get_mut(n) {
            Some(slot) => *slot = left.get(..end.unwrap_or(left.len())).unwrap_or_default(),
            None => return (Shape::Other, ""),
        }
        n += 1;
        match end {
            Some(at) => left = left.get(at + 1..).unwrap_or_default(),
            None => break,
        }
    }
    let parts = parts.get(..n).unwrap_or_default();
    match (method, parts) {
        ("GET", ["", "runtime", "invocation", "next"]) => (Shape::Next, ""),
        ("POST", ["", "runtime", "invocation", id, "response"]) if !id.is_empty() => {
            (Shape::Response, id)
        }
        ("POST", ["", "runtime", "invocation", id, "error"]) if !id.is_empty() => {
            (Shape::Error, id)
        }
        ("POST", ["", "runtime", "init", "error"]) => (Shape::InitError, ""),
        ("GET", ["", "runtime", "restore", "next"]) => (Shape::RestoreNext, ""),
        ("POST", ["", "runtime", "restore", "error"]) => (Shape::RestoreError, ""),
        _ => (Shape::Other, ""),
    }
}

impl RequestKind {
    /// Classifies a request line. Query strings are ignored.
    pub fn classify(method: &str, target: &str) -> RequestKind {
        match shape(method, target) {
            (Shape::Next, _) => RequestKind::Next,
            (Shape::Response, id) => RequestKind::Response(id.to_string()),
            (Shape::Error, id) => RequestKind::Error(id.to_string()),
            (Shape::InitError, _) => RequestKind::InitError,
            (Shape::RestoreNext, _) => RequestKind::RestoreNext,
            (Shape::RestoreError, _) => RequestKind::RestoreError,
            (Shape::Other, _) => RequestKind::Other,
        }
    }

    /// [`RequestKind::carries_error`] of a request line, without allocating.
    pub fn line_carries_error(method: &str, target: &str) -> bool {
        matches!(
            shape(method, target).0,
            Shape::Error | Shape::InitError | Shape::RestoreError
        )
    }

    /// Whether the body of this request is worth a bounded look (the error type may be inside).
    pub fn carries_error(&self) -> bool {
        matches!(
            self,
            RequestKind::Error(_) | RequestKind::InitError | RequestKind::RestoreError
        )
    }
}

/// The socket addresses that reach the Runtime API, from `AWS_LAMBDA_RUNTIME_API` ("host:port").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiAddress {
    /// Every address form a client may connect to.
    pub addrs: Vec<SocketAddr>,
}

/// Why `AWS_LAMBDA_RUNTIME_API` cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressError {
    NoPort,
    BadPort,
    /// A host name other than `localhost`: resolving it inside the host's process at load time
    /// is not safe, and Lambda always sets an IP address.
    NotAnAddress,
}

impl ApiAddress {
    pub fn parse(value: &str) -> Result<ApiAddress, AddressError> {
        let value = value.trim();
        let value = value.strip_prefix("http://").unwrap_or(value);
        let value = value.trim_end_matches('/');
        let (host, port) = if let Some(rest) = value.strip_prefix('[') {
            let (h, p) = rest.split_once("]:").ok_or(AddressError::NoPort)?;
            (h, p)
        } else {
            value.rsplit_once(':').ok_or(AddressError::NoPort)?
        };
        let port: u16 = port.parse().map_err(|_| AddressError::BadPort)?;
        let ips: Vec<IpAddr> = if host.eq_ignore_ascii_case("localhost") {
            vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]
        } else {
            vec![host.parse().map_err(|_| AddressError::NotAnAddress)?]
        };
        let mut addrs = Vec::new();
        for ip in ips {
            addrs.push(SocketAddr::new(ip, port));
            if let IpAddr::V4(v4) = ip {
                // Java and dual-stack clients connect AF_INET6 sockets to ::ffff:a.b.c.d.
                addrs.push(SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), port));
            }
            if let IpAddr::V6(v6) = ip
                && let Some(v4) = v6.to_ipv4_mapped()
            {
                addrs.push(SocketAddr::new(IpAddr::V4(v4), port));
            }
        }
        Ok(ApiAddress { addrs })
    }

    pub fn matches(&self, addr: &SocketAddr) -> bool {
        self.addrs
            .iter()
            .any(|a| a.ip() == addr.ip() && a.port() == addr.port())
    }
}

/// Finds `"errorType": "..."` in a (possibly truncated) JSON error body, as the Python and Node
/// clients send it. Returns the unescaped value.
pub fn error_type_in_body(body: &[u8]) -> Option<String> {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) {
        return match map.get("errorType") {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
    }
    // Truncated body: find the key and decode just the string after it.
    let text = String::from_utf8_lossy(body);
    let at = text.find("\"errorType\"")?;
    let rest = text.get(at + "\"errorType\"".len()..)?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    if !rest.starts_with('"') {
        return None;
    }
    let mut end = None;
    let mut escaped = false;
    for (i, c) in rest.char_indices().skip(1) {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let literal = rest.get(..=end?)?;
    match serde_json::from_str::<String>(literal) {
        Ok(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn classify_paths() {
        use RequestKind::*;
        assert_eq!(
            RequestKind::classify("GET", "/2018-06-01/runtime/invocation/next"),
            Next
        );
        assert_eq!(
            RequestKind::classify(
                "GET",
                "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next"
            ),
            Next
        );
        assert_eq!(
            RequestKind::classify(
                "POST",
                "/2018-06-01/runtime/invocation/8476a536-e9f4-11e8/response"
            ),
            Response("8476a536-e9f4-11e8".into())
        );
        assert_eq!(
            RequestKind::classify("POST", "/2018-06-01/runtime/invocation/id1/error"),
            Error("id1".into())
        );
        assert_eq!(
            RequestKind::classify("POST", "/2018-06-01/runtime/init/error"),
            InitError
        );
        assert_eq!(
            RequestKind::classify("GET", "/2018-06-01/runtime/restore/next"),
            RestoreNext
        );
        assert_eq!(
            RequestKind::classify("POST", "/2018-06-01/runtime/restore/error"),
            RestoreError
        );
        assert_eq!(
            RequestKind::classify("POST", "/2018-06-01/runtime/invocation/next"),
            Other
        );
        assert_eq!(
            RequestKind::classify("POST", "/2018-06-01/runtime/invocation//response"),
            Other
        );
        assert_eq!(
            RequestKind::classify("GET", "/2020-01-01/extension/event/next"),
            Other
        );
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
        let v6 = ApiAddress::parse("[::1]:9001").unwrap();
        assert!(v6.matches(&"[::1]:9001".parse().unwrap()));
        assert_eq!(ApiAddress::parse("127.0.0.1"), Err(AddressError::NoPort));
        assert_eq!(ApiAddress::parse("127.0.0.1:x"), Err(AddressError::BadPort));
        assert_eq!(
            ApiAddress::parse("runtime.internal:9001"),
            Err(AddressError::NotAnAddress)
        );
    }
}
