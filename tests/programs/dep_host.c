/* Loads argv[1] with dlopen(RTLD_NOW | RTLD_DEEPBIND) and runs its dep_user_run(argv[2]). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    void *plugin = dlopen(argv[1], RTLD_NOW | RTLD_DEEPBIND);
    if (!plugin) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 3;
    }
    int (*run)(int) = (int (*)(int))dlsym(plugin, "dep_user_run");
    if (!run)
        return 4;
    return run(atoi(argv[2]));
}
