//! The library's own thread (the watchdog), started with a `clone` system call of its own
//! rather than `pthread_create`, so that the C library goes on treating a single-threaded host
//! as single-threaded.
//!
//! glibc switches a process to its multi-threaded paths for good at its first
//! `pthread_create`: from then on every `malloc` and `free` takes the arena's lock, stdio
//! takes its stream locks, and each of the host's system calls that is a cancellation point
//! switches asynchronous cancellation on and off around itself; `__libc_single_threaded`
//! reads 0. A single-threaded runtime (Python's) paid that on every call of its own and of its
//! handler: 2,644 instructions per no-op invoke in the Python runtime, more than a fifth of
//! what the library adds. A thread glibc does not know of changes none of it.
//!
//! What glibc does not know of, it does not serve either, and this thread does not ask it to:
//! it runs the library's own code, which allocates nothing and makes its system calls itself
//! ([`crate::sys`]), as every hook path does, and never calls the loader's `__tls_get_addr`
//! (which may grow the thread's table with `realloc`: `crate::process` keeps `catch_unwind`,
//! whose panic count is reached through it, off this thread's path). Nor does glibc carry a
//! change of the process's user or group ids to it (its `setuid` family signals the threads
//! it knows of): a process that can still change them gets a POSIX thread instead (see
//! [`spawn`]).
//!
//! Its thread-local storage is made by the dynamic loader's own `_dl_allocate_tls`, as
//! `pthread_create` makes a thread's: a static TLS block with every object's initial values
//! and a DTV of its own, so a thread-local variable of the initial-exec model (the gate's frame
//! canary, `errno` of a C library call) is this thread's. The thread control block's words
//! that code reads through the thread pointer are set as glibc sets them (x86_64: the block's
//! own address at 0 and 16, the stack and pointer guards copied from the creating thread at
//! 0x28 and 0x30; aarch64 keeps both guards in globals). The thread is never ended, joined or
//! freed: it sleeps for good when the library turns off. A panic on it does not unwind (that
//! would take the loader's locks and `malloc` behind glibc's back): the library's panic hook
//! turns the library off there and parks the thread (see `crate::process`).
//!
//! Where any part is missing (the loader's two functions, memory), or the process can change
//! its ids, [`spawn`] says so and the caller starts a plain POSIX thread instead.

use crate::sys;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The started thread's key (what [`crate::custom::thread_key`] gives on it), or 0.
static OWN_KEY: AtomicUsize = AtomicUsize::new(0);

/// Room under the thread pointer on aarch64 for glibc's thread descriptor (`struct pthread`,
/// about 1.8 KiB), which code may address relative to it; above it on x86_64, where the
/// descriptor starts at the thread pointer.
const DESCRIPTOR_ROOM: usize = 8 * 1024;

/// Whether the calling thread is the one [`spawn`] started.
pub fn is_own_thread() -> bool {
    let key = OWN_KEY.load(Ordering::Relaxed);
    key != 0 && key as u64 == crate::custom::thread_key()
}

/// The loader's functions that make a thread's TLS, looked up once per start.
struct Loader {
    /// `void _dl_get_tls_static_info(size_t *size, size_t *align)`.
    static_info: unsafe extern "C" fn(*mut usize, *mut usize),
    /// `void *_dl_allocate_tls(void *tcb)`: the static TLS around `tcb` initialised and a DTV
    /// (from `calloc`) installed; `tcb` back, or null.
    allocate: unsafe extern "C" fn(*mut libc::c_void) -> *mut libc::c_void,
}

fn loader() -> Option<Loader> {
    // SAFETY: dlsym with NUL-terminated names, at reservation (no hook path); the two
    // functions have these types in every glibc since 2.3 (libpthread and sanitizers call
    // them so).
    unsafe {
        let info = libc::dlsym(libc::RTLD_DEFAULT, c"_dl_get_tls_static_info".as_ptr());
        let allocate = libc::dlsym(libc::RTLD_DEFAULT, c"_dl_allocate_tls".as_ptr());
        if info.is_null() || allocate.is_null() {
            return None;
        }
        Some(Loader {
            static_info: std::mem::transmute::<
                *mut libc::c_void,
                unsafe extern "C" fn(*mut usize, *mut usize),
            >(info),
            allocate: std::mem::transmute::<
                *mut libc::c_void,
                unsafe extern "C" fn(*mut libc::c_void) -> *mut libc::c_void,
            >(allocate),
        })
    }
}

/// Starts `entry(arg)` on a new thread with a stack of `stack` bytes (rounded up to pages),
/// every signal blocked as the caller's are (the caller blocks them). Whether it started.
pub fn spawn(entry: extern "C" fn(usize), arg: usize, stack: usize) -> bool {
    if may_change_credentials() {
        return false;
    }
    let Some(loader) = loader() else {
        return false;
    };
    let (mut tls_size, mut tls_align) = (0usize, 0usize);
    // SAFETY: the loader writes the two words.
    unsafe { (loader.static_info)(&mut tls_size, &mut tls_align) };
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let align = tls_align.max(64);
    if !page.is_power_of_two() || !align.is_power_of_two() || tls_size > 16 << 20 {
        return false;
    }
    let round = |n: usize| n.div_ceil(page).saturating_mul(page);
    // One mapping: a guard page, the stack (growing down to the guard), then the TLS area.
    let stack = round(stack);
    let tls_area = round(tls_size + DESCRIPTOR_ROOM + align);
    let len = page + stack + tls_area;
    let Ok(base) = sys::map_anonymous(len) else {
        return false;
    };
    let _ = sys::protect_none(base, page);
    let stack_top = base + page + stack;
    // x86_64 (TLS blocks below the thread pointer, the descriptor above it); aarch64 (the
    // descriptor below, a 16-byte TCB and then the blocks above).
    #[cfg(target_arch = "x86_64")]
    let tp = (base + len - DESCRIPTOR_ROOM) & !(align - 1);
    #[cfg(target_arch = "aarch64")]
    let tp = (stack_top + DESCRIPTOR_ROOM).next_multiple_of(align);
    // SAFETY: `tp` has the room the loader writes around it (its static TLS size on the side
    // the blocks are, inside the fresh mapping); it writes only there and its DTV.
    let made = unsafe { (loader.allocate)(tp as *mut libc::c_void) };
    if made.is_null() {
        sys::unmap(base as *mut u8, len);
        return false;
    }
    set_control_block(tp);
    // The calls the running glibc's pthread_create makes: from 2.34 `clone3`, and `clone` only
    // where the kernel (or an emulator) has no `clone3`; before, `clone`. A seccomp profile
    // that lets the host start threads lets this one start too; one that does not refuses it
    // the same way.
    let args = CloneArgs {
        flags: CLONE_FLAGS as u64,
        pidfd: 0,
        child_tid: OWN_TID.as_ptr() as u64,
        parent_tid: OWN_TID.as_ptr() as u64,
        exit_signal: 0,
        stack: (base + page) as u64,
        stack_size: stack as u64,
        tls: tp as u64,
    };
    let mut tid = if glibc_at_least(2, 34) {
        // SAFETY: the stack and TLS area are this fresh mapping's, used by nothing else; the
        // flags make a thread of this process sharing everything, as pthread_create's do;
        // `entry` never returns into the trampoline's caller (the new thread ends with its own
        // `exit`).
        unsafe { lm_clone3_thread(&args, std::mem::size_of::<CloneArgs>(), entry as usize, arg) }
    } else {
        -(libc::ENOSYS as isize)
    };
    if tid == -(libc::ENOSYS as isize) {
        // SAFETY: as for `clone3`.
        tid = unsafe {
            lm_clone_thread(
                CLONE_FLAGS,
                stack_top,
                tp,
                OWN_TID.as_ptr() as usize,
                entry as usize,
                arg,
            )
        };
    }
    if tid <= 0 {
        // The loader's DTV (a small block of calloc) is left behind with the mapping.
        sys::unmap(base as *mut u8, len);
        return false;
    }
    true
}

/// Whether a thread of this process could still change its user or group ids: root,
/// `CAP_SETUID` or `CAP_SETGID` permitted, or real, effective and saved ids that differ. A credential change is
/// the calling thread's alone in the kernel; glibc's `setuid` family carries it to every thread
/// it knows of, which this one is not. A process that can change them gets a POSIX thread, so
/// that the watchdog never keeps ids the host gave up. A Lambda runtime runs as an
/// unprivileged user with no capability: this thread (as does one with capabilities that do
/// not change ids, such as `CAP_NET_BIND_SERVICE` in a container).
fn may_change_credentials() -> bool {
    let same = |ids: Result<[u32; 3], i32>| ids.ok().filter(|[r, e, s]| r == e && e == s);
    match (same(sys::resids(true)), same(sys::resids(false))) {
        (Some([uid, _, _]), Some(_)) => uid == 0 || sys::may_set_ids_by_capability() != Ok(false),
        _ => true,
    }
}

/// Whether the running C library is glibc `major.minor` or later.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
    let version = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    let mut parts = version.to_bytes().split(|b| *b == b'.').map(|p| {
        std::str::from_utf8(p)
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
    });
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

/// On the new thread, first: notes its key (see [`is_own_thread`]).
pub fn started() {
    OWN_KEY.store(crate::custom::thread_key() as usize, Ordering::Relaxed);
}

/// pthread_create's flags, all of them (a seccomp profile may allow `clone` with exactly
/// these): the thread id is written to [`OWN_TID`] by the kernel at the start, and cleared
/// there if the thread ever ended.
const CLONE_FLAGS: usize = (libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM
    | libc::CLONE_SETTLS
    | libc::CLONE_PARENT_SETTID
    | libc::CLONE_CHILD_CLEARTID) as usize;

/// The thread's id, as the kernel writes it (see [`CLONE_FLAGS`]).
static OWN_TID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The kernel's `struct clone_args`, its first version (64 bytes).
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    /// The stack's lowest address; the new thread starts at `stack + stack_size`.
    stack: u64,
    stack_size: u64,
    tls: u64,
}

unsafe extern "C" {
    /// `clone3(args, size)`; on the new thread, `entry(arg)` and then `exit(0)` (of the
    /// thread). The new thread's id, or `-errno`.
    fn lm_clone3_thread(args: *const CloneArgs, size: usize, entry: usize, arg: usize) -> isize;
    /// `clone(flags, stack, tls)` with `tid` as both thread-id words, as [`lm_clone3_thread`].
    fn lm_clone_thread(
        flags: usize,
        stack: usize,
        tls: usize,
        tid: usize,
        entry: usize,
        arg: usize,
    ) -> isize;
}

/// The words of the new thread's control block that code reads through the thread pointer.
#[cfg(target_arch = "x86_64")]
fn set_control_block(tp: usize) {
    let (stack_guard, pointer_guard): (usize, usize);
    // SAFETY: reads two words of this thread's own control block (the ABI's stack-protector
    // canary at %fs:0x28, glibc's pointer guard at %fs:0x30).
    unsafe {
        core::arch::asm!("mov {}, fs:0x28", out(reg) stack_guard, options(nostack, readonly));
        core::arch::asm!("mov {}, fs:0x30", out(reg) pointer_guard, options(nostack, readonly));
    }
    let block = tp as *mut usize;
    // SAFETY: `tp` is in the fresh mapping with DESCRIPTOR_ROOM bytes above it, nothing else
    // uses it yet; word 1 (the DTV) is the loader's and is left alone.
    unsafe {
        block.write(tp);
        block.add(2).write(tp);
        block.add(5).write(stack_guard);
        block.add(6).write(pointer_guard);
    }
}

/// aarch64: the TCB holds the DTV (the loader's) and a word glibc leaves 0; the guards are
/// globals.
#[cfg(target_arch = "aarch64")]
fn set_control_block(_tp: usize) {}

#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".pushsection .text.lm_clone_thread,\"ax\",@progbits",
    ".p2align 4",
    ".hidden lm_clone_thread",
    ".globl lm_clone_thread",
    ".type lm_clone_thread,@function",
    ".hidden lm_clone3_thread",
    ".globl lm_clone3_thread",
    ".type lm_clone3_thread,@function",
    // clone: rdi flags, rsi stack, rdx tls, rcx tid, r8 entry, r9 arg.
    "lm_clone_thread:",
    "push r12",
    "push r13",
    "mov r12, r8",
    "mov r13, r9",
    "mov r8, rdx", // clone(flags, stack, parent_tid, child_tid, tls)
    "mov rdx, rcx",
    "mov r10, rcx",
    "mov eax, 56",
    "jmp 3f",
    // clone3: rdi args, rsi size, rdx entry, rcx arg.
    "lm_clone3_thread:",
    "push r12",
    "push r13",
    "mov r12, rdx",
    "mov r13, rcx",
    "mov eax, 435",
    // The system call keeps every register but rax, rcx and r11: entry and arg cross it in
    // r12 and r13 (saved above, restored on the caller's side only: the new thread never
    // returns).
    "3:",
    "syscall",
    "test rax, rax",
    "jz 2f",
    "pop r13",
    "pop r12",
    "ret",
    "2:",
    "xor ebp, ebp",
    "and rsp, -16",
    "mov rdi, r13",
    "call r12",
    "mov eax, 60", // exit: this thread only
    "xor edi, edi",
    "syscall",
    "ud2",
    ".size lm_clone_thread, .-lm_clone_thread",
    ".size lm_clone3_thread, .-lm_clone3_thread",
    ".popsection",
);

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".pushsection .text.lm_clone_thread,\"ax\",@progbits",
    ".p2align 4",
    ".hidden lm_clone_thread",
    ".globl lm_clone_thread",
    ".type lm_clone_thread,@function",
    ".hidden lm_clone3_thread",
    ".globl lm_clone3_thread",
    ".type lm_clone3_thread,@function",
    // clone: x0 flags, x1 stack, x2 tls, x3 tid, x4 entry, x5 arg.
    "lm_clone_thread:",
    "mov x9, x4",
    "mov x10, x5",
    "mov x4, x3", // clone(flags, stack, parent_tid, tls, child_tid)
    "mov x11, x2",
    "mov x2, x3",
    "mov x3, x11",
    "mov x8, #220",
    "b 3f",
    // clone3: x0 args, x1 size, x2 entry, x3 arg.
    "lm_clone3_thread:",
    "mov x9, x2",
    "mov x10, x3",
    "mov x8, #435",
    // The system call keeps every register but x0: entry and arg cross it in x9 and x10.
    "3:",
    "svc #0",
    "cbz x0, 2f",
    "ret",
    "2:",
    "mov x29, xzr",
    "mov x30, xzr",
    "mov x0, x10",
    "blr x9",
    "mov x0, xzr",
    "mov x8, #93", // exit: this thread only
    "svc #0",
    "brk #0",
    ".size lm_clone_thread, .-lm_clone_thread",
    ".size lm_clone3_thread, .-lm_clone3_thread",
    ".popsection",
);
