/* A library whose constructor uses fcntl and sigaction, preloaded after lambda-meter: glibc runs
 * its constructor first, before lambda-meter's has resolved anything. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

__attribute__((constructor)) static void early(void) {
    errno = 0;
    int flags = fcntl(2, F_GETFD);
    int e1 = errno;
    int dup = fcntl(2, F_DUPFD_CLOEXEC, 10);
    struct sigaction old;
    memset(&old, 0, sizeof old);
    int sa = sigaction(SIGSEGV, NULL, &old);
    fprintf(stderr, "early: fcntl=%d errno=%d dupfd=%s sigaction=%d default=%d\n", flags, e1,
            dup >= 10 ? "ok" : "failed", sa, old.sa_handler == SIG_DFL);
}
