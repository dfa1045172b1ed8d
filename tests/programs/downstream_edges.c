/*
 * A custom runtime whose handler does, per event, one of the socket calls that once made
 * lambda-meter's downstream figures wrong or the host crash, against an echo server on
 * 127.0.0.1:$ECHO_PORT (the test's). The result says what the host saw (return codes, errno),
 * so that a run without the library can be compared byte for byte.
 *
 *   {"case":"bad_address"}  connect() the kernel refuses before it reads the address
 *   {"case":"stale_errno"}  a successful connect with errno left at EISCONN before it, a turn
 *   {"case":"longjmp"}      turns on a kept connection, left by siglongjmp from a SIGALRM
 *                           handler at random points, thousands of times
 *   {"case":"turns"}        5 turns on the kept connection
 *   {"case":"after"}        2 turns, the result, then 3 turns before the next event
 *   {"case":"udp_probe"}    a UDP socket connected to 127.0.0.1:9 and closed unused (how Go's
 *                           resolver and gRPC's learn a source address), then a datagram and
 *                           its answer on one connected to 127.0.0.1:$UDP_ECHO_PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "probe_runtime.h"

static int echo_connect(void) {
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(getenv("ECHO_PORT")));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0)
        exit(20);
    return s;
}

/* One request/answer turn of one byte. */
static void turn(int s) {
    char b;
    if (write(s, "t", 1) != 1 || read(s, &b, 1) != 1)
        exit(21);
}

static sigjmp_buf jump;
static void on_alarm(int sig) {
    (void)sig;
    siglongjmp(jump, 1);
}

int main(void) {
    char result[512];
    int kept = -1;
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    probe_api_from_env();
    for (;;) {
        next_event();
        if (kept < 0)
            kept = echo_connect();
        if (strstr(event, "bad_address")) {
            errno = 0;
            int a = connect(-1, (struct sockaddr *)0x10, 16);
            int ea = errno;
            int s = socket(AF_INET, SOCK_STREAM, 0);
            errno = 0;
            int b = connect(s, (struct sockaddr *)0x10, 4096);
            int eb = errno;
            close(s);
            snprintf(result, sizeof result, "{\"a\":[%d,%d],\"b\":[%d,%d]}", a, ea, b, eb);
        } else if (strstr(event, "stale_errno")) {
            errno = EISCONN;
            int s = echo_connect();
            int e = errno;
            turn(s);
            close(s);
            snprintf(result, sizeof result, "{\"errno_after\":%d}", e);
        } else if (strstr(event, "longjmp")) {
            volatile int jumps = 0;
            for (int i = 0; i < 2000; i++) {
                if (sigsetjmp(jump, 1) == 0) {
                    struct itimerval it = {{0, 0}, {0, 20 + (i % 50)}};
                    setitimer(ITIMER_REAL, &it, NULL);
                    for (;;)
                        turn(kept);
                }
                jumps++;
            }
            struct itimerval off = {{0, 0}, {0, 0}};
            setitimer(ITIMER_REAL, &off, NULL);
            /* A byte of the last turn may still be on its way back: the next turns must start
             * clean. */
            usleep(20000);
            char b[64];
            while (recv(kept, b, sizeof b, MSG_DONTWAIT) > 0)
                ;
            snprintf(result, sizeof result, "{\"jumps\":%d}", jumps > 0);
        } else if (strstr(event, "udp_probe")) {
            struct sockaddr_in a = {0};
            a.sin_family = AF_INET;
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            a.sin_port = htons(9);
            int probe = socket(AF_INET, SOCK_DGRAM, 0);
            int rp = connect(probe, (struct sockaddr *)&a, sizeof a);
            close(probe);
            a.sin_port = htons((unsigned short)atoi(getenv("UDP_ECHO_PORT")));
            int u = socket(AF_INET, SOCK_DGRAM, 0);
            char b[8];
            if (connect(u, (struct sockaddr *)&a, sizeof a) != 0 || send(u, "q", 1, 0) != 1 ||
                recv(u, b, sizeof b, 0) != 1)
                exit(22);
            close(u);
            snprintf(result, sizeof result, "{\"probe\":%d}", rp);
        } else if (strstr(event, "after")) {
            turn(kept);
            turn(kept);
            snprintf(result, sizeof result, "{\"turns\":2}");
        } else {
            for (int i = 0; i < 5; i++)
                turn(kept);
            snprintf(result, sizeof result, "{\"turns\":5}");
        }
        /* (The answer to the result is read into `event`.) */
        int after = strstr(event, "after") != NULL;
        respond(result);
        if (after)
            for (int i = 0; i < 3; i++)
                turn(kept);
    }
}
