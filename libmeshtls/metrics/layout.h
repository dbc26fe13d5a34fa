/*
 * The metrics file: the shared-memory layout one intercepted process writes and the agent reads.
 *
 * One file per process, <socket dir>/metrics/<pid>-<start time>.metrics. The agent creates it
 * (owned by the agent, mode 0600, in a directory only the agent can write: 0755), names it by the
 * pid and start time it attested itself (the pid as the agent's PID namespace sees it), writes
 * the header, and hands the open file to the process over the agent socket (SCM_RIGHTS): nobody
 * can create a process's file before it, and a process in its own PID namespace is named as the
 * agent sees it. The writer maps it MAP_SHARED and updates counters in place with relaxed
 * atomics; the reader copies what it needs with pread() (never maps it, so a writer truncating
 * its file cannot fault the agent), reads at most MT_METRICS_FILE_SIZE_MAX bytes of it whatever
 * size the writer gives it, and treats every field as hostile input.
 *
 *   offset 0                 struct mt_metrics_file_header (MT_METRICS_HEADER_SIZE bytes)
 *   offset HEADER + i·CHUNK  chunk i: struct mt_metrics_chunk_header, then records
 *
 * A chunk holds records of one kind: series (struct mt_metrics_series_record, one per label set
 * direction × tls × port × peer identity), open connections (struct
 * mt_metrics_connection_record) or outbound destinations (struct mt_metrics_destination_record,
 * one per address × port × tls, at most MT_METRICS_DESTINATIONS_PER_PROCESS_MAX; the writer
 * makes one such chunk, on the first outbound open). The file grows by whole chunks: ftruncate, map
 * the new chunk on its own, initialise it, then publish it by incrementing chunk_count (release).
 * Existing chunks never move, so pointers held by other threads stay valid and no data-path call
 * ever needs a system call. Records in a series chunk are published the same way, by incrementing
 * the chunk's used count after the record's labels are written.
 *
 * Counters in a record are monotonic for the life of the file; tcp_open_connections is derived
 * by the reader as open_total − close_total of the series. Strings are NUL-padded fixed arrays.
 * Any change to this layout bumps MT_METRICS_LAYOUT_VERSION; a reader skips files of another
 * version.
 */
#ifndef MT_METRICS_LAYOUT_H
#define MT_METRICS_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MT_METRICS_MAGIC "MTMETRIC"
#define MT_METRICS_LAYOUT_VERSION 4u
#define MT_METRICS_HEADER_SIZE 4096u
#define MT_METRICS_CHUNK_SIZE 65536u
#define MT_METRICS_CHUNK_HEADER_SIZE 64u
/* A file never grows past this many chunks (16 MiB); the reader refuses larger ones. */
#define MT_METRICS_CHUNKS_MAX 256u
#define MT_METRICS_FILE_SIZE_MAX                                                                   \
    (MT_METRICS_HEADER_SIZE + MT_METRICS_CHUNKS_MAX * MT_METRICS_CHUNK_SIZE)

/* A peer identity label is cut here (SPIFFE IDs may be 2048 bytes; labels should stay short). */
#define MT_METRICS_PEER_ID_MAX 256u
#define MT_METRICS_ADDRESS_MAX 64u
/* A TLS key-exchange group's name, e.g. "X25519MLKEM768", NUL included. */
#define MT_METRICS_KEY_EXCHANGE_MAX 24u

/*
 * What one process may contribute to the agent's scrape, whatever its file says. A process
 * writes one series per direction × tls × port × peer identity: a busy gateway that talks to a
 * few hundred services on a few ports stays far below these. Series beyond them are left out of
 * the exposition and counted (meshtls_agent_metrics_series_dropped_total), so that one process
 * cannot turn a 16 MiB file into gigabytes of text (every sample repeats the exe label, and
 * escaping doubles a label of quotes).
 */
#define MT_METRICS_SERIES_PER_PROCESS_MAX 1024u
/* The peer_id bytes of one process's rendered series, summed. */
#define MT_METRICS_LABEL_BYTES_PER_PROCESS_MAX (64u * 1024u)
/* The exe label (from /proc/<pid>/exe) is cut to this many bytes. */
#define MT_METRICS_EXE_LABEL_MAX 256u
/*
 * Outbound destination records (address × port × tls) of one process, the writer's and the
 * reader's limit: the writer keeps the last two for "every other destination", plaintext and
 * mTLS, so that opens past the limit are still counted, never lost and never unbounded.
 */
#define MT_METRICS_DESTINATIONS_PER_PROCESS_MAX 256u
/* Open connections of one process listed by `meshtls status`. */
#define MT_METRICS_CONNECTIONS_PER_PROCESS_MAX 256u
/* Processes one scrape or STATUS request reads (a node runs far fewer meshed processes). */
#define MT_METRICS_PROCESSES_MAX 65536u

/*
 * Handshake latency buckets, upper bounds in microseconds (Linkerd's latency buckets). Kept out
 * of clang-format, which does not settle on a layout for this list.
 */
// clang-format off
#define MT_METRICS_LATENCY_BUCKETS(X)                                                              \
    X(1000) X(2000) X(3000) X(4000) X(5000) X(10000) X(20000) X(30000) X(40000) X(50000)           \
    X(100000) X(200000) X(300000) X(400000) X(500000) X(1000000) X(2000000) X(3000000)             \
    X(4000000) X(5000000) X(10000000)
// clang-format on
#define MT_METRICS_COUNT_ONE(bound) +1
enum { MT_METRICS_BUCKET_COUNT = 0 MT_METRICS_LATENCY_BUCKETS(MT_METRICS_COUNT_ONE) };

/* Handshake failure classes: the bounded label set that free-text reasons map to. */
#define MT_METRICS_FAILURE_REASONS(X)                                                              \
    X(NOT_TLS, "not_tls")                                                                          \
    X(UNTRUSTED_CA, "untrusted_ca")                                                                \
    X(EXPIRED, "expired")                                                                          \
    X(BAD_SVID, "bad_svid")                                                                        \
    X(PEER_REJECTED, "peer_rejected")                                                              \
    X(TIMEOUT, "timeout")                                                                          \
    X(NO_IDENTITY, "no_identity")                                                                  \
    X(POLICY, "policy")                                                                            \
    X(OTHER, "other")

enum mt_metrics_failure_reason {
#define MT_METRICS_REASON_ENUM(name, label) MT_METRICS_FAILURE_##name,
    MT_METRICS_FAILURE_REASONS(MT_METRICS_REASON_ENUM)
#undef MT_METRICS_REASON_ENUM
        MT_METRICS_FAILURE_COUNT
};

enum mt_metrics_direction {
    MT_METRICS_INBOUND = 0,
    MT_METRICS_OUTBOUND = 1,
    MT_METRICS_DIRECTIONS = 2,
};

enum mt_metrics_chunk_kind {
    MT_METRICS_CHUNK_SERIES = 1,
    MT_METRICS_CHUNK_CONNECTIONS = 2,
    MT_METRICS_CHUNK_DESTINATIONS = 3,
};

/* A destination record's family: an address, or the record of every other destination. */
enum mt_metrics_destination_family {
    MT_METRICS_DESTINATION_OTHER = 0,
    MT_METRICS_DESTINATION_IPV4 = 4,
    MT_METRICS_DESTINATION_IPV6 = 6,
};

enum mt_metrics_connection_state {
    MT_METRICS_CONNECTION_FREE = 0,
    MT_METRICS_CONNECTION_BUSY = 1, /* being filled in or torn down by the writer */
    MT_METRICS_CONNECTION_OPEN = 2,
};

/* Handshake latency and outcome for one direction. */
struct mt_metrics_handshakes {
    uint64_t buckets[MT_METRICS_BUCKET_COUNT + 1]; /* per bucket, not cumulative; last is +Inf */
    uint64_t duration_sum_us;
    uint64_t success_count;
    uint64_t failures[MT_METRICS_FAILURE_COUNT];
    uint64_t resumed_count; /* successes that resumed a session (no certificates exchanged) */
};

struct mt_metrics_file_header {
    char magic[8];
    uint32_t version;
    uint32_t header_size;    /* MT_METRICS_HEADER_SIZE */
    uint32_t chunk_size;     /* MT_METRICS_CHUNK_SIZE */
    uint32_t chunk_count;    /* published chunks (atomic, release) */
    int32_t pid;             /* as the agent saw it when it created the file (informative) */
    uint32_t uid;            /* the process's uid then (informative) */
    uint64_t start_time;     /* /proc/<pid>/stat field 22, clock ticks after boot */
    int64_t created_at;      /* unix seconds */
    int64_t identity_expiry; /* unix seconds, 0 before the first identity (atomic) */
    uint64_t identity_refresh_count;
    struct mt_metrics_handshakes handshakes[MT_METRICS_DIRECTIONS];
};

struct mt_metrics_chunk_header {
    uint32_t kind;        /* enum mt_metrics_chunk_kind */
    uint32_t record_size; /* sizeof the record kind */
    uint32_t capacity;    /* records that fit in the chunk */
    uint32_t used; /* series, destinations: records published (atomic, release); connections: 0 */
};

/* One label set's counters. Labels are written once, before the record is published. */
struct mt_metrics_series_record {
    uint8_t inbound; /* 1 inbound, 0 outbound */
    uint8_t tls;     /* 1 mTLS, 0 plaintext */
    uint16_t port;   /* inbound: the local port; outbound: the destination port */
    uint32_t reserved;
    char peer_id[MT_METRICS_PEER_ID_MAX]; /* "" when unknown (plaintext, or no peer certificate) */
    uint64_t open_total;
    uint64_t close_total;
    uint64_t read_bytes; /* application bytes (plaintext), as the program saw them */
    uint64_t write_bytes;
    uint64_t authz_allow;
    uint64_t authz_deny;
};

/*
 * Outbound connections opened to one destination: mTLS, or plaintext as mode "auto" decided
 * (mode "plain" passes the connection to libc uncounted) (for `meshtls status` and
 * outbound_destination_open_total: which destinations are not yet mTLS). Labels written once,
 * before the record is published; open_total counted after.
 */
struct mt_metrics_destination_record {
    uint8_t family; /* enum mt_metrics_destination_family */
    uint8_t tls;    /* 1 mTLS, 0 plaintext */
    uint16_t port;  /* the destination port; 0 in an OTHER record */
    uint32_t reserved;
    uint8_t address[16]; /* network order; 4 bytes used for IPv4 (a v4-mapped IPv6 address is
                            IPv4); zero in an OTHER record */
    uint64_t open_total;
};

/* One open connection, for `meshtls status`. state is written last on open, first on close. */
struct mt_metrics_connection_record {
    /*
     * Low 32 bits: enum mt_metrics_connection_state; high 32: a generation counted up on every
     * open, so that a stale handle (a connection shared across fork and closed by the other
     * process, its slot since reused) cannot close or count into the slot's new occupant.
     */
    uint64_t state;
    int32_t fd; /* -1 when the core did not say */
    uint8_t inbound;
    uint8_t tls;
    uint16_t port;
    int64_t opened_at_ms; /* unix milliseconds */
    uint64_t read_bytes;
    uint64_t write_bytes;
    char local[MT_METRICS_ADDRESS_MAX]; /* "" when the core did not say */
    char peer[MT_METRICS_ADDRESS_MAX];
    char peer_id[MT_METRICS_PEER_ID_MAX];
    char key_exchange[MT_METRICS_KEY_EXCHANGE_MAX]; /* "" for plaintext or when not said */
};

_Static_assert(sizeof(struct mt_metrics_file_header) <= MT_METRICS_HEADER_SIZE,
               "metrics header must fit its page");
_Static_assert(sizeof(struct mt_metrics_chunk_header) <= MT_METRICS_CHUNK_HEADER_SIZE,
               "chunk header must fit its slot");
_Static_assert(sizeof(struct mt_metrics_series_record) % 8 == 0, "series records stay aligned");
_Static_assert(sizeof(struct mt_metrics_connection_record) % 8 == 0,
               "connection records stay aligned");
_Static_assert(sizeof(struct mt_metrics_destination_record) == 32,
               "destination records stay small");
_Static_assert(MT_METRICS_DESTINATIONS_PER_PROCESS_MAX *
                       sizeof(struct mt_metrics_destination_record) <=
                   MT_METRICS_CHUNK_SIZE - MT_METRICS_CHUNK_HEADER_SIZE,
               "a process's destinations fit one chunk");

/* The size of one record of a chunk of kind: what the writer stores in the chunk's header and
 * what the reader requires of it. */
static inline uint32_t mt_metrics_chunk_record_size(enum mt_metrics_chunk_kind kind)
{
    switch (kind) {
    case MT_METRICS_CHUNK_SERIES:
        return sizeof(struct mt_metrics_series_record);
    case MT_METRICS_CHUNK_DESTINATIONS:
        return sizeof(struct mt_metrics_destination_record);
    case MT_METRICS_CHUNK_CONNECTIONS:
    default:
        return sizeof(struct mt_metrics_connection_record);
    }
}

/*
 * The start time (field 22, clock ticks after boot) in the text of a /proc/<pid>/stat file,
 * NUL-terminated: together with the pid it names a process's metrics file. The agent reads it
 * when it creates a process's file and when it checks that the file's process is still alive;
 * the process itself never names its file (the agent tells it). The command name (field 2) may
 * hold spaces and parentheses: fields are counted from the last ')'.
 */
static inline bool mt_metrics_stat_start_time(const char *stat_text, unsigned long long *start_time)
{
    const char *cursor = strrchr(stat_text, ')');
    for (int field = 2; cursor != NULL && field < 22; field++)
        cursor = strchr(cursor + 1, ' ');
    if (cursor == NULL)
        return false;
    char *end = NULL;
    *start_time = strtoull(cursor + 1, &end, 10);
    return end != cursor + 1;
}

#endif
