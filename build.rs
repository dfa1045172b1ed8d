//! Builds the C interposers (the variadic functions, and `syscall` before the library's
//! constructor ran; the constructor itself is Rust, in `src/glue/hooks.rs`) and links them into the
//! cdylib only, exporting exactly the symbols in `c-abi/exports.map`.

fn main() {
    println!("cargo:rerun-if-changed=c-abi/interpose.c");
    println!("cargo:rerun-if-changed=c-abi/lambda_meter.h");
    println!("cargo:rerun-if-changed=c-abi/exports.map");

    cc::Build::new()
        .file("c-abi/interpose.c")
        .include("c-abi")
        .warnings(true)
        .extra_warnings(true)
        .cargo_metadata(false)
        .compile("lambda_meter_c");

    let out = std::env::var("OUT_DIR").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    // Only the shared library gets the C objects: a test binary must never carry the
    // interposers, or it would hook its own libc calls.
    println!("cargo:rustc-cdylib-link-arg=-Wl,--whole-archive");
    println!("cargo:rustc-cdylib-link-arg={out}/liblambda_meter_c.a");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--no-whole-archive");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/c-abi/exports.map");
    println!("cargo:rustc-cdylib-link-arg=-ldl");
}
