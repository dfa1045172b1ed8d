//! Everything the library writes: EMF lines to stdout, warnings to stderr.
//!
//! Each line is one `write()` through the saved real `write`, so lines from other threads never
//! interleave inside it, and nothing goes through the host's buffered streams. Callers restore
//! the host's errno afterwards.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::real;
use std::sync::atomic::{AtomicU64, Ordering};

/// Records that could not be written (stdout closed, full and non-blocking, …).
pub static DROPPED_LINES: AtomicU64 = AtomicU64::new(0);

/// Writes `line` to `fd`, retrying on EINTR and finishing partial writes. Never blocks beyond
/// what the fd itself does; gives up on any other error.
pub fn write_line(fd: i32, line: &[u8]) -> bool {
    let write = real::write::get();
    let mut rest = line;
    while !rest.is_empty() {
        // SAFETY: `rest` is a live slice; write reads at most `rest.len()` bytes from it.
        let n = unsafe { write(fd, rest.as_ptr().cast(), rest.len()) };
        if n < 0 {
            // SAFETY: reading errno of the current thread.
            if unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            DROPPED_LINES.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        rest = rest.get(n as usize..).unwrap_or_default();
    }
    true
}

/// Writes one EMF record to stdout — in a per-request helper process, to the stdout of the
/// environment's root (the function's log), never to the helper's own stdout, which the
/// runtime may be capturing (`EVENT=$(curl …)`).
pub fn emit_record(line: &str) {
    match crate::probes::environment_root() {
        None => {
            write_line(libc::STDOUT_FILENO, line.as_bytes());
        }
        Some(root) => match std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/{root}/fd/1"))
        {
            Ok(f) => {
                use std::os::fd::AsRawFd;
                write_line(f.as_raw_fd(), line.as_bytes());
            }
            Err(_) => {
                DROPPED_LINES.fetch_add(1, Ordering::Relaxed);
            }
        },
    }
}

/// Writes one warning line to stderr: `lambda-meter: warning: …`.
pub fn warn(msg: &str) {
    let line = format!("lambda-meter: warning: {}\n", msg.replace('\n', " "));
    write_line(libc::STDERR_FILENO, line.as_bytes());
}
