/*
 * A client and a server that the preload cannot enter: linked statically (no dynamic loader,
 * so no LD_PRELOAD), for the supervisor's tests (test_supervisor_static.py).
 *
 *   static_peer client HOST PORT MESSAGE [nonblocking]   connect, send MESSAGE, half-close,
 *                                                         print what came back
 *   static_peer server PORT COUNT [linger]                listen on 127.0.0.1:PORT, answer
 *                                                         COUNT connections "echo:" + request;
 *                                                         linger: then close the listener and
 *                                                         stay 30 s
 *   static_peer orphan HOST PORT TRIGGER                  fork; the child outlives its parent
 *                                                         and, once file TRIGGER exists,
 *                                                         tries to connect and says how it went
 *   static_peer duplicate PORT                            listen on 127.0.0.1:PORT through one
 *                                                         descriptor, accept on a duplicate
 *                                                         made before, and say how it went
 *   static_peer uring                                     io_uring_setup, and its errno
 *   static_peer fastopen HOST PORT                        a TCP Fast Open sendto, and its errno
 * Every line it prints says what the program saw (addresses included), for the test to check.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/io_uring.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fail(const char *what)
{
    printf("%s failed: %s\n", what, strerror(errno));
    fflush(stdout);
    return 1;
}

static void print_address(const char *label, const struct sockaddr_in *address)
{
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &address->sin_addr, host, sizeof(host));
    printf("%s %s:%u\n", label, host, ntohs(address->sin_port));
}

/* Reads until the end of the stream (or 64 KiB); returns the length or -1. */
static ssize_t read_all(int fd, char *buffer, size_t capacity)
{
    size_t used = 0;
    while (used < capacity) {
        ssize_t got = read(fd, buffer + used, capacity - used);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -1;
        if (got == 0)
            break;
        used += (size_t)got;
    }
    return (ssize_t)used;
}

static int connect_nonblocking(int fd, const struct sockaddr_in *address)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (connect(fd, (const struct sockaddr *)address, sizeof(*address)) == 0) {
        printf("connect: 0 at once\n");
    } else {
        if (errno != EINPROGRESS)
            return fail("connect");
        printf("connect: in progress\n");
        struct pollfd entry = {.fd = fd, .events = POLLOUT};
        if (poll(&entry, 1, 20000) != 1)
            return fail("poll");
        int error = 0;
        socklen_t length = sizeof(error);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
        if (error != 0) {
            errno = error;
            return fail("connect (SO_ERROR)");
        }
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return 0;
}

static int client(const char *host, int port, const char *message, bool nonblocking)
{
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &address.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return fail("socket");
    if (nonblocking) {
        if (connect_nonblocking(fd, &address) != 0)
            return 1;
    } else if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        return fail("connect");
    }
    struct sockaddr_in peer;
    socklen_t length = sizeof(peer);
    if (getpeername(fd, (struct sockaddr *)&peer, &length) != 0)
        return fail("getpeername");
    print_address("peer", &peer);
    struct sockaddr_in here;
    length = sizeof(here);
    if (getsockname(fd, (struct sockaddr *)&here, &length) != 0)
        return fail("getsockname");
    print_address("local", &here);
    size_t size = strlen(message);
    if (write(fd, message, size) != (ssize_t)size)
        return fail("write");
    shutdown(fd, SHUT_WR);
    static char reply[65536];
    ssize_t got = read_all(fd, reply, sizeof(reply) - 1);
    if (got < 0)
        return fail("read");
    reply[got] = '\0';
    printf("reply: %s\n", reply);
    close(fd);
    return 0;
}

static int server(int port, int count, bool linger)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&address, sizeof(address)) != 0)
        return fail("bind");
    if (listen(fd, 16) != 0)
        return fail("listen");
    socklen_t length = sizeof(address);
    getsockname(fd, (struct sockaddr *)&address, &length);
    print_address("listening on", &address);
    fflush(stdout);
    for (int served = 0; served < count; served++) {
        struct sockaddr_in peer, named;
        socklen_t peer_length = sizeof(peer), named_length = sizeof(named);
        int connection = accept(fd, (struct sockaddr *)&peer, &peer_length);
        if (connection < 0)
            return fail("accept");
        print_address("accepted from", &peer);
        if (getpeername(connection, (struct sockaddr *)&named, &named_length) == 0)
            print_address("getpeername", &named);
        static char request[65536];
        ssize_t got = read_all(connection, request, sizeof(request) - 1);
        if (got < 0) {
            printf("read failed: %s\n", strerror(errno));
            close(connection);
            continue;
        }
        request[got] = '\0';
        char reply[65536 + 8];
        int size = snprintf(reply, sizeof(reply), "echo:%s", request);
        if (write(connection, reply, (size_t)size) != size)
            printf("write failed: %s\n", strerror(errno));
        printf("served: %s\n", request);
        fflush(stdout);
        close(connection);
    }
    close(fd);
    if (linger) {
        printf("listener closed\n");
        fflush(stdout);
        sleep(30);
    }
    return 0;
}

static struct sockaddr_in address_of(const char *host, int port)
{
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &address.sin_addr);
    return address;
}

/* The child waits (bounded) for the test to remove its parent's supervisor, then connects. */
static int orphan(const char *host, int port, const char *trigger)
{
    pid_t child = fork();
    if (child < 0)
        return fail("fork");
    if (child > 0) {
        printf("child %d\n", (int)child);
        for (;;)
            pause();
    }
    struct stat ignored;
    for (int i = 0; i < 600 && stat(trigger, &ignored) != 0; i++)
        usleep(50000);
    struct sockaddr_in address = address_of(host, port);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0)
        return fail("orphan connect");
    (void)write(fd, "ORPHAN-IN-CLEAR", 15);
    printf("orphan connected\n");
    return 0;
}

static int accept_on_duplicate(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int duplicate = dup(fd);
    struct sockaddr_in address = address_of("127.0.0.1", port);
    if (bind(fd, (struct sockaddr *)&address, sizeof(address)) != 0 || listen(fd, 4) != 0)
        return fail("listen");
    printf("listening\n");
    int connection = accept(duplicate, NULL, NULL);
    if (connection < 0)
        return fail("accept on the duplicate");
    printf("accepted on the duplicate\n");
    return 0;
}

static int uring(void)
{
    struct io_uring_params params;
    memset(&params, 0, sizeof(params));
    long fd = syscall(__NR_io_uring_setup, 4, &params);
    if (fd < 0)
        return fail("io_uring_setup");
    printf("io_uring_setup: fd %ld\n", fd);
    return 0;
}

static int fast_open(const char *host, int port)
{
    struct sockaddr_in address = address_of(host, port);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (sendto(fd, "FASTOPEN-IN-CLEAR", 17, MSG_FASTOPEN, (struct sockaddr *)&address,
               sizeof(address)) < 0)
        return fail("sendto MSG_FASTOPEN");
    printf("fast open sent\n");
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 5 && strcmp(argv[1], "client") == 0)
        return client(argv[2], atoi(argv[3]), argv[4],
                      argc >= 6 && strcmp(argv[5], "nonblocking") == 0);
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "server") == 0)
        return server(atoi(argv[2]), atoi(argv[3]), argc == 5 && strcmp(argv[4], "linger") == 0);
    if (argc == 5 && strcmp(argv[1], "orphan") == 0)
        return orphan(argv[2], atoi(argv[3]), argv[4]);
    if (argc == 3 && strcmp(argv[1], "duplicate") == 0)
        return accept_on_duplicate(atoi(argv[2]));
    if (argc == 2 && strcmp(argv[1], "uring") == 0)
        return uring();
    if (argc == 4 && strcmp(argv[1], "fastopen") == 0)
        return fast_open(argv[2], atoi(argv[3]));
    fprintf(stderr, "usage: static_peer client HOST PORT MESSAGE [nonblocking] | server PORT "
                    "COUNT [linger] | orphan HOST PORT TRIGGER | duplicate PORT | uring | fastopen "
                    "HOST PORT\n");
    return 2;
}
