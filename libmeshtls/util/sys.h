/*
 * Raw system calls for libmeshtls's own I/O.
 *
 * Inside an intercepted process, libc's socket functions are our hooks. The TLS record layer and
 * the agent client must reach the kernel without going through them (re-entering a hook from
 * inside a hook would recurse or take a connection's lock twice), so they call the kernel
 * directly. Each function has the libc contract: the result, or -1 with errno set.
 */
#ifndef MT_UTIL_SYS_H
#define MT_UTIL_SYS_H

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

ssize_t mt_sys_recv(int fd, void *buffer, size_t length, int flags);
ssize_t mt_sys_send(int fd, const void *buffer, size_t length, int flags);
ssize_t mt_sys_recvmsg(int fd, struct msghdr *message, int flags);
int mt_sys_poll(struct pollfd *fds, nfds_t count, int timeout_ms);
int mt_sys_socket(int domain, int type, int protocol);
int mt_sys_connect(int fd, const struct sockaddr *address, socklen_t length);
int mt_sys_close(int fd);
ssize_t mt_sys_write(int fd, const void *buffer, size_t length);
int mt_sys_ppoll(struct pollfd *fds, nfds_t count, int timeout_ms, const void *signal_mask);
int mt_sys_getsockopt(int fd, int level, int name, void *value, socklen_t *length);
int mt_sys_fcntl(int fd, int command, long argument);

/*
 * Runs the statements and leaves errno as it was before them: for cleanup after a failed call
 * whose errno the caller must see, and for bookkeeping around a call passed through to libc
 * (whose errno is the application's):
 *
 *     MT_PRESERVING_ERRNO(mt_conn_release(conn));
 */
#define MT_PRESERVING_ERRNO(...)                                                                   \
    do {                                                                                           \
        int mt_preserved_errno_ = errno;                                                           \
        __VA_ARGS__;                                                                               \
        errno = mt_preserved_errno_;                                                               \
    } while (0)

/* Milliseconds on CLOCK_MONOTONIC, for deadlines. */
long long mt_sys_now_ms(void);

/* Microseconds on CLOCK_MONOTONIC, for durations. */
long long mt_sys_now_us(void);

/* What is left of a deadline: -1 for none (deadline_ms < 0), else ≥ 0. */
int mt_sys_remaining_ms(long long deadline_ms);

/*
 * The connection engine's own kernel calls (core/conn*.c): its socket's address, FIONREAD, and
 * the reads and writes of sendfile/splice emulation on the application's files and pipes.
 * raise() sends the signal to the calling thread, as the kernel's own SIGPIPE does.
 */
int mt_sys_getsockname(int fd, struct sockaddr *address, socklen_t *length);
int mt_sys_ioctl(int fd, unsigned long request, void *argument);
off_t mt_sys_lseek(int fd, off_t offset, int whence);
ssize_t mt_sys_read(int fd, void *buffer, size_t length);
ssize_t mt_sys_pread(int fd, void *buffer, size_t length, off_t offset);
ssize_t mt_sys_pwrite(int fd, const void *buffer, size_t length, off_t offset);
int mt_sys_raise(int signal_number);

#endif
