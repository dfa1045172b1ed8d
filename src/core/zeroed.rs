//! Buffers reserved zeroed without being written: the engine's record, outbox and channel
//! buffers are hundreds of KiB, of which an invoke uses a few; `Vec::resize` would write (and
//! so make resident) every page. `alloc_zeroed` gets fresh pages from the allocator, which the
//! kernel zeroes when they are first touched.

/// `n` zero bytes, or `None` when the memory cannot be had.
pub fn zeroed(n: usize) -> Option<Vec<u8>> {
    if n == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<u8>(n).ok()?;
    // SAFETY: the layout's size is not zero.
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` is the global allocator's, for this layout (align 1, `n` bytes), and its `n`
    // bytes are initialized (zero): a vector of length and capacity `n` owns it.
    Some(unsafe { Vec::from_raw_parts(p, n, n) })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    #[test]
    fn zeroed_buffers_are_zero_and_usable() {
        for n in [0, 1, 4096, 300 * 1024] {
            let mut v = super::zeroed(n).unwrap();
            assert_eq!(v.len(), n);
            assert!(v.iter().all(|b| *b == 0));
            if n > 0 {
                v[n - 1] = 7;
                v.truncate(1);
                v.shrink_to_fit();
            }
        }
    }
}
