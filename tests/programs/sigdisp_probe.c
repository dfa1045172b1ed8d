/*
 * What a runtime sees of its signal dispositions, and what becomes of signals it sends itself.
 * It talks to the Runtime API itself (one keep-alive connection: GET .../next, POST
 * .../response), so the library has made it a runtime (and installed its crash handlers)
 * while it looks. argv[1] picks what it does; every observation is printed, and the output
 * (and how the process ended) must be the same with and without lambda-meter.
 *
 * Compiled with -std=c11 and only _XOPEN_SOURCE 600: under strict ISO C, <signal.h> makes
 * `signal` glibc's __sysv_signal, which installs the handler without calling `sigaction`
 * through the dynamic linker. The GNU `signal` (the symbol itself) is reached as gnu_signal.
 */
#define _XOPEN_SOURCE 600
/* sigset is deprecated, and still used; h_info is compared with plain handlers. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#pragma GCC diagnostic ignored "-Wcast-function-type"
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>

#include "probe_runtime.h"

/* Not declared under strict ISO C + XSI: glibc functions a runtime may call all the same. */
typedef void (*handler_t)(int);
extern handler_t gnu_signal(int, handler_t) __asm__("signal");
extern handler_t sysv_signal(int, handler_t);
extern handler_t ssignal(int, handler_t);
extern long syscall(long, ...);
extern pid_t _Fork(void);

#define SA_RESTORER_FLAG 0x04000000
#define SA_UNSUPPORTED_FLAG 0x400
#define SA_EXPOSE_TAGBITS_FLAG 0x800

static const int FATAL[6] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGTERM};
static const char *const FATAL_NAME[6] = {"SIGSEGV", "SIGBUS", "SIGABRT",
                                          "SIGFPE", "SIGILL", "SIGTERM"};

/* Asks for the next event, which never comes: the simulator is idle and the runner ends us. */
static void wait_forever(void) {
    fflush(stdout);
    next_event();
    exit(9);
}

/* ---- handlers and how a disposition is shown ---- */

static volatile sig_atomic_t hits, depth, max_depth, blocked_inside;
static char inside[256];

static void h_plain(int sig) {
    (void)sig;
    hits++;
}
static void h_other(int sig) { (void)sig; }
static void h_info(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)si;
    (void)uc;
    hits++;
}

static void h_nested(int sig);

static const char *handler_name(void (*h)(int)) {
    if (h == SIG_DFL)
        return "SIG_DFL";
    if (h == SIG_IGN)
        return "SIG_IGN";
    if (h == SIG_ERR)
        return "SIG_ERR";
    if (h == h_plain)
        return "h_plain";
    if (h == h_other)
        return "h_other";
    if (h == h_nested)
        return "h_nested";
    if (h == (handler_t)h_info)
        return "h_info";
    return "SOMETHING ELSE";
}

static unsigned long long mask_bits(const sigset_t *set) {
    unsigned long long bits;
    memcpy(&bits, set, sizeof bits);
    return bits;
}

/* "handler flags=0x.. mask=0x..": everything sigaction reads back. */
static void describe(char *out, size_t cap, int sig) {
    struct sigaction now;
    memset(&now, 0x5a, sizeof now);
    int rc = sigaction(sig, NULL, &now);
    if (rc != 0) {
        snprintf(out, cap, "sigaction failed errno=%d", errno);
        return;
    }
    snprintf(out, cap, "%s flags=%#x mask=%#llx", handler_name(now.sa_handler),
             (unsigned)now.sa_flags, mask_bits(&now.sa_mask));
}

/* The kernel's own struct for rt_sigaction (x86_64 and aarch64 layout). */
struct ksigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    unsigned long mask;
};

static void describe_raw(char *out, size_t cap, int sig) {
    struct ksigaction k;
    memset(&k, 0, sizeof k);
    long rc = syscall(SYS_rt_sigaction, sig, NULL, &k, sizeof k.mask);
    if (rc != 0) {
        snprintf(out, cap, "rt_sigaction failed errno=%d", errno);
        return;
    }
    snprintf(out, cap, "%s flags=%#lx mask=%#lx", handler_name(k.handler), k.flags, k.mask);
}

static void show(const char *when, int sig, const char *name) {
    char d[160], r[160];
    describe(d, sizeof d, sig);
    describe_raw(r, sizeof r, sig);
    printf("%s: %s: sigaction says %s; rt_sigaction says %s\n", when, name, d, r);
}

static void show_fatal(const char *when) {
    for (int i = 0; i < 6; i++)
        show(when, FATAL[i], FATAL_NAME[i]);
}

/* ---- modes ---- */

/* Read-back of the fatal signals before the first connect, during an invoke, after its
 * response; and of a SIG_DFL the host set itself with flags and a mask. */
static int mode_view(void) {
    show_fatal("before connect");
    next_event();
    show_fatal("during invoke");
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    int rc = sigaction(SIGSEGV, &dfl, NULL);
    printf("SIGSEGV set to SIG_DFL: rc=%d\n", rc);
    show("set by the host", SIGSEGV, "SIGSEGV");
    dfl.sa_flags = SA_RESTART | SA_ONSTACK;
    sigaddset(&dfl.sa_mask, SIGUSR1);
    sigaddset(&dfl.sa_mask, SIGCHLD);
    rc = sigaction(SIGTERM, &dfl, NULL);
    printf("SIGTERM set to SIG_DFL with SA_RESTART|SA_ONSTACK and {USR1,CHLD}: rc=%d\n", rc);
    show("set by the host", SIGTERM, "SIGTERM");
    respond("{\"ok\":true}");
    show_fatal("after the response");
    wait_forever();
    return 0;
}

/* The host's own handlers (and a SIG_IGN), installed before the first connect: the kernel
 * must hold exactly them, before, during and after an invoke, and they must run. */
static const int HOST_SIGS[5] = {SIGUSR1, SIGUSR2, SIGABRT, SIGTERM, SIGSEGV};
static const char *const HOST_NAMES[5] = {"SIGUSR1", "SIGUSR2", "SIGABRT", "SIGTERM", "SIGSEGV"};

static void show_host(const char *when) {
    for (int i = 0; i < 5; i++)
        show(when, HOST_SIGS[i], HOST_NAMES[i]);
}

static int mode_host_handlers(void) {
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_sigaction = h_info;
    act.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigaddset(&act.sa_mask, SIGUSR2);
    sigaddset(&act.sa_mask, SIGWINCH);
    sigaction(SIGUSR1, &act, NULL);
    gnu_signal(SIGUSR2, h_plain); /* BSD semantics: SA_RESTART, the signal masked */
    memset(&act, 0, sizeof act);
    act.sa_handler = h_plain;
    sigaction(SIGABRT, &act, NULL);
    act.sa_handler = SIG_IGN;
    sigaction(SIGTERM, &act, NULL);
    memset(&act, 0, sizeof act);
    act.sa_sigaction = h_info;
    act.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESETHAND;
    sigaction(SIGSEGV, &act, NULL);
    show_host("before connect");
    next_event();
    show_host("during invoke");
    hits = 0;
    raise(SIGUSR1);
    raise(SIGUSR2);
    raise(SIGABRT);
    raise(SIGTERM);
    printf("raised USR1, USR2, ABRT, TERM: the host's handlers ran %d time(s)\n", (int)hits);
    respond("{\"ok\":true}");
    show_host("after the response");
    wait_forever();
    return 0;
}

/* Handlers installed on each fatal signal by a glibc path that does not go through the
 * interposed sigaction; then the save-and-restore idiom through sigaction; then each raised. */
static int mode_bypass(void) {
    /* glibc's signal restorer, to install a deliverable handler with the raw system call. */
    struct sigaction usr2;
    memset(&usr2, 0, sizeof usr2);
    usr2.sa_handler = h_other;
    sigaction(SIGUSR2, &usr2, NULL);
    struct ksigaction k;
    memset(&k, 0, sizeof k);
    syscall(SYS_rt_sigaction, SIGUSR2, NULL, &k, sizeof k.mask);
    void (*restorer)(void) = k.restorer;

    next_event();
    handler_t old[6];
    old[0] = signal(SIGSEGV, h_plain); /* ISO C: __sysv_signal */
    old[1] = sysv_signal(SIGBUS, h_plain);
    old[2] = ssignal(SIGABRT, h_plain);
    old[3] = bsd_signal(SIGFPE, h_plain);
    old[4] = sigset(SIGILL, h_plain);
    struct ksigaction raw, raw_old;
    memset(&raw, 0, sizeof raw);
    memset(&raw_old, 0, sizeof raw_old);
    raw.handler = h_plain;
    raw.flags = SA_RESTORER_FLAG | SA_RESTART;
    raw.restorer = restorer;
    long rc = syscall(SYS_rt_sigaction, SIGTERM, &raw, &raw_old, sizeof raw.mask);
    old[5] = raw_old.handler;
    static const char *const how[6] = {"ISO C signal", "sysv_signal", "ssignal",
                                       "bsd_signal", "sigset", "rt_sigaction"};
    printf("rt_sigaction rc=%ld old flags=%#lx\n", rc, raw_old.flags);
    for (int i = 0; i < 6; i++) {
        printf("%s(%s, h_plain) returned %s\n", how[i], FATAL_NAME[i], handler_name(old[i]));
        show("installed", FATAL[i], FATAL_NAME[i]);
    }
    /* A library swaps in a handler for a while and puts back what it found. */
    for (int i = 0; i < 6; i++) {
        struct sigaction tmp, saved;
        memset(&tmp, 0, sizeof tmp);
        tmp.sa_handler = h_other;
        sigaction(FATAL[i], &tmp, &saved);
        printf("%s: the host saved %s\n", FATAL_NAME[i], handler_name(saved.sa_handler));
        sigaction(FATAL[i], &saved, NULL);
        show("put back", FATAL[i], FATAL_NAME[i]);
    }
    fflush(stdout);
    for (int i = 0; i < 6; i++) {
        hits = 0;
        raise(FATAL[i]);
        printf("raised %s: the host's handler ran %d time(s)\n", FATAL_NAME[i], (int)hits);
        fflush(stdout);
    }
    respond("{\"ok\":true}");
    wait_forever();
    return 0;
}

/* The SA_UNSUPPORTED probe (Linux 5.11): set the flag with the one asked about, read back. */
static void probe_flags(int sig, const char *name, void (*h)(int), int flags) {
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = h;
    act.sa_flags = flags | SA_UNSUPPORTED_FLAG | SA_EXPOSE_TAGBITS_FLAG;
    sigemptyset(&act.sa_mask);
    sigaddset(&act.sa_mask, SIGWINCH);
    int rc = sigaction(sig, &act, &old);
    struct sigaction now;
    memset(&now, 0, sizeof now);
    sigaction(sig, NULL, &now);
    printf("%s %s with %#x|SA_UNSUPPORTED|SA_EXPOSE_TAGBITS: rc=%d; reads back %s flags=%#x "
           "mask=%#llx; SA_UNSUPPORTED %s, SA_RESTART %s\n",
           name, handler_name(h), (unsigned)flags, rc, handler_name(now.sa_handler),
           (unsigned)now.sa_flags, mask_bits(&now.sa_mask),
           now.sa_flags & SA_UNSUPPORTED_FLAG ? "kept" : "cleared",
           now.sa_flags & SA_RESTART ? "supported" : "not supported");
}

static int mode_probe_flags(void) {
    next_event();
    probe_flags(SIGUSR1, "SIGUSR1", (handler_t)h_info, SA_SIGINFO | SA_RESTART);
    probe_flags(SIGSEGV, "SIGSEGV", h_plain, SA_RESTART | SA_ONSTACK);
    probe_flags(SIGTERM, "SIGTERM", SIG_DFL, SA_RESTART);
    probe_flags(SIGABRT, "SIGABRT", SIG_IGN, SA_RESTART);
    probe_flags(SIGBUS, "SIGBUS", SIG_DFL, SA_RESTART);
    respond("{\"ok\":true}");
    wait_forever();
    return 0;
}

/* Requests the kernel or glibc refuse: the same answer, the same errno. */
static int mode_invalid(void) {
    next_event();
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_handler = h_plain;
    static const int bad[] = {0, -1, 65, 128, SIGKILL, SIGSTOP, 32, 33};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        int rc = sigaction(bad[i], &act, NULL);
        int e = errno;
        printf("sigaction(%d, h_plain): rc=%d errno=%d\n", bad[i], rc, e);
        errno = 0;
        handler_t r = gnu_signal(bad[i], h_plain);
        e = errno;
        printf("signal(%d, h_plain): %s errno=%d\n", bad[i], handler_name(r), e);
        errno = 0;
        r = signal(bad[i], h_plain);
        e = errno;
        printf("ISO signal(%d, h_plain): %s errno=%d\n", bad[i], handler_name(r), e);
        errno = 0;
        r = sigset(bad[i], h_plain);
        e = errno;
        printf("sigset(%d, h_plain): %s errno=%d\n", bad[i], handler_name(r), e);
    }
    static const int good[] = {SIGUSR1, SIGSEGV, SIGTERM};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        errno = 0;
        handler_t r = gnu_signal(good[i], SIG_ERR);
        int e = errno;
        printf("signal(%d, SIG_ERR): %s errno=%d\n", good[i], handler_name(r), e);
        char d[160];
        describe(d, sizeof d, good[i]);
        printf("  then reads back %s\n", d);
    }
    errno = 0;
    int rc = sigaction(SIGKILL, NULL, NULL);
    printf("sigaction(SIGKILL, NULL, NULL): rc=%d errno=%d\n", rc, errno);
    respond("{\"ok\":true}");
    wait_forever();
    return 0;
}

/* SA_RESETHAND and SA_NODEFER handlers, read back inside and after. */
static void h_oneshot(int sig) {
    hits++;
    describe(inside, sizeof inside, sig);
}
static void h_oneshot_info(int sig, siginfo_t *si, void *uc) {
    (void)si;
    (void)uc;
    h_oneshot(sig);
}
static void h_nested(int sig) {
    depth++;
    if (depth > max_depth)
        max_depth = depth;
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    if (sigismember(&now, sig))
        blocked_inside = 1;
    if (depth < 3)
        raise(sig);
    depth--;
}

static void oneshot(int sig, const char *name, int flags, int info) {
    struct sigaction act;
    memset(&act, 0, sizeof act);
    if (info)
        act.sa_sigaction = h_oneshot_info;
    else
        act.sa_handler = h_oneshot;
    act.sa_flags = flags | (info ? SA_SIGINFO : 0);
    sigemptyset(&act.sa_mask);
    sigaddset(&act.sa_mask, SIGWINCH);
    sigaction(sig, &act, NULL);
    hits = 0;
    inside[0] = 0;
    raise(sig);
    printf("%s flags %#x: ran %d time(s); inside it read %s\n", name, (unsigned)act.sa_flags,
           (int)hits, inside);
    show("after it ran", sig, name);
}

static int mode_oneshot(void) {
    next_event();
    oneshot(SIGUSR1, "SIGUSR1", SA_RESETHAND, 0);
    oneshot(SIGUSR2, "SIGUSR2", SA_RESETHAND | SA_RESTART, 1);
    oneshot(SIGTERM, "SIGTERM", SA_RESETHAND, 0);
    oneshot(SIGSEGV, "SIGSEGV", SA_RESETHAND | SA_NODEFER, 1);
    oneshot(SIGABRT, "SIGABRT", SA_RESETHAND | SA_ONSTACK, 0);
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_handler = h_nested;
    act.sa_flags = SA_NODEFER;
    sigaction(SIGHUP, &act, NULL);
    raise(SIGHUP);
    printf("SIGHUP SA_NODEFER: nested %d deep, blocked inside: %d\n", (int)max_depth,
           (int)blocked_inside);
    show("after it ran", SIGHUP, "SIGHUP");
    /* A fatal signal reset to its default by SA_RESETHAND still ends the process as the
     * default does: the status says so. */
    respond("{\"ok\":true}");
    wait_forever();
    return 0;
}

/* libjsig's interface to the JVM (weak: null unless libjsig is preloaded). */
extern void JVM_begin_signal_setting(void) __attribute__((weak));
extern void JVM_end_signal_setting(void) __attribute__((weak));
extern struct sigaction *JVM_get_signal_action(int) __attribute__((weak));

static const int JVM_SIGS[4] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
static const char *const JVM_NAMES[4] = {"SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL"};

static void show_chain(const char *when) {
    for (int i = 0; i < 4; i++) {
        struct sigaction *chained = JVM_get_signal_action(JVM_SIGS[i]);
        printf("%s: %s chained behind the JVM's handler: %s\n", when, JVM_NAMES[i],
               chained ? handler_name(chained->sa_handler) : "nothing");
        show(when, JVM_SIGS[i], JVM_NAMES[i]);
    }
}

/* Does what the JVM does with libjsig preloaded: installs its handlers for SIGSEGV, SIGBUS,
 * SIGFPE and SIGILL between JVM_begin_signal_setting and JVM_end_signal_setting. From then
 * on, libjsig's sigaction answers for those signals with (and saves into) the handler chained
 * behind the JVM's, the one the JVM calls for a signal it does not handle itself. */
static int mode_jsig(void) {
    if (!JVM_begin_signal_setting || !JVM_end_signal_setting || !JVM_get_signal_action) {
        printf("libjsig is not preloaded\n");
        return 2;
    }
    JVM_begin_signal_setting();
    struct sigaction jvm;
    memset(&jvm, 0, sizeof jvm);
    jvm.sa_sigaction = h_info;
    jvm.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&jvm.sa_mask);
    for (int i = 0; i < 4; i++)
        sigaction(JVM_SIGS[i], &jvm, NULL);
    JVM_end_signal_setting();
    show_chain("before connect");
    next_event();
    show_chain("during invoke");
    respond("{\"ok\":true}");
    show_chain("after the response");
    wait_forever();
    return 0;
}

/* Children made behind the library's back read their dispositions. */
static void child_report(const char *who) {
    char line[512];
    int sigs[7] = {SIGUSR1, SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGTERM};
    const char *names[7] = {"SIGUSR1", "SIGSEGV", "SIGBUS", "SIGABRT",
                            "SIGFPE", "SIGILL", "SIGTERM"};
    for (int i = 0; i < 7; i++) {
        char d[160], r[160];
        describe(d, sizeof d, sigs[i]);
        describe_raw(r, sizeof r, sigs[i]);
        int n = snprintf(line, sizeof line, "%s: %s: sigaction says %s; rt_sigaction says %s\n",
                         who, names[i], d, r);
        if (write(1, line, (size_t)n) < 0)
            _exit(1);
    }
}

static void report_status(const char *who, pid_t pid) {
    int status = 0;
    if (pid < 0) {
        printf("%s: failed errno=%d\n", who, errno);
        return;
    }
    waitpid(pid, &status, 0);
    printf("%s: exited %d signal %d\n", who, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
           WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static int mode_child(void) {
    next_event();
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_sigaction = h_info;
    act.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaddset(&act.sa_mask, SIGUSR2);
    sigaction(SIGUSR1, &act, NULL);
    child_report("parent");
    fflush(stdout);
    pid_t pid = (pid_t)syscall(SYS_clone, (long)SIGCHLD, 0L, 0L, 0L, 0L);
    if (pid == 0) {
        child_report("raw clone child");
        _exit(0);
    }
    report_status("raw clone child", pid);
    fflush(stdout);
    pid = _Fork();
    if (pid == 0) {
        child_report("_Fork child");
        _exit(0);
    }
    report_status("_Fork child", pid);
    fflush(stdout);
    /* In the children, a crash ends them as the default action does. */
    pid = (pid_t)syscall(SYS_clone, (long)SIGCHLD, 0L, 0L, 0L, 0L);
    if (pid == 0) {
        raise(SIGSEGV);
        _exit(0);
    }
    report_status("raw clone child raising SIGSEGV", pid);
    pid = _Fork();
    if (pid == 0) {
        kill(getpid(), SIGTERM);
        _exit(0);
    }
    report_status("_Fork child sending itself SIGTERM", pid);
    respond("{\"ok\":true}");
    wait_forever();
    return 0;
}

/* During an invoke, the runtime sends itself a fatal signal with its default disposition. */
static int mode_selfsig(const char *how) {
    next_event();
    printf("sending: %s\n", how);
    fflush(stdout);
    if (strcmp(how, "raise-SIGTERM") == 0) {
        raise(SIGTERM);
    } else if (strcmp(how, "kill-SIGTERM") == 0) {
        kill(getpid(), SIGTERM);
    } else if (strcmp(how, "sigqueue-SIGABRT") == 0) {
        union sigval v;
        v.sival_int = 42;
        sigqueue(getpid(), SIGABRT, v);
    } else if (strcmp(how, "raise-SIGSEGV") == 0) {
        raise(SIGSEGV);
    } else if (strcmp(how, "abort") == 0) {
        abort();
    } else if (strncmp(how, "tgsigqueueinfo-", 15) == 0) {
        /* rt_tgsigqueueinfo to itself with a positive si_code (allowed for the own process),
         * as crash reporters re-raise a signal with the siginfo they were given. */
        int sig = strcmp(how + 15, "SIGSEGV") == 0 ? SIGSEGV : SIGTERM;
        siginfo_t si;
        memset(&si, 0, sizeof si);
        si.si_signo = sig;
        si.si_code = 1; /* SEGV_MAPERR for SIGSEGV */
        long rc =
            syscall(SYS_rt_tgsigqueueinfo, (long)getpid(), syscall(SYS_gettid), (long)sig, &si);
        if (rc != 0)
            printf("rt_tgsigqueueinfo failed errno=%d\n", errno);
    } else {
        return 2;
    }
    printf("still alive after %s\n", how);
    respond("{\"ok\":true}");
    wait_forever();
    return 0;
}

/* `n` invokes; in each, a SIGUSR1 handler leaves by a non-local exit. */
static sigjmp_buf jump_back;
static ucontext_t context_back;
static volatile sig_atomic_t leave_how; /* 0 return, 1 siglongjmp, 2 setcontext */

static void h_leave(int sig) {
    (void)sig;
    hits++;
    if (leave_how == 1)
        siglongjmp(jump_back, 1);
    if (leave_how == 2)
        setcontext(&context_back);
}

static int mode_leave(const char *how, int n) {
    leave_how = strcmp(how, "siglongjmp") == 0 ? 1 : strcmp(how, "setcontext") == 0 ? 2 : 0;
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_handler = h_leave;
    act.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &act, NULL);
    volatile int left = 0;
    for (volatile int i = 0; i < n; i++) {
        next_event();
        volatile int jumped = 0; /* the handler left by how */
        if (leave_how == 1) {
            if (sigsetjmp(jump_back, 1) == 0)
                raise(SIGUSR1);
            else
                jumped = 1;
        } else if (leave_how == 2) {
            getcontext(&context_back);
            if (!jumped) {
                jumped = 1;
                raise(SIGUSR1);
                jumped = 0; /* only reached when the handler returned normally */
            }
        } else {
            raise(SIGUSR1);
        }
        left += jumped;
        char body[64];
        snprintf(body, sizeof body, "{\"invoke\":%d}", i);
        respond(body);
    }
    printf("%d invokes, the handler ran %d times and left by %s %d times\n", n, (int)hits, how,
           left);
    wait_forever();
    return 0;
}

int main(int argc, char **argv) {
    probe_api_from_env();
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "view") == 0)
        return mode_view();
    if (strcmp(mode, "host-handlers") == 0)
        return mode_host_handlers();
    if (strcmp(mode, "bypass") == 0)
        return mode_bypass();
    if (strcmp(mode, "probe-flags") == 0)
        return mode_probe_flags();
    if (strcmp(mode, "invalid") == 0)
        return mode_invalid();
    if (strcmp(mode, "oneshot") == 0)
        return mode_oneshot();
    if (strcmp(mode, "jsig") == 0)
        return mode_jsig();
    if (strcmp(mode, "child") == 0)
        return mode_child();
    if (strcmp(mode, "selfsig") == 0 && argc > 2)
        return mode_selfsig(argv[2]);
    if (strcmp(mode, "leave") == 0 && argc > 3)
        return mode_leave(argv[2], atoi(argv[3]));
    fprintf(stderr, "usage: sigdisp_probe view|host-handlers|bypass|probe-flags|invalid|oneshot|"
                    "jsig|child|selfsig HOW|leave HOW N\n");
    return 2;
}
