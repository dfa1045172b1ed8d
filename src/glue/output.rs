//! Everything the library writes: EMF records to their destination, warnings to stderr.
//!
//! Each line is one `write()` (or one `send()`) through the saved real function, so lines from
//! other threads never interleave inside it, and nothing goes through the host's buffered
//! streams. Callers restore the host's errno afterwards.
//!
//! Destinations other than stdout and stderr use an fd of our own (a file, or a socket to the
//! CloudWatch agent). It is moved high (≥ 512) and close-on-exec, and before every use we check
//! with `fstat` that the number still names our file: a host that closed it and got the same
//! number back for something else must never receive our lines, nor lose its fd to us. A socket
//! never blocks an invoke: it is non-blocking, and a record that cannot go now is dropped and
//! counted, with a warning at the 1st, 10th, 100th … drop.

use crate::real;
use crate::settings::Destination;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Records that could not be written (destination closed, full, unreachable, …).
pub static DROPPED_LINES: AtomicU64 = AtomicU64::new(0);

/// Lowest fd number used for our own destination fds.
const OWN_FD_FLOOR: libc::c_int = 512;
/// After a failed connect to the agent, wait this long before trying again.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

static DESTINATION: OnceLock<Destination> = OnceLock::new();
static SINK: Mutex<Sink> = Mutex::new(Sink {
    fd: None,
    failed_at: None,
});

/// Our own destination fd, with the identity that proves it is still ours.
pub struct Sink {
    fd: Option<OwnFd>,
    failed_at: Option<Instant>,
}

#[derive(Clone, Copy)]
struct OwnFd {
    fd: libc::c_int,
    dev: u64,
    ino: u64,
}

fn errno() -> libc::c_int {
    // SAFETY: reading this thread's errno.
    unsafe { *libc::__errno_location() }
}

fn identity(fd: libc::c_int) -> Option<(u64, u64)> {
    file_status(fd).map(|st| (st.st_dev, st.st_ino))
}

fn file_status(fd: libc::c_int) -> Option<libc::stat> {
    // SAFETY: an all-zero stat is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes only the struct we pass.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st)
}

impl OwnFd {
    /// Takes `fd` (just created by us), moves it to a high number, and records its identity.
    fn adopt(fd: libc::c_int) -> Option<OwnFd> {
        if fd < 0 {
            return None;
        }
        // SAFETY: fcntl F_DUPFD_CLOEXEC on our own fd; the original is ours to close.
        let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, OWN_FD_FLOOR) };
        let fd = if high >= 0 {
            // SAFETY: closing the fd we created a moment ago, now duplicated.
            unsafe { real::close::get()(fd) };
            high
        } else {
            fd
        };
        let own = identity(fd).map(|(dev, ino)| OwnFd { fd, dev, ino });
        if own.is_some() {
            OWN_FD.store(fd, Ordering::Relaxed);
        }
        own
    }

    /// Whether the fd number still names what we opened.
    fn still_ours(&self) -> bool {
        identity(self.fd) == Some((self.dev, self.ino))
    }

    fn close(self) {
        let _ = OWN_FD.compare_exchange(self.fd, -1, Ordering::Relaxed, Ordering::Relaxed);
        if self.still_ours() {
            // SAFETY: the fd is verified to be ours.
            unsafe { real::close::get()(self.fd) };
        }
    }
}

/// Our own destination fd (file or agent socket) while open, for [`write_record_parts`], which
/// may not take the sink lock. -1 when none.
static OWN_FD: AtomicI32 = AtomicI32::new(-1);

fn sink() -> MutexGuard<'static, Sink> {
    SINK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The sink lock, held across `fork` so a child never inherits it mid-use.
pub type SinkGuard = MutexGuard<'static, Sink>;

/// Takes the sink lock before `fork`.
pub fn lock_for_fork() -> SinkGuard {
    sink()
}

/// In a forked child: its copy of our destination fd is its own to close; the child opens
/// its own when it has something to write.
pub fn forked_child(sink: &mut SinkGuard) {
    if let Some(fd) = sink.fd.take() {
        fd.close();
    }
    sink.failed_at = None;
}

/// Sets where records go (once, at load).
pub fn configure(destination: Destination) {
    let _ = DESTINATION.set(destination);
}

/// Whether the last byte the host wrote to stdout (`[0]`) or stderr (`[1]`) ended a line: false
/// after a partial line such as `progress: 50%`. Kept by the `write`/`writev` hooks with one
/// relaxed store, no lock and no system call; a line of ours starts with a newline when needed,
/// or CloudWatch would see the host's text glued before the JSON and drop the record.
///
/// Only bytes that pass through the hooked `write`/`writev` are seen: that is every runtime's
/// own output path (CPython, Node's libuv, the JVM, Ruby, .NET), but not C stdio (`printf`),
/// whose internal writes do not go through the dynamic linker.
static HOST_LINE_OPEN: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];

/// Whether `fd` is stdout or stderr: one compare on the hooks' untracked path.
#[inline(always)]
pub fn is_log_fd(fd: libc::c_int) -> bool {
    (fd as u32).wrapping_sub(1) < 2
}

/// The host's write to stdout or stderr ended with `last`.
#[inline(always)]
pub fn host_wrote(fd: libc::c_int, last: u8) {
    if let Some(flag) = HOST_LINE_OPEN.get((fd as usize).wrapping_sub(1)) {
        flag.store(last != b'\n', Ordering::Relaxed);
    }
}

/// Whether a line of ours written to `fd` must start with a newline (the host left a partial
/// line there). Clears the mark: our line ends with one.
pub fn take_open_line(fd: libc::c_int) -> bool {
    HOST_LINE_OPEN
        .get((fd as usize).wrapping_sub(1))
        .is_some_and(|flag| flag.swap(false, Ordering::Relaxed))
}

/// What stdout (`[0]`) and stderr (`[1]`) were when the library loaded: device and inode, or
/// `u64::MAX` when the fd was not open. The library writes to them only while fd 1 and 2 still
/// name the same file: a host that closed its stdout may get fd 1 back for a file or socket of
/// its own, and nothing of ours may appear there.
static LOG_STREAMS: [[AtomicU64; 2]; 2] = [
    [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
    [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
];

/// Whether the host ignores SIGPIPE (read at load, kept by the `sigaction`/`signal` hooks).
/// When it does not, a write of ours to a pipe whose reader has gone must not raise one: the
/// host would be killed by a signal it would never have received without the library.
static SIGPIPE_IGNORED: AtomicBool = AtomicBool::new(false);

/// The host set SIGPIPE's disposition.
pub fn note_sigpipe_disposition(handler: libc::sighandler_t) {
    SIGPIPE_IGNORED.store(handler == libc::SIG_IGN, Ordering::Relaxed);
}

/// Runs `write` (ours, to stdout or stderr) so that it cannot raise SIGPIPE in the host: with
/// SIGPIPE blocked on this thread, and a SIGPIPE it raised taken back before the mask is
/// restored (one that was already pending is left alone). Free when the host ignores SIGPIPE.
/// Async-signal-safe.
fn without_sigpipe<T>(write: impl FnOnce() -> T) -> T {
    if SIGPIPE_IGNORED.load(Ordering::Relaxed) {
        return write();
    }
    // SAFETY: plain signal-set manipulation on local sets and this thread's mask.
    unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut old);
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending);
        let was_pending = libc::sigismember(&pending, libc::SIGPIPE) == 1;
        let result = write();
        if !was_pending {
            let now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            libc::sigtimedwait(&pipe, std::ptr::null_mut(), &now);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        result
    }
}

/// Remembers what stdout and stderr are now (called first thing at load).
pub fn remember_log_streams() {
    let mut pipe: libc::sigaction = unsafe_zeroed_sigaction();
    // SAFETY: querying SIGPIPE's action into our struct.
    if unsafe { real::sigaction::get()(libc::SIGPIPE, std::ptr::null(), &mut pipe) } == 0 {
        note_sigpipe_disposition(pipe.sa_sigaction);
    }
    for (fd, slot) in [libc::STDOUT_FILENO, libc::STDERR_FILENO]
        .into_iter()
        .zip(&LOG_STREAMS)
    {
        if let Some((dev, ino)) = identity(fd) {
            slot[0].store(dev, Ordering::Relaxed);
            slot[1].store(ino, Ordering::Relaxed);
        }
    }
}

fn unsafe_zeroed_sigaction() -> libc::sigaction {
    // SAFETY: an all-zero sigaction is a valid value (SIG_DFL, no flags, empty mask).
    unsafe { std::mem::zeroed() }
}

/// Whether `fd` (1 or 2) is still the stream it was at load. Other fds: true. One `fstat`;
/// async-signal-safe.
fn still_log_stream(fd: libc::c_int) -> bool {
    log_stream_check(fd).is_some()
}

/// What a write of ours to `fd` needs to know, from one `fstat`: `None` when `fd` (1 or 2) is
/// no longer the stream it was at load; else whether a write could raise SIGPIPE (a pipe or a
/// socket). Async-signal-safe.
fn log_stream_check(fd: libc::c_int) -> Option<bool> {
    if !is_log_fd(fd) {
        return Some(false);
    }
    let st = file_status(fd);
    if let Some(slot) = LOG_STREAMS.get((fd as usize).wrapping_sub(1)) {
        let known = (
            slot[0].load(Ordering::Relaxed),
            slot[1].load(Ordering::Relaxed),
        );
        let now = st.as_ref().map(|st| (st.st_dev, st.st_ino));
        if known == (u64::MAX, u64::MAX) || now != Some(known) {
            return None;
        }
    }
    Some(st.is_some_and(|st| matches!(st.st_mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFSOCK)))
}

/// Writes `line` to `fd` as one line of its own: with a leading newline when the host left a
/// partial line on stdout or stderr. False (nothing written) when stdout or stderr is no
/// longer the stream it was at load.
pub fn write_line(fd: i32, line: &[u8]) -> bool {
    let Some(pipe) = log_stream_check(fd) else {
        return false;
    };
    let write = || {
        if take_open_line(fd) {
            let mut fresh = Vec::with_capacity(line.len() + 1);
            fresh.push(b'\n');
            fresh.extend_from_slice(line);
            return write_all(fd, &fresh);
        }
        write_all(fd, line)
    };
    if pipe {
        without_sigpipe(write)
    } else {
        write()
    }
}

/// Writes all of `bytes` to `fd`, retrying on EINTR and finishing partial writes. Never blocks
/// beyond what the fd itself does; gives up on any other error (the caller counts the loss).
fn write_all(fd: i32, bytes: &[u8]) -> bool {
    let write = real::write::get();
    let mut rest = bytes;
    let mut waited = 0;
    while !rest.is_empty() {
        // SAFETY: `rest` is a live slice; write reads at most `rest.len()` bytes from it.
        let n = unsafe { write(fd, rest.as_ptr().cast(), rest.len()) };
        if n < 0 {
            match errno() {
                libc::EINTR => continue,
                libc::EAGAIN if wait_writable(fd, &mut waited) => continue,
                _ => return false,
            }
        }
        rest = rest.get(n as usize..).unwrap_or_default();
    }
    true
}

/// The longest a record waits, in all, for a full non-blocking stdout or stderr (a runtime such
/// as Node may set O_NONBLOCK on it) to take it; past that it is dropped and counted.
const FULL_PIPE_WAIT_MS: i32 = 1_000;

/// Waits (poll) until `fd` can take bytes, within what is left of [`FULL_PIPE_WAIT_MS`].
/// Async-signal-safe.
fn wait_writable(fd: libc::c_int, waited_ms: &mut i32) -> bool {
    if *waited_ms >= FULL_PIPE_WAIT_MS {
        return false;
    }
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    let step = (FULL_PIPE_WAIT_MS - *waited_ms).min(100);
    // SAFETY: poll on one pollfd of ours.
    let rc = unsafe { libc::poll(&mut p, 1, step) };
    *waited_ms += if rc == 0 { step } else { 1 };
    rc >= 0 && (rc == 0 || p.revents & libc::POLLOUT != 0)
}

/// Writes one EMF record to the configured destination. On stdout in a per-request helper
/// process, that is the stdout of the environment's root (the function's log), never the
/// helper's own stdout, which the runtime may be capturing (`EVENT=$(curl …)`).
pub fn emit_record(line: &str) {
    let bytes = line.as_bytes();
    match DESTINATION.get().unwrap_or(&Destination::Stdout) {
        Destination::Stdout => match crate::probes::environment_root() {
            None => {
                if !write_line(libc::STDOUT_FILENO, bytes) {
                    dropped(1, log_stream_trouble(libc::STDOUT_FILENO, "stdout"));
                }
            }
            Some(root) => to_file(&format!("/proc/{root}/fd/1"), false, bytes),
        },
        Destination::Stderr => {
            if !write_line(libc::STDERR_FILENO, bytes) {
                dropped(1, log_stream_trouble(libc::STDERR_FILENO, "stderr"));
            }
        }
        Destination::File(path) => to_file(path, true, bytes),
        Destination::Tcp(addr) => to_agent(*addr, libc::SOCK_STREAM, bytes, "tcp"),
        Destination::Udp(addr) => to_agent(*addr, libc::SOCK_DGRAM, bytes, "udp"),
    }
}

/// Why a record for stdout or stderr could not go.
fn log_stream_trouble(fd: libc::c_int, name: &str) -> &'static str {
    match (still_log_stream(fd), name) {
        (false, "stdout") => "stdout is no longer the stream it was when the runtime started",
        (false, _) => "stderr is no longer the stream it was when the runtime started",
        (true, "stdout") => "cannot write to stdout",
        (true, _) => "cannot write to stderr",
    }
}

/// Writes one record given in pieces, from anywhere — a signal handler or a process about to
/// `_exit` included: no allocation, no lock, one `writev` (or `sendmsg` to the agent) unless
/// the fd takes fewer bytes. To stdout or stderr, or to our own file or agent socket once it
/// is open (before the first ordinary record it is not: the record is counted as dropped).
pub fn write_record_parts(parts: &[&[u8]]) -> bool {
    let destination = DESTINATION.get().unwrap_or(&Destination::Stdout);
    let (fd, socket) = match destination {
        Destination::Stdout => (libc::STDOUT_FILENO, false),
        Destination::Stderr => (libc::STDERR_FILENO, false),
        Destination::File(_) => (OWN_FD.load(Ordering::Relaxed), false),
        Destination::Tcp(_) | Destination::Udp(_) => (OWN_FD.load(Ordering::Relaxed), true),
    };
    let Some(pipe) = log_stream_check(fd) else {
        DROPPED_LINES.fetch_add(1, Ordering::Relaxed);
        return false;
    };
    let newline: &[u8] = if take_open_line(fd) { b"\n" } else { b"" };
    const MAX: usize = 50;
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX];
    let mut n = 0;
    for part in std::iter::once(newline).chain(parts.iter().copied()) {
        if part.is_empty() {
            continue;
        }
        let Some(slot) = iov.get_mut(n) else {
            return false;
        };
        *slot = libc::iovec {
            iov_base: part.as_ptr().cast_mut().cast(),
            iov_len: part.len(),
        };
        n += 1;
    }
    if fd < 0 {
        DROPPED_LINES.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    let log_pipe = is_log_fd(fd) && !socket && pipe;
    if log_pipe {
        without_sigpipe(|| writev_all(fd, socket, &mut iov, n))
    } else {
        writev_all(fd, socket, &mut iov, n)
    }
}

/// Sends the first `n` iovecs whole (`sendmsg` with `MSG_NOSIGNAL` to a socket of ours,
/// `writev` otherwise), finishing partial writes. Async-signal-safe.
fn writev_all(fd: libc::c_int, socket: bool, iov: &mut [libc::iovec], n: usize) -> bool {
    let mut first = 0;
    let mut waited = 0;
    while first < n {
        let Some(rest) = iov.get_mut(first..n) else {
            return false;
        };
        let sent = if socket {
            // SAFETY: an all-zero msghdr is valid; it names our iovecs only.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = rest.as_mut_ptr();
            msg.msg_iovlen = rest.len() as _;
            // SAFETY: the iovecs point into live slices; MSG_NOSIGNAL: no SIGPIPE for the host.
            unsafe { real::sendmsg::get()(fd, &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) }
        } else {
            // SAFETY: the iovecs point into live slices; writev only reads them.
            unsafe { real::writev::get()(fd, rest.as_ptr(), rest.len() as libc::c_int) }
        };
        if sent < 0 {
            match errno() {
                libc::EINTR => continue,
                libc::EAGAIN if !socket && wait_writable(fd, &mut waited) => continue,
                _ => {
                    DROPPED_LINES.fetch_add(1, Ordering::Relaxed);
                    return false;
                }
            }
        }
        // Skip what was written; a partly written piece continues where it stopped.
        let mut left = sent as usize;
        while first < n {
            let Some(v) = iov.get_mut(first) else {
                break;
            };
            if left < v.iov_len {
                // SAFETY: `left` < iov_len, so the new base stays inside the piece.
                v.iov_base = unsafe { v.iov_base.cast::<u8>().add(left) }.cast();
                v.iov_len -= left;
                break;
            }
            left -= v.iov_len;
            first += 1;
        }
    }
    true
}

/// Appends to a file through our own fd (opened once, reopened if the host took it).
fn to_file(path: &str, create: bool, line: &[u8]) {
    if !write_line_to_own_file(path, create, line) {
        dropped(1, &format!("cannot write to {path}"));
    }
}

fn write_line_to_own_file(path: &str, create: bool, line: &[u8]) -> bool {
    let mut s = sink();
    let fd = match s.fd.filter(OwnFd::still_ours) {
        Some(fd) => fd,
        None => {
            let Ok(cpath) = std::ffi::CString::new(path) else {
                return false;
            };
            let flags = libc::O_WRONLY
                | libc::O_APPEND
                | libc::O_CLOEXEC
                | if create { libc::O_CREAT } else { 0 };
            // SAFETY: open with a NUL-terminated path; the fd it returns is ours.
            let raw = unsafe { libc::open(cpath.as_ptr(), flags, 0o644) };
            let err = errno();
            match OwnFd::adopt(raw) {
                Some(fd) => {
                    s.fd = Some(fd);
                    fd
                }
                None => {
                    s.fd = None;
                    drop(s);
                    let why = std::io::Error::from_raw_os_error(err);
                    dropped(1, &format!("cannot open {path}: {why}"));
                    return true;
                }
            }
        }
    };
    drop(s);
    write_line(fd.fd, line)
}

/// Sends to the CloudWatch agent's EMF endpoint without ever waiting for it.
fn to_agent(addr: SocketAddr, kind: libc::c_int, line: &[u8], scheme: &str) {
    let mut s = sink();
    let fd = match s.fd.filter(OwnFd::still_ours) {
        Some(fd) => fd,
        None => {
            if s.failed_at.is_some_and(|t| t.elapsed() < RECONNECT_AFTER) {
                drop(s);
                return dropped(
                    1,
                    &format!("the CloudWatch agent at {scheme}://{addr} is unreachable"),
                );
            }
            match open_socket(addr, kind) {
                Ok(fd) => {
                    s.fd = Some(fd);
                    s.failed_at = None;
                    fd
                }
                Err(e) => {
                    s.failed_at = Some(Instant::now());
                    drop(s);
                    return dropped(
                        1,
                        &format!("the CloudWatch agent at {scheme}://{addr} is unreachable ({e})"),
                    );
                }
            }
        }
    };
    let send = real::send::get();
    // SAFETY: `line` is a live slice; send reads at most its length. MSG_NOSIGNAL: a closed
    // peer must not raise SIGPIPE in the host; MSG_DONTWAIT: never block the invoke.
    let n = unsafe {
        send(
            fd.fd,
            line.as_ptr().cast(),
            line.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    if n == line.len() as isize {
        return;
    }
    let err = errno();
    if n >= 0 || err == libc::EAGAIN || err == libc::EWOULDBLOCK || err == libc::ENOTCONN {
        // Still connecting, or the agent is not keeping up: drop this one, keep the socket.
        // A partial line would corrupt the stream: close and start over.
        if n > 0 {
            s.fd = None;
            fd.close();
        }
    } else {
        s.fd = None;
        s.failed_at = Some(Instant::now());
        fd.close();
    }
    drop(s);
    let why = std::io::Error::from_raw_os_error(err);
    dropped(
        1,
        &format!("the CloudWatch agent at {scheme}://{addr} is unreachable ({why})"),
    );
}

/// A non-blocking socket to `addr`, connect started.
fn open_socket(addr: SocketAddr, kind: libc::c_int) -> std::io::Result<OwnFd> {
    let (family, storage, len) = sockaddr_of(addr);
    // SAFETY: plain socket creation; the fd is ours.
    let raw = unsafe { libc::socket(family, kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let Some(fd) = OwnFd::adopt(raw) else {
        return Err(std::io::Error::other("socket lost"));
    };
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes for `family`.
    let rc = unsafe {
        real::connect::get()(
            fd.fd,
            (&storage as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    if rc == 0 || errno() == libc::EINPROGRESS {
        return Ok(fd);
    }
    let err = std::io::Error::last_os_error();
    fd.close();
    Err(err)
}

fn sockaddr_of(addr: SocketAddr) -> (libc::c_int, libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            (
                libc::AF_INET,
                storage,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            (
                libc::AF_INET6,
                storage,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

/// Counts dropped records and warns at the 1st, 10th, 100th … drop.
fn dropped(count: u64, why: &str) {
    let total = DROPPED_LINES.fetch_add(count, Ordering::Relaxed) + count;
    if count > 0 && is_power_of_ten(total) {
        warn(&format!("{why}; {total} EMF record(s) dropped so far"));
    }
}

fn is_power_of_ten(mut n: u64) -> bool {
    if n == 0 {
        return false;
    }
    while n.is_multiple_of(10) {
        n /= 10;
    }
    n == 1
}

/// Writes one warning line to stderr: `lambda-meter: warning: …`.
pub fn warn(msg: &str) {
    let line = format!("lambda-meter: warning: {}\n", msg.replace('\n', " "));
    write_line(libc::STDERR_FILENO, line.as_bytes());
}
