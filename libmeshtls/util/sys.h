/*
 * The one way libmeshtls reaches the kernel: mt_sys_<libc name>(libc arguments), each with the
 * libc contract (the result, or -1 with errno set).
 *
 * What must come here: syscall() and every libc function the preload interposes
 * (preload/hooks.def). Inside an intercepted process those names are our own hooks, and
 * re-entering a hook from inside one would recurse or take a connection's lock twice. libc
 * functions that no hook intercepts (open, fstat, mmap, clock_gettime...) never re-enter
 * libmeshtls and are called directly. Nothing outside preload/ names real_*.
 *
 * Two kinds of call:
 *
 *  - mt_sys_<name>: libmeshtls's own I/O (TLS records, the agent client, the waits of a
 *    handshake, descriptors it opens and closes itself). Raw system calls, in every build: they
 *    never reach a hook, and they are never cancellation points, so pthread_cancel cannot stop
 *    a thread inside libmeshtls with a lock held or a record half written.
 *
 *  - mt_sys_app_<name>: calls made on the application's behalf, where core lets the
 *    application's call through (connect on a socket it does not mesh, epoll_wait on an instance
 *    without meshed members) or finishes it for the application (the accept that precedes the
 *    decision, meshtls_read on a plain fd). They keep the semantics libc gives the application
 *    (cancellation points, errno), through a table of libc functions installed once:
 *      - libmeshtls-preload.so installs the functions it resolved with dlsym(RTLD_NEXT), at its
 *        initialisation (preload/real.c), before any hook hands a call to core;
 *      - libmeshtls.so interposes nothing, so in that object `read` is libc's read: it installs
 *        libc's functions by name when it is loaded (api/libc.c) and looks up no name with dlsym;
 *      - anything else (unit tests, the agent) keeps the default: the raw system calls.
 *
 * The test-only build libmeshtls-preload-faults.so (tests/fault/) compiles sys.c with
 * MT_FAULT_INJECTION: EINTR, EAGAIN, short transfers and resets are then injected before the
 * transfers of both kinds (recv, send, read, write; app read, app write), and EINTR before their
 * waits (poll, ppoll; app poll, app epoll_pwait). TLS records travel in read and write as often
 * as in recv and send (tls/record.c), so both families are injected.
 */
#ifndef MT_UTIL_SYS_H
#define MT_UTIL_SYS_H

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

/* ---- libmeshtls's own I/O: raw system calls ------------------------------------------------ */

ssize_t mt_sys_recv(int fd, void *buffer, size_t length, int flags);
ssize_t mt_sys_send(int fd, const void *buffer, size_t length, int flags);
ssize_t mt_sys_recvmsg(int fd, struct msghdr *message, int flags);
ssize_t mt_sys_sendmsg(int fd, const struct msghdr *message, int flags);
/* Sends data on the Unix socket fd with the descriptor passed (SCM_RIGHTS) riding on its first
 * byte; passed < 0: a plain mt_sys_send. The caller keeps passed (the receiver gets a copy). */
ssize_t mt_sys_send_fd(int fd, const void *data, size_t length, int passed, int flags);
int mt_sys_poll(struct pollfd *fds, nfds_t count, int timeout_ms);
int mt_sys_socket(int domain, int type, int protocol);
int mt_sys_connect(int fd, const struct sockaddr *address, socklen_t length);
int mt_sys_close(int fd);
ssize_t mt_sys_write(int fd, const void *buffer, size_t length);
int mt_sys_ppoll(struct pollfd *fds, nfds_t count, int timeout_ms, const void *signal_mask);
int mt_sys_getsockopt(int fd, int level, int name, void *value, socklen_t *length);
int mt_sys_setsockopt(int fd, int level, int name, const void *value, socklen_t length);
int mt_sys_fcntl(int fd, int command, long argument);
ssize_t mt_sys_read(int fd, void *buffer, size_t length);
int mt_sys_dup(int fd);
int mt_sys_getsockname(int fd, struct sockaddr *address, socklen_t *length);
int mt_sys_getpeername(int fd, struct sockaddr *address, socklen_t *length);
int mt_sys_epoll_ctl(int epfd, int operation, int fd, struct epoll_event *event);

/* The kernel's answer, never a cached one: a vfork child sees its own pid. */
pid_t mt_sys_getpid(void);

/*
 * The connection engine's own kernel calls (core/conn*.c): FIONREAD, and the reads and writes of
 * sendfile/splice emulation on the application's files and pipes. raise() sends the signal to
 * the calling thread, as the kernel's own SIGPIPE does.
 */
int mt_sys_ioctl(int fd, unsigned long request, void *argument);
off_t mt_sys_lseek(int fd, off_t offset, int whence);
ssize_t mt_sys_pread(int fd, void *buffer, size_t length, off_t offset);
ssize_t mt_sys_pwrite(int fd, const void *buffer, size_t length, off_t offset);
int mt_sys_raise(int signal_number);

/*
 * The system calls behind libc functions newer than the oldest glibc libmeshtls supports: the
 * preload hooks them, and falls back to these where its libc lacks them (preload/hooks.def).
 * ENOSYS from a kernel without the call, as libc says then.
 */
int mt_sys_close_range(unsigned int first, unsigned int last, int flags);

/* pidfd_send_signal(2) (Linux 5.1; glibc has no wrapper before 2.36). */
int mt_sys_pidfd_send_signal(int pidfd, int signal_number);
/* pidfd_open(2) (Linux 5.3; glibc has no wrapper before 2.36), close-on-exec. */
int mt_sys_pidfd_open(pid_t pid);
int mt_sys_epoll_pwait2(int epfd, struct epoll_event *events, int capacity,
                        const struct timespec *timeout, const sigset_t *mask);
/* close_range(lowest, ~0U, 0); on a kernel without it (before 5.9), each descriptor up to the
 * RLIMIT_NOFILE soft limit. */
void mt_sys_closefrom(int lowest);

/* ---- calls made on the application's behalf: libc's semantics ------------------------------ */

/* The libc functions behind mt_sys_app_*; every member is set. */
struct mt_sys_libc {
    int (*connect)(int fd, const struct sockaddr *address, socklen_t length);
    int (*accept)(int fd, struct sockaddr *address, socklen_t *length);
    int (*accept4)(int fd, struct sockaddr *address, socklen_t *length, int flags);
    ssize_t (*read)(int fd, void *buffer, size_t length);
    ssize_t (*write)(int fd, const void *buffer, size_t length);
    ssize_t (*readv)(int fd, const struct iovec *vector, int count);
    ssize_t (*writev)(int fd, const struct iovec *vector, int count);
    int (*shutdown)(int fd, int how);
    int (*close)(int fd);
    int (*poll)(struct pollfd *fds, nfds_t count, int timeout_ms);
    int (*epoll_ctl)(int epfd, int operation, int fd, struct epoll_event *event);
    int (*epoll_pwait)(int epfd, struct epoll_event *events, int capacity, int timeout_ms,
                       const sigset_t *mask);
};

/*
 * Makes mt_sys_app_* call libc's functions in libc (which must live as long as the process);
 * NULL restores the raw system calls. Called once, before the first call it must govern.
 */
void mt_sys_use_libc(const struct mt_sys_libc *libc);

int mt_sys_app_connect(int fd, const struct sockaddr *address, socklen_t length);
int mt_sys_app_accept(int fd, struct sockaddr *address, socklen_t *length);
int mt_sys_app_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags);
ssize_t mt_sys_app_read(int fd, void *buffer, size_t length);
ssize_t mt_sys_app_write(int fd, const void *buffer, size_t length);
ssize_t mt_sys_app_readv(int fd, const struct iovec *vector, int count);
ssize_t mt_sys_app_writev(int fd, const struct iovec *vector, int count);
int mt_sys_app_shutdown(int fd, int how);
int mt_sys_app_close(int fd);
int mt_sys_app_poll(struct pollfd *fds, nfds_t count, int timeout_ms);
int mt_sys_app_epoll_ctl(int epfd, int operation, int fd, struct epoll_event *event);
int mt_sys_app_epoll_pwait(int epfd, struct epoll_event *events, int capacity, int timeout_ms,
                           const sigset_t *mask);

/* ---- time and errno ------------------------------------------------------------------------ */

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

/*
 * result, with errno set back to errno_on_entry when result is a success (>= 0): a call that
 * succeeds leaves errno as it was, whatever libmeshtls's own calls met inside it. CPython's
 * select, poll and epoll wrappers retry while errno is EINTR after the call, even a successful
 * one, and would drop the events a translated wait returned.
 */
static inline int mt_sys_success_keeps_errno(int result, int errno_on_entry)
{
    if (result >= 0)
        errno = errno_on_entry;
    return result;
}

/* Milliseconds on CLOCK_MONOTONIC, for deadlines. */
long long mt_sys_now_ms(void);

/* Microseconds on CLOCK_MONOTONIC, for durations. */
long long mt_sys_now_us(void);

/* What is left of a deadline: -1 for none (deadline_ms < 0), else ≥ 0. */
int mt_sys_remaining_ms(long long deadline_ms);

#endif
