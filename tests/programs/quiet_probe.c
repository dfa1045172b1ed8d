/*
 * quiet_probe: a program that never talks to the Runtime API. It reads a few bytes of a file
 * and prints one line with stdio, the way a tool a handler starts would; its system calls,
 * traced with and without the library preloaded, must be the same.
 */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    char buf[16];
    int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, buf, sizeof buf) : -1;
    if (fd >= 0)
        close(fd);
    printf("quiet_probe read %zd bytes\n", got);
    return got == (ssize_t)sizeof buf ? 0 : 1;
}
