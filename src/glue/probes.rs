//! Clocks and resource readings: of this process, or, in a per-request helper process (see
//! [`crate::handoff`]), of the environment's root process and its children.

use crate::tracker::{Gauges, Probe, Reading};
use std::sync::atomic::{AtomicU32, Ordering};

/// Whether probes read the extended gauges (network, /tmp, fds, threads).
static GAUGES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Threads of our own in this process (the watchdog), left out of the thread gauge.
static OWN_THREADS: AtomicU32 = AtomicU32::new(0);

/// From now on, probes also read the extended gauges (opt-in: each read costs file reads).
pub fn enable_gauges() {
    GAUGES.store(true, Ordering::Relaxed);
}

/// How many threads of this process are the library's own.
pub fn set_own_threads(n: u32) {
    OWN_THREADS.store(n, Ordering::Relaxed);
}

/// Reads the extended gauges: network counters of the environment's interfaces (all but
/// loopback), bytes used on `/tmp`, and the open fds and threads of `pid` (less our own).
fn gauges(pid: Option<u32>) -> Gauges {
    let mut g = Gauges::default();
    if let Ok(dev) = std::fs::read_to_string("/proc/net/dev") {
        for line in dev.lines().skip(2) {
            let Some((name, counters)) = line.split_once(':') else {
                continue;
            };
            if name.trim() == "lo" {
                continue;
            }
            let fields: Vec<u64> = counters
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            g.net_rx_bytes += fields.first().copied().unwrap_or(0);
            g.net_tx_bytes += fields.get(8).copied().unwrap_or(0);
        }
    }
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs writes only the struct we pass; the path is NUL-terminated.
    if unsafe { libc::statvfs(c"/tmp".as_ptr(), &mut vfs) } == 0 {
        g.tmp_used_bytes =
            (vfs.f_blocks.saturating_sub(vfs.f_bfree) as u64).saturating_mul(vfs.f_frsize as u64);
    }
    let proc_dir = match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".to_string(),
    };
    if let Ok(entries) = std::fs::read_dir(format!("{proc_dir}/fd")) {
        // The listing includes the fd it is read through.
        g.open_fds = (entries.count() as u64).saturating_sub(1);
    }
    if let Ok(status) = std::fs::read_to_string(format!("{proc_dir}/status"))
        && let Some(n) = status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
    {
        let own = if pid.is_none() {
            u64::from(OWN_THREADS.load(Ordering::Relaxed))
        } else {
            0
        };
        g.threads = n.saturating_sub(own);
    }
    g
}

/// The environment's root process, when this one is a per-request helper (0: none).
static ENVIRONMENT_ROOT: AtomicU32 = AtomicU32::new(0);

/// From now on, CPU and memory are those of the environment rooted at `pid`.
pub fn measure_environment(pid: u32) {
    ENVIRONMENT_ROOT.store(pid, Ordering::Relaxed);
}

/// The environment's root process, if this is a helper.
pub fn environment_root() -> Option<u32> {
    Some(ENVIRONMENT_ROOT.load(Ordering::Relaxed)).filter(|p| *p != 0)
}

/// What `/proc/<pid>/stat` says of a process's start and CPU time.
pub struct ProcStat {
    /// Start time, clock ticks after boot: with the pid, it names one process.
    pub start_ticks: u64,
    /// utime + stime + cutime + cstime: the process and its waited-for children.
    pub cpu_ticks: u64,
    /// Not a zombie (it has not exited).
    pub running: bool,
}

/// Reads `/proc/<pid>/stat`.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime is field 14, starttime field 22.
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some(ProcStat {
        start_ticks: field(22)?,
        cpu_ticks: field(14)? + field(15)? + field(16)? + field(17)?,
        running: !matches!(fields.first().copied(), Some("Z" | "X" | "x")),
    })
}

/// Peak resident set size of `pid` (VmHWM), KiB.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// When the process described by `stat` started, on the monotonic clock (to the kernel's tick,
/// 10 ms on Lambda): its start is in ticks after boot, so shift by boot time.
pub fn started_mono_ns(stat: &ProcStat) -> u64 {
    let since_boot = clock_ns(libc::CLOCK_BOOTTIME);
    let mono = mono_ns();
    let age = since_boot.saturating_sub(ticks_to_ns(stat.start_ticks));
    mono.saturating_sub(age)
}

fn ticks_to_ns(ticks: u64) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks.saturating_mul(1_000_000_000 / hz)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec we pass.
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

/// Reads the clocks and `getrusage(RUSAGE_SELF)` (or the environment root's `/proc` entries).
pub fn probe() -> Probe {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes only the struct we pass.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv_ns =
        |tv: libc::timeval| (tv.tv_sec as u64) * 1_000_000_000 + (tv.tv_usec as u64) * 1_000;
    let mut p = Probe {
        mono_ns: mono_ns(),
        wall_ms: clock_ns(libc::CLOCK_REALTIME) / 1_000_000,
        cpu_ns: tv_ns(ru.ru_utime) + tv_ns(ru.ru_stime),
        max_rss_kb: ru.ru_maxrss.max(0) as u64,
        gauges: None,
    };
    if let Some(root) = environment_root() {
        if let Some(stat) = proc_stat(root) {
            p.cpu_ns = ticks_to_ns(stat.cpu_ticks);
        }
        p.max_rss_kb = p.max_rss_kb.max(peak_rss_kb(root).unwrap_or(0));
    }
    if GAUGES.load(Ordering::Relaxed) {
        p.gauges = Some(gauges(environment_root()));
    }
    p
}
