//! The engine: tracked connections, their HTTP parsers, and the invoke tracker.
//!
//! The hooks hand it what the host did (a connect, bytes written or read, a close, a dup) and
//! it answers with [`Effects`]: EMF lines to write and warnings to print. It keeps the fd bitmap
//! in step with its own table. It never performs I/O itself, so it is tested with byte streams.

use crate::emf;
use crate::fdtable::FdBits;
use crate::http::{self, Direction, Event, Head, Message, Parser};
use crate::journal::{Journal, Owner};
use crate::runtime_api::{self as api, ApiAddress, RequestKind};
use crate::settings::Settings;
use crate::tracker::{self, EventInfo, InvokeRecord, Lifecycle, Outcome, Probe, Reading, Tracker};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;

/// What the caller must do after an engine call (outside the engine's lock).
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    /// Complete EMF lines, each to be written with one `write()`.
    pub lines: Vec<String>,
    /// Warning lines for stderr.
    pub warnings: Vec<String>,
}

impl Effects {
    /// Adds `more` after these (taking it whole when there are none yet: no allocation).
    pub fn absorb(&mut self, more: Effects) {
        if self.lines.is_empty() {
            self.lines = more.lines;
        } else {
            self.lines.extend(more.lines);
        }
        if self.warnings.is_empty() {
            self.warnings = more.warnings;
        } else {
            self.warnings.extend(more.warnings);
        }
    }
}

/// Why the engine stopped following a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Untrack {
    Garbage(http::ParseError),
    TooManyPending,
}

/// At most this many requests may await their responses on one connection.
const MAX_PENDING: usize = 64;

#[derive(Debug)]
struct Connection {
    requests: Parser,
    responses: Parser,
    /// Requests whose responses have not been read yet, oldest first.
    pending: VecDeque<RequestKind>,
    /// The request being written now.
    writing: Option<RequestKind>,
    /// Whether that request streams its body (`Lambda-Runtime-Function-Response-Mode`).
    writing_streamed: bool,
    /// That request's head, until its message is complete.
    writing_head: Option<Head>,
    /// Responses read before their request was seen written (threads race between the
    /// real call and the hook), with when they were read; oldest first.
    early_responses: VecDeque<(Message, Probe)>,
    /// How many fds refer to this connection (dup makes more).
    fd_count: usize,
}

impl Connection {
    fn new() -> Self {
        Connection {
            requests: Parser::new(Direction::Request),
            responses: Parser::new(Direction::Response),
            pending: VecDeque::new(),
            writing: None,
            writing_streamed: false,
            writing_head: None,
            early_responses: VecDeque::new(),
            fd_count: 0,
        }
    }
}

/// See the module documentation.
pub struct Engine {
    settings: Settings,
    api: ApiAddress,
    bits: &'static FdBits,
    fds: IntMap<i32, u64>,
    conns: IntMap<u64, Connection>,
    next_conn_id: u64,
    tracker: Tracker,
    warned_garbage: bool,
    warned_fd_range: bool,
    journal: Option<JournalLink>,
    /// The parsers' event list, kept between calls with its capacity (no allocation per feed).
    events: Vec<Event>,
    /// The constant parts of records, rendered once (see [`emf::Prefixes`]).
    prefixes: emf::Prefixes,
    /// Reads what was appended to the custom-metrics channel since the last call, and this
    /// process's id (see [`crate::custom::ChannelLine`]); none in tests unless set.
    channel: Option<ChannelReader>,
    /// Finished records held for one batched record (`LAMBDA_METER_BATCH`), oldest first.
    batch: Vec<InvokeRecord>,
    /// When the held records are written at the latest (monotonic ns): the end of the first
    /// one's CloudWatch period, so a batch never spans two periods.
    batch_due_ns: Option<u64>,
    /// The journal slots that keep the held records, each as its own line, for the ending
    /// paths (exit, `_exit`, a fatal signal or SIGTERM) and for a SIGKILL's successor.
    batch_slots: Vec<usize>,
}

/// Reads what was appended to the channel since the last call, and this process's id.
pub type ChannelReader = fn() -> (Vec<u8>, u32);

/// A map keyed by fd numbers and connection ids: small integers the process itself chose, so a
/// multiplicative hash serves (SipHash's flood resistance buys nothing here, at ~100
/// instructions a lookup, several lookups a hooked call).
type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

#[derive(Default)]
struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 =
                (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_i32(&mut self, n: i32) {
        self.write_u64(u64::from(n as u32));
    }
}

/// This process's open invokes in the environment's journal (see [`crate::journal`]).
struct JournalLink {
    journal: Journal,
    owner: Owner,
    /// The slots of the invokes this process journaled and has not finished.
    slots: Vec<usize>,
    /// The templates invokes without a cold start share (without, with a trace id), made the
    /// first time one is needed.
    shared: (Option<Vec<u8>>, Option<Vec<u8>>),
}

fn request_capture(head: &Head) -> usize {
    if RequestKind::line_carries_error(head.method(), head.target()) {
        http::MAX_CAPTURE
    } else {
        0
    }
}

fn response_capture(_: &Head) -> usize {
    0
}

/// The error type of an `/error` or `/init/error` request: the body's `errorType` (the Python
/// and Node clients send the exception class only there), else the header.
fn error_type_of(msg: &Message) -> Option<String> {
    let header = msg
        .head
        .header(api::HDR_ERROR_TYPE)
        .filter(|v| !v.is_empty());
    api::error_type_in_body(&msg.captured).or_else(|| header.map(str::to_string))
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

impl Engine {
    pub fn new(settings: Settings, api: ApiAddress, bits: &'static FdBits, born_ns: u64) -> Self {
        let lifecycle = Lifecycle {
            on_demand: settings.init_type == "on-demand",
            proactive_threshold_ns: settings.proactive_init_ms.saturating_mul(1_000_000),
            timeout_margin_ns: settings.timeout_margin_ms.saturating_mul(1_000_000),
        };
        Engine {
            settings,
            api,
            bits,
            fds: IntMap::default(),
            conns: IntMap::default(),
            next_conn_id: 1,
            tracker: Tracker::new(born_ns, lifecycle),
            warned_garbage: false,
            warned_fd_range: false,
            journal: None,
            events: Vec::new(),
            prefixes: emf::Prefixes::default(),
            channel: None,
            batch: Vec::new(),
            batch_due_ns: None,
            batch_slots: Vec::new(),
        }
    }

    /// Reads custom values from the channel with `read` where an invoke's result is sent (and
    /// where init fails): once an invoke.
    pub fn read_channel_with(&mut self, read: ChannelReader) {
        self.channel = Some(read);
    }

    /// Hands the tracker what the channel holds now.
    fn take_channel(&mut self) {
        let Some(read) = self.channel else {
            return;
        };
        let (bytes, pid) = read();
        if bytes.is_empty() {
            return;
        }
        let (lines, _bad) = crate::custom::parse_channel(&bytes, pid);
        self.tracker.channel(lines, emf::reserved);
    }

    /// Journals each invoke this process starts from now on, so that one the process does not
    /// survive still gets its record. Per-request helpers hand invokes over instead.
    pub fn attach_journal(&mut self, journal: Journal, owner: Owner) {
        self.journal = Some(JournalLink {
            journal,
            owner,
            slots: Vec::new(),
            shared: (None, None),
        });
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
        // An invoke like most (no cold start, restore or gauges) shares one template per
        // trace-id presence, rendered once: each invoke then stores only its own strings.
        let steady = !open.cold_start
            && !open.proactive_init
            && open.init_duration_ns.is_none()
            && open.restore_duration_ns.is_none()
            && open.started.gauges.is_none();
        let slot = if steady {
            let traced = open.event.trace_id.is_some();
            let (untraced, with_trace) = (&mut link.shared.0, &mut link.shared.1);
            let shared = if traced { with_trace } else { untraced };
            if shared.is_none() {
                let mut model = open.ending_record();
                model.request_id = crate::journal::REQUEST_ID_PLACEHOLDER.to_string();
                model.trace_id = traced.then(|| crate::journal::TRACE_ID_PLACEHOLDER.to_string());
                model.request_bytes = Some(crate::journal::REQUEST_BYTES_PLACEHOLDER);
                *shared = emf::encode(&model, &self.settings)
                    .and_then(|l| crate::journal::shared_template(&l));
            }
            let Some(template) = shared.as_deref() else {
                return;
            };
            let fills = crate::journal::Fills {
                request_id: &open.event.request_id,
                trace_id: open.event.trace_id.as_deref(),
                request_bytes: open.event.request_bytes,
            };
            link.journal
                .begin_with(link.owner, &open.started, memory, template, &fills)
        } else {
            let Some(template) = emf::encode(&open.ending_record(), &self.settings)
                .and_then(|l| crate::journal::prepare(&l))
            else {
                return;
            };
            link.journal
                .begin(link.owner, &open.started, memory, &template)
        };
        if let Some(slot) = slot {
            link.slots.push(slot);
            self.tracker.journaled_newest(slot);
        }
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
    pub fn attach_handoff(&mut self, handoff: Box<dyn crate::tracker::Handoff>) {
        self.tracker.attach_handoff(handoff);
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The host connected `fd` (successfully or in progress) to `addr`. Any earlier state of the
    /// fd number is dropped first: it may have been closed behind our back (`syscall(SYS_close)`).
    pub fn connected(&mut self, fd: i32, addr: Option<SocketAddr>) -> Effects {
        let mut fx = Effects::default();
        self.forget_fd(fd);
        if addr.is_some_and(|a| self.api.matches(&a)) {
            if !self.bits.insert(fd) {
                if !self.warned_fd_range {
                    self.warned_fd_range = true;
                    fx.warnings.push(format!(
                        "the Runtime API connection uses fd {fd}, beyond the {} fds lambda-meter can follow; this connection is not metered",
                        crate::fdtable::MAX_TRACKED_FD
                    ));
                }
                return fx;
            }
            let id = self.next_conn_id;
            self.next_conn_id += 1;
            let mut conn = Connection::new();
            conn.fd_count = 1;
            self.conns.insert(id, conn);
            self.fds.insert(fd, id);
        }
        fx
    }

    /// `fd` is being closed (by `close`, `close_range`, `syscall(SYS_close)` or `dup2` onto it).
    pub fn closing(&mut self, fd: i32) {
        self.forget_fd(fd);
    }

    /// Every fd in `first..=last` is being closed (`close_range`).
    pub fn closing_range(&mut self, first: u32, last: u32) {
        let doomed: Vec<i32> = self
            .fds
            .keys()
            .copied()
            .filter(|fd| u32::try_from(*fd).is_ok_and(|f| (first..=last).contains(&f)))
            .collect();
        for fd in doomed {
            self.forget_fd(fd);
        }
    }

    /// `new_fd` now refers to what `old_fd` refers to.
    pub fn duplicated(&mut self, old_fd: i32, new_fd: i32) {
        if old_fd == new_fd {
            return;
        }
        self.forget_fd(new_fd);
        let Some(&id) = self.fds.get(&old_fd) else {
            return;
        };
        if !self.bits.insert(new_fd) {
            return;
        }
        self.fds.insert(new_fd, id);
        if let Some(c) = self.conns.get_mut(&id) {
            c.fd_count += 1;
        }
    }

    /// The host wrote `data` to `fd`.
    pub fn sent(&mut self, fd: i32, data: &[u8], probe: &dyn Fn(Reading) -> Probe) -> Effects {
        let mut fx = Effects::default();
        let Some(&id) = self.fds.get(&fd) else {
            return fx;
        };
        let mut events = std::mem::take(&mut self.events);
        let result = match self.conns.get_mut(&id) {
            Some(c) => c.requests.feed(data, request_capture, &mut events),
            None => {
                self.events = events;
                return fx;
            }
        };
        let mut now = None;
        for ev in events.drain(..) {
            match ev {
                Event::Head(head) => {
                    let kind = RequestKind::classify(head.method(), head.target());
                    let Some(conn) = self.conns.get_mut(&id) else {
                        break;
                    };
                    if conn.pending.len() >= MAX_PENDING {
                        self.drop_connection(id, Untrack::TooManyPending, &mut fx);
                        return fx;
                    }
                    conn.writing_streamed = head
                        .header(api::HDR_RESPONSE_MODE)
                        .is_some_and(|m| m.eq_ignore_ascii_case("streaming"));
                    conn.writing_head = Some(head);
                    // The answer is paired by kind alone: a result's id is not needed there.
                    let answered = match &kind {
                        RequestKind::Response(_) | RequestKind::Error(_) => RequestKind::Other,
                        k => k.clone(),
                    };
                    conn.writing = Some(kind);
                    match conn.early_responses.pop_front() {
                        Some((msg, at)) => self.response_complete(&answered, &msg, &at, &mut fx),
                        None => conn.pending.push_back(answered),
                    }
                }
                Event::FirstBodyByte => {
                    let writing = self.conns.get(&id).and_then(|c| c.writing.as_ref());
                    if let Some(RequestKind::Response(rid)) = writing {
                        let now = reading(&mut now, Reading::Clocks, probe);
                        self.tracker.result_first_byte(rid, &now);
                    }
                }
                Event::Complete(mut msg) => {
                    let (kind, streamed) = match self.conns.get_mut(&id) {
                        Some(c) => {
                            // The parser handed the request's head over with Event::Head.
                            if let Some(head) = c.writing_head.take() {
                                msg.head = head;
                            }
                            (c.writing.take(), std::mem::take(&mut c.writing_streamed))
                        }
                        None => (None, false),
                    };
                    // A `/next` only notes when it was sent; a result ends an invoke.
                    let need = match kind {
                        Some(RequestKind::Next) => Reading::Clocks,
                        _ => Reading::Usage,
                    };
                    let now = reading(&mut now, need, probe);
                    self.request_complete(kind, streamed, &msg, &now, &mut fx);
                }
            }
        }
        self.events = events;
        if let Err(e) = result {
            self.drop_connection(id, Untrack::Garbage(e), &mut fx);
        }
        fx
    }

    /// The host read `data` from `fd`.
    pub fn received(&mut self, fd: i32, data: &[u8], probe: &dyn Fn(Reading) -> Probe) -> Effects {
        let mut fx = Effects::default();
        let Some(&id) = self.fds.get(&fd) else {
            return fx;
        };
        let mut events = std::mem::take(&mut self.events);
        let result = match self.conns.get_mut(&id) {
            Some(c) => c.responses.feed(data, response_capture, &mut events),
            None => {
                self.events = events;
                return fx;
            }
        };
        self.responses_read(id, &mut events, probe, &mut fx);
        self.events = events;
        if let Err(e) = result {
            self.drop_connection(id, Untrack::Garbage(e), &mut fx);
        }
        fx
    }

    /// The host read end-of-stream from `fd`.
    pub fn end_of_stream(&mut self, fd: i32, probe: &dyn Fn(Reading) -> Probe) -> Effects {
        let mut fx = Effects::default();
        let Some(&id) = self.fds.get(&fd) else {
            return fx;
        };
        let mut events = std::mem::take(&mut self.events);
        if let Some(c) = self.conns.get_mut(&id) {
            c.responses.end_of_stream(&mut events);
        }
        self.responses_read(id, &mut events, probe, &mut fx);
        self.events = events;
        fx
    }

    /// The host is about to write to `fd` (nothing is on the wire yet). A request that starts
    /// on an idle connection while a finished invoke's record waits is the runtime's next
    /// `/next` (a record waits only while no invoke is open): the record is complete and is
    /// returned now, so it is written before the runtime can be frozen or stopped after asking.
    /// The bytes themselves are not needed, so the host's buffer is never read before the
    /// real call has checked it.
    pub fn sending(&mut self, fd: i32, probe: &dyn Fn(Reading) -> Probe) -> Effects {
        let mut fx = Effects::default();
        let Some(conn) = self.fds.get(&fd).and_then(|id| self.conns.get(id)) else {
            return fx;
        };
        if !conn.requests.is_idle() {
            return fx;
        }
        if self.tracker.record_awaits() {
            let now = probe(Reading::Clocks);
            let record = self.tracker.next_starting(&now);
            self.push_records(record, Some(&now), &mut fx);
        }
        self.write_batch_if_idle(&mut fx);
        fx
    }

    /// In Lambda's default model, held records are written before a runtime with no invoke
    /// open asks for its next event: from then on Lambda may freeze the environment, and a
    /// frozen environment may be shut down without running another instruction. So records
    /// are held there only while invokes overlap in one process. Lambda Managed Instances
    /// (`AWS_LAMBDA_MAX_CONCURRENCY`) never freeze an environment and stop it with SIGTERM,
    /// which the ending paths handle: records are held across `/next` there.
    fn write_batch_if_idle(&mut self, fx: &mut Effects) {
        if self.batch_waits_for_idle() {
            self.write_batch(fx);
        }
    }

    fn batch_waits_for_idle(&self) -> bool {
        self.settings.max_concurrency <= 1
            && !self.batch.is_empty()
            && self.tracker.open_count() == 0
    }

    /// A custom value from the function, given on `thread`: `add` puts it on the invoke it
    /// belongs to (see [`Tracker::custom_target`]), under the record's naming rules.
    pub fn custom(
        &mut self,
        thread: u64,
        add: impl FnOnce(&mut crate::custom::Custom, &dyn Fn(&str) -> bool) -> crate::custom::Status,
    ) -> crate::custom::Status {
        use crate::custom::Status;
        match self.tracker.custom_target(thread) {
            Ok((target, placed)) => match add(target, &emf::reserved) {
                Status::Ok => placed,
                refused => refused,
            },
            Err(status) => status,
        }
    }

    /// Whether a finished invoke's record waits for the runtime's next request, or held records
    /// wait for the runtime to go idle (either is written before that request leaves).
    pub fn record_awaits(&self) -> bool {
        self.tracker.record_awaits() || self.batch_waits_for_idle()
    }

    /// Time has passed: timeouts and records that waited long enough.
    pub fn tick(&mut self, now: &Probe) -> Effects {
        let mut fx = Effects::default();
        let records = self.tracker.tick(now);
        self.sync_journal();
        self.push_records(records, Some(now), &mut fx);
        if self.batch_due_ns.is_some_and(|due| now.mono_ns >= due) {
            self.write_batch(&mut fx);
        }
        fx
    }

    /// When [`Engine::tick`] next has work (monotonic ns).
    pub fn next_wakeup(&self) -> Option<u64> {
        match (self.tracker.next_wakeup(), self.batch_due_ns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The process is exiting: write what still waits.
    pub fn flush(&mut self) -> Effects {
        let mut fx = Effects::default();
        let record = self.tracker.flush();
        self.push_records(record, None, &mut fx);
        self.write_batch(&mut fx);
        fx
    }

    /// Encodes finished records, or holds them for a batched record (`LAMBDA_METER_BATCH`).
    /// `now` is when they were handed over (`None` at exit, when nothing is held).
    fn push_records(
        &mut self,
        records: impl IntoIterator<Item = InvokeRecord>,
        now: Option<&Probe>,
        fx: &mut Effects,
    ) {
        for r in records {
            let held = match now {
                Some(now) if self.settings.batch > 1 && emf::batchable(&r) => {
                    self.hold(r, now, fx);
                    continue;
                }
                _ => r,
            };
            // Lambda may stop the runtime at an invoke's deadline, and an init error ends the
            // environment: what is held goes first.
            if held.timed_out || held.kind == tracker::RecordKind::InitError {
                self.write_batch(fx);
            }
            self.stream_constants_from_journal();
            if let Some(line) = emf::encode_cached(&held, &self.settings, &mut self.prefixes) {
                fx.lines.push(line);
            }
            self.stream_constants_to_journal();
        }
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
    fn hold(&mut self, r: InvokeRecord, now: &Probe, fx: &mut Effects) {
        let period_ms = u64::from(self.settings.resolution) * 1000;
        let period = |ts: u64| ts / period_ms;
        if self
            .batch
            .first()
            .is_some_and(|first| period(first.timestamp_ms) != period(r.timestamp_ms))
        {
            self.write_batch(fx);
        }
        if self.batch.is_empty() {
            let end_ms = (period(r.timestamp_ms) + 1) * period_ms;
            let left_ns = end_ms.saturating_sub(now.wall_ms).saturating_mul(1_000_000);
            self.batch_due_ns = Some(now.mono_ns.saturating_add(left_ns));
        }
        if !self.keep_in_journal(&r) {
            // Held only where an ending or a successor can still write it: else not held.
            self.batch.push(r);
            return self.write_batch(fx);
        }
        self.batch.push(r);
        if self.batch.len() >= self.settings.batch {
            self.write_batch(fx);
        }
    }

    /// Keeps `r`'s own line in the journal while it is held, so that the process ending (exit,
    /// `_exit`, a fatal signal, SIGTERM) or vanishing (its successor) still writes it. Lines
    /// share a slot while they fit; a new slot is taken only while more than half stay free
    /// for open invokes. Without a journal (a forked child) nothing is held.
    fn keep_in_journal(&mut self, r: &InvokeRecord) -> bool {
        let Some(link) = &self.journal else {
            return false;
        };
        let Some(line) = emf::encode_held(r, &self.settings) else {
            return false;
        };
        if let Some(&slot) = self.batch_slots.last()
            && link
                .journal
                .hold_more(slot, link.owner.pid, line.as_bytes())
        {
            return true;
        }
        if link.journal.free_count() <= crate::journal::SLOT_COUNT / 2 {
            return false;
        }
        match link.journal.hold(link.owner, line.as_bytes()) {
            Some(slot) => {
                self.batch_slots.push(slot);
                true
            }
            None => false,
        }
    }

    /// Writes the held records as one batched record.
    fn write_batch(&mut self, fx: &mut Effects) {
        self.batch_due_ns = None;
        if self.batch.is_empty() {
            return;
        }
        // The journal's copies go first: a process ending from here on has the batch's line
        // to write, or nothing.
        if let Some(link) = &self.journal {
            for slot in self.batch_slots.drain(..) {
                link.journal.release(slot, link.owner.pid);
            }
        }
        self.batch_slots.clear();
        let batch = std::mem::take(&mut self.batch);
        self.stream_constants_from_journal();
        if let Some(line) = emf::encode_batch(&batch, &self.settings, &mut self.prefixes) {
            fx.lines.push(line);
        }
        self.stream_constants_to_journal();
        // The allocation is kept for the next batch.
        self.batch = batch;
        self.batch.clear();
    }

    /// In a forked child: nothing inherited is the child's to report. It becomes a runtime of
    /// its own if it connects to the Runtime API itself.
    pub fn forked_child(&mut self, born_ns: u64, owner: Owner) {
        for fd in self.fds.keys() {
            self.bits.remove(*fd);
        }
        self.fds.clear();
        self.conns.clear();
        self.tracker.reborn(born_ns);
        // The parent's held records are the parent's to write (its pid is on their slots).
        self.batch.clear();
        self.batch_due_ns = None;
        self.batch_slots.clear();
        // The parent's journaled invokes stay the parent's (its pid is on their slots).
        if let Some(link) = self.journal.as_mut() {
            link.slots.clear();
            link.owner = owner;
        }
    }

    /// Number of connections followed now.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    fn responses_read(
        &mut self,
        id: u64,
        events: &mut Vec<Event>,
        probe: &dyn Fn(Reading) -> Probe,
        fx: &mut Effects,
    ) {
        let mut now = None;
        for ev in events.drain(..) {
            let Event::Complete(msg) = ev else { continue };
            let Some(conn) = self.conns.get(&id) else {
                continue;
            };
            // The answer to `/next` starts an invoke; other answers need the clocks at most.
            // (An answer read before its request was seen is kept with a full reading.)
            let need = match conn.pending.front() {
                Some(RequestKind::Next) | None => Reading::Usage,
                Some(_) => Reading::Clocks,
            };
            let now = reading(&mut now, need, probe);
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            match conn.pending.pop_front() {
                Some(kind) => self.response_complete(&kind, &msg, &now, fx),
                // Another thread wrote the request and has not reached its hook yet, while
                // this one already read the answer: pair them when the request shows up.
                None if conn.early_responses.len() < MAX_PENDING => {
                    conn.early_responses.push_back((msg, now));
                }
                None => {}
            }
        }
    }

    /// A response to a request of `kind` was fully read at `now`.
    fn response_complete(
        &mut self,
        kind: &RequestKind,
        msg: &Message,
        now: &Probe,
        fx: &mut Effects,
    ) {
        match (kind, msg.head.status) {
            (RequestKind::Next, 200) => {}
            (RequestKind::Next, _) => return self.tracker.next_refused(),
            (RequestKind::RestoreNext, 200) => return self.tracker.restore_answered(now),
            _ => return,
        }
        let h = &msg.head;
        let info = EventInfo {
            request_id: h
                .header(api::HDR_REQUEST_ID)
                .unwrap_or_default()
                .to_string(),
            trace_id: h.header(api::HDR_TRACE_ID).map(str::to_string),
            deadline_ms: h.header(api::HDR_DEADLINE_MS).and_then(|v| v.parse().ok()),
            request_bytes: msg.body_len,
            thread: crate::custom::thread_key(),
        };
        let opened = self.tracker.opened_count();
        let flushed = self.tracker.event_received(info, now);
        self.push_records(flushed, Some(now), fx);
        self.sync_journal();
        if self.tracker.opened_count() != opened {
            self.journal_newest();
        }
    }

    fn request_complete(
        &mut self,
        kind: Option<RequestKind>,
        streamed: bool,
        msg: &Message,
        now: &Probe,
        fx: &mut Effects,
    ) {
        let (id, outcome) = match kind {
            Some(RequestKind::Next) => {
                let flushed = self.tracker.next_requested(now);
                self.push_records(flushed, Some(now), fx);
                // Where the write was not seen before it happened (see `sending`).
                return self.write_batch_if_idle(fx);
            }
            Some(RequestKind::InitError) => {
                self.take_channel();
                let record = self.tracker.init_error(error_type_of(msg), now);
                return self.push_records([record], Some(now), fx);
            }
            Some(RequestKind::Response(id)) => {
                let trailer_error = msg
                    .trailers
                    .iter()
                    .find(|(n, v)| n == api::HDR_ERROR_TYPE && !v.is_empty())
                    .map(|(_, v)| v.clone());
                let outcome = Outcome {
                    response_bytes: msg.body_len,
                    errored: trailer_error.is_some(),
                    error_type: trailer_error,
                    streamed,
                };
                (id, outcome)
            }
            Some(RequestKind::Error(id)) => {
                let outcome = Outcome {
                    response_bytes: msg.body_len,
                    errored: true,
                    error_type: error_type_of(msg),
                    streamed,
                };
                (id, outcome)
            }
            _ => return,
        };
        self.take_channel();
        let records = self.tracker.result_sent(&id, outcome, now);
        self.sync_journal();
        self.push_records(records, Some(now), fx);
    }

    fn forget_fd(&mut self, fd: i32) {
        self.bits.remove(fd);
        if let Some(id) = self.fds.remove(&fd) {
            let last = match self.conns.get_mut(&id) {
                Some(c) => {
                    c.fd_count = c.fd_count.saturating_sub(1);
                    c.fd_count == 0
                }
                None => false,
            };
            if last {
                self.conns.remove(&id);
            }
        }
    }

    fn drop_connection(&mut self, id: u64, why: Untrack, fx: &mut Effects) {
        let fds: Vec<i32> = self
            .fds
            .iter()
            .filter(|(_, c)| **c == id)
            .map(|(fd, _)| *fd)
            .collect();
        for fd in fds {
            self.bits.remove(fd);
            self.fds.remove(&fd);
        }
        self.conns.remove(&id);
        if !self.warned_garbage {
            self.warned_garbage = true;
            let reason = match why {
                Untrack::Garbage(e) => e.describe(),
                Untrack::TooManyPending => "too many requests without responses",
            };
            fx.warnings.push(format!(
                "stopped following a Runtime API connection ({reason}); invokes on it are not metered"
            ));
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

    fn engine(bits: &'static FdBits) -> Engine {
        let (s, _) = Settings::from_env(
            &|k| match k {
                "AWS_LAMBDA_FUNCTION_NAME" => Some("fn".into()),
                _ => None,
            },
            "test",
        );
        Engine::new(s, ApiAddress::parse("127.0.0.1:9001").unwrap(), bits, 0)
    }

    fn api_addr() -> Option<SocketAddr> {
        Some("127.0.0.1:9001".parse().unwrap())
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
                gauges: None,
            }
        }
    }

    fn next_req() -> &'static [u8] {
        b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n\r\n"
    }

    fn next_resp(id: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {id}\r\nLambda-Runtime-Deadline-Ms: 9999999999999\r\nLambda-Runtime-Trace-Id: Root=1-x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn result_req(id: &str, kind: &str, body: &str, extra: &str) -> Vec<u8> {
        format!(
            "POST /2018-06-01/runtime/invocation/{id}/{kind} HTTP/1.1\r\nContent-Length: {}\r\n{extra}\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// Sends a result on `fd`, then (if the record waits for it) starts the next `/next`: the
    /// record's lines.
    fn done(e: &mut Engine, fd: i32, result: &[u8], p: &dyn Fn(Reading) -> Probe) -> Vec<String> {
        let mut lines = e.sent(fd, result, p).lines;
        if lines.is_empty() {
            lines = e.sending(fd, p).lines;
        }
        lines
    }

    const ACCEPTED: &[u8] =
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n";

    #[test]
    fn one_record_per_invoke_on_keep_alive_connection() {
        let bits = leak_bits();
        let mut e = engine(bits);
        let clock = Clock(Cell::new(0));
        let p = |_: Reading| clock.probe();
        assert!(e.connected(5, api_addr()).warnings.is_empty());
        assert!(bits.contains(5));
        clock.0.set(100);
        e.sent(5, next_req(), &p);
        clock.0.set(150);
        for b in next_resp("id-1", "{\"a\":1}").chunks(1) {
            assert!(e.received(5, b, &p).lines.is_empty());
        }
        clock.0.set(190);
        let fx = e.sent(5, &result_req("id-1", "response", "\"ok\"", ""), &p);
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
        e.sent(5, next_req(), &p);
        e.received(5, &next_resp("id-2", "{}"), &p);
        let lines = done(
            &mut e,
            5,
            &result_req(
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

    #[test]
    fn invoke_may_end_on_another_connection_and_fd_reuse_resets() {
        let bits = leak_bits();
        let mut e = engine(bits);
        let p = |_: Reading| Probe::default();
        e.connected(7, api_addr());
        e.connected(8, api_addr());
        e.sent(7, next_req(), &p);
        e.received(7, &next_resp("x", "{}"), &p);
        // fd 7 closed behind our back, number reused for an unrelated socket
        e.connected(7, Some("10.0.0.1:443".parse().unwrap()));
        assert!(!bits.contains(7));
        let lines = done(
            &mut e,
            8,
            &result_req(
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
        e.received(5, &next_resp("early", "{}"), &p);
        clock.0.set(12);
        e.sent(5, next_req(), &p);
        clock.0.set(30);
        let lines = done(&mut e, 5, &result_req("early", "response", "1", ""), &p);
        assert_eq!(lines.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["Duration"], 20.0, "timed from when the event was read");
        // The 202 read before the result request was seen pairs with it, not with a later /next.
        e.received(5, ACCEPTED, &p);
        e.sent(5, next_req(), &p);
        e.received(5, &next_resp("after", "{}"), &p);
        assert_eq!(
            done(&mut e, 5, &result_req("after", "response", "2", ""), &p).len(),
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
        e.sent(9, next_req(), &p);
        e.received(9, &next_resp("d", ""), &p);
        assert_eq!(
            done(&mut e, 9, &result_req("d", "response", "", ""), &p).len(),
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
        e.sent(5, next_req(), &p);
        e.received(5, &next_resp("s", "{}"), &p);
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

    /// A formatted journal in leaked memory, and that memory.
    fn memory_journal() -> (Journal, &'static mut [u64]) {
        let words = Box::leak(vec![0u64; crate::journal::FILE_SIZE / 8].into_boxed_slice());
        // SAFETY: a leaked, 8-byte aligned buffer of FILE_SIZE bytes.
        let journal = unsafe { Journal::from_raw(words.as_mut_ptr().cast()) };
        journal.format();
        (journal, words)
    }

    fn batching_engine(bits: &'static FdBits, batch: usize) -> Engine {
        let mut e = engine(bits);
        e.settings.batch = batch;
        e.attach_journal(memory_journal().0, ME);
        e
    }

    /// Invoke `open` on connection 4 stays open while `n` invokes (`r1`…) run on connection 5.
    fn overlapped(
        e: &mut Engine,
        open: &str,
        n: usize,
        p: &dyn Fn(Reading) -> Probe,
    ) -> Vec<String> {
        e.connected(4, api_addr());
        e.connected(5, api_addr());
        let mut lines = e.sent(4, next_req(), p).lines;
        lines.extend(e.received(4, &next_resp(open, "{}"), p).lines);
        for i in 1..=n {
            lines.extend(one_invoke(e, 5, &format!("r{i}"), p));
        }
        lines
    }

    /// Invoke `id` on connection `fd`: its event read, its result sent and accepted.
    fn one_invoke(e: &mut Engine, fd: i32, id: &str, p: &dyn Fn(Reading) -> Probe) -> Vec<String> {
        let mut lines = e.sending(fd, p).lines;
        lines.extend(e.sent(fd, next_req(), p).lines);
        lines.extend(e.received(fd, &next_resp(id, "{}"), p).lines);
        lines.extend(e.sent(fd, &result_req(id, "response", "1", ""), p).lines);
        lines.extend(e.received(fd, ACCEPTED, p).lines);
        lines
    }

    #[test]
    fn a_runtime_that_can_be_frozen_after_each_invoke_never_holds_a_record() {
        let bits = leak_bits();
        let mut e = batching_engine(bits, 10);
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
        let mut e = batching_engine(bits, 3);
        let clock = Clock(Cell::new(10));
        let p = |_: Reading| clock.probe();
        // Invoke r0 (the cold start) stays open while r1..=r5 run.
        let mut lines = overlapped(&mut e, "r0", 5, &p);
        // Three warm records made one batch; two are held while r0 is open.
        let batched: Vec<&String> = lines.iter().filter(|l| l.contains("\"invokes\"")).collect();
        assert_eq!(batched.len(), 1, "{lines:?}");
        assert!(batched[0].contains("\"invokes\":3"));
        assert!(!e.record_awaits(), "held while r0 is open");
        lines.extend(e.sent(4, &result_req("r0", "response", "1", ""), &p).lines);
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
        let mut e = batching_engine(bits, 3);
        e.settings.max_concurrency = 4;
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
        let mut e = batching_engine(bits, 10);
        overlapped(&mut e, "open", 3, &p);
        // (The open invoke's record is the journal's to write as the process ends.)
        assert_eq!(held(&e.flush().lines), 3);
        // At the end of the first record's minute, which the watchdog is woken for.
        let mut e = batching_engine(bits, 10);
        overlapped(&mut e, "open", 3, &p);
        let due = e.next_wakeup().unwrap();
        assert!(due <= 60_000 * 1_000_000);
        clock.0.set(60_000);
        assert_eq!(held(&e.tick(&clock.probe()).lines), 3);
        // At the open invoke's deadline (its timeout record goes after them).
        let mut e = batching_engine(bits, 10);
        clock.0.set(10);
        e.connected(4, api_addr());
        e.connected(5, api_addr());
        e.sent(4, next_req(), &p);
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
        let mut e = engine(bits);
        e.settings.batch = 10;
        let (journal, words) = memory_journal();
        e.attach_journal(journal, ME);
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
        let copy = words.to_vec();
        // SAFETY: as above, a leaked copy of the journal's memory.
        let snapshot =
            unsafe { Journal::from_raw(Box::leak(copy.into_boxed_slice()).as_mut_ptr().cast()) };
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
    fn open_invokes_are_journaled_until_they_end() {
        let bits = leak_bits();
        let mut e = engine(bits);
        let (journal, _) = memory_journal();
        e.attach_journal(journal, ME);
        let clock = Clock(Cell::new(10));
        let p = |_: Reading| clock.probe();
        e.connected(5, api_addr());
        e.sent(5, next_req(), &p);
        e.received(5, &next_resp("done", "{}"), &p);
        assert_eq!(journal.open_count(), 1);
        // A result sent ends the invoke, though its record still waits for the next /next.
        e.sent(5, &result_req("done", "response", "1", ""), &p);
        assert_eq!(journal.open_count(), 0);
        e.received(5, ACCEPTED, &p);
        e.sending(5, &p);
        e.sent(5, next_req(), &p);
        e.received(5, &next_resp("dies", "{\"k\":1}"), &p);
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
    fn forked_child_forgets_inherited_state() {
        let bits = leak_bits();
        let mut e = engine(bits);
        let p = |_: Reading| Probe::default();
        e.connected(5, api_addr());
        e.sent(5, next_req(), &p);
        e.received(5, &next_resp("f", ""), &p);
        e.forked_child(
            0,
            Owner {
                pid: 2,
                start_ticks: 2,
            },
        );
        assert!(bits.is_empty());
        assert!(
            e.sent(5, &result_req("f", "response", "", ""), &p)
                .lines
                .is_empty()
        );
    }
}
