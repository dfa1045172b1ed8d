//! Settings, read once from the environment when the library loads.
//!
//! Every setting is an environment variable starting with `LAMBDA_METER_`. A value that cannot
//! be used gives exactly one warning naming the variable, the bad value and the default used.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

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
    /// `LAMBDA_METER_LOG`: internal diagnostics on stderr. Warnings about bad input are always
    /// written, once each, unless this is `off` *and* set explicitly.
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
}

impl Settings {
    /// Reads the settings through `get` (the environment, or a test's map). `exe_name` names the
    /// runtime when `AWS_EXECUTION_ENV` does not. Returns the settings and the warning lines.
    pub fn from_env(
        get: &dyn Fn(&str) -> Option<String>,
        exe_name: &str,
    ) -> (Settings, Vec<String>) {
        let mut warnings = Vec::new();
        let disabled = match get("LAMBDA_METER_DISABLE") {
            None => false,
            Some(v) => parse_bool(&v).unwrap_or_else(|| {
                warnings.push(invalid(
                    "LAMBDA_METER_DISABLE",
                    &v,
                    "false",
                    "true or false",
                ));
                false
            }),
        };
        let namespace = namespace_setting(get, &mut warnings);
        let log_level = match get("LAMBDA_METER_LOG") {
            None => LogLevel::Off,
            Some(v) => parse_log_level(&v).unwrap_or_else(|| {
                warnings.push(invalid(
                    "LAMBDA_METER_LOG",
                    &v,
                    "off",
                    "off, error, warn, info or debug",
                ));
                LogLevel::Off
            }),
        };
        let function_name = get("AWS_LAMBDA_FUNCTION_NAME")
            .map(|n| bounded(&n, MAX_DIMENSION_VALUE))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| UNKNOWN_FUNCTION.to_string());
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
        };
        (settings, warnings)
    }
}

fn namespace_setting(get: &dyn Fn(&str) -> Option<String>, warnings: &mut Vec<String>) -> String {
    for var in ["LAMBDA_METER_NAMESPACE", "POWERTOOLS_METRICS_NAMESPACE"] {
        if let Some(v) = get(var) {
            if valid_namespace(&v) {
                return v;
            }
            warnings.push(invalid(
                var,
                &v,
                DEFAULT_NAMESPACE,
                "1 to 255 characters of A-Z a-z 0-9 . _ # : / -",
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

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" | "" => Some(false),
        _ => None,
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

/// `s` cut to at most `max` bytes on a character boundary.
pub fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_string()
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
    fn hostile_function_name_is_bounded() {
        let long = "é".repeat(3000);
        let (s, _) = read(&[("AWS_LAMBDA_FUNCTION_NAME", &long)]);
        assert!(s.function_name.len() <= MAX_DIMENSION_VALUE);
        assert!(s.function_name.chars().all(|c| c == 'é'));
    }
}
