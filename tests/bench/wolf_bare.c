/*
 * The ceiling for the handshake benchmark: the same mutual TLS 1.3 handshake libmeshtls performs
 * (same wolfSSL build, suites, key-share groups, ALPN, verify callback reading the leaf, no
 * tickets), with client and server in one process over a socketpair, then one 64-byte round trip
 * and close_notify, in a loop. Nothing else runs, so its rate is what wolfSSL alone achieves.
 *
 *   wolf_bare CA_PEM SERVER_CERT SERVER_KEY CLIENT_CERT CLIENT_KEY SECONDS
 *
 * Prints {"handshakes": N, "seconds": S, "per_second": R} on stdout.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

static const char suites[] =
    "TLS13-AES128-GCM-SHA256:TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES256-GCM-SHA384";
static const char alpn[] = "meshtls/1";

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

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

static WOLFSSL_CTX *make_ctx(bool server, const char *ca, const char *cert, const char *key)
{
    WOLFSSL_CTX *ctx =
        wolfSSL_CTX_new(server ? wolfTLSv1_3_server_method() : wolfTLSv1_3_client_method());
    if (ctx == NULL)
        die("wolfSSL_CTX_new");
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify);
    if (wolfSSL_CTX_set_cipher_list(ctx, suites) != WOLFSSL_SUCCESS)
        die("cipher list");
    int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1};
    const char *first_group = getenv("WOLF_BARE_GROUP");
    if (first_group != NULL && strcmp(first_group, "P-256") == 0) {
        groups[0] = WOLFSSL_ECC_SECP256R1;
        groups[1] = WOLFSSL_ECC_X25519;
    }
    if (wolfSSL_CTX_set_groups(ctx, groups, 2) != WOLFSSL_SUCCESS)
        die("groups");
    if (server && wolfSSL_CTX_no_ticket_TLSv13(ctx) != 0)
        die("no tickets");
#ifndef NO_SESSION_CACHE
    wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
#endif
    if (wolfSSL_CTX_use_certificate_chain_file(ctx, cert) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_PrivateKey_file(ctx, key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_load_verify_locations(ctx, ca, NULL) != WOLFSSL_SUCCESS)
        die("loading certificates");
    return ctx;
}

static bool wants_io(WOLFSSL *ssl, int ret)
{
    int error = wolfSSL_get_error(ssl, ret);
    return error == WOLFSSL_ERROR_WANT_READ || error == WOLFSSL_ERROR_WANT_WRITE;
}

static bool one_connection(WOLFSSL_CTX *client_ctx, WOLFSSL_CTX *server_ctx)
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
    char request[64], reply[64];
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

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: wolf_bare CA_PEM SERVER_CERT SERVER_KEY CLIENT_CERT CLIENT_KEY "
                        "SECONDS\n");
        return 2;
    }
    if (wolfSSL_Init() != WOLFSSL_SUCCESS)
        die("wolfSSL_Init");
    WOLFSSL_CTX *server_ctx = make_ctx(true, argv[1], argv[2], argv[3]);
    WOLFSSL_CTX *client_ctx = make_ctx(false, argv[1], argv[4], argv[5]);
    double seconds = atof(argv[6]);
    if (!one_connection(client_ctx, server_ctx))
        die("handshake failed");
    long count = 0;
    double start = now_seconds();
    while (now_seconds() - start < seconds) {
        if (!one_connection(client_ctx, server_ctx))
            die("handshake failed");
        count++;
    }
    double elapsed = now_seconds() - start;
    printf("{\"handshakes\": %ld, \"seconds\": %.3f, \"per_second\": %.1f}\n", count, elapsed,
           (double)count / elapsed);
    wolfSSL_CTX_free(client_ctx);
    wolfSSL_CTX_free(server_ctx);
    wolfSSL_Cleanup();
    return 0;
}
