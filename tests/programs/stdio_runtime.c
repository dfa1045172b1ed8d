/*
 * A custom runtime that talks to the Runtime API through stdio: one keep-alive connection,
 * fdopen'd twice (a "w" stream and an "r" stream on a dup of the socket), requests written
 * with fprintf/fputs/fwrite and flushed, answers read with fgets (headers), fread (bodies) and
 * fgetc. The test event protocol is the one in tests/functions/python/handler.py (ok, fail,
 * big, echo).
 */
#define _GNU_SOURCE
#include <strings.h>

#include "probe_api.h"

static FILE *out, *in;

/* Reads one answer: status, request id, body (malloc'd). */
static char *read_answer(int *status, char *id, size_t id_cap, size_t *len) {
    char line[8192];
    if (!fgets(line, sizeof line, in))
        exit(5);
    *status = atoi(line + 9);
    size_t clen = 0;
    while (fgets(line, sizeof line, in) && strcmp(line, "\r\n") != 0) {
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            clen = strtoul(line + 15, NULL, 10);
        if (id && strncasecmp(line, "Lambda-Runtime-Aws-Request-Id:", 30) == 0)
            sscanf(line + 30, " %127[^\r\n]", id);
    }
    (void)id_cap;
    char *body = malloc(clen + 1);
    size_t got = 0;
    if (clen > 0) {
        /* The first byte with fgetc, the rest with fread. */
        int c = fgetc(in);
        if (c == EOF)
            exit(6);
        body[0] = (char)c;
        got = 1 + fread(body + 1, 1, clen - 1, in);
    }
    body[got] = 0;
    *len = got;
    return body;
}

int main(void) {
    probe_api_from_env();
    int fd = probe_api_connect();
    out = fdopen(fd, "w");
    in = fdopen(dup(fd), "r");
    for (;;) {
        fputs("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n", out);
        fflush(out);
        int status;
        char id[128] = "";
        size_t len;
        char *event = read_answer(&status, id, sizeof id, &len);
        const char *kind = "response";
        char *result;
        size_t rlen;
        if (strstr(event, "\"fail\"")) {
            kind = "error";
            result = strdup("{\"errorType\":\"ValueError\",\"errorMessage\":\"failing on purpose\"}");
        } else if (strstr(event, "\"big\"")) {
            rlen = 300000;
            result = malloc(rlen + 3);
            result[0] = '"';
            memset(result + 1, 'x', rlen);
            result[rlen + 1] = '"';
            result[rlen + 2] = 0;
        } else {
            result = malloc(64);
            snprintf(result, 64, "{\"ok\":true,\"eventBytes\":%zu}", len);
        }
        rlen = strlen(result);
        fprintf(out, "POST /2018-06-01/runtime/invocation/%s/%s HTTP/1.1\r\nHost: api\r\n", id, kind);
        if (strcmp(kind, "error") == 0)
            fputs("Lambda-Runtime-Function-Error-Type: ValueError\r\n", out);
        fprintf(out, "Content-Length: %zu\r\n\r\n", rlen);
        fwrite(result, 1, rlen, out);
        fflush(out);
        free(read_answer(&status, NULL, 0, &len));
        free(result);
        free(event);
    }
}
