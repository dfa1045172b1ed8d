/*
 * A plugin whose PT_GNU_RELRO ends in the middle of a page that .data continues (the test makes
 * it so; see tests/deepbind_and_stdio.rs), with a .data global on that page. glibc protects
 * RELRO rounded down to whole pages, so that page stays writable. Built -z relro -z now, so
 * its GOT (with the slot for write()) is in RELRO.
 */
#define _GNU_SOURCE
#include <link.h>
#include <stdint.h>
#include <unistd.h>

static int shared_counter = 1;

/* The end of PT_GNU_RELRO of the object that holds shared_counter. */
static int visit(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    uintptr_t me = (uintptr_t)&shared_counter, end = 0;
    int mine = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *p = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + p->p_vaddr;
        if (p->p_type == PT_LOAD && me >= start && me < start + p->p_memsz)
            mine = 1;
        if (p->p_type == PT_GNU_RELRO)
            end = start + p->p_memsz;
    }
    if (!mine)
        return 0;
    *(uintptr_t *)data = end;
    return 1;
}

/* Says whether the layout is the one this plugin is for. */
const char *relro_layout(void) {
    uintptr_t end = 0, global = (uintptr_t)&shared_counter;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    dl_iterate_phdr(visit, &end);
    if (!end)
        return "no PT_GNU_RELRO";
    if (end % page == 0)
        return "PT_GNU_RELRO ends on a page boundary";
    if (global < end)
        return "the .data global is inside PT_GNU_RELRO";
    if (global / page != end / page)
        return "the .data global is not on the last page of PT_GNU_RELRO";
    return "PT_GNU_RELRO ends mid-page, on the page of a .data global";
}

/* Writes a line through write() (a GOT slot in RELRO), then writes the .data global. */
int relro_bump(int fd) {
    write(fd, "relro: the plugin says hello\n", 29);
    return ++shared_counter;
}
