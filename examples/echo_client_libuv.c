/*
 * An echo client on libuv that links libmeshtls directly (no preload): a libuv poll handle on
 * its non-blocking socket, the mutual TLS 1.3 handshake driven by meshtls_handshake and the
 * events meshtls_events asks for, and nothing in the loop ever blocks - not even the first
 * fetch of the identity from the agent.
 *
 *   echo_client_libuv PORT MESSAGE [SERVER_ID]
 *
 * Connects to 127.0.0.1:PORT, requiring the server's SPIFFE ID to match SERVER_ID when given (a
 * pattern, see meshtls.h: meshtls_connect_pinned). Prints "server SPIFFE-ID", sends MESSAGE,
 * half-closes, and prints "echo " and what came back. meshtls_init is not called on purpose:
 * before the identity is there, meshtls_connect says EAGAIN at once ("waiting for the identity"
 * is printed once) and a loop timer connects again, while the loop goes on serving.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include <meshtls.h>

#define RETRY_MS 50

static struct {
    int fd;
    struct sockaddr_in server;
    const char *server_id; /* NULL: whatever the configuration accepts */
    const char *message;
    size_t sent;
    bool established;
    bool write_closed;
    char echo[65536];
    size_t echo_length;
    int status; /* the exit status */
    uv_poll_t poll;
    bool polling;     /* poll is initialised: the connect has begun */
    uv_timer_t timer; /* retries the connect; then the handshake's deadline */
} client = {.fd = -1, .status = 1};

static void on_socket(uv_poll_t *handle, int status, int events);

static void stop(int status, const char *why)
{
    if (why != NULL)
        fprintf(stderr, "echo_client_libuv: %s\n", why);
    client.status = status;
    if (client.polling)
        uv_close((uv_handle_t *)&client.poll, NULL);
    uv_close((uv_handle_t *)&client.timer, NULL);
    meshtls_close(client.fd);
}

static void on_deadline(uv_timer_t *timer)
{
    on_socket(&client.poll, 0, 0); /* meshtls_handshake then says ETIMEDOUT */
}

/* Asks the loop for what the connection needs now (meshtls_events), and for its deadline. */
static void wait_for(short wanted)
{
    int timeout_ms = -1;
    int events = meshtls_events(client.fd, wanted, &timeout_ms);
    if (events < 0) {
        stop(1, meshtls_last_error());
        return;
    }
    uv_poll_start(&client.poll,
                  ((events & POLLIN) ? UV_READABLE : 0) | ((events & POLLOUT) ? UV_WRITABLE : 0),
                  on_socket);
    uv_timer_stop(&client.timer);
    if (timeout_ms >= 0)
        uv_timer_start(&client.timer, on_deadline, (uint64_t)timeout_ms + 1, 0);
}

/*
 * Sends the message, then half-closes; false when the socket must become writable first. The
 * message goes as two pieces in one call (as a header and a body would), what is left of each.
 */
static bool send_message(void)
{
    size_t length = strlen(client.message);
    size_t half = length / 2;
    while (client.sent < length) {
        struct iovec pieces[2];
        int count = 0;
        if (client.sent < half)
            pieces[count++] =
                (struct iovec){(char *)client.message + client.sent, half - client.sent};
        size_t from = client.sent < half ? half : client.sent;
        pieces[count++] = (struct iovec){(char *)client.message + from, length - from};
        ssize_t n = meshtls_writev(client.fd, pieces, count);
        if (n < 0)
            return false;
        client.sent += (size_t)n;
    }
    if (!client.write_closed && meshtls_shutdown(client.fd, SHUT_WR) != 0)
        return false;
    client.write_closed = true;
    return true;
}

/* Reads until EAGAIN (decrypted bytes held by libmeshtls included) or the end of the echo. */
static void receive_echo(void)
{
    for (;;) {
        size_t room = sizeof(client.echo) - 1 - client.echo_length;
        ssize_t n = meshtls_read(client.fd, client.echo + client.echo_length, room);
        if (n > 0 && (size_t)n < room + 1) {
            client.echo_length += (size_t)n;
        } else if (n == 0 || room == 0) {
            client.echo[client.echo_length] = '\0';
            printf("echo %s\n", client.echo);
            stop(0, NULL);
            return;
        } else if (errno == EAGAIN) {
            wait_for(POLLIN);
            return;
        } else {
            stop(1, meshtls_last_error());
            return;
        }
    }
}

static void on_socket(uv_poll_t *handle, int status, int events)
{
    if (!client.established) {
        int step = meshtls_handshake(client.fd);
        if (step < 0) {
            stop(1, meshtls_last_error());
            return;
        }
        if (step > 0) {
            wait_for(step == MESHTLS_WANT_READ ? POLLIN : POLLOUT);
            return;
        }
        client.established = true;
        uv_timer_stop(&client.timer);
        char peer[2049];
        if (meshtls_peer_id(client.fd, peer, sizeof(peer)) > 0)
            printf("server %s\n", peer);
        fflush(stdout);
    }
    if (!client.write_closed && !send_message()) {
        if (errno == EAGAIN)
            wait_for(POLLOUT);
        else
            stop(1, meshtls_last_error());
        return;
    }
    receive_echo();
}

static void try_connect(uv_timer_t *timer)
{
    static bool said;
    const struct sockaddr *address = (const struct sockaddr *)&client.server;
    int result =
        client.server_id != NULL
            ? meshtls_connect_pinned(client.fd, address, sizeof(client.server), client.server_id)
            : meshtls_connect(client.fd, address, sizeof(client.server));
    if (result != 0 && errno == EAGAIN) {
        /* No identity yet: nothing was sent, and the agent is being asked meanwhile. */
        if (!said)
            printf("waiting for the identity\n");
        fflush(stdout);
        said = true;
        uv_timer_start(&client.timer, try_connect, RETRY_MS, 0);
        return;
    }
    if (result != 0 && errno != EINPROGRESS) {
        stop(1, meshtls_last_error());
        return;
    }
    uv_poll_init(uv_default_loop(), &client.poll, client.fd);
    client.polling = true;
    on_socket(&client.poll, 0, 0);
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: echo_client_libuv PORT MESSAGE [SERVER_ID]\n");
        return 2;
    }
    client.message = argv[2];
    client.server_id = argc == 4 ? argv[3] : NULL;
    client.server.sin_family = AF_INET;
    client.server.sin_port = htons((uint16_t)atoi(argv[1]));
    client.server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    client.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (client.fd < 0) {
        perror("echo_client_libuv: socket");
        return 1;
    }
    uv_timer_init(uv_default_loop(), &client.timer);
    try_connect(&client.timer);
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
    uv_loop_close(uv_default_loop());
    return client.status;
}
