/*
 * Wraps its Runtime API socket in a stdio stream and closes it with fclose (which closes the fd
 * inside libc), then opens a file, which gets the same fd number, and reads it. With the fd
 * left tracked, the library parsed the file as HTTP and printed a warning.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    (void)argc;
    char host[64];
    snprintf(host, sizeof host, "%s", getenv("AWS_LAMBDA_RUNTIME_API"));
    char *colon = strrchr(host, ':');
    *colon = 0;
    struct sockaddr_in api = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(colon + 1))};
    inet_pton(AF_INET, host, &api.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&api, sizeof api) != 0)
        return 3;
    FILE *f = fdopen(fd, "r+");
    if (!f || fclose(f) != 0)
        return 4;
    int file = open(argv[0], O_RDONLY);
    char buf[4096];
    long total = 0;
    for (ssize_t got; (got = read(file, buf, sizeof buf)) > 0;)
        total += got;
    printf("reused fd: %s, read the whole file: %s\n", file == fd ? "yes" : "no",
           total == lseek(file, 0, SEEK_END) ? "yes" : "no");
    return 0;
}
