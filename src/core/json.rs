//! Just enough JSON for what the function hands over — a custom property's value, a line of the
//! custom-metrics channel — read in place, without allocating: a checker that copies one value
//! compact into a buffer, the members of a flat object, and the text of a string.

use crate::text::Out;

/// Hands `s` (text's bytes: no UTF-8 check, and the pieces of valid text are valid text),
/// JSON-escaped, to `put` in pieces: runs of characters that need no escape whole, each escape
/// on its own. Quotes, backslashes and every control character are escaped (so no
/// value can break a line or an object), as `serde_json` writes them; stops at the first
/// `None` from `put`. The one escaper of records and of the journal's slots.
pub fn escape_json(s: &[u8], mut put: impl FnMut(&[u8]) -> Option<()>) -> Option<()> {
    let mut rest = s;
    while let Some(at) = crate::text::find_json_special(rest) {
        put(rest.get(..at)?)?;
        let b = rest.get(at).copied()?;
        match b {
            b'"' => put(b"\\\"")?,
            b'\\' => put(b"\\\\")?,
            b'\n' => put(b"\\n")?,
            b'\r' => put(b"\\r")?,
            b'\t' => put(b"\\t")?,
            0x08 => put(b"\\b")?,
            0x0c => put(b"\\f")?,
            _ => {
                let hex = b"0123456789abcdef";
                let digit = |d: u8| hex.get(usize::from(d)).copied().unwrap_or(b'0');
                put(&[b'\\', b'u', b'0', b'0', digit(b >> 4), digit(b & 15)])?
            }
        }
        rest = rest.get(at + 1..)?;
    }
    put(rest)
}

/// How deep values may nest (deeper input is refused, never recursed into).
const MAX_DEPTH: usize = 64;

/// One top-level member's value, as [`members`] hands it over.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// A string: its text between the quotes, still escaped (see [`unescape`]).
    String(&'a [u8]),
    /// A number, as written.
    Number(&'a str),
    /// `true`, `false`, `null`, an object or an array: as written (whitespace and all).
    Other(&'a [u8]),
}

impl<'a> Value<'a> {
    /// The number, when it is one that fits an `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// The value's text as written (strings with their quotes).
    pub fn raw(&self, line: &'a [u8]) -> &'a [u8] {
        match self {
            Value::String(s) => {
                // The quotes around an escaped string's text in `line`.
                let start = s.as_ptr() as usize - line.as_ptr() as usize;
                line.get(start.saturating_sub(1)..start + s.len() + 1)
                    .unwrap_or_default()
            }
            Value::Number(n) => n.as_bytes(),
            Value::Other(o) => o,
        }
    }
}

struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.at += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.text.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// A string, from its opening quote: its escaped text.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.at;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => {
                    self.at += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                        b'u' => {
                            let hex = self.text.get(self.at + 1..self.at + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.at += 5;
                        }
                        _ => return None,
                    }
                }
                c if c < 0x20 => return None,
                _ => self.at += 1,
            }
        }
        let s = self.text.get(start..self.at)?;
        self.at += 1;
        std::str::from_utf8(s).ok()?;
        Some(s)
    }

    fn number(&mut self) -> Option<&'a str> {
        let start = self.at;
        let _ = self.eat(b'-');
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.').is_some() {
            self.need_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.need_digits()?;
        }
        std::str::from_utf8(self.text.get(start..self.at)?).ok()
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }

    fn need_digits(&mut self) -> Option<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }

    /// One value, written compact to `out` (when given).
    fn value(&mut self, depth: usize, out: &mut Option<&mut Out>) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.space();
        let put = |out: &mut Option<&mut Out>, bytes: &[u8]| {
            if let Some(o) = out.as_deref_mut() {
                o.bytes(bytes);
            }
        };
        match self.peek()? {
            b'"' => {
                let s = self.string()?;
                put(out, b"\"");
                put(out, s);
                put(out, b"\"");
            }
            b'{' => {
                self.at += 1;
                put(out, b"{");
                self.space();
                if self.eat(b'}').is_none() {
                    loop {
                        self.space();
                        let key = self.string()?;
                        put(out, b"\"");
                        put(out, key);
                        put(out, b"\":");
                        self.space();
                        self.eat(b':')?;
                        self.value(depth + 1, out)?;
                        self.space();
                        if self.eat(b',').is_some() {
                            put(out, b",");
                            continue;
                        }
                        self.eat(b'}')?;
                        break;
                    }
                }
                put(out, b"}");
            }
            b'[' => {
                self.at += 1;
                put(out, b"[");
                self.space();
                if self.eat(b']').is_none() {
                    loop {
                        self.value(depth + 1, out)?;
                        self.space();
                        if self.eat(b',').is_some() {
                            put(out, b",");
                            continue;
                        }
                        self.eat(b']')?;
                        break;
                    }
                }
                put(out, b"]");
            }
            b't' => {
                self.literal(b"true")?;
                put(out, b"true");
            }
            b'f' => {
                self.literal(b"false")?;
                put(out, b"false");
            }
            b'n' => {
                self.literal(b"null")?;
                put(out, b"null");
            }
            _ => {
                let n = self.number()?;
                put(out, n.as_bytes());
            }
        }
        Some(())
    }
}

/// Whether `text` is exactly one JSON value (whitespace around it allowed); it is written to
/// `out` without the whitespace between its tokens. False (with `out` holding a part) when it
/// is not, or when it nests deeper than 64.
pub fn compact(text: &[u8], out: &mut Out) -> bool {
    let mut r = Reader { text, at: 0 };
    let mut o = Some(out);
    if r.value(0, &mut o).is_none() {
        return false;
    }
    r.space();
    r.at == text.len()
}

/// Calls `member` with each member of the JSON object `line` (whitespace around it allowed),
/// in order, each key still escaped. False, after calling it for the members before, when
/// `line` is not one object.
pub fn members<'a>(line: &'a [u8], mut member: impl FnMut(&'a [u8], Value<'a>)) -> bool {
    let mut r = Reader { text: line, at: 0 };
    let mut parse = |r: &mut Reader<'a>| -> Option<()> {
        r.space();
        r.eat(b'{')?;
        r.space();
        if r.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            r.space();
            let key = r.string()?;
            r.space();
            r.eat(b':')?;
            r.space();
            let start = r.at;
            let value = match r.peek()? {
                b'"' => Value::String(r.string()?),
                b'-' | b'0'..=b'9' => Value::Number(r.number()?),
                _ => {
                    r.value(1, &mut None)?;
                    Value::Other(r.text.get(start..r.at)?)
                }
            };
            member(key, value);
            r.space();
            if r.eat(b',').is_some() {
                continue;
            }
            r.eat(b'}')?;
            return Some(());
        }
    };
    if parse(&mut r).is_none() {
        return false;
    }
    r.space();
    r.at == line.len()
}

/// Writes the text of an escaped JSON string (as [`members`] hands it over) to `out`.
/// False when an escape is not valid.
pub fn unescape(escaped: &[u8], out: &mut Out) -> bool {
    let mut i = 0;
    while let Some(&b) = escaped.get(i) {
        if b != b'\\' {
            out.byte(b);
            i += 1;
            continue;
        }
        let Some(&e) = escaped.get(i + 1) else {
            return false;
        };
        i += 2;
        let c = match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let Some(unit) = hex4(escaped.get(i..i + 4)) else {
                    return false;
                };
                i += 4;
                let code = if (0xd800..0xdc00).contains(&unit)
                    && escaped.get(i..i + 2) == Some(b"\\u")
                    && let Some(low) = hex4(escaped.get(i + 2..i + 6))
                    && (0xdc00..0xe000).contains(&low)
                {
                    i += 6;
                    0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)
                } else {
                    unit
                };
                char::from_u32(code).unwrap_or('\u{fffd}')
            }
            _ => return false,
        };
        let mut buf = [0u8; 4];
        out.str(c.encode_utf8(&mut buf));
    }
    true
}

fn hex4(digits: Option<&[u8]>) -> Option<u32> {
    let digits = std::str::from_utf8(digits?).ok()?;
    u32::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn compacted(text: &str) -> Option<String> {
        let mut buf = vec![0u8; 4096];
        let mut out = Out::new(&mut buf);
        compact(text.as_bytes(), &mut out)
            .then(|| String::from_utf8(out.written().to_vec()).unwrap())
    }

    #[test]
    fn one_value_compact_or_nothing() {
        assert_eq!(
            compacted(" { \"id\" : 7 , \"tags\":[ \"a\" , true,null,-1.5e3] } ").as_deref(),
            Some(r#"{"id":7,"tags":["a",true,null,-1.5e3]}"#)
        );
        assert_eq!(
            compacted("\"x\\u00e9\\\"\"").as_deref(),
            Some("\"x\\u00e9\\\"\"")
        );
        for bad in [
            "",
            "{",
            "{\"id\":",
            "1 2",
            "01",
            "1.",
            "[1,]",
            "{\"a\" 1}",
            "tru",
            "\"\u{1}\"",
            "'x'",
            "{a:1}",
            "\"\\x\"",
        ] {
            assert_eq!(compacted(bad), None, "{bad:?}");
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert_eq!(compacted(&deep), None, "too deep");
        for ok in ["{}", "[]", "0", "\"\"", "{\"a\":{\"b\":[{}]}}"] {
            let v: serde_json::Value = serde_json::from_str(ok).unwrap();
            assert_eq!(compacted(ok), Some(v.to_string()), "{ok}");
        }
    }

    #[test]
    fn members_of_a_flat_object() {
        let line = br#" {"metric":"A\"b","value":2.5,"tags":{"x":[1]},"ok":true} "#;
        let mut seen = Vec::new();
        assert!(members(line, |k, v| seen.push((k.to_vec(), v))));
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[0].1, Value::String(br#"A\"b"#));
        assert_eq!(seen[1].1.as_f64(), Some(2.5));
        assert_eq!(seen[2].1, Value::Other(br#"{"x":[1]}"#));
        assert_eq!(seen[0].1.raw(line), br#""A\"b""#);
        assert!(!members(b"[1]", |_, _| {}));
        assert!(!members(br#"{"a":1} x"#, |_, _| {}));
    }

    #[test]
    fn unescaped_text() {
        let mut buf = [0u8; 64];
        let mut out = Out::new(&mut buf);
        assert!(unescape(br#"a\"\\\/\n\u00e9\ud83d\ude00"#, &mut out));
        assert_eq!(out.written(), "a\"\\/\né😀".as_bytes());
        let mut buf = [0u8; 8];
        assert!(!unescape(br"\q", &mut Out::new(&mut buf)));
    }
}
