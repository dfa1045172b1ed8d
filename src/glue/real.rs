//! The real libc functions behind every hook, resolved once with `dlsym(RTLD_NEXT, …)`.
//!
//! Resolution happens eagerly in the library constructor. A call that arrives before it (from
//! another library's constructor) goes to a fallback that makes the raw system call, so no hook
//! ever calls `dlsym` lazily. A symbol that resolves into this library itself is refused: the
//! library then disables itself instead of recursing.

use libc::{
    c_char, c_int, c_uint, c_void, iovec, msghdr, pid_t, size_t, sockaddr, socklen_t, ssize_t,
};
use std::ffi::CStr;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Resolves `name` with `RTLD_NEXT`, refusing a definition that lives in this library.
fn lookup(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name has no preconditions.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    if p.is_null() || in_this_library(p) {
        return None;
    }
    Some(p)
}

/// Whether `p` points into the object that contains this function: a range test against this
/// library's loaded segments, found once (`dladdr` per symbol would scan libc's symbol table
/// each time, ~50k instructions a call).
fn in_this_library(p: *mut c_void) -> bool {
    lm_in_this_library(p) != 0
}

/// [`in_this_library`] for `c-abi/interpose.c` (through its callback table).
pub extern "C" fn lm_in_this_library(p: *mut c_void) -> c_int {
    static RANGE: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();
    let (start, end) = *RANGE.get_or_init(own_segments);
    c_int::from((start..end).contains(&(p as usize)))
}

/// The lowest and highest address of this library's `PT_LOAD` segments ((0, 0) if not found).
fn own_segments() -> (usize, usize) {
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: dl_iterate_phdr passes a valid info for the duration of the call, and `data`
        // is the `(usize, usize)` own_segments passed in.
        let (info, found) = unsafe { (&*info, &mut *data.cast::<(usize, usize)>()) };
        let here = own_segments as *const () as usize;
        let base = info.dlpi_addr as usize;
        let (mut lo, mut hi) = (usize::MAX, 0usize);
        for i in 0..usize::from(info.dlpi_phnum) {
            // SAFETY: dlpi_phdr points to dlpi_phnum program headers.
            let ph = unsafe { &*info.dlpi_phdr.add(i) };
            if ph.p_type == libc::PT_LOAD {
                let start = base.wrapping_add(ph.p_vaddr as usize);
                lo = lo.min(start);
                hi = hi.max(start.wrapping_add(ph.p_memsz as usize));
            }
        }
        if (lo..hi).contains(&here) {
            *found = (lo, hi);
            return 1;
        }
        0
    }
    let mut found = (0usize, 0usize);
    // SAFETY: the callback only reads the headers it is given and writes `found`.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut found as *mut (usize, usize)).cast()) };
    found
}

/// The slot of one real function, its resolver and its accessor, inside the function's module
/// (which defines its C type `F` and its `fallback`).
macro_rules! real_slot {
    ($sym:literal) => {
        /// The real function once resolved; the fallback until then (never null).
        static SLOT: AtomicPtr<c_void> = AtomicPtr::new(fallback as F as *mut c_void);

        /// Resolves the real symbol; false when it is missing or is ourselves.
        pub fn resolve() -> bool {
            match lookup($sym) {
                Some(p) => {
                    SLOT.store(p, Ordering::Release);
                    true
                }
                None => false,
            }
        }

        /// The real function, or the fallback before resolution: one load.
        #[inline(always)]
        pub fn get() -> F {
            // SAFETY: SLOT only ever holds `fallback` or a non-null address returned by dlsym
            // for this very symbol, whose C type is F.
            unsafe { std::mem::transmute::<*mut c_void, F>(SLOT.load(Ordering::Acquire)) }
        }
    };
}

/// Declares one real function: a slot, its resolver and its accessor. The fallback, used
/// before resolution, is either the raw system call the libc wrapper makes
/// (`syscall(NR, args…)`) or, where there is none, a function of the same type.
macro_rules! real_fn {
    ($name:ident, $sym:literal, fn($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty,
     syscall($nr:expr $(, $sys_arg:expr)* $(,)?) $(,)?) => {
        real_fn!($name, $sym, fn($($arg: $ty),*) -> $ret, custom |$($arg),*| {
            // SAFETY: the host's arguments go unchanged to the system call its libc wrapper
            // would make; the kernel checks them and libc sets errno.
            unsafe { libc::syscall($nr $(, $sys_arg)*) as $ret }
        });
    };
    // No system call behind it (stdio, sigaction): before the constructor, resolve on first
    // use (dlsym calls none of these, so it cannot recurse); failing that, ENOSYS and `$err`.
    ($name:ident, $sym:literal, fn($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty,
     lazy $err:expr $(,)?) => {
        real_fn!($name, $sym, fn($($arg: $ty),*) -> $ret, custom |$($arg),*| {
            if $name::resolve() {
                // SAFETY: resolve() stored the real function; the host's arguments, unchanged.
                unsafe { ($name::get())($($arg),*) }
            } else {
                // SAFETY: writing errno of the current thread.
                unsafe { *libc::__errno_location() = libc::ENOSYS };
                $err
            }
        });
    };
    ($name:ident, $sym:literal, fn($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty,
     custom $fallback:expr $(,)?) => {
        pub mod $name {
            #[allow(unused_imports)]
            use super::*;
            /// The function's C type.
            pub type F = unsafe extern "C" fn($($ty),*) -> $ret;
            real_slot!($sym);

            #[allow(unused_variables)]
            unsafe extern "C" fn fallback($($arg: $ty),*) -> $ret {
                let f: fn($($ty),*) -> $ret = $fallback;
                f($($arg),*)
            }
        }
    };
}

const NO_ADDR: *const sockaddr = std::ptr::null();
const NO_ADDR_MUT: *mut sockaddr = std::ptr::null_mut();
const NO_LEN: *mut socklen_t = std::ptr::null_mut();

real_fn!(
    connect,
    c"connect",
    fn(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int,
    syscall(libc::SYS_connect, fd, addr, len)
);
real_fn!(
    close,
    c"close",
    fn(fd: c_int) -> c_int,
    syscall(libc::SYS_close, fd)
);
real_fn!(
    close_range,
    c"close_range",
    fn(first: c_uint, last: c_uint, flags: c_int) -> c_int,
    syscall(libc::SYS_close_range, first, last, flags)
);
real_fn!(
    dup,
    c"dup",
    fn(fd: c_int) -> c_int,
    syscall(libc::SYS_dup, fd)
);
real_fn!(
    dup2,
    c"dup2",
    fn(old: c_int, new: c_int) -> c_int,
    custom | old,
    new | {
        if old == new {
            // dup2 with equal fds only checks that old is valid.
            // SAFETY: F_GETFD on a number has no effect beyond its answer.
            let r = unsafe { libc::syscall(libc::SYS_fcntl, old, libc::F_GETFD) } as c_int;
            if r < 0 { -1 } else { old }
        } else {
            // SAFETY: dup3 with no flags is dup2 for distinct fds; arguments unchanged.
            unsafe { libc::syscall(libc::SYS_dup3, old, new, 0) as c_int }
        }
    }
);
real_fn!(
    dup3,
    c"dup3",
    fn(old: c_int, new: c_int, flags: c_int) -> c_int,
    syscall(libc::SYS_dup3, old, new, flags)
);
real_fn!(
    fork,
    c"fork",
    fn() -> pid_t,
    custom || {
        // A fork before our constructor ran: resolve now (dlsym does not fork: no recursion).
        if fork::resolve() {
            // SAFETY: resolve() stored the real fork, so get() no longer returns this fallback.
            unsafe { (fork::get())() }
        } else {
            // SAFETY: writing errno of the current thread.
            unsafe { *libc::__errno_location() = libc::ENOSYS };
            -1
        }
    }
);
real_fn!(
    send,
    c"send",
    fn(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t,
    syscall(libc::SYS_sendto, fd, buf, len, flags, NO_ADDR, 0)
);
real_fn!(
    sendto,
    c"sendto",
    fn(
        fd: c_int,
        buf: *const c_void,
        len: size_t,
        flags: c_int,
        addr: *const sockaddr,
        alen: socklen_t,
    ) -> ssize_t,
    syscall(libc::SYS_sendto, fd, buf, len, flags, addr, alen)
);
real_fn!(
    sendmsg,
    c"sendmsg",
    fn(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t,
    syscall(libc::SYS_sendmsg, fd, msg, flags)
);
real_fn!(
    write,
    c"write",
    fn(fd: c_int, buf: *const c_void, len: size_t) -> ssize_t,
    syscall(libc::SYS_write, fd, buf, len)
);
real_fn!(
    writev,
    c"writev",
    fn(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t,
    syscall(libc::SYS_writev, fd, iov, n)
);
real_fn!(
    recv,
    c"recv",
    fn(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t,
    syscall(libc::SYS_recvfrom, fd, buf, len, flags, NO_ADDR_MUT, NO_LEN)
);
real_fn!(
    recvfrom,
    c"recvfrom",
    fn(
        fd: c_int,
        buf: *mut c_void,
        len: size_t,
        flags: c_int,
        addr: *mut sockaddr,
        alen: *mut socklen_t,
    ) -> ssize_t,
    syscall(libc::SYS_recvfrom, fd, buf, len, flags, addr, alen)
);
real_fn!(
    recvmsg,
    c"recvmsg",
    fn(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t,
    syscall(libc::SYS_recvmsg, fd, msg, flags)
);
real_fn!(
    read,
    c"read",
    fn(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t,
    syscall(libc::SYS_read, fd, buf, len)
);
real_fn!(
    readv,
    c"readv",
    fn(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t,
    syscall(libc::SYS_readv, fd, iov, n)
);
// The _chk fallbacks skip the FORTIFY check: they only run before the constructor.
real_fn!(
    read_chk,
    c"__read_chk",
    fn(fd: c_int, buf: *mut c_void, len: size_t, buflen: size_t) -> ssize_t,
    syscall(libc::SYS_read, fd, buf, len)
);
real_fn!(
    recv_chk,
    c"__recv_chk",
    fn(fd: c_int, buf: *mut c_void, len: size_t, buflen: size_t, flags: c_int) -> ssize_t,
    syscall(libc::SYS_recvfrom, fd, buf, len, flags, NO_ADDR_MUT, NO_LEN)
);
real_fn!(
    recvfrom_chk,
    c"__recvfrom_chk",
    fn(
        fd: c_int,
        buf: *mut c_void,
        len: size_t,
        buflen: size_t,
        flags: c_int,
        addr: *mut sockaddr,
        alen: *mut socklen_t,
    ) -> ssize_t,
    syscall(libc::SYS_recvfrom, fd, buf, len, flags, addr, alen)
);

real_fn!(
    sendfile,
    c"sendfile",
    fn(out_fd: c_int, in_fd: c_int, offset: *mut libc::off_t, count: size_t) -> ssize_t,
    syscall(libc::SYS_sendfile, out_fd, in_fd, offset, count)
);
real_fn!(
    splice,
    c"splice",
    fn(
        fd_in: c_int,
        off_in: *mut libc::loff_t,
        fd_out: c_int,
        off_out: *mut libc::loff_t,
        len: size_t,
        flags: c_uint,
    ) -> ssize_t,
    syscall(libc::SYS_splice, fd_in, off_in, fd_out, off_out, len, flags)
);
real_fn!(
    sendmmsg,
    c"sendmmsg",
    fn(fd: c_int, msgs: *mut libc::mmsghdr, count: c_uint, flags: c_int) -> c_int,
    syscall(libc::SYS_sendmmsg, fd, msgs, count, flags)
);
real_fn!(
    recvmmsg,
    c"recvmmsg",
    fn(
        fd: c_int,
        msgs: *mut libc::mmsghdr,
        count: c_uint,
        flags: c_int,
        timeout: *mut libc::timespec,
    ) -> c_int,
    syscall(libc::SYS_recvmmsg, fd, msgs, count, flags, timeout)
);
real_fn!(
    fclose,
    c"fclose",
    fn(stream: *mut libc::FILE) -> c_int,
    lazy libc::EOF
);
real_fn!(
    fflush,
    c"fflush",
    fn(stream: *mut libc::FILE) -> c_int,
    lazy libc::EOF
);
real_fn!(
    sigaction,
    c"sigaction",
    fn(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int,
    lazy - 1
);
real_fn!(
    sigaction_alias,
    c"__sigaction",
    fn(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int,
    lazy - 1
);
/// The `signal` family: each takes a signal and a handler and returns the old handler.
macro_rules! real_signal_fn {
    ($($name:ident, $sym:literal;)*) => {$(
        real_fn!(
            $name,
            $sym,
            fn(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t,
            lazy libc::SIG_ERR
        );
    )*};
}
real_signal_fn!(
    signal, c"signal";
    bsd_signal, c"bsd_signal";
    ssignal, c"ssignal";
    sysv_signal, c"sysv_signal";
    sysv_signal_iso, c"__sysv_signal";
    sigset, c"sigset";
);
// stdio, for streams that wrap the Runtime API socket (see hooks.rs).
real_fn!(
    fdopen,
    c"fdopen",
    fn(fd: c_int, mode: *const c_char) -> *mut libc::FILE,
    lazy std::ptr::null_mut()
);
real_fn!(
    fputs,
    c"fputs",
    fn(s: *const c_char, stream: *mut libc::FILE) -> c_int,
    lazy libc::EOF
);
real_fn!(
    fputc,
    c"fputc",
    fn(c: c_int, stream: *mut libc::FILE) -> c_int,
    lazy libc::EOF
);
real_fn!(
    putc,
    c"putc",
    fn(c: c_int, stream: *mut libc::FILE) -> c_int,
    lazy libc::EOF
);
real_fn!(
    fputs_unlocked,
    c"fputs_unlocked",
    fn(s: *const c_char, stream: *mut libc::FILE) -> c_int,
    lazy libc::EOF
);
real_fn!(
    fwrite_unlocked,
    c"fwrite_unlocked",
    fn(ptr: *const c_void, size: size_t, n: size_t, stream: *mut libc::FILE) -> size_t,
    lazy 0
);
real_fn!(
    fwrite,
    c"fwrite",
    fn(ptr: *const c_void, size: size_t, n: size_t, stream: *mut libc::FILE) -> size_t,
    lazy 0
);
real_fn!(
    fgets,
    c"fgets",
    fn(buf: *mut c_char, n: c_int, stream: *mut libc::FILE) -> *mut c_char,
    lazy std::ptr::null_mut()
);
real_fn!(
    fgetc,
    c"fgetc",
    fn(stream: *mut libc::FILE) -> c_int,
    lazy libc::EOF
);
real_fn!(
    getc,
    c"getc",
    fn(stream: *mut libc::FILE) -> c_int,
    lazy libc::EOF
);
real_fn!(
    fread,
    c"fread",
    fn(ptr: *mut c_void, size: size_t, n: size_t, stream: *mut libc::FILE) -> size_t,
    lazy 0
);
real_fn!(
    fgets_unlocked,
    c"fgets_unlocked",
    fn(buf: *mut c_char, n: c_int, stream: *mut libc::FILE) -> *mut c_char,
    lazy std::ptr::null_mut()
);
real_fn!(
    fgets_chk,
    c"__fgets_chk",
    fn(buf: *mut c_char, size: size_t, n: c_int, stream: *mut libc::FILE) -> *mut c_char,
    lazy std::ptr::null_mut()
);
real_fn!(
    fgets_unlocked_chk,
    c"__fgets_unlocked_chk",
    fn(buf: *mut c_char, size: size_t, n: c_int, stream: *mut libc::FILE) -> *mut c_char,
    lazy std::ptr::null_mut()
);
real_fn!(
    fread_unlocked,
    c"fread_unlocked",
    fn(ptr: *mut c_void, size: size_t, n: size_t, stream: *mut libc::FILE) -> size_t,
    lazy 0
);
real_fn!(
    fread_chk,
    c"__fread_chk",
    fn(ptr: *mut c_void, room: size_t, size: size_t, n: size_t, stream: *mut libc::FILE) -> size_t,
    lazy 0
);
real_fn!(
    fread_unlocked_chk,
    c"__fread_unlocked_chk",
    fn(ptr: *mut c_void, room: size_t, size: size_t, n: size_t, stream: *mut libc::FILE) -> size_t,
    lazy 0
);
real_fn!(
    getdelim_internal,
    c"__getdelim",
    fn(line: *mut *mut c_char, cap: *mut size_t, delim: c_int, stream: *mut libc::FILE) -> ssize_t,
    lazy - 1
);
real_fn!(
    getdelim,
    c"getdelim",
    fn(line: *mut *mut c_char, cap: *mut size_t, delim: c_int, stream: *mut libc::FILE) -> ssize_t,
    lazy - 1
);

/// Declares a real function that never returns (`exit`, `_exit`): the macro above
/// cannot spell `-> !`. Before the constructor, its fallback resolves the real function and
/// calls it (so `exit` still runs the host's `atexit` handlers); only if that fails does it
/// run `$last_resort`.
macro_rules! real_noreturn_fn {
    ($name:ident, $sym:literal, fn($($arg:ident: $ty:ty),*), $last_resort:expr) => {
        pub mod $name {
            use super::*;
            /// The function's C type.
            pub type F = unsafe extern "C" fn($($ty),*) -> !;
            real_slot!($sym);

            unsafe extern "C" fn fallback($($arg: $ty),*) -> ! {
                if resolve() {
                    // SAFETY: resolve() stored the real function; the host's arguments.
                    unsafe { (get())($($arg),*) }
                }
                loop {
                    let last: fn($($ty),*) = $last_resort;
                    last($($arg),*);
                }
            }
        }
    };
}

/// Ends the process without libc: what `exit` and `_exit` come to when libc cannot be found.
fn exit_group(status: c_int) {
    // SAFETY: exit_group ends every thread of the process; it does not return.
    unsafe { libc::syscall(libc::SYS_exit_group, status) };
}

real_noreturn_fn!(exit, c"exit", fn(status: c_int), exit_group);
real_noreturn_fn!(exit_now, c"_exit", fn(status: c_int), exit_group);

/// The required libc functions that could not be resolved (at most eight are named).
#[derive(Clone, Copy, Debug, Default)]
pub struct Missing {
    names: [&'static str; 8],
    count: usize,
}

impl Missing {
    fn add(&mut self, name: &'static str) {
        if let Some(slot) = self.names.get_mut(self.count) {
            *slot = name;
        }
        self.count += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The names, comma-separated, in `buf`.
    pub fn list<'a>(&self, buf: &'a mut [u8]) -> &'a str {
        let mut out = crate::text::Out::new(buf);
        for (i, n) in self.names.iter().take(self.count).enumerate() {
            if i > 0 {
                out.str(", ");
            }
            out.str(n);
        }
        let len = out.len();
        std::str::from_utf8(buf.get(..len).unwrap_or_default()).unwrap_or("")
    }
}

/// The minor version of the glibc this process runs (2.N), or 0 when unknown. No system call.
fn glibc_minor() -> u32 {
    // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
    let v = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    let minor = v.to_bytes().strip_prefix(b"2.").unwrap_or_default();
    minor
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u32, |n, b| {
            n.saturating_mul(10).saturating_add(u32::from(b - b'0'))
        })
}

/// Resolves every real function, at load. No allocation and no system call: a symbol this
/// glibc cannot have is not looked up (a failed `dlsym` allocates its error message), and
/// `close_range`, missing before glibc 2.34, keeps its raw-system-call fallback. Returns the
/// required ones that could not be found.
pub fn resolve_all() -> Missing {
    /// Symbol name, resolver, whether the library cannot work without it, and the first glibc
    /// 2.N that has it.
    type Entry = (&'static str, fn() -> bool, bool, u32);
    let table: [Entry; 55] = [
        ("connect", connect::resolve, true, 0),
        ("close", close::resolve, true, 0),
        ("close_range", close_range::resolve, false, 34),
        ("dup", dup::resolve, true, 0),
        ("dup2", dup2::resolve, true, 0),
        ("dup3", dup3::resolve, true, 0),
        ("fork", fork::resolve, true, 0),
        ("send", send::resolve, true, 0),
        ("sendto", sendto::resolve, true, 0),
        ("sendmsg", sendmsg::resolve, true, 0),
        ("write", write::resolve, true, 0),
        ("writev", writev::resolve, true, 0),
        ("recv", recv::resolve, true, 0),
        ("recvfrom", recvfrom::resolve, true, 0),
        ("recvmsg", recvmsg::resolve, true, 0),
        ("read", read::resolve, true, 0),
        ("readv", readv::resolve, true, 0),
        ("__read_chk", read_chk::resolve, true, 0),
        ("__recv_chk", recv_chk::resolve, true, 0),
        ("__recvfrom_chk", recvfrom_chk::resolve, true, 0),
        ("fclose", fclose::resolve, true, 0),
        ("fflush", fflush::resolve, true, 0),
        ("fdopen", fdopen::resolve, true, 0),
        ("fputs", fputs::resolve, true, 0),
        ("fputc", fputc::resolve, true, 0),
        ("putc", putc::resolve, true, 0),
        ("fwrite", fwrite::resolve, true, 0),
        ("fgets", fgets::resolve, true, 0),
        ("fgetc", fgetc::resolve, true, 0),
        ("getc", getc::resolve, true, 0),
        ("fread", fread::resolve, true, 0),
        ("getdelim", getdelim::resolve, true, 0),
        ("fputs_unlocked", fputs_unlocked::resolve, false, 0),
        ("fwrite_unlocked", fwrite_unlocked::resolve, false, 0),
        ("fgets_unlocked", fgets_unlocked::resolve, false, 0),
        ("__fgets_chk", fgets_chk::resolve, false, 0),
        (
            "__fgets_unlocked_chk",
            fgets_unlocked_chk::resolve,
            false,
            0,
        ),
        ("fread_unlocked", fread_unlocked::resolve, false, 0),
        ("__fread_chk", fread_chk::resolve, false, 0),
        (
            "__fread_unlocked_chk",
            fread_unlocked_chk::resolve,
            false,
            0,
        ),
        ("__getdelim", getdelim_internal::resolve, false, 0),
        ("sendfile", sendfile::resolve, true, 0),
        ("splice", splice::resolve, true, 0),
        ("sendmmsg", sendmmsg::resolve, true, 0),
        ("recvmmsg", recvmmsg::resolve, true, 0),
        ("sigaction", sigaction::resolve, true, 0),
        ("__sigaction", sigaction_alias::resolve, false, 0),
        ("signal", signal::resolve, true, 0),
        ("bsd_signal", bsd_signal::resolve, false, 0),
        ("ssignal", ssignal::resolve, false, 0),
        ("sysv_signal", sysv_signal::resolve, false, 0),
        ("__sysv_signal", sysv_signal_iso::resolve, false, 0),
        ("sigset", sigset::resolve, false, 0),
        ("exit", exit::resolve, true, 0),
        ("_exit", exit_now::resolve, true, 0),
    ];
    let minor = glibc_minor();
    let mut missing = Missing::default();
    for (name, resolve, required, since) in table {
        let present = (minor == 0 || minor >= since) && resolve();
        if !present && required {
            missing.add(name);
        }
    }
    missing
}
