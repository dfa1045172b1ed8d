//! CloudWatch Embedded Metric Format encoder: one JSON line per invoke.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::settings::Settings;
use crate::tracker::InvokeRecord;
use std::fmt::Write as _;

/// Metric names, as they appear in CloudWatch.
pub mod names {
    pub const DURATION: &str = "Duration";
    pub const COLD_START: &str = "ColdStart";
    pub const INIT_DURATION: &str = "InitDuration";
    pub const ERRORS: &str = "Errors";
    pub const MAX_MEMORY_USED: &str = "MaxMemoryUsed";
    pub const MEMORY_UTILIZATION: &str = "MemoryUtilization";
    pub const CPU_TIME: &str = "CpuTime";
    pub const REQUEST_BYTES: &str = "RequestBytes";
    pub const RESPONSE_BYTES: &str = "ResponseBytes";
}

/// The dimension every record carries.
pub const FUNCTION_NAME_DIMENSION: &str = "FunctionName";

struct Metric {
    name: &'static str,
    unit: &'static str,
    value: f64,
}

/// Encodes one record as one EMF line (with its trailing newline).
pub fn encode(rec: &InvokeRecord, s: &Settings) -> String {
    let mut metrics = vec![
        Metric {
            name: names::DURATION,
            unit: "Milliseconds",
            value: ms(rec.duration_ns),
        },
        Metric {
            name: names::COLD_START,
            unit: "Count",
            value: f64::from(u8::from(rec.cold_start)),
        },
    ];
    if let Some(init) = rec.init_duration_ns {
        metrics.push(Metric {
            name: names::INIT_DURATION,
            unit: "Milliseconds",
            value: ms(init),
        });
    }
    metrics.push(Metric {
        name: names::ERRORS,
        unit: "Count",
        value: f64::from(u8::from(rec.errored)),
    });
    let max_mb = rec.max_rss_kb.div_ceil(1024);
    metrics.push(Metric {
        name: names::MAX_MEMORY_USED,
        unit: "Megabytes",
        value: max_mb as f64,
    });
    if let Some(size) = s.memory_size_mb.filter(|m| *m > 0) {
        let pct = (max_mb as f64 * 100.0 / size as f64 * 100.0).round() / 100.0;
        metrics.push(Metric {
            name: names::MEMORY_UTILIZATION,
            unit: "Percent",
            value: pct,
        });
    }
    metrics.push(Metric {
        name: names::CPU_TIME,
        unit: "Milliseconds",
        value: ms(rec.cpu_ns),
    });
    metrics.push(Metric {
        name: names::REQUEST_BYTES,
        unit: "Bytes",
        value: rec.request_bytes as f64,
    });
    metrics.push(Metric {
        name: names::RESPONSE_BYTES,
        unit: "Bytes",
        value: rec.response_bytes as f64,
    });

    let mut out = String::with_capacity(1024);
    out.push_str("{\"_aws\":{\"Timestamp\":");
    let _ = write!(out, "{}", rec.timestamp_ms);
    out.push_str(",\"CloudWatchMetrics\":[{\"Namespace\":");
    push_str(&mut out, &s.namespace);
    out.push_str(",\"Dimensions\":[[");
    push_str(&mut out, FUNCTION_NAME_DIMENSION);
    out.push_str("]],\"Metrics\":[");
    for (i, m) in metrics.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"Name\":");
        push_str(&mut out, m.name);
        out.push_str(",\"Unit\":");
        push_str(&mut out, m.unit);
        out.push('}');
    }
    out.push_str("]}]}");
    push_member(&mut out, FUNCTION_NAME_DIMENSION, &s.function_name);
    for m in &metrics {
        out.push(',');
        push_str(&mut out, m.name);
        out.push(':');
        push_number(&mut out, m.value);
    }
    push_member(&mut out, "requestId", &rec.request_id);
    if let Some(trace) = &rec.trace_id {
        push_member(&mut out, "traceId", trace);
    }
    if let Some(v) = &s.function_version {
        push_member(&mut out, "functionVersion", v);
    }
    if let Some(m) = s.memory_size_mb {
        out.push_str(",\"memorySize\":");
        let _ = write!(out, "{m}");
    }
    push_member(&mut out, "initType", &s.init_type);
    push_member(&mut out, "runtime", &s.runtime);
    out.push_str(",\"coldStart\":");
    out.push_str(if rec.cold_start { "true" } else { "false" });
    if let Some(t) = &rec.error_type {
        push_member(&mut out, "errorType", t);
    }
    out.push_str("}\n");
    out
}

fn ms(ns: u64) -> f64 {
    // Microsecond precision is plenty and keeps the line short.
    (ns as f64 / 1_000.0).round() / 1_000.0
}

fn push_member(out: &mut String, key: &str, value: &str) {
    out.push(',');
    push_str(out, key);
    out.push(':');
    push_str(out, value);
}

/// A JSON string literal; every control character, quote and backslash is escaped, so no value
/// can break the line or the object.
fn push_str(out: &mut String, s: &str) {
    match serde_json::to_string(s) {
        Ok(lit) => out.push_str(&lit),
        Err(_) => out.push_str("\"\""),
    }
}

fn push_number(out: &mut String, v: f64) {
    if v.is_finite() {
        let _ = write!(out, "{v}");
    } else {
        out.push('0');
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use serde_json::Value;

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

    fn record() -> InvokeRecord {
        InvokeRecord {
            request_id: "req-1".into(),
            trace_id: Some("Root=1-5f-abc;Sampled=0".into()),
            timestamp_ms: 1_700_000_000_123,
            duration_ns: 12_345_678,
            cold_start: true,
            init_duration_ns: Some(150_000_000),
            errored: true,
            error_type: Some("ValueError".into()),
            cpu_ns: 2_000_000,
            max_rss_kb: 51_200,
            request_bytes: 20,
            response_bytes: 30,
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
                assert!(v[m["Name"].as_str().unwrap()].is_number(), "{m}");
            }
        }
    }

    #[test]
    fn encodes_one_valid_line() {
        let line = encode(&record(), &settings());
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
        assert_eq!(v["coldStart"], true);
    }

    #[test]
    fn warm_record_has_no_init_duration() {
        let mut r = record();
        r.cold_start = false;
        r.init_duration_ns = None;
        r.errored = false;
        r.error_type = None;
        let v: Value = serde_json::from_str(&encode(&r, &settings())).unwrap();
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
        assert_eq!(v["coldStart"], false);
    }

    #[test]
    fn hostile_values_stay_one_valid_line() {
        let mut s = settings();
        s.function_name = crate::settings::bounded(&"a\"b\n\\c\u{0}".repeat(1000), 1024);
        let mut r = record();
        r.error_type = Some("x\"}\n{\"_aws\":1".into());
        r.request_id = "\u{2028}\r\n".into();
        let line = encode(&r, &s);
        assert_eq!(line.matches('\n').count(), 1);
        let v: Value = serde_json::from_str(&line).unwrap();
        check_cross_references(&v);
        assert_eq!(v["errorType"], "x\"}\n{\"_aws\":1");
    }
}
