/*
 * Wraps its Runtime API socket in a stdio stream and closes it with fclose (which closes the fd
 * inside libc), then opens a file, which gets the same fd number, and reads it. With the fd
 * left tracked, the library parsed the file as HTTP and printed a warning.
 */
#define _GNU_SOURCE
#include <fcntl.h>

#include "probe_api.h"

int main(int argc, char **argv) {
    (void)argc;
    probe_api_from_env();
    int fd = probe_api_connect();
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
