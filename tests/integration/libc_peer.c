/*
 * A small TCP client and server that the musl tests build twice at test time, with musl-gcc and
 * with the system's cc (test_musl.py), so the same program runs on either C library under its
 * variant of the preload. Plain POSIX sockets, nothing meshed in the code.
 *
 *     libc_peer server PORT blocking|poll   answer each connection's line "TOKEN\n" with
 *                                           "served TOKEN by SERVER\n" (until killed)
 *     libc_peer client PORT blocking|poll TOKEN
 *                                           send "TOKEN\n", print the answer line, exit 0
 *     libc_peer run PROGRAM ARGUMENT...     exec PROGRAM (the other C library's build: the
 *                                           exec hooks must switch the preload it gets)
 *
 * blocking: blocking accept, read and write. poll: non-blocking sockets driven by poll(), as an
 * event loop does. Every wait is bounded (10 s); a failure prints why and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopback_listener.h"

#define LINE_MAX_BYTES 4096
#define WAIT_MS 10000

static bool use_poll;

static void set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        perror("libc_peer: fcntl");
        exit(1);
    }
}

/* In poll mode, waits until fd is ready for events; false on a timeout. */
static bool wait_ready(int fd, short events)
{
    if (!use_poll)
        return true;
    struct pollfd entry = {.fd = fd, .events = events};
    int ready = poll(&entry, 1, WAIT_MS);
    return ready == 1;
}

/* Reads one line (newline kept) into line; its length, or -1 when the stream failed first. */
static ssize_t read_line(int fd, char *line, size_t capacity)
{
    size_t used = 0;
    while (used + 1 < capacity) {
        if (!wait_ready(fd, POLLIN))
            return -1;
        ssize_t n = read(fd, line + used, capacity - 1 - used);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return -1;
        used += (size_t)n;
        if (memchr(line, '\n', used) != NULL)
            break;
    }
    line[used] = '\0';
    return (ssize_t)used;
}

static bool write_all(int fd, const char *data, size_t length)
{
    while (length > 0) {
        if (!wait_ready(fd, POLLOUT))
            return false;
        ssize_t n = write(fd, data, length);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return false;
        data += n;
        length -= (size_t)n;
    }
    return true;
}

static int accept_one(int listener)
{
    for (;;) {
        if (use_poll && !wait_ready(listener, POLLIN))
            continue; /* idle: keep serving until killed */
        int fd = accept(listener, NULL, NULL);
        if (fd >= 0)
            return fd;
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            fprintf(stderr, "libc_peer: accept: %s\n", strerror(errno));
    }
}

static _Noreturn void serve(int port, const char *name)
{
    int listener = listen_on_loopback(port, SOCK_STREAM, 16, "libc_peer");
    if (use_poll)
        set_nonblocking(listener);
    for (;;) {
        int fd = accept_one(listener);
        if (use_poll)
            set_nonblocking(fd);
        char line[LINE_MAX_BYTES];
        char answer[LINE_MAX_BYTES + 64];
        /* A connection that fails (a refused plaintext client) is closed; the next one served. */
        if (read_line(fd, line, sizeof(line)) > 0) {
            line[strcspn(line, "\n")] = '\0';
            int length = snprintf(answer, sizeof(answer), "served %s by %s\n", line, name);
            if (!write_all(fd, answer, (size_t)length))
                fprintf(stderr, "libc_peer: write: %s\n", strerror(errno));
        } else {
            fprintf(stderr, "libc_peer: a connection ended before its line: %s\n", strerror(errno));
        }
        close(fd);
    }
}

static int ask(int port, const char *token)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (use_poll)
        set_nonblocking(fd);
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0 && errno != EINPROGRESS) {
        perror("libc_peer: connect");
        return 1;
    }
    char request[LINE_MAX_BYTES];
    int length = snprintf(request, sizeof(request), "%s\n", token);
    char answer[LINE_MAX_BYTES];
    if (!write_all(fd, request, (size_t)length) || read_line(fd, answer, sizeof(answer)) <= 0) {
        fprintf(stderr, "libc_peer: no answer: %s\n", strerror(errno));
        return 1;
    }
    fputs(answer, stdout);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "run") == 0) {
        execv(argv[2], &argv[2]);
        perror("libc_peer: execv");
        return 1;
    }
    if (argc < 4 || (strcmp(argv[3], "blocking") != 0 && strcmp(argv[3], "poll") != 0)) {
        fprintf(stderr, "usage: libc_peer server|client PORT blocking|poll [TOKEN]\n");
        return 2;
    }
    use_poll = strcmp(argv[3], "poll") == 0;
    int port = atoi(argv[2]);
    if (strcmp(argv[1], "server") == 0)
        serve(port, argc > 4 ? argv[4] : "server");
    if (strcmp(argv[1], "client") == 0 && argc == 5)
        return ask(port, argv[4]);
    fprintf(stderr, "usage: libc_peer server|client PORT blocking|poll [TOKEN]\n");
    return 2;
}
