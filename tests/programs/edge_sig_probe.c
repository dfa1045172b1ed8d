/*
 * A probe of the crash handlers of src/glue/signals.rs: what a runtime can observe of
 * its fatal-signal dispositions through paths other than the ones tests/programs/
 * sigdisp_probe.c covers, and how it ends. It talks to the Runtime API itself
 * (probe_runtime.h), so the library treats it as a runtime (crash handlers in) while it
 * looks. `edge_sig_probe MODE [ARG]`; every observation is printed, and the output and how
 * the process ended must be the same with and without lambda-meter.
 *
 * Modes:
 *   sigcgt          /proc/self/status SigCgt and SigIgn, before connect and during an invoke
 *   libc-handle     sigaction and signal reached with dlsym on dlopen("libc.so.6")
 *                   (how Python's ctypes.CDLL("libc.so.6") calls libc)
 *   dlmopen         sigaction of a libc loaded in a new link-map namespace
 *   hold-race N     one thread calls sigset(SIGTERM, SIG_HOLD) in a loop (it never changes the
 *                   disposition); the main thread sets SIG_DFL then SIG_IGN / a handler, up to
 *                   N times, and reads each back (until one reads back something else), then
 *                   sends itself SIGTERM under SIG_IGN
 *   readback        read-backs in many combinations (aliasing, sigset, signal twice, raw
 *                   syscall vs sigaction, errno after each call)
 *   block-raise     blocks SIGTERM, sends it, reads pending and disposition, takes it with
 *                   sigtimedwait; blocks SIGABRT, raises it, unblocks it (the process dies)
 *   sigwait         every thread blocks SIGTERM; a thread takes it with sigwait
 *   vfork           a vfork child reads and changes dispositions, and crashes
 *   ign-after       SIG_IGN on SIGTERM after the crash handler went in; SIGTERM sent; then
 *                   SIG_DFL again and read back
 *   thread-crash D  a second thread dereferences a bad address; core dumps on, in dir D
 *   fault D         the main thread dereferences address 0x1234; core dumps on, in dir D
 *   abort-thread    abort() on a second thread while the main thread waits
 *   fork-crash      a forked child (through the fork hook) crashes; the parent reports it
 *   altstack K      the main thread has an alternate signal stack of K KiB (mmap'd, with an
 *                   inaccessible page below it) for its own SIGUSR1 handler; SIGTERM keeps its
 *                   default and is sent during an invoke (the process must die of SIGTERM)
 *   unblock-wait H  the race-free wait: SIGTERM blocked, then unblocked only while waiting in
 *                   H (sigsuspend, ppoll, pselect or epoll_pwait), and a SIGTERM arrives then
 *                   (SIG_DFL: the process must die of it)
 */
#define _GNU_SOURCE
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probe_runtime.h"

typedef void (*handler_t)(int);

/* The kernel's struct for rt_sigaction (x86_64 and aarch64). */
struct ksigaction {
    handler_t handler;
    unsigned long flags;
    void (*restorer)(void);
    unsigned long mask;
};

static volatile sig_atomic_t hits;
static void h_plain(int sig) {
    (void)sig;
    hits++;
}

static const char *name(handler_t h) {
    if (h == SIG_DFL)
        return "SIG_DFL";
    if (h == SIG_IGN)
        return "SIG_IGN";
    if (h == SIG_ERR)
        return "SIG_ERR";
    if (h == SIG_HOLD)
        return "SIG_HOLD";
    if (h == h_plain)
        return "h_plain";
    return "SOMETHING ELSE";
}

static unsigned long long bits(const sigset_t *s) {
    unsigned long long b;
    memcpy(&b, s, sizeof b);
    return b;
}

/* Asks for the next event, which never comes: the simulator is idle and the runner ends us. */
static void wait_forever(void) {
    fflush(stdout);
    next_event();
    exit(9);
}

static void show_status(const char *when) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "SigCgt:", 7) == 0 || strncmp(line, "SigIgn:", 7) == 0)
            printf("%s: %s", when, line);
    if (f)
        fclose(f);
}

static int mode_sigcgt(void) {
    show_status("before connect");
    next_event();
    show_status("during invoke");
    respond("{}");
    wait_forever();
    return 0;
}

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
typedef handler_t (*signal_fn)(int, handler_t);

static const int FATAL[6] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGTERM};

static void show_through(const char *how, sigaction_fn sa) {
    for (int i = 0; i < 6; i++) {
        struct sigaction old;
        memset(&old, 0, sizeof old);
        int rc = sa(FATAL[i], NULL, &old);
        printf("%s: signal %d: rc=%d %s flags=%#x\n", how, FATAL[i], rc, name(old.sa_handler),
               (unsigned)old.sa_flags);
    }
}

static int mode_libc_handle(void) {
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    if (!libc)
        return 2;
    sigaction_fn sa = (sigaction_fn)dlsym(libc, "sigaction");
    signal_fn sig = (signal_fn)dlsym(libc, "signal");
    next_event();
    show_through("libc handle sigaction", sa);
    /* A save-and-restore through that handle: the action put back is the one read. */
    handler_t was = sig(SIGABRT, h_plain);
    printf("libc handle signal(SIGABRT, h_plain) returned %s\n", name(was));
    handler_t now = sig(SIGABRT, was);
    printf("libc handle signal(SIGABRT, back) returned %s\n", name(now));
    struct sigaction after;
    sigaction(SIGABRT, NULL, &after);
    printf("then sigaction reads SIGABRT as %s\n", name(after.sa_handler));
    respond("{}");
    wait_forever();
    return 0;
}

static int mode_dlmopen(void) {
    void *libc = dlmopen(LM_ID_NEWLM, "libc.so.6", RTLD_LAZY);
    if (!libc) {
        printf("dlmopen failed: %s\n", dlerror());
        return 2;
    }
    sigaction_fn sa = (sigaction_fn)dlsym(libc, "sigaction");
    next_event();
    show_through("other namespace's sigaction", sa);
    respond("{}");
    wait_forever();
    return 0;
}

static volatile int stop_holding;
static void *holder(void *arg) {
    (void)arg;
    while (!stop_holding)
        sigset(SIGTERM, SIG_HOLD); /* blocks SIGTERM in this thread; the action is untouched */
    return NULL;
}

/* Up to `n` rounds, until one reads back something else than what was just installed. */
static int mode_hold_race(int n) {
    next_event();
    pthread_t t;
    pthread_create(&t, NULL, holder, NULL);
    int lost = 0, i;
    struct sigaction act, dfl, old;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (i = 0; i < n && !lost; i++) {
        memset(&act, 0, sizeof act);
        act.sa_handler = (i & 1) ? h_plain : SIG_IGN;
        sigaction(SIGTERM, &dfl, NULL);
        sigaction(SIGTERM, &act, NULL);
        sigaction(SIGTERM, NULL, &old);
        if (old.sa_handler != act.sa_handler) {
            lost = 1;
            printf("install %d of %s read back as %s\n", i, name(act.sa_handler),
                   name(old.sa_handler));
        }
    }
    memset(&act, 0, sizeof act);
    act.sa_handler = SIG_IGN;
    sigaction(SIGTERM, &act, NULL);
    stop_holding = 1;
    pthread_join(t, NULL);
    printf("every install read back as installed: %s\n", lost ? "no" : "yes");
    fflush(stdout);
    kill(getpid(), SIGTERM);
    printf("still alive after SIGTERM under SIG_IGN\n");
    respond("{}");
    wait_forever();
    return 0;
}

static void raw_show(const char *what, int sig) {
    struct ksigaction k;
    memset(&k, 0, sizeof k);
    errno = 77;
    long rc = syscall(SYS_rt_sigaction, sig, NULL, &k, 8);
    printf("%s: raw rc=%ld errno=%d %s flags=%#lx mask=%#lx restorer=%s\n", what, rc, errno,
           name(k.handler), k.flags, k.mask, k.restorer ? "set" : "none");
}

static void libc_show(const char *what, int sig) {
    struct sigaction old;
    memset(&old, 0xa5, sizeof old);
    errno = 77;
    int rc = sigaction(sig, NULL, &old);
    unsigned char tail = ((unsigned char *)&old.sa_mask)[sizeof old.sa_mask - 1];
    printf("%s: sigaction rc=%d errno=%d %s flags=%#x mask=%#llx tail=%#x\n", what, rc, errno,
           name(old.sa_handler), (unsigned)old.sa_flags, bits(&old.sa_mask), tail);
}

static int mode_readback(void) {
    next_event();
    /* old == act: the action read back into the struct that was given. */
    struct sigaction a;
    memset(&a, 0, sizeof a);
    a.sa_handler = SIG_DFL;
    a.sa_flags = SA_RESTART | SA_NODEFER;
    sigaddset(&a.sa_mask, SIGUSR2);
    errno = 77;
    int rc = sigaction(SIGSEGV, &a, &a);
    printf("aliased sigaction(SIGSEGV): rc=%d errno=%d old %s flags=%#x mask=%#llx\n", rc, errno,
           name(a.sa_handler), (unsigned)a.sa_flags, bits(&a.sa_mask));
    rc = sigaction(SIGSEGV, &a, &a);
    printf("again: rc=%d old %s flags=%#x mask=%#llx\n", rc, name(a.sa_handler),
           (unsigned)a.sa_flags, bits(&a.sa_mask));
    libc_show("SIGSEGV now", SIGSEGV);
    raw_show("SIGSEGV now", SIGSEGV);
    /* sigset: SIG_HOLD, then a disposition while held, then the held answer. */
    errno = 77;
    handler_t h = sigset(SIGTERM, SIG_HOLD);
    printf("sigset(SIGTERM, SIG_HOLD) = %s errno=%d\n", name(h), errno);
    h = sigset(SIGTERM, SIG_HOLD);
    printf("sigset(SIGTERM, SIG_HOLD) again = %s\n", name(h));
    h = sigset(SIGTERM, SIG_DFL);
    printf("sigset(SIGTERM, SIG_DFL) while held = %s\n", name(h));
    h = sigset(SIGTERM, SIG_DFL);
    printf("sigset(SIGTERM, SIG_DFL) again = %s\n", name(h));
    libc_show("SIGTERM now", SIGTERM);
    /* signal twice, ssignal, bsd_signal, sysv_signal on the same signal. */
    errno = 77;
    h = signal(SIGBUS, SIG_DFL);
    printf("signal(SIGBUS, SIG_DFL) = %s errno=%d\n", name(h), errno);
    h = signal(SIGBUS, SIG_DFL);
    printf("signal(SIGBUS, SIG_DFL) again = %s\n", name(h));
    h = ssignal(SIGBUS, SIG_DFL);
    printf("ssignal(SIGBUS, SIG_DFL) = %s\n", name(h));
    h = sysv_signal(SIGBUS, SIG_DFL);
    printf("sysv_signal(SIGBUS, SIG_DFL) = %s\n", name(h));
    libc_show("SIGBUS now", SIGBUS);
    raw_show("SIGBUS now", SIGBUS);
    /* A handler through the raw call, read by sigaction; SIG_DFL through sigaction, read raw. */
    struct ksigaction k, ko;
    struct sigaction probe_act;
    memset(&probe_act, 0, sizeof probe_act);
    probe_act.sa_handler = h_plain;
    sigaction(SIGUSR2, &probe_act, NULL);
    syscall(SYS_rt_sigaction, SIGUSR2, NULL, &k, 8); /* glibc's restorer */
    k.handler = h_plain;
    k.flags |= SA_RESTART;
    memset(&ko, 0, sizeof ko);
    errno = 77;
    long lrc = syscall(SYS_rt_sigaction, SIGFPE, &k, &ko, 8);
    printf("raw install on SIGFPE: rc=%ld errno=%d old %s flags=%#lx mask=%#lx\n", lrc, errno,
           name(ko.handler), ko.flags, ko.mask);
    libc_show("SIGFPE now", SIGFPE);
    memset(&a, 0, sizeof a);
    a.sa_handler = SIG_DFL;
    a.sa_flags = SA_ONSTACK;
    sigaction(SIGFPE, &a, NULL);
    raw_show("SIGFPE back to SIG_DFL", SIGFPE);
    libc_show("SIGFPE back to SIG_DFL", SIGFPE);
    /* The raw call with old == act. */
    memset(&k, 0, sizeof k);
    syscall(SYS_rt_sigaction, SIGFPE, NULL, &k, 8);
    lrc = syscall(SYS_rt_sigaction, SIGFPE, &k, &k, 8);
    printf("raw aliased on SIGFPE: rc=%ld %s flags=%#lx\n", lrc, name(k.handler), k.flags);
    raw_show("SIGFPE after", SIGFPE);
    /* Invalid sizes and signals through the raw call. */
    errno = 0;
    lrc = syscall(SYS_rt_sigaction, SIGILL, NULL, &k, 4);
    printf("raw with sigsetsize 4: rc=%ld errno=%d\n", lrc, errno);
    errno = 0;
    lrc = syscall(SYS_rt_sigaction, SIGKILL, &k, NULL, 8);
    printf("raw on SIGKILL: rc=%ld errno=%d\n", lrc, errno);
    respond("{}");
    wait_forever();
    return 0;
}

static int mode_block_raise(void) {
    next_event();
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    kill(getpid(), SIGTERM);
    sigpending(&pend);
    printf("SIGTERM blocked and sent: pending=%d\n", sigismember(&pend, SIGTERM));
    libc_show("SIGTERM pending", SIGTERM);
    struct timespec zero = {0, 0};
    siginfo_t si;
    int got = sigtimedwait(&set, &si, &zero);
    printf("sigtimedwait took %d (si_code %d)\n", got, si.si_code);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("unblocked, still alive\n");
    respond("{}");
    next_event();
    sigemptyset(&set);
    sigaddset(&set, SIGABRT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise(SIGABRT);
    printf("SIGABRT blocked and raised: alive\n");
    fflush(stdout);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("SIGABRT unblocked: alive\n");
    return 0;
}

static void *sigwaiter(void *arg) {
    sigset_t *set = arg;
    int sig = 0;
    sigwait(set, &sig);
    printf("sigwait took %d\n", sig);
    return NULL;
}

static int mode_sigwait(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    next_event();
    pthread_t t;
    pthread_create(&t, NULL, sigwaiter, &set);
    kill(getpid(), SIGTERM);
    pthread_join(t, NULL);
    libc_show("SIGTERM after", SIGTERM);
    respond("{}");
    wait_forever();
    return 0;
}

static int mode_vfork(void) {
    next_event();
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_handler = h_plain;
    pid_t pid = vfork();
    if (pid == 0) {
        /* Shares the parent's memory, not its signal table. */
        struct sigaction old;
        sigaction(SIGSEGV, NULL, &old);
        int a = old.sa_handler == SIG_DFL;
        sigaction(SIGTERM, &act, NULL); /* the child's table only */
        sigaction(SIGTERM, NULL, &old);
        int b = old.sa_handler == h_plain;
        signal(SIGSEGV, SIG_DFL);
        signal(SIGSEGV, SIG_DFL);
        _exit(a * 10 + b);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("vfork child: SIGSEGV read SIG_DFL %d, own SIGTERM handler read back %d\n",
           WEXITSTATUS(status) / 10, WEXITSTATUS(status) % 10);
    libc_show("parent SIGTERM", SIGTERM);
    libc_show("parent SIGSEGV", SIGSEGV);
    raw_show("parent SIGTERM", SIGTERM);
    pid = vfork();
    if (pid == 0) {
        raise(SIGSEGV);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    printf("vfork child raising SIGSEGV: signaled %d sig %d\n", WIFSIGNALED(status),
           WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    libc_show("parent SIGSEGV after", SIGSEGV);
    raw_show("parent SIGSEGV after", SIGSEGV);
    /* The parent's own SIGTERM still acts as the default. */
    respond("{}");
    next_event();
    fflush(stdout);
    raise(SIGTERM);
    printf("survived SIGTERM\n");
    return 0;
}

static int mode_ign_after(void) {
    next_event();
    signal(SIGTERM, SIG_IGN);
    kill(getpid(), SIGTERM);
    printf("alive after SIGTERM under SIG_IGN\n");
    handler_t h = signal(SIGTERM, SIG_DFL);
    printf("signal(SIGTERM, SIG_DFL) returned %s\n", name(h));
    libc_show("SIGTERM", SIGTERM);
    h = signal(SIGTERM, SIG_IGN);
    printf("signal(SIGTERM, SIG_IGN) returned %s\n", name(h));
    raise(SIGTERM);
    printf("alive after raise(SIGTERM) under SIG_IGN\n");
    respond("{}");
    next_event();
    signal(SIGTERM, SIG_DFL);
    fflush(stdout);
    raise(SIGTERM);
    printf("survived SIGTERM under SIG_DFL\n");
    return 0;
}

static void cores_on(const char *dir) {
    struct rlimit r = {RLIM_INFINITY, RLIM_INFINITY};
    setrlimit(RLIMIT_CORE, &r);
    if (dir && chdir(dir) != 0)
        exit(4);
}

static void *crasher(void *arg) {
    (void)arg;
    volatile int *p = (volatile int *)(uintptr_t)0x1234;
    return (void *)(uintptr_t)*p;
}

static int mode_thread_crash(const char *dir) {
    cores_on(dir);
    next_event();
    fflush(stdout);
    pthread_t t;
    pthread_create(&t, NULL, crasher, NULL);
    pthread_join(t, NULL);
    printf("survived the crash\n");
    return 0;
}

static int mode_fault(const char *dir) {
    cores_on(dir);
    next_event();
    fflush(stdout);
    return (int)(uintptr_t)crasher(NULL);
}

static void *aborter(void *arg) {
    (void)arg;
    abort();
}

static int mode_abort_thread(void) {
    next_event();
    fflush(stdout);
    pthread_t t;
    pthread_create(&t, NULL, aborter, NULL);
    pthread_join(t, NULL);
    printf("survived abort\n");
    return 0;
}

static int mode_fork_crash(void) {
    next_event();
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        libc_show("child SIGSEGV", SIGSEGV);
        fflush(stdout);
        crasher(NULL);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("fork child: signaled %d sig %d\n", WIFSIGNALED(status),
           WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    respond("{}");
    wait_forever();
    return 0;
}

static int mode_altstack(int kib) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE), size = (size_t)kib * 1024;
    char *base = mmap(NULL, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);
    if (base == MAP_FAILED || mprotect(base, page, PROT_NONE) != 0)
        return 3;
    stack_t ss = {.ss_sp = base + page, .ss_flags = 0, .ss_size = size};
    if (sigaltstack(&ss, NULL) != 0)
        return 3;
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_handler = h_plain;
    act.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR1, &act, NULL);
    raise(SIGUSR1);
    next_event();
    printf("SIGUSR1 handled on a %d KiB alternate stack %d time(s); sending SIGTERM\n", kib,
           (int)hits);
    fflush(stdout);
    kill(getpid(), SIGTERM);
    printf("survived SIGTERM\n");
    return 0;
}

/* Sends SIGTERM to the process a moment after it started waiting. */
static void *terminator(void *arg) {
    (void)arg;
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
    kill(getpid(), SIGTERM);
    return NULL;
}

static int mode_unblock_wait(const char *how) {
    sigset_t term, none;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigemptyset(&none);
    pthread_sigmask(SIG_BLOCK, &term, NULL); /* inherited by the terminator thread */
    next_event();
    printf("waiting in %s with SIGTERM unblocked\n", how);
    fflush(stdout);
    pthread_t t;
    pthread_create(&t, NULL, terminator, NULL);
    int fds[2];
    if (pipe(fds) != 0)
        return 3;
    struct timespec limit = {5, 0};
    int rc = 0;
    errno = 0;
    if (strcmp(how, "sigsuspend") == 0) {
        rc = sigsuspend(&none);
    } else if (strcmp(how, "ppoll") == 0) {
        struct pollfd p = {fds[0], POLLIN, 0};
        rc = ppoll(&p, 1, &limit, &none);
    } else if (strcmp(how, "pselect") == 0) {
        fd_set r;
        FD_ZERO(&r);
        FD_SET(fds[0], &r);
        rc = pselect(fds[0] + 1, &r, NULL, NULL, &limit, &none);
    } else if (strcmp(how, "epoll_pwait") == 0) {
        int ep = epoll_create1(0);
        struct epoll_event ev = {EPOLLIN, {0}};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev);
        rc = epoll_pwait(ep, &ev, 1, 5000, &none);
    } else {
        return 2;
    }
    int e = errno;
    sigset_t pend;
    sigpending(&pend);
    printf("%s returned %d errno=%d; SIGTERM pending: %d; still alive\n", how, rc, e,
           sigismember(&pend, SIGTERM));
    respond("{}");
    wait_forever();
    return 0;
}

int main(int argc, char **argv) {
    probe_api_from_env();
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    const char *mode = argc > 1 ? argv[1] : "";
    const char *arg = argc > 2 ? argv[2] : NULL;
    if (strcmp(mode, "sigcgt") == 0)
        return mode_sigcgt();
    if (strcmp(mode, "libc-handle") == 0)
        return mode_libc_handle();
    if (strcmp(mode, "dlmopen") == 0)
        return mode_dlmopen();
    if (strcmp(mode, "hold-race") == 0 && arg)
        return mode_hold_race(atoi(arg));
    if (strcmp(mode, "readback") == 0)
        return mode_readback();
    if (strcmp(mode, "block-raise") == 0)
        return mode_block_raise();
    if (strcmp(mode, "sigwait") == 0)
        return mode_sigwait();
    if (strcmp(mode, "vfork") == 0)
        return mode_vfork();
    if (strcmp(mode, "ign-after") == 0)
        return mode_ign_after();
    if (strcmp(mode, "thread-crash") == 0)
        return mode_thread_crash(arg);
    if (strcmp(mode, "fault") == 0)
        return mode_fault(arg);
    if (strcmp(mode, "abort-thread") == 0)
        return mode_abort_thread();
    if (strcmp(mode, "fork-crash") == 0)
        return mode_fork_crash();
    if (strcmp(mode, "altstack") == 0 && arg)
        return mode_altstack(atoi(arg));
    if (strcmp(mode, "unblock-wait") == 0 && arg)
        return mode_unblock_wait(arg);
    fprintf(stderr, "usage: edge_sig_probe MODE [ARG]\n");
    return 2;
}
