/*
 * The two-connection harness of the engine's unit tests (conn_support.h): identities, the log,
 * the network between the two connections, and the pair itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn_support.h"
#include "test_ca.h"

#include "core/table.h"
#include "tls/credentials.h"
#include "util/log.h"

/* ---- identities --------------------------------------------------------------------------- */

struct mt_tls_context *client_context;
struct mt_tls_context *server_context;
/* With resumption: the server holds a NewSessionTicket until its first bytes. */
struct mt_tls_context *resuming_client_context;
struct mt_tls_context *resuming_server_context;

/* A leaf for spiffe_id issued by the CA, with a key made here, as a workload's identity. */
static struct mt_tls_context *make_context(const char *spiffe_id, const struct test_ca *ca,
                                           unsigned resumption_s)
{
    time_t now = time(NULL);
    struct mt_credentials *credentials = test_ca_issue(ca, spiffe_id, now - 60, now + 3600);
    struct mt_tls_context *context = NULL;
    assert_true(mt_result_is_ok(
        mt_tls_context_new(credentials, resumption_s, MT_POST_QUANTUM_PREFER, &context)));
    mt_credentials_release(credentials); /* the context holds its own reference */
    return context;
}

/* ---- what the connections log ------------------------------------------------------------- */

char logged[16384];
size_t logged_length;

static ssize_t capture_log(int fd, const void *buffer, size_t length)
{
    (void)fd;
    size_t room = sizeof(logged) - 1 - logged_length;
    size_t kept = length < room ? length : room;
    memcpy(logged + logged_length, buffer, kept);
    logged_length += kept;
    logged[logged_length] = '\0';
    return (ssize_t)length;
}

void assert_logged(const char *line)
{
    if (strstr(logged, line) == NULL)
        fail_msg("not logged: %s\nlogged:\n%s", line, logged);
}

int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    mt_log_set_writer(capture_log);
    mt_log_set_level(MT_LOG_INFO);
    struct test_ca ca;
    time_t now = time(NULL);
    assert_true(test_ca_make(&ca, "example.org", now - 60, now + 3600));
    client_context = make_context(CLIENT_ID, &ca, 0);
    server_context = make_context(SERVER_ID, &ca, 0);
    resuming_client_context = make_context(CLIENT_ID, &ca, 600);
    resuming_server_context = make_context(SERVER_ID, &ca, 600);
    test_ca_free(&ca);
    return 0;
}

int group_teardown(void **state)
{
    (void)state;
    mt_tls_context_release(client_context);
    mt_tls_context_release(server_context);
    mt_tls_context_release(resuming_client_context);
    mt_tls_context_release(resuming_server_context);
    mt_log_set_writer(NULL);
    return 0;
}

/* ---- the network between the two connections ---------------------------------------------- */

/* Delivers at most limit bytes; returns how many were delivered. */
size_t forward(struct link *link, size_t limit)
{
    if (link->held_length < limit) {
        size_t want = limit - link->held_length;
        ssize_t n = recv(link->from, link->held + link->held_length, want, MSG_DONTWAIT);
        if (n > 0)
            link->held_length += (size_t)n;
    }
    size_t count = link->held_length < limit ? link->held_length : limit;
    if (count == 0)
        return 0;
    ssize_t n = send(link->to, link->held, count, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0)
        return 0;
    memmove(link->held, link->held + n, link->held_length - (size_t)n);
    link->held_length -= (size_t)n;
    link->carried += (size_t)n;
    return (size_t)n;
}

struct sockaddr_storage loopback(uint16_t port)
{
    struct sockaddr_storage storage;
    memset(&storage, 0, sizeof(storage));
    struct sockaddr_in *address = (struct sockaddr_in *)&storage;
    address->sin_family = AF_INET;
    address->sin_port = htons(port);
    address->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return storage;
}

void set_nonblocking(int fd, bool nonblocking)
{
    int flags = fcntl(fd, F_GETFL);
    assert_true(flags != -1);
    flags = nonblocking ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
    assert_int_equal(fcntl(fd, F_SETFL, flags), 0);
}

/* As core/intercept.c fills them for a strict port and an mtls destination, from the defaults. */
int pair_setup(void **state)
{
    struct pair *pair = calloc(1, sizeof(*pair));
    assert_non_null(pair);
    mt_config_set_defaults(&pair->config);
    struct mt_conn_settings settings = {
        .mode = MT_INBOUND_STRICT,
        .config = &pair->config,
        .handshake_timeout_ms = pair->config.handshake_timeout_ms,
        .detect_timeout_ms = pair->config.detect_timeout_ms,
    };
    settings.outbound.mode = MT_OUTBOUND_MTLS;
    settings.outbound.rule = -1;
    settings.inbound.mode = MT_INBOUND_STRICT;
    settings.inbound.rule_index = -1;
    pair->client_settings = settings;
    pair->server_settings = settings;
    pair->client_fd = -1;
    pair->server_fd = -1;
    logged_length = 0;
    logged[0] = '\0';
    *state = pair;
    return 0;
}

/* Opens both ends with the pair's settings: the client connecting, the server accepted. */
void open_pair(struct pair *pair)
{
    int client_ends[2];
    int server_ends[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, client_ends), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, server_ends), 0);
    pair->opened = true;
    pair->client_fd = client_ends[0];
    pair->server_fd = server_ends[0];
    pair->up = (struct link){.from = client_ends[1], .to = server_ends[1]};
    pair->down = (struct link){.from = server_ends[1], .to = client_ends[1]};
    for (int i = 0; i < 2; i++) {
        set_nonblocking(client_ends[i], true);
        set_nonblocking(server_ends[i], true);
    }
    struct sockaddr_storage server_address = loopback(SERVER_PORT);
    struct sockaddr_storage client_address = loopback(CLIENT_PORT);
    pair->client = mt_conn_open(pair->client_fd, MT_TLS_CLIENT,
                                pair->resuming ? resuming_client_context : client_context, NULL,
                                &server_address, &pair->client_settings, NULL);
    assert_non_null(pair->client);
    /* A non-blocking connect in flight: the handshake starts once the socket is writable. */
    errno = 0;
    assert_int_equal(mt_conn_after_connect(pair->client, -1, EINPROGRESS), -1);
    assert_int_equal(errno, EINPROGRESS);
    pair->server = mt_conn_open(pair->server_fd, MT_TLS_SERVER,
                                pair->resuming ? resuming_server_context : server_context,
                                &server_address, &client_address, &pair->server_settings, NULL);
    assert_non_null(pair->server);
}

/* What close() does: the table lets go of the fd, the connection says goodbye, the fd closes. */
void close_end(struct mt_conn **conn, int *fd)
{
    if (*conn == NULL)
        return;
    struct mt_conn *held = mt_table_remove(*fd);
    assert_ptr_equal(held, *conn);
    mt_conn_close(held, *fd);
    mt_conn_release(*conn);
    *conn = NULL;
    close(*fd);
    *fd = -1;
}

int pair_teardown(void **state)
{
    struct pair *pair = *state;
    close_end(&pair->client, &pair->client_fd);
    close_end(&pair->server, &pair->server_fd);
    if (pair->opened) {
        close(pair->up.from);
        close(pair->up.to);
    }
    free(pair);
    return 0;
}

enum mt_conn_state state_of(struct mt_conn *conn)
{
    pthread_mutex_lock(&conn->lock);
    enum mt_conn_state state = conn->state;
    pthread_mutex_unlock(&conn->lock);
    return state;
}

bool both_established(struct pair *pair)
{
    return state_of(pair->client) == MT_CONN_ESTABLISHED &&
           state_of(pair->server) == MT_CONN_ESTABLISHED;
}

bool client_failed(struct pair *pair)
{
    return state_of(pair->client) == MT_CONN_FAILED;
}

bool server_failed(struct pair *pair)
{
    return state_of(pair->server) == MT_CONN_FAILED;
}

/*
 * Forwards up to bytes each way and lets both connections take a step (getsockopt(SO_ERROR) is
 * such a step), until done says so; false when the step limit came first. Every step must leave
 * errno as it was, although the TLS layer's receives run into EAGAIN underneath: a call that
 * succeeds never changes errno (fails if mt_conn_step stops preserving it).
 */
bool drive(struct pair *pair, size_t bytes, bool (*done)(struct pair *pair))
{
    for (int step = 0; step < STEP_LIMIT; step++) {
        if (done(pair))
            return true;
        forward(&pair->up, bytes);
        forward(&pair->down, bytes);
        errno = EDOM;
        (void)mt_conn_socket_error(pair->client);
        (void)mt_conn_socket_error(pair->server);
        assert_int_equal(errno, EDOM);
    }
    return done(pair);
}

void handshake(struct pair *pair)
{
    open_pair(pair);
    assert_true(drive(pair, 1, both_established));
}
