/*
 * The dependency of deepbind_usedep.c: it defines send(), which a plugin loaded with
 * RTLD_DEEPBIND finds in its own dependencies before libc's (and must keep).
 */
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static int sends;

ssize_t send(int fd, const void *buf, size_t n, int flags) {
    sends++;
    return syscall(SYS_sendto, fd, buf, n, flags, NULL, 0);
}

int senddep_count(void) {
    return sends;
}
