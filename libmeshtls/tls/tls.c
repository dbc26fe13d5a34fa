/*
 * TLS 1.3 mutual authentication with wolfSSL, for one process's intercepted sockets.
 *
 * Owns the wolfSSL contexts and sessions. It must never call libc's socket functions (in an
 * intercepted process those are our hooks): record I/O uses the raw system calls of util/sys.h
 * with MSG_DONTWAIT, so a session never blocks and the caller decides about waiting.
 *
 * Verification: wolfSSL checks the chain against the bundle and validity dates; the verify
 * callback then applies the X.509-SVID rules to the peer's leaf (depth 0) and requires the peer's
 * trust domain to be ours. Debian's wolfSSL is built with WOLFSSL_ALWAYS_VERIFY_CB, so the
 * callback sees every certificate, not only the failing ones.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "../identity/spiffe.h"
#include "../util/sys.h"
#include "tls.h"
#include "x509.h"

/* The mesh's ALPN id: marks a connection as ours for servers that must tell mesh from app TLS. */
static const char mesh_alpn[] = "meshtls/1";

static const char tls13_suites[] =
    "TLS13-AES128-GCM-SHA256:TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES256-GCM-SHA384";

struct mt_tls_context {
    atomic_uint references;
    struct mt_identity *identity;
    WOLFSSL_CTX *client;
    WOLFSSL_CTX *server;
};

/*
 * Ciphertext read ahead of what wolfSSL asks for. wolfSSL reads a record as its 5-byte header,
 * then its body: two recv calls per record. One recv into this buffer fetches one or several
 * whole records (a TLS 1.3 record is at most 2^14 + 256 bytes of body, RFC 8446 §5.2). The buffer
 * exists only while bytes are flowing: it is freed whenever it runs empty at a point where the
 * application would wait, so idle connections do not carry it.
 */
#define READ_AHEAD_CAPACITY (5 + 16384 + 256)

struct mt_tls_session {
    WOLFSSL *ssl;
    unsigned char *ahead;
    size_t ahead_start;
    size_t ahead_end;
    bool ahead_filled; /* the last recv filled the buffer: the kernel may hold more */
    struct mt_tls_context *context;
    int fd;
    int send_flags;
    bool handshake_done;
    bool shutdown_sent;
    bool saw_first_byte;
    bool first_byte_not_tls;
    bool transport_eof;
    int transport_errno;
    int error_number;
    mt_tls_peer_filter peer_filter;
    void *peer_filter_argument;
    char reason[512];
    char peer_id[MT_SPIFFE_ID_MAX + 1];
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_init_status = WOLFSSL_FAILURE;

static void global_init(void)
{
    global_init_status = wolfSSL_Init();
}

MT_RESULT mt_tls_global_init(void)
{
    pthread_once(&global_once, global_init);
    MT_ENSURE(global_init_status == WOLFSSL_SUCCESS, MT_ERR_CRYPTO);
    return MT_OK_RESULT;
}

/* Keeps the first reason only: the root cause, not what followed from it. */
__attribute__((format(printf, 2, 3))) static void set_reason(struct mt_tls_session *session,
                                                             const char *format, ...)
{
    if (session->reason[0] != '\0')
        return;
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(session->reason, sizeof(session->reason), format, arguments);
    va_end(arguments);
}

/* ---- record I/O: raw system calls, never the hooks ---------------------------------------- */

/* A transport failure or EOF, in the I/O callback's terms. */
static int receive_failure(struct mt_tls_session *session, ssize_t n)
{
    if (n == 0) {
        session->transport_eof = true;
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    }
    /* EINTR is reported as "try again" so wolfSSL does not loop inside; the caller retries. */
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    session->transport_errno = errno;
    return errno == ECONNRESET ? WOLFSSL_CBIO_ERR_CONN_RST : WOLFSSL_CBIO_ERR_GENERAL;
}

static int io_receive(WOLFSSL *ssl, char *buffer, int size, void *user)
{
    (void)ssl;
    struct mt_tls_session *session = user;
    if (session->ahead_start == session->ahead_end) {
        if (session->ahead == NULL)
            session->ahead = malloc(READ_AHEAD_CAPACITY);
        if (session->ahead == NULL) {
            /* Without the buffer, read what wolfSSL asked for directly. */
            ssize_t n = mt_sys_recv(session->fd, buffer, (size_t)size, MSG_DONTWAIT);
            session->ahead_filled = false;
            return n > 0 ? (int)n : receive_failure(session, n);
        }
        ssize_t n = mt_sys_recv(session->fd, session->ahead, READ_AHEAD_CAPACITY, MSG_DONTWAIT);
        session->ahead_filled = n == READ_AHEAD_CAPACITY;
        if (n <= 0)
            return receive_failure(session, n);
        /* Every TLS stream starts with a handshake record (content type 22, RFC 8446 §5.1). */
        if (!session->saw_first_byte) {
            session->saw_first_byte = true;
            session->first_byte_not_tls = session->ahead[0] != 22;
        }
        session->ahead_start = 0;
        session->ahead_end = (size_t)n;
    }
    size_t available = session->ahead_end - session->ahead_start;
    size_t count = available < (size_t)size ? available : (size_t)size;
    memcpy(buffer, session->ahead + session->ahead_start, count);
    session->ahead_start += count;
    return (int)count;
}

/* True when the read-ahead buffer holds at least one whole record. */
static bool has_whole_record(const struct mt_tls_session *session)
{
    size_t available = session->ahead_end - session->ahead_start;
    if (available < 5)
        return false;
    const unsigned char *header = session->ahead + session->ahead_start;
    return available >= 5 + (((size_t)header[3] << 8) | header[4]);
}

/* At a point where the application will wait: an empty read-ahead buffer is not kept. */
static void release_idle_buffer(struct mt_tls_session *session)
{
    if (session->ahead != NULL && session->ahead_start == session->ahead_end) {
        free(session->ahead);
        session->ahead = NULL;
        session->ahead_start = session->ahead_end = 0;
    }
}

static int io_send(WOLFSSL *ssl, char *buffer, int size, void *user)
{
    (void)ssl;
    struct mt_tls_session *session = user;
    ssize_t n = mt_sys_send(session->fd, buffer, (size_t)size, MSG_DONTWAIT | session->send_flags);
    if (n >= 0)
        return (int)n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return WOLFSSL_CBIO_ERR_WANT_WRITE;
    session->transport_errno = errno;
    if (errno == EPIPE || errno == ECONNRESET)
        return WOLFSSL_CBIO_ERR_CONN_RST;
    return WOLFSSL_CBIO_ERR_GENERAL;
}

/* ---- verification --------------------------------------------------------------------------- */

/*
 * wolfSSL reports chain errors as its own ASN_* codes, or, in builds with the OpenSSL
 * compatibility layer (Debian's), as X509_V_ERR_* codes: accept both.
 */
static const char *chain_error_phrase(int error)
{
    switch (error) {
    case ASN_NO_SIGNER_E:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        return "certificate not issued by a trusted anchor (foreign CA?)";
    case ASN_AFTER_DATE_E:
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return "certificate expired";
    case ASN_BEFORE_DATE_E:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return "certificate not yet valid";
    case ASN_SIG_CONFIRM_E:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        return "certificate signature invalid";
    default:
        return "certificate chain rejected";
    }
}

static int verify_peer(int preverified, WOLFSSL_X509_STORE_CTX *store)
{
    struct mt_tls_session *session = store->userCtx;
    if (session == NULL)
        return 0;
    if (!preverified) {
        set_reason(session, "peer %s (error %d)", chain_error_phrase(store->error), store->error);
        return 0;
    }
    if (wolfSSL_X509_STORE_CTX_get_error_depth(store) != 0)
        return 1;

    WOLFSSL_X509 *leaf = wolfSSL_X509_STORE_CTX_get_current_cert(store);
    int length = 0;
    const unsigned char *der = leaf != NULL ? wolfSSL_X509_get_der(leaf, &length) : NULL;
    if (der == NULL || length <= 0) {
        set_reason(session, "peer certificate unreadable");
        return 0;
    }
    const char *why = "not an X.509-SVID";
    char id[MT_SPIFFE_ID_MAX + 1];
    if (!mt_result_is_ok(mt_x509_svid_check(der, (size_t)length, id, sizeof(id), &why))) {
        set_reason(session, "peer certificate is not a valid X.509-SVID: %s", why);
        return 0;
    }
    const char *trust_domain = session->context->identity->trust_domain;
    if (!mt_spiffe_id_is_in_trust_domain(id, trust_domain)) {
        snprintf(session->reason, sizeof(session->reason),
                 "peer identity %.80s is not in trust domain %.80s", id, trust_domain);
        return 0;
    }
    if (session->peer_filter != NULL &&
        !session->peer_filter(session->peer_filter_argument, id, session->reason,
                              sizeof(session->reason)))
        return 0;
    memcpy(session->peer_id, id, strlen(id) + 1);
    return 1;
}

/* ---- contexts ------------------------------------------------------------------------------- */

static MT_RESULT load_credentials(WOLFSSL_CTX *ctx, const struct mt_identity *identity)
{
    /* wolfSSL takes a chain only as PEM; the identity keeps DER, so convert each certificate. */
    size_t capacity = identity->chain_length * MT_X509_CERT_PEM_MAX;
    char *chain = malloc(capacity);
    MT_ENSURE(chain != NULL, MT_ERR_NO_MEMORY);
    size_t used = 0;
    mt_result result = MT_OK_RESULT;
    for (size_t i = 0; i < identity->chain_length && mt_result_is_ok(result); i++) {
        size_t length = 0;
        result = mt_x509_cert_der_to_pem(identity->chain[i].data, identity->chain[i].length,
                                         chain + used, capacity - used, &length);
        used += length;
    }
    if (mt_result_is_ok(result) &&
        wolfSSL_CTX_use_certificate_chain_buffer(ctx, (const unsigned char *)chain, (long)used) !=
            WOLFSSL_SUCCESS)
        result = mt_result_of(MT_ERR_CERT_PARSE);
    free(chain);
    MT_GUARD(result);

    MT_ENSURE(wolfSSL_CTX_use_PrivateKey_buffer(ctx, identity->key.data, (long)identity->key.length,
                                                WOLFSSL_FILETYPE_ASN1) == WOLFSSL_SUCCESS,
              MT_ERR_CERT_PARSE);
    for (size_t i = 0; i < identity->anchor_count; i++)
        MT_ENSURE(wolfSSL_CTX_load_verify_buffer(ctx, identity->anchors[i].data,
                                                 (long)identity->anchors[i].length,
                                                 WOLFSSL_FILETYPE_ASN1) == WOLFSSL_SUCCESS,
                  MT_ERR_CERT_PARSE);
    return MT_OK_RESULT;
}

static MT_RESULT make_ctx(const struct mt_identity *identity, enum mt_tls_role role,
                          WOLFSSL_CTX **out)
{
    WOLFSSL_METHOD *method =
        role == MT_TLS_CLIENT ? wolfTLSv1_3_client_method() : wolfTLSv1_3_server_method();
    WOLFSSL_CTX *ctx = method != NULL ? wolfSSL_CTX_new(method) : NULL;
    MT_ENSURE(ctx != NULL, MT_ERR_NO_MEMORY);
    *out = ctx;

    wolfSSL_CTX_SetIORecv(ctx, io_receive);
    wolfSSL_CTX_SetIOSend(ctx, io_send);
    /* One send per handshake flight: message by message, Nagle holds the second small segment
     * until the peer's delayed ACK (40 ms on Linux) and every handshake stalls. */
    MT_ENSURE(wolfSSL_CTX_set_group_messages(ctx) == WOLFSSL_SUCCESS, MT_ERR_CRYPTO);
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                           verify_peer);
    /* TLS 1.3 suites only: wolfSSL's default list would also offer TLS 1.2 ones. */
    MT_ENSURE(wolfSSL_CTX_set_cipher_list(ctx, tls13_suites) == WOLFSSL_SUCCESS, MT_ERR_CRYPTO);
#if defined(WOLFSSL_SP_X86_64_ASM)
    /* With SP assembly a P-256 key share is the cheaper one (1 915 against 1 776 handshakes/s). */
    int groups[] = {WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_X25519};
#else
    /* Without assembly X25519 costs half of a P-256 key share. */
    int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1};
#endif
    MT_ENSURE(wolfSSL_CTX_set_groups(ctx, groups, 2) == WOLFSSL_SUCCESS, MT_ERR_CRYPTO);
    /* No resumption yet: a ticket would only cost a record and heap on every connection. */
    if (role == MT_TLS_SERVER)
        MT_ENSURE(wolfSSL_CTX_no_ticket_TLSv13(ctx) == 0, MT_ERR_CRYPTO);
    wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
    return load_credentials(ctx, identity);
}

MT_RESULT mt_tls_context_new(struct mt_identity *identity, struct mt_tls_context **out)
{
    MT_ENSURE_REF(identity);
    MT_ENSURE_REF(out);
    MT_GUARD(mt_tls_global_init());
    struct mt_tls_context *context = calloc(1, sizeof(*context));
    MT_ENSURE(context != NULL, MT_ERR_NO_MEMORY);
    atomic_init(&context->references, 1);
    context->identity = mt_identity_acquire(identity);
    mt_result result = make_ctx(identity, MT_TLS_CLIENT, &context->client);
    if (mt_result_is_ok(result))
        result = make_ctx(identity, MT_TLS_SERVER, &context->server);
    if (!mt_result_is_ok(result)) {
        mt_tls_context_release(context);
        context = NULL;
    }
    *out = context;
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
    wolfSSL_CTX_free(context->client);
    wolfSSL_CTX_free(context->server);
    mt_identity_release(context->identity);
    free(context);
}

const struct mt_identity *mt_tls_context_identity(const struct mt_tls_context *context)
{
    return context->identity;
}

/* ---- sessions ------------------------------------------------------------------------------- */

MT_RESULT mt_tls_session_new(struct mt_tls_context *context, enum mt_tls_role role, int fd,
                             struct mt_tls_session **out)
{
    MT_ENSURE_REF(context);
    MT_ENSURE_REF(out);
    struct mt_tls_session *session = calloc(1, sizeof(*session));
    MT_ENSURE(session != NULL, MT_ERR_NO_MEMORY);
    session->fd = fd;
    session->send_flags = MSG_NOSIGNAL;
    session->context = mt_tls_context_acquire(context);
    session->ssl = wolfSSL_new(role == MT_TLS_CLIENT ? context->client : context->server);
    mt_result result = MT_OK_RESULT;
    if (session->ssl == NULL) {
        result = mt_result_of(MT_ERR_NO_MEMORY);
        goto out;
    }
    wolfSSL_SetIOReadCtx(session->ssl, session);
    wolfSSL_SetIOWriteCtx(session->ssl, session);
    wolfSSL_SetCertCbCtx(session->ssl, session);
    if (role == MT_TLS_CLIENT &&
        wolfSSL_UseALPN(session->ssl, (char *)mesh_alpn, sizeof(mesh_alpn) - 1,
                        WOLFSSL_ALPN_CONTINUE_ON_MISMATCH) != WOLFSSL_SUCCESS)
        result = mt_result_of(MT_ERR_CRYPTO);
out:
    if (!mt_result_is_ok(result)) {
        mt_tls_session_free(session);
        session = NULL;
    }
    *out = session;
    return result;
}

void mt_tls_session_set_peer_filter(struct mt_tls_session *session, mt_tls_peer_filter filter,
                                    void *argument)
{
    session->peer_filter = filter;
    session->peer_filter_argument = argument;
}

const char *mt_tls_own_id(const struct mt_tls_session *session)
{
    return session->context->identity->spiffe_id;
}

void mt_tls_session_set_fd(struct mt_tls_session *session, int fd)
{
    session->fd = fd;
}

void mt_tls_session_free(struct mt_tls_session *session)
{
    if (session == NULL)
        return;
    free(session->ahead);
    wolfSSL_free(session->ssl);
    mt_tls_context_release(session->context);
    free(session);
}

/* Turns a wolfSSL failure into a status, choosing the errno and the phrase the logs will show. */
static enum mt_tls_status classify(struct mt_tls_session *session, int ret)
{
    int error = wolfSSL_get_error(session->ssl, ret);
    switch (error) {
    case WOLFSSL_ERROR_WANT_READ:
        return MT_TLS_WANT_READ;
    case WOLFSSL_ERROR_WANT_WRITE:
        return MT_TLS_WANT_WRITE;
    case WOLFSSL_ERROR_ZERO_RETURN:
        return MT_TLS_CLOSED;
    default:
        break;
    }
    if (session->handshake_done && session->transport_eof && session->transport_errno == 0)
        return MT_TLS_CLOSED;

    session->error_number = ECONNRESET;
    if (session->transport_errno != 0) {
        session->error_number = session->transport_errno;
        set_reason(session, "%s", strerror(session->transport_errno));
    } else if (session->first_byte_not_tls) {
        set_reason(session, "peer did not speak TLS");
    } else if (session->transport_eof) {
        set_reason(session, "peer closed the connection %s",
                   session->handshake_done ? "abruptly" : "during the handshake");
    }
    WOLFSSL_ALERT_HISTORY alerts;
    if (session->reason[0] == '\0' &&
        wolfSSL_get_alert_history(session->ssl, &alerts) == WOLFSSL_SUCCESS &&
        alerts.last_rx.code > 0) {
        char phrase[64];
        snprintf(phrase, sizeof(phrase), "%d (%s)", alerts.last_rx.code,
                 wolfSSL_alert_desc_string_long(alerts.last_rx.code));
        set_reason(session, "peer sent TLS alert %s (it rejected our certificate or policy)",
                   phrase);
    }
    if (session->reason[0] == '\0') {
        char text[WOLFSSL_MAX_ERROR_SZ];
        wolfSSL_ERR_error_string_n((unsigned long)error, text, sizeof(text));
        set_reason(session, "%s", text);
    }
    return MT_TLS_ERROR;
}

enum mt_tls_status mt_tls_handshake(struct mt_tls_session *session)
{
    if (session->handshake_done)
        return MT_TLS_OK;
    int ret = wolfSSL_is_server(session->ssl) ? wolfSSL_accept(session->ssl)
                                              : wolfSSL_connect(session->ssl);
    if (ret == WOLFSSL_SUCCESS) {
        session->handshake_done = true;
        return MT_TLS_OK;
    }
    enum mt_tls_status status = classify(session, ret);
    /* The first byte already proves it (a TLS stream starts with 22): no need to wait for the
     * rest of a record header, or for the handshake timeout, to refuse a plaintext peer. */
    if (status == MT_TLS_WANT_READ && session->first_byte_not_tls) {
        session->error_number = ECONNRESET;
        set_reason(session, "peer did not speak TLS");
        return MT_TLS_ERROR;
    }
    return status;
}

enum mt_tls_status mt_tls_read(struct mt_tls_session *session, void *buffer, size_t length,
                               size_t *count, bool peek)
{
    *count = 0;
    int size = length > 0x40000000 ? 0x40000000 : (int)length;
    int ret =
        peek ? wolfSSL_peek(session->ssl, buffer, size) : wolfSSL_read(session->ssl, buffer, size);
    if (ret > 0) {
        *count = (size_t)ret;
        return MT_TLS_OK;
    }
    enum mt_tls_status status = classify(session, ret);
    if (status == MT_TLS_WANT_READ)
        release_idle_buffer(session);
    return status;
}

enum mt_tls_status mt_tls_write(struct mt_tls_session *session, const void *buffer, size_t length)
{
    if (length > MT_TLS_RECORD_MAX)
        length = MT_TLS_RECORD_MAX;
    int ret = wolfSSL_write(session->ssl, buffer, (int)length);
    if (ret > 0)
        return MT_TLS_OK;
    return classify(session, ret);
}

enum mt_tls_status mt_tls_shutdown(struct mt_tls_session *session)
{
    if (!session->handshake_done)
        return MT_TLS_OK;
    int ret = wolfSSL_shutdown(session->ssl);
    session->shutdown_sent = true;
    if (ret == WOLFSSL_SUCCESS || ret == WOLFSSL_SHUTDOWN_NOT_DONE)
        return MT_TLS_OK;
    return classify(session, ret);
}

bool mt_tls_input_ready(struct mt_tls_session *session)
{
    return mt_tls_pending(session) > 0 || has_whole_record(session);
}

bool mt_tls_may_have_more(struct mt_tls_session *session)
{
    return mt_tls_input_ready(session) || session->ahead_filled;
}

size_t mt_tls_pending(struct mt_tls_session *session)
{
    int pending = wolfSSL_pending(session->ssl);
    return pending > 0 ? (size_t)pending : 0;
}

void mt_tls_set_sigpipe(struct mt_tls_session *session, bool raise_sigpipe)
{
    session->send_flags = raise_sigpipe ? 0 : MSG_NOSIGNAL;
}

const char *mt_tls_peer_id(const struct mt_tls_session *session)
{
    return session->peer_id;
}

const char *mt_tls_cipher(struct mt_tls_session *session)
{
    const char *name = wolfSSL_get_cipher_name(session->ssl);
    return name != NULL ? name : "?";
}

const char *mt_tls_version(struct mt_tls_session *session)
{
    const char *name = wolfSSL_get_version(session->ssl);
    return name != NULL ? name : "?";
}

int mt_tls_error_number(const struct mt_tls_session *session)
{
    return session->error_number != 0 ? session->error_number : ECONNRESET;
}

const char *mt_tls_error_reason(const struct mt_tls_session *session)
{
    return session->reason[0] != '\0' ? session->reason : "TLS failure";
}
