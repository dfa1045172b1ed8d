/*
 * Sends its /next request with sendfile from a file (bytes the library cannot see), reads the
 * answer, and posts the result on a new connection. The library must stop following that
 * connection quietly; the program's output must not change.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/sendfile.h>

#include "probe_api.h"

int main(void) {
    probe_api_from_env();

    FILE *tmp = tmpfile();
    int file = tmp ? fileno(tmp) : -1;
    const char *next = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n";
    if (write(file, next, strlen(next)) < 0)
        return 4;
    int fd = probe_api_connect();
    off_t offset = 0;
    ssize_t sent = sendfile(fd, file, &offset, strlen(next));
    char answer[4096] = "";
    size_t have = 0;
    while (!strstr(answer, "\r\n\r\n") && have < sizeof answer - 1) {
        ssize_t r = read(fd, answer + have, sizeof answer - 1 - have);
        if (r <= 0)
            return 5;
        have += (size_t)r;
        answer[have] = 0;
    }
    char id[128] = "";
    char *h = strcasestr(answer, "Lambda-Runtime-Aws-Request-Id: ");
    if (h)
        sscanf(h + 31, "%127[^\r\n]", id);
    int post_fd = probe_api_connect();
    char post[512];
    int n = snprintf(post, sizeof post,
                     "POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: api\r\n"
                     "Content-Length: 2\r\n\r\n{}",
                     id);
    if (write(post_fd, post, (size_t)n) != n)
        return 6;
    char reply[256];
    ssize_t got = read(post_fd, reply, sizeof reply);
    printf("sendfile %s, posted %s\n", sent == (ssize_t)strlen(next) ? "whole" : "partial",
           got > 12 && memcmp(reply, "HTTP/1.1 202", 12) == 0 ? "202" : "?");
    return 0;
}
