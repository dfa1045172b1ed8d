/*
 * A plugin that defines its own write() and calls it. Loaded with RTLD_DEEPBIND, its call binds
 * to its own definition first: that is what RTLD_DEEPBIND means, and lambda-meter must not
 * replace it with libc's.
 */
#include <sys/syscall.h>
#include <unistd.h>

static int own_writes;

ssize_t write(int fd, const void *buf, size_t n) {
    own_writes++;
    return syscall(SYS_write, fd, buf, n);
}

/* Writes a line to `fd` through write(); returns how often this object's write() ran. */
int plugin_talk(int fd) {
    write(fd, "own: the plugin says hello\n", 27);
    return own_writes;
}
