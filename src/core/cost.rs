//! The engine's steady-state cost, counted deterministically: heap allocations per invoke on a
//! keep-alive connection with the journal attached, as in a runtime (allocation counts, never
//! timings). The test binary's allocator counts the allocations of the thread that asks.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::engine::Engine;
use crate::fdtable::FdBits;
use crate::journal::Owner;
use crate::runtime_api::ApiAddress;
use crate::settings::Settings;
use crate::tracker::{Probe, Reading};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    /// Allocations (alloc, alloc_zeroed, realloc) made by this thread while counting.
    static ALLOCATIONS: Cell<Option<u64>> = const { Cell::new(None) };
}

fn note() {
    let _ = ALLOCATIONS.try_with(|c| {
        if let Some(n) = c.get() {
            c.set(Some(n + 1));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only a
// const-initialised thread-local without a destructor (it never allocates).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded as received.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|c| c.set(Some(0)));
    f();
    ALLOCATIONS.with(|c| c.replace(None)).unwrap_or(0)
}

/// Runs `f` and fails when it allocated on this thread.
pub fn assert_no_allocation(f: impl FnOnce()) {
    let n = allocations(f);
    assert_eq!(n, 0, "{n} heap allocations where there must be none");
}

use crate::runtime_api::fixtures::{self, ACCEPTED, NEXT};

/// One invoke as the Python client's bytes go by: `/next`, its answer, the result, its answer;
/// what it puts in the outbox is written away.
fn invoke(e: &mut Engine, fd: i32, answer: &[u8], result: &[u8], p: &dyn Fn(Reading) -> Probe) {
    e.sending(fd, p);
    e.sent(fd, NEXT, p);
    e.received(fd, answer, p);
    e.sent(fd, result, p);
    e.received(fd, ACCEPTED, p);
    e.drain_output(&mut |_| {}, &mut |_| {});
}

/// Allocations per invoke in steady state: none (everything the engine needs is reserved when
/// it is made).
pub const ALLOCATIONS_PER_INVOKE_CEILING: u64 = 0;

#[test]
fn steady_state_invokes_allocate_at_most_the_ceiling() {
    let (settings, _) = Settings::from_env(
        &|k| match k {
            "AWS_LAMBDA_FUNCTION_NAME" => Some("orders".into()),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => Some("128".into()),
            "AWS_LAMBDA_FUNCTION_VERSION" => Some("$LATEST".into()),
            "AWS_LAMBDA_INITIALIZATION_TYPE" => Some("on-demand".into()),
            _ => None,
        },
        "python3.11",
    );
    let bits: &'static FdBits = Box::leak(Box::new(FdBits::new()));
    let mut e = Engine::try_new(
        settings,
        ApiAddress::parse("127.0.0.1:9001").unwrap(),
        bits,
        0,
    )
    .unwrap();
    let (journal, _) = crate::journal::in_memory();
    e.attach_journal(
        journal,
        Owner {
            pid: 4242,
            start_ticks: 1,
        },
    )
    .unwrap();
    let clock = Cell::new(1_000_000_000u64);
    let p = |_: Reading| {
        clock.set(clock.get() + 37_000);
        Probe {
            mono_ns: clock.get(),
            wall_ms: 1_790_000_000_000 + clock.get() / 1_000_000,
            cpu_ns: clock.get() / 2,
            max_rss_kb: 40_000,
            process_rss_kb: 0,
            gauges: None,
            env: None,
        }
    };
    e.connected(7, Some("127.0.0.1:9001".parse().unwrap()));
    let messages: Vec<(Vec<u8>, Vec<u8>)> = (0..200)
        .map(|i| {
            let id = format!("8f4e2a1c-0b6d-4f1e-9c3a-{i:012}");
            let body = "{\"action\":\"ok\"}";
            let answer = fixtures::event(&id, 1_790_000_900_000, body);
            let result = fixtures::result(
                &id,
                "response",
                "{}",
                "Accept: */*\r\nContent-Type: application/json\r\n",
            );
            (answer, result)
        })
        .collect();
    // Warm up: the first invokes size the buffers and tables.
    for (answer, result) in &messages[..100] {
        invoke(&mut e, 7, answer, result, &p);
    }
    let counted = allocations(|| {
        for (answer, result) in &messages[100..] {
            invoke(&mut e, 7, answer, result, &p);
        }
    });
    let per_invoke = counted as f64 / 100.0;
    eprintln!("allocations per steady-state invoke: {per_invoke}");
    assert!(
        per_invoke <= ALLOCATIONS_PER_INVOKE_CEILING as f64,
        "{per_invoke} allocations per invoke"
    );
}
