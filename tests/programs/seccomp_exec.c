/*
 * seccomp_exec MODE PROGRAM [ARGS...]: runs PROGRAM under a seccomp filter that answers
 * process_vm_readv with SIGSYS (MODE "trap") or EPERM (MODE "errno"), as container runtimes'
 * profiles do for calls they do not allow. Everything else is allowed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    unsigned int verdict =
        strcmp(argv[1], "trap") == 0 ? SECCOMP_RET_TRAP : (SECCOMP_RET_ERRNO | EPERM);
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_vm_readv, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, verdict),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        perror("seccomp_exec");
        return 2;
    }
    execv(argv[2], argv + 2);
    perror("seccomp_exec: execv");
    return 127;
}
