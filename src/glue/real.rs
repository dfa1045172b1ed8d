//! The real libc functions behind every hook, resolved once as `dlsym(RTLD_NEXT, …)` resolves
//! them: in the loaded objects' own symbol tables ([`NextObjects`]), `dlsym` itself where
//! they cannot say.
//!
//! The constructor reads the tables of the objects loaded after this library. Where they answer
//! what the loader did, cover every such object, and the first of them is libc (a program that
//! needs libc alone — `/bin/true`, `cut`, `tr` — with the library preloaded, see
//! [`NextObjects::libc_first`]), they are kept for the rest of the process and each function is
//! found on its first call: a slot starts at its `first` function, which looks the name up in
//! the kept tables (reads of tables the loader never changes: no lock, no allocation, no system
//! call, safe in a signal handler or a `vfork` child), stores what it found and calls it. A process
//! that never calls most hooks — a shell runtime's `cut`, `/bin/true` — never pays for their
//! lookups. Otherwise every function is resolved in the constructor, `dlsym` answering what the
//! tables cannot.
//!
//! A call that arrives before the constructor (from another library's constructor) goes to its
//! row's fallback (`table.rs`): the raw system call where libc's wrapper is one; else (stdio,
//! `sigaction`, the exits) the real function is looked up on that first use — `dlsym` calls
//! none of them, so it cannot recurse. A symbol that resolves into this library itself is
//! refused: the library then disables itself instead of recursing.

use crate::elf;
use libc::{
    c_char, c_int, c_uint, c_void, iovec, msghdr, pid_t, size_t, sockaddr, socklen_t, ssize_t,
};
use std::ffi::CStr;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// Resolves `name` with `RTLD_NEXT`, refusing a definition that lives in this library: from the
/// objects' own tables (see [`NextObjects`]) while [`resolve_all`] runs or once they are kept.
fn lookup(name: &CStr) -> Option<*mut c_void> {
    let kept = kept();
    let found = match kept {
        Some(tables) => Some(tables.find(name.to_bytes())),
        None => {
            // Only on the thread running resolve_all: the tables are on its stack.
            let next = if NEXT_THREAD.load(Ordering::Acquire) == crate::custom::thread_key() {
                NEXT.load(Ordering::Acquire)
            } else {
                std::ptr::null_mut()
            };
            // SAFETY: NEXT points at resolve_all's NextObjects, on this thread's stack, while
            // it runs (NEXT_THREAD names this thread only then); null otherwise.
            (!next.is_null()).then(|| unsafe { &*next }.find(name.to_bytes()))
        }
    };
    let p = match found {
        Some(elf::Definition::At(p)) => p as *mut c_void,
        // Kept tables cover every object after this library, as the loader bound it: a name
        // none of them defines is nowhere `dlsym` would look (and a first call, on a hook's
        // path, asks it nothing).
        Some(elf::Definition::Absent) if kept.is_some() => return None,
        // Not found after this library (which a library the program itself loads later, not
        // at start, may find in objects loaded before it) or not readable: the loader says.
        // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name has no preconditions.
        Some(elf::Definition::Absent | elf::Definition::Unsure) | None => unsafe {
            libc::dlsym(libc::RTLD_NEXT, name.as_ptr())
        },
    };
    if p.is_null() || in_this_library(p) {
        return None;
    }
    Some(p)
}

/// The objects `dlsym(RTLD_NEXT, …)` searches for this library, read once at load: every
/// object loaded after it, in the loader's order — the global scope after it, for a library
/// loaded at start (preloaded) — with their dynamic sections. A lookup walks their GNU hash
/// tables as the loader does (see [`elf::definition`]), some 100 instructions where `dlsym`
/// takes some 800 (its error catching, its lock, finding its caller): some 60 of them in every
/// process the library is loaded into, a shell runtime's `cut` and `grep` as much as the
/// runtime. Whatever the reading does not follow is left to `dlsym`; and where the two
/// disagree on one symbol, `dlsym` answers them all.
struct NextObjects {
    /// The first `len` are set. Not zeroed first: that is a call to libc's `memset`, whose
    /// page of code a process that never calls it would fault in for this.
    objects: [std::mem::MaybeUninit<(usize, elf::Symbols)>; MAX_NEXT_OBJECTS],
    len: usize,
    /// Every object after this library is in `objects`.
    complete: bool,
}

/// More objects than this after the library: what none of them defines is asked of `dlsym`.
/// (libc comes early: it is one of the program's own first dependencies.) Few, as they are on
/// the constructor's stack: a page of stack more is a page fault more in every process.
const MAX_NEXT_OBJECTS: usize = 16;

/// The [`NextObjects`] of the running [`resolve_all`], or null; and the thread running it (0:
/// none). Another thread that resolves a function meanwhile (one a constructor before this
/// library's started) asks `dlsym`.
static NEXT: AtomicPtr<NextObjects> = AtomicPtr::new(std::ptr::null_mut());
static NEXT_THREAD: AtomicU64 = AtomicU64::new(0);

/// The tables kept for first calls (see the module's documentation): written once, by the
/// constructor, before [`KEPT_READY`] says so; never written again.
struct Kept(std::cell::UnsafeCell<std::mem::MaybeUninit<NextObjects>>);

// SAFETY: written once, before KEPT_READY is stored with Release; read only after it is loaded
// with Acquire (see `kept`), never written after.
unsafe impl Sync for Kept {}

static KEPT: Kept = Kept(std::cell::UnsafeCell::new(std::mem::MaybeUninit::uninit()));
static KEPT_READY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The kept tables, once the constructor kept them.
fn kept() -> Option<&'static NextObjects> {
    // SAFETY: KEPT was written whole before KEPT_READY was set (Release/Acquire), and is never
    // written again.
    KEPT_READY
        .load(Ordering::Acquire)
        .then(|| unsafe { (*KEPT.0.get()).assume_init_ref() })
}

/// Keeps `next` for first calls (once, from the constructor).
fn keep(next: NextObjects) -> &'static NextObjects {
    // SAFETY: only the constructor calls this, once, before any reader can see KEPT_READY.
    let kept = unsafe { (*KEPT.0.get()).write(next) };
    KEPT_READY.store(true, Ordering::Release);
    kept
}

impl NextObjects {
    /// Read from the loader's list (one `dl_iterate_phdr`); `None` where the loader's own
    /// lookup may answer otherwise than its tables say: an auditing module may rebind a
    /// lookup (named in `LD_AUDIT`, in an object's `DT_AUDIT` or `DT_DEPAUDIT`, or given to
    /// the loader run as a program, `ld.so --audit`: no program interpreter then),
    /// `LD_DYNAMIC_WEAK` changes which of two definitions wins.
    fn read() -> Option<NextObjects> {
        if in_environment(&[b"LD_AUDIT=", b"LD_DYNAMIC_WEAK="]) {
            return None;
        }
        // SAFETY: getauxval has no preconditions.
        if unsafe { libc::getauxval(libc::AT_BASE) } == 0 {
            return None;
        }
        let here = NextObjects::read as *const () as usize;
        let mut next = NextObjects {
            objects: [const { std::mem::MaybeUninit::uninit() }; MAX_NEXT_OBJECTS],
            len: 0,
            complete: true,
        };
        let mut after = false;
        let mut audit = false;
        elf::each_object(&mut |object| {
            let d = elf::DynInfo::of(object);
            audit |= d.is_some_and(|d| d.audit);
            if !after {
                after = object.contains(here);
                if after {
                    keep_own_range(object.phdrs.iter().map(|p| (object.base, p)));
                }
                return;
            }
            let Some(d) = d else {
                return; // no dynamic section: defines nothing
            };
            match next.objects.get_mut(next.len) {
                Some(slot) => {
                    slot.write((object.base, d.symbols));
                    next.len += 1;
                }
                None => next.complete = false,
            }
        });
        (after && !audit).then_some(next)
    }

    /// `name` as `dlsym(RTLD_NEXT, name)` finds it, or [`elf::Definition::Unsure`].
    fn find(&self, name: &[u8]) -> elf::Definition {
        let hash = elf::gnu_hash(name);
        for slot in self.objects.get(..self.len).unwrap_or_default() {
            // SAFETY: the first `len` entries were written by `read`.
            let (base, d) = unsafe { slot.assume_init_ref() };
            match elf::definition(*base, d, name, hash) {
                elf::Definition::Absent => {}
                found => return found,
            }
        }
        if self.complete {
            elf::Definition::Absent
        } else {
            elf::Definition::Unsure
        }
    }

    /// Whether the tables answer what the loader did: where it bound this library's own
    /// reference to `gnu_get_libc_version` (a libc function no hook shadows, so the first
    /// definition after this library is the one). No `dlsym`: its code and its error
    /// catching are pages of libc a process that never calls it would fault in at load.
    /// (A program that defines the function itself, or takes its address, binds it
    /// elsewhere: the tables are then not used, which is only slower.)
    fn agree_with_the_loader(&self) -> bool {
        let bound = libc::gnu_get_libc_version as *const () as usize;
        self.find(b"gnu_get_libc_version") == elf::Definition::At(bound)
    }

    /// Whether every object these tables cover is read, and the first of them is libc (where
    /// the loader bound `gnu_get_libc_version`, [`NextObjects::agree_with_the_loader`]): then
    /// each hooked name is found first in libc, whose definitions of them are plain functions
    /// of one version in every glibc, which the tables read without `dlsym`. An object before
    /// libc (a program's other libraries, another preloaded one) might define one otherwise (an
    /// indirect function, say), and a first call would then ask `dlsym` on the host's path —
    /// taking the loader's lock, clearing a pending `dlerror` — so such a process resolves
    /// everything at load.
    fn libc_first(&self) -> bool {
        let bound = libc::gnu_get_libc_version as *const () as usize;
        let name = b"gnu_get_libc_version";
        self.complete
            && self
                .objects
                .get(..self.len)
                .unwrap_or_default()
                .first()
                .is_some_and(|slot| {
                    // SAFETY: the first `len` entries were written by `read`.
                    let (base, d) = unsafe { slot.assume_init_ref() };
                    elf::definition(*base, d, name, elf::gnu_hash(name))
                        == elf::Definition::At(bound)
                })
    }
}

/// Whether a variable of the environment starts with one of `prefixes` (`NAME=`). A walk of
/// `environ` rather than `getenv`: at load, libc's `getenv` is a page of code more to fault in
/// for a process that does not call it itself.
fn in_environment(prefixes: &[&[u8]]) -> bool {
    unsafe extern "C" {
        static environ: *const *const libc::c_char;
    }
    // SAFETY: environ is libc's, read at load (before the program can change it).
    let mut at = unsafe { environ };
    while !at.is_null() {
        // SAFETY: environ is a null-terminated array of pointers.
        let var = unsafe { *at };
        if var.is_null() {
            break;
        }
        let starts_with = |prefix: &[u8]| {
            prefix.iter().enumerate().all(|(i, b)| {
                // SAFETY: each entry is a NUL-terminated string, and the comparison stops at
                // its first byte that differs (the NUL at the latest: no prefix holds one).
                unsafe { *var.add(i) as u8 == *b }
            })
        };
        if prefixes.iter().any(|p| starts_with(p)) {
            return true;
        }
        // SAFETY: not past the null entry, which ends the array.
        at = unsafe { at.add(1) };
    }
    false
}

/// Whether `p` points into the object that contains this function: a range test against this
/// library's loaded segments, found once (`dladdr` per symbol would scan libc's symbol table
/// each time, ~50k instructions a call).
fn in_this_library(p: *mut c_void) -> bool {
    lm_in_this_library(p) != 0
}

/// This library's lowest and highest loaded address; (0, 0) until known.
static OWN_RANGE: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// Keeps this library's range from its program headers, met while [`NextObjects::read`] walks
/// the loaded objects (one walk at load, not two).
fn keep_own_range<'a>(phdrs: impl Iterator<Item = (usize, &'a libc::Elf64_Phdr)>) {
    let (mut lo, mut hi) = (usize::MAX, 0usize);
    for (base, ph) in phdrs {
        if ph.p_type == libc::PT_LOAD {
            let start = base.wrapping_add(ph.p_vaddr as usize);
            lo = lo.min(start);
            hi = hi.max(start.wrapping_add(ph.p_memsz as usize));
        }
    }
    if lo < hi {
        OWN_RANGE[0].store(lo, Ordering::Relaxed);
        OWN_RANGE[1].store(hi, Ordering::Release);
    }
}

/// [`in_this_library`] for `c-abi/interpose.c` (through its callback table).
pub extern "C" fn lm_in_this_library(p: *mut c_void) -> c_int {
    let mut end = OWN_RANGE[1].load(Ordering::Acquire);
    if end == 0 {
        // Not read at load (the tables were not): found now, once.
        let (lo, hi) = own_segments();
        OWN_RANGE[0].store(lo, Ordering::Relaxed);
        OWN_RANGE[1].store(hi, Ordering::Release);
        end = hi;
    }
    let start = OWN_RANGE[0].load(Ordering::Relaxed);
    c_int::from((start..end).contains(&(p as usize)))
}

/// The lowest and highest address of this library's `PT_LOAD` segments ((0, 0) if not found).
fn own_segments() -> (usize, usize) {
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: dl_iterate_phdr passes a valid info for the duration of the call, and `data`
        // is the `(usize, usize)` own_segments passed in.
        let (info, found) = unsafe { (&*info, &mut *data.cast::<(usize, usize)>()) };
        let here = own_segments as *const () as usize;
        let base = info.dlpi_addr as usize;
        let (mut lo, mut hi) = (usize::MAX, 0usize);
        for i in 0..usize::from(info.dlpi_phnum) {
            // SAFETY: dlpi_phdr points to dlpi_phnum program headers.
            let ph = unsafe { &*info.dlpi_phdr.add(i) };
            if ph.p_type == libc::PT_LOAD {
                let start = base.wrapping_add(ph.p_vaddr as usize);
                lo = lo.min(start);
                hi = hi.max(start.wrapping_add(ph.p_memsz as usize));
            }
        }
        if (lo..hi).contains(&here) {
            *found = (lo, hi);
            return 1;
        }
        0
    }
    let mut found = (0usize, 0usize);
    // SAFETY: the callback only reads the headers it is given and writes `found`.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut found as *mut (usize, usize)).cast()) };
    found
}

unsafe extern "C" {
    /// Resolves the real functions of `c-abi/interpose.c`'s interposers (through
    /// [`lm_lookup`]).
    fn lm_c_resolve_all(fcntl64: c_int);
}

/// [`lookup`] for `c-abi/interpose.c` (through its callback table): the real `name`, or null.
pub extern "C" fn lm_lookup(name: *const libc::c_char) -> *mut c_void {
    if name.is_null() {
        return std::ptr::null_mut();
    }
    // The C side passes NUL-terminated string literals; measured here without libc's
    // `strlen` (a page of code more to fault in at load).
    let mut len = 0;
    // SAFETY: read up to the NUL, which ends each literal.
    while unsafe { *name.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: the `len` bytes and the NUL after them were just read.
    let name = unsafe { std::slice::from_raw_parts(name.cast::<u8>(), len + 1) };
    match CStr::from_bytes_with_nul(name) {
        Ok(name) => lookup(name).unwrap_or(std::ptr::null_mut()),
        Err(_) => std::ptr::null_mut(),
    }
}

/// The slot of one real function, its resolver and its accessor, inside the function's module
/// (which defines its C type `F` and its `fallback`).
macro_rules! real_slot {
    ($name:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        /// The symbol's name.
        const NAME: &CStr =
            match CStr::from_bytes_with_nul(concat!(stringify!($name), "\0").as_bytes()) {
                Ok(name) => name,
                Err(_) => c"",
            };

        /// The real function once resolved; the fallback until then (never null).
        static SLOT: AtomicPtr<c_void> = AtomicPtr::new(fallback as F as *mut c_void);

        /// Resolves the real symbol; false when it is missing or is ourselves.
        pub fn resolve() -> bool {
            match lookup(NAME) {
                Some(p) => {
                    SLOT.store(p, Ordering::Release);
                    true
                }
                None => false,
            }
        }

        /// The real function, the fallback before resolution, or `first` until the first
        /// call: one load.
        #[inline(always)]
        pub fn get() -> F {
            // SAFETY: SLOT only ever holds `fallback`, `first` or a non-null address found for
            // this very symbol, whose C type is F.
            unsafe { std::mem::transmute::<*mut c_void, F>(SLOT.load(Ordering::Acquire)) }
        }

        /// Leaves the function to be found on its first call (the tables are kept).
        #[allow(dead_code)] // Not a `since` row's: looked up at load.
        pub fn defer() {
            SLOT.store(first as F as *mut c_void, Ordering::Release);
        }

        /// Finds the function now if its first call has not come yet.
        pub fn ensure() {
            if SLOT.load(Ordering::Acquire) == first as F as *mut c_void {
                settle();
            }
        }

        /// The real function itself (found now if its first call has not come yet), for a
        /// caller that compares or hands on its address rather than calling it.
        #[allow(dead_code)] // Only the rows whose real functions go into GOTs use it.
        pub fn resolved() -> F {
            ensure();
            get()
        }

        /// Whether `f`, a value [`get`] gave, is this function (its real one, or the `first`
        /// that stood for it).
        #[allow(dead_code)] // Only the rows that compare their real function use it.
        pub fn is(f: F) -> bool {
            f as usize == get() as usize || f as usize == first as F as usize
        }

        /// Finds the function in the kept tables; where they have none, its fallback stays.
        #[cold]
        fn settle() {
            if !resolve() {
                SLOT.store(fallback as F as *mut c_void, Ordering::Release);
            }
        }

        /// The slot until the first call: finds the function, then makes the call.
        #[allow(unused_variables)]
        unsafe extern "C" fn first($($arg: $ty),*) -> $ret {
            settle();
            // SAFETY: the slot now holds the real function (or the fallback); the host's
            // arguments, unchanged.
            unsafe { (get())($($arg),*) }
        }
    };
}

/// Declares one real function: a slot, its resolver and its accessor, in a module named after
/// the symbol. The fallback, used before resolution, is one of the table's (`table.rs`):
/// `syscall(NR, args…)`, `lazy(ERR)`, `custom(FUNCTION)` or `noreturn(FUNCTION)`.
macro_rules! real_fn {
    ($name:ident, fn($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty,
     syscall($nr:expr $(, $sys_arg:expr)* $(,)?)) => {
        real_fn!($name, fn($($arg: $ty),*) -> $ret, closure(|$($arg),*| {
            // SAFETY: the host's arguments go unchanged to the system call its libc wrapper
            // would make; the kernel checks them and libc sets errno.
            unsafe { libc::syscall($nr $(, $sys_arg)*) as $ret }
        }));
    };
    // No system call behind it (stdio, sigaction): before the constructor, resolve on first
    // use (dlsym calls none of these, so it cannot recurse); failing that, ENOSYS and `$err`.
    ($name:ident, fn($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty, lazy($err:expr)) => {
        real_fn!($name, fn($($arg: $ty),*) -> $ret, closure(|$($arg),*| {
            if resolve() {
                // SAFETY: resolve() stored the real function; the host's arguments, unchanged.
                unsafe { (get())($($arg),*) }
            } else {
                // SAFETY: writing errno of the current thread.
                unsafe { *libc::__errno_location() = libc::ENOSYS };
                $err
            }
        }));
    };
    ($name:ident, fn($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty, custom($fallback:path)) => {
        real_fn!($name, fn($($arg: $ty),*) -> $ret, closure($fallback));
    };
    ($name:ident, fn($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty, closure($fallback:expr)) => {
        pub mod $name {
            #[allow(unused_imports)]
            use super::*;
            /// The function's C type.
            pub type F = unsafe extern "C" fn($($ty),*) -> $ret;
            real_slot!($name, ($($arg: $ty),*) -> $ret);

            #[allow(unused_variables)]
            unsafe extern "C" fn fallback($($arg: $ty),*) -> $ret {
                let f: fn($($ty),*) -> $ret = $fallback;
                f($($arg),*)
            }
        }
    };
    // A function that never returns (`exit`, `_exit`): before the constructor, its fallback
    // resolves the real function and calls it (so `exit` still runs the host's `atexit`
    // handlers); only if that fails does it run `$last_resort`.
    ($name:ident, fn($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty, noreturn($last_resort:path)) => {
        pub mod $name {
            use super::*;
            /// The function's C type.
            pub type F = unsafe extern "C" fn($($ty),*) -> $ret;
            real_slot!($name, ($($arg: $ty),*) -> $ret);

            unsafe extern "C" fn fallback($($arg: $ty),*) -> $ret {
                if resolve() {
                    // SAFETY: resolve() stored the real function; the host's arguments.
                    unsafe { (get())($($arg),*) }
                }
                loop {
                    let last: fn($($ty),*) = $last_resort;
                    last($($arg),*);
                }
            }
        }
    };
}

const NO_ADDR: *const sockaddr = std::ptr::null();
const NO_ADDR_MUT: *mut sockaddr = std::ptr::null_mut();
const NO_LEN: *mut socklen_t = std::ptr::null_mut();

/// `dup2` before the constructor: its system call is not on every architecture.
fn dup2_raw(old: c_int, new: c_int) -> c_int {
    if old == new {
        // dup2 with equal fds only checks that old is valid.
        // SAFETY: F_GETFD on a number has no effect beyond its answer.
        let r = unsafe { libc::syscall(libc::SYS_fcntl, old, libc::F_GETFD) } as c_int;
        if r < 0 { -1 } else { old }
    } else {
        // SAFETY: dup3 with no flags is dup2 for distinct fds; arguments unchanged.
        unsafe { libc::syscall(libc::SYS_dup3, old, new, 0) as c_int }
    }
}

/// Ends the process without libc: what `exit` and `_exit` come to when libc cannot be found.
fn exit_group(status: c_int) {
    // SAFETY: exit_group ends every thread of the process; it does not return.
    unsafe { libc::syscall(libc::SYS_exit_group, status) };
}

/// Symbol name, resolver, whether the library cannot work without it, and the first glibc 2.N
/// that has it.
type Entry = (&'static str, fn() -> bool, bool, u32);

/// Every row of the table (`table.rs`): a slot for each Rust hook that has one of its own,
/// [`SLOTS`], their entries, and what is done to every slot at once (calls, not a table of
/// function pointers: each pointer in a table is a relocation the loader applies in every
/// process, on a page it then copies).
macro_rules! slots {
    ($([$($row:tt)*])*) => {
        $(slot! { $($row)* })*

        /// Every slot, in the table's order (`None`: a C row, or a row `via` another's slot).
        const SLOTS: &[Option<Entry>] = &[$(slot! { @entry $($row)* }),*];

        /// Leaves every slot that every glibc has to its first call (see `real_slot`'s
        /// `defer`); a `since` row is looked up at load.
        fn defer_all() {
            $(slot! { @defer $($row)* })*
        }

        /// Finds every function still left to its first call (see `real_slot`'s `ensure`).
        fn ensure_all() {
            $(slot! { @ensure $($row)* })*
        }
    };
}

/// One row's slot, its [`Entry`] (`@entry`), or its part of `defer_all` and `ensure_all`.
macro_rules! slot {
    (@defer rust $name:ident $args:tt $ret:tt $family:ident $bytes:tt $deep:tt
        [via $other:tt] $($row:tt)*) => {};
    (@defer rust $name:ident $args:tt $ret:tt $family:ident $bytes:tt $deep:tt $slot:tt
        [since ($since:literal)] $($row:tt)*) => {};
    (@defer rust $name:ident $($row:tt)*) => {
        $name::defer();
    };
    (@defer c $($row:tt)*) => {};
    (@ensure rust $name:ident $args:tt $ret:tt $family:ident $bytes:tt $deep:tt
        [via $other:tt] $($row:tt)*) => {};
    (@ensure rust $name:ident $($row:tt)*) => {
        $name::ensure();
    };
    (@ensure c $($row:tt)*) => {};
    (c $($row:tt)*) => {};
    (rust $name:ident $args:tt $ret:tt $family:ident $bytes:tt $deep:tt [via $other:tt] $($row:tt)*) => {};
    (rust $name:ident [$($args:tt)*] [$ret:ty] $family:ident $bytes:tt $deep:tt
        [$kind:ident ($($kind_args:tt)*)] $($row:tt)*) => {
        real_fn!($name, fn($($args)*) -> $ret, $kind($($kind_args)*));
    };
    (@entry c $($row:tt)*) => {
        None
    };
    (@entry rust $name:ident $args:tt $ret:tt $family:ident $bytes:tt $deep:tt [via $other:tt] $($row:tt)*) => {
        None
    };
    (@entry rust $name:ident $args:tt $ret:tt $family:ident $bytes:tt $deep:tt $slot:tt
        [$needed:ident ($($since:literal)?)] $($row:tt)*) => {
        Some((
            stringify!($name),
            $name::resolve as fn() -> bool,
            slot!(@needed $needed),
            0 $(+ $since)?,
        ))
    };
    (@needed needed) => { true };
    (@needed optional) => { false };
    (@needed since) => { false };
}

crate::table::hook_table!(slots);

/// The required libc functions that could not be resolved (at most eight are named).
#[derive(Clone, Copy, Debug, Default)]
pub struct Missing {
    names: [&'static str; 8],
    count: usize,
}

impl Missing {
    fn add(&mut self, name: &'static str) {
        if let Some(slot) = self.names.get_mut(self.count) {
            *slot = name;
        }
        self.count += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The names, comma-separated, in `buf`.
    pub fn list<'a>(&self, buf: &'a mut [u8]) -> &'a str {
        let mut out = crate::text::Out::new(buf);
        for (i, n) in self.names.iter().take(self.count).enumerate() {
            if i > 0 {
                out.str(", ");
            }
            out.str(n);
        }
        let len = out.len();
        std::str::from_utf8(buf.get(..len).unwrap_or_default()).unwrap_or("")
    }
}

/// The first bytes of `gnu_get_libc_version()` ("2.36"), read up to its NUL without libc's
/// `strlen` (a page of code more to fault in at load).
fn libc_version_prefix() -> &'static [u8] {
    // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
    let p = unsafe { libc::gnu_get_libc_version() };
    let mut len = 0;
    // SAFETY: read byte by byte up to the NUL, at most 8 bytes (all "2.NN" needs).
    while len < 8 && unsafe { *p.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: the `len` bytes before the NUL were just read.
    unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }
}

/// The minor version of the glibc this process runs (2.N), or 0 when unknown. No system call.
fn glibc_minor() -> u32 {
    let v = libc_version_prefix();
    let minor = v.strip_prefix(b"2.").unwrap_or_default();
    minor
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u32, |n, b| {
            n.saturating_mul(10).saturating_add(u32::from(b - b'0'))
        })
}

/// Resolves the real functions, at load: where the tables are kept (see the module's
/// documentation), only those a glibc may lack (looked for now: a first call must not find
/// nothing); else every one. No allocation and no system call: a symbol this glibc cannot have
/// is not looked up (a failed `dlsym` allocates its error message), and `close_range`, missing
/// before glibc 2.34, keeps its raw-system-call fallback. Returns the required ones that could
/// not be found — with the tables kept, none: they agree with the loader about libc's own
/// `gnu_get_libc_version`, so libc is glibc, and every required function is in every glibc.
pub fn resolve_all() -> Missing {
    let (kept, mut local) = match NextObjects::read().filter(NextObjects::agree_with_the_loader) {
        Some(next) if next.libc_first() => (Some(keep(next)), None),
        other => (None, other),
    };
    if let Some(n) = local.as_mut() {
        NEXT.store(n, Ordering::Release);
        NEXT_THREAD.store(crate::custom::thread_key(), Ordering::Release);
    }
    let tables = kept.or(local.as_ref());
    // Whether this glibc can have a symbol it has had since 2.`since`: the tables say so where
    // they are read (libc's version string is then not read: a page of libc's data more to
    // fault in at load); glibc's version says so otherwise.
    let mut minor = None;
    let mut possible = |name: &str, since: u32| {
        since == 0
            || match tables.map(|n| n.find(name.as_bytes())) {
                Some(elf::Definition::At(_)) => true,
                Some(elf::Definition::Absent) => false,
                Some(elf::Definition::Unsure) | None => {
                    let m = *minor.get_or_insert_with(glibc_minor);
                    m == 0 || m >= since
                }
            }
    };
    if kept.is_some() {
        defer_all();
    }
    let mut missing = Missing::default();
    for &(name, resolve, required, since) in SLOTS.iter().flatten() {
        if kept.is_some() && since == 0 {
            continue;
        }
        let present = possible(name, since) && resolve();
        if !present && required {
            missing.add(name);
        }
    }
    // The C interposers' real functions, through the same tables (the callback `lookup`).
    let fcntl64 = possible("fcntl64", 28);
    // SAFETY: no preconditions; called once, here.
    unsafe { lm_c_resolve_all(c_int::from(fcntl64)) };
    NEXT_THREAD.store(0, Ordering::Release);
    NEXT.store(std::ptr::null_mut(), Ordering::Release);
    missing
}

/// Every function has been found (see [`settle_all`]).
static ALL_SETTLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Finds every function still left to its first call, once: before a `fork`. A child's pages
/// of this library are its parent's until it writes one, and a first call in the child writes
/// a slot: a copy of that page in each child that makes one (a shell forks for every pipeline
/// and command substitution). The parent pays the lookups once, and its children none. The
/// same reads of the kept tables as a first call: safe wherever `fork` is called.
pub fn settle_all() {
    if ALL_SETTLED.load(Ordering::Relaxed) || kept().is_none() {
        return;
    }
    ensure_all();
    ALL_SETTLED.store(true, Ordering::Relaxed);
}
