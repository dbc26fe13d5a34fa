/*
 * What the files of the connection engine share among themselves, and nothing else may call:
 * conn.c (the state machine), conn_io.c (transfers and waits), conn_poll.c (readiness),
 * conn_copy.c (sendfile/splice), conn_log.c (log lines) and conn_handover.c (a connection handed
 * to another process). The public contract is conn.h.
 *
 * Unless said otherwise, each function is called with the connection's lock held.
 */
#ifndef MT_CORE_CONN_INTERNAL_H
#define MT_CORE_CONN_INTERNAL_H

#include <stdbool.h>

#include "conn.h"

/* How long close() may spend sending what is left and close_notify. */
#define MT_CONN_CLOSE_FLUSH_MS 500

/*
 * Makes every bit of progress the socket allows without waiting, with errno left as it was: its
 * own EAGAIN or EINTR must not leak into a call that succeeds (see conn.c).
 */
void mt_conn_step(struct mt_conn *conn);

/*
 * Releases the lock, then tells epoll about a change its waiters must see (never with the lock
 * held: epoll takes its own locks and then the connection's, see epoll.c).
 */
void mt_conn_unlock_and_notify(struct mt_conn *conn);

/*
 * The first process to use a connection copied by fork claims it (see process.h); a relayed
 * one (relay.h) is claimed in its slot, importing the newest state first. False when it cannot
 * be had: for a read or write (to_end false) the connection is then FAILED here, logged; for
 * close_notify at shutdown (to_end true) nothing is said, nothing changes, and a copy that is
 * not relayed is never claimed (its state may be stale: it sends nothing).
 */
bool mt_conn_claim(struct mt_conn *conn, bool to_end);

/* The owner's state into its relay slot, the slot released (the lock held; see conn.h). */
void mt_conn_give_back_locked(struct mt_conn *conn);

/*
 * Moves to FAILED, keeping errno_value for every later call and the reason for
 * meshtls_last_error(), with the one log line it deserves. Once FAILED, nothing changes.
 */
__attribute__((format(printf, 3, 4))) void mt_conn_fail(struct mt_conn *conn, int errno_value,
                                                        const char *format, ...);

/* mt_conn_fail with what the TLS layer said after MT_TLS_ERROR. */
void mt_conn_fail_from_tls(struct mt_conn *conn);

/* Something written is not on the wire yet: a committed record, or records kept (DEFERRED). */
static inline bool mt_conn_has_unsent(const struct mt_conn *conn)
{
    return conn->unsent_length > 0 || (conn->tls != NULL && mt_tls_outgoing_pending(conn->tls));
}

/*
 * Before the application's write is committed: when the client session sent its handshake
 * since the last one, turns TCP_NODELAY on for this call if the application has Nagle on
 * (conn_nagle.c).
 * mt_conn_restore_nagle puts the application's setting back before the call returns.
 */
void mt_conn_lift_nagle(struct mt_conn *conn);
void mt_conn_restore_nagle(struct mt_conn *conn);

/* Sends the committed record left over from an earlier write; false while some is still left. */
bool mt_conn_flush_unsent(struct mt_conn *conn);

/* The application wants to write while detection waits: see DETECT_GRACE_MS in conn.c. */
void mt_conn_shorten_detection(struct mt_conn *conn);

/* The earlier of two deadlines, where a negative one is none. */
static inline long long mt_conn_earlier(long long a, long long b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

/* O_NONBLOCK as this process last set it (see conn.h). */
bool mt_conn_is_nonblocking(const struct mt_conn *conn);

/*
 * Which system calls the TLS session's records take (tls.h, mt_tls_transport): read and write on
 * a non-blocking socket; on a blocking one, the caller's own waiting transfers when may_wait,
 * else recv and send with MSG_DONTWAIT.
 */
void mt_conn_use_transport(struct mt_conn *conn, bool may_wait);

/*
 * Waits, with the lock released, until the socket can give what the connection waits for.
 * Returns 0 when it may have progressed, else -1 with errno EINTR or ETIMEDOUT (deadline passed).
 */
int mt_conn_wait_for_progress(struct mt_conn *conn, long long deadline);

/*
 * For a blocking call that could not complete: wait, or say why not. Returns 0 to retry, or the
 * errno to return: EAGAIN (non-blocking, or the socket's own timeout passed), EINTR. io_deadline
 * starts at MT_CONN_DEADLINE_UNREAD: the first wait turns the socket's timeout_option
 * (SO_RCVTIMEO or SO_SNDTIMEO) into it. With the DEFERRED transport the wait is the transfer
 * itself: a read or write of the records, with the lock released.
 */
#define MT_CONN_DEADLINE_UNREAD (-2)
int mt_conn_block_or_explain(struct mt_conn *conn, bool dont_wait, int timeout_option,
                             long long *io_deadline);

/* Starts counting a connection that is now open for the application's bytes (metrics). */
void mt_conn_count_open(struct mt_conn *conn, bool tls, const char *peer_id);

/* Makes every name of conn close-on-exec: its session has started (see inherit.h). */
void mt_conn_hold_across_exec(struct mt_conn *conn);

/*
 * DEFERRED: writes every record the session kept, with the lock released, in the blocking
 * write(2) itself: no poll, so that it works where a sandbox allows only read and write. It
 * waits only while the socket's send buffer is full; SO_SNDTIMEO (EAGAIN) and a signal (EINTR)
 * end it, and that errno is returned (0 once nothing is kept, or the connection failed); what the
 * kernel did not take stays kept.
 */
int mt_conn_write_kept(struct mt_conn *conn);

/* Log lines (conn_log.c). */

/* The line for a connection that fails: refused before it was established, or broken after. */
void mt_conn_log_failure(const struct mt_conn *conn, const char *reason);

/* The line for an established session: peer, version, cipher, resumed or not. */
void mt_conn_log_established(struct mt_conn *conn);

/* The line for a permissive connection handed to the application as plaintext, and why. */
void mt_conn_log_plain(const struct mt_conn *conn, const char *why);

#endif
