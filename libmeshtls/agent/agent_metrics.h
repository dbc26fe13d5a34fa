/*
 * The agent's metrics endpoint: Prometheus text over HTTP (libmicrohttpd, in its own thread),
 * serving the agent's own counters and every live workload's metrics file.
 *
 * The HTTP thread shares nothing with the event loop but mt_agent_stats (atomics) and the
 * metrics directory (read-only, plus removing files of dead processes), so a slow or hostile
 * scraper can never stall identity issuance. GET /metrics only; anything else is 404/405.
 *
 * Agent families: meshtls_agent_svids_issued_total, meshtls_agent_requests_refused_total{reason},
 * meshtls_agent_issuer_expiration_timestamp_seconds, meshtls_agent_trust_anchors,
 * meshtls_agent_issuer_reloads_total{result="success|failure"}, meshtls_agent_processes,
 * meshtls_agent_connections_refused_total{reason="over_share|table_full|evicted"},
 * meshtls_agent_exe_mismatches_total.
 */
#ifndef MT_AGENT_AGENT_METRICS_H
#define MT_AGENT_AGENT_METRICS_H

#include <stdatomic.h>
#include <stddef.h>

#include "../identity/proto.h"
#include "../util/result.h"

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
    atomic_ullong refused[MT_PROTO_ERROR_INTERNAL + 1]; /* by enum mt_proto_error_code */
    atomic_llong issuer_not_after;
    atomic_uint anchor_count;
    atomic_ullong reloads_succeeded;
    atomic_ullong reloads_failed;
};

extern struct mt_agent_stats mt_agent_stats;

struct mt_agent_http;

/*
 * Creates the metrics directory (mode 1777, sticky) beside the socket, where workloads write
 * their files. Refuses a path that exists and is not a directory (or is a symbolic link).
 */
MT_RESULT mt_agent_metrics_directory_create(const char *directory, char *message,
                                            size_t message_size);

/*
 * Starts serving address ("host:port", "[v6]:port"; "off" starts nothing and sets *http NULL)
 * with the files of directory. Fails when the address cannot be bound.
 */
MT_RESULT mt_agent_http_start(const char *address, const char *directory,
                              struct mt_agent_http **http, char *message, size_t message_size);
void mt_agent_http_stop(struct mt_agent_http *http);

/* The whole exposition (agent and workloads), as the endpoint serves it; caller frees. */
MT_RESULT mt_agent_metrics_render(const char *directory, char **text, size_t *length);

#endif
