/*
 * Makes libc calls that fail, and calls that succeed on a Runtime API socket, and prints each
 * return value and errno. Run with and without lambda-meter preloaded: the output must match.
 *
 * usage: errno_probe HOST PORT     (a Runtime API simulator holding at least one event)
 * Built with -O2 -D_FORTIFY_SOURCE=2 so fixed-size reads go through __read_chk/__recv_chk.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static void show(const char *what, long rc) {
    printf("%-28s rc=%ld errno=%d\n", what, rc, rc < 0 ? errno : 0);
}

/* A call that succeeds must leave errno alone: preset it, call, print it. */
static void show_kept(const char *what, long rc) {
    printf("%-28s rc=%ld errno-kept=%s\n", what, rc, errno == 4242 ? "yes" : "NO");
}

static int connect_to(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, host, &sa.sin_addr);
    errno = 4242;
    long rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    show_kept("connect(api)", rc);
    return fd;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: errno_probe HOST PORT\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    char buf[4096];
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return 3;

    show("read(-1)", read(-1, buf, sizeof buf));
    show("write(9999)", write(9999, "x", 1));
    show("close(-1)", close(-1));
    show("recv(pipe)", recv(pipefd[0], buf, 1, MSG_DONTWAIT));
    show("send(pipe)", send(pipefd[1], "x", 1, 0));
    show("dup2(-1,50)", dup2(-1, 50));
    show("dup3(3,3,0)", dup3(3, 3, 0));
    show("fcntl(-1,F_DUPFD)", fcntl(-1, F_DUPFD, 0));
    show("syscall(close,-1)", syscall(SYS_close, -1));
    show("close_range(bad)", syscall(SYS_close_range, 10, 5, 0));

    int refused = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(1);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    show("connect(refused)", connect(refused, (struct sockaddr *)&sa, sizeof sa));
    show("connect(bad addr len)", connect(refused, (struct sockaddr *)&sa, 3));
    close(refused);

    /* The Runtime API socket: the library tracks this one. */
    int fd = connect_to(argv[1], atoi(argv[2]));
    const char *req = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n";
    errno = 4242;
    show_kept("send(api,next)", send(fd, req, strlen(req), 0));
    void *volatile bad_buffer = (void *)1;
    show("read(api,EFAULT)", read(fd, bad_buffer, 16));
    show("recv(api,EFAULT)", recv(fd, bad_buffer, 16, 0));
    errno = 4242;
    long peek = recv(fd, buf, 12, MSG_PEEK);
    show_kept("recv(api,MSG_PEEK)", peek);
    errno = 4242;
    long got = read(fd, buf, 12); /* fixed-size buffer: __read_chk under FORTIFY */
    show_kept("read(api,12)", got);
    printf("peeked==read: %s\n", peek == got && got == 12 ? "yes" : "no");
    struct iovec iov[2] = {{buf, 3}, {buf + 3, 5}};
    errno = 4242;
    show_kept("readv(api,8)", readv(fd, iov, 2));
    int copy = dup(fd);
    errno = 4242;
    show_kept("recv(dup,4)", recv(copy, buf, 4, 0));
    int copy2 = fcntl(fd, F_DUPFD_CLOEXEC, 100);
    printf("fcntl dup >= 100: %s\n", copy2 >= 100 ? "yes" : "no");
    errno = 4242;
    show_kept("close(dup)", close(copy));
    errno = 4242;
    show_kept("syscall(close,fcntl dup)", syscall(SYS_close, copy2));
    errno = 4242;
    show_kept("syscall(close,api)", syscall(SYS_close, fd));
    show("write(api closed)", write(fd, "x", 1));
    /* The fd number is reused by something else entirely. */
    int again = dup(pipefd[1]);
    printf("reused number: %s\n", again == fd ? "yes" : "no");
    errno = 4242;
    show_kept("write(reused)", write(again, "hello", 5));
    errno = 4242;
    show_kept("read(pipe)", read(pipefd[0], buf, 6));
    show("read(closed api fd)", read(fd == again ? -1 : fd, buf, 1));
    return 0;
}
