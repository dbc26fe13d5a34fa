/*
 * Processes: what fork, vfork and exec mean for intercepted connections.
 *
 * fork: parent and child each hold a copy of every connection, with the same TLS keys and
 * sequence numbers. Only one of them may carry a connection's records at a time (two writers
 * would reuse nonces): both copies are marked shared, and the record state follows the stream
 * from process to process through a slot of shared memory made before the fork (relay.h). The
 * first read or write in a process claims the slot, importing the state another process gave
 * back when it is newer than its own copy; the owner gives its state back at exit() and at its
 * last close. A privilege-separated server's monitor, sandboxed pre-authentication child and
 * post-authentication child thus carry one stream in turn (OpenSSH's sshd). A process that
 * reads or writes while another live one owns the slot fails closed there (one log line naming
 * both pids; the owner goes on); one that finds the owner ended without giving the state back
 * (_exit, a signal) resets the stream. close_notify comes only from the process holding the
 * current state: at its last close, or at shutdown(SHUT_WR) (a free slot is claimed for it,
 * importing first); a stale copy (its state elsewhere, or not relayed because it was not
 * established at the fork, and not used since) sends nothing at close or shutdown, so a
 * postmaster closing its copy never ends its backend's session, nor http.server's shutdown of
 * its copy the CGI script's.
 *
 * The kernel objects a fork shares (epoll instances, sockets, file descriptions) are changed
 * from a child only on the application's own request, never for a registration or a setting it
 * did not make (see epoll.h for the registrations copied into the child).
 *
 * exec: see inherit.h (an established session follows into the new program, or is reset).
 *
 * vfork (and anything else that runs in the parent's memory before exec): the child must not
 * change the parent's state, so mutating hooks pass straight to libc there, and its exec hook
 * allocates nothing (inherit.h, vfork_fds.h); the one change it makes is deliberate: a session it
 * hands over is marked given away in the parent's copy. Detected by comparing the pid we cached
 * with the kernel's.
 */
#ifndef MT_CORE_PROCESS_H
#define MT_CORE_PROCESS_H

#include <stdbool.h>
#include <sys/types.h>

/* Registers the fork handlers and caches the pid; idempotent. */
void mt_process_init(void);

/*
 * A child made by the fork or clone system call, whose fork handlers never ran, resets its state
 * now as a fork child does (process.c says how it is told apart from a vfork child). Cheap: one
 * byte read. The table calls it at every lookup, so that no hook of such a child acts on state
 * that is its parent's.
 */
void mt_process_notice_unseen_fork(void);

/*
 * This process's pid, cached at initialisation and in each fork child: asked without a system
 * call, which a sandboxed child may not make.
 */
pid_t mt_process_pid(void);

/* True in a child that shares its parent's memory (vfork): leave every table alone. */
bool mt_process_is_vfork_child(void);

#endif
