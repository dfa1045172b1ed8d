//! A local AWS Lambda Runtime API simulator, written from the Runtime API specification.
//!
//! It serves a list of events on `127.0.0.1:<port>` the way Lambda does: `GET
//! /2018-06-01/runtime/invocation/next` blocks until an event is due and answers `200` with
//! the event and every `Lambda-Runtime-*` header (including a real deadline); results are
//! accepted with `202`; `/init/error` ends the environment. Connections are HTTP/1.1
//! keep-alive, many at once, with `Content-Length` or chunked request bodies (trailers kept)
//! and `Expect: 100-continue`. Every request is recorded byte for byte so tests can compare
//! what a runtime sent with and without lambda-meter.
//!
//! [`run_function`] starts a runtime process against a simulator, like Lambda starts
//! `bootstrap`, waits until every event has its result and the runtime is idle again, then
//! kills it and returns its output.

pub mod http;
mod runner;
pub mod summary;

pub use runner::{FunctionRun, RunOptions, as_lambda_user, run_function};

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Payload limit for buffered responses (6 MB), as Lambda enforces.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
const BASE: &str = "/2018-06-01";

/// One event to deliver.
#[derive(Clone, Debug, Default)]
pub struct Event {
    /// The body of the `/next` answer.
    pub payload: Vec<u8>,
    /// Request id to use; generated when `None`.
    pub request_id: Option<String>,
    /// Value of `Lambda-Runtime-Client-Context`, if any.
    pub client_context: Option<String>,
    /// Value of `Lambda-Runtime-Cognito-Identity`, if any.
    pub cognito_identity: Option<String>,
    /// Answer this event's `/next` with `Connection: close` and close the connection after it,
    /// so the runtime must reconnect to post the result.
    pub close_connection: bool,
    /// A fault in the `/next` answer that carries this event (see [`Fault`]).
    pub fault: Option<Fault>,
}

/// What can go wrong with a `/next` answer. The first four spoil only the first answer that
/// would carry the event: it stays queued, and a later `/next` (of this runtime, or of the next
/// one if the runtime gives up and exits) gets it intact. The others deliver the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The head and half the body, then a TCP reset.
    ResetMidAnswer,
    /// A `Content-Length` larger than the body that follows, then the connection closes.
    TruncatedBody,
    /// `500 Internal Server Error`, as the Runtime API answers when it fails.
    ServerError,
    /// Bytes that are not HTTP, then the connection closes.
    NotHttp,
    /// The event with 20 KB of extra headers first (legal HTTP).
    HugeHeaders,
    /// The event with a `Content-Length` 3 bytes short: the rest of the body follows it.
    LyingContentLength,
    /// The event with a deadline already in the past.
    PastDeadline,
    /// The `/next` is never answered.
    NeverAnswer,
}

impl Fault {
    fn spoils_delivery(self) -> bool {
        matches!(
            self,
            Fault::ResetMidAnswer | Fault::TruncatedBody | Fault::ServerError | Fault::NotHttp
        )
    }
}

impl Event {
    /// An event with this JSON payload.
    pub fn json(v: &serde_json::Value) -> Event {
        Event {
            payload: v.to_string().into_bytes(),
            ..Event::default()
        }
    }
}

/// How the simulated function is configured.
#[derive(Clone, Debug)]
pub struct Config {
    pub events: Vec<Event>,
    pub function_name: String,
    pub region: String,
    /// The function timeout; the deadline header is "now + timeout" when an event is handed out.
    pub timeout: Duration,
    /// How many invokes may be in flight at once (1 for Lambda's classic model).
    pub max_concurrency: usize,
    /// Port to listen on (0: any free port).
    pub port: u16,
    /// Send every response in writes of at most this many bytes (adversarial transport).
    pub write_chunk: Option<usize>,
    /// Freeze the runtime (SIGSTOP … SIGCONT) this long between invokes, as Lambda freezes an
    /// idle environment. Needs [`run_function`](crate::run_function).
    pub freeze_between: Option<Duration>,
    /// Hold the first event this long after the first `/next` arrives: the environment was
    /// initialised ahead of demand (proactive initialisation).
    pub first_event_delay: Option<Duration>,
    /// SnapStart: answer `/runtime/restore/next` after this long (the snapshot and restore).
    pub restore_delay: Duration,
    /// When the runtime process exits with an invoke in flight, that invoke fails with
    /// `Runtime.ExitError` and a new runtime process is started in the same environment, as
    /// Lambda does. Needs [`run_function`](crate::run_function).
    pub restart_on_exit: bool,
    /// Each runtime starts in a memory cgroup of its own whose limit is the function's memory
    /// size, as Lambda bounds an environment (needs root and a cgroup v1 memory hierarchy, or
    /// cgroup v2 with the memory controller delegated). Needs
    /// [`run_function`](crate::run_function), which reports the cgroup's peak.
    pub memory_cgroup: bool,
    /// At the end of a Lambda Managed Instances run (`max_concurrency` > 1), SIGTERM goes to
    /// the runtime's own process only, not its process group, before its group is killed.
    pub term_runtime_only: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            events: Vec::new(),
            function_name: "lambda-meter-test".to_string(),
            region: "us-east-1".to_string(),
            timeout: Duration::from_secs(30),
            max_concurrency: 1,
            port: 0,
            write_chunk: None,
            freeze_between: None,
            first_event_delay: None,
            restore_delay: Duration::from_millis(20),
            restart_on_exit: false,
            memory_cgroup: false,
            term_runtime_only: false,
        }
    }
}

/// A request exactly as the runtime sent it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Which accepted connection carried it (1, 2, …).
    pub connection: u64,
    pub method: String,
    pub target: String,
    /// Header names as sent (case kept), values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Chunked trailers, if any.
    pub trailers: Vec<(String, String)>,
    pub chunked: bool,
    /// When the whole request had arrived.
    pub at: Instant,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How an invoke ended, as the simulator saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Response,
    Error {
        error_type: Option<String>,
    },
    /// The deadline passed first: the environment was stopped, as Lambda does.
    Timeout,
    /// The runtime process exited during the invoke (`Runtime.ExitError`).
    ExitError,
}

/// The result of one event.
#[derive(Clone, Debug)]
pub struct InvokeResult {
    pub request_id: String,
    pub outcome: Outcome,
    /// The result body (de-chunked).
    pub body: Vec<u8>,
    /// Trailers of a streamed result.
    pub trailers: Vec<(String, String)>,
    /// From the `/next` answer being sent to the result having arrived.
    pub elapsed: Duration,
}

#[derive(Default)]
struct State {
    /// Indices of events not handed out yet.
    queue: VecDeque<usize>,
    /// Request id -> (event index, when handed out).
    in_flight: HashMap<String, (usize, Instant)>,
    results: Vec<Option<InvokeResult>>,
    requests: Vec<RecordedRequest>,
    init_error: Option<RecordedRequest>,
    /// `/next` requests waiting now.
    waiting_next: usize,
    /// Connections open now (a worker that died has closed its own).
    open: usize,
    shutdown: bool,
    /// When each `/next` request arrived.
    next_arrivals: Vec<Instant>,
    /// Bumped when the runtime is stopped: requests of an older runtime get no events.
    generation: u64,
    /// Events handed out so far.
    served: usize,
    /// The runtime must be frozen before the next event is handed out.
    freeze_pending: bool,
    /// How many times the runtime was stopped at a deadline.
    timeouts: usize,
    /// When the runtime now running was started, and whether it has asked for an event yet:
    /// until it does, the first queued event waits for its init, under the same deadline.
    runtime_started: Option<Instant>,
    asked_since_start: bool,
    /// Events that timed out waiting for an init that did not end in time.
    init_timeouts: usize,
    /// Events whose one-shot fault was already injected.
    faulted: std::collections::HashSet<usize>,
    /// Connections reading or answering a request, but for a `/next` waiting for its event:
    /// what a runtime sent before it exited is taken in before its exit is (see
    /// [`Simulator::runtime_exited`]).
    reading: usize,
}

struct Shared {
    config: Config,
    state: Mutex<State>,
    changed: Condvar,
    connections: AtomicU64,
    /// The listening socket's fd (the accept thread owns it): whether a connection waits to be
    /// accepted.
    listener_fd: i32,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every event has its result and every worker waits for the next: as many `/next`
    /// requests as invokes may run at once, or as connections are open where fewer are (a
    /// worker of a Lambda Managed Instance that died is not replaced).
    fn idle(&self, st: &State) -> bool {
        let workers = self.config.max_concurrency.max(1).min(st.open).max(1);
        st.results.iter().all(Option::is_some) && st.waiting_next >= workers
    }

    /// Whether an event may be handed out now (and, if not yet, how long until it may).
    fn event_due(&self, st: &State) -> Result<(), Option<Duration>> {
        if st.queue.is_empty()
            || st.in_flight.len() >= self.config.max_concurrency.max(1)
            || st.freeze_pending
        {
            return Err(None);
        }
        if st.served == 0
            && let (Some(delay), Some(first)) =
                (self.config.first_event_delay, st.next_arrivals.first())
        {
            let due = *first + delay;
            let now = Instant::now();
            if now < due {
                return Err(Some(due - now));
            }
        }
        Ok(())
    }
}

/// A running simulator. Dropping it shuts it down.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    log_stream: String,
}

impl Simulator {
    /// Binds `127.0.0.1:<port>` and starts serving.
    pub fn start(config: Config) -> io::Result<Simulator> {
        let listener = TcpListener::bind(("127.0.0.1", config.port))?;
        let addr = listener.local_addr()?;
        let n = config.events.len();
        let state = State {
            queue: (0..n).collect(),
            results: vec![None; n],
            ..State::default()
        };
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(state),
            changed: Condvar::new(),
            connections: AtomicU64::new(0),
            listener_fd: std::os::fd::AsRawFd::as_raw_fd(&listener),
        });
        let s = Arc::clone(&shared);
        thread::Builder::new()
            .name("sim-accept".into())
            .spawn(move || accept_loop(listener, s))?;
        // Each environment has a log stream of its own, kept across runtime restarts.
        static STARTED: AtomicU64 = AtomicU64::new(0);
        let log_stream = format!(
            "2026/01/01/[$LATEST]{:08x}{:08x}{:04x}",
            std::process::id(),
            epoch_ms() as u32,
            STARTED.fetch_add(1, Ordering::Relaxed) as u16
        );
        Ok(Simulator {
            addr,
            shared,
            log_stream,
        })
    }

    /// The environment's log stream (`AWS_LAMBDA_LOG_STREAM_NAME`).
    pub fn log_stream(&self) -> &str {
        &self.log_stream
    }

    /// The `host:port` to put in `AWS_LAMBDA_RUNTIME_API`.
    pub fn api_address(&self) -> String {
        self.addr.to_string()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// True once every event has a result and the runtime waits on `/next` again — with as
    /// many waiting requests as invokes may run at once, so every worker that posted a result
    /// has finished what it does after posting. (After an init error, the runner waits for the
    /// runtime to exit instead.)
    pub fn is_idle(&self) -> bool {
        self.shared.idle(&self.shared.lock())
    }

    /// Whether every event has a result.
    pub fn all_results_in(&self) -> bool {
        self.shared.lock().results.iter().all(Option::is_some)
    }

    /// Waits until [`Simulator::is_idle`] or `timeout`.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            if self.shared.idle(&st) {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            st = match self.shared.changed.wait_timeout(st, end - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// One entry per event, in event order (`None`: no result yet).
    pub fn results(&self) -> Vec<Option<InvokeResult>> {
        self.shared.lock().results.clone()
    }

    /// The `/init/error` request, if the runtime sent one.
    pub fn init_error(&self) -> Option<RecordedRequest> {
        self.shared.lock().init_error.clone()
    }

    /// When each `/next` request arrived.
    pub fn next_arrivals(&self) -> Vec<Instant> {
        self.shared.lock().next_arrivals.clone()
    }

    /// How many connections the runtime opened.
    pub fn connection_count(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// A runtime process was started (the first, or one after a stop): an on-demand init, for
    /// which the first queued event waits.
    pub fn runtime_started(&self) {
        let mut st = self.shared.lock();
        st.runtime_started = Some(Instant::now());
        st.asked_since_start = false;
    }

    /// How many events timed out waiting for an init (see [`Simulator::expire_deadlines`]).
    pub fn init_timeout_count(&self) -> usize {
        self.shared.lock().init_timeouts
    }

    /// Invokes whose deadline has passed become timeouts; true when there was one (the runtime
    /// must then be stopped and a new one started, as Lambda does, but for an invoke of a
    /// Lambda Managed Instance: that one alone fails). An event waits for the
    /// init of the runtime that was started for it under the same deadline: when the runtime
    /// has not asked for an event within the timeout of its start, the first queued event
    /// times out too (Lambda's init that runs past the function's timeout).
    pub fn expire_deadlines(&self) -> bool {
        let timeout = self.shared.config.timeout;
        let mut st = self.shared.lock();
        let init_over_time =
            !st.asked_since_start && st.runtime_started.is_some_and(|t| t.elapsed() >= timeout);
        if init_over_time && let Some(index) = st.queue.pop_front() {
            let started = st.runtime_started.unwrap_or_else(Instant::now);
            let request_id = self
                .shared
                .config
                .events
                .get(index)
                .and_then(|e| e.request_id.clone())
                .unwrap_or_else(new_request_id);
            if let Some(slot) = st.results.get_mut(index) {
                *slot = Some(InvokeResult {
                    request_id,
                    outcome: Outcome::Timeout,
                    body: Vec::new(),
                    trailers: Vec::new(),
                    elapsed: started.elapsed(),
                });
            }
            st.timeouts += 1;
            st.init_timeouts += 1;
            st.runtime_started = None;
            self.shared.changed.notify_all();
            return true;
        }
        let expired: Vec<(String, usize, Instant)> = st
            .in_flight
            .iter()
            .filter(|(_, (_, started))| started.elapsed() >= timeout)
            .map(|(id, (i, started))| (id.clone(), *i, *started))
            .collect();
        for (id, index, started) in &expired {
            st.in_flight.remove(id);
            if let Some(slot) = st.results.get_mut(*index) {
                *slot = Some(InvokeResult {
                    request_id: id.clone(),
                    outcome: Outcome::Timeout,
                    body: Vec::new(),
                    trailers: Vec::new(),
                    elapsed: started.elapsed(),
                });
            }
        }
        st.timeouts += expired.len();
        !expired.is_empty()
    }

    /// The runtime process exited by itself: each invoke in flight fails with
    /// `Runtime.ExitError`. True when the environment has work left (a new runtime must
    /// start, as Lambda starts one for the next event).
    pub fn runtime_exited(&self) -> bool {
        let mut st = self.shared.lock();
        // A result the runtime posted just before it exited is in a socket (maybe of a
        // connection not accepted yet): each connection's thread reads it, or the end of the
        // stream, before the invoke counts as failed (as the Runtime API, which got the bytes
        // first, would have it). Done when nothing is read or waits to be accepted twice in a
        // row a few ms apart; bounded, as a child of the runtime may hold a connection open.
        let until = Instant::now() + EXIT_DRAIN;
        let mut quiet = 0;
        while quiet < 2 && Instant::now() < until {
            if st.reading == 0 && !readable(self.shared.listener_fd) {
                quiet += 1;
            } else {
                quiet = 0;
            }
            st = match self
                .shared
                .changed
                .wait_timeout(st, Duration::from_millis(5))
            {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        let failed: Vec<(String, usize, Instant)> = st
            .in_flight
            .drain()
            .map(|(id, (i, started))| (id, i, started))
            .collect();
        for (id, index, started) in &failed {
            if let Some(slot) = st.results.get_mut(*index) {
                *slot = Some(InvokeResult {
                    request_id: id.clone(),
                    outcome: Outcome::ExitError,
                    body: Vec::new(),
                    trailers: Vec::new(),
                    elapsed: started.elapsed(),
                });
            }
        }
        self.shared.changed.notify_all();
        !failed.is_empty() || !st.queue.is_empty()
    }

    /// The runtime was stopped: whatever its connections still wait for is void.
    pub fn runtime_stopped(&self) {
        let mut st = self.shared.lock();
        st.generation += 1;
        st.waiting_next = 0;
        self.shared.changed.notify_all();
    }

    /// How many invokes timed out.
    pub fn timeout_count(&self) -> usize {
        self.shared.lock().timeouts
    }

    /// Whether the runtime should be frozen now (between two invokes).
    pub fn freeze_due(&self) -> bool {
        let st = self.shared.lock();
        st.freeze_pending && st.in_flight.is_empty() && st.waiting_next > 0
    }

    /// The runtime was thawed: hand out the next event.
    pub fn thawed(&self) {
        self.shared.lock().freeze_pending = false;
        self.shared.changed.notify_all();
    }

    /// Stops answering: waiting `/next` requests are dropped with their connections.
    pub fn shutdown(&self) {
        self.shared.lock().shutdown = true;
        self.shared.changed.notify_all();
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.lock().shutdown {
            return;
        }
        let Ok(stream) = stream else { continue };
        let id = shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
        // Reading from now on (the thread's first request adopts the count).
        {
            let mut st = shared.lock();
            st.reading += 1;
            st.open += 1;
        }
        let closed = |shared: &Shared| {
            shared.lock().open -= 1;
            shared.changed.notify_all();
        };
        let s = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name(format!("sim-conn-{id}"))
            .spawn(move || {
                let _ = serve_connection(stream, id, &s);
                closed(&s);
            });
        if spawned.is_err() {
            drop(Reading(&shared));
            closed(&shared);
        }
    }
}

/// How long [`Simulator::runtime_exited`] waits for the connections still reading.
const EXIT_DRAIN: Duration = Duration::from_secs(1);

/// Whether `fd` has something to read now (for a listening socket: a connection to accept).
fn readable(fd: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, ours, and a zero timeout.
    unsafe { libc::poll(&mut p, 1, 0) > 0 }
}

/// Counts its thread in [`State::reading`] while it lives.
struct Reading<'a>(&'a Shared);

impl<'a> Reading<'a> {
    fn new(shared: &'a Shared) -> Reading<'a> {
        shared.lock().reading += 1;
        Reading(shared)
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.reading = st.reading.saturating_sub(1);
        self.0.changed.notify_all();
    }
}

fn serve_connection(stream: TcpStream, conn: u64, shared: &Shared) -> io::Result<()> {
    // The accept loop counted this connection as reading: its first request adopts that.
    let mut adopted = Some(Reading(shared));
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let _reading = adopted.take().unwrap_or_else(|| Reading::new(shared));
        let Some(req) = http::read_request(&mut reader, &mut writer, conn)? else {
            return Ok(());
        };
        let keep_alive = !req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let Some(reply) = handle(req, shared) else {
            return Ok(()); // shut down while waiting
        };
        match shared.config.write_chunk {
            Some(n) => {
                for piece in reply.bytes.chunks(n.max(1)) {
                    writer.write_all(piece)?;
                }
            }
            None => writer.write_all(&reply.bytes)?,
        }
        if reply.reset {
            reset(&writer);
            return Ok(());
        }
        if !keep_alive || reply.close {
            let _ = writer.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
    }
}

/// One response, and whether the connection closes after it (with a reset instead of an
/// orderly close when `reset`).
struct Reply {
    bytes: Vec<u8>,
    close: bool,
    reset: bool,
}

impl From<Vec<u8>> for Reply {
    fn from(bytes: Vec<u8>) -> Reply {
        Reply {
            bytes,
            close: false,
            reset: false,
        }
    }
}

/// The spoiled answer of a one-shot fault.
fn faulty_answer(fault: Fault, cfg: &Config) -> Reply {
    let event = Event::json(&serde_json::json!({"action": "ok", "spoiled": true}));
    let whole = next_response(&event, "spoiled-delivery", cfg);
    let (bytes, reset) = match fault {
        Fault::ResetMidAnswer => (
            whole[..whole.len() - event.payload.len() / 2].to_vec(),
            true,
        ),
        Fault::TruncatedBody => {
            let text = String::from_utf8_lossy(&whole).replace(
                &format!("Content-Length: {}", event.payload.len()),
                &format!("Content-Length: {}", event.payload.len() + 100),
            );
            (text.into_bytes(), false)
        }
        Fault::ServerError => (
            http::response(
                500,
                "Internal Server Error",
                &[("Content-Type", "application/json".to_string())],
                br#"{"errorMessage":"Internal error","errorType":"ServiceException"}"#,
            ),
            false,
        ),
        _ => (
            b"SSH-2.0-OpenSSH_9.2\r\n\x00\x01\x02 not http at all".to_vec(),
            false,
        ),
    };
    Reply {
        bytes,
        close: true,
        reset,
    }
}

/// Routes one request; `None` means the simulator shut down while the request waited.
fn handle(req: RecordedRequest, shared: &Shared) -> Option<Reply> {
    let path = req.target.split('?').next().unwrap_or_default().to_string();
    let method = req.method.clone();
    let rest = path.strip_prefix(BASE).map(str::to_string);
    let parts: Vec<String> = rest
        .as_deref()
        .unwrap_or("")
        .split('/')
        .map(str::to_string)
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let mut st = shared.lock();
    st.requests.push(req.clone());
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["", "runtime", "invocation", "next"]) => {
            st.next_arrivals.push(Instant::now());
            st.asked_since_start = true;
            st.waiting_next += 1;
            // Waiting for an event is not reading: a runtime that exits while it waits has
            // nothing in flight on this connection.
            st.reading = st.reading.saturating_sub(1);
            let generation = st.generation;
            shared.changed.notify_all();
            loop {
                if st.shutdown || st.generation != generation {
                    if st.generation == generation {
                        st.waiting_next -= 1;
                    }
                    st.reading += 1;
                    return None;
                }
                match shared.event_due(&st) {
                    Ok(()) => break,
                    Err(None) => {
                        st = match shared.changed.wait(st) {
                            Ok(g) => g,
                            Err(e) => e.into_inner(),
                        }
                    }
                    Err(Some(wait)) => {
                        st = match shared.changed.wait_timeout(st, wait) {
                            Ok((g, _)) => g,
                            Err(e) => e.into_inner().0,
                        }
                    }
                }
            }
            st.waiting_next -= 1;
            st.reading += 1;
            let front = *st.queue.front()?;
            let fault = shared.config.events.get(front)?.fault;
            if let Some(fault) = fault.filter(|f| f.spoils_delivery() || *f == Fault::NeverAnswer)
                && st.faulted.insert(front)
            {
                if fault == Fault::NeverAnswer {
                    // Hold the request until the runtime is stopped (not reading meanwhile).
                    let generation = st.generation;
                    st.reading = st.reading.saturating_sub(1);
                    shared.changed.notify_all();
                    while !st.shutdown && st.generation == generation {
                        st = match shared.changed.wait(st) {
                            Ok(g) => g,
                            Err(e) => e.into_inner(),
                        };
                    }
                    st.reading += 1;
                    return None;
                }
                shared.changed.notify_all();
                drop(st);
                return Some(faulty_answer(fault, &shared.config));
            }
            st.served += 1;
            let index = st.queue.pop_front()?;
            let event = shared.config.events.get(index)?.clone();
            let request_id = event.request_id.clone().unwrap_or_else(new_request_id);
            st.in_flight
                .insert(request_id.clone(), (index, Instant::now()));
            shared.changed.notify_all();
            drop(st);
            Some(Reply {
                bytes: next_response(&event, &request_id, &shared.config),
                close: event.close_connection,
                reset: false,
            })
        }
        (
            "POST",
            [
                "",
                "runtime",
                "invocation",
                id,
                kind @ ("response" | "error"),
            ],
        ) => {
            let Some((index, started)) = st.in_flight.remove(*id) else {
                return Some(
                    http::json_response(
                        400,
                        "Bad Request",
                        r#"{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}"#,
                    )
                    .into(),
                );
            };
            if *kind == "response" && req.body.len() > MAX_RESPONSE_BYTES && !req.chunked {
                let result = InvokeResult {
                    request_id: id.to_string(),
                    outcome: Outcome::Error {
                        error_type: Some("Function.ResponseSizeTooLarge".into()),
                    },
                    body: Vec::new(),
                    trailers: Vec::new(),
                    elapsed: started.elapsed(),
                };
                if let Some(slot) = st.results.get_mut(index) {
                    *slot = Some(result);
                }
                shared.changed.notify_all();
                return Some(http::json_response(
                    413,
                    "Request Entity Too Large",
                    r#"{"errorMessage":"Exceeded maximum allowed payload size (6291556 bytes).","errorType":"RequestEntityTooLarge"}"#,
                ).into());
            }
            if shared.config.freeze_between.is_some() && !st.queue.is_empty() {
                st.freeze_pending = true;
            }
            let outcome = if *kind == "response" {
                Outcome::Response
            } else {
                Outcome::Error {
                    error_type: req
                        .header("lambda-runtime-function-error-type")
                        .map(str::to_string),
                }
            };
            let result = InvokeResult {
                request_id: id.to_string(),
                outcome,
                body: req.body.clone(),
                trailers: req.trailers.clone(),
                elapsed: started.elapsed(),
            };
            if let Some(slot) = st.results.get_mut(index) {
                *slot = Some(result);
            }
            shared.changed.notify_all();
            Some(http::json_response(202, "Accepted", r#"{"status":"OK"}"#).into())
        }
        ("GET", ["", "runtime", "restore", "next"]) => {
            let delay = shared.config.restore_delay;
            drop(st);
            thread::sleep(delay);
            Some(http::response(200, "OK", &[], b"").into())
        }
        ("POST", ["", "runtime", "restore", "error"]) => {
            Some(http::json_response(202, "Accepted", r#"{"status":"OK"}"#).into())
        }
        ("POST", ["", "runtime", "init", "error"]) => {
            st.init_error = Some(req);
            shared.changed.notify_all();
            Some(http::json_response(202, "Accepted", r#"{"status":"OK"}"#).into())
        }
        _ => Some(
            http::json_response(
                404,
                "Not Found",
                r#"{"errorMessage":"Unknown path","errorType":"InvalidRequest"}"#,
            )
            .into(),
        ),
    }
}

/// Closes `stream` with a TCP reset (SO_LINGER 0): the peer's next read fails with ECONNRESET.
fn reset(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on our own socket with a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    let _ = stream.shutdown(std::net::Shutdown::Read);
}

fn next_response(event: &Event, request_id: &str, cfg: &Config) -> Vec<u8> {
    let deadline = if event.fault == Some(Fault::PastDeadline) {
        epoch_ms().saturating_sub(1_000)
    } else {
        epoch_ms() + cfg.timeout.as_millis() as u64
    };
    let arn = format!(
        "arn:aws:lambda:{}:123456789012:function:{}",
        cfg.region, cfg.function_name
    );
    let mut headers = vec![
        ("Content-Type", "application/json".to_string()),
        ("Lambda-Runtime-Aws-Request-Id", request_id.to_string()),
        ("Lambda-Runtime-Deadline-Ms", deadline.to_string()),
        ("Lambda-Runtime-Invoked-Function-Arn", arn),
        ("Lambda-Runtime-Trace-Id", trace_id()),
    ];
    if let Some(c) = &event.client_context {
        headers.push(("Lambda-Runtime-Client-Context", c.clone()));
    }
    if let Some(c) = &event.cognito_identity {
        headers.push(("Lambda-Runtime-Cognito-Identity", c.clone()));
    }
    if event.close_connection {
        headers.push(("Connection", "close".to_string()));
    }
    if event.fault == Some(Fault::HugeHeaders) {
        for i in 0..40 {
            headers.insert(0, ("X-Padding", format!("{i:02}-{}", "p".repeat(500))));
        }
    }
    let mut bytes = http::response(200, "OK", &headers, &event.payload);
    if event.fault == Some(Fault::LyingContentLength) && event.payload.len() >= 3 {
        let honest = format!("Content-Length: {}\r\n", event.payload.len());
        let lying = format!("Content-Length: {}\r\n", event.payload.len() - 3);
        bytes = String::from_utf8_lossy(&bytes)
            .replacen(&honest, &lying, 1)
            .into_bytes();
    }
    bytes
}

/// Milliseconds since the Unix epoch.
pub fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A small xorshift generator seeded from the clock, the pid and a counter (no crate needed for
/// ids that only have to be unique in one run).
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    for _ in 0..3 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

/// A version-4 UUID, as Lambda request ids are.
pub fn new_request_id() -> String {
    let a = random_u64();
    let b = random_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// An X-Ray trace header as Lambda passes it.
fn trace_id() -> String {
    let secs = epoch_ms() / 1000;
    format!(
        "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
        secs,
        u128::from(random_u64()) << 32 | u128::from(random_u64() as u32),
        random_u64()
    )
}
