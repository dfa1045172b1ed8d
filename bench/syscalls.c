/* What one system call of each kind a record needs costs on this machine, in CPU time of the
 * calling thread (user and kernel), for `make bench`:
 *
 *   syscalls N RECORD_BYTES TMPDIR
 *
 * prints one line per call, "<name> <ns per call>": getppid (the least any system call costs),
 * getrusage of the process (the library reads it at each end of an invoke), statx of the
 * temporary directory (the custom-metrics channel's look) and pwritev2 of a record's length
 * to a pipe that another process drains, with RWF_NOWAIT (the record's write; a runtime's
 * stdout is a pipe; a write the full pipe refused waits in poll, off the CPU, and is made
 * again).
 * A second thread sleeps meanwhile, as the library's watchdog does in a runtime: getrusage of
 * the process walks its threads. Raw system calls, as the library makes them. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double thread_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void *sleeper(void *arg) {
    (void)arg;
    for (;;) pause();
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: syscalls N RECORD_BYTES TMPDIR\n");
        return 2;
    }
    long n = atol(argv[1]);
    size_t len = (size_t)atol(argv[2]);
    const char *dir = argv[3];
    if (n <= 0 || len == 0 || len > (1 << 20)) return 2;
    char *record = malloc(len);
    if (!record) return 1;
    memset(record, 'x', len - 1);
    record[len - 1] = '\n';

    int p[2];
    if (pipe(p) != 0) return 1;
    pid_t reader = fork();
    if (reader == 0) {
        close(p[1]);
        static char sink[1 << 16];
        while (read(p[0], sink, sizeof sink) > 0) {
        }
        _exit(0);
    }
    close(p[0]);
    pthread_t t;
    if (pthread_create(&t, NULL, sleeper, NULL) != 0) return 1;

    struct rusage ru;
    struct statx stx;
    struct iovec v = {record, len};
    double start;

    start = thread_ns();
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
    printf("getppid %.1f\n", (thread_ns() - start) / n);

    start = thread_ns();
    for (long i = 0; i < n; i++) syscall(SYS_getrusage, RUSAGE_SELF, &ru);
    printf("getrusage %.1f\n", (thread_ns() - start) / n);

    start = thread_ns();
    for (long i = 0; i < n; i++)
        syscall(SYS_statx, AT_FDCWD, dir, 0, STATX_INO | STATX_MTIME | STATX_CTIME, &stx);
    printf("statx %.1f\n", (thread_ns() - start) / n);

    start = thread_ns();
    for (long i = 0; i < n; i++)
        if (syscall(SYS_pwritev2, p[1], &v, 1, -1L, 0L, RWF_NOWAIT) != (long)len) {
            struct pollfd w = {p[1], POLLOUT, 0};
            poll(&w, 1, -1);
            i--;
        }
    printf("pwritev2 %.1f\n", (thread_ns() - start) / n);

    close(p[1]);
    waitpid(reader, NULL, 0);
    return 0;
}
