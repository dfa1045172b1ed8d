//! Custom metrics, dimensions and properties a function adds to its invoke's record through
//! the public C ABI (`lambda_meter_metric`, `lambda_meter_dimension`, `lambda_meter_property`)
//! or a language shim over it.
//!
//! They are checked here, when they are given, against the same rules and limits the record
//! keeps (so a bad one gets a status code and never reaches a record), and kept with the invoke
//! they belong to until its record is written: custom metrics under a directive of their own
//! (the function's first dimension set plus the custom dimensions), beside the built-in one, so
//! a custom dimension never multiplies the built-in metrics' bill.
//!
//! They live in a [`Pool`] of chunks reserved once, each record's values a chain of chunks
//! named by a [`Custom`] handle: giving a value never allocates, and when the pool is used up
//! the call says so ([`Status::Limit`]).

use crate::text::{FixedStr, Out};

/// What a call returns (the C ABI's `int`; `lambda_meter.h` documents the same values).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Added to the invoke in progress.
    Ok = 0,
    /// No invoke is open yet (init): added to the record of the next invoke that starts.
    Pending = 1,
    /// The library is loaded but does not meter this process: nothing was kept.
    Inactive = 2,
    /// The name or key is empty, too long, not UTF-8, has a control character, or is one the
    /// record already uses (a built-in metric, property or dimension, `_aws`).
    BadName = -1,
    /// The value is not finite (metric), empty or too long (dimension), or not one JSON value
    /// (property).
    BadValue = -2,
    /// The unit is not one of CloudWatch's units.
    BadUnit = -3,
    /// A per-record limit is reached (see [`MAX_METRICS`] and the others), or the process's
    /// room for custom values ([`POOL_BYTES`]) is used up by invokes in flight.
    Limit = -4,
    /// Several invokes are open at once and none was started on the calling thread.
    Ambiguous = -5,
    /// Called where the library cannot take its lock without risk (inside a signal handler,
    /// or from its own hooks): nothing was kept.
    Busy = -6,
    /// A null pointer was passed for a required argument.
    Null = -7,
}

/// Custom metric names per record.
pub const MAX_METRICS: usize = 30;
/// Values per custom metric per record (EMF's limit for a value array).
pub const MAX_VALUES: usize = 100;
/// Custom dimensions per record (EMF allows 30 keys in a dimension set; the function's own
/// set takes some).
pub const MAX_DIMENSIONS: usize = 9;
/// Custom properties per record.
pub const MAX_PROPERTIES: usize = 30;
/// Longest name or key, in bytes.
pub const MAX_NAME: usize = 255;
/// Longest dimension value, in bytes (CloudWatch's limit).
pub const MAX_DIMENSION_VALUE: usize = 1024;
/// Longest property value, as compact JSON, in bytes.
pub const MAX_PROPERTY_JSON: usize = 4096;

/// CloudWatch's units (a metric given no unit has `None`).
pub const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Bytes of one chunk: any one entry fits in one.
const CHUNK: usize = 4 + MAX_NAME + 2 + MAX_PROPERTY_JSON + 4;
/// Chunks in the pool.
pub const POOL_CHUNKS: usize = 128;
/// The pool's size.
pub const POOL_BYTES: usize = POOL_CHUNKS * CHUNK;

const NONE: u16 = u16::MAX;

// Entry kinds. An entry is its kind byte, then its fields; `DEAD` marks a replaced one.
/// A metric's name and unit (its values are `VALUE` entries naming its ordinal).
const METRIC: u8 = b'M';
const VALUE: u8 = b'V';
const DIMENSION: u8 = b'D';
const PROPERTY: u8 = b'P';
const DEAD: u8 = b'x';

/// The custom values of one record: a chain of chunks of the [`Pool`], or none. `Copy`: it is
/// moved with its record; exactly one place owns it, and frees it with [`Pool::free`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Custom {
    first: u16,
    last: u16,
}

impl Default for Custom {
    fn default() -> Self {
        Custom::NONE
    }
}

impl Custom {
    /// No values.
    pub const NONE: Custom = Custom {
        first: NONE,
        last: NONE,
    };

    pub fn is_empty(&self) -> bool {
        self.first == NONE
    }
}

#[derive(Clone, Copy)]
struct Chunk {
    next: u16,
    used: u16,
    bytes: [u8; CHUNK],
}

/// One entry as read back.
#[derive(Clone, Copy, Debug)]
enum Entry<'a> {
    Metric { name: &'a str, unit: &'static str },
    Value { ordinal: u8, value: f64 },
    Dimension { key: &'a str, value: &'a str },
    Property { key: &'a str, json: &'a str },
}

/// The chunks every record's custom values live in (see the module documentation).
pub struct Pool {
    chunks: Vec<Chunk>,
    free: Vec<u16>,
    /// One chunk's bytes, for moving a record's values onto another's.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Pool({} chunks, {} free)",
            self.chunks.len(),
            self.free.len()
        )
    }
}

/// Whether `name` may be a member of a record: 1 to [`MAX_NAME`] bytes, no control character,
/// not one of `taken` (the members every record has) and not `_aws`.
fn usable_name(name: &str, taken: &dyn Fn(&str) -> bool) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.chars().any(char::is_control)
        && name != "_aws"
        && !taken(name)
}

impl Pool {
    /// A pool with room for [`POOL_CHUNKS`] chunks, reserved now (the memory is touched only
    /// as chunks are first used). `None` when it cannot be had.
    pub fn reserve() -> Option<Pool> {
        Self::with_chunks(POOL_CHUNKS)
    }

    fn with_chunks(n: usize) -> Option<Pool> {
        let mut chunks = Vec::new();
        chunks.try_reserve_exact(n).ok()?;
        let mut free = Vec::new();
        free.try_reserve_exact(n).ok()?;
        let mut scratch = Vec::new();
        scratch.try_reserve_exact(CHUNK).ok()?;
        Some(Pool {
            chunks,
            free,
            scratch,
        })
    }

    /// Forgets every record's values (a forked child: none of them is its own).
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.free.clear();
    }

    /// Gives a record's chunks back.
    pub fn free(&mut self, c: &mut Custom) {
        let mut at = c.first;
        let mut guard = 0;
        while at != NONE && guard <= self.chunks.len() {
            let next = self.chunks.get(usize::from(at)).map_or(NONE, |ch| ch.next);
            if self.free.len() < self.free.capacity() {
                self.free.push(at);
            }
            at = next;
            guard += 1;
        }
        *c = Custom::NONE;
    }

    fn new_chunk(&mut self) -> Option<u16> {
        if let Some(i) = self.free.pop() {
            if let Some(ch) = self.chunks.get_mut(usize::from(i)) {
                ch.next = NONE;
                ch.used = 0;
            }
            return Some(i);
        }
        if self.chunks.len() < self.chunks.capacity() {
            self.chunks.push(Chunk {
                next: NONE,
                used: 0,
                bytes: [0; CHUNK],
            });
            return u16::try_from(self.chunks.len() - 1).ok();
        }
        None
    }

    /// Appends one entry of at most `size` bytes to `c`'s chain, written by `write` into the
    /// room it is given; the entry is kept only when `write` returns true and it fitted.
    fn append_with(
        &mut self,
        c: &mut Custom,
        size: usize,
        write: impl FnOnce(&mut Out) -> bool,
    ) -> bool {
        let room = |p: &Pool, at: u16| {
            p.chunks
                .get(usize::from(at))
                .is_some_and(|ch| CHUNK - usize::from(ch.used) >= size)
        };
        let (at, fresh) = if c.last != NONE && room(self, c.last) {
            (c.last, false)
        } else {
            match self.new_chunk() {
                Some(new) => (new, true),
                None => return false,
            }
        };
        let Some(ch) = self.chunks.get_mut(usize::from(at)) else {
            return false;
        };
        let used = usize::from(ch.used);
        let mut out = Out::new(ch.bytes.get_mut(used..).unwrap_or_default());
        if !write(&mut out) || out.overflowed() {
            if fresh && self.free.len() < self.free.capacity() {
                self.free.push(at);
            }
            return false;
        }
        ch.used = (used + out.len()) as u16;
        if fresh {
            if c.last == NONE {
                c.first = at;
            } else if let Some(prev) = self.chunks.get_mut(usize::from(c.last)) {
                prev.next = at;
            }
            c.last = at;
        }
        true
    }

    /// Calls `f` with each live entry of `c`, in the order given, with where it is (chunk and
    /// offset); stops when `f` returns false.
    fn each<'p>(&'p self, c: &Custom, mut f: impl FnMut(Entry<'p>, (u16, usize)) -> bool) {
        let mut at = c.first;
        let mut guard = 0;
        while at != NONE && guard <= self.chunks.len() {
            guard += 1;
            let Some(ch) = self.chunks.get(usize::from(at)) else {
                return;
            };
            let bytes = ch.bytes.get(..usize::from(ch.used)).unwrap_or_default();
            if !each_entry(bytes, |e, off| f(e, (at, off))) {
                return;
            }
            at = ch.next;
        }
    }

    fn kill(&mut self, (chunk, off): (u16, usize)) {
        if let Some(b) = self
            .chunks
            .get_mut(usize::from(chunk))
            .and_then(|ch| ch.bytes.get_mut(off))
        {
            *b = DEAD;
        }
    }

    /// Writes `json` (compacting to `json_len` bytes, unless `compact` already) over the value
    /// of the property entry at `at` with a key of `key_len` bytes, if its value has that
    /// length too.
    fn overwrite_json(
        &mut self,
        (chunk, off): (u16, usize),
        key_len: usize,
        json_len: usize,
        json: &str,
        compact: bool,
    ) -> bool {
        let start = off + 2 + key_len;
        let Some(b) = self
            .chunks
            .get_mut(usize::from(chunk))
            .and_then(|ch| ch.bytes.get_mut(start..start + 2 + json_len))
        else {
            return false;
        };
        let Some((len, value)) = b.split_first_chunk_mut::<2>() else {
            return false;
        };
        if usize::from(u16::from_le_bytes(*len)) != json_len {
            return false;
        }
        let mut out = Out::new(value);
        compact_into(json, compact, &mut out) && !out.overflowed()
    }

    /// What `c` holds: metric names, dimensions and properties, and where `name` is used.
    fn census(&self, c: &Custom, name: &str) -> Census {
        let mut n = Census::default();
        self.each(c, |e, at| {
            match e {
                Entry::Metric { name: m, .. } => {
                    if m == name {
                        n.metric = Some(n.metrics as u8);
                    }
                    n.metrics += 1;
                }
                Entry::Value { ordinal, .. } => {
                    if n.metric == Some(ordinal) {
                        n.values += 1;
                    }
                }
                Entry::Dimension { key, .. } => {
                    if key == name {
                        n.dimension = Some(at);
                    } else {
                        n.dimensions += 1;
                    }
                }
                Entry::Property { key, .. } => {
                    if key == name {
                        n.property = Some(at);
                    } else {
                        n.properties += 1;
                    }
                }
            }
            true
        });
        n
    }

    /// Adds `value` to metric `name` on `c` (a metric given again becomes a value array; its
    /// unit is the first one given).
    pub fn metric(
        &mut self,
        c: &mut Custom,
        name: &str,
        value: f64,
        unit: Option<&str>,
        taken: &dyn Fn(&str) -> bool,
    ) -> Status {
        if !usable_name(name, taken) {
            return Status::BadName;
        }
        if !value.is_finite() {
            return Status::BadValue;
        }
        let given = unit.unwrap_or("None");
        let Some(unit_index) = UNITS.iter().position(|u| *u == given) else {
            return Status::BadUnit;
        };
        let n = self.census(c, name);
        let value_entry = |out: &mut Out, ordinal: u8| {
            out.bytes(&[VALUE, ordinal]);
            out.bytes(&value.to_le_bytes());
        };
        if let Some(ordinal) = n.metric {
            if n.values >= MAX_VALUES {
                return Status::Limit;
            }
            return ok_if(self.append_with(c, 10, |out| {
                value_entry(out, ordinal);
                true
            }));
        }
        if n.dimension.is_some() || n.property.is_some() {
            return Status::BadName;
        }
        if n.metrics >= MAX_METRICS {
            return Status::Limit;
        }
        // The name and its first value in one entry's room, or neither: a full pool never
        // leaves a metric without a value.
        ok_if(self.append_with(c, 3 + name.len() + 10, |out| {
            out.bytes(&[METRIC, name.len() as u8]);
            out.str(name);
            out.byte(unit_index as u8);
            value_entry(out, n.metrics as u8);
            true
        }))
    }

    /// Sets custom dimension `key` to `value` on `c`.
    pub fn dimension(
        &mut self,
        c: &mut Custom,
        key: &str,
        value: &str,
        taken: &dyn Fn(&str) -> bool,
    ) -> Status {
        if !usable_name(key, taken) {
            return Status::BadName;
        }
        if value.is_empty() || value.len() > MAX_DIMENSION_VALUE {
            return Status::BadValue;
        }
        let n = self.census(c, key);
        if n.metric.is_some() || n.property.is_some() {
            return Status::BadName;
        }
        if n.dimension.is_none() && n.dimensions >= MAX_DIMENSIONS {
            return Status::Limit;
        }
        let written = self.append_with(c, 4 + key.len() + value.len(), |out| {
            out.bytes(&[DIMENSION, key.len() as u8]);
            out.str(key);
            out.bytes(&(value.len() as u16).to_le_bytes());
            out.str(value);
            true
        });
        // A key given again: the new entry is read, the old one is marked dead.
        self.replaced(written, n.dimension)
    }

    fn replaced(&mut self, written: bool, old: Option<(u16, usize)>) -> Status {
        if !written {
            return Status::Limit;
        }
        if let Some(old) = old {
            self.kill(old);
        }
        Status::Ok
    }

    /// Sets property `key` to `json_value`, which must be one JSON value (kept compact).
    pub fn property(
        &mut self,
        c: &mut Custom,
        key: &str,
        json_value: &str,
        taken: &dyn Fn(&str) -> bool,
    ) -> Status {
        self.property_as(c, key, json_value, taken, false)
    }

    /// [`Pool::property`] for a value the library rendered itself: compact JSON by
    /// construction, kept as it is (not read again to be checked and compacted).
    pub fn own_property(
        &mut self,
        c: &mut Custom,
        key: &str,
        json_value: &str,
        taken: &dyn Fn(&str) -> bool,
    ) -> Status {
        debug_assert!(
            {
                let mut counter = Out::counting();
                crate::json::compact(json_value.as_bytes(), &mut counter)
                    && counter.len() == json_value.len()
            },
            "not compact JSON: {json_value}"
        );
        self.property_as(c, key, json_value, taken, true)
    }

    /// [`Pool::property`]; `compact`: the value is compact JSON already.
    fn property_as(
        &mut self,
        c: &mut Custom,
        key: &str,
        json_value: &str,
        taken: &dyn Fn(&str) -> bool,
        compact: bool,
    ) -> Status {
        if !usable_name(key, taken) {
            return Status::BadName;
        }
        // Checked (and its length known) before anything is kept.
        let json_len = if compact {
            json_value.len()
        } else {
            let mut counter = Out::counting();
            if !crate::json::compact(json_value.as_bytes(), &mut counter) {
                return Status::BadValue;
            }
            counter.len()
        };
        if json_len > MAX_PROPERTY_JSON {
            return Status::BadValue;
        }
        let n = self.census(c, key);
        if n.metric.is_some() || n.dimension.is_some() {
            return Status::BadName;
        }
        if n.property.is_none() && n.properties >= MAX_PROPERTIES {
            return Status::Limit;
        }
        // A value of the same length replaces the old one where it is: a property set again
        // and again (a counter, a state) does not grow the chain.
        if let Some(at) = n.property
            && self.overwrite_json(at, key.len(), json_len, json_value, compact)
        {
            return Status::Ok;
        }
        let written = self.append_with(c, 4 + key.len() + json_len, |out| {
            out.bytes(&[PROPERTY, key.len() as u8]);
            out.str(key);
            out.bytes(&(json_len as u16).to_le_bytes());
            compact_into(json_value, compact, out)
        });
        self.replaced(written, n.property)
    }

    /// The name and unit of `c`'s metric number `ordinal`.
    fn metric_name(&self, c: &Custom, ordinal: u8) -> Option<(FixedStr<MAX_NAME>, &'static str)> {
        let mut found = None;
        let mut i = 0u8;
        self.each(c, |e, _| {
            if let Entry::Metric { name, unit } = e {
                if i == ordinal {
                    found = Some((FixedStr::new(name), unit));
                    return false;
                }
                i += 1;
            }
            true
        });
        found
    }

    /// Moves `from`'s values (given before the invoke started) onto `to`, as if given now, and
    /// frees `from`.
    pub fn absorb(&mut self, to: &mut Custom, from: &mut Custom, taken: &dyn Fn(&str) -> bool) {
        if from.is_empty() {
            return;
        }
        if to.is_empty() {
            *to = *from;
            *from = Custom::NONE;
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut at = from.first;
        let mut guard = 0;
        while at != NONE && guard <= self.chunks.len() {
            guard += 1;
            let Some(ch) = self.chunks.get(usize::from(at)) else {
                break;
            };
            scratch.clear();
            scratch.extend_from_slice(ch.bytes.get(..usize::from(ch.used)).unwrap_or_default());
            at = ch.next;
            each_entry(&scratch, |e, _| {
                let _ = match e {
                    Entry::Metric { .. } => Status::Ok,
                    Entry::Value { ordinal, value } => match self.metric_name(from, ordinal) {
                        Some((name, unit)) => self.metric(to, &name, value, Some(unit), taken),
                        None => Status::Ok,
                    },
                    Entry::Dimension { key, value } => self.dimension(to, key, value, taken),
                    Entry::Property { key, json } => self.property(to, key, json, taken),
                };
                true
            });
        }
        self.scratch = scratch;
        self.free(from);
    }

    /// Calls `metric` with each custom metric of `c` (name, unit) and a function that hands
    /// its values, in order, to another.
    pub fn each_metric(
        &self,
        c: &Custom,
        mut metric: impl FnMut(&str, &str, &mut dyn FnMut(&mut dyn FnMut(f64))),
    ) {
        let mut ordinal = 0u8;
        self.each(c, |e, _| {
            if let Entry::Metric { name, unit } = e {
                let this = ordinal;
                let mut values = |v: &mut dyn FnMut(f64)| {
                    self.each(c, |e, _| {
                        if let Entry::Value { ordinal: o, value } = e
                            && o == this
                        {
                            v(value);
                        }
                        true
                    });
                };
                metric(name, unit, &mut values);
                ordinal += 1;
            }
            true
        });
    }

    /// How many custom metrics `c` has.
    pub fn metric_count(&self, c: &Custom) -> usize {
        let mut n = 0;
        self.each(c, |e, _| {
            n += usize::from(matches!(e, Entry::Metric { .. }));
            true
        });
        n
    }

    /// Calls `f` with each custom dimension of `c` (key, its last value), keys in the order
    /// first given.
    pub fn dimensions(&self, c: &Custom, mut f: impl FnMut(&str, &str)) {
        self.each(c, |e, _| {
            if let Entry::Dimension { key, value } = e {
                f(key, value);
            }
            true
        });
    }

    /// Chunks that can still be had.
    pub fn spare_chunks(&self) -> usize {
        self.free.len() + (self.chunks.capacity() - self.chunks.len())
    }

    /// Whether every value of `c` is a property named in `keys`.
    pub fn only_properties(&self, c: &Custom, keys: &[&str]) -> bool {
        let mut only = true;
        self.each(c, |e, _| {
            only = matches!(e, Entry::Property { key, .. } if keys.contains(&key));
            only
        });
        only
    }

    /// The value (compact JSON) of `c`'s property `key`, if it has one.
    pub fn property_of(&self, c: &Custom, key: &str) -> Option<&str> {
        let mut found = None;
        self.each(c, |e, _| {
            if let Entry::Property { key: k, json } = e
                && k == key
            {
                found = Some(json);
            }
            true
        });
        found
    }

    /// Calls `f` with each custom property of `c` (key, its last value as compact JSON).
    pub fn properties(&self, c: &Custom, mut f: impl FnMut(&str, &str)) {
        self.each(c, |e, _| {
            if let Entry::Property { key, json } = e {
                f(key, json);
            }
            true
        });
    }
}

fn ok_if(appended: bool) -> Status {
    if appended { Status::Ok } else { Status::Limit }
}

/// Calls `f` with each live entry in `bytes` (one chunk's) and its offset; false when `f`
/// stopped.
fn each_entry<'b>(bytes: &'b [u8], mut f: impl FnMut(Entry<'b>, usize) -> bool) -> bool {
    let mut off = 0;
    while off < bytes.len() {
        let Some((entry, len, live)) = read_entry(bytes.get(off..).unwrap_or_default()) else {
            return true;
        };
        if live && !f(entry, off) {
            return false;
        }
        off += len;
    }
    true
}

#[derive(Default)]
struct Census {
    metrics: usize,
    /// Values of the metric with the name asked about.
    values: usize,
    dimensions: usize,
    properties: usize,
    /// The ordinal of the metric with the name asked about.
    metric: Option<u8>,
    /// Where the live dimension or property with that name is.
    dimension: Option<(u16, usize)>,
    property: Option<(u16, usize)>,
}

/// The entry at the start of `b`: itself, its length, and whether it is live.
fn read_entry(b: &[u8]) -> Option<(Entry<'_>, usize, bool)> {
    let kind = *b.first()?;
    let text = |from: usize, len: usize| -> Option<&str> {
        std::str::from_utf8(b.get(from..from + len)?).ok()
    };
    let name_len = usize::from(*b.get(1)?);
    match kind {
        VALUE => {
            let value = f64::from_le_bytes(b.get(2..10)?.try_into().ok()?);
            Some((
                Entry::Value {
                    ordinal: *b.get(1)?,
                    value,
                },
                10,
                true,
            ))
        }
        METRIC => {
            let name = text(2, name_len)?;
            let unit = UNITS.get(usize::from(*b.get(2 + name_len)?)).copied()?;
            Some((Entry::Metric { name, unit }, 3 + name_len, true))
        }
        DIMENSION | PROPERTY | DEAD => {
            let key = text(2, name_len)?;
            let at = 2 + name_len;
            let vlen = usize::from(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?));
            let value = text(at + 2, vlen)?;
            let len = at + 2 + vlen;
            let entry = if kind == PROPERTY {
                Entry::Property { key, json: value }
            } else {
                Entry::Dimension { key, value }
            };
            Some((entry, len, kind != DEAD))
        }
        _ => None,
    }
}

/// One custom value sent through the language-neutral channel: a JSON line appended to the
/// file named by `LAMBDA_METER_CHANNEL`, for runtimes that cannot call C (Node.js without an
/// addon, shell). One of
///
/// ```text
/// {"metric":"OrdersPlaced","value":2,"unit":"Count","requestId":"…","pid":123}
/// {"dimension":"tenant","value":"acme","requestId":"…","pid":123}
/// {"property":"order","value":{"id":7},"requestId":"…","pid":123}
/// ```
///
/// `requestId` and `pid` are optional: a line with a request id belongs to that invoke; one
/// without belongs to the sending process's (`pid`) invoke whose result is sent next (its only
/// one, unless several run at once: then lines should name theirs). Read in place from the
/// channel's bytes: its strings are unescaped into buffers on the stack when applied.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChannelLine<'a> {
    /// The request id, unescaped (cut to the tracker's bound).
    pub request_id: Option<FixedStr<{ crate::runtime_api::MAX_ID_LEN }>>,
    op: ChannelOp<'a>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ChannelOp<'a> {
    Metric {
        name: &'a [u8],
        value: f64,
        unit: Option<&'a [u8]>,
    },
    Dimension {
        key: &'a [u8],
        value: &'a [u8],
    },
    Property {
        key: &'a [u8],
        json: &'a [u8],
    },
}

/// An escaped JSON string's text in `buf`; `None` when not valid or too long for it.
fn text_of<'b>(escaped: &[u8], buf: &'b mut [u8]) -> Option<&'b str> {
    let mut out = Out::new(buf);
    if !crate::json::unescape(escaped, &mut out) || out.overflowed() {
        return None;
    }
    let len = out.len();
    std::str::from_utf8(buf.get(..len)?).ok()
}

impl ChannelLine<'_> {
    /// Adds this line's value to `c`, under the same rules as the C ABI.
    pub fn apply(&self, pool: &mut Pool, c: &mut Custom, taken: &dyn Fn(&str) -> bool) -> Status {
        let mut name_buf = [0u8; MAX_NAME + 4];
        match self.op {
            ChannelOp::Metric { name, value, unit } => {
                let Some(name) = text_of(name, &mut name_buf) else {
                    return Status::BadName;
                };
                let mut unit_buf = [0u8; 32];
                let unit = match unit {
                    Some(u) => match text_of(u, &mut unit_buf) {
                        Some(u) => Some(u),
                        None => return Status::BadUnit,
                    },
                    None => None,
                };
                pool.metric(c, name, value, unit, taken)
            }
            ChannelOp::Dimension { key, value } => {
                let Some(key) = text_of(key, &mut name_buf) else {
                    return Status::BadName;
                };
                let mut value_buf = [0u8; MAX_DIMENSION_VALUE + 4];
                match text_of(value, &mut value_buf) {
                    Some(v) => pool.dimension(c, key, v, taken),
                    None => Status::BadValue,
                }
            }
            ChannelOp::Property { key, json } => {
                let Some(key) = text_of(key, &mut name_buf) else {
                    return Status::BadName;
                };
                match std::str::from_utf8(json) {
                    Ok(j) => pool.property(c, key, j, taken),
                    Err(_) => Status::BadValue,
                }
            }
        }
    }
}

/// Calls `line` with each channel line in `bytes` (whole lines only) that this process
/// (`own_pid`) should apply: those with its pid or with none (lines of other processes sharing
/// the file are theirs). Lines that are not one of the forms above are skipped; returns how
/// many.
pub fn each_channel_line<'a>(
    bytes: &'a [u8],
    own_pid: u32,
    mut line: impl FnMut(ChannelLine<'a>),
) -> usize {
    let mut bad = 0;
    for raw in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match channel_line(raw, own_pid) {
            Some(Some(l)) => line(l),
            Some(None) => {}
            None => bad += 1,
        }
    }
    bad
}

/// One channel line: `Some(None)` when it is another process's, `None` when it is not a line
/// of the channel's forms.
fn channel_line(raw: &[u8], own_pid: u32) -> Option<Option<ChannelLine<'_>>> {
    use crate::json::Value;
    let mut metric = None;
    let mut dimension = None;
    let mut property = None;
    let mut value = None;
    let mut unit = None;
    let mut request_id = None;
    let mut pid = None;
    let mut pid_bad = false;
    let mut child = false;
    let ok = crate::json::members(raw, |key, v| match key {
        b"downstreamOf" => child = true,
        b"metric" => metric = Some(v),
        b"dimension" => dimension = Some(v),
        b"property" => property = Some(v),
        b"value" => value = Some(v),
        b"unit" => unit = Some(v),
        b"requestId" => request_id = Some(v),
        b"pid" => match v {
            Value::Number(n) => {
                pid = n.parse::<u64>().ok().or_else(|| {
                    pid_bad = true;
                    None
                })
            }
            _ => pid_bad = true,
        },
        _ => {}
    });
    if !ok {
        return None;
    }
    // A child process's downstream figures: the engine's to read (see
    // `crate::downstream::child_line`), no custom value.
    if child || pid_bad || pid.is_some_and(|p| p != u64::from(own_pid)) {
        return Some(None);
    }
    fn string(v: Option<Value<'_>>) -> Option<&[u8]> {
        match v {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }
    let op = if let Some(name) = string(metric) {
        ChannelOp::Metric {
            name,
            value: value?.as_f64()?,
            unit: string(unit),
        }
    } else if let Some(key) = string(dimension) {
        ChannelOp::Dimension {
            key,
            value: string(value)?,
        }
    } else if let Some(key) = string(property) {
        ChannelOp::Property {
            key,
            json: value?.raw(raw),
        }
    } else {
        return None;
    };
    let request_id = match string(request_id) {
        Some(escaped) => {
            let mut buf = [0u8; crate::runtime_api::MAX_ID_LEN * 2];
            let mut out = Out::new(&mut buf);
            if !crate::json::unescape(escaped, &mut out) {
                return None;
            }
            let len = out.len();
            Some(FixedStr::from_bytes(buf.get(..len).unwrap_or_default()))
        }
        None => None,
    };
    Some(Some(ChannelLine { request_id, op }))
}

/// A number that names the calling thread while it lives: its `pthread_self` (its thread
/// descriptor's address, read from the thread pointer: no system call, and none of the
/// `__tls_get_addr` calls a thread-local of a loaded library costs; a thread that has ended
/// may pass its number on).
#[allow(unsafe_code)]
pub fn thread_key() -> u64 {
    // SAFETY: pthread_self has no preconditions; it reads the calling thread's descriptor.
    unsafe { libc::pthread_self() as u64 }
}

/// `json` into `out`: as it is where it is `compact` JSON already, else compacted (false where
/// it is not JSON).
fn compact_into(json: &str, compact: bool, out: &mut Out) -> bool {
    if compact {
        out.str(json);
        true
    } else {
        crate::json::compact(json.as_bytes(), out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn none(_: &str) -> bool {
        false
    }

    fn pool() -> Pool {
        Pool::reserve().unwrap()
    }

    fn metrics(p: &Pool, c: &Custom) -> Vec<(String, String, Vec<f64>)> {
        let mut out = Vec::new();
        p.each_metric(c, |name, unit, values| {
            let mut vs = Vec::new();
            values(&mut |v| vs.push(v));
            out.push((name.to_string(), unit.to_string(), vs));
        });
        out
    }

    fn pairs(each: impl FnOnce(&mut dyn FnMut(&str, &str))) -> Vec<(String, String)> {
        let mut out = Vec::new();
        each(&mut |k, v| out.push((k.to_string(), v.to_string())));
        out
    }

    #[test]
    fn a_metric_given_again_is_a_value_array_up_to_the_limit() {
        let mut p = pool();
        let mut c = Custom::NONE;
        assert_eq!(
            p.metric(&mut c, "Orders", 1.0, Some("Count"), &none),
            Status::Ok
        );
        assert_eq!(p.metric(&mut c, "Orders", 2.5, None, &none), Status::Ok);
        assert_eq!(p.metric(&mut c, "Plain", 1.0, None, &none), Status::Ok);
        let m = metrics(&p, &c);
        assert_eq!(m[0], ("Orders".into(), "Count".into(), vec![1.0, 2.5]));
        assert_eq!(m[1].1, "None");
        for _ in 2..MAX_VALUES {
            assert_eq!(p.metric(&mut c, "Orders", 0.0, None, &none), Status::Ok);
        }
        assert_eq!(p.metric(&mut c, "Orders", 0.0, None, &none), Status::Limit);
        assert_eq!(metrics(&p, &c)[0].2.len(), MAX_VALUES);
        assert_eq!(p.metric_count(&c), 2);
    }

    #[test]
    fn bad_input_gets_its_status_and_changes_nothing() {
        let taken = |n: &str| n == "Duration";
        let mut p = pool();
        let mut c = Custom::NONE;
        for (name, value, unit, want) in [
            ("", 1.0, None, Status::BadName),
            ("Duration", 1.0, None, Status::BadName),
            ("_aws", 1.0, None, Status::BadName),
            ("a\nb", 1.0, None, Status::BadName),
            (&"x".repeat(256)[..], 1.0, None, Status::BadName),
            ("ok", f64::NAN, None, Status::BadValue),
            ("ok", f64::INFINITY, None, Status::BadValue),
            ("ok", 1.0, Some("Parsecs"), Status::BadUnit),
            ("ok", 1.0, Some("count"), Status::BadUnit),
        ] {
            assert_eq!(
                p.metric(&mut c, name, value, unit, &taken),
                want,
                "{name:?}"
            );
        }
        assert_eq!(p.dimension(&mut c, "tenant", "", &taken), Status::BadValue);
        assert_eq!(
            p.dimension(&mut c, "tenant", &"v".repeat(1025), &taken),
            Status::BadValue
        );
        assert_eq!(
            p.property(&mut c, "order", "{\"id\":", &taken),
            Status::BadValue
        );
        assert_eq!(p.property(&mut c, "order", "1 2", &taken), Status::BadValue);
        assert!(c.is_empty());
        // One name, one member: a metric's name cannot be a dimension or property too.
        assert_eq!(p.metric(&mut c, "x", 1.0, None, &taken), Status::Ok);
        assert_eq!(p.dimension(&mut c, "x", "v", &taken), Status::BadName);
        assert_eq!(p.property(&mut c, "x", "1", &taken), Status::BadName);
        assert_eq!(p.dimension(&mut c, "d", "v", &taken), Status::Ok);
        assert_eq!(p.metric(&mut c, "d", 1.0, None, &taken), Status::BadName);
    }

    #[test]
    fn a_property_set_again_with_a_value_of_the_same_length_does_not_grow() {
        let mut p = pool();
        let mut c = Custom::NONE;
        for i in 0..10_000 {
            let v = format!("{}", 10_000 + i);
            assert_eq!(p.property(&mut c, "step", &v, &none), Status::Ok);
        }
        assert_eq!(p.free.len() + 1, p.chunks.len(), "one chunk holds it");
        assert_eq!(
            pairs(|f| p.properties(&c, f)),
            vec![("step".into(), "19999".into())]
        );
        assert_eq!(p.property(&mut c, "step", "\"longer\"", &none), Status::Ok);
        assert_eq!(
            pairs(|f| p.properties(&c, f)),
            vec![("step".into(), "\"longer\"".into())]
        );
    }

    #[test]
    fn the_librarys_own_compact_values_are_kept_as_a_checked_one_is() {
        let mut p = pool();
        let (mut checked, mut own) = (Custom::NONE, Custom::NONE);
        let spaced = r#"[ {"name" : "a.example", "calls" : 3 } ]"#;
        let compact = r#"[{"name":"a.example","calls":3}]"#;
        assert_eq!(p.property(&mut checked, "d", spaced, &none), Status::Ok);
        assert_eq!(p.own_property(&mut own, "d", compact, &none), Status::Ok);
        assert_eq!(
            pairs(|f| p.properties(&checked, f)),
            pairs(|f| p.properties(&own, f))
        );
        // Set again: replaced where it is (same length), or appended.
        let same = r#"[{"name":"b.example","calls":4}]"#;
        assert_eq!(p.own_property(&mut own, "d", same, &none), Status::Ok);
        assert_eq!(p.own_property(&mut own, "d", "[]", &none), Status::Ok);
        assert_eq!(
            pairs(|f| p.properties(&own, f)),
            vec![("d".into(), "[]".into())]
        );
        let too_long = format!("\"{}\"", "x".repeat(MAX_PROPERTY_JSON));
        assert_eq!(
            p.own_property(&mut own, "e", &too_long, &none),
            Status::BadValue
        );
        assert_eq!(
            p.own_property(&mut own, "_aws", "1", &|k| k == "_aws"),
            Status::BadName
        );
    }

    #[test]
    fn dimensions_and_properties_take_the_last_value_and_keep_json_compact() {
        let mut p = pool();
        let mut c = Custom::NONE;
        assert_eq!(p.dimension(&mut c, "tenant", "a", &none), Status::Ok);
        assert_eq!(p.dimension(&mut c, "other", "z", &none), Status::Ok);
        assert_eq!(p.dimension(&mut c, "tenant", "b", &none), Status::Ok);
        assert_eq!(
            pairs(|f| p.dimensions(&c, f)),
            vec![("other".into(), "z".into()), ("tenant".into(), "b".into())]
        );
        assert_eq!(
            p.property(
                &mut c,
                "order",
                " { \"id\" : 7 , \"tags\":[ \"a\" ] } ",
                &none
            ),
            Status::Ok
        );
        assert_eq!(
            pairs(|f| p.properties(&c, f)),
            vec![("order".into(), r#"{"id":7,"tags":["a"]}"#.into())]
        );
        for i in 2..MAX_DIMENSIONS {
            assert_eq!(
                p.dimension(&mut c, &format!("d{i}"), "v", &none),
                Status::Ok
            );
        }
        assert_eq!(p.dimension(&mut c, "one-more", "v", &none), Status::Limit);
        assert_eq!(
            p.dimension(&mut c, "tenant", "c", &none),
            Status::Ok,
            "a set key"
        );
    }

    #[test]
    fn a_full_pool_says_limit_and_freed_chunks_serve_again() {
        let mut p = Pool::with_chunks(2).unwrap();
        let mut a = Custom::NONE;
        let mut b = Custom::NONE;
        let big = format!("\"{}\"", "j".repeat(4000));
        assert_eq!(p.property(&mut a, "p", &big, &none), Status::Ok);
        assert_eq!(p.property(&mut b, "p", &big, &none), Status::Ok);
        let mut c = Custom::NONE;
        assert_eq!(p.metric(&mut c, "m", 1.0, None, &none), Status::Limit);
        assert!(c.is_empty());
        p.free(&mut a);
        assert_eq!(p.metric(&mut c, "m", 1.0, None, &none), Status::Ok);
    }

    #[test]
    fn values_given_before_an_invoke_move_onto_it() {
        let mut p = pool();
        let mut pending = Custom::NONE;
        let mut invoke = Custom::NONE;
        p.metric(&mut pending, "AtInit", 1.0, Some("Count"), &none);
        p.metric(&mut pending, "AtInit", 2.0, None, &none);
        p.dimension(&mut pending, "tenant", "a", &none);
        p.metric(&mut invoke, "Own", 3.0, None, &none);
        p.absorb(&mut invoke, &mut pending, &none);
        assert!(pending.is_empty());
        let m = metrics(&p, &invoke);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1], ("AtInit".into(), "Count".into(), vec![1.0, 2.0]));
        assert_eq!(
            pairs(|f| p.dimensions(&invoke, f)),
            vec![("tenant".into(), "a".into())]
        );
    }

    #[test]
    fn channel_lines_of_this_process_or_none_and_bad_ones_counted() {
        let bytes = br#"{"metric":"A","value":2,"unit":"Count","pid":7}
{"metric":"B","value":1,"pid":8}
{"dimension":"tenant","value":"acme","requestId":"r-1"}
{"property":"order","value":{"id": 7}}
not json
{"metric":"C","value":"two"}
{"other":1}
"#;
        let mut lines = Vec::new();
        let bad = each_channel_line(bytes, 7, |l| lines.push(l));
        assert_eq!(bad, 3);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[1].request_id.unwrap().as_str(), "r-1");
        let mut p = pool();
        let mut c = Custom::NONE;
        for l in &lines {
            assert_eq!(l.apply(&mut p, &mut c, &none), Status::Ok);
        }
        assert_eq!(metrics(&p, &c)[0], ("A".into(), "Count".into(), vec![2.0]));
        assert_eq!(
            pairs(|f| p.properties(&c, f)),
            vec![("order".into(), r#"{"id":7}"#.into())]
        );
    }

    #[test]
    fn threads_have_their_own_keys() {
        let here = thread_key();
        assert_eq!(here, thread_key());
        let there = std::thread::spawn(thread_key).join().unwrap_or(here);
        assert_ne!(here, there);
    }
}
