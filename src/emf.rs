//! CloudWatch Embedded Metric Format encoder: one JSON line per invoke.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::settings::{Settings, metric};
use crate::tracker::{InvokeRecord, RecordKind};
use std::fmt::Write as _;

/// The dimension every record carries by default.
pub const FUNCTION_NAME_DIMENSION: &str = "FunctionName";
/// The `initType` of a first invoke that found its environment initialised ahead of demand.
pub const PROACTIVE_INIT_TYPE: &str = "proactive-initialization";

struct Metric {
    name: &'static str,
    unit: &'static str,
    value: f64,
}

/// The metrics a record carries, before the settings' selection.
fn metrics_of(rec: &InvokeRecord, s: &Settings) -> Vec<Metric> {
    let mut m = Vec::new();
    let mut add = |name, unit, value: Option<f64>| {
        if let Some(value) = value {
            m.push(Metric { name, unit, value });
        }
    };
    let flag = |b: bool| Some(f64::from(u8::from(b)));
    let millis = |ns: Option<u64>| ns.map(ms);
    let max_mb = rec.max_rss_kb.div_ceil(1024);
    let utilization = s
        .memory_size_mb
        .filter(|m| *m > 0)
        .map(|size| (max_mb as f64 * 100.0 / size as f64 * 100.0).round() / 100.0);
    match rec.kind {
        RecordKind::Invoke => {
            add(metric::DURATION, "Milliseconds", millis(rec.duration_ns));
            add(metric::COLD_START, "Count", flag(rec.cold_start));
            add(
                metric::INIT_DURATION,
                "Milliseconds",
                millis(rec.init_duration_ns),
            );
            add(
                metric::RESTORE_DURATION,
                "Milliseconds",
                millis(rec.restore_duration_ns),
            );
            add(metric::ERRORS, "Count", flag(rec.errored));
            add(metric::TIMEOUTS, "Count", flag(rec.timed_out));
        }
        RecordKind::InitError => {
            add(metric::INIT_ERRORS, "Count", Some(1.0));
            add(
                metric::INIT_DURATION,
                "Milliseconds",
                millis(rec.init_duration_ns),
            );
        }
    }
    add(metric::MAX_MEMORY_USED, "Megabytes", Some(max_mb as f64));
    add(metric::MEMORY_UTILIZATION, "Percent", utilization);
    add(metric::CPU_TIME, "Milliseconds", millis(rec.cpu_ns));
    add(
        metric::POST_RESPONSE_DURATION,
        "Milliseconds",
        millis(rec.post_response_ns),
    );
    add(
        metric::TIME_TO_FIRST_BYTE,
        "Milliseconds",
        millis(rec.time_to_first_byte_ns),
    );
    add(
        metric::REQUEST_BYTES,
        "Bytes",
        rec.request_bytes.map(|b| b as f64),
    );
    add(
        metric::RESPONSE_BYTES,
        "Bytes",
        rec.response_bytes.map(|b| b as f64),
    );
    if let Some(g) = rec.gauges {
        add(
            metric::NETWORK_BYTES_IN,
            "Bytes",
            Some(g.net_rx_bytes as f64),
        );
        add(
            metric::NETWORK_BYTES_OUT,
            "Bytes",
            Some(g.net_tx_bytes as f64),
        );
        add(metric::TMP_USED, "Bytes", Some(g.tmp_used_bytes as f64));
        add(metric::OPEN_FDS, "Count", Some(g.open_fds as f64));
        add(metric::THREADS, "Count", Some(g.threads as f64));
    }
    m.retain(|metric| s.emits(metric.name));
    m
}

/// Encodes one record as one EMF line (with its trailing newline), or `None` when the
/// settings select none of its metrics.
pub fn encode(rec: &InvokeRecord, s: &Settings) -> Option<String> {
    let metrics = metrics_of(rec, s);
    if metrics.is_empty() {
        return None;
    }
    let init_type = if rec.proactive_init {
        PROACTIVE_INIT_TYPE
    } else {
        s.init_type.as_str()
    };
    // Every dimension key is a string member of the root.
    let dimension_value = |key: &str| -> String {
        match key {
            "service" => s.service.clone().unwrap_or_default(),
            "functionVersion" => s
                .function_version
                .clone()
                .unwrap_or_else(|| "unknown".into()),
            "runtime" => s.runtime.clone(),
            "initType" => init_type.to_string(),
            _ => s.function_name.clone(),
        }
    };
    let mut out = String::with_capacity(1536);
    out.push_str("{\"_aws\":{\"Timestamp\":");
    let _ = write!(out, "{}", rec.timestamp_ms);
    out.push_str(",\"CloudWatchMetrics\":[{\"Namespace\":");
    push_str(&mut out, &s.namespace);
    out.push_str(",\"Dimensions\":[");
    for (i, set) in s.dimension_sets.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        for (j, key) in set.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            push_str(&mut out, key);
        }
        out.push(']');
    }
    out.push_str("],\"Metrics\":[");
    for (i, m) in metrics.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"Name\":");
        push_str(&mut out, m.name);
        out.push_str(",\"Unit\":");
        push_str(&mut out, m.unit);
        if s.resolution == 1 {
            out.push_str(",\"StorageResolution\":1");
        }
        out.push('}');
    }
    out.push_str("]}]}");
    // Dimension values first, then metric values, then properties; each key once.
    let mut keys: Vec<&str> = Vec::new();
    for key in s.dimension_sets.iter().flatten() {
        if !keys.contains(key) {
            keys.push(key);
            push_member(&mut out, key, &dimension_value(key));
        }
    }
    for m in &metrics {
        out.push(',');
        push_str(&mut out, m.name);
        out.push(':');
        push_number(&mut out, m.value);
    }
    let mut property = |out: &mut String, key: &'static str, value: &str| {
        if !keys.contains(&key) {
            keys.push(key);
            push_member(out, key, value);
        }
    };
    if !rec.request_id.is_empty() {
        property(&mut out, "requestId", &rec.request_id);
    }
    if let Some(trace) = &rec.trace_id {
        property(&mut out, "traceId", trace);
    }
    if let Some(v) = &s.function_version {
        property(&mut out, "functionVersion", v);
    }
    if let Some(service) = &s.service {
        property(&mut out, "service", service);
    }
    property(&mut out, "initType", init_type);
    property(&mut out, "runtime", &s.runtime);
    if let Some(t) = &rec.error_type {
        property(&mut out, "errorType", t);
    }
    if let Some(m) = s.memory_size_mb {
        out.push_str(",\"memorySize\":");
        let _ = write!(out, "{m}");
    }
    if rec.kind == RecordKind::Invoke {
        out.push_str(",\"coldStart\":");
        out.push_str(if rec.cold_start { "true" } else { "false" });
    }
    if rec.restored {
        out.push_str(",\"restored\":true");
    }
    out.push_str("}\n");
    Some(out)
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
            kind: RecordKind::Invoke,
            request_id: "req-1".into(),
            trace_id: Some("Root=1-5f-abc;Sampled=0".into()),
            timestamp_ms: 1_700_000_000_123,
            duration_ns: Some(12_345_678),
            cold_start: true,
            proactive_init: false,
            init_duration_ns: Some(150_000_000),
            restored: false,
            restore_duration_ns: None,
            errored: true,
            timed_out: false,
            error_type: Some("ValueError".into()),
            cpu_ns: Some(2_000_000),
            max_rss_kb: 51_200,
            request_bytes: Some(20),
            response_bytes: Some(30),
            post_response_ns: Some(1_500_000),
            time_to_first_byte_ns: None,
            gauges: None,
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
        let line = encode(&record(), &settings()).unwrap();
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
        let v: Value = serde_json::from_str(&encode(&r, &settings()).unwrap()).unwrap();
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
        let line = encode(&r, &s).unwrap();
        assert_eq!(line.matches('\n').count(), 1);
        let v: Value = serde_json::from_str(&line).unwrap();
        check_cross_references(&v);
        assert_eq!(v["errorType"], "x\"}\n{\"_aws\":1");
    }
}
