//! What each thread of the process was blocked in when an invoke timed out: the system call
//! the kernel shows in `/proc/self/task/<tid>/syscall` (read by the library's watchdog, no
//! hook involved), named, with the fd it waits on and, where that fd is a connection the
//! process's ledger follows, the remote name and how long its call has waited.
//!
//! The record's `blockedIn` property: one object per thread in a system call other than a
//! futex wait, at most [`SHOWN`], then `{"futex": N}` for the threads parked on a lock or a
//! condition (a JVM has dozens) and `{"more": N}` for those left out.

use crate::metrics::Number;
use crate::text::Out;

/// The name of the timeout record's property.
pub const PROPERTY: &str = "blockedIn";

/// Threads listed at most.
pub const SHOWN: usize = 16;

/// A thread's state as `/proc/<pid>/task/<tid>/syscall` gives it: in system call `nr` with
/// `args`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InSyscall {
    pub nr: libc::c_long,
    pub args: [u64; 6],
}

/// Parses the file's text: `nr arg0 … arg5 sp pc` (the arguments in hex); `None` for a thread
/// that is running or blocked outside a system call (`running`, `-1 sp pc`), or text that is
/// not that.
pub fn parse(text: &[u8]) -> Option<InSyscall> {
    let mut words = text
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let nr = words.next()?;
    if !nr.iter().all(u8::is_ascii_digit) || nr.is_empty() || nr.len() > 6 {
        return None;
    }
    let nr = nr.iter().fold(0, |n: libc::c_long, d| {
        n * 10 + libc::c_long::from(d - b'0')
    });
    let mut args = [0u64; 6];
    for a in &mut args {
        *a = hex(words.next()?)?;
    }
    Some(InSyscall { nr, args })
}

fn hex(word: &[u8]) -> Option<u64> {
    let digits = word.strip_prefix(b"0x")?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return None,
        };
        Some(n << 4 | u64::from(v))
    })
}

/// Where a system call's fd is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdAt {
    /// It has none (or none worth naming: a futex, a sleep).
    None,
    /// Its first argument.
    First,
    /// Its first argument points to an array of `struct pollfd` of its second argument's
    /// length: the fd is the first entry's, where there is one entry.
    Poll,
}

/// The names of the system calls a thread waits in, with where their fd is (the common ones;
/// others are named by number).
pub fn describe(nr: libc::c_long) -> Option<(&'static str, FdAt)> {
    use FdAt::{First, None as No, Poll};
    const KNOWN: &[(libc::c_long, &str, FdAt)] = &[
        (libc::SYS_read, "read", First),
        (libc::SYS_write, "write", First),
        (libc::SYS_readv, "readv", First),
        (libc::SYS_writev, "writev", First),
        (libc::SYS_pread64, "pread64", First),
        (libc::SYS_pwrite64, "pwrite64", First),
        (libc::SYS_recvfrom, "recvfrom", First),
        (libc::SYS_sendto, "sendto", First),
        (libc::SYS_recvmsg, "recvmsg", First),
        (libc::SYS_sendmsg, "sendmsg", First),
        (libc::SYS_recvmmsg, "recvmmsg", First),
        (libc::SYS_sendmmsg, "sendmmsg", First),
        (libc::SYS_connect, "connect", First),
        (libc::SYS_accept, "accept", First),
        (libc::SYS_accept4, "accept4", First),
        (libc::SYS_sendfile, "sendfile", First),
        (libc::SYS_ppoll, "ppoll", Poll),
        (libc::SYS_pselect6, "pselect6", No),
        (libc::SYS_epoll_pwait, "epoll_pwait", First),
        (libc::SYS_epoll_pwait2, "epoll_pwait2", First),
        (libc::SYS_io_uring_enter, "io_uring_enter", First),
        (libc::SYS_fsync, "fsync", First),
        (libc::SYS_fdatasync, "fdatasync", First),
        (libc::SYS_flock, "flock", First),
        (libc::SYS_futex, "futex", No),
        (libc::SYS_nanosleep, "nanosleep", No),
        (libc::SYS_clock_nanosleep, "clock_nanosleep", No),
        (libc::SYS_wait4, "wait4", No),
        (libc::SYS_waitid, "waitid", No),
        (libc::SYS_rt_sigsuspend, "rt_sigsuspend", No),
        (libc::SYS_rt_sigtimedwait, "rt_sigtimedwait", No),
        (libc::SYS_openat, "openat", No),
        #[cfg(target_arch = "x86_64")]
        (libc::SYS_poll, "poll", Poll),
        #[cfg(target_arch = "x86_64")]
        (libc::SYS_select, "select", No),
        #[cfg(target_arch = "x86_64")]
        (libc::SYS_epoll_wait, "epoll_wait", First),
        #[cfg(target_arch = "x86_64")]
        (libc::SYS_pause, "pause", No),
    ];
    KNOWN
        .iter()
        .find(|(n, _, _)| *n == nr)
        .map(|(_, name, at)| (*name, *at))
}

/// Whether `nr` is a futex wait (counted, not listed).
pub fn is_futex(nr: libc::c_long) -> bool {
    nr == libc::SYS_futex
}

/// What is known of the fd a thread waits on.
#[derive(Clone, Copy, Debug, Default)]
pub struct FdInfo<'a> {
    /// The remote name of a followed connection.
    pub name: Option<&'a str>,
    /// How long its call under way (or its connect) has waited.
    pub age_ns: Option<u64>,
    /// It is a connection to the Runtime API.
    pub runtime_api: bool,
}

/// Renders [`PROPERTY`]'s value from its parts: call [`Blocked::thread`] for each thread in a
/// system call, then [`Blocked::finish`].
pub struct Blocked {
    shown: usize,
    futex: u32,
    more: u32,
}

impl Default for Blocked {
    fn default() -> Self {
        Self::new()
    }
}

impl Blocked {
    pub const fn new() -> Blocked {
        Blocked {
            shown: 0,
            futex: 0,
            more: 0,
        }
    }

    /// Thread `tid` is in `call`; `fd` the fd it waits on (where known) and what is known of
    /// it.
    pub fn thread(&mut self, out: &mut Out, tid: u32, call: &InSyscall, fd: Option<(i32, FdInfo)>) {
        if is_futex(call.nr) {
            self.futex = self.futex.saturating_add(1);
            return;
        }
        if self.shown >= SHOWN {
            self.more = self.more.saturating_add(1);
            return;
        }
        out.byte(if self.shown == 0 { b'[' } else { b',' });
        self.shown += 1;
        out.bytes(b"{\"thread\":");
        out.decimal(u64::from(tid));
        out.bytes(b",\"syscall\":\"");
        match describe(call.nr) {
            Some((name, _)) => out.str(name),
            None => out.decimal(call.nr.unsigned_abs()),
        }
        out.byte(b'"');
        let Some((fd, info)) = fd else {
            out.byte(b'}');
            return;
        };
        out.bytes(b",\"fd\":");
        out.decimal(u64::from(fd.unsigned_abs()));
        if let Some(name) = info.name {
            out.bytes(b",\"name\":\"");
            let _ = crate::json::escape_json(name.as_bytes(), |piece| {
                out.bytes(piece);
                Some(())
            });
            out.byte(b'"');
        }
        if let Some(age) = info.age_ns {
            out.bytes(b",\"ageMs\":");
            Number::Scaled(age / 1000, 3).write_to(out);
        }
        if info.runtime_api {
            out.bytes(b",\"runtimeApi\":true");
        }
        out.byte(b'}');
    }

    /// Closes the list; whether there was anything to say.
    pub fn finish(self, out: &mut Out) -> bool {
        let mut first = self.shown == 0;
        for (key, n) in [("futex", self.futex), ("more", self.more)] {
            if n == 0 {
                continue;
            }
            out.byte(if first { b'[' } else { b',' });
            first = false;
            out.bytes(b"{\"");
            out.str(key);
            out.bytes(b"\":");
            out.decimal(u64::from(n));
            out.byte(b'}');
        }
        if !first {
            out.byte(b']');
        }
        !first
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn parses_what_the_kernel_writes() {
        let read = format!(
            "{} 0x7 0x7ffd5c0b8e20 0x2000 0x0 0x0 0x0 0x7ffd5c0b8d98 0x7f0e1c2a4a5d\n",
            libc::SYS_read
        );
        let c = parse(read.as_bytes()).unwrap();
        assert_eq!(c.nr, libc::SYS_read);
        assert_eq!(c.args[0], 7);
        assert_eq!(c.args[2], 0x2000);
        assert_eq!(describe(c.nr), Some(("read", FdAt::First)));
        assert_eq!(parse(b"running\n"), None);
        assert_eq!(parse(b"-1 0x7ffd5c0b8d98 0x7f0e1c2a4a5d\n"), None);
        assert_eq!(parse(b"0 0x1 0x2\n"), None, "cut short");
        assert_eq!(parse(b"0 0x1 0x2 0xg 0x0 0x0 0x0 0x0 0x0\n"), None);
        assert_eq!(parse(b""), None);
    }

    #[test]
    fn renders_threads_futex_waits_and_what_is_left_out() {
        let mut buf = [0u8; 8192];
        let mut out = Out::new(&mut buf);
        let mut b = Blocked::new();
        let call = |nr: libc::c_long, fd: u64| InSyscall {
            nr,
            args: [fd, 0, 0, 0, 0, 0],
        };
        let remote = FdInfo {
            name: Some("db.example.com"),
            age_ns: Some(812_345_678),
            runtime_api: false,
        };
        b.thread(
            &mut out,
            10,
            &call(libc::SYS_recvfrom, 7),
            Some((7, remote)),
        );
        b.thread(&mut out, 11, &call(libc::SYS_futex, 0), None);
        let api = FdInfo {
            runtime_api: true,
            ..FdInfo::default()
        };
        b.thread(&mut out, 12, &call(libc::SYS_read, 3), Some((3, api)));
        b.thread(&mut out, 13, &call(9999, 0), None);
        for tid in 0..SHOWN as u32 {
            b.thread(&mut out, 100 + tid, &call(libc::SYS_nanosleep, 0), None);
        }
        assert!(b.finish(&mut out));
        let v: serde_json::Value = serde_json::from_slice(out.written()).unwrap();
        let v = v.as_array().unwrap();
        assert_eq!(
            v[0],
            serde_json::json!({"thread": 10, "syscall": "recvfrom", "fd": 7,
                "name": "db.example.com", "ageMs": 812.345})
        );
        assert_eq!(
            v[1],
            serde_json::json!({"thread": 12, "syscall": "read", "fd": 3, "runtimeApi": true})
        );
        assert_eq!(v[2], serde_json::json!({"thread": 13, "syscall": "9999"}));
        assert_eq!(v.len(), SHOWN + 2);
        assert_eq!(v[SHOWN], serde_json::json!({"futex": 1}));
        assert_eq!(v[SHOWN + 1], serde_json::json!({"more": 3}));
        // Nothing to say: nothing written.
        let mut buf = [0u8; 16];
        let mut out = Out::new(&mut buf);
        assert!(!Blocked::new().finish(&mut out));
        assert!(out.written().is_empty());
    }
}
