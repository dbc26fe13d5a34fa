/*
 * Processes: what fork, vfork and exec mean for intercepted connections.
 *
 * fork: parent and child each hold a copy of every connection, with the same TLS keys and
 * sequence numbers. Only one of them may use a connection afterwards (two writers would reuse
 * nonces); both copies are marked shared, a shared copy closes or shuts down without sending
 * anything (no unsent record, no close_notify), and the first process that reads or writes a
 * shared connection claims it (it sends close_notify again when it closes or shuts it down). So a
 * postmaster closing its copy never ends its backend's session, nor http.server's shutdown of its
 * copy the CGI script's. A second process using the stream after the first (a
 * privilege-separated server's next child) is not followed: its copy's record state is stale,
 * and the peer fails the connection.
 *
 * The kernel objects a fork shares (epoll instances, sockets, file descriptions) are changed
 * from a child only on the application's own request, never for a registration or a setting it
 * did not make (see epoll.h for the registrations copied into the child).
 *
 * exec: see inherit.h (an established session follows into the new program, or is reset).
 *
 * vfork (and anything else that runs in the parent's memory before exec): the child must not
 * change the parent's state, so mutating hooks pass straight to libc there. Detected by
 * comparing the pid we cached with the kernel's.
 */
#ifndef MT_CORE_PROCESS_H
#define MT_CORE_PROCESS_H

#include <stdbool.h>
#include <sys/types.h>

/* Registers the fork handlers and caches the pid; idempotent. */
void mt_process_init(void);

/*
 * This process's pid, cached at initialisation and in each fork child: asked without a system
 * call, which a sandboxed child may not make.
 */
pid_t mt_process_pid(void);

/* True in a child that shares its parent's memory (vfork): leave every table alone. */
bool mt_process_is_vfork_child(void);

#endif
