//! lambda-meter's pure core: everything that decides what a record says, with no process
//! state and no I/O of its own. The preloaded library (the crate at the repository's top)
//! feeds it the bytes its hooks see and writes what it returns; unit tests feed it byte
//! streams, and `fuzz/` links it.
//!
//! In the order data flows: [`http`] parses each direction of a connection incrementally,
//! [`runtime_api`] classifies requests, [`engine`] keeps connections and hands invokes to the
//! [`tracker`], whose records [`emf`] encodes with values read through the metric catalog
//! ([`metrics`]) as [`settings`] say; [`journal`] is the format of the shared file of records a
//! process may not survive; [`custom`] checks the function's own values; [`downstream`] keeps
//! what each invoke waited on (fed by the library's ledger), and [`blocked`] what each thread
//! was blocked in when one timed out; [`cgroup`] names the files of the
//! environment's memory figure; [`fdtable`] is the lock-free bitmap the hooks test; [`text`]
//! and [`json`] bound and escape text; [`zeroed`] reserves buffers without writing them.

// No unsafe code in the core but where it is named: the journal's shared memory, buffers
// reserved zeroed, the C library's memchr behind `text::find_byte` and pthread_self behind
// `custom::thread_key` (and the test build's counting allocator).
#![deny(unsafe_code)]

pub mod blocked;
pub mod cgroup;
pub mod custom;
pub mod downstream;
pub mod emf;
pub mod engine;
pub mod fdtable;
pub mod http;
#[allow(unsafe_code)]
pub mod journal;
pub mod json;
pub mod metrics;
pub mod runtime_api;
pub mod settings;
pub mod text;
pub mod tracker;
#[allow(unsafe_code)]
pub mod zeroed;

// Checks of the core: allocation counts (tests only), and the property checks its tests and the
// fuzz targets share (the `props` feature, which fuzz/ turns on).
#[cfg(test)]
#[allow(unsafe_code)]
mod cost;
#[cfg(any(test, feature = "props"))]
pub mod props;
