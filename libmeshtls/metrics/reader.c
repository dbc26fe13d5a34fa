/*
 * Reading and rendering the metrics files of a node's processes (see reader.h).
 *
 * Owns the decision which metrics files to believe, how much of each to read, and their
 * translation to Prometheus text. Every file is written by some local process, possibly a
 * hostile one that holds it open for writing: it is read with pread (a mapping could fault if
 * its writer truncated it), never past the largest layout, its counts are bounded by its chunk
 * headers and by the per-process limits of layout.h before anything is allocated, its strings are
 * terminated in the copy, and its name must agree with the kernel. This file must never map a
 * metrics file, never follow a symbolic link in the metrics directory, never take an executable
 * name or a uid from a file, never hold more than one process's copy per scrape, and never remove
 * a file (the agent's event loop sweeps them).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "directory.h"
#include "metrics.h"
#include "reader.h"

/* ---- text ---------------------------------------------------------------------------------- */

static bool text_reserve(struct mt_metrics_text *text, size_t more)
{
    if (text->failed)
        return false;
    if (text->capacity - text->length > more)
        return true;
    size_t capacity = text->capacity > 0 ? text->capacity : 4096;
    while (capacity - text->length <= more)
        capacity *= 2;
    char *grown = realloc(text->data, capacity);
    if (grown == NULL) {
        text->failed = true;
        return false;
    }
    text->data = grown;
    text->capacity = capacity;
    return true;
}

void mt_metrics_text_append(struct mt_metrics_text *text, const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    int needed = vsnprintf(NULL, 0, format, arguments);
    va_end(arguments);
    if (needed < 0 || !text_reserve(text, (size_t)needed + 1)) {
        text->failed = true;
        return;
    }
    va_start(arguments, format);
    vsnprintf(text->data + text->length, text->capacity - text->length, format, arguments);
    va_end(arguments);
    text->length += (size_t)needed;
}

void mt_metrics_text_append_label(struct mt_metrics_text *text, const char *value)
{
    for (const char *cursor = value; *cursor != '\0'; cursor++) {
        if (!text_reserve(text, 3))
            return;
        char c = *cursor;
        if (c == '\\' || c == '"') {
            text->data[text->length++] = '\\';
            text->data[text->length++] = c;
        } else if (c == '\n') {
            text->data[text->length++] = '\\';
            text->data[text->length++] = 'n';
        } else {
            text->data[text->length++] = c;
        }
        text->data[text->length] = '\0';
    }
}

void mt_metrics_text_free(struct mt_metrics_text *text)
{
    if (text == NULL)
        return;
    free(text->data);
    *text = (struct mt_metrics_text){0};
}

/* ---- loading one file ---------------------------------------------------------------------- */

static MT_RESULT check_chunk(const struct mt_metrics_chunk_header *chunk)
{
    MT_ENSURE(chunk->kind == MT_METRICS_CHUNK_SERIES ||
                  chunk->kind == MT_METRICS_CHUNK_CONNECTIONS ||
                  chunk->kind == MT_METRICS_CHUNK_DESTINATIONS,
              MT_ERR_PROTO_MALFORMED);
    MT_ENSURE(chunk->record_size == mt_metrics_chunk_record_size(chunk->kind),
              MT_ERR_PROTO_MALFORMED);
    MT_ENSURE(chunk->capacity ==
                  (MT_METRICS_CHUNK_SIZE - MT_METRICS_CHUNK_HEADER_SIZE) / chunk->record_size,
              MT_ERR_PROTO_MALFORMED);
    MT_ENSURE(chunk->kind == MT_METRICS_CHUNK_CONNECTIONS || chunk->used <= chunk->capacity,
              MT_ERR_PROTO_MALFORMED);
    return MT_OK_RESULT;
}

/* Room for count more records in *array (of capacity *capacity, at most limit), by doubling. */
static MT_RESULT reserve(void **array, size_t *capacity, size_t used, size_t count,
                         size_t record_size, size_t limit)
{
    if (used + count <= *capacity)
        return MT_OK_RESULT;
    size_t grown = *capacity > 0 ? *capacity : 16;
    while (grown < used + count)
        grown *= 2;
    if (grown > limit)
        grown = limit;
    void *bigger = realloc(*array, grown * record_size);
    MT_ENSURE(bigger != NULL, MT_ERR_NO_MEMORY);
    *array = bigger;
    *capacity = grown;
    return MT_OK_RESULT;
}

/*
 * The series of one chunk: at most what the per-process limits still allow is read; a series
 * whose peer identity would overrun the label budget is dropped, and so is every series past
 * the series limit. Dropped series are counted, never read.
 */
static MT_RESULT load_series(mt_metrics_read_at read_at, void *source, uint64_t offset,
                             uint32_t used, struct mt_metrics_process *process, size_t *capacity,
                             size_t *label_bytes)
{
    size_t room = MT_METRICS_SERIES_PER_PROCESS_MAX - process->series_count;
    size_t count = used < room ? used : room;
    process->series_dropped += used - count;
    if (count == 0)
        return MT_OK_RESULT;
    MT_GUARD(reserve((void **)&process->series, capacity, process->series_count, count,
                     sizeof(*process->series), MT_METRICS_SERIES_PER_PROCESS_MAX));
    struct mt_metrics_series_record *records = process->series + process->series_count;
    MT_ENSURE(read_at(source, records, count * sizeof(*records), offset), MT_ERR_PROTO_TRUNCATED);
    for (size_t i = 0; i < count; i++) {
        struct mt_metrics_series_record *record = &records[i];
        record->peer_id[sizeof(record->peer_id) - 1] = '\0';
        size_t length = strlen(record->peer_id);
        if (*label_bytes + length > MT_METRICS_LABEL_BYTES_PER_PROCESS_MAX) {
            process->series_dropped++;
            continue;
        }
        *label_bytes += length;
        process->series[process->series_count++] = *record;
    }
    return MT_OK_RESULT;
}

static bool destination_is_valid(const struct mt_metrics_destination_record *record)
{
    return record->family == MT_METRICS_DESTINATION_IPV4 ||
           record->family == MT_METRICS_DESTINATION_IPV6 ||
           record->family == MT_METRICS_DESTINATION_OTHER;
}

/*
 * The destinations of one chunk: at most what the per-process limit still allows is read (the
 * writer makes one chunk; a file with more is read up to the limit). A record of no known family
 * is dropped; tls is read as a boolean, and an OTHER record's address and port are ignored.
 */
static MT_RESULT load_destinations(mt_metrics_read_at read_at, void *source, uint64_t offset,
                                   uint32_t used, struct mt_metrics_process *process)
{
    size_t room = MT_METRICS_DESTINATIONS_PER_PROCESS_MAX - process->destination_count;
    size_t count = used < room ? used : room;
    process->destinations_dropped += used - count;
    if (count == 0)
        return MT_OK_RESULT;
    if (process->destinations == NULL) {
        process->destinations =
            calloc(MT_METRICS_DESTINATIONS_PER_PROCESS_MAX, sizeof(*process->destinations));
        MT_ENSURE(process->destinations != NULL, MT_ERR_NO_MEMORY);
    }
    struct mt_metrics_destination_record *records =
        process->destinations + process->destination_count;
    MT_ENSURE(read_at(source, records, count * sizeof(*records), offset), MT_ERR_PROTO_TRUNCATED);
    for (size_t i = 0; i < count; i++) {
        struct mt_metrics_destination_record record = records[i];
        if (!destination_is_valid(&record)) {
            process->destinations_dropped++;
            continue;
        }
        record.tls = record.tls != 0;
        if (record.family == MT_METRICS_DESTINATION_OTHER) {
            record.port = 0;
            memset(record.address, 0, sizeof(record.address));
        }
        process->destinations[process->destination_count++] = record;
    }
    return MT_OK_RESULT;
}

void mt_metrics_destination_format(const struct mt_metrics_destination_record *destination,
                                   char *text, size_t capacity)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int family = destination->family == MT_METRICS_DESTINATION_IPV4 ? AF_INET : AF_INET6;
    if (destination->family == MT_METRICS_DESTINATION_OTHER) {
        snprintf(text, capacity, "other");
        return;
    }
    if (inet_ntop(family, destination->address, host, sizeof(host)) == NULL)
        snprintf(host, sizeof(host), "?");
    snprintf(text, capacity, family == AF_INET ? "%s:%u" : "[%s]:%u", host,
             (unsigned)destination->port);
}

/* The open connections of one chunk, read through scratch (one chunk's records). */
static MT_RESULT load_connections(mt_metrics_read_at read_at, void *source, uint64_t offset,
                                  uint32_t capacity_in_chunk, struct mt_metrics_process *process,
                                  size_t *capacity, struct mt_metrics_connection_record *scratch)
{
    MT_ENSURE(read_at(source, scratch, capacity_in_chunk * sizeof(*scratch), offset),
              MT_ERR_PROTO_TRUNCATED);
    for (uint32_t i = 0; i < capacity_in_chunk; i++) {
        struct mt_metrics_connection_record *record = &scratch[i];
        if ((record->state & 0xffffffffu) != MT_METRICS_CONNECTION_OPEN)
            continue;
        if (process->connection_count == MT_METRICS_CONNECTIONS_PER_PROCESS_MAX) {
            process->connections_dropped++;
            continue;
        }
        MT_GUARD(reserve((void **)&process->connections, capacity, process->connection_count, 1,
                         sizeof(*record), MT_METRICS_CONNECTIONS_PER_PROCESS_MAX));
        record->local[sizeof(record->local) - 1] = '\0';
        record->peer[sizeof(record->peer) - 1] = '\0';
        record->peer_id[sizeof(record->peer_id) - 1] = '\0';
        record->key_exchange[sizeof(record->key_exchange) - 1] = '\0';
        process->connections[process->connection_count++] = *record;
    }
    return MT_OK_RESULT;
}

static MT_RESULT load_chunks(mt_metrics_read_at read_at, void *source, size_t chunks,
                             enum mt_metrics_load what, struct mt_metrics_process *process)
{
    size_t series_capacity = 0;
    size_t connection_capacity = 0;
    size_t label_bytes = 0;
    struct mt_metrics_connection_record *scratch = NULL;
    mt_result result = MT_OK_RESULT;
    for (size_t i = 0; i < chunks && mt_result_is_ok(result); i++) {
        uint64_t base = MT_METRICS_HEADER_SIZE + (uint64_t)i * MT_METRICS_CHUNK_SIZE;
        uint64_t records = base + MT_METRICS_CHUNK_HEADER_SIZE;
        struct mt_metrics_chunk_header chunk;
        if (!read_at(source, &chunk, sizeof(chunk), base)) {
            result = mt_result_of(MT_ERR_PROTO_TRUNCATED);
            break;
        }
        result = check_chunk(&chunk);
        if (!mt_result_is_ok(result) || what == MT_METRICS_LOAD_HEADER)
            continue;
        if (chunk.kind == MT_METRICS_CHUNK_SERIES) {
            result = load_series(read_at, source, records, chunk.used, process, &series_capacity,
                                 &label_bytes);
            continue;
        }
        if (chunk.kind == MT_METRICS_CHUNK_DESTINATIONS) {
            result = load_destinations(read_at, source, records, chunk.used, process);
            continue;
        }
        /* At the limit, the rest of the connection chunks (64 KiB each) are not even read. */
        if (what != MT_METRICS_LOAD_ALL ||
            process->connection_count == MT_METRICS_CONNECTIONS_PER_PROCESS_MAX)
            continue;
        if (scratch == NULL)
            scratch = malloc(MT_METRICS_CHUNK_SIZE);
        result = scratch != NULL ? load_connections(read_at, source, records, chunk.capacity,
                                                    process, &connection_capacity, scratch)
                                 : mt_result_of(MT_ERR_NO_MEMORY);
    }
    free(scratch);
    return result;
}

MT_RESULT mt_metrics_process_load(mt_metrics_read_at read_at, void *source, uint64_t size,
                                  enum mt_metrics_load what, struct mt_metrics_process *process)
{
    MT_ENSURE_REF(read_at);
    MT_ENSURE_REF(process);
    memset(process, 0, sizeof(*process));
    MT_ENSURE(size >= MT_METRICS_HEADER_SIZE, MT_ERR_PROTO_MALFORMED);
    /* A writer can grow its own file without bound; nothing past the largest layout is read. */
    if (size > MT_METRICS_FILE_SIZE_MAX)
        size = MT_METRICS_FILE_SIZE_MAX;
    struct mt_metrics_file_header *header = &process->header;
    MT_ENSURE(read_at(source, header, sizeof(*header), 0), MT_ERR_PROTO_TRUNCATED);
    MT_ENSURE(memcmp(header->magic, MT_METRICS_MAGIC, sizeof(header->magic)) == 0,
              MT_ERR_PROTO_MALFORMED);
    MT_ENSURE(header->version == MT_METRICS_LAYOUT_VERSION, MT_ERR_PROTO_VERSION);
    MT_ENSURE(header->header_size == MT_METRICS_HEADER_SIZE &&
                  header->chunk_size == MT_METRICS_CHUNK_SIZE,
              MT_ERR_PROTO_MALFORMED);
    /* A chunk published but not yet in the file (it grew between the two) is left out. */
    size_t chunks = (size - MT_METRICS_HEADER_SIZE) / MT_METRICS_CHUNK_SIZE;
    if (header->chunk_count < chunks)
        chunks = header->chunk_count;
    mt_result result = load_chunks(read_at, source, chunks, what, process);
    if (!mt_result_is_ok(result))
        mt_metrics_process_cleanup(process);
    return result;
}

struct image {
    const uint8_t *data;
    size_t size;
};

static bool image_read_at(void *source, void *buffer, size_t length, uint64_t offset)
{
    const struct image *image = source;
    if (offset > image->size || length > image->size - offset)
        return false;
    memcpy(buffer, image->data + offset, length);
    return true;
}

MT_RESULT mt_metrics_process_parse(const uint8_t *data, size_t size,
                                   struct mt_metrics_process *process)
{
    MT_ENSURE_REF(data);
    struct image image = {data, size};
    return mt_metrics_process_load(image_read_at, &image, size, MT_METRICS_LOAD_ALL, process);
}

void mt_metrics_process_cleanup(struct mt_metrics_process *process)
{
    if (process == NULL)
        return;
    free(process->series);
    free(process->connections);
    free(process->destinations);
    process->series = NULL;
    process->connections = NULL;
    process->destinations = NULL;
    process->series_count = 0;
    process->connection_count = 0;
    process->destination_count = 0;
}

uint64_t mt_metrics_series_open_connections(const struct mt_metrics_series_record *series)
{
    return series->open_total > series->close_total ? series->open_total - series->close_total : 0;
}

/* ---- rendering ----------------------------------------------------------------------------- */

enum family {
    FAMILY_OPEN_TOTAL,
    FAMILY_CLOSE_TOTAL,
    FAMILY_OPEN_NOW,
    FAMILY_READ_BYTES,
    FAMILY_WRITE_BYTES,
    FAMILY_AUTHZ_ALLOW,
    FAMILY_AUTHZ_DENY,
    FAMILY_DESTINATION_OPEN,
    FAMILY_HANDSHAKE_DURATION,
    FAMILY_RESUMED,
    FAMILY_FAILURES,
    FAMILY_EXPIRY,
    FAMILY_REFRESH,
    FAMILY_COUNT,
};

static const struct {
    const char *name;
    const char *type;
    const char *help;
} families[FAMILY_COUNT] = {
    [FAMILY_OPEN_TOTAL] = {"tcp_open_total", "counter",
                           "TCP connections opened (mTLS after the handshake)."},
    [FAMILY_CLOSE_TOTAL] = {"tcp_close_total", "counter", "TCP connections closed."},
    [FAMILY_OPEN_NOW] = {"tcp_open_connections", "gauge", "TCP connections currently open."},
    [FAMILY_READ_BYTES] = {"tcp_read_bytes_total", "counter",
                           "Application bytes read (plaintext, as the program saw them)."},
    [FAMILY_WRITE_BYTES] = {"tcp_write_bytes_total", "counter",
                            "Application bytes written (plaintext, as the program saw them)."},
    [FAMILY_AUTHZ_ALLOW] = {"inbound_tcp_authz_allow_total", "counter",
                            "Inbound connections authorized by policy."},
    [FAMILY_AUTHZ_DENY] = {"inbound_tcp_authz_deny_total", "counter",
                           "Inbound connections refused by authorization policy."},
    [FAMILY_DESTINATION_OPEN] = {"outbound_destination_open_total", "counter",
                                 "Outbound connections opened, by destination address and port "
                                 "and by tls (mTLS after the handshake); \"other\" counts the "
                                 "destinations past the process's limit together."},
    [FAMILY_HANDSHAKE_DURATION] = {"handshake_duration_seconds", "histogram",
                                   "Duration of successful TLS handshakes, from the first "
                                   "handshake byte to the verified peer."},
    [FAMILY_RESUMED] = {"handshakes_resumed_total", "counter",
                        "Successful TLS handshakes that resumed an earlier session (a subset of "
                        "handshake_duration_seconds_count)."},
    [FAMILY_FAILURES] = {"handshake_failures_total", "counter",
                         "Failed TLS handshakes by reason class (not_tls, untrusted_ca, expired, "
                         "bad_svid, peer_rejected, timeout, no_identity, policy, other)."},
    [FAMILY_EXPIRY] = {"identity_cert_expiration_timestamp_seconds", "gauge",
                       "When the process's current X.509-SVID expires (unix seconds)."},
    [FAMILY_REFRESH] = {"identity_cert_refresh_count", "counter",
                        "Identity renewals since the process started (the first identity is not "
                        "counted)."},
};

static bool family_needs_series(enum family family)
{
    return family <= FAMILY_DESTINATION_OPEN;
}

static void render_family_header(enum family family, struct mt_metrics_text *text)
{
    mt_metrics_text_append(text, "# HELP %s %s\n# TYPE %s %s\n", families[family].name,
                           families[family].help, families[family].name, families[family].type);
}

static mt_metrics_process_labeler process_labeler;

void mt_metrics_set_process_labeler(mt_metrics_process_labeler labeler)
{
    process_labeler = labeler;
}

static void process_labels(struct mt_metrics_text *text, const struct mt_metrics_process *process)
{
    mt_metrics_text_append(text, "pid=\"%ld\",exe=\"", (long)process->pid);
    mt_metrics_text_append_label(text, process->exe);
    mt_metrics_text_append(text, "\"");
    if (process_labeler != NULL)
        process_labeler(process, text);
}

static const char *direction_of(bool inbound)
{
    return inbound ? "inbound" : "outbound";
}

static uint64_t series_value(const struct mt_metrics_series_record *series, enum family family)
{
    switch (family) {
    case FAMILY_OPEN_TOTAL:
        return series->open_total;
    case FAMILY_CLOSE_TOTAL:
        return series->close_total;
    case FAMILY_OPEN_NOW:
        return mt_metrics_series_open_connections(series);
    case FAMILY_READ_BYTES:
        return series->read_bytes;
    case FAMILY_WRITE_BYTES:
        return series->write_bytes;
    default:
        return 0;
    }
}

/* A series exists for authorization only when no connection was opened with its labels. */
static void render_series(enum family family, const struct mt_metrics_process *process,
                          struct mt_metrics_text *text)
{
    const char *name = families[family].name;
    for (size_t i = 0; i < process->series_count; i++) {
        const struct mt_metrics_series_record *series = &process->series[i];
        if (series->open_total == 0)
            continue;
        mt_metrics_text_append(text, "%s{", name);
        process_labels(text, process);
        mt_metrics_text_append(text, ",direction=\"%s\",tls=\"%s\",port=\"%u\",peer_id=\"",
                               direction_of(series->inbound), series->tls ? "true" : "false",
                               (unsigned)series->port);
        mt_metrics_text_append_label(text, series->peer_id);
        mt_metrics_text_append(text, "\"} %" PRIu64 "\n", series_value(series, family));
    }
}

static void render_authz(enum family family, const struct mt_metrics_process *process,
                         struct mt_metrics_text *text)
{
    bool allow = family == FAMILY_AUTHZ_ALLOW;
    for (size_t i = 0; i < process->series_count; i++) {
        const struct mt_metrics_series_record *series = &process->series[i];
        if (!series->inbound || series->authz_allow + series->authz_deny == 0)
            continue;
        mt_metrics_text_append(text, "%s{", families[family].name);
        process_labels(text, process);
        mt_metrics_text_append(text, ",port=\"%u\",peer_id=\"", (unsigned)series->port);
        mt_metrics_text_append_label(text, series->peer_id);
        mt_metrics_text_append(text, "\"} %" PRIu64 "\n",
                               allow ? series->authz_allow : series->authz_deny);
    }
}

static void render_destinations(const struct mt_metrics_process *process,
                                struct mt_metrics_text *text)
{
    for (size_t i = 0; i < process->destination_count; i++) {
        const struct mt_metrics_destination_record *destination = &process->destinations[i];
        if (destination->open_total == 0)
            continue;
        char address[MT_METRICS_ADDRESS_MAX];
        mt_metrics_destination_format(destination, address, sizeof(address));
        mt_metrics_text_append(text, "%s{", families[FAMILY_DESTINATION_OPEN].name);
        process_labels(text, process);
        mt_metrics_text_append(text, ",destination=\"%s\",tls=\"%s\"} %" PRIu64 "\n", address,
                               destination->tls ? "true" : "false", destination->open_total);
    }
}

static void render_histogram(const struct mt_metrics_process *process, struct mt_metrics_text *text)
{
    static const char *const bounds[] = {
#define MT_METRICS_BOUND_TEXT(bound) #bound,
        MT_METRICS_LATENCY_BUCKETS(MT_METRICS_BOUND_TEXT)
#undef MT_METRICS_BOUND_TEXT
    };
    for (int d = 0; d < MT_METRICS_DIRECTIONS; d++) {
        const struct mt_metrics_handshakes *handshakes = &process->header.handshakes[d];
        const char *direction = direction_of(d == MT_METRICS_INBOUND);
        uint64_t cumulative = 0;
        for (size_t b = 0; b <= MT_METRICS_BUCKET_COUNT; b++) {
            cumulative += handshakes->buckets[b];
            mt_metrics_text_append(text, "handshake_duration_seconds_bucket{");
            process_labels(text, process);
            if (b < MT_METRICS_BUCKET_COUNT)
                mt_metrics_text_append(text, ",direction=\"%s\",le=\"%g\"} %" PRIu64 "\n",
                                       direction, strtod(bounds[b], NULL) / 1e6, cumulative);
            else
                mt_metrics_text_append(text, ",direction=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
                                       direction, cumulative);
        }
        mt_metrics_text_append(text, "handshake_duration_seconds_sum{");
        process_labels(text, process);
        mt_metrics_text_append(text, ",direction=\"%s\"} %.6f\n", direction,
                               (double)handshakes->duration_sum_us / 1e6);
        mt_metrics_text_append(text, "handshake_duration_seconds_count{");
        process_labels(text, process);
        /* The count is the +Inf bucket, so that the two can never disagree in one scrape. */
        mt_metrics_text_append(text, ",direction=\"%s\"} %" PRIu64 "\n", direction, cumulative);
    }
}

static void render_handshake_counters(enum family family, const struct mt_metrics_process *process,
                                      struct mt_metrics_text *text)
{
    for (int d = 0; d < MT_METRICS_DIRECTIONS; d++) {
        const struct mt_metrics_handshakes *handshakes = &process->header.handshakes[d];
        const char *direction = direction_of(d == MT_METRICS_INBOUND);
        if (family == FAMILY_RESUMED) {
            mt_metrics_text_append(text, "handshakes_resumed_total{");
            process_labels(text, process);
            mt_metrics_text_append(text, ",direction=\"%s\"} %" PRIu64 "\n", direction,
                                   handshakes->resumed_count);
            continue;
        }
        for (int r = 0; r < MT_METRICS_FAILURE_COUNT; r++) {
            mt_metrics_text_append(text, "handshake_failures_total{");
            process_labels(text, process);
            mt_metrics_text_append(text, ",direction=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
                                   direction, mt_metrics_failure_reason_label(r),
                                   handshakes->failures[r]);
        }
    }
}

static void render_identity(enum family family, const struct mt_metrics_process *process,
                            struct mt_metrics_text *text)
{
    if (family == FAMILY_EXPIRY && process->header.identity_expiry == 0)
        return;
    mt_metrics_text_append(text, "%s{", families[family].name);
    process_labels(text, process);
    if (family == FAMILY_EXPIRY)
        mt_metrics_text_append(text, "} %" PRId64 "\n", process->header.identity_expiry);
    else
        mt_metrics_text_append(text, "} %" PRIu64 "\n", process->header.identity_refresh_count);
}

/* One process's samples of one family: bounded by the per-process limits of layout.h. */
static void render_family_process(enum family family, const struct mt_metrics_process *process,
                                  struct mt_metrics_text *text)
{
    switch (family) {
    case FAMILY_AUTHZ_ALLOW:
    case FAMILY_AUTHZ_DENY:
        render_authz(family, process, text);
        break;
    case FAMILY_DESTINATION_OPEN:
        render_destinations(process, text);
        break;
    case FAMILY_HANDSHAKE_DURATION:
        render_histogram(process, text);
        break;
    case FAMILY_RESUMED:
    case FAMILY_FAILURES:
        render_handshake_counters(family, process, text);
        break;
    case FAMILY_EXPIRY:
    case FAMILY_REFRESH:
        render_identity(family, process, text);
        break;
    default:
        render_series(family, process, text);
        break;
    }
}

void mt_metrics_render(const struct mt_metrics_collection *collection, struct mt_metrics_text *text)
{
    for (enum family family = 0; family < FAMILY_COUNT; family++) {
        render_family_header(family, text);
        for (size_t i = 0; i < collection->count; i++)
            render_family_process(family, &collection->processes[i], text);
    }
}

/* ---- a scrape, one family and one process at a time ---------------------------------------- */

struct mt_metrics_scrape {
    struct mt_metrics_listing listing;
    void (*on_process)(const struct mt_metrics_process *process);
    enum family family;
    bool header_done;
    size_t next;
    size_t processes;
};

MT_RESULT mt_metrics_scrape_begin(const struct mt_metrics_directory *directory,
                                  void (*on_process)(const struct mt_metrics_process *process),
                                  struct mt_metrics_scrape **out)
{
    MT_ENSURE_REF(out);
    struct mt_metrics_scrape *scrape = calloc(1, sizeof(*scrape));
    MT_ENSURE(scrape != NULL, MT_ERR_NO_MEMORY);
    mt_result result = mt_metrics_listing_read(directory, &scrape->listing);
    if (!mt_result_is_ok(result)) {
        free(scrape);
        return result;
    }
    scrape->on_process = on_process;
    *out = scrape;
    return MT_OK_RESULT;
}

/*
 * A file is read again for each family: the text format wants a family's samples together, and
 * holding every process's copy until the last family would make the agent's memory grow with the
 * number of processes. Counters may move between two families of one scrape, as they may
 * between two scrapes.
 */
bool mt_metrics_scrape_next(struct mt_metrics_scrape *scrape, struct mt_metrics_text *text)
{
    while (scrape->family < FAMILY_COUNT) {
        if (!scrape->header_done) {
            render_family_header(scrape->family, text);
            scrape->header_done = true;
            return true;
        }
        while (scrape->next < scrape->listing.count) {
            struct mt_metrics_process process;
            enum mt_metrics_load what = family_needs_series(scrape->family)
                                            ? MT_METRICS_LOAD_SERIES
                                            : MT_METRICS_LOAD_HEADER;
            if (mt_metrics_process_open(scrape->listing.directory_fd,
                                        scrape->listing.names[scrape->next++], what, NULL,
                                        &process) != MT_METRICS_TRUSTED)
                continue;
            if (scrape->family == 0) {
                scrape->processes++;
                if (scrape->on_process != NULL)
                    scrape->on_process(&process);
            }
            render_family_process(scrape->family, &process, text);
            mt_metrics_process_cleanup(&process);
            return true;
        }
        scrape->family++;
        scrape->header_done = false;
        scrape->next = 0;
    }
    return false;
}

size_t mt_metrics_scrape_processes(const struct mt_metrics_scrape *scrape)
{
    return scrape != NULL ? scrape->processes : 0;
}

void mt_metrics_scrape_free(struct mt_metrics_scrape *scrape)
{
    if (scrape == NULL)
        return;
    mt_metrics_listing_free(&scrape->listing);
    free(scrape);
}
