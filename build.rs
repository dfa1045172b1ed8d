//! Builds the C interposers (the variadic functions, and `syscall` before the library's
//! constructor ran; the constructor itself is Rust, in `src/glue/hooks.rs`) and the unwinder's
//! entry points (`c-abi/unwind.c`: forwarded to the system's libgcc_s.so.1, found on first use)
//! and links them into the cdylib only, exporting exactly the hooks of `src/glue/table.rs` and the public C ABI of
//! `c-abi/lambda_meter.h`.
//!
//! Into `OUT_DIR` it writes the linker's version script (`exports.map`), and the lists the
//! tests check the built library and the README against: `hooks.txt` (the table's hooks) and
//! `exports.txt` (the hooks and the C ABI), one name a line.

use std::path::Path;

const TABLE: &str = "src/glue/table.rs";
const HEADER: &str = "c-abi/lambda_meter.h";

fn main() {
    println!("cargo:rerun-if-changed=c-abi/interpose.c");
    println!("cargo:rerun-if-changed=c-abi/unwind.c");
    println!("cargo:rerun-if-changed={HEADER}");
    println!("cargo:rerun-if-changed={TABLE}");

    let out = std::env::var("OUT_DIR").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let hooks = hooks(&read(&dir, TABLE));
    let c_abi = c_abi(&read(&dir, HEADER));
    if hooks.is_empty() || c_abi.is_empty() {
        fail(&format!("no hooks in {TABLE} or no function in {HEADER}"));
    }
    let exports: Vec<&str> = hooks.iter().chain(&c_abi).map(String::as_str).collect();
    let mut script = String::from(
        "/* Exactly what liblambda_meter.so exports: the hooks (src/glue/table.rs) and the public\n \
         * C ABI (c-abi/lambda_meter.h). Written by build.rs. */\n{\n  global:\n",
    );
    for name in &exports {
        script.push_str(&format!("    {name};\n"));
    }
    script.push_str("  local:\n    *;\n};\n");
    write(&out, "exports.map", &script);
    write(&out, "hooks.txt", &lines(hooks.iter().map(String::as_str)));
    write(&out, "exports.txt", &lines(exports.iter().copied()));

    cc::Build::new()
        .file("c-abi/interpose.c")
        .file("c-abi/unwind.c")
        .include("c-abi")
        // Calls to libc through the GOT, not PLT stubs placed after all the code: one page
        // fewer for the constructor's calls to touch.
        .flag_if_supported("-fno-plt")
        .warnings(true)
        .extra_warnings(true)
        .cargo_metadata(false)
        .compile("lambda_meter_c");

    // Only the shared library gets the C objects: a test binary must never carry the
    // interposers, or it would hook its own libc calls.
    println!("cargo:rustc-cdylib-link-arg=-Wl,--whole-archive");
    println!("cargo:rustc-cdylib-link-arg={out}/liblambda_meter_c.a");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--no-whole-archive");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={out}/exports.map");
    println!("cargo:rustc-cdylib-link-arg=-ldl");
    // The library's own references to the functions it defines (the standard library's calls
    // to `write`, `close`, … reach the hooks either way, the library being first in the
    // process's search order) are bound at link time: about 30 fewer symbol lookups, and
    // relocations, in every process it is loaded into. (-Bsymbolic, not -Bsymbolic-functions,
    // which cargo-zigbuild's `zig cc` refuses: the library exports only functions, so the two
    // bind the same references.)
    println!("cargo:rustc-cdylib-link-arg=-Wl,-Bsymbolic");

    libc_without_loader(&out);

    // The functions that run, first and together (see link/hot-functions.py): a process that
    // never talks to the Runtime API maps one 64 KiB window of the library's code, not pages
    // all over it, and a runtime keeps about half of it resident, not all.
    println!("cargo:rerun-if-changed={HOT}");
    write(&out, "hot.ld", &hot_script(&read(&dir, HOT)));
    println!("cargo:rustc-cdylib-link-arg=-Wl,-T,{out}/hot.ld");
}

/// The library's references to the dynamic loader's own symbols (`__tls_get_addr`, which the
/// standard library's thread-locals call, and `_r_debug`) make the linker record
/// `ld-linux-*.so` as a library the library needs (glibc's `libc.so` link script names it
/// `AS_NEEDED`). A preloaded library's needs come into the process's symbol search order
/// right after the program's own: the loader would then come before most of a program's
/// libraries, not last, and each of their symbol lookups at load would look through it first
/// (curl with its 30 libraries: 9,000 lookups, 210,000 instructions a process). The loader is
/// in every process's search order anyway, so nothing needs naming it: where the host's C
/// compiler links the library, `-lc` finds a copy of the script in `OUT_DIR` that leaves it
/// out (those two symbols are then found at load, in the loader). Not where another linker
/// (cargo-zigbuild's, for the layer) or another machine's C library is used: `layer/assemble.sh`
/// takes the entry out of the layer's builds.
fn libc_without_loader(out: &str) {
    let zig = std::env::var("RUSTC_LINKER").is_ok_and(|l| l.contains("zig"));
    let native = std::env::var("HOST").ok() == std::env::var("TARGET").ok();
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if zig || !native || !linux_gnu {
        return;
    }
    let Ok(found) = std::process::Command::new("cc")
        .arg("-print-file-name=libc.so")
        .output()
    else {
        return;
    };
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    println!("cargo:rerun-if-changed={path}");
    let Ok(script) = std::fs::read_to_string(&path) else {
        return; // not a text script: nothing to leave out
    };
    let Some(kept) = without_loader(&script) else {
        return;
    };
    let dir = Path::new(out).join("libc-without-loader");
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    write(&dir.display().to_string(), "libc.so", &kept);
    println!("cargo:rustc-cdylib-link-arg=-L{}", dir.display());
}

/// A `libc.so` link script without its `AS_NEEDED ( …/ld-linux-… )` group; `None` when it has
/// none (or is not a script).
fn without_loader(script: &str) -> Option<String> {
    let at = script.find("AS_NEEDED")?;
    let open = at + script.get(at..)?.find('(')?;
    let close = open + script.get(open..)?.find(')')?;
    let group = script.get(open + 1..close)?;
    if !script.contains("GROUP") || !group.contains("ld-linux") {
        return None;
    }
    Some(format!(
        "/* glibc's libc.so without the dynamic loader (see build.rs). */\n{}{}",
        script.get(..at)?,
        script.get(close + 1..)?
    ))
}

const HOT: &str = "link/hot-functions.txt";

/// A linker script that lays out `.text`: the start files' code, the PLT stubs, `.init` and
/// `.fini`, then the sections of the listed functions in the list's order, then the rest. It
/// goes where the linker's default layout puts the code, after `.eh_frame` (`INSERT AFTER`:
/// the default layout otherwise, in LLD and in zig's LLD, which has no `.init`). A pattern no
/// section matches places nothing.
fn hot_script(list: &str) -> String {
    let mut script = String::from(
        "/* The functions that run, before the rest of the code (link/hot-functions.txt).\n \
         * Written by build.rs. */\nSECTIONS\n{\n  .text : {\n",
    );
    // The C runtime's start files (the constructor list's caller and its undoing at exit) and
    // the few stubs calls through the PLT take: every process runs them.
    script.push_str("    *crtbegin*.o(.text .text.*)\n    *(.plt .iplt)\n    KEEP(*(.init))\n    KEEP(*(.fini))\n");
    for name in list.lines().map(str::trim) {
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_$.*".contains(&b))
        {
            fail(&format!("{HOT}: not a section-name pattern: {name}"));
        }
        // A function the compiler deems cold (std's `#[cold]` ones) is in `.text.unlikely.`.
        script.push_str(&format!("    *(.text.{name} .text.unlikely.{name})\n"));
    }
    script.push_str("    *(.text .text.*)\n  }\n}\nINSERT AFTER .eh_frame;\n");
    script
}

/// The hooks of the table: each row starts with `fn NAME(` (a Rust hook) or `c fn NAME(` (a C
/// hook) on a line of its own, and nothing else in the file does but the macro's own patterns
/// (`fn $name:ident (…`).
fn hooks(table: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in table.lines().map(str::trim_start) {
        let Some(row) = line
            .strip_prefix("c fn ")
            .or_else(|| line.strip_prefix("fn "))
        else {
            continue;
        };
        if row.starts_with('$') {
            continue;
        }
        match row.split_once('(') {
            Some((name, _)) if is_identifier(name) => names.push(name.to_string()),
            _ => fail(&format!(
                "{TABLE}: a row that does not start `fn NAME(`: {line}"
            )),
        }
    }
    names
}

/// The functions the public header declares: a line of its own, not a comment, naming a
/// `lambda_meter_…` function.
fn c_abi(header: &str) -> Vec<String> {
    header
        .lines()
        .filter(|l| !l.starts_with(['#', ' ', '/', '*']) && l.trim_end().ends_with(");"))
        .filter_map(|l| l.split_once('(').map(|(head, _)| head))
        .filter_map(|head| head.rsplit([' ', '*']).next())
        .filter(|name| name.starts_with("lambda_meter_") && is_identifier(name))
        .map(String::from)
        .collect()
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn lines<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.map(|n| format!("{n}\n")).collect()
}

fn read(dir: &str, file: &str) -> String {
    std::fs::read_to_string(Path::new(dir).join(file))
        .unwrap_or_else(|e| fail(&format!("reading {file}: {e}")))
}

fn write(out: &str, file: &str, text: &str) {
    if let Err(e) = std::fs::write(Path::new(out).join(file), text) {
        fail(&format!("writing {file} in {out}: {e}"));
    }
}

fn fail(why: &str) -> ! {
    eprintln!("build.rs: {why}");
    std::process::exit(1)
}
