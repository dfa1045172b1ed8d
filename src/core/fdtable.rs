//! The lock-free "is this fd a Runtime API socket?" bitmap, read on every hooked call.
//!
//! One bit per fd number below [`MAX_TRACKED_FD`]. Readers do a single relaxed atomic load;
//! writers are the engine, under its gate. The process's one set lives with the process state
//! (the library's `process::TRACKED`); the core holds no static of its own. Nothing here allocates, locks or logs, so the check
//! is safe anywhere, signal handlers included.

use std::sync::atomic::{AtomicU64, Ordering};

/// fd numbers at or above this are never tracked (Lambda's limit is 1024 open files).
pub const MAX_TRACKED_FD: usize = 65536;
const WORDS: usize = MAX_TRACKED_FD / 64;

/// A set of fd numbers. See the module documentation.
pub struct FdBits {
    words: [AtomicU64; WORDS],
}

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

    /// Empties the set, calling `f` with each fd that was in it (lock-free: each word is taken
    /// with one swap).
    pub fn take_each(&self, mut f: impl FnMut(i32)) {
        for (w, word) in self.words.iter().enumerate() {
            let mut bits = word.swap(0, Ordering::AcqRel);
            while bits != 0 {
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                f((w * 64 + bit) as i32);
            }
        }
    }

    /// Calls `f` with each fd of the set in `first..=last` (lock-free reads).
    pub fn each_in(&self, first: u32, last: u32, mut f: impl FnMut(i32)) {
        let last = (last as usize).min(MAX_TRACKED_FD - 1);
        let first = first as usize;
        if first > last {
            return;
        }
        for w in first / 64..=last / 64 {
            let mut bits = self.words.get(w).map_or(0, |a| a.load(Ordering::Relaxed));
            while bits != 0 {
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let fd = w * 64 + bit;
                if (first..=last).contains(&fd) {
                    f(fd as i32);
                }
            }
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

    #[test]
    fn take_each_and_each_in() {
        let s = FdBits::new();
        for fd in [3, 64, 65, 700, 65535] {
            s.insert(fd);
        }
        let mut seen = Vec::new();
        s.each_in(60, 700, |fd| seen.push(fd));
        assert_eq!(seen, [64, 65, 700]);
        seen.clear();
        s.each_in(0, u32::MAX, |fd| seen.push(fd));
        assert_eq!(seen, [3, 64, 65, 700, 65535]);
        seen.clear();
        s.take_each(|fd| seen.push(fd));
        assert_eq!(seen, [3, 64, 65, 700, 65535]);
        assert!(s.is_empty());
    }
}
