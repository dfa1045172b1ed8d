//! The deployable layer built by `make layer`: both architectures, glibc ≤ 2.26, exactly the
//! hooks exported, small, reproducible, and metering for real once unpacked where Lambda puts
//! it; chaining to another wrapper; and the deploy files validated where a validator installs.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

const ARCHES: [&str; 2] = ["x86_64", "arm64"];

fn version() -> String {
    let cargo = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    cargo
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap()
}

fn zip_of(arch: &str) -> PathBuf {
    let zip = root().join(format!(
        "target/layer/lambda-meter-{}-{arch}.zip",
        version()
    ));
    assert!(
        zip.is_file(),
        "{} is missing: run `make layer` (make test does)",
        zip.display()
    );
    zip
}

/// Unpacks a layer zip as Lambda does, into `<dir>/opt`.
fn unpack(arch: &str, dir: &Path) -> PathBuf {
    let opt = dir.join("opt");
    std::fs::create_dir_all(&opt).unwrap();
    let status = Command::new("unzip")
        .arg("-q")
        .arg(zip_of(arch))
        .arg("-d")
        .arg(&opt)
        .status()
        .unwrap();
    assert!(status.success());
    opt
}

fn glibc_versions(lib: &Path) -> Vec<(u32, u32)> {
    let out = Command::new("readelf")
        .args(["-W", "--version-info"])
        .arg(lib)
        .output()
        .expect("readelf");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v: Vec<(u32, u32)> = text
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut p = v.split('.');
            Some((p.next()?.parse().ok()?, p.next()?.parse().ok()?))
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The library loads no unwinder: it neither needs libgcc_s.so.1 nor imports `_Unwind_*`
/// (c-abi/unwind.c forwards them to the system's on first use), and carries no unwinder of its
/// own either (zig would link LLVM's libunwind in, a second unwinder beside the system's, which
/// crashes a thread cancelled in a hook).
fn assert_loads_no_unwinder(arch: &str, lib: &Path) {
    let dynamic = Command::new("objdump").arg("-p").arg(lib).output().unwrap();
    let dynamic = String::from_utf8_lossy(&dynamic.stdout);
    assert!(
        dynamic.lines().any(|l| l.contains("NEEDED")) && !dynamic.contains("libgcc_s"),
        "{arch}: {dynamic}"
    );
    let symbols = Command::new("objdump").arg("-T").arg(lib).output().unwrap();
    let symbols = String::from_utf8_lossy(&symbols.stdout);
    assert!(!symbols.contains("_Unwind_"), "{arch}: {symbols}");
    let text = std::fs::read(lib).unwrap();
    assert!(
        !text.windows(11).any(|w| w == b"libunwind: "),
        "{arch}: LLVM's libunwind is linked in"
    );
}

#[test]
fn each_zip_holds_the_wrapper_the_shims_and_small_stripped_libraries_for_glibc_2_26_and_2_34() {
    for arch in ARCHES {
        let zip = zip_of(arch);
        let listing = Command::new("unzip").arg("-Z").arg(&zip).output().unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout);
        let entries: Vec<&str> = listing
            .lines()
            .filter(|l| l.starts_with('-') || l.starts_with('d'))
            .collect();
        // The wrapper, the libraries, and the custom-metrics shims
        // where each runtime looks for a layer's code (/opt/bin, /opt/java/lib,
        // /opt/nodejs/node_modules, /opt/python, /opt/ruby/lib), in name order.
        let expected = [
            ("-rw-r--r--", "bin/lambda-meter.sh"),
            ("-rw-r--r--", "java/lib/lambda-meter.jar"),
            ("-rwxr-xr-x", "lambda-meter"),
            ("-rw-r--r--", "lib/glibc-2.34/liblambda_meter.so"),
            ("-rw-r--r--", "lib/liblambda_meter.so"),
            ("-rw-r--r--", "nodejs/node_modules/lambda-meter/index.js"),
            ("-rw-r--r--", "python/lambda_meter/__init__.py"),
            ("-rw-r--r--", "ruby/lib/lambda_meter.rb"),
        ];
        assert_eq!(entries.len(), expected.len(), "{listing}");
        for (entry, (mode, name)) in entries.iter().zip(expected) {
            assert!(
                entry.starts_with(mode) && entry.ends_with(&format!(" {name}")),
                "{name}: {listing}"
            );
        }
        assert!(
            entries.iter().all(|e| e.contains("80-Jan-01 00:00")),
            "fixed timestamps: {listing}"
        );
        let dir = tempdir::TempDir::new(&format!("unzip-{arch}"));
        let opt = unpack(arch, dir.path());
        let zip_size = std::fs::metadata(&zip).unwrap().len();
        assert!(zip_size <= 1_000_000, "{arch} zip is {zip_size} bytes");
        // The wrapper has its libraries' machine written in: the loader it checks for.
        let wrapper = std::fs::read_to_string(opt.join("lambda-meter")).unwrap();
        let (sig, loader) = match arch {
            "x86_64" => ("62", "/lib64/ld-linux-x86-64.so.2"),
            _ => ("183", "/lib/ld-linux-aarch64.so.1"),
        };
        assert!(
            wrapper.contains(&format!("\nlm_layer_sig='65794 {sig}'\n"))
                && wrapper.contains(&format!("\nlm_layer_loader='{loader}'\n")),
            "{arch}: the wrapper's machine note"
        );
        for (lib, glibc) in [
            (opt.join("lib/liblambda_meter.so"), (2, 26)),
            (opt.join("lib/glibc-2.34/liblambda_meter.so"), (2, 34)),
        ] {
            assert_small_stripped_library(arch, &lib, glibc);
        }
    }
}

/// `lib`, of the layer for `arch`, needs glibc `glibc` at most and nothing it does not need.
fn assert_small_stripped_library(arch: &str, lib: &Path, glibc: (u32, u32)) {
    let newest = *glibc_versions(lib).last().unwrap();
    assert!(
        newest <= glibc,
        "{arch} {} needs GLIBC_{}.{}",
        lib.display(),
        newest.0,
        newest.1
    );
    // From glibc 2.34 the threads and dl functions are libc's own: the loader opens
    // neither libpthread.so.0 nor libdl.so.2 for the library built for it. Neither build names
    // the dynamic loader (layer/unneed-loader.py), which would come forward in the search
    // order of every process.
    let dynamic = Command::new("objdump").arg("-p").arg(lib).output().unwrap();
    let needed: Vec<String> = String::from_utf8_lossy(&dynamic.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("NEEDED"))
        .map(|n| n.trim().to_string())
        .collect();
    let expected: &[&str] = if glibc >= (2, 34) {
        &["libc.so.6"]
    } else {
        &["libc.so.6", "libpthread.so.0", "libdl.so.2"]
    };
    assert_eq!(needed, expected, "{arch} {}", lib.display());
    assert_exports_exactly_the_hooks(lib);
    assert_loads_no_unwinder(arch, lib);
    let sections = Command::new("readelf")
        .args(["-W", "-S"])
        .arg(lib)
        .output()
        .unwrap();
    let sections = String::from_utf8_lossy(&sections.stdout);
    assert!(
        sections.contains(".dynsym") && !sections.contains(".symtab"),
        "{arch} library is stripped"
    );
    let lib_size = std::fs::metadata(lib).unwrap().len();
    assert!(lib_size <= 1_500_000, "{arch} library is {lib_size} bytes");
    let machine = Command::new("od")
        .args(["-An", "-tx1", "-j18", "-N2"])
        .arg(lib)
        .output()
        .unwrap();
    let machine = String::from_utf8_lossy(&machine.stdout).trim().to_string();
    assert_eq!(
        machine,
        if arch == "x86_64" { "3e 00" } else { "b7 00" },
        "{arch} ELF machine"
    );
}

#[test]
fn the_same_files_give_byte_identical_zips() {
    for arch in ARCHES {
        let dir = tempdir::TempDir::new(&format!("repro-{arch}"));
        let opt = unpack(arch, dir.path());
        let again = dir.path().join("again.zip");
        let status = Command::new("python3")
            .arg(root().join("layer/mkzip.py"))
            .arg(&opt)
            .arg(&again)
            .status()
            .unwrap();
        assert!(status.success());
        assert!(
            std::fs::read(&again).unwrap() == std::fs::read(zip_of(arch)).unwrap(),
            "{arch} zip differs"
        );
    }
}

/// The test Python function under awslambdaric, started through the wrapper of the layer
/// unpacked at `opt`.
fn run_python_through(opt: &Path, payloads: &[serde_json::Value]) -> Outcome {
    let cmd = python_command("handler.dispatch");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    run(
        events(payloads),
        &cmd,
        Some(&opt.join("lambda-meter")),
        &[],
        &python_function_dir(),
    )
}

#[test]
fn the_x86_64_layer_unpacked_into_opt_meters_the_python_runtime() {
    let dir = tempdir::TempDir::new("opt-x86");
    let opt = unpack("x86_64", dir.path());
    let payloads = [
        json!({"action": "ok"}),
        json!({"action": "fail", "type": "KeyError"}),
    ];
    let out = run_python_through(&opt, &payloads);
    assert!(
        out.run.stderr.is_empty() || !out.run.stderr.contains("lambda-meter"),
        "{}",
        out.run.stderr
    );
    let records = out.records();
    assert_eq!(records.len(), 2);
    assert_valid_emf(&records);
    assert_eq!(records.iter().filter(|r| r["Errors"] == 1.0).count(), 1);
}

/// The library's code is laid out with the functions that run first (link/hot-functions.txt):
/// a process that never talks to the Runtime API (a shell runtime's `grep`, `cut`, `sed`) has
/// one or two 64 KiB windows of it in its page tables when its `main` starts, not pages all
/// over it (50 of 153, from the first page to the last, before the layout), and a Python
/// runtime, through the wrapper and as an unprivileged user, after 100 invokes a little over
/// half, not all of it.
/// (x86_64: qemu, which runs the arm64 library here, keeps page tables of its own.)
#[test]
fn the_layer_library_code_that_runs_is_laid_out_together() {
    let dir = tempdir::TempDir::new("opt-layout");
    let opt = unpack("x86_64", dir.path());
    let probe = compile_program("text_pages", "text_pages", &["-O1"]);
    for lib in [
        opt.join("lib/liblambda_meter.so"),
        opt.join("lib/glibc-2.34/liblambda_meter.so"),
    ] {
        let out = Command::new(&probe)
            .arg("liblambda_meter")
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
            .env("LD_PRELOAD", &lib)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let numbers: Vec<u64> = text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let [present, span, total] = numbers[..] else {
            panic!("{text}")
        };
        assert!(total > 100, "{}: {text}", lib.display());
        assert!(
            present > 0 && present <= 32 && span <= 32,
            "{}: {text}",
            lib.display()
        );
    }

    let mut payloads = vec![json!({"action": "ok"}); 100];
    payloads.push(json!({"action": "text_pages"}));
    // As Lambda runs it: an unprivileged user (the layout is profiled so, and a process that
    // can change its ids starts its watchdog another way).
    let mut cmd = lambda_sim::as_lambda_user();
    cmd.push(opt.join("lambda-meter").display().to_string());
    cmd.extend(python_command("handler.dispatch"));
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let out = run(events(&payloads), &cmd, None, &[], &python_function_dir());
    let result = out.sim.results()[100].clone().unwrap();
    let pages: serde_json::Value = serde_json::from_slice(&result.body).unwrap();
    let (present, total) = (
        pages["present"].as_u64().unwrap(),
        pages["total"].as_u64().unwrap(),
    );
    assert!(total > 100, "{pages}");
    assert!(present * 5 <= total * 3, "{pages}");
}

/// zig (from the layer tools) cross-compiles the C test runtime for arm64.
fn arm64_c_runtime() -> PathBuf {
    let out = profile_dir().join("test-programs/c_runtime_arm64");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let zig_python = root().join("target/layer-tools/bin/python");
    let status = Command::new(&zig_python)
        .args([
            "-m",
            "ziglang",
            "cc",
            "-target",
            "aarch64-linux-gnu.2.26",
            "-O2",
            "-o",
        ])
        .arg(&out)
        .arg(root().join("tests/programs/c_runtime.c"))
        .status()
        .expect("zig cc");
    assert!(status.success(), "zig cc for arm64");
    out
}

#[test]
fn the_library_s_own_thread_never_calls_the_loader_for_thread_local_storage() {
    // Where the host loaded objects with thread-local storage after the library's thread
    // started, the loader's `__tls_get_addr` brings that thread's table up to date, with
    // `realloc` once it grows: on a thread glibc does not know of, in a process it counts
    // single-threaded, that raced the host's own `malloc` (a corrupted heap). tls_watch stands
    // in for `__tls_get_addr` and counts the calls made on the thread named lambda-meter,
    // which must be none, across invokes that wake the watchdog. The layer's builds, as
    // optimised as users get them: where the compiler puts such a call depends on inlining.
    let watch = compile_program("tls_watch", "libtls_watch.so", &["-shared", "-fPIC", "-O1"]);
    let runtime = compile_program("c_runtime", "c_runtime_tls_watch", &["-O1"]);
    let dir = tempdir::TempDir::new("opt-tls");
    let opt = unpack("x86_64", dir.path());
    for lib in [
        opt.join("lib/liblambda_meter.so"),
        opt.join("lib/glibc-2.34/liblambda_meter.so"),
    ] {
        let out_dir = tempdir::TempDir::new("tls-watch");
        let out = out_dir.path().join("calls");
        std::fs::set_permissions(
            out_dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let preload = format!("{}:{}", watch.display(), lib.display());
        let command = unprivileged(
            &[
                ("LD_PRELOAD", preload.as_str()),
                ("TLS_WATCH_OUT", out.to_str().unwrap()),
            ],
            &[runtime.to_str().unwrap()],
        );
        let command: Vec<&str> = command.iter().map(String::as_str).collect();
        // The last invoke ends the runtime with exit(), so that tls_watch's destructor reports.
        let run = run_until(
            lambda_sim::Config {
                events: events(&[
                    json!({"action": "ok"}),
                    json!({"action": "sleep", "ms": 1_300}),
                    json!({"action": "glibc_threads"}),
                    json!({"action": "die", "how": "exit", "code": 0}),
                ]),
                timeout: std::time::Duration::from_millis(1_500),
                ..lambda_sim::Config::default()
            },
            &command,
            None,
            &[],
            &root(),
            std::time::Duration::from_secs(60),
        );
        assert_eq!(run.records().len(), 4, "{}", run.run.stdout);
        let single = run.sim.results()[2].clone().unwrap().body;
        assert_eq!(String::from_utf8(single).unwrap(), r#"{"single":1}"#);
        let calls = std::fs::read_to_string(&out).unwrap();
        let (own, all) = calls.trim().split_once(' ').unwrap();
        assert!(
            all.parse::<u64>().unwrap() >= 1,
            "the stand-in was not in use: {calls}"
        );
        assert_eq!(
            own,
            "0",
            "{}: calls on the library's thread, calls on all: {calls}",
            lib.display()
        );
    }
}

#[test]
fn the_arm64_library_meters_an_arm64_runtime_under_qemu() {
    let dir = tempdir::TempDir::new("opt-arm64");
    let opt = unpack("arm64", dir.path());
    let runtime = arm64_c_runtime();
    // Both builds: qemu's arm64 root (Debian's cross libc) has glibc 2.34 or later.
    for lib in [
        opt.join("lib/liblambda_meter.so"),
        opt.join("lib/glibc-2.34/liblambda_meter.so"),
    ] {
        meters_an_arm64_runtime_under_qemu(&runtime, &lib);
        reports_an_arm64_timeout_under_qemu(&runtime, &lib);
    }
}

/// The arm64 `runtime` under qemu with `lib` preloaded, as nobody (see [`unprivileged`]).
/// qemu-user is static, so LD_PRELOAD reaches only the arm64 program's own loader.
fn qemu_command(runtime: &Path, lib: &Path) -> Vec<String> {
    unprivileged(
        &[("LD_PRELOAD", lib.to_str().unwrap())],
        &[
            "qemu-aarch64-static",
            "-L",
            "/usr/aarch64-linux-gnu",
            runtime.to_str().unwrap(),
        ],
    )
}

/// The watchdog's thread on arm64 writes the timed-out invoke's record before the kill (no
/// invoke follows: no successor could).
fn reports_an_arm64_timeout_under_qemu(runtime: &Path, lib: &Path) {
    let config = lambda_sim::Config {
        events: events(&[
            json!({"action": "ok"}),
            json!({"action": "sleep", "ms": 4_000}),
        ]),
        timeout: std::time::Duration::from_millis(1_500),
        ..lambda_sim::Config::default()
    };
    let cmd = qemu_command(runtime, lib);
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let out = run_with(config, &cmd, None, &[], &root());
    assert_eq!(out.sim.timeout_count(), 1);
    let records = out.records();
    assert_eq!(records.len(), 2, "stdout:\n{}", out.run.stdout);
    assert_eq!(records[1]["Timeouts"], 1.0, "{}", records[1]);
    assert_eq!(
        records[1]["errorType"], "Sandbox.Timedout",
        "{}",
        records[1]
    );
}

fn meters_an_arm64_runtime_under_qemu(runtime: &Path, lib: &Path) {
    let payloads = [
        json!({"action": "ok"}),
        json!({"action": "fail", "type": "ValueError"}),
        json!({"action": "big", "bytes": 300_000}),
        json!({"action": "glibc_threads"}),
        json!({"action": "task_names"}),
    ];
    let cmd = qemu_command(runtime, lib);
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let out = run(events(&payloads), &cmd, None, &[], &root());
    assert!(
        !out.run.stderr.contains("lambda-meter"),
        "{}",
        out.run.stderr
    );
    let records = out.records();
    assert_eq!(records.len(), 5, "stdout:\n{}", out.run.stdout);
    // The watchdog's thread runs, and the C library still counts the runtime single-threaded
    // (src/glue/thread.rs: on arm64 too, the thread is started with a clone of its own).
    let body = |i: usize| String::from_utf8(out.sim.results()[i].clone().unwrap().body).unwrap();
    assert_eq!(body(3), r#"{"single":1}"#);
    assert!(body(4).contains(",lambda-meter,"), "{}", body(4));
    assert_valid_emf(&records);
    assert_eq!(records.iter().filter(|r| r["ColdStart"] == 1.0).count(), 1);
    assert_eq!(
        records
            .iter()
            .filter(|r| r["errorType"] == "ValueError")
            .count(),
        1
    );
    assert_eq!(
        records
            .iter()
            .map(|r| r["ResponseBytes"].as_f64().unwrap() as usize)
            .max(),
        Some(300_002)
    );
}

#[test]
fn a_library_for_the_other_architecture_starts_the_runtime_untouched() {
    let dir = tempdir::TempDir::new("wrong-arch");
    let opt = unpack("x86_64", dir.path());
    let arm = tempdir::TempDir::new("wrong-arch-arm");
    let arm_lib = unpack("arm64", arm.path()).join("lib/liblambda_meter.so");
    let out = Command::new("dash")
        .arg(opt.join("lambda-meter"))
        .args(["sh", "-c", "printf %s \"${LD_PRELOAD:-none}\""])
        .env("LAMBDA_METER_LIB", &arm_lib)
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "none");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("not a shared object for this machine"),
        "{stderr}"
    );
}

#[test]
fn a_next_wrapper_that_does_not_exec_leaves_the_runtime_metered_as_itself() {
    // Some vendor wrappers run the runtime as a child and wait: the runtime, which talks to
    // the Runtime API, is measured as itself (its own CPU), not as a helper of the shell.
    let dir = tempdir::TempDir::new("next-no-exec");
    let next = dir.path().join("next-wrapper");
    write_executable(&next, "#!/bin/sh\n\"$@\" &\nwait\n");
    let layer = Layer::new();
    let payloads = [
        json!({"action": "ok"}),
        json!({"action": "sleep", "ms": 20}),
        json!({"action": "fail", "type": "ValueError"}),
        json!({"action": "ok"}),
    ];
    let node_env = [("AWS_LAMBDA_NODEJS_USE_ALTERNATIVE_CLIENT_1", "true")];
    /// A client: its name, command, directory and extra variables.
    type Client<'a> = (&'a str, Vec<String>, PathBuf, &'a [(&'a str, &'a str)]);
    let clients: [Client; 3] = [
        (
            "python",
            python_command("handler.dispatch"),
            python_function_dir(),
            &[],
        ),
        (
            "node",
            node_command("index.handler"),
            node_function_dir(),
            &[],
        ),
        (
            "node js client",
            node_command("index.handler"),
            node_function_dir(),
            &node_env,
        ),
    ];
    for (name, cmd, cwd, extra) in clients {
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let mut env = vec![("LAMBDA_METER_NEXT_WRAPPER", next.to_str().unwrap())];
        env.extend_from_slice(extra);
        let out = run(events(&payloads), &cmd, Some(&layer.wrapper()), &env, &cwd);
        let records = out.records();
        assert_eq!(records.len(), payloads.len(), "{name}: {}", out.run.stderr);
        assert_valid_emf(&records);
        for r in &records {
            assert!(r["CpuTime"].as_f64().unwrap() > 0.0, "{name}: {r}");
        }
        assert_eq!(
            records.iter().filter(|r| r["ColdStart"] == 1.0).count(),
            1,
            "{name}"
        );
        assert!(
            !out.run.stderr.contains("lambda-meter"),
            "{name}: {}",
            out.run.stderr
        );
    }
}

#[test]
fn chaining_to_another_wrapper_keeps_the_preload() {
    let dir = tempdir::TempDir::new("chain");
    let marker = dir.path().join("vendor-ran");
    let vendor = dir.path().join("vendor-wrapper");
    std::fs::write(
        &vendor,
        format!("#!/bin/sh\n# another vendor's exec wrapper\necho \"$LD_PRELOAD\" > '{}'\nexec \"$@\"\n", marker.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&vendor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let layer = Layer::new();
    let cmd = python_command("handler.dispatch");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let out = run(
        events(&[json!({"action": "ok"})]),
        &cmd,
        Some(&layer.wrapper()),
        &[("LAMBDA_METER_NEXT_WRAPPER", vendor.to_str().unwrap())],
        &python_function_dir(),
    );
    let seen = std::fs::read_to_string(&marker).expect("the next wrapper ran");
    assert!(seen.trim().ends_with("liblambda_meter.so"), "{seen}");
    assert_eq!(
        out.records().len(),
        1,
        "the runtime was metered through the chain"
    );
    assert!(!out.run.stderr.contains("lambda-meter"));
    // A next wrapper that does not exist: one warning, and the runtime still starts metered.
    let out = run(
        events(&[json!({"action": "ok"})]),
        &cmd,
        Some(&layer.wrapper()),
        &[("LAMBDA_METER_NEXT_WRAPPER", "/opt/no-such-wrapper")],
        &python_function_dir(),
    );
    let warnings: Vec<&str> = out
        .run
        .stderr
        .lines()
        .filter(|l| l.contains("lambda-meter"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("LAMBDA_METER_NEXT_WRAPPER"));
    assert_eq!(out.records().len(), 1);
}

fn cfn_lint(template: &Path) -> std::process::Output {
    let lint = python().with_file_name("cfn-lint");
    Command::new(lint).arg(template).output().expect("cfn-lint")
}

#[test]
fn the_sam_template_passes_cfn_lint_and_a_broken_one_does_not() {
    let template = root().join("layer/template.yaml");
    let ok = cfn_lint(&template);
    assert!(
        ok.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    // Every function of the template is metered through Globals, not one by one.
    let text = std::fs::read_to_string(&template).unwrap();
    let globals =
        &text[text.find("\nGlobals:\n").expect("Globals")..text.find("\nParameters:").unwrap()];
    // Their architecture is a parameter (x86_64, Lambda's default), and picks their layer.
    for needed in [
        "Layers:",
        "- !If [Arm64, !Ref LayerArm64, !Ref LayerX86]",
        "- !Ref Architecture",
        "AWS_LAMBDA_EXEC_WRAPPER: /opt/lambda-meter",
    ] {
        assert!(globals.contains(needed), "Globals lacks {needed}");
    }
    assert_eq!(text.matches("AWS_LAMBDA_EXEC_WRAPPER:").count(), 1);
    assert!(text.contains("    Default: x86_64\n    AllowedValues: [x86_64, arm64]\n"));
    assert!(text.contains("  Arm64: !Equals [!Ref Architecture, arm64]\n"));
    // The validator is live: the same template with a misspelt resource type fails.
    let dir = tempdir::TempDir::new("cfn");
    let broken = dir.path().join("template.yaml");
    let text = std::fs::read_to_string(&template).unwrap().replace(
        "Type: AWS::CloudWatch::Dashboard",
        "Type: AWS::CloudWatch::Dashbord",
    );
    std::fs::write(&broken, text).unwrap();
    assert!(!cfn_lint(&broken).status.success());
}

/// The compatible runtimes, from their one source.
fn runtimes() -> Vec<String> {
    runtime_dates().into_iter().map(|(r, _)| r).collect()
}

/// layer/runtimes: each runtime's identifier and the date of its deprecation (`YYYY-MM-DD`).
fn runtime_dates() -> Vec<(String, String)> {
    std::fs::read_to_string(root().join("layer/runtimes"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(fields.len(), 2, "a runtime and its deprecation date: {l:?}");
            (fields[0].to_string(), fields[1].to_string())
        })
        .collect()
}

/// Today's date in UTC, `YYYY-MM-DD`.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (year, month, day) = lambda_sim::http::civil_date((secs / 86_400) as i64);
    format!("{year:04}-{month:02}-{day:02}")
}

#[test]
fn no_listed_runtime_is_past_its_deprecation_date() {
    // layer/runtimes is dated: a runtime whose deprecation date has come leaves it (or AWS
    // moved the date, and the list says the new one). Dates compare as text in this form.
    let today = today();
    assert_eq!(today.len(), 10, "{today}");
    for (runtime, date) in runtime_dates() {
        let valid = date.len() == 10
            && date.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                _ => b.is_ascii_digit(),
            });
        assert!(valid, "{runtime}: {date} is not YYYY-MM-DD");
        assert!(
            today < date,
            "{runtime} was deprecated on {date} (today is {today}): take it out of layer/runtimes, \
             or write the date AWS gives now"
        );
    }
}

/// Runs `script` (sh) with `args` and a stand-in `aws` first in PATH that logs every call,
/// one argument per line, and answers a publish with version 7. Returns (status, stdout,
/// stderr, the calls).
fn with_fake_aws(script: &str, args: &[&str]) -> (bool, String, String, Vec<Vec<String>>) {
    let dir = tempdir::TempDir::new("aws");
    let log = dir.path().join("calls");
    write_executable(
        &dir.path().join("aws"),
        &format!(
            "#!/bin/sh\n{{ printf '%s\\n' \"$@\"; echo --; }} >>'{}'\n\
             case $2 in publish-layer-version) echo arn:aws:lambda:eu-west-1:123456789012:layer:x:7 ;; esac\n",
            log.display()
        ),
    );
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap()
    );
    let out = Command::new("sh")
        .arg(script)
        .args(args)
        .env("PATH", path)
        .current_dir(root())
        .output()
        .unwrap();
    let calls = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .split("--\n")
        .filter(|c| !c.is_empty())
        .map(|c| c.lines().map(str::to_string).collect())
        .collect();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.success(),
        text(&out.stdout),
        text(&out.stderr),
        calls,
    )
}

#[test]
fn publish_dry_run_prints_the_commands_it_runs_quoted_to_copy() {
    let args = ["--region", "eu-west-1", "--organization-id", "o-abc123"];
    let publish = root().join("layer/publish");
    let publish = publish.to_str().unwrap();
    let (ok, real_out, err, real) = with_fake_aws(publish, &args);
    assert!(ok, "{err}");
    let dry_args: Vec<&str> = std::iter::once("--dry-run").chain(args).collect();
    let (ok, script, err, none) = with_fake_aws(publish, &dry_args);
    assert!(ok && none.is_empty(), "{err}");
    // The printed script, run as it is, makes the same calls and prints the same ARNs.
    let dir = tempdir::TempDir::new("dry");
    let copied = dir.path().join("copied.sh");
    std::fs::write(&copied, &script).unwrap();
    let (ok, copied_out, err, replayed) = with_fake_aws(copied.to_str().unwrap(), &[]);
    assert!(ok, "{err}");
    assert_eq!(replayed, real);
    assert_eq!(copied_out, real_out);
    assert_eq!(real.len(), 4, "{real:?}");
    let arg = |call: &[String], name: &str| -> String {
        let at = call.iter().position(|a| a == name).expect(name);
        call[at + 1].clone()
    };
    for (arch, pair) in ARCHES.iter().zip(real.chunks(2)) {
        let (publish, permission) = (&pair[0], &pair[1]);
        assert_eq!(
            publish[..3],
            ["lambda", "publish-layer-version", "--region"]
        );
        assert_eq!(arg(publish, "--compatible-architectures"), *arch);
        let at = publish
            .iter()
            .position(|a| a == "--compatible-runtimes")
            .unwrap();
        assert_eq!(publish[at + 1..at + 1 + runtimes().len()], runtimes()[..]);
        assert_eq!(
            arg(publish, "--zip-file"),
            format!("fileb://target/layer/lambda-meter-{}-{arch}.zip", version())
        );
        assert!(arg(publish, "--description").contains("LD_PRELOAD"));
        assert_eq!(permission[1], "add-layer-version-permission");
        assert_eq!(
            arg(permission, "--layer-name"),
            format!("lambda-meter-{arch}")
        );
        assert_eq!(arg(permission, "--version-number"), "7");
        assert_eq!(arg(permission, "--principal"), "*");
        assert_eq!(arg(permission, "--organization-id"), "o-abc123");
        assert!(real_out.contains(&format!("{arch}: arn:aws:lambda:")));
    }
}

#[test]
fn publish_says_what_is_wrong_with_its_options() {
    let publish = root().join("layer/publish");
    for (args, says) in [
        (&["--region"][..], "--region needs a value"),
        (&["--region", "--dry-run"][..], "--region needs a value"),
        (
            &["--organization-id"][..],
            "--organization-id needs a value",
        ),
        (
            &["--organization-id", "123"][..],
            "takes an organization id",
        ),
        (
            &["--public", "--organization-id", "o-1"][..],
            "exclude each other",
        ),
        (&["--regoin", "x"][..], "unknown argument: --regoin"),
    ] {
        let (ok, _, err, calls) = with_fake_aws(publish.to_str().unwrap(), args);
        assert!(!ok && calls.is_empty(), "{args:?}");
        assert!(
            err.starts_with("layer/publish: ") && err.contains(says),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn terraform_uses_provider_6_attributes_and_keeps_old_layer_versions() {
    // Terraform itself is not in the registries these machines reach: what can be read is
    // checked. `data.aws_region.current.name` is deprecated in provider 6 (`region`).
    let tf = std::fs::read_to_string(root().join("layer/terraform/main.tf")).unwrap();
    assert!(tf.contains(r#"source = "hashicorp/aws", version = ">= 6.0""#));
    assert!(!tf.contains("aws_region.current.name") && tf.contains("aws_region.current.region"));
    assert!(
        tf.contains("skip_destroy = true"),
        "old layer versions are kept, like SAM's Retain"
    );
    assert!(tf.contains(r#"templatefile("${path.module}/../dashboard.json""#));
}

#[test]
fn the_readme_says_how_each_listed_runtime_is_tested() {
    // Its "Tested with" table: one row per runtime of layer/runtimes, in its order.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let table = &readme[readme.find("**Tested with.**").expect("Tested with")..];
    let rows: Vec<String> = table
        .lines()
        .skip_while(|l| !l.starts_with("| runtime |"))
        .skip(2)
        .take_while(|l| l.starts_with("| `"))
        .map(|l| l.split('`').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(rows, runtimes());
}

#[test]
fn one_runtime_list_for_sam_terraform_and_publish() {
    let list = runtimes();
    assert!((1..=15).contains(&list.len()), "Lambda takes 1 to 15");
    for current in [
        "python3.14",
        "nodejs24.x",
        "java25",
        "ruby3.4",
        "ruby4.0",
        "dotnet10",
        "provided.al2023",
    ] {
        assert!(list.iter().any(|r| r == current), "{current} missing");
    }
    for deprecated in [
        "python3.9",
        "python3.10",
        "nodejs18.x",
        "nodejs20.x",
        "provided.al2",
        "ruby3.2",
        "dotnet8",
    ] {
        assert!(
            !list.iter().any(|r| r == deprecated),
            "{deprecated} is deprecated"
        );
    }
    // The SAM template carries it (layer/sync writes it); Terraform and publish read the file.
    assert_layer_sync_fresh();
    let template = std::fs::read_to_string(root().join("layer/template.yaml")).unwrap();
    assert_eq!(template.matches("CompatibleRuntimes:").count(), 2);
    let tf = std::fs::read_to_string(root().join("layer/terraform/main.tf")).unwrap();
    assert!(
        tf.contains("file(\"${path.module}/../runtimes\")"),
        "Terraform reads layer/runtimes"
    );
    assert!(tf.contains("compatible_runtimes      = local.runtimes"));
    // Only the example function's own runtime is spelt there.
    let spelt = list
        .iter()
        .filter(|r| tf.contains(&format!("\"{r}\"")))
        .count();
    assert!(spelt <= 1, "a runtime list spelt in main.tf");
}
