/*
 * connect(): the program's outbound connections.
 *
 * The destination is read once from the program's memory and decided by policy, as the preload
 * decides it. Plain: the supervisor connects the program's own socket (a copy of its
 * descriptor) to that destination and answers with the kernel's result, EINPROGRESS included:
 * the program goes on as if it had made the call itself. Meshed: the supervisor makes the
 * connection as an mTLS client through the engine, waits for its handshake, and only then
 * connects the program's socket to a loopback listener of its own, answers 0 (also on a
 * non-blocking socket, which connect(2) allows) or the refusal's errno (ECONNREFUSED, ...), and
 * relays. getpeername on the program's socket then answers the destination.
 *
 * Owns nothing once the relay ends. Never lets the program's socket reach a meshed destination
 * in clear: every failure on that path is an errno for the program.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/intercept.h"
#include "../core/members.h"
#include "../include/meshtls.h"
#include "../policy/policy.h"
#include "../util/log.h"
#include "internal.h"

#define LOCAL_WAIT_MS 5000

/* An IPv4-mapped IPv6 destination becomes the IPv4 one: policy and the engine see what the
 * packets will carry. */
static socklen_t normalize(struct sockaddr_storage *address, socklen_t length)
{
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)address;
    if (address->ss_family != AF_INET6 || length < sizeof(*v6) ||
        !IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr))
        return length;
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = v6->sin6_port};
    memcpy(&v4.sin_addr, &v6->sin6_addr.s6_addr[12], 4);
    memset(address, 0, sizeof(*address));
    memcpy(address, &v4, sizeof(v4));
    return sizeof(v4);
}

static void describe(const struct sockaddr_storage *address, char *text, size_t capacity)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (address->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)address;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
        port = ntohs(v4->sin_port);
        snprintf(text, capacity, "%s:%u", host, port);
    } else if (address->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)address;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
        port = ntohs(v6->sin6_port);
        snprintf(text, capacity, "[%s]:%u", host, port);
    } else {
        snprintf(text, capacity, "(family %d)", address->ss_family);
    }
}

static bool wait_for(int fd, short events)
{
    struct pollfd entry = {.fd = fd, .events = events};
    return poll(&entry, 1, LOCAL_WAIT_MS) == 1;
}

/* A loopback listener of family on an ephemeral port; -errno on failure. */
static int open_loopback_listener(int family, struct sockaddr_storage *address, socklen_t *length)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    memset(address, 0, sizeof(*address));
    if (family == AF_INET) {
        struct sockaddr_in *v4 = (struct sockaddr_in *)address;
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        *length = sizeof(*v4);
    } else {
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)address;
        v6->sin6_family = AF_INET6;
        v6->sin6_addr = in6addr_loopback;
        *length = sizeof(*v6);
    }
    if (bind(fd, (struct sockaddr *)address, *length) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)address, length) != 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    return fd;
}

static bool same_address(const struct sockaddr_storage *a, socklen_t a_length,
                         const struct sockaddr_storage *b, socklen_t b_length)
{
    return a_length == b_length && memcmp(a, b, a_length) == 0;
}

/*
 * Connects the program's socket (our copy, program) to a fresh loopback listener and returns
 * the accepted end, checked to be the program's socket and not another local process that
 * raced for the port; -errno on failure.
 */
static int connect_program_locally(int program, int family)
{
    struct sockaddr_storage listen_address, expected, peer;
    socklen_t listen_length = sizeof(listen_address);
    int listener = open_loopback_listener(family, &listen_address, &listen_length);
    if (listener < 0)
        return listener;
    int result = -ETIMEDOUT;
    if (connect(program, (struct sockaddr *)&listen_address, listen_length) != 0) {
        int error = errno, pending = 0;
        socklen_t pending_length = sizeof(pending);
        if (error != EINPROGRESS || !wait_for(program, POLLOUT) ||
            getsockopt(program, SOL_SOCKET, SO_ERROR, &pending, &pending_length) != 0 ||
            pending != 0) {
            result = -(error != EINPROGRESS ? error : pending != 0 ? pending : ETIMEDOUT);
            goto out;
        }
    }
    socklen_t expected_length = sizeof(expected);
    if (getsockname(program, (struct sockaddr *)&expected, &expected_length) != 0) {
        result = -errno;
        goto out;
    }
    for (int attempt = 0; attempt < 8 && wait_for(listener, POLLIN); attempt++) {
        socklen_t peer_length = sizeof(peer);
        int accepted = accept4(listener, (struct sockaddr *)&peer, &peer_length, SOCK_CLOEXEC);
        if (accepted < 0)
            continue;
        if (same_address(&peer, peer_length, &expected, expected_length)) {
            result = accepted;
            break;
        }
        close(accepted);
    }
out:
    close(listener);
    return result;
}

/* The engine's mTLS client connection to destination, handshake done; -errno on failure. */
static int connect_meshed(const struct sockaddr_storage *destination, socklen_t length)
{
    int fd = socket(destination->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (mt_intercept_connect(fd, (const struct sockaddr *)destination, length,
                             MT_INTERCEPT_BY_POLICY) != 0) {
        int error = errno;
        meshtls_close(fd);
        return -error;
    }
    int step;
    while ((step = meshtls_handshake(fd)) > 0)
        (void)wait_for(fd, step == MESHTLS_WANT_READ ? POLLIN : POLLOUT);
    if (step < 0) {
        int error = errno == ENOTCONN ? ECONNREFUSED : errno;
        meshtls_close(fd);
        return -error;
    }
    return fd;
}

/* Where a connect goes: as the program wrote it (what getpeername answers: an IPv4-mapped
 * address on an IPv6 socket stays so), and as the packets carry it. */
struct destination {
    struct sockaddr_storage asked, real;
    socklen_t asked_length, real_length;
};

/* The mesh connection's local address as a socket of family sees it: IPv4-mapped for an IPv6
 * socket whose destination was IPv4. */
static socklen_t local_address(int mesh, int family, struct sockaddr_storage *address)
{
    socklen_t length = sizeof(*address);
    if (getsockname(mesh, (struct sockaddr *)address, &length) != 0)
        return 0;
    if (family != AF_INET6 || address->ss_family != AF_INET)
        return length;
    struct sockaddr_in v4 = *(struct sockaddr_in *)address;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)address;
    memset(address, 0, sizeof(*address));
    v6->sin6_family = AF_INET6;
    v6->sin6_port = v4.sin_port;
    v6->sin6_addr.s6_addr[10] = 0xff;
    v6->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&v6->sin6_addr.s6_addr[12], &v4.sin_addr, 4);
    return sizeof(*v6);
}

/* Closes program (our copy) before the relay starts, whatever happens. */
static void mesh_connect(struct mt_supervisor_call *call, int program, int family,
                         const struct destination *target)
{
    const struct sockaddr_storage *destination = &target->real;
    socklen_t length = target->real_length;
    char where[INET6_ADDRSTRLEN + 16];
    describe(destination, where, sizeof(where));
    int mesh = connect_meshed(destination, length);
    if (mesh < 0) {
        mt_log_info("supervisor: pid %d's connection to %s refused: %s", (int)call->pid, where,
                    strerror(-mesh));
        mt_supervisor_answer(call, 0, -mesh);
        close(program);
        return;
    }
    /* A signal may have ended the call during the handshake: the program restarts it (or gets
     * EINTR), and its socket must then still be unconnected, for that call to mesh afresh. */
    if (!mt_supervisor_call_is_valid(call)) {
        meshtls_close(mesh);
        close(program);
        return;
    }
    int local = connect_program_locally(program, family);
    if (local < 0) {
        mt_log_warn("supervisor: pid %d's connection to %s: cannot connect its socket to the "
                    "local relay: %s",
                    (int)call->pid, where, strerror(-local));
        meshtls_close(mesh);
        mt_supervisor_answer(call, 0, ECONNREFUSED);
        close(program);
        return;
    }
    ino_t inode = mt_supervisor_inode(program);
    mt_supervisor_remember(inode, MT_SUPERVISOR_PEER, &target->asked, target->asked_length);
    struct sockaddr_storage here;
    socklen_t here_length = local_address(mesh, family, &here);
    if (here_length > 0)
        mt_supervisor_remember(inode, MT_SUPERVISOR_LOCAL, &here, here_length);
    close(program); /* the program's close must end the connection, not wait for ours */
    char peer[512] = "";
    (void)meshtls_peer_id(mesh, peer, sizeof(peer));
    mt_log_info("supervisor: pid %d connected to %s (mtls, peer %s)", (int)call->pid, where,
                peer[0] != '\0' ? peer : "plain by policy");
    mt_supervisor_answer(call, 0, 0);
    char what[sizeof(where) + 48];
    snprintf(what, sizeof(what), "pid %d's connection to %s", (int)call->pid, where);
    mt_supervisor_relay(mesh, local, what);
    mt_supervisor_forget(inode);
}

/* connect(2) on the program's socket, made here with the arguments read once. */
static void connect_directly(struct mt_supervisor_call *call, int program,
                             const struct sockaddr_storage *address, socklen_t length)
{
    int result = connect(program, (const struct sockaddr *)address, length);
    mt_supervisor_answer(call, 0, result == 0 ? 0 : errno);
}

static bool is_connected(int fd)
{
    struct sockaddr_storage peer;
    socklen_t length = sizeof(peer);
    return getpeername(fd, (struct sockaddr *)&peer, &length) == 0;
}

/* Answers the call; true when program (our copy) was closed on the way. */
static bool decide(struct mt_supervisor_call *call, int program, int family)
{
    struct destination target;
    memset(&target, 0, sizeof(target));
    struct sockaddr_storage *address = &target.asked;
    socklen_t length = target.asked_length = (socklen_t)call->args[2];
    if (length > sizeof(*address)) {
        mt_supervisor_answer(call, 0, EINVAL);
        return false;
    }
    int copied = mt_supervisor_copy_in(call, call->args[1], address, length);
    if (copied != 0) {
        if (copied != -ESRCH)
            mt_supervisor_answer(call, 0, -copied);
        return false;
    }
    target.real = *address;
    target.real_length = normalize(&target.real, length);
    bool is_ip = target.real.ss_family == AF_INET || target.real.ss_family == AF_INET6;
    /* AF_UNSPEC (disconnect), a second connect (EISCONN, EALREADY): the kernel's answers. */
    if (!is_ip || is_connected(program)) {
        connect_directly(call, program, address, length);
        return false;
    }
    struct mt_outbound_decision decision =
        mt_policy_decide_outbound(call->supervisor->config, &target.real);
    /* "auto" is settled by the mesh membership here as in a preloaded process (core/members.h). */
    mt_members_decide(call->supervisor->config, &target.real, &decision);
    if (decision.mode == MT_OUTBOUND_PLAIN) {
        connect_directly(call, program, address, length);
        return false;
    }
    mesh_connect(call, program, family, &target);
    return true;
}

void mt_supervisor_connect(struct mt_supervisor_call *call)
{
    int program = mt_supervisor_take_fd(call, (int)call->args[0]);
    int family = 0;
    if (program < 0) {
        if (program != -ESRCH)
            mt_supervisor_answer(call, 0, -program);
    } else if (!mt_supervisor_is_tcp(program, &family)) {
        /* Not TCP (Unix, UDP, ...): nothing of the mesh's; the kernel runs it as made. */
        mt_supervisor_continue(call);
        close(program);
    } else if (!decide(call, program, family)) {
        close(program);
    }
    free(call);
}
