/*
 * The libc entry points libmeshtls interposes (the list: core/hooks.def).
 *
 * Each hook is a few lines: ask the table whether the fd is ours; if not, call the real function
 * with the arguments untouched (errno untouched too); if so, call the core. No decision is taken
 * here: which sockets become ours is decided in core/intercept.c, how they behave in core/conn.c.
 *
 * Hooks that change the table (close, dup*, F_DUPFD, close_range, closefrom) leave it alone in a
 * vfork child, which shares the parent's memory (core/process.h).
 */

/* fcntl/fcntl64 and sendfile/sendfile64 are distinct symbols, each to be hooked under its own
 * name; with 64-bit file offsets requested, glibc's headers would rename the first to the second.
 */
#undef _FILE_OFFSET_BITS
/* Under _FORTIFY_SOURCE glibc's headers define read, recv, poll… as inline wrappers of the same
 * names as the hooks below, which then no longer compile. The hooks are the real functions: the
 * __*_chk ones are hooked separately, and the calls they pass on are checked by glibc itself. */
#undef _FORTIFY_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/close_range.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../core/conn.h"
#include "../core/epoll.h"
#include "../core/inherit.h"
#include "../core/intercept.h"
#include "../core/process.h"
#include "../core/readiness.h"
#include "../core/real.h"
#include "../core/runtime.h"
#include "../core/table.h"
#include "../util/export.h"
#include "../util/sys.h"

/* Fortified entry points: glibc declares them only under _FORTIFY_SOURCE. */
ssize_t __read_chk(int fd, void *buffer, size_t length, size_t buffer_length);
ssize_t __recv_chk(int fd, void *buffer, size_t length, size_t buffer_length, int flags);
ssize_t __recvfrom_chk(int fd, void *buffer, size_t length, size_t buffer_length, int flags,
                       struct sockaddr *address, socklen_t *address_length);
int __poll_chk(struct pollfd *fds, nfds_t count, int timeout_ms, size_t fds_length);
int __ppoll_chk(struct pollfd *fds, nfds_t count, const struct timespec *timeout,
                const sigset_t *mask, size_t fds_length);
void __chk_fail(void) __attribute__((noreturn));

/* Releases the caller's reference without letting cleanup disturb the errno being returned. */
static ssize_t finish(struct mt_conn *conn, ssize_t result)
{
    int saved = errno;
    mt_conn_release(conn);
    errno = saved;
    return result;
}

/* MSG_WAITALL: keep reading until the buffer is full, EOF, or an error (as the kernel does). */
static ssize_t receive(struct mt_conn *conn, void *buffer, size_t length, int flags)
{
    if ((flags & MSG_WAITALL) == 0 || (flags & (MSG_PEEK | MSG_DONTWAIT)) != 0)
        return mt_conn_recv(conn, buffer, length, flags & ~MSG_WAITALL);
    size_t total = 0;
    while (total < length) {
        ssize_t n =
            mt_conn_recv(conn, (char *)buffer + total, length - total, flags & ~MSG_WAITALL);
        if (n < 0)
            return total > 0 ? (ssize_t)total : -1;
        if (n == 0)
            break;
        total += (size_t)n;
    }
    return (ssize_t)total;
}

static int timeout_to_ms(const struct timespec *timeout)
{
    if (timeout == NULL)
        return -1;
    long long ms = (long long)timeout->tv_sec * 1000 + (timeout->tv_nsec + 999999) / 1000000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/*
 * glibc declares the address parameters as transparent unions (__SOCKADDR_ARG) under _GNU_SOURCE;
 * the hooks use the same types so their definitions match libc's declarations exactly.
 */
MT_EXPORT int connect(int fd, __CONST_SOCKADDR_ARG address, socklen_t length)
{
    return mt_intercept_connect(fd, address.__sockaddr__, length, MT_INTERCEPT_BY_POLICY);
}

MT_EXPORT int accept(int fd, __SOCKADDR_ARG address, socklen_t *length)
{
    return mt_intercept_accept(fd, address.__sockaddr__, length, MT_INTERCEPT_BY_POLICY);
}

MT_EXPORT int accept4(int fd, __SOCKADDR_ARG address, socklen_t *length, int flags)
{
    return mt_intercept_accept4(fd, address.__sockaddr__, length, flags, MT_INTERCEPT_BY_POLICY);
}

MT_EXPORT ssize_t read(int fd, void *buffer, size_t length)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        return real_read(fd, buffer, length);
    }
    return finish(conn, mt_conn_recv(conn, buffer, length, 0));
}

MT_EXPORT ssize_t __read_chk(int fd, void *buffer, size_t length, size_t buffer_length)
{
    if (length > buffer_length)
        __chk_fail();
    return read(fd, buffer, length);
}

MT_EXPORT ssize_t write(int fd, const void *buffer, size_t length)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        return real_write(fd, buffer, length);
    }
    return finish(conn, mt_conn_send(conn, buffer, length, 0));
}

MT_EXPORT ssize_t readv(int fd, const struct iovec *vector, int count)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        return real_readv(fd, vector, count);
    }
    return finish(conn, mt_conn_recv_vector(conn, vector, count, 0));
}

MT_EXPORT ssize_t writev(int fd, const struct iovec *vector, int count)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        return real_writev(fd, vector, count);
    }
    return finish(conn, mt_conn_send_vector(conn, vector, count, 0));
}

MT_EXPORT ssize_t recv(int fd, void *buffer, size_t length, int flags)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        return real_recv(fd, buffer, length, flags);
    }
    return finish(conn, receive(conn, buffer, length, flags));
}

MT_EXPORT ssize_t __recv_chk(int fd, void *buffer, size_t length, size_t buffer_length, int flags)
{
    if (length > buffer_length)
        __chk_fail();
    return recv(fd, buffer, length, flags);
}

MT_EXPORT ssize_t send(int fd, const void *buffer, size_t length, int flags)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        return real_send(fd, buffer, length, flags);
    }
    return finish(conn, mt_conn_send(conn, buffer, length, flags));
}

MT_EXPORT ssize_t recvfrom(int fd, void *buffer, size_t length, int flags, __SOCKADDR_ARG address,
                           socklen_t *address_length)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        return real_recvfrom(fd, buffer, length, flags, address.__sockaddr__, address_length);
    }
    /* A connected TCP socket reports no source address (Linux sets the length to 0). */
    if (address.__sockaddr__ != NULL && address_length != NULL)
        *address_length = 0;
    return finish(conn, receive(conn, buffer, length, flags));
}

MT_EXPORT ssize_t __recvfrom_chk(int fd, void *buffer, size_t length, size_t buffer_length,
                                 int flags, struct sockaddr *address, socklen_t *address_length)
{
    if (length > buffer_length)
        __chk_fail();
    return recvfrom(fd, buffer, length, flags, address, address_length);
}

MT_EXPORT ssize_t sendto(int fd, const void *buffer, size_t length, int flags,
                         __CONST_SOCKADDR_ARG address, socklen_t address_length)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        return real_sendto(fd, buffer, length, flags, address.__sockaddr__, address_length);
    }
    return finish(conn, mt_conn_send(conn, buffer, length, flags));
}

MT_EXPORT ssize_t recvmsg(int fd, struct msghdr *message, int flags)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        return real_recvmsg(fd, message, flags);
    }
    message->msg_namelen = 0;
    message->msg_controllen = 0;
    message->msg_flags = 0;
    return finish(conn, mt_conn_recv_vector(conn, message->msg_iov, (int)message->msg_iovlen,
                                            flags & ~MSG_WAITALL));
}

MT_EXPORT ssize_t sendmsg(int fd, const struct msghdr *message, int flags)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        if (message != NULL && message->msg_controllen > 0 &&
            mt_inherit_message_passes_connection(message)) {
            errno = EPERM;
            return -1;
        }
        return real_sendmsg(fd, message, flags);
    }
    return finish(conn,
                  mt_conn_send_vector(conn, message->msg_iov, (int)message->msg_iovlen, flags));
}

/*
 * sendmmsg: a meshed connection is a byte stream, so its messages go through TLS one after the
 * other as sendmsg sends each; the count of messages sent is returned, as the kernel does, and
 * the first that cannot be sent at all ends the call (its error when it is the first).
 */
MT_EXPORT int sendmmsg(int fd, struct mmsghdr *vector, unsigned int count, int flags)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        for (unsigned int i = 0; vector != NULL && i < count; i++)
            if (vector[i].msg_hdr.msg_controllen > 0 &&
                mt_inherit_message_passes_connection(&vector[i].msg_hdr)) {
                errno = EPERM;
                return -1;
            }
        return real_sendmmsg(fd, vector, count, flags);
    }
    unsigned int sent = 0;
    int saved = errno;
    for (; sent < count && sent <= INT_MAX - 1; sent++) {
        ssize_t n = mt_conn_send_vector(conn, vector[sent].msg_hdr.msg_iov,
                                        (int)vector[sent].msg_hdr.msg_iovlen, flags);
        if (n < 0) {
            if (sent > 0)
                errno = saved;
            break;
        }
        vector[sent].msg_len = (unsigned int)n;
    }
    return (int)finish(conn, sent > 0 ? (ssize_t)sent : -1);
}

MT_EXPORT int poll(struct pollfd *fds, nfds_t count, int timeout_ms)
{
    mt_real_init();
    if (!mt_readiness_has_ours(fds, count))
        return real_poll(fds, count, timeout_ms);
    return mt_readiness_poll(fds, count, timeout_ms, NULL);
}

MT_EXPORT int __poll_chk(struct pollfd *fds, nfds_t count, int timeout_ms, size_t fds_length)
{
    if (fds_length / sizeof(*fds) < count)
        __chk_fail();
    return poll(fds, count, timeout_ms);
}

MT_EXPORT int ppoll(struct pollfd *fds, nfds_t count, const struct timespec *timeout,
                    const sigset_t *mask)
{
    mt_real_init();
    if (!mt_readiness_has_ours(fds, count))
        return real_ppoll(fds, count, timeout, mask);
    return mt_readiness_poll(fds, count, timeout_to_ms(timeout), mask);
}

MT_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t count, const struct timespec *timeout,
                          const sigset_t *mask, size_t fds_length)
{
    if (fds_length / sizeof(*fds) < count)
        __chk_fail();
    return ppoll(fds, count, timeout, mask);
}

MT_EXPORT int shutdown(int fd, int how)
{
    mt_real_init();
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn != NULL) {
        int saved = errno; /* as for close(): only the kernel's own failure sets errno */
        (void)mt_conn_shutdown(conn, how);
        mt_conn_release(conn);
        errno = saved;
    }
    return real_shutdown(fd, how);
}

static bool in_vfork_child(void)
{
    mt_process_init();
    return mt_process_is_vfork_child();
}

/* fd is about to be closed (or replaced by dup2): release what we hold for it, while it is still
 * open so that its epoll registrations can be removed from the kernel. errno is left as it was:
 * a close() that succeeds must not carry what sending close_notify ran into (ECONNRESET from a
 * peer that is gone), and programs read errno after calls that succeeded (sockperf's server
 * dropped the next connection on the same fd for it). */
static void forget(int fd)
{
    int saved = errno;
    mt_epoll_forget_fd(fd);
    struct mt_conn *conn = mt_table_remove(fd);
    if (conn != NULL)
        mt_conn_close(conn, fd);
    errno = saved;
}

static void forget_visit(int fd, void *argument)
{
    (void)argument;
    forget(fd);
}

/* copy is a new name for fd: if fd is ours, so is copy. */
static void alias_if_ours(int fd, int copy)
{
    if (copy < 0 || copy == fd)
        return;
    if (in_vfork_child()) {
        mt_inherit_hold_copy(fd, copy);
        return;
    }
    int saved = errno;
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn != NULL) {
        (void)mt_conn_add_alias(conn, copy);
        mt_conn_release(conn);
    }
    errno = saved;
}

MT_EXPORT int close(int fd)
{
    mt_real_init();
    if (!in_vfork_child())
        forget(fd);
    return real_close(fd);
}

MT_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
    mt_real_init();
    if (!(flags & CLOSE_RANGE_CLOEXEC) && first <= last && !in_vfork_child()) {
        mt_table_for_each_in_range(first, last, forget_visit, NULL);
        mt_epoll_forget_range(first, last);
    }
    return real_close_range(first, last, flags);
}

MT_EXPORT void closefrom(int lowest)
{
    mt_real_init();
    if (lowest >= 0 && !in_vfork_child()) {
        mt_table_for_each_in_range((unsigned)lowest, ~0u, forget_visit, NULL);
        mt_epoll_forget_range((unsigned)lowest, ~0u);
    }
    real_closefrom(lowest);
}

MT_EXPORT int dup(int fd)
{
    mt_real_init();
    int copy = real_dup(fd);
    alias_if_ours(fd, copy);
    return copy;
}

/* dup2/dup3 close target first, unless fd is invalid (then nothing happens: EBADF). */
static void before_replacing(int fd, int target)
{
    if (fd != target && real_fcntl(fd, F_GETFD) != -1 && !in_vfork_child())
        forget(target);
}

MT_EXPORT int dup2(int fd, int target)
{
    mt_real_init();
    int saved = errno;
    before_replacing(fd, target);
    errno = saved;
    int copy = real_dup2(fd, target);
    alias_if_ours(fd, copy);
    return copy;
}

MT_EXPORT int dup3(int fd, int target, int flags)
{
    mt_real_init();
    int saved = errno;
    before_replacing(fd, target);
    errno = saved;
    int copy = real_dup3(fd, target, flags);
    alias_if_ours(fd, copy);
    return copy;
}

/* Every fcntl command takes at most one argument, an int or a pointer; glibc's own wrapper
 * forwards it the same way, as one machine word. */
static int fcntl_common(int (*real)(int, int, ...), int fd, int command, void *argument)
{
    if (command == F_SETFD)
        argument =
            (void *)(intptr_t)mt_inherit_descriptor_flags_to_set(fd, (int)(intptr_t)argument);
    int result = real(fd, command, argument);
    if (command == F_DUPFD || command == F_DUPFD_CLOEXEC)
        alias_if_ours(fd, result);
    else if (command == F_GETFD)
        result = mt_inherit_descriptor_flags_seen(fd, result);
    return result;
}

MT_EXPORT int fcntl(int fd, int command, ...)
{
    mt_real_init();
    va_list arguments;
    va_start(arguments, command);
    void *argument = va_arg(arguments, void *);
    va_end(arguments);
    return fcntl_common(real_fcntl, fd, command, argument);
}

MT_EXPORT int fcntl64(int fd, int command, ...)
{
    mt_real_init();
    va_list arguments;
    va_start(arguments, command);
    void *argument = va_arg(arguments, void *);
    va_end(arguments);
    return fcntl_common(real_fcntl64, fd, command, argument);
}

MT_EXPORT int ioctl(int fd, unsigned long request, ...)
{
    mt_real_init();
    va_list arguments;
    va_start(arguments, request);
    void *argument = va_arg(arguments, void *);
    va_end(arguments);
    /* A session that cannot cross exec stays close-on-exec (core/inherit.h). */
    if ((request == FIONCLEX || request == FIOCLEX) && mt_inherit_holds(fd, request == FIONCLEX))
        return request == FIONCLEX ? 0 : real_ioctl(fd, request, argument);
    if (request == FIONREAD && argument != NULL) {
        struct mt_conn *conn = mt_table_acquire(fd);
        if (conn != NULL) {
            /* The caller's int may be unaligned (CPython's fcntl.ioctl passes a char buffer). */
            int readable = mt_conn_readable_bytes(conn);
            memcpy(argument, &readable, sizeof(readable));
            mt_conn_release(conn);
            return 0;
        }
    }
    return real_ioctl(fd, request, argument);
}

MT_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    struct mt_conn *conn = mt_table_acquire(out_fd);
    if (conn == NULL) {
        mt_real_init();
        return real_sendfile(out_fd, in_fd, offset, count);
    }
    return finish(conn, mt_conn_send_from_fd(conn, in_fd, offset, count, 0));
}

MT_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off64_t *offset, size_t count)
{
    struct mt_conn *conn = mt_table_acquire(out_fd);
    if (conn == NULL) {
        mt_real_init();
        return real_sendfile64(out_fd, in_fd, offset, count);
    }
    return finish(conn, mt_conn_send_from_fd(conn, in_fd, (off_t *)offset, count, 0));
}

MT_EXPORT ssize_t splice(int in_fd, loff_t *in_offset, int out_fd, loff_t *out_offset,
                         size_t length, unsigned int flags)
{
    struct mt_conn *out = mt_table_acquire(out_fd);
    struct mt_conn *in = out == NULL ? mt_table_acquire(in_fd) : NULL;
    if (out == NULL && in == NULL) {
        mt_real_init();
        return real_splice(in_fd, in_offset, out_fd, out_offset, length, flags);
    }
    int send_flags = (flags & SPLICE_F_NONBLOCK) ? MSG_DONTWAIT : 0;
    if (out != NULL)
        return finish(out,
                      mt_conn_send_from_fd(out, in_fd, (off_t *)in_offset, length, send_flags));
    return finish(in, mt_conn_receive_to_fd(in, out_fd, (off_t *)out_offset, length, send_flags));
}

MT_EXPORT int getsockopt(int fd, int level, int name, void *value, socklen_t *length)
{
    mt_real_init();
    if (level == SOL_SOCKET && name == SO_ERROR && value != NULL && length != NULL &&
        *length >= sizeof(int)) {
        struct mt_conn *conn = mt_table_acquire(fd);
        if (conn != NULL) {
            int error = mt_conn_socket_error(conn);
            mt_conn_release(conn);
            if (error != 0) {
                *(int *)value = error;
                *length = sizeof(int);
                return 0;
            }
        }
    }
    return real_getsockopt(fd, level, name, value, length);
}

static int timeval_to_ms(const struct timeval *timeout)
{
    if (timeout == NULL)
        return -1;
    long long ms = (long long)timeout->tv_sec * 1000 + (timeout->tv_usec + 999) / 1000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

MT_EXPORT int select(int count, fd_set *readable, fd_set *writable, fd_set *exceptional,
                     struct timeval *timeout)
{
    mt_real_init();
    if (!mt_readiness_select_has_ours(count, readable, writable, exceptional))
        return real_select(count, readable, writable, exceptional, timeout);
    long long start = mt_sys_now_ms();
    int timeout_ms = timeval_to_ms(timeout);
    int result = mt_readiness_select(count, readable, writable, exceptional, timeout_ms, NULL);
    /* Linux's select leaves the time not slept in *timeout. */
    if (timeout != NULL && timeout_ms >= 0) {
        long long left = timeout_ms - (mt_sys_now_ms() - start);
        if (left < 0)
            left = 0;
        timeout->tv_sec = (time_t)(left / 1000);
        timeout->tv_usec = (suseconds_t)(left % 1000) * 1000;
    }
    return result;
}

MT_EXPORT int pselect(int count, fd_set *readable, fd_set *writable, fd_set *exceptional,
                      const struct timespec *timeout, const sigset_t *mask)
{
    mt_real_init();
    if (!mt_readiness_select_has_ours(count, readable, writable, exceptional))
        return real_pselect(count, readable, writable, exceptional, timeout, mask);
    return mt_readiness_select(count, readable, writable, exceptional, timeout_to_ms(timeout),
                               mask);
}

MT_EXPORT int epoll_create(int size)
{
    mt_real_init();
    int epfd = real_epoll_create(size);
    if (epfd >= 0)
        mt_epoll_created(epfd);
    return epfd;
}

MT_EXPORT int epoll_create1(int flags)
{
    mt_real_init();
    int epfd = real_epoll_create1(flags);
    if (epfd >= 0)
        mt_epoll_created(epfd);
    return epfd;
}

MT_EXPORT int epoll_ctl(int epfd, int operation, int fd, struct epoll_event *event)
{
    mt_real_init();
    return mt_epoll_ctl(epfd, operation, fd, event);
}

MT_EXPORT int epoll_wait(int epfd, struct epoll_event *events, int capacity, int timeout_ms)
{
    mt_real_init();
    if (!mt_epoll_is_ours(epfd))
        return real_epoll_wait(epfd, events, capacity, timeout_ms);
    return mt_epoll_wait(epfd, events, capacity, timeout_ms, NULL);
}

MT_EXPORT int epoll_pwait(int epfd, struct epoll_event *events, int capacity, int timeout_ms,
                          const sigset_t *mask)
{
    mt_real_init();
    if (!mt_epoll_is_ours(epfd))
        return real_epoll_pwait(epfd, events, capacity, timeout_ms, mask);
    return mt_epoll_wait(epfd, events, capacity, timeout_ms, mask);
}

MT_EXPORT int epoll_pwait2(int epfd, struct epoll_event *events, int capacity,
                           const struct timespec *timeout, const sigset_t *mask)
{
    mt_real_init();
    if (!mt_epoll_is_ours(epfd))
        return real_epoll_pwait2(epfd, events, capacity, timeout, mask);
    return mt_epoll_wait(epfd, events, capacity, timeout_to_ms(timeout), mask);
}

/* ---- exec: hand over connections not yet started (core/inherit.h) ------------------------- */

extern char **environ;

/*
 * At load, while the environment is still the one the program was started with: programs such
 * as nginx replace their environment before their first connection, and a configuration looked
 * up only then would silently become the built-in defaults. Then take over the connections a
 * parent handed over, if any.
 */
__attribute__((constructor)) static void load_early(void)
{
    mt_real_init();
    (void)mt_runtime_config();
    if (getenv("MESHTLS_INHERIT") != NULL)
        mt_inherit_adopt();
}

MT_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    mt_real_init();
    mt_inherit_check_program(path, false);
    char **environment = mt_inherit_environment(path, envp);
    int result = real_execve(path, argv, environment);
    int saved = errno;
    mt_inherit_environment_free(environment, envp);
    errno = saved;
    return result;
}

MT_EXPORT int execv(const char *path, char *const argv[])
{
    return execve(path, argv, environ);
}

MT_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    mt_real_init();
    mt_inherit_check_program(file, true);
    char **environment = mt_inherit_environment(file, envp);
    int result = real_execvpe(file, argv, environment);
    int saved = errno;
    mt_inherit_environment_free(environment, envp);
    errno = saved;
    return result;
}

MT_EXPORT int execvp(const char *file, char *const argv[])
{
    return execvpe(file, argv, environ);
}

MT_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    mt_real_init();
    char **environment = mt_inherit_environment("(fexecve)", envp);
    int result = real_fexecve(fd, argv, environment);
    int saved = errno;
    mt_inherit_environment_free(environment, envp);
    errno = saved;
    return result;
}

/* execl and friends: the variadic argument list as an argv array (with envp for execle). */
static char **gather_arguments(const char *first, va_list arguments, char *const **envp)
{
    size_t capacity = 16;
    size_t count = 0;
    char **argv = malloc(capacity * sizeof(char *));
    const char *argument = first;
    while (argv != NULL) {
        if (count + 1 >= capacity) {
            char **grown = realloc(argv, (capacity *= 2) * sizeof(char *));
            if (grown == NULL) {
                free(argv);
                return NULL;
            }
            argv = grown;
        }
        argv[count++] = (char *)argument;
        if (argument == NULL)
            break;
        argument = va_arg(arguments, const char *);
    }
    if (envp != NULL)
        *envp = va_arg(arguments, char *const *);
    return argv;
}

/* Runs exec with a gathered argv, which it frees again if exec returns (failed). */
static int exec_gathered(int (*exec)(const char *, char *const[], char *const[]),
                         const char *target, char **argv, char *const envp[])
{
    if (argv == NULL) {
        errno = ENOMEM;
        return -1;
    }
    int result = exec(target, argv, envp);
    int saved = errno;
    free(argv);
    errno = saved;
    return result;
}

MT_EXPORT int execl(const char *path, const char *argument, ...)
{
    va_list arguments;
    va_start(arguments, argument);
    char **argv = gather_arguments(argument, arguments, NULL);
    va_end(arguments);
    return exec_gathered(execve, path, argv, environ);
}

MT_EXPORT int execlp(const char *file, const char *argument, ...)
{
    va_list arguments;
    va_start(arguments, argument);
    char **argv = gather_arguments(argument, arguments, NULL);
    va_end(arguments);
    return exec_gathered(execvpe, file, argv, environ);
}

MT_EXPORT int execle(const char *path, const char *argument, ...)
{
    char *const *envp = NULL;
    va_list arguments;
    va_start(arguments, argument);
    char **argv = gather_arguments(argument, arguments, &envp);
    va_end(arguments);
    return exec_gathered(execve, path, argv, envp);
}

MT_EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                          const posix_spawnattr_t *attributes, char *const argv[],
                          char *const envp[])
{
    mt_real_init();
    if (!mt_inherit_spawn_allowed(actions, path))
        return EPERM;
    mt_inherit_check_program(path, false);
    char **environment = mt_inherit_environment(path, envp);
    int result = real_posix_spawn(pid, path, actions, attributes, argv, environment);
    mt_inherit_environment_free(environment, envp);
    return result;
}

MT_EXPORT int posix_spawn_file_actions_init(posix_spawn_file_actions_t *actions)
{
    mt_real_init();
    mt_inherit_spawn_actions_forget(actions);
    return real_posix_spawn_file_actions_init(actions);
}

MT_EXPORT int posix_spawn_file_actions_destroy(posix_spawn_file_actions_t *actions)
{
    mt_real_init();
    mt_inherit_spawn_actions_forget(actions);
    return real_posix_spawn_file_actions_destroy(actions);
}

MT_EXPORT int posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *actions, int fd,
                                               int target)
{
    mt_real_init();
    switch (mt_inherit_spawn_dup(actions, fd, target)) {
    case MT_INHERIT_SPAWN_CLOSE_TARGET:
        return posix_spawn_file_actions_addclose(actions, target);
    case MT_INHERIT_SPAWN_REFUSE:
        return ENOMEM;
    case MT_INHERIT_SPAWN_DUP:
    default:
        return real_posix_spawn_file_actions_adddup2(actions, fd, target);
    }
}

MT_EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                           const posix_spawnattr_t *attributes, char *const argv[],
                           char *const envp[])
{
    mt_real_init();
    if (!mt_inherit_spawn_allowed(actions, file))
        return EPERM;
    mt_inherit_check_program(file, true);
    char **environment = mt_inherit_environment(file, envp);
    int result = real_posix_spawnp(pid, file, actions, attributes, argv, environment);
    mt_inherit_environment_free(environment, envp);
    return result;
}
