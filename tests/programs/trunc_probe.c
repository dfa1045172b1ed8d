/*
 * Reads the /next answer's head with MSG_PEEK, then discards the whole answer with
 * recv(fd, NULL, n, MSG_TRUNC) (TCP drops the bytes without copying them, so the buffer may be
 * NULL), posts a result on a new connection, and prints what each call returned. With a hook
 * that read the buffer anyway, the host crashed.
 */
#define _GNU_SOURCE
#include "probe_api.h"

int main(void) {
    probe_api_from_env();
    int fd = probe_api_connect();
    const char *next = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n";
    if (write(fd, next, strlen(next)) < 0)
        return 4;
    char head[4096];
    ssize_t peeked;
    do {
        usleep(10000);
        peeked = recv(fd, head, sizeof head - 1, MSG_PEEK);
    } while (peeked > 0 && !memmem(head, (size_t)peeked, "\r\n\r\n", 4));
    head[peeked > 0 ? peeked : 0] = 0;
    char id[128] = "";
    char *h = strcasestr(head, "Lambda-Runtime-Aws-Request-Id: ");
    if (h)
        sscanf(h + 31, "%127[^\r\n]", id);
    ssize_t dropped = recv(fd, NULL, (size_t)peeked, MSG_TRUNC);
    printf("peeked head, dropped %s\n", dropped == peeked ? "all of it" : "something else");
    close(fd);

    fd = probe_api_connect();
    char post[512];
    int n = snprintf(post, sizeof post,
                     "POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: api\r\n"
                     "Content-Length: 2\r\n\r\n{}",
                     id);
    if (write(fd, post, (size_t)n) != n)
        return 5;
    char answer[512];
    ssize_t got = read(fd, answer, sizeof answer);
    printf("posted: %s\n", got > 12 && memcmp(answer, "HTTP/1.1 202", 12) == 0 ? "202" : "?");
    return 0;
}
