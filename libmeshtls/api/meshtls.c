/*
 * The public meshtls_* functions (meshtls.h): thin entry points over the same engine the hooks
 * use, in libmeshtls.so and in libmeshtls-preload.so alike.
 *
 * Owns the words for meshtls_last_error() and the version string. Never decides anything:
 * core/intercept.c decides (with mTLS forced, since the caller asked for it), core/conn.c
 * behaves. A call on an fd that is not a mesh connection goes to libc through util/sys.c's
 * mt_sys_app_* (whose libc each shared object installs: api/libc.c, preload/real.c).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "../core/conn.h"
#include "../core/intercept.h"
#include "../core/readiness.h"
#include "../core/runtime.h"
#include "../core/table.h"
#include "../include/meshtls.h"
#include "../util/export.h"
#include "../util/sys.h"

/* "MAJOR.MINOR.PATCH" from meshtls.h, the one place the version is written in C. */
#define TEXT_OF(token) #token
#define VERSION_TEXT(major, minor, patch) TEXT_OF(major) "." TEXT_OF(minor) "." TEXT_OF(patch)

static _Thread_local char last_error[256];

/* Remembers why a call on fd failed with error: the connection's own reason when it has one. */
static void remember_failure(int fd, int error)
{
    char reason[200] = "";
    struct mt_conn *conn = fd >= 0 ? mt_table_acquire(fd) : NULL;
    if (conn != NULL) {
        mt_conn_failure_reason(conn, MT_TEXT_ON(reason));
        mt_conn_release(conn);
    }
    if (reason[0] != '\0')
        snprintf(last_error, sizeof(last_error), "%s (%s)", reason, strerror(error));
    else
        snprintf(last_error, sizeof(last_error), "%s", strerror(error));
}

static int failed(int fd, int result)
{
    MT_PRESERVING_ERRNO(remember_failure(fd, errno));
    return result;
}

static ssize_t checked(int fd, ssize_t result)
{
    if (result < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINPROGRESS)
        return failed(fd, (int)result);
    last_error[0] = '\0';
    return result;
}

MT_EXPORT const char *meshtls_version(void)
{
    return VERSION_TEXT(MESHTLS_VERSION_MAJOR, MESHTLS_VERSION_MINOR, MESHTLS_VERSION_PATCH);
}

MT_EXPORT int meshtls_init(void)
{
    const char *message = NULL;
    if (mt_runtime_config_failed(&message)) {
        snprintf(last_error, sizeof(last_error), "configuration error: %s", message);
        errno = EINVAL;
        return -1;
    }
    last_error[0] = '\0';
    return 0;
}

MT_EXPORT int meshtls_connect(int fd, const struct sockaddr *address, socklen_t length)
{
    return (int)checked(fd, mt_intercept_connect(fd, address, length, MT_INTERCEPT_FORCE_MTLS));
}

MT_EXPORT int meshtls_accept(int listener, struct sockaddr *address, socklen_t *length, int flags)
{
    int fd = mt_intercept_accept4(listener, address, length, flags, MT_INTERCEPT_FORCE_MTLS);
    return fd < 0 ? failed(-1, fd) : fd;
}

MT_EXPORT int meshtls_wrap(int fd, enum meshtls_role role)
{
    mt_intercept_adopt(fd, role == MESHTLS_SERVER ? MT_INTERCEPT_INBOUND : MT_INTERCEPT_OUTBOUND,
                       NULL);
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        errno = ENOTSOCK;
        snprintf(last_error, sizeof(last_error), "fd %d is not a connected TCP socket", fd);
        return -1;
    }
    mt_conn_release(conn);
    last_error[0] = '\0';
    return 0;
}

MT_EXPORT ssize_t meshtls_read(int fd, void *buffer, size_t length)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL)
        return checked(fd, mt_sys_app_read(fd, buffer, length));
    ssize_t result = mt_conn_recv(conn, buffer, length, 0);
    MT_PRESERVING_ERRNO(mt_conn_release(conn));
    return checked(fd, result);
}

MT_EXPORT ssize_t meshtls_write(int fd, const void *buffer, size_t length)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL)
        return checked(fd, mt_sys_app_write(fd, buffer, length));
    ssize_t result = mt_conn_send(conn, buffer, length, MSG_NOSIGNAL);
    MT_PRESERVING_ERRNO(mt_conn_release(conn));
    return checked(fd, result);
}

MT_EXPORT int meshtls_shutdown(int fd, int how)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    /* Only the kernel's own failure sets errno (see preload/descriptors.c, forget). */
    if (conn != NULL)
        MT_PRESERVING_ERRNO((void)mt_conn_shutdown(conn, how); mt_conn_release(conn));
    return (int)checked(fd, mt_sys_app_shutdown(fd, how));
}

MT_EXPORT int meshtls_close(int fd)
{
    struct mt_conn *conn = mt_table_remove(fd);
    /* Only the kernel's own failure sets errno (see preload/descriptors.c, forget). */
    if (conn != NULL)
        MT_PRESERVING_ERRNO(mt_conn_close(conn, fd));
    return (int)checked(-1, mt_sys_app_close(fd));
}

MT_EXPORT int meshtls_poll(struct pollfd *fds, nfds_t count, int timeout_ms)
{
    if (!mt_readiness_has_ours(fds, count))
        return (int)checked(-1, mt_sys_app_poll(fds, count, timeout_ms));
    return (int)checked(-1, mt_readiness_poll(fds, count, timeout_ms, NULL));
}

MT_EXPORT int meshtls_peer_id(int fd, char *buffer, size_t capacity)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        errno = ENOTCONN;
        return -1;
    }
    char id[MT_SPIFFE_ID_MAX + 1];
    mt_conn_peer_id(conn, id, sizeof(id));
    mt_conn_release(conn);
    size_t length = strlen(id);
    if (length == 0) {
        errno = ENOTCONN;
        return -1;
    }
    if (buffer == NULL || length >= capacity) {
        errno = ERANGE;
        return -1;
    }
    memcpy(buffer, id, length + 1);
    return (int)length;
}

MT_EXPORT const char *meshtls_last_error(void)
{
    return last_error;
}
