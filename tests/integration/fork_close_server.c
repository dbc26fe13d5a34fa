/*
 * An epoll line-echo server that forks a background child on request: the pattern of a server
 * whose snapshot, log-rotation or worker child closes what it inherited and lives on (redis's
 * BGSAVE child closes the listening sockets), while the parent's event loop must carry on.
 *
 *   fork_close_server PORT level|edge close|close_range CHILD_MS
 *
 * Listens on 127.0.0.1:PORT, the listener and every accepted connection registered with one
 * epoll instance (connections level- or edge-triggered as asked), and echoes each line it reads.
 * A line "fork" forks a child that closes every descriptor it inherited but stdin/stdout/stderr
 * (one close() each: the listener, the epoll fd last, the connections; or one close_range(3, ~0)
 * call), sleeps CHILD_MS and exits; the parent answers "forked PID" and, when the child has
 * exited, prints "child PID exited STATUS" on stdout. Prints "listening" once it listens.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loopback_listener.h"

#define MAX_CONNECTIONS 64
#define LINE_MAX_BYTES 4096

struct connection {
    int fd;
    size_t length;
    char line[LINE_MAX_BYTES];
};

static struct connection connections[MAX_CONNECTIONS];
static int listener = -1;
static int epfd = -1;
static bool edge;
static bool use_close_range;
static int child_ms;

static void fail(const char *what)
{
    perror(what);
    exit(1);
}

static bool write_all(int fd, const char *data, size_t length)
{
    while (length > 0) {
        ssize_t n = write(fd, data, length);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            /* A line echo is small: wait for room rather than buffer it. */
            usleep(1000);
            continue;
        }
        if (n <= 0)
            return false;
        data += n;
        length -= (size_t)n;
    }
    return true;
}

static void drop(struct connection *connection)
{
    (void)epoll_ctl(epfd, EPOLL_CTL_DEL, connection->fd, NULL);
    close(connection->fd);
    connection->fd = -1;
    connection->length = 0;
}

/* In the child: closes what it inherited, lives on for a while, exits without flushing stdio. */
static void child_main(void)
{
    if (use_close_range) {
        if (close_range(3, ~0u, 0) != 0)
            _exit(3);
    } else {
        close(listener);
        for (int i = 0; i < MAX_CONNECTIONS; i++)
            if (connections[i].fd >= 0)
                close(connections[i].fd);
        close(epfd);
    }
    usleep((useconds_t)child_ms * 1000);
    _exit(0);
}

static void answer_fork(struct connection *connection)
{
    pid_t child = fork();
    if (child < 0)
        fail("fork");
    if (child == 0)
        child_main();
    char reply[64];
    int length = snprintf(reply, sizeof(reply), "forked %d\n", (int)child);
    if (!write_all(connection->fd, reply, (size_t)length))
        drop(connection);
}

/* Handles the complete lines in connection's buffer; false when the connection went. */
static bool handle_lines(struct connection *connection)
{
    char *newline;
    while ((newline = memchr(connection->line, '\n', connection->length)) != NULL) {
        size_t line_length = (size_t)(newline - connection->line) + 1;
        if (line_length == 5 && memcmp(connection->line, "fork\n", 5) == 0) {
            answer_fork(connection);
            if (connection->fd < 0)
                return false;
        } else if (!write_all(connection->fd, connection->line, line_length)) {
            drop(connection);
            return false;
        }
        memmove(connection->line, connection->line + line_length, connection->length - line_length);
        connection->length -= line_length;
    }
    if (connection->length == sizeof(connection->line)) {
        drop(connection);
        return false;
    }
    return true;
}

/* Reads what is there (all of it under EPOLLET) and echoes complete lines. */
static void serve(struct connection *connection)
{
    for (;;) {
        ssize_t n = read(connection->fd, connection->line + connection->length,
                         sizeof(connection->line) - connection->length);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            drop(connection);
            return;
        }
        connection->length += (size_t)n;
        if (!handle_lines(connection) || !edge)
            return;
    }
}

static void accept_all(void)
{
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                fail("accept4");
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;
        }
        int slot = 0;
        while (slot < MAX_CONNECTIONS && connections[slot].fd >= 0)
            slot++;
        if (slot == MAX_CONNECTIONS) {
            close(fd);
            continue;
        }
        connections[slot].fd = fd;
        connections[slot].length = 0;
        struct epoll_event event = {.events = EPOLLIN | EPOLLRDHUP | (edge ? EPOLLET : 0),
                                    .data.ptr = &connections[slot]};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) != 0)
            fail("epoll_ctl ADD connection");
    }
}

static void reap_children(void)
{
    int status = 0;
    pid_t child;
    while ((child = waitpid(-1, &status, WNOHANG)) > 0) {
        printf("child %d exited %d\n", (int)child, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[2], "level") != 0 && strcmp(argv[2], "edge") != 0) ||
        (strcmp(argv[3], "close") != 0 && strcmp(argv[3], "close_range") != 0)) {
        fprintf(stderr, "usage: fork_close_server PORT level|edge close|close_range CHILD_MS\n");
        return 2;
    }
    edge = strcmp(argv[2], "edge") == 0;
    use_close_range = strcmp(argv[3], "close_range") == 0;
    child_ms = atoi(argv[4]);
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < MAX_CONNECTIONS; i++)
        connections[i].fd = -1;

    listener =
        listen_on_loopback(atoi(argv[1]), SOCK_STREAM | SOCK_NONBLOCK, 64, "fork_close_server");
    epfd = epoll_create1(0);
    if (epfd < 0)
        fail("epoll_create1");
    /* The listener level-triggered, as redis's ae registers it. */
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &event) != 0)
        fail("epoll_ctl ADD listener");

    for (;;) {
        struct epoll_event events[16];
        int n = epoll_wait(epfd, events, 16, 100);
        if (n < 0 && errno != EINTR)
            fail("epoll_wait");
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == NULL)
                accept_all();
            else if (((struct connection *)events[i].data.ptr)->fd >= 0)
                serve(events[i].data.ptr);
        }
        reap_children();
    }
}
