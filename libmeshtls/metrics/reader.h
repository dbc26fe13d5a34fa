/*
 * The agent side of the metrics: load the metrics files the agent created for live processes,
 * bounded whatever they hold, and render them in Prometheus text format (version 0.0.4), one
 * process at a time so that the agent's memory does not grow with what the files say.
 *
 * A file is read only when its name (given by the agent: the pid and start time it attested),
 * its owner (the agent) and the kernel agree: the pid is alive with the start time in the name.
 * The uid comes from /proc/<pid>, the executable from /proc/<pid>/exe, never from the file. Of
 * each file at most MT_METRICS_FILE_SIZE_MAX bytes are considered, and of those only
 * MT_METRICS_SERIES_PER_PROCESS_MAX series, MT_METRICS_LABEL_BYTES_PER_PROCESS_MAX bytes of peer
 * identities, MT_METRICS_DESTINATIONS_PER_PROCESS_MAX outbound destinations and
 * MT_METRICS_CONNECTIONS_PER_PROCESS_MAX open connections are ever copied; the rest is counted
 * as dropped.
 *
 * Rendering: one sample per process and label set, labelled pid and exe as well as the labels of
 * metrics.h (no aggregation across processes: `sum without (pid, exe)` gives the node view, and
 * a restarted process starts new series instead of resetting someone else's).
 *
 *   tcp_open_total, tcp_close_total                  counter  pid exe direction tls port peer_id
 *   tcp_open_connections                             gauge    pid exe direction tls port peer_id
 *   tcp_read_bytes_total, tcp_write_bytes_total      counter  pid exe direction tls port peer_id
 *   inbound_tcp_authz_allow_total, ..._deny_total    counter  pid exe port peer_id
 *   outbound_destination_open_total                  counter  pid exe destination tls
 *       (destination "10.1.2.3:5432", "[2001:db8::7]:443", or "other" for the opens past the
 *       process's MT_METRICS_DESTINATIONS_PER_PROCESS_MAX − 2 destinations)
 *   handshake_duration_seconds                       histogram pid exe direction (successes)
 *   handshakes_resumed_total                         counter  pid exe direction
 *   handshake_failures_total                         counter  pid exe direction reason
 *   identity_cert_expiration_timestamp_seconds       gauge    pid exe
 *   identity_cert_refresh_count                      counter  pid exe
 *
 * The text format wants each family's samples together, so a scrape (struct mt_metrics_scrape)
 * walks family by family and, within a family, loads one process at a time: its memory is one
 * process's bounded share, whatever the number of processes or the size of their files.
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

/* One process's file, checked and copied within the limits of layout.h. */
struct mt_metrics_process {
    pid_t pid;
    uid_t uid;
    unsigned long long start_time;
    char exe[MT_METRICS_EXE_LABEL_MAX + 1]; /* "" when it cannot be read; cut to the limit */
    struct mt_metrics_file_header header;
    struct mt_metrics_series_record *series; /* the kept series, labels terminated */
    size_t series_count;
    size_t series_dropped; /* published series beyond the per-process limits */
    /* Outbound destinations, families checked (layout.h); at most the per-process limit. */
    struct mt_metrics_destination_record *destinations;
    size_t destination_count;
    size_t destinations_dropped; /* published beyond the limit, or of no known family */
    struct mt_metrics_connection_record *connections; /* open ones, when asked for */
    size_t connection_count;
    /* Open ones past the limit in the chunk that reached it (later chunks are not read). */
    size_t connections_dropped;
};

/* Reads length bytes at offset of a file (or an image of one); false when they are not all there.
 */
typedef bool (*mt_metrics_read_at)(void *source, void *buffer, size_t length, uint64_t offset);

/* What to copy of a file: the header always, then series, then open connections too. */
enum mt_metrics_load {
    MT_METRICS_LOAD_HEADER,
    MT_METRICS_LOAD_SERIES,
    MT_METRICS_LOAD_ALL,
};

/*
 * Loads a metrics file of size bytes through read_at: the header, then chunk by chunk only the
 * records asked for and kept. Never reads past MT_METRICS_FILE_SIZE_MAX (a larger file is read
 * as its first MT_METRICS_FILE_SIZE_MAX bytes) nor allocates more than the limits allow.
 * MT_ERR_PROTO_MALFORMED for anything that is not a file of this layout version; the process is
 * then left empty.
 */
MT_RESULT mt_metrics_process_load(mt_metrics_read_at read_at, void *source, uint64_t size,
                                  enum mt_metrics_load what, struct mt_metrics_process *process);

/* The same for an image in memory (tests, fuzzing). */
MT_RESULT mt_metrics_process_parse(const uint8_t *data, size_t size,
                                   struct mt_metrics_process *process);

/* Frees a loaded process's copies. */
void mt_metrics_process_cleanup(struct mt_metrics_process *process);

/*
 * Every trusted process at once (tests and tools: the agent renders with a scrape, which holds
 * one process at a time). Filled by mt_metrics_collect (directory.h).
 */
struct mt_metrics_collection {
    struct mt_metrics_process *processes;
    size_t count;
    size_t skipped; /* files ignored: untrusted, malformed, unreadable, or stale */
};

void mt_metrics_collection_free(struct mt_metrics_collection *collection);

/*
 * Labels appended after each process's pid and exe labels (",name=\"value\"..." with values
 * escaped by mt_metrics_text_append_label), from whoever knows more about the process than its
 * file says: the agent's pod labels. Set once before any rendering; NULL: none.
 */
typedef void (*mt_metrics_process_labeler)(const struct mt_metrics_process *process,
                                           struct mt_metrics_text *text);
void mt_metrics_set_process_labeler(mt_metrics_process_labeler labeler);

/* Appends the workload metric families (HELP, TYPE, samples) for every process. */
void mt_metrics_render(const struct mt_metrics_collection *collection,
                       struct mt_metrics_text *text);

/*
 * A scrape in progress: call next until it returns false; each call appends one family's header
 * or one process's samples of one family (a bounded amount of text). on_process, when set, sees
 * each trusted process once, in the first family (to count and report what was dropped).
 */
struct mt_metrics_scrape;
struct mt_metrics_directory;
MT_RESULT mt_metrics_scrape_begin(const struct mt_metrics_directory *directory,
                                  void (*on_process)(const struct mt_metrics_process *process),
                                  struct mt_metrics_scrape **scrape);
bool mt_metrics_scrape_next(struct mt_metrics_scrape *scrape, struct mt_metrics_text *text);
/* Trusted processes seen so far (all of them once next has returned false). */
size_t mt_metrics_scrape_processes(const struct mt_metrics_scrape *scrape);
void mt_metrics_scrape_free(struct mt_metrics_scrape *scrape);

/* capacity >= MT_METRICS_ADDRESS_MAX: "10.1.2.3:5432", "[2001:db8::7]:443", or "other". */
void mt_metrics_destination_format(const struct mt_metrics_destination_record *destination,
                                   char *text, size_t capacity);

/* The open connections of a series, summed: open_total − close_total, never negative. */
uint64_t mt_metrics_series_open_connections(const struct mt_metrics_series_record *series);

#endif
