/*
 * What crosses exec, fd by fd, while the program runs (see inherit.h): the close-on-exec hold of
 * a started session's fds and the application's wish for them (fcntl, ioctl, dup), in the
 * process and in a vfork child, and the refusal to pass a meshed connection to another process
 * over a Unix socket (SCM_RIGHTS).
 *
 * Owns nothing but these decisions: the wishes live in the table (table.h) and in a vfork
 * child's record (vfork_fds.h). Must never let a started session's fd lose its close-on-exec
 * flag in the kernel, and never allocate (a vfork child calls these too).
 */
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>

#include "../util/log.h"
#include "../util/sys.h"
#include "conn.h"
#include "inherit.h"
#include "inherit_fds.h"
#include "process.h"
#include "table.h"
#include "vfork_fds.h"

/* True when fd is ours and its session has started: it must stay close-on-exec. */
static bool cannot_cross_exec(int fd)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL)
        return false;
    pthread_mutex_lock(&conn->lock);
    bool started = conn->tls_started;
    pthread_mutex_unlock(&conn->lock);
    mt_conn_release(conn);
    return started;
}

bool mt_inherit_vfork_connection_on(int fd)
{
    struct mt_conn *conn = mt_vfork_fds_session(fd);
    mt_conn_release(conn);
    return conn != NULL;
}

int mt_inherit_descriptor_flags_to_set(int fd, int flags)
{
    if (mt_process_is_vfork_child()) {
        if (!mt_inherit_vfork_connection_on(fd))
            return flags;
        mt_vfork_fds_note_wish(fd, !(flags & FD_CLOEXEC));
        return flags | FD_CLOEXEC;
    }
    if (!cannot_cross_exec(fd))
        return flags;
    (void)mt_table_set_exec_wish(fd, !(flags & FD_CLOEXEC));
    return flags | FD_CLOEXEC;
}

int mt_inherit_descriptor_flags_seen(int fd, int flags)
{
    if (flags == -1 || !(flags & FD_CLOEXEC))
        return flags;
    int wish = mt_process_is_vfork_child() ? mt_vfork_fds_wish(fd) : -1;
    if (wish == 1 || (wish == -1 && mt_table_exec_wish(fd)))
        return flags & ~FD_CLOEXEC;
    return flags;
}

bool mt_inherit_holds(int fd, bool keep_open)
{
    if (mt_process_is_vfork_child()) {
        if (!mt_inherit_vfork_connection_on(fd))
            return false;
        mt_vfork_fds_note_wish(fd, keep_open);
        return true;
    }
    if (!cannot_cross_exec(fd))
        return false;
    (void)mt_table_set_exec_wish(fd, keep_open);
    return true;
}

void mt_inherit_hold_copy(int fd, int copy)
{
    if (copy < 0 || copy == fd || !mt_inherit_vfork_connection_on(copy))
        return;
    /* What the application's call asked (dup2 and dup leave the copy open across exec, dup3 with
     * O_CLOEXEC and F_DUPFD_CLOEXEC do not) is what the exec hook will honour. */
    int flags = mt_sys_fcntl(copy, F_GETFD, 0);
    if (flags == -1)
        return;
    mt_vfork_fds_note_wish(copy, !(flags & FD_CLOEXEC));
    if (!(flags & FD_CLOEXEC))
        (void)mt_sys_fcntl(copy, F_SETFD, flags | FD_CLOEXEC);
}

/* True (logged) when fd is a connection of ours that is not plaintext by policy. */
static bool is_meshed_connection(int fd)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL)
        return false;
    pthread_mutex_lock(&conn->lock);
    bool meshed = conn->state != MT_CONN_PLAIN;
    pthread_mutex_unlock(&conn->lock);
    mt_conn_release(conn);
    if (meshed)
        mt_log_warn("refusing to pass fd %d to another process (SCM_RIGHTS): it is an mTLS "
                    "connection, which only this process can carry; the receiver would read and "
                    "write it in clear",
                    fd);
    return meshed;
}

bool mt_inherit_message_passes_connection(const struct msghdr *message)
{
    if (message == NULL || message->msg_control == NULL || message->msg_controllen == 0 ||
        mt_table_is_empty())
        return false;
    /*
     * Walked as the kernel walks it (for_each_cmsghdr with CMSG_OK), not with libc's CMSG_NXTHDR,
     * whose idea of where the buffer ends has differed from the kernel's across glibc versions:
     * every control message the kernel would accept is looked at, and a length that runs past
     * the buffer is never followed (the kernel refuses such a message with EINVAL anyway).
     */
    const unsigned char *control = message->msg_control;
    size_t length = message->msg_controllen;
    size_t offset = 0;
    while (length - offset >= sizeof(struct cmsghdr)) {
        struct cmsghdr header;
        memcpy(&header, control + offset, sizeof(header));
        if (header.cmsg_len < sizeof(struct cmsghdr) || header.cmsg_len > length - offset)
            return false;
        if (header.cmsg_level == SOL_SOCKET && header.cmsg_type == SCM_RIGHTS) {
            size_t count = (header.cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < count; i++) {
                int fd;
                memcpy(&fd, control + offset + CMSG_LEN(0) + i * sizeof(int), sizeof(fd));
                if (is_meshed_connection(fd))
                    return true;
            }
        }
        size_t step = CMSG_ALIGN(header.cmsg_len);
        if (step > length - offset)
            break;
        offset += step;
    }
    return false;
}
