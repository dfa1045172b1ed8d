//! PHP custom runtimes (Debian's php-cli and php-curl): a curl-extension loop as bref and most
//! hand-written bootstraps are, and a loop on PHP's own http:// stream wrapper. PHP loads its
//! extensions with RTLD_DEEPBIND, so libcurl's socket calls bind straight to libc unless
//! lambda-meter binds them to its hooks. Also: `dlopen` keeps the caller's lookup rules.

// Tests unwrap, index and panic freely: the crate's lints are for code in the host's process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::process::Command;
use support::scenario::Scenario;
use support::*;

fn php(mode: &str) -> Scenario {
    let dir = root().join("tests/functions/php");
    let mut s = Scenario::new(vec!["php".into(), "runtime.php".into(), mode.into()], dir);
    s.compare_output = true;
    s
}

#[test]
fn php_curl_extension_loop() {
    let out = php("curl").check();
    for r in out.records() {
        assert_eq!(r["runtime"], format!("php{}", php_version()));
    }
}

#[test]
fn php_curl_extension_loop_adversarial_transport() {
    php("curl").tiny_writes().check();
}

#[test]
fn php_stream_wrapper_loop() {
    php("stream").check();
}

/// The php executable's name (`php8.2` on Debian: `php` is a link to it).
fn php_version() -> String {
    let out = Command::new("php")
        .args(["-r", "echo PHP_MAJOR_VERSION, '.', PHP_MINOR_VERSION;"])
        .output()
        .expect("php");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn dlopen_keeps_the_callers_lookup_rules() {
    let plugins = profile_dir().join("test-programs/plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(plugins.join("libdlopen_plugin.so"))
        .arg(root().join("tests/programs/dlopen_plugin.c"))
        .status()
        .expect("cc");
    assert!(status.success());
    let probe = compile_program(
        "dlopen_probe",
        "dlopen_probe",
        &["-Wl,-rpath,$ORIGIN/plugins"],
    );
    let run = |preload: bool| {
        let mut c = Command::new(&probe);
        c.env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
            .env_remove("LD_PRELOAD");
        if preload {
            c.env("LD_PRELOAD", library());
        }
        let out = c.output().expect("dlopen_probe");
        assert!(out.status.success());
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (plain, metered) = (run(false), run(true));
    assert_eq!(plain, metered);
    assert!(
        plain.0.contains("runpath: loaded, plugin_hello found"),
        "{}",
        plain.0
    );
    assert!(plain.0.contains("deepbind: wrote 22 bytes"), "{}", plain.0);
    assert!(
        plain
            .0
            .contains("missing: libno_such_plugin.so: cannot open"),
        "{}",
        plain.0
    );
}
