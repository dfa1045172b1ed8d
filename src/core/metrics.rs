//! The metric catalog: the one place a metric is defined — its name, its unit, what the
//! default settings do with it, and how its value is read from a finished invoke's record.
//!
//! A new metric from data the record already has is one entry here (and its README row):
//! settings accept its name, records carry it, the encoder declares it when selected, and
//! custom metrics may not take its name.

use crate::tracker::{InvokeRecord, RecordKind};

/// A metric value as the line shows it: an integer scaled by a power of ten, written with
/// integer formatting (no float formatting on the hot path). `Scaled(v, 3)` is v/1000.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Number {
    Scaled(u64, u8),
}

impl Number {
    pub(crate) fn int(v: u64) -> Number {
        Number::Scaled(v, 0)
    }

    /// The number's JSON text, formed on the stack (the journal renders records with it from
    /// signal handlers: no allocation). `Scaled(1500, 3)` is `1.5`, `Scaled(2000, 3)` is `2`:
    /// the shortest form, as float formatting of the same value gives.
    pub(crate) fn text(self) -> NumberText {
        let mut t = NumberText {
            buf: [0; NUMBER_MAX],
            len: 0,
        };
        t.len = self.render(&mut t.buf);
        t
    }

    /// Appends [`Number::text`] to `out`, formed in place where there is room.
    #[inline(always)]
    pub(crate) fn write_to(self, out: &mut crate::text::Out) {
        // One digit (a flag, a count): most of a record's values.
        if let Number::Scaled(v @ 0..=9, 0) = self {
            return out.byte(b'0' + v as u8);
        }
        match out.spare(NUMBER_MAX) {
            Some(room) => {
                let n = self.render(room);
                out.advance(n);
            }
            None => out.bytes(self.text().as_bytes()),
        }
    }

    /// Writes the text at the start of `dst` (its first [`NUMBER_MAX`] bytes; shorter: nothing
    /// is written); how many bytes it took.
    fn render(self, dst: &mut [u8]) -> usize {
        let Some(dst) = dst
            .get_mut(..NUMBER_MAX)
            .and_then(|d| <&mut [u8; NUMBER_MAX]>::try_from(d).ok())
        else {
            return 0;
        };
        // The scales records use (whole numbers, hundredths, thousandths): thousandths, each
        // divided by a constant (a multiply, not a division).
        let Number::Scaled(v, decimals) = self;
        let (whole, thousandths) = match decimals {
            0 => (v, 0),
            2 => (v / 100, v % 100 * 10),
            3 => (v / 1000, v % 1000),
            _ => return self.render_scaled(dst),
        };
        let mut len = render_whole(whole, dst);
        if thousandths != 0 {
            // `.d`, `.dd` or `.ddd`: no trailing zero.
            let pair = (thousandths % 100) as usize * 2;
            let digits = [
                b'.',
                b'0' + (thousandths / 100) as u8,
                PAIRS.get(pair).copied().unwrap_or(b'0'),
                PAIRS.get(pair + 1).copied().unwrap_or(b'0'),
            ];
            let kept = if pair == 0 {
                2
            } else if thousandths % 10 == 0 {
                3
            } else {
                4
            };
            if let Some(room) = dst.get_mut(len..len + 4) {
                room.copy_from_slice(&digits);
                len += kept;
            }
        }
        len
    }

    /// [`Number::render`] for any other scale.
    #[cold]
    fn render_scaled(self, dst: &mut [u8; NUMBER_MAX]) -> usize {
        let Number::Scaled(v, decimals) = self;
        let scale = 10u64.saturating_pow(u32::from(decimals));
        let (whole, mut frac) = (v / scale, v % scale);
        let mut digits = if frac == 0 { 0 } else { usize::from(decimals) };
        while frac != 0 && frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        let width = render_whole(whole, dst);
        if digits == 0 {
            return width;
        }
        let len = (width + 1 + digits).min(NUMBER_MAX);
        if let Some(point) = dst.get_mut(width) {
            *point = b'.';
        }
        for at in (width + 1..len).rev() {
            if let Some(slot) = dst.get_mut(at) {
                *slot = b'0' + (frac % 10) as u8;
            }
            frac /= 10;
        }
        len
    }
}

/// Writes `whole` in decimal at the start of `dst`; how many bytes it took (at most 20).
#[inline(always)]
fn render_whole(mut whole: u64, dst: &mut [u8; NUMBER_MAX]) -> usize {
    // Its digits: from its bit length (1233 / 4096 is just over log10 of 2), less one where it
    // is below that power of ten.
    let t = (((64 - (whole | 1).leading_zeros()) * 1233) >> 12) as usize;
    let width = (t + usize::from(whole >= POWERS.get(t).copied().unwrap_or(u64::MAX))).max(1);
    // Indexes are taken modulo the buffer's size (a power of two): the compiler sees they are
    // in it, and checks nothing per digit. Within a valid text they are as they were.
    let mut at = width;
    let mut put = |at: usize, b: u8| {
        if let Some(slot) = dst.get_mut(at % NUMBER_MAX) {
            *slot = b;
        }
    };
    // Two digits a division (a millisecond timestamp has thirteen).
    while whole >= 100 {
        let pair = (whole % 100) as usize * 2;
        whole /= 100;
        at = at.wrapping_sub(2);
        put(at, PAIRS.get(pair).copied().unwrap_or(b'0'));
        put(at + 1, PAIRS.get(pair + 1).copied().unwrap_or(b'0'));
    }
    // What is left, one or two digits, is the text's start.
    if whole >= 10 {
        let pair = whole as usize * 2;
        put(0, PAIRS.get(pair).copied().unwrap_or(b'0'));
        put(1, PAIRS.get(pair + 1).copied().unwrap_or(b'0'));
    } else {
        put(0, b'0' + whole as u8);
    }
    width
}

/// Room for the text of a number: 20 digits, a point and 3 decimals, and more (a power of two,
/// see [`Number::render`]).
pub(crate) const NUMBER_MAX: usize = 32;

/// `POWERS[i]` is 10^i.
#[allow(clippy::indexing_slicing)] // Evaluated when the library is built: out of bounds fails it.
const POWERS: [u64; 20] = {
    let mut p = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// "00" to "99", for [`Number::text`].
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// A number's text (see [`Number::text`]): at most 20 digits, a point and 3 decimals.
pub(crate) struct NumberText {
    buf: [u8; NUMBER_MAX],
    len: usize,
}

impl NumberText {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// Milliseconds with microsecond precision (thousandths), rounded as before.
pub(crate) fn ms(ns: u64) -> Number {
    Number::Scaled(ns / 1_000 + u64::from(ns % 1_000 >= 500), 3)
}

/// What a metric's value may depend on besides its record: the function's configuration, as
/// the settings read it (the catalog does not read settings itself).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// The function's memory size (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`), when known.
    pub memory_size_mb: Option<u64>,
    /// How many invokes the environment may run at once (`AWS_LAMBDA_MAX_CONCURRENCY`; 0 or 1:
    /// one).
    pub max_concurrency: u32,
}

/// Where a metric's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// What the tracker and the probes record for every invoke.
    Record,
    /// The gauges (`/proc` and `statvfs` at the invoke's end), read only when a metric of
    /// theirs is selected.
    Gauges,
}

/// What a record written when its process ends (the journal's prepared record, see
/// `journal.rs`) does with a metric's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtExit {
    /// The value the record had when it was prepared (known when the invoke started, or when
    /// its result was sent).
    Kept,
    /// Measured when the record is written: hole `hole` of the prepared record, its value read
    /// from [`Measured`] through the entry's own `read`. When `may_be_unknown`, a successor
    /// writing a dead process's record may not know it, and the member (with its declaration)
    /// goes.
    Measured { hole: u8, may_be_unknown: bool },
}

/// What an ending measures (the values of [`AtExit::Measured`] metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Measured {
    pub duration_ns: Option<u64>,
    pub cpu_ns: Option<u64>,
    pub max_rss_kb: u64,
    pub post_response_ns: Option<u64>,
}

impl Metric {
    /// Its hole in a prepared record, when its value is measured at the ending.
    pub fn hole(&self) -> Option<u8> {
        match self.at_exit {
            AtExit::Measured { hole, .. } => Some(hole),
            AtExit::Kept => None,
        }
    }
}

impl Measured {
    /// A record with these values, for the catalog's `read` functions to read as any record's
    /// (no allocation: the journal renders with it in signal handlers).
    pub(crate) fn record(&self) -> InvokeRecord {
        let mut rec = InvokeRecord::blank(RecordKind::Invoke);
        rec.duration_ns = self.duration_ns;
        rec.cpu_ns = self.cpu_ns;
        rec.max_rss_kb = self.max_rss_kb;
        rec.post_response_ns = self.post_response_ns;
        rec
    }
}

/// What the default settings do with a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Declared (a billed custom metric) unless `LAMBDA_METER_METRICS` says otherwise.
    Default,
    /// On every record it applies to as a plain value (queryable, not billed); declared when
    /// named in `LAMBDA_METER_METRICS`.
    Value,
    /// Neither read nor written unless named in `LAMBDA_METER_METRICS` (`all` included).
    OptIn,
}

/// One metric of the catalog.
pub struct Metric {
    pub name: &'static str,
    pub unit: &'static str,
    pub class: Class,
    pub source: Source,
    pub at_exit: AtExit,
    /// Its value on `rec`, if `rec` has one.
    pub(crate) read: fn(&InvokeRecord, &Context) -> Option<Number>,
}

fn flag(b: bool) -> Option<Number> {
    Some(Number::int(u64::from(b)))
}

/// A record of an invoke (one that ran, or one that waited for an init that never ended).
fn invoke(rec: &InvokeRecord) -> bool {
    matches!(rec.kind, RecordKind::Invoke | RecordKind::Unstarted)
}

/// Whether the record knows the runtime's memory (not after a runtime killed in its init).
fn measured(rec: &InvokeRecord) -> bool {
    rec.kind != RecordKind::Unstarted
}

fn max_mb(rec: &InvokeRecord) -> u64 {
    rec.max_rss_kb.div_ceil(1024)
}

/// `used_mb` of `size_mb` in percent, in hundredths rounded half up (integer arithmetic: the
/// same in a signal handler); none for an unknown (0) size.
fn memory_utilization(used_mb: u64, size_mb: u64) -> Option<Number> {
    let hundredths = used_mb
        .saturating_mul(20_000)
        .saturating_add(size_mb)
        .checked_div(size_mb.saturating_mul(2))?;
    Some(Number::Scaled(hundredths, 2))
}

/// Every metric, in the order records carry them.
pub const CATALOG: &[Metric] = &[
    Metric {
        name: "Duration",
        unit: "Milliseconds",
        class: Class::Value,
        source: Source::Record,
        at_exit: AtExit::Measured {
            hole: b'D',
            may_be_unknown: true,
        },
        read: |r, _| r.duration_ns.filter(|_| invoke(r)).map(ms),
    },
    Metric {
        name: "ColdStart",
        unit: "Count",
        class: Class::Default,
        source: Source::Record,
        at_exit: AtExit::Kept,
        read: |r, _| flag(r.cold_start).filter(|_| invoke(r)),
    },
    Metric {
        name: "InitDuration",
        unit: "Milliseconds",
        class: Class::Default,
        source: Source::Record,
        at_exit: AtExit::Kept,
        read: |r, _| r.init_duration_ns.map(ms),
    },
    Metric {
        name: "RestoreDuration",
        unit: "Milliseconds",
        class: Class::Default,
        source: Source::Record,
        at_exit: AtExit::Kept,
        read: |r, _| r.restore_duration_ns.filter(|_| invoke(r)).map(ms),
    },
    Metric {
        name: "Errors",
        unit: "Count",
        class: Class::Value,
        source: Source::Record,
        at_exit: AtExit::Kept,
        read: |r, _| flag(r.errored).filter(|_| invoke(r)),
    },
    Metric {
        name: "Timeouts",
        unit: "Count",
        class: Class::Default,
        source: Source::Record,
        at_exit: AtExit::Kept,
        read: |r, _| flag(r.timed_out).filter(|_| invoke(r)),
    },
    Metric {
        name: "InitErrors",
        unit: "Count",
        class: Class::Default,
        source: Source::Record,
        at_exit: AtExit::Kept,
        read: |r, _| flag(true).filter(|_| r.kind == RecordKind::InitError),
    },
    Metric {
        name: "Invocations",
        unit: "Count",
        class: Class::OptIn,
        source: Source::Record,
        at_exit: AtExit::Kept,
        // 1 a record (a batch's array sums to its invokes): a count CloudWatch can alarm on
        // under lambda-meter's own dimensions (`service`, `runtime`, …).
        read: |r, _| Some(Number::int(1)).filter(|_| invoke(r)),
    },
    Metric {
        name: "MaxMemoryUsed",
        unit: "Megabytes",
        class: Class::Value,
        source: Source::Record,
        at_exit: AtExit::Measured {
            hole: b'M',
            may_be_unknown: false,
        },
        read: |r, _| Some(Number::int(max_mb(r))).filter(|_| measured(r)),
    },
    Metric {
        name: "MemoryUtilization",
        unit: "Percent",
        class: Class::Default,
        source: Source::Record,
        at_exit: AtExit::Measured {
            hole: b'U',
            may_be_unknown: false,
        },
        read: |r, c| {
            c.memory_size_mb
                .filter(|_| measured(r))
                .and_then(|size| memory_utilization(max_mb(r), size))
        },
    },
    Metric {
        name: "ProcessMaxMemoryUsed",
        unit: "Megabytes",
        class: Class::Value,
        source: Source::Record,
        at_exit: AtExit::Kept,
        // The runtime process's own peak, only where the environment's (`MaxMemoryUsed`) is
        // more: its children, the other processes of its cgroup.
        read: |r, _| {
            r.process_rss_kb
                .map(|kb| kb.div_ceil(1024))
                .filter(|mb| *mb != max_mb(r))
                .map(Number::int)
        },
    },
    Metric {
        name: "CpuTime",
        unit: "Milliseconds",
        class: Class::Default,
        source: Source::Record,
        at_exit: AtExit::Measured {
            hole: b'C',
            may_be_unknown: true,
        },
        read: |r, _| r.cpu_ns.map(ms),
    },
    Metric {
        name: "ConcurrentInvokes",
        unit: "Count",
        class: Class::Value,
        source: Source::Record,
        at_exit: AtExit::Kept,
        // Only where invokes overlapped in the process: its CpuTime is the process's, shared.
        // Never more than the environment runs at once: the next event can be read before the
        // hook that sent the result it follows has closed that invoke.
        read: |r, c| {
            r.concurrent
                .map(|n| match c.max_concurrency {
                    0 | 1 => n,
                    most => n.min(most),
                })
                .map(|n| Number::int(u64::from(n)))
        },
    },
    Metric {
        name: "CpuUtilization",
        unit: "Percent",
        class: Class::OptIn,
        source: Source::Record,
        at_exit: AtExit::Measured {
            hole: b'Q',
            may_be_unknown: true,
        },
        // CPU time over the invoke's duration, in hundredths of a percent rounded half up: near
        // the function's vCPU share (memory / 1769 MB) it was CPU-bound, far below it waited;
        // above 100 it ran on more than one core.
        read: |r, _| {
            let (cpu, duration) = (r.cpu_ns?, r.duration_ns.filter(|d| *d > 0)?);
            let hundredths = cpu
                .saturating_mul(20_000)
                .saturating_add(duration)
                .checked_div(duration.saturating_mul(2))?;
            Some(Number::Scaled(hundredths, 2)).filter(|_| invoke(r))
        },
    },
    Metric {
        name: "PostResponseDuration",
        unit: "Milliseconds",
        class: Class::Value,
        source: Source::Record,
        at_exit: AtExit::Measured {
            hole: b'P',
            may_be_unknown: true,
        },
        read: |r, _| r.post_response_ns.map(ms),
    },
    Metric {
        name: "TimeToFirstByte",
        unit: "Milliseconds",
        class: Class::Value,
        source: Source::Record,
        at_exit: AtExit::Kept,
        read: |r, _| r.time_to_first_byte_ns.map(ms),
    },
    Metric {
        name: "RequestBytes",
        unit: "Bytes",
        class: Class::Value,
        source: Source::Record,
        at_exit: AtExit::Kept,
        read: |r, _| r.request_bytes.map(Number::int),
    },
    Metric {
        name: "ResponseBytes",
        unit: "Bytes",
        class: Class::Value,
        source: Source::Record,
        at_exit: AtExit::Kept,
        read: |r, _| r.response_bytes.map(Number::int),
    },
    Metric {
        name: "DownstreamCalls",
        unit: "Count",
        class: Class::OptIn,
        source: Source::Record,
        at_exit: AtExit::Kept,
        read: |r, _| {
            r.downstream
                .filter(|_| invoke(r))
                .map(|d| Number::int(u64::from(d.calls)))
        },
    },
    Metric {
        name: "DownstreamTime",
        unit: "Milliseconds",
        class: Class::OptIn,
        source: Source::Record,
        at_exit: AtExit::Kept,
        read: |r, _| r.downstream.filter(|_| invoke(r)).map(|d| ms(d.time_ns)),
    },
    Metric {
        name: "NetworkBytesIn",
        unit: "Bytes",
        class: Class::OptIn,
        source: Source::Gauges,
        at_exit: AtExit::Kept,
        read: |r, _| r.gauges.map(|g| Number::int(g.net_rx_bytes)),
    },
    Metric {
        name: "NetworkBytesOut",
        unit: "Bytes",
        class: Class::OptIn,
        source: Source::Gauges,
        at_exit: AtExit::Kept,
        read: |r, _| r.gauges.map(|g| Number::int(g.net_tx_bytes)),
    },
    Metric {
        name: "TmpUsed",
        unit: "Bytes",
        class: Class::OptIn,
        source: Source::Gauges,
        at_exit: AtExit::Kept,
        read: |r, _| r.gauges.map(|g| Number::int(g.tmp_used_bytes)),
    },
    Metric {
        name: "OpenFds",
        unit: "Count",
        class: Class::OptIn,
        source: Source::Gauges,
        at_exit: AtExit::Kept,
        read: |r, _| r.gauges.map(|g| Number::int(g.open_fds)),
    },
    Metric {
        name: "Threads",
        unit: "Count",
        class: Class::OptIn,
        source: Source::Gauges,
        at_exit: AtExit::Kept,
        read: |r, _| r.gauges.map(|g| Number::int(g.threads)),
    },
];

/// The metrics whose values come from the gauges.
pub fn gauges() -> impl Iterator<Item = &'static Metric> {
    CATALOG.iter().filter(|m| m.source == Source::Gauges)
}

/// The catalog index of the metric named `name` (`u8::MAX` when none is), found when the
/// library is built where `name` is a constant.
#[allow(clippy::indexing_slicing)] // Each index is below the length it is checked against.
pub const fn index_of(name: &str) -> u8 {
    let name = name.as_bytes();
    let mut i = 0;
    while i < CATALOG.len() {
        let candidate = CATALOG[i].name.as_bytes();
        if candidate.len() == name.len() {
            let mut j = 0;
            while j < name.len() && candidate[j] == name[j] {
                j += 1;
            }
            if j == name.len() {
                return i as u8;
            }
        }
        i += 1;
    }
    u8::MAX
}

/// The catalog entry named `name`.
pub fn find(name: &str) -> Option<&'static Metric> {
    CATALOG.iter().find(|m| m.name == name)
}

/// The names of the metrics of `class`, in catalog order.
pub fn of(class: Class) -> impl Iterator<Item = &'static str> {
    CATALOG
        .iter()
        .filter(move |m| m.class == class)
        .map(|m| m.name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn concurrent_invokes_never_exceed_what_the_environment_runs_at_once() {
        let m = find("ConcurrentInvokes").unwrap();
        let mut r = InvokeRecord::blank(RecordKind::Invoke);
        let mut c = Context::default();
        assert_eq!((m.read)(&r, &c), None);
        r.concurrent = Some(4);
        assert_eq!((m.read)(&r, &c), Some(Number::int(4)));
        c.max_concurrency = 3;
        assert_eq!((m.read)(&r, &c), Some(Number::int(3)));
    }

    #[test]
    fn process_memory_only_where_the_environment_figure_differs() {
        let m = find("ProcessMaxMemoryUsed").unwrap();
        let c = Context::default();
        let mut r = InvokeRecord::blank(RecordKind::Invoke);
        r.max_rss_kb = 30 * 1024;
        assert_eq!((m.read)(&r, &c), None);
        r.process_rss_kb = Some(30 * 1024 - 100);
        assert_eq!((m.read)(&r, &c), None, "the same in whole megabytes");
        r.process_rss_kb = Some(20 * 1024);
        assert_eq!((m.read)(&r, &c), Some(Number::int(20)));
    }

    #[test]
    fn cpu_utilization_is_cpu_time_over_duration() {
        let util = find("CpuUtilization").unwrap();
        let c = Context::default();
        let mut r = InvokeRecord::blank(RecordKind::Invoke);
        assert_eq!((util.read)(&r, &c), None);
        r.duration_ns = Some(200_000_000);
        r.cpu_ns = Some(50_000_000);
        assert_eq!((util.read)(&r, &c), Some(Number::Scaled(2500, 2)));
        // Two busy threads: more than one core.
        r.cpu_ns = Some(300_000_000);
        assert_eq!((util.read)(&r, &c).unwrap().text().as_bytes(), b"150");
        // 1/3: 33.33 %, rounded.
        r.cpu_ns = Some(1);
        r.duration_ns = Some(3);
        assert_eq!((util.read)(&r, &c).unwrap().text().as_bytes(), b"33.33");
        // Not known without a duration (a vanished process's record).
        r.duration_ns = None;
        assert_eq!((util.read)(&r, &c), None);
        // At an ending, it is measured like the values it comes from.
        let m = Measured {
            duration_ns: Some(10_000_000),
            cpu_ns: Some(10_000_000),
            ..Measured::default()
        };
        assert_eq!(
            (util.read)(&m.record(), &c).unwrap().text().as_bytes(),
            b"100"
        );
    }

    #[test]
    fn index_of_is_each_names_place_in_the_catalog() {
        for (i, m) in CATALOG.iter().enumerate() {
            assert_eq!(usize::from(index_of(m.name)), i, "{}", m.name);
        }
        assert_eq!(index_of("Durations"), u8::MAX);
        assert_eq!(index_of("Duratio"), u8::MAX);
        assert_eq!(index_of(""), u8::MAX);
        assert_ne!(index_of(crate::journal::NAME), u8::MAX);
    }

    #[test]
    fn names_are_unique_and_the_default_declares_at_most_eight() {
        let mut names: Vec<&str> = CATALOG.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
        // A record's shape is a bit per catalog entry.
        assert!(CATALOG.len() <= 32);
        assert!(of(Class::Default).count() <= 8);
        for free in ["Duration", "Errors", "Invocations", "Throttles"] {
            assert!(of(Class::Default).all(|m| m != free), "{free}");
        }
        // Holes are told apart by their byte; the journal's own holes (timestamp, reason,
        // ids, request bytes) use others.
        let mut holes: Vec<u8> = CATALOG.iter().filter_map(Metric::hole).collect();
        holes.sort_unstable();
        holes.dedup();
        assert_eq!(holes.len(), CATALOG.iter().filter_map(Metric::hole).count());
        // Gauges cost /proc reads at every invoke's end: never on unless named.
        assert!(gauges().count() > 0);
        for g in gauges() {
            assert_eq!(g.class, Class::OptIn, "{}", g.name);
        }
    }

    #[test]
    fn numbers_read_as_their_digits_in_every_length() {
        // Every length of whole part, each pair of last digits, with and without decimals.
        let mut v = 0u64;
        for step in 0..20 {
            for low in 0..100 {
                let n = v.saturating_add(low);
                for d in 0..=3u8 {
                    let text = Number::Scaled(n, d).text();
                    let scale = 10u64.pow(u32::from(d));
                    let frac = n % scale;
                    let mut want = (n / scale).to_string();
                    if frac != 0 {
                        let f = format!("{frac:0width$}", width = usize::from(d));
                        want = format!("{want}.{}", f.trim_end_matches('0'));
                    }
                    assert_eq!(
                        std::str::from_utf8(text.as_bytes()).unwrap(),
                        want,
                        "{n} {d}"
                    );
                    // Written after other text: in place where there is room, cut off (and
                    // noted) where there is not.
                    for room in [64, 2 + want.len(), 1 + want.len()] {
                        let mut buf = vec![0u8; room];
                        let mut out = crate::text::Out::new(&mut buf);
                        out.bytes(b"x:");
                        Number::Scaled(n, d).write_to(&mut out);
                        let fits = 2 + want.len() <= room;
                        let kept = if fits { want.len() } else { room - 2 };
                        assert_eq!(out.written(), format!("x:{}", &want[..kept]).as_bytes());
                        assert_eq!(out.overflowed(), !fits, "{n} {d} in {room}");
                    }
                }
            }
            v = v
                .saturating_mul(10)
                .saturating_add(if step % 2 == 0 { 9 } else { 1 })
                .saturating_mul(10);
        }
    }

    #[test]
    fn numbers_read_as_float_formatting_of_the_same_value() {
        for (v, d) in [
            (0, 3),
            (1, 3),
            (5, 3),
            (10, 3),
            (1500, 3),
            (2000, 3),
            (123_456_789, 3),
        ]
        .into_iter()
        .chain([
            (0, 2),
            (1, 2),
            (3333, 2),
            (10_000, 2),
            (7, 0),
            (u64::MAX, 0),
            // Scales no record uses.
            (15, 1),
            (10, 1),
            (123_450, 4),
            (7, 6),
            (1_000_000, 6),
            (99_999_999_999, 5),
        ]) {
            let text = Number::Scaled(v, d).text();
            let out = std::str::from_utf8(text.as_bytes()).unwrap();
            let float = v as f64 / 10f64.powi(i32::from(d));
            if v < 1 << 53 {
                assert_eq!(out, format!("{float}"), "{v} {d}");
            } else {
                assert_eq!(out, v.to_string());
            }
        }
        for ns in [0, 499, 500, 1_499, 1_500, 2_000_000, 123_456_789_012] {
            let Number::Scaled(us, 3) = ms(ns) else {
                panic!()
            };
            assert_eq!(us as f64 / 1000.0, (ns as f64 / 1_000.0).round() / 1_000.0);
        }
    }

    #[test]
    fn numbers_format_like_the_encoder() {
        assert_eq!(ms(5_000_000).text().as_bytes(), b"5");
        assert_eq!(ms(1_230_000).text().as_bytes(), b"1.23");
        assert_eq!(ms(1_000_400).text().as_bytes(), b"1");
        assert_eq!(ms(7).text().as_bytes(), b"0");
        assert_eq!(ms(u64::MAX).text().as_bytes(), b"18446744073709.552");
        assert_eq!(
            Number::int(u64::MAX).text().as_bytes(),
            b"18446744073709551615"
        );
        assert_eq!(Number::Scaled(3203, 2).text().as_bytes(), b"32.03");
    }
}
