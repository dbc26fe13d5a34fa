/*
 * What the agent issued to whom, and STATUS requests (`meshtls status`).
 *
 * Fills the table of the last identity issued to each live process (issued.h, whose liveness
 * checks read /proc here), and owns the STATUS reply: one record per process (from its metrics
 * file, else from this table) and per open connection, tab-separated, cut with a final "truncated"
 * record when the frame is full. It must never show a caller another user's processes unless it is
 * root or the agent's user (another user's metrics files are passed over before they are read), and
 * never read more of a metrics file than the reply can use (metrics/reader.h bounds each file).
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../metrics/directory.h"
#include "../metrics/reader.h"
#include "../util/log.h"
#include "server_internal.h"

/* Room kept in a status reply for the final "truncated" record. */
#define STATUS_RESERVE 64

static bool issued_is_alive(pid_t pid, unsigned long long start_time)
{
    unsigned long long now = 0;
    return mt_attest_start_time(pid, &now) && now == start_time;
}

MT_RESULT mt_server_issued_init(struct mt_server *server)
{
    return mt_issued_init(&server->issued, issued_is_alive);
}

void mt_server_issued_sweep(struct mt_server *server)
{
    mt_issued_sweep(&server->issued);
}

void mt_server_issued_remember(struct mt_server *server, const struct mt_attest_peer *peer,
                               const char *spiffe_id, time_t expiry)
{
    if (!peer->has_start_time)
        return;
    if (!mt_issued_remember(&server->issued, peer->pid, peer->uid, peer->start_time,
                            peer->has_exe ? peer->exe : "-", spiffe_id, expiry)) {
        mt_log_limited(MT_LOG_WARN,
                       "pid %ld is not listed by `meshtls status` unless it has a metrics file: "
                       "%zu live processes already are (or out of memory)",
                       (long)peer->pid, server->issued.count);
        return;
    }
    struct mt_issued_entry *entry = mt_issued_find(&server->issued, peer->pid, peer->start_time);
    if (entry != NULL)
        entry->supervisor_pid = peer->supervisor_pid;
}

void mt_server_issued_free(struct mt_server *server)
{
    mt_issued_cleanup(&server->issued);
}

/* Copies text for a tab-separated field: "-" when empty, tabs and newlines replaced. */
static const char *field_text(const char *text, char *buffer, size_t capacity)
{
    if (text == NULL || text[0] == '\0')
        return "-";
    size_t i = 0;
    for (; text[i] != '\0' && i + 1 < capacity; i++)
        buffer[i] = text[i] == '\t' || text[i] == '\n' || text[i] == '\r' ? '?' : text[i];
    buffer[i] = '\0';
    return buffer;
}

struct status_builder {
    struct mt_proto_writer writer;
    size_t omitted;
};

__attribute__((format(printf, 2, 3))) static void status_record(struct status_builder *builder,
                                                                const char *format, ...)
{
    char line[PATH_MAX + 2 * MT_SPIFFE_ID_MAX];
    va_list arguments;
    va_start(arguments, format);
    int length = vsnprintf(line, sizeof(line), format, arguments);
    va_end(arguments);
    if (length < 0)
        return;
    size_t size = (size_t)length < sizeof(line) ? (size_t)length : sizeof(line) - 1;
    struct mt_proto_writer *writer = &builder->writer;
    if (builder->omitted > 0 ||
        writer->capacity - writer->length < size + MT_PROTO_TLV_HEADER_SIZE + STATUS_RESERVE) {
        builder->omitted++;
        return;
    }
    mt_proto_writer_put(writer, MT_PROTO_TAG_STATUS_RECORD, line, size);
}

static void status_process(struct status_builder *builder, const struct mt_metrics_process *process,
                           const struct mt_issued_entry *issued)
{
    char exe[PATH_MAX];
    char id[MT_SPIFFE_ID_MAX + 1];
    long long expiry = process->header.identity_expiry != 0
                           ? (long long)process->header.identity_expiry
                           : (issued != NULL ? (long long)issued->expiry : 0);
    status_record(builder, "process\t%ld\t%u\t%s\t%s\t%lld\t%llu\t1\t%ld", (long)process->pid,
                  (unsigned)process->uid, field_text(process->exe, exe, sizeof(exe)),
                  field_text(issued != NULL ? issued->spiffe_id : NULL, id, sizeof(id)), expiry,
                  (unsigned long long)process->header.identity_refresh_count,
                  (long)(issued != NULL ? issued->supervisor_pid : 0));
    for (size_t i = 0; i < process->connection_count; i++) {
        const struct mt_metrics_connection_record *connection = &process->connections[i];
        char local[MT_METRICS_ADDRESS_MAX];
        char peer[MT_METRICS_ADDRESS_MAX];
        char peer_id[MT_METRICS_PEER_ID_MAX];
        char key_exchange[MT_METRICS_KEY_EXCHANGE_MAX];
        status_record(
            builder, "connection\t%ld\t%d\t%s\t%s\t%s\t%s\t%s\t%lld\t%llu\t%llu\t%s",
            (long)process->pid, (int)connection->fd, connection->inbound ? "inbound" : "outbound",
            connection->tls ? "true" : "false", field_text(connection->local, local, sizeof(local)),
            field_text(connection->peer, peer, sizeof(peer)),
            field_text(connection->peer_id, peer_id, sizeof(peer_id)),
            (long long)connection->opened_at_ms, (unsigned long long)connection->read_bytes,
            (unsigned long long)connection->write_bytes,
            field_text(connection->key_exchange, key_exchange, sizeof(key_exchange)));
    }
    /* Outbound opens per destination, the plaintext ones first: what is not yet mTLS. */
    for (int tls = 0; tls <= 1; tls++) {
        for (size_t i = 0; i < process->destination_count; i++) {
            const struct mt_metrics_destination_record *destination = &process->destinations[i];
            if (destination->tls != tls || destination->open_total == 0)
                continue;
            char address[MT_METRICS_ADDRESS_MAX];
            mt_metrics_destination_format(destination, address, sizeof(address));
            status_record(builder, "destination\t%ld\t%s\t%s\t%llu", (long)process->pid,
                          tls ? "true" : "false", address,
                          (unsigned long long)destination->open_total);
        }
    }
}

void mt_server_status_reply(struct mt_server *server, struct mt_server_client *client)
{
    /* Root and the agent's own user see the node; anyone else sees their own processes. */
    bool sees_all = client->peer.uid == 0 || client->peer.uid == geteuid();
    /* One process's file at a time, each bounded (metrics/reader.h): the reply is, anyway. */
    struct mt_metrics_listing listing;
    if (!mt_result_is_ok(mt_metrics_listing_read(&server->metrics_directory, &listing)))
        mt_metrics_listing_free(&listing);
    mt_server_issued_sweep(server);
    uint8_t *reply = malloc(MT_SERVER_REPLY_MAX);
    bool *listed = calloc(server->issued.count + 1, sizeof(*listed));
    if (reply == NULL || listed == NULL) {
        free(reply);
        free(listed);
        mt_metrics_listing_free(&listing);
        mt_server_client_refuse(client, MT_PROTO_ERROR_INTERNAL, "out of memory");
        return;
    }
    struct status_builder builder = {.omitted = 0};
    mt_proto_writer_begin(&builder.writer, reply, MT_SERVER_REPLY_MAX, MT_PROTO_STATUS_RESPONSE);
    for (size_t i = 0; i < listing.count; i++) {
        struct mt_metrics_process process;
        /* Another user's processes are passed over before their files are read. */
        if (mt_metrics_process_open(listing.directory_fd, listing.names[i], MT_METRICS_LOAD_ALL,
                                    sees_all ? NULL : &client->peer.uid,
                                    &process) != MT_METRICS_TRUSTED)
            continue;
        struct mt_issued_entry *issued =
            mt_issued_find(&server->issued, process.pid, process.start_time);
        if (issued != NULL)
            listed[issued - server->issued.entries] = true;
        if (sees_all || process.uid == client->peer.uid)
            status_process(&builder, &process, issued);
        mt_metrics_process_cleanup(&process);
    }
    for (size_t i = 0; i < server->issued.count; i++) {
        const struct mt_issued_entry *issued = &server->issued.entries[i];
        char id[MT_SPIFFE_ID_MAX + 1];
        char exe[PATH_MAX];
        if (listed[i] || (!sees_all && issued->uid != client->peer.uid))
            continue;
        status_record(&builder, "process\t%ld\t%u\t%s\t%s\t%lld\t0\t0\t%ld", (long)issued->pid,
                      (unsigned)issued->uid, field_text(issued->exe, exe, sizeof(exe)),
                      field_text(issued->spiffe_id, id, sizeof(id)), (long long)issued->expiry,
                      (long)issued->supervisor_pid);
    }
    if (builder.omitted > 0) {
        char line[48];
        int length = snprintf(line, sizeof(line), "truncated\t%zu", builder.omitted);
        mt_proto_writer_put(&builder.writer, MT_PROTO_TAG_STATUS_RECORD, line, (size_t)length);
    }
    free(listed);
    mt_metrics_listing_free(&listing);
    size_t length = 0;
    if (!mt_result_is_ok(mt_proto_writer_finish(&builder.writer, &length))) {
        free(reply);
        mt_server_client_refuse(client, MT_PROTO_ERROR_INTERNAL, "reply does not fit");
        return;
    }
    mt_log_debug("status for pid %ld uid %u", (long)client->peer.pid, (unsigned)client->peer.uid);
    mt_server_client_reply(client, reply, length);
}
