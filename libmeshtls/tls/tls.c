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
 *
 * Memory per idle connection is kept small: the callback reads the peer's leaf from the raw
 * certificate buffers (no OpenSSL-compatibility X509 object, so the bundled wolfSSL is built
 * without KEEP_PEER_CERT) and keeps only the SPIFFE ID; the failure reason and the read-ahead
 * buffer exist only while they are needed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "../util/spiffe.h"
#include "../util/secret.h"
#include "../util/sys.h"
#include "resumption.h"
#include "tls.h"
#include "x509.h"

/* The mesh's ALPN id: marks a connection as ours for servers that must tell mesh from app TLS. */
static const char mesh_alpn[] = MT_TLS_MESH_ALPN;

static const char tls13_suites[] =
    "TLS13-AES128-GCM-SHA256:TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES256-GCM-SHA384";

struct mt_tls_context {
    atomic_uint references;
    struct mt_credentials *credentials;
    WOLFSSL_CTX *client;
    WOLFSSL_CTX *server;
    struct mt_tls_resumption *resumption; /* NULL: every handshake is a full one */
};

/*
 * Ciphertext read ahead of what wolfSSL asks for. wolfSSL reads a record as its 5-byte header,
 * then its body: two recv calls per record. One recv into this buffer fetches one or several
 * whole records (a TLS 1.3 record is at most 2^14 + 256 bytes of body, RFC 8446 §5.2). The buffer
 * exists only while bytes are flowing: it is freed whenever it runs empty at a point where the
 * application would wait, so idle connections do not carry it.
 */
#define READ_AHEAD_CAPACITY                                                                        \
    (MT_TLS_RECORD_HEADER_SIZE + MT_TLS_RECORD_MAX + MT_TLS_RECORD_EXPANSION_MAX)

/* The longest failure reason kept for the log line. */
#define REASON_CAPACITY 512

/*
 * What a ticket says about the peer: the ticket a server opened last in this handshake, or the
 * session a client offered. Nothing in it is trusted until wolfSSL reports that the handshake
 * resumed (adopt_claim): a server opens every ticket a ClientHello offers before it checks each
 * one's age and cipher suite, and a ticket that fails those checks is skipped for a full
 * handshake (wolfSSL 5.5.4, DoPreSharedKeys) — whose client may be someone else entirely, who
 * copied the ticket from another client's ClientHello, where it travels in clear.
 * wolfSSL stops at the first ticket it accepts, so the last one opened is the one resumed.
 */
struct ticket_claim {
    char *peer_id; /* NULL: no claim */
    long long expires_ms;
    unsigned char name[WOLFSSL_TICKET_NAME_SZ]; /* a server's: the opened ticket's slot */
};

struct mt_tls_session {
    WOLFSSL *ssl;
    unsigned char *ahead;
    size_t ahead_start;
    size_t ahead_end;
    struct mt_tls_context *context;
    mt_tls_peer_filter peer_filter;
    void *peer_filter_argument;
    char *reason;  /* allocated at the first failure: NULL while all is well */
    char *peer_id; /* proven: by verify_peer, or by the ticket a handshake resumed with */
    /* What the socket has not taken yet of close_notify (see keep_after_shutdown). */
    unsigned char *unsent_alert;
    /* A server's NewSessionTicket, held to leave with the first bytes sent after it. */
    unsigned char *held_ticket;
    /* Resumption: how long what the handshake proved is trusted (resumption.h). */
    long long trusted_until_ms;
    struct ticket_claim claim;
    uint64_t offered_ticket; /* a client's offered ticket, hashed: not a new one */
    unsigned char destination[MT_TLS_DESTINATION_MAX]; /* a client's: where sessions are kept */
    uint8_t destination_length;
    bool verified;    /* the peer's certificate passed verify_peer in this handshake */
    bool offered;     /* a client: a kept session was offered (it may resume) */
    bool want_ticket; /* a client: keep the server's next ticket */
    bool resumed;
    bool started; /* mt_tls_handshake was called */
    int fd;
    int send_flags;
    int transport_errno;
    int error_number;
    bool ahead_filled; /* the last recv filled the buffer: the kernel may hold more */
    bool handshake_done;
    bool shutdown_sent;
    bool saw_first_byte;
    bool first_byte_not_tls;
    bool transport_eof;
    uint16_t unsent_alert_length;
    uint16_t held_ticket_length;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_init_status = WOLFSSL_FAILURE;

static void global_init(void)
{
    global_init_status = wolfSSL_Init();
}

void mt_tls_after_fork_child(void)
{
    mt_tls_resumption_after_fork_child();
}

MT_RESULT mt_tls_global_init(void)
{
    pthread_once(&global_once, global_init);
    MT_ENSURE(global_init_status == WOLFSSL_SUCCESS, MT_ERR_CRYPTO);
    return MT_OK_RESULT;
}

/* Replaces the reason. Out of memory, the log line falls back to "TLS failure". */
static void store_reason(struct mt_tls_session *session, const char *text)
{
    if (session->reason == NULL)
        session->reason = malloc(REASON_CAPACITY);
    if (session->reason != NULL)
        snprintf(session->reason, REASON_CAPACITY, "%s", text);
}

/* Keeps the first reason only: the root cause, not what followed from it. */
__attribute__((format(printf, 2, 3))) static void set_reason(struct mt_tls_session *session,
                                                             const char *format, ...)
{
    if (session->reason != NULL)
        return;
    char text[REASON_CAPACITY];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(text, sizeof(text), format, arguments);
    va_end(arguments);
    store_reason(session, text);
}

/* ---- record I/O: raw system calls, never the hooks ---------------------------------------- */

/*
 * recv and send without waiting, retried at once when interrupted. EINTR must not become
 * WANT_READ/WANT_WRITE: the caller would then wait for readiness (or tell a non-blocking
 * application EAGAIN) while the bytes are already there, and an edge-triggered waiter would never
 * be woken for them. Found by the fault soak (tests/integration/test_soak_faults.py).
 */
static ssize_t receive_now(int fd, void *buffer, size_t length)
{
    ssize_t n;
    do
        n = mt_sys_recv(fd, buffer, length, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n;
}

static ssize_t send_now(int fd, const void *buffer, size_t length, int flags)
{
    ssize_t n;
    do
        n = mt_sys_send(fd, buffer, length, MSG_DONTWAIT | flags);
    while (n < 0 && errno == EINTR);
    return n;
}

/*
 * A transport failure or EOF, in the I/O callback's terms. wanted is what wolfSSL asked for, which
 * is exactly what it lacks: a whole header at a record boundary; part of one, or the rest of a
 * body, inside a record (a body's last 5 bytes look alike, and pass). EOF inside a record is
 * truncation, not the end (RFC 8446 §6.1): the session fails as reset instead of closing cleanly.
 */
static int receive_failure(struct mt_tls_session *session, ssize_t n, int wanted)
{
    if (n == 0) {
        session->transport_eof = true;
        if (session->handshake_done && wanted != MT_TLS_RECORD_HEADER_SIZE) {
            session->transport_errno = ECONNRESET;
            set_reason(session, "peer closed the connection inside a TLS record (truncated)");
        }
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
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
            ssize_t n = receive_now(session->fd, buffer, (size_t)size);
            session->ahead_filled = false;
            return n > 0 ? (int)n : receive_failure(session, n, size);
        }
        ssize_t n = receive_now(session->fd, session->ahead, READ_AHEAD_CAPACITY);
        session->ahead_filled = n == READ_AHEAD_CAPACITY;
        if (n <= 0)
            return receive_failure(session, n, size);
        /*
         * Every TLS stream starts with a handshake record (content type 22, RFC 8446 §5.1), or
         * with an alert (21) from a server that refuses our ClientHello, e.g. one that only
         * speaks TLS 1.2 answering protocol_version.
         */
        if (!session->saw_first_byte) {
            session->saw_first_byte = true;
            session->first_byte_not_tls = session->ahead[0] != MT_TLS_CONTENT_HANDSHAKE &&
                                          session->ahead[0] != MT_TLS_CONTENT_ALERT;
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
    if (available < MT_TLS_RECORD_HEADER_SIZE)
        return false;
    const unsigned char *header = session->ahead + session->ahead_start;
    return available >= MT_TLS_RECORD_HEADER_SIZE + (((size_t)header[3] << 8) | header[4]);
}

/*
 * At a point where the application will probably wait: an empty read-ahead buffer is not kept.
 * Called when a read finds nothing (WANT_READ), when a read returns data after a receive that did
 * not fill the buffer (the socket was drained: a program that reads exactly the reply it expects
 * never sees WANT_READ), and after the handshake. A 16 KiB malloc/free pair costs far less than
 * the recv it saves.
 */
static void release_idle_buffer(struct mt_tls_session *session)
{
    if (session->ahead != NULL && session->ahead_start == session->ahead_end) {
        free(session->ahead);
        session->ahead = NULL;
        session->ahead_start = session->ahead_end = 0;
    }
}

/* A send that failed with errno, in the I/O callback's terms. */
static int send_failure(struct mt_tls_session *session)
{
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return WOLFSSL_CBIO_ERR_WANT_WRITE;
    session->transport_errno = errno;
    if (errno == EPIPE || errno == ECONNRESET)
        return WOLFSSL_CBIO_ERR_CONN_RST;
    return WOLFSSL_CBIO_ERR_GENERAL;
}

/*
 * Once close_notify is on its way, io_send takes all it is given: what the socket refuses now is
 * kept in unsent_alert, behind anything kept before, and mt_tls_shutdown sends it. wolfSSL 5.5.4
 * cannot finish an alert itself: after WANT_WRITE, wolfSSL_shutdown returns an error without
 * marking close_notify sent and leaves the rest of the record in its output buffer, which only a
 * second close_notify would push out. The kernel's shutdown or close, which follows at once, then
 * cut the record short: the peer saw a truncated record and answered bad_record_mac. Found by the
 * fault soak (tests/integration/test_soak_faults.py, kinds=eagain+short).
 */
static int keep_after_shutdown(struct mt_tls_session *session, const char *buffer, int size)
{
    size_t sent = 0;
    if (session->unsent_alert_length == 0) {
        ssize_t n = send_now(session->fd, buffer, (size_t)size, session->send_flags);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return send_failure(session);
        sent = n > 0 ? (size_t)n : 0;
    }
    size_t rest = (size_t)size - sent;
    if (rest == 0)
        return size;
    /* Only alerts follow close_notify: 24 bytes each, a few at most. */
    size_t length = session->unsent_alert_length + rest;
    unsigned char *kept = length <= UINT16_MAX ? realloc(session->unsent_alert, length) : NULL;
    if (kept == NULL) {
        errno = ENOMEM;
        return send_failure(session);
    }
    memcpy(kept + session->unsent_alert_length, buffer + sent, rest);
    session->unsent_alert = kept;
    session->unsent_alert_length = (uint16_t)length;
    return size;
}

/*
 * A server's NewSessionTicket (what wolfSSL sends once the client's Finished is in) is held and
 * leaves in one send with the next record, the application's first bytes. Sent alone it would
 * wake the client's poller with nothing to read: programs such as wrk count the EAGAIN that
 * follows readiness as a read error (test_real_nginx). Sent alone it would also be the small
 * segment in flight that makes Nagle hold a server-speaks-first greeting until the client's
 * delayed ACK (test_handshake_flights). A server that never writes never sends its ticket:
 * its clients do full handshakes.
 */
static int hold_ticket(struct mt_tls_session *session, const char *buffer, int size)
{
    size_t length = session->held_ticket_length + (size_t)size;
    unsigned char *held = length <= UINT16_MAX ? realloc(session->held_ticket, length) : NULL;
    if (held == NULL && session->held_ticket_length > 0) {
        errno = ENOMEM; /* what is held must go first */
        return send_failure(session);
    }
    if (held == NULL) {
        ssize_t n = send_now(session->fd, buffer, (size_t)size, session->send_flags);
        return n >= 0 ? (int)n : send_failure(session);
    }
    memcpy(held + session->held_ticket_length, buffer, (size_t)size);
    session->held_ticket = held;
    session->held_ticket_length = (uint16_t)length;
    return size;
}

static void drop_ticket(struct mt_tls_session *session)
{
    free(session->held_ticket);
    session->held_ticket = NULL;
    session->held_ticket_length = 0;
}

/* The held ticket, then buffer, in one send; returns what was sent of buffer, as io_send. */
static int send_after_ticket(struct mt_tls_session *session, const char *buffer, int size)
{
    size_t ticket = session->held_ticket_length;
    unsigned char *both = malloc(ticket + (size_t)size);
    if (both == NULL) {
        errno = ENOMEM;
        return send_failure(session);
    }
    memcpy(both, session->held_ticket, ticket);
    memcpy(both + ticket, buffer, (size_t)size);
    ssize_t n = send_now(session->fd, both, ticket + (size_t)size, session->send_flags);
    free(both);
    if (n < 0)
        return send_failure(session);
    if ((size_t)n < ticket) {
        /* Part of the ticket went: keep the rest in front of the record. */
        session->held_ticket_length = (uint16_t)(ticket - (size_t)n);
        memmove(session->held_ticket, session->held_ticket + n, session->held_ticket_length);
        return WOLFSSL_CBIO_ERR_WANT_WRITE;
    }
    drop_ticket(session);
    return (size_t)n == ticket ? WOLFSSL_CBIO_ERR_WANT_WRITE : (int)((size_t)n - ticket);
}

static int io_send(WOLFSSL *ssl, char *buffer, int size, void *user)
{
    struct mt_tls_session *session = user;
    if (session->shutdown_sent)
        return keep_after_shutdown(session, buffer, size);
    if (!session->handshake_done && wolfSSL_is_init_finished(ssl) && wolfSSL_is_server(ssl))
        return hold_ticket(session, buffer, size);
    if (session->held_ticket_length > 0)
        return send_after_ticket(session, buffer, size);
    ssize_t n = send_now(session->fd, buffer, (size_t)size, session->send_flags);
    return n >= 0 ? (int)n : send_failure(session);
}

/* ---- verification --------------------------------------------------------------------------- */

/*
 * wolfSSL reports chain errors as its own ASN_* codes, or, in builds with the OpenSSL
 * compatibility layer (Debian's), possibly as X509_V_ERR_* codes: accept both. ssl.h declares
 * the X509_V_ERR_* enum only in those builds (the bundled one has no compatibility layer).
 */
#if defined(OPENSSL_EXTRA) || defined(OPENSSL_EXTRA_X509_SMALL) || defined(HAVE_WEBSERVER)
#define X509_V_ERR_CASE(code) case code:
#else
#define X509_V_ERR_CASE(code)
#endif

static const char *chain_error_phrase(int error)
{
    switch (error) {
    case ASN_NO_SIGNER_E:
        X509_V_ERR_CASE(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT)
        X509_V_ERR_CASE(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY)
        X509_V_ERR_CASE(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT)
        X509_V_ERR_CASE(X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN)
        return "certificate not issued by a trusted anchor (foreign CA?)";
    case ASN_AFTER_DATE_E:
        X509_V_ERR_CASE(X509_V_ERR_CERT_HAS_EXPIRED)
        /* What wolfSSL 5.5.4's GetX509Error maps ASN_AFTER_DATE_E to (Debian's build). */
        X509_V_ERR_CASE(X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD)
        return "certificate expired";
    case ASN_BEFORE_DATE_E:
        X509_V_ERR_CASE(X509_V_ERR_CERT_NOT_YET_VALID)
        X509_V_ERR_CASE(X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD)
        return "certificate not yet valid";
    case ASN_SIG_CONFIRM_E:
        X509_V_ERR_CASE(X509_V_ERR_CERT_SIGNATURE_FAILURE)
        return "certificate signature invalid";
    default:
        return "certificate chain rejected";
    }
}

static long long trusted_until(const struct mt_tls_session *session, const unsigned char *leaf,
                               size_t length);

/*
 * The store's fields are read directly (error, error_depth, certs): the X509_STORE_CTX accessors
 * and the X509 object exist only with the OpenSSL compatibility layer. certs[0] is the peer's
 * leaf as sent, in DER, in every build; it is checked here and only its SPIFFE ID is kept.
 */
static int verify_peer(int preverified, WOLFSSL_X509_STORE_CTX *store)
{
    struct mt_tls_session *session = store->userCtx;
    if (session == NULL)
        return 0;
    if (!preverified) {
        set_reason(session, "peer %s (error %d)", chain_error_phrase(store->error), store->error);
        return 0;
    }
    if (store->error_depth != 0)
        return 1;

    if (store->certs == NULL || store->totalCerts < 1 || store->certs[0].buffer == NULL ||
        store->certs[0].length == 0) {
        set_reason(session, "peer certificate unreadable");
        return 0;
    }
    const char *why = "not an X.509-SVID";
    char id[MT_SPIFFE_ID_MAX + 1];
    if (!mt_result_is_ok(mt_x509_svid_check(store->certs[0].buffer, store->certs[0].length, id,
                                            sizeof(id), &why))) {
        set_reason(session, "peer certificate is not a valid X.509-SVID: %s", why);
        return 0;
    }
    /* X.509-SVID §3.2: what the peer sends after its leaf are signing certificates, every one. */
    for (int i = 1; i < store->totalCerts; i++) {
        if (store->certs[i].buffer == NULL ||
            !mt_result_is_ok(
                mt_x509_signing_check(store->certs[i].buffer, store->certs[i].length, &why))) {
            set_reason(session,
                       "peer chain certificate %d is not an X.509-SVID signing "
                       "certificate: %s",
                       i, why);
            return 0;
        }
    }
    char text[REASON_CAPACITY];
    const char *trust_domain = session->context->credentials->trust_domain;
    if (!mt_spiffe_id_is_in_trust_domain(id, trust_domain)) {
        snprintf(text, sizeof(text), "peer identity %.80s is not in trust domain %.80s", id,
                 trust_domain);
        store_reason(session, text);
        return 0;
    }
    text[0] = '\0';
    if (session->peer_filter != NULL &&
        !session->peer_filter(session->peer_filter_argument, id, MT_TLS_PEER_DECIDE, text,
                              sizeof(text))) {
        store_reason(session, text);
        return 0;
    }
    free(session->peer_id);
    session->peer_id = strdup(id);
    if (session->peer_id == NULL) {
        set_reason(session, "out of memory for the peer's identity");
        return 0;
    }
    session->verified = true;
    session->trusted_until_ms =
        trusted_until(session, store->certs[0].buffer, store->certs[0].length);
    return 1;
}

/* ---- resumption ----------------------------------------------------------------------------- */

/*
 * How long a full handshake that verified the peer's leaf may be resumed (resumption.h): the
 * earliest of now plus the configured lifetime, the peer's notAfter and ours. 0: never.
 */
static long long trusted_until(const struct mt_tls_session *session, const unsigned char *leaf,
                               size_t length)
{
    const struct mt_tls_resumption *resumption = session->context->resumption;
    time_t not_before = 0;
    time_t not_after = 0;
    if (resumption == NULL ||
        !mt_result_is_ok(mt_x509_cert_validity(leaf, length, &not_before, &not_after)))
        return 0;
    time_t now = time(NULL);
    time_t until = now + (time_t)mt_tls_resumption_lifetime(resumption);
    if (not_after < until)
        until = not_after;
    if (session->context->credentials->not_after < until)
        until = session->context->credentials->not_after;
    return until > now ? mt_tls_resumption_now_ms() + (long long)(until - now) * 1000 : 0;
}

/* Whether the session's policy still admits a peer ID that an earlier handshake proved. */
static bool admits(void *argument, const char *peer_id)
{
    struct mt_tls_session *session = argument;
    char reason[REASON_CAPACITY];
    if (!mt_spiffe_id_is_in_trust_domain(peer_id, session->context->credentials->trust_domain))
        return false;
    return session->peer_filter == NULL ||
           session->peer_filter(session->peer_filter_argument, peer_id, MT_TLS_PEER_PREVIEW, reason,
                                sizeof(reason));
}

static void claim_clear(struct ticket_claim *claim)
{
    free(claim->peer_id);
    memset(claim, 0, sizeof(*claim));
}

static bool claim_set(struct ticket_claim *claim, const char *peer_id, long long expires_ms,
                      const unsigned char *name)
{
    claim_clear(claim);
    claim->peer_id = strdup(peer_id);
    if (claim->peer_id == NULL)
        return false;
    claim->expires_ms = expires_ms;
    if (name != NULL)
        memcpy(claim->name, name, sizeof(claim->name));
    return true;
}

/*
 * A handshake that wolfSSL says resumed: the peer is who the claim names, and is trusted as long
 * as the full handshake behind the ticket allowed; the policy decides on it as on a verified
 * certificate. False when there is no claim to adopt, when the peer also presented a
 * certificate (a resumed TLS 1.3 handshake has none), or when the policy refuses it.
 */
static bool adopt_claim(struct mt_tls_session *session)
{
    if (session->claim.peer_id == NULL || session->verified)
        return false;
    char text[REASON_CAPACITY] = "";
    if (session->peer_filter != NULL &&
        !session->peer_filter(session->peer_filter_argument, session->claim.peer_id,
                              MT_TLS_PEER_DECIDE, text, sizeof(text))) {
        store_reason(session, text);
        return false;
    }
    free(session->peer_id);
    session->peer_id = session->claim.peer_id;
    session->trusted_until_ms = session->claim.expires_ms;
    session->claim.peer_id = NULL;
    return true;
}

/*
 * wolfSSL's ticket callback, on the server. Sealing binds the client this handshake proved: its
 * certificate's ID after a full handshake, or the claim of the ticket it resumed with, with the
 * expiry that ticket's full handshake set (the new ticket renews that one's slot). Opening only
 * records the ticket's claim (see struct ticket_claim); it refuses, and so leads to a full
 * handshake with certificates, when the ticket is not ours or has expired, or when this
 * connection's policy no longer admits the ID it binds: a refusal is then decided, and logged,
 * by the full handshake.
 */
static int ticket_callback(WOLFSSL *ssl, unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                           unsigned char iv[WOLFSSL_TICKET_IV_SZ],
                           unsigned char mac[WOLFSSL_TICKET_MAC_SZ], int seal,
                           unsigned char *ticket, int length, int *out_length, void *user)
{
    struct mt_tls_context *context = user;
    struct mt_tls_session *session = wolfSSL_GetIOReadCtx(ssl);
    if (context == NULL || context->resumption == NULL || session == NULL || length <= 0)
        return WOLFSSL_TICKET_RET_REJECT;
    if (seal) {
        /* wolfSSL seals after the client's Finished: whether it resumed is known. */
        bool resumed = wolfSSL_session_reused(ssl) != 0;
        const char *bound = resumed             ? session->claim.peer_id
                            : session->verified ? session->peer_id
                                                : NULL;
        long long expires_ms = resumed ? session->claim.expires_ms : session->trusted_until_ms;
        /* A failure here fails the handshake (wolfSSL 5.5.4): memory, randomness, or a client
         * that nothing proved (finish_handshake would refuse it). */
        if (bound == NULL || !mt_tls_ticket_seal(context->resumption, bound, expires_ms,
                                                 resumed ? session->claim.name : NULL, name, iv,
                                                 mac, ticket, (size_t)length))
            return WOLFSSL_TICKET_RET_FATAL;
        *out_length = length;
        return WOLFSSL_TICKET_RET_OK;
    }
    /* A claim belongs to the last ticket opened, whatever became of the ones before it. */
    claim_clear(&session->claim);
    char peer_id[MT_SPIFFE_ID_MAX + 1];
    long long expires_ms = 0;
    if (!mt_tls_ticket_open(context->resumption, name, iv, mac, ticket, (size_t)length, peer_id,
                            sizeof(peer_id), &expires_ms) ||
        !admits(session, peer_id) || !claim_set(&session->claim, peer_id, expires_ms, name))
        return WOLFSSL_TICKET_RET_REJECT;
    *out_length = length;
    return WOLFSSL_TICKET_RET_OK;
}

/* FNV-1a: tells a ticket from the one offered (not a security check). */
static uint64_t ticket_hash(const unsigned char *bytes, size_t length)
{
    uint64_t hash = 0xcbf29ce484222325u;
    for (size_t i = 0; i < length; i++)
        hash = (hash ^ bytes[i]) * 0x100000001b3u;
    return hash;
}

/* The client session's current ticket, hashed; 0 without one (or one longer than we keep). */
static uint64_t current_ticket(struct mt_tls_session *session)
{
    unsigned char ticket[512];
    word32 size = sizeof(ticket);
    if (wolfSSL_get_SessionTicket(session->ssl, ticket, &size) != WOLFSSL_SUCCESS || size == 0)
        return 0;
    return ticket_hash(ticket, size);
}

/* A client: before the handshake, offers the session kept for this destination, if any. */
static void offer_session(struct mt_tls_session *session)
{
    struct mt_tls_resumption *resumption = session->context->resumption;
    if (resumption == NULL || session->destination_length == 0 || wolfSSL_is_server(session->ssl))
        return;
    char peer_id[MT_SPIFFE_ID_MAX + 1];
    long long expires_ms = 0;
    if (!mt_tls_client_offer(resumption, session->destination, session->destination_length,
                             session->ssl, admits, session, peer_id, sizeof(peer_id), &expires_ms))
        return;
    /* Out of memory, the session is offered with no claim: resuming it is then refused. */
    claim_set(&session->claim, peer_id, expires_ms, NULL);
    session->offered = true;
    session->offered_ticket = current_ticket(session);
}

/* A client after a full handshake: keeps the server's ticket once it has arrived. */
static void keep_ticket(struct mt_tls_session *session)
{
    if (!session->want_ticket)
        return;
    uint64_t ticket = current_ticket(session);
    if (ticket == 0 || ticket == session->offered_ticket)
        return;
    session->want_ticket = false;
    if (session->trusted_until_ms > mt_tls_resumption_now_ms())
        mt_tls_client_keep(session->context->resumption, session->destination,
                           session->destination_length, session->ssl, session->peer_id,
                           session->trusted_until_ms);
}

/*
 * After the handshake: who the peer is was proven now (verify_peer) or by the full handshake a
 * resumed one continues (the claim of the ticket or kept session it resumed with). Anything else
 * is refused. A claim the handshake did not resume with is dropped unread.
 */
static bool finish_handshake(struct mt_tls_session *session)
{
    session->resumed = wolfSSL_session_reused(session->ssl) != 0;
    bool client = !wolfSSL_is_server(session->ssl);
    bool proven = session->resumed ? adopt_claim(session) : session->verified;
    claim_clear(&session->claim);
    if (!proven) {
        if (session->reason == NULL)
            set_reason(session, "peer was not authenticated");
        return false;
    }
    if (client && !session->resumed && session->context->resumption != NULL &&
        session->destination_length > 0) {
        if (session->offered) /* the server refused the session: it will send a new ticket */
            mt_tls_client_forget(session->context->resumption, session->destination,
                                 session->destination_length);
        session->want_ticket = true;
    }
    return true;
}

/* ---- contexts ------------------------------------------------------------------------------- */

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
     * keys in 5.5.4). The ecc_key it decodes to sign each CertificateVerify is freed with
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

static int ticket_callback(WOLFSSL *ssl, unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                           unsigned char iv[WOLFSSL_TICKET_IV_SZ],
                           unsigned char mac[WOLFSSL_TICKET_MAC_SZ], int seal,
                           unsigned char *ticket, int length, int *out_length, void *user);

/* Tickets and sessions: see resumption.h. Without resumption the server sends no ticket. */
static MT_RESULT set_resumption(WOLFSSL_CTX *ctx, enum mt_tls_role role,
                                struct mt_tls_context *context)
{
    if (role == MT_TLS_SERVER) {
        /* Stateless: the server keeps no session (a ticket carries it); nor does a client
         * without resumption. A client with it must not turn the cache off: wolfSSL_set_session
         * then refuses every session. */
        wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
        if (context->resumption == NULL)
            MT_ENSURE(wolfSSL_CTX_no_ticket_TLSv13(ctx) == 0, MT_ERR_CRYPTO);
    } else if (context->resumption == NULL) {
        wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
    } else {
        /* Kept sessions live in resumption.c's table only, not in wolfSSL's global cache. */
        wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_NO_INTERNAL_STORE);
    }
    if (context->resumption == NULL || role == MT_TLS_CLIENT)
        return MT_OK_RESULT;
    int lifetime = (int)mt_tls_resumption_lifetime(context->resumption);
    MT_ENSURE(wolfSSL_CTX_set_TicketEncCb(ctx, ticket_callback) == WOLFSSL_SUCCESS &&
                  wolfSSL_CTX_set_TicketEncCtx(ctx, context) == WOLFSSL_SUCCESS &&
                  wolfSSL_CTX_set_TicketHint(ctx, lifetime) == WOLFSSL_SUCCESS &&
                  /* Builds with WOLFSSL_ERROR_CODE_OPENSSL (Debian's) return the old value. */
                  wolfSSL_CTX_set_timeout(ctx, (unsigned)lifetime) >= 0,
              MT_ERR_CRYPTO);
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
    MT_GUARD(set_resumption(ctx, role, context));
    return load_credentials(ctx, credentials);
}

MT_RESULT mt_tls_context_new(struct mt_credentials *credentials, unsigned resumption_s,
                             struct mt_tls_context **out)
{
    MT_ENSURE_REF(credentials);
    MT_ENSURE_REF(out);
    MT_GUARD(mt_tls_global_init());
    struct mt_tls_context *context = calloc(1, sizeof(*context));
    MT_ENSURE(context != NULL, MT_ERR_NO_MEMORY);
    atomic_init(&context->references, 1);
    context->credentials = mt_credentials_acquire(credentials);
    mt_result result = MT_OK_RESULT;
    if (resumption_s > 0)
        result = mt_tls_resumption_new(resumption_s, &context->resumption);
    if (mt_result_is_ok(result))
        result = make_ctx(context, MT_TLS_CLIENT, &context->client);
    if (mt_result_is_ok(result))
        result = make_ctx(context, MT_TLS_SERVER, &context->server);
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
    /* The last reference: each free wipes that context's copy of the key (see load_credentials);
     * the credentials' own copy is wiped when their last reference goes. */
    wolfSSL_CTX_free(context->client);
    wolfSSL_CTX_free(context->server);
    mt_tls_resumption_free(context->resumption);
    mt_credentials_release(context->credentials);
    free(context);
}

const struct mt_credentials *mt_tls_context_credentials(const struct mt_tls_context *context)
{
    return context->credentials;
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
    return session->context->credentials->spiffe_id;
}

void mt_tls_session_set_fd(struct mt_tls_session *session, int fd)
{
    session->fd = fd;
}

void mt_tls_session_set_destination(struct mt_tls_session *session,
                                    const unsigned char *destination, size_t length)
{
    if (length > sizeof(session->destination))
        length = 0;
    memcpy(session->destination, destination, length);
    session->destination_length = (uint8_t)length;
}

bool mt_tls_resumed(const struct mt_tls_session *session)
{
    return session->resumed;
}

void mt_tls_session_free(struct mt_tls_session *session)
{
    if (session == NULL)
        return;
    if (session->want_ticket)
        keep_ticket(session);
    free(session->ahead);
    free(session->unsent_alert);
    free(session->held_ticket);
    wolfSSL_free(session->ssl);
    mt_tls_context_release(session->context);
    free(session->reason);
    free(session->peer_id);
    claim_clear(&session->claim);
    free(session);
}

/*
 * The alert's name as RFC 8446 §6 spells it (wolfSSL_alert_desc_string_long exists only with the
 * OpenSSL compatibility layer).
 */
static const struct {
    int code;
    const char *name;
} alert_names[] = {
    {0, "close_notify"},
    {10, "unexpected_message"},
    {20, "bad_record_mac"},
    {22, "record_overflow"},
    {40, "handshake_failure"},
    {42, "bad_certificate"},
    {43, "unsupported_certificate"},
    {44, "certificate_revoked"},
    {45, "certificate_expired"},
    {46, "certificate_unknown"},
    {47, "illegal_parameter"},
    {48, "unknown_ca"},
    {49, "access_denied"},
    {50, "decode_error"},
    {51, "decrypt_error"},
    {70, "protocol_version"},
    {71, "insufficient_security"},
    {80, "internal_error"},
    {86, "inappropriate_fallback"},
    {90, "user_canceled"},
    {109, "missing_extension"},
    {110, "unsupported_extension"},
    {112, "unrecognized_name"},
    {113, "bad_certificate_status_response"},
    {115, "unknown_psk_identity"},
    {116, "certificate_required"},
    {120, "no_application_protocol"},
};

static const char *alert_name(int code)
{
    for (size_t i = 0; i < sizeof(alert_names) / sizeof(alert_names[0]); i++)
        if (alert_names[i].code == code)
            return alert_names[i].name;
    return "unknown alert";
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
    if (session->reason == NULL &&
        wolfSSL_get_alert_history(session->ssl, &alerts) == WOLFSSL_SUCCESS &&
        alerts.last_rx.code > 0) {
        char phrase[64];
        snprintf(phrase, sizeof(phrase), "%d (%s)", alerts.last_rx.code,
                 alert_name(alerts.last_rx.code));
        set_reason(session, "peer sent TLS alert %s (%s)", phrase,
                   alerts.last_rx.code == 70 ? "it does not speak TLS 1.3"
                                             : "it rejected our certificate or policy");
    }
    /* A ClientHello without TLS 1.3 in supported_versions (RFC 8446 §4.2.1). */
    if (session->reason == NULL && error == VERSION_ERROR)
        set_reason(session, "peer offered only TLS 1.2 or older; TLS 1.3 is required");
    if (session->reason == NULL) {
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
    if (!session->started) {
        session->started = true;
        offer_session(session);
    }
    int ret = wolfSSL_is_server(session->ssl) ? wolfSSL_accept(session->ssl)
                                              : wolfSSL_connect(session->ssl);
    if (ret == WOLFSSL_SUCCESS) {
        if (!finish_handshake(session)) {
            session->error_number = ECONNRESET;
            return MT_TLS_ERROR;
        }
        session->handshake_done = true;
        release_idle_buffer(session);
        return MT_TLS_OK;
    }
    /*
     * wolfSSL before 5.6.4 loses the WANT_WRITE of a flight the socket did not take at once:
     * connect/accept fail with no error set (wolfSSL issues #5325 and #6678, fixed by PRs #6692
     * and #7001). The flight is still buffered and the next call sends it, so wait for
     * writability; the handshake timeout bounds the wait should the cause ever be another.
     * Found by the fault soak (tests/integration/test_soak_faults.py, injected EAGAIN).
     * A send that failed outright (a reset) is lost the same way: io_send kept its errno, and
     * waiting would only turn the reset into a handshake timeout.
     */
    if (wolfSSL_get_error(session->ssl, ret) == WOLFSSL_ERROR_NONE && session->transport_errno == 0)
        return MT_TLS_WANT_WRITE;
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
        if (session->want_ticket) {
            /* A ticket comes before the first data (ours leaves with the server's first bytes):
             * none by now means none at all, and later reads do not look again. */
            keep_ticket(session);
            session->want_ticket = false;
        }
        if (!session->ahead_filled)
            release_idle_buffer(session);
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

/* Sends what io_send kept of close_notify. */
static enum mt_tls_status send_unsent_alert(struct mt_tls_session *session)
{
    size_t sent = 0;
    while (sent < session->unsent_alert_length) {
        ssize_t n = send_now(session->fd, session->unsent_alert + sent,
                             session->unsent_alert_length - sent, session->send_flags);
        if (n < 0)
            break;
        sent += (size_t)n;
    }
    int error = errno;
    if (sent > 0) {
        session->unsent_alert_length = (uint16_t)(session->unsent_alert_length - sent);
        memmove(session->unsent_alert, session->unsent_alert + sent, session->unsent_alert_length);
    }
    if (session->unsent_alert_length == 0) {
        free(session->unsent_alert);
        session->unsent_alert = NULL;
        return MT_TLS_OK;
    }
    if (error == EAGAIN || error == EWOULDBLOCK)
        return MT_TLS_WANT_WRITE;
    session->transport_errno = error;
    session->error_number = error;
    set_reason(session, "%s (sending close_notify)", strerror(error));
    return MT_TLS_ERROR;
}

enum mt_tls_status mt_tls_shutdown(struct mt_tls_session *session)
{
    if (!session->handshake_done)
        return MT_TLS_OK;
    if (!session->shutdown_sent) {
        drop_ticket(session);          /* ending before it wrote anything: this client gets none */
        session->shutdown_sent = true; /* io_send now keeps what the socket does not take */
        int ret = wolfSSL_shutdown(session->ssl);
        if (ret != WOLFSSL_SUCCESS && ret != WOLFSSL_SHUTDOWN_NOT_DONE) {
            /*
             * Not sent: the transport failed, or the session is over already (the peer's EOF or
             * a fatal alert), when wolfSSL sends nothing more.
             */
            enum mt_tls_status status = classify(session, ret);
            return status == MT_TLS_ERROR ? MT_TLS_ERROR : MT_TLS_CLOSED;
        }
    }
    return send_unsent_alert(session);
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
    return session->peer_id != NULL ? session->peer_id : "";
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
    return session->reason != NULL ? session->reason : "TLS failure";
}
