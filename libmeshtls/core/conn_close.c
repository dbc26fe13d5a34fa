/*
 * How a connection ends (see conn.h): shutdown and close send what is unsent and then
 * close_notify, each whole, before the kernel's shutdown or close; a reset ends it at once.
 *
 * Owns the bounded wait of those calls (MT_CONN_CLOSE_FLUSH_MS, or the socket's SO_SNDTIMEO on a
 * blocking socket). Must never send a record from a copy that does not hold the stream's current
 * state (a fork's stale copy: relay.h), and never use a system call a sandboxed process may lack:
 * records go by write(2), as the application's own transfers do.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "../util/sys.h"
#include "conn_internal.h"

/*
 * Waits, until deadline, for the socket to take more of what close() or shutdown() must send.
 * Neither call returns EINTR to the application, so a signal only means waiting again; at the
 * deadline the connection fails, saying what was left unsent.
 *
 * On a blocking socket the session keeps its records (DEFERRED) and this writes them, in the
 * blocking write(2) the application's own write would make, with no poll: a process that a
 * sandbox confines to read and write can close its connection. That write waits only while the
 * send buffer is full, i.e. while the peer has not read what the application wrote before it
 * closed. The socket's SO_SNDTIMEO ends it, and the connection then fails instead, saying so:
 * the peer sees the stream end without close_notify. A signal means writing again, as for poll:
 * a program's timeout alarm whose handler returns does not end the wait.
 */
static bool wait_to_close(struct mt_conn *conn, long long deadline, const char *what)
{
    if (mt_tls_transport_of(conn->tls) == MT_TLS_TRANSPORT_DEFERRED &&
        mt_tls_outgoing_pending(conn->tls)) {
        int error = mt_conn_write_kept(conn);
        if (error == 0 || error == EINTR)
            return conn->state != MT_CONN_FAILED;
        mt_conn_fail(conn, ETIMEDOUT,
                     "%s not sent within the socket's SO_SNDTIMEO (the peer is not reading)", what);
        return false;
    }
    if (mt_conn_wait_for_progress(conn, deadline) == 0 || errno == EINTR)
        return true;
    mt_conn_fail(conn, ETIMEDOUT, "%s not sent within %d ms (the peer is not reading)", what,
                 MT_CONN_CLOSE_FLUSH_MS);
    return false;
}

/* send_close_notify with the transport set; returns with records perhaps still kept. */
static void end_write_side(struct mt_conn *conn, long long deadline)
{
    while (conn->state == MT_CONN_ESTABLISHED && !mt_conn_flush_unsent(conn) &&
           conn->state == MT_CONN_ESTABLISHED) {
        if (!wait_to_close(conn, deadline, "data written before closing"))
            return;
    }
    if (conn->state != MT_CONN_ESTABLISHED)
        return;
    /* Nothing may follow close_notify: a send from now on fails with EPIPE, even while waiting. */
    conn->write_closed = true;
    while (conn->state == MT_CONN_ESTABLISHED) {
        enum mt_tls_status status = mt_tls_shutdown(conn->tls);
        if (status == MT_TLS_OK || status == MT_TLS_CLOSED)
            return;
        if (status != MT_TLS_WANT_WRITE) {
            /* After the peer's own close_notify or EOF it may be gone: that was the end. */
            if (!conn->peer_closed)
                mt_conn_fail_from_tls(conn);
            return;
        }
        conn->wants = MT_TLS_WANT_WRITE;
        if (!wait_to_close(conn, deadline, "close_notify"))
            return;
    }
}

/*
 * Sends what is unsent and then close_notify, each whole, waiting at most until deadline. The
 * kernel's shutdown or close comes right after: a peer that gets FIN inside a record sees a
 * truncated connection, not its end. Short of the deadline, the connection fails instead.
 * The records go in the system calls the application's own transfers use (tls.h,
 * mt_tls_transport): write(2) on an O_NONBLOCK socket, waiting in poll for at most
 * MT_CONN_CLOSE_FLUSH_MS as its own event loop would; write(2) that is itself the wait on a
 * blocking one (wait_to_close). Never send(2): a sandboxed child may be allowed write alone.
 */
static void send_close_notify(struct mt_conn *conn, long long deadline)
{
    if (conn->state == MT_CONN_ESTABLISHED) {
        mt_conn_use_transport(conn, !conn->nonblocking);
        end_write_side(conn, deadline);
        /* DEFERRED: the records kept, close_notify last, leave now. */
        while (conn->state == MT_CONN_ESTABLISHED && mt_tls_outgoing_pending(conn->tls) &&
               mt_tls_transport_of(conn->tls) == MT_TLS_TRANSPORT_DEFERRED &&
               wait_to_close(conn, deadline, "close_notify"))
            ;
    }
    mt_conn_use_transport(conn, false);
}

int mt_conn_shutdown(struct mt_conn *conn, int how)
{
    pthread_mutex_lock(&conn->lock);
    bool ends_writing = how == SHUT_WR || how == SHUT_RDWR;
    /*
     * A copy made by fork and not used here since may be stale: another process (a child, or
     * the program it exec'd) may have moved the stream on, and a record from this copy would
     * repeat its sequence numbers (the peer fails the connection; the nonce is reused). It sends
     * close_notify only when it holds the stream's current state: a relayed connection whose
     * slot is free (its newest state imported first, relay.h). Otherwise nothing goes on the
     * wire, as at close; the kernel's shutdown, which the caller makes next, still ends the
     * stream for every process.
     */
    if (ends_writing && conn->shared && !mt_conn_claim(conn, true)) {
        conn->write_closed = true;
    } else if (ends_writing) {
        /* A blocking socket's handshake goes on in read and write, as inside the application's
         * own read (tls.h, DEFERRED). */
        mt_conn_use_transport(conn, true);
        mt_conn_step(conn);
        /* A half-close must not cut a handshake short: the peer would see a broken one. */
        if (conn->state == MT_CONN_HANDSHAKING && !mt_conn_is_nonblocking(conn)) {
            long long no_timeout = -1;
            while (conn->state == MT_CONN_HANDSHAKING &&
                   mt_conn_block_or_explain(conn, false, SO_SNDTIMEO, &no_timeout) == 0)
                mt_conn_step(conn);
        }
        send_close_notify(conn, mt_sys_now_ms() + MT_CONN_CLOSE_FLUSH_MS);
    }
    if (how == SHUT_RD || how == SHUT_RDWR)
        conn->peer_closed = true;
    mt_conn_unlock_and_notify(conn);
    return 0;
}

void mt_conn_close(struct mt_conn *conn, int fd)
{
    pthread_mutex_lock(&conn->lock);
    bool last = true;
    if (conn->other_fd_count > 0) {
        last = false;
        /* Another name stays open: keep using one that is. */
        if (conn->fd == fd) {
            conn->fd = conn->other_fds[--conn->other_fd_count];
            if (conn->tls != NULL)
                mt_tls_session_set_fd(conn->tls, conn->fd);
        } else {
            for (size_t i = 0; i < conn->other_fd_count; i++) {
                if (conn->other_fds[i] == fd) {
                    conn->other_fds[i] = conn->other_fds[--conn->other_fd_count];
                    break;
                }
            }
        }
    }
    if (last && !conn->shared) {
        /* The process holding the stream ends it, as its close would end a plain one; the
         * state, closed, goes back to the relay slot for any other process still holding it. */
        send_close_notify(conn, mt_sys_now_ms() + MT_CONN_CLOSE_FLUSH_MS);
        mt_conn_give_back_locked(conn);
    }
    mt_conn_unlock_and_notify(conn);
    mt_conn_release(conn);
}

void mt_conn_reset(struct mt_conn *conn, const char *reason)
{
    mt_conn_reset_on(conn, -1, reason);
}

void mt_conn_reset_on(struct mt_conn *conn, int fd, const char *reason)
{
    /* connect(AF_UNSPEC) on a TCP socket disconnects it (tcp_disconnect): an RST to the peer
     * when established, without closing any of the fd's names. */
    struct sockaddr unspecified = {.sa_family = AF_UNSPEC};
    pthread_mutex_lock(&conn->lock);
    (void)mt_sys_connect(fd >= 0 ? fd : conn->fd, &unspecified, sizeof(unspecified));
    mt_conn_fail(conn, ECONNRESET, "%s", reason);
    mt_conn_unlock_and_notify(conn);
}
