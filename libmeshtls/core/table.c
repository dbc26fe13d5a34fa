/*
 * The fd table and the connection object pool (see table.h for the lifetime rules).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

#define CHUNK_BITS 10
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define CHUNK_COUNT 1024u /* 1 048 576 fds: the kernel's default nr_open */

typedef struct mt_conn *_Atomic slot_t;

/*
 * Bit 0 of a slot: the application wants this fd kept open across exec, which its session cannot
 * cross (mt_table_set_exec_wish). A property of the fd, not of the connection, so it lives in the
 * fd's slot and goes with it. Connection objects come from calloc, so the bit is always free.
 */
#define EXEC_WISH ((uintptr_t)1)

static struct mt_conn *conn_of(struct mt_conn *value)
{
    return (struct mt_conn *)((uintptr_t)value & ~EXEC_WISH);
}

static _Atomic(slot_t *) chunks[CHUNK_COUNT];
static atomic_int connection_count;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mt_conn *pool;

static slot_t *slot_of(int fd, bool create)
{
    if (fd < 0 || (unsigned)fd >= CHUNK_SIZE * CHUNK_COUNT)
        return NULL;
    unsigned index = (unsigned)fd >> CHUNK_BITS;
    slot_t *chunk = atomic_load_explicit(&chunks[index], memory_order_acquire);
    if (chunk == NULL && create) {
        slot_t *fresh = calloc(CHUNK_SIZE, sizeof(slot_t));
        if (fresh == NULL)
            return NULL;
        slot_t *expected = NULL;
        if (atomic_compare_exchange_strong(&chunks[index], &expected, fresh)) {
            chunk = fresh;
        } else {
            free(fresh);
            chunk = expected;
        }
    }
    return chunk != NULL ? &chunk[(unsigned)fd & (CHUNK_SIZE - 1)] : NULL;
}

struct mt_conn *mt_table_acquire(int fd)
{
    slot_t *slot = slot_of(fd, false);
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

bool mt_table_insert(int fd, struct mt_conn *conn)
{
    slot_t *slot = slot_of(fd, true);
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
    slot_t *slot = slot_of(fd, false);
    if (slot == NULL || atomic_load_explicit(slot, memory_order_relaxed) == NULL)
        return NULL;
    struct mt_conn *conn = conn_of(atomic_exchange(slot, NULL));
    if (conn != NULL)
        atomic_fetch_sub(&connection_count, 1);
    return conn;
}

bool mt_table_set_exec_wish(int fd, bool wish)
{
    slot_t *slot = slot_of(fd, false);
    if (slot == NULL)
        return false;
    struct mt_conn *value = atomic_load(slot);
    for (;;) {
        if (value == NULL)
            return false;
        struct mt_conn *wanted =
            (struct mt_conn *)((uintptr_t)conn_of(value) | (wish ? EXEC_WISH : 0));
        if (atomic_compare_exchange_weak(slot, &value, wanted))
            return true;
    }
}

bool mt_table_exec_wish(int fd)
{
    slot_t *slot = slot_of(fd, false);
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
    conn->other_fds = NULL;
    conn->other_fd_count = 0;
    conn->failed_errno = 0;
    conn->failure_reason[0] = '\0';
    conn->context = NULL;
    conn->tls = NULL;
    memset(&conn->peer, 0, sizeof(conn->peer));
    memset(&conn->local, 0, sizeof(conn->local));
    conn->metrics = NULL;
    conn->handshake_started_us = 0;
    conn->handshake_deadline_ms = -1;
    conn->unsent = NULL;
    conn->unsent_length = 0;
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
    for (unsigned c = 0; c < CHUNK_COUNT; c++) {
        slot_t *chunk = atomic_load(&chunks[c]);
        for (unsigned i = 0; chunk != NULL && i < CHUNK_SIZE; i++) {
            struct mt_conn *conn = conn_of(atomic_load(&chunk[i]));
            if (conn != NULL)
                visit(conn, argument);
        }
    }
}

void mt_table_for_each_fd(void (*visit)(int fd, struct mt_conn *conn, void *argument),
                          void *argument)
{
    for (unsigned c = 0; c < CHUNK_COUNT; c++) {
        slot_t *chunk = atomic_load(&chunks[c]);
        for (unsigned i = 0; chunk != NULL && i < CHUNK_SIZE; i++) {
            struct mt_conn *conn = conn_of(atomic_load(&chunk[i]));
            if (conn != NULL)
                visit((int)(c * CHUNK_SIZE + i), conn, argument);
        }
    }
}

void mt_table_for_each_in_range(unsigned first, unsigned last,
                                void (*visit)(int fd, void *argument), void *argument)
{
    unsigned limit = CHUNK_SIZE * CHUNK_COUNT - 1;
    if (last > limit)
        last = limit;
    for (unsigned fd = first; fd <= last && !mt_table_is_empty(); fd++) {
        slot_t *chunk = atomic_load(&chunks[fd >> CHUNK_BITS]);
        if (chunk == NULL) {
            fd |= CHUNK_SIZE - 1; /* skip the whole missing chunk */
            continue;
        }
        if (atomic_load(&chunk[fd & (CHUNK_SIZE - 1)]) != NULL)
            visit((int)fd, argument);
    }
}

void mt_table_after_fork_child(void)
{
    pthread_mutex_init(&pool_lock, NULL);
}
