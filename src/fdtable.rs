//! The lock-free "is this fd a Runtime API socket?" bitmap, read on every hooked call.
//!
//! One bit per fd number below [`MAX_TRACKED_FD`]. Readers do a single relaxed atomic load;
//! writers are the engine, under its lock. Nothing here allocates, locks or logs, so the check
//! is safe anywhere, signal handlers included.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::atomic::{AtomicU64, Ordering};

/// fd numbers at or above this are never tracked (Lambda's limit is 1024 open files).
pub const MAX_TRACKED_FD: usize = 65536;
const WORDS: usize = MAX_TRACKED_FD / 64;

/// A set of fd numbers. See the module documentation.
pub struct FdBits {
    words: [AtomicU64; WORDS],
}

/// The process's set of tracked fds.
pub static TRACKED: FdBits = FdBits::new();

impl FdBits {
    pub const fn new() -> Self {
        FdBits {
            words: [const { AtomicU64::new(0) }; WORDS],
        }
    }

    #[inline(always)]
    fn slot(fd: i32) -> Option<(usize, u64)> {
        let fd = usize::try_from(fd).ok()?;
        if fd >= MAX_TRACKED_FD {
            return None;
        }
        Some((fd / 64, 1u64 << (fd % 64)))
    }

    /// Whether `fd` is tracked: one relaxed load.
    #[inline(always)]
    pub fn contains(&self, fd: i32) -> bool {
        match Self::slot(fd).and_then(|(w, bit)| self.words.get(w).map(|a| (a, bit))) {
            Some((word, bit)) => word.load(Ordering::Relaxed) & bit != 0,
            None => false,
        }
    }

    /// Marks `fd` tracked. Returns false when the fd number is too large to track.
    pub fn insert(&self, fd: i32) -> bool {
        match Self::slot(fd).and_then(|(w, bit)| self.words.get(w).map(|a| (a, bit))) {
            Some((word, bit)) => {
                word.fetch_or(bit, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    pub fn remove(&self, fd: i32) {
        if let Some((word, bit)) =
            Self::slot(fd).and_then(|(w, bit)| self.words.get(w).map(|a| (a, bit)))
        {
            word.fetch_and(!bit, Ordering::Relaxed);
        }
    }

    pub fn clear(&self) {
        for w in &self.words {
            w.store(0, Ordering::Relaxed);
        }
    }

    /// Whether any fd is tracked (slow: scans the whole set).
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| w.load(Ordering::Relaxed) == 0)
    }
}

impl Default for FdBits {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_contains_remove() {
        let s = FdBits::new();
        assert!(s.is_empty());
        for fd in [0, 1, 63, 64, 1023, 65535] {
            assert!(!s.contains(fd));
            assert!(s.insert(fd));
            assert!(s.contains(fd));
        }
        assert!(!s.contains(2));
        assert!(!s.insert(65536));
        assert!(!s.insert(-1));
        assert!(!s.contains(-1));
        s.remove(63);
        assert!(!s.contains(63) && s.contains(64));
        s.clear();
        assert!(s.is_empty());
    }
}
