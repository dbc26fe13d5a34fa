/*
 * TLS 1.3 sessions for intercepted sockets.
 *
 * A context is a pair of wolfSSL contexts (client and server) built from one workload's
 * credentials (credentials.h): its key and chain, its trust bundle, TLS 1.3 only, mutual
 * authentication mandatory, the peer's X.509-SVID checked during the handshake. Contexts are
 * reference counted so that rotation can swap in a new one while sessions opened with the old one
 * carry on.
 *
 * A session never blocks: its record I/O goes straight to the kernel (never through the hooks)
 * without waiting, or is left to the caller (mt_tls_transport), and every call reports what it
 * needs next. The caller (core/conn.c) decides
 * whether to wait, and how long. Only tls/ includes wolfSSL; internal.h lists its files.
 */
#ifndef MT_TLS_TLS_H
#define MT_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "../util/result.h"
#include "../util/text.h"
#include "../util/tls_wire.h"
#include "credentials.h"

/* A client's destination as resumption keys it: address family, port and address, in bytes. */
#define MT_TLS_DESTINATION_MAX 32

enum mt_tls_role {
    MT_TLS_CLIENT,
    MT_TLS_SERVER,
};

enum mt_tls_status {
    MT_TLS_OK,
    MT_TLS_WANT_READ,
    MT_TLS_WANT_WRITE,
    MT_TLS_CLOSED, /* the peer sent close_notify, or the transport reached EOF */
    MT_TLS_ERROR,  /* see mt_tls_error_number() and mt_tls_error_reason() */
};

struct mt_tls_context;
struct mt_tls_session;

/* In a fork child: locks another thread of the parent may have held. */
void mt_tls_after_fork_child(void);

/* Initialises wolfSSL once per process; safe to call from several threads. */
MT_RESULT mt_tls_global_init(void);

/*
 * From now on every block of wolfSSL's heap is wiped when it is freed. For a process that holds
 * a long-lived key and does little bulk crypto (the agent): call it first, before any other
 * wolfSSL call. Not for the data path: each record buffer freed would be wiped too.
 */
MT_RESULT mt_tls_wipe_freed_memory(void);

/*
 * resumption_s > 0: TLS 1.3 resumption, a full handshake trusted for at most that long
 * (resumption.h); 0: every handshake is a full one and the server sends no ticket.
 */
MT_RESULT mt_tls_context_new(struct mt_credentials *credentials, unsigned resumption_s,
                             enum mt_post_quantum post_quantum, struct mt_tls_context **context);
/* Whether this build's wolfSSL has the hybrid ML-KEM groups (post_quantum "prefer"/"require"). */
bool mt_tls_has_post_quantum(void);
/* The linked wolfSSL's version, e.g. "5.9.2". */
const char *mt_tls_library_version(void);
/*
 * Which code encrypts and decrypts AES-GCM records in this process, in words for `meshtls version`
 * and the debug log: VAES AVX-512 (record_crypto.c) or wolfSSL's own, and why.
 */
const char *mt_tls_record_crypto_describe(void);
/* How many records the VAES path has encrypted or decrypted in this process so far. */
unsigned long mt_tls_record_crypto_fast_records(void);
struct mt_tls_context *mt_tls_context_acquire(struct mt_tls_context *context);
void mt_tls_context_release(struct mt_tls_context *context);
const struct mt_credentials *mt_tls_context_credentials(const struct mt_tls_context *context);

MT_RESULT mt_tls_session_new(struct mt_tls_context *context, enum mt_tls_role role, int fd,
                             struct mt_tls_session **session);
/*
 * Authorization: called during the handshake with the peer's SPIFFE ID, proven by its certificate
 * (after the chain, the X.509-SVID rules and the trust domain passed) or by the ticket the
 * handshake resumed with: MT_TLS_PEER_DECIDE, once per handshake; returning false refuses the
 * peer, and reason then says why, for the log line. MT_TLS_PEER_PREVIEW asks the same of an ID
 * a ticket claims, before it is offered or accepted: a refusal then only means a full handshake,
 * so it is not a decision to count, and reason is NULL (nobody reads why).
 */
enum mt_tls_peer_check {
    MT_TLS_PEER_DECIDE,
    MT_TLS_PEER_PREVIEW,
};
typedef bool (*mt_tls_peer_filter)(void *argument, const char *peer_id,
                                   enum mt_tls_peer_check check, struct mt_text *reason);
void mt_tls_session_set_peer_filter(struct mt_tls_session *session, mt_tls_peer_filter filter,
                                    void *argument);

/* Our own SPIFFE ID in this session (the credentials its context was built from). */
const char *mt_tls_own_id(const struct mt_tls_session *session);

/* The socket's fd changed (the one in use was closed while a dup of it lives on). */
void mt_tls_session_set_fd(struct mt_tls_session *session, int fd);

/*
 * A client's destination (address family, port, address; at most MT_TLS_DESTINATION_MAX bytes):
 * sessions are kept and offered per destination. Without one a client never resumes.
 */
void mt_tls_session_set_destination(struct mt_tls_session *session,
                                    const unsigned char *destination, size_t length);

/* After the handshake: it resumed an earlier session (no certificates were exchanged). */
bool mt_tls_resumed(const struct mt_tls_session *session);

/* Frees without sending anything; the socket is the caller's. NULL is allowed. */
void mt_tls_session_free(struct mt_tls_session *session);

enum mt_tls_status mt_tls_handshake(struct mt_tls_session *session);
enum mt_tls_status mt_tls_read(struct mt_tls_session *session, void *buffer, size_t length,
                               size_t *count, bool peek);
/*
 * Encrypts and sends one record of length ≤ MT_TLS_RECORD_MAX. After MT_TLS_WANT_WRITE the record
 * is committed: the next call must pass the same bytes and length (wolfSSL finishes sending it).
 */
enum mt_tls_status mt_tls_write(struct mt_tls_session *session, const void *buffer, size_t length);
/*
 * Sends close_notify (once); the connection can still be read afterwards, but no longer written.
 * After MT_TLS_WANT_WRITE the socket holds part of it: call again once it is writable, until
 * MT_TLS_OK; shutting the socket down before that would cut the record short. MT_TLS_CLOSED: the
 * session had ended already (the peer's EOF, or a fatal alert) and nothing was sent.
 */
enum mt_tls_status mt_tls_shutdown(struct mt_tls_session *session);

/* Decrypted bytes buffered in the session: readable without touching the socket. */
size_t mt_tls_pending(struct mt_tls_session *session);

/* A read would return data without the kernel: decrypted bytes, or a whole record read ahead. */
bool mt_tls_input_ready(struct mt_tls_session *session);

/*
 * Another read might return more without waiting: input is ready, or the last receive filled
 * the read-ahead buffer (the kernel may hold more). When false, the socket was drained: a read
 * that stops here leaves nothing behind that an edge-triggered poller would miss.
 */
bool mt_tls_may_have_more(struct mt_tls_session *session);

/*
 * Whether a client session sent a handshake flight since the last mt_tls_forget_own_bytes: its
 * last one (Certificate, CertificateVerify, Finished) is a small segment the application's first
 * bytes would wait behind under Nagle until the server's delayed ACK (core/conn_nagle.c). A
 * server's NewSessionTicket leaves with the server's first bytes instead (held_ticket.c). A
 * KeyUpdate answered inside a read is not counted: lifting Nagle asks getsockopt and setsockopt,
 * which a server confined to read and write by a seccomp filter must not call (test_sandbox).
 */
bool mt_tls_sent_own_bytes(const struct mt_tls_session *session);
void mt_tls_forget_own_bytes(struct mt_tls_session *session);

/*
 * How the application's own call sends, so that records go in the same call: send with
 * MSG_NOSIGNAL when it asked for it (raise_sigpipe false), write(2) otherwise. Until the
 * application has sent, the session's own records (a handshake inside a read, a KeyUpdate
 * answer, close_notify) go in write(2), which cannot raise SIGPIPE for them (record.c).
 */
void mt_tls_set_sigpipe(struct mt_tls_session *session, bool raise_sigpipe);

/*
 * Which system calls carry a session's records: those the application's own call would make, so
 * that a process that a seccomp filter confines to read and write keeps working (a privilege-
 * separated server's child). The caller sets it before each call into the session.
 *
 *   DONTWAIT     the socket blocks, the call must not wait: recv and send with MSG_DONTWAIT (the
 *                application's recv/send with MSG_DONTWAIT, a wait hook that steps the session).
 *                The default.
 *   NONBLOCKING  the socket is O_NONBLOCK: read and write, which cannot block there. send with
 *                MSG_NOSIGNAL when the application's own send asked for it.
 *   DEFERRED     the socket blocks and the caller may wait: the session never touches the socket.
 *                A receive that finds no input asks for it (WANT_READ) and the caller reads into
 *                the session (mt_tls_incoming_*); records to send are kept whole for the caller
 *                to write (mt_tls_outgoing_*). Both with the caller's lock released: a blocking
 *                read or write is itself the wait, with the kernel's own SO_RCVTIMEO, SO_SNDTIMEO
 *                and EINTR, and costs no other system call.
 */
enum mt_tls_transport {
    MT_TLS_TRANSPORT_DONTWAIT,
    MT_TLS_TRANSPORT_NONBLOCKING,
    MT_TLS_TRANSPORT_DEFERRED,
};

void mt_tls_set_transport(struct mt_tls_session *session, enum mt_tls_transport transport);
enum mt_tls_transport mt_tls_transport_of(const struct mt_tls_session *session);

/* The read-ahead buffer lent to one reader, who fills it with the lock released. */
struct mt_tls_incoming {
    int fd;
    unsigned char *buffer;
    size_t capacity;
};

/* True while a reader holds the buffer: nobody else may read the socket. */
bool mt_tls_incoming_busy(const struct mt_tls_session *session);

/*
 * Lends the empty read-ahead buffer (only when the session asked for input). false: it is not
 * empty, another reader holds it, or there is no memory for it (errno ENOMEM).
 */
bool mt_tls_incoming_take(struct mt_tls_session *session, struct mt_tls_incoming *incoming);

/* One read(2) into the lent buffer, which may block; no lock needed. */
ssize_t mt_tls_incoming_read(const struct mt_tls_incoming *incoming);

/*
 * Returns the buffer with what the read returned (n, and error its errno when n < 0): bytes are
 * input, EOF and errors become the next receive's result; EAGAIN and EINTR change nothing.
 */
void mt_tls_incoming_give_back(struct mt_tls_session *session, ssize_t n, int error);

/* Records that DEFERRED calls kept for a writer, taken whole by one writer at a time. */
struct mt_tls_outgoing {
    int fd;
    bool use_send; /* the application's send asked for MSG_NOSIGNAL */
    unsigned char *bytes;
    size_t length;
};

/* True while records wait to be written, or a writer holds some. */
bool mt_tls_outgoing_pending(const struct mt_tls_session *session);

/* True while a writer holds records: nobody else may write the socket. */
bool mt_tls_outgoing_busy(const struct mt_tls_session *session);

/* Takes every record waiting; false when none waits or a writer holds some already. */
bool mt_tls_outgoing_take(struct mt_tls_session *session, struct mt_tls_outgoing *outgoing);

/* One write(2) (or send) of what is left after offset, which may block; no lock needed. */
ssize_t mt_tls_outgoing_write(const struct mt_tls_outgoing *outgoing, size_t offset);

/* Gives back what the kernel did not take (the bytes after written), ahead of newer records. */
void mt_tls_outgoing_give_back(struct mt_tls_session *session, struct mt_tls_outgoing *outgoing,
                               size_t written);

/*
 * Without waiting, with the session's transport (not DEFERRED): writes what DEFERRED calls left.
 * MT_TLS_OK once nothing is left, MT_TLS_WANT_WRITE while some is, MT_TLS_ERROR.
 */
enum mt_tls_status mt_tls_flush_outgoing(struct mt_tls_session *session);

const char *mt_tls_peer_id(const struct mt_tls_session *session); /* "" before verification */
const char *mt_tls_cipher(struct mt_tls_session *session);
/* The key-exchange group of the handshake ("X25519MLKEM768", "X25519", "SECP256R1"), or "?". */
const char *mt_tls_key_exchange(struct mt_tls_session *session);
const char *mt_tls_version(struct mt_tls_session *session);

/*
 * Handing a live session to another process: the most an export takes, wolfSSL's state and
 * libmeshtls's (tls/handover.c: keys and secrets, buffered ciphertext and plaintext, the peer's
 * identity). The buffer holds key material: wipe it once used.
 */
#define MT_TLS_EXPORT_MAX (96 * 1024)

/* Whether this build can export and import sessions (wolfSSL with session export). */
bool mt_tls_handover_is_supported(void);

/*
 * Writes session's complete state into buffer: only once the handshake is done, between records,
 * with no record of its own half sent (MT_ERR_HANDOVER_STATE otherwise). The session is left as it
 * was, and must not be used for I/O again once the export is imported elsewhere: both would use
 * the same keys and sequence numbers.
 */
MT_RESULT mt_tls_session_export(struct mt_tls_session *session, unsigned char *buffer,
                                size_t capacity, size_t *length);

/* A new session on fd, continuing the one exported into buffer, with context's credentials. */
MT_RESULT mt_tls_session_import(struct mt_tls_context *context, int fd, const unsigned char *buffer,
                                size_t length, struct mt_tls_session **session);

/* After MT_TLS_ERROR: the errno the application should see, and why, as a phrase for logs. */
int mt_tls_error_number(const struct mt_tls_session *session);
const char *mt_tls_error_reason(const struct mt_tls_session *session);

#endif
