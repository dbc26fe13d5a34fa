/*
 * Record I/O: the bytes a TLS session exchanges with its socket, as wolfSSL's I/O callbacks.
 *
 * Owns the read-ahead buffer, the records kept for a caller that writes them itself, and what the
 * socket has not taken yet of close_notify. It must never call libc's socket functions (in an
 * intercepted process those are our hooks): it uses the raw system calls of util/sys.h. Nor does
 * it ever wait or retry on EAGAIN itself: wolfSSL reports WANT_READ or WANT_WRITE, and the caller
 * waits for readiness.
 *
 * Which system calls carry the records follows the application's own call (tls.h,
 * mt_tls_transport): a program confined to read and write by a seccomp filter must not see
 * libmeshtls make recvfrom, sendto, fcntl or getsockopt on its behalf. Blocking waits are the
 * caller's, made with its lock released through mt_tls_incoming_* and mt_tls_outgoing_*.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../util/sys.h"
#include "internal.h"

/*
 * Ciphertext read ahead of what wolfSSL asks for. wolfSSL reads a record as its 5-byte header,
 * then its body: two recv calls per record. One recv into this buffer fetches several whole
 * records (a TLS 1.3 record is at most 2^14 + 256 bytes of body, RFC 8446 §5.2): room for four
 * full ones, because on these (virtual) machines a system call costs about as much as decrypting
 * a record on VAES, and one recv per record held a bulk receiver well below plain TCP (iperf3
 * under the preload: 2.4-4.5 Gbit/s with one record, 4.3-5.7 with four, same window; with eight,
 * no better). The buffer exists only while bytes are flowing: it is freed whenever it runs empty
 * at a point where the application would wait, so idle connections do not carry it.
 */
#define READ_AHEAD_RECORDS 4
#define READ_AHEAD_CAPACITY                                                                        \
    (READ_AHEAD_RECORDS *                                                                          \
     (MT_TLS_RECORD_HEADER_SIZE + MT_TLS_RECORD_MAX + MT_TLS_RECORD_EXPANSION_MAX))

/*
 * Receives and sends without waiting, retried at once when interrupted. EINTR must not become
 * WANT_READ/WANT_WRITE: the caller would then wait for readiness (or tell a non-blocking
 * application EAGAIN) while the bytes are already there, and an edge-triggered waiter would never
 * be woken for them. Found by the fault soak (tests/integration/test_soak_faults.py).
 * A DEFERRED session never gets here for a receive: see mt_tls_record_receive.
 */
static ssize_t receive_now(struct mt_tls_session *session, void *buffer, size_t length)
{
    ssize_t n;
    do
        n = session->transport == MT_TLS_TRANSPORT_NONBLOCKING
                ? mt_sys_read(session->fd, buffer, length)
                : mt_sys_recv(session->fd, buffer, length, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n;
}

/*
 * The application's write for a write; its send(MSG_NOSIGNAL) for a send that asked for it. A
 * record of the session's own (the handshake inside the application's read, a KeyUpdate answer,
 * close_notify) before the application has sent anything goes in write(2) as well, with the
 * signal mask as it is: changing the mask is a system call a strict sandbox refuses, and there is
 * nothing for it to hold back. The kernel raises SIGPIPE only for a write on a socket shut for
 * writing, which a session never writes to (nothing follows close_notify, see mt_tls_record_send),
 * or on one whose error (a reset, a timeout) was already reported to an earlier call: the first
 * write after a reset fails with ECONNRESET and no signal, and every error a session meets, in a
 * send or a receive, ends the session before it writes again.
 */
static ssize_t write_as_application(int fd, const void *buffer, size_t length, bool use_send)
{
    if (use_send)
        return mt_sys_send(fd, buffer, length, MSG_NOSIGNAL);
    return mt_sys_write(fd, buffer, length);
}

static bool keep_outgoing(struct mt_tls_session *session, const void *buffer, size_t length)
{
    unsigned char *grown = realloc(session->outgoing, session->outgoing_length + length);
    if (grown == NULL) {
        errno = ENOMEM;
        return false;
    }
    memcpy(grown + session->outgoing_length, buffer, length);
    session->outgoing = grown;
    session->outgoing_length += length;
    return true;
}

static ssize_t send_with_transport(struct mt_tls_session *session, const void *buffer,
                                   size_t length)
{
    ssize_t n;
    do
        n = session->transport == MT_TLS_TRANSPORT_NONBLOCKING
                ? write_as_application(session->fd, buffer, length,
                                       session->sigpipe_chosen && session->send_flags != 0)
                : mt_sys_send(session->fd, buffer, length, MSG_DONTWAIT | session->send_flags);
    while (n < 0 && errno == EINTR);
    return n;
}

ssize_t mt_tls_record_send_now(struct mt_tls_session *session, const void *buffer, size_t length)
{
    if (session->transport == MT_TLS_TRANSPORT_DEFERRED)
        return keep_outgoing(session, buffer, length) ? (ssize_t)length : -1;
    /* What earlier DEFERRED calls kept goes first. */
    if (mt_tls_outgoing_pending(session) && mt_tls_flush_outgoing(session) != MT_TLS_OK) {
        errno = session->transport_errno != 0 ? session->transport_errno : EAGAIN;
        return -1;
    }
    return send_with_transport(session, buffer, length);
}

static void note_first_byte(struct mt_tls_session *session)
{
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
            mt_tls_failure_explain(session,
                                   "peer closed the connection inside a TLS record (truncated)");
        }
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    session->transport_errno = errno;
    return errno == ECONNRESET ? WOLFSSL_CBIO_ERR_CONN_RST : WOLFSSL_CBIO_ERR_GENERAL;
}

int mt_tls_record_receive(WOLFSSL *ssl, char *buffer, int size, void *user)
{
    (void)ssl;
    struct mt_tls_session *session = user;
    if (session->ahead_start == session->ahead_end) {
        /* Another thread reads the socket for this session: its bytes come first. */
        if (session->incoming_busy)
            return WOLFSSL_CBIO_ERR_WANT_READ;
        if (session->incoming_eof)
            return receive_failure(session, 0, size);
        if (session->incoming_errno != 0) {
            errno = session->incoming_errno;
            session->incoming_errno = 0;
            return receive_failure(session, -1, size);
        }
        if (session->transport == MT_TLS_TRANSPORT_DEFERRED)
            return WOLFSSL_CBIO_ERR_WANT_READ;
        if (session->ahead == NULL)
            session->ahead = malloc(READ_AHEAD_CAPACITY);
        if (session->ahead == NULL) {
            /* Without the buffer, read what wolfSSL asked for directly. */
            ssize_t n = receive_now(session, buffer, (size_t)size);
            session->ahead_filled = false;
            return n > 0 ? (int)n : receive_failure(session, n, size);
        }
        ssize_t n = receive_now(session, session->ahead, READ_AHEAD_CAPACITY);
        session->ahead_filled = n == READ_AHEAD_CAPACITY;
        if (n <= 0)
            return receive_failure(session, n, size);
        note_first_byte(session);
        session->ahead_start = 0;
        session->ahead_end = (size_t)n;
    }
    size_t available = session->ahead_end - session->ahead_start;
    size_t count = available < (size_t)size ? available : (size_t)size;
    memcpy(buffer, session->ahead + session->ahead_start, count);
    session->ahead_start += count;
    return (int)count;
}

bool mt_tls_record_restore_ahead(struct mt_tls_session *session, const unsigned char *bytes,
                                 size_t length)
{
    /* Full capacity: once these are consumed, the next receive fills the same buffer. */
    if (length == 0 || length > READ_AHEAD_CAPACITY)
        return length == 0;
    session->ahead = malloc(READ_AHEAD_CAPACITY);
    if (session->ahead == NULL)
        return false;
    memcpy(session->ahead, bytes, length);
    session->ahead_start = 0;
    session->ahead_end = length;
    return true;
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
 * never sees WANT_READ), and after the handshake. A 66 KiB malloc/free pair costs far less than
 * the recvs it saves.
 */
void mt_tls_record_release_idle_buffer(struct mt_tls_session *session)
{
    if (session->ahead != NULL && session->ahead_start == session->ahead_end &&
        !session->incoming_busy) {
        free(session->ahead);
        session->ahead = NULL;
        session->ahead_start = session->ahead_end = 0;
    }
}

int mt_tls_record_send_failure(struct mt_tls_session *session)
{
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return WOLFSSL_CBIO_ERR_WANT_WRITE;
    session->transport_errno = errno;
    if (errno == EPIPE || errno == ECONNRESET)
        return WOLFSSL_CBIO_ERR_CONN_RST;
    return WOLFSSL_CBIO_ERR_GENERAL;
}

/*
 * Once close_notify is on its way, the send callback takes all it is given: what the socket
 * refuses now is kept in unsent_alert, behind anything kept before, and mt_tls_shutdown sends it.
 * wolfSSL 5.5.4 (the system build's) cannot finish an alert itself: after WANT_WRITE,
 * wolfSSL_shutdown returns an error without marking close_notify sent and leaves the rest of the
 * record in its output buffer, which only a second close_notify would push out. The kernel's
 * shutdown or close, which follows at once, then cut the record short: the peer saw a truncated
 * record and answered bad_record_mac. Found by the fault soak (tests/integration/
 * test_soak_faults.py, kinds=eagain+short). 5.9.2 marks it sent and flushes the rest at its next
 * wolfSSL_shutdown; it is kept here with both, so that close and shutdown finish an alert one way.
 */
static int keep_after_shutdown(struct mt_tls_session *session, const char *buffer, int size)
{
    size_t sent = 0;
    if (session->unsent_alert_length == 0) {
        ssize_t n = mt_tls_record_send_now(session, buffer, (size_t)size);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return mt_tls_record_send_failure(session);
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
        return mt_tls_record_send_failure(session);
    }
    memcpy(kept + session->unsent_alert_length, buffer + sent, rest);
    session->unsent_alert = kept;
    session->unsent_alert_length = (uint16_t)length;
    return size;
}

int mt_tls_record_send(WOLFSSL *ssl, char *buffer, int size, void *user)
{
    struct mt_tls_session *session = user;
    /*
     * Nothing follows close_notify (RFC 8446 §6.1). wolfSSL (5.5.4, 5.9.2) still answers a
     * KeyUpdate that arrives after it: that record is dropped, never written to a socket whose
     * write side the application may have shut (EPIPE, and SIGPIPE for a write).
     */
    if (session->close_notify_queued)
        return size;
    /*
     * A peer whose first byte is not TLS is refused without a word: a plaintext client must not
     * learn that TLS listens here. Debian's libwolfssl (-Dwolfssl=system, TLS 1.2 built in)
     * answers the record header it cannot read with an alert (record_overflow); dropped.
     */
    if (session->first_byte_not_tls)
        return size;
    if (session->shutdown_sent)
        return keep_after_shutdown(session, buffer, size);
    if (!session->handshake_done && wolfSSL_is_init_finished(ssl) && wolfSSL_is_server(ssl))
        return mt_tls_held_ticket_hold(session, buffer, size);
    /*
     * A client's handshake flight, which the application's first bytes could wait behind (see
     * mt_tls_sent_own_bytes). A server's flight is answered by the client's Finished before the
     * server can write.
     */
    if (!session->handshake_done && !wolfSSL_is_server(ssl))
        session->sent_own_bytes = true;
    if (session->held_ticket_length > 0)
        return mt_tls_held_ticket_send_before(session, buffer, size);
    ssize_t n = mt_tls_record_send_now(session, buffer, (size_t)size);
    return n >= 0 ? (int)n : mt_tls_record_send_failure(session);
}

enum mt_tls_status mt_tls_record_send_unsent_alert(struct mt_tls_session *session)
{
    size_t sent = 0;
    while (sent < session->unsent_alert_length) {
        ssize_t n = mt_tls_record_send_now(session, session->unsent_alert + sent,
                                           session->unsent_alert_length - sent);
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
    mt_tls_failure_explain(session, "%s (sending close_notify)", strerror(error));
    return MT_TLS_ERROR;
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
    return session->carried_length + (pending > 0 ? (size_t)pending : 0);
}

bool mt_tls_sent_own_bytes(const struct mt_tls_session *session)
{
    return session->sent_own_bytes;
}

void mt_tls_forget_own_bytes(struct mt_tls_session *session)
{
    session->sent_own_bytes = false;
}

void mt_tls_set_sigpipe(struct mt_tls_session *session, bool raise_sigpipe)
{
    session->send_flags = raise_sigpipe ? 0 : MSG_NOSIGNAL;
    session->sigpipe_chosen = true;
}

/* ---- the caller's own transfers (DEFERRED) --------------------------------------------------- */

void mt_tls_set_transport(struct mt_tls_session *session, enum mt_tls_transport transport)
{
    session->transport = transport;
}

enum mt_tls_transport mt_tls_transport_of(const struct mt_tls_session *session)
{
    return session->transport;
}

bool mt_tls_incoming_busy(const struct mt_tls_session *session)
{
    return session->incoming_busy;
}

bool mt_tls_incoming_take(struct mt_tls_session *session, struct mt_tls_incoming *incoming)
{
    if (session->incoming_busy || session->ahead_start != session->ahead_end ||
        session->incoming_eof || session->incoming_errno != 0)
        return false;
    if (session->ahead == NULL)
        session->ahead = malloc(READ_AHEAD_CAPACITY);
    if (session->ahead == NULL) {
        errno = ENOMEM;
        return false;
    }
    session->incoming_busy = true;
    session->ahead_start = session->ahead_end = 0;
    *incoming = (struct mt_tls_incoming){
        .fd = session->fd, .buffer = session->ahead, .capacity = READ_AHEAD_CAPACITY};
    return true;
}

ssize_t mt_tls_incoming_read(const struct mt_tls_incoming *incoming)
{
    return mt_sys_read(incoming->fd, incoming->buffer, incoming->capacity);
}

void mt_tls_incoming_give_back(struct mt_tls_session *session, ssize_t n, int error)
{
    session->incoming_busy = false;
    if (n > 0) {
        session->ahead_start = 0;
        session->ahead_end = (size_t)n;
        session->ahead_filled = n == READ_AHEAD_CAPACITY;
        note_first_byte(session);
    } else if (n == 0) {
        session->incoming_eof = true;
    } else if (error != EAGAIN && error != EWOULDBLOCK && error != EINTR) {
        session->incoming_errno = error;
    }
}

bool mt_tls_outgoing_pending(const struct mt_tls_session *session)
{
    return session->outgoing_length > 0 || session->outgoing_busy;
}

bool mt_tls_outgoing_busy(const struct mt_tls_session *session)
{
    return session->outgoing_busy;
}

bool mt_tls_outgoing_take(struct mt_tls_session *session, struct mt_tls_outgoing *outgoing)
{
    if (session->outgoing_busy || session->outgoing_length == 0)
        return false;
    *outgoing =
        (struct mt_tls_outgoing){.fd = session->fd,
                                 .use_send = session->sigpipe_chosen && session->send_flags != 0,
                                 .bytes = session->outgoing,
                                 .length = session->outgoing_length};
    session->outgoing = NULL;
    session->outgoing_length = 0;
    session->outgoing_busy = true;
    return true;
}

ssize_t mt_tls_outgoing_write(const struct mt_tls_outgoing *outgoing, size_t offset)
{
    return write_as_application(outgoing->fd, outgoing->bytes + offset, outgoing->length - offset,
                                outgoing->use_send);
}

void mt_tls_outgoing_give_back(struct mt_tls_session *session, struct mt_tls_outgoing *outgoing,
                               size_t written)
{
    session->outgoing_busy = false;
    size_t rest = outgoing->length - written;
    if (rest > 0 && session->outgoing_length == 0) {
        /* Nothing newer: keep the same bytes, moved to the front. */
        memmove(outgoing->bytes, outgoing->bytes + written, rest);
        session->outgoing = outgoing->bytes;
        session->outgoing_length = rest;
        outgoing->bytes = NULL;
    } else if (rest > 0) {
        /* Newer records were kept meanwhile: the rest goes in front of them. */
        unsigned char *both = realloc(outgoing->bytes, rest + session->outgoing_length);
        if (both == NULL) {
            /* Neither can be dropped without breaking the stream. */
            session->transport_errno = ENOMEM;
        } else {
            memmove(both, both + written, rest);
            memcpy(both + rest, session->outgoing, session->outgoing_length);
            free(session->outgoing);
            session->outgoing = both;
            session->outgoing_length += rest;
            outgoing->bytes = NULL;
        }
    }
    free(outgoing->bytes);
    outgoing->bytes = NULL;
}

enum mt_tls_status mt_tls_flush_outgoing(struct mt_tls_session *session)
{
    if (session->outgoing_busy)
        return MT_TLS_WANT_WRITE;
    if (session->transport_errno == ENOMEM && session->outgoing_length > 0)
        return MT_TLS_ERROR;
    size_t sent = 0;
    while (sent < session->outgoing_length && session->transport != MT_TLS_TRANSPORT_DEFERRED) {
        ssize_t n =
            send_with_transport(session, session->outgoing + sent, session->outgoing_length - sent);
        if (n < 0)
            break;
        sent += (size_t)n;
    }
    int error = errno;
    if (sent > 0) {
        session->outgoing_length -= sent;
        memmove(session->outgoing, session->outgoing + sent, session->outgoing_length);
    }
    if (session->outgoing_length == 0) {
        free(session->outgoing);
        session->outgoing = NULL;
        return MT_TLS_OK;
    }
    if (session->transport == MT_TLS_TRANSPORT_DEFERRED || error == EAGAIN || error == EWOULDBLOCK)
        return MT_TLS_WANT_WRITE;
    session->transport_errno = error;
    session->error_number = error;
    mt_tls_failure_explain(session, "%s (sending records)", strerror(error));
    return MT_TLS_ERROR;
}
