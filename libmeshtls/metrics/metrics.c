/*
 * The process side of the metrics (see metrics.h): one shared-memory file per process, written in
 * place with relaxed atomics.
 *
 * Owns the process's metrics file, its mappings and the process-local handles of open
 * connections. The slow path (first use, a new label set, a new connection, growth, fork) runs
 * under one mutex and is the only place that makes system calls (asking the agent for the file
 * is one of them, once per process); the byte counters are atomic adds on memory mapped once and
 * never moved, so that a thread counting bytes never waits for one that grows the file. This
 * file must never make a system call or take a lock on the data path, never go through
 * libmeshtls's own hooks (descriptors are closed through util/sys.h), never unmap memory another
 * thread may still be counting into, and never let a metrics failure reach the application: a
 * failure disables metrics, with one log line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/log.h"
#include "../util/sys.h"
#include "metrics.h"

/* After a failure to get the file (no agent yet), try again this much later. */
#define RETRY_MS 10000
/*
 * An agent that answered and refused (one that cannot see this process's pid, or an older agent
 * without the request) will say the same again: ask rarely, so that its log is not flooded.
 */
#define RETRY_REFUSED_MS 600000
#define SERIES_PER_CHUNK                                                                           \
    ((MT_METRICS_CHUNK_SIZE - MT_METRICS_CHUNK_HEADER_SIZE) /                                      \
     sizeof(struct mt_metrics_series_record))
#define CONNECTIONS_PER_CHUNK                                                                      \
    ((MT_METRICS_CHUNK_SIZE - MT_METRICS_CHUNK_HEADER_SIZE) /                                      \
     sizeof(struct mt_metrics_connection_record))
#define STATE_MASK 0xffffffffull

struct mt_metrics_connection {
    struct mt_metrics_connection_record *record;
    struct mt_metrics_series_record *series;
    uint32_t generation;
};

struct chunk {
    struct mt_metrics_chunk_header *header;
    uint8_t *records;
};

struct writer {
    bool initialised;
    mt_metrics_file_source source;
    bool failure_logged;
    long long retry_after_ms;
    int fd;
    struct mt_metrics_file_header *header;
    struct chunk chunks[MT_METRICS_CHUNKS_MAX];
    uint32_t chunk_count;
    uint32_t connection_hint;
    pid_t owner; /* the process the file was made for */
};

static pthread_mutex_t writer_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static struct writer writer = {.fd = -1};
/* The mapped header, for lock-free process-wide counters; NULL until the file exists. */
static _Atomic(struct mt_metrics_file_header *) published_header;
static atomic_bool forked;

/* ---- atomics on the shared layout ---------------------------------------------------------- */

static void counter_add(uint64_t *counter, uint64_t value)
{
    __atomic_fetch_add(counter, value, __ATOMIC_RELAXED);
}

static uint64_t state_load(const uint64_t *state)
{
    return __atomic_load_n(state, __ATOMIC_ACQUIRE);
}

static uint64_t state_word(uint32_t generation, enum mt_metrics_connection_state state)
{
    return (uint64_t)generation << 32 | (uint64_t)state;
}

/* ---- fork ---------------------------------------------------------------------------------- */

/*
 * In the child of fork only the forking thread survives; the lock may have been held by another.
 * The child keeps the parent's mappings (inherited connections still count there) and creates
 * its own file on its next slow-path call.
 */
static void after_fork_child(void)
{
    pthread_mutex_init(&writer_lock, NULL);
    atomic_store(&forked, true);
    atomic_store(&published_header, NULL);
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, after_fork_child);
}

/* With the lock held: forget the parent's file without unmapping what handles point into. */
static void adopt_fork_locked(void)
{
    if (!atomic_exchange(&forked, false))
        return;
    /* Made for this very process already (mt_metrics_open_in_fork_child): keep it. */
    if (writer.header != NULL && writer.owner == mt_sys_getpid()) {
        atomic_store(&published_header, writer.header);
        return;
    }
    if (writer.fd >= 0)
        mt_sys_close(writer.fd);
    writer.fd = -1;
    writer.header = NULL;
    writer.chunk_count = 0;
    writer.connection_hint = 0;
    memset(writer.chunks, 0, sizeof(writer.chunks));
    writer.retry_after_ms = 0;
}

/* ---- creating the file --------------------------------------------------------------------- */

bool mt_metrics_directory_for_socket(const char *agent_socket_path, char *directory,
                                     size_t capacity)
{
    if (agent_socket_path == NULL || directory == NULL || capacity == 0)
        return false;
    const char *slash = strrchr(agent_socket_path, '/');
    int length;
    if (slash == NULL)
        length = snprintf(directory, capacity, "metrics");
    else if (slash == agent_socket_path)
        length = snprintf(directory, capacity, "/metrics");
    else
        length = snprintf(directory, capacity, "%.*s/metrics", (int)(slash - agent_socket_path),
                          agent_socket_path);
    return length > 0 && (size_t)length < capacity;
}

static long long wall_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void note_failure_locked(const char *message, bool refused)
{
    writer.retry_after_ms = mt_sys_now_ms() + (refused ? RETRY_REFUSED_MS : RETRY_MS);
    if (writer.failure_logged)
        return;
    writer.failure_logged = true;
    mt_log_info("metrics disabled for now: %s", message);
}

/* The agent wrote the header; a file of another layout (another agent version) is not used. */
static bool header_is_usable(const struct mt_metrics_file_header *header)
{
    return memcmp(header->magic, MT_METRICS_MAGIC, sizeof(header->magic)) == 0 &&
           header->version == MT_METRICS_LAYOUT_VERSION &&
           header->header_size == MT_METRICS_HEADER_SIZE &&
           header->chunk_size == MT_METRICS_CHUNK_SIZE && header->chunk_count == 0;
}

static bool open_file_locked(void)
{
    char message[256] = "";
    struct mt_text reason = mt_text_on(message, sizeof(message));
    int fd = -1;
    mt_result result = writer.source(&fd, &reason);
    if (!mt_result_is_ok(result)) {
        note_failure_locked(message, result.error == MT_ERR_AGENT_REFUSED);
        return false;
    }
    void *mapped = mmap(NULL, MT_METRICS_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mapped == MAP_FAILED || !header_is_usable(mapped)) {
        snprintf(message, sizeof(message), "the metrics file from the agent %s",
                 mapped == MAP_FAILED ? "cannot be mapped" : "has another layout version");
        if (mapped != MAP_FAILED)
            munmap(mapped, MT_METRICS_HEADER_SIZE);
        mt_sys_close(fd);
        note_failure_locked(message, true);
        return false;
    }
    writer.fd = fd;
    writer.owner = mt_sys_getpid();
    writer.header = mapped;
    writer.chunk_count = 0;
    writer.failure_logged = false;
    atomic_store(&published_header, writer.header);
    return true;
}

/* With the lock held: the file exists and belongs to this process, or false (disabled). */
static bool ensure_file_locked(void)
{
    adopt_fork_locked();
    if (writer.header != NULL)
        return true;
    if (!writer.initialised || mt_sys_now_ms() < writer.retry_after_ms)
        return false;
    return open_file_locked();
}

static struct chunk *add_chunk_locked(enum mt_metrics_chunk_kind kind);

void mt_metrics_open_in_fork_child(void)
{
    pthread_mutex_init(&writer_lock, NULL);
    pthread_mutex_lock(&writer_lock);
    if (writer.initialised && (writer.header == NULL || writer.owner != mt_sys_getpid())) {
        atomic_store(&forked, true);
        atomic_store(&published_header, NULL);
        adopt_fork_locked();
        /* Growing the file takes ftruncate and mmap: one chunk of each kind is made now, for
         * the handshake's series, its connection and (outbound) its destination. */
        if (ensure_file_locked() && writer.chunk_count == 0) {
            (void)add_chunk_locked(MT_METRICS_CHUNK_SERIES);
            (void)add_chunk_locked(MT_METRICS_CHUNK_CONNECTIONS);
            (void)add_chunk_locked(MT_METRICS_CHUNK_DESTINATIONS);
        }
    }
    pthread_mutex_unlock(&writer_lock);
}

static bool lock_and_ensure_file(void)
{
    pthread_mutex_lock(&writer_lock);
    if (ensure_file_locked())
        return true;
    pthread_mutex_unlock(&writer_lock);
    return false;
}

/* With the lock held: one more chunk of kind, mapped on its own and then published. */
static struct chunk *add_chunk_locked(enum mt_metrics_chunk_kind kind)
{
    if (writer.chunk_count >= MT_METRICS_CHUNKS_MAX)
        return NULL;
    uint32_t index = writer.chunk_count;
    off_t offset = (off_t)MT_METRICS_HEADER_SIZE + (off_t)index * MT_METRICS_CHUNK_SIZE;
    if (ftruncate(writer.fd, offset + MT_METRICS_CHUNK_SIZE) != 0) {
        mt_log_warn("metrics: cannot grow the metrics file: %s", strerror(errno));
        return NULL;
    }
    void *mapped =
        mmap(NULL, MT_METRICS_CHUNK_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, writer.fd, offset);
    if (mapped == MAP_FAILED) {
        mt_log_warn("metrics: cannot map a new metrics chunk: %s", strerror(errno));
        return NULL;
    }
    struct chunk *chunk = &writer.chunks[index];
    chunk->header = mapped;
    chunk->records = (uint8_t *)mapped + MT_METRICS_CHUNK_HEADER_SIZE;
    chunk->header->kind = kind;
    chunk->header->record_size = mt_metrics_chunk_record_size(kind);
    chunk->header->capacity =
        (MT_METRICS_CHUNK_SIZE - MT_METRICS_CHUNK_HEADER_SIZE) / chunk->header->record_size;
    writer.chunk_count = index + 1;
    __atomic_store_n(&writer.header->chunk_count, index + 1, __ATOMIC_RELEASE);
    return chunk;
}

/* ---- series -------------------------------------------------------------------------------- */

static void copy_label(char *destination, size_t capacity, const char *value)
{
    size_t length = value != NULL ? strnlen(value, capacity - 1) : 0;
    memcpy(destination, value != NULL ? value : "", length);
    memset(destination + length, 0, capacity - length);
}

static bool series_matches(const struct mt_metrics_series_record *series, bool inbound, bool tls,
                           uint16_t port, const char *peer_id)
{
    return series->inbound == inbound && series->tls == tls && series->port == port &&
           strncmp(series->peer_id, peer_id, MT_METRICS_PEER_ID_MAX - 1) == 0;
}

/* With the lock held: the series for this label set, created when new; NULL when full. */
static struct mt_metrics_series_record *series_find_locked(bool inbound, bool tls, uint16_t port,
                                                           const char *peer_id)
{
    if (peer_id == NULL)
        peer_id = "";
    struct chunk *room = NULL;
    for (uint32_t i = 0; i < writer.chunk_count; i++) {
        struct chunk *chunk = &writer.chunks[i];
        if (chunk->header->kind != MT_METRICS_CHUNK_SERIES)
            continue;
        struct mt_metrics_series_record *records = (void *)chunk->records;
        uint32_t used = chunk->header->used;
        for (uint32_t j = 0; j < used; j++)
            if (series_matches(&records[j], inbound, tls, port, peer_id))
                return &records[j];
        if (used < chunk->header->capacity)
            room = chunk;
    }
    if (room == NULL)
        room = add_chunk_locked(MT_METRICS_CHUNK_SERIES);
    if (room == NULL)
        return NULL;
    struct mt_metrics_series_record *series =
        &((struct mt_metrics_series_record *)(void *)room->records)[room->header->used];
    series->inbound = inbound;
    series->tls = tls;
    series->port = port;
    copy_label(series->peer_id, sizeof(series->peer_id), peer_id);
    __atomic_store_n(&room->header->used, room->header->used + 1, __ATOMIC_RELEASE);
    return series;
}

/* ---- destinations -------------------------------------------------------------------------- */

/* The labels of an outbound destination (a v4-mapped IPv6 address as IPv4); OTHER when NULL. */
static struct mt_metrics_destination_record
destination_labels(bool tls, const struct sockaddr_storage *destination)
{
    struct mt_metrics_destination_record labels = {.tls = tls};
    if (destination != NULL && destination->ss_family == AF_INET) {
        const struct sockaddr_in *ipv4 = (const struct sockaddr_in *)destination;
        labels.family = MT_METRICS_DESTINATION_IPV4;
        labels.port = ntohs(ipv4->sin_port);
        memcpy(labels.address, &ipv4->sin_addr, 4);
    } else if (destination != NULL && destination->ss_family == AF_INET6) {
        const struct sockaddr_in6 *ipv6 = (const struct sockaddr_in6 *)destination;
        bool mapped = IN6_IS_ADDR_V4MAPPED(&ipv6->sin6_addr);
        labels.family = mapped ? MT_METRICS_DESTINATION_IPV4 : MT_METRICS_DESTINATION_IPV6;
        labels.port = ntohs(ipv6->sin6_port);
        memcpy(labels.address, ipv6->sin6_addr.s6_addr + (mapped ? 12 : 0), mapped ? 4 : 16);
    }
    return labels;
}

static struct mt_metrics_destination_record *
destination_in(struct mt_metrics_destination_record *records, uint32_t used,
               const struct mt_metrics_destination_record *labels)
{
    for (uint32_t i = 0; i < used; i++) {
        if (records[i].family == labels->family && records[i].tls == labels->tls &&
            records[i].port == labels->port &&
            memcmp(records[i].address, labels->address, sizeof(labels->address)) == 0)
            return &records[i];
    }
    return NULL;
}

/*
 * With the lock held: counts one outbound open to destination in its record, created when new
 * (in the process's one destination chunk, made on first use). Past
 * MT_METRICS_DESTINATIONS_PER_PROCESS_MAX − 2 destinations, the open counts in the OTHER record
 * of its tls, so that the records stay bounded and no open goes uncounted.
 */
static void destination_count_locked(bool tls, const struct sockaddr_storage *destination)
{
    /* No address to name (the core did not say): "other" stays the count of the overflow. */
    if (destination == NULL ||
        (destination->ss_family != AF_INET && destination->ss_family != AF_INET6))
        return;
    struct chunk *chunk = NULL;
    for (uint32_t i = 0; i < writer.chunk_count && chunk == NULL; i++)
        if (writer.chunks[i].header->kind == MT_METRICS_CHUNK_DESTINATIONS)
            chunk = &writer.chunks[i];
    if (chunk == NULL)
        chunk = add_chunk_locked(MT_METRICS_CHUNK_DESTINATIONS);
    if (chunk == NULL)
        return;
    struct mt_metrics_destination_record *records = (void *)chunk->records;
    uint32_t used = chunk->header->used;
    struct mt_metrics_destination_record labels = destination_labels(tls, destination);
    struct mt_metrics_destination_record *record = destination_in(records, used, &labels);
    if (record == NULL && used >= MT_METRICS_DESTINATIONS_PER_PROCESS_MAX - 2) {
        labels = destination_labels(tls, NULL);
        record = destination_in(records, used, &labels);
    }
    if (record == NULL) {
        if (used >= MT_METRICS_DESTINATIONS_PER_PROCESS_MAX)
            return;
        record = &records[used];
        *record = labels;
        __atomic_store_n(&chunk->header->used, used + 1, __ATOMIC_RELEASE);
    }
    counter_add(&record->open_total, 1);
}

/* ---- connections --------------------------------------------------------------------------- */

static void format_address(const struct sockaddr_storage *address, char *text, size_t capacity)
{
    char host[INET6_ADDRSTRLEN] = "";
    text[0] = '\0';
    if (address == NULL)
        return;
    if (address->ss_family == AF_INET) {
        const struct sockaddr_in *ipv4 = (const struct sockaddr_in *)address;
        if (inet_ntop(AF_INET, &ipv4->sin_addr, host, sizeof(host)) != NULL)
            snprintf(text, capacity, "%s:%u", host, (unsigned)ntohs(ipv4->sin_port));
    } else if (address->ss_family == AF_INET6) {
        const struct sockaddr_in6 *ipv6 = (const struct sockaddr_in6 *)address;
        if (inet_ntop(AF_INET6, &ipv6->sin6_addr, host, sizeof(host)) != NULL)
            snprintf(text, capacity, "[%s]:%u", host, (unsigned)ntohs(ipv6->sin6_port));
    }
}

/* With the lock held: a free connection slot, now BUSY with a new generation; NULL when full. */
static struct mt_metrics_connection_record *connection_claim_locked(uint32_t *generation)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        for (uint32_t n = 0; n < writer.chunk_count; n++) {
            uint32_t i = (writer.connection_hint + n) % writer.chunk_count;
            struct chunk *chunk = &writer.chunks[i];
            if (chunk->header->kind != MT_METRICS_CHUNK_CONNECTIONS)
                continue;
            struct mt_metrics_connection_record *records = (void *)chunk->records;
            for (uint32_t j = 0; j < chunk->header->capacity; j++) {
                uint64_t seen = state_load(&records[j].state);
                if ((seen & STATE_MASK) != MT_METRICS_CONNECTION_FREE)
                    continue;
                uint32_t next = (uint32_t)(seen >> 32) + 1;
                if (__atomic_compare_exchange_n(&records[j].state, &seen,
                                                state_word(next, MT_METRICS_CONNECTION_BUSY), false,
                                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                    writer.connection_hint = i;
                    *generation = next;
                    return &records[j];
                }
            }
        }
        if (add_chunk_locked(MT_METRICS_CHUNK_CONNECTIONS) == NULL)
            return NULL;
    }
    return NULL;
}

/* ---- the API ------------------------------------------------------------------------------- */

void mt_metrics_init(mt_metrics_file_source source)
{
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&writer_lock);
    if (!writer.initialised && source != NULL) {
        writer.source = source;
        writer.initialised = true;
    }
    pthread_mutex_unlock(&writer_lock);
}

void mt_metrics_ask_ahead(void (*ahead)(void))
{
    pthread_mutex_lock(&writer_lock);
    adopt_fork_locked();
    if (writer.initialised && writer.header == NULL && mt_sys_now_ms() >= writer.retry_after_ms)
        ahead();
    pthread_mutex_unlock(&writer_lock);
}

struct mt_metrics_connection *mt_metrics_connection_open(bool inbound, bool tls, uint16_t port,
                                                         const struct sockaddr_storage *peer,
                                                         const char *peer_id)
{
    if (!lock_and_ensure_file())
        return NULL;
    struct mt_metrics_connection *handle = NULL;
    if (!inbound)
        destination_count_locked(tls, peer);
    struct mt_metrics_series_record *series = series_find_locked(inbound, tls, port, peer_id);
    uint32_t generation = 0;
    struct mt_metrics_connection_record *record =
        series != NULL ? connection_claim_locked(&generation) : NULL;
    if (record != NULL)
        handle = malloc(sizeof(*handle));
    if (handle == NULL) {
        if (record != NULL)
            __atomic_store_n(&record->state, state_word(generation, MT_METRICS_CONNECTION_FREE),
                             __ATOMIC_RELEASE);
        /* The connection is still counted when only its status row is missing. */
        if (series != NULL)
            counter_add(&series->open_total, 1);
        goto out;
    }
    *handle = (struct mt_metrics_connection){record, series, generation};
    record->fd = -1;
    record->inbound = inbound;
    record->tls = tls;
    record->port = port;
    record->opened_at_ms = wall_ms();
    record->read_bytes = 0;
    record->write_bytes = 0;
    record->local[0] = '\0';
    format_address(peer, record->peer, sizeof(record->peer));
    copy_label(record->peer_id, sizeof(record->peer_id), peer_id);
    counter_add(&series->open_total, 1);
    __atomic_store_n(&record->state, state_word(generation, MT_METRICS_CONNECTION_OPEN),
                     __ATOMIC_RELEASE);

out:
    pthread_mutex_unlock(&writer_lock);
    return handle;
}

void mt_metrics_outbound_plain(const struct sockaddr_storage *destination)
{
    if (!lock_and_ensure_file())
        return;
    destination_count_locked(false, destination);
    struct mt_metrics_series_record *series =
        series_find_locked(false, false, destination_labels(false, destination).port, NULL);
    if (series != NULL) {
        counter_add(&series->open_total, 1);
        counter_add(&series->close_total, 1);
    }
    pthread_mutex_unlock(&writer_lock);
}

void mt_metrics_connection_describe(struct mt_metrics_connection *connection, int fd,
                                    const struct sockaddr_storage *local, const char *key_exchange)
{
    if (connection == NULL)
        return;
    struct mt_metrics_connection_record *record = connection->record;
    if (state_load(&record->state) !=
        state_word(connection->generation, MT_METRICS_CONNECTION_OPEN))
        return;
    record->fd = fd;
    format_address(local, record->local, sizeof(record->local));
    if (key_exchange != NULL)
        snprintf(record->key_exchange, sizeof(record->key_exchange), "%s", key_exchange);
}

void mt_metrics_connection_close(struct mt_metrics_connection *connection)
{
    if (connection == NULL)
        return;
    struct mt_metrics_connection_record *record = connection->record;
    uint64_t open = state_word(connection->generation, MT_METRICS_CONNECTION_OPEN);
    /* Only the first close of this generation counts, in whichever process it happens. */
    if (__atomic_compare_exchange_n(&record->state, &open,
                                    state_word(connection->generation, MT_METRICS_CONNECTION_BUSY),
                                    false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        counter_add(&connection->series->close_total, 1);
        __atomic_store_n(&record->state,
                         state_word(connection->generation, MT_METRICS_CONNECTION_FREE),
                         __ATOMIC_RELEASE);
    }
    free(connection);
}

/* The per-connection count is skipped once the slot has a new occupant (see the layout). */
static void count_bytes(struct mt_metrics_connection *connection, size_t bytes, bool written)
{
    if (connection == NULL || bytes == 0)
        return;
    counter_add(written ? &connection->series->write_bytes : &connection->series->read_bytes,
                bytes);
    struct mt_metrics_connection_record *record = connection->record;
    if (__atomic_load_n(&record->state, __ATOMIC_RELAXED) >> 32 == connection->generation)
        counter_add(written ? &record->write_bytes : &record->read_bytes, bytes);
}

void mt_metrics_bytes_read(struct mt_metrics_connection *connection, size_t bytes)
{
    count_bytes(connection, bytes, false);
}

void mt_metrics_bytes_written(struct mt_metrics_connection *connection, size_t bytes)
{
    count_bytes(connection, bytes, true);
}

/* The header of this process's file, creating the file when needed; NULL when disabled. */
static struct mt_metrics_file_header *own_header(void)
{
    struct mt_metrics_file_header *header = atomic_load(&published_header);
    if (header != NULL && !atomic_load(&forked))
        return header;
    if (!lock_and_ensure_file())
        return NULL;
    header = writer.header;
    pthread_mutex_unlock(&writer_lock);
    return header;
}

static size_t bucket_of(uint64_t duration_us)
{
    static const uint64_t bounds[] = {
#define MT_METRICS_BOUND_VALUE(bound) bound,
        MT_METRICS_LATENCY_BUCKETS(MT_METRICS_BOUND_VALUE)
#undef MT_METRICS_BOUND_VALUE
    };
    for (size_t i = 0; i < MT_METRICS_BUCKET_COUNT; i++)
        if (duration_us <= bounds[i])
            return i;
    return MT_METRICS_BUCKET_COUNT;
}

void mt_metrics_handshake(bool inbound, uint64_t duration_us, bool resumed,
                          const char *failure_reason)
{
    struct mt_metrics_file_header *header = own_header();
    if (header == NULL)
        return;
    struct mt_metrics_handshakes *handshakes =
        &header->handshakes[inbound ? MT_METRICS_INBOUND : MT_METRICS_OUTBOUND];
    if (failure_reason != NULL) {
        counter_add(&handshakes->failures[mt_metrics_failure_reason_classify(failure_reason)], 1);
        return;
    }
    counter_add(&handshakes->buckets[bucket_of(duration_us)], 1);
    counter_add(&handshakes->duration_sum_us, duration_us);
    counter_add(&handshakes->success_count, 1);
    if (resumed)
        counter_add(&handshakes->resumed_count, 1);
}

void mt_metrics_authz(bool allowed, uint16_t port, const char *peer_id)
{
    if (!lock_and_ensure_file())
        return;
    struct mt_metrics_series_record *series = series_find_locked(true, true, port, peer_id);
    if (series != NULL)
        counter_add(allowed ? &series->authz_allow : &series->authz_deny, 1);
    pthread_mutex_unlock(&writer_lock);
}

void mt_metrics_identity(time_t expiry, bool renewed)
{
    struct mt_metrics_file_header *header = own_header();
    if (header == NULL)
        return;
    __atomic_store_n(&header->identity_expiry, (int64_t)expiry, __ATOMIC_RELAXED);
    if (renewed)
        counter_add(&header->identity_refresh_count, 1);
}
