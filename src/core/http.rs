//! Incremental HTTP/1.1 message parser for one direction of one connection.
//!
//! It is fed exactly the bytes the host wrote or read, in whatever pieces the host used (one byte
//! at a time in the worst case), and reports message heads and completed messages. It never
//! copies a body: bodies are counted, and only a caller-chosen prefix (at most
//! [`MAX_CAPTURE`] bytes) is kept. Anything that is not HTTP/1.1 is an error, and the caller then
//! stops watching the connection instead of guessing.

/// The longest line of a head (start line or one header), and how many bytes of headers a head
/// keeps: past that, only the headers the library reads are kept (a legal head may be larger;
/// a longer line is garbage). Also the cap on a trailer block.
pub const MAX_HEAD: usize = 16 * 1024;
/// Headers the engine reads from a message: the only ones a [`Head`] keeps (the framing
/// headers are read by the parser as they go by). `name` as sent, compared without regard to
/// case.
fn is_read_by_us(name: &[u8]) -> bool {
    use crate::runtime_api as api;
    let wanted = [
        api::HDR_REQUEST_ID,
        api::HDR_DEADLINE_MS,
        api::HDR_TRACE_ID,
        api::HDR_ERROR_TYPE,
        api::HDR_RESPONSE_MODE,
    ];
    // Most headers differ in length from all of these: one compare each.
    wanted
        .iter()
        .any(|n| n.len() == name.len() && name.eq_ignore_ascii_case(n.as_bytes()))
}
/// The largest body prefix a caller may ask to keep.
pub const MAX_CAPTURE: usize = 4 * 1024;
/// A chunk-size line longer than this is garbage (hex digits plus extensions).
const MAX_CHUNK_LINE: usize = 1024;

/// Which side of the exchange this parser reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Bytes the client wrote: requests.
    Request,
    /// Bytes the client read: responses.
    Response,
}

/// The most headers a [`Head`] keeps (of the few names it keeps at all; repeats past this are
/// dropped).
const MAX_KEPT: usize = 16;

/// The start line and the headers the library reads of one message, in one buffer: a head
/// costs one allocation, however many headers it keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// Response status (0 for requests).
    pub status: u16,
    /// The method and target (requests), then each kept header's name (lower-cased) and value
    /// (trimmed), one after the other.
    text: String,
    method: (u16, u16),
    target: (u16, u16),
    /// Each kept header: where its name starts, where its value starts (the name's end), and
    /// where its value ends, in `text`.
    headers: [(u16, u16, u16); MAX_KEPT],
    count: u8,
}

impl Head {
    fn part(&self, (from, to): (u16, u16)) -> &str {
        self.text
            .get(usize::from(from)..usize::from(to))
            .unwrap_or_default()
    }

    /// Request method (empty for responses).
    pub fn method(&self) -> &str {
        self.part(self.method)
    }

    /// Request target (empty for responses).
    pub fn target(&self) -> &str {
        self.part(self.target)
    }

    /// The kept headers (the Runtime API's), in arrival order: name lower-cased, value trimmed.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .take(usize::from(self.count))
            .map(|&(n, v, end)| (self.part((n, v)), self.part((v, end))))
    }

    /// The first value of a header, by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Appends `s` to the text; its span (`None` past what u16 offsets reach).
    fn push_text(&mut self, s: &str, lower: bool) -> Option<(u16, u16)> {
        let from = u16::try_from(self.text.len()).ok()?;
        let to = u16::try_from(self.text.len() + s.len()).ok()?;
        self.text.push_str(s);
        if lower && let Some(added) = self.text.get_mut(usize::from(from)..) {
            added.make_ascii_lowercase();
        }
        Some((from, to))
    }

    /// Keeps one header (false when the head keeps no more).
    fn keep_header(&mut self, name: &str, value: &str) -> bool {
        if usize::from(self.count) >= MAX_KEPT {
            return false;
        }
        if self.text.capacity() == 0 {
            // Room for the Runtime API's headers in one allocation.
            self.text.reserve(256);
        }
        let Some((n, v)) = self.push_text(name, true) else {
            return false;
        };
        let Some((_, end)) = self.push_text(value, false) else {
            return false;
        };
        if let Some(slot) = self.headers.get_mut(usize::from(self.count)) {
            *slot = (n, v, end);
            self.count += 1;
        }
        true
    }
}

/// A finished message: its head, how many body bytes it carried, the kept body prefix and any
/// chunked trailers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub head: Head,
    pub body_len: u64,
    pub captured: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

/// What one `feed` call found, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A request's head is complete; its body (if any) follows. The request's [`Message`] comes
    /// without it. (Not reported for responses: theirs come with their messages.)
    Head(Head),
    /// The first body byte of the current message went past.
    FirstBodyByte,
    /// A whole message is complete.
    Complete(Message),
}

/// Why a stream stopped being HTTP/1.1 we can follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    HeadTooLarge,
    BadStartLine,
    BadHeader,
    BadContentLength,
    BadChunk,
    /// `101 Switching Protocols`: what follows is not HTTP/1.1.
    Upgraded,
}

impl ParseError {
    /// A short human description for the one warning line.
    pub fn describe(self) -> &'static str {
        match self {
            ParseError::HeadTooLarge => "header line or trailer block over 16 KiB",
            ParseError::BadStartLine => "not an HTTP/1.1 start line",
            ParseError::BadHeader => "malformed header line",
            ParseError::BadContentLength => "invalid Content-Length",
            ParseError::BadChunk => "malformed chunked body",
            ParseError::Upgraded => "connection upgraded away from HTTP/1.1",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Collecting the start line and headers into `buf`.
    Head,
    /// A body with this many bytes still to come.
    Body(u64),
    /// Collecting a chunk-size line into `buf`.
    ChunkSize,
    /// Chunk data with this many bytes still to come.
    ChunkData(u64),
    /// The CRLF after chunk data; the number is how many of its two bytes were seen.
    ChunkDataEnd(u8),
    /// Collecting trailers (after the last chunk) into `buf`.
    Trailers,
    /// A response body delimited by the end of the connection.
    UntilClose,
}

/// One direction's parser. See the module documentation.
#[derive(Debug)]
pub struct Parser {
    dir: Direction,
    state: State,
    buf: Vec<u8>,
    /// The head being read: its start line is parsed, its headers are coming.
    pending: Option<Head>,
    /// Bytes of header lines kept in `pending`.
    kept: usize,
    /// The pending head's first `Content-Length` (`Some(None)`: not a number).
    length: Option<Option<u64>>,
    /// Whether a `Transfer-Encoding` of the pending head names `chunked`.
    chunked: bool,
    head: Option<Head>,
    body_len: u64,
    capture_limit: usize,
    captured: Vec<u8>,
}

/// Decides, from a head, how much of its body to keep (0 = none, capped at [`MAX_CAPTURE`]).
pub type CapturePolicy = fn(&Head) -> usize;

impl Parser {
    pub fn new(dir: Direction) -> Self {
        Parser {
            dir,
            state: State::Head,
            buf: Vec::new(),
            pending: None,
            kept: 0,
            length: None,
            chunked: false,
            head: None,
            body_len: 0,
            capture_limit: 0,
            captured: Vec::new(),
        }
    }

    /// Bytes the parser holds now (a partial line, kept headers, a body prefix): bounded by
    /// a few times [`MAX_HEAD`] plus [`MAX_CAPTURE`] whatever it is fed.
    pub fn buffered(&self) -> usize {
        self.buf.capacity() + self.kept + self.captured.capacity()
    }

    /// True between messages (nothing half-read).
    pub fn is_idle(&self) -> bool {
        self.state == State::Head && self.buf.is_empty() && self.pending.is_none()
    }

    /// Feed bytes; events are appended to `out`. After an error the parser must be dropped.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        policy: CapturePolicy,
        out: &mut Vec<Event>,
    ) -> Result<(), ParseError> {
        while !data.is_empty() {
            match self.state {
                State::Head => {
                    // Tolerate empty lines between messages (RFC 9112 §2.2).
                    if self.buf.is_empty() && self.pending.is_none() {
                        let skip = data
                            .iter()
                            .take_while(|b| **b == b'\r' || **b == b'\n')
                            .count();
                        data = data.get(skip..).unwrap_or_default();
                        if data.is_empty() {
                            break;
                        }
                    }
                    // A line is parsed where it lies in the host's buffer; only a line split
                    // across feeds is gathered in `buf`, which keeps its capacity.
                    let Some(end) = find_byte(b'\n', data) else {
                        if self.buf.len() + data.len() > MAX_HEAD {
                            return Err(ParseError::HeadTooLarge);
                        }
                        self.buf.extend_from_slice(data);
                        break;
                    };
                    let (part, rest) = data.split_at(end);
                    data = rest.get(1..).unwrap_or_default();
                    if self.buf.len() + part.len() > MAX_HEAD {
                        return Err(ParseError::HeadTooLarge);
                    }
                    if self.buf.is_empty() {
                        self.head_line(without_cr(part), policy, out)?;
                    } else {
                        let mut line = std::mem::take(&mut self.buf);
                        line.extend_from_slice(part);
                        let parsed = self.head_line(without_cr(&line), policy, out);
                        line.clear();
                        self.buf = line;
                        parsed?;
                    }
                }
                State::Body(remaining) => {
                    let n = remaining.min(data.len() as u64) as usize;
                    let (part, rest) = data.split_at(n);
                    self.body_bytes(part, out);
                    data = rest;
                    let left = remaining - n as u64;
                    self.state = State::Body(left);
                    if left == 0 {
                        self.complete(Vec::new(), out);
                    }
                }
                State::ChunkSize => {
                    let (consumed, line) = take_line(&mut self.buf, data, MAX_CHUNK_LINE)
                        .ok_or(ParseError::BadChunk)?;
                    data = data.get(consumed..).unwrap_or_default();
                    if let Some(line) = line {
                        let size = parse_chunk_size(&line)?;
                        self.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::ChunkData(size)
                        };
                    }
                }
                State::ChunkData(remaining) => {
                    let n = remaining.min(data.len() as u64) as usize;
                    let (part, rest) = data.split_at(n);
                    self.body_bytes(part, out);
                    data = rest;
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        State::ChunkDataEnd(0)
                    } else {
                        State::ChunkData(left)
                    };
                }
                State::ChunkDataEnd(seen) => {
                    let b = data.first().copied().unwrap_or_default();
                    data = data.get(1..).unwrap_or_default();
                    match (seen, b) {
                        (0, b'\r') => self.state = State::ChunkDataEnd(1),
                        // A bare LF is accepted, as most servers do.
                        (0, b'\n') | (1, b'\n') => self.state = State::ChunkSize,
                        _ => return Err(ParseError::BadChunk),
                    }
                }
                State::Trailers => {
                    // Trailers end with an empty line; with none, that is the line right away.
                    let used = take_block(&mut self.buf, data, MAX_HEAD)?;
                    data = data.get(used.consumed..).unwrap_or_default();
                    if used.done {
                        let block = std::mem::take(&mut self.buf);
                        let trailers = parse_header_lines(&block)?;
                        self.complete(trailers, out);
                    }
                }
                State::UntilClose => {
                    self.body_bytes(data, out);
                    data = &[];
                }
            }
        }
        Ok(())
    }

    /// One complete line of a head (without its line end).
    fn head_line(
        &mut self,
        line: &[u8],
        policy: CapturePolicy,
        out: &mut Vec<Event>,
    ) -> Result<(), ParseError> {
        match self.pending.as_mut() {
            None => self.pending = Some(self.start_line(line)?),
            Some(_) if line.is_empty() => self.finish_head(policy, out)?,
            Some(head) => {
                let name = header_name(line)?;
                if name.len() == 14 && name.eq_ignore_ascii_case(b"content-length") {
                    if self.length.is_none() {
                        let (_, value) = header_parts(line, name)?;
                        self.length = Some(value.parse::<u64>().ok());
                    }
                    return Ok(());
                }
                if name.len() == 17 && name.eq_ignore_ascii_case(b"transfer-encoding") {
                    let (_, value) = header_parts(line, name)?;
                    self.chunked |= value
                        .split(',')
                        .any(|c| c.trim().eq_ignore_ascii_case("chunked"));
                    return Ok(());
                }
                // Only the headers the engine reads are kept (and copied), within a bound.
                let size = line.len();
                if is_read_by_us(name) && self.kept + size <= 2 * MAX_HEAD {
                    let (name, value) = header_parts(line, name)?;
                    if head.keep_header(name, value) {
                        self.kept += size;
                    }
                }
            }
        }
        Ok(())
    }

    /// The peer closed the connection: a body delimited by close is complete now.
    pub fn end_of_stream(&mut self, out: &mut Vec<Event>) {
        if self.state == State::UntilClose {
            self.complete(Vec::new(), out);
        }
    }

    fn body_bytes(&mut self, part: &[u8], out: &mut Vec<Event>) {
        if part.is_empty() {
            return;
        }
        if self.body_len == 0 {
            out.push(Event::FirstBodyByte);
        }
        self.body_len += part.len() as u64;
        let room = self.capture_limit.saturating_sub(self.captured.len());
        if room > 0 {
            let keep = room.min(part.len());
            self.captured
                .extend_from_slice(part.get(..keep).unwrap_or_default());
        }
    }

    fn complete(&mut self, trailers: Vec<(String, String)>, out: &mut Vec<Event>) {
        let head = self.head.take().unwrap_or_default();
        out.push(Event::Complete(Message {
            head,
            body_len: self.body_len,
            captured: std::mem::take(&mut self.captured),
            trailers,
        }));
        self.body_len = 0;
        self.capture_limit = 0;
        self.state = State::Head;
    }

    /// Parses a start line into the head it begins.
    fn start_line(&self, line: &[u8]) -> Result<Head, ParseError> {
        let start = std::str::from_utf8(line).map_err(|_| ParseError::BadStartLine)?;
        let mut head = Head::default();
        match self.dir {
            Direction::Request => {
                // Exactly three parts, split at single spaces.
                let (method, rest) = start.split_at(find_byte(b' ', line).unwrap_or(line.len()));
                let rest = rest.get(1..).unwrap_or_default();
                let (target, version) = rest
                    .split_at(find_byte(b' ', rest.as_bytes()).ok_or(ParseError::BadStartLine)?);
                let version = version.get(1..).unwrap_or_default();
                if method.is_empty()
                    || !method.bytes().all(|b| b.is_ascii_uppercase())
                    || target.is_empty()
                    || !is_http1(version)
                {
                    return Err(ParseError::BadStartLine);
                }
                head.text.reserve(method.len() + target.len() + 192);
                head.method = head
                    .push_text(method, false)
                    .ok_or(ParseError::HeadTooLarge)?;
                head.target = head
                    .push_text(target, false)
                    .ok_or(ParseError::HeadTooLarge)?;
            }
            Direction::Response => {
                let (version, rest) =
                    start.split_at(find_byte(b' ', line).ok_or(ParseError::BadStartLine)?);
                let rest = rest.get(1..).unwrap_or_default();
                let code = rest
                    .get(..find_byte(b' ', rest.as_bytes()).unwrap_or(rest.len()))
                    .unwrap_or_default();
                if !is_http1(version) || code.len() != 3 {
                    return Err(ParseError::BadStartLine);
                }
                head.status = code.parse().map_err(|_| ParseError::BadStartLine)?;
                if !(100..=599).contains(&head.status) {
                    return Err(ParseError::BadStartLine);
                }
            }
        }
        Ok(head)
    }

    /// The empty line after the headers: the head is complete.
    fn finish_head(
        &mut self,
        policy: CapturePolicy,
        out: &mut Vec<Event>,
    ) -> Result<(), ParseError> {
        let head = self.pending.take().unwrap_or_default();
        self.kept = 0;
        let chunked = std::mem::take(&mut self.chunked);
        let length = self.length.take();
        if self.dir == Direction::Response && head.status == 101 {
            return Err(ParseError::Upgraded);
        }
        let length = match length {
            Some(n) => Some(n.ok_or(ParseError::BadContentLength)?),
            None => None,
        };
        let informational = self.dir == Direction::Response && head.status < 200;
        let no_body = self.dir == Direction::Response && matches!(head.status, 204 | 304);
        self.capture_limit = policy(&head).min(MAX_CAPTURE);
        self.body_len = 0;
        // A request's head is handed over as the request starts (the caller acts on it then,
        // and keeps it: its Complete comes without one); a response's comes with its Complete.
        if self.dir == Direction::Request {
            out.push(Event::Head(head));
        } else {
            self.head = Some(head);
        }
        if informational {
            // 100 Continue and friends: the real response follows. Report nothing more.
            self.head = None;
            self.capture_limit = 0;
            self.state = State::Head;
            return Ok(());
        }
        self.state = if no_body {
            State::Body(0)
        } else if chunked {
            State::ChunkSize
        } else if let Some(n) = length {
            State::Body(n)
        } else if self.dir == Direction::Response {
            State::UntilClose
        } else {
            State::Body(0)
        };
        if self.state == State::Body(0) {
            self.complete(Vec::new(), out);
        }
        Ok(())
    }
}

fn is_http1(version: &str) -> bool {
    version == "HTTP/1.1" || version == "HTTP/1.0"
}

fn parse_header_lines(block: &[u8]) -> Result<Vec<(String, String)>, ParseError> {
    let text = std::str::from_utf8(block).map_err(|_| ParseError::BadHeader)?;
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty())
        .collect();
    parse_lines(&lines)
}

fn parse_lines(lines: &[&str]) -> Result<Vec<(String, String)>, ParseError> {
    lines.iter().map(|l| header_line(l.as_bytes())).collect()
}

/// The name of a `Name: value` line, checked (no whitespace or control bytes, not empty).
fn header_name(line: &[u8]) -> Result<&[u8], ParseError> {
    let colon = find_byte(b':', line).ok_or(ParseError::BadHeader)?;
    let name = line.get(..colon).unwrap_or_default();
    if name.is_empty()
        || name
            .iter()
            .any(|b| *b == b' ' || *b == b'\t' || b.is_ascii_control())
    {
        return Err(ParseError::BadHeader);
    }
    Ok(name)
}

/// One `Name: value` line whose name [`header_name`] checked: the name as sent, the value
/// trimmed (the line must be UTF-8).
fn header_parts<'a>(line: &'a [u8], name: &[u8]) -> Result<(&'a str, &'a str), ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::BadHeader)?;
    let name_text = line.get(..name.len()).ok_or(ParseError::BadHeader)?;
    let value = line.get(name.len() + 1..).unwrap_or_default();
    Ok((name_text, value.trim()))
}

/// One `Name: value` line: the name lower-cased, the value trimmed.
fn header_line(line: &[u8]) -> Result<(String, String), ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::BadHeader)?;
    let (name, value) = line.split_once(':').ok_or(ParseError::BadHeader)?;
    if name.is_empty()
        || name
            .bytes()
            .any(|b| b == b' ' || b == b'\t' || b.is_ascii_control())
    {
        return Err(ParseError::BadHeader);
    }
    Ok((name.to_ascii_lowercase(), value.trim().to_string()))
}

fn parse_chunk_size(line: &[u8]) -> Result<u64, ParseError> {
    let text = std::str::from_utf8(line).map_err(|_| ParseError::BadChunk)?;
    let digits = text.split(';').next().unwrap_or_default().trim();
    if digits.is_empty() || digits.len() > 15 {
        return Err(ParseError::BadChunk);
    }
    u64::from_str_radix(digits, 16).map_err(|_| ParseError::BadChunk)
}

struct Taken {
    consumed: usize,
    done: bool,
}

/// Appends bytes to `buf` up to and including the blank line that ends a header or trailer
/// block ("\r\n\r\n", "\n\n", or a block that is only an empty line: no trailers). Heads
/// never start with an empty line: the caller skips those first.
fn take_block(buf: &mut Vec<u8>, data: &[u8], cap: usize) -> Result<Taken, ParseError> {
    for (i, &b) in data.iter().enumerate() {
        buf.push(b);
        if buf.len() > cap {
            return Err(ParseError::HeadTooLarge);
        }
        if b == b'\n'
            && (buf.as_slice() == b"\r\n"
                || buf.as_slice() == b"\n"
                || buf.ends_with(b"\r\n\r\n")
                || buf.ends_with(b"\n\n"))
        {
            return Ok(Taken {
                consumed: i + 1,
                done: true,
            });
        }
    }
    Ok(Taken {
        consumed: data.len(),
        done: false,
    })
}

/// The first `byte` in `hay`: libc's `memchr`, which scans a word or a vector at a time.
pub(crate) fn find_byte(byte: u8, hay: &[u8]) -> Option<usize> {
    if hay.is_empty() {
        return None;
    }
    // SAFETY: memchr reads at most `hay.len()` bytes of the live slice.
    let at = unsafe { libc::memchr(hay.as_ptr().cast(), i32::from(byte), hay.len()) };
    (!at.is_null()).then(|| at as usize - hay.as_ptr() as usize)
}

/// A line without the `\r` of its CRLF end.
fn without_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Appends bytes to `buf` up to one line end. Returns how much was consumed and, when a line is
/// complete, the line without its terminator (and `buf` emptied). `None` when over `cap`.
fn take_line(buf: &mut Vec<u8>, data: &[u8], cap: usize) -> Option<(usize, Option<Vec<u8>>)> {
    let end = data.iter().position(|b| *b == b'\n');
    let part = data.get(..end.unwrap_or(data.len())).unwrap_or_default();
    if buf.len() + part.len() > cap {
        return None;
    }
    buf.extend_from_slice(part);
    match end {
        Some(i) => {
            let mut line = std::mem::take(buf);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            Some((i + 1, Some(line)))
        }
        None => Some((data.len(), None)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    fn none(_: &Head) -> usize {
        0
    }
    fn all(_: &Head) -> usize {
        MAX_CAPTURE
    }

    /// Feeds `data` in pieces of `step` bytes and returns every event.
    fn run(
        dir: Direction,
        data: &[u8],
        step: usize,
        policy: CapturePolicy,
    ) -> Result<Vec<Event>, ParseError> {
        let mut p = Parser::new(dir);
        let mut out = Vec::new();
        for piece in data.chunks(step) {
            p.feed(piece, policy, &mut out)?;
        }
        Ok(out)
    }

    /// The heads of the requests in `events`.
    fn heads(events: &[Event]) -> Vec<&Head> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Head(h) => Some(h),
                _ => None,
            })
            .collect()
    }

    fn completes(events: &[Event]) -> Vec<&Message> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Complete(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    const NEXT_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: abc\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn response_with_length_any_split() {
        for step in [1, 2, 3, 7, 1000] {
            let ev = run(Direction::Response, NEXT_RESPONSE, step, none).unwrap();
            let done = completes(&ev);
            assert_eq!(done.len(), 1, "step {step}");
            assert_eq!(done[0].head.status, 200);
            assert_eq!(
                done[0].head.header("lambda-runtime-aws-request-id"),
                Some("abc")
            );
            assert_eq!(done[0].body_len, 5);
            assert!(
                done[0].captured.is_empty(),
                "body must not be kept without a policy"
            );
        }
    }

    #[test]
    fn keep_alive_sequence_of_messages() {
        let mut data = NEXT_RESPONSE.to_vec();
        data.extend_from_slice(
            b"HTTP/1.1 202 Accepted\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n",
        );
        data.extend_from_slice(NEXT_RESPONSE);
        let ev = run(Direction::Response, &data, 3, none).unwrap();
        let done = completes(&ev);
        assert_eq!(
            done.iter().map(|m| m.head.status).collect::<Vec<_>>(),
            vec![200, 202, 200]
        );
    }

    #[test]
    fn chunked_request_with_trailers() {
        let data = b"POST /2018-06-01/runtime/invocation/x/response HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTrailer: Lambda-Runtime-Function-Error-Type\r\n\r\n5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nLambda-Runtime-Function-Error-Type: Oops\r\nLambda-Runtime-Function-Error-Body: Zm9v\r\n\r\n";
        for step in [1, 4, 1000] {
            let ev = run(Direction::Request, data, step, all).unwrap();
            let done = completes(&ev);
            assert_eq!(done.len(), 1);
            assert_eq!(heads(&ev)[0].method(), "POST");
            assert_eq!(done[0].body_len, 8);
            assert_eq!(done[0].captured, b"helloabc");
            assert_eq!(
                done[0].trailers,
                vec![
                    ("lambda-runtime-function-error-type".into(), "Oops".into()),
                    ("lambda-runtime-function-error-body".into(), "Zm9v".into())
                ]
            );
        }
    }

    #[test]
    fn chunked_without_trailers_then_next_request() {
        let data = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        for step in [1, 1000] {
            let ev = run(Direction::Request, data, step, none).unwrap();
            let done = completes(&ev);
            assert_eq!(done.len(), 2, "step {step}");
            assert_eq!(done[0].body_len, 2);
            assert!(done[0].trailers.is_empty());
            assert_eq!(heads(&ev)[1].target(), "/b");
        }
    }

    #[test]
    fn continue_is_skipped() {
        let data =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok";
        let ev = run(Direction::Response, data, 1, none).unwrap();
        let done = completes(&ev);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].head.status, 202);
    }

    #[test]
    fn capture_is_bounded() {
        let body = vec![b'x'; 10_000];
        let mut data =
            format!("POST /e HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        data.extend_from_slice(&body);
        let ev = run(Direction::Request, &data, 999, all).unwrap();
        let done = completes(&ev);
        assert_eq!(done[0].body_len, 10_000);
        assert_eq!(done[0].captured.len(), MAX_CAPTURE);
    }

    #[test]
    fn first_body_byte_is_reported_once() {
        let ev = run(Direction::Response, NEXT_RESPONSE, 1, none).unwrap();
        assert_eq!(ev.iter().filter(|e| **e == Event::FirstBodyByte).count(), 1);
    }

    #[test]
    fn body_until_close() {
        let mut p = Parser::new(Direction::Response);
        let mut out = Vec::new();
        p.feed(b"HTTP/1.0 200 OK\r\n\r\nabcdef", none, &mut out)
            .unwrap();
        assert!(completes(&out).is_empty());
        p.end_of_stream(&mut out);
        assert_eq!(completes(&out)[0].body_len, 6);
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(
            run(
                Direction::Response,
                b"\x16\x03\x01\x02\x00garbage\r\n\r\n",
                1,
                none
            ),
            Err(ParseError::BadStartLine)
        );
        assert_eq!(
            run(Direction::Request, b"hello world\r\n\r\n", 3, none),
            Err(ParseError::BadStartLine)
        );
        assert_eq!(
            run(
                Direction::Request,
                b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
                3,
                none
            ),
            Err(ParseError::BadHeader)
        );
        assert_eq!(
            run(
                Direction::Request,
                b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                3,
                none
            ),
            Err(ParseError::BadContentLength)
        );
        assert_eq!(
            run(
                Direction::Request,
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                1,
                none
            ),
            Err(ParseError::BadChunk)
        );
        assert_eq!(
            run(
                Direction::Response,
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
                5,
                none
            ),
            Err(ParseError::Upgraded)
        );
        let mut huge = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        assert_eq!(
            run(Direction::Request, &huge, 4096, none),
            Err(ParseError::HeadTooLarge)
        );
    }

    #[test]
    fn a_head_over_16_kib_is_followed_with_the_headers_we_read() {
        // 40 headers of 512 bytes, then the ones the library reads: legal HTTP, and every later
        // message on the connection must still be followed.
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..40 {
            head.extend(format!("X-Pad-{i}: {}\r\n", "p".repeat(500)).bytes());
        }
        head.extend(b"Lambda-Runtime-Aws-Request-Id: after-the-padding\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
        for step in [1, 7, 4096] {
            let ev = run(Direction::Response, &head, step, none).unwrap();
            let done = completes(&ev);
            assert_eq!(done.len(), 2, "step {step}");
            assert_eq!(done[0].body_len, 5);
            assert_eq!(
                done[0].head.header("lambda-runtime-aws-request-id"),
                Some("after-the-padding")
            );
            assert!(
                done[0].head.headers().count() < 40,
                "padding past 16 KiB is dropped"
            );
            assert_eq!(done[1].head.status, 202);
        }
    }

    #[test]
    fn no_content_response() {
        let ev = run(
            Direction::Response,
            b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
            1,
            none,
        )
        .unwrap();
        assert_eq!(completes(&ev).len(), 1);
    }
}
