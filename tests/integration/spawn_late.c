/*
 * A client that prepares a posix_spawn with its connection as the new program's stdout before
 * the connection is up, then spawns once it is: what a program does that sets up a child's file
 * actions early (the dup2 itself runs in glibc's child, where no hook reaches).
 *
 *   spawn_late PORT TEXT [before-connect]
 *                           non-blocking connect to 127.0.0.1:PORT; adddup2(socket → 1) (before
 *                           the connect with "before-connect": the socket is no connection yet);
 *                           wait until writable; posix_spawn("/bin/sh", "-c", "echo TEXT");
 *                           prints "spawned" (and waits for the child) or "refused ERRNO-NAME"
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
    if (argc != 3 && !(argc == 4 && strcmp(argv[3], "before-connect") == 0)) {
        fprintf(stderr, "usage: spawn_late PORT TEXT [before-connect]\n");
        return 2;
    }
    bool before_connect = argc == 4;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (before_connect)
        posix_spawn_file_actions_adddup2(&actions, fd, 1);
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)atoi(argv[1]))};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0 && errno != EINPROGRESS) {
        perror("spawn_late: connect");
        return 1;
    }
    if (!before_connect)
        posix_spawn_file_actions_adddup2(&actions, fd, 1);
    struct pollfd entry = {.fd = fd, .events = POLLOUT};
    if (poll(&entry, 1, 10000) != 1) {
        fprintf(stderr, "spawn_late: the connection did not come up\n");
        return 1;
    }
    char command[256];
    snprintf(command, sizeof(command), "echo %s", argv[2]);
    char *child_argv[] = {"/bin/sh", "-c", command, NULL};
    pid_t child = 0;
    int error = posix_spawn(&child, "/bin/sh", &actions, NULL, child_argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    if (error != 0) {
        printf("refused %s\n", error == EPERM ? "EPERM" : strerror(error));
        return 0;
    }
    printf("spawned\n");
    fflush(stdout);
    waitpid(child, NULL, 0);
    close(fd);
    return 0;
}
