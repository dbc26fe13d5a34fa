/*
 * An inetd-style server: accepts a connection, reads the request line through TLS, then forks
 * and execs a handler (this program again) with the connection on stdin and stdout, which writes
 * the reply and goes on reading: a conversation that moves to a new program in its middle.
 *
 *   inetd_exec serve PORT COUNT   listen on 127.0.0.1:PORT, print "listening"; for each of COUNT
 *                                 connections: read one line, fork, in the child dup2 the
 *                                 connection onto 0 and 1, close it, exec "inetd_exec handle
 *                                 LINE"; the parent closes its copy and waits for the child
 *   inetd_exec spawn PORT COUNT   the same, but the handler is started by posix_spawn with file
 *                                 actions dup2(connection → 0), dup2(connection → 1) and
 *                                 close(connection), as a C server hands a connection to a
 *                                 handler program without fork
 *   inetd_exec handle LINE        write "handler got LINE", read one more line from stdin, write
 *                                 "handler read MORE", then exit (closing the connection)
 *
 * Reads and writes are plain read/write on the fds, one byte at a time for the request line so
 * that nothing after it is read by the server; interrupted or short calls are retried, as the
 * fault-injection soak makes them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loopback_listener.h"

static size_t read_line(int fd, char *line, size_t capacity)
{
    size_t length = 0;
    while (length + 1 < capacity) {
        char byte;
        ssize_t n = read(fd, &byte, 1);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            struct pollfd entry = {.fd = fd, .events = POLLIN};
            (void)poll(&entry, 1, 1000);
            continue;
        }
        if (n != 1 || byte == '\n')
            break;
        line[length++] = byte;
    }
    line[length] = '\0';
    return length;
}

static int write_text(int fd, const char *first, const char *second)
{
    char text[512];
    int n = snprintf(text, sizeof(text), "%s%s\n", first, second);
    for (int done = 0; n > 0 && done < n;) {
        ssize_t written = write(fd, text + done, (size_t)(n - done));
        if (written < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (written <= 0)
            return -1;
        done += (int)written;
    }
    return n > 0 ? 0 : -1;
}

static int handle(const char *request)
{
    if (write_text(1, "handler got ", request) != 0)
        return 1;
    char more[256];
    read_line(0, more, sizeof(more));
    return write_text(1, "handler read ", more) != 0;
}

extern char **environ;

/* The handler for request, started by posix_spawn with the connection on its stdin and stdout. */
static pid_t spawn_handler(int connection, const char *self, char *request)
{
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, connection, 0);
    posix_spawn_file_actions_adddup2(&actions, connection, 1);
    posix_spawn_file_actions_addclose(&actions, connection);
    char *argv[] = {(char *)self, "handle", request, NULL};
    pid_t child = -1;
    int error = posix_spawn(&child, self, &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    if (error != 0) {
        fprintf(stderr, "posix_spawn: %s\n", strerror(error));
        return -1;
    }
    return child;
}

static int serve(int port, int count, const char *self, bool spawn)
{
    int listener = listen_on_loopback(port, SOCK_STREAM, 8, "inetd_exec");
    for (int i = 0; i < count; i++) {
        int connection = accept(listener, NULL, NULL);
        if (connection < 0)
            continue;
        char request[256];
        read_line(connection, request, sizeof(request));
        pid_t child = spawn ? spawn_handler(connection, self, request) : fork();
        if (child == 0 && !spawn) {
            dup2(connection, 0);
            dup2(connection, 1);
            close(connection);
            close(listener);
            execl(self, self, "handle", request, (char *)NULL);
            perror("exec");
            _exit(127);
        }
        close(connection);
        int status = 0;
        waitpid(child, &status, 0);
        printf("handler exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "serve") == 0)
        return serve(atoi(argv[2]), atoi(argv[3]), argv[0], false);
    if (argc == 4 && strcmp(argv[1], "spawn") == 0)
        return serve(atoi(argv[2]), atoi(argv[3]), argv[0], true);
    if (argc == 3 && strcmp(argv[1], "handle") == 0)
        return handle(argv[2]);
    fprintf(stderr, "usage: inetd_exec serve|spawn PORT COUNT | inetd_exec handle LINE\n");
    return 2;
}
