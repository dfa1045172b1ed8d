//! The library's state in the process, in one place: every value that changes while it runs
//! is a field of [`State`] (through the part of the module that owns it), and
//! [`State::forked_child`] decides for each what a forked child keeps. Each part's
//! `forked_child` names every one of its fields, so a field added without that decision does
//! not compile.
//!
//! Not here: values fixed before any hook runs (the real libc functions of `real.rs`,
//! `c-abi`'s resolved pointers); `c-abi`'s `lm_deep_pending` (a deep-bound load pending in the
//! parent is pending in the child too: the same objects are loaded); per-thread values (the
//! gate's frame canary, the custom-metrics thread key); the core's fd table
//! (`crate::process::TRACKED`), which the engine keeps and resets with itself; and what the
//! hooks kept for the engine's next entry (`crate::process::KEPT`, all zero at load, so in
//! `.bss`: this state's non-zero initial values put all of it in `.data`), which
//! `ProcessState::forked_child` clears.

use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

/// A store that leaves the atomic alone when it already holds the value: what a forked child
/// uses to reset its state. Every page of the library written after `fork` is a copy-on-write
/// fault, in the child and again in the parent at its next write; a child of a process the
/// library never became active in (a shell's subshells, the runtime's helpers) finds every
/// value already what it sets, and writes no page.
pub trait Reset<T> {
    fn reset_to(&self, value: T, order: Ordering);
}

macro_rules! reset_impl {
    ($($atomic:ty => $t:ty),* $(,)?) => {$(
        impl Reset<$t> for $atomic {
            #[inline]
            fn reset_to(&self, value: $t, order: Ordering) {
                if self.load(Ordering::Relaxed) != value {
                    self.store(value, order);
                }
            }
        }
    )*};
}

reset_impl!(
    AtomicBool => bool,
    AtomicU8 => u8,
    AtomicI32 => i32,
    AtomicU32 => u32,
    AtomicU64 => u64,
    AtomicUsize => usize,
);

impl<T> Reset<*mut T> for AtomicPtr<T> {
    #[inline]
    fn reset_to(&self, value: *mut T, order: Ordering) {
        if self.load(Ordering::Relaxed) != value {
            self.store(value, order);
        }
    }
}

/// Everything the library keeps per process, by the module that owns it.
pub struct State {
    pub process: crate::process::ProcessState,
    pub streams: crate::hooks::StreamState,
    pub channel: crate::channel::ChannelState,
    pub probes: crate::probes::ProbeState,
    pub ending: crate::ending::EndingState,
    pub signals: crate::signals::SignalState,
    pub output: crate::output::OutputState,
    pub deepbind: crate::deepbind::DeepBindState,
    pub lines: crate::lines::LinesState,
}

/// The one instance.
pub static STATE: State = State::new();

impl State {
    const fn new() -> State {
        State {
            process: crate::process::ProcessState::new(),
            streams: crate::hooks::StreamState::new(),
            channel: crate::channel::ChannelState::new(),
            probes: crate::probes::ProbeState::new(),
            ending: crate::ending::EndingState::new(),
            signals: crate::signals::SignalState::new(),
            output: crate::output::OutputState::new(),
            deepbind: crate::deepbind::DeepBindState::new(),
            lines: crate::lines::LinesState::new(),
        }
    }

    /// In a forked child (`pid`), before anything else of the library runs there: what each
    /// part keeps, decided field by field. The child is a runtime of its own, never a
    /// per-request helper; it has no thread of ours, and follows nothing it inherited.
    pub fn forked_child(&self, pid: u32) {
        let State {
            process,
            streams,
            channel,
            probes,
            ending,
            signals,
            output,
            deepbind,
            lines,
        } = self;
        process.forked_child();
        streams.forked_child();
        channel.forked_child(pid);
        probes.forked_child(pid);
        ending.forked_child();
        signals.forked_child();
        output.forked_child();
        deepbind.forked_child();
        lines.forked_child();
    }
}
