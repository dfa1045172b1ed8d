//! lambda-meter: AWS Lambda metrics from inside the runtime process.
//!
//! How it works, in the order data flows:
//!
//! 1. The wrapper script (`wrapper/lambda-meter`, installed as `/opt/lambda-meter` and named by
//!    `AWS_LAMBDA_EXEC_WRAPPER`) puts this library in `LD_PRELOAD` and `exec`s the runtime.
//! 2. The constructor (`c-abi/interpose.c` → [`process::init`]) reads the settings, resolves
//!    every real libc function once ([`real`]) and, when `AWS_LAMBDA_RUNTIME_API` is set and
//!    usable, becomes active. Anywhere else it stays passive and every hook passes through.
//! 3. [`hooks`] interposes the socket and fd calls. `connect` recognises the Runtime API socket
//!    by address and marks its fd in a lock-free bitmap ([`fdtable`]). For every other fd a
//!    hook is the real call plus one atomic load.
//! 4. Bytes the host really wrote to or read from a tracked fd go to the [`engine`], which runs
//!    one incremental HTTP/1.1 parser per direction per connection ([`http`]) and classifies
//!    each request by path ([`runtime_api`]).
//! 5. The invoke tracker ([`tracker`]) keys invokes by request id: the `/next` answer starts
//!    one, the `/response` or `/error` request ends it, on any connection or thread. CPU time,
//!    memory and clocks come from [`probes`].
//! 6. A finished invoke becomes one CloudWatch EMF line ([`emf`]), written with one `write()`
//!    through the real libc function ([`output`]).
//!
//! Modules 4–6 are plain safe Rust with unit tests; only [`hooks`] and [`real`] touch raw
//! pointers. Test builds leave the hooks out entirely.

#[cfg(test)]
mod cost;
pub mod deferred;
pub mod emf;
pub mod engine;
pub mod fdtable;
pub mod handoff;
pub mod http;
pub mod journal;
#[cfg(test)]
mod props;
pub mod runtime_api;
pub mod settings;
pub mod tracker;

// The process glue: only in the real library. Test builds carry no hooks and no constructor.
#[cfg(not(test))]
mod deepbind;
#[cfg(not(test))]
mod ending;
#[cfg(not(test))]
mod hooks;
#[cfg(not(test))]
mod output;
#[cfg(not(test))]
mod probes;
#[cfg(not(test))]
mod process;
#[cfg(not(test))]
mod real;

#[cfg(not(test))]
use std::ffi::{c_char, c_int};

/// The library version, for the public C ABI.
const VERSION: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
) {
    Ok(v) => v,
    Err(_) => c"unknown",
};

/// Public C ABI: the library version (static storage).
#[cfg(not(test))]
#[unsafe(no_mangle)]
pub extern "C" fn lambda_meter_version() -> *const c_char {
    VERSION.as_ptr()
}

/// Public C ABI: 1 when this process is being metered.
#[cfg(not(test))]
#[unsafe(no_mangle)]
pub extern "C" fn lambda_meter_active() -> c_int {
    c_int::from(process::is_active())
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_is_the_crate_version() {
        assert_eq!(
            super::VERSION.to_str().ok(),
            Some(env!("CARGO_PKG_VERSION"))
        );
    }
}
