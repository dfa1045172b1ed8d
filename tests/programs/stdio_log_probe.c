/*
 * stdio_log_probe: what a child of a Lambda runtime may do with its stdout, each of which the
 * library's note of the environment's open log line must survive unnoticed
 * (tests/host_untouched.rs). One mode per run:
 *
 *   reassigned   points `stdout` at a stream of its own, closes that, reuses the memory, then
 *                flushes every stream and returns from main (glibc never looks at the old
 *                `stdout` again; neither may the library)
 *   errno        leaves a line open with write() after filling its address space, so that a
 *                mapping made then fails: the errno it set before the write must survive
 *   fclose       leaves the line open, closes stdout with fclose, opens a file that gets fd 1
 *                and writes a whole line to it, then says what the environment's line page holds
 *
 * Each prints what it saw on stderr, so a run with and without the library compares.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

static void reassigned(void) {
    stdout = fopen("/dev/null", "w");
    fputs("to null", stdout);
    fclose(stdout);
    /* Reuse what the closed stream's memory was, with what reads as a stream about to write
     * from a bad address. */
    for (size_t size = 200; size <= 600; size += 8) {
        unsigned long *p = malloc(size);
        memset(p, 0, size);
        p[0] = ~0UL;   /* flags: every bit, "currently putting" too */
        p[4] = 0x10;   /* write base */
        p[5] = 0x20;   /* write pointer */
    }
    fflush(NULL);
    fprintf(stderr, "reassigned: done\n");
}

static void errno_kept(void) {
    struct rlimit r = {64 << 20, 64 << 20};
    setrlimit(RLIMIT_AS, &r);
    /* Take every mapping the limit leaves, down to single pages. */
    for (size_t size = 1 << 20; size >= 4096; size /= 2)
        while (mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED)
            ;
    errno = 1234;
    ssize_t n = write(1, "partial", 7);
    fprintf(stderr, "errno: write returned %zd, errno %d\n", n, errno);
}

static void fclose_then_file(const char *file) {
    write(1, "PARTIAL", 7);
    fclose(stdout);
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd != 1) {
        fprintf(stderr, "fclose: the file got fd %d\n", fd);
        return;
    }
    write(1, "to a file\n", 10);
    fprintf(stderr, "fclose: done\n");
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "reassigned") == 0)
        reassigned();
    else if (strcmp(mode, "errno") == 0)
        errno_kept();
    else if (strcmp(mode, "fclose") == 0 && argc > 2)
        fclose_then_file(argv[2]);
    else
        return 2;
    return 0;
}
