//! The lock-free "is this fd a Runtime API socket?" bitmap, read on every hooked call.
//!
//! One bit per fd number below [`MAX_TRACKED_FD`]. Readers do a single relaxed atomic load;
//! writers are the engine, under its gate. The process's one set lives with the process state
//! (the library's `process::TRACKED`); the core holds no static of its own. Nothing here allocates, locks or logs, so the check
//! is safe anywhere, signal handlers included.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// fd numbers at or above this are never tracked (Lambda's limit is 1024 open files).
pub const MAX_TRACKED_FD: usize = 65536;
const WORDS: usize = MAX_TRACKED_FD / 64;

/// A set of fd numbers. See the module documentation.
pub struct FdBits {
    words: [AtomicU64; WORDS],
    /// Set once a bit was set (after it), cleared by [`FdBits::clear`] and
    /// [`FdBits::take_each`] (before they look): while it is false every word is zero, so the
    /// whole-set operations return without reading or writing the set's 8 KiB. A process that
    /// never tracks an fd (every process a runtime starts) never touches those pages: a
    /// forked child that clears its copy does not fault them in, and a `close_range` does not
    /// read them.
    used: AtomicBool,
}

impl FdBits {
    pub const fn new() -> Self {
        FdBits {
            words: [const { AtomicU64::new(0) }; WORDS],
            used: AtomicBool::new(false),
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

    /// Whether `fd` is tracked, given its word (`fd / 64`, computed by a caller that knows it is
    /// in range): one relaxed load. A word out of range is false.
    #[inline(always)]
    pub fn contains_in_word(&self, word: usize, fd: u32) -> bool {
        self.words
            .get(word)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1u64 << (fd % 64)) != 0)
    }

    /// Marks `fd` tracked. Returns false when the fd number is too large to track.
    pub fn insert(&self, fd: i32) -> bool {
        match Self::slot(fd).and_then(|(w, bit)| self.words.get(w).map(|a| (a, bit))) {
            Some((word, bit)) => {
                // The flag goes up before the bit, so that no copy of the set (a fork while
                // another thread is here) has a bit without it, and again after it, where a
                // clear on another thread took it in between. Both are read-modify-writes: a
                // clear's swap that reads either sees this bit too (release sequence).
                self.used.swap(true, Ordering::AcqRel);
                word.fetch_or(bit, Ordering::Relaxed);
                self.used.swap(true, Ordering::AcqRel);
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

    /// Whether a bit may be set, the flag cleared when it was set: read first, so that a set
    /// that was never used is not written to; taken with a swap, which sees the latest insert
    /// (whose bit the caller's pass then sees too).
    fn take_used(&self) -> bool {
        self.used.load(Ordering::Relaxed) && self.used.swap(false, Ordering::AcqRel)
    }

    pub fn clear(&self) {
        if !self.take_used() {
            return;
        }
        for w in &self.words {
            if w.load(Ordering::Relaxed) != 0 {
                w.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Empties the set, calling `f` with each fd that was in it (lock-free: each word is taken
    /// with one swap).
    pub fn take_each(&self, mut f: impl FnMut(i32)) {
        if !self.take_used() {
            return;
        }
        for (w, word) in self.words.iter().enumerate() {
            if word.load(Ordering::Relaxed) == 0 {
                continue;
            }
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
        if first > last || !self.used.load(Ordering::Acquire) {
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

    /// Whether any fd is tracked (scans the whole set, unless none was ever set since the
    /// last clear).
    pub fn is_empty(&self) -> bool {
        !self.used.load(Ordering::Acquire)
            || self.words.iter().all(|w| w.load(Ordering::Relaxed) == 0)
    }
}

impl Default for FdBits {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic, clippy::unwrap_used)]
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
    fn a_set_emptied_and_filled_again_reports_what_it_holds() {
        let s = FdBits::new();
        // Never used: every whole-set operation sees nothing.
        s.clear();
        s.take_each(|fd| panic!("took {fd} from an unused set"));
        s.each_in(0, u32::MAX, |fd| panic!("saw {fd} in an unused set"));
        assert!(s.is_empty());
        // Used, then its last fd removed: empty although the flag is still up.
        s.insert(5);
        s.remove(5);
        assert!(s.is_empty());
        // Filled again after each way of emptying it.
        s.insert(9);
        s.clear();
        assert!(s.is_empty() && !s.contains(9));
        s.insert(700);
        assert!(!s.is_empty() && s.contains(700));
        let mut seen = Vec::new();
        s.each_in(0, 1000, |fd| seen.push(fd));
        assert_eq!(seen, [700]);
        seen.clear();
        s.take_each(|fd| seen.push(fd));
        assert_eq!(seen, [700]);
        assert!(s.is_empty());
        s.insert(3);
        seen.clear();
        s.take_each(|fd| seen.push(fd));
        assert_eq!(seen, [3]);
        s.take_each(|fd| panic!("took {fd} twice"));
    }

    #[test]
    fn fds_inserted_while_another_thread_takes_them_are_each_taken_once() {
        // Three threads insert while a fourth takes: every fd is taken exactly once, by the
        // concurrent takes or by the last one, and no bit is ever left under a lowered flag
        // (which a clear or a take would skip).
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;
        for round in 0..200usize {
            let set = Arc::new(FdBits::new());
            let done = Arc::new(AtomicBool::new(false));
            let taker = {
                let (set, done) = (set.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while !done.load(Ordering::Acquire) {
                        set.take_each(|fd| got.push(fd));
                    }
                    got
                })
            };
            let fd_of =
                move |t: usize, i: usize| (((i * 3 + t) * 37 + round) % MAX_TRACKED_FD) as i32;
            let inserters: Vec<_> = (0..3)
                .map(|t| {
                    let set = set.clone();
                    std::thread::spawn(move || {
                        for i in 0..100 {
                            set.insert(fd_of(t, i));
                        }
                    })
                })
                .collect();
            for h in inserters {
                h.join().unwrap();
            }
            done.store(true, Ordering::Release);
            let mut got = taker.join().unwrap();
            let left_behind = !set.used.load(Ordering::Acquire)
                && set.words.iter().any(|w| w.load(Ordering::Relaxed) != 0);
            assert!(!left_behind, "round {round}: a bit under a lowered flag");
            set.take_each(|fd| got.push(fd));
            got.sort_unstable();
            let mut want: Vec<i32> = (0..3)
                .flat_map(|t| (0..100).map(move |i| fd_of(t, i)))
                .collect();
            want.sort_unstable();
            want.dedup();
            assert_eq!(got, want, "round {round}");
        }
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
