/*
 * A connection handed to another process: its state exported (core's part: role, half-close
 * flags, the exporting pid; then the TLS session's, tls/handover.c); a connection opened from
 * such an export, established from its first moment (exec); and a forked copy's claim on its
 * relay slot, which imports the newest state into it, and the owner's give-back (relay.h).
 *
 * Owns the connection part of the export format and what a failed claim says. Must never
 * export a connection whose TLS layer still holds a record of the application's bytes (it is
 * sent first, within a bounded wait, or the export fails), must never leave key material in a
 * buffer it allocated, and must never let a copy whose state is not the newest send a byte.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../util/addr.h"
#include "../util/error.h"
#include "../util/log.h"
#include "../util/sys.h"
#include "conn_internal.h"
#include "epoll.h"
#include "process.h"
#include "relay.h"
#include "table.h"

/* "MTC" and a format version. */
static const unsigned char magic[4] = {'M', 'T', 'C', 1};

enum flag {
    FLAG_SERVER = 1 << 0,
    FLAG_WRITE_CLOSED = 1 << 1,
    FLAG_PEER_CLOSED = 1 << 2,
    /* A copy forked off and not used since: the new program does not own the stream until it
     * reads or writes it (process.h), so a helper that only inherits it closes it silently. */
    FLAG_SHARED = 1 << 3,
};

struct header {
    unsigned char magic[4];
    uint32_t flags;
    int32_t pid; /* the exporting process, for the log line */
    uint32_t tls_length;
};

/* How long an export may wait for the socket to take a record already committed. */
#define EXPORT_FLUSH_MS 500

/* mt_conn_export with the lock held; may_wait: the socket may be waited for (a bounded time) to
 * take a record already committed. */
static MT_RESULT export_locked(struct mt_conn *conn, unsigned char *buffer, size_t capacity,
                               size_t *length, bool may_wait)
{
    *length = 0;
    MT_ENSURE(capacity >= sizeof(struct header), MT_ERR_TOO_LONG);
    long long deadline = mt_sys_now_ms() + EXPORT_FLUSH_MS;
    while (may_wait && conn->state == MT_CONN_ESTABLISHED && !mt_conn_flush_unsent(conn) &&
           conn->state == MT_CONN_ESTABLISHED) {
        if (mt_conn_wait_for_progress(conn, deadline) != 0 && errno != EINTR)
            break;
    }
    MT_ENSURE(conn->state == MT_CONN_ESTABLISHED && !conn->given_away && conn->unsent_length == 0,
              MT_ERR_HANDOVER_STATE);
    struct header header = {
        .flags = (conn->role == MT_TLS_SERVER ? FLAG_SERVER : 0) |
                 (conn->write_closed ? FLAG_WRITE_CLOSED : 0) |
                 (conn->peer_closed ? FLAG_PEER_CLOSED : 0) | (conn->shared ? FLAG_SHARED : 0),
        .pid = (int32_t)mt_process_pid(),
    };
    memcpy(header.magic, magic, sizeof(magic));
    size_t tls_length = 0;
    MT_GUARD(mt_tls_session_export(conn->tls, buffer + sizeof(header), capacity - sizeof(header),
                                   &tls_length));
    header.tls_length = (uint32_t)tls_length;
    memcpy(buffer, &header, sizeof(header));
    *length = sizeof(header) + tls_length;
    return MT_OK_RESULT;
}

/*
 * The lock for a vfork child: tried for at most VFORK_LOCK_MS. Its holder is a thread of the
 * parent in one step of a transfer (a wait releases the lock), never the thread that vforked,
 * which is suspended outside the library; blocking on it would still leave the child at the
 * mercy of another thread's scheduling.
 */
#define VFORK_LOCK_MS 200

static bool lock_briefly(struct mt_conn *conn)
{
    long long deadline = mt_sys_now_ms() + VFORK_LOCK_MS;
    while (pthread_mutex_trylock(&conn->lock) != 0) {
        if (mt_sys_remaining_ms(deadline) == 0)
            return false;
        struct timespec pause = {.tv_nsec = 100 * 1000};
        (void)nanosleep(&pause, NULL);
    }
    return true;
}

/* From now on this copy is stale: it sends nothing, and a read or write fails (mt_conn_claim). */
static void give_away(struct mt_conn *conn)
{
    conn->given_away = true;
    conn->shared_before_given = conn->shared;
    conn->given_to = 0;
    conn->shared = true;
}

MT_RESULT mt_conn_export(struct mt_conn *conn, unsigned char *buffer, size_t capacity,
                         size_t *length, bool from_vfork_child)
{
    MT_ENSURE_REF(conn);
    MT_ENSURE_REF(buffer);
    MT_ENSURE_REF(length);
    *length = 0;
    if (from_vfork_child) {
        MT_ENSURE(lock_briefly(conn), MT_ERR_HANDOVER_STATE);
        /* Claiming another process's state would import it here: allocations. */
        mt_result result = mt_result_of(MT_ERR_HANDOVER_STATE);
        if (!conn->shared)
            result = export_locked(conn, buffer, capacity, length, false);
        if (mt_result_is_ok(result)) {
            give_away(conn);
            conn->given_to = mt_sys_getpid(); /* the child's own: the new program keeps it */
        }
        pthread_mutex_unlock(&conn->lock);
        return result;
    }
    pthread_mutex_lock(&conn->lock);
    /*
     * A relayed copy crossing exec takes its slot first (importing the newest state): the new
     * program keeps this pid, so the slot stays owned while it runs, and lost once it ends
     * without giving it back. A copy that cannot have it is not exported (the caller resets
     * it). The export still says shared: the new program owns the stream only once it uses it.
     */
    bool shared = conn->shared;
    mt_result result = mt_result_of(MT_ERR_HANDOVER_STATE);
    if (!conn->given_away && (!shared || conn->relay.region == NULL || mt_conn_claim(conn, true))) {
        conn->shared = shared;
        result = export_locked(conn, buffer, capacity, length, true);
    }
    if (mt_result_is_ok(result))
        give_away(conn);
    pthread_mutex_unlock(&conn->lock);
    return result;
}

void mt_conn_take_back(struct mt_conn *conn)
{
    pthread_mutex_lock(&conn->lock);
    if (conn->given_away) {
        conn->given_away = false;
        conn->shared = conn->shared_before_given;
    }
    pthread_mutex_unlock(&conn->lock);
}

void mt_conn_note_given_to(struct mt_conn *conn, pid_t pid)
{
    pthread_mutex_lock(&conn->lock);
    if (conn->given_away)
        conn->given_to = pid;
    pthread_mutex_unlock(&conn->lock);
}

bool mt_conn_export_is_server(const unsigned char *state, size_t length)
{
    struct header header;
    if (length < sizeof(header))
        return false;
    memcpy(&header, state, sizeof(header));
    return (header.flags & FLAG_SERVER) != 0;
}

/*
 * Imports the session of state into conn, established, in place of the session it had (freed
 * once the import succeeded); the lock is held, or not needed yet.
 */
static MT_RESULT import(struct mt_conn *conn, const unsigned char *state, size_t length,
                        pid_t *from)
{
    struct header header;
    MT_ENSURE(length >= sizeof(header), MT_ERR_HANDOVER_STATE);
    memcpy(&header, state, sizeof(header));
    MT_ENSURE(memcmp(header.magic, magic, sizeof(magic)) == 0 &&
                  header.tls_length == length - sizeof(header),
              MT_ERR_HANDOVER_STATE);
    struct mt_tls_session *session = NULL;
    MT_GUARD(mt_tls_session_import(conn->context, conn->fd, state + sizeof(header),
                                   header.tls_length, &session));
    mt_tls_session_free(conn->tls);
    conn->tls = session;
    conn->write_closed = (header.flags & FLAG_WRITE_CLOSED) != 0;
    conn->peer_closed = (header.flags & FLAG_PEER_CLOSED) != 0;
    conn->shared = (header.flags & FLAG_SHARED) != 0;
    *from = (pid_t)header.pid;
    return MT_OK_RESULT;
}

struct mt_conn *mt_conn_open_handed_over(int fd, struct mt_tls_context *context,
                                         const struct sockaddr_storage *local,
                                         const struct sockaddr_storage *peer,
                                         const struct mt_conn_settings *settings,
                                         const unsigned char *state, size_t length,
                                         const char *failure_reason)
{
    if (settings == NULL)
        return NULL;
    mt_process_init(); /* as mt_conn_open does */
    struct mt_conn *conn = mt_table_conn_allocate();
    if (conn == NULL)
        return NULL;
    conn->fd = fd;
    conn->role = mt_conn_export_is_server(state, length) ? MT_TLS_SERVER : MT_TLS_CLIENT;
    conn->settings = *settings;
    mt_addr_compact_store(&conn->local, local);
    mt_addr_compact_store(&conn->peer, peer);
    conn->context = mt_tls_context_acquire(context);
    conn->tls_started = true;
    pid_t from = 0;
    mt_result result = mt_result_of(MT_ERR_NO_IDENTITY);
    if (context != NULL)
        result = import(conn, state, length, &from);
    if (mt_result_is_ok(result)) {
        conn->state = MT_CONN_ESTABLISHED;
        mt_conn_count_open(conn, true, mt_tls_peer_id(conn->tls));
        char address[MT_ADDR_TEXT_MAX];
        mt_addr_compact_format(&conn->peer, address, sizeof(address));
        mt_log_info("mtls %s %s on fd %d: session continued after exec in %s (pid %d): peer %s, "
                    "%s %s %s",
                    conn->role == MT_TLS_SERVER ? "inbound from" : "outbound to", address, fd,
                    program_invocation_name, (int)from, mt_tls_peer_id(conn->tls),
                    mt_tls_version(conn->tls), mt_tls_cipher(conn->tls),
                    mt_tls_key_exchange(conn->tls));
    } else {
        /* The session is lost: nothing the application writes may reach the wire. */
        struct sockaddr unspecified = {.sa_family = AF_UNSPEC};
        conn->state = MT_CONN_HANDSHAKING; /* logged as refused, as it never carried bytes here */
        (void)mt_sys_connect(fd, &unspecified, sizeof(unspecified));
        mt_conn_fail(conn, ECONNRESET, "reset: its TLS session could not be taken over (%s%s%s)",
                     mt_error_message(result.error), failure_reason != NULL ? ": " : "",
                     failure_reason != NULL ? failure_reason : "");
    }
    atomic_fetch_add(&conn->references, 1);
    if (!mt_table_insert(fd, conn)) {
        atomic_fetch_sub(&conn->references, 1);
        mt_conn_release(conn);
        return NULL;
    }
    mt_conn_hold_across_exec(conn);
    conn->notify_pollers = false;
    mt_epoll_notify(fd);
    return conn;
}

/* The stream cannot go on from any copy: the peer sees RST, and this copy fails. */
__attribute__((format(printf, 2, 3))) static void reset_lost(struct mt_conn *conn,
                                                             const char *format, ...)
{
    char line[512];
    struct mt_text reason = mt_text_on(line, sizeof(line));
    va_list arguments;
    va_start(arguments, format);
    mt_text_append_va(&reason, format, arguments);
    va_end(arguments);
    struct sockaddr unspecified = {.sa_family = AF_UNSPEC};
    (void)mt_sys_connect(conn->fd, &unspecified, sizeof(unspecified));
    mt_conn_fail(conn, ECONNRESET, "%s", line);
}

bool mt_conn_claim(struct mt_conn *conn, bool to_end)
{
    if (!conn->shared)
        return true;
    if (conn->given_away) {
        if (!to_end && conn->state != MT_CONN_FAILED)
            mt_conn_fail(conn, ECONNRESET,
                         "fd %d: pid %d gave this connection's TLS session to the program it "
                         "started (pid %d), which carries it on; this copy can no longer read or "
                         "write it (close it once the program is started)",
                         conn->fd, (int)mt_process_pid(), (int)conn->given_to);
        return false;
    }
    if (conn->relay.region == NULL) {
        /* Not relayed (not established at the fork, or no region could be made): the first
         * process to use it takes it as it is; it never ends a stream it may be stale for. */
        if (to_end)
            return false;
        conn->shared = false;
        return true;
    }
    pid_t pid = mt_process_pid();
    pid_t other = 0;
    const unsigned char *state = NULL;
    size_t length = 0;
    switch (mt_relay_claim(&conn->relay, pid, &other, &state, &length)) {
    case MT_RELAY_CURRENT:
        conn->shared = false;
        return true;
    case MT_RELAY_NEWER: {
        pid_t from = 0;
        mt_result result = import(conn, state, length, &from);
        if (mt_result_is_ok(result)) {
            mt_relay_imported(&conn->relay);
            conn->shared = false;
            return true;
        }
        mt_relay_give_back(&conn->relay, pid, 0);
        reset_lost(conn, "reset on fd %d: pid %d could not import the TLS state pid %d left (%s)",
                   conn->fd, (int)pid, (int)from, mt_error_message(result.error));
        return false;
    }
    case MT_RELAY_BUSY:
        if (!to_end)
            mt_conn_fail(conn, ECONNRESET,
                         "fd %d: pid %d cannot use this connection: pid %d is using it (copies "
                         "forked off one TLS connection cannot interleave; let pid %d close it or "
                         "exit before another process reads or writes it)",
                         conn->fd, (int)pid, (int)other, (int)other);
        return false;
    case MT_RELAY_LOST:
        if (!to_end)
            reset_lost(conn,
                       "reset on fd %d: pid %d cannot continue this connection: pid %d ended "
                       "while using it without giving its TLS state back (_exit, a signal, or a "
                       "program it exec'd); end the process that uses it with exit() or close()",
                       conn->fd, (int)pid, (int)other);
        return false;
    }
    return false;
}

void mt_conn_give_back_locked(struct mt_conn *conn)
{
    pid_t pid = mt_process_pid();
    if (conn->shared || !mt_relay_is_owner(&conn->relay, pid))
        return;
    size_t capacity = 0;
    unsigned char *room = mt_relay_room(&conn->relay, &capacity);
    size_t length = 0;
    mt_result result = export_locked(conn, room, capacity, &length, true);
    if (!mt_result_is_ok(result)) {
        /* The next user fails closed (mt_conn_claim): nothing stale is left to import. */
        explicit_bzero(room, capacity);
        length = 0;
        char peer[MT_ADDR_TEXT_MAX];
        mt_addr_compact_format(&conn->peer, peer, sizeof(peer));
        mt_log_warn("fd %d (peer %s): pid %d cannot give its TLS state back for the next "
                    "process (%s): the connection fails there",
                    conn->fd, peer, (int)pid, mt_error_message(result.error));
    }
    mt_relay_give_back(&conn->relay, pid, length);
    conn->shared = true;
}

void mt_conn_give_back(struct mt_conn *conn)
{
    pthread_mutex_lock(&conn->lock);
    mt_conn_give_back_locked(conn);
    pthread_mutex_unlock(&conn->lock);
}
