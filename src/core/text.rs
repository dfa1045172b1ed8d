//! Text bounded to a length in bytes, cut at a character boundary: every value from the
//! environment or the wire is bounded before it reaches a record.
//!
//! Also the two text types the core keeps instead of `String`, so that nothing it holds or
//! moves after the process became a runtime owns heap memory: [`FixedStr`], a string inline in
//! its owner, and [`Out`], a writer into a byte buffer reserved in advance.

/// `s` cut to at most `max` bytes at a character boundary, borrowed (no allocation).
pub fn bounded_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// [`bounded_str`], owned.
pub fn bounded(s: &str, max: usize) -> String {
    bounded_str(s, max).to_string()
}

/// `bytes` cut to at most `max` bytes, and to its longest UTF-8 prefix.
pub fn utf8_prefix(bytes: &[u8], max: usize) -> &str {
    let bytes = bytes.get(..bytes.len().min(max)).unwrap_or_default();
    if let Some(ascii) = as_ascii(bytes) {
        return ascii;
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(bytes.get(..e.valid_up_to()).unwrap_or_default())
            .unwrap_or_default(),
    }
}

/// `bytes` as text when every byte is ASCII (the ids and values the wire brings), checked 16
/// bytes a step: a quicker test than a full UTF-8 check, which the rest get.
#[allow(unsafe_code)]
pub fn as_ascii(bytes: &[u8]) -> Option<&str> {
    #[cfg(target_arch = "x86_64")]
    let high = {
        use std::arch::x86_64::_mm_movemask_epi8;
        // SAFETY: SSE2 is part of every x86_64 CPU; the intrinsic touches registers only.
        find_by_blocks(
            bytes,
            |b| unsafe { _mm_movemask_epi8(b) as u32 },
            |short| find_by_words(short, |w| w & HIGHS, |b| b >= 0x80),
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let high = find_by_words(bytes, |w| w & HIGHS, |b| b >= 0x80);
    if high.is_some() {
        return None;
    }
    // SAFETY: every byte is below 0x80: ASCII, which is UTF-8.
    Some(unsafe { std::str::from_utf8_unchecked(bytes) })
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` that is zero (the lowest flagged byte is always a true
/// one; a byte above a true one may be flagged too).
#[inline(always)]
fn zero_bytes(w: u64) -> u64 {
    w.wrapping_sub(ONES) & !w & HIGHS
}

/// The first byte of `hay` that `is` says, eight bytes at a step: `flagged` gives a word's
/// candidates (the lowest flagged byte must be a true one).
#[inline(always)]
fn find_by_words(
    hay: &[u8],
    flagged: impl Fn(u64) -> u64,
    is: impl Fn(u8) -> bool,
) -> Option<usize> {
    let mut words = hay.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let bits = flagged(u64::from_le_bytes(
            <[u8; 8]>::try_from(word).unwrap_or_default(),
        ));
        if bits != 0 {
            return Some(at + (bits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|b| is(*b))
        .map(|i| at + i)
}

/// Haystacks up to this long are searched 16 bytes a step inline (SSE2); longer ones by the C
/// library's memchr, whose wider steps pay for its fixed cost only there.
#[cfg(target_arch = "x86_64")]
const INLINE_SEARCH: usize = 128;

/// Where `needle` first occurs in `hay` (the parser skips header lines and values it does not
/// keep with it, instead of a state change per byte).
#[allow(unsafe_code)]
#[inline]
pub fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if hay.len() <= INLINE_SEARCH {
        use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set1_epi8};
        // SAFETY (here and in the closure): SSE2 is part of every x86_64 CPU; these
        // intrinsics touch registers only.
        let n = unsafe { _mm_set1_epi8(needle as i8) };
        return find_by_blocks(
            hay,
            |b| unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(b, n)) as u32 },
            |hay| {
                let pattern = ONES * u64::from(needle);
                find_by_words(hay, |w| zero_bytes(w ^ pattern), |b| b == needle)
            },
        );
    }
    // The C library's memchr reads 32 or 64 bytes a step with vector instructions; it touches
    // nothing but `hay`, so it is safe wherever a hook runs.
    // SAFETY: `hay` is valid for `hay.len()` bytes; memchr reads no byte beyond them.
    let p = unsafe { libc::memchr(hay.as_ptr().cast(), i32::from(needle), hay.len()) };
    (!p.is_null()).then(|| p as usize - hay.as_ptr() as usize)
}

/// The first byte of `hay` that `flagged` marks in the 16-bit mask it makes of a 16-byte block,
/// a block at a step (SSE2, which every x86_64 CPU has); the last block is the one that ends
/// with `hay`, its bytes already looked at masked off. Haystacks shorter than a block go to
/// `short`.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline(always)]
fn find_by_blocks(
    hay: &[u8],
    flagged: impl Fn(std::arch::x86_64::__m128i) -> u32,
    short: impl FnOnce(&[u8]) -> Option<usize>,
) -> Option<usize> {
    use std::arch::x86_64::_mm_loadu_si128;
    let len = hay.len();
    if len < 16 {
        return short(hay);
    }
    let p = hay.as_ptr();
    let mut at = 0;
    while at + 16 <= len {
        // SAFETY: `at + 16 <= len`: the 16 bytes read are `hay`'s (an unaligned load).
        let bits = flagged(unsafe { _mm_loadu_si128(p.add(at).cast()) });
        if bits != 0 {
            return Some(at + bits.trailing_zeros() as usize);
        }
        at += 16;
    }
    if at < len {
        let last = len - 16;
        // SAFETY: `last + 16 == len`: the 16 bytes read are `hay`'s.
        let bits = flagged(unsafe { _mm_loadu_si128(p.add(last).cast()) }) >> (at - last);
        if bits != 0 {
            return Some(at + bits.trailing_zeros() as usize);
        }
    }
    None
}

/// Where the first byte below `limit` (at most 128) is in `hay`: the journal's markers in a
/// prepared record.
pub fn find_below(limit: u8, hay: &[u8]) -> Option<usize> {
    let limit = limit.min(128);
    let low = ONES * u64::from(limit);
    find_by_words(hay, |w| w.wrapping_sub(low) & !w & HIGHS, |b| b < limit)
}

/// Where the first byte that ends an HTTP token is in `hay`: a space, a control byte (DEL
/// included), or `stop`.
pub fn find_token_end(stop: u8, hay: &[u8]) -> Option<usize> {
    find_below_or(hay, 0x21, 0x7f, stop)
}

/// Where the first byte JSON escapes (a control byte, `"` or `\\`) is in `hay`.
pub fn find_json_special(hay: &[u8]) -> Option<usize> {
    find_below_or(hay, 0x20, b'"', b'\\')
}

/// Where the first byte below `limit` (1 to 128), or equal to `a` or `b`, is in `hay`: 16
/// bytes a step on x86_64 (SSE2), a word at a time elsewhere and in shorter haystacks.
#[allow(unsafe_code)]
#[inline(always)]
fn find_below_or(hay: &[u8], limit: u8, a: u8, b: u8) -> Option<usize> {
    let limit = limit.clamp(1, 128);
    let words = |hay: &[u8]| {
        let (low, a_s, b_s) = (
            ONES * u64::from(limit),
            ONES * u64::from(a),
            ONES * u64::from(b),
        );
        // Each test's lowest flagged byte is a true one, so the lowest of all three is.
        find_by_words(
            hay,
            |w| (w.wrapping_sub(low) & !w & HIGHS) | zero_bytes(w ^ a_s) | zero_bytes(w ^ b_s),
            |x| x < limit || x == a || x == b,
        )
    };
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        // SAFETY (here and in the closure): SSE2 is part of every x86_64 CPU; these
        // intrinsics touch registers only.
        let (top, a_v, b_v) = unsafe {
            (
                _mm_set1_epi8((limit - 1) as i8),
                _mm_set1_epi8(a as i8),
                _mm_set1_epi8(b as i8),
            )
        };
        find_by_blocks(
            hay,
            |x| unsafe {
                // A byte below the limit is its own minimum with the limit less one.
                let low = _mm_cmpeq_epi8(_mm_min_epu8(x, top), x);
                let any = _mm_or_si128(
                    low,
                    _mm_or_si128(_mm_cmpeq_epi8(x, a_v), _mm_cmpeq_epi8(x, b_v)),
                );
                _mm_movemask_epi8(any) as u32
            },
            words,
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    words(hay)
}

/// Whether `new` is `old` but in the bytes `marked` flags (0xFF; the others are 0), and none of
/// those is a line end (`\n`): the three of one length. 32 bytes a step on x86_64 CPUs with
/// AVX2 (every x86_64 machine Lambda runs on), else 16 (SSE2), a word at a time elsewhere; the
/// last step ends with the slices, overlapping the one before.
#[allow(unsafe_code)]
pub fn same_but_marked(new: &[u8], old: &[u8], marked: &[u8]) -> bool {
    let len = new.len();
    if old.len() != len || marked.len() != len {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    if len >= 32 && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above), and the three slices are `len` long.
        return unsafe { same_but_marked_avx2(new, old, marked) };
    }
    #[cfg(target_arch = "x86_64")]
    if len >= 16 {
        return same_but_marked_sse2(new, old, marked);
    }
    same_but_marked_by_words(new, old, marked)
}

/// [`same_but_marked`] 16 bytes a step (SSE2, part of every x86_64 CPU). The caller checks
/// that the three slices are `len >= 16` bytes long.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn same_but_marked_sse2(new: &[u8], old: &[u8], marked: &[u8]) -> bool {
    let len = new.len().min(old.len()).min(marked.len());
    if len < 16 {
        return false;
    }
    use std::arch::x86_64::{
        _mm_and_si128, _mm_andnot_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8,
    };
    let (n, o, m) = (new.as_ptr(), old.as_ptr(), marked.as_ptr());
    // SAFETY: SSE2 is part of every x86_64 CPU; this touches registers only.
    let lf = unsafe { _mm_set1_epi8(b'\n' as i8) };
    let same = |at: usize| {
        // SAFETY: `at + 16 <= len` (below): each load reads 16 bytes of its slice.
        unsafe {
            let x = _mm_loadu_si128(n.add(at).cast());
            let marks = _mm_loadu_si128(m.add(at).cast());
            let kept = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_loadu_si128(o.add(at).cast())), marks);
            let marked_line_end = _mm_and_si128(_mm_cmpeq_epi8(x, lf), marks);
            // Each byte: the same or marked, and not a marked line end.
            let ok = _mm_andnot_si128(marked_line_end, kept);
            _mm_movemask_epi8(ok) == 0xFFFF
        }
    };
    every_step(len, 16, same)
}

/// [`same_but_marked`] 32 bytes a step. The caller checks that the CPU has AVX2 and that the
/// three slices are `len >= 32` bytes long.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)]
unsafe fn same_but_marked_avx2(new: &[u8], old: &[u8], marked: &[u8]) -> bool {
    let len = new.len().min(old.len()).min(marked.len());
    if len < 32 {
        return false;
    }
    // SAFETY: `every_step` gives each step's start with `at + 32 <= len`: each load reads 32
    // bytes of its slice.
    every_step(len, 32, |at| unsafe { same_32(new, old, marked, at) })
}

/// One step of [`same_but_marked_avx2`]: the 32 bytes from `at`, which the caller checks are
/// in all three slices.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
#[allow(unsafe_code)]
unsafe fn same_32(new: &[u8], old: &[u8], marked: &[u8], at: usize) -> bool {
    use std::arch::x86_64::{
        _mm256_and_si256, _mm256_andnot_si256, _mm256_cmpeq_epi8, _mm256_loadu_si256,
        _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8,
    };
    // SAFETY: the caller checks that `at + 32` is within each slice.
    let (x, o, marks) = unsafe {
        (
            _mm256_loadu_si256(new.as_ptr().add(at).cast()),
            _mm256_loadu_si256(old.as_ptr().add(at).cast()),
            _mm256_loadu_si256(marked.as_ptr().add(at).cast()),
        )
    };
    let kept = _mm256_or_si256(_mm256_cmpeq_epi8(x, o), marks);
    let marked_line_end =
        _mm256_and_si256(_mm256_cmpeq_epi8(x, _mm256_set1_epi8(b'\n' as i8)), marks);
    // Each byte: the same or marked, and not a marked line end.
    _mm256_movemask_epi8(_mm256_andnot_si256(marked_line_end, kept)) == -1
}

/// [`same_but_marked`] a word at a time.
fn same_but_marked_by_words(new: &[u8], old: &[u8], marked: &[u8]) -> bool {
    let len = new.len();
    if old.len() != len || marked.len() != len {
        return false;
    }
    let word = |s: &[u8], at: usize| -> u64 {
        match s.get(at..at + 8) {
            Some(&[a, b, c, d, e, f, g, h]) => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
            _ => 0,
        }
    };
    let same = |at: usize| {
        let (n, o, m) = (word(new, at), word(old, at), word(marked, at));
        // A zero byte of `lf`: a marked byte that is a line end.
        let lf = (n ^ (ONES * u64::from(b'\n'))) | !m;
        (n ^ o) & !m == 0 && zero_bytes(lf) == 0
    };
    if len < 8 {
        return new
            .iter()
            .zip(old)
            .zip(marked)
            .all(|((n, o), m)| if *m == 0 { n == o } else { *n != b'\n' });
    }
    every_step(len, 8, same)
}

/// Whether `same` holds at every `width`-byte step of `len` bytes (`len >= width`): the last
/// step ends with them, overlapping the one before.
#[inline(always)]
fn every_step(len: usize, width: usize, mut same: impl FnMut(usize) -> bool) -> bool {
    let mut at = 0;
    while at + width < len {
        if !same(at) {
            return false;
        }
        at += width;
    }
    same(len - width)
}

/// A string of at most `N` bytes kept inline: `Copy`, no heap, no destructor, so it can sit in
/// memory reserved in advance, be moved by a plain copy, and be abandoned half-written (a
/// signal handler that never returns) without anything to free.
#[derive(Clone, Copy)]
pub struct FixedStr<const N: usize> {
    len: u16,
    buf: [u8; N],
}

impl<const N: usize> FixedStr<N> {
    /// The empty string.
    pub const EMPTY: Self = FixedStr {
        len: 0,
        buf: [0; N],
    };

    /// `s`, cut to `N` bytes at a character boundary.
    pub fn new(s: &str) -> Self {
        let mut f = Self::EMPTY;
        f.set(s);
        f
    }

    /// The longest UTF-8 prefix of `bytes`, cut to `N` bytes.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self::new(utf8_prefix(bytes, N))
    }

    /// Replaces the text with `s`, cut to `N` bytes at a character boundary.
    pub fn set(&mut self, s: &str) {
        let s = bounded_str(s, N.min(usize::from(u16::MAX)));
        if let Some(dst) = self.buf.get_mut(..s.len()) {
            dst.copy_from_slice(s.as_bytes());
            self.len = s.len() as u16;
        }
    }

    /// Becomes `other`, copying only its text (a whole `FixedStr` is `N` bytes to copy).
    pub fn assign(&mut self, other: &Self) {
        let len = usize::from(other.len);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(..len), other.buf.get(..len)) {
            dst.copy_from_slice(src);
            self.len = other.len;
        }
    }

    /// Appends what fits of `s` (cut at a character boundary); false when not all of it did.
    pub fn push_str(&mut self, s: &str) -> bool {
        let at = usize::from(self.len);
        let room = N.saturating_sub(at);
        let part = bounded_str(s, room);
        if let Some(dst) = self.buf.get_mut(at..at + part.len()) {
            dst.copy_from_slice(part.as_bytes());
            self.len = (at + part.len()) as u16;
        }
        part.len() == s.len()
    }

    pub fn as_str(&self) -> &str {
        // Only ever filled from `&str` cut at character boundaries.
        std::str::from_utf8(self.buf.get(..usize::from(self.len)).unwrap_or_default())
            .unwrap_or_default()
    }

    /// The text's bytes (no UTF-8 check).
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl<const N: usize> Default for FixedStr<N> {
    fn default() -> Self {
        Self::EMPTY
    }
}

// Its bytes, for what compares or copies them: no UTF-8 check, as `as_str` makes.
impl<const N: usize> AsRef<[u8]> for FixedStr<N> {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl<const N: usize> std::ops::Deref for FixedStr<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

// Compared as bytes: the same text is the same bytes, and nothing needs checking as UTF-8.
impl<const N: usize> PartialEq for FixedStr<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const N: usize> Eq for FixedStr<N> {}

impl<const N: usize> PartialEq<str> for FixedStr<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const N: usize> PartialEq<&str> for FixedStr<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const N: usize> std::fmt::Debug for FixedStr<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> std::fmt::Display for FixedStr<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A writer into a byte buffer of fixed size: what does not fit is cut off and noted, never
/// grown into. `core::fmt::Write` lets `write!` format into it without allocating (a warning
/// line, a number).
pub struct Out<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflowed: bool,
    /// Counts what would be written, writing nothing (see [`Out::counting`]).
    count_only: bool,
}

impl<'a> Out<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Out {
            buf,
            len: 0,
            overflowed: false,
            count_only: false,
        }
    }

    /// A writer that keeps nothing and counts the bytes it is given: how long something will
    /// be, before room is taken for it.
    pub fn counting() -> Out<'static> {
        Out {
            buf: &mut [],
            len: 0,
            overflowed: false,
            count_only: true,
        }
    }

    /// Appends `bytes`, or as many of them as fit, noting that the rest did not.
    #[inline(always)]
    pub fn bytes(&mut self, bytes: &[u8]) {
        // Where they fit (a counting writer has no room): one copy, of a length the compiler
        // often knows.
        let end = self.len + bytes.len();
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
            self.len = end;
            return;
        }
        self.bytes_cut(bytes);
    }

    /// [`Out::bytes`] where they do not all fit, or only counted.
    #[inline(never)]
    fn bytes_cut(&mut self, bytes: &[u8]) {
        if self.count_only {
            self.len += bytes.len();
            return;
        }
        let room = self.buf.len().saturating_sub(self.len);
        let take = bytes.len().min(room);
        if let (Some(dst), Some(src)) = (
            self.buf.get_mut(self.len..self.len + take),
            bytes.get(..take),
        ) {
            dst.copy_from_slice(src);
            self.len += take;
        }
        if take < bytes.len() {
            self.overflowed = true;
        }
    }

    /// The next `n` bytes of room, for the caller to fill and then take with
    /// [`Out::advance`]; `None` where fewer are left (or when only counting).
    pub fn spare(&mut self, n: usize) -> Option<&mut [u8]> {
        self.buf.get_mut(self.len..self.len + n)
    }

    /// Appends the first `len` bytes of `block`: the whole block copied where there is room
    /// for it (one copy of a size the compiler knows; what is past `len` is room again).
    #[inline(always)]
    pub fn block<const N: usize>(&mut self, block: &[u8; N], len: usize) {
        match self.spare(N) {
            Some(room) if len <= N => {
                room.copy_from_slice(block);
                self.len += len;
            }
            _ => self.bytes(block.get(..len).unwrap_or(block)),
        }
    }

    /// Takes the first `n` bytes of [`Out::spare`]'s room as written.
    pub fn advance(&mut self, n: usize) {
        self.len = (self.len + n).min(self.buf.len());
    }

    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// `n` in decimal (no formatting machinery: a path built on every read).
    pub fn decimal(&mut self, n: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = n;
        loop {
            at -= 1;
            if let Some(d) = digits.get_mut(at) {
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 || at == 0 {
                break;
            }
        }
        self.bytes(digits.get(at..).unwrap_or_default());
    }

    pub fn byte(&mut self, b: u8) {
        self.bytes(&[b]);
    }

    /// What was written so far.
    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether something did not fit.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Forgets everything after the first `len` bytes (and any overflow after them).
    pub fn truncate(&mut self, len: usize) {
        if len <= self.len {
            self.len = len;
            self.overflowed = false;
        }
    }

    /// The written bytes, mutable (for edits in place).
    pub fn written_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(..self.len).unwrap_or_default()
    }

    /// Inserts `bytes` at `at`, moving what follows (noted as an overflow when it does not
    /// fit).
    pub fn insert(&mut self, at: usize, bytes: &[u8]) {
        self.splice(at, 0, bytes);
    }

    /// Replaces `len` bytes at `at` with `bytes`, moving what follows.
    pub fn splice(&mut self, at: usize, len: usize, bytes: &[u8]) {
        let end = at.saturating_add(len);
        if end > self.len {
            self.overflowed = true;
            return;
        }
        let new_len = self.len - len + bytes.len();
        if new_len > self.buf.len() {
            self.overflowed = true;
            return;
        }
        self.buf.copy_within(end..self.len, at + bytes.len());
        if let Some(dst) = self.buf.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        self.len = new_len;
    }
}

impl std::fmt::Write for Out<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.str(s);
        Ok(())
    }
}

/// Formats `args` into `buf`, cut to its size (no allocation): for warning and debug lines.
pub fn format_into<'a>(buf: &'a mut [u8], args: std::fmt::Arguments) -> &'a str {
    let mut out = Out::new(buf);
    let _ = std::fmt::Write::write_fmt(&mut out, args);
    let len = out.len();
    utf8_prefix(buf, len)
}

/// Seconds written as decimal digits with an optional fraction (`/proc/uptime`'s `12345.67`),
/// in ns (digits past the ninth of the fraction ignored). `None` for anything else.
pub fn seconds_ns(text: &str) -> Option<u64> {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let (secs, frac) = match text.split_once('.') {
        Some((secs, frac)) if digits(frac) => (secs, frac),
        Some(_) => return None,
        None => (text, ""),
    };
    if !digits(secs) {
        return None;
    }
    let frac = frac.get(..frac.len().min(9))?;
    let part: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let scale = 10u64.checked_pow(9 - frac.len() as u32)?;
    secs.parse::<u64>()
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(part.checked_mul(scale)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn ascii_is_told_from_any_other_byte_anywhere() {
        for len in 0..40 {
            let plain: Vec<u8> = (0..len).map(|i| b' ' + (i % 95) as u8).collect();
            assert_eq!(as_ascii(&plain).map(str::as_bytes), Some(&plain[..]));
            assert_eq!(utf8_prefix(&plain, len).as_bytes(), &plain[..]);
            for at in 0..len {
                for high in [0x80, 0xc3, 0xff] {
                    let mut hay = plain.clone();
                    hay[at] = high;
                    assert_eq!(as_ascii(&hay), None, "len {len} at {at}");
                }
            }
        }
        // Text that is not ASCII still reads as its longest UTF-8 prefix.
        let text = "abcdefghijklmnopq-é-€".as_bytes();
        assert_eq!(utf8_prefix(text, text.len()), "abcdefghijklmnopq-é-€");
        assert_eq!(utf8_prefix(text, text.len() - 1), "abcdefghijklmnopq-é-");
    }

    #[test]
    fn find_byte_finds_the_first_occurrence_anywhere() {
        // Short haystacks, every block and tail of the inline search, and memchr's.
        for len in (0..40).chain([127, 128, 129, 200]) {
            for at in 0..len {
                let mut hay = vec![b'a'; len];
                hay[at] = b'\n';
                // Bytes that differ from the needle by one bit, and a later match.
                if at + 1 < len {
                    hay[at + 1] = b'\n';
                }
                if at > 0 {
                    hay[at - 1] = b'\n' ^ 0x80;
                }
                assert_eq!(find_byte(b'\n', &hay), Some(at), "len {len} at {at}");
            }
            assert_eq!(find_byte(b'\n', &vec![0x0b; len]), None);
            assert_eq!(find_byte(0, &vec![0x80; len]), None);
        }
    }

    #[test]
    fn find_below_finds_the_first_small_byte_anywhere() {
        for limit in [1u8, 4, 32, 128] {
            for len in 0..40 {
                for at in 0..len {
                    // Bytes at and just over the limit around it, and every byte above it.
                    let mut hay: Vec<u8> = (0..len).map(|i| 255 - (i % 128) as u8).collect();
                    hay[at] = limit - 1;
                    if at > 0 {
                        hay[at - 1] = limit;
                    }
                    if at + 1 < len {
                        hay[at + 1] = 0;
                    }
                    assert_eq!(
                        find_below(limit, &hay),
                        Some(at),
                        "limit {limit} len {len} at {at}"
                    );
                }
                assert_eq!(find_below(limit, &vec![limit; len]), None);
            }
        }
    }

    #[test]
    fn find_json_special_finds_the_first_byte_to_escape() {
        for special in [0u8, 0x1f, b'"', b'\\', b'\n'] {
            for len in 0..40 {
                for at in 0..len {
                    // Neighbours just past each test: a space, `#`, `]`, and bytes above 0x7f.
                    let mut hay: Vec<u8> = (0..len)
                        .map(|i| [b' ', b'#', b']', 0xdc, b'!'][i % 5])
                        .collect();
                    hay[at] = special;
                    if at + 1 < len {
                        hay[at + 1] = b'"';
                    }
                    assert_eq!(
                        find_json_special(&hay),
                        Some(at),
                        "{special} len {len} at {at}"
                    );
                }
            }
        }
        assert_eq!(find_json_special("plain text, é and ]#!".as_bytes()), None);
    }

    #[test]
    #[allow(unsafe_code)]
    fn same_but_marked_is_byte_for_byte_what_it_says() {
        let reference = |new: &[u8], old: &[u8], marked: &[u8]| {
            new.len() == old.len()
                && new.len() == marked.len()
                && (0..new.len()).all(|i| {
                    if marked[i] == 0 {
                        new[i] == old[i]
                    } else {
                        new[i] != b'\n'
                    }
                })
        };
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 140) as usize;
            let old: Vec<u8> = (0..len)
                .map(|_| b"ab\n: \r\x00\xff"[(next() % 8) as usize])
                .collect();
            let marked: Vec<u8> = (0..len)
                .map(|_| if next() % 3 == 0 { 0xFF } else { 0 })
                .collect();
            let mut new = old.clone();
            // None, one or two bytes changed, marked or not, sometimes to a line end.
            for _ in 0..next() % 3 {
                if len > 0 {
                    let at = (next() % len as u64) as usize;
                    new[at] = if next() % 2 == 0 {
                        b'\n'
                    } else {
                        (next() >> 56) as u8
                    };
                }
            }
            let want = reference(&new, &old, &marked);
            assert_eq!(
                same_but_marked(&new, &old, &marked),
                want,
                "{new:?} {old:?} {marked:?}"
            );
            assert_eq!(
                same_but_marked_by_words(&new, &old, &marked),
                want,
                "{new:?} {old:?} {marked:?}"
            );
            #[cfg(target_arch = "x86_64")]
            if len >= 16 {
                assert_eq!(same_but_marked_sse2(&new, &old, &marked), want);
            }
            #[cfg(target_arch = "x86_64")]
            if len >= 32 && std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, and the slices are `len` long.
                assert_eq!(unsafe { same_but_marked_avx2(&new, &old, &marked) }, want);
            }
        }
        assert!(!same_but_marked(b"ab", b"abc", b"\0\0\0"));
    }

    #[test]
    fn find_token_end_finds_the_first_space_control_or_stop() {
        for end in [0u8, b'\t', b'\r', b' ', 0x7f, b':'] {
            for len in 0..40 {
                for at in 0..len {
                    // Neighbours just past each test: `!`, `~`, `;`, `9` and bytes above 0x7f.
                    let mut hay: Vec<u8> = (0..len)
                        .map(|i| [b'!', b'~', b';', b'9', 0x80, 0xff][i % 6])
                        .collect();
                    hay[at] = end;
                    if at + 1 < len {
                        hay[at + 1] = b' ';
                    }
                    assert_eq!(
                        find_token_end(b':', &hay),
                        Some(at),
                        "{end} len {len} at {at}"
                    );
                }
            }
        }
        assert_eq!(find_token_end(b':', b"Lambda-Runtime-Aws-Request-Id"), None);
        assert_eq!(
            find_token_end(b' ', b"/2018-06-01/runtime/invocation/next"),
            None
        );
    }

    #[test]
    fn an_assigned_fixed_string_is_the_other_one() {
        let mut a: FixedStr<8> = FixedStr::new("longer!");
        a.assign(&FixedStr::new("ab"));
        assert_eq!(a, FixedStr::new("ab"));
        assert_eq!(a.as_str(), "ab");
        a.assign(&FixedStr::EMPTY);
        assert!(a.is_empty());
        a.assign(&FixedStr::new("12345678"));
        assert_eq!(a.as_str(), "12345678");
    }

    #[test]
    fn fixed_strings_cut_at_character_boundaries() {
        let s: FixedStr<5> = FixedStr::new("abcdé");
        assert_eq!(s.as_str(), "abcd");
        let mut t: FixedStr<8> = FixedStr::new("ab");
        assert!(t.push_str("cd"));
        assert!(!t.push_str("€€"));
        assert_eq!(&*t, "abcd€");
        assert_eq!(FixedStr::<4>::from_bytes(b"ab\xffcd").as_str(), "ab");
        assert!(FixedStr::<4>::EMPTY.is_empty());
    }

    #[test]
    fn out_notes_what_does_not_fit_and_edits_in_place() {
        let mut buf = [0u8; 8];
        let mut o = Out::new(&mut buf);
        o.str("abc");
        o.insert(1, b"XY");
        assert_eq!(o.written(), b"aXYbc");
        o.splice(0, 2, b"");
        assert_eq!(o.written(), b"Ybc");
        o.str("123456");
        assert!(o.overflowed());
        assert_eq!(o.written(), b"Ybc12345");
        for n in [0, 7, 10, 4242, u64::MAX] {
            let mut buf = [0u8; 24];
            let mut o = Out::new(&mut buf);
            o.decimal(n);
            assert_eq!(o.written(), n.to_string().as_bytes());
        }
        let mut buf = [0u8; 16];
        assert_eq!(
            format_into(&mut buf, format_args!("fd {} of {}", 7, 99)),
            "fd 7 of 99"
        );
        let mut small = [0u8; 4];
        assert_eq!(
            format_into(&mut small, format_args!("{}", "toolong")),
            "tool"
        );
    }

    #[test]
    fn seconds_read_as_proc_uptime_writes_them() {
        assert_eq!(seconds_ns("12345.67"), Some(12_345_670_000_000));
        assert_eq!(seconds_ns("0.05"), Some(50_000_000));
        assert_eq!(seconds_ns("7"), Some(7_000_000_000));
        assert_eq!(seconds_ns("1.123456789123"), Some(1_123_456_789));
        for bad in [
            "", ".", "1.", "x.5", "1.x", "-1.00", "1.-5", "+1", " 1", "1e3",
        ] {
            assert_eq!(seconds_ns(bad), None, "{bad:?}");
        }
    }
}
