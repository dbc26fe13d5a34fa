/*
 * Raw system calls (see sys.h for why). Only thin wrappers: no policy, no logging.
 *
 * The test-only build libmeshtls-preload-faults.so (tests/fault/) compiles this file with
 * MT_FAULT_INJECTION, which lets tests/fault/fault.c inject EINTR, EAGAIN, short transfers and
 * resets here; production builds contain none of it.
 */
#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sys.h"

#ifdef MT_FAULT_INJECTION
#include "fault_hooks.h"
#endif

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
    return syscall(SYS_write, fd, buffer, length);
}

int mt_sys_ppoll(struct pollfd *fds, nfds_t count, int timeout_ms, const void *signal_mask)
{
#ifdef MT_FAULT_INJECTION
    if (mt_fault_before_wait(timeout_ms))
        return -1;
#endif
    struct timespec timeout = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000};
    /* The kernel's sigset is 8 bytes on Linux, whatever glibc's sigset_t size. */
    return (int)syscall(SYS_ppoll, fds, count, timeout_ms < 0 ? NULL : &timeout, signal_mask, 8);
}

int mt_sys_close(int fd)
{
    return (int)syscall(SYS_close, fd);
}

int mt_sys_getsockopt(int fd, int level, int name, void *value, socklen_t *length)
{
    return (int)syscall(SYS_getsockopt, fd, level, name, value, length);
}

int mt_sys_fcntl(int fd, int command, long argument)
{
    return (int)syscall(SYS_fcntl, fd, command, argument);
}

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

int mt_sys_getsockname(int fd, struct sockaddr *address, socklen_t *length)
{
    return (int)syscall(SYS_getsockname, fd, address, length);
}

int mt_sys_ioctl(int fd, unsigned long request, void *argument)
{
    return (int)syscall(SYS_ioctl, fd, request, argument);
}

off_t mt_sys_lseek(int fd, off_t offset, int whence)
{
    return (off_t)syscall(SYS_lseek, fd, offset, whence);
}

ssize_t mt_sys_read(int fd, void *buffer, size_t length)
{
    return syscall(SYS_read, fd, buffer, length);
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
    return (int)syscall(SYS_tgkill, syscall(SYS_getpid), syscall(SYS_gettid), signal_number);
}
