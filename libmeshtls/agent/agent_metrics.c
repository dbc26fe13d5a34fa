/*
 * The agent's metrics files and endpoint (see agent_metrics.h).
 *
 * Owns the metrics directory's creation, the attestation of a process asking for its metrics
 * file, the HTTP listener and the agent's own counters. Requests are answered from
 * libmicrohttpd's internal thread with a fresh reading of the metrics directory, streamed through
 * a content reader one bounded piece at a time, bounded in connections and time so that scrapers
 * cannot exhaust the agent. This file must never touch the issuer, the rules or the client table
 * of the event loop, never remove a metrics file from the HTTP thread, never hold more than one
 * process's share of the exposition at once, and never serve anything but metrics.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../metrics/directory.h"
#include "../metrics/reader.h"
#include "../util/addr.h"
#include "../util/log.h"
#include "../util/sys.h"
#include "agent_metrics.h"
#include "attest.h"

#define HTTP_CONNECTIONS_MAX 32
#define HTTP_TIMEOUT_SECONDS 10
/* libmicrohttpd asks for the body in pieces of at most this size. */
#define STREAM_BLOCK_SIZE (64 * 1024)
/* Processes whose dropped series were already logged (one line per process, not per scrape). */
#define DROP_LOG_MEMORY 64

struct mt_agent_stats mt_agent_stats;

struct mt_agent_http {
    struct MHD_Daemon *daemon;
    /* The event loop's, held open until after the daemon stops; only read here. */
    const struct mt_metrics_directory *directory;
};

/*
 * Which existing directory the agent takes as its own. It cannot tell a directory it made from
 * one an operator made (an agent_socket of /srv/app/agent.sock meets /srv/app/metrics), and the
 * files it creates and sweeps there must never mix with someone else's. So it takes a directory
 * only when it is what an agent leaves: owned by the agent's uid, holding nothing but
 * <pid>-<start time>.metrics files, and of mode 0755 (this agent's, after a restart) or 1777
 * (an older agent's, which let processes create their own files: narrowed to 0755 here, the
 * files other users left in it are never read or removed). Anything else is refused with the
 * path and what to do; the agent never chmods a directory it does not take.
 */
static MT_RESULT take_existing_directory(struct mt_metrics_directory *directory, mode_t mode,
                                         struct mt_text *reason)
{
    char foreign[NAME_MAX + 1] = "";
    if (mode != 0755 && mode != 01777)
        return mt_result_explain(
            reason, MT_ERR_IO,
            "metrics directory %s exists with mode %04o, which no agent gives it (0755, or 1777 "
            "from an older agent): move it away so that the agent can create its own, or "
            "choose another --socket",
            directory->path, (unsigned)mode);
    if (!mt_metrics_directory_holds_only_metrics_files(directory, foreign, sizeof(foreign)))
        return mt_result_explain(
            reason, MT_ERR_IO,
            "metrics directory %s holds \"%s\", which no agent creates (only "
            "<pid>-<start time>.metrics files): it is not the agent's directory; move it away "
            "or choose another --socket",
            directory->path, foreign);
    if (mode == 01777) {
        if (fchmod(directory->fd, 0755) != 0)
            return mt_result_explain(reason, MT_ERR_IO, "cannot chmod 0755 %s: %s", directory->path,
                                     strerror(errno));
        mt_log_info("narrowed metrics directory %s from 1777 (an older agent's) to 0755",
                    directory->path);
    }
    return MT_OK_RESULT;
}

MT_RESULT mt_agent_metrics_directory_create(struct mt_metrics_directory *directory,
                                            struct mt_text *reason)
{
    MT_ENSURE_REF(directory);
    bool created = mkdir(directory->path, 0755) == 0;
    if (!created && errno != EEXIST)
        return mt_result_explain(reason, MT_ERR_IO, "cannot create metrics directory %s: %s",
                                 directory->path, strerror(errno));
    /* From here on only the descriptor is used (metrics/directory.h). */
    MT_GUARD(mt_metrics_directory_open(directory, reason));
    struct stat status;
    mt_result result = MT_OK_RESULT;
    /* mkdir's mode went through the umask. */
    if (fstat(directory->fd, &status) != 0 || (created && fchmod(directory->fd, 0755) != 0))
        result =
            mt_result_explain(reason, MT_ERR_IO, "cannot make metrics directory %s mode 0755: %s",
                              directory->path, strerror(errno));
    else if (!created)
        result = take_existing_directory(directory, status.st_mode & 07777, reason);
    /* Whatever was decided above, what is held is what the agent relies on: checked last. */
    if (mt_result_is_ok(result) && (fstat(directory->fd, &status) != 0 ||
                                    (status.st_mode & 07777) != 0755 || status.st_uid != geteuid()))
        result = mt_result_explain(
            reason, MT_ERR_IO,
            "metrics directory %s is not mode 0755 and owned by uid %u once set up (mode %04o, "
            "uid %u): something else changes it; stop that and restart the agent",
            directory->path, (unsigned)geteuid(), (unsigned)(status.st_mode & 07777),
            (unsigned)status.st_uid);
    if (!mt_result_is_ok(result))
        mt_metrics_directory_close(directory);
    return result;
}

MT_RESULT mt_agent_metrics_file_create(const struct mt_metrics_directory *directory,
                                       const struct mt_attest_peer *peer, int *fd,
                                       unsigned long long *start_time, struct mt_text *reason)
{
    MT_ENSURE_REF(directory);
    MT_ENSURE_REF(peer);
    MT_ENSURE_REF(fd);
    MT_ENSURE_REF(start_time);
    *fd = -1;
    if (peer->pid <= 0)
        return mt_result_explain(reason, MT_ERR_AGENT_REFUSED,
                                 "no metrics file: the caller's pid is not visible in the agent's "
                                 "PID namespace (run the agent with the host's PID namespace)");
    if (!peer->has_start_time)
        return mt_result_explain(reason, MT_ERR_AGENT_REFUSED,
                                 "no metrics file: pid %ld exited before it could be attested",
                                 (long)peer->pid);
    *start_time = peer->start_time;
    return mt_metrics_file_create(directory, peer->pid, peer->uid, *start_time, fd, reason);
}

static void render_agent(struct mt_metrics_text *text, size_t processes)
{
    mt_metrics_text_append(text,
                           "# HELP meshtls_agent_svids_issued_total X.509-SVIDs issued.\n"
                           "# TYPE meshtls_agent_svids_issued_total counter\n"
                           "meshtls_agent_svids_issued_total %llu\n",
                           (unsigned long long)atomic_load(&mt_agent_stats.svids_issued));
    mt_metrics_text_append(text, "# HELP meshtls_agent_requests_refused_total Requests refused, "
                                 "by reason.\n"
                                 "# TYPE meshtls_agent_requests_refused_total counter\n");
    for (uint32_t code = MT_PROTO_ERROR_MALFORMED; code <= MT_PROTO_ERROR_INTERNAL; code++)
        mt_metrics_text_append(text, "meshtls_agent_requests_refused_total{reason=\"%s\"} %llu\n",
                               mt_proto_error_code_name(code),
                               (unsigned long long)atomic_load(&mt_agent_stats.refused[code]));
    static const char *const refusals[MT_AGENT_REFUSAL_COUNT] = {"over_share", "table_full",
                                                                 "evicted"};
    mt_metrics_text_append(text, "# HELP meshtls_agent_connections_refused_total Connections to "
                                 "the agent socket closed unread to keep its table fair, by "
                                 "reason.\n"
                                 "# TYPE meshtls_agent_connections_refused_total counter\n");
    for (int i = 0; i < MT_AGENT_REFUSAL_COUNT; i++)
        mt_metrics_text_append(
            text, "meshtls_agent_connections_refused_total{reason=\"%s\"} %llu\n", refusals[i],
            (unsigned long long)atomic_load(&mt_agent_stats.connections_refused[i]));
    mt_metrics_text_append(text,
                           "# HELP meshtls_agent_exe_mismatches_total Callers whose executable "
                           "had a rule's exe path but was another file.\n"
                           "# TYPE meshtls_agent_exe_mismatches_total counter\n"
                           "meshtls_agent_exe_mismatches_total %llu\n",
                           (unsigned long long)atomic_load(&mt_agent_stats.exe_mismatches));
    mt_metrics_text_append(
        text,
        "# HELP meshtls_agent_pod_callers_refused_total Callers refused an identity because "
        "their pod could not be attested (unknown to the kubelet, kubelet unavailable, cgroup "
        "unreadable).\n"
        "# TYPE meshtls_agent_pod_callers_refused_total counter\n"
        "meshtls_agent_pod_callers_refused_total %llu\n",
        (unsigned long long)atomic_load(&mt_agent_stats.pod_callers_refused));
    mt_metrics_text_append(
        text,
        "# HELP meshtls_agent_exe_hashes_total Executables hashed for sha256 rules, and hashes "
        "refused because the caller's uid or the node spent its hashing budget.\n"
        "# TYPE meshtls_agent_exe_hashes_total counter\n"
        "meshtls_agent_exe_hashes_total{result=\"computed\"} %llu\n"
        "meshtls_agent_exe_hashes_total{result=\"over_budget\"} %llu\n",
        (unsigned long long)atomic_load(&mt_agent_stats.exe_hashes_computed),
        (unsigned long long)atomic_load(&mt_agent_stats.exe_hashes_over_budget));
    mt_metrics_text_append(
        text,
        "# HELP meshtls_agent_issuer_expiration_timestamp_seconds When the signing CA expires.\n"
        "# TYPE meshtls_agent_issuer_expiration_timestamp_seconds gauge\n"
        "meshtls_agent_issuer_expiration_timestamp_seconds %lld\n"
        "# HELP meshtls_agent_trust_anchors Anchors in the trust bundle served to workloads.\n"
        "# TYPE meshtls_agent_trust_anchors gauge\n"
        "meshtls_agent_trust_anchors %u\n"
        "# HELP meshtls_agent_issuer_reloads_total Reloads of changed issuer or anchor files.\n"
        "# TYPE meshtls_agent_issuer_reloads_total counter\n"
        "meshtls_agent_issuer_reloads_total{result=\"success\"} %llu\n"
        "meshtls_agent_issuer_reloads_total{result=\"failure\"} %llu\n"
        "# HELP meshtls_agent_processes Processes whose metrics files are being read.\n"
        "# TYPE meshtls_agent_processes gauge\n"
        "meshtls_agent_processes %zu\n"
        "# HELP meshtls_agent_metrics_series_dropped_total Series of processes over the "
        "per-process limits, left out of scrapes (counted in every scrape that left them out).\n"
        "# TYPE meshtls_agent_metrics_series_dropped_total counter\n"
        "meshtls_agent_metrics_series_dropped_total %llu\n",
        (long long)atomic_load(&mt_agent_stats.issuer_not_after),
        atomic_load(&mt_agent_stats.anchor_count),
        (unsigned long long)atomic_load(&mt_agent_stats.reloads_succeeded),
        (unsigned long long)atomic_load(&mt_agent_stats.reloads_failed), processes,
        (unsigned long long)atomic_load(&mt_agent_stats.metrics_series_dropped));
    mt_metrics_text_append(
        text,
        "# HELP meshtls_agent_kube_watch_restarts_total Watches of the Kubernetes API server "
        "begun again from their last resourceVersion after the server ended them.\n"
        "# TYPE meshtls_agent_kube_watch_restarts_total counter\n"
        "meshtls_agent_kube_watch_restarts_total %llu\n"
        "# HELP meshtls_agent_kube_relists_total Pods or Services listed again because the "
        "watch's resourceVersion was too old (410 Gone).\n"
        "# TYPE meshtls_agent_kube_relists_total counter\n"
        "meshtls_agent_kube_relists_total %llu\n"
        "# HELP meshtls_agent_kube_api_errors_total Failed requests to the Kubernetes API server "
        "(the last membership stays published).\n"
        "# TYPE meshtls_agent_kube_api_errors_total counter\n"
        "meshtls_agent_kube_api_errors_total %llu\n"
        "# HELP meshtls_agent_kube_members Membership entries made from the Kubernetes API "
        "server's pods and Services.\n"
        "# TYPE meshtls_agent_kube_members gauge\n"
        "meshtls_agent_kube_members %llu\n",
        (unsigned long long)atomic_load(&mt_agent_stats.kube_watch_restarts),
        (unsigned long long)atomic_load(&mt_agent_stats.kube_relists),
        (unsigned long long)atomic_load(&mt_agent_stats.kube_api_errors),
        (unsigned long long)atomic_load(&mt_agent_stats.kube_members));
}

/*
 * Counts what the limits left out of a process, and says so once per process (by pid and start
 * time): a hostile or broken writer is named in the log without a line per scrape. Runs on the
 * HTTP thread only.
 */
static void note_dropped(const struct mt_metrics_process *process)
{
    static struct {
        pid_t pid;
        unsigned long long start_time;
    } logged[DROP_LOG_MEMORY];
    static size_t next;
    /* A destination record is a series of outbound_destination_open_total. */
    size_t dropped = process->series_dropped + process->destinations_dropped;
    if (dropped == 0)
        return;
    atomic_fetch_add(&mt_agent_stats.metrics_series_dropped, dropped);
    for (size_t i = 0; i < DROP_LOG_MEMORY; i++)
        if (logged[i].pid == process->pid && logged[i].start_time == process->start_time)
            return;
    logged[next].pid = process->pid;
    logged[next].start_time = process->start_time;
    next = (next + 1) % DROP_LOG_MEMORY;
    mt_log_warn("metrics of pid %ld uid %u exe %s: %zu series beyond the per-process limits "
                "(%u series, %u bytes of peer identities, %u destinations) left out of every "
                "scrape (meshtls_agent_metrics_series_dropped_total)",
                (long)process->pid, (unsigned)process->uid,
                process->exe[0] != '\0' ? process->exe : "unknown", dropped,
                MT_METRICS_SERIES_PER_PROCESS_MAX, MT_METRICS_LABEL_BYTES_PER_PROCESS_MAX,
                MT_METRICS_DESTINATIONS_PER_PROCESS_MAX);
}

/*
 * The pods of processes that asked for their metrics file, by pid and start time: written by the
 * event loop, read by the HTTP thread's labeler, under one mutex. Names are Kubernetes names
 * (namespace 63 bytes, pod 253, workload kind/name), cut to fit.
 */
struct pod_entry {
    bool used;
    pid_t pid;
    unsigned long long start_time;
    char namespace_name[64];
    char pod[254];
    char workload[320];
};

static pthread_mutex_t pod_entries_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pod_entry *pod_entries; /* MT_AGENT_METRICS_PODS_MAX, allocated on first use */
static size_t pod_entries_next;

static void label_pod(const struct mt_metrics_process *process, struct mt_metrics_text *text)
{
    pthread_mutex_lock(&pod_entries_lock);
    for (size_t i = 0; pod_entries != NULL && i < MT_AGENT_METRICS_PODS_MAX; i++) {
        const struct pod_entry *entry = &pod_entries[i];
        if (!entry->used || entry->pid != process->pid || entry->start_time != process->start_time)
            continue;
        mt_metrics_text_append(text, ",namespace=\"");
        mt_metrics_text_append_label(text, entry->namespace_name);
        mt_metrics_text_append(text, "\",pod=\"");
        mt_metrics_text_append_label(text, entry->pod);
        mt_metrics_text_append(text, "\",workload=\"");
        mt_metrics_text_append_label(text, entry->workload);
        mt_metrics_text_append(text, "\"");
        break;
    }
    pthread_mutex_unlock(&pod_entries_lock);
}

void mt_agent_metrics_remember_pod(pid_t pid, unsigned long long start_time,
                                   const char *namespace_name, const char *pod,
                                   const char *workload)
{
    pthread_mutex_lock(&pod_entries_lock);
    if (pod_entries == NULL)
        pod_entries = calloc(MT_AGENT_METRICS_PODS_MAX, sizeof(*pod_entries));
    if (pod_entries != NULL) {
        struct pod_entry *entry = NULL;
        for (size_t i = 0; i < MT_AGENT_METRICS_PODS_MAX && entry == NULL; i++)
            if (pod_entries[i].used && pod_entries[i].pid == pid &&
                pod_entries[i].start_time == start_time)
                entry = &pod_entries[i];
        if (entry == NULL) {
            entry = &pod_entries[pod_entries_next];
            pod_entries_next = (pod_entries_next + 1) % MT_AGENT_METRICS_PODS_MAX;
        }
        *entry = (struct pod_entry){.used = true, .pid = pid, .start_time = start_time};
        snprintf(entry->namespace_name, sizeof(entry->namespace_name), "%s", namespace_name);
        snprintf(entry->pod, sizeof(entry->pod), "%s", pod);
        snprintf(entry->workload, sizeof(entry->workload), "%s", workload);
    }
    pthread_mutex_unlock(&pod_entries_lock);
}

/* One scrape being streamed: the text of the current piece and how much of it is sent. */
struct stream {
    struct mt_metrics_scrape *scrape;
    struct mt_metrics_text text;
    size_t sent;
    bool finished;
    long long deadline_ms;
};

/* libmicrohttpd's content reader: the next bytes of the exposition, one piece at a time. */
static ssize_t stream_read(void *context, uint64_t position, char *buffer, size_t capacity)
{
    struct stream *stream = context;
    while (stream->sent == stream->text.length) {
        if (stream->finished)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (mt_sys_now_ms() > stream->deadline_ms) {
            mt_log_warn("metrics scrape cut off after %d s: the exposition is too large or the "
                        "scraper too slow",
                        MT_AGENT_SCRAPE_SECONDS_MAX);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        stream->text.length = 0;
        stream->sent = 0;
        /* The agent's own families last: they report what this scrape read and left out. */
        if (!mt_metrics_scrape_next(stream->scrape, &stream->text)) {
            render_agent(&stream->text, mt_metrics_scrape_processes(stream->scrape));
            stream->finished = true;
        }
        if (stream->text.failed) {
            mt_log_warn("metrics scrape failed: out of memory");
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    size_t count = stream->text.length - stream->sent;
    if (count > capacity)
        count = capacity;
    memcpy(buffer, stream->text.data + stream->sent, count);
    stream->sent += count;
    return (ssize_t)count;
}

static void stream_free(void *context)
{
    struct stream *stream = context;
    mt_metrics_scrape_free(stream->scrape);
    mt_metrics_text_free(&stream->text);
    free(stream);
}

static enum MHD_Result answer(struct MHD_Connection *connection, unsigned status,
                              const char *content_type, char *body, size_t length,
                              enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *response = MHD_create_response_from_buffer(length, body, mode);
    if (response == NULL) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    enum MHD_Result result = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return result;
}

static enum MHD_Result handle_request(void *context, struct MHD_Connection *connection,
                                      const char *url, const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **request_state)
{
    struct mt_agent_http *http = context;
    static char not_found[] = "not found: the metrics are at /metrics\n";
    static char not_allowed[] = "only GET is served\n";
    static char failed[] = "metrics could not be read\n";
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return answer(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", not_allowed,
                      strlen(not_allowed), MHD_RESPMEM_PERSISTENT);
    if (strcmp(url, "/metrics") != 0)
        return answer(connection, MHD_HTTP_NOT_FOUND, "text/plain", not_found, strlen(not_found),
                      MHD_RESPMEM_PERSISTENT);
    struct stream *stream = calloc(1, sizeof(*stream));
    if (stream == NULL ||
        !mt_result_is_ok(mt_metrics_scrape_begin(http->directory, note_dropped, &stream->scrape))) {
        free(stream);
        return answer(connection, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", failed,
                      strlen(failed), MHD_RESPMEM_PERSISTENT);
    }
    stream->deadline_ms = mt_sys_now_ms() + MT_AGENT_SCRAPE_SECONDS_MAX * 1000LL;
    struct MHD_Response *response = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, STREAM_BLOCK_SIZE, stream_read, stream, stream_free);
    if (response == NULL) {
        stream_free(stream);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8");
    enum MHD_Result result = MHD_queue_response(connection, MHD_HTTP_OK, response);
    MHD_destroy_response(response);
    return result;
}

MT_RESULT mt_agent_http_start(const char *address, const struct mt_metrics_directory *directory,
                              struct mt_agent_http **http, struct mt_text *reason)
{
    MT_ENSURE_REF(address);
    MT_ENSURE_REF(directory);
    MT_ENSURE_REF(http);
    *http = NULL;
    if (strcmp(address, "off") == 0)
        return MT_OK_RESULT;
    mt_metrics_set_process_labeler(label_pod);
    struct sockaddr_storage bind_address;
    if (!mt_addr_parse(address, &bind_address) || mt_addr_port(&bind_address) == 0)
        return mt_result_explain(
            reason, MT_ERR_CONFIG,
            "metrics address \"%s\" is not a numeric host:port (e.g. 127.0.0.1:4191)", address);
    struct mt_agent_http *created = calloc(1, sizeof(*created));
    MT_ENSURE(created != NULL, MT_ERR_NO_MEMORY);
    created->directory = directory;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    if (bind_address.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    uint16_t port = bind_address.ss_family == AF_INET6
                        ? ntohs(((struct sockaddr_in6 *)&bind_address)->sin6_port)
                        : ntohs(((struct sockaddr_in *)&bind_address)->sin_port);
    created->daemon =
        MHD_start_daemon(flags, port, NULL, NULL, handle_request, created, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&bind_address, MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned)HTTP_CONNECTIONS_MAX, MHD_OPTION_CONNECTION_TIMEOUT,
                         (unsigned)HTTP_TIMEOUT_SECONDS, MHD_OPTION_END);
    if (created->daemon == NULL) {
        int error = errno; /* for the message; free() may change errno */
        free(created);
        return mt_result_explain(
            reason, MT_ERR_IO,
            "cannot serve metrics on %s: %s (use --metrics-address ADDRESS or off)", address,
            strerror(error));
    }
    *http = created;
    return MT_OK_RESULT;
}

void mt_agent_http_stop(struct mt_agent_http *http)
{
    if (http == NULL)
        return;
    MHD_stop_daemon(http->daemon);
    free(http);
}
