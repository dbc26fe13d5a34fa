/*
 * The fd table and the connection object pool (see table.h for the lifetime rules).
 *
 * The slots are an fd map (fd_map.h); this file owns what they hold (connection pointers, tagged
 * with the fd's exec wish), the count of fds that are ours, and the pool connection objects are
 * recycled through. Must never free a connection object (a lookup may still read it), nor take a
 * lock on the lookup path.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fd_map.h"
#include "process.h"
#include "table.h"

/*
 * Bit 0 of a slot: the application wants this fd kept open across exec, which its session cannot
 * cross (mt_table_set_exec_wish). A property of the fd, not of the connection, so it lives in the
 * fd's slot and goes with it. Connection objects come from calloc, so the bit is always free.
 */
#define EXEC_WISH ((uintptr_t)1)

static struct mt_conn *conn_of(void *value)
{
    return (struct mt_conn *)((uintptr_t)value & ~EXEC_WISH);
}

static struct mt_fd_map table;
static atomic_int connection_count;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mt_conn *pool;

struct mt_conn *mt_table_acquire(int fd)
{
    mt_process_notice_unseen_fork();
    mt_fd_map_slot *slot = mt_fd_map_slot_of(&table, fd);
    if (slot == NULL)
        return NULL;
    for (;;) {
        struct mt_conn *conn = conn_of(atomic_load_explicit(slot, memory_order_acquire));
        if (conn == NULL)
            return NULL;
        unsigned references = atomic_load(&conn->references);
        /* 0: being recycled; the slot no longer points at it, or will not for long. */
        if (references == 0)
            continue;
        if (!atomic_compare_exchange_weak(&conn->references, &references, references + 1))
            continue;
        if (conn_of(atomic_load_explicit(slot, memory_order_acquire)) == conn)
            return conn;
        mt_conn_release(conn);
    }
}

struct mt_conn *mt_table_acquire_by_socket(ino_t inode)
{
    if (inode == 0)
        return NULL;
    for (int fd = mt_fd_map_next(&table, 0, MT_FD_MAP_LIMIT - 1); fd >= 0;
         fd = mt_fd_map_next(&table, (unsigned)fd + 1, MT_FD_MAP_LIMIT - 1)) {
        struct mt_conn *conn = mt_table_acquire(fd);
        if (conn != NULL && conn->socket_inode == inode)
            return conn;
        mt_conn_release(conn);
    }
    return NULL;
}

bool mt_table_insert(int fd, struct mt_conn *conn)
{
    mt_fd_map_slot *slot = mt_fd_map_slot_create(&table, fd);
    if (slot == NULL)
        return false;
    struct mt_conn *previous = conn_of(atomic_exchange(slot, conn));
    atomic_fetch_add(&connection_count, 1);
    /* A stale entry means an fd closed behind our back (e.g. through a raw syscall): drop it. */
    if (previous != NULL) {
        atomic_fetch_sub(&connection_count, 1);
        mt_conn_release(previous);
    }
    return true;
}

struct mt_conn *mt_table_remove(int fd)
{
    mt_fd_map_slot *slot = mt_fd_map_slot_of(&table, fd);
    if (slot == NULL || atomic_load_explicit(slot, memory_order_relaxed) == NULL)
        return NULL;
    struct mt_conn *conn = conn_of(atomic_exchange(slot, NULL));
    if (conn != NULL)
        atomic_fetch_sub(&connection_count, 1);
    return conn;
}

bool mt_table_set_exec_wish(int fd, bool wish)
{
    mt_fd_map_slot *slot = mt_fd_map_slot_of(&table, fd);
    if (slot == NULL)
        return false;
    void *value = atomic_load(slot);
    for (;;) {
        if (value == NULL)
            return false;
        void *wanted = (void *)((uintptr_t)conn_of(value) | (wish ? EXEC_WISH : 0));
        if (atomic_compare_exchange_weak(slot, &value, wanted))
            return true;
    }
}

bool mt_table_exec_wish(int fd)
{
    mt_fd_map_slot *slot = mt_fd_map_slot_of(&table, fd);
    return slot != NULL && ((uintptr_t)atomic_load(slot) & EXEC_WISH) != 0;
}

bool mt_table_is_empty(void)
{
    return atomic_load_explicit(&connection_count, memory_order_relaxed) == 0;
}

struct mt_conn *mt_table_conn_allocate(void)
{
    pthread_mutex_lock(&pool_lock);
    struct mt_conn *conn = pool;
    if (conn != NULL)
        pool = conn->next_free;
    pthread_mutex_unlock(&pool_lock);
    if (conn == NULL) {
        conn = calloc(1, sizeof(*conn));
        if (conn == NULL)
            return NULL;
        pthread_mutex_init(&conn->lock, NULL);
        mt_conn_init_condition(&conn->kernel_io_done);
    }
    /* Every field but the lock (initialised once); the count last, as lookups read it. */
    conn->next_free = NULL;
    conn->fd = -1;
    conn->role = MT_TLS_CLIENT;
    conn->state = MT_CONN_CONNECTING;
    conn->wants = MT_TLS_OK;
    conn->write_closed = false;
    conn->peer_closed = false;
    conn->notify_pollers = false;
    conn->shared = false;
    conn->tls_started = false;
    conn->held_across_exec = false;
    conn->given_away = false;
    conn->shared_before_given = false;
    conn->given_to = 0;
    conn->socket_inode = 0;
    conn->other_fds = NULL;
    conn->other_fd_count = 0;
    conn->failed_errno = 0;
    conn->failure_reason = NULL;
    conn->context = NULL;
    conn->tls = NULL;
    conn->pinned_identity = NULL;
    memset(&conn->peer, 0, sizeof(conn->peer));
    memset(&conn->local, 0, sizeof(conn->local));
    conn->metrics = NULL;
    conn->handshake_started_us = 0;
    conn->handshake_deadline_ms = -1;
    conn->unsent = NULL;
    conn->unsent_length = 0;
    conn->nonblocking = false;
    conn->receive_timeout_ms = 0;
    conn->send_timeout_ms = 0;
    conn->relay = (struct mt_relay_link){0};
    atomic_store(&conn->references, 1);
    return conn;
}

void mt_table_conn_recycle(struct mt_conn *conn)
{
    pthread_mutex_lock(&pool_lock);
    conn->next_free = pool;
    pool = conn;
    pthread_mutex_unlock(&pool_lock);
}

void mt_table_for_each(void (*visit)(struct mt_conn *conn, void *argument), void *argument)
{
    for (int fd = mt_fd_map_next(&table, 0, MT_FD_MAP_LIMIT - 1); fd >= 0;
         fd = mt_fd_map_next(&table, (unsigned)fd + 1, MT_FD_MAP_LIMIT - 1)) {
        struct mt_conn *conn = conn_of(mt_fd_map_get(&table, fd));
        if (conn != NULL)
            visit(conn, argument);
    }
}

void mt_table_for_each_fd(void (*visit)(int fd, struct mt_conn *conn, void *argument),
                          void *argument)
{
    for (int fd = mt_fd_map_next(&table, 0, MT_FD_MAP_LIMIT - 1); fd >= 0;
         fd = mt_fd_map_next(&table, (unsigned)fd + 1, MT_FD_MAP_LIMIT - 1)) {
        struct mt_conn *conn = conn_of(mt_fd_map_get(&table, fd));
        if (conn != NULL)
            visit(fd, conn, argument);
    }
}

void mt_table_for_each_in_range(unsigned first, unsigned last,
                                void (*visit)(int fd, void *argument), void *argument)
{
    /* Once the last connection is gone (visit closes them), the rest of the range is not read. */
    unsigned from = first;
    while (!mt_table_is_empty()) {
        int fd = mt_fd_map_next(&table, from, last);
        if (fd < 0)
            return;
        visit(fd, argument);
        from = (unsigned)fd + 1;
    }
}

void mt_table_after_fork_child(void)
{
    pthread_mutex_init(&pool_lock, NULL);
}
