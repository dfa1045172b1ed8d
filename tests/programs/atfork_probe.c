/*
 * A runtime-like program whose pthread_atfork handlers touch its Runtime API socket: the
 * prepare handler dups and closes it, the child handler closes it. Connects to
 * AWS_LAMBDA_RUNTIME_API (the socket needs no answer), forks twice, and prints what happened.
 * With a fork hook that held its locks across the real fork, this hung.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int api_fd = -1;

static void prepare(void) {
    int copy = dup(api_fd);
    if (copy >= 0)
        close(copy);
}

static void child(void) {
    close(api_fd);
}

int main(void) {
    const char *addr = getenv("AWS_LAMBDA_RUNTIME_API");
    char host[64];
    snprintf(host, sizeof host, "%s", addr ? addr : "127.0.0.1:9001");
    char *colon = strrchr(host, ':');
    *colon = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(colon + 1))};
    inet_pton(AF_INET, host, &sa.sin_addr);
    api_fd = socket(AF_INET, SOCK_STREAM, 0);
    int rc = connect(api_fd, (struct sockaddr *)&sa, sizeof sa);
    printf("connect %d\n", rc);
    pthread_atfork(prepare, NULL, child);
    for (int i = 0; i < 2; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0)
            _exit(7);
        int status = 0;
        waitpid(pid, &status, 0);
        printf("fork %d: child exited %d\n", i, WEXITSTATUS(status));
    }
    return 0;
}
