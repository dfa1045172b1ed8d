//! Settings, read once from the environment when the library loads.
//!
//! Every setting is an environment variable starting with `LAMBDA_METER_`. A value that cannot
//! be used gives exactly one warning naming the variable, the bad value and the default used.

use crate::text::bounded;

/// Namespace used when none is configured.
pub const DEFAULT_NAMESPACE: &str = "LambdaMeter";
/// Dimension value used when the function name is unknown (outside Lambda).
pub const UNKNOWN_FUNCTION: &str = "unknown";
/// Longest dimension value CloudWatch accepts.
pub const MAX_DIMENSION_VALUE: usize = 1024;

/// How chatty the library is on stderr about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
}

/// Everything the library needs to know about its environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `LAMBDA_METER_DISABLE`: do nothing at all.
    pub disabled: bool,
    /// `LAMBDA_METER_NAMESPACE`, else `POWERTOOLS_METRICS_NAMESPACE`, else `LambdaMeter`.
    pub namespace: String,
    /// `LAMBDA_METER_LOG`: internal diagnostics on stderr (only `debug` adds any). Warnings
    /// about bad input are written whatever this says, once each.
    pub log_level: LogLevel,
    /// `AWS_LAMBDA_RUNTIME_API`, as given.
    pub runtime_api: Option<String>,
    /// `AWS_LAMBDA_FUNCTION_NAME`, bounded to a valid dimension value.
    pub function_name: String,
    /// `AWS_LAMBDA_FUNCTION_VERSION`.
    pub function_version: Option<String>,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in MB.
    pub memory_size_mb: Option<u64>,
    /// `AWS_LAMBDA_INITIALIZATION_TYPE` (`on-demand` when unset).
    pub init_type: String,
    /// The runtime's name: `AWS_EXECUTION_ENV` without its `AWS_Lambda_` prefix, else the
    /// executable's name.
    pub runtime: String,
    /// `LAMBDA_METER_SERVICE`, else `POWERTOOLS_SERVICE_NAME`: the `service` dimension.
    pub service: Option<String>,
    /// `LAMBDA_METER_DIMENSIONS`: the dimension sets, each a list of dimension keys.
    pub dimension_sets: Vec<Vec<Dimension>>,
    /// `LAMBDA_METER_METRICS`: the metrics records declare (billed); every other value a record
    /// has is written as a plain member.
    pub metrics: Vec<&'static str>,
    /// The same, as bits by place in [`crate::metrics::CATALOG`].
    declared: u64,
    /// `LAMBDA_METER_RESOLUTION`: 60 (standard) or 1 (high resolution).
    pub resolution: u8,
    /// `LAMBDA_METER_TRACE_ID`: whether records carry the invoke's `traceId`.
    pub trace_id: bool,
    /// `LAMBDA_METER_DESTINATION`: where records go.
    pub destination: Destination,
    /// `LAMBDA_METER_TIMEOUT_MARGIN_MS`: how long before the deadline an open invoke is
    /// reported as timed out.
    pub timeout_margin_ms: u64,
    /// `LAMBDA_METER_PROACTIVE_INIT_MS`: a first `/next` that waits longer than this for its
    /// event means the environment was initialised ahead of demand.
    pub proactive_init_ms: u64,
    /// `LAMBDA_METER_BATCH`: at most this many invokes in one record (1: a record each).
    pub batch: usize,
    /// `LAMBDA_METER_DOWNSTREAM`: whether the function's own connections are followed (what
    /// each invoke waited on).
    pub downstream: bool,
    /// `AWS_LAMBDA_MAX_CONCURRENCY` (Lambda Managed Instances): invokes an environment may run
    /// at once; 1 in Lambda's default model, where an idle environment is frozen.
    pub max_concurrency: u32,
}

/// Where EMF records go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    Stderr,
    /// Appended to a file.
    File(String),
    /// The CloudWatch agent's EMF endpoint over TCP (one line per record).
    Tcp(std::net::SocketAddr),
    /// The CloudWatch agent's EMF endpoint over UDP (one datagram per record).
    Udp(std::net::SocketAddr),
    /// A Unix socket, datagram (one record each) or stream (one line each), whichever it is: a
    /// log router running as an extension (Vector's `socket` source, Fluent Bit's syslog input).
    Unix(String),
}

/// A dimension a dimension set may use: each is a string member of every record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dimension {
    FunctionName,
    Service,
    FunctionVersion,
    Runtime,
    InitType,
}

impl Dimension {
    pub const ALL: [Dimension; 5] = [
        Dimension::FunctionName,
        Dimension::Service,
        Dimension::FunctionVersion,
        Dimension::Runtime,
        Dimension::InitType,
    ];

    /// Its key in records and in `LAMBDA_METER_DIMENSIONS`.
    pub fn key(self) -> &'static str {
        match self {
            Dimension::FunctionName => "FunctionName",
            Dimension::Service => "service",
            Dimension::FunctionVersion => "functionVersion",
            Dimension::Runtime => "runtime",
            Dimension::InitType => "initType",
        }
    }

    pub fn from_key(key: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.key() == key)
    }
}

impl AsRef<str> for Dimension {
    fn as_ref(&self) -> &str {
        self.key()
    }
}

/// Who reads a setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// The library, when the process loads it ([`Settings::from_env`], or the glue).
    Library,
    /// The wrapper script (`wrapper/lambda-meter`), before the runtime starts.
    Wrapper,
    /// Both.
    Both,
}

/// One `LAMBDA_METER_*` setting: the one place it is described. Parsing takes its warning's
/// words from here, the README's settings table shows its variable and default (a test
/// compares them), and the bad-value test sets every `refused` value at once.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    pub var: &'static str,
    /// The default, as the README's table shows it (Markdown).
    pub default: &'static str,
    /// What the warning says is used instead of a value that cannot be.
    pub fallback: &'static str,
    /// What a usable value looks like (the warning's words); `None`: any value is taken.
    pub expected: Option<&'static str>,
    /// A value that cannot be used (the bad-value test sets it); `None` when any is taken.
    pub refused: Option<&'static str>,
    pub reader: Reader,
}

/// Every setting, in the README's order.
pub const SETTINGS: &[Setting] = &[
    Setting {
        var: "LAMBDA_METER_DISABLE",
        default: "`false`",
        fallback: "false",
        expected: Some("true or false"),
        refused: Some("sometimes"),
        reader: Reader::Both,
    },
    Setting {
        var: "LAMBDA_METER_NAMESPACE",
        default: "`LambdaMeter`",
        fallback: DEFAULT_NAMESPACE,
        expected: Some("1 to 255 characters of A-Z a-z 0-9 . _ # : / -"),
        refused: Some("has space"),
        reader: Reader::Library,
    },
    Setting {
        var: "LAMBDA_METER_SERVICE",
        default: "unset",
        fallback: "",
        expected: None,
        refused: None,
        reader: Reader::Library,
    },
    Setting {
        var: "LAMBDA_METER_DIMENSIONS",
        default: "`FunctionName` (`FunctionName,service` with a service)",
        // The default given the service (see `dimensions_setting`).
        fallback: "",
        expected: Some(
            "sets of FunctionName, service, functionVersion, runtime, initType: keys joined by ',', sets by ';' (at most 30 keys a set), or none",
        ),
        refused: Some("Color"),
        reader: Reader::Library,
    },
    Setting {
        var: "LAMBDA_METER_METRICS",
        default: "`default`",
        fallback: "default",
        expected: Some("default, all, or metric names separated by ','"),
        refused: Some("Speed"),
        reader: Reader::Library,
    },
    Setting {
        var: "LAMBDA_METER_BATCH",
        default: "`1`",
        fallback: "1",
        expected: Some("a whole number of invokes from 1 to 100"),
        refused: Some("many"),
        reader: Reader::Library,
    },
    Setting {
        var: "LAMBDA_METER_DOWNSTREAM",
        default: "`true`",
        fallback: "true",
        expected: Some("true or false"),
        refused: Some("sometimes"),
        reader: Reader::Library,
    },
    Setting {
        var: "LAMBDA_METER_RESOLUTION",
        default: "`60`",
        fallback: "60",
        expected: Some("60 or 1"),
        refused: Some("5"),
        reader: Reader::Library,
    },
    Setting {
        var: "LAMBDA_METER_TRACE_ID",
        default: "`true`",
        fallback: "true",
        expected: Some("true or false"),
        refused: Some("perhaps"),
        reader: Reader::Library,
    },
    Setting {
        var: "LAMBDA_METER_DESTINATION",
        default: "`stdout`",
        fallback: "stdout",
        expected: Some(
            "stdout, stderr, file:/absolute/path, tcp://ip:port, udp://ip:port or unix:/absolute/path (at most 107 bytes)",
        ),
        refused: Some("kafka://x"),
        reader: Reader::Library,
    },
    Setting {
        var: "LAMBDA_METER_TIMEOUT_MARGIN_MS",
        default: "`50`",
        fallback: "50",
        expected: Some(MILLISECONDS),
        refused: Some("soon"),
        reader: Reader::Library,
    },
    Setting {
        var: "LAMBDA_METER_PROACTIVE_INIT_MS",
        default: "`1000`",
        fallback: "1000",
        expected: Some(MILLISECONDS),
        refused: Some("-1"),
        reader: Reader::Library,
    },
    Setting {
        var: "LAMBDA_METER_LOG",
        default: "`off`",
        fallback: "off",
        expected: Some("off, error, warn, info or debug"),
        refused: Some("loud"),
        reader: Reader::Library,
    },
    Setting {
        var: "LAMBDA_METER_LIB",
        default: "`<wrapper dir>/lib/liblambda_meter.so`",
        fallback: "",
        expected: None,
        refused: None,
        reader: Reader::Wrapper,
    },
    Setting {
        var: "LAMBDA_METER_NEXT_WRAPPER",
        default: "unset",
        fallback: "",
        expected: None,
        refused: None,
        reader: Reader::Wrapper,
    },
    Setting {
        var: "LAMBDA_METER_CHANNEL",
        default: "`$TMPDIR/.lambda-meter-<pid>.channel`, `<pid>` the runtime's (set by the wrapper)",
        fallback: "",
        expected: None,
        refused: None,
        reader: Reader::Both,
    },
    Setting {
        var: "LAMBDA_METER_RUNTIME_FAMILY",
        default: "set by the wrapper",
        fallback: "",
        expected: None,
        refused: None,
        reader: Reader::Wrapper,
    },
    Setting {
        var: "LAMBDA_METER_ENV_ID",
        default: "set by the wrapper",
        fallback: "",
        expected: None,
        refused: None,
        reader: Reader::Both,
    },
];

const MILLISECONDS: &str = "a whole number of milliseconds up to 900000";

/// The setting named `var` (every name parsing uses is one of [`SETTINGS`]).
fn setting(var: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.var == var)
}

/// The one warning for `raw`, an unusable value of `var`, which falls back to `fallback` (the
/// table's, unless the fallback depends on other settings).
fn refuse(var: &str, raw: &str, fallback: Option<&str>) -> String {
    let row = setting(var);
    invalid(
        var,
        raw,
        fallback.or(row.map(|s| s.fallback)).unwrap_or_default(),
        row.and_then(|s| s.expected).unwrap_or("a usable value"),
    )
}

/// Setting `var`: `default` when unset, `parse`'s value when it has one, else `default` and
/// the one warning.
fn read<T>(
    get: &dyn Fn(&str) -> Option<String>,
    var: &str,
    default: T,
    warnings: &mut Vec<String>,
    parse: impl FnOnce(&str) -> Option<T>,
) -> T {
    let Some(raw) = get(var) else {
        return default;
    };
    match parse(&raw) {
        Some(v) => v,
        None => {
            warnings.push(refuse(var, &raw, None));
            default
        }
    }
}

/// Default `LAMBDA_METER_TIMEOUT_MARGIN_MS`.
pub const DEFAULT_TIMEOUT_MARGIN_MS: u64 = 50;
/// The most invokes one batched record may hold (EMF allows 100 values per metric).
pub const MAX_BATCH: usize = 100;
/// Default `LAMBDA_METER_PROACTIVE_INIT_MS`.
pub const DEFAULT_PROACTIVE_INIT_MS: u64 = 1000;

impl Settings {
    /// What the catalog's values may depend on besides the record.
    pub fn metric_context(&self) -> crate::metrics::Context {
        crate::metrics::Context {
            memory_size_mb: self.memory_size_mb.filter(|m| *m > 0),
            max_concurrency: self.max_concurrency,
        }
    }

    /// Whether records declare metric `name` (else its value is a plain member).
    pub fn emits(&self, name: &str) -> bool {
        self.metrics.contains(&name)
    }

    /// The metrics records declare, as bits by place in [`crate::metrics::CATALOG`].
    pub fn declared_bits(&self) -> u64 {
        self.declared
    }

    /// Whether records declare the metric at place `i` of [`crate::metrics::CATALOG`].
    pub fn emits_at(&self, i: usize) -> bool {
        i < 64 && self.declared & 1 << i != 0
    }
}

impl Settings {
    /// Reads the settings through `get` (the environment, or a test's map). `exe_name` names the
    /// runtime when `AWS_EXECUTION_ENV` does not. Returns the settings and the warning lines.
    pub fn from_env(
        get: &dyn Fn(&str) -> Option<String>,
        exe_name: &str,
    ) -> (Settings, Vec<String>) {
        let mut warnings = Vec::new();
        let disabled = read(
            get,
            "LAMBDA_METER_DISABLE",
            false,
            &mut warnings,
            parse_bool,
        );
        let namespace = namespace_setting(get, &mut warnings);
        let log_level = read(
            get,
            "LAMBDA_METER_LOG",
            LogLevel::Off,
            &mut warnings,
            parse_log_level,
        );
        let function_name =
            function_name_of(get("AWS_LAMBDA_FUNCTION_NAME").as_deref()).to_string();
        let memory_size_mb =
            get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").and_then(|v| v.trim().parse().ok());
        let init_type = get("AWS_LAMBDA_INITIALIZATION_TYPE")
            .filter(|v| !v.is_empty())
            .map(|v| bounded(&v, 64))
            .unwrap_or_else(|| "on-demand".to_string());
        let runtime = get("AWS_EXECUTION_ENV")
            .filter(|v| !v.is_empty())
            .map(|v| v.strip_prefix("AWS_Lambda_").unwrap_or(&v).to_string())
            .unwrap_or_else(|| exe_name.to_string());
        let service = ["LAMBDA_METER_SERVICE", "POWERTOOLS_SERVICE_NAME"]
            .iter()
            .find_map(|k| get(k).filter(|v| !v.is_empty()))
            .map(|v| bounded(&v, MAX_DIMENSION_VALUE));
        let dimension_sets = dimensions_setting(get, service.is_some(), &mut warnings);
        let metrics = metrics_setting(get, &mut warnings);
        let resolution = read(
            get,
            "LAMBDA_METER_RESOLUTION",
            60,
            &mut warnings,
            |v| match v.trim() {
                "60" | "" => Some(60),
                "1" => Some(1),
                _ => None,
            },
        );
        let trace_id = read(
            get,
            "LAMBDA_METER_TRACE_ID",
            true,
            &mut warnings,
            parse_bool,
        );
        let destination = destination_setting(get, &mut warnings);
        let timeout_margin_ms = millis_setting(
            get,
            "LAMBDA_METER_TIMEOUT_MARGIN_MS",
            DEFAULT_TIMEOUT_MARGIN_MS,
            &mut warnings,
        );
        let proactive_init_ms = millis_setting(
            get,
            "LAMBDA_METER_PROACTIVE_INIT_MS",
            DEFAULT_PROACTIVE_INIT_MS,
            &mut warnings,
        );
        let batch = read(get, "LAMBDA_METER_BATCH", 1, &mut warnings, |v| {
            match v.trim().parse::<usize>() {
                Ok(0) => Some(1),
                Ok(n) if n <= MAX_BATCH => Some(n),
                _ if v.trim().is_empty() => Some(1),
                _ => None,
            }
        });
        let downstream = read(
            get,
            "LAMBDA_METER_DOWNSTREAM",
            true,
            &mut warnings,
            parse_bool,
        );
        let settings = Settings {
            disabled,
            namespace,
            log_level,
            runtime_api: get("AWS_LAMBDA_RUNTIME_API").filter(|v| !v.is_empty()),
            function_name,
            function_version: get("AWS_LAMBDA_FUNCTION_VERSION")
                .map(|v| bounded(&v, MAX_DIMENSION_VALUE)),
            memory_size_mb,
            init_type,
            runtime: bounded(&runtime, 128),
            service,
            dimension_sets,
            declared: crate::metrics::CATALOG
                .iter()
                .enumerate()
                .filter(|(i, m)| *i < 64 && metrics.contains(&m.name))
                .fold(0, |bits, (i, _)| bits | 1 << i),
            metrics,
            resolution,
            trace_id,
            destination,
            timeout_margin_ms,
            proactive_init_ms,
            batch,
            downstream,
            max_concurrency: get("AWS_LAMBDA_MAX_CONCURRENCY")
                .and_then(|v| v.trim().parse().ok())
                .filter(|n| *n >= 1)
                .unwrap_or(1),
        };
        (settings, warnings)
    }
}

fn millis_setting(
    get: &dyn Fn(&str) -> Option<String>,
    var: &str,
    default: u64,
    warnings: &mut Vec<String>,
) -> u64 {
    read(get, var, default, warnings, |v| {
        v.trim().parse::<u64>().ok().filter(|ms| *ms <= 900_000)
    })
}

/// `LAMBDA_METER_DIMENSIONS`: sets separated by `;`, keys by `,` (`FunctionName,service;
/// FunctionName`), or `none` for metrics without dimensions.
fn dimensions_setting(
    get: &dyn Fn(&str) -> Option<String>,
    have_service: bool,
    warnings: &mut Vec<String>,
) -> Vec<Vec<Dimension>> {
    let default: Vec<Vec<Dimension>> = if have_service {
        vec![vec![Dimension::FunctionName, Dimension::Service]]
    } else {
        vec![vec![Dimension::FunctionName]]
    };
    let Some(raw) = get("LAMBDA_METER_DIMENSIONS") else {
        return default;
    };
    let shown_default = default
        .iter()
        .map(|set| set.iter().map(|d| d.key()).collect::<Vec<_>>().join(","))
        .collect::<Vec<_>>()
        .join(";");
    if raw.trim().eq_ignore_ascii_case("none") {
        return vec![Vec::new()];
    }
    let mut sets = Vec::new();
    for set in raw.split(';') {
        let mut keys: Vec<Dimension> = Vec::new();
        for key in set.split(',').map(str::trim) {
            let usable = match Dimension::from_key(key) {
                Some(Dimension::Service) => have_service.then_some(Dimension::Service),
                known => known,
            };
            match usable {
                Some(d) if !keys.contains(&d) => keys.push(d),
                _ => {
                    warnings.push(refuse(
                        "LAMBDA_METER_DIMENSIONS",
                        &raw,
                        Some(&shown_default),
                    ));
                    return default;
                }
            }
        }
        if keys.is_empty() || keys.len() > 30 {
            warnings.push(refuse(
                "LAMBDA_METER_DIMENSIONS",
                &raw,
                Some(&shown_default),
            ));
            return default;
        }
        sets.push(keys);
    }
    sets
}

/// `LAMBDA_METER_METRICS`: `default`, `all`, or names (which may include `default`): the
/// metrics records declare. Names come from the catalog ([`crate::metrics`]).
fn metrics_setting(
    get: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Vec<&'static str> {
    use crate::metrics::{CATALOG, Class, find, of};
    let default: Vec<&'static str> = of(Class::Default).collect();
    let Some(raw) = get("LAMBDA_METER_METRICS") else {
        return default;
    };
    let mut chosen: Vec<&'static str> = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let add: Vec<&'static str> = match name {
            "default" => default.clone(),
            "all" => CATALOG.iter().map(|m| m.name).collect(),
            _ => match find(name) {
                Some(m) => vec![m.name],
                None => {
                    warnings.push(refuse("LAMBDA_METER_METRICS", &raw, None));
                    return default;
                }
            },
        };
        for m in add {
            if !chosen.contains(&m) {
                chosen.push(m);
            }
        }
    }
    if chosen.is_empty() {
        warnings.push(refuse("LAMBDA_METER_METRICS", &raw, None));
        return default;
    }
    chosen
}

fn destination_setting(
    get: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Destination {
    read(
        get,
        "LAMBDA_METER_DESTINATION",
        Destination::Stdout,
        warnings,
        |raw| {
            let v = raw.trim();
            match v {
                "stdout" | "" => Some(Destination::Stdout),
                "stderr" => Some(Destination::Stderr),
                _ => {
                    if let Some(path) = v.strip_prefix("file:").filter(|p| p.starts_with('/')) {
                        Some(Destination::File(path.to_string()))
                    } else if let Some(addr) = v.strip_prefix("tcp://") {
                        addr.parse().ok().map(Destination::Tcp)
                    } else if let Some(addr) = v.strip_prefix("udp://") {
                        addr.parse().ok().map(Destination::Udp)
                    } else if let Some(path) = v.strip_prefix("unix:") {
                        // A socket's path fits `sun_path` with its NUL.
                        (path.starts_with('/') && path.len() < 108 && !path.contains('\0'))
                            .then(|| Destination::Unix(path.to_string()))
                    } else {
                        None
                    }
                }
            }
        },
    )
}

fn namespace_setting(get: &dyn Fn(&str) -> Option<String>, warnings: &mut Vec<String>) -> String {
    for var in ["LAMBDA_METER_NAMESPACE", "POWERTOOLS_METRICS_NAMESPACE"] {
        if let Some(v) = get(var) {
            if valid_namespace(&v) {
                return v;
            }
            // Powertools' variable, a fallback, follows the same rule.
            warnings.push(invalid(
                var,
                &v,
                DEFAULT_NAMESPACE,
                setting("LAMBDA_METER_NAMESPACE")
                    .and_then(|s| s.expected)
                    .unwrap_or_default(),
            ));
            return DEFAULT_NAMESPACE.to_string();
        }
    }
    DEFAULT_NAMESPACE.to_string()
}

/// The CloudWatch namespace rule.
pub fn valid_namespace(ns: &str) -> bool {
    (1..=255).contains(&ns.len())
        && ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._#:/-".contains(&b))
}

/// A boolean setting (no allocation: it is read before the process becomes a runtime, too).
/// The function's name as records carry it (and as the environment's journal is named), from
/// `AWS_LAMBDA_FUNCTION_NAME`'s value. No allocation.
pub fn function_name_of(raw: Option<&str>) -> &str {
    raw.map(|n| crate::text::bounded_str(n, MAX_DIMENSION_VALUE))
        .filter(|n| !n.is_empty())
        .unwrap_or(UNKNOWN_FUNCTION)
}

pub fn parse_bool(v: &str) -> Option<bool> {
    let v = v.trim();
    let is = |words: &[&str]| words.iter().any(|w| w.eq_ignore_ascii_case(v));
    if is(&["true", "1", "yes", "on"]) {
        Some(true)
    } else if is(&["false", "0", "no", "off", ""]) {
        Some(false)
    } else {
        None
    }
}

fn parse_log_level(v: &str) -> Option<LogLevel> {
    match v.trim().to_ascii_lowercase().as_str() {
        "off" | "" => Some(LogLevel::Off),
        "error" => Some(LogLevel::Error),
        "warn" | "warning" => Some(LogLevel::Warn),
        "info" => Some(LogLevel::Info),
        "debug" | "trace" => Some(LogLevel::Debug),
        _ => None,
    }
}

/// The one warning line for an unusable value. The value is shown escaped and bounded, so a
/// hostile value cannot forge log lines.
pub fn invalid(var: &str, value: &str, default: &str, expected: &str) -> String {
    let shown: String = bounded(value, 80).escape_debug().collect();
    format!("{var}=\"{shown}\" is not valid (expected {expected}); using {default}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> (Settings, Vec<String>) {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_env(&|k| map.get(k).cloned(), "bootstrap")
    }

    #[test]
    fn every_refused_value_of_the_table_gets_its_one_warning() {
        let mut all = Vec::new();
        for s in SETTINGS {
            assert_eq!(s.expected.is_some(), s.refused.is_some(), "{}", s.var);
            let Some(bad) = s.refused else {
                continue;
            };
            assert_ne!(s.reader, Reader::Wrapper, "{}", s.var);
            let (_, w) = read(&[(s.var, bad)]);
            assert_eq!(w.len(), 1, "{}: {w:?}", s.var);
            let said = &w[0];
            assert!(said.starts_with(&format!("{}=\"{bad}\"", s.var)), "{said}");
            assert!(said.contains(s.expected.unwrap()), "{said}");
            assert!(said.contains(&format!("using {}", s.fallback)), "{said}");
            all.push((s.var, bad));
        }
        // All at once: one warning each.
        let (s, w) = read(&all);
        assert_eq!(w.len(), all.len(), "{w:?}");
        assert_eq!(s, read(&[]).0);
    }

    #[test]
    fn downstream_calls_can_be_left_unfollowed() {
        assert!(read(&[]).0.downstream);
        assert!(!read(&[("LAMBDA_METER_DOWNSTREAM", "false")]).0.downstream);
        let (s, w) = read(&[("LAMBDA_METER_DOWNSTREAM", "sometimes")]);
        assert!(s.downstream);
        assert_eq!(w.len(), 1, "{w:?}");
    }

    #[test]
    fn the_trace_id_can_be_left_out() {
        assert!(read(&[]).0.trace_id);
        assert!(!read(&[("LAMBDA_METER_TRACE_ID", "false")]).0.trace_id);
        assert!(read(&[("LAMBDA_METER_TRACE_ID", "on")]).0.trace_id);
        let (s, w) = read(&[("LAMBDA_METER_TRACE_ID", "perhaps")]);
        assert!(s.trace_id);
        assert_eq!(w.len(), 1, "{w:?}");
    }

    #[test]
    fn defaults_outside_lambda() {
        let (s, w) = read(&[]);
        assert!(w.is_empty());
        assert!(!s.disabled);
        assert_eq!(s.namespace, "LambdaMeter");
        assert_eq!(s.function_name, "unknown");
        assert_eq!(s.init_type, "on-demand");
        assert_eq!(s.runtime, "bootstrap");
        assert_eq!(s.runtime_api, None);
        assert_eq!(s.log_level, LogLevel::Off);
    }

    #[test]
    fn lambda_environment() {
        let (s, w) = read(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "orders"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
            ("AWS_EXECUTION_ENV", "AWS_Lambda_python3.12"),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "provisioned-concurrency"),
        ]);
        assert!(w.is_empty());
        assert_eq!(s.function_name, "orders");
        assert_eq!(s.function_version.as_deref(), Some("$LATEST"));
        assert_eq!(s.memory_size_mb, Some(512));
        assert_eq!(s.runtime, "python3.12");
        assert_eq!(s.init_type, "provisioned-concurrency");
        assert_eq!(s.runtime_api.as_deref(), Some("127.0.0.1:9001"));
    }

    #[test]
    fn namespace_precedence_and_validation() {
        assert_eq!(
            read(&[("POWERTOOLS_METRICS_NAMESPACE", "Shop")])
                .0
                .namespace,
            "Shop"
        );
        assert_eq!(
            read(&[
                ("POWERTOOLS_METRICS_NAMESPACE", "Shop"),
                ("LAMBDA_METER_NAMESPACE", "Mine")
            ])
            .0
            .namespace,
            "Mine"
        );
        let (s, w) = read(&[("LAMBDA_METER_NAMESPACE", "bad name\n\"x")]);
        assert_eq!(s.namespace, "LambdaMeter");
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("LAMBDA_METER_NAMESPACE=\"bad name\\n\\\"x\""),
            "{}",
            w[0]
        );
        assert!(w[0].contains("using LambdaMeter"));
        assert!(!w[0].contains('\n'));
    }

    #[test]
    fn bad_values_warn_once_each_and_fall_back() {
        let (s, w) = read(&[
            ("LAMBDA_METER_DISABLE", "maybe"),
            ("LAMBDA_METER_LOG", "loud"),
        ]);
        assert!(!s.disabled);
        assert_eq!(s.log_level, LogLevel::Off);
        assert_eq!(w.len(), 2);
        assert!(w[0].contains("LAMBDA_METER_DISABLE=\"maybe\"") && w[0].contains("using false"));
        assert!(w[1].contains("LAMBDA_METER_LOG=\"loud\"") && w[1].contains("using off"));
        assert!(read(&[("LAMBDA_METER_DISABLE", "TRUE")]).0.disabled);
    }

    #[test]
    fn service_and_dimensions() {
        let (s, w) = read(&[("POWERTOOLS_SERVICE_NAME", "shop")]);
        assert!(w.is_empty());
        assert_eq!(s.service.as_deref(), Some("shop"));
        use Dimension::*;
        assert_eq!(s.dimension_sets, vec![vec![FunctionName, Service]]);
        let (s, _) = read(&[
            ("POWERTOOLS_SERVICE_NAME", "shop"),
            ("LAMBDA_METER_SERVICE", "cart"),
        ]);
        assert_eq!(s.service.as_deref(), Some("cart"));
        let (s, w) = read(&[
            ("LAMBDA_METER_SERVICE", "cart"),
            ("LAMBDA_METER_DIMENSIONS", "FunctionName;service, runtime"),
        ]);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            s.dimension_sets,
            vec![vec![FunctionName], vec![Service, Runtime]]
        );
        assert_eq!(
            read(&[("LAMBDA_METER_DIMENSIONS", "none")])
                .0
                .dimension_sets,
            vec![Vec::<Dimension>::new()]
        );
        for bad in ["Color", "FunctionName,,x", "service", ";"] {
            let (s, w) = read(&[("LAMBDA_METER_DIMENSIONS", bad)]);
            assert_eq!(s.dimension_sets, vec![vec![FunctionName]], "{bad}");
            assert_eq!(w.len(), 1, "{bad}");
            assert!(
                w[0].contains("LAMBDA_METER_DIMENSIONS") && w[0].contains("using FunctionName")
            );
        }
    }

    #[test]
    fn metric_selection() {
        let default: Vec<&str> = crate::metrics::of(crate::metrics::Class::Default).collect();
        assert_eq!(read(&[]).0.metrics, default);
        let all = read(&[("LAMBDA_METER_METRICS", "all")]).0;
        assert!(all.emits("OpenFds") && all.emits("Duration"));
        let some = read(&[("LAMBDA_METER_METRICS", "Duration, Errors")]).0;
        assert_eq!(some.metrics, vec!["Duration", "Errors"]);
        let plus = read(&[("LAMBDA_METER_METRICS", "default,Threads")]).0;
        assert!(plus.emits("Threads") && plus.emits("ColdStart") && !plus.emits("OpenFds"));
        let (bad, w) = read(&[("LAMBDA_METER_METRICS", "Duration,Bogus")]);
        assert_eq!(bad.metrics, default);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("Bogus") && w[0].contains("using default"));
        // The declared metrics by catalog place are the ones by name.
        for s in [&all, &some, &plus, &bad] {
            for (i, m) in crate::metrics::CATALOG.iter().enumerate() {
                assert_eq!(s.emits_at(i), s.emits(m.name), "{}", m.name);
            }
            assert!(!s.emits_at(crate::metrics::CATALOG.len()));
        }
    }

    #[test]
    fn resolution_destination_and_millis() {
        let (s, w) = read(&[
            ("LAMBDA_METER_RESOLUTION", "1"),
            ("LAMBDA_METER_DESTINATION", "tcp://127.0.0.1:25888"),
            ("LAMBDA_METER_TIMEOUT_MARGIN_MS", "200"),
            ("LAMBDA_METER_PROACTIVE_INIT_MS", "0"),
        ]);
        assert!(w.is_empty());
        assert_eq!(s.resolution, 1);
        assert_eq!(
            s.destination,
            Destination::Tcp("127.0.0.1:25888".parse().unwrap())
        );
        assert_eq!(s.timeout_margin_ms, 200);
        assert_eq!(s.proactive_init_ms, 0);
        assert_eq!(
            read(&[("LAMBDA_METER_DESTINATION", "udp://[::1]:25888")])
                .0
                .destination,
            Destination::Udp("[::1]:25888".parse().unwrap())
        );
        assert_eq!(
            read(&[("LAMBDA_METER_DESTINATION", "file:/tmp/emf.log")])
                .0
                .destination,
            Destination::File("/tmp/emf.log".into())
        );
        assert_eq!(
            read(&[("LAMBDA_METER_DESTINATION", "stderr")])
                .0
                .destination,
            Destination::Stderr
        );
        assert_eq!(
            read(&[("LAMBDA_METER_DESTINATION", "unix:/tmp/vector.sock")])
                .0
                .destination,
            Destination::Unix("/tmp/vector.sock".into())
        );
        // A relative path, or one too long for a socket address: refused.
        let long = format!("unix:/{}", "s".repeat(107));
        for bad in ["unix:vector.sock", "unix:", long.as_str()] {
            let (s, w) = read(&[("LAMBDA_METER_DESTINATION", bad)]);
            assert_eq!((s.destination, w.len()), (Destination::Stdout, 1), "{bad}");
        }
        let (s, w) = read(&[
            ("LAMBDA_METER_RESOLUTION", "5"),
            ("LAMBDA_METER_DESTINATION", "kafka://x"),
            ("LAMBDA_METER_TIMEOUT_MARGIN_MS", "-3"),
            ("LAMBDA_METER_PROACTIVE_INIT_MS", "soon"),
        ]);
        assert_eq!(w.len(), 4, "{w:?}");
        assert_eq!(s.resolution, 60);
        assert_eq!(s.destination, Destination::Stdout);
        assert_eq!(s.timeout_margin_ms, DEFAULT_TIMEOUT_MARGIN_MS);
        assert_eq!(s.proactive_init_ms, DEFAULT_PROACTIVE_INIT_MS);
        for (w, var) in w.iter().zip([
            "LAMBDA_METER_RESOLUTION",
            "LAMBDA_METER_DESTINATION",
            "LAMBDA_METER_TIMEOUT_MARGIN_MS",
            "LAMBDA_METER_PROACTIVE_INIT_MS",
        ]) {
            assert!(w.starts_with(var), "{w}");
            assert!(w.contains("using "), "{w}");
        }
    }

    #[test]
    fn batch_size() {
        assert_eq!(read(&[]).0.batch, 1);
        assert_eq!(read(&[("LAMBDA_METER_BATCH", " 25 ")]).0.batch, 25);
        assert_eq!(read(&[("LAMBDA_METER_BATCH", "0")]).0.batch, 1);
        assert_eq!(read(&[("LAMBDA_METER_BATCH", "100")]).0.batch, 100);
        for bad in ["101", "-1", "ten", "2.5"] {
            let (s, w) = read(&[("LAMBDA_METER_BATCH", bad)]);
            assert_eq!(s.batch, 1, "{bad}");
            assert_eq!(w.len(), 1, "{bad}");
            assert!(w[0].starts_with("LAMBDA_METER_BATCH=") && w[0].contains("using 1"));
        }
    }

    #[test]
    fn hostile_function_name_is_bounded() {
        let long = "é".repeat(3000);
        let (s, _) = read(&[("AWS_LAMBDA_FUNCTION_NAME", &long)]);
        assert!(s.function_name.len() <= MAX_DIMENSION_VALUE);
        assert!(s.function_name.chars().all(|c| c == 'é'));
    }
}
