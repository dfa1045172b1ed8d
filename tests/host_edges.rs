//! Edges of the crash handlers (`src/glue/signals.rs`), the entry gate (`src/glue/process.rs`)
//! and the custom-metrics channel (`src/glue/channel.rs`): can the host notice the library?
//!
//! Each host runs once without the library and once through the wrapper (or `LD_PRELOAD`), and
//! what it printed about itself, its stderr and how it ended are compared; where the property is
//! about records, the records are checked too. The hosts talk to the Runtime API themselves
//! (tests/programs/edge_sig_probe.c, edge_gate_probe.c, edge_gate_throw.cpp) or are
//! awslambdaric workers (tests/functions/python/edge_channel.py), so the library treats them
//! as runtimes (crash handlers in) while they look.
//!
//! Tests marked `#[ignore = "limit: …"]` show a difference SECURITY.md lists as a known limit;
//! they stay here to show it, and to tell when it goes away.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use lambda_sim::Config;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use support::compare::*;
use support::*;

/// tests/programs/edge_sig_probe.c, compiled once per test binary.
fn sig_probe() -> PathBuf {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            compile_program(
                "edge_sig_probe",
                "edge_sig_probe",
                &["-O1", "-Wall", "-Wno-restrict", "-pthread"],
            )
        })
        .clone()
}

/// tests/programs/edge_gate_probe.c, compiled once.
fn gate_probe() -> PathBuf {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            compile_program(
                "edge_gate_probe",
                "edge_gate_probe",
                &["-O1", "-Wall", "-pthread"],
            )
        })
        .clone()
}

/// tests/programs/edge_gate_throw.cpp (C++: its handler throws), compiled once.
fn throw_probe() -> PathBuf {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let out = profile_dir().join("test-programs/edge_gate_throw");
            std::fs::create_dir_all(out.parent().unwrap()).unwrap();
            let src = root().join("tests/programs/edge_gate_throw.cpp");
            let status = Command::new("c++")
                .args(["-std=c++17", "-O1", "-Wall", "-fnon-call-exceptions", "-o"])
                .arg(&out)
                .arg(&src)
                .status()
                .expect("c++");
            assert!(status.success(), "compiling {}", src.display());
            out
        })
        .clone()
}

/// `probe` with `args` serving `invokes` events: without the library, then through the
/// wrapper.
fn both(probe: &Path, args: &[&str], invokes: usize, env: &[(&str, &str)]) -> (Outcome, Outcome) {
    let mut command = vec![probe.to_str().unwrap()];
    command.extend_from_slice(args);
    let plain = run_host(&command, invokes, env, false);
    let metered = run_host(&command, invokes, env, true);
    (plain, metered)
}

/// The edge_sig_probe with `args` both ways, compared.
fn sig_case(args: &[&str], invokes: usize, expect: &str) {
    let (plain, metered) = both(&sig_probe(), args, invokes, &[]);
    assert_plain_printed(&plain, expect);
    assert_host_saw_the_same(&args.join(" "), &plain, &metered);
}

// ---- signals: read-back paths around the hooks ----

#[test]
#[ignore = "limit: /proc/self/status SigCgt shows the fatal signals whose crash handler is in while the runtime journals invokes"]
fn proc_status_shows_no_caught_fatal_signals() {
    // The kernel's own view of the dispositions, read as a file: no hook can translate it.
    // Only the six fatal signals' bits are compared (the library's watchdog thread also makes
    // glibc install its SIGSETXID handler, signal 33, a separate matter).
    let (plain, metered) = both(&sig_probe(), &["sigcgt"], 1, &[]);
    assert_plain_printed(&plain, "during invoke: SigCgt:");
    let fatal_bits = |o: &Outcome| -> Vec<String> {
        o.other_stdout()
            .iter()
            .filter(|l| l.contains("SigCgt:"))
            .map(|l| {
                let (when, hex) = l.split_once("SigCgt:").unwrap();
                let bits = u64::from_str_radix(hex.trim(), 16).unwrap();
                // SIGILL 4, SIGABRT 6, SIGBUS 7, SIGFPE 8, SIGSEGV 11, SIGTERM 15.
                let fatal = [4, 6, 7, 8, 11, 15]
                    .iter()
                    .fold(0u64, |m, s| m | 1 << (s - 1));
                format!("{when}SigCgt fatal bits {:#x}", bits & fatal)
            })
            .collect()
    };
    let (a, b) = (fatal_bits(&plain), fatal_bits(&metered));
    assert!(
        a == b,
        "the kernel reports caught fatal signals with the library (- without, + with):\n{}",
        differences(&a, &b)
    );
}

#[test]
#[ignore = "limit: sigaction reached through dlsym on a libc handle (Python ctypes.CDLL) is libc's own, not the hook: it reads back the crash handler's address where the host left SIG_DFL"]
fn dispositions_read_through_a_libc_handle_are_the_hosts() {
    // dlsym on a handle of libc itself finds libc's own sigaction and signal, not the hooks
    // (the preloaded library is not in libc's dependency tree): Python's
    // ctypes.CDLL("libc.so.6").signal, for one.
    sig_case(
        &["libc-handle"],
        1,
        "then sigaction reads SIGABRT as SIG_DFL",
    );
}

#[test]
#[ignore = "limit: the sigaction of a libc loaded with dlmopen(LM_ID_NEWLM) is not hooked: it reads back the crash handler's address where the host left SIG_DFL"]
fn dispositions_read_from_another_link_map_namespace_are_the_hosts() {
    sig_case(
        &["dlmopen"],
        1,
        "other namespace's sigaction: signal 15: rc=0 SIG_DFL",
    );
}

#[test]
fn a_disposition_installed_while_another_thread_holds_the_signal_stays() {
    // sigset(sig, SIG_HOLD) only blocks the signal; its hook settles the library's state all
    // the same: it reads the kernel's action, and where that was SIG_DFL writes the crash
    // handler, a moment later, over whatever another thread installed in between.
    sig_case(
        &["hold-race", "1000000"],
        1,
        "every install read back as installed: yes",
    );
}

// ---- signals: what passes ----

#[test]
fn read_backs_in_many_combinations_are_the_kernels() {
    // sigaction with old == act, sigset with SIG_HOLD and while held, signal/ssignal/
    // sysv_signal twice, a handler through the raw call read by sigaction and SIG_DFL through
    // sigaction read raw, the raw call with old == act, bad sizes and signals; errno after
    // each.
    sig_case(&["readback"], 1, "raw on SIGKILL: rc=-1 errno=22");
}

#[test]
fn blocked_fatal_signals_stay_pending_and_end_the_runtime_when_unblocked() {
    sig_case(&["block-raise"], 2, "SIGABRT blocked and raised: alive");
}

#[test]
fn sigwait_takes_a_blocked_sigterm() {
    sig_case(&["sigwait"], 1, "sigwait took 15");
}

#[test]
fn a_vfork_child_reads_and_changes_only_its_own_dispositions() {
    sig_case(
        &["vfork"],
        2,
        "vfork child: SIGSEGV read SIG_DFL 1, own SIGTERM handler read back 1",
    );
}

#[test]
fn sig_ign_on_sigterm_after_the_crash_handler_went_in_holds() {
    sig_case(
        &["ign-after"],
        2,
        "alive after raise(SIGTERM) under SIG_IGN",
    );
}

#[test]
fn abort_on_another_thread_ends_the_runtime_as_without_the_library() {
    let (plain, metered) = both(&sig_probe(), &["abort-thread"], 1, &[]);
    assert!(
        ending(&plain).starts_with("killed by signal 6"),
        "{}",
        ending(&plain)
    );
    assert_host_saw_the_same("abort on another thread", &plain, &metered);
}

#[test]
fn a_forked_child_crashes_as_without_the_library() {
    sig_case(&["fork-crash"], 1, "fork child: signaled 1 sig 11");
}

#[test]
fn sigterm_with_a_small_alternate_stack_ends_the_runtime_with_sigterm() {
    // The host keeps an alternate stack for its own SIGUSR1 handler (SA_ONSTACK), with an
    // inaccessible page below it; SIGTERM keeps its default. The crash handler is installed
    // with SA_ONSTACK too, so it runs there, after the kernel's signal frame (about 3.5 KB
    // with AVX-512 state): writing the records needs more than what is left.
    sig_case(
        &["altstack", "6"],
        1,
        "SIGUSR1 handled on a 6 KiB alternate stack 1 time(s); sending SIGTERM",
    );
}

/// For each of the four waits that unblock SIGTERM only while waiting: without the library
/// SIGTERM (SIG_DFL) kills the runtime there.
#[test]
fn sigterm_during_a_wait_that_unblocks_it_ends_the_runtime() {
    // The crash handler re-raises with tgkill while SIGTERM is blocked (inside the handler);
    // on sigreturn the kernel restores the mask from before the wait, in which SIGTERM is
    // blocked again: the re-raised signal stays pending and the wait returns EINTR.
    let mut survived = Vec::new();
    for how in ["sigsuspend", "ppoll", "pselect", "epoll_pwait"] {
        let (plain, metered) = both(&sig_probe(), &["unblock-wait", how], 1, &[]);
        assert!(
            ending(&plain).starts_with("killed by signal 15"),
            "{how}: without the library the runtime {}",
            ending(&plain)
        );
        if plain.other_stdout() != metered.other_stdout() || ending(&plain) != ending(&metered) {
            survived.push(format!(
                "{how}: {} ({})",
                metered.other_stdout().join(" / "),
                ending(&metered)
            ));
        }
    }
    assert!(
        survived.is_empty(),
        "SIGTERM (SIG_DFL) did not end the runtime with the library:\n{}",
        survived.join("\n")
    );
}

// ---- signals: crashes, their status and their core ----

/// Whether the kernel writes core files named `core` into the crashing process's directory.
fn cores_in_cwd() -> bool {
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    pattern.trim() == "core"
}

/// A core's si_signo, si_code and si_addr.
type Siginfo = (i32, i32, u64);

/// The [`Siginfo`] of the NT_SIGINFO note of the ELF64 core file in `dir`.
fn core_siginfo(dir: &Path) -> Option<Siginfo> {
    let core = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("core"))?;
    let data = std::fs::read(core.path()).ok()?;
    let u16_at = |o: usize| u16::from_le_bytes(data[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap());
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(ph) != 4 {
            continue; // not PT_NOTE
        }
        let (mut at, end) = (
            u64_at(ph + 8) as usize,
            (u64_at(ph + 8) + u64_at(ph + 0x20)) as usize,
        );
        while at + 12 <= end {
            let (namesz, descsz, kind) =
                (u32_at(at) as usize, u32_at(at + 4) as usize, u32_at(at + 8));
            let desc = at + 12 + namesz.next_multiple_of(4);
            if kind == 0x5349_4749 {
                // NT_SIGINFO: siginfo_t.
                let signo = u32_at(desc) as i32;
                let code = u32_at(desc + 8) as i32;
                let addr = u64_at(desc + 16);
                return Some((signo, code, addr));
            }
            at = desc + descsz.next_multiple_of(4);
        }
    }
    None
}

/// The probe's `mode` (a crash during an invoke, core dumps on) both ways, each in a directory
/// of its own; returns the two outcomes and the siginfo of the two cores.
fn crash_both(mode: &str) -> (Outcome, Outcome, Option<Siginfo>, Option<Siginfo>) {
    let probe = sig_probe();
    let (dir_a, dir_b) = (
        tempdir::TempDir::new("review-core"),
        tempdir::TempDir::new("review-core"),
    );
    let cmd = |d: &tempdir::TempDir| {
        vec![
            probe.display().to_string(),
            mode.to_string(),
            d.path().display().to_string(),
        ]
    };
    let (ca, cb) = (cmd(&dir_a), cmd(&dir_b));
    let ca: Vec<&str> = ca.iter().map(String::as_str).collect();
    let cb: Vec<&str> = cb.iter().map(String::as_str).collect();
    let plain = run_host(&ca, 1, &[], false);
    let metered = run_host(&cb, 1, &[], true);
    let (a, b) = (core_siginfo(dir_a.path()), core_siginfo(dir_b.path()));
    (plain, metered, a, b)
}

#[test]
fn a_fault_on_any_thread_ends_the_runtime_with_the_same_status_and_core() {
    for mode in ["fault", "thread-crash"] {
        let (plain, metered, _, _) = crash_both(mode);
        assert!(
            ending(&plain).starts_with("killed by signal 11"),
            "{mode}: {}",
            ending(&plain)
        );
        assert_host_saw_the_same(mode, &plain, &metered);
    }
}

#[test]
fn a_faults_core_keeps_its_siginfo() {
    // The crash handler re-raises a real fault with tgkill: the core (and whatever reads it,
    // gdb's $_siginfo, a crash reporter) shows a signal the process sent itself, and the fault
    // address is gone.
    if !cores_in_cwd() {
        eprintln!("core_pattern is not \"core\": nothing to compare");
        return;
    }
    for mode in ["fault", "thread-crash"] {
        let (_, _, plain, metered) = crash_both(mode);
        let plain = plain.expect("without the library: a core with NT_SIGINFO");
        assert_eq!(plain, (11, 1, 0x1234), "{mode}: the plain core");
        assert_eq!(
            metered,
            Some(plain),
            "{mode}: the core's (si_signo, si_code, si_addr) with the library"
        );
    }
}

// ---- the gate ----

#[test]
fn a_thread_cancelled_in_a_read_hook_on_the_runtime_api_is_cancelled() {
    sig_case_gate(&["cancel"], 1, "the reader was cancelled");
}

#[test]
fn a_thread_cancelled_in_a_read_hook_is_cancelled_with_the_layers_own_library() {
    // The same host as above, with the library the layer ships (`make layer`) named by
    // LAMBDA_METER_LIB instead of the test build: cargo-zigbuild would link zig's own static
    // unwinder into it, and then the Rust personality routine of the hook's frame reads the
    // context of glibc's cancellation unwind (libgcc_s) with the other unwinder and crashes
    // the thread. layer/build.sh links it against the system's libgcc_s.so.1.
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    };
    let probe = gate_probe();
    let command = [probe.to_str().unwrap(), "cancel"];
    let plain = run_host(&command, 1, &[], false);
    assert_plain_printed(&plain, "the reader was cancelled");
    // Both builds, for glibc 2.26 and 2.34.
    for build in ["lib", "lib/glibc-2.34"] {
        let lib = root().join(format!("target/layer/{arch}/{build}/liblambda_meter.so"));
        assert!(lib.is_file(), "{} (make layer)", lib.display());
        let lib = lib.display().to_string();
        let metered = run_host(&command, 1, &[("LAMBDA_METER_LIB", lib.as_str())], true);
        assert_host_saw_the_same(&format!("cancel, with {lib}"), &plain, &metered);
    }
}

#[test]
fn a_panic_inside_the_library_is_caught_and_the_runtime_runs_on_unmetered() {
    // The test build panics at its first entry into the engine. The panic unwinds through
    // c-abi/unwind.c into the system's libgcc_s.so.1, which the library loads only then (the C
    // runtime loads no unwinder of its own), and is caught by the entry's catch_unwind: one
    // warning line, and the runtime goes on as without the library.
    let bin = compile_program("c_runtime", "c_runtime_panic", &["-O1"]);
    let needed = Command::new("objdump")
        .arg("-p")
        .arg(&bin)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&needed.stdout).contains("libgcc_s"));
    let metered = panicking_runs(vec![bin.display().to_string()], "1");
    assert!(metered.records().is_empty(), "{}", metered.run.stdout);
}

/// `command` without the library and with the panic-inject build (LAMBDA_METER_INJECT_PANIC
/// = `inject`): one warning line, and the runtime's results, requests, output and ends as
/// without the library. The metered run.
fn panicking_runs(command: Vec<String>, inject: &str) -> support::Outcome {
    let mut s = scenario::Scenario::new(command, root())
        .with_library(panic_inject_library())
        .env("LAMBDA_METER_INJECT_PANIC", inject)
        .launched(scenario::Launch::Preload);
    s.compare_output = true;
    let plain = s.run(false);
    let metered = s.run(true);
    assert_eq!(
        metered.run.stderr.lines().collect::<Vec<_>>(),
        ["lambda-meter: warning: internal error; lambda-meter is off for the rest of this process"],
        "{}",
        metered.run.stderr
    );
    assert_eq!(plain.other_stdout(), metered.other_stdout());
    scenario::assert_same_results(&plain, &metered);
    scenario::assert_same_requests(&plain, &metered);
    assert_eq!(plain.run.exits, metered.run.exits);
    assert_eq!(plain.run.starts, metered.run.starts);
    metered
}

#[test]
fn a_panic_on_the_library_s_own_thread_turns_it_off_and_the_runtime_runs_on() {
    // The watchdog runs on a thread the C library does not know of (src/glue/thread.rs),
    // where a panic must not unwind. The test build panics at the watchdog's first entry into
    // the engine (the first invoke wakes it): the library's panic hook turns the library off
    // with the one warning line and parks the thread; the runtime goes on as without it.
    let bin = compile_program("c_runtime", "c_runtime_panic_watchdog", &["-O1"]);
    let metered = panicking_runs(unprivileged(&[], &[bin.to_str().unwrap()]), "watchdog");
    // The first invoke's record may be out before the watchdog looks; none after.
    assert!(metered.records().len() <= 1, "{}", metered.run.stdout);
}

/// The result bodies of a run, in order.
fn result_bodies(o: &support::Outcome) -> Vec<String> {
    o.sim
        .results()
        .into_iter()
        .map(|r| String::from_utf8(r.unwrap().body).unwrap())
        .collect()
}

#[test]
fn a_single_threaded_host_stays_single_threaded_for_its_c_library() {
    // The library's watchdog thread is one glibc does not know of: a host that starts no
    // thread keeps glibc's single-threaded paths (no lock in malloc, free and stdio, no
    // cancellation switch around its system calls) with the library loaded.
    // `__libc_single_threaded`, read by the handler once the thread runs (it starts at the
    // first invoke), is what it is without the library: a POSIX thread would make it 0.
    let bin = compile_program("c_runtime", "c_runtime_threads", &["-O1"]);
    let mut s = scenario::Scenario::new(unprivileged(&[], &[bin.to_str().unwrap()]), root())
        .launched(scenario::Launch::Preload);
    s.payloads = vec![
        json!({"action": "ok"}),
        json!({"action": "glibc_threads"}),
        json!({"action": "sleep", "ms": 20}),
        json!({"action": "glibc_threads"}),
    ];
    s.compare_output = true;
    let bodies = result_bodies(&s.check());
    assert_eq!(bodies[1], r#"{"single":1}"#);
    assert_eq!(bodies[3], r#"{"single":1}"#);
    // The thread is there all the same, named.
    s.payloads = vec![json!({"action": "ok"}), json!({"action": "task_names"})];
    let (plain, metered) = (s.run(false), s.run(true));
    assert_eq!(result_bodies(&plain)[1], r#"{"tasks":"c_runtime_threa,"}"#);
    assert_eq!(
        result_bodies(&metered)[1],
        r#"{"tasks":"c_runtime_threa,lambda-meter,"}"#
    );
}

#[test]
fn a_host_that_can_change_its_ids_has_a_watchdog_that_follows_them() {
    // A credential change is the calling thread's alone in the kernel; glibc's setuid family
    // carries it to the threads it knows of. A process that can change its ids (here root)
    // gets a POSIX watchdog, which glibc carries along: after the handler gives up root, no
    // thread of the process keeps it.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let bin = compile_program("c_runtime", "c_runtime_drop_ids", &["-O1"]);
    let mut s = scenario::Scenario::new(vec![bin.display().to_string()], root())
        .launched(scenario::Launch::Preload);
    s.payloads = vec![
        json!({"action": "ok"}),
        json!({"action": "drop_ids"}),
        json!({"action": "task_uids"}),
    ];
    let (plain, metered) = (s.run(false), s.run(true));
    assert_eq!(result_bodies(&plain)[1], r#"{"dropped":1}"#);
    assert_eq!(result_bodies(&plain)[2], r#"{"uids":"65534,"}"#);
    assert_eq!(result_bodies(&metered)[1], r#"{"dropped":1}"#);
    assert_eq!(result_bodies(&metered)[2], r#"{"uids":"65534,65534,"}"#);
}

#[test]
fn only_capabilities_that_change_ids_make_the_watchdog_a_posix_thread() {
    // An unprivileged runtime with a capability that cannot change its ids (as a container
    // may grant `CAP_NET_BIND_SERVICE`) keeps the thread glibc does not know of; one with
    // `CAP_SETUID` permitted could change them, and gets a POSIX thread glibc carries along.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let bin = compile_program("c_runtime", "c_runtime_caps", &["-O1"]);
    for (cap, single) in [("net_bind_service", 1), ("setuid", 0), ("setgid", 0)] {
        let command = [
            "setpriv".to_string(),
            "--reuid=65534".into(),
            "--regid=65534".into(),
            "--clear-groups".into(),
            format!("--inh-caps=+{cap}"),
            format!("--ambient-caps=+{cap}"),
            "--".into(),
            bin.display().to_string(),
        ];
        let mut s =
            scenario::Scenario::new(command.to_vec(), root()).launched(scenario::Launch::Preload);
        s.payloads = vec![
            json!({"action": "ok"}),
            json!({"action": "sleep", "ms": 20}),
            json!({"action": "glibc_threads"}),
        ];
        let (plain, metered) = (s.run(false), s.run(true));
        assert_eq!(result_bodies(&plain)[2], r#"{"single":1}"#, "{cap}");
        assert_eq!(
            result_bodies(&metered)[2],
            format!(r#"{{"single":{single}}}"#),
            "{cap}"
        );
    }
}

/// The edge_gate_probe with `args` both ways, compared.
fn sig_case_gate(args: &[&str], invokes: usize, expect: &str) {
    let (plain, metered) = both(&gate_probe(), args, invokes, &[]);
    assert_plain_printed(&plain, expect);
    assert_host_saw_the_same(&args.join(" "), &plain, &metered);
}

#[test]
#[ignore = "limit: unwinding through the library is not supported: pthread_exit from a handler that interrupted a hook aborts the runtime"]
fn pthread_exit_from_a_handler_inside_the_library_ends_only_the_thread() {
    // Where the thread is ended outside the catch_unwind (Gate::enter after its
    // compare-exchange, leave), it dies holding the gate: then the watchdog spins on it once
    // the invoke's deadline (3 s) comes, while the main thread sleeps 5 s.
    let probe = gate_probe();
    let command = [probe.to_str().unwrap(), "exit"];
    let timeout = Duration::from_secs(3);
    let plain = run_host_timeout(&command, 1, &[], false, timeout);
    let metered = run_host_timeout(&command, 1, &[], true, timeout);
    assert_plain_printed(
        &plain,
        "while the main thread slept 5 s, the process used almost no CPU",
    );
    assert_host_saw_the_same("pthread_exit inside the library", &plain, &metered);
}

#[test]
#[ignore = "limit: unwinding through the library is not supported: a C++ exception thrown from a handler that interrupted a hook aborts the runtime"]
fn an_exception_from_a_handler_inside_the_library_is_caught_by_the_host() {
    let probe = throw_probe();
    let command = [probe.to_str().unwrap(), "5"];
    let plain = run_host(&command, 5, &[], false);
    let metered = run_host(&command, 5, &[], true);
    assert_plain_printed(&plain, "5 invokes");
    assert_host_saw_the_same("exceptions from inside the library", &plain, &metered);
}

#[test]
fn a_handler_waiting_inside_the_library_costs_no_cpu() {
    // A garbage collector's suspend handler, or any handler that blocks for a while, that
    // happens to interrupt the library while it holds the gate. The watchdog is due 2 s after
    // the response (the record waits for /next); it finds the gate taken, waits 5 ms once,
    // and then retries Gate::enter in a loop that never sleeps.
    let report = std::env::temp_dir().join(format!("review-stall-{}", std::process::id()));
    let env = [("STALL_REPORT", report.to_str().unwrap())];
    let (plain, metered) = both(&gate_probe(), &["stall"], 2, &env);
    let cpu = std::fs::read_to_string(&report).unwrap_or_default();
    let _ = std::fs::remove_file(&report);
    assert_plain_printed(
        &plain,
        "while a handler waited 5 s, the process used almost no CPU",
    );
    assert_host_saw_the_same(
        &format!(
            "a handler waiting 5 s inside the library (CPU used meanwhile: {} ms)",
            cpu.trim()
        ),
        &plain,
        &metered,
    );
}

#[test]
#[ignore = "limit: after a handler left a hook by siglongjmp, a later entry from below an untouched stack buffer can take the abandoned frame's intact canary for a live nested entry, and is deferred"]
fn an_abandoned_entry_below_an_untouched_buffer_does_not_stop_metering() {
    // Gate::try_enter judges "nested" by the outer canary being intact and above the new
    // frame; a large buffer the runtime never writes keeps the abandoned frame's canary
    // intact, so the thread defers everything from then on and the gate is never let go.
    let invokes = 5;
    let n = invokes.to_string();
    let (plain, metered) = both(&gate_probe(), &["pad", &n], invokes, &[]);
    assert_plain_printed(&plain, "5 invokes answered");
    assert_host_saw_the_same("an abandoned entry below a buffer", &plain, &metered);
    assert_every_invoke_metered("an abandoned entry below a buffer", &metered, invokes);
}

// ---- the custom-metrics channel ----

/// awslambdaric on tests/functions/python/edge_channel.py against `payloads`, with
/// `concurrency` workers (Lambda Managed Instances when above 1).
fn python_channel(payloads: &[Value], wrapped: bool, concurrency: usize) -> Outcome {
    let layer = Layer::new();
    let cmd = python_command("edge_channel.handler");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let workers = concurrency.to_string();
    let env: Vec<(&str, &str)> = if concurrency > 1 {
        vec![("AWS_LAMBDA_MAX_CONCURRENCY", workers.as_str())]
    } else {
        vec![]
    };
    run_with(
        Config {
            events: events(payloads),
            max_concurrency: concurrency,
            ..Config::default()
        },
        &cmd,
        wrapped.then(|| layer.wrapper()).as_deref(),
        &env,
        &python_function_dir(),
    )
}

/// The request id of event `i` (0-based) of [`events`].
fn request_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{:012}", i + 1)
}

/// The raw records of request `id`.
fn records_of(o: &Outcome, id: &str) -> Vec<Value> {
    o.raw_records()
        .into_iter()
        .filter(|r| r["requestId"] == id)
        .collect()
}

/// Both runs answered every event.
fn assert_all_answered(plain: &Outcome, metered: &Outcome, n: usize) {
    for o in [plain, metered] {
        let answered = o.sim.results().iter().filter(|r| r.is_some()).count();
        assert_eq!(answered, n, "answered events:\n{}", o.run.stderr);
    }
}

#[test]
fn a_slow_invokes_value_survives_other_workers_values() {
    // Two workers (Lambda Managed Instances) share the channel. Worker A writes its metric
    // first and takes 1.5 s; meanwhile worker B appends 70 lines of about 1 KB (its own
    // properties) and returns. A's result reads the channel: channel::read_lines keeps the
    // newest CHANNEL_BYTES (64 KiB) of what is new, and A's line is older than that.
    let payloads = vec![
        json!({"mine": "MineA", "value": 7, "first": true, "after_ms": 1500}),
        json!({"before_ms": 300, "filler": 70, "filler_bytes": 1000}),
    ];
    let plain = python_channel(&payloads, false, 2);
    let metered = python_channel(&payloads, true, 2);
    assert_all_answered(&plain, &metered, 2);
    let a = records_of(&metered, &request_id(0));
    assert!(
        a.iter().any(|r| r["MineA"] == json!(7.0)),
        "worker A's record lacks its MineA = 7: {a:?}"
    );
}

#[test]
#[ignore = "limit: a channel writer must open, append and close per value (as the shims do): one that keeps the file open appends to a rotated generation, read once more only"]
fn a_channel_file_kept_open_keeps_delivering_after_rotation() {
    // A handler that opens the channel once and keeps it (a logger, Node's
    // fs.createWriteStream). Before rotation existed its values always arrived; once the file
    // is renamed to .old (the first invoke's 270 KB, another process's lines), the kept file
    // object appends to the old generation, which the library reads once more and then never.
    let mut payloads = vec![json!({
        "keep": true, "other_pid": true, "filler": 270, "filler_bytes": 1000,
        "mine": "M", "value": 0
    })];
    for i in 1..=3 {
        payloads.push(json!({"keep": true, "mine": "M", "value": i}));
    }
    let plain = python_channel(&payloads, false, 1);
    let metered = python_channel(&payloads, true, 1);
    assert_all_answered(&plain, &metered, payloads.len());
    let got: Vec<Value> = (0..payloads.len())
        .map(|i| {
            records_of(&metered, &request_id(i))
                .first()
                .map(|r| r["M"].clone())
                .unwrap_or(Value::Null)
        })
        .collect();
    assert_eq!(
        got,
        vec![json!(0.0), json!(1.0), json!(2.0), json!(3.0)],
        "the M of each invoke's record"
    );
}

#[test]
fn an_invoke_with_large_custom_values_has_one_record_at_shutdown() {
    // Lambda Managed Instances stop the runtime with SIGTERM (the simulator does so when
    // max_concurrency > 1). The invoke finished and its record was written; its journal slot
    // still holds the open invoke, and the crash handler writes it again.
    let payloads = vec![json!({"filler": 10, "filler_bytes": 1000})];
    let plain = python_channel(&payloads, false, 2);
    let metered = python_channel(&payloads, true, 2);
    assert_all_answered(&plain, &metered, 1);
    let recs = records_of(&metered, &request_id(0));
    assert_eq!(
        recs.len(),
        1,
        "records of the one invoke: {}",
        recs.iter()
            .map(|r| format!("Errors {} exitReason {}", r["Errors"], r["exitReason"]))
            .collect::<Vec<_>>()
            .join("; ")
    );
}

#[test]
fn concurrent_appends_across_rotations_keep_every_value() {
    // Three workers append about 10 KB each per invoke (open, append, close per line, as the
    // shims do) and their own metric; 45 invokes make the channel rotate at least once. Every
    // record must carry its own metric.
    let n = 45;
    let payloads: Vec<Value> = (0..n)
        .map(|i| json!({"filler": 10, "filler_bytes": 1000, "mine": "Seq", "value": i, "after_ms": 20}))
        .collect();
    let plain = python_channel(&payloads, false, 3);
    let metered = python_channel(&payloads, true, 3);
    assert_all_answered(&plain, &metered, n);
    let wrong: Vec<String> = (0..n)
        .filter_map(|i| {
            let recs = records_of(&metered, &request_id(i));
            let ok = recs.iter().any(|r| r["Seq"] == json!(i as f64));
            (!ok).then(|| {
                format!(
                    "invoke {i}: {:?}",
                    recs.iter().map(|r| &r["Seq"]).collect::<Vec<_>>()
                )
            })
        })
        .collect();
    assert!(wrong.is_empty(), "records without their value: {wrong:?}");
}
