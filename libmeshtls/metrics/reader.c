/*
 * Reading and rendering the metrics files of a node's processes (see reader.h).
 *
 * Owns the decision which metrics files to believe and their translation to Prometheus text.
 * Every file was written by some local process, possibly a hostile one: it is copied with pread
 * (a mapping could fault if its owner truncated it), its counts are bounded against its size,
 * its strings are terminated in the copy, and its pid, uid and start time must agree with the
 * kernel. This file must never map a metrics file, never follow a symbolic link in the metrics
 * directory, never take an executable name from a file, and never remove a live process's file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* ---- parsing one file ---------------------------------------------------------------------- */

static void terminate(char *field, size_t capacity)
{
    field[capacity - 1] = '\0';
}

static uint32_t expected_record_size(uint32_t kind)
{
    return kind == MT_METRICS_CHUNK_SERIES ? sizeof(struct mt_metrics_series_record)
                                           : sizeof(struct mt_metrics_connection_record);
}

MT_RESULT mt_metrics_process_parse(uint8_t *data, size_t size, struct mt_metrics_process *process)
{
    MT_ENSURE_REF(data);
    MT_ENSURE_REF(process);
    MT_ENSURE(size >= MT_METRICS_HEADER_SIZE && size <= MT_METRICS_FILE_SIZE_MAX,
              MT_ERR_PROTO_MALFORMED);
    struct mt_metrics_file_header *header = (void *)data;
    MT_ENSURE(memcmp(header->magic, MT_METRICS_MAGIC, sizeof(header->magic)) == 0,
              MT_ERR_PROTO_MALFORMED);
    MT_ENSURE(header->version == MT_METRICS_LAYOUT_VERSION, MT_ERR_PROTO_VERSION);
    MT_ENSURE(header->header_size == MT_METRICS_HEADER_SIZE &&
                  header->chunk_size == MT_METRICS_CHUNK_SIZE,
              MT_ERR_PROTO_MALFORMED);
    /* A chunk published but not yet in the copy (the file grew between the two) is left out. */
    size_t chunks = (size - MT_METRICS_HEADER_SIZE) / MT_METRICS_CHUNK_SIZE;
    if (header->chunk_count < chunks)
        chunks = header->chunk_count;

    size_t series_total = 0;
    size_t connection_slots = 0;
    for (size_t i = 0; i < chunks; i++) {
        struct mt_metrics_chunk_header *chunk =
            (void *)(data + MT_METRICS_HEADER_SIZE + i * MT_METRICS_CHUNK_SIZE);
        MT_ENSURE(chunk->kind == MT_METRICS_CHUNK_SERIES ||
                      chunk->kind == MT_METRICS_CHUNK_CONNECTIONS,
                  MT_ERR_PROTO_MALFORMED);
        MT_ENSURE(chunk->record_size == expected_record_size(chunk->kind), MT_ERR_PROTO_MALFORMED);
        MT_ENSURE(chunk->capacity ==
                      (MT_METRICS_CHUNK_SIZE - MT_METRICS_CHUNK_HEADER_SIZE) / chunk->record_size,
                  MT_ERR_PROTO_MALFORMED);
        if (chunk->kind == MT_METRICS_CHUNK_SERIES) {
            MT_ENSURE(chunk->used <= chunk->capacity, MT_ERR_PROTO_MALFORMED);
            series_total += chunk->used;
        } else {
            connection_slots += chunk->capacity;
        }
    }

    const struct mt_metrics_series_record **series =
        calloc(series_total > 0 ? series_total : 1, sizeof(*series));
    const struct mt_metrics_connection_record **connections =
        calloc(connection_slots > 0 ? connection_slots : 1, sizeof(*connections));
    if (series == NULL || connections == NULL) {
        free(series);
        free(connections);
        return mt_result_of(MT_ERR_NO_MEMORY);
    }
    size_t series_count = 0;
    size_t connection_count = 0;
    for (size_t i = 0; i < chunks; i++) {
        uint8_t *base = data + MT_METRICS_HEADER_SIZE + i * MT_METRICS_CHUNK_SIZE;
        struct mt_metrics_chunk_header *chunk = (void *)base;
        uint8_t *records = base + MT_METRICS_CHUNK_HEADER_SIZE;
        if (chunk->kind == MT_METRICS_CHUNK_SERIES) {
            for (uint32_t j = 0; j < chunk->used; j++) {
                struct mt_metrics_series_record *record =
                    (void *)(records + (size_t)j * chunk->record_size);
                terminate(record->peer_id, sizeof(record->peer_id));
                series[series_count++] = record;
            }
            continue;
        }
        for (uint32_t j = 0; j < chunk->capacity; j++) {
            struct mt_metrics_connection_record *record =
                (void *)(records + (size_t)j * chunk->record_size);
            if ((record->state & 0xffffffffu) != MT_METRICS_CONNECTION_OPEN)
                continue;
            terminate(record->local, sizeof(record->local));
            terminate(record->peer, sizeof(record->peer));
            terminate(record->peer_id, sizeof(record->peer_id));
            connections[connection_count++] = record;
        }
    }
    process->data = data;
    process->size = size;
    process->header = header;
    process->series = series;
    process->series_count = series_count;
    process->connections = connections;
    process->connection_count = connection_count;
    return MT_OK_RESULT;
}

void mt_metrics_process_cleanup(struct mt_metrics_process *process)
{
    if (process == NULL)
        return;
    free(process->data);
    free(process->series);
    free(process->connections);
    process->data = NULL;
    process->series = NULL;
    process->connections = NULL;
}

uint64_t mt_metrics_series_open_connections(const struct mt_metrics_series_record *series)
{
    return series->open_total > series->close_total ? series->open_total - series->close_total : 0;
}

/* ---- the directory ------------------------------------------------------------------------- */

/* Field 22 of /proc/<pid>/stat; false when the process is gone. */
static bool read_start_time(pid_t pid, unsigned long long *start_time)
{
    char path[64];
    char text[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t length = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (length <= 0)
        return false;
    text[length] = '\0';
    return mt_metrics_stat_start_time(text, start_time);
}

/* "<pid>-<start time>.metrics" → pid and start time; false for any other name. */
static bool parse_name(const char *name, pid_t *pid, unsigned long long *start_time)
{
    long long parsed_pid = 0;
    unsigned long long parsed_start = 0;
    int consumed = 0;
    if (sscanf(name, "%lld-%llu.metrics%n", &parsed_pid, &parsed_start, &consumed) != 2 ||
        name[consumed] != '\0' || parsed_pid <= 0 || parsed_pid > INT32_MAX)
        return false;
    char canonical[96];
    snprintf(canonical, sizeof(canonical), "%lld-%llu.metrics", parsed_pid, parsed_start);
    if (strcmp(canonical, name) != 0)
        return false;
    *pid = (pid_t)parsed_pid;
    *start_time = parsed_start;
    return true;
}

/* Reads a regular file opened without following links, at most MT_METRICS_FILE_SIZE_MAX bytes. */
static MT_RESULT read_file(int directory_fd, const char *name, uid_t *owner, uint8_t **data,
                           size_t *size)
{
    int fd = openat(directory_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    MT_ENSURE(fd >= 0, MT_ERR_IO);
    struct stat status;
    uint8_t *buffer = NULL;
    size_t total = 0;
    mt_result result = mt_result_of(MT_ERR_PROTO_MALFORMED);
    if (fstat(fd, &status) != 0 || !S_ISREG(status.st_mode) ||
        status.st_size < (off_t)MT_METRICS_HEADER_SIZE ||
        status.st_size > (off_t)MT_METRICS_FILE_SIZE_MAX)
        goto out;
    result = mt_result_of(MT_ERR_NO_MEMORY);
    buffer = malloc((size_t)status.st_size);
    if (buffer == NULL)
        goto out;
    while (total < (size_t)status.st_size) {
        ssize_t got = pread(fd, buffer + total, (size_t)status.st_size - total, (off_t)total);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        total += (size_t)got;
    }
    result = mt_result_of(MT_ERR_PROTO_TRUNCATED);
    if (total < MT_METRICS_HEADER_SIZE)
        goto out;
    *owner = status.st_uid;
    *data = buffer;
    *size = total;
    buffer = NULL;
    result = MT_OK_RESULT;

out:
    free(buffer);
    close(fd);
    return result;
}

enum verdict {
    VERDICT_TRUSTED,
    VERDICT_SKIPPED,
    VERDICT_STALE,
};

/* Loads one file into process when the kernel agrees with what it claims. */
static enum verdict load_one(int directory_fd, const char *name, struct mt_metrics_process *process)
{
    pid_t pid = 0;
    unsigned long long start_time = 0;
    unsigned long long actual_start = 0;
    if (!parse_name(name, &pid, &start_time))
        return VERDICT_SKIPPED;
    if (!read_start_time(pid, &actual_start) || actual_start != start_time)
        return VERDICT_STALE;
    char proc_path[64];
    struct stat proc_status;
    snprintf(proc_path, sizeof(proc_path), "/proc/%ld", (long)pid);
    if (stat(proc_path, &proc_status) != 0)
        return VERDICT_STALE;

    uint8_t *data = NULL;
    size_t size = 0;
    uid_t owner = 0;
    if (!mt_result_is_ok(read_file(directory_fd, name, &owner, &data, &size)))
        return VERDICT_SKIPPED;
    memset(process, 0, sizeof(*process));
    if (!mt_result_is_ok(mt_metrics_process_parse(data, size, process))) {
        free(data);
        return VERDICT_SKIPPED;
    }
    const struct mt_metrics_file_header *header = process->header;
    /* The file's owner, the process's owner and the header must all name the same uid. */
    if (owner != proc_status.st_uid || header->uid != owner || header->pid != pid ||
        header->start_time != start_time) {
        mt_metrics_process_cleanup(process);
        return VERDICT_SKIPPED;
    }
    process->pid = pid;
    process->uid = owner;
    process->start_time = start_time;
    snprintf(proc_path, sizeof(proc_path), "/proc/%ld/exe", (long)pid);
    ssize_t length = readlink(proc_path, process->exe, sizeof(process->exe) - 1);
    process->exe[length > 0 ? length : 0] = '\0';
    return VERDICT_TRUSTED;
}

MT_RESULT mt_metrics_collect(const char *directory, bool remove_stale,
                             struct mt_metrics_collection *collection)
{
    MT_ENSURE_REF(directory);
    MT_ENSURE_REF(collection);
    memset(collection, 0, sizeof(*collection));
    int directory_fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (directory_fd < 0)
        return errno == ENOENT ? MT_OK_RESULT : mt_result_of(MT_ERR_IO);
    DIR *listing = fdopendir(directory_fd);
    if (listing == NULL) {
        close(directory_fd);
        return mt_result_of(MT_ERR_IO);
    }
    size_t capacity = 0;
    mt_result result = MT_OK_RESULT;
    struct dirent *entry;
    while ((entry = readdir(listing)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        if (collection->count == capacity) {
            size_t grown_capacity = capacity > 0 ? capacity * 2 : 16;
            struct mt_metrics_process *grown =
                realloc(collection->processes, grown_capacity * sizeof(*grown));
            if (grown == NULL) {
                result = mt_result_of(MT_ERR_NO_MEMORY);
                break;
            }
            collection->processes = grown;
            capacity = grown_capacity;
        }
        struct mt_metrics_process *process = &collection->processes[collection->count];
        switch (load_one(dirfd(listing), entry->d_name, process)) {
        case VERDICT_TRUSTED:
            collection->count++;
            break;
        case VERDICT_STALE:
            if (remove_stale && unlinkat(dirfd(listing), entry->d_name, 0) == 0)
                collection->removed++;
            break;
        case VERDICT_SKIPPED:
            collection->skipped++;
            break;
        }
    }
    closedir(listing);
    if (!mt_result_is_ok(result))
        mt_metrics_collection_free(collection);
    return result;
}

size_t mt_metrics_sweep(const char *directory)
{
    DIR *listing = directory != NULL ? opendir(directory) : NULL;
    if (listing == NULL)
        return 0;
    size_t removed = 0;
    struct dirent *entry;
    while ((entry = readdir(listing)) != NULL) {
        pid_t pid = 0;
        unsigned long long start_time = 0;
        unsigned long long actual_start = 0;
        if (!parse_name(entry->d_name, &pid, &start_time))
            continue;
        if ((!read_start_time(pid, &actual_start) || actual_start != start_time) &&
            unlinkat(dirfd(listing), entry->d_name, 0) == 0)
            removed++;
    }
    closedir(listing);
    return removed;
}

void mt_metrics_collection_free(struct mt_metrics_collection *collection)
{
    if (collection == NULL)
        return;
    for (size_t i = 0; i < collection->count; i++)
        mt_metrics_process_cleanup(&collection->processes[i]);
    free(collection->processes);
    memset(collection, 0, sizeof(*collection));
}

/* ---- rendering ----------------------------------------------------------------------------- */

static void family(struct mt_metrics_text *text, const char *name, const char *type,
                   const char *help)
{
    mt_metrics_text_append(text, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void process_labels(struct mt_metrics_text *text, const struct mt_metrics_process *process)
{
    mt_metrics_text_append(text, "pid=\"%ld\",exe=\"", (long)process->pid);
    mt_metrics_text_append_label(text, process->exe);
    mt_metrics_text_append(text, "\"");
}

static const char *direction_of(bool inbound)
{
    return inbound ? "inbound" : "outbound";
}

static void series_sample(struct mt_metrics_text *text, const char *name,
                          const struct mt_metrics_process *process,
                          const struct mt_metrics_series_record *series, uint64_t value)
{
    mt_metrics_text_append(text, "%s{", name);
    process_labels(text, process);
    mt_metrics_text_append(text, ",direction=\"%s\",tls=\"%s\",port=\"%u\",peer_id=\"",
                           direction_of(series->inbound), series->tls ? "true" : "false",
                           (unsigned)series->port);
    mt_metrics_text_append_label(text, series->peer_id);
    mt_metrics_text_append(text, "\"} %" PRIu64 "\n", value);
}

enum series_field {
    FIELD_OPEN_TOTAL,
    FIELD_CLOSE_TOTAL,
    FIELD_OPEN_NOW,
    FIELD_READ_BYTES,
    FIELD_WRITE_BYTES,
};

static uint64_t series_value(const struct mt_metrics_series_record *series, enum series_field field)
{
    switch (field) {
    case FIELD_OPEN_TOTAL:
        return series->open_total;
    case FIELD_CLOSE_TOTAL:
        return series->close_total;
    case FIELD_OPEN_NOW:
        return mt_metrics_series_open_connections(series);
    case FIELD_READ_BYTES:
        return series->read_bytes;
    case FIELD_WRITE_BYTES:
        return series->write_bytes;
    }
    return 0;
}

/* A series exists for authorization only when no connection was opened with its labels. */
static bool series_has_connections(const struct mt_metrics_series_record *series)
{
    return series->open_total > 0;
}

static void render_series_family(struct mt_metrics_text *text,
                                 const struct mt_metrics_collection *collection, const char *name,
                                 const char *type, const char *help, enum series_field field)
{
    family(text, name, type, help);
    for (size_t i = 0; i < collection->count; i++) {
        const struct mt_metrics_process *process = &collection->processes[i];
        for (size_t j = 0; j < process->series_count; j++)
            if (series_has_connections(process->series[j]))
                series_sample(text, name, process, process->series[j],
                              series_value(process->series[j], field));
    }
}

static void render_authz(struct mt_metrics_text *text,
                         const struct mt_metrics_collection *collection, bool allow)
{
    const char *name = allow ? "inbound_tcp_authz_allow_total" : "inbound_tcp_authz_deny_total";
    family(text, name, "counter",
           allow ? "Inbound connections authorized by policy."
                 : "Inbound connections refused by authorization policy.");
    for (size_t i = 0; i < collection->count; i++) {
        const struct mt_metrics_process *process = &collection->processes[i];
        for (size_t j = 0; j < process->series_count; j++) {
            const struct mt_metrics_series_record *series = process->series[j];
            if (!series->inbound || series->authz_allow + series->authz_deny == 0)
                continue;
            mt_metrics_text_append(text, "%s{", name);
            process_labels(text, process);
            mt_metrics_text_append(text, ",port=\"%u\",peer_id=\"", (unsigned)series->port);
            mt_metrics_text_append_label(text, series->peer_id);
            mt_metrics_text_append(text, "\"} %" PRIu64 "\n",
                                   allow ? series->authz_allow : series->authz_deny);
        }
    }
}

static void render_handshakes(struct mt_metrics_text *text,
                              const struct mt_metrics_collection *collection)
{
    static const char *const bounds[] = {
#define MT_METRICS_BOUND_TEXT(bound) #bound,
        MT_METRICS_LATENCY_BUCKETS(MT_METRICS_BOUND_TEXT)
#undef MT_METRICS_BOUND_TEXT
    };
    family(text, "handshake_duration_seconds", "histogram",
           "Duration of successful TLS handshakes, from the first handshake byte to the verified "
           "peer.");
    for (size_t i = 0; i < collection->count; i++) {
        const struct mt_metrics_process *process = &collection->processes[i];
        for (int d = 0; d < MT_METRICS_DIRECTIONS; d++) {
            const struct mt_metrics_handshakes *handshakes = &process->header->handshakes[d];
            uint64_t cumulative = 0;
            for (size_t b = 0; b <= MT_METRICS_BUCKET_COUNT; b++) {
                cumulative += handshakes->buckets[b];
                mt_metrics_text_append(text, "handshake_duration_seconds_bucket{");
                process_labels(text, process);
                if (b < MT_METRICS_BUCKET_COUNT) {
                    double seconds = strtod(bounds[b], NULL) / 1e6;
                    mt_metrics_text_append(text, ",direction=\"%s\",le=\"%g\"} %" PRIu64 "\n",
                                           direction_of(d == MT_METRICS_INBOUND), seconds,
                                           cumulative);
                } else {
                    mt_metrics_text_append(text, ",direction=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
                                           direction_of(d == MT_METRICS_INBOUND), cumulative);
                }
            }
            mt_metrics_text_append(text, "handshake_duration_seconds_sum{");
            process_labels(text, process);
            mt_metrics_text_append(text, ",direction=\"%s\"} %.6f\n",
                                   direction_of(d == MT_METRICS_INBOUND),
                                   (double)handshakes->duration_sum_us / 1e6);
            mt_metrics_text_append(text, "handshake_duration_seconds_count{");
            process_labels(text, process);
            /* The count is the +Inf bucket, so that the two can never disagree in one scrape. */
            mt_metrics_text_append(text, ",direction=\"%s\"} %" PRIu64 "\n",
                                   direction_of(d == MT_METRICS_INBOUND), cumulative);
        }
    }
    family(text, "handshakes_resumed_total", "counter",
           "Successful TLS handshakes that resumed an earlier session (a subset of "
           "handshake_duration_seconds_count).");
    for (size_t i = 0; i < collection->count; i++) {
        const struct mt_metrics_process *process = &collection->processes[i];
        for (int d = 0; d < MT_METRICS_DIRECTIONS; d++) {
            mt_metrics_text_append(text, "handshakes_resumed_total{");
            process_labels(text, process);
            mt_metrics_text_append(text, ",direction=\"%s\"} %" PRIu64 "\n",
                                   direction_of(d == MT_METRICS_INBOUND),
                                   process->header->handshakes[d].resumed_count);
        }
    }
    family(text, "handshake_failures_total", "counter",
           "Failed TLS handshakes by reason class (not_tls, untrusted_ca, expired, bad_svid, "
           "peer_rejected, timeout, no_identity, policy, other).");
    for (size_t i = 0; i < collection->count; i++) {
        const struct mt_metrics_process *process = &collection->processes[i];
        for (int d = 0; d < MT_METRICS_DIRECTIONS; d++)
            for (int r = 0; r < MT_METRICS_FAILURE_COUNT; r++) {
                mt_metrics_text_append(text, "handshake_failures_total{");
                process_labels(text, process);
                mt_metrics_text_append(text, ",direction=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
                                       direction_of(d == MT_METRICS_INBOUND),
                                       mt_metrics_failure_reason_label(r),
                                       process->header->handshakes[d].failures[r]);
            }
    }
}

static void render_identity(struct mt_metrics_text *text,
                            const struct mt_metrics_collection *collection)
{
    family(text, "identity_cert_expiration_timestamp_seconds", "gauge",
           "When the process's current X.509-SVID expires (unix seconds).");
    for (size_t i = 0; i < collection->count; i++) {
        const struct mt_metrics_process *process = &collection->processes[i];
        if (process->header->identity_expiry == 0)
            continue;
        mt_metrics_text_append(text, "identity_cert_expiration_timestamp_seconds{");
        process_labels(text, process);
        mt_metrics_text_append(text, "} %" PRId64 "\n", process->header->identity_expiry);
    }
    family(text, "identity_cert_refresh_count", "counter",
           "Identity renewals since the process started (the first identity is not counted).");
    for (size_t i = 0; i < collection->count; i++) {
        const struct mt_metrics_process *process = &collection->processes[i];
        mt_metrics_text_append(text, "identity_cert_refresh_count{");
        process_labels(text, process);
        mt_metrics_text_append(text, "} %" PRIu64 "\n", process->header->identity_refresh_count);
    }
}

void mt_metrics_render(const struct mt_metrics_collection *collection, struct mt_metrics_text *text)
{
    render_series_family(text, collection, "tcp_open_total", "counter",
                         "TCP connections opened (mTLS after the handshake).", FIELD_OPEN_TOTAL);
    render_series_family(text, collection, "tcp_close_total", "counter", "TCP connections closed.",
                         FIELD_CLOSE_TOTAL);
    render_series_family(text, collection, "tcp_open_connections", "gauge",
                         "TCP connections currently open.", FIELD_OPEN_NOW);
    render_series_family(text, collection, "tcp_read_bytes_total", "counter",
                         "Application bytes read (plaintext, as the program saw them).",
                         FIELD_READ_BYTES);
    render_series_family(text, collection, "tcp_write_bytes_total", "counter",
                         "Application bytes written (plaintext, as the program saw them).",
                         FIELD_WRITE_BYTES);
    render_authz(text, collection, true);
    render_authz(text, collection, false);
    render_handshakes(text, collection);
    render_identity(text, collection);
}
