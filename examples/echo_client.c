/*
 * An echo client that links libmeshtls directly (no preload): it connects over mutual TLS 1.3,
 * prints the server's SPIFFE ID, sends its message, half-closes, and prints what comes back.
 *
 *   echo_client PORT MESSAGE
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <meshtls.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: echo_client PORT MESSAGE\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)atoi(argv[1]))};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (meshtls_connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        fprintf(stderr, "echo_client: connect: %s\n", meshtls_last_error());
        return 1;
    }
    char peer[2049];
    if (meshtls_peer_id(fd, peer, sizeof(peer)) > 0)
        printf("server %s\n", peer);
    size_t length = strlen(argv[2]);
    for (size_t sent = 0; sent < length;) {
        ssize_t n = meshtls_write(fd, argv[2] + sent, length - sent);
        if (n < 0) {
            fprintf(stderr, "echo_client: write: %s\n", meshtls_last_error());
            return 1;
        }
        sent += (size_t)n;
    }
    meshtls_shutdown(fd, SHUT_WR);
    printf("echo ");
    char buffer[4096];
    ssize_t n;
    while ((n = meshtls_read(fd, buffer, sizeof(buffer))) > 0)
        fwrite(buffer, 1, (size_t)n, stdout);
    printf("\n");
    if (n < 0) {
        fprintf(stderr, "echo_client: read: %s\n", meshtls_last_error());
        return 1;
    }
    meshtls_close(fd);
    return 0;
}
