/*
 * A small custom runtime for tests/records_survive.rs: for each event it may burn CPU, posts a
 * result (an error when the event asks), and then, when the event asks, ends the process
 * before its next GET /next: the moment lambda-meter keeps the finished invoke's record in
 * memory, waiting for that /next (to measure PostResponseDuration).
 *
 * Events are compact JSON:
 *   {"fail":"Type"}   post an error of that type instead of a result
 *   {"burn_ms":N}     spend N ms of this process's CPU time first
 *   {"after_ms":N}    sleep N ms after the result's answer, before the next GET /next
 *   {"unread":1}      never read the result's answer: end so (with "then"), or leave its
 *                     connection open, unread, and go on to the next event
 *   {"then":HOW}      after the result was posted (and its answer read, unless "unread"):
 *     "_exit"         _exit(0)
 *     "exit"          exit(0)
 *     "segv"          raise(SIGSEGV)          (default disposition)
 *     "fault"         a real invalid write    (SIGSEGV, default disposition)
 *     "abort"         abort()
 *     "term"          kill(getpid(), SIGTERM) (default disposition)
 *     "kill"          kill(getpid(), SIGKILL)
 *     "usr1_exit"     exit(0) from inside a SIGUSR1 handler (raised at once)
 *     "alarm_exit"    exit(0) from inside a SIGALRM handler (a 10 ms timer, then pause())
 *
 * It writes nothing to stdout or stderr unless something goes wrong (a test whose stdout is a
 * full pipe relies on that): one connection per request, closed after its answer (one left
 * open, unread, with "unread" alone).
 */
#define _GNU_SOURCE
#include "probe_api.h"
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

static void die(const char *what) {
    fprintf(stderr, "post_then_end: %s: %s\n", what, strerror(errno));
    _exit(90);
}

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write");
        p += w;
        n -= (size_t)w;
    }
}

/* Reads one HTTP response on fd: returns its body (malloc'd); copies the request id header. */
static char *read_response(int fd, char *request_id, size_t id_cap) {
    static char head[16384];
    size_t used = 0;
    char *end = NULL;
    while (!end) {
        if (used + 1 >= sizeof head)
            die("response head too long");
        ssize_t r = read(fd, head + used, sizeof head - 1 - used);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            die("read");
        used += (size_t)r;
        head[used] = 0;
        end = strstr(head, "\r\n\r\n");
    }
    size_t head_len = (size_t)(end - head) + 4, clen = 0;
    for (char *line = head; line < end; line = strstr(line, "\r\n") + 2) {
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            clen = strtoul(line + 15, NULL, 10);
        if (request_id && strncasecmp(line, "Lambda-Runtime-Aws-Request-Id:", 30) == 0) {
            const char *v = line + 30;
            while (*v == ' ')
                v++;
            size_t n = strcspn(v, "\r\n");
            if (n >= id_cap)
                n = id_cap - 1;
            memcpy(request_id, v, n);
            request_id[n] = 0;
        }
    }
    char *body = malloc(clen + 1);
    size_t have = used - head_len;
    memcpy(body, head + head_len, have);
    while (have < clen) {
        ssize_t r = read(fd, body + have, clen - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            die("read body");
        have += (size_t)r;
    }
    body[clen] = 0;
    return body;
}

/* The string value of "key":"..." in a compact JSON object (test events only). */
static const char *field(const char *json, const char *key, char *out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    size_t n = *p == '"' ? strcspn(++p, "\"") : strcspn(p, ",}");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, p, n);
    out[n] = 0;
    return out;
}

/* Spends `ms` of this process's CPU time. */
static void burn(long ms) {
    struct timespec a, b;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    volatile uint64_t x = 0;
    do {
        for (int i = 0; i < 100000; i++)
            x += (uint64_t)i;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    } while ((b.tv_sec - a.tv_sec) * 1000L + (b.tv_nsec - a.tv_nsec) / 1000000L < ms);
}

static void exit_from_handler(int sig) {
    (void)sig;
    exit(0);
}

/* Ends the process as `how` says (the result is already posted). */
static void end(const char *how) {
    if (strcmp(how, "_exit") == 0)
        _exit(0);
    if (strcmp(how, "exit") == 0)
        exit(0);
    if (strcmp(how, "segv") == 0)
        raise(SIGSEGV);
    if (strcmp(how, "fault") == 0)
        *(volatile int *)(uintptr_t)8 = 1;
    if (strcmp(how, "abort") == 0)
        abort();
    if (strcmp(how, "term") == 0)
        kill(getpid(), SIGTERM);
    if (strcmp(how, "kill") == 0)
        kill(getpid(), SIGKILL);
    if (strcmp(how, "usr1_exit") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = exit_from_handler;
        sigaction(SIGUSR1, &sa, NULL);
        raise(SIGUSR1);
    }
    if (strcmp(how, "alarm_exit") == 0) {
        signal(SIGALRM, exit_from_handler);
        struct itimerval t = {{0, 0}, {0, 10000}};
        setitimer(ITIMER_REAL, &t, NULL);
        for (;;)
            pause();
    }
    fprintf(stderr, "post_then_end: survived %s\n", how);
    _exit(91);
}

int main(void) {
    if (!getenv("AWS_LAMBDA_RUNTIME_API"))
        return 2;
    probe_api_from_env();
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    for (;;) {
        int fd = probe_api_connect();
        char req[256];
        int n = snprintf(req, sizeof req,
                         "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: %s\r\n\r\n",
                         api);
        write_all(fd, req, (size_t)n);
        char id[128] = "";
        char *event = read_response(fd, id, sizeof id);
        close(fd);

        char value[64];
        if (field(event, "burn_ms", value, sizeof value))
            burn(atol(value));
        char type[64] = "", body[256], extra[128] = "";
        const char *kind = "response";
        int len;
        if (field(event, "fail", type, sizeof type)) {
            kind = "error";
            len = snprintf(body, sizeof body,
                           "{\"errorType\":\"%s\",\"errorMessage\":\"failing on purpose\"}", type);
            snprintf(extra, sizeof extra, "Lambda-Runtime-Function-Error-Type: %s\r\n", type);
        } else {
            len = snprintf(body, sizeof body, "{\"ok\":true}");
        }
        fd = probe_api_connect();
        char head[1024];
        int h = snprintf(head, sizeof head,
                         "POST /2018-06-01/runtime/invocation/%s/%s HTTP/1.1\r\nHost: %s\r\n"
                         "Content-Type: application/json\r\n%sContent-Length: %d\r\n\r\n",
                         id, kind, api, extra, len);
        write_all(fd, head, (size_t)h);
        write_all(fd, body, (size_t)len);
        char how[32];
        if (field(event, "unread", value, sizeof value)) {
            if (field(event, "then", how, sizeof how))
                end(how);
            free(event);
            continue;
        }
        free(read_response(fd, NULL, 0));
        close(fd);
        if (field(event, "after_ms", value, sizeof value)) {
            long ms = atol(value);
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
        }

        if (field(event, "then", how, sizeof how))
            end(how);
        free(event);
    }
}
