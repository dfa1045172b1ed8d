/*
 * oom_runtime: a custom runtime in plain C that keeps going when memory runs out.
 *
 * It talks to the Runtime API on one keep-alive connection with static buffers only (no
 * malloc of its own on that path). An event whose body holds "starve" caps the address space
 * (RLIMIT_AS) a little above its current size and takes every byte malloc will give, in ever
 * smaller pieces down to the smallest size class, until malloc fails with ENOMEM; it then
 * posts the result while memory is still exhausted (as a runtime does whose handler keeps a
 * large cache), and only afterwards frees everything and lifts the cap. Every other event is
 * answered at once. Each result is {"invoke":N,"exhausted":0|1}; each invoke also prints one
 * line on stdout.
 */
#define _GNU_SOURCE
#include "probe_api.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static char request[1024];
static char response[65536];
static char body[256];
static void *kept[200000];

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            perror("oom_runtime: write");
            exit(4);
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Reads one whole response into `response`; returns where its body starts (NUL-terminated). */
static char *read_response(int fd) {
    size_t used = 0;
    char *end = NULL;
    size_t length = 0;
    response[0] = 0;
    for (;;) {
        if (!end) {
            end = strstr(response, "\r\n\r\n");
            if (end) {
                char *cl = strcasestr(response, "Content-Length:");
                length = cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0;
            }
        }
        if (end && used >= (size_t)(end + 4 - response) + length)
            break;
        if (used + 1 >= sizeof response) {
            fprintf(stderr, "oom_runtime: response too large\n");
            exit(5);
        }
        ssize_t r = read(fd, response + used, sizeof response - 1 - used);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            perror("oom_runtime: read");
            exit(6);
        }
        used += (size_t)r;
        response[used] = 0;
    }
    return end + 4;
}

/* The value of header `name` in `response` (up to the end of its line), copied into `out`. */
static void header(const char *name, char *out, size_t cap) {
    const char *h = strcasestr(response, name);
    out[0] = 0;
    if (!h)
        return;
    h += strlen(name);
    while (*h == ' ' || *h == ':')
        h++;
    size_t n = strcspn(h, "\r\n");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, h, n);
    out[n] = 0;
}

/* Caps the address space and takes everything malloc gives; returns how many pieces. */
static size_t starve(struct rlimit *saved) {
    getrlimit(RLIMIT_AS, saved);
    long pages = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    if (!statm || fscanf(statm, "%ld", &pages) != 1)
        exit(7);
    fclose(statm);
    struct rlimit cap = {(rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (16 << 20), saved->rlim_max};
    setrlimit(RLIMIT_AS, &cap);
    size_t n = 0;
    static const size_t big[] = {1 << 20, 64 << 10, 4 << 10};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
        while (n < sizeof kept / sizeof kept[0] && (kept[n] = malloc(big[i])) != NULL)
            n++;
    /* Every small size class (each has chunks of its own), largest first. */
    for (size_t size = 2048; size >= 16; size -= 16)
        while (n < sizeof kept / sizeof kept[0] && (kept[n] = malloc(size)) != NULL)
            n++;
    return n;
}

int main(void) {
    probe_api_from_env();
    const char *host = getenv("AWS_LAMBDA_RUNTIME_API");
    int fd = probe_api_connect();
    for (int invoke = 1;; invoke++) {
        int n = snprintf(request, sizeof request,
                         "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: %s\r\n\r\n",
                         host);
        write_all(fd, request, (size_t)n);
        const char *event = read_response(fd);
        char id[128];
        header("Lambda-Runtime-Aws-Request-Id", id, sizeof id);
        struct rlimit saved;
        size_t pieces = strstr(event, "starve") ? starve(&saved) : 0;
        int len = snprintf(body, sizeof body, "{\"invoke\":%d,\"exhausted\":%d}", invoke,
                           pieces > 0 && pieces < sizeof kept / sizeof kept[0]);
        n = snprintf(request, sizeof request,
                     "POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                     id, host, len, body);
        write_all(fd, request, (size_t)n);
        read_response(fd);
        if (pieces > 0) {
            for (size_t i = 0; i < pieces; i++)
                free(kept[i]);
            setrlimit(RLIMIT_AS, &saved);
        }
        printf("invoke %d answered\n", invoke);
        fflush(stdout);
    }
}
