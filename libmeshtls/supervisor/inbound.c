/*
 * listen(): the program's inbound connections.
 *
 * The supervisor makes the listen(2) on the program's own socket (a copy of its descriptor),
 * so the real address is bound and listening, then asks policy whether that port is meshed for
 * any peer. Not meshed: that was the program's call, answered. Meshed: the supervisor keeps
 * the real listener, and puts in the program's descriptor, at the same number
 * (SECCOMP_IOCTL_NOTIF_ADDFD with SETFD), a listener on a loopback ephemeral port with the
 * program's O_NONBLOCK and close-on-exec; getsockname on it answers the real address. A thread
 * accepts on the real listener through the engine (strict, permissive, allow lists: the same
 * decisions the preload takes) and relays each admitted connection to the program's listener.
 *
 * Owns the real listener and its accept thread, which end when the program's listener no longer
 * accepts (the program closed it). Never hands the program a connection the engine refused.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/intercept.h"
#include "../include/meshtls.h"
#include "../policy/policy.h"
#include "../util/log.h"
#include "internal.h"

#define HANDSHAKE_POLL_MS 1000
#define LISTENER_CHECK_MS 500 /* how soon a listener the program closed is released */

struct listener {
    int real;                        /* the supervisor's: the program's original socket */
    struct sockaddr_storage program; /* the program's loopback listener */
    socklen_t program_length;
    ino_t program_inode; /* the program's side, remembered for getsockname and accept */
    ino_t real_inode;    /* remembered so that a duplicate the program kept is refused accept */
    unsigned port;
};

struct accepted {
    struct listener *listener;
    int fd;
    char peer[INET6_ADDRSTRLEN + 16];
};

static unsigned port_of(const struct sockaddr_storage *address)
{
    if (address->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)address)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)address)->sin6_port);
}

/* A peer address of family, on loopback or not, for asking policy about a port. */
static struct sockaddr_storage probe_peer(int family, bool loopback)
{
    struct sockaddr_storage peer;
    memset(&peer, 0, sizeof(peer));
    if (family == AF_INET) {
        struct sockaddr_in *v4 = (struct sockaddr_in *)&peer;
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(loopback ? INADDR_LOOPBACK : 0xC0000201u); /* 192.0.2.1 */
    } else {
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&peer;
        v6->sin6_family = AF_INET6;
        if (loopback)
            v6->sin6_addr = in6addr_loopback;
        else
            inet_pton(AF_INET6, "2001:db8::1", &v6->sin6_addr);
    }
    return peer;
}

/* True when policy meshes some connection to local: from loopback or from elsewhere, of either
 * family (an IPv6 socket may also accept IPv4 peers). */
static bool is_meshed_port(const struct mt_config *config, const struct sockaddr_storage *local)
{
    int families[] = {AF_INET, AF_INET6};
    for (int f = 0; f < 2; f++) {
        for (int loopback = 0; loopback < 2; loopback++) {
            struct sockaddr_storage peer = probe_peer(families[f], loopback != 0);
            struct sockaddr_storage here = probe_peer(families[f], true);
            if (families[f] == AF_INET)
                ((struct sockaddr_in *)&here)->sin_port = htons((uint16_t)port_of(local));
            else
                ((struct sockaddr_in6 *)&here)->sin6_port = htons((uint16_t)port_of(local));
            if (mt_policy_decide_inbound(config, &here, &peer).mode != MT_INBOUND_PLAIN)
                return true;
        }
    }
    return false;
}

/* Drives the server handshake; true when the connection may be relayed (established, or left
 * plain by policy: not a mesh connection). */
static bool admit(int fd)
{
    for (;;) {
        int step = meshtls_handshake(fd);
        if (step == 0)
            return true;
        if (step < 0)
            return errno == ENOTCONN;
        struct pollfd entry = {.fd = fd, .events = step == MESHTLS_WANT_READ ? POLLIN : POLLOUT};
        (void)poll(&entry, 1, HANDSHAKE_POLL_MS);
    }
}

static void *serve_connection(void *argument)
{
    struct accepted *accepted = argument;
    struct listener *listener = accepted->listener;
    if (!admit(accepted->fd)) {
        meshtls_close(accepted->fd);
        goto out;
    }
    /* The relay's end is bound and remembered before it connects: the program may accept the
     * connection, and ask its addresses, before connect returns here. */
    struct sockaddr_storage end = probe_peer(listener->program.ss_family, true), peer, here;
    socklen_t end_length = listener->program_length, peer_length = sizeof(peer),
              here_length = sizeof(here);
    int local = socket(listener->program.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool known = local >= 0 && bind(local, (struct sockaddr *)&end, end_length) == 0 &&
                 getsockname(local, (struct sockaddr *)&end, &end_length) == 0 &&
                 getpeername(accepted->fd, (struct sockaddr *)&peer, &peer_length) == 0 &&
                 getsockname(accepted->fd, (struct sockaddr *)&here, &here_length) == 0;
    if (known)
        mt_supervisor_remember_relay(&end, end_length, &peer, peer_length, &here, here_length);
    if (local < 0 ||
        connect(local, (struct sockaddr *)&listener->program, listener->program_length) != 0) {
        mt_log_warn("supervisor: connection from %s on :%u: the program's listener does not "
                    "accept (%s); reset",
                    accepted->peer, listener->port, strerror(errno));
        if (errno == ECONNREFUSED) /* the program closed its listener: stop accepting for it */
            shutdown(listener->real, SHUT_RDWR);
        if (known)
            mt_supervisor_forget_relay(&end, end_length);
        if (local >= 0)
            close(local);
        meshtls_close(accepted->fd);
        goto out;
    }
    char peer_id[512] = "";
    (void)meshtls_peer_id(accepted->fd, peer_id, sizeof(peer_id));
    mt_log_info("supervisor: connection from %s on :%u relayed to the program (%s%s)",
                accepted->peer, listener->port, peer_id[0] != '\0' ? "mtls, peer " : "plain",
                peer_id);
    char what[sizeof(accepted->peer) + 32];
    snprintf(what, sizeof(what), "connection from %s on :%u", accepted->peer, listener->port);
    mt_supervisor_relay(accepted->fd, local, what);
    if (known)
        mt_supervisor_forget_relay(&end, end_length);
out:
    free(accepted);
    return NULL;
}

static void describe_peer(const struct sockaddr_storage *peer, char *text, size_t capacity)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (peer->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, host, sizeof(host));
    else if (peer->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, host, sizeof(host));
    snprintf(text, capacity, "%s:%u", host, port_of(peer));
}

/* True while a listening TCP socket with inode exists in this network namespace: the kernel's
 * tables tell, without a connection the program would see. */
static bool listens(ino_t inode)
{
    const char *tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    char line[512];
    for (size_t t = 0; t < 2; t++) {
        FILE *table = fopen(tables[t], "re");
        if (table == NULL)
            continue;
        bool found = false;
        while (!found && fgets(line, sizeof(line), table) != NULL) {
            unsigned state = 0;
            unsigned long number = 0;
            /* sl local remote st tx:rx tr:when retrnsmt uid timeout inode */
            if (sscanf(line, "%*s %*s %*s %x %*s %*s %*s %*s %*s %lu", &state, &number) == 2)
                found = state == 0x0A && number == (unsigned long)inode;
        }
        fclose(table);
        if (found)
            return true;
    }
    return false;
}

/* Accepts until the real listener fails, or the program's listener is gone (closed by the
 * program, or shut down here when a relay found it refusing): then the real address is
 * released, as the program's close would have released it. The listener record stays:
 * connections still being relayed point at it. */
static void *accept_loop(void *argument)
{
    struct listener *listener = argument;
    for (;;) {
        struct pollfd entry = {.fd = listener->real, .events = POLLIN};
        int ready = poll(&entry, 1, LISTENER_CHECK_MS);
        if (ready < 0 && errno != EINTR)
            break;
        if (ready == 0) {
            if (listens(listener->program_inode))
                continue;
            errno = ENOTCONN;
            break;
        }
        struct sockaddr_storage peer;
        socklen_t length = sizeof(peer);
        int fd = mt_intercept_accept4(listener->real, (struct sockaddr *)&peer, &length,
                                      SOCK_CLOEXEC, MT_INTERCEPT_BY_POLICY);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
                continue;
            break;
        }
        struct accepted *accepted = calloc(1, sizeof(*accepted));
        if (accepted == NULL) {
            meshtls_close(fd);
            continue;
        }
        accepted->listener = listener;
        accepted->fd = fd;
        describe_peer(&peer, accepted->peer, sizeof(accepted->peer));
        if (!mt_supervisor_spawn(serve_connection, accepted)) {
            meshtls_close(fd);
            free(accepted);
        }
    }
    if (errno == ENOTCONN || errno == EINVAL)
        mt_log_info("supervisor: the program no longer listens on :%u; released", listener->port);
    else
        mt_log_warn("supervisor: stopped accepting on :%u: %s", listener->port, strerror(errno));
    mt_supervisor_forget(listener->program_inode);
    mt_supervisor_forget(listener->real_inode);
    close(listener->real);
    return NULL;
}

/* The program's side: a loopback listener of family, flags as the original's; -errno. */
static int open_program_listener(int family, int backlog, int original,
                                 struct sockaddr_storage *address, socklen_t *length)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_storage here = probe_peer(family, true);
    *length = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    int flags = fcntl(original, F_GETFL);
    if (bind(fd, (struct sockaddr *)&here, *length) != 0 || listen(fd, backlog) != 0 ||
        getsockname(fd, (struct sockaddr *)address, length) != 0 || flags < 0 ||
        fcntl(fd, F_SETFL, flags & O_NONBLOCK) != 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    return fd;
}

/* Moves the program's listener behind the supervisor; answers the call. Takes real. */
static void take_over(struct mt_supervisor_call *call, int real, int family,
                      const struct sockaddr_storage *local, socklen_t local_length)
{
    struct listener *listener = calloc(1, sizeof(*listener));
    int target = (int)call->args[0];
    int program = -ENOMEM;
    if (listener != NULL)
        program = open_program_listener(family, (int)call->args[1], real, &listener->program,
                                        &listener->program_length);
    int replaced = program >= 0
                       ? mt_supervisor_replace_fd(call, program, target,
                                                  mt_supervisor_fd_is_cloexec(call, target))
                       : program;
    if (replaced < 0) {
        mt_log_warn("supervisor: pid %d's listener on :%u cannot be meshed: %s; its listen "
                    "fails",
                    (int)call->pid, port_of(local), strerror(-replaced));
        if (program >= 0)
            close(program);
        /* The program keeps this socket: it must not go on listening unmeshed. A shutdown
         * takes a TCP listener back to closed (tcp_disconnect). */
        shutdown(real, SHUT_RDWR);
        close(real);
        free(listener);
        mt_supervisor_answer(call, 0, -replaced);
        return;
    }
    listener->program_inode = mt_supervisor_inode(program);
    mt_supervisor_remember(listener->program_inode, MT_SUPERVISOR_LOCAL, local, local_length);
    close(program);
    listener->real = real;
    listener->port = port_of(local);
    listener->real_inode = mt_supervisor_inode(real);
    mt_supervisor_remember(listener->real_inode, MT_SUPERVISOR_SERVED, local, local_length);
    if (!mt_supervisor_spawn(accept_loop, listener)) {
        close(real);
        free(listener);
        mt_supervisor_answer(call, 0, ENOMEM);
        return;
    }
    mt_log_info("supervisor: pid %d listens on :%u, meshed", (int)call->pid, listener->port);
    mt_supervisor_answer(call, 0, 0);
}

void mt_supervisor_listen(struct mt_supervisor_call *call)
{
    int real = mt_supervisor_take_fd(call, (int)call->args[0]);
    int family = 0;
    if (real < 0) {
        if (real != -ESRCH)
            mt_supervisor_answer(call, 0, -real);
        return;
    }
    if (!mt_supervisor_is_tcp(real, &family)) {
        /* Not TCP: nothing of the mesh's; the kernel runs it as made. */
        mt_supervisor_continue(call);
        close(real);
        return;
    }
    struct sockaddr_storage local;
    socklen_t length = sizeof(local);
    /* Our listen is the program's: the real address listens from here on, whoever serves it. */
    if (listen(real, (int)call->args[1]) != 0 ||
        getsockname(real, (struct sockaddr *)&local, &length) != 0) {
        mt_supervisor_answer(call, 0, errno);
        close(real);
        return;
    }
    bool ours = mt_supervisor_is_remembered(mt_supervisor_inode(real));
    if (ours || !is_meshed_port(call->supervisor->config, &local)) {
        mt_supervisor_answer(call, 0, 0);
        close(real);
        return;
    }
    take_over(call, real, family, &local, length);
}
