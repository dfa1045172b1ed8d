/*
 * A runtime-like program whose pthread_atfork handlers touch its Runtime API socket: the
 * prepare handler dups and closes it, the child handler closes it. Connects to
 * AWS_LAMBDA_RUNTIME_API (the socket needs no answer), forks twice, and prints what happened.
 * With a fork hook that held its locks across the real fork, this hung.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/wait.h>

#include "probe_api.h"

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
    probe_api_from_env();
    api_fd = socket(AF_INET, SOCK_STREAM, 0);
    int rc = connect(api_fd, (struct sockaddr *)&probe_api, sizeof probe_api);
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
