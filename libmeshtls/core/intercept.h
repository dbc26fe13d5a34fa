/*
 * The one place that decides whether a socket becomes ours.
 *
 * A socket is intercepted when it is AF_INET or AF_INET6, SOCK_STREAM, IPPROTO_TCP (asked of the
 * kernel, never assumed from how it was created), and policy says mTLS for its destination
 * (connect) or its peer (accept). Everything else - Unix sockets, UDP, plain-policy TCP, sockets
 * of unknown type - is handed to libc untouched, errno included.
 *
 * When the configuration failed to load, no policy is known and every TCP connection is refused
 * with a log line: a broken config must never silently mean plaintext.
 */
#ifndef MT_CORE_INTERCEPT_H
#define MT_CORE_INTERCEPT_H

#include <stdbool.h>
#include <sys/socket.h>

/* always_mtls: the direct-link API asks for mTLS explicitly; policy still supplies the expected
 * server identity. Hooks pass false: policy decides. */
int mt_intercept_connect(int fd, const struct sockaddr *address, socklen_t length,
                         bool always_mtls);

/* accept (use_accept4 false) or accept4 with flags. */
int mt_intercept_accept(int listener, struct sockaddr *address, socklen_t *length, int flags,
                        bool use_accept4, bool always_mtls);

/*
 * Takes over fd, inherited across exec with its handshake not started (see inherit.h): as the
 * server side of an accepted connection (server), or the client side of a connect to
 * destination (the parent's view: the connect may still be in flight).
 */
void mt_intercept_adopt(int fd, bool server, const struct sockaddr_storage *destination);

#endif
