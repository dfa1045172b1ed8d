//! Objects loaded with `dlopen(…, RTLD_DEEPBIND)`: PHP loads every extension that way, so the
//! curl extension's libcurl finds `connect`, `send` and `recv` in libc before it looks at
//! `LD_PRELOAD`, and a PHP runtime's Runtime API conversation would never reach a hook.
//!
//! The `dlopen` hook (`c-abi/interpose.c`) sends such a load here. After the real `dlopen`,
//! each object it added has the GOT entries of the hooked libc functions pointed at our hooks:
//! the binding that object would have had without `RTLD_DEEPBIND`, for those functions only.
//! Everything else it binds (its own symbols, its dependencies' other functions) stays as the
//! loader chose. An object whose GOT cannot be written is reported in one warning line.

use crate::{hooks, output, process};
use libc::{c_char, c_int, c_void};
use std::ffi::CStr;
use std::panic::{AssertUnwindSafe, catch_unwind};

unsafe extern "C" {
    /// Calls the real `dlopen` (`c-abi/interpose.c`).
    fn lm_call_real_dlopen(file: *const c_char, mode: c_int) -> *mut c_void;
    // The C interposers, whose addresses go into the GOTs too.
    fn fcntl(fd: c_int, cmd: c_int, ...) -> c_int;
    fn fcntl64(fd: c_int, cmd: c_int, ...) -> c_int;
    fn syscall(number: libc::c_long, ...) -> libc::c_long;
}

/// The hooks an object loaded with `RTLD_DEEPBIND` is bound to: every call that moves Runtime
/// API bytes or changes which fd they travel on.
fn hook_table() -> [(&'static [u8], usize); 23] {
    [
        (b"connect", hooks::connect as *const () as usize),
        (b"close", hooks::close as *const () as usize),
        (b"close_range", hooks::close_range as *const () as usize),
        (b"dup", hooks::dup as *const () as usize),
        (b"dup2", hooks::dup2 as *const () as usize),
        (b"dup3", hooks::dup3 as *const () as usize),
        (b"fork", hooks::fork as *const () as usize),
        (b"send", hooks::send as *const () as usize),
        (b"sendto", hooks::sendto as *const () as usize),
        (b"sendmsg", hooks::sendmsg as *const () as usize),
        (b"write", hooks::write as *const () as usize),
        (b"writev", hooks::writev as *const () as usize),
        (b"recv", hooks::recv as *const () as usize),
        (b"recvfrom", hooks::recvfrom as *const () as usize),
        (b"recvmsg", hooks::recvmsg as *const () as usize),
        (b"read", hooks::read as *const () as usize),
        (b"readv", hooks::readv as *const () as usize),
        (b"__read_chk", hooks::__read_chk as *const () as usize),
        (b"__recv_chk", hooks::__recv_chk as *const () as usize),
        (
            b"__recvfrom_chk",
            hooks::__recvfrom_chk as *const () as usize,
        ),
        (b"fcntl", fcntl as *const () as usize),
        (b"fcntl64", fcntl64 as *const () as usize),
        (b"syscall", syscall as *const () as usize),
    ]
}

/// `dlopen` with `RTLD_DEEPBIND` (or before the constructor resolved the real one).
///
/// # Safety
/// The host's arguments, as for `dlopen(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lm_dlopen_deep(file: *const c_char, mode: c_int) -> *mut c_void {
    let follow =
        mode & libc::RTLD_DEEPBIND != 0 && process::is_active() && process::in_owner_process();
    if !follow {
        // SAFETY: the host's arguments, unchanged.
        return unsafe { lm_call_real_dlopen(file, mode) };
    }
    let mut before = Objects::new();
    let _ = catch_unwind(AssertUnwindSafe(|| before.snapshot()));
    // SAFETY: the host's arguments, unchanged.
    let handle = unsafe { lm_call_real_dlopen(file, mode) };
    if !handle.is_null() {
        // SAFETY: errno of this thread, kept as the real dlopen left it.
        let saved_errno = unsafe { *libc::__errno_location() };
        if catch_unwind(AssertUnwindSafe(|| bind_new_objects(&before))).is_err() {
            output::warn("internal error while following an RTLD_DEEPBIND library");
        }
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = saved_errno };
    }
    handle
}

/// One loaded object, as `dl_iterate_phdr` describes it.
struct Object<'a> {
    base: usize,
    name: &'a CStr,
    phdrs: &'a [libc::Elf64_Phdr],
}

/// The load addresses of the objects loaded at one moment, on the stack.
struct Objects {
    bases: [usize; 512],
    len: usize,
}

impl Objects {
    fn new() -> Self {
        Objects {
            bases: [0; 512],
            len: 0,
        }
    }

    fn snapshot(&mut self) {
        each_object(&mut |o| {
            if let Some(slot) = self.bases.get_mut(self.len) {
                *slot = o.base;
                self.len += 1;
            }
        });
    }

    fn contains(&self, base: usize) -> bool {
        self.bases
            .get(..self.len)
            .unwrap_or_default()
            .contains(&base)
    }
}

/// Calls `f` with every object loaded now (inside `dl_iterate_phdr`).
fn each_object(f: &mut dyn FnMut(&Object)) {
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: `data` is the closure passed below; `info` is valid during the callback, and
        // the program headers it points to stay mapped as long as the object is loaded.
        unsafe {
            let f = &mut *data.cast::<&mut dyn FnMut(&Object)>();
            let info = &*info;
            let name = if info.dlpi_name.is_null() {
                c""
            } else {
                CStr::from_ptr(info.dlpi_name)
            };
            let phdrs = if info.dlpi_phdr.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum))
            };
            f(&Object {
                base: info.dlpi_addr as usize,
                name,
                phdrs,
            });
        }
        0
    }
    let mut f = f;
    // SAFETY: the callback only calls `f`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut f as *mut &mut dyn FnMut(&Object)).cast()) };
}

/// Binds the hooked functions of every object loaded since `before`.
fn bind_new_objects(before: &Objects) {
    let table = hook_table();
    each_object(&mut |object| {
        if before.contains(object.base) || object.base == 0 {
            return;
        }
        let name = object.name.to_str().unwrap_or("an object");
        match bind_object(object, &table) {
            Ok(0) => {}
            Ok(n) => process::debug(format_args!(
                "{name} (loaded with RTLD_DEEPBIND): {n} libc calls bound to lambda-meter"
            )),
            Err(why) => output::warn_fmt(format_args!(
                "{name} was loaded with RTLD_DEEPBIND and cannot be followed ({why}): Runtime API calls made from it are not metered"
            )),
        }
    });
}

/// `Elf64_Dyn`: one dynamic section entry (tag, value or address).
#[repr(C)]
#[derive(Clone, Copy)]
struct Dyn {
    tag: i64,
    val: u64,
}

/// `Elf64_Rela`: one relocation with addend.
#[repr(C)]
#[derive(Clone, Copy)]
struct Rela {
    offset: u64,
    info: u64,
    addend: i64,
}

/// `Elf64_Sym`: one symbol table entry.
#[repr(C)]
#[derive(Clone, Copy)]
struct Sym {
    name: u32,
    info: u8,
    other: u8,
    shndx: u16,
    value: u64,
    size: u64,
}

// Dynamic section tags and relocation types (ELF64, x86_64 and aarch64 use RELA).
const DT_NULL: i64 = 0;
const DT_PLTRELSZ: i64 = 2;
const DT_STRTAB: i64 = 5;
const DT_SYMTAB: i64 = 6;
const DT_RELA: i64 = 7;
const DT_RELASZ: i64 = 8;
const DT_JMPREL: i64 = 23;
const PT_DYNAMIC: u32 = 2;
const PT_GNU_RELRO: u32 = 0x6474_e552;
#[cfg(target_arch = "x86_64")]
const GOT_RELOCATIONS: [u32; 2] = [6, 7]; // R_X86_64_GLOB_DAT, R_X86_64_JUMP_SLOT
#[cfg(target_arch = "aarch64")]
const GOT_RELOCATIONS: [u32; 2] = [1025, 1026]; // R_AARCH64_GLOB_DAT, R_AARCH64_JUMP_SLOT

/// Points `object`'s GOT entries for the functions in `table` at our hooks. Returns how many
/// entries it changed.
fn bind_object(object: &Object, table: &[(&[u8], usize)]) -> Result<usize, &'static str> {
    let base = object.base;
    let Some(dynamic) = object.phdrs.iter().find(|p| p.p_type == PT_DYNAMIC) else {
        return Ok(0);
    };
    // The loader has relocated the dynamic section's addresses in place on these
    // architectures; an unrelocated one is an offset from the base.
    let at = |v: u64| -> usize {
        let v = v as usize;
        if v < base { base.wrapping_add(v) } else { v }
    };
    let (mut symtab, mut strtab) = (0usize, 0usize);
    let mut tables = [(0usize, 0usize); 2]; // (RELA, size), (JMPREL, size)
    let mut entry = base.wrapping_add(dynamic.p_vaddr as usize) as *const Dyn;
    loop {
        // SAFETY: PT_DYNAMIC names the mapped dynamic section, which ends with DT_NULL.
        let d = unsafe { std::ptr::read_unaligned(entry) };
        match d.tag {
            DT_NULL => break,
            DT_SYMTAB => symtab = at(d.val),
            DT_STRTAB => strtab = at(d.val),
            DT_RELA => tables[0].0 = at(d.val),
            DT_RELASZ => tables[0].1 = d.val as usize,
            DT_JMPREL => tables[1].0 = at(d.val),
            DT_PLTRELSZ => tables[1].1 = d.val as usize,
            _ => {}
        }
        // SAFETY: still inside the dynamic section (DT_NULL not reached yet).
        entry = unsafe { entry.add(1) };
    }
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
            if let Some((_, hook)) = table.iter().find(|(n, _)| *n == name.to_bytes())
                && let Some(slot) = slots.get_mut(found)
            {
                *slot = (base.wrapping_add(r.offset as usize), *hook);
                found += 1;
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
            let start = base.wrapping_add(p.p_vaddr as usize) & !(page - 1);
            let end =
                (base.wrapping_add((p.p_vaddr + p.p_memsz) as usize) + page - 1) & !(page - 1);
            (start, end)
        });
    let in_relro = |a: usize| relro.is_some_and(|(s, e)| a >= s && a < e);
    let unprotect = relro.filter(|_| slots.iter().any(|(a, _)| in_relro(*a)));
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
            return Err("its relocated data cannot be made writable");
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
