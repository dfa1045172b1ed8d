//! The process glue: everything that lives in the host's process — the hooks, the real libc
//! functions, the process's state, output, probes, endings — around the pure core
//! (`lambda_meter_core`). Test builds carry only the parts tested on their own.

#[cfg(not(test))]
pub mod alloc;
#[cfg(not(test))]
pub mod blocked;
#[cfg(not(test))]
pub mod channel;
#[cfg(not(test))]
pub mod deepbind;
pub mod deferred;
#[cfg(not(test))]
pub mod elf;
#[cfg(not(test))]
pub mod ending;
pub mod handoff;
#[cfg(not(test))]
pub mod hooks;
#[cfg(not(test))]
pub mod ledger;
#[cfg(not(test))]
pub mod lines;
#[cfg(not(test))]
pub mod output;
#[cfg(not(test))]
pub mod probes;
#[cfg(not(test))]
pub mod process;
#[cfg(not(test))]
pub mod real;
#[cfg(not(test))]
pub mod signals;
#[cfg(not(test))]
pub mod state;
pub mod sys;
#[cfg(not(test))]
pub mod table;
#[cfg(not(test))]
pub mod thread;
