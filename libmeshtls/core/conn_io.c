/*
 * The emulated transfer calls of a connection (see conn.h): recv and send, their vector forms,
 * FIONREAD, and the waits of a blocking socket, bounded as the kernel bounds them.
 *
 * Owns what the application's bytes go through once the state machine (conn.c) has moved as far
 * as it can: reads that fill the caller's buffer from whole records, writes that commit one
 * record at a time and keep a record TLS took but the kernel did not, plaintext passed straight
 * to the kernel once detection let a connection through, and errno exactly as the kernel would
 * leave it. It must never report a byte written that TLS has not committed, never hand over part
 * of a record, and never wait with the connection's lock held.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>

#include "../util/sys.h"
#include "conn_internal.h"

void mt_conn_init_condition(pthread_cond_t *condition)
{
    pthread_cond_init(condition, NULL);
}

bool mt_conn_is_nonblocking(const struct mt_conn *conn)
{
    return conn->nonblocking;
}

void mt_conn_use_transport(struct mt_conn *conn, bool may_wait)
{
    if (conn->tls == NULL)
        return;
    enum mt_tls_transport transport = MT_TLS_TRANSPORT_DONTWAIT;
    if (conn->nonblocking)
        transport = MT_TLS_TRANSPORT_NONBLOCKING;
    else if (may_wait)
        transport = MT_TLS_TRANSPORT_DEFERRED;
    mt_tls_set_transport(conn->tls, transport);
}

/* The deadline SO_RCVTIMEO / SO_SNDTIMEO set for a blocking call starting now; -1 for none. */
static long long socket_deadline(const struct mt_conn *conn, int option)
{
    long long timeout = option == SO_RCVTIMEO ? conn->receive_timeout_ms : conn->send_timeout_ms;
    return timeout > 0 ? mt_sys_now_ms() + timeout : -1;
}

int mt_conn_wait_for_progress(struct mt_conn *conn, long long deadline)
{
    short events =
        conn->state == MT_CONN_CONNECTING || conn->wants == MT_TLS_WANT_WRITE ? POLLOUT : POLLIN;
    if (mt_conn_has_unsent(conn))
        events |= POLLOUT;
    struct pollfd entry = {.fd = conn->fd, .events = events};
    int timeout = mt_sys_remaining_ms(deadline);
    if (timeout == 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    pthread_mutex_unlock(&conn->lock);
    int ready = mt_sys_poll(&entry, 1, timeout);
    MT_PRESERVING_ERRNO(pthread_mutex_lock(&conn->lock));
    if (ready < 0)
        return -1;
    if (ready == 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    return 0;
}

/*
 * Another thread reads (or writes) the socket for this connection with the lock released: its
 * bytes come first, so this one waits for it to end (a futex wait, allowed in any sandbox).
 */
static void wait_for_other_transfer(struct mt_conn *conn)
{
    pthread_cond_wait(&conn->kernel_io_done, &conn->lock);
}

/* A handshake's transfer waits for readiness first, in poll, so that its deadline holds. */
static int wait_ready_unlocked(int fd, short events, long long deadline)
{
    if (deadline < 0)
        return 0;
    struct pollfd entry = {.fd = fd, .events = events};
    int timeout = mt_sys_remaining_ms(deadline);
    int ready = timeout == 0 ? 0 : mt_sys_poll(&entry, 1, timeout);
    if (ready == 0)
        errno = ETIMEDOUT;
    return ready > 0 ? 0 : -1;
}

/*
 * DEFERRED: writes the records the session kept, with the lock released, in write(2) as the
 * application's own (util/sys.h). Returns 0 or the errno that ends the call (EINTR, EAGAIN after
 * SO_SNDTIMEO); a broken connection fails it.
 */
static int write_out(struct mt_conn *conn, long long deadline)
{
    struct mt_tls_outgoing outgoing;
    if (!mt_tls_outgoing_take(conn->tls, &outgoing))
        return 0;
    size_t written = 0;
    int error = 0;
    pthread_mutex_unlock(&conn->lock);
    if (wait_ready_unlocked(outgoing.fd, POLLOUT, deadline) != 0)
        error = errno;
    while (error == 0 && written < outgoing.length) {
        ssize_t n = mt_tls_outgoing_write(&outgoing, written);
        if (n < 0)
            error = errno;
        else
            written += (size_t)n;
    }
    pthread_mutex_lock(&conn->lock);
    mt_tls_outgoing_give_back(conn->tls, &outgoing, written);
    pthread_cond_broadcast(&conn->kernel_io_done);
    conn->notify_pollers = true;
    if (error == 0 || error == ETIMEDOUT)
        return 0;
    if (error == EINTR || error == EAGAIN || error == EWOULDBLOCK)
        return error == EINTR ? EINTR : EAGAIN;
    mt_conn_fail(conn, error, "%s (sending records)", strerror(error));
    return 0;
}

int mt_conn_write_kept(struct mt_conn *conn)
{
    while (conn->state != MT_CONN_FAILED && mt_tls_outgoing_pending(conn->tls)) {
        if (mt_tls_outgoing_busy(conn->tls)) {
            wait_for_other_transfer(conn);
            continue;
        }
        int error = write_out(conn, -1);
        if (error != 0)
            return error;
    }
    return 0;
}

/*
 * DEFERRED: one read(2) of the socket into the session, with the lock released. Returns 0 or
 * the errno that ends the call (EINTR, EAGAIN after SO_RCVTIMEO); EOF and errors go to the
 * session, which reports them.
 */
static int read_in(struct mt_conn *conn, long long deadline)
{
    struct mt_tls_incoming incoming;
    if (!mt_tls_incoming_take(conn->tls, &incoming)) {
        if (errno == ENOMEM)
            mt_conn_fail(conn, ENOMEM, "out of memory for the read-ahead buffer");
        return 0;
    }
    ssize_t n = -1;
    int error = 0;
    pthread_mutex_unlock(&conn->lock);
    if (wait_ready_unlocked(incoming.fd, POLLIN, deadline) != 0)
        error = errno;
    else if ((n = mt_tls_incoming_read(&incoming)) < 0)
        error = errno;
    pthread_mutex_lock(&conn->lock);
    mt_tls_incoming_give_back(conn->tls, n, error);
    pthread_cond_broadcast(&conn->kernel_io_done);
    if (error == EINTR || error == EAGAIN || error == EWOULDBLOCK)
        return error == EINTR ? EINTR : EAGAIN;
    return 0;
}

/*
 * DEFERRED: the wait is the transfer. Records kept for writing go first (a handshake flight
 * before its answer is read); then the read TLS asked for. When another thread holds the
 * direction needed, wait for it; a reader never waits for a writer that holds records it does
 * not need sent first (a blocked writer must not stop the reader that would unblock it).
 */
static int transfer_in_kernel(struct mt_conn *conn, long long deadline, bool writer)
{
    struct mt_tls_session *tls = conn->tls;
    bool handshaking = conn->state == MT_CONN_HANDSHAKING;
    long long wait_deadline = handshaking ? deadline : -1;
    bool reading = conn->wants == MT_TLS_WANT_READ && (handshaking || !writer);
    if (mt_tls_outgoing_pending(tls) && !mt_tls_outgoing_busy(tls))
        return write_out(conn, wait_deadline);
    if ((mt_tls_outgoing_busy(tls) && !reading) || (reading && mt_tls_incoming_busy(tls))) {
        wait_for_other_transfer(conn);
        return 0;
    }
    int error = read_in(conn, wait_deadline);
    return handshaking && error == EAGAIN ? 0 : error;
}

/* The session's records wait for this caller's own transfers (DEFERRED), and there is one. */
static bool waits_in_transfer(const struct mt_conn *conn, bool writer)
{
    if (conn->tls == NULL || mt_tls_transport_of(conn->tls) != MT_TLS_TRANSPORT_DEFERRED ||
        conn->unsent_length > 0)
        return false;
    if (conn->state != MT_CONN_HANDSHAKING && conn->state != MT_CONN_ESTABLISHED)
        return false;
    if (mt_tls_outgoing_pending(conn->tls))
        return true;
    return conn->wants == MT_TLS_WANT_READ && (conn->state == MT_CONN_HANDSHAKING || !writer);
}

int mt_conn_block_or_explain(struct mt_conn *conn, bool dont_wait, int timeout_option,
                             long long *io_deadline)
{
    if (dont_wait || conn->nonblocking)
        return EAGAIN;
    if (*io_deadline == MT_CONN_DEADLINE_UNREAD)
        *io_deadline = socket_deadline(conn, timeout_option);
    long long deadline = *io_deadline;
    if (conn->state == MT_CONN_DETECTING)
        deadline = mt_conn_earlier(deadline, conn->detect_deadline_ms);
    else if (conn->state != MT_CONN_ESTABLISHED)
        deadline = mt_conn_earlier(deadline, conn->handshake_deadline_ms);
    bool writer = timeout_option == SO_SNDTIMEO;
    if (waits_in_transfer(conn, writer)) {
        int error = transfer_in_kernel(conn, deadline, writer);
        if (error != 0)
            return error;
    } else {
        if (mt_conn_wait_for_progress(conn, deadline) == 0)
            return 0;
        if (errno == EINTR)
            return EINTR;
    }
    /* A handshake deadline is handled by mt_conn_step(); only the socket's own timeout ends the
     * call. */
    if (*io_deadline >= 0 && mt_sys_remaining_ms(*io_deadline) == 0)
        return EAGAIN;
    return 0;
}

/* ESTABLISHED: decrypts into buffer until it is full or nothing more is there; the count read. */
static size_t read_records(struct mt_conn *conn, void *buffer, size_t length, bool peek)
{
    /* Fill the caller's buffer: callers such as nginx read a short count as "drained". */
    size_t total = 0;
    while (total < length) {
        size_t count = 0;
        enum mt_tls_status status =
            mt_tls_read(conn->tls, (char *)buffer + total, length - total, &count, peek);
        if (status == MT_TLS_OK) {
            total += count;
            /* Stop once nothing more can be there: no extra recv just for EAGAIN. */
            if (peek || !mt_tls_may_have_more(conn->tls))
                break;
            continue;
        }
        if (status == MT_TLS_CLOSED) {
            conn->peer_closed = true;
            conn->notify_pollers = true;
        } else if (status == MT_TLS_ERROR) {
            mt_conn_fail_from_tls(conn);
        } else {
            conn->wants = status;
        }
        break;
    }
    if (total > 0) {
        if (!peek)
            mt_metrics_bytes_read(conn->metrics, total);
        /* Decrypted bytes left behind are invisible to the kernel: pollers must know. */
        if (conn->state == MT_CONN_ESTABLISHED && mt_tls_input_ready(conn->tls))
            conn->notify_pollers = true;
    }
    return total;
}

/*
 * mt_conn_recv without its errno contract: the count, or -1 with *error the errno to report.
 * Returns with the lock released.
 */
static ssize_t receive(struct mt_conn *conn, void *buffer, size_t length, int flags, int *error)
{
    bool peek = (flags & MSG_PEEK) != 0;
    bool dont_wait = (flags & MSG_DONTWAIT) != 0;
    long long io_deadline = MT_CONN_DEADLINE_UNREAD;
    ssize_t result = -1;

    pthread_mutex_lock(&conn->lock);
    (void)mt_conn_claim(conn, false);
    for (;;) {
        /* Set again at each turn: another thread's call may have set its own while this one
         * waited with the lock released. */
        mt_conn_use_transport(conn, !dont_wait);
        mt_conn_step(conn);
        if (conn->state == MT_CONN_PLAIN) {
            struct mt_metrics_connection *metrics = conn->metrics;
            mt_conn_use_transport(conn, false);
            mt_conn_unlock_and_notify(conn);
            ssize_t n = mt_sys_recv(conn->fd, buffer, length, flags);
            if (n < 0)
                *error = errno;
            else if (n > 0 && !peek)
                mt_metrics_bytes_read(metrics, (size_t)n);
            return n;
        }
        if (conn->state == MT_CONN_FAILED) {
            *error = conn->failed_errno;
            break;
        }
        if (conn->state == MT_CONN_ESTABLISHED) {
            if (length == 0 || conn->peer_closed) {
                result = 0;
                break;
            }
            size_t total = read_records(conn, buffer, length, peek);
            if (total > 0) {
                result = (ssize_t)total;
                break;
            }
            if (conn->peer_closed) {
                result = 0;
                break;
            }
            if (conn->state == MT_CONN_FAILED)
                continue;
        }
        *error = mt_conn_block_or_explain(conn, dont_wait, SO_RCVTIMEO, &io_deadline);
        if (*error != 0)
            break;
    }
    mt_conn_use_transport(conn, false);
    mt_conn_unlock_and_notify(conn);
    return result;
}

ssize_t mt_conn_recv(struct mt_conn *conn, void *buffer, size_t length, int flags)
{
    ssize_t result = -1;
    int error = 0;
    /* errno is left as it was on success, as the kernel leaves it (see mt_conn_step). */
    MT_PRESERVING_ERRNO(result = receive(conn, buffer, length, flags, &error));
    if (result < 0)
        errno = error;
    return result;
}

/* Keeps a record that TLS has committed but the kernel has not taken yet. */
static bool keep_unsent(struct mt_conn *conn, const void *record, size_t length)
{
    conn->unsent = malloc(length);
    if (conn->unsent == NULL) {
        mt_conn_fail(conn, ENOMEM, "out of memory holding an unsent record");
        return false;
    }
    memcpy(conn->unsent, record, length);
    conn->unsent_length = length;
    conn->notify_pollers = true; /* the kernel must now be asked for EPOLLOUT */
    return true;
}

/*
 * The most records of one call that go to the kernel in one system call (64 KiB and a little
 * more: one loopback segment). Under Nagle a record sent on its own is a small segment, and the
 * next one waits for its ACK, which a peer with nothing to send delays by up to 40 ms: a 20 KB
 * reply, a record and a rest, waited on every round trip where plain TCP sends the write at once.
 * Bounded so that a large write does not keep the whole of itself in memory.
 */
#define RECORDS_PER_SEND 4

/*
 * The records a call gathered, sent with the call's own transport: the same system call the
 * application's bytes would have made, once per batch. What the kernel does not take stays kept,
 * as a DEFERRED call's records do, and is sent before anything else (conn.c, flush_outgoing).
 */
static void send_gathered(struct mt_conn *conn)
{
    enum mt_tls_status status = mt_tls_flush_outgoing(conn->tls);
    if (status == MT_TLS_ERROR)
        mt_conn_fail_from_tls(conn);
    else if (status == MT_TLS_WANT_WRITE)
        conn->notify_pollers = true; /* the kernel must now be asked for EPOLLOUT */
}

/* ESTABLISHED, nothing unsent: commits records from buffer; the count committed. */
static size_t write_records(struct mt_conn *conn, const void *buffer, size_t length)
{
    /* Without waiting, a call of more than one record keeps them as DEFERRED does, to send them
     * together. */
    enum mt_tls_transport transport = mt_tls_transport_of(conn->tls);
    bool gather = transport != MT_TLS_TRANSPORT_DEFERRED && length > MT_TLS_RECORD_MAX;
    if (gather)
        mt_tls_set_transport(conn->tls, MT_TLS_TRANSPORT_DEFERRED);
    size_t total = 0;
    int records = 0;
    while (total < length) {
        size_t chunk = length - total;
        if (chunk > MT_TLS_RECORD_MAX)
            chunk = MT_TLS_RECORD_MAX;
        const char *record = (const char *)buffer + total;
        enum mt_tls_status status = mt_tls_write(conn->tls, record, chunk);
        if (status == MT_TLS_OK) {
            total += chunk;
            /* Kept (DEFERRED, or gathered): the batch goes once it is full. */
            if (mt_tls_outgoing_pending(conn->tls) && ++records == RECORDS_PER_SEND)
                break;
            continue;
        }
        if (status == MT_TLS_WANT_READ || status == MT_TLS_WANT_WRITE) {
            /* The record is encrypted and committed: it counts as written. */
            if (keep_unsent(conn, record, chunk))
                total += chunk;
            conn->wants = status;
        } else {
            mt_conn_fail_from_tls(conn);
        }
        break;
    }
    if (gather) {
        mt_tls_set_transport(conn->tls, transport);
        if (conn->state != MT_CONN_FAILED)
            send_gathered(conn);
    }
    return total;
}

/*
 * mt_conn_send without its errno contract: the count, or -1 with *error the errno to report.
 * Returns with the lock released.
 */
static ssize_t transmit(struct mt_conn *conn, const void *buffer, size_t length, int flags,
                        int *error)
{
    bool dont_wait = (flags & MSG_DONTWAIT) != 0;
    long long io_deadline = MT_CONN_DEADLINE_UNREAD;
    size_t total = 0;
    bool interrupted = false; /* a signal came after a record was committed */

    pthread_mutex_lock(&conn->lock);
    (void)mt_conn_claim(conn, false);
    mt_conn_shorten_detection(conn);
    if (conn->tls != NULL)
        mt_tls_set_sigpipe(conn->tls, (flags & MSG_NOSIGNAL) == 0);
    for (;;) {
        /* Set again at each turn: another thread's call may have set its own while this one
         * waited with the lock released. */
        mt_conn_use_transport(conn, !dont_wait);
        mt_conn_step(conn);
        if (conn->state == MT_CONN_PLAIN && total == 0) {
            struct mt_metrics_connection *metrics = conn->metrics;
            mt_conn_use_transport(conn, false);
            mt_conn_unlock_and_notify(conn);
            ssize_t n = mt_sys_send(conn->fd, buffer, length, flags);
            if (n < 0)
                *error = errno;
            else if (n > 0)
                mt_metrics_bytes_written(metrics, (size_t)n);
            return n;
        }
        if (conn->state == MT_CONN_FAILED) {
            *error = conn->failed_errno;
            break;
        }
        if (conn->write_closed) {
            *error = EPIPE;
            if ((flags & MSG_NOSIGNAL) == 0)
                (void)mt_sys_raise(SIGPIPE);
            break;
        }
        bool outgoing = conn->tls != NULL && mt_tls_outgoing_pending(conn->tls);
        if (interrupted && !outgoing)
            break;
        if (conn->state == MT_CONN_ESTABLISHED && conn->unsent_length == 0 && !outgoing) {
            mt_conn_lift_nagle(conn);
            total += write_records(conn, (const char *)buffer + total, length - total);
            if (total == length && !mt_tls_outgoing_pending(conn->tls))
                break;
            if (conn->state == MT_CONN_FAILED) {
                if (total > 0)
                    break;
                continue;
            }
        }
        *error = mt_conn_block_or_explain(conn, dont_wait, SO_SNDTIMEO, &io_deadline);
        /*
         * A signal after this call committed a record: the count it returns says the bytes are
         * in the kernel, as a blocking write(2) only counts what the socket took, so the record
         * goes on being written, and the call then returns without committing more. Kept
         * instead, it would be lost to a program that exits next (an exec'd handler's last
         * reply: found by the fault soak's hand-over phase).
         */
        if (*error == EINTR && total > 0) {
            *error = 0;
            interrupted = true;
        }
        if (*error != 0)
            break;
    }
    mt_conn_use_transport(conn, false);
    mt_conn_restore_nagle(conn);
    if (total > 0)
        mt_metrics_bytes_written(conn->metrics, total);
    mt_conn_unlock_and_notify(conn);
    return total > 0 || length == 0 ? (ssize_t)total : -1;
}

ssize_t mt_conn_send(struct mt_conn *conn, const void *buffer, size_t length, int flags)
{
    ssize_t result = -1;
    int error = 0;
    /* errno is left as it was on success, as the kernel leaves it (see mt_conn_step). */
    MT_PRESERVING_ERRNO(result = transmit(conn, buffer, length, flags, &error));
    if (result < 0)
        errno = error;
    return result;
}

ssize_t mt_conn_recv_vector(struct mt_conn *conn, const struct iovec *vector, int count, int flags)
{
    ssize_t total = 0;
    for (int i = 0; i < count; i++) {
        if (vector[i].iov_len == 0)
            continue;
        /* Only the first piece may wait; the rest take what is already there. */
        int piece_flags = total > 0 ? flags | MSG_DONTWAIT : flags;
        ssize_t n = mt_conn_recv(conn, vector[i].iov_base, vector[i].iov_len, piece_flags);
        if (n < 0)
            return total > 0 ? total : -1;
        total += n;
        if ((size_t)n < vector[i].iov_len)
            break;
    }
    return total;
}

/* The most bytes of a vector gathered into one write: one batch of records. */
#define GATHER_MAX (RECORDS_PER_SEND * MT_TLS_RECORD_MAX)

/*
 * The bytes of a vector that fits in one batch of records, gathered; NULL when it does not fit,
 * has fewer than two pieces, or memory is short (each piece then goes as it is).
 */
static unsigned char *gather_small(const struct iovec *vector, int count, size_t *length)
{
    size_t total = 0;
    int pieces = 0;
    for (int i = 0; i < count && total <= GATHER_MAX; i++) {
        total += vector[i].iov_len;
        pieces += vector[i].iov_len > 0;
    }
    unsigned char *gathered = pieces > 1 && total <= GATHER_MAX ? malloc(total) : NULL;
    if (gathered == NULL)
        return NULL;
    size_t offset = 0;
    for (int i = 0; i < count; i++) {
        if (vector[i].iov_len > 0)
            memcpy(gathered + offset, vector[i].iov_base, vector[i].iov_len);
        offset += vector[i].iov_len;
    }
    *length = total;
    return gathered;
}

/*
 * A vector that fits in one batch of records goes as one write, its records in one send, as the
 * kernel sends the vector in one segment. Piece by piece, each piece was a record and a send of
 * its own, and under Nagle the second waited for the peer's delayed ACK of the first (40 ms): a
 * server's writev of headers and a body. A larger vector still goes piece by piece: gathering it
 * would copy every byte once more.
 */
ssize_t mt_conn_send_vector(struct mt_conn *conn, const struct iovec *vector, int count, int flags)
{
    size_t gathered_length = 0;
    unsigned char *gathered = gather_small(vector, count, &gathered_length);
    if (gathered != NULL) {
        ssize_t n = mt_conn_send(conn, gathered, gathered_length, flags);
        MT_PRESERVING_ERRNO(free(gathered));
        return n;
    }
    ssize_t total = 0;
    for (int i = 0; i < count; i++) {
        if (vector[i].iov_len == 0)
            continue;
        ssize_t n = mt_conn_send(conn, vector[i].iov_base, vector[i].iov_len, flags);
        if (n < 0)
            return total > 0 ? total : -1;
        total += n;
        if ((size_t)n < vector[i].iov_len)
            break;
    }
    return total;
}

int mt_conn_readable_bytes(struct mt_conn *conn)
{
    pthread_mutex_lock(&conn->lock);
    mt_conn_step(conn);
    size_t pending = 0;
    if (conn->state == MT_CONN_PLAIN) {
        int queued = 0;
        if (mt_sys_ioctl(conn->fd, FIONREAD, &queued) == 0 && queued > 0)
            pending = (size_t)queued;
    } else if (conn->state == MT_CONN_ESTABLISHED && !conn->peer_closed) {
        pending = mt_tls_pending(conn->tls);
        if (pending == 0) {
            /* Decrypt a record if a whole one has arrived; peeking consumes nothing. */
            char probe;
            size_t count = 0;
            enum mt_tls_status status = mt_tls_read(conn->tls, &probe, 1, &count, true);
            if (status == MT_TLS_CLOSED)
                conn->peer_closed = true;
            pending = status == MT_TLS_OK ? mt_tls_pending(conn->tls) : 0;
            if (status == MT_TLS_OK && pending == 0)
                pending = count;
        }
    }
    mt_conn_unlock_and_notify(conn);
    return pending > 0x7fffffff ? 0x7fffffff : (int)pending;
}
