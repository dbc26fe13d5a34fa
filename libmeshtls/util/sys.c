/*
 * The kernel interface (see sys.h for the two kinds of call). Owns the raw system calls and the
 * table of libc functions behind the calls made on the application's behalf. Only thin
 * wrappers: no policy, no logging, no state beyond that table.
 *
 * The test-only build libmeshtls-preload-faults.so (tests/fault/) compiles this file with
 * MT_FAULT_INJECTION, which lets tests/fault/fault.c inject EINTR, EAGAIN, short transfers and
 * resets here; production builds contain none of it.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sys.h"

#ifdef MT_FAULT_INJECTION
#include "fault_hooks.h"
#endif

/* The kernel's sigset is 8 bytes on Linux, whatever glibc's sigset_t size. */
#define KERNEL_SIGSET_SIZE 8
/* closefrom without close_range under an unlimited RLIMIT_NOFILE: the one-by-one loop needs an
 * end, and a process rarely holds descriptors past this one. */
#define CLOSEFROM_UNLIMITED_END 65536

ssize_t mt_sys_recv(int fd, void *buffer, size_t length, int flags)
{
#ifdef MT_FAULT_INJECTION
    if (mt_fault_before_transfer(fd, flags, &length, false))
        return -1;
#endif
    return syscall(SYS_recvfrom, fd, buffer, length, flags, NULL, NULL);
}

ssize_t mt_sys_send(int fd, const void *buffer, size_t length, int flags)
{
#ifdef MT_FAULT_INJECTION
    if (mt_fault_before_transfer(fd, flags, &length, true))
        return -1;
#endif
    return syscall(SYS_sendto, fd, buffer, length, flags, NULL, 0);
}

ssize_t mt_sys_recvmsg(int fd, struct msghdr *message, int flags)
{
    return syscall(SYS_recvmsg, fd, message, flags);
}

ssize_t mt_sys_sendmsg(int fd, const struct msghdr *message, int flags)
{
    return syscall(SYS_sendmsg, fd, message, flags);
}

ssize_t mt_sys_send_fd(int fd, const void *data, size_t length, int passed, int flags)
{
    if (passed < 0)
        return mt_sys_send(fd, data, length, flags);
    union {
        struct cmsghdr header;
        char bytes[CMSG_SPACE(sizeof(int))];
    } control;
    memset(&control, 0, sizeof(control));
    struct iovec vector = {(void *)data, length};
    struct msghdr message = {.msg_iov = &vector,
                             .msg_iovlen = 1,
                             .msg_control = control.bytes,
                             .msg_controllen = sizeof(control.bytes)};
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &passed, sizeof(int));
    return mt_sys_sendmsg(fd, &message, flags);
}

int mt_sys_poll(struct pollfd *fds, nfds_t count, int timeout_ms)
{
#ifdef MT_FAULT_INJECTION
    if (mt_fault_before_wait(timeout_ms))
        return -1;
#endif
    return (int)syscall(SYS_poll, fds, count, timeout_ms);
}

int mt_sys_socket(int domain, int type, int protocol)
{
    return (int)syscall(SYS_socket, domain, type, protocol);
}

int mt_sys_connect(int fd, const struct sockaddr *address, socklen_t length)
{
    return (int)syscall(SYS_connect, fd, address, length);
}

ssize_t mt_sys_write(int fd, const void *buffer, size_t length)
{
#ifdef MT_FAULT_INJECTION
    if (mt_fault_before_transfer(fd, 0, &length, true))
        return -1;
#endif
    return syscall(SYS_write, fd, buffer, length);
}

int mt_sys_ppoll(struct pollfd *fds, nfds_t count, int timeout_ms, const void *signal_mask)
{
#ifdef MT_FAULT_INJECTION
    if (mt_fault_before_wait(timeout_ms))
        return -1;
#endif
    struct timespec timeout = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000};
    return (int)syscall(SYS_ppoll, fds, count, timeout_ms < 0 ? NULL : &timeout, signal_mask,
                        KERNEL_SIGSET_SIZE);
}

int mt_sys_close(int fd)
{
    return (int)syscall(SYS_close, fd);
}

int mt_sys_getsockopt(int fd, int level, int name, void *value, socklen_t *length)
{
    return (int)syscall(SYS_getsockopt, fd, level, name, value, length);
}

int mt_sys_setsockopt(int fd, int level, int name, const void *value, socklen_t length)
{
    return (int)syscall(SYS_setsockopt, fd, level, name, value, length);
}

int mt_sys_fcntl(int fd, int command, long argument)
{
    return (int)syscall(SYS_fcntl, fd, command, argument);
}

ssize_t mt_sys_read(int fd, void *buffer, size_t length)
{
#ifdef MT_FAULT_INJECTION
    if (mt_fault_before_transfer(fd, 0, &length, false))
        return -1;
#endif
    return syscall(SYS_read, fd, buffer, length);
}

int mt_sys_dup(int fd)
{
    return (int)syscall(SYS_dup, fd);
}

int mt_sys_getsockname(int fd, struct sockaddr *address, socklen_t *length)
{
    return (int)syscall(SYS_getsockname, fd, address, length);
}

int mt_sys_getpeername(int fd, struct sockaddr *address, socklen_t *length)
{
    return (int)syscall(SYS_getpeername, fd, address, length);
}

int mt_sys_epoll_ctl(int epfd, int operation, int fd, struct epoll_event *event)
{
    return (int)syscall(SYS_epoll_ctl, epfd, operation, fd, event);
}

pid_t mt_sys_getpid(void)
{
    return (pid_t)syscall(SYS_getpid);
}

int mt_sys_ioctl(int fd, unsigned long request, void *argument)
{
    return (int)syscall(SYS_ioctl, fd, request, argument);
}

off_t mt_sys_lseek(int fd, off_t offset, int whence)
{
    return (off_t)syscall(SYS_lseek, fd, offset, whence);
}

ssize_t mt_sys_pread(int fd, void *buffer, size_t length, off_t offset)
{
    return syscall(SYS_pread64, fd, buffer, length, offset);
}

ssize_t mt_sys_pwrite(int fd, const void *buffer, size_t length, off_t offset)
{
    return syscall(SYS_pwrite64, fd, buffer, length, offset);
}

int mt_sys_raise(int signal_number)
{
    return (int)syscall(SYS_tgkill, mt_sys_getpid(), syscall(SYS_gettid), signal_number);
}

int mt_sys_pidfd_send_signal(int pidfd, int signal_number)
{
    return (int)syscall(SYS_pidfd_send_signal, pidfd, signal_number, NULL, 0);
}

/* The kernel always sets close-on-exec on a pidfd. */
int mt_sys_pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int mt_sys_close_range(unsigned int first, unsigned int last, int flags)
{
#ifdef SYS_close_range
    return (int)syscall(SYS_close_range, first, last, flags);
#else
    errno = ENOSYS;
    return -1;
#endif
}

int mt_sys_epoll_pwait2(int epfd, struct epoll_event *events, int capacity,
                        const struct timespec *timeout, const sigset_t *mask)
{
#ifdef SYS_epoll_pwait2
    return (int)syscall(SYS_epoll_pwait2, epfd, events, capacity, timeout, mask,
                        KERNEL_SIGSET_SIZE);
#else
    errno = ENOSYS;
    return -1;
#endif
}

void mt_sys_closefrom(int lowest)
{
    if (lowest < 0 || mt_sys_close_range((unsigned)lowest, ~0u, 0) == 0)
        return;
    /* A kernel before close_range (5.9): every descriptor the limit allows, one by one. */
    struct rlimit limit;
    rlim_t end = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY
                     ? limit.rlim_cur
                     : CLOSEFROM_UNLIMITED_END;
    for (rlim_t fd = (rlim_t)lowest; fd < end && fd <= INT_MAX; fd++)
        (void)mt_sys_close((int)fd);
}

/* ---- calls made on the application's behalf ------------------------------------------------ */

static int raw_connect(int fd, const struct sockaddr *address, socklen_t length)
{
    return mt_sys_connect(fd, address, length);
}

static int raw_accept(int fd, struct sockaddr *address, socklen_t *length)
{
    return (int)syscall(SYS_accept4, fd, address, length, 0);
}

static int raw_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags)
{
    return (int)syscall(SYS_accept4, fd, address, length, flags);
}

static ssize_t raw_readv(int fd, const struct iovec *vector, int count)
{
    return syscall(SYS_readv, fd, vector, count);
}

static ssize_t raw_writev(int fd, const struct iovec *vector, int count)
{
    return syscall(SYS_writev, fd, vector, count);
}

static int raw_shutdown(int fd, int how)
{
    return (int)syscall(SYS_shutdown, fd, how);
}

static int raw_poll(struct pollfd *fds, nfds_t count, int timeout_ms)
{
    return (int)syscall(SYS_poll, fds, count, timeout_ms);
}

static int raw_epoll_pwait(int epfd, struct epoll_event *events, int capacity, int timeout_ms,
                           const sigset_t *mask)
{
    return (int)syscall(SYS_epoll_pwait, epfd, events, capacity, timeout_ms, mask,
                        KERNEL_SIGSET_SIZE);
}

static const struct mt_sys_libc raw_calls = {
    .connect = raw_connect,
    .accept = raw_accept,
    .accept4 = raw_accept4,
    .read = mt_sys_read,
    .write = mt_sys_write,
    .readv = raw_readv,
    .writev = raw_writev,
    .shutdown = raw_shutdown,
    .close = mt_sys_close,
    .poll = raw_poll,
    .epoll_ctl = mt_sys_epoll_ctl,
    .epoll_pwait = raw_epoll_pwait,
};

/* Set once at load; acquire pairs with the release of the installation. */
static _Atomic(const struct mt_sys_libc *) installed = &raw_calls;

static const struct mt_sys_libc *libc(void)
{
    return atomic_load_explicit(&installed, memory_order_acquire);
}

void mt_sys_use_libc(const struct mt_sys_libc *calls)
{
    atomic_store_explicit(&installed, calls != NULL ? calls : &raw_calls, memory_order_release);
}

int mt_sys_app_connect(int fd, const struct sockaddr *address, socklen_t length)
{
    return libc()->connect(fd, address, length);
}

int mt_sys_app_accept(int fd, struct sockaddr *address, socklen_t *length)
{
    return libc()->accept(fd, address, length);
}

int mt_sys_app_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags)
{
    return libc()->accept4(fd, address, length, flags);
}

ssize_t mt_sys_app_read(int fd, void *buffer, size_t length)
{
#ifdef MT_FAULT_INJECTION
    if (mt_fault_before_transfer(fd, 0, &length, false))
        return -1;
#endif
    return libc()->read(fd, buffer, length);
}

ssize_t mt_sys_app_write(int fd, const void *buffer, size_t length)
{
#ifdef MT_FAULT_INJECTION
    if (mt_fault_before_transfer(fd, 0, &length, true))
        return -1;
#endif
    return libc()->write(fd, buffer, length);
}

/* Not seen by fault injection, which models single transfers: its vectored twins go to libc. */
ssize_t mt_sys_app_readv(int fd, const struct iovec *vector, int count)
{
    return libc()->readv(fd, vector, count);
}

ssize_t mt_sys_app_writev(int fd, const struct iovec *vector, int count)
{
    return libc()->writev(fd, vector, count);
}

int mt_sys_app_shutdown(int fd, int how)
{
    return libc()->shutdown(fd, how);
}

int mt_sys_app_close(int fd)
{
    return libc()->close(fd);
}

int mt_sys_app_poll(struct pollfd *fds, nfds_t count, int timeout_ms)
{
#ifdef MT_FAULT_INJECTION
    if (mt_fault_before_wait(timeout_ms))
        return -1;
#endif
    return libc()->poll(fds, count, timeout_ms);
}

int mt_sys_app_epoll_ctl(int epfd, int operation, int fd, struct epoll_event *event)
{
    return libc()->epoll_ctl(epfd, operation, fd, event);
}

int mt_sys_app_epoll_pwait(int epfd, struct epoll_event *events, int capacity, int timeout_ms,
                           const sigset_t *mask)
{
#ifdef MT_FAULT_INJECTION
    if (mt_fault_before_wait(timeout_ms))
        return -1;
#endif
    return libc()->epoll_pwait(epfd, events, capacity, timeout_ms, mask);
}

/* ---- time ---------------------------------------------------------------------------------- */

long long mt_sys_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

long long mt_sys_now_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

int mt_sys_remaining_ms(long long deadline_ms)
{
    if (deadline_ms < 0)
        return -1;
    long long left = deadline_ms - mt_sys_now_ms();
    if (left <= 0)
        return 0;
    return left > 0x7fffffff ? 0x7fffffff : (int)left;
}
