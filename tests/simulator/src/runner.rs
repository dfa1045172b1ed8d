//! Starts a runtime process against a simulator, as Lambda starts `bootstrap`.

use crate::Simulator;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What to run and how.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The runtime command, e.g. `python3 -m awslambdaric handler.fn`.
    pub command: Vec<OsString>,
    /// Like `AWS_LAMBDA_EXEC_WRAPPER`: the command is run as `wrapper command…`.
    pub wrapper: Option<PathBuf>,
    /// Extra environment (added after the Lambda variables, so it can override them).
    pub env: Vec<(String, String)>,
    /// Variables to remove from the inherited environment.
    pub env_remove: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// Give up after this long (default 60 s).
    pub timeout: Option<Duration>,
    /// Copy the function's stdout and stderr to ours as they come.
    pub echo: bool,
}

/// Gives a runtime that sent `/init/error` this long to exit by itself before it is stopped.
const INIT_ERROR_GRACE: Duration = Duration::from_secs(3);

/// What a run produced.
#[derive(Debug)]
pub struct FunctionRun {
    pub stdout: String,
    pub stderr: String,
    /// The simulator became idle (every event has its result and the runtime waits on `/next`).
    pub idle: bool,
    /// Set when the (last) runtime exited by itself before it was stopped.
    pub exited: Option<ExitStatus>,
    /// How each runtime that exited by itself ended, in order.
    pub exits: Vec<ExitStatus>,
    /// How many runtime processes were started (a timeout stops one and starts the next).
    pub starts: usize,
    /// When the first runtime process was started.
    pub spawned_at: Instant,
    /// From spawn to stop.
    pub elapsed: Duration,
    /// CPU time of the (last) runtime process when the simulator became idle: the scheduler's
    /// accounting (`/proc/<pid>/task/*/schedstat`) summed over its live threads, in ns.
    pub cpu_ns: Option<u64>,
    /// The same reading while the runtime waited for its first event, when the simulator holds
    /// that event back ([`Config::first_event_delay`](crate::Config)): the runtime's init CPU,
    /// and the start of its invokes' CPU.
    pub cpu_at_first_next_ns: Option<u64>,
    /// With [`Config::memory_cgroup`](crate::Config): the (last) environment's peak memory, KiB, as its
    /// cgroup counted it when it ended (what Lambda's REPORT line says as `Max Memory Used`).
    pub memory_peak_kb: Option<u64>,
}

/// A memory cgroup made for one environment, removed when dropped.
struct EnvironmentCgroup {
    dir: PathBuf,
    /// Its `cgroup.procs`, NUL-terminated, for the child to join before it execs.
    procs: std::ffi::CString,
    /// Its peak file.
    peak: PathBuf,
}

impl EnvironmentCgroup {
    /// Makes a cgroup under this process's memory cgroup, limited to `memory_mb` MiB.
    fn new(memory_mb: u64) -> io::Result<EnvironmentCgroup> {
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let own = std::fs::read_to_string("/proc/self/cgroup")?;
        let (base, v1) = own
            .lines()
            .find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
                controllers
                    .split(',')
                    .any(|c| c == "memory")
                    .then(|| (format!("/sys/fs/cgroup/memory{path}"), true))
            })
            .or_else(|| {
                own.lines()
                    .find_map(|l| l.strip_prefix("0::"))
                    .map(|path| (format!("/sys/fs/cgroup{path}"), false))
            })
            .ok_or_else(|| io::Error::other("no memory cgroup"))?;
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = PathBuf::from(base.trim_end_matches('/'))
            .join(format!("lambda-sim-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir)?;
        let (limit, peak) = if v1 {
            ("memory.limit_in_bytes", "memory.max_usage_in_bytes")
        } else {
            ("memory.max", "memory.peak")
        };
        let made = EnvironmentCgroup {
            procs: std::ffi::CString::new(
                dir.join("cgroup.procs")
                    .into_os_string()
                    .into_encoded_bytes(),
            )
            .map_err(io::Error::other)?,
            peak: dir.join(peak),
            dir,
        };
        std::fs::write(made.dir.join(limit), (memory_mb << 20).to_string())?;
        std::fs::read_to_string(&made.peak)?;
        Ok(made)
    }

    fn peak_kb(&self) -> Option<u64> {
        let text = std::fs::read_to_string(&self.peak).ok()?;
        text.trim().parse::<u64>().ok().map(|b| b / 1024)
    }
}

impl Drop for EnvironmentCgroup {
    fn drop(&mut self) {
        // Its processes were killed; the kernel empties it as they are reaped.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        eprintln!("lambda-sim: cannot remove {}", self.dir.display());
    }
}

/// CPU time the scheduler accounted to each live thread of `pid`, summed (ns).
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(total)
}

fn reader(
    mut r: impl Read + Send + 'static,
    echo: Option<fn() -> Box<dyn Write>>,
) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => return all,
                Ok(n) => {
                    all.extend_from_slice(&buf[..n]);
                    if let Some(make) = echo {
                        let mut w = make();
                        let _ = w.write_all(&buf[..n]);
                        let _ = w.flush();
                    }
                }
            }
        }
    })
}

/// How long an idle runtime of Lambda Managed Instances runs on before it is stopped.
const LMI_SETTLE: Duration = Duration::from_millis(250);

/// How long a runtime of Lambda Managed Instances has between SIGTERM and SIGKILL here.
const LMI_SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// What starts a runtime as Lambda's do, to put in front of its command (the wrapper
/// included): run as root, `setpriv` to nobody with `CAP_DAC_READ_SEARCH` alone, so that the
/// runtime can still read a test environment root keeps under its home (pyenv's Python, npm's
/// cache) while no capability lets it change its ids (lambda-meter then runs as on Lambda: its
/// watchdog a thread the C library does not know of); as anyone else, nothing.
pub fn as_lambda_user() -> Vec<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Vec::new();
    }
    [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
        "--",
    ]
    .map(String::from)
    .to_vec()
}

/// Runs the function until the simulator is idle (or the runtime exits, or the timeout), then
/// kills its whole process group and returns its output.
pub fn run_function(sim: &Simulator, opts: &RunOptions) -> io::Result<FunctionRun> {
    let mut argv: Vec<OsString> = Vec::new();
    if let Some(w) = &opts.wrapper {
        argv.push(w.clone().into_os_string());
    }
    argv.extend(opts.command.iter().cloned());
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let started = Instant::now();
    let deadline = started + opts.timeout.unwrap_or(Duration::from_secs(60));
    // Each environment has a /tmp of its own, kept across runtime restarts, gone after it.
    let own_tmp = (!opts.env.iter().any(|(k, _)| k == "TMPDIR")).then(|| {
        let dir = std::env::temp_dir().join(format!(
            "lambda-sim-{}",
            sim.log_stream().rsplit(']').next().unwrap_or("env")
        ));
        let _ = std::fs::create_dir_all(&dir);
        // Writable by every user, as /tmp is (a runtime may run as another user, as Lambda's
        // do), sticky.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777));
        dir
    });
    let mut outputs = Vec::new();
    let mut idle = false;
    let mut exited = None;
    let mut exits = Vec::new();
    let mut starts = 0;
    let mut spawned_at = None;
    let mut cpu_ns = None;
    let mut cpu_at_first_next_ns = None;
    let mut memory_peak_kb = None;
    'runtimes: loop {
        let cgroup = match sim.config().memory_cgroup {
            true => Some(EnvironmentCgroup::new(memory_size_mb(opts))?),
            false => None,
        };
        let (mut child, out, err) = spawn(
            sim,
            opts,
            program,
            args,
            own_tmp.as_deref(),
            cgroup.as_ref(),
        )?;
        sim.runtime_started();
        spawned_at.get_or_insert_with(Instant::now);
        starts += 1;
        let pgid = child.id() as libc::pid_t;
        let mut init_error_at: Option<Instant> = None;
        let mut restart = false;
        loop {
            if sim.init_error().is_some() {
                // Lambda's runtime exits after reporting an init error; give it time to.
                idle = true;
                let at = *init_error_at.get_or_insert_with(Instant::now);
                if let Some(status) = child.try_wait()? {
                    exited = Some(status);
                    break;
                }
                if at.elapsed() >= INIT_ERROR_GRACE {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            if sim.wait_idle(Duration::from_millis(10)) {
                if sim.config().max_concurrency > 1 {
                    // A runtime of Lambda Managed Instances may ask for its next events before
                    // it has read the answer to its last result (aws-lambda-ric 4's workers
                    // do), so it is idle here while still reading it; Lambda never stops an
                    // environment that soon after an invoke.
                    std::thread::sleep(LMI_SETTLE);
                }
                idle = true;
                cpu_ns = process_cpu_ns(child.id());
                break;
            }
            // Read only well inside the hold-back, while the runtime surely still waits.
            if let Some(delay) = sim.config().first_event_delay
                && cpu_at_first_next_ns.is_none()
                && starts == 1
                && let Some(first) = sim.next_arrivals().first()
                && first.elapsed() < delay / 2
            {
                cpu_at_first_next_ns = process_cpu_ns(child.id());
            }
            let inits_over_time = sim.init_timeout_count();
            if sim.expire_deadlines()
                && (sim.config().max_concurrency <= 1
                    || sim.init_timeout_count() != inits_over_time)
            {
                // The deadline passed: stop this environment and start a new one. Lambda
                // Managed Instances fail a timed-out invoke alone and the environment runs on
                // (its code too); an init past its timeout still stops it.
                restart = true;
                break;
            }
            if let Some(pause) = sim.config().freeze_between.filter(|_| sim.freeze_due()) {
                signal_group(pgid, libc::SIGSTOP);
                std::thread::sleep(pause);
                signal_group(pgid, libc::SIGCONT);
                sim.thawed();
            }
            if let Some(status) = child.try_wait()? {
                exited = Some(status);
                exits.push(status);
                if sim.init_error().is_some() {
                    // It reported an init error and exited while we waited above: done, as
                    // in the branch at the top of the loop.
                    idle = true;
                    break;
                }
                // Lambda reports the invoke as Runtime.ExitError and starts a new runtime.
                restart = sim.config().restart_on_exit && sim.runtime_exited();
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        // Lambda Managed Instances stop a runtime with SIGTERM, then SIGKILL after a grace
        // period; the classic model's idle environment is frozen, then killed outright.
        if sim.config().max_concurrency > 1 && exited.is_none() {
            if sim.config().term_runtime_only {
                // SAFETY: kill has no memory effects; the pid is our child's, not yet reaped.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            } else {
                signal_group(pgid, libc::SIGTERM);
            }
            let grace = Instant::now() + LMI_SHUTDOWN_GRACE;
            while Instant::now() < grace && child.try_wait()?.is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        signal_group(pgid, libc::SIGKILL);
        child.wait()?;
        if let Some(cg) = cgroup {
            memory_peak_kb = cg.peak_kb();
        }
        outputs.push((out, err));
        if restart && Instant::now() < deadline {
            sim.runtime_stopped();
            continue 'runtimes;
        }
        break;
    }
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    for (out, err) in outputs {
        stdout.extend(out.join().unwrap_or_default());
        stderr.extend(err.join().unwrap_or_default());
    }
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    if let Some(dir) = own_tmp {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(FunctionRun {
        stdout,
        stderr,
        idle,
        exited,
        exits,
        starts,
        spawned_at: spawned_at.unwrap_or(started),
        elapsed: started.elapsed(),
        cpu_ns,
        cpu_at_first_next_ns,
        memory_peak_kb,
    })
}

/// The function's memory size (MiB): `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` as the options give it,
/// else the simulator's 128.
fn memory_size_mb(opts: &RunOptions) -> u64 {
    opts.env
        .iter()
        .rev()
        .find(|(k, _)| k == "AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(128)
}

fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill has no memory effects; a negative pid names the process group we created.
    unsafe { libc::kill(-pgid, signal) };
}

type Reader = thread::JoinHandle<Vec<u8>>;

/// Starts one runtime process, as Lambda starts `bootstrap` for a new environment.
fn spawn(
    sim: &Simulator,
    opts: &RunOptions,
    program: &OsString,
    args: &[OsString],
    tmp: Option<&std::path::Path>,
    cgroup: Option<&EnvironmentCgroup>,
) -> io::Result<(std::process::Child, Reader, Reader)> {
    let cfg = sim.config();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .env_remove("LD_PRELOAD")
        .env("AWS_LAMBDA_RUNTIME_API", sim.api_address())
        .env("AWS_LAMBDA_FUNCTION_NAME", &cfg.function_name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", cfg.function_name),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", sim.log_stream())
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env("AWS_REGION", &cfg.region)
        .env("AWS_DEFAULT_REGION", &cfg.region)
        .env("TZ", ":UTC");
    // Lambda Managed Instances tell the runtime how many invokes it may run at once.
    if cfg.max_concurrency > 1 {
        cmd.env(
            "AWS_LAMBDA_MAX_CONCURRENCY",
            cfg.max_concurrency.to_string(),
        );
    }
    if let Some(dir) = tmp {
        cmd.env("TMPDIR", dir);
    }
    for k in &opts.env_remove {
        cmd.env_remove(k);
    }
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    if let Some(dir) = &opts.cwd {
        cmd.current_dir(dir);
    }
    if let Some(cg) = cgroup {
        let procs = cg.procs.clone();
        // SAFETY: between fork and exec the closure makes only async-signal-safe system calls
        // (open, write, close) on memory made before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                // "0": the process that writes, before it execs the runtime.
                let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
                let err = io::Error::last_os_error();
                libc::close(fd);
                if ok { Ok(()) } else { Err(err) }
            })
        };
    }
    let mut child = cmd.spawn()?;
    let out_echo: Option<fn() -> Box<dyn Write>> = opts
        .echo
        .then_some(|| Box::new(io::stdout()) as Box<dyn Write>);
    let err_echo: Option<fn() -> Box<dyn Write>> = opts
        .echo
        .then_some(|| Box::new(io::stderr()) as Box<dyn Write>);
    let out = reader(
        child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?,
        out_echo,
    );
    let err = reader(
        child
            .stderr
            .take()
            .ok_or_else(|| io::Error::other("no stderr"))?,
        err_echo,
    );
    Ok((child, out, err))
}
