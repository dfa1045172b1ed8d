//! The invoke tracker: turns Runtime API exchanges into one record per invoke.
//!
//! Invokes are keyed by request id, never by connection or thread: an event may be fetched on
//! one connection and its result posted on another, and several invokes may be open at once.
//! Time and resource readings come in as [`Probe`] values, so this is plain testable logic.
//!
//! Lifecycle facts it establishes:
//! - cold start: the first invoke of an on-demand environment — unless its `/next` waited
//!   longer than the proactive-initialisation threshold for the event (the environment was
//!   initialised ahead of demand), or the environment is provisioned or restored;
//! - restore: SnapStart's `/runtime/restore/next` answer → the next `/next`;
//! - timeout: an invoke still open at its deadline minus a margin is reported then, and a
//!   later result for it produces nothing;
//! - post-response time: result sent → the runtime's next `/next`, for runtimes that handle one
//!   invoke at a time; the record waits for it at most [`POST_RESPONSE_WAIT_NS`];
//! - time to first byte of a streamed result.

//!
//! Everything it holds is inline (`Copy`, fixed-size strings) or in room reserved when it is
//! made: opening, finishing and recording invokes never allocates.

use crate::custom::{Custom, Pool, Status};
pub use crate::runtime_api::{MAX_ERROR_TYPE_LEN, MAX_ID_LEN, MAX_TRACE_LEN};
use crate::text::FixedStr;

/// At most this many invokes may be open at once in one process; beyond it the oldest is
/// forgotten (a runtime that never posts results must not grow our memory).
pub const MAX_OPEN: usize = 128;
/// How long a finished invoke's record waits for the runtime's next `/next`.
pub const POST_RESPONSE_WAIT_NS: u64 = 2_000_000_000;
/// The error type Lambda gives a timed-out invoke.
pub const TIMEOUT_ERROR_TYPE: &str = "Sandbox.Timedout";
/// The error type Lambda gives an invoke whose result the Runtime API refused as too large
/// (`413`: over 6 MB buffered).
pub const RESPONSE_TOO_LARGE_ERROR_TYPE: &str = "Function.ResponseSizeTooLarge";
/// The error type of an invoke whose result the Runtime API refused for another reason, when
/// neither the function nor the Runtime API's answer named one.
pub const RESULT_REFUSED_ERROR_TYPE: &str = "Runtime.ResultRefused";

/// An invoke's request id, bounded.
pub type RequestId = FixedStr<MAX_ID_LEN>;
/// An invoke's trace header, bounded.
pub type TraceId = FixedStr<MAX_TRACE_LEN>;
/// An error type, bounded.
pub type ErrorType = FixedStr<MAX_ERROR_TYPE_LEN>;

/// Resource gauges of the environment, read only when extended metrics are on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Bytes received and sent on the network interfaces (counters).
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
    /// Bytes used on the `/tmp` file system.
    pub tmp_used_bytes: u64,
    pub open_fds: u64,
    pub threads: u64,
}

/// What a reading must include: the clocks only (read from the vDSO, no system call), or the
/// process's CPU time and memory as well (`getrusage`), needed only where an invoke starts or
/// ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reading {
    Clocks,
    Usage,
}

/// One reading of the clocks and the process's resources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Probe {
    /// Monotonic clock, ns.
    pub mono_ns: u64,
    /// Wall clock, ms since the epoch.
    pub wall_ms: u64,
    /// User + system CPU time of the process, ns.
    pub cpu_ns: u64,
    /// Peak memory of the environment as Lambda counts it (its cgroup's, or the process's
    /// with its waited-for children's), KiB.
    pub max_rss_kb: u64,
    /// Peak resident set size of the process alone, KiB (0: not read).
    pub process_rss_kb: u64,
    /// Extended gauges, when asked for.
    pub gauges: Option<Gauges>,
    /// CPU time (ns) and peak memory (KiB) of the environment this process belongs to, when it
    /// is not the environment's root (see [`Probe::environment`]).
    pub env: Option<(u64, u64)>,
}

impl Probe {
    /// No reading (a value to write over).
    pub const ZERO: Probe = Probe {
        mono_ns: 0,
        wall_ms: 0,
        cpu_ns: 0,
        max_rss_kb: 0,
        process_rss_kb: 0,
        gauges: None,
        env: None,
    };

    /// This reading as the environment's: its CPU time and peak memory, where they were read.
    /// An invoke that began in one process of a per-request runtime and ends in another is
    /// measured so.
    pub fn environment(&self) -> Probe {
        match self.env {
            Some((cpu_ns, max_rss_kb)) => Probe {
                cpu_ns,
                max_rss_kb,
                // This process's own peak is not the runtime's.
                process_rss_kb: 0,
                env: None,
                ..*self
            },
            None => *self,
        }
    }
}

/// What the `/next` answer told us about an event, by reference: its ids are copied once,
/// into the open list (see [`Tracker::event_received_ref`]).
#[derive(Clone, Copy, Debug)]
pub struct EventRef<'a> {
    pub request_id: &'a RequestId,
    pub trace_id: Option<&'a TraceId>,
    pub deadline_ms: Option<u64>,
    pub request_bytes: u64,
    pub thread: u64,
}

/// What the `/next` answer told us about an event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventInfo {
    pub request_id: RequestId,
    pub trace_id: Option<TraceId>,
    pub deadline_ms: Option<u64>,
    pub request_bytes: u64,
    /// The thread that read the event ([`crate::custom::thread_key`]): custom metrics given on
    /// it belong to this invoke.
    pub thread: u64,
}

/// How an invoke ended, from the result request and the Runtime API's answer to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub response_bytes: u64,
    pub errored: bool,
    pub error_type: Option<ErrorType>,
    /// The result was streamed (`Lambda-Runtime-Function-Response-Mode: streaming`).
    pub streamed: bool,
}

impl Outcome {
    /// The Runtime API answered the result with `status` (and, in its body, maybe an error
    /// type): a status other than 2xx fails the invoke, whatever the result said.
    pub fn answered(mut self, status: u16, answer_error_type: Option<&ErrorType>) -> Outcome {
        if (200..300).contains(&status) {
            return self;
        }
        self.errored = true;
        self.error_type = Some(match status {
            413 => ErrorType::new(RESPONSE_TOO_LARGE_ERROR_TYPE),
            _ => self
                .error_type
                .or(answer_error_type.copied())
                .unwrap_or(ErrorType::new(RESULT_REFUSED_ERROR_TYPE)),
        });
        self
    }
}

/// Inits of earlier runtime processes of the environment that never ended: killed before they
/// asked for an event (see [`RecordKind::Unstarted`]), an invoke waiting for each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndedInits {
    /// How many (of which the first [`MAX_ENDED_INITS`] are reported).
    pub count: u32,
    /// How long each ran at most, when known: from its start to the next runtime's start.
    pub ran_ns: [Option<u64>; MAX_ENDED_INITS],
    /// When the runtime that followed them started (epoch ms).
    pub followed_at_ms: u64,
}

/// Inits that never ended reported at once, at most (each is a failed restart).
pub const MAX_ENDED_INITS: usize = 4;

/// What a record is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    Invoke,
    /// `/runtime/init/error`: the environment failed to initialise.
    InitError,
    /// An invoke that waited for an init that never ended: the runtime process was killed
    /// (at the function's timeout, or by the out-of-memory killer) before it asked for an
    /// event. Reported by the environment's next runtime, without a request id.
    Unstarted,
}

/// Everything one EMF line reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InvokeRecord {
    pub kind: RecordKind,
    /// Empty for an init error.
    pub request_id: RequestId,
    pub trace_id: Option<TraceId>,
    pub timestamp_ms: u64,
    pub duration_ns: Option<u64>,
    pub cold_start: bool,
    /// The first invoke of an environment initialised ahead of demand.
    pub proactive_init: bool,
    pub init_duration_ns: Option<u64>,
    /// The first invoke after a SnapStart restore.
    pub restored: bool,
    pub restore_duration_ns: Option<u64>,
    pub errored: bool,
    pub timed_out: bool,
    pub error_type: Option<ErrorType>,
    pub cpu_ns: Option<u64>,
    /// The environment's peak memory (see [`Probe::max_rss_kb`]).
    pub max_rss_kb: u64,
    /// The runtime process's own peak, when known.
    pub process_rss_kb: Option<u64>,
    /// The most invokes open at once in the process during this one, where more than 1 (its
    /// CPU time was shared).
    pub concurrent: Option<u32>,
    pub request_bytes: Option<u64>,
    pub response_bytes: Option<u64>,
    pub post_response_ns: Option<u64>,
    pub time_to_first_byte_ns: Option<u64>,
    /// Its downstream calls in sum, where a metric of theirs is selected.
    pub downstream: Option<crate::downstream::Sum>,
    /// Gauges at the end; network counters as the change during the invoke.
    pub gauges: Option<Gauges>,
    /// What the function added (in the tracker's [`Pool`]; whoever writes the record frees
    /// it).
    pub custom: Custom,
    /// The journal slot its invoke was journaled in, if any (the engine's).
    pub journal_slot: Option<usize>,
}

impl InvokeRecord {
    /// A record of `kind` that knows nothing yet (no values, no ids), to be filled in.
    pub fn blank(kind: RecordKind) -> InvokeRecord {
        InvokeRecord {
            kind,
            request_id: RequestId::EMPTY,
            trace_id: None,
            timestamp_ms: 0,
            duration_ns: None,
            cold_start: false,
            proactive_init: false,
            init_duration_ns: None,
            restored: false,
            restore_duration_ns: None,
            errored: false,
            timed_out: false,
            error_type: None,
            cpu_ns: None,
            max_rss_kb: 0,
            process_rss_kb: None,
            concurrent: None,
            request_bytes: None,
            response_bytes: None,
            post_response_ns: None,
            time_to_first_byte_ns: None,
            downstream: None,
            gauges: None,
            custom: Custom::NONE,
            journal_slot: None,
        }
    }
}

/// How this runtime's lifecycle is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    /// On-demand initialisation: a first invoke may be a cold start.
    pub on_demand: bool,
    /// A first `/next` that waits longer than this was answered after a proactive init.
    pub proactive_threshold_ns: u64,
    /// Report an open invoke as timed out this long before its deadline.
    pub timeout_margin_ns: u64,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            on_demand: true,
            proactive_threshold_ns: 1_000_000_000,
            timeout_margin_ns: 50_000_000,
        }
    }
}

/// An invoke whose event was received and whose result was not sent yet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpenInvoke {
    pub event: EventInfo,
    pub started: Probe,
    pub cold_start: bool,
    pub proactive_init: bool,
    pub init_duration_ns: Option<u64>,
    pub restore_duration_ns: Option<u64>,
    /// The deadline on the monotonic clock.
    pub deadline_mono_ns: Option<u64>,
    /// When the first byte of a streamed result was written.
    pub first_byte_ns: Option<u64>,
    /// The journal slot holding this invoke's record in case the process ends (the engine's;
    /// never handed to another process).
    pub journal_slot: Option<usize>,
    /// What the function added so far (never handed to another process).
    pub custom: Custom,
    /// The most invokes open at once in this process while this one was (itself included):
    /// above 1, its CPU time and memory were shared with others.
    pub concurrent: u32,
    /// Its downstream calls in sum, once known (the engine's, where a metric of theirs is
    /// selected; never handed to another process).
    pub downstream: Option<crate::downstream::Sum>,
}

impl OpenInvoke {
    /// What [`Tracker::event_received_ref`] fills in place: a trace id there to be written
    /// over (the whole value is written once, at the push).
    const BLANK: OpenInvoke = OpenInvoke {
        event: EventInfo {
            request_id: RequestId::EMPTY,
            trace_id: Some(TraceId::EMPTY),
            deadline_ms: None,
            request_bytes: 0,
            thread: 0,
        },
        started: Probe::ZERO,
        cold_start: false,
        proactive_init: false,
        init_duration_ns: None,
        restore_duration_ns: None,
        deadline_mono_ns: None,
        first_byte_ns: None,
        journal_slot: None,
        custom: Custom::NONE,
        concurrent: 1,
        downstream: None,
    };

    /// The record of this invoke if the process ended now: an error of Lambda's type for a
    /// runtime that exited, with the values known only at the end to be filled in then (see
    /// the journal). Its custom values are this invoke's (still owned by it).
    pub fn ending_record(&self) -> InvokeRecord {
        let mut record = self.record(&self.started);
        // Values measured at the ending are stand-ins here (the journal's holes take their
        // place): not zero, so that no value computed from them is left out for want of one.
        record.duration_ns = Some(1);
        record.cpu_ns = Some(1);
        record.errored = true;
        record.error_type = Some(ErrorType::new(crate::runtime_api::EXIT_ERROR_TYPE));
        record
    }

    /// Its final record, its result sent at `now` with `outcome` (a result after the deadline
    /// comes too late: Lambda has timed the invoke out).
    fn finished(&self, outcome: &Outcome, now: &Probe) -> InvokeRecord {
        let mut record = self.record(now);
        self.finish(outcome, now, &mut record);
        record
    }

    /// [`OpenInvoke::finished`], written over `out` where it is (its strings copied only as
    /// long as they are: a record is not small).
    pub fn finished_into(&self, outcome: &Outcome, now: &Probe, out: &mut InvokeRecord) {
        self.record_into(now, out);
        self.finish(outcome, now, out);
    }

    /// Makes `record`, this invoke's as [`OpenInvoke::record_into`] wrote it, its final one.
    fn finish(&self, outcome: &Outcome, now: &Probe, record: &mut InvokeRecord) {
        let late = self.deadline_mono_ns.is_some_and(|d| now.mono_ns > d);
        record.errored = outcome.errored || late;
        record.timed_out = late;
        if late {
            record.error_type = Some(ErrorType::new(TIMEOUT_ERROR_TYPE));
        } else {
            set_error_type(&mut record.error_type, outcome.error_type.as_ref());
        }
        record.response_bytes = Some(outcome.response_bytes);
        if outcome.streamed {
            record.time_to_first_byte_ns = self
                .first_byte_ns
                .map(|t| t.saturating_sub(self.started.mono_ns));
        }
    }

    fn record(&self, now: &Probe) -> InvokeRecord {
        let mut record = InvokeRecord::blank(RecordKind::Invoke);
        self.record_into(now, &mut record);
        record
    }

    /// Writes over `out` the record of this invoke as it stands at `now` (no outcome yet).
    fn record_into(&self, now: &Probe, out: &mut InvokeRecord) {
        let started = self.started;
        let gauges = match (started.gauges, now.gauges) {
            (Some(a), Some(b)) => Some(Gauges {
                net_rx_bytes: b.net_rx_bytes.saturating_sub(a.net_rx_bytes),
                net_tx_bytes: b.net_tx_bytes.saturating_sub(a.net_tx_bytes),
                ..b
            }),
            _ => None,
        };
        // Every field, named: one added to the record must be set here too.
        let InvokeRecord {
            kind,
            request_id,
            trace_id,
            timestamp_ms,
            duration_ns,
            cold_start,
            proactive_init,
            init_duration_ns,
            restored,
            restore_duration_ns,
            errored,
            timed_out,
            error_type,
            cpu_ns,
            max_rss_kb,
            process_rss_kb,
            concurrent,
            request_bytes,
            response_bytes,
            post_response_ns,
            time_to_first_byte_ns,
            downstream,
            gauges: record_gauges,
            custom,
            journal_slot,
        } = out;
        *kind = RecordKind::Invoke;
        request_id.assign(&self.event.request_id);
        match (trace_id.as_mut(), self.event.trace_id.as_ref()) {
            (Some(dst), Some(src)) => dst.assign(src),
            (None, Some(src)) => *trace_id = Some(*src),
            (_, None) => *trace_id = None,
        }
        *timestamp_ms = now.wall_ms;
        *duration_ns = Some(now.mono_ns.saturating_sub(started.mono_ns));
        *cold_start = self.cold_start;
        *proactive_init = self.proactive_init;
        *init_duration_ns = self.init_duration_ns;
        *restored = self.restore_duration_ns.is_some();
        *restore_duration_ns = self.restore_duration_ns;
        *errored = false;
        *timed_out = false;
        *error_type = None;
        *cpu_ns = Some(now.cpu_ns.saturating_sub(started.cpu_ns));
        *max_rss_kb = now.max_rss_kb;
        *process_rss_kb = Some(now.process_rss_kb).filter(|kb| *kb > 0);
        *concurrent = Some(self.concurrent).filter(|n| *n > 1);
        *request_bytes = Some(self.event.request_bytes);
        *response_bytes = None;
        *post_response_ns = None;
        *time_to_first_byte_ns = None;
        *downstream = self.downstream;
        *record_gauges = gauges;
        *custom = self.custom;
        *journal_slot = self.journal_slot;
    }
}

/// The earlier of `a` (when there is one) and `b`.
pub fn earliest(a: Option<u64>, b: u64) -> u64 {
    a.map_or(b, |a| a.min(b))
}

/// Sets an error type where it is (an absent one stays a tag to write; a present one is copied
/// as long as it is).
fn set_error_type(dst: &mut Option<ErrorType>, src: Option<&ErrorType>) {
    match (dst.as_mut(), src) {
        (Some(d), Some(s)) => d.assign(s),
        (None, Some(s)) => *dst = Some(*s),
        (_, None) => *dst = None,
    }
}

/// Where invokes live between the processes of one environment, when a runtime uses a new
/// process per request (a shell runtime's `curl` calls): the environment's one cold start, and
/// invokes opened by a process that exits before their result is posted by another.
pub trait Handoff: Send {
    /// Claims the environment's cold start: true for exactly one caller per environment.
    fn claim_cold_start(&mut self) -> bool;
    /// When the environment began (monotonic ns), if known.
    fn born_ns(&self) -> Option<u64>;
    /// Keeps an invoke for whichever process posts its result.
    fn save(&mut self, open: &OpenInvoke);
    /// Takes an invoke saved by any process; each one is taken at most once.
    fn take(&mut self, request_id: &str) -> Option<OpenInvoke>;
    /// Forgets an invoke this process saved and finished itself.
    fn forget(&mut self, request_id: &str);
    /// This process turned out to be a per-request helper: the environment's next processes
    /// may take it that they are too.
    fn helper_decided(&mut self) {}
}

impl std::fmt::Debug for dyn Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handoff")
    }
}

/// What the custom-metrics channel held where a result or an init error was sent: its new
/// lines (whole), the pid whose lines (or lines with none) this process takes, and the names
/// records reserve.
#[derive(Clone, Copy)]
pub struct Channel<'a> {
    pub bytes: &'a [u8],
    pub pid: u32,
    pub reserved: &'a dyn Fn(&str) -> bool,
}

impl Channel<'_> {
    /// Nothing read.
    pub const NONE: Channel<'static> = Channel {
        bytes: &[],
        pid: 0,
        reserved: &|_| false,
    };
}

/// A finished invoke's record, waiting for the runtime's next `/next` (when `waits`). Kept in
/// place, never `Option`-wrapped: a record is not small, and is written where it waits.
#[derive(Clone, Copy, Debug)]
struct AwaitingNext {
    record: InvokeRecord,
    result_sent_ns: u64,
    waits: bool,
}

impl AwaitingNext {
    fn get(&self) -> Option<&AwaitingNext> {
        self.waits.then_some(self)
    }

    /// A copy of the record that waits, which waits no more.
    fn take(&mut self) -> Option<InvokeRecord> {
        // (Not `then_some(self.record)`: its argument, the whole record, is copied either way.)
        if std::mem::take(&mut self.waits) {
            Some(self.record)
        } else {
            None
        }
    }
}

/// The open invokes, oldest first, in slots that stay written once used: an invoke opens in
/// the slot one before it left (1.5 KB, mostly its trace id's room, not copied in from a blank
/// first); a slot is made only where more are open at once than ever before.
struct OpenList {
    /// The first `live` are open; those after them were, and are written over next.
    slots: Vec<OpenInvoke>,
    live: usize,
}

impl std::fmt::Debug for OpenList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl std::ops::Deref for OpenList {
    type Target = [OpenInvoke];
    fn deref(&self) -> &[OpenInvoke] {
        self.slots.get(..self.live).unwrap_or_default()
    }
}

impl std::ops::DerefMut for OpenList {
    fn deref_mut(&mut self) -> &mut [OpenInvoke] {
        self.slots.get_mut(..self.live).unwrap_or_default()
    }
}

impl OpenList {
    /// How many can be open at once (the room reserved).
    fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// Opens one after the others, `fill` writing every member of its slot (which may hold
    /// what an earlier invoke left); `None` when there is no room.
    fn push_with(&mut self, fill: impl FnOnce(&mut OpenInvoke)) -> Option<&mut OpenInvoke> {
        if self.live == self.slots.len() {
            if self.slots.len() == self.slots.capacity() {
                return None;
            }
            self.slots.push(OpenInvoke::BLANK);
        }
        let slot = self.slots.get_mut(self.live)?;
        fill(slot);
        self.live += 1;
        Some(slot)
    }

    /// Takes the one at `i` out of the list, keeping the others' order.
    fn remove(&mut self, i: usize) -> Option<OpenInvoke> {
        let open = *self.get(i)?;
        self.forget(i);
        Some(open)
    }

    /// Drops the one at `i` from the list (not copied out), keeping the others' order.
    fn forget(&mut self, i: usize) {
        if i < self.live {
            self.copy_within(i + 1.., i);
            self.live -= 1;
        }
    }

    /// Puts `open` back at `i` (at most the end), moving those from there on one along.
    fn insert(&mut self, i: usize, open: OpenInvoke) {
        if self.live == self.slots.len() {
            if self.slots.len() == self.slots.capacity() {
                return;
            }
            self.slots.push(OpenInvoke::BLANK);
        }
        let (i, end) = (i.min(self.live), self.live);
        self.live += 1;
        self.copy_within(i..end, i + 1);
        if let Some(slot) = self.get_mut(i) {
            *slot = open;
        }
    }

    fn clear(&mut self) {
        self.live = 0;
    }
}

/// Per-process invoke state. See the module documentation.
#[derive(Debug)]
pub struct Tracker {
    lifecycle: Lifecycle,
    /// When this runtime's life began (library load, or the fork that made it).
    born_ns: u64,
    /// When the first `/next` request was fully sent.
    first_next_ns: Option<u64>,
    /// When the latest `/next` request was fully sent.
    last_next_ns: Option<u64>,
    /// `/next` requests sent and not answered yet.
    next_outstanding: usize,
    /// Whether the next invoke to start is this environment's first.
    first_invoke_pending: bool,
    /// When SnapStart's restore answer arrived, until the next `/next`.
    restore_answered_ns: Option<u64>,
    /// Restore duration for the next invoke.
    restore_duration_ns: Option<u64>,
    /// Open invokes, oldest first (few: one at a time, or one per concurrent slot), in room
    /// for [`MAX_OPEN`] reserved when the tracker was made.
    open: OpenList,
    /// Invokes opened so far.
    opened: u64,
    awaiting_next: AwaitingNext,
    /// Shared with the environment's other processes, when this one is a per-request helper.
    handoff: Option<Box<dyn Handoff>>,
    /// The handoff of a process that turned out to be a runtime of its own.
    retired_handoff: Option<Box<dyn Handoff>>,
    /// Custom values given while no invoke was open: the next invoke's (or the init error's).
    pending: Custom,
    /// Where every invoke's custom values live.
    pool: Pool,
    /// What child processes handed over for an invoke taken from the handoff, and room to
    /// render it (see [`Tracker::place_handed`]): made with the handoff, none otherwise.
    handed: Vec<crate::downstream::Handed>,
    handed_json: Vec<u8>,
}

impl Tracker {
    /// A tracker with its room reserved; `None` when the memory cannot be had.
    pub fn try_new(born_ns: u64, lifecycle: Lifecycle) -> Option<Self> {
        let mut slots = Vec::new();
        slots.try_reserve_exact(MAX_OPEN).ok()?;
        let open = OpenList { slots, live: 0 };
        Some(Tracker {
            lifecycle,
            born_ns,
            first_next_ns: None,
            last_next_ns: None,
            next_outstanding: 0,
            first_invoke_pending: true,
            restore_answered_ns: None,
            restore_duration_ns: None,
            open,
            opened: 0,
            awaiting_next: AwaitingNext {
                record: InvokeRecord::blank(RecordKind::Invoke),
                result_sent_ns: 0,
                waits: false,
            },
            handoff: None,
            retired_handoff: None,
            pending: Custom::NONE,
            pool: Pool::reserve()?,
            handed: Vec::new(),
            handed_json: Vec::new(),
        })
    }

    /// Shares cold start and open invokes with the environment's other processes.
    pub fn attach_handoff(&mut self, handoff: Box<dyn Handoff>) {
        self.handoff = Some(handoff);
        // (Without the room, calls children handed over are not shown.)
        if self.handed.try_reserve_exact(1).is_ok()
            && self
                .handed_json
                .try_reserve_exact(crate::custom::MAX_PROPERTY_JSON)
                .is_ok()
        {
            self.handed.push(crate::downstream::Handed::NONE);
            self.handed_json.resize(crate::custom::MAX_PROPERTY_JSON, 0);
        }
    }

    /// Puts the calls child processes handed over in channel lines `bytes` (those made from
    /// its event to `until_ns`, its result) on `open`, an invoke taken from the handoff, as its
    /// `downstream` property: a per-request helper follows no connection of its own.
    fn place_handed(
        &mut self,
        bytes: &[u8],
        open: &mut OpenInvoke,
        until_ns: u64,
        reserved: &dyn Fn(&str) -> bool,
    ) {
        let Tracker {
            handed,
            handed_json,
            pool,
            ..
        } = self;
        let Some(handed) = handed.first_mut() else {
            return;
        };
        handed.add_lines(bytes, open.started.mono_ns, until_ns);
        if handed.is_empty() {
            return;
        }
        let mut out = crate::text::Out::new(handed_json);
        let sum = handed.take(&mut out);
        let Ok(json) = std::str::from_utf8(out.written()) else {
            return;
        };
        if out.overflowed() {
            return;
        }
        let key = crate::downstream::PROPERTY;
        let _ = pool.own_property(&mut open.custom, key, json, &|k| k != key && reserved(k));
        open.downstream = Some(sum);
    }

    /// The custom values of every record this tracker handed out: whoever writes a record
    /// frees its values here.
    pub fn pool(&mut self) -> &mut Pool {
        &mut self.pool
    }

    /// The pool, to read values from.
    pub fn pool_ref(&self) -> &Pool {
        &self.pool
    }

    /// The runtime is about to send a `/next` request (its bytes are not on the wire yet): the
    /// record of the invoke it just finished is complete, and is returned now so that it is
    /// written before the runtime can be frozen or stopped.
    pub fn next_starting(&mut self, now: &Probe) -> Option<InvokeRecord> {
        let sent_ns = self.awaiting_next.get()?.result_sent_ns;
        let mut record = self.awaiting_next.take()?;
        record.post_response_ns = Some(now.mono_ns.saturating_sub(sent_ns));
        Some(record)
    }

    /// Whether a finished invoke's record waits for the runtime's next `/next`.
    pub fn record_awaits(&self) -> bool {
        self.awaiting_next.waits
    }

    /// When the record that waits for `/next` was finished (monotonic ns), if one waits.
    pub fn awaiting_since_ns(&self) -> Option<u64> {
        self.awaiting_next.get().map(|w| w.result_sent_ns)
    }

    /// A `/next` request was fully sent. Returns a record that was still waiting for it.
    pub fn next_requested(&mut self, now: &Probe) -> Option<InvokeRecord> {
        let flushed = self.next_starting(now);
        if self.first_next_ns.is_none() {
            self.first_next_ns = Some(now.mono_ns);
        }
        self.last_next_ns = Some(now.mono_ns);
        self.next_outstanding += 1;
        if let Some(answered) = self.restore_answered_ns.take() {
            self.restore_duration_ns = Some(now.mono_ns.saturating_sub(answered));
        }
        flushed
    }

    /// A `/next` request was answered without an event (an error status).
    pub fn next_refused(&mut self) {
        self.next_outstanding = self.next_outstanding.saturating_sub(1);
    }

    /// SnapStart: the answer to `/runtime/restore/next` arrived (the environment was restored).
    pub fn restore_answered(&mut self, now: &Probe) {
        self.restore_answered_ns = Some(now.mono_ns);
    }

    /// An event was fully received: the invoke starts now. Returns a record that was still
    /// waiting for a `/next`, if any.
    pub fn event_received(
        &mut self,
        event: EventInfo,
        now: &Probe,
        reserved: &dyn Fn(&str) -> bool,
    ) -> Option<InvokeRecord> {
        let event = EventRef {
            request_id: &event.request_id,
            trace_id: event.trace_id.as_ref(),
            deadline_ms: event.deadline_ms,
            request_bytes: event.request_bytes,
            thread: event.thread,
        };
        self.event_received_ref(event, now, reserved)
    }

    /// [`Tracker::event_received`] with the event's ids by reference: the invoke is made where
    /// it stays, in the open list, and its ids are copied there as long as they are (not moved
    /// through the calls as kilobyte values).
    pub fn event_received_ref(
        &mut self,
        event: EventRef,
        now: &Probe,
        reserved: &dyn Fn(&str) -> bool,
    ) -> Option<InvokeRecord> {
        self.next_outstanding = self.next_outstanding.saturating_sub(1);
        let flushed = self.awaiting_next.take();
        if event.request_id.is_empty() || self.find(event.request_id).is_some() {
            return flushed;
        }
        let first = std::mem::take(&mut self.first_invoke_pending);
        // How long the /next that brought this event waited for it.
        let waited = self
            .last_next_ns
            .map(|t| now.mono_ns.saturating_sub(t))
            .unwrap_or(0);
        let proactive_init =
            first && self.lifecycle.on_demand && waited > self.lifecycle.proactive_threshold_ns;
        let restore_duration_ns = self.restore_duration_ns.take();
        let candidate =
            first && self.lifecycle.on_demand && !proactive_init && restore_duration_ns.is_none();
        let cold_start = match self.handoff.as_mut() {
            Some(h) => candidate && h.claim_cold_start(),
            None => candidate,
        };
        let born = self
            .handoff
            .as_ref()
            .and_then(|h| h.born_ns())
            .unwrap_or(self.born_ns);
        let init_duration_ns = cold_start.then(|| {
            self.first_next_ns
                .unwrap_or(now.mono_ns)
                .saturating_sub(born)
        });
        let deadline_mono_ns = event.deadline_ms.map(|d| {
            let left_ms = d.saturating_sub(now.wall_ms);
            now.mono_ns
                .saturating_add(left_ms.saturating_mul(1_000_000))
        });
        if self.open.len() >= self.open.capacity()
            && let Some(oldest) = self.open.first_mut()
        {
            self.pool.free(&mut oldest.custom);
            self.open.forget(0);
        }
        let mut custom = Custom::NONE;
        self.pool.absorb(&mut custom, &mut self.pending, reserved);
        // Every member written: the slot may be one an earlier invoke left.
        let fill = |open: &mut OpenInvoke| {
            open.event.request_id.assign(event.request_id);
            match event.trace_id {
                Some(t) => {
                    // A slot that held none gets the room once.
                    if open.event.trace_id.is_none() {
                        open.event.trace_id = Some(TraceId::EMPTY);
                    }
                    if let Some(dst) = open.event.trace_id.as_mut() {
                        dst.assign(t);
                    }
                }
                None => open.event.trace_id = None,
            }
            open.event.deadline_ms = event.deadline_ms;
            open.event.request_bytes = event.request_bytes;
            open.event.thread = event.thread;
            open.started = *now;
            open.cold_start = cold_start;
            open.proactive_init = proactive_init;
            open.init_duration_ns = init_duration_ns;
            open.restore_duration_ns = restore_duration_ns;
            open.deadline_mono_ns = deadline_mono_ns;
            open.first_byte_ns = None;
            open.journal_slot = None;
            open.custom = custom;
            open.concurrent = 1;
        };
        if self.open.len() >= self.open.capacity() {
            // No room even after the oldest went (a list of no capacity): handed off only.
            if let Some(h) = self.handoff.as_mut() {
                let mut open = OpenInvoke::BLANK;
                fill(&mut open);
                h.save(&open);
            }
            return flushed;
        }
        let Some(open) = self.open.push_with(fill) else {
            return flushed;
        };
        if let Some(h) = self.handoff.as_mut() {
            h.save(open);
        }
        self.opened += 1;
        let at_once = self.open.len() as u32;
        if at_once > 1 {
            for o in self.open.iter_mut() {
                o.concurrent = o.concurrent.max(at_once);
            }
        }
        flushed
    }

    /// Places the custom-metrics channel's lines read just now (see
    /// [`crate::custom::ChannelLine`]), where an invoke's result is sent (`ending`, leaving the
    /// open list now) or where init fails (`None`): on the invokes they name or, with none
    /// named, on the ending one (values written during init reach the first invoke this way),
    /// or on the next invoke's record.
    fn place_channel(&mut self, channel: &Channel, mut ending: Option<&mut OpenInvoke>) {
        if channel.bytes.is_empty() {
            return;
        }
        let Tracker {
            open,
            pending,
            pool,
            ..
        } = self;
        crate::custom::each_channel_line(channel.bytes, channel.pid, |line| {
            let target = match line.request_id.as_deref() {
                Some(id) => match ending.as_deref_mut() {
                    Some(e) if e.event.request_id == id => Some(&mut e.custom),
                    _ => open
                        .iter_mut()
                        .find(|o| o.event.request_id == id)
                        .map(|o| &mut o.custom),
                },
                None => match (ending.as_deref_mut(), open.len()) {
                    (Some(e), _) => Some(&mut e.custom),
                    (None, 0) => Some(&mut *pending),
                    (None, 1) => open.first_mut().map(|o| &mut o.custom),
                    (None, _) => None,
                },
            };
            if let Some(c) = target {
                let _ = line.apply(pool, c, channel.reserved);
            }
        });
    }

    /// Places channel lines read ahead of the last buffer where `ending`'s result is sent (or
    /// where init fails: `None`), as [`Tracker::place_channel`] places the last.
    pub fn place_channel_ahead(&mut self, ending: Option<&str>, channel: &Channel) {
        let at = ending.and_then(|id| self.find(crate::text::bounded_str(id, MAX_ID_LEN)));
        self.place_channel_at(at, channel);
    }

    /// [`Tracker::place_channel`] with the ending invoke the open one at `at`, if any.
    fn place_channel_at(&mut self, at: Option<usize>, channel: &Channel) {
        if channel.bytes.is_empty() {
            return;
        }
        match at.and_then(|i| Some((i, self.open.remove(i)?))) {
            Some((i, mut open)) => {
                self.place_channel(channel, Some(&mut open));
                self.open.insert(i, open);
            }
            None => self.place_channel(channel, None),
        }
    }

    /// Puts a custom value given on `thread` where it belongs, with `add`, and says where: the
    /// open invoke whose event that thread read, else the only open invoke, else (none open)
    /// the next one. With several open and none read on `thread`, nowhere
    /// ([`Status::Ambiguous`]).
    pub fn custom(
        &mut self,
        thread: u64,
        add: impl FnOnce(&mut Pool, &mut Custom) -> Status,
    ) -> Status {
        let at = match self.open.iter().rposition(|o| o.event.thread == thread) {
            Some(at) => Some(at),
            None if self.open.len() == 1 => Some(0),
            None if self.open.is_empty() => None,
            None => return Status::Ambiguous,
        };
        let (target, placed) = match at.and_then(|i| self.open.get_mut(i)) {
            Some(open) => (&mut open.custom, Status::Ok),
            None => (&mut self.pending, Status::Pending),
        };
        match add(&mut self.pool, target) {
            Status::Ok => placed,
            refused => refused,
        }
    }

    /// Puts a value on open invoke `request_id` with `add`; `None` when it is not open here.
    pub fn custom_of(
        &mut self,
        request_id: &RequestId,
        add: impl FnOnce(&mut Pool, &mut Custom) -> Status,
    ) -> Option<Status> {
        let open = self.find(request_id).and_then(|i| self.open.get_mut(i))?;
        Some(add(&mut self.pool, &mut open.custom))
    }

    /// Calls `f` with each open invoke's request id and the thread its event was read on.
    pub fn each_open(&self, mut f: impl FnMut(&RequestId, u64)) {
        for o in self.open.iter() {
            f(&o.event.request_id, o.event.thread);
        }
    }

    /// Open invoke `request_id`'s downstream calls in sum.
    pub fn downstream_of(&mut self, request_id: &RequestId, sum: crate::downstream::Sum) {
        if let Some(open) = self.find(request_id).and_then(|i| self.open.get_mut(i)) {
            open.downstream = Some(sum);
        }
    }

    /// The first byte of `request_id`'s result body was written.
    pub fn result_first_byte(&mut self, request_id: &RequestId, now: &Probe) {
        if let Some(open) = self.find(request_id).and_then(|i| self.open.get_mut(i)) {
            open.first_byte_ns.get_or_insert(now.mono_ns);
        }
    }

    /// A result (`/response` or `/error`) for `request_id` was fully sent. Returns this
    /// invoke's record, unless it waits for the runtime's next `/next` (one invoke at a time,
    /// nothing asked for yet). A record that still waits for `/next` is its caller's to take
    /// first ([`Tracker::flush`]); if it did not, this one does not wait in its place.
    #[inline(never)]
    pub fn result_sent(
        &mut self,
        request_id: &RequestId,
        outcome: &Outcome,
        now: &Probe,
        channel: &Channel,
    ) -> Option<InvokeRecord> {
        let mut record = match self.find(request_id) {
            Some(i) => {
                if let Some(h) = self.handoff.as_mut() {
                    h.forget(request_id);
                }
                self.place_channel_at(Some(i), channel);
                // One invoke at a time and nothing asked for yet: its record waits for the
                // runtime's next `/next`, made where it waits.
                let waits = self.open.len() == 1
                    && self.handoff.is_none()
                    && self.next_outstanding == 0
                    && !self.awaiting_next.waits;
                let open = self.open.get(i)?;
                let record = if waits {
                    open.finished_into(outcome, now, &mut self.awaiting_next.record);
                    None
                } else {
                    Some(open.finished(outcome, now))
                };
                // Out of the list without being copied out of it.
                self.open.forget(i);
                match record {
                    Some(record) => record,
                    None => {
                        self.awaiting_next.result_sent_ns = now.mono_ns;
                        self.awaiting_next.waits = true;
                        return None;
                    }
                }
            }
            // Begun in another process of the environment: measured as the environment's.
            None => match self.handoff.as_mut().and_then(|h| h.take(request_id)) {
                Some(mut open) => {
                    self.place_channel(channel, Some(&mut open));
                    self.place_handed(channel.bytes, &mut open, now.mono_ns, channel.reserved);
                    open.finished(outcome, &now.environment())
                }
                None => return None,
            },
        };
        if self.open.is_empty() && self.handoff.is_none() && self.next_outstanding > 0 {
            // The runtime already waits for its next event: nothing after the response.
            record.post_response_ns = Some(0);
        }
        Some(record)
    }

    /// The final record `request_id`'s invoke (open in this process) would have if `outcome`
    /// were how it ended at `now`, without ending it: kept in the journal while the Runtime
    /// API's answer to the result is awaited, in case the process ends first.
    /// Written over `out`, where it is; false (`out` untouched) when the invoke is not open
    /// here.
    pub fn finished_record_of(
        &self,
        request_id: &RequestId,
        outcome: &Outcome,
        now: &Probe,
        out: &mut InvokeRecord,
    ) -> bool {
        let Some(open) = self.find(request_id).and_then(|i| self.open.get(i)) else {
            return false;
        };
        open.finished_into(outcome, now, out);
        true
    }

    /// `/runtime/init/error` was fully sent.
    pub fn init_error(
        &mut self,
        error_type: Option<&str>,
        now: &Probe,
        channel: &Channel,
    ) -> InvokeRecord {
        self.place_channel(channel, None);
        let born = self
            .handoff
            .as_ref()
            .and_then(|h| h.born_ns())
            .unwrap_or(self.born_ns);
        InvokeRecord {
            kind: RecordKind::InitError,
            request_id: RequestId::EMPTY,
            trace_id: None,
            timestamp_ms: now.wall_ms,
            duration_ns: None,
            cold_start: false,
            proactive_init: false,
            init_duration_ns: Some(now.mono_ns.saturating_sub(born)),
            restored: false,
            restore_duration_ns: None,
            errored: true,
            timed_out: false,
            error_type: error_type.map(ErrorType::new),
            cpu_ns: Some(now.cpu_ns),
            max_rss_kb: now.max_rss_kb,
            process_rss_kb: Some(now.process_rss_kb).filter(|kb| *kb > 0),
            concurrent: None,
            request_bytes: None,
            response_bytes: None,
            post_response_ns: None,
            time_to_first_byte_ns: None,
            downstream: None,
            gauges: now.gauges,
            custom: std::mem::take(&mut self.pending),
            journal_slot: None,
        }
    }

    /// The record of an invoke that waited for an init that never ended (see
    /// [`RecordKind::Unstarted`]): `waited_ns` until the runtime was killed (when known),
    /// `timed_out` when that was its deadline; `init_ns` how long that init ran, when known;
    /// written at `wall_ms`.
    pub fn unstarted(
        &self,
        waited_ns: Option<u64>,
        init_ns: Option<u64>,
        timed_out: bool,
        wall_ms: u64,
    ) -> InvokeRecord {
        InvokeRecord {
            timestamp_ms: wall_ms,
            duration_ns: waited_ns,
            cold_start: true,
            init_duration_ns: init_ns,
            errored: true,
            timed_out,
            error_type: Some(ErrorType::new(if timed_out {
                TIMEOUT_ERROR_TYPE
            } else {
                crate::runtime_api::EXIT_ERROR_TYPE
            })),
            ..InvokeRecord::blank(RecordKind::Unstarted)
        }
    }

    /// The open invoke [`Tracker::tick`] makes a timeout record of next at `now`, if any.
    pub fn due(&self, now: &Probe) -> Option<RequestId> {
        let margin = self.lifecycle.timeout_margin_ns;
        self.open
            .iter()
            .find(|o| {
                o.deadline_mono_ns
                    .is_some_and(|d| now.mono_ns.saturating_add(margin) >= d)
            })
            .map(|o| o.event.request_id)
    }

    /// Time has passed: invokes open at their deadline (less the margin) become timeout
    /// records, and a record that waited too long for `/next` goes without it. Returns one
    /// of them; call again until `None`.
    pub fn tick(&mut self, now: &Probe) -> Option<InvokeRecord> {
        let margin = self.lifecycle.timeout_margin_ns;
        let due = self.open.iter().position(|o| {
            o.deadline_mono_ns
                .is_some_and(|d| now.mono_ns.saturating_add(margin) >= d)
        });
        if let Some(open) = due.and_then(|i| self.open.remove(i)) {
            if let Some(h) = self.handoff.as_mut() {
                h.forget(&open.event.request_id);
            }
            let mut record = open.record(now);
            record.errored = true;
            record.timed_out = true;
            record.error_type = Some(ErrorType::new(TIMEOUT_ERROR_TYPE));
            return Some(record);
        }
        if self.awaiting_due(now) {
            return self.awaiting_next.take();
        }
        None
    }

    /// When [`Tracker::tick`] next has something to do (monotonic ns).
    pub fn next_wakeup(&self) -> Option<u64> {
        // (Plain loops and compares: this runs after every call into the engine.)
        let margin = self.lifecycle.timeout_margin_ns;
        let mut next = None;
        for o in self.open.iter() {
            if let Some(d) = o.deadline_mono_ns {
                next = Some(earliest(next, d.saturating_sub(margin)));
            }
        }
        if self.awaiting_next.waits {
            let due = self
                .awaiting_next
                .result_sent_ns
                .saturating_add(POST_RESPONSE_WAIT_NS);
            next = Some(earliest(next, due));
        }
        next
    }

    /// The record that waits for the runtime's next `/next`.
    pub fn awaiting(&self) -> Option<&InvokeRecord> {
        self.awaiting_next.get().map(|w| &w.record)
    }

    /// Puts a value on the record that waits for `/next` with `add`; `None` when none waits.
    pub fn awaiting_custom(
        &mut self,
        add: impl FnOnce(&mut Pool, &mut Custom) -> Status,
    ) -> Option<Status> {
        let Tracker {
            awaiting_next,
            pool,
            ..
        } = self;
        awaiting_next
            .waits
            .then(|| add(pool, &mut awaiting_next.record.custom))
    }

    /// Whether the record that waits for `/next` has waited long enough at `now`: the next
    /// [`Tracker::tick`] writes it.
    pub fn awaiting_due(&self, now: &Probe) -> bool {
        self.awaiting_next
            .get()
            .is_some_and(|w| now.mono_ns >= w.result_sent_ns.saturating_add(POST_RESPONSE_WAIT_NS))
    }

    /// Forgets the record that waits for `/next`: its caller wrote it.
    pub fn forget_awaiting(&mut self) {
        self.awaiting_next.waits = false;
    }

    /// The process is exiting: whatever waits is written now.
    pub fn flush(&mut self) -> Option<InvokeRecord> {
        self.awaiting_next.take()
    }

    /// The invoke opened last, while it is open.
    pub fn newest_open(&self) -> Option<&OpenInvoke> {
        self.open.last()
    }

    /// Notes the journal slot of the invoke opened last.
    pub fn journaled_newest(&mut self, slot: usize) {
        if let Some(open) = self.open.last_mut() {
            open.journal_slot = Some(slot);
        }
    }

    /// Whether an open invoke's record, or the one that waits for `/next`, is in journal slot
    /// `slot`.
    pub fn journals(&self, slot: usize) -> bool {
        self.open.iter().any(|o| o.journal_slot == Some(slot))
            || self
                .awaiting_next
                .get()
                .is_some_and(|w| w.record.journal_slot == Some(slot))
    }

    /// The record that waits for the runtime's next `/next`, to be encoded where it is: the
    /// record, when its result was sent (monotonic ns), and the pool its custom values are in.
    pub fn awaiting_in_place(&mut self) -> Option<(&mut InvokeRecord, u64, &Pool)> {
        let Tracker {
            awaiting_next,
            pool,
            ..
        } = self;
        awaiting_next.waits.then_some((
            &mut awaiting_next.record,
            awaiting_next.result_sent_ns,
            &*pool,
        ))
    }

    /// Whether the environment is initialised on demand (an invoke waits for its init).
    pub fn on_demand(&self) -> bool {
        self.lifecycle.on_demand
    }

    /// How many invokes were opened so far.
    pub fn opened_count(&self) -> u64 {
        self.opened
    }

    /// Where the open invoke `request_id` (as bounded when its event came) is.
    fn find(&self, request_id: &(impl AsRef<[u8]> + ?Sized)) -> Option<usize> {
        let id = request_id.as_ref();
        self.open
            .iter()
            .position(|o| o.event.request_id.as_bytes() == id)
    }

    /// Whether invokes live in a handoff shared with other processes (a per-request helper).
    pub fn has_handoff(&self) -> bool {
        self.handoff.is_some()
    }

    /// When open invoke `request_id` began (its event was read), on the monotonic clock.
    pub fn started_mono_ns(&self, request_id: &RequestId) -> Option<u64> {
        let i = self.find(request_id)?;
        self.open.get(i).map(|o| o.started.mono_ns)
    }

    /// Whether the invoke `request_id` was opened by this process and is open.
    /// [`Tracker::is_open`] of a request id's bytes (no UTF-8 check).
    pub fn is_open_id(&self, request_id: &[u8]) -> bool {
        self.find(request_id).is_some()
    }

    pub fn is_open(&self, request_id: &str) -> bool {
        self.find(crate::text::bounded_str(request_id, MAX_ID_LEN))
            .is_some()
    }

    /// This process is a per-request helper (see [`Handoff::helper_decided`]).
    pub fn helper_decided(&mut self) {
        if let Some(h) = self.handoff.as_mut() {
            h.helper_decided();
        }
    }

    /// This process proved to be a runtime of its own (it makes one request after another),
    /// not a per-request helper: its invokes leave the handoff and stay here.
    pub fn keep_invokes(&mut self) {
        if let Some(mut h) = self.handoff.take() {
            for o in self.open.iter() {
                h.forget(&o.event.request_id);
            }
            // Kept, not dropped: nothing is freed once the process is a runtime.
            self.retired_handoff = Some(h);
        }
    }

    /// Number of invokes started and not yet finished.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// A forked child starts a life of its own: nothing open is its to report, and it is a
    /// runtime of its own (no handoff: that belongs to per-request helper processes). Keeps
    /// the reserved room.
    pub fn reborn(&mut self, born_ns: u64) {
        self.born_ns = born_ns;
        self.first_next_ns = None;
        self.last_next_ns = None;
        self.next_outstanding = 0;
        self.first_invoke_pending = true;
        self.restore_answered_ns = None;
        self.restore_duration_ns = None;
        self.open.clear();
        self.opened = 0;
        self.awaiting_next.waits = false;
        // Dropped in the child only: it was made before the child became a runtime of its own.
        self.handoff = None;
        self.pending = Custom::NONE;
        self.pool.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn at(ms: u64) -> Probe {
        Probe {
            mono_ns: ms * 1_000_000,
            wall_ms: 1_700_000_000_000 + ms,
            cpu_ns: ms * 100_000,
            max_rss_kb: 40_000,
            process_rss_kb: 0,
            gauges: None,
            env: None,
        }
    }

    fn event(id: &str) -> EventInfo {
        EventInfo {
            request_id: RequestId::new(id),
            trace_id: Some(TraceId::new("Root=1-abc")),
            deadline_ms: None,
            request_bytes: 10,
            thread: 0,
        }
    }

    fn none(_: &str) -> bool {
        false
    }

    fn tracker() -> Tracker {
        Tracker::try_new(0, Lifecycle::default()).unwrap()
    }

    fn opened(t: &mut Tracker, e: EventInfo, now: &Probe) -> Option<InvokeRecord> {
        t.event_received(e, now, &none)
    }

    fn sent(t: &mut Tracker, id: &str, outcome: Outcome, now: &Probe) -> Vec<InvokeRecord> {
        let a = t.flush();
        let b = t.result_sent(&RequestId::new(id), &outcome, now, &Channel::NONE);
        a.into_iter().chain(b).collect()
    }

    fn ticked(t: &mut Tracker, now: &Probe) -> Vec<InvokeRecord> {
        std::iter::from_fn(|| t.tick(now)).collect()
    }

    fn names(t: &Tracker, r: &InvokeRecord) -> Vec<String> {
        let mut out = Vec::new();
        t.pool_ref()
            .each_metric(&r.custom, |name, _, _| out.push(name.to_string()));
        out
    }

    #[test]
    fn channel_lines_go_to_the_invoke_they_name_or_the_one_ending() {
        let p = Probe::default();
        let mut t = tracker();
        for id in ["a", "b"] {
            t.next_requested(&p);
            opened(&mut t, event(id), &p);
        }
        let lines = br#"{"metric":"ForB","value":1,"requestId":"b"}
{"metric":"Unnamed","value":2}
{"metric":"ForNobody","value":3,"requestId":"zzz"}
"#;
        let channel = Channel {
            bytes: lines,
            pid: 1,
            reserved: &|n| n == "Duration",
        };
        let x = t.flush();
        let y = t.result_sent(&RequestId::new("a"), &Outcome::default(), &p, &channel);
        let a: Vec<InvokeRecord> = x.into_iter().chain(y).chain(t.next_starting(&p)).collect();
        assert_eq!(names(&t, &a[0]), ["Unnamed"]);
        let b: Vec<InvokeRecord> = sent(&mut t, "b", Outcome::default(), &p)
            .into_iter()
            .chain(t.next_starting(&p))
            .collect();
        assert_eq!(names(&t, &b[0]), ["ForB"]);
    }

    #[test]
    fn custom_values_go_to_the_threads_invoke_the_only_one_or_the_next() {
        let add = |t: &mut Tracker, thread: u64, name: &str| {
            t.custom(thread, |pool, c| pool.metric(c, name, 1.0, None, &none))
        };
        let p = Probe::default();
        let mut t = tracker();
        // During init: kept for the first invoke.
        assert_eq!(add(&mut t, 9, "AtInit"), Status::Pending);
        t.next_requested(&p);
        opened(
            &mut t,
            EventInfo {
                thread: 1,
                ..event("a")
            },
            &p,
        );
        // The only open invoke takes values from any thread.
        assert_eq!(add(&mut t, 9, "AnyThread"), Status::Ok);
        t.next_requested(&p);
        opened(
            &mut t,
            EventInfo {
                thread: 2,
                ..event("b")
            },
            &p,
        );
        // Two open: each thread's own, and nowhere for a third thread.
        assert_eq!(add(&mut t, 1, "OnA"), Status::Ok);
        assert_eq!(add(&mut t, 2, "OnB"), Status::Ok);
        assert_eq!(add(&mut t, 3, "Lost"), Status::Ambiguous);
        let a = sent(&mut t, "a", Outcome::default(), &p);
        let b = sent(&mut t, "b", Outcome::default(), &p);
        assert_eq!(names(&t, &a[0]), ["AtInit", "AnyThread", "OnA"]);
        let b: Vec<InvokeRecord> = b.into_iter().chain(t.next_starting(&p)).collect();
        assert_eq!(names(&t, &b[0]), ["OnB"]);
        // Init fails: what was given goes to the init error's record.
        let mut t = tracker();
        assert_eq!(add(&mut t, 1, "BeforeFailing"), Status::Pending);
        let r = t.init_error(None, &p, &Channel::NONE);
        assert_eq!(names(&t, &r), ["BeforeFailing"]);
    }

    /// Sends a result and takes the record, passing the runtime's next /next at `next_ms`.
    fn finish(
        t: &mut Tracker,
        id: &str,
        outcome: Outcome,
        end_ms: u64,
        next_ms: u64,
    ) -> InvokeRecord {
        let mut ready = sent(t, id, outcome, &at(end_ms));
        if ready.is_empty() {
            ready.extend(t.next_starting(&at(next_ms)));
        }
        assert_eq!(ready.len(), 1);
        ready.remove(0)
    }

    #[test]
    fn an_invoke_opens_with_nothing_of_the_one_before() {
        // Each invoke opens in the slot the one before it left: none of that one's values may
        // show in its record.
        let p = Probe::default();
        let mut t = tracker();
        let streamed = Outcome {
            streamed: true,
            ..Outcome::default()
        };
        let run = |t: &mut Tracker, e: EventInfo, journal: bool| {
            let id = e.request_id;
            t.next_requested(&p);
            opened(t, e, &p);
            assert_eq!(t.newest_open().map(|o| o.journal_slot), Some(None));
            if journal {
                t.journaled_newest(3);
                t.result_first_byte(&id, &p);
            }
            let records: Vec<_> = sent(t, id.as_str(), streamed, &p)
                .into_iter()
                .chain(t.next_starting(&p))
                .collect();
            assert_eq!(records.len(), 1);
            records[0]
        };
        let a = run(&mut t, event("a"), true);
        assert_eq!(a.trace_id, Some(TraceId::new("Root=1-abc")));
        assert_eq!(
            (a.journal_slot, a.time_to_first_byte_ns),
            (Some(3), Some(0))
        );
        let b = run(
            &mut t,
            EventInfo {
                trace_id: None,
                ..event("b")
            },
            false,
        );
        assert_eq!(b.request_id, RequestId::new("b"));
        assert_eq!(
            (b.trace_id, b.journal_slot, b.time_to_first_byte_ns),
            (None, None, None)
        );
        let c = run(
            &mut t,
            EventInfo {
                trace_id: Some(TraceId::new("Root=1-c")),
                ..event("c")
            },
            false,
        );
        assert_eq!(c.trace_id, Some(TraceId::new("Root=1-c")));
        assert_eq!(t.open_count(), 0);
    }

    #[test]
    fn a_long_request_id_matches_its_result() {
        let mut t = tracker();
        let long = format!("\"q\"{}", "x".repeat(2_000));
        let p = Probe::default();
        t.next_requested(&p);
        opened(
            &mut t,
            EventInfo {
                request_id: RequestId::new(&long),
                ..EventInfo::default()
            },
            &p,
        );
        t.result_first_byte(&RequestId::new(&long), &p);
        let records: Vec<_> = sent(&mut t, &long, Outcome::default(), &p)
            .into_iter()
            .chain(t.next_starting(&p))
            .collect();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].request_id.len(), MAX_ID_LEN);
        assert_eq!(t.open_count(), 0);
    }

    #[test]
    fn a_result_after_the_deadline_is_a_timeout() {
        let mut t = tracker();
        let at = |ms: u64| Probe {
            mono_ns: ms * 1_000_000,
            wall_ms: 1_000_000 + ms,
            ..Probe::default()
        };
        t.next_requested(&at(0));
        opened(
            &mut t,
            EventInfo {
                request_id: RequestId::new("late"),
                deadline_ms: Some(1_000_000 + 10),
                ..EventInfo::default()
            },
            &at(1),
        );
        let mut records = sent(&mut t, "late", Outcome::default(), &at(11));
        records.extend(t.next_starting(&at(12)));
        assert!(records[0].timed_out && records[0].errored);
        assert_eq!(records[0].error_type.as_deref(), Some(TIMEOUT_ERROR_TYPE));
    }

    #[test]
    fn cold_start_only_on_first_invoke() {
        let mut t = tracker();
        t.next_requested(&at(120));
        opened(&mut t, event("a"), &at(121));
        let a = finish(&mut t, "a", Outcome::default(), 171, 175);
        assert!(a.cold_start && !a.proactive_init);
        assert_eq!(a.init_duration_ns, Some(120_000_000));
        assert_eq!(a.duration_ns, Some(50_000_000));
        assert_eq!(a.cpu_ns, Some(5_000_000));
        assert_eq!(a.post_response_ns, Some(4_000_000));
        t.next_requested(&at(175));
        opened(&mut t, event("b"), &at(300));
        let b = finish(&mut t, "b", Outcome::default(), 301, 301);
        assert!(!b.cold_start);
        assert_eq!(b.init_duration_ns, None);
    }

    #[test]
    fn provisioned_is_never_cold() {
        let mut t = Tracker::try_new(
            0,
            Lifecycle {
                on_demand: false,
                ..Lifecycle::default()
            },
        )
        .unwrap();
        opened(&mut t, event("a"), &at(1));
        assert!(!finish(&mut t, "a", Outcome::default(), 2, 3).cold_start);
    }

    #[test]
    fn a_long_first_wait_is_a_proactive_init_not_a_cold_start() {
        let mut t = tracker();
        t.next_requested(&at(100));
        opened(&mut t, event("a"), &at(100 + 1_500));
        let a = finish(&mut t, "a", Outcome::default(), 1_700, 1_700);
        assert!(!a.cold_start && a.proactive_init);
        assert_eq!(a.init_duration_ns, None);
    }

    #[test]
    fn snapstart_restore_marks_the_first_invoke_after_it() {
        let mut t = Tracker::try_new(
            0,
            Lifecycle {
                on_demand: false,
                ..Lifecycle::default()
            },
        )
        .unwrap();
        t.restore_answered(&at(1_000));
        t.next_requested(&at(1_030));
        opened(&mut t, event("a"), &at(1_031));
        let a = finish(&mut t, "a", Outcome::default(), 1_040, 1_041);
        assert!(a.restored && !a.cold_start);
        assert_eq!(a.restore_duration_ns, Some(30_000_000));
        t.next_requested(&at(1_041));
        opened(&mut t, event("b"), &at(1_050));
        assert!(!finish(&mut t, "b", Outcome::default(), 1_060, 1_061).restored);
    }

    #[test]
    fn timeout_reported_once_before_the_deadline() {
        let mut t = tracker();
        let mut e = event("slow");
        let now = at(1_000);
        e.deadline_ms = Some(now.wall_ms + 3_000);
        opened(&mut t, e, &now);
        assert_eq!(t.next_wakeup(), Some((1_000 + 3_000 - 50) * 1_000_000));
        assert!(ticked(&mut t, &at(3_900)).is_empty());
        let recs = ticked(&mut t, &at(3_951));
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert!(r.timed_out && r.errored);
        assert_eq!(r.error_type.as_deref(), Some(TIMEOUT_ERROR_TYPE));
        assert_eq!(r.duration_ns, Some(2_951_000_000));
        assert!(
            sent(&mut t, "slow", Outcome::default(), &at(3_990)).is_empty(),
            "no second record"
        );
        assert_eq!(t.next_wakeup(), None);
    }

    #[test]
    fn post_response_waits_for_next_at_most_a_bound() {
        let mut t = tracker();
        opened(&mut t, event("a"), &at(10));
        assert!(sent(&mut t, "a", Outcome::default(), &at(20)).is_empty());
        assert_eq!(t.next_wakeup(), Some(20_000_000 + POST_RESPONSE_WAIT_NS));
        assert!(ticked(&mut t, &at(1_000)).is_empty());
        let recs = ticked(&mut t, &at(20 + 2_000));
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].post_response_ns, None, "the next /next never came");
        assert!(t.flush().is_none());
    }

    #[test]
    fn an_outstanding_next_means_no_post_response_time() {
        let mut t = tracker();
        t.next_requested(&at(1));
        opened(&mut t, event("a"), &at(2));
        t.next_requested(&at(3)); // prefetched by another thread
        let recs = sent(&mut t, "a", Outcome::default(), &at(9));
        assert_eq!(recs[0].post_response_ns, Some(0));
    }

    #[test]
    fn streamed_results_get_time_to_first_byte() {
        let mut t = tracker();
        opened(&mut t, event("s"), &at(100));
        t.result_first_byte(&RequestId::new("s"), &at(105));
        t.result_first_byte(&RequestId::new("s"), &at(150));
        let streamed = Outcome {
            streamed: true,
            response_bytes: 9,
            ..Outcome::default()
        };
        let r = finish(&mut t, "s", streamed, 200, 201);
        assert_eq!(r.time_to_first_byte_ns, Some(5_000_000));
        assert_eq!(r.response_bytes, Some(9));
    }

    #[test]
    fn init_error_record() {
        let mut t = Tracker::try_new(5_000_000, Lifecycle::default()).unwrap();
        let r = t.init_error(Some("Runtime.ImportModuleError"), &at(80), &Channel::NONE);
        assert_eq!(r.kind, RecordKind::InitError);
        assert_eq!(r.init_duration_ns, Some(75_000_000));
        assert_eq!(r.error_type.as_deref(), Some("Runtime.ImportModuleError"));
    }

    #[test]
    fn concurrent_invokes_by_id_and_no_duplicates() {
        let mut t = tracker();
        opened(&mut t, event("a"), &at(1));
        opened(&mut t, event("b"), &at(2));
        opened(&mut t, event("a"), &at(3)); // same id again: ignored
        assert_eq!(t.open_count(), 2);
        let failed = Outcome {
            errored: true,
            error_type: Some(ErrorType::new("E")),
            response_bytes: 3,
            streamed: false,
        };
        let b = sent(&mut t, "b", failed, &at(10));
        assert_eq!(b.len(), 1, "several open: written at once");
        assert_eq!(b[0].duration_ns, Some(8_000_000));
        assert!(b[0].errored && !b[0].cold_start && b[0].post_response_ns.is_none());
        let a = finish(&mut t, "a", Outcome::default(), 11, 12);
        assert!(a.cold_start);
        assert!(sent(&mut t, "a", Outcome::default(), &at(12)).is_empty());
        assert!(sent(&mut t, "unknown", Outcome::default(), &at(12)).is_empty());
    }

    #[test]
    fn invokes_that_overlap_say_how_many_were_open_at_once() {
        let mut t = tracker();
        opened(&mut t, event("a"), &at(1));
        opened(&mut t, event("b"), &at(2));
        let b = sent(&mut t, "b", Outcome::default(), &at(3));
        opened(&mut t, event("c"), &at(4));
        opened(&mut t, event("d"), &at(5));
        let a = sent(&mut t, "a", Outcome::default(), &at(6));
        let c = sent(&mut t, "c", Outcome::default(), &at(7));
        let d = finish(&mut t, "d", Outcome::default(), 8, 9);
        // b saw two open at once (a, b); a, c and d three (a, c, d), after b had ended.
        assert_eq!(b[0].concurrent, Some(2));
        assert_eq!(a[0].concurrent, Some(3));
        assert_eq!(c[0].concurrent, Some(3));
        assert_eq!(d.concurrent, Some(3));
        // One at a time again: nothing shared.
        opened(&mut t, event("e"), &at(9));
        let e = finish(&mut t, "e", Outcome::default(), 12, 13);
        assert_eq!(e.concurrent, None);
    }

    #[test]
    fn open_invokes_are_bounded() {
        let mut t = tracker();
        for i in 0..(MAX_OPEN + 10) {
            opened(&mut t, event(&i.to_string()), &at(1));
        }
        assert_eq!(t.open_count(), MAX_OPEN);
        assert!(sent(&mut t, "0", Outcome::default(), &at(2)).is_empty());
    }

    #[test]
    fn extended_gauges_report_network_as_a_change() {
        let mut t = tracker();
        let mut start = at(1);
        start.gauges = Some(Gauges {
            net_rx_bytes: 100,
            net_tx_bytes: 50,
            tmp_used_bytes: 1,
            open_fds: 5,
            threads: 2,
        });
        opened(&mut t, event("g"), &start);
        let mut end = at(2);
        end.gauges = Some(Gauges {
            net_rx_bytes: 180,
            net_tx_bytes: 51,
            tmp_used_bytes: 9,
            open_fds: 7,
            threads: 3,
        });
        // A reading without gauges at the end gives none: no change can be formed.
        let r = finish(&mut t, "g", Outcome::default(), 2, 2);
        assert_eq!(r.gauges, None);
        opened(&mut t, event("h"), &start);
        let r = sent(&mut t, "h", Outcome::default(), &end)
            .into_iter()
            .next()
            .or_else(|| t.next_starting(&end))
            .unwrap();
        assert_eq!(
            r.gauges,
            Some(Gauges {
                net_rx_bytes: 80,
                net_tx_bytes: 1,
                tmp_used_bytes: 9,
                open_fds: 7,
                threads: 3
            })
        );
    }

    /// A handoff kept in memory and shared between trackers, standing in for the files.
    #[derive(Clone, Default)]
    struct SharedMemory(
        std::sync::Arc<std::sync::Mutex<(bool, std::collections::HashMap<String, OpenInvoke>)>>,
    );

    impl Handoff for SharedMemory {
        fn claim_cold_start(&mut self) -> bool {
            let mut g = self.0.lock().unwrap();
            !std::mem::replace(&mut g.0, true)
        }
        fn born_ns(&self) -> Option<u64> {
            Some(10_000_000)
        }
        fn save(&mut self, open: &OpenInvoke) {
            self.0
                .lock()
                .unwrap()
                .1
                .insert(open.event.request_id.to_string(), *open);
        }
        fn take(&mut self, id: &str) -> Option<OpenInvoke> {
            self.0.lock().unwrap().1.remove(id)
        }
        fn forget(&mut self, id: &str) {
            self.0.lock().unwrap().1.remove(id);
        }
    }

    #[test]
    fn an_invoke_started_in_one_process_ends_in_another() {
        let shared = SharedMemory::default();
        let with = |born: u64| {
            let mut t = Tracker::try_new(born, Lifecycle::default()).unwrap();
            t.attach_handoff(Box::new(shared.clone()));
            t
        };
        // Process 1 asks for and receives the event, then exits.
        let mut first = with(50_000_000);
        first.next_requested(&at(100));
        opened(&mut first, event("x"), &at(120));
        drop(first);
        // Process 2 posts the result: written at once (the process may exit right after).
        let mut second = with(900_000_000);
        let recs = sent(&mut second, "x", Outcome::default(), &at(170));
        assert_eq!(recs.len(), 1);
        let rec = &recs[0];
        assert_eq!(rec.duration_ns, Some(50_000_000));
        assert!(rec.cold_start);
        assert_eq!(
            rec.init_duration_ns,
            Some(90_000_000),
            "from the environment's birth"
        );
        assert_eq!(rec.trace_id.as_deref(), Some("Root=1-abc"));
        assert!(
            sent(&mut second, "x", Outcome::default(), &at(171)).is_empty(),
            "taken once"
        );
        // Process 3: a new invoke is not a cold start again in this environment.
        let mut third = with(0);
        opened(&mut third, event("y"), &at(200));
        let rec = sent(&mut third, "y", Outcome::default(), &at(201));
        assert!(!rec[0].cold_start);
        assert!(
            shared.0.lock().unwrap().1.is_empty(),
            "finished invokes are forgotten"
        );
    }

    #[test]
    fn a_tracker_at_work_never_allocates() {
        let mut t = tracker();
        crate::cost::assert_no_allocation(|| {
            for i in 0..300u64 {
                let mut buf = [0u8; 24];
                let id = crate::text::format_into(&mut buf, format_args!("id-{i}"));
                t.next_requested(&at(i));
                opened(&mut t, event(id), &at(i));
                let status = t.custom(0, |pool, c| {
                    pool.metric(c, "Orders", 1.0, Some("Count"), &none)
                });
                assert_eq!(status, Status::Ok);
                let a = t.flush();
                let b = t.result_sent(
                    &RequestId::new(id),
                    &Outcome::default(),
                    &at(i + 1),
                    &Channel::NONE,
                );
                for mut r in a.into_iter().chain(b).chain(t.next_starting(&at(i + 2))) {
                    t.pool().free(&mut r.custom);
                }
            }
        });
    }
}
