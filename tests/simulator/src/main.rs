//! `lambda-sim`: serve events to a runtime command on a local Runtime API and report.
//!
//! ```text
//! lambda-sim [--events FILE] [--function-name NAME] [--timeout-ms MS] [--port PORT]
//!            [--max-concurrency N] [--wrapper PATH] [--restart-on-exit] [--memory-cgroup]
//!            [--summary] -- COMMAND [ARGS…]
//! ```
//! `FILE` holds a JSON array; each element is one event payload. The command runs with the
//! Lambda environment variables set (and under `--wrapper`, like `AWS_LAMBDA_EXEC_WRAPPER`);
//! its output passes through. With `--summary`, the EMF records it printed are summarised
//! (and an invoke without a record fails the run). With `--memory-cgroup` (as root), the runtime
//! runs in a memory cgroup of its own limited to the function's memory size, as on Lambda, and
//! its peak is reported as Lambda's REPORT line reports `Max Memory Used`.

use lambda_sim::{Config, Event, RunOptions, Simulator, run_function, summary};
use std::process::ExitCode;
use std::time::Duration;

fn usage() -> ExitCode {
    eprintln!(
        "usage: lambda-sim [--events FILE] [--function-name NAME] [--timeout-ms MS] [--port PORT] [--max-concurrency N] [--wrapper PATH] [--restart-on-exit] [--memory-cgroup] [--summary] -- COMMAND [ARGS...]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let mut config = Config::default();
    let mut opts = RunOptions {
        echo: true,
        timeout: Some(Duration::from_secs(600)),
        ..RunOptions::default()
    };
    let mut events_file = None;
    let mut want_summary = false;
    while let Some(a) = args.next() {
        let a = a.to_string_lossy().into_owned();
        let mut value = || args.next().map(|v| v.to_string_lossy().into_owned());
        match a.as_str() {
            "--events" => events_file = value(),
            "--function-name" => match value() {
                Some(v) => config.function_name = v,
                None => return usage(),
            },
            "--timeout-ms" => match value().and_then(|v| v.parse().ok()) {
                Some(ms) => config.timeout = Duration::from_millis(ms),
                None => return usage(),
            },
            "--max-concurrency" => match value().and_then(|v| v.parse().ok()) {
                Some(n) => config.max_concurrency = n,
                None => return usage(),
            },
            "--port" => match value().and_then(|v| v.parse().ok()) {
                Some(p) => config.port = p,
                None => return usage(),
            },
            "--wrapper" => opts.wrapper = value().map(Into::into),
            "--summary" => want_summary = true,
            "--restart-on-exit" => config.restart_on_exit = true,
            "--memory-cgroup" => config.memory_cgroup = true,
            "--" => break,
            _ => return usage(),
        }
    }
    opts.command = args.collect();
    if opts.command.is_empty() {
        return usage();
    }
    let payloads: Vec<serde_json::Value> = match &events_file {
        None => vec![serde_json::json!({})],
        Some(path) => match std::fs::read(path).map(|b| serde_json::from_slice(&b)) {
            Ok(Ok(serde_json::Value::Array(v))) => v,
            _ => {
                eprintln!("lambda-sim: {path}: expected a JSON array of event payloads");
                return ExitCode::from(2);
            }
        },
    };
    config.events = payloads.iter().map(Event::json).collect();
    let n = config.events.len();
    let sim = match Simulator::start(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lambda-sim: cannot listen: {e}");
            return ExitCode::from(1);
        }
    };
    eprintln!(
        "lambda-sim: Runtime API on {} serving {n} events",
        sim.api_address()
    );
    let run = match run_function(&sim, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lambda-sim: cannot start the function: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(status) = run.exited {
        eprintln!("lambda-sim: the runtime exited by itself ({status})");
    } else if !run.idle {
        eprintln!("lambda-sim: gave up waiting for the runtime");
    }
    if let Some(kb) = run.memory_peak_kb {
        eprintln!(
            "lambda-sim: the environment's peak memory (its cgroup's, as REPORT's Max Memory Used): {} MB",
            kb.div_ceil(1024)
        );
    }
    let answered = sim.results().iter().filter(|r| r.is_some()).count();
    eprintln!(
        "lambda-sim: {answered}/{n} events answered in {:.2} s",
        run.elapsed.as_secs_f64()
    );
    let mut complete = true;
    if want_summary {
        let records = summary::emf_records(&run.stdout);
        println!(
            "\n== lambda-meter summary ==\n{}\n{}",
            summary::summarize(&records),
            summary::where_in_aws(&records)
        );
        if let Some(cost) = summary::cost(&run.stdout) {
            println!("{}", summary::cost_text(&cost));
        }
        let ids: Vec<String> = sim
            .results()
            .into_iter()
            .flatten()
            .map(|r| r.request_id)
            .collect();
        let missing = summary::missing_records(&records, &ids);
        if !missing.is_empty() {
            println!(
                "no record for {} invoke(s): {}",
                missing.len(),
                missing.join(", ")
            );
            complete = false;
        }
    }
    if answered == n && complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
