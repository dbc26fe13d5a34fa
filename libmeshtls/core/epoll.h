/*
 * epoll for intercepted sockets: readiness the application can act on, its epoll_data untouched.
 *
 * Every fd registered through our epoll_ctl is registered with the kernel under a record of ours
 * ({fd, the app's events, the app's data}); events coming back are translated through the record,
 * so a pointer the app stored in epoll_data (nginx does) is returned as it was, and an fd that
 * became ours after registration (socket → EPOLL_CTL_ADD → connect) is handled like any other.
 *
 * For meshed connections the kernel is asked for what the connection needs (while handshaking,
 * what TLS wants; once established, what the app asked for, plus EPOLLOUT while a record waits to
 * be flushed), and events are synthesised for what the kernel cannot see: decrypted bytes
 * buffered in TLS (EPOLLIN, once per new data under EPOLLET), a handshake that completed (the
 * EPOLLOUT a connecting client waits for) or failed (EPOLLERR). EPOLLONESHOT is emulated: a
 * record reports once, then stays quiet until the app re-arms it with EPOLL_CTL_MOD.
 *
 * Records are type-stable (recycled, never freed) because a kernel event may still carry one after
 * another thread deleted it; such a stale event is recognised by its generation and dropped.
 * close() of an fd removes its registrations first (Linux would keep them while a dup of the fd
 * lives; libmeshtls does not, so that no record outlives the connection it describes).
 *
 * fork: the child shares its parent's epoll instances in the kernel, and every registration in
 * them is the parent's. The child never changes one on its own initiative: closing the fd (close,
 * close_range, closefrom, dup2 over it) forgets the child's record and leaves the kernel's
 * registration to the parent, and what a meshed connection wants is not re-registered from the
 * child. Only the application's own epoll_ctl reaches them, as without libmeshtls.
 */
#ifndef MT_CORE_EPOLL_H
#define MT_CORE_EPOLL_H

#include <signal.h>
#include <stdbool.h>
#include <sys/epoll.h>

/* Called after the real epoll_create/epoll_create1 returned epfd. */
void mt_epoll_created(int epfd);

int mt_epoll_ctl(int epfd, int operation, int fd, struct epoll_event *event);

/* epoll_wait/epoll_pwait semantics; timeout_ms < 0 waits forever. */
int mt_epoll_wait(int epfd, struct epoll_event *events, int capacity, int timeout_ms,
                  const sigset_t *mask);

/* True when epfd was created through our hooks (else the call goes straight to libc). */
bool mt_epoll_is_ours(int epfd);

/* A meshed connection on fd changed in a way its pollers must look at (see conn.c). */
void mt_epoll_notify(int fd);

/* fd is being closed: drop its registrations. epfd itself being closed: drop the instance. */
void mt_epoll_forget_fd(int fd);

/* Every fd in [first, last] is being closed (close_range, closefrom). */
void mt_epoll_forget_range(unsigned first, unsigned last);

/* In a fork child: reinitialise the locks another thread may have held at fork time, and mark
 * every registration the parent's (inherited: never changed in the kernel from this process). */
void mt_epoll_after_fork_child(void);

#endif
