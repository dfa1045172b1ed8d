/*
 * A probe of the entry gate of src/glue/process.rs: signal handlers that interrupt the
 * library itself (its custom-properties call, `lambda_meter_property`, looked up with dlsym:
 * absent without the library) and do what a runtime's handler may do there. The handler acts
 * only when the interrupted instruction lies in liblambda_meter.so (or, without the library,
 * never / on its first run as said below), so the host's own code path is the same in both
 * runs. `edge_gate_probe MODE`; the output and the ending must be the same with and without
 * lambda-meter.
 *
 * Modes:
 *   exit    a worker thread calls the property function in a loop under a 50 µs per-thread
 *           timer; the handler ends the thread with pthread_exit when it interrupted the
 *           library holding its gate (how a runtime stops a thread from a signal; a property
 *           call from the handler answers LAMBDA_METER_BUSY). The main thread joins it,
 *           answers the invoke, sleeps 5 s (past the invoke's deadline) and says whether the
 *           process used 100 ms of CPU meanwhile.
 *   cancel  during the invoke, a second thread asks for the next event on a connection of its
 *           own and blocks in the library's read hook on that Runtime API socket; once
 *           /proc/self/task/<its id>/syscall shows it blocked in read, the main thread cancels
 *           it (pthread_cancel, deferred: read is a cancellation point), joins it, and answers
 *           the invoke.
 *   pad N   N invokes: in the first, the handler leaves the library by siglongjmp where it
 *           found this thread holding the library's gate (as gate_leave_probe's does); all the
 *           rest of the run is called from below a large stack buffer it never writes.
 *   stall   after the response (the record then waits for the next /next, and the library's
 *           watchdog looks 2 s later), the main thread calls the property function in a loop
 *           under a 50 µs timer; the first handler run that interrupted the library while it
 *           holds its gate (a property call from the handler answers LAMBDA_METER_BUSY;
 *           without the library: the first run) waits 5 s, as a garbage collector's suspend
 *           handler waits for the collection. It measures the CPU time the process used
 *           meanwhile (only other threads can have run) and says whether it reached 100 ms.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "probe_library.h"
#include "probe_runtime.h"

static int (*property)(const char *, const char *);

static void on_tick_exit(int sig, siginfo_t *si, void *context) {
    (void)sig;
    (void)si;
    /* Only where the library holds its gate for this thread (a call from here answers
     * LAMBDA_METER_BUSY, -6). */
    if (in_library(context) && property("probe", "1") == -6)
        pthread_exit(NULL);
}

static double cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A 50 µs SIGALRM timer aimed at the calling thread. */
static timer_t thread_timer(void) {
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = SIGALRM;
    ev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    timer_t t;
    timer_create(CLOCK_MONOTONIC, &ev, &t);
    struct itimerspec every = {{0, 50000}, {0, 50000}};
    timer_settime(t, 0, &every, NULL);
    return t;
}

static void *worker(void *arg) {
    (void)arg;
    thread_timer();
    for (long k = 0; property && k < 200000; k++)
        property("step", "1");
    return NULL;
}

static int mode_exit(void) {
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_sigaction = on_tick_exit;
    act.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGALRM, &act, NULL);
    next_event();
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    printf("the worker ended\n");
    respond("{}");
    printf("responded\n");
    fflush(stdout);
    /* The invoke's deadline (3 s in the test) passes meanwhile. */
    double before = cpu_ms();
    struct timespec wait = {5, 0};
    while (nanosleep(&wait, &wait) != 0) {
    }
    double used = cpu_ms() - before;
    printf("while the main thread slept 5 s, the process used %s CPU\n",
           used < 100 ? "almost no" : "a lot of");
    fflush(stdout);
    next_event();
    return 9;
}

static void close_fd(void *fd) { close(*(int *)fd); }

/* The thread that asks for the next event (cancel), once it runs. */
static pid_t reader_tid;

/* Whether thread `tid` of this process is in system call `nr`, not running: its
 * /proc/self/task/<tid>/syscall starts with the call's number then ("running" otherwise). */
static int blocked_in(pid_t tid, long nr) {
    char path[64], text[64] = "";
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t r = read(fd, text, sizeof text - 1);
    close(fd);
    return r > 0 && text[0] >= '0' && text[0] <= '9' && atol(text) == nr;
}

/* Asks for the next event on a connection of its own while the only invoke is in flight: the
 * simulator holds the request, and the thread blocks in read. The connection is closed when
 * the thread is cancelled. */
static void *ask_next(void *arg) {
    (void)arg;
    __atomic_store_n(&reader_tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
    int fd = probe_api_connect();
    pthread_cleanup_push(close_fd, &fd);
    const char *req = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n";
    if (write(fd, req, strlen(req)) > 0) {
        char buf[4096];
        while (read(fd, buf, sizeof buf) > 0) {
        }
    }
    pthread_cleanup_pop(1);
    return NULL;
}

static int mode_cancel(void) {
    next_event();
    pthread_t t;
    pthread_create(&t, NULL, ask_next, NULL);
    /* Cancelled where it waits for the answer the simulator holds back, however long it
     * takes the thread to get there. */
    pid_t tid;
    while (!(tid = __atomic_load_n(&reader_tid, __ATOMIC_ACQUIRE)) || !blocked_in(tid, SYS_read)) {
        struct timespec ms = {0, 1000 * 1000};
        nanosleep(&ms, NULL);
    }
    pthread_cancel(t);
    void *result = NULL;
    pthread_join(t, &result);
    printf("the reader was %s\n", result == PTHREAD_CANCELED ? "cancelled" : "not cancelled");
    fflush(stdout);
    respond("{}");
    next_event(); /* never answered: the simulator is idle and the runner ends us */
    return 9;
}

static volatile sig_atomic_t stalled_done;
static double stall_cpu_ms = -1;

static void on_tick_stall(int sig, siginfo_t *si, void *context) {
    (void)sig;
    (void)si;
    if (stalled_done)
        return;
    /* With the library: only where it interrupted the library holding its gate (a call from
     * here then answers LAMBDA_METER_BUSY, -6). */
    if (property && (!in_library(context) || property("probe", "1") != -6))
        return;
    double before = cpu_ms();
    struct timespec wait = {5, 0};
    while (nanosleep(&wait, &wait) != 0) {
    }
    stall_cpu_ms = cpu_ms() - before;
    stalled_done = 1;
}

static int mode_stall(void) {
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_sigaction = on_tick_stall;
    act.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGALRM, &act, NULL);
    next_event();
    respond("{}");
    /* The library's watchdog looks at the finished invoke now (it may hold the gate then, and
     * the handler must find the gate held by this very thread): let it be done first. */
    for (int k = 0; property && k < 5000; k++)
        property("step", "1");
    timer_t t = thread_timer();
    while (!stalled_done)
        if (property)
            property("step", "1");
    timer_delete(t);
    printf("while a handler waited 5 s, the process used %s CPU\n",
           stall_cpu_ms < 100 ? "almost no" : "a lot of");
    fflush(stdout);
    const char *report = getenv("STALL_REPORT");
    FILE *f = report ? fopen(report, "w") : NULL;
    if (f) {
        fprintf(f, "%.0f\n", stall_cpu_ms);
        fclose(f);
    }
    next_event();
    respond("{}");
    fflush(stdout);
    next_event();
    return 9;
}

static sigjmp_buf jump_back;
static volatile sig_atomic_t armed, abandoned;
static timer_t leave_timer;

static void on_tick_leave(int sig, siginfo_t *si, void *context) {
    (void)sig;
    (void)si;
    if (armed && in_library(context) && property("probe", "1") == -6) {
        armed = 0;
        abandoned = 1;
        /* No further tick: its signal frame would land where the abandoned frames were. */
        struct itimerspec off = {{0, 0}, {0, 0}};
        timer_settime(leave_timer, 0, &off, NULL);
        siglongjmp(jump_back, 1);
    }
}

/* The rest of the run, from below a large stack buffer this function never writes (a
 * runtime's receive buffer, say): the frames of the entry abandoned just before lay where it
 * is. Never returns. */
static __attribute__((noinline, noreturn)) void the_rest_under_a_buffer(int invokes, timer_t t) {
    char buffer[256 * 1024];
    __asm__ volatile("" : : "r"(buffer) : "memory");
    timer_delete(t);
    armed = 0;
    respond("{}");
    for (int i = 1; i < invokes; i++) {
        next_event();
        respond("{}");
    }
    printf("%d invokes answered\n", invokes);
    fflush(stdout);
    next_event(); /* never answered: the simulator is idle and the runner ends us */
    exit(9);
}

/* `invokes` invokes. In the first, the property call runs under the timer until a tick finds
 * this thread holding the library's gate and leaves by siglongjmp (as in gate_leave_probe);
 * everything after that runs from below an untouched buffer. */
static int mode_pad(int invokes) {
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_sigaction = on_tick_leave;
    act.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGALRM, &act, NULL);
    next_event();
    /* Armed once the library's watchdog has had its look at the new invoke (it may hold the
     * gate then, and the handler must find the gate held by this very thread). */
    for (int k = 0; property && k < 5000; k++)
        property("step", "1");
    timer_t t = thread_timer();
    leave_timer = t;
    armed = 1;
    for (volatile long k = 0; property && !abandoned && k < 2000000; k++) {
        if (sigsetjmp(jump_back, 1) != 0)
            break;
        property("step", "1");
    }
    the_rest_under_a_buffer(invokes, t);
}

int main(int argc, char **argv) {
    probe_api_from_env();
    property = (int (*)(const char *, const char *))dlsym(RTLD_DEFAULT, "lambda_meter_property");
    dl_iterate_phdr(find_library, NULL);
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "exit") == 0)
        return mode_exit();
    if (strcmp(mode, "cancel") == 0)
        return mode_cancel();
    if (strcmp(mode, "stall") == 0)
        return mode_stall();
    if (strcmp(mode, "pad") == 0 && argc > 2)
        return mode_pad(atoi(argv[2]));
    fprintf(stderr, "usage: edge_gate_probe exit|cancel|pad N|stall\n");
    return 2;
}
