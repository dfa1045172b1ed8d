//! The loaded objects' own tables, read in place: what `dl_iterate_phdr` lists, their dynamic
//! sections, their GNU hash tables. For following `RTLD_DEEPBIND` loads ([`crate::deepbind`])
//! and for finding the real functions at load without `dlsym` ([`next_definition`]). Nothing
//! here allocates or takes a lock of its own; `dl_iterate_phdr` takes the loader's.

use libc::{c_int, c_void};
use std::ffi::CStr;

/// One loaded object, as `dl_iterate_phdr` describes it.
pub struct Object<'a> {
    pub base: usize,
    pub name: &'a CStr,
    pub phdrs: &'a [libc::Elf64_Phdr],
}

impl Object<'_> {
    /// Whether `address` lies in one of the object's loaded segments.
    pub fn contains(&self, address: usize) -> bool {
        self.phdrs.iter().any(|p| {
            let start = self.base.wrapping_add(p.p_vaddr as usize);
            p.p_type == libc::PT_LOAD && (start..start + p.p_memsz as usize).contains(&address)
        })
    }
}

/// Calls `f` with every object loaded now (inside `dl_iterate_phdr`), in the loader's order:
/// the program, then the objects in the order they were loaded (the preloaded ones first).
pub fn each_object(f: &mut dyn FnMut(&Object)) {
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

/// What an object's dynamic section says (relocated addresses; 0: absent).
#[derive(Clone, Copy, Default)]
pub struct DynInfo {
    pub symbols: Symbols,
    /// (RELA, size), (JMPREL, size)
    pub tables: [(usize, usize); 2],
    /// It names an auditing module (`DT_AUDIT`, `DT_DEPAUDIT`): the loader's lookups may be
    /// rebound by it.
    pub audit: bool,
}

/// An object's dynamic symbols: where its tables are (relocated addresses; 0: absent).
#[derive(Clone, Copy, Default)]
pub struct Symbols {
    pub symtab: usize,
    pub strtab: usize,
    pub gnu_hash: usize,
    /// `DT_HASH`: the older hash table, which some objects have instead.
    pub sysv_hash: usize,
    pub versym: usize,
}

impl DynInfo {
    pub fn of(object: &Object) -> Option<DynInfo> {
        let base = object.base;
        let dynamic = object.phdrs.iter().find(|p| p.p_type == PT_DYNAMIC)?;
        // The loader has relocated the dynamic section's addresses in place on these
        // architectures; an unrelocated one (the vDSO's) is an offset from the base.
        let at = |v: u64| -> usize {
            let v = v as usize;
            if v < base { base.wrapping_add(v) } else { v }
        };
        let mut d = DynInfo::default();
        let mut entry = base.wrapping_add(dynamic.p_vaddr as usize) as *const Dyn;
        loop {
            // SAFETY: PT_DYNAMIC names the mapped dynamic section, which ends with DT_NULL.
            let e = unsafe { std::ptr::read_unaligned(entry) };
            match e.tag {
                DT_NULL => break,
                DT_HASH => d.symbols.sysv_hash = at(e.val),
                DT_SYMTAB => d.symbols.symtab = at(e.val),
                DT_STRTAB => d.symbols.strtab = at(e.val),
                DT_GNU_HASH => d.symbols.gnu_hash = at(e.val),
                DT_VERSYM => d.symbols.versym = at(e.val),
                DT_RELA => d.tables[0].0 = at(e.val),
                DT_RELASZ => d.tables[0].1 = e.val as usize,
                DT_JMPREL => d.tables[1].0 = at(e.val),
                DT_PLTRELSZ => d.tables[1].1 = e.val as usize,
                DT_AUDIT | DT_DEPAUDIT => d.audit = true,
                _ => {}
            }
            // SAFETY: still inside the dynamic section (DT_NULL not reached yet).
            entry = unsafe { entry.add(1) };
        }
        Some(d)
    }
}

impl Symbols {
    /// Calls `f` with the index and entry of each symbol of the object's GNU hash table whose
    /// name is `name` (hash `hash`, see [`gnu_hash`]), until it returns false. False when the
    /// object has no GNU hash table to read.
    pub fn each_named(
        &self,
        name: &[u8],
        hash: u32,
        f: &mut dyn FnMut(usize, &Sym) -> bool,
    ) -> bool {
        if self.symtab == 0 || self.strtab == 0 || self.gnu_hash == 0 {
            return false;
        }
        let table = self.gnu_hash as *const u32;
        // SAFETY: DT_GNU_HASH names the mapped table: nbuckets, symoffset, bloom size, bloom
        // shift, the bloom words (8 bytes each on ELF64), the buckets, then the chains; each
        // chain ends with an odd value, and its indexes are those of the symbol table.
        unsafe {
            let nbuckets = table.read_unaligned();
            let symoffset = table.add(1).read_unaligned();
            let bloom_size = table.add(2).read_unaligned() as usize;
            let bloom_shift = table.add(3).read_unaligned();
            if nbuckets == 0 || bloom_size == 0 {
                return true;
            }
            // The bloom filter: two bits of the hash, both set when the name may be here.
            let word = (table.add(4) as *const u64)
                .add((hash as usize / 64) % bloom_size)
                .read_unaligned();
            let bits = (1u64 << (hash % 64)) | (1u64 << ((hash >> (bloom_shift % 32)) % 64));
            if word & bits != bits {
                return true;
            }
            let buckets = table.add(4 + 2 * bloom_size);
            let chains = buckets.add(nbuckets as usize);
            let mut i = buckets.add((hash % nbuckets) as usize).read_unaligned();
            if i < symoffset {
                return true;
            }
            loop {
                let chain = chains.add((i - symoffset) as usize).read_unaligned();
                if chain | 1 == hash | 1 {
                    let sym = std::ptr::read_unaligned((self.symtab as *const Sym).add(i as usize));
                    let sym_name = (self.strtab + sym.name as usize) as *const u8;
                    if same_name(sym_name, name) && !f(i as usize, &sym) {
                        return true;
                    }
                }
                if chain & 1 != 0 {
                    return true;
                }
                i += 1;
            }
        }
    }

    /// The version index of symbol `index` (`VERSYM`), with its hidden bit; `None` without
    /// version information.
    fn version_of(&self, index: usize) -> Option<u16> {
        // SAFETY: DT_VERSYM names one 16-bit entry per dynamic symbol; `index` is one.
        (self.versym != 0)
            .then(|| unsafe { std::ptr::read_unaligned((self.versym as *const u16).add(index)) })
    }
}

/// Whether the NUL-terminated string at `at` is `name`, compared a byte at a time (libc's
/// `strlen` and `memcmp` are pages of code the constructor would fault in for a process that
/// does not call them itself; the names are short).
///
/// # Safety
/// `at` points to a NUL-terminated string.
unsafe fn same_name(at: *const u8, name: &[u8]) -> bool {
    for (i, b) in name.iter().enumerate() {
        // SAFETY: every byte up to the string's NUL is readable; a mismatch (the NUL at the
        // latest, as `name` holds none) ends the loop there.
        if unsafe { *at.add(i) } != *b {
            return false;
        }
    }
    // SAFETY: all of `name` matched, so the string is at least as long: its next byte is
    // readable.
    unsafe { *at.add(name.len()) == 0 }
}

/// The GNU hash of a symbol name.
pub fn gnu_hash(name: &[u8]) -> u32 {
    name.iter().fold(5381u32, |h, c| {
        h.wrapping_mul(33).wrapping_add(u32::from(*c))
    })
}

/// Whether `object` defines (exports) the symbol `name`, from its GNU hash table; `None` when
/// it has none to read (an object without dynamic symbols defines nothing).
pub fn defines(object: &Object, name: &[u8]) -> Option<bool> {
    let Some(DynInfo { symbols: d, .. }) = DynInfo::of(object) else {
        return Some(false);
    };
    if d.symtab == 0 {
        return Some(false);
    }
    let mut found = false;
    if !d.each_named(name, gnu_hash(name), &mut |_, sym| {
        found = sym.shndx != 0;
        false
    }) {
        return None;
    }
    Some(found)
}

/// What one object says of a name looked up as `dlsym(RTLD_NEXT, name)` looks it up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Definition {
    /// Defined here, at this address.
    At(usize),
    /// Not defined here: the lookup goes on to the next object.
    Absent,
    /// Defined in a way this reading does not follow (only the older hash table, an indirect
    /// function, thread-local storage, several versions, a unique symbol): the loader's own
    /// lookup must answer.
    Unsure,
}

/// How `dlsym` (the loader's `do_lookup_x` and `check_match`, for a lookup without a
/// version, which asks for the newest) finds `name` in the object at `base` whose symbols are
/// `d`: the first defined symbol of a code or data type, global or weak, of no version (or
/// the base one); else the only one of a version that is not hidden, whatever hidden ones
/// there are (libc's `dlopen@@GLIBC_2.34` beside its hidden `dlopen@GLIBC_2.2.5`). Anything
/// else it might decide otherwise is [`Definition::Unsure`].
pub fn definition(base: usize, d: &Symbols, name: &[u8], hash: u32) -> Definition {
    if d.symtab == 0 || d.strtab == 0 {
        return Definition::Absent;
    }
    if d.gnu_hash == 0 {
        return if d.sysv_hash == 0 {
            Definition::Absent
        } else {
            Definition::Unsure
        };
    }
    let mut plain: Option<Sym> = None;
    let mut versioned: Option<Sym> = None;
    let (mut versions, mut hidden) = (0u32, false);
    let mut unsure = false;
    d.each_named(name, hash, &mut |index, sym| {
        let kind = sym.info & 0xf;
        let bind = sym.info >> 4;
        if sym.value == 0 && sym.shndx != SHN_ABS && kind != STT_TLS {
            return true; // no value: not a definition
        }
        if (1u32 << kind) & ALLOWED_KINDS == 0 {
            return true;
        }
        if kind == STT_TLS || kind == STT_GNU_IFUNC || bind == STB_GNU_UNIQUE {
            // A symbol the loader treats apart.
            unsure = true;
            return false;
        }
        match d.version_of(index) {
            // Of a version of its own: the loader goes on looking, and takes it only if it is
            // the one such that is not hidden.
            Some(v) if v & 0x7fff >= 2 => {
                if v & 0x8000 != 0 {
                    hidden = true;
                } else {
                    versions += 1;
                    versioned = versioned.or(Some(*sym));
                }
                true
            }
            // Of no version: the loader takes the first.
            _ => {
                plain = Some(*sym);
                false
            }
        }
    });
    if unsure {
        return Definition::Unsure;
    }
    let chosen = match (plain, versions) {
        (Some(sym), _) => sym,
        (None, 1) => match versioned {
            Some(sym) => sym,
            None => return Definition::Unsure,
        },
        // Several versions (the loader takes none of them), or hidden ones only: its call.
        (None, 0) if !hidden => return Definition::Absent,
        (None, _) => return Definition::Unsure,
    };
    let bind = chosen.info >> 4;
    if bind != STB_GLOBAL && bind != STB_WEAK {
        // A local one: the loader would pass over it, which this reading does not follow.
        return Definition::Unsure;
    }
    if chosen.shndx == SHN_ABS {
        Definition::At(chosen.value as usize)
    } else {
        Definition::At(base.wrapping_add(chosen.value as usize))
    }
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
pub struct Rela {
    pub offset: u64,
    pub info: u64,
    pub addend: i64,
}

/// `Elf64_Sym`: one symbol table entry.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Sym {
    pub name: u32,
    pub info: u8,
    pub other: u8,
    pub shndx: u16,
    pub value: u64,
    pub size: u64,
}

// Dynamic section tags, program header types, symbol types and bindings (ELF64).
const DT_NULL: i64 = 0;
const DT_PLTRELSZ: i64 = 2;
const DT_HASH: i64 = 4;
const DT_STRTAB: i64 = 5;
const DT_SYMTAB: i64 = 6;
const DT_RELA: i64 = 7;
const DT_RELASZ: i64 = 8;
const DT_JMPREL: i64 = 23;
const DT_GNU_HASH: i64 = 0x6fff_fef5;
const DT_VERSYM: i64 = 0x6fff_fff0;
const DT_DEPAUDIT: i64 = 0x6fff_fefb;
const DT_AUDIT: i64 = 0x6fff_fefc;
const PT_DYNAMIC: u32 = 2;
pub const PT_GNU_RELRO: u32 = 0x6474_e552;
const SHN_ABS: u16 = 0xfff1;
const STT_TLS: u8 = 6;
const STT_GNU_IFUNC: u8 = 10;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;
const STB_GNU_UNIQUE: u8 = 10;
/// The symbol types the loader takes for definitions: no type, object, function, common,
/// thread-local, indirect function.
const ALLOWED_KINDS: u32 = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 5) | (1 << 6) | (1 << 10);
