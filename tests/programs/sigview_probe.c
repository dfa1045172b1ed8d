/*
 * What a program sees of its own signal handlers: installed with sigaction and signal under
 * various flags, read back, raised (with siginfo), reset by SA_RESETHAND, left by siglongjmp.
 * Prints every observation; the output must be the same with and without lambda-meter.
 */
#define _GNU_SOURCE
/* siginterrupt is deprecated, and still used: the library must honour it. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile int seen_plain, seen_info, info_signo, info_code;
static sigjmp_buf jump;

static void plain(int sig) { seen_plain = sig; }
static void with_info(int sig, siginfo_t *info, void *ctx) {
    (void)ctx;
    seen_info = sig;
    info_signo = info->si_signo;
    info_code = info->si_code;
}
static void jumper(int sig) { siglongjmp(jump, sig); }

static void show(const char *what, int sig) {
    struct sigaction now;
    memset(&now, 0, sizeof now);
    sigaction(sig, NULL, &now);
    const char *h = now.sa_handler == SIG_DFL   ? "default"
                    : now.sa_handler == SIG_IGN ? "ignore"
                    : now.sa_sigaction == with_info ? "with_info"
                    : now.sa_handler == plain   ? "plain"
                    : now.sa_handler == jumper  ? "jumper"
                                                : "SOMETHING ELSE";
    int masked = 0;
    for (int s = 1; s < 32; s++)
        if (sigismember(&now.sa_mask, s))
            masked |= 1 << s;
    printf("%s: %s flags=%#x mask=%#x\n", what, h,
           now.sa_flags & (SA_SIGINFO | SA_RESTART | SA_RESETHAND | SA_NODEFER | SA_ONSTACK),
           masked);
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = with_info;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    struct sigaction before;
    sigaction(SIGUSR1, &sa, &before);
    printf("before: %s\n", before.sa_handler == SIG_DFL ? "default" : "not default");
    show("SIGUSR1", SIGUSR1);
    raise(SIGUSR1);
    printf("raised: seen=%d signo=%d code=%d\n", seen_info, info_signo, info_code);

    void (*old)(int) = signal(SIGUSR2, plain);
    printf("signal old: %s\n", old == SIG_DFL ? "default" : "other");
    show("SIGUSR2", SIGUSR2);
    old = signal(SIGUSR2, SIG_IGN);
    printf("signal old: %s\n", old == plain ? "plain" : "other");
    show("SIGUSR2 ignored", SIGUSR2);
    raise(SIGUSR2);

    /* siginterrupt: signal() then installs the handler without SA_RESTART. */
    siginterrupt(SIGWINCH, 1);
    signal(SIGWINCH, plain);
    show("SIGWINCH interrupting", SIGWINCH);
    siginterrupt(SIGWINCH, 0);
    signal(SIGWINCH, plain);
    show("SIGWINCH restarting", SIGWINCH);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = plain;
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGURG, &sa, NULL);
    show("SIGURG", SIGURG);
    raise(SIGURG);
    printf("reset: seen=%d\n", seen_plain);
    show("SIGURG after", SIGURG);

    signal(SIGSEGV, jumper);
    show("SIGSEGV", SIGSEGV);
    int got = sigsetjmp(jump, 1);
    if (got == 0)
        raise(SIGSEGV);
    printf("jumped back with %d\n", got);
    signal(SIGSEGV, SIG_DFL);
    show("SIGSEGV default", SIGSEGV);
    show("SIGABRT", SIGABRT);
    return 0;
}
