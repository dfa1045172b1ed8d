/*
 * seccomp_allowlist NUMBERS PROGRAM [ARGS...]: runs PROGRAM under a seccomp filter that allows
 * only the system calls whose numbers are listed in NUMBERS (comma separated, e.g. from
 * `strace -n` of PROGRAM's own run) and kills the process (SIGSYS) on any other, as a
 * container profile built from a trace does. With SECCOMP_PRELOAD set, PROGRAM starts with
 * LD_PRELOAD set to it (put in place before the filter, so only PROGRAM loads it under the
 * filter).
 */
#define _GNU_SOURCE
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#if defined(__x86_64__)
#define THIS_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define THIS_ARCH AUDIT_ARCH_AARCH64
#else
#error "unsupported architecture"
#endif

#define MAX_ALLOWED 200

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    unsigned int allowed[MAX_ALLOWED];
    size_t n = 0;
    for (char *p = argv[1]; *p && n < MAX_ALLOWED;) {
        allowed[n++] = (unsigned int)strtoul(p, &p, 10);
        if (*p == ',')
            p++;
    }
    /* Right architecture, then one comparison per allowed call; anything else kills. */
    struct sock_filter filter[MAX_ALLOWED + 6];
    size_t k = 0;
    filter[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                               offsetof(struct seccomp_data, arch));
    filter[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, THIS_ARCH, 1, 0);
    filter[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    filter[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                               offsetof(struct seccomp_data, nr));
    for (size_t i = 0; i < n; i++)
        filter[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, allowed[i],
                                                   (unsigned char)(n - i), 0);
    filter[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    filter[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {(unsigned short)k, filter};
    const char *preload = getenv("SECCOMP_PRELOAD");
    if (preload && setenv("LD_PRELOAD", preload, 1) != 0)
        return 2;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        perror("seccomp_allowlist");
        return 2;
    }
    execv(argv[2], argv + 2);
    return 127;
}
