//! Issue 20, properties 6 and 7.
//!
//! 6: `dlopen(…, RTLD_DEEPBIND)` keeps its meaning under lambda-meter. A deep-bound load keeps
//! the caller's identity (its RUNPATH, `$ORIGIN` and link namespace) in every process, metered
//! or not; only GOT slots that resolve to libc's own functions are pointed at the hooks (an
//! object's own `write`, or its dependency's `send`, stays); and RELRO is re-protected as glibc
//! rounds it (down), so a page that RELRO shares with `.data` stays writable. The host
//! (`tests/programs/deepbind_host.c`) runs three ways: as a runtime against the simulator
//! without the library, the same through the wrapper (metered), and with the library
//! preloaded but no Runtime API (not metered); it must print the same thing each time.
//!
//! 7: stdio runtimes are followed or cleanly dropped. A C runtime on `fdopen`'d streams
//! (`tests/programs/stdio_variants.c`) reads and writes the Runtime API through the FORTIFY
//! entry points, the `_unlocked` functions, `getc_unlocked`, `ungetc` and `fscanf`. Each invoke
//! gets exactly one correct record, or the stream gets none at all and at most one debug line
//! says so; never a wrong record, a duplicate or a warning, and the host's results are those
//! of the run without the library.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use support::*;

// ---- property 6: RTLD_DEEPBIND ----

/// Compiles `tests/programs/<source>.c` with `flags` into `out`.
fn cc(source: &str, out: &Path, flags: &[&str]) {
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let src = root().join(format!("tests/programs/{source}.c"));
    let status = Command::new("cc")
        .args(flags)
        .arg("-o")
        .arg(out)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(status.success(), "compiling {}", src.display());
}

/// The host and its plugins, built once per test binary:
///
/// ```text
/// <root>/bin/deepbind_host                RUNPATH $ORIGIN/plugins
/// <root>/bin/plugins/libdb_runpath.so
/// <root>/lib/loader/libdb_loader.so       RUNPATH $ORIGIN/deps
/// <root>/lib/loader/libdb_origin.so
/// <root>/lib/loader/deps/libdb_deps.so
/// <root>/lib/libdb_ownwrite.so            defines write()
/// <root>/lib/libdb_usedep.so              NEEDED libdb_senddep.so (defines send()), RUNPATH $ORIGIN
/// <root>/lib/libdb_relro.so               PT_GNU_RELRO ending mid-page, .data on that page
/// <root>/lib/libdb_lazy.so                calls write(), lazily bound (-z lazy)
/// ```
fn deepbind_host() -> &'static Path {
    static HOST: OnceLock<PathBuf> = OnceLock::new();
    HOST.get_or_init(|| {
        let dir = profile_dir().join("test-programs/deepbind");
        let _ = std::fs::remove_dir_all(&dir);
        let so = |rel: &str| dir.join(rel);
        let shared = ["-shared", "-fPIC"];
        let host = so("bin/deepbind_host");
        cc(
            "deepbind_host",
            &host,
            &["-O1", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/plugins"],
        );
        cc(
            "dlopen_plugin",
            &so("bin/plugins/libdb_runpath.so"),
            &shared,
        );
        cc(
            "deepbind_loader",
            &so("lib/loader/libdb_loader.so"),
            &[
                "-shared",
                "-fPIC",
                "-Wl,--enable-new-dtags,-rpath,$ORIGIN/deps",
            ],
        );
        cc("dlopen_plugin", &so("lib/loader/libdb_origin.so"), &shared);
        cc(
            "dlopen_plugin",
            &so("lib/loader/deps/libdb_deps.so"),
            &shared,
        );
        cc("deepbind_ownwrite", &so("lib/libdb_ownwrite.so"), &shared);
        cc(
            "dlopen_plugin",
            &so("lib/libdb_lazy.so"),
            &["-shared", "-fPIC", "-Wl,-z,lazy"],
        );
        cc("deepbind_senddep", &so("lib/libdb_senddep.so"), &shared);
        let lib_dir = format!("-L{}", so("lib").display());
        cc(
            "deepbind_usedep",
            &so("lib/libdb_usedep.so"),
            &[
                "-shared",
                "-fPIC",
                &lib_dir,
                "-Wl,--no-as-needed,-ldb_senddep",
                "-Wl,--enable-new-dtags,-rpath,$ORIGIN",
            ],
        );
        let relro = so("lib/libdb_relro.so");
        cc(
            "deepbind_relro",
            &relro,
            &["-shared", "-fPIC", "-Wl,-z,relro,-z,now"],
        );
        end_relro_mid_page(&relro);
        host
    })
}

/// lambda-meter loaded by `dlopen` (`RTLD_DEEPBIND`) as a dependency of a plugin, not
/// preloaded, next to another dependency that defines `close` itself: libc was loaded before
/// it, so the objects after it do not hold the real functions; the loader finds them, and the
/// plugin's runtime loop is metered.
#[test]
fn loaded_as_a_dlopened_plugins_dependency_it_meters_the_plugins_runtime() {
    let dir = profile_dir().join("test-programs/dep");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(library(), dir.join("liblambda_meter.so")).unwrap();
    cc(
        "dep_close",
        &dir.join("libdep_close.so"),
        &["-shared", "-fPIC", "-O1"],
    );
    let search = format!("-L{}", dir.display());
    cc(
        "dep_user",
        &dir.join("libdep_user.so"),
        &[
            "-shared",
            "-fPIC",
            "-O1",
            &search,
            "-Wl,--no-as-needed",
            "-llambda_meter",
            "-ldep_close",
            "-Wl,--enable-new-dtags,-rpath,$ORIGIN",
        ],
    );
    cc("dep_host", &dir.join("dep_host"), &["-O1", "-ldl"]);
    let host = dir.join("dep_host").display().to_string();
    let plugin = dir.join("libdep_user.so").display().to_string();
    let out = run_until(
        lambda_sim::Config {
            events: events(&[json!({"action": "ok"}), json!({"action": "ok"})]),
            ..lambda_sim::Config::default()
        },
        &[&host, &plugin, "2"],
        None,
        &[],
        &root(),
        Duration::from_secs(30),
    );
    assert!(
        !out.run.stderr.contains("lambda-meter"),
        "{}",
        out.run.stderr
    );
    assert_eq!(out.records().len(), 2, "{}", out.run.stderr);
}

/// Makes PT_GNU_RELRO of the ELF64 (little-endian) object at `path` end 8 bytes into the page
/// that follows it, where `.data` starts (with crtbeginS.o's 8-byte `__dso_handle`; the plugin's
/// own global comes after it, and `relro_layout()` checks that it does).
///
/// Current GNU ld and gold always pad RELRO to end on a page boundary of the largest page
/// size they are told of, and no linker script can stop them, so on a 4 KiB-page machine this
/// layout needs the header edited. It is the everyday layout where the kernel's pages are
/// bigger than the linker's (a 64 KiB-page arm64 kernel running objects linked for 4 KiB):
/// the reason glibc rounds the end of RELRO down.
fn end_relro_mid_page(path: &Path) {
    let mut elf = std::fs::read(path).unwrap();
    assert_eq!(
        &elf[..6],
        b"\x7fELF\x02\x01",
        "an ELF64 little-endian object"
    );
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap());
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let phoff = u64_at(&elf, 0x20) as usize;
    let phentsize = usize::from(u16_at(&elf, 0x36));
    let phnum = usize::from(u16_at(&elf, 0x38));
    let mut found = false;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(&elf, ph) != 0x6474_e552 {
            continue;
        }
        found = true;
        let (vaddr, memsz) = (u64_at(&elf, ph + 16), u64_at(&elf, ph + 40));
        if (vaddr + memsz) % 4096 != 0 {
            continue; // Already ends mid-page.
        }
        let filesz = u64_at(&elf, ph + 32);
        elf[ph + 32..ph + 40].copy_from_slice(&(filesz + 8).to_le_bytes());
        elf[ph + 40..ph + 48].copy_from_slice(&(memsz + 8).to_le_bytes());
    }
    assert!(found, "{} has no PT_GNU_RELRO", path.display());
    std::fs::write(path, elf).unwrap();
}

/// What the host showed in one run: its stdout without EMF lines, its stderr, how it ended.
#[derive(Debug, PartialEq)]
struct Seen {
    stdout: Vec<String>,
    stderr: String,
    ended: String,
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "  stdout:")?;
        for l in &self.stdout {
            writeln!(f, "    {l}")?;
        }
        writeln!(f, "  stderr: {:?}", self.stderr)?;
        write!(f, "  ended: {}", self.ended)
    }
}

/// Runs `deepbind_host <check>` as a runtime against the simulator (one invoke), through the
/// wrapper when `metered`. Returns what it showed and how many records it got.
fn host_as_runtime(check: &str, metered: bool) -> (Seen, usize) {
    let host = deepbind_host().display().to_string();
    let layer = Layer::new();
    let out = run_until(
        lambda_sim::Config {
            events: events(&[json!({"action": "ok"})]),
            ..lambda_sim::Config::default()
        },
        &[&host, check],
        metered.then_some(layer.wrapper().as_path()),
        &[],
        &root(),
        Duration::from_secs(30),
    );
    let ended = match (out.run.idle, out.run.exited) {
        (true, _) => "answered its invoke".to_string(),
        (false, Some(status)) => format!("died before answering its invoke: {status}"),
        (false, None) => "did not answer its invoke in 30 s".to_string(),
    };
    let seen = Seen {
        stdout: out.other_stdout(),
        stderr: out.run.stderr.clone(),
        ended,
    };
    (seen, out.records().len())
}

/// Runs `deepbind_host <check>` with the library preloaded and no Runtime API: not metered.
fn host_unmetered(check: &str) -> Seen {
    let out = Command::new(deepbind_host())
        .arg(check)
        .env("LD_PRELOAD", library())
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("LAMBDA_METER_ENV_ID")
        .output()
        .expect("deepbind_host");
    let ended = match out.status.code() {
        Some(0) => "answered its invoke".to_string(), // The same words as a runtime's success.
        _ => format!("died: {}", out.status),
    };
    Seen {
        stdout: String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        ended,
    }
}

/// Runs `check` three ways and requires the same output from each; `expect` are lines the
/// run without the library prints (the fixture works as intended).
fn deepbind_check(check: &str, expect: &[&str]) {
    let (plain, plain_records) = host_as_runtime(check, false);
    assert_eq!(plain_records, 0);
    assert_eq!(
        plain.ended, "answered its invoke",
        "without the library:\n{plain}"
    );
    for line in expect {
        assert!(
            plain.stdout.iter().any(|l| l == line),
            "without the library the host should print {line:?}:\n{plain}"
        );
    }
    let (metered, records) = host_as_runtime(check, true);
    assert!(
        metered == plain,
        "check {check:?} in a metered process (through the wrapper, talking to the simulator) \
         differs from the run without the library\nwith the library:\n{metered}\nwithout:\n{plain}"
    );
    assert_eq!(records, 1, "the metered run is metered: one record");
    let unmetered = host_unmetered(check);
    assert!(
        unmetered == plain,
        "check {check:?} with the library preloaded but not metered (no Runtime API) differs \
         from the run without the library\nwith the library:\n{unmetered}\nwithout:\n{plain}"
    );
}

#[test]
fn deep_bound_dlopen_keeps_the_programs_runpath() {
    deepbind_check(
        "runpath",
        &[
            "runpath: loaded bin/plugins/libdb_runpath.so",
            "runpath: plugin_hello wrote 22 bytes",
        ],
    );
}

#[test]
fn deep_bound_dlopen_keeps_the_calling_librarys_origin_and_runpath() {
    deepbind_check(
        "origin",
        &[
            "origin: the loader's dlopen(\"$ORIGIN/libdb_origin.so\") loaded lib/loader/libdb_origin.so",
            "origin: the loader's dlopen(\"libdb_deps.so\") loaded lib/loader/deps/libdb_deps.so",
        ],
    );
}

#[test]
fn deep_bound_dlopen_keeps_the_callers_link_namespace() {
    // A library in a dlmopen namespace never binds to a preloaded library by itself (preloads
    // are not loaded into new namespaces): it reaches the program's dlopen through a pointer
    // the program hands it, as plugin interfaces hand out loader functions.
    deepbind_check(
        "namespace",
        &["namespace: the plugin was loaded into the loader's namespace"],
    );
}

#[test]
fn deep_bound_object_keeps_its_own_write_and_its_dependencys_send() {
    deepbind_check(
        "own",
        &[
            "own: the plugin says hello",
            "own: the plugin's own write() ran 1 time(s)",
            "own: send() of the plugin's dependency ran 1 time(s)",
            "own: the peer got 1 byte(s)",
        ],
    );
}

#[test]
fn binding_a_deep_bound_load_keeps_the_hosts_dlerror_text() {
    // Binding happens inside whatever hook comes next (here close(-1)), between the host's
    // failed dlopen and its dlerror(): asking the loader anything then would clear the text.
    deepbind_check(
        "dlerror",
        &[
            "dlerror: after a failed dlopen and close(-1): the failure",
            "dlerror: the lazy plugin wrote 22 bytes",
        ],
    );
}

#[test]
fn relro_page_shared_with_data_stays_writable() {
    deepbind_check(
        "relro",
        &[
            "relro: PT_GNU_RELRO ends mid-page, on the page of a .data global",
            "relro: the .data global went from 1 to 2",
        ],
    );
}

// ---- property 7: stdio runtimes ----

/// `tests/programs/stdio_variants.c` built with `-O2`, and with `-O2 -D_FORTIFY_SOURCE=2`
/// when `fortify` (each once per test binary).
fn stdio_runtime(fortify: bool) -> &'static Path {
    static PLAIN: OnceLock<PathBuf> = OnceLock::new();
    static FORTIFIED: OnceLock<PathBuf> = OnceLock::new();
    if fortify {
        FORTIFIED.get_or_init(|| {
            compile_program(
                "stdio_variants",
                "stdio_variants_fortify",
                &["-O2", "-D_FORTIFY_SOURCE=2", "-pthread"],
            )
        })
    } else {
        PLAIN.get_or_init(|| {
            compile_program(
                "stdio_variants",
                "stdio_variants",
                &["-O2", "-U_FORTIFY_SOURCE", "-pthread"],
            )
        })
    }
}

/// The functions `program` imports (undefined dynamic symbols, versions cut off).
fn imports(program: &Path) -> Vec<String> {
    let out = Command::new("readelf")
        .args(["-W", "--dyn-syms"])
        .arg(program)
        .output()
        .expect("readelf");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8 && f[6] == "UND")
                .then(|| f[7].split('@').next().unwrap_or_default().to_string())
        })
        .collect()
}

/// The events: a success, failures of two types, a 300 KB result, a 50 KB event.
fn stdio_payloads() -> Vec<Value> {
    vec![
        json!({"action": "ok"}),
        json!({"action": "fail", "type": "ValueError"}),
        json!({"action": "big", "bytes": 300_000}),
        json!({"action": "echo", "pad": "p".repeat(50_000)}),
        json!({"action": "fail", "type": "OrderNotFound"}),
        json!({"action": "ok"}),
    ]
}

/// The debug lines every followed conversation has (not about a stream being dropped).
fn routine_debug_line(line: &str) -> bool {
    let text = line.trim_start_matches("lambda-meter: debug: ");
    text.starts_with("metering ")
        || text.starts_with("following fd ")
        || text.starts_with("watchdog thread started")
}

/// Runs `stdio_variants <variant>` (the fortified build when `fortify`, which must import
/// each of `uses`) without and with the library (LAMBDA_METER_LOG=debug), and checks that
/// the host saw the same thing, that lambda-meter warned about nothing, and that the stream
/// was followed (one correct record per invoke), or followed and then dropped (correct records
/// for the invokes before, none after, and one debug line besides those of every followed
/// conversation).
fn stdio_check(variant: &str, fortify: bool, uses: &[&str]) {
    stdio_check_with(variant, fortify, uses, false)
}

/// [`stdio_check`]; with `must_follow`, every invoke must have its record (the stream is one
/// the library can follow to the end).
fn stdio_check_with(variant: &str, fortify: bool, uses: &[&str], must_follow: bool) {
    let program = stdio_runtime(fortify);
    let imported = imports(program);
    for f in uses {
        assert!(
            imported.iter().any(|i| i == f),
            "{} should call {f} (it imports {imported:?})",
            program.display()
        );
    }
    let payloads = stdio_payloads();
    let evs = events(&payloads);
    let program = program.display().to_string();
    let run = |metered: bool| {
        let layer = Layer::new();
        run_until(
            lambda_sim::Config {
                events: evs.clone(),
                ..lambda_sim::Config::default()
            },
            &[&program, variant],
            metered.then_some(layer.wrapper().as_path()),
            &[("LAMBDA_METER_LOG", "debug")],
            &root(),
            Duration::from_secs(30),
        )
    };
    let plain = run(false);
    assert!(
        plain.run.idle,
        "{variant}: without the library the runtime did not serve its events (exited {:?}):\n{}",
        plain.run.exited, plain.run.stderr
    );
    let metered = run(true);
    assert!(
        metered.run.idle,
        "{variant}: with the library the runtime did not serve its events (exited {:?}):\n{}",
        metered.run.exited, metered.run.stderr
    );
    support::scenario::assert_same_results(&plain, &metered);
    support::scenario::assert_same_requests(&plain, &metered);
    assert_eq!(
        plain.other_stdout(),
        metered.other_stdout(),
        "{variant}: the runtime's own output differs"
    );
    let ours: Vec<&str> = metered
        .run
        .stderr
        .lines()
        .filter(|l| l.starts_with("lambda-meter"))
        .collect();
    let host_stderr: Vec<&str> = metered
        .run
        .stderr
        .lines()
        .filter(|l| !l.starts_with("lambda-meter"))
        .collect();
    assert_eq!(
        host_stderr,
        plain.run.stderr.lines().collect::<Vec<_>>(),
        "{variant}: the runtime's own stderr differs"
    );
    let warnings: Vec<&&str> = ours
        .iter()
        .filter(|l| !l.starts_with("lambda-meter: debug: "))
        .collect();
    assert!(
        warnings.is_empty(),
        "{variant}: lambda-meter warned (it must follow the stream or drop it quietly):\n{}",
        ours.join("\n")
    );
    let records = metered.records();
    let dropped: Vec<&&str> = ours.iter().filter(|l| !routine_debug_line(l)).collect();
    let ids: Vec<&str> = records
        .iter()
        .map(|r| r["requestId"].as_str().unwrap_or("?"))
        .collect();
    // Followed until the stream was dropped (if it was): the invokes before it, in order, each
    // with its correct record, and none after.
    let seen = records.len();
    let expected: Vec<&str> = evs
        .iter()
        .take(seen)
        .map(|e| e.request_id.as_deref().unwrap_or("?"))
        .collect();
    assert_eq!(
        ids, expected,
        "{variant}: the records must be those of the invokes before any drop, in order\nstderr:\n{}",
        metered.run.stderr
    );
    assert!(
        !must_follow || seen == evs.len(),
        "{variant}: every invoke must be followed; records for {seen} of {}:\n{}",
        evs.len(),
        ours.join("\n")
    );
    if seen < evs.len() {
        assert!(
            dropped.len() == 1,
            "{variant}: records for {seen} of {} invokes, so the stream must have been dropped \
             with one debug line saying so; lambda-meter wrote {} such lines:\n{}",
            evs.len(),
            dropped.len(),
            ours.join("\n")
        );
        eprintln!(
            "{variant}: followed for {seen} invokes, then dropped: {}",
            dropped[0]
        );
    } else {
        assert!(dropped.is_empty(), "{variant}: {dropped:?}");
    }
    if seen > 0 {
        support::scenario::check_records(&metered, &evs[..seen], &payloads[..seen], 1);
    }
}

#[test]
fn stdio_runtime_on_followed_calls_is_followed() {
    // The control: fgets, fread, getc, fputs and fwrite are followed today.
    stdio_check("plain", false, &["fgets", "fread", "fputs", "fwrite"]);
}

#[test]
fn stdio_runtime_reading_lines_with_fortified_fgets() {
    stdio_check("fgets_chk", true, &["__fgets_chk"]);
}

#[test]
fn stdio_runtime_reading_bodies_with_fortified_fread() {
    stdio_check("fread_chk", true, &["__fread_chk"]);
}

#[test]
fn stdio_runtime_reading_lines_with_getline_at_o2() {
    // glibc's headers inline getline as __getdelim when optimising.
    stdio_check("getline", false, &["__getdelim"]);
}

#[test]
fn stdio_runtime_reading_lines_with_fgets_unlocked() {
    stdio_check("fgets_unlocked", false, &["fgets_unlocked"]);
}

#[test]
fn stdio_runtime_reading_bodies_with_fread_unlocked() {
    stdio_check("fread_unlocked", false, &["fread_unlocked"]);
}

#[test]
fn stdio_runtime_reading_bodies_with_getc_unlocked() {
    // Inline at -O2: the bytes leave the buffer with no call at all (only __uflow refills it).
    stdio_check("getc_unlocked", false, &["__uflow"]);
}

#[test]
fn stdio_runtime_made_unbuffered_with_setvbuf() {
    // setvbuf moves the buffer pointers before the first read, with nothing taken.
    stdio_check_with("unbuffered", false, &["setvbuf"], true);
}

#[test]
fn stdio_runtime_with_a_buffer_of_its_own() {
    stdio_check_with("user_buffer", false, &["setvbuf"], true);
}

#[test]
fn stdio_runtime_leaving_its_old_streams_behind() {
    // A connection per invoke whose streams are never fclose'd: their slots must not run out.
    stdio_check_with("close_fileno", false, &["close", "fileno"], true);
}

#[test]
fn stdio_runtime_with_many_other_streams() {
    // More streams than the library follows: the real connection is followed, or dropped
    // with one debug line, never lost in silence.
    stdio_check("many_streams", false, &["fdopen"]);
}

#[test]
fn stdio_runtime_with_two_threads_each_on_its_own_streams() {
    // While one thread is inside fgets on its stream, another looks at the streams before
    // its own call: only its own may be judged, or a stream being read looks moved.
    let program = stdio_runtime(false).display().to_string();
    let payloads: Vec<Value> = (0..60).map(|_| json!({"action": "ok"})).collect();
    let run = |metered: bool| {
        let layer = Layer::new();
        run_until(
            lambda_sim::Config {
                events: events(&payloads),
                max_concurrency: 2,
                ..lambda_sim::Config::default()
            },
            &[&program, "two_threads"],
            metered.then_some(layer.wrapper().as_path()),
            &[("LAMBDA_METER_LOG", "debug")],
            &root(),
            Duration::from_secs(30),
        )
    };
    for metered in [false, true] {
        let out = run(metered);
        let answered = out.sim.results().iter().filter(|r| r.is_some()).count();
        assert_eq!(
            answered,
            payloads.len(),
            "metered {metered}:\n{}",
            out.run.stderr
        );
        if metered {
            let ours: Vec<&str> = out
                .run
                .stderr
                .lines()
                .filter(|l| l.starts_with("lambda-meter") && !routine_debug_line(l))
                .collect();
            // On a loaded machine a thread may find the library busy long enough to fill the
            // room kept for what it saw: that connection is then dropped, with one line. No
            // other drop, and never a stream taken for read past the hooks.
            let bounded = |l: &&str| l.contains("did not fit the room kept for them");
            assert!(ours.len() <= 1 && ours.iter().all(bounded), "{ours:?}");
            let records = out.records();
            if ours.is_empty() {
                assert_eq!(records.len(), payloads.len(), "{}", out.run.stderr);
            } else {
                assert!(records.len() < payloads.len());
            }
            assert_valid_emf(&records);
        }
    }
}

#[test]
fn stdio_runtime_writing_with_fputs_and_fwrite_unlocked() {
    stdio_check(
        "write_unlocked",
        false,
        &["fputs_unlocked", "fwrite_unlocked"],
    );
}

#[test]
fn stdio_runtime_peeking_with_ungetc() {
    stdio_check("ungetc", false, &["getc", "ungetc"]);
}

#[test]
fn stdio_runtime_reading_the_status_with_fscanf() {
    stdio_check("fscanf", false, &["__isoc99_fscanf"]);
}
