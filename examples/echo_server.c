/*
 * An echo server that links libmeshtls directly (no preload): every accepted connection is
 * mutual TLS 1.3, and the server prints the SPIFFE ID of each client before echoing its bytes.
 *
 *   echo_server PORT     listens on 127.0.0.1:PORT; one connection at a time, until killed
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <meshtls.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: echo_server PORT\n");
        return 2;
    }
    if (meshtls_init() != 0) {
        fprintf(stderr, "echo_server: %s\n", meshtls_last_error());
        return 1;
    }
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int yes = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)atoi(argv[1]))};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&address, sizeof(address)) != 0 ||
        listen(listener, 16) != 0) {
        perror("echo_server: listen");
        return 1;
    }
    printf("listening\n");
    fflush(stdout);
    for (;;) {
        int fd = meshtls_accept(listener, NULL, NULL, 0);
        if (fd < 0) {
            fprintf(stderr, "echo_server: accept: %s\n", meshtls_last_error());
            continue;
        }
        char buffer[16384];
        ssize_t n;
        bool first = true;
        while ((n = meshtls_read(fd, buffer, sizeof(buffer))) > 0) {
            if (first) {
                char peer[2049];
                if (meshtls_peer_id(fd, peer, sizeof(peer)) > 0)
                    printf("client %s\n", peer);
                fflush(stdout);
                first = false;
            }
            for (ssize_t sent = 0; sent < n;) {
                ssize_t w = meshtls_write(fd, buffer + sent, (size_t)(n - sent));
                if (w < 0)
                    break;
                sent += w;
            }
        }
        if (n < 0)
            fprintf(stderr, "echo_server: %s\n", meshtls_last_error());
        meshtls_close(fd);
    }
}
