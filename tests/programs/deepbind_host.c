/*
 * A host that loads plugins with dlopen(..., RTLD_DEEPBIND), as PHP loads its extensions, and
 * prints what it found, for comparing runs with and without lambda-meter. Laid out by
 * tests/deepbind_and_stdio.rs as <root>/bin/deepbind_host (RUNPATH $ORIGIN/plugins) with the
 * plugins under <root>/bin/plugins and <root>/lib. argv[1] picks the check:
 *   runpath    dlopen("libdb_runpath.so"): a bare name found through this program's RUNPATH;
 *   origin     a loader in another directory (<root>/lib/loader, RUNPATH $ORIGIN/deps) opens
 *              "$ORIGIN/libdb_origin.so" and the bare "libdb_deps.so";
 *   namespace  the loader, in a new link namespace (dlmopen), calls the dlopen this program
 *              binds to (handed over as a pointer): the plugin belongs in the loader's namespace;
 *   own        a plugin that defines its own write(), and one whose send() comes from its own
 *              dependency: each must keep the definition its lookup found;
 *   relro      a plugin whose PT_GNU_RELRO ends mid-page, on the page of a .data global it
 *              then writes;
 *   dlerror    a lazily bound plugin loaded plainly, a deep-bound one, then a dlopen that
 *              fails, a hooked call (where lambda-meter binds), and dlerror(): its text must
 *              still be there; the lazy plugin's write() then runs.
 * With AWS_LAMBDA_RUNTIME_API set it is also a custom runtime on plain read/write: it runs the
 * check during its first invoke (lambda-meter is metering by then) and answers every invoke
 * with {"ok":true}. Without it, it only runs the check.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <string.h>
#include <strings.h>

#include "probe_api.h"

static char root[4096];
static int api = -1;
static char request_id[128];

/* <root>: two levels above this program (<root>/bin/deepbind_host). */
static void find_root(void) {
    ssize_t n = readlink("/proc/self/exe", root, sizeof root - 1);
    if (n <= 0)
        exit(2);
    root[n] = 0;
    for (int i = 0; i < 2; i++) {
        char *slash = strrchr(root, '/');
        if (!slash)
            exit(2);
        *slash = 0;
    }
}

/* A path under <root>. */
static const char *at(const char *rel) {
    static char path[2][8192];
    static int which;
    which ^= 1;
    snprintf(path[which], sizeof path[which], "%s/%s", root, rel);
    return path[which];
}

/* Where `handle` was loaded from, relative to <root> when it is under it. */
static const char *where(void *handle) {
    struct link_map *map = NULL;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || !map)
        return "?";
    size_t n = strlen(root);
    return strncmp(map->l_name, root, n) == 0 ? map->l_name + n + 1 : map->l_name;
}

static void *deep(const char *check, const char *file) {
    void *h = dlopen(file, RTLD_NOW | RTLD_DEEPBIND);
    if (!h)
        printf("%s: dlopen(\"%s\") failed: %s\n", check, file, dlerror());
    return h;
}

static void *sym(void *h, const char *name) {
    void *p = dlsym(h, name);
    if (!p) {
        printf("missing symbol %s\n", name);
        exit(7);
    }
    return p;
}

static void check_runpath(void) {
    void *h = deep("runpath", "libdb_runpath.so");
    if (!h)
        return;
    int (*hello)(int) = (int (*)(int))sym(h, "plugin_hello");
    printf("runpath: loaded %s\n", where(h));
    printf("runpath: plugin_hello wrote %d bytes\n", hello(1));
}

typedef const char *(*loader_open_fn)(const char *file, void **handle);

static void check_origin(void) {
    void *loader = dlopen(at("lib/loader/libdb_loader.so"), RTLD_NOW);
    if (!loader) {
        printf("origin: the loader did not load: %s\n", dlerror());
        return;
    }
    loader_open_fn open = (loader_open_fn)sym(loader, "loader_open");
    const char *files[] = {"$ORIGIN/libdb_origin.so", "libdb_deps.so"};
    for (int i = 0; i < 2; i++) {
        void *h = NULL;
        const char *err = open(files[i], &h);
        if (!h) {
            printf("origin: the loader's dlopen(\"%s\") failed: %s\n", files[i], err);
            continue;
        }
        int (*hello)(int) = (int (*)(int))sym(h, "plugin_hello");
        printf("origin: the loader's dlopen(\"%s\") loaded %s\n", files[i], where(h));
        printf("origin: plugin_hello wrote %d bytes\n", hello(1));
    }
}

typedef void *(*dlopen_fn)(const char *, int);
typedef const char *(*loader_open_with_fn)(dlopen_fn open, const char *file, long *lmid);

static void check_namespace(void) {
    void *loader = dlmopen(LM_ID_NEWLM, at("lib/loader/libdb_loader.so"), RTLD_NOW);
    if (!loader) {
        printf("namespace: dlmopen failed: %s\n", dlerror());
        return;
    }
    Lmid_t loader_ns = 0;
    dlinfo(loader, RTLD_DI_LMID, &loader_ns);
    loader_open_with_fn open = (loader_open_with_fn)sym(loader, "loader_open_with");
    long plugin_ns = -1;
    /* `dlopen` here is the one this program binds to: lambda-meter's when it is preloaded. */
    const char *err = open(dlopen, at("lib/loader/libdb_origin.so"), &plugin_ns);
    if (err)
        printf("namespace: the loader's dlopen failed: %s\n", err);
    else if (plugin_ns == (long)loader_ns)
        printf("namespace: the plugin was loaded into the loader's namespace\n");
    else
        printf("namespace: the plugin was loaded into namespace %ld, the loader is in %ld\n",
               plugin_ns, (long)loader_ns);
}

static void check_own(void) {
    void *h = deep("own", at("lib/libdb_ownwrite.so"));
    if (h) {
        int (*talk)(int) = (int (*)(int))sym(h, "plugin_talk");
        printf("own: the plugin's own write() ran %d time(s)\n", talk(1));
    }
    h = deep("own", at("lib/libdb_usedep.so"));
    if (h) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
            exit(8);
        int (*talk)(int) = (int (*)(int))sym(h, "usedep_talk");
        printf("own: send() of the plugin's dependency ran %d time(s)\n", talk(sv[0]));
        char byte;
        printf("own: the peer got %zd byte(s)\n", read(sv[1], &byte, 1));
        close(sv[0]);
        close(sv[1]);
    }
}

static void check_relro(void) {
    void *h = deep("relro", at("lib/libdb_relro.so"));
    if (!h)
        return;
    const char *(*layout)(void) = (const char *(*)(void))sym(h, "relro_layout");
    int (*bump)(int) = (int (*)(int))sym(h, "relro_bump");
    printf("relro: %s\n", layout());
    printf("relro: the .data global went from 1 to %d\n", bump(1));
}

static void check_dlerror(void) {
    void *lazy = dlopen(at("lib/libdb_lazy.so"), RTLD_LAZY);
    void *h = deep("dlerror", at("lib/loader/libdb_origin.so"));
    if (!lazy || !h) {
        printf("dlerror: the plugins did not load\n");
        return;
    }
    void *missing = dlopen(at("lib/no-such-plugin.so"), RTLD_NOW);
    close(-1);
    const char *err = dlerror();
    printf("dlerror: after a failed dlopen and close(-1): %s\n",
           err ? strstr(err, "no-such-plugin.so: cannot open") ? "the failure" : err : "(none)");
    printf("dlerror: missing handle %s\n", missing ? "set" : "null");
    int (*hello)(int) = (int (*)(int))sym(lazy, "plugin_hello");
    printf("dlerror: the lazy plugin wrote %d bytes\n", hello(1));
}

/* Reads one Runtime API answer on `api` (head, then Content-Length body bytes). */
static void read_answer(void) {
    static char buf[65536];
    size_t used = 0;
    char *end;
    for (;;) {
        ssize_t n = read(api, buf + used, sizeof buf - 1 - used);
        if (n <= 0)
            exit(4);
        used += (size_t)n;
        buf[used] = 0;
        if ((end = strstr(buf, "\r\n\r\n")))
            break;
    }
    size_t have = used - (size_t)(end + 4 - buf), want = 0;
    char *cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl)
        want = strtoul(cl + 17, NULL, 10);
    char *id = strcasestr(buf, "\r\nLambda-Runtime-Aws-Request-Id:");
    if (id)
        sscanf(id + 32, " %127[^\r\n]", request_id);
    while (have < want) {
        ssize_t n = read(api, buf, sizeof buf);
        if (n <= 0)
            exit(4);
        have += (size_t)n;
    }
}

static void send_text(const char *text) {
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = write(api, text + off, len - off);
        if (n <= 0)
            exit(4);
        off += (size_t)n;
    }
}

static void next_invoke(void) {
    send_text("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n");
    read_answer();
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    find_root();
    const char *check = argc > 1 ? argv[1] : "";
    int runtime = getenv("AWS_LAMBDA_RUNTIME_API") != NULL;
    if (runtime) {
        probe_api_from_env();
        api = probe_api_connect();
        next_invoke();
    }
    if (strcmp(check, "runpath") == 0)
        check_runpath();
    else if (strcmp(check, "origin") == 0)
        check_origin();
    else if (strcmp(check, "namespace") == 0)
        check_namespace();
    else if (strcmp(check, "own") == 0)
        check_own();
    else if (strcmp(check, "relro") == 0)
        check_relro();
    else if (strcmp(check, "dlerror") == 0)
        check_dlerror();
    else
        return 9;
    printf("%s: done\n", check);
    if (!runtime)
        return 0;
    for (;;) {
        char post[512];
        snprintf(post, sizeof post,
                 "POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: api\r\n"
                 "Content-Length: 11\r\n\r\n{\"ok\":true}",
                 request_id);
        send_text(post);
        read_answer();
        next_invoke();
    }
}
