//! The environment's shared state, for runtimes that use a new process per request.
//!
//! A shell custom runtime runs `curl` once to fetch an event and again to post its result: the
//! invoke starts in one process and ends in another, and the first has exited by then. The
//! wrapper names the environment's root process in `LAMBDA_METER_ENV_ID`; its state lives in
//! `/tmp/.lambda-meter-<root pid>-<root start time>/` (per environment, like `/tmp` on Lambda,
//! and never reused: pid and start time together name one process):
//!
//! - `cold`: created by the one process that claims the environment's cold start;
//! - `open/<request id>`: an invoke whose result has not been posted, as JSON.
//!
//! Every change is a create-exclusive or a rename, so two processes never both claim the cold
//! start or both take one invoke. The directory is made by the first process that needs it:
//! runtimes that keep one process never create it.

use crate::custom::Custom;
use crate::tracker::{EventInfo, Handoff, OpenInvoke, Probe};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// See the module documentation.
#[derive(Debug)]
pub struct FileHandoff {
    dir: PathBuf,
    born_ns: u64,
}

/// The state directory of the environment whose root process is `pid`, started at `start`
/// (clock ticks after boot, from `/proc/<pid>/stat`).
pub fn state_dir(base: &Path, pid: u32, start: u64) -> PathBuf {
    base.join(format!(".lambda-meter-{pid}-{start}"))
}

/// Request ids become file names: only ids made of safe characters are handed off.
fn file_name(request_id: &str) -> Option<&str> {
    let ok = !request_id.is_empty()
        && request_id.len() <= 128
        && !request_id.starts_with('.')
        && request_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    ok.then_some(request_id)
}

impl FileHandoff {
    /// Uses (making it if needed, mode 0700) the state directory `dir` of an environment that
    /// began at `born_ns` (monotonic).
    pub fn open(dir: &Path, born_ns: u64) -> io::Result<FileHandoff> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir.join("open"))?;
        Ok(FileHandoff {
            dir: dir.to_path_buf(),
            born_ns,
        })
    }
}

impl Handoff for FileHandoff {
    fn claim_cold_start(&mut self) -> bool {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(self.dir.join("cold"))
            .is_ok()
    }

    fn born_ns(&self) -> Option<u64> {
        Some(self.born_ns)
    }

    fn save(&mut self, open: &OpenInvoke) {
        let Some(name) = file_name(&open.event.request_id) else {
            return;
        };
        let tmp = self
            .dir
            .join("open")
            .join(format!(".new-{name}-{}", std::process::id()));
        if fs::write(&tmp, to_json(open)).is_ok()
            && fs::rename(&tmp, self.dir.join("open").join(name)).is_err()
        {
            let _ = fs::remove_file(&tmp);
        }
    }

    fn take(&mut self, request_id: &str) -> Option<OpenInvoke> {
        let name = file_name(request_id)?;
        let claimed = self
            .dir
            .join("open")
            .join(format!(".taken-{name}-{}", std::process::id()));
        fs::rename(self.dir.join("open").join(name), &claimed).ok()?;
        let text = fs::read_to_string(&claimed);
        let _ = fs::remove_file(&claimed);
        from_json(&text.ok()?)
    }

    fn forget(&mut self, request_id: &str) {
        if let Some(name) = file_name(request_id) {
            let _ = fs::remove_file(self.dir.join("open").join(name));
        }
    }
}

/// An open invoke in a compact JSON form, for handing it to another process.
pub fn to_json(open: &OpenInvoke) -> String {
    serde_json::json!({
        "requestId": open.event.request_id,
        "traceId": open.event.trace_id,
        "deadlineMs": open.event.deadline_ms,
        "requestBytes": open.event.request_bytes,
        "monoNs": open.started.mono_ns,
        "wallMs": open.started.wall_ms,
        "cpuNs": open.started.cpu_ns,
        "maxRssKb": open.started.max_rss_kb,
        "coldStart": open.cold_start,
        "proactiveInit": open.proactive_init,
        "initDurationNs": open.init_duration_ns,
        "restoreDurationNs": open.restore_duration_ns,
        "deadlineMonoNs": open.deadline_mono_ns,
    })
    .to_string()
}

/// Parses [`to_json`]; `None` for anything else.
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
            thread: 0,
        },
        started: Probe {
            mono_ns: num("monoNs")?,
            wall_ms: num("wallMs")?,
            cpu_ns: num("cpuNs")?,
            max_rss_kb: num("maxRssKb")?,
            gauges: None,
        },
        cold_start: v.get("coldStart")?.as_bool()?,
        proactive_init: v.get("proactiveInit")?.as_bool()?,
        init_duration_ns: num("initDurationNs"),
        restore_duration_ns: num("restoreDurationNs"),
        deadline_mono_ns: num("deadlineMonoNs"),
        first_byte_ns: None,
        journal_slot: None,
        custom: Custom::default(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::tracker::{EventInfo, Probe};

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lm-handoff-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn open(id: &str) -> OpenInvoke {
        OpenInvoke {
            event: EventInfo {
                request_id: id.into(),
                trace_id: None,
                deadline_ms: Some(5),
                request_bytes: 3,
                thread: 0,
            },
            started: Probe::default(),
            cold_start: false,
            proactive_init: false,
            init_duration_ns: None,
            restore_duration_ns: None,
            deadline_mono_ns: None,
            first_byte_ns: None,
            journal_slot: None,
            custom: Default::default(),
        }
    }

    #[test]
    fn processes_share_one_directory() {
        let d = temp_dir("share");
        let mut a = FileHandoff::open(&d, 42).unwrap();
        let mut b = FileHandoff::open(&d, 42).unwrap();
        assert_eq!(a.born_ns(), Some(42));
        assert!(a.claim_cold_start());
        assert!(!b.claim_cold_start());
        a.save(&open("req-1"));
        assert_eq!(b.take("req-1"), Some(open("req-1")));
        assert_eq!(a.take("req-1"), None, "taken once");
        a.save(&open("req-2"));
        a.forget("req-2");
        assert_eq!(b.take("req-2"), None);
        // Unsafe ids are never turned into paths.
        a.save(&open("../../etc/x"));
        assert_eq!(b.take("../../etc/x"), None);
        assert!(
            fs::read_dir(d.join("open")).unwrap().next().is_none(),
            "nothing left behind"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_unusable_directory_is_an_error() {
        assert!(FileHandoff::open(Path::new("/proc/self/nope"), 1).is_err());
    }

    #[test]
    fn state_dir_names_one_process() {
        assert_eq!(
            state_dir(Path::new("/tmp"), 7, 1234),
            PathBuf::from("/tmp/.lambda-meter-7-1234")
        );
    }
}
