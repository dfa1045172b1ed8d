/*
 * tls_watch: preloaded ahead of lambda-meter, it stands in for the loader's __tls_get_addr and
 * counts the calls made on a thread named "lambda-meter", the library's own thread, which must
 * never make one (src/glue/thread.rs: the loader may grow a thread's table there with realloc,
 * and the C library takes no lock in a process it counts single-threaded). At exit it writes
 * "<calls on that thread> <calls on all threads>" to the file TLS_WATCH_OUT names.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static void *(*real_get_addr)(void *);
static long on_library_thread, all_calls;
/* Reached through __tls_get_addr (this object's own, so through the function above): the
 * count of all calls is at least one when this stand-in is the one in use. */
static __thread int own_tls __attribute__((tls_model("global-dynamic")));

void *__tls_get_addr(void *index) {
    char name[17] = {0};
    prctl(PR_GET_NAME, name);
    if (strcmp(name, "lambda-meter") == 0)
        __atomic_add_fetch(&on_library_thread, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&all_calls, 1, __ATOMIC_RELAXED);
    if (!real_get_addr)
        real_get_addr = (void *(*)(void *))dlsym(RTLD_NEXT, "__tls_get_addr");
    return real_get_addr(index);
}

__attribute__((constructor)) static void find_real(void) {
    if (!real_get_addr)
        real_get_addr = (void *(*)(void *))dlsym(RTLD_NEXT, "__tls_get_addr");
}

__attribute__((destructor)) static void report(void) {
    const char *out = getenv("TLS_WATCH_OUT");
    if (!out)
        return;
    own_tls++;
    char text[64];
    int n = snprintf(text, sizeof text, "%ld %ld\n", on_library_thread, all_calls);
    int fd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (fd >= 0) {
        if (write(fd, text, (size_t)n) < 0) {
        }
        close(fd);
    }
}
