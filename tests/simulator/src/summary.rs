//! Reads EMF lines out of a function's stdout and summarises them for people.

use serde_json::Value;

/// Every stdout line that is an EMF record (a JSON object with `_aws`).
pub fn emf_records(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A short plain-text summary of the records.
pub fn summarize(records: &[Value]) -> String {
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64);
    let mut durations: Vec<f64> = records.iter().filter_map(|r| num(r, "Duration")).collect();
    durations.sort_by(f64::total_cmp);
    let cold = records
        .iter()
        .filter(|r| num(r, "ColdStart") == Some(1.0))
        .count();
    let errors: Vec<String> = records
        .iter()
        .filter(|r| num(r, "Errors") == Some(1.0))
        .map(|r| {
            r.get("errorType")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string()
        })
        .collect();
    let init: Vec<f64> = records
        .iter()
        .filter_map(|r| num(r, "InitDuration"))
        .collect();
    let cpu: f64 = records.iter().filter_map(|r| num(r, "CpuTime")).sum();
    let mem = records
        .iter()
        .filter_map(|r| num(r, "MaxMemoryUsed"))
        .fold(0.0, f64::max);
    let mut out = String::new();
    out.push_str(&format!("records         {}\n", records.len()));
    out.push_str(&format!(
        "Duration ms     p50 {:.2}  p90 {:.2}  max {:.2}\n",
        percentile(&durations, 50.0),
        percentile(&durations, 90.0),
        durations.last().copied().unwrap_or(0.0)
    ));
    out.push_str(&format!("cold starts     {cold}"));
    if let Some(i) = init.first() {
        out.push_str(&format!("  (InitDuration {i:.2} ms)"));
    }
    out.push('\n');
    out.push_str(&format!("errors          {}", errors.len()));
    if !errors.is_empty() {
        out.push_str(&format!("  ({})", errors.join(", ")));
    }
    out.push('\n');
    out.push_str(&format!("CpuTime total   {cpu:.2} ms\n"));
    out.push_str(&format!("MaxMemoryUsed   {mem} MB\n"));
    out
}

/// Request ids in `ids` that no record names.
pub fn missing_records(records: &[Value], ids: &[String]) -> Vec<String> {
    ids.iter()
        .filter(|id| {
            !records
                .iter()
                .any(|r| r.get("requestId").and_then(Value::as_str) == Some(id.as_str()))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_records_and_ignores_other_lines() {
        let out = "hello\n{\"_aws\":{},\"Duration\":2.0,\"ColdStart\":1,\"InitDuration\":100.5,\"Errors\":0,\"CpuTime\":1}\n{\"not\":\"emf\"}\n{\"_aws\":{},\"Duration\":4.0,\"ColdStart\":0,\"Errors\":1,\"errorType\":\"ValueError\",\"CpuTime\":2}\n";
        let recs = emf_records(out);
        assert_eq!(recs.len(), 2);
        let s = summarize(&recs);
        assert!(s.contains("records         2"));
        assert!(s.contains("cold starts     1  (InitDuration 100.50 ms)"));
        assert!(s.contains("errors          1  (ValueError)"));
        assert!(s.contains("p50 2.00"));
        assert!(s.contains("max 4.00"));
    }
}
