/*
 * Hooks of the calls that end or copy a descriptor: close, close_range, closefrom, dup, dup2,
 * dup3, fcntl, fcntl64 (F_DUPFD, F_SETFD, F_GETFD, F_SETFL) and ioctl (FIONREAD, FIOCLEX,
 * FIONCLEX, FIONBIO).
 *
 * Owns keeping the table in step with the process's descriptors: a connection is forgotten
 * while its fd is still open (its epoll registrations can then still be removed), and a copy of
 * a connection's fd is the same connection. Leaves every table alone in a vfork child, which
 * shares its parent's memory (core/process.h). Must never let the bookkeeping change the errno
 * of the call the application made.
 */
#include "hook.h"

#include <fcntl.h>
#if __has_include(<linux/close_range.h>)
#include <linux/close_range.h>
#endif
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>

/* The kernel's value (include/uapi/linux/close_range.h), for a C library without the kernel's
 * headers (musl-gcc). */
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#include "../core/conn.h"
#include "../core/epoll.h"
#include "../core/inherit.h"
#include "../core/process.h"
#include "../core/table.h"

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
    MT_PRESERVING_ERRNO({
        mt_epoll_forget_fd(fd);
        struct mt_conn *conn = mt_table_remove(fd);
        if (conn != NULL)
            mt_conn_close(conn, fd);
    });
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
    MT_PRESERVING_ERRNO({
        struct mt_conn *conn = mt_table_acquire(fd);
        if (conn != NULL) {
            (void)mt_conn_add_alias(conn, copy);
            mt_conn_release(conn);
        }
    });
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
    MT_PRESERVING_ERRNO({
        if (fd != target && real_fcntl(fd, F_GETFD) != -1 && !in_vfork_child())
            forget(target);
    });
}

MT_EXPORT int dup2(int fd, int target)
{
    mt_real_init();
    before_replacing(fd, target);
    int copy = real_dup2(fd, target);
    alias_if_ours(fd, copy);
    return copy;
}

MT_EXPORT int dup3(int fd, int target, int flags)
{
    mt_real_init();
    before_replacing(fd, target);
    int copy = real_dup3(fd, target, flags);
    alias_if_ours(fd, copy);
    return copy;
}

/* O_NONBLOCK changed on fd (F_SETFL, FIONBIO): a connection keeps what it was told (conn.h). */
static void note_nonblocking(int fd, bool nonblocking)
{
    MT_PRESERVING_ERRNO({
        struct mt_conn *conn = mt_table_acquire(fd);
        if (conn != NULL) {
            mt_conn_note_nonblocking(conn, nonblocking);
            mt_conn_release(conn);
        }
    });
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
    else if (command == F_SETFL && result == 0)
        note_nonblocking(fd, ((int)(intptr_t)argument & O_NONBLOCK) != 0);
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

#ifdef __GLIBC__
MT_EXPORT int fcntl64(int fd, int command, ...)
{
    mt_real_init();
    va_list arguments;
    va_start(arguments, command);
    void *argument = va_arg(arguments, void *);
    va_end(arguments);
    return fcntl_common(real_fcntl64, fd, command, argument);
}
#endif

MT_EXPORT int ioctl(int fd, MT_IOCTL_REQUEST request, ...)
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
    int result = real_ioctl(fd, request, argument);
    if (request == FIONBIO && result == 0 && argument != NULL) {
        int nonblocking = 0;
        memcpy(&nonblocking, argument, sizeof(nonblocking));
        note_nonblocking(fd, nonblocking != 0);
    }
    return result;
}
