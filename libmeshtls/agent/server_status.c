/*
 * What the agent issued to whom, and STATUS requests (`meshtls status`).
 *
 * Owns the table of the last identity issued to each live process, and the STATUS reply: one
 * record per process (from its metrics file, else from this table) and per open connection,
 * tab-separated, cut with a final "truncated" record when the frame is full. It must never show
 * a caller another user's processes unless it is root or the agent's user (another user's
 * metrics files are passed over before they are read), and never read more of a metrics file
 * than the reply can use (metrics/reader.h bounds each file).
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

static void issued_clear(struct mt_server_issued *entry)
{
    free(entry->exe);
    free(entry->spiffe_id);
    memset(entry, 0, sizeof(*entry));
}

static bool issued_is_alive(const struct mt_server_issued *entry)
{
    unsigned long long start_time = 0;
    return mt_attest_start_time(entry->pid, &start_time) && start_time == entry->start_time;
}

/* Drops the entries of processes that have exited (or whose pid was reused). */
void mt_server_issued_sweep(struct mt_server *server)
{
    size_t kept = 0;
    for (size_t i = 0; i < server->issued_count; i++) {
        if (!issued_is_alive(&server->issued[i])) {
            issued_clear(&server->issued[i]);
            continue;
        }
        if (kept != i) {
            server->issued[kept] = server->issued[i];
            memset(&server->issued[i], 0, sizeof(server->issued[i]));
        }
        kept++;
    }
    server->issued_count = kept;
}

static struct mt_server_issued *issued_find(struct mt_server *server, pid_t pid,
                                            unsigned long long start_time)
{
    for (size_t i = 0; i < server->issued_count; i++)
        if (server->issued[i].pid == pid && server->issued[i].start_time == start_time)
            return &server->issued[i];
    return NULL;
}

void mt_server_issued_remember(struct mt_server *server, const struct mt_attest_peer *peer,
                               const char *spiffe_id, time_t expiry)
{
    if (!peer->has_start_time)
        return;
    unsigned long long start_time = peer->start_time;
    struct mt_server_issued *entry = issued_find(server, peer->pid, start_time);
    if (entry == NULL && server->issued_count == MT_SERVER_ISSUED_MAX)
        mt_server_issued_sweep(server);
    if (entry == NULL && server->issued_count < MT_SERVER_ISSUED_MAX)
        entry = &server->issued[server->issued_count++];
    if (entry == NULL)
        return;
    issued_clear(entry);
    entry->pid = peer->pid;
    entry->uid = peer->uid;
    entry->start_time = start_time;
    entry->expiry = expiry;
    entry->exe = strdup(peer->has_exe ? peer->exe : "-");
    entry->spiffe_id = strdup(spiffe_id);
}

void mt_server_issued_free(struct mt_server *server)
{
    if (server->issued == NULL)
        return;
    for (size_t i = 0; i < server->issued_count; i++)
        issued_clear(&server->issued[i]);
    free(server->issued);
    server->issued = NULL;
    server->issued_count = 0;
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
                           const struct mt_server_issued *issued)
{
    char exe[PATH_MAX];
    char id[MT_SPIFFE_ID_MAX + 1];
    long long expiry = process->header.identity_expiry != 0
                           ? (long long)process->header.identity_expiry
                           : (issued != NULL ? (long long)issued->expiry : 0);
    status_record(builder, "process\t%ld\t%u\t%s\t%s\t%lld\t%llu\t1", (long)process->pid,
                  (unsigned)process->uid, field_text(process->exe, exe, sizeof(exe)),
                  field_text(issued != NULL ? issued->spiffe_id : NULL, id, sizeof(id)), expiry,
                  (unsigned long long)process->header.identity_refresh_count);
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
    bool *listed = calloc(server->issued_count + 1, sizeof(*listed));
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
        struct mt_server_issued *issued = issued_find(server, process.pid, process.start_time);
        if (issued != NULL)
            listed[issued - server->issued] = true;
        if (sees_all || process.uid == client->peer.uid)
            status_process(&builder, &process, issued);
        mt_metrics_process_cleanup(&process);
    }
    for (size_t i = 0; i < server->issued_count; i++) {
        const struct mt_server_issued *issued = &server->issued[i];
        char id[MT_SPIFFE_ID_MAX + 1];
        char exe[PATH_MAX];
        if (listed[i] || (!sees_all && issued->uid != client->peer.uid))
            continue;
        status_record(&builder, "process\t%ld\t%u\t%s\t%s\t%lld\t0\t0", (long)issued->pid,
                      (unsigned)issued->uid, field_text(issued->exe, exe, sizeof(exe)),
                      field_text(issued->spiffe_id, id, sizeof(id)), (long long)issued->expiry);
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
