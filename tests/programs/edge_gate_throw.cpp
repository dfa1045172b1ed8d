/*
 * A probe (C++): a SIGALRM handler that leaves by throwing an exception, as
 * sigthrow_probe.cpp's does, but from where it interrupted lambda-meter itself (inside its
 * custom-properties call, lambda_meter_property, looked up with dlsym: absent without the
 * library, so nothing is thrown then). The invoke catches the exception and carries on, as it
 * does for one thrown from its own code. `edge_gate_throw N`: N invokes; prints how many
 * ended, the same with and without the library.
 */
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <link.h>
#include <sys/time.h>
#include <ucontext.h>

#include "probe_library.h"
#include "probe_runtime.h"

namespace {

volatile sig_atomic_t calling;

struct LeftTheLibrary {};

void on_alarm(int, siginfo_t *, void *context) {
    if (calling && in_library(context)) {
        calling = 0;
        throw LeftTheLibrary();
    }
}

} // namespace

int main(int argc, char **argv) {
    probe_api_from_env();
    int n = argc > 1 ? atoi(argv[1]) : 5;
    auto property = reinterpret_cast<int (*)(const char *, const char *)>(
        dlsym(RTLD_DEFAULT, "lambda_meter_property"));
    dl_iterate_phdr(find_library, nullptr);
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_sigaction = on_alarm;
    act.sa_flags = SA_SIGINFO | SA_RESTART | SA_NODEFER;
    sigaction(SIGALRM, &act, nullptr);
    struct itimerval every = {{0, 50}, {0, 50}};
    setitimer(ITIMER_REAL, &every, nullptr);
    for (int i = 0; i < n; i++) {
        next_event();
        for (int k = 0; property && k < 2000; k++) {
            try {
                calling = 1;
                property("step", "1");
                calling = 0;
            } catch (const LeftTheLibrary &) {
            }
        }
        respond("{}");
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, nullptr);
    printf("%d invokes\n", n);
    fflush(stdout);
    next_event(); /* never answered: the simulator is idle and the runner ends us */
    return 9;
}
