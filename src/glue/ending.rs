//! How a process that ends during an invoke still reports it: the journal file, the exit
//! paths, and the fatal-signal handlers (see [`crate::journal`] for the journal itself).
//!
//! - `exit()` (the library's destructor), `_exit()` and `_Exit()` write this process's open
//!   invokes with `exitReason` `exit status N`.
//! - SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL and SIGTERM (how Lambda Managed Instances stop
//!   a runtime) get a handler of ours only while the host's own disposition is the default. The host never sees it: `sigaction` and `signal` report
//!   `SIG_DFL`, a handler the host installs replaces ours, and after writing the records ours
//!   restores the default and lets the signal act as it would have (same exit status, same
//!   core).
//! - A process that vanished (SIGKILL) is reported by the environment's next runtime process.
//!
//! Everything reachable from a signal handler or `_exit` here is async-signal-safe.

use crate::journal::{self, Ending, FILE_SIZE, Journal, Owner};
use crate::{output, probes, real};
use libc::c_int;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};

/// The environment's journal, once this process has become a runtime.
static JOURNAL: OnceLock<Journal> = OnceLock::new();

/// The signals whose default action ends the process: those a crash raises (with a core), and
/// SIGTERM, by which Lambda stops a runtime of Lambda Managed Instances (and one with
/// extensions) at shutdown.
const FATAL: [c_int; 6] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGABRT,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGTERM,
];
/// Whether our handler is installed for `FATAL[i]` (the host believes it is `SIG_DFL`).
static OWNED: [AtomicBool; 6] = [const { AtomicBool::new(false) }; 6];

/// The status passed to `exit()`, for the destructor's records (`i32::MIN`: none seen; a
/// return from `main` calls exit inside libc, where no hook sees it).
static EXIT_STATUS: AtomicI32 = AtomicI32::new(i32::MIN);

/// The reason written for invokes of a process that vanished without running any code.
const GONE: &[u8] = b"killed (no exit seen)";

fn owned_index(sig: c_int) -> Option<usize> {
    FATAL.iter().position(|s| *s == sig)
}

/// The journal file of this environment: its log stream, function and Runtime API name it
/// (the stream is the environment's own and survives a runtime restart).
fn journal_path(function_name: &str, runtime_api: &str) -> std::path::PathBuf {
    let stream = std::env::var("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_default();
    let key = journal::environment_key(&[&stream, function_name, runtime_api]);
    std::env::temp_dir().join(format!(".lambda-meter-journal-{key:016x}"))
}

/// Maps the environment's journal file (creating it), keeping no fd. `None` when `/tmp` cannot
/// hold it or the file is not ours.
fn map_journal(path: &std::path::Path) -> Option<Journal> {
    let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: open with a NUL-terminated path; the fd is ours and closed below.
    let fd = unsafe {
        libc::open(
            cpath.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            0o600,
        )
    };
    if fd < 0 {
        return None;
    }
    let mapped = (|| {
        // SAFETY: an all-zero stat is a valid value of this plain C struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat writes only the struct we pass.
        if unsafe { libc::fstat(fd, &mut st) } != 0
            // SAFETY: geteuid has no preconditions.
            || st.st_uid != unsafe { libc::geteuid() }
            || (st.st_mode & libc::S_IFMT) != libc::S_IFREG
        {
            return None;
        }
        if st.st_size == 0 {
            // SAFETY: growing our own new file; it reads as zeros (every slot FREE).
            if unsafe { libc::ftruncate(fd, FILE_SIZE as libc::off_t) } != 0 {
                return None;
            }
        } else if st.st_size != FILE_SIZE as libc::off_t {
            return None;
        }
        // SAFETY: a fresh shared mapping of the whole file; the kernel picks the address.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                FILE_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: FILE_SIZE page-aligned bytes, mapped for the rest of the process.
        let j = unsafe { Journal::from_raw(base.cast()) };
        if !j.is_formatted() {
            j.format();
        }
        Some(j)
    })();
    // SAFETY: closing the fd we opened; the mapping stays.
    unsafe { real::close::get()(fd) };
    mapped
}

/// Who this process is, for the journal.
pub fn this_owner() -> Owner {
    let pid = std::process::id();
    Owner {
        pid,
        start_ticks: probes::proc_stat(pid).map_or(0, |s| s.start_ticks),
    }
}

/// Whether the process that wrote a slot still runs (same pid, same start, not a zombie).
fn alive(owner: Owner) -> bool {
    probes::proc_stat(owner.pid).is_some_and(|s| s.running && s.start_ticks == owner.start_ticks)
}

/// This process has become a runtime (its first Runtime API connection, not a per-request
/// helper): report what a vanished predecessor left open, journal from now on, and watch for
/// fatal signals. Returns the journal for the engine, or `None` when `/tmp` cannot hold it.
pub fn start(function_name: &str, runtime_api: &str) -> Option<Journal> {
    let j = match JOURNAL.get() {
        Some(j) => *j,
        None => {
            let j = map_journal(&journal_path(function_name, runtime_api))?;
            *JOURNAL.get_or_init(|| j)
        }
    };
    let ending = Ending {
        wall_ms: probes::clock_now().wall_ms,
        reason: GONE,
        ..Ending::default()
    };
    j.recover(&alive, &ending, &mut |parts| {
        output::write_record_parts(parts);
    });
    install_signal_handlers();
    Some(j)
}

/// Writes this process's open invokes, if it journals any. Async-signal-safe.
fn write_open(reason: &[u8]) {
    let Some(j) = JOURNAL.get() else {
        return;
    };
    // SAFETY: getrusage writes only the struct we pass (a plain system call).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv_ns =
        |tv: libc::timeval| (tv.tv_sec as u64) * 1_000_000_000 + (tv.tv_usec as u64) * 1_000;
    let now = probes::clock_now();
    let ending = Ending {
        wall_ms: now.wall_ms,
        mono_ns: Some(now.mono_ns),
        cpu_ns: Some(tv_ns(ru.ru_utime) + tv_ns(ru.ru_stime)),
        max_rss_kb: Some(ru.ru_maxrss.max(0) as u64),
        reason,
    };
    // SAFETY: getpid has no preconditions (the kernel's answer, never a cache).
    let pid = unsafe { libc::syscall(libc::SYS_getpid) } as u32;
    j.write_open(pid, &ending, &mut |parts| {
        output::write_record_parts(parts);
    });
}

/// `exit status N` (or `exit` when N is unknown) in `buf`.
fn exit_reason(status: Option<c_int>, buf: &mut [u8; 32]) -> &[u8] {
    let prefix: &[u8] = if status.is_some() {
        b"exit status "
    } else {
        b"exit"
    };
    let mut len = 0;
    for b in prefix {
        if let Some(slot) = buf.get_mut(len) {
            *slot = *b;
            len += 1;
        }
    }
    if let Some(s) = status {
        let mut digits = [0u8; 12];
        let mut n = i64::from(s).unsigned_abs();
        let mut count = 0;
        loop {
            if let Some(d) = digits.get_mut(count) {
                *d = b'0' + (n % 10) as u8;
            }
            count += 1;
            n /= 10;
            if n == 0 || count >= digits.len() {
                break;
            }
        }
        if s < 0
            && let Some(slot) = buf.get_mut(len)
        {
            *slot = b'-';
            len += 1;
        }
        for i in (0..count).rev() {
            if let (Some(slot), Some(d)) = (buf.get_mut(len), digits.get(i)) {
                *slot = *d;
                len += 1;
            }
        }
    }
    buf.get(..len).unwrap_or_default()
}

/// `exit(status)` was called: the destructor will write with this status.
pub fn exiting(status: c_int) {
    EXIT_STATUS.store(status, Ordering::Relaxed);
}

/// The library's destructor (a normal exit): this process's open invokes end here.
pub fn at_exit() {
    let status = EXIT_STATUS.load(Ordering::Relaxed);
    let mut buf = [0u8; 32];
    write_open(exit_reason(
        (status != i32::MIN).then_some(status),
        &mut buf,
    ));
}

/// `_exit(status)` or `_Exit(status)`: no destructor will run. Async-signal-safe.
pub fn exiting_now(status: c_int) {
    let mut buf = [0u8; 32];
    write_open(exit_reason(Some(status), &mut buf));
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

fn default_action() -> libc::sigaction {
    // SAFETY: an all-zero sigaction is SIG_DFL with no flags and an empty mask.
    unsafe { std::mem::zeroed() }
}

/// Our handler for the fatal signals: write the records, then let the signal do what the
/// default would have done.
extern "C" fn on_fatal_signal(sig: c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: this thread's errno, restored before returning.
    let saved_errno = unsafe { *libc::__errno_location() };
    let owner = crate::process::in_owner_process();
    if owner {
        write_open(signal_reason(sig));
    }
    let dfl = default_action();
    // SAFETY: installing SIG_DFL for this signal; no old action asked for.
    unsafe { real::sigaction::get()(sig, &dfl, std::ptr::null_mut()) };
    if owner && let Some(flag) = owned_index(sig).and_then(|i| OWNED.get(i)) {
        flag.store(false, Ordering::Relaxed);
    }
    // A fault (si_code > 0) happens again when the instruction is retried, now with the
    // default action. A signal that was sent (kill, raise, abort) is sent again: it is blocked
    // until we return, then acts as the default.
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let sent = info.is_null() || unsafe { (*info).si_code } <= 0;
    if sent {
        // SAFETY: tgkill to this very thread, with the signal it received.
        unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                libc::syscall(libc::SYS_getpid),
                libc::syscall(libc::SYS_gettid),
                sig,
            )
        };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
}

/// Installs our handler for each fatal signal whose disposition is still the default.
fn install_signal_handlers() {
    for (i, sig) in FATAL.iter().enumerate() {
        let Some(flag) = OWNED.get(i) else { continue };
        if flag.load(Ordering::Relaxed) {
            continue;
        }
        let mut old = default_action();
        // SAFETY: querying the current action into our struct.
        if unsafe { real::sigaction::get()(*sig, std::ptr::null(), &mut old) } != 0
            || old.sa_sigaction != libc::SIG_DFL
        {
            continue; // the host's own handler (or SIG_IGN) stays
        }
        if install_crash_handler(*sig) {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

// ---- the host's own handlers, run through a trampoline ----
//
// A hook on a tracked fd allocates and locks; inside a signal handler that can deadlock (the
// signal may have landed inside malloc, or inside the library on the same thread). So every
// handler the host installs runs through `trampoline`, which marks the thread as inside a
// handler (`process::entering_handler`); hooks there take the lock-free deferral path. The host
// never sees the trampoline: queries answer with its own handler, flags and mask.

/// Signals 1..NSIG (64 on Linux).
const NSIG: usize = 65;
/// The host's handler for each signal while our trampoline runs it (0: none).
static HOST_HANDLER: [AtomicUsize; NSIG] = [const { AtomicUsize::new(0) }; NSIG];
/// The host's flags for it (SA_SIGINFO picks its calling convention; SA_RESETHAND).
static HOST_FLAGS: [AtomicI32; NSIG] = [const { AtomicI32::new(0) }; NSIG];

fn slot(sig: c_int) -> Option<usize> {
    usize::try_from(sig).ok().filter(|s| (1..NSIG).contains(s))
}

/// Runs the host's handler for `sig`, marked as inside a handler.
extern "C" fn trampoline(sig: c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let Some(i) = slot(sig) else { return };
    let (Some(handler), Some(flags)) = (HOST_HANDLER.get(i), HOST_FLAGS.get(i)) else {
        return;
    };
    let handler = handler.load(Ordering::Acquire);
    let flags = flags.load(Ordering::Relaxed);
    if flags & libc::SA_RESETHAND != 0 {
        // The kernel has already put the default back, keeping the flags: the trampoline is
        // gone, and the SA_SIGINFO it added must go too, or the host would read it back.
        forget_host_handler(i);
        if flags & libc::SA_SIGINFO == 0 {
            // SAFETY: this thread's errno, restored below; sigaction is async-signal-safe.
            let saved_errno = unsafe { *libc::__errno_location() };
            let real = real::sigaction::get();
            let mut now = default_action();
            // SAFETY: querying and setting this signal's action with our own structs.
            unsafe {
                if real(sig, std::ptr::null(), &mut now) == 0 && now.sa_sigaction == libc::SIG_DFL {
                    now.sa_flags &= !libc::SA_SIGINFO;
                    real(sig, &now, std::ptr::null_mut());
                }
                *libc::__errno_location() = saved_errno;
            }
        }
    }
    if handler == 0 || handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        return;
    }
    crate::process::entering_handler();
    if flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the host installed this address as an SA_SIGINFO handler.
        let f = unsafe {
            std::mem::transmute::<
                usize,
                extern "C" fn(c_int, *mut libc::siginfo_t, *mut libc::c_void),
            >(handler)
        };
        f(sig, info, context);
    } else {
        // SAFETY: the host installed this address as a plain handler.
        let f = unsafe { std::mem::transmute::<usize, extern "C" fn(c_int)>(handler) };
        f(sig);
    }
    crate::process::leaving_handler();
}

fn forget_host_handler(i: usize) {
    if let Some(h) = HOST_HANDLER.get(i) {
        h.store(0, Ordering::Release);
    }
}

/// What the host believes the action of `sig` is, given the real one.
fn host_view(sig: c_int, real: libc::sigaction) -> libc::sigaction {
    let Some(i) = slot(sig) else { return real };
    if let Some(f) = owned_index(sig).and_then(|o| OWNED.get(o))
        && f.load(Ordering::Relaxed)
    {
        return default_action();
    }
    let handler = HOST_HANDLER.get(i).map_or(0, |h| h.load(Ordering::Acquire));
    if handler == 0 || real.sa_sigaction != trampoline as *const () as usize {
        return real;
    }
    let mut view = real;
    view.sa_sigaction = handler;
    let host_flags = HOST_FLAGS.get(i).map_or(0, |f| f.load(Ordering::Relaxed));
    view.sa_flags = (real.sa_flags & !libc::SA_SIGINFO) | (host_flags & libc::SA_SIGINFO);
    view
}

/// Installs the host's `want` for `sig`: through the trampoline for a handler, as it is for
/// `SIG_DFL` or `SIG_IGN` (our crash handler stands in for the default of a fatal signal once
/// this process journals invokes). Returns the real call's result.
fn install(sig: c_int, want: &libc::sigaction) -> c_int {
    let real = real::sigaction::get();
    let i = slot(sig).unwrap_or(0);
    if sig == libc::SIGPIPE {
        output::note_sigpipe_disposition(want.sa_sigaction);
    }
    let owned = owned_index(sig).and_then(|o| OWNED.get(o));
    let handler = want.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        if handler == libc::SIG_DFL
            && JOURNAL.get().is_some()
            && let Some(flag) = owned
        {
            forget_host_handler(i);
            if install_crash_handler(sig) {
                flag.store(true, Ordering::Relaxed);
                return 0;
            }
        }
        // SAFETY: the host's action, unchanged.
        let rc = unsafe { real(sig, want, std::ptr::null_mut()) };
        if rc == 0 {
            forget_host_handler(i);
            if let Some(flag) = owned {
                flag.store(false, Ordering::Relaxed);
            }
        }
        return rc;
    }
    if let (Some(h), Some(f)) = (HOST_HANDLER.get(i), HOST_FLAGS.get(i)) {
        f.store(want.sa_flags, Ordering::Relaxed);
        h.store(handler, Ordering::Release);
    }
    let mut ours = *want;
    ours.sa_sigaction = trampoline as *const () as usize;
    ours.sa_flags |= libc::SA_SIGINFO;
    // SAFETY: the host's action with our trampoline in front of its handler.
    let rc = unsafe { real(sig, &ours, std::ptr::null_mut()) };
    if rc == 0 {
        if let Some(flag) = owned {
            flag.store(false, Ordering::Relaxed);
        }
    } else {
        forget_host_handler(i);
    }
    rc
}

/// Our crash handler for fatal `sig`, with no flags the host chose.
fn install_crash_handler(sig: c_int) -> bool {
    let mut ours = default_action();
    ours.sa_sigaction = on_fatal_signal as *const () as usize;
    ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: installing a handler of ours for a signal whose default the host wants.
    unsafe { real::sigaction::get()(sig, &ours, std::ptr::null_mut()) == 0 }
}

/// The `sigaction` hook.
///
/// # Safety
/// The host's arguments, as for `sigaction(2)`.
pub unsafe fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    let real = real::sigaction::get();
    // A child sharing its parent's memory (vfork) has its own signal table: hands off. So does
    // a process that can hold no tracked fd, unless a handler of ours is already in place.
    if slot(sig).is_none()
        || sig == libc::SIGKILL
        || sig == libc::SIGSTOP
        || !crate::process::in_owner_process()
        || (!crate::process::is_active() && !ours_in_place(sig))
    {
        // SAFETY: the host's arguments, unchanged.
        return unsafe { real(sig, act, old) };
    }
    let mut current = default_action();
    // SAFETY: querying the current action into our struct.
    if unsafe { real(sig, std::ptr::null(), &mut current) } != 0 {
        // SAFETY: the host's arguments, unchanged (the real call reports the error).
        return unsafe { real(sig, act, old) };
    }
    let previous = host_view(sig, current);
    if !act.is_null() {
        // SAFETY: the host's action; copied before anything is written to `old`, which may
        // be the same struct.
        let want = unsafe { act.read() };
        let rc = install(sig, &want);
        if rc != 0 {
            return rc;
        }
    }
    if !old.is_null() {
        // SAFETY: the host asked for the previous action here.
        unsafe { old.write(previous) };
    }
    0
}

/// Whether a handler of ours (the crash handler, or a trampoline) is installed for `sig`.
fn ours_in_place(sig: c_int) -> bool {
    let trampoline = slot(sig)
        .and_then(|i| HOST_HANDLER.get(i))
        .is_some_and(|h| h.load(Ordering::Relaxed) != 0);
    let crash = owned_index(sig)
        .and_then(|o| OWNED.get(o))
        .is_some_and(|f| f.load(Ordering::Relaxed));
    trampoline || crash
}

/// Signals `siginterrupt` marked: glibc's `signal` installs their handlers without
/// `SA_RESTART`.
static INTERRUPTING: AtomicU64 = AtomicU64::new(0);

/// The `siginterrupt` hook: glibc keeps this set to itself, and the `signal` emulation below
/// needs it.
///
/// # Safety
/// The host's arguments, as for `siginterrupt(3)`.
pub unsafe fn siginterrupt(sig: c_int, interrupt: c_int) -> c_int {
    // SAFETY: the host's arguments, unchanged.
    let rc = unsafe { real::siginterrupt::get()(sig, interrupt) };
    if rc == 0
        && let Some(bit) = slot(sig).filter(|i| *i <= 64).map(|i| 1u64 << (i - 1))
    {
        if interrupt != 0 {
            INTERRUPTING.fetch_or(bit, Ordering::Relaxed);
        } else {
            INTERRUPTING.fetch_and(!bit, Ordering::Relaxed);
        }
    }
    rc
}

/// The `signal` hook: glibc's `signal` (BSD semantics: `SA_RESTART` unless `siginterrupt`
/// said otherwise, the signal blocked in its handler) does not call `sigaction` through the
/// dynamic linker, so where a trampoline may be needed it is done here.
///
/// # Safety
/// The host's arguments, as for `signal(2)`.
pub unsafe fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    if !crate::process::in_owner_process() || (!crate::process::is_active() && !ours_in_place(sig))
    {
        // SAFETY: the host's arguments, unchanged.
        return unsafe { real::signal::get()(sig, handler) };
    }
    let interrupting = slot(sig)
        .filter(|i| *i <= 64)
        .is_some_and(|i| INTERRUPTING.load(Ordering::Relaxed) & (1u64 << (i - 1)) != 0);
    let mut act = default_action();
    act.sa_sigaction = handler;
    act.sa_flags = if interrupting { 0 } else { libc::SA_RESTART };
    // SAFETY: plain signal-set manipulation on our own struct.
    unsafe {
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaddset(&mut act.sa_mask, sig);
    }
    let mut old = default_action();
    // SAFETY: our own structs.
    if unsafe { sigaction(sig, &act, &mut old) } != 0 {
        return libc::SIG_ERR;
    }
    old.sa_sigaction
}
