//! Text bounded to a length in bytes, cut at a character boundary: every value from the
//! environment or the wire is bounded before it reaches a record.

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

/// [`bounded_str`] in place.
pub fn truncate_to(s: &mut String, max: usize) {
    let keep = bounded_str(s, max).len();
    s.truncate(keep);
}

/// [`bounded_str`], owned.
pub fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_string()
}
