/*
 * The public calls for a service that runs its own event loop (epoll, libuv, libevent): drive a
 * handshake one step at a time, learn which events to wait for, and how many decrypted bytes are
 * already at hand (meshtls.h, "Event loops").
 *
 * Owns the translation of the engine's answers (core/conn.h: mt_conn_handshake_progress,
 * mt_conn_poll_prepare, mt_conn_readable_bytes) into the public ones. Must never wait: every call
 * here returns after the progress the socket allows now, whatever the socket's mode.
 */
#include <errno.h>
#include <poll.h>

#include "../core/conn.h"
#include "../core/table.h"
#include "../include/meshtls.h"
#include "../util/export.h"
#include "../util/sys.h"
#include "error.h"

MT_EXPORT int meshtls_handshake(int fd)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_api_say("fd %d is not a mesh connection", fd);
        errno = ENOTCONN;
        return -1;
    }
    int failed_errno = 0;
    enum mt_conn_progress progress = mt_conn_handshake_progress(conn, &failed_errno);
    mt_conn_release(conn);
    switch (progress) {
    case MT_CONN_PROGRESS_WANTS_READ:
        mt_api_clear_error();
        return MESHTLS_WANT_READ;
    case MT_CONN_PROGRESS_WANTS_WRITE:
        mt_api_clear_error();
        return MESHTLS_WANT_WRITE;
    case MT_CONN_PROGRESS_FAILED:
        errno = failed_errno;
        return mt_api_failed(fd, -1);
    case MT_CONN_PROGRESS_DONE:
        break;
    }
    mt_api_clear_error();
    return 0;
}

MT_EXPORT int meshtls_events(int fd, short wanted, int *timeout_ms)
{
    if (timeout_ms != NULL)
        *timeout_ms = -1;
    wanted &= POLLIN | POLLOUT;
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_api_clear_error();
        return wanted;
    }
    short kernel = 0;
    long long deadline_ms = -1;
    short ready = mt_conn_poll_prepare(conn, wanted, &kernel, &deadline_ms);
    int failed_errno = (ready & POLLERR) ? mt_conn_socket_error(conn) : 0;
    mt_conn_release(conn);
    if (failed_errno != 0) {
        errno = failed_errno;
        return mt_api_failed(fd, -1);
    }
    if (timeout_ms != NULL && deadline_ms >= 0)
        *timeout_ms = mt_sys_remaining_ms(deadline_ms);
    mt_api_clear_error();
    return kernel & (POLLIN | POLLOUT);
}

MT_EXPORT int meshtls_pending(int fd)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_api_clear_error();
        return 0;
    }
    int pending = mt_conn_readable_bytes(conn);
    mt_conn_release(conn);
    mt_api_clear_error();
    return pending;
}
