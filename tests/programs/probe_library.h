/*
 * Where liblambda_meter.so is loaded in this process, and whether a signal interrupted it: for
 * test hosts whose handlers act only when they interrupted the library itself (without the
 * library nothing is in range, and they never act).
 */
#ifndef PROBE_LIBRARY_H
#define PROBE_LIBRARY_H

#include <link.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>

static uintptr_t lib_lo = UINTPTR_MAX, lib_hi;

/* dl_iterate_phdr callback: the address range of the library's loaded segments. */
static int find_library(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    (void)data;
    if (!strstr(info->dlpi_name, "liblambda_meter"))
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (start < lib_lo)
            lib_lo = start;
        if (start + ph->p_memsz > lib_hi)
            lib_hi = start + ph->p_memsz;
    }
    return 1;
}

/* Whether the signal whose handler got `context` interrupted the library. */
static int in_library(void *context) {
    ucontext_t *uc = (ucontext_t *)context;
#if defined(__x86_64__)
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#else
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.pc;
#endif
    return pc >= lib_lo && pc < lib_hi;
}

#endif
