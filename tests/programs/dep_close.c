/* A library that defines close() itself (a raw system call), loaded next to lambda-meter as a
 * dependency of the same dlopen'ed object (dep_user.c). */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <unistd.h>

int close(int fd) {
    return (int)syscall(SYS_close, fd);
}
