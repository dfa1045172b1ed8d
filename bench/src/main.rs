//! `make bench`: what lambda-meter costs, measured side by side with doing nothing and with
//! what users pick instead, in one run on one machine.
//!
//! How it stays fair on a small shared machine:
//! - the bench, its Runtime API simulator and every runtime it starts share one CPU (the
//!   process pins itself first; threads and children inherit the mask), so no run can settle
//!   into "runtime and simulator on two CPUs" while another runs on one;
//! - each round runs every (variant, length) pair once, in an order shuffled per round;
//! - per-invoke figures are a long run minus a short run of the same variant in the same
//!   round, divided by the difference in invokes, so start-up cancels;
//! - the runtime's CPU time is the scheduler's accounting of all its threads
//!   (`/proc/<pid>/task/*/schedstat`), beside wall time;
//! - instruction counts (callgrind), cache misses (cachegrind) and system-call counts (strace)
//!   are deterministic and are measured once per variant, long minus short as well; callgrind
//!   with an unstripped build of the library also says which functions the added
//!   instructions are spent in;
//! - each runtime gets the library as Lambda gives it: managed runtimes through the wrapper,
//!   OS-only ones (Rust, a bash + curl custom runtime) with `LD_PRELOAD` alone;
//! - each runtime runs as Lambda's do, as an unprivileged user (run as root, the bench starts
//!   them as nobody: see `lambda_sim::as_lambda_user`);
//! - what the library costs processes that never talk to the Runtime API (every child of the
//!   runtime loads it) is measured on `/bin/true`, started in batches.
//!
//! The tables are printed and written to BENCHMARKS.md, with the targets of issue 23 and
//! which ones the measured figures meet.

use lambda_sim::{Config, Event, RunOptions, Simulator, as_lambda_user, run_function};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Rounds, and invokes of the long and short runs. `LAMBDA_METER_BENCH_QUICK=1` makes a quick
/// smoke run of the whole bench (its figures are not for BENCHMARKS.md).
fn quick() -> bool {
    std::env::var_os("LAMBDA_METER_BENCH_QUICK").is_some()
}
fn rounds() -> usize {
    let default = if quick() { 1 } else { 5 };
    std::env::var("LAMBDA_METER_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default)
}
fn long() -> usize {
    if quick() { 300 } else { 2000 }
}
fn short() -> usize {
    if quick() { 100 } else { 200 }
}

/// How long the simulator holds the first event (below the library's proactive-init threshold).
const HOLD_FIRST_EVENT: Duration = Duration::from_millis(300);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A directory the tools' output files go to, writable by the user the runtimes run as (see
/// `as_lambda_user`), and `name` in it, removed if it was there.
fn tool_output(name: &str) -> PathBuf {
    let dir = root().join("target/bench/out");
    std::fs::create_dir_all(&dir).expect("target/bench/out");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777))
        .expect("target/bench/out mode");
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

/// How a variant gets the library, as Lambda gives it to that kind of runtime.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Metered {
    /// Not at all.
    No,
    /// Through the lambda-meter wrapper (`AWS_LAMBDA_EXEC_WRAPPER`: managed runtimes).
    Wrapper,
    /// `LD_PRELOAD` in the function's environment, no wrapper: an OS-only runtime
    /// (`provided.al2023`), which Lambda starts without `AWS_LAMBDA_EXEC_WRAPPER`.
    Preload,
    /// `LD_PRELOAD` of the interposer that does nothing (see [`interposer_library`]): the
    /// floor of any interposer, no records.
    Floor,
}

/// One way to run a function.
struct Variant {
    name: &'static str,
    command: Vec<String>,
    env: Vec<(String, String)>,
    metered: Metered,
    cwd: PathBuf,
}

/// A group of variants of one runtime; the first is the baseline.
struct Group {
    label: &'static str,
    variants: Vec<Variant>,
    /// Invokes of the short and long wall/CPU runs.
    invokes: (usize, usize),
    /// Whether callgrind can count this runtime's instructions in reasonable time (not a JIT).
    callgrind: bool,
    /// Invokes of the short and long callgrind runs.
    callgrind_invokes: (usize, usize),
}

/// What one run measured.
struct RunResult {
    /// The `/next` after the first invoke → the `/next` after the last counted invoke, µs.
    wall_us: f64,
    /// Process start → first `/next`, ms.
    cold_ms: f64,
    /// The runtime's CPU time while it waited for its first event (held back), ns.
    init_cpu_ns: f64,
    /// Its CPU time from then until it was idle after the last invoke, ns.
    invokes_cpu_ns: f64,
    /// CPU time of the whole process tree from start to its end (the runtime and every child
    /// it waited for: `getrusage(RUSAGE_CHILDREN)` of the bench around the run), ns.
    tree_cpu_ns: f64,
    /// The same tree's page faults and voluntary context switches.
    tree_faults: f64,
    tree_switches: f64,
    /// Resident memory after the invokes, KiB.
    rss_kb: f64,
    /// Of it, lambda-meter's own mappings' (`/proc/self/smaps`), KiB.
    library_kb: f64,
    /// The EMF records' mean length, newline included (NaN: none).
    record_bytes: f64,
}

/// What one round measured for one variant.
#[derive(Clone, Copy)]
struct Sample {
    wall_us: f64,
    cpu_us: f64,
    tree_cpu_us: f64,
    tree_faults: f64,
    tree_switches: f64,
    cold_ms: f64,
    init_cpu_ms: f64,
    rss_kb: f64,
    library_kb: f64,
    record_bytes: f64,
}

struct Paths {
    wrapper: PathBuf,
    lib: PathBuf,
    /// The interposer that does nothing ([`interposer_library`]), where it can be built.
    floor: Option<PathBuf>,
}

/// User and system CPU time (ns), page faults and voluntary context switches of this
/// process's children that have ended and been waited for (and of their own waited-for
/// children).
fn children_usage() -> (f64, f64, f64) {
    // SAFETY: a zeroed rusage is valid; getrusage only writes it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    assert_eq!(rc, 0, "getrusage(RUSAGE_CHILDREN)");
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e9 + t.tv_usec as f64 * 1e3;
    (
        tv(ru.ru_utime) + tv(ru.ru_stime),
        (ru.ru_minflt + ru.ru_majflt) as f64,
        ru.ru_nvcsw as f64,
    )
}

/// EMF records in a run's stdout (lines with the `_aws` metadata).
fn emf_records(stdout: &str) -> usize {
    stdout.lines().filter(|l| l.contains("\"_aws\"")).count()
}

/// The mean length of the EMF records in a run's stdout, newline included (NaN: none).
fn record_bytes(stdout: &str) -> f64 {
    let lens: Vec<usize> = stdout
        .lines()
        .filter(|l| l.contains("\"_aws\""))
        .map(|l| l.len() + 1)
        .collect();
    lens.iter().sum::<usize>() as f64 / lens.len() as f64
}

fn run_variant(v: &Variant, paths: &Paths, invokes: usize) -> RunResult {
    let mut events: Vec<Event> = (0..invokes)
        .map(|_| Event::json(&json!({"action": "ok"})))
        .collect();
    events.push(Event::json(&json!({"action": "rss"})));
    let sim = Simulator::start(Config {
        events,
        timeout: Duration::from_secs(900),
        // Held back so the runner reads the runtime's CPU time while it waits (init done).
        first_event_delay: Some(HOLD_FIRST_EVENT),
        ..Config::default()
    })
    .expect("simulator");
    let mut env = v.env.clone();
    if v.metered == Metered::Preload {
        env.push(("LD_PRELOAD".into(), paths.lib.display().to_string()));
    }
    if let (Metered::Floor, Some(floor)) = (v.metered, &paths.floor) {
        env.push(("LD_PRELOAD".into(), floor.display().to_string()));
    }
    let children_before = children_usage();
    // The user goes in front of the wrapper, as Lambda starts the wrapper as that user.
    let mut command: Vec<std::ffi::OsString> = as_lambda_user().iter().map(Into::into).collect();
    if v.metered == Metered::Wrapper {
        command.push(paths.wrapper.clone().into());
    }
    command.extend(v.command.iter().map(Into::into));
    let run = run_function(
        &sim,
        &RunOptions {
            command,
            env,
            cwd: Some(v.cwd.clone()),
            timeout: Some(Duration::from_secs(300)),
            ..RunOptions::default()
        },
    )
    .unwrap_or_else(|e| fail(&format!("{} could not run: {e}", v.name), ""));
    let children_after = children_usage();
    if !run.idle {
        fail(
            &format!(
                "{} did not finish ({} of {} events answered)",
                v.name,
                sim.results().iter().filter(|r| r.is_some()).count(),
                invokes + 1
            ),
            &run.stderr,
        );
    }
    // A metered variant whose library did not meter would measure nothing: each invoke
    // must have its record.
    let records = emf_records(&run.stdout);
    if matches!(v.metered, Metered::Wrapper | Metered::Preload) && records < invokes {
        fail(
            &format!(
                "{}: {records} EMF records on stdout for {invokes} invokes: the library did not meter",
                v.name
            ),
            &run.stderr,
        );
    }
    let arrivals = sim.next_arrivals();
    let last = sim.results()[invokes].clone().expect("rss result");
    let body: Value = serde_json::from_slice(&last.body).unwrap_or(Value::Null);
    let init = run
        .cpu_at_first_next_ns
        .expect("runtime CPU time at the first /next");
    let end = run.cpu_ns.expect("runtime CPU time at the end");
    RunResult {
        wall_us: arrivals[invokes].duration_since(arrivals[1]).as_secs_f64() * 1e6,
        cold_ms: arrivals[0].duration_since(run.spawned_at).as_secs_f64() * 1e3,
        init_cpu_ns: init as f64,
        invokes_cpu_ns: end.saturating_sub(init) as f64,
        tree_cpu_ns: children_after.0 - children_before.0,
        tree_faults: children_after.1 - children_before.1,
        tree_switches: children_after.2 - children_before.2,
        rss_kb: body["rssKb"].as_f64().unwrap_or(f64::NAN),
        library_kb: body["libraryKb"].as_f64().unwrap_or(f64::NAN),
        record_bytes: record_bytes(&run.stdout),
    }
}

/// A small deterministic shuffle (xorshift), seeded per run from the clock.
struct Shuffle(u64);

impl Shuffle {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Runs every variant of every group in interleaved rounds: each round runs each (variant,
/// length) pair once, in a shuffled order. Returns samples[group][variant][round].
fn measure(groups: &[Group], paths: &Paths) -> Vec<Vec<Vec<Sample>>> {
    let mut rng = Shuffle(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 | 1)
            .unwrap_or(0x9e37_79b9),
    );
    let mut samples: Vec<Vec<Vec<Sample>>> = groups
        .iter()
        .map(|g| vec![Vec::new(); g.variants.len()])
        .collect();
    let rounds = rounds();
    for round in 0..rounds {
        let mut jobs: Vec<(usize, usize, usize)> = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            for v in 0..group.variants.len() {
                jobs.push((g, v, group.invokes.0));
                jobs.push((g, v, group.invokes.1));
            }
        }
        rng.shuffle(&mut jobs);
        let mut results: BTreeMap<(usize, usize, usize), RunResult> = BTreeMap::new();
        for (g, v, n) in jobs {
            let variant = &groups[g].variants[v];
            eprintln!(
                "bench: round {}/{rounds}: {} {} ({n} invokes)",
                round + 1,
                groups[g].label,
                variant.name
            );
            let r = run_variant(variant, paths, n);
            eprintln!(
                "bench:   start→first /next {:.1} ms, init CPU {:.1} ms, invokes {:.1} µs wall {:.1} µs CPU each",
                r.cold_ms,
                r.init_cpu_ns / 1e6,
                r.wall_us / (n - 1) as f64,
                r.invokes_cpu_ns / 1e3 / (n + 1) as f64
            );
            results.insert((g, v, n), r);
        }
        for (g, group) in groups.iter().enumerate() {
            let (short_n, long_n) = group.invokes;
            for v in 0..group.variants.len() {
                let short = &results[&(g, v, short_n)];
                let long = &results[&(g, v, long_n)];
                let extra = (long_n - short_n) as f64;
                samples[g][v].push(Sample {
                    wall_us: (long.wall_us - short.wall_us) / extra,
                    cpu_us: (long.invokes_cpu_ns - short.invokes_cpu_ns) / extra / 1e3,
                    tree_cpu_us: (long.tree_cpu_ns - short.tree_cpu_ns) / extra / 1e3,
                    tree_faults: (long.tree_faults - short.tree_faults) / extra,
                    tree_switches: (long.tree_switches - short.tree_switches) / extra,
                    cold_ms: (long.cold_ms + short.cold_ms) / 2.0,
                    init_cpu_ms: (long.init_cpu_ns + short.init_cpu_ns) / 2.0 / 1e6,
                    rss_kb: long.rss_kb,
                    library_kb: long.library_kb,
                    record_bytes: long.record_bytes,
                });
            }
        }
    }
    samples
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median, min and max of per-round values.
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

fn stat(values: Vec<f64>) -> Stat {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Stat {
        median: median(values),
        min,
        max,
    }
}

/// Per-round differences `a - base` of one field.
fn differences(a: &[Sample], base: &[Sample], f: fn(&Sample) -> f64) -> Stat {
    stat(a.iter().zip(base).map(|(x, b)| f(x) - f(b)).collect())
}

fn fmt_diff(s: &Stat, unit: &str, digits: usize) -> String {
    format!(
        "{:+.d$} {unit} ({:+.d$} – {:+.d$})",
        s.median,
        s.min,
        s.max,
        d = digits
    )
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn must_exist(p: &Path) -> PathBuf {
    assert!(
        p.exists(),
        "{} is missing: `make bench` builds it",
        p.display()
    );
    p.to_path_buf()
}

/// Pins this process (and so the simulator's threads and every runtime it starts) to one CPU:
/// the first CPU it may run on.
fn pin_to_one_cpu() -> usize {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read and write it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
            0
        );
        let cpu = (0..libc::CPU_SETSIZE as usize)
            .find(|c| libc::CPU_ISSET(*c, &set))
            .expect("a CPU");
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one),
            0
        );
        cpu
    }
}

/// The environment the wrapper gives the runtime, for runs that skip the wrapper (valgrind and
/// strace must see the runtime's own exec): the variant's own, and the library's path when the
/// variant is metered (given to the traced program only: see [`run_under`]).
fn preload_env(v: &Variant, lib: &Path) -> (Vec<(String, String)>, Option<String>) {
    (
        v.env.clone(),
        matches!(
            v.metered,
            Metered::Wrapper | Metered::Preload | Metered::Floor
        )
        .then(|| lib.display().to_string()),
    )
}

/// Ends the bench with `what` and the tail of `stderr`: a variant that fails stops the run
/// with a clear error, not a long wait.
fn fail(what: &str, stderr: &str) -> ! {
    let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
    eprintln!("bench: {what}");
    for l in tail.iter().rev() {
        eprintln!("  {l}");
    }
    std::process::exit(1);
}

/// How long the first invoke of a counted run sleeps (see [`run_under`]).
const SETTLE_SLEEP_MS: u64 = 200;

/// Runs `tool… command` for a first invoke that sleeps [`SETTLE_SLEEP_MS`], `invokes` no-op
/// invokes, and a last one that makes the runtime exit (so the tool writes its report); returns
/// the run's stderr. The sleep lets the temporary directory's times, which the runtime's start
/// changed, age past the 50 ms after which the library trusts them: otherwise the first no-op
/// invokes look closer (a `statx` of the channel, a `stat` of the journal), and how many of
/// them do depends on the tool's pace, a different number in the short and the long run. The library reaches only the
/// traced program: strace is told to set `LD_PRELOAD` for it (`-E`), so strace itself never
/// loads it (it would be the environment's oldest process, and the runtime's records would go
/// to strace's stdout); valgrind's wrapper and launcher `exec` one another and the program in
/// one process, so the variable reaches the program with nothing of ours running before it.
fn run_under(tool: &[String], v: &Variant, lib: &Path, invokes: usize) -> String {
    run_with(tool, v, lib, invokes, &json!({"action": "ok"}))
}

/// [`run_under`] with `invokes` events of `payload` instead of no-op ones.
fn run_with(tool: &[String], v: &Variant, lib: &Path, invokes: usize, payload: &Value) -> String {
    let mut events = vec![Event::json(
        &json!({"action": "sleep", "ms": SETTLE_SLEEP_MS}),
    )];
    events.extend((0..invokes).map(|_| Event::json(payload)));
    events.push(Event::json(&json!({"action": "exit", "code": 0})));
    let sim = Simulator::start(Config {
        events,
        timeout: Duration::from_secs(900),
        ..Config::default()
    })
    .expect("simulator");
    let (mut env, preload) = preload_env(v, lib);
    let mut command: Vec<std::ffi::OsString> = as_lambda_user().iter().map(Into::into).collect();
    command.extend(tool.iter().map(Into::into));
    if let Some(lib) = preload {
        if tool[0] == "strace" {
            command.push("-E".into());
            command.push(format!("LD_PRELOAD={lib}").into());
        } else {
            env.push(("LD_PRELOAD".into(), lib));
        }
    }
    command.extend(v.command.iter().map(Into::into));
    // A second an invoke is far more than either tool needs; a variant that stops answering
    // fails the bench long before the old 20 minutes.
    let limit = Duration::from_secs(120 + invokes as u64);
    let run = run_function(
        &sim,
        &RunOptions {
            command,
            env,
            cwd: Some(v.cwd.clone()),
            timeout: Some(limit),
            ..RunOptions::default()
        },
    )
    .unwrap_or_else(|e| {
        fail(
            &format!("{} under {} could not run: {e}", v.name, tool[0]),
            "",
        )
    });
    if run.exited.is_none() {
        fail(
            &format!(
                "{} under {} did not exit within {} s ({} of {} events answered)",
                v.name,
                tool[0],
                limit.as_secs(),
                sim.results().iter().filter(|r| r.is_some()).count(),
                invokes + 1
            ),
            &run.stderr,
        );
    }
    run.stderr
}

/// Instructions callgrind counted for the runtime process (its first report).
fn callgrind_total(stderr: &str) -> f64 {
    stderr
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("callgrind total")
}

/// What callgrind counted for one variant.
#[derive(Clone, Copy)]
struct Instructions {
    /// Per invoke: long run minus short run.
    per_invoke: f64,
    /// Before the first invoke (and after the last): the short run less its invokes.
    outside_invokes: f64,
}

fn instructions_of(v: &Variant, lib: &Path, runs: (usize, usize)) -> Instructions {
    instructions_with(v, lib, runs, &json!({"action": "ok"}))
}

/// [`instructions_of`] invokes of `payload`.
fn instructions_with(
    v: &Variant,
    lib: &Path,
    (short, long): (usize, usize),
    payload: &Value,
) -> Instructions {
    eprintln!("bench: callgrind: {} ({payload})", v.name);
    let tool = vec![
        "valgrind".to_string(),
        "--tool=callgrind".into(),
        "--callgrind-out-file=/dev/null".into(),
    ];
    let count = |n| callgrind_total(&run_with(&tool, v, lib, n, payload));
    let (a, b) = (count(short), count(long));
    let per_invoke = (b - a) / (long - short) as f64;
    Instructions {
        per_invoke,
        // The short run's invokes and the one that makes it exit.
        outside_invokes: a - per_invoke * (short + 1) as f64,
    }
}

/// The caches cachegrind simulates, fixed rather than read from the host (a VM's CPUID can
/// report odd ones, e.g. a direct-mapped 256 MiB last level): a common x86_64 core's.
const CACHES: [&str; 3] = ["--I1=32768,8,64", "--D1=32768,8,64", "--LL=8388608,16,64"];
const CACHES_TEXT: &str = "I1 and D1 32 KiB 8-way, LL 8 MiB 16-way, 64-byte lines";

/// Cache misses cachegrind simulated (per run, or per invoke).
#[derive(Clone, Copy)]
struct Misses {
    i1: f64,
    /// D1 misses, reads and writes.
    d1: f64,
    /// Last-level misses, instruction and data, reads and writes.
    ll: f64,
}

impl Misses {
    fn minus(self, o: Misses) -> Misses {
        Misses {
            i1: self.i1 - o.i1,
            d1: self.d1 - o.d1,
            ll: self.ll - o.ll,
        }
    }
    fn per(self, n: f64) -> Misses {
        Misses {
            i1: self.i1 / n,
            d1: self.d1 / n,
            ll: self.ll / n,
        }
    }
}

/// Misses from cachegrind's summary on stderr (`==pid== I1  misses:  1,091`; its first report,
/// the runtime's).
fn cachegrind_misses(stderr: &str) -> Misses {
    let count = |label: &str| -> f64 {
        stderr
            .lines()
            .find_map(|l| {
                let rest = l.split_once("== ")?.1.trim_start();
                let value = rest.strip_prefix(label)?.trim_start();
                value
                    .split_whitespace()
                    .next()?
                    .replace(',', "")
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or_else(|| fail(&format!("no \"{label}\" in cachegrind's report"), stderr))
    };
    Misses {
        i1: count("I1  misses:"),
        d1: count("D1  misses:"),
        ll: count("LL misses:"),
    }
}

/// Cache misses per invoke (long run minus short run, as for the instructions).
fn misses_of(v: &Variant, lib: &Path, (short, long): (usize, usize)) -> Misses {
    eprintln!("bench: cachegrind: {}", v.name);
    let mut tool = vec![
        "valgrind".to_string(),
        "--tool=cachegrind".into(),
        "--cache-sim=yes".into(),
        "--cachegrind-out-file=/dev/null".into(),
    ];
    tool.extend(CACHES.iter().map(|c| c.to_string()));
    let count = |n| cachegrind_misses(&run_under(&tool, v, lib, n));
    let (a, b) = (count(short), count(long));
    b.minus(a).per((long - short) as f64)
}

/// Instructions by function in one callgrind output file, as `callgrind_annotate
/// --inclusive=no` lists them (`1,234 (0.5%)  file:function [object]`): keyed by the function's
/// name (after the first ':'), summed over files (inlined code is attributed to several), with
/// the objects it was seen in.
fn callgrind_functions(out: &Path) -> BTreeMap<String, (f64, Vec<String>)> {
    let annotated = Command::new("callgrind_annotate")
        .args(["--inclusive=no", "--threshold=100", "--auto=no"])
        .arg(out)
        .output()
        .unwrap_or_else(|e| fail(&format!("callgrind_annotate {}: {e}", out.display()), ""));
    if !annotated.status.success() {
        fail(
            &format!("callgrind_annotate {} failed", out.display()),
            &String::from_utf8_lossy(&annotated.stderr),
        );
    }
    let text = String::from_utf8_lossy(&annotated.stdout);
    let mut functions: BTreeMap<String, (f64, Vec<String>)> = BTreeMap::new();
    for line in text.lines() {
        let Some((count, rest)) = line.trim_start().split_once(' ') else {
            continue;
        };
        let Ok(count) = count.replace(',', "").parse::<f64>() else {
            continue;
        };
        // "(12.34%)  file:function [object]"
        let Some(name) = rest
            .trim_start()
            .strip_prefix('(')
            .and_then(|r| r.split_once("%)"))
            .map(|(_, n)| n.trim())
        else {
            continue;
        };
        if name == "PROGRAM TOTALS" {
            continue;
        }
        let (name, object) = match name.rsplit_once(" [") {
            Some((n, o)) if o.ends_with(']') => (n, o.trim_end_matches(']')),
            _ => (name, ""),
        };
        let function = name.split_once(':').map_or(name, |(_, f)| f);
        let entry = functions.entry(function.to_string()).or_default();
        entry.0 += count;
        let object = object.rsplit('/').next().unwrap_or(object);
        if !object.is_empty() && !entry.1.iter().any(|o| o == object) {
            entry.1.push(object.to_string());
        }
    }
    if functions.is_empty() {
        fail(
            &format!("no functions in callgrind_annotate {}", out.display()),
            &text,
        );
    }
    functions
}

/// One function's share of the added instructions per invoke.
struct FunctionCost {
    name: String,
    objects: String,
    per_invoke: f64,
}

/// Where the library's per-invoke instructions go, by function: callgrind of the Rust runtime
/// with an unstripped build of the library (its own target directory, so the layer's build is
/// untouched) and without it, a short and a long run each; per function, (long − short) with
/// the library minus (long − short) without, per invoke, so the host's own work cancels and
/// what remains is the library's functions and the C library's on its behalf. Returns every
/// function, largest effect first, and their sum.
fn instructions_by_function(
    base: &Variant,
    metered: &Variant,
    (short, long): (usize, usize),
) -> (Vec<FunctionCost>, f64) {
    let root = root();
    let symbols = root.join("target/bench-symbols");
    eprintln!(
        "bench: building the library with symbols in {}",
        symbols.display()
    );
    let build = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "lambda_meter",
            "--target-dir",
        ])
        .arg(&symbols)
        .env("CARGO_PROFILE_RELEASE_STRIP", "none")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "1")
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| fail(&format!("cargo build (library with symbols): {e}"), ""));
    if !build.status.success() {
        fail(
            "cargo build (library with symbols) failed",
            &String::from_utf8_lossy(&build.stderr),
        );
    }
    let lib = must_exist(&symbols.join("release/liblambda_meter.so"));
    let profile = |v: &Variant, tag: &str, n: usize| {
        eprintln!("bench: callgrind by function: {} ({n} invokes)", v.name);
        let out = tool_output(&format!("callgrind-{tag}-{n}.out"));
        let tool = vec![
            "valgrind".to_string(),
            "--tool=callgrind".into(),
            format!("--callgrind-out-file={}", out.display()),
        ];
        run_under(&tool, v, &lib, n);
        callgrind_functions(&out)
    };
    let (bs, bl) = (
        profile(base, "baseline", short),
        profile(base, "baseline", long),
    );
    let (ms, ml) = (
        profile(metered, "symbols", short),
        profile(metered, "symbols", long),
    );
    let at = |m: &BTreeMap<String, (f64, Vec<String>)>, k: &str| m.get(k).map_or(0.0, |e| e.0);
    let names: std::collections::BTreeSet<&String> = bs
        .keys()
        .chain(bl.keys())
        .chain(ms.keys())
        .chain(ml.keys())
        .collect();
    let extra = (long - short) as f64;
    let mut costs: Vec<FunctionCost> = names
        .into_iter()
        .map(|k| {
            let mut objects: Vec<String> = Vec::new();
            for m in [&ml, &ms, &bl, &bs] {
                for o in m.get(k).map(|e| e.1.as_slice()).unwrap_or_default() {
                    if !objects.contains(o) {
                        objects.push(o.clone());
                    }
                }
            }
            FunctionCost {
                name: k.clone(),
                objects: objects.join(", "),
                per_invoke: ((at(&ml, k) - at(&ms, k)) - (at(&bl, k) - at(&bs, k))) / extra,
            }
        })
        .collect();
    let total = costs.iter().map(|c| c.per_invoke).sum();
    costs.sort_by(|a, b| b.per_invoke.abs().total_cmp(&a.per_invoke.abs()));
    (costs, total)
}

/// System calls by name, from `strace -c` output.
fn strace_counts(path: &Path) -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors,] syscall
        if f.len() >= 5
            && f[0].parse::<f64>().is_ok()
            && let Ok(calls) = f[3].parse::<f64>()
        {
            counts.insert(f[f.len() - 1].to_string(), calls);
        }
    }
    counts
}

/// System calls per invoke, by name (long run minus short run); "total" is the sum.
fn syscalls_per_invoke(v: &Variant, lib: &Path) -> BTreeMap<String, f64> {
    syscalls_per_invoke_over(v, lib, (100, 600))
}

/// [`syscalls_per_invoke`] from runs of `short` and `long` invokes (the whole process tree's
/// calls: `strace -f`).
fn syscalls_per_invoke_over(
    v: &Variant,
    lib: &Path,
    (short, long): (usize, usize),
) -> BTreeMap<String, f64> {
    eprintln!("bench: strace: {}", v.name);
    let count = |n: usize| {
        let out = tool_output(&format!("strace-{n}.txt"));
        let tool = vec![
            "strace".to_string(),
            "-f".into(),
            "-c".into(),
            "-o".into(),
            out.display().to_string(),
        ];
        run_under(&tool, v, lib, n);
        strace_counts(&out)
    };
    let (a, b) = (count(short), count(long));
    let mut per = BTreeMap::new();
    for (name, calls) in &b {
        let d = (calls - a.get(name).copied().unwrap_or(0.0)) / (long - short) as f64;
        if d.abs() >= 0.005 {
            per.insert(name.clone(), d);
        }
    }
    per
}

/// Instructions per invoke of a runtime's whole process tree (`valgrind --tool=callgrind
/// --trace-children=yes`: every process it starts, each its own output file, summed), from runs
/// of `short` and `long` invokes. `None` where a run left no output.
fn tree_instructions_per_invoke(
    v: &Variant,
    lib: &Path,
    (short, long): (usize, usize),
) -> Option<f64> {
    eprintln!("bench: callgrind of the process tree: {}", v.name);
    let count = |n: usize| {
        let dir = tool_output(&format!("callgrind-tree-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("callgrind tree directory");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777))
            .expect("callgrind tree directory mode");
        let tool = vec![
            "valgrind".to_string(),
            "--tool=callgrind".into(),
            "--trace-children=yes".into(),
            format!("--callgrind-out-file={}/cg.%p", dir.display()),
        ];
        run_under(&tool, v, lib, n);
        let mut total = 0.0;
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if let Some(n) = text
                .lines()
                .find_map(|l| l.strip_prefix("totals:"))
                .and_then(|n| n.trim().parse::<f64>().ok())
            {
                total += n;
                files += 1;
            }
        }
        (files > 0).then_some(total)
    };
    Some((count(long)? - count(short)?) / (long - short) as f64)
}

/// The library's code a runtime ran, from its start through `invokes` invokes: the distinct
/// 4 KiB pages and 64-byte lines of `.text` holding an instruction it executed (`valgrind
/// --tool=callgrind --dump-instr=yes`, positions uncompressed: every cost line names its
/// instruction's address in its object), and the size of `.text`. `None` where there is none.
fn code_footprint(v: &Variant, lib: &Path, invokes: usize) -> Option<CodeFootprint> {
    eprintln!("bench: callgrind, the library's code run: {}", v.name);
    let sections = Command::new("readelf").arg("-SW").arg(lib).output().ok()?;
    let (text_start, text_len) =
        String::from_utf8_lossy(&sections.stdout)
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let at = f.iter().position(|w| *w == ".text")?;
                let hex = |w: &&str| u64::from_str_radix(w, 16).ok();
                Some((hex(f.get(at + 2)?)?, hex(f.get(at + 4)?)?))
            })?;
    let out = tool_output(&format!("callgrind-code-{invokes}.out"));
    let tool = vec![
        "valgrind".to_string(),
        "--tool=callgrind".into(),
        "--dump-instr=yes".into(),
        "--compress-pos=no".into(),
        "--compress-strings=no".into(),
        format!("--callgrind-out-file={}", out.display()),
    ];
    run_under(&tool, v, lib, invokes);
    let text = std::fs::read_to_string(&out).ok()?;
    let name = lib.file_name()?.to_string_lossy().into_owned();
    let (mut pages, mut lines) = (BTreeSet::new(), BTreeSet::new());
    let mut ours = false;
    for l in text.lines() {
        if let Some(object) = l.strip_prefix("ob=") {
            ours = object.ends_with(&name);
        } else if ours
            && let Some(hex) = l.strip_prefix("0x")
            && let Some(at) = hex
                .split_whitespace()
                .next()
                .and_then(|h| u64::from_str_radix(h, 16).ok())
            && (text_start..text_start + text_len).contains(&at)
        {
            pages.insert(at / 4096);
            lines.insert(at / 64);
        }
    }
    (!pages.is_empty()).then_some(CodeFootprint {
        pages: pages.len(),
        lines: lines.len(),
        text_bytes: text_len,
    })
}

/// What [`code_footprint`] found.
struct CodeFootprint {
    pages: usize,
    lines: usize,
    text_bytes: u64,
}

/// Allocations per steady-state invoke, as the deterministic test `src/core/cost.rs` (in the
/// core crate) counts them.
fn steady_state_allocations() -> Option<f64> {
    eprintln!("bench: allocation count (cargo test --lib cost)");
    let out = Command::new(env!("CARGO"))
        .args([
            "test",
            "--lib",
            "-q",
            "-p",
            "lambda_meter_core",
            "cost",
            "--",
            "--nocapture",
        ])
        .current_dir(root())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("allocations per steady-state invoke: "))
        .and_then(|n| n.trim().parse().ok())
}

/// Instructions a process spends from exec to exit for `/bin/true`, with or without the
/// library loaded (active, as in Lambda).
fn load_instructions(lib: Option<&Path>) -> f64 {
    let mut c = Command::new("valgrind");
    c.args([
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        "/bin/true",
    ])
    .env_remove("LD_PRELOAD")
    .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9");
    if let Some(lib) = lib {
        c.env("LD_PRELOAD", lib);
    }
    let out = c.output().expect("valgrind");
    callgrind_total(&String::from_utf8_lossy(&out.stderr))
}

/// Instructions dash runs from its exec to the wrapper's exec of the runtime, and to the exec
/// of `dash -c 'exec …'` (a shell's start-up alone): a runtime in `/bin` that is not there, so
/// that the exec fails at the same point both ways and the shell exits, where valgrind counts.
fn wrapper_script_instructions(wrapper: &Path) -> (f64, f64) {
    const ABSENT: &str = "/bin/lambda-meter-bench-absent";
    let count = |args: &[&str]| {
        let out = Command::new("valgrind")
            .args(["--tool=callgrind", "--callgrind-out-file=/dev/null", "dash"])
            .args(args)
            .env_remove("LD_PRELOAD")
            .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
            .env("TMPDIR", root().join("target/bench/tmp"))
            .output()
            .expect("valgrind");
        callgrind_total(&String::from_utf8_lossy(&out.stderr))
    };
    let script = wrapper.display().to_string();
    (
        count(&[script.as_str(), ABSENT]),
        count(&["-c", &format!("exec {ABSENT}")]),
    )
}

/// Processes the wrapper starts before it execs the runtime (clone, fork and vfork calls seen
/// by strace, the exec'd `/bin/true` included: it starts none).
fn wrapper_processes(wrapper: &Path) -> usize {
    let out = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "signal=none",
            "-e",
            "trace=clone,clone3,fork,vfork",
        ])
        .arg(wrapper)
        .arg("/bin/true")
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .output()
        .expect("strace");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("clone") || l.contains("fork"))
        .count()
}

/// Ways to start `/bin/true`, each against starting it alone.
#[derive(Clone, Copy)]
enum Start {
    /// `/bin/true`.
    Plain,
    /// `dash -c 'exec /bin/true'`: a shell's own start-up and one exec, the floor of any
    /// `#!/bin/sh` wrapper.
    Dash,
    /// `LD_PRELOAD=lib /bin/true`: a process that never talks to the Runtime API, with the
    /// library.
    Preload,
    /// `wrapper /bin/true`: the wrapper's shell and script, and the library in `/bin/true`.
    Wrapper,
    /// `LD_PRELOAD=lib /bin/true` with the x86_64 layer's glibc 2.26 build.
    Layer226,
    /// …and with its glibc 2.34 build, the one the wrapper takes on glibc 2.34 and later.
    Layer234,
    /// `LD_PRELOAD=empty.so /bin/true`: a library with nothing in it, what any preloaded
    /// library costs at least.
    Empty,
    /// `LD_PRELOAD=libgcc_s.so.1 /bin/true`: the system's unwinder alone, which a Rust or C++
    /// library usually loads (the library looks it up only when something unwinds).
    Unwinder,
    /// `LD_PRELOAD=interposer.so /bin/true`: a library that interposes the same libc functions
    /// and does nothing else (see [`interposer_library`]): the floor of any interposer.
    Interposer,
}

const STARTS: [Start; 9] = [
    Start::Plain,
    Start::Dash,
    Start::Preload,
    Start::Wrapper,
    Start::Layer226,
    Start::Layer234,
    Start::Empty,
    Start::Unwinder,
    Start::Interposer,
];

impl Start {
    fn command(self) -> &'static str {
        match self {
            Start::Plain => "/bin/true",
            Start::Dash => "dash -c 'exec /bin/true'",
            Start::Preload => "LD_PRELOAD=lib /bin/true",
            Start::Wrapper => "wrapper /bin/true",
            Start::Layer226 => "LD_PRELOAD=layer's glibc 2.26 lib /bin/true",
            Start::Layer234 => "LD_PRELOAD=layer's glibc 2.34 lib /bin/true",
            Start::Empty => "LD_PRELOAD=empty.so /bin/true",
            Start::Unwinder => "LD_PRELOAD=libgcc_s.so.1 /bin/true",
            Start::Interposer => "LD_PRELOAD=interposer.so /bin/true",
        }
    }
}

/// Per start, ms: wall time and the started processes' CPU time.
#[derive(Clone, Copy)]
struct StartCost {
    wall: f64,
    cpu: f64,
}

/// What each way of starting `/bin/true` costs: per round and way, `n` starts
/// (`std::process::Command`, waited for one by one) in blocks, the ways in an order shuffled
/// per block; wall time per start, and the CPU time of the started processes per start
/// (`getrusage(RUSAGE_CHILDREN)` around each block). Returns costs[way][round].
fn start_costs(wrapper: &Path, lib: &Path, others: [&Path; 5], n: usize) -> Vec<Vec<StartCost>> {
    // The wrapper notes each start in $TMPDIR (a line in .lambda-meter-inits): keep them ours,
    // and from this run only.
    let tmp = root().join("target/bench/tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).expect("target/bench/tmp");
    let batch = |way: Start, n: usize| -> StartCost {
        let cpu0 = children_usage().0;
        let t = std::time::Instant::now();
        for _ in 0..n {
            let mut c = match way {
                Start::Plain
                | Start::Preload
                | Start::Layer226
                | Start::Layer234
                | Start::Empty
                | Start::Unwinder
                | Start::Interposer => Command::new("/bin/true"),
                Start::Dash => {
                    let mut c = Command::new("dash");
                    c.args(["-c", "exec /bin/true"]);
                    c
                }
                Start::Wrapper => {
                    let mut c = Command::new(wrapper);
                    c.arg("/bin/true");
                    c
                }
            };
            c.env_remove("LD_PRELOAD")
                .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
                .env("TMPDIR", &tmp);
            match way {
                Start::Preload => c.env("LD_PRELOAD", lib),
                Start::Layer226 => c.env("LD_PRELOAD", others[0]),
                Start::Layer234 => c.env("LD_PRELOAD", others[1]),
                Start::Empty => c.env("LD_PRELOAD", others[2]),
                Start::Unwinder => c.env("LD_PRELOAD", others[3]),
                Start::Interposer => c.env("LD_PRELOAD", others[4]),
                _ => &mut c,
            };
            let status = c
                .status()
                .unwrap_or_else(|e| fail(&format!("starting {}: {e}", way.command()), ""));
            if !status.success() {
                fail(&format!("{} failed: {status}", way.command()), "");
            }
        }
        StartCost {
            wall: t.elapsed().as_secs_f64() * 1e3,
            cpu: (children_usage().0 - cpu0) / 1e6,
        }
    };
    let mut rng = Shuffle(0x2545_f491_4f6c_dd1d);
    let mut costs: Vec<Vec<StartCost>> = vec![Vec::new(); STARTS.len()];
    let rounds = rounds();
    // A round's starts go in blocks of BLOCK per way, the ways in an order shuffled per block:
    // the machine's load drifts over a round (seconds), so each way is measured across all of
    // it, not in one stretch of its own.
    const BLOCK: usize = 10;
    let blocks = n.div_ceil(BLOCK);
    for round in 0..rounds {
        eprintln!(
            "bench: round {}/{rounds}: /bin/true × {}, {} ways, in blocks of {BLOCK}",
            round + 1,
            blocks * BLOCK,
            STARTS.len()
        );
        let mut total = [StartCost {
            wall: 0.0,
            cpu: 0.0,
        }; STARTS.len()];
        for _ in 0..blocks {
            let mut ways = STARTS;
            rng.shuffle(&mut ways);
            for way in ways {
                let c = batch(way, BLOCK);
                total[way as usize].wall += c.wall;
                total[way as usize].cpu += c.cpu;
            }
        }
        for (way, t) in total.iter().enumerate() {
            costs[way].push(StartCost {
                wall: t.wall / (blocks * BLOCK) as f64,
                cpu: t.cpu / (blocks * BLOCK) as f64,
            });
        }
    }
    costs
}

/// Per-round differences of one way of starting `/bin/true` against starting it alone.
fn start_added(costs: &[Vec<StartCost>], way: Start, f: fn(&StartCost) -> f64) -> Stat {
    stat(
        costs[way as usize]
            .iter()
            .zip(&costs[Start::Plain as usize])
            .map(|(a, b)| f(a) - f(b))
            .collect(),
    )
}

/// The library's dynamic relocations and needed libraries, as `readelf` lists them: one line.
fn relocations(lib: &Path) -> String {
    let readelf = |flag: &str| {
        let out = Command::new("readelf")
            .args([flag, "-W"])
            .arg(lib)
            .output()
            .unwrap_or_else(|e| fail(&format!("readelf {flag} {}: {e}", lib.display()), ""));
        if !out.status.success() {
            fail(
                &format!("readelf {flag} {} failed", lib.display()),
                &String::from_utf8_lossy(&out.stderr),
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let relocs = readelf("-r");
    // "Relocation section '.rela.dyn' at offset 0x… contains 1234 entries:"
    let mut sections = Vec::new();
    let mut total = 0usize;
    for l in relocs.lines() {
        if let Some(rest) = l.strip_prefix("Relocation section '")
            && let Some((name, tail)) = rest.split_once('\'')
            && let Some(n) = tail
                .split_once("contains ")
                .and_then(|(_, t)| t.split_whitespace().next())
                .and_then(|n| n.parse::<usize>().ok())
        {
            total += n;
            sections.push(format!("{name} {n}"));
        }
    }
    let relative = relocs.lines().filter(|l| l.contains("_RELATIVE")).count();
    let dynamic = readelf("-d");
    // "0x… (RELASZ)  12345 (bytes)"
    let bytes: u64 = dynamic
        .lines()
        .filter(|l| l.contains("(RELASZ)") || l.contains("(PLTRELSZ)") || l.contains("(RELRSZ)"))
        .filter_map(|l| {
            l.split(')')
                .nth(1)
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum();
    let needed: Vec<String> = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| {
            l.split_once('[')
                .and_then(|(_, r)| r.split_once(']'))
                .map(|(n, _)| n.to_string())
        })
        .collect();
    format!(
        "{total} relocations ({}; {relative} of them relative), {bytes} bytes of relocation \
         tables; needs {} ({})",
        sections.join(", "),
        needed.join(", "),
        if needed.iter().any(|n| n.starts_with("libgcc_s")) {
            "libgcc_s among them"
        } else {
            "not libgcc_s"
        }
    )
}

/// A shared object with one empty function (`cc -shared`): what preloading any library costs
/// at least.
fn empty_library() -> PathBuf {
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let (source, lib) = (dir.join("empty.c"), dir.join("empty.so"));
    std::fs::write(&source, "void lambda_meter_bench_empty(void) {}\n").unwrap();
    let ok = Command::new("cc")
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&source)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        fail("cc could not build an empty shared object", "");
    }
    lib
}

/// A library that interposes the libc functions `lib` exports and does nothing else: each is a
/// jump through a slot filled with `dlsym(RTLD_NEXT, …)` by its constructor (or, for a call
/// that comes before it, on that call). What any `LD_PRELOAD` interposer of these functions
/// costs at least: the loader looks through one more object that defines symbols in every
/// lookup of every process, and maps and resolves it. x86_64 only (`None` elsewhere).
fn interposer_library(lib: &Path) -> Option<PathBuf> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(lib)
        .output()
        .ok()?;
    // Its own dlsym and dlopen would be in the way of the constructor's; the C API is not
    // libc's.
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, kind, name) = (f.next()?, f.next()?, f.next()?);
            (matches!(kind, "T" | "W" | "i")
                && !name.starts_with("lambda_meter_")
                && !matches!(name, "dlsym" | "dlopen"))
            .then(|| name.to_string())
        })
        .collect();
    if names.is_empty() {
        return None;
    }
    let mut c = String::from(
        "#define _GNU_SOURCE\n#include <dlfcn.h>\n\
         __attribute__((visibility(\"hidden\"))) void *lm_floor_real[NAMES];\n\
         static const char *const names[NAMES] = {\n",
    );
    for n in &names {
        writeln!(c, "    \"{n}\",").unwrap();
    }
    c.push_str(
        "};\n\
         __attribute__((visibility(\"hidden\"))) void *lm_floor_resolve(long i) {\n\
         \x20   void *p = dlsym(RTLD_NEXT, names[i]);\n\
         \x20   __atomic_store_n(&lm_floor_real[i], p, __ATOMIC_RELEASE);\n\
         \x20   return p;\n}\n\
         __attribute__((constructor)) static void resolve_all(void) {\n\
         \x20   for (long i = 0; i < NAMES; i++)\n\
         \x20       if (!lm_floor_real[i]) lm_floor_resolve(i);\n}\n\
         __asm__(\".text\\n\"\n",
    );
    for (i, n) in names.iter().enumerate() {
        // The slot's function, or (before the constructor) resolved now, every argument
        // register kept: integer ones, %al of a variadic call, and %xmm0-7.
        let off = i * 8;
        writeln!(
            c,
            "  \".globl {n}\\n.type {n},@function\\n{n}:\\n\"\n\
             \x20 \"  movq lm_floor_real+{off}(%rip), %r11\\n  testq %r11, %r11\\n  jz 1f\\n  jmp *%r11\\n\"\n\
             \x20 \"1: pushq %rdi\\n  pushq %rsi\\n  pushq %rdx\\n  pushq %rcx\\n  pushq %r8\\n  pushq %r9\\n  pushq %rax\\n\"\n\
             \x20 \"  subq $128, %rsp\\n  movdqu %xmm0, 0(%rsp)\\n  movdqu %xmm1, 16(%rsp)\\n  movdqu %xmm2, 32(%rsp)\\n  movdqu %xmm3, 48(%rsp)\\n\"\n\
             \x20 \"  movdqu %xmm4, 64(%rsp)\\n  movdqu %xmm5, 80(%rsp)\\n  movdqu %xmm6, 96(%rsp)\\n  movdqu %xmm7, 112(%rsp)\\n\"\n\
             \x20 \"  movq ${i}, %rdi\\n  call lm_floor_resolve\\n  movq %rax, %r11\\n\"\n\
             \x20 \"  movdqu 0(%rsp), %xmm0\\n  movdqu 16(%rsp), %xmm1\\n  movdqu 32(%rsp), %xmm2\\n  movdqu 48(%rsp), %xmm3\\n\"\n\
             \x20 \"  movdqu 64(%rsp), %xmm4\\n  movdqu 80(%rsp), %xmm5\\n  movdqu 96(%rsp), %xmm6\\n  movdqu 112(%rsp), %xmm7\\n\"\n\
             \x20 \"  addq $128, %rsp\\n  popq %rax\\n  popq %r9\\n  popq %r8\\n  popq %rcx\\n  popq %rdx\\n  popq %rsi\\n  popq %rdi\\n\"\n\
             \x20 \"  jmp *%r11\\n.size {n}, .-{n}\\n\""
        )
        .unwrap();
    }
    c.push_str(");\n");
    let c = c.replace("NAMES", &names.len().to_string());
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir).ok()?;
    let (source, out) = (dir.join("interposer.c"), dir.join("interposer.so"));
    std::fs::write(&source, c).ok()?;
    let ok = Command::new("cc")
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(&out)
        .arg(&source)
        .arg("-ldl")
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        fail("cc could not build the interposer floor library", "");
    }
    Some(out)
}

/// The system's libgcc_s.so.1, as the C compiler finds it.
fn system_unwinder() -> PathBuf {
    let out = Command::new("cc")
        .arg("-print-file-name=libgcc_s.so.1")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let path = std::fs::canonicalize(&out).unwrap_or_default();
    if !path.is_file() {
        fail(&format!("libgcc_s.so.1 not found (cc says {out:?})"), "");
    }
    path
}

/// The system calls a record takes, by name: CPU ns per call in each round (see
/// `bench/syscalls.c`), for records of `record_bytes`, on the CPU the runtimes run on.
struct SyscallCosts {
    rounds: Vec<BTreeMap<String, f64>>,
}

/// The calls measured, in the table's order: any call's least, the two getrusage, the look,
/// the record's write.
const SYSCALLS_MEASURED: [&str; 4] = ["getppid", "getrusage", "statx", "pwritev2"];

impl SyscallCosts {
    fn measure(record_bytes: usize, rounds: usize) -> SyscallCosts {
        let bin = root().join("target/bench/syscalls");
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        let ok = Command::new("cc")
            .args(["-O2", "-pthread", "-o"])
            .arg(&bin)
            .arg(root().join("bench/syscalls.c"))
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            fail("cc could not build bench/syscalls.c", "");
        }
        let tmp = std::env::temp_dir();
        let rounds = (0..rounds)
            .map(|_| {
                let out = Command::new(&bin)
                    .arg("100000")
                    .arg(record_bytes.max(1).to_string())
                    .arg(&tmp)
                    .env_remove("LD_PRELOAD")
                    .output()
                    .expect("bench/syscalls");
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let costs: BTreeMap<String, f64> = text
                    .lines()
                    .filter_map(|l| {
                        let (name, ns) = l.split_once(' ')?;
                        Some((name.to_string(), ns.trim().parse().ok()?))
                    })
                    .collect();
                if !out.status.success()
                    || SYSCALLS_MEASURED.iter().any(|n| !costs.contains_key(*n))
                {
                    fail(
                        &format!("bench/syscalls failed ({}): {text}", out.status),
                        &String::from_utf8_lossy(&out.stderr),
                    );
                }
                costs
            })
            .collect();
        SyscallCosts { rounds }
    }

    /// CPU ns of one call of `name`.
    fn ns(&self, name: &str) -> Stat {
        stat(self.rounds.iter().map(|r| r[name]).collect())
    }

    /// µs of CPU of `counts` calls (name, how many) in each round.
    fn of(&self, counts: &[(&str, f64)]) -> Stat {
        stat(
            self.rounds
                .iter()
                .map(|r| counts.iter().map(|(n, c)| r[*n] * c).sum::<f64>() / 1e3)
                .collect(),
        )
    }
}

/// The calls the per-invoke target allows a record: two getrusage and the write.
const ALLOWED_CALLS: [(&str, f64); 2] = [("getrusage", 2.0), ("pwritev2", 1.0)];

/// The syscall-bound loops, without and with the library preloaded (active, as in Lambda).
fn passthrough(lib: &Path, report: &mut String, targets: &mut Targets) {
    let bin = root().join("target/bench/passthrough");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    let ok = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&bin)
        .arg(root().join("bench/passthrough.c"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "cc passthrough.c");
    // The rows measure a function's own fds that the library does not follow: the socket's
    // connection, which it follows by default (what each invoke waited on), with that off;
    // the last row measures it followed.
    let run = |mode: &str, n: u64, preload: bool| -> f64 {
        let mut c = Command::new(&bin);
        c.args([mode, &n.to_string()]).env_remove("LD_PRELOAD");
        if preload {
            c.env("LD_PRELOAD", lib)
                .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
                .env("LAMBDA_METER_DOWNSTREAM", "false");
        }
        let out = c.output().expect("passthrough");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<f64>()
            .expect("ns")
            / n as f64
    };
    // `followed`: the library follows the connection (the default). `connecting`: the count
    // is the connecting process's (the last to end), else the first to end's, as for every
    // row.
    let callgrind_of = |mode: &str, n: u64, preload: bool, followed: bool, connecting: bool| {
        let mut c = Command::new("valgrind");
        c.args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .arg(&bin)
            .args([mode, &n.to_string()])
            .env_remove("LD_PRELOAD");
        if preload {
            c.env("LD_PRELOAD", lib)
                .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9");
            if !followed {
                c.env("LAMBDA_METER_DOWNSTREAM", "false");
            }
        }
        let out = c.output().expect("valgrind");
        let text = String::from_utf8_lossy(&out.stderr);
        if connecting {
            callgrind_last_total(&text)
        } else {
            callgrind_total(&text)
        }
    };
    let callgrind =
        |mode: &str, n: u64, preload: bool| callgrind_of(mode, n, preload, false, false);
    writeln!(
        report,
        "\n### Untracked-fd pass-through (a function's own I/O)\n\n\
         Each loop iteration of `devnull` is one `write`; of `pipe` and `socket`, one `write` and \
         one `read` (instructions are the calling process's only).\n"
    )
    .unwrap();
    writeln!(
        report,
        "| loop | ns/op without | ns/op with | difference (median, min – max) | instructions/op without → with (callgrind) | added instructions per hooked call |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|---|---|").unwrap();
    for (mode, n, calls) in [
        ("devnull", 1_000_000u64, 1.0),
        ("pipe", 50_000, 2.0),
        ("socket", 50_000, 2.0),
    ] {
        let mut without = Vec::new();
        let mut with = Vec::new();
        let rounds = rounds();
        for round in 0..rounds {
            eprintln!("bench: round {}/{rounds}: pass-through {mode}", round + 1);
            // Alternate which goes first.
            if round % 2 == 0 {
                without.push(run(mode, n, false));
                with.push(run(mode, n, true));
            } else {
                with.push(run(mode, n, true));
                without.push(run(mode, n, false));
            }
        }
        let d = stat(with.iter().zip(&without).map(|(w, o)| w - o).collect());
        let (n1, n2) = (2_000u64, 4_000u64);
        let ir = |preload| {
            (callgrind(mode, n2, preload) - callgrind(mode, n1, preload)) / (n2 - n1) as f64
        };
        let (ir_without, ir_with) = (ir(false), ir(true));
        let added = (ir_with - ir_without) / calls;
        writeln!(
            report,
            "| {mode} | {:.0} | {:.0} | {} | {:.0} → {:.0} | {:+.1} |",
            median(without.clone()),
            median(with.clone()),
            fmt_diff(&d, "ns", 0),
            ir_without,
            ir_with,
            added
        )
        .unwrap();
        targets.push((
            order::PASSTHROUGH,
            format!("hook on an untracked fd ≤ +15 instructions per call: {mode} {added:+.1}"),
            Verdict::of(added <= 15.0),
        ));
    }
    // A downstream connection followed: each loop iteration is one call (a send, then the
    // answer's receive) counted in the process's ledger.
    let (n1, n2) = (2_000u64, 4_000u64);
    let ir = |preload, followed| {
        (callgrind_of("socket", n2, preload, followed, true)
            - callgrind_of("socket", n1, preload, followed, true))
            / (n2 - n1) as f64
    };
    let (plain, off, on) = (ir(false, false), ir(true, false), ir(true, true));
    writeln!(
        report,
        "\nThe same loop's connecting process, its connection followed as a downstream \
         connection (what each invoke waited on, the default) and with \
         `LAMBDA_METER_DOWNSTREAM=false`: instructions per call (one `send` and one `recv`), \
         {plain:.0} without the library, {on:.0} followed ({:+.0} a call), {off:.0} with the \
         setting off ({:+.0} a call).",
        on - plain,
        off - plain
    )
    .unwrap();
}

/// Calls of [`downstream_handler`]'s handler per invoke.
const DOWNSTREAM_CALLS: usize = 10;

/// A handler making [`DOWNSTREAM_CALLS`] calls per invoke (the Rust runtime's `calls` action:
/// 64 bytes out and back on a connection kept across invokes, to an echo server in the bench's
/// process), counted by callgrind: without the library, with it (its calls followed, the
/// default), and with `LAMBDA_METER_DOWNSTREAM=false`. What following costs per call is the
/// followed run less the run with the setting off, per call: the hooks' counting and the
/// invoke's `downstream` property, spread over its calls.
fn downstream_handler(rust: &Group, lib: &Path, report: &mut String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("echo server");
    let port = listener.local_addr().expect("echo port").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut conn = conn;
                let mut b = [0u8; 4096];
                while let Ok(n) = conn.read(&mut b) {
                    if n == 0 || conn.write_all(&b[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let payload = json!({"action": "calls", "port": port, "calls": DOWNSTREAM_CALLS});
    let (base, metered) = (&rust.variants[0], &rust.variants[1]);
    let mut off_env = metered.env.clone();
    off_env.push(("LAMBDA_METER_DOWNSTREAM".into(), "false".into()));
    let off = Variant {
        name: "lambda-meter, LAMBDA_METER_DOWNSTREAM=false",
        command: metered.command.clone(),
        env: off_env,
        metered: metered.metered,
        cwd: metered.cwd.clone(),
    };
    let runs = rust.callgrind_invokes;
    let count = |v: &Variant| instructions_with(v, lib, runs, &payload).per_invoke;
    let (without, on, setting_off) = (count(base), count(metered), count(&off));
    let calls = DOWNSTREAM_CALLS as f64;
    writeln!(
        report,
        "\n### A handler making {DOWNSTREAM_CALLS} downstream calls per invoke\n\n\
         The Rust runtime's handler makes {DOWNSTREAM_CALLS} calls an invoke (64 bytes out, \
         64 back, on one connection kept across invokes) to an echo server; instructions per \
         invoke (callgrind, {} invokes minus {}), with lambda-meter in `LD_PRELOAD` following \
         them (the default) and with `LAMBDA_METER_DOWNSTREAM=false`.\n\n\
         | variant | instructions per invoke | added per invoke | added per call |\n\
         |---|---|---|---|\n\
         | baseline | {without:.0} | — | — |\n\
         | lambda-meter, calls followed (the default) | {on:.0} | {:+.0} | {:+.0} |\n\
         | lambda-meter, `LAMBDA_METER_DOWNSTREAM=false` | {setting_off:.0} | {:+.0} | {:+.0} |\n\n\
         Following the calls costs {:+.0} instructions per call (the followed run less the \
         run with the setting off, its `downstream` property included).",
        runs.1,
        runs.0,
        on - without,
        (on - without) / calls,
        setting_off - without,
        (setting_off - without) / calls,
        (on - setting_off) / calls,
    )
    .unwrap();
}

/// The instructions callgrind counted in the last process to end (a program that forks and
/// waits for its child: the parent).
fn callgrind_last_total(stderr: &str) -> f64 {
    stderr
        .lines()
        .rev()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("callgrind total")
}

/// Where each target goes in the Targets table: issue 23's order.
mod order {
    pub const INSTRUCTIONS: u32 = 10;
    pub const ALLOCATIONS: u32 = 20;
    pub const SYSCALLS: u32 = 30;
    pub const CPU: u32 = 40;
    pub const POWERTOOLS: u32 = 50;
    pub const WRAPPER: u32 = 60;
    pub const INIT_CPU: u32 = 70;
    pub const OUTSIDE_INVOKES: u32 = 80;
    pub const OTHER_PROCESS: u32 = 90;
    pub const SHELL: u32 = 100;
    pub const MEMORY: u32 = 110;
    pub const PASSTHROUGH: u32 = 120;
}

/// Targets: (place in the table, text with the measured figure, how it came out).
type Targets = Vec<(u32, String, Verdict)>;

/// How a target came out in this run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Met,
    Missed,
    /// A figure measured per round whose rounds fall on both sides of the target: the run
    /// cannot say (its median alone would).
    Undecided,
    /// Missed where a floor measured in the same run (what any library in the same place
    /// costs, one that does nothing; or what the system calls the target itself allows cost)
    /// is above the target itself: no library meets it.
    FloorAbove,
}

impl Verdict {
    /// A deterministic figure (a count).
    fn of(met: bool) -> Verdict {
        if met { Verdict::Met } else { Verdict::Missed }
    }

    /// A figure measured in each round, at most `target`: met only where every round is,
    /// missed only where none is.
    fn rounds(s: &Stat, target: f64) -> Verdict {
        if s.max <= target {
            Verdict::Met
        } else if s.min > target {
            Verdict::Missed
        } else {
            Verdict::Undecided
        }
    }

    /// [`Verdict::rounds`] with a floor measured in the same run: missed where the floor is
    /// above the target in every round too.
    fn rounds_over_floor(s: &Stat, target: f64, floor: &Stat) -> Verdict {
        match Verdict::rounds(s, target) {
            Verdict::Missed if floor.min > target => Verdict::FloorAbove,
            v => v,
        }
    }

    /// A count against its target, with the floor under it when one was measured.
    fn over_floor(value: f64, target: f64, floor: Option<f64>) -> Verdict {
        match floor {
            _ if value <= target => Verdict::Met,
            Some(f) if f > target => Verdict::FloorAbove,
            _ => Verdict::Missed,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "**missed**",
            Verdict::Undecided => "not decided: the rounds fall on both sides",
            Verdict::FloorAbove => "**missed**: the measured floor is above the target",
        }
    }
}

/// A markdown table cell of code: `name`, with the table's separator escaped.
fn code_cell(s: &str) -> String {
    format!("`{}`", s.replace('|', "\\|"))
}

fn main() {
    let began = std::time::Instant::now();
    let cpu = pin_to_one_cpu();
    let root = root();
    let python = must_exist(&root.join("target/test-env/venv/bin/python"));
    let layer = root.join("target/bench-layer");
    let lib = must_exist(&root.join("target/release/liblambda_meter.so"));
    let status = Command::new("sh")
        .arg(root.join("layer/assemble.sh"))
        .arg(&lib)
        .arg(&layer)
        .status()
        .expect("assemble");
    assert!(status.success());
    let paths = Paths {
        wrapper: layer.join("lambda-meter"),
        lib: lib.clone(),
        floor: interposer_library(&lib),
    };
    let py_dir = root.join("tests/functions/python");
    let node_dir = root.join("tests/functions/node");
    let shell_dir = root.join("tests/functions/shell");
    let ric = must_exist(&node_dir.join("node_modules/aws-lambda-ric/bin/index.mjs"));
    let rust_fn = must_exist(&root.join("target/release/rust-buffered"));
    let bootstrap = must_exist(&shell_dir.join("bootstrap"));
    for tool in [
        "bash",
        "curl",
        "valgrind",
        "callgrind_annotate",
        "strace",
        "readelf",
        "dash",
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            fail(
                &format!(
                    "{tool} is missing: `make bench-deps` (tests/setup.sh --bench) installs it"
                ),
                "",
            );
        }
    }
    let py = |handler: &str| -> Vec<String> {
        vec![
            python.display().to_string(),
            "-m".into(),
            "awslambdaric".into(),
            handler.into(),
        ]
    };
    let py_env = vec![("PYTHONHASHSEED".to_string(), "0".to_string())];
    let variant =
        |name, command: Vec<String>, metered: Metered, cwd: &Path, env: &Vec<_>| Variant {
            name,
            command,
            env: env.clone(),
            metered,
            cwd: cwd.to_path_buf(),
        };
    let node_env = vec![(
        "LAMBDA_TASK_ROOT".to_string(),
        node_dir.display().to_string(),
    )];
    let node_cmd = vec![
        "node".to_string(),
        ric.display().to_string(),
        "index.handler".into(),
    ];
    let rust_cmd = vec![rust_fn.display().to_string()];
    let shell_env = vec![
        (
            "LAMBDA_TASK_ROOT".to_string(),
            shell_dir.display().to_string(),
        ),
        ("_HANDLER".to_string(), "function.handler".to_string()),
    ];
    let shell_cmd = vec![bootstrap.display().to_string()];
    let none = Vec::new();
    let runs = (short(), long());
    // The shell runtime starts about eight processes an invoke: fewer invokes.
    let shell_runs = if quick() { (20, 60) } else { (50, 250) };
    let groups = vec![
        Group {
            label: "Python awslambdaric",
            variants: vec![
                variant("baseline", py("bench.noop"), Metered::No, &py_dir, &py_env),
                variant(
                    "lambda-meter",
                    py("bench.noop"),
                    Metered::Wrapper,
                    &py_dir,
                    &py_env,
                ),
                variant(
                    "Powertools Metrics",
                    py("bench.powertools"),
                    Metered::No,
                    &py_dir,
                    &py_env,
                ),
            ],
            invokes: runs,
            callgrind: true,
            callgrind_invokes: (50, 250),
        },
        Group {
            label: "Node aws-lambda-ric",
            variants: vec![
                variant(
                    "baseline",
                    node_cmd.clone(),
                    Metered::No,
                    &node_dir,
                    &node_env,
                ),
                variant(
                    "lambda-meter",
                    node_cmd,
                    Metered::Wrapper,
                    &node_dir,
                    &node_env,
                ),
            ],
            invokes: runs,
            callgrind: false,
            callgrind_invokes: (0, 0),
        },
        Group {
            label: "Rust lambda_runtime",
            variants: vec![
                variant("baseline", rust_cmd.clone(), Metered::No, &root, &none),
                variant("lambda-meter", rust_cmd, Metered::Preload, &root, &none),
            ],
            invokes: runs,
            callgrind: true,
            callgrind_invokes: (200, 1200),
        },
        Group {
            label: "bash + curl (custom runtime)",
            variants: vec![
                variant(
                    "baseline",
                    shell_cmd.clone(),
                    Metered::No,
                    &shell_dir,
                    &shell_env,
                ),
                variant(
                    "lambda-meter",
                    shell_cmd.clone(),
                    Metered::Preload,
                    &shell_dir,
                    &shell_env,
                ),
            ]
            .into_iter()
            .chain(paths.floor.is_some().then(|| {
                variant(
                    "an interposer of the same functions that does nothing (the floor)",
                    shell_cmd,
                    Metered::Floor,
                    &shell_dir,
                    &shell_env,
                )
            }))
            .collect(),
            invokes: shell_runs,
            callgrind: false,
            callgrind_invokes: (0, 0),
        },
    ];
    // The runtime clients' tables; the shell runtime has its own.
    const SHELL: usize = 3;
    // The shell runtime's strace runs: every process of every invoke traced.
    const SHELL_STRACE: (usize, usize) = (20, 80);
    // Its callgrind runs (every process traced, each invoke some seconds under valgrind).
    const SHELL_CALLGRIND: (usize, usize) = (4, 12);
    let runtimes = &groups[..SHELL];

    let samples = measure(&groups, &paths);
    // What the system calls of a record cost here, for records of the length the Rust
    // runtime's were.
    let rust_records = median(samples[2][1].iter().map(|s| s.record_bytes).collect());
    eprintln!("bench: the system calls' CPU cost ({rust_records:.0}-byte records)");
    let costs = SyscallCosts::measure(rust_records.round() as usize, rounds());
    let allowed = costs.of(&ALLOWED_CALLS);
    let record_calls = costs.of(&[("getrusage", 2.0), ("statx", 1.0), ("pwritev2", 1.0)]);

    // Deterministic counts, once per variant.
    let mut counted: Vec<Vec<Option<Instructions>>> = Vec::new();
    let mut syscalls: Vec<Vec<BTreeMap<String, f64>>> = Vec::new();
    let mut misses: Vec<Vec<Misses>> = Vec::new();
    for g in runtimes {
        counted.push(
            g.variants
                .iter()
                .map(|v| {
                    g.callgrind
                        .then(|| instructions_of(v, &lib, g.callgrind_invokes))
                })
                .collect(),
        );
        syscalls.push(
            g.variants
                .iter()
                .map(|v| syscalls_per_invoke(v, &lib))
                .collect(),
        );
        // Cache misses: the baseline and lambda-meter (not Powertools).
        misses.push(if g.callgrind {
            g.variants[..2]
                .iter()
                .map(|v| misses_of(v, &lib, g.callgrind_invokes))
                .collect()
        } else {
            Vec::new()
        });
    }
    // What preloading any library costs a Python runtime outside invokes: an empty one in the
    // library's place, and an interposer of the same functions that does nothing (one
    // callgrind run of the short length each; their invokes cost what the baseline's do, so
    // the baseline's per-invoke count is taken off).
    let python_outside = |what: &str, lib: &Path| -> Option<f64> {
        let (Some(base), true) = (counted[0][0], runtimes[0].callgrind) else {
            return None;
        };
        let (short, _) = runtimes[0].callgrind_invokes;
        eprintln!("bench: callgrind: {what} instead");
        let tool = vec![
            "valgrind".to_string(),
            "--tool=callgrind".into(),
            "--callgrind-out-file=/dev/null".into(),
        ];
        let a = callgrind_total(&run_under(&tool, &runtimes[0].variants[1], lib, short));
        Some(a - base.per_invoke * (short + 1) as f64 - base.outside_invokes)
    };
    let python_floor = python_outside("an empty library", &empty_library());
    let python_interposer = paths
        .floor
        .as_ref()
        .and_then(|f| python_outside("the interposer that does nothing", f));
    let rust = &groups[2];
    let (by_function, by_function_total) =
        instructions_by_function(&rust.variants[0], &rust.variants[1], rust.callgrind_invokes);

    let instructions: Vec<Vec<Option<f64>>> = counted
        .iter()
        .map(|g| g.iter().map(|c| c.map(|c| c.per_invoke)).collect())
        .collect();

    let mut report = String::new();
    let mut targets: Targets = Vec::new();
    writeln!(
        report,
        "### Per invoke, no-op handler ({}-invoke run minus {}-invoke run)\n\n\
         CPU is the runtime process's CPU time, all threads; \"added\" is the variant minus the \
         baseline measured in the same round (median, min – max over {} rounds). lambda-meter \
         runs as Lambda gives it to each runtime: Python and Node through its wrapper \
         (`AWS_LAMBDA_EXEC_WRAPPER`), the Rust runtime (an OS-only runtime, which Lambda starts \
         without the wrapper) with `LD_PRELOAD` alone.\n",
        long(),
        short(),
        rounds()
    )
    .unwrap();
    writeln!(
        report,
        "| runtime | variant | wall µs | CPU µs | added CPU µs | instructions (callgrind) | added instructions | syscalls | added syscalls |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|---|---|---|---|---|").unwrap();
    let cpu_of = |s: &Sample| s.cpu_us;
    let mut added_cpu: Vec<Vec<Stat>> = Vec::new();
    for (g, group) in runtimes.iter().enumerate() {
        added_cpu.push(Vec::new());
        let base_ir = instructions[g][0];
        let base_sys = syscalls[g][0].get("total").copied().unwrap_or(0.0);
        for (i, v) in group.variants.iter().enumerate() {
            let s = &samples[g][i];
            let wall = median(s.iter().map(|x| x.wall_us).collect());
            let cpu = median(s.iter().map(cpu_of).collect());
            let added = differences(s, &samples[g][0], cpu_of);
            let ir = instructions[g][i];
            let sys = syscalls[g][i].get("total").copied().unwrap_or(0.0);
            let (added_text, added_ir, added_sys) = if i == 0 {
                ("—".to_string(), "—".to_string(), "—".to_string())
            } else {
                let mut by_name: Vec<String> = syscalls[g][i]
                    .iter()
                    .filter(|(n, _)| n.as_str() != "total")
                    .filter_map(|(n, c)| {
                        let d = c - syscalls[g][0].get(n).copied().unwrap_or(0.0);
                        (d.abs() >= 0.05).then(|| format!("{n} {d:+.1}"))
                    })
                    .collect();
                by_name.sort();
                (
                    fmt_diff(&added, "", 2),
                    match (ir, base_ir) {
                        (Some(a), Some(b)) => format!("{:+.0}", a - b),
                        _ => "—".into(),
                    },
                    format!("{:+.1} ({})", sys - base_sys, by_name.join(", ")),
                )
            };
            writeln!(
                report,
                "| {} | {} | {wall:.1} | {cpu:.1} | {added_text} | {} | {added_ir} | {sys:.1} | {added_sys} |",
                group.label,
                v.name,
                ir.map(|x| format!("{x:.0}")).unwrap_or_else(|| "—".into()),
            )
            .unwrap();
            added_cpu[g].push(added);
        }
    }
    // Python: lambda-meter's added CPU against Powertools', per round.
    let py = &samples[0];
    let share = stat(
        (0..rounds())
            .map(|r| (py[1][r].cpu_us - py[0][r].cpu_us) / (py[2][r].cpu_us - py[0][r].cpu_us))
            .collect(),
    );
    writeln!(
        report,
        "\nlambda-meter's added CPU per invoke as a share of Powertools Metrics' (Python, per round): {:.3} ({:.3} – {:.3})",
        share.median, share.min, share.max
    )
    .unwrap();
    for (g, group) in runtimes.iter().enumerate() {
        let a = &added_cpu[g][1];
        targets.push((
            order::CPU,
            format!(
                "{}: added runtime CPU per no-op invoke ≤ 5 µs (median {:+.2} µs; rounds {:+.2} – {:+.2}; the system calls the target allows, two getrusage and the write, take {:.2} µs here, rounds {:.2} – {:.2})",
                group.label, a.median, a.min, a.max, allowed.median, allowed.min, allowed.max
            ),
            Verdict::rounds_over_floor(a, 5.0, &allowed),
        ));
        let added_sys = syscalls[g][1].get("total").copied().unwrap_or(0.0)
            - syscalls[g][0].get("total").copied().unwrap_or(0.0);
        targets.push((
            order::SYSCALLS,
            format!(
                "{}: ≤ 3 added system calls per invoke, the record's write and at most two getrusage ({added_sys:+.1})",
                group.label
            ),
            Verdict::of(added_sys <= 3.0),
        ));
    }
    // The same share for the system calls the target allows alone.
    let floor_share = stat(
        (0..rounds())
            .map(|r| allowed.median / (py[2][r].cpu_us - py[0][r].cpu_us))
            .collect(),
    );
    targets.push((
        order::POWERTOOLS,
        format!(
            "added CPU ≤ 1/10 of Powertools' added CPU (median share {:.3}; rounds {:.3} – {:.3}; the system calls the target allows alone: {:.3}, rounds {:.3} – {:.3})",
            share.median, share.min, share.max, floor_share.median, floor_share.min, floor_share.max
        ),
        Verdict::rounds_over_floor(&share, 0.1, &floor_share),
    ));
    for (g, group) in runtimes.iter().enumerate() {
        if let (Some(a), Some(b)) = (instructions[g][1], instructions[g][0]) {
            targets.push((
                order::INSTRUCTIONS,
                format!(
                    "{}: ≤ 10k added user instructions per invoke ({:+.0})",
                    group.label,
                    a - b
                ),
                Verdict::of(a - b <= 10_000.0),
            ));
        }
    }

    writeln!(
        report,
        "\nThe added system calls are the record's `pwritev2`, two `getrusage` (CPU time is the \
         process's from the event to the result: one reading at each end) and one `statx` of the \
         custom-metrics channel's directory where the result is sent. That look is how a value \
         appended by any writer (another process of the environment included, a shell \
         runtime's helpers, any language without a shim) reaches the record of the invoke that \
         wrote it, and how the journal learns that the function cleaned its temporary \
         directory (then it is made again, so that a process killed later is still reported); \
         neither is announced to the library in its own memory, so the look is a system call \
         an invoke."
    )
    .unwrap();
    writeln!(
        report,
        "\n#### What those system calls cost here\n\n\
         CPU time of the calling thread per call, measured in this run on the CPU the runtimes \
         ran on (`bench/syscalls.c`: 100,000 calls of each, with a second thread asleep as the \
         library's watchdog is, since `getrusage` of the process walks its threads; median, \
         min – max over {} rounds), the write of a {:.0}-byte record (the Rust runtime's) to a \
         pipe another process drains:\n\n\
         | call | CPU ns per call |\n|---|---|",
        rounds(),
        rust_records
    )
    .unwrap();
    for (name, what) in SYSCALLS_MEASURED.iter().zip([
        "`getppid` (the least a system call costs here)",
        "`getrusage(RUSAGE_SELF)`",
        "`statx` of the temporary directory (the look)",
        "`pwritev2` of one record, `RWF_NOWAIT`",
    ]) {
        let c = costs.ns(name);
        writeln!(
            report,
            "| {what} | {:.0} ({:.0} – {:.0}) |",
            c.median, c.min, c.max
        )
        .unwrap();
    }
    writeln!(
        report,
        "\nThe three calls the per-invoke target allows a record (two `getrusage` and the write) \
         take {:.2} µs of CPU an invoke here ({:.2} – {:.2}), the four a record makes {:.2} µs \
         ({:.2} – {:.2}): of the added CPU above, that much is the kernel's; the rest is the \
         library's own instructions and cache misses.",
        allowed.median,
        allowed.min,
        allowed.max,
        record_calls.median,
        record_calls.min,
        record_calls.max
    )
    .unwrap();
    let allocations = steady_state_allocations();
    writeln!(
        report,
        "\nHeap allocations per steady-state invoke (the engine fed a keep-alive conversation with \
         the journal attached, `src/core/cost.rs`, counted by the test build's allocator): {}.",
        allocations.map_or("not measured".to_string(), |n| format!("{n}"))
    )
    .unwrap();
    targets.push((
        order::ALLOCATIONS,
        format!(
            "no heap allocation per invoke in steady state ({})",
            allocations.map_or("not measured".to_string(), |n| format!("{n}"))
        ),
        Verdict::of(allocations == Some(0.0)),
    ));

    writeln!(
        report,
        "\n#### Cache misses per invoke\n\n\
         `valgrind --tool=cachegrind --cache-sim=yes` with fixed simulated caches ({CACHES_TEXT}), \
         long run minus short run ({} and {} invokes for Python, {} and {} for Rust), the library \
         preloaded directly; D1 counts reads and writes, LL instruction and data misses.\n",
        runtimes[0].callgrind_invokes.1,
        runtimes[0].callgrind_invokes.0,
        runtimes[2].callgrind_invokes.1,
        runtimes[2].callgrind_invokes.0,
    )
    .unwrap();
    writeln!(
        report,
        "| runtime | I1 misses baseline → lambda-meter | added | D1 misses baseline → lambda-meter | added | LL misses baseline → lambda-meter | added |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|---|---|---|").unwrap();
    for (g, group) in runtimes.iter().enumerate() {
        if let [base, with] = misses[g][..] {
            let d = with.minus(base);
            writeln!(
                report,
                "| {} | {:.1} → {:.1} | {:+.1} | {:.1} → {:.1} | {:+.1} | {:.1} → {:.1} | {:+.1} |",
                group.label, base.i1, with.i1, d.i1, base.d1, with.d1, d.d1, base.ll, with.ll, d.ll
            )
            .unwrap();
        }
    }

    const TOP: usize = 15;
    writeln!(
        report,
        "\n#### Where the per-invoke instructions go (Rust lambda_runtime)\n\n\
         callgrind of the Rust runtime with `LD_PRELOAD` of an unstripped build of the same \
         library (`target/bench-symbols`) and without it, {} and {} invokes each; each function's \
         own instructions (`callgrind_annotate --inclusive=no`, a name summed over the files \
         inlined code is attributed to), (long − short) with the library minus (long − short) \
         without, per invoke, so the runtime's own work cancels: the library's functions and the \
         C library's on its behalf. The {TOP} largest of {} functions whose count changed; all \
         of them sum to {:+.0} per invoke.\n",
        rust.callgrind_invokes.1,
        rust.callgrind_invokes.0,
        by_function
            .iter()
            .filter(|c| c.per_invoke.abs() >= 0.05)
            .count(),
        by_function_total,
    )
    .unwrap();
    writeln!(
        report,
        "| function | object | added instructions per invoke | share of the added |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|").unwrap();
    for c in by_function.iter().take(TOP) {
        writeln!(
            report,
            "| {} | {} | {:+.1} | {:.1}% |",
            code_cell(&c.name),
            if c.objects.is_empty() {
                "—".to_string()
            } else {
                code_cell(&c.objects)
            },
            c.per_invoke,
            100.0 * c.per_invoke / by_function_total
        )
        .unwrap();
    }
    // The C library's paths for a process of more than one thread: the Rust runtime has one
    // thread of its own, and the library's watchdog makes it a threaded process for the C
    // library, whose system calls that are cancellation points then switch cancellation on and
    // off around the call.
    let threaded: f64 = by_function
        .iter()
        .filter(|c| {
            matches!(
                c.name.as_str(),
                "__pthread_enable_asynccancel" | "__pthread_disable_asynccancel"
            )
        })
        .map(|c| c.per_invoke)
        .sum();
    // The runtime sets its trace id in its environment each invoke (`setenv`, which compares
    // the name with every variable: `strncmp`). Those comparisons cost more or less with where
    // the environment's strings lie (valgrind adds `LD_PRELOAD` where it is not set; the
    // metered run sets it), which is no work of the library's.
    let environment: f64 = by_function
        .iter()
        .filter(|c| c.name.starts_with("__strncmp"))
        .map(|c| c.per_invoke)
        .sum();
    if environment.abs() >= 50.0 {
        writeln!(
            report,
            "\nThe `strncmp` row ({environment:+.0}) is the runtime's own `setenv` of its trace \
             id each invoke comparing the name with each variable of its environment: as many \
             comparisons either way, each costing more or less with where the environment's \
             strings lie (valgrind adds `LD_PRELOAD` where it is not set; the metered run sets \
             it). It is no work the library does or saves: without it, the functions whose count \
             changed sum to {:+.0} an invoke.",
            by_function_total - environment
        )
        .unwrap();
    }
    if threaded.abs() >= 50.0 {
        // SAFETY: geteuid has no preconditions.
        let who = if unsafe { libc::geteuid() } == 0 {
            "So it is here, where the bench ran them as root: a process that can change its \
             user ids gets a POSIX watchdog, which glibc carries along when it does."
        } else {
            "So it is here, where the bench ran them as a user that can change its ids."
        };
        writeln!(
            report,
            "\nOf these, {threaded:+.0} per invoke are the C library switching thread \
             cancellation on and off around each of the runtime's system calls that is a \
             cancellation point (`__pthread_enable_asynccancel`, \
             `__pthread_disable_asynccancel`): the library's watchdog is a POSIX thread here, \
             which makes this single-threaded runtime a threaded process for the C library. \
             {who} A runtime that cannot change its ids, as every Lambda runtime, gets a \
             watchdog the C library does not know of and keeps its single-threaded paths \
             (`src/glue/thread.rs`)."
        )
        .unwrap();
    } else {
        writeln!(
            report,
            "\nThe runtime ran as an unprivileged user, as on Lambda: the library's watchdog is \
             a thread the C library does not know of (`src/glue/thread.rs`), so this \
             single-threaded runtime keeps the C library's single-threaded paths (no lock in \
             `malloc`, `free` and stdio, no cancellation switch around its system calls: no \
             `__pthread_enable_asynccancel` row above)."
        )
        .unwrap();
    }

    writeln!(
        report,
        "\n### Cold start\n\n\
         Wall: process start → first `/next` (as the simulator sees it); lambda-meter as Lambda \
         starts each runtime: Python and Node through its wrapper, the Rust runtime (OS-only: no \
         wrapper on Lambda) with `LD_PRELOAD` alone. Init CPU: the runtime's CPU time while its \
         first `/next` waits (the simulator holds the first event back to read it); both vary by \
         tens of ms from run to run for Python on this machine, in every variant. Added \
         instructions: callgrind's count outside invokes (start-up to the first `/next`, and the \
         exit), deterministic; the library preloaded directly, so the wrapper's shell is not in \
         it.{}\n",
        python_floor.map_or(String::new(), |f| format!(
            " An empty library preloaded instead adds {f:+.0} instructions outside invokes to \
             the Python runtime: the floor of any preload (the loader looks through every \
             preloaded object in each symbol lookup of every extension module Python loads){}.",
            python_interposer.map_or(String::new(), |i| format!(
                "; an interposer of the same functions that does nothing, {i:+.0} (each of \
                 those lookups that finds one of its functions checks its versions, and every \
                 call Python makes to one goes through it)"
            ))
        ))
    )
    .unwrap();
    writeln!(
        report,
        "| runtime | baseline wall ms | lambda-meter wall ms | added wall ms (median, min – max) | added init CPU ms | added instructions outside invokes |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|---|---|").unwrap();
    let cold = |s: &Sample| s.cold_ms;
    let init_cpu = |s: &Sample| s.init_cpu_ms;
    for (g, group) in runtimes.iter().enumerate() {
        let d = differences(&samples[g][1], &samples[g][0], cold);
        let c = differences(&samples[g][1], &samples[g][0], init_cpu);
        let outside = match (counted[g][1], counted[g][0]) {
            (Some(a), Some(b)) => Some(a.outside_invokes - b.outside_invokes),
            _ => None,
        };
        writeln!(
            report,
            "| {} | {:.2} | {:.2} | {} | {} | {} |",
            group.label,
            median(samples[g][0].iter().map(cold).collect()),
            median(samples[g][1].iter().map(cold).collect()),
            fmt_diff(&d, "ms", 2),
            fmt_diff(&c, "ms", 2),
            outside.map_or("—".to_string(), |o| format!("{o:+.0}")),
        )
        .unwrap();
        // The Python runtime through the wrapper: the library's share of init.
        if g == 0 {
            targets.push((
                order::INIT_CPU,
                format!(
                    "{}: the library adds ≤ 0.3 ms CPU to init, through the wrapper (median {:+.2} ms; rounds {:+.2} – {:+.2})",
                    group.label, c.median, c.min, c.max
                ),
                Verdict::rounds(&c, 0.3),
            ));
            if let Some(o) = outside {
                targets.push((
                    order::OUTSIDE_INVOKES,
                    format!(
                        "{}: ≤ 500k added instructions outside invokes ({o:+.0}{})",
                        group.label,
                        python_floor.map_or(String::new(), |f| format!(
                            "; an empty library, the floor of any preload: {f:+.0}{}",
                            python_interposer.map_or(String::new(), |i| format!(
                                "; an interposer that does nothing: {i:+.0}"
                            ))
                        ))
                    ),
                    // The higher floor: an interposer of the same functions pays the empty
                    // library's cost and its own lookups' and calls'.
                    Verdict::over_floor(
                        o,
                        500_000.0,
                        match (python_floor, python_interposer) {
                            (Some(f), Some(i)) => Some(f.max(i)),
                            (f, i) => f.or(i),
                        },
                    ),
                ));
            }
        }
    }
    let processes = wrapper_processes(&paths.wrapper);
    // Starting `/bin/true` six ways: the wrapper's cost, and a process that never talks to the
    // Runtime API (with the release build here, and with each of the x86_64 layer's builds).
    let execs = if quick() { 100 } else { 300 };
    let layer_libs = [
        root.join("target/layer/x86_64/lib/liblambda_meter.so"),
        root.join("target/layer/x86_64/lib/glibc-2.34/liblambda_meter.so"),
    ];
    for l in &layer_libs {
        must_exist(l);
    }
    let (empty, unwinder) = (empty_library(), system_unwinder());
    // Without an interposer (not x86_64), its row is the empty library's again.
    let floor = paths.floor.clone().unwrap_or_else(|| empty.clone());
    let starts = start_costs(
        &paths.wrapper,
        &lib,
        [&layer_libs[0], &layer_libs[1], &empty, &unwinder, &floor],
        execs,
    );
    let wall = |c: &StartCost| c.wall;
    let cpu_ms = |c: &StartCost| c.cpu;
    let wrapper_wall = start_added(&starts, Start::Wrapper, wall);
    let dash_wall = start_added(&starts, Start::Dash, wall);
    let preload_wall = start_added(&starts, Start::Preload, wall);
    let wrapper_cpu = start_added(&starts, Start::Wrapper, cpu_ms);
    let dash_cpu = start_added(&starts, Start::Dash, cpu_ms);
    let (script_instr, dash_instr) = wrapper_script_instructions(&paths.wrapper);
    writeln!(
        report,
        "\nThe wrapper starts {processes} processes before it execs the runtime. Against \
         starting `/bin/true` directly ({execs} starts per way and round, in blocks of 10 with \
         the ways in an order shuffled per block, median and min – max of the per-round \
         differences; CPU: the started \
         processes', `getrusage(RUSAGE_CHILDREN)`): `wrapper /bin/true` takes {} longer per \
         start and {} more CPU (its shell, its script, and the library loaded into \
         `/bin/true`); of that, dash's own start-up and one exec (`dash -c 'exec /bin/true'`, \
         the floor of any `#!/bin/sh` wrapper) take {} longer and {} more CPU, and the library \
         alone (`LD_PRELOAD=lib /bin/true`, below) {} longer. Instructions (callgrind, exec to \
         exec): dash runs {:.0} for the wrapper, {:.0} for `exec` alone: {:+.0} for the script.",
        fmt_diff(&wrapper_wall, "ms", 3),
        fmt_diff(&wrapper_cpu, "ms", 3),
        fmt_diff(&dash_wall, "ms", 3),
        fmt_diff(&dash_cpu, "ms", 3),
        fmt_diff(&preload_wall, "ms", 3),
        script_instr,
        dash_instr,
        script_instr - dash_instr,
    )
    .unwrap();
    targets.push((
        order::WRAPPER,
        format!(
            "the wrapper adds ≤ 1.5 ms to exec'ing the runtime: `wrapper /bin/true` {:+.2} ms (rounds {:+.2} – {:+.2}; dash alone {:+.2} ms)",
            wrapper_wall.median, wrapper_wall.min, wrapper_wall.max, dash_wall.median
        ),
        Verdict::rounds(&wrapper_wall, 1.5),
    ));

    // Every other process the runtime starts loads the library too.
    let (plain, loaded) = (load_instructions(None), load_instructions(Some(&lib)));
    let layer_lib = &layer_libs[0];
    let layer_wall = start_added(&starts, Start::Layer234, wall);
    let layer_cpu = start_added(&starts, Start::Layer234, cpu_ms);
    writeln!(
        report,
        "\n### Processes that never talk to the Runtime API\n\n\
         `LD_PRELOAD` puts the library into every process the runtime starts. `/bin/true` \
         started {execs} times per round by the bench (`std::process::Command`), without and \
         with the library preloaded (`AWS_LAMBDA_RUNTIME_API` set in both), in the blocks and \
         rounds above: wall time per start, and the started processes' CPU time per start \
         (`getrusage(RUSAGE_CHILDREN)` around each block). Added: with minus without in the same \
         round (median, min – max over {} rounds). The library is the release build here, and \
         each build of the x86_64 layer: for glibc 2.26 (Amazon Linux 2; it also needs \
         `libpthread.so.0` and `libdl.so.2`, two more files for the loader) and for glibc 2.34, \
         which the wrapper takes on Amazon Linux 2023 and later glibc. Two rows for reference: \
         an empty library preloaded instead (one more file for the loader to open, map and \
         relocate: what preloading anything costs), and the system's `libgcc_s.so.1` alone (the \
         unwinder a Rust or C++ library usually loads with it; lambda-meter's looks it up only \
         when something unwinds through it).\n",
        rounds()
    )
    .unwrap();
    writeln!(
        report,
        "| per start of `/bin/true` | without | with lambda-meter | added (median, min – max) |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|").unwrap();
    for (what, way) in [
        ("", Start::Preload),
        (", the layer's glibc 2.26 build", Start::Layer226),
        (", the layer's glibc 2.34 build", Start::Layer234),
        (
            ", an empty library instead (the floor of any preload)",
            Start::Empty,
        ),
        (
            ", libgcc_s.so.1 alone (an unwinder, which the library does not load)",
            Start::Unwinder,
        ),
        (
            ", an interposer of the same functions that does nothing (the floor of any)",
            Start::Interposer,
        ),
    ]
    .into_iter()
    .filter(|(_, way)| !matches!(way, Start::Interposer) || paths.floor.is_some())
    {
        for (unit, f) in [
            ("wall ms", wall as fn(&StartCost) -> f64),
            ("CPU ms", cpu_ms),
        ] {
            let of = |way: Start| median(starts[way as usize].iter().map(f).collect());
            writeln!(
                report,
                "| {unit}{what} | {:.3} | {:.3} | {} |",
                of(Start::Plain),
                of(way),
                fmt_diff(&start_added(&starts, way, f), "ms", 3)
            )
            .unwrap();
        }
    }
    writeln!(
        report,
        "\nInstructions of one `/bin/true`, exec to exit (callgrind): {plain:.0} without, \
         {loaded:.0} with the library (dynamic loader, relocations and constructor): {:+.0}.\n\n\
         The stripped library (`readelf -r`, `readelf -d`): release build here, {} bytes: {}.",
        loaded - plain,
        std::fs::metadata(&lib).map(|m| m.len()).unwrap_or(0),
        relocations(&lib),
    )
    .unwrap();
    if layer_lib.exists() {
        writeln!(
            report,
            "The x86_64 layer's (glibc 2.26), {} bytes: {}.",
            std::fs::metadata(layer_lib).map(|m| m.len()).unwrap_or(0),
            relocations(layer_lib),
        )
        .unwrap();
    }
    targets.push((
        order::OTHER_PROCESS,
        format!(
            "a process that never talks to the Runtime API pays ≤ +0.1 ms per exec (`/bin/true` with the layer's glibc 2.34 build: wall {:+.3} ms (rounds {:+.3} – {:+.3}), CPU {:+.3} ms; an empty library {:+.3} ms, libgcc_s.so.1 alone {:+.3} ms{})",
            layer_wall.median,
            layer_wall.min,
            layer_wall.max,
            layer_cpu.median,
            start_added(&starts, Start::Empty, wall).median,
            start_added(&starts, Start::Unwinder, wall).median,
            if paths.floor.is_some() {
                format!(
                    ", an interposer of the same functions that does nothing {:+.3} ms",
                    start_added(&starts, Start::Interposer, wall).median
                )
            } else {
                String::new()
            }
        ),
        match (
            Verdict::rounds(&layer_wall, 0.1),
            Verdict::rounds(&layer_cpu, 0.1),
        ) {
            (Verdict::Met, Verdict::Met) => Verdict::Met,
            (Verdict::Missed, _) | (_, Verdict::Missed) => Verdict::Missed,
            _ => Verdict::Undecided,
        },
    ));

    // The shell custom runtime: every curl, cut and tr it starts loads the library.
    let shell = &groups[SHELL];
    let sh_samples = &samples[SHELL];
    writeln!(
        report,
        "\n### A shell custom runtime (bash and curl, the AWS custom-runtime tutorial's)\n\n\
         `tests/functions/shell/bootstrap` with `function.sh`: each invoke starts about eight \
         processes (curl for `/next` and for the response, grep, tr, cut, sed). lambda-meter in \
         `LD_PRELOAD` in the function's environment, as a provided runtime gets it (Lambda \
         starts those without the wrapper), so every one of them loads the library. {} invokes \
         minus {}, in the same shuffled rounds as the rest. Wall: the simulator's `/next` to \
         `/next`. CPU, page faults and voluntary context switches: the whole process tree's, \
         the runtime and every process it waited for (`getrusage(RUSAGE_CHILDREN)` of the \
         bench, which reaps the runtime); faults and switches barely move between rounds where \
         wall and CPU move by milliseconds. System calls: `strace -f -c` of the tree, {} \
         invokes minus {}, once per variant. Instructions: `valgrind --tool=callgrind \
         --trace-children=yes`, every process of the tree counted (the loader's work included: \
         relocations, and each symbol lookup that now passes the preloaded library), {} invokes \
         minus {}, once per variant: deterministic, where wall and CPU are not.\n",
        shell.invokes.1,
        shell.invokes.0,
        SHELL_STRACE.1,
        SHELL_STRACE.0,
        SHELL_CALLGRIND.1,
        SHELL_CALLGRIND.0
    )
    .unwrap();
    // What each variant preloads (the do-nothing interposer only where it could be built).
    let preloaded = |v: &Variant| match v.metered {
        Metered::Floor => paths.floor.clone(),
        _ => Some(lib.clone()),
    };
    let shell_calls: Vec<Option<f64>> = shell
        .variants
        .iter()
        .map(|v| {
            syscalls_per_invoke_over(v, &preloaded(v)?, SHELL_STRACE)
                .get("total")
                .copied()
        })
        .collect();
    let shell_instructions: Vec<Option<f64>> = shell
        .variants
        .iter()
        .map(|v| tree_instructions_per_invoke(v, &preloaded(v)?, SHELL_CALLGRIND))
        .collect();
    writeln!(
        report,
        "| variant | wall ms per invoke | CPU ms per invoke (process tree) | added wall (median, min – max) | added wall % | added CPU (median, min – max) | page faults per invoke (added) | voluntary context switches per invoke (added) | system calls per invoke (added) | instructions per invoke, process tree (added) |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|---|---|---|---|---|---|").unwrap();
    let faults: fn(&Sample) -> f64 = |s| s.tree_faults;
    let switches: fn(&Sample) -> f64 = |s| s.tree_switches;
    let count_cell = |i: usize, f: fn(&Sample) -> f64| {
        let m = median(sh_samples[i].iter().map(f).collect());
        if i == 0 {
            format!("{m:.1}")
        } else {
            format!(
                "{m:.1} ({:+.1})",
                differences(&sh_samples[i], &sh_samples[0], f).median
            )
        }
    };
    let calls_cell = |i: usize| match (shell_calls.get(i).copied().flatten(), shell_calls[0]) {
        (Some(c), _) if i == 0 => format!("{c:.1}"),
        (Some(c), Some(b)) => format!("{c:.1} ({:+.1})", c - b),
        _ => "—".to_string(),
    };
    let instructions_cell = |i: usize| match (shell_instructions[i], shell_instructions[0]) {
        (Some(c), _) if i == 0 => format!("{c:.0}"),
        (Some(c), Some(b)) => format!("{c:.0} ({:+.0}, {:+.1} %)", c - b, 100.0 * (c - b) / b),
        _ => "—".to_string(),
    };
    let wall_ms = |s: &Sample| s.wall_us / 1e3;
    let tree_ms = |s: &Sample| s.tree_cpu_us / 1e3;
    let pct_of = |i: usize| {
        stat(
            sh_samples[i]
                .iter()
                .zip(&sh_samples[0])
                .map(|(w, b)| 100.0 * (w.wall_us - b.wall_us) / b.wall_us)
                .collect(),
        )
    };
    let pct = pct_of(1);
    for (i, v) in shell.variants.iter().enumerate() {
        let s = &sh_samples[i];
        let pct = pct_of(i);
        let (dw, dp, dc) = if i == 0 {
            ("—".to_string(), "—".to_string(), "—".to_string())
        } else {
            (
                fmt_diff(&differences(s, &sh_samples[0], wall_ms), "ms", 3),
                fmt_diff(&pct, "%", 1),
                fmt_diff(&differences(s, &sh_samples[0], tree_ms), "ms", 3),
            )
        };
        writeln!(
            report,
            "| {} | {:.3} | {:.3} | {dw} | {dp} | {dc} | {} | {} | {} | {} |",
            v.name,
            median(s.iter().map(wall_ms).collect()),
            median(s.iter().map(tree_ms).collect()),
            count_cell(i, faults),
            count_cell(i, switches),
            calls_cell(i),
            instructions_cell(i),
        )
        .unwrap();
    }
    targets.push((
        order::SHELL,
        format!(
            "bash + curl custom runtime: ≤ +5% wall per no-op invoke (median {:+.1}%; rounds {:+.1} – {:+.1}{})",
            pct.median,
            pct.min,
            pct.max,
            if shell.variants.len() > 2 {
                format!(
                    "; an interposer of the same functions that does nothing: {:+.1}%",
                    pct_of(2).median
                )
            } else {
                String::new()
            }
        ),
        Verdict::rounds(&pct, 5.0),
    ));
    if let (Some(base), Some(with)) = (shell_instructions[0], shell_instructions[1]) {
        let added = 100.0 * (with - base) / base;
        let floor = shell_instructions
            .get(2)
            .copied()
            .flatten()
            .map(|f| 100.0 * (f - base) / base);
        targets.push((
            order::SHELL,
            format!(
                "bash + curl custom runtime: ≤ +5% instructions per no-op invoke, the whole process tree's ({added:+.1}%{})",
                floor.map_or(String::new(), |f| format!(
                    "; an interposer of the same functions that does nothing: {f:+.1}%"
                ))
            ),
            Verdict::over_floor(added, 5.0, floor),
        ));
    }

    writeln!(report, "\n### Memory and size\n").unwrap();
    writeln!(
        report,
        "Resident memory (`VmRSS`) the function reads itself after {} invokes; of it, the \
         library's own mappings (the `Rss` of every mapping of `liblambda_meter.so` in \
         `/proc/self/smaps`: the pages of its file the process has mapped, which the kernel maps \
         up to 64 KiB around each page first touched when they are in the page cache, and those \
         its relocations wrote); the rest of the difference is anonymous memory (its stacks, \
         heap and buffers) and whatever the runtime itself uses differently.\n",
        long()
    )
    .unwrap();
    writeln!(
        report,
        "| runtime | RSS baseline MB | with lambda-meter MB | difference (median, min – max) | of it, the library's mappings MB (median, min – max) |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|---|").unwrap();
    let rss = |s: &Sample| s.rss_kb / 1024.0;
    for (g, group) in runtimes.iter().enumerate() {
        let d = differences(&samples[g][1], &samples[g][0], rss);
        let mapped = stat(
            samples[g][1]
                .iter()
                .map(|s| s.library_kb / 1024.0)
                .collect(),
        );
        writeln!(
            report,
            "| {} | {:.2} | {:.2} | {} | {:.2} ({:.2} – {:.2}) |",
            group.label,
            median(samples[g][0].iter().map(rss).collect()),
            median(samples[g][1].iter().map(rss).collect()),
            fmt_diff(&d, "MB", 2),
            mapped.median,
            mapped.min,
            mapped.max
        )
        .unwrap();
        targets.push((
            order::MEMORY,
            format!(
                "{}: resident memory ≤ +0.5 MB (median {:+.2} MB; rounds {:+.2} – {:+.2}; the library's own mappings {:.2} MB of it)",
                group.label, d.median, d.min, d.max, mapped.median
            ),
            Verdict::rounds(&d, 0.5),
        ));
    }
    // The code behind the library's mapped pages: what each runtime ran of it.
    let mut footprints = Vec::new();
    let mut text_bytes = 0;
    for group in runtimes.iter().filter(|g| g.callgrind) {
        let invokes = group.callgrind_invokes.0;
        if let Some(f) = code_footprint(&group.variants[1], &lib, invokes) {
            text_bytes = f.text_bytes;
            footprints.push(format!(
                "{} ({invokes} invokes) {} pages, {} KiB (its instructions lie in {} KiB of \
                 64-byte lines)",
                group.label,
                f.pages,
                f.pages * 4,
                f.lines * 64 / 1024
            ));
        }
    }
    if !footprints.is_empty() {
        writeln!(
            report,
            "\nThe library's code a runtime ran, from its start (callgrind, `--dump-instr=yes`: \
             the distinct 4 KiB pages of the library's `.text`, {} KiB, that hold an instruction \
             the runtime executed): {}. The kernel maps a file's pages up to 64 KiB around each \
             page first touched, so those pages, laid out first (`link/hot-functions.txt`), are \
             most of the library's mappings above.",
            text_bytes / 1024,
            footprints.join("; ")
        )
        .unwrap();
    }
    let size_of = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    writeln!(
        report,
        "\nStripped library: {} bytes (release build here), {} bytes (x86_64 layer, glibc 2.26), {} bytes (its glibc 2.34 build).",
        size_of(&lib),
        size_of(layer_lib),
        size_of(&layer_libs[1])
    )
    .unwrap();

    passthrough(&lib, &mut report, &mut targets);
    downstream_handler(&groups[2], &lib, &mut report);

    targets.sort_by_key(|t| t.0);
    writeln!(
        report,
        "\n### Targets\n\nA target on a count (instructions, system calls, allocations) is met or \
         missed by its one measurement. A target on a figure measured in every round (wall, CPU, \
         resident memory) is met only where every round meets it and missed only where none \
         does; where the rounds fall on both sides, this run does not decide it.\n"
    )
    .unwrap();
    writeln!(report, "| target | result |").unwrap();
    writeln!(report, "|---|---|").unwrap();
    for (_, t, verdict) in &targets {
        writeln!(report, "| {t} | {} |", verdict.text()).unwrap();
    }

    println!("{report}");
    let machine = format!(
        "{} ({} cores), Linux {}, {}",
        sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'"),
        sh("nproc --all"),
        sh("uname -r"),
        sh("ldd --version | head -n1")
    );
    let doc = format!(
        "# Benchmarks\n\nThe last run of `make bench`, {date}, on {machine}.\n\n\
         Method: the bench, the Runtime API simulator and every runtime run pinned to one CPU \
         (CPU {cpu}). Each of {} rounds runs every variant for {} and for {} \
         no-op invokes (the shell runtime: {} and {}), all in an order shuffled per round; \
         per-invoke figures are the long run minus the short run, so start-up cancels. CPU time \
         is the scheduler's accounting of every thread of the runtime process \
         (`/proc/<pid>/task/*/schedstat`). Added figures are the variant minus the baseline of \
         the same round: median, then min – max over the rounds. Instruction counts (`valgrind \
         --tool=callgrind`), cache misses (`--tool=cachegrind`) and system-call counts (`strace \
         -f -c`) are deterministic, measured once per variant, also long minus short, each run's \
         no-op invokes after one that sleeps 200 ms (so that the times the runtime's start gave \
         the temporary directory are old enough to be trusted, as they are in steady state); \
         those runs preload the library directly, as the wrapper would. Node's instructions are not counted \
         (a JIT under valgrind). lambda-meter's wall and CPU runs start each runtime as Lambda \
         does: the managed runtimes (Python, Node) through its wrapper \
         (`AWS_LAMBDA_EXEC_WRAPPER`), the OS-only ones (Rust, the shell runtime) with \
         `LD_PRELOAD` in their environment.\n\n{report}",
        rounds(),
        short(),
        long(),
        shell_runs.0,
        shell_runs.1,
        date = sh("date -u '+%Y-%m-%d %H:%M UTC'"),
    );
    std::fs::write(root.join("BENCHMARKS.md"), doc).expect("write BENCHMARKS.md");
    eprintln!(
        "bench: wrote BENCHMARKS.md ({:.0} s)",
        began.elapsed().as_secs_f64()
    );
}
