//! Everything the library writes: EMF records to their destination, warnings to stderr.
//!
//! Each line is one `writev()` (or one `sendmsg()`), made as a raw system call ([`crate::sys`]):
//! lines from other threads never interleave inside it, nothing goes through the host's buffered
//! streams, errno is untouched, and no write of ours is a cancellation point. Nothing here
//! allocates: lines are formatted on the stack.
//!
//! No write of ours blocks the host for long, whatever the destination: stdout and stderr are
//! written without waiting (`RWF_NOWAIT`, per call, so the host's own file flags are never
//! changed) and waited for at most [`FULL_PIPE_WAIT_MS`] in all; a destination file is opened
//! non-blocking (a FIFO without a reader is refused, not waited for).
//!
//! Destinations other than stdout and stderr use an fd of our own (a file, or a socket to the
//! CloudWatch agent). It is moved high (≥ 512) and close-on-exec, and before every use we check
//! with `fstat` that the number still names our file: a host that closed it and got the same
//! number back for something else must never receive our lines, nor lose its fd to us. A socket
//! never blocks an invoke: a record that cannot go now is dropped and counted, with a warning at
//! the 1st, 10th, 100th … drop.
//!
//! Records are written only by the thread that holds the engine's gate (or by an ending path
//! that no other thread survives), so the destination's state needs no lock of its own.

use crate::settings::{Destination, LogLevel};
use crate::sys;
use std::cell::UnsafeCell;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU32, AtomicU64, Ordering};

/// Lowest fd number used for our own destination fds.
const OWN_FD_FLOOR: libc::c_int = 512;
/// How long a record waits for a connection to the agent made for it alone.
const AGENT_CONNECT_MS: libc::c_int = 10;
/// After a failed connect to the agent, wait this long before trying again.
const RECONNECT_AFTER_NS: u64 = 1_000_000_000;

/// Our own destination fd, with the identity that proves it is still ours.
struct Sink {
    fd: Option<OwnFd>,
    /// Whether `fd` is a stream socket.
    stream: bool,
    /// When the last connect to the agent failed (monotonic ns).
    failed_at: Option<u64>,
}

struct SinkCell(UnsafeCell<Sink>);

// SAFETY: only the thread that holds the engine's gate touches the sink (see the module
// documentation).
unsafe impl Sync for SinkCell {}

#[allow(clippy::mut_from_ref)]
fn sink() -> &'static mut Sink {
    // SAFETY: see SinkCell: one thread at a time, the one writing records.
    unsafe { &mut *state().sink.0.get() }
}

#[derive(Clone, Copy)]
struct OwnFd {
    fd: libc::c_int,
    dev: u64,
    ino: u64,
    /// Above the host's range, so it may stay open between records. Under an `RLIMIT_NOFILE`
    /// of 512 or less no number is (see [`OwnFd::adopt`]): the fd is closed after each write
    /// (a connection to the agent is made for each record).
    kept: bool,
}

fn identity(fd: libc::c_int) -> Option<(u64, u64)> {
    sys::fstat(fd).ok().map(|st| (st.st_dev, st.st_ino))
}

impl OwnFd {
    /// Takes `fd` (just created by us), moves it to a high number, and records its identity.
    /// Where no number above the host's range can be had (a low `RLIMIT_NOFILE`), it stays
    /// where it is, for one write.
    fn adopt(fd: libc::c_int) -> Option<OwnFd> {
        if fd < 0 {
            return None;
        }
        let (fd, kept) = match sys::dup_above(fd, OWN_FD_FLOOR) {
            Ok(high) => {
                let _ = sys::close(fd);
                (high as libc::c_int, true)
            }
            Err(_) => (fd, false),
        };
        let own = identity(fd).map(|(dev, ino)| OwnFd { fd, dev, ino, kept });
        match own {
            Some(_) => state().own_fd.store(fd, Ordering::Relaxed),
            None => {
                let _ = sys::close(fd);
            }
        }
        own
    }

    /// Whether the fd number still names what we opened.
    fn still_ours(&self) -> bool {
        identity(self.fd) == Some((self.dev, self.ino))
    }

    fn close(self) {
        let _ = state()
            .own_fd
            .compare_exchange(self.fd, -1, Ordering::Relaxed, Ordering::Relaxed);
        if self.still_ours() {
            let _ = sys::close(self.fd);
        }
    }
}

/// In a forked child, under the gate: its copy of our destination fd is its own to close; the
/// child opens its own when it has something to write.
pub fn forked_child_sink() {
    let s = sink();
    if let Some(fd) = s.fd.take() {
        fd.close();
    }
    s.failed_at = None;
}

/// Sets how chatty the library is about itself (`LAMBDA_METER_LOG`).
pub fn set_log_level(level: LogLevel) {
    state().log_level.store(level as u8, Ordering::Relaxed);
}

/// Writes a debug line, when `LAMBDA_METER_LOG=debug` (formatted on the stack).
pub(crate) fn debug(args: std::fmt::Arguments) {
    if state().log_level.load(Ordering::Relaxed) >= LogLevel::Debug as u8 {
        let mut buf = [0u8; 512];
        let mut out = crate::text::Out::new(&mut buf);
        out.str("lambda-meter: debug: ");
        let _ = std::fmt::Write::write_fmt(&mut out, args);
        out.byte(b'\n');
        let len = out.len();
        write_line(libc::STDERR_FILENO, buf.get(..len).unwrap_or_default());
    }
}

/// Sets where records go (once, at load).
pub fn configure(setting: Destination) {
    let chosen: &'static dyn RecordDestination = match setting {
        Destination::Stdout => &STDOUT,
        Destination::Stderr => &STDERR,
        Destination::File(path) => match std::ffi::CString::new(path) {
            Ok(path) => state().file.get_or_init(|| File { path }),
            // A path with a NUL byte: no file can be opened.
            Err(_) => state().file.get_or_init(|| File {
                path: std::ffi::CString::default(),
            }),
        },
        Destination::Tcp(addr) => state()
            .peer
            .get_or_init(|| Peer::agent(addr, libc::SOCK_STREAM)),
        Destination::Udp(addr) => state()
            .peer
            .get_or_init(|| Peer::agent(addr, libc::SOCK_DGRAM)),
        Destination::Unix(path) => state().peer.get_or_init(|| Peer::unix(&path)),
    };
    let _ = state().destination.set(chosen);
}

/// Where records go (`LAMBDA_METER_DESTINATION`): one implementation per destination.
trait RecordDestination: Sync {
    /// Writes one record, given in pieces (one line once joined), under the engine's gate.
    fn emit(&self, parts: &[&[u8]]);
    /// The fd a record given in pieces goes to from anywhere (an ending, a signal handler) and
    /// whether it is a socket; `None` while there is none.
    fn fd_anywhere(&self) -> Option<(libc::c_int, bool)>;
}

/// Stdout or stderr, the function's log.
struct LogStream {
    fd: libc::c_int,
    name: &'static str,
}

static STDOUT: LogStream = LogStream {
    fd: libc::STDOUT_FILENO,
    name: "stdout",
};
static STDERR: LogStream = LogStream {
    fd: libc::STDERR_FILENO,
    name: "stderr",
};

impl RecordDestination for LogStream {
    /// On stdout in a per-request helper process, that is the stdout of the environment's root
    /// (the function's log), never the helper's own stdout, which the runtime may be capturing
    /// (`EVENT=$(curl …)`).
    fn emit(&self, parts: &[&[u8]]) {
        if self.fd == libc::STDOUT_FILENO
            && let Some(root) = crate::probes::environment_root()
        {
            return to_root_stdout(root, parts);
        }
        if !write_record_to(self.fd, false, parts) {
            dropped(log_stream_trouble(self.fd, self.name));
        }
    }

    fn fd_anywhere(&self) -> Option<(libc::c_int, bool)> {
        Some((self.fd, false))
    }
}

/// A file records are appended to, opened by us.
struct File {
    /// NUL-terminated.
    path: std::ffi::CString,
}

impl RecordDestination for File {
    fn emit(&self, parts: &[&[u8]]) {
        to_path(self.path.as_bytes_with_nul(), true, parts, None);
    }

    fn fd_anywhere(&self) -> Option<(libc::c_int, bool)> {
        Some((state().own_fd.load(Ordering::Relaxed), false)).filter(|(fd, _)| *fd >= 0)
    }
}

/// A socket records are sent to: the CloudWatch agent's EMF endpoint (TCP or UDP), or a Unix
/// socket (datagram or stream).
struct Peer {
    family: libc::c_int,
    address: libc::sockaddr_storage,
    len: libc::socklen_t,
    /// The socket types to try, in order (a Unix socket's path does not say which it is).
    kinds: &'static [libc::c_int],
    /// How warnings name it.
    shown: PeerName,
}

enum PeerName {
    Agent(&'static str, SocketAddr),
    Unix(String),
}

impl std::fmt::Display for PeerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerName::Agent(scheme, addr) => write!(f, "the CloudWatch agent at {scheme}://{addr}"),
            PeerName::Unix(path) => write!(f, "the socket unix:{path}"),
        }
    }
}

impl Peer {
    fn agent(addr: SocketAddr, kind: libc::c_int) -> Peer {
        let (family, address, len) = sockaddr_of(addr);
        let (kinds, scheme): (&'static [libc::c_int], _) = if kind == libc::SOCK_STREAM {
            (&[libc::SOCK_STREAM], "tcp")
        } else {
            (&[libc::SOCK_DGRAM], "udp")
        };
        Peer {
            family,
            address,
            len,
            kinds,
            shown: PeerName::Agent(scheme, addr),
        }
    }

    /// `path` is absolute and shorter than `sun_path` (the settings checked).
    fn unix(path: &str) -> Peer {
        // SAFETY: an all-zero sockaddr_storage is valid, and large enough for sockaddr_un.
        let mut address: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        // SAFETY: as above; sockaddr_storage is suitably aligned for sockaddr_un.
        let un = unsafe {
            &mut *(&mut address as *mut libc::sockaddr_storage).cast::<libc::sockaddr_un>()
        };
        un.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (slot, b) in un.sun_path.iter_mut().zip(path.bytes()) {
            *slot = b as libc::c_char;
        }
        let len =
            std::mem::size_of::<libc::sa_family_t>() + path.len().min(un.sun_path.len() - 1) + 1;
        Peer {
            family: libc::AF_UNIX,
            address,
            len: len as libc::socklen_t,
            kinds: &[libc::SOCK_DGRAM, libc::SOCK_STREAM],
            shown: PeerName::Unix(path.to_string()),
        }
    }
}

impl RecordDestination for Peer {
    fn emit(&self, parts: &[&[u8]]) {
        to_peer(self, parts);
    }

    fn fd_anywhere(&self) -> Option<(libc::c_int, bool)> {
        Some((state().own_fd.load(Ordering::Relaxed), true)).filter(|(fd, _)| *fd >= 0)
    }
}

/// The destination chosen at load (stdout until then).
fn destination() -> &'static dyn RecordDestination {
    state().destination.get().copied().unwrap_or(&STDOUT)
}

/// Whether `fd` is stdout or stderr: one compare on the hooks' untracked path.
#[inline(always)]
pub fn is_log_fd(fd: libc::c_int) -> bool {
    (fd as u32).wrapping_sub(1) < 2
}

/// The host's write to stdout or stderr ended with `last`: noted for the environment (see
/// [`crate::lines`]), and for this process.
#[inline(always)]
pub fn host_wrote(fd: libc::c_int, last: u8) {
    let _ = crate::lines::wrote(fd, last);
    if let Some(flag) = state().host_line_open.get((fd as usize).wrapping_sub(1)) {
        flag.store(last != b'\n', Ordering::Relaxed);
    }
}

/// Whether this process's own last writes to stdout and stderr left a line open.
pub fn own_open_lines() -> [bool; 2] {
    let open = &state().host_line_open;
    [
        open[0].load(Ordering::Relaxed),
        open[1].load(Ordering::Relaxed),
    ]
}

/// Whether a line of ours written to `fd` must start with a newline (the host, or another
/// process of the environment, left a partial line there). Clears the mark: our line ends
/// with one.
fn take_open_line(fd: libc::c_int) -> bool {
    let own = state()
        .host_line_open
        .get((fd as usize).wrapping_sub(1))
        .is_some_and(|flag| flag.swap(false, Ordering::Relaxed));
    if is_log_fd(fd) {
        crate::lines::take_open(fd).unwrap_or(own)
    } else {
        own
    }
}

/// A yes-or-no fact about the host's process that a record asks the kernel once and keeps
/// until a hook sees the host change it: a generation in the high bits, the answer in the low
/// two. A question that raced a change is not kept (the change moved the generation on).
/// Lock-free and async-signal-safe.
pub struct Kept(AtomicU32);

const NOT_KEPT: u32 = 0;
const KEPT_YES: u32 = 1;
const KEPT_NO: u32 = 2;

impl Kept {
    pub const fn new() -> Kept {
        Kept(AtomicU32::new(NOT_KEPT))
    }

    /// The kept answer, or the kernel's (`ask`), kept when nothing changed meanwhile.
    fn get_or(&self, ask: impl FnOnce() -> Option<bool>) -> Option<bool> {
        let seen = self.0.load(Ordering::Acquire);
        match seen & 3 {
            KEPT_YES => return Some(true),
            KEPT_NO => return Some(false),
            _ => {}
        }
        let answer = ask();
        if let Some(yes) = answer {
            let _ = self.0.compare_exchange(
                seen,
                (seen & !3) | if yes { KEPT_YES } else { KEPT_NO },
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        answer
    }

    /// The host changed it: asked again next time.
    fn forget(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |w| {
                Some((w & !3).wrapping_add(4))
            });
    }
}

/// Whether the host ignores SIGPIPE, as the kernel said when a record last asked: asked again
/// (one raw system call) only after the host changed SIGPIPE's action through any of the
/// signal hooks ([`sigpipe_changed`]).
fn sigpipe_ignored() -> bool {
    state()
        .sigpipe
        .get_or(|| {
            let mut now = sys::KernelAction::default();
            sys::rt_sigaction(libc::SIGPIPE, None, Some(&mut now))
                .ok()
                .map(|_| now.handler == libc::SIG_IGN)
        })
        .unwrap_or(false)
}

/// The host is changing SIGPIPE's action (the `sigaction`, `signal`-like and raw
/// `rt_sigaction` hooks): the next record asks the kernel again.
pub fn sigpipe_changed() {
    state().sigpipe.forget();
}

/// The host is changing what `fd` is (`close`, `dup2`, `dup3`, `close_range`, `fclose`, and
/// their raw system calls): when it is stdout or stderr, the next record there looks again
/// whether it is still the stream it was, and the log lines forget what they knew of it.
#[inline(always)]
pub fn log_fd_changed(fd: libc::c_int) {
    if let Some(kept) = state().log_checked.get((fd as usize).wrapping_sub(1)) {
        kept.forget();
        crate::lines::fd_changed(fd);
    }
}

/// Runs `write` (ours, to a pipe or socket) so that it cannot raise SIGPIPE in the host: a
/// write of ours to a pipe whose reader has gone must not kill the host with a signal it would
/// never have received without the library. SIGPIPE is blocked on this thread, and one it
/// raised taken back before the mask is restored (one that was already pending is left alone).
/// Nothing to do when the host ignores SIGPIPE (Python and Node.js do). Async-signal-safe.
fn without_sigpipe<T>(write: impl FnOnce() -> T) -> T {
    if sigpipe_ignored() {
        return write();
    }
    // SAFETY: an all-zero sigset_t is an empty set; sigaddset writes only it.
    let mut pipe: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::sigaddset(&mut pipe, libc::SIGPIPE) };
    let old = sys::sigmask(libc::SIG_BLOCK, &pipe);
    let was_pending = sys::pending(libc::SIGPIPE);
    let result = write();
    if !was_pending {
        sys::take_pending(libc::SIGPIPE);
    }
    sys::sigmask(libc::SIG_SETMASK, &old);
    result
}

/// Remembers what stdout and stderr are now (called first thing at load).
pub fn remember_log_streams() {
    for ((fd, slot), kept) in [libc::STDOUT_FILENO, libc::STDERR_FILENO]
        .into_iter()
        .zip(&state().log_streams)
        .zip(&state().log_checked)
    {
        if let Some((dev, ino)) = identity(fd) {
            slot[0].store(dev, Ordering::Relaxed);
            slot[1].store(ino, Ordering::Relaxed);
        }
        // Remembered again (an environment's root that forked, then talked to the Runtime
        // API): what was checked against the earlier streams is asked again.
        kept.forget();
    }
}

/// Whether the settings chose where records go (the process talked to the Runtime API).
pub fn destination_chosen() -> bool {
    state().destination.get().is_some()
}

/// Writes one record given in pieces to stdout or stderr (`fd`), by the rules of
/// [`write_record_parts`], where no destination was chosen. Async-signal-safe.
pub fn write_record_parts_to_log(fd: libc::c_int, parts: &[&[u8]]) -> bool {
    let written = is_log_fd(fd) && write_record_to(fd, false, parts);
    if !written {
        state().dropped_lines.fetch_add(1, Ordering::Relaxed);
    }
    written
}

/// Whether `fd` (1 or 2) is still the stream it was at load. Other fds: true. One `fstat`;
/// async-signal-safe.
fn still_log_stream(fd: libc::c_int) -> bool {
    log_stream_check(fd).is_some()
}

/// What a write of ours to `fd` needs to know: `None` when `fd` (1 or 2) is no longer the
/// stream it was at load; else whether a write could raise SIGPIPE (a pipe or a socket). One
/// `fstat` the first time, and again only after the host changed the fd ([`log_fd_changed`]).
/// Async-signal-safe.
fn log_stream_check(fd: libc::c_int) -> Option<bool> {
    if !is_log_fd(fd) {
        return Some(false);
    }
    state()
        .log_checked
        .get((fd as usize).wrapping_sub(1))?
        .get_or(|| log_stream_asked(fd))
}

/// [`log_stream_check`] from the kernel: one `fstat`.
fn log_stream_asked(fd: libc::c_int) -> Option<bool> {
    let st = sys::fstat(fd).ok();
    if let Some(slot) = state().log_streams.get((fd as usize).wrapping_sub(1)) {
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
    write_record_to(fd, false, &[line])
}

/// The longest a record waits, in all, for a full stdout or stderr (a pipe nobody drains fast
/// enough, non-blocking or not) to take it; past that it is dropped and counted.
const FULL_PIPE_WAIT_MS: i32 = 1_000;

/// Waits (poll) until `fd` can take bytes, within what is left of [`FULL_PIPE_WAIT_MS`].
/// Async-signal-safe.
fn wait_writable(fd: libc::c_int, waited_ms: &mut i32) -> bool {
    if *waited_ms >= FULL_PIPE_WAIT_MS {
        return false;
    }
    let step = (FULL_PIPE_WAIT_MS - *waited_ms).min(100);
    let rc = sys::poll_out(fd, step);
    *waited_ms += match rc {
        Ok((0, _)) => step,
        _ => 1,
    };
    match rc {
        Ok((0, _)) => true,
        Ok((_, revents)) => revents & libc::POLLOUT != 0,
        Err(e) => e == libc::EINTR,
    }
}

/// Writes one EMF record, given in pieces, to the configured destination.
pub fn emit_record(parts: &[&[u8]]) {
    destination().emit(parts);
}

/// Writes a per-request helper's record to the stdout of its environment's root (`root`), in
/// step with what the root and its other children write there, whatever that stream is:
/// - through the helper's own stdout or stderr when it is that stream (inherited: for a file,
///   the same offset the root writes at);
/// - else, for a pipe, a FIFO or a terminal, through a new open of `/proc/<root>/fd/1`;
/// - else (a socket cannot be opened; a file would be written out of step with the root's
///   offset) through a copy of the root's own fd (`pidfd_getfd`), where the kernel allows it,
///   or a new open of a file the root itself appends to.
///
/// A record none of these can place is dropped with a warning that says why, never written
/// where it would tear the function's output.
fn to_root_stdout(root: u32, parts: &[&[u8]]) {
    let mut path = [0u8; 48];
    let path = crate::text::format_into(&mut path, format_args!("/proc/{root}/fd/1\0"));
    let path = path.as_bytes();
    let shown = crate::text::utf8_prefix(path, path.len().saturating_sub(1));
    let target = match sys::stat(path) {
        Ok(st) => st,
        Err(e) => return dropped_fmt(format_args!("cannot open {shown}: {}", Errno(e))),
    };
    let same = |fd: libc::c_int| {
        sys::fstat(fd).is_ok_and(|st| (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino))
    };
    if let Some(fd) = [libc::STDOUT_FILENO, libc::STDERR_FILENO]
        .into_iter()
        .find(|fd| same(*fd))
    {
        if !write_record_to(fd, false, parts) {
            dropped_fmt(format_args!("cannot write to {shown}"));
        }
        return;
    }
    let kind = target.st_mode & libc::S_IFMT;
    let reopen = matches!(kind, libc::S_IFIFO | libc::S_IFCHR);
    let stream = Some((target.st_dev, target.st_ino));
    if !reopen && let Ok(fd) = sys::fd_of_process(root, libc::STDOUT_FILENO) {
        let fd = fd as libc::c_int;
        let ok = write_record_on(fd, false, parts, stream);
        let _ = sys::close(fd);
        if !ok {
            dropped_fmt(format_args!("cannot write to {shown}"));
        }
        return;
    }
    if reopen || (kind == libc::S_IFREG && root_appends(root)) {
        return to_path(path, false, parts, stream);
    }
    dropped_fmt(format_args!(
        "cannot write to {shown} in step with the runtime (a {} this process does not share, and the kernel refuses a copy of it)",
        if kind == libc::S_IFSOCK {
            "socket"
        } else {
            "file"
        }
    ));
}

/// Whether the root's stdout is open for appending (`O_APPEND` in `/proc/<root>/fdinfo/1`):
/// then a new appending open of it writes where the root would.
fn root_appends(root: u32) -> bool {
    let mut path = [0u8; 48];
    let path = crate::text::format_into(&mut path, format_args!("/proc/{root}/fdinfo/1\0"));
    let Ok(fd) = sys::open(path.as_bytes(), libc::O_RDONLY | libc::O_CLOEXEC, 0) else {
        return false;
    };
    let mut buf = [0u8; 256];
    let n = sys::read(fd as libc::c_int, &mut buf).unwrap_or(0);
    let _ = sys::close(fd as libc::c_int);
    let text = buf.get(..n).unwrap_or_default();
    text.split(|b| *b == b'\n')
        .find_map(|l| l.strip_prefix(b"flags:"))
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .is_some_and(|flags| flags & libc::O_APPEND as u32 != 0)
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
    let Some((fd, socket)) = destination().fd_anywhere() else {
        state().dropped_lines.fetch_add(1, Ordering::Relaxed);
        return false;
    };
    let written = write_record_to(fd, socket, parts);
    if !written {
        state().dropped_lines.fetch_add(1, Ordering::Relaxed);
    }
    written
}

/// Writes one record given in pieces to `fd`, after a newline when the host left a line open
/// there. False when nothing (or not all) could be written.
fn write_record_to(fd: libc::c_int, socket: bool, parts: &[&[u8]]) -> bool {
    write_record_on(fd, socket, parts, None)
}

/// [`write_record_to`]; `stream` is the stream `fd` writes to when `fd` is another process's
/// stdout reached through an fd of ours (its line may be open too).
fn write_record_on(
    fd: libc::c_int,
    socket: bool,
    parts: &[&[u8]],
    stream: Option<(u64, u64)>,
) -> bool {
    let Some(pipe) = log_stream_check(fd) else {
        return false;
    };
    let open = match stream {
        Some(id) => crate::lines::take_open_of(id).unwrap_or(false),
        None => take_open_line(fd),
    };
    let newline: &[u8] = if open { b"\n" } else { b"" };
    let mut room = IOVECS;
    let Some(iov) = pieces_into(
        &mut room,
        std::iter::once(newline).chain(parts.iter().copied()),
    ) else {
        return false;
    };
    let n = iov.len();
    let log_pipe = is_log_fd(fd) && !socket && pipe;
    if log_pipe {
        without_sigpipe(|| writev_all(fd, socket, iov, n))
    } else {
        writev_all(fd, socket, iov, n)
    }
}

/// The most pieces a record is given in (a journal's template renders to at most 48).
const MAX_PIECES: usize = 50;

/// Room for a record's iovecs, written only as far as they are used (not cleared first: a
/// record is one to three pieces, the room is for fifty).
type Iovecs = [std::mem::MaybeUninit<libc::iovec>; MAX_PIECES + 1];

const IOVECS: Iovecs = [std::mem::MaybeUninit::uninit(); MAX_PIECES + 1];

/// Points the first iovecs of `room` at the non-empty `parts`, in order: those iovecs, or
/// `None` when they do not fit.
fn pieces_into<'r, 'p>(
    room: &'r mut Iovecs,
    parts: impl Iterator<Item = &'p [u8]>,
) -> Option<&'r mut [libc::iovec]> {
    let mut n = 0;
    for part in parts.filter(|p| !p.is_empty()) {
        room.get_mut(n)?.write(libc::iovec {
            iov_base: part.as_ptr().cast_mut().cast(),
            iov_len: part.len(),
        });
        n += 1;
    }
    // SAFETY: the first `n` elements were written just now (MaybeUninit<iovec> has iovec's
    // layout); the slice borrows `room` mutably for as long as it lives.
    Some(unsafe { std::slice::from_raw_parts_mut(room.as_mut_ptr().cast(), n) })
}

/// How a write to an fd avoids waiting.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writes {
    /// `RWF_NOWAIT`: fails with EAGAIN instead of waiting (pipes, sockets).
    FlaggedNoWait,
    /// The fd cannot say (a named FIFO, an old kernel's pipe): look with `poll` first, and
    /// write at most `PIPE_BUF` at a time, which a pipe with room takes without waiting.
    PollFirst,
    /// A file or a terminal: a write does not wait for long.
    Plain,
}

/// Sends the first `n` iovecs whole (`sendmsg` with `MSG_NOSIGNAL` to a socket of ours, a
/// `writev` that does not wait otherwise), finishing partial writes, and waiting for a full
/// pipe at most [`FULL_PIPE_WAIT_MS`] in all. Async-signal-safe.
fn writev_all(fd: libc::c_int, socket: bool, iov: &mut [libc::iovec], n: usize) -> bool {
    let mut first = 0;
    let mut waited = 0;
    let mut how = Writes::FlaggedNoWait;
    while first < n {
        let Some(rest) = iov.get_mut(first..n) else {
            return false;
        };
        let sent = if socket {
            // MSG_NOSIGNAL: no SIGPIPE for the host; MSG_DONTWAIT: never block the invoke.
            sys::sendmsg(fd, rest, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
        } else {
            match how {
                Writes::FlaggedNoWait => match sys::writev_nowait(fd, rest) {
                    // The fd cannot say, or the kernel (or an emulator) has no pwritev2.
                    Err(libc::EOPNOTSUPP | libc::EINVAL | libc::ESPIPE | libc::ENOSYS) => {
                        let fifo = sys::fstat(fd)
                            .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO);
                        how = if fifo {
                            Writes::PollFirst
                        } else {
                            Writes::Plain
                        };
                        continue;
                    }
                    other => other,
                },
                Writes::PollFirst => match sys::poll_out(fd, 0) {
                    Ok((0, _)) => Err(libc::EAGAIN),
                    Ok(_) => {
                        // One piece of at most PIPE_BUF bytes: taken whole or not at all.
                        let piece = rest.first().map_or(
                            libc::iovec {
                                iov_base: std::ptr::null_mut(),
                                iov_len: 0,
                            },
                            |v| libc::iovec {
                                iov_base: v.iov_base,
                                iov_len: v.iov_len.min(libc::PIPE_BUF),
                            },
                        );
                        sys::writev(fd, &[piece])
                    }
                    Err(e) => Err(e),
                },
                Writes::Plain => sys::writev(fd, rest),
            }
        };
        let sent = match sent {
            Ok(sent) => sent,
            Err(libc::EINTR) => continue,
            Err(libc::EAGAIN) if !socket && wait_writable(fd, &mut waited) => continue,
            Err(_) => return false,
        };
        // Skip what was written; a partly written piece continues where it stopped.
        let mut left = sent;
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

/// Appends to a file (or a `/proc/<pid>/fd/1`) through our own fd: opened once and kept when
/// `keep` (a configured file), else opened for this record only.
fn to_path(path: &[u8], keep: bool, parts: &[&[u8]], stream: Option<(u64, u64)>) {
    let shown = crate::text::utf8_prefix(path, path.len().saturating_sub(1));
    if !keep {
        // Another process's stdout: a new open file description of it, appending, never
        // waiting (a FIFO without a reader is refused at once).
        let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC | libc::O_NONBLOCK;
        match sys::open(path, flags, 0) {
            Ok(fd) => {
                let fd = fd as libc::c_int;
                let ok = write_record_on(fd, false, parts, stream);
                let _ = sys::close(fd);
                if !ok {
                    dropped_fmt(format_args!("cannot write to {shown}"));
                }
            }
            Err(e) => dropped_fmt(format_args!("cannot open {shown}: {}", Errno(e))),
        }
        return;
    }
    let s = sink();
    let fd = match s.fd.filter(OwnFd::still_ours) {
        Some(fd) => fd,
        None => {
            let flags = libc::O_WRONLY
                | libc::O_APPEND
                | libc::O_CLOEXEC
                | libc::O_CREAT
                | libc::O_NONBLOCK;
            match sys::open(path, flags, 0o644) {
                Ok(raw) => match OwnFd::adopt(raw as libc::c_int) {
                    Some(fd) => {
                        s.fd = Some(fd);
                        fd
                    }
                    None => {
                        s.fd = None;
                        return dropped_fmt(format_args!("cannot open {shown}"));
                    }
                },
                Err(e) => {
                    s.fd = None;
                    return dropped_fmt(format_args!("cannot open {shown}: {}", Errno(e)));
                }
            }
        }
    };
    if !write_record_to(fd.fd, false, parts) {
        dropped_fmt(format_args!("cannot write to {shown}"));
    }
    if !fd.kept {
        s.fd = None;
        fd.close();
    }
}

/// Sends to a socket peer (the CloudWatch agent's EMF endpoint, a Unix socket) without ever
/// waiting for it.
fn to_peer(peer: &Peer, parts: &[&[u8]]) {
    let s = sink();
    let fd = match s.fd.filter(OwnFd::still_ours) {
        Some(fd) => fd,
        None => {
            let now = crate::probes::mono_ns();
            if s.failed_at
                .is_some_and(|t| now.saturating_sub(t) < RECONNECT_AFTER_NS)
            {
                return dropped_fmt(format_args!("{} is unreachable", peer.shown));
            }
            match open_socket(peer) {
                Ok((fd, stream)) => {
                    s.fd = Some(fd);
                    s.stream = stream;
                    s.failed_at = None;
                    fd
                }
                Err(e) => {
                    s.failed_at = Some(now);
                    return dropped_fmt(format_args!(
                        "{} is unreachable ({})",
                        peer.shown,
                        Errno(e)
                    ));
                }
            }
        }
    };
    if !fd.kept && s.stream {
        // A connection made for this record only: the peer is local, its connect completes
        // at once or not at all.
        let _ = sys::poll_out(fd.fd, AGENT_CONNECT_MS);
    }
    let mut room = IOVECS;
    let Some(iov) = pieces_into(&mut room, parts.iter().copied()) else {
        return dropped_fmt(format_args!("a record in more than {MAX_PIECES} pieces"));
    };
    let len: usize = parts.iter().map(|p| p.len()).sum();
    // MSG_NOSIGNAL: a closed peer must not raise SIGPIPE in the host; MSG_DONTWAIT: never
    // block the invoke.
    let sent = sys::sendmsg(fd.fd, iov, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT);
    // Not kept between records (a low RLIMIT_NOFILE): closed after this one, whatever came of
    // it.
    let once = |s: &mut Sink| {
        if !fd.kept && s.fd.take().is_some() {
            fd.close();
        }
    };
    let err = match sent {
        Ok(n) if n == len => return once(s),
        Ok(n) => {
            // A partial line would corrupt the stream: close and start over.
            if n > 0 {
                s.fd = None;
                fd.close();
            }
            once(s);
            libc::EAGAIN
        }
        Err(e @ (libc::EAGAIN | libc::ENOTCONN)) => {
            once(s);
            e
        }
        Err(e) => {
            // Still connecting, or the agent is not keeping up: drop this one, keep the
            // socket; anything else: start over.
            s.fd = None;
            s.failed_at = Some(crate::probes::mono_ns());
            fd.close();
            e
        }
    };
    dropped_fmt(format_args!(
        "{} is unreachable ({})",
        peer.shown,
        Errno(err)
    ));
}

/// A non-blocking socket to `peer`, connect started, and whether it is a stream: of the first
/// of its socket types the peer takes.
fn open_socket(peer: &Peer) -> Result<(OwnFd, bool), libc::c_int> {
    let mut err = libc::EPROTOTYPE;
    for kind in peer.kinds {
        // SAFETY: plain socket creation; the fd is ours. (socket is not a cancellation point.)
        let raw = unsafe {
            libc::socket(
                peer.family,
                kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            // SAFETY: reading this thread's errno (the caller restores the host's).
            return Err(unsafe { *libc::__errno_location() });
        }
        let Some(fd) = OwnFd::adopt(raw) else {
            return Err(libc::EBADF);
        };
        // SAFETY: `address` holds a valid sockaddr of `len` bytes for `family`.
        let rc = unsafe {
            crate::real::connect::get()(
                fd.fd,
                (&peer.address as *const libc::sockaddr_storage).cast(),
                peer.len,
            )
        };
        // SAFETY: as above.
        err = unsafe { *libc::__errno_location() };
        if rc == 0 || err == libc::EINPROGRESS {
            return Ok((fd, *kind == libc::SOCK_STREAM));
        }
        fd.close();
        // A Unix socket of the other type: try the next.
        if err != libc::EPROTOTYPE {
            break;
        }
    }
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

/// An errno by its name (the C library's wording may need its translations loaded, which
/// allocates), formatted without allocating.
struct Errno(libc::c_int);

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.0 {
            libc::ENOENT => "no such file or directory (ENOENT)",
            libc::EACCES => "permission denied (EACCES)",
            libc::EPERM => "operation not permitted (EPERM)",
            libc::ENXIO => "no reader or no such device (ENXIO)",
            libc::EPIPE => "broken pipe (EPIPE)",
            libc::EAGAIN => "it takes no more now (EAGAIN)",
            libc::ENOSPC => "no space left on device (ENOSPC)",
            libc::EISDIR => "is a directory (EISDIR)",
            libc::EROFS => "read-only file system (EROFS)",
            libc::EMFILE => "too many open files (EMFILE)",
            libc::ECONNREFUSED => "connection refused (ECONNREFUSED)",
            libc::ENOTCONN => "not connected (ENOTCONN)",
            libc::ENETUNREACH => "network unreachable (ENETUNREACH)",
            libc::EBADF => "bad file descriptor (EBADF)",
            _ => return write!(f, "errno {}", self.0),
        };
        f.write_str(name)
    }
}

/// Counts a dropped record and warns at the 1st, 10th, 100th … drop.
fn dropped(why: &str) {
    dropped_fmt(format_args!("{why}"));
}

/// [`dropped`] with a formatted reason.
fn dropped_fmt(why: std::fmt::Arguments) {
    let total = state().dropped_lines.fetch_add(1, Ordering::Relaxed) + 1;
    if is_power_of_ten(total) {
        warn_fmt(format_args!("{why}; {total} EMF record(s) dropped so far"));
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
    warn_fmt(format_args!("{msg}"));
}

/// [`warn`] of a formatted message (formatted on the stack; a line break in it becomes a
/// space, so the warning stays one line).
pub fn warn_fmt(args: std::fmt::Arguments) {
    let mut buf = [0u8; 1024];
    let mut out = crate::text::Out::new(&mut buf);
    out.str("lambda-meter: warning: ");
    let _ = std::fmt::Write::write_fmt(&mut out, args);
    let len = out.len().min(buf.len() - 1);
    let line = buf.get_mut(..len + 1).unwrap_or_default();
    for b in line.iter_mut() {
        if *b == b'\n' {
            *b = b' ';
        }
    }
    if let Some(last) = line.last_mut() {
        *last = b'\n';
    }
    write_line(libc::STDERR_FILENO, line);
}

/// This module's part of the library's state in the process ([`crate::state::State`]).
pub struct OutputState {
    /// Where records go (set once, at load), and the file or socket it may be.
    destination: OnceLock<&'static dyn RecordDestination>,
    file: OnceLock<File>,
    peer: OnceLock<Peer>,
    /// Our own destination fd; touched only by the thread that holds the engine's gate.
    sink: SinkCell,
    /// That fd while open, for [`write_record_parts`], which may run anywhere. -1 when none.
    own_fd: AtomicI32,
    /// Records that could not be written (destination closed, full, unreachable, …).
    dropped_lines: AtomicU64,
    /// `LAMBDA_METER_LOG`, as a [`LogLevel`].
    log_level: AtomicU8,
    /// Whether the last byte the host wrote to stdout (`[0]`) or stderr (`[1]`) ended a line:
    /// false after a partial line such as `progress: 50%`. Kept by the `write`/`writev` hooks
    /// with one relaxed store, no lock and no system call; a line of ours starts with a
    /// newline when needed, or CloudWatch would see the host's text glued before the JSON and
    /// drop the record. Only bytes that pass through the hooked `write`/`writev` are seen:
    /// every runtime's own output path (CPython, Node's libuv, the JVM, Ruby, .NET), not C
    /// stdio (`printf`), whose internal writes do not go through the dynamic linker.
    host_line_open: [AtomicBool; 2],
    /// What stdout (`[0]`) and stderr (`[1]`) were when the library loaded: device and inode,
    /// or `u64::MAX` when the fd was not open. The library writes to them only while fd 1 and
    /// 2 still name the same file: a host that closed its stdout may get fd 1 back for a file
    /// or socket of its own, and nothing of ours may appear there.
    log_streams: [[AtomicU64; 2]; 2],
    /// Whether stdout (`[0]`) and stderr (`[1]`) are still those streams, and pipes or sockets,
    /// as a record found, until a hook sees the host change the fd. (Not the stream: not kept.)
    log_checked: [Kept; 2],
    /// Whether SIGPIPE is ignored, as a record found, until a hook sees the host change it.
    sigpipe: Kept,
}

impl OutputState {
    pub const fn new() -> OutputState {
        OutputState {
            destination: OnceLock::new(),
            file: OnceLock::new(),
            peer: OnceLock::new(),
            sink: SinkCell(UnsafeCell::new(Sink {
                fd: None,
                stream: false,
                failed_at: None,
            })),
            own_fd: AtomicI32::new(-1),
            dropped_lines: AtomicU64::new(0),
            log_level: AtomicU8::new(0),
            host_line_open: [AtomicBool::new(false), AtomicBool::new(false)],
            log_streams: [
                [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
                [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
            ],
            log_checked: [Kept::new(), Kept::new()],
            sigpipe: Kept::new(),
        }
    }

    /// In a forked child.
    pub fn forked_child(&self) {
        let OutputState {
            // Kept: the same destination.
            destination: _,
            file: _,
            peer: _,
            // Its copy of our fd is closed under the gate by the fork hook
            // ([`forked_child_sink`]), which also clears `own_fd`.
            sink: _,
            own_fd: _,
            // Kept: a count for the library's own diagnostics, and the same setting.
            dropped_lines: _,
            log_level: _,
            // Kept: the child shares its parent's stdout and stderr, partial line included.
            host_line_open: _,
            log_streams: _,
            // Kept: the child has the same fds and signal actions (a change it makes goes
            // through its hooks).
            log_checked: _,
            sigpipe: _,
        } = self;
    }
}

/// This module's state.
#[inline(always)]
fn state() -> &'static OutputState {
    &crate::state::STATE.output
}
