/*
 * Readiness translation for poll() and ppoll(): what the application is told about its
 * intercepted sockets is what it could do with them, not what the kernel sees underneath.
 *
 * A socket with decrypted bytes buffered is readable although the kernel has nothing; a socket
 * in its handshake is neither readable nor writable for the application, whatever the kernel
 * says, while the kernel is asked for what the handshake needs. Handshakes progress inside the
 * wait, so a poll() loop alone completes them.
 */
#ifndef MT_CORE_READINESS_H
#define MT_CORE_READINESS_H

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/select.h>

/* poll/ppoll semantics; timeout_ms < 0 waits forever; mask as for ppoll (NULL: none). */
int mt_readiness_poll(struct pollfd *fds, nfds_t count, int timeout_ms, const sigset_t *mask);

/*
 * select/pselect semantics over the same translation; timeout_ms < 0 waits forever. Returns the
 * number of bits left set, -1 with errno (EBADF for a closed fd, as select says).
 */
int mt_readiness_select(int count, fd_set *readable, fd_set *writable, fd_set *exceptional,
                        int timeout_ms, const sigset_t *mask);

/* True when one of fds 0..count-1 in the sets is an intercepted connection. */
bool mt_readiness_select_has_ours(int count, const fd_set *readable, const fd_set *writable,
                                  const fd_set *exceptional);

/* True when one of fds is an intercepted connection (else the call can go straight to libc). */
bool mt_readiness_has_ours(const struct pollfd *fds, nfds_t count);

#endif
