/*
 * For the small test programs that talk to the Runtime API themselves: its address from
 * AWS_LAMBDA_RUNTIME_API ("127.0.0.1:port"), and a new connection to it (exit 3 on failure).
 */
#ifndef PROBE_API_H
#define PROBE_API_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in probe_api;

__attribute__((unused)) static void probe_api_from_env(void) {
    char host[64];
    snprintf(host, sizeof host, "%s", getenv("AWS_LAMBDA_RUNTIME_API"));
    char *colon = strrchr(host, ':');
    if (!colon)
        exit(2);
    *colon = 0;
    probe_api.sin_family = AF_INET;
    probe_api.sin_port = htons((unsigned short)atoi(colon + 1));
    inet_pton(AF_INET, host, &probe_api.sin_addr);
}

__attribute__((unused)) static int probe_api_connect(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&probe_api, sizeof probe_api) != 0)
        exit(3);
    return fd;
}

#endif
