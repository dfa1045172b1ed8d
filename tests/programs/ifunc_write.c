/* A library a program links (so it comes before libc in the loader's order) that defines
 * write() as an indirect function: a definition the library's own reading of symbol tables
 * does not follow, which only the loader's lookup (dlsym) can answer. */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <unistd.h>

static ssize_t plain_write(int fd, const void *buf, size_t n) {
    return syscall(SYS_write, fd, buf, n);
}

static void *choose_write(void) { return (void *)plain_write; }

ssize_t write(int fd, const void *buf, size_t n) __attribute__((ifunc("choose_write")));
