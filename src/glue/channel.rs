//! The custom-metrics channel file: the language shims append one JSON line per value (open,
//! append, close: never an fd kept), and the library reads what is new when it makes a record.
//! The wrapper names it in `LAMBDA_METER_CHANNEL`; without the wrapper (`LD_PRELOAD` in the
//! function's environment) it is `$TMPDIR/.lambda-meter-<pid>.channel`, `<pid>` the process
//! that runs the handlers (the shims use their own), so nothing needs naming at load.
//!
//! The file stays bounded: once a reader has read all of it and it holds [`ROTATE_AT`] bytes
//! or more, the reader renames it to `<path>.old` (replacing the generation before). A shim's
//! next append creates a fresh file. A line a shim appended to the old file just as it was
//! renamed is not lost: every reader that was reading that file (known by its inode) reads it
//! to its end once more before it moves on. So at most two generations exist, each about
//! [`ROTATE_AT`] bytes. Several processes read the one file (workers of a Lambda Managed
//! Instance, a shell runtime's per-request helpers), each at its own pace, which is why
//! what was read is renamed away, not cut out. A writer must open, append and close per
//! value, as the shims do: one that keeps the file open goes on appending to a generation
//! that is read once more, then never.
//!
//! A reader reads in chunks of its buffer, oldest lines first, so a value written early in a
//! long invoke is not pushed out by what other processes append after it.
//!
//! While there is no channel file, a reader looks at the channel's directory instead: one
//! `statx` that also tells the journal whether the function cleaned its temporary directory
//! ([`dir_look`]). A file made there (the channel's first value), removed or renamed changes
//! the directory's times; only then is the channel itself looked for. Times a coarse clock
//! wrote less than [`SETTLE_MS`] before the look are not trusted (another change in the same
//! tick would not move them): the next read looks at the channel whatever they say.
//!
//! Raw system calls only (see [`crate::sys`]): this runs on hook paths.

use crate::state::Reset;
use crate::sys;
use std::ffi::CString;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// The size from which a file read to its end is rotated.
pub const ROTATE_AT: u64 = 256 * 1024;

/// How old a directory's times must be, at a look, to be trusted to move with its next change
/// (file times come from a clock that ticks every few milliseconds).
const SETTLE_MS: u64 = 50;

/// The channel's path and the old generation's, NUL-terminated.
struct Paths {
    now: CString,
    old: CString,
}

/// Names the channel (at load, from the environment). Reading starts at its beginning: lines
/// of other processes carry their pid or another invoke's request id and are left alone (a
/// shell runtime's result is posted by a process that did not exist when the handler wrote its
/// values).
pub fn configure(path: Vec<u8>) {
    name_dir(&path);
    let mut old = path.clone();
    old.extend_from_slice(b".old");
    if let (Ok(now), Ok(old)) = (CString::new(path), CString::new(old)) {
        let _ = state().paths.set(Paths { now, old });
    }
}

/// Without `LAMBDA_METER_CHANNEL`: the default channel is in `dir`, named after
/// [`set_owner`]'s process.
pub fn configure_default(dir: Vec<u8>) {
    let mut sample = dir.clone();
    if !dir.ends_with(b"/") {
        sample.push(b'/');
    }
    sample.push(b'x');
    name_dir(&sample);
    let _ = state().default_dir.set(dir);
}

/// Keeps the directory a channel at `path` is in, NUL-terminated, for [`look_at_dir`].
fn name_dir(path: &[u8]) {
    let dir = match path.iter().rposition(|b| *b == b'/') {
        Some(0) => &b"/"[..],
        Some(i) => path.get(..i).unwrap_or_default(),
        None => b".",
    };
    if let Ok(dir) = CString::new(dir) {
        let _ = state().dir_path.set(dir);
    }
}

/// Whether the channel has a name: `LAMBDA_METER_CHANNEL`, or the default directory with the
/// process it is named after.
fn named() -> bool {
    state().paths.get().is_some()
        || (state().default_dir.get().is_some() && state().owner.load(Ordering::Relaxed) != 0)
}

/// The process the default channel is named after: the one that runs the handlers (this one,
/// or its environment's root when this is a per-request helper).
pub fn set_owner(pid: u32) {
    state().owner.store(pid, Ordering::Relaxed);
}

pub fn is_configured() -> bool {
    state().paths.get().is_some() || state().default_dir.get().is_some()
}

/// The channel's path and the old generation's, NUL-terminated: `LAMBDA_METER_CHANNEL`'s, or
/// the default built in `now` and `old`.
fn paths<'a>(now: &'a mut [u8; 600], old: &'a mut [u8; 600]) -> Option<(&'a [u8], &'a [u8])> {
    if let Some(p) = state().paths.get() {
        return Some((p.now.as_bytes_with_nul(), p.old.as_bytes_with_nul()));
    }
    let dir = state().default_dir.get()?;
    let owner = state().owner.load(Ordering::Relaxed);
    if owner == 0 {
        return None;
    }
    let build = |buf: &'a mut [u8; 600], suffix: &str| default_path(dir, owner, suffix, buf);
    Some((build(now, "")?, build(old, ".old")?))
}

/// Appends `lines` (whole lines) to the channel at `path` (NUL-terminated), as a shim does:
/// open, one write, close. (A process that is not a runtime handing its calls over, see
/// `process::hand_over_calls`.)
pub fn append(path: &[u8], lines: &[u8]) {
    let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC;
    if let Ok(fd) = sys::open(path, flags, 0o666) {
        let _ = sys::write(fd as i32, lines);
        let _ = sys::close(fd as i32);
    }
}

/// The default channel of `owner`'s environment in `dir` (`.lambda-meter-<owner>.channel`),
/// with `suffix`, NUL-terminated, in `buf`; `None` when it does not fit.
pub fn default_path<'a>(
    dir: &[u8],
    owner: u32,
    suffix: &str,
    buf: &'a mut [u8; 600],
) -> Option<&'a [u8]> {
    let mut out = crate::text::Out::new(buf);
    out.bytes(dir);
    if !dir.ends_with(b"/") {
        out.byte(b'/');
    }
    out.bytes(b".lambda-meter-");
    out.decimal(u64::from(owner));
    out.bytes(b".channel");
    out.bytes(suffix.as_bytes());
    out.byte(0);
    let (len, overflowed) = (out.len(), out.overflowed());
    (!overflowed).then(|| buf.get(..len)).flatten()
}

/// Reads the whole lines appended to `path` (`size` bytes) from `at` into `buf`, the oldest
/// first. Returns the bytes kept in `buf` and the offset read to (lines that did not fit are
/// read next time; a line longer than `buf` is passed over).
fn read_lines(path: &[u8], at: u64, size: u64, buf: &mut [u8]) -> (usize, u64) {
    if size <= at || buf.is_empty() {
        return (0, at);
    }
    let want = (size - at).min(buf.len() as u64) as usize;
    let Ok(fd) = sys::open(path, libc::O_RDONLY | libc::O_CLOEXEC, 0) else {
        return (0, at);
    };
    let read = sys::pread(fd as i32, buf.get_mut(..want).unwrap_or_default(), at).unwrap_or(0);
    let _ = sys::close(fd as i32);
    let got = buf.get(..read).unwrap_or_default();
    // Whole lines only: a line being written is read next time. A full buffer with no line
    // end in it is one line too long to take: it is passed over (its rest fails to parse).
    let whole = got.iter().rposition(|c| *c == b'\n').map_or(0, |i| i + 1);
    if whole == 0 && read == buf.len() {
        return (0, at + read as u64);
    }
    (whole, at + whole as u64)
}

/// What was appended to the channel since the last call (whole lines, oldest first) into
/// `buf`, and whether more is there to read now. One `statx` of the directory while there is
/// no channel file and nothing changed there; else one `statx` of the channel more, and an
/// open, a `pread` and a close for each file that has new lines.
pub fn read_new(buf: &mut [u8]) -> (usize, bool) {
    if !named() {
        return (0, false);
    }
    // No channel file at the last read, and its directory has not changed since.
    let unchanged = look_at_dir().is_some_and(|(look, trusted)| {
        let seen = &state().reader_seen;
        let same = state().reader_trusts.load(Ordering::Relaxed) && load_look(seen) == look;
        store_look(seen, look);
        state().reader_trusts.store(trusted, Ordering::Relaxed);
        same
    });
    if unchanged && state().absent.load(Ordering::Relaxed) {
        return (0, false);
    }
    let (mut now_buf, mut old_buf) = ([0u8; 600], [0u8; 600]);
    let Some((now_path, old_path)) = paths(&mut now_buf, &mut old_buf) else {
        return (0, false);
    };
    let (n, more) = read_from(now_path, old_path, buf);
    state()
        .absent
        .store(reading().is_none() && !more, Ordering::Relaxed);
    (n, more)
}

/// Looks at the directory the channel is in: how it is now, and whether its times are old
/// enough to be trusted. Kept for [`dir_look`].
fn look_at_dir() -> Option<(sys::DirLook, bool)> {
    let look = sys::dir_look(state().dir_path.get()?.as_bytes_with_nul()).ok()?;
    let wall_ms = crate::probes::clock_now().wall_ms;
    let changed_ms = look.mtime_ns.max(look.ctime_ns) / 1_000_000;
    let trusted = changed_ms.saturating_add(SETTLE_MS) < wall_ms;
    store_look(&state().dir, look);
    state().dir_trusted.store(trusted, Ordering::Relaxed);
    state().looks.fetch_add(1, Ordering::Release);
    Some((look, trusted))
}

fn load_look(words: &[AtomicU64; 3]) -> sys::DirLook {
    sys::DirLook {
        ino: words[0].load(Ordering::Relaxed),
        mtime_ns: words[1].load(Ordering::Relaxed),
        ctime_ns: words[2].load(Ordering::Relaxed),
    }
}

fn store_look(words: &[AtomicU64; 3], look: sys::DirLook) {
    words[0].store(look.ino, Ordering::Relaxed);
    words[1].store(look.mtime_ns, Ordering::Relaxed);
    words[2].store(look.ctime_ns, Ordering::Relaxed);
}

/// The channel's directory as the last read saw it, whether its times were trusted, and how
/// many looks there have been (a number that changes with each).
pub fn dir_look() -> Option<(sys::DirLook, bool, u64)> {
    let looks = state().looks.load(Ordering::Acquire);
    (looks > 0).then(|| {
        (
            load_look(&state().dir),
            state().dir_trusted.load(Ordering::Relaxed),
            looks,
        )
    })
}

/// Whether the channel is in directory `dir` (no trailing slash needed).
pub fn is_in_dir(dir: &[u8]) -> bool {
    let (mut now_buf, mut old_buf) = ([0u8; 600], [0u8; 600]);
    let Some((now, _)) = paths(&mut now_buf, &mut old_buf) else {
        return false;
    };
    let now = now.strip_suffix(b"\0").unwrap_or(now);
    let parent = now
        .iter()
        .rposition(|b| *b == b'/')
        .and_then(|i| now.get(..i));
    let trim = |d: &[u8]| -> usize { d.len() - d.iter().rev().take_while(|b| **b == b'/').count() };
    parent.is_some_and(|p| p.get(..trim(p)) == dir.get(..trim(dir)))
}

/// [`read_new`] of the channel file itself.
fn read_from(now_path: &[u8], old_path: &[u8], buf: &mut [u8]) -> (usize, bool) {
    let mut reading = reading();
    let mut offset = state().offset.load(Ordering::Relaxed);
    let now = sys::file_id(now_path).ok();
    if let Some(file) = reading
        && now.is_none_or(|st| !st.same_file(&file))
    {
        // The file this process was reading was rotated (by it or another reader): its last
        // lines are read from the old generation, if that is still it. (Removed, or removed
        // and made again — even with the same inode number — it is not.)
        if let Ok(st) = sys::file_id(old_path)
            && st.same_file(&file)
            && st.size >= offset
        {
            let (n, to) = read_lines(old_path, offset, st.size, buf);
            if to < st.size && to > offset {
                state().offset.store(to, Ordering::Relaxed);
                return (n, true);
            }
            set_reading(None);
            state().offset.store(0, Ordering::Relaxed);
            return (n, now.is_some());
        }
        reading = None;
        offset = 0;
    }
    let Some(st) = now else {
        set_reading(reading);
        state().offset.store(offset, Ordering::Relaxed);
        return (0, false);
    };
    // Shorter than what was read of it: cut, or made again at the same inode and birth time
    // resolution; read from its start.
    if reading.is_none() || st.size < offset {
        reading = Some(st);
        offset = 0;
    }
    let size = st.size;
    let (n, to) = read_lines(now_path, offset, size, buf);
    let more = to < size && to > offset;
    offset = to;
    if !more && offset >= size && size >= ROTATE_AT {
        // Still this process's file (by its inode), under the old name: next time it is read
        // to its end once more (a shim's append may have raced the rename), then the new one.
        let _ = sys::rename(now_path, old_path);
    }
    set_reading(reading);
    state().offset.store(offset, Ordering::Relaxed);
    (n, more)
}

/// The file this process reads, if any.
fn reading() -> Option<sys::FileId> {
    let ino = state().inode.load(Ordering::Relaxed);
    let born = state().born_ns.load(Ordering::Relaxed);
    (ino != 0).then_some(sys::FileId {
        ino,
        born_ns: (born != 0).then_some(born),
        size: 0,
    })
}

fn set_reading(file: Option<sys::FileId>) {
    state()
        .inode
        .store(file.map_or(0, |f| f.ino), Ordering::Relaxed);
    state()
        .born_ns
        .store(file.and_then(|f| f.born_ns).unwrap_or(0), Ordering::Relaxed);
}

/// This module's part of the library's state in the process ([`crate::state::State`]).
pub struct ChannelState {
    /// `LAMBDA_METER_CHANNEL`, when set.
    paths: OnceLock<Paths>,
    /// Otherwise the temporary directory the default path is in...
    default_dir: OnceLock<Vec<u8>>,
    /// ...and the process it is named after.
    owner: AtomicU32,
    /// The directory the channel is in, either way (NUL-terminated).
    dir_path: OnceLock<CString>,
    /// The file this process reads (its inode; 0: none yet, and when it was made; 0: not
    /// known), and how far.
    inode: AtomicU64,
    born_ns: AtomicU64,
    offset: AtomicU64,
    /// No channel file at the last read (and nothing left to read).
    absent: AtomicBool,
    /// The channel's directory at the reader's last look, and whether its times were trusted.
    reader_seen: [AtomicU64; 3],
    reader_trusts: AtomicBool,
    /// The last look at the directory (for the journal, [`dir_look`]) and the number of looks.
    dir: [AtomicU64; 3],
    dir_trusted: AtomicBool,
    looks: AtomicU64,
}

impl ChannelState {
    pub const fn new() -> ChannelState {
        ChannelState {
            paths: OnceLock::new(),
            default_dir: OnceLock::new(),
            owner: AtomicU32::new(0),
            dir_path: OnceLock::new(),
            inode: AtomicU64::new(0),
            born_ns: AtomicU64::new(0),
            offset: AtomicU64::new(0),
            absent: AtomicBool::new(false),
            reader_seen: [const { AtomicU64::new(0) }; 3],
            reader_trusts: AtomicBool::new(false),
            dir: [const { AtomicU64::new(0) }; 3],
            dir_trusted: AtomicBool::new(false),
            looks: AtomicU64::new(0),
        }
    }

    /// In a forked child (`pid`): a runtime of its own, whose default channel is named after
    /// it; it reads on from its parent's place in the file they shared.
    pub fn forked_child(&self, pid: u32) {
        let ChannelState {
            // Kept: the same settings.
            paths: _,
            default_dir: _,
            // Its default channel is named after it (in the same directory).
            owner,
            dir_path: _,
            // Kept: it reads on from its parent's place (what the parent read was its own).
            inode: _,
            born_ns: _,
            offset: _,
            // Its default channel is named after it: looked for at its first read.
            absent,
            reader_seen: _,
            reader_trusts,
            // Kept: the same directory, as last seen.
            dir: _,
            dir_trusted: _,
            looks: _,
        } = self;
        // Unnamed (0) stays unnamed: the child names it when it joins, as the parent would.
        if owner.load(Ordering::Relaxed) != 0 {
            owner.reset_to(pid, Ordering::Relaxed);
        }
        absent.reset_to(false, Ordering::Relaxed);
        reader_trusts.reset_to(false, Ordering::Relaxed);
    }
}

/// This module's state.
#[inline(always)]
fn state() -> &'static ChannelState {
    &crate::state::STATE.channel
}
