//! Whether the function's log line is open, as every process of the environment sees it.
//!
//! A record must start a line, whoever left the last one open: the runtime, a child it started
//! (`os.system("printf …")`, `curl` to stdout, a Node child), the shell of a shell runtime
//! (`echo -n`), or C stdio flushing a partial line. Each of those processes has the library
//! (`LD_PRELOAD` is inherited), but none shares memory with the one that writes the record. So
//! the environment keeps one page in its temporary directory,
//! `$TMPDIR/.lambda-meter-lines-<root>` (`<root>` from `LAMBDA_METER_ENV_ID`, which the wrapper
//! sets), holding the identity of the root's stdout and stderr and, for each, whether the last
//! byte written there ended a line. Every process of the environment that writes to one of
//! them notes it there; whoever writes a record reads it, and starts with a newline only when
//! the line is open.
//!
//! The page is made when the environment first talks to the Runtime API (the runtime, or a
//! shell runtime's first `curl`), from the root's stdout and stderr as they are then — not
//! while the root has its stdout redirected to a file for a moment (a shell runtime's handler).
//!
//! Cost: a process that writes nothing to stdout or stderr, or only whole lines, pays nothing
//! (no system call: a sandboxed child under a seccomp allowlist built from its own trace keeps
//! working). One that leaves a line open maps the page then (an open, `fstat`, `fallocate`,
//! `mmap` and close; a failed open, at most once a second, while the environment has not made
//! it yet) and looks which stream its fd is (an `fstat`). From then on a write costs a compare,
//! and a store when it turns the line from closed to open or back. The price: a line opened by
//! one process and ended by another that never mapped the page is still taken as open (the
//! next record starts after an empty line). Without `LAMBDA_METER_ENV_ID` (no wrapper) there is
//! no page, and no system call is made: the process follows only its own writes.
//!
//! Everything here is async-signal-safe, allocates nothing and takes no lock: it runs on the
//! hooks of `write` and friends, in any process, a `vfork` child included (which shares its
//! parent's memory: a page it maps is the parent's too, and its classification of fds 1 and 2
//! is forgotten when it changes them, as the parent's would be).

use crate::sys;
use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicU32, AtomicU64, Ordering};

/// First 8 bytes of a page whose identities are written.
const MAGIC: u64 = u64::from_le_bytes(*b"LMLINES1");
const PAGE: usize = 4096;
/// Per stream (the root's stdout, then its stderr): device, inode, open flag.
const ENTRY: usize = 32;
const ENTRIES: usize = 2;
/// Offsets in an entry.
const DEV: usize = 0;
const INO: usize = 8;
const OPEN: usize = 16;

/// What fd 1 or 2 of this process is, as far as this module knows.
const UNKNOWN: u8 = 0;
/// 1 and 2: the stream of entry 0 or 1.
const NOT_THE_LOG: u8 = 3;
/// Not a wrapped environment: never a page.
const NO_PAGE: u8 = 4;

/// How long a process that found no page waits before it looks again (the page is made when
/// the environment first talks to the Runtime API).
const RETRY_NS: u64 = 1_000_000_000;

/// This module's part of the library's state in the process ([`crate::state::State`]).
pub struct LinesState {
    /// The page, once mapped (null: not yet).
    page: AtomicPtr<u8>,
    /// When this process may look for the page again (monotonic ns), after it found none;
    /// `u64::MAX`: never (not a wrapped environment).
    next_look_ns: AtomicU64,
    /// What fds 1 and 2 are (see the constants above).
    class: [AtomicU8; 2],
}

impl LinesState {
    pub const fn new() -> LinesState {
        LinesState {
            page: AtomicPtr::new(std::ptr::null_mut()),
            next_look_ns: AtomicU64::new(0),
            class: [AtomicU8::new(UNKNOWN), AtomicU8::new(UNKNOWN)],
        }
    }

    /// In a forked child: the same environment, the same fds, the page mapped shared.
    pub fn forked_child(&self) {
        let LinesState {
            // Kept: MAP_SHARED mappings survive fork, and the stream is the same.
            page: _,
            next_look_ns: _,
            class: _,
        } = self;
    }
}

/// This module's state.
#[inline(always)]
fn state() -> &'static LinesState {
    &crate::state::STATE.lines
}

/// The page's `u64` at `off`.
fn word(page: *mut u8, off: usize) -> &'static AtomicU64 {
    // SAFETY: `off` is an 8-byte aligned offset inside the page, which stays mapped for the
    // rest of the process and is only accessed through atomics.
    unsafe { AtomicU64::from_ptr(page.add(off).cast()) }
}

/// The open flag of entry `e`.
fn flag(page: *mut u8, e: usize) -> &'static AtomicU32 {
    // SAFETY: as in `word`; 4-byte aligned.
    unsafe { AtomicU32::from_ptr(page.add(8 + e * ENTRY + OPEN).cast()) }
}

/// The stream entry `e` stands for.
fn identity(page: *mut u8, e: usize) -> (u64, u64) {
    (
        word(page, 8 + e * ENTRY + DEV).load(Ordering::Relaxed),
        word(page, 8 + e * ENTRY + INO).load(Ordering::Relaxed),
    )
}

/// The environment's root, named by the wrapper, when this process is metered at all.
fn root() -> Option<u32> {
    sys::getenv(c"AWS_LAMBDA_RUNTIME_API")?;
    if let Some(v) = sys::getenv(c"LAMBDA_METER_DISABLE")
        && std::str::from_utf8(v)
            .ok()
            .and_then(crate::settings::parse_bool)
            == Some(true)
    {
        return None;
    }
    std::str::from_utf8(sys::getenv(c"LAMBDA_METER_ENV_ID")?)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The page's path for `root`, NUL-terminated, in `buf`.
fn path_of(root: u32, buf: &mut [u8; 600]) -> Option<&[u8]> {
    let dir = sys::getenv(c"TMPDIR")
        .filter(|d| !d.is_empty())
        .unwrap_or(b"/tmp");
    let mut path = crate::text::Out::new(buf);
    path.bytes(dir);
    let _ = std::fmt::Write::write_fmt(&mut path, format_args!("/.lambda-meter-lines-{root}\0"));
    let (len, overflowed) = (path.len(), path.overflowed());
    (!overflowed).then(|| buf.get(..len)).flatten()
}

/// The page, once mapped.
fn mapped() -> Option<*mut u8> {
    let p = state().page.load(Ordering::Acquire);
    (!p.is_null()).then_some(p)
}

/// Publishes `page` as this process's; the one already published if another thread was first.
fn publish(page: *mut u8) -> *mut u8 {
    match state().page.compare_exchange(
        std::ptr::null_mut(),
        page,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => page,
        Err(theirs) => {
            // SAFETY: our own mapping of PAGE bytes, not published anywhere.
            unsafe { libc::munmap(page.cast(), PAGE) };
            theirs
        }
    }
}

/// The environment has talked to the Runtime API (this process is its runtime, or a
/// per-request helper): its streams are the root's stdout and stderr now, which the page names
/// from then on (made now if it is not there yet). A line this process left open before is
/// noted there. Not on a hook's fast path: once per process.
pub fn environment_joined(own_open: [bool; 2]) {
    if mapped().is_some() {
        return;
    }
    let Some(root) = root() else {
        return;
    };
    let mut buf = [0u8; 600];
    let Some(path) = path_of(root, &mut buf) else {
        return;
    };
    let Ok(file) = sys::map_state_file(path, PAGE) else {
        return;
    };
    let page = file.base;
    if word(page, 0).load(Ordering::Acquire) != MAGIC {
        for (e, fd) in [1, 2].into_iter().enumerate() {
            let mut proc = [0u8; 48];
            let proc = crate::text::format_into(&mut proc, format_args!("/proc/{root}/fd/{fd}\0"));
            if let Ok(st) = sys::stat(proc.as_bytes()) {
                word(page, 8 + e * ENTRY + DEV).store(st.st_dev, Ordering::Relaxed);
                word(page, 8 + e * ENTRY + INO).store(st.st_ino, Ordering::Relaxed);
            }
        }
        word(page, 0).store(MAGIC, Ordering::Release);
    }
    publish(page);
    for (fd, open) in [1, 2].into_iter().zip(own_open) {
        fd_changed(fd);
        if open && let Some(flag) = flag_of_fd(fd) {
            flag.store(1, Ordering::Relaxed);
        }
    }
}

/// The page, if the environment has made it; looked for at most once a second while it has
/// not. `None` for good outside a wrapped environment (no system call is made then).
fn page() -> Option<*mut u8> {
    if let Some(p) = mapped() {
        return Some(p);
    }
    let now = crate::probes::mono_ns();
    if now < state().next_look_ns.load(Ordering::Relaxed) {
        return None;
    }
    let Some(root) = root() else {
        state().next_look_ns.store(u64::MAX, Ordering::Relaxed);
        return None;
    };
    state()
        .next_look_ns
        .store(now.saturating_add(RETRY_NS), Ordering::Relaxed);
    let mut buf = [0u8; 600];
    let file = sys::map_existing_state_file(path_of(root, &mut buf)?, PAGE).ok()?;
    if word(file.base, 0).load(Ordering::Acquire) != MAGIC {
        // Being made right now: looked at again later.
        // SAFETY: our own mapping of PAGE bytes, not published anywhere.
        unsafe { libc::munmap(file.base.cast(), PAGE) };
        return None;
    }
    Some(publish(file.base))
}

/// The open flag of the environment's log stream that `fd` (1 or 2) writes to; `None` when
/// it writes elsewhere (a pipe the runtime reads, /dev/null) or there is no page.
fn flag_of_fd(fd: libc::c_int) -> Option<&'static AtomicU32> {
    let slot = state().class.get((fd as usize).wrapping_sub(1))?;
    let class = match slot.load(Ordering::Relaxed) {
        UNKNOWN => {
            // The host sees its own errno whatever the looking cost (a failed mmap sets it).
            // SAFETY: errno is thread-local; saved and restored around the system calls.
            let saved = unsafe { *libc::__errno_location() };
            let class = classify(fd);
            // SAFETY: as above.
            unsafe { *libc::__errno_location() = saved };
            slot.store(class, Ordering::Relaxed);
            class
        }
        c => c,
    };
    match class {
        1 | 2 => Some(flag(
            state().page.load(Ordering::Acquire),
            usize::from(class - 1),
        )),
        _ => None,
    }
}

/// Which stream `fd` writes to (see the class constants).
fn classify(fd: libc::c_int) -> u8 {
    let Some(page) = page() else {
        return if state().next_look_ns.load(Ordering::Relaxed) == u64::MAX {
            NO_PAGE
        } else {
            UNKNOWN
        };
    };
    let Ok(st) = sys::fstat(fd) else {
        return NOT_THE_LOG;
    };
    of_identity(page, (st.st_dev, st.st_ino)).map_or(NOT_THE_LOG, |e| e as u8 + 1)
}

/// The entry standing for the stream `id`, if any.
fn of_identity(page: *mut u8, id: (u64, u64)) -> Option<usize> {
    (0..ENTRIES).find(|e| id != (0, 0) && identity(page, *e) == id)
}

/// The host wrote to `fd` (1 or 2), its last byte `last`: notes whether the log line is open
/// now. `None` when this process has no say on the environment's line (then it keeps its own
/// account). A process that has not mapped the page maps it only to note an open line: one
/// that writes whole lines (a sandboxed child logging to stderr under a seccomp allowlist)
/// makes no system call here.
#[inline]
pub fn wrote(fd: libc::c_int, last: u8) -> Option<()> {
    if last == b'\n' && mapped().is_none() {
        return None;
    }
    let flag = flag_of_fd(fd)?;
    let open = u32::from(last != b'\n');
    // A store only when it changes: most writes end a line, as the last one did.
    if flag.load(Ordering::Relaxed) != open {
        flag.store(open, Ordering::Relaxed);
    }
    Some(())
}

/// A record is about to be written to `fd` (1 or 2): whether the line there is open (and, as
/// the record ends one, it is closed from now on). `None` when this process has no say.
pub fn take_open(fd: libc::c_int) -> Option<bool> {
    Some(flag_of_fd(fd)?.swap(0, Ordering::Relaxed) != 0)
}

/// [`take_open`] for a record written to the stream `id` (device, inode) through an fd other
/// than 1 or 2 (a per-request helper writing to its root's stdout).
pub fn take_open_of(id: (u64, u64)) -> Option<bool> {
    // SAFETY: errno is thread-local; saved and restored around the system calls.
    let saved = unsafe { *libc::__errno_location() };
    let page = page();
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
    let page = page?;
    let e = of_identity(page, id)?;
    Some(flag(page, e).swap(0, Ordering::Relaxed) != 0)
}

/// The host is changing what `fd` is (`close`, `dup2`, `dup3`, `close_range`): looked at again
/// at its next write.
#[inline(always)]
pub fn fd_changed(fd: libc::c_int) {
    if let Some(slot) = state().class.get((fd as usize).wrapping_sub(1)) {
        slot.store(UNKNOWN, Ordering::Relaxed);
    }
}
