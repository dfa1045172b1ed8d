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

/// Where the records show up once the function runs on Lambda, read from the records' own
/// EMF declaration (namespace, dimension sets, metric names), with the Logs Insights queries
/// that find them, and what to do next.
pub fn where_in_aws(records: &[Value]) -> String {
    let Some(first) = records.first() else {
        return String::new();
    };
    let text = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let decl = &first["_aws"]["CloudWatchMetrics"][0];
    let function = text(&first["FunctionName"]);
    // Every metric any record declares (a cold start's record has InitDuration too, and the
    // function's own custom metrics are in a directive of their own).
    let mut metrics: Vec<String> = Vec::new();
    for r in records {
        for m in r["_aws"]["CloudWatchMetrics"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|d| d["Metrics"].as_array().into_iter().flatten())
        {
            let name = text(&m["Name"]);
            if !metrics.contains(&name) {
                metrics.push(name);
            }
        }
    }
    let sets: Vec<String> = decl["Dimensions"]
        .as_array()
        .map(|sets| {
            sets.iter()
                .map(|set| {
                    let keys: Vec<String> = set
                        .as_array()
                        .map(|k| {
                            k.iter()
                                .map(|k| {
                                    format!(
                                        "{}={}",
                                        text(k),
                                        text(&first[k.as_str().unwrap_or_default()])
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    format!("[{}]", keys.join(", "))
                })
                .collect()
        })
        .unwrap_or_default();
    let failed = records
        .iter()
        .find(|r| r.get("errorType").is_some())
        .or(records.last())
        .map(|r| text(&r["requestId"]))
        .unwrap_or_default();
    let mut out = String::new();
    out.push_str("== where this appears in AWS ==\n");
    out.push_str("Every EMF line above is one log line of the invoke it describes.\n");
    out.push_str(&format!("log group       /aws/lambda/{function}\n"));
    out.push_str(&format!(
        "metrics         CloudWatch > Metrics > namespace {}, dimensions {}\n",
        text(&decl["Namespace"]),
        sets.join(" ")
    ));
    out.push_str(&format!(
        "                {} metrics: {}\n",
        metrics.len(),
        metrics.join(", ")
    ));
    out.push_str("Logs Insights on the log group, errors by type:\n");
    out.push_str("    filter ispresent(errorType) | stats count(*) as errors by errorType\n");
    out.push_str("one invoke, by its request id:\n");
    out.push_str(&format!(
        "    fields @timestamp, Duration, ColdStart, errorType | filter requestId = \"{failed}\"\n"
    ));
    out.push_str(
        "next            make layer, layer/publish, then on a function: the layer and\n                AWS_LAMBDA_EXEC_WRAPPER=/opt/lambda-meter (README, Deploy)\n",
    );
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

    #[test]
    fn says_where_the_records_appear_from_their_own_declaration() {
        let rec = r#"{"_aws":{"CloudWatchMetrics":[{"Namespace":"Shop","Dimensions":[["FunctionName","service"]],"Metrics":[{"Name":"Duration"},{"Name":"Errors"}]}]},"FunctionName":"orders","service":"cart","requestId":"r-1","errorType":"Boom","Errors":1}"#;
        let cold = rec.replace("\"Errors\"}]", "\"Errors\"},{\"Name\":\"InitDuration\"}]");
        let s = where_in_aws(&emf_records(&format!("{rec}\n{cold}")));
        assert!(s.contains("/aws/lambda/orders"), "{s}");
        assert!(
            s.contains("namespace Shop, dimensions [FunctionName=orders, service=cart]"),
            "{s}"
        );
        assert!(
            s.contains("3 metrics: Duration, Errors, InitDuration"),
            "{s}"
        );
        assert!(s.contains("stats count(*) as errors by errorType"), "{s}");
        assert!(s.contains("filter requestId = \"r-1\""), "{s}");
        assert!(where_in_aws(&[]).is_empty());
    }
}
