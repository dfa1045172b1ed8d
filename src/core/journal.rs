//! The journal of open invokes: how an invoke that ends the process still gets its record.
//!
//! Lambda counts an invoke during which the runtime exits — `exit()`, `_exit()`, a fatal
//! signal, SIGKILL from the out-of-memory killer — as an error (`Runtime.ExitError`). None of
//! those paths reaches the usual "result sent" moment, so when an invoke starts its record is
//! prepared in advance, as it would read if the process ended now, and kept in a slot of a
//! small file mapped once into memory (`MAP_SHARED`, no fd kept). The slot is freed when the
//! invoke ends normally; keeping it costs no system call.
//!
//! - A process ending by `exit`, `_exit` or a fatal signal writes its own open slots
//!   ([`Journal::write_open`]): no allocation, no lock, only `clock_gettime`, `getrusage` and
//!   one `writev` a record, so it is safe in a signal handler.
//! - A process that vanished without running any code (SIGKILL) leaves its slots open; the
//!   environment's next runtime process finds them at its first Runtime API connection and
//!   writes them ([`Journal::recover`]), without the values only the dead process knew.
//!
//! A prepared record is the EMF line the encoder writes, with holes: `\x01K` stands for the
//! value of hole `K`, and `\x02K … \x03` encloses text left out when `K`'s value is unknown.
//! EMF text never holds raw control bytes (the encoder escapes them), so markers cannot clash.

use crate::metrics::{AtExit, CATALOG, Context, Measured, Metric, Number, NumberText};
use crate::text::Out;
use crate::tracker::Probe;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Open invokes one environment can journal at once (more run without a crash record).
pub const SLOT_COUNT: usize = 32;
/// Bytes per slot: a fixed head, then the prepared record.
const SLOT_SIZE: usize = 8192;
const HEADER_SIZE: usize = 64;
const SLOT_HEAD: usize = 64;
/// The longest prepared record a slot holds.
pub const TEMPLATE_MAX: usize = SLOT_SIZE - SLOT_HEAD;
/// Size of the journal file.
pub const FILE_SIZE: usize = HEADER_SIZE + SLOT_COUNT * SLOT_SIZE;
/// First 8 bytes of a journal (format version in the last two).
pub const MAGIC: u64 = u64::from_le_bytes(*b"LMJRNL02");

/// Offset in the header of the flag [`Journal::stream_has_constants`] reads.
const STREAM_HAS_CONSTANTS: usize = 8;
/// Offset in the header of the slots ever taken: bit `i` for slot `i`, set before the slot
/// first leaves FREE and never cleared. What scans all slots reads only those (a slot's head
/// is on a page of its own: a page a scan does not touch stays unmapped in the scanning
/// process, a page fault fewer; one invoke at a time takes slot 0 every time).
const TAKEN: usize = 16;

const FREE: u32 = 0;
/// Its owner is writing the slot.
const FILLING: u32 = 1;
/// An invoke is open.
const OPEN: u32 = 2;
/// Someone is writing the slot's record.
const CLAIMED: u32 = 3;
/// A finished invoke's final record, held for a batched record (`LAMBDA_METER_BATCH`): written
/// as it is if its process ends first.
const HELD: u32 = 4;
/// A finished invoke's final record, waiting for the runtime's next `/next` (its
/// `PostResponseDuration`, a hole, is measured until then): written by its process when that
/// comes, or by an ending (the time until the ending) or a successor (left out) first.
const FINISHED: u32 = 5;
/// A held slot its process is appending a line to ([`Journal::hold_more`]): its first `LEN`
/// bytes are whole lines. Only its own process's ending (which may interrupt the append) or a
/// successor takes it; the environment's root, ending, leaves it to its process.
const APPENDING: u32 = 6;

/// The states in which a slot's own process (ending) or its successor writes it.
const OWN: [u32; 4] = [OPEN, HELD, FINISHED, APPENDING];

// Offsets in a slot's head (8-byte aligned: the mapping is page aligned).
const STATE: usize = 0;
const PID: usize = 4;
const OWNER_START: usize = 8;
/// When the invoke started (monotonic ns); in a FINISHED slot, when its result was sent.
const START_MONO: usize = 16;
const START_CPU: usize = 24;
const START_RSS: usize = 32;
const LEN: usize = 40;
const MEMORY_MB: usize = 44;
/// The invoke's request bytes, for a template with a [`hole::REQUEST_BYTES`].
const REQUEST_BYTES: usize = 48;
/// Lengths of the escaped request id (low 16 bits) and trace id (high 16 bits; `NO_TRACE`
/// when there is none) stored after the template, for its `I` and `X` holes.
const FILL_LENS: usize = 56;
const NO_TRACE: u32 = 0xffff;

/// The journal's own hole kinds of a prepared record. A metric measured at the ending is a hole
/// too, of the kind its catalog entry names ([`crate::metrics::AtExit`]).
pub mod hole {
    /// `_aws.Timestamp`, epoch ms.
    pub const TIMESTAMP: u8 = b'T';
    /// `exitReason`, a short text.
    pub const REASON: u8 = b'R';
    /// `requestId`'s text (stored in the slot, escaped), in a template shared by invokes.
    pub const REQUEST_ID: u8 = b'I';
    /// `traceId`'s text, likewise; its member is a span, left out when there is none.
    pub const TRACE_ID: u8 = b'X';
    /// `RequestBytes`, likewise.
    pub const REQUEST_BYTES: u8 = b'B';
    /// All of them.
    pub const ALL: [u8; 5] = [TIMESTAMP, REASON, REQUEST_ID, TRACE_ID, REQUEST_BYTES];
}

/// What a template shared by invokes leaves to each invoke (see [`shared_template`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Fills<'a> {
    /// Text's bytes, as a `FixedStr` keeps them.
    pub request_id: &'a [u8],
    pub trace_id: Option<&'a [u8]>,
    pub request_bytes: u64,
}

/// The placeholders a shared template is encoded with, then replaced by holes.
pub const REQUEST_ID_PLACEHOLDER: &str = "lambda-meter:request-id";
pub const TRACE_ID_PLACEHOLDER: &str = "lambda-meter:trace-id";
pub const REQUEST_BYTES_PLACEHOLDER: u64 = 987_654_321_987_654;

const HOLE: u8 = 0x01;
const SPAN: u8 = 0x02;
const SPAN_END: u8 = 0x03;

/// Which process a slot belongs to: pid and start time (clock ticks after boot), so a reused
/// pid is never taken for the process that wrote the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub start_ticks: u64,
}

/// Readings taken when a process ends (`None`: unknown, as after SIGKILL).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ending<'a> {
    pub wall_ms: u64,
    pub mono_ns: Option<u64>,
    pub cpu_ns: Option<u64>,
    pub max_rss_kb: Option<u64>,
    /// ASCII without quotes or backslashes: written into a JSON string as it is.
    pub reason: &'a [u8],
}

/// A handle on journal memory: [`FILE_SIZE`] bytes, 8-byte aligned, shared by the processes of
/// one environment. Copyable, so a signal handler can hold one without a lock.
#[derive(Clone, Copy, Debug)]
pub struct Journal {
    base: *mut u8,
}

// SAFETY: the memory is only ever accessed through atomics, or by the one party that holds a
// slot in the FILLING or CLAIMED state.
unsafe impl Send for Journal {}
// SAFETY: as above.
unsafe impl Sync for Journal {}

impl Journal {
    /// A journal over `base`.
    ///
    /// # Safety
    /// `base` must point to [`FILE_SIZE`] writable bytes, 8-byte aligned, that stay mapped for
    /// as long as any copy of the handle is used, and that only journals touch.
    pub unsafe fn from_raw(base: *mut u8) -> Journal {
        Journal { base }
    }

    /// Whether the memory starts with the journal header (written by [`Journal::format`]).
    pub fn is_formatted(&self) -> bool {
        self.header_magic().load(Ordering::Acquire) == MAGIC
    }

    /// Writes the header of a new, zero-filled journal.
    pub fn format(&self) {
        self.header_magic().store(MAGIC, Ordering::Release);
    }

    /// Where the journal's memory starts (to tell two mappings apart).
    pub fn as_ptr(&self) -> *mut u8 {
        self.base
    }

    /// Takes over `pid`'s slots from `old`, a journal whose file is gone from its path (the
    /// function cleaned its temporary directory): each goes to the same slot here, if that is
    /// free, so the slot numbers the process keeps stay right. Also the header's note that the
    /// stream had its constants. Returns how many slots could not be taken over (their slot is
    /// another process's here). The old mapping stays valid: an ending that is writing from it
    /// finishes there.
    pub fn adopt(&self, old: &Journal, pid: u32) -> usize {
        if old.stream_has_constants() {
            self.note_stream_has_constants();
        }
        let mut lost = 0;
        for i in old.taken() {
            let state = old.u32_at(i, STATE).load(Ordering::Acquire);
            if matches!(state, FREE | FILLING | CLAIMED)
                || old.u32_at(i, PID).load(Ordering::Relaxed) != pid
            {
                continue;
            }
            self.mark_taken(i);
            let here = self.u32_at(i, STATE);
            if here
                .compare_exchange(FREE, FILLING, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                lost += 1;
                continue;
            }
            // SAFETY: the slot here is ours (FILLING); the old slot is this process's, which
            // (under the engine's gate) no one else changes while it is copied. Both are
            // SLOT_SIZE bytes inside their mappings, which do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    old.slot(i).add(STATE + 4),
                    self.slot(i).add(STATE + 4),
                    SLOT_SIZE - (STATE + 4),
                );
            }
            here.store(state, Ordering::Release);
        }
        lost
    }

    /// Whether a record with the environment's constant properties was written to its log
    /// stream (by any of its processes): later records need not repeat them.
    pub fn stream_has_constants(&self) -> bool {
        self.header_u32(STREAM_HAS_CONSTANTS)
            .load(Ordering::Relaxed)
            != 0
    }

    /// Notes that a record with the environment's constant properties was written.
    pub fn note_stream_has_constants(&self) {
        self.header_u32(STREAM_HAS_CONSTANTS)
            .store(1, Ordering::Relaxed);
    }

    /// Notes slot `i` as taken, before it is: a scan then reads it (one load once noted).
    fn mark_taken(&self, i: usize) {
        let bit = 1u32 << (i % SLOT_COUNT);
        let taken = self.header_u32(TAKEN);
        if taken.load(Ordering::Relaxed) & bit == 0 {
            taken.fetch_or(bit, Ordering::AcqRel);
        }
    }

    /// The slots ever taken (see [`TAKEN`]): every slot not FREE is one of them.
    fn taken(&self) -> impl Iterator<Item = usize> + use<> {
        let mut bits = self.header_u32(TAKEN).load(Ordering::Acquire);
        std::iter::from_fn(move || {
            let i = bits.trailing_zeros() as usize;
            bits &= bits.wrapping_sub(1);
            (i < SLOT_COUNT).then_some(i)
        })
    }

    fn header_u32(&self, off: usize) -> &AtomicU32 {
        // SAFETY: `off` is a 4-byte aligned offset inside the header.
        unsafe { AtomicU32::from_ptr(self.base.add(off).cast()) }
    }

    fn header_magic(&self) -> &AtomicU64 {
        // SAFETY: the header's first 8 bytes are inside the mapping and 8-byte aligned.
        unsafe { AtomicU64::from_ptr(self.base.cast()) }
    }

    fn slot(&self, i: usize) -> *mut u8 {
        // SAFETY: i < SLOT_COUNT at every caller, so the slot lies inside the mapping.
        unsafe { self.base.add(HEADER_SIZE + i * SLOT_SIZE) }
    }

    fn u32_at(&self, i: usize, off: usize) -> &AtomicU32 {
        // SAFETY: `off` is a 4-byte aligned offset inside the slot head.
        unsafe { AtomicU32::from_ptr(self.slot(i).add(off).cast()) }
    }

    fn u64_at(&self, i: usize, off: usize) -> &AtomicU64 {
        // SAFETY: `off` is an 8-byte aligned offset inside the slot head.
        unsafe { AtomicU64::from_ptr(self.slot(i).add(off).cast()) }
    }

    /// The slot's template, escaped request id and escaped trace id.
    fn template(&self, i: usize) -> (&[u8], &[u8], Option<&[u8]>) {
        // SAFETY: the caller holds the slot (CLAIMED); its bytes after the head were written
        // while it was FILLING, before the release store of OPEN that our acquire saw.
        let body = unsafe { std::slice::from_raw_parts(self.slot(i).add(SLOT_HEAD), TEMPLATE_MAX) };
        let len = (self.u32_at(i, LEN).load(Ordering::Relaxed) as usize).min(TEMPLATE_MAX);
        let lens = self.u32_at(i, FILL_LENS).load(Ordering::Relaxed);
        let (template, rest) = body.split_at(len);
        let id_len = (lens & 0xffff) as usize;
        let id = rest.get(..id_len).unwrap_or_default();
        let trace = match lens >> 16 {
            NO_TRACE => None,
            n => rest.get(id_len..id_len + n as usize),
        };
        (template, id, trace)
    }

    /// Journals an invoke of `owner` that started at `started`, with its prepared record.
    /// Returns the slot, or `None` when every slot is taken or the record is too long.
    pub fn begin(
        &self,
        owner: Owner,
        started: &Probe,
        memory_size_mb: u32,
        template: &[u8],
    ) -> Option<usize> {
        self.begin_with(owner, started, memory_size_mb, template, &Fills::default())
    }

    /// [`Journal::begin`] with a template shared by invokes: this invoke's request id, trace id
    /// and request bytes are stored beside it (the strings JSON-escaped), for its holes. No
    /// allocation: the per-invoke cost is two copies.
    pub fn begin_with(
        &self,
        owner: Owner,
        started: &Probe,
        memory_size_mb: u32,
        template: &[u8],
        fills: &Fills,
    ) -> Option<usize> {
        if template.len() > TEMPLATE_MAX {
            return None;
        }
        for i in 0..SLOT_COUNT {
            let state = self.u32_at(i, STATE);
            if state.load(Ordering::Relaxed) != FREE {
                continue;
            }
            self.mark_taken(i);
            if state
                .compare_exchange(FREE, FILLING, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            // SAFETY: the slot is ours (FILLING): its TEMPLATE_MAX bytes after the head are
            // written by no one else until the release store below.
            let body = unsafe {
                std::slice::from_raw_parts_mut(self.slot(i).add(SLOT_HEAD), TEMPLATE_MAX)
            };
            let (dst, rest) = body.split_at_mut(template.len());
            dst.copy_from_slice(template);
            let lens = (|| {
                let id = escape_into(rest, fills.request_id)?;
                let trace = match fills.trace_id {
                    Some(t) => escape_into(rest.get_mut(id..)?, t)?,
                    None => NO_TRACE as usize,
                };
                (id < 0xffff && trace <= 0xffff).then_some((id as u32) | ((trace as u32) << 16))
            })();
            let Some(lens) = lens else {
                state.store(FREE, Ordering::Release);
                return None;
            };
            self.u32_at(i, PID).store(owner.pid, Ordering::Relaxed);
            self.u64_at(i, OWNER_START)
                .store(owner.start_ticks, Ordering::Relaxed);
            self.u64_at(i, START_MONO)
                .store(started.mono_ns, Ordering::Relaxed);
            self.u64_at(i, START_CPU)
                .store(started.cpu_ns, Ordering::Relaxed);
            self.u64_at(i, START_RSS)
                .store(started.max_rss_kb, Ordering::Relaxed);
            self.u32_at(i, MEMORY_MB)
                .store(memory_size_mb, Ordering::Relaxed);
            self.u64_at(i, REQUEST_BYTES)
                .store(fills.request_bytes, Ordering::Relaxed);
            self.u32_at(i, FILL_LENS).store(lens, Ordering::Relaxed);
            self.u32_at(i, LEN)
                .store(template.len() as u32, Ordering::Relaxed);
            state.store(OPEN, Ordering::Release);
            return Some(i);
        }
        None
    }

    /// Keeps a finished invoke's final `line` (no holes) for `owner` while the process holds it
    /// for a batched record (more go in with [`Journal::hold_more`]), in a slot not in
    /// `skip` (bit `i` for slot `i`: those the process keeps its batch in, or kept it in until
    /// the environment's root took them). Returns the slot, or `None` when every slot is
    /// taken or the line is too long.
    pub fn hold(&self, owner: Owner, line: &[u8], skip: u64) -> Option<usize> {
        if line.len() > TEMPLATE_MAX || line.iter().any(|b| matches!(*b, HOLE | SPAN | SPAN_END)) {
            return None;
        }
        for i in 0..SLOT_COUNT {
            if skip & (1 << i) != 0 {
                continue;
            }
            let state = self.u32_at(i, STATE);
            if state.load(Ordering::Relaxed) != FREE {
                continue;
            }
            self.mark_taken(i);
            if state
                .compare_exchange(FREE, FILLING, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            // SAFETY: the slot is ours (FILLING), as in `begin_with`.
            let body = unsafe {
                std::slice::from_raw_parts_mut(self.slot(i).add(SLOT_HEAD), TEMPLATE_MAX)
            };
            if let Some(dst) = body.get_mut(..line.len()) {
                dst.copy_from_slice(line);
            }
            self.u32_at(i, PID).store(owner.pid, Ordering::Relaxed);
            self.u64_at(i, OWNER_START)
                .store(owner.start_ticks, Ordering::Relaxed);
            self.u32_at(i, FILL_LENS)
                .store(NO_TRACE << 16, Ordering::Relaxed);
            self.u32_at(i, LEN)
                .store(line.len() as u32, Ordering::Relaxed);
            state.store(HELD, Ordering::Release);
            return Some(i);
        }
        None
    }

    /// Appends another held `line` to `slot` (held by `pid`), when it fits: a slot keeps the
    /// lines of several held records, so a batch takes one or two. The length is stored after
    /// the copy, so an ending that interrupts it writes the lines before.
    pub fn hold_more(&self, slot: usize, pid: u32, line: &[u8]) -> bool {
        if slot >= SLOT_COUNT
            || self.u32_at(slot, PID).load(Ordering::Relaxed) != pid
            || line.iter().any(|b| matches!(*b, HOLE | SPAN | SPAN_END))
        {
            return false;
        }
        // Marked first, so that the environment's root, ending meanwhile, leaves the slot to
        // this process instead of writing it without the line being added.
        let state = self.u32_at(slot, STATE);
        if state
            .compare_exchange(HELD, APPENDING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        let len = self.u32_at(slot, LEN).load(Ordering::Relaxed) as usize;
        let room = len + line.len() <= TEMPLATE_MAX;
        // Still this process's (the root may have written and freed it, and another process
        // held it since, between the look above and the mark).
        let mine = self.u32_at(slot, PID).load(Ordering::Relaxed) == pid;
        if mine && room {
            // SAFETY: the slot is this process's and APPENDING, and its engine lock the caller
            // holds: no one else writes it, and readers (its own ending, a successor) read
            // only its first LEN bytes.
            let body = unsafe {
                std::slice::from_raw_parts_mut(self.slot(slot).add(SLOT_HEAD), TEMPLATE_MAX)
            };
            if let Some(dst) = body.get_mut(len..len + line.len()) {
                dst.copy_from_slice(line);
                self.u32_at(slot, LEN)
                    .store((len + line.len()) as u32, Ordering::Release);
            }
        }
        // Back to HELD, unless this process's own ending took the slot meanwhile (it then
        // never returns here).
        let _ = state.compare_exchange(APPENDING, HELD, Ordering::Release, Ordering::Relaxed);
        mine && room
    }

    /// The records held in `slot` go out with their batch: the slot is free. False when they
    /// are not this process's to write any more: the environment's root, ending, took them
    /// (see [`Journal::write_environment`]) and writes them itself.
    pub fn release(&self, slot: usize, pid: u32) -> bool {
        self.move_own(slot, pid, HELD, FREE)
    }

    /// Moves `pid`'s `slot` from state `from` to `to`: false when it is not in `from` or no
    /// longer names `pid`.
    fn move_own(&self, slot: usize, pid: u32, from: u32, to: u32) -> bool {
        slot < SLOT_COUNT
            && self.u32_at(slot, PID).load(Ordering::Relaxed) == pid
            && self
                .u32_at(slot, STATE)
                .compare_exchange(from, to, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// The invoke in `slot` ended normally (or its final record, kept here, goes out another
    /// way): what the slot holds is void.
    pub fn end(&self, slot: usize, pid: u32) {
        if slot < SLOT_COUNT && self.u32_at(slot, PID).load(Ordering::Relaxed) == pid {
            let state = self.u32_at(slot, STATE);
            for from in [OPEN, FINISHED] {
                if state
                    .compare_exchange(from, FREE, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    return;
                }
            }
        }
    }

    /// The invoke journaled in `slot` (by `pid`) sent its result: its prepared record is
    /// replaced by its final one, `template` (see [`finished_template`]), whose
    /// `PostResponseDuration` is measured from `result_sent_mono` (monotonic ns) until it is
    /// written. False (the slot unchanged) when the slot is not that process's open or
    /// finished one, or the record does not fit.
    pub fn finish(&self, slot: usize, pid: u32, template: &[u8], result_sent_mono: u64) -> bool {
        self.finish_with(slot, pid, template.len(), result_sent_mono, |dst| {
            dst.copy_from_slice(template)
        })
    }

    /// [`Journal::finish`] with the template, `len` bytes, written in place by `write` (given
    /// exactly those bytes of the slot): no copy of it is made first.
    pub fn finish_with(
        &self,
        slot: usize,
        pid: u32,
        len: usize,
        result_sent_mono: u64,
        write: impl FnOnce(&mut [u8]),
    ) -> bool {
        if slot >= SLOT_COUNT
            || len > TEMPLATE_MAX
            || self.u32_at(slot, PID).load(Ordering::Relaxed) != pid
        {
            return false;
        }
        // An open invoke, or one finished already whose record is replaced (a result kept
        // while the Runtime API's answer was awaited).
        let state = self.u32_at(slot, STATE);
        let taken = [OPEN, FINISHED].into_iter().any(|from| {
            state
                .compare_exchange(from, FILLING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        });
        if !taken {
            return false;
        }
        // SAFETY: the slot is ours (FILLING), as in `begin_with`.
        let body =
            unsafe { std::slice::from_raw_parts_mut(self.slot(slot).add(SLOT_HEAD), TEMPLATE_MAX) };
        if let Some(dst) = body.get_mut(..len) {
            write(dst);
        }
        self.u64_at(slot, START_MONO)
            .store(result_sent_mono, Ordering::Relaxed);
        self.u32_at(slot, FILL_LENS)
            .store(NO_TRACE << 16, Ordering::Relaxed);
        self.u32_at(slot, LEN).store(len as u32, Ordering::Relaxed);
        self.u32_at(slot, STATE).store(FINISHED, Ordering::Release);
        true
    }

    /// Its process writes the finished record in `slot` now (the runtime asked for its next
    /// event): renders it with `post_response_ns` and hands it to `emit`, then frees the slot.
    /// False, with nothing emitted, when the slot no longer holds `pid`'s finished record (an
    /// ending wrote it already).
    pub fn write_finished(
        &self,
        slot: usize,
        pid: u32,
        post_response_ns: Option<u64>,
        emit: &mut dyn FnMut(&[&[u8]]),
    ) -> bool {
        if !self.claim_finished(slot, pid) {
            return false;
        }
        let (template, _, _) = self.template(slot);
        let values = Values {
            post_response_ns,
            ..Values::default()
        };
        let written = render(template, &values, emit);
        self.u32_at(slot, STATE).store(FREE, Ordering::Release);
        written
    }

    /// [`Journal::write_finished`] from `line`, the encoder's line `slot`'s template was made of
    /// by [`finished_template`] (`value`: its placeholder's digits, as that returned): the same
    /// bytes, the value in place of the placeholder, without the template read back and
    /// searched for its holes. `None`, with the slot untouched, where the value leaves the
    /// member out (the caller renders the template then); else as `write_finished`.
    pub fn write_finished_line(
        &self,
        slot: usize,
        pid: u32,
        post_response_ns: u64,
        line: &[u8],
        value: (usize, usize),
        emit: &mut dyn FnMut(&[&[u8]]),
    ) -> Option<bool> {
        let kind = crate::metrics::find(NAME).and_then(Metric::hole)?;
        let values = Values {
            post_response_ns: Some(post_response_ns),
            ..Values::default()
        };
        let (record, context) = values.measured();
        let number = catalog_number(kind, &record, &context)?;
        let (head, tail) = (line.get(..value.0)?, line.get(value.1..)?);
        if !self.claim_finished(slot, pid) {
            return Some(false);
        }
        let text = number.text();
        emit(&[head, text.as_bytes(), tail]);
        self.u32_at(slot, STATE).store(FREE, Ordering::Release);
        Some(true)
    }

    /// Takes `slot` to write `pid`'s finished record from it: false when it no longer holds
    /// that (an ending wrote it already).
    fn claim_finished(&self, slot: usize, pid: u32) -> bool {
        self.move_own(slot, pid, FINISHED, CLAIMED)
    }

    /// Whether `slot`, which kept `pid`'s finished record, was taken by another process since
    /// (the environment's root, ending): it still names `pid` and is being written, or was
    /// written and freed. A slot that names another process now says nothing of the record:
    /// its process keeps it (twice written at worst, never lost).
    pub fn taken_by_another(&self, slot: usize, pid: u32) -> bool {
        slot < SLOT_COUNT
            && self.u32_at(slot, PID).load(Ordering::Relaxed) == pid
            && matches!(
                self.u32_at(slot, STATE).load(Ordering::Acquire),
                CLAIMED | FREE
            )
    }

    /// Number of free slots.
    pub fn free_count(&self) -> usize {
        SLOT_COUNT
            - self
                .taken()
                .filter(|i| self.u32_at(*i, STATE).load(Ordering::Relaxed) != FREE)
                .count()
    }

    /// Number of open invokes journaled (any owner).
    pub fn open_count(&self) -> usize {
        self.taken()
            .filter(|i| self.u32_at(*i, STATE).load(Ordering::Relaxed) == OPEN)
            .count()
    }

    /// Process `pid` is ending: each of its open invokes is rendered with the readings of
    /// `ending` and handed to `emit`, once, and so is each record it held (as it is).
    /// Async-signal-safe: no allocation, no lock.
    pub fn write_open(&self, pid: u32, ending: &Ending, emit: &mut dyn FnMut(&[&[u8]])) -> usize {
        let mut written = 0;
        for i in self.taken() {
            if self.u32_at(i, PID).load(Ordering::Relaxed) != pid || !self.claim(i, &OWN) {
                continue;
            }
            written += usize::from(self.render_slot(i, ending, emit));
            self.u32_at(i, STATE).store(FREE, Ordering::Release);
        }
        written
    }

    /// The environment's root process is ending, and the environment with it (Lambda stops
    /// the rest once its runtime is gone): the finished records every other process of the
    /// environment still keeps — held for a batch, or waiting for a `/next` — are written now,
    /// each once (a process that writes its own meanwhile finds it taken, see
    /// [`Journal::release`] and [`Journal::write_finished`]). Open invokes are left to their
    /// processes: they may still end them. Async-signal-safe: no allocation, no lock.
    pub fn write_environment(&self, ending: &Ending, emit: &mut dyn FnMut(&[&[u8]])) -> usize {
        let mut written = 0;
        for i in self.taken() {
            if !self.claim(i, &[HELD, FINISHED]) {
                continue;
            }
            // Not this process's readings: a finished record's time until now only.
            let at_root = Ending {
                cpu_ns: None,
                max_rss_kb: None,
                ..*ending
            };
            written += usize::from(self.render_slot(i, &at_root, emit));
            self.u32_at(i, STATE).store(FREE, Ordering::Release);
        }
        written
    }

    /// Lets go of `pid`'s open invokes without writing them: they were handed on to another
    /// process of the environment, which ends them. Its finished and held records stay.
    pub fn hand_on_open(&self, pid: u32) {
        for i in self.taken() {
            if self.u32_at(i, PID).load(Ordering::Relaxed) == pid {
                let _ = self.u32_at(i, STATE).compare_exchange(
                    OPEN,
                    FREE,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// Open invokes of processes that are gone (`alive` says which owners still run): each is
    /// rendered without the values only its process knew, and handed to `emit`, once.
    pub fn recover(
        &self,
        alive: &dyn Fn(Owner) -> bool,
        ending: &Ending,
        emit: &mut dyn FnMut(&[&[u8]]),
    ) -> usize {
        let mut written = 0;
        for i in self.taken() {
            let state = self.u32_at(i, STATE).load(Ordering::Acquire);
            if state == FREE {
                continue;
            }
            let owner = Owner {
                pid: self.u32_at(i, PID).load(Ordering::Relaxed),
                start_ticks: self.u64_at(i, OWNER_START).load(Ordering::Relaxed),
            };
            if alive(owner) {
                continue;
            }
            if matches!(state, OPEN | HELD | FINISHED | APPENDING) && self.claim(i, &OWN) {
                let at_start = Ending {
                    mono_ns: None,
                    cpu_ns: None,
                    max_rss_kb: Some(self.u64_at(i, START_RSS).load(Ordering::Relaxed)),
                    ..*ending
                };
                written += usize::from(self.render_slot(i, &at_start, emit));
            }
            // A dead owner's half-written slot (FILLING, CLAIMED) is void.
            self.u32_at(i, STATE).store(FREE, Ordering::Release);
        }
        written
    }

    /// Takes slot `i` for writing its record, if it is in one of the states `from`.
    fn claim(&self, i: usize, from: &[u32]) -> bool {
        from.iter().any(|from| {
            self.u32_at(i, STATE)
                .compare_exchange(*from, CLAIMED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })
    }

    fn render_slot(&self, i: usize, ending: &Ending, emit: &mut dyn FnMut(&[&[u8]])) -> bool {
        let since = |now: Option<u64>, off: usize| {
            now.map(|n| n.saturating_sub(self.u64_at(i, off).load(Ordering::Relaxed)))
        };
        let (template, request_id, trace_id) = self.template(i);
        let values = Values {
            wall_ms: ending.wall_ms,
            duration_ns: since(ending.mono_ns, START_MONO),
            // In a finished record: the time from its result to the ending.
            post_response_ns: since(ending.mono_ns, START_MONO),
            cpu_ns: since(ending.cpu_ns, START_CPU),
            max_rss_kb: ending
                .max_rss_kb
                .unwrap_or_else(|| self.u64_at(i, START_RSS).load(Ordering::Relaxed)),
            memory_size_mb: u64::from(self.u32_at(i, MEMORY_MB).load(Ordering::Relaxed)),
            reason: ending.reason,
            request_id,
            trace_id,
            request_bytes: self.u64_at(i, REQUEST_BYTES).load(Ordering::Relaxed),
        };
        render(template, &values, emit)
    }
}

/// The values that fill a prepared record's holes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Values<'a> {
    pub wall_ms: u64,
    pub duration_ns: Option<u64>,
    pub post_response_ns: Option<u64>,
    pub cpu_ns: Option<u64>,
    pub max_rss_kb: u64,
    /// 0 when unknown.
    pub memory_size_mb: u64,
    pub reason: &'a [u8],
    /// For a shared template's holes: the escaped request id and trace id, the request bytes.
    pub request_id: &'a [u8],
    pub trace_id: Option<&'a [u8]>,
    pub request_bytes: u64,
}

impl Values<'_> {
    /// The record and context the catalog reads a measured metric's value from.
    fn measured(&self) -> (crate::tracker::InvokeRecord, Context) {
        let measured = Measured {
            duration_ns: self.duration_ns,
            cpu_ns: self.cpu_ns,
            max_rss_kb: self.max_rss_kb,
            post_response_ns: self.post_response_ns,
        };
        let context = Context {
            memory_size_mb: Some(self.memory_size_mb).filter(|m| *m > 0),
            max_concurrency: 0,
        };
        (measured.record(), context)
    }
}

/// The value of the metric whose hole is `kind`, read through its catalog entry.
fn catalog_number(
    kind: u8,
    record: &crate::tracker::InvokeRecord,
    context: &Context,
) -> Option<Number> {
    let m = CATALOG.iter().find(|m| m.hole() == Some(kind))?;
    (m.read)(record, context)
}

/// Fills the holes of `template` with `v` and hands the pieces, in order, to `emit` (one call,
/// at most 48 pieces). No allocation. Returns false (and emits nothing) for a malformed
/// template.
pub fn render<'t>(template: &'t [u8], v: &Values<'t>, emit: &mut dyn FnMut(&[&[u8]])) -> bool {
    // Numbers in the encoder's own form (one formatter for both); the metrics' through their
    // catalog entries, as every record reads them. Each is formed only when the template has
    // its hole (a finished record has one or two of them), and once.
    let (record, context) = v.measured();
    let mut numbers = Numbers {
        texts: [const { None }; NUMBERS],
        count: 0,
    };
    let mut value = |kind: u8| -> Option<Piece<'t>> {
        let number = match kind {
            hole::REASON => return Some(Piece::Text(v.reason)),
            hole::REQUEST_ID => return Some(Piece::Text(v.request_id)),
            hole::TRACE_ID => return v.trace_id.map(Piece::Text),
            hole::TIMESTAMP => Number::int(v.wall_ms),
            hole::REQUEST_BYTES => Number::int(v.request_bytes),
            _ => {
                if let Some(i) = numbers.find(kind) {
                    return Some(Piece::Number(i));
                }
                catalog_number(kind, &record, &context)?
            }
        };
        numbers.add(kind, number).map(Piece::Number)
    };
    let mut pieces: [Piece<'t>; 48] = [Piece::Text(&[]); 48];
    let mut count = 0;
    let mut push = |piece: Piece<'t>| -> bool {
        if let Piece::Text([]) = piece {
            return true;
        }
        let Some(slot) = pieces.get_mut(count) else {
            return false;
        };
        *slot = piece;
        count += 1;
        true
    };
    let mut rest = template;
    loop {
        let Some(at) = find_marker(rest) else {
            if !push(Piece::Text(rest)) {
                return false;
            }
            break;
        };
        let (text, marked) = rest.split_at(at);
        if !push(Piece::Text(text)) {
            return false;
        }
        match marked {
            [HOLE, kind, after @ ..] => {
                // A hole without a value (an unknown number outside a span) reads 0.
                if !push(value(*kind).unwrap_or(Piece::Text(b"0"))) {
                    return false;
                }
                rest = after;
            }
            [SPAN, kind, after @ ..] => {
                rest = if value(*kind).is_some() {
                    after
                } else {
                    match after.iter().position(|b| *b == SPAN_END) {
                        Some(end) => after.get(end + 1..).unwrap_or_default(),
                        None => return false,
                    }
                };
            }
            [SPAN_END, after @ ..] => rest = after,
            _ => return false,
        }
    }
    let mut items: [&[u8]; 48] = [&[]; 48];
    for (item, piece) in items.iter_mut().zip(pieces.iter().take(count)) {
        *item = match piece {
            Piece::Text(t) => t,
            Piece::Number(i) => numbers.text(*i),
        };
    }
    emit(items.get(..count).unwrap_or_default());
    true
}

/// A piece of a rendered record: text (of the template or a value), or the number formed in
/// [`Numbers`] at this place.
#[derive(Clone, Copy)]
enum Piece<'a> {
    Text(&'a [u8]),
    Number(usize),
}

/// Numbers a record's holes need at most.
const NUMBERS: usize = CATALOG.len() + 2;

/// The numbers formed for one rendering, each with its hole's kind.
struct Numbers {
    texts: [Option<(u8, NumberText)>; NUMBERS],
    count: usize,
}

impl Numbers {
    fn find(&self, kind: u8) -> Option<usize> {
        self.texts
            .iter()
            .take(self.count)
            .position(|t| t.as_ref().is_some_and(|(k, _)| *k == kind))
    }

    /// Forms `n`'s text for hole `kind` (once: a second call gives the first one's place).
    fn add(&mut self, kind: u8, n: Number) -> Option<usize> {
        if let Some(i) = self.find(kind) {
            return Some(i);
        }
        let slot = self.texts.get_mut(self.count)?;
        *slot = Some((kind, n.text()));
        self.count += 1;
        Some(self.count - 1)
    }

    fn text(&self, i: usize) -> &[u8] {
        match self.texts.get(i) {
            Some(Some((_, t))) => t.as_bytes(),
            _ => &[],
        }
    }
}

/// Where the first marker of a prepared record is (a NUL, which an EMF line never holds, is
/// text).
fn find_marker(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = from + crate::text::find_below(SPAN_END + 1, bytes.get(from..)?)?;
        if matches!(bytes.get(at), Some(&(HOLE | SPAN | SPAN_END))) {
            return Some(at);
        }
        from = at + 1;
    }
}

/// Turns the encoder's line for an invoke that ended with the process into a prepared record,
/// written to `t`: the values known only at the end become holes, and an `exitReason` property
/// is added. False when the line does not have the expected shape or the record does not fit.
pub fn prepare(line: &[u8], t: &mut Out) -> bool {
    let start = t.len();
    t.bytes(line);
    prepare_in_place(t, start).is_some() && !t.overflowed()
}

fn prepare_in_place(t: &mut Out, start: usize) -> Option<()> {
    // `{"_aws":{"Timestamp":` opens every record; its number is the first hole.
    let ts_key = b"{\"_aws\":{\"Timestamp\":";
    if !t.written().get(start..)?.starts_with(ts_key) {
        return None;
    }
    replace_number(t, start + ts_key.len(), hole::TIMESTAMP)?;
    // Each metric measured at the ending (the catalog says which); one the line does not carry
    // (not selected, or not known before the result, as `PostResponseDuration`) is left alone.
    for m in CATALOG {
        if let AtExit::Measured {
            hole,
            may_be_unknown,
        } = m.at_exit
        {
            hole_for_metric(t, start, m.name, hole, may_be_unknown)?;
        }
    }
    // The reason goes last, before the closing brace (and newline).
    let close = t.written().iter().rposition(|b| *b == b'}')?;
    if close < start {
        return None;
    }
    t.insert(close, b",\"exitReason\":\"");
    t.insert(close + 15, &[HOLE, hole::REASON, b'"']);
    Some(())
}

/// Replaces metric `name`'s value (when the record has it) with hole `kind`; when its value may
/// be unknown, the member (and its declaration, when it can go) is a span of `kind`.
fn hole_for_metric(
    t: &mut Out,
    start: usize,
    name: &str,
    kind: u8,
    may_be_unknown: bool,
) -> Option<()> {
    // `,"Name":` cannot occur inside a JSON string (a quote there is always escaped), so the
    // first match is the member itself.
    let mut m = [0u8; 48];
    let member = joined(&mut m, &[b",\"", name.as_bytes(), b"\":"]);
    let Some(at) = find_from(t, start, member) else {
        return Some(()); // not selected
    };
    hole_for_member(t, start, at, name, kind, may_be_unknown)
}

/// [`hole_for_metric`] for the member of metric `name` found at `at`.
fn hole_for_member(
    t: &mut Out,
    start: usize,
    at: usize,
    name: &str,
    kind: u8,
    may_be_unknown: bool,
) -> Option<()> {
    let (mut m, mut d) = ([0u8; 48], [0u8; 48]);
    let member = joined(&mut m, &[b",\"", name.as_bytes(), b"\":"]);
    // A value the settings do not declare is a plain member: it can always go. A declaration
    // is in the `_aws` directive, which comes before every member.
    let declaration = joined(&mut d, &[b"{\"Name\":\"", name.as_bytes(), b"\","]);
    let declared = find(t.written().get(start..at)?, declaration).map(|i| start + i);
    let elidable = may_be_unknown && declared.is_none_or(|at| declaration_can_go(t.written(), at));
    replace_number(t, at + member.len(), kind)?;
    if elidable {
        // The member ends with its hole marker.
        let end = at + find(t.written().get(at..)?, &[HOLE, kind])? + 2;
        wrap_span(t, at, end, kind);
        // The member's edits are after it: the declaration is where it was found.
        if let Some(decl_at) = declared {
            wrap_declaration(t, decl_at, kind)?;
        }
    }
    Some(())
}

/// The encoder's line for a finished record whose `PostResponseDuration` is not known yet
/// (encoded with [`POST_RESPONSE_PLACEHOLDER`]) as the template [`Journal::finish`] keeps: that
/// value a hole, in a span (an ending that never comes leaves it out). False when the line has
/// no such member, or the template does not fit.
///
/// `marks`, when given, says where the encoder put the metric's member and the declarations
/// (see [`crate::emf::encode_marked`]): only the declarations are searched then. Returns where
/// the placeholder's digits are in `line` (see [`Journal::write_finished_line`]).
pub fn finished_template(
    line: &[u8],
    marks: Option<&crate::emf::Marks>,
    t: &mut Out,
) -> Option<(usize, usize)> {
    let plan = FinishedPlan::of(line, marks)?;
    plan.write(line, t);
    (!t.overflowed()).then_some(plan.value())
}

/// Where [`finished_template`]'s edits go in a line, found before anything is written: the
/// template can then be written where it is kept (a journal slot), in one pass that cannot
/// fail half-way.
#[derive(Clone, Copy, Debug)]
pub struct FinishedPlan {
    /// The declaration to put in a span, when it has a neighbour to keep the array valid.
    declared: Option<(usize, usize)>,
    /// The member's comma.
    at: usize,
    /// The placeholder's digits.
    value_at: usize,
    end: usize,
    elidable: bool,
    kind: u8,
}

impl FinishedPlan {
    /// The plan for `line` (see [`finished_template`]); `None` when it has no such member.
    pub fn of(line: &[u8], marks: Option<&crate::emf::Marks>) -> Option<FinishedPlan> {
        let mut m = [0u8; 64];
        let digits = crate::metrics::ms(POST_RESPONSE_PLACEHOLDER).text();
        let member = joined(
            &mut m,
            &[b",\"", NAME.as_bytes(), b"\":", digits.as_bytes()],
        );
        let marked = marks.filter(|k| k.name == NAME);
        let at = match marked.and_then(|k| k.member) {
            Some(at) if line.get(at..at + member.len()) == Some(member) => at,
            _ => find(line, member)?,
        };
        // The declarations come before the member.
        let (from, to) = marked.map_or((0, at), |k| k.declarations);
        let kind = crate::metrics::find(NAME).and_then(Metric::hole)?;
        // As `hole_for_member` would edit it, in one pass: the member (its value a hole) in a
        // span, and its declaration, when it has a neighbour to keep the array valid, in
        // another.
        let mut d = [0u8; 48];
        let declaration = joined(&mut d, &[b"{\"Name\":\"", NAME.as_bytes(), b"\","]);
        let found = line
            .get(from..to.min(at))
            .and_then(|before| find(before, declaration))
            .map(|d| from + d);
        // A sole declared metric stays, and so does its member: its value is never left out.
        let elidable = found.is_none_or(|d| declaration_can_go(line, d));
        let declared = match found.filter(|_| elidable) {
            Some(d) => Some(declaration_bounds(line, d)?),
            None => None,
        };
        let value_at = at + member.len() - digits.as_bytes().len();
        let end = at + member.len();
        // Every part the writing takes is in the line, in order.
        let ordered = declared.is_none_or(|(start, stop)| start <= stop && stop <= at);
        (ordered && end <= line.len()).then_some(FinishedPlan {
            declared,
            at,
            value_at,
            end,
            elidable,
            kind,
        })
    }

    /// Where the placeholder's digits are in the line (see [`Journal::write_finished_line`]).
    pub fn value(&self) -> (usize, usize) {
        (self.value_at, self.end)
    }

    /// How long the template is: the line less the placeholder's digits, plus the markers.
    pub fn len(&self, line: &[u8]) -> usize {
        let markers =
            2 + if self.declared.is_some() { 3 } else { 0 } + if self.elidable { 3 } else { 0 };
        line.len() - (self.end - self.value_at) + markers
    }

    /// Writes the template of `line` (the line the plan was made of) to `t`.
    pub fn write(&self, line: &[u8], t: &mut Out) {
        let kind = self.kind;
        let mut from = 0;
        if let Some((start, stop)) = self.declared {
            t.bytes(line.get(..start).unwrap_or_default());
            t.bytes(&[SPAN, kind]);
            t.bytes(line.get(start..stop).unwrap_or_default());
            t.bytes(&[SPAN_END]);
            from = stop;
        }
        t.bytes(line.get(from..self.at).unwrap_or_default());
        if self.elidable {
            t.bytes(&[SPAN, kind]);
        }
        t.bytes(line.get(self.at..self.value_at).unwrap_or_default());
        t.bytes(&[HOLE, kind]);
        if self.elidable {
            t.bytes(&[SPAN_END]);
        }
        t.bytes(line.get(self.end..).unwrap_or_default());
    }
}

/// The metric a finished record's template leaves as a hole.
pub const NAME: &str = "PostResponseDuration";

/// The `PostResponseDuration` (ns) a finished record is encoded with before it becomes a
/// template: a value no record has.
pub const POST_RESPONSE_PLACEHOLDER: u64 = 987_654_321_987_654_321;

/// The first `needle` in what `t` holds from `start` on, as a position in `t`.
fn find_from(t: &Out, start: usize, needle: &[u8]) -> Option<usize> {
    Some(start + find(t.written().get(start..)?, needle)?)
}

/// Writes `s` JSON-escaped (as the encoder writes strings) at the start of `dst`; its length, or
/// `None` when it does not fit.
fn escape_into(dst: &mut [u8], s: &[u8]) -> Option<usize> {
    let mut n = 0;
    crate::json::escape_json(s, |piece| {
        dst.get_mut(n..n + piece.len())?.copy_from_slice(piece);
        n += piece.len();
        Some(())
    })?;
    Some(n)
}

/// Turns the encoder's line for an ending record made with the placeholders
/// ([`REQUEST_ID_PLACEHOLDER`], [`TRACE_ID_PLACEHOLDER`], [`REQUEST_BYTES_PLACEHOLDER`]) into
/// a template every invoke of the same shape can share, written to `t`: [`prepare`]'s holes,
/// plus holes for the request id, the trace id (its member a span) and the request bytes,
/// filled from what [`Journal::begin_with`] stores beside it.
pub fn shared_template(line: &[u8], t: &mut Out) -> bool {
    let start = t.len();
    if !prepare(line, t) {
        return false;
    }
    shared_in_place(t, start).is_some() && !t.overflowed()
}

fn shared_in_place(t: &mut Out, start: usize) -> Option<()> {
    let mut buf = [0u8; 64];
    let id_member = joined(
        &mut buf,
        &[
            b",\"requestId\":\"",
            REQUEST_ID_PLACEHOLDER.as_bytes(),
            b"\"",
        ],
    );
    let id_len = id_member.len();
    let at = find_from(t, start, id_member)?;
    let value = at + id_len - 1 - REQUEST_ID_PLACEHOLDER.len();
    t.splice(
        value,
        REQUEST_ID_PLACEHOLDER.len(),
        &[HOLE, hole::REQUEST_ID],
    );
    let mut buf = [0u8; 64];
    let trace_member = joined(
        &mut buf,
        &[b",\"traceId\":\"", TRACE_ID_PLACEHOLDER.as_bytes(), b"\""],
    );
    let trace_len = trace_member.len();
    if let Some(at) = find_from(t, start, trace_member) {
        let value = at + trace_len - 1 - TRACE_ID_PLACEHOLDER.len();
        t.splice(value, TRACE_ID_PLACEHOLDER.len(), &[HOLE, hole::TRACE_ID]);
        // The member is `,"traceId":"` hole `"`: a span, gone when there is no trace id.
        let end = at + trace_len - TRACE_ID_PLACEHOLDER.len() + 2;
        wrap_span(t, at, end, hole::TRACE_ID);
    }
    let bytes_member = b",\"RequestBytes\":";
    if let Some(at) = find_from(t, start, bytes_member) {
        let mut digits = [0u8; 24];
        let placeholder = crate::metrics::Number::int(REQUEST_BYTES_PLACEHOLDER).text();
        let digits = {
            let d = placeholder.as_bytes();
            if let Some(dst) = digits.get_mut(..d.len()) {
                dst.copy_from_slice(d);
            }
            digits.get(..d.len()).unwrap_or_default()
        };
        let from = at + bytes_member.len();
        if t.written().get(from..from + digits.len()) == Some(digits) {
            replace_number(t, from, hole::REQUEST_BYTES)?;
        }
    }
    Some(())
}

/// `parts` one after the other in `buf` (the metric names are short: the buffer holds them).
fn joined<'a, const N: usize>(buf: &'a mut [u8; N], parts: &[&[u8]]) -> &'a [u8] {
    let mut len = 0;
    for p in parts {
        if let Some(dst) = buf.get_mut(len..len + p.len()) {
            dst.copy_from_slice(p);
            len += p.len();
        }
    }
    buf.get(..len).unwrap_or_default()
}

/// The first occurrence of `needle` in `hay`. Runs on every finished record: candidates are
/// found eight bytes at a step by the needle's first upper-case byte (rare in a record, unlike
/// its punctuation), and only they are compared.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let anchor = needle.iter().position(u8::is_ascii_uppercase).unwrap_or(0);
    let key = *needle.get(anchor)?;
    let last_start = hay.len().checked_sub(needle.len())?;
    let mut from = anchor;
    while from <= last_start + anchor {
        let at = from + crate::text::find_byte(key, hay.get(from..=last_start + anchor)?)? - anchor;
        if hay.get(at..at + needle.len()) == Some(needle) {
            return Some(at);
        }
        from = at + anchor + 1;
    }
    None
}

/// Replaces the JSON number starting at `at` with hole `kind`.
fn replace_number(t: &mut Out, at: usize, kind: u8) -> Option<()> {
    let len =
        t.written().get(at..)?.iter().position(|b| {
            !(b.is_ascii_digit() || matches!(*b, b'.' | b'-' | b'e' | b'E' | b'+'))
        })?;
    if len == 0 {
        return None;
    }
    t.splice(at, len, &[HOLE, kind]);
    Some(())
}

/// Encloses `t[start..end]` in a span of `kind`.
fn wrap_span(t: &mut Out, start: usize, end: usize, kind: u8) {
    t.insert(end, &[SPAN_END]);
    t.insert(start, &[SPAN, kind]);
}

/// Whether the metric declaration at `at` has a neighbour, so that leaving it out (with one
/// comma) keeps a non-empty, valid `Metrics` array.
fn declaration_can_go(t: &[u8], at: usize) -> bool {
    let before = at.checked_sub(1).and_then(|i| t.get(i)).copied();
    let end = t.get(at..).and_then(|r| r.iter().position(|b| *b == b'}'));
    let after = end.and_then(|e| t.get(at + e + 1)).copied();
    before == Some(b',') || after == Some(b',')
}

/// Encloses the declaration object at `at` and one adjacent comma in a span of `kind`.
fn wrap_declaration(t: &mut Out, at: usize, kind: u8) -> Option<()> {
    let (start, end) = declaration_bounds(t.written(), at)?;
    wrap_span(t, start, end, kind);
    Some(())
}

/// Where the declaration object at `at` and one adjacent comma start and end.
fn declaration_bounds(t: &[u8], at: usize) -> Option<(usize, usize)> {
    let close = at + t.get(at..)?.iter().position(|b| *b == b'}')?;
    Some(if at > 0 && t.get(at - 1) == Some(&b',') {
        (at - 1, close + 1)
    } else {
        (at, close + 2) // the comma after it
    })
}

/// The longest journal path (with its NUL).
pub const PATH_MAX_LEN: usize = 4096;

/// A journal file's path, NUL-terminated, named without allocating.
pub struct JournalPath {
    bytes: [u8; PATH_MAX_LEN],
    len: usize,
}

impl JournalPath {
    /// The journal's file for log stream `stream`, `function_name` and `runtime_api` in `tmp`
    /// (the temporary directory as `std::env::temp_dir` names it, joined as a `PathBuf`
    /// joins). `None` when the path holds a NUL byte or is too long.
    pub fn new(tmp: &[u8], stream: &str, function_name: &str, runtime_api: &str) -> Option<Self> {
        let key = environment_key(&[stream, function_name, runtime_api]);
        let mut path = JournalPath {
            bytes: [0; PATH_MAX_LEN],
            len: 0,
        };
        let separator: &[u8] = if tmp.is_empty() || tmp.ends_with(b"/") {
            b""
        } else {
            b"/"
        };
        let mut hex = [0u8; 16];
        for (i, digit) in hex.iter_mut().enumerate() {
            let nibble = (key >> (60 - 4 * i)) & 0xf;
            *digit = b"0123456789abcdef"
                .get(nibble as usize)
                .copied()
                .unwrap_or(b'0');
        }
        for part in [tmp, separator, b".lambda-meter-journal-", &hex, b"\0"] {
            let end = path.len + part.len();
            path.bytes.get_mut(path.len..end)?.copy_from_slice(part);
            path.len = end;
        }
        (!tmp.contains(&0)).then_some(path)
    }

    /// The path with its NUL.
    pub fn with_nul(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

/// Hashes the facts that name one execution environment (FNV-1a), for the journal's file name:
/// its log stream is the environment's own and survives a runtime restart.
pub fn environment_key(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// A formatted journal in leaked memory, and that memory (for tests).
#[cfg(test)]
pub fn in_memory() -> (Journal, &'static mut [u64]) {
    let words = Box::leak(vec![0u64; FILE_SIZE / 8].into_boxed_slice());
    // SAFETY: a leaked, 8-byte aligned buffer of FILE_SIZE bytes, mapped for ever.
    let journal = unsafe { Journal::from_raw(words.as_mut_ptr().cast()) };
    journal.format();
    (journal, words)
}

/// A journal over a leaked copy of `words` (a journal's memory): what another process would
/// find after this one ended (for tests).
#[cfg(test)]
pub fn copy_of(words: &[u64]) -> Journal {
    let copy = Box::leak(words.to_vec().into_boxed_slice());
    // SAFETY: a leaked, 8-byte aligned copy of a journal's FILE_SIZE bytes.
    unsafe { Journal::from_raw(copy.as_mut_ptr().cast()) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    /// [`prepare`] into a buffer of its own.
    fn prepared(line: &str) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 1 << 16];
        let mut out = Out::new(&mut buf);
        prepare(line.as_bytes(), &mut out).then(|| out.written().to_vec())
    }
    use serde_json::Value;

    #[test]
    fn escape_into_writes_what_serde_json_writes() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é€😀\u{2028}");
        for text in [
            all.as_str(),
            "",
            "8f4e2a1c-0b6d",
            "Root=1-5759e988;Sampled=1",
            "\"\\",
        ] {
            let lit = serde_json::to_string(text).unwrap();
            let mut dst = [0u8; 1024];
            let n = escape_into(&mut dst, text.as_bytes()).unwrap();
            assert_eq!(&dst[..n], &lit.as_bytes()[1..lit.len() - 1]);
        }
        let mut small = [0u8; 4];
        assert_eq!(escape_into(&mut small, b"\"\"\""), None, "does not fit");
        assert_eq!(escape_into(&mut small, b"abcd"), Some(4));
    }

    #[test]
    fn find_agrees_with_a_naive_search() {
        let naive = |h: &[u8], n: &[u8]| {
            if n.is_empty() {
                return None;
            }
            h.windows(n.len()).position(|w| w == n)
        };
        let hay = b"aab,\"Duration\":1,\"Duration\":2 aaab";
        for needle in [
            &b"a"[..],
            b"ab",
            b"aab",
            b"aaab",
            b",\"Duration\":",
            b"b",
            b"x",
            b"",
            hay,
            b"aab,\"Duration\":1,\"Duration\":2 aaabX",
        ] {
            assert_eq!(find(hay, needle), naive(hay, needle), "{needle:?}");
        }
        assert_eq!(find(b"", b"a"), None);
    }

    fn memory() -> Journal {
        in_memory().0
    }

    const LINE: &str = concat!(
        r#"{"_aws":{"Timestamp":1700000000123,"CloudWatchMetrics":[{"Namespace":"LambdaMeter","Dimensions":[["FunctionName"]],"Metrics":["#,
        r#"{"Name":"Duration","Unit":"Milliseconds"},{"Name":"Errors","Unit":"Count"},{"Name":"MaxMemoryUsed","Unit":"Megabytes"},"#,
        r#"{"Name":"MemoryUtilization","Unit":"Percent"},{"Name":"CpuTime","Unit":"Milliseconds"}]}]},"#,
        r#""FunctionName":"f,\"Duration\":1","Duration":0,"Errors":1,"MaxMemoryUsed":20,"MemoryUtilization":15.63,"CpuTime":0,"#,
        r#""requestId":"r1","errorType":"Runtime.ExitError"}"#,
        "\n"
    );

    fn rendered(template: &[u8], v: &Values) -> String {
        let mut out = Vec::new();
        assert!(render(template, v, &mut |parts| {
            for p in parts {
                out.extend_from_slice(p);
            }
        }));
        String::from_utf8(out).unwrap()
    }

    fn values(duration: Option<u64>, cpu: Option<u64>) -> Values<'static> {
        Values {
            wall_ms: 1_800_000_000_000,
            duration_ns: duration,
            post_response_ns: None,
            cpu_ns: cpu,
            max_rss_kb: 40 * 1024 + 1,
            memory_size_mb: 128,
            reason: b"signal: aborted",
            request_id: b"",
            trace_id: None,
            request_bytes: 0,
        }
    }

    #[test]
    fn a_journal_made_again_takes_over_its_process_s_slots_at_their_numbers() {
        let old = memory();
        let (me, other) = (
            Owner {
                pid: 41,
                start_ticks: 5,
            },
            Owner {
                pid: 42,
                start_ticks: 6,
            },
        );
        let line = b"{\"_aws\":{\"Timestamp\":1},\"requestId\":\"held\"}\n";
        let theirs = old.hold(other, line, 0).unwrap();
        let mine = old.hold(me, line, 0).unwrap();
        let kept = old.hold(me, line, 0).unwrap();
        old.note_stream_has_constants();
        // Another process made the new file first and took the slot of `kept` there.
        let new = memory();
        for _ in 0..=kept {
            new.hold(other, line, 0).unwrap();
        }
        for i in 0..kept {
            new.release(i, other.pid);
        }
        assert_eq!(new.adopt(&old, me.pid), 1, "one slot was taken here");
        assert!(new.stream_has_constants());
        // Mine is at its number, whole; theirs was not copied.
        let ending = Ending::default();
        let mut out = Vec::new();
        assert_eq!(
            new.write_open(me.pid, &ending, &mut |p| out.push(p.concat())),
            1
        );
        assert_eq!(out, vec![line.to_vec()]);
        let mut theirs_out = Vec::new();
        new.write_open(other.pid, &ending, &mut |p| theirs_out.push(p.concat()));
        assert_eq!(theirs_out.len(), 1, "only the slot it took itself");
        assert!(mine != theirs && mine < kept);
        // The old mapping is untouched (an ending writing from it finishes there).
        assert_eq!(old.free_count(), SLOT_COUNT - 3);
    }

    /// A held record's line (no holes).
    const HELD_LINE: &[u8] = b"{\"_aws\":{\"Timestamp\":1},\"requestId\":\"held\"}\n";

    /// Readings of a process ending by SIGTERM.
    fn terminated() -> Ending<'static> {
        Ending {
            wall_ms: 2,
            mono_ns: Some(3),
            cpu_ns: Some(4),
            max_rss_kb: Some(5),
            reason: b"signal: terminated",
        }
    }

    #[test]
    fn held_records_are_written_as_they_are_by_their_process_or_its_successor() {
        let j = memory();
        let me = Owner {
            pid: 41,
            start_ticks: 5,
        };
        let line = HELD_LINE;
        type Writer<'a> = &'a dyn Fn(&Journal, &mut dyn FnMut(&[&[u8]])) -> usize;
        let collect = |j: &Journal, f: Writer| {
            let mut out = Vec::new();
            let n = f(j, &mut |parts| out.push(parts.concat()));
            (n, out)
        };
        let free = j.free_count();
        let a = j.hold(me, line, 0).unwrap();
        let b = j.hold(me, line, 0).unwrap();
        assert_eq!(j.free_count(), free - 2);
        assert_eq!(j.open_count(), 0, "held is not open");
        // Released when its batch went out: nothing to write for it.
        j.release(a, me.pid);
        j.release(b, 999);
        let ending = terminated();
        let (n, out) = collect(&j, &|j, emit| j.write_open(me.pid, &ending, emit));
        assert_eq!(n, 1, "another pid cannot release it");
        assert_eq!(out, vec![line.to_vec()], "as it is: no exit reason");
        // A process that vanished: its successor writes what it held.
        j.hold(me, line, 0).unwrap();
        let (n, out) = collect(&j, &|j, emit| j.recover(&|_| false, &ending, emit));
        assert_eq!((n, out.len()), (1, 1));
        assert_eq!(j.free_count(), free);
        // A line with the journal's markers is refused.
        assert!(j.hold(me, b"{\x01T}", 0).is_none());
    }

    #[test]
    fn the_environments_root_writes_what_the_others_hold_once_and_leaves_open_invokes() {
        let j = memory();
        let worker = Owner {
            pid: 42,
            start_ticks: 6,
        };
        let line = HELD_LINE;
        let ending = terminated();
        let free = j.free_count();
        let held = j.hold(worker, line, 0).unwrap();
        assert!(j.hold_more(held, worker.pid, line), "two lines in one slot");
        assert_eq!(
            j.hold(worker, line, 1 << held),
            Some(held + 1),
            "skips {held}"
        );
        j.release(held + 1, worker.pid);
        let t = prepared(LINE).unwrap();
        let start = Probe {
            mono_ns: 1,
            ..Probe::default()
        };
        let open = j.begin(worker, &start, 128, &t).unwrap();
        let mut out = Vec::new();
        let n = j.write_environment(&ending, &mut |parts| out.push(parts.concat()));
        assert_eq!(n, 1);
        assert_eq!(out, vec![[line, line].concat()]);
        assert_eq!(j.open_count(), 1, "the open invoke is its process's");
        // The worker finds its slot taken: its batch leaves those records out; nothing is
        // appended to it any more.
        assert!(!j.release(held, worker.pid));
        assert!(!j.hold_more(held, worker.pid, line));
        let mut again = Vec::new();
        j.write_environment(&ending, &mut |parts| again.push(parts.concat()));
        assert!(again.is_empty(), "once");
        j.end(open, worker.pid);
        assert_eq!(j.free_count(), free);
    }

    #[test]
    fn a_finished_template_is_the_line_with_its_post_response_duration_a_hole() {
        let digits = crate::metrics::ms(POST_RESPONSE_PLACEHOLDER).text();
        let v = std::str::from_utf8(digits.as_bytes()).unwrap().to_string();
        let v = v.as_str();
        let kind = crate::metrics::find("PostResponseDuration")
            .and_then(Metric::hole)
            .unwrap();
        let decl = |n: &str| format!("{{\"Name\":\"{n}\",\"Unit\":\"Milliseconds\"}}");
        let lines = [
            // Declared among others, first, last; declared alone; not declared.
            format!(
                "{{\"_aws\":{{\"CloudWatchMetrics\":[{{\"Metrics\":[{},{}]}}]}},\"Duration\":1,\"PostResponseDuration\":{v},\"requestId\":\"a\"}}\n",
                decl("Duration"),
                decl("PostResponseDuration")
            ),
            format!(
                "{{\"_aws\":{{\"CloudWatchMetrics\":[{{\"Metrics\":[{},{}]}}]}},\"PostResponseDuration\":{v},\"Duration\":1}}\n",
                decl("PostResponseDuration"),
                decl("Duration")
            ),
            format!(
                "{{\"_aws\":{{\"CloudWatchMetrics\":[{{\"Metrics\":[{}]}}]}},\"Duration\":1,\"PostResponseDuration\":{v}}}\n",
                decl("PostResponseDuration")
            ),
            format!("{{\"_aws\":{{}},\"Duration\":1,\"PostResponseDuration\":{v},\"x\":2}}\n"),
        ];
        for line in &lines {
            let mut one = vec![0u8; 4096];
            let mut t = Out::new(&mut one);
            let value = finished_template(line.as_bytes(), None, &mut t).unwrap();
            assert_eq!(
                &line[value.0..value.1],
                v,
                "the placeholder's digits: {line}"
            );
            let fast = t.written().to_vec();
            // Written in place of exactly the length its plan says, into a journal's slot.
            let plan = FinishedPlan::of(line.as_bytes(), None).unwrap();
            assert_eq!(plan.len(line.as_bytes()), fast.len(), "{line}");
            let (j, _words) = in_memory();
            let me = Owner {
                pid: 7,
                start_ticks: 0,
            };
            let slot = j.begin(me, &Probe::default(), 128, b"{}\n").unwrap();
            let write = |dst: &mut [u8]| plan.write(line.as_bytes(), &mut Out::new(dst));
            assert!(j.finish_with(slot, 7, plan.len(line.as_bytes()), 0, write));
            assert_eq!(j.template(slot).0, &fast[..], "{line}");
            // What the general edits make of it.
            let mut buf = vec![0u8; 4096];
            let mut r = Out::new(&mut buf);
            r.bytes(line.as_bytes());
            let at = find_from(&r, 0, b",\"PostResponseDuration\":").unwrap();
            hole_for_member(&mut r, 0, at, "PostResponseDuration", kind, true).unwrap();
            assert_eq!(fast, r.written(), "{line}");
            // Rendered: the value, or (unknown) no member and no declaration where it can go.
            let known = rendered(
                &fast,
                &Values {
                    post_response_ns: Some(2_000_000),
                    ..Values::default()
                },
            );
            assert_eq!(known, line.replace(v, "2"));
            // What write_finished_line makes of the line and the digits' place.
            assert_eq!(known, format!("{}2{}", &line[..value.0], &line[value.1..]));
            let unknown = rendered(&fast, &Values::default());
            serde_json::from_str::<serde_json::Value>(&unknown).unwrap();
        }
        let mut buf = vec![0u8; 4096];
        assert!(finished_template(b"{\"Duration\":1}\n", None, &mut Out::new(&mut buf)).is_none());
    }

    #[test]
    fn a_journal_path_named_without_allocating_is_the_one_a_path_join_names() {
        for tmp in ["/tmp", "/tmp/", "", "/a//", "relative/dir", "/tmp/ü"] {
            let named = JournalPath::new(
                tmp.as_bytes(),
                "2026/12/05/[$LATEST]ab",
                "orders",
                "127.0.0.1:9001",
            )
            .unwrap();
            let key = environment_key(&["2026/12/05/[$LATEST]ab", "orders", "127.0.0.1:9001"]);
            let joined =
                std::path::PathBuf::from(tmp).join(format!(".lambda-meter-journal-{key:016x}"));
            let mut want = joined.into_os_string().into_encoded_bytes();
            want.push(0);
            assert_eq!(named.with_nul(), want.as_slice(), "{tmp:?}");
        }
        assert!(JournalPath::new(b"/t\0mp", "", "unknown", "").is_none());
        assert!(JournalPath::new(&[b'a'; PATH_MAX_LEN], "", "unknown", "").is_none());
    }

    #[test]
    fn prepared_record_fills_every_hole() {
        let t = prepared(LINE).unwrap();
        let text = rendered(&t, &values(Some(12_345_678), Some(2_000_000)));
        assert!(text.ends_with("}\n"), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_800_000_000_000u64);
        assert_eq!(v["Duration"], 12.346);
        assert_eq!(v["CpuTime"], 2.0);
        assert_eq!(v["MaxMemoryUsed"], 41.0);
        assert_eq!(v["MemoryUtilization"], 32.03);
        assert_eq!(v["exitReason"], "signal: aborted");
        assert_eq!(v["errorType"], "Runtime.ExitError");
        // A value that merely looks like a member is left alone.
        assert_eq!(v["FunctionName"], "f,\"Duration\":1");
    }

    #[test]
    fn unknown_values_leave_their_metric_out() {
        let t = prepared(LINE).unwrap();
        let text = rendered(&t, &values(None, None));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(
            v.get("Duration").is_none() && v.get("CpuTime").is_none(),
            "{text}"
        );
        let names: Vec<&str> = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Errors", "MaxMemoryUsed", "MemoryUtilization"]);
    }

    #[test]
    fn a_sole_metric_is_never_left_out() {
        let line = r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[[]],"Metrics":[{"Name":"Duration","Unit":"Milliseconds"}]}]},"Duration":3}"#;
        let t = prepared(line).unwrap();
        let v: Value = serde_json::from_str(&rendered(&t, &values(None, None))).unwrap();
        assert_eq!(v["Duration"], 0.0);
    }

    #[test]
    fn an_unknown_memory_size_still_renders_valid_json() {
        let t = prepared(LINE).unwrap();
        let v = Values {
            memory_size_mb: 0,
            ..values(Some(1), Some(1))
        };
        let parsed: Value = serde_json::from_str(&rendered(&t, &v)).unwrap();
        assert_eq!(parsed["MemoryUtilization"], 0.0);
    }

    #[test]
    fn slots_are_written_once_by_their_owner() {
        let j = memory();
        let t = prepared(LINE).unwrap();
        let me = Owner {
            pid: 10,
            start_ticks: 5,
        };
        let other = Owner {
            pid: 11,
            start_ticks: 6,
        };
        let started = Probe {
            mono_ns: 1_000_000,
            cpu_ns: 0,
            max_rss_kb: 1024,
            ..Probe::default()
        };
        let a = j.begin(me, &started, 128, &t).unwrap();
        let b = j.begin(me, &started, 128, &t).unwrap();
        let _c = j.begin(other, &started, 128, &t).unwrap();
        assert_ne!(a, b);
        j.end(b, me.pid);
        j.end(a, other.pid); // not its slot: stays open
        assert_eq!(j.open_count(), 2);
        let ending = Ending {
            wall_ms: 9,
            mono_ns: Some(4_000_000),
            cpu_ns: Some(1_000_000),
            max_rss_kb: Some(2048),
            reason: b"exit status 3",
        };
        let mut lines = Vec::new();
        let n = j.write_open(me.pid, &ending, &mut |parts| lines.push(parts.concat()));
        assert_eq!(n, 1);
        let v: Value = serde_json::from_slice(&lines[0]).unwrap();
        assert_eq!(v["Duration"], 3.0);
        assert_eq!(v["CpuTime"], 1.0);
        assert_eq!(v["exitReason"], "exit status 3");
        assert_eq!(j.write_open(me.pid, &ending, &mut |_| panic!("twice")), 0);
        assert_eq!(j.open_count(), 1, "the other process's invoke stays");
    }

    /// A journal whose memory from slot 3's head on cannot be touched: a read there ends the
    /// test with a fault.
    fn fenced() -> Journal {
        let page = 4096;
        let len = FILE_SIZE.div_ceil(page) * page;
        // SAFETY: a fresh anonymous mapping; mprotect on whole pages inside it.
        let base = unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            let fence = (HEADER_SIZE + 3 * SLOT_SIZE) / page * page;
            assert!(
                fence > HEADER_SIZE + 2 * SLOT_SIZE + SLOT_HEAD,
                "slot 2 stays readable"
            );
            assert_eq!(
                libc::mprotect(
                    p.cast::<u8>().add(fence).cast(),
                    len - fence,
                    libc::PROT_NONE
                ),
                0
            );
            p.cast::<u8>()
        };
        // SAFETY: FILE_SIZE bytes, page aligned, mapped for ever (slots 3 and on fenced).
        let j = unsafe { Journal::from_raw(base) };
        j.format();
        j
    }

    #[test]
    fn scans_read_only_the_slots_ever_taken() {
        let j = fenced();
        let t = prepared(LINE).unwrap();
        let me = Owner {
            pid: 10,
            start_ticks: 5,
        };
        let gone = Owner {
            pid: 11,
            start_ticks: 6,
        };
        let started = Probe::default();
        let ending = Ending {
            reason: b"gone",
            ..Ending::default()
        };
        // Slots 0 and 1 taken, 0 given back, taken again: slot 2 is never needed.
        let a = j.begin(me, &started, 128, &t).unwrap();
        let b = j.begin(gone, &started, 128, &t).unwrap();
        j.end(a, me.pid);
        let a = j.begin(me, &started, 128, &t).unwrap();
        assert_eq!((a, b), (0, 1));
        assert_eq!(j.taken().collect::<Vec<_>>(), [0, 1]);
        assert_eq!((j.free_count(), j.open_count()), (SLOT_COUNT - 2, 2));
        let mut lines = 0;
        let n = j.recover(&|o| o != gone, &ending, &mut |_| lines += 1);
        assert_eq!((n, lines), (1, 1), "the gone owner's invoke, from slot 1");
        j.hand_on_open(me.pid);
        assert_eq!(
            j.write_open(me.pid, &ending, &mut |_| panic!("handed on")),
            0
        );
        assert_eq!(
            j.write_environment(&ending, &mut |_| panic!("nothing held")),
            0
        );
        let other = memory();
        assert_eq!(other.adopt(&j, me.pid), 0);
        assert_eq!(j.free_count(), SLOT_COUNT);
    }

    #[test]
    fn recovery_takes_only_dead_owners() {
        let j = memory();
        let t = prepared(LINE).unwrap();
        let dead = Owner {
            pid: 20,
            start_ticks: 1,
        };
        let live = Owner {
            pid: 21,
            start_ticks: 1,
        };
        let started = Probe {
            max_rss_kb: 30 * 1024,
            ..Probe::default()
        };
        j.begin(dead, &started, 128, &t).unwrap();
        j.begin(live, &started, 128, &t).unwrap();
        let ending = Ending {
            wall_ms: 1,
            reason: b"killed",
            ..Ending::default()
        };
        let mut lines = Vec::new();
        let n = j.recover(&|o| o == live, &ending, &mut |p| lines.push(p.concat()));
        assert_eq!(n, 1);
        let v: Value = serde_json::from_slice(&lines[0]).unwrap();
        assert!(v.get("Duration").is_none());
        assert_eq!(v["MaxMemoryUsed"], 30.0);
        assert_eq!(j.open_count(), 1);
        assert_eq!(j.recover(&|o| o == live, &ending, &mut |_| ()), 0);
    }

    #[test]
    fn full_journal_and_long_records_are_refused() {
        let j = memory();
        let owner = Owner {
            pid: 1,
            start_ticks: 1,
        };
        let p = Probe::default();
        assert!(
            j.begin(owner, &p, 0, &vec![b'x'; TEMPLATE_MAX + 1])
                .is_none()
        );
        for _ in 0..SLOT_COUNT {
            assert!(j.begin(owner, &p, 0, b"{}").is_some());
        }
        assert!(j.begin(owner, &p, 0, b"{}").is_none());
    }

    #[test]
    fn the_journal_s_holes_are_not_the_catalog_s() {
        for m in CATALOG {
            if let Some(h) = m.hole() {
                assert!(!hole::ALL.contains(&h), "{}", m.name);
                assert!(h.is_ascii_alphabetic(), "{}", m.name);
            }
        }
    }

    #[test]
    fn malformed_templates_render_nothing() {
        let v = values(None, None);
        let duration = crate::metrics::find("Duration").unwrap().hole().unwrap();
        assert!(!render(&[SPAN, duration], &v, &mut |_| panic!("emitted")));
        assert!(!render(&[HOLE], &v, &mut |_| panic!("emitted")));
        assert!(prepared("not a record").is_none());
    }
    /// The journal of [`taken_covers_every_slot_in_use_whatever_kills_its_processes`]'s
    /// children, for their timer's handler.
    static FORKED: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

    extern "C" fn end_now(_: libc::c_int) {
        if let Some(base) = FORKED.get() {
            // SAFETY: the child's shared journal mapping, set before its timer started.
            let j = unsafe { Journal::from_raw(*base as *mut u8) };
            j.write_open(std::process::id(), &Ending::default(), &mut |_| {});
        }
    }

    /// Processes that take, hold, finish, end and recover slots of one shared journal, whose
    /// timer's handler writes their open slots (an ending in the middle of anything), killed
    /// with SIGKILL at any moment: every slot not FREE afterwards is among the taken ones, and
    /// a successor's recovery writes exactly the slots left to write.
    #[test]
    fn taken_covers_every_slot_in_use_whatever_kills_its_processes() {
        let len = FILE_SIZE.div_ceil(4096) * 4096;
        // SAFETY: a fresh shared anonymous mapping, never unmapped.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        // SAFETY: FILE_SIZE bytes, page aligned, mapped for ever.
        let j = unsafe { Journal::from_raw(base.cast()) };
        let t = prepared(LINE).unwrap();
        for round in 0..100u64 {
            // SAFETY: the mapping's own bytes; no child runs now.
            unsafe { std::ptr::write_bytes(base.cast::<u8>(), 0, FILE_SIZE) };
            j.format();
            let mut kids = Vec::new();
            for k in 0..6u64 {
                // SAFETY: the child touches only the journal and its own timer, and is killed.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    let _ = FORKED.set(base as usize);
                    let every = libc::timeval {
                        tv_sec: 0,
                        tv_usec: 137,
                    };
                    let timer = libc::itimerval {
                        it_interval: every,
                        it_value: every,
                    };
                    // SAFETY: a plain handler, and this process's own timer.
                    unsafe {
                        libc::signal(libc::SIGALRM, end_now as *const () as usize);
                        libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut());
                    }
                    let me = std::process::id();
                    let owner = Owner {
                        pid: me,
                        start_ticks: 1,
                    };
                    let alive = |o: Owner| {
                        // SAFETY: signal 0 only asks whether the process exists.
                        o.pid != 0 && unsafe { libc::kill(o.pid as i32, 0) } == 0
                    };
                    let mut x = round * 31 + k;
                    loop {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        match (x >> 33) % 4 {
                            0 => {
                                if let Some(s) = j.begin(owner, &Probe::default(), 128, &t)
                                    && x & 1 == 0
                                {
                                    j.end(s, me);
                                }
                            }
                            1 => {
                                if let Some(s) = j.hold(owner, b"{\"a\":1}\n", 0) {
                                    j.hold_more(s, me, b"{\"b\":2}\n");
                                    if x & 2 == 0 {
                                        j.release(s, me);
                                    }
                                }
                            }
                            2 => {
                                if let Some(s) = j.begin(owner, &Probe::default(), 128, &t) {
                                    j.finish(s, me, b"{\"c\":3}\n", 0);
                                }
                            }
                            _ => {
                                j.recover(&alive, &Ending::default(), &mut |_| {});
                            }
                        }
                    }
                }
                kids.push(pid);
            }
            std::thread::sleep(std::time::Duration::from_micros(200 + (round % 13) * 300));
            for pid in &kids {
                // SAFETY: our own children.
                unsafe {
                    libc::kill(*pid, libc::SIGKILL);
                    libc::waitpid(*pid, std::ptr::null_mut(), 0);
                }
            }
            let bits = j.header_u32(TAKEN).load(Ordering::Acquire);
            let mut own = 0;
            for i in 0..SLOT_COUNT {
                let s = j.u32_at(i, STATE).load(Ordering::Acquire);
                assert!(
                    s == FREE || bits & (1 << i) != 0,
                    "round {round}: slot {i} in state {s}, taken {bits:#x}"
                );
                own += usize::from(OWN.contains(&s));
            }
            let n = j.recover(&|_| false, &Ending::default(), &mut |_| {});
            assert_eq!(n, own, "round {round}");
            assert_eq!(j.free_count(), SLOT_COUNT);
        }
    }
}
