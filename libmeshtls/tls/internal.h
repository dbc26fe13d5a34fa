/*
 * What the files of a TLS session share, private to tls/: the context and session structures,
 * and the steps each file gives the others. It exposes wolfSSL types, which nothing outside tls/
 * may see; the rest of the library uses tls.h.
 *
 *   context.c     wolfSSL contexts built from credentials, and their lifetime
 *   session.c     a session's lifetime, the handshake, reads, writes, close_notify
 *   record.c      record I/O: wolfSSL's I/O callbacks, the read-ahead buffer, what the socket
 *                 has not taken yet of close_notify
 *   held_ticket.c a server's NewSessionTicket, held to leave with its first bytes
 *   verify.c      the peer's certificate chain: X.509-SVID rules, trust domain, authorization
 *   claim.c       resumption, the session's side: who a resumed handshake's peer is, and for
 *                 how long (the tables themselves are resumption.c's)
 *   failure.c     a failure's errno and the reason a log line shows
 *   handover.c     a session's whole state exported for another process, and imported there
 *   record_crypto.c AES-GCM of records on VAES/AVX-512 (libipsec-mb), through wolfSSL's crypto
 *                 callbacks, where the CPU has it
 */
#ifndef MT_TLS_INTERNAL_H
#define MT_TLS_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "../util/text.h"
#include "credentials.h"
#include "resumption.h"
#include "tls.h"

struct mt_tls_context {
    atomic_uint references;
    struct mt_credentials *credentials;
    WOLFSSL_CTX *client;
    /* Made by the first server session (mt_tls_context_ctx); NULL until then. */
    _Atomic(WOLFSSL_CTX *) server;
    struct mt_tls_resumption *resumption; /* NULL: every handshake is a full one */
    enum mt_post_quantum post_quantum;    /* which key-exchange groups (context.c) */
};

/* The wolfSSL context of role, made when a context's first server session asks for it. */
MT_RESULT mt_tls_context_ctx(struct mt_tls_context *context, enum mt_tls_role role,
                             WOLFSSL_CTX **ctx);

/*
 * What a ticket says about the peer: the ticket a server opened last in this handshake, or the
 * session a client offered. Nothing in it is trusted until wolfSSL reports that the handshake
 * resumed (claim.c): a server opens every ticket a ClientHello offers before it checks each
 * one's age and cipher suite (and, in 5.9.2, the SNI and ALPN it was issued for), and a ticket
 * that fails those checks is skipped for a full handshake (wolfSSL 5.5.4 and 5.9.2,
 * DoPreSharedKeys) — whose client may be someone else entirely, who
 * copied the ticket from another client's ClientHello, where it travels in clear.
 * wolfSSL stops at the first ticket it accepts, so the last one opened is the one resumed.
 */
struct mt_tls_claim {
    char *peer_id; /* NULL: no claim */
    long long expires_ms;
    unsigned char name[WOLFSSL_TICKET_NAME_SZ]; /* a server's: the opened ticket's slot */
};

/* The longest failure reason kept for the log line, NUL included. */
#define MT_TLS_REASON_CAPACITY 512

/* A failure's reason and the buffer it is written in, allocated together at the first failure. */
struct mt_tls_reason {
    struct mt_text text;
    char buffer[MT_TLS_REASON_CAPACITY];
};

struct mt_tls_session {
    WOLFSSL *ssl;
    unsigned char *ahead;
    size_t ahead_start;
    size_t ahead_end;
    struct mt_tls_context *context;
    mt_tls_peer_filter peer_filter;
    void *peer_filter_argument;
    struct mt_tls_reason *reason; /* NULL while all is well */
    char *peer_id; /* proven: by verify.c, or by the ticket a handshake resumed with */
    /* The key-exchange group of a handshake made in another process (handover.c), else NULL. */
    char *key_exchange;
    /* What the socket has not taken yet of close_notify (see record.c). */
    unsigned char *unsent_alert;
    /* A server's NewSessionTicket, held to leave with the first bytes sent after it. */
    unsigned char *held_ticket;
    /* Resumption: how long what the handshake proved is trusted (resumption.h). */
    long long trusted_until_ms;
    struct mt_tls_claim claim;
    uint64_t offered_ticket; /* a client's offered ticket, hashed: not a new one */
    unsigned char destination[MT_TLS_DESTINATION_MAX]; /* a client's: where sessions are kept */
    uint8_t destination_length;
    bool verified;    /* the peer's certificate passed verify.c in this handshake */
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
    bool close_notify_queued; /* wolfSSL_shutdown returned: what it made is sent or kept */
    bool sent_own_bytes;      /* see mt_tls_sent_own_bytes */
    bool saw_first_byte;
    bool first_byte_not_tls;
    bool transport_eof;
    uint16_t unsent_alert_length;
    uint16_t held_ticket_length;

    /*
     * Which system calls carry the records, and the kernel transfers a caller makes with the lock
     * released (record.c, tls.h's mt_tls_transport). Grouped here: nothing else reads them.
     */
    enum mt_tls_transport transport; /* set by the caller before each call into the session */
    bool sigpipe_chosen;             /* send_flags come from the application's own send */
    bool incoming_busy;              /* ahead is lent to a reader (mt_tls_incoming_take) */
    bool incoming_eof;               /* that reader met EOF: every receive reports it */
    int incoming_errno;              /* that reader's error, for the next receive (0: none) */
    bool outgoing_busy;              /* a writer holds the bytes it took (mt_tls_outgoing_take) */
    unsigned char *outgoing;         /* DEFERRED: records accepted, not yet taken by a writer */
    size_t outgoing_length;
    /* Plaintext decrypted in another process and handed over with the session (handover.c). */
    unsigned char *carried;
    size_t carried_length;
};

/* ---- extensions.c ---- */

/* Frees what the finished handshake's extensions hold that nothing reads again (see there). */
void mt_tls_forget_handshake_extensions(struct mt_tls_session *session);

/* ---- record.c ---- */

/* wolfSSL's I/O callbacks (wolfSSL_CTX_SetIORecv / SetIOSend); user is the session. */
int mt_tls_record_receive(WOLFSSL *ssl, char *buffer, int size, void *user);
int mt_tls_record_send(WOLFSSL *ssl, char *buffer, int size, void *user);

/*
 * Sends now with the session's transport, retried at once when interrupted; after what earlier
 * DEFERRED calls left unsent (EAGAIN while some of it remains). DEFERRED: keeps the bytes for
 * the caller's writer and takes them all.
 */
ssize_t mt_tls_record_send_now(struct mt_tls_session *session, const void *buffer, size_t length);

/* A send that failed with errno, in the I/O callback's terms (WOLFSSL_CBIO_ERR_*). */
int mt_tls_record_send_failure(struct mt_tls_session *session);

/*
 * The read-ahead buffer of an imported session, holding the length bytes its exporter had read
 * ahead; false when there is no memory for it or length exceeds its capacity.
 */
bool mt_tls_record_restore_ahead(struct mt_tls_session *session, const unsigned char *bytes,
                                 size_t length);

/* At a point where the application will probably wait: frees the read-ahead buffer if empty. */
void mt_tls_record_release_idle_buffer(struct mt_tls_session *session);

/* Sends what the socket did not take of close_notify. */
enum mt_tls_status mt_tls_record_send_unsent_alert(struct mt_tls_session *session);

/* ---- held_ticket.c ---- */

/* A server's ticket, written by wolfSSL after the handshake: kept instead of sent. */
int mt_tls_held_ticket_hold(struct mt_tls_session *session, const char *buffer, int size);

/* The held ticket, then buffer, in one send; returns what was sent of buffer, as the callback. */
int mt_tls_held_ticket_send_before(struct mt_tls_session *session, const char *buffer, int size);

void mt_tls_held_ticket_drop(struct mt_tls_session *session);

/* ---- verify.c ---- */

/* wolfSSL's verify callback: the store's userCtx is the session. */
int mt_tls_verify_peer(int preverified, WOLFSSL_X509_STORE_CTX *store);

/* ---- claim.c ---- */

/* Sets up tickets (server) or kept sessions (client) on a context being built. */
MT_RESULT mt_tls_claim_configure(WOLFSSL_CTX *ctx, enum mt_tls_role role,
                                 struct mt_tls_context *context);

/*
 * How long a full handshake that verified the peer's leaf may be resumed: the earliest of now plus
 * the configured lifetime, the peer's notAfter and ours (mt_tls_resumption_now_ms clock). 0: never.
 */
long long mt_tls_claim_trusted_until(const struct mt_tls_session *session,
                                     const unsigned char *leaf, size_t length);

/* A client, before its first handshake step: offers the session kept for its destination. */
void mt_tls_claim_offer(struct mt_tls_session *session);

/* After the handshake: whether the peer was proven, now or by the handshake this one resumed. */
bool mt_tls_claim_finish_handshake(struct mt_tls_session *session);

/* A client after a full handshake: keeps the server's ticket once it has arrived. */
void mt_tls_claim_keep_ticket(struct mt_tls_session *session);

void mt_tls_claim_clear(struct mt_tls_claim *claim);

/* ---- handover.c ---- */

/* Sets up what export and import need on a context being built. */
void mt_tls_handover_configure(WOLFSSL_CTX *ctx);

/* Copies (and unless peek, consumes) up to length bytes of the carried plaintext. */
size_t mt_tls_handover_take(struct mt_tls_session *session, void *buffer, size_t length, bool peek);

/* Wipes and frees the carried plaintext. */
void mt_tls_handover_free(struct mt_tls_session *session);

/* ---- failure.c ---- */

/* Turns a wolfSSL failure into a status, choosing the errno and the reason the logs will show. */
enum mt_tls_status mt_tls_failure_classify(struct mt_tls_session *session, int ret);

/*
 * Explains the failure, unless it is explained already: the first reason is the root cause, not
 * what followed from it. Out of memory, the log line falls back to "TLS failure".
 */
__attribute__((format(printf, 2, 3))) void mt_tls_failure_explain(struct mt_tls_session *session,
                                                                  const char *format, ...);

/* Replaces the reason, whatever it was: a refusal decided on the peer's identity. */
__attribute__((format(printf, 2, 3))) void mt_tls_failure_replace(struct mt_tls_session *session,
                                                                  const char *format, ...);

bool mt_tls_failure_is_explained(const struct mt_tls_session *session);

void mt_tls_failure_free(struct mt_tls_session *session);

/* ---- record_crypto.c ---- */
/* The device id a context sets for the VAES record path, or INVALID_DEVID where it is absent. */
int mt_tls_record_crypto_device(void);
/* For tests: records of length bytes and more take the VAES path (default 512; 0: all). */
void mt_tls_record_crypto_set_min_length(size_t length);

#endif
