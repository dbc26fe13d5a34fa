/*
 * TLS contexts: a pair of wolfSSL contexts (client and server) built from one workload's
 * credentials, and wolfSSL's process-wide initialisation.
 *
 * Owns what every session of a context shares: TLS 1.3 only, its cipher suites and key-share
 * groups, mutual authentication with the peer's chain checked by verify.c, record I/O through
 * record.c, resumption set up by claim.c, and wolfSSL's copy of the key and chain. Must never
 * keep a copy of the key of its own: wolfSSL's is wiped when the context goes, the credentials'
 * when their last reference does.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/secret.h"
#include "internal.h"
#include "x509.h"

static const char tls13_suites[] =
    "TLS13-AES128-GCM-SHA256:TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES256-GCM-SHA384";

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_init_status = WOLFSSL_FAILURE;
/* Serialises the making of contexts' server halves (mt_tls_context_ctx). */
static pthread_mutex_t server_ctx_lock = PTHREAD_MUTEX_INITIALIZER;

static void global_init(void)
{
    global_init_status = wolfSSL_Init();
}

/*
 * wolfSSL's heap, wiped block by block as it is freed. wolfCrypt frees some scratch copies of a
 * private key without wiping them (wc_EccKeyToDer's copy of the scalar, in Debian's 5.5.4 build):
 * in a process that holds a CA key, such a block would stay in the heap, and in a core dump,
 * until reused. The size of each block is what malloc_usable_size says it is.
 */
static void *wiping_malloc(size_t size)
{
    return malloc(size);
}

static void wiping_free(void *block)
{
    if (block == NULL)
        return;
    explicit_bzero(block, malloc_usable_size(block));
    free(block);
}

static void *wiping_realloc(void *block, size_t size)
{
    if (block == NULL)
        return malloc(size);
    size_t old_size = malloc_usable_size(block);
    void *moved = malloc(size);
    if (moved == NULL)
        return NULL;
    memcpy(moved, block, old_size < size ? old_size : size);
    wiping_free(block);
    return moved;
}

MT_RESULT mt_tls_wipe_freed_memory(void)
{
#if defined(WOLFSSL_STATIC_MEMORY) || defined(WOLFSSL_DEBUG_MEMORY)
    return mt_result_of(MT_ERR_UNSUPPORTED); /* allocators of another shape */
#else
    MT_ENSURE(wolfSSL_SetAllocators(wiping_malloc, wiping_free, wiping_realloc) == 0,
              MT_ERR_UNSUPPORTED);
    return MT_OK_RESULT;
#endif
}

void mt_tls_after_fork_child(void)
{
    pthread_mutex_init(&server_ctx_lock, NULL);
    mt_tls_resumption_after_fork_child();
}

MT_RESULT mt_tls_global_init(void)
{
    pthread_once(&global_once, global_init);
    MT_ENSURE(global_init_status == WOLFSSL_SUCCESS, MT_ERR_CRYPTO);
    return MT_OK_RESULT;
}

static MT_RESULT load_credentials(WOLFSSL_CTX *ctx, const struct mt_credentials *credentials)
{
    /* wolfSSL takes a chain only as PEM; the credentials keep DER, so convert each certificate. */
    size_t capacity = credentials->chain_length * MT_X509_CERT_PEM_MAX;
    char *chain = malloc(capacity);
    MT_ENSURE(chain != NULL, MT_ERR_NO_MEMORY);
    size_t used = 0;
    mt_result result = MT_OK_RESULT;
    for (size_t i = 0; i < credentials->chain_length && mt_result_is_ok(result); i++) {
        size_t length = 0;
        result = mt_x509_cert_der_to_pem(credentials->chain[i].data, credentials->chain[i].length,
                                         chain + used, capacity - used, &length);
        used += length;
    }
    if (mt_result_is_ok(result) &&
        wolfSSL_CTX_use_certificate_chain_buffer(ctx, (const unsigned char *)chain, (long)used) !=
            WOLFSSL_SUCCESS)
        result = mt_result_of(MT_ERR_CERT_PARSE);
    free(chain);
    MT_GUARD(result);

    /*
     * wolfSSL copies the key into a DerBuffer of type PRIVATEKEY_TYPE in its own heap, shared by
     * every session of this context (not copied per session). That copy is outside our secret
     * buffers and so inside core dumps; wolfSSL_CTX_free wipes it (FreeDer ForceZeros private
     * keys in 5.5.4 and 5.9.2). The ecc_key it decodes to sign each CertificateVerify is freed with
     * wc_ecc_free, which zeroes the scalar (but see mt_secret_wipe_stack for its stack copy).
     */
    int loaded = wolfSSL_CTX_use_PrivateKey_buffer(
        ctx, credentials->key.data, (long)credentials->key.length, WOLFSSL_FILETYPE_ASN1);
    /* wolfSSL decodes the key once to check it, leaving the scalar in a dead stack frame. */
    mt_secret_wipe_stack();
    MT_ENSURE(loaded == WOLFSSL_SUCCESS, MT_ERR_CERT_PARSE);
    for (size_t i = 0; i < credentials->anchor_count; i++)
        MT_ENSURE(wolfSSL_CTX_load_verify_buffer(ctx, credentials->anchors[i].data,
                                                 (long)credentials->anchors[i].length,
                                                 WOLFSSL_FILETYPE_ASN1) == WOLFSSL_SUCCESS,
                  MT_ERR_CERT_PARSE);
    return MT_OK_RESULT;
}

bool mt_tls_has_post_quantum(void)
{
#if defined(WOLFSSL_HAVE_MLKEM) && defined(WOLFSSL_PQC_HYBRIDS)
    return true;
#else
    return false;
#endif
}

const char *mt_tls_library_version(void)
{
    return wolfSSL_lib_version();
}

/*
 * The key-exchange groups, most preferred first. A client sends one key share, for the first
 * group, and lists the others in supported_groups; a server picks, among the shares a client
 * sent, the one it ranks highest, and asks for another (HelloRetryRequest, one more round trip)
 * only when none is acceptable. So mesh peers agree on the first group in one round trip, and a
 * classical client (OpenSSL 3.0 sends an X25519 share) is served in one round trip too.
 *
 * Costs measured on these machines (wolfSSL 5.9.2, x86-64 assembly, CPU time of both sides of one
 * full handshake with P-256 certificates): X25519 223 µs, P-256 264 µs, X25519MLKEM768 285 µs,
 * SecP256r1MLKEM768 323 µs; the hybrid share adds 1.2 KB to the ClientHello and 1.1 KB to the
 * ServerHello. Hence X25519MLKEM768 first, and X25519 before P-256.
 */
static MT_RESULT set_groups(WOLFSSL_CTX *ctx, enum mt_post_quantum post_quantum)
{
    int groups[4];
    int count = 0;
#if defined(WOLFSSL_HAVE_MLKEM) && defined(WOLFSSL_PQC_HYBRIDS)
    if (post_quantum != MT_POST_QUANTUM_OFF) {
        groups[count++] = WOLFSSL_X25519MLKEM768;
        groups[count++] = WOLFSSL_SECP256R1MLKEM768;
    }
#else
    /* Checked before a context is made (mt_tls_has_post_quantum): never silently classical. */
    MT_ENSURE(post_quantum != MT_POST_QUANTUM_REQUIRE, MT_ERR_UNSUPPORTED);
#endif
    if (post_quantum != MT_POST_QUANTUM_REQUIRE) {
        groups[count++] = WOLFSSL_ECC_X25519;
        groups[count++] = WOLFSSL_ECC_SECP256R1;
    }
    MT_ENSURE(wolfSSL_CTX_set_groups(ctx, groups, count) == WOLFSSL_SUCCESS, MT_ERR_CRYPTO);
    return MT_OK_RESULT;
}

static MT_RESULT make_ctx(struct mt_tls_context *context, enum mt_tls_role role, WOLFSSL_CTX **out)
{
    const struct mt_credentials *credentials = context->credentials;
    WOLFSSL_METHOD *method =
        role == MT_TLS_CLIENT ? wolfTLSv1_3_client_method() : wolfTLSv1_3_server_method();
    WOLFSSL_CTX *ctx = method != NULL ? wolfSSL_CTX_new(method) : NULL;
    MT_ENSURE(ctx != NULL, MT_ERR_NO_MEMORY);
    *out = ctx;

    wolfSSL_CTX_SetIORecv(ctx, mt_tls_record_receive);
    wolfSSL_CTX_SetIOSend(ctx, mt_tls_record_send);
    mt_tls_handover_configure(ctx);
    /* One send per handshake flight: message by message, Nagle holds the second small segment
     * until the peer's delayed ACK (40 ms on Linux) and every handshake stalls. */
    MT_ENSURE(wolfSSL_CTX_set_group_messages(ctx) == WOLFSSL_SUCCESS, MT_ERR_CRYPTO);
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                           mt_tls_verify_peer);
    /* TLS 1.3 suites only: wolfSSL's default list would also offer TLS 1.2 ones. */
    MT_ENSURE(wolfSSL_CTX_set_cipher_list(ctx, tls13_suites) == WOLFSSL_SUCCESS, MT_ERR_CRYPTO);
    MT_GUARD(set_groups(ctx, context->post_quantum));
    MT_GUARD(mt_tls_claim_configure(ctx, role, context));
    MT_GUARD(load_credentials(ctx, credentials));
    /* AES-GCM records on VAES where the CPU has it (record_crypto.c); every other operation, and
     * every record where it does not, runs wolfSSL's own code. */
    int device = mt_tls_record_crypto_device();
    if (device != INVALID_DEVID)
        MT_ENSURE(wolfSSL_CTX_SetDevId(ctx, device) == WOLFSSL_SUCCESS, MT_ERR_CRYPTO);
    return MT_OK_RESULT;
}

MT_RESULT mt_tls_context_new(struct mt_credentials *credentials, unsigned resumption_s,
                             enum mt_post_quantum post_quantum, struct mt_tls_context **out)
{
    MT_ENSURE_REF(credentials);
    MT_ENSURE_REF(out);
    MT_GUARD(mt_tls_global_init());
    struct mt_tls_context *context = calloc(1, sizeof(*context));
    MT_ENSURE(context != NULL, MT_ERR_NO_MEMORY);
    atomic_init(&context->references, 1);
    mt_log_debug("AES-GCM records: %s", mt_tls_record_crypto_describe());
    context->credentials = mt_credentials_acquire(credentials);
    context->post_quantum = post_quantum;
    mt_result result = MT_OK_RESULT;
    if (resumption_s > 0)
        result = mt_tls_resumption_new(resumption_s, &context->resumption);
    /*
     * The client half now: making it checks that wolfSSL takes the chain, the key and the
     * bundle, before the identity replaces a working one. The server half loads the same
     * credentials; it is made by the first server session, as most processes that start, connect
     * and exit never accept one, and it cost each of them a second load of the key and chain (and
     * a second copy of the key in wolfSSL's heap).
     */
    if (mt_result_is_ok(result))
        result = make_ctx(context, MT_TLS_CLIENT, &context->client);
    if (!mt_result_is_ok(result)) {
        mt_tls_context_release(context);
        context = NULL;
    }
    *out = context;
    return result;
}

MT_RESULT mt_tls_context_ctx(struct mt_tls_context *context, enum mt_tls_role role,
                             WOLFSSL_CTX **ctx)
{
    *ctx = NULL;
    if (role == MT_TLS_CLIENT) {
        *ctx = context->client;
        return MT_OK_RESULT;
    }
    WOLFSSL_CTX *server = atomic_load_explicit(&context->server, memory_order_acquire);
    mt_result result = MT_OK_RESULT;
    if (server == NULL) {
        pthread_mutex_lock(&server_ctx_lock);
        server = atomic_load_explicit(&context->server, memory_order_relaxed);
        if (server == NULL) {
            result = make_ctx(context, MT_TLS_SERVER, &server);
            /* The ticket key with it, so that a forked child never has to make one. */
            if (mt_result_is_ok(result) && context->resumption != NULL)
                result = mt_tls_resumption_prepare_server(context->resumption);
            if (mt_result_is_ok(result)) {
                atomic_store_explicit(&context->server, server, memory_order_release);
            } else {
                wolfSSL_CTX_free(server);
                server = NULL;
            }
        }
        pthread_mutex_unlock(&server_ctx_lock);
    }
    *ctx = server;
    return result;
}

struct mt_tls_context *mt_tls_context_acquire(struct mt_tls_context *context)
{
    if (context != NULL)
        atomic_fetch_add(&context->references, 1);
    return context;
}

void mt_tls_context_release(struct mt_tls_context *context)
{
    if (context == NULL || atomic_fetch_sub(&context->references, 1) != 1)
        return;
    /* The last reference: each free wipes that context's copy of the key (see load_credentials);
     * the credentials' own copy is wiped when their last reference goes. */
    wolfSSL_CTX_free(context->client);
    wolfSSL_CTX_free(atomic_load(&context->server));
    mt_tls_resumption_free(context->resumption);
    mt_credentials_release(context->credentials);
    free(context);
}

const struct mt_credentials *mt_tls_context_credentials(const struct mt_tls_context *context)
{
    return context->credentials;
}
