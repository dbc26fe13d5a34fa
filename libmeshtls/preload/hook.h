/*
 * What every file of preload/ includes first: the compilation environment of a hook.
 *
 * The hooks are the libc entry points libmeshtls interposes (the list: hooks.def), in files named
 * for what they hook: sockets.c, transfer.c, descriptors.c, waiting.c, exec.c. Each hook is a few
 * lines: ask the table whether the fd is ours; if not, call the real function with the arguments
 * untouched (errno untouched too); if so, call the core. No decision is taken in preload/: which
 * sockets become ours is decided in core/intercept.c, how they behave in core/conn.c. A hook
 * calls mt_real_init() before anything else, and in any case before it hands a call to core
 * (core reaches libc through util/sys.c, which the resolution sets up).
 *
 * Hooks that change the table (close, dup*, F_DUPFD, close_range, closefrom) leave it alone in a
 * vfork child, which shares the parent's memory (core/process.h).
 */
#ifndef MT_PRELOAD_HOOK_H
#define MT_PRELOAD_HOOK_H

/* fcntl/fcntl64 and sendfile/sendfile64 are distinct symbols, each to be hooked under its own
 * name; with 64-bit file offsets requested, glibc's headers would rename the first to the second.
 */
#undef _FILE_OFFSET_BITS
/* Under _FORTIFY_SOURCE glibc's headers define read, recv, poll… as inline wrappers of the same
 * names as the hooks, which then no longer compile. The hooks are the real functions: the
 * __*_chk ones are hooked separately, and the calls they pass on are checked by glibc itself. */
#undef _FORTIFY_SOURCE

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include "../util/export.h"
#include "../util/sys.h"
#include "real.h"

/*
 * The address parameters of connect, accept, recvfrom…: glibc declares them as transparent unions
 * (__SOCKADDR_ARG) under _GNU_SOURCE, musl as plain pointers; the hooks use the same types as
 * libc's declarations, and MT_SOCKADDR gives the pointer.
 */
#ifdef __GLIBC__
#define MT_SOCKADDR_ARG __SOCKADDR_ARG
#define MT_CONST_SOCKADDR_ARG __CONST_SOCKADDR_ARG
#define MT_SOCKADDR(argument) ((argument).__sockaddr__)
#else
#define MT_SOCKADDR_ARG struct sockaddr *restrict
#define MT_CONST_SOCKADDR_ARG const struct sockaddr *
#define MT_SOCKADDR(argument) (argument)
#endif

#ifdef __GLIBC__
/* Fortified entry points: glibc declares them only under _FORTIFY_SOURCE. */
ssize_t __read_chk(int fd, void *buffer, size_t length, size_t buffer_length);
ssize_t __recv_chk(int fd, void *buffer, size_t length, size_t buffer_length, int flags);
ssize_t __recvfrom_chk(int fd, void *buffer, size_t length, size_t buffer_length, int flags,
                       struct sockaddr *address, socklen_t *address_length);
int __poll_chk(struct pollfd *fds, nfds_t count, int timeout_ms, size_t fds_length);
int __ppoll_chk(struct pollfd *fds, nfds_t count, const struct timespec *timeout,
                const sigset_t *mask, size_t fds_length);
void __chk_fail(void) __attribute__((noreturn));
#else
/* musl's headers rename sendfile64 to sendfile under _GNU_SOURCE, but its library still defines
 * both symbols, and a program built against an older musl calls sendfile64 by name. */
#undef sendfile64
ssize_t sendfile64(int out_fd, int in_fd, off_t *offset, size_t count);
/* musl (1.2.3) has no epoll_pwait2, close_range or closefrom: the hooks stand for the system
 * calls (hooks.def). */
int close_range(unsigned int first, unsigned int last, int flags);
void closefrom(int lowest);
int epoll_pwait2(int epfd, struct epoll_event *events, int capacity, const struct timespec *timeout,
                 const sigset_t *mask);
#endif

#endif
