//! Every hooked function, once: one row each. From these rows come the exported shims
//! (`hooks.rs`), the real functions' slots and their resolution (`real.rs`), the list of GOT
//! entries an `RTLD_DEEPBIND` object gets bound to (`deepbind.rs`), and the linker's list of
//! exported symbols (`build.rs` reads this file as text: a row starts with `fn NAME(` or
//! `c fn NAME(` on a line of its own; `tests/support/mod.rs` reads what the build wrote).
//!
//! A row:
//!
//! ```text
//! fn NAME(ARGS) -> RET: FAMILY BYTES DEEP,
//!     BEFORE_LOAD NEEDED, |BINDER| OBSERVER;
//! c fn NAME(ARGS) -> RET: FAMILY BYTES DEEP;
//! ```
//!
//! - `NAME(ARGS) -> RET`: the libc function's symbol and C signature; the shim has exactly it.
//! - `FAMILY`: `send` and `receive` shims have the fast path — the real call, and only when
//!   the fd (the first argument) is watched, a `#[cold]` function that calls the observer
//!   (`send`: a Runtime API socket or fds 0–2, whose last byte is noted; `receive`: a Runtime API
//!   socket). A `stream_in` shim (a stdio read) makes the real call, and calls the observer
//!   only while a stream on a Runtime API socket is followed (one load), unless its row is
//!   `via` another's. Every other family (`unseen`: bytes the hooks cannot see; `fd`: which
//!   fd the bytes travel on; `lookup`: name lookups; `stdio`; `signal`; `process`; `loader`)
//!   calls its observer directly.
//! - `BYTES`: `bytes` when the call carries the host's bytes (a `send` or `receive` row must),
//!   else `-`.
//! - `DEEP`: `deep` when the GOT entries of an `RTLD_DEEPBIND` object that hold libc's own
//!   function are pointed at the hook (`deepbind.rs`), else `-`.
//! - `BEFORE_LOAD`: what the real slot holds before the constructor resolved it:
//!   `syscall(NR, args…)` (the system call libc's wrapper makes), `lazy(ERR)` (resolve on
//!   first use; failing that, ENOSYS and ERR), `custom(FUNCTION)` (a function of the same C
//!   type), `noreturn(FUNCTION)` (resolve on first use; failing that, FUNCTION, forever), or
//!   `via(OTHER)`: no slot of its own, the shim is given OTHER's real function.
//! - `NEEDED`: `needed` (the library disables itself without it), `optional`, or
//!   `since(N)`: optional, and looked up only on glibc 2.N and later.
//! - `|call| OBSERVER`: the hook's behaviour, a call of an observer function (`hooks.rs`, or
//!   `signals.rs`) given `call`, the real function with the host's arguments unchanged (a
//!   closure); `|real: F| OBSERVER` gives it the real function itself (of its C type, `F`).
//! - `c fn`: the hook is C (`c-abi/interpose.c`): no Rust shim and no Rust slot. A `deep` C row
//!   names its real function `lm_real_NAME` (a hidden C variable), and its ARGS must be Rust.
//!
//! A new hook is one row, plus an observer function when no existing one fits.

/// Hands the table to `$consumer` as `$consumer! { [ROW] [ROW] … }`, each row normalised to
/// one of:
///
/// ```text
/// [rust NAME [ARGS] [RET] FAMILY BYTES DEEP [KIND (KIND_ARGS)] [NEEDED (SINCE)] [BINDER TYPE?] [OBSERVER]]
/// [c NAME [ARGS] [RET] FAMILY BYTES DEEP]
/// ```
macro_rules! hook_table {
    ($consumer:ident) => {
        $crate::table::hook_table! { @rows $consumer []

        // ---- fd: the calls that make, copy and end the fd the bytes travel on ----
        fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int: fd - deep,
            syscall(libc::SYS_connect, fd, addr, len) needed, |call| connected(fd, addr, len, call);
        fn getsockopt(
            fd: c_int, level: c_int, name: c_int, value: *mut c_void, len: *mut socklen_t,
        ) -> c_int: fd - -,
            syscall(libc::SYS_getsockopt, fd, level, name, value, len) needed,
            |call| got_option(fd, level, name, value, len, call);
        fn close(fd: c_int) -> c_int: fd - deep,
            syscall(libc::SYS_close, fd) needed, |call| closed(fd, call);
        fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int: fd - deep,
            syscall(libc::SYS_close_range, first, last, flags) since(34),
            |call| closed_range(first, last, flags, call);
        fn dup(fd: c_int) -> c_int: fd - deep,
            syscall(libc::SYS_dup, fd) needed, |call| duplicated(fd, call);
        fn dup2(old: c_int, new: c_int) -> c_int: fd - deep,
            custom(dup2_raw) needed, |call| duplicated_to(old, new, call);
        fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int: fd - deep,
            syscall(libc::SYS_dup3, old, new, flags) needed, |call| duplicated_to(old, new, call);
        c fn fcntl(fd: c_int, cmd: c_int, ...) -> c_int: fd - deep;
        c fn fcntl64(fd: c_int, cmd: c_int, ...) -> c_int: fd - deep;
        c fn syscall(number: c_long, ...) -> c_long: fd - deep;

        // ---- lookup: the names the function looks up, which name its connections ----
        fn getaddrinfo(
            node: *const c_char, service: *const c_char, hints: *const libc::addrinfo,
            res: *mut *mut libc::addrinfo,
        ) -> c_int: lookup - -,
            lazy(libc::EAI_SYSTEM) optional, |call| looked_up(node, res, call);

        // ---- process ----
        fn fork() -> pid_t: process - deep,
            lazy(-1) needed, |call| forked(call);
        fn exit(status: c_int) -> !: process - -,
            noreturn(exit_group) needed, |real: F| process_exit(real, status);
        fn _exit(status: c_int) -> !: process - -,
            noreturn(exit_group) needed, |real: F| process_exit_now(real, status);
        fn _Exit(status: c_int) -> !: process - -,
            via(_exit) needed, |real: F| process_exit_now(real, status);

        // ---- send: bytes the host writes ----
        fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t: send bytes deep,
            syscall(libc::SYS_sendto, fd, buf, len, flags, NO_ADDR, 0) needed,
            |call| sent(fd, buf, call);
        fn sendto(
            fd: c_int, buf: *const c_void, len: size_t, flags: c_int, addr: *const sockaddr,
            alen: socklen_t,
        ) -> ssize_t: send bytes deep,
            syscall(libc::SYS_sendto, fd, buf, len, flags, addr, alen) needed,
            |call| sent(fd, buf, call);
        fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t: send bytes deep,
            syscall(libc::SYS_sendmsg, fd, msg, flags) needed, |call| sent_msg(fd, msg, call);
        fn write(fd: c_int, buf: *const c_void, len: size_t) -> ssize_t: send bytes deep,
            syscall(libc::SYS_write, fd, buf, len) needed, |call| sent(fd, buf, call);
        fn writev(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t: send bytes deep,
            syscall(libc::SYS_writev, fd, iov, n) needed, |call| sent_iov(fd, iov, n, call);

        // ---- receive: bytes the host reads ----
        fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t: receive bytes deep,
            syscall(libc::SYS_recvfrom, fd, buf, len, flags, NO_ADDR_MUT, NO_LEN) needed,
            |call| received(fd, buf, len, flags, call);
        fn recvfrom(
            fd: c_int, buf: *mut c_void, len: size_t, flags: c_int, addr: *mut sockaddr,
            alen: *mut socklen_t,
        ) -> ssize_t: receive bytes deep,
            syscall(libc::SYS_recvfrom, fd, buf, len, flags, addr, alen) needed,
            |call| received(fd, buf, len, flags, call);
        fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t: receive bytes deep,
            syscall(libc::SYS_recvmsg, fd, msg, flags) needed,
            |call| received_msg(fd, msg, flags, call);
        fn read(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t: receive bytes deep,
            syscall(libc::SYS_read, fd, buf, len) needed, |call| received(fd, buf, len, 0, call);
        fn readv(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t: receive bytes deep,
            syscall(libc::SYS_readv, fd, iov, n) needed, |call| received_iov(fd, iov, n, call);
        // The _chk variants: the real one checks the buffer's size (their fallbacks, which run
        // only before the constructor, do not).
        fn __read_chk(fd: c_int, buf: *mut c_void, len: size_t, buflen: size_t) -> ssize_t: receive bytes deep,
            syscall(libc::SYS_read, fd, buf, len) needed, |call| received(fd, buf, len, 0, call);
        fn __recv_chk(
            fd: c_int, buf: *mut c_void, len: size_t, buflen: size_t, flags: c_int,
        ) -> ssize_t: receive bytes deep,
            syscall(libc::SYS_recvfrom, fd, buf, len, flags, NO_ADDR_MUT, NO_LEN) needed,
            |call| received(fd, buf, len, flags, call);
        fn __recvfrom_chk(
            fd: c_int, buf: *mut c_void, len: size_t, buflen: size_t, flags: c_int,
            addr: *mut sockaddr, alen: *mut socklen_t,
        ) -> ssize_t: receive bytes deep,
            syscall(libc::SYS_recvfrom, fd, buf, len, flags, addr, alen) needed,
            |call| received(fd, buf, len, flags, call);

        // ---- unseen: bytes that move where no hook sees them (in the kernel, from a file or
        // pipe, in batches): the connection can no longer be followed, and is dropped ----
        fn sendfile(out_fd: c_int, in_fd: c_int, offset: *mut libc::off_t, count: size_t) -> ssize_t: unseen bytes -,
            syscall(libc::SYS_sendfile, out_fd, in_fd, offset, count) needed,
            |call| sent_from_file(out_fd, call);
        fn splice(
            fd_in: c_int, off_in: *mut libc::loff_t, fd_out: c_int, off_out: *mut libc::loff_t, len: size_t,
            flags: c_uint,
        ) -> ssize_t: unseen bytes -,
            syscall(libc::SYS_splice, fd_in, off_in, fd_out, off_out, len, flags) needed,
            |call| spliced(fd_in, fd_out, call);
        fn sendmmsg(fd: c_int, msgs: *mut libc::mmsghdr, count: c_uint, flags: c_int) -> c_int: unseen bytes -,
            syscall(libc::SYS_sendmmsg, fd, msgs, count, flags) needed,
            |call| moved_unseen(fd, "sendmmsg", call);
        fn recvmmsg(
            fd: c_int, msgs: *mut libc::mmsghdr, count: c_uint, flags: c_int, timeout: *mut libc::timespec,
        ) -> c_int: unseen bytes -,
            syscall(libc::SYS_recvmmsg, fd, msgs, count, flags, timeout) needed,
            |call| received_unseen(fd, flags, call);

        // ---- stdio: streams on the Runtime API socket (and stdout and stderr's flushes) ----
        fn fdopen(fd: c_int, mode: *const c_char) -> *mut libc::FILE: stdio - -,
            lazy(std::ptr::null_mut()) needed, |call| opened_stream(fd, call);
        fn fclose(stream: *mut libc::FILE) -> c_int: stdio - -,
            lazy(libc::EOF) needed, |call| closed_stream(stream, call);
        fn fflush(stream: *mut libc::FILE) -> c_int: stdio - -,
            lazy(libc::EOF) needed, |call| flushed(stream, call);
        fn fflush_unlocked(stream: *mut libc::FILE) -> c_int: stdio - -,
            lazy(libc::EOF) optional, |call| flushed(stream, call);
        fn fputs(text: *const c_char, stream: *mut libc::FILE) -> c_int: stdio bytes -,
            lazy(libc::EOF) needed, |real: F| put_string(text, stream, real);
        fn fputs_unlocked(text: *const c_char, stream: *mut libc::FILE) -> c_int: stdio bytes -,
            lazy(libc::EOF) optional, |real: F| put_string(text, stream, real);
        fn fputc(c: c_int, stream: *mut libc::FILE) -> c_int: stdio bytes -,
            lazy(libc::EOF) needed, |real: F| put_byte(c, stream, real);
        fn putc(c: c_int, stream: *mut libc::FILE) -> c_int: stdio bytes -,
            lazy(libc::EOF) needed, |real: F| put_byte(c, stream, real);
        fn fwrite(data: *const c_void, size: size_t, n: size_t, stream: *mut libc::FILE) -> size_t: stdio bytes -,
            lazy(0) needed, |real: F| put_items(data, size, n, stream, real);
        fn fwrite_unlocked(
            data: *const c_void, size: size_t, n: size_t, stream: *mut libc::FILE,
        ) -> size_t: stdio bytes -,
            lazy(0) optional, |real: F| put_items(data, size, n, stream, real);
        c fn fprintf(stream: *mut libc::FILE, format: *const c_char, ...) -> c_int: stdio bytes -;
        c fn vfprintf(stream: *mut libc::FILE, format: *const c_char, ap: va_list) -> c_int: stdio bytes -;
        c fn __fprintf_chk(stream: *mut libc::FILE, flag: c_int, format: *const c_char, ...) -> c_int: stdio bytes -;
        c fn __vfprintf_chk(
            stream: *mut libc::FILE, flag: c_int, format: *const c_char, ap: va_list,
        ) -> c_int: stdio bytes -;
        fn fgets(buf: *mut c_char, n: c_int, stream: *mut libc::FILE) -> *mut c_char: stream_in bytes -,
            lazy(std::ptr::null_mut()) needed, |call| read_line(stream, buf, call);
        fn fgets_unlocked(buf: *mut c_char, n: c_int, stream: *mut libc::FILE) -> *mut c_char: stream_in bytes -,
            lazy(std::ptr::null_mut()) optional, |call| read_line(stream, buf, call);
        fn __fgets_chk(
            buf: *mut c_char, size: size_t, n: c_int, stream: *mut libc::FILE,
        ) -> *mut c_char: stream_in bytes -,
            lazy(std::ptr::null_mut()) optional, |call| read_line(stream, buf, call);
        fn __fgets_unlocked_chk(
            buf: *mut c_char, size: size_t, n: c_int, stream: *mut libc::FILE,
        ) -> *mut c_char: stream_in bytes -,
            lazy(std::ptr::null_mut()) optional, |call| read_line(stream, buf, call);
        fn fgetc(stream: *mut libc::FILE) -> c_int: stream_in bytes -,
            lazy(libc::EOF) needed, |real: F| get_byte(stream, real);
        fn getc(stream: *mut libc::FILE) -> c_int: stream_in bytes -,
            lazy(libc::EOF) needed, |real: F| get_byte(stream, real);
        fn fread(data: *mut c_void, size: size_t, n: size_t, stream: *mut libc::FILE) -> size_t: stream_in bytes -,
            lazy(0) needed, |call| read_items(stream, data, size, call);
        fn fread_unlocked(
            data: *mut c_void, size: size_t, n: size_t, stream: *mut libc::FILE,
        ) -> size_t: stream_in bytes -,
            lazy(0) optional, |call| read_items(stream, data, size, call);
        fn __fread_chk(
            data: *mut c_void, room: size_t, size: size_t, n: size_t, stream: *mut libc::FILE,
        ) -> size_t: stream_in bytes -,
            lazy(0) optional, |call| read_items(stream, data, size, call);
        fn __fread_unlocked_chk(
            data: *mut c_void, room: size_t, size: size_t, n: size_t, stream: *mut libc::FILE,
        ) -> size_t: stream_in bytes -,
            lazy(0) optional, |call| read_items(stream, data, size, call);
        fn getdelim(
            line: *mut *mut c_char, cap: *mut size_t, delim: c_int, stream: *mut libc::FILE,
        ) -> ssize_t: stream_in bytes -,
            lazy(-1) needed, |real: F| get_delimited(line, cap, delim, stream, real);
        // What glibc's headers make of `getline` when optimising.
        fn __getdelim(
            line: *mut *mut c_char, cap: *mut size_t, delim: c_int, stream: *mut libc::FILE,
        ) -> ssize_t: stream_in bytes -,
            lazy(-1) optional, |real: F| get_delimited(line, cap, delim, stream, real);
        // `getdelim` up to a newline (glibc's own calls it inside libc, out of our sight).
        fn getline(line: *mut *mut c_char, cap: *mut size_t, stream: *mut libc::FILE) -> ssize_t: stream_in bytes -,
            via(getdelim) needed, |real: F| get_delimited(line, cap, c_int::from(b'\n'), stream, real);

        // ---- signal: dispositions pass through; only a read-back of the crash handler is
        // translated (signals.rs) ----
        fn sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int: signal - deep,
            lazy(-1) needed, |real: F| signals::sigaction(real, sig, act, old);
        // glibc exports `sigaction` under this name too.
        fn __sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int: signal - deep,
            lazy(-1) optional, |real: F| signals::sigaction(real, sig, act, old);
        // glibc installs these through its own internal `sigaction`, out of our sight.
        fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t: signal - deep,
            lazy(libc::SIG_ERR) needed, |real: F| signals::signal_like(real, sig, handler);
        fn bsd_signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t: signal - deep,
            lazy(libc::SIG_ERR) optional, |real: F| signals::signal_like(real, sig, handler);
        fn ssignal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t: signal - deep,
            lazy(libc::SIG_ERR) optional, |real: F| signals::signal_like(real, sig, handler);
        fn sysv_signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t: signal - deep,
            lazy(libc::SIG_ERR) optional, |real: F| signals::signal_like(real, sig, handler);
        // What ISO C's `signal` is in glibc.
        fn __sysv_signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t: signal - deep,
            lazy(libc::SIG_ERR) optional, |real: F| signals::signal_like(real, sig, handler);
        fn sigset(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t: signal - deep,
            lazy(libc::SIG_ERR) optional, |real: F| signals::signal_like(real, sig, handler);

        // ---- loader: jumps to the real ones, for RTLD_DEEPBIND (deepbind.rs) ----
        c fn dlopen(file: *const c_char, mode: c_int) -> *mut c_void: loader - deep;
        c fn dlsym(handle: *mut c_void, name: *const c_char) -> *mut c_void: loader - deep;
        }
    };

    // The rows, one at a time, into `[$done…]`.
    (@rows $consumer:ident [$($done:tt)*]) => {
        $consumer! { $($done)* }
    };
    (@rows $consumer:ident [$($done:tt)*]
        fn $name:ident ($($args:tt)*) -> $ret:ty : $family:ident $bytes:tt $deep:tt,
        $kind:ident $kind_args:tt $needed:ident $(($since:literal))?,
        |$binder:ident $(: $binder_type:ident)?| $observer:expr;
        $($rest:tt)*
    ) => {
        $crate::table::hook_table! { @rows $consumer [
            $($done)*
            [rust $name [$($args)*] [$ret] $family $bytes $deep [$kind $kind_args]
                [$needed ($($since)?)] [$binder $($binder_type)?] [$observer]]
        ] $($rest)* }
    };
    (@rows $consumer:ident [$($done:tt)*]
        c fn $name:ident ($($args:tt)*) -> $ret:ty : $family:ident $bytes:tt $deep:tt;
        $($rest:tt)*
    ) => {
        $crate::table::hook_table! { @rows $consumer [
            $($done)*
            [c $name [$($args)*] [$ret] $family $bytes $deep]
        ] $($rest)* }
    };
}

pub(crate) use hook_table;
