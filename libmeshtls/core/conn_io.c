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

bool mt_conn_is_nonblocking(int fd)
{
    int flags = mt_sys_fcntl(fd, F_GETFL, 0);
    return flags != -1 && (flags & O_NONBLOCK) != 0;
}

/* The deadline SO_RCVTIMEO / SO_SNDTIMEO set for a blocking call starting now; -1 for none. */
static long long socket_deadline(int fd, int option)
{
    struct timeval timeout = {0, 0};
    socklen_t length = sizeof(timeout);
    if (mt_sys_getsockopt(fd, SOL_SOCKET, option, &timeout, &length) != 0 ||
        (timeout.tv_sec == 0 && timeout.tv_usec == 0))
        return -1;
    return mt_sys_now_ms() + (long long)timeout.tv_sec * 1000 + timeout.tv_usec / 1000;
}

int mt_conn_wait_for_progress(struct mt_conn *conn, long long deadline)
{
    short events =
        conn->state == MT_CONN_CONNECTING || conn->wants == MT_TLS_WANT_WRITE ? POLLOUT : POLLIN;
    if (conn->unsent_length > 0)
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

int mt_conn_block_or_explain(struct mt_conn *conn, bool dont_wait, int timeout_option,
                             long long *io_deadline)
{
    if (dont_wait || mt_conn_is_nonblocking(conn->fd))
        return EAGAIN;
    if (*io_deadline == MT_CONN_DEADLINE_UNREAD)
        *io_deadline = socket_deadline(conn->fd, timeout_option);
    long long deadline = *io_deadline;
    if (conn->state == MT_CONN_DETECTING)
        deadline = mt_conn_earlier(deadline, conn->detect_deadline_ms);
    else if (conn->state != MT_CONN_ESTABLISHED)
        deadline = mt_conn_earlier(deadline, conn->handshake_deadline_ms);
    if (mt_conn_wait_for_progress(conn, deadline) == 0)
        return 0;
    if (errno == EINTR)
        return EINTR;
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
    mt_conn_claim(conn);
    for (;;) {
        mt_conn_step(conn);
        if (conn->state == MT_CONN_PLAIN) {
            struct mt_metrics_connection *metrics = conn->metrics;
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

/* ESTABLISHED, nothing unsent: commits records from buffer; the count committed. */
static size_t write_records(struct mt_conn *conn, const void *buffer, size_t length)
{
    size_t total = 0;
    while (total < length) {
        size_t chunk = length - total;
        if (chunk > MT_TLS_RECORD_MAX)
            chunk = MT_TLS_RECORD_MAX;
        const char *record = (const char *)buffer + total;
        enum mt_tls_status status = mt_tls_write(conn->tls, record, chunk);
        if (status == MT_TLS_OK) {
            total += chunk;
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

    pthread_mutex_lock(&conn->lock);
    mt_conn_claim(conn);
    mt_conn_shorten_detection(conn);
    if (conn->tls != NULL)
        mt_tls_set_sigpipe(conn->tls, (flags & MSG_NOSIGNAL) == 0);
    for (;;) {
        mt_conn_step(conn);
        if (conn->state == MT_CONN_PLAIN && total == 0) {
            struct mt_metrics_connection *metrics = conn->metrics;
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
        if (conn->state == MT_CONN_ESTABLISHED && conn->unsent_length == 0) {
            total += write_records(conn, (const char *)buffer + total, length - total);
            if (total == length)
                break;
            if (conn->state == MT_CONN_FAILED) {
                if (total > 0)
                    break;
                continue;
            }
        }
        *error = mt_conn_block_or_explain(conn, dont_wait, SO_SNDTIMEO, &io_deadline);
        if (*error != 0)
            break;
    }
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

ssize_t mt_conn_send_vector(struct mt_conn *conn, const struct iovec *vector, int count, int flags)
{
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
