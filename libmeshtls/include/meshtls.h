/*
 * libmeshtls: transparent mutual TLS for TCP connections.
 *
 * Programs run under the preload (meshtls run -- PROGRAM) need nothing from this header. C
 * services that link libmeshtls directly (pkg-config meshtls) use the functions below on their
 * own sockets: the connection becomes TLS 1.3 with mutual authentication, with the workload
 * identity the local meshtls-agent issues to the process, exactly as under the preload.
 *
 * The calls mirror the socket calls they replace and follow their conventions: a result, or -1
 * with errno set (EAGAIN on a non-blocking socket that must wait, ECONNREFUSED or ECONNRESET
 * when a peer is refused); meshtls_last_error() then says why in words. Every function is safe
 * to call from any thread. read/write/poll/close on an fd that is not a mesh connection behave
 * as the plain system calls, so a service can use them for all its sockets.
 */
#ifndef MESHTLS_H
#define MESHTLS_H

#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MESHTLS_VERSION_MAJOR 0
#define MESHTLS_VERSION_MINOR 1
#define MESHTLS_VERSION_PATCH 0

enum meshtls_role {
    MESHTLS_CLIENT = 0,
    MESHTLS_SERVER = 1,
};

/* The library's version, "MAJOR.MINOR.PATCH". */
const char *meshtls_version(void);

/*
 * Reads the configuration (MESHTLS_CONFIG, else /etc/meshtls/meshtls.conf, else defaults).
 * Optional: the first connection does it otherwise. Returns 0, or -1 (EINVAL) when the
 * configuration is broken — every connection is then refused.
 */
int meshtls_init(void);

/*
 * connect(2) that makes fd an mTLS client connection. A blocking socket returns once the
 * handshake is done; a non-blocking one returns -1/EINPROGRESS and the connection is ready when
 * meshtls_poll reports POLLOUT.
 */
int meshtls_connect(int fd, const struct sockaddr *address, socklen_t length);

/* accept4(2) that makes the accepted socket an mTLS server connection; the handshake runs on
 * its first use (read, write or poll). */
int meshtls_accept(int listener, struct sockaddr *address, socklen_t *length, int flags);

/* Makes fd, already connected (or being connected), an mTLS connection in role. */
int meshtls_wrap(int fd, enum meshtls_role role);

ssize_t meshtls_read(int fd, void *buffer, size_t length);
ssize_t meshtls_write(int fd, const void *buffer, size_t length);

/* shutdown(2); SHUT_WR sends close_notify after whatever is still to be sent. */
int meshtls_shutdown(int fd, int how);

/* close(2); sends close_notify first. */
int meshtls_close(int fd);

/* poll(2) over any mix of fds: decrypted bytes waiting count as readable, a connection in its
 * handshake is neither readable nor writable, and handshakes progress inside the wait. */
int meshtls_poll(struct pollfd *fds, nfds_t count, int timeout_ms);

/*
 * Copies the verified SPIFFE ID of the peer on fd into buffer (NUL-terminated) and returns its
 * length. Returns -1 with errno ENOTCONN when fd is not a meshed connection or its handshake has
 * not completed, ERANGE when capacity is too small.
 */
int meshtls_peer_id(int fd, char *buffer, size_t capacity);

/* Why the last failed meshtls_* call of this thread failed, in words; "" when none failed. */
const char *meshtls_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
