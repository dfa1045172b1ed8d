//! The lock-free "is this fd a Runtime API socket?" bitmap, read on every hooked call.
//!
//! Three bits per fd number below [`MAX_TRACKED_FD`], each in a bitmap of its own: the set's
//! own (a Runtime API socket, for the process's set), the *other* one (a downstream connection
//! the function made, see `downstream`), and whether either is set, which is what the hooks'
//! fast test ([`FdBits::watched`]) reads: one relaxed load, as when there was one bitmap. Every
//! other operation is on the set's own bits but [`FdBits::clear`], which empties all. Writers
//! of the own bits are the engine, under its gate; the other bits are the downstream ledger's,
//! under its lock; each keeps the third in step (see [`FdBits::settle`]). The process's one
//! set lives with the process state (the library's `process::TRACKED`); the core holds no
//! static of its own. Nothing here allocates, locks or logs, so the check is safe anywhere,
//! signal handlers included.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// fd numbers at or above this are never tracked (Lambda's limit is 1024 open files).
pub const MAX_TRACKED_FD: usize = 65536;
const WORDS: usize = MAX_TRACKED_FD / 64;

/// Which bitmap of the set.
#[derive(Clone, Copy)]
enum Map {
    /// Either bit below: what the fast test reads.
    Watched = 0,
    Own = 1,
    Other = 2,
}

/// A set of fd numbers. See the module documentation.
pub struct FdBits {
    /// The three bitmaps, one after the other ([`Map`]).
    words: [AtomicU64; 3 * WORDS],
    /// Set once a bit was set (after it), cleared by [`FdBits::clear`] and
    /// [`FdBits::take_each`] (before they look): while it is false every word is zero, so the
    /// whole-set operations return without reading or writing the set's 24 KiB. A process that
    /// never tracks an fd (every process a runtime starts) never touches those pages: a
    /// forked child that clears its copy does not fault them in, and a `close_range` does not
    /// read them.
    used: AtomicBool,
}

impl FdBits {
    pub const fn new() -> Self {
        FdBits {
            words: [const { AtomicU64::new(0) }; 3 * WORDS],
            used: AtomicBool::new(false),
        }
    }

    /// `fd`'s word in each bitmap, and its bit.
    #[inline(always)]
    fn slot(fd: i32) -> Option<(usize, u64)> {
        let fd = usize::try_from(fd).ok()?;
        if fd >= MAX_TRACKED_FD {
            return None;
        }
        Some((fd / 64, 1u64 << (fd % 64)))
    }

    #[inline(always)]
    fn word(&self, map: Map, w: usize) -> Option<&AtomicU64> {
        self.words.get(map as usize * WORDS + w)
    }

    #[inline(always)]
    fn has(&self, map: Map, fd: i32) -> bool {
        match Self::slot(fd).and_then(|(w, bit)| self.word(map, w).map(|a| (a, bit))) {
            Some((word, bit)) => word.load(Ordering::Relaxed) & bit != 0,
            None => false,
        }
    }

    /// Whether `fd` is tracked: one relaxed load.
    #[inline(always)]
    pub fn contains(&self, fd: i32) -> bool {
        self.has(Map::Own, fd)
    }

    /// Whether `fd` has the other bit (see the module documentation): one relaxed load.
    #[inline(always)]
    pub fn contains_other(&self, fd: i32) -> bool {
        self.has(Map::Other, fd)
    }

    /// Whether `fd` has either bit: the hooks' fast test, one relaxed load.
    #[inline(always)]
    pub fn watched(&self, fd: i32) -> bool {
        self.has(Map::Watched, fd)
    }

    /// Whether `fd` has either bit, given its word (`fd / 64`, computed by a caller that knows
    /// it is in range): one relaxed load. A word out of range is false.
    #[inline(always)]
    pub fn watched_in_word(&self, word: usize, fd: u32) -> bool {
        self.words
            .get(word)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1u64 << (fd % 64)) != 0)
    }

    /// The word of an fd known to be below [`MAX_TRACKED_FD`].
    #[inline(always)]
    pub const fn word_of(fd: u32) -> usize {
        fd as usize / 64
    }

    /// Marks `fd` tracked. Returns false when the fd number is too large to track.
    pub fn insert(&self, fd: i32) -> bool {
        self.insert_in(Map::Own, fd)
    }

    /// Gives `fd` the other bit. False when the fd number is too large.
    pub fn insert_other(&self, fd: i32) -> bool {
        self.insert_in(Map::Other, fd)
    }

    pub fn remove(&self, fd: i32) {
        self.remove_in(Map::Own, fd);
    }

    pub fn remove_other(&self, fd: i32) {
        self.remove_in(Map::Other, fd);
    }

    fn insert_in(&self, map: Map, fd: i32) -> bool {
        let Some((w, bit)) = Self::slot(fd) else {
            return false;
        };
        let (Some(word), Some(watched)) = (self.word(map, w), self.word(Map::Watched, w)) else {
            return false;
        };
        // The flag goes up before the bits, so that no copy of the set (a fork while another
        // thread is here) has a bit without it, and again after them, where a clear on
        // another thread took it in between. All are read-modify-writes: a clear's swap that
        // reads either sees these bits too (release sequence). The watched bit goes up last:
        // see `settle`.
        self.used.swap(true, Ordering::AcqRel);
        word.fetch_or(bit, Ordering::SeqCst);
        watched.fetch_or(bit, Ordering::SeqCst);
        self.used.swap(true, Ordering::AcqRel);
        true
    }

    fn remove_in(&self, map: Map, fd: i32) {
        if let Some((w, bit)) = Self::slot(fd)
            && let Some(word) = self.word(map, w)
        {
            word.fetch_and(!bit, Ordering::SeqCst);
            self.settle(w, bit);
        }
    }

    /// After a bit of word `w` was taken from the own or the other bitmap: the watched bit
    /// goes too, unless the other still has it. A writer of the other bitmap may set its bit
    /// meanwhile: it sets the watched bit after its own, and this looks at both again after
    /// taking the watched bit away, so either that writer's watched bit comes after this
    /// one's removal, or this sees its bit and puts the watched one back.
    fn settle(&self, w: usize, bit: u64) {
        let (Some(own), Some(other), Some(watched)) = (
            self.word(Map::Own, w),
            self.word(Map::Other, w),
            self.word(Map::Watched, w),
        ) else {
            return;
        };
        let either = || (own.load(Ordering::SeqCst) | other.load(Ordering::SeqCst)) & bit != 0;
        if either() {
            return;
        }
        watched.fetch_and(!bit, Ordering::SeqCst);
        if either() {
            watched.fetch_or(bit, Ordering::SeqCst);
        }
    }

    /// Whether a bit may be set, the flag cleared when it was set: read first, so that a set
    /// that was never used is not written to; taken with a swap, which sees the latest insert
    /// (whose bit the caller's pass then sees too).
    fn take_used(&self) -> bool {
        self.used.load(Ordering::Relaxed) && self.used.swap(false, Ordering::AcqRel)
    }

    /// Empties the set, both bits of every fd.
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
    /// with one swap). Other bits stay.
    pub fn take_each(&self, mut f: impl FnMut(i32)) {
        if !self.take_used() {
            return;
        }
        // Whether bits stay: other bits, or watched bits an insert made meanwhile (its
        // watched bit can come after this pass took its own one: harmless, the fast test then
        // finds nothing, but the flag must stay up over it).
        let mut left = false;
        for w in 0..WORDS {
            let (Some(own), Some(other), Some(watched)) = (
                self.word(Map::Own, w),
                self.word(Map::Other, w),
                self.word(Map::Watched, w),
            ) else {
                continue;
            };
            if own.load(Ordering::Relaxed) != 0 {
                let mut bits = own.swap(0, Ordering::SeqCst);
                while bits != 0 {
                    let bit = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    self.settle(w, 1u64 << bit);
                    f((w * 64 + bit) as i32);
                }
            }
            left |= other.load(Ordering::SeqCst) != 0 || watched.load(Ordering::SeqCst) != 0;
        }
        if left {
            self.used.swap(true, Ordering::AcqRel);
        }
    }

    /// Calls `f` with each fd of the set in `first..=last` (lock-free reads).
    pub fn each_in(&self, first: u32, last: u32, f: impl FnMut(i32)) {
        self.each_with_in(Map::Own, first, last, f);
    }

    /// Calls `f` with each fd that has the other bit in `first..=last` (lock-free reads).
    pub fn each_other_in(&self, first: u32, last: u32, f: impl FnMut(i32)) {
        self.each_with_in(Map::Other, first, last, f);
    }

    fn each_with_in(&self, map: Map, first: u32, last: u32, mut f: impl FnMut(i32)) {
        let last = (last as usize).min(MAX_TRACKED_FD - 1);
        let first = first as usize;
        if first > last || !self.used.load(Ordering::Acquire) {
            return;
        }
        for w in first / 64..=last / 64 {
            let mut bits = self.word(map, w).map_or(0, |a| a.load(Ordering::Relaxed));
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

    /// Whether no fd is tracked (scans the own bitmap, unless none was ever set since the last
    /// clear). Other bits do not count.
    pub fn is_empty(&self) -> bool {
        !self.used.load(Ordering::Acquire)
            || (0..WORDS).all(|w| {
                self.word(Map::Own, w)
                    .is_none_or(|a| a.load(Ordering::Relaxed) == 0)
            })
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
    fn other_bits_are_apart_from_the_own_ones_but_watched_with_them() {
        let s = FdBits::new();
        for fd in [0, 31, 32, 65535] {
            assert!(s.insert_other(fd));
            assert!(s.contains_other(fd) && s.watched(fd) && !s.contains(fd));
            assert!(s.watched_in_word(FdBits::word_of(fd as u32), fd as u32));
        }
        assert!(!s.insert_other(65536) && !s.watched(65536) && !s.watched(-1));
        assert!(s.is_empty(), "other bits are not tracked fds");
        s.insert(31);
        assert!(s.contains(31) && s.contains_other(31));
        let mut seen = Vec::new();
        s.each_in(0, u32::MAX, |fd| seen.push(fd));
        assert_eq!(seen, [31]);
        seen.clear();
        s.each_other_in(1, 65535, |fd| seen.push(fd));
        assert_eq!(seen, [31, 32, 65535]);
        seen.clear();
        s.take_each(|fd| seen.push(fd));
        assert_eq!(seen, [31]);
        assert!(s.contains_other(31) && s.contains_other(65535) && !s.contains(31));
        s.remove_other(31);
        assert!(!s.watched(31) && s.watched(32));
        assert!(!s.watched(1) && !s.watched_in_word(FdBits::word_of(1), 1));
        s.clear();
        assert!(!s.watched(0) && !s.watched(32) && !s.watched(65535));
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
