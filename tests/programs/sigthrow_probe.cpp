/*
 * A C++ runtime whose SIGUSR1 handler leaves by throwing: in each of N invokes (argv[1]) it
 * sends itself SIGUSR1 inside a try block, and the handler throws an exception that the
 * invoke catches (how C++ runtimes turn a signal into an exception). The handler is
 * installed with SA_NODEFER, so the signal is not left blocked after the throw.
 * Prints how often the handler was left by the exception; the output must be the same with
 * and without lambda-meter, and with it every invoke must still get its record.
 */
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "probe_api.h"

namespace {

int api_fd = -1;
char request_id[128];

void send_all(const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(api_fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            exit(6);
        p += w;
        n -= static_cast<size_t>(w);
    }
}

/* Reads one HTTP response (the request id, if any, into request_id) and drops its body. */
void read_reply() {
    static char buf[16384];
    size_t have = 0;
    char *end = nullptr;
    while (!end) {
        if (have >= sizeof buf - 1)
            exit(7);
        ssize_t r = read(api_fd, buf + have, sizeof buf - 1 - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            exit(5);
        have += static_cast<size_t>(r);
        buf[have] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    size_t head = static_cast<size_t>(end - buf) + 4, clen = 0;
    for (char *line = buf; line < end; line = strstr(line, "\r\n") + 2) {
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            clen = strtoul(line + 15, nullptr, 10);
        if (strncasecmp(line, "Lambda-Runtime-Aws-Request-Id:", 30) == 0)
            sscanf(line + 30, " %127[^\r\n]", request_id);
    }
    size_t got = have - head;
    while (got < clen) {
        char sink[4096];
        size_t want = clen - got < sizeof sink ? clen - got : sizeof sink;
        ssize_t r = read(api_fd, sink, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            exit(5);
        got += static_cast<size_t>(r);
    }
}

void next_event() {
    if (api_fd < 0)
        api_fd = probe_api_connect();
    const char *req = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n";
    send_all(req, strlen(req));
    read_reply();
}

void respond(const char *body) {
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: api\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     request_id, strlen(body), body);
    send_all(req, static_cast<size_t>(n));
    read_reply();
}

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
