//! Custom metrics, dimensions and properties a function adds to its invoke's record through
//! the public C ABI (`lambda_meter_metric`, `lambda_meter_dimension`, `lambda_meter_property`)
//! or a language shim over it.
//!
//! They are checked here, when they are given, against the same rules and limits the record
//! keeps (so a bad one gets a status code and never reaches a record), and kept with the invoke
//! they belong to until its record is written: custom metrics under a directive of their own
//! (the function's first dimension set plus the custom dimensions), beside the built-in one, so
//! a custom dimension never multiplies the built-in metrics' bill.

use std::cell::Cell;

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
    /// A per-record limit is reached (see [`MAX_METRICS`] and the others).
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

/// One custom metric: its unit and every value given during the invoke.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub name: String,
    pub unit: &'static str,
    pub values: Vec<f64>,
}

/// Everything added to one record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Custom {
    pub metrics: Vec<Metric>,
    /// Key and value, in the order given (a key given again takes the new value).
    pub dimensions: Vec<(String, String)>,
    /// Key and the value as compact JSON, in the order given (a key given again takes the new
    /// value).
    pub properties: Vec<(String, String)>,
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

impl Custom {
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty() && self.dimensions.is_empty() && self.properties.is_empty()
    }

    /// Whether `name` is already a member of this record's custom part.
    fn has(&self, name: &str) -> bool {
        self.metrics.iter().any(|m| m.name == name)
            || self.dimensions.iter().any(|(k, _)| k == name)
            || self.properties.iter().any(|(k, _)| k == name)
    }

    /// Adds `value` to metric `name` (a metric given again becomes a value array; its unit is
    /// the first one given).
    pub fn metric(
        &mut self,
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
        let Some(unit) = UNITS.iter().find(|u| **u == given) else {
            return Status::BadUnit;
        };
        if let Some(m) = self.metrics.iter_mut().find(|m| m.name == name) {
            if m.values.len() >= MAX_VALUES {
                return Status::Limit;
            }
            m.values.push(value);
            return Status::Ok;
        }
        if self.has(name) {
            return Status::BadName;
        }
        if self.metrics.len() >= MAX_METRICS {
            return Status::Limit;
        }
        self.metrics.push(Metric {
            name: name.to_string(),
            unit,
            values: vec![value],
        });
        Status::Ok
    }

    /// Sets custom dimension `key` to `value`.
    pub fn dimension(&mut self, key: &str, value: &str, taken: &dyn Fn(&str) -> bool) -> Status {
        if !usable_name(key, taken) {
            return Status::BadName;
        }
        if value.is_empty() || value.len() > MAX_DIMENSION_VALUE {
            return Status::BadValue;
        }
        if let Some(d) = self.dimensions.iter_mut().find(|(k, _)| k == key) {
            d.1 = value.to_string();
            return Status::Ok;
        }
        if self.has(key) {
            return Status::BadName;
        }
        if self.dimensions.len() >= MAX_DIMENSIONS {
            return Status::Limit;
        }
        self.dimensions.push((key.to_string(), value.to_string()));
        Status::Ok
    }

    /// Sets property `key` to `json_value`, which must be one JSON value (kept compact).
    pub fn property(
        &mut self,
        key: &str,
        json_value: &str,
        taken: &dyn Fn(&str) -> bool,
    ) -> Status {
        if !usable_name(key, taken) {
            return Status::BadName;
        }
        let Ok(value) = serde_json::from_str::<serde_json::Value>(json_value) else {
            return Status::BadValue;
        };
        let compact = value.to_string();
        if compact.len() > MAX_PROPERTY_JSON {
            return Status::BadValue;
        }
        if let Some(p) = self.properties.iter_mut().find(|(k, _)| k == key) {
            p.1 = compact;
            return Status::Ok;
        }
        if self.has(key) {
            return Status::BadName;
        }
        if self.properties.len() >= MAX_PROPERTIES {
            return Status::Limit;
        }
        self.properties.push((key.to_string(), compact));
        Status::Ok
    }

    /// Takes `more` (given before the invoke started) in, as if given now.
    pub fn absorb(&mut self, more: Custom, taken: &dyn Fn(&str) -> bool) {
        for m in more.metrics {
            for v in m.values {
                let _ = self.metric(&m.name, v, Some(m.unit), taken);
            }
        }
        for (k, v) in more.dimensions {
            let _ = self.dimension(&k, &v, taken);
        }
        for (k, v) in more.properties {
            let _ = self.property(&k, &v, taken);
        }
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
/// one, unless several run at once: then lines should name theirs).
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelLine {
    pub request_id: Option<String>,
    pub op: ChannelOp,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ChannelOp {
    Metric {
        name: String,
        value: f64,
        unit: Option<String>,
    },
    Dimension {
        key: String,
        value: String,
    },
    Property {
        key: String,
        json: String,
    },
}

impl ChannelLine {
    /// Adds this line's value to `c`, under the same rules as the C ABI.
    pub fn apply(&self, c: &mut Custom, taken: &dyn Fn(&str) -> bool) -> Status {
        match &self.op {
            ChannelOp::Metric { name, value, unit } => {
                c.metric(name, *value, unit.as_deref(), taken)
            }
            ChannelOp::Dimension { key, value } => c.dimension(key, value, taken),
            ChannelOp::Property { key, json } => c.property(key, json, taken),
        }
    }
}

/// The channel lines in `bytes` (whole lines only) that this process (`own_pid`) should
/// apply: those with its pid or with none (lines of other processes sharing the file are
/// theirs). Lines that are not one of the forms above are skipped; returns how many.
pub fn parse_channel(bytes: &[u8], own_pid: u32) -> (Vec<ChannelLine>, usize) {
    let mut lines = Vec::new();
    let mut bad = 0;
    for raw in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(raw) else {
            bad += 1;
            continue;
        };
        if let Some(pid) = v.get("pid")
            && pid.as_u64() != Some(u64::from(own_pid))
        {
            continue;
        }
        let text = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
        };
        let op = if let Some(name) = text("metric") {
            v.get("value")
                .and_then(serde_json::Value::as_f64)
                .map(|value| ChannelOp::Metric {
                    name,
                    value,
                    unit: text("unit"),
                })
        } else if let Some(key) = text("dimension") {
            text("value").map(|value| ChannelOp::Dimension { key, value })
        } else if let Some(key) = text("property") {
            v.get("value").map(|value| ChannelOp::Property {
                key,
                json: value.to_string(),
            })
        } else {
            None
        };
        match op {
            Some(op) => lines.push(ChannelLine {
                request_id: text("requestId"),
                op,
            }),
            None => bad += 1,
        }
    }
    (lines, bad)
}

thread_local! {
    /// Its address names the thread, with no system call (see [`thread_key`]).
    static THREAD: Cell<u8> = const { Cell::new(0) };
}

/// A number that names the calling thread while it lives: the address of one of its
/// thread-locals (no system call; a thread that has ended may pass its number on).
pub fn thread_key() -> u64 {
    THREAD.with(|t| t as *const Cell<u8> as u64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn none(_: &str) -> bool {
        false
    }

    #[test]
    fn a_metric_given_again_is_a_value_array_up_to_the_limit() {
        let mut c = Custom::default();
        assert_eq!(c.metric("Orders", 1.0, Some("Count"), &none), Status::Ok);
        assert_eq!(c.metric("Orders", 2.5, None, &none), Status::Ok);
        assert_eq!(c.metrics[0].values, vec![1.0, 2.5]);
        assert_eq!(c.metric("Plain", 1.0, None, &none), Status::Ok);
        assert_eq!(c.metrics[1].unit, "None");
        assert_eq!(c.metrics[0].unit, "Count");
        for _ in 2..MAX_VALUES {
            assert_eq!(c.metric("Orders", 0.0, None, &none), Status::Ok);
        }
        assert_eq!(c.metric("Orders", 0.0, None, &none), Status::Limit);
        assert_eq!(c.metrics[0].values.len(), MAX_VALUES);
    }

    #[test]
    fn bad_input_gets_its_status_and_changes_nothing() {
        let taken = |n: &str| n == "Duration";
        let mut c = Custom::default();
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
            assert_eq!(c.metric(name, value, unit, &taken), want, "{name:?}");
        }
        assert_eq!(c.dimension("tenant", "", &taken), Status::BadValue);
        assert_eq!(
            c.dimension("tenant", &"v".repeat(1025), &taken),
            Status::BadValue
        );
        assert_eq!(c.property("order", "{\"id\":", &taken), Status::BadValue);
        assert_eq!(c.property("order", "1 2", &taken), Status::BadValue);
        assert!(c.is_empty());
        // One name, one member: a metric's name cannot be a dimension or property too.
        assert_eq!(c.metric("x", 1.0, None, &taken), Status::Ok);
        assert_eq!(c.dimension("x", "v", &taken), Status::BadName);
        assert_eq!(c.property("x", "1", &taken), Status::BadName);
    }

    #[test]
    fn dimensions_and_properties_take_the_last_value_and_keep_json_compact() {
        let mut c = Custom::default();
        assert_eq!(c.dimension("tenant", "a", &none), Status::Ok);
        assert_eq!(c.dimension("tenant", "b", &none), Status::Ok);
        assert_eq!(c.dimensions, vec![("tenant".into(), "b".into())]);
        assert_eq!(
            c.property("order", " { \"id\" : 7 , \"tags\":[ \"a\" ] } ", &none),
            Status::Ok
        );
        assert_eq!(c.properties[0].1, r#"{"id":7,"tags":["a"]}"#);
        for i in 1..MAX_DIMENSIONS {
            assert_eq!(c.dimension(&format!("d{i}"), "v", &none), Status::Ok);
        }
        assert_eq!(c.dimension("one-more", "v", &none), Status::Limit);
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
        let (lines, bad) = parse_channel(bytes, 7);
        assert_eq!(bad, 3);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(
            lines[0].op,
            ChannelOp::Metric {
                name: "A".into(),
                value: 2.0,
                unit: Some("Count".into())
            }
        );
        assert_eq!(lines[1].request_id.as_deref(), Some("r-1"));
        let mut c = Custom::default();
        for l in &lines {
            assert_eq!(l.apply(&mut c, &none), Status::Ok);
        }
        assert_eq!(c.properties, vec![("order".into(), r#"{"id":7}"#.into())]);
    }

    #[test]
    fn threads_have_their_own_keys() {
        let here = thread_key();
        assert_eq!(here, thread_key());
        let there = std::thread::spawn(thread_key).join().unwrap_or(here);
        assert_ne!(here, there);
    }
}
