/*
 * The listening socket of the integration tests' small servers: TCP on 127.0.0.1:port with
 * SO_REUSEADDR. Once it listens, "listening" goes to stdout (the tests wait for that line); a
 * socket that cannot be had ends the program with the reason and exit status 1.
 */
#ifndef MESHTLS_TESTS_LOOPBACK_LISTENER_H
#define MESHTLS_TESTS_LOOPBACK_LISTENER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

/* type: SOCK_STREAM, perhaps with SOCK_NONBLOCK. */
static inline int listen_on_loopback(int port, int type, int backlog, const char *program)
{
    int listener = socket(AF_INET, type, 0);
    int one = 1;
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (listener < 0 || setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(listener, (struct sockaddr *)&address, sizeof(address)) != 0 ||
        listen(listener, backlog) != 0) {
        fprintf(stderr, "%s: listen on 127.0.0.1:%d: ", program, port);
        perror(NULL);
        exit(1);
    }
    printf("listening\n");
    fflush(stdout);
    return listener;
}

#endif
