//! The library's state in this process, and the entry points the hooks call on tracked paths.
//!
//! Every entry point here runs inside a host's libc call, and may run anywhere the host calls
//! one: a signal handler, a `pthread_atfork` handler, a thread the host is about to cancel, a
//! process out of memory. So the engine is entered through one gate ([`Gate`]) that never
//! blocks: a thread that finds it taken keeps what it saw in a lock-free queue
//! ([`crate::deferred`]) that the holder replays before it leaves. Inside, nothing allocates
//! (the engine's memory is reserved when the process first talks to the Runtime API), logic is
//! fenced with `catch_unwind` (a panic turns the library off for good), the host's errno is
//! kept, and what is written goes through raw system calls.

use crate::custom::Status;
use crate::deferred::{Deferred, Op};
use crate::engine::{Engine, Role};
use crate::fdtable::FdBits;
use crate::handoff::FileHandoff;
use crate::output;
use crate::probes;
use crate::runtime_api::ApiAddress;
use crate::settings::Settings;
use crate::state::Reset;
use crate::sys;
use crate::thread;
use std::cell::UnsafeCell;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

const UNINITIALIZED: u8 = 0;
/// This process may talk to the Runtime API: connects are checked.
const ACTIVE: u8 = 1;
/// Nothing to do here (no Runtime API, or disabled by setting): every hook passes through.
const PASSIVE: u8 = 2;
/// Turned off after an internal fault; never turned on again.
const PERMANENTLY_DISABLED: u8 = 3;

/// The engine, once reserved; touched only by the thread that holds [`ProcessState::gate`].
struct EngineCell(UnsafeCell<Option<Engine>>);

// SAFETY: the cell is only read or written by the one thread that holds GATE (see `enter`).
unsafe impl Sync for EngineCell {}

/// The process's set of tracked fds (Runtime API sockets), read by every hook: the engine
/// keeps it and resets it with itself.
pub static TRACKED: FdBits = FdBits::new();

/// What threads kept where the engine could not be entered, for its next entry: about
/// 150 KiB whose initial value is all zero bytes, so a static of its own lives in `.bss`. (Inside
/// [`ProcessState`], whose other fields start non-zero, it was in `.data`: file-backed pages
/// of the library that fault-around maps, resident, as soon as a neighbouring field is read.)
/// A forked child forgets it all ([`ProcessState::forked_child`]).
struct Kept {
    /// Tracked fds closed, or whose bytes went by unseen, where the engine could not be
    /// entered. Their bits in `TRACKED` are cleared at once, without a lock or an allocation;
    /// the engine forgets them at its next entry.
    deferred: FdBits,
    /// Tracked fds whose bytes went by where they could not be kept: their connections are
    /// dropped at the engine's next entry.
    unfollowed: FdBits,
    /// Bytes and closes on tracked fds from where the engine could not be entered, replayed
    /// in order at its next entry (see [`crate::deferred`]).
    ops: Deferred,
}

static KEPT: Kept = Kept {
    deferred: FdBits::new(),
    unfollowed: FdBits::new(),
    ops: Deferred::new(),
};

/// This module's part of the library's state in the process ([`crate::state::State`]).
pub struct ProcessState {
    /// Whether connects are looked at: `UNINITIALIZED`, `ACTIVE`, `PASSIVE`,
    /// `PERMANENTLY_DISABLED`.
    mode: AtomicU8,
    /// The settings, read when the process first talks to the Runtime API.
    settings: OnceLock<Settings>,
    /// The Runtime API's addresses, readable without the gate (checked on every connect).
    api: OnceLock<ApiAddress>,
    /// When this process's life began, for its first invoke's init duration (monotonic ns).
    born_ns: AtomicU64,
    /// The engine, once reserved; touched only by the thread that holds `gate`.
    engine: EngineCell,
    gate: Gate,
    /// Set when the gate was taken back from an entry a signal handler never returned to:
    /// the engine's state may be half-updated, so its connections are started afresh.
    abandoned: AtomicBool,
    /// Set once this process has reserved what metering needs (see [`became_runtime`]).
    reserved: AtomicBool,
    /// Set (a futex word) once a reservation was tried, done or not.
    reservation_over: AtomicU32,
    /// Libc functions the library cannot work without that were not found (set at load).
    missing: OnceLock<crate::real::Missing>,
    /// What is wrong with the settings, said once by the environment's runtime process.
    settings_warnings: OnceLock<Vec<String>>,
    settings_said: AtomicBool,
    /// Set once this process has looked for its environment (or must not: a forked child is
    /// a runtime of its own).
    environment_joined: AtomicBool,
    /// Whether this process has taken its part in what the environment shares through files
    /// (the line page, the list of inits): kept by a forked child, whose parent's part it is.
    shared_joined: AtomicBool,
    /// Set once this process has looked at the environment's journal.
    journal_started: AtomicBool,
    /// Set once this process, forking, has looked whether it is its environment's root (see
    /// [`parent_forked`]).
    root_checked: AtomicBool,
    /// Set while the root gets ready at its first fork, where nothing may allocate (the
    /// alloc-guard test build refuses it).
    preparing_root: AtomicBool,
    /// Set when [`KEPT`] has fds for the engine to forget or unfollow.
    any_deferred: AtomicBool,
    /// Set before anything is first put in [`KEPT`] (only a process that became a runtime
    /// does): a forked child of one that never did leaves KEPT's pages untouched (they are
    /// `.bss` it never read: a look alone would fault one in).
    kept: AtomicBool,
    /// Kept equal to the engine's [`Engine::record_awaits`] after every engine call.
    record_awaits: AtomicBool,
    /// Wakes the watchdog (a futex word: any change wakes it).
    wake: AtomicU32,
    /// Whether this process has its watchdog thread (threads do not survive `fork`).
    watchdog: AtomicBool,
    /// When the watchdog will look next (monotonic ns; `u64::MAX` before it runs).
    watchdog_planned: AtomicU64,
    /// A result's wait for its answer was due before the watchdog's look when the engine was
    /// last left, and the watchdog was not woken for it (see [`inside`]).
    answer_wait_pending: AtomicBool,
    /// Set by the watchdog thread once it runs (a futex word).
    started: AtomicU32,
    /// The journal's check by the channel's looks at their directory (see
    /// [`keep_journal_in_place`]): whether the journal is in that directory (`UNKNOWN`, `YES`,
    /// `NO`), the number of the look it last went by, that look, and whether it was trusted.
    journal_in_channel_dir: AtomicU8,
    journal_looks: AtomicU64,
    journal_seen: [AtomicU64; 3],
    journal_trusts: AtomicBool,
}

impl ProcessState {
    pub const fn new() -> ProcessState {
        ProcessState {
            mode: AtomicU8::new(UNINITIALIZED),
            settings: OnceLock::new(),
            api: OnceLock::new(),
            born_ns: AtomicU64::new(0),
            engine: EngineCell(UnsafeCell::new(None)),
            gate: Gate::new(),
            abandoned: AtomicBool::new(false),
            reserved: AtomicBool::new(false),
            reservation_over: AtomicU32::new(0),
            missing: OnceLock::new(),
            settings_warnings: OnceLock::new(),
            settings_said: AtomicBool::new(false),
            environment_joined: AtomicBool::new(false),
            shared_joined: AtomicBool::new(false),
            journal_started: AtomicBool::new(false),
            root_checked: AtomicBool::new(false),
            preparing_root: AtomicBool::new(false),
            any_deferred: AtomicBool::new(false),
            kept: AtomicBool::new(false),
            record_awaits: AtomicBool::new(false),
            wake: AtomicU32::new(0),
            watchdog: AtomicBool::new(false),
            watchdog_planned: AtomicU64::new(u64::MAX),
            answer_wait_pending: AtomicBool::new(false),
            started: AtomicU32::new(0),
            journal_in_channel_dir: AtomicU8::new(UNKNOWN_DIR),
            journal_looks: AtomicU64::new(0),
            journal_seen: [const { AtomicU64::new(0) }; 3],
            journal_trusts: AtomicBool::new(false),
        }
    }

    /// In a forked child (`pid`), first thing: what it keeps of its parent's state, field by
    /// field. It is a runtime of its own, never a per-request helper, has no watchdog
    /// thread, and has not reserved its own threads yet. The engine itself is reset by the
    /// fork hook, which holds the gate across the fork (see [`after_fork`]).
    pub fn forked_child(&self) {
        let ProcessState {
            // Kept: the same settings, Runtime API and libc as the parent.
            mode: _,
            settings: _,
            api: _,
            missing: _,
            settings_warnings: _,
            settings_said: _,
            // Kept: the child's life began with the parent's.
            born_ns: _,
            // The engine is reset under the gate by the fork hook; the gate is let go there.
            engine: _,
            gate: _,
            abandoned,
            reserved,
            reservation_over,
            environment_joined,
            // Kept: a parent that joined shares its page and took the list; one that did not
            // leaves that to the child's first Runtime API connection.
            shared_joined: _,
            journal_started,
            // Kept: a child is never the root (its pid is not the one the wrapper named).
            root_checked: _,
            preparing_root,
            any_deferred,
            // Kept: whether the child's copy of KEPT may hold something (it is emptied below).
            kept,
            record_awaits,
            wake: _,
            watchdog,
            watchdog_planned,
            answer_wait_pending,
            started,
            // Kept: the same files; a child that journals looks again at its first check.
            journal_in_channel_dir: _,
            journal_looks: _,
            journal_seen: _,
            journal_trusts,
        } = self;
        journal_trusts.reset_to(false, Ordering::Relaxed);
        preparing_root.reset_to(false, Ordering::Relaxed);
        // Nothing inherited is followed in the child: what its atfork handlers deferred is
        // void.
        if kept.load(Ordering::Relaxed) {
            KEPT.deferred.clear();
            KEPT.unfollowed.clear();
            KEPT.ops.clear();
        }
        any_deferred.reset_to(false, Ordering::Release);
        environment_joined.reset_to(true, Ordering::Release);
        journal_started.reset_to(false, Ordering::Release);
        watchdog.reset_to(false, Ordering::Release);
        started.reset_to(0, Ordering::Release);
        watchdog_planned.reset_to(u64::MAX, Ordering::Relaxed);
        answer_wait_pending.reset_to(false, Ordering::Relaxed);
        record_awaits.reset_to(false, Ordering::Relaxed);
        abandoned.reset_to(false, Ordering::Relaxed);
        // The child reserves its own (a watchdog thread) when it talks to the Runtime API.
        reserved.reset_to(false, Ordering::Release);
        reservation_over.reset_to(0, Ordering::Release);
    }
}

/// This module's state.
#[inline(always)]
fn ps() -> &'static ProcessState {
    &crate::state::STATE.process
}

/// Who may touch the engine: one thread at a time.
///
/// `owner` holds the holding thread's key (see [`crate::custom::thread_key`]). Each thread
/// also keeps, in [`frame`], the address of a [`Canary`] in the frame of its outermost entry
/// (held, or being made). A thread that finds its own key in `owner` is either inside a signal
/// handler that interrupted its own work — that frame is alive further up its stack (or the
/// handler runs on the alternate signal stack) and its canary is intact — or its earlier entry
/// was left by a handler that never returned (`longjmp`, `setcontext`, an exception, a managed
/// runtime's context restore): then it stands above that frame, or the calls made since have
/// overwritten the canary, and it takes the gate back. No hook of `longjmp` and no count of
/// handler depth is needed for either.
struct Gate {
    owner: AtomicU64,
    /// Entries so far (written only by the holder).
    generation: AtomicU64,
    /// The generation a waiter last gave up on: while it still holds, waiters do not wait.
    stalled: AtomicU64,
}

/// The canary of this thread's outermost entry of the gate (held or being made), or 0: a
/// thread-local variable of `c-abi/interpose.c`, of the initial-exec model (one load relative
/// to the thread pointer; stable Rust's thread locals in a shared object call the loader).
mod frame {
    unsafe extern "C" {
        fn lm_frame_replace(frame: usize) -> usize;
        fn lm_frame_set(frame: usize);
    }

    /// Sets this thread's frame to `frame`; the one it had.
    #[allow(unsafe_code)]
    pub fn replace(frame: usize) -> usize {
        // SAFETY: reads and writes a word of this thread's own; no other effect.
        unsafe { lm_frame_replace(frame) }
    }

    #[allow(unsafe_code)]
    pub fn set(frame: usize) {
        // SAFETY: as in `replace`.
        unsafe { lm_frame_set(frame) }
    }
}

/// A mark in the frame of the code that enters the gate (see [`Gate`]). It must live until
/// that code lets the gate go.
pub struct Canary([AtomicU64; 2]);

impl Canary {
    pub const fn new() -> Canary {
        Canary([AtomicU64::new(0), AtomicU64::new(0)])
    }

    pub fn address(&self) -> usize {
        self as *const Canary as usize
    }

    /// The words a live canary at `at` holds for thread `me`.
    fn expected(me: u64, at: usize) -> [u64; 2] {
        const MARK: u64 = 0x6c6d_5f67_6174_6521;
        [MARK ^ at as u64, !MARK ^ me]
    }

    pub fn set(&self, me: u64) {
        let [a, b] = Canary::expected(me, self.address());
        self.0[0].store(a, Ordering::Relaxed);
        self.0[1].store(b, Ordering::Relaxed);
    }

    /// Whether the canary at `at` is still there, in the live frame of thread `me`. Reads
    /// memory only where the kernel says a mapping is.
    pub fn intact(me: u64, at: usize) -> bool {
        if !sys::is_mapped(at, std::mem::size_of::<Canary>()) {
            return false;
        }
        // SAFETY: `at` is mapped (just checked); it is on this thread's own stack (the only
        // place canaries live), which nothing unmaps while the thread runs; an aligned read
        // of two words that no other thread writes.
        let words = unsafe {
            [
                std::ptr::read_volatile(at as *const u64),
                std::ptr::read_volatile((at as *const u64).wrapping_add(1)),
            ]
        };
        words == Canary::expected(me, at)
    }
}

/// What trying the gate came to.
enum Entry {
    /// This thread holds it now; `outer` is the [`frame`] to put back when it lets go.
    Entered { outer: usize },
    /// This thread holds it further up its own stack (a signal handler interrupted it).
    Nested,
    /// Another thread holds it.
    Busy,
}

/// How long a thread waits for another that holds the gate before it defers instead: the
/// holder's work is a few microseconds (a record write to a pipe nobody drains is the longest,
/// bounded by the write budget). Waiting keeps what each thread saw in the order it saw it —
/// an invoke is journaled before the handler that crashes it runs, a record is written before
/// the `/next` that follows it leaves — and deferring keeps a stuck holder from holding up
/// the host. A holder once waited out is not waited for again.
const WAIT_FOR_HOLDER_NS: u64 = 5_000_000;

impl Gate {
    const fn new() -> Gate {
        Gate {
            owner: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            stalled: AtomicU64::new(u64::MAX),
        }
    }

    fn try_enter(&self, me: u64, canary: &Canary) -> Entry {
        canary.set(me);
        // The frame this thread entered (or was entering) before, if any: it stays the
        // outermost until this entry is let go.
        let outer = frame::replace(canary.address());
        let entered = |outer| {
            let g = self.generation.load(Ordering::Relaxed);
            self.generation.store(g.wrapping_add(1), Ordering::Relaxed);
            Entry::Entered { outer }
        };
        match self
            .owner
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => entered(outer),
            Err(holder) if holder == me => {
                // Deeper on the same stack, or on the signal stack, with the outer frame's
                // canary intact: an interrupted entry still running up the stack. Otherwise
                // that entry was abandoned, and every frame of it is gone.
                let below = canary.address() < outer || sys::on_signal_stack();
                if outer != 0 && below && Canary::intact(me, outer) {
                    frame::set(outer);
                    return Entry::Nested;
                }
                ps().abandoned.store(true, Ordering::Relaxed);
                entered(0)
            }
            Err(_) => {
                frame::set(outer);
                Entry::Busy
            }
        }
    }

    /// [`Gate::try_enter`], waiting a little while another thread holds the gate (see
    /// [`WAIT_FOR_HOLDER_NS`]).
    fn enter(&self, me: u64, canary: &Canary) -> Entry {
        let mut since = None;
        let mut spins = 0u32;
        loop {
            match self.try_enter(me, canary) {
                Entry::Busy => {}
                done => return done,
            }
            let generation = self.generation.load(Ordering::Relaxed);
            if self.stalled.load(Ordering::Relaxed) == generation {
                return Entry::Busy;
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
                continue;
            }
            let now = probes::mono_ns();
            let start = *since.get_or_insert(now);
            if now.saturating_sub(start) >= WAIT_FOR_HOLDER_NS {
                self.stalled.store(generation, Ordering::Relaxed);
                return Entry::Busy;
            }
            sys::sched_yield();
        }
    }

    /// Lets go of an entry made with [`Entry::Entered`]`{ outer }`.
    fn leave(&self, outer: usize) {
        self.owner.store(0, Ordering::Release);
        frame::set(outer);
    }

    /// A forked child: the thread that held the gate in the parent does not exist here.
    fn reset(&self) {
        self.owner.reset_to(0, Ordering::Release);
    }
}

/// Whether connects must be looked at.
#[inline(always)]
pub fn is_active() -> bool {
    ps().mode.load(Ordering::Relaxed) == ACTIVE
}

/// Whether this process became a runtime: it talked to the Runtime API and everything the
/// library needs from then on is reserved. From here on, nothing of the library allocates.
pub fn became_runtime() -> bool {
    ps().reserved.load(Ordering::Acquire)
}

/// Called once from the library constructor: notes when the process began and what libc
/// lacks. Nothing else happens at load, and no system call is made: a process that never talks
/// to the Runtime API never sees the library (see [`activate`]).
pub fn loaded(missing: crate::real::Missing) {
    // The vDSO's clock: no system call in the constructor (a seccomp allowlist made from a
    // trace of the program without the library need not allow clock_gettime).
    ps().born_ns.store(probes::mono_ns(), Ordering::Relaxed);
    let _ = ps().missing.set(missing);
}

/// Whether connects must be looked at, deciding it on the first call: the process is on its
/// way to becoming a runtime only once it connects somewhere (or looks a name up to), gives a
/// custom value, asks the
/// C ABI whether it is metered, or loads a library with `RTLD_DEEPBIND`. Then, and not before,
/// the library reads `AWS_LAMBDA_RUNTIME_API` (no allocation, one `getpid`).
pub fn activate() -> bool {
    let mode = ps().mode.load(Ordering::Acquire);
    if mode != UNINITIALIZED {
        return mode == ACTIVE;
    }
    // Two threads may decide at once: they decide the same.
    probes::set_owner(sys::getpid());
    // SAFETY: getenv with a NUL-terminated name; the value is read at once.
    let raw = unsafe { libc::getenv(c"AWS_LAMBDA_RUNTIME_API".as_ptr()) };
    // SAFETY: as above.
    let disable = unsafe { libc::getenv(c"LAMBDA_METER_DISABLE".as_ptr()) };
    let disabled = !disable.is_null()
        // SAFETY: getenv returned a NUL-terminated string of the environment.
        && std::str::from_utf8(unsafe { std::ffi::CStr::from_ptr(disable) }.to_bytes())
            .ok()
            .and_then(crate::settings::parse_bool)
            == Some(true);
    let next = if raw.is_null() || disabled {
        // Not a Lambda runtime (a tool, a child process), or switched off: never touch
        // anything. (An unusable LAMBDA_METER_DISABLE is said when the settings are read.)
        PASSIVE
    } else {
        // SAFETY: getenv returned a NUL-terminated string of the environment.
        let raw = unsafe { std::ffi::CStr::from_ptr(raw) }.to_bytes();
        let text = std::str::from_utf8(raw).unwrap_or("");
        match ApiAddress::parse(text) {
            Ok(api) => {
                let _ = ps().api.set(api);
                // The connections of its init are followed too (a database client made
                // outside the handler). A process started by the runtime follows its own
                // until it turns out to be a per-request helper: if it is a runtime of its own
                // (a worker of Python's on Managed Instances), they are its invokes'.
                if downstream_wanted() {
                    crate::ledger::switch_on();
                    crate::ledger::open_own();
                }
                ACTIVE
            }
            Err(e) => {
                output::warn_fmt(format_args!(
                    "cannot meter this runtime: AWS_LAMBDA_RUNTIME_API=\"{}\" is not usable ({})",
                    crate::text::bounded_str(text, 80).escape_debug(),
                    e.describe()
                ));
                PASSIVE
            }
        }
    };
    let _ = ps()
        .mode
        .compare_exchange(UNINITIALIZED, next, Ordering::AcqRel, Ordering::Acquire);
    ps().mode.load(Ordering::Acquire) == ACTIVE
}

fn say_settings_warnings() {
    if ps().settings_said.swap(true, Ordering::Relaxed) {
        return;
    }
    for w in ps().settings_warnings.get().into_iter().flatten() {
        output::warn(w);
    }
}

/// The settings, read when the process first talks to the Runtime API (under the gate, as it
/// reserves). False when it must not be metered: disabled by setting, libc lacking a function,
/// an unusable `AWS_LAMBDA_RUNTIME_API`; each said in one warning by the runtime process.
fn read_settings() -> bool {
    if ps().settings.get().is_some() {
        return true;
    }
    std::panic::set_hook(Box::new(|_| on_panic()));
    // What stdout and stderr are now: records go there only while they still are.
    output::remember_log_streams();
    let exe = std::fs::read_link("/proc/self/exe")
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown".to_string());
    let (settings, warnings) = Settings::from_env(&|k| std::env::var(k).ok(), &exe);
    output::set_log_level(settings.log_level);
    // Settings are read by every process that talks to the Runtime API (a shell runtime's
    // `curl` too); only the runtime process says what is wrong with them, once it is known
    // (see `say_settings_warnings`).
    let _ = ps().settings_warnings.set(warnings);
    let speaks = is_environment_root();
    if settings.disabled {
        if speaks {
            say_settings_warnings();
        }
        ps().mode.store(PASSIVE, Ordering::Release);
        return false;
    }
    if let Some(missing) = ps().missing.get().filter(|m| !m.is_empty()) {
        if speaks {
            let mut names = [0u8; 256];
            output::warn_fmt(format_args!(
                "cannot meter this runtime: libc functions not found: {}",
                missing.list(&mut names)
            ));
        }
        ps().mode.store(PERMANENTLY_DISABLED, Ordering::Release);
        return false;
    }
    output::configure(settings.destination.clone());
    if crate::metrics::gauges().any(|m| settings.emits(m.name)) {
        probes::enable_gauges();
    }
    use std::os::unix::ffi::OsStringExt;
    match std::env::var_os("LAMBDA_METER_CHANNEL").filter(|p| !p.is_empty()) {
        Some(path) => crate::channel::configure(path.into_vec()),
        // As the shims name it: an empty TMPDIR is /tmp.
        None => crate::channel::configure_default(
            std::env::var_os("TMPDIR")
                .filter(|d| !d.is_empty())
                .map_or_else(|| b"/tmp".to_vec(), |d| d.into_vec()),
        ),
    }
    let _ = ps().settings.set(settings);
    true
}

/// The process has just connected to the Runtime API for the first time: reserve everything
/// metering will need (the engine, its journal, the watchdog thread), once. The last moment the
/// library allocates. False when it cannot be had (the process then runs unmetered, with one
/// warning).
fn reserve() -> bool {
    if became_runtime() {
        return true;
    }
    if !read_settings() {
        return false;
    }
    let Some(settings) = ps().settings.get() else {
        return false;
    };
    let Some(api) = ps().api.get() else {
        return false;
    };
    probes::forget_identities();
    if engine_cell().is_none() {
        let born = ps().born_ns.load(Ordering::Relaxed);
        match Engine::try_new(settings.clone(), *api, &TRACKED, born) {
            Some(mut engine) => {
                output::debug(format_args!(
                    "metering {} (runtime {}, Runtime API {})",
                    settings.function_name,
                    settings.runtime,
                    settings.runtime_api.as_deref().unwrap_or_default()
                ));
                if crate::channel::is_configured() {
                    engine.read_channel_with(channel_bytes);
                }
                *engine_cell() = Some(engine);
            }
            None => {
                disable_permanently("not enough memory to meter this runtime");
                return false;
            }
        }
    }
    join_environment();
    // A per-request helper (a shell runtime's curl) is measured through its environment's
    // processes instead (see `probes::measure_environment`): it pays nothing for this.
    if probes::environment_root().is_none() {
        probes::find_environment_cgroup(settings.memory_size_mb);
    }
    // What its invokes wait on: in a process started by the runtime too, until it turns out
    // to be a per-request helper (a runtime of its own, started by a shell that does not
    // `exec` it, or a worker of Python's on Managed Instances, has its invokes' from its
    // first).
    // Calls kept before were its init's: not kept.
    crate::ledger::forget_own();
    if let Some(engine) = engine_cell().as_mut()
        && settings.downstream
        && crate::ledger::is_on()
    {
        engine.link_downstream(crate::ledger::LINK);
    }
    // Here, not later: once the process is a runtime no hook path may create a thread (it
    // allocates and takes the loader's locks), even in a process that turns out to be a
    // per-request helper, which never needs one.
    start_watchdog();
    ps().reserved.store(true, Ordering::Release);
    true
}

/// Whether this process is metered, after [`ensure_reserved`].
enum Reservation {
    Done,
    /// Another thread holds the gate (reserving, most likely): what this one saw can be kept
    /// for it to replay.
    Busy,
    Failed,
}

/// Reserves what metering needs, under the gate, if this process has not yet: when it first
/// talks to the Runtime API, or gives a custom value before that (during its init).
fn ensure_reserved() -> Reservation {
    if became_runtime() {
        return Reservation::Done;
    }
    let me = crate::custom::thread_key();
    let canary = Canary::new();
    let outer = match ps().gate.enter(me, &canary) {
        Entry::Entered { outer } => outer,
        Entry::Nested => return Reservation::Busy,
        Entry::Busy => return wait_for_reservation(),
    };
    // SAFETY: errno is thread-local; saved and restored around the reservation.
    let saved_errno = unsafe { *libc::__errno_location() };
    let reserved = catch_unwind(reserve).unwrap_or(false);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
    leave(me, outer);
    if ps().reservation_over.swap(OVER, Ordering::AcqRel) == WAITED_FOR {
        sys::futex_wake(&ps().reservation_over);
    }
    if reserved {
        Reservation::Done
    } else {
        Reservation::Failed
    }
}

/// [`ProcessState::reservation_over`]: the reservation is over.
const OVER: u32 = 1;
/// [`ProcessState::reservation_over`]: not yet, and a thread may be asleep waiting for it (the
/// reserving thread then wakes it; otherwise it makes no system call for it).
const WAITED_FOR: u32 = 2;

/// How long a thread that talks to the Runtime API waits for another thread's reservation
/// (once per process): everything it does meanwhile would otherwise be kept for replay, in a
/// bounded queue that a fast conversation on a loaded machine can fill.
const RESERVATION_WAIT_NS: u64 = 1_000_000_000;

/// Another thread holds the gate while this one needs the reservation: waits (without
/// spinning, at most [`RESERVATION_WAIT_NS`]) for the reservation to be over.
fn wait_for_reservation() -> Reservation {
    let start = probes::mono_ns();
    // SAFETY: errno is thread-local; futex waits may set it.
    let saved_errno = unsafe { *libc::__errno_location() };
    loop {
        if became_runtime() {
            break;
        }
        let waited = probes::mono_ns().saturating_sub(start);
        let over = &ps().reservation_over;
        if waited >= RESERVATION_WAIT_NS
            || over
                .compare_exchange(0, WAITED_FOR, Ordering::AcqRel, Ordering::Acquire)
                .is_err_and(|now| now == OVER)
        {
            break;
        }
        sys::futex_wait(over, WAITED_FOR, RESERVATION_WAIT_NS - waited);
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
    if became_runtime() {
        Reservation::Done
    } else {
        Reservation::Busy
    }
}

/// The engine cell.
#[allow(clippy::mut_from_ref)]
fn engine_cell() -> &'static mut Option<Engine> {
    // SAFETY: only called by the thread that holds GATE (or during reservation, which happens
    // under it too), so no other reference to the engine exists meanwhile.
    unsafe { &mut *ps().engine.0.get() }
}

/// The environment's root process named in `LAMBDA_METER_ENV_ID` (the wrapper names the
/// runtime it starts), when it names one.
fn environment_id() -> Option<u32> {
    std::env::var("LAMBDA_METER_ENV_ID")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
}

/// The root of the environment this process belongs to, when that is another process: the
/// one the wrapper named, or else the furthest ancestor started with the library preloaded for
/// the same Runtime API (a shell `bootstrap` whose `curl`s talk to it, or `strace`, `timeout`,
/// a shell that does not `exec` the runtime). Read from `/proc` once, when the process first
/// talks to the Runtime API; nothing is named at load. `me` is this process.
fn environment_root_of(me: u32) -> Option<u32> {
    if let Some(root) = sys::getenv(c"LAMBDA_METER_ENV_ID")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u32>().ok())
    {
        return (root != me && probes::proc_stat(root).is_some_and(|s| s.running)).then_some(root);
    }
    let api = sys::getenv(c"AWS_LAMBDA_RUNTIME_API")?;
    let mut root = None;
    let mut pid = parent_of(me)?;
    // Bounded: a chain of processes is not deeper than this in practice.
    for _ in 0..32 {
        if pid <= 1 || !preloaded_for(pid, api) {
            break;
        }
        root = Some(pid);
        pid = parent_of(pid)?;
    }
    root
}

/// At the exit of a process that talked to other services and never to the Runtime API (a
/// function's child: a shell runtime's `curl`, a handler's `subprocess`): its calls go to its
/// environment's runtime, appended to the channel that runtime reads where it writes the
/// invoke's record (see [`crate::ledger::own_lines`]). Nothing here allocates: exit may be
/// called from a signal handler that interrupted `malloc`.
pub fn hand_over_calls() {
    if !is_active() || became_runtime() || !crate::ledger::is_on() {
        return;
    }
    let mut lines = [0u8; 8192];
    let mut out = crate::text::Out::new(&mut lines);
    let me = sys::getpid();
    crate::ledger::own_lines(me, probes::mono_ns(), &mut out);
    if out.is_empty() {
        return;
    }
    let mut path = [0u8; 600];
    if let Some(path) = child_channel_path(me, &mut path) {
        crate::channel::append(path, out.written());
    }
}

/// The channel of this process's environment, NUL-terminated, in `buf`: `LAMBDA_METER_CHANNEL`,
/// else `$TMPDIR/.lambda-meter-<root>.channel` (as the runtime names it), `<root>` the
/// environment's root process ([`environment_root_of`]). `None` when it has none.
fn child_channel_path(me: u32, buf: &mut [u8; 600]) -> Option<&[u8]> {
    if let Some(path) = sys::getenv(c"LAMBDA_METER_CHANNEL").filter(|p| !p.is_empty()) {
        let mut out = crate::text::Out::new(buf);
        out.bytes(path);
        out.byte(0);
        let (len, overflowed) = (out.len(), out.overflowed());
        return (!overflowed).then(|| buf.get(..len)).flatten();
    }
    let root = environment_root_of(me)?;
    let dir = sys::getenv(c"TMPDIR")
        .filter(|d| !d.is_empty())
        .unwrap_or(b"/tmp");
    crate::channel::default_path(dir, root, "", buf)
}

/// Whether process `pid` was started with this library in `LD_PRELOAD` and `api` as its
/// `AWS_LAMBDA_RUNTIME_API` (its environment as it began, `/proc/<pid>/environ`), read a piece
/// at a time into buffers of its own, without allocating (a variable longer than those is
/// judged by its beginning).
fn preloaded_for(pid: u32, api: &[u8]) -> bool {
    let mut path = [0u8; 40];
    let mut p = crate::text::Out::new(&mut path);
    p.bytes(b"/proc/");
    p.decimal(u64::from(pid));
    p.bytes(b"/environ\0");
    let len = p.len();
    let Ok(fd) = sys::open(
        path.get(..len).unwrap_or_default(),
        libc::O_RDONLY | libc::O_CLOEXEC,
        0,
    ) else {
        return false;
    };
    let (mut preloaded, mut same_api) = (false, false);
    let mut var = [0u8; 1024];
    let mut var_len = 0;
    let mut chunk = [0u8; 4096];
    let mut judge = |var: &[u8]| {
        if let Some(list) = var.strip_prefix(b"LD_PRELOAD=") {
            preloaded = list.windows(15).any(|w| w == b"liblambda_meter");
        } else if let Some(value) = var.strip_prefix(b"AWS_LAMBDA_RUNTIME_API=") {
            same_api = value == api;
        }
    };
    // Bounded: an environment is at most a few MiB.
    for _ in 0..4096 {
        let n = match sys::read(fd as i32, &mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in chunk.get(..n).unwrap_or_default() {
            if b == 0 {
                judge(var.get(..var_len).unwrap_or_default());
                var_len = 0;
            } else if let Some(slot) = var.get_mut(var_len) {
                *slot = b;
                var_len += 1;
            }
        }
    }
    if var_len > 0 {
        judge(var.get(..var_len).unwrap_or_default());
    }
    let _ = sys::close(fd as i32);
    preloaded && same_api
}

/// The parent of `pid`, from `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> Option<u32> {
    probes::identity(pid).map(|i| i.ppid)
}

/// Whether `LAMBDA_METER_DOWNSTREAM` leaves the function's connections followed, read without
/// allocating (it runs on a hook path; the settings, read later, say a value that is not
/// usable).
fn downstream_wanted() -> bool {
    // SAFETY: getenv with a NUL-terminated name; the value is read at once.
    let raw = unsafe { libc::getenv(c"LAMBDA_METER_DOWNSTREAM".as_ptr()) };
    raw.is_null()
        // SAFETY: getenv returned a NUL-terminated string of the environment.
        || std::str::from_utf8(unsafe { std::ffi::CStr::from_ptr(raw) }.to_bytes())
            .ok()
            .and_then(crate::settings::parse_bool)
            != Some(false)
}

/// Whether this process is its environment's root (or may be one: none is known). Settings
/// warnings and records of a process that is not are said by the root's own.
fn is_environment_root() -> bool {
    environment_id().is_none_or(|root| root == std::process::id())
}

/// On the first Runtime API connection. A process that is not its environment's root (see
/// [`environment_root_of_this`]) shares the environment's state ([`FileHandoff`]: one cold
/// start, invokes begun in one process and ended in another) until its requests show what it
/// is: a runtime of its own, or a per-request helper (see [`Engine::attach_handoff`]).
/// Every process journals its open invokes; an undecided one's are handed on at its exit,
/// not ended (see [`crate::ending::set_undecided`]).
fn join_environment() {
    // One getpid for all that follows (each is a system call).
    let me = sys::getpid();
    crate::channel::set_owner(me);
    let first = !ps().environment_joined.swap(true, Ordering::AcqRel);
    if first
        && let Some(root) = environment_root_of(me)
        && share_environment(root, me)
    {
        crate::ending::set_undecided(true);
    } else {
        say_settings_warnings();
    }
    if !ps().shared_joined.swap(true, Ordering::AcqRel) {
        // From now on the environment's processes share whether its log line is open.
        crate::lines::environment_joined(output::own_open_lines());
        // The environment's runtime reached the Runtime API: its init is over. Earlier ones
        // that never did were killed while an invoke waited for them.
        let root = environment_id().unwrap_or(me);
        if let Some(ended) = crate::ending::claim_ended_inits(root)
            && let Some(e) = engine_cell()
        {
            output::debug(format_args!(
                "{} earlier runtime process(es) of this environment ended in their init",
                ended.count
            ));
            e.inits_never_ended(ended);
        }
    }
    start_journal();
}

/// Opens the state of `root`'s environment for this process, `me`.
fn share_environment(root: u32, me: u32) -> bool {
    let Some(root_id) = probes::identity(root) else {
        return false;
    };
    let dir = crate::handoff::state_dir(&std::env::temp_dir(), root, root_id.start_ticks);
    match FileHandoff::open(&dir, probes::started_mono_ns(root_id.start_ticks)) {
        Ok(h) => {
            output::debug(format_args!("a process of environment {root}"));
            let mut chain = [0u32; probes::MAX_MEASURED];
            let n = chain_to(root, me, &mut chain);
            probes::measure_environment(root, chain.get(..n).unwrap_or_default());
            crate::channel::set_owner(root);
            if let Some(e) = engine_cell() {
                e.attach_handoff(Box::new(h));
            }
            true
        }
        Err(e) => {
            output::debug(format_args!(
                "no environment state in {}: {e}",
                dir.display()
            ));
            false
        }
    }
}

/// The ancestors of `me` (this process) from its parent up to `root` into `chain`: how many
/// (none when `root` is not among the first [`probes::MAX_MEASURED`]). In a shell runtime whose
/// `bootstrap` was exec'd by the wrapper that is the shell (and a subshell that ran the
/// helper); under a next wrapper that runs the runtime as its child and waits, the runtime
/// and that wrapper: the runtime's CPU is then measured, not only the waiting wrapper's.
fn chain_to(root: u32, me: u32, chain: &mut [u32]) -> usize {
    let mut pid = parent_of(me);
    let mut n = 0;
    while let Some(p) = pid {
        let Some(slot) = chain.get_mut(n) else {
            return 0;
        };
        *slot = p;
        n += 1;
        if p == root {
            return n;
        }
        if p <= 1 {
            return 0;
        }
        pid = parent_of(p);
    }
    0
}

/// What the engine found this process to be, acted on (under the gate, after each call).
fn decided(engine: &mut Engine, role: Role) {
    match role {
        Role::Runtime => {
            // Its own CPU, memory, stdout and channel, and its own endings.
            output::debug(format_args!("a runtime of its own"));
            probes::measure_environment(0, &[]);
            crate::channel::set_owner(sys::getpid());
            crate::ending::set_undecided(false);
            say_settings_warnings();
        }
        Role::Helper => {
            output::debug(format_args!("a per-request process"));
            crate::ledger::switch_off();
            engine.unlink_downstream();
        }
        Role::Alone | Role::Undecided => {}
    }
}

/// A runtime process (not a per-request helper) journals its open invokes, so that an invoke
/// the process does not survive still gets its record (see [`crate::ending`]).
fn start_journal() {
    if ps().journal_started.swap(true, Ordering::AcqRel) {
        return;
    }
    let Some(e) = engine_cell() else {
        return;
    };
    if e.has_journal() {
        return;
    }
    let s = e.settings();
    let names = (
        s.function_name.clone(),
        s.runtime_api.clone().unwrap_or_default(),
    );
    match crate::ending::start(&names.0, &names.1) {
        Ok(journal) => {
            // From now on a fatal signal writes the journal's records.
            crate::signals::watch();
            let owner = probes::this_owner();
            if e.attach_journal(journal, owner).is_none() {
                output::debug(format_args!("no room to journal open invokes"));
            }
        }
        Err(why) => output::warn_fmt(format_args!(
            "no journal of open invokes in the temporary directory ({why}): an invoke the runtime does not survive will have no record"
        )),
    }
}

/// Notes, before anything goes into [`KEPT`], that something may be there.
#[inline(always)]
fn note_kept() {
    if !ps().kept.load(Ordering::Relaxed) {
        ps().kept.store(true, Ordering::Relaxed);
        // Up before anything is written to KEPT, in every copy a fork makes meanwhile.
        std::sync::atomic::fence(Ordering::Release);
    }
}

/// Keeps bytes the host moved on tracked `fd` where the engine cannot be entered; when there is
/// no room, stops following the fd instead.
fn defer_bytes(fd: i32, parts: &[&[u8]], sent: bool) {
    note_kept();
    let at = probes::mono_ns();
    // No bytes read (no parts, or an empty one): the end of the stream, kept as one.
    let eos: &[&[u8]] = &[&[]];
    let parts = if !sent && parts.iter().all(|p| p.is_empty()) {
        eos
    } else {
        parts
    };
    let kept = parts.iter().all(|p| {
        if sent {
            KEPT.ops.sent(fd, p, at)
        } else {
            KEPT.ops.received(fd, p, at)
        }
    });
    // No room: bytes of the connection went by unkept, so it is not followed any more. (An
    // end of stream that was kept is replayed as one.)
    if !kept {
        defer_unfollow(fd);
    }
}

/// Keeps the close of tracked `fd` where the engine cannot be entered; its bit goes now.
fn defer_close(fd: i32) {
    note_kept();
    if TRACKED.contains(fd) && KEPT.ops.closed(fd) {
        TRACKED.remove(fd);
    } else {
        defer_forget(fd);
    }
}

/// Keeps a connect where the engine cannot be entered. A Runtime API connection is marked
/// followed at once, so that its bytes reach the hooks' slow path (and are kept behind it) until
/// the connect is replayed; without room, it is not followed.
fn defer_connect(fd: i32, addr: Option<SocketAddr>, interesting: bool) {
    note_kept();
    if KEPT.ops.connected(fd, addr) {
        if interesting {
            TRACKED.insert(fd);
        } else {
            TRACKED.remove(fd);
        }
    } else {
        defer_forget(fd);
    }
}

/// Keeps a dup of a tracked fd where the engine cannot be entered: the copy is followed from
/// now on, as the original is; without room, what `new_fd` was is forgotten, unfollowed.
fn defer_duplicate(old_fd: i32, new_fd: i32) {
    note_kept();
    if TRACKED.contains(old_fd) && KEPT.ops.duplicated(old_fd, new_fd) {
        TRACKED.insert(new_fd);
    } else {
        defer_forget(new_fd);
    }
}

/// Stops following `fd` now, lock-free; the engine forgets it at its next entry, after what
/// was kept before (everything after it found no room either).
fn defer_forget(fd: i32) {
    note_kept();
    if TRACKED.contains(fd) {
        TRACKED.remove(fd);
        KEPT.deferred.insert(fd);
        ps().any_deferred.store(true, Ordering::Release);
    }
}

/// Bytes of `fd`'s connection went by unkept: the whole connection (every fd of it) is not
/// followed any more, from the engine's next entry, with one debug line.
fn defer_unfollow(fd: i32) {
    note_kept();
    if TRACKED.contains(fd) {
        TRACKED.remove(fd);
        KEPT.unfollowed.insert(fd);
        ps().any_deferred.store(true, Ordering::Release);
    }
}

/// Runs `f` on the engine with the host's errno kept and panics fenced, then writes what it
/// put in the outbox. Where the engine cannot be entered, runs `blocked` instead, which must
/// neither lock nor allocate. Returns `f`'s result when it ran.
fn enter<R>(f: impl FnOnce(&mut Engine) -> R, blocked: impl FnOnce()) -> Option<R> {
    // SAFETY: errno is a thread-local int; reading and writing it has no other effect.
    let saved_errno = unsafe { *libc::__errno_location() };
    let me = crate::custom::thread_key();
    let canary = Canary::new();
    let result = match ps().gate.enter(me, &canary) {
        Entry::Busy | Entry::Nested => {
            blocked();
            None
        }
        Entry::Entered { outer } => {
            let r = inside(f);
            leave(me, outer);
            r
        }
    };
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
    result
}

/// A test build (`--features panic-inject`): with `LAMBDA_METER_INJECT_PANIC` set, a panic
/// where the library's own code could panic, inside the engine's entry.
#[cfg(feature = "panic-inject")]
#[allow(clippy::panic)]
fn inject_panic() {
    // Read without allocating: `watchdog` panics only on the library's own thread, which
    // must not allocate behind the C library's back (see `thread`).
    // SAFETY: getenv with a NUL-terminated name; the value is only read, while no thread of
    // the test's host changes the environment.
    let value = unsafe { libc::getenv(c"LAMBDA_METER_INJECT_PANIC".as_ptr()) };
    if value.is_null() {
        return;
    }
    // SAFETY: getenv's value is a NUL-terminated string.
    let watchdog_only = unsafe { std::ffi::CStr::from_ptr(value) }.to_bytes() == b"watchdog";
    if !watchdog_only || thread::is_own_thread() {
        panic!("injected (LAMBDA_METER_INJECT_PANIC)");
    }
}

/// The library's panic hook. Silent: the host's stderr is not ours (a panic inside a hook is
/// caught by its entry, reported in one line, and switches the library off). On the library's
/// own thread a panic must not unwind (see [`thread`]): the library turns off here, with the
/// same line, and the thread sleeps for good, holding what it held.
fn on_panic() {
    if thread::is_own_thread() {
        disable_permanently("internal error");
        park();
    }
}

/// `catch_unwind`, out of line. The standard library reaches its panic count, which an unwind
/// updates, through `__tls_get_addr` (a thread-local of a shared object, of the
/// general-dynamic model), and the compiler makes that call at the start of whatever function
/// the catch is inlined into, panic or not. The library's own thread (see `thread`) must never
/// make it: once the host loaded objects with thread-local storage after the thread started,
/// the loader brings the thread's table up to date in that call, with `realloc` when it grows,
/// behind the back of a C library that takes no lock in a single-threaded process. Out of
/// line, the call is made only on the host's threads, which [`inside`] sends here.
#[inline(never)]
fn fenced<T>(work: impl FnOnce() -> T + std::panic::UnwindSafe) -> std::thread::Result<T> {
    catch_unwind(work)
}

/// When something is next due that only time brings, and when a result's wait for its answer
/// ends (see [`Engine::next_wakeups`]).
type Wakeups = (Option<u64>, Option<u64>);

/// [`inside`]'s work in the engine, once for both ways it is run: replays what others
/// deferred, runs `f`, keeps the journal in place; `f`'s result and the engine's next wakeups.
#[inline(never)]
fn engine_work<R>(f: impl FnOnce(&mut Engine) -> R) -> Option<(R, Wakeups)> {
    let engine = engine_cell().as_mut()?;
    #[cfg(feature = "panic-inject")]
    inject_panic();
    if ps().abandoned.swap(false, Ordering::Relaxed) {
        // An entry of this thread was left half-way by a signal handler that never
        // returned: a connection it was parsing then cannot be trusted.
        engine.abandoned();
    }
    replay_deferred(engine);
    let opened = engine.opened_count();
    let looks = crate::channel::dir_look().map(|(_, _, n)| n);
    let r = f(engine);
    if engine.opened_count() != opened || crate::channel::dir_look().map(|(_, _, n)| n) != looks {
        keep_journal_in_place(engine, false);
    }
    if let Some(role) = engine.take_decision() {
        decided(engine, role);
    }
    ps().record_awaits
        .store(engine.record_awaits(), Ordering::Relaxed);
    Some((r, engine.next_wakeups()))
}

/// Holding the gate: replays what others deferred, runs `f`, writes the outbox.
fn inside<R>(f: impl FnOnce(&mut Engine) -> R) -> Option<R> {
    let work = AssertUnwindSafe(|| engine_work(f));
    // The library's own thread runs it unfenced (a panic there parks it: see `on_panic`).
    let ran = if thread::is_own_thread() {
        Ok(work())
    } else {
        fenced(work)
    };
    let (r, (firm, answers)) = match ran {
        Ok(Some(done)) => done,
        Ok(None) => return None,
        Err(_) => {
            disable_permanently("internal error");
            return None;
        }
    };
    write_outbox();
    // Wake the watchdog only when something is due before it plans to look: most invokes end
    // long before their deadline, and a wakeup costs two context switches (and the thread
    // that comes next into the engine waits for it). A result's wait for its answer wakes it
    // only when still due at the next call into the engine: the answer comes within
    // microseconds, read by the host's next call, which ends the wait (a shell runtime's curl
    // that posts a result then exits without ever waking its watchdog). A host that never
    // reads the answer asks for its next event, or exits, through the library all the same.
    let planned = ps().watchdog_planned.load(Ordering::Relaxed);
    let due = |t: Option<u64>| t.is_some_and(|t| t < planned);
    // (A load and a store, not a swap: this thread still holds the gate, so no other one is
    // here.)
    let answer_was_pending = ps().answer_wait_pending.load(Ordering::Relaxed);
    let wake = due(firm) || (due(answers) && answer_was_pending);
    let pending = !wake && due(answers);
    if pending != answer_was_pending {
        ps().answer_wait_pending.store(pending, Ordering::Relaxed);
    }
    if wake {
        ps().watchdog_planned.store(0, Ordering::Relaxed);
        ps().wake.fetch_add(1, Ordering::Release);
        // No system call where there is no watchdog to wake (its thread could not start).
        if ps().watchdog.load(Ordering::Relaxed) {
            sys::futex_wake(&ps().wake);
        }
    }
    Some(r)
}

/// A journal whose file the function removed (cleaning its temporary directory) is made again
/// while it holds something of this process's that a successor after SIGKILL would need.
/// Looked at (one `stat`) when the watchdog wakes (`force`), and when an invoke opens or its
/// result was answered — there, when the journal is in the channel's directory, only when the
/// channel's look at that directory (one an invoke, where its result is answered) says it
/// changed since the journal last went by it: then no system call of its own.
fn keep_journal_in_place(e: &mut Engine, force: bool) {
    let Some(pid) = e.journal_owner_busy() else {
        return;
    };
    if !force
        && journal_in_channel_dir()
        && let Some((look, trusted, looks)) = crate::channel::dir_look()
    {
        if ps().journal_looks.swap(looks, Ordering::Relaxed) == looks {
            return; // nothing looked at since the last check
        }
        let seen = &ps().journal_seen;
        let before = sys::DirLook {
            ino: seen[0].load(Ordering::Relaxed),
            mtime_ns: seen[1].load(Ordering::Relaxed),
            ctime_ns: seen[2].load(Ordering::Relaxed),
        };
        seen[0].store(look.ino, Ordering::Relaxed);
        seen[1].store(look.mtime_ns, Ordering::Relaxed);
        seen[2].store(look.ctime_ns, Ordering::Relaxed);
        if ps().journal_trusts.swap(trusted, Ordering::Relaxed) && before == look {
            return;
        }
    }
    if let Some(journal) = crate::ending::journal_replaced(pid) {
        e.replace_journal(journal);
    }
}

const UNKNOWN_DIR: u8 = 0;
const SAME_DIR: u8 = 1;
const OTHER_DIR: u8 = 2;

/// Whether the journal's file is in the channel's directory (found out once).
fn journal_in_channel_dir() -> bool {
    match ps().journal_in_channel_dir.load(Ordering::Relaxed) {
        SAME_DIR => true,
        OTHER_DIR => false,
        _ => {
            let Some(dir) = crate::ending::journal_dir() else {
                return false;
            };
            let same = crate::channel::is_in_dir(dir);
            ps().journal_in_channel_dir
                .store(if same { SAME_DIR } else { OTHER_DIR }, Ordering::Relaxed);
            same
        }
    }
}

/// Lets go of the gate; what other threads deferred meanwhile is replayed first, by whichever
/// thread takes the gate again (this one when it is free).
fn leave(me: u64, outer: usize) {
    let canary = Canary::new();
    let mut outer = outer;
    loop {
        ps().gate.leave(outer);
        if !KEPT.ops.is_pending() && !ps().any_deferred.load(Ordering::Acquire) {
            return;
        }
        match ps().gate.try_enter(me, &canary) {
            Entry::Entered { outer: o } => outer = o,
            _ => return,
        }
        let _ = inside(|_| ());
    }
}

/// Replays what was deferred while the gate was taken, oldest first, each at the time it was
/// seen.
fn replay_deferred(engine: &mut Engine) {
    replay_kept(engine);
    // What found no room came after everything kept: forgotten after it.
    if ps().any_deferred.swap(false, Ordering::AcqRel) {
        KEPT.deferred.take_each(|fd| engine.closing(fd));
        KEPT.unfollowed.take_each(|fd| engine.unfollow(fd));
    }
}

/// Replays the kept work, in order.
fn replay_kept(engine: &mut Engine) {
    if !KEPT.ops.is_pending() {
        return;
    }
    let now = probes::clock_now();
    KEPT.ops.drain(&mut |op, at| {
        // The clocks as they were when the bytes moved (usage is read now).
        let then = |need| {
            let mut p = probes::read(need);
            let ago = now.mono_ns.saturating_sub(at);
            p.mono_ns = at;
            p.wall_ms = now.wall_ms.saturating_sub(ago / 1_000_000);
            p
        };
        match op {
            Op::Sent(fd, bytes) => engine.sent(fd, bytes, &then),
            Op::Received(fd, []) => engine.end_of_stream(fd, &then),
            Op::Received(fd, bytes) => engine.received(fd, bytes, &then),
            Op::Closed(fd) => engine.closing(fd),
            Op::Connected(fd, addr) => engine.connected(fd, addr),
            Op::Duplicated(old, new) => engine.duplicated(old, new),
            Op::Skipped { fd, sent, n } => engine.skipped(fd, sent, n, &then),
        }
    });
}

/// Writes what the engine put in its outbox (the gate is held).
fn write_outbox() {
    if let Some(engine) = engine_cell().as_mut()
        && engine.has_output()
    {
        engine.drain_output(&mut |parts| output::emit_record(parts), &mut |w| match w
            .strip_prefix("debug: ")
        {
            Some(d) => output::debug(format_args!("{d}")),
            None => output::warn(w),
        });
    }
}

/// A custom value from the function (the public C ABI): `add` puts it on the invoke it
/// belongs to. Never waits for long: where another thread holds the gate it waits as a hook
/// does, and where this thread holds it already (a signal handler that interrupted the
/// library) it answers `Busy`.
pub fn custom(
    add: impl FnOnce(
        &mut crate::custom::Pool,
        &mut crate::custom::Custom,
        &dyn Fn(&str) -> bool,
    ) -> Status,
) -> Status {
    if !activate() || !probes::in_owner_process() {
        return Status::Inactive;
    }
    match ensure_reserved() {
        Reservation::Done => {}
        Reservation::Busy => return Status::Busy,
        Reservation::Failed => return Status::Inactive,
    }
    let thread = crate::custom::thread_key();
    let mut busy = false;
    match enter(|engine| engine.custom(thread, add), || busy = true) {
        Some(status) => status,
        None if busy => Status::Busy,
        None => Status::Inactive,
    }
}

/// Whether a finished invoke's record waits for the runtime's next `/next`: only then does a
/// write to a tracked fd need a look before it happens. One relaxed load.
#[inline(always)]
pub fn record_awaits() -> bool {
    ps().record_awaits.load(Ordering::Relaxed)
}

/// Before the host writes to tracked `fd`, while a record waits (see [`record_awaits`]).
pub fn sending(fd: i32) {
    enter(|e| e.sending(fd, &probes::read), || {});
}

/// The process is exiting normally: write what still waits.
pub fn at_exit() {
    if is_active() && probes::in_owner_process() {
        enter(Engine::flush, || {});
    }
}

/// After a `fork`, in the parent. The environment's root — the process the wrapper started,
/// named in `LAMBDA_METER_ENV_ID` — that starts other processes gets ready to write, when it
/// ends (and the environment with it), the finished records they keep for later: a worker of
/// Python's Lambda Managed Instances holds its records for a batch, and once the root is gone
/// Lambda stops the workers without a signal they could write them on. Looked at once per
/// process: one `getenv`, and in a process the wrapper started one `getpid`. Nothing here
/// allocates.
pub fn parent_forked() {
    // Read first: after the first fork it is set, and a write would fault the page in again
    // after each (copy-on-write).
    if ps().root_checked.load(Ordering::Relaxed) || ps().root_checked.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: getenv with a NUL-terminated name; the value is read at once.
    let raw = unsafe { libc::getenv(c"LAMBDA_METER_ENV_ID".as_ptr()) };
    if raw.is_null() {
        return;
    }
    // SAFETY: getenv returned a NUL-terminated string of the environment.
    let named = std::str::from_utf8(unsafe { std::ffi::CStr::from_ptr(raw) }.to_bytes())
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok());
    // Only the root is activated here: another process looks at the Runtime API, and says
    // what is wrong with it, when it connects, as before.
    if named != Some(sys::getpid()) || !activate() {
        return;
    }
    let me = crate::custom::thread_key();
    let canary = Canary::new();
    let Entry::Entered { outer } = ps().gate.enter(me, &canary) else {
        // Another thread is inside: the next fork looks again.
        ps().root_checked.store(false, Ordering::Release);
        return;
    };
    // No allocation here: the first fork may be made in a signal handler that interrupted
    // `malloc`. The settings are read when the process talks to the Runtime API, if ever.
    ps().preparing_root.store(true, Ordering::Relaxed);
    if catch_unwind(|| {
        if crate::ending::prepare_root() {
            if ps().settings.get().is_none() {
                // Its log until then (remembered again if it talks to the Runtime API).
                output::remember_log_streams();
            }
            // From now on the root's end (a fatal signal, SIGTERM) writes them.
            crate::signals::watch();
        }
    })
    .is_err()
    {
        disable_permanently("internal error after fork");
    }
    ps().preparing_root.store(false, Ordering::Relaxed);
    leave(me, outer);
}

/// Whether the root is getting ready at its first fork (see [`parent_forked`]), where
/// nothing may allocate (read by the alloc-guard test build's allocator).
#[cfg_attr(not(feature = "alloc-guard"), allow(dead_code))]
pub fn preparing_root() -> bool {
    ps().preparing_root.load(Ordering::Relaxed)
}

/// Turns the library off for the rest of the process; the host carries on untouched.
fn disable_permanently(why: &str) {
    if ps().mode.swap(PERMANENTLY_DISABLED, Ordering::AcqRel) != PERMANENTLY_DISABLED {
        TRACKED.clear();
        output::warn_fmt(format_args!(
            "{why}; lambda-meter is off for the rest of this process"
        ));
    }
}

/// Whether `addr` is the Runtime API's.
pub fn is_runtime_api(addr: &SocketAddr) -> bool {
    ps().api.get().is_some_and(|api| api.matches(addr))
}

/// After a successful (or in-progress) `connect(fd, addr)`, or a failed one (`addr` = None).
pub fn connected(fd: i32, addr: Option<SocketAddr>) {
    if !probes::in_owner_process() {
        return;
    }
    let interesting = match (&addr, ps().api.get()) {
        (Some(a), Some(api)) => api.matches(a),
        _ => false,
    };
    if !interesting && !TRACKED.contains(fd) {
        return;
    }
    if interesting {
        match ensure_reserved() {
            Reservation::Done => {}
            // Another thread is reserving: it replays this connect when it is done.
            Reservation::Busy => return defer_connect(fd, addr, true),
            Reservation::Failed => return,
        }
    }
    enter(
        |e| e.connected(fd, addr),
        || defer_connect(fd, addr, interesting),
    );
    if interesting && TRACKED.contains(fd) {
        output::debug(format_args!("following fd {fd}: Runtime API connection"));
    }
}

/// Before `fd` is closed.
pub fn closing(fd: i32) {
    if !probes::in_owner_process() {
        return;
    }
    enter(|e| e.closing(fd), || defer_close(fd));
}

/// The host read `fd` through a stdio stream where no hook saw the bytes.
pub fn stream_unseen(fd: i32) {
    if !probes::in_owner_process() {
        return;
    }
    enter(|e| e.stream_unseen(fd), || defer_unfollow(fd));
}

/// Before every fd in `first..=last` is closed.
pub fn closing_range(first: u32, last: u32) {
    if TRACKED.is_empty() || !probes::in_owner_process() {
        return;
    }
    enter(
        |e| e.closing_range(first, last),
        || TRACKED.each_in(first, last, defer_close),
    );
}

/// After `new_fd` became a copy of `old_fd`.
pub fn duplicated(old_fd: i32, new_fd: i32) {
    if !probes::in_owner_process() {
        return;
    }
    enter(
        |e| e.duplicated(old_fd, new_fd),
        || defer_duplicate(old_fd, new_fd),
    );
}

/// After the host wrote the bytes of `parts` (in order) to tracked `fd`.
///
/// No owner check (`getpid`): a child that shares the parent's memory runs the host's code
/// only between `vfork` and `exec`, where runtimes close and duplicate fds (those paths keep
/// the check) but never talk on the Runtime API connection; bytes moved on it are the
/// connection's, whichever task moved them.
pub fn sent(fd: i32, parts: &[&[u8]]) {
    enter(
        |e| {
            for p in parts {
                e.sent(fd, p, &probes::read);
            }
        },
        || defer_bytes(fd, parts, true),
    );
}

/// Bytes of tracked `fd` moved where the library cannot see them (`how`: a `MSG_TRUNC` read,
/// `sendfile`, `splice`, `sendmmsg`, `recvmmsg`): the connection can no longer be followed.
/// One debug line.
pub fn unseen(fd: i32, how: &str) {
    if !probes::in_owner_process() {
        return;
    }
    enter(|e| e.closing(fd), || defer_unfollow(fd));
    output::debug(format_args!(
        "fd {fd}: bytes moved by {how} went by unseen; no longer following this connection"
    ));
}

/// After the host read the bytes of `parts` (in order) from tracked `fd`; empty = end of stream.
pub fn received(fd: i32, parts: &[&[u8]]) {
    enter(
        |e| {
            if parts.iter().all(|p| p.is_empty()) {
                return e.end_of_stream(fd, &probes::read);
            }
            for p in parts {
                e.received(fd, p, &probes::read);
            }
        },
        || defer_bytes(fd, parts, false),
    );
}

/// How long the watchdog sleeps when nothing is due.
const IDLE_WAIT_NS: u64 = 60_000_000_000;

/// Starts the watchdog thread once per process, at reservation.
fn start_watchdog() {
    if ps().watchdog.swap(true, Ordering::AcqRel) {
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
    // Not the standard library's thread: its start allocates and frees nothing of the
    // library's (a `std::thread` frees its boxed closure as it starts, after the reservation),
    // so it is not waited for — a wait for the new thread to be scheduled costs the process
    // that becomes a runtime a context switch or two (each of a shell runtime's curl
    // processes). What it must not miss, a wake before it first sleeps, it cannot: it first
    // sleeps on the value the count had before it was started.
    let first_wake = ps().wake.load(Ordering::Acquire);
    let spawned = spawn_watchdog(first_wake);
    // SAFETY: restoring this thread's own mask.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    if spawned {
        probes::set_own_threads(1);
        output::debug(format_args!("watchdog thread started"));
    } else {
        ps().watchdog.store(false, Ordering::Release);
        output::debug(format_args!(
            "could not start the watchdog thread; timeouts will not be reported"
        ));
    }
}

/// Starts [`watchdog`] on a thread of its own; whether it started. A thread glibc does not
/// know of (see [`thread`]), else, where that cannot be made, a detached POSIX thread.
fn spawn_watchdog(first_wake: u32) -> bool {
    extern "C" fn start_own(arg: usize) {
        // Every signal blocked, glibc's own two as well (its `pthread_sigmask` leaves those
        // out of the creator's mask, and their handlers are for threads it knows).
        // SAFETY: an all-ones sigset_t is the full set.
        let all: libc::sigset_t = unsafe { std::mem::transmute([!0u64; 16]) };
        let _ = sys::sigmask(libc::SIG_SETMASK, &all);
        thread::started();
        // It names itself (one prctl; from another thread naming it takes opening its
        // /proc/self/task/<tid>/comm). Until it runs it carries its creator's name, as every
        // new thread does.
        let _ = sys::name_this_thread(c"lambda-meter");
        watchdog(arg as u32);
    }
    extern "C" fn start(arg: *mut libc::c_void) -> *mut libc::c_void {
        let _ = sys::name_this_thread(c"lambda-meter");
        watchdog(arg as usize as u32);
        std::ptr::null_mut()
    }
    if thread::spawn(start_own, first_wake as usize, WATCHDOG_STACK) {
        return true;
    }
    // SAFETY: the attributes are initialised before use and destroyed after; the new thread
    // gets a plain integer for its argument, and is detached (nothing joins it).
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_attr_init(&mut attr) != 0 {
            return false;
        }
        libc::pthread_attr_setstacksize(&mut attr, watchdog_stack(&attr));
        let mut thread: libc::pthread_t = 0;
        let arg = first_wake as usize as *mut libc::c_void;
        let rc = libc::pthread_create(&mut thread, &attr, start, arg);
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 {
            return false;
        }
        libc::pthread_detach(thread);
    }
    true
}

/// The watchdog's own stack (its thread-local storage is apart from it on the thread glibc
/// does not know of).
const WATCHDOG_STACK: usize = 256 * 1024;

/// The stack of a POSIX thread for the watchdog (where its own cannot be made): 256 KiB on top
/// of what glibc takes out of every thread's stack — the static TLS of every loaded object (a
/// host with a quarter of a megabyte of it would leave a plain 256 KiB stack nothing, or fail
/// the thread), a guard page and `PTHREAD_STACK_MIN` — as `__pthread_get_minstack` says (the
/// standard library's threads ask it too).
fn watchdog_stack(attr: &libc::pthread_attr_t) -> usize {
    type MinStack = unsafe extern "C" fn(*const libc::pthread_attr_t) -> libc::size_t;
    // SAFETY: dlsym with a NUL-terminated name, at reservation (no hook path).
    let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__pthread_get_minstack".as_ptr()) };
    let min = if f.is_null() {
        64 * 1024
    } else {
        // SAFETY: glibc's __pthread_get_minstack has this type; it only reads the attributes.
        unsafe { std::mem::transmute::<*mut libc::c_void, MinStack>(f)(attr) }
    };
    WATCHDOG_STACK.saturating_add(min)
}

/// Reports timeouts at their deadline (less the margin) and records that waited long enough
/// for the runtime's next `/next`. Enters the engine only while it looks; sleeps on [`ProcessState::wake`]
/// until the next thing is due.
fn watchdog(first_wake: u32) {
    crate::blocked::note_watchdog();
    ps().started.store(1, Ordering::Release);
    // Nothing is due before the first invoke tells it so (at once if one did already).
    sys::futex_wait(&ps().wake, first_wake, IDLE_WAIT_NS);
    let mut seen;
    loop {
        seen = ps().wake.load(Ordering::Acquire);
        let me = crate::custom::thread_key();
        let canary = Canary::new();
        // The gate is held for microseconds at a time: wait for it. A holder that does not
        // let go (a host's handler waiting inside the library) is looked at again after a
        // sleep, not spun on.
        let next = loop {
            if !is_active() {
                return park();
            }
            if let Entry::Entered { outer } = ps().gate.enter(me, &canary) {
                let next = inside(|e| {
                    let now = probes::probe();
                    e.tick(&now);
                    keep_journal_in_place(e, true);
                    crate::ending::recover_vanished();
                    e.next_wakeup()
                });
                leave(me, outer);
                break next.flatten();
            }
            sys::futex_wait(
                &ps().wake,
                ps().wake.load(Ordering::Acquire),
                BUSY_GATE_WAIT_NS,
            );
        };
        let now_ns = probes::mono_ns();
        let wait = next
            .map(|t| t.saturating_sub(now_ns))
            .unwrap_or(IDLE_WAIT_NS)
            .min(IDLE_WAIT_NS);
        ps().watchdog_planned
            .store(now_ns.saturating_add(wait), Ordering::Relaxed);
        if wait > 0 {
            sys::futex_wait(&ps().wake, seen, wait);
        }
        if !is_active() {
            return park();
        }
    }
}

/// How long the watchdog sleeps before it tries a gate another thread holds again.
const BUSY_GATE_WAIT_NS: u64 = 10_000_000;

/// The watchdog's end when the library is off: it sleeps for good rather than end (a thread's
/// end frees what the standard library kept for it).
fn park() {
    loop {
        sys::futex_wait(&ps().started, 1, IDLE_WAIT_NS);
    }
}

/// What was appended to the custom-metrics channel since the last call (whole lines) into
/// `buf`, this process's id, and whether more is there.
fn channel_bytes(buf: &mut [u8]) -> (usize, u32, bool) {
    let pid = probes::owner_pid();
    let (n, more) = crate::channel::read_new(buf);
    (n, pid, more)
}

/// Held across the real `fork`: the gate, so the child never inherits the engine mid-change.
pub struct ForkGuard(Option<(u64, usize)>);

/// Before the real `fork`. The host's `pthread_atfork` handlers run inside it, on this thread,
/// while the gate is held: a hook they reach finds the gate taken (by this very thread, deeper
/// in its stack) and defers its work (see [`ProcessState::deferred`]).
/// `canary` lives in the hook's frame until [`after_fork`].
pub fn before_fork(canary: &Canary) -> ForkGuard {
    if !is_active() || !probes::in_owner_process() {
        return ForkGuard(None);
    }
    let me = crate::custom::thread_key();
    match ps().gate.enter(me, canary) {
        Entry::Entered { outer } => ForkGuard(Some((me, outer))),
        Entry::Busy | Entry::Nested => ForkGuard(None),
    }
}

/// After the real `fork`, in parent (`pid` > 0 or failure) or child (`pid` == 0).
pub fn after_fork(guard: ForkGuard, pid: libc::pid_t) {
    let ForkGuard(Some((me, outer))) = guard else {
        if pid == 0 {
            forked_child_state();
            // Whichever thread held the gate in the parent, none does here.
            ps().gate.reset();
        }
        return;
    };
    if pid == 0 {
        forked_child_state();
        // SAFETY: errno is thread-local; saved and restored around our work.
        let saved_errno = unsafe { *libc::__errno_location() };
        let born = probes::mono_ns();
        if catch_unwind(AssertUnwindSafe(|| {
            if let Some(e) = engine_cell().as_mut() {
                e.forked_child(born, probes::this_owner());
            }
            output::forked_child_sink();
        }))
        .is_err()
        {
            disable_permanently("internal error after fork");
        }
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = saved_errno };
        ps().gate.leave(outer);
        return;
    }
    leave(me, outer);
}

/// A forked child's state: every part of it decides, field by field (see
/// [`crate::state::State::forked_child`]).
fn forked_child_state() {
    crate::state::STATE.forked_child(sys::getpid());
    crate::ledger::forked_child();
    crate::blocked::forked_child();
}
