//! The custom-metrics channel file (`LAMBDA_METER_CHANNEL`): the language shims append one
//! JSON line per value (open, append, close: never an fd kept), and the library reads what is
//! new when it makes a record.
//!
//! The file stays bounded: once a reader has read all of it and it holds [`ROTATE_AT`] bytes
//! or more, the reader renames it to `<path>.old` (replacing the generation before). A shim's
//! next append creates a fresh file. A line a shim appended to the old file just as it was
//! renamed is not lost: every reader that was reading that file (known by its inode) reads it
//! to its end once more before it moves on. So at most two generations exist, each about
//! [`ROTATE_AT`] bytes.
//!
//! Raw system calls only (see [`crate::sys`]): this runs on hook paths.

use crate::sys;
use std::ffi::CString;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The size from which a file read to its end is rotated.
pub const ROTATE_AT: u64 = 256 * 1024;

/// The channel's path and the old generation's, NUL-terminated.
struct Paths {
    now: CString,
    old: CString,
}

static PATHS: OnceLock<Paths> = OnceLock::new();

/// The file this process reads (its inode; 0: none yet), and how far. A forked child reads on
/// from its parent's place.
static INODE: AtomicU64 = AtomicU64::new(0);
static OFFSET: AtomicU64 = AtomicU64::new(0);

/// Names the channel (at load, from the environment). Reading starts at its beginning: lines
/// of other processes carry their pid or another invoke's request id and are left alone (a
/// shell runtime's result is posted by a process that did not exist when the handler wrote its
/// values).
pub fn configure(path: Vec<u8>) {
    let mut old = path.clone();
    old.extend_from_slice(b".old");
    if let (Ok(now), Ok(old)) = (CString::new(path), CString::new(old)) {
        let _ = PATHS.set(Paths { now, old });
    }
}

pub fn is_configured() -> bool {
    PATHS.get().is_some()
}

/// Reads the whole lines appended to `path` (inode `inode`, `size` bytes) from `at`: the
/// newest that fit `buf`. Returns the bytes kept in `buf` and the offset read to.
fn read_lines(path: &[u8], at: u64, size: u64, buf: &mut [u8]) -> (usize, u64) {
    if size <= at || buf.is_empty() {
        return (0, at);
    }
    // The newest bytes the buffer holds at most: an ending invoke's values are at the end.
    let from = at.max(size.saturating_sub(buf.len() as u64));
    let want = (size - from).min(buf.len() as u64) as usize;
    let Ok(fd) = sys::open(path, libc::O_RDONLY | libc::O_CLOEXEC, 0) else {
        return (0, at);
    };
    let read = sys::pread(fd as i32, buf.get_mut(..want).unwrap_or_default(), from).unwrap_or(0);
    let _ = sys::close(fd as i32);
    let got = buf.get(..read).unwrap_or_default();
    // Whole lines only: a line being written is read next time, and one cut by the window is
    // skipped.
    let whole = got.iter().rposition(|c| *c == b'\n').map_or(0, |i| i + 1);
    let skip = if from > at {
        got.iter()
            .position(|c| *c == b'\n')
            .map_or(whole, |i| i + 1)
    } else {
        0
    };
    let to = from + whole as u64;
    if skip >= whole {
        return (0, to);
    }
    buf.copy_within(skip..whole, 0);
    (whole - skip, to)
}

/// What was appended to the channel since the last call (whole lines) into `buf`. One `stat`
/// when nothing was; an open, a `pread` and a close for each file that has new lines; a
/// `rename` when the file read to its end is due to rotate.
pub fn read_new(buf: &mut [u8]) -> usize {
    let Some(paths) = PATHS.get() else {
        return 0;
    };
    let mut inode = INODE.load(Ordering::Relaxed);
    let mut offset = OFFSET.load(Ordering::Relaxed);
    let mut kept = 0;
    let now = sys::stat(paths.now.as_bytes_with_nul()).ok();
    if inode != 0 && now.as_ref().is_none_or(|st| st.st_ino != inode) {
        // The file this process was reading was rotated (by it or another reader): its last
        // lines are read from the old generation, if that is still it.
        if let Ok(st) = sys::stat(paths.old.as_bytes_with_nul())
            && st.st_ino == inode
        {
            let size = st.st_size.max(0) as u64;
            let (n, _) = read_lines(paths.old.as_bytes_with_nul(), offset, size, buf);
            kept = n;
        }
        inode = 0;
        offset = 0;
    }
    if let Some(st) = now {
        if inode == 0 {
            inode = st.st_ino;
            offset = 0;
        }
        let size = st.st_size.max(0) as u64;
        let (n, to) = read_lines(
            paths.now.as_bytes_with_nul(),
            offset,
            size,
            buf.get_mut(kept..).unwrap_or_default(),
        );
        kept += n;
        offset = to;
        if offset >= size && size >= ROTATE_AT {
            // Still this process's file (by its inode), under the old name: next time it is
            // read to its end once more (a shim's append may have raced the rename), then the
            // new one.
            let _ = sys::rename(paths.now.as_bytes_with_nul(), paths.old.as_bytes_with_nul());
        }
    }
    INODE.store(inode, Ordering::Relaxed);
    OFFSET.store(offset, Ordering::Relaxed);
    kept
}
