/*
 * A custom Lambda runtime in plain C, as a bootstrap binary would be: a new connection per
 * invoke, requests written with write()/writev(), responses read with read()/recv() into
 * fixed-size buffers (so -D_FORTIFY_SOURCE=2 turns them into __read_chk/__recv_chk), and each
 * connection closed with syscall(SYS_close). The test event protocol is the one in
 * tests/functions/python/handler.py (ok, sleep, fail, big, echo), and partial lines written
 * with write(), with stdio (stdio_partial) and by a child (child_partial).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <grp.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <signal.h>
#include <stdint.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in api;
/* Read sizes the compiler cannot bound, so FORTIFY must check them at run time. */
static volatile size_t read_size = 512;
static volatile size_t recv_size = 4096;

static void die(const char *what) {
    fprintf(stderr, "c_runtime: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Set when the runtime has read its next event (the fill_stdout watcher's "went on"). */
static int next_event_read;
/* Set while fill_stdout's watcher runs, and once it has written its marker: the runtime waits
 * for the marker after reading its next event, so that a fast run cannot end (and the process
 * be stopped) before a watcher that was slow to be scheduled has said what it saw. */
static int watcher_started, marker_written;

/* fill_stdout's watcher (C_RUNTIME_FULL_MARKER): once stdout is full, waits until another
 * thread of the process is blocked in ppoll -- a record waiting for room in the full pipe --
 * or the runtime went on to its next event without that, and says which in the marker file
 * (written whole, by rename). Nothing reads the pipe before the marker is there. */
static void *watch_full_stdout(void *arg) {
    const char *marker = arg;
    long self = syscall(SYS_gettid);
    const char *seen = NULL;
    while (!seen) {
        if (__atomic_load_n(&next_event_read, __ATOMIC_ACQUIRE)) {
            seen = "went on";
            break;
        }
        DIR *tasks = opendir("/proc/self/task");
        struct dirent *t;
        while (tasks && !seen && (t = readdir(tasks))) {
            if (t->d_name[0] == '.' || atol(t->d_name) == self)
                continue;
            char path[300], text[64] = "";
            snprintf(path, sizeof path, "/proc/self/task/%s/syscall", t->d_name);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            /* "<number> <args…>" while blocked in a system call; "running" otherwise. */
            ssize_t r = read(fd, text, sizeof text - 1);
            close(fd);
            if (r > 0 && text[0] >= '0' && text[0] <= '9' && atol(text) == SYS_ppoll)
                seen = "waited";
        }
        if (tasks)
            closedir(tasks);
        struct timespec ms = {0, 1000000L};
        nanosleep(&ms, NULL);
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", marker);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%s\n", seen) < 0 || fclose(f) != 0 || rename(tmp, marker) != 0)
        die("full stdout marker");
    __atomic_store_n(&marker_written, 1, __ATOMIC_RELEASE);
    return NULL;
}

static int api_connect(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&api, sizeof api) != 0)
        die("connect");
    /* Some clients ask "still connected?" with a second connect, which fails with EISCONN. */
    if (getenv("C_RUNTIME_CHECK_CONNECTED") &&
        (connect(fd, (struct sockaddr *)&api, sizeof api) == 0 || errno != EISCONN))
        die("second connect");
    return fd;
}

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write");
        p += w;
        n -= (size_t)w;
    }
}

/* Reads one response: headers byte-group by group with read() into a fixed buffer, then the
 * body with recv(). Returns the body (malloc'd) and its length; copies the request id. */
static char *read_response(int fd, size_t *body_len, char *request_id, size_t id_cap) {
    char head[16384];
    size_t used = 0;
    char *end = NULL;
    while (!end) {
        char chunk[512];
        size_t want = read_size < sizeof head - used ? read_size : sizeof head - used;
        ssize_t r = read(fd, chunk, want);
        if (r <= 0)
            die("read head");
        /* Keep only what belongs to the head; the rest starts the body. */
        memcpy(head + used, chunk, (size_t)r);
        used += (size_t)r;
        head[used < sizeof head ? used : sizeof head - 1] = 0;
        end = strstr(head, "\r\n\r\n");
    }
    size_t head_len = (size_t)(end - head) + 4;
    size_t clen = 0;
    for (char *line = head; line < end; line = strstr(line, "\r\n") + 2) {
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            clen = strtoul(line + 15, NULL, 10);
        if (request_id && strncasecmp(line, "Lambda-Runtime-Aws-Request-Id:", 30) == 0) {
            const char *v = line + 30;
            while (*v == ' ')
                v++;
            size_t n = strcspn(v, "\r\n");
            if (n >= id_cap)
                n = id_cap - 1;
            memcpy(request_id, v, n);
            request_id[n] = 0;
        }
    }
    char *body = malloc(clen + 1);
    size_t have = used - head_len;
    memcpy(body, head + head_len, have);
    while (have < clen) {
        char chunk[4096];
        size_t want = clen - have < recv_size ? clen - have : recv_size;
        ssize_t r = recv(fd, chunk, want, 0);
        if (r <= 0)
            die("recv body");
        memcpy(body + have, chunk, (size_t)r);
        have += (size_t)r;
    }
    body[clen] = 0;
    *body_len = clen;
    return body;
}

/* The value of "key":"..." or "key":123 in a compact JSON object (test events only). */
static const char *field(const char *json, const char *key, char *out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    size_t n = *p == '"' ? strcspn(++p, "\"") : strcspn(p, ",}");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, p, n);
    out[n] = 0;
    return out;
}

/* Posts a result on `fd` (-1: a new connection) and closes it. */
static void post_on(int fd, const char *id, const char *kind, const char *extra, const char *body,
                    size_t len) {
    if (fd < 0)
        fd = api_connect();
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "POST /2018-06-01/runtime/invocation/%s/%s HTTP/1.1\r\nHost: %s\r\n"
                     "Content-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n",
                     id, kind, getenv("AWS_LAMBDA_RUNTIME_API"), extra, len);
    struct iovec iov[2] = {{head, (size_t)n}, {(void *)body, len}};
    ssize_t w = writev(fd, iov, 2);
    if (w < 0)
        die("writev");
    if ((size_t)w < (size_t)n + len) {
        /* Finish a partial writev with plain writes. */
        size_t done = (size_t)w;
        if (done < (size_t)n) {
            write_all(fd, head + done, (size_t)n - done);
            done = (size_t)n;
        }
        write_all(fd, body + (done - (size_t)n), len - (done - (size_t)n));
    }
    size_t blen;
    free(read_response(fd, &blen, NULL, 0));
    syscall(SYS_close, fd);
}

static void post(const char *id, const char *kind, const char *extra, const char *body, size_t len) {
    post_on(-1, id, kind, extra, body, len);
}

/* Runs /bin/true as CPython's subprocess does: vfork, then in the child (which shares our
 * memory) close every inherited fd with close_range and dup2, then execve. Returns its status. */
static int spawn_true(void) {
    char *argv[] = {"true", NULL};
    char *envp[] = {NULL};
    pid_t pid = vfork();
    if (pid == 0) {
        dup2(2, 1);
        syscall(SYS_close_range, 3U, ~0U, 0);
        execve("/bin/true", argv, envp);
        _exit(127);
    }
    int status = -1;
    if (pid > 0)
        waitpid(pid, &status, 0);
    return status;
}

static void own_handler(int sig) {
    static const char msg[] = "c_runtime: own handler\n";
    write(2, msg, sizeof msg - 1);
    _exit(40 + sig % 10);
}

/* Ends the process as the event asks: exit, _exit, or a signal (a real fault where one can be
 * made, else raised). */
static void die_now(const char *event) {
    char how[32] = "segv", value[16];
    field(event, "how", how, sizeof how);
    int code = field(event, "code", value, sizeof value) ? atoi(value) : 3;
    if (strcmp(how, "exit") == 0)
        exit(code);
    if (strcmp(how, "_exit") == 0)
        _exit(code);
    if (strcmp(how, "abort") == 0)
        abort();
    if (strcmp(how, "segv") == 0)
        *(volatile int *)(uintptr_t)8 = 1;
    if (strcmp(how, "fpe") == 0) {
        volatile int zero = 0;
        code = code / zero;
    }
    if (strcmp(how, "ill") == 0)
        __builtin_trap();
    if (strcmp(how, "bus") == 0)
        raise(SIGBUS);
    fprintf(stderr, "c_runtime: survived %s (%d)\n", how, code);
    exit(9);
}

/* For each thread of this process: reads /proc/self/task/<tid>/<file> and appends what `add`
 * makes of it to `body` (`size` bytes, `n` used). The new length. */
static size_t each_task(const char *file, char *body, size_t n, size_t size,
                        int (*add)(const char *text, char *out, size_t room)) {
    DIR *tasks = opendir("/proc/self/task");
    struct dirent *t;
    while (tasks && (t = readdir(tasks))) {
        if (t->d_name[0] == '.')
            continue;
        char path[300], text[4096] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/%s", t->d_name, file);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t r = fd < 0 ? -1 : read(fd, text, sizeof text - 1);
        if (fd >= 0)
            close(fd);
        if (r > 0 && n < size) {
            int w = add(text, body + n, size - n);
            if (w > 0 && (size_t)w < size - n)
                n += (size_t)w;
        }
    }
    if (tasks)
        closedir(tasks);
    return n;
}

/* A thread's name (its comm file), and a comma. */
static int add_name(const char *comm, char *out, size_t room) {
    return snprintf(out, room, "%.*s,", (int)strcspn(comm, "\n"), comm);
}

/* A thread's effective user id (from its status file), and a comma. */
static int add_effective_uid(const char *status, char *out, size_t room) {
    const char *uid = strstr(status, "\nUid:");
    unsigned long real_uid, effective;
    if (!uid || sscanf(uid, "\nUid: %lu %lu", &real_uid, &effective) != 2)
        return 0;
    return snprintf(out, room, "%lu,", effective);
}

int main(void) {
    const char *addr = getenv("AWS_LAMBDA_RUNTIME_API");
    if (!addr)
        return 2;
    char host[64];
    snprintf(host, sizeof host, "%s", addr);
    char *colon = strrchr(host, ':');
    if (!colon)
        return 2;
    *colon = 0;
    api.sin_family = AF_INET;
    api.sin_port = htons((unsigned short)atoi(colon + 1));
    inet_pton(AF_INET, host, &api.sin_addr);
    /* Unbuffered, unless the test wants stdio's own buffering (stdio_partial). */
    if (!getenv("C_RUNTIME_BUFFERED_STDOUT"))
        setvbuf(stdout, NULL, _IONBF, 0);
    if (getenv("C_RUNTIME_IGNORE_SIGPIPE"))
        signal(SIGPIPE, SIG_IGN);
    if (getenv("C_RUNTIME_NONBLOCK_STDOUT"))
        fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
    if (getenv("C_RUNTIME_OWN_HANDLER")) {
        /* A runtime with crash handlers of its own: they must stay in charge. */
        signal(SIGSEGV, own_handler);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = own_handler;
        sigaction(SIGABRT, &sa, NULL);
    }

    for (;;) {
        int fd = api_connect();
        const char *req = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n";
        write_all(fd, req, strlen(req));
        char id[128] = "";
        size_t len;
        char *event = read_response(fd, &len, id, sizeof id);
        syscall(SYS_close, fd);
        __atomic_store_n(&next_event_read, 1, __ATOMIC_RELEASE);
        /* At most 10 s: the watcher looks every millisecond. */
        for (int i = 0; i < 10000 && __atomic_load_n(&watcher_started, __ATOMIC_ACQUIRE) &&
                        !__atomic_load_n(&marker_written, __ATOMIC_ACQUIRE);
             i++) {
            struct timespec ms = {0, 1000000L};
            nanosleep(&ms, NULL);
        }

        char action[32] = "ok", value[64];
        field(event, "action", action, sizeof action);
        if (strcmp(action, "die") == 0) {
            die_now(event);
        } else if (strcmp(action, "vfork") == 0) {
            /* The result connection is open (and followed) while the child runs. */
            int rfd = api_connect();
            char body[64];
            int n = snprintf(body, sizeof body, "{\"status\":%d}", spawn_true());
            post_on(rfd, id, "response", "", body, (size_t)n);
        } else if (strcmp(action, "probe_writes") == 0) {
            /* On the result connection: a write from a bad pointer must fail with EFAULT, and
             * a good write must leave errno as it was. */
            int rfd = api_connect();
            const void *volatile nowhere = (const void *)(uintptr_t)1;
            errno = 0;
            ssize_t bad = write(rfd, nowhere, 16);
            int bad_errno = errno;
            char body[128];
            int n = snprintf(body, sizeof body, "{\"bad\":%zd,\"bad_errno\":%d,\"errno_after\":", bad,
                             bad_errno);
            char head[256];
            int h = snprintf(head, sizeof head,
                             "POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\n"
                             "Content-Length: %d\r\n\r\n",
                             id, n + 3);
            errno = 0;
            write_all(rfd, head, (size_t)h);
            int after = errno;
            n += snprintf(body + n, sizeof body - (size_t)n, "%02d}", after);
            write_all(rfd, body, (size_t)n);
            size_t blen;
            free(read_response(rfd, &blen, NULL, 0));
            syscall(SYS_close, rfd);
        } else if (strcmp(action, "fill_stdout") == 0) {
            /* Fill the (non-blocking) stdout pipe until it takes no more, then answer: the
             * record written next finds it full. */
            char line[1024];
            memset(line, 'f', sizeof line - 1);
            line[sizeof line - 1] = '\n';
            int lines = 0;
            while (write(1, line, sizeof line) == (ssize_t)sizeof line)
                lines++;
            if (errno != EAGAIN)
                die("fill stdout");
            /* The first time, the watcher tells the reader it may start (see above). */
            static int watching;
            const char *marker = getenv("C_RUNTIME_FULL_MARKER");
            if (marker && !watching) {
                watching = 1;
                __atomic_store_n(&next_event_read, 0, __ATOMIC_RELEASE);
                pthread_t watcher;
                __atomic_store_n(&watcher_started, 1, __ATOMIC_RELEASE);
                if (pthread_create(&watcher, NULL, watch_full_stdout, (void *)marker) != 0)
                    die("watcher");
                pthread_detach(watcher);
            }
            /* Writes of 1 KiB to a pipe are atomic: the output stays whole lines. */
            post(id, "response", "", "{}", 2);
        } else if (strcmp(action, "rawfork") == 0) {
            /* Answer, then fork around the fork hook (a raw clone) while the record waits for
             * the next /next; the child exits normally. */
            post(id, "response", "", "{}", 2);
            long pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
            if (pid == 0)
                exit(0);
            int status = -1;
            waitpid((pid_t)pid, &status, 0);
        } else if (strcmp(action, "stdout_to_file") == 0) {
            /* Put C_RUNTIME_STDOUT_FILE on fd 1 with a raw dup3 (no libc wrapper: only the
             * syscall hook sees it), say so there, and answer. */
            const char *path = getenv("C_RUNTIME_STDOUT_FILE");
            int ffd = path ? open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600) : -1;
            if (ffd < 0 || syscall(SYS_dup3, ffd, 1, 0) != 1)
                die("stdout_to_file");
            syscall(SYS_close, ffd);
            write(1, "the handler's own file\n", 23);
            post(id, "response", "", "{}", 2);
        } else if (strcmp(action, "sigpipe_default") == 0) {
            /* SIGPIPE back to its default action with a raw rt_sigaction (only the syscall
             * hook sees it), then answer. */
            struct {
                void (*handler)(int);
                unsigned long flags;
                void (*restorer)(void);
                unsigned long mask;
            } dfl = {SIG_DFL, 0, NULL, 0};
            if (syscall(SYS_rt_sigaction, SIGPIPE, &dfl, NULL, sizeof dfl.mask) != 0)
                die("sigpipe_default");
            post(id, "response", "", "{}", 2);
        } else if (strcmp(action, "partial") == 0) {
            write(1, "progress: 50%", 13);
            post(id, "response", "", "{}", 2);
        } else if (strcmp(action, "stdio_partial") == 0) {
            /* Written by stdio inside libc, where no write hook sees it. */
            printf("stdio: 50%%");
            fflush(stdout);
            post(id, "response", "", "{}", 2);
        } else if (strcmp(action, "stdio_partial_unlocked") == 0) {
            /* The same, flushed the way gnulib's unlocked-io (coreutils) does. */
            printf("stdio unlocked: 50%%");
            fflush_unlocked(stdout);
            post(id, "response", "", "{}", 2);
        } else if (strcmp(action, "child_partial") == 0) {
            /* A child process (sh's printf) leaves the line open. */
            if (system("printf 'child: 50%%'") != 0)
                die("system");
            post(id, "response", "", "{}", 2);
        } else if (strcmp(action, "glibc_threads") == 0) {
            /* What the C library believes of this process: single-threaded or not (glibc
             * 2.32 and later; -1 where it does not say). */
            const char *single = dlsym(RTLD_DEFAULT, "__libc_single_threaded");
            char body[64];
            int n = snprintf(body, sizeof body, "{\"single\":%d}", single ? *single : -1);
            post(id, "response", "", body, (size_t)n);
        } else if (strcmp(action, "drop_ids") == 0) {
            /* Gives up root for nobody (65534), as a server does after its start. */
            gid_t none = 65534;
            int rc = setgroups(1, &none) | setresgid(none, none, none) | setresuid(none, none, none);
            char body[64];
            int n = snprintf(body, sizeof body, "{\"dropped\":%d}", rc == 0);
            post(id, "response", "", body, (size_t)n);
        } else if (strcmp(action, "task_names") == 0 || strcmp(action, "task_uids") == 0) {
            /* Each thread's name, or its effective user id, each followed by a comma. */
            int names = strcmp(action, "task_names") == 0;
            char body[1024];
            size_t n = (size_t)snprintf(body, sizeof body, "{\"%s\":\"", names ? "tasks" : "uids");
            n = each_task(names ? "comm" : "status", body, n, sizeof body - 3,
                          names ? add_name : add_effective_uid);
            n += (size_t)snprintf(body + n, sizeof body - n, "\"}");
            post(id, "response", "", body, n);
        } else if (strcmp(action, "fail") == 0) {
            char type[64] = "Error", body[256], hdr[128];
            field(event, "type", type, sizeof type);
            int n = snprintf(body, sizeof body, "{\"errorType\":\"%s\",\"errorMessage\":\"failing on purpose\"}", type);
            snprintf(hdr, sizeof hdr, "Lambda-Runtime-Function-Error-Type: %s\r\n", type);
            post(id, "error", hdr, body, (size_t)n);
        } else if (strcmp(action, "big") == 0) {
            size_t n = field(event, "bytes", value, sizeof value) ? strtoul(value, NULL, 10) : 300000;
            char *big = malloc(n + 2);
            big[0] = '"';
            memset(big + 1, 'x', n);
            big[n + 1] = '"';
            post(id, "response", "", big, n + 2);
            free(big);
        } else {
            if (strcmp(action, "sleep") == 0) {
                long ms = field(event, "ms", value, sizeof value) ? atol(value) : 50;
                struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
                while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
                }
            }
            char body[128];
            int n = snprintf(body, sizeof body, "{\"ok\":true,\"eventBytes\":%zu}", len);
            post(id, "response", "", body, (size_t)n);
        }
        free(event);
    }
}
