/*
 * An echo server on libevent that links libmeshtls directly (no preload): every accepted
 * connection is mutual TLS 1.3, and its handshake is driven by the event loop itself
 * (meshtls_handshake and meshtls_events), never by a blocking call.
 *
 *   echo_server_libevent PORT     listens on 127.0.0.1:PORT, serves any number of clients
 *
 * Prints "listening", then "client SPIFFE-ID" for each client once its handshake is done, and
 * on stderr "refused: REASON" for each connection whose handshake failed (a plaintext client,
 * an identity the configuration does not allow), "failed: REASON" for one that broke later.
 * Events are edge-triggered: every read event is drained until EAGAIN, decrypted bytes included
 * (see meshtls.h, "Event loops").
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <meshtls.h>

struct client {
    int fd;
    struct event *event;
    bool established;
    bool peer_done;      /* the client half-closed: answer what is left, then close */
    char unsent[16384];  /* echo bytes the socket did not take yet */
    size_t unsent_start; /* the first of them */
    size_t unsent_end;
};

static struct event_base *base;

static void on_client(evutil_socket_t fd, short what, void *argument);

/* Closes the connection; why (NULL: it ended normally) is what the client's stderr line says. */
static void finish(struct client *client, const char *what, const char *why)
{
    if (why != NULL)
        fprintf(stderr, "%s: %s\n", what, why);
    event_free(client->event);
    meshtls_close(client->fd);
    free(client);
}

/* Waits for what the connection needs (meshtls_events), with the handshake's deadline. */
static void wait_for(struct client *client, short wanted)
{
    int timeout_ms = -1;
    int events = meshtls_events(client->fd, wanted, &timeout_ms);
    if (events < 0) {
        finish(client, client->established ? "failed" : "refused", meshtls_last_error());
        return;
    }
    short flags = EV_ET | EV_PERSIST | ((events & POLLIN) ? EV_READ : 0) |
                  ((events & POLLOUT) ? EV_WRITE : 0);
    event_del(client->event);
    event_assign(client->event, base, client->fd, flags, on_client, client);
    struct timeval deadline = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    event_add(client->event, timeout_ms >= 0 ? &deadline : NULL);
}

/* Sends what is left of the echo; false while the socket cannot take it all. */
static bool flush(struct client *client)
{
    while (client->unsent_start < client->unsent_end) {
        ssize_t n = meshtls_write(client->fd, client->unsent + client->unsent_start,
                                  client->unsent_end - client->unsent_start);
        if (n < 0)
            return false;
        client->unsent_start += (size_t)n;
    }
    client->unsent_start = client->unsent_end = 0;
    return true;
}

/* Echoes until the socket has nothing more to give (EAGAIN) or cannot take more. */
static void serve(struct client *client)
{
    for (;;) {
        if (!flush(client)) {
            if (errno != EAGAIN) {
                finish(client, "failed", meshtls_last_error());
                return;
            }
            wait_for(client, POLLOUT);
            return;
        }
        if (client->peer_done) {
            finish(client, NULL, NULL);
            return;
        }
        ssize_t n = meshtls_read(client->fd, client->unsent, sizeof(client->unsent));
        if (n > 0) {
            client->unsent_end = (size_t)n;
        } else if (n == 0) {
            client->peer_done = true;
        } else if (errno == EAGAIN) {
            wait_for(client, POLLIN);
            return;
        } else {
            finish(client, "failed", meshtls_last_error());
            return;
        }
    }
}

static void on_client(evutil_socket_t fd, short what, void *argument)
{
    struct client *client = argument;
    if (!client->established) {
        int step = meshtls_handshake((int)fd);
        if (step < 0) {
            finish(client, "refused", meshtls_last_error());
            return;
        }
        if (step > 0) {
            wait_for(client, step == MESHTLS_WANT_READ ? POLLIN : POLLOUT);
            return;
        }
        client->established = true;
        char peer[2049];
        if (meshtls_peer_id((int)fd, peer, sizeof(peer)) > 0)
            printf("client %s\n", peer);
        fflush(stdout);
    }
    serve(client);
}

static void on_listener(evutil_socket_t listener, short what, void *argument)
{
    for (;;) {
        int fd = meshtls_accept_nonblock((int)listener, NULL, NULL);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                fprintf(stderr, "echo_server_libevent: accept: %s\n", meshtls_last_error());
            if (errno == EAGAIN)
                return;
            continue;
        }
        struct client *client = calloc(1, sizeof(*client));
        if (client == NULL) {
            meshtls_close(fd);
            continue;
        }
        client->fd = fd;
        client->event = event_new(base, fd, 0, on_client, client);
        on_client(fd, 0, client);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: echo_server_libevent PORT\n");
        return 2;
    }
    /* The identity before the loop runs: the one call that may wait for the agent. */
    if (meshtls_init() != 0) {
        fprintf(stderr, "echo_server_libevent: %s\n", meshtls_last_error());
        return 1;
    }
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int yes = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)atoi(argv[1]))};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&address, sizeof(address)) != 0 ||
        listen(listener, 64) != 0) {
        perror("echo_server_libevent: listen");
        return 1;
    }
    base = event_base_new();
    struct event *accepting = event_new(base, listener, EV_READ | EV_PERSIST, on_listener, NULL);
    event_add(accepting, NULL);
    printf("listening\n");
    fflush(stdout);
    event_base_dispatch(base);
    event_free(accepting);
    event_base_free(base);
    return 0;
}
