/*
 * Starting the program under the filter: fork, and in the child set no_new_privs and
 * PR_SET_PDEATHSIG(SIGKILL), install the seccomp filter with a user-notification listener, hand
 * the listener to the parent over a socketpair (SCM_RIGHTS), wait for the parent's go, exec.
 *
 * Owns the filter: which system calls come to the supervisor and which the kernel refuses on its
 * own. Never answers a notification (notify.c does).
 *
 * The filter, for the native architecture (any other, and x32 numbers, fail with ENOSYS: a
 * 32-bit entry would reach socketcall, which nothing here inspects):
 *   connect, listen, accept, accept4, getsockname, getpeername,
 *   io_uring_setup                                                → the supervisor
 *   sendto/sendmsg/sendmmsg with MSG_FASTOPEN                     → EOPNOTSUPP (a TCP Fast Open
 *                                                                   send connects without connect)
 *   seccomp with SECCOMP_FILTER_FLAG_NEW_LISTENER                 → EBUSY (a newer listener gets
 *                                                                   the calls first and could let
 *                                                                   them run; the kernel says EBUSY
 *                                                                   too while ours lives)
 *   everything else                                               → allowed
 * Once the supervisor is gone the kernel fails the notified calls with ENOSYS: nothing filtered
 * ever runs unsupervised.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../identity/client.h"
#include "internal.h"
#include "supervisor.h"

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#define X32_SYSCALL_BIT 0x40000000u
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "the supervisor's filter knows x86-64 and aarch64 only"
#endif

#define NOTIFY_IF(number)                                                                          \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (number), 0, 1),                                           \
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF)

/* number with flag set in argument index fails with error; the accumulator is reloaded with the
 * argument only on that path, which ends in a return. Arguments are little-endian: the low word
 * is at the argument's offset. */
#define REFUSE_FLAG(number, index, flag, error)                                                    \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (number), 0, 4),                                           \
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[(index)])),          \
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, (flag), 0, 1),                                        \
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (error)),                                    \
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

int mt_supervisor_install_filter(void)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#ifdef X32_SYSCALL_BIT
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
#endif
        NOTIFY_IF(__NR_connect),
        NOTIFY_IF(__NR_listen),
        NOTIFY_IF(__NR_accept),
        NOTIFY_IF(__NR_accept4),
        NOTIFY_IF(__NR_getsockname),
        NOTIFY_IF(__NR_getpeername),
        NOTIFY_IF(__NR_io_uring_setup),
        REFUSE_FLAG(__NR_sendto, 3, MSG_FASTOPEN, EOPNOTSUPP),
        REFUSE_FLAG(__NR_sendmsg, 2, MSG_FASTOPEN, EOPNOTSUPP),
        REFUSE_FLAG(__NR_sendmmsg, 3, MSG_FASTOPEN, EOPNOTSUPP),
        REFUSE_FLAG(__NR_seccomp, 1, SECCOMP_FILTER_FLAG_NEW_LISTENER, EBUSY),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
                        &program);
}

/* One int, and a descriptor when fd >= 0. */
static bool send_report(int channel, int value, int fd)
{
    char control[CMSG_SPACE(sizeof(int))];
    memset(control, 0, sizeof(control));
    struct iovec data = {.iov_base = &value, .iov_len = sizeof(value)};
    struct msghdr message = {.msg_iov = &data, .msg_iovlen = 1};
    if (fd >= 0) {
        message.msg_control = control;
        message.msg_controllen = sizeof(control);
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(header), &fd, sizeof(int));
    }
    return sendmsg(channel, &message, MSG_NOSIGNAL) == (ssize_t)sizeof(value);
}

/* The child's side; never returns. Reports 0 and the listener, or an errno (no fd). */
static void run_child(int channel, pid_t parent, char **program)
{
    /* Killed with the supervisor; a parent gone before this line leaves us re-parented. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(127);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        (void)send_report(channel, errno, -1);
        _exit(126);
    }
    int listener = mt_supervisor_install_filter();
    if (listener < 0) {
        (void)send_report(channel, errno, -1);
        _exit(126);
    }
    if (!send_report(channel, 0, listener))
        _exit(127);
    /* The program must never hold the listener: it could answer its own calls. */
    close(listener);
    char go;
    if (read(channel, &go, 1) != 1)
        _exit(127);
    execvp(program[0], program);
    int error = errno;
    (void)send_report(channel, error, -1);
    _exit(error == ENOENT ? 127 : 126);
}

/* The child's report: value, and *fd (-1 when none came). False when the child is gone. */
static bool receive_report(int channel, int *value, int *fd)
{
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec data = {.iov_base = value, .iov_len = sizeof(*value)};
    struct msghdr message = {.msg_iov = &data,
                             .msg_iovlen = 1,
                             .msg_control = control,
                             .msg_controllen = sizeof(control)};
    *fd = -1;
    ssize_t got = recvmsg(channel, &message, MSG_CMSG_CLOEXEC);
    if (got != (ssize_t)sizeof(*value))
        return false;
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    if (header != NULL && header->cmsg_type == SCM_RIGHTS)
        memcpy(fd, CMSG_DATA(header), sizeof(int));
    return true;
}

/* SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SEND (Linux 5.14) answers ENOENT for an id
 * that waits for nothing when the kernel has it, EINVAL (unknown flag) or ENOTTY when not. */
static bool kernel_has_addfd(int listener)
{
    struct seccomp_notif_addfd probe = {.id = 0, .flags = SECCOMP_ADDFD_FLAG_SEND};
    return ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &probe) < 0 && errno == ENOENT;
}

static void end_child(pid_t child)
{
    kill(child, SIGKILL);
    (void)waitpid(child, NULL, 0);
}

static void refuse_kernel(const char *program, int error, const char *what)
{
    fprintf(stderr,
            "meshtls: not starting %s: this kernel cannot supervise it (%s: %s); the "
            "supervisor needs Linux 5.14 or later with seccomp user notification\n",
            program, what, strerror(error));
}

int mt_supervisor_start(char **program, int *listener, pid_t *child, int *pidfd)
{
    int channel[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel) != 0) {
        fprintf(stderr, "meshtls: not starting %s: socketpair: %s\n", program[0], strerror(errno));
        return 2;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "meshtls: not starting %s: fork: %s\n", program[0], strerror(errno));
        close(channel[0]);
        close(channel[1]);
        return 2;
    }
    if (pid == 0) {
        close(channel[0]);
        run_child(channel[1], parent, program);
    }
    close(channel[1]);
    int status = 126; /* not started: nothing ran unprotected */
    int value = 0, fd = -1;
    int process = (int)syscall(SYS_pidfd_open, pid, 0);
    if (process < 0) {
        refuse_kernel(program[0], errno, "pidfd_open");
        goto out;
    }
    mt_supervisor_take_subject(process);
    if (!receive_report(channel[0], &value, &fd)) {
        fprintf(stderr, "meshtls: not starting %s: its process ended before it started\n",
                program[0]);
        goto out;
    }
    if (value != 0 || fd < 0) {
        refuse_kernel(program[0], value, "seccomp user notification");
        goto out;
    }
    if (!kernel_has_addfd(fd)) {
        refuse_kernel(program[0], errno, "SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SEND");
        goto out;
    }
    if (write(channel[0], "g", 1) != 1)
        goto out;
    /* End of stream: the exec happened (the channel is close-on-exec); else its errno. */
    int exec_error = 0;
    if (read(channel[0], &exec_error, sizeof(exec_error)) == (ssize_t)sizeof(exec_error)) {
        fprintf(stderr, "meshtls: cannot run %s: %s\n", program[0], strerror(exec_error));
        status = exec_error == ENOENT ? 127 : 126;
        goto out;
    }
    status = 0;
out:
    close(channel[0]);
    if (status != 0) {
        if (fd >= 0)
            close(fd);
        if (process >= 0)
            close(process);
        end_child(pid);
        return status;
    }
    *listener = fd;
    *child = pid;
    *pidfd = process;
    return 0;
}

void mt_supervisor_take_subject(int pidfd)
{
    /* Every identity and metrics request of this process is now the program's: the agent
     * attests pidfd's process, checks it is our child under our uid, and issues its identity. */
    mt_identity_set_subject(pidfd);
}
