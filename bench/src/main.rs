//! `make bench`: what lambda-meter costs, measured side by side with doing nothing and with
//! what users pick instead, in one run on one machine.
//!
//! Every figure is the median of `ROUNDS` interleaved rounds (A B C … A B C …), reported as a
//! ratio to the baseline measured in the same round, with the min–max beside it; absolute
//! numbers are context. The table is printed and written to BENCHMARKS.md.

use lambda_sim::{Config, Event, RunOptions, Simulator, run_function};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const ROUNDS: usize = 5;
const INVOKES: usize = 3000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One way to run a function.
struct Variant {
    name: &'static str,
    command: Vec<String>,
    env: Vec<(String, String)>,
    wrapper: Option<PathBuf>,
    cwd: PathBuf,
}

/// What one run of a variant measured.
#[derive(Clone, Copy)]
struct Sample {
    /// Mean time per invoke, µs (from the first `/next` to the one after the last invoke).
    per_invoke_us: f64,
    /// Process start → first `/next` request, ms.
    cold_ms: f64,
    /// Resident memory after the invokes, KiB.
    rss_kb: f64,
}

fn run_variant(v: &Variant) -> Sample {
    let mut events: Vec<Event> = (0..INVOKES)
        .map(|_| Event::json(&json!({"action": "ok"})))
        .collect();
    events.push(Event::json(&json!({"action": "rss"})));
    let sim = Simulator::start(Config {
        events,
        timeout: Duration::from_secs(900),
        ..Config::default()
    })
    .expect("simulator");
    let run = run_function(
        &sim,
        &RunOptions {
            command: v.command.iter().map(Into::into).collect(),
            wrapper: v.wrapper.clone(),
            env: v.env.clone(),
            cwd: Some(v.cwd.clone()),
            timeout: Some(Duration::from_secs(300)),
            ..RunOptions::default()
        },
    )
    .expect("run");
    assert!(run.idle, "{} did not finish:\n{}", v.name, run.stderr);
    let arrivals = sim.next_arrivals();
    let per = arrivals[INVOKES].duration_since(arrivals[0]).as_secs_f64() / INVOKES as f64;
    let cold = arrivals[0].duration_since(run.spawned_at).as_secs_f64();
    let last = sim.results()[INVOKES].clone().expect("rss result");
    let body: Value = serde_json::from_slice(&last.body).unwrap_or(Value::Null);
    Sample {
        per_invoke_us: per * 1e6,
        cold_ms: cold * 1e3,
        rss_kb: body["rssKb"].as_f64().unwrap_or(f64::NAN),
    }
}

/// Runs the variants of a group in interleaved rounds.
fn measure(group: &[Variant]) -> Vec<Vec<Sample>> {
    let mut samples = vec![Vec::new(); group.len()];
    for round in 0..ROUNDS {
        for (i, v) in group.iter().enumerate() {
            eprintln!("bench: round {}/{ROUNDS}: {}", round + 1, v.name);
            samples[i].push(run_variant(v));
        }
    }
    samples
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
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

fn ratios(a: &[Sample], base: &[Sample], f: fn(&Sample) -> f64) -> Stat {
    stat(a.iter().zip(base).map(|(x, b)| f(x) / f(b)).collect())
}

fn differences(a: &[Sample], base: &[Sample], f: fn(&Sample) -> f64) -> Stat {
    stat(a.iter().zip(base).map(|(x, b)| f(x) - f(b)).collect())
}

fn fmt_ratio(s: &Stat) -> String {
    format!("{:.4} ({:.4}–{:.4})", s.median, s.min, s.max)
}

fn fmt_diff(s: &Stat, unit: &str) -> String {
    format!("{:+.2} {unit} ({:+.2}–{:+.2})", s.median, s.min, s.max)
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

/// The syscall-bound loops, without and with the library preloaded (active, as in Lambda).
fn passthrough(lib: &Path, report: &mut String, targets: &mut Vec<(String, bool)>) {
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
    let run = |mode: &str, n: u64, preload: bool| -> f64 {
        let mut c = Command::new(&bin);
        c.args([mode, &n.to_string()]).env_remove("LD_PRELOAD");
        if preload {
            c.env("LD_PRELOAD", lib)
                .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9");
        }
        let out = c.output().expect("passthrough");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<f64>()
            .expect("ns")
            / n as f64
    };
    let callgrind = |mode: &str, n: u64, preload: bool| -> f64 {
        let mut c = Command::new("valgrind");
        c.args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .arg(&bin)
            .args([mode, &n.to_string()])
            .env_remove("LD_PRELOAD");
        if preload {
            c.env("LD_PRELOAD", lib)
                .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9");
        }
        let out = c.output().expect("valgrind");
        let text = String::from_utf8_lossy(&out.stderr);
        // The parent's "Collected : N" line (the first process to report).
        text.lines()
            .find_map(|l| l.split("Collected :").nth(1))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .expect("callgrind total")
    };
    writeln!(
        report,
        "\n### Untracked-fd pass-through (a function's own I/O)\n"
    )
    .unwrap();
    writeln!(
        report,
        "| loop | without, ns/op | with lambda-meter, ns/op | time ratio (median, min–max) | instructions/op without → with (callgrind) | instruction ratio |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|---|---|").unwrap();
    for (mode, n) in [
        ("devnull", 1_000_000u64),
        ("pipe", 50_000),
        ("socket", 50_000),
    ] {
        let mut without = Vec::new();
        let mut with = Vec::new();
        for round in 0..ROUNDS {
            eprintln!("bench: round {}/{ROUNDS}: pass-through {mode}", round + 1);
            without.push(run(mode, n, false));
            with.push(run(mode, n, true));
        }
        let r = stat(with.iter().zip(&without).map(|(w, o)| w / o).collect());
        // Instructions per iteration: the difference between two loop lengths removes startup.
        let (n1, n2) = (2_000u64, 4_000u64);
        let ir = |preload| {
            (callgrind(mode, n2, preload) - callgrind(mode, n1, preload)) / (n2 - n1) as f64
        };
        let (ir_without, ir_with) = (ir(false), ir(true));
        writeln!(
            report,
            "| {mode} | {:.0} | {:.0} | {} | {:.0} → {:.0} | {:.4} |",
            median(without.clone()),
            median(with.clone()),
            fmt_ratio(&r),
            ir_without,
            ir_with,
            ir_with / ir_without
        )
        .unwrap();
        targets.push((
            format!(
                "pass-through {mode} ≤ +2% (median time ratio {:.4})",
                r.median
            ),
            r.median <= 1.02,
        ));
    }
}

fn main() {
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
    let wrapper = layer.join("lambda-meter");
    let py_dir = root.join("tests/functions/python");
    let node_dir = root.join("tests/functions/node");
    let ric = must_exist(&node_dir.join("node_modules/aws-lambda-ric/bin/index.mjs"));
    let rust_fn = must_exist(&root.join("target/release/rust-buffered"));
    let proxy = must_exist(&root.join("target/release/bench-proxy"));
    let py = |handler: &str| -> Vec<String> {
        vec![
            python.display().to_string(),
            "-m".into(),
            "awslambdaric".into(),
            handler.into(),
        ]
    };
    let variant =
        |name, command: Vec<String>, wrapped: bool, cwd: &Path, env: Vec<(String, String)>| {
            Variant {
                name,
                command,
                env,
                wrapper: wrapped.then(|| wrapper.clone()),
                cwd: cwd.to_path_buf(),
            }
        };
    let mut proxied = vec![proxy.display().to_string()];
    proxied.extend(py("bench.noop"));
    let proxy_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let python_group = [
        variant("baseline", py("bench.noop"), false, &py_dir, vec![]),
        variant("lambda-meter", py("bench.noop"), true, &py_dir, vec![]),
        variant(
            "Powertools Metrics",
            py("bench.powertools"),
            false,
            &py_dir,
            vec![],
        ),
        variant(
            "aws-embedded-metrics",
            py("bench.emf"),
            false,
            &py_dir,
            vec![],
        ),
        variant(
            "Runtime API proxy",
            proxied,
            false,
            &py_dir,
            vec![(
                "AWS_LAMBDA_RUNTIME_PROXY_PORT".into(),
                proxy_port.to_string(),
            )],
        ),
    ];
    let node_env = vec![(
        "LAMBDA_TASK_ROOT".to_string(),
        node_dir.display().to_string(),
    )];
    let node_cmd = vec![
        "node".to_string(),
        ric.display().to_string(),
        "index.handler".into(),
    ];
    let node_group = [
        variant(
            "baseline",
            node_cmd.clone(),
            false,
            &node_dir,
            node_env.clone(),
        ),
        variant("lambda-meter", node_cmd, true, &node_dir, node_env),
    ];
    let rust_cmd = vec![rust_fn.display().to_string()];
    let rust_group = [
        variant("baseline", rust_cmd.clone(), false, &root, vec![]),
        variant("lambda-meter", rust_cmd, true, &root, vec![]),
    ];

    let py_samples = measure(&python_group);
    let node_samples = measure(&node_group);
    let rust_samples = measure(&rust_group);

    let mut report = String::new();
    let mut targets: Vec<(String, bool)> = Vec::new();
    writeln!(
        report,
        "### Per-invoke time, no-op handler, {INVOKES} invokes a run\n"
    )
    .unwrap();
    writeln!(
        report,
        "| runtime | variant | µs per invoke (median) | ratio to baseline (median, min–max) |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|").unwrap();
    let per = |s: &Sample| s.per_invoke_us;
    for (label, group, samples) in [
        ("Python awslambdaric", &python_group[..], &py_samples),
        ("Node aws-lambda-ric", &node_group[..], &node_samples),
        ("Rust lambda_runtime", &rust_group[..], &rust_samples),
    ] {
        for (i, v) in group.iter().enumerate() {
            let abs = median(samples[i].iter().map(per).collect());
            let ratio = if i == 0 {
                "1".to_string()
            } else {
                fmt_ratio(&ratios(&samples[i], &samples[0], per))
            };
            writeln!(report, "| {label} | {} | {abs:.1} | {ratio} |", v.name).unwrap();
        }
    }
    let lm = ratios(&py_samples[1], &py_samples[0], per);
    targets.push((
        format!(
            "Python per-invoke overhead ≤ 1% of the baseline loop (median ratio {:.4})",
            lm.median
        ),
        lm.median <= 1.01,
    ));
    // lambda-meter's added cost as a share of Powertools' added cost, per round.
    let share = stat(
        (0..ROUNDS)
            .map(|r| {
                let base = py_samples[0][r].per_invoke_us;
                (py_samples[1][r].per_invoke_us - base) / (py_samples[2][r].per_invoke_us - base)
            })
            .collect(),
    );
    writeln!(
        report,
        "\nlambda-meter's added time per invoke as a share of Powertools' added time: {:.3} ({:.3}–{:.3})",
        share.median, share.min, share.max
    )
    .unwrap();
    targets.push((
        format!(
            "added cost ≤ 1/10 of Powertools' added cost (median share {:.3})",
            share.median
        ),
        share.median <= 0.1,
    ));

    writeln!(
        report,
        "\n### Cold start: process start → first `/next` request (as the simulator sees it)\n"
    )
    .unwrap();
    writeln!(report, "| runtime | baseline, ms (median) | with lambda-meter, ms (median) | difference (median, min–max) |").unwrap();
    writeln!(report, "|---|---|---|---|").unwrap();
    let cold = |s: &Sample| s.cold_ms;
    for (label, samples) in [
        ("Python", &py_samples),
        ("Node", &node_samples),
        ("Rust", &rust_samples),
    ] {
        let d = differences(&samples[1], &samples[0], cold);
        writeln!(
            report,
            "| {label} | {:.2} | {:.2} | {} |",
            median(samples[0].iter().map(cold).collect()),
            median(samples[1].iter().map(cold).collect()),
            fmt_diff(&d, "ms")
        )
        .unwrap();
        if label != "Rust" {
            targets.push((
                format!("{label} cold start ≤ +1 ms (median {:+.2} ms)", d.median),
                d.median <= 1.0,
            ));
        }
    }

    writeln!(report, "\n### Memory and size\n").unwrap();
    writeln!(report, "| runtime | RSS after {INVOKES} invokes, baseline MB | with lambda-meter MB | difference (median, min–max) |").unwrap();
    writeln!(report, "|---|---|---|---|").unwrap();
    let rss = |s: &Sample| s.rss_kb / 1024.0;
    for (label, samples) in [
        ("Python", &py_samples),
        ("Node", &node_samples),
        ("Rust", &rust_samples),
    ] {
        let d = differences(&samples[1], &samples[0], rss);
        writeln!(
            report,
            "| {label} | {:.2} | {:.2} | {} |",
            median(samples[0].iter().map(rss).collect()),
            median(samples[1].iter().map(rss).collect()),
            fmt_diff(&d, "MB")
        )
        .unwrap();
        targets.push((
            format!(
                "{label} resident memory ≤ +1 MB (median {:+.2} MB)",
                d.median
            ),
            d.median <= 1.0,
        ));
    }
    let layer_lib = root.join("target/layer/x86_64/lib/liblambda_meter.so");
    let size_of = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    writeln!(
        report,
        "\nStripped library: {} bytes (release build here), {} bytes (x86_64 layer, glibc 2.26).",
        size_of(&lib),
        size_of(&layer_lib)
    )
    .unwrap();

    passthrough(&lib, &mut report, &mut targets);

    writeln!(report, "\n### Targets\n").unwrap();
    writeln!(report, "| target | result |").unwrap();
    writeln!(report, "|---|---|").unwrap();
    for (t, met) in &targets {
        writeln!(
            report,
            "| {t} | {} |",
            if *met { "met" } else { "**missed**" }
        )
        .unwrap();
    }

    println!("{report}");
    let machine = format!(
        "{} ({} cores), Linux {}, {}",
        sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'"),
        sh("nproc"),
        sh("uname -r"),
        sh("ldd --version | head -n1")
    );
    let doc = format!(
        "# Benchmarks\n\nThe last run of `make bench`, {date}, on {machine}.\n\n\
         Method: every figure is the median of {ROUNDS} rounds run interleaved (each round runs every \
         variant once, in turn), reported as a ratio to (or difference from) the baseline measured \
         in the same round, with the min–max over the rounds beside it; absolute numbers are \
         context. Runtimes run against the project's Runtime API simulator on loopback, {INVOKES} \
         no-op invokes a run; lambda-meter runs through its wrapper exactly as on Lambda \
         (`AWS_LAMBDA_EXEC_WRAPPER`), so its cold-start figure includes the wrapper script. \
         Instruction counts come from `valgrind --tool=callgrind` and do not depend on machine load.\n\n{report}",
        date = sh("date -u '+%Y-%m-%d %H:%M UTC'"),
    );
    std::fs::write(root.join("BENCHMARKS.md"), doc).expect("write BENCHMARKS.md");
    eprintln!("bench: wrote BENCHMARKS.md");
}
