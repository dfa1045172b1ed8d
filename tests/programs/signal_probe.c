/*
 * A runtime whose signal handler talks to the Runtime API: it gets one event, then SIGALRM
 * fires every 100 µs while the main thread allocates and frees memory in a loop; each signal's
 * handler writes one byte of a prepared /error request to the result connection with write()
 * (async-signal-safe), and the last one closes the socket from the handler. The main thread
 * then reads nothing more and reports. With hooks that allocate or lock inside the handler (the
 * signal may land inside malloc), this hung.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sys/time.h>

#include "probe_api.h"

static char request[512];
static volatile size_t request_len, sent;
static volatile int result_fd = -1, closed;

static void on_alarm(int sig) {
    (void)sig;
    int saved = errno;
    if (sent < request_len) {
        if (write(result_fd, request + sent, 1) == 1)
            sent++;
    } else if (!closed) {
        close(result_fd);
        closed = 1;
    }
    errno = saved;
}

int main(void) {
    probe_api_from_env();
    int fd = probe_api_connect();
    const char *next = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n";
    if (write(fd, next, strlen(next)) < 0)
        return 4;
    char answer[4096];
    size_t have = 0;
    char *end = NULL;
    while (!end && have < sizeof answer - 1) {
        ssize_t r = read(fd, answer + have, sizeof answer - 1 - have);
        if (r <= 0)
            return 5;
        have += (size_t)r;
        answer[have] = 0;
        end = strstr(answer, "\r\n\r\n");
    }
    char id[128] = "";
    char *h = strcasestr(answer, "Lambda-Runtime-Aws-Request-Id: ");
    if (h)
        sscanf(h + 31, "%127[^\r\n]", id);
    const char *body = "{\"errorType\":\"Crashed\",\"errorMessage\":\"from a signal handler\"}";
    request_len = (size_t)snprintf(request, sizeof request,
                                   "POST /2018-06-01/runtime/invocation/%s/error HTTP/1.1\r\n"
                                   "Host: api\r\nLambda-Runtime-Function-Error-Type: Crashed\r\n"
                                   "Content-Length: %zu\r\n\r\n%s",
                                   id, strlen(body), body);
    result_fd = probe_api_connect();

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval every = {{0, 100}, {0, 100}};
    setitimer(ITIMER_REAL, &every, NULL);
    while (!closed) {
        void *blocks[64];
        for (int i = 0; i < 64; i++)
            blocks[i] = malloc((size_t)(16 + i * 24));
        for (int i = 0; i < 64; i++)
            free(blocks[i]);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("sent %zu of %zu bytes from the handler, then closed\n", (size_t)sent, (size_t)request_len);
    return 0;
}
