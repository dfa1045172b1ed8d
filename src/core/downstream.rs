//! What an invoke waited on: the calls it made on connections that are not the Runtime API, by
//! remote name. Fed with the socket calls the hooks see (a name lookup, a connect, bytes out,
//! bytes in, a failure, a close); pure and bounded — fixed tables, no allocation, no panic —
//! so it can run on a hook path.
//!
//! A *call* is one request/answer turn on a connection: bytes sent, then bytes received. Its
//! wait runs from the last byte sent to the first byte back, the time the function waited on
//! the other side (a pipelined or streaming protocol shows as fewer, longer turns). A
//! connection is known by its fd and named from the host's own lookups: the name a lookup
//! that returned the address asked for, else the address itself (`10.0.0.7:5432`).
//!
//! The figures of an invoke are kept apart from the connections ([`Calls`]): which invoke a
//! socket call belongs to is the caller's to decide (the only one open, the one whose event
//! the calling thread read, or none where invokes interleave on one thread).

use crate::metrics::Number;
use crate::text::{FixedStr, Out};
use std::net::{IpAddr, SocketAddr};

/// Bytes of a remote name kept (DNS names run to 253; the rest is cut).
pub const NAME_LEN: usize = 96;
/// Connections followed at once; a connection made while all are in use is not followed.
pub const MAX_CONNS: usize = 64;
/// Distinct remote names a process keeps; calls to a name beyond these are summed as others.
pub const MAX_NAMES: usize = 32;
/// Names a record shows, the slowest by wait; the rest are summed into one entry.
pub const SHOWN: usize = 10;
/// Lookups remembered, address by address, to name connections.
const MAX_RESOLVED: usize = 32;
/// The name of the entry that sums the names a record does not show, or the process could not
/// keep.
pub const OTHERS: &str = "(others)";

/// A remote name.
pub type Name = FixedStr<NAME_LEN>;

/// Which name figures belong to: one the process keeps, or the others. (The others first, and
/// [`Phase::Idle`] first, so that an empty [`Downstream`] is all zero bytes: a static of the
/// library that holds one takes no room in its file, nor memory until it is used.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum NameId {
    Others,
    Kept(u8),
}

/// What calls to one remote name cost an invoke.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// Request/answer turns.
    pub calls: u32,
    /// Last byte sent → first byte back, summed over the turns.
    pub wait_ns: u64,
    /// Connections made (each connect that completed or failed).
    pub connects: u32,
    pub connect_ns: u64,
    /// Name lookups that found the name, and their time.
    pub lookups: u32,
    pub lookup_ns: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
    /// Connections refused, reset, and timed out.
    pub refused: u32,
    pub reset: u32,
    pub timed_out: u32,
    /// Calls (or connects) under way when the invoke began: their wait counts from its start.
    pub carried_over: u32,
    /// TLS handshakes begun (a connection's first bytes were a ClientHello), and the time the
    /// other side took to answer their turns: not calls.
    pub tls_handshakes: u32,
    pub tls_ns: u64,
}

impl Figures {
    pub const ZERO: Figures = Figures {
        calls: 0,
        wait_ns: 0,
        connects: 0,
        connect_ns: 0,
        lookups: 0,
        lookup_ns: 0,
        bytes_out: 0,
        bytes_in: 0,
        refused: 0,
        reset: 0,
        timed_out: 0,
        carried_over: 0,
        tls_handshakes: 0,
        tls_ns: 0,
    };

    pub fn add(&mut self, o: &Figures) {
        self.calls = self.calls.saturating_add(o.calls);
        self.wait_ns = self.wait_ns.saturating_add(o.wait_ns);
        self.connects = self.connects.saturating_add(o.connects);
        self.connect_ns = self.connect_ns.saturating_add(o.connect_ns);
        self.lookups = self.lookups.saturating_add(o.lookups);
        self.lookup_ns = self.lookup_ns.saturating_add(o.lookup_ns);
        self.bytes_out = self.bytes_out.saturating_add(o.bytes_out);
        self.bytes_in = self.bytes_in.saturating_add(o.bytes_in);
        self.refused = self.refused.saturating_add(o.refused);
        self.reset = self.reset.saturating_add(o.reset);
        self.timed_out = self.timed_out.saturating_add(o.timed_out);
        self.carried_over = self.carried_over.saturating_add(o.carried_over);
        self.tls_handshakes = self.tls_handshakes.saturating_add(o.tls_handshakes);
        self.tls_ns = self.tls_ns.saturating_add(o.tls_ns);
    }

    fn is_empty(&self) -> bool {
        *self == Figures::default()
    }
}

/// How a connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    Refused,
    Reset,
    TimedOut,
}

impl Failure {
    /// The failure an errno of a connect, send or receive is, if it is one of those.
    pub fn of_errno(errno: i32) -> Option<Failure> {
        match errno {
            libc::ECONNREFUSED => Some(Failure::Refused),
            // (Not EPIPE: a write after the function's own `shutdown` gets it too.)
            libc::ECONNRESET => Some(Failure::Reset),
            libc::ETIMEDOUT => Some(Failure::TimedOut),
            _ => None,
        }
    }
}

/// What one socket call added, for the caller to put on the invoke it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delta {
    pub name: NameId,
    pub figures: Figures,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// Nothing sent since the last answer began (or since the connect).
    Idle,
    /// A connect under way, since `at_ns`.
    Connecting,
    /// Bytes sent, no answer yet: waiting since the last byte out.
    Sent,
    /// An answer coming in.
    Receiving,
    /// The first bytes of an answer on a plain connection came, too few yet to tell whether it
    /// is an HTTP/1.x interim answer (see [`interim_status`]; a client that reads its status
    /// line a byte at a time, as botocore's, gives them one by one). The call is counted once
    /// it is told not to be one.
    Judging,
    /// An interim answer's head is coming in, up to its blank line.
    InterimHead,
    /// An interim answer (`100 Continue`) came whole: the call goes on, waiting since it came;
    /// bytes sent next are the same request's (its body), not a new turn.
    Interim,
}

#[derive(Clone, Copy, Debug)]
struct Conn {
    /// Whether the slot holds a connection.
    used: bool,
    fd: i32,
    name: NameId,
    phase: Phase,
    /// When the connect began (`Connecting`) or the last byte went out (`Sent`).
    at_ns: u64,
    /// Bytes of the turn under way, for a timeout's account of it.
    turn_out: u64,
    turn_in: u64,
    tls: Tls,
    /// Handshake turns so far (TLS 1.3 takes one, TLS 1.2 two).
    tls_turns: u8,
    /// In the first turn after a one-turn (TLS 1.3) handshake: the server's session tickets
    /// may come back before its answer (see [`Downstream::received`]).
    tickets_first: bool,
    /// In `Receiving`: when the last bytes came, the wait counted for this turn, and its
    /// longest pause before bytes came (the first: the wait).
    last_in_ns: u64,
    turn_wait_ns: u64,
    pause_ns: u64,
    /// A datagram socket's connect made (its time `connect_ns`) and not counted yet: it is
    /// counted with the socket's first bytes or failure, and not at all where the socket is
    /// closed before it carried any (one connected only to learn the source address a
    /// destination would get: Go's and gRPC's address sorting, RFC 6724). A stream's connect
    /// is counted when it is made, in the invoke that waited for it.
    datagram: bool,
    connect_pending: bool,
    connect_ns: u64,
    /// In `Judging` and `InterimHead`: the answer's first bytes.
    lead: Lead,
    /// HTTP/2 without TLS (see [`H2`]): its calls are its requests, not its turns.
    h2: H2,
}

/// Whether a connection speaks TLS, told by the first bytes of its turns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Tls {
    /// Nothing sent yet (first, so that a connection's slot is all zero when free).
    Unknown,
    /// Its first bytes were not a TLS handshake.
    Plain,
    /// A ClientHello went out: turns are the handshake's until the client sends application
    /// data (or, in TLS 1.3, its ChangeCipherSpec before its encrypted Finished).
    Handshake,
    /// Handshaken: turns are calls.
    Done,
}

/// TLS record types (the first byte of a record).
const TLS_HANDSHAKE: u8 = 0x16;
const TLS_CHANGE_CIPHER_SPEC: u8 = 0x14;
const TLS_APPLICATION_DATA: u8 = 0x17;

/// Whether `head`, the first bytes a connection sends, is a TLS handshake record (a
/// ClientHello): type 22, then a version 3.0 to 3.4.
fn is_tls_hello(head: &[u8]) -> bool {
    matches!(head, [TLS_HANDSHAKE, 3, minor, ..] if *minor <= 4)
}

/// The bytes of one send or receive, as the hooks saw them: pieces in order (a `writev`'s
/// buffers, as many as it has), none where they were not seen (`sendfile`, `splice`).
pub trait Pieces {
    /// Calls `f` with each piece, in order.
    fn each(&self, f: &mut dyn FnMut(&[u8]));
    /// The first piece that holds a byte (empty: none).
    fn first(&self) -> &[u8];
    /// The bytes of all the pieces.
    fn total(&self) -> u64;
}

impl Pieces for [&[u8]] {
    fn each(&self, f: &mut dyn FnMut(&[u8])) {
        for part in self {
            f(part);
        }
    }

    fn first(&self) -> &[u8] {
        self.iter()
            .find(|p| !p.is_empty())
            .copied()
            .unwrap_or_default()
    }

    fn total(&self) -> u64 {
        self.iter().map(|p| p.len() as u64).sum()
    }
}

impl<const N: usize> Pieces for [&[u8]; N] {
    fn each(&self, f: &mut dyn FnMut(&[u8])) {
        Pieces::each(self.as_slice(), f);
    }

    fn first(&self) -> &[u8] {
        Pieces::first(self.as_slice())
    }

    fn total(&self) -> u64 {
        Pieces::total(self.as_slice())
    }
}

/// Whether `parts` hold all of `n` bytes sent or received.
fn seen_all(parts: &dyn Pieces, n: u64) -> bool {
    parts.total() >= n
}

/// Bytes of an answer's status line that tell whether it is an HTTP/1.x interim answer.
const STATUS_LEAD: usize = 13;

/// Whether an answer on a plain connection whose first bytes are `lead` (at most
/// [`STATUS_LEAD`]) is an HTTP/1.x interim answer: a status line `HTTP/1.x 1nn` that is not
/// 101 (which switches the connection to another protocol: the request's answer). `None`
/// while `lead` is too short to tell. A `100 Continue` asks the client for the body of the
/// request it answers (`Expect: 100-continue`: boto3's S3 uploads, curl's large posts); a
/// `103 Early Hints` comes before the answer.
fn interim_status(lead: &[u8]) -> Option<bool> {
    for (i, &b) in lead.iter().enumerate() {
        let fits = match i {
            0..=6 => b"HTTP/1.".get(i) == Some(&b),
            7 | 10 | 11 => b.is_ascii_digit(),
            8 => b == b' ',
            9 => b == b'1',
            _ => matches!(b, b' ' | b'\r' | b'\n'),
        };
        if !fits || (i == 11 && lead.get(10) == Some(&b'0') && b == b'1') {
            return Some(false);
        }
    }
    (lead.len() >= STATUS_LEAD).then_some(true)
}

/// The first bytes of an answer on a plain connection as they come, and how far an interim
/// answer's head is to its end (bytes of `\r\n\r\n` matched).
#[derive(Clone, Copy, Debug)]
struct Lead {
    bytes: [u8; STATUS_LEAD],
    len: u8,
    blank: u8,
}

impl Lead {
    const NONE: Lead = Lead {
        bytes: [0; STATUS_LEAD],
        len: 0,
        blank: 0,
    };

    /// Takes the bytes of `data` the status line still needs; returns the rest.
    fn take<'d>(&mut self, data: &'d [u8]) -> &'d [u8] {
        let have = usize::from(self.len);
        let n = STATUS_LEAD.saturating_sub(have).min(data.len());
        if let (Some(dst), Some(src)) = (self.bytes.get_mut(have..have + n), data.get(..n)) {
            dst.copy_from_slice(src);
            self.len = (have + n) as u8;
        }
        data.get(n..).unwrap_or_default()
    }

    fn status(&self) -> Option<bool> {
        interim_status(self.bytes.get(..usize::from(self.len)).unwrap_or_default())
    }

    /// Follows an interim head through `bytes` to its blank line: the bytes after it, if it
    /// ends in them.
    fn through_head<'d>(&mut self, bytes: &'d [u8]) -> Option<&'d [u8]> {
        for (i, &b) in bytes.iter().enumerate() {
            self.blank = match (self.blank, b) {
                (0 | 2, b'\r') => self.blank + 1,
                (1 | 3, b'\n') => self.blank + 1,
                (_, b'\r') => 1,
                _ => 0,
            };
            if self.blank == 4 {
                return Some(bytes.get(i + 1..).unwrap_or_default());
            }
        }
        None
    }
}

/// The client's connection preface of HTTP/2 (RFC 9113, 3.4): a plain connection whose first
/// bytes it is speaks HTTP/2 without TLS (h2c: gRPC's insecure channels).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types and flags of HTTP/2 that tell requests and answers.
const H2_DATA: u8 = 0x0;
const H2_HEADERS: u8 = 0x1;
const H2_RST_STREAM: u8 = 0x3;
const H2_END_STREAM: u8 = 0x1;

/// Requests of one HTTP/2 connection followed at once, from their first frame to their
/// answer's; one more is counted as a call when it is sent.
const H2_STREAMS: usize = 8;

/// A frame header as it passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FrameHead {
    kind: u8,
    flags: u8,
    stream: u32,
}

/// Finds the frame headers in one direction's bytes as they come, in whatever pieces: the
/// bytes of a frame's payload (or of the preface) still to pass, and a header's first bytes.
#[derive(Clone, Copy, Debug)]
struct FrameReader {
    skip: u32,
    head: [u8; 9],
    head_len: u8,
}

impl FrameReader {
    const NONE: FrameReader = FrameReader {
        skip: 0,
        head: [0; 9],
        head_len: 0,
    };

    /// Passes `data`, calling `f` with each frame header completed in it.
    fn feed(&mut self, mut data: &[u8], mut f: impl FnMut(FrameHead)) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = (self.skip as usize).min(data.len());
                self.skip -= n as u32;
                data = data.get(n..).unwrap_or_default();
                continue;
            }
            let have = usize::from(self.head_len);
            let n = (9 - have).min(data.len());
            if let (Some(dst), Some(src)) = (self.head.get_mut(have..have + n), data.get(..n)) {
                dst.copy_from_slice(src);
            }
            self.head_len = (have + n) as u8;
            data = data.get(n..).unwrap_or_default();
            if self.head_len == 9 {
                let h = self.head;
                self.head_len = 0;
                self.skip = u32::from_be_bytes([0, h[0], h[1], h[2]]);
                f(FrameHead {
                    kind: h[3],
                    flags: h[4],
                    stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
                });
            }
        }
    }
}

/// An h2c connection, followed by its frames: a call is a request (a stream the client opens
/// with its HEADERS), counted when the answer's first frame on that stream comes back (or the
/// stream is reset); the wait runs while at least one request was sent whole (its
/// END_STREAM) and its answer has not begun, so that requests in flight together are not
/// counted twice. Frames of the connection itself (SETTINGS, PING, WINDOW_UPDATE) are no
/// call. Bytes of it not seen (a `writev` of more buffers than the hooks look at) put it out
/// of step: from then on its calls are not counted.
#[derive(Clone, Copy, Debug)]
struct H2 {
    on: bool,
    lost: bool,
    out: FrameReader,
    inn: FrameReader,
    /// The highest stream the client opened.
    last: u32,
    /// Requests not answered yet: their stream, and whether sent whole (waiting).
    streams: [(u32, bool); H2_STREAMS],
    /// Of those, how many wait.
    waiting: u8,
}

impl H2 {
    const NONE: H2 = H2 {
        on: false,
        lost: false,
        out: FrameReader::NONE,
        inn: FrameReader::NONE,
        last: 0,
        streams: [(0, false); H2_STREAMS],
        waiting: 0,
    };
}

impl Conn {
    const FREE: Conn = Conn {
        used: false,
        fd: 0,
        name: NameId::Others,
        phase: Phase::Idle,
        at_ns: 0,
        turn_out: 0,
        turn_in: 0,
        tls: Tls::Unknown,
        tls_turns: 0,
        tickets_first: false,
        last_in_ns: 0,
        turn_wait_ns: 0,
        pause_ns: 0,
        datagram: false,
        connect_pending: false,
        connect_ns: 0,
        lead: Lead::NONE,
        h2: H2::NONE,
    };

    /// Reads the first bytes of an answer in `Judging` or `InterimHead`: `data`, the seen ones
    /// of this receive (all of them when `all_seen`). The call is counted in `figures` once
    /// its answer is told not to be an interim one, or once bytes go unseen; an interim one
    /// read to its end leaves the call waiting (`Interim`, since `now_ns`), unless the answer
    /// follows it at once.
    fn read_answer_head(&mut self, data: &[u8], all_seen: bool, now_ns: u64, f: &mut Figures) {
        let mut rest = data;
        loop {
            match self.phase {
                Phase::Judging => {
                    rest = self.lead.take(rest);
                    match self.lead.status() {
                        None if rest.is_empty() && all_seen => return,
                        Some(true) => {
                            // The head is followed to its end from its first byte (it cannot
                            // end within the lead: the status line ends after it).
                            self.phase = Phase::InterimHead;
                            let lead = self.lead.bytes;
                            let _ = self.lead.through_head(&lead);
                        }
                        _ => {
                            self.phase = Phase::Receiving;
                            f.calls = f.calls.saturating_add(1);
                            return;
                        }
                    }
                }
                Phase::InterimHead => match self.lead.through_head(rest) {
                    Some([]) if all_seen => {
                        self.phase = Phase::Interim;
                        self.at_ns = now_ns;
                        return;
                    }
                    Some(after) if !after.is_empty() => {
                        // The answer follows at once (or another interim one).
                        rest = after;
                        self.phase = Phase::Judging;
                        self.lead = Lead::NONE;
                    }
                    None if all_seen => return,
                    _ => {
                        self.phase = Phase::Receiving;
                        f.calls = f.calls.saturating_add(1);
                        return;
                    }
                },
                _ => return,
            }
        }
    }

    /// The client sent `parts` (all of the `n` bytes when `whole`) on an h2c connection at
    /// `now_ns`: requests opened and sent whole.
    fn h2_sent(&mut self, parts: &dyn Pieces, whole: bool, now_ns: u64, f: &mut Figures) {
        if !whole {
            self.h2.lost = true;
        }
        if self.h2.lost {
            return;
        }
        let mut out = self.h2.out;
        parts.each(&mut |part| {
            out.feed(part, |h| {
                let fresh = h.kind == H2_HEADERS && h.stream > self.h2.last && h.stream % 2 == 1;
                if fresh {
                    self.h2.last = h.stream;
                    match self.h2.streams.iter_mut().find(|(s, _)| *s == 0) {
                        Some(slot) => *slot = (h.stream, false),
                        // No room to follow it: a call, its wait not counted.
                        None => f.calls = f.calls.saturating_add(1),
                    }
                }
                let ended = h.flags & H2_END_STREAM != 0 && matches!(h.kind, H2_DATA | H2_HEADERS);
                if ended || h.kind == H2_RST_STREAM {
                    self.h2_stream_ended(h.stream, h.kind == H2_RST_STREAM, now_ns, f);
                }
            });
        });
        self.h2.out = out;
    }

    /// The client's request on `stream` was sent whole (or, `cancelled`, reset).
    fn h2_stream_ended(&mut self, stream: u32, cancelled: bool, now_ns: u64, f: &mut Figures) {
        let Some(i) = self
            .h2
            .streams
            .iter()
            .position(|(s, _)| *s == stream && stream != 0)
        else {
            return;
        };
        let waited = self.h2.streams.get(i).is_some_and(|(_, w)| *w);
        if cancelled {
            if let Some(slot) = self.h2.streams.get_mut(i) {
                *slot = (0, false);
            }
            if waited {
                self.h2_wait_ends(now_ns, f);
            }
            return;
        }
        if !waited {
            if let Some(slot) = self.h2.streams.get_mut(i) {
                slot.1 = true;
            }
            if self.h2.waiting == 0 {
                self.phase = Phase::Sent;
                self.at_ns = now_ns;
                self.turn_out = 0;
                self.turn_in = 0;
            }
            self.h2.waiting = self.h2.waiting.saturating_add(1);
        }
    }

    /// One request fewer waits: where none does any more, the wait so far counts.
    fn h2_wait_ends(&mut self, now_ns: u64, f: &mut Figures) {
        self.h2.waiting = self.h2.waiting.saturating_sub(1);
        if self.h2.waiting == 0 {
            f.wait_ns = f.wait_ns.saturating_add(now_ns.saturating_sub(self.at_ns));
            self.phase = Phase::Receiving;
        }
    }

    /// The server sent `parts` (all of the `n` bytes when `whole`) at `now_ns`: answers begun.
    fn h2_received(&mut self, parts: &dyn Pieces, whole: bool, now_ns: u64, f: &mut Figures) {
        if !whole {
            self.h2.lost = true;
        }
        if self.h2.lost {
            return;
        }
        let mut inn = self.h2.inn;
        parts.each(&mut |part| {
            inn.feed(part, |h| {
                if !matches!(h.kind, H2_HEADERS | H2_RST_STREAM) || h.stream == 0 {
                    return;
                }
                let Some(i) = self.h2.streams.iter().position(|(s, _)| *s == h.stream) else {
                    return;
                };
                let waited = self.h2.streams.get(i).is_some_and(|(_, w)| *w);
                if let Some(slot) = self.h2.streams.get_mut(i) {
                    *slot = (0, false);
                }
                f.calls = f.calls.saturating_add(1);
                if waited {
                    self.h2_wait_ends(now_ns, f);
                }
            });
        });
        self.h2.inn = inn;
    }

    /// The connect not counted yet, into `figures` (see [`Conn::datagram`]).
    fn count_pending_connect(&mut self, figures: &mut Figures) {
        if self.connect_pending {
            self.connect_pending = false;
            figures.connects = 1;
            figures.connect_ns = self.connect_ns;
        }
    }
}

/// The id of `text` among the first `used` of `names`, kept there from now on if there is
/// room (else the others').
fn intern_in(names: &mut [Name], used: &mut usize, text: &str) -> NameId {
    let text = crate::text::bounded_str(text, NAME_LEN);
    let kept = names.get(..*used).unwrap_or_default();
    if let Some(i) = kept.iter().position(|n| n.as_str() == text) {
        return NameId::Kept(i as u8);
    }
    match names.get_mut(*used) {
        Some(slot) => {
            slot.set(text);
            *used += 1;
            NameId::Kept((*used - 1) as u8)
        }
        None => NameId::Others,
    }
}

/// A call still waiting: what a timeout's record names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InFlight<'a> {
    pub name: &'a str,
    pub fd: i32,
    /// Connecting, else waiting for an answer.
    pub connecting: bool,
    /// Since the connect began, or since the last byte went out.
    pub age_ns: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
}

/// The process's connections and the names it knows (one per process; the figures go to a
/// [`Calls`] per invoke).
pub struct Downstream {
    names: [Name; MAX_NAMES],
    names_used: usize,
    resolved: [(IpAddr, NameId); MAX_RESOLVED],
    resolved_used: usize,
    resolved_next: usize,
    conns: [Conn; MAX_CONNS],
    /// One more than the highest slot of `conns` ever used.
    high: usize,
}

impl Default for Downstream {
    fn default() -> Self {
        Downstream::new()
    }
}

impl Downstream {
    pub const fn new() -> Downstream {
        Downstream {
            names: [Name::EMPTY; MAX_NAMES],
            names_used: 0,
            resolved: [(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), NameId::Others); MAX_RESOLVED],
            resolved_used: 0,
            resolved_next: 0,
            conns: [Conn::FREE; MAX_CONNS],
            high: 0,
        }
    }

    /// The text of a name.
    pub fn name(&self, id: NameId) -> &str {
        match id {
            NameId::Kept(i) => self
                .names
                .get(usize::from(i))
                .map_or(OTHERS, |n| n.as_str()),
            NameId::Others => OTHERS,
        }
    }

    /// The id of `text`, kept from now on if there is room (else the others').
    pub fn intern(&mut self, text: &str) -> NameId {
        intern_in(&mut self.names, &mut self.names_used, text)
    }

    /// The host looked `name` up and got `addrs`, in `took_ns`: its connections to them are
    /// named so; the lookup's time is the name's.
    pub fn looked_up(&mut self, name: &str, addrs: &[IpAddr], took_ns: u64) -> Delta {
        let id = self.intern(name);
        for addr in addrs {
            let addr = &addr.to_canonical();
            let known = self
                .resolved
                .get_mut(..self.resolved_used)
                .unwrap_or_default()
                .iter_mut()
                .find(|(a, _)| a == addr);
            match known {
                Some(entry) => entry.1 = id,
                None => {
                    if let Some(slot) = self.resolved.get_mut(self.resolved_next) {
                        *slot = (*addr, id);
                    }
                    self.resolved_next = (self.resolved_next + 1) % MAX_RESOLVED;
                    self.resolved_used = (self.resolved_used + 1).min(MAX_RESOLVED);
                }
            }
        }
        Delta {
            name: id,
            figures: Figures {
                lookups: 1,
                lookup_ns: took_ns,
                ..Figures::default()
            },
        }
    }

    /// The name a connection to `addr` goes by: the name a lookup that returned it asked for,
    /// else the address. An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`, what a dual-stack
    /// socket connects to: the JDK's) is that IPv4 address.
    fn name_of(&mut self, addr: &SocketAddr) -> NameId {
        let ip = addr.ip().to_canonical();
        let addr = &SocketAddr::new(ip, addr.port());
        let looked_up = self
            .resolved
            .get(..self.resolved_used)
            .unwrap_or_default()
            .iter()
            .find(|(a, _)| *a == ip)
            .map(|(_, id)| *id);
        match looked_up {
            Some(id) => id,
            None => {
                let mut buf = [0u8; 64];
                let mut out = Out::new(&mut buf);
                let _ = std::fmt::Write::write_fmt(&mut FmtOut(&mut out), format_args!("{addr}"));
                let text = std::str::from_utf8(out.written()).unwrap_or_default();
                self.intern(text)
            }
        }
    }

    /// The slots that have been used (slots are taken lowest first): the ones to look at.
    fn live(&self) -> &[Conn] {
        self.conns.get(..self.high).unwrap_or_default()
    }

    fn live_mut(&mut self) -> &mut [Conn] {
        self.conns.get_mut(..self.high).unwrap_or_default()
    }

    fn conn(&mut self, fd: i32) -> Option<&mut Conn> {
        self.live_mut().iter_mut().find(|c| c.used && c.fd == fd)
    }

    /// Whether `fd` is a connection followed here.
    pub fn follows(&self, fd: i32) -> bool {
        self.live().iter().any(|c| c.used && c.fd == fd)
    }

    /// The host began a connect of `fd` to `addr` at `now_ns` (a connect that completes at once
    /// is followed by [`Downstream::connected`] at once). False when no slot is free.
    pub fn connecting(&mut self, fd: i32, addr: &SocketAddr, now_ns: u64) -> bool {
        let name = self.name_of(addr);
        // A connect asked again while it is under way (a client that calls `connect` to learn
        // how it went) is the same one.
        if let Some(c) = self.conn(fd)
            && c.phase == Phase::Connecting
            && c.name == name
        {
            return true;
        }
        // An fd reused without a close seen (a `dup2` over it) is a new connection.
        let slot = match self.live().iter().position(|c| c.used && c.fd == fd) {
            Some(i) => Some(i),
            None => self.conns.iter().position(|c| !c.used),
        };
        if let Some(i) = slot {
            self.high = self.high.max(i + 1);
        }
        match slot.and_then(|i| self.conns.get_mut(i)) {
            Some(c) => {
                *c = Conn {
                    used: true,
                    fd,
                    name,
                    phase: Phase::Connecting,
                    at_ns: now_ns,
                    turn_out: 0,
                    ..Conn::FREE
                };
                true
            }
            None => false,
        }
    }

    /// The socket `fd` is connecting is a datagram socket (see [`Conn::datagram`]).
    pub fn datagram(&mut self, fd: i32) {
        if let Some(c) = self.conn(fd) {
            c.datagram = true;
        }
    }

    /// `fd`'s connect ended at `now_ns`: made, or failed with `errno`.
    pub fn connected(&mut self, fd: i32, errno: Option<i32>, now_ns: u64) -> Option<Delta> {
        let c = self.conn(fd)?;
        if c.phase != Phase::Connecting {
            return None;
        }
        let mut figures = Figures {
            connects: 1,
            connect_ns: now_ns.saturating_sub(c.at_ns),
            ..Figures::default()
        };
        let name = c.name;
        match errno {
            None if c.datagram => {
                c.phase = Phase::Idle;
                c.connect_pending = true;
                c.connect_ns = figures.connect_ns;
                return None;
            }
            None => c.phase = Phase::Idle,
            Some(e) => {
                count_failure(&mut figures, Failure::of_errno(e));
                *c = Conn::FREE;
            }
        }
        Some(Delta { name, figures })
    }

    /// The host sent `n` bytes on `fd` at `now_ns`: `parts`, in order, as far as they were
    /// seen (a `writev`'s buffers; none for `sendfile`, `splice`).
    pub fn sent(&mut self, fd: i32, n: u64, now_ns: u64, parts: &dyn Pieces) -> Option<Delta> {
        let c = self.conn(fd)?;
        let mut figures = Figures {
            bytes_out: n,
            ..Figures::default()
        };
        c.count_pending_connect(&mut figures);
        if c.phase == Phase::Connecting {
            // A non-blocking connect's first send says it was made (by then at the latest).
            figures.connects = 1;
            figures.connect_ns = now_ns.saturating_sub(c.at_ns);
            c.phase = Phase::Idle;
        }
        // (Looked at only while the connection's kind is not known yet, or its handshake.)
        let head = match c.tls {
            Tls::Unknown | Tls::Handshake => parts.first(),
            Tls::Plain | Tls::Done => &[],
        };
        if c.tls == Tls::Unknown && head.starts_with(H2_PREFACE.get(..14).unwrap_or_default()) {
            c.tls = Tls::Plain;
            c.h2 = H2 {
                on: true,
                out: FrameReader {
                    skip: H2_PREFACE.len() as u32,
                    ..FrameReader::NONE
                },
                ..H2::NONE
            };
        }
        if c.h2.on {
            c.h2_sent(parts, seen_all(parts, n), now_ns, &mut figures);
            c.turn_out = c.turn_out.saturating_add(n);
            return Some(Delta {
                name: c.name,
                figures,
            });
        }
        if c.phase == Phase::Judging {
            // The client did not wait for the status line: its answer began, the call is one.
            figures.calls = 1;
        }
        if matches!(
            c.phase,
            Phase::Idle | Phase::Receiving | Phase::Connecting | Phase::Judging
        ) {
            // A new turn.
            c.turn_out = 0;
            c.turn_in = 0;
            c.tickets_first = false;
            match c.tls {
                Tls::Unknown if is_tls_hello(head) => {
                    c.tls = Tls::Handshake;
                    figures.tls_handshakes = 1;
                }
                Tls::Unknown if !head.is_empty() => c.tls = Tls::Plain,
                Tls::Handshake
                    if matches!(
                        head.first(),
                        Some(&(TLS_APPLICATION_DATA | TLS_CHANGE_CIPHER_SPEC))
                    ) =>
                {
                    c.tls = Tls::Done;
                    c.tickets_first = c.tls_turns == 1;
                }
                _ => {}
            }
        }
        c.phase = Phase::Sent;
        c.at_ns = now_ns;
        c.turn_out = c.turn_out.saturating_add(n);
        Some(Delta {
            name: c.name,
            figures,
        })
    }

    /// The host received `n` bytes on `fd` at `now_ns`, the first of them `data` (as many as
    /// were seen; none where they were not): the first of an answer ends a call's wait, unless
    /// it is an interim one on a plain connection (see [`interim_status`]): then the wait so
    /// far counts and the call goes on. (The end of the stream, 0 bytes, ends none: the close
    /// that follows does.)
    pub fn received(&mut self, fd: i32, n: u64, now_ns: u64, parts: &dyn Pieces) -> Option<Delta> {
        if n == 0 {
            return None;
        }
        let c = self.conn(fd)?;
        let mut figures = Figures {
            bytes_in: n,
            ..Figures::default()
        };
        c.count_pending_connect(&mut figures);
        if c.phase == Phase::Connecting {
            // A non-blocking connect to a server that speaks first: made by then.
            figures.connects = 1;
            figures.connect_ns = now_ns.saturating_sub(c.at_ns);
        }
        if c.h2.on {
            c.h2_received(parts, seen_all(parts, n), now_ns, &mut figures);
            c.last_in_ns = now_ns;
            c.turn_in = c.turn_in.saturating_add(n);
            return Some(Delta {
                name: c.name,
                figures,
            });
        }
        if matches!(c.phase, Phase::Sent | Phase::Interim) {
            let wait_ns = now_ns.saturating_sub(c.at_ns);
            c.phase = Phase::Receiving;
            if c.tls == Tls::Handshake {
                figures.tls_ns = wait_ns;
                c.tls_turns = c.tls_turns.saturating_add(1);
            } else {
                figures.wait_ns = wait_ns;
                // Only an answer that begins as an HTTP/1.x status line may be an interim one.
                if c.tls == Tls::Plain && parts.first().first() == Some(&b'H') {
                    c.phase = Phase::Judging;
                    c.lead = Lead::NONE;
                } else {
                    figures.calls = 1;
                }
            }
            c.turn_wait_ns = wait_ns;
            c.pause_ns = wait_ns;
        } else if c.phase == Phase::Receiving && c.tickets_first {
            // A TLS 1.3 server sends its session tickets as soon as the client's Finished
            // arrives, before it answers the request that came with it: the turn's wait runs to
            // the bytes that came after its longest pause (the answer), not to the first.
            let pause = now_ns.saturating_sub(c.last_in_ns);
            if pause > c.pause_ns {
                c.pause_ns = pause;
                let wait_ns = now_ns.saturating_sub(c.at_ns);
                figures.wait_ns = wait_ns.saturating_sub(c.turn_wait_ns);
                c.turn_wait_ns = wait_ns;
            }
        }
        match c.phase {
            Phase::Judging | Phase::InterimHead => {
                // Piece after piece; whether bytes went unseen is known at the last.
                let (total, all) = (parts.total(), seen_all(parts, n));
                let mut read = 0;
                parts.each(&mut |part| {
                    read += part.len() as u64;
                    c.read_answer_head(part, read < total || all, now_ns, &mut figures);
                });
                if total == 0 {
                    c.read_answer_head(&[], false, now_ns, &mut figures);
                }
            }
            _ => c.phase = Phase::Receiving,
        }
        c.last_in_ns = now_ns;
        c.turn_in = c.turn_in.saturating_add(n);
        Some(Delta {
            name: c.name,
            figures,
        })
    }

    /// A call on `fd` failed with `errno` (a reset, a timeout); the connection is no longer
    /// followed when the failure ends it.
    pub fn failed(&mut self, fd: i32, errno: i32) -> Option<Delta> {
        let failure = Failure::of_errno(errno)?;
        let c = self.conn(fd)?;
        let name = c.name;
        let mut figures = Figures::default();
        c.count_pending_connect(&mut figures);
        if c.phase == Phase::Connecting {
            // A non-blocking connect's failure, told by the first call on it.
            figures.connects = 1;
        }
        if c.phase == Phase::Judging {
            // Its answer had begun.
            figures.calls = 1;
        }
        count_failure(&mut figures, Some(failure));
        *c = Conn::FREE;
        Some(Delta { name, figures })
    }

    /// The host closed `fd`.
    pub fn closed(&mut self, fd: i32) {
        if let Some(c) = self.conn(fd) {
            *c = Conn::FREE;
        }
    }

    /// An invoke begins now (`now`, read only where a call is under way): each connection
    /// still in a call (or a connect) begun before it — carried over from the work of an
    /// earlier one — is one carried over of its name, to `f`, and its wait is counted from now
    /// on (the invoke's own part of it).
    pub fn carry_into(&mut self, now: impl Fn() -> u64, mut f: impl FnMut(Delta)) {
        let mut now_ns = None;
        for c in self.live_mut() {
            if c.used && matches!(c.phase, Phase::Sent | Phase::Interim | Phase::Connecting) {
                let now_ns = *now_ns.get_or_insert_with(&now);
                c.at_ns = c.at_ns.max(now_ns);
                f(Delta {
                    name: c.name,
                    figures: Figures {
                        carried_over: 1,
                        ..Figures::default()
                    },
                });
            }
        }
    }

    /// What is known of followed `fd` at `now_ns`: its remote name, and how long its call
    /// under way (or its connect) has waited; `None` when it is not followed.
    pub fn about_fd(&self, fd: i32, now_ns: u64) -> Option<(&str, Option<u64>)> {
        let c = self.live().iter().find(|c| c.used && c.fd == fd)?;
        let waiting = matches!(c.phase, Phase::Sent | Phase::Interim | Phase::Connecting);
        Some((
            self.name(c.name),
            waiting.then(|| now_ns.saturating_sub(c.at_ns)),
        ))
    }

    /// Each call still waiting at `now_ns` (connecting, or sent and not yet answered), the
    /// longest waiting first, to `f`.
    pub fn in_flight(&self, now_ns: u64, mut f: impl FnMut(InFlight)) {
        let mut waiting: [Option<&Conn>; MAX_CONNS] = [None; MAX_CONNS];
        let mut n = 0;
        for c in self.live() {
            if c.used
                && matches!(c.phase, Phase::Sent | Phase::Interim | Phase::Connecting)
                && let Some(slot) = waiting.get_mut(n)
            {
                *slot = Some(c);
                n += 1;
            }
        }
        let waiting = waiting.get_mut(..n).unwrap_or_default();
        insertion_sort_by_key(waiting, |c| c.map_or(u64::MAX, |c| c.at_ns));
        for c in waiting.iter().flatten() {
            f(InFlight {
                name: self.name(c.name),
                fd: c.fd,
                connecting: c.phase == Phase::Connecting,
                age_ns: now_ns.saturating_sub(c.at_ns),
                bytes_out: c.turn_out,
                bytes_in: c.turn_in,
            });
        }
    }
}

/// Sorts `items` (a few dozen at most) by `key`, stably: a few instructions of code where
/// the standard library's sorts are kilobytes for each type they sort.
fn insertion_sort_by_key<T: Copy, K: Ord>(items: &mut [T], key: impl Fn(&T) -> K) {
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 {
            let (Some(a), Some(b)) = (items.get(j - 1), items.get(j)) else {
                break;
            };
            if key(a) <= key(b) {
                break;
            }
            items.swap(j - 1, j);
            j -= 1;
        }
    }
}

impl Downstream {
    /// A timeout record's [`IN_FLIGHT_PROPERTY`]: the calls still waiting at `now_ns`, the
    /// longest waiting first (at most [`SHOWN`]), each with its name, how long it has waited,
    /// and its turn's bytes so far; `"connecting": true` for a connect under way. False (and
    /// nothing written) when none waits.
    pub fn render_in_flight(&self, now_ns: u64, out: &mut Out) -> bool {
        let mut n = 0;
        self.in_flight(now_ns, |c| {
            if n >= SHOWN {
                return;
            }
            out.byte(if n == 0 { b'[' } else { b',' });
            out.bytes(b"{\"name\":\"");
            let _ = crate::json::escape_json(c.name.as_bytes(), |piece| {
                out.bytes(piece);
                Some(())
            });
            out.bytes(b"\",\"ageMs\":");
            Number::Scaled(c.age_ns / 1000, 3).write_to(out);
            if c.connecting {
                out.bytes(b",\"connecting\":true");
            }
            for (key, value) in [("bytesOut", c.bytes_out), ("bytesIn", c.bytes_in)] {
                if value > 0 {
                    out.bytes(b",\"");
                    out.str(key);
                    out.bytes(b"\":");
                    Number::int(value).write_to(out);
                }
            }
            out.byte(b'}');
            n += 1;
        });
        if n > 0 {
            out.byte(b']');
        }
        n > 0
    }
}

fn count_failure(figures: &mut Figures, failure: Option<Failure>) {
    match failure {
        Some(Failure::Refused) => figures.refused += 1,
        Some(Failure::Reset) => figures.reset += 1,
        Some(Failure::TimedOut) => figures.timed_out += 1,
        None => {}
    }
}

/// `fmt::Write` into an [`Out`] (an address's text, on the stack).
struct FmtOut<'o, 'b>(&'o mut Out<'b>);

impl std::fmt::Write for FmtOut<'_, '_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.str(s);
        Ok(())
    }
}

/// The downstream figures of one invoke, by name. (`repr(C)`, the flags first: an invoke
/// without calls reads those alone, on the page its slot begins in.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Calls {
    /// Whether a figure was added: an invoke without downstream calls costs a look at this,
    /// not at every name's figures.
    touched: bool,
    /// Some figures were of calls made while other invokes were open too, on a thread none
    /// of them was read on: they are in each of those invokes' figures.
    pub shared: bool,
    /// Socket calls the process's ledger could not count (see the library's `ledger`).
    pub missed: u32,
    by_name: [Figures; MAX_NAMES],
    others: Figures,
}

impl Default for Calls {
    fn default() -> Self {
        Calls::NONE
    }
}

impl Calls {
    pub const NONE: Calls = Calls {
        touched: false,
        shared: false,
        missed: 0,
        by_name: [Figures::ZERO; MAX_NAMES],
        others: Figures::ZERO,
    };

    pub fn add(&mut self, delta: &Delta) {
        if delta.figures.is_empty() {
            return;
        }
        self.touched = true;
        let to = match delta.name {
            NameId::Kept(i) => self.by_name.get_mut(usize::from(i)),
            NameId::Others => None,
        };
        to.unwrap_or(&mut self.others).add(&delta.figures);
    }

    pub fn is_empty(&self) -> bool {
        !self.touched && self.missed == 0
    }

    /// The figures of `name`.
    pub fn of(&self, name: NameId) -> Figures {
        match name {
            NameId::Kept(i) => self
                .by_name
                .get(usize::from(i))
                .copied()
                .unwrap_or_default(),
            NameId::Others => self.others,
        }
    }

    /// All of the invoke's calls, summed.
    pub fn total(&self) -> Figures {
        let mut t = self.others;
        for f in &self.by_name {
            t.add(f);
        }
        t
    }

    /// The record's `downstream` property: an array of one object per name, the [`SHOWN`]
    /// slowest by wait (then by calls), the rest summed into one named [`OTHERS`]; members
    /// that are 0 are left out. Names come from `known`.
    pub fn render(&self, known: &Downstream, out: &mut Out) {
        self.render_named(&|id| known.name(id), out);
    }

    /// [`Calls::render`], names from `name`.
    fn render_named<'n>(&self, name: &dyn Fn(NameId) -> &'n str, out: &mut Out) {
        let mut order: [u8; MAX_NAMES] = [0; MAX_NAMES];
        let mut n = 0;
        for (i, f) in self.by_name.iter().enumerate() {
            if !f.is_empty()
                && let Some(slot) = order.get_mut(n)
            {
                *slot = i as u8;
                n += 1;
            }
        }
        let order = order.get_mut(..n).unwrap_or_default();
        let key = |i: &u8| {
            let f = self
                .by_name
                .get(usize::from(*i))
                .copied()
                .unwrap_or_default();
            (std::cmp::Reverse(f.wait_ns), std::cmp::Reverse(f.calls), *i)
        };
        insertion_sort_by_key(order, key);
        let mut rest = self.others;
        out.byte(b'[');
        let mut first = true;
        for (shown, i) in order.iter().enumerate() {
            let f = self
                .by_name
                .get(usize::from(*i))
                .copied()
                .unwrap_or_default();
            if shown >= SHOWN {
                rest.add(&f);
                continue;
            }
            entry(out, &mut first, name(NameId::Kept(*i)), &f, self.shared);
        }
        if !rest.is_empty() {
            entry(out, &mut first, OTHERS, &rest, self.shared);
        }
        if self.missed > 0 {
            if !first {
                out.byte(b',');
            }
            out.bytes(b"{\"missed\":");
            Number::int(u64::from(self.missed)).write_to(out);
            out.byte(b'}');
        }
        out.byte(b']');
    }
}

/// One name's object in [`Calls::render`].
fn entry(out: &mut Out, first: &mut bool, name: &str, f: &Figures, shared: bool) {
    if !std::mem::take(first) {
        out.byte(b',');
    }
    out.bytes(b"{\"name\":\"");
    let _ = crate::json::escape_json(name.as_bytes(), |piece| {
        out.bytes(piece);
        Some(())
    });
    out.byte(b'"');
    let ms = |ns: u64| Number::Scaled(ns / 1000, 3);
    let members: [(&str, Number, bool); 14] = [
        ("calls", Number::int(u64::from(f.calls)), f.calls > 0),
        ("waitMs", ms(f.wait_ns), f.calls > 0),
        ("bytesOut", Number::int(f.bytes_out), f.bytes_out > 0),
        ("bytesIn", Number::int(f.bytes_in), f.bytes_in > 0),
        (
            "connects",
            Number::int(u64::from(f.connects)),
            f.connects > 0,
        ),
        ("connectMs", ms(f.connect_ns), f.connects > 0),
        ("lookups", Number::int(u64::from(f.lookups)), f.lookups > 0),
        ("lookupMs", ms(f.lookup_ns), f.lookups > 0),
        (
            "tlsHandshakes",
            Number::int(u64::from(f.tls_handshakes)),
            f.tls_handshakes > 0,
        ),
        ("tlsMs", ms(f.tls_ns), f.tls_handshakes > 0 || f.tls_ns > 0),
        ("refused", Number::int(u64::from(f.refused)), f.refused > 0),
        ("reset", Number::int(u64::from(f.reset)), f.reset > 0),
        (
            "timedOut",
            Number::int(u64::from(f.timed_out)),
            f.timed_out > 0,
        ),
        (
            "carriedOver",
            Number::int(u64::from(f.carried_over)),
            f.carried_over > 0,
        ),
    ];
    for (key, value, shown) in members {
        if shown {
            out.bytes(b",\"");
            out.str(key);
            out.bytes(b"\":");
            value.write_to(out);
        }
    }
    if shared {
        out.bytes(b",\"shared\":true");
    }
    out.byte(b'}');
}

/// The member that makes a channel line one of a child process's figures (see
/// [`render_child_lines`]); its value is the child's pid.
pub const CHILD_LINE_KEY: &str = "downstreamOf";

/// A child line's figure members, as written: nanoseconds, not the record's milliseconds.
const CHILD_MEMBERS: [&str; 14] = [
    "calls",
    "waitNs",
    "connects",
    "connectNs",
    "lookups",
    "lookupNs",
    "bytesOut",
    "bytesIn",
    "refused",
    "reset",
    "timedOut",
    "carriedOver",
    "tlsHandshakes",
    "tlsNs",
];

impl Figures {
    /// The figures in [`CHILD_MEMBERS`]' order.
    fn as_members(&self) -> [u64; 14] {
        [
            u64::from(self.calls),
            self.wait_ns,
            u64::from(self.connects),
            self.connect_ns,
            u64::from(self.lookups),
            self.lookup_ns,
            self.bytes_out,
            self.bytes_in,
            u64::from(self.refused),
            u64::from(self.reset),
            u64::from(self.timed_out),
            u64::from(self.carried_over),
            u64::from(self.tls_handshakes),
            self.tls_ns,
        ]
    }

    /// Sets the figure of member `key` of [`CHILD_MEMBERS`]; false when it is none of them.
    fn set_member(&mut self, key: &[u8], v: u64) -> bool {
        let small = u32::try_from(v).unwrap_or(u32::MAX);
        match key {
            b"calls" => self.calls = small,
            b"waitNs" => self.wait_ns = v,
            b"connects" => self.connects = small,
            b"connectNs" => self.connect_ns = v,
            b"lookups" => self.lookups = small,
            b"lookupNs" => self.lookup_ns = v,
            b"bytesOut" => self.bytes_out = v,
            b"bytesIn" => self.bytes_in = v,
            b"refused" => self.refused = small,
            b"reset" => self.reset = small,
            b"timedOut" => self.timed_out = small,
            b"carriedOver" => self.carried_over = small,
            b"tlsHandshakes" => self.tls_handshakes = small,
            b"tlsNs" => self.tls_ns = v,
            _ => return false,
        }
        true
    }
}

/// A process that never became a runtime (a function's child: a shell runtime's `curl`, a
/// handler's `subprocess`) hands the calls it made to the runtime that writes the record, as
/// lines of the custom-metrics channel appended at its exit: one per name of `calls` (names
/// from `known`), each `{"downstreamOf":PID,"since":NS,"until":NS,"name":…,"calls":…,…}`
/// with the span of monotonic time they were made in and the figures in nanoseconds (members
/// that are 0 left out). Whole lines only: those that do not fit in `out` are left out.
pub fn render_child_lines(
    calls: &Calls,
    known: &Downstream,
    pid: u32,
    (since_ns, until_ns): (u64, u64),
    out: &mut Out,
) {
    let names = calls
        .by_name
        .iter()
        .enumerate()
        .map(|(i, f)| (known.name(NameId::Kept(i as u8)), f))
        .chain(std::iter::once((OTHERS, &calls.others)));
    for (name, f) in names {
        if f.is_empty() {
            continue;
        }
        let start = out.len();
        out.bytes(b"{\"");
        out.str(CHILD_LINE_KEY);
        out.bytes(b"\":");
        out.decimal(u64::from(pid));
        out.bytes(b",\"since\":");
        out.decimal(since_ns);
        out.bytes(b",\"until\":");
        out.decimal(until_ns);
        out.bytes(b",\"name\":\"");
        let _ = crate::json::escape_json(name.as_bytes(), |piece| {
            out.bytes(piece);
            Some(())
        });
        out.byte(b'"');
        for (key, v) in CHILD_MEMBERS.iter().zip(f.as_members()) {
            if v > 0 {
                out.bytes(b",\"");
                out.str(key);
                out.bytes(b"\":");
                out.decimal(v);
            }
        }
        out.bytes(b"}\n");
        if out.overflowed() {
            out.truncate(start);
            return;
        }
    }
}

/// One line of [`render_child_lines`], read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildLine<'a> {
    pub pid: u32,
    pub since_ns: u64,
    pub until_ns: u64,
    /// The name, still escaped as in the line.
    pub name: &'a [u8],
    pub figures: Figures,
}

/// `raw`, a channel line, as a child's figures; `None` when it is not one (or not a whole one).
pub fn child_line(raw: &[u8]) -> Option<ChildLine<'_>> {
    use crate::json::Value;
    let (mut pid, mut since, mut until, mut name) = (None, None, None, None);
    let mut figures = Figures::default();
    let mut bad = false;
    let number = |v: Value<'_>| match v {
        Value::Number(n) => n.parse::<u64>().ok(),
        _ => None,
    };
    let ok = crate::json::members(raw, |key, v| match key {
        b"downstreamOf" => pid = number(v).and_then(|p| u32::try_from(p).ok()),
        b"since" => since = number(v),
        b"until" => until = number(v),
        b"name" => match v {
            Value::String(s) => name = Some(s),
            _ => bad = true,
        },
        _ => match number(v) {
            Some(n) => bad |= !figures.set_member(key, n),
            None => bad = true,
        },
    });
    if !ok || bad {
        return None;
    }
    Some(ChildLine {
        pid: pid?,
        since_ns: since?,
        until_ns: until?,
        name: name?,
        figures,
    })
}

/// The calls child processes handed over for one invoke ([`render_child_lines`]), by name:
/// what a per-request helper, which follows no connection of its own, puts on an invoke it
/// ends (a shell runtime's `curl` that posts the result, its handler's `curl`s the children).
#[derive(Debug)]
pub struct Handed {
    names: [Name; MAX_NAMES],
    names_used: usize,
    calls: Calls,
}

impl Handed {
    pub const NONE: Handed = Handed {
        names: [Name::EMPTY; MAX_NAMES],
        names_used: 0,
        calls: Calls::NONE,
    };

    /// Adds the lines of `bytes` (channel lines) of calls made from `since_ns` to `until_ns`.
    pub fn add_lines(&mut self, bytes: &[u8], since_ns: u64, until_ns: u64) {
        for raw in bytes.split(|b| *b == b'\n') {
            let Some(line) = child_line(raw) else {
                continue;
            };
            if line.since_ns < since_ns || line.until_ns > until_ns {
                continue;
            }
            let mut buf = [0u8; NAME_LEN + 8];
            let mut out = Out::new(&mut buf);
            if !crate::json::unescape(line.name, &mut out) || out.overflowed() {
                continue;
            }
            let Ok(text) = std::str::from_utf8(out.written()) else {
                continue;
            };
            let name = self.intern(text);
            self.calls.add(&Delta {
                name,
                figures: line.figures,
            });
        }
    }

    fn intern(&mut self, text: &str) -> NameId {
        if text == OTHERS {
            return NameId::Others;
        }
        intern_in(&mut self.names, &mut self.names_used, text)
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The record's `downstream` property ([`Calls::render`]) and the calls' sum; forgets them.
    pub fn take(&mut self, out: &mut Out) -> Sum {
        let names = &self.names;
        self.calls.render_named(
            &|id| match id {
                NameId::Kept(i) => names.get(usize::from(i)).map_or(OTHERS, |n| n.as_str()),
                NameId::Others => OTHERS,
            },
            out,
        );
        let sum = Sum::of(&self.calls.total());
        self.calls = Calls::NONE;
        self.names_used = 0;
        sum
    }
}

/// An invoke's downstream calls in sum: the catalog's opt-in `DownstreamCalls` and
/// `DownstreamTime`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sum {
    pub calls: u32,
    /// Waiting for answers, connecting, and looking names up.
    pub time_ns: u64,
}

impl Sum {
    pub fn of(f: &Figures) -> Sum {
        Sum {
            calls: f.calls,
            time_ns: f
                .wait_ns
                .saturating_add(f.connect_ns)
                .saturating_add(f.lookup_ns)
                .saturating_add(f.tls_ns),
        }
    }
}

/// The name of the record's property that [`Calls::render`] makes.
pub const PROPERTY: &str = "downstream";

/// The name of a timeout record's property that [`Downstream::render_in_flight`] makes.
pub const IN_FLIGHT_PROPERTY: &str = "waitingOn";

/// The name of the record's property of the calls made after the invoke's result was sent,
/// until the runtime asked for its next event ([`Calls::render`], as [`PROPERTY`]).
pub const POST_RESPONSE_PROPERTY: &str = "downstreamPostResponse";

/// Whether an invoke (by its request id's bytes) is still open.
pub type StillOpen<'a> = &'a dyn Fn(&[u8]) -> bool;

/// How the engine reaches the process's ledger of downstream calls (kept by the library, under
/// a lock of its own, apart from the engine: the hooks of every thread feed it).
#[derive(Clone, Copy)]
pub struct Link {
    /// Invoke `id`'s event was read on `thread`; `still_open` tells which invokes the ledger
    /// may still keep figures for (the rest ended some other way than by their result).
    pub opened: fn(id: &[u8], thread: u64, still_open: StillOpen),
    /// Renders invoke `id`'s figures into `out` ([`Calls::render`]) and forgets them: its
    /// result was sent, and the calls made from now until another invoke opens are its
    /// post-response ones. Their sum; `None` (nothing rendered) when there are none, or they
    /// could not be had now.
    pub take: fn(id: &[u8], out: &mut Out) -> Option<Sum>,
    /// Renders the calls made since invoke `id`'s result was sent into `out`, and forgets the
    /// invoke. False when there are none, or they could not be had now.
    pub after: fn(id: &[u8], out: &mut Out) -> bool,
    /// Renders the calls still waiting at `now_ns` into `out`
    /// ([`Downstream::render_in_flight`]): what a timed-out invoke was waiting on. False when
    /// there are none, or they could not be had now.
    pub waiting: fn(now_ns: u64, out: &mut Out) -> bool,
    /// Renders what each thread of the process is blocked in at `now_ns` into `out`
    /// ([`crate::blocked`]). False when there is nothing to say.
    pub blocked: fn(now_ns: u64, out: &mut Out) -> bool,
    /// Adds `figures` of remote name `name`, calls a child process of the environment made
    /// (see [`render_child_lines`]), to open invoke `id`'s (marked shared when `shared`).
    pub merge: fn(id: &[u8], name: &str, figures: &Figures, shared: bool),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    const MS: u64 = 1_000_000;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn render(calls: &Calls, d: &Downstream) -> serde_json::Value {
        let mut buf = [0u8; 4096];
        let mut out = Out::new(&mut buf);
        calls.render(d, &mut out);
        assert!(!out.overflowed());
        serde_json::from_slice(out.written()).unwrap()
    }

    /// Feeds `delta`s to `calls`.
    fn put(calls: &mut Calls, delta: Option<Delta>) {
        if let Some(d) = delta {
            calls.add(&d);
        }
    }

    #[test]
    fn a_call_is_a_turn_and_its_wait_runs_from_the_last_byte_out_to_the_first_back() {
        let mut d = Downstream::new();
        let mut calls = Calls::NONE;
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        calls.add(&d.looked_up("db.example.com", &[ip], 2 * MS));
        assert!(d.connecting(7, &addr("10.1.2.3:5432"), 10 * MS));
        put(&mut calls, d.connected(7, None, 11 * MS));
        // Request in two writes; answer in three reads; a second turn.
        put(&mut calls, d.sent(7, 100, 20 * MS, &[b"GET".as_slice()]));
        put(&mut calls, d.sent(7, 50, 21 * MS, &[b"GET".as_slice()]));
        put(&mut calls, d.received(7, 10, 30 * MS, &[]));
        put(&mut calls, d.received(7, 10, 31 * MS, &[]));
        put(&mut calls, d.received(7, 10, 32 * MS, &[]));
        put(&mut calls, d.sent(7, 5, 40 * MS, &[b"GET".as_slice()]));
        put(&mut calls, d.received(7, 1, 45 * MS, &[]));
        assert_eq!(d.received(7, 0, 46 * MS, &[]), None);
        let id = NameId::Kept(0);
        assert_eq!(d.name(id), "db.example.com");
        let f = calls.of(id);
        assert_eq!(
            f,
            Figures {
                calls: 2,
                wait_ns: 9 * MS + 5 * MS,
                connects: 1,
                connect_ns: MS,
                lookups: 1,
                lookup_ns: 2 * MS,
                bytes_out: 155,
                bytes_in: 31,
                ..Figures::default()
            }
        );
        assert_eq!(
            render(&calls, &d),
            serde_json::json!([{
                "name": "db.example.com", "calls": 2, "waitMs": 14, "bytesOut": 155,
                "bytesIn": 31, "connects": 1, "connectMs": 1, "lookups": 1, "lookupMs": 2
            }])
        );
    }

    #[test]
    fn an_interim_answer_on_a_plain_connection_is_part_of_its_call() {
        const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
        const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let mut d = Downstream::new();
        let mut calls = Calls::NONE;
        assert!(d.connecting(7, &addr("10.1.2.3:80"), 0));
        put(&mut calls, d.connected(7, None, MS));
        // `Expect: 100-continue`: the head, the 100, the body, the answer: one call, its waits
        // the two the client spent waiting.
        put(&mut calls, d.sent(7, 300, 10 * MS, &[b"PUT".as_slice()]));
        put(&mut calls, d.received(7, 25, 14 * MS, &[CONTINUE]));
        assert_eq!(
            d.about_fd(7, 15 * MS),
            Some(("10.1.2.3:80", Some(MS))),
            "the call goes on"
        );
        put(&mut calls, d.sent(7, 1000, 15 * MS, &[b"abc".as_slice()]));
        put(&mut calls, d.received(7, 38, 35 * MS, &[OK]));
        // The 100 and the answer in one read: the answer has begun.
        put(&mut calls, d.sent(7, 300, 40 * MS, &[b"PUT".as_slice()]));
        let both = [CONTINUE, OK].concat();
        put(&mut calls, d.received(7, 63, 42 * MS, &[both.as_slice()]));
        // A body sent before the 100 came (the client waited no longer): the answer after it
        // ends the call, the time to the 100 counted once.
        put(&mut calls, d.sent(7, 300, 50 * MS, &[b"PUT".as_slice()]));
        put(&mut calls, d.sent(7, 1000, 51 * MS, &[b"abc".as_slice()]));
        put(&mut calls, d.received(7, 25, 53 * MS, &[CONTINUE]));
        put(&mut calls, d.received(7, 38, 60 * MS, &[OK]));
        // A 101 switches protocols: the request's answer.
        put(&mut calls, d.sent(7, 100, 70 * MS, &[b"GET".as_slice()]));
        let switching = b"HTTP/1.1 101 Switching Protocols\r\n\r\n";
        put(
            &mut calls,
            d.received(7, 36, 71 * MS, &[switching.as_slice()]),
        );
        assert_eq!(calls.of(NameId::Kept(0)).calls, 4);
        // Read a byte at a time (botocore reads its status line so), a header after the 100:
        // the call counted once its status line tells, the wait to the first byte.
        put(&mut calls, d.sent(7, 300, 80 * MS, &[b"PUT".as_slice()]));
        let continues = b"HTTP/1.1 100 Continue\r\nConnection: keep-alive\r\n\r\n";
        for (i, b) in continues.iter().enumerate() {
            put(
                &mut calls,
                d.received(7, 1, 83 * MS + i as u64, &[&[*b][..]]),
            );
            let f = calls.of(NameId::Kept(0));
            assert_eq!(f.calls, 4, "{f:?} at {i}");
        }
        put(&mut calls, d.sent(7, 1000, 90 * MS, &[b"abc".as_slice()]));
        // `HTTP/1.1 2`: not an interim answer, told at its tenth byte.
        for (i, b) in OK.iter().enumerate().take(10) {
            assert_eq!(calls.of(NameId::Kept(0)).calls, 4, "at {i}");
            put(
                &mut calls,
                d.received(7, 1, 95 * MS + i as u64, &[&[*b][..]]),
            );
        }
        let f = calls.of(NameId::Kept(0));
        assert_eq!(f.calls, 5, "{f:?}");
        assert_eq!(f.wait_ns, (4 + 20 + 2 + 2 + 7 + 1 + 3 + 5) * MS, "{f:?}");
        // Bytes not seen (a `readv`'s later buffers, a `splice`): the call counts.
        put(&mut calls, d.sent(7, 100, 100 * MS, &[b"GET".as_slice()]));
        put(
            &mut calls,
            d.received(7, 30, 101 * MS, &[b"HTTP/1.1 1".as_slice()]),
        );
        assert_eq!(calls.of(NameId::Kept(0)).calls, 6);

        // Over TLS the same bytes would be records: turns are calls there, as before.
        let mut d = Downstream::new();
        let mut calls = Calls::NONE;
        assert!(d.connecting(8, &addr("10.1.2.3:443"), 0));
        put(&mut calls, d.connected(8, None, 0));
        put(
            &mut calls,
            d.sent(8, 200, MS, &[&[TLS_HANDSHAKE, 3, 1][..]]),
        );
        put(
            &mut calls,
            d.received(8, 2000, 2 * MS, &[&[TLS_HANDSHAKE, 3, 3][..]]),
        );
        put(
            &mut calls,
            d.sent(8, 80, 3 * MS, &[&[TLS_APPLICATION_DATA, 3, 3][..]]),
        );
        put(&mut calls, d.received(8, 25, 4 * MS, &[CONTINUE]));
        assert_eq!(calls.of(NameId::Kept(0)).calls, 1);
    }

    #[test]
    fn a_childs_calls_go_over_as_channel_lines_and_come_back_the_same() {
        let mut d = Downstream::new();
        let mut calls = Calls::NONE;
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        calls.add(&d.looked_up("db \"main\"", &[ip], 2 * MS));
        assert!(d.connecting(7, &addr("10.1.2.3:5432"), 10 * MS));
        put(&mut calls, d.connected(7, None, 11 * MS));
        put(&mut calls, d.sent(7, 100, 20 * MS, &[b"GET".as_slice()]));
        put(&mut calls, d.received(7, 10, 30 * MS, &[]));
        assert!(d.connecting(8, &addr("192.0.2.9:443"), 40 * MS));
        put(&mut calls, d.failed(8, libc::ECONNREFUSED));
        calls.add(&Delta {
            name: NameId::Others,
            figures: Figures {
                calls: 2,
                wait_ns: 5,
                ..Figures::default()
            },
        });
        let mut buf = [0u8; 2048];
        let mut out = Out::new(&mut buf);
        render_child_lines(&calls, &d, 4242, (MS, 50 * MS), &mut out);
        let text = std::str::from_utf8(out.written()).unwrap().to_string();
        let lines: Vec<ChildLine> = text
            .lines()
            .map(|l| child_line(l.as_bytes()).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        for l in &lines {
            assert_eq!((l.pid, l.since_ns, l.until_ns), (4242, MS, 50 * MS));
        }
        assert_eq!(lines[0].name, br#"db \"main\""#);
        assert_eq!(lines[0].figures, calls.of(NameId::Kept(0)));
        assert_eq!(lines[1].name, b"192.0.2.9:443");
        assert_eq!(lines[1].figures.refused, 1);
        assert_eq!(lines[2].name, OTHERS.as_bytes());
        assert_eq!(lines[2].figures, calls.of(NameId::Others));

        // Whole lines only: what does not fit is left out.
        let first = text.find('\n').unwrap() + 1;
        let mut small = vec![0u8; first + 10];
        let mut out = Out::new(&mut small);
        render_child_lines(&calls, &d, 4242, (MS, 50 * MS), &mut out);
        assert_eq!(out.written(), &text.as_bytes()[..first]);
        // Not a child's line: no figures.
        for bad in [
            &br#"{"metric":"x","value":1}"#[..],
            br#"{"downstreamOf":1,"since":1,"until":2,"name":"a","calls":"3"}"#,
            br#"{"downstreamOf":1,"since":1,"name":"a"}"#,
            br#"{"downstreamOf":1,"since":1,"until":2,"name":"a","bogus":1}"#,
        ] {
            assert_eq!(child_line(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_helper_sums_what_children_handed_over_in_the_invoke() {
        let line = |since: u64, until: u64, name: &str, calls: u32| {
            format!(
                "{{\"downstreamOf\":9,\"since\":{since},\"until\":{until},\"name\":\"{name}\",\
                 \"calls\":{calls},\"waitNs\":{}}}\n",
                u64::from(calls) * MS
            )
        };
        let bytes = [
            line(5, 8, "before", 1),
            line(10, 20, "api", 2),
            r#"{"metric":"Custom","value":1}"#.to_string() + "\n",
            line(21, 30, "api", 1),
            line(22, 23, OTHERS, 4),
            line(25, 41, "outlived", 1),
        ]
        .concat();
        let mut h = Handed::NONE;
        h.add_lines(bytes.as_bytes(), 10, 40);
        let mut buf = [0u8; 1024];
        let mut out = Out::new(&mut buf);
        let sum = h.take(&mut out);
        let v: serde_json::Value = serde_json::from_slice(out.written()).unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"name": "api", "calls": 3, "waitMs": 3},
                {"name": OTHERS, "calls": 4, "waitMs": 4}
            ])
        );
        assert_eq!((sum.calls, sum.time_ns), (7, 7 * MS));
        assert!(h.is_empty(), "taken");
    }

    /// An HTTP/2 frame of `len` payload bytes (zeros).
    fn frame(kind: u8, flags: u8, stream: u32, len: usize) -> Vec<u8> {
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.resize(9 + len, 0);
        f
    }

    #[test]
    fn on_http2_without_tls_a_call_is_a_request_whatever_the_frames_around_it() {
        const SETTINGS: u8 = 0x4;
        const PING: u8 = 0x6;
        const ACK: u8 = 0x1;
        const END_HEADERS: u8 = 0x4;
        let mut d = Downstream::new();
        let mut calls = Calls::NONE;
        assert!(d.connecting(9, &addr("127.0.0.1:50051"), 0));
        put(&mut calls, d.connected(9, None, MS));
        // The handshake: preface and SETTINGS, the server's SETTINGS, both acknowledged.
        let hello = [H2_PREFACE, &frame(SETTINGS, 0, 0, 18)].concat();
        put(
            &mut calls,
            d.sent(9, hello.len() as u64, 2 * MS, &[hello.as_slice()]),
        );
        let settings = [frame(SETTINGS, 0, 0, 12), frame(SETTINGS, ACK, 0, 0)].concat();
        put(
            &mut calls,
            d.received(9, 30, 3 * MS, &[settings.as_slice()]),
        );
        put(
            &mut calls,
            d.sent(9, 9, 4 * MS, &[frame(SETTINGS, ACK, 0, 0).as_slice()]),
        );
        assert_eq!(calls.of(NameId::Kept(0)).calls, 0, "no call yet");
        // A unary RPC: HEADERS and DATA (its end) in two buffers of one writev, a frame's
        // header split between them; PINGs both ways while it is out; the answer in reads that
        // split a header too.
        let request = [
            frame(H2_HEADERS, END_HEADERS, 1, 40),
            frame(H2_DATA, H2_END_STREAM, 1, 10),
        ]
        .concat();
        let (a, b) = request.split_at(52);
        put(
            &mut calls,
            d.sent(9, request.len() as u64, 10 * MS, &[a, b]),
        );
        put(
            &mut calls,
            d.received(9, 17, 11 * MS, &[frame(PING, 0, 0, 8).as_slice()]),
        );
        put(
            &mut calls,
            d.sent(9, 17, 12 * MS, &[frame(PING, ACK, 0, 8).as_slice()]),
        );
        assert_eq!(
            d.about_fd(9, 15 * MS),
            Some(("127.0.0.1:50051", Some(5 * MS)))
        );
        let answer = [
            frame(H2_HEADERS, END_HEADERS, 1, 20),
            frame(H2_DATA, 0, 1, 10),
            frame(H2_HEADERS, END_HEADERS | H2_END_STREAM, 1, 15),
        ]
        .concat();
        let (a, b) = answer.split_at(4);
        put(&mut calls, d.received(9, 4, 40 * MS, &[a]));
        assert_eq!(calls.of(NameId::Kept(0)).calls, 0, "a header's first bytes");
        put(&mut calls, d.received(9, b.len() as u64, 41 * MS, &[b]));
        let f = calls.of(NameId::Kept(0));
        assert_eq!((f.calls, f.wait_ns), (1, 31 * MS), "{f:?}");
        // A PING of the client's and its acknowledgement: no call, no wait.
        put(
            &mut calls,
            d.sent(9, 17, 50 * MS, &[frame(PING, 0, 0, 8).as_slice()]),
        );
        put(
            &mut calls,
            d.received(9, 17, 51 * MS, &[frame(PING, ACK, 0, 8).as_slice()]),
        );
        assert_eq!(d.about_fd(9, 52 * MS), Some(("127.0.0.1:50051", None)));
        // Two requests out together, answered in the other order: two calls, the wait the
        // time either was out (60 to 80 ms), not the sum.
        for (stream, at) in [(3, 60), (5, 65)] {
            let r = frame(H2_HEADERS, END_HEADERS | H2_END_STREAM, stream, 30);
            put(
                &mut calls,
                d.sent(9, r.len() as u64, at * MS, &[r.as_slice()]),
            );
        }
        let r = frame(H2_HEADERS, END_HEADERS, 5, 20);
        put(
            &mut calls,
            d.received(9, r.len() as u64, 70 * MS, &[r.as_slice()]),
        );
        let r = frame(H2_RST_STREAM, 0, 3, 4);
        put(
            &mut calls,
            d.received(9, r.len() as u64, 80 * MS, &[r.as_slice()]),
        );
        let f = calls.of(NameId::Kept(0));
        assert_eq!((f.calls, f.wait_ns), (3, 31 * MS + 20 * MS), "{f:?}");
        // A request the client resets before its answer: no call, its wait ends.
        let r = frame(H2_HEADERS, END_HEADERS | H2_END_STREAM, 7, 30);
        put(
            &mut calls,
            d.sent(9, r.len() as u64, 90 * MS, &[r.as_slice()]),
        );
        let r = frame(H2_RST_STREAM, 0, 7, 4);
        put(
            &mut calls,
            d.sent(9, r.len() as u64, 95 * MS, &[r.as_slice()]),
        );
        let r = frame(H2_HEADERS, END_HEADERS, 7, 20);
        put(
            &mut calls,
            d.received(9, r.len() as u64, 96 * MS, &[r.as_slice()]),
        );
        let f = calls.of(NameId::Kept(0));
        assert_eq!((f.calls, f.wait_ns), (3, 56 * MS), "{f:?}");
        // Bytes not seen: out of step, no call counted from then on (bytes still are).
        let r = frame(H2_HEADERS, END_HEADERS | H2_END_STREAM, 9, 30);
        put(
            &mut calls,
            d.sent(9, r.len() as u64 + 100, 100 * MS, &[r.as_slice()]),
        );
        let r = frame(H2_HEADERS, END_HEADERS, 9, 20);
        put(
            &mut calls,
            d.received(9, r.len() as u64, 110 * MS, &[r.as_slice()]),
        );
        let f = calls.of(NameId::Kept(0));
        assert_eq!(f.calls, 3, "{f:?}");
        assert_eq!(f.tls_handshakes, 0);
    }

    #[test]
    fn what_is_an_interim_answer() {
        for (lead, interim) in [
            (&b"HTTP/1.1 100 "[..], Some(true)),
            (b"HTTP/1.0 100\r", Some(true)),
            (b"HTTP/1.1 103 ", Some(true)),
            (b"HTTP/1.1 199\n", Some(true)),
            (b"HTTP/1.1 101 ", Some(false)),
            (b"HTTP/1.1 200 ", Some(false)),
            (b"HTTP/1.1 1000", Some(false)),
            (b"HTTP/2.0 100 ", Some(false)),
            (b"HTTP/1.1 10", None),
            (b"H", None),
            (b"", None),
            (b"+OK", Some(false)),
            (b"\x17\x03\x03", Some(false)),
        ] {
            assert_eq!(
                interim_status(lead),
                interim,
                "{}",
                String::from_utf8_lossy(lead)
            );
        }
    }

    #[test]
    fn a_datagram_sockets_connect_counts_with_its_first_bytes_and_never_without() {
        let mut d = Downstream::new();
        let mut calls = Calls::NONE;
        // Connected to learn a source address, closed unused: nothing.
        assert!(d.connecting(3, &addr("192.0.2.7:0"), 0));
        d.datagram(3);
        assert!(d.connected(3, None, 0).is_none());
        d.closed(3);
        // A query and its answer: the connect with them.
        assert!(d.connecting(4, &addr("10.0.0.2:53"), 10 * MS));
        d.datagram(4);
        assert!(d.connected(4, None, 11 * MS).is_none());
        put(
            &mut calls,
            d.sent(4, 40, 15 * MS, &[b"\x12\x34\x01".as_slice()]),
        );
        put(&mut calls, d.received(4, 80, 20 * MS, &[]));
        put(
            &mut calls,
            d.sent(4, 40, 21 * MS, &[b"\x12\x35\x01".as_slice()]),
        );
        // One refused at its first send (an ICMP port unreachable): the connect and the failure.
        assert!(d.connecting(5, &addr("10.0.0.2:53"), 0));
        d.datagram(5);
        assert!(d.connected(5, None, 0).is_none());
        put(&mut calls, d.failed(5, libc::ECONNREFUSED));
        // A stream's connect counts when it is made, bytes or not.
        assert!(d.connecting(6, &addr("10.0.0.2:53"), 0));
        put(&mut calls, d.connected(6, None, 2 * MS));
        let f = calls.total();
        assert_eq!((f.connects, f.connect_ns), (3, 3 * MS));
        assert_eq!((f.calls, f.wait_ns, f.refused), (1, 5 * MS, 1));
        assert_eq!(
            calls.of(NameId::Kept(0)),
            Figures::default(),
            "the unused one's"
        );
    }

    #[test]
    fn a_non_blocking_connect_is_made_by_its_first_send() {
        let mut d = Downstream::new();
        let mut calls = Calls::NONE;
        assert!(d.connecting(4, &addr("10.0.0.9:443"), 10 * MS));
        put(&mut calls, d.sent(4, 20, 13 * MS, &[b"GET".as_slice()]));
        put(&mut calls, d.received(4, 30, 20 * MS, &[]));
        let f = calls.total();
        assert_eq!(
            (f.connects, f.connect_ns, f.calls, f.wait_ns),
            (1, 3 * MS, 1, 7 * MS)
        );
    }

    #[test]
    fn shared_figures_and_missed_calls_are_said_in_the_property() {
        let mut d = Downstream::new();
        let mut calls = Calls::NONE;
        assert!(d.connecting(4, &addr("10.0.0.9:443"), 0));
        put(&mut calls, d.connected(4, None, MS));
        calls.shared = true;
        calls.missed = 3;
        assert_eq!(
            render(&calls, &d),
            serde_json::json!([
                {"name": "10.0.0.9:443", "connects": 1, "connectMs": 1, "shared": true},
                {"missed": 3}
            ])
        );
        assert_eq!(
            render(
                &Calls {
                    missed: 2,
                    ..Calls::NONE
                },
                &d
            ),
            serde_json::json!([{"missed": 2}])
        );
    }

    #[test]
    fn the_small_sort_orders_stably() {
        let mut v = [(3, 'a'), (1, 'b'), (3, 'c'), (0, 'd'), (1, 'e')];
        insertion_sort_by_key(&mut v, |p| p.0);
        assert_eq!(v, [(0, 'd'), (1, 'b'), (1, 'e'), (3, 'a'), (3, 'c')]);
        insertion_sort_by_key(&mut [0u8; 0], |p| *p);
    }

    #[test]
    fn a_connection_without_a_lookup_goes_by_its_address() {
        let mut d = Downstream::new();
        let mut calls = Calls::NONE;
        d.connecting(3, &addr("[::1]:8080"), 0);
        put(&mut calls, d.connected(3, None, 0));
        put(&mut calls, d.sent(3, 1, 0, &[b"GET".as_slice()]));
        put(&mut calls, d.received(3, 1, MS / 2, &[]));
        assert_eq!(
            render(&calls, &d),
            serde_json::json!([{"name": "[::1]:8080", "calls": 1, "waitMs": 0.5, "bytesOut": 1,
                "bytesIn": 1, "connects": 1, "connectMs": 0}])
        );
    }

    #[test]
    fn failures_are_counted_by_kind_and_end_the_connection() {
        let mut d = Downstream::new();
        let mut calls = Calls::NONE;
        d.connecting(4, &addr("10.0.0.1:80"), 0);
        put(&mut calls, d.connected(4, Some(libc::ECONNREFUSED), 3 * MS));
        assert!(!d.follows(4));
        d.connecting(5, &addr("10.0.0.1:80"), 0);
        put(&mut calls, d.connected(5, None, MS));
        put(&mut calls, d.sent(5, 10, MS, &[b"GET".as_slice()]));
        put(&mut calls, d.failed(5, libc::ECONNRESET));
        assert!(!d.follows(5));
        d.connecting(6, &addr("10.0.0.1:80"), 0);
        put(&mut calls, d.connected(6, Some(libc::ETIMEDOUT), 5 * MS));
        // An errno that is no failure of the connection changes nothing.
        d.connecting(8, &addr("10.0.0.1:80"), 0);
        assert_eq!(d.failed(8, libc::EAGAIN), None);
        assert!(d.follows(8));
        let f = calls.total();
        assert_eq!((f.refused, f.reset, f.timed_out, f.connects), (1, 1, 1, 3));
        assert_eq!(f.calls, 0, "no answer came");
    }

    #[test]
    fn the_slowest_names_are_shown_and_the_rest_summed() {
        let mut d = Downstream::new();
        let mut calls = Calls::NONE;
        for i in 0..14u64 {
            let fd = 10 + i as i32;
            let ip: IpAddr = format!("10.0.0.{i}").parse().unwrap();
            calls.add(&d.looked_up(&format!("host{i}.example"), &[ip], 0));
            d.connecting(fd, &SocketAddr::new(ip, 443), 0);
            put(&mut calls, d.connected(fd, None, 0));
            put(&mut calls, d.sent(fd, 1, 0, &[b"GET".as_slice()]));
            put(&mut calls, d.received(fd, 1, (i + 1) * MS, &[]));
        }
        let v = render(&calls, &d);
        let v = v.as_array().unwrap();
        assert_eq!(v.len(), SHOWN + 1);
        assert_eq!(v[0]["name"], "host13.example");
        assert_eq!(v[0]["waitMs"], 14);
        assert_eq!(v[SHOWN - 1]["name"], "host4.example");
        assert_eq!(v[SHOWN]["name"], OTHERS);
        assert_eq!(v[SHOWN]["calls"], 4);
        assert_eq!(v[SHOWN]["waitMs"], 1 + 2 + 3 + 4);
    }

    #[test]
    fn names_past_what_a_process_keeps_are_others() {
        let mut d = Downstream::new();
        let mut calls = Calls::NONE;
        for i in 0..(MAX_NAMES + 3) {
            let fd = i as i32;
            d.connecting(fd, &addr(&format!("10.0.1.{i}:80")), 0);
            put(&mut calls, d.connected(fd, None, MS));
        }
        assert_eq!(calls.of(NameId::Others).connects, 3);
        assert_eq!(calls.total().connects, (MAX_NAMES + 3) as u32);
        // The same address again is the same name.
        d.closed(0);
        d.connecting(0, &addr("10.0.1.0:80"), 0);
        let delta = d.connected(0, None, 0).unwrap();
        assert_eq!(delta.name, NameId::Kept(0));
    }

    #[test]
    fn a_lookup_names_every_address_it_returned_and_the_latest_wins() {
        let mut d = Downstream::new();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        d.looked_up("one.example", &[a, b], 0);
        d.connecting(1, &SocketAddr::new(b, 443), 0);
        let one = d.connected(1, None, 0).unwrap().name;
        assert_eq!(d.name(one), "one.example");
        d.looked_up("two.example", &[a], 0);
        d.connecting(2, &SocketAddr::new(a, 443), 0);
        let two = d.connected(2, None, 0).unwrap().name;
        assert_eq!(d.name(two), "two.example");
        // More lookups than remembered: the oldest addresses are forgotten, not the newest.
        for i in 0..MAX_RESOLVED {
            let ip: IpAddr = format!("198.51.100.{i}").parse().unwrap();
            d.looked_up("many.example", &[ip], 0);
        }
        d.connecting(3, &SocketAddr::new(a, 443), 0);
        let forgotten = d.connected(3, None, 0).unwrap().name;
        assert_eq!(d.name(forgotten), "192.0.2.1:443");
        d.connecting(4, &addr("198.51.100.31:443"), 0);
        let kept = d.connected(4, None, 0).unwrap().name;
        assert_eq!(d.name(kept), "many.example");
    }

    #[test]
    fn calls_still_waiting_are_what_a_timeout_names_and_what_the_next_invoke_carries_over() {
        let mut d = Downstream::new();
        let ip: IpAddr = "10.9.9.9".parse().unwrap();
        d.looked_up("slow.example", &[ip], 0);
        d.connecting(20, &SocketAddr::new(ip, 443), 0);
        d.connected(20, None, MS);
        d.sent(20, 300, 2 * MS, &[b"GET".as_slice()]);
        d.connecting(21, &addr("10.0.0.2:80"), 5 * MS);
        d.connecting(22, &addr("10.0.0.3:80"), 0);
        d.connected(22, None, 0);
        d.sent(22, 1, 0, &[b"GET".as_slice()]);
        d.received(22, 1, 0, &[]);
        let mut seen = Vec::new();
        d.in_flight(10 * MS, |c| {
            seen.push((
                c.name.to_string(),
                c.fd,
                c.connecting,
                c.age_ns,
                c.bytes_out,
            ));
        });
        assert_eq!(
            seen,
            [
                ("slow.example".to_string(), 20, false, 8 * MS, 300),
                ("10.0.0.2:80".to_string(), 21, true, 5 * MS, 0),
            ]
        );
        let mut calls = Calls::NONE;
        d.carry_into(|| 12 * MS, |delta| calls.add(&delta));
        assert_eq!(calls.total().carried_over, 2);
        // The rest of the wait is the next invoke's.
        let mut next = Calls::NONE;
        put(&mut next, d.received(20, 10, 15 * MS, &[]));
        assert_eq!((next.total().calls, next.total().wait_ns), (1, 3 * MS));
        d.closed(20);
        d.closed(21);
        let mut none = Calls::NONE;
        d.carry_into(|| 20 * MS, |delta| none.add(&delta));
        assert!(none.is_empty(), "carried over after their close: {none:?}");
    }

    #[test]
    fn a_timeout_names_the_calls_still_waiting() {
        let mut d = Downstream::new();
        let mut out_buf = [0u8; 1024];
        let mut out = Out::new(&mut out_buf);
        assert!(!d.render_in_flight(0, &mut out));
        assert!(out.written().is_empty());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let _ = d.looked_up("slow.example", &[ip], 0);
        assert!(d.connecting(5, &addr("10.0.0.1:443"), 0));
        let _ = d.connected(5, None, MS);
        let _ = d.sent(5, 120, 2 * MS, &[b"GET".as_slice()]);
        assert!(d.connecting(6, &addr("10.0.0.2:5432"), 3 * MS));
        // A call answered is not waiting.
        assert!(d.connecting(7, &addr("10.0.0.1:443"), 0));
        let _ = d.connected(7, None, 0);
        let _ = d.sent(7, 10, MS, &[b"GET".as_slice()]);
        let _ = d.received(7, 10, 2 * MS, &[]);
        assert!(d.render_in_flight(1002 * MS, &mut out));
        let v: serde_json::Value = serde_json::from_slice(out.written()).unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"name": "slow.example", "ageMs": 1000, "bytesOut": 120},
                {"name": "10.0.0.2:5432", "ageMs": 999, "connecting": true}
            ])
        );
    }

    #[test]
    fn names_are_escaped_and_cut() {
        let mut d = Downstream::new();
        let mut calls = Calls::NONE;
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let long = "x".repeat(300);
        calls.add(&d.looked_up(&format!("a\"b\n{long}"), &[ip], MS));
        let v = render(&calls, &d);
        let name = v[0]["name"].as_str().unwrap();
        assert!(name.starts_with("a\"b\nxxx"));
        assert_eq!(name.len(), NAME_LEN);
        assert_eq!(v[0]["lookups"], 1);
        assert!(v[0].get("calls").is_none());
    }

    #[test]
    fn an_invoke_without_downstream_calls_is_empty_and_renders_an_empty_array() {
        let d = Downstream::new();
        let calls = Calls::NONE;
        assert!(calls.is_empty());
        assert_eq!(render(&calls, &d), serde_json::json!([]));
    }

    /// A connection whose first bytes are a TLS ClientHello: its handshake's turns are not
    /// calls (their wait is `tlsMs`), TLS 1.3's one and TLS 1.2's two; its application data's
    /// turns are. A binary protocol whose first byte is 22 but not a TLS version is plain.
    #[test]
    fn tls_handshake_turns_are_not_calls() {
        let hello: &[u8] = &[0x16, 3, 1];
        let run = |flights: &[&[u8]]| {
            let mut d = Downstream::new();
            let mut calls = Calls::NONE;
            assert!(d.connecting(5, &addr("10.0.0.1:443"), 0));
            put(&mut calls, d.connected(5, None, MS));
            let mut t = 10 * MS;
            for head in flights {
                put(&mut calls, d.sent(5, 100, t, &[&head[..]]));
                put(&mut calls, d.received(5, 100, t + 7 * MS, &[]));
                t += 20 * MS;
            }
            calls.total()
        };
        // TLS 1.3: ClientHello; ChangeCipherSpec + Finished + request; a second request.
        let f = run(&[hello, &[0x14, 3, 3], &[0x17, 3, 3]]);
        assert_eq!(
            (f.calls, f.tls_handshakes, f.tls_ns, f.wait_ns),
            (2, 1, 7 * MS, 14 * MS)
        );
        // TLS 1.2: ClientHello; ClientKeyExchange (a handshake record); the request.
        let f = run(&[hello, &[0x16, 3, 3], &[0x17, 3, 3]]);
        assert_eq!((f.calls, f.tls_handshakes, f.tls_ns), (1, 1, 14 * MS));
        // Plain bytes, and a first byte of 22 that is no TLS version.
        let f = run(&[b"GET", &[0x16, 3, 3]]);
        assert_eq!((f.calls, f.tls_handshakes), (2, 0));
        let f = run(&[&[0x16, 9, 1], &[0x17, 3, 3]]);
        assert_eq!((f.calls, f.tls_handshakes), (2, 0));
        // TLS 1.3's session tickets (two reads) come back before the first answer: its wait
        // runs to the answer. A first answer in reads right after one another is one wait.
        for (ticket_at, answer_at, wait) in
            [(MS, 61 * MS, 61 * MS), (60 * MS, 60 * MS + 5, 60 * MS)]
        {
            let mut d = Downstream::new();
            let mut calls = Calls::NONE;
            assert!(d.connecting(5, &addr("10.0.0.1:443"), 0));
            put(&mut calls, d.connected(5, None, MS));
            put(&mut calls, d.sent(5, 300, 10 * MS, &[hello]));
            put(&mut calls, d.received(5, 3000, 12 * MS, &[]));
            put(&mut calls, d.sent(5, 200, 20 * MS, &[&[0x14, 3, 3][..]]));
            put(&mut calls, d.received(5, 250, 20 * MS + ticket_at, &[]));
            put(&mut calls, d.received(5, 250, 20 * MS + ticket_at + 3, &[]));
            put(&mut calls, d.received(5, 900, 20 * MS + answer_at, &[]));
            let f = calls.total();
            assert_eq!((f.calls, f.wait_ns), (1, wait), "{ticket_at} {answer_at}");
        }
        // Bytes not seen (sendfile) decide nothing.
        let f = run(&[&[], hello, &[0x17, 3, 3]]);
        assert_eq!((f.calls, f.tls_handshakes), (2, 1));
        // The entry says so.
        let d = Downstream::new();
        let mut calls = Calls::NONE;
        calls.add(&Delta {
            name: NameId::Others,
            figures: Figures {
                tls_handshakes: 1,
                tls_ns: 7 * MS,
                ..Figures::default()
            },
        });
        let v = render(&calls, &d);
        assert_eq!(v[0]["tlsHandshakes"], 1, "{v}");
        assert_eq!(v[0]["tlsMs"], 7.0, "{v}");
    }

    /// A dual-stack socket connects to the IPv4 address a lookup returned, mapped into IPv6
    /// (the JDK does): the connection goes by the name looked up, and where there was none,
    /// by the IPv4 address.
    #[test]
    fn an_ipv4_mapped_address_is_the_ipv4_one() {
        let mut d = Downstream::new();
        let _ = d.looked_up("localhost", &["127.0.0.1".parse().unwrap()], MS);
        assert!(d.connecting(3, &addr("[::ffff:127.0.0.1]:8080"), 0));
        let _ = d.connected(3, None, MS);
        assert_eq!(d.about_fd(3, MS).map(|(name, _)| name), Some("localhost"));
        assert!(d.connecting(4, &addr("[::ffff:10.0.0.7]:443"), 0));
        assert_eq!(
            d.about_fd(4, MS).map(|(name, _)| name),
            Some("10.0.0.7:443")
        );
    }
}
