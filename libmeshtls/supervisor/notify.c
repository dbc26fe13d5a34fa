/*
 * The notification side of the supervisor: receiving the program's system calls, reading and
 * writing its memory, taking copies of its descriptors, putting ours in, and answering.
 *
 * Owns the TOCTOU discipline of seccomp user notification (seccomp_unotify(2)): the program's
 * memory is read through /proc/TID/mem opened, then checked with SECCOMP_IOCTL_NOTIF_ID_VALID
 * (the thread that made the call still waits for us, so the file is its memory, not that of a
 * process that reused the id), and arguments are read once, into our memory, and acted on from
 * there. A decision is never followed by SECCOMP_USER_NOTIF_FLAG_CONTINUE: the kernel would
 * re-read arguments another thread of the program may have changed since. Decides nothing about
 * connections (outbound.c, inbound.c do).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../util/log.h"
#include "internal.h"

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL /* Linux 6.9: a pidfd for a thread that is not the leader */
#endif

bool mt_supervisor_call_is_valid(const struct mt_supervisor_call *call)
{
    uint64_t id = call->id;
    return ioctl(call->supervisor->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

static int open_memory(const struct mt_supervisor_call *call, int mode)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/mem", (int)call->pid);
    int fd = open(path, mode | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (!mt_supervisor_call_is_valid(call)) {
        close(fd);
        return -ESRCH;
    }
    return fd;
}

int mt_supervisor_copy_in(const struct mt_supervisor_call *call, uint64_t address, void *buffer,
                          size_t length)
{
    int fd = open_memory(call, O_RDONLY);
    if (fd < 0)
        return fd;
    ssize_t got = pread(fd, buffer, length, (off_t)address);
    close(fd);
    return got == (ssize_t)length ? 0 : -EFAULT;
}

int mt_supervisor_copy_out(const struct mt_supervisor_call *call, uint64_t address,
                           const void *buffer, size_t length)
{
    int fd = open_memory(call, O_WRONLY);
    if (fd < 0)
        return fd;
    ssize_t put = pwrite(fd, buffer, length, (off_t)address);
    close(fd);
    return put == (ssize_t)length ? 0 : -EFAULT;
}

/* The thread-group id of thread, from /proc/TID/status; -1 when unknown. */
static pid_t thread_group_of(pid_t thread)
{
    char path[64], line[128];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)thread);
    FILE *status = fopen(path, "re");
    if (status == NULL)
        return -1;
    pid_t group = -1;
    while (fgets(line, sizeof(line), status) != NULL) {
        if (strncmp(line, "Tgid:", 5) == 0) {
            group = (pid_t)atoi(line + 5);
            break;
        }
    }
    fclose(status);
    return group;
}

static int open_pidfd(const struct mt_supervisor_call *call)
{
    int pidfd = (int)syscall(SYS_pidfd_open, call->pid, PIDFD_THREAD);
    if (pidfd < 0 && errno == EINVAL) {
        pid_t group = thread_group_of(call->pid);
        pidfd = group > 0 ? (int)syscall(SYS_pidfd_open, group, 0) : -1;
    }
    if (pidfd < 0)
        return -errno;
    /* The id still waits: pidfd is the caller's process, not one that reused its number. */
    if (!mt_supervisor_call_is_valid(call)) {
        close(pidfd);
        return -ESRCH;
    }
    return pidfd;
}

int mt_supervisor_take_fd(const struct mt_supervisor_call *call, int target_fd)
{
    int pidfd = open_pidfd(call);
    if (pidfd < 0)
        return pidfd;
    int fd = (int)syscall(SYS_pidfd_getfd, pidfd, target_fd, 0);
    int error = errno;
    close(pidfd);
    return fd >= 0 ? fd : -error;
}

bool mt_supervisor_fd_is_cloexec(const struct mt_supervisor_call *call, int target_fd)
{
    char path[64], line[128];
    snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)call->pid, target_fd);
    FILE *info = fopen(path, "re");
    if (info == NULL)
        return false;
    unsigned long flags = 0;
    while (fgets(line, sizeof(line), info) != NULL) {
        if (strncmp(line, "flags:", 6) == 0) {
            flags = strtoul(line + 6, NULL, 8);
            break;
        }
    }
    fclose(info);
    return (flags & O_CLOEXEC) != 0;
}

int mt_supervisor_replace_fd(const struct mt_supervisor_call *call, int our_fd, int target_fd,
                             bool cloexec)
{
    struct seccomp_notif_addfd add = {
        .id = call->id,
        .flags = SECCOMP_ADDFD_FLAG_SETFD,
        .srcfd = (uint32_t)our_fd,
        .newfd = (uint32_t)target_fd,
        .newfd_flags = cloexec ? O_CLOEXEC : 0,
    };
    return ioctl(call->supervisor->listener, SECCOMP_IOCTL_NOTIF_ADDFD, &add) < 0 ? -errno : 0;
}

static void send_response(const struct mt_supervisor_call *call, int64_t value, int error,
                          uint32_t flags)
{
    struct seccomp_notif_resp response = {
        .id = call->id, .val = value, .error = error != 0 ? -error : 0, .flags = flags};
    /* ENOENT: the call is gone (a signal interrupted it; the kernel restarts or fails it). */
    if (ioctl(call->supervisor->listener, SECCOMP_IOCTL_NOTIF_SEND, &response) < 0 &&
        errno != ENOENT)
        mt_log_warn("supervisor: cannot answer pid %d's system call %d: %s", (int)call->pid,
                    call->number, strerror(errno));
}

void mt_supervisor_answer(const struct mt_supervisor_call *call, int64_t value, int error)
{
    send_response(call, error != 0 ? -1 : value, error, 0);
}

void mt_supervisor_continue(const struct mt_supervisor_call *call)
{
    send_response(call, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
}

bool mt_supervisor_is_tcp(int fd, int *family)
{
    int domain = 0, type = 0, protocol = 0;
    socklen_t length = sizeof(int);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) != 0)
        return false;
    length = sizeof(int);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0)
        return false;
    length = sizeof(int);
    if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &length) != 0)
        return false;
    *family = domain;
    return (domain == AF_INET || domain == AF_INET6) && type == SOCK_STREAM &&
           protocol == IPPROTO_TCP;
}

ino_t mt_supervisor_inode(int fd)
{
    struct stat status;
    return fstat(fd, &status) == 0 ? status.st_ino : 0;
}

bool mt_supervisor_spawn(void *(*function)(void *), void *argument)
{
    pthread_attr_t attributes;
    if (pthread_attr_init(&attributes) != 0)
        return false;
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attributes, 256 * 1024);
    pthread_t thread;
    bool started = pthread_create(&thread, &attributes, function, argument) == 0;
    pthread_attr_destroy(&attributes);
    return started;
}

static void refuse_io_uring(const struct mt_supervisor_call *call)
{
    /* io_uring would carry connect and accept past this filter. ENOSYS is what a kernel
     * without it says: Go, libuv, Tokio and liburing users fall back to epoll on it. */
    mt_log_limited(MT_LOG_WARN,
                   "supervisor: refused io_uring_setup of pid %d (ENOSYS): io_uring operations "
                   "would bypass the mesh; the program falls back to epoll if it can",
                   (int)call->pid);
    mt_supervisor_answer(call, 0, ENOSYS);
}

static void *connect_thread(void *argument)
{
    mt_supervisor_connect(argument);
    return NULL;
}

static void dispatch(struct mt_supervisor_call *call)
{
    switch (call->number) {
    case __NR_connect: {
        /* A connect may wait for a handshake: on a thread of its own, the loop goes on. */
        struct mt_supervisor_call *copy = malloc(sizeof(*copy));
        if (copy == NULL) {
            mt_supervisor_answer(call, 0, ENOMEM);
            return;
        }
        *copy = *call;
        if (!mt_supervisor_spawn(connect_thread, copy)) {
            free(copy);
            mt_supervisor_answer(call, 0, EAGAIN);
        }
        return;
    }
    case __NR_listen:
        mt_supervisor_listen(call);
        return;
    case __NR_accept:
    case __NR_accept4:
        mt_supervisor_accept(call);
        return;
    case __NR_getsockname:
        mt_supervisor_name(call, MT_SUPERVISOR_LOCAL);
        return;
    case __NR_getpeername:
        mt_supervisor_name(call, MT_SUPERVISOR_PEER);
        return;
    case __NR_io_uring_setup:
        refuse_io_uring(call);
        return;
    default:
        mt_supervisor_answer(call, 0, ENOSYS);
        return;
    }
}

bool mt_supervisor_handle_next(struct mt_supervisor *supervisor)
{
    static struct seccomp_notif_sizes sizes;
    if (sizes.seccomp_notif == 0 && syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) != 0)
        return false;
    size_t size = sizes.seccomp_notif > sizeof(struct seccomp_notif) ? sizes.seccomp_notif
                                                                     : sizeof(struct seccomp_notif);
    struct seccomp_notif *request = calloc(1, size);
    if (request == NULL)
        return true;
    bool alive = true;
    if (ioctl(supervisor->listener, SECCOMP_IOCTL_NOTIF_RECV, request) != 0) {
        /* ENOENT: the caller went away between the wake-up and now. */
        alive = errno == EINTR || errno == ENOENT || errno == EAGAIN;
        goto out;
    }
    struct mt_supervisor_call call = {
        .supervisor = supervisor,
        .id = request->id,
        .pid = (pid_t)request->pid,
        .number = request->data.nr,
    };
    memcpy(call.args, request->data.args, sizeof(call.args));
    dispatch(&call);
out:
    free(request);
    return alive;
}
