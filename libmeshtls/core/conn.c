/*
 * The per-connection engine (see conn.h for the states and the contract).
 *
 * Every entry point takes the connection's lock, calls step() to make whatever progress the
 * socket allows without waiting, and then either answers or, for a blocking socket, waits in
 * poll() with the lock released and tries again. Handshakes are therefore driven by whichever
 * call comes first (connect, read, write, poll, getsockopt), so a client's handshake starts as
 * soon as its TCP connection is up and a server that speaks first is never kept waiting.
 *
 * It must never hand the application half a record, never report bytes written that are not
 * committed to TLS, and never pass plaintext on a connection policy made mTLS.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "../policy/detect.h"
#include "../util/addr.h"
#include "../util/log.h"
#include "../util/sys.h"
#include "conn.h"
#include "epoll.h"
#include "runtime.h"
#include "table.h"

/* How long close() may spend sending what is left and close_notify. */
#define CLOSE_FLUSH_MS 500

/*
 * Permissive, server speaking first: once the application wants to write and nothing has
 * arrived, detection waits only this much longer. A meshed client sends its ClientHello as soon
 * as TCP is up, so it is there by then; a plaintext client waiting for a greeting is not kept
 * waiting for the whole detection timeout.
 */
#define DETECT_GRACE_MS 200

static const char *role_mode(const struct mt_conn *conn)
{
    if (conn->policy.mode != NULL)
        return conn->policy.mode;
    return conn->role == MT_TLS_CLIENT ? "mtls" : "strict";
}

/*
 * Releases the lock, then tells epoll about a change its waiters must see (never with the lock
 * held: epoll takes its own locks and then the connection's, see epoll.c).
 */
static void unlock_and_notify(struct mt_conn *conn)
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
    return mt_addr_port(is_inbound(conn) ? &conn->local : &conn->peer);
}

static uint64_t handshake_duration_us(const struct mt_conn *conn)
{
    long long elapsed = mt_sys_now_us() - conn->handshake_started_us;
    return elapsed > 0 ? (uint64_t)elapsed : 0;
}

/* Starts counting a connection that is now open for the application's bytes. */
static void count_open(struct mt_conn *conn, bool tls, const char *peer_id)
{
    /* An outbound connection learns its local address only once connected. */
    if (conn->local.ss_family == AF_UNSPEC) {
        socklen_t length = sizeof(conn->local);
        if (getsockname(conn->fd, (struct sockaddr *)&conn->local, &length) != 0)
            memset(&conn->local, 0, sizeof(conn->local));
    }
    conn->metrics =
        mt_metrics_connection_open(is_inbound(conn), tls, metrics_port(conn), &conn->peer, peer_id);
    mt_metrics_connection_describe(conn->metrics, conn->fd, &conn->local);
}

/* Moves to FAILED, keeping errno_value for every later call, with the one log line it deserves. */
static void fail(struct mt_conn *conn, int errno_value, const char *reason)
{
    if (conn->state == MT_CONN_FAILED)
        return;
    /* Refused: never established. Failed: the session was up and broke afterwards. */
    const char *what = conn->state == MT_CONN_ESTABLISHED ? "mtls connection" : "refused";
    if (conn->state != MT_CONN_ESTABLISHED && conn->state != MT_CONN_PLAIN)
        mt_metrics_handshake(is_inbound(conn),
                             conn->handshake_started_us != 0 ? handshake_duration_us(conn) : 0,
                             false, reason);
    conn->state = MT_CONN_FAILED;
    conn->failed_errno = errno_value;
    conn->notify_pollers = true;
    snprintf(conn->failure_reason, sizeof(conn->failure_reason), "%.159s", reason);
    char peer[MT_ADDR_TEXT_MAX];
    mt_addr_format(&conn->peer, peer, sizeof(peer));
    if (conn->role == MT_TLS_CLIENT)
        mt_log_warn("%s outbound %s %s (mode %s): %s", what,
                    what[0] == 'r' ? "connection to" : "to", peer, role_mode(conn), reason);
    else
        mt_log_warn("%s inbound %s %s on :%u (mode %s): %s", what,
                    what[0] == 'r' ? "connection from" : "from", peer, mt_addr_port(&conn->local),
                    role_mode(conn), reason);
}

static void fail_from_tls(struct mt_conn *conn)
{
    fail(conn, mt_tls_error_number(conn->tls), mt_tls_error_reason(conn->tls));
}

static void log_established(struct mt_conn *conn)
{
    if (!mt_log_is_enabled(MT_LOG_INFO))
        return;
    char peer[MT_ADDR_TEXT_MAX];
    mt_addr_format(&conn->peer, peer, sizeof(peer));
    const char *resumed = mt_tls_resumed(conn->tls) ? ", resumed" : "";
    if (conn->role == MT_TLS_CLIENT)
        mt_log_info("mtls outbound to %s: peer %s, %s %s%s", peer, mt_tls_peer_id(conn->tls),
                    mt_tls_version(conn->tls), mt_tls_cipher(conn->tls), resumed);
    else
        mt_log_info("mtls inbound from %s on :%u: peer %s, %s %s%s", peer,
                    mt_addr_port(&conn->local), mt_tls_peer_id(conn->tls),
                    mt_tls_version(conn->tls), mt_tls_cipher(conn->tls), resumed);
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

static void hold_across_exec(struct mt_conn *conn)
{
    hold_fd_across_exec(conn->fd);
    for (size_t i = 0; i < conn->other_fd_count; i++)
        hold_fd_across_exec(conn->other_fds[i]);
}

static void start_handshake(struct mt_conn *conn)
{
    conn->state = MT_CONN_HANDSHAKING;
    conn->handshake_started_us = mt_sys_now_us();
    conn->handshake_deadline_ms =
        mt_sys_now_ms() + (long long)mt_runtime_config()->handshake_timeout_ms;
}

/* Sends the committed record left over from an earlier write; false while some is still left. */
static bool flush_unsent(struct mt_conn *conn)
{
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
        fail_from_tls(conn);
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
        if (mt_policy_outbound_allows(&conn->policy.outbound, peer_id))
            return true;
        char rule[48] = "the default";
        if (conn->policy.outbound.rule >= 0)
            snprintf(rule, sizeof(rule), "outbound.rules[%d]", conn->policy.outbound.rule);
        mt_text_set(reason,
                    "server identity %.200s does not match %.200s expected by %s (we are %.200s)",
                    peer_id, conn->policy.outbound.expected_identity, rule, own);
        return false;
    }
    bool allowed = mt_policy_inbound_allows(mt_runtime_config(), &conn->policy.inbound, peer_id);
    /* A ticket's claim previewed is no decision: only the handshake's is counted. */
    if (check == MT_TLS_PEER_DECIDE)
        mt_metrics_authz(allowed, metrics_port(conn), peer_id);
    if (allowed)
        return true;
    mt_text_set(
        reason,
        "client identity %.200s is not in the allow list of inbound.rules[%d] (we are %.200s)",
        peer_id, conn->policy.inbound.rule_index, own);
    return false;
}

/* Lets the connection through as plaintext, as it is (permissive mode). */
static void pass_as_plain(struct mt_conn *conn, const char *why)
{
    conn->state = MT_CONN_PLAIN;
    conn->notify_pollers = true;
    count_open(conn, false, "");
    if (mt_log_is_enabled(MT_LOG_INFO)) {
        char peer[MT_ADDR_TEXT_MAX];
        mt_addr_format(&conn->peer, peer, sizeof(peer));
        mt_log_info("plaintext inbound from %s on :%u (mode %s): %s", peer,
                    mt_addr_port(&conn->local), role_mode(conn), why);
    }
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
    static _Thread_local unsigned char window[MT_DETECT_BYTES_MAX];
    ssize_t n = mt_sys_recv(conn->fd, window, sizeof(window), MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) {
        enum mt_detect_result result = mt_detect_client_hello(window, (size_t)n);
        if (result == MT_DETECT_NEED_MORE && (size_t)n == sizeof(window))
            result = MT_DETECT_TLS_OTHER;
        if (result == MT_DETECT_TLS_MESH) {
            if (conn->tls == NULL)
                fail(conn, ECONNRESET, "a mesh client, but this process has no workload identity");
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
        fail(conn, ETIMEDOUT, "incomplete TLS ClientHello at the detection timeout");
    else
        pass_as_plain(conn, "nothing recognisable before the detection timeout");
}

/* Makes every bit of progress possible without waiting. */
static void make_progress(struct mt_conn *conn)
{
    if (conn->state == MT_CONN_DETECTING)
        detect(conn);
    if (conn->state == MT_CONN_CONNECTING) {
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
    if (conn->state == MT_CONN_HANDSHAKING) {
        if (!conn->tls_started)
            hold_across_exec(conn);
        conn->tls_started = true;
        enum mt_tls_status status = mt_tls_handshake(conn->tls);
        if (status == MT_TLS_OK) {
            conn->state = MT_CONN_ESTABLISHED;
            conn->wants = MT_TLS_OK;
            conn->notify_pollers = true;
            mt_metrics_handshake(is_inbound(conn), handshake_duration_us(conn),
                                 mt_tls_resumed(conn->tls), NULL);
            count_open(conn, true, mt_tls_peer_id(conn->tls));
            log_established(conn);
        } else if (status == MT_TLS_WANT_READ || status == MT_TLS_WANT_WRITE) {
            /* What the kernel must be asked for changes with what TLS waits for. */
            if (conn->wants != status)
                conn->notify_pollers = true;
            conn->wants = status;
            if (mt_sys_remaining_ms(conn->handshake_deadline_ms) == 0) {
                char reason[96];
                snprintf(reason, sizeof(reason), "TLS handshake timed out after %u ms",
                         mt_runtime_config()->handshake_timeout_ms);
                fail(conn, ETIMEDOUT, reason);
            }
        } else if (status == MT_TLS_CLOSED) {
            fail(conn, ECONNRESET, "peer closed the connection during the handshake");
        } else {
            fail_from_tls(conn);
        }
    }
    if (conn->state == MT_CONN_ESTABLISHED)
        (void)flush_unsent(conn);
}

/*
 * make_progress() with errno left as it was: its own EAGAIN or EINTR must not leak into a call
 * that succeeds. A kernel call that succeeds never changes errno, and programs rely on it:
 * CPython's epoll.poll() sets errno to 0, calls epoll_wait and retries when errno is EINTR even
 * if events came back, so a leaked EINTR threw away edge-triggered and one-shot events for good.
 * Found by the fault soak (tests/integration/test_soak_faults.py, injected EINTR).
 */
static void step(struct mt_conn *conn)
{
    int saved = errno;
    make_progress(conn);
    errno = saved;
}

/* The first process to use a connection copied by fork claims it (see process.h). */
static void claim(struct mt_conn *conn)
{
    conn->shared = false;
}

static long long earlier(long long a, long long b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

/* The application wants to write while detection waits: see DETECT_GRACE_MS. */
static void shorten_detection(struct mt_conn *conn)
{
    if (conn->state == MT_CONN_DETECTING)
        conn->detect_deadline_ms =
            earlier(conn->detect_deadline_ms, mt_sys_now_ms() + DETECT_GRACE_MS);
}

static bool is_nonblocking(int fd)
{
    int flags = mt_sys_fcntl(fd, F_GETFL, 0);
    return flags != -1 && (flags & O_NONBLOCK) != 0;
}

/* The deadline SO_RCVTIMEO / SO_SNDTIMEO set for a blocking call starting now; -1 for none. */
static long long socket_deadline(int fd, int option)
{
    struct timeval timeout = {0, 0};
    socklen_t length = sizeof(timeout);
    if (mt_sys_getsockopt(fd, SOL_SOCKET, option, &timeout, &length) != 0 ||
        (timeout.tv_sec == 0 && timeout.tv_usec == 0))
        return -1;
    return mt_sys_now_ms() + (long long)timeout.tv_sec * 1000 + timeout.tv_usec / 1000;
}

/*
 * Waits, with the lock released, until the socket can give what the connection waits for.
 * Returns 0 when it may have progressed, else -1 with errno EINTR or ETIMEDOUT (deadline passed).
 */
static int wait_for_progress(struct mt_conn *conn, long long deadline)
{
    short events =
        conn->state == MT_CONN_CONNECTING || conn->wants == MT_TLS_WANT_WRITE ? POLLOUT : POLLIN;
    if (conn->unsent_length > 0)
        events |= POLLOUT;
    struct pollfd entry = {.fd = conn->fd, .events = events};
    int timeout = mt_sys_remaining_ms(deadline);
    if (timeout == 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    pthread_mutex_unlock(&conn->lock);
    int ready = mt_sys_poll(&entry, 1, timeout);
    int saved = errno;
    pthread_mutex_lock(&conn->lock);
    if (ready < 0) {
        errno = saved;
        return -1;
    }
    if (ready == 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    return 0;
}

/*
 * For a blocking call that could not complete: wait, or say why not. Returns 0 to retry, or the
 * errno to return: EAGAIN (non-blocking, or the socket's own timeout passed), EINTR.
 */
static int block_or_explain(struct mt_conn *conn, bool dont_wait, int timeout_option,
                            long long *io_deadline)
{
    if (dont_wait || is_nonblocking(conn->fd))
        return EAGAIN;
    if (*io_deadline == -2)
        *io_deadline = socket_deadline(conn->fd, timeout_option);
    long long deadline = *io_deadline;
    if (conn->state == MT_CONN_DETECTING)
        deadline = earlier(deadline, conn->detect_deadline_ms);
    else if (conn->state != MT_CONN_ESTABLISHED)
        deadline = earlier(deadline, conn->handshake_deadline_ms);
    if (wait_for_progress(conn, deadline) == 0)
        return 0;
    if (errno == EINTR)
        return EINTR;
    /* A handshake deadline is handled by step(); only the socket's own timeout ends the call. */
    if (*io_deadline >= 0 && mt_sys_remaining_ms(*io_deadline) == 0)
        return EAGAIN;
    return 0;
}

/* Where a client keeps sessions to resume: the peer's family, port and address. */
static void set_destination(struct mt_conn *conn)
{
    unsigned char key[MT_TLS_DESTINATION_MAX];
    size_t length = 0;
    uint16_t port = mt_addr_port(&conn->peer);
    const void *address = NULL;
    size_t address_length = 0;
    if (conn->peer.ss_family == AF_INET) {
        address = &((const struct sockaddr_in *)&conn->peer)->sin_addr;
        address_length = sizeof(struct in_addr);
    } else if (conn->peer.ss_family == AF_INET6) {
        address = &((const struct sockaddr_in6 *)&conn->peer)->sin6_addr;
        address_length = sizeof(struct in6_addr);
    } else {
        return;
    }
    key[length++] = (unsigned char)conn->peer.ss_family;
    key[length++] = (unsigned char)(port >> 8);
    key[length++] = (unsigned char)port;
    memcpy(key + length, address, address_length);
    length += address_length;
    mt_tls_session_set_destination(conn->tls, key, length);
}

struct mt_conn *mt_conn_open(int fd, enum mt_tls_role role, struct mt_tls_context *context,
                             const struct sockaddr_storage *local,
                             const struct sockaddr_storage *peer,
                             const struct mt_conn_policy *policy, const char *failure_reason)
{
    struct mt_conn *conn = mt_table_conn_allocate();
    if (conn == NULL)
        return NULL;
    conn->fd = fd;
    conn->role = role;
    if (policy != NULL)
        conn->policy = *policy;
    if (local != NULL)
        conn->local = *local;
    if (peer != NULL)
        conn->peer = *peer;
    conn->context = mt_tls_context_acquire(context);
    if (context == NULL && conn->policy.detect) {
        /* Permissive without an identity: plaintext still passes; a mesh client is refused. */
        conn->state = MT_CONN_DETECTING;
        conn->detect_deadline_ms =
            mt_sys_now_ms() + (long long)mt_runtime_config()->detect_timeout_ms;
    } else if (context == NULL) {
        /* A refused outbound connect says ECONNREFUSED; a refused inbound one reads as a reset. */
        fail(conn, role == MT_TLS_CLIENT ? ECONNREFUSED : ECONNRESET,
             failure_reason != NULL ? failure_reason : "no identity");
    } else if (!mt_result_is_ok(mt_tls_session_new(context, role, fd, &conn->tls))) {
        fail(conn, ENOMEM, "cannot create a TLS session");
    } else if (role == MT_TLS_SERVER && conn->policy.detect) {
        mt_tls_session_set_peer_filter(conn->tls, check_peer, conn);
        conn->state = MT_CONN_DETECTING;
        conn->detect_deadline_ms =
            mt_sys_now_ms() + (long long)mt_runtime_config()->detect_timeout_ms;
    } else if (role == MT_TLS_SERVER) {
        mt_tls_session_set_peer_filter(conn->tls, check_peer, conn);
        start_handshake(conn);
    } else {
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
            step(conn);
            if (conn->state != MT_CONN_HANDSHAKING)
                break;
            int wait_error = block_or_explain(conn, false, SO_SNDTIMEO, &no_timeout);
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
    unlock_and_notify(conn);
    if (error != 0) {
        errno = error;
        return -1;
    }
    return 0;
}

ssize_t mt_conn_recv(struct mt_conn *conn, void *buffer, size_t length, int flags)
{
    bool peek = (flags & MSG_PEEK) != 0;
    bool dont_wait = (flags & MSG_DONTWAIT) != 0;
    long long io_deadline = -2;
    ssize_t result = -1;
    int error = 0;
    int caller_errno = errno; /* left as it was on success, as the kernel does (see step) */

    pthread_mutex_lock(&conn->lock);
    claim(conn);
    for (;;) {
        step(conn);
        if (conn->state == MT_CONN_PLAIN) {
            struct mt_metrics_connection *metrics = conn->metrics;
            unlock_and_notify(conn);
            ssize_t n = mt_sys_recv(conn->fd, buffer, length, flags);
            if (n > 0 && !peek)
                mt_metrics_bytes_read(metrics, (size_t)n);
            return n;
        }
        if (conn->state == MT_CONN_FAILED) {
            error = conn->failed_errno;
            break;
        }
        if (conn->state == MT_CONN_ESTABLISHED) {
            if (length == 0 || conn->peer_closed) {
                result = 0;
                break;
            }
            /* Fill the caller's buffer: callers such as nginx read a short count as "drained". */
            size_t total = 0;
            while (total < length) {
                size_t count = 0;
                enum mt_tls_status status =
                    mt_tls_read(conn->tls, (char *)buffer + total, length - total, &count, peek);
                if (status == MT_TLS_OK) {
                    total += count;
                    /* Stop once nothing more can be there: no extra recv just for EAGAIN. */
                    if (peek || !mt_tls_may_have_more(conn->tls))
                        break;
                    continue;
                }
                if (status == MT_TLS_CLOSED) {
                    conn->peer_closed = true;
                    conn->notify_pollers = true;
                } else if (status == MT_TLS_ERROR)
                    fail_from_tls(conn);
                else
                    conn->wants = status;
                break;
            }
            if (total > 0) {
                if (!peek)
                    mt_metrics_bytes_read(conn->metrics, total);
                /* Decrypted bytes left behind are invisible to the kernel: pollers must know. */
                if (conn->state == MT_CONN_ESTABLISHED && mt_tls_input_ready(conn->tls))
                    conn->notify_pollers = true;
                result = (ssize_t)total;
                break;
            }
            if (conn->peer_closed) {
                result = 0;
                break;
            }
            if (conn->state == MT_CONN_FAILED)
                continue;
        }
        error = block_or_explain(conn, dont_wait, SO_RCVTIMEO, &io_deadline);
        if (error != 0)
            break;
    }
    unlock_and_notify(conn);
    errno = result < 0 ? error : caller_errno;
    return result;
}

/* Keeps a record that TLS has committed but the kernel has not taken yet. */
static bool keep_unsent(struct mt_conn *conn, const void *record, size_t length)
{
    conn->unsent = malloc(length);
    if (conn->unsent == NULL) {
        fail(conn, ENOMEM, "out of memory holding an unsent record");
        return false;
    }
    memcpy(conn->unsent, record, length);
    conn->unsent_length = length;
    conn->notify_pollers = true; /* the kernel must now be asked for EPOLLOUT */
    return true;
}

ssize_t mt_conn_send(struct mt_conn *conn, const void *buffer, size_t length, int flags)
{
    bool dont_wait = (flags & MSG_DONTWAIT) != 0;
    long long io_deadline = -2;
    size_t total = 0;
    int error = 0;
    int caller_errno = errno; /* left as it was on success, as the kernel does (see step) */

    pthread_mutex_lock(&conn->lock);
    claim(conn);
    shorten_detection(conn);
    if (conn->tls != NULL)
        mt_tls_set_sigpipe(conn->tls, (flags & MSG_NOSIGNAL) == 0);
    for (;;) {
        step(conn);
        if (conn->state == MT_CONN_PLAIN && total == 0) {
            struct mt_metrics_connection *metrics = conn->metrics;
            unlock_and_notify(conn);
            ssize_t n = mt_sys_send(conn->fd, buffer, length, flags);
            if (n > 0)
                mt_metrics_bytes_written(metrics, (size_t)n);
            return n;
        }
        if (conn->state == MT_CONN_FAILED) {
            error = conn->failed_errno;
            break;
        }
        if (conn->write_closed) {
            error = EPIPE;
            if ((flags & MSG_NOSIGNAL) == 0)
                raise(SIGPIPE);
            break;
        }
        if (conn->state == MT_CONN_ESTABLISHED && conn->unsent_length == 0) {
            while (total < length) {
                size_t chunk = length - total;
                if (chunk > MT_TLS_RECORD_MAX)
                    chunk = MT_TLS_RECORD_MAX;
                const char *record = (const char *)buffer + total;
                enum mt_tls_status status = mt_tls_write(conn->tls, record, chunk);
                if (status == MT_TLS_OK) {
                    total += chunk;
                    continue;
                }
                if (status == MT_TLS_WANT_READ || status == MT_TLS_WANT_WRITE) {
                    /* The record is encrypted and committed: it counts as written. */
                    if (keep_unsent(conn, record, chunk))
                        total += chunk;
                    conn->wants = status;
                } else {
                    fail_from_tls(conn);
                }
                break;
            }
            if (total == length)
                break;
            if (conn->state == MT_CONN_FAILED) {
                if (total > 0)
                    break;
                continue;
            }
        }
        error = block_or_explain(conn, dont_wait, SO_SNDTIMEO, &io_deadline);
        if (error != 0)
            break;
    }
    if (total > 0)
        mt_metrics_bytes_written(conn->metrics, total);
    unlock_and_notify(conn);
    if (total > 0 || length == 0) {
        errno = caller_errno;
        return (ssize_t)total;
    }
    errno = error;
    return -1;
}

ssize_t mt_conn_recv_vector(struct mt_conn *conn, const struct iovec *vector, int count, int flags)
{
    ssize_t total = 0;
    for (int i = 0; i < count; i++) {
        if (vector[i].iov_len == 0)
            continue;
        /* Only the first piece may wait; the rest take what is already there. */
        int piece_flags = total > 0 ? flags | MSG_DONTWAIT : flags;
        ssize_t n = mt_conn_recv(conn, vector[i].iov_base, vector[i].iov_len, piece_flags);
        if (n < 0)
            return total > 0 ? total : -1;
        total += n;
        if ((size_t)n < vector[i].iov_len)
            break;
    }
    return total;
}

ssize_t mt_conn_send_vector(struct mt_conn *conn, const struct iovec *vector, int count, int flags)
{
    ssize_t total = 0;
    for (int i = 0; i < count; i++) {
        if (vector[i].iov_len == 0)
            continue;
        ssize_t n = mt_conn_send(conn, vector[i].iov_base, vector[i].iov_len, flags);
        if (n < 0)
            return total > 0 ? total : -1;
        total += n;
        if ((size_t)n < vector[i].iov_len)
            break;
    }
    return total;
}

/*
 * Waits, until deadline, for the socket to take more of what close() or shutdown() must send.
 * Neither call returns EINTR to the application, so a signal only means waiting again; at the
 * deadline the connection fails, saying what was left unsent.
 */
static bool wait_to_close(struct mt_conn *conn, long long deadline, const char *what)
{
    if (wait_for_progress(conn, deadline) == 0 || errno == EINTR)
        return true;
    char reason[128];
    snprintf(reason, sizeof(reason), "%s not sent within %d ms (the peer is not reading)", what,
             CLOSE_FLUSH_MS);
    fail(conn, ETIMEDOUT, reason);
    return false;
}

/*
 * Sends what is unsent and then close_notify, each whole, waiting at most until deadline. The
 * kernel's shutdown or close comes right after: a peer that gets FIN inside a record sees a
 * truncated connection, not its end. Short of the deadline, the connection fails instead.
 */
static void send_close_notify(struct mt_conn *conn, long long deadline)
{
    while (conn->state == MT_CONN_ESTABLISHED && !flush_unsent(conn) &&
           conn->state == MT_CONN_ESTABLISHED) {
        if (!wait_to_close(conn, deadline, "data written before closing"))
            return;
    }
    if (conn->state != MT_CONN_ESTABLISHED)
        return;
    /* Nothing may follow close_notify: a send from now on fails with EPIPE, even while waiting. */
    conn->write_closed = true;
    while (conn->state == MT_CONN_ESTABLISHED) {
        enum mt_tls_status status = mt_tls_shutdown(conn->tls);
        if (status == MT_TLS_OK || status == MT_TLS_CLOSED)
            return;
        if (status != MT_TLS_WANT_WRITE) {
            /* After the peer's own close_notify or EOF it may be gone: that was the end. */
            if (!conn->peer_closed)
                fail_from_tls(conn);
            return;
        }
        conn->wants = MT_TLS_WANT_WRITE;
        if (!wait_to_close(conn, deadline, "close_notify"))
            return;
    }
}

int mt_conn_shutdown(struct mt_conn *conn, int how)
{
    pthread_mutex_lock(&conn->lock);
    if (how == SHUT_WR || how == SHUT_RDWR) {
        step(conn);
        /* A half-close must not cut a handshake short: the peer would see a broken one. */
        if (conn->state == MT_CONN_HANDSHAKING && !is_nonblocking(conn->fd)) {
            long long no_timeout = -1;
            while (conn->state == MT_CONN_HANDSHAKING &&
                   block_or_explain(conn, false, SO_SNDTIMEO, &no_timeout) == 0)
                step(conn);
        }
        send_close_notify(conn, mt_sys_now_ms() + CLOSE_FLUSH_MS);
    }
    if (how == SHUT_RD || how == SHUT_RDWR)
        conn->peer_closed = true;
    unlock_and_notify(conn);
    return 0;
}

int mt_conn_socket_error(struct mt_conn *conn)
{
    pthread_mutex_lock(&conn->lock);
    step(conn);
    int error = conn->state == MT_CONN_FAILED ? conn->failed_errno : 0;
    unlock_and_notify(conn);
    return error;
}

short mt_conn_poll_prepare(struct mt_conn *conn, short app_events, short *kernel_events,
                           long long *deadline_ms)
{
    short ready = 0;
    short kernel = 0;
    pthread_mutex_lock(&conn->lock);
    step(conn);
    switch (conn->state) {
    case MT_CONN_FAILED:
        ready = POLLERR | POLLHUP | (app_events & (POLLIN | POLLOUT));
        break;
    case MT_CONN_PLAIN:
        kernel = app_events;
        break;
    case MT_CONN_DETECTING:
        if (app_events & POLLOUT)
            shorten_detection(conn);
        kernel = POLLIN;
        break;
    case MT_CONN_CONNECTING:
        kernel = POLLOUT;
        break;
    case MT_CONN_HANDSHAKING:
        kernel = conn->wants == MT_TLS_WANT_WRITE ? POLLOUT : POLLIN;
        break;
    case MT_CONN_ESTABLISHED:
        /*
         * The kernel is asked for POLLIN even when input is ready without it: an epoll
         * registration outlives this wait, and without POLLIN the next message would arrive
         * unseen (edge-triggered, the synthetic event is reported once).
         */
        if (app_events & POLLIN) {
            kernel |= POLLIN;
            if (mt_tls_input_ready(conn->tls) || conn->peer_closed)
                ready |= POLLIN;
        }
        if ((app_events & POLLOUT) || conn->unsent_length > 0)
            kernel |= POLLOUT;
        break;
    }
    *deadline_ms = conn->state == MT_CONN_HANDSHAKING ? conn->handshake_deadline_ms
                   : conn->state == MT_CONN_DETECTING ? conn->detect_deadline_ms
                                                      : -1;
    unlock_and_notify(conn);
    *kernel_events = kernel;
    return ready;
}

short mt_conn_poll_finish(struct mt_conn *conn, short app_events, short kernel_asked,
                          short kernel_revents)
{
    short result = 0;
    pthread_mutex_lock(&conn->lock);
    if (kernel_revents != 0)
        step(conn);
    switch (conn->state) {
    case MT_CONN_FAILED:
        result = POLLERR | POLLHUP | (app_events & (POLLIN | POLLOUT));
        break;
    case MT_CONN_PLAIN:
        /* Asked for as the app asked, or fresh from detection: poll again with the app's own. */
        result = kernel_asked == app_events ? kernel_revents : 0;
        if (kernel_asked != app_events)
            conn->notify_pollers = true;
        break;
    case MT_CONN_CONNECTING:
    case MT_CONN_DETECTING:
    case MT_CONN_HANDSHAKING:
        break;
    case MT_CONN_ESTABLISHED:
        if ((app_events & POLLIN) && (mt_tls_input_ready(conn->tls) || conn->peer_closed ||
                                      (kernel_revents & (POLLIN | POLLHUP | POLLERR | POLLRDHUP))))
            result |= POLLIN;
        /* Writable once nothing is left unsent; if the kernel was not asked, it is fresh. */
        if ((app_events & POLLOUT) && conn->unsent_length == 0 && !conn->write_closed &&
            ((kernel_revents & POLLOUT) || !(kernel_asked & POLLOUT)))
            result |= POLLOUT;
        result |= kernel_revents & (POLLHUP | POLLERR);
        break;
    }
    unlock_and_notify(conn);
    return result & (app_events | POLLERR | POLLHUP | POLLNVAL);
}

void mt_conn_close(struct mt_conn *conn, int fd)
{
    pthread_mutex_lock(&conn->lock);
    bool last = true;
    if (conn->other_fd_count > 0) {
        last = false;
        /* Another name stays open: keep using one that is. */
        if (conn->fd == fd) {
            conn->fd = conn->other_fds[--conn->other_fd_count];
            if (conn->tls != NULL)
                mt_tls_session_set_fd(conn->tls, conn->fd);
        } else {
            for (size_t i = 0; i < conn->other_fd_count; i++) {
                if (conn->other_fds[i] == fd) {
                    conn->other_fds[i] = conn->other_fds[--conn->other_fd_count];
                    break;
                }
            }
        }
    }
    if (last && !conn->shared)
        send_close_notify(conn, mt_sys_now_ms() + CLOSE_FLUSH_MS);
    unlock_and_notify(conn);
    mt_conn_release(conn);
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

int mt_conn_readable_bytes(struct mt_conn *conn)
{
    pthread_mutex_lock(&conn->lock);
    step(conn);
    size_t pending = 0;
    if (conn->state == MT_CONN_PLAIN) {
        int queued = 0;
        if (syscall(SYS_ioctl, conn->fd, FIONREAD, &queued) == 0 && queued > 0)
            pending = (size_t)queued;
    } else if (conn->state == MT_CONN_ESTABLISHED && !conn->peer_closed) {
        pending = mt_tls_pending(conn->tls);
        if (pending == 0) {
            /* Decrypt a record if a whole one has arrived; peeking consumes nothing. */
            char probe;
            size_t count = 0;
            enum mt_tls_status status = mt_tls_read(conn->tls, &probe, 1, &count, true);
            if (status == MT_TLS_CLOSED)
                conn->peer_closed = true;
            pending = status == MT_TLS_OK ? mt_tls_pending(conn->tls) : 0;
            if (status == MT_TLS_OK && pending == 0)
                pending = count;
        }
    }
    unlock_and_notify(conn);
    return pending > 0x7fffffff ? 0x7fffffff : (int)pending;
}

/* True when a send of one record would be taken now without waiting or failing. */
static bool can_take_record(struct mt_conn *conn)
{
    pthread_mutex_lock(&conn->lock);
    step(conn);
    bool ready = conn->state == MT_CONN_PLAIN || (conn->state == MT_CONN_ESTABLISHED &&
                                                  conn->unsent_length == 0 && !conn->write_closed);
    unlock_and_notify(conn);
    return ready;
}

ssize_t mt_conn_send_from_fd(struct mt_conn *conn, int in_fd, off_t *offset, size_t count,
                             int flags)
{
    char buffer[MT_TLS_RECORD_MAX];
    off_t position = offset != NULL ? *offset : lseek(in_fd, 0, SEEK_CUR);
    bool seekable = position != (off_t)-1;
    bool dont_wait = (flags & MSG_DONTWAIT) != 0 || is_nonblocking(conn->fd);
    size_t total = 0;
    int error = 0;
    while (total < count) {
        /* Input that cannot be re-read (a pipe) is only read once the record can be sent. */
        if (!seekable && dont_wait && !can_take_record(conn)) {
            error = EAGAIN;
            break;
        }
        size_t chunk = count - total < sizeof(buffer) ? count - total : sizeof(buffer);
        ssize_t n = seekable ? pread(in_fd, buffer, chunk, position) : read(in_fd, buffer, chunk);
        if (n <= 0) {
            error = n < 0 ? errno : 0;
            break;
        }
        ssize_t sent = mt_conn_send(conn, buffer, (size_t)n, flags);
        if (sent <= 0) {
            error = errno;
            break;
        }
        total += (size_t)sent;
        position += sent;
        if (sent < n)
            break;
    }
    if (offset != NULL)
        *offset = position;
    else if (seekable)
        (void)lseek(in_fd, position, SEEK_SET);
    if (total == 0 && error != 0) {
        errno = error;
        return -1;
    }
    return (ssize_t)total;
}

ssize_t mt_conn_receive_to_fd(struct mt_conn *conn, int out_fd, off_t *offset, size_t count,
                              int flags)
{
    char buffer[MT_TLS_RECORD_MAX];
    size_t room = count < sizeof(buffer) ? count : sizeof(buffer);
    /* Never take more from TLS than the pipe can hold at once: what is read must be written. */
    int pipe_size = fcntl(out_fd, F_GETPIPE_SZ);
    if (pipe_size > 0 && offset == NULL) {
        int queued = 0;
        if (ioctl(out_fd, FIONREAD, &queued) == 0 && pipe_size - queued < (int)room)
            room = pipe_size > queued ? (size_t)(pipe_size - queued) : 0;
        if (room == 0) {
            errno = EAGAIN;
            return -1;
        }
    }
    ssize_t n = mt_conn_recv(conn, buffer, room, flags & MSG_DONTWAIT);
    if (n <= 0)
        return n;
    ssize_t written = 0;
    while (written < n) {
        ssize_t w = offset != NULL
                        ? pwrite(out_fd, buffer + written, (size_t)(n - written), *offset + written)
                        : write(out_fd, buffer + written, (size_t)(n - written));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        written += w;
    }
    if (offset != NULL)
        *offset += written;
    return written > 0 ? written : -1;
}

void mt_conn_failure_reason(struct mt_conn *conn, char *buffer, size_t capacity)
{
    if (capacity == 0)
        return;
    pthread_mutex_lock(&conn->lock);
    snprintf(buffer, capacity, "%s", conn->failure_reason);
    pthread_mutex_unlock(&conn->lock);
}

void mt_conn_peer_id(struct mt_conn *conn, char *buffer, size_t capacity)
{
    if (capacity == 0)
        return;
    pthread_mutex_lock(&conn->lock);
    const char *id = conn->state == MT_CONN_ESTABLISHED ? mt_tls_peer_id(conn->tls) : "";
    snprintf(buffer, capacity, "%s", id);
    unlock_and_notify(conn);
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
    free(conn->other_fds);
    conn->other_fds = NULL;
    conn->other_fd_count = 0;
    if (conn->metrics != NULL)
        mt_metrics_connection_close(conn->metrics);
    conn->metrics = NULL;
    mt_table_conn_recycle(conn);
}
