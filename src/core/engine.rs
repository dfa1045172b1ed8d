//! The engine: tracked connections, their HTTP parsers, and the invoke tracker.
//!
//! The hooks hand it what the host did (a connect, bytes written or read, a close, a dup) and
//! it puts what must be written in its outbox: EMF lines and warnings, which the caller drains
//! with [`Engine::drain_output`]. It keeps the fd bitmap in step with its own table. It never
//! performs I/O itself, so it is tested with byte streams.
//!
//! Everything it needs — connections and their parsers, open invokes, custom values, the
//! record being encoded, the outbox — is reserved once, bounded, when it is made
//! ([`Engine::try_new`], when the process first talks to the Runtime API). After that it never
//! allocates: a bound that is reached drops a connection (or a record) cleanly, with one
//! debug line, instead of growing.

use crate::emf;
use crate::fdtable::FdBits;
use crate::http::{self, Direction, Event, Head, Parser};
use crate::journal::{Journal, Owner};
use crate::runtime_api::{self as api, ApiAddress, ErrorTypeScanner, RequestKind, field};
use crate::settings::Settings;
use crate::text::{FixedStr, Out};
use crate::tracker::{
    self, ErrorType, InvokeRecord, Lifecycle, Outcome, Probe, Reading, RequestId, TraceId, Tracker,
};
use std::net::SocketAddr;

/// Connections followed at once (Node's native client uses five; a connection per invoke is
/// closed before the next opens).
pub const MAX_CONNECTIONS: usize = 64;
/// fd numbers that may refer to followed connections at once (dup makes more than one each).
const MAX_FDS: usize = 256;
/// At most this many requests may await their responses on one connection.
const MAX_PENDING: usize = 64;
/// Responses read before their request was seen written, kept per connection.
const MAX_EARLY: usize = 4;
/// Room for EMF lines and warnings waiting to be written, and for one record being encoded
/// (CloudWatch takes log events up to 256 KiB).
pub const OUTBOX_BYTES: usize = 512 * 1024;
pub const RECORD_BYTES: usize = 256 * 1024;
/// Warnings waiting to be written.
const MAX_WARNINGS: usize = 8;
/// A held record kept in no journal slot.
const NOT_KEPT: usize = usize::MAX;

/// Journal slot `slot`'s bit in a mask of slots.
fn slot_bit(slot: usize) -> u64 {
    u32::try_from(slot)
        .ok()
        .and_then(|s| 1u64.checked_shl(s))
        .unwrap_or(0)
}

/// Room for what one read of the custom-metrics channel returns.
pub const CHANNEL_BYTES: usize = 64 * 1024;

/// A warning line for stderr (without its `lambda-meter: warning: ` prefix), or a debug line.
pub type Warning = FixedStr<320>;

/// Why the engine stopped following a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Untrack {
    Garbage(http::ParseError),
    TooManyPending,
    /// Its bytes were half through the parsers when a signal handler left the engine.
    Abandoned,
    /// Bytes of it went by where the library was busy and there was no room to keep them.
    Unkept,
    /// The host took bytes of it out of a stdio buffer where no hook sees them.
    Unseen,
}

/// What this process is to its environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The environment's root: the runtime.
    Alone,
    /// Started by the root, talking to the Runtime API, not yet known as which of the two below.
    Undecided,
    /// A runtime of its own, started by another process (`strace`, `timeout`, a shell).
    Runtime,
    /// A per-request process (a shell runtime's `curl`): its records are the environment's.
    Helper,
}

/// A fixed ring of `N` values, oldest first.
#[derive(Clone, Copy, Debug)]
struct Ring<T: Copy + Default, const N: usize> {
    items: [T; N],
    start: usize,
    len: usize,
}

impl<T: Copy + Default, const N: usize> Ring<T, N> {
    fn new() -> Self {
        Ring {
            items: [T::default(); N],
            start: 0,
            len: 0,
        }
    }

    fn push_back(&mut self, v: T) -> bool {
        if self.len >= N {
            return false;
        }
        if let Some(slot) = self.items.get_mut((self.start + self.len) % N) {
            *slot = v;
            self.len += 1;
        }
        true
    }

    fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let v = self.items.get(self.start).copied();
        self.start = (self.start + 1) % N;
        self.len -= 1;
        v
    }

    fn front(&self) -> Option<&T> {
        (self.len > 0).then(|| self.items.get(self.start)).flatten()
    }

    /// The oldest value `is` holds for, to change in place.
    fn first_mut(&mut self, is: impl Fn(&T) -> bool) -> Option<&mut T> {
        let (start, len) = (self.start, self.len);
        let at = (0..len)
            .map(|i| (start + i) % N)
            .find(|at| self.items.get(*at).is_some_and(&is))?;
        self.items.get_mut(at)
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// A `/next` (or restore) answer, as the engine needs it: its status and the event's facts.
/// Filled in place ([`Answer::fill`]): its ids are kilobytes of room, of which a copy of the
/// whole value would move every byte.
#[derive(Clone, Copy, Debug, Default)]
struct Answer {
    status: u16,
    request_id: RequestId,
    /// Meaningful when `has_trace`.
    trace_id: TraceId,
    has_trace: bool,
    deadline_ms: Option<u64>,
    body_len: u64,
    /// The `errorType` of an answer to a result, when it names one (a refusal's reason);
    /// meaningful when `has_error_type`.
    error_type: ErrorType,
    has_error_type: bool,
}

impl Answer {
    /// Becomes the answer whose head is `head`, copying only the text of its ids.
    fn fill(&mut self, head: &Head, body_len: u64, error_type: Option<&str>) {
        self.status = head.status;
        self.request_id
            .set(head.value(field::REQUEST_ID).unwrap_or_default());
        let trace = head.value(field::TRACE_ID);
        self.has_trace = trace.is_some();
        self.trace_id.set(trace.unwrap_or_default());
        self.deadline_ms = head.value(field::DEADLINE_MS).and_then(|v| v.parse().ok());
        self.body_len = body_len;
        self.has_error_type = error_type.is_some();
        self.error_type.set(error_type.unwrap_or_default());
    }

    fn trace_id(&self) -> Option<&TraceId> {
        self.has_trace.then_some(&self.trace_id)
    }

    fn error_type(&self) -> Option<&ErrorType> {
        self.has_error_type.then_some(&self.error_type)
    }
}

/// A result (`/response`, `/error`) sent whole whose answer was not read yet: how the invoke
/// ended is the Runtime API's to say (a `413` fails it), so it is decided when the answer is
/// read — or, without one, when the connection ends, the process exits, or
/// [`RESULT_ANSWER_WAIT_NS`] passed.
#[derive(Clone, Copy, Debug)]
struct SentResult {
    id: RequestId,
    outcome: Outcome,
    /// When it was sent whole: the invoke's end.
    at: Probe,
}

/// How long a sent result waits for its answer before it is taken as accepted (the Runtime
/// API answers at once; a runtime that never reads the answer must not lose the record).
const RESULT_ANSWER_WAIT_NS: u64 = 1_000_000_000;

/// The request being written on a connection (its invoke id is the connection's
/// `writing_id`, set in place).
#[derive(Clone, Copy, Debug)]
struct Writing {
    kind: RequestKind,
    /// It streams its body (`Lambda-Runtime-Function-Response-Mode: streaming`).
    streamed: bool,
}

#[derive(Clone, Debug)]
struct Connection {
    in_use: bool,
    requests: Parser,
    responses: Parser,
    /// What kind of request each response not read yet answers, oldest first.
    pending: Ring<RequestKind, MAX_PENDING>,
    writing: Option<Writing>,
    /// The invoke id of the result (`/response`, `/error`) being written.
    writing_id: RequestId,
    /// Looks for the error type in the body of the request being written.
    error_scan: ErrorTypeScanner,
    /// Looks for the error type in the body of an answer to a result being read.
    answer_scan: ErrorTypeScanner,
    /// The result sent on this connection, waiting for its answer.
    result: Option<SentResult>,
    /// The answer to the result being written, read before the result was seen whole (threads
    /// race between the real call and the hook): its status and error type.
    result_answer: Option<(u16, Option<ErrorType>)>,
    /// Responses read before their request was seen written (threads race between the
    /// real call and the hook), with when they were read; oldest first.
    early: Ring<(Answer, Probe), MAX_EARLY>,
    /// How many fds refer to this connection (dup makes more).
    fd_count: usize,
}

impl Connection {
    fn new() -> Self {
        Connection {
            in_use: true,
            requests: Parser::new(Direction::Request, api::FIELDS),
            responses: Parser::new(Direction::Response, api::FIELDS),
            pending: Ring::new(),
            writing: None,
            writing_id: RequestId::EMPTY,
            error_scan: ErrorTypeScanner::new(),
            answer_scan: ErrorTypeScanner::new(),
            result: None,
            result_answer: None,
            early: Ring::new(),
            fd_count: 1,
        }
    }
}

/// One record waiting in the outbox.
#[derive(Clone, Copy, Debug)]
enum Waiting {
    /// Encoded in the outbox's bytes, up to here.
    Line(usize),
    /// Kept in a journal slot as its final record, written from there (and the slot freed)
    /// with its post-response time.
    Journaled {
        slot: usize,
        post_response_ns: Option<u64>,
    },
}

/// Lines waiting to be written: EMF records (each with its newline) and warnings, in a buffer
/// reserved once. A record that does not fit is dropped and counted.
struct Outbox {
    bytes: Vec<u8>,
    used: usize,
    /// The records, in order.
    ends: Vec<Waiting>,
    warnings: Vec<Warning>,
    /// Records dropped for want of room (never the case unless the writer is stuck).
    dropped: u64,
}

impl Outbox {
    fn try_new() -> Option<Outbox> {
        let mut ends = Vec::new();
        ends.try_reserve_exact(1024).ok()?;
        let mut warnings = Vec::new();
        warnings.try_reserve_exact(MAX_WARNINGS).ok()?;
        Some(Outbox {
            bytes: zeroed(OUTBOX_BYTES)?,
            used: 0,
            ends,
            warnings,
            dropped: 0,
        })
    }

    /// Room for the next record.
    fn room(&mut self) -> Out<'_> {
        Out::new(self.bytes.get_mut(self.used..).unwrap_or_default())
    }

    /// The record just written in [`Outbox::room`] (`len` bytes) goes out.
    fn commit(&mut self, len: usize) {
        if self.ends.len() < self.ends.capacity() {
            self.used += len;
            self.ends.push(Waiting::Line(self.used));
        } else {
            self.dropped += 1;
        }
    }

    /// The finished record in journal slot `slot` goes out. False when there is no room (the
    /// slot stays, and the process's ending writes it).
    fn commit_journaled(&mut self, slot: usize, post_response_ns: Option<u64>) -> bool {
        if self.ends.len() < self.ends.capacity() {
            self.ends.push(Waiting::Journaled {
                slot,
                post_response_ns,
            });
            return true;
        }
        false
    }

    fn warn(&mut self, w: Warning) {
        if self.warnings.len() < self.warnings.capacity() {
            self.warnings.push(w);
        }
    }
}

/// Connection `id`'s parser's kept shapes (`dir` 0: requests, 1: responses) in `shapes`.
fn shapes_of(shapes: &mut [u8], id: usize, dir: usize) -> &mut [u8] {
    let at = (id * 2 + dir) * http::SHAPES_BYTES;
    shapes
        .get_mut(at..at + http::SHAPES_BYTES)
        .unwrap_or_default()
}

/// `n` zero bytes, reserved (a zeroed allocation: its pages are touched only when written).
fn zeroed(n: usize) -> Option<Vec<u8>> {
    crate::zeroed::zeroed(n)
}

/// Reads what was appended to the custom-metrics channel since the last call into the buffer
/// (whole lines), and says how many bytes that is and this process's id.
/// Reads the custom-metrics channel into a buffer: the bytes read, this process's id, and
/// whether more is there to read now.
pub type ChannelReader = fn(&mut [u8]) -> (usize, u32, bool);

/// How many buffers of channel lines one result reads at most (4 MiB): the rest is read at the
/// next.
const CHANNEL_ROUNDS: usize = 64;

/// See the module documentation.
pub struct Engine {
    settings: Settings,
    api: ApiAddress,
    bits: &'static FdBits,
    /// fd → index in `conns`.
    fds: Vec<(i32, usize)>,
    conns: Vec<Connection>,
    /// Each connection's parsers' kept head shapes ([`http::SHAPES_BYTES`] a parser, requests
    /// then responses), reserved zeroed: a connection's are touched only once it is used.
    shapes: Vec<u8>,
    tracker: Tracker,
    warned_garbage: bool,
    warned_fd_range: bool,
    warned_bounds: bool,
    /// Whether this process is its environment's runtime (see [`Engine::attach_handoff`]).
    role: Role,
    /// Requests this process has made while its role was undecided.
    requests_seen: u32,
    /// A role decided and not yet taken by the glue.
    decided: Option<Role>,
    /// The fd whose bytes are going through the parsers now, or -1 (see [`Engine::abandoned`]).
    working: i32,
    journal: Option<JournalLink>,
    /// The constant parts of records, rendered once (see [`emf::Prefixes`]).
    prefixes: emf::Prefixes,
    /// Reads what was appended to the custom-metrics channel; none in tests unless set.
    channel: Option<ChannelReader>,
    channel_buf: Vec<u8>,
    /// Finished records held for one batched record (`LAMBDA_METER_BATCH`), oldest first.
    batch: Vec<InvokeRecord>,
    /// When the held records are written at the latest (monotonic ns): the end of the first
    /// one's CloudWatch period, so a batch never spans two periods.
    batch_due_ns: Option<u64>,
    /// The journal slots that keep the held records, each as its own line, for the ending
    /// paths (exit, `_exit`, a fatal signal or SIGTERM) and for a SIGKILL's successor.
    batch_slots: Vec<usize>,
    /// The slot each held record is kept in, by its place in `batch` (`NOT_KEPT`: none).
    batch_kept_in: Vec<usize>,
    outbox: Outbox,
    /// Inits of earlier runtime processes that never ended, reported at this process's first
    /// event (its deadline tells the function's timeout).
    ended_inits: Option<tracker::EndedInits>,
    scratch: Scratch,
    /// Where the provisional final record of a result is made (see
    /// [`Engine::journal_provisional`]).
    provisional_record: InvokeRecord,
    /// Where the answer being read is made: one, reserved once (see [`Engine::response_read`]).
    answer: Vec<Answer>,
    /// The process's ledger of downstream calls, where the library keeps one.
    downstream: Option<crate::downstream::Link>,
    /// Whether records carry their downstream calls' sum (a metric of theirs is selected).
    downstream_metrics: bool,
    /// Where its properties are rendered ([`crate::custom::MAX_PROPERTY_JSON`] bytes, reserved
    /// zeroed: an invoke without downstream calls does not touch it).
    downstream_json: Vec<u8>,
}

/// Where a record is encoded before it is copied on (a journal's template).
struct Scratch {
    line: Vec<u8>,
    template: Vec<u8>,
    /// The line of the newest record [`keep_final`] journaled as finished, and where: it is
    /// written from here when its `/next` comes (see [`Journal::write_finished_line`]).
    finished: Vec<u8>,
    finished_at: Option<FinishedAt>,
}

/// Which journal slot [`Scratch::finished`] holds the line of, how long it is, and where its
/// placeholder's digits are.
#[derive(Clone, Copy, Debug)]
struct FinishedAt {
    slot: usize,
    len: usize,
    value: (usize, usize),
}

/// This process's open invokes in the environment's journal (see [`crate::journal`]).
struct JournalLink {
    journal: Journal,
    owner: Owner,
    /// The slots of the invokes this process journaled and has not finished.
    slots: Vec<usize>,
    /// The templates invokes without a cold start share (without, with a trace id), made the
    /// first time one is needed: their bytes and whether they are made.
    shared: [(Vec<u8>, bool); 2],
    /// The slot whose invoke's final record waits for the runtime's next `/next` in the journal
    /// (see [`Journal::finish`]).
    finished: Option<usize>,
    /// The last provisional final record kept (see [`Engine::journal_provisional`]): when the
    /// answer confirms it unchanged, the slot has the final record already.
    provisional: Option<Provisional>,
}

/// A final record kept in the journal before its answer came, and the stream's constants state
/// it was encoded in and left.
struct Provisional {
    /// The connection its result was sent on: its answer, and no other, confirms it.
    conn: usize,
    slot: usize,
    sent_ns: u64,
    constants_before: bool,
    constants_after: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Engine")
    }
}

/// Whether what is held for a batch is written ahead of `r`: Lambda may stop the runtime at an
/// invoke's deadline, and an init error ends the environment.
fn writes_batch_first(r: &InvokeRecord) -> bool {
    r.timed_out || r.kind == tracker::RecordKind::InitError
}

/// Keeps `record`, an invoke's final record, in its journal slot (its post-response time a
/// hole, measured from when its result was sent): what an ending or a successor writes for it.
/// False when it cannot be kept there. `record` is left as it was.
fn keep_final(
    link: &mut JournalLink,
    settings: &Settings,
    prefixes: &mut emf::Prefixes,
    scratch: &mut Scratch,
    pool: &crate::custom::Pool,
    record: &mut InvokeRecord,
    sent_ns: u64,
) -> bool {
    let Some(slot) = record.journal_slot else {
        return false;
    };
    // Encoded in place, with the hole's placeholder for a moment: the record is not copied.
    let post_response = record
        .post_response_ns
        .replace(crate::journal::POST_RESPONSE_PLACEHOLDER);
    scratch.finished_at = None;
    let mut line = Out::new(&mut scratch.finished);
    let mut marks = const { emf::Marks::of(crate::journal::NAME) };
    let encoded = emf::encode_marked(
        record,
        settings,
        pool,
        prefixes,
        &mut line,
        Some(&mut marks),
    );
    record.post_response_ns = post_response;
    if !encoded {
        return false;
    }
    let len = line.len();
    let line = scratch.finished.get(..len).unwrap_or_default();
    // The template is written straight into the slot (its edits found first, so the writing
    // cannot fail half-way).
    let Some(plan) = crate::journal::FinishedPlan::of(line, Some(&marks)) else {
        return false;
    };
    let write = |dst: &mut [u8]| plan.write(line, &mut Out::new(dst));
    if !link
        .journal
        .finish_with(slot, link.owner.pid, plan.len(line), sent_ns, write)
    {
        return false;
    }
    scratch.finished_at = Some(FinishedAt {
        slot,
        len,
        value: plan.value(),
    });
    true
}

/// A reading with at least what `need` asks for, reusing the one this call already took when it
/// has that.
fn reading(
    taken: &mut Option<(Probe, Reading)>,
    need: Reading,
    probe: &dyn Fn(Reading) -> Probe,
) -> Probe {
    match taken {
        Some((p, have)) if *have >= need => *p,
        _ => {
            let p = probe(need);
            *taken = Some((p, need));
            p
        }
    }
}

/// How much shorter than the function's timeout an init that never ended may seem to have
/// run and still count as stopped at it: its time runs from the wrapper's note, made once the
/// shell that runs the wrapper has started (a cold start's first process starts slowest), to
/// the next runtime's note, and the clock those are read from ticks every 10 ms.
const INIT_RAN_SLACK_NS: u64 = 100_000_000;

impl Engine {
    /// An engine with everything it will need reserved; `None` when the memory cannot be had
    /// (the process then runs unmetered).
    pub fn try_new(
        settings: Settings,
        api: ApiAddress,
        bits: &'static FdBits,
        born_ns: u64,
    ) -> Option<Self> {
        let lifecycle = Lifecycle {
            on_demand: settings.init_type == "on-demand",
            proactive_threshold_ns: settings.proactive_init_ms.saturating_mul(1_000_000),
            timeout_margin_ns: settings.timeout_margin_ms.saturating_mul(1_000_000),
        };
        let mut fds = Vec::new();
        fds.try_reserve_exact(MAX_FDS).ok()?;
        let mut conns = Vec::new();
        conns.try_reserve_exact(MAX_CONNECTIONS).ok()?;
        let shapes = zeroed(MAX_CONNECTIONS * 2 * http::SHAPES_BYTES)?;
        let mut batch = Vec::new();
        batch.try_reserve_exact(crate::settings::MAX_BATCH).ok()?;
        let mut batch_slots = Vec::new();
        batch_slots
            .try_reserve_exact(crate::journal::SLOT_COUNT)
            .ok()?;
        let mut batch_kept_in = Vec::new();
        batch_kept_in
            .try_reserve_exact(crate::settings::MAX_BATCH)
            .ok()?;
        let mut answer = Vec::new();
        answer.try_reserve_exact(1).ok()?;
        answer.push(Answer::default());
        Some(Engine {
            settings,
            api,
            bits,
            fds,
            conns,
            shapes,
            tracker: Tracker::try_new(born_ns, lifecycle)?,
            warned_garbage: false,
            warned_fd_range: false,
            warned_bounds: false,
            role: Role::Alone,
            requests_seen: 0,
            decided: None,
            working: -1,
            journal: None,
            prefixes: emf::Prefixes::try_new()?,
            channel: None,
            channel_buf: zeroed(CHANNEL_BYTES)?,
            batch,
            batch_due_ns: None,
            batch_slots,
            batch_kept_in,
            outbox: Outbox::try_new()?,
            ended_inits: None,
            scratch: Scratch {
                line: zeroed(RECORD_BYTES)?,
                template: zeroed(RECORD_BYTES)?,
                finished: zeroed(RECORD_BYTES)?,
                finished_at: None,
            },
            provisional_record: InvokeRecord::blank(tracker::RecordKind::Invoke),
            answer,
            downstream: None,
            downstream_metrics: false,
            downstream_json: zeroed(crate::custom::MAX_PROPERTY_JSON)?,
        })
    }

    /// Reads custom values from the channel with `read` where an invoke's result is sent (and
    /// where init fails): once an invoke.
    pub fn read_channel_with(&mut self, read: ChannelReader) {
        self.channel = Some(read);
    }

    /// Tells `link` which invokes are open, and puts what each waited on in its record (the
    /// `downstream` property) where its result is sent.
    /// The invokes open already are told now.
    pub fn link_downstream(&mut self, link: crate::downstream::Link) {
        self.downstream = Some(link);
        self.downstream_metrics =
            self.settings.emits("DownstreamCalls") || self.settings.emits("DownstreamTime");
        let tracker = &self.tracker;
        tracker.each_open(|id, thread| {
            (link.opened)(id.as_bytes(), thread, &|id| tracker.is_open_id(id));
        });
    }

    /// No more of what invokes wait on (a per-request helper's are its environment's).
    pub fn unlink_downstream(&mut self) {
        self.downstream = None;
    }

    /// Puts the calls still waiting at `now_ns` on timed-out invoke `id`, and what each thread
    /// is blocked in, as its record's properties.
    fn place_waiting(&mut self, id: &RequestId, now_ns: u64) {
        if let Some(link) = self.downstream {
            let property = crate::downstream::IN_FLIGHT_PROPERTY;
            self.place_property(id, property, |out| (link.waiting)(now_ns, out));
            let property = crate::blocked::PROPERTY;
            self.place_property(id, property, |out| (link.blocked)(now_ns, out));
        }
    }

    /// Puts invoke `id`'s downstream calls on it, as its record's property, and their sum
    /// where a metric of theirs is selected.
    fn place_downstream(&mut self, id: &RequestId) {
        if let Some(link) = self.downstream {
            let property = crate::downstream::PROPERTY;
            let mut sum = None;
            self.place_property(id, property, |out| {
                sum = (link.take)(id.as_bytes(), out);
                sum.is_some()
            });
            if self.downstream_metrics {
                self.tracker.downstream_of(id, sum.unwrap_or_default());
            }
        }
    }

    /// Puts the JSON `render` makes (when it makes one) on open invoke `id` as its record's
    /// property `key`, one of lambda-meter's own.
    fn place_property(
        &mut self,
        id: &RequestId,
        key: &'static str,
        render: impl FnOnce(&mut Out) -> bool,
    ) {
        let mut out = Out::new(&mut self.downstream_json);
        if !render(&mut out) || out.overflowed() {
            return;
        }
        let Ok(json) = std::str::from_utf8(out.written()) else {
            return;
        };
        let _ = self.tracker.custom_of(id, |pool, c| {
            pool.own_property(c, key, json, &|k| k != key && emf::reserved(k))
        });
    }

    /// Puts the calls made since the result of the record that waits for `/next` on it (its
    /// `downstreamPostResponse` property), about to be written. Its final line, kept in the
    /// journal without them, is made again (only where there were calls).
    fn place_post_response(&mut self) {
        let Some(link) = self.downstream else {
            return;
        };
        let Engine {
            tracker,
            downstream_json,
            ..
        } = self;
        let Some(id) = tracker.awaiting().map(|r| r.request_id.as_bytes()) else {
            return;
        };
        let mut out = Out::new(downstream_json);
        if !(link.after)(id, &mut out) || out.overflowed() {
            return;
        }
        let Ok(json) = std::str::from_utf8(out.written()) else {
            return;
        };
        let key = crate::downstream::POST_RESPONSE_PROPERTY;
        let placed = tracker.awaiting_custom(|pool, c| {
            pool.own_property(c, key, json, &|k| k != key && emf::reserved(k))
        });
        if placed != Some(crate::custom::Status::Ok) {
            return;
        }
        if let Some(link) = self.journal.as_mut()
            && link.finished.is_some()
        {
            // (Not the line of a provisional record: none is pending once a record waits.)
            link.finished = None;
            self.journal_finished(usize::MAX, false);
        }
    }

    /// Reads what the channel holds now, a buffer at a time: every buffer but the last is
    /// placed on the invokes here (lines without a request id on `ending`'s), the last is
    /// returned (how many bytes of `channel_buf`, and this process's id). The downstream
    /// figures child processes handed over in them go to `ending`, where its result is sent
    /// at `result_ns` (see [`merge_children`]).
    fn read_channel(&mut self, ending: Option<&RequestId>, result_ns: Option<u64>) -> (usize, u32) {
        let Some(read) = self.channel else {
            return (0, 0);
        };
        let mut rounds = 1;
        loop {
            let (len, pid, more) = read(&mut self.channel_buf);
            let bytes = self.channel_buf.get(..len).unwrap_or_default();
            if let (false, Some(id), Some(until_ns), Some(link)) =
                (bytes.is_empty(), ending, result_ns, self.downstream)
            {
                merge_children(&self.tracker, link, id, bytes, until_ns);
            }
            if !more || rounds >= CHANNEL_ROUNDS {
                return (len, pid);
            }
            let channel = tracker::Channel {
                bytes,
                pid,
                reserved: &emf::reserved,
            };
            self.tracker
                .place_channel_ahead(ending.map(|id| id.as_str()), &channel);
            rounds += 1;
        }
    }

    /// Journals each invoke this process starts from now on, so that one the process does not
    /// survive still gets its record. Per-request helpers hand invokes over instead. `None`
    /// when the room for it cannot be had (nothing is journaled then).
    pub fn attach_journal(&mut self, journal: Journal, owner: Owner) -> Option<()> {
        let mut slots = Vec::new();
        slots.try_reserve_exact(crate::journal::SLOT_COUNT).ok()?;
        let template = || zeroed(crate::journal::TEMPLATE_MAX);
        self.journal = Some(JournalLink {
            journal,
            owner,
            slots,
            shared: [(template()?, false), (template()?, false)],
            finished: None,
            provisional: None,
        });
        self.scratch.finished_at = None;
        Some(())
    }

    /// Earlier runtime processes of the environment were killed in their init (see
    /// [`tracker::RecordKind::Unstarted`]): an invoke waited for each, on demand. Reported
    /// when this process gets its first event.
    pub fn inits_never_ended(&mut self, ended: tracker::EndedInits) {
        if self.tracker.on_demand() {
            self.ended_inits = Some(ended);
        }
    }

    /// The records of the invokes that waited for inits that never ended, now that an event's
    /// deadline tells the function's timeout (`answer`, read at `now`: the time left of a new
    /// invoke). An init that ran at least that long, less [`INIT_RAN_SLACK_NS`], was most
    /// likely stopped at it (`Sandbox.Timedout`); one that ran less, or for a time not known,
    /// was ended by something else (`Runtime.ExitError`).
    fn report_ended_inits(&mut self, deadline_ms: Option<u64>, now: &Probe) {
        let Some(ended) = self.ended_inits.take() else {
            return;
        };
        let timeout_ns = deadline_ms
            .map(|d| d.saturating_sub(now.wall_ms).saturating_mul(1_000_000))
            .filter(|t| *t > 0);
        let count = (ended.count as usize).min(tracker::MAX_ENDED_INITS);
        for ran in ended.ran_ns.into_iter().take(count) {
            let timed_out = matches!((ran, timeout_ns),
                (Some(ran), Some(t)) if ran.saturating_add(INIT_RAN_SLACK_NS) >= t);
            let (waited, init) = match (timed_out, timeout_ns) {
                (true, Some(timeout)) => (Some(timeout), ran.map(|r| r.min(timeout))),
                _ => (ran, ran),
            };
            let record = self
                .tracker
                .unstarted(waited, init, timed_out, ended.followed_at_ms);
            self.push_records(Some(record), Some(now));
        }
    }

    /// How many invokes this process has opened so far.
    pub fn opened_count(&self) -> u64 {
        self.tracker.opened_count()
    }

    /// The owner's pid while the journal holds anything of this process's (an open invoke, a
    /// finished record, held records): then its file must stay where a successor finds it.
    pub fn journal_owner_busy(&self) -> Option<u32> {
        let link = self.journal.as_ref()?;
        (!link.slots.is_empty() || link.finished.is_some() || !self.batch_slots.is_empty())
            .then_some(link.owner.pid)
    }

    /// The journal's file was made again (see `ending::journal_replaced`): this process's
    /// slots, at the same numbers, are in `journal` now.
    pub fn replace_journal(&mut self, journal: Journal) {
        if let Some(link) = self.journal.as_mut() {
            link.journal = journal;
        }
        self.scratch.finished_at = None;
    }

    /// Whether invokes are journaled (a forked child keeps its parent's journal).
    pub fn has_journal(&self) -> bool {
        self.journal.is_some()
    }

    /// Journals the invoke just opened: its record as it would read if the process ended now.
    fn journal_newest(&mut self) {
        let Some(link) = self.journal.as_mut() else {
            return;
        };
        if self.tracker.has_handoff() {
            return;
        }
        let Some(open) = self.tracker.newest_open() else {
            return;
        };
        let memory = self
            .settings
            .memory_size_mb
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(0);
        let pool = self.tracker.pool_ref();
        // An invoke like most (no cold start, restore, gauges or custom values) shares one
        // template per trace-id presence, rendered once: each invoke then stores only its own
        // strings.
        let steady = !open.cold_start
            && !open.proactive_init
            && open.init_duration_ns.is_none()
            && open.restore_duration_ns.is_none()
            && open.started.gauges.is_none()
            && open.custom.is_empty();
        let slot = if steady {
            let traced = open.event.trace_id.is_some();
            let Some((bytes, made)) = link.shared.get_mut(usize::from(traced)) else {
                return;
            };
            if !*made {
                let mut model = open.ending_record();
                model.request_id = RequestId::new(crate::journal::REQUEST_ID_PLACEHOLDER);
                model.trace_id = traced.then(|| TraceId::new(crate::journal::TRACE_ID_PLACEHOLDER));
                model.request_bytes = Some(crate::journal::REQUEST_BYTES_PLACEHOLDER);
                let mut line = Out::new(&mut self.scratch.line);
                if emf::encode(&model, &self.settings, pool, &mut line) {
                    let len = line.len();
                    let line = self.scratch.line.get(..len).unwrap_or_default();
                    let mut t = Out::new(bytes.as_mut_slice());
                    if crate::journal::shared_template(line, &mut t) {
                        let n = t.len();
                        bytes.truncate(n);
                        *made = true;
                    }
                }
                if !*made {
                    return;
                }
            }
            let fills = crate::journal::Fills {
                request_id: open.event.request_id.as_bytes(),
                trace_id: open.event.trace_id.as_ref().map(|t| t.as_bytes()),
                request_bytes: open.event.request_bytes,
            };
            link.journal
                .begin_with(link.owner, &open.started, memory, bytes, &fills)
        } else {
            let mut line = Out::new(&mut self.scratch.line);
            if !emf::encode(&open.ending_record(), &self.settings, pool, &mut line) {
                return;
            }
            let len = line.len();
            let line = self.scratch.line.get(..len).unwrap_or_default();
            let mut t = Out::new(&mut self.scratch.template);
            if !crate::journal::prepare(line, &mut t) {
                return;
            }
            let n = t.len();
            let template = self.scratch.template.get(..n).unwrap_or_default();
            link.journal
                .begin(link.owner, &open.started, memory, template)
        };
        if let Some(slot) = slot
            && link.slots.len() < link.slots.capacity()
        {
            link.slots.push(slot);
            self.tracker.journaled_newest(slot);
        }
    }

    /// The record that now waits for the runtime's next `/next` replaces its invoke's prepared
    /// one in the journal: from here until it is written, any ending of the process (or its
    /// successor) writes it as it is, with the time since its result as its post-response
    /// time. `as_provisional`: the Runtime API's answer to the result sent on `conn` left the
    /// outcome as the provisional record of that result had it (see
    /// [`Engine::journal_provisional`]).
    fn journal_finished(&mut self, conn: usize, as_provisional: bool) {
        self.stream_constants_from_journal();
        let Some(link) = self.journal.as_mut() else {
            return;
        };
        let Some((record, sent_ns, pool)) = self.tracker.awaiting_in_place() else {
            return;
        };
        let Some(slot) = record.journal_slot else {
            return;
        };
        // The record is encoded now, as it will be written (the environment's properties on
        // it or not); if it cannot be kept, it is encoded again when it goes. The answer most
        // often confirms the provisional record, which the slot then holds already: made from
        // the same invoke with the same outcome at the same time, and encoded in the same
        // stream state, it is the same line. (A record with custom values is encoded again:
        // the channel may have added to them, and their pool chunks may have grown.)
        let constants_before = self.prefixes.constants_written();
        let kept = link.provisional.take().filter(|p| {
            as_provisional
                && p.conn == conn
                && p.slot == slot
                && p.sent_ns == sent_ns
                && p.constants_before == constants_before
                && record.custom == crate::custom::Custom::NONE
        });
        let finished = match kept {
            Some(p) => {
                if p.constants_after {
                    self.prefixes.note_constants_written();
                }
                true
            }
            None => keep_final(
                link,
                &self.settings,
                &mut self.prefixes,
                &mut self.scratch,
                pool,
                record,
                sent_ns,
            ),
        };
        if finished {
            link.finished = Some(slot);
            self.stream_constants_to_journal();
            return;
        }
        if !constants_before {
            self.prefixes.forget_constants_written();
        }
        // A record the journal cannot hold (over a slot with its custom values) waits in
        // memory only; its prepared record, which says the invoke never ended, must not be
        // written in its place.
        link.journal.end(slot, link.owner.pid);
    }

    /// A result was sent whole and its answer is awaited: until it comes, the invoke's journal
    /// slot keeps the record it has if the answer accepts it, so that a process that ends
    /// before reading the answer (`_exit`, a fatal signal, SIGKILL) reports what the Runtime
    /// API most likely did: a result taken. The answer decides the record that goes out.
    fn journal_provisional(&mut self, conn: usize) {
        if self.tracker.has_handoff() {
            return;
        }
        let Some(sent) = self.conns.get(conn).and_then(|c| c.result.as_ref()) else {
            return;
        };
        let Some(link) = self.journal.as_mut() else {
            return;
        };
        let record = &mut self.provisional_record;
        if !self
            .tracker
            .finished_record_of(&sent.id, &sent.outcome, &sent.at, record)
        {
            return;
        }
        let Some(slot) = record.journal_slot else {
            return;
        };
        let constants_before = self.prefixes.constants_written();
        let kept = keep_final(
            link,
            &self.settings,
            &mut self.prefixes,
            &mut self.scratch,
            self.tracker.pool_ref(),
            record,
            sent.at.mono_ns,
        );
        let constants_after = self.prefixes.constants_written();
        // Only the final record decides whether the stream has its constants.
        if !constants_before {
            self.prefixes.forget_constants_written();
        }
        link.provisional = kept.then_some(Provisional {
            conn,
            slot,
            sent_ns: sent.at.mono_ns,
            constants_before,
            constants_after,
        });
    }

    /// Frees the journal slots of invokes that are no longer open (finished, timed out,
    /// forgotten): a result sent is final even while its record waits for the next `/next`.
    fn sync_journal(&mut self) {
        let Some(link) = self.journal.as_mut() else {
            return;
        };
        if link.slots.is_empty() {
            return;
        }
        let tracker = &self.tracker;
        link.slots.retain(|slot| {
            let open = tracker.journals(*slot);
            if !open {
                link.journal.end(*slot, link.owner.pid);
            }
            open
        });
    }

    /// Shares cold start and open invokes with the environment's other processes (see
    /// [`crate::handoff`]).
    /// This process talks to the Runtime API but is not its environment's root: it may be a
    /// per-request helper (a shell runtime's `curl`) or a runtime started by another process
    /// (`strace`, `timeout`, a shell that does not `exec`). Until its requests tell which, its
    /// invokes are also kept in the environment's `handoff`.
    pub fn attach_handoff(&mut self, handoff: Box<dyn crate::tracker::Handoff>) {
        self.tracker.attach_handoff(handoff);
        self.role = Role::Undecided;
    }

    /// What this process turned out to be since the last call, once.
    pub fn take_decision(&mut self) -> Option<Role> {
        self.decided.take()
    }

    /// A request's head, in a process whose role is not known yet: a second request makes it a
    /// runtime of its own; a first request that posts the result of an invoke it did not
    /// open makes it a per-request helper.
    /// `conn`: where a request of `kind` is being written (its `writing_id`).
    fn decide_role(&mut self, kind: RequestKind, conn: usize) {
        if self.role != Role::Undecided {
            return;
        }
        self.requests_seen = self.requests_seen.saturating_add(1);
        let role = if self.requests_seen > 1 {
            self.tracker.keep_invokes();
            Role::Runtime
        } else if matches!(kind, RequestKind::Response | RequestKind::Error)
            && !self
                .conns
                .get(conn)
                .is_some_and(|c| self.tracker.is_open(c.writing_id.as_str()))
        {
            self.tracker.helper_decided();
            Role::Helper
        } else {
            return;
        };
        self.role = role;
        self.decided = Some(role);
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Hands each line waiting to be written to `record` (EMF records, one each, with their
    /// newline, in pieces that joined are the line) and each warning to `warning`, and empties
    /// the outbox.
    pub fn drain_output(
        &mut self,
        record: &mut dyn FnMut(&[&[u8]]),
        warning: &mut dyn FnMut(&str),
    ) {
        let o = &mut self.outbox;
        let mut from = 0;
        for waiting in &o.ends {
            match *waiting {
                Waiting::Line(end) => {
                    if let Some(line) = o.bytes.get(from..end) {
                        record(&[line]);
                    }
                    from = end;
                }
                Waiting::Journaled {
                    slot,
                    post_response_ns,
                } => {
                    let Some(link) = &self.journal else { continue };
                    let Scratch {
                        finished,
                        finished_at,
                        ..
                    } = &mut self.scratch;
                    // The line this engine encoded, where it still has it, in pieces around
                    // the value (the template the journal made of it, rendered, gives the same
                    // bytes): written from where it is, not copied into a line first.
                    let from_line = match (*finished_at, post_response_ns) {
                        (Some(f), Some(ns)) if f.slot == slot => {
                            *finished_at = None;
                            link.journal.write_finished_line(
                                slot,
                                link.owner.pid,
                                ns,
                                finished.get(..f.len).unwrap_or_default(),
                                f.value,
                                record,
                            )
                        }
                        _ => None,
                    };
                    if from_line.is_none() {
                        link.journal
                            .write_finished(slot, link.owner.pid, post_response_ns, record);
                    }
                }
            }
        }
        o.ends.clear();
        o.used = 0;
        for w in &o.warnings {
            warning(w);
        }
        o.warnings.clear();
    }

    /// Whether lines wait in the outbox.
    pub fn has_output(&self) -> bool {
        !self.outbox.ends.is_empty() || !self.outbox.warnings.is_empty()
    }

    /// Records dropped so far for want of room in the outbox.
    pub fn dropped_records(&self) -> u64 {
        self.outbox.dropped
    }

    fn warn(&mut self, args: std::fmt::Arguments) {
        let mut buf = [0u8; 320];
        let text = crate::text::format_into(&mut buf, args);
        self.outbox.warn(Warning::new(text));
    }

    /// One debug-level note that a bound was reached (once a process).
    fn bound_reached(&mut self, what: &str) {
        if !self.warned_bounds && self.settings.log_level >= crate::settings::LogLevel::Debug {
            self.warned_bounds = true;
            self.warn(format_args!("debug: {what}"));
        }
    }

    fn conn_of(&self, fd: i32) -> Option<usize> {
        self.fds.iter().find(|(f, _)| *f == fd).map(|(_, c)| *c)
    }

    fn new_connection(&mut self) -> Option<usize> {
        let id = if let Some(i) = self.conns.iter().position(|c| !c.in_use) {
            if let Some(c) = self.conns.get_mut(i) {
                *c = Connection::new();
            }
            i
        } else if self.conns.len() < self.conns.capacity() {
            self.conns.push(Connection::new());
            self.conns.len() - 1
        } else {
            return None;
        };
        // No shape of an earlier connection's heads.
        for dir in 0..2 {
            http::forget_shapes(shapes_of(&mut self.shapes, id, dir));
        }
        Some(id)
    }

    /// The host connected `fd` (successfully or in progress) to `addr`. Any earlier state of the
    /// fd number is dropped first: it may have been closed behind our back (`syscall(SYS_close)`).
    pub fn connected(&mut self, fd: i32, addr: Option<SocketAddr>) {
        self.forget_fd(fd);
        if !addr.is_some_and(|a| self.api.matches(&a)) {
            return;
        }
        if self.fds.len() >= self.fds.capacity() {
            return self
                .bound_reached("too many Runtime API fds at once; this one is not followed");
        }
        if !self.bits.insert(fd) {
            if !self.warned_fd_range {
                self.warned_fd_range = true;
                self.warn(format_args!(
                    "the Runtime API connection uses fd {fd}, beyond the {} fds lambda-meter can follow; this connection is not metered",
                    crate::fdtable::MAX_TRACKED_FD
                ));
            }
            return;
        }
        let Some(id) = self.new_connection() else {
            self.bits.remove(fd);
            return self.bound_reached(
                "too many Runtime API connections at once; this one is not followed",
            );
        };
        self.fds.push((fd, id));
    }

    /// `fd` is being closed (by `close`, `close_range`, `syscall(SYS_close)` or `dup2` onto it).
    pub fn closing(&mut self, fd: i32) {
        self.forget_fd(fd);
    }

    /// Every fd in `first..=last` is being closed (`close_range`).
    pub fn closing_range(&mut self, first: u32, last: u32) {
        let mut i = 0;
        while let Some(&(fd, _)) = self.fds.get(i) {
            if u32::try_from(fd).is_ok_and(|f| (first..=last).contains(&f)) {
                self.forget_fd(fd);
            } else {
                i += 1;
            }
        }
    }

    /// `new_fd` now refers to what `old_fd` refers to.
    pub fn duplicated(&mut self, old_fd: i32, new_fd: i32) {
        if old_fd == new_fd {
            return;
        }
        self.forget_fd(new_fd);
        let Some(id) = self.conn_of(old_fd) else {
            return;
        };
        if self.fds.len() >= self.fds.capacity() || !self.bits.insert(new_fd) {
            return;
        }
        self.fds.push((new_fd, id));
        if let Some(c) = self.conns.get_mut(id) {
            c.fd_count += 1;
        }
    }

    /// The host wrote `data` to `fd`.
    pub fn sent(&mut self, fd: i32, data: &[u8], probe: &dyn Fn(Reading) -> Probe) {
        self.working_on(fd, |e| e.sent_on(fd, data, probe));
    }

    /// The host read `data` from `fd`.
    pub fn received(&mut self, fd: i32, data: &[u8], probe: &dyn Fn(Reading) -> Probe) {
        self.working_on(fd, |e| e.received_on(fd, data, probe));
    }

    /// The host read end-of-stream from `fd`.
    pub fn end_of_stream(&mut self, fd: i32, probe: &dyn Fn(Reading) -> Probe) {
        self.working_on(fd, |e| e.end_of_stream_on(fd, probe));
    }

    /// `n` bytes the host moved on `fd` (`sent`: wrote, else read) went by uncopied, right
    /// after the bytes it was last given in that direction: a thread moved them while another
    /// held the engine. Where they are body bytes the connection reads past, they are counted
    /// (and a message they end is complete); else the connection is no longer followed.
    pub fn skipped(&mut self, fd: i32, sent: bool, n: u64, probe: &dyn Fn(Reading) -> Probe) {
        self.working_on(fd, |e| e.skipped_on(fd, sent, n, probe));
    }

    /// [`Engine::skipped`].
    fn skipped_on(&mut self, fd: i32, sent: bool, n: u64, probe: &dyn Fn(Reading) -> Probe) {
        let Some(id) = self.conn_of(fd) else {
            return;
        };
        let Some(c) = self.conns.get_mut(id) else {
            return;
        };
        let parser = if sent {
            &mut c.requests
        } else {
            &mut c.responses
        };
        let Some(first) = parser.skip(n) else {
            return self.drop_connection(id, Untrack::Unkept);
        };
        if sent {
            // What the body bytes tell: an error's type (not read past a gap), a result's
            // first byte.
            c.error_scan.lost();
            if first
                && let Some(w) = c.writing
                && w.kind == RequestKind::Response
            {
                let now = probe(Reading::Clocks);
                self.tracker.result_first_byte(&c.writing_id, &now);
            }
            self.sent_on(fd, &[], probe);
        } else {
            c.answer_scan.lost();
            self.received_on(fd, &[], probe);
        }
    }

    /// Runs `f`, which moves bytes of `fd`'s connection through its parsers, noting the fd
    /// while it does (see [`Engine::abandoned`]).
    fn working_on(&mut self, fd: i32, f: impl FnOnce(&mut Engine)) {
        self.working = fd;
        f(self);
        self.working = -1;
    }

    /// A call into the engine was abandoned half-way (a signal handler that interrupted it
    /// never returned): a connection whose bytes were going through its parsers then is out of
    /// step and is dropped; nothing else was left half-done in a way that matters.
    pub fn abandoned(&mut self) {
        let fd = std::mem::replace(&mut self.working, -1);
        if let Some(id) = (fd >= 0).then(|| self.conn_of(fd)).flatten() {
            self.drop_connection(id, Untrack::Abandoned);
        }
    }

    /// The host read `fd`'s connection through a stdio stream past the hooks (a refill of its
    /// buffer no hook saw): the bytes it took cannot be known, so the connection is no longer
    /// followed (one debug line). An invoke opens only once its event is wholly read, so none
    /// is left open by this.
    pub fn stream_unseen(&mut self, fd: i32) {
        if let Some(id) = self.conn_of(fd) {
            self.drop_connection(id, Untrack::Unseen);
        }
    }

    /// Bytes of `fd`'s connection went by where they could not be kept: the connection (every
    /// fd of it) is no longer followed (one debug line).
    pub fn unfollow(&mut self, fd: i32) {
        if let Some(id) = self.conn_of(fd) {
            self.drop_connection(id, Untrack::Unkept);
        }
    }

    /// [`Engine::sent`].
    fn sent_on(&mut self, fd: i32, data: &[u8], probe: &dyn Fn(Reading) -> Probe) {
        let Some(id) = self.conn_of(fd) else {
            return;
        };
        let mut rest = data;
        let mut now = None;
        loop {
            let step = match self.conns.get_mut(id) {
                Some(c) => c
                    .requests
                    .step_shaped(&mut rest, shapes_of(&mut self.shapes, id, 0)),
                None => return,
            };
            let event = match step {
                Ok(Some(e)) => e,
                Ok(None) => return,
                Err(e) => return self.drop_connection(id, Untrack::Garbage(e)),
            };
            match event {
                Event::Head => {
                    if !self.request_head(id) {
                        return;
                    }
                }
                Event::Body { bytes, first } => {
                    let Some(c) = self.conns.get_mut(id) else {
                        return;
                    };
                    let Some(w) = c.writing else { continue };
                    if w.kind.carries_error() {
                        c.error_scan.feed(bytes);
                    }
                    if first && w.kind == RequestKind::Response {
                        let now = reading(&mut now, Reading::Clocks, probe);
                        self.tracker.result_first_byte(&c.writing_id, &now);
                    }
                }
                Event::Complete { body_len } => {
                    let Some(c) = self.conns.get_mut(id) else {
                        return;
                    };
                    let writing = c.writing.take();
                    let head = c.requests.head();
                    let error_type = c
                        .error_scan
                        .error_type()
                        .or_else(|| head.value(field::ERROR_TYPE).filter(|v| !v.is_empty()))
                        .map(ErrorType::new);
                    let trailer_error = head
                        .trailer(&api::FIELDS, field::TRAILER_ERROR_TYPE)
                        .filter(|v| !v.is_empty())
                        .map(ErrorType::new);
                    // A `/next` only notes when it was sent; a result ends an invoke.
                    let need = match writing.map(|w| w.kind) {
                        Some(RequestKind::Next) => Reading::Clocks,
                        _ => Reading::Usage,
                    };
                    let now = reading(&mut now, need, probe);
                    self.request_complete(id, writing, body_len, error_type, trailer_error, &now);
                }
            }
        }
    }

    /// A request's head was written on connection `id`; false when the connection was dropped.
    fn request_head(&mut self, id_of_conn: usize) -> bool {
        let Some(c) = self.conns.get_mut(id_of_conn) else {
            return false;
        };
        if c.pending.len() >= MAX_PENDING {
            self.drop_connection(id_of_conn, Untrack::TooManyPending);
            return false;
        }
        let head = c.requests.head();
        let (kind, rid) = RequestKind::classify(head.method(), head.target());
        let streamed = head
            .value(field::RESPONSE_MODE)
            .is_some_and(|m| m.eq_ignore_ascii_case("streaming"));
        c.writing_id.set(rid);
        c.writing = Some(Writing { kind, streamed });
        self.decide_role(kind, id_of_conn);
        let Some(c) = self.conns.get_mut(id_of_conn) else {
            return false;
        };
        c.error_scan.reset();
        if matches!(kind, RequestKind::Response | RequestKind::Error) {
            c.result_answer = None;
        }
        let early = c.early.pop_front();
        if early.is_none() {
            c.pending.push_back(kind);
        }
        if let Some((answer, at)) = early {
            self.response_complete(id_of_conn, kind, &answer, &at);
        }
        true
    }

    /// [`Engine::received`].
    fn received_on(&mut self, fd: i32, data: &[u8], probe: &dyn Fn(Reading) -> Probe) {
        let Some(id) = self.conn_of(fd) else {
            return;
        };
        let mut rest = data;
        let mut now = None;
        loop {
            let step = match self.conns.get_mut(id) {
                Some(c) => c
                    .responses
                    .step_shaped(&mut rest, shapes_of(&mut self.shapes, id, 1)),
                None => return,
            };
            match step {
                Ok(Some(Event::Complete { body_len })) => {
                    self.response_read(id, body_len, &mut now, probe);
                }
                Ok(Some(Event::Head)) => {
                    if let Some(c) = self.conns.get_mut(id) {
                        c.answer_scan.reset();
                    }
                }
                // Only a refusal of a result is looked into: it says why there (an answer that
                // accepts one decides nothing with its body).
                Ok(Some(Event::Body { bytes, .. })) => {
                    if let Some(c) = self.conns.get_mut(id)
                        && matches!(
                            c.pending.front(),
                            Some(RequestKind::Response | RequestKind::Error)
                        )
                        && !(200..300).contains(&c.responses.head().status)
                    {
                        c.answer_scan.feed(bytes);
                    }
                }
                Ok(None) => return,
                Err(e) => return self.drop_connection(id, Untrack::Garbage(e)),
            }
        }
    }

    /// [`Engine::end_of_stream`].
    fn end_of_stream_on(&mut self, fd: i32, probe: &dyn Fn(Reading) -> Probe) {
        let Some(id) = self.conn_of(fd) else {
            return;
        };
        let ended = self
            .conns
            .get_mut(id)
            .and_then(|c| c.responses.end_of_stream());
        if let Some(Event::Complete { body_len }) = ended {
            self.response_read(id, body_len, &mut None, probe);
        }
    }

    /// A response was read whole on connection `id`.
    fn response_read(
        &mut self,
        id: usize,
        body_len: u64,
        now: &mut Option<(Probe, Reading)>,
        probe: &dyn Fn(Reading) -> Probe,
    ) {
        let Some(c) = self.conns.get(id) else {
            return;
        };
        // The answer is made in the engine's own (taken out while it is used): in place, its
        // ids' text copied once.
        let mut slot = std::mem::take(&mut self.answer);
        let Some(answer) = slot.first_mut() else {
            self.answer = slot;
            return;
        };
        answer.fill(c.responses.head(), body_len, c.answer_scan.error_type());
        // The answer to `/next` starts an invoke; other answers need the clocks at most.
        // (An answer read before its request was seen is kept with a full reading.)
        let need = match c.pending.front() {
            Some(RequestKind::Next) | None => Reading::Usage,
            Some(_) => Reading::Clocks,
        };
        let now = reading(now, need, probe);
        if let Some(c) = self.conns.get_mut(id) {
            match c.pending.pop_front() {
                Some(kind) => self.response_complete(id, kind, answer, &now),
                // Another thread wrote the request and has not reached its hook yet, while
                // this one already read the answer: pair them when the request shows up.
                None => {
                    let kept = c.early.push_back((*answer, now));
                    if !kept {
                        self.bound_reached("too many answers ahead of their requests");
                    }
                }
            }
        }
        self.answer = slot;
    }

    /// A response to a request of `kind` was fully read on connection `conn` at `now`.
    fn response_complete(&mut self, conn: usize, kind: RequestKind, answer: &Answer, now: &Probe) {
        match (kind, answer.status) {
            (RequestKind::Next, 200) => {}
            (RequestKind::Next, _) => return self.tracker.next_refused(),
            (RequestKind::RestoreNext, 200) => return self.tracker.restore_answered(now),
            (RequestKind::Response | RequestKind::Error, status) => {
                return self.result_answered(conn, status, answer.error_type());
            }
            _ => return,
        }
        self.report_ended_inits(answer.deadline_ms, now);
        let event = tracker::EventRef {
            request_id: &answer.request_id,
            trace_id: answer.trace_id(),
            deadline_ms: answer.deadline_ms,
            request_bytes: answer.body_len,
            thread: crate::custom::thread_key(),
        };
        let opened = self.tracker.opened_count();
        let flushed = self.tracker.event_received_ref(event, now, &emf::reserved);
        self.push_records(flushed, Some(now));
        self.sync_journal();
        if self.tracker.opened_count() != opened {
            self.journal_newest();
            if let Some(link) = self.downstream {
                let tracker = &self.tracker;
                (link.opened)(answer.request_id.as_bytes(), event.thread, &|id| {
                    tracker.is_open_id(id)
                });
            }
        }
    }

    fn request_complete(
        &mut self,
        conn: usize,
        writing: Option<Writing>,
        body_len: u64,
        error_type: Option<ErrorType>,
        trailer_error: Option<ErrorType>,
        now: &Probe,
    ) {
        let Some(w) = writing else { return };
        let (errored, error_type) = match w.kind {
            RequestKind::Next => {
                self.push_awaiting(now);
                self.tracker.next_requested(now);
                // Where the write was not seen before it happened (see `sending`).
                return self.write_batch_if_idle();
            }
            RequestKind::InitError => {
                let (len, pid) = self.read_channel(None, None);
                let channel = tracker::Channel {
                    bytes: self.channel_buf.get(..len).unwrap_or_default(),
                    pid,
                    reserved: &emf::reserved,
                };
                let record = self
                    .tracker
                    .init_error(error_type.as_deref(), now, &channel);
                return self.push_records(Some(record), Some(now));
            }
            RequestKind::Response => (trailer_error.is_some(), trailer_error),
            RequestKind::Error => (true, error_type),
            _ => return,
        };
        // An earlier result on this connection that was never answered is taken as accepted.
        self.finish_result(conn, None);
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        // Made where it is kept (its parts are not gathered in a value that is then copied).
        c.result = Some(SentResult {
            id: c.writing_id,
            outcome: Outcome {
                response_bytes: body_len,
                errored,
                error_type,
                streamed: w.streamed,
            },
            at: *now,
        });
        // (Looked at before it is taken: a `take` copies the whole value, answer or none.)
        if c.result_answer.is_some()
            && let Some((status, error_type)) = c.result_answer.take()
        {
            return self.finish_result(conn, Some((status, error_type.as_ref())));
        }
        self.journal_provisional(conn);
    }

    /// The Runtime API answered the result sent on connection `conn` (or, when the answer was
    /// read before the result was seen whole, the one being written).
    fn result_answered(&mut self, conn: usize, status: u16, error_type: Option<&ErrorType>) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if c.result.is_some() {
            self.finish_result(conn, Some((status, error_type)));
        } else {
            c.result_answer = Some((status, error_type.copied()));
        }
    }

    /// Ends the invoke of the result waiting on connection `conn`, as its answer says (`None`:
    /// no answer will be read; the result is taken as accepted).
    fn finish_result(&mut self, conn: usize, answer: Option<(u16, Option<&ErrorType>)>) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        // Copied out once, then marked gone (a `take` copies it twice: out, and into `sent`).
        let Some(sent) = c.result else {
            return;
        };
        c.result = None;
        if answer.is_none() {
            // Its answer, if it ever comes, is the oldest result answer still to be read on
            // this connection: it decides nothing now (not the connection's next result).
            if let Some(kind) = c
                .pending
                .first_mut(|k| matches!(k, RequestKind::Response | RequestKind::Error))
            {
                *kind = RequestKind::Other;
            }
        }
        // The outcome as sent, unless an answer changes it (a status other than 2xx: rare).
        let answered = match answer {
            Some((status, error_type)) if !(200..300).contains(&status) => {
                Some(sent.outcome.answered(status, error_type))
            }
            _ => None,
        };
        let outcome = answered.as_ref().unwrap_or(&sent.outcome);
        let now = &sent.at;
        // A record that still waits for `/next` goes first.
        if self.tracker.record_awaits() {
            let waited = self.tracker.flush();
            self.push_records(waited, Some(now));
        }
        // The channel first: what child processes handed over goes into the calls placed.
        let (len, pid) = self.read_channel(Some(&sent.id), Some(now.mono_ns));
        self.place_downstream(&sent.id);
        let channel = tracker::Channel {
            bytes: self.channel_buf.get(..len).unwrap_or_default(),
            pid,
            reserved: &emf::reserved,
        };
        let as_provisional = answered.as_ref().is_none_or(|a| *a == sent.outcome);
        let this = self.tracker.result_sent(&sent.id, outcome, now, &channel);
        if this.is_none() {
            self.journal_finished(conn, as_provisional);
        }
        self.sync_journal();
        self.push_records(this, Some(now));
    }

    /// Ends every invoke whose result waits for an answer that is not coming: sent at least
    /// [`RESULT_ANSWER_WAIT_NS`] before `now` (all of them when `now` is `None`).
    fn finish_unanswered(&mut self, now: Option<u64>) {
        for conn in 0..self.conns.len() {
            let due = self
                .conns
                .get(conn)
                .and_then(|c| c.result.as_ref())
                .is_some_and(|r| {
                    now.is_none_or(|now| now >= r.at.mono_ns.saturating_add(RESULT_ANSWER_WAIT_NS))
                });
            if due {
                self.finish_result(conn, None);
            }
        }
    }

    /// The host is about to write to `fd` (nothing is on the wire yet). A request that starts
    /// on an idle connection while a finished invoke's record waits is the runtime's next
    /// `/next` (a record waits only while no invoke is open): the record is complete and is
    /// put in the outbox now, so it is written before the runtime can be frozen or stopped
    /// after asking. The bytes themselves are not needed, so the host's buffer is never read
    /// before the real call has checked it.
    pub fn sending(&mut self, fd: i32, probe: &dyn Fn(Reading) -> Probe) {
        let Some(id) = self.conn_of(fd) else {
            return;
        };
        if !self.conns.get(id).is_some_and(|c| c.requests.is_idle()) {
            return;
        }
        if self.tracker.record_awaits() {
            let now = probe(Reading::Clocks);
            self.push_awaiting(&now);
        }
        self.write_batch_if_idle();
    }

    /// In Lambda's default model, held records are written before a runtime with no invoke
    /// open asks for its next event: from then on Lambda may freeze the environment, and a
    /// frozen environment may be shut down without running another instruction. So records
    /// are held there only while invokes overlap in one process. Lambda Managed Instances
    /// (`AWS_LAMBDA_MAX_CONCURRENCY`) never freeze an environment and stop it with SIGTERM,
    /// which the ending paths handle: records are held across `/next` there.
    fn write_batch_if_idle(&mut self) {
        if self.batch_waits_for_idle() {
            self.write_batch();
        }
    }

    fn batch_waits_for_idle(&self) -> bool {
        self.settings.max_concurrency <= 1
            && !self.batch.is_empty()
            && self.tracker.open_count() == 0
    }

    /// A custom value from the function, given on `thread`: `add` puts it on the invoke it
    /// belongs to (see [`Tracker::custom`]), under the record's naming rules.
    pub fn custom(
        &mut self,
        thread: u64,
        add: impl FnOnce(
            &mut crate::custom::Pool,
            &mut crate::custom::Custom,
            &dyn Fn(&str) -> bool,
        ) -> crate::custom::Status,
    ) -> crate::custom::Status {
        self.tracker
            .custom(thread, |pool, c| add(pool, c, &emf::reserved))
    }

    /// Whether a finished invoke's record waits for the runtime's next request, or held records
    /// wait for the runtime to go idle (either is written before that request leaves).
    pub fn record_awaits(&self) -> bool {
        self.tracker.record_awaits() || self.batch_waits_for_idle()
    }

    /// Time has passed: timeouts and records that waited long enough.
    pub fn tick(&mut self, now: &Probe) {
        self.finish_unanswered(Some(now.mono_ns));
        loop {
            // A timeout's record says what the invoke waited on, and what it still waits on.
            if let Some(id) = self.tracker.due(now) {
                self.place_downstream(&id);
                self.place_waiting(&id, now.mono_ns);
            } else if self.tracker.awaiting_due(now) {
                self.place_post_response();
            }
            let Some(r) = self.tracker.tick(now) else {
                break;
            };
            // The record first: one that waited for `/next` goes from its journal slot, which
            // the journal's sync would otherwise free (nothing left to write) before the
            // outbox writes it.
            self.push_records(Some(r), Some(now));
            self.sync_journal();
        }
        if self.batch_due_ns.is_some_and(|due| now.mono_ns >= due) {
            self.write_batch();
        }
    }

    /// When [`Engine::tick`] next has work (monotonic ns).
    pub fn next_wakeup(&self) -> Option<u64> {
        let (firm, answers) = self.next_wakeups();
        match (firm, answers) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// [`Engine::next_wakeup`] in two: when something is due that only time brings (a
    /// deadline, a record's wait for `/next`, a batch), and when a result's wait for its
    /// answer ends ([`RESULT_ANSWER_WAIT_NS`]), which the answer itself, read in a moment by
    /// the host's next call, most often ends first.
    pub fn next_wakeups(&self) -> (Option<u64>, Option<u64>) {
        // (Plain loops and compares: this runs after every call into the engine.)
        let mut firm = self.tracker.next_wakeup();
        if let Some(due) = self.batch_due_ns {
            firm = Some(tracker::earliest(firm, due));
        }
        let mut answers = None;
        for c in &self.conns {
            if let Some(r) = &c.result {
                let due = r.at.mono_ns.saturating_add(RESULT_ANSWER_WAIT_NS);
                answers = Some(tracker::earliest(answers, due));
            }
        }
        (firm, answers)
    }

    /// The process is exiting: write what still waits.
    pub fn flush(&mut self) {
        self.finish_unanswered(None);
        self.place_post_response();
        let record = self.tracker.flush();
        self.push_records(record, None);
        self.write_batch();
    }

    /// The runtime asks for its next event at `now` (its request is about to leave, or left):
    /// the record that waited for it is complete, and goes. Most often its final line is in
    /// the journal already and goes from there, the record never copied.
    fn push_awaiting(&mut self, now: &Probe) {
        self.place_post_response();
        let Some((record, sent_ns, _)) = self.tracker.awaiting_in_place() else {
            return;
        };
        record.post_response_ns = Some(now.mono_ns.saturating_sub(sent_ns));
        let (custom, post_response) = (record.custom, record.post_response_ns);
        let from_journal = self
            .tracker
            .awaiting()
            .and_then(|r| self.journaled_final(r, Some(now), true));
        match from_journal {
            Some(slot) => {
                self.tracker.forget_awaiting();
                self.commit_journaled(slot, custom, post_response);
            }
            None => {
                let record = self.tracker.flush();
                self.push_records(record, Some(now));
            }
        }
    }

    /// The journal slot `r`'s final line waits in, when it goes from there as it is: not held
    /// for a batch, and (`alone`) with nothing held to write ahead of it.
    fn journaled_final(&self, r: &InvokeRecord, now: Option<&Probe>, alone: bool) -> Option<usize> {
        if self.held(r, now) || (alone && writes_batch_first(r)) {
            return None;
        }
        let link = self.journal.as_ref()?;
        (r.journal_slot.is_some() && link.finished == r.journal_slot)
            .then_some(link.finished)
            .flatten()
    }

    /// Whether `r`, handed over at `now`, is held for a batched record.
    fn held(&self, r: &InvokeRecord, now: Option<&Probe>) -> bool {
        let pool = self.tracker.pool_ref();
        now.is_some()
            && self.settings.batch > 1
            && emf::batchable(r, pool)
            // (Held values stay in the pool until the batch is written: half of it stays for
            // the open invokes'.)
            && (r.custom.is_empty() || pool.spare_chunks() > crate::custom::POOL_CHUNKS / 2)
    }

    /// Writes the final line journal `slot` holds, with its post-response time, and frees the
    /// record's custom values.
    fn commit_journaled(
        &mut self,
        slot: usize,
        mut custom: crate::custom::Custom,
        post_response: Option<u64>,
    ) {
        if let Some(link) = self.journal.as_mut() {
            link.finished = None;
            link.slots.retain(|s| *s != slot);
        }
        self.tracker.pool().free(&mut custom);
        if !self.outbox.commit_journaled(slot, post_response) {
            self.outbox.dropped += 1;
        }
    }

    /// Encodes a finished record into the outbox, or holds it for a batched record
    /// (`LAMBDA_METER_BATCH`). `now` is when it was handed over (`None` at exit, when nothing
    /// is held).
    fn push_records(&mut self, record: Option<InvokeRecord>, now: Option<&Probe>) {
        let Some(r) = record else { return };
        if let Some(now) = now
            && self.held(&r, Some(now))
        {
            return self.hold(r, now);
        }
        if writes_batch_first(&r) {
            self.write_batch();
        }
        // A record that waited for `/next` in the journal goes from there.
        if let Some(slot) = self.journaled_final(&r, now, false) {
            return self.commit_journaled(slot, r.custom, r.post_response_ns);
        }
        self.stream_constants_from_journal();
        let pool = self.tracker.pool_ref();
        let mut out = self.outbox.room();
        let written = emf::encode_cached(&r, &self.settings, pool, &mut self.prefixes, &mut out);
        let len = out.len();
        if written {
            self.outbox.commit(len);
        } else if out.overflowed() {
            self.outbox.dropped += 1;
        }
        let mut custom = r.custom;
        self.tracker.pool().free(&mut custom);
        self.stream_constants_to_journal();
    }

    /// The environment's log stream is shared by its processes (a shell runtime's `curl`s, a
    /// restarted runtime): whether one of them wrote the constant properties is kept in the
    /// journal, so that they go out once per stream, not once per process.
    /// A per-request helper (a shell runtime's `curl`) keeps no journal: the environment's
    /// cold start, which one helper claims, carries them, so the others never do.
    fn stream_constants_from_journal(&mut self) {
        if self.prefixes.constants_written() {
            return;
        }
        let in_journal = self
            .journal
            .as_ref()
            .is_some_and(|link| link.journal.stream_has_constants());
        if in_journal || self.tracker.has_handoff() {
            self.prefixes.note_constants_written();
        }
    }

    fn stream_constants_to_journal(&self) {
        if self.prefixes.constants_written()
            && let Some(link) = &self.journal
            && !link.journal.stream_has_constants()
        {
            link.journal.note_stream_has_constants();
        }
    }

    /// Adds `r` to the batch, writing the batch first when `r` falls in a later CloudWatch
    /// period than its first record, and after when it is full.
    fn hold(&mut self, r: InvokeRecord, now: &Probe) {
        if !self.forget_finished(&r) {
            return;
        }
        let period_ms = u64::from(self.settings.resolution) * 1000;
        let period = |ts: u64| ts / period_ms;
        if self
            .batch
            .first()
            .is_some_and(|first| period(first.timestamp_ms) != period(r.timestamp_ms))
        {
            self.write_batch();
        }
        if self.batch.is_empty() {
            let end_ms = (period(r.timestamp_ms) + 1) * period_ms;
            let left_ns = end_ms.saturating_sub(now.wall_ms).saturating_mul(1_000_000);
            self.batch_due_ns = Some(now.mono_ns.saturating_add(left_ns));
        }
        let kept = self.keep_in_journal(&r);
        if self.batch.len() < self.batch.capacity()
            && self.batch_kept_in.len() < self.batch_kept_in.capacity()
        {
            self.batch.push(r);
            self.batch_kept_in.push(kept.unwrap_or(NOT_KEPT));
        } else {
            let mut custom = r.custom;
            self.tracker.pool().free(&mut custom);
        }
        if kept.is_none() || self.batch.len() >= self.settings.batch {
            // Held only where an ending or a successor can still write it: else not held.
            self.write_batch();
        }
    }

    /// `r` no longer waits in the journal as a finished record (it is held, or written another
    /// way): its slot is freed. False when the environment's root, ending, took the slot and
    /// writes the record itself: it must not go out here too.
    fn forget_finished(&mut self, r: &InvokeRecord) -> bool {
        if let Some(link) = self.journal.as_mut()
            && r.journal_slot.is_some()
            && link.finished == r.journal_slot
            && let Some(slot) = link.finished.take()
        {
            link.slots.retain(|s| *s != slot);
            // Claimed and freed without a write: the record goes on another way.
            let pid = link.owner.pid;
            return link.journal.write_finished(slot, pid, None, &mut |_| {})
                || !link.journal.taken_by_another(slot, pid);
        }
        true
    }

    /// Keeps `r`'s own line in the journal while it is held, so that the process ending (exit,
    /// `_exit`, a fatal signal, SIGTERM) or vanishing (its successor) still writes it. Lines
    /// share a slot while they fit; a new slot is taken only while more than half stay free
    /// for open invokes. Without a journal (a forked child) nothing is held.
    fn keep_in_journal(&mut self, r: &InvokeRecord) -> Option<usize> {
        let link = self.journal.as_ref()?;
        let mut out = Out::new(&mut self.scratch.line);
        if !emf::encode_held(r, &self.settings, self.tracker.pool_ref(), &mut out) {
            return None;
        }
        let len = out.len();
        let line = self.scratch.line.get(..len).unwrap_or_default();
        if let Some(&slot) = self.batch_slots.last()
            && link.journal.hold_more(slot, link.owner.pid, line)
        {
            return Some(slot);
        }
        if link.journal.free_count() <= crate::journal::SLOT_COUNT / 2
            || self.batch_slots.len() >= self.batch_slots.capacity()
        {
            return None;
        }
        let skip = self.batch_slots.iter().fold(0u64, |m, s| m | slot_bit(*s));
        let slot = link.journal.hold(link.owner, line, skip)?;
        self.batch_slots.push(slot);
        Some(slot)
    }

    /// Writes the held records as one batched record.
    fn write_batch(&mut self) {
        self.batch_due_ns = None;
        if self.batch.is_empty() {
            return;
        }
        // The journal's copies go first: a process ending from here on has the batch's line
        // to write, or nothing. A slot this process can no longer release was taken by the
        // environment's root, ending: its records are written there, and left out here.
        let mut taken = 0u64;
        if let Some(link) = &self.journal {
            for slot in &self.batch_slots {
                if !link.journal.release(*slot, link.owner.pid) {
                    taken |= slot_bit(*slot);
                }
            }
        }
        self.batch_slots.clear();
        if taken != 0 {
            let kept_in = &self.batch_kept_in;
            let pool = self.tracker.pool();
            let mut i = 0;
            self.batch.retain_mut(|r| {
                let slot = kept_in.get(i).copied().unwrap_or(NOT_KEPT);
                i += 1;
                let mine = slot == NOT_KEPT || taken & slot_bit(slot) == 0;
                if !mine {
                    pool.free(&mut r.custom);
                }
                mine
            });
        }
        self.batch_kept_in.clear();
        if self.batch.is_empty() {
            return;
        }
        self.stream_constants_from_journal();
        let pool = self.tracker.pool_ref();
        let mut out = self.outbox.room();
        let written = emf::encode_batch(
            &self.batch,
            &self.settings,
            pool,
            &mut self.prefixes,
            &mut out,
        );
        let len = out.len();
        if written {
            self.outbox.commit(len);
        } else if out.overflowed() {
            self.outbox.dropped += 1;
        }
        self.stream_constants_to_journal();
        let pool = self.tracker.pool();
        for r in &mut self.batch {
            pool.free(&mut r.custom);
        }
        self.batch.clear();
    }

    /// In a forked child: nothing inherited is the child's to report. It becomes a runtime of
    /// its own if it connects to the Runtime API itself.
    pub fn forked_child(&mut self, born_ns: u64, owner: Owner) {
        for (fd, _) in &self.fds {
            self.bits.remove(*fd);
        }
        self.fds.clear();
        for c in &mut self.conns {
            c.in_use = false;
            c.result = None;
        }
        self.tracker.reborn(born_ns);
        self.role = Role::Alone;
        self.requests_seen = 0;
        self.decided = None;
        // The parent's held records are the parent's to write (its pid is on their slots).
        self.batch.clear();
        self.batch_due_ns = None;
        self.batch_slots.clear();
        self.batch_kept_in.clear();
        // What the parent had still to write is the parent's.
        self.outbox.ends.clear();
        self.outbox.used = 0;
        self.outbox.warnings.clear();
        // The parent's journaled invokes stay the parent's (its pid is on their slots).
        if let Some(link) = self.journal.as_mut() {
            link.slots.clear();
            link.finished = None;
            link.owner = owner;
        }
        self.scratch.finished_at = None;
    }

    /// Number of connections followed now.
    pub fn connection_count(&self) -> usize {
        self.conns.iter().filter(|c| c.in_use).count()
    }

    fn forget_fd(&mut self, fd: i32) {
        self.bits.remove(fd);
        let Some(at) = self.fds.iter().position(|(f, _)| *f == fd) else {
            return;
        };
        let (_, id) = self.fds.swap_remove(at);
        if let Some(c) = self.conns.get_mut(id) {
            c.fd_count = c.fd_count.saturating_sub(1);
            if c.fd_count == 0 {
                c.in_use = false;
                // Closed before its result's answer was read: no answer will come.
                self.finish_result(id, None);
            }
        }
    }

    fn drop_connection(&mut self, id: usize, why: Untrack) {
        let mut i = 0;
        while let Some(&(fd, c)) = self.fds.get(i) {
            if c == id {
                self.bits.remove(fd);
                self.fds.swap_remove(i);
            } else {
                i += 1;
            }
        }
        if let Some(c) = self.conns.get_mut(id) {
            c.in_use = false;
        }
        self.finish_result(id, None);
        if let Untrack::Abandoned = why {
            // The host's own doing, not bad input: a debug line.
            return self.bound_reached(
                "a signal handler left the library half-way through a Runtime API connection's bytes; it is not followed any more",
            );
        }
        if let Untrack::Unkept = why {
            return self.bound_reached(
                "bytes of a Runtime API connection went by while the library was busy and did not fit the room kept for them; the connection is not followed any more",
            );
        }
        if let Untrack::Unseen = why {
            return self.bound_reached(
                "a stdio stream on a Runtime API connection cannot be followed (read where no hook sees it: an inline getc_unlocked, fscanf, ungetc; or more than 16 streams at once); the connection is not followed any more",
            );
        }
        if !self.warned_garbage {
            self.warned_garbage = true;
            let reason = match why {
                Untrack::Garbage(e) => e.describe(),
                Untrack::TooManyPending => "too many requests without responses",
                Untrack::Abandoned | Untrack::Unseen | Untrack::Unkept => "",
            };
            self.warn(format_args!(
                "stopped following a Runtime API connection ({reason}); invokes on it are not metered"
            ));
        }
    }
}

/// Adds to invoke `id`'s calls, through `link`, the downstream figures child processes of the
/// environment handed over in channel lines `bytes` ([`crate::downstream::child_line`]): those
/// of calls made within the invoke (from its event to `until_ns`, its result). Where other
/// invokes are open here too, they cannot be told apart: marked shared.
fn merge_children(
    tracker: &tracker::Tracker,
    link: crate::downstream::Link,
    id: &RequestId,
    bytes: &[u8],
    until_ns: u64,
) {
    let Some(since_ns) = tracker.started_mono_ns(id) else {
        return;
    };
    let shared = tracker.open_count() > 1;
    for raw in bytes.split(|b| *b == b'\n') {
        // (Cheap first look: most lines are custom values.)
        if raw.len() < 16 || raw.get(..16) != Some(&b"{\"downstreamOf\":"[..]) {
            continue;
        }
        let Some(line) = crate::downstream::child_line(raw) else {
            continue;
        };
        if line.since_ns < since_ns || line.until_ns > until_ns {
            continue;
        }
        let mut buf = [0u8; crate::downstream::NAME_LEN + 8];
        let mut out = Out::new(&mut buf);
        if !crate::json::unescape(line.name, &mut out) || out.overflowed() {
            continue;
        }
        if let Ok(name) = std::str::from_utf8(out.written()) {
            (link.merge)(id.as_bytes(), name, &line.figures, shared);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use std::cell::Cell;

    fn leak_bits() -> &'static FdBits {
        Box::leak(Box::new(FdBits::new()))
    }

    /// What one engine call put in the outbox.
    #[derive(Debug, Default)]
    struct Effects {
        lines: Vec<String>,
        warnings: Vec<String>,
    }

    /// An engine whose calls return what they put in its outbox.
    struct E(Engine);

    impl std::ops::Deref for E {
        type Target = Engine;
        fn deref(&self) -> &Engine {
            &self.0
        }
    }

    impl std::ops::DerefMut for E {
        fn deref_mut(&mut self) -> &mut Engine {
            &mut self.0
        }
    }

    impl E {
        fn out(&mut self) -> Effects {
            let mut fx = Effects::default();
            self.0.drain_output(
                &mut |l| fx.lines.push(String::from_utf8(l.concat()).unwrap()),
                &mut |w| fx.warnings.push(w.to_string()),
            );
            fx
        }
        fn connected(&mut self, fd: i32, addr: Option<SocketAddr>) -> Effects {
            self.0.connected(fd, addr);
            self.out()
        }
        fn sent(&mut self, fd: i32, data: &[u8], p: &dyn Fn(Reading) -> Probe) -> Effects {
            self.0.sent(fd, data, p);
            self.out()
        }
        fn received(&mut self, fd: i32, data: &[u8], p: &dyn Fn(Reading) -> Probe) -> Effects {
            self.0.received(fd, data, p);
            self.out()
        }
        fn sending(&mut self, fd: i32, p: &dyn Fn(Reading) -> Probe) -> Effects {
            self.0.sending(fd, p);
            self.out()
        }
        fn skipped(
            &mut self,
            fd: i32,
            sent: bool,
            n: usize,
            p: &dyn Fn(Reading) -> Probe,
        ) -> Effects {
            self.0.skipped(fd, sent, n as u64, p);
            self.out()
        }
        fn tick(&mut self, now: &Probe) -> Effects {
            self.0.tick(now);
            self.out()
        }
        fn flush(&mut self) -> Effects {
            self.0.flush();
            self.out()
        }
    }

    fn engine(bits: &'static FdBits) -> E {
        engine_with(bits, &[])
    }

    /// Attaches an in-memory journal to `e`, as this process's; its words, to look into.
    fn journaled(e: &mut E) -> &'static mut [u64] {
        let (journal, words) = memory_journal();
        e.attach_journal(journal, ME).unwrap();
        words
    }

    /// An engine under the settings the environment `vars` gives (as the library reads them).
    fn engine_with(bits: &'static FdBits, vars: &[(&str, &str)]) -> E {
        let (s, warnings) = Settings::from_env(
            &|k| match k {
                "AWS_LAMBDA_FUNCTION_NAME" => Some("fn".into()),
                _ => vars
                    .iter()
                    .find(|(v, _)| *v == k)
                    .map(|(_, x)| x.to_string()),
            },
            "test",
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        E(Engine::try_new(s, ApiAddress::parse("127.0.0.1:9001").unwrap(), bits, 0).unwrap())
    }

    fn api_addr() -> Option<SocketAddr> {
        Some("127.0.0.1:9001".parse().unwrap())
    }

    use crate::runtime_api::fixtures::{self, ACCEPTED};

    /// An event for `id` whose deadline is far away.
    fn next_event(id: &str, body: &str) -> Vec<u8> {
        fixtures::event(id, 9_999_999_999_999, body)
    }

    struct Clock(Cell<u64>);
    impl Clock {
        fn probe(&self) -> Probe {
            let ms = self.0.get();
            Probe {
                mono_ns: ms * 1_000_000,
                wall_ms: ms,
                cpu_ns: 0,
                max_rss_kb: 1024,
                process_rss_kb: 0,
                gauges: None,
                env: None,
            }
        }
    }

    /// Sends a result on `fd` and reads its `202`, then (if the record waits for it) starts
    /// the next `/next`: the record's lines.
    fn done(e: &mut E, fd: i32, result: &[u8], p: &dyn Fn(Reading) -> Probe) -> Vec<String> {
        answered(e, fd, result, ACCEPTED, p)
    }

    /// Sends a result on `fd` and reads `answer` to it, then (if the record waits for it)
    /// starts the next `/next`: the record's lines.
    fn answered(
        e: &mut E,
        fd: i32,
        result: &[u8],
        answer: &[u8],
        p: &dyn Fn(Reading) -> Probe,
    ) -> Vec<String> {
        let mut lines = e.sent(fd, result, p).lines;
        assert!(lines.is_empty(), "a record waits for the result's answer");
        lines = e.received(fd, answer, p).lines;
        if lines.is_empty() {
            lines = e.sending(fd, p).lines;
        }
        lines
    }

    #[test]
    fn one_record_per_invoke_on_keep_alive_connection() {
        let bits = leak_bits();
        let mut e = engine(bits);
        let clock = Clock(Cell::new(0));
        let p = |_: Reading| clock.probe();
        assert!(e.connected(5, api_addr()).warnings.is_empty());
        assert!(bits.contains(5));
        clock.0.set(100);
        e.sent(5, fixtures::NEXT, &p);
        clock.0.set(150);
        for b in next_event("id-1", "{\"a\":1}").chunks(1) {
            assert!(e.received(5, b, &p).lines.is_empty());
        }
        clock.0.set(190);
        let fx = e.sent(5, &fixtures::result("id-1", "response", "\"ok\"", ""), &p);
        assert!(fx.lines.is_empty(), "the record waits for the next /next");
        e.received(5, ACCEPTED, &p);
        clock.0.set(197);
        let fx = e.sending(5, &p);
        assert_eq!(fx.lines.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&fx.lines[0]).unwrap();
        assert_eq!(v["PostResponseDuration"], 7.0);
        assert_eq!(v["requestId"], "id-1");
        assert_eq!(v["Duration"], 40.0);
        assert_eq!(v["InitDuration"], 100.0);
        assert_eq!(v["ColdStart"], 1.0);
        assert_eq!(v["RequestBytes"], 7.0);
        assert_eq!(v["ResponseBytes"], 4.0);
        assert_eq!(v["Errors"], 0.0);
        e.sent(5, fixtures::NEXT, &p);
        e.received(5, &next_event("id-2", "{}"), &p);
        let lines = done(
            &mut e,
            5,
            &fixtures::result(
                "id-2",
                "error",
                r#"{"errorMessage":"no","errorType":"KeyError"}"#,
                "Lambda-Runtime-Function-Error-Type: Unhandled\r\n",
            ),
            &p,
        );
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["Errors"], 1.0);
        assert_eq!(v["errorType"], "KeyError");
        assert_eq!(v["ColdStart"], 0.0);
    }

    /// Bytes the host moved while another thread held the engine, counted but not kept (see
    /// `glue/deferred.rs`), after the first `kept` of a message: an event's and a result's
    /// body are read past whole, as though every byte had been seen; bytes that may hold more
    /// than the body stop the connection's following.
    #[test]
    fn body_bytes_that_went_by_uncopied_are_counted() {
        let bits = leak_bits();
        let mut e = engine(bits);
        let p = |_: Reading| Probe::default();
        e.connected(5, api_addr());
        e.sent(5, fixtures::NEXT, &p);
        let body = format!("{{\"pad\":\"{}\"}}", "p".repeat(300_000));
        let event = next_event("id-1", &body);
        let kept = event.len() - 250_000;
        assert!(e.received(5, &event[..kept], &p).lines.is_empty());
        assert!(e.skipped(5, false, event.len() - kept, &p).lines.is_empty());
        let result = fixtures::result("id-1", "response", &"\"r\"".repeat(1000), "");
        let cut = result.len() - 2_000;
        assert!(e.sent(5, &result[..cut], &p).lines.is_empty());
        assert!(e.skipped(5, true, 2_000, &p).lines.is_empty());
        e.received(5, ACCEPTED, &p);
        let lines = e.sending(5, &p).lines;
        assert_eq!(lines.len(), 1, "{lines:?}");
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["requestId"], "id-1");
        assert_eq!(v["RequestBytes"], body.len() as f64);
        assert_eq!(v["ResponseBytes"], 3000.0);
        assert!(bits.contains(5));

        // An error's body past a gap: its type is the one the header gives.
        e.sent(5, fixtures::NEXT, &p);
        e.received(5, &next_event("id-2", "{}"), &p);
        let body = format!(
            r#"{{"errorMessage":"{}","errorType":"KeyError"}}"#,
            "m".repeat(5000)
        );
        let error = fixtures::result(
            "id-2",
            "error",
            &body,
            "Lambda-Runtime-Function-Error-Type: Unhandled\r\n",
        );
        let cut = error.len() - body.len() + 100;
        e.sent(5, &error[..cut], &p);
        e.skipped(5, true, error.len() - cut, &p);
        e.received(5, ACCEPTED, &p);
        let lines = e.sending(5, &p).lines;
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["Errors"], 1.0);
        assert_eq!(v["errorType"], "Unhandled");

        // More than the body: the next message's head went by too.
        e.sent(5, fixtures::NEXT, &p);
        let event = next_event("id-3", "{}");
        e.received(5, &event[..event.len() - 2], &p);
        e.skipped(5, false, 2 + 10, &p);
        assert!(!bits.contains(5), "no longer followed");
    }

    const TOO_LARGE: &[u8] = b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: application/json\r\nContent-Length: 109\r\n\r\n{\"errorMessage\":\"Exceeded maximum allowed payload size (6291556 bytes).\",\"errorType\":\"RequestEntityTooLarge\"}";

    /// One invoke on fd 5 of `e`, its result answered with `answer`: the record.
    fn answered_record(e: &mut E, result: &[u8], answer: &[u8]) -> serde_json::Value {
        let p = |_: Reading| Probe::default();
        e.connected(5, api_addr());
        e.sent(5, fixtures::NEXT, &p);
        e.received(5, &next_event("r", "{}"), &p);
        let lines = answered(e, 5, result, answer, &p);
        assert_eq!(lines.len(), 1, "{lines:?}");
        serde_json::from_str(&lines[0]).unwrap()
    }

    #[test]
    fn a_record_waiting_for_next_goes_out_when_another_result_is_finished_first() {
        // A result finished while an invoke's record still waits for `/next` (no `sending` seen
        // for it: a second result for the same invoke, or for one not open here): the waiting
        // record goes out, with or without a journal.
        for with_journal in [false, true] {
            for second in ["a", "unknown"] {
                let bits = leak_bits();
                let mut e = engine(bits);
                if with_journal {
                    journaled(&mut e);
                }
                let clock = Clock(Cell::new(10));
                let p = |_: Reading| clock.probe();
                e.connected(5, api_addr());
                e.sent(5, fixtures::NEXT, &p);
                e.received(5, &next_event("a", "{}"), &p);
                clock.0.set(20);
                let mut lines = e
                    .sent(5, &fixtures::result("a", "response", "1", ""), &p)
                    .lines;
                lines.extend(e.received(5, ACCEPTED, &p).lines);
                clock.0.set(22);
                lines.extend(
                    e.sent(5, &fixtures::result(second, "response", "1", ""), &p)
                        .lines,
                );
                lines.extend(e.received(5, ACCEPTED, &p).lines);
                lines.extend(e.flush().lines);
                assert_eq!(
                    lines.len(),
                    1,
                    "journal {with_journal}, {second}: {lines:?}"
                );
                assert!(lines[0].contains(r#""requestId":"a""#), "{lines:?}");
            }
        }
    }

    #[test]
    fn a_journaled_record_goes_out_as_the_encoder_wrote_it() {
        // The same conversation through an engine without a journal (each record encoded and
        // written) and one with (each finished record journaled, then written from the line it
        // was made of, or rendered back from the journal): the same bytes, record for record.
        // Results accepted, failed, refused as too large; ids of several lengths; a
        // PostResponseDuration of one digit and of several.
        let run = |with_journal: bool| -> Vec<String> {
            let bits = leak_bits();
            // Each record its own line (a batched record is never journaled as finished).
            let mut e = engine_with(bits, &[("LAMBDA_METER_BATCH", "1")]);
            if with_journal {
                journaled(&mut e);
            }
            let clock = Clock(Cell::new(100));
            let p = |_: Reading| clock.probe();
            let mut lines = Vec::new();
            e.connected(5, api_addr());
            for (i, id) in [
                "a",
                "id-2",
                "0123456789abcdef0123456789abcdef0123",
                "x4",
                "y5",
                "z",
            ]
            .iter()
            .enumerate()
            {
                lines.extend(e.sent(5, fixtures::NEXT, &p).lines);
                clock.0.set(clock.0.get() + 3);
                lines.extend(e.received(5, &next_event(id, "{\"k\":1}"), &p).lines);
                clock.0.set(clock.0.get() + 11 * i as u64 + 1);
                let result = match i % 3 {
                    0 => fixtures::result(id, "response", "\"ok\"", ""),
                    1 => fixtures::result(
                        id,
                        "error",
                        r#"{"errorMessage":"no","errorType":"KeyError"}"#,
                        "Lambda-Runtime-Function-Error-Type: Unhandled\r\n",
                    ),
                    _ => fixtures::result(id, "response", "\"big\"", ""),
                };
                lines.extend(e.sent(5, &result, &p).lines);
                let answer = if i % 3 == 2 { TOO_LARGE } else { ACCEPTED };
                lines.extend(e.received(5, answer, &p).lines);
                clock.0.set(clock.0.get() + [2, 1234, 7, 99, 1, 40][i]);
            }
            lines.extend(e.sent(5, fixtures::NEXT, &p).lines);
            lines.extend(e.flush().lines);
            lines
        };
        let plain = run(false);
        let journaled_lines = run(true);
        assert_eq!(plain.len(), 6, "{plain:?}");
        assert_eq!(plain, journaled_lines);
    }

    #[test]
    fn a_provisional_record_stands_only_for_the_result_it_was_made_for() {
        // Two results for one invoke at the same instant on two connections, different outcomes:
        // the first one's answer decides the record, not the provisional record of the second.
        let bits = leak_bits();
        let mut e = engine(bits);
        journaled(&mut e);
        let clock = Clock(Cell::new(10));
        let p = |_: Reading| clock.probe();
        e.connected(5, api_addr());
        e.connected(6, api_addr());
        e.sent(5, fixtures::NEXT, &p);
        e.received(5, &next_event("a", "{}"), &p);
        clock.0.set(20);
        let mut lines = e
            .sent(5, &fixtures::result("a", "response", "1", ""), &p)
            .lines;
        let failed = fixtures::result("a", "error", r#"{"errorType":"Boom"}"#, "");
        lines.extend(e.sent(6, &failed, &p).lines);
        lines.extend(e.received(5, ACCEPTED, &p).lines);
        clock.0.set(25);
        lines.extend(e.sending(5, &p).lines);
        lines.extend(e.received(6, ACCEPTED, &p).lines);
        lines.extend(e.flush().lines);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["Errors"], 0, "{v}");
        assert!(v.get("errorType").is_none(), "{v}");
    }

    #[test]
    fn the_runtime_apis_answer_decides_the_outcome() {
        let ok = fixtures::result("r", "response", "\"fine\"", "");
        // A result refused as too large fails the invoke, as Lambda reports it.
        let v = answered_record(&mut engine(leak_bits()), &ok, TOO_LARGE);
        assert_eq!(v["Errors"], 1.0);
        assert_eq!(v["errorType"], "Function.ResponseSizeTooLarge");
        assert_eq!(v["ResponseBytes"], 6.0);
        // So does an error too large to post.
        let err = fixtures::result(
            "r",
            "error",
            r#"{"errorMessage":"m","errorType":"ValueError"}"#,
            "Lambda-Runtime-Function-Error-Type: Unhandled\r\n",
        );
        let v = answered_record(&mut engine(leak_bits()), &err, TOO_LARGE);
        assert_eq!(v["errorType"], "Function.ResponseSizeTooLarge");
        // Another refusal: the function's own type, else the one the answer names, else ours.
        let refused = |ty: &str| {
            let body = format!(r#"{{"errorMessage":"no","errorType":"{ty}"}}"#);
            format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        };
        let v = answered_record(
            &mut engine(leak_bits()),
            &err,
            &refused("InvalidStateTransition"),
        );
        assert_eq!(
            (v["Errors"].as_f64(), v["errorType"].as_str()),
            (Some(1.0), Some("ValueError"))
        );
        let v = answered_record(
            &mut engine(leak_bits()),
            &ok,
            &refused("InvalidStateTransition"),
        );
        assert_eq!(v["errorType"], "InvalidStateTransition");
        let bare = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";
        let v = answered_record(&mut engine(leak_bits()), &ok, bare);
        assert_eq!(v["errorType"], crate::tracker::RESULT_REFUSED_ERROR_TYPE);
        // Any 2xx accepts it.
        let v = answered_record(&mut engine(leak_bits()), &ok, ACCEPTED);
        assert_eq!(v["Errors"], 0.0);
        assert!(v.get("errorType").is_none());
    }

    #[test]
    fn an_init_that_never_ended_is_reported_at_the_first_event_by_the_timeout_it_tells() {
        let clock = Clock(Cell::new(10_000));
        let p = |_: Reading| clock.probe();
        // The first event's deadline is 1.5 s away: the function's timeout.
        let first = |e: &mut E| -> Vec<serde_json::Value> {
            e.connected(5, api_addr());
            e.sent(5, fixtures::NEXT, &p);
            e.received(5, &fixtures::event("r", 11_500, "{}"), &p)
                .lines
                .iter()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        let ended = |ran_ms: u64| tracker::EndedInits {
            count: 1,
            ran_ns: [Some(ran_ms * 1_000_000), None, None, None],
            followed_at_ms: 9_000,
        };
        // Ran past the timeout: stopped at it.
        let mut e = engine(leak_bits());
        e.inits_never_ended(ended(2_000));
        let v = first(&mut e);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0]["initStatus"], "timeout");
        assert_eq!(v[0]["errorType"], "Sandbox.Timedout");
        assert_eq!(
            (v[0]["Duration"].as_f64(), v[0]["InitDuration"].as_f64()),
            (Some(1_500.0), Some(1_500.0))
        );
        assert_eq!(v[0]["_aws"]["Timestamp"], 9_000);
        assert!(v[0].get("requestId").is_none() && v[0].get("MaxMemoryUsed").is_none());
        // Seemingly a little short of it (its start noted late, a coarse clock): stopped at it.
        let mut e = engine(leak_bits());
        e.inits_never_ended(ended(1_450));
        let v = first(&mut e);
        assert_eq!(v[0]["initStatus"], "timeout");
        assert_eq!(v[0]["Timeouts"], 1.0);
        // Ended sooner: something else killed it.
        let mut e = engine(leak_bits());
        e.inits_never_ended(ended(400));
        let v = first(&mut e);
        assert_eq!(v[0]["initStatus"], "error");
        assert_eq!(v[0]["errorType"], "Runtime.ExitError");
        assert_eq!(v[0]["Timeouts"], 0.0);
        assert_eq!(v[0]["Duration"], 400.0);
        // Only once, and never for an environment initialised ahead of demand.
        assert!(first(&mut e).is_empty());
        // Two, one of a time not known: no timeout is claimed without one.
        let mut e = engine(leak_bits());
        e.inits_never_ended(tracker::EndedInits {
            count: 2,
            ran_ns: [Some(2_000_000_000), None, None, None],
            followed_at_ms: 9_000,
        });
        let v = first(&mut e);
        let statuses: Vec<&str> = v
            .iter()
            .map(|r| r["initStatus"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["timeout", "error"]);
        let (s, _) = Settings::from_env(
            &|k| match k {
                "AWS_LAMBDA_INITIALIZATION_TYPE" => Some("provisioned-concurrency".into()),
                _ => None,
            },
            "test",
        );
        let mut e = E(Engine::try_new(
            s,
            ApiAddress::parse("127.0.0.1:9001").unwrap(),
            leak_bits(),
            0,
        )
        .unwrap());
        e.inits_never_ended(ended(2_000));
        assert!(first(&mut e).is_empty());
    }

    #[test]
    fn the_journal_keeps_the_result_as_sent_then_as_answered() {
        let mut e = engine(leak_bits());
        let words = journaled(&mut e);
        let p = |_: Reading| Probe::default();
        e.connected(5, api_addr());
        e.sent(5, fixtures::NEXT, &p);
        e.received(5, &next_event("r", "{}"), &p);
        let ending = crate::journal::Ending {
            wall_ms: 99,
            mono_ns: Some(0),
            cpu_ns: Some(0),
            max_rss_kb: Some(4096),
            reason: b"exit status 0",
        };
        // What an ending would write now (from a copy of the journal's memory).
        let written = |words: &[u64]| -> Vec<serde_json::Value> {
            let j = crate::journal::copy_of(words);
            let mut lines = Vec::new();
            j.write_open(ME.pid, &ending, &mut |parts| lines.push(parts.concat()));
            lines
                .iter()
                .map(|l| serde_json::from_slice(l).unwrap())
                .collect()
        };
        // Sent, not answered: the process ending now reports the result as taken.
        e.sent(5, &fixtures::result("r", "response", "1", ""), &p);
        let v = written(words);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0]["Errors"], 0.0, "{}", v[0]);
        assert!(v[0].get("exitReason").is_none());
        // Refused: the kept record says so.
        assert!(e.received(5, TOO_LARGE, &p).lines.is_empty());
        let v = written(words);
        assert_eq!(
            v[0]["errorType"], "Function.ResponseSizeTooLarge",
            "{}",
            v[0]
        );
    }

    #[test]
    fn a_result_whose_answer_never_comes_is_taken_as_accepted() {
        let clock = Clock(Cell::new(10));
        let p = |_: Reading| clock.probe();
        let begin = |e: &mut E| {
            e.connected(5, api_addr());
            e.sent(5, fixtures::NEXT, &p);
            e.received(5, &next_event("r", "{}"), &p);
            assert!(
                e.sent(5, &fixtures::result("r", "response", "1", ""), &p)
                    .lines
                    .is_empty()
            );
        };
        // Closed without reading it.
        let mut e = engine(leak_bits());
        begin(&mut e);
        e.closing(5);
        let fx = e.flush();
        assert_eq!(fx.lines.len(), 1);
        assert!(fx.lines[0].contains("\"Errors\":0"));
        // Never read: the watchdog's tick ends it after the bound, timed to the result.
        let mut e = engine(leak_bits());
        begin(&mut e);
        assert_eq!(e.next_wakeup(), Some(10_000_000 + RESULT_ANSWER_WAIT_NS));
        clock.0.set(500);
        assert!(e.tick(&clock.probe()).lines.is_empty(), "within the bound");
        clock.0.set(1_010);
        e.tick(&clock.probe());
        let fx = e.flush();
        assert_eq!(fx.lines.len(), 1);
        assert!(fx.lines[0].contains("\"Duration\":0"), "{}", fx.lines[0]);
        // The process exits first.
        let mut e = engine(leak_bits());
        begin(&mut e);
        assert_eq!(e.flush().lines.len(), 1);
    }

    #[test]
    fn an_answer_read_after_its_result_was_decided_decides_nothing() {
        // Two results written on one connection before either answer is read: the first is
        // taken as accepted when the second is sent whole, and its answer (a refusal), read
        // then, is not the second's.
        let p = |_: Reading| Probe::default();
        let mut e = engine(leak_bits());
        for (fd, id) in [(5, "t"), (6, "u")] {
            e.connected(fd, api_addr());
            e.sent(fd, fixtures::NEXT, &p);
            e.received(fd, &next_event(id, "{}"), &p);
        }
        e.connected(7, api_addr());
        e.sent(7, &fixtures::result("t", "response", "1", ""), &p);
        e.sent(7, &fixtures::result("u", "response", "1", ""), &p);
        e.received(7, TOO_LARGE, &p);
        e.received(7, ACCEPTED, &p);
        let lines = e.flush().lines;
        let u = lines_for(&lines, "u");
        assert_eq!(u.len(), 1, "{lines:?}");
        assert!(u[0].contains("\"Errors\":0"), "{}", u[0]);
    }

    #[test]
    fn an_answer_read_before_its_result_is_seen_whole_still_decides() {
        // The reader's hook runs before the writer's (two threads): the 413 is kept for the
        // result it answers.
        let mut e = engine(leak_bits());
        let p = |_: Reading| Probe::default();
        e.connected(5, api_addr());
        e.sent(5, fixtures::NEXT, &p);
        e.received(5, &next_event("r", "{}"), &p);
        assert!(e.received(5, TOO_LARGE, &p).lines.is_empty());
        let mut lines = e
            .sent(5, &fixtures::result("r", "response", "1", ""), &p)
            .lines;
        lines.extend(e.sending(5, &p).lines);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("\"errorType\":\"Function.ResponseSizeTooLarge\""));
    }

    #[test]
    fn invoke_may_end_on_another_connection_and_fd_reuse_resets() {
        let bits = leak_bits();
        let mut e = engine(bits);
        let p = |_: Reading| Probe::default();
        e.connected(7, api_addr());
        e.connected(8, api_addr());
        e.sent(7, fixtures::NEXT, &p);
        e.received(7, &next_event("x", "{}"), &p);
        // fd 7 closed behind our back, number reused for an unrelated socket
        e.connected(7, Some("10.0.0.1:443".parse().unwrap()));
        assert!(!bits.contains(7));
        let lines = done(
            &mut e,
            8,
            &fixtures::result(
                "x",
                "error",
                "{}",
                "Lambda-Runtime-Function-Error-Type: Runtime.Crash\r\n",
            ),
            &p,
        );
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("\"errorType\":\"Runtime.Crash\""));
    }

    #[test]
    fn a_response_read_before_its_request_is_seen_still_pairs() {
        // Java's HttpClient writes on one thread and reads on another: the reader's hook can
        // run before the writer's.
        let bits = leak_bits();
        let mut e = engine(bits);
        let clock = Clock(Cell::new(10));
        let p = |_: Reading| clock.probe();
        e.connected(5, api_addr());
        e.received(5, &next_event("early", "{}"), &p);
        clock.0.set(12);
        e.sent(5, fixtures::NEXT, &p);
        clock.0.set(30);
        let lines = done(
            &mut e,
            5,
            &fixtures::result("early", "response", "1", ""),
            &p,
        );
        assert_eq!(lines.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["Duration"], 20.0, "timed from when the event was read");
        e.sent(5, fixtures::NEXT, &p);
        e.received(5, &next_event("after", "{}"), &p);
        assert_eq!(
            done(
                &mut e,
                5,
                &fixtures::result("after", "response", "2", ""),
                &p
            )
            .len(),
            1
        );
    }

    #[test]
    fn dup_aliases_and_close_untracks() {
        let bits = leak_bits();
        let mut e = engine(bits);
        let p = |_: Reading| Probe::default();
        e.connected(3, api_addr());
        e.duplicated(3, 9);
        assert!(bits.contains(9));
        e.closing(3);
        assert!(!bits.contains(3) && bits.contains(9));
        e.sent(9, fixtures::NEXT, &p);
        e.received(9, &next_event("d", ""), &p);
        assert_eq!(
            done(&mut e, 9, &fixtures::result("d", "response", "", ""), &p).len(),
            1
        );
        e.connected(20, api_addr());
        e.connected(30, api_addr());
        e.closing_range(10, 25);
        assert!(!bits.contains(20) && bits.contains(30) && bits.contains(9));
        e.closing_range(0, u32::MAX);
        assert_eq!(e.connection_count(), 0);
        assert!(bits.is_empty());
    }

    #[test]
    fn garbage_untracks_with_one_warning() {
        let bits = leak_bits();
        let mut e = engine(bits);
        let p = |_: Reading| Probe::default();
        e.connected(4, api_addr());
        e.duplicated(4, 6);
        let fx = e.received(4, b"\x00\x01garbage\r\n\r\n", &p);
        assert_eq!(fx.warnings.len(), 1);
        assert!(!bits.contains(4) && !bits.contains(6));
        e.connected(4, api_addr());
        let fx = e.sent(4, b"NOT HTTP AT ALL\r\n\r\n", &p);
        assert!(fx.warnings.is_empty(), "only the first garbage warns");
        assert!(!bits.contains(4));
    }

    #[test]
    fn other_destinations_are_never_tracked() {
        let bits = leak_bits();
        let mut e = engine(bits);
        e.connected(5, Some("127.0.0.1:9002".parse().unwrap()));
        e.connected(6, None);
        assert!(bits.is_empty());
    }

    #[test]
    fn streaming_error_trailer_counts_as_error() {
        let bits = leak_bits();
        let mut e = engine(bits);
        let p = |_: Reading| Probe::default();
        e.connected(5, api_addr());
        e.sent(5, fixtures::NEXT, &p);
        e.received(5, &next_event("s", "{}"), &p);
        let req = b"POST /2018-06-01/runtime/invocation/s/response HTTP/1.1\r\nLambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\nTrailer: Lambda-Runtime-Function-Error-Type\r\n\r\n3\r\nabc\r\n0\r\nLambda-Runtime-Function-Error-Type: Stream.Broke\r\n\r\n";
        let lines = done(&mut e, 5, req, &p);
        assert!(lines[0].contains("\"errorType\":\"Stream.Broke\""));
        assert!(lines[0].contains("\"ResponseBytes\":3"));
        assert!(lines[0].contains("\"TimeToFirstByte\":"));
    }

    /// An engine holding up to `batch` records, with a journal to keep them in.
    const ME: Owner = Owner {
        pid: 7,
        start_ticks: 1,
    };

    use crate::journal::in_memory as memory_journal;

    fn batching_engine(bits: &'static FdBits, batch: usize, concurrency: u32) -> E {
        let (batch, concurrency) = (batch.to_string(), concurrency.to_string());
        let mut e = engine_with(
            bits,
            &[
                ("LAMBDA_METER_BATCH", &batch),
                ("AWS_LAMBDA_MAX_CONCURRENCY", &concurrency),
            ],
        );
        e.attach_journal(memory_journal().0, ME).unwrap();
        e
    }

    /// Invoke `open` on connection 4 stays open while `n` invokes (`r1`…) run on connection 5.
    fn overlapped(e: &mut E, open: &str, n: usize, p: &dyn Fn(Reading) -> Probe) -> Vec<String> {
        e.connected(4, api_addr());
        e.connected(5, api_addr());
        let mut lines = e.sent(4, fixtures::NEXT, p).lines;
        lines.extend(e.received(4, &next_event(open, "{}"), p).lines);
        for i in 1..=n {
            lines.extend(one_invoke(e, 5, &format!("r{i}"), p));
        }
        lines
    }

    /// Invoke `id` on connection `fd`: its event read, its result sent and accepted.
    fn one_invoke(e: &mut E, fd: i32, id: &str, p: &dyn Fn(Reading) -> Probe) -> Vec<String> {
        let mut lines = e.sending(fd, p).lines;
        lines.extend(e.sent(fd, fixtures::NEXT, p).lines);
        lines.extend(e.received(fd, &next_event(id, "{}"), p).lines);
        lines.extend(
            e.sent(fd, &fixtures::result(id, "response", "1", ""), p)
                .lines,
        );
        lines.extend(e.received(fd, ACCEPTED, p).lines);
        lines
    }

    #[test]
    fn a_runtime_that_can_be_frozen_after_each_invoke_never_holds_a_record() {
        let bits = leak_bits();
        let mut e = batching_engine(bits, 10, 1);
        let clock = Clock(Cell::new(10));
        let p = |_: Reading| clock.probe();
        e.connected(5, api_addr());
        let mut lines = Vec::new();
        for i in 0..4 {
            // The /next that starts invoke i carries out invoke i-1's record first.
            lines.extend(one_invoke(&mut e, 5, &format!("r{i}"), &p));
            assert_eq!(lines.len(), i, "{lines:?}");
        }
        lines.extend(e.sending(5, &p).lines);
        assert_eq!(lines.len(), 4);
        assert!(lines.iter().all(|l| !l.contains("\"invokes\"")));
    }

    #[test]
    fn overlapping_invokes_are_batched_until_the_runtime_goes_idle() {
        let bits = leak_bits();
        let mut e = batching_engine(bits, 3, 1);
        let clock = Clock(Cell::new(10));
        let p = |_: Reading| clock.probe();
        // Invoke r0 (the cold start) stays open while r1..=r5 run.
        let mut lines = overlapped(&mut e, "r0", 5, &p);
        // Three warm records made one batch; two are held while r0 is open.
        let batched: Vec<&String> = lines.iter().filter(|l| l.contains("\"invokes\"")).collect();
        assert_eq!(batched.len(), 1, "{lines:?}");
        assert!(batched[0].contains("\"invokes\":3"));
        assert!(!e.record_awaits(), "held while r0 is open");
        lines.extend(
            e.sent(4, &fixtures::result("r0", "response", "1", ""), &p)
                .lines,
        );
        lines.extend(e.received(4, ACCEPTED, &p).lines);
        assert!(
            e.record_awaits(),
            "r0's record, then the held ones, before the next /next"
        );
        lines.extend(e.sending(4, &p).lines);
        assert!(!e.record_awaits());
        let records: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let invokes: u64 = records
            .iter()
            .map(|r| r["invokes"].as_u64().unwrap_or(1))
            .sum();
        assert_eq!(invokes, 6, "every invoke counted once: {lines:?}");
        // The cold start went alone (it carries the environment's properties).
        let cold: Vec<&serde_json::Value> =
            records.iter().filter(|r| r["ColdStart"] == 1).collect();
        assert_eq!(cold.len(), 1);
        assert!(cold[0].get("invokes").is_none() && cold[0].get("runtime").is_some());
    }

    #[test]
    fn lambda_managed_instances_hold_records_across_next() {
        let bits = leak_bits();
        let mut e = batching_engine(bits, 3, 4);
        let clock = Clock(Cell::new(10));
        let p = |_: Reading| clock.probe();
        e.connected(5, api_addr());
        let mut lines = Vec::new();
        for i in 0..=7 {
            lines.extend(one_invoke(&mut e, 5, &format!("r{i}"), &p));
        }
        lines.extend(e.sending(5, &p).lines);
        // The cold start alone, then 3 + 3; one held at /next (an environment never frozen).
        let counts: Vec<u64> = lines
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["invokes"]
                    .as_u64()
                    .unwrap_or(1)
            })
            .collect();
        assert_eq!(counts, [1, 3, 3], "{lines:?}");
        assert!(!e.record_awaits());
        assert_eq!(e.flush().lines.len(), 1);
    }

    #[test]
    fn held_records_go_at_exit_at_a_deadline_and_at_the_end_of_their_period() {
        let bits = leak_bits();
        let clock = Clock(Cell::new(10));
        let p = |_: Reading| clock.probe();

        let held = |lines: &[String]| {
            lines
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .map(|r| r["invokes"].as_u64().unwrap_or(1))
                .sum::<u64>()
        };
        // At exit.
        let mut e = batching_engine(bits, 10, 1);
        overlapped(&mut e, "open", 3, &p);
        // (The open invoke's record is the journal's to write as the process ends.)
        assert_eq!(held(&e.flush().lines), 3);
        // At the end of the first record's minute, which the watchdog is woken for.
        let mut e = batching_engine(bits, 10, 1);
        overlapped(&mut e, "open", 3, &p);
        let due = e.next_wakeup().unwrap();
        assert!(due <= 60_000 * 1_000_000);
        clock.0.set(60_000);
        assert_eq!(held(&e.tick(&clock.probe()).lines), 3);
        // At the open invoke's deadline (its timeout record goes after them).
        let mut e = batching_engine(bits, 10, 1);
        clock.0.set(10);
        e.connected(4, api_addr());
        e.connected(5, api_addr());
        e.sent(4, fixtures::NEXT, &p);
        let soon = "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: late\r\nLambda-Runtime-Deadline-Ms: 1000\r\nContent-Length: 2\r\n\r\n{}";
        e.received(4, soon.as_bytes(), &p);
        for i in 1..=2 {
            one_invoke(&mut e, 5, &format!("r{i}"), &p);
        }
        clock.0.set(1_000);
        let lines = e.tick(&clock.probe()).lines;
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("\"invokes\":2") && lines[1].contains("Sandbox.Timedout"));
    }

    #[test]
    fn held_records_are_in_the_journal_until_their_batch_goes() {
        let bits = leak_bits();
        let mut e = engine_with(bits, &[("LAMBDA_METER_BATCH", "10")]);
        let (journal, words) = memory_journal();
        e.attach_journal(journal, ME).unwrap();
        let clock = Clock(Cell::new(10));
        let p = |_: Reading| clock.probe();
        overlapped(&mut e, "open", 3, &p);
        let taken = crate::journal::SLOT_COUNT - journal.free_count();
        assert_eq!(
            taken,
            1 + 1,
            "the open invoke, and the three held in one slot"
        );
        // A process ending now writes the held three as records of their own.
        let mut written = Vec::new();
        let ending = crate::journal::Ending {
            wall_ms: 1,
            mono_ns: None,
            cpu_ns: None,
            max_rss_kb: None,
            reason: b"exit",
        };
        let snapshot = crate::journal::copy_of(words);
        snapshot.write_open(7, &ending, &mut |parts| {
            let text = String::from_utf8(parts.concat()).unwrap();
            written.extend(text.lines().map(str::to_string));
        });
        let held: Vec<&String> = written
            .iter()
            .filter(|l| !l.contains("exitReason"))
            .collect();
        assert_eq!(held.len(), 3, "{written:?}");
        assert!(held.iter().all(|l| l.contains("\"ColdStart\":0")));
        // Once the batch goes, the journal holds only the open invokes.
        let fx = e.flush();
        assert!(fx.lines[0].contains("\"invokes\":3"));
        assert_eq!(crate::journal::SLOT_COUNT - journal.free_count(), 1);
    }

    #[test]
    fn records_the_environments_root_wrote_at_its_end_leave_the_batch() {
        // A worker of Lambda Managed Instances holds records across /next; its environment's
        // root, ending, writes them from the journal: the worker's batch leaves them out.
        let bits = leak_bits();
        let mut e = batching_engine(bits, 10, 4);
        let journal = e.journal.as_ref().unwrap().journal;
        let clock = Clock(Cell::new(10));
        let p = |_: Reading| clock.probe();
        e.connected(5, api_addr());
        let mut lines = Vec::new();
        for i in 0..3 {
            lines.extend(one_invoke(&mut e, 5, &format!("r{i}"), &p));
        }
        lines.extend(e.sending(5, &p).lines);
        assert_eq!(lines.len(), 1, "the cold start alone; two held: {lines:?}");
        // A third waits for the next /next in the journal, finished.
        lines.extend(one_invoke(&mut e, 5, "r3", &p));
        let ending = crate::journal::Ending {
            wall_ms: 1,
            mono_ns: Some(20),
            cpu_ns: None,
            max_rss_kb: None,
            reason: b"signal: terminated",
        };
        let mut by_root = Vec::new();
        journal.write_environment(&ending, &mut |parts| {
            let text = String::from_utf8(parts.concat()).unwrap();
            by_root.extend(text.lines().map(str::to_string));
        });
        assert_eq!(by_root.len(), 3, "two held, one finished: {by_root:?}");
        // The finished one is not held at the /next; two more are, in a slot of their own,
        // then the worker writes its batch.
        lines.extend(e.sending(5, &p).lines);
        for i in 4..6 {
            lines.extend(one_invoke(&mut e, 5, &format!("r{i}"), &p));
        }
        lines.extend(e.sending(5, &p).lines);
        lines.extend(e.flush().lines);
        let ids: Vec<serde_json::Value> = lines
            .iter()
            .chain(&by_root)
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["requestId"].clone())
            .flat_map(|id| match id {
                serde_json::Value::Array(ids) => ids,
                one => vec![one],
            })
            .collect();
        let mut ids: Vec<String> = ids
            .iter()
            .map(|i| i.as_str().unwrap().to_string())
            .collect();
        ids.sort();
        assert_eq!(
            ids,
            ["r0", "r1", "r2", "r3", "r4", "r5"],
            "each once: {lines:?}"
        );
    }

    #[test]
    fn open_invokes_are_journaled_until_they_end() {
        let bits = leak_bits();
        let mut e = engine(bits);
        let (journal, _) = memory_journal();
        e.attach_journal(journal, ME).unwrap();
        let clock = Clock(Cell::new(10));
        let p = |_: Reading| clock.probe();
        e.connected(5, api_addr());
        e.sent(5, fixtures::NEXT, &p);
        e.received(5, &next_event("done", "{}"), &p);
        assert_eq!(journal.open_count(), 1);
        // A result sent ends the invoke in the journal at once (its final record kept there
        // while the answer is awaited), though its record still waits for the next /next.
        e.sent(5, &fixtures::result("done", "response", "1", ""), &p);
        assert_eq!(journal.open_count(), 0);
        e.received(5, ACCEPTED, &p);
        assert_eq!(journal.open_count(), 0);
        e.sending(5, &p);
        e.sent(5, fixtures::NEXT, &p);
        e.received(5, &next_event("dies", "{\"k\":1}"), &p);
        assert_eq!(journal.open_count(), 1);
        let ending = crate::journal::Ending {
            wall_ms: 99,
            mono_ns: Some(25_000_000),
            cpu_ns: Some(0),
            max_rss_kb: Some(4096),
            reason: b"exit status 2",
        };
        let mut lines = Vec::new();
        journal.write_open(ME.pid, &ending, &mut |parts| lines.push(parts.concat()));
        assert_eq!(lines.len(), 1);
        let v: serde_json::Value = serde_json::from_slice(&lines[0]).unwrap();
        assert_eq!(v["requestId"], "dies");
        assert_eq!(v["Errors"], 1.0);
        assert_eq!(v["errorType"], "Runtime.ExitError");
        assert_eq!(v["exitReason"], "exit status 2");
        assert_eq!(v["Duration"], 15.0);
        assert_eq!(v["RequestBytes"], 7.0);
        assert_eq!(v["MaxMemoryUsed"], 4.0);
    }

    #[test]
    fn an_engine_at_work_never_allocates_and_bounds_what_it_keeps() {
        let bits = leak_bits();
        let mut e = engine(bits);
        e.attach_journal(memory_journal().0, ME).unwrap();
        let clock = Clock(Cell::new(10));
        let p = |_: Reading| clock.probe();
        let big_error = fixtures::result(
            "x",
            "error",
            &format!(
                r#"{{"errorMessage":"{}","errorType":"Deep"}}"#,
                "m".repeat(100_000)
            ),
            &format!(
                "Lambda-Runtime-Function-Error-Type: {}\r\n",
                "t".repeat(50_000)
            ),
        );
        let mut records = 0;
        crate::cost::assert_no_allocation(|| {
            for i in 0..200u64 {
                let mut buf = [0u8; 32];
                let id = crate::text::format_into(&mut buf, format_args!("r-{i}"));
                clock.0.set(10 + i);
                e.0.sending(5, &p);
                e.0.connected(5, api_addr());
                e.0.sent(5, fixtures::NEXT, &p);
                let mut answer = [0u8; 512];
                let answer = crate::text::format_into(
                    &mut answer,
                    format_args!(
                        "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: {id}\r\nContent-Length: 2\r\n\r\n{{}}"
                    ),
                );
                e.0.received(5, answer.as_bytes(), &p);
                let mut req = [0u8; 512];
                let req = crate::text::format_into(
                    &mut req,
                    format_args!(
                        "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nContent-Length: 1\r\n\r\n1"
                    ),
                );
                e.0.sent(5, req.as_bytes(), &p);
                e.0.received(5, ACCEPTED, &p);
                e.0.drain_output(&mut |_| records += 1, &mut |_| {});
            }
            for _ in 0..100 {
                e.0.connected(9, api_addr());
            }
            e.0.closing(9);
        });
        assert_eq!(
            records, 199,
            "one record per invoke (the last waits for its /next)"
        );
        // An error whose header and body are as large as the Runtime API takes: read past,
        // its type found, the connection still followed.
        e.sending(5, &p);
        e.sent(5, fixtures::NEXT, &p);
        e.received(5, &next_event("x", "{}"), &p);
        let lines = done(&mut e, 5, &big_error, &p);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("\"errorType\":\"Deep\""), "{}", lines[0]);
        assert!(bits.contains(5));
    }

    #[test]
    fn a_finished_record_waits_for_next_in_the_journal() {
        let bits = leak_bits();
        let mut e = engine(bits);
        let (journal, words) = memory_journal();
        e.attach_journal(journal, ME).unwrap();
        let clock = Clock(Cell::new(10));
        let p = |_: Reading| clock.probe();
        e.connected(5, api_addr());
        e.sent(5, fixtures::NEXT, &p);
        e.received(5, &next_event("waits", "{}"), &p);
        clock.0.set(20);
        assert!(
            e.sent(5, &fixtures::result("waits", "response", "1", ""), &p)
                .lines
                .is_empty()
        );
        clock.0.set(21);
        assert!(e.received(5, ACCEPTED, &p).lines.is_empty());
        assert_eq!(journal.open_count(), 0, "no longer open");
        assert_eq!(
            crate::journal::SLOT_COUNT - journal.free_count(),
            1,
            "its final record is kept"
        );
        // The process ends before its next /next: the record as it would have been written,
        // its post-response time until the ending.
        let ended = crate::journal::copy_of(words);
        let mut lines = Vec::new();
        let ending = crate::journal::Ending {
            wall_ms: 99,
            mono_ns: Some(25_000_000),
            cpu_ns: Some(0),
            max_rss_kb: Some(4096),
            reason: b"exit status 0",
        };
        ended.write_open(ME.pid, &ending, &mut |parts| lines.push(parts.concat()));
        assert_eq!(lines.len(), 1);
        let v: serde_json::Value = serde_json::from_slice(&lines[0]).unwrap();
        assert_eq!(v["requestId"], "waits");
        assert_eq!(v["Errors"], 0.0);
        assert_eq!(v["Duration"], 10.0);
        assert_eq!(v["PostResponseDuration"], 5.0);
        assert!(v.get("exitReason").is_none());
        // A successor after SIGKILL: without the time it cannot know.
        let vanished = crate::journal::copy_of(words);
        let mut lines = Vec::new();
        vanished.recover(&|_| false, &ending, &mut |parts| lines.push(parts.concat()));
        let v: serde_json::Value = serde_json::from_slice(&lines[0]).unwrap();
        assert!(v.get("PostResponseDuration").is_none(), "{v}");
        assert_eq!(v["Duration"], 10.0);
        // The next /next comes: written once, from the journal, which is then empty.
        e.received(5, ACCEPTED, &p);
        clock.0.set(27);
        let lines = e.sending(5, &p).lines;
        assert_eq!(lines.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["PostResponseDuration"], 7.0);
        assert_eq!(v["ColdStart"], 1.0);
        assert_eq!(journal.free_count(), crate::journal::SLOT_COUNT);
        let mut after = 0;
        journal.write_open(ME.pid, &ending, &mut |_| after += 1);
        assert_eq!(after, 0, "nothing twice");
    }

    #[test]
    fn forked_child_forgets_inherited_state() {
        let bits = leak_bits();
        let mut e = engine(bits);
        let p = |_: Reading| Probe::default();
        e.connected(5, api_addr());
        e.sent(5, fixtures::NEXT, &p);
        e.received(5, &next_event("f", ""), &p);
        e.forked_child(
            0,
            Owner {
                pid: 2,
                start_ticks: 2,
            },
        );
        assert!(bits.is_empty());
        assert!(
            e.sent(5, &fixtures::result("f", "response", "", ""), &p)
                .lines
                .is_empty()
        );
    }

    /// The lines of `lines` for invoke `id`.
    fn lines_for<'a>(lines: &'a [String], id: &str) -> Vec<&'a String> {
        let needle = format!("\"requestId\":\"{id}\"");
        lines.iter().filter(|l| l.contains(&needle)).collect()
    }

    /// Two threads: one posts r's result on connection 5, the other starts its next `/next` on
    /// connection 6 before the first reads the answer, a 413: Lambda failed the invoke, and so
    /// does its record (then also when the runtime reports the refusal with an `/error`).
    #[test]
    fn a_refusal_read_after_the_next_request_started_elsewhere_fails_the_invoke() {
        for then_error in [false, true] {
            let clock = Clock(Cell::new(10));
            let p = |_: Reading| clock.probe();
            let mut e = engine(leak_bits());
            let mut lines = Vec::new();
            e.connected(5, api_addr());
            e.sent(5, fixtures::NEXT, &p);
            e.received(5, &next_event("r", "{}"), &p);
            lines.extend(
                e.sent(5, &fixtures::result("r", "response", "1", ""), &p)
                    .lines,
            );
            e.connected(6, api_addr());
            clock.0.set(11);
            // The hooks call `sending` only while `record_awaits` says so.
            if e.record_awaits() {
                lines.extend(e.sending(6, &p).lines);
            }
            lines.extend(e.sent(6, fixtures::NEXT, &p).lines);
            lines.extend(e.received(5, TOO_LARGE, &p).lines);
            if then_error {
                let body =
                    r#"{"errorMessage":"too big","errorType":"Function.ResponseSizeTooLarge"}"#;
                lines.extend(
                    e.sent(5, &fixtures::result("r", "error", body, ""), &p)
                        .lines,
                );
                lines.extend(e.received(5, ACCEPTED, &p).lines);
            }
            lines.extend(e.received(6, &next_event("s", "{}"), &p).lines);
            lines.extend(e.flush().lines);
            let r = lines_for(&lines, "r");
            assert_eq!(r.len(), 1, "{lines:?}");
            assert!(r[0].contains("\"Errors\":1"), "{}", r[0]);
        }
    }

    /// An engine (journaled or not) whose invoke r's result was just sent on connection 5, and
    /// the lines written so far.
    fn result_sent(with_journal: bool, p: &dyn Fn(Reading) -> Probe) -> (E, Vec<String>) {
        let mut e = engine(leak_bits());
        if with_journal {
            journaled(&mut e);
        }
        e.connected(5, api_addr());
        e.sent(5, fixtures::NEXT, p);
        e.received(5, &next_event("r", "{}"), p);
        let lines = e
            .sent(5, &fixtures::result("r", "response", "1", ""), p)
            .lines;
        (e, lines)
    }

    /// A result whose answer never comes, the runtime silent after it: the watchdog's ticks
    /// (the answer's wait, then the wait for `/next`) write the record, journal or not.
    #[test]
    fn a_result_never_answered_is_written_by_the_watchdogs_ticks() {
        for with_journal in [false, true] {
            let clock = Clock(Cell::new(10));
            let p = |_: Reading| clock.probe();
            let (mut e, mut lines) = result_sent(with_journal, &p);
            for _ in 0..4 {
                let Some(due) = e.next_wakeup() else { break };
                clock.0.set(due / 1_000_000);
                lines.extend(e.tick(&clock.probe()).lines);
            }
            lines.extend(e.flush().lines);
            assert_eq!(lines.len(), 1, "journal {with_journal}: {lines:?}");
            assert!(lines[0].contains("\"Errors\":0"), "{}", lines[0]);
        }
    }

    /// The answer read at once, then the runtime works on for 3 s before its next `/next`: the
    /// record that waited for it is written by the watchdog's tick (from its journal slot, which
    /// the journal's sync must not free first).
    #[test]
    fn a_record_that_waited_too_long_for_next_is_written_by_the_watchdog() {
        for with_journal in [false, true] {
            let clock = Clock(Cell::new(10));
            let p = |_: Reading| clock.probe();
            let (mut e, mut lines) = result_sent(with_journal, &p);
            lines.extend(e.received(5, ACCEPTED, &p).lines);
            let due = e.next_wakeup().unwrap();
            clock.0.set(due / 1_000_000);
            lines.extend(e.tick(&clock.probe()).lines);
            assert_eq!(lines.len(), 1, "journal {with_journal}: {lines:?}");
            clock.0.set(3_010);
            lines.extend(e.sending(5, &p).lines);
            lines.extend(e.flush().lines);
            assert_eq!(lines.len(), 1, "journal {with_journal}: {lines:?}");
        }
    }
}
