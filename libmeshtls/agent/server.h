/*
 * The agent's socket server: a Unix stream socket speaking identity/proto.h, one request and one
 * reply per connection, every client independent of the others.
 *
 * Single-threaded poll() loop over non-blocking sockets. A client gets MT_SERVER_REQUEST_TIMEOUT_MS
 * to send one complete frame and as long again to take the reply; beyond MT_SERVER_CLIENTS_MAX
 * concurrent clients, new connections are closed at once. Malformed, oversized and truncated
 * requests get an ERROR reply or a close, and a log line naming the caller.
 */
#ifndef MT_AGENT_SERVER_H
#define MT_AGENT_SERVER_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "../util/result.h"
#include "agent_config.h"
#include "ca.h"

#define MT_SERVER_CLIENTS_MAX 256
#define MT_SERVER_REQUEST_TIMEOUT_MS 5000

struct mt_server_client;

struct mt_server {
    int listen_fd;
    char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    dev_t socket_device; /* identify our socket file, so that close never unlinks another's */
    ino_t socket_inode;
    struct mt_server_client *clients; /* MT_SERVER_CLIENTS_MAX slots */
    long long accept_paused_until_ms; /* after EMFILE, so poll does not spin on the listener */
    const struct mt_agent_config *config;
    const struct mt_ca *ca;
};

/*
 * Binds socket_path (mode 0666: every local user may ask; attestation decides what they get).
 * Creates the parent directory (0755) when missing, replaces a stale socket file, and refuses
 * when a live agent answers on the path or the path is not a socket.
 */
MT_RESULT mt_server_open(struct mt_server *server, const char *socket_path,
                         const struct mt_agent_config *config, const struct mt_ca *ca,
                         char *message, size_t message_size);

/* Serves until signal_fd (a signalfd) becomes readable; returns the signal number received. */
MT_RESULT mt_server_run(struct mt_server *server, int signal_fd, int *signal_number);

/* Closes every connection and removes the socket file if it is still ours. */
void mt_server_close(struct mt_server *server);

#endif
