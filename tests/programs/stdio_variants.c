/*
 * A custom runtime that talks to the Runtime API through stdio (one keep-alive connection,
 * fdopen'd as a "w" stream and an "r" stream on a dup of the socket), reading or writing in one
 * of the ways argv[1] names:
 *   fgets_chk       status and header lines with fgets into a buffer of known size; built with
 *                   -O2 -D_FORTIFY_SOURCE=2 the call is __fgets_chk;
 *   getline         lines with getline, which glibc's headers turn into __getdelim at -O2;
 *   fread_chk       bodies with fread into a buffer of known size (__fread_chk, same build);
 *   fgets_unlocked  lines with fgets_unlocked;
 *   fread_unlocked  bodies with fread_unlocked;
 *   getc_unlocked   bodies byte by byte with getc_unlocked (inline at -O2: no call at all);
 *   write_unlocked  requests with fputs_unlocked and fwrite_unlocked;
 *   ungetc          each line's first byte peeked with getc and pushed back with ungetc
 *                   (a runtime looking for "HTTP/1.1 1" continue lines or the blank line);
 *   fscanf          the status line's code with fscanf;
 *   unbuffered      the read stream made unbuffered with setvbuf before its first read;
 *   user_buffer     the read stream given a buffer of the runtime's own with setvbuf;
 *   close_fileno    a new connection for every invoke, the old one's streams left behind
 *                   (closed with close(fileno(stream)), never fclose'd);
 *   many_streams    sixteen other streams fdopen'd on copies of the socket first, left open;
 *   two_threads     two threads, each with a connection and streams of its own (for a
 *                   Runtime API that hands out two events at once).
 * Everything else is read with fgets into memory of a size the compiler does not know (lines)
 * and fread into malloc'd memory (bodies), and written with fputs and fwrite: calls
 * lambda-meter follows, plain in either build. The event protocol is
 * tests/functions/python/handler.py's (ok, fail with "type", big with "bytes", echo). Prints
 * one line per invoke.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <strings.h>

#include "probe_api.h"

static __thread FILE *out, *in;
static const char *variant = "";

static int is(const char *v) {
    return strcmp(variant, v) == 0;
}

/* The line buffer, of a size the compiler knows, and the size fgets is told: a global it
 * cannot see through, so that under _FORTIFY_SOURCE the call is __fgets_chk. */
static __thread char line[8192];
int line_cap = sizeof line;
/* The same buffer, of a size the compiler does not know: fgets stays fgets. */
__thread char *line_ptr;
/* Bodies for fread_chk: a buffer of known size, and a limit the compiler cannot see through
 * (knowing the length fits, it would call plain fread). */
static char body_buf[4 << 20];
size_t body_cap = sizeof body_buf;

/* Reads one line of the answer into `line`. */
static void read_line(void) {
    if (is("fgets_chk")) {
        if (!fgets(line, line_cap, in))
            exit(5);
        return;
    }
    if (is("fgets_unlocked")) {
        if (!fgets_unlocked(line, line_cap, in))
            exit(5);
        return;
    }
    if (is("getline")) {
        static char *got;
        static size_t cap;
        ssize_t n = getline(&got, &cap, in);
        if (n <= 0 || (size_t)n >= sizeof line)
            exit(5);
        memcpy(line, got, (size_t)n + 1);
        return;
    }
    if (is("ungetc")) {
        int c = getc(in);
        if (c == EOF || ungetc(c, in) == EOF)
            exit(5);
    }
    if (!fgets(line_ptr, line_cap, in))
        exit(5);
}

/* Reads `len` body bytes (malloc'd, NUL-terminated). */
static char *read_body(size_t len) {
    char *body = malloc(len + 1);
    size_t got = 0;
    if (is("fread_chk")) {
        if (len > body_cap)
            exit(6);
        got = fread(body_buf, 1, len, in);
        memcpy(body, body_buf, got);
    } else if (is("fread_unlocked")) {
        got = fread_unlocked(body, 1, len, in);
    } else if (is("getc_unlocked")) {
        int c;
        while (got < len && (c = getc_unlocked(in)) != EOF)
            body[got++] = (char)c;
    } else {
        got = fread(body, 1, len, in);
    }
    if (got != len)
        exit(6);
    body[got] = 0;
    return body;
}

/* Reads one answer: status, request id, body (malloc'd). */
static char *read_answer(int *status, char *id, size_t *len) {
    if (is("fscanf")) {
        if (fscanf(in, "HTTP/1.1 %d", status) != 1)
            exit(5);
        read_line(); /* the rest of the status line */
    } else {
        read_line();
        *status = atoi(line + 9);
    }
    size_t clen = 0;
    for (;;) {
        read_line();
        if (strcmp(line, "\r\n") == 0)
            break;
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            clen = strtoul(line + 15, NULL, 10);
        if (id && strncasecmp(line, "Lambda-Runtime-Aws-Request-Id:", 30) == 0)
            sscanf(line + 30, " %127[^\r\n]", id);
    }
    *len = clen;
    return read_body(clen);
}

/* Writes `text` (or `len` bytes of it) to the request stream. */
static void put(const char *text, size_t len) {
    if (is("write_unlocked")) {
        if (len == 0)
            fputs_unlocked(text, out);
        else
            fwrite_unlocked(text, 1, len, out);
    } else if (len == 0) {
        fputs(text, out);
    } else {
        fwrite(text, 1, len, out);
    }
}

static void *serve(void *arg);

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1)
        variant = argv[1];
    probe_api_from_env();
    if (is("two_threads")) {
        pthread_t other;
        if (pthread_create(&other, NULL, serve, NULL) != 0)
            exit(7);
    }
    return serve(NULL) ? 1 : 0;
}

static void *serve(void *arg) {
    (void)arg;
    line_ptr = line;
    if (is("many_streams")) {
        int first = probe_api_connect();
        for (int i = 0; i < 16; i++)
            if (!fdopen(dup(first), "r"))
                exit(7);
    }
    int fd = probe_api_connect();
    out = fdopen(fd, "w");
    in = fdopen(dup(fd), "r");
    static char own_buffer[65536];
    if (is("unbuffered"))
        setvbuf(in, NULL, _IONBF, 0);
    if (is("user_buffer"))
        setvbuf(in, own_buffer, _IOFBF, sizeof own_buffer);
    for (;;) {
        if (is("close_fileno") && out) {
            /* Streams left behind, their fds closed under them (a leak the runtime lives
             * with). */
            close(fileno(out));
            close(fileno(in));
            fd = probe_api_connect();
            out = fdopen(fd, "w");
            in = fdopen(dup(fd), "r");
        }
        put("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n", 0);
        fflush(out);
        int status;
        char id[128] = "";
        size_t len;
        char *event = read_answer(&status, id, &len);
        const char *kind = "response";
        char type[64] = "";
        char *result;
        const char *t = strstr(event, "\"type\":\"");
        if (strstr(event, "\"action\":\"fail\"") && t) {
            kind = "error";
            sscanf(t + 8, "%63[^\"]", type);
            result = malloc(128 + strlen(type));
            sprintf(result, "{\"errorType\":\"%s\",\"errorMessage\":\"failing on purpose\"}", type);
        } else if (strstr(event, "\"action\":\"big\"")) {
            const char *b = strstr(event, "\"bytes\":");
            size_t n = b ? strtoul(b + 8, NULL, 10) : 0;
            result = malloc(n + 3);
            result[0] = '"';
            memset(result + 1, 'x', n);
            result[n + 1] = '"';
            result[n + 2] = 0;
        } else {
            result = malloc(64);
            snprintf(result, 64, "{\"ok\":true,\"eventBytes\":%zu}", len);
        }
        printf("invoke %s: status %d, %zu event bytes, %s\n", id, status, len, kind);
        size_t rlen = strlen(result);
        char head[512];
        snprintf(head, sizeof head, "POST /2018-06-01/runtime/invocation/%s/%s HTTP/1.1\r\nHost: api\r\n", id, kind);
        put(head, 0);
        if (*type) {
            snprintf(head, sizeof head, "Lambda-Runtime-Function-Error-Type: %s\r\n", type);
            put(head, 0);
        }
        snprintf(head, sizeof head, "Content-Length: %zu\r\n\r\n", rlen);
        put(head, 0);
        put(result, rlen);
        fflush(out);
        free(read_answer(&status, NULL, &len));
        free(result);
        free(event);
    }
}
