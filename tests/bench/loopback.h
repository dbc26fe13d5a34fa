/*
 * What bench_net and wolf_bare share: a monotonic clock and sockets on 127.0.0.1 set up the same
 * way, so that the two programs' connections cost the same outside TLS.
 */
#ifndef MT_BENCH_LOOPBACK_H
#define MT_BENCH_LOOPBACK_H

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static inline double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static inline struct sockaddr_in loopback(int port)
{
    struct sockaddr_in address;
    memset(&address, 0, sizeof(address));
    address.sin_family = AF_INET;
    address.sin_port = htons((unsigned short)port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

/* A connected socket with TCP_NODELAY (as a request/response client sets it), or -1. */
static inline int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in address = loopback(port);
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * The next connection on listener, or -1 (errno set) when the listener itself failed. Errors
 * that concern one connection only (it was aborted, reset, or refused by a filter before accept
 * returned) are skipped.
 */
static inline int accept_next(int listener)
{
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd >= 0 || (errno != EINTR && errno != ECONNABORTED && errno != ECONNRESET &&
                        errno != EPROTO && errno != EPERM))
            return fd;
    }
}

#endif
