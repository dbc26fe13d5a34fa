/*
 * The agent side of the metrics: find every live process's metrics file, check that it is what it
 * claims, and render all of them in Prometheus text format (version 0.0.4).
 *
 * A file is trusted only when its name, its header and the kernel agree: the pid is alive with
 * the start time in the name (pid reuse), the file's owner is the uid that owns /proc/<pid>, and
 * the header repeats pid, uid and start time. Files of dead processes are removed. The
 * executable comes from /proc/<pid>/exe, never from the file.
 *
 * Rendering: one sample per process and label set, labelled pid and exe as well as the labels of
 * metrics.h (no aggregation across processes: `sum without (pid, exe)` gives the node view, and
 * a restarted process starts new series instead of resetting someone else's).
 *
 *   tcp_open_total, tcp_close_total                  counter  pid exe direction tls port peer_id
 *   tcp_open_connections                             gauge    pid exe direction tls port peer_id
 *   tcp_read_bytes_total, tcp_write_bytes_total      counter  pid exe direction tls port peer_id
 *   inbound_tcp_authz_allow_total, ..._deny_total    counter  pid exe port peer_id
 *   handshake_duration_seconds                       histogram pid exe direction (successes)
 *   handshake_failures_total                         counter  pid exe direction reason
 *   identity_cert_expiration_timestamp_seconds       gauge    pid exe
 *   identity_cert_refresh_count                      counter  pid exe
 */
#ifndef MT_METRICS_READER_H
#define MT_METRICS_READER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../util/result.h"
#include "layout.h"

/* A growable text buffer; failure (out of memory) is sticky and reported by the caller. */
struct mt_metrics_text {
    char *data;
    size_t length;
    size_t capacity;
    bool failed;
};

void mt_metrics_text_append(struct mt_metrics_text *text, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends value as a Prometheus label value: backslash, double quote and newline escaped. */
void mt_metrics_text_append_label(struct mt_metrics_text *text, const char *value);
void mt_metrics_text_free(struct mt_metrics_text *text);

/* One process's file, copied into memory and checked; the views point into data. */
struct mt_metrics_process {
    pid_t pid;
    uid_t uid;
    unsigned long long start_time;
    char exe[PATH_MAX]; /* "" when it cannot be read */
    uint8_t *data;
    size_t size;
    const struct mt_metrics_file_header *header;
    const struct mt_metrics_series_record **series;
    size_t series_count;
    const struct mt_metrics_connection_record **connections; /* the open ones */
    size_t connection_count;
};

struct mt_metrics_collection {
    struct mt_metrics_process *processes;
    size_t count;
    size_t skipped; /* files ignored: untrusted, malformed, unreadable */
    size_t removed; /* files of dead processes removed */
};

/*
 * Checks and indexes a copy of a metrics file (data, size bytes; the process keeps it and frees
 * it). Every count and string is bounded here, so the views can be used without further checks.
 * MT_ERR_PROTO_MALFORMED for anything that is not a complete file of this layout version.
 */
MT_RESULT mt_metrics_process_parse(uint8_t *data, size_t size, struct mt_metrics_process *process);

/* Frees a parsed process's data and views. */
void mt_metrics_process_cleanup(struct mt_metrics_process *process);

/*
 * Reads every trusted file in directory. remove_stale: unlink the files of dead processes.
 * A missing directory is an empty collection.
 */
MT_RESULT mt_metrics_collect(const char *directory, bool remove_stale,
                             struct mt_metrics_collection *collection);
void mt_metrics_collection_free(struct mt_metrics_collection *collection);

/* Removes the files of dead processes without reading any file; returns how many. */
size_t mt_metrics_sweep(const char *directory);

/* Appends the workload metric families (HELP, TYPE, samples) for every process. */
void mt_metrics_render(const struct mt_metrics_collection *collection,
                       struct mt_metrics_text *text);

/* The open connections of a series, summed: open_total − close_total, never negative. */
uint64_t mt_metrics_series_open_connections(const struct mt_metrics_series_record *series);

#endif
