/*
 * The Runtime API conversation of the small test runtimes that need only the plain loop: one
 * keep-alive connection, GET .../next, POST .../response, each request in one write.
 */
#ifndef PROBE_RUNTIME_H
#define PROBE_RUNTIME_H

#include <errno.h>

#include "probe_api.h"

static int api_fd = -1;
static char request_id[128];
static char event[8192];

static void send_all(const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(api_fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            exit(6);
        p += w;
        n -= (size_t)w;
    }
}

/* Reads one HTTP response: the request id header (if any) into request_id, the body into
 * event. */
static void read_reply(void) {
    static char buf[16384];
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        if (have >= sizeof buf - 1)
            exit(7);
        ssize_t r = read(api_fd, buf + have, sizeof buf - 1 - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            exit(5);
        have += (size_t)r;
        buf[have] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    size_t head = (size_t)(end - buf) + 4, clen = 0;
    for (char *line = buf; line && line < end; line = strstr(line, "\r\n") + 2) {
        if (strncmp(line, "Content-Length:", 15) == 0 || strncmp(line, "content-length:", 15) == 0)
            clen = strtoul(line + 15, NULL, 10);
        if (strncmp(line, "Lambda-Runtime-Aws-Request-Id:", 30) == 0 ||
            strncmp(line, "lambda-runtime-aws-request-id:", 30) == 0)
            sscanf(line + 30, " %127[^\r\n]", request_id);
    }
    if (clen >= sizeof event)
        exit(8);
    size_t got = have - head;
    memcpy(event, buf + head, got);
    while (got < clen) {
        ssize_t r = read(api_fd, event + got, clen - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            exit(5);
        got += (size_t)r;
    }
    event[clen] = 0;
}

/* The next event: the invoke is in flight once this returns. */
static void next_event(void) {
    if (api_fd < 0)
        api_fd = probe_api_connect();
    const char *req = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n";
    send_all(req, strlen(req));
    read_reply();
}

/* Posts the result in one write (two small writes would wait for a delayed ACK). */
static void respond(const char *body) {
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: api\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     request_id, strlen(body), body);
    send_all(req, (size_t)n);
    read_reply();
}

#endif
