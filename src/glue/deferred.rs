//! Work on tracked fds that happens where the engine cannot be entered — while another thread
//! holds it, inside a signal handler that interrupted this thread's own entry, or inside the
//! host's `pthread_atfork` handlers during a fork — kept without a lock or an allocation, and
//! replayed in order, each at the time it was seen, before the holder leaves.
//!
//! A fixed set of entries, each holding one fd's bytes in one direction, or a close. Bytes that
//! follow the newest entry's, for the same fd and direction, are appended to it (a handler that
//! writes a request a byte at a time takes one entry).
//!
//! A holder the scheduler put aside for a few milliseconds (a throttled cgroup, a busy machine)
//! can see another thread move megabytes meanwhile: a large event or result. Those bytes are
//! counted, not kept, once their run has filled its entries and few are left for the other
//! connections: the newest entry notes how many bytes followed it unkept, and the replay lets
//! the engine count them where they are body bytes it reads past (else it stops following the
//! connection). When bytes can be neither kept nor counted (no free entry, and the newest is
//! another connection's), the caller stops following the fd instead.

use std::cell::UnsafeCell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU64, AtomicUsize, Ordering};

/// How many entries there are, and how many bytes each holds.
const ENTRIES: usize = 32;
const ENTRY_BYTES: usize = 4096;
/// A run of one fd's bytes in one direction takes a further entry only while more than this
/// many are free; past that its bytes are counted on its newest entry (see the module
/// documentation), so that the other connections' requests still find room.
const KEPT_FOR_OTHERS: usize = 8;

const FREE: u8 = 0;
/// One party owns the entry: a handler filling it, or the engine replaying it.
const BUSY: u8 = 1;
const READY: u8 = 2;

const SENT: u8 = 0;
const RECEIVED: u8 = 1;
const CLOSED: u8 = 2;
const CONNECTED: u8 = 3;
const DUPLICATED: u8 = 4;

/// One kept piece of work, as replayed.
#[derive(Debug, PartialEq, Eq)]
pub enum Op<'a> {
    Sent(i32, &'a [u8]),
    Received(i32, &'a [u8]),
    Closed(i32),
    /// The fd was connected to this address (`None`: the connect failed).
    Connected(i32, Option<SocketAddr>),
    /// The second fd became a copy of the first.
    Duplicated(i32, i32),
    /// This many bytes moved on the fd (`sent`: written, else read) right after the op before
    /// (its bytes), and were not kept.
    Skipped {
        fd: i32,
        sent: bool,
        n: u64,
    },
}

/// An address in 19 bytes: family (4 or 6, 0 for none), port, 16 address bytes.
fn encode_addr(addr: Option<SocketAddr>) -> [u8; 19] {
    let mut b = [0u8; 19];
    match addr {
        Some(SocketAddr::V4(a)) => {
            b[0] = 4;
            b[1..3].copy_from_slice(&a.port().to_be_bytes());
            b[3..7].copy_from_slice(&a.ip().octets());
        }
        Some(SocketAddr::V6(a)) => {
            b[0] = 6;
            b[1..3].copy_from_slice(&a.port().to_be_bytes());
            b[3..19].copy_from_slice(&a.ip().octets());
        }
        None => {}
    }
    b
}

fn decode_addr(b: &[u8]) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([*b.get(1)?, *b.get(2)?]);
    match b.first()? {
        4 => {
            let ip: [u8; 4] = b.get(3..7)?.try_into().ok()?;
            Some(SocketAddr::new(ip.into(), port))
        }
        6 => {
            let ip: [u8; 16] = b.get(3..19)?.try_into().ok()?;
            Some(SocketAddr::new(ip.into(), port))
        }
        _ => None,
    }
}

struct Entry {
    state: AtomicU8,
    kind: AtomicU8,
    fd: AtomicI32,
    seq: AtomicU64,
    /// When its first bytes moved (monotonic ns): the time they are replayed at.
    at: AtomicU64,
    len: AtomicUsize,
    /// How many bytes moved after its own, in the same direction, without being kept; and when
    /// the last of them moved.
    skipped: AtomicU64,
    skipped_at: AtomicU64,
    data: UnsafeCell<[u8; ENTRY_BYTES]>,
}

impl Entry {
    const fn new() -> Entry {
        Entry {
            state: AtomicU8::new(FREE),
            kind: AtomicU8::new(SENT),
            // Read only once the entry is claimed (READY): every initial value here is zero,
            // so a static `Deferred` lives in `.bss` (see `crate::process::KEPT`).
            fd: AtomicI32::new(0),
            seq: AtomicU64::new(0),
            at: AtomicU64::new(0),
            len: AtomicUsize::new(0),
            skipped: AtomicU64::new(0),
            skipped_at: AtomicU64::new(0),
            data: UnsafeCell::new([0; ENTRY_BYTES]),
        }
    }

    /// Appends `bytes` (the entry is owned: BUSY). Returns how many fitted.
    fn append(&self, bytes: &[u8]) -> usize {
        let len = self.len.load(Ordering::Relaxed).min(ENTRY_BYTES);
        let n = bytes.len().min(ENTRY_BYTES - len);
        // SAFETY: the caller owns the entry (state BUSY), so no one else touches `data`; the
        // copy stays inside the array (len + n <= ENTRY_BYTES).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data.get().cast::<u8>().add(len), n);
        }
        self.len.store(len + n, Ordering::Relaxed);
        n
    }
}

/// See the module documentation.
pub struct Deferred {
    entries: [Entry; ENTRIES],
    seq: AtomicU64,
    /// The entry written last (where bytes may be appended).
    newest: AtomicUsize,
    pending: AtomicBool,
}

// SAFETY: every entry's data is touched only by the one party that moved its state to BUSY.
unsafe impl Sync for Deferred {}

impl Default for Deferred {
    fn default() -> Self {
        Self::new()
    }
}

impl Deferred {
    pub const fn new() -> Deferred {
        Deferred {
            entries: [const { Entry::new() }; ENTRIES],
            seq: AtomicU64::new(0),
            // Entry 0 before any was claimed: it is FREE, so nothing is appended to it.
            newest: AtomicUsize::new(0),
            pending: AtomicBool::new(false),
        }
    }

    /// Whether anything waits to be replayed (one relaxed load).
    pub fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Relaxed)
    }

    /// Keeps bytes the host wrote to `fd` at `at` (monotonic ns). False when they did not all
    /// fit.
    pub fn sent(&self, fd: i32, bytes: &[u8], at: u64) -> bool {
        self.keep(SENT, fd, bytes, at)
    }

    /// Keeps bytes the host read from `fd` at `at`. False when they did not all fit.
    pub fn received(&self, fd: i32, bytes: &[u8], at: u64) -> bool {
        self.keep(RECEIVED, fd, bytes, at)
    }

    /// Keeps the close of `fd`. False when there was no room.
    pub fn closed(&self, fd: i32) -> bool {
        self.keep_one(CLOSED, fd, &[])
    }

    /// Keeps the connect of `fd` to `addr`. False when there was no room.
    pub fn connected(&self, fd: i32, addr: Option<SocketAddr>) -> bool {
        self.keep_one(CONNECTED, fd, &encode_addr(addr))
    }

    /// Keeps that `new_fd` became a copy of `old_fd`. False when there was no room.
    pub fn duplicated(&self, old_fd: i32, new_fd: i32) -> bool {
        self.keep_one(DUPLICATED, old_fd, &new_fd.to_le_bytes())
    }

    /// One entry of its own for `kind` on `fd`, holding `data`.
    fn keep_one(&self, kind: u8, fd: i32, data: &[u8]) -> bool {
        match self.claim(kind, fd, 0) {
            Some(e) => {
                e.append(data);
                self.publish(e);
                true
            }
            None => false,
        }
    }

    fn keep(&self, kind: u8, fd: i32, mut bytes: &[u8], at: u64) -> bool {
        if bytes.is_empty() {
            if kind != RECEIVED {
                return true;
            }
            // An end of stream: an entry of its own, with no bytes.
            return match self.claim(kind, fd, at) {
                Some(e) => {
                    self.publish(e);
                    true
                }
                None => false,
            };
        }
        // Append to the newest entry when it is this fd's, in this direction (and nothing
        // unkept follows its bytes).
        let mut run = false;
        if let Some(e) = self.newest_of(kind, fd) {
            run = true;
            if e.skipped.load(Ordering::Relaxed) == 0 {
                let n = e.append(bytes);
                bytes = bytes.get(n..).unwrap_or_default();
            }
            // Ready again, and pending again: a replay may have started since it was claimed.
            self.publish(e);
        }
        while !bytes.is_empty() {
            let claimed = if run && self.free_entries() <= KEPT_FOR_OTHERS {
                None
            } else {
                self.claim(kind, fd, at)
            };
            let Some(e) = claimed else {
                return self.skip(kind, fd, bytes.len(), at);
            };
            run = true;
            let n = e.append(bytes);
            bytes = bytes.get(n..).unwrap_or_default();
            self.publish(e);
        }
        true
    }

    /// The newest entry, owned (BUSY), where it holds bytes of `fd` in `kind`'s direction.
    fn newest_of(&self, kind: u8, fd: i32) -> Option<&Entry> {
        let e = self.entries.get(self.newest.load(Ordering::Acquire))?;
        e.state
            .compare_exchange(READY, BUSY, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        if e.kind.load(Ordering::Relaxed) == kind
            && e.fd.load(Ordering::Relaxed) == fd
            && e.len.load(Ordering::Relaxed) > 0
        {
            return Some(e);
        }
        self.publish(e);
        None
    }

    /// Counts `n` bytes of `fd` in `kind`'s direction that moved at `at` on the newest entry,
    /// unkept; false where the newest entry is not one of theirs.
    fn skip(&self, kind: u8, fd: i32, n: usize, at: u64) -> bool {
        let Some(e) = self.newest_of(kind, fd) else {
            return false;
        };
        e.skipped.fetch_add(n as u64, Ordering::Relaxed);
        e.skipped_at.store(at, Ordering::Relaxed);
        self.publish(e);
        true
    }

    /// How many entries are free now.
    fn free_entries(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.state.load(Ordering::Relaxed) == FREE)
            .count()
    }

    /// Takes a free entry for `kind` on `fd` (state BUSY, empty), stamped `at`.
    fn claim(&self, kind: u8, fd: i32, at: u64) -> Option<&Entry> {
        let (i, e) = self.entries.iter().enumerate().find(|(_, e)| {
            e.state
                .compare_exchange(FREE, BUSY, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })?;
        e.kind.store(kind, Ordering::Relaxed);
        e.fd.store(fd, Ordering::Relaxed);
        e.at.store(at, Ordering::Relaxed);
        e.len.store(0, Ordering::Relaxed);
        e.skipped.store(0, Ordering::Relaxed);
        e.seq
            .store(self.seq.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        self.newest.store(i, Ordering::Release);
        Some(e)
    }

    fn publish(&self, e: &Entry) {
        e.state.store(READY, Ordering::Release);
        self.pending.store(true, Ordering::Release);
    }

    /// Replays every ready entry, oldest first, with when it was seen, and frees it. An entry a
    /// handler is filling right now stays for the next time.
    pub fn drain(&self, replay: &mut dyn FnMut(Op, u64)) {
        // Read before it is taken: nothing pending writes nothing (a forked child that clears
        // its copy dirties no page of it).
        if !self.pending.load(Ordering::Relaxed) || !self.pending.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut taken = [usize::MAX; ENTRIES];
        let mut count = 0;
        for (i, e) in self.entries.iter().enumerate() {
            if e.state
                .compare_exchange(READY, BUSY, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
                && let Some(slot) = taken.get_mut(count)
            {
                *slot = i;
                count += 1;
            }
        }
        let order = taken.get_mut(..count).unwrap_or_default();
        order.sort_by_key(|i| {
            self.entries
                .get(*i)
                .map_or(0, |e| e.seq.load(Ordering::Relaxed))
        });
        for i in order.iter() {
            let Some(e) = self.entries.get(*i) else {
                continue;
            };
            let fd = e.fd.load(Ordering::Relaxed);
            let at = e.at.load(Ordering::Relaxed);
            let len = e.len.load(Ordering::Relaxed).min(ENTRY_BYTES);
            // SAFETY: we own the entry (BUSY); `len` bytes of it were written.
            let bytes = unsafe { std::slice::from_raw_parts(e.data.get().cast::<u8>(), len) };
            let kind = e.kind.load(Ordering::Relaxed);
            match kind {
                SENT => replay(Op::Sent(fd, bytes), at),
                RECEIVED => replay(Op::Received(fd, bytes), at),
                CONNECTED => replay(Op::Connected(fd, decode_addr(bytes)), at),
                DUPLICATED => {
                    let new = bytes
                        .get(..4)
                        .and_then(|b| b.try_into().ok())
                        .map_or(-1, i32::from_le_bytes);
                    replay(Op::Duplicated(fd, new), at)
                }
                _ => replay(Op::Closed(fd), at),
            }
            let n = e.skipped.load(Ordering::Relaxed);
            if n > 0 {
                let sent = kind == SENT;
                replay(
                    Op::Skipped { fd, sent, n },
                    e.skipped_at.load(Ordering::Relaxed),
                );
            }
            e.state.store(FREE, Ordering::Release);
        }
    }

    /// Forgets everything kept (a forked child: nothing inherited is its to replay).
    pub fn clear(&self) {
        self.drain(&mut |_, _| {});
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn replayed(d: &Deferred) -> Vec<String> {
        let mut out = Vec::new();
        d.drain(&mut |op, _| {
            out.push(match op {
                Op::Sent(fd, b) => format!("sent {fd} {}", String::from_utf8_lossy(b)),
                Op::Received(fd, b) => format!("received {fd} {}", String::from_utf8_lossy(b)),
                Op::Closed(fd) => format!("closed {fd}"),
                Op::Connected(fd, a) => format!("connected {fd} {a:?}"),
                Op::Duplicated(a, b) => format!("duplicated {a} {b}"),
                Op::Skipped { fd, sent, n } => format!("skipped {fd} {sent} {n}"),
            })
        });
        out
    }

    #[test]
    fn bytes_are_coalesced_and_replayed_in_order() {
        let d = Deferred::new();
        assert!(!d.is_pending());
        for b in b"POST /x HTTP/1.1" {
            assert!(d.sent(5, &[*b], 1));
        }
        assert!(d.received(5, b"HTTP/1.1 202", 2));
        assert!(d.sent(6, b"other", 3));
        assert!(d.connected(7, Some("127.0.0.1:9001".parse().unwrap())));
        assert!(d.connected(8, Some("[::1]:80".parse().unwrap())));
        assert!(d.duplicated(7, 12));
        assert!(d.closed(5));
        assert!(d.is_pending());
        assert_eq!(
            replayed(&d),
            [
                "sent 5 POST /x HTTP/1.1",
                "received 5 HTTP/1.1 202",
                "sent 6 other",
                "connected 7 Some(127.0.0.1:9001)",
                "connected 8 Some([::1]:80)",
                "duplicated 7 12",
                "closed 5"
            ]
        );
        assert!(!d.is_pending());
        assert!(replayed(&d).is_empty());
    }

    #[test]
    fn full_means_refused_and_big_writes_span_entries() {
        let d = Deferred::new();
        assert!(d.sent(3, &vec![b'a'; ENTRY_BYTES * 3 + 10], 1));
        let ops = replayed(&d);
        assert_eq!(ops.len(), 4);
        for fd in 0..ENTRIES as i32 {
            assert!(d.closed(fd));
        }
        assert!(!d.closed(99), "no room left");
        assert!(!d.sent(99, b"x", 1));
        assert_eq!(replayed(&d).len(), ENTRIES);
        assert!(d.closed(1), "room again after replay");
    }

    #[test]
    fn a_long_run_is_counted_past_its_entries_and_leaves_room_for_others() {
        let d = Deferred::new();
        assert!(d.sent(4, b"GET /next", 1));
        // A 2 MB body read while the engine was held: its run takes entries while more than
        // KEPT_FOR_OTHERS are free, then is counted on its newest.
        let big = vec![b'b'; 2_000_000];
        assert!(d.received(3, &big[..100_000], 2));
        assert!(d.received(3, &big[100_000..], 3));
        // Another connection's request, and an end of stream, still find room.
        assert!(d.sent(5, b"POST /response", 4));
        assert!(d.received(5, b"", 5));
        assert!(d.sent(6, b"", 6), "an empty send is nothing to keep");
        let mut ops = Vec::new();
        d.drain(&mut |op, at| {
            ops.push(match op {
                Op::Received(3, b) => format!("received 3 {} at {at}", b.len()),
                Op::Skipped { fd, sent, n } => format!("skipped {fd} {sent} {n} at {at}"),
                Op::Sent(fd, b) => format!("sent {fd} {}", String::from_utf8_lossy(b)),
                Op::Received(fd, b) => format!("received {fd} {b:?}"),
                other => format!("{other:?}"),
            })
        });
        let runs = ENTRIES - 1 - KEPT_FOR_OTHERS;
        // (The first call's bytes begin this many entries, each stamped with its time.)
        let first_call = 100_000usize.div_ceil(ENTRY_BYTES);
        let mut want = vec!["sent 4 GET /next".to_string()];
        want.extend(
            (0..runs).map(|i| format!("received 3 4096 at {}", if i < first_call { 2 } else { 3 })),
        );
        want.push(format!(
            "skipped 3 false {} at 3",
            2_000_000 - runs * ENTRY_BYTES
        ));
        want.push("sent 5 POST /response".into());
        want.push("received 5 []".into());
        assert_eq!(ops, want);
    }

    #[test]
    fn bytes_are_counted_only_right_after_their_own() {
        let d = Deferred::new();
        for fd in 0..ENTRIES as i32 {
            assert!(d.closed(fd));
        }
        assert!(
            !d.sent(40, b"x", 1),
            "no room, and the newest is not its own"
        );
        d.clear();
        for fd in 0..ENTRIES as i32 - 1 {
            assert!(d.closed(fd));
        }
        assert!(d.sent(40, b"head", 1));
        assert!(d.sent(40, &[b'x'; ENTRY_BYTES], 2), "counted on its entry");
        assert!(!d.received(40, b"answer", 3), "the other direction is not");
        assert_eq!(
            replayed(&d).last().map(String::as_str),
            Some("skipped 40 true 4"),
            "the head and the bytes that fit kept, the rest counted"
        );
    }
}
