/*
 * getsockname, getpeername and accept's address: the addresses the program must see although its
 * sockets are connected to the supervisor's relays. A meshed outbound socket's peer is its
 * destination and its local address the mesh connection's, a meshed listener's local address the
 * one it listened on, and a connection it accepted from a relay has the real client as peer and the
 * real listener's address as local (known by the relay's end, the address the program's socket sees
 * as its peer). Sockets are known by inode (sockfs numbers), which follows the socket through dup,
 * fork and SCM_RIGHTS, unlike descriptor numbers. Any other socket gets the kernel's answer, asked
 * by the supervisor on a copy of its descriptor, and written into the program's memory as the
 * kernel would (truncated to its buffer, the full length in *length).
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

/* An inbound relay: its end's address (the program's accepted socket's peer) → the real ones. */
struct relayed {
    bool used;
    struct sockaddr_storage end, peer, local;
    socklen_t end_length, peer_length, local_length;
};

static struct relayed relays[REMEMBERED_MAX];

void mt_supervisor_remember_relay(const struct sockaddr_storage *end, socklen_t end_length,
                                  const struct sockaddr_storage *peer, socklen_t peer_length,
                                  const struct sockaddr_storage *local, socklen_t local_length)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < REMEMBERED_MAX; i++) {
        if (!relays[i].used) {
            relays[i] = (struct relayed){.used = true,
                                         .end = *end,
                                         .peer = *peer,
                                         .local = *local,
                                         .end_length = end_length,
                                         .peer_length = peer_length,
                                         .local_length = local_length};
            break;
        }
    }
    pthread_mutex_unlock(&lock);
}

static bool same(const struct sockaddr_storage *a, socklen_t a_length,
                 const struct sockaddr_storage *b, socklen_t b_length)
{
    return a_length == b_length && memcmp(a, b, a_length) == 0;
}

void mt_supervisor_forget_relay(const struct sockaddr_storage *end, socklen_t end_length)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < REMEMBERED_MAX; i++)
        if (relays[i].used && same(&relays[i].end, relays[i].end_length, end, end_length))
            relays[i].used = false;
    pthread_mutex_unlock(&lock);
}

bool mt_supervisor_relayed_address(const struct sockaddr_storage *end, socklen_t end_length,
                                   enum mt_supervisor_side side, struct sockaddr_storage *address,
                                   socklen_t *length)
{
    bool found = false;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < REMEMBERED_MAX && !found; i++) {
        if (relays[i].used && same(&relays[i].end, relays[i].end_length, end, end_length)) {
            *address = side == MT_SUPERVISOR_PEER ? relays[i].peer : relays[i].local;
            *length = side == MT_SUPERVISOR_PEER ? relays[i].peer_length : relays[i].local_length;
            found = true;
        }
    }
    pthread_mutex_unlock(&lock);
    return found;
}

void mt_supervisor_remember(ino_t inode, enum mt_supervisor_side side,
                            const struct sockaddr_storage *address, socklen_t length)
{
    if (inode == 0)
        return;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < REMEMBERED_MAX; i++) {
        if (table[i].inode == 0 || (table[i].inode == inode && table[i].side == side)) {
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

bool mt_supervisor_is_listener(ino_t inode)
{
    struct sockaddr_storage ignored;
    socklen_t length;
    /* An outbound socket has both; a listener has no peer. */
    return look_up(inode, MT_SUPERVISOR_LOCAL, &ignored, &length) &&
           !look_up(inode, MT_SUPERVISOR_PEER, &ignored, &length);
}

bool mt_supervisor_is_served(ino_t inode)
{
    struct sockaddr_storage ignored;
    socklen_t length;
    return look_up(inode, MT_SUPERVISOR_SERVED, &ignored, &length);
}

bool mt_supervisor_is_remembered(ino_t inode)
{
    struct sockaddr_storage ignored;
    socklen_t length;
    return look_up(inode, MT_SUPERVISOR_LOCAL, &ignored, &length) ||
           look_up(inode, MT_SUPERVISOR_PEER, &ignored, &length);
}

int mt_supervisor_hand_out(const struct mt_supervisor_call *call,
                           const struct sockaddr_storage *address, socklen_t length)
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

/* A socket the program accepted from an inbound relay: the real address for side. */
static void replace_relayed(int fd, enum mt_supervisor_side side, struct sockaddr_storage *address,
                            socklen_t *length)
{
    struct sockaddr_storage end;
    socklen_t end_length = sizeof(end);
    if (getpeername(fd, (struct sockaddr *)&end, &end_length) == 0)
        (void)mt_supervisor_relayed_address(&end, end_length, side, address, length);
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
        if (result == 0)
            replace_relayed(fd, side, &address, &length);
    }
    close(fd);
    if (result == 0)
        result = mt_supervisor_hand_out(call, &address, length);
    if (result != -ESRCH)
        mt_supervisor_answer(call, 0, -result);
}
