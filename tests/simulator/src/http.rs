//! The simulator's own small HTTP/1.1 server side: request reading and response writing.

use crate::RecordedRequest;
use std::io::{self, BufRead, Read, Write};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const MAX_HEAD: usize = 1024 * 1024;
/// Streamed responses may reach 200 MB; anything beyond is refused.
const MAX_BODY: usize = 200 * 1024 * 1024 + 1024;

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn read_line(r: &mut impl BufRead, limit: usize) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let n = r.take(limit as u64).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\n") {
        return Err(bad("line too long or truncated"));
    }
    line.pop();
    if line.ends_with(b"\r") {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| bad("non-UTF-8 header"))
}

fn read_headers(r: &mut impl BufRead) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    let mut total = 0;
    loop {
        let line = read_line(r, MAX_HEAD)?.ok_or_else(|| bad("eof in headers"))?;
        total += line.len();
        if total > MAX_HEAD {
            return Err(bad("headers too large"));
        }
        if line.is_empty() {
            return Ok(headers);
        }
        let (n, v) = line
            .split_once(':')
            .ok_or_else(|| bad("header without colon"))?;
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
}

/// Reads one request; `Ok(None)` at a clean end of stream. Answers `Expect: 100-continue`.
pub fn read_request(
    r: &mut impl BufRead,
    w: &mut impl Write,
    connection: u64,
) -> io::Result<Option<RecordedRequest>> {
    let mut start = match read_line(r, MAX_HEAD)? {
        None => return Ok(None),
        Some(l) => l,
    };
    while start.is_empty() {
        start = match read_line(r, MAX_HEAD)? {
            None => return Ok(None),
            Some(l) => l,
        };
    }
    let mut parts = start.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("bad request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(bad("not HTTP/1.x"));
    }
    let headers = read_headers(r)?;
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if get("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        w.flush()?;
    }
    let chunked =
        get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let mut body = Vec::new();
    let mut trailers = Vec::new();
    if chunked {
        loop {
            let line = read_line(r, 4096)?.ok_or_else(|| bad("eof in chunk size"))?;
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                trailers = read_headers(r)?;
                break;
            }
            if body.len() + size > MAX_BODY {
                return Err(bad("body too large"));
            }
            let at = body.len();
            body.resize(at + size, 0);
            r.read_exact(&mut body[at..])?;
            let end = read_line(r, 2)?.ok_or_else(|| bad("eof after chunk"))?;
            if !end.is_empty() {
                return Err(bad("missing CRLF after chunk"));
            }
        }
    } else if let Some(len) = get("content-length") {
        let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
        if len > MAX_BODY {
            return Err(bad("body too large"));
        }
        body.resize(len, 0);
        r.read_exact(&mut body)?;
    }
    Ok(Some(RecordedRequest {
        connection,
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body,
        trailers,
        chunked,
        at: Instant::now(),
    }))
}

/// A complete response with `Date` and `Content-Length`.
pub fn response(status: u16, reason: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!("Date: {}\r\n", http_date(SystemTime::now())));
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A JSON response, as the Runtime API sends for results and errors.
pub fn json_response(status: u16, reason: &str, body: &str) -> Vec<u8> {
    let mut b = body.as_bytes().to_vec();
    b.push(b'\n');
    response(
        status,
        reason,
        &[("Content-Type", "application/json".to_string())],
        &b,
    )
}

/// The date (year, month 1-12, day 1-31) `days` days after 1970-01-01 (Howard Hinnant's
/// civil-from-days).
pub fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// An RFC 9110 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let (year, month, day) = civil_date(days as i64);
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!("{weekday}, {day:02} {mon} {year} {h:02}:{m:02}:{s:02} GMT")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(784_111_777)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(1_709_164_800)),
            "Thu, 29 Feb 2024 00:00:00 GMT"
        );
    }

    #[test]
    fn reads_chunked_with_trailers_and_continue() {
        let raw = b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nLambda-Runtime-Function-Error-Type: E\r\n\r\n";
        let mut out = Vec::new();
        let req = read_request(&mut &raw[..], &mut out, 1).unwrap().unwrap();
        assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!(req.body, b"abc");
        assert!(req.chunked);
        assert_eq!(
            req.trailers,
            vec![(
                "Lambda-Runtime-Function-Error-Type".to_string(),
                "E".to_string()
            )]
        );
    }
}
