/*
 * Tests for what a permissive port sees of a real mesh client: the ClientHello the TLS layer
 * sends, read from the socket as core/conn.c's detection peeks it, and classified by
 * policy/detect.c. With post-quantum hybrid key shares (wolfSSL builds with ML-KEM) a ClientHello
 * is kilobytes long, several times what a classical one is: it must still be recognised as a mesh
 * client's, and the handshake behind it must complete.
 *
 * The key shares are set on the client's WOLFSSL directly: which groups a context offers is the
 * context's business (tls/context.c), and the point here is only the size of what crosses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_ca.h"

#include "policy/detect.h"
#include "tls/internal.h"
#include "tls/tls.h"

#define DAY (24 * 60 * 60)
#define ROUNDS 1000

static struct test_ca ca;

static int make_ca(void **state)
{
    (void)state;
    time_t now = time(NULL);
    return test_ca_make(&ca, "example.org", now - DAY, now + 30 * DAY) ? 0 : -1;
}

static int free_ca(void **state)
{
    (void)state;
    test_ca_free(&ca);
    return 0;
}

static struct mt_tls_context *make_context(const char *id)
{
    time_t now = time(NULL);
    struct mt_credentials *credentials = test_ca_issue(&ca, id, now - DAY, now + DAY);
    struct mt_tls_context *context = NULL;
    assert_true(
        mt_result_is_ok(mt_tls_context_new(credentials, 0, MT_POST_QUANTUM_PREFER, &context)));
    mt_credentials_release(credentials);
    return context;
}

static bool is_decided(enum mt_tls_status status)
{
    return status == MT_TLS_OK || status == MT_TLS_ERROR || status == MT_TLS_CLOSED;
}

/*
 * A client whose first flight carries a key share for each of groups (and the context's own
 * groups after them), relayed to a server through a peek as conn.c's detection makes it: the
 * detection's answer, and the flight's length in *length. The handshake then completes.
 */
static enum mt_detect_result detect_first_flight(const int *groups, int count, size_t *length)
{
    static const unsigned char destination[] = {2, 0x20, 0xfb, 127, 0, 0, 1};
    struct mt_tls_context *client_context = make_context("spiffe://example.org/client");
    struct mt_tls_context *server_context = make_context("spiffe://example.org/server");
    int client_pair[2];
    int server_pair[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, client_pair), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, server_pair), 0);
    struct mt_tls_session *client = NULL;
    struct mt_tls_session *server = NULL;
    assert_true(mt_result_is_ok(
        mt_tls_session_new(client_context, MT_TLS_CLIENT, client_pair[0], &client)));
    assert_true(mt_result_is_ok(
        mt_tls_session_new(server_context, MT_TLS_SERVER, server_pair[0], &server)));
    mt_tls_session_set_destination(client, destination, sizeof(destination));
    int all[8];
    assert_true(count + 2 <= (int)(sizeof(all) / sizeof(all[0])));
    memcpy(all, groups, (size_t)count * sizeof(int));
    all[count] = WOLFSSL_ECC_SECP256R1;
    all[count + 1] = WOLFSSL_ECC_X25519;
    assert_int_equal(wolfSSL_set_groups(client->ssl, all, count + 2), WOLFSSL_SUCCESS);
    for (int i = 0; i < count; i++)
        assert_int_equal(wolfSSL_UseKeyShare(client->ssl, (word16)groups[i]), WOLFSSL_SUCCESS);

    assert_int_equal(mt_tls_handshake(client), MT_TLS_WANT_READ);
    static unsigned char flight[2 * MT_DETECT_BYTES_MAX];
    ssize_t n = recv(client_pair[1], flight, sizeof(flight), MSG_DONTWAIT);
    assert_true(n > 0);
    *length = (size_t)n;
    /* What conn.c's detection reads: at most its window, of which the ClientHello is a prefix. */
    size_t peeked = *length < MT_DETECT_BYTES_MAX ? *length : MT_DETECT_BYTES_MAX;
    enum mt_detect_result result = mt_detect_client_hello(flight, peeked);
    assert_int_equal(send(server_pair[1], flight, *length, 0), (ssize_t)*length);

    enum mt_tls_status client_status = MT_TLS_WANT_READ;
    enum mt_tls_status server_status = MT_TLS_WANT_READ;
    unsigned char relay[4096];
    for (int round = 0; round < ROUNDS && !(is_decided(client_status) && is_decided(server_status));
         round++) {
        if (!is_decided(server_status))
            server_status = mt_tls_handshake(server);
        if (!is_decided(client_status))
            client_status = mt_tls_handshake(client);
        ssize_t moved;
        while ((moved = recv(server_pair[1], relay, sizeof(relay), MSG_DONTWAIT)) > 0)
            assert_int_equal(send(client_pair[1], relay, (size_t)moved, 0), moved);
        while ((moved = recv(client_pair[1], relay, sizeof(relay), MSG_DONTWAIT)) > 0)
            assert_int_equal(send(server_pair[1], relay, (size_t)moved, 0), moved);
    }
    if (client_status != MT_TLS_OK || server_status != MT_TLS_OK)
        print_error("client: %s; server: %s\n", mt_tls_error_reason(client),
                    mt_tls_error_reason(server));
    assert_int_equal(client_status, MT_TLS_OK);
    assert_int_equal(server_status, MT_TLS_OK);

    mt_tls_session_free(client);
    mt_tls_session_free(server);
    for (int i = 0; i < 2; i++) {
        close(client_pair[i]);
        close(server_pair[i]);
    }
    mt_tls_context_release(client_context);
    mt_tls_context_release(server_context);
    return result;
}

static void test_client_hello_classical_key_share_is_mesh(void **state)
{
    (void)state;
    size_t length = 0;
    assert_int_equal(detect_first_flight(NULL, 0, &length), MT_DETECT_TLS_MESH);
    assert_true(length < 1024);
}

#ifdef WOLFSSL_HAVE_MLKEM
/* X25519MLKEM768, SecP256r1MLKEM768 and SecP384r1MLKEM1024 shares: ~4.3 KB of ClientHello. */
static void test_client_hello_hybrid_key_shares_are_mesh(void **state)
{
    (void)state;
    static const int hybrids[] = {WOLFSSL_X25519MLKEM768, WOLFSSL_SECP256R1MLKEM768,
                                  WOLFSSL_SECP384R1MLKEM1024};
    size_t length = 0;
    assert_int_equal(detect_first_flight(hybrids, 3, &length), MT_DETECT_TLS_MESH);
    assert_true(length > 4096);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_hello_classical_key_share_is_mesh),
#ifdef WOLFSSL_HAVE_MLKEM
        cmocka_unit_test(test_client_hello_hybrid_key_shares_are_mesh),
#endif
    };
    return cmocka_run_group_tests(tests, make_ca, free_ca);
}
