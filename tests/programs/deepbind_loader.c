/*
 * A loader library for deepbind_host.c, in another directory than the host (RUNPATH
 * $ORIGIN/deps). glibc's dlopen looks at its caller: a bare name is searched in the calling
 * object's RUNPATH, "$ORIGIN" is the calling object's directory, and the object lands in the
 * calling object's link namespace. The calls below are never tail calls (the caller would then
 * be the host).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

/* dlopen(file, RTLD_NOW | RTLD_DEEPBIND) from this object; the error text on failure. */
const char *loader_open(const char *file, void **handle) {
    *handle = dlopen(file, RTLD_NOW | RTLD_DEEPBIND);
    return *handle ? NULL : dlerror();
}

/* The same through `open` (the host's dlopen); the new object's namespace in *lmid. */
const char *loader_open_with(void *(*open)(const char *, int), const char *file, long *lmid) {
    void *h = open(file, RTLD_NOW | RTLD_DEEPBIND);
    if (!h)
        return dlerror();
    Lmid_t id = -1;
    dlinfo(h, RTLD_DI_LMID, &id);
    *lmid = (long)id;
    return NULL;
}
