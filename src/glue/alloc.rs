//! The library's own allocator (Rust's global allocator in the preloaded library only; the
//! host's allocations never come here). Large blocks — the engine's buffers, reserved once
//! when the process first talks to the Runtime API — are cut from anonymous mappings of the
//! library's own, never reused, so a page of them that is never written is never resident;
//! everything else goes to the system allocator.
//!
//! Through `malloc`, whether a large block is mapped depends on the host: glibc takes a block
//! below its *dynamic* mmap threshold (raised by the host's own frees of large blocks, as
//! Python's) from its heap, where `calloc` clears it byte by byte — 320 KiB of zeroed record
//! buffers were resident in a Python runtime for that alone. A mapping is also never shared
//! with the host's heap (no fragmentation of it, nothing for `malloc_trim` to give back).
//!
//! Nothing here runs once the process became a runtime (the library no longer allocates
//! then, see [`crate::process::became_runtime`]).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// Blocks of this size or more are mapped.
const DIRECT: usize = 64 * 1024;
const PAGE: usize = 4096;

pub struct LibAlloc;

fn direct(layout: &Layout) -> bool {
    layout.size() >= DIRECT && layout.align() <= PAGE
}

fn mapped_len(size: usize) -> usize {
    size.div_ceil(PAGE).saturating_mul(PAGE)
}

/// Large blocks are cut from mappings of this size, one after the other (the engine's dozen
/// buffers, made at once, take two mappings instead of a dozen: each is a system call and an
/// area the kernel keeps). Under 2 MiB, so that no part of one is ever a transparent huge page.
const CHUNK: usize = 2 * 1024 * 1024 - PAGE;

/// The chunk being cut: its first page's number (address / [`PAGE`]) above 16 bits, the pages
/// used below. One word, so that a block is taken with one compare-and-swap. 0: none yet.
static CHUNK_STATE: AtomicU64 = AtomicU64::new(0);

/// `size` bytes of fresh, zeroed, page-aligned memory, or null. (Out of line, as the other
/// paths for large blocks: the allocator is inlined wherever the library allocates.) A block
/// is given back with `munmap` wherever it came from: in a chunk, that range alone goes.
#[cold]
#[inline(never)]
fn map(size: usize) -> *mut u8 {
    let len = mapped_len(size);
    if len > CHUNK {
        return map_fresh(len);
    }
    let pages = (len / PAGE) as u64;
    loop {
        let state = CHUNK_STATE.load(Ordering::Acquire);
        let (first, used) = (state >> 16, state & 0xffff);
        if state != 0 && (used + pages) as usize * PAGE <= CHUNK {
            if CHUNK_STATE
                .compare_exchange(state, state + pages, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return ((first + used) as usize * PAGE) as *mut u8;
            }
            continue;
        }
        let chunk = map_fresh(CHUNK);
        if chunk.is_null() {
            return map_fresh(len);
        }
        let fresh = ((chunk as usize / PAGE) as u64) << 16 | pages;
        if CHUNK_STATE
            .compare_exchange(state, fresh, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return chunk;
        }
        // Another thread put a new chunk in place meanwhile: cut from that one.
        unmap(chunk, CHUNK);
    }
}

/// A mapping of its own of `len` bytes, or null.
fn map_fresh(len: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping at an address the kernel picks; nothing else is
    // touched.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

// SAFETY: a direct block is a whole mapping of its own, given back whole with the same
// (rounded) length its layout gives; every other block is the system allocator's, with the
// layout it was made with. `realloc` moving a block between the two copies what both hold.
unsafe impl GlobalAlloc for LibAlloc {
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if direct(&layout) {
            return map(layout.size());
        }
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }

    #[inline(never)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if direct(&layout) {
            // A fresh anonymous mapping reads as zeros: nothing is written.
            return map(layout.size());
        }
        // SAFETY: forwarded as received.
        unsafe { System.alloc_zeroed(layout) }
    }

    #[inline(never)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if direct(&layout) {
            return unmap(ptr, layout.size());
        }
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }

    #[inline(never)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size`, rounded up to `layout.align()`, does not
        // overflow isize.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !direct(&layout) && !direct(&new_layout) {
            // SAFETY: forwarded as received.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: as this function's own contract.
        unsafe { moved(ptr, layout, new_layout) }
    }
}

/// Gives back a direct block of `size` bytes at `ptr`.
#[cold]
#[inline(never)]
fn unmap(ptr: *mut u8, size: usize) {
    // SAFETY: `ptr` is the start of a mapping of this length made by `map` (the caller's
    // layout is the one the block was allocated with).
    unsafe { libc::munmap(ptr.cast(), mapped_len(size)) };
}

/// `realloc` where the old or the new block is direct: a new block, the bytes copied, the old
/// one given back.
///
/// # Safety
/// As [`GlobalAlloc::realloc`]: `ptr` was allocated with `layout`, `new_layout` has the same
/// alignment and a non-zero size.
#[cold]
#[inline(never)]
unsafe fn moved(ptr: *mut u8, layout: Layout, new_layout: Layout) -> *mut u8 {
    // SAFETY: a valid layout of non-zero size.
    let new = unsafe { LibAlloc.alloc(new_layout) };
    if !new.is_null() {
        // SAFETY: both blocks hold at least the smaller size; they do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_layout.size()));
            LibAlloc.dealloc(ptr, layout);
        }
    }
    new
}
