/*
 * getsockname and getpeername: the addresses the program must see although its sockets are
 * connected to the supervisor's relays. A meshed outbound socket's peer is its destination, a
 * meshed listener's local address the one it listened on. Sockets are known by inode (sockfs
 * numbers), which follows the socket through dup, fork and SCM_RIGHTS, unlike descriptor numbers.
 * Any other socket gets the kernel's answer, asked by the supervisor on a copy of its
 * descriptor, and written into the program's memory as the kernel would (truncated to its
 * buffer, the full length in *length).
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define REMEMBERED_MAX 4096

struct remembered {
    ino_t inode;
    enum mt_supervisor_side side;
    struct sockaddr_storage address;
    socklen_t length;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct remembered table[REMEMBERED_MAX];

void mt_supervisor_remember(ino_t inode, enum mt_supervisor_side side,
                            const struct sockaddr_storage *address, socklen_t length)
{
    if (inode == 0)
        return;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < REMEMBERED_MAX; i++) {
        if (table[i].inode == 0 || table[i].inode == inode) {
            table[i] = (struct remembered){.inode = inode, .side = side, .length = length};
            memcpy(&table[i].address, address, length);
            break;
        }
    }
    pthread_mutex_unlock(&lock);
}

void mt_supervisor_forget(ino_t inode)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < REMEMBERED_MAX; i++)
        if (table[i].inode == inode)
            table[i].inode = 0;
    pthread_mutex_unlock(&lock);
}

static bool look_up(ino_t inode, enum mt_supervisor_side side, struct sockaddr_storage *address,
                    socklen_t *length)
{
    bool found = false;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < REMEMBERED_MAX && !found; i++) {
        if (inode != 0 && table[i].inode == inode && table[i].side == side) {
            *address = table[i].address;
            *length = table[i].length;
            found = true;
        }
    }
    pthread_mutex_unlock(&lock);
    return found;
}

bool mt_supervisor_is_remembered(ino_t inode)
{
    struct sockaddr_storage ignored;
    socklen_t length;
    return look_up(inode, MT_SUPERVISOR_LOCAL, &ignored, &length) ||
           look_up(inode, MT_SUPERVISOR_PEER, &ignored, &length);
}

/* Writes address into the program's (buffer, *length) as getsockname(2) does; 0 or -errno. */
static int hand_out(const struct mt_supervisor_call *call, const struct sockaddr_storage *address,
                    socklen_t length)
{
    socklen_t room = 0;
    int result = mt_supervisor_copy_in(call, call->args[2], &room, sizeof(room));
    if (result != 0)
        return result;
    if ((int)room < 0)
        return -EINVAL;
    size_t copied = room < length ? room : length;
    if (copied > 0 && (result = mt_supervisor_copy_out(call, call->args[1], address, copied)) != 0)
        return result;
    return mt_supervisor_copy_out(call, call->args[2], &length, sizeof(length));
}

void mt_supervisor_name(struct mt_supervisor_call *call, enum mt_supervisor_side side)
{
    int fd = mt_supervisor_take_fd(call, (int)call->args[0]);
    if (fd < 0) {
        if (fd != -ESRCH)
            mt_supervisor_answer(call, 0, -fd);
        return;
    }
    struct sockaddr_storage address;
    memset(&address, 0, sizeof(address));
    socklen_t length = sizeof(address);
    int result = 0;
    if (!look_up(mt_supervisor_inode(fd), side, &address, &length)) {
        int asked = side == MT_SUPERVISOR_LOCAL
                        ? getsockname(fd, (struct sockaddr *)&address, &length)
                        : getpeername(fd, (struct sockaddr *)&address, &length);
        result = asked == 0 ? 0 : -errno;
    }
    close(fd);
    if (result == 0)
        result = hand_out(call, &address, length);
    if (result != -ESRCH)
        mt_supervisor_answer(call, 0, -result);
}
