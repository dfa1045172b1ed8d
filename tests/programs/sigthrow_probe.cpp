/*
 * A C++ runtime whose SIGUSR1 handler leaves by throwing: in each of N invokes (argv[1]) it
 * sends itself SIGUSR1 inside a try block, and the handler throws an exception that the
 * invoke catches (how C++ runtimes turn a signal into an exception). The handler is
 * installed with SA_NODEFER, so the signal is not left blocked after the throw.
 * Prints how often the handler was left by the exception; the output must be the same with
 * and without lambda-meter, and with it every invoke must still get its record.
 */
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "probe_runtime.h"

namespace {

struct Interrupted {
    int sig;
};

void h_throw(int sig) { throw Interrupted{sig}; }

/* kill, called through a pointer that may throw: glibc declares kill noexcept for C++, so a
 * direct call would leave no call site for the exception to land in. */
int (*volatile send_signal)(pid_t, int) = kill;

} // namespace

int main(int argc, char **argv) {
    probe_api_from_env();
    int n = argc > 1 ? atoi(argv[1]) : 1;
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_handler = h_throw;
    act.sa_flags = SA_NODEFER;
    sigaction(SIGUSR1, &act, nullptr);
    int caught = 0;
    for (int i = 0; i < n; i++) {
        next_event();
        try {
            send_signal(getpid(), SIGUSR1);
        } catch (const Interrupted &e) {
            caught += e.sig == SIGUSR1;
        }
        char body[64];
        snprintf(body, sizeof body, "{\"invoke\":%d}", i);
        respond(body);
    }
    printf("%d invokes, the handler was left by an exception %d times\n", n, caught);
    fflush(stdout);
    next_event(); /* never answered: the simulator is idle, the runner ends us */
    return 9;
}
