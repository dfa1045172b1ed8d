/* A library that wraps write and close the usual way (dlsym(RTLD_NEXT) on first use) and
 * counts the calls that reach it: preloaded after lambda-meter, every call the host makes
 * must still pass through it, as they do without lambda-meter. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/types.h>
#include <unistd.h>

static unsigned long writes, closes;

ssize_t write(int fd, const void *buf, size_t n) {
    static ssize_t (*real)(int, const void *, size_t);
    if (!real)
        real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    __atomic_add_fetch(&writes, 1, __ATOMIC_RELAXED);
    return real(fd, buf, n);
}

int close(int fd) {
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "close");
    __atomic_add_fetch(&closes, 1, __ATOMIC_RELAXED);
    return real(fd);
}

void next_wrapper_counts(unsigned long *w, unsigned long *c) {
    *w = __atomic_load_n(&writes, __ATOMIC_RELAXED);
    *c = __atomic_load_n(&closes, __ATOMIC_RELAXED);
}
