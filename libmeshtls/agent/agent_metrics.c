/*
 * The agent's metrics endpoint (see agent_metrics.h).
 *
 * Owns the HTTP listener and the agent's own counters. Requests are answered from libmicrohttpd's
 * internal thread with a fresh reading of the metrics directory, bounded in connections and time
 * so that scrapers cannot exhaust the agent. This file must never touch the issuer, the rules or
 * the client table of the event loop, and never serve anything but metrics.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../metrics/reader.h"
#include "../util/addr.h"
#include "../util/log.h"
#include "agent_metrics.h"

#define HTTP_CONNECTIONS_MAX 32
#define HTTP_TIMEOUT_SECONDS 10

struct mt_agent_stats mt_agent_stats;

struct mt_agent_http {
    struct MHD_Daemon *daemon;
    char directory[PATH_MAX];
};

MT_RESULT mt_agent_metrics_directory_create(const char *directory, char *message,
                                            size_t message_size)
{
    MT_ENSURE_REF(directory);
    if (mkdir(directory, 01777) != 0 && errno != EEXIST)
        return mt_result_explain(message, message_size, MT_ERR_IO,
                                 "cannot create metrics directory %s: %s", directory,
                                 strerror(errno));
    struct stat status;
    if (lstat(directory, &status) != 0 || !S_ISDIR(status.st_mode))
        return mt_result_explain(
            message, message_size, MT_ERR_IO,
            "%s exists and is not a directory: remove it so that the agent can create "
            "the metrics directory",
            directory);
    /* mkdir's mode went through the umask; the sticky bit keeps users from removing others'. */
    if ((status.st_mode & 07777) != 01777 && status.st_uid == geteuid() &&
        chmod(directory, 01777) != 0)
        return mt_result_explain(message, message_size, MT_ERR_IO, "cannot chmod 1777 %s: %s",
                                 directory, strerror(errno));
    return MT_OK_RESULT;
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
        "meshtls_agent_processes %zu\n",
        (long long)atomic_load(&mt_agent_stats.issuer_not_after),
        atomic_load(&mt_agent_stats.anchor_count),
        (unsigned long long)atomic_load(&mt_agent_stats.reloads_succeeded),
        (unsigned long long)atomic_load(&mt_agent_stats.reloads_failed), processes);
}

MT_RESULT mt_agent_metrics_render(const char *directory, char **output, size_t *length)
{
    MT_ENSURE_REF(directory);
    MT_ENSURE_REF(output);
    MT_ENSURE_REF(length);
    struct mt_metrics_collection collection;
    MT_GUARD(mt_metrics_collect(directory, true, &collection));
    struct mt_metrics_text text = {0};
    render_agent(&text, collection.count);
    mt_metrics_render(&collection, &text);
    mt_metrics_collection_free(&collection);
    if (text.failed || text.data == NULL) {
        mt_metrics_text_free(&text);
        return mt_result_of(MT_ERR_NO_MEMORY);
    }
    *output = text.data;
    *length = text.length;
    return MT_OK_RESULT;
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
    char *body = NULL;
    size_t length = 0;
    if (!mt_result_is_ok(mt_agent_metrics_render(http->directory, &body, &length)))
        return answer(connection, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", failed,
                      strlen(failed), MHD_RESPMEM_PERSISTENT);
    return answer(connection, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, length,
                  MHD_RESPMEM_MUST_FREE);
}

MT_RESULT mt_agent_http_start(const char *address, const char *directory,
                              struct mt_agent_http **http, char *message, size_t message_size)
{
    MT_ENSURE_REF(address);
    MT_ENSURE_REF(directory);
    MT_ENSURE_REF(http);
    *http = NULL;
    if (strcmp(address, "off") == 0)
        return MT_OK_RESULT;
    struct sockaddr_storage bind_address;
    if (!mt_addr_parse(address, &bind_address) || mt_addr_port(&bind_address) == 0)
        return mt_result_explain(
            message, message_size, MT_ERR_CONFIG,
            "metrics address \"%s\" is not a numeric host:port (e.g. 127.0.0.1:4191)", address);
    struct mt_agent_http *created = calloc(1, sizeof(*created));
    MT_ENSURE(created != NULL, MT_ERR_NO_MEMORY);
    snprintf(created->directory, sizeof(created->directory), "%s", directory);
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
        int saved = errno;
        free(created);
        return mt_result_explain(
            message, message_size, MT_ERR_IO,
            "cannot serve metrics on %s: %s (use --metrics-address ADDRESS or off)", address,
            strerror(saved));
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
