/*
 * dlopen as hosts use it, for comparing runs with and without lambda-meter:
 *   - a bare name found through this program's RUNPATH ($ORIGIN/plugins): glibc looks at the
 *     caller of dlopen, so a hook that called dlopen itself would lose the program's RUNPATH;
 *   - a bare name that does not exist (same error text);
 *   - an absolute path with RTLD_DEEPBIND, whose write() must still work.
 * Prints what happened; exits 0.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static void call(void *h, const char *how) {
    if (!h) {
        printf("%s: %s\n", how, dlerror());
        return;
    }
    int (*hello)(int) = (int (*)(int))dlsym(h, "plugin_hello");
    printf("%s: loaded, plugin_hello %s\n", how, hello ? "found" : "missing");
    fflush(stdout);
    if (hello)
        printf("%s: wrote %d bytes\n", how, hello(1));
}

int main(int argc, char **argv) {
    call(dlopen("libdlopen_plugin.so", RTLD_NOW), "runpath");
    call(dlopen("libno_such_plugin.so", RTLD_NOW), "missing");
    char path[4096];
    snprintf(path, sizeof path, "%s", argv[0]);
    char *slash = strrchr(path, '/');
    if (argc > 0 && slash) {
        snprintf(slash, sizeof path - (size_t)(slash - path), "/plugins/libdlopen_plugin.so");
        call(dlopen(path, RTLD_NOW | RTLD_DEEPBIND), "deepbind");
    }
    return 0;
}
