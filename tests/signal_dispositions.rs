//! Signal dispositions as the host sees them, and signals it sends itself (issue 20, property 2
//! "No trampolines", and the handlers left by a non-local exit of property 3). The host's
//! handlers must be installed exactly as given; the library's crash handlers may sit only on
//! fatal signals the kernel reports as `SIG_DFL` and must step aside when anything installs a
//! handler, by whatever path (ISO C `signal`, `sysv_signal`, `bsd_signal`, `sigset`, `ssignal`,
//! the raw system call, libjsig after the library in `LD_PRELOAD`). Every read-back (through
//! `sigaction` or `rt_sigaction`, in the runtime and in children made by a raw `clone` or
//! `_Fork`) must give what the kernel gives without the library; a fatal signal the host sends
//! itself must end it as it would have; a handler left by `setcontext` or a C++ exception must
//! not stop the metering.
//!
//! Each host runs once without the library and once with it, and what it printed about itself,
//! its stderr and how it ended are compared. The hosts talk to the Runtime API themselves, so
//! they look while the library treats them as a runtime (crash handlers installed).

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use support::compare::*;
use support::*;

/// The JDK's signal-chaining library (tests/setup.sh installs openjdk-17-jdk-headless).
const LIBJSIG: &str = "/usr/lib/jvm/java-17-openjdk-amd64/lib/libjsig.so";

/// tests/programs/sigdisp_probe.c, compiled once per test binary. Strict ISO C: its `signal`
/// is glibc's `__sysv_signal`.
fn probe() -> PathBuf {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            compile_program(
                "sigdisp_probe",
                "sigdisp_probe",
                &["-std=c11", "-O1", "-Wall"],
            )
        })
        .clone()
}

/// tests/programs/sigthrow_probe.cpp (C++: its handler throws), compiled once.
fn throw_probe() -> PathBuf {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let out = profile_dir().join("test-programs/sigthrow_probe");
            std::fs::create_dir_all(out.parent().unwrap()).unwrap();
            let src = root().join("tests/programs/sigthrow_probe.cpp");
            let status = Command::new("c++")
                .args(["-std=c++17", "-O1", "-Wall", "-o"])
                .arg(&out)
                .arg(&src)
                .status()
                .expect("c++");
            assert!(status.success(), "compiling {}", src.display());
            out
        })
        .clone()
}

/// tests/programs/NullCheckRuntime.java, compiled once; returns the class directory.
fn java_classes() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = profile_dir().join("test-programs/java-nullcheck");
        std::fs::create_dir_all(&out).unwrap();
        let status = Command::new("javac")
            .arg("-d")
            .arg(&out)
            .arg(root().join("tests/programs/NullCheckRuntime.java"))
            .status()
            .expect("javac");
        assert!(status.success(), "javac failed");
        out
    })
    .clone()
}

/// The probe with `args` serving `invokes` events: without the library, then through the
/// wrapper.
fn probe_both(args: &[&str], invokes: usize) -> (Outcome, Outcome) {
    let probe = probe();
    let mut command = vec![probe.to_str().unwrap()];
    command.extend_from_slice(args);
    let plain = run_host(&command, invokes, &[], false);
    let metered = run_host(&command, invokes, &[], true);
    (plain, metered)
}

#[test]
fn fatal_signal_dispositions_read_back_as_the_kernel_reports_them() {
    // Before the first connect, during an invoke, after its response: the six fatal signals
    // through sigaction and the raw rt_sigaction; and a SIG_DFL the host sets itself with
    // SA_RESTART|SA_ONSTACK and a mask, which the kernel keeps.
    let (plain, metered) = probe_both(&["view"], 1);
    assert_plain_printed(&plain, "after the response: SIGTERM");
    assert_host_saw_the_same("fatal signals read back", &plain, &metered);
}

#[test]
fn the_hosts_handlers_are_installed_as_given() {
    // Handlers with SA_SIGINFO, masks and flags, a BSD signal(), SIG_IGN on SIGTERM and a
    // one-shot SIGSEGV handler, installed before the first connect: the kernel must hold them
    // as given before, during and after an invoke, and they must still run.
    let (plain, metered) = probe_both(&["host-handlers"], 1);
    assert_plain_printed(
        &plain,
        "raised USR1, USR2, ABRT, TERM: the host's handlers ran 3",
    );
    assert_host_saw_the_same("the host's handlers", &plain, &metered);
}

#[test]
fn handlers_installed_around_the_sigaction_hook_replace_the_crash_handlers() {
    // During an invoke, one fatal signal each gets a handler by a glibc path that does not call
    // the interposed sigaction; the host reads each back, saves and restores it through
    // sigaction (as libraries do around a temporary handler), and raises it.
    let (plain, metered) = probe_both(&["bypass"], 1);
    assert_plain_printed(&plain, "raised SIGTERM: the host's handler ran 1");
    assert_host_saw_the_same("handlers installed around sigaction", &plain, &metered);
}

#[test]
fn the_sa_unsupported_probe_gets_the_kernels_answer() {
    // Linux 5.11's probe: set SA_UNSUPPORTED with the flags asked about, read back; the kernel
    // clears SA_UNSUPPORTED and keeps the flags it knows. On handlers, SIG_IGN and the SIG_DFL
    // of fatal signals.
    let (plain, metered) = probe_both(&["probe-flags"], 1);
    assert_plain_printed(&plain, "SIGBUS SIG_DFL with");
    assert!(
        plain
            .other_stdout()
            .iter()
            .all(|l| !l.contains("reads back") || l.contains("SA_UNSUPPORTED cleared")),
        "this kernel does not clear SA_UNSUPPORTED (Linux < 5.11?):\n{}",
        plain.run.stdout
    );
    assert_host_saw_the_same("the SA_UNSUPPORTED probe", &plain, &metered);
}

#[test]
fn invalid_requests_fail_as_without_the_library() {
    // sigaction, the GNU signal, the ISO C signal and sigset on signals 0, -1, 65, 128,
    // SIGKILL, SIGSTOP and glibc's own 32 and 33; signal() with SIG_ERR as the handler.
    let (plain, metered) = probe_both(&["invalid"], 1);
    assert_plain_printed(&plain, "signal(10, SIG_ERR): SIG_ERR errno=22");
    assert_host_saw_the_same("invalid requests", &plain, &metered);
}

#[test]
fn resethand_and_nodefer_handlers_read_back_as_the_kernel_left_them() {
    // SA_RESETHAND handlers (with and without SA_SIGINFO, on ordinary and fatal signals) read
    // their disposition inside the handler and after it; a SA_NODEFER handler nests.
    let (plain, metered) = probe_both(&["oneshot"], 1);
    assert_plain_printed(&plain, "SIGHUP SA_NODEFER: nested 3 deep");
    assert_host_saw_the_same("SA_RESETHAND and SA_NODEFER", &plain, &metered);
}

#[test]
fn children_made_by_raw_clone_and_fork_read_back_the_kernels_dispositions() {
    // After the runtime became one (an invoke in flight, a SIGUSR1 handler of its own), a child
    // made by syscall(SYS_clone) and one made by _Fork read every disposition back; two more
    // children raise SIGSEGV and send themselves SIGTERM.
    let (plain, metered) = probe_both(&["child"], 1);
    assert_plain_printed(
        &plain,
        "_Fork child sending itself SIGTERM: exited -1 signal 15",
    );
    assert_host_saw_the_same("children behind the library's back", &plain, &metered);
}

#[test]
fn fatal_signals_the_runtime_sends_itself_end_it_as_without_the_library() {
    // During an invoke, with default dispositions: raise, kill, sigqueue (si_code <= 0) and
    // abort. The library may write the invoke's record first; the runtime must die of the
    // signal all the same.
    for how in [
        "raise-SIGTERM",
        "kill-SIGTERM",
        "sigqueue-SIGABRT",
        "raise-SIGSEGV",
        "abort",
    ] {
        let (plain, metered) = probe_both(&["selfsig", how], 1);
        assert!(
            ending(&plain).starts_with("killed by signal"),
            "{how}: without the library the runtime {}",
            ending(&plain)
        );
        assert_host_saw_the_same(how, &plain, &metered);
    }
}

#[test]
fn a_fatal_signal_sent_with_a_fault_si_code_is_not_swallowed() {
    // rt_tgsigqueueinfo to itself with si_code 1 (allowed for the own process; crash reporters
    // re-raise a signal this way with the siginfo they were given). The crash handler takes a
    // positive si_code for a fault that will happen again when the instruction is retried,
    // and returns: nothing is retried, and the signal is lost.
    for how in ["tgsigqueueinfo-SIGTERM", "tgsigqueueinfo-SIGSEGV"] {
        let (plain, metered) = probe_both(&["selfsig", how], 1);
        assert!(
            ending(&plain).starts_with("killed by signal"),
            "{how}: without the library the runtime {}",
            ending(&plain)
        );
        assert_host_saw_the_same(how, &plain, &metered);
    }
}

/// 200 invokes, each with a SIGUSR1 handler left by `how`: the host sees the same, and every
/// invoke has its record.
fn handler_left_by(how: &str) {
    let invokes = 200;
    let n = invokes.to_string();
    let (plain, metered) = probe_both(&["leave", how, &n], invokes);
    assert_plain_printed(
        &plain,
        &format!("200 invokes, the handler ran 200 times and left by {how} 200 times"),
    );
    assert_host_saw_the_same(&format!("handlers left by {how}"), &plain, &metered);
    assert_every_invoke_metered(&format!("handlers left by {how}"), &metered, invokes);
}

#[test]
fn handlers_left_by_siglongjmp_keep_every_invoke_metered() {
    handler_left_by("siglongjmp");
}

#[test]
fn handlers_left_by_setcontext_keep_every_invoke_metered() {
    handler_left_by("setcontext");
}

#[test]
fn handlers_left_by_a_cpp_exception_keep_every_invoke_metered() {
    let invokes = 200;
    let probe = throw_probe();
    let n = invokes.to_string();
    let command = [probe.to_str().unwrap(), n.as_str()];
    let plain = run_host(&command, invokes, &[], false);
    let metered = run_host(&command, invokes, &[], true);
    assert_plain_printed(
        &plain,
        "200 invokes, the handler was left by an exception 200 times",
    );
    assert_host_saw_the_same("handlers left by an exception", &plain, &metered);
    assert_every_invoke_metered("handlers left by an exception", &metered, invokes);
}

/// tests/programs/gate_leave_probe.c, compiled once.
fn gate_leave_probe() -> PathBuf {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE
        .get_or_init(|| compile_program("gate_leave_probe", "gate_leave_probe", &["-O1", "-ldl"]))
        .clone()
}

#[test]
fn handlers_that_leave_the_library_itself_half_way_keep_every_invoke_metered() {
    // A SIGALRM every 50 µs; whenever it interrupts the library (inside its custom-properties
    // call, holding the gate), the handler leaves by siglongjmp. Nothing tells the library:
    // the next entry on that thread must find the abandoned frame and take the gate back.
    let invokes = 50;
    let probe = gate_leave_probe();
    let n = invokes.to_string();
    let command = [probe.to_str().unwrap(), n.as_str()];
    let report = std::env::temp_dir().join(format!("gate-leave-{}", std::process::id()));
    let report_env = [("LEAVE_REPORT", report.to_str().unwrap())];
    let plain = run_host(&command, invokes, &[], false);
    let metered = run_host(&command, invokes, &report_env, true);
    assert_plain_printed(&plain, &format!("{invokes} invokes"));
    assert_host_saw_the_same("handlers leaving the library", &plain, &metered);
    assert_every_invoke_metered("handlers leaving the library", &metered, invokes);
    let left: u64 = std::fs::read_to_string(&report)
        .expect("the probe's report")
        .trim()
        .parse()
        .unwrap();
    let _ = std::fs::remove_file(&report);
    assert!(
        left > 0,
        "no handler interrupted the library: the test showed nothing"
    );
}

#[test]
fn the_crash_handlers_stay_out_of_libjsigs_chain() {
    // The probe does what the JVM does with libjsig: installs its handlers for SIGSEGV, SIGBUS,
    // SIGFPE and SIGILL between JVM_begin_signal_setting and JVM_end_signal_setting. libjsig's
    // sigaction then answers for those signals with the handler chained behind the JVM's
    // (SIG_DFL), though the kernel holds the JVM's: the library must not take that answer for
    // the kernel's and chain its crash handlers there. LD_PRELOAD="liblambda_meter.so
    // libjsig.so" against libjsig alone; the chain, sigaction and rt_sigaction are printed.
    assert!(
        Path::new(LIBJSIG).is_file(),
        "{LIBJSIG} is missing: run tests/setup.sh"
    );
    let probe = probe();
    let command = [probe.to_str().unwrap(), "jsig"];
    let both = format!("{} {LIBJSIG}", library().display());
    let plain = run_host(&command, 1, &[("LD_PRELOAD", LIBJSIG)], false);
    assert_plain_printed(
        &plain,
        "after the response: SIGILL chained behind the JVM's handler: SIG_DFL",
    );
    let metered = run_host(&command, 1, &[("LD_PRELOAD", &both)], false);
    assert_host_saw_the_same("libjsig after the library", &plain, &metered);
    assert_every_invoke_metered("libjsig after the library", &metered, 1);
}

/// The Java runtime of tests/programs/NullCheckRuntime.java (`-Xcheck:jni`: the JVM reports
/// handlers that changed under it) against 5 events.
fn null_check_runtime(env: &[(&str, &str)], wrapped: bool) -> Outcome {
    let classes = java_classes();
    let command = [
        "java",
        "-Xcheck:jni",
        "-Xshare:auto",
        "-cp",
        classes.to_str().unwrap(),
        "NullCheckRuntime",
        "20000",
    ];
    run_host(&command, 5, env, wrapped)
}

/// What a JVM run must show: every invoke's null checks caught, no word about its handlers.
fn assert_jvm_fine(what: &str, o: &Outcome) {
    let out = o.other_stdout();
    for n in 1..=5 {
        let line = format!("invoke {n}: caught 10000");
        assert!(
            out.contains(&line),
            "{what}: no {line:?} ({}):\n{}\n{}",
            ending(o),
            o.run.stdout,
            o.run.stderr
        );
    }
    let text = format!("{}\n{}", o.run.stdout, o.run.stderr);
    for word in ["Warning: SIG", "A fatal error"] {
        assert!(
            !text.contains(word),
            "{what}: the JVM said {word:?}:\n{text}"
        );
    }
}

#[test]
fn the_jvm_keeps_its_null_checks_with_libjsig_preloaded_after_the_library() {
    // LD_PRELOAD="liblambda_meter.so libjsig.so": libjsig is the library's "real" sigaction
    // and answers for the JVM's signals with the handler saved before the JVM (SIG_DFL). The
    // JVM must still handle its own SIGSEGV (implicit null checks in compiled code, tens of
    // thousands per run), print the same view of its handlers (VM.info, with the chained
    // ones), and every invoke must be metered.
    assert!(
        Path::new(LIBJSIG).is_file(),
        "{LIBJSIG} is missing: run tests/setup.sh"
    );
    let both = format!("{} {LIBJSIG}", library().display());
    let plain = null_check_runtime(&[("LD_PRELOAD", LIBJSIG)], false);
    assert_jvm_fine("libjsig alone", &plain);
    let metered = null_check_runtime(&[("LD_PRELOAD", &both)], false);
    assert_jvm_fine("the library, then libjsig", &metered);
    assert_host_saw_the_same("the JVM with libjsig", &plain, &metered);
    assert_every_invoke_metered("the JVM with libjsig", &metered, 5);
}

#[test]
fn the_jvm_sees_its_own_signal_handlers_under_xcheck_jni() {
    // Without libjsig, -Xcheck:jni makes the JVM check its handlers periodically (through the
    // first sigaction in the global scope: the library's) and print them in VM.info.
    let plain = null_check_runtime(&[], false);
    assert_jvm_fine("java alone", &plain);
    assert!(
        plain
            .other_stdout()
            .iter()
            .any(|l| l.contains("SIGSEGV: javaSignalHandler in libjvm.so")),
        "VM.info does not show the JVM's SIGSEGV handler:\n{}",
        plain.run.stdout
    );
    let metered = null_check_runtime(&[], true);
    assert_jvm_fine("java through the wrapper", &metered);
    assert_host_saw_the_same("the JVM under -Xcheck:jni", &plain, &metered);
    assert_every_invoke_metered("the JVM under -Xcheck:jni", &metered, 5);
}
