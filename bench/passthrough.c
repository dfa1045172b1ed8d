/*
 * Syscall-bound loops on fds that are not the Runtime API, for measuring what the preloaded
 * library costs a function's own I/O.
 *
 *   passthrough devnull N    N one-byte write()s to /dev/null
 *   passthrough pipe N       N one-byte round trips through two pipes with a child process
 *   passthrough socket N     N one-byte round trips over a loopback TCP connection
 *
 * Prints the loop's elapsed nanoseconds.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void echo_child(int in, int out, long n) {
    char c;
    for (long i = 0; i < n; i++) {
        if (read(in, &c, 1) != 1 || write(out, &c, 1) != 1)
            _exit(1);
    }
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc != 3)
        return 2;
    long n = atol(argv[2]);
    char c = 'x';
    long long start = 0, end = 0;
    if (strcmp(argv[1], "devnull") == 0) {
        FILE *f = fopen("/dev/null", "w");
        int fd = fileno(f);
        start = now_ns();
        for (long i = 0; i < n; i++)
            if (write(fd, &c, 1) != 1)
                return 1;
        end = now_ns();
    } else if (strcmp(argv[1], "pipe") == 0) {
        int to[2], from[2];
        if (pipe(to) || pipe(from))
            return 1;
        if (fork() == 0)
            echo_child(to[0], from[1], n);
        start = now_ns();
        for (long i = 0; i < n; i++)
            if (write(to[1], &c, 1) != 1 || read(from[0], &c, 1) != 1)
                return 1;
        end = now_ns();
        wait(NULL);
    } else if (strcmp(argv[1], "socket") == 0) {
        int l = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &len))
            return 1;
        if (fork() == 0) {
            int s = accept(l, NULL, NULL);
            int one = 1;
            setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            echo_child(s, s, n);
        }
        int s = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(s, (struct sockaddr *)&a, sizeof a))
            return 1;
        start = now_ns();
        for (long i = 0; i < n; i++)
            if (send(s, &c, 1, 0) != 1 || recv(s, &c, 1, 0) != 1)
                return 1;
        end = now_ns();
        wait(NULL);
    } else {
        return 2;
    }
    printf("%lld\n", end - start);
    return 0;
}
