/*
 * The ceiling for the handshake benchmark: the mutual TLS 1.3 handshake libmeshtls performs (same
 * wolfSSL build, suites, key-share group order, ALPN, grouped handshake messages, verify callback
 * reading the leaf), then one 64-byte round trip and close_notify, in a loop, with wolfSSL called
 * directly and nothing else running.
 *
 *   wolf_bare [--tcp [--resume]] [--classical] CA_PEM SERVER_CERT SERVER_KEY CLIENT_CERT
 *             CLIENT_KEY SECONDS
 *
 * Without --tcp, client and server run in one process over a socketpair: wolfSSL's cost alone.
 * With --tcp, a server process and a client process talk over TCP on 127.0.0.1, one connection at
 * a time, exactly as `bench_net handshakes` against `bench_net echo-server` does under the
 * preload: connect (client TCP_NODELAY), handshake, write 64 B, read the 64 B echo, close_notify,
 * close. That pays the same process switches and TCP setup as the meshed pair, so it is the fair
 * ceiling for libmeshtls's figure.
 * With --resume (TCP only), the server issues session tickets (wolfSSL's default ticket
 * encryption) and the client offers the session of its previous connection on the next one, as
 * TLS 1.3 resumption with a fresh (EC)DHE share; the run fails if fewer than 90 % resumed.
 *
 * With --classical, the key-share groups of post_quantum = "off" (X25519, P-256) instead of the
 * default's hybrid X25519MLKEM768 first.
 *
 * Prints {"mode": ..., "handshakes": N, "resumed": M, "seconds": S, "per_second": R} on stdout.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "loopback.h"

#define REQUEST_SIZE 64

static const char suites[] =
    "TLS13-AES128-GCM-SHA256:TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES256-GCM-SHA384";
static const char alpn[] = "meshtls/1";

struct options {
    bool tcp;
    bool resume;
};

static void die(const char *what)
{
    fprintf(stderr, "wolf_bare: %s\n", what);
    exit(1);
}

/* Like libmeshtls: look at the leaf's DER at depth 0, accept what the chain check accepted. */
static int verify(int preverified, WOLFSSL_X509_STORE_CTX *store)
{
    if (!preverified)
        return 0;
    if (store->error_depth != 0)
        return 1;
    return store->certs != NULL && store->totalCerts > 0 && store->certs[0].buffer != NULL &&
           store->certs[0].length > 0;
}

/* --classical: post_quantum = "off"'s groups. */
static bool classical;

/* libmeshtls's key-share order (set_groups in libmeshtls/tls/context.c). */
static void set_groups(WOLFSSL_CTX *ctx)
{
    int groups[4];
    int count = 0;
#if defined(WOLFSSL_HAVE_MLKEM) && defined(WOLFSSL_PQC_HYBRIDS)
    if (!classical) {
        groups[count++] = WOLFSSL_X25519MLKEM768;
        groups[count++] = WOLFSSL_SECP256R1MLKEM768;
    }
#endif
    groups[count++] = WOLFSSL_ECC_X25519;
    groups[count++] = WOLFSSL_ECC_SECP256R1;
    if (wolfSSL_CTX_set_groups(ctx, groups, count) != WOLFSSL_SUCCESS)
        die("groups");
}

static WOLFSSL_CTX *make_ctx(bool server, bool resume, const char *ca, const char *cert,
                             const char *key)
{
    WOLFSSL_CTX *ctx =
        wolfSSL_CTX_new(server ? wolfTLSv1_3_server_method() : wolfTLSv1_3_client_method());
    if (ctx == NULL)
        die("wolfSSL_CTX_new");
    if (wolfSSL_CTX_set_group_messages(ctx) != WOLFSSL_SUCCESS)
        die("group messages");
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify);
    if (wolfSSL_CTX_set_cipher_list(ctx, suites) != WOLFSSL_SUCCESS)
        die("cipher list");
    set_groups(ctx);
    /* Without resumption, as libmeshtls with resumption_s = 0: no tickets, no session cache. */
    if (server && !resume && wolfSSL_CTX_no_ticket_TLSv13(ctx) != 0)
        die("no tickets");
#ifndef NO_SESSION_CACHE
    /* A server decrypts its own tickets and needs no cache; a resuming client needs its cache,
     * or wolfSSL_set_session refuses every session. */
    if (server || !resume)
        wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
#endif
    if (wolfSSL_CTX_use_certificate_chain_file(ctx, cert) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_PrivateKey_file(ctx, key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_load_verify_locations(ctx, ca, NULL) != WOLFSSL_SUCCESS)
        die("loading certificates");
    return ctx;
}

/* ---- one process, socketpair ----------------------------------------------------------------- */

static bool wants_io(WOLFSSL *ssl, int ret)
{
    int error = wolfSSL_get_error(ssl, ret);
    return error == WOLFSSL_ERROR_WANT_READ || error == WOLFSSL_ERROR_WANT_WRITE;
}

static bool socketpair_connection(WOLFSSL_CTX *client_ctx, WOLFSSL_CTX *server_ctx)
{
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair) != 0)
        return false;
    WOLFSSL *client = wolfSSL_new(client_ctx);
    WOLFSSL *server = wolfSSL_new(server_ctx);
    bool ok = client != NULL && server != NULL;
    if (ok) {
        wolfSSL_set_fd(client, pair[0]);
        wolfSSL_set_fd(server, pair[1]);
        wolfSSL_UseALPN(client, (char *)alpn, sizeof(alpn) - 1, WOLFSSL_ALPN_CONTINUE_ON_MISMATCH);
    }
    bool client_done = false, server_done = false;
    for (int steps = 0; ok && !(client_done && server_done) && steps < 100; steps++) {
        if (!client_done) {
            int ret = wolfSSL_connect(client);
            client_done = ret == WOLFSSL_SUCCESS;
            ok = client_done || wants_io(client, ret);
        }
        if (ok && !server_done) {
            int ret = wolfSSL_accept(server);
            server_done = ret == WOLFSSL_SUCCESS;
            ok = server_done || wants_io(server, ret);
        }
    }
    ok = ok && client_done && server_done;
    char request[REQUEST_SIZE], reply[REQUEST_SIZE];
    memset(request, 'r', sizeof(request));
    ok = ok && wolfSSL_write(client, request, sizeof(request)) == sizeof(request) &&
         wolfSSL_read(server, reply, sizeof(reply)) == sizeof(reply) &&
         wolfSSL_write(server, reply, sizeof(reply)) == sizeof(reply) &&
         wolfSSL_read(client, reply, sizeof(reply)) == sizeof(reply);
    if (ok) {
        wolfSSL_shutdown(client);
        wolfSSL_shutdown(server);
    }
    wolfSSL_free(client);
    wolfSSL_free(server);
    close(pair[0]);
    close(pair[1]);
    return ok;
}

/* ---- two processes, TCP ---------------------------------------------------------------------- */

/* As bench_net's listen_on, on a port the kernel picks. */
static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in address = loopback(0);
    socklen_t length = sizeof(address);
    if (bind(fd, (struct sockaddr *)&address, sizeof(address)) != 0 || listen(fd, 4096) != 0 ||
        getsockname(fd, (struct sockaddr *)&address, &length) != 0)
        die("listening on 127.0.0.1");
    *port = ntohs(address.sin_port);
    return fd;
}

struct served {
    int fd;
    bool accepting;
};

/*
 * The server's sends. A server that issues tickets sends its NewSessionTicket after the client's
 * Finished, as the last act of wolfSSL_accept, in a segment of its own; the first reply then waits
 * behind it for the client's ACK (Nagle, as bench_net's server does not set TCP_NODELAY), and the
 * client delays that ACK by up to 40 ms. With MSG_MORE the kernel holds the ticket until the reply,
 * which carries both.
 */
static int send_holding_ticket(WOLFSSL *ssl, char *buffer, int size, void *context)
{
    struct served *served = context;
    int flags = MSG_NOSIGNAL;
    if (served->accepting && wolfSSL_is_init_finished(ssl))
        flags |= MSG_MORE;
    ssize_t n;
    do
        n = send(served->fd, buffer, (size_t)size, flags);
    while (n < 0 && errno == EINTR);
    return n >= 0 ? (int)n : WOLFSSL_CBIO_ERR_CONN_RST;
}

/* Like bench_net echo-server: echo until the peer ends the stream (here with close_notify). */
static void serve_connection(WOLFSSL_CTX *ctx, int fd)
{
    struct served served = {.fd = fd, .accepting = true};
    WOLFSSL *ssl = wolfSSL_new(ctx);
    if (ssl == NULL || wolfSSL_set_fd(ssl, fd) != WOLFSSL_SUCCESS)
        goto out;
    wolfSSL_SSLSetIOSend(ssl, send_holding_ticket);
    wolfSSL_SetIOWriteCtx(ssl, &served);
    int ret = wolfSSL_accept(ssl);
    served.accepting = false;
    if (ret != WOLFSSL_SUCCESS) {
        fprintf(stderr, "wolf_bare: server handshake failed (%d)\n", wolfSSL_get_error(ssl, ret));
        goto out;
    }
    char buffer[REQUEST_SIZE];
    int n;
    while ((n = wolfSSL_read(ssl, buffer, sizeof(buffer))) > 0)
        if (wolfSSL_write(ssl, buffer, n) != n)
            break;
    if (n <= 0 && wolfSSL_get_error(ssl, n) == WOLFSSL_ERROR_ZERO_RETURN)
        wolfSSL_shutdown(ssl);
out:
    wolfSSL_free(ssl);
    close(fd);
}

static void serve(WOLFSSL_CTX *ctx, int listener)
{
    for (;;) {
        int fd = accept_next(listener);
        if (fd < 0)
            die("accept");
        serve_connection(ctx, fd);
    }
}

struct client {
    WOLFSSL_CTX *ctx;
    int port;
    bool resume;
    WOLFSSL_SESSION *session; /* the last full handshake's, offered on the next connections */
    long resumed;
};

static bool tcp_connection(struct client *client)
{
    int fd = connect_to(client->port);
    if (fd < 0)
        return false;
    WOLFSSL *ssl = wolfSSL_new(client->ctx);
    bool ok = ssl != NULL && wolfSSL_set_fd(ssl, fd) == WOLFSSL_SUCCESS &&
              wolfSSL_UseALPN(ssl, (char *)alpn, sizeof(alpn) - 1,
                              WOLFSSL_ALPN_CONTINUE_ON_MISMATCH) == WOLFSSL_SUCCESS;
    if (ok && client->session != NULL &&
        wolfSSL_set_session(ssl, client->session) != WOLFSSL_SUCCESS)
        die("wolfSSL_set_session refused the previous session");
    ok = ok && wolfSSL_connect(ssl) == WOLFSSL_SUCCESS;
    char request[REQUEST_SIZE], reply[REQUEST_SIZE];
    memset(request, 'r', sizeof(request));
    ok = ok && wolfSSL_write(ssl, request, sizeof(request)) == sizeof(request);
    int got = 0;
    while (ok && got < (int)sizeof(reply)) {
        int n = wolfSSL_read(ssl, reply + got, (int)sizeof(reply) - got);
        ok = n > 0;
        got += ok ? n : 0;
    }
    ok = ok && memcmp(request, reply, sizeof(reply)) == 0;
    /*
     * The server sent its ticket before the echo, so reading the echo has stored it. The client
     * offers the session of its last full handshake each time: wolfSSL 5.9.2's own ticket
     * encryption carries a ticket's nonce into the next ticket of a resumed connection and fails
     * the handshake at the 256th resumption of one chain (SESSION_TICKET_NONCE_OVERFLOW).
     * libmeshtls's tickets (tls/claim.c) start each connection's nonces afresh.
     */
    if (ok && client->resume && wolfSSL_session_reused(ssl))
        client->resumed++;
    else if (ok && client->resume) {
        WOLFSSL_SESSION *next = wolfSSL_get1_session(ssl);
        if (next == NULL)
            die("wolfSSL_get1_session");
        wolfSSL_SESSION_free(client->session);
        client->session = next;
    }
    if (ok)
        wolfSSL_shutdown(ssl);
    wolfSSL_free(ssl);
    close(fd);
    return ok;
}

static void run_tcp(const struct options *options, char **files, double seconds)
{
    int port;
    int listener = listen_any(&port);
    pid_t client_pid = getpid();
    pid_t server_pid = fork();
    if (server_pid < 0)
        die("fork");
    if (server_pid == 0) {
        /* Ends with the client, however the client ends. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != client_pid)
            _exit(1);
        serve(make_ctx(true, options->resume, files[0], files[1], files[2]), listener);
        _exit(0);
    }
    close(listener);
    struct client client = {
        .ctx = make_ctx(false, options->resume, files[0], files[3], files[4]),
        .port = port,
        .resume = options->resume,
    };
    /* Warm-up, and the first session to resume. */
    if (!tcp_connection(&client))
        die("first TCP handshake failed");
    client.resumed = 0;
    long count = 0;
    double start = now_seconds();
    while (now_seconds() - start < seconds) {
        if (!tcp_connection(&client))
            die("TCP handshake failed");
        count++;
    }
    double elapsed = now_seconds() - start;
    kill(server_pid, SIGTERM);
    waitpid(server_pid, NULL, 0);
    wolfSSL_SESSION_free(client.session);
    wolfSSL_CTX_free(client.ctx);
    printf("{\"mode\": \"tcp%s\", \"handshakes\": %ld, \"resumed\": %ld, \"seconds\": %.3f, "
           "\"per_second\": %.1f}\n",
           options->resume ? "-resume" : "", count, client.resumed, elapsed,
           (double)count / elapsed);
    if (options->resume && client.resumed * 10 < count * 9) {
        fprintf(stderr, "wolf_bare: only %ld of %ld connections resumed their session\n",
                client.resumed, count);
        exit(1);
    }
}

static void run_socketpair(char **files, double seconds)
{
    WOLFSSL_CTX *server_ctx = make_ctx(true, false, files[0], files[1], files[2]);
    WOLFSSL_CTX *client_ctx = make_ctx(false, false, files[0], files[3], files[4]);
    if (!socketpair_connection(client_ctx, server_ctx))
        die("handshake failed");
    long count = 0;
    double start = now_seconds();
    while (now_seconds() - start < seconds) {
        if (!socketpair_connection(client_ctx, server_ctx))
            die("handshake failed");
        count++;
    }
    double elapsed = now_seconds() - start;
    printf("{\"mode\": \"socketpair\", \"handshakes\": %ld, \"resumed\": 0, \"seconds\": %.3f, "
           "\"per_second\": %.1f}\n",
           count, elapsed, (double)count / elapsed);
    wolfSSL_CTX_free(client_ctx);
    wolfSSL_CTX_free(server_ctx);
}

int main(int argc, char **argv)
{
    struct options options = {false, false};
    bool usage = false;
    int first = 1;
    for (; first < argc && strncmp(argv[first], "--", 2) == 0; first++) {
        if (strcmp(argv[first], "--tcp") == 0)
            options.tcp = true;
        else if (strcmp(argv[first], "--resume") == 0)
            options.resume = true;
        else if (strcmp(argv[first], "--classical") == 0)
            classical = true;
        else
            usage = true;
    }
    if (usage || argc - first != 6 || (options.resume && !options.tcp)) {
        fprintf(stderr, "usage: wolf_bare [--tcp [--resume]] [--classical] CA_PEM SERVER_CERT "
                        "SERVER_KEY CLIENT_CERT CLIENT_KEY SECONDS\n");
        return 2;
    }
    /* A close_notify to a peer that has already closed must not end the process. */
    signal(SIGPIPE, SIG_IGN);
    if (wolfSSL_Init() != WOLFSSL_SUCCESS)
        die("wolfSSL_Init");
    double seconds = atof(argv[first + 5]);
    if (options.tcp)
        run_tcp(&options, argv + first, seconds);
    else
        run_socketpair(argv + first, seconds);
    wolfSSL_Cleanup();
    return 0;
}
