/*
 * The agent's metrics: the workloads' metrics files it creates and hands over, and the endpoint
 * serving Prometheus text over HTTP (libmicrohttpd, in its own thread) with the agent's own
 * counters and every live workload's file.
 *
 * The HTTP thread shares nothing with the event loop but mt_agent_stats (atomics) and the
 * metrics directory (read-only; the event loop creates and sweeps the files), so a slow or
 * hostile scraper can never stall identity issuance. The response is streamed: built one
 * process's share of one family at a time, so that the agent's memory stays flat whatever the
 * files hold (see metrics/reader.h), and a scrape that takes longer than
 * MT_AGENT_SCRAPE_SECONDS_MAX is cut off. GET /metrics only; anything else is 404/405.
 *
 * Agent families: meshtls_agent_svids_issued_total, meshtls_agent_requests_refused_total{reason},
 * meshtls_agent_issuer_expiration_timestamp_seconds, meshtls_agent_trust_anchors,
 * meshtls_agent_issuer_reloads_total{result="success|failure"}, meshtls_agent_processes,
 * meshtls_agent_connections_refused_total{reason="over_share|table_full|evicted"},
 * meshtls_agent_exe_mismatches_total,
 * meshtls_agent_exe_hashes_total{result="computed|over_budget"} (executables hashed for sha256
 * rules, and hashes the per-uid budget refused: agent/hash_budget.h),
 * meshtls_agent_metrics_series_dropped_total (series of processes over the per-process limits of
 * metrics/layout.h, left out of scrapes: counted once per scrape that left them out),
 * meshtls_agent_kube_watch_restarts_total, meshtls_agent_kube_relists_total,
 * meshtls_agent_kube_api_errors_total, meshtls_agent_kube_members (the API server's membership
 * source: kube_watch.h).
 */
#ifndef MT_AGENT_AGENT_METRICS_H
#define MT_AGENT_AGENT_METRICS_H

#include <stdatomic.h>
#include <stddef.h>

#include "../identity/proto.h"
#include "../util/text.h"

/* Why a connection to the agent socket was closed before any request was read (fair_share.h). */
enum mt_agent_connection_refusal {
    MT_AGENT_REFUSAL_OVER_SHARE, /* the table was full and the uid held its share */
    MT_AGENT_REFUSAL_TABLE_FULL, /* the table was full and no uid held more than the newcomer */
    MT_AGENT_REFUSAL_EVICTED,    /* an idle connection closed to make room for another uid's */
    MT_AGENT_REFUSAL_COUNT,
};

struct mt_agent_stats {
    atomic_ullong svids_issued;
    atomic_ullong connections_refused[MT_AGENT_REFUSAL_COUNT];
    /* Callers whose executable had a rule's path (by name) but was another file. */
    atomic_ullong exe_mismatches;
    atomic_ullong pod_callers_refused; /* in a pod the kubelet does not list, or cannot tell */
    /* Executables hashed for a sha256 rule (cache misses), and hashes refused by the budget. */
    atomic_ullong exe_hashes_computed;
    atomic_ullong exe_hashes_over_budget;
    atomic_ullong refused[MT_PROTO_ERROR_INTERNAL + 1]; /* by enum mt_proto_error_code */
    atomic_llong issuer_not_after;
    atomic_uint anchor_count;
    atomic_ullong reloads_succeeded;
    atomic_ullong reloads_failed;
    atomic_ullong metrics_series_dropped;
    /* The Kubernetes API server's watch (kube_watch.h), updated from its thread. */
    atomic_ullong kube_watch_restarts;
    atomic_ullong kube_relists;
    atomic_ullong kube_api_errors;
    atomic_ullong kube_members; /* a gauge: entries in the last set handed over */
};

extern struct mt_agent_stats mt_agent_stats;

struct mt_agent_http;

#define MT_AGENT_SCRAPE_SECONDS_MAX 20

struct mt_metrics_directory;

/*
 * Creates the metrics directory at directory->path (beside the socket) and holds it open in
 * directory->fd: mode 0755, owned by the agent, which alone creates files in it. An existing
 * directory is taken only when it is what an agent leaves (owned by the agent's uid, nothing in
 * it but metrics files, mode 0755, or 1777 from an older agent, which is narrowed to 0755);
 * anything else (a symbolic link, not a directory, another owner or mode, other entries) is
 * refused with a message naming the path and what to do. Once open, a directory moved or
 * replaced at that path (by whoever can write the socket's directory) changes nothing: the
 * agent keeps using the one it holds, and never follows the path again.
 */
MT_RESULT mt_agent_metrics_directory_create(struct mt_metrics_directory *directory,
                                            struct mt_text *reason);

struct mt_attest_peer;

/*
 * Creates the metrics file of the attested process peer in directory, named by its pid as the
 * agent sees it and by the start time attestation tied to that very process (attest.h).
 * *fd is the new file, open for reading and writing, for the caller to hand over.
 * MT_ERR_AGENT_REFUSED when the caller cannot be attested (a pid the agent cannot see, a caller
 * that exited), MT_ERR_IO when the file cannot be made; message says which.
 */
MT_RESULT mt_agent_metrics_file_create(const struct mt_metrics_directory *directory,
                                       const struct mt_attest_peer *peer, int *fd,
                                       unsigned long long *start_time, struct mt_text *reason);

/*
 * Remembers that the process pid (of start_time) runs in the pod namespace/name of workload, so
 * that its series carry namespace, pod and workload labels (workload "" for a pod without a
 * controller). The oldest of MT_AGENT_METRICS_PODS_MAX remembered processes is forgotten first.
 * Called from the event loop; read by the HTTP thread.
 */
#define MT_AGENT_METRICS_PODS_MAX 1024
void mt_agent_metrics_remember_pod(pid_t pid, unsigned long long start_time,
                                   const char *namespace_name, const char *pod,
                                   const char *workload);

/*
 * Starts serving address ("host:port", "[v6]:port"; "off" starts nothing and sets *http NULL)
 * with the files of directory, which must stay open until mt_agent_http_stop. Fails when the
 * address cannot be bound.
 */
MT_RESULT mt_agent_http_start(const char *address, const struct mt_metrics_directory *directory,
                              struct mt_agent_http **http, struct mt_text *reason);
void mt_agent_http_stop(struct mt_agent_http *http);

#endif
