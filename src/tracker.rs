//! The invoke tracker: turns Runtime API exchanges into one record per invoke.
//!
//! Invokes are keyed by request id, never by connection or thread: an event may be fetched on
//! one connection and its result posted on another, and several invokes may be open at once.
//! Time and resource readings come in as [`Probe`] values, so this is plain testable logic.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{HashMap, VecDeque};

/// At most this many invokes may be open at once; beyond it the oldest is forgotten (a runtime
/// that never posts results must not grow our memory).
const MAX_OPEN: usize = 1024;
/// Request ids of recently finished invokes, to ignore a second result for the same id.
const RECENT_DONE: usize = 64;
pub const MAX_ID_LEN: usize = 256;
pub const MAX_TRACE_LEN: usize = 1024;
pub const MAX_ERROR_TYPE_LEN: usize = 255;

/// One reading of the clocks and the process's resources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Probe {
    /// Monotonic clock, ns.
    pub mono_ns: u64,
    /// Wall clock, ms since the epoch.
    pub wall_ms: u64,
    /// User + system CPU time of the process, ns.
    pub cpu_ns: u64,
    /// Peak resident set size of the process, KiB.
    pub max_rss_kb: u64,
}

/// What the `/next` answer told us about an event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventInfo {
    pub request_id: String,
    pub trace_id: Option<String>,
    pub deadline_ms: Option<u64>,
    pub request_bytes: u64,
}

/// How an invoke ended, from the result request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub response_bytes: u64,
    pub errored: bool,
    pub error_type: Option<String>,
}

/// Everything one EMF line reports about one invoke.
#[derive(Clone, Debug, PartialEq)]
pub struct InvokeRecord {
    pub request_id: String,
    pub trace_id: Option<String>,
    pub timestamp_ms: u64,
    pub duration_ns: u64,
    pub cold_start: bool,
    pub init_duration_ns: Option<u64>,
    pub errored: bool,
    pub error_type: Option<String>,
    pub cpu_ns: u64,
    pub max_rss_kb: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

#[derive(Clone, Debug)]
struct OpenInvoke {
    event: EventInfo,
    started: Probe,
    cold_start: bool,
    init_duration_ns: Option<u64>,
}

/// Per-process invoke state. See the module documentation.
#[derive(Debug)]
pub struct Tracker {
    /// When this runtime's life began (library load, or the fork that made it).
    born_ns: u64,
    /// When the first `/next` request was fully sent.
    first_next_ns: Option<u64>,
    /// Whether the next invoke to start is this environment's cold start.
    cold_start_pending: bool,
    open: HashMap<String, OpenInvoke>,
    open_order: VecDeque<String>,
    recent_done: VecDeque<String>,
}

impl Tracker {
    /// `on_demand`: whether a first invoke counts as a cold start (on-demand initialisation).
    pub fn new(born_ns: u64, on_demand: bool) -> Self {
        Tracker {
            born_ns,
            first_next_ns: None,
            cold_start_pending: on_demand,
            open: HashMap::new(),
            open_order: VecDeque::new(),
            recent_done: VecDeque::new(),
        }
    }

    /// A `/next` request was fully sent.
    pub fn next_requested(&mut self, now: &Probe) {
        if self.first_next_ns.is_none() {
            self.first_next_ns = Some(now.mono_ns);
        }
    }

    /// An event was fully received: the invoke starts now.
    pub fn event_received(&mut self, mut event: EventInfo, now: &Probe) {
        event.request_id = crate::settings::bounded(&event.request_id, MAX_ID_LEN);
        event.trace_id = event
            .trace_id
            .map(|t| crate::settings::bounded(&t, MAX_TRACE_LEN));
        if event.request_id.is_empty() || self.open.contains_key(&event.request_id) {
            return;
        }
        let cold_start = std::mem::take(&mut self.cold_start_pending);
        let init_duration_ns = if cold_start {
            let first_next = self.first_next_ns.unwrap_or(now.mono_ns);
            Some(first_next.saturating_sub(self.born_ns))
        } else {
            None
        };
        if self.open.len() >= MAX_OPEN
            && let Some(oldest) = self.open_order.pop_front()
        {
            self.open.remove(&oldest);
        }
        self.open_order.push_back(event.request_id.clone());
        self.open.insert(
            event.request_id.clone(),
            OpenInvoke {
                event,
                started: *now,
                cold_start,
                init_duration_ns,
            },
        );
    }

    /// A result (`/response` or `/error`) for `request_id` was fully sent. Returns the record,
    /// or `None` when the id is unknown or already finished.
    pub fn result_sent(
        &mut self,
        request_id: &str,
        outcome: Outcome,
        now: &Probe,
    ) -> Option<InvokeRecord> {
        let open = self.open.remove(request_id)?;
        self.open_order.retain(|id| id != request_id);
        if self.recent_done.len() >= RECENT_DONE {
            self.recent_done.pop_front();
        }
        self.recent_done.push_back(request_id.to_string());
        let started = open.started;
        Some(InvokeRecord {
            request_id: open.event.request_id,
            trace_id: open.event.trace_id,
            timestamp_ms: now.wall_ms,
            duration_ns: now.mono_ns.saturating_sub(started.mono_ns),
            cold_start: open.cold_start,
            init_duration_ns: open.init_duration_ns,
            errored: outcome.errored,
            error_type: outcome
                .error_type
                .map(|t| crate::settings::bounded(&t, MAX_ERROR_TYPE_LEN)),
            cpu_ns: now.cpu_ns.saturating_sub(started.cpu_ns),
            max_rss_kb: now.max_rss_kb,
            request_bytes: open.event.request_bytes,
            response_bytes: outcome.response_bytes,
        })
    }

    /// Number of invokes started and not yet finished.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// A forked child starts a life of its own: nothing open is its to report.
    pub fn reborn(&mut self, born_ns: u64, on_demand: bool) {
        *self = Tracker::new(born_ns, on_demand);
    }
}

/// Finds `"errorType": "..."` in a (possibly truncated) JSON error body, as the Python and Node
/// clients send it. Returns the unescaped value.
pub fn error_type_in_body(body: &[u8]) -> Option<String> {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) {
        return match map.get("errorType") {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
    }
    // Truncated body: find the key and decode just the string after it.
    let text = String::from_utf8_lossy(body);
    let at = text.find("\"errorType\"")?;
    let rest = text.get(at + "\"errorType\"".len()..)?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    if !rest.starts_with('"') {
        return None;
    }
    let mut end = None;
    let mut escaped = false;
    for (i, c) in rest.char_indices().skip(1) {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let literal = rest.get(..=end?)?;
    match serde_json::from_str::<String>(literal) {
        Ok(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn at(ms: u64) -> Probe {
        Probe {
            mono_ns: ms * 1_000_000,
            wall_ms: 1_700_000_000_000 + ms,
            cpu_ns: ms * 100_000,
            max_rss_kb: 40_000,
        }
    }

    fn event(id: &str) -> EventInfo {
        EventInfo {
            request_id: id.into(),
            trace_id: Some("Root=1-abc".into()),
            deadline_ms: None,
            request_bytes: 10,
        }
    }

    #[test]
    fn cold_start_only_on_first_invoke() {
        let mut t = Tracker::new(0, true);
        t.next_requested(&at(120));
        t.event_received(event("a"), &at(200));
        let a = t.result_sent("a", Outcome::default(), &at(250)).unwrap();
        assert!(a.cold_start);
        assert_eq!(a.init_duration_ns, Some(120_000_000));
        assert_eq!(a.duration_ns, 50_000_000);
        assert_eq!(a.cpu_ns, 5_000_000);
        t.next_requested(&at(260));
        t.event_received(event("b"), &at(300));
        let b = t.result_sent("b", Outcome::default(), &at(301)).unwrap();
        assert!(!b.cold_start);
        assert_eq!(b.init_duration_ns, None);
    }

    #[test]
    fn provisioned_is_never_cold() {
        let mut t = Tracker::new(0, false);
        t.event_received(event("a"), &at(1));
        assert!(
            !t.result_sent("a", Outcome::default(), &at(2))
                .unwrap()
                .cold_start
        );
    }

    #[test]
    fn concurrent_invokes_by_id_and_no_duplicates() {
        let mut t = Tracker::new(0, true);
        t.event_received(event("a"), &at(1));
        t.event_received(event("b"), &at(2));
        t.event_received(event("a"), &at(3)); // same id again: ignored
        assert_eq!(t.open_count(), 2);
        let b = t
            .result_sent(
                "b",
                Outcome {
                    errored: true,
                    error_type: Some("E".into()),
                    response_bytes: 3,
                },
                &at(10),
            )
            .unwrap();
        assert_eq!(b.duration_ns, 8_000_000);
        assert!(b.errored && !b.cold_start);
        let a = t.result_sent("a", Outcome::default(), &at(11)).unwrap();
        assert!(a.cold_start);
        assert!(t.result_sent("a", Outcome::default(), &at(12)).is_none());
        assert!(
            t.result_sent("unknown", Outcome::default(), &at(12))
                .is_none()
        );
    }

    #[test]
    fn open_invokes_are_bounded() {
        let mut t = Tracker::new(0, true);
        for i in 0..(MAX_OPEN + 10) {
            t.event_received(event(&i.to_string()), &at(1));
        }
        assert_eq!(t.open_count(), MAX_OPEN);
        assert!(t.result_sent("0", Outcome::default(), &at(2)).is_none());
    }

    #[test]
    fn error_type_from_bodies() {
        assert_eq!(
            error_type_in_body(
                br#"{"errorMessage": "boom", "errorType": "ValueError", "stackTrace": []}"#
            )
            .as_deref(),
            Some("ValueError")
        );
        assert_eq!(
            error_type_in_body(
                br#"{"errorMessage": "x", "errorType": "My\"Err", "stackTrace": ["very long"#
            )
            .as_deref(),
            Some("My\"Err")
        );
        assert_eq!(error_type_in_body(b"not json"), None);
        assert_eq!(error_type_in_body(br#"{"errorType": 5}"#), None);
        assert_eq!(error_type_in_body(br#"{"errorType": "unterminated"#), None);
    }
}
