/*
 * The two-connection harness of the connection engine's unit tests (test_conn.c,
 * test_conn_loop.c): a client and a server connection in one process, driven alone - no runtime,
 * agent or configuration file - with identities made here (a CA, two leaves it issues) and
 * settings filled as core/intercept.c fills them from the configuration.
 *
 * Each connection's fd is one end of its own socketpair; the test holds the other two ends and
 * is the network between them: it forwards the bytes itself, a few (often one) at a time, so the
 * TLS layer sees short reads and EAGAIN at every point of a record. Both connection fds are
 * non-blocking unless a test says otherwise.
 */
#ifndef TEST_CONN_SUPPORT_H
#define TEST_CONN_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "config/config.h"
#include "core/conn.h"

#define CLIENT_ID "spiffe://example.org/ns/client"
#define SERVER_ID "spiffe://example.org/ns/server"
#define SERVER_PORT 8443
#define CLIENT_PORT 51234
#define STEP_LIMIT 400000 /* steps of one byte each way: a handshake takes a few thousand */

/* The identities group_setup makes: a client's and a server's, and both with resumption. */
extern struct mt_tls_context *client_context;
extern struct mt_tls_context *server_context;
extern struct mt_tls_context *resuming_client_context;
extern struct mt_tls_context *resuming_server_context;

/* What the connections logged since the test began. */
extern char logged[16384];
extern size_t logged_length;
void assert_logged(const char *line);

/* cmocka group fixtures: the identities, the log captured. */
int group_setup(void **state);
int group_teardown(void **state);

/* One direction: bytes read from one test-held end and written to the other. */
struct link {
    int from;
    int to;
    unsigned char held[65536]; /* read but not yet taken by the receiving socket */
    size_t held_length;
    size_t carried; /* bytes delivered so far */
};

struct pair {
    int client_fd;    /* the client connection's socket */
    int server_fd;    /* the server connection's socket */
    struct link up;   /* client → server */
    struct link down; /* server → client */
    struct mt_conn *client;
    struct mt_conn *server;
    struct mt_conn_settings client_settings;
    struct mt_conn_settings server_settings;
    struct mt_config config;
    bool resuming; /* the contexts with resumption */
    bool opened;
};

/* Delivers at most limit bytes; returns how many were delivered. */
size_t forward(struct link *link, size_t limit);

struct sockaddr_storage loopback(uint16_t port);
void set_nonblocking(int fd, bool nonblocking);

/* cmocka fixtures of one test: a pair with settings for a strict port and an mtls destination. */
int pair_setup(void **state);
int pair_teardown(void **state);

/* Opens both ends with the pair's settings: the client connecting, the server accepted. */
void open_pair(struct pair *pair);

/* What close() does: the table lets go of the fd, the connection says goodbye, the fd closes. */
void close_end(struct mt_conn **conn, int *fd);

enum mt_conn_state state_of(struct mt_conn *conn);
bool both_established(struct pair *pair);
bool client_failed(struct pair *pair);
bool server_failed(struct pair *pair);

/*
 * Forwards up to bytes each way and lets both connections take a step, until done says so;
 * false when the step limit came first. Every step must leave errno as it was.
 */
bool drive(struct pair *pair, size_t bytes, bool (*done)(struct pair *pair));

/* open_pair, then drive a byte at a time until both are established. */
void handshake(struct pair *pair);

#endif
