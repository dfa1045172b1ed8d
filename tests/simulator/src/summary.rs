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

/// The properties every record of an environment's log stream shares: lambda-meter writes them
/// on the stream's first record only (unless they are dimensions).
pub const ENVIRONMENT_PROPERTIES: &[&str] = &[
    "functionVersion",
    "service",
    "initType",
    "runtime",
    "memorySize",
];

/// The records as a reader of the log stream knows them: each gets the environment's
/// properties of the latest earlier record that has them, or, before the first that has them
/// (records of invokes at once may reach the stream out of order), of that first one. A
/// record's own values stay.
pub fn with_environment(records: &[Value]) -> Vec<Value> {
    let first: serde_json::Map<String, Value> = ENVIRONMENT_PROPERTIES
        .iter()
        .filter_map(|k| {
            let v = records.iter().find_map(|r| r.get(*k))?;
            Some(((*k).to_string(), v.clone()))
        })
        .collect();
    let mut known = first;
    records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if let Some(obj) = r.as_object_mut() {
                for k in ENVIRONMENT_PROPERTIES {
                    match obj.get(*k) {
                        Some(v) => {
                            known.insert((*k).to_string(), v.clone());
                        }
                        None => {
                            if let Some(v) = known.get(*k) {
                                obj.insert((*k).to_string(), v.clone());
                            }
                        }
                    }
                }
            }
            r
        })
        .collect()
}

/// One record per invoke: a batched record (`invokes`, arrays of values) becomes one record for
/// each of its invokes, with the i-th value of every array that has one per invoke and the
/// error types handed to the invokes whose `Errors` is 1, in order. Other records are kept.
pub fn per_invoke(records: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for r in records {
        let Some(n) = r.get("invokes").and_then(Value::as_u64) else {
            out.push(r.clone());
            continue;
        };
        let n = n as usize;
        let mut types = r
            .get("errorType")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter();
        for i in 0..n {
            let mut one = serde_json::Map::new();
            for (k, v) in r.as_object().into_iter().flatten() {
                match v.as_array() {
                    _ if k == "invokes" || k == "errorType" => {}
                    Some(a) if a.len() == n => {
                        one.insert(k.clone(), a[i].clone());
                    }
                    Some(_) => {}
                    None => {
                        one.insert(k.clone(), v.clone());
                    }
                }
            }
            if one.get("Errors").and_then(Value::as_f64) == Some(1.0)
                && let Some(t) = types.next()
                && !t.is_null()
            {
                one.insert("errorType".into(), t);
            }
            out.push(Value::Object(one));
        }
    }
    out
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
    let written = records.len();
    let records = &per_invoke(records)[..];
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
    if written == records.len() {
        out.push_str(&format!("records         {written}\n"));
    } else {
        out.push_str(&format!(
            "records         {written}, for {} invokes\n",
            records.len()
        ));
    }
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
    out.push_str(&downstream(records));
    out
}

/// How many names [`downstream`] lists.
pub const DOWNSTREAM_SHOWN: usize = 5;

/// The slowest downstream names of the records' `downstream` properties (by total wait), each
/// with its calls, its wait, the invokes that called it and the timeouts left waiting on it;
/// nothing when no record has the property.
fn downstream(records: &[Value]) -> String {
    #[derive(Default)]
    struct Name {
        calls: f64,
        wait_ms: f64,
        invokes: usize,
        stuck: usize,
    }
    fn at(names: &mut Vec<(String, Name)>, name: &str) -> usize {
        match names.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                names.push((name.to_string(), Name::default()));
                names.len() - 1
            }
        }
    }
    let mut names: Vec<(String, Name)> = Vec::new();
    let entries = |r: &Value, key: &str| -> Vec<Value> {
        r.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for r in records {
        for e in entries(r, "downstream") {
            let Some(name) = e.get("name").and_then(Value::as_str) else {
                continue;
            };
            let i = at(&mut names, name);
            let num = |k: &str| e.get(k).and_then(Value::as_f64).unwrap_or(0.0);
            names[i].1.calls += num("calls");
            names[i].1.wait_ms += num("waitMs");
            names[i].1.invokes += 1;
        }
        for w in entries(r, "waitingOn") {
            if let Some(name) = w.get("name").and_then(Value::as_str) {
                let i = at(&mut names, name);
                names[i].1.stuck += 1;
            }
        }
    }
    if names.is_empty() {
        return String::new();
    }
    names.sort_by(|a, b| b.1.wait_ms.total_cmp(&a.1.wait_ms).then(a.0.cmp(&b.0)));
    let mut out = format!(
        "downstream      {} name(s), slowest first (total wait)\n",
        names.len()
    );
    for (name, n) in names.iter().take(DOWNSTREAM_SHOWN) {
        out.push_str(&format!(
            "  {name:<30} {:>6} calls  wait {:.2} ms  in {} invoke(s)",
            n.calls, n.wait_ms, n.invokes
        ));
        if n.stuck > 0 {
            out.push_str(&format!("  {} timeout(s) waiting on it", n.stuck));
        }
        out.push('\n');
    }
    out
}

/// Where the records show up once the function runs on Lambda, read from the records' own
/// EMF declaration (namespace, dimension sets, metric names), with the Logs Insights queries
/// that find them, and what to do next.
pub fn where_in_aws(records: &[Value]) -> String {
    let batched = records.iter().any(|r| r.get("invokes").is_some());
    let records = &per_invoke(records)[..];
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
    if batched {
        out.push_str("Each EMF line above is one log line: one invoke's, or a batch's (invokes, value arrays).\n");
    } else {
        out.push_str("Every EMF line above is one log line of the invoke it describes.\n");
    }
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

/// CloudWatch list prices (us-east-1) the estimate uses, and their date.
pub const PRICES_DATED: &str = "2026-05-04";
/// Dollars per custom metric per month (the first 10,000 metrics of an account).
pub const METRIC_MONTH_USD: f64 = 0.30;
/// Dollars per GB (2^30 bytes) of log ingested (Standard class; Lambda's own log tier starts
/// at the same price).
pub const LOG_GB_USD: f64 = 0.50;
/// Lambda Insights by AWS's own figures: custom metrics per function, log bytes per invoke.
pub const INSIGHTS_METRICS: usize = 8;
pub const INSIGHTS_BYTES_PER_INVOKE: f64 = 1024.0;

/// What a run's records cost in CloudWatch.
#[derive(Clone, Debug, PartialEq)]
pub struct Cost {
    /// Distinct custom metrics (namespace, name, dimension names and values) the records
    /// declare: each is billed per month.
    pub metrics: usize,
    /// Log bytes written per invoke (EMF lines with their newline, over the invokes they
    /// cover).
    pub bytes_per_invoke: f64,
    pub invokes: usize,
}

impl Cost {
    /// Dollars a month for a function invoked `invokes_per_month` times like this run's, with
    /// its metrics published every hour of the month (they are billed by the hour they get
    /// data: a quieter function pays less for metrics).
    pub fn monthly_usd(&self, invokes_per_month: f64) -> f64 {
        monthly_usd(self.metrics, self.bytes_per_invoke, invokes_per_month)
    }
}

/// Dollars a month for `metrics` custom metrics and `bytes_per_invoke` log bytes an invoke.
pub fn monthly_usd(metrics: usize, bytes_per_invoke: f64, invokes_per_month: f64) -> f64 {
    metrics as f64 * METRIC_MONTH_USD
        + bytes_per_invoke * invokes_per_month / f64::from(1u32 << 30) * LOG_GB_USD
}

/// The cost of the EMF lines in `stdout`, or `None` without one.
pub fn cost(stdout: &str) -> Option<Cost> {
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| !emf_records(l).is_empty())
        .collect();
    if lines.is_empty() {
        return None;
    }
    let records = emf_records(stdout);
    let invokes = per_invoke(&records).len();
    let mut metrics = std::collections::BTreeSet::new();
    for r in &records {
        for d in r["_aws"]["CloudWatchMetrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for set in d["Dimensions"].as_array().into_iter().flatten() {
                let dims: Vec<String> = set
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|k| format!("{}={}", k, r[k.as_str().unwrap_or_default()]))
                    .collect();
                for m in d["Metrics"].as_array().into_iter().flatten() {
                    metrics.insert((
                        d["Namespace"].to_string(),
                        m["Name"].to_string(),
                        dims.clone(),
                    ));
                }
            }
        }
    }
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    Some(Cost {
        metrics: metrics.len(),
        bytes_per_invoke: bytes as f64 / invokes.max(1) as f64,
        invokes,
    })
}

/// The estimate `make demo` prints: this run's cost per function and month beside Lambda
/// Insights', at 1 and 100 million invokes.
pub fn cost_text(c: &Cost) -> String {
    let mut out = String::from("== what it costs in CloudWatch (per function, per month) ==\n");
    out.push_str(&format!(
        "this run        {} custom metrics, {:.0} log bytes per invoke ({} invokes)\n",
        c.metrics, c.bytes_per_invoke, c.invokes
    ));
    out.push_str(&format!(
        "Lambda Insights {INSIGHTS_METRICS} custom metrics, about {INSIGHTS_BYTES_PER_INVOKE:.0} log bytes per invoke\n"
    ));
    for (label, n) in [("1 million", 1e6), ("100 million", 1e8)] {
        out.push_str(&format!(
            "{label:<11} invokes: ${:.2} (Lambda Insights ${:.2})\n",
            c.monthly_usd(n),
            monthly_usd(INSIGHTS_METRICS, INSIGHTS_BYTES_PER_INVOKE, n)
        ));
    }
    out.push_str(&format!(
        "                us-east-1 list prices of {PRICES_DATED}: ${METRIC_MONTH_USD:.2} a metric-month, ${LOG_GB_USD:.2} a GB of log;\n                metrics billed as if published every hour; storage not included\n"
    ));
    out
}

/// Request ids in `ids` that no record names.
pub fn missing_records(records: &[Value], ids: &[String]) -> Vec<String> {
    let records = per_invoke(records);
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
    fn lists_the_slowest_downstream_names() {
        let out = concat!(
            "{\"_aws\":{},\"Duration\":200,\"downstream\":[{\"name\":\"api.example.com\",\"calls\":2,\"waitMs\":150.5},{\"name\":\"db\",\"calls\":1,\"waitMs\":3}]}\n",
            "{\"_aws\":{},\"Duration\":900,\"errorType\":\"Sandbox.Timedout\",\"downstream\":[{\"name\":\"db\",\"calls\":4,\"waitMs\":7}],\"waitingOn\":[{\"name\":\"db\",\"ageMs\":800}]}\n",
            "{\"_aws\":{},\"Duration\":1}\n",
        );
        let s = summarize(&emf_records(out));
        assert!(s.contains("downstream      2 name(s)"), "{s}");
        let api = s.find("api.example.com").unwrap();
        let db = s.find("  db ").unwrap();
        assert!(api < db, "slowest first: {s}");
        assert!(
            s.contains("2 calls  wait 150.50 ms  in 1 invoke(s)\n"),
            "{s}"
        );
        assert!(
            s.contains("5 calls  wait 10.00 ms  in 2 invoke(s)  1 timeout(s) waiting on it"),
            "{s}"
        );
        let none = summarize(&emf_records("{\"_aws\":{},\"Duration\":1}\n"));
        assert!(!none.contains("downstream"), "{none}");
    }

    #[test]
    fn batches_become_one_record_per_invoke_and_cost_counts_their_invokes() {
        let batch = r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["FunctionName"]],"Metrics":[{"Name":"ColdStart"}]}]},"FunctionName":"f","ColdStart":[0,0,0],"Errors":[0,1,0],"invokes":3,"requestId":["a","b","c"],"errorType":["Boom"]}"#;
        let records = emf_records(batch);
        let each = per_invoke(&records);
        assert_eq!(each.len(), 3);
        assert_eq!(each[1]["requestId"], "b");
        assert_eq!(each[1]["errorType"], "Boom");
        assert!(each[0].get("errorType").is_none());
        assert_eq!(each[2]["ColdStart"], 0);
        assert!(missing_records(&records, &["c".into(), "d".into()]) == ["d"]);
        let c = cost(&format!("{batch}\nnot emf\n")).unwrap();
        assert_eq!(c.metrics, 1);
        assert_eq!(c.invokes, 3);
        assert_eq!(c.bytes_per_invoke, (batch.len() + 1) as f64 / 3.0);
        // 1 metric a month, and 2^30 bytes over 2^30 / bytes-per-invoke invokes.
        let per_gb = f64::from(1u32 << 30) / c.bytes_per_invoke;
        assert!((c.monthly_usd(per_gb) - 0.80).abs() < 1e-9);
        assert!(cost_text(&c).contains("Lambda Insights"));
    }

    #[test]
    fn stream_properties_reach_every_record_of_the_stream() {
        let out = "{\"_aws\":{},\"runtime\":\"python3.12\",\"requestId\":\"a\"}\n{\"_aws\":{},\"requestId\":\"b\"}\n";
        let filled = with_environment(&emf_records(out));
        assert_eq!(filled[1]["runtime"], "python3.12");
        assert!(filled[1].get("memorySize").is_none());
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
