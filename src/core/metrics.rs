//! The metric catalog: the one place a metric is defined — its name, its unit, what the
//! default settings do with it, and how its value is read from a finished invoke's record.
//!
//! A new metric from data the record already has is one entry here (and its README row):
//! settings accept its name, records carry it, the encoder declares it when selected, and
//! custom metrics may not take its name.

use crate::emf::{Number, ms};
use crate::settings::Settings;
use crate::tracker::{InvokeRecord, RecordKind};

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
    /// Its value on `rec`, if `rec` has one.
    pub(crate) read: fn(&InvokeRecord, &Settings) -> Option<Number>,
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

/// Every metric, in the order records carry them.
pub const CATALOG: &[Metric] = &[
    Metric {
        name: "Duration",
        unit: "Milliseconds",
        class: Class::Value,
        read: |r, _| r.duration_ns.filter(|_| invoke(r)).map(ms),
    },
    Metric {
        name: "ColdStart",
        unit: "Count",
        class: Class::Default,
        read: |r, _| flag(r.cold_start).filter(|_| invoke(r)),
    },
    Metric {
        name: "InitDuration",
        unit: "Milliseconds",
        class: Class::Default,
        read: |r, _| r.init_duration_ns.map(ms),
    },
    Metric {
        name: "RestoreDuration",
        unit: "Milliseconds",
        class: Class::Default,
        read: |r, _| r.restore_duration_ns.filter(|_| invoke(r)).map(ms),
    },
    Metric {
        name: "Errors",
        unit: "Count",
        class: Class::Value,
        read: |r, _| flag(r.errored).filter(|_| invoke(r)),
    },
    Metric {
        name: "Timeouts",
        unit: "Count",
        class: Class::Default,
        read: |r, _| flag(r.timed_out).filter(|_| invoke(r)),
    },
    Metric {
        name: "InitErrors",
        unit: "Count",
        class: Class::Default,
        read: |r, _| flag(true).filter(|_| r.kind == RecordKind::InitError),
    },
    Metric {
        name: "Invocations",
        unit: "Count",
        class: Class::OptIn,
        // 1 a record (a batch's array sums to its invokes): a count CloudWatch can alarm on
        // under lambda-meter's own dimensions (`service`, `runtime`, …).
        read: |r, _| Some(Number::int(1)).filter(|_| invoke(r)),
    },
    Metric {
        name: "MaxMemoryUsed",
        unit: "Megabytes",
        class: Class::Value,
        read: |r, _| Some(Number::int(max_mb(r))).filter(|_| measured(r)),
    },
    Metric {
        name: "MemoryUtilization",
        unit: "Percent",
        class: Class::Default,
        read: |r, s| {
            // Hundredths of a percent, rounded.
            s.memory_size_mb
                .filter(|m| *m > 0 && measured(r))
                .map(|size| {
                    Number::Scaled(
                        (max_mb(r) as f64 * 100.0 / size as f64 * 100.0).round() as u64,
                        2,
                    )
                })
        },
    },
    Metric {
        name: "CpuTime",
        unit: "Milliseconds",
        class: Class::Default,
        read: |r, _| r.cpu_ns.map(ms),
    },
    Metric {
        name: "PostResponseDuration",
        unit: "Milliseconds",
        class: Class::Value,
        read: |r, _| r.post_response_ns.map(ms),
    },
    Metric {
        name: "TimeToFirstByte",
        unit: "Milliseconds",
        class: Class::Value,
        read: |r, _| r.time_to_first_byte_ns.map(ms),
    },
    Metric {
        name: "RequestBytes",
        unit: "Bytes",
        class: Class::Value,
        read: |r, _| r.request_bytes.map(Number::int),
    },
    Metric {
        name: "ResponseBytes",
        unit: "Bytes",
        class: Class::Value,
        read: |r, _| r.response_bytes.map(Number::int),
    },
    Metric {
        name: "NetworkBytesIn",
        unit: "Bytes",
        class: Class::OptIn,
        read: |r, _| r.gauges.map(|g| Number::int(g.net_rx_bytes)),
    },
    Metric {
        name: "NetworkBytesOut",
        unit: "Bytes",
        class: Class::OptIn,
        read: |r, _| r.gauges.map(|g| Number::int(g.net_tx_bytes)),
    },
    Metric {
        name: "TmpUsed",
        unit: "Bytes",
        class: Class::OptIn,
        read: |r, _| r.gauges.map(|g| Number::int(g.tmp_used_bytes)),
    },
    Metric {
        name: "OpenFds",
        unit: "Count",
        class: Class::OptIn,
        read: |r, _| r.gauges.map(|g| Number::int(g.open_fds)),
    },
    Metric {
        name: "Threads",
        unit: "Count",
        class: Class::OptIn,
        read: |r, _| r.gauges.map(|g| Number::int(g.threads)),
    },
];

/// The metrics whose values come from the gauges (`/proc` and `statvfs` at the invoke's end),
/// read only when one of them is selected.
pub const GAUGES: &[&str] = &[
    "NetworkBytesIn",
    "NetworkBytesOut",
    "TmpUsed",
    "OpenFds",
    "Threads",
];

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
    #![allow(clippy::unwrap_used)]
    use super::*;

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
        for g in GAUGES {
            assert_eq!(find(g).unwrap().class, Class::OptIn, "{g}");
        }
    }
}
