//! lambda-meter: AWS Lambda metrics from inside the runtime process.
//!
//! How it works, in the order data flows:
//!
//! 1. The wrapper script (`wrapper/lambda-meter`, installed as `/opt/lambda-meter` and named by
//!    `AWS_LAMBDA_EXEC_WRAPPER`) puts this library in `LD_PRELOAD` and `exec`s the runtime.
//! 2. The constructor (in [`hooks`], an `.init_array` entry → [`process::init`]) reads the settings, resolves
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
//! 6. A finished invoke becomes one CloudWatch EMF line ([`emf`], its values read through the
//!    metric catalog, [`metrics`]), written with one `write()` through the real libc function
//!    ([`output`]).
//!
//! Modules 4–6 are the pure core, a crate of their own (`src/core`, `lambda_meter_core`) with
//! unit tests. Raw pointers and `unsafe` live in the process glue — [`hooks`], [`real`], [`elf`], [`output`], [`ending`], [`deepbind`], [`process`], [`probes`]
//! — and in the journal's shared mapping ([`journal`]); each use has its `// SAFETY:` line.
//! Test builds leave the hooks out entirely.

// The table of hooks (src/glue/table.rs) is walked a row at a time by macros, two levels of
// expansion per row at most (its own, then deepbind.rs's): room for about 120 rows.
#![recursion_limit = "256"]

// The pure core (src/core, its own crate): no process state, no I/O of its own; its modules
// are named here as the glue uses them.
pub use lambda_meter_core::{
    cgroup, custom, emf, engine, fdtable, http, journal, json, metrics, runtime_api, settings,
    text, tracker,
};

// The process glue (src/glue): the hooks, the real functions, the process's state, output,
// probes and endings, only in the real library (test builds carry no hooks and no
// constructor); the handoff's files and the deferred-work queue are tested on their own. Its
// modules are named at the crate's top, as they name each other.
mod glue;
#[cfg(not(test))]
use glue::{
    blocked, channel, deepbind, elf, ending, hooks, ledger, lines, output, probes, process, real,
    signals, state, table, thread,
};
pub use glue::{deferred, handoff, sys};

#[cfg(not(test))]
use std::ffi::{c_char, c_int};

/// The library's allocator: its large blocks mapped directly (see [`glue::alloc`]).
#[cfg(all(not(feature = "alloc-guard"), not(test)))]
#[global_allocator]
static ALLOC: glue::alloc::LibAlloc = glue::alloc::LibAlloc;

/// A test build (`--features alloc-guard`): Rust's allocator refuses every allocation, and
/// aborts at every free, once the process became a runtime (see
/// [`process::became_runtime`]) and while the environment's root gets ready at its first fork
/// (see [`process::preparing_root`]): a run with it shows that nothing of the library
/// allocates or frees there. A refused allocation aborts the process with Rust's own message.
#[cfg(all(feature = "alloc-guard", not(test)))]
mod alloc_guard {
    use crate::glue::alloc::LibAlloc as System;
    use std::alloc::{GlobalAlloc, Layout};

    struct Guard;

    fn refuse(what: &[u8]) -> bool {
        if crate::process::preparing_root() {
            let _ = crate::sys::write(2, b"lambda-meter alloc-guard: in the root's first fork: ");
        } else if !crate::process::became_runtime() {
            return false;
        }
        let _ = crate::sys::write(2, what);
        true
    }

    // SAFETY: before the process is a runtime (and outside the root's first fork) every call
    // goes to the system allocator as received; else allocations answer null (Rust reports
    // the failure) and a free aborts.
    unsafe impl GlobalAlloc for Guard {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if refuse(b"lambda-meter alloc-guard: allocation after the process became a runtime\n")
            {
                return std::ptr::null_mut();
            }
            // SAFETY: forwarded as received.
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if refuse(b"lambda-meter alloc-guard: allocation after the process became a runtime\n")
            {
                return std::ptr::null_mut();
            }
            // SAFETY: forwarded as received.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            if refuse(b"lambda-meter alloc-guard: free after the process became a runtime\n") {
                std::process::abort();
            }
            // SAFETY: forwarded as received.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if refuse(b"lambda-meter alloc-guard: allocation after the process became a runtime\n")
            {
                return std::ptr::null_mut();
            }
            // SAFETY: forwarded as received.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GUARD: Guard = Guard;
}

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
    c_int::from(process::activate())
}

/// A C string argument as text: `Err(Null)` for a null pointer, `Err(bad)` when it is not
/// UTF-8.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string that stays valid for the call.
#[cfg(not(test))]
unsafe fn text<'a>(p: *const c_char, bad: custom::Status) -> Result<&'a str, custom::Status> {
    if p.is_null() {
        return Err(custom::Status::Null);
    }
    // SAFETY: non-null, and NUL-terminated by the caller's contract (lambda_meter.h).
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| bad)
}

/// Public C ABI: adds `value` to custom metric `name` (`unit` one of CloudWatch's, or null for
/// `None`) on the invoke in progress. See `lambda_meter.h` for the status codes.
///
/// # Safety
/// `name` and `unit` are null or NUL-terminated strings.
#[cfg(not(test))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lambda_meter_metric(
    name: *const c_char,
    value: f64,
    unit: *const c_char,
) -> c_int {
    // SAFETY: as the caller guarantees.
    let name = unsafe { text(name, custom::Status::BadName) };
    let unit = match unit.is_null() {
        true => Ok(None),
        // SAFETY: as the caller guarantees.
        false => unsafe { text(unit, custom::Status::BadUnit) }.map(Some),
    };
    let status = match (name, unit) {
        (Ok(name), Ok(unit)) => {
            process::custom(|pool, c, taken| pool.metric(c, name, value, unit, taken))
        }
        (Err(s), _) | (_, Err(s)) => s,
    };
    status as c_int
}

/// A keyed C ABI call (dimension, property): both strings read, then `set` on the invoke.
///
/// # Safety
/// `key` and `value` are null or NUL-terminated strings.
#[cfg(not(test))]
unsafe fn keyed(
    key: *const c_char,
    value: *const c_char,
    set: impl FnOnce(
        &mut custom::Pool,
        &mut custom::Custom,
        &str,
        &str,
        &dyn Fn(&str) -> bool,
    ) -> custom::Status,
) -> c_int {
    // SAFETY: as the caller guarantees.
    let pair = unsafe {
        (
            text(key, custom::Status::BadName),
            text(value, custom::Status::BadValue),
        )
    };
    let status = match pair {
        (Ok(key), Ok(value)) => process::custom(|pool, c, taken| set(pool, c, key, value, taken)),
        (Err(s), _) | (_, Err(s)) => s,
    };
    status as c_int
}

/// Public C ABI: sets custom dimension `key` to `value` on the invoke in progress.
///
/// # Safety
/// `key` and `value` are null or NUL-terminated strings.
#[cfg(not(test))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lambda_meter_dimension(key: *const c_char, value: *const c_char) -> c_int {
    // SAFETY: as the caller guarantees.
    unsafe { keyed(key, value, |p, c, k, v, taken| p.dimension(c, k, v, taken)) }
}

/// Public C ABI: sets property `key` to `json_value` (one JSON value) on the invoke in
/// progress.
///
/// # Safety
/// `key` and `json_value` are null or NUL-terminated strings.
#[cfg(not(test))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lambda_meter_property(
    key: *const c_char,
    json_value: *const c_char,
) -> c_int {
    // SAFETY: as the caller guarantees.
    unsafe {
        keyed(key, json_value, |p, c, k, v, taken| {
            p.property(c, k, v, taken)
        })
    }
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
