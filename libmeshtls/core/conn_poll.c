/*
 * Readiness translation for one connection (see conn.h): what the application waits for, turned
 * into what the kernel must be asked for, and what the kernel reported, turned into what the
 * application may act on. core/readiness.c (poll, select) and core/epoll.c call it per fd, and
 * the direct-link API for a loop of the application's own (mt_conn_handshake_progress too).
 *
 * Owns the rules of what the application sees: while handshaking, the kernel is asked for what
 * TLS wants (an application waiting to write may need the socket readable underneath); once
 * established, readable means a whole record decrypted or at hand, or the end; writable means
 * nothing left unsent; a failed connection reports POLLERR|POLLHUP. It must never report writable
 * while a committed record waits, and never wait: the caller waits, with no lock held.
 */
#include <poll.h>

#include "conn_internal.h"

/* What a failed connection reports, whatever was asked: every later call fails at once. */
static short failed_events(short app_events)
{
    return POLLERR | POLLHUP | (app_events & (POLLIN | POLLOUT));
}

short mt_conn_poll_prepare(struct mt_conn *conn, short app_events, short *kernel_events,
                           long long *deadline_ms)
{
    short ready = 0;
    short kernel = 0;
    pthread_mutex_lock(&conn->lock);
    mt_conn_step(conn);
    switch (conn->state) {
    case MT_CONN_FAILED:
        ready = failed_events(app_events);
        break;
    case MT_CONN_PLAIN:
        kernel = app_events;
        break;
    case MT_CONN_DETECTING:
        if (app_events & POLLOUT)
            mt_conn_shorten_detection(conn);
        kernel = POLLIN;
        break;
    case MT_CONN_CONNECTING:
        kernel = POLLOUT;
        break;
    case MT_CONN_HANDSHAKING:
        kernel = conn->wants == MT_TLS_WANT_WRITE ? POLLOUT : POLLIN;
        break;
    case MT_CONN_ESTABLISHED:
        /*
         * The kernel is asked for POLLIN even when input is ready without it: an epoll
         * registration outlives this wait, and without POLLIN the next message would arrive
         * unseen (edge-triggered, the synthetic event is reported once).
         */
        if (app_events & POLLIN) {
            kernel |= POLLIN;
            if (mt_tls_input_ready(conn->tls) || conn->peer_closed)
                ready |= POLLIN;
        }
        if ((app_events & POLLOUT) || mt_conn_has_unsent(conn))
            kernel |= POLLOUT;
        break;
    }
    *deadline_ms = conn->state == MT_CONN_HANDSHAKING ? conn->handshake_deadline_ms
                   : conn->state == MT_CONN_DETECTING ? conn->detect_deadline_ms
                                                      : -1;
    mt_conn_unlock_and_notify(conn);
    *kernel_events = kernel;
    return ready;
}

short mt_conn_poll_finish(struct mt_conn *conn, short app_events, short kernel_asked,
                          short kernel_revents)
{
    short result = 0;
    pthread_mutex_lock(&conn->lock);
    if (kernel_revents != 0)
        mt_conn_step(conn);
    switch (conn->state) {
    case MT_CONN_FAILED:
        result = failed_events(app_events);
        break;
    case MT_CONN_PLAIN:
        /* Asked for as the app asked, or fresh from detection: poll again with the app's own. */
        result = kernel_asked == app_events ? kernel_revents : 0;
        if (kernel_asked != app_events)
            conn->notify_pollers = true;
        break;
    case MT_CONN_CONNECTING:
    case MT_CONN_DETECTING:
    case MT_CONN_HANDSHAKING:
        break;
    case MT_CONN_ESTABLISHED:
        if ((app_events & POLLIN) && (mt_tls_input_ready(conn->tls) || conn->peer_closed ||
                                      (kernel_revents & (POLLIN | POLLHUP | POLLERR | POLLRDHUP))))
            result |= POLLIN;
        /* Writable once nothing is left unsent; if the kernel was not asked, it is fresh. */
        if ((app_events & POLLOUT) && !mt_conn_has_unsent(conn) && !conn->write_closed &&
            ((kernel_revents & POLLOUT) || !(kernel_asked & POLLOUT)))
            result |= POLLOUT;
        result |= kernel_revents & (POLLHUP | POLLERR);
        break;
    }
    mt_conn_unlock_and_notify(conn);
    return result & (app_events | POLLERR | POLLHUP | POLLNVAL);
}

enum mt_conn_progress mt_conn_handshake_progress(struct mt_conn *conn, int *failed_errno)
{
    enum mt_conn_progress progress = MT_CONN_PROGRESS_DONE;
    pthread_mutex_lock(&conn->lock);
    mt_conn_step(conn);
    switch (conn->state) {
    case MT_CONN_FAILED:
        *failed_errno = conn->failed_errno;
        progress = MT_CONN_PROGRESS_FAILED;
        break;
    case MT_CONN_CONNECTING:
        progress = MT_CONN_PROGRESS_WANTS_WRITE; /* the kernel says a connect ended so */
        break;
    case MT_CONN_DETECTING:
        progress = MT_CONN_PROGRESS_WANTS_READ;
        break;
    case MT_CONN_HANDSHAKING:
        progress = conn->wants == MT_TLS_WANT_WRITE ? MT_CONN_PROGRESS_WANTS_WRITE
                                                    : MT_CONN_PROGRESS_WANTS_READ;
        break;
    case MT_CONN_ESTABLISHED:
    case MT_CONN_PLAIN:
        break;
    }
    mt_conn_unlock_and_notify(conn);
    return progress;
}
