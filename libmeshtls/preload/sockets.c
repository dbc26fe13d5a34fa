/*
 * Hooks of the calls that make or end a connection: connect, accept, accept4, shutdown,
 * getsockopt (SO_ERROR of a connection whose handshake failed, TCP_NODELAY while a write has Nagle
 * lifted) and setsockopt (the timeouts a connection keeps, the TCP_NODELAY it puts back).
 *
 * Owns nothing: connect and accept hand over to core/intercept.c, which decides whether the
 * socket becomes ours; shutdown, getsockopt and setsockopt ask the table. Must never decide
 * anything itself.
 */
#include "hook.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/time.h>

#include "../core/conn.h"
#include "../core/intercept.h"
#include "../core/table.h"

/*
 * glibc declares the address parameters as transparent unions (__SOCKADDR_ARG) under _GNU_SOURCE;
 * the hooks use the same types (MT_SOCKADDR_ARG, hook.h) so their definitions match libc's
 * declarations exactly.
 */
MT_EXPORT int connect(int fd, MT_CONST_SOCKADDR_ARG address, socklen_t length)
{
    mt_real_init();
    return mt_intercept_connect(fd, MT_SOCKADDR(address), length, MT_INTERCEPT_BY_POLICY);
}

MT_EXPORT int accept(int fd, MT_SOCKADDR_ARG address, socklen_t *length)
{
    mt_real_init();
    return mt_intercept_accept(fd, MT_SOCKADDR(address), length, MT_INTERCEPT_BY_POLICY);
}

MT_EXPORT int accept4(int fd, MT_SOCKADDR_ARG address, socklen_t *length, int flags)
{
    mt_real_init();
    return mt_intercept_accept4(fd, MT_SOCKADDR(address), length, flags, MT_INTERCEPT_BY_POLICY);
}

MT_EXPORT int shutdown(int fd, int how)
{
    mt_real_init();
    struct mt_conn *conn = mt_table_acquire(fd);
    /* As for close(): only the kernel's own failure sets errno. */
    if (conn != NULL)
        MT_PRESERVING_ERRNO((void)mt_conn_shutdown(conn, how); mt_conn_release(conn));
    return real_shutdown(fd, how);
}

MT_EXPORT int getsockopt(int fd, int level, int name, void *value, socklen_t *length)
{
    mt_real_init();
    if (level == SOL_SOCKET && name == SO_ERROR && value != NULL && length != NULL &&
        *length >= sizeof(int)) {
        struct mt_conn *conn = mt_table_acquire(fd);
        if (conn != NULL) {
            int error = mt_conn_socket_error(conn);
            mt_conn_release(conn);
            if (error != 0) {
                *(int *)value = error;
                *length = sizeof(int);
                return 0;
            }
        }
    }
    if (level == IPPROTO_TCP && name == TCP_NODELAY && value != NULL && length != NULL &&
        *length >= sizeof(int)) {
        struct mt_conn *conn = mt_table_acquire(fd);
        if (conn != NULL) {
            int nodelay = 0;
            bool lifted = mt_conn_application_nodelay(conn, &nodelay);
            mt_conn_release(conn);
            if (lifted) {
                *(int *)value = nodelay;
                *length = sizeof(int);
                return 0;
            }
        }
    }
    return real_getsockopt(fd, level, name, value, length);
}

/* SO_RCVTIMEO and SO_SNDTIMEO of a connection: kept, so a transfer need not ask (conn.h). */
MT_EXPORT int setsockopt(int fd, int level, int name, const void *value, socklen_t length)
{
    mt_real_init();
    int result = real_setsockopt(fd, level, name, value, length);
    if (result == 0 && level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO) &&
        value != NULL && length >= sizeof(struct timeval)) {
        MT_PRESERVING_ERRNO({
            struct mt_conn *conn = mt_table_acquire(fd);
            if (conn != NULL) {
                struct timeval timeout;
                memcpy(&timeout, value, sizeof(timeout));
                mt_conn_note_timeout(conn, name,
                                     (long long)timeout.tv_sec * 1000 + timeout.tv_usec / 1000);
                mt_conn_release(conn);
            }
        });
    }
    if (result == 0 && level == IPPROTO_TCP && name == TCP_NODELAY && value != NULL &&
        length >= sizeof(int)) {
        MT_PRESERVING_ERRNO({
            struct mt_conn *conn = mt_table_acquire(fd);
            if (conn != NULL) {
                int nodelay;
                memcpy(&nodelay, value, sizeof(nodelay));
                mt_conn_note_nodelay(conn, nodelay);
                mt_conn_release(conn);
            }
        });
    }
    return result;
}
