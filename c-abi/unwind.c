/* The unwinder's entry points the library calls (Rust's panics and personality routine),
 * forwarded to the system's libgcc_s.so.1, which is looked up on first use instead of being
 * loaded into every process the preload reaches.
 *
 * Why not link libgcc_s.so.1: loading it costs every process, most of which never talk to the
 * Runtime API and never unwind through the library (per exec of /bin/true, libgcc_s.so.1
 * alone costs about as much as the whole library, an empty library less than half of that:
 * BENCHMARKS.md). Why not a static unwinder: a second unwinder beside the system's one
 * breaks a thread cancelled inside a hook (glibc unwinds it with libgcc_s, and the library's
 * personality routine would read libgcc's context with the other one).
 *
 * When these run, an unwind is under way: either the library's own panic (then libgcc_s is
 * loaded here if the process has not loaded it) or a foreign unwind through a hook's frame
 * (glibc's cancellation, which loaded libgcc_s to start it). The first call resolves each
 * entry with the real dlsym on libgcc_s's handle (the real dlopen and dlsym, not the hooks of
 * c-abi/interpose.c); where it cannot be had, the process aborts, as glibc itself does when it
 * cannot cancel a thread without libgcc_s. Tests: tests/host_edges.rs, a thread cancelled in a
 * read hook, and a panic inside the library (a test build that injects one). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unwind.h>

/* c-abi/interpose.c: the real dlopen and dlsym. */
void *lm_resolve_dlopen(void);
void *lm_resolve_dlsym(void);

static void *unwinder(void) {
    static void *handle;
    void *h = __atomic_load_n(&handle, __ATOMIC_ACQUIRE);
    if (h == NULL) {
        void *(*open)(const char *, int) = (void *(*)(const char *, int))lm_resolve_dlopen();
        if (open == NULL) {
            abort();
        }
        h = open("libgcc_s.so.1", RTLD_NOW | RTLD_NOLOAD);
        if (h == NULL) {
            h = open("libgcc_s.so.1", RTLD_NOW);
        }
        if (h == NULL) {
            abort();
        }
        __atomic_store_n(&handle, h, __ATOMIC_RELEASE);
    }
    return h;
}

static void *entry(void **slot, const char *name) {
    void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (f == NULL) {
        void *(*sym)(void *, const char *) = (void *(*)(void *, const char *))lm_resolve_dlsym();
        if (sym == NULL) {
            abort();
        }
        f = sym(unwinder(), name);
        if (f == NULL) {
            abort();
        }
        __atomic_store_n(slot, f, __ATOMIC_RELEASE);
    }
    return f;
}

#define FORWARD(ret, name, params, args)                                          \
    ret name params {                                                             \
        static void *slot;                                                        \
        ret (*f) params = (ret(*) params)entry(&slot, #name);                     \
        return f args;                                                            \
    }

FORWARD(_Unwind_Reason_Code, _Unwind_RaiseException, (struct _Unwind_Exception * e), (e))
FORWARD(void, _Unwind_DeleteException, (struct _Unwind_Exception * e), (e))
FORWARD(void *, _Unwind_GetLanguageSpecificData, (struct _Unwind_Context * c), (c))
FORWARD(_Unwind_Ptr, _Unwind_GetIPInfo, (struct _Unwind_Context * c, int *before), (c, before))
FORWARD(_Unwind_Ptr, _Unwind_GetIP, (struct _Unwind_Context * c), (c))
FORWARD(_Unwind_Ptr, _Unwind_GetRegionStart, (struct _Unwind_Context * c), (c))
FORWARD(_Unwind_Ptr, _Unwind_GetTextRelBase, (struct _Unwind_Context * c), (c))
FORWARD(_Unwind_Ptr, _Unwind_GetDataRelBase, (struct _Unwind_Context * c), (c))
FORWARD(void, _Unwind_SetGR, (struct _Unwind_Context * c, int i, _Unwind_Word v), (c, i, v))
FORWARD(void, _Unwind_SetIP, (struct _Unwind_Context * c, _Unwind_Ptr v), (c, v))
FORWARD(_Unwind_Reason_Code, _Unwind_Backtrace, (_Unwind_Trace_Fn t, void *a), (t, a))

FORWARD(void, _Unwind_Resume, (struct _Unwind_Exception * e), (e))
