/* A plugin linked against libdb_senddep.so (deepbind_senddep.c), whose send() it calls. */
#include <sys/socket.h>

int senddep_count(void);

/* Sends one byte on `fd`; returns how often the dependency's send() ran. */
int usedep_talk(int fd) {
    send(fd, "x", 1, 0);
    return senddep_count();
}
