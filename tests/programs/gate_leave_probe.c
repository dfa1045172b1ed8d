/*
 * A runtime whose SIGALRM handler leaves by siglongjmp whenever it interrupted the library
 * itself: lambda-meter is then abandoned half-way through its own work, on this thread, with
 * no hook told (issue 20: no longjmp hook, no handler-depth count). Every later invoke must
 * still be metered.
 *
 * `gate_leave_probe N`: N invokes; in each, the custom-properties call of the library's C ABI
 * (looked up with dlsym, absent without the library) runs in a loop while an interval timer
 * fires every 50 µs. Prints "N invokes" (the same with and without the library); how many
 * times the handler left the library goes to the file named by LEAVE_REPORT, if set.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <ucontext.h>

#include "probe_library.h"
#include "probe_runtime.h"

static sigjmp_buf jump_back;
static volatile sig_atomic_t calling, left_library;

static void on_alarm(int sig, siginfo_t *si, void *context) {
    (void)sig;
    (void)si;
    if (calling && in_library(context)) {
        calling = 0;
        left_library++;
        siglongjmp(jump_back, 1);
    }
}

int main(int argc, char **argv) {
    probe_api_from_env();
    int n = argc > 1 ? atoi(argv[1]) : 20;
    int (*property)(const char *, const char *) =
        (int (*)(const char *, const char *))dlsym(RTLD_DEFAULT, "lambda_meter_property");
    dl_iterate_phdr(find_library, NULL);
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_sigaction = on_alarm;
    act.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGALRM, &act, NULL);
    struct itimerval every = {{0, 50}, {0, 50}};
    setitimer(ITIMER_REAL, &every, NULL);
    for (volatile int i = 0; i < n; i++) {
        next_event();
        for (volatile int k = 0; property && k < 2000; k++) {
            if (sigsetjmp(jump_back, 1) != 0)
                continue;
            calling = 1;
            property("step", "1");
            calling = 0;
        }
        char body[64];
        snprintf(body, sizeof body, "{\"invoke\":%d}", i);
        respond(body);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("%d invokes\n", n);
    fflush(stdout);
    const char *report = getenv("LEAVE_REPORT");
    if (report) {
        FILE *f = fopen(report, "w");
        if (f) {
            fprintf(f, "%d\n", (int)left_library);
            fclose(f);
        }
    }
    next_event(); /* never answered: the simulator is idle and the runner ends us */
    return 9;
}
