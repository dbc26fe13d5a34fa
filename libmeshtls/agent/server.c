/*
 * The agent's socket server (see server.h): the listening socket and the event loop.
 *
 * Owns the socket file and the loop: one poll over the signalfd, the listener and every client,
 * then what is ready is served (server_clients.c), deadlines are enforced, the issuer's files are
 * polled and the metrics of exited processes swept. The only synchronous work a turn does for one
 * client is bounded (one ECDSA signature, one executable hashed for a sha256 rule within its
 * uid's budget, one metrics file created, one bounded reading of the metrics directory for a
 * STATUS request, or, with a kubelet configured, one synchronous query of the kubelet's pod list
 * bounded to MT_KUBELET_QUERY_TIMEOUT_MS (3 s) and made at most once per second whatever
 * callers do: kubelet.h). It must never steal the socket of a live agent, never unlink a socket
 * file that is no longer its own, and never exit on a client's behaviour.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../metrics/directory.h"
#include "../metrics/metrics.h"
#include "../util/log.h"
#include "../util/sys.h"
#include "../util/text.h"
#include "server_internal.h"

/* ---- opening the socket ------------------------------------------------------------------ */

static MT_RESULT ensure_parent_directory(const char *socket_path, struct mt_text *reason)
{
    char parent[sizeof(((struct sockaddr_un *)0)->sun_path)];
    snprintf(parent, sizeof(parent), "%s", socket_path);
    char *slash = strrchr(parent, '/');
    if (slash == NULL || slash == parent)
        return MT_OK_RESULT;
    *slash = '\0';
    if (mkdir(parent, 0755) == 0 || errno == EEXIST)
        return MT_OK_RESULT;
    return mt_result_explain(reason, MT_ERR_IO, "cannot create directory %s for the socket: %s",
                             parent, strerror(errno));
}

static void address_of(const char *socket_path, struct sockaddr_un *address)
{
    memset(address, 0, sizeof(*address));
    address->sun_family = AF_UNIX;
    snprintf(address->sun_path, sizeof(address->sun_path), "%s", socket_path);
}

/*
 * A socket file left by an agent that died cannot be bound again; one that a live agent still
 * serves must not be stolen. connect() tells them apart: refused means nobody listens.
 */
static MT_RESULT clear_stale_socket(const char *socket_path, struct mt_text *reason)
{
    struct stat status;
    if (lstat(socket_path, &status) != 0) {
        if (errno == ENOENT)
            return MT_OK_RESULT;
        return mt_result_explain(reason, MT_ERR_IO, "cannot check %s: %s", socket_path,
                                 strerror(errno));
    }
    if (!S_ISSOCK(status.st_mode))
        return mt_result_explain(
            reason, MT_ERR_IO,
            "%s exists and is not a socket: remove it or choose another --socket", socket_path);

    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return mt_result_explain(reason, MT_ERR_IO, "socket: %s", strerror(errno));
    struct sockaddr_un address;
    address_of(socket_path, &address);
    int connected = connect(probe, (struct sockaddr *)&address, sizeof(address));
    int connect_errno = errno;
    close(probe);
    /* EAGAIN: a full backlog, which only a live listener has. */
    if (connected == 0 || connect_errno == EAGAIN)
        return mt_result_explain(
            reason, MT_ERR_IO,
            "another meshtls-agent is already serving %s; stop it first or choose "
            "another --socket",
            socket_path);
    if (connect_errno != ECONNREFUSED)
        return mt_result_explain(reason, MT_ERR_IO, "cannot check %s: %s", socket_path,
                                 strerror(connect_errno));
    if (unlink(socket_path) != 0 && errno != ENOENT)
        return mt_result_explain(reason, MT_ERR_IO, "cannot remove stale socket %s: %s",
                                 socket_path, strerror(errno));
    mt_log_info("replaced stale socket %s", socket_path);
    return MT_OK_RESULT;
}

MT_RESULT mt_server_open(struct mt_server *server, const char *socket_path,
                         const struct mt_agent_config *config, struct mt_issuer *issuer,
                         struct mt_text *reason)
{
    MT_ENSURE_REF(server);
    MT_ENSURE_REF(socket_path);
    MT_ENSURE_REF(config);
    MT_ENSURE_REF(issuer);
    memset(server, 0, sizeof(*server));
    server->listen_fd = -1;
    server->config = config;
    server->issuer = issuer;
    server->metrics_directory.fd = -1;
    server->membership.memfd = -1;
    if (!mt_metrics_directory_for_socket(socket_path, server->metrics_directory.path,
                                         sizeof(server->metrics_directory.path)))
        return mt_result_explain(reason, MT_ERR_TOO_LONG, "socket path too long");
    if (socket_path[0] == '\0' || strlen(socket_path) >= sizeof(server->socket_path))
        return mt_result_explain(reason, MT_ERR_TOO_LONG,
                                 "socket path \"%s\" is empty or longer than %zu bytes",
                                 socket_path, sizeof(server->socket_path) - 1);
    snprintf(server->socket_path, sizeof(server->socket_path), "%s", socket_path);

    MT_GUARD(ensure_parent_directory(socket_path, reason));
    MT_GUARD(clear_stale_socket(socket_path, reason));

    mt_result result = MT_OK_RESULT;
    struct stat status;
    struct sockaddr_un address;
    address_of(socket_path, &address);
    server->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (server->listen_fd < 0) {
        result = mt_result_explain(reason, MT_ERR_IO, "socket: %s", strerror(errno));
        goto out;
    }
    if (bind(server->listen_fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        result = mt_result_explain(reason, MT_ERR_IO, "cannot bind %s: %s", socket_path,
                                   strerror(errno));
        goto out;
    }
    if (lstat(socket_path, &status) != 0) {
        result = mt_result_explain(reason, MT_ERR_IO, "cannot stat %s: %s", socket_path,
                                   strerror(errno));
        goto out;
    }
    server->socket_device = status.st_dev;
    server->socket_inode = status.st_ino;
    /* Until this chmod the socket has the umask's (narrower) mode, so nothing is exposed early. */
    if (chmod(socket_path, 0666) != 0 || listen(server->listen_fd, SOMAXCONN) != 0) {
        result = mt_result_explain(reason, MT_ERR_IO, "cannot listen on %s: %s", socket_path,
                                   strerror(errno));
        goto out;
    }
    server->clients = calloc(MT_SERVER_CLIENTS_MAX, sizeof(*server->clients));
    if (server->clients == NULL || !mt_result_is_ok(mt_server_issued_init(server)))
        result = mt_result_explain(reason, MT_ERR_NO_MEMORY, "out of memory");

out:
    if (!mt_result_is_ok(result))
        mt_server_close(server);
    return result;
}

/* ---- the loop ----------------------------------------------------------------------------- */

static int poll_timeout(const struct mt_server *server, long long now)
{
    /* The issuer's files are polled, so the loop wakes at least that often. */
    long long earliest = now + mt_issuer_poll_timeout(server->issuer, now);
    long long membership = now + mt_membership_source_poll_timeout(&server->membership, now);
    if (membership < earliest)
        earliest = membership;
    if (server->next_sweep_ms < earliest)
        earliest = server->next_sweep_ms;
    if (server->accept_paused_until_ms > now)
        earliest = server->accept_paused_until_ms;
    /* A sweep under way takes its next step as soon as the ready clients are served. */
    if (server->sweeping)
        earliest = now;
    for (size_t i = 0; i < MT_SERVER_CLIENTS_MAX; i++) {
        const struct mt_server_client *client = &server->clients[i];
        if (client->state != MT_SERVER_CLIENT_FREE &&
            (earliest < 0 || client->deadline_ms < earliest))
            earliest = client->deadline_ms;
    }
    if (earliest < 0)
        return -1;
    return earliest <= now ? 0 : (int)(earliest - now);
}

/*
 * Starts removing the metrics files of dead processes and forgetting what was issued to them. The
 * sweep works on the directory held open since startup: if its path was since renamed and
 * replaced (say by a symbolic link to the agent's state directory), the descriptor still names the
 * real directory and nothing at the new target is touched. That is said once, for the operator.
 */
static void sweep_start(struct mt_server *server, long long now)
{
    server->next_sweep_ms = now + MT_SERVER_SWEEP_MS;
    bool moved = server->metrics_directory.fd >= 0 &&
                 !mt_metrics_directory_is_at_path(&server->metrics_directory);
    if (moved && !server->metrics_directory_moved)
        mt_log_warn("metrics directory %s was moved or replaced while the agent ran (whoever can "
                    "write its parent did it): the agent keeps using the directory it created and "
                    "touches nothing at that path now; find out who changed it, restore it, and "
                    "restart the agent",
                    server->metrics_directory.path);
    server->metrics_directory_moved = moved;
    (void)mt_metrics_sweep_begin(&server->metrics_directory, &server->metrics_sweep);
    server->issued_sweep_cursor = 0;
    server->sweep_removed = 0;
    server->sweeping = true;
}

/*
 * One step of the sweep under way: at most MT_SERVER_SWEEP_STEP processes looked at, so that a
 * node of 10 000 processes (a third of a second of /proc reads) never holds a request that long.
 */
static void sweep_step(struct mt_server *server)
{
    size_t before = server->issued.count;
    if (server->metrics_sweep.listing != NULL) {
        (void)mt_metrics_sweep_step(&server->metrics_directory, &server->metrics_sweep,
                                    MT_SERVER_SWEEP_STEP, &server->sweep_removed);
        return;
    }
    bool done =
        mt_issued_sweep_step(&server->issued, &server->issued_sweep_cursor, MT_SERVER_SWEEP_STEP);
    server->sweep_removed += before - server->issued.count;
    if (!done)
        return;
    server->sweeping = false;
    if (server->sweep_removed > 0)
        mt_log_debug("removed %zu metrics file(s) and record(s) of exited processes",
                     server->sweep_removed);
}

/*
 * Publishes the newest members the API server's watch handed over: one generation for however
 * many changes the watch coalesced into them. A set that cannot be published keeps the last one.
 */
static void publish_kube_members(struct mt_server *server)
{
    struct mt_membership_entry *entries = NULL;
    size_t count = 0;
    bool complete = false;
    if (!mt_kube_watch_take(server->kube_watch, &entries, &count, &complete))
        return;
    char message[256] = "";
    struct mt_text reason = mt_text_on(message, sizeof(message));
    bool was_complete = server->membership.kube_complete;
    long long started = mt_sys_now_ms();
    if (!mt_result_is_ok(mt_membership_source_set_kube(&server->membership, entries, count,
                                                       complete, &reason))) {
        free(entries);
        mt_log_error("the Kubernetes API server's members were not published: %s; still "
                     "publishing generation %llu",
                     message, (unsigned long long)server->membership.generation);
        return;
    }
    if (complete && !was_complete)
        mt_log_info("membership complete: generation %llu, %zu entries from the Kubernetes API "
                    "server, %zu in all",
                    (unsigned long long)server->membership.generation, count,
                    server->membership.live_count);
    /* The time the event loop spent on it: no request is served meanwhile. */
    mt_log_debug("membership generation %llu: %zu entries from the Kubernetes API server%s, %zu "
                 "in all, %zu removed (published in %lld ms)",
                 (unsigned long long)server->membership.generation, count,
                 complete ? "" : " (not all listed yet)", server->membership.live_count,
                 server->membership.removed_count, mt_sys_now_ms() - started);
}

MT_RESULT mt_server_turn(struct mt_server *server, int signal_fd, int *signal_number)
{
    MT_ENSURE_REF(server);
    MT_ENSURE_REF(signal_number);
    MT_ENSURE(server->clients != NULL, MT_ERR_INVALID_ARGUMENT);
    *signal_number = 0;
    struct pollfd fds[3 + MT_SERVER_CLIENTS_MAX];
    struct mt_server_client *polled[3 + MT_SERVER_CLIENTS_MAX];

    long long now = mt_sys_now_ms();
    nfds_t count = 0;
    fds[count++] = (struct pollfd){.fd = signal_fd, .events = POLLIN};
    bool accepting = server->accept_paused_until_ms <= now;
    fds[count++] = (struct pollfd){.fd = accepting ? server->listen_fd : -1, .events = POLLIN};
    fds[count++] = (struct pollfd){.fd = mt_kube_watch_fd(server->kube_watch), .events = POLLIN};
    for (size_t i = 0; i < MT_SERVER_CLIENTS_MAX; i++) {
        struct mt_server_client *client = &server->clients[i];
        if (client->state == MT_SERVER_CLIENT_FREE)
            continue;
        short events = client->state == MT_SERVER_CLIENT_READING ? POLLIN : POLLOUT;
        polled[count] = client;
        fds[count++] = (struct pollfd){.fd = client->fd, .events = events};
    }

    int ready = poll(fds, count, poll_timeout(server, now));
    if (ready < 0 && errno == EINTR)
        return MT_OK_RESULT;
    MT_ENSURE(ready >= 0, MT_ERR_IO);

    if (fds[0].revents & POLLIN) {
        struct signalfd_siginfo info;
        if (read(signal_fd, &info, sizeof(info)) == (ssize_t)sizeof(info)) {
            *signal_number = (int)info.ssi_signo;
            return MT_OK_RESULT;
        }
    }
    for (nfds_t i = 3; i < count; i++) {
        struct mt_server_client *client = polled[i];
        if (fds[i].revents == 0 || client->state == MT_SERVER_CLIENT_FREE)
            continue;
        if (client->state == MT_SERVER_CLIENT_READING)
            mt_server_client_read(server, client);
        else
            mt_server_client_write(client);
    }
    if (fds[1].revents & POLLIN)
        mt_server_clients_accept(server);
    if (fds[2].revents & POLLIN)
        publish_kube_members(server);

    now = mt_sys_now_ms();
    for (size_t i = 0; i < MT_SERVER_CLIENTS_MAX; i++) {
        struct mt_server_client *client = &server->clients[i];
        if (client->state != MT_SERVER_CLIENT_FREE && client->deadline_ms <= now)
            mt_server_client_expire(client);
    }
    mt_issuer_poll(server->issuer, now);
    mt_membership_source_poll(&server->membership, now);
    mt_log_limits_flush(mt_sys_now_ms());
    if (!server->sweeping && now >= server->next_sweep_ms)
        sweep_start(server, now);
    if (server->sweeping)
        sweep_step(server);
    return MT_OK_RESULT;
}

MT_RESULT mt_server_run(struct mt_server *server, int signal_fd, int *signal_number)
{
    MT_ENSURE_REF(signal_number);
    *signal_number = 0;
    while (*signal_number == 0)
        MT_GUARD(mt_server_turn(server, signal_fd, signal_number));
    return MT_OK_RESULT;
}

void mt_server_close(struct mt_server *server)
{
    mt_membership_source_close(&server->membership);
    if (server == NULL)
        return;
    if (server->clients != NULL) {
        for (size_t i = 0; i < MT_SERVER_CLIENTS_MAX; i++)
            mt_server_client_close(&server->clients[i]);
        free(server->clients);
        server->clients = NULL;
    }
    mt_metrics_sweep_end(&server->metrics_sweep);
    server->sweeping = false;
    mt_server_issued_free(server);
    mt_metrics_directory_close(&server->metrics_directory);
    if (server->listen_fd >= 0) {
        close(server->listen_fd);
        server->listen_fd = -1;
        /* Another agent may have replaced the file since (judging ours stale); leave theirs. */
        struct stat status;
        if (lstat(server->socket_path, &status) == 0 && status.st_dev == server->socket_device &&
            status.st_ino == server->socket_inode)
            unlink(server->socket_path);
    }
}
