/* An rtld-audit module (named by the program's own DT_AUDIT, not LD_AUDIT) that rebinds every
 * binding to libc's write — dlsym's included — to a wrapper that counts it on stderr ("<A>"). */
#define _GNU_SOURCE
#include <link.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LIBC_COOKIE 0x11bcu

static ssize_t (*libc_write)(int, const void *, size_t);

static ssize_t counted_write(int fd, const void *buf, size_t n) {
    syscall(SYS_write, 2, "<A>", 3);
    return libc_write(fd, buf, n);
}

unsigned int la_version(unsigned int version) {
    (void)version;
    return LAV_CURRENT;
}

unsigned int la_objopen(struct link_map *map, Lmid_t lmid, uintptr_t *cookie) {
    (void)lmid;
    if (strstr(map->l_name, "libc.so"))
        *cookie = LIBC_COOKIE;
    return LA_FLG_BINDTO | LA_FLG_BINDFROM;
}

uintptr_t la_symbind64(Elf64_Sym *sym, unsigned int ndx, uintptr_t *refcook, uintptr_t *defcook,
                       unsigned int *flags, const char *name) {
    (void)ndx;
    (void)refcook;
    (void)flags;
    if (*defcook == LIBC_COOKIE && strcmp(name, "write") == 0) {
        libc_write = (ssize_t (*)(int, const void *, size_t))sym->st_value;
        return (uintptr_t)counted_write;
    }
    return sym->st_value;
}
