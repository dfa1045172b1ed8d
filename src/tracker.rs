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

/// An invoke whose event was received and whose result was not sent yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenInvoke {
    pub event: EventInfo,
    pub started: Probe,
    pub cold_start: bool,
    pub init_duration_ns: Option<u64>,
}

impl OpenInvoke {
    /// A compact JSON form, for handing the invoke to another process.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "requestId": self.event.request_id,
            "traceId": self.event.trace_id,
            "deadlineMs": self.event.deadline_ms,
            "requestBytes": self.event.request_bytes,
            "monoNs": self.started.mono_ns,
            "wallMs": self.started.wall_ms,
            "cpuNs": self.started.cpu_ns,
            "maxRssKb": self.started.max_rss_kb,
            "coldStart": self.cold_start,
            "initDurationNs": self.init_duration_ns,
        })
        .to_string()
    }

    /// Parses [`OpenInvoke::to_json`]; `None` for anything else.
    pub fn from_json(text: &str) -> Option<OpenInvoke> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let num = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
        Some(OpenInvoke {
            event: EventInfo {
                request_id: v.get("requestId")?.as_str()?.to_string(),
                trace_id: v
                    .get("traceId")
                    .and_then(|t| t.as_str())
                    .map(str::to_string),
                deadline_ms: num("deadlineMs"),
                request_bytes: num("requestBytes")?,
            },
            started: Probe {
                mono_ns: num("monoNs")?,
                wall_ms: num("wallMs")?,
                cpu_ns: num("cpuNs")?,
                max_rss_kb: num("maxRssKb")?,
            },
            cold_start: v.get("coldStart")?.as_bool()?,
            init_duration_ns: num("initDurationNs"),
        })
    }
}

/// Where invokes live between the processes of one environment, when a runtime uses a new
/// process per request (a shell runtime's `curl` calls): the environment's one cold start, and
/// invokes opened by a process that exits before their result is posted by another.
pub trait Handoff: Send {
    /// Claims the environment's cold start: true for exactly one caller per environment.
    fn claim_cold_start(&mut self) -> bool;
    /// When the environment began (monotonic ns), if known.
    fn born_ns(&self) -> Option<u64>;
    /// Keeps an invoke for whichever process posts its result.
    fn save(&mut self, open: &OpenInvoke);
    /// Takes an invoke saved by any process; each one is taken at most once.
    fn take(&mut self, request_id: &str) -> Option<OpenInvoke>;
    /// Forgets an invoke this process saved and finished itself.
    fn forget(&mut self, request_id: &str);
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
    /// Shared with the environment's other processes, when this one is a per-request helper.
    handoff: Option<Box<dyn Handoff>>,
}

impl std::fmt::Debug for dyn Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handoff")
    }
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
            handoff: None,
        }
    }

    /// Shares cold start and open invokes with the environment's other processes.
    pub fn with_handoff(mut self, handoff: Box<dyn Handoff>) -> Self {
        self.attach_handoff(handoff);
        self
    }

    /// [`Tracker::with_handoff`] on a tracker in place.
    pub fn attach_handoff(&mut self, handoff: Box<dyn Handoff>) {
        self.handoff = Some(handoff);
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
        let pending = std::mem::take(&mut self.cold_start_pending);
        let cold_start = match self.handoff.as_mut() {
            Some(h) => pending && h.claim_cold_start(),
            None => pending,
        };
        let born = self
            .handoff
            .as_ref()
            .and_then(|h| h.born_ns())
            .unwrap_or(self.born_ns);
        let init_duration_ns = if cold_start {
            let first_next = self.first_next_ns.unwrap_or(now.mono_ns);
            Some(first_next.saturating_sub(born))
        } else {
            None
        };
        if self.open.len() >= MAX_OPEN
            && let Some(oldest) = self.open_order.pop_front()
        {
            self.open.remove(&oldest);
        }
        let open = OpenInvoke {
            event,
            started: *now,
            cold_start,
            init_duration_ns,
        };
        if let Some(h) = self.handoff.as_mut() {
            h.save(&open);
        }
        self.open_order.push_back(open.event.request_id.clone());
        self.open.insert(open.event.request_id.clone(), open);
    }

    /// A result (`/response` or `/error`) for `request_id` was fully sent. Returns the record,
    /// or `None` when the id is unknown or already finished.
    pub fn result_sent(
        &mut self,
        request_id: &str,
        outcome: Outcome,
        now: &Probe,
    ) -> Option<InvokeRecord> {
        let open = match self.open.remove(request_id) {
            Some(open) => {
                self.open_order.retain(|id| id != request_id);
                if let Some(h) = self.handoff.as_mut() {
                    h.forget(request_id);
                }
                open
            }
            None => self.handoff.as_mut()?.take(request_id)?,
        };
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

    /// A forked child starts a life of its own: nothing open is its to report, and it is a
    /// runtime of its own (no handoff: that belongs to per-request helper processes).
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

    /// A handoff kept in memory and shared between trackers, standing in for the files.
    #[derive(Clone, Default)]
    struct SharedMemory(std::sync::Arc<std::sync::Mutex<(bool, HashMap<String, String>)>>);

    impl Handoff for SharedMemory {
        fn claim_cold_start(&mut self) -> bool {
            let mut g = self.0.lock().unwrap();
            !std::mem::replace(&mut g.0, true)
        }
        fn born_ns(&self) -> Option<u64> {
            Some(10_000_000)
        }
        fn save(&mut self, open: &OpenInvoke) {
            self.0
                .lock()
                .unwrap()
                .1
                .insert(open.event.request_id.clone(), open.to_json());
        }
        fn take(&mut self, id: &str) -> Option<OpenInvoke> {
            let text = self.0.lock().unwrap().1.remove(id)?;
            OpenInvoke::from_json(&text)
        }
        fn forget(&mut self, id: &str) {
            self.0.lock().unwrap().1.remove(id);
        }
    }

    #[test]
    fn an_invoke_started_in_one_process_ends_in_another() {
        let shared = SharedMemory::default();
        // Process 1 asks for and receives the event, then exits.
        let mut first = Tracker::new(50_000_000, true).with_handoff(Box::new(shared.clone()));
        first.next_requested(&at(100));
        first.event_received(event("x"), &at(120));
        drop(first);
        // Process 2 posts the result.
        let mut second = Tracker::new(900_000_000, true).with_handoff(Box::new(shared.clone()));
        let rec = second
            .result_sent("x", Outcome::default(), &at(170))
            .unwrap();
        assert_eq!(rec.duration_ns, 50_000_000);
        assert!(rec.cold_start);
        assert_eq!(
            rec.init_duration_ns,
            Some(90_000_000),
            "from the environment's birth"
        );
        assert_eq!(rec.trace_id.as_deref(), Some("Root=1-abc"));
        assert!(
            second
                .result_sent("x", Outcome::default(), &at(171))
                .is_none(),
            "taken once"
        );
        // Process 3: a new invoke is not a cold start again in this environment.
        let mut third = Tracker::new(0, true).with_handoff(Box::new(shared.clone()));
        third.event_received(event("y"), &at(200));
        let rec = third
            .result_sent("y", Outcome::default(), &at(201))
            .unwrap();
        assert!(!rec.cold_start);
        assert!(
            shared.0.lock().unwrap().1.is_empty(),
            "finished invokes are forgotten"
        );
    }

    #[test]
    fn open_invoke_json_round_trip() {
        let open = OpenInvoke {
            event: event("a\"b"),
            started: at(5),
            cold_start: true,
            init_duration_ns: Some(7),
        };
        assert_eq!(OpenInvoke::from_json(&open.to_json()), Some(open));
        assert_eq!(OpenInvoke::from_json("{}"), None);
        assert_eq!(OpenInvoke::from_json("garbage"), None);
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
