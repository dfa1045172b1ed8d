//! The process's ledger of downstream calls: what each invoke waited on, fed by the hooks of
//! every thread on the connections the function makes (not the Runtime API), and read by the
//! engine where an invoke's result is sent (`lambda_meter_core::downstream`).
//!
//! It is kept apart from the engine, under a lock of its own, so that a function's threads
//! that talk to other services never wait on the engine's gate, nor it on them. The lock is
//! held only for a few hundred instructions of bounded, pure work (no system call, no
//! allocation): a thread that finds it held spins, then yields a bounded number of times, and
//! then lets the event go uncounted (the record says how many were, see [`missed`]), as does a
//! signal handler that interrupted its own thread inside it. Nothing here waits for long.
//!
//! Which invoke a call belongs to: the only one open; where several are open, the one whose
//! event the calling thread read; where none of them was read on it (Node.js on Managed
//! Instances interleaves invokes on one thread; an I/O thread of a pool), each of the open ones,
//! marked shared. While no invoke is open, the calls belong by the same rules to the invokes
//! whose result was sent, as their post-response calls, until another invoke opens (their
//! records wait for the runtime's next `/next`). Calls made at init are not kept.
//!
//! The ledger is zero at load (all of it in `.bss`): a process that never becomes a runtime,
//! or never opens a connection, never touches its pages.

use crate::probes;
use crate::process::{Canary, TRACKED};
use crate::state::Reset;
use crate::sys;
use lambda_meter_core::blocked::FdInfo;
use lambda_meter_core::downstream::{
    Calls, Delta, Downstream, Figures, Link, NameId, OTHERS, Pieces, StillOpen, Sum,
};
use lambda_meter_core::text::Out;
use lambda_meter_core::tracker::MAX_ID_LEN;
use std::cell::UnsafeCell;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Invokes whose figures are kept at once; an invoke opened while all are in use has none.
const SLOTS: usize = 16;

/// How many times a thread that finds the ledger held spins, then yields, before it lets its
/// event go.
const SPINS: u32 = 64;
const YIELDS: u32 = 64;

/// (`repr(C)`: what every invoke reads, `used` to `thread`, comes first.)
#[repr(C)]
struct Slot {
    used: bool,
    /// The invoke's result was sent: its calls from here on are post-response ones.
    after: bool,
    /// The invoke's request id (its first `id_len` bytes).
    id: [u8; MAX_ID_LEN],
    id_len: usize,
    /// The thread that read the invoke's event.
    thread: u64,
    calls: Calls,
}

impl Slot {
    fn id(&self) -> &[u8] {
        self.id.get(..self.id_len).unwrap_or_default()
    }

    fn open(&self) -> bool {
        self.used && !self.after
    }

    const FREE: Slot = Slot {
        used: false,
        after: false,
        id: [0; MAX_ID_LEN],
        id_len: 0,
        thread: 0,
        calls: Calls::NONE,
    };
}

/// (`repr(C)`, as the ledger: the lock's words, `high` and the first slot's head are together,
/// the few pages a process that opens an invoke and calls nothing touches.)
#[repr(C)]
struct Book {
    /// Slots ever used: what a scan reads (one invoke at a time uses the first only).
    high: usize,
    slots: [Slot; SLOTS],
    known: Downstream,
}

impl Book {
    fn live(&mut self) -> &mut [Slot] {
        self.slots.get_mut(..self.high).unwrap_or_default()
    }
}

#[repr(C)]
struct Ledger {
    /// The holder's thread key ([`lambda_meter_core::custom::thread_key`]), 0 when free.
    owner: AtomicU64,
    /// Times the lock was taken (written by the holder only).
    generation: AtomicU64,
    /// One more than the generation a waiter last gave up on (0: none): while that generation
    /// still holds, nobody waits.
    stalled: AtomicU64,
    /// Whether connections are followed (the process talks to the Runtime API, and is not known
    /// to be a per-request helper).
    on: AtomicBool,
    /// Events let go since the last record took its figures.
    missed: AtomicU32,
    /// Figures were put on an invoke past its result since the last look: a record that waits
    /// for `/next` has post-response calls to take only then.
    after_calls: AtomicBool,
    /// A connection was ever followed (written under the lock): only then can a call be under
    /// way when an invoke opens.
    followed_any: AtomicBool,
    book: UnsafeCell<Book>,
}

// SAFETY: `book` is reached only by the thread that holds `owner` (see `with`).
unsafe impl Sync for Ledger {}

static LEDGER: Ledger = Ledger {
    owner: AtomicU64::new(0),
    generation: AtomicU64::new(0),
    stalled: AtomicU64::new(0),
    on: AtomicBool::new(false),
    missed: AtomicU32::new(0),
    after_calls: AtomicBool::new(false),
    followed_any: AtomicBool::new(false),
    book: UnsafeCell::new(Book {
        high: 0,
        slots: [Slot::FREE; SLOTS],
        known: Downstream::new(),
    }),
};

/// What the engine uses (see [`Link`]).
pub const LINK: Link = Link {
    opened,
    take,
    after,
    waiting,
    blocked: crate::blocked::render,
    merge,
};

/// When this process opened its own slot (0: it has none), on the monotonic clock. A process
/// that talks to other services before it talks to the Runtime API keeps its calls there: a
/// function's child that is no runtime (a shell runtime's `curl`, a handler's `subprocess`)
/// hands them to its environment's runtime at its exit ([`own_lines`]); one that becomes a
/// runtime forgets them (calls made at init are not kept).
static OWN_SINCE: AtomicU64 = AtomicU64::new(0);

/// The request id of the own slot: none (the Runtime API's are never empty).
const OWN_ID: &[u8] = b"";

/// Opens this process's own slot, once, where connections are followed.
pub fn open_own() {
    if !is_on() || OWN_SINCE.load(Ordering::Relaxed) != 0 {
        return;
    }
    OWN_SINCE.store(probes::mono_ns().max(1), Ordering::Relaxed);
    opened(OWN_ID, 0, &|_| true);
}

/// The process became a runtime: what it kept in its own slot was its init's.
pub fn forget_own() {
    if OWN_SINCE.swap(0, Ordering::Relaxed) == 0 {
        return;
    }
    let _ = with(|b| {
        for s in b.live() {
            if s.used && !s.after && s.id_len == 0 {
                s.used = false;
            }
        }
    });
}

/// The calls this process kept in its own slot, as channel lines for its environment's
/// runtime ([`lambda_meter_core::downstream::render_child_lines`]), made from then until
/// `until_ns`, into `out` (nothing where there are none).
pub fn own_lines(pid: u32, until_ns: u64, out: &mut Out) {
    let since = OWN_SINCE.load(Ordering::Relaxed);
    if since == 0 {
        return;
    }
    let _ = with(|b| {
        let Book {
            known, slots, high, ..
        } = b;
        let own = slots
            .get(..*high)
            .unwrap_or_default()
            .iter()
            .find(|s| s.used && !s.after && s.id_len == 0);
        if let Some(s) = own.filter(|s| !s.calls.is_empty()) {
            lambda_meter_core::downstream::render_child_lines(
                &s.calls,
                known,
                pid,
                (since, until_ns),
                out,
            );
        }
    });
}

/// [`Link::merge`].
fn merge(id: &[u8], name: &str, figures: &Figures, shared: bool) {
    let _ = with(|b| {
        let Book {
            known, slots, high, ..
        } = b;
        let Some(s) = slots
            .get_mut(..*high)
            .unwrap_or_default()
            .iter_mut()
            .find(|s| s.used && !s.after && s.id() == id)
        else {
            return;
        };
        let name = if name == OTHERS {
            NameId::Others
        } else {
            known.intern(name)
        };
        s.calls.add(&Delta {
            name,
            figures: *figures,
        });
        s.calls.shared |= shared;
    });
}

/// Connections are followed from now on: the process talks to the Runtime API.
pub fn switch_on() {
    LEDGER.on.store(true, Ordering::Release);
}

/// The process is a per-request helper (measured through its environment's runtime): no
/// connection is followed from now on (those followed already are let go at their close).
pub fn switch_off() {
    LEDGER.on.store(false, Ordering::Release);
}

/// Whether connections are followed: one relaxed load.
#[inline(always)]
pub fn is_on() -> bool {
    LEDGER.on.load(Ordering::Relaxed)
}

/// The canary of this thread's outermost entry of the ledger's lock (held, or being taken),
/// or 0: a thread-local variable of `c-abi/interpose.c` of the initial-exec model, as the
/// gate's (see `process.rs`).
mod frame {
    unsafe extern "C" {
        fn lm_ledger_frame_replace(frame: usize) -> usize;
        fn lm_ledger_frame_set(frame: usize);
    }

    /// Sets this thread's frame to `frame`; the one it had.
    pub fn replace(frame: usize) -> usize {
        // SAFETY: reads and writes a word of this thread's own; no other effect.
        unsafe { lm_ledger_frame_replace(frame) }
    }

    pub fn set(frame: usize) {
        // SAFETY: as in `replace`.
        unsafe { lm_ledger_frame_set(frame) }
    }
}

/// Runs `f` on the book, holding the lock; `None` (the event counted as missed) where it could
/// not be had: held further up this thread's stack (a signal handler interrupted the holder),
/// or held on by another thread.
///
/// Each thread notes, before it tries the lock, the [`Canary`] in the frame of its outermost
/// entry, and puts back the one before when it lets go. A thread that finds its own key on the
/// lock is either a signal handler inside that entry (its canary is intact, further up the
/// stack or the handler is on the signal stack) or one whose entry a handler left by
/// `siglongjmp` (it stands above that frame, or the calls made since wrote over the canary):
/// then it takes the lock back, as the engine's gate does. Until then, other threads wait
/// for it once, then not again (their events are counted as missed).
fn with<R>(f: impl FnOnce(&mut Book) -> R) -> Option<R> {
    let me = lambda_meter_core::custom::thread_key();
    let canary = Canary::new();
    canary.set(me);
    let mut outer = frame::replace(canary.address());
    let mut tries = 0u32;
    loop {
        match LEDGER
            .owner
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => break,
            Err(holder) if holder == me => {
                let below = canary.address() < outer || sys::on_signal_stack();
                if outer != 0 && below && Canary::intact(me, outer) {
                    frame::set(outer);
                    return missed();
                }
                // Abandoned by this very thread: it holds the lock already, and that entry's
                // frame is gone (this one is the outermost now).
                outer = 0;
                break;
            }
            Err(_) => {
                let generation = LEDGER.generation.load(Ordering::Relaxed);
                let mark = generation.wrapping_add(1);
                if LEDGER.stalled.load(Ordering::Relaxed) == mark || tries >= SPINS + YIELDS {
                    LEDGER.stalled.store(mark, Ordering::Relaxed);
                    frame::set(outer);
                    return missed();
                }
                if tries < SPINS {
                    std::hint::spin_loop();
                } else {
                    sys::sched_yield();
                }
                tries += 1;
            }
        }
    }
    let generation = LEDGER.generation.load(Ordering::Relaxed);
    LEDGER
        .generation
        .store(generation.wrapping_add(1), Ordering::Relaxed);
    // SAFETY: this thread holds `owner`, so no other thread reaches the book until the store
    // below; a signal handler on this thread finds its live frame and does not either.
    let r = f(unsafe { &mut *LEDGER.book.get() });
    LEDGER.owner.store(0, Ordering::Release);
    frame::set(outer);
    Some(r)
}

/// An event the ledger could not count.
fn missed<R>() -> Option<R> {
    LEDGER.missed.fetch_add(1, Ordering::Relaxed);
    None
}

impl Book {
    /// Puts `delta`, seen on `thread`, on the invoke it belongs to (see the module's
    /// documentation).
    fn add(&mut self, thread: u64, delta: Option<Delta>) {
        let Some(delta) = delta else { return };
        let slots = self.live();
        // The open invokes', else those past their result.
        let after = !slots.iter().any(Slot::open);
        let theirs = |s: &Slot| s.used && s.after == after;
        let own = match slots.iter().filter(|s| theirs(s)).count() {
            1 => slots.iter().position(theirs),
            _ => slots.iter().position(|s| theirs(s) && s.thread == thread),
        };
        // Where none is the thread's own, each one's, shared.
        let shared = own.is_none();
        if after {
            LEDGER.after_calls.store(true, Ordering::Relaxed);
        }
        for (i, s) in slots.iter_mut().enumerate() {
            if theirs(s) && own.is_none_or(|own| own == i) {
                s.calls.add(&delta);
                s.calls.shared |= shared;
            }
        }
    }
}

/// [`Link::opened`].
fn opened(id: &[u8], thread: u64, still_open: StillOpen) {
    let _ = with(|b| {
        // Invokes past their result are done with: their records went before this `/next`.
        for s in b.live() {
            if s.used && (s.after || !still_open(s.id())) {
                s.used = false;
            }
        }
        let Book { known, slots, high } = b;
        // Calls under way belong to the invokes still open, if any; else they were carried
        // over from before this one.
        let alone = slots
            .get(..*high)
            .unwrap_or_default()
            .iter()
            .all(|s| !s.used);
        if let Some((i, s)) = slots.iter_mut().enumerate().find(|(_, s)| !s.used) {
            *high = (*high).max(i + 1);
            s.used = true;
            s.after = false;
            let id = id.get(..MAX_ID_LEN).unwrap_or(id);
            if let Some(to) = s.id.get_mut(..id.len()) {
                to.copy_from_slice(id);
            }
            s.id_len = id.len();
            s.thread = thread;
            // (Written over only where used: the slot of an invoke without calls is as new.)
            if !s.calls.is_empty() || s.calls.shared {
                s.calls = Calls::NONE;
            }
            if alone && LEDGER.followed_any.load(Ordering::Relaxed) {
                known.carry_into(probes::mono_ns, |delta| s.calls.add(&delta));
            }
        }
    });
}

/// [`Link::take`].
fn take(id: &[u8], out: &mut Out) -> Option<Sum> {
    render(id, false, out)
}

/// [`Link::after`]: one load where no call was made past a result (the invoke's slot is let
/// go when the next one opens).
fn after(id: &[u8], out: &mut Out) -> bool {
    if !LEDGER.after_calls.swap(false, Ordering::Relaxed) {
        return false;
    }
    render(id, true, out).is_some()
}

/// Renders the figures of invoke `id` before its result (`after` false: from then on it
/// gathers its post-response ones) or after it (the invoke is forgotten then); their sum.
fn render(id: &[u8], after: bool, out: &mut Out) -> Option<Sum> {
    with(|b| {
        let Book {
            known, slots, high, ..
        } = b;
        let s = slots
            .get_mut(..*high)
            .unwrap_or_default()
            .iter_mut()
            .find(|s| s.used && s.after == after && s.id() == id)?;
        s.used = !after;
        s.after = true;
        let missed = LEDGER.missed.swap(0, Ordering::Relaxed);
        let shown = !s.calls.is_empty() || missed > 0;
        let sum = shown.then(|| {
            s.calls.missed = missed;
            s.calls.render(known, out);
            Sum::of(&s.calls.total())
        });
        // (Written over only where used: an invoke without calls costs no more.)
        if shown || s.calls.shared {
            s.calls = Calls::NONE;
        }
        sum
    })
    .flatten()
}

/// [`Link::waiting`].
fn waiting(now_ns: u64, out: &mut Out) -> bool {
    with(|b| b.known.render_in_flight(now_ns, out)).unwrap_or(false)
}

/// Calls `f` with what the ledger knows of `fd` at `now_ns` (nothing where `fd` is `None`, is
/// not followed, or the ledger could not be had).
pub fn describe_fd(fd: Option<i32>, now_ns: u64, f: impl FnOnce(FdInfo)) {
    let mut f = Some(f);
    if let Some(fd) = fd.filter(|fd| TRACKED.contains_other(*fd)) {
        let _ = with(|b| {
            if let (Some(f), Some((name, age_ns))) = (f.take(), b.known.about_fd(fd, now_ns)) {
                f(FdInfo {
                    name: Some(name),
                    age_ns,
                    runtime_api: false,
                });
            }
        });
    }
    if let Some(f) = f {
        f(FdInfo::default());
    }
}

/// Before a `connect` or a name lookup: when it began, where connections are followed.
#[inline(always)]
pub fn starting() -> Option<u64> {
    is_on().then(probes::mono_ns)
}

/// After `connect(fd, addr)` that began at `began_ns` returned `rc` with `errno`: a connection
/// to an IPv4 or IPv6 address that is not the Runtime API (the caller knows) is followed from
/// here. No system call asks whether it is a stream: a datagram socket connected to a peer
/// (QUIC, a resolver of the function's own) has its turns too.
#[cold]
#[inline(never)]
pub fn connected(fd: i32, addr: Option<SocketAddr>, began_ns: u64, rc: i32, errno: i32) {
    let Some(addr) = addr else { return };
    if !probes::in_owner_process() {
        return;
    }
    let thread = lambda_meter_core::custom::thread_key();
    let ended = match rc {
        0 => Some(None),
        _ if errno == libc::EINPROGRESS || errno == libc::EINTR => None,
        _ => Some(Some(errno)),
    };
    let now = probes::mono_ns();
    // A datagram socket's connect is counted only once the socket carries bytes (see
    // `Downstream::datagram`). Asked only of a connect made in the call (a datagram socket's
    // always is; a stream's where the call blocked for its handshake), never of one in
    // progress.
    let datagram = rc == 0 && sys::socket_type(fd) == Ok(libc::SOCK_DGRAM);
    let followed = with(|b| {
        LEDGER.followed_any.store(true, Ordering::Relaxed);
        if !b.known.connecting(fd, &addr, began_ns) {
            // Every connection the process follows is in use: this one's calls go uncounted.
            LEDGER.missed.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if datagram {
            b.known.datagram(fd);
        }
        if let Some(failed) = ended {
            let delta = b.known.connected(fd, failed, now);
            b.add(thread, delta);
        }
        b.known.follows(fd)
    });
    // Where the connect could not be counted, the connection's next call says so (see `moved`).
    if followed == Some(false) {
        TRACKED.remove_other(fd);
    } else {
        TRACKED.insert_other(fd);
    }
}

/// A non-blocking connect of followed `fd` is over: made (`so_error` 0), or failed with it.
#[cold]
#[inline(never)]
pub fn connect_ended(fd: i32, so_error: i32) {
    let now = probes::mono_ns();
    count(fd, |d| {
        d.connected(fd, (so_error != 0).then_some(so_error), now)
    });
}

/// The host sent on followed `fd`, in a call begun at `began_ns`: `rc` bytes, `parts` of
/// them as seen (see [`Downstream::sent`]), or a failure (`rc` < 0, with `errno`).
#[cold]
#[inline(never)]
pub fn sent(fd: i32, rc: isize, errno: i32, began_ns: u64, parts: &dyn Pieces) {
    count(fd, |d| match u64::try_from(rc) {
        Ok(n) => d.sent(fd, n, began_ns, parts),
        Err(_) => d.failed(fd, errno),
    });
}

/// Counts what `figures` makes of an event on followed `fd`, for the invoke of the calling
/// thread; where the connection is no longer followed after it (a failure ended it), its fd
/// is let go. An fd whose connect went uncounted stays marked until its close, and each of
/// its calls is counted as missed (the record says so).
fn count(fd: i32, figures: impl FnOnce(&mut Downstream) -> Option<Delta>) {
    let thread = lambda_meter_core::custom::thread_key();
    let followed = with(|b| {
        if !b.known.follows(fd) {
            LEDGER.missed.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let delta = figures(&mut b.known);
        b.add(thread, delta);
        b.known.follows(fd)
    });
    if followed == Some(false) {
        TRACKED.remove_other(fd);
    }
}

/// The host received on followed `fd`: `rc` bytes (0: the end of the stream), `parts` of them
/// as seen (see [`Downstream::received`]), or a failure.
#[cold]
#[inline(never)]
pub fn received(fd: i32, rc: isize, errno: i32, parts: &dyn Pieces) {
    let now = probes::mono_ns();
    count(fd, |d| match u64::try_from(rc) {
        Ok(n) => d.received(fd, n, now, parts),
        Err(_) => d.failed(fd, errno),
    });
}

/// Before followed `fd` is closed (or replaced by a `dup2`): it is not followed any more.
#[cold]
#[inline(never)]
pub fn closing(fd: i32) {
    if !probes::in_owner_process() {
        return;
    }
    TRACKED.remove_other(fd);
    let _ = with(|b| b.known.closed(fd));
}

/// Before fds `first` to `last` are closed.
#[cold]
#[inline(never)]
pub fn closing_range(first: u32, last: u32) {
    if !is_on() || !probes::in_owner_process() {
        return;
    }
    TRACKED.each_other_in(first, last, |fd| {
        TRACKED.remove_other(fd);
        let _ = with(|b| b.known.closed(fd));
    });
}

/// The host looked `name` up and got `addrs` in `took_ns`: connections to them are named so.
#[cold]
#[inline(never)]
pub fn looked_up(name: &str, addrs: &[IpAddr], took_ns: u64) {
    let thread = lambda_meter_core::custom::thread_key();
    let _ = with(|b| {
        let delta = b.known.looked_up(name, addrs, took_ns);
        b.add(thread, Some(delta));
    });
}

/// In a forked child: it follows none of the connections it inherited (its calls on them are
/// counted as missed), and no invoke is open (the thread that held the lock is not there). It
/// follows its own as the parent did: it may be a runtime of its own. The pages are written
/// only where the parent used the ledger.
pub fn forked_child() {
    LEDGER.owner.reset_to(0, Ordering::Release);
    LEDGER.stalled.reset_to(0, Ordering::Relaxed);
    LEDGER.generation.reset_to(0, Ordering::Relaxed);
    LEDGER.missed.reset_to(0, Ordering::Relaxed);
    LEDGER.after_calls.reset_to(false, Ordering::Relaxed);
    LEDGER.followed_any.reset_to(false, Ordering::Relaxed);
    if LEDGER.on.load(Ordering::Relaxed) {
        // SAFETY: no other thread exists in the child yet, and the lock was just let go.
        let b = unsafe { &mut *LEDGER.book.get() };
        b.known = Downstream::new();
        for s in b.live() {
            s.used = false;
        }
    }
    // A child of a process that keeps its own calls keeps its own from now on (its parent's
    // are its parent's to hand over). Read first: a write would copy the page in every
    // forked child.
    if OWN_SINCE.load(Ordering::Relaxed) != 0 {
        OWN_SINCE.store(0, Ordering::Relaxed);
        open_own();
    }
}
