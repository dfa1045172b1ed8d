//! The library's own system calls, made directly (`syscall` instruction), not through libc.
//!
//! Three reasons, each a way the host could otherwise notice the library:
//! - **errno** is never touched: a raw call returns `-errno` instead of setting it.
//! - **No cancellation point.** libc's `write`, `poll`, `open`… are cancellation points: a
//!   host thread cancelled (`pthread_cancel`) while inside one of ours would unwind through
//!   the library's frames, which Rust turns into an abort. A raw call is never one.
//! - **No interposer.** The call reaches the kernel, not a hook of ours (recursion) nor another
//!   preloaded library (a profiler, libjsig) that would see calls its host never made.
//!
//! Everything here is async-signal-safe and allocation-free. Results are `Ok(value)` or
//! `Err(errno)`.

use libc::{c_int, c_long};

/// A raw system call's result: the value, or the errno it failed with.
pub type Res = Result<usize, c_int>;

fn result(rc: isize) -> Res {
    if (-4095..0).contains(&rc) {
        Err(-rc as c_int)
    } else {
        Ok(rc as usize)
    }
}

#[cfg(target_arch = "x86_64")]
mod arch {
    /// One system call with up to six arguments.
    ///
    /// # Safety
    /// The arguments must be valid for system call `nr` (pointers to memory the kernel may
    /// read or write as that call does).
    #[inline(always)]
    pub unsafe fn call(nr: i64, a: [usize; 6]) -> isize {
        let rc: isize;
        // SAFETY: the x86_64 Linux system call convention; rcx and r11 are clobbered by the
        // instruction; memory may be read or written by the kernel as the call says.
        unsafe {
            core::arch::asm!(
                "syscall",
                inlateout("rax") nr as isize => rc,
                in("rdi") a[0],
                in("rsi") a[1],
                in("rdx") a[2],
                in("r10") a[3],
                in("r8") a[4],
                in("r9") a[5],
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        rc
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    /// One system call with up to six arguments.
    ///
    /// # Safety
    /// The arguments must be valid for system call `nr` (pointers to memory the kernel may
    /// read or write as that call does).
    #[inline(always)]
    pub unsafe fn call(nr: i64, a: [usize; 6]) -> isize {
        let rc: isize;
        // SAFETY: the aarch64 Linux system call convention (number in x8, result in x0).
        unsafe {
            core::arch::asm!(
                "svc 0",
                in("x8") nr,
                inlateout("x0") a[0] as isize => rc,
                in("x1") a[1],
                in("x2") a[2],
                in("x3") a[3],
                in("x4") a[4],
                in("x5") a[5],
                options(nostack),
            );
        }
        rc
    }
}

/// # Safety
/// As [`arch::call`].
#[inline(always)]
unsafe fn call(nr: c_long, a: [usize; 6]) -> Res {
    // SAFETY: as the caller guarantees.
    result(unsafe { arch::call(nr, a) })
}

/// A variable of the environment, read without allocating (the value is the environment's,
/// read at once).
pub fn getenv(name: &std::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: getenv with a NUL-terminated name.
    let raw = unsafe { libc::getenv(name.as_ptr()) };
    // SAFETY: getenv returned a NUL-terminated string of the environment.
    (!raw.is_null()).then(|| unsafe { std::ffi::CStr::from_ptr(raw) }.to_bytes())
}

pub fn write(fd: c_int, bytes: &[u8]) -> Res {
    // SAFETY: the kernel reads at most `bytes.len()` bytes of the live slice.
    unsafe {
        call(
            libc::SYS_write,
            [fd as usize, bytes.as_ptr() as usize, bytes.len(), 0, 0, 0],
        )
    }
}

pub fn writev(fd: c_int, iov: &[libc::iovec]) -> Res {
    // SAFETY: the iovecs are live and point to live buffers the kernel only reads.
    unsafe {
        call(
            libc::SYS_writev,
            [fd as usize, iov.as_ptr() as usize, iov.len(), 0, 0, 0],
        )
    }
}

pub fn read(fd: c_int, buf: &mut [u8]) -> Res {
    // SAFETY: the kernel writes at most `buf.len()` bytes into the live buffer.
    unsafe {
        call(
            libc::SYS_read,
            [fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0],
        )
    }
}

pub fn pread(fd: c_int, buf: &mut [u8], offset: u64) -> Res {
    // SAFETY: as `read`.
    unsafe {
        call(
            libc::SYS_pread64,
            [
                fd as usize,
                buf.as_mut_ptr() as usize,
                buf.len(),
                offset as usize,
                0,
                0,
            ],
        )
    }
}

/// `openat(AT_FDCWD, path, flags, mode)`; `path` must end with a NUL.
pub fn open(path: &[u8], flags: c_int, mode: libc::mode_t) -> Res {
    if path.last() != Some(&0) {
        return Err(libc::EINVAL);
    }
    // SAFETY: a NUL-terminated path the kernel only reads.
    unsafe {
        call(
            libc::SYS_openat,
            [
                libc::AT_FDCWD as usize,
                path.as_ptr() as usize,
                flags as usize,
                mode as usize,
                0,
                0,
            ],
        )
    }
}

/// A new fd for what process `pid`'s fd `target` is (the same open file description:
/// `pidfd_open` and `pidfd_getfd`, close-on-exec). Needs the right to trace `pid`; fails where
/// that is refused or the kernel is older than 5.6.
pub fn fd_of_process(pid: u32, target: c_int) -> Res {
    // SAFETY: pidfd_open takes two numbers and makes an fd, closed below.
    let pidfd = unsafe { call(libc::SYS_pidfd_open, [pid as usize, 0, 0, 0, 0, 0]) }? as c_int;
    // SAFETY: pidfd_getfd takes numbers and makes an fd (close-on-exec), which the caller owns.
    let fd = unsafe {
        call(
            libc::SYS_pidfd_getfd,
            [pidfd as usize, target as usize, 0, 0, 0, 0],
        )
    };
    let _ = close(pidfd);
    fd
}

pub fn close(fd: c_int) -> Res {
    // SAFETY: closing a number has no effect beyond it.
    unsafe { call(libc::SYS_close, [fd as usize, 0, 0, 0, 0, 0]) }
}

/// A private anonymous mapping of `len` bytes, readable and writable: its address.
pub fn map_anonymous(len: usize) -> Res {
    let prot = (libc::PROT_READ | libc::PROT_WRITE) as usize;
    let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as usize;
    // SAFETY: a new mapping at an address the kernel picks; nothing of ours is touched.
    unsafe { call(libc::SYS_mmap, [0, len, prot, flags, usize::MAX, 0]) }
}

/// Makes `len` bytes at `base`, of a mapping this library made, inaccessible (a guard page).
pub fn protect_none(base: usize, len: usize) -> Res {
    // SAFETY: the caller's own mapping, which holds nothing yet.
    unsafe {
        call(
            libc::SYS_mprotect,
            [base, len, libc::PROT_NONE as usize, 0, 0, 0],
        )
    }
}

/// Names the calling thread (`/proc/self/task/<tid>/comm`); `name` is NUL-terminated and at
/// most 16 bytes with the NUL.
pub fn name_this_thread(name: &std::ffi::CStr) -> Res {
    if name.to_bytes_with_nul().len() > 16 {
        return Err(libc::EINVAL);
    }
    // SAFETY: the kernel reads the NUL-terminated name (at most 16 bytes).
    unsafe {
        call(
            libc::SYS_prctl,
            [
                libc::PR_SET_NAME as usize,
                name.as_ptr() as usize,
                0,
                0,
                0,
                0,
            ],
        )
    }
}

/// The calling thread's real, effective and saved user ids (`uid`) or group ids.
pub fn resids(uid: bool) -> Result<[u32; 3], c_int> {
    let mut id = [0u32; 3];
    let p = id.as_mut_ptr() as usize;
    let nr = if uid {
        libc::SYS_getresuid
    } else {
        libc::SYS_getresgid
    };
    // SAFETY: the kernel writes three ids into the array.
    unsafe { call(nr, [p, p + 4, p + 8, 0, 0, 0]) }?;
    Ok(id)
}

/// Whether the calling thread has `CAP_SETUID` or `CAP_SETGID` in its permitted set: the
/// capabilities that let it change its user or group ids (others, such as reading any file,
/// do not).
pub fn may_set_ids_by_capability() -> Result<bool, c_int> {
    // Version 3 (64-bit sets): two structs of effective, permitted and inheritable words.
    let header: [u32; 2] = [0x2008_0522, 0];
    let mut data = [0u32; 6];
    // SAFETY: the kernel reads the header and writes the two structs.
    unsafe {
        call(
            libc::SYS_capget,
            [
                header.as_ptr() as usize,
                data.as_mut_ptr() as usize,
                0,
                0,
                0,
                0,
            ],
        )
    }?;
    // CAP_SETGID is 6, CAP_SETUID 7: both in the permitted set's low word.
    const SET_IDS: u32 = 1 << 6 | 1 << 7;
    Ok(data[1] & SET_IDS != 0)
}

/// Unmaps `len` bytes at `base`, a mapping this library made and no longer uses.
pub fn unmap(base: *mut u8, len: usize) {
    // SAFETY: the caller's own mapping, which nothing refers to any more.
    let _ = unsafe { call(libc::SYS_munmap, [base as usize, len, 0, 0, 0, 0]) };
}

pub fn fstat(fd: c_int) -> Result<libc::stat, c_int> {
    // SAFETY: an all-zero stat is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes one struct stat into ours.
    unsafe {
        call(
            libc::SYS_fstat,
            [
                fd as usize,
                (&mut st as *mut libc::stat) as usize,
                0,
                0,
                0,
                0,
            ],
        )
    }?;
    Ok(st)
}

/// The type of socket `fd` (`SOCK_STREAM`, `SOCK_DGRAM`, ...): `getsockopt(SO_TYPE)`, past
/// the host's hooks and without touching errno.
pub fn socket_type(fd: c_int) -> Result<c_int, c_int> {
    let mut value: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `value` and the length into `len`.
    unsafe {
        call(
            libc::SYS_getsockopt,
            [
                fd as usize,
                libc::SOL_SOCKET as usize,
                libc::SO_TYPE as usize,
                (&mut value as *mut c_int) as usize,
                (&mut len as *mut libc::socklen_t) as usize,
                0,
            ],
        )
    }?;
    Ok(value)
}

/// A file of the library's state, mapped shared.
pub struct StateFile {
    /// Where its bytes start (page aligned), mapped for the rest of the process.
    pub base: *mut u8,
    /// Its device and inode (the mapping keeps the inode: no other file can have it).
    pub id: (u64, u64),
}

/// Maps the state file at `path` (NUL-terminated; created, mode 0600, when absent), `size`
/// bytes, keeping no fd. Every byte is allocated on disk before it is mapped, so a store
/// through the mapping can never meet a full file system (SIGBUS). Refused: a symbolic link,
/// another user's file, not a regular file, a file with another name (a hard link), a file of
/// another size. An error says why. Raw system calls and libc's `mmap`: async-signal-safe.
pub fn map_state_file(path: &[u8], size: usize) -> Result<StateFile, &'static str> {
    map_state_file_with(path, size, libc::O_CREAT)
}

/// [`map_state_file`] of a file that exists already (none is made).
pub fn map_existing_state_file(path: &[u8], size: usize) -> Result<StateFile, &'static str> {
    map_state_file_with(path, size, 0)
}

fn map_state_file_with(path: &[u8], size: usize, create: c_int) -> Result<StateFile, &'static str> {
    let fd = open(
        path,
        libc::O_RDWR | create | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        0o600,
    )
    .map_err(|e| match e {
        libc::ELOOP => "its path is a symbolic link",
        libc::ENOSPC | libc::EDQUOT => "no space left",
        libc::ENOENT => "it does not exist",
        _ => "it cannot be opened",
    })? as c_int;
    let mapped = (|| {
        let st = fstat(fd).map_err(|_| "it cannot be opened")?;
        // SAFETY: geteuid has no preconditions.
        if st.st_uid != unsafe { libc::geteuid() } {
            return Err("another user owns it");
        }
        if (st.st_mode & libc::S_IFMT) != libc::S_IFREG {
            return Err("it is not a regular file");
        }
        if st.st_nlink != 1 {
            return Err("it has another name (a hard link)");
        }
        if st.st_size != 0 && st.st_size != size as libc::off_t {
            return Err("it is not lambda-meter's");
        }
        // Allocated on disk now (a file that exists already may be sparse too: it is not when
        // its blocks cover it, as where the environment's first process allocated it).
        let allocated = st.st_size != 0 && (st.st_blocks as u64).saturating_mul(512) >= size as u64;
        match if allocated {
            Ok(0)
        } else {
            fallocate(fd, 0, size as u64)
        } {
            Ok(_) => {}
            Err(libc::ENOSPC | libc::EDQUOT) => {
                if st.st_size == 0 {
                    let _ = ftruncate(fd, 0);
                }
                return Err("no space left");
            }
            Err(_) => return Err("its file system cannot allocate it"),
        }
        // SAFETY: a fresh shared mapping of the whole file; the kernel picks the address.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err("it cannot be mapped");
        }
        // Its pages are read one at a time, where a slot is used: no read-around, which would
        // bring the whole file (allocated but never written: zero pages) into the page cache,
        // where fault-around then maps it (the journal: 256 KiB resident instead of 4).
        // SAFETY: advice on the mapping just made; it changes no content.
        unsafe { libc::madvise(base, size, libc::MADV_RANDOM) };
        Ok(StateFile {
            base: base.cast(),
            id: (st.st_dev, st.st_ino),
        })
    })();
    let _ = close(fd);
    mapped
}

/// Which file a path names now, and its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    pub ino: u64,
    /// When the file was made (ns since the epoch), where the file system says: a new file
    /// that got a removed one's inode number is told apart by it.
    pub born_ns: Option<u64>,
    pub size: u64,
}

impl FileId {
    /// Whether `self` and `other` are the same file (sizes aside).
    pub fn same_file(&self, other: &FileId) -> bool {
        self.ino == other.ino
            && (self.born_ns.is_none() || other.born_ns.is_none() || self.born_ns == other.born_ns)
    }
}

/// A directory as one `statx` saw it: which one, and when its entries last changed (a file
/// made, removed or renamed in it changes both times).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirLook {
    pub ino: u64,
    pub mtime_ns: u64,
    pub ctime_ns: u64,
}

/// One `statx` of a NUL-terminated path for `mask`: `Err(ENOSYS)` where the kernel has none.
fn statx(path: &[u8], mask: u32) -> Result<libc::statx, c_int> {
    if path.last() != Some(&0) {
        return Err(libc::EINVAL);
    }
    // SAFETY: an all-zero statx is a valid value of this plain C struct.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path the kernel reads; one struct statx written into ours.
    unsafe {
        call(
            libc::SYS_statx,
            [
                libc::AT_FDCWD as usize,
                path.as_ptr() as usize,
                0,
                mask as usize,
                (&mut stx as *mut libc::statx) as usize,
                0,
            ],
        )
    }?;
    Ok(stx)
}

/// `readlinkat(AT_FDCWD, path, buf)`: the link's target (cut to `buf`) at a NUL-terminated
/// path, its length. One system call and no fd.
pub fn readlink(path: &[u8], buf: &mut [u8]) -> Res {
    if path.last() != Some(&0) {
        return Err(libc::EINVAL);
    }
    // SAFETY: `path` is NUL-terminated and live; the kernel writes at most `buf.len()` bytes
    // into the live, exclusively borrowed `buf`.
    unsafe {
        call(
            libc::SYS_readlinkat,
            [
                libc::AT_FDCWD as usize,
                path.as_ptr() as usize,
                buf.as_mut_ptr() as usize,
                buf.len(),
                0,
                0,
            ],
        )
    }
}

/// [`DirLook`] of a NUL-terminated path: one `statx` (a `stat` where the kernel has none).
pub fn dir_look(path: &[u8]) -> Result<DirLook, c_int> {
    let ns =
        |sec: i64, nsec: u32| (sec.max(0) as u64).saturating_mul(1_000_000_000) + u64::from(nsec);
    match statx(
        path,
        libc::STATX_INO | libc::STATX_MTIME | libc::STATX_CTIME,
    ) {
        Ok(stx) => Ok(DirLook {
            ino: stx.stx_ino,
            mtime_ns: ns(stx.stx_mtime.tv_sec, stx.stx_mtime.tv_nsec),
            ctime_ns: ns(stx.stx_ctime.tv_sec, stx.stx_ctime.tv_nsec),
        }),
        Err(libc::ENOSYS) => stat(path).map(|st| DirLook {
            ino: st.st_ino,
            mtime_ns: ns(st.st_mtime, st.st_mtime_nsec as u32),
            ctime_ns: ns(st.st_ctime, st.st_ctime_nsec as u32),
        }),
        Err(e) => Err(e),
    }
}

/// [`FileId`] of a NUL-terminated path: one `statx` (a `stat` where the kernel has none).
pub fn file_id(path: &[u8]) -> Result<FileId, c_int> {
    match statx(path, libc::STATX_INO | libc::STATX_SIZE | libc::STATX_BTIME) {
        Ok(stx) => Ok(FileId {
            ino: stx.stx_ino,
            born_ns: (stx.stx_mask & libc::STATX_BTIME != 0).then(|| {
                (stx.stx_btime.tv_sec.max(0) as u64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(u64::from(stx.stx_btime.tv_nsec))
            }),
            size: stx.stx_size,
        }),
        Err(libc::ENOSYS) => stat(path).map(|st| FileId {
            ino: st.st_ino,
            born_ns: None,
            size: st.st_size.max(0) as u64,
        }),
        Err(e) => Err(e),
    }
}

/// `stat` of a NUL-terminated path.
pub fn stat(path: &[u8]) -> Result<libc::stat, c_int> {
    fstatat(path, 0)
}

/// `newfstatat(AT_FDCWD, path, …, flags)` of a NUL-terminated path.
fn fstatat(path: &[u8], flags: c_int) -> Result<libc::stat, c_int> {
    if path.last() != Some(&0) {
        return Err(libc::EINVAL);
    }
    // SAFETY: an all-zero stat is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path the kernel reads; one struct stat written into ours.
    unsafe {
        call(
            libc::SYS_newfstatat,
            [
                libc::AT_FDCWD as usize,
                path.as_ptr() as usize,
                (&mut st as *mut libc::stat) as usize,
                flags as usize,
                0,
                0,
            ],
        )
    }?;
    Ok(st)
}

/// Whether a NUL-terminated path names something, a symbolic link itself included (one
/// `newfstatat` without following links: std's first look at a file probes `statx` with a
/// call of its own first).
pub fn exists_nofollow(path: &[u8]) -> bool {
    fstatat(path, libc::AT_SYMLINK_NOFOLLOW).is_ok()
}

/// This process's id, from the kernel (never a cached copy: a child made with `vfork` shares
/// its parent's memory, caches included).
pub fn getpid() -> u32 {
    // SAFETY: no arguments; cannot fail.
    unsafe { call(libc::SYS_getpid, [0; 6]) }.unwrap_or(0) as u32
}

pub fn gettid() -> u32 {
    // SAFETY: no arguments; cannot fail.
    unsafe { call(libc::SYS_gettid, [0; 6]) }.unwrap_or(0) as u32
}

/// Lets another thread run.
pub fn sched_yield() {
    // SAFETY: no arguments; cannot fail.
    let _ = unsafe { call(libc::SYS_sched_yield, [0; 6]) };
}

/// Sends `sig` to thread `tid` of process `pid`.
pub fn tgkill(pid: u32, tid: u32, sig: c_int) -> Res {
    // SAFETY: sends a signal; no memory involved.
    unsafe {
        call(
            libc::SYS_tgkill,
            [pid as usize, tid as usize, sig as usize, 0, 0, 0],
        )
    }
}

/// Queues `sig` with `info` (the kernel's 128-byte `siginfo_t`) for thread `tid` of this
/// process: a signal re-raised so keeps its `si_code`, address and sender.
pub fn rt_tgsigqueueinfo(pid: u32, tid: u32, sig: c_int, info: &libc::siginfo_t) -> Res {
    // SAFETY: the kernel reads `info`, a live siginfo_t.
    unsafe {
        call(
            libc::SYS_rt_tgsigqueueinfo,
            [
                pid as usize,
                tid as usize,
                sig as usize,
                info as *const libc::siginfo_t as usize,
                0,
                0,
            ],
        )
    }
}

/// Waits until `fd` can take bytes or `timeout_ms` passed: `Ok(0)` on timeout.
pub fn poll_out(fd: c_int, timeout_ms: c_int) -> Result<(usize, i16), c_int> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: libc::time_t::from(timeout_ms / 1000),
        tv_nsec: libc::c_long::from(timeout_ms % 1000) * 1_000_000,
    };
    // SAFETY: one pollfd of ours, a timeout of ours, no signal mask.
    let n = unsafe {
        call(
            libc::SYS_ppoll,
            [
                (&mut p as *mut libc::pollfd) as usize,
                1,
                (&ts as *const libc::timespec) as usize,
                0,
                0,
                0,
            ],
        )
    }?;
    Ok((n, p.revents))
}

/// How many bytes of its alternate signal stack this thread has left below `sp`, when it runs
/// on that stack now (so inside a signal handler); `None` on its ordinary stack.
pub fn signal_stack_room(sp: usize) -> Option<usize> {
    // SAFETY: an all-zero stack_t is valid; the kernel only writes it (no new stack is set).
    let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe {
        call(
            libc::SYS_sigaltstack,
            [0, (&mut old as *mut libc::stack_t) as usize, 0, 0, 0, 0],
        )
    };
    (rc.is_ok() && old.ss_flags & libc::SS_ONSTACK != 0)
        .then(|| sp.saturating_sub(old.ss_sp as usize))
}

/// Whether this thread runs on its alternate signal stack now (so inside a signal handler).
pub fn on_signal_stack() -> bool {
    // SAFETY: an all-zero stack_t is valid; the kernel only writes it (no new stack is set).
    let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe {
        call(
            libc::SYS_sigaltstack,
            [0, (&mut old as *mut libc::stack_t) as usize, 0, 0, 0, 0],
        )
    };
    rc.is_ok() && old.ss_flags & libc::SS_ONSTACK != 0
}

/// `futex(FUTEX_WAIT)` on `word` while it holds `expected`, for at most `timeout_ns`.
pub fn futex_wait(word: &std::sync::atomic::AtomicU32, expected: u32, timeout_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: the kernel reads the word and the timeout; nothing is written.
    let _ = unsafe {
        call(
            libc::SYS_futex,
            [
                word.as_ptr() as usize,
                (libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG) as usize,
                expected as usize,
                (&ts as *const libc::timespec) as usize,
                0,
                0,
            ],
        )
    };
}

/// Wakes one thread waiting on `word`.
pub fn futex_wake(word: &std::sync::atomic::AtomicU32) {
    // SAFETY: no memory is read or written beyond the word's address.
    let _ = unsafe {
        call(
            libc::SYS_futex,
            [
                word.as_ptr() as usize,
                (libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG) as usize,
                1,
                0,
                0,
                0,
            ],
        )
    };
}

/// `getdents64` into `buf`: bytes read, 0 at the end.
pub fn getdents(fd: c_int, buf: &mut [u8]) -> Res {
    // SAFETY: the kernel writes at most `buf.len()` bytes into the live buffer.
    unsafe {
        call(
            libc::SYS_getdents64,
            [fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0],
        )
    }
}

/// `renameat(AT_FDCWD, from, AT_FDCWD, to)` of NUL-terminated paths.
pub fn rename(from: &[u8], to: &[u8]) -> Res {
    if from.last() != Some(&0) || to.last() != Some(&0) {
        return Err(libc::EINVAL);
    }
    #[cfg(target_arch = "x86_64")]
    const NR: c_long = libc::SYS_renameat;
    #[cfg(target_arch = "aarch64")]
    const NR: c_long = libc::SYS_renameat2;
    // SAFETY: two NUL-terminated paths the kernel only reads (flags 0 for renameat2).
    unsafe {
        call(
            NR,
            [
                libc::AT_FDCWD as usize,
                from.as_ptr() as usize,
                libc::AT_FDCWD as usize,
                to.as_ptr() as usize,
                0,
                0,
            ],
        )
    }
}

/// `unlinkat(AT_FDCWD, path, 0)` of a NUL-terminated path.
pub fn unlink(path: &[u8]) -> Res {
    if path.last() != Some(&0) {
        return Err(libc::EINVAL);
    }
    // SAFETY: a NUL-terminated path the kernel only reads.
    unsafe {
        call(
            libc::SYS_unlinkat,
            [libc::AT_FDCWD as usize, path.as_ptr() as usize, 0, 0, 0, 0],
        )
    }
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, floor)`.
pub fn dup_above(fd: c_int, floor: c_int) -> Res {
    // SAFETY: duplicates a number; no memory involved.
    unsafe {
        call(
            libc::SYS_fcntl,
            [
                fd as usize,
                libc::F_DUPFD_CLOEXEC as usize,
                floor as usize,
                0,
                0,
                0,
            ],
        )
    }
}

/// Whether the word at `addr` can be written now, found by writing `value` (what it holds)
/// over it with `process_vm_writev` to this very process: the kernel refuses a read-only page
/// with EFAULT, where a plain store would fault.
pub fn word_writable(addr: usize, value: usize) -> bool {
    let local = libc::iovec {
        iov_base: (&value as *const usize).cast_mut().cast(),
        iov_len: std::mem::size_of::<usize>(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: std::mem::size_of::<usize>(),
    };
    // SAFETY: the kernel reads `value` and writes the same bytes at `addr` (or refuses).
    let rc = unsafe {
        call(
            libc::SYS_process_vm_writev,
            [
                getpid() as usize,
                (&local as *const libc::iovec) as usize,
                1,
                (&remote as *const libc::iovec) as usize,
                1,
                0,
            ],
        )
    };
    rc == Ok(std::mem::size_of::<usize>())
}

/// Copies `buf.len()` bytes of this process's memory at `addr` into `buf`
/// (`process_vm_readv` on itself): memory that is not mapped, or not readable, is an error,
/// never a fault.
pub fn read_own(addr: usize, buf: &mut [u8]) -> Res {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, and only reads `addr`
    // (or refuses).
    unsafe {
        call(
            libc::SYS_process_vm_readv,
            [
                getpid() as usize,
                (&local as *const libc::iovec) as usize,
                1,
                (&remote as *const libc::iovec) as usize,
                1,
                0,
            ],
        )
    }
}

/// `pwritev2(fd, iov, -1, RWF_NOWAIT)`: a write at the fd's position that fails with EAGAIN
/// instead of blocking, on pipes and sockets (a file system that cannot say answers
/// EOPNOTSUPP), without touching the file's flags, which the host shares.
pub fn writev_nowait(fd: c_int, iov: &[libc::iovec]) -> Res {
    // SAFETY: the iovecs are live and point to live buffers the kernel only reads.
    unsafe {
        call(
            libc::SYS_pwritev2,
            [
                fd as usize,
                iov.as_ptr() as usize,
                iov.len(),
                usize::MAX,
                0,
                libc::RWF_NOWAIT as usize,
            ],
        )
    }
}

/// `sendmsg(fd, iov, flags)` to a connected socket.
pub fn sendmsg(fd: c_int, iov: &mut [libc::iovec], flags: c_int) -> Res {
    // SAFETY: an all-zero msghdr is valid; it names our iovecs only.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: the message and its iovecs are live; the kernel only reads them.
    unsafe {
        call(
            libc::SYS_sendmsg,
            [
                fd as usize,
                (&msg as *const libc::msghdr) as usize,
                flags as usize,
                0,
                0,
                0,
            ],
        )
    }
}

/// Blocks (`how` = `SIG_BLOCK`) or sets (`SIG_SETMASK`) this thread's signal mask; the old one
/// is returned.
pub fn sigmask(how: c_int, set: &libc::sigset_t) -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is an empty set.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel reads 8 bytes of `set` and writes 8 of `old` (the kernel's sigset).
    let _ = unsafe {
        call(
            libc::SYS_rt_sigprocmask,
            [
                how as usize,
                (set as *const libc::sigset_t) as usize,
                (&mut old as *mut libc::sigset_t) as usize,
                8,
                0,
                0,
            ],
        )
    };
    old
}

/// Whether `sig` is pending for this thread or the process.
pub fn pending(sig: c_int) -> bool {
    // SAFETY: an all-zero sigset_t is an empty set.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes 8 bytes of the set.
    let ok = unsafe {
        call(
            libc::SYS_rt_sigpending,
            [(&mut set as *mut libc::sigset_t) as usize, 8, 0, 0, 0, 0],
        )
    }
    .is_ok();
    // SAFETY: reading a set of ours.
    ok && unsafe { libc::sigismember(&set, sig) } == 1
}

/// Takes a pending `sig` (blocked) off, if there is one, without waiting.
pub fn take_pending(sig: c_int) {
    // SAFETY: an all-zero sigset_t is an empty set; sigaddset writes only it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::sigaddset(&mut set, sig) };
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: the kernel reads the set and the zero timeout; no siginfo is asked for.
    let _ = unsafe {
        call(
            libc::SYS_rt_sigtimedwait,
            [
                (&set as *const libc::sigset_t) as usize,
                0,
                (&zero as *const libc::timespec) as usize,
                8,
                0,
                0,
            ],
        )
    };
}

/// `fallocate(fd, 0, offset, len)`: the range allocated on disk (the file grown to cover it).
pub fn fallocate(fd: c_int, offset: u64, len: u64) -> Res {
    // SAFETY: no memory is passed.
    unsafe {
        call(
            libc::SYS_fallocate,
            [fd as usize, 0, offset as usize, len as usize, 0, 0],
        )
    }
}

pub fn ftruncate(fd: c_int, len: u64) -> Res {
    // SAFETY: no memory is passed.
    unsafe { call(libc::SYS_ftruncate, [fd as usize, len as usize, 0, 0, 0, 0]) }
}

/// Whether `len` bytes at `addr` lie in mapped memory (`mincore` fails with ENOMEM where a
/// page is not mapped).
pub fn is_mapped(addr: usize, len: usize) -> bool {
    // SAFETY: getauxval reads the auxiliary vector; no system call, no side effect.
    let page = unsafe { libc::getauxval(libc::AT_PAGESZ) } as usize;
    if page == 0 || !page.is_power_of_two() {
        return false;
    }
    let start = addr & !(page - 1);
    let end = addr.saturating_add(len);
    let mut vec = [0u8; 2];
    if end.saturating_sub(start) > 2 * page {
        return false;
    }
    // SAFETY: the kernel writes one byte per page of the range (at most two) into `vec`.
    let rc = unsafe {
        call(
            libc::SYS_mincore,
            [start, end - start, vec.as_mut_ptr() as usize, 0, 0, 0],
        )
    };
    rc.is_ok()
}

/// A signal's action as the kernel keeps it (`struct sigaction` of the `rt_sigaction` system
/// call; the same layout on x86_64 and aarch64), not libc's larger one.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelAction {
    pub handler: usize,
    pub flags: u64,
    pub restorer: usize,
    pub mask: u64,
}

/// The kernel's `SA_RESTORER` flag: `restorer` returns from the handler (x86_64 requires one;
/// glibc sets it on every action it installs).
pub const SA_RESTORER: u64 = 0x0400_0000;

/// `rt_sigaction(sig, act, old)` made directly: the kernel's own view, past every interposer
/// (libjsig, a profiler's) and libc's translation.
pub fn rt_sigaction(sig: c_int, act: Option<&KernelAction>, old: Option<&mut KernelAction>) -> Res {
    let act = act.map_or(0, |a| a as *const KernelAction as usize);
    let old = old.map_or(0, |o| o as *mut KernelAction as usize);
    // SAFETY: the kernel reads `act` and writes `old`, both live structs of the layout it
    // expects, with an 8-byte signal set.
    unsafe { call(libc::SYS_rt_sigaction, [sig as usize, act, old, 8, 0, 0]) }
}

/// The return path of a handler the library installs with [`rt_sigaction`]: the
/// `rt_sigreturn` system call, in the very bytes glibc's `__restore_rt` has (unwinders and
/// debuggers recognise a signal frame by them).
#[cfg(target_arch = "x86_64")]
pub fn restorer() -> usize {
    unsafe extern "C" {
        fn lm_restore_rt();
    }
    lm_restore_rt as *const () as usize
}

#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".pushsection .text.lm_restore_rt,\"ax\",@progbits",
    ".p2align 4",
    ".hidden lm_restore_rt",
    ".globl lm_restore_rt",
    ".type lm_restore_rt,@function",
    "nop",
    "lm_restore_rt:",
    "mov rax, 15",
    "syscall",
    ".size lm_restore_rt, .-lm_restore_rt",
    ".popsection",
);

/// aarch64 needs no restorer: the kernel returns through the vDSO's `sigreturn`.
#[cfg(target_arch = "aarch64")]
pub fn restorer() -> usize {
    0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn calls_reach_the_kernel_and_leave_errno_alone() {
        // SAFETY: writing this thread's errno.
        unsafe { *libc::__errno_location() = 1234 };
        assert_eq!(close(-1), Err(libc::EBADF));
        assert_eq!(
            open(b"/nonexistent/x\0", libc::O_RDONLY, 0),
            Err(libc::ENOENT)
        );
        // SAFETY: reading this thread's errno.
        assert_eq!(unsafe { *libc::__errno_location() }, 1234);
        assert_eq!(getpid(), std::process::id());
        let fd = open(b"/proc/self/stat\0", libc::O_RDONLY | libc::O_CLOEXEC, 0).unwrap() as c_int;
        let mut buf = [0u8; 64];
        let n = read(fd, &mut buf).unwrap();
        assert!(n > 0);
        assert!(fstat(fd).is_ok());
        assert_eq!(close(fd), Ok(0));
        assert!(!on_signal_stack());
        assert!(stat(b"/proc/self\0").is_ok());
    }

    #[test]
    fn a_nowait_write_to_a_full_pipe_fails_instead_of_blocking() {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two fds into our array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let block = [b'x'; 4096];
        let iov = [libc::iovec {
            iov_base: block.as_ptr() as *mut libc::c_void,
            iov_len: block.len(),
        }];
        let mut wrote = 0;
        let last = loop {
            match writev_nowait(fds[1], &iov) {
                Ok(n) => wrote += n,
                Err(e) => break e,
            }
            assert!(wrote < 16 << 20, "never full");
        };
        assert_eq!(last, libc::EAGAIN);
        assert!(wrote >= 4096);
        let _ = close(fds[0]);
        let _ = close(fds[1]);
    }
}
