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

/// What a run produced.
#[derive(Debug)]
pub struct FunctionRun {
    pub stdout: String,
    pub stderr: String,
    /// The simulator became idle (every event has its result and the runtime waits on `/next`).
    pub idle: bool,
    /// Set when the runtime exited by itself before it was stopped.
    pub exited: Option<ExitStatus>,
    /// From spawn to stop.
    pub elapsed: Duration,
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
        .env(
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]0123456789abcdef",
        )
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env("AWS_REGION", &cfg.region)
        .env("AWS_DEFAULT_REGION", &cfg.region)
        .env("TZ", ":UTC");
    for k in &opts.env_remove {
        cmd.env_remove(k);
    }
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    if let Some(dir) = &opts.cwd {
        cmd.current_dir(dir);
    }
    let started = Instant::now();
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
    let deadline = started + opts.timeout.unwrap_or(Duration::from_secs(60));
    let mut idle = false;
    let mut exited = None;
    loop {
        if sim.wait_idle(Duration::from_millis(10)) {
            idle = true;
            break;
        }
        if let Some(status) = child.try_wait()? {
            exited = Some(status);
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    // Stop the whole environment, as Lambda does.
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill has no memory effects; a negative pid names the process group we created.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    child.wait()?;
    let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    Ok(FunctionRun {
        stdout,
        stderr,
        idle,
        exited,
        elapsed: started.elapsed(),
    })
}
