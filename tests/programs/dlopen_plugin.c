/* A plugin for dlopen_probe.c: it writes through libc's write(), which a plugin loaded with
 * RTLD_DEEPBIND binds to libc itself unless lambda-meter binds it to its hook. */
#include <string.h>
#include <unistd.h>

int plugin_hello(int fd) {
    const char *msg = "hello from the plugin\n";
    return (int)write(fd, msg, strlen(msg));
}
