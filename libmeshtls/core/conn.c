/*
 * The connection's state machine and its life (see conn.h for the states and the contract).
 *
 * Owns the moves between states: opening, the TCP connection coming up, detection of a mesh
 * ClientHello, the handshake and its deadline, authorization of the peer, failing, close_notify
 * at shutdown and close, the names of the connection (dup), and its release. Every entry point of
 * the engine takes the connection's lock and calls mt_conn_step() to make whatever progress the
 * socket allows without waiting, so a handshake is driven by whichever call comes first (connect,
 * read, write, poll, getsockopt): a client's handshake starts as soon as its TCP connection is
 * up, and a server that speaks first is never kept waiting.
 *
 * It must never hand the application half a record, never report bytes written that are not
 * committed to TLS, never pass plaintext on a connection policy made mTLS, and never read
 * process-wide state: everything it knows from outside came in struct mt_conn_settings.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "../policy/detect.h"
#include "../util/addr.h"
#include "../util/sys.h"
#include "conn_internal.h"
#include "epoll.h"
#include "process.h"
#include "table.h"

/*
 * Permissive, server speaking first: once the application wants to write and nothing has
 * arrived, detection waits only this much longer. A meshed client sends its ClientHello as soon
 * as TCP is up, so it is there by then; a plaintext client waiting for a greeting is not kept
 * waiting for the whole detection timeout.
 */
#define DETECT_GRACE_MS 200

/* A failure's reason as logged: a log line's worth (util/log.c writes no more). */
#define REASON_LOGGED_MAX 1024
/* ... and as kept for meshtls_last_error(), NUL included: what a caller has always been given. */
#define REASON_KEPT_MAX 160

void mt_conn_unlock_and_notify(struct mt_conn *conn)
{
    bool notify = conn->notify_pollers;
    conn->notify_pollers = false;
    int fd = conn->fd;
    pthread_mutex_unlock(&conn->lock);
    if (notify)
        mt_epoll_notify(fd);
}

static bool is_inbound(const struct mt_conn *conn)
{
    return conn->role == MT_TLS_SERVER;
}

/* The port metrics label a connection with: the local port inbound, the destination outbound. */
static uint16_t metrics_port(const struct mt_conn *conn)
{
    return mt_addr_compact_port(is_inbound(conn) ? &conn->local : &conn->peer);
}

static uint64_t handshake_duration_us(const struct mt_conn *conn)
{
    long long elapsed = mt_sys_now_us() - conn->handshake_started_us;
    return elapsed > 0 ? (uint64_t)elapsed : 0;
}

/* Starts counting a connection that is now open for the application's bytes. */
void mt_conn_count_open(struct mt_conn *conn, bool tls, const char *peer_id)
{
    /* An outbound connection learns its local address only once connected. */
    if (conn->local.family == AF_UNSPEC) {
        struct sockaddr_storage found;
        socklen_t length = sizeof(found);
        if (mt_sys_getsockname(conn->fd, (struct sockaddr *)&found, &length) != 0)
            memset(&found, 0, sizeof(found));
        mt_addr_compact_store(&conn->local, &found);
    }
    struct sockaddr_storage peer = mt_addr_compact_load(&conn->peer);
    struct sockaddr_storage local = mt_addr_compact_load(&conn->local);
    conn->metrics =
        mt_metrics_connection_open(is_inbound(conn), tls, metrics_port(conn), &peer, peer_id);
    mt_metrics_connection_describe(conn->metrics, conn->fd, &local,
                                   tls && conn->tls != NULL ? mt_tls_key_exchange(conn->tls)
                                                            : NULL);
}

void mt_conn_fail(struct mt_conn *conn, int errno_value, const char *format, ...)
{
    if (conn->state == MT_CONN_FAILED)
        return;
    char line[REASON_LOGGED_MAX];
    struct mt_text reason = mt_text_on(line, sizeof(line));
    va_list arguments;
    va_start(arguments, format);
    mt_text_append_va(&reason, format, arguments);
    va_end(arguments);
    if (conn->state != MT_CONN_ESTABLISHED && conn->state != MT_CONN_PLAIN)
        mt_metrics_handshake(is_inbound(conn),
                             conn->handshake_started_us != 0 ? handshake_duration_us(conn) : 0,
                             false, line);
    mt_conn_log_failure(conn, line); /* before the state changes: it says refused or failed */
    conn->state = MT_CONN_FAILED;
    conn->failed_errno = errno_value;
    conn->notify_pollers = true;
    conn->failure_reason = strndup(line, REASON_KEPT_MAX - 1);
}

void mt_conn_fail_from_tls(struct mt_conn *conn)
{
    mt_conn_fail(conn, mt_tls_error_number(conn->tls), "%s", mt_tls_error_reason(conn->tls));
}

/*
 * A session that has started cannot cross exec (inherit.h), and its fd must never reach a new
 * program, which would write to it in clear: from the first handshake step on, every name of the
 * connection is close-on-exec in the kernel, for every way a program can be started (exec, a
 * fork child's exec, system, popen, posix_spawn). The table remembers which names the application
 * wanted kept open (fcntl shows it its own setting; the exec hooks log what they close).
 */
static void hold_fd_across_exec(int fd)
{
    int flags = mt_sys_fcntl(fd, F_GETFD, 0);
    if (flags == -1 || (flags & FD_CLOEXEC))
        return;
    if (mt_sys_fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0)
        (void)mt_table_set_exec_wish(fd, true);
}

void mt_conn_hold_across_exec(struct mt_conn *conn)
{
    if (conn->held_across_exec)
        return;
    conn->held_across_exec = true;
    hold_fd_across_exec(conn->fd);
    for (size_t i = 0; i < conn->other_fd_count; i++)
        hold_fd_across_exec(conn->other_fds[i]);
}

static void start_handshake(struct mt_conn *conn)
{
    conn->state = MT_CONN_HANDSHAKING;
    conn->handshake_started_us = mt_sys_now_us();
    conn->handshake_deadline_ms = mt_sys_now_ms() + (long long)conn->settings.handshake_timeout_ms;
}

/* Records a blocking call kept and could not write (EINTR, SO_SNDTIMEO): sent without waiting. */
static bool flush_outgoing(struct mt_conn *conn)
{
    if (conn->tls == NULL || !mt_tls_outgoing_pending(conn->tls))
        return true;
    if (mt_tls_transport_of(conn->tls) == MT_TLS_TRANSPORT_DEFERRED)
        return false; /* the caller writes them itself, waiting */
    enum mt_tls_status status = mt_tls_flush_outgoing(conn->tls);
    if (status == MT_TLS_OK) {
        conn->notify_pollers = true;
        return true;
    }
    if (status == MT_TLS_ERROR)
        mt_conn_fail_from_tls(conn);
    else
        conn->wants = MT_TLS_WANT_WRITE;
    return false;
}

bool mt_conn_flush_unsent(struct mt_conn *conn)
{
    if (!flush_outgoing(conn))
        return false;
    if (conn->unsent_length == 0)
        return true;
    enum mt_tls_status status = mt_tls_write(conn->tls, conn->unsent, conn->unsent_length);
    if (status == MT_TLS_OK) {
        free(conn->unsent);
        conn->unsent = NULL;
        conn->unsent_length = 0;
        conn->notify_pollers = true; /* writable again for the app */
        return true;
    }
    if (status == MT_TLS_ERROR || status == MT_TLS_CLOSED)
        mt_conn_fail_from_tls(conn);
    else
        conn->wants = status;
    return false;
}

/*
 * Authorization, asked by the TLS layer with the peer's verified ID during the handshake: the
 * expected server identity (outbound) or the port's allow list (inbound). A refusal names both
 * identities and the rule.
 */
static bool check_peer(void *argument, const char *peer_id, enum mt_tls_peer_check check,
                       struct mt_text *reason)
{
    struct mt_conn *conn = argument;
    const char *own = mt_tls_own_id(conn->tls);
    if (conn->role == MT_TLS_CLIENT) {
        const struct mt_outbound_decision *outbound = &conn->settings.outbound;
        const char *pinned = conn->settings.pinned_identity;
        /* A pin narrows what policy expects, never widens it: both must hold. */
        if (pinned != NULL && !mt_policy_identity_matches(pinned, peer_id)) {
            mt_text_set(reason,
                        "server identity %.200s does not match %.200s expected by the caller "
                        "(we are %.200s)",
                        peer_id, pinned, own);
            return false;
        }
        if (mt_policy_outbound_allows(outbound, peer_id))
            return true;
        mt_text_set(reason, "server identity %.200s does not match %.200s expected by ", peer_id,
                    outbound->expected_identity);
        if (outbound->by_membership)
            mt_text_append(reason, "the mesh membership");
        else if (outbound->rule >= 0)
            mt_text_append(reason, "outbound.rules[%d]", outbound->rule);
        else
            mt_text_append(reason, "the default");
        mt_text_append(reason, " (we are %.200s)", own);
        return false;
    }
    bool allowed =
        mt_policy_inbound_allows(conn->settings.config, &conn->settings.inbound, peer_id);
    /* A ticket's claim previewed is no decision: only the handshake's is counted. */
    if (check == MT_TLS_PEER_DECIDE)
        mt_metrics_authz(allowed, metrics_port(conn), peer_id);
    if (allowed)
        return true;
    mt_text_set(reason,
                "client identity %.200s is not in the allow list of inbound.rules[%d] (we are "
                "%.200s)",
                peer_id, conn->settings.inbound.rule_index, own);
    return false;
}

/* Lets the connection through as plaintext, as it is (permissive mode). */
static void pass_as_plain(struct mt_conn *conn, const char *why)
{
    conn->state = MT_CONN_PLAIN;
    conn->notify_pollers = true;
    mt_conn_count_open(conn, false, "");
    mt_conn_log_plain(conn, why);
}

/*
 * Permissive inbound: looks at the first bytes without consuming them. A mesh ClientHello is
 * terminated as mTLS; anything else — plaintext, the application's own TLS, silence past the
 * detection timeout — is handed to the application untouched, byte for byte. The one exception:
 * the start of a ClientHello that never completes is refused at the detection timeout, since it
 * may be a mesh client's, and handing its bytes over would turn an mTLS attempt into plaintext.
 */
static void detect(struct mt_conn *conn)
{
    /*
     * On the heap, only while it is looked at: as thread-local storage these 16 KiB were zeroed
     * (and their pages faulted in) at every process start and in every thread of every meshed
     * program, most of which never detect anything.
     */
    unsigned char *window = malloc(MT_DETECT_BYTES_MAX);
    if (window == NULL) {
        mt_conn_fail(conn, ENOMEM, "no memory to look at the first bytes");
        return;
    }
    ssize_t n = mt_sys_recv(conn->fd, window, MT_DETECT_BYTES_MAX, MSG_PEEK | MSG_DONTWAIT);
    enum mt_detect_result result =
        n > 0 ? mt_detect_client_hello(window, (size_t)n) : MT_DETECT_NEED_MORE;
    MT_PRESERVING_ERRNO(free(window));
    if (n > 0) {
        if (result == MT_DETECT_NEED_MORE && (size_t)n == MT_DETECT_BYTES_MAX)
            result = MT_DETECT_TLS_OTHER;
        if (result == MT_DETECT_TLS_MESH) {
            if (conn->tls == NULL)
                mt_conn_fail(conn, ECONNRESET,
                             "a mesh client, but this process has no workload identity");
            else
                start_handshake(conn);
            return;
        }
        if (result == MT_DETECT_NOT_TLS) {
            pass_as_plain(conn, "not TLS");
            return;
        }
        if (result == MT_DETECT_TLS_OTHER) {
            pass_as_plain(conn, "TLS without the mesh mark (the application's own)");
            return;
        }
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        pass_as_plain(conn, n == 0 ? "closed before sending anything" : strerror(errno));
        return;
    }
    conn->wants = MT_TLS_WANT_READ;
    if (mt_sys_remaining_ms(conn->detect_deadline_ms) != 0)
        return;
    if (n > 0)
        mt_conn_fail(conn, ETIMEDOUT, "incomplete TLS ClientHello at the detection timeout");
    else
        pass_as_plain(conn, "nothing recognisable before the detection timeout");
}

/* CONNECTING: whether the TCP connection is up, and if so the handshake starts. */
static void check_connected(struct mt_conn *conn)
{
    struct pollfd entry = {.fd = conn->fd, .events = POLLOUT};
    if (mt_sys_poll(&entry, 1, 0) <= 0) {
        conn->wants = MT_TLS_WANT_WRITE;
        return;
    }
    int error = 0;
    socklen_t length = sizeof(error);
    if (mt_sys_getsockopt(conn->fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0)
        error = errno;
    if (error != 0) {
        /* A TCP-level failure: the application sees exactly what the kernel said. */
        conn->state = MT_CONN_FAILED;
        conn->failed_errno = error;
        conn->notify_pollers = true;
        return;
    }
    start_handshake(conn);
}

/* HANDSHAKING: one step of the handshake, against its deadline. */
static void continue_handshake(struct mt_conn *conn)
{
    if (!conn->tls_started)
        mt_conn_hold_across_exec(conn);
    conn->tls_started = true;
    enum mt_tls_status status = mt_tls_handshake(conn->tls);
    if (status == MT_TLS_OK) {
        conn->state = MT_CONN_ESTABLISHED;
        conn->wants = MT_TLS_OK;
        conn->notify_pollers = true;
        mt_metrics_handshake(is_inbound(conn), handshake_duration_us(conn),
                             mt_tls_resumed(conn->tls), NULL);
        mt_conn_count_open(conn, true, mt_tls_peer_id(conn->tls));
        mt_conn_log_established(conn);
    } else if (status == MT_TLS_WANT_READ || status == MT_TLS_WANT_WRITE) {
        /* What the kernel must be asked for changes with what TLS waits for. */
        if (conn->wants != status)
            conn->notify_pollers = true;
        conn->wants = status;
        if (mt_sys_remaining_ms(conn->handshake_deadline_ms) == 0)
            mt_conn_fail(conn, ETIMEDOUT, "TLS handshake timed out after %u ms",
                         conn->settings.handshake_timeout_ms);
    } else if (status == MT_TLS_CLOSED) {
        mt_conn_fail(conn, ECONNRESET, "peer closed the connection during the handshake");
    } else {
        mt_conn_fail_from_tls(conn);
    }
}

/* Makes every bit of progress possible without waiting. */
static void make_progress(struct mt_conn *conn)
{
    if (conn->state == MT_CONN_DETECTING)
        detect(conn);
    if (conn->state == MT_CONN_CONNECTING)
        check_connected(conn);
    if (conn->state == MT_CONN_HANDSHAKING)
        continue_handshake(conn);
    if (conn->state == MT_CONN_ESTABLISHED)
        (void)mt_conn_flush_unsent(conn);
}

/*
 * make_progress() with errno left as it was. A kernel call that succeeds never changes errno,
 * and programs rely on it: CPython's epoll.poll() sets errno to 0, calls epoll_wait and retries
 * when errno is EINTR even if events came back, so a leaked EINTR threw away edge-triggered and
 * one-shot events for good. Found by the fault soak (tests/integration/test_soak_faults.py,
 * injected EINTR).
 */
void mt_conn_step(struct mt_conn *conn)
{
    MT_PRESERVING_ERRNO(make_progress(conn));
}

void mt_conn_shorten_detection(struct mt_conn *conn)
{
    if (conn->state == MT_CONN_DETECTING)
        conn->detect_deadline_ms =
            mt_conn_earlier(conn->detect_deadline_ms, mt_sys_now_ms() + DETECT_GRACE_MS);
}

/* Where a client keeps sessions to resume: the peer's family, port and address. */
static void set_destination(struct mt_conn *conn)
{
    unsigned char key[MT_TLS_DESTINATION_MAX];
    size_t length = 0;
    uint16_t port = mt_addr_compact_port(&conn->peer);
    const void *address = NULL;
    size_t address_length = 0;
    if (conn->peer.family == AF_INET) {
        address = &conn->peer.in.sin_addr;
        address_length = sizeof(struct in_addr);
    } else if (conn->peer.family == AF_INET6) {
        address = &conn->peer.in6.sin6_addr;
        address_length = sizeof(struct in6_addr);
    } else {
        return;
    }
    key[length++] = (unsigned char)conn->peer.family;
    key[length++] = (unsigned char)(port >> 8);
    key[length++] = (unsigned char)port;
    memcpy(key + length, address, address_length);
    length += address_length;
    mt_tls_session_set_destination(conn->tls, key, length);
}

/*
 * What the socket is when the connection opens (inherited from the listening socket, set before
 * connect, or by accept4/socket flags): the hooks keep it in step from now on (see conn.h).
 */
static void learn_socket(struct mt_conn *conn)
{
    int flags = mt_sys_fcntl(conn->fd, F_GETFL, 0);
    conn->nonblocking = flags != -1 && (flags & O_NONBLOCK) != 0;
    struct timeval timeout = {0, 0};
    socklen_t length = sizeof(timeout);
    if (mt_sys_getsockopt(conn->fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, &length) == 0)
        conn->receive_timeout_ms = (long long)timeout.tv_sec * 1000 + timeout.tv_usec / 1000;
    timeout = (struct timeval){0, 0};
    length = sizeof(timeout);
    if (mt_sys_getsockopt(conn->fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, &length) == 0)
        conn->send_timeout_ms = (long long)timeout.tv_sec * 1000 + timeout.tv_usec / 1000;
}

void mt_conn_note_nonblocking(struct mt_conn *conn, bool nonblocking)
{
    pthread_mutex_lock(&conn->lock);
    conn->nonblocking = nonblocking;
    mt_conn_use_transport(conn, false);
    pthread_mutex_unlock(&conn->lock);
}

void mt_conn_note_timeout(struct mt_conn *conn, int option, long long timeout_ms)
{
    pthread_mutex_lock(&conn->lock);
    if (option == SO_RCVTIMEO)
        conn->receive_timeout_ms = timeout_ms;
    else if (option == SO_SNDTIMEO)
        conn->send_timeout_ms = timeout_ms;
    pthread_mutex_unlock(&conn->lock);
}

static void start_detecting(struct mt_conn *conn)
{
    conn->state = MT_CONN_DETECTING;
    conn->detect_deadline_ms = mt_sys_now_ms() + (long long)conn->settings.detect_timeout_ms;
}

struct mt_conn *mt_conn_open(int fd, enum mt_tls_role role, struct mt_tls_context *context,
                             const struct sockaddr_storage *local,
                             const struct sockaddr_storage *peer,
                             const struct mt_conn_settings *settings, const char *failure_reason)
{
    if (settings == NULL)
        return NULL;
    /*
     * A process with a connection has its fork handlers (process.h): without them a fork leaves
     * the copies unshared, and the parent's close of its copy ends its child's stream. They were
     * registered only by the first close or dup hook, which the RNG's close of /dev/urandom made
     * early in every process until wolfSSL (5.9.2) seeded from getrandom instead.
     */
    mt_process_init();
    struct mt_conn *conn = mt_table_conn_allocate();
    if (conn == NULL)
        return NULL;
    conn->fd = fd;
    conn->role = role;
    conn->settings = *settings;
    conn->settings.pinned_identity = NULL;
    if (settings->pinned_identity != NULL) {
        conn->pinned_identity = strdup(settings->pinned_identity);
        conn->settings.pinned_identity = conn->pinned_identity;
    }
    /* What tells this connection's socket among a vfork child's fds, whose dup2 the table never
     * saw (inherit.h): before its handshake too, when the child's program would start it. */
    struct stat status;
    if (fstat(fd, &status) == 0)
        conn->socket_inode = status.st_ino;
    if (local != NULL)
        mt_addr_compact_store(&conn->local, local);
    if (peer != NULL)
        mt_addr_compact_store(&conn->peer, peer);
    conn->context = mt_tls_context_acquire(context);
    learn_socket(conn);
    if (context == NULL && conn->settings.detect) {
        /* Permissive without an identity: plaintext still passes; a mesh client is refused. */
        start_detecting(conn);
    } else if (settings->pinned_identity != NULL && conn->pinned_identity == NULL) {
        mt_conn_fail(conn, ENOMEM, "cannot keep the expected server identity");
    } else if (context == NULL) {
        /* A refused outbound connect says ECONNREFUSED; a refused inbound one reads as a reset. */
        mt_conn_fail(conn, role == MT_TLS_CLIENT ? ECONNREFUSED : ECONNRESET, "%s",
                     failure_reason != NULL ? failure_reason : "no identity");
    } else if (!mt_result_is_ok(mt_tls_session_new(context, role, fd, &conn->tls))) {
        mt_conn_fail(conn, ENOMEM, "cannot create a TLS session");
    } else if (role == MT_TLS_SERVER) {
        mt_conn_use_transport(conn, false);
        mt_tls_session_set_peer_filter(conn->tls, check_peer, conn);
        if (conn->settings.detect)
            start_detecting(conn);
        else
            start_handshake(conn);
    } else {
        mt_conn_use_transport(conn, false);
        mt_tls_session_set_peer_filter(conn->tls, check_peer, conn);
        set_destination(conn);
        conn->state = MT_CONN_CONNECTING;
    }
    /* One reference for the table, one for the caller. */
    atomic_fetch_add(&conn->references, 1);
    if (!mt_table_insert(fd, conn)) {
        atomic_fetch_sub(&conn->references, 1);
        mt_conn_release(conn);
        return NULL;
    }
    /* The fd may already be registered with epoll (socket, EPOLL_CTL_ADD, then connect). */
    conn->notify_pollers = false;
    mt_epoll_notify(fd);
    return conn;
}

int mt_conn_after_connect(struct mt_conn *conn, int result, int connect_errno)
{
    pthread_mutex_lock(&conn->lock);
    int error = 0;
    if (conn->state == MT_CONN_FAILED) {
        error = conn->failed_errno;
    } else if (result != 0 && connect_errno != EINPROGRESS && connect_errno != EINTR) {
        conn->state = MT_CONN_FAILED;
        conn->failed_errno = connect_errno;
        error = connect_errno;
    } else if (result != 0) {
        /* Non-blocking connect in flight (or interrupted): the handshake starts when it is up. */
        error = connect_errno;
    } else {
        /* Connected: handshake now; a blocking socket returns only once it is done. */
        start_handshake(conn);
        long long no_timeout = -1;
        for (;;) {
            mt_conn_step(conn);
            if (conn->state != MT_CONN_HANDSHAKING)
                break;
            int wait_error = mt_conn_block_or_explain(conn, false, SO_SNDTIMEO, &no_timeout);
            if (wait_error == EAGAIN)
                break; /* non-blocking: poll and the next calls carry it on */
            if (wait_error != 0) {
                error = wait_error;
                break;
            }
        }
        if (conn->state == MT_CONN_FAILED)
            error = conn->failed_errno == ETIMEDOUT ? ETIMEDOUT : ECONNREFUSED;
    }
    mt_conn_unlock_and_notify(conn);
    if (error != 0) {
        errno = error;
        return -1;
    }
    return 0;
}

int mt_conn_socket_error(struct mt_conn *conn)
{
    pthread_mutex_lock(&conn->lock);
    mt_conn_step(conn);
    int error = conn->state == MT_CONN_FAILED ? conn->failed_errno : 0;
    mt_conn_unlock_and_notify(conn);
    return error;
}

bool mt_conn_add_alias(struct mt_conn *conn, int fd)
{
    pthread_mutex_lock(&conn->lock);
    int *grown = realloc(conn->other_fds, (conn->other_fd_count + 1) * sizeof(int));
    if (grown != NULL) {
        conn->other_fds = grown;
        conn->other_fds[conn->other_fd_count++] = fd;
    }
    pthread_mutex_unlock(&conn->lock);
    if (grown == NULL)
        return false;
    atomic_fetch_add(&conn->references, 1);
    if (!mt_table_insert(fd, conn)) {
        mt_conn_close(conn, fd);
        return false;
    }
    pthread_mutex_lock(&conn->lock);
    if (conn->tls_started)
        hold_fd_across_exec(fd);
    pthread_mutex_unlock(&conn->lock);
    return true;
}

void mt_conn_mark_shared(struct mt_conn *conn)
{
    conn->shared = true;
}

/*
 * A fork child may confine itself (seccomp) before its first handshake step, and fcntl is then
 * out of reach: a server's connection that will start TLS takes its hold now, in the child's own
 * descriptor table. The application's wish is remembered, so a fresh connection still crosses
 * exec as before (inherit.h).
 */
void mt_conn_hold_before_confinement(struct mt_conn *conn)
{
    if (conn->tls != NULL && conn->state == MT_CONN_HANDSHAKING)
        mt_conn_hold_across_exec(conn);
}

void mt_conn_failure_reason(struct mt_conn *conn, struct mt_text *reason)
{
    pthread_mutex_lock(&conn->lock);
    /* None: a TCP-level failure (the errno says it all), or no memory was left to keep it. */
    mt_text_set(reason, "%s", conn->failure_reason != NULL ? conn->failure_reason : "");
    pthread_mutex_unlock(&conn->lock);
}

void mt_conn_peer_id(struct mt_conn *conn, char *buffer, size_t capacity)
{
    if (capacity == 0)
        return;
    pthread_mutex_lock(&conn->lock);
    struct mt_text id = mt_text_on(buffer, capacity);
    mt_text_set(&id, "%s", conn->state == MT_CONN_ESTABLISHED ? mt_tls_peer_id(conn->tls) : "");
    mt_conn_unlock_and_notify(conn);
}

void mt_conn_release(struct mt_conn *conn)
{
    if (conn == NULL || atomic_fetch_sub(&conn->references, 1) != 1)
        return;
    mt_tls_session_free(conn->tls);
    conn->tls = NULL;
    mt_tls_context_release(conn->context);
    conn->context = NULL;
    free(conn->unsent);
    conn->unsent = NULL;
    conn->unsent_length = 0;
    free(conn->pinned_identity);
    conn->pinned_identity = NULL;
    free(conn->failure_reason);
    conn->failure_reason = NULL;
    free(conn->other_fds);
    conn->other_fds = NULL;
    conn->other_fd_count = 0;
    mt_relay_unlink(&conn->relay);
    if (conn->metrics != NULL)
        mt_metrics_connection_close(conn->metrics);
    conn->metrics = NULL;
    mt_table_conn_recycle(conn);
}
