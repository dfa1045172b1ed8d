//! Objects loaded with `dlopen(…, RTLD_DEEPBIND)`: PHP loads every extension that way, so the
//! curl extension's libcurl finds `connect`, `send` and `recv` in libc before it looks at
//! `LD_PRELOAD`, and a PHP runtime's Runtime API conversation would never reach a hook.
//!
//! The `dlopen` hook (`c-abi/interpose.c`) is a jump to the real one, so the caller keeps its
//! identity (`RUNPATH`, `$ORIGIN`, link namespace); for an `RTLD_DEEPBIND` load it first sets
//! `lm_deep_pending`. The next hook the process calls once no load is in progress ([`poll`])
//! binds: in every loaded object, a GOT entry of a hooked function that holds libc's own
//! function is pointed at our hook — the binding the object would have had without
//! `RTLD_DEEPBIND`. An entry that holds anything else (the object's own `write`, a
//! dependency's `send`, an object of another link namespace's libc) is left as the loader
//! chose, as is everything else; an object bound already holds our hooks and is left alone.
//! An object whose GOT cannot be written is reported in one warning line.

use crate::elf::{DynInfo, Object, PT_GNU_RELRO, Rela, Sym, Symbols, defines, each_object};
use crate::{output, process, real, sys};
use libc::{c_char, c_int, c_void};
use std::ffi::CStr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// One hook an object loaded with `RTLD_DEEPBIND` is bound to: its name, the hook's address
/// and libc's own function (the only value of a GOT entry that is replaced).
pub type Entry = (&'static [u8], usize, usize);

/// The hooks' list of entries (`hooks::deep_table`, made from the table's `deep` rows), handed
/// to `f`. Given by the hooks, which call this module: it does not name them itself.
pub type Table = fn(f: &mut dyn FnMut(&[Entry]));

/// The dynamic linker's debugger interface (`<link.h>`): `r_state` says whether a load or an
/// unload is in progress.
#[repr(C)]
struct RDebug {
    version: c_int,
    map: *mut c_void,
    brk: usize,
    state: c_int,
    ldbase: usize,
}

/// `RT_CONSISTENT`: no object is being added or removed.
const RT_CONSISTENT: c_int = 0;

unsafe extern "C" {
    /// Set by the `dlopen` hook for an `RTLD_DEEPBIND` load.
    static lm_deep_pending: AtomicU32;
    static _r_debug: RDebug;
}

/// Called by the hooks: binds what `RTLD_DEEPBIND` loads left bound to libc to the hooks of
/// `table`, once they are complete. One relaxed load when there is nothing to do.
#[inline(always)]
pub fn poll(table: Table) {
    // SAFETY: a static of the C side, an atomic word.
    if unsafe { lm_deep_pending.load(Ordering::Relaxed) } != 0 {
        bind_pending(table);
    }
}

/// The value of `lm_deep_pending` while a deep-bound load waits to be bound (0 otherwise):
/// above every fd number the hooks track, so that a fast path can fold the flag into its fd
/// range check with one `or` ([`pending_word`]). `c-abi/interpose.c` stores the same value.
pub const PENDING: u32 = 0x1_0000;
const _: () = assert!(PENDING as usize >= lambda_meter_core::fdtable::MAX_TRACKED_FD);

/// Whether a deep-bound load waits to be bound (the hooks' fast paths test it).
#[inline(always)]
pub fn is_pending() -> bool {
    pending_word() != 0
}

/// `lm_deep_pending`: [`PENDING`] or 0. The flag is a hidden symbol of this library: read with
/// one PC-relative load, not through the GOT as an `extern` static would be.
#[inline(always)]
pub fn pending_word() -> u32 {
    let pending: u32;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a 32-bit load of the C side's word (hidden, in this library), as a relaxed atomic
    // load is on x86_64; no other memory or register is touched.
    unsafe {
        std::arch::asm!(
            "mov {0:e}, dword ptr [rip + lm_deep_pending]",
            out(reg) pending,
            options(nostack, preserves_flags, readonly, pure)
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as on x86_64: a 32-bit load of the hidden word, as a relaxed atomic load is.
    unsafe {
        std::arch::asm!(
            "adrp {t}, lm_deep_pending",
            "ldr {0:w}, [{t}, :lo12:lm_deep_pending]",
            out(reg) pending,
            t = out(reg) _,
            options(nostack, preserves_flags, readonly, pure)
        );
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    // SAFETY: a static of the C side, an atomic word.
    let pending = unsafe { lm_deep_pending.load(Ordering::Relaxed) };
    pending
}

#[cold]
#[inline(never)]
fn bind_pending(table: Table) {
    // SAFETY: the dynamic linker's own variable; a plain read of an int it updates.
    let loader = unsafe { std::ptr::read_volatile(&raw const _r_debug.state) };
    if loader != RT_CONSISTENT {
        // A load is in progress (this may be a constructor of the object): its relocations
        // may not be done yet. A later hook binds it.
        return;
    }
    let now = crate::probes::mono_ns();
    if now < state().retry_at.load(Ordering::Relaxed) {
        return;
    }
    // SAFETY: as in `poll`.
    if unsafe { lm_deep_pending.swap(0, Ordering::AcqRel) } == 0 {
        return;
    }
    if !(process::activate() && crate::probes::in_owner_process()) {
        return;
    }
    // SAFETY: errno of this thread, kept as the host left it.
    let saved_errno = unsafe { *libc::__errno_location() };
    if catch_unwind(AssertUnwindSafe(|| {
        table(&mut |entries| bind_objects(entries))
    }))
    .is_err()
    {
        output::warn("internal error while following an RTLD_DEEPBIND library");
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
}

/// Binds the hooked functions of every loaded object that still calls libc's own (not libc
/// itself, nor this library).
fn bind_objects(table: &[Entry]) {
    let here = bind_objects as *const () as usize;
    let libc = real::write::resolved() as *const () as usize;
    let mut lazy = Lazy::default();
    let mut busy = false;
    let last_try = state().retries.load(Ordering::Relaxed) >= RETRIES;
    each_object(&mut |object| {
        if object.base == 0 || object.contains(here) || object.contains(libc) {
            return;
        }
        let name = object.name.to_str().unwrap_or("an object");
        match bind_object(object, table, &mut lazy, last_try) {
            Ok(0) => {}
            Ok(n) => output::debug(format_args!(
                "{name} (loaded with RTLD_DEEPBIND): {n} libc calls bound to lambda-meter"
            )),
            Err(Unbound::Relocating) => busy = true,
            Err(Unbound::Refused(why)) => output::warn_fmt(format_args!(
                "{name} was loaded with RTLD_DEEPBIND and cannot be followed ({why}): Runtime API calls made from it are not metered"
            )),
        }
    });
    lazy.bind(libc, here);
    let s = state();
    if busy {
        // Looked at again a little later, by the next hook or dlsym after that.
        s.retries.fetch_add(1, Ordering::Relaxed);
        s.retry_at
            .store(crate::probes::mono_ns() + RETRY_AFTER_NS, Ordering::Relaxed);
        // SAFETY: as in `poll`.
        unsafe { lm_deep_pending.store(PENDING, Ordering::Release) };
    } else {
        s.retries.store(0, Ordering::Relaxed);
    }
}

/// Why an object's entries were not bound.
enum Unbound {
    /// Its relocated data is not protected yet: another thread's `dlopen` may still be
    /// relocating it, and re-protecting it now would fault the loader. Tried again later.
    Relocating,
    Refused(&'static str),
}

/// How long to wait before looking again at an object still being relocated, and how many
/// times (then it is bound as it is).
const RETRY_AFTER_NS: u64 = 1_000_000;
const RETRIES: u32 = 1000;

/// This module's part of the library's state in the process ([`crate::state::State`]).
pub struct DeepBindState {
    /// Not before this (monotonic ns) is a pending load looked at again.
    retry_at: AtomicU64,
    /// Passes in a row that found an object still being relocated.
    retries: AtomicU32,
}

impl DeepBindState {
    pub const fn new() -> DeepBindState {
        DeepBindState {
            retry_at: AtomicU64::new(0),
            retries: AtomicU32::new(0),
        }
    }

    /// In a forked child: the same objects, the same wait.
    pub fn forked_child(&self) {
        let DeepBindState {
            retry_at: _,
            retries: _,
        } = self;
    }
}

/// This module's state.
#[inline(always)]
fn state() -> &'static DeepBindState {
    &crate::state::STATE.deepbind
}

/// GOT entries not bound yet (lazy binding: each points into its object's own PLT), decided
/// once every object has been looked at. The loader's own lookup (`dlopen`, `dlsym`) is not
/// asked: it would clear the thread's `dlerror` text, which the host may be about to read.
struct Lazy {
    /// (entry, hook, symbol name); no allocation.
    entries: [LazyEntry; 128],
    len: usize,
}

type LazyEntry = (usize, usize, *const c_char);

impl Default for Lazy {
    fn default() -> Self {
        Lazy {
            entries: [(0, 0, std::ptr::null()); 128],
            len: 0,
        }
    }
}

impl Lazy {
    /// Remembers one entry (past 128 in one pass, the rest stay as the loader leaves them).
    fn push(&mut self, entry: LazyEntry) {
        if let Some(e) = self.entries.get_mut(self.len) {
            *e = entry;
            self.len += 1;
        }
    }

    /// Points each entry at our hook where no loaded object but libc defines its function:
    /// then the loader would bind it to libc's (`RTLD_DEEPBIND`) or to our hook (otherwise)
    /// on its first call. Where another object defines it (the object itself, a dependency
    /// that wraps it, the program), or cannot be read, the entry is left to the loader.
    fn bind(&self, libc: usize, here: usize) {
        let entries = self.entries.get(..self.len).unwrap_or_default();
        let mut bound = 0usize;
        for &(at, hook, symbol) in entries {
            // SAFETY: a NUL-terminated name of a loaded object's string table.
            let name = unsafe { CStr::from_ptr(symbol) }.to_bytes();
            let mut elsewhere = false;
            each_object(&mut |object| {
                if !elsewhere && !object.contains(libc) && !object.contains(here) {
                    elsewhere = defines(object, name) != Some(false);
                }
            });
            if !elsewhere {
                // SAFETY: a lazily bound GOT entry (never in RELRO: the loader has to write it
                // on first call), aligned: one atomic store.
                unsafe { (*(at as *const AtomicUsize)).store(hook, Ordering::Release) };
                bound += 1;
            }
        }
        if bound > 0 {
            output::debug(format_args!(
                "{bound} lazily bound libc calls of RTLD_DEEPBIND libraries bound to lambda-meter"
            ));
        }
    }
}

#[cfg(target_arch = "x86_64")]
const GOT_RELOCATIONS: [u32; 2] = [6, 7]; // R_X86_64_GLOB_DAT, R_X86_64_JUMP_SLOT
#[cfg(target_arch = "aarch64")]
const GOT_RELOCATIONS: [u32; 2] = [1025, 1026]; // R_AARCH64_GLOB_DAT, R_AARCH64_JUMP_SLOT

/// Points `object`'s GOT entries for the functions in `table` at our hooks. Returns how many
/// entries it changed.
fn bind_object(
    object: &Object,
    table: &[(&[u8], usize, usize)],
    lazy: &mut Lazy,
    last_try: bool,
) -> Result<usize, Unbound> {
    let base = object.base;
    let Some(DynInfo {
        symbols: Symbols { symtab, strtab, .. },
        tables,
        ..
    }) = DynInfo::of(object)
    else {
        return Ok(0);
    };
    if symtab == 0 || strtab == 0 {
        return Ok(0);
    }
    // Find the entries first, then write them (the RELRO part needs unprotecting).
    let mut slots = [(0usize, 0usize); 64];
    let mut found = 0;
    for (start, size) in tables {
        if start == 0 {
            continue;
        }
        let count = size / std::mem::size_of::<Rela>();
        for i in 0..count {
            // SAFETY: the relocation table is mapped; i < its entry count.
            let r = unsafe { std::ptr::read_unaligned((start as *const Rela).add(i)) };
            if !GOT_RELOCATIONS.contains(&((r.info & 0xffff_ffff) as u32)) {
                continue;
            }
            let sym = (r.info >> 32) as usize;
            // SAFETY: the relocation names a symbol of this object's dynamic symbol table.
            let s = unsafe { std::ptr::read_unaligned((symtab as *const Sym).add(sym)) };
            // SAFETY: st_name is an offset into the NUL-terminated string table.
            let name = unsafe { CStr::from_ptr((strtab + s.name as usize) as *const c_char) };
            let Some((_, hook, real)) = table.iter().find(|(n, _, _)| *n == name.to_bytes()) else {
                continue;
            };
            let at = base.wrapping_add(r.offset as usize);
            // SAFETY: a GOT entry of this object: an aligned, readable word.
            let now = unsafe { (*(at as *const AtomicUsize)).load(Ordering::Acquire) };
            // Only an entry the loader bound to libc's own function (the object's own `write`,
            // a dependency's `send`, another namespace's libc are theirs). An entry not bound
            // yet points into the object's own PLT: [`Lazy`] decides it.
            if *real != 0 && now == *real {
                if let Some(slot) = slots.get_mut(found) {
                    *slot = (at, *hook);
                    found += 1;
                }
            } else if *real != 0 && object.contains(now) && !object.name.is_empty() {
                lazy.push((at, *hook, name.as_ptr()));
            }
        }
    }
    let slots = slots.get(..found).unwrap_or_default();
    if slots.is_empty() {
        return Ok(0);
    }
    let relro = object
        .phdrs
        .iter()
        .find(|p| p.p_type == PT_GNU_RELRO)
        .map(|p| {
            let page = page_size();
            // As the loader protects it: both ends rounded down, so a page shared with
            // `.data` stays writable.
            let start = base.wrapping_add(p.p_vaddr as usize) & !(page - 1);
            let end = base.wrapping_add((p.p_vaddr + p.p_memsz) as usize) & !(page - 1);
            (start, end)
        });
    let in_relro = |a: usize| relro.is_some_and(|(s, e)| a >= s && a < e);
    // An entry past the protected pages is writable already.
    let unprotect = relro.filter(|(s, e)| s < e && slots.iter().any(|(a, _)| in_relro(*a)));
    // The loader protects an object's RELRO pages once it has relocated it: pages still
    // writable mean a `dlopen` on another thread is still at it (the debugger state says
    // consistent before relocation starts). Its entries are left for a later look, unless
    // the pages stay writable that long (then they are the object's own doing).
    let relocating = unprotect.is_some()
        && slots
            .iter()
            .find(|(a, _)| in_relro(*a))
            // SAFETY: a GOT entry of this object: an aligned, readable word.
            .is_some_and(|(a, _)| {
                sys::word_writable(*a, unsafe {
                    (*(*a as *const AtomicUsize)).load(Ordering::Acquire)
                })
            });
    if relocating && !last_try {
        return Err(Unbound::Relocating);
    }
    let unprotect = unprotect.filter(|_| !relocating);
    if let Some((start, end)) = unprotect {
        // SAFETY: making this object's RELRO pages writable for a moment, as the loader does.
        if unsafe {
            libc::mprotect(
                start as *mut c_void,
                end - start,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        } != 0
        {
            return Err(Unbound::Refused(
                "its relocated data cannot be made writable",
            ));
        }
    }
    for (slot, hook) in slots {
        // SAFETY: a GOT entry of this object (aligned, writable now): one atomic store, so a
        // thread calling through it sees the old or the new address, never a mix.
        unsafe {
            (*(*slot as *const std::sync::atomic::AtomicUsize))
                .store(*hook, std::sync::atomic::Ordering::Release)
        };
    }
    if let Some((start, end)) = unprotect {
        // SAFETY: read-only again, as the loader left it.
        unsafe { libc::mprotect(start as *mut c_void, end - start, libc::PROT_READ) };
    }
    Ok(slots.len())
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p)
        .ok()
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096)
}
