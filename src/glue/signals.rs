//! The library's crash handlers, and why the host never sees them.
//!
//! A runtime that dies of a fatal signal (SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL) or of a
//! default SIGTERM (how Lambda stops a runtime of Lambda Managed Instances) still gets the
//! records of its open invokes: a handler of ours writes them from the journal, puts the
//! disposition back exactly as it was and raises the signal again, so the process ends as it
//! would have (same signal, same core).
//!
//! The rules that keep this invisible:
//! - Ours sits only on a signal whose disposition the **kernel** reports as `SIG_DFL` (asked
//!   with the raw system call, past libc and any interposer such as libjsig), and only once the
//!   process journals invokes, or is its environment's root and forked (its end then writes
//!   what its children hold, see [`crate::ending`]).
//! - The host's handlers are installed exactly as given: every `sigaction`, `signal`,
//!   `sysv_signal`, `bsd_signal`, `sigset`, `ssignal` and raw `rt_sigaction` goes through
//!   unchanged. Afterwards the kernel is asked again: anything but `SIG_DFL` and ours has
//!   stepped aside; `SIG_DFL` again and ours is back.
//! - Whenever a read-back would show our handler, it shows instead what the kernel held before
//!   ours went in (handler `SIG_DFL`, flags, restorer, mask, as libc copies them), with
//!   `SA_RESTART` as it is now (`siginterrupt` rewrites the live action). That holds in every
//!   process with this memory: a child of `fork`, `_Fork` or a raw `clone` too.
//! - State changes only in the process that owns it (a `vfork` child shares our memory but has
//!   its own signal table).
//!
//! Everything here is async-signal-safe: atomics and raw system calls only.

use crate::sys::{self, KernelAction};
use libc::c_int;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// The signals whose default action ends the process: those a crash raises (with a core), and
/// SIGTERM.
const FATAL: [c_int; 6] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGABRT,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGTERM,
];

/// What the kernel held for one fatal signal before our handler went in (its handler was
/// `SIG_DFL`), and whether ours is in.
struct Saved {
    ours: AtomicBool,
    flags: AtomicU64,
    restorer: AtomicUsize,
    mask: AtomicU64,
}

fn index(sig: c_int) -> Option<usize> {
    FATAL.iter().position(|s| *s == sig)
}

fn saved(sig: c_int) -> Option<&'static Saved> {
    index(sig).and_then(|i| state().saved.get(i))
}

fn our_handler() -> usize {
    on_fatal_signal as *const () as usize
}

/// The kernel's action as it was before ours went in, with `SA_RESTART` as `now` has it.
fn before_ours(s: &Saved, now_flags: u64) -> KernelAction {
    let restart = libc::SA_RESTART as u64;
    KernelAction {
        handler: libc::SIG_DFL,
        flags: (s.flags.load(Ordering::Relaxed) & !restart) | (now_flags & restart),
        restorer: s.restorer.load(Ordering::Relaxed),
        mask: s.mask.load(Ordering::Relaxed),
    }
}

/// The process journals invokes now (or is the environment's root, and forked): our handler
/// goes on every fatal signal the kernel reports as `SIG_DFL`.
pub fn watch() {
    state().wanted.store(true, Ordering::Relaxed);
    for sig in FATAL {
        settle(sig);
    }
}

/// Looks at the kernel's action for fatal `sig` and makes our state agree: ours is in only
/// while the kernel holds ours, and goes in where the kernel holds `SIG_DFL`. Owner process
/// only.
fn settle(sig: c_int) {
    let Some(s) = saved(sig) else { return };
    let mut now = KernelAction::default();
    if sys::rt_sigaction(sig, None, Some(&mut now)).is_err() {
        return;
    }
    if now.handler == our_handler() {
        s.ours.store(true, Ordering::Relaxed);
        return;
    }
    s.ours.store(false, Ordering::Relaxed);
    if now.handler != libc::SIG_DFL || !state().wanted.load(Ordering::Relaxed) {
        return;
    }
    remember(s, &now);
    let restorer = sys::restorer();
    // On the host's alternate stack only where the ordinary one may be what failed.
    let onstack = if matches!(sig, libc::SIGSEGV | libc::SIGBUS) {
        libc::SA_ONSTACK as u64
    } else {
        0
    };
    let ours = KernelAction {
        handler: our_handler(),
        flags: libc::SA_SIGINFO as u64
            | onstack
            | (now.flags & libc::SA_RESTART as u64)
            | if restorer != 0 { sys::SA_RESTORER } else { 0 },
        restorer,
        mask: 0,
    };
    // Swapped in one call, so an action the host installs after our look is not overwritten
    // unseen: it comes back as `prev`, and goes back in.
    let mut prev = KernelAction::default();
    if sys::rt_sigaction(sig, Some(&ours), Some(&mut prev)).is_err() {
        return;
    }
    if prev.handler == libc::SIG_DFL {
        remember(s, &prev);
        s.ours.store(true, Ordering::Relaxed);
        return;
    }
    let mut displaced = KernelAction::default();
    if sys::rt_sigaction(sig, Some(&prev), Some(&mut displaced)).is_ok()
        && displaced.handler != our_handler()
    {
        // Another install came after our swap too: the newest one stays.
        let _ = sys::rt_sigaction(sig, Some(&displaced), None);
    }
}

/// Keeps the kernel's `SIG_DFL` action that ours replaces, to show and restore.
fn remember(s: &Saved, was: &KernelAction) {
    s.flags.store(was.flags, Ordering::Relaxed);
    s.restorer.store(was.restorer, Ordering::Relaxed);
    s.mask.store(was.mask, Ordering::Relaxed);
}

/// After the host changed (or may have changed) `sig`'s action by any path: settle our state
/// with the kernel's.
fn host_changed(sig: c_int) {
    let Some(s) = saved(sig) else { return };
    // Not wanted in this process and not in: the host's change leaves nothing of ours to
    // settle, and costs no system call (a shell resets every signal in each child it forks).
    if !state().wanted.load(Ordering::Relaxed) && !s.ours.load(Ordering::Relaxed) {
        return;
    }
    if !crate::probes::in_owner_process() {
        return;
    }
    settle(sig);
}

/// libc's view of an action that showed our handler: what the kernel held before ours, the
/// fields libc's `sigaction` copies.
///
/// # Safety
/// `old` points to a `struct sigaction` the host gave for writing.
unsafe fn translate_libc(sig: c_int, old: *mut libc::sigaction) {
    let Some(s) = saved(sig) else { return };
    // SAFETY: the host's struct, readable and writable (libc has just written it).
    let old = unsafe { &mut *old };
    if old.sa_sigaction != our_handler() {
        return;
    }
    let was = before_ours(s, old.sa_flags as u32 as u64);
    old.sa_sigaction = was.handler;
    old.sa_flags = was.flags as c_int;
    // SAFETY: a non-null restorer is an address the kernel held as one; the types agree
    // (an optional C function pointer is one pointer wide).
    old.sa_restorer =
        unsafe { std::mem::transmute::<usize, Option<extern "C" fn()>>(was.restorer) };
    // SAFETY: the kernel's 8-byte set is the first 8 bytes of libc's sigset_t. The rest of
    // it libc copies from its own stack, where the kernel wrote nothing: left as a fresh
    // stack has it (zero), not as our calls left it.
    unsafe {
        let mask = (&mut old.sa_mask as *mut libc::sigset_t).cast::<u8>();
        std::ptr::write_bytes(mask, 0, std::mem::size_of::<libc::sigset_t>());
        mask.cast::<u64>().write_unaligned(was.mask)
    };
}

/// A disposition returned by a `signal`-style call: `SIG_DFL` where it was ours.
fn translate_handler(handler: libc::sighandler_t) -> libc::sighandler_t {
    if handler == our_handler() {
        libc::SIG_DFL
    } else {
        handler
    }
}

/// The `sigaction` (and `__sigaction`) hook: the host's call unchanged, its read-back
/// translated, our state settled.
///
/// # Safety
/// The host's arguments, as for `sigaction(2)`.
pub unsafe fn sigaction(
    real: unsafe extern "C" fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int,
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    // SAFETY: the host's arguments, unchanged.
    let rc = unsafe { real(sig, act, old) };
    if rc == 0 && sig == libc::SIGPIPE && !act.is_null() {
        crate::output::sigpipe_changed();
    }
    if rc == 0 && index(sig).is_some() {
        // SAFETY: this thread's errno, kept across our work.
        let errno = unsafe { *libc::__errno_location() };
        if !old.is_null() {
            // SAFETY: the host asked for the old action there, and libc wrote it.
            unsafe { translate_libc(sig, old) };
        }
        if !act.is_null() {
            host_changed(sig);
        }
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = errno };
    }
    rc
}

/// `SIG_HOLD` (`<signal.h>`, for `sigset`).
const SIG_HOLD: libc::sighandler_t = 2;

/// The hook of `signal` and its kin (`sysv_signal`, `bsd_signal`, `sigset`, `ssignal`): the
/// host's call unchanged, the old disposition it returns translated, our state settled.
///
/// # Safety
/// `real` is the libc function the hook stands for; the host's arguments.
pub unsafe fn signal_like(
    real: unsafe extern "C" fn(c_int, libc::sighandler_t) -> libc::sighandler_t,
    sig: c_int,
    handler: libc::sighandler_t,
) -> libc::sighandler_t {
    // SAFETY: the host's arguments, unchanged.
    let old = unsafe { real(sig, handler) };
    if old != libc::SIG_ERR && sig == libc::SIGPIPE {
        crate::output::sigpipe_changed();
    }
    if old == libc::SIG_ERR || index(sig).is_none() {
        return old;
    }
    // `sigset(sig, SIG_HOLD)` blocks the signal and leaves its action alone: nothing to
    // settle (and nothing to race with a thread installing one meanwhile).
    let holds = handler == SIG_HOLD && crate::real::sigset::is(real);
    if !holds {
        // SAFETY: this thread's errno, kept across our work.
        let errno = unsafe { *libc::__errno_location() };
        host_changed(sig);
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = errno };
    }
    translate_handler(old)
}

/// After the host's raw `rt_sigaction(sig, act, old)` succeeded (the `syscall` hook in
/// `c-abi/interpose.c`): its read-back translated, our state settled. Keeps errno.
///
/// # Safety
/// `old` is null or the kernel-layout action the host gave for writing.
pub unsafe extern "C" fn raw_sigaction_done(sig: c_int, changed: c_int, old: *mut libc::c_void) {
    if sig == libc::SIGPIPE && changed != 0 {
        crate::output::sigpipe_changed();
    }
    let Some(s) = saved(sig) else { return };
    if !old.is_null() {
        // SAFETY: the kernel has just written the host's struct there, in this layout.
        let old = unsafe { &mut *old.cast::<KernelAction>() };
        if old.handler == our_handler() {
            *old = before_ours(s, old.flags);
        }
    }
    if changed != 0 {
        host_changed(sig);
    }
}

fn signal_reason(sig: c_int) -> &'static [u8] {
    match sig {
        libc::SIGSEGV => b"signal: segmentation fault",
        libc::SIGBUS => b"signal: bus error",
        libc::SIGABRT => b"signal: aborted",
        libc::SIGFPE => b"signal: floating point exception",
        libc::SIGILL => b"signal: illegal instruction",
        libc::SIGTERM => b"signal: terminated",
        _ => b"signal",
    }
}

/// The stack the records are written with, at most (measured with the debug build; the
/// release build needs less). On an alternate signal stack with less room left, the records
/// stay in the journal and the signal ends the process as it would have.
const RECORD_STACK: usize = 12 * 1024;

/// Our handler: write the records, put the kernel's action back as it was before ours, and
/// raise the signal again with its own siginfo (a core keeps the fault's code and address).
/// It is blocked until we return, then acts as the default would have — also where the host's
/// mask blocks it outside a wait that let it in (`sigsuspend`, `ppoll`, …): it is taken out
/// of the mask the return restores. A fault is not retried first (the pending signal is
/// delivered before the instruction runs again), and a signal the host sent itself — with any
/// `si_code` — is never swallowed.
extern "C" fn on_fatal_signal(sig: c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: this thread's errno, restored before returning.
    let saved_errno = unsafe { *libc::__errno_location() };
    let owner = crate::probes::in_owner_process();
    let here = &saved_errno as *const c_int as usize;
    let room = sys::signal_stack_room(here).unwrap_or(usize::MAX);
    if owner && room >= RECORD_STACK {
        crate::ending::write_open(signal_reason(sig));
    }
    if let Some(s) = saved(sig) {
        let mut now = KernelAction::default();
        let _ = sys::rt_sigaction(sig, None, Some(&mut now));
        let _ = sys::rt_sigaction(sig, Some(&before_ours(s, now.flags)), None);
        if owner {
            s.ours.store(false, Ordering::Relaxed);
        }
    } else {
        let _ = sys::rt_sigaction(sig, Some(&KernelAction::default()), None);
    }
    if !context.is_null() && (1..=64).contains(&sig) {
        // SAFETY: the kernel's ucontext for this delivery; the first 8 bytes of its signal
        // mask are the kernel's set (glibc's ucontext_t has the kernel's layout).
        unsafe {
            let mask = (&raw mut (*context.cast::<libc::ucontext_t>()).uc_sigmask).cast::<u64>();
            mask.write_unaligned(mask.read_unaligned() & !(1u64 << (sig - 1)));
        }
    }
    let (pid, tid) = (sys::getpid(), sys::gettid());
    // SAFETY: the kernel's siginfo for this delivery, when it gave one.
    let queued =
        !info.is_null() && sys::rt_tgsigqueueinfo(pid, tid, sig, unsafe { &*info }).is_ok();
    if !queued {
        let _ = sys::tgkill(pid, tid, sig);
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
}

/// This module's part of the library's state in the process ([`crate::state::State`]).
pub struct SignalState {
    /// Per fatal signal, what the kernel held before our handler went in, and whether ours
    /// is in.
    saved: [Saved; 6],
    /// Set once the process journals invokes: from then on a `SIG_DFL` on a fatal signal is
    /// ours to stand in for.
    wanted: AtomicBool,
}

impl SignalState {
    pub const fn new() -> SignalState {
        SignalState {
            saved: [const {
                Saved {
                    ours: AtomicBool::new(false),
                    flags: AtomicU64::new(0),
                    restorer: AtomicUsize::new(0),
                    mask: AtomicU64::new(0),
                }
            }; 6],
            wanted: AtomicBool::new(false),
        }
    }

    /// In a forked child: the kernel copied the actions, ours included, so what ours stands
    /// for is kept, and read-backs in the child show the same.
    pub fn forked_child(&self) {
        let SignalState {
            saved: _,
            wanted: _,
        } = self;
    }
}

/// This module's state.
#[inline(always)]
fn state() -> &'static SignalState {
    &crate::state::STATE.signals
}
