//! What each thread of the process is blocked in, for a timeout's record (the `blockedIn`
//! property, see `lambda_meter_core::blocked`): read by the thread that writes that record
//! from `/proc/self/task/<tid>/syscall`, which the kernel lets a process read of its own
//! threads. Nothing is hooked for it, and nothing is read until an invoke times out.
//!
//! Only system calls, reads of `/proc` and of the process's own memory through
//! `process_vm_readv` (the `pollfd` a thread waits on: a thread that returned meanwhile makes
//! it stale, never a fault), into buffers on the stack.

use crate::ledger;
use crate::process::TRACKED;
use crate::state::Reset;
use crate::sys;
use lambda_meter_core::blocked::{Blocked, FdAt, FdInfo, InSyscall, describe, parse};
use lambda_meter_core::text::Out;
use std::sync::atomic::{AtomicU32, Ordering};

/// The watchdog thread's id: its own wait is not the function's.
static WATCHDOG: AtomicU32 = AtomicU32::new(0);

/// Called by the watchdog thread as it starts.
pub fn note_watchdog() {
    WATCHDOG.store(sys::gettid(), Ordering::Relaxed);
}

/// In a forked child, the watchdog is not there (nor any other thread of the parent). (A page
/// of the library's is written only where the parent had one.)
pub fn forked_child() {
    WATCHDOG.reset_to(0, Ordering::Relaxed);
}

/// Renders, at `now_ns`, each thread's system call (but the calling thread's and the
/// watchdog's) into `out`; whether there was anything to say.
pub fn render(now_ns: u64, out: &mut Out) -> bool {
    let skip = [sys::gettid(), WATCHDOG.load(Ordering::Relaxed)];
    let mut blocked = Blocked::new();
    let _ = crate::probes::each_dir_entry(b"/proc/self/task\0", |name| {
        if let Some(tid) = decimal(name)
            && !skip.contains(&tid)
            && let Some(call) = syscall_of(tid)
        {
            let fd = fd_of(&call);
            ledger::describe_fd(fd, now_ns, |info| {
                let api = fd.is_some_and(|fd| TRACKED.contains(fd));
                let info = FdInfo {
                    runtime_api: api,
                    ..info
                };
                blocked.thread(out, tid, &call, fd.map(|fd| (fd, info)));
            });
        }
    });
    blocked.finish(out)
}

fn decimal(name: &[u8]) -> Option<u32> {
    if name.is_empty() || name.len() > 9 || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(name.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
}

/// Thread `tid`'s system call, where it is in one.
fn syscall_of(tid: u32) -> Option<InSyscall> {
    let mut path = [0u8; 64];
    let mut p = Out::new(&mut path);
    p.bytes(b"/proc/self/task/");
    p.decimal(u64::from(tid));
    p.bytes(b"/syscall\0");
    let len = p.len();
    let mut text = [0u8; 256];
    let text = crate::probes::read_file(path.get(..len)?, &mut text)?;
    parse(text)
}

/// The fd `call` waits on, where it has one.
fn fd_of(call: &InSyscall) -> Option<i32> {
    let (_, at) = describe(call.nr)?;
    let fd = match at {
        FdAt::None => return None,
        FdAt::First => call.args[0],
        FdAt::Poll => {
            // One entry only: of several, which one matters cannot be told.
            if call.args[1] != 1 {
                return None;
            }
            let mut entry = [0u8; 4];
            sys::read_own(call.args[0] as usize, &mut entry).ok()?;
            u64::from(u32::from_ne_bytes(entry))
        }
    };
    // (An int in a register: its low 32 bits.)
    let fd = fd as u32 as i32;
    (fd >= 0).then_some(fd)
}
