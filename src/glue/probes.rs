//! Clocks and resource readings: of this process, or, in a per-request helper process (see
//! [`crate::handoff`]), of the environment's root process and its children.
//!
//! Everything here reads into buffers on the stack with raw system calls: no allocation, no
//! lock, errno untouched.

use crate::journal::Owner;
use crate::output;
use crate::state::Reset;
use crate::sys;
use crate::tracker::{Gauges, Probe, Reading};
use std::ffi::CString;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// From now on, probes also read the extended gauges (opt-in: each read costs file reads).
pub fn enable_gauges() {
    state().gauges.store(true, Ordering::Relaxed);
}

/// How many threads of this process are the library's own.
pub fn set_own_threads(n: u32) {
    state().own_threads.store(n, Ordering::Relaxed);
}

/// Reads a small file (`/proc`) whole into `buf`: the bytes read.
pub fn read_file<'b>(path: &[u8], buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let fd = sys::open(path, libc::O_RDONLY | libc::O_CLOEXEC, 0).ok()? as libc::c_int;
    let mut len = 0;
    loop {
        match sys::read(fd, buf.get_mut(len..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(libc::EINTR) => continue,
            Err(_) => break,
        }
        if len >= buf.len() {
            break;
        }
    }
    let _ = sys::close(fd);
    buf.get(..len)
}

/// `/proc/<pid>/<what>` (or `/proc/self/<what>`), NUL-terminated, in `buf`.
fn proc_path<'b>(buf: &'b mut [u8; 64], pid: Option<u32>, what: &str) -> &'b [u8] {
    let text = match pid {
        Some(p) => crate::text::format_into(buf, format_args!("/proc/{p}/{what}\0")),
        None => crate::text::format_into(buf, format_args!("/proc/self/{what}\0")),
    };
    let len = text.len();
    buf.get(..len).unwrap_or_default()
}

/// The number after `key` on its line of a `/proc/<pid>/status`-like text.
fn field_after(text: &[u8], key: &[u8]) -> Option<u64> {
    let at = text.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = text.get(at..)?;
    let start = rest.iter().position(u8::is_ascii_digit)?;
    let digits = rest.get(start..)?;
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    std::str::from_utf8(digits.get(..end)?).ok()?.parse().ok()
}

/// Open fds of `pid` (self when `None`), less the one the count is read through.
fn count_fds(pid: Option<u32>) -> Option<u64> {
    let mut path = [0u8; 64];
    let path = proc_path(&mut path, pid, "fd");
    let mut entries = 0u64;
    each_dir_entry(path, |name| {
        if name.first() != Some(&b'.') {
            entries += 1;
        }
    })?;
    Some(entries.saturating_sub(1))
}

/// Calls `f` with the name of each entry of directory `path` (NUL-terminated), read with
/// `getdents64` into a buffer on the stack; `None` when it cannot be opened.
pub fn each_dir_entry(path: &[u8], mut f: impl FnMut(&[u8])) -> Option<()> {
    let fd = sys::open(
        path,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    )
    .ok()? as libc::c_int;
    let mut buf = [0u8; 2048];
    loop {
        let n = match sys::getdents(fd, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
        let mut at = 0;
        while at + 19 < n {
            let reclen = buf
                .get(at + 16..at + 18)
                .and_then(|b| b.try_into().ok())
                .map_or(0, |b| usize::from(u16::from_ne_bytes(b)));
            if reclen == 0 {
                break;
            }
            let name = buf.get(at + 19..at + reclen).unwrap_or_default();
            f(name.split(|b| *b == 0).next().unwrap_or_default());
            at += reclen;
        }
    }
    let _ = sys::close(fd);
    Some(())
}

/// Reads the extended gauges: network counters of the environment's interfaces (all but
/// loopback), bytes used on `/tmp`, and the open fds and threads of `pid` (less our own).
/// (Out of line, as [`environment_usage`]: their buffers are not in every probe's frame.)
#[inline(never)]
fn gauges(pid: Option<u32>) -> Gauges {
    let mut g = Gauges::default();
    let mut buf = [0u8; 8192];
    if let Some(dev) = read_file(b"/proc/net/dev\0", &mut buf) {
        for line in dev.split(|b| *b == b'\n').skip(2) {
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                continue;
            };
            let (name, counters) = line.split_at(colon);
            if name.trim_ascii() == b"lo" {
                continue;
            }
            let mut fields = counters
                .get(1..)
                .unwrap_or_default()
                .split(u8::is_ascii_whitespace)
                .filter(|f| !f.is_empty())
                .map(|f| {
                    std::str::from_utf8(f)
                        .ok()
                        .and_then(|t| t.parse::<u64>().ok())
                        .unwrap_or(0)
                });
            g.net_rx_bytes += fields.next().unwrap_or(0);
            g.net_tx_bytes += fields.nth(7).unwrap_or(0);
        }
    }
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs writes only the struct we pass; the path is NUL-terminated.
    if unsafe { libc::statvfs(c"/tmp".as_ptr(), &mut vfs) } == 0 {
        g.tmp_used_bytes =
            (vfs.f_blocks.saturating_sub(vfs.f_bfree) as u64).saturating_mul(vfs.f_frsize as u64);
    }
    g.open_fds = count_fds(pid).unwrap_or(0);
    let mut path = [0u8; 64];
    let path = proc_path(&mut path, pid, "status");
    if let Some(n) = read_file(path, &mut buf).and_then(|s| field_after(s, b"\nThreads:")) {
        let own = if pid.is_none() {
            u64::from(state().own_threads.load(Ordering::Relaxed))
        } else {
            0
        };
        g.threads = n.saturating_sub(own);
    }
    g
}

/// Processes measured as the environment at most: the chain from a per-request helper's parent
/// up to the environment's root.
pub const MAX_MEASURED: usize = 8;

/// From now on, CPU and memory of the environment rooted at `root` are read too (0: no more):
/// of the processes in `chain` (this process's ancestors up to `root`: the runtime that
/// starts the helpers, and a next wrapper that started it as a child and waits), their CPU
/// summed (each with its waited-for children), their peak memory the largest. Records go to
/// `root`'s stdout.
pub fn measure_environment(root: u32, chain: &[u32]) {
    for (i, slot) in state().measured.iter().enumerate() {
        slot.store(chain.get(i).copied().unwrap_or(0), Ordering::Relaxed);
    }
    state().environment_root.store(root, Ordering::Relaxed);
}

/// The environment's CPU (ns) and peak memory (KiB) as [`measure_environment`] says, or
/// `None` when its root cannot be read.
#[inline(never)]
fn environment_usage(root: u32) -> Option<(u64, u64)> {
    let mut cpu_ticks = 0;
    let mut peak = 0;
    let mut any = false;
    for pid in state()
        .measured
        .iter()
        .map(|p| p.load(Ordering::Relaxed))
        .take_while(|p| *p != 0)
    {
        if let Some(s) = proc_stat(pid) {
            cpu_ticks += s.cpu_ticks;
            peak = peak.max(peak_rss_kb(pid).unwrap_or(0));
            any = true;
        }
    }
    if !any {
        let s = proc_stat(root)?;
        return Some((ticks_to_ns(s.cpu_ticks), peak_rss_kb(root).unwrap_or(0)));
    }
    Some((ticks_to_ns(cpu_ticks), peak))
}

/// The environment's root process, if this is not it.
pub fn environment_root() -> Option<u32> {
    Some(state().environment_root.load(Ordering::Relaxed)).filter(|p| *p != 0)
}

/// What `/proc/<pid>/stat` says of a process's start and CPU time.
pub struct ProcStat {
    /// The parent's pid (0 for a process whose parent is in another pid namespace).
    pub ppid: u32,
    /// Start time, clock ticks after boot: with the pid, it names one process.
    pub start_ticks: u64,
    /// utime + stime + cutime + cstime: the process and its waited-for children.
    pub cpu_ticks: u64,
    /// Not a zombie (it has not exited).
    pub running: bool,
}

/// From now on this process (`pid`) is the one the library's state describes.
pub fn set_owner(pid: u32) {
    state().owner_pid.store(pid, Ordering::Relaxed);
}

/// The process the library's state describes.
pub fn owner_pid() -> u32 {
    state().owner_pid.load(Ordering::Relaxed)
}

/// Whether the calling thread belongs to the process that owns the library's state.
///
/// False in a child made with `vfork`, `posix_spawn` or `clone(CLONE_VM)`: it runs in its
/// parent's memory until it `exec`s (CPython's `subprocess` child calls `close_range` and
/// `dup2` there), so whatever it did to the state — forgetting the parent's Runtime API
/// connection, taking the parent's gate — would happen to the parent. Also false in a child
/// forked around our `fork` hook (`_Fork`, a raw `clone`): its inherited state is a stale copy.
/// Such callers pass straight through. One `getpid` system call, only where a tracked fd is
/// connected, closed or duplicated: not on the per-invoke byte paths.
#[inline]
pub fn in_owner_process() -> bool {
    sys::getpid() == owner_pid()
}

/// Who this process is, for the journal.
pub fn this_owner() -> Owner {
    let pid = std::process::id();
    Owner {
        pid,
        start_ticks: identity(pid).map_or(0, |i| i.start_ticks),
    }
}

/// What never changes of a process while it lives: its start and its parent (until the parent
/// ends).
#[derive(Clone, Copy, Debug)]
pub struct Identity {
    pub ppid: u32,
    pub start_ticks: u64,
}

/// How many processes' [`Identity`] a reservation keeps: this one and the ancestors it walks.
const KNOWN: usize = 4;

/// [`Identity`] of `pid`, from `/proc/<pid>/stat` the first time a reservation asks (it asks
/// for this process and its ancestors several times: each read is an open, two reads and a
/// close that the kernel answers by formatting fifty fields).
pub fn identity(pid: u32) -> Option<Identity> {
    let st = state();
    for (i, known) in st.known_pid.iter().enumerate() {
        match known.load(Ordering::Relaxed) {
            0 => break,
            p if p == pid => {
                return Some(Identity {
                    ppid: st.known_ppid.get(i)?.load(Ordering::Relaxed),
                    start_ticks: st.known_start.get(i)?.load(Ordering::Relaxed),
                });
            }
            _ => {}
        }
    }
    let s = proc_stat(pid)?;
    let found = Identity {
        ppid: s.ppid,
        start_ticks: s.start_ticks,
    };
    if let Some(i) = st
        .known_pid
        .iter()
        .position(|p| p.load(Ordering::Relaxed) == 0)
        && let (Some(ppid), Some(start)) = (st.known_ppid.get(i), st.known_start.get(i))
    {
        ppid.store(found.ppid, Ordering::Relaxed);
        start.store(found.start_ticks, Ordering::Relaxed);
        if let Some(p) = st.known_pid.get(i) {
            p.store(pid, Ordering::Relaxed);
        }
    }
    Some(found)
}

/// Forgets the identities kept (at the start of a reservation: a process seen before may
/// have ended, and its pid been reused, since).
pub fn forget_identities() {
    for p in &state().known_pid {
        p.store(0, Ordering::Relaxed);
    }
}

/// Whether the process that wrote a journal slot still runs (same pid, same start, not a
/// zombie).
pub fn alive(owner: Owner) -> bool {
    proc_stat(owner.pid).is_some_and(|s| s.running && s.start_ticks == owner.start_ticks)
}

/// Whether process `pid` still runs, asked without opening a file (a watchdog's look must not
/// take an fd number a host thread may be about to get): `/proc/<pid>/exe` reads as a link
/// while the process has its memory, not once it is a zombie or gone (ENOENT); a link the
/// kernel will not show (another user's process) is there all the same. A pid the kernel gave
/// again to a new process counts as running until that one ends too: never a false "gone".
pub fn runs(pid: u32) -> bool {
    let mut path = [0u8; 64];
    let path = proc_path(&mut path, Some(pid), "exe");
    let mut target = [0u8; 1];
    !matches!(
        sys::readlink(path, &mut target),
        Err(libc::ENOENT | libc::ESRCH)
    )
}

/// Reads `/proc/<pid>/stat`.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let mut path = [0u8; 64];
    let path = proc_path(&mut path, Some(pid), "stat");
    let mut buf = [0u8; 1024];
    let text = read_file(path, &mut buf)?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = text.get(text.iter().rposition(|b| *b == b')')? + 1..)?;
    let mut fields = [&b""[..]; 20];
    let mut n = 0;
    for f in rest
        .split(u8::is_ascii_whitespace)
        .filter(|f| !f.is_empty())
        .take(fields.len())
    {
        if let Some(slot) = fields.get_mut(n) {
            *slot = f;
            n += 1;
        }
    }
    // `rest` starts at field 3 (state); utime is field 14, starttime field 22.
    let field =
        |i: usize| -> Option<u64> { std::str::from_utf8(fields.get(i - 3)?).ok()?.parse().ok() };
    Some(ProcStat {
        ppid: u32::try_from(field(4)?).ok()?,
        start_ticks: field(22)?,
        cpu_ticks: field(14)? + field(15)? + field(16)? + field(17)?,
        running: !matches!(fields.first().copied(), Some(b"Z" | b"X" | b"x")),
    })
}

/// Peak resident set size of `pid` (VmHWM), KiB.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let mut path = [0u8; 64];
    let path = proc_path(&mut path, Some(pid), "status");
    let mut buf = [0u8; 4096];
    let text = read_file(path, &mut buf)?;
    field_after(text, b"\nVmHWM:")
}

/// When a process that started `start_ticks` after boot started, on the monotonic clock (to
/// the kernel's tick, 10 ms on Lambda): shifted by boot time.
pub fn started_mono_ns(start_ticks: u64) -> u64 {
    let since_boot = clock_ns(libc::CLOCK_BOOTTIME);
    let mono = mono_ns();
    let age = since_boot.saturating_sub(ticks_to_ns(start_ticks));
    mono.saturating_sub(age)
}

/// Clock ticks (as `/proc` counts them) in ns.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks.saturating_mul(1_000_000_000 / hz)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec we pass (vDSO: no system call, errno
    // untouched on success).
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Monotonic time, ns.
pub fn mono_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Reads the wall and monotonic clocks only (`clock_gettime`: async-signal-safe).
pub fn clock_now() -> Probe {
    Probe {
        mono_ns: mono_ns(),
        wall_ms: clock_ns(libc::CLOCK_REALTIME) / 1_000_000,
        ..Probe::default()
    }
}

/// A reading with what `need` asks for (see [`Reading`]).
pub fn read(need: Reading) -> Probe {
    match need {
        Reading::Clocks => clock_now(),
        Reading::Usage => probe(),
    }
}

/// This process's CPU time (ns) and peak resident memory (KiB), from `getrusage`.
pub fn own_usage() -> (u64, u64) {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes only the struct we pass (it cannot fail for RUSAGE_SELF).
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv_ns =
        |tv: libc::timeval| (tv.tv_sec as u64) * 1_000_000_000 + (tv.tv_usec as u64) * 1_000;
    (
        tv_ns(ru.ru_utime) + tv_ns(ru.ru_stime),
        ru.ru_maxrss.max(0) as u64,
    )
}

/// Reads the clocks and `getrusage(RUSAGE_SELF)`, the environment's memory at most every
/// [`ENVIRONMENT_READ_EVERY_NS`] (see [`memory_peak_kb`]), and in a process that is not its
/// environment's root, the root's `/proc` entries too.
pub fn probe() -> Probe {
    let (cpu_ns, own_rss_kb) = own_usage();
    let mono_ns = mono_ns();
    let mut p = Probe {
        mono_ns,
        wall_ms: clock_ns(libc::CLOCK_REALTIME) / 1_000_000,
        cpu_ns,
        max_rss_kb: memory_peak_kb(own_rss_kb, mono_ns),
        process_rss_kb: own_rss_kb,
        gauges: None,
        env: None,
    };
    if let Some(root) = environment_root() {
        let (cpu, peak) = environment_usage(root).unwrap_or((cpu_ns, 0));
        p.env = Some((cpu, p.max_rss_kb.max(peak)));
    }
    if state().gauges.load(Ordering::Relaxed) {
        p.gauges = Some(gauges(environment_root()));
    }
    p
}

/// How often, at most, the environment's memory beyond this process is read again: a record
/// made sooner after the last reading reports that one (with this process's own peak, read
/// every time). Its system calls (an open, a read and a close of the cgroup's peak, or one
/// `getrusage`) then stay off the per-invoke path of a busy runtime.
const ENVIRONMENT_READ_EVERY_NS: u64 = 100_000_000;

/// At the runtime's start (allocation allowed): finds the memory cgroup that is the
/// environment's, the one this process is in when its limit is the function's memory size
/// (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`), as Lambda bounds an environment. From then on the
/// environment's memory figure is that cgroup's peak; without one, this process's peak plus
/// the largest peak among its waited-for children (see [`memory_peak_kb`]).
pub fn find_environment_cgroup(memory_size_mb: Option<u64>) {
    // Children waited for before now (a wrapper's, before it exec'd the runtime) are gone.
    state()
        .children_seen_kb
        .store(children_peak_kb(), Ordering::Relaxed);
    state().environment_memory.store(true, Ordering::Relaxed);
    let Some(mb) = memory_size_mb else {
        return;
    };
    let Ok(text) = std::fs::read_to_string("/proc/self/cgroup") else {
        return;
    };
    for cg in crate::cgroup::memory_cgroups(&text) {
        let limit = std::fs::read_to_string(&cg.limit).unwrap_or_default();
        if !crate::cgroup::limit_is(&limit, mb) {
            continue;
        }
        let readable = std::fs::read(&cg.peak)
            .ok()
            .and_then(|t| crate::cgroup::peak_kb(&t))
            .is_some();
        if readable {
            output::debug(format_args!("memory figure: {}", cg.peak));
            if let Ok(path) = CString::new(cg.peak) {
                let _ = state().memory_cgroup.set(path);
            }
            return;
        }
    }
}

/// The environment's peak memory (KiB) as Lambda counts it, given this process's own (only
/// that before [`find_environment_cgroup`], and in a per-request helper): the environment's
/// cgroup's peak, or, without that cgroup, for each time a child the process waited for (a
/// handler's subprocess) reached a peak larger than any before, the process's peak then plus
/// that child's — never below this process's own. Read again at most every
/// [`ENVIRONMENT_READ_EVERY_NS`]; a reading that fails (no fd left for the cgroup's file)
/// keeps the last.
pub fn memory_peak_kb(own_kb: u64, mono_ns: u64) -> u64 {
    let s = state();
    if !s.environment_memory.load(Ordering::Relaxed) {
        return own_kb;
    }
    let last = s.env_read_ns.load(Ordering::Relaxed);
    if last == 0 || mono_ns.saturating_sub(last) >= ENVIRONMENT_READ_EVERY_NS {
        read_environment(own_kb);
        s.env_read_ns.store(mono_ns.max(1), Ordering::Relaxed);
    }
    own_kb.max(s.env_kb.load(Ordering::Relaxed))
}

/// Raises the environment's figure to what is read now, this process's peak being `own_kb`.
#[inline(never)]
fn read_environment(own_kb: u64) {
    let s = state();
    match s.memory_cgroup.get() {
        Some(path) => {
            let mut buf = [0u8; 32];
            if let Some(kb) =
                read_file(path.as_bytes_with_nul(), &mut buf).and_then(crate::cgroup::peak_kb)
            {
                s.env_kb.fetch_max(kb, Ordering::Relaxed);
            }
        }
        None => {
            // A child larger than any the process waited for before (the wrapper's ones, from
            // before it became a runtime, included): it ran beside the process as it is now.
            // A child's peak and the process's later growth are never summed.
            let children = children_peak_kb();
            if children > s.children_seen_kb.fetch_max(children, Ordering::Relaxed) {
                s.env_kb
                    .fetch_max(own_kb.saturating_add(children), Ordering::Relaxed);
            }
        }
    }
}

/// The largest peak (KiB) among the children this process waited for.
fn children_peak_kb() -> u64 {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes only the struct we pass.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    ru.ru_maxrss.max(0) as u64
}

/// This module's part of the library's state in the process ([`crate::state::State`]).
pub struct ProbeState {
    /// Whether probes read the extended gauges too (a setting).
    gauges: AtomicBool,
    /// Whether records report the environment's memory beyond this process's (set by
    /// [`find_environment_cgroup`]).
    environment_memory: AtomicBool,
    /// The peak file of the environment's memory cgroup, when this process is in one.
    memory_cgroup: OnceLock<CString>,
    /// The environment's memory as far as read (KiB: see [`memory_peak_kb`]), and when it was
    /// last read (monotonic ns; 0: never).
    env_kb: AtomicU64,
    env_read_ns: AtomicU64,
    /// The largest peak among the children waited for (KiB), those before the process became
    /// a runtime included.
    children_seen_kb: AtomicU64,
    /// Threads of our own in this process (the watchdog), left out of the thread gauge.
    own_threads: AtomicU32,
    /// The environment's root process, when this one is not it (0: none).
    environment_root: AtomicU32,
    /// The processes measured as the environment (see [`measure_environment`]; 0 ends them).
    measured: [AtomicU32; MAX_MEASURED],
    /// The process whose memory the library's state describes: the one that loaded it, or
    /// the child our `fork` hook made. See [`in_owner_process`].
    owner_pid: AtomicU32,
    /// Processes whose [`Identity`] was read during the reservation (pid 0: a free slot).
    known_pid: [AtomicU32; KNOWN],
    known_ppid: [AtomicU32; KNOWN],
    known_start: [AtomicU64; KNOWN],
}

impl ProbeState {
    pub const fn new() -> ProbeState {
        ProbeState {
            gauges: AtomicBool::new(false),
            environment_memory: AtomicBool::new(false),
            memory_cgroup: OnceLock::new(),
            env_kb: AtomicU64::new(0),
            env_read_ns: AtomicU64::new(0),
            children_seen_kb: AtomicU64::new(0),
            own_threads: AtomicU32::new(0),
            environment_root: AtomicU32::new(0),
            measured: [const { AtomicU32::new(0) }; MAX_MEASURED],
            owner_pid: AtomicU32::new(0),
            known_pid: [const { AtomicU32::new(0) }; KNOWN],
            known_ppid: [const { AtomicU32::new(0) }; KNOWN],
            known_start: [const { AtomicU64::new(0) }; KNOWN],
        }
    }

    /// In a forked child (`pid`): no thread of ours (threads do not survive `fork`), and a
    /// runtime of its own, whose CPU and memory are its own.
    pub fn forked_child(&self, pid: u32) {
        let ProbeState {
            // Kept: the same setting, and the same cgroup.
            gauges: _,
            environment_memory: _,
            memory_cgroup: _,
            // Forgotten: the child's children are its own.
            env_kb,
            env_read_ns,
            children_seen_kb,
            own_threads,
            environment_root,
            measured,
            owner_pid,
            // Forgotten: the child's own pid may be one a kept process had before it ended.
            known_pid,
            // Read only through a kept pid.
            known_ppid: _,
            known_start: _,
        } = self;
        for p in known_pid {
            p.reset_to(0, Ordering::Relaxed);
        }
        // An owner of 0 (a parent that never decided) stays 0: the child decides at its own
        // first connect, as the parent would have.
        if owner_pid.load(Ordering::Relaxed) != 0 {
            owner_pid.reset_to(pid, Ordering::Relaxed);
        }
        own_threads.reset_to(0, Ordering::Relaxed);
        env_kb.reset_to(0, Ordering::Relaxed);
        env_read_ns.reset_to(0, Ordering::Relaxed);
        children_seen_kb.reset_to(0, Ordering::Relaxed);
        environment_root.reset_to(0, Ordering::Relaxed);
        for pid in measured {
            pid.reset_to(0, Ordering::Relaxed);
        }
    }
}

/// This module's state.
#[inline(always)]
fn state() -> &'static ProbeState {
    &crate::state::STATE.probes
}
