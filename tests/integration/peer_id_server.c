/*
 * A server linked with libmeshtls directly that tells each client who it was taken to be: on
 * every port given it accepts mTLS connections, reads one line and answers with the peer's
 * SPIFFE ID as meshtls_peer_id reports it, then closes. Its log lines (MESHTLS_LOG) name the
 * same ID, and its metrics count it.
 *
 *   peer_id_server PORT...     listens on 127.0.0.1:PORT for each; until killed
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <meshtls.h>

#define PORTS_MAX 8

static void serve(int listener)
{
    int fd = meshtls_accept(listener, NULL, NULL, 0);
    if (fd < 0)
        return;
    char line[256];
    size_t used = 0;
    while (used < sizeof(line) && memchr(line, '\n', used) == NULL) {
        ssize_t n = meshtls_read(fd, line + used, sizeof(line) - used);
        if (n <= 0)
            break;
        used += (size_t)n;
    }
    char peer[2100];
    int length = meshtls_peer_id(fd, peer, sizeof(peer) - 1);
    if (length > 0) {
        peer[length] = '\n';
        meshtls_write(fd, peer, (size_t)length + 1);
    }
    meshtls_close(fd);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc - 1 > PORTS_MAX) {
        fprintf(stderr, "usage: peer_id_server PORT...\n");
        return 2;
    }
    if (meshtls_init() != 0) {
        fprintf(stderr, "peer_id_server: %s\n", meshtls_last_error());
        return 1;
    }
    struct pollfd listeners[PORTS_MAX];
    for (int i = 1; i < argc; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int yes = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
        struct sockaddr_in address = {.sin_family = AF_INET,
                                      .sin_port = htons((uint16_t)atoi(argv[i]))};
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, (struct sockaddr *)&address, sizeof(address)) != 0 || listen(fd, 16) != 0) {
            perror("peer_id_server: listen");
            return 1;
        }
        listeners[i - 1] = (struct pollfd){.fd = fd, .events = POLLIN};
    }
    printf("listening\n");
    fflush(stdout);
    for (;;) {
        if (poll(listeners, (nfds_t)(argc - 1), -1) < 0)
            continue;
        for (int i = 0; i < argc - 1; i++)
            if (listeners[i].revents & POLLIN)
                serve(listeners[i].fd);
    }
}
