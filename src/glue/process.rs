//! The library's state in this process, and the entry points the hooks call on tracked paths.
//!
//! Every entry point here runs inside a host's libc call. Each one saves and restores the
//! host's errno, refuses to re-enter itself on the same thread, fences its logic with
//! `catch_unwind` (a panic turns the library off for good), and performs its own output only
//! after releasing the engine lock.

use crate::custom::{Custom, Status};
use crate::deferred::{Deferred, Op};
use crate::engine::{Effects, Engine};
use crate::fdtable::{FdBits, TRACKED};
use crate::handoff::FileHandoff;
use crate::output;
use crate::probes;
use crate::runtime_api::{AddressError, ApiAddress};
use crate::settings::{LogLevel, Settings};
use std::cell::Cell;
use std::net::SocketAddr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

const UNINITIALIZED: u8 = 0;
/// This process may talk to the Runtime API: connects are checked.
const ACTIVE: u8 = 1;
/// Nothing to do here (no Runtime API, or disabled by setting): every hook passes through.
const PASSIVE: u8 = 2;
/// Turned off after an internal fault; never turned on again.
const PERMANENTLY_DISABLED: u8 = 3;

static MODE: AtomicU8 = AtomicU8::new(UNINITIALIZED);
static ENGINE: Mutex<Option<Engine>> = Mutex::new(None);
/// The Runtime API's addresses, readable without the lock (checked on every connect).
static API: OnceLock<ApiAddress> = OnceLock::new();
static LOG_LEVEL: AtomicU8 = AtomicU8::new(0);
/// The process whose memory the library's state describes: the one that loaded it, or the
/// child our `fork` hook made. See [`in_owner_process`].
static OWNER_PID: AtomicI32 = AtomicI32::new(0);

/// This process's id, from the kernel (never a cached copy: a child made with `vfork` shares
/// its parent's memory, caches included).
fn current_pid() -> i32 {
    // SAFETY: getpid takes no arguments, cannot fail and does not touch errno.
    unsafe { libc::syscall(libc::SYS_getpid) as i32 }
}

/// The custom-metrics channel (`LAMBDA_METER_CHANNEL`): its path, and how far this process
/// has read it (a forked child reads on from its parent's place).
static CHANNEL: OnceLock<std::ffi::CString> = OnceLock::new();
static CHANNEL_READ: AtomicU64 = AtomicU64::new(0);
/// At most this much of the channel is read at once (a runaway writer cannot take our memory).
const CHANNEL_CHUNK: u64 = 1 << 20;

/// What was appended to the channel since the last call (whole lines), and this process's id.
/// One `stat` when nothing was; an open, a `pread` and a close when something was.
fn channel_bytes() -> (Vec<u8>, u32) {
    let pid = OWNER_PID.load(Ordering::Relaxed) as u32;
    let Some(path) = CHANNEL.get() else {
        return (Vec::new(), pid);
    };
    let at = CHANNEL_READ.load(Ordering::Relaxed);
    // SAFETY: an all-zero stat is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated; stat writes only the struct we pass. No allocation:
    // this runs once an invoke.
    let size = match unsafe { libc::stat(path.as_ptr(), &mut st) } {
        0 => st.st_size.max(0) as u64,
        _ => 0,
    };
    if size <= at {
        return (Vec::new(), pid);
    }
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(path.as_bytes()));
    // The newest CHANNEL_CHUNK bytes at most: an ending invoke's values are at the end.
    let from = at.max(size.saturating_sub(CHANNEL_CHUNK));
    let mut buf = vec![0u8; size.saturating_sub(from) as usize];
    let read = std::fs::File::open(path).and_then(|f| {
        use std::os::unix::fs::FileExt;
        f.read_at(&mut buf, from)
    });
    buf.truncate(read.unwrap_or(0));
    // Whole lines only: a line being written is read next time, and one cut by the window
    // is skipped.
    let whole = buf.iter().rposition(|c| *c == b'\n').map_or(0, |i| i + 1);
    buf.truncate(whole);
    if from > at {
        let first = buf.iter().position(|c| *c == b'\n').map_or(0, |i| i + 1);
        buf.drain(..first);
    }
    CHANNEL_READ.store(from + whole as u64, Ordering::Relaxed);
    (buf, pid)
}

/// Whether the calling thread belongs to the process that owns the library's state.
///
/// False in a child made with `vfork`, `posix_spawn` or `clone(CLONE_VM)`: it runs in its
/// parent's memory until it `exec`s (CPython's `subprocess` child calls `close_range` and
/// `dup2` there), so whatever it did to the state — forgetting the parent's Runtime API
/// connection, taking the parent's locks, allocating from the parent's heap — would happen to
/// the parent. Also false in a child forked around our `fork` hook (`_Fork`, a raw `clone`):
/// its inherited state is a stale copy. Such callers pass straight through. One `getpid`
/// system call, only where a tracked fd is connected, closed or duplicated (or `close_range`
/// runs while active): not on the per-invoke byte paths (see `with_engine_for_bytes`).
#[inline]
pub fn in_owner_process() -> bool {
    current_pid() == OWNER_PID.load(Ordering::Relaxed)
}

thread_local! {
    /// Set while this thread runs library logic, so a libc call made by that logic is never
    /// observed again. Const-initialised and without a destructor: no allocation, no TLS
    /// destructor registration, safe from any hook.
    static BUSY: Cell<bool> = const { Cell::new(false) };
    /// How deep this thread is in the host's signal handlers (run by the trampoline in
    /// `ending.rs`). Inside one, hooks neither lock nor allocate: they defer.
    static IN_HANDLER: Cell<u32> = const { Cell::new(0) };
}

/// The host's signal handler starts running on this thread.
pub fn entering_handler() {
    IN_HANDLER.with(|d| d.set(d.get().saturating_add(1)));
}

/// The host's signal handler returned.
pub fn leaving_handler() {
    IN_HANDLER.with(|d| d.set(d.get().saturating_sub(1)));
}

/// The host jumps out of whatever handlers were running (`longjmp` and friends).
pub fn leaving_all_handlers() {
    IN_HANDLER.with(|d| d.set(0));
}

/// Whether connects must be looked at.
#[inline(always)]
pub fn is_active() -> bool {
    MODE.load(Ordering::Relaxed) == ACTIVE
}

/// Called once from the library constructor.
pub fn init(exe_name: &str) {
    let born = probes::mono_ns();
    OWNER_PID.store(current_pid(), Ordering::Relaxed);
    // Every hook needs its real function, active or not: resolve before anything else.
    let missing = crate::real::resolve_all();
    // Silence the default panic message: the host's stderr is not ours. A panic inside a hook
    // is caught, reported in one line, and switches the library off.
    std::panic::set_hook(Box::new(|_| {}));
    let (settings, warnings) = Settings::from_env(&|k| std::env::var(k).ok(), exe_name);
    LOG_LEVEL.store(settings.log_level as u8, Ordering::Relaxed);
    if !settings.disabled && settings.runtime_api.is_some() {
        name_environment();
    }
    // Settings are read by every process that inherits the preload (a handler's `sh -c uname`
    // too); only the runtime process says what is wrong with them.
    let speaks = is_environment_root();
    if speaks {
        for w in &warnings {
            output::warn(w);
        }
    }
    if settings.disabled {
        MODE.store(PASSIVE, Ordering::Relaxed);
        return;
    }
    let Some(raw_api) = settings.runtime_api.clone() else {
        // Not a Lambda runtime (a tool, a child process): never touch anything.
        MODE.store(PASSIVE, Ordering::Relaxed);
        return;
    };
    let api = match ApiAddress::parse(&raw_api) {
        Ok(a) => a,
        Err(e) => {
            let why = match e {
                AddressError::NoPort => "it has no port",
                AddressError::BadPort => "its port is not a number",
                AddressError::NotAnAddress => "its host is not an IP address or localhost",
            };
            if speaks {
                output::warn(&format!(
                    "cannot meter this runtime: AWS_LAMBDA_RUNTIME_API=\"{}\" is not usable ({why})",
                    crate::text::bounded(&raw_api, 80).escape_debug()
                ));
            }
            MODE.store(PASSIVE, Ordering::Relaxed);
            return;
        }
    };
    if !missing.is_empty() {
        if speaks {
            output::warn(&format!(
                "cannot meter this runtime: libc functions not found: {}",
                missing.join(", ")
            ));
        }
        MODE.store(PERMANENTLY_DISABLED, Ordering::Relaxed);
        return;
    }
    let _ = API.set(api.clone());
    output::configure(settings.destination.clone());
    if crate::metrics::GAUGES.iter().any(|m| settings.emits(m)) {
        probes::enable_gauges();
    }
    debug(&format!(
        "metering {} (runtime {}, Runtime API {raw_api})",
        settings.function_name, settings.runtime
    ));
    let mut engine = Engine::new(settings, api, &TRACKED, born);
    if let Some(path) = std::env::var_os("LAMBDA_METER_CHANNEL").filter(|p| !p.is_empty()) {
        // Read from the start: lines of other processes carry their pid or another invoke's
        // request id and are left alone (a shell runtime's result is posted by a process that
        // did not exist when the handler wrote its values).
        if let Ok(path) = std::ffi::CString::new(path.into_vec()) {
            let _ = CHANNEL.set(path);
        }
        engine.read_channel_with(channel_bytes);
    }
    *lock() = Some(engine);
    MODE.store(ACTIVE, Ordering::Release);
}

/// The environment's root process named in `LAMBDA_METER_ENV_ID`, when it names one.
fn environment_id() -> Option<u32> {
    std::env::var("LAMBDA_METER_ENV_ID")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
}

/// Whether this process is the environment's root, the runtime the wrapper started (named in
/// `LAMBDA_METER_ENV_ID`), or may be one (nothing named one).
fn is_environment_root() -> bool {
    environment_id().is_none_or(|root| root == std::process::id())
}

/// Where no wrapper named the environment's root (an OS-only runtime's `bootstrap`, which Lambda
/// starts directly, with `LD_PRELOAD` set in the function's environment), the first process
/// that loads the library is the root and names itself, as the wrapper would: the processes it
/// starts (a shell runtime's `curl` per request) then share its cold start and open invokes
/// instead of each taking itself for a new environment.
///
/// Only in a library preloaded at start-up: its constructor runs before the host's `main`,
/// when no other thread can be reading the environment.
fn name_environment() {
    let preloaded = std::env::var_os("LD_PRELOAD").is_some_and(|p| {
        p.as_encoded_bytes()
            .windows(15)
            .any(|w| w == b"liblambda_meter")
    });
    if preloaded && environment_id().is_none() {
        // SAFETY: see above: the constructor of a preloaded library runs single-threaded,
        // before any code of the host.
        unsafe { std::env::set_var("LAMBDA_METER_ENV_ID", std::process::id().to_string()) };
        if std::env::var_os("LAMBDA_METER_CHANNEL").is_none() {
            let dir = std::env::temp_dir();
            let path = dir.join(format!(".lambda-meter-{}.channel", std::process::id()));
            // SAFETY: as above.
            unsafe { std::env::set_var("LAMBDA_METER_CHANNEL", path) };
        }
    }
}

/// Set once this process has looked for its environment (or must not: a forked child is a
/// runtime of its own).
static ENVIRONMENT_JOINED: AtomicBool = AtomicBool::new(false);

/// On the first Runtime API connection: a process that is not the environment's root (named
/// by the wrapper in `LAMBDA_METER_ENV_ID`) and was started by `exec`, not forked by a
/// runtime, is a per-request helper (a shell runtime's `curl`). It shares the cold start and
/// open invokes with the environment's other processes through [`FileHandoff`], and measures
/// CPU and memory of the root and its children. Everything else stands alone.
fn join_environment() {
    if !ENVIRONMENT_JOINED.swap(true, Ordering::AcqRel) && join_as_helper() {
        HELPER.store(true, Ordering::Release);
    }
    if !HELPER.load(Ordering::Acquire) {
        start_journal();
    }
}

/// Set in a per-request helper process: its invokes live in the handoff, not the journal.
static HELPER: AtomicBool = AtomicBool::new(false);

/// Whether this process is a per-request helper of an environment (and now shares its state).
fn join_as_helper() -> bool {
    let Some(root) = environment_id().filter(|pid| *pid != std::process::id()) else {
        return false;
    };
    let Some(stat) = probes::proc_stat(root) else {
        return false;
    };
    let dir = crate::handoff::state_dir(&std::env::temp_dir(), root, stat.start_ticks);
    match FileHandoff::open(&dir, probes::started_mono_ns(&stat)) {
        Ok(h) => {
            debug(&format!("per-request process of environment {root}"));
            probes::measure_environment(root);
            with_engine(|e| {
                e.attach_handoff(Box::new(h));
                Effects::default()
            });
            true
        }
        Err(e) => {
            debug(&format!("no environment state in {}: {e}", dir.display()));
            false
        }
    }
}

/// Set once this process has looked at the environment's journal (reset in a forked child).
static JOURNAL_STARTED: AtomicBool = AtomicBool::new(false);

/// A runtime process (not a per-request helper) journals its open invokes, so that an invoke
/// the process does not survive still gets its record (see [`crate::ending`]).
fn start_journal() {
    if JOURNAL_STARTED.swap(true, Ordering::AcqRel) {
        return;
    }
    let mut names = None;
    with_engine(|e| {
        if !e.has_journal() {
            let s = e.settings();
            names = Some((
                s.function_name.clone(),
                s.runtime_api.clone().unwrap_or_default(),
            ));
        }
        Effects::default()
    });
    let Some((function_name, runtime_api)) = names else {
        return;
    };
    match crate::ending::start(&function_name, &runtime_api) {
        Some(journal) => {
            let owner = crate::ending::this_owner();
            with_engine(|e| {
                e.attach_journal(journal, owner);
                Effects::default()
            });
        }
        None => debug(
            "no journal in the temporary directory: an invoke the process does not survive will have no record",
        ),
    }
}

fn lock() -> MutexGuard<'static, Option<Engine>> {
    ENGINE.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn debug(msg: &str) {
    if LOG_LEVEL.load(Ordering::Relaxed) >= LogLevel::Debug as u8 {
        output::write_line(
            libc::STDERR_FILENO,
            format!("lambda-meter: debug: {msg}\n").as_bytes(),
        );
    }
}

/// Tracked fds closed, or whose bytes went by unseen, where the engine could not be entered
/// (in the host's `pthread_atfork` handlers inside a fork, or while this thread already runs
/// library logic). Their bits in [`TRACKED`] are cleared at once, without a lock or an
/// allocation; the engine forgets them at its next entry.
static DEFERRED: FdBits = FdBits::new();
static ANY_DEFERRED: AtomicBool = AtomicBool::new(false);

/// Bytes and closes on tracked fds from where the engine could not be entered, replayed in
/// order at its next entry (see [`crate::deferred`]).
static DEFERRED_OPS: Deferred = Deferred::new();

/// Keeps bytes the host moved on tracked `fd` where the engine cannot be entered; when there is
/// no room, stops following the fd instead.
fn defer_bytes(fd: i32, parts: &[&[u8]], sent: bool) {
    let kept = parts.iter().all(|p| {
        if sent {
            DEFERRED_OPS.sent(fd, p)
        } else {
            DEFERRED_OPS.received(fd, p)
        }
    });
    // An end of stream (no bytes) or no room: the connection is done with, as far as we know.
    if !kept || parts.iter().all(|p| p.is_empty()) {
        defer_forget(fd);
    }
}

/// Keeps the close of tracked `fd` where the engine cannot be entered; its bit goes now.
fn defer_close(fd: i32) {
    if TRACKED.contains(fd) && DEFERRED_OPS.closed(fd) {
        TRACKED.remove(fd);
    } else {
        defer_forget(fd);
    }
}

/// Stops following `fd` now, lock-free; the engine forgets it at its next entry.
fn defer_forget(fd: i32) {
    if TRACKED.contains(fd) {
        TRACKED.remove(fd);
        DEFERRED.insert(fd);
        ANY_DEFERRED.store(true, Ordering::Release);
    }
}

/// Runs `f` on the engine with the host's errno kept, re-entry refused and panics fenced, then
/// performs the effects outside the lock. Where the engine cannot be entered, runs `blocked`
/// instead, which must neither lock nor allocate.
fn with_engine_or(f: impl FnOnce(&mut Engine) -> Effects, blocked: impl FnOnce()) {
    // Before anything else, thread-locals included: a vfork child shares them with its parent.
    if !in_owner_process() {
        return;
    }
    enter_engine(f, blocked);
}

/// [`with_engine_or`] for the bytes of a tracked connection (the per-invoke path), without the
/// owner check's `getpid`: a child that shares the parent's memory runs the host's code only
/// between `vfork` and `exec`, where runtimes close and duplicate fds (those paths keep the
/// check) but never talk on the Runtime API connection; bytes moved on it are the
/// connection's, whichever task moved them.
fn with_engine_for_bytes(f: impl FnOnce(&mut Engine) -> Effects, blocked: impl FnOnce()) {
    enter_engine(f, blocked);
}

fn enter_engine(f: impl FnOnce(&mut Engine) -> Effects, blocked: impl FnOnce()) {
    if IN_HANDLER.with(Cell::get) > 0 || BUSY.with(|b| b.replace(true)) {
        blocked();
        return;
    }
    // SAFETY: errno is a thread-local int; reading and writing it has no other effect.
    let saved_errno = unsafe { *libc::__errno_location() };
    let result = catch_unwind(AssertUnwindSafe(|| {
        let (effects, earlier_wakeup, timed_work) = match lock().as_mut() {
            Some(engine) => {
                if ANY_DEFERRED.swap(false, Ordering::AcqRel) {
                    DEFERRED.take_each(|fd| engine.closing(fd));
                }
                let mut fx = Effects::default();
                if DEFERRED_OPS.is_pending() {
                    DEFERRED_OPS.drain(&mut |op| {
                        let more = match op {
                            Op::Sent(fd, bytes) => engine.sent(fd, bytes, &probes::read),
                            Op::Received(fd, bytes) => engine.received(fd, bytes, &probes::read),
                            Op::Closed(fd) => {
                                engine.closing(fd);
                                Effects::default()
                            }
                        };
                        fx.absorb(more);
                    });
                }
                let more = f(engine);
                fx.absorb(more);
                RECORD_AWAITS.store(engine.record_awaits(), Ordering::Relaxed);
                let next = engine.next_wakeup();
                // Wake the watchdog only when something is due before it plans to look: most
                // invokes end long before their deadline, and a wakeup costs two context
                // switches.
                let earlier = next.is_some_and(|n| n < WATCHDOG_PLANNED.load(Ordering::Relaxed));
                (fx, earlier, next.is_some())
            }
            None => (Effects::default(), false, false),
        };
        perform(&effects);
        if timed_work {
            ensure_watchdog();
        }
        if earlier_wakeup {
            WAKE.notify_one();
        }
    }));
    if result.is_err() {
        disable_permanently("internal error");
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
    BUSY.with(|b| b.set(false));
}

/// A custom value from the function (the public C ABI): `add` puts it on the invoke it
/// belongs to. Never blocks on I/O (the engine's lock guards no I/O) and never enters the
/// engine where that could deadlock (inside the host's signal handlers, or from the library's
/// own logic).
pub fn custom(add: impl FnOnce(&mut Custom, &dyn Fn(&str) -> bool) -> Status) -> Status {
    if !is_active() || !in_owner_process() {
        return Status::Inactive;
    }
    if IN_HANDLER.with(Cell::get) > 0 || BUSY.with(|b| b.replace(true)) {
        return Status::Busy;
    }
    // SAFETY: errno is a thread-local int; reading and writing it has no other effect.
    let saved_errno = unsafe { *libc::__errno_location() };
    let thread = crate::custom::thread_key();
    let status = catch_unwind(AssertUnwindSafe(|| match lock().as_mut() {
        Some(engine) => engine.custom(thread, add),
        None => Status::Inactive,
    }))
    .unwrap_or(Status::Busy);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
    BUSY.with(|b| b.set(false));
    status
}

/// [`with_engine_or`] with nothing to do where the engine cannot be entered.
fn with_engine(f: impl FnOnce(&mut Engine) -> Effects) {
    with_engine_or(f, || {});
}

fn perform(effects: &Effects) {
    for line in &effects.lines {
        output::emit_record(line);
    }
    for w in &effects.warnings {
        output::warn(w);
    }
}

/// Wakes the watchdog when an earlier deadline appears.
static WAKE: Condvar = Condvar::new();
/// Whether this process has its watchdog thread (threads do not survive `fork`).
static WATCHDOG: AtomicBool = AtomicBool::new(false);
/// When the watchdog will look next (monotonic ns; `u64::MAX` before it runs).
static WATCHDOG_PLANNED: AtomicU64 = AtomicU64::new(u64::MAX);
/// How long the watchdog sleeps when nothing is due.
const IDLE_WAIT: Duration = Duration::from_secs(60);

/// Starts the watchdog thread once, lazily: only a process that has become a runtime (has an
/// invoke open or a record waiting) ever gets one.
fn ensure_watchdog() {
    if WATCHDOG.swap(true, Ordering::AcqRel) {
        return;
    }
    // Signals sent to the process are the host's business: the thread is born with every
    // signal blocked (a new thread inherits its creator's mask), so none can land on it even
    // before it runs. The creating thread's mask is restored right after.
    // SAFETY: sigfillset and pthread_sigmask write only the sets we pass and this thread's mask.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
    }
    let spawned = std::thread::Builder::new()
        .name("lambda-meter".into())
        .stack_size(256 * 1024)
        .spawn(watchdog);
    // SAFETY: restoring this thread's own mask.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    if spawned.is_ok() {
        probes::set_own_threads(1);
    } else {
        WATCHDOG.store(false, Ordering::Release);
        debug("could not start the watchdog thread; timeouts will not be reported");
    }
}

/// Reports timeouts at their deadline (less the margin) and records that waited long enough
/// for the runtime's next `/next`. Holds the engine lock only while it looks; sleeps on
/// [`WAKE`] until the next thing is due.
fn watchdog() {
    BUSY.with(|b| b.set(true));
    // Signals sent to the process are the host's business: never let one land on this thread.
    // SAFETY: sigfillset and pthread_sigmask write only the set we pass and this thread's mask.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
    loop {
        let step = catch_unwind(AssertUnwindSafe(|| {
            let mut guard = lock();
            let Some(engine) = guard.as_mut() else {
                return false;
            };
            let now = probes::probe();
            let effects = engine.tick(&now);
            if !effects.lines.is_empty() || !effects.warnings.is_empty() {
                drop(guard);
                perform(&effects);
                return true;
            }
            let now_ns = probes::mono_ns();
            let wait = engine
                .next_wakeup()
                .map(|t| Duration::from_nanos(t.saturating_sub(now_ns)))
                .unwrap_or(IDLE_WAIT)
                .min(IDLE_WAIT);
            WATCHDOG_PLANNED.store(
                now_ns.saturating_add(wait.as_nanos() as u64),
                Ordering::Relaxed,
            );
            let _ = WAKE.wait_timeout(guard, wait);
            true
        }));
        match step {
            Ok(true) if is_active() => {}
            Ok(_) => return,
            Err(_) => {
                disable_permanently("internal error in the watchdog");
                return;
            }
        }
    }
}

/// Whether a finished invoke's record waits for the runtime's next request: only then does a
/// write to a tracked fd need a look before it happens. One relaxed load.
#[inline(always)]
pub fn record_awaits() -> bool {
    RECORD_AWAITS.load(Ordering::Relaxed)
}

/// Kept equal to the engine's [`Engine::record_awaits`] after every engine call.
static RECORD_AWAITS: AtomicBool = AtomicBool::new(false);

/// Before the host writes to tracked `fd`, while a record waits (see [`record_awaits`]).
pub fn sending(fd: i32) {
    with_engine_for_bytes(|e| e.sending(fd, &probes::read), || {});
}

/// The process is exiting normally: write what still waits.
pub fn at_exit() {
    if is_active() {
        with_engine(|e| e.flush());
    }
}

/// Turns the library off for the rest of the process; the host carries on untouched.
fn disable_permanently(why: &str) {
    if MODE.swap(PERMANENTLY_DISABLED, Ordering::AcqRel) != PERMANENTLY_DISABLED {
        TRACKED.clear();
        output::warn(&format!(
            "{why}; lambda-meter is off for the rest of this process"
        ));
    }
}

/// After a successful (or in-progress) `connect(fd, addr)`, or a failed one (`addr` = None).
pub fn connected(fd: i32, addr: Option<SocketAddr>) {
    if !in_owner_process() {
        return;
    }
    let interesting = match (&addr, API.get()) {
        (Some(a), Some(api)) => api.matches(a),
        _ => false,
    };
    if interesting {
        // SAFETY: errno is thread-local; saved and restored around the file work below.
        let saved_errno = unsafe { *libc::__errno_location() };
        join_environment();
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = saved_errno };
    }
    if interesting || TRACKED.contains(fd) {
        with_engine_or(|e| e.connected(fd, addr), || defer_forget(fd));
        if interesting && TRACKED.contains(fd) {
            debug(&format!("following fd {fd}: Runtime API connection"));
        }
    }
}

/// Before `fd` is closed.
pub fn closing(fd: i32) {
    with_engine_or(
        |e| {
            e.closing(fd);
            Effects::default()
        },
        || defer_close(fd),
    );
}

/// Before every fd in `first..=last` is closed.
pub fn closing_range(first: u32, last: u32) {
    with_engine_or(
        |e| {
            e.closing_range(first, last);
            Effects::default()
        },
        || TRACKED.each_in(first, last, defer_close),
    );
}

/// After `new_fd` became a copy of `old_fd`.
pub fn duplicated(old_fd: i32, new_fd: i32) {
    with_engine_or(
        |e| {
            e.duplicated(old_fd, new_fd);
            Effects::default()
        },
        // What `new_fd` was is gone; the copy itself is not followed.
        || defer_forget(new_fd),
    );
}

/// After the host wrote the bytes of `parts` (in order) to tracked `fd`.
pub fn sent(fd: i32, parts: &[&[u8]]) {
    with_engine_for_bytes(
        |e| {
            let mut fx = Effects::default();
            for p in parts {
                let more = e.sent(fd, p, &probes::read);
                fx.absorb(more);
            }
            fx
        },
        || defer_bytes(fd, parts, true),
    );
}

/// Bytes of tracked `fd` moved where the library cannot see them (`how`: a `MSG_TRUNC` read,
/// `sendfile`, `splice`, `sendmmsg`, `recvmmsg`): the connection can no longer be followed.
/// One debug line.
pub fn unseen(fd: i32, how: &str) {
    with_engine_or(
        |e| {
            e.closing(fd);
            Effects::default()
        },
        || defer_forget(fd),
    );
    debug(&format!(
        "fd {fd}: bytes moved by {how} went by unseen; no longer following this connection"
    ));
}

/// After the host read the bytes of `parts` (in order) from tracked `fd`; empty = end of stream.
pub fn received(fd: i32, parts: &[&[u8]]) {
    with_engine_for_bytes(
        |e| {
            let mut fx = Effects::default();
            if parts.iter().all(|p| p.is_empty()) {
                return e.end_of_stream(fd, &probes::read);
            }
            for p in parts {
                let more = e.received(fd, p, &probes::read);
                fx.absorb(more);
            }
            fx
        },
        || defer_bytes(fd, parts, false),
    );
}

/// Held across the real `fork`, so the child never inherits the engine or output lock mid-use.
pub struct ForkGuard(Option<(MutexGuard<'static, Option<Engine>>, output::SinkGuard)>);

/// Before the real `fork`. The host's `pthread_atfork` handlers run inside it, on this thread,
/// while the locks are held: the thread is marked busy, so a hook they reach defers its work
/// (see [`DEFERRED`]) instead of waiting for a lock this very thread holds.
pub fn before_fork() -> ForkGuard {
    if !is_active() || !in_owner_process() || BUSY.with(Cell::get) {
        return ForkGuard(None);
    }
    let engine = lock();
    let sink = output::lock_for_fork();
    BUSY.with(|b| b.set(true));
    ForkGuard(Some((engine, sink)))
}

/// After the real `fork`, in parent (`pid` > 0 or failure) or child (`pid` == 0).
pub fn after_fork(guard: ForkGuard, pid: libc::pid_t) {
    let ForkGuard(Some((mut engine, mut sink))) = guard else {
        return;
    };
    // Still busy until the end: the child's own work below (reading /proc) goes through the
    // hooks, maybe on an fd number its atfork handler just closed.
    after_fork_locked(&mut engine, &mut sink, pid);
    drop(sink);
    drop(engine);
    BUSY.with(|b| b.set(false));
}

fn after_fork_locked(
    engine: &mut MutexGuard<'static, Option<Engine>>,
    sink: &mut output::SinkGuard,
    pid: libc::pid_t,
) {
    if pid == 0 {
        // Nothing inherited is followed in the child: what its atfork handlers deferred is void.
        DEFERRED.clear();
        ANY_DEFERRED.store(false, Ordering::Release);
        DEFERRED_OPS.clear();
        // A forked child is a runtime of its own, never a per-request helper, and has no
        // watchdog thread until it needs one.
        OWNER_PID.store(current_pid(), Ordering::Relaxed);
        ENVIRONMENT_JOINED.store(true, Ordering::Release);
        JOURNAL_STARTED.store(false, Ordering::Release);
        HELPER.store(false, Ordering::Release);
        WATCHDOG.store(false, Ordering::Release);
        WATCHDOG_PLANNED.store(u64::MAX, Ordering::Relaxed);
        probes::set_own_threads(0);
        // SAFETY: errno is thread-local; saved and restored around our work.
        let saved_errno = unsafe { *libc::__errno_location() };
        let born = probes::mono_ns();
        if catch_unwind(AssertUnwindSafe(|| {
            if let Some(e) = engine.as_mut() {
                e.forked_child(born, crate::ending::this_owner());
            }
            output::forked_child(sink);
        }))
        .is_err()
        {
            // Takes no lock: safe while the engine and sink locks are held.
            disable_permanently("internal error after fork");
        }
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = saved_errno };
    }
}
