//! CloudWatch Embedded Metric Format encoder: one JSON line per invoke.
//!
//! Lines are written into a buffer reserved by the caller ([`Out`]): encoding never
//! allocates, and a line that does not fit is not written at all.

use crate::custom::{Custom, Pool};
use crate::metrics::{Class, Number};
use crate::settings::{Destination, Dimension, Settings};
use crate::text::Out;
use crate::tracker::{InvokeRecord, RecordKind};

/// The `initType` of a first invoke that found its environment initialised ahead of demand.
pub const PROACTIVE_INIT_TYPE: &str = "proactive-initialization";

/// A catalog metric with its value on one record.
#[derive(Clone, Copy)]
struct MetricValue {
    /// Its place in the catalog.
    index: u8,
    value: Number,
    /// Declared in the directive (a billed metric), else a plain value of the record.
    declared: bool,
}

impl MetricValue {
    fn metric(&self) -> Option<&'static crate::metrics::Metric> {
        crate::metrics::CATALOG.get(usize::from(self.index))
    }
    fn name(&self) -> &'static str {
        self.metric().map_or("", |m| m.name)
    }
    fn unit(&self) -> &'static str {
        self.metric().map_or("", |m| m.unit)
    }
}

/// The most metrics one record can carry (every metric of the catalog).
const MAX_METRICS: usize = crate::metrics::CATALOG.len();

/// The metrics of one record, without allocating.
struct Metrics {
    /// The first `len` are written (the rest never read: not cleared for each record).
    items: [std::mem::MaybeUninit<MetricValue>; MAX_METRICS],
    len: usize,
    /// Which catalog metrics (bit = catalog index) the record has a value for.
    present: u32,
    /// Which catalog metrics (bit = catalog index) the record declares: with the record's kind
    /// and init type, the key of its rendered prefix.
    mask: u32,
}

impl Metrics {
    fn new() -> Metrics {
        Metrics {
            items: [std::mem::MaybeUninit::uninit(); MAX_METRICS],
            len: 0,
            present: 0,
            mask: 0,
        }
    }
    #[allow(unsafe_code)]
    fn iter(&self) -> impl Iterator<Item = &MetricValue> {
        // SAFETY: the first `len` items were written (`metrics_of` counts each it writes, and
        // `len` never passes the array's length); MaybeUninit<T> has T's layout.
        let written: &[MetricValue] = unsafe {
            std::slice::from_raw_parts(self.items.as_ptr().cast(), self.len.min(MAX_METRICS))
        };
        written.iter()
    }
    fn declared(&self) -> impl Iterator<Item = &MetricValue> {
        self.iter().filter(|m| m.declared)
    }
    /// Whether the settings declare none of the record's values (it is then not written:
    /// an EMF directive needs a metric).
    fn none_declared(&self) -> bool {
        self.mask == 0
    }
}

/// The values a record carries: each catalog metric ([`crate::metrics::CATALOG`]) it has a
/// value for, declared when the settings select it; an opt-in metric only when selected.
/// Fills `m` (made by [`Metrics::new`], not returned: it is not small).
fn metrics_of(rec: &InvokeRecord, s: &Settings, m: &mut Metrics) {
    let context = s.metric_context();
    let declared_bits = s.declared_bits();
    // The places to read, in the catalog's order, the opt-in ones the settings do not select
    // never looked at. Each place is written out with its reader a constant, which the
    // compiler inlines: no call through a pointer per metric.
    let wanted = NOT_OPT_IN | declared_bits;
    macro_rules! places {
        ($($i:literal)*) => {$(
            if let Some(read) = const { reader($i) }
                && wanted & (1 << $i) != 0
                && let Some(value) = read(rec, &context)
                && let Some(slot) = m.items.get_mut(m.len)
            {
                let declared = declared_bits & (1 << $i) != 0;
                slot.write(MetricValue {
                    index: $i,
                    value,
                    declared,
                });
                m.len += 1;
                m.present |= 1 << $i;
                if declared {
                    m.mask |= 1 << $i;
                }
            }
        )*};
    }
    places!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31);
}

/// The reader of catalog place `i`, if the catalog has one there (evaluated when the library
/// is built).
#[allow(clippy::indexing_slicing)] // Checked against the catalog's length first.
const fn reader(i: usize) -> Option<fn(&InvokeRecord, &crate::metrics::Context) -> Option<Number>> {
    if i < MAX_METRICS {
        Some(crate::metrics::CATALOG[i].read)
    } else {
        None
    }
}

/// The catalog's metrics that are not opt-in (read for every record), as bits by place.
#[allow(clippy::indexing_slicing)] // Evaluated when the library is built: out of bounds fails it.
const NOT_OPT_IN: u64 = {
    let mut bits = 0u64;
    let mut i = 0;
    while i < MAX_METRICS {
        if !matches!(crate::metrics::CATALOG[i].class, Class::OptIn) {
            bits |= 1 << i;
        }
        i += 1;
    }
    bits
};

// `present` and `mask` are 32 bits a catalog place.
const _: () = assert!(MAX_METRICS <= 32);

/// The longest member start, `,"Name":`, of a catalog metric.
const MEMBER_MAX: usize = 48;

/// Each catalog metric's member start, `,"Name":`, made when the library is built (one copy a
/// metric, not three; a name too long for it does not build).
const MEMBER_STARTS: [([u8; MEMBER_MAX], usize); MAX_METRICS] = member_starts();

#[allow(clippy::indexing_slicing)] // Evaluated when the library is built: out of bounds fails it.
const fn member_starts() -> [([u8; MEMBER_MAX], usize); MAX_METRICS] {
    let mut all = [([0u8; MEMBER_MAX], 0); MAX_METRICS];
    let mut i = 0;
    while i < MAX_METRICS {
        let name = crate::metrics::CATALOG[i].name.as_bytes();
        let mut m = [0u8; MEMBER_MAX];
        m[0] = b',';
        m[1] = b'"';
        let mut j = 0;
        while j < name.len() {
            m[2 + j] = name[j];
            j += 1;
        }
        m[2 + j] = b'"';
        m[3 + j] = b':';
        all[i] = (m, name.len() + 4);
        i += 1;
    }
    all
}

/// Catalog metric `i`'s member start (see [`MEMBER_STARTS`]).
#[cfg(test)]
fn member_start(i: usize) -> &'static [u8] {
    MEMBER_STARTS
        .get(i)
        .and_then(|(m, len)| m.get(..*len))
        .unwrap_or_default()
}

/// Members of a record that are not metrics (a custom name may not take one).
const PROPERTIES: &[&str] = &[
    "requestId",
    "traceId",
    "functionVersion",
    "service",
    "initType",
    "runtime",
    "errorType",
    "memorySize",
    "restored",
    "exitReason",
    "initStatus",
    crate::downstream::PROPERTY,
    crate::downstream::IN_FLIGHT_PROPERTY,
    crate::downstream::POST_RESPONSE_PROPERTY,
    crate::blocked::PROPERTY,
];

/// Names no record of ours carries that custom values may not take either: an earlier
/// property of cold starts (now the `ColdStart` metric), which dashboards may still query.
const ALSO_RESERVED: &[&str] = &["coldStart"];

/// Members only a batched record has.
const BATCH_PROPERTIES: &[&str] = &["invokes"];

/// Whether `name` is a member a record of lambda-meter's own may have, under any settings: a
/// built-in metric, property or dimension key. Custom metrics, dimensions and properties may
/// not use these names.
pub fn reserved(name: &str) -> bool {
    record_keys().any(|k| k == name) || ALSO_RESERVED.contains(&name)
}

/// Every top-level key a record of lambda-meter's own may carry, under any settings: the EMF
/// metadata, the catalog's metrics, the properties and the dimension keys (the function's
/// custom values aside).
pub fn record_keys() -> impl Iterator<Item = &'static str> {
    std::iter::once("_aws")
        .chain(crate::metrics::CATALOG.iter().map(|m| m.name))
        .chain(PROPERTIES.iter().copied())
        .chain(BATCH_PROPERTIES.iter().copied())
        .chain(Dimension::ALL.iter().map(|d| d.key()))
}

/// The record's members that are properties (not metrics, not the EMF metadata).
pub fn property_keys() -> impl Iterator<Item = &'static str> {
    PROPERTIES.iter().chain(BATCH_PROPERTIES).copied()
}

/// The constant part of records (from `CloudWatchMetrics` through the dimension values), by
/// which metrics a record declares, its kind and its init type: rendered once, copied after.
/// It also remembers whether this process has written the environment's constant properties
/// to its log stream yet. Room for [`MAX_PREFIXES`] of [`PREFIX_BYTES`] each is reserved when
/// it is made.
#[derive(Debug)]
pub struct Prefixes {
    /// Each rendered prefix's key, start and length in `bytes`.
    rendered: Vec<(u64, usize, usize)>,
    bytes: Vec<u8>,
    /// The environment's constant properties went out with an earlier record.
    constants_written: bool,
}

/// At most this many prefixes are kept (a record's shape takes few values).
const MAX_PREFIXES: usize = 16;
/// The room for each (a prefix names the namespace, the dimension keys and values, and the
/// declared metrics: a longer one is not kept, only written).
const PREFIX_BYTES: usize = 4096;

impl Prefixes {
    /// Reserves the room; `None` when it cannot be had.
    pub fn try_new() -> Option<Prefixes> {
        let mut rendered = Vec::new();
        rendered.try_reserve_exact(MAX_PREFIXES).ok()?;
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(MAX_PREFIXES * PREFIX_BYTES).ok()?;
        Some(Prefixes {
            rendered,
            bytes,
            constants_written: false,
        })
    }

    /// Whether the environment's constant properties are in the log stream already.
    pub fn constants_written(&self) -> bool {
        self.constants_written
    }

    /// Notes that they are (another process of the environment wrote them).
    pub fn note_constants_written(&mut self) {
        self.constants_written = true;
    }

    /// Takes that back: the record that carried them was not kept after all.
    pub fn forget_constants_written(&mut self) {
        self.constants_written = false;
    }

    fn find(&self, key: u64) -> Option<&[u8]> {
        let (_, start, len) = self.rendered.iter().find(|(k, _, _)| *k == key)?;
        self.bytes.get(*start..*start + *len)
    }

    fn keep(&mut self, key: u64, text: &[u8]) {
        if self.rendered.len() < self.rendered.capacity()
            && text.len() <= PREFIX_BYTES
            && self.bytes.len() + text.len() <= self.bytes.capacity()
        {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(text);
            self.rendered.push((key, start, text.len()));
        }
    }
}

/// Whether a record carries the environment's constant properties (`functionVersion`,
/// `memorySize`, `runtime`, `initType`, `service`; those that are dimensions are on every
/// record anyway): on a record that stands alone (a journal's prepared record, a test), on the
/// first record a process writes to the environment's log stream, and on a record that starts
/// one (a cold start, an init error, the first after a SnapStart restore): every later record
/// of the stream shares them.
///
/// Encodes one record as one EMF line (with its trailing newline) into `out`. False, with
/// `out` left as it was, when the settings declare none of its metrics or the line does not
/// fit.
pub fn encode(rec: &InvokeRecord, s: &Settings, pool: &Pool, out: &mut Out) -> bool {
    encode_with(rec, s, pool, None, true, out, None)
}

/// [`encode`] for the process's log stream: reuses (and keeps) the rendered constant part of
/// records of the same shape, and writes the environment's constant properties only where a
/// stream needs them.
pub fn encode_cached(
    rec: &InvokeRecord,
    s: &Settings,
    pool: &Pool,
    prefixes: &mut Prefixes,
    out: &mut Out,
) -> bool {
    encode_marked(rec, s, pool, prefixes, out, None)
}

/// Where one metric is in an encoded line: the metric `name` to look for (its catalog
/// `index`), and once encoded where its declaration may be (the line's `CloudWatchMetrics`
/// member when the record declares the metric, else an empty span) and the metric's own member
/// (from its comma), when it has one. Positions count from where the line starts.
#[derive(Clone, Copy, Debug)]
pub struct Marks {
    pub name: &'static str,
    index: u8,
    pub declarations: (usize, usize),
    pub member: Option<usize>,
}

impl Marks {
    /// Marks for the catalog metric `name` (a constant: its index is found when the library
    /// is built, in `const { Marks::of(…) }`).
    pub const fn of(name: &'static str) -> Marks {
        Marks {
            name,
            index: crate::metrics::index_of(name),
            declarations: (0, 0),
            member: None,
        }
    }
}

/// [`encode_cached`], noting in `marks` where its metric is.
pub fn encode_marked(
    rec: &InvokeRecord,
    s: &Settings,
    pool: &Pool,
    prefixes: &mut Prefixes,
    out: &mut Out,
    marks: Option<&mut Marks>,
) -> bool {
    let constants = !prefixes.constants_written || starts_stream(rec) || !to_log_stream(s);
    if !encode_with(rec, s, pool, Some(prefixes), constants, out, marks) {
        return false;
    }
    if constants && to_log_stream(s) {
        prefixes.constants_written = true;
    }
    true
}

/// A batchable record as it is written alone if its process ends while holding it (see
/// [`crate::journal::Journal::hold`]): a record of a stream that has the environment's
/// properties already.
pub fn encode_held(rec: &InvokeRecord, s: &Settings, pool: &Pool, out: &mut Out) -> bool {
    encode_with(rec, s, pool, None, !to_log_stream(s), out, None)
}

/// Whether `rec` is the first record of an environment's log stream: its cold start (or its
/// first invoke after a proactive initialization), its init error, or the first invoke after
/// a SnapStart restore (a new environment, same process).
pub fn starts_stream(rec: &InvokeRecord) -> bool {
    rec.cold_start || rec.proactive_init || rec.restored || rec.kind == RecordKind::InitError
}

/// Whether records go to the function's log stream (stdout or stderr), where a record's
/// neighbours are its environment's; a file or the CloudWatch agent gets every property on
/// every record.
fn to_log_stream(s: &Settings) -> bool {
    matches!(s.destination, Destination::Stdout | Destination::Stderr)
}

/// Runs `write` on `out`; when it overflows, forgets what it wrote. Whether it fitted.
fn whole(out: &mut Out, write: impl FnOnce(&mut Out)) -> bool {
    let mark = out.len();
    write(out);
    if out.overflowed() {
        out.truncate(mark);
        return false;
    }
    true
}

fn encode_with(
    rec: &InvokeRecord,
    s: &Settings,
    pool: &Pool,
    prefixes: Option<&mut Prefixes>,
    constants: bool,
    out: &mut Out,
    mut marks: Option<&mut Marks>,
) -> bool {
    let mut metrics = Metrics::new();
    metrics_of(rec, s, &mut metrics);
    if metrics.none_declared() {
        return false;
    }
    let init_type = if rec.proactive_init {
        PROACTIVE_INIT_TYPE
    } else {
        s.init_type.as_str()
    };
    let key = u64::from(metrics.mask)
        | u64::from(rec.proactive_init) << 32
        | u64::from(rec.kind == RecordKind::InitError) << 33;
    // Custom metrics have a directive of their own in the prefix: such a record's is not kept.
    let custom = (!rec.custom.is_empty()).then_some(&rec.custom);
    let has_custom_metrics = custom.is_some_and(|c| pool.metric_count(c) > 0);
    let prefixes = prefixes.filter(|_| !has_custom_metrics);
    let line_at = out.len();
    whole(out, |out| {
        out.str("{\"_aws\":{\"Timestamp\":");
        push_number(out, Number::int(rec.timestamp_ms));
        let declarations_at = out.len() - line_at;
        let declared = |out: &mut Out, custom| {
            push_prefix(
                out,
                &mut metrics.declared().map(|m| (m.name(), m.unit())),
                s,
                init_type,
                pool,
                custom,
            )
        };
        match prefixes {
            Some(p) => match p.find(key) {
                Some(text) => out.bytes(text),
                None => {
                    let from = out.len();
                    declared(out, None);
                    if !out.overflowed() {
                        p.keep(key, out.written().get(from..).unwrap_or_default());
                    }
                }
            },
            None => declared(out, custom),
        }
        if let Some(m) = marks.as_deref_mut() {
            let end = out.len() - line_at;
            // The mask's bits are catalog indexes (none past the catalog).
            let bit = 1u32.checked_shl(u32::from(m.index)).unwrap_or(0);
            let declares = metrics.mask & bit != 0;
            m.declarations = (if declares { declarations_at } else { end }, end);
        }
        for m in metrics.iter() {
            if let Some(marks) = marks.as_deref_mut().filter(|k| k.index == m.index) {
                marks.member = Some(out.len() - line_at);
            }
            // Metric names are the catalog's plain ASCII: no escaping needed.
            if let Some((start, len)) = MEMBER_STARTS.get(usize::from(m.index)) {
                out.block(start, *len);
            }
            push_number(out, m.value);
        }
        // Members of the record's own (known names: their starts written as they are).
        if !rec.request_id.is_empty() {
            out.bytes(b",\"requestId\":");
            push_str(out, &rec.request_id);
        }
        if let Some(trace) = rec.trace_id.as_ref().filter(|_| s.trace_id) {
            out.bytes(b",\"traceId\":");
            push_str(out, trace);
        }
        if constants {
            // Less the dimensions' keys, written already.
            let mut keys = Keys::default();
            for d in s.dimension_sets.iter().flatten() {
                keys.add(d.key());
            }
            push_constants(out, s, init_type, &mut keys);
        }
        if let Some(t) = &rec.error_type {
            out.bytes(b",\"errorType\":");
            push_str(out, t);
        }
        if rec.restored {
            out.str(",\"restored\":true");
        }
        if rec.kind == RecordKind::Unstarted {
            // As Lambda's INIT_REPORT says how an init ended.
            push_member(
                out,
                "initStatus",
                if rec.timed_out { "timeout" } else { "error" },
            );
        }
        if let Some(c) = custom {
            push_custom_members(out, pool, c);
        }
        out.str("}\n");
    })
}

/// The environment's constant properties, less those already written as dimensions.
fn push_constants<'a>(out: &mut Out, s: &'a Settings, init_type: &'a str, keys: &mut Keys<'a>) {
    let mut property = |out: &mut Out, key: &'static str, value: &str| {
        if keys.add(key) {
            push_member(out, key, value);
        }
    };
    if let Some(v) = &s.function_version {
        property(out, "functionVersion", v);
    }
    if let Some(service) = &s.service {
        property(out, "service", service);
    }
    property(out, "initType", init_type);
    property(out, "runtime", &s.runtime);
    if let Some(m) = s.memory_size_mb {
        out.str(",\"memorySize\":");
        push_number(out, Number::int(m));
    }
}

/// The properties of lambda-meter's own a batched record carries, as arrays of the invokes'
/// values (`null` for an invoke without).
const BATCHED_PROPERTIES: [&str; 2] = [
    crate::downstream::PROPERTY,
    crate::downstream::POST_RESPONSE_PROPERTY,
];

/// Whether a finished record may share a batched record with others: a plain warm invoke,
/// with no values but what it waited on ([`BATCHED_PROPERTIES`]). A stream's first record (it
/// carries the environment's properties), a timeout, and a record with the function's own
/// values go alone.
pub fn batchable(rec: &InvokeRecord, pool: &Pool) -> bool {
    rec.kind == RecordKind::Invoke
        && !starts_stream(rec)
        && !rec.timed_out
        && (rec.custom.is_empty() || pool.only_properties(&rec.custom, &BATCHED_PROPERTIES))
}

/// Encodes batchable records (see [`batchable`]) as one EMF line: each value becomes an array
/// of the invokes' values (a metric's `SampleCount` is the number of invokes that have it, so
/// `ColdStart` and `Timeouts` count every invoke), `requestId` the array of their ids,
/// `errorType` one entry per failed invoke, each of [`BATCHED_PROPERTIES`] an array of the
/// invokes' values (`null` where an invoke has none), and `invokes` their number. The record's
/// `Timestamp` is the first invoke's. One record is encoded as [`encode_cached`] would.
pub fn encode_batch(
    recs: &[InvokeRecord],
    s: &Settings,
    pool: &Pool,
    prefixes: &mut Prefixes,
    out: &mut Out,
) -> bool {
    let first = match recs {
        [] => return false,
        [one] => return encode_cached(one, s, pool, prefixes, out),
        [first, ..] => first,
    };
    // Which catalog metrics any record has, and which of those are declared: the columns, in
    // catalog order.
    let mut present = 0u32;
    let mut declared = 0u32;
    for rec in recs {
        let mut m = Metrics::new();
        metrics_of(rec, s, &mut m);
        present |= m.present;
        declared |= m.mask;
    }
    if declared == 0 {
        return false;
    }
    let bit = |i: usize| 1u32.checked_shl(i as u32).unwrap_or(0);
    let columns = || {
        crate::metrics::CATALOG
            .iter()
            .enumerate()
            .filter(move |(i, _)| present & bit(*i) != 0)
    };
    let constants = !prefixes.constants_written || !to_log_stream(s);
    let fitted = whole(out, |out| {
        out.str("{\"_aws\":{\"Timestamp\":");
        push_number(out, Number::int(first.timestamp_ms));
        push_prefix(
            out,
            &mut columns()
                .filter(|(i, _)| declared & bit(*i) != 0)
                .map(|(_, m)| (m.name, m.unit)),
            s,
            &s.init_type,
            pool,
            None,
        );
        let mut keys = Keys::default();
        for d in s.dimension_sets.iter().flatten() {
            keys.add(d.key());
        }
        for (_, metric) in columns() {
            out.str(",\"");
            out.str(metric.name);
            out.str("\":[");
            let mut n = 0;
            for rec in recs {
                if let Some(v) = (metric.read)(rec, &s.metric_context()) {
                    if n > 0 {
                        out.byte(b',');
                    }
                    push_number(out, v);
                    n += 1;
                }
            }
            out.byte(b']');
        }
        out.str(",\"invokes\":");
        push_number(out, Number::int(recs.len() as u64));
        out.str(",\"requestId\":[");
        for (i, r) in recs.iter().enumerate() {
            if i > 0 {
                out.byte(b',');
            }
            push_str(out, &r.request_id);
        }
        out.byte(b']');
        // One entry per failed invoke (Errors 1), in order: its type, or null when it had none.
        if recs.iter().any(|r| r.errored) {
            out.str(",\"errorType\":[");
            for (i, r) in recs.iter().filter(|r| r.errored).enumerate() {
                if i > 0 {
                    out.byte(b',');
                }
                match &r.error_type {
                    Some(t) => push_str(out, t),
                    None => out.str("null"),
                }
            }
            out.byte(b']');
        }
        for key in BATCHED_PROPERTIES {
            if !recs
                .iter()
                .any(|r| pool.property_of(&r.custom, key).is_some())
            {
                continue;
            }
            out.str(",\"");
            out.str(key);
            out.str("\":[");
            for (i, r) in recs.iter().enumerate() {
                if i > 0 {
                    out.byte(b',');
                }
                out.str(pool.property_of(&r.custom, key).unwrap_or("null"));
            }
            out.byte(b']');
        }
        if constants {
            push_constants(out, s, &s.init_type, &mut keys);
        }
        out.str("}\n");
    });
    if fitted && constants && to_log_stream(s) {
        prefixes.constants_written = true;
    }
    fitted
}

/// A record's custom members: dimension values, metric values (an array when given several
/// times) and properties (already compact JSON).
fn push_custom_members(out: &mut Out, pool: &Pool, c: &Custom) {
    pool.dimensions(c, |k, v| push_member(out, k, v));
    pool.each_metric(c, |name, _, values| {
        out.byte(b',');
        push_str(out, name);
        out.byte(b':');
        let mut n = 0usize;
        values(&mut |_| n += 1);
        if n == 1 {
            values(&mut |v| push_float(out, v));
            return;
        }
        out.byte(b'[');
        let mut i = 0;
        values(&mut |v| {
            if i > 0 {
                out.byte(b',');
            }
            push_float(out, v);
            i += 1;
        });
        out.byte(b']');
    });
    pool.properties(c, |k, json| {
        out.byte(b',');
        push_str(out, k);
        out.byte(b':');
        out.str(json);
    });
}

/// A finite float as JSON, as `serde_json` writes it (the shortest form that reads back the
/// same, with `.0` on integers; a non-finite value is never accepted from the function).
fn push_float(out: &mut Out, v: f64) {
    match serde_json::Number::from_f64(v) {
        Some(n) => {
            let _ = std::fmt::Write::write_fmt(out, format_args!("{n}"));
        }
        None => out.byte(b'0'),
    }
}

/// The directive of a record's custom metrics: the function's first dimension set with the
/// custom dimensions after it.
fn push_custom_directive(out: &mut Out, s: &Settings, pool: &Pool, c: &Custom) {
    let base = s
        .dimension_sets
        .first()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut any_dimension = !base.is_empty();
    pool.dimensions(c, |_, _| any_dimension = true);
    out.byte(b',');
    push_directive_head(out, s);
    if any_dimension {
        out.byte(b'[');
        let mut i = 0;
        for d in base {
            if i > 0 {
                out.byte(b',');
            }
            push_str(out, d.key());
            i += 1;
        }
        pool.dimensions(c, |k, _| {
            if i > 0 {
                out.byte(b',');
            }
            push_str(out, k);
            i += 1;
        });
        out.byte(b']');
    }
    out.str("],\"Metrics\":[");
    let mut i = 0;
    pool.each_metric(c, |name, unit, _| {
        if i > 0 {
            out.byte(b',');
        }
        push_metric_declaration(out, s, name, unit);
        i += 1;
    });
    out.str("]}");
}

/// `{"Namespace":…,"Dimensions":[` of a directive.
fn push_directive_head(out: &mut Out, s: &Settings) {
    out.str("{\"Namespace\":");
    push_str(out, &s.namespace);
    out.str(",\"Dimensions\":[");
}

fn push_metric_declaration(out: &mut Out, s: &Settings, name: &str, unit: &str) {
    out.str("{\"Name\":");
    push_str(out, name);
    out.str(",\"Unit\":");
    push_str(out, unit);
    if s.resolution == 1 {
        out.str(",\"StorageResolution\":1");
    }
    out.byte(b'}');
}

/// One `CloudWatchMetrics` directive: `{"Namespace":…,"Dimensions":[…],"Metrics":[…]}`.
fn push_directive(
    out: &mut Out,
    s: &Settings,
    sets: &[Vec<Dimension>],
    metrics: &mut dyn Iterator<Item = (&str, &str)>,
) {
    push_directive_head(out, s);
    for (i, set) in sets.iter().enumerate() {
        if i > 0 {
            out.byte(b',');
        }
        out.byte(b'[');
        for (j, key) in set.iter().enumerate() {
            if j > 0 {
                out.byte(b',');
            }
            push_str(out, key.key());
        }
        out.byte(b']');
    }
    out.str("],\"Metrics\":[");
    for (i, (name, unit)) in metrics.enumerate() {
        if i > 0 {
            out.byte(b',');
        }
        push_metric_declaration(out, s, name, unit);
    }
    out.str("]}");
}

/// The constant part of a record: `,"CloudWatchMetrics":[…]}` (namespace, dimension sets,
/// the declared metrics) and the dimension values.
fn push_prefix(
    out: &mut Out,
    declared: &mut dyn Iterator<Item = (&str, &str)>,
    s: &Settings,
    init_type: &str,
    pool: &Pool,
    custom: Option<&Custom>,
) {
    out.str(",\"CloudWatchMetrics\":[");
    push_directive(out, s, &s.dimension_sets, declared);
    if let Some(c) = custom.filter(|c| pool.metric_count(c) > 0) {
        push_custom_directive(out, s, pool, c);
    }
    out.str("]}");
    // Every dimension key is a string member of the root, each once.
    let dimension_value = |d: Dimension| -> &str {
        match d {
            Dimension::FunctionName => &s.function_name,
            Dimension::Service => s.service.as_deref().unwrap_or_default(),
            Dimension::FunctionVersion => s.function_version.as_deref().unwrap_or("unknown"),
            Dimension::Runtime => &s.runtime,
            Dimension::InitType => init_type,
        }
    };
    let mut keys = Keys::default();
    for d in s.dimension_sets.iter().flatten() {
        if keys.add(d.key()) {
            push_member(out, d.key(), dimension_value(*d));
        }
    }
}

/// Root members written so far (each key once), without allocating: dimension keys are few
/// (one per [`Dimension`]) and the constant properties fewer.
#[derive(Default)]
struct Keys<'a> {
    seen: [&'a str; 16],
    len: usize,
}

impl<'a> Keys<'a> {
    /// Notes `key`; false when it was already written.
    fn add(&mut self, key: &'a str) -> bool {
        let seen = self.seen.get(..self.len).unwrap_or_default();
        if seen.contains(&key) {
            return false;
        }
        if let Some(slot) = self.seen.get_mut(self.len) {
            *slot = key;
            self.len += 1;
        }
        true
    }
}

fn push_member(out: &mut Out, key: &str, value: &(impl AsRef<[u8]> + ?Sized)) {
    out.byte(b',');
    push_str(out, key);
    out.byte(b':');
    push_str(out, value);
}

/// A JSON string literal, as `serde_json` writes it: quotes, backslashes and every control
/// character escaped (so no value can break the line or the object), runs of other characters
/// copied whole.
fn push_str(out: &mut Out, s: &(impl AsRef<[u8]> + ?Sized)) {
    out.byte(b'"');
    let _ = crate::json::escape_json(s.as_ref(), |piece| {
        out.bytes(piece);
        Some(())
    });
    out.byte(b'"');
}

/// Writes a number as JSON (see [`Number::text`]).
#[inline(always)]
fn push_number(out: &mut Out, n: Number) {
    n.write_to(out);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::custom::{Custom, Pool};
    use crate::tracker::{ErrorType, RequestId, TraceId};
    use serde_json::Value;

    /// What `write` puts in a large buffer, as text; `None` when it wrote nothing.
    fn text(write: impl FnOnce(&mut Out) -> bool) -> Option<String> {
        let mut buf = vec![0u8; 1 << 20];
        let mut out = Out::new(&mut buf);
        write(&mut out).then(|| String::from_utf8(out.written().to_vec()).unwrap())
    }

    fn pool() -> Pool {
        Pool::reserve().unwrap()
    }

    fn enc(rec: &InvokeRecord, s: &Settings) -> Option<String> {
        text(|o| encode(rec, s, &pool(), o))
    }

    fn cached(rec: &InvokeRecord, s: &Settings, p: &mut Prefixes) -> Option<String> {
        text(|o| encode_cached(rec, s, &pool(), p, o))
    }

    fn prefixes() -> Prefixes {
        Prefixes::try_new().unwrap()
    }

    fn written_prefixes() -> Prefixes {
        let mut p = prefixes();
        p.note_constants_written();
        p
    }

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_does() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é€😀\u{7f}\u{2028}");
        for text in [all.as_str(), "", "plain", "\"", "a\\b", "\u{1}x\u{1f}"] {
            let out = super::tests::text(|o| {
                push_str(o, text);
                true
            })
            .unwrap();
            assert_eq!(out, serde_json::to_string(text).unwrap());
        }
    }

    fn settings() -> Settings {
        let (s, _) = Settings::from_env(
            &|k| match k {
                "AWS_LAMBDA_FUNCTION_NAME" => Some("orders".into()),
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => Some("128".into()),
                "AWS_LAMBDA_FUNCTION_VERSION" => Some("$LATEST".into()),
                _ => None,
            },
            "python3",
        );
        s
    }

    #[test]
    fn the_trace_id_goes_only_where_the_settings_keep_it() {
        let rec = record();
        assert!(rec.trace_id.is_some());
        let with: Value = serde_json::from_str(&enc(&rec, &settings()).unwrap()).unwrap();
        assert_eq!(with["traceId"], "Root=1-5f-abc;Sampled=0");
        let mut s = settings();
        s.trace_id = false;
        let without: Value = serde_json::from_str(&enc(&rec, &s).unwrap()).unwrap();
        assert!(without.get("traceId").is_none(), "{without}");
        assert_eq!(without["requestId"], with["requestId"]);
    }

    fn record() -> InvokeRecord {
        InvokeRecord {
            kind: RecordKind::Invoke,
            request_id: RequestId::new("req-1"),
            trace_id: Some(TraceId::new("Root=1-5f-abc;Sampled=0")),
            timestamp_ms: 1_700_000_000_123,
            duration_ns: Some(12_345_678),
            cold_start: true,
            proactive_init: false,
            init_duration_ns: Some(150_000_000),
            restored: false,
            restore_duration_ns: None,
            errored: true,
            timed_out: false,
            error_type: Some(ErrorType::new("ValueError")),
            cpu_ns: Some(2_000_000),
            max_rss_kb: 51_200,
            process_rss_kb: None,
            concurrent: None,
            request_bytes: Some(20),
            response_bytes: Some(30),
            post_response_ns: Some(1_500_000),
            time_to_first_byte_ns: None,
            downstream: Some(crate::downstream::Sum {
                calls: 3,
                time_ns: 185_250_000,
            }),
            gauges: None,
            custom: Custom::NONE,
            journal_slot: None,
        }
    }

    /// The cross-reference rules the schema cannot express.
    fn check_cross_references(v: &Value) {
        let directives = v["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        for d in directives {
            for set in d["Dimensions"].as_array().unwrap() {
                for key in set.as_array().unwrap() {
                    let val = &v[key.as_str().unwrap()];
                    assert!(val.as_str().unwrap().len() <= 1024);
                }
            }
            for m in d["Metrics"].as_array().unwrap() {
                // A number, or an array of up to 100 numbers.
                let value = &v[m["Name"].as_str().unwrap()];
                let many = value
                    .as_array()
                    .map(|a| a.len() <= 100 && a.iter().all(Value::is_number));
                assert!(value.is_number() || many == Some(true), "{m}");
            }
        }
    }

    #[test]
    fn custom_metrics_have_a_directive_of_their_own_and_leave_the_cache_alone() {
        use crate::custom::Status;
        let s = settings();
        let mut pool = pool();
        let mut c = Custom::NONE;
        let p = &mut pool;
        assert_eq!(
            p.metric(&mut c, "OrdersPlaced", 1.0, Some("Count"), &reserved),
            Status::Ok
        );
        assert_eq!(
            p.metric(&mut c, "OrdersPlaced", 2.0, None, &reserved),
            Status::Ok
        );
        assert_eq!(
            p.metric(&mut c, "Basket", 12.5, Some("None"), &reserved),
            Status::Ok
        );
        assert_eq!(
            p.dimension(&mut c, "tenant", "acme \"x\"", &reserved),
            Status::Ok
        );
        assert_eq!(
            p.property(&mut c, "order", r#"{"id": 7}"#, &reserved),
            Status::Ok
        );
        assert_eq!(
            p.metric(&mut c, "Duration", 1.0, None, &reserved),
            Status::BadName
        );
        assert_eq!(
            p.property(&mut c, "requestId", "1", &reserved),
            Status::BadName
        );
        let mut with = record();
        with.custom = c;
        let mut prefixes = prefixes();
        let cached = |r: &InvokeRecord, pf: &mut Prefixes| {
            text(|o| encode_cached(r, &s, &pool, pf, o)).unwrap()
        };
        let plain_before = cached(&record(), &mut prefixes);
        let line = cached(&with, &mut prefixes);
        assert_eq!(
            line,
            text(|o| encode(&with, &s, &pool, o)).unwrap(),
            "cached or not, the same"
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        check_cross_references(&v);
        let directives = v["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 2);
        assert_eq!(
            directives[0],
            serde_json::from_str::<Value>(&plain_before).unwrap()["_aws"]["CloudWatchMetrics"][0]
        );
        assert_eq!(
            directives[1],
            serde_json::json!({"Namespace": "LambdaMeter", "Dimensions": [["FunctionName", "tenant"]],
                "Metrics": [{"Name": "OrdersPlaced", "Unit": "Count"}, {"Name": "Basket", "Unit": "None"}]})
        );
        assert_eq!(v["OrdersPlaced"], serde_json::json!([1.0, 2.0]));
        assert_eq!(v["Basket"], 12.5);
        assert_eq!(v["tenant"], "acme \"x\"");
        assert_eq!(v["order"], serde_json::json!({"id": 7}));
        // The cache still gives plain records their own prefix.
        assert_eq!(cached(&record(), &mut prefixes), plain_before);
    }

    #[test]
    fn floats_are_written_as_serde_json_writes_them() {
        for v in [
            0.0,
            1.0,
            12.5,
            -3.25,
            1e300,
            1e-7,
            0.1,
            123456789.0,
            f64::MAX,
        ] {
            let mine = text(|o| {
                push_float(o, v);
                true
            })
            .unwrap();
            assert_eq!(
                mine,
                serde_json::Number::from_f64(v).unwrap().to_string(),
                "{v}"
            );
        }
    }

    #[test]
    fn a_line_that_does_not_fit_is_not_written_at_all() {
        let mut buf = [0u8; 100];
        let mut out = Out::new(&mut buf);
        out.str("before");
        assert!(!encode(&record(), &settings(), &pool(), &mut out));
        assert_eq!(out.written(), b"before");
        assert!(!out.overflowed());
    }

    #[test]
    fn encoding_never_allocates() {
        let s = settings();
        let pool = pool();
        let mut p = prefixes();
        let mut buf = vec![0u8; 64 * 1024];
        let recs: Vec<InvokeRecord> = (0..5).map(|_| record()).collect();
        crate::cost::assert_no_allocation(|| {
            for _ in 0..10 {
                let mut out = Out::new(&mut buf);
                assert!(encode_cached(&record(), &s, &pool, &mut p, &mut out));
                assert!(encode(&record(), &s, &pool, &mut out));
                let mut warm = record();
                warm.cold_start = false;
                warm.init_duration_ns = None;
                let batch = [warm; 5];
                assert!(encode_batch(&batch, &s, &pool, &mut p, &mut out));
                let _ = &recs;
            }
        });
    }

    #[test]
    fn encodes_one_valid_line() {
        let line = enc(&record(), &settings()).unwrap();
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1);
        let v: Value = serde_json::from_str(&line).unwrap();
        check_cross_references(&v);
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_123u64);
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "LambdaMeter"
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["FunctionName"]])
        );
        assert_eq!(v["FunctionName"], "orders");
        assert_eq!(v["Duration"], 12.346);
        assert_eq!(v["InitDuration"], 150.0);
        assert_eq!(v["ColdStart"], 1.0);
        assert_eq!(v["Errors"], 1.0);
        assert_eq!(v["MaxMemoryUsed"], 50.0);
        assert_eq!(v["MemoryUtilization"], 39.06);
        assert_eq!(v["CpuTime"], 2.0);
        assert_eq!(v["errorType"], "ValueError");
        assert_eq!(v["requestId"], "req-1");
        assert_eq!(v["functionVersion"], "$LATEST");
        assert_eq!(v["memorySize"], 128);
        assert_eq!(v["initType"], "on-demand");
        assert_eq!(v["runtime"], "python3");
        assert!(v.get("coldStart").is_none(), "ColdStart says it");
        // The default declares what AWS/Lambda does not give for free; the rest are values.
        let declared: Vec<&str> = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        // Every default metric but those of other records (an init error, a restore).
        let defaults: Vec<&str> = crate::metrics::of(Class::Default)
            .filter(|m| !["InitErrors", "RestoreDuration"].contains(m))
            .collect();
        assert_eq!(declared, defaults);
        for plain in [
            "Duration",
            "Errors",
            "MaxMemoryUsed",
            "PostResponseDuration",
            "RequestBytes",
        ] {
            assert!(v[plain].is_number(), "{plain} is a value of the record");
        }
    }

    #[test]
    fn environment_properties_once_per_log_stream() {
        let s = settings();
        let mut prefixes = prefixes();
        let constants = ["functionVersion", "initType", "runtime", "memorySize"];
        let parse = |l: Option<String>| serde_json::from_str::<Value>(&l.unwrap()).unwrap();
        let cold = parse(cached(&record(), &s, &mut prefixes));
        let mut warm = record();
        warm.cold_start = false;
        warm.init_duration_ns = None;
        let next = parse(cached(&warm, &s, &mut prefixes));
        for k in constants {
            assert!(cold.get(k).is_some(), "{k} on the stream's first record");
            assert!(next.get(k).is_none(), "{k} not repeated");
        }
        // A process whose first record is warm (a restarted runtime) writes them once.
        let mut fresh = super::tests::prefixes();
        let first = parse(cached(&warm, &s, &mut fresh));
        assert!(constants.iter().all(|k| first.get(k).is_some()));
        // A restore starts a new environment's stream; a dimension is on every record.
        let mut restored = warm;
        restored.restored = true;
        restored.restore_duration_ns = Some(5_000_000);
        let r = parse(cached(&restored, &s, &mut prefixes));
        assert!(constants.iter().all(|k| r.get(k).is_some()));
        let mut by_runtime = settings();
        by_runtime.dimension_sets = vec![vec![Dimension::FunctionName, Dimension::Runtime]];
        let mut p = super::tests::prefixes();
        let _ = cached(&record(), &by_runtime, &mut p);
        let w = parse(cached(&warm, &by_runtime, &mut p));
        assert_eq!(w["runtime"], "python3");
        assert!(w.get("memorySize").is_none());
        // Sent elsewhere than the log stream, every record has them.
        let mut to_file = settings();
        to_file.destination = Destination::File("/tmp/emf".into());
        let mut p = super::tests::prefixes();
        let _ = cached(&record(), &to_file, &mut p);
        let w = parse(cached(&warm, &to_file, &mut p));
        assert!(constants.iter().all(|k| w.get(k).is_some()));
    }

    /// The downstream sum is written only where a metric of it is selected, and declared
    /// there: the record's `downstream` property is what every record carries.
    #[test]
    fn downstream_metrics_are_opt_in() {
        let rec = record();
        let v: Value = serde_json::from_str(&enc(&rec, &settings()).unwrap()).unwrap();
        assert!(v.get("DownstreamCalls").is_none(), "{v}");
        assert!(v.get("DownstreamTime").is_none(), "{v}");
        let (s, _) = Settings::from_env(
            &|k| match k {
                "AWS_LAMBDA_FUNCTION_NAME" => Some("orders".into()),
                "LAMBDA_METER_METRICS" => Some("Duration,DownstreamCalls,DownstreamTime".into()),
                _ => None,
            },
            "python3",
        );
        let v: Value = serde_json::from_str(&enc(&rec, &s).unwrap()).unwrap();
        assert_eq!(v["DownstreamCalls"], 3, "{v}");
        assert_eq!(v["DownstreamTime"], 185.25, "{v}");
        let declared = v["_aws"]["CloudWatchMetrics"][0]["Metrics"].to_string();
        assert!(
            declared.contains("\"Name\":\"DownstreamTime\",\"Unit\":\"Milliseconds\""),
            "{v}"
        );
        assert!(
            declared.contains("\"Name\":\"DownstreamCalls\",\"Unit\":\"Count\""),
            "{v}"
        );
        // A record the ledger did not sum (downstream calls not followed) has neither.
        let mut none = rec;
        none.downstream = None;
        let v: Value = serde_json::from_str(&enc(&none, &s).unwrap()).unwrap();
        assert!(v.get("DownstreamCalls").is_none(), "{v}");
    }

    #[test]
    fn each_metric_member_starts_with_its_quoted_name() {
        for (i, m) in crate::metrics::CATALOG.iter().enumerate() {
            assert_eq!(member_start(i), format!(",\"{}\":", m.name).as_bytes());
        }
        assert_eq!(member_start(MAX_METRICS), b"");
    }

    #[test]
    fn marks_say_where_the_metric_the_journal_makes_a_hole_of_is() {
        for metrics in [None, Some("all")] {
            let (s, _) = Settings::from_env(
                &|k| match k {
                    "AWS_LAMBDA_FUNCTION_NAME" => Some("orders".into()),
                    "LAMBDA_METER_METRICS" => metrics.map(Into::into),
                    _ => None,
                },
                "python3",
            );
            let mut r = record();
            r.post_response_ns = Some(crate::journal::POST_RESPONSE_PLACEHOLDER);
            let mut p = prefixes();
            // The prefix rendered, then taken from the cache.
            for _ in 0..2 {
                let mut marks = const { Marks::of(crate::journal::NAME) };
                let mut buf = vec![0u8; 1 << 16];
                let mut out = Out::new(&mut buf);
                assert!(encode_marked(
                    &r,
                    &s,
                    &pool(),
                    &mut p,
                    &mut out,
                    Some(&mut marks)
                ));
                let line = out.written().to_vec();
                let at = marks.member.unwrap();
                assert!(line[at..].starts_with(b",\"PostResponseDuration\":"));
                let (from, to) = marks.declarations;
                if s.emits("PostResponseDuration") {
                    assert!(line[from..to].starts_with(b",\"CloudWatchMetrics\":["));
                } else {
                    assert_eq!(from, to);
                    assert!(
                        !line
                            .windows(28)
                            .any(|w| w == b"\"Name\":\"PostResponseDuration\"")
                    );
                }
                let (mut a, mut b) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
                let (mut with, mut without) = (Out::new(&mut a), Out::new(&mut b));
                let marked = crate::journal::finished_template(&line, Some(&marks), &mut with);
                let searched = crate::journal::finished_template(&line, None, &mut without);
                assert!(marked.is_some());
                assert_eq!(marked, searched);
                assert_eq!(with.written(), without.written());
            }
        }
    }

    /// A warm record of invoke `req-<i>`, failed or not.
    fn warm(i: u64, failed: bool) -> InvokeRecord {
        let mut r = record();
        r.cold_start = false;
        r.init_duration_ns = None;
        r.request_id = RequestId::new(&format!("req-{i}"));
        r.timestamp_ms += i;
        r.duration_ns = Some(i * 1_000_000);
        r.errored = failed;
        r.error_type = failed.then(|| ErrorType::new("Boom"));
        r
    }

    #[test]
    fn a_batch_is_one_record_whose_arrays_count_every_invoke() {
        let mut s = settings();
        s.batch = 10;
        let recs: Vec<InvokeRecord> = (0..7).map(|i| warm(i, i == 3)).collect();
        let pool = pool();
        assert!(recs.iter().all(|r| batchable(r, &pool)));
        let mut prefixes = written_prefixes();
        let line = text(|o| encode_batch(&recs, &s, &pool, &mut prefixes, o)).unwrap();
        assert_eq!(line.matches('\n').count(), 1);
        let v: Value = serde_json::from_str(&line).unwrap();
        check_cross_references(&v);
        assert_eq!(v["_aws"]["Timestamp"], recs[0].timestamp_ms);
        assert_eq!(v["invokes"], 7);
        assert_eq!(v["ColdStart"].as_array().unwrap().len(), 7);
        assert_eq!(v["Timeouts"].as_array().unwrap().len(), 7);
        assert_eq!(v["Errors"], serde_json::json!([0, 0, 0, 1, 0, 0, 0]));
        assert_eq!(v["Duration"], serde_json::json!([0, 1, 2, 3, 4, 5, 6]));
        assert_eq!(v["errorType"], serde_json::json!(["Boom"]));
        assert_eq!(v["requestId"][6], "req-6");
        assert!(v.get("InitDuration").is_none() && v.get("runtime").is_none());
        // One record alone is a plain record.
        let one = text(|o| encode_batch(&recs[..1], &s, &pool, &mut prefixes, o)).unwrap();
        assert_eq!(one, cached(&recs[0], &s, &mut prefixes).unwrap());
        // A stream's first record, a timeout and the function's own values go alone.
        let mut timeout = warm(9, true);
        timeout.timed_out = true;
        assert!(!batchable(&record(), &pool) && !batchable(&timeout, &pool));
    }

    /// What each invoke waited on rides in a batch as one array entry per invoke; the
    /// function's own values still go alone.
    #[test]
    fn a_batch_carries_each_invokes_downstream_calls() {
        let s = settings();
        let mut pool = pool();
        let mut recs: Vec<InvokeRecord> = (0..3).map(|i| warm(i, false)).collect();
        let own = |k: &str| k != crate::downstream::PROPERTY && reserved(k);
        let calls = r#"[{"name":"db","calls":2,"waitMs":1.5}]"#;
        for i in [0, 2] {
            let key = crate::downstream::PROPERTY;
            let status = pool.property(&mut recs[i].custom, key, calls, &own);
            assert_eq!(status, crate::custom::Status::Ok);
        }
        assert!(recs.iter().all(|r| batchable(r, &pool)));
        let mut prefixes = written_prefixes();
        let line = text(|o| encode_batch(&recs, &s, &pool, &mut prefixes, o)).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        check_cross_references(&v);
        let entry = serde_json::json!([{"name": "db", "calls": 2, "waitMs": 1.5}]);
        assert_eq!(v["downstream"], serde_json::json!([entry, null, entry]));
        assert!(v.get("downstreamPostResponse").is_none(), "{v}");
        let mut mine = warm(4, false);
        let status = pool.property(&mut mine.custom, "orderId", "\"o-1\"", &reserved);
        assert_eq!(status, crate::custom::Status::Ok);
        assert!(!batchable(&mine, &pool));
    }

    #[test]
    fn a_default_warm_record_of_the_longest_function_name_is_at_most_700_bytes() {
        // Lambda's longest function name, a full trace header, and values of a busy function
        // (a quarter-second invoke, kilobyte payloads, 1,769 MB).
        let mut s = settings();
        s.function_name = "f".repeat(64);
        s.memory_size_mb = Some(1769);
        let mut r = record();
        r.cold_start = false;
        r.init_duration_ns = None;
        r.errored = false;
        r.error_type = None;
        r.request_id = RequestId::new("8890cbb5-7d73-4470-b385-51261a44c570");
        r.trace_id = Some(TraceId::new(
            "Root=1-6b0969ba-42382fab3c8ada39fbf786bd;Parent=de88037a21c6c6e4;Sampled=0",
        ));
        r.duration_ns = Some(250_123_456);
        r.cpu_ns = Some(180_654_321);
        r.post_response_ns = Some(1_234_567);
        r.max_rss_kb = 612 * 1024;
        r.request_bytes = Some(2_048);
        r.response_bytes = Some(16_384);
        let mut prefixes = written_prefixes();
        let line = cached(&r, &s, &mut prefixes).unwrap();
        assert!(line.len() <= 700, "{} bytes: {line}", line.len());
    }

    #[test]
    fn warm_record_has_no_init_duration() {
        let mut r = record();
        r.cold_start = false;
        r.init_duration_ns = None;
        r.errored = false;
        r.error_type = None;
        let v: Value = serde_json::from_str(&enc(&r, &settings()).unwrap()).unwrap();
        check_cross_references(&v);
        assert!(v.get("InitDuration").is_none());
        assert!(v.get("errorType").is_none());
        let names: Vec<&str> = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert!(!names.contains(&"InitDuration"));
        assert_eq!(v["ColdStart"], 0.0);
    }

    #[test]
    fn hostile_values_stay_one_valid_line() {
        let mut s = settings();
        s.function_name = crate::text::bounded(&"a\"b\n\\c\u{0}".repeat(1000), 1024);
        let mut r = record();
        r.error_type = Some(ErrorType::new("x\"}\n{\"_aws\":1"));
        r.request_id = RequestId::new("\u{2028}\r\n");
        let line = enc(&r, &s).unwrap();
        assert_eq!(line.matches('\n').count(), 1);
        let v: Value = serde_json::from_str(&line).unwrap();
        check_cross_references(&v);
        assert_eq!(v["errorType"], "x\"}\n{\"_aws\":1");
    }
}
