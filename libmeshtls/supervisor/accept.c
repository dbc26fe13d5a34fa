/*
 * accept() and accept4() on a listener the supervisor moved behind itself (inbound.c): the
 * program must get the real client's address, not the relay's. The supervisor accepts on a copy
 * of the program's loopback listener, writes the real address into the program's buffer, and
 * hands the connection over with SECCOMP_IOCTL_NOTIF_ADDFD and SECCOMP_ADDFD_FLAG_SEND, which
 * installs it and answers the call with its number in one step (Linux 5.14). The program's
 * SOCK_NONBLOCK and SOCK_CLOEXEC are applied. A non-blocking listener is answered at once
 * (EAGAIN when nothing waits); a blocking one on a thread that waits, checking that the call
 * still waits (a signal may have ended it) before it takes a connection.
 *
 * A duplicate the program kept of a listener the supervisor now serves (dup before listen) is
 * refused (EINVAL). Any other socket's accept is the kernel's (SECCOMP_USER_NOTIF_FLAG_CONTINUE):
 * it decides nothing, the listener's fate was decided at listen().
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../util/log.h"
#include "internal.h"

#define BLOCKING_CHECK_MS 250

struct accepting {
    struct mt_supervisor_call call;
    int listener; /* our copy of the program's loopback listener */
};

static int flags_of(const struct mt_supervisor_call *call)
{
    return call->number == __NR_accept4 ? (int)call->args[3] : 0;
}

/* Installs connection in the program and answers the call with its number; false when the call
 * is gone (the connection is then reset: nobody can have it). */
static bool hand_over(const struct mt_supervisor_call *call, int connection)
{
    int flags = flags_of(call);
    if ((flags & SOCK_NONBLOCK) != 0)
        fcntl(connection, F_SETFL, fcntl(connection, F_GETFL) | O_NONBLOCK);
    struct seccomp_notif_addfd add = {
        .id = call->id,
        .flags = SECCOMP_ADDFD_FLAG_SEND,
        .srcfd = (uint32_t)connection,
        .newfd_flags = (flags & SOCK_CLOEXEC) != 0 ? O_CLOEXEC : 0,
    };
    return ioctl(call->supervisor->listener, SECCOMP_IOCTL_NOTIF_ADDFD, &add) >= 0;
}

/* Takes one connection and gives it to the program; false when none was waiting. */
static bool take_one(const struct mt_supervisor_call *call, int listener)
{
    struct sockaddr_storage end, address;
    socklen_t end_length = sizeof(end), length = sizeof(address);
    int connection = accept4(listener, (struct sockaddr *)&end, &end_length, SOCK_CLOEXEC);
    if (connection < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return false;
        mt_supervisor_answer(call, 0, errno);
        return true;
    }
    if (!mt_supervisor_relayed_address(&end, end_length, MT_SUPERVISOR_PEER, &address, &length)) {
        address = end;
        length = end_length;
    }
    int written = call->args[1] != 0 ? mt_supervisor_hand_out(call, &address, length) : 0;
    if (written == -EFAULT)
        mt_supervisor_answer(call, 0, EFAULT);
    else if (written != 0 || !hand_over(call, connection))
        mt_log_warn("supervisor: pid %d's accept ended before the connection from the relay "
                    "was handed over; it is reset",
                    (int)call->pid);
    close(connection);
    return true;
}

static void *wait_and_take(void *argument)
{
    struct accepting *accepting = argument;
    for (;;) {
        struct pollfd entry = {.fd = accepting->listener, .events = POLLIN};
        int ready = poll(&entry, 1, BLOCKING_CHECK_MS);
        if (!mt_supervisor_call_is_valid(&accepting->call))
            break;
        if (ready > 0 && take_one(&accepting->call, accepting->listener))
            break;
    }
    close(accepting->listener);
    free(accepting);
    return NULL;
}

static bool is_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    return flags >= 0 && (flags & O_NONBLOCK) != 0;
}

void mt_supervisor_accept(struct mt_supervisor_call *call)
{
    int listener = mt_supervisor_take_fd(call, (int)call->args[0]);
    if (listener < 0) {
        if (listener != -ESRCH)
            mt_supervisor_answer(call, 0, -listener);
        return;
    }
    ino_t inode = mt_supervisor_inode(listener);
    if (mt_supervisor_is_served(inode)) {
        /* A duplicate of a listener the supervisor serves (made before listen): accepting on
         * it would take connections past the mesh. */
        mt_log_warn("supervisor: refused pid %d's accept on fd %d: a duplicate of a listener "
                    "the mesh serves; accept on the descriptor listen() was called on",
                    (int)call->pid, (int)call->args[0]);
        mt_supervisor_answer(call, 0, EINVAL);
        close(listener);
        return;
    }
    if (!mt_supervisor_is_listener(inode)) {
        mt_supervisor_continue(call);
        close(listener);
        return;
    }
    if (is_nonblocking(listener)) {
        if (!take_one(call, listener))
            mt_supervisor_answer(call, 0, EAGAIN);
        close(listener);
        return;
    }
    struct accepting *accepting = malloc(sizeof(*accepting));
    if (accepting != NULL) {
        accepting->call = *call;
        accepting->listener = listener;
    }
    if (accepting == NULL || !mt_supervisor_spawn(wait_and_take, accepting)) {
        free(accepting);
        close(listener);
        mt_supervisor_answer(call, 0, EAGAIN);
    }
}
