/*
 * A server whose child is made by the clone system call itself, not glibc's fork, so that no
 * pthread_atfork handler runs in it (vsftpd isolates each session's processes this way:
 * clone(CLONE_NEWPID | CLONE_NEWIPC | … | SIGCHLD)). For each of COUNT connections: read a
 * request line, clone a child that puts the connection on its stdout (dup2) and writes
 * "child got LINE" there, wait for it, close.
 *
 *   raw_fork_server PORT COUNT
 *
 * Prints "listening" once it listens and "child exited N" for each child.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loopback_listener.h"

static size_t read_line(int fd, char *line, size_t capacity)
{
    size_t length = 0;
    while (length + 1 < capacity) {
        char byte;
        ssize_t n = read(fd, &byte, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != 1 || byte == '\n')
            break;
        line[length++] = byte;
    }
    line[length] = '\0';
    return length;
}

static int child(int connection, const char *request)
{
    if (dup2(connection, 1) != 1)
        return 2;
    close(connection);
    char text[512];
    int n = snprintf(text, sizeof(text), "child got %s\n", request);
    for (int done = 0; done < n;) {
        ssize_t written = write(1, text + done, (size_t)(n - done));
        if (written < 0 && errno == EINTR)
            continue;
        if (written <= 0)
            return 1;
        done += (int)written;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: raw_fork_server PORT COUNT\n");
        return 2;
    }
    int listener = listen_on_loopback(atoi(argv[1]), SOCK_STREAM, 8, "raw_fork_server");
    for (int i = 0; i < atoi(argv[2]); i++) {
        int connection = accept(listener, NULL, NULL);
        if (connection < 0)
            continue;
        char request[256];
        read_line(connection, request, sizeof(request));
        /* fork semantics (no CLONE_VM), through the system call: glibc's fork handlers skipped. */
        long pid = syscall(SYS_clone, (unsigned long)SIGCHLD, NULL, NULL, NULL, 0UL);
        if (pid == 0) {
            close(listener);
            _exit(child(connection, request));
        }
        int status = 0;
        if (pid > 0)
            waitpid((pid_t)pid, &status, 0);
        close(connection);
        printf("child exited %d\n", pid > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        fflush(stdout);
    }
    return 0;
}
