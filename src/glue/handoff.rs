//! The environment's shared state, for runtimes that use a new process per request.
//!
//! A shell custom runtime runs `curl` once to fetch an event and again to post its result: the
//! invoke starts in one process and ends in another, and the first has exited by then. The
//! wrapper names the environment's root process in `LAMBDA_METER_ENV_ID`; its state lives in
//! `/tmp/.lambda-meter-<root pid>-<root start time>/` (per environment, like `/tmp` on Lambda,
//! and never reused: pid and start time together name one process):
//!
//! - `cold`: created by the one process that claims the environment's cold start;
//! - `open/<request id>`: an invoke whose result has not been posted, as JSON;
//! - `helpers`: created by the first process that turned out to be a per-request helper. A
//!   process that joins the environment after it was made does not try to claim the cold
//!   start: the event that helper answered did.
//!
//! Every change is a create-exclusive or a rename, so two processes never both claim the cold
//! start or both take one invoke. The directory is made by the first process that needs it:
//! runtimes that keep one process never create it. After the directory is made (when the
//! process first talks to the Runtime API), every file is written and read with raw system
//! calls into buffers on the stack: no allocation.

use crate::custom::Custom;
use crate::sys;
use crate::text::{FixedStr, Out};
use crate::tracker::{EventInfo, Handoff, OpenInvoke, Probe, RequestId, TraceId};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The longest state directory path kept (a longer `TMPDIR` has no handoff).
const MAX_DIR: usize = 512;

/// See the module documentation.
#[derive(Debug)]
pub struct FileHandoff {
    dir: FixedStr<MAX_DIR>,
    born_ns: u64,
    helpers_seen: bool,
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
        let text = dir
            .to_str()
            .filter(|t| t.len() < MAX_DIR - 200)
            .ok_or_else(|| io::Error::other("state directory path too long"))?;
        // One mkdir where the environment's first process made the directories (a recursive
        // create would look at what exists as well).
        let mut builder = std::fs::DirBuilder::new();
        builder.mode(0o700);
        match builder.create(dir.join("open")) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                builder.recursive(true).create(dir.join("open"))?
            }
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        let mut buf = [0u8; MAX_DIR];
        let mut helpers = Out::new(&mut buf);
        helpers.str(text);
        helpers.str("/helpers\0");
        let helpers_seen = !helpers.overflowed() && crate::sys::exists_nofollow(helpers.written());
        Ok(FileHandoff {
            dir: FixedStr::new(text),
            born_ns,
            helpers_seen,
        })
    }

    /// `<dir>/<rest>`, NUL-terminated, in `buf`.
    fn path<'b>(&self, buf: &'b mut [u8; 1024], rest: std::fmt::Arguments) -> &'b [u8] {
        let mut out = Out::new(buf);
        out.str(&self.dir);
        out.byte(b'/');
        let _ = std::fmt::Write::write_fmt(&mut out, rest);
        out.byte(0);
        let len = if out.overflowed() { 0 } else { out.len() };
        buf.get(..len).unwrap_or_default()
    }
}

impl Handoff for FileHandoff {
    fn claim_cold_start(&mut self) -> bool {
        // A helper was seen after the environment's first event: that event claimed it.
        if self.helpers_seen {
            return false;
        }
        let mut buf = [0u8; 1024];
        let path = self.path(&mut buf, format_args!("cold"));
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
        match sys::open(path, flags, 0o600) {
            Ok(fd) => {
                let _ = sys::close(fd as libc::c_int);
                true
            }
            Err(_) => false,
        }
    }

    fn born_ns(&self) -> Option<u64> {
        Some(self.born_ns)
    }

    fn helper_decided(&mut self) {
        if self.helpers_seen {
            return;
        }
        self.helpers_seen = true;
        let mut buf = [0u8; 1024];
        let path = self.path(&mut buf, format_args!("helpers"));
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
        if let Ok(fd) = sys::open(path, flags, 0o600) {
            let _ = sys::close(fd as libc::c_int);
        }
    }

    fn save(&mut self, open: &OpenInvoke) {
        let Some(name) = file_name(&open.event.request_id) else {
            return;
        };
        let pid = sys::getpid();
        let mut tmp = [0u8; 1024];
        let tmp = self.path(&mut tmp, format_args!("open/.new-{name}-{pid}"));
        let mut fin = [0u8; 1024];
        let fin = self.path(&mut fin, format_args!("open/{name}"));
        let mut json = [0u8; 4096];
        let mut out = Out::new(&mut json);
        to_json(open, &mut out);
        if out.overflowed() {
            return;
        }
        let len = out.len();
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC;
        let Ok(fd) = sys::open(tmp, flags, 0o600) else {
            return;
        };
        let written = sys::write(fd as libc::c_int, json.get(..len).unwrap_or_default());
        let _ = sys::close(fd as libc::c_int);
        if written != Ok(len) || sys::rename(tmp, fin).is_err() {
            let _ = sys::unlink(tmp);
        }
    }

    fn take(&mut self, request_id: &str) -> Option<OpenInvoke> {
        let name = file_name(request_id)?;
        let pid = sys::getpid();
        let mut from = [0u8; 1024];
        let from = self.path(&mut from, format_args!("open/{name}"));
        let mut claimed = [0u8; 1024];
        let claimed = self.path(&mut claimed, format_args!("open/.taken-{name}-{pid}"));
        sys::rename(from, claimed).ok()?;
        let mut json = [0u8; 4096];
        let mut len = 0;
        if let Ok(fd) = sys::open(claimed, libc::O_RDONLY | libc::O_CLOEXEC, 0) {
            let fd = fd as libc::c_int;
            while let Ok(n) = sys::read(fd, json.get_mut(len..).unwrap_or_default()) {
                if n == 0 {
                    break;
                }
                len += n;
            }
            let _ = sys::close(fd);
        }
        let _ = sys::unlink(claimed);
        from_json(json.get(..len)?)
    }

    fn forget(&mut self, request_id: &str) {
        if let Some(name) = file_name(request_id) {
            let mut buf = [0u8; 1024];
            let path = self.path(&mut buf, format_args!("open/{name}"));
            let _ = sys::unlink(path);
        }
    }
}

/// An open invoke in a compact JSON form, for handing it to another process.
pub fn to_json(open: &OpenInvoke, out: &mut Out) {
    use std::fmt::Write;
    let string = |out: &mut Out, s: &str| {
        out.byte(b'"');
        let _ = crate::json::escape_json(s.as_bytes(), |piece| {
            out.bytes(piece);
            Some(())
        });
        out.byte(b'"');
    };
    let number = |out: &mut Out, key: &str, v: Option<u64>| {
        out.str(",\"");
        out.str(key);
        out.str("\":");
        match v {
            Some(v) => {
                let _ = write!(out, "{v}");
            }
            None => out.str("null"),
        }
    };
    out.str("{\"requestId\":");
    string(out, &open.event.request_id);
    out.str(",\"traceId\":");
    match &open.event.trace_id {
        Some(t) => string(out, t),
        None => out.str("null"),
    }
    number(out, "deadlineMs", open.event.deadline_ms);
    number(out, "requestBytes", Some(open.event.request_bytes));
    number(out, "monoNs", Some(open.started.mono_ns));
    number(out, "wallMs", Some(open.started.wall_ms));
    // What another process of the environment can compare with: the environment's figures.
    let started = open.started.environment();
    number(out, "cpuNs", Some(started.cpu_ns));
    number(out, "maxRssKb", Some(started.max_rss_kb));
    out.str(",\"coldStart\":");
    out.str(if open.cold_start { "true" } else { "false" });
    out.str(",\"proactiveInit\":");
    out.str(if open.proactive_init { "true" } else { "false" });
    number(out, "initDurationNs", open.init_duration_ns);
    number(out, "restoreDurationNs", open.restore_duration_ns);
    number(out, "deadlineMonoNs", open.deadline_mono_ns);
    out.byte(b'}');
}

/// Parses [`to_json`]; `None` for anything else.
pub fn from_json(text: &[u8]) -> Option<OpenInvoke> {
    use crate::json::Value;
    #[derive(Default)]
    struct Fields<'a> {
        request_id: Option<&'a [u8]>,
        trace_id: Option<Option<&'a [u8]>>,
        numbers: [Option<Option<u64>>; 8],
        cold_start: Option<bool>,
        proactive_init: Option<bool>,
    }
    const NUMBERS: [&[u8]; 8] = [
        b"deadlineMs",
        b"requestBytes",
        b"monoNs",
        b"wallMs",
        b"cpuNs",
        b"maxRssKb",
        b"initDurationNs",
        b"restoreDurationNs",
    ];
    let mut f = Fields::default();
    let mut deadline_mono = None;
    let ok = crate::json::members(text, |key, v| {
        let number = match v {
            Value::Number(n) => Some(n.parse::<u64>().ok()),
            Value::Other(b"null") => Some(None),
            _ => None,
        };
        let flag = match v {
            Value::Other(b"true") => Some(true),
            Value::Other(b"false") => Some(false),
            _ => None,
        };
        match key {
            b"requestId" => {
                if let Value::String(s) = v {
                    f.request_id = Some(s);
                }
            }
            b"traceId" => match v {
                Value::String(s) => f.trace_id = Some(Some(s)),
                Value::Other(b"null") => f.trace_id = Some(None),
                _ => {}
            },
            b"coldStart" => f.cold_start = flag,
            b"proactiveInit" => f.proactive_init = flag,
            b"deadlineMonoNs" => deadline_mono = number,
            k => {
                if let Some(i) = NUMBERS.iter().position(|n| *n == k)
                    && let Some(slot) = f.numbers.get_mut(i)
                {
                    *slot = number;
                }
            }
        }
    });
    if !ok {
        return None;
    }
    let num = |i: usize| f.numbers.get(i).copied().flatten();
    let required = |i: usize| num(i).flatten();
    let text_of = |escaped: &[u8], buf: &mut [u8]| -> Option<usize> {
        let mut out = Out::new(buf);
        (crate::json::unescape(escaped, &mut out) && !out.overflowed()).then(|| out.len())
    };
    let mut id_buf = [0u8; 1024];
    let id_len = text_of(f.request_id?, &mut id_buf)?;
    let trace = match f.trace_id? {
        Some(t) => {
            let mut buf = [0u8; 4096];
            let len = text_of(t, &mut buf)?;
            Some(TraceId::from_bytes(buf.get(..len)?))
        }
        None => None,
    };
    Some(OpenInvoke {
        event: EventInfo {
            request_id: RequestId::from_bytes(id_buf.get(..id_len)?),
            trace_id: trace,
            deadline_ms: num(0)?,
            request_bytes: required(1)?,
            thread: 0,
        },
        started: Probe {
            mono_ns: required(2)?,
            wall_ms: required(3)?,
            cpu_ns: required(4)?,
            max_rss_kb: required(5)?,
            process_rss_kb: 0,
            gauges: None,
            env: None,
        },
        cold_start: f.cold_start?,
        proactive_init: f.proactive_init?,
        init_duration_ns: num(6)?,
        restore_duration_ns: num(7)?,
        deadline_mono_ns: deadline_mono?,
        first_byte_ns: None,
        journal_slot: None,
        custom: Custom::NONE,
        // A per-request helper's invokes are one at a time.
        concurrent: 1,
        downstream: None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::tracker::{EventInfo, Probe};

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lm-handoff-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn open(id: &str) -> OpenInvoke {
        OpenInvoke {
            event: EventInfo {
                request_id: RequestId::new(id),
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
            custom: Custom::NONE,
            concurrent: 1,
            downstream: None,
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
            std::fs::read_dir(d.join("open")).unwrap().next().is_none(),
            "nothing left behind"
        );
        std::fs::remove_dir_all(&d).unwrap();
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

    #[test]
    fn open_invoke_json_round_trip() {
        let mut o = open("a\"b");
        o.event.trace_id = Some(TraceId::new("Root=1-abc"));
        o.started = Probe {
            mono_ns: 5,
            wall_ms: 6,
            cpu_ns: 7,
            max_rss_kb: 8,
            process_rss_kb: 0,
            gauges: None,
            env: None,
        };
        o.cold_start = true;
        o.init_duration_ns = Some(7);
        o.deadline_mono_ns = Some(9);
        let mut buf = [0u8; 4096];
        let mut out = Out::new(&mut buf);
        to_json(&o, &mut out);
        let text = out.written().to_vec();
        serde_json::from_slice::<serde_json::Value>(&text).unwrap();
        assert_eq!(from_json(&text), Some(o));
        assert_eq!(from_json(b"{}"), None);
        assert_eq!(from_json(b"garbage"), None);
    }
}
