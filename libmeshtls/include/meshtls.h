/*
 * libmeshtls: transparent mutual TLS for TCP connections.
 *
 * Programs run under the preload (meshtls run -- PROGRAM) need nothing from this header. C
 * services that link libmeshtls directly (pkg-config meshtls) use the functions below on their
 * own sockets: the connection becomes TLS 1.3 with mutual authentication, with the workload
 * identity the local meshtls-agent issues to the process, exactly as under the preload.
 *
 * Conventions, for every function unless its comment says otherwise:
 *  - Errors: the calls mirror the socket calls they replace and follow their conventions: a
 *    result, or -1 with errno set: EAGAIN when a non-blocking socket must wait, ECONNREFUSED or
 *    ECONNRESET when a peer is refused, ETIMEDOUT when its handshake timed out, EINVAL for a bad
 *    argument, and the kernel's own errno for the socket call underneath (EBADF, ENOTSOCK, ...).
 *    meshtls_last_error() then says why in words.
 *  - Threads: every function is safe to call from any thread, on any fd, concurrently; calls on
 *    one connection are serialised inside (as the kernel's are on one socket).
 *  - Plain fds: read/write/readv/writev/poll/shutdown/close on an fd that is not a mesh
 *    connection behave as the plain system calls (errno untouched), so a service can use them
 *    for all its sockets.
 *  - Waiting: meshtls_init is the one call that waits for the agent. On a blocking socket a call
 *    waits as the system call would (a connect for its handshake, a read for data); on a
 *    non-blocking one no call ever waits, for the peer or for the agent.
 *
 * Event loops (epoll, libuv, libevent, ...) never call meshtls_poll. For each connection:
 *  1. Make the socket non-blocking, then meshtls_connect (EINPROGRESS) or meshtls_accept_nonblock.
 *  2. While meshtls_handshake(fd) answers MESHTLS_WANT_READ or MESHTLS_WANT_WRITE, wait for that
 *     event on fd, then call it again. 0: established (meshtls_peer_id names the peer); -1: the
 *     connection failed (close it). A handshake has a deadline: meshtls_events gives the time
 *     left, for a loop timer; the next call after it fails with ETIMEDOUT.
 *  3. Once established, ask meshtls_events(fd, wanted, NULL) which events to wait for: TLS may
 *     need the socket writable to finish a record although the application only wants to read.
 *  4. Read until meshtls_read says EAGAIN (or 0: the peer closed). Decrypted bytes can be held
 *     here while the kernel has nothing, so the kernel will not report them. Edge-triggered
 *     loops must read until EAGAIN every time: the kernel reported the socket readable once,
 *     however many records it brought. A level-triggered loop that stops reading earlier (for
 *     fairness) must not wait for fd while meshtls_pending(fd) is above 0: it reads again first.
 *  5. Write until done or EAGAIN; on EAGAIN wait for meshtls_events(fd, POLLOUT, NULL).
 *
 * The identity: meshtls_init fetches the process's identity from the agent, waiting up to the
 * configuration's agent_wait_ms for an agent that starts late. Call it before the loop runs. On a
 * non-blocking socket before the identity is there (meshtls_init skipped, or the agent down),
 * nothing waits: meshtls_connect fails with EAGAIN before any packet leaves, the agent being asked
 * meanwhile (connect the same socket again later, on a timer); meshtls_accept_nonblock accepts and
 * refuses the connection (its first call fails with ECONNRESET and says why).
 *
 * Identity patterns (meshtls_connect_pinned) are those of the configuration's outbound rules: a
 * SPIFFE ID, matched exactly ("spiffe://example.org/ns/db"), or one ending in a slash and an
 * asterisk, matching any ID below it by one or more path segments: "spiffe://example.org/ns/"
 * followed by "*" matches spiffe://example.org/ns/db, not spiffe://example.org/ns itself.
 *
 * ABI: libmeshtls.so.0's symbols carry the version node of the release that added them
 * (MESHTLS_0 for 0.1, MESHTLS_0.2): see meshtls.map. "Since" below names it.
 */
#ifndef MESHTLS_H
#define MESHTLS_H

#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MESHTLS_VERSION_MAJOR 0
#define MESHTLS_VERSION_MINOR 2
#define MESHTLS_VERSION_PATCH 0

enum meshtls_role { MESHTLS_CLIENT = 0, MESHTLS_SERVER = 1 };

/* meshtls_handshake's answers while the handshake must wait for the socket. */
#define MESHTLS_WANT_READ 1
#define MESHTLS_WANT_WRITE 2

/* The library's version, "MAJOR.MINOR.PATCH". Never fails. Since 0.1. */
const char *meshtls_version(void);

/*
 * Reads the configuration (MESHTLS_CONFIG, else /etc/meshtls/meshtls.conf, else defaults) and
 * fetches the workload identity, waiting up to agent_wait_ms for the agent. Returns 0, or -1 with
 * EINVAL when the configuration is broken (every connection is then refused), EAGAIN when no
 * identity could be had (the service may go on: blocking calls ask the agent again, non-blocking
 * ones as said above). Optional: the first connection does it otherwise. Since 0.1.
 */
int meshtls_init(void);

/*
 * connect(2) that makes fd an mTLS client connection. A blocking socket returns once the
 * handshake is done; a non-blocking one returns -1/EINPROGRESS and the handshake is driven by
 * meshtls_handshake (or meshtls_poll, or the first read or write). errno: connect(2)'s, and
 * ECONNREFUSED when the connection is refused (configuration, identity, server's identity),
 * EAGAIN on a non-blocking socket before the identity is there (nothing sent; call again).
 * Since 0.1.
 */
int meshtls_connect(int fd, const struct sockaddr *address, socklen_t length);

/*
 * meshtls_connect that also requires the server's SPIFFE ID to match server_identity (a pattern,
 * see above), for this connection only, besides what the configuration's outbound rules expect
 * (both must hold). A server that does not match is refused during the handshake: the call that
 * completes it fails (ECONNRESET; ECONNREFUSED when the server refused us first), and
 * meshtls_last_error() names both identities. EINVAL when server_identity is NULL or not a
 * pattern (nothing done). Since 0.2.
 */
int meshtls_connect_pinned(int fd, const struct sockaddr *address, socklen_t length,
                           const char *server_identity);

/*
 * accept4(2) (flags: SOCK_NONBLOCK, SOCK_CLOEXEC) that makes the accepted socket an mTLS server
 * connection; the handshake runs on its first use (read, write, poll or meshtls_handshake).
 * errno: accept4(2)'s; ECONNABORTED when the accepted socket could not be taken over (closed).
 * A connection policy refuses is still returned: its first use fails and says why. Since 0.1.
 */
int meshtls_accept(int listener, struct sockaddr *address, socklen_t *length, int flags);

/*
 * For a non-blocking listener in an event loop: accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC, never
 * waiting (EAGAIN when no connection is queued, as accept4 says), with the handshake's first step
 * made. Continue with meshtls_handshake. errno as meshtls_accept. Since 0.2.
 */
int meshtls_accept_nonblock(int listener, struct sockaddr *address, socklen_t *length);

/*
 * Makes fd, already connected (or being connected), an mTLS connection in role. -1 with ENOTSOCK
 * when fd is not a TCP socket. A blocking fd may wait for the agent as meshtls_init does; a
 * non-blocking one before the identity is there is refused instead (its first use fails and says
 * why). Since 0.1.
 */
int meshtls_wrap(int fd, enum meshtls_role role);

/*
 * read(2), write(2), readv(2), writev(2) of the application's bytes: decrypted, encrypted. A
 * connection still in its handshake continues it first (blocking: waits for it; non-blocking:
 * EAGAIN). errno: the kernel's, ECONNRESET or ETIMEDOUT when the connection failed, EPIPE after
 * a write shutdown (no SIGPIPE is raised). Since 0.1 (readv, writev: 0.2).
 */
ssize_t meshtls_read(int fd, void *buffer, size_t length);
ssize_t meshtls_write(int fd, const void *buffer, size_t length);
ssize_t meshtls_readv(int fd, const struct iovec *vector, int count);
ssize_t meshtls_writev(int fd, const struct iovec *vector, int count);

/* shutdown(2); SHUT_WR sends close_notify after whatever is still to be sent. errno: shutdown's.
 * Since 0.1. */
int meshtls_shutdown(int fd, int how);

/*
 * close(2); sends close_notify first. Records still unsent are written first, waiting at most
 * half a second for room, even on a non-blocking fd: a loop that must never wait calls
 * meshtls_shutdown(fd, SHUT_WR) first and keeps calling meshtls_events(fd, 0, NULL) on POLLOUT
 * until it no longer asks for POLLOUT; close then has nothing to wait for. errno: close's.
 * Since 0.1.
 */
int meshtls_close(int fd);

/* poll(2) over any mix of fds: decrypted bytes waiting count as readable, a connection in its
 * handshake is neither readable nor writable, and handshakes progress inside the wait. errno:
 * poll's. Since 0.1. */
int meshtls_poll(struct pollfd *fds, nfds_t count, int timeout_ms);

/*
 * One step of fd's handshake, never waiting whatever the socket's mode. Returns 0 once the
 * connection is established (at once on every later call), MESHTLS_WANT_READ or
 * MESHTLS_WANT_WRITE when the socket must become readable or writable before the next step, or
 * -1 with errno: ECONNREFUSED or ECONNRESET (refused: the peer's identity, or the peer is not
 * TLS), ETIMEDOUT (handshake_timeout passed), ENOTCONN (fd is not a mesh connection). Since 0.2.
 */
int meshtls_handshake(int fd);

/*
 * The events (POLLIN, POLLOUT) an event loop must wait for on fd so that the application can do
 * what wanted (POLLIN and/or POLLOUT) asks, after the progress that can be made now: during the
 * handshake, what it waits for; once established, wanted, plus POLLOUT while part of a record
 * is still unsent. Wait for these, not for wanted, whatever the loop. *timeout_ms (NULL allowed)
 * is set to the milliseconds left before the handshake's deadline, -1 when none. For an fd that
 * is not a mesh connection, returns wanted. -1 with errno when the connection failed (as
 * meshtls_handshake). Since 0.2.
 */
int meshtls_events(int fd, short wanted, int *timeout_ms);

/*
 * How many decrypted bytes meshtls_read can return now without the kernel (0 for a plain fd, a
 * connection in its handshake, or at the end of the stream, which meshtls_read reports). A
 * whole record waiting in the kernel is decrypted to answer. Never fails. Since 0.2.
 */
int meshtls_pending(int fd);

/*
 * Copies the verified SPIFFE ID of the peer on fd (client or server side) into buffer
 * (NUL-terminated) and returns its length. Returns -1 with errno ENOTCONN when fd is not a
 * meshed connection or its handshake has not completed, ERANGE when capacity is too small.
 * Since 0.1.
 */
int meshtls_peer_id(int fd, char *buffer, size_t capacity);

/* Why the last failed meshtls_* call of this thread failed, in words; "" when none failed. The
 * text belongs to the thread, valid until its next meshtls_* call. Since 0.1. */
const char *meshtls_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
