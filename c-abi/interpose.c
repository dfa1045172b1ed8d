/*
 * The interposers stable Rust cannot write: the variadic fcntl, fcntl64 and syscall, and the
 * first instructions of dlopen and dlsym. Everything else is in src/glue/hooks.rs. Also the
 * one thread-local variable of the library's own (stable Rust cannot choose its TLS model).
 *
 * Each one calls the real function with the host's arguments and returns its result and errno
 * untouched; only when a tracked fd is involved does it tell the Rust side (the callbacks).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lambda_meter.h"

/* The Rust side's callbacks (src/glue/hooks.rs), handed over by its constructor. */
struct lm_callbacks {
    int (*fd_is_tracked)(int fd);
    int (*is_active)(void);
    void (*fd_closing)(int fd);
    void (*fds_closing)(unsigned int first, unsigned int last);
    void (*fd_duplicated)(int old_fd, int new_fd);
    /* The tracked fd under a stream of ours (after the pre-write work), or -1. */
    int (*stream_writing)(FILE *stream);
    /* The host handed `len` bytes at `data` to the stream on `fd`. */
    void (*stream_wrote)(int fd, const void *data, size_t len);
    int (*in_this_library)(const void *p);
    /* After a raw rt_sigaction(sig, act, old) succeeded: translates `old`, settles the
     * library's crash handlers (src/glue/signals.rs). Keeps errno. */
    void (*raw_sigaction_done)(int sig, int changed, void *old);
    /* After a raw close, close_range, dup2 or dup3 that changed what fd 1 or 2 is: the next
     * record there looks again whether it is still the runtime's stdout or stderr. */
    void (*log_fd_changed)(int fd);
    /* The real `name`: dlsym(RTLD_NEXT, name) less this library's own definitions; at load,
     * from the loaded objects' tables (src/glue/real.rs). Null when there is none. */
    void *(*lookup)(const char *name);
};

static const struct lm_callbacks *callbacks;

typedef int (*fcntl_fn)(int, int, ...);
typedef long (*syscall_fn)(long, ...);

typedef int (*vfprintf_fn)(FILE *, const char *, va_list);
typedef int (*vfprintf_chk_fn)(FILE *, int, const char *, va_list);
static vfprintf_fn real_vfprintf;
static vfprintf_chk_fn real_vfprintf_chk;
/* The real functions of the hooks src/glue/table.rs marks `deep`, read by src/glue/deepbind.rs
 * (hidden: never exported). */
__attribute__((visibility("hidden"))) fcntl_fn lm_real_fcntl;
__attribute__((visibility("hidden"))) fcntl_fn lm_real_fcntl64;
__attribute__((visibility("hidden"))) syscall_fn lm_real_syscall;

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static const struct lm_callbacks *cbs(void);

/* Resolves a real symbol; a definition inside this library is refused (it would recurse). The
 * Rust side's lookup once the constructor installed it; before that (a call from another
 * library's constructor), dlsym and dladdr. */
static void *resolve(const char *name) {
    const struct lm_callbacks *cb = cbs();
    if (cb)
        return cb->lookup(name);
    void *p = dlsym(RTLD_NEXT, name);
    if (!p)
        return NULL;
    Dl_info mine, theirs;
    if (dladdr((void *)resolve, &mine) && dladdr(p, &theirs) &&
        mine.dli_fbase == theirs.dli_fbase)
        return NULL;
    return p;
}

/* The real dlopen, for the assembly below (hidden: never exported, reached PC-relative). */
__attribute__((visibility("hidden"))) void *lm_real_dlopen;

__attribute__((visibility("hidden"))) void *lm_resolve_dlsym(void);

/* Called once by the Rust constructor, through real::resolve_all, which says whether this
 * glibc has fcntl64 (2.28 and later). Not exported. The real dlsym is found on its first call
 * (lm_resolve_dlsym). */
void lm_c_resolve_all(int fcntl64);
void lm_c_resolve_all(int fcntl64) {
    __atomic_store_n(&lm_real_dlopen, resolve("dlopen"), __ATOMIC_RELEASE);
    __atomic_store_n(&lm_real_syscall, (syscall_fn)resolve("syscall"), __ATOMIC_RELEASE);
    __atomic_store_n(&real_vfprintf, (vfprintf_fn)resolve("vfprintf"), __ATOMIC_RELEASE);
    __atomic_store_n(&real_vfprintf_chk, (vfprintf_chk_fn)resolve("__vfprintf_chk"), __ATOMIC_RELEASE);
    __atomic_store_n(&lm_real_fcntl, (fcntl_fn)resolve("fcntl"), __ATOMIC_RELEASE);
    if (fcntl64)
        __atomic_store_n(&lm_real_fcntl64, (fcntl_fn)resolve("fcntl64"), __ATOMIC_RELEASE);
}

/* Called once by the Rust constructor, before it does anything else. Not exported. */
void lm_c_install(const struct lm_callbacks *cb) {
    __atomic_store_n(&callbacks, cb, __ATOMIC_RELEASE);
}

static const struct lm_callbacks *cbs(void) {
    return __atomic_load_n(&callbacks, __ATOMIC_ACQUIRE);
}

static int fd_is_tracked(int fd) {
    const struct lm_callbacks *cb = cbs();
    return cb && cb->fd_is_tracked(fd);
}

static int is_active(void) {
    const struct lm_callbacks *cb = cbs();
    return cb && cb->is_active();
}

/* syscall() before the constructor ran (another library's constructor): resolve now. This is
 * the one lazy dlsym; syscall is resolved first in the constructor, so it is rare. */
static syscall_fn get_syscall(void) {
    syscall_fn f = __atomic_load_n(&lm_real_syscall, __ATOMIC_ACQUIRE);
    if (!f) {
        f = (syscall_fn)resolve("syscall");
        __atomic_store_n(&lm_real_syscall, f, __ATOMIC_RELEASE);
    }
    return f;
}

static int is_dup_cmd(int cmd) {
    return cmd == F_DUPFD
#ifdef F_DUPFD_CLOEXEC
           || cmd == F_DUPFD_CLOEXEC
#endif
        ;
}

/* The real fcntl or fcntl64, resolved now if a call arrives before the constructor (from
 * another library's constructor). dlsym never calls fcntl, so this cannot recurse. */
static fcntl_fn get_fcntl(fcntl_fn *slot, const char *name) {
    fcntl_fn f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!f) {
        f = (fcntl_fn)resolve(name);
        __atomic_store_n(slot, f, __ATOMIC_RELEASE);
    }
    return f;
}

static int fcntl_common(fcntl_fn real, int fd, int cmd, void *arg) {
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    int rc = real(fd, cmd, arg);
    if (rc >= 0 && is_dup_cmd(cmd) && fd_is_tracked(fd)) {
        int saved = errno;
        cbs()->fd_duplicated(fd, rc);
        errno = saved;
    }
    return rc;
}

/* The third argument is an int, a long or a pointer depending on cmd; on the ABIs we support
 * (x86_64, aarch64) all are passed in one register, so reading it as a pointer forwards it
 * unchanged, as glibc's own fcntl does. */
int fcntl(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(get_fcntl(&lm_real_fcntl, "fcntl"), fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    /* fcntl64 exists from glibc 2.28; before that, fcntl is the same call. */
    fcntl_fn real = get_fcntl(&lm_real_fcntl64, "fcntl64");
    return fcntl_common(real ? real : get_fcntl(&lm_real_fcntl, "fcntl"), fd, cmd, arg);
}

/* fds first to last (unsigned, as close_range takes them) changed: stdout and stderr among
 * them are looked at again by the next record (src/glue/output.rs). Keeps errno. */
static void log_fds_changed(long first, long last) {
    const struct lm_callbacks *cb = cbs();
    if (!cb || (unsigned long)first > 2)
        return;
    int saved = errno;
    for (unsigned long fd = 1; fd <= 2; fd++)
        if ((unsigned long)first <= fd && fd <= (unsigned long)last)
            cb->log_fd_changed((int)fd);
    errno = saved;
}

long syscall(long number, ...) {
    va_list ap;
    va_start(ap, number);
    long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
    long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
    va_end(ap);
    syscall_fn real = get_syscall();
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    /* Fast path: only fd-lifetime calls and signal actions can concern us. */
    switch (number) {
    case SYS_close: {
        if (fd_is_tracked((int)a1)) {
            int saved = errno;
            cbs()->fd_closing((int)a1);
            errno = saved;
        }
        long rc = real(number, a1, a2, a3, a4, a5, a6);
        log_fds_changed(a1, a1);
        return rc;
    }
#ifdef SYS_close_range
    case SYS_close_range: {
        if (is_active() && !((unsigned long)a3 & CLOSE_RANGE_CLOEXEC)) {
            int saved = errno;
            cbs()->fds_closing((unsigned int)a1, (unsigned int)a2);
            errno = saved;
        }
        long rc = real(number, a1, a2, a3, a4, a5, a6);
        if (!((unsigned long)a3 & CLOSE_RANGE_CLOEXEC))
            log_fds_changed(a1, a2);
        return rc;
    }
#endif
    case SYS_dup:
#ifdef SYS_dup2
    case SYS_dup2:
#endif
    case SYS_dup3: {
        long rc = real(number, a1, a2, a3, a4, a5, a6);
        int new_fd = number == SYS_dup ? (int)rc : (int)a2;
        if (rc >= 0 && (fd_is_tracked((int)a1) || (number != SYS_dup && fd_is_tracked(new_fd)))) {
            int saved = errno;
            cbs()->fd_duplicated((int)a1, new_fd);
            errno = saved;
        }
        if (rc >= 0 && number != SYS_dup)
            log_fds_changed(new_fd, new_fd);
        return rc;
    }
    case SYS_rt_sigaction: {
        long rc = real(number, a1, a2, a3, a4, a5, a6);
        const struct lm_callbacks *cb = cbs();
        if (rc == 0 && cb) {
            int saved = errno;
            cb->raw_sigaction_done((int)a1, a2 != 0, (void *)a3);
            errno = saved;
        }
        return rc;
    }
    default:
        return real(number, a1, a2, a3, a4, a5, a6);
    }
}

/*
 * dlopen and dlsym. glibc's dlopen looks at its caller's address: a bare name is searched in
 * the calling object's RUNPATH, $ORIGIN means the caller's directory, and the caller's link
 * namespace is the one loaded into; dlsym(RTLD_NEXT, …) searches after the caller. So neither
 * hook may be a function that calls the real one (the caller would be us): these instructions
 * jump to the real function with the host's return address untouched, in every process and
 * for every mode. An RTLD_DEEPBIND load, whose libc calls would bypass every hook, only sets
 * lm_deep_pending first; the next hook the process calls once the load is complete binds the
 * new objects' libc calls to our hooks (src/glue/deepbind.rs). dlsym is where that happens
 * for a program that calls nothing else first (PHP looks up an extension's get_module right
 * after loading it, before its first call into libcurl): when a load is pending, it calls
 * lm_deep_poll with the host's arguments saved, then jumps. A call that arrives before the
 * constructor resolved the real function (from another library's constructor) resolves it
 * first, with the arguments saved, and jumps the same way.
 */

/* The real dlsym (hidden, like lm_real_dlopen). */
__attribute__((visibility("hidden"))) void *lm_real_dlsym;

/* Set by the dlopen hook for an RTLD_DEEPBIND load (see above), to LM_DEEP_PENDING: above
 * every fd the hooks track, so that their fast paths fold the flag into an fd range check
 * (deepbind::PENDING on the Rust side). */
#define LM_DEEP_PENDING "0x10000"
__attribute__((visibility("hidden"))) unsigned lm_deep_pending;

/* The real dlsym, found without calling dlsym (our own calls reach the hook). Its default
 * version moved from libdl to libc in glibc 2.34, which keeps the old version as an alias. */
__attribute__((visibility("hidden"))) void *lm_resolve_dlsym(void) {
    void *real = __atomic_load_n(&lm_real_dlsym, __ATOMIC_ACQUIRE);
    if (real)
        return real;
#if defined(__x86_64__)
    real = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
#else
    real = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.17");
#endif
    if (!real)
        real = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
    __atomic_store_n(&lm_real_dlsym, real, __ATOMIC_RELEASE);
    return real;
}

/* The real dlopen, resolved now if the constructor has not run yet. */
__attribute__((visibility("hidden"))) void *lm_resolve_dlopen(void) {
    void *real = __atomic_load_n(&lm_real_dlopen, __ATOMIC_ACQUIRE);
    if (!real) {
        real = resolve("dlopen");
        __atomic_store_n(&lm_real_dlopen, real, __ATOMIC_RELEASE);
    }
    return real;
}

/* Saves the argument registers, calls a hidden function taking none, restores them. */
#if defined(__x86_64__)
#define LM_CALL_SAVED(fn)                                                                       \
    "    pushq %rdi\n"                                                                          \
    "    pushq %rsi\n"                                                                          \
    "    pushq %rdx\n" /* three pushes after the call's: the stack is 16-byte aligned */       \
    "    call " fn "\n"                                                                         \
    "    popq %rdx\n"                                                                           \
    "    popq %rsi\n"                                                                           \
    "    popq %rdi\n"
/* In a section of their own, named like a function's (-ffunction-sections), so that
 * link/hot-functions.txt can place them. */
__asm__(".pushsection .text.dlsym,\"ax\",@progbits\n"
        ".hidden lm_deep_poll\n" /* a Rust function: not exported */
        ".globl dlopen\n"
        ".type dlopen, @function\n"
        "dlopen:\n"
        "    testl $8, %esi\n" /* RTLD_DEEPBIND */
        "    jz 2f\n"
        "    movl $" LM_DEEP_PENDING ", lm_deep_pending(%rip)\n"
        "2:  movq lm_real_dlopen(%rip), %rax\n"
        "    testq %rax, %rax\n"
        "    jz 1f\n"
        "    jmp *%rax\n"
        "1:\n" LM_CALL_SAVED("lm_resolve_dlopen")
        "    testq %rax, %rax\n"
        "    jz 3f\n"
        "    jmp *%rax\n"
        "3:  ret\n"
        ".size dlopen, .-dlopen\n"
        ".globl dlsym\n"
        ".type dlsym, @function\n"
        "dlsym:\n"
        "    movl lm_deep_pending(%rip), %eax\n"
        "    testl %eax, %eax\n"
        "    jz 2f\n" LM_CALL_SAVED("lm_deep_poll")
        "2:  movq lm_real_dlsym(%rip), %rax\n"
        "    testq %rax, %rax\n"
        "    jz 1f\n"
        "    jmp *%rax\n"
        "1:\n" LM_CALL_SAVED("lm_resolve_dlsym")
        "    testq %rax, %rax\n"
        "    jz 3f\n"
        "    jmp *%rax\n"
        "3:  ret\n"
        ".size dlsym, .-dlsym\n"
        ".popsection\n");
#elif defined(__aarch64__)
#define LM_CALL_SAVED(fn)                                                                       \
    "    stp x29, x30, [sp, #-32]!\n"                                                           \
    "    mov x29, sp\n"                                                                         \
    "    stp x0, x1, [sp, #16]\n"                                                               \
    "    bl " fn "\n"                                                                           \
    "    mov x16, x0\n"                                                                         \
    "    ldp x0, x1, [sp, #16]\n"                                                               \
    "    ldp x29, x30, [sp], #32\n"
__asm__(".pushsection .text.dlsym,\"ax\",%progbits\n"
        ".hidden lm_deep_poll\n" /* a Rust function: not exported */
        ".globl dlopen\n"
        ".type dlopen, %function\n"
        ".p2align 2\n"
        "dlopen:\n"
        "    tbz w1, #3, 2f\n" /* RTLD_DEEPBIND */
        "    adrp x16, lm_deep_pending\n"
        "    mov w17, #" LM_DEEP_PENDING "\n"
        "    str w17, [x16, :lo12:lm_deep_pending]\n"
        "2:  adrp x16, lm_real_dlopen\n"
        "    ldr x16, [x16, :lo12:lm_real_dlopen]\n"
        "    cbz x16, 1f\n"
        "    br x16\n"
        "1:\n" LM_CALL_SAVED("lm_resolve_dlopen")
        "    cbz x16, 3f\n"
        "    br x16\n"
        "3:  mov x0, #0\n"
        "    ret\n"
        ".size dlopen, .-dlopen\n"
        ".globl dlsym\n"
        ".type dlsym, %function\n"
        ".p2align 2\n"
        "dlsym:\n"
        "    adrp x16, lm_deep_pending\n"
        "    ldr w16, [x16, :lo12:lm_deep_pending]\n"
        "    cbz w16, 2f\n" LM_CALL_SAVED("lm_deep_poll")
        "2:  adrp x16, lm_real_dlsym\n"
        "    ldr x16, [x16, :lo12:lm_real_dlsym]\n"
        "    cbz x16, 1f\n"
        "    br x16\n"
        "1:\n" LM_CALL_SAVED("lm_resolve_dlsym")
        "    cbz x16, 3f\n"
        "    br x16\n"
        "3:  mov x0, #0\n"
        "    ret\n"
        ".size dlsym, .-dlsym\n"
        ".popsection\n");
#else
#error "lambda-meter supports x86_64 and aarch64"
#endif

/*
 * fprintf and vfprintf (and their FORTIFY forms) on a stream that wraps the Runtime API socket
 * (see the stdio hooks in src/glue/hooks.rs): the formatted bytes are reported after the real call,
 * formatted a second time from a copy of the arguments. Any other stream: one callback that
 * answers -1 after one relaxed load.
 */
static void report_formatted(const struct lm_callbacks *cb, int fd, int rc, const char *fmt,
                             va_list args) {
    if (rc <= 0)
        return;
    int saved = errno;
    char small[2048];
    char *text = (size_t)rc < sizeof small ? small : malloc((size_t)rc + 1);
    if (text) {
        vsnprintf(text, (size_t)rc + 1, fmt, args);
        cb->stream_wrote(fd, text, (size_t)rc);
        if (text != small)
            free(text);
    }
    errno = saved;
}

/* vfprintf, or __vfprintf_chk with `flag` when `chk`: the real one, then the report. */
static int formatted(FILE *stream, int chk, int flag, const char *fmt, va_list ap) {
    static const char *const names[2] = {"vfprintf", "__vfprintf_chk"};
    void *slot = chk ? (void *)&real_vfprintf_chk : (void *)&real_vfprintf;
    void *real = __atomic_load_n((void **)slot, __ATOMIC_ACQUIRE);
    if (!real) {
        real = resolve(names[chk != 0]);
        __atomic_store_n((void **)slot, real, __ATOMIC_RELEASE);
    }
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    const struct lm_callbacks *cb = cbs();
    int fd = cb ? cb->stream_writing(stream) : -1;
    if (fd < 0) /* any other stream: the real call and nothing else */
        return chk ? ((vfprintf_chk_fn)real)(stream, flag, fmt, ap)
                   : ((vfprintf_fn)real)(stream, fmt, ap);
    va_list copy;
    va_copy(copy, ap);
    int rc = chk ? ((vfprintf_chk_fn)real)(stream, flag, fmt, ap)
                 : ((vfprintf_fn)real)(stream, fmt, ap);
    report_formatted(cb, fd, rc, fmt, copy);
    va_end(copy);
    return rc;
}

int vfprintf(FILE *stream, const char *fmt, va_list ap) {
    return formatted(stream, 0, 0, fmt, ap);
}

int fprintf(FILE *stream, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = formatted(stream, 0, 0, fmt, ap);
    va_end(ap);
    return rc;
}

int __vfprintf_chk(FILE *stream, int flag, const char *fmt, va_list ap) {
    return formatted(stream, 1, flag, fmt, ap);
}

int __fprintf_chk(FILE *stream, int flag, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = formatted(stream, 1, flag, fmt, ap);
    va_end(ap);
    return rc;
}

/*
 * The address of the canary of this thread's outermost entry of the library's gate
 * (src/glue/process.rs, `Gate`), or 0. Initial-exec TLS: the library is loaded with the
 * program (LD_PRELOAD), so its TLS is in the static block, and an access is one load relative
 * to the thread pointer. A Rust thread_local in a shared object is reached through
 * __tls_get_addr, a call into the loader at each of a gate's entries and exits.
 */
static __thread uintptr_t lm_frame __attribute__((tls_model("initial-exec")));

/* Sets this thread's frame to `frame`; the one it had. */
__attribute__((visibility("hidden"))) uintptr_t lm_frame_replace(uintptr_t frame) {
    uintptr_t was = lm_frame;
    lm_frame = frame;
    return was;
}

__attribute__((visibility("hidden"))) void lm_frame_set(uintptr_t frame) {
    lm_frame = frame;
}

/* The same for the downstream ledger's lock (src/glue/ledger.rs), a lock of its own. */
static __thread uintptr_t lm_ledger_frame __attribute__((tls_model("initial-exec")));

__attribute__((visibility("hidden"))) uintptr_t lm_ledger_frame_replace(uintptr_t frame) {
    uintptr_t was = lm_ledger_frame;
    lm_ledger_frame = frame;
    return was;
}

__attribute__((visibility("hidden"))) void lm_ledger_frame_set(uintptr_t frame) {
    lm_ledger_frame = frame;
}
