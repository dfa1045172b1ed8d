//! One runtime scenario, checked the same way for every runtime family: the function runs
//! against the simulator without lambda-meter and through the wrapper, and the two runs are
//! compared; then the records of the metered run are checked event by event.

use super::*;
use lambda_sim::Outcome as SimOutcome;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Sleep used by the event mixes.
pub const SLEEP_MS: u64 = 50;

/// The standard event mix: success, sleep, failures of two types, 300 KB and 2 MB results, a
/// 300 KB event, and (on the event marked) a forced reconnect.
pub fn standard_mix() -> Vec<Value> {
    vec![
        json!({"action": "ok"}),
        json!({"action": "sleep", "ms": SLEEP_MS}),
        json!({"action": "fail", "type": "ValueError"}),
        json!({"action": "big", "bytes": 300_000}),
        json!({"action": "big", "bytes": 2_000_000}),
        json!({"action": "echo", "pad": "p".repeat(300_000)}),
        json!({"action": "fail", "type": "OrderNotFound"}),
        json!({"action": "ok", "reconnect": true}),
        json!({"action": "ok"}),
        json!({"action": "sleep", "ms": SLEEP_MS}),
    ]
}

/// How the metered run starts the runtime: the three ways a function can load the layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launch {
    /// `AWS_LAMBDA_EXEC_WRAPPER=/opt/lambda-meter`: Lambda runs the wrapper with the runtime's
    /// command line (managed runtimes).
    ExecWrapper,
    /// `LD_PRELOAD=/opt/lib/liblambda_meter.so` in the function's environment and the command
    /// started directly, as Lambda starts an OS-only runtime's `bootstrap` (it never runs an
    /// exec wrapper there).
    Preload,
    /// The function's own `bootstrap` execs `/opt/lambda-meter` with the real program: the
    /// line the README gives OS-only runtimes (see [`bootstrap_script`]).
    Bootstrap,
    /// The runtime is itself a shell `bootstrap`, and the README's handover line is added to
    /// it after its `#!` line (a copy in the layer's directory is run).
    HandoverLine,
}

/// The shell `bootstrap` the README gives an OS-only runtime whose program is `program`, with
/// the layer's wrapper at `wrapper` (`/opt/lambda-meter` on Lambda): it hands over to the
/// wrapper once, and starts the program untouched where the layer is absent.
pub fn bootstrap_script(wrapper: &Path, program: &[String]) -> String {
    let quoted: Vec<String> = program
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    format!(
        "#!/bin/sh\n{}exec {}\n",
        handover_line(wrapper),
        quoted.join(" ")
    )
}

/// The line a shell `bootstrap` starts with to run under the wrapper (README, OS-only
/// runtimes), with the wrapper at `wrapper`.
pub fn handover_line(wrapper: &Path) -> String {
    README_HANDOVER.replace("/opt/lambda-meter", &wrapper.display().to_string()) + "\n"
}

/// The handover line exactly as the README prints it (a test checks the README carries it).
pub const README_HANDOVER: &str = r#"[ -z "${LAMBDA_METER_ENV_ID:-}" ] && [ -x /opt/lambda-meter ] && exec /opt/lambda-meter "$0" "$@""#;

/// How a runtime is started and what may be compared between its two runs.
pub struct Scenario {
    pub command: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    pub payloads: Vec<Value>,
    /// Split every simulator response into writes of this many bytes.
    pub write_chunk: Option<usize>,
    /// The runtime's stdout and stderr carry nothing run-specific (timestamps, pids), so they
    /// must be equal between the two runs apart from the EMF lines.
    pub compare_output: bool,
    /// How many invokes the simulator lets run at once.
    pub max_concurrency: usize,
    /// How the metered run loads the library.
    pub launch: Launch,
    /// Another build of the library to run (the layer's by default).
    pub library: Option<PathBuf>,
    /// Each run's runtime in a memory cgroup of its own, as on Lambda (see
    /// [`Config::memory_cgroup`]).
    pub memory_cgroup: bool,
    /// The function's timeout, where not the simulator's default.
    pub timeout: Option<std::time::Duration>,
}

impl Scenario {
    pub fn new(command: Vec<String>, cwd: PathBuf) -> Scenario {
        Scenario {
            command,
            cwd,
            env: Vec::new(),
            payloads: standard_mix(),
            write_chunk: None,
            compare_output: false,
            max_concurrency: 1,
            launch: Launch::ExecWrapper,
            library: None,
            memory_cgroup: false,
            timeout: None,
        }
    }

    /// The Python client on `handler.dispatch` with `payloads`; its output carries nothing
    /// run-specific, so it is compared too.
    pub fn python(payloads: Vec<Value>) -> Scenario {
        let mut s = Scenario::new(python_command("handler.dispatch"), python_function_dir());
        s.compare_output = true;
        s.payloads = payloads;
        s
    }

    /// The Node.js client on `handler` (its output has timestamps: not compared).
    pub fn node(handler: &str) -> Scenario {
        let dir = node_function_dir();
        Scenario::new(node_command(handler), dir.clone())
            .env("LAMBDA_TASK_ROOT", dir.to_str().unwrap_or_default())
    }

    pub fn env(mut self, k: &str, v: &str) -> Scenario {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    pub fn launched(mut self, launch: Launch) -> Scenario {
        self.launch = launch;
        self
    }

    /// The metered run loads `library` instead of the layer's.
    pub fn with_library(mut self, library: PathBuf) -> Scenario {
        self.library = Some(library);
        self
    }

    /// Runs the runtime in a memory cgroup of its own, as Lambda does.
    pub fn in_memory_cgroup(mut self) -> Scenario {
        self.memory_cgroup = true;
        self
    }

    pub fn tiny_writes(mut self) -> Scenario {
        self.write_chunk = Some(3);
        self
    }

    fn events(&self) -> Vec<Event> {
        let mut evs = events(&self.payloads);
        for (e, p) in evs.iter_mut().zip(&self.payloads) {
            e.close_connection = p["reconnect"] == true;
        }
        evs
    }

    /// One run: without the library, or metered as [`Scenario::launch`] says.
    pub fn run(&self, wrapped: bool) -> Outcome {
        let layer = match &self.library {
            Some(lib) => Layer::with_library(lib),
            None => Layer::new(),
        };
        let mut command = self.command.clone();
        let mut env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let wrapper = layer.wrapper();
        let library = layer.library().display().to_string();
        let bootstrap = layer.dir().join("bootstrap");
        let mut exec_wrapper = None;
        match (wrapped, self.launch) {
            (false, _) => {}
            (true, Launch::ExecWrapper) => exec_wrapper = Some(wrapper.as_path()),
            (true, Launch::Preload) => env.push(("LD_PRELOAD", &library)),
            (true, Launch::Bootstrap) => {
                write_executable(&bootstrap, &bootstrap_script(&wrapper, &self.command));
                command = vec![bootstrap.display().to_string()];
            }
            (true, Launch::HandoverLine) => {
                let own = std::fs::read_to_string(&self.command[0]).expect("shell bootstrap");
                let (shebang, rest) = own.split_once('\n').expect("a #! line");
                let text = format!("{shebang}\n{}{rest}", handover_line(&wrapper));
                write_executable(&bootstrap, &text);
                command[0] = bootstrap.display().to_string();
            }
        }
        let cmd: Vec<&str> = command.iter().map(String::as_str).collect();
        run_with(
            Config {
                events: self.events(),
                write_chunk: self.write_chunk,
                max_concurrency: self.max_concurrency,
                memory_cgroup: self.memory_cgroup,
                timeout: self.timeout.unwrap_or(Config::default().timeout),
                ..Config::default()
            },
            &cmd,
            exec_wrapper,
            &env,
            &self.cwd,
        )
    }

    /// Runs both ways and checks everything; returns the metered run.
    pub fn check(&self) -> Outcome {
        let plain = self.run(false);
        let metered = self.run(true);
        assert!(
            !metered.run.stderr.contains("lambda-meter"),
            "the library wrote to stderr:\n{}",
            metered.run.stderr
        );
        assert!(plain.records().is_empty());
        if self.compare_output {
            assert_eq!(plain.run.stderr, metered.run.stderr);
            if self
                .payloads
                .iter()
                .any(|p| p["action"].as_str().is_some_and(|a| a.ends_with("partial")))
            {
                // A record after a partial line starts with a line break of its own: the text
                // is the same, only broken into lines there.
                assert_eq!(
                    plain.other_stdout().concat(),
                    metered.other_stdout().concat()
                );
            } else {
                assert_eq!(plain.other_stdout(), metered.other_stdout());
            }
        }
        assert_same_results(&plain, &metered);
        assert_same_requests(&plain, &metered);
        check_records(
            &metered,
            &self.events(),
            &self.payloads,
            self.max_concurrency,
        );
        metered
    }
}

/// The Runtime API received byte-identical results.
pub fn assert_same_results(plain: &Outcome, metered: &Outcome) {
    let (a, b) = (plain.sim.results(), metered.sim.results());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        let (x, y) = (
            x.as_ref().expect("plain result"),
            y.as_ref().expect("metered result"),
        );
        assert_eq!(x.request_id, y.request_id);
        assert_eq!(x.outcome, y.outcome, "outcome of {}", x.request_id);
        assert!(x.body == y.body, "result body of {} differs", x.request_id);
        assert_eq!(x.trailers, y.trailers, "trailers of {}", x.request_id);
    }
}

/// Every request is the same, in the same order on each connection (the Host header names
/// each run's own simulator port, so it is left out). Requests on different connections may
/// interleave differently between runs, so each connection is compared as a sequence.
pub fn assert_same_requests(a: &Outcome, b: &Outcome) {
    type Req = (String, String, Vec<(String, String)>, Vec<u8>);
    let view = |o: &Outcome| {
        let mut reqs: Vec<Req> = o
            .sim
            .requests()
            .into_iter()
            .map(|r| {
                let headers: Vec<_> = r
                    .headers
                    .into_iter()
                    .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
                    .collect();
                (r.method, r.target, headers, r.body)
            })
            .collect();
        reqs.sort();
        reqs
    };
    let (x, y) = (view(a), view(b));
    assert_eq!(x.len(), y.len(), "number of requests");
    for (p, q) in x.iter().zip(&y) {
        assert!(
            p == q,
            "a request differs: {} {} ({} body bytes) vs {} {} ({} body bytes), headers {:?} vs {:?}",
            p.0,
            p.1,
            p.3.len(),
            q.0,
            q.1,
            q.3.len(),
            p.2,
            q.2
        );
    }
}

/// Records keyed by request id; two records for one id fail.
pub fn by_request_id(records: &[Value]) -> HashMap<String, Value> {
    let mut map = HashMap::new();
    for r in records {
        let id = r["requestId"].as_str().expect("requestId").to_string();
        assert!(
            map.insert(id.clone(), r.clone()).is_none(),
            "two records for {id}"
        );
    }
    map
}

/// Checks the records of a single-process runtime against the events it was given. With
/// `concurrency` invokes at once, the cold start is one of the first `concurrency` events.
pub fn check_records(metered: &Outcome, evs: &[Event], payloads: &[Value], concurrency: usize) {
    let records = metered.records();
    assert_valid_emf(&records);
    let by_id = by_request_id(&records);
    let results = metered.sim.results();
    // `evs` may be the first of the events served (a stream followed until it was dropped).
    assert!(evs.len() <= results.len());
    let mut seen: Vec<&str> = by_id.keys().map(String::as_str).collect();
    seen.sort();
    assert_eq!(
        by_id.len(),
        evs.len(),
        "exactly one record per request id; records of {seen:?}"
    );
    let mut cold = 0;
    for (i, (event, result)) in evs.iter().zip(&results).enumerate() {
        let result = result.as_ref().expect("result");
        let id = event.request_id.as_deref().expect("fixed request id");
        let rec = by_id
            .get(id)
            .unwrap_or_else(|| panic!("no record for {id}"));
        let p = &payloads[i];
        assert_eq!(rec["FunctionName"], "lambda-meter-test");
        assert_eq!(
            rec["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "LambdaMeter"
        );
        assert_eq!(
            rec["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["FunctionName"]])
        );
        assert!(
            rec["traceId"]
                .as_str()
                .expect("traceId")
                .starts_with("Root=1-")
        );
        assert_eq!(rec["functionVersion"], "$LATEST");
        assert_eq!(rec["memorySize"], 128);
        assert_eq!(rec["initType"], "on-demand");
        assert_eq!(
            rec["RequestBytes"].as_f64().expect("RequestBytes") as usize,
            event.payload.len(),
            "RequestBytes of {id}"
        );
        assert_eq!(
            rec["ResponseBytes"].as_f64().expect("ResponseBytes") as usize,
            result.body.len(),
            "ResponseBytes of {id}"
        );
        assert!(rec["MaxMemoryUsed"].as_f64().expect("MaxMemoryUsed") > 0.0);
        assert!(rec["CpuTime"].as_f64().expect("CpuTime") >= 0.0);
        let failing = p["action"] == "fail";
        assert_eq!(
            rec["Errors"].as_f64(),
            Some(if failing { 1.0 } else { 0.0 }),
            "Errors of {id}"
        );
        if failing {
            assert_eq!(rec["errorType"], p["type"], "errorType of {id}");
            assert!(
                matches!(result.outcome, SimOutcome::Error { .. }) || !result.trailers.is_empty()
            );
        } else {
            assert!(rec.get("errorType").is_none(), "errorType on {id}");
        }
        if p["action"] == "sleep" {
            let d = rec["Duration"].as_f64().expect("Duration");
            assert!(
                d >= p["ms"].as_f64().unwrap_or(0.0),
                "Duration {d} of a sleep of {}",
                p["ms"]
            );
        }
        if rec["ColdStart"].as_f64() == Some(1.0) {
            cold += 1;
            assert!(
                i < concurrency.max(1),
                "the cold start is a first invoke, not event {i}"
            );
            assert!(rec["InitDuration"].as_f64().expect("InitDuration") > 0.0);
        } else {
            assert_eq!(rec["ColdStart"].as_f64(), Some(0.0));
            assert!(
                rec.get("InitDuration").is_none(),
                "InitDuration only on the cold start"
            );
        }
    }
    assert_eq!(cold, 1, "exactly one cold start");
    assert_environment_once(&metered.raw_records());
}

/// The environment's properties are on the log stream's first record, and besides it only on
/// the cold start's: a single-process runtime under the default settings. (With invokes at
/// once, the record encoded first may reach the stream just after another.)
pub fn assert_environment_once(raw: &[Value]) {
    let keys = ["functionVersion", "initType", "runtime", "memorySize"];
    let with: Vec<&Value> = raw.iter().filter(|r| r.get("runtime").is_some()).collect();
    for r in &with {
        assert!(keys.iter().all(|k| r.get(*k).is_some()), "all or none: {r}");
    }
    assert!(
        !with.is_empty(),
        "no record has the environment's properties"
    );
    let warm = with.iter().filter(|r| r["ColdStart"] != 1.0).count();
    assert!(
        warm <= 1 && with.len() <= 2,
        "{} of {} records repeat the environment's properties",
        with.len(),
        raw.len()
    );
}
