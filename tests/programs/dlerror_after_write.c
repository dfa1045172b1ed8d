/* A failed dlopen, then the program's first write, then dlerror: the message of the failure
 * must still be there (a dlsym made in between, even a successful one, clears it). Linked with
 * ifunc_write.c's library, which defines write() as an indirect function. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    int devnull = open("/dev/null", O_WRONLY);
    void *h = dlopen("/nonexistent/libnot-there.so", RTLD_NOW);
    ssize_t n = write(devnull, "x", 1);
    const char *e = dlerror();
    printf("handle %s, write %zd, dlerror %s\n", h ? "set" : "null", n, e ? e : "(none)");
    return 0;
}
