/* Writes ten bytes to /dev/null and closes it, then prints how many writes and closes the
 * preloaded next_wrapper library saw ("- -" without it). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    int fd = open("/dev/null", O_WRONLY);
    if (fd < 0)
        return 1;
    for (int i = 0; i < 10; i++)
        if (write(fd, "x", 1) != 1)
            return 1;
    if (close(fd) != 0)
        return 1;
    void (*counts)(unsigned long *, unsigned long *) =
        (void (*)(unsigned long *, unsigned long *))dlsym(RTLD_DEFAULT, "next_wrapper_counts");
    if (!counts) {
        printf("- -\n");
        return 0;
    }
    unsigned long w = 0, c = 0;
    counts(&w, &c);
    printf("%lu %lu\n", w, c);
    return 0;
}
