//! The interposed libc functions: thin `extern "C"` shims with no logic of their own.
//!
//! Every I/O hook has one shape: call the real function, and only if the fd is a tracked
//! Runtime API socket (one atomic load) hand the bytes that really moved to the engine. The
//! return value and errno the host sees are exactly the real function's. `MSG_PEEK` reads and
//! calls that moved no bytes are not observed. Don't log from here: the host may have closed
//! or redirected stdout and stderr.
//!
//! The variadic `fcntl`, `fcntl64` and `syscall` hooks are in C (`c-abi/interpose.c`); they
//! call back into the `lm_*` functions at the end of this file.

use crate::ending;
use crate::fdtable::TRACKED;
use crate::output;
use crate::process;
use crate::real;
use crate::signals;
use libc::{
    c_char, c_int, c_uint, c_void, iovec, msghdr, pid_t, size_t, sockaddr, socklen_t, ssize_t,
};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// Reads a socket address the kernel has just accepted.
///
/// # Safety
/// `addr` must point to `len` readable bytes (true once `connect` did not fail with EFAULT).
unsafe fn socket_addr(addr: *const sockaddr, len: socklen_t) -> Option<SocketAddr> {
    if addr.is_null() {
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
    if process::record_awaits() && TRACKED.contains(fd) {
        process::sending(fd);
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
    let mut batch: [&[u8]; BATCH] = [&[]; BATCH];
    let mut used = 0;
    if iov.is_null() {
        return;
    }
    for i in 0..n.max(0) as usize {
        if left == 0 {
            break;
        }
        // SAFETY: i < n, so iov.add(i) is inside the host's array.
        let v = unsafe { &*iov.add(i) };
        let take = v.iov_len.min(left);
        if take > 0 && !v.iov_base.is_null() {
            if used == BATCH {
                f(&batch);
                used = 0;
            }
            if let Some(slot) = batch.get_mut(used) {
                // SAFETY: the kernel transferred `take` bytes through this buffer.
                *slot = unsafe { std::slice::from_raw_parts(v.iov_base.cast::<u8>(), take) };
                used += 1;
            }
        }
        left -= take;
    }
    // rc == 0 is the end of the stream: one call with no parts.
    if used > 0 || rc == 0 {
        f(batch.get(..used).unwrap_or_default());
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

#[unsafe(no_mangle)]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: forwarding the host's arguments unchanged.
    let rc = unsafe { (real::connect::get())(fd, addr, len) };
    if process::is_active() {
        let err = errno();
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

#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    // Forget first: once closed, another thread may get the same number from socket().
    if TRACKED.contains(fd) {
        process::closing(fd);
    }
    // SAFETY: forwarding the host's argument unchanged.
    unsafe { (real::close::get())(fd) }
}

// Calls that move Runtime API bytes the hooks cannot see (in the kernel, from a file or pipe,
// or in batches): the connection can no longer be followed, and is dropped cleanly.

#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendfile(
    out_fd: c_int,
    in_fd: c_int,
    offset: *mut libc::off_t,
    count: size_t,
) -> ssize_t {
    // SAFETY: forwarding the host's arguments unchanged.
    let rc = unsafe { (real::sendfile::get())(out_fd, in_fd, offset, count) };
    if rc > 0 && TRACKED.contains(out_fd) {
        process::unseen(out_fd, "sendfile");
    }
    rc
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn splice(
    fd_in: c_int,
    off_in: *mut libc::loff_t,
    fd_out: c_int,
    off_out: *mut libc::loff_t,
    len: size_t,
    flags: c_uint,
) -> ssize_t {
    // SAFETY: forwarding the host's arguments unchanged.
    let rc = unsafe { (real::splice::get())(fd_in, off_in, fd_out, off_out, len, flags) };
    if rc > 0 {
        for fd in [fd_in, fd_out] {
            if TRACKED.contains(fd) {
                process::unseen(fd, "splice");
            }
        }
    }
    rc
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendmmsg(
    fd: c_int,
    msgs: *mut libc::mmsghdr,
    count: c_uint,
    flags: c_int,
) -> c_int {
    // SAFETY: forwarding the host's arguments unchanged.
    let rc = unsafe { (real::sendmmsg::get())(fd, msgs, count, flags) };
    if rc > 0 && TRACKED.contains(fd) {
        process::unseen(fd, "sendmmsg");
    }
    rc
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn recvmmsg(
    fd: c_int,
    msgs: *mut libc::mmsghdr,
    count: c_uint,
    flags: c_int,
    timeout: *mut libc::timespec,
) -> c_int {
    // SAFETY: forwarding the host's arguments unchanged.
    let rc = unsafe { (real::recvmmsg::get())(fd, msgs, count, flags, timeout) };
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
// scan. Not followed: the `_unlocked` variants and `getc_unlocked`/`putc_unlocked`, which are
// macros reading the buffer directly.

/// Streams wrapping a tracked fd, and how many there are.
static STREAMS: [AtomicPtr<libc::FILE>; 16] = [const { AtomicPtr::new(std::ptr::null_mut()) }; 16];
static STREAM_COUNT: AtomicUsize = AtomicUsize::new(0);

/// The tracked fd under `stream`, if it is one of ours.
#[inline(always)]
fn stream_fd(stream: *mut libc::FILE) -> Option<c_int> {
    if STREAM_COUNT.load(Ordering::Relaxed) == 0 || stream.is_null() {
        return None;
    }
    if !STREAMS.iter().any(|s| s.load(Ordering::Relaxed) == stream) {
        return None;
    }
    let err = errno();
    // SAFETY: a registered stream is open (fclose unregisters it first).
    let fd = unsafe { libc::fileno(stream) };
    set_errno(err);
    TRACKED.contains(fd).then_some(fd)
}

fn register_stream(stream: *mut libc::FILE) {
    let empty = STREAMS.iter().find(|s| {
        s.compare_exchange(
            std::ptr::null_mut(),
            stream,
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok()
    });
    if empty.is_some() {
        STREAM_COUNT.fetch_add(1, Ordering::Relaxed);
    }
}

fn unregister_stream(stream: *mut libc::FILE) {
    if STREAM_COUNT.load(Ordering::Relaxed) == 0 {
        return;
    }
    for s in &STREAMS {
        if s.compare_exchange(
            stream,
            std::ptr::null_mut(),
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok()
        {
            STREAM_COUNT.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Before the host hands bytes to a stream of ours.
#[inline(always)]
fn stream_writing(stream: *mut libc::FILE) -> Option<c_int> {
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

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fdopen(fd: c_int, mode: *const c_char) -> *mut libc::FILE {
    // SAFETY: forwarding the host's arguments unchanged.
    let stream = unsafe { (real::fdopen::get())(fd, mode) };
    if !stream.is_null() && TRACKED.contains(fd) && process::is_active() {
        register_stream(stream);
    }
    stream
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fputs(text: *const c_char, stream: *mut libc::FILE) -> c_int {
    let fd = stream_writing(stream);
    // SAFETY: forwarding the host's arguments unchanged.
    let rc = unsafe { (real::fputs::get())(text, stream) };
    if let Some(fd) = fd.filter(|_| rc >= 0) {
        // SAFETY: fputs just read the NUL-terminated string.
        let len = unsafe { libc::strlen(text) };
        stream_wrote(fd, text.cast(), len);
    }
    rc
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fwrite(
    data: *const c_void,
    size: size_t,
    n: size_t,
    stream: *mut libc::FILE,
) -> size_t {
    let fd = stream_writing(stream);
    // SAFETY: forwarding the host's arguments unchanged.
    let items = unsafe { (real::fwrite::get())(data, size, n, stream) };
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

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fputc(c: c_int, stream: *mut libc::FILE) -> c_int {
    put_byte(c, stream, real::fputc::get())
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn putc(c: c_int, stream: *mut libc::FILE) -> c_int {
    put_byte(c, stream, real::putc::get())
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fgets(buf: *mut c_char, n: c_int, stream: *mut libc::FILE) -> *mut c_char {
    // SAFETY: forwarding the host's arguments unchanged.
    let got = unsafe { (real::fgets::get())(buf, n, stream) };
    if !got.is_null()
        && let Some(fd) = stream_fd(stream)
    {
        // SAFETY: fgets stored a NUL-terminated line in `buf`. (A line with a NUL byte in it
        // is cut short here; the Runtime API's heads have none.)
        let len = unsafe { libc::strlen(buf) };
        stream_read(fd, buf.cast(), len);
    }
    got
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fread(
    data: *mut c_void,
    size: size_t,
    n: size_t,
    stream: *mut libc::FILE,
) -> size_t {
    // SAFETY: forwarding the host's arguments unchanged.
    let items = unsafe { (real::fread::get())(data, size, n, stream) };
    if let Some(fd) = stream_fd(stream) {
        stream_read(fd, data, items.saturating_mul(size));
    }
    items
}

/// `fgetc` and `getc` (and `_IO_getc`).
fn get_byte(stream: *mut libc::FILE, real: real::fgetc::F) -> c_int {
    // SAFETY: forwarding the host's argument unchanged.
    let c = unsafe { real(stream) };
    if c != libc::EOF
        && let Some(fd) = stream_fd(stream)
    {
        let byte = c as u8;
        stream_read(fd, (&byte as *const u8).cast(), 1);
    }
    c
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fgetc(stream: *mut libc::FILE) -> c_int {
    get_byte(stream, real::fgetc::get())
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn getc(stream: *mut libc::FILE) -> c_int {
    get_byte(stream, real::getc::get())
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn getdelim(
    line: *mut *mut c_char,
    cap: *mut size_t,
    delim: c_int,
    stream: *mut libc::FILE,
) -> ssize_t {
    // SAFETY: forwarding the host's arguments unchanged.
    let got = unsafe { (real::getdelim::get())(line, cap, delim, stream) };
    if got > 0
        && !line.is_null()
        && let Some(fd) = stream_fd(stream)
    {
        // SAFETY: getdelim stored `got` bytes at *line.
        stream_read(fd, unsafe { *line }.cast(), got as usize);
    }
    got
}

/// `getline` is `getdelim` up to a newline (glibc's calls it inside libc, out of our sight).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getline(
    line: *mut *mut c_char,
    cap: *mut size_t,
    stream: *mut libc::FILE,
) -> ssize_t {
    // SAFETY: the host's arguments, as getline takes them.
    unsafe { getdelim(line, cap, c_int::from(b'\n'), stream) }
}

/// `fclose` closes its fd inside libc, where the `close` hook never sees it: a socket the
/// runtime wrapped with `fdopen` would stay tracked, and the next file to get its number would
/// be parsed as HTTP.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fclose(stream: *mut libc::FILE) -> c_int {
    if process::is_active() && !stream.is_null() {
        let err = errno();
        // SAFETY: the host passes its open stream, as fclose requires; fileno only reads it.
        let fd = unsafe { libc::fileno(stream) };
        set_errno(err);
        unregister_stream(stream);
        if TRACKED.contains(fd) {
            process::closing(fd);
        }
    }
    // SAFETY: forwarding the host's argument unchanged.
    unsafe { (real::fclose::get())(stream) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    if process::is_active() && (flags as c_uint & libc::CLOSE_RANGE_CLOEXEC) == 0 {
        process::closing_range(first, last);
    }
    // SAFETY: forwarding the host's arguments unchanged.
    unsafe { (real::close_range::get())(first, last, flags) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    // SAFETY: forwarding the host's argument unchanged.
    let rc = unsafe { (real::dup::get())(fd) };
    if rc >= 0 && TRACKED.contains(fd) {
        process::duplicated(fd, rc);
    }
    rc
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    // SAFETY: forwarding the host's arguments unchanged.
    let rc = unsafe { (real::dup2::get())(old, new) };
    if rc >= 0 && (TRACKED.contains(old) || TRACKED.contains(new)) {
        process::duplicated(old, new);
    }
    rc
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    // SAFETY: forwarding the host's arguments unchanged.
    let rc = unsafe { (real::dup3::get())(old, new, flags) };
    if rc >= 0 && (TRACKED.contains(old) || TRACKED.contains(new)) {
        process::duplicated(old, new);
    }
    rc
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fork() -> pid_t {
    // Taking and releasing the engine lock may touch errno (futex waits): the host sees the
    // errno it had before a successful fork, or fork's own after a failed one.
    let entry_errno = errno();
    let canary = process::Canary::new();
    let guard = process::before_fork(&canary);
    // SAFETY: plain call of the real fork.
    let pid = unsafe { (real::fork::get())() };
    let err = if pid < 0 { errno() } else { entry_errno };
    process::after_fork(guard, pid);
    set_errno(err);
    pid
}

// ---- the I/O hooks ----
//
// Each has a fast path for the function's own fds: one bitmap test and a tail call of the real
// function (no frame, nothing else inlined). Everything the library does for a Runtime API
// socket (and, for writes, for stdout and stderr) is in a `#[cold]` function out of line.

/// Whether a write to `fd` needs the library: a Runtime API socket, or stdout/stderr (whose
/// last byte is noted, see [`observe_sent`]). fd 0 is let in too: one compare instead of two.
#[inline(always)]
fn watched_output(fd: c_int) -> bool {
    (fd as u32) <= 2 || TRACKED.contains(fd)
}

/// Declares a hook whose fast path is the real call, and whose slow path, taken when `$watch`
/// holds for the fd, is the body given.
macro_rules! hook {
    ($name:ident, $real:ident, $watch:ident, fn($fd:ident: c_int $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty,
     $before:block, |$rc:ident| $observe:block) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($fd: c_int $(, $arg: $ty)*) -> $ret {
            #[cold]
            #[inline(never)]
            unsafe fn observed($fd: c_int $(, $arg: $ty)*) -> $ret {
                $before
                // SAFETY: forwarding the host's arguments unchanged.
                let $rc = unsafe { (real::$real::get())($fd $(, $arg)*) };
                $observe
                $rc
            }
            if $watch($fd) {
                // SAFETY: the host's arguments, unchanged.
                return unsafe { observed($fd $(, $arg)*) };
            }
            // SAFETY: forwarding the host's arguments unchanged.
            unsafe { (real::$real::get())($fd $(, $arg)*) }
        }
    };
}

/// A receive hook's test: only Runtime API sockets (tracked before the bytes can arrive:
/// `connect` or `dup` marks the fd first).
#[inline(always)]
fn watched_input(fd: c_int) -> bool {
    TRACKED.contains(fd)
}

/// A send hook: the record that waits goes out first, then the bytes the host wrote are seen.
macro_rules! send_hook {
    ($name:ident, $real:ident, fn($fd:ident: c_int, $buf:ident: *const c_void $(, $arg:ident: $ty:ty)* $(,)?)) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($fd: c_int, $buf: *const c_void $(, $arg: $ty)*) -> ssize_t {
            #[cold]
            #[inline(never)]
            unsafe fn observed($fd: c_int, $buf: *const c_void $(, $arg: $ty)*) -> ssize_t {
                before_send($fd);
                // SAFETY: forwarding the host's arguments unchanged.
                let rc = unsafe { (real::$real::get())($fd, $buf $(, $arg)*) };
                observe_sent($fd, $buf, rc);
                rc
            }
            if watched_output($fd) {
                // SAFETY: the host's arguments, unchanged.
                return unsafe { observed($fd, $buf $(, $arg)*) };
            }
            // SAFETY: forwarding the host's arguments unchanged.
            unsafe { (real::$real::get())($fd, $buf $(, $arg)*) }
        }
    };
}

send_hook!(
    send,
    send,
    fn(fd: c_int, buf: *const c_void, len: size_t, flags: c_int)
);
send_hook!(
    sendto,
    sendto,
    fn(
        fd: c_int,
        buf: *const c_void,
        len: size_t,
        flags: c_int,
        addr: *const sockaddr,
        alen: socklen_t,
    )
);
send_hook!(write, write, fn(fd: c_int, buf: *const c_void, len: size_t));

hook!(
    sendmsg,
    sendmsg,
    watched_output,
    fn(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t,
    { before_send(fd) },
    |rc| {
        if rc > 0 && !msg.is_null() {
            // SAFETY: the kernel just read `rc` bytes through this msghdr's iovecs.
            let (iov, n) = unsafe { ((*msg).msg_iov, (*msg).msg_iovlen as c_int) };
            // SAFETY: as above.
            unsafe { observe_sent_iov(fd, iov, n, rc) };
        }
    }
);

hook!(
    writev,
    writev,
    watched_output,
    fn(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t,
    { before_send(fd) },
    |rc| {
        // SAFETY: the kernel just read `rc` bytes through these iovecs.
        unsafe { observe_sent_iov(fd, iov, n, rc) };
    }
);

/// Receive hooks that fill one buffer.
macro_rules! receive_hook {
    ($name:ident, $real:ident, fn($fd:ident: c_int, $buf:ident: *mut c_void, $len:ident: size_t $(, $arg:ident: $ty:ty)* $(,)?), flags: $flags:expr) => {
        hook!($name, $real, watched_input, fn($fd: c_int, $buf: *mut c_void, $len: size_t $(, $arg: $ty)*) -> ssize_t, {}, |rc| {
            observe_received($fd, $buf, $len, rc, $flags);
        });
    };
}

receive_hook!(recv, recv, fn(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int), flags: flags);
receive_hook!(
    recvfrom,
    recvfrom,
    fn(
        fd: c_int,
        buf: *mut c_void,
        len: size_t,
        flags: c_int,
        addr: *mut sockaddr,
        alen: *mut socklen_t
    ),
    flags: flags
);
receive_hook!(read, read, fn(fd: c_int, buf: *mut c_void, len: size_t), flags: 0);
// The _chk variants: the real one does the buffer-size check.
receive_hook!(__read_chk, read_chk, fn(fd: c_int, buf: *mut c_void, len: size_t, buflen: size_t), flags: 0);
receive_hook!(
    __recv_chk,
    recv_chk,
    fn(fd: c_int, buf: *mut c_void, len: size_t, buflen: size_t, flags: c_int),
    flags: flags
);
receive_hook!(
    __recvfrom_chk,
    recvfrom_chk,
    fn(
        fd: c_int,
        buf: *mut c_void,
        len: size_t,
        buflen: size_t,
        flags: c_int,
        addr: *mut sockaddr,
        alen: *mut socklen_t
    ),
    flags: flags
);

hook!(
    recvmsg,
    recvmsg,
    watched_input,
    fn(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t,
    {},
    |rc| {
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
    }
);

hook!(
    readv,
    readv,
    watched_input,
    fn(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t,
    {},
    |rc| {
        if rc >= 0 && TRACKED.contains(fd) {
            // SAFETY: the kernel just wrote `rc` bytes through these iovecs.
            unsafe { observe_received_iov(fd, iov, n, rc) };
        }
    }
);

// Signal dispositions: every call goes through unchanged (see signals.rs); only a read-back
// that would show the library's crash handler is translated.

#[unsafe(no_mangle)]
pub unsafe extern "C" fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    // SAFETY: the host's arguments, unchanged.
    unsafe { signals::sigaction(real::sigaction::get(), sig, act, old) }
}

/// glibc exports `sigaction` under this name too.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    // SAFETY: the host's arguments, unchanged.
    unsafe { signals::sigaction(real::sigaction_alias::get(), sig, act, old) }
}

/// `signal`, `bsd_signal`, `ssignal` (BSD semantics), `sysv_signal` and `__sysv_signal` (what
/// ISO C's `signal` is in glibc), `sigset`: glibc installs through its own internal
/// `sigaction`, out of our sight, so each is hooked itself.
macro_rules! signal_hook {
    ($($name:ident => $real:ident),* $(,)?) => {$(
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            sig: c_int,
            handler: libc::sighandler_t,
        ) -> libc::sighandler_t {
            // SAFETY: the host's arguments, unchanged.
            unsafe { signals::signal_like(real::$real::get(), sig, handler) }
        }
    )*};
}

signal_hook!(
    signal => signal,
    bsd_signal => bsd_signal,
    ssignal => ssignal,
    sysv_signal => sysv_signal,
    __sysv_signal => sysv_signal_iso,
    sigset => sigset,
);

#[unsafe(no_mangle)]
pub unsafe extern "C" fn exit(status: c_int) -> ! {
    ending::exiting(status);
    // SAFETY: the host's argument, unchanged; exit does not return.
    unsafe { (real::exit::get())(status) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn _exit(status: c_int) -> ! {
    if process::is_active() {
        ending::exiting_now(status);
    }
    // SAFETY: the host's argument, unchanged; _exit does not return.
    unsafe { (real::exit_now::get())(status) }
}

/// `_Exit` is `_exit` under its C99 name.
#[unsafe(no_mangle)]
#[allow(non_snake_case)]
pub unsafe extern "C" fn _Exit(status: c_int) -> ! {
    // SAFETY: the host's argument, unchanged.
    unsafe { _exit(status) }
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
}

unsafe extern "C" {
    /// Resolves the C interposers' real functions and keeps the callback table.
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
};

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
    // A normal exit in the middle of an invoke: it ends with the process.
    if process::is_active() {
        ending::at_exit();
    }
}

extern "C" fn constructor() {
    // SAFETY: CALLBACKS is a static that outlives every call the C side makes through it.
    unsafe { lm_c_install(&CALLBACKS) };
    // Before anything is written: what stdout and stderr are (see output::LOG_STREAMS).
    crate::output::remember_log_streams();
    let result = std::panic::catch_unwind(|| {
        let exe = std::fs::read_link("/proc/self/exe")
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "unknown".to_string());
        process::init(&exe);
    });
    if result.is_err() {
        crate::output::warn("internal error while loading; lambda-meter is off for this process");
    }
}

extern "C" fn fd_is_tracked(fd: c_int) -> c_int {
    c_int::from(TRACKED.contains(fd))
}

extern "C" fn is_active() -> c_int {
    c_int::from(process::is_active())
}

extern "C" fn fd_closing(fd: c_int) {
    process::closing(fd);
}

extern "C" fn fds_closing(first: c_uint, last: c_uint) {
    process::closing_range(first, last);
}

extern "C" fn fd_duplicated(old_fd: c_int, new_fd: c_int) {
    process::duplicated(old_fd, new_fd);
}
