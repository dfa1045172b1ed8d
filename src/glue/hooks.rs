//! The interposed libc functions: thin `extern "C"` shims, generated from the table of hooks
//! (`table.rs`), around the observers here that hold what a hook does.
//!
//! Every I/O hook has one shape: call the real function, and only if the fd is a tracked
//! Runtime API socket (one atomic load) hand the bytes that really moved to the engine. The
//! return value and errno the host sees are exactly the real function's. `MSG_PEEK` reads and
//! calls that moved no bytes are not observed. Don't log from here: the host may have closed
//! or redirected stdout and stderr.
//!
//! The variadic `fcntl`, `fcntl64`, `syscall` and `fprintf` hooks, and `dlopen` and `dlsym`,
//! are in C (`c-abi/interpose.c`); they call back into the `lm_*` functions at the end of this
//! file.

use crate::ending;
use crate::output;
use crate::process;
use crate::process::TRACKED;
use crate::real;
use crate::signals;
use crate::state::Reset;
use lambda_meter_core::fdtable::{FdBits, MAX_TRACKED_FD};
use libc::{
    c_char, c_int, c_uint, c_void, iovec, msghdr, pid_t, size_t, sockaddr, socklen_t, ssize_t,
};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// Reads a socket address the kernel has just accepted.
///
/// # Safety
/// `addr` must point to `len` readable bytes: true where the kernel read them, which a
/// `connect` that got as far as the protocol did (see [`connected`]).
unsafe fn socket_addr(addr: *const sockaddr, len: socklen_t) -> Option<SocketAddr> {
    if addr.is_null() || (len as usize) < std::mem::size_of::<libc::sa_family_t>() {
        return None;
    }
    let len = len as usize;
    // SAFETY: the caller guarantees `len` readable bytes; sa_family is the first field.
    let family = unsafe { (*addr).sa_family } as c_int;
    match family {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: family and length say this is a sockaddr_in; read unaligned to be safe.
            let sin = unsafe { std::ptr::read_unaligned(addr.cast::<libc::sockaddr_in>()) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: family and length say this is a sockaddr_in6.
            let sin6 = unsafe { std::ptr::read_unaligned(addr.cast::<libc::sockaddr_in6>()) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                0,
                0,
            )))
        }
        _ => None,
    }
}

fn errno() -> c_int {
    // SAFETY: reading this thread's errno.
    unsafe { *libc::__errno_location() }
}

fn set_errno(value: c_int) {
    // SAFETY: writing this thread's errno.
    unsafe { *libc::__errno_location() = value };
}

/// Before a write to a tracked fd: while a finished invoke's record waits for the runtime's
/// next `/next`, the engine writes it before the request can reach the wire. The host's buffer
/// is not read: only the real call may touch it before it is known to be valid.
#[inline(always)]
fn before_send(fd: c_int) {
    if TRACKED.contains(fd) {
        // What the host read through a stream comes before what it sends.
        settle_streams();
        if process::record_awaits() {
            process::sending(fd);
        }
    }
}

/// Hands `rc` bytes the host wrote from `buf` to the engine; on stdout or stderr, notes whether
/// the host's output now ends a line.
#[inline(always)]
fn observe_sent(fd: c_int, buf: *const c_void, rc: ssize_t) {
    if rc > 0 && output::is_log_fd(fd) {
        // SAFETY: the real call just read `rc` bytes from `buf`, the last one included.
        output::host_wrote(fd, unsafe { *buf.cast::<u8>().add(rc as usize - 1) });
    }
    if rc > 0 && TRACKED.contains(fd) {
        // SAFETY: the real call just read `rc` bytes from `buf`.
        let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), rc as usize) };
        process::sent(fd, &[data]);
    }
}

/// Receive flags under which the bytes are not the stream's next bytes in the caller's buffer:
/// a peek (they come again), the error queue (not stream data), or a TCP `MSG_TRUNC` read
/// (discarded by the kernel without being copied; `rc` may even exceed the buffer).
const NOT_IN_STREAM: c_int = libc::MSG_PEEK | libc::MSG_ERRQUEUE | libc::MSG_TRUNC;

/// Whether a receive with `flags` that returned `rc` needs the engine: only when it moved
/// stream bytes the library can see, or skipped some it cannot (then the connection can no
/// longer be followed).
#[inline(always)]
fn unseen_bytes(fd: c_int, rc: ssize_t, flags: c_int) -> bool {
    if flags & NOT_IN_STREAM == 0 || rc <= 0 || !TRACKED.contains(fd) {
        return false;
    }
    // Bytes consumed from the stream without reaching us: stop following the connection.
    if flags & (libc::MSG_PEEK | libc::MSG_ERRQUEUE) == 0 {
        process::unseen(fd, "MSG_TRUNC");
    }
    true
}

/// Hands `rc` bytes the host read into `buf` (or an end of stream: rc == 0 for a read that asked
/// for bytes; a zero-length read returns 0 too and is not one) to the engine.
#[inline(always)]
fn observe_received(fd: c_int, buf: *const c_void, len: size_t, rc: ssize_t, flags: c_int) {
    if unseen_bytes(fd, rc, flags) {
        return;
    }
    if (rc > 0 || (rc == 0 && len > 0)) && flags & NOT_IN_STREAM == 0 && TRACKED.contains(fd) {
        // SAFETY: the real call just wrote `rc` bytes into `buf`.
        let data: &[u8] = if rc == 0 {
            &[]
        } else {
            unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), rc as usize) }
        };
        process::received(fd, &[data]);
    }
}

/// How many bytes an iovec array asks for (a read asking for none that returns 0 has not
/// reached the end of the stream).
///
/// # Safety
/// `iov` must point to `n` iovecs (true once the kernel accepted them).
unsafe fn iov_capacity(iov: *const iovec, n: c_int) -> usize {
    if iov.is_null() {
        return 0;
    }
    (0..n.max(0) as usize)
        // SAFETY: i < n, so iov.add(i) is inside the host's array.
        .map(|i| unsafe { (*iov.add(i)).iov_len })
        .fold(0usize, usize::saturating_add)
}

/// Calls `f` with the first `rc` bytes of an iovec array, as batches of slices (no allocation:
/// this runs for every tracked `writev`).
///
/// # Safety
/// `iov` must point to `n` iovecs whose first `rc` bytes were just transferred by the kernel.
unsafe fn iov_batches(iov: *const iovec, n: c_int, rc: ssize_t, mut f: impl FnMut(&[&[u8]])) {
    const BATCH: usize = 16;
    let mut left = rc.max(0) as usize;
    // Not zeroed first (a 256-byte fill on each of the runtime's writes and reads): only the
    // first `used` slots are ever read.
    let mut batch = [const { std::mem::MaybeUninit::<&[u8]>::uninit() }; BATCH];
    let mut used = 0;
    if iov.is_null() {
        return;
    }
    let filled = |batch: &[std::mem::MaybeUninit<&[u8]>], used: usize| -> &[&[u8]] {
        let used = used.min(batch.len());
        // SAFETY: the first `used` slots were written below; MaybeUninit<T> has T's layout.
        unsafe { std::slice::from_raw_parts(batch.as_ptr().cast::<&[u8]>(), used) }
    };
    for i in 0..n.max(0) as usize {
        if left == 0 {
            break;
        }
        // SAFETY: i < n, so iov.add(i) is inside the host's array.
        let v = unsafe { &*iov.add(i) };
        let take = v.iov_len.min(left);
        if take > 0 && !v.iov_base.is_null() {
            if used == BATCH {
                f(filled(&batch, used));
                used = 0;
            }
            if let Some(slot) = batch.get_mut(used) {
                // SAFETY: the kernel transferred `take` bytes through this buffer.
                slot.write(unsafe { std::slice::from_raw_parts(v.iov_base.cast::<u8>(), take) });
                used += 1;
            }
        }
        left -= take;
    }
    // rc == 0 is the end of the stream: one call with no parts.
    if used > 0 || rc == 0 {
        f(filled(&batch, used));
    }
}

/// After a gathered write of `rc` bytes to a watched fd.
///
/// # Safety
/// As [`iov_batches`].
unsafe fn observe_sent_iov(fd: c_int, iov: *const iovec, n: c_int, rc: ssize_t) {
    if rc > 0 && output::is_log_fd(fd) {
        // SAFETY: the kernel just read `rc` bytes through these iovecs.
        if let Some(last) = unsafe { last_byte_sent(iov, n, rc) } {
            output::host_wrote(fd, last);
        }
    }
    if rc > 0 && TRACKED.contains(fd) {
        // SAFETY: as the caller guarantees.
        unsafe { iov_batches(iov, n, rc, |parts| process::sent(fd, parts)) };
    }
}

/// After a scattered read of `rc` bytes (0: end of stream, unless no bytes were asked for)
/// from a tracked fd.
///
/// # Safety
/// As [`iov_batches`].
unsafe fn observe_received_iov(fd: c_int, iov: *const iovec, n: c_int, rc: ssize_t) {
    // SAFETY: the kernel just read this iovec array.
    if rc > 0 || unsafe { iov_capacity(iov, n) } > 0 {
        // SAFETY: as the caller guarantees.
        unsafe { iov_batches(iov, n, rc, |parts| process::received(fd, parts)) };
    }
}

/// The last of the first `rc` bytes of an iovec array, without allocating (this runs on the
/// host's every `writev` to stdout or stderr).
///
/// # Safety
/// As [`iov_batches`].
unsafe fn last_byte_sent(iov: *const iovec, n: c_int, rc: ssize_t) -> Option<u8> {
    let mut left = usize::try_from(rc).ok()?;
    if iov.is_null() {
        return None;
    }
    let mut last = None;
    for i in 0..n.max(0) as usize {
        if left == 0 {
            break;
        }
        // SAFETY: i < n, so iov.add(i) is inside the host's array.
        let v = unsafe { &*iov.add(i) };
        let take = v.iov_len.min(left);
        if take > 0 && !v.iov_base.is_null() {
            // SAFETY: the kernel transferred `take` bytes through this buffer.
            last = Some(unsafe { *v.iov_base.cast::<u8>().add(take - 1) });
        }
        left -= take;
    }
    last
}

// ---- the observers: what a hook does beyond the real call (see table.rs) ----
//
// Each gets the host's arguments it needs and `call`, the real function with all of the host's
// arguments unchanged; it returns what the real call returned, with its errno.

/// Before a `connect` or a name lookup (which comes before the process's first connect):
/// activates the library, before the call so that the process's first connection is followed
/// too, with the host's errno kept (a call that succeeds leaves it as it was); where
/// connections are followed, when the call began.
#[inline(always)]
fn activated_clock() -> Option<u64> {
    let entry_errno = errno();
    let began = if process::activate() {
        crate::ledger::starting()
    } else {
        None
    };
    set_errno(entry_errno);
    began
}

/// `connect`: a connection to the Runtime API is followed from here.
///
/// # Safety
/// `addr` and `len` are the host's arguments to `connect`.
#[inline(always)]
unsafe fn connected(
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
    call: impl FnOnce() -> c_int,
) -> c_int {
    crate::deepbind::poll(deep_table);
    let began = activated_clock();
    let rc = call();
    if process::activate() {
        let err = errno();
        // Where the call got as far as the protocol's connect, the kernel had read the address
        // (it checks the fd and the address's length first): the connect was made, goes on, or
        // was answered by the other side or the way there. (A successful call leaves errno as
        // it was: only `rc` tells.)
        let reached = rc == 0
            || matches!(
                err,
                libc::EINPROGRESS
                    | libc::EINTR
                    | libc::ECONNREFUSED
                    | libc::ETIMEDOUT
                    | libc::ENETUNREACH
                    | libc::EHOSTUNREACH
            );
        if let Some(began) = began
            && reached
            && !TRACKED.contains(fd)
        {
            // SAFETY: the kernel read the address (see `reached`), so it is readable for `len`
            // bytes.
            match unsafe { socket_addr(addr, len) } {
                Some(to) if !process::is_runtime_api(&to) => {
                    crate::ledger::connected(fd, Some(to), began, rc, err);
                }
                // A datagram socket's `AF_UNSPEC` "connect" dissolves its association; any
                // other address is not a connection followed here.
                _ if TRACKED.contains_other(fd) => crate::ledger::closing(fd),
                _ => {}
            }
        }
        if rc == 0 || err == libc::EINPROGRESS || err == libc::EINTR {
            // SAFETY: the kernel accepted the address, so it is readable for `len` bytes.
            process::connected(fd, unsafe { socket_addr(addr, len) });
        } else if TRACKED.contains(fd) && err != libc::EISCONN && err != libc::EALREADY {
            // EISCONN / EALREADY: the socket is (being) connected as before (a "still
            // connected?" check); anything else means it is not the connection we follow.
            process::connected(fd, None);
        }
        // Whatever the library did, the host sees connect's own errno (EINPROGRESS above all:
        // a non-blocking client that sees another errno gives the connection up).
        set_errno(err);
    }
    rc
}

/// `getsockopt`: a followed connection's `SO_ERROR`, read once a non-blocking connect is
/// over, is how it ended (made, or refused, timed out, …).
///
/// # Safety
/// `value` and `len` are the host's arguments to `getsockopt`.
#[inline(always)]
unsafe fn got_option(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *mut c_void,
    len: *mut socklen_t,
    call: impl FnOnce() -> c_int,
) -> c_int {
    let rc = call();
    if rc == 0
        && level == libc::SOL_SOCKET
        && name == libc::SO_ERROR
        && TRACKED.contains_other(fd)
        && !value.is_null()
        && !len.is_null()
        // SAFETY: the kernel just wrote the length here.
        && unsafe { *len } as usize >= std::mem::size_of::<c_int>()
    {
        let err = errno();
        // SAFETY: the kernel just wrote an int here (its length says so).
        let so_error = unsafe { std::ptr::read_unaligned(value.cast::<c_int>()) };
        crate::ledger::connect_ended(fd, so_error);
        set_errno(err);
    }
    rc
}

/// Addresses of a lookup's answer kept to name connections (the first ones: what a client
/// tries first).
const LOOKUP_ADDRS: usize = 8;

/// `getaddrinfo`: where connections are followed, the name looked up names the connections
/// to the addresses it gave, and the lookup's time is that name's. A numeric host is no
/// lookup.
///
/// # Safety
/// `node` and `res` are the host's arguments to `getaddrinfo`.
#[inline(always)]
unsafe fn looked_up(
    node: *const c_char,
    res: *mut *mut libc::addrinfo,
    call: impl FnOnce() -> c_int,
) -> c_int {
    let began = activated_clock();
    let rc = call();
    let Some(began) = began else { return rc };
    if rc != 0 || node.is_null() || res.is_null() {
        return rc;
    }
    let err = errno();
    let took = crate::probes::mono_ns().saturating_sub(began);
    // SAFETY: a NUL-terminated string getaddrinfo has just read.
    let name = unsafe { std::ffi::CStr::from_ptr(node) }.to_bytes();
    let name = std::str::from_utf8(name).unwrap_or_default();
    if !name.is_empty() && name.parse::<std::net::IpAddr>().is_err() {
        let mut addrs = [std::net::IpAddr::from([0u8; 4]); LOOKUP_ADDRS];
        let mut n = 0;
        // SAFETY: getaddrinfo succeeded: `*res` is its list, which the host frees later.
        let mut at = unsafe { *res };
        while !at.is_null() && n < LOOKUP_ADDRS {
            // SAFETY: a node of the list getaddrinfo made; its address is `ai_addrlen` bytes.
            let ai = unsafe { &*at };
            // SAFETY: as above.
            if let Some(a) = unsafe { socket_addr(ai.ai_addr, ai.ai_addrlen) }
                && !addrs.get(..n).unwrap_or_default().contains(&a.ip())
                && let Some(slot) = addrs.get_mut(n)
            {
                *slot = a.ip();
                n += 1;
            }
            at = ai.ai_next;
        }
        crate::ledger::looked_up(name, addrs.get(..n).unwrap_or_default(), took);
    }
    set_errno(err);
    rc
}

/// `close`.
#[inline(always)]
fn closed(fd: c_int, call: impl FnOnce() -> c_int) -> c_int {
    crate::deepbind::poll(deep_table);
    if output::is_log_fd(fd) {
        output::log_fd_changed(fd);
    }
    // Forget first: once closed, another thread may get the same number from socket().
    if TRACKED.contains(fd) {
        forget_streams_on(fd);
        process::closing(fd);
    }
    if TRACKED.contains_other(fd) {
        crate::ledger::closing(fd);
    }
    let rc = call();
    // Again once it is closed: a record that looked at it meanwhile saw it still open.
    if output::is_log_fd(fd) {
        output::log_fd_changed(fd);
    }
    rc
}

// Calls that move Runtime API bytes the hooks cannot see (in the kernel, from a file or pipe,
// or in batches): the connection can no longer be followed, and is dropped cleanly.

/// `sendfile` (to `fd`) and `sendmmsg` (`what` names the call in the debug line).
#[inline(always)]
fn moved_unseen<R: Default + PartialOrd>(
    fd: c_int,
    what: &'static str,
    call: impl FnOnce() -> R,
) -> R {
    let rc = call();
    if rc > R::default() && TRACKED.contains(fd) {
        process::unseen(fd, what);
    }
    rc
}

/// `splice`, between any two fds.
#[inline(always)]
fn spliced(fd_in: c_int, fd_out: c_int, call: impl FnOnce() -> ssize_t) -> ssize_t {
    let began = downstream_sending(fd_out);
    let rc = call();
    if rc > 0 {
        for fd in [fd_in, fd_out] {
            if TRACKED.contains(fd) {
                process::unseen(fd, "splice");
            }
        }
        // A downstream connection's bytes are counted, unseen or not.
        downstream_received(fd_in, rc, 0, Seen::unseen);
        downstream_sent(fd_out, began, rc, Seen::unseen);
    }
    rc
}

/// `sendfile` to `fd`: a downstream connection's bytes are counted, unseen or not.
#[inline(always)]
fn sent_from_file(fd: c_int, call: impl FnOnce() -> ssize_t) -> ssize_t {
    let began = downstream_sending(fd);
    let rc = moved_unseen(fd, "sendfile", call);
    if rc > 0 {
        downstream_sent(fd, began, rc, Seen::unseen);
    }
    rc
}

/// `recvmmsg` (a peek leaves the bytes in the stream).
#[inline(always)]
fn received_unseen(fd: c_int, flags: c_int, call: impl FnOnce() -> c_int) -> c_int {
    let rc = call();
    if rc > 0 && flags & libc::MSG_PEEK == 0 && TRACKED.contains(fd) {
        process::unseen(fd, "recvmmsg");
    }
    rc
}

// ---- stdio on the Runtime API socket ----
//
// A runtime may wrap its socket in stdio streams (`fdopen`): the bytes then move inside libc,
// where no hook sees them. A stream opened on a tracked fd is registered here, and the stdio
// functions below report the bytes the host hands to it or takes from it, as `write` and
// `read` would. Every other stream costs one relaxed load (no stream registered) or a short
// scan.
//
// A reading stream's buffer is also watched: its read pointer, end and base (glibc's `FILE`,
// whose head has kept this layout since 2.1) as the last followed call left them. Bytes taken
// between followed calls where no hook saw it (an inline `getc_unlocked`, `fscanf`, a byte
// pushed back with `ungetc`) move them: the bytes the host took then cannot be known for
// sure (a refill can leave the same pointers), so the connection is dropped, with one debug
// line, before the parser could fall out of step. Writes through a stream, and writes on a
// tracked fd, look first, so the parser never sees a request after a response it missed.

/// Each registered stream's read buffer as the last followed call left it, and the thread
/// that made that call (a stream another thread is reading is that thread's to look at).
struct Position {
    base: AtomicUsize,
    ptr: AtomicUsize,
    end: AtomicUsize,
    thread: AtomicU64,
}

impl Position {
    fn note(&self, (base, ptr, end): (usize, usize, usize)) {
        self.base.store(base, Ordering::Relaxed);
        self.ptr.store(ptr, Ordering::Relaxed);
        self.end.store(end, Ordering::Relaxed);
        self.thread
            .store(crate::custom::thread_key(), Ordering::Relaxed);
    }

    fn noted(&self) -> (usize, usize, usize) {
        (
            self.base.load(Ordering::Relaxed),
            self.ptr.load(Ordering::Relaxed),
            self.end.load(Ordering::Relaxed),
        )
    }
}

/// This module's part of the library's state in the process ([`crate::state::State`]): the
/// streams wrapping a tracked fd.
pub struct StreamState {
    /// The streams, and how many there are.
    streams: [AtomicPtr<libc::FILE>; 16],
    stream_count: AtomicUsize,
    /// Each one's read buffer as the last followed call left it.
    positions: [Position; 16],
}

impl StreamState {
    pub const fn new() -> StreamState {
        StreamState {
            streams: [const { AtomicPtr::new(std::ptr::null_mut()) }; 16],
            stream_count: AtomicUsize::new(0),
            positions: [const {
                Position {
                    base: AtomicUsize::new(0),
                    ptr: AtomicUsize::new(0),
                    end: AtomicUsize::new(0),
                    thread: AtomicU64::new(0),
                }
            }; 16],
        }
    }

    /// In a forked child: nothing inherited is followed there, so no stream is either.
    pub fn forked_child(&self) {
        let StreamState {
            streams,
            stream_count,
            positions: _,
        } = self;
        for s in streams {
            s.reset_to(std::ptr::null_mut(), Ordering::Relaxed);
        }
        stream_count.reset_to(0, Ordering::Relaxed);
    }
}

/// This module's state.
#[inline(always)]
fn streams() -> &'static StreamState {
    &crate::state::STATE.streams
}

/// The head of glibc's `struct _IO_FILE` (`<bits/types/struct_FILE.h>`).
#[repr(C)]
struct FileHead {
    flags: c_int,
    read_ptr: *mut u8,
    read_end: *mut u8,
    read_base: *mut u8,
    write_base: *mut u8,
    write_ptr: *mut u8,
}

/// A stream's read buffer now: (base, pointer, end).
fn buffer_of(stream: *mut libc::FILE) -> (usize, usize, usize) {
    // SAFETY: a registered stream is open (fclose unregisters it first); these fields are
    // plain pointers glibc keeps in the stream's head.
    let head = unsafe { &*stream.cast::<FileHead>() };
    (
        head.read_base as usize,
        head.read_ptr as usize,
        head.read_end as usize,
    )
}

/// glibc's stream flags: a write-only stream, and one in writing mode.
const IO_NO_READS: c_int = 0x0004;
const IO_CURRENTLY_PUTTING: c_int = 0x0800;

/// Whether `stream` is being read (not write-only, not in writing mode).
fn reads(stream: *mut libc::FILE) -> bool {
    // SAFETY: as in `buffer_of`.
    let flags = unsafe { (*stream.cast::<FileHead>()).flags };
    flags & (IO_NO_READS | IO_CURRENTLY_PUTTING) == 0
}

/// Whether any stream is followed (one relaxed load: a stream read's fast path).
#[inline(always)]
fn streams_followed() -> bool {
    streams().stream_count.load(Ordering::Relaxed) != 0
}

/// The registered slot of `stream`.
fn stream_slot(stream: *mut libc::FILE) -> Option<usize> {
    if streams().stream_count.load(Ordering::Relaxed) == 0 || stream.is_null() {
        return None;
    }
    streams()
        .streams
        .iter()
        .position(|s| s.load(Ordering::Relaxed) == stream)
}

/// The tracked fd under `stream`, if it is one of ours.
#[inline(always)]
fn stream_fd(stream: *mut libc::FILE) -> Option<c_int> {
    stream_slot(stream)?;
    let err = errno();
    // SAFETY: a registered stream is open (fclose unregisters it first).
    let fd = unsafe { libc::fileno(stream) };
    set_errno(err);
    TRACKED.contains(fd).then_some(fd)
}

/// Whether the host took bytes from registered stream `i` since a hook last looked; if it
/// did, the connection is dropped.
fn settle_stream(i: usize) {
    let (Some(slot), Some(pos)) = (streams().streams.get(i), streams().positions.get(i)) else {
        return;
    };
    let stream = slot.load(Ordering::Relaxed);
    if stream.is_null() {
        return;
    }
    if pos.thread.load(Ordering::Relaxed) != crate::custom::thread_key() {
        // Read last by another thread, which may be inside a call on it right now.
        return;
    }
    let now = buffer_of(stream);
    // Written through, not read (its read fields follow its write buffer), or a buffer set
    // afresh with nothing in it (`setvbuf`, a read straight into the caller's memory): no
    // byte was taken unseen.
    if !reads(stream) || (now.0 == now.1 && now.1 == now.2) {
        return pos.note(now);
    }
    if now == pos.noted() {
        return;
    }
    drop_stream(stream);
}

/// Stops following `stream` and its connection, with one debug line.
fn drop_stream(stream: *mut libc::FILE) {
    let err = errno();
    // SAFETY: as in `stream_fd`.
    let fd = unsafe { libc::fileno(stream) };
    set_errno(err);
    unregister_stream(stream);
    if TRACKED.contains(fd) {
        process::stream_unseen(fd);
    }
}

/// `fd` is being closed: streams on it are forgotten (one closed with `close(fileno(f))`
/// rather than `fclose` would otherwise keep its slot).
fn forget_streams_on(fd: c_int) {
    if streams().stream_count.load(Ordering::Relaxed) == 0 {
        return;
    }
    let err = errno();
    for slot in &streams().streams {
        let stream = slot.load(Ordering::Relaxed);
        // SAFETY: a registered stream is open (fclose unregisters it first).
        if !stream.is_null() && unsafe { libc::fileno(stream) } == fd {
            unregister_stream(stream);
        }
    }
    set_errno(err);
}

/// [`settle_stream`] for every registered stream.
#[inline(always)]
fn settle_streams() {
    if streams().stream_count.load(Ordering::Relaxed) == 0 {
        return;
    }
    for i in 0..streams().streams.len() {
        settle_stream(i);
    }
}

fn register_stream(stream: *mut libc::FILE) {
    let empty = streams().streams.iter().position(|s| {
        s.compare_exchange(
            std::ptr::null_mut(),
            stream,
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok()
    });
    match empty {
        Some(i) => {
            if let Some(pos) = streams().positions.get(i) {
                pos.note(buffer_of(stream));
            }
            streams().stream_count.fetch_add(1, Ordering::Relaxed);
        }
        None => {
            // No room to follow it: its bytes would go by unseen, so its connection is not
            // followed (one debug line).
            let err = errno();
            // SAFETY: the host's stream, just opened.
            let fd = unsafe { libc::fileno(stream) };
            set_errno(err);
            process::stream_unseen(fd);
        }
    }
}

fn unregister_stream(stream: *mut libc::FILE) {
    if streams().stream_count.load(Ordering::Relaxed) == 0 {
        return;
    }
    for s in &streams().streams {
        if s.compare_exchange(
            stream,
            std::ptr::null_mut(),
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok()
        {
            streams().stream_count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Before the host hands bytes to a stream of ours.
#[inline(always)]
fn stream_writing(stream: *mut libc::FILE) -> Option<c_int> {
    settle_streams();
    let fd = stream_fd(stream)?;
    before_send(fd);
    Some(fd)
}

/// The host handed `len` bytes at `data` to the stream on `fd`.
fn stream_wrote(fd: c_int, data: *const c_void, len: usize) {
    if len > 0 && !data.is_null() && TRACKED.contains(fd) {
        // SAFETY: the stdio call just consumed `len` bytes from `data`.
        process::sent(
            fd,
            &[unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }],
        );
    }
}

/// The host took `len` bytes, now at `data`, from the stream on `fd`.
fn stream_read(fd: c_int, data: *const c_void, len: usize) {
    if len > 0 && !data.is_null() && TRACKED.contains(fd) {
        // SAFETY: the stdio call just stored `len` bytes at `data`.
        process::received(
            fd,
            &[unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }],
        );
    }
}

/// A stdio read on `stream`: settles the streams, makes the call (`call` returns the bytes it
/// handed the host: where, how many), feeds the parser those bytes, and notes the buffer as
/// the call left it.
#[inline(always)]
fn stream_reading<R>(stream: *mut libc::FILE, call: impl FnOnce() -> (R, *const u8, usize)) -> R {
    let Some(i) = stream_slot(stream) else {
        return call().0;
    };
    settle_streams();
    let (result, data, len) = call();
    if streams().streams.get(i).map(|s| s.load(Ordering::Relaxed)) != Some(stream) {
        // Dropped while settling.
        return result;
    }
    if let Some(pos) = streams().positions.get(i) {
        pos.note(buffer_of(stream));
    }
    if let Some(fd) = stream_fd(stream) {
        stream_read(fd, data.cast(), len);
    }
    result
}

/// `fdopen`: a stream on a Runtime API socket is followed.
#[inline(always)]
fn opened_stream(fd: c_int, call: impl FnOnce() -> *mut libc::FILE) -> *mut libc::FILE {
    let stream = call();
    if !stream.is_null() && TRACKED.contains(fd) && process::is_active() {
        register_stream(stream);
    }
    stream
}

/// `fputs` and `fputs_unlocked`.
fn put_string(text: *const c_char, stream: *mut libc::FILE, real: real::fputs::F) -> c_int {
    let fd = stream_writing(stream);
    // SAFETY: forwarding the host's arguments unchanged.
    let rc = unsafe { real(text, stream) };
    if let Some(fd) = fd.filter(|_| rc >= 0) {
        // SAFETY: fputs just read the NUL-terminated string.
        let len = unsafe { libc::strlen(text) };
        stream_wrote(fd, text.cast(), len);
    }
    rc
}

/// `fwrite` and `fwrite_unlocked`.
fn put_items(
    data: *const c_void,
    size: size_t,
    n: size_t,
    stream: *mut libc::FILE,
    real: real::fwrite::F,
) -> size_t {
    let fd = stream_writing(stream);
    // SAFETY: forwarding the host's arguments unchanged.
    let items = unsafe { real(data, size, n, stream) };
    if let Some(fd) = fd {
        stream_wrote(fd, data, items.saturating_mul(size));
    }
    items
}

/// `fputc` and `putc` (and `_IO_putc`, their old name).
fn put_byte(c: c_int, stream: *mut libc::FILE, real: real::fputc::F) -> c_int {
    let fd = stream_writing(stream);
    // SAFETY: forwarding the host's arguments unchanged.
    let rc = unsafe { real(c, stream) };
    if let Some(fd) = fd.filter(|_| rc != libc::EOF) {
        let byte = rc as u8;
        stream_wrote(fd, (&byte as *const u8).cast(), 1);
    }
    rc
}

/// An `fgets`-like read (`call`) into `buf` on `stream`, followed.
#[inline(always)]
fn read_line(
    stream: *mut libc::FILE,
    buf: *mut c_char,
    call: impl FnOnce() -> *mut c_char,
) -> *mut c_char {
    stream_reading(stream, || {
        let got = call();
        if got.is_null() {
            return (got, std::ptr::null(), 0);
        }
        // SAFETY: the call stored a NUL-terminated line in `buf`. (A line with a NUL byte in
        // it is cut short here; the Runtime API's heads have none.)
        let len = unsafe { libc::strlen(buf) };
        (got, buf.cast(), len)
    })
}

/// An `fread`-like read (`call`) of items of `size` bytes into `data` on `stream`, followed.
#[inline(always)]
fn read_items(
    stream: *mut libc::FILE,
    data: *mut c_void,
    size: size_t,
    call: impl FnOnce() -> size_t,
) -> size_t {
    stream_reading(stream, || {
        let items = call();
        (items, data.cast_const().cast(), items.saturating_mul(size))
    })
}

/// `fgetc` and `getc` (and `_IO_getc`).
fn get_byte(stream: *mut libc::FILE, real: real::fgetc::F) -> c_int {
    let mut byte = 0u8;
    stream_reading(stream, || {
        // SAFETY: forwarding the host's argument unchanged.
        let c = unsafe { real(stream) };
        if c == libc::EOF {
            return (c, std::ptr::null(), 0);
        }
        byte = c as u8;
        (c, &byte as *const u8, 1)
    })
}

/// `getdelim` and `__getdelim` (what glibc's headers make of `getline` when optimising), and
/// `getline` (`getdelim` up to a newline).
fn get_delimited(
    line: *mut *mut c_char,
    cap: *mut size_t,
    delim: c_int,
    stream: *mut libc::FILE,
    real: real::getdelim::F,
) -> ssize_t {
    stream_reading(stream, || {
        // SAFETY: forwarding the host's arguments unchanged.
        let got = unsafe { real(line, cap, delim, stream) };
        if got <= 0 || line.is_null() {
            return (got, std::ptr::null(), 0);
        }
        // SAFETY: getdelim stored `got` bytes at *line.
        (got, unsafe { *line }.cast_const().cast(), got as usize)
    })
}

// ---- stdio output to stdout and stderr ----
//
// C stdio writes its buffer inside libc, where no `write` hook sees it: a partial line flushed
// there would leave the log line open behind the library's back. What a flush is about to
// write is in the stream's buffer (`write_base` to `write_ptr`), so the last byte of it is
// noted where the host flushes: `fflush`, `fclose`, and the process's end (the library's
// destructor runs before libc's last flush). A buffer that fills and is written out inside
// `printf` is not seen.

unsafe extern "C" {
    // libc's own stdout and stderr objects: static, valid for the whole process. (Not the
    // `stdout` variable: a host may point it at a stream of its own and close that.)
    static mut _IO_2_1_stdout_: u8;
    static mut _IO_2_1_stderr_: u8;
}

/// The last byte `stream` holds to write, if it holds any.
fn pending_last_byte(stream: *mut libc::FILE) -> Option<u8> {
    if stream.is_null() {
        return None;
    }
    // SAFETY: the host's open stream (it passes it to fflush or fclose), or libc's static
    // stdout or stderr object; these fields are plain pointers glibc keeps in the stream's
    // head (a closed static stream has none pending).
    let head = unsafe { &*stream.cast::<FileHead>() };
    if head.flags & IO_CURRENTLY_PUTTING == 0 || head.write_ptr <= head.write_base {
        return None;
    }
    // SAFETY: write_base < write_ptr inside the stream's buffer: the byte before write_ptr is
    // the last the host put there.
    Some(unsafe { *head.write_ptr.sub(1) })
}

/// libc's stdout and stderr streams (closed ones hold nothing to write).
fn standard_streams() -> [*mut libc::FILE; 2] {
    [
        (&raw mut _IO_2_1_stdout_).cast(),
        (&raw mut _IO_2_1_stderr_).cast(),
    ]
}

/// The fd of `stream` when it is 1 or 2.
fn log_fd_of(stream: *mut libc::FILE) -> Option<c_int> {
    if stream.is_null() {
        return None;
    }
    let err = errno();
    // SAFETY: the host's open stream, which it passes to fclose; fileno only reads it.
    let fd = unsafe { libc::fileno(stream) };
    set_errno(err);
    output::is_log_fd(fd).then_some(fd)
}

/// The fd `stream` writes to when it is stdout or stderr (1 or 2), and the last byte it is
/// about to write there.
fn log_flush_of(stream: *mut libc::FILE) -> Option<(c_int, u8)> {
    let last = pending_last_byte(stream)?;
    let err = errno();
    // SAFETY: as in `pending_last_byte`; fileno only reads the stream.
    let fd = unsafe { libc::fileno(stream) };
    set_errno(err);
    output::is_log_fd(fd).then_some((fd, last))
}

/// The process is ending: what stdio still holds for stdout and stderr is written after
/// this (libc's last flush), and ends the log line as its last byte says.
pub fn note_final_flush() {
    for stream in standard_streams() {
        if let Some((fd, last)) = log_flush_of(stream) {
            output::host_wrote(fd, last);
        }
    }
}

/// `fflush`: what it writes to stdout or stderr ends the log line as its last byte says.
#[inline(always)]
fn flushed(stream: *mut libc::FILE, call: impl FnOnce() -> c_int) -> c_int {
    // `fflush(NULL)` flushes every stream; stdout and stderr are the ones that matter here.
    let flushing = if stream.is_null() {
        standard_streams().map(log_flush_of)
    } else {
        [log_flush_of(stream), None]
    };
    let rc = call();
    if rc == 0 {
        let err = errno();
        for (fd, last) in flushing.into_iter().flatten() {
            output::host_wrote(fd, last);
        }
        set_errno(err);
    }
    rc
}

/// `fclose` closes its fd inside libc, where the `close` hook never sees it: a socket the
/// runtime wrapped with `fdopen` would stay tracked, and the next file to get its number would
/// be parsed as HTTP.
#[inline(always)]
fn closed_stream(stream: *mut libc::FILE, call: impl FnOnce() -> c_int) -> c_int {
    // Its last flush, when it is stdout or stderr.
    if let Some((fd, last)) = log_flush_of(stream) {
        let err = errno();
        output::host_wrote(fd, last);
        set_errno(err);
    }
    if process::is_active() && !stream.is_null() {
        let err = errno();
        // SAFETY: the host passes its open stream, as fclose requires; fileno only reads it.
        let fd = unsafe { libc::fileno(stream) };
        set_errno(err);
        unregister_stream(stream);
        if TRACKED.contains(fd) {
            process::closing(fd);
        }
        if TRACKED.contains_other(fd) {
            crate::ledger::closing(fd);
        }
    }
    let log_fd = log_fd_of(stream);
    let rc = call();
    // Its fd is closed now: whatever gets the number next is looked at afresh.
    if let Some(fd) = log_fd {
        output::log_fd_changed(fd);
    }
    rc
}

/// `close_range`.
#[inline(always)]
fn closed_range(first: c_uint, last: c_uint, flags: c_int, call: impl FnOnce() -> c_int) -> c_int {
    log_fds_closed(first, last, flags);
    if process::is_active() && (flags as c_uint & libc::CLOSE_RANGE_CLOEXEC) == 0 {
        process::closing_range(first, last);
        crate::ledger::closing_range(first, last);
    }
    let rc = call();
    log_fds_closed(first, last, flags);
    rc
}

/// fds `first` to `last` are (being) closed unless `flags` only marks them close-on-exec: stdout
/// and stderr among them are looked at again.
#[inline(always)]
fn log_fds_closed(first: c_uint, last: c_uint, flags: c_int) {
    if first <= 2 && (flags as c_uint & libc::CLOSE_RANGE_CLOEXEC) == 0 {
        for fd in [1, 2].into_iter().filter(|fd| (first..=last).contains(fd)) {
            output::log_fd_changed(fd as c_int);
        }
    }
}

/// `dup`: a copy of a Runtime API socket is followed too.
#[inline(always)]
fn duplicated(fd: c_int, call: impl FnOnce() -> c_int) -> c_int {
    let rc = call();
    if rc >= 0 && TRACKED.contains(fd) {
        process::duplicated(fd, rc);
    }
    rc
}

/// `dup2` and `dup3`: `new` is now a copy of `old` (and no longer what it was).
#[inline(always)]
fn duplicated_to(old: c_int, new: c_int, call: impl FnOnce() -> c_int) -> c_int {
    let rc = call();
    if rc >= 0 && output::is_log_fd(new) {
        output::log_fd_changed(new);
    }
    if rc >= 0 && (TRACKED.contains(old) || TRACKED.contains(new)) {
        process::duplicated(old, new);
    }
    // What `new` was is closed (a copy of a followed connection is not followed).
    if rc >= 0 && old != new && TRACKED.contains_other(new) {
        crate::ledger::closing(new);
    }
    rc
}

/// `fork`.
#[inline(always)]
fn forked(call: impl FnOnce() -> pid_t) -> pid_t {
    // Taking and releasing the engine lock may touch errno (futex waits): the host sees the
    // errno it had before a successful fork, or fork's own after a failed one.
    let entry_errno = errno();
    // The child finds every real function already found (no slot written in it).
    real::settle_all();
    let canary = process::Canary::new();
    let guard = process::before_fork(&canary);
    let pid = call();
    let err = if pid < 0 { errno() } else { entry_errno };
    process::after_fork(guard, pid);
    if pid > 0 {
        process::parent_forked();
    }
    // Written only when it changed: right after fork every page is copy-on-write, errno's
    // too, in the child and in the parent.
    if errno() != err {
        set_errno(err);
    }
    pid
}

/// `exit`: the records of open invokes are written first.
fn process_exit(real: real::exit::F, status: c_int) -> ! {
    ending::exiting(status);
    // SAFETY: the host's argument, unchanged; exit does not return.
    unsafe { real(status) }
}

/// `_exit` and `_Exit`.
fn process_exit_now(real: real::_exit::F, status: c_int) -> ! {
    if process::is_active() {
        ending::exiting_now(status);
    }
    // SAFETY: the host's argument, unchanged; _exit does not return.
    unsafe { real(status) }
}

// ---- send and receive ----

/// `send`, `sendto` and `write`: the record that waits goes out first, then the bytes the host
/// wrote are seen.
#[inline(always)]
fn sent(fd: c_int, buf: *const c_void, call: impl FnOnce() -> ssize_t) -> ssize_t {
    before_send(fd);
    let began = downstream_sending(fd);
    let rc = call();
    observe_sent(fd, buf, rc);
    // SAFETY: the kernel just read `rc` bytes at `buf`.
    downstream_sent(fd, began, rc, || Seen::of(buf, rc));
    rc
}

/// Before a send on `fd`, if it is a followed downstream connection: when it began. Its
/// bytes' wait for an answer is counted from there, so that it is never less than the other
/// side took (a thread descheduled after the call would make a later reading short).
#[inline(always)]
fn downstream_sending(fd: c_int) -> Option<u64> {
    TRACKED.contains_other(fd).then(crate::probes::mono_ns)
}

/// After a send begun at `began` (see [`downstream_sending`]) of `rc` bytes (or a failure) on
/// `fd`, those `seen` (read only for a followed connection). The host's errno is left as the
/// call set it.
#[inline(always)]
fn downstream_sent(fd: c_int, began: Option<u64>, rc: ssize_t, seen: impl FnOnce() -> Seen) {
    if let Some(began) = began {
        let errno = errno();
        crate::ledger::sent(fd, rc, errno, began, &seen());
    }
}

/// The bytes of one send or receive on a followed connection, where the kernel just moved
/// them, read within the call only (what tells a TLS handshake, an HTTP/2 frame or an interim
/// answer): a buffer, or the host's iovecs (as many as it passed), or nothing (not seen).
enum Seen {
    Unseen,
    One(*const u8, usize),
    Iov(*const iovec, usize, usize),
}

impl Seen {
    fn unseen() -> Seen {
        Seen::Unseen
    }

    /// The `rc` bytes the kernel just moved at `buf`.
    fn of(buf: *const c_void, rc: ssize_t) -> Seen {
        match usize::try_from(rc) {
            Ok(len) if len > 0 && !buf.is_null() => Seen::One(buf.cast::<u8>(), len),
            _ => Seen::Unseen,
        }
    }

    /// The `rc` bytes the kernel just moved through `n` iovecs at `iov`.
    fn of_iov(iov: *const iovec, n: c_int, rc: ssize_t) -> Seen {
        match (usize::try_from(rc), usize::try_from(n)) {
            (Ok(len), Ok(n)) if len > 0 && !iov.is_null() => Seen::Iov(iov, n, len),
            _ => Seen::Unseen,
        }
    }
}

// SAFETY (of every read below): a `Seen` is made by a hook right after the kernel moved the
// bytes it names through the host's buffers (and iovec array), and read before the hook
// returns: the host cannot have freed or reused them meanwhile. The bytes are only read.
impl lambda_meter_core::downstream::Pieces for Seen {
    fn each(&self, f: &mut dyn FnMut(&[u8])) {
        match *self {
            Seen::Unseen => {}
            // SAFETY: see the impl.
            Seen::One(at, len) => f(unsafe { std::slice::from_raw_parts(at, len) }),
            Seen::Iov(iov, n, mut left) => {
                for i in 0..n {
                    if left == 0 {
                        break;
                    }
                    // SAFETY: `i` < `n`, the host's iovec count; see the impl.
                    let v = unsafe { &*iov.add(i) };
                    let len = v.iov_len.min(left);
                    if len > 0 && !v.iov_base.is_null() {
                        // SAFETY: the kernel moved `len` bytes through this buffer; see the impl.
                        f(unsafe { std::slice::from_raw_parts(v.iov_base.cast::<u8>(), len) });
                    }
                    left -= len;
                }
            }
        }
    }

    fn first(&self) -> &[u8] {
        match *self {
            Seen::Unseen => &[],
            // SAFETY: see the impl.
            Seen::One(at, len) => unsafe { std::slice::from_raw_parts(at, len) },
            Seen::Iov(iov, n, left) => {
                for i in 0..n {
                    // SAFETY: `i` < `n`, the host's iovec count; see the impl.
                    let v = unsafe { &*iov.add(i) };
                    let len = v.iov_len.min(left);
                    if len > 0 && !v.iov_base.is_null() {
                        // SAFETY: the kernel moved `len` bytes through this buffer; see the impl.
                        return unsafe { std::slice::from_raw_parts(v.iov_base.cast::<u8>(), len) };
                    }
                }
                &[]
            }
        }
    }

    fn total(&self) -> u64 {
        match *self {
            Seen::Unseen => 0,
            Seen::One(_, len) | Seen::Iov(_, _, len) => len as u64,
        }
    }
}

/// After a receive on `fd` with `flags` that returned `rc`, if it is a followed downstream
/// connection: bytes of the stream (not a peek), its end, or a failure; those `seen` (read
/// only for a followed connection).
#[inline(always)]
fn downstream_received(fd: c_int, rc: ssize_t, flags: c_int, seen: impl FnOnce() -> Seen) {
    if flags & NOT_IN_STREAM == 0 && TRACKED.contains_other(fd) {
        let errno = errno();
        crate::ledger::received(fd, rc, errno, &seen());
    }
}

/// `sendmsg`.
///
/// # Safety
/// `msg` is the host's argument to `sendmsg`.
#[inline(always)]
unsafe fn sent_msg(fd: c_int, msg: *const msghdr, call: impl FnOnce() -> ssize_t) -> ssize_t {
    before_send(fd);
    let began = downstream_sending(fd);
    let rc = call();
    if rc > 0 && !msg.is_null() {
        // SAFETY: the kernel just read `rc` bytes through this msghdr's iovecs.
        let (iov, n) = unsafe { ((*msg).msg_iov, (*msg).msg_iovlen as c_int) };
        // SAFETY: as above.
        unsafe { observe_sent_iov(fd, iov, n, rc) };
    }
    let msg_iov = || {
        if msg.is_null() {
            return Seen::unseen();
        }
        // SAFETY: the host's msghdr, just used by the kernel.
        let (iov, n) = unsafe { ((*msg).msg_iov, (*msg).msg_iovlen as c_int) };
        Seen::of_iov(iov, n, rc)
    };
    downstream_sent(fd, began, rc, msg_iov);
    rc
}

/// `writev`.
///
/// # Safety
/// `iov` and `n` are the host's arguments to `writev`.
#[inline(always)]
unsafe fn sent_iov(
    fd: c_int,
    iov: *const iovec,
    n: c_int,
    call: impl FnOnce() -> ssize_t,
) -> ssize_t {
    before_send(fd);
    let began = downstream_sending(fd);
    let rc = call();
    // SAFETY: the kernel just read `rc` bytes through these iovecs.
    unsafe { observe_sent_iov(fd, iov, n, rc) };
    downstream_sent(fd, began, rc, || Seen::of_iov(iov, n, rc));
    rc
}

/// Receives into one buffer (`recv`, `recvfrom`, `read` and their `_chk` forms), with the
/// receive's `flags` (0 for `read`).
#[inline(always)]
fn received(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    call: impl FnOnce() -> ssize_t,
) -> ssize_t {
    let rc = call();
    observe_received(fd, buf, len, rc, flags);
    downstream_received(fd, rc, flags, || Seen::of(buf, rc));
    rc
}

/// `recvmsg`.
///
/// # Safety
/// `msg` is the host's argument to `recvmsg`.
#[inline(always)]
unsafe fn received_msg(
    fd: c_int,
    msg: *mut msghdr,
    flags: c_int,
    call: impl FnOnce() -> ssize_t,
) -> ssize_t {
    let rc = call();
    if !unseen_bytes(fd, rc, flags)
        && rc >= 0
        && flags & NOT_IN_STREAM == 0
        && TRACKED.contains(fd)
        && !msg.is_null()
    {
        // SAFETY: the kernel just used this msghdr and its iovecs.
        let (iov, n) = unsafe { ((*msg).msg_iov, (*msg).msg_iovlen as c_int) };
        // SAFETY: the kernel just wrote `rc` bytes through these iovecs.
        unsafe { observe_received_iov(fd, iov, n, rc) };
    }
    downstream_received(fd, rc, flags, || {
        if msg.is_null() {
            return Seen::unseen();
        }
        // SAFETY: the host's msghdr, just used by the kernel.
        let (iov, n) = unsafe { ((*msg).msg_iov, (*msg).msg_iovlen as c_int) };
        Seen::of_iov(iov, n, rc)
    });
    rc
}

/// `readv`.
///
/// # Safety
/// `iov` and `n` are the host's arguments to `readv`.
#[inline(always)]
unsafe fn received_iov(
    fd: c_int,
    iov: *const iovec,
    n: c_int,
    call: impl FnOnce() -> ssize_t,
) -> ssize_t {
    let rc = call();
    if rc >= 0 && TRACKED.contains(fd) {
        // SAFETY: the kernel just wrote `rc` bytes through these iovecs.
        unsafe { observe_received_iov(fd, iov, n, rc) };
    }
    downstream_received(fd, rc, 0, || Seen::of_iov(iov, n, rc));
    rc
}

// ---- the shims, from the table ----
//
// A `send` or `receive` shim has a fast path for the function's own fds: one bitmap test and a
// tail call of the real function (no frame, nothing else inlined). Everything the library does
// for a Runtime API socket (and, for writes, for stdout and stderr) is in a `#[cold]` function
// out of line. Every other shim calls its observer.

/// Whether a write to `fd` needs the library: a Runtime API socket, a followed downstream
/// connection, or stdout/stderr (whose last byte is noted, see [`observe_sent`]). fd 0 is let
/// in too: one compare instead of two.
#[inline(always)]
fn watched_output(fd: c_int) -> bool {
    (fd as u32) <= 2 || TRACKED.watched(fd)
}

/// A send hook's fast test: [`watched_output`], or a deep-bound load pending, or an fd at or
/// above [`MAX_TRACKED_FD`] (out of line, where the precise test lets it by). One compare
/// finds all of those: `fd - 3` wraps below 3, and the pending flag is above every tracked fd.
#[inline(always)]
fn output_may_be_watched(fd: c_int) -> bool {
    const LAST: u32 = MAX_TRACKED_FD as u32 - 1 - 3;
    const _: () = assert!(MAX_TRACKED_FD == 1 << 16);
    let beyond = (fd as u32).wrapping_sub(3) | crate::deepbind::pending_word();
    // Within LAST the flag is 0 and `beyond + 3` is the fd: its word's index, which the
    // compiler sees is in range.
    beyond > LAST || TRACKED.watched_in_word(FdBits::word_of(beyond + 3), fd as u32)
}

/// A receive hook's fast test: [`watched_input`], or a deep-bound load pending.
#[inline(always)]
fn input_may_be_watched(fd: c_int) -> bool {
    crate::deepbind::is_pending() || watched_input(fd)
}

/// A receive hook's test: only Runtime API sockets (tracked before the bytes can arrive:
/// `connect` or `dup` marks the fd first) and followed downstream connections (marked at
/// their `connect`).
#[inline(always)]
fn watched_input(fd: c_int) -> bool {
    TRACKED.watched(fd)
}

/// Every row of the table (see table.rs for its form).
macro_rules! shims {
    ($([$($row:tt)*])*) => {
        $(shim! { $($row)* })*
    };
}

/// One row's shim.
macro_rules! shim {
    (c $($row:tt)*) => {};
    (rust $name:ident $args:tt $ret:tt send bytes $($row:tt)*) => {
        shim! { @fast output_may_be_watched watched_output $name $args $ret $($row)* }
    };
    (rust $name:ident $args:tt $ret:tt receive bytes $($row:tt)*) => {
        shim! { @fast input_may_be_watched watched_input $name $args $ret $($row)* }
    };
    (rust $name:ident $args:tt $ret:tt send $($row:tt)*) => {
        compile_error!(concat!(stringify!($name), ": a send row moves bytes"));
    };
    (rust $name:ident $args:tt $ret:tt receive $($row:tt)*) => {
        compile_error!(concat!(stringify!($name), ": a receive row moves bytes"));
    };
    // The fast path: the real call, unless `$fast` holds for the fd (the first argument);
    // out of line, `$watch` decides.
    (@fast $fast:ident $watch:ident $name:ident [$fd:ident: $fd_ty:ty $(, $arg:ident: $ty:ty)* $(,)?]
        [$ret:ty] $deep:tt $slot:tt $needed:tt $binder:tt [$observer:expr]) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($fd: $fd_ty $(, $arg: $ty)*) -> $ret {
            // A deep-bound load to bind, or a watched fd: out of line, with the host's
            // arguments as they came. Both ways out are tail calls, so the fast path keeps
            // nothing on the stack.
            // `extern "C"` (it cannot unwind), so that calling it is a plain jump.
            #[cold]
            #[inline(never)]
            #[allow(unused_unsafe)]
            unsafe extern "C" fn observed($fd: $fd_ty $(, $arg: $ty)*) -> $ret {
                crate::deepbind::poll(deep_table);
                if !$watch($fd) {
                    // SAFETY: forwarding the host's arguments unchanged.
                    return unsafe { (real::$name::get())($fd $(, $arg)*) };
                }
                bind!($name $slot $binder [$fd $(, $arg)*]);
                // SAFETY: the observer gets the host's arguments as the hook got them.
                unsafe { $observer }
            }
            if $fast($fd) {
                // SAFETY: the host's arguments, unchanged.
                return unsafe { observed($fd $(, $arg)*) };
            }
            // SAFETY: forwarding the host's arguments unchanged.
            unsafe { (real::$name::get())($fd $(, $arg)*) }
        }
    };
    // A stream read given another row's real function: the observer, always.
    (rust $name:ident $args:tt $ret:tt stream_in $bytes:tt $deep:tt [via $other:tt] $($row:tt)*) => {
        shim! { rust $name $args $ret stdio $bytes $deep [via $other] $($row)* }
    };
    // A stream read: the real call, and the observer (out of line) only while some stream on
    // a Runtime API socket is followed.
    (rust $name:ident [$($arg:ident: $ty:ty),* $(,)?] [$ret:ty] stream_in $bytes:tt $deep:tt
        $slot:tt $needed:tt $binder:tt [$observer:expr]) => {
        #[unsafe(no_mangle)]
        #[allow(non_snake_case, unused_unsafe)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            #[cold]
            #[inline(never)]
            #[allow(non_snake_case, unused_unsafe)]
            unsafe extern "C" fn observed($($arg: $ty),*) -> $ret {
                bind!($name $slot $binder [$($arg),*]);
                // SAFETY: the observer gets the host's arguments as the hook got them.
                unsafe { $observer }
            }
            if streams_followed() {
                // SAFETY: the host's arguments, unchanged.
                return unsafe { observed($($arg),*) };
            }
            // SAFETY: forwarding the host's arguments unchanged.
            unsafe { (real::$name::get())($($arg),*) }
        }
    };
    // Every other family: the observer.
    (rust $name:ident [$($arg:ident: $ty:ty),* $(,)?] [$ret:ty] $family:ident $bytes:tt $deep:tt
        $slot:tt $needed:tt $binder:tt [$observer:expr]) => {
        #[unsafe(no_mangle)]
        #[allow(non_snake_case, unused_unsafe)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            bind!($name $slot $binder [$($arg),*]);
            // SAFETY: the observer gets the host's arguments as the hook got them.
            unsafe { $observer }
        }
    };
}

/// Binds a row's `|call|` (the real function, the host's arguments unchanged) or `|real: F|`
/// (the real function itself: its own, or the one named by `via`).
macro_rules! bind {
    ($name:ident [via ($other:ident)] [$binder:ident F] $args:tt) => {
        let $binder: real::$other::F = real::$other::get();
    };
    ($name:ident [via $other:tt] [$binder:ident] $args:tt) => {
        compile_error!(concat!(stringify!($name), ": a `via` row is given `|real: F|`"));
    };
    ($name:ident $slot:tt [$binder:ident F] $args:tt) => {
        let $binder: real::$name::F = real::$name::get();
    };
    ($name:ident $slot:tt [$binder:ident] [$($arg:ident),*]) => {
        // SAFETY: the host's arguments, unchanged, to the function the host called.
        let $binder = || unsafe { (real::$name::get())($($arg),*) };
    };
}

crate::table::hook_table!(shims);

/// The rows of the table (`table.rs`) marked `deep`: the hooks an object loaded with
/// `RTLD_DEEPBIND` is bound to — every call that moves Runtime API bytes or changes which fd
/// they travel on, and the signal dispositions — each with libc's own function, the only value
/// of a GOT entry that is replaced.
macro_rules! deep_rows {
    (@count [$lang:ident $name:ident $args:tt $ret:tt $family:ident $bytes:tt deep $($row:tt)*]) => {
        1
    };
    (@count $row:tt) => {
        0
    };
    (@c [c $name:ident [$($args:tt)*] [$ret:ty] $family:ident $bytes:tt deep]) => {
        pub mod $name {
            #[allow(unused_imports)]
            use libc::{c_char, c_int, c_long, c_void};
            unsafe extern "C" {
                /// The hook.
                #[link_name = stringify!($name)]
                pub fn hook($($args)*) -> $ret;
                /// The real function, null until the C side resolved it.
                #[link_name = concat!("lm_real_", stringify!($name))]
                pub static REAL: std::sync::atomic::AtomicPtr<c_void>;
            }
        }
    };
    (@c $($row:tt)*) => {};
    // The entries of the deep rows, one row at a time into `[$done…]`.
    (@list [$($done:tt)*]) => {
        [$($done)*]
    };
    (@list [$($done:tt)*] [rust $name:ident $args:tt $ret:tt $family:ident $bytes:tt deep $($row:tt)*] $($rest:tt)*) => {
        deep_rows! { @list [$($done)* (
            stringify!($name).as_bytes(),
            $name as *const () as usize,
            real::$name::resolved() as *const () as usize,
        ),] $($rest)* }
    };
    (@list [$($done:tt)*] [c $name:ident $args:tt $ret:tt $family:ident $bytes:tt deep] $($rest:tt)*) => {
        deep_rows! { @list [$($done)* (
            stringify!($name).as_bytes(),
            c_hooks::$name::hook as *const () as usize,
            // SAFETY: a pointer the C side stores atomically (no system call, no lock).
            unsafe { c_hooks::$name::REAL.load(Ordering::Acquire) } as usize,
        ),] $($rest)* }
    };
    (@list [$($done:tt)*] $row:tt $($rest:tt)*) => {
        deep_rows! { @list [$($done)*] $($rest)* }
    };
    // The table.
    ($($row:tt)*) => {
        /// The C hooks (`c-abi/interpose.c`), whose addresses go into the GOTs too, and the
        /// real functions the C side resolved (`lm_real_NAME`).
        mod c_hooks {
            $(deep_rows! { @c $row })*
        }

        /// How many rows are `deep`.
        const DEEP: usize = 0 $(+ deep_rows! { @count $row })*;

        /// The entries of the `deep` rows, handed to `f` (see [`crate::deepbind::Table`]).
        fn deep_table(f: &mut dyn FnMut(&[crate::deepbind::Entry])) {
            let table: [crate::deepbind::Entry; DEEP] = deep_rows! { @list [] $($row)* };
            f(&table);
        }
    };
}

crate::table::hook_table!(deep_rows);

/// Called by the `dlsym` hook when a deep-bound load is pending (`c-abi/interpose.c`).
#[unsafe(no_mangle)]
pub extern "C" fn lm_deep_poll() {
    crate::deepbind::poll(deep_table);
}

// ---- the constructor, and the callbacks the C interposers use ----

/// What `c-abi/interpose.c` may ask of the Rust side. Passed as a table of function pointers
/// rather than by symbol name, so none of these is exported from the library.
#[repr(C)]
struct Callbacks {
    fd_is_tracked: extern "C" fn(c_int) -> c_int,
    is_active: extern "C" fn() -> c_int,
    fd_closing: extern "C" fn(c_int),
    fds_closing: extern "C" fn(c_uint, c_uint),
    fd_duplicated: extern "C" fn(c_int, c_int),
    stream_writing: extern "C" fn(*mut libc::FILE) -> c_int,
    stream_wrote: extern "C" fn(c_int, *const c_void, size_t),
    in_this_library: extern "C" fn(*mut c_void) -> c_int,
    /// After a raw `rt_sigaction(sig, act, old)` succeeded: `changed` when `act` was given,
    /// `old` the host's kernel-layout struct or null.
    raw_sigaction_done: unsafe extern "C" fn(c_int, c_int, *mut c_void),
    /// After a raw `close`, `close_range`, `dup2` or `dup3` that changed what fd 1 or 2 is.
    log_fd_changed: extern "C" fn(c_int),
    /// The real function `name` (`dlsym(RTLD_NEXT, name)` less this library's own), or null.
    lookup: extern "C" fn(*const libc::c_char) -> *mut c_void,
}

unsafe extern "C" {
    /// Keeps the callback table (the C interposers' real functions are resolved by
    /// `real::resolve_all`).
    fn lm_c_install(callbacks: *const Callbacks);
}

static CALLBACKS: Callbacks = Callbacks {
    fd_is_tracked,
    is_active,
    fd_closing,
    fds_closing,
    fd_duplicated,
    stream_writing: stream_writing_cb,
    stream_wrote: stream_wrote_cb,
    in_this_library: real::lm_in_this_library,
    raw_sigaction_done: signals::raw_sigaction_done,
    log_fd_changed: log_fd_changed_cb,
    lookup: real::lm_lookup,
};

extern "C" fn log_fd_changed_cb(fd: c_int) {
    output::log_fd_changed(fd);
}

extern "C" fn stream_writing_cb(stream: *mut libc::FILE) -> c_int {
    stream_writing(stream).unwrap_or(-1)
}

extern "C" fn stream_wrote_cb(fd: c_int, data: *const c_void, len: size_t) {
    stream_wrote(fd, data, len);
}

/// The library constructor, run by the dynamic loader before the runtime's `main`.
#[used]
#[unsafe(link_section = ".init_array")]
static CONSTRUCTOR: extern "C" fn() = constructor;

/// The library destructor, run at a normal exit: a record still waiting for the runtime's
/// next `/next` is written instead of lost.
#[used]
#[unsafe(link_section = ".fini_array")]
static DESTRUCTOR: extern "C" fn() = destructor;

extern "C" fn destructor() {
    let _ = std::panic::catch_unwind(process::at_exit);
    // A process that is no runtime hands the calls it made to its environment's runtime.
    let _ = std::panic::catch_unwind(process::hand_over_calls);
    // A normal exit in the middle of an invoke: it ends with the process.
    if process::is_active() {
        ending::at_exit();
    }
    // Last: libc's final flush of stdout and stderr comes after every record of ours.
    note_final_flush();
}

extern "C" fn constructor() {
    // SAFETY: CALLBACKS is a static that outlives every call the C side makes through it.
    unsafe { lm_c_install(&CALLBACKS) };
    // Every hook needs its real function, active or not. Nothing else happens here: no system
    // call, no allocation (see process::activate).
    process::loaded(real::resolve_all());
}

/// Whether the C hooks must report a close or a copy of `fd`: a Runtime API socket, or a
/// followed downstream connection.
extern "C" fn fd_is_tracked(fd: c_int) -> c_int {
    c_int::from(TRACKED.watched(fd))
}

extern "C" fn is_active() -> c_int {
    c_int::from(process::is_active())
}

extern "C" fn fd_closing(fd: c_int) {
    if TRACKED.contains(fd) {
        process::closing(fd);
    }
    if TRACKED.contains_other(fd) {
        crate::ledger::closing(fd);
    }
}

extern "C" fn fds_closing(first: c_uint, last: c_uint) {
    process::closing_range(first, last);
    crate::ledger::closing_range(first, last);
}

extern "C" fn fd_duplicated(old_fd: c_int, new_fd: c_int) {
    if TRACKED.contains(old_fd) || TRACKED.contains(new_fd) {
        process::duplicated(old_fd, new_fd);
    }
    // What `new_fd` was is closed (a copy of a followed connection is not followed).
    if old_fd != new_fd && TRACKED.contains_other(new_fd) {
        crate::ledger::closing(new_fd);
    }
}
