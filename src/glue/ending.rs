//! How a process that ends during an invoke still reports it: the journal file, the exit
//! paths, and the fatal-signal handlers (see [`crate::journal`] for the journal itself).
//!
//! - `exit()` (the library's destructor), `_exit()` and `_Exit()` write this process's open
//!   invokes with `exitReason` `exit status N`.
//! - SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL and SIGTERM write them from a handler of ours
//!   that sits only where the kernel's disposition is the default (see [`crate::signals`]).
//! - A process that vanished (SIGKILL) is reported by the environment's next runtime process,
//!   or by another process of the environment whose watchdog wakes first (a worker of a Lambda
//!   Managed Instance is not replaced: no next process comes).
//! - The environment's root (the process the wrapper started), once it forked, also writes at
//!   its end the finished records its children still keep: Lambda stops them once it is gone.
//!
//! Everything reachable from a signal handler or `_exit` here is async-signal-safe.

use crate::journal::{Ending, FILE_SIZE, Journal, JournalPath};
use crate::state::Reset;
use crate::{output, probes, sys};
use libc::c_int;
use std::ffi::{CStr, CString};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, Ordering};

/// The reason written for invokes of a process that vanished without running any code.
const GONE: &[u8] = b"killed (no exit seen)";

/// The journal file of this environment: its log stream, function and Runtime API name it
/// (the stream is the environment's own and survives a runtime restart).
fn journal_path(function_name: &str, runtime_api: &str) -> Result<CString, &'static str> {
    let stream = std::env::var("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_default();
    let tmp = std::env::temp_dir().into_os_string().into_encoded_bytes();
    let path = JournalPath::new(&tmp, &stream, function_name, runtime_api)
        .ok_or("its path holds a NUL byte, or is too long")?;
    CString::from_vec_with_nul(path.with_nul().to_vec()).map_err(|_| "its path holds a NUL byte")
}

/// [`sys::getenv`] as text, when it is UTF-8 (as `std::env::var` reads it).
fn env_str(name: &CStr) -> Option<&str> {
    sys::getenv(name).and_then(|v| std::str::from_utf8(v).ok())
}

/// This process is its environment's root and starts other processes (see
/// [`crate::process::parent_forked`]): its end writes the finished records they keep (see
/// [`write_environment`]). Named now from the environment, as a runtime names them, without
/// allocating (the first `fork` may be made in a signal handler that interrupted `malloc`):
/// the journal's path and the stream records go to. False when there is nothing to do: the
/// library is switched off, or records go somewhere only settings read at a Runtime API
/// connection can reach (a file, an agent), or the path cannot be named.
pub fn prepare_root() -> bool {
    if env_str(c"LAMBDA_METER_DISABLE").and_then(crate::settings::parse_bool) == Some(true) {
        return false;
    }
    let fd = match env_str(c"LAMBDA_METER_DESTINATION").map(str::trim) {
        None | Some("" | "stdout") => libc::STDOUT_FILENO,
        Some("stderr") => libc::STDERR_FILENO,
        Some(_) => return false,
    };
    if state().root_path.get().is_none() {
        let tmp = sys::getenv(c"TMPDIR").unwrap_or(b"/tmp");
        let stream = env_str(c"AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_default();
        let function_name = crate::settings::function_name_of(env_str(c"AWS_LAMBDA_FUNCTION_NAME"));
        let api = env_str(c"AWS_LAMBDA_RUNTIME_API").unwrap_or_default();
        match JournalPath::new(tmp, stream, function_name, api) {
            Some(path) => {
                let _ = state().root_path.set(path);
            }
            None => return false,
        }
    }
    state().root_fd.store(fd, Ordering::Relaxed);
    state().root.store(true, Ordering::Relaxed);
    true
}

/// The root is ending, and its environment with it: the journal's file at its path (the one
/// the other processes use now, even where the function cleaned its temporary directory since)
/// is mapped, and the finished records of the environment's other processes are written from
/// it. Async-signal-safe: a few system calls, no allocation.
fn write_environment(ending: &Ending) {
    // Not in a child that shares this memory (`vfork`, `posix_spawn`) and exits there.
    if !state().root.load(Ordering::Relaxed) || !probes::in_owner_process() {
        return;
    }
    // The root's own journal, once it became a runtime; else the one named at its fork.
    let path = match (state().path.get(), state().root_path.get()) {
        (Some(own), _) => own.to_bytes_with_nul(),
        (None, Some(named)) => named.with_nul(),
        (None, None) => return,
    };
    let Ok(file) = sys::map_existing_state_file(path, FILE_SIZE) else {
        return;
    };
    // SAFETY: FILE_SIZE page-aligned bytes of a journal file, mapped until the unmap below.
    let j = unsafe { Journal::from_raw(file.base) };
    if j.is_formatted() {
        let fd = state().root_fd.load(Ordering::Relaxed);
        j.write_environment(ending, &mut |parts| {
            if output::destination_chosen() {
                output::write_record_parts(parts);
            } else {
                output::write_record_parts_to_log(fd, parts);
            }
        });
    }
    sys::unmap(file.base, FILE_SIZE);
}

/// A journal mapped from its file.
struct Mapped {
    journal: Journal,
    /// The file's device and inode (the mapping keeps the inode: no other file can have it).
    id: (u64, u64),
    /// The file was new: nothing in it but what this process put there.
    fresh: bool,
}

/// Maps the environment's journal file (creating it), keeping no fd. Every byte of it is
/// allocated on disk before it is mapped, so a store through the mapping can never meet a full
/// file system (SIGBUS). An error says why there is none.
fn map_journal(cpath: &CStr) -> Result<Mapped, &'static str> {
    let file = crate::sys::map_state_file(cpath.to_bytes_with_nul(), FILE_SIZE)?;
    // SAFETY: FILE_SIZE page-aligned bytes, mapped for the rest of the process, every one of
    // them allocated on disk.
    let j = unsafe { Journal::from_raw(file.base) };
    let fresh = !j.is_formatted();
    if fresh {
        j.format();
    }
    Ok(Mapped {
        journal: j,
        id: file.id,
        fresh,
    })
}

/// This process has become a runtime (its first Runtime API connection, not a per-request
/// helper): report what a vanished predecessor left open, journal from now on, and watch for
/// fatal signals. Returns the journal for the engine, or why there is none.
pub fn start(function_name: &str, runtime_api: &str) -> Result<Journal, &'static str> {
    let j = match journal() {
        Some(j) => j,
        None => {
            let path = journal_path(function_name, runtime_api)?;
            let mapped = map_journal(&path)?;
            let _ = state().path.set(path);
            use_mapping(&mapped);
            if mapped.fresh {
                // A journal this process just made has nothing to recover: not reading its 32
                // slots leaves their pages untouched (not resident).
                return Ok(mapped.journal);
            }
            mapped.journal
        }
    };
    let ending = Ending {
        wall_ms: probes::clock_now().wall_ms,
        reason: GONE,
        ..Ending::default()
    };
    j.recover(&probes::alive, &ending, &mut |parts| {
        output::write_record_parts(parts);
    });
    Ok(j)
}

/// Open invokes (and kept records) of other processes of the environment that are gone
/// without a word: a worker of a Lambda Managed Instance killed with SIGKILL (or by the
/// out-of-memory killer), which is not replaced there, so no next process would report them.
/// Written, once, by whichever process's watchdog looks first (see [`Journal::recover`]).
/// While the journal holds only this process's slots a look makes no system call; each slot
/// of another process costs one `readlink` of its `/proc/<pid>/exe` ([`probes::runs`]: no fd).
pub fn recover_vanished() {
    let Some(j) = journal() else {
        return;
    };
    let me = probes::owner_pid();
    let ending = Ending {
        wall_ms: probes::clock_now().wall_ms,
        reason: GONE,
        ..Ending::default()
    };
    j.recover(
        &|owner| owner.pid == me || probes::runs(owner.pid),
        &ending,
        &mut |parts| {
            output::write_record_parts(parts);
        },
    );
}

/// The journal in use, once this process has become a runtime.
fn journal() -> Option<Journal> {
    let base = state().journal.load(Ordering::Acquire);
    // SAFETY: a non-null base is a journal mapping of FILE_SIZE bytes, mapped for the rest of
    // the process (a replaced one is never unmapped).
    (!base.is_null()).then(|| unsafe { Journal::from_raw(base) })
}

/// From now on `mapped` is the journal, for the ending paths too.
fn use_mapping(mapped: &Mapped) {
    state().id[0].store(mapped.id.0, Ordering::Relaxed);
    state().id[1].store(mapped.id.1, Ordering::Relaxed);
    state()
        .journal
        .store(mapped.journal.as_ptr(), Ordering::Release);
}

/// The directory the journal's file is in, once there is one.
pub fn journal_dir() -> Option<&'static [u8]> {
    let path = state().path.get()?.to_bytes();
    let slash = path.iter().rposition(|b| *b == b'/')?;
    path.get(..slash.max(1))
}

/// Whether the journal file is still at its path; if not (the function cleaned its temporary
/// directory, or moved the file), a new one is made there and this process's slots are taken
/// over into it, so that a successor after SIGKILL finds them. Returns the new journal for the
/// engine. One `stat` when nothing changed. Called under the engine's gate, when an invoke
/// opens and when the watchdog wakes.
pub fn journal_replaced(pid: u32) -> Option<Journal> {
    let old = journal()?;
    let path = state().path.get()?;
    let known = (
        state().id[0].load(Ordering::Relaxed),
        state().id[1].load(Ordering::Relaxed),
    );
    if crate::sys::stat(path.to_bytes_with_nul()).is_ok_and(|st| (st.st_dev, st.st_ino) == known) {
        return None;
    }
    let mapped = match map_journal(path) {
        Ok(m) => m,
        Err(why) => {
            output::debug(format_args!(
                "the journal file was removed and cannot be made again ({why}); an invoke ended by SIGKILL will have no record"
            ));
            return None;
        }
    };
    let lost = mapped.journal.adopt(&old, pid);
    if lost > 0 || !mapped.fresh {
        output::debug(format_args!(
            "the journal file was removed; made again ({lost} slot(s) could not be kept)"
        ));
    }
    use_mapping(&mapped);
    Some(mapped.journal)
}

/// The list of runtime inits under way, in the temporary directory: the wrapper appends a
/// line for each runtime process it starts, its pid and when its init began (the system's
/// uptime then, as `/proc/uptime` says it: read and written with shell builtins, no process,
/// no file made); the first process of the environment that talks to the Runtime API takes
/// them (see [`claim_ended_inits`]).
const INITS: &str = ".lambda-meter-inits";

/// How long Lambda lets an init phase run before it stops it and tries it again within the
/// invoke that waited for it: an init stopped then did not fail that invoke.
const INIT_PHASE_LIMIT_NS: u64 = 10_000_000_000;

/// The wall clock at boot (ns after the epoch): now, less the time since boot (which counts
/// time suspended, as `/proc/uptime` does).
fn boot_wall_ns() -> Option<u64> {
    let read = |clock| {
        // SAFETY: clock_gettime writes only the timespec we pass.
        let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        (unsafe { libc::clock_gettime(clock, &mut ts) } == 0)
            .then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
    };
    read(libc::CLOCK_REALTIME)?.checked_sub(read(libc::CLOCK_BOOTTIME)?)
}

/// Takes the list of inits under way — renamed first, so that one process takes each line —
/// and says what it held besides `root`'s own init (over: the environment talks to the Runtime
/// API) and inits of runtime processes still running (put back): inits of processes gone
/// before they reached the Runtime API. Each kept an invoke waiting (on demand), which failed —
/// unless it ran the init phase's own 10 s and a new runtime started at once (Lambda tries the
/// init again for the same invoke). Each ran until the next runtime started. `None` when there
/// were none.
pub fn claim_ended_inits(root: u32) -> Option<crate::tracker::EndedInits> {
    let dir = std::env::temp_dir();
    let path = dir.join(INITS);
    let me = std::process::id();
    let claimed = dir.join(format!("{INITS}.{me}"));
    std::fs::rename(&path, &claimed).ok()?;
    let written = std::fs::metadata(&claimed).and_then(|m| m.modified()).ok();
    let text = std::fs::read_to_string(&claimed).unwrap_or_default();
    let _ = std::fs::remove_file(&claimed);
    // The pids in the order the runtimes started, with when each began (a pid the kernel gave
    // again to a later runtime has a line of its own).
    let boot = boot_wall_ns();
    let entries: Vec<(u32, Option<u64>, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_ascii_whitespace();
            let pid = fields.next()?.parse::<u32>().ok()?;
            let began = fields
                .next()
                .and_then(crate::text::seconds_ns)
                .zip(boot)
                .map(|(up, boot)| boot.saturating_add(up));
            Some((pid, began, l))
        })
        .collect();
    let mut starts: Vec<u64> = entries.iter().filter_map(|e| e.1).collect();
    starts.sort_unstable();
    let mut ended = crate::tracker::EndedInits::default();
    let mut running = String::new();
    for (i, &(pid, start, line)) in entries.iter().enumerate() {
        // The latest line of a pid is its runtime's.
        if pid == root
            || pid == me
            || entries
                .get(i + 1..)
                .is_some_and(|l| l.iter().any(|e| e.0 == pid))
        {
            continue;
        }
        if started_by_the_wrapper(pid) {
            running.push_str(line);
            running.push('\n');
            continue;
        }
        // It ran until the next runtime started.
        let ran = start.and_then(|s| Some(starts.iter().find(|t| **t > s)? - s));
        if ran.is_some_and(|r| {
            (INIT_PHASE_LIMIT_NS..INIT_PHASE_LIMIT_NS + 1_000_000_000).contains(&r)
        }) {
            continue;
        }
        if let Some(slot) = ended.ran_ns.get_mut(ended.count as usize) {
            *slot = ran;
        }
        ended.count += 1;
    }
    if !running.is_empty() {
        use std::io::Write;
        let _ = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .and_then(|mut f| f.write_all(running.as_bytes()));
    }
    if ended.count == 0 {
        return None;
    }
    ended.followed_at_ms = written
        .and_then(|w| w.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(|| probes::clock_now().wall_ms, |d| d.as_millis() as u64);
    Some(ended)
}

/// Whether `pid` is a running process the wrapper started (its environment names it the
/// environment's root): a pid reused by another process is not.
fn started_by_the_wrapper(pid: u32) -> bool {
    if !probes::proc_stat(pid).is_some_and(|s| s.running) {
        return false;
    }
    let Some(environ) = read_proc(pid, "environ") else {
        return false;
    };
    let own = format!("LAMBDA_METER_ENV_ID={pid}");
    environ.split(|b| *b == 0).any(|v| v == own.as_bytes())
}

/// `/proc/<pid>/<what>`, read whole (at reservation: it allocates). A `/proc` file says it is
/// empty, so `std::fs::read` asks its size, then reads 32 bytes and grows from there: a dozen
/// system calls for an environment of a few KiB, this is four.
pub fn read_proc(pid: u32, what: &str) -> Option<Vec<u8>> {
    let path = format!("/proc/{pid}/{what}\0");
    let fd = sys::open(path.as_bytes(), libc::O_RDONLY | libc::O_CLOEXEC, 0).ok()? as libc::c_int;
    let mut buf = vec![0u8; 16 * 1024];
    let mut len = 0;
    let whole = loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match sys::read(fd, buf.get_mut(len..).unwrap_or_default()) {
            Ok(0) => break true,
            Ok(n) => len += n,
            Err(libc::EINTR) => {}
            Err(_) => break false,
        }
    };
    let _ = sys::close(fd);
    buf.truncate(len);
    whole.then_some(buf)
}

pub fn set_undecided(undecided: bool) {
    state().undecided.store(undecided, Ordering::Relaxed);
}

/// Writes this process's open invokes, if it journals any, and where it is its environment's
/// root what the other processes keep (see [`write_environment`]). Async-signal-safe.
pub fn write_open(reason: &[u8]) {
    let own = journal();
    let root = state().root.load(Ordering::Relaxed);
    if own.is_none() && !root {
        return;
    }
    let (cpu_ns, own_rss_kb) = probes::own_usage();
    let now = probes::clock_now();
    let ending = Ending {
        wall_ms: now.wall_ms,
        mono_ns: Some(now.mono_ns),
        cpu_ns: Some(cpu_ns),
        max_rss_kb: Some(probes::memory_peak_kb(own_rss_kb, now.mono_ns)),
        reason,
    };
    if let Some(j) = own {
        // SAFETY: getpid has no preconditions (the kernel's answer, never a cache).
        let pid = unsafe { libc::syscall(libc::SYS_getpid) } as u32;
        if state().undecided.load(Ordering::Relaxed) {
            j.hand_on_open(pid);
        }
        j.write_open(pid, &ending, &mut |parts| {
            output::write_record_parts(parts);
        });
    }
    write_environment(&ending);
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
    state().exit_status.store(status, Ordering::Relaxed);
}

/// The library's destructor (a normal exit): this process's open invokes end here.
pub fn at_exit() {
    let status = state().exit_status.load(Ordering::Relaxed);
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

/// This module's part of the library's state in the process ([`crate::state::State`]).
pub struct EndingState {
    /// The environment's journal, once this process has become a runtime: the base of its
    /// mapping (null: none).
    journal: AtomicPtr<u8>,
    /// Its file's path...
    path: OnceLock<CString>,
    /// ...and the device and inode of the file mapped.
    id: [AtomicU64; 2],
    /// The status passed to `exit()`, for the destructor's records (`i32::MIN`: none seen; a
    /// return from `main` calls exit inside libc, where no hook sees it).
    exit_status: AtomicI32,
    /// Set while this process talks to the Runtime API for an environment whose root is
    /// another process, and has not shown yet whether it is a runtime of its own: its open
    /// invokes are then handed on at its end (a shell runtime's `curl` fetches an event and
    /// exits; another posts the result), not ended.
    undecided: AtomicBool,
    /// Set in the environment's root once it started other processes: its end writes the
    /// finished records they keep (see [`prepare_root`])...
    root: AtomicBool,
    /// ...from the journal named then...
    root_path: OnceLock<JournalPath>,
    /// ...to this stream, unless the settings chose where records go since.
    root_fd: AtomicI32,
}

impl EndingState {
    pub const fn new() -> EndingState {
        EndingState {
            journal: AtomicPtr::new(std::ptr::null_mut()),
            path: OnceLock::new(),
            id: [AtomicU64::new(0), AtomicU64::new(0)],
            exit_status: AtomicI32::new(i32::MIN),
            undecided: AtomicBool::new(false),
            root: AtomicBool::new(false),
            root_path: OnceLock::new(),
            root_fd: AtomicI32::new(libc::STDOUT_FILENO),
        }
    }

    /// In a forked child: a runtime of its own, that has called no `exit` yet.
    pub fn forked_child(&self) {
        let EndingState {
            // Kept: the environment's journal, mapped shared; the child's invokes are its own
            // slots.
            journal: _,
            path: _,
            id: _,
            exit_status,
            undecided,
            root,
            // Kept: the same environment's journal.
            root_path: _,
            root_fd: _,
        } = self;
        exit_status.reset_to(i32::MIN, Ordering::Relaxed);
        undecided.reset_to(false, Ordering::Relaxed);
        root.reset_to(false, Ordering::Relaxed);
    }
}

/// This module's state.
#[inline(always)]
fn state() -> &'static EndingState {
    &crate::state::STATE.ending
}
