/*
 * The public meshtls_* functions that mirror socket calls (meshtls.h): thin entry points over the
 * same engine the hooks use, in libmeshtls.so and in libmeshtls-preload.so alike. api/loop.c has
 * the calls for a service's own event loop, api/error.c the words of meshtls_last_error().
 *
 * Owns the version string and when a call may wait for the agent. Never decides anything:
 * core/intercept.c decides (with mTLS forced, since the caller asked for it), core/conn.c
 * behaves. A call on an fd that is not a mesh connection goes to libc through util/sys.c's
 * mt_sys_app_* (whose libc each shared object installs: api/libc.c, preload/real.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>

#include "../core/conn.h"
#include "../core/intercept.h"
#include "../core/readiness.h"
#include "../core/runtime.h"
#include "../core/table.h"
#include "../include/meshtls.h"
#include "../util/export.h"
#include "../util/spiffe.h"
#include "../util/sys.h"
#include "error.h"

/* "MAJOR.MINOR.PATCH" from meshtls.h, the one place the version is written in C. */
#define TEXT_OF(token) #token
#define VERSION_TEXT(major, minor, patch) TEXT_OF(major) "." TEXT_OF(minor) "." TEXT_OF(patch)

MT_EXPORT const char *meshtls_version(void)
{
    return VERSION_TEXT(MESHTLS_VERSION_MAJOR, MESHTLS_VERSION_MINOR, MESHTLS_VERSION_PATCH);
}

/* The configuration, then the identity: the one call that waits for the agent on purpose. */
MT_EXPORT int meshtls_init(void)
{
    const char *message = NULL;
    if (mt_runtime_config_failed(&message)) {
        mt_api_say("configuration error: %s", message);
        errno = EINVAL;
        return -1;
    }
    char reason[200] = "";
    struct mt_tls_context *context = mt_runtime_context(MT_TEXT_ON(reason));
    if (context == NULL) {
        mt_api_say("%s", reason);
        errno = EAGAIN;
        return -1;
    }
    mt_tls_context_release(context);
    mt_api_clear_error();
    return 0;
}

static bool is_nonblocking(int fd)
{
    int flags = mt_sys_fcntl(fd, F_GETFL, 0);
    return flags != -1 && (flags & O_NONBLOCK) != 0;
}

/* A non-blocking socket never waits for the agent (see MT_INTERCEPT_NO_WAIT). */
static enum mt_intercept_flags flags_for(bool nonblocking)
{
    return MT_INTERCEPT_FORCE_MTLS | (nonblocking ? MT_INTERCEPT_NO_WAIT : 0);
}

static int connect_expecting(int fd, const struct sockaddr *address, socklen_t length,
                             const char *server_identity)
{
    int result = mt_intercept_connect_pinned(fd, address, length, flags_for(is_nonblocking(fd)),
                                             server_identity);
    if (result < 0 && errno == EAGAIN)
        mt_api_say("no workload identity yet: the agent is being asked; connect again later");
    else
        (void)mt_api_checked(fd, result);
    return result;
}

MT_EXPORT int meshtls_connect(int fd, const struct sockaddr *address, socklen_t length)
{
    return connect_expecting(fd, address, length, NULL);
}

MT_EXPORT int meshtls_connect_pinned(int fd, const struct sockaddr *address, socklen_t length,
                                     const char *server_identity)
{
    if (server_identity == NULL ||
        !mt_spiffe_is_valid_pattern(server_identity, strlen(server_identity))) {
        mt_api_say("expected server identity \"%.160s\" is not a SPIFFE ID, nor one ending in /*",
                   server_identity != NULL ? server_identity : "(null)");
        errno = EINVAL;
        return -1;
    }
    return connect_expecting(fd, address, length, server_identity);
}

MT_EXPORT int meshtls_accept(int listener, struct sockaddr *address, socklen_t *length, int flags)
{
    int fd = mt_intercept_accept4(listener, address, length, flags,
                                  flags_for((flags & SOCK_NONBLOCK) != 0));
    return fd < 0 ? (int)mt_api_checked(-1, fd) : fd;
}

MT_EXPORT int meshtls_accept_nonblock(int listener, struct sockaddr *address, socklen_t *length)
{
    int fd = mt_intercept_accept4(listener, address, length, SOCK_NONBLOCK | SOCK_CLOEXEC,
                                  flags_for(true));
    if (fd < 0)
        return (int)mt_api_checked(-1, fd);
    /* The ClientHello is often in already: the handshake's first step costs the loop a wake-up. */
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn != NULL) {
        int ignored = 0;
        MT_PRESERVING_ERRNO((void)mt_conn_handshake_progress(conn, &ignored);
                            mt_conn_release(conn));
    }
    mt_api_clear_error();
    return fd;
}

MT_EXPORT int meshtls_wrap(int fd, enum meshtls_role role)
{
    mt_intercept_adopt(fd, role == MESHTLS_SERVER ? MT_INTERCEPT_INBOUND : MT_INTERCEPT_OUTBOUND,
                       NULL, is_nonblocking(fd) ? MT_INTERCEPT_NO_WAIT : MT_INTERCEPT_BY_POLICY);
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        errno = ENOTSOCK;
        mt_api_say("fd %d is not a connected TCP socket", fd);
        return -1;
    }
    mt_conn_release(conn);
    mt_api_clear_error();
    return 0;
}

MT_EXPORT ssize_t meshtls_read(int fd, void *buffer, size_t length)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL)
        return mt_api_checked(fd, mt_sys_app_read(fd, buffer, length));
    ssize_t result = mt_conn_recv(conn, buffer, length, 0);
    MT_PRESERVING_ERRNO(mt_conn_release(conn));
    return mt_api_checked(fd, result);
}

MT_EXPORT ssize_t meshtls_write(int fd, const void *buffer, size_t length)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL)
        return mt_api_checked(fd, mt_sys_app_write(fd, buffer, length));
    ssize_t result = mt_conn_send(conn, buffer, length, MSG_NOSIGNAL);
    MT_PRESERVING_ERRNO(mt_conn_release(conn));
    return mt_api_checked(fd, result);
}

MT_EXPORT ssize_t meshtls_readv(int fd, const struct iovec *vector, int count)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL)
        return mt_api_checked(fd, mt_sys_app_readv(fd, vector, count));
    ssize_t result = mt_conn_recv_vector(conn, vector, count, 0);
    MT_PRESERVING_ERRNO(mt_conn_release(conn));
    return mt_api_checked(fd, result);
}

MT_EXPORT ssize_t meshtls_writev(int fd, const struct iovec *vector, int count)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL)
        return mt_api_checked(fd, mt_sys_app_writev(fd, vector, count));
    ssize_t result = mt_conn_send_vector(conn, vector, count, MSG_NOSIGNAL);
    MT_PRESERVING_ERRNO(mt_conn_release(conn));
    return mt_api_checked(fd, result);
}

MT_EXPORT int meshtls_shutdown(int fd, int how)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    /* Only the kernel's own failure sets errno (see preload/descriptors.c, forget). */
    if (conn != NULL)
        MT_PRESERVING_ERRNO((void)mt_conn_shutdown(conn, how); mt_conn_release(conn));
    return (int)mt_api_checked(fd, mt_sys_app_shutdown(fd, how));
}

MT_EXPORT int meshtls_close(int fd)
{
    struct mt_conn *conn = mt_table_remove(fd);
    /* Only the kernel's own failure sets errno (see preload/descriptors.c, forget). */
    if (conn != NULL)
        MT_PRESERVING_ERRNO(mt_conn_close(conn, fd));
    return (int)mt_api_checked(-1, mt_sys_app_close(fd));
}

MT_EXPORT int meshtls_poll(struct pollfd *fds, nfds_t count, int timeout_ms)
{
    if (!mt_readiness_has_ours(fds, count))
        return (int)mt_api_checked(-1, mt_sys_app_poll(fds, count, timeout_ms));
    return (int)mt_api_checked(-1, mt_readiness_poll(fds, count, timeout_ms, NULL));
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
    return mt_api_last_error();
}
