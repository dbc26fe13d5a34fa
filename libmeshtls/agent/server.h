/*
 * The agent's socket server: a Unix stream socket speaking identity/proto.h, one request and one
 * reply per connection, every client independent of the others.
 *
 * Single-threaded poll() loop over non-blocking sockets. A client gets MT_SERVER_REQUEST_TIMEOUT_MS
 * to send one complete frame and as long again to take the reply. The MT_SERVER_CLIENTS_MAX
 * slots are shared fairly between uids (fair_share.h): when they are all taken, a uid below its
 * share displaces the oldest idle connection of the uid holding the most, and other newcomers get
 * an ERROR ("agent busy") and a close. Malformed, oversized and truncated requests get an ERROR
 * reply or a close, and a log line naming the caller; lines a client can cause are rate-limited
 * per call site (util/log.h), with the count of those suppressed.
 */
#ifndef MT_AGENT_SERVER_H
#define MT_AGENT_SERVER_H

#include <limits.h>
#include <stdbool.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "../metrics/directory.h"
#include "../util/text.h"
#include "agent_config.h"
#include "issued.h"
#include "issuer.h"
#include "kube_watch.h"
#include "membership_source.h"

#define MT_SERVER_CLIENTS_MAX 256
#define MT_SERVER_REQUEST_TIMEOUT_MS 5000
/* How often metrics files of dead processes are removed when nobody scrapes. */
#define MT_SERVER_SWEEP_MS 10000
/* Processes a sweep looks at (a /proc read each) per turn of the loop, between requests. */
#define MT_SERVER_SWEEP_STEP 128

struct mt_server_client;

struct mt_server {
    int listen_fd;
    char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    dev_t socket_device; /* identify our socket file, so that close never unlinks another's */
    ino_t socket_inode;
    struct mt_server_client *clients; /* MT_SERVER_CLIENTS_MAX slots */
    long long accept_paused_until_ms; /* after EMFILE, so poll does not spin on the listener */
    const struct mt_agent_config *config;
    struct mt_issuer *issuer;
    struct mt_kubelet *kubelet; /* NULL: no kubelet configured, callers are not asked for pods */
    size_t
        cgroup_root_depth; /* of the agent's cgroup namespace root below the host's: pod_cgroup.h */
    /* Its path set by mt_server_open; opened by mt_agent_metrics_directory_create. */
    struct mt_metrics_directory metrics_directory;
    bool metrics_directory_moved;  /* already logged that its path leads elsewhere */
    struct mt_issued_table issued; /* for `meshtls status` (issued.h) */
    long long next_sweep_ms;
    /* A sweep under way: the metrics directory first, then what was issued (server.c). */
    bool sweeping;
    struct mt_metrics_sweep metrics_sweep;
    size_t issued_sweep_cursor;
    size_t sweep_removed;
    /* The mesh membership handed out to MEMBERSHIP requests; none unless opened by the caller
     * (mt_membership_source_open) after mt_server_open. */
    struct mt_membership_source membership;
    /* The API server's members, handed over by the watch's thread (NULL: no API server). */
    struct mt_kube_watch *kube_watch;
};

/*
 * Binds socket_path (mode 0666: every local user may ask; attestation decides what they get).
 * Creates the parent directory (0755) when missing, replaces a stale socket file, and refuses
 * when a live agent answers on the path or the path is not a socket. issuer is loaded later,
 * before mt_server_run; the loop polls it for changed files. METRICS_FILE requests create the
 * caller's metrics file in the metrics directory beside the socket and pass it with the reply
 * (metrics/directory.h); the loop sweeps the files of exited processes. STATUS requests read
 * that directory one process at a time: a caller sees every process when it is root or the
 * agent's user, else only the processes of its own uid.
 */
MT_RESULT mt_server_open(struct mt_server *server, const char *socket_path,
                         const struct mt_agent_config *config, struct mt_issuer *issuer,
                         struct mt_text *reason);

/*
 * One turn of the loop: waits until signal_fd, the listener or a client is ready or a deadline
 * passes (at most until the issuer's next poll), then serves what is ready and ends the clients
 * past their deadline. *signal_number is the signal read from signal_fd (a signalfd; -1 for
 * none), 0 when there was none.
 */
MT_RESULT mt_server_turn(struct mt_server *server, int signal_fd, int *signal_number);

/* Turns until signal_fd becomes readable; returns the signal number received. */
MT_RESULT mt_server_run(struct mt_server *server, int signal_fd, int *signal_number);

/* Closes every connection and removes the socket file if it is still ours. */
void mt_server_close(struct mt_server *server);

#endif
