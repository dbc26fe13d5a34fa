/*
 * The agent's socket server (see server.h): accept, attest, read one frame, reply, close.
 *
 * Owns the listening socket, the client table and every byte exchanged with clients. Callers are
 * any local process, so nothing here trusts a length or a state a client controls: a client's
 * buffer is sized from a header the codec has already bounded, each client has its own deadline,
 * and no call blocks on one client while others wait (the only synchronous work is one ECDSA
 * signature, one executable hashed for a sha256 rule within its uid's budget, one metrics file
 * created, or one bounded reading of the metrics directory for a STATUS request). This file must
 * never let a client choose its identity (that is decided by attestation and the rules) or the name
 * of its metrics file (that is its attested pid and start time), never show a caller another user's
 * processes unless it is root or the agent's user, never log a key or a CSR, and never exit on a
 * client's behaviour.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../identity/proto.h"
#include "../metrics/directory.h"
#include "../metrics/metrics.h"
#include "../util/log.h"
#include "../util/text.h"
#include "agent_metrics.h"
#include "attest.h"
#include "fair_share.h"
#include "server.h"

/* The largest frame the protocol allows: a chain, several anchors, or a status listing. */
#define REPLY_MAX MT_PROTO_MAX_FRAME
/* Room kept in a status reply for the final "truncated" record. */
#define STATUS_RESERVE 64
/* Accepts per wake-up, so that a connection flood cannot starve clients already being served. */
#define ACCEPT_BURST 64
#define ACCEPT_PAUSE_MS 100

enum client_state {
    CLIENT_FREE = 0,
    CLIENT_READING,
    CLIENT_WRITING,
};

struct mt_server_client {
    int fd;
    enum client_state state;
    long long accepted_ms; /* for the fair share: the oldest idle connection goes first */
    long long deadline_ms;
    struct mt_attest_peer peer;
    /* The header is read into place first; input is allocated once it announces a length. */
    uint8_t header[MT_PROTO_HEADER_SIZE];
    uint8_t *input;
    size_t input_size;
    size_t received;
    uint8_t *output;
    size_t output_length;
    size_t output_sent;
    int passed_fd; /* sent with the reply's first bytes (SCM_RIGHTS) when has_passed_fd */
    bool has_passed_fd;
};

/* Milliseconds on CLOCK_MONOTONIC, for deadlines that wall-clock changes cannot move. */
static long long now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static const char *exe_text(const struct mt_attest_peer *peer)
{
    return peer->has_exe ? peer->exe : "unknown";
}

/* ----------------------------------------------------------------------------------------- */
/* Opening the socket */

static MT_RESULT ensure_parent_directory(const char *socket_path, struct mt_text *reason)
{
    char parent[sizeof(((struct sockaddr_un *)0)->sun_path)];
    snprintf(parent, sizeof(parent), "%s", socket_path);
    char *slash = strrchr(parent, '/');
    if (slash == NULL || slash == parent)
        return MT_OK_RESULT;
    *slash = '\0';
    if (mkdir(parent, 0755) == 0 || errno == EEXIST)
        return MT_OK_RESULT;
    return mt_result_explain(reason, MT_ERR_IO, "cannot create directory %s for the socket: %s",
                             parent, strerror(errno));
}

static void address_of(const char *socket_path, struct sockaddr_un *address)
{
    memset(address, 0, sizeof(*address));
    address->sun_family = AF_UNIX;
    snprintf(address->sun_path, sizeof(address->sun_path), "%s", socket_path);
}

/*
 * A socket file left by an agent that died cannot be bound again; one that a live agent still
 * serves must not be stolen. connect() tells them apart: refused means nobody listens.
 */
static MT_RESULT clear_stale_socket(const char *socket_path, struct mt_text *reason)
{
    struct stat status;
    if (lstat(socket_path, &status) != 0) {
        if (errno == ENOENT)
            return MT_OK_RESULT;
        return mt_result_explain(reason, MT_ERR_IO, "cannot check %s: %s", socket_path,
                                 strerror(errno));
    }
    if (!S_ISSOCK(status.st_mode))
        return mt_result_explain(
            reason, MT_ERR_IO,
            "%s exists and is not a socket: remove it or choose another --socket", socket_path);

    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return mt_result_explain(reason, MT_ERR_IO, "socket: %s", strerror(errno));
    struct sockaddr_un address;
    address_of(socket_path, &address);
    int connected = connect(probe, (struct sockaddr *)&address, sizeof(address));
    int connect_errno = errno;
    close(probe);
    /* EAGAIN: a full backlog, which only a live listener has. */
    if (connected == 0 || connect_errno == EAGAIN)
        return mt_result_explain(
            reason, MT_ERR_IO,
            "another meshtls-agent is already serving %s; stop it first or choose "
            "another --socket",
            socket_path);
    if (connect_errno != ECONNREFUSED)
        return mt_result_explain(reason, MT_ERR_IO, "cannot check %s: %s", socket_path,
                                 strerror(connect_errno));
    if (unlink(socket_path) != 0 && errno != ENOENT)
        return mt_result_explain(reason, MT_ERR_IO, "cannot remove stale socket %s: %s",
                                 socket_path, strerror(errno));
    mt_log_info("replaced stale socket %s", socket_path);
    return MT_OK_RESULT;
}

MT_RESULT mt_server_open(struct mt_server *server, const char *socket_path,
                         const struct mt_agent_config *config, struct mt_issuer *issuer,
                         struct mt_text *reason)
{
    MT_ENSURE_REF(server);
    MT_ENSURE_REF(socket_path);
    MT_ENSURE_REF(config);
    MT_ENSURE_REF(issuer);
    memset(server, 0, sizeof(*server));
    server->listen_fd = -1;
    server->config = config;
    server->issuer = issuer;
    server->metrics_directory.fd = -1;
    if (!mt_metrics_directory_for_socket(socket_path, server->metrics_directory.path,
                                         sizeof(server->metrics_directory.path)))
        return mt_result_explain(reason, MT_ERR_TOO_LONG, "socket path too long");
    if (socket_path[0] == '\0' || strlen(socket_path) >= sizeof(server->socket_path))
        return mt_result_explain(reason, MT_ERR_TOO_LONG,
                                 "socket path \"%s\" is empty or longer than %zu bytes",
                                 socket_path, sizeof(server->socket_path) - 1);
    snprintf(server->socket_path, sizeof(server->socket_path), "%s", socket_path);

    MT_GUARD(ensure_parent_directory(socket_path, reason));
    MT_GUARD(clear_stale_socket(socket_path, reason));

    mt_result result = MT_OK_RESULT;
    struct stat status;
    struct sockaddr_un address;
    address_of(socket_path, &address);
    server->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (server->listen_fd < 0) {
        result = mt_result_explain(reason, MT_ERR_IO, "socket: %s", strerror(errno));
        goto out;
    }
    if (bind(server->listen_fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        result = mt_result_explain(reason, MT_ERR_IO, "cannot bind %s: %s", socket_path,
                                   strerror(errno));
        goto out;
    }
    if (lstat(socket_path, &status) != 0) {
        result = mt_result_explain(reason, MT_ERR_IO, "cannot stat %s: %s", socket_path,
                                   strerror(errno));
        goto out;
    }
    server->socket_device = status.st_dev;
    server->socket_inode = status.st_ino;
    /* Until this chmod the socket has the umask's (narrower) mode, so nothing is exposed early. */
    if (chmod(socket_path, 0666) != 0 || listen(server->listen_fd, SOMAXCONN) != 0) {
        result = mt_result_explain(reason, MT_ERR_IO, "cannot listen on %s: %s", socket_path,
                                   strerror(errno));
        goto out;
    }
    server->clients = calloc(MT_SERVER_CLIENTS_MAX, sizeof(*server->clients));
    server->issued = calloc(MT_SERVER_ISSUED_MAX, sizeof(*server->issued));
    if (server->clients == NULL || server->issued == NULL)
        result = mt_result_explain(reason, MT_ERR_NO_MEMORY, "out of memory");

out:
    if (!mt_result_is_ok(result))
        mt_server_close(server);
    return result;
}

/* ----------------------------------------------------------------------------------------- */
/* Clients */

static void client_close(struct mt_server_client *client)
{
    if (client->state == CLIENT_FREE)
        return;
    close(client->fd);
    if (client->has_passed_fd)
        close(client->passed_fd);
    free(client->input);
    free(client->output);
    memset(client, 0, sizeof(*client));
    client->fd = -1;
}

/* send(), with the descriptor to pass attached to the first bytes that go out. */
static ssize_t client_send(struct mt_server_client *client)
{
    const uint8_t *data = client->output + client->output_sent;
    size_t length = client->output_length - client->output_sent;
    if (!client->has_passed_fd)
        return send(client->fd, data, length, MSG_NOSIGNAL);
    union {
        struct cmsghdr header;
        char bytes[CMSG_SPACE(sizeof(int))];
    } control;
    memset(&control, 0, sizeof(control));
    struct iovec vector = {(void *)data, length};
    struct msghdr message = {.msg_iov = &vector,
                             .msg_iovlen = 1,
                             .msg_control = control.bytes,
                             .msg_controllen = sizeof(control.bytes)};
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &client->passed_fd, sizeof(int));
    ssize_t sent = sendmsg(client->fd, &message, MSG_NOSIGNAL);
    if (sent > 0) {
        close(client->passed_fd);
        client->has_passed_fd = false;
    }
    return sent;
}

/* Sends what is left of the reply; closes the client once all of it is out. */
static void client_write(struct mt_server_client *client)
{
    while (client->output_sent < client->output_length) {
        ssize_t sent = client_send(client);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (sent <= 0) {
            mt_log_limited(MT_LOG_WARN, "reply to pid %ld uid %u not delivered: %s",
                           (long)client->peer.pid, (unsigned)client->peer.uid,
                           sent < 0 ? strerror(errno) : "closed");
            client_close(client);
            return;
        }
        client->output_sent += (size_t)sent;
    }
    client_close(client);
}

/* Takes over reply (a frame of length bytes, heap-allocated) and starts sending it. */
static void client_reply(struct mt_server_client *client, uint8_t *reply, size_t length)
{
    free(client->input);
    client->input = NULL;
    client->output = reply;
    client->output_length = length;
    client->output_sent = 0;
    client->state = CLIENT_WRITING;
    client->deadline_ms = now_ms() + MT_SERVER_REQUEST_TIMEOUT_MS;
    client_write(client);
}

static size_t build_error(uint8_t *frame, size_t capacity, enum mt_proto_error_code code,
                          const char *text)
{
    struct mt_proto_writer writer;
    size_t length = 0;
    mt_proto_writer_begin(&writer, frame, capacity, MT_PROTO_ERROR);
    mt_proto_writer_put_u32(&writer, MT_PROTO_TAG_ERROR_CODE, code);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_MESSAGE, text, strlen(text));
    if (!mt_result_is_ok(mt_proto_writer_finish(&writer, &length)))
        return 0;
    return length;
}

/* Logs the refusal and replies with an ERROR frame; without memory, just closes. */
static void client_refuse(struct mt_server_client *client, enum mt_proto_error_code code,
                          const char *text)
{
    mt_log_limited(MT_LOG_WARN, "refused pid %ld uid %u exe %s: %s", (long)client->peer.pid,
                   (unsigned)client->peer.uid, exe_text(&client->peer), text);
    if (code >= MT_PROTO_ERROR_MALFORMED && code <= MT_PROTO_ERROR_INTERNAL)
        atomic_fetch_add(&mt_agent_stats.refused[code], 1);
    size_t capacity = MT_PROTO_HEADER_SIZE + 2 * MT_PROTO_TLV_HEADER_SIZE + 4 + strlen(text);
    uint8_t *reply = malloc(capacity);
    size_t length = reply != NULL ? build_error(reply, capacity, code, text) : 0;
    if (length == 0) {
        free(reply);
        client_close(client);
        return;
    }
    client_reply(client, reply, length);
}

static void format_utc(time_t when, char *text, size_t capacity)
{
    struct tm utc;
    if (gmtime_r(&when, &utc) == NULL || strftime(text, capacity, "%Y-%m-%dT%H:%M:%SZ", &utc) == 0)
        snprintf(text, capacity, "%lld", (long long)when);
}

/* The caller's executable's digest, hashed when a sha256 rule first needs it (agent_config.h). */
static const uint8_t *client_exe_sha256(void *context, const char **problem, bool *later)
{
    struct mt_server_client *client = context;
    struct mt_attest_peer *peer = &client->peer;
    switch (mt_attest_exe_sha256(client->fd, now_ms(), peer)) {
    case MT_ATTEST_HASH_COMPUTED:
        atomic_fetch_add(&mt_agent_stats.exe_hashes_computed, 1);
        break;
    case MT_ATTEST_HASH_OVER_BUDGET:
        atomic_fetch_add(&mt_agent_stats.exe_hashes_over_budget, 1);
        break;
    default:
        break;
    }
    /* Also when an earlier call settled it (MT_ATTEST_HASH_ALREADY) as a passing failure. */
    *later = peer->exe_sha256_later;
    *problem = peer->exe_sha256_problem;
    return peer->has_exe_sha256 ? peer->exe_sha256 : NULL;
}

/* The identity attestation and the rules give this client; false after refusing it. */
static bool client_identity(struct mt_server *server, struct mt_server_client *client,
                            char *spiffe_id, size_t capacity)
{
    const struct mt_attest_peer *peer = &client->peer;
    struct mt_agent_caller caller = {
        .pid = peer->pid,
        .uid = peer->uid,
        .gid = peer->gid,
        .exe = peer->has_exe ? peer->exe : NULL,
        .exe_device = peer->exe_device,
        .exe_inode = peer->exe_inode,
        .other_mount_namespace = peer->other_mount_namespace,
        .exe_sha256 = peer->has_exe_sha256 ? peer->exe_sha256 : NULL,
        .exe_sha256_problem = peer->exe_sha256_problem,
        .hash_exe = client_exe_sha256,
        .hash_context = client,
    };
    struct mt_agent_match match;
    mt_result result =
        mt_agent_config_resolve_id(server->config, &caller, spiffe_id, capacity, &match);
    atomic_fetch_add(&mt_agent_stats.exe_mismatches, match.exe_mismatches);
    if (result.error == MT_ERR_WOULD_BLOCK) {
        /* A sha256 rule may name the caller, but its executable cannot be hashed now (the
         * hashing budget is spent, or the agent is short of descriptors or memory): no identity
         * rather than a guess (another rule's, the default). */
        client_refuse(client, MT_PROTO_ERROR_INTERNAL,
                      "agent busy: the caller's executable cannot be hashed for a sha256 rule "
                      "for now (hashing budget spent or a passing failure); retry in a minute");
        return false;
    }
    if (!mt_result_is_ok(result)) {
        client_refuse(client, MT_PROTO_ERROR_DENIED, "no valid identity for this caller");
        return false;
    }
    if (match.rule != NULL)
        mt_log_debug("pid %ld matched the rule at %s:%u", (long)peer->pid, server->config->source,
                     match.rule->line);
    return true;
}

/* ----------------------------------------------------------------------------------------- */
/* What was issued to whom, and STATUS */

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
static void issued_sweep(struct mt_server *server)
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

static void remember_issued(struct mt_server *server, const struct mt_attest_peer *peer,
                            const char *spiffe_id, time_t expiry)
{
    if (!peer->has_start_time)
        return;
    unsigned long long start_time = peer->start_time;
    struct mt_server_issued *entry = issued_find(server, peer->pid, start_time);
    if (entry == NULL && server->issued_count == MT_SERVER_ISSUED_MAX)
        issued_sweep(server);
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
        status_record(
            builder, "connection\t%ld\t%d\t%s\t%s\t%s\t%s\t%s\t%lld\t%llu\t%llu",
            (long)process->pid, (int)connection->fd, connection->inbound ? "inbound" : "outbound",
            connection->tls ? "true" : "false", field_text(connection->local, local, sizeof(local)),
            field_text(connection->peer, peer, sizeof(peer)),
            field_text(connection->peer_id, peer_id, sizeof(peer_id)),
            (long long)connection->opened_at_ms, (unsigned long long)connection->read_bytes,
            (unsigned long long)connection->write_bytes);
    }
}

static void handle_status_request(struct mt_server *server, struct mt_server_client *client)
{
    /* Root and the agent's own user see the node; anyone else sees their own processes. */
    bool sees_all = client->peer.uid == 0 || client->peer.uid == geteuid();
    /* One process's file at a time, each bounded (metrics/reader.h): the reply is, anyway. */
    struct mt_metrics_listing listing;
    if (!mt_result_is_ok(mt_metrics_listing_read(&server->metrics_directory, &listing)))
        mt_metrics_listing_free(&listing);
    issued_sweep(server);
    uint8_t *reply = malloc(REPLY_MAX);
    bool *listed = calloc(server->issued_count + 1, sizeof(*listed));
    if (reply == NULL || listed == NULL) {
        free(reply);
        free(listed);
        mt_metrics_listing_free(&listing);
        client_refuse(client, MT_PROTO_ERROR_INTERNAL, "out of memory");
        return;
    }
    struct status_builder builder = {.omitted = 0};
    mt_proto_writer_begin(&builder.writer, reply, REPLY_MAX, MT_PROTO_STATUS_RESPONSE);
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
        client_refuse(client, MT_PROTO_ERROR_INTERNAL, "reply does not fit");
        return;
    }
    mt_log_debug("status for pid %ld uid %u", (long)client->peer.pid, (unsigned)client->peer.uid);
    client_reply(client, reply, length);
}

static void handle_id_request(struct mt_server *server, struct mt_server_client *client)
{
    char spiffe_id[MT_SPIFFE_ID_MAX + 1];
    if (!client_identity(server, client, spiffe_id, sizeof(spiffe_id)))
        return;
    uint8_t *reply = malloc(REPLY_MAX);
    if (reply == NULL) {
        client_refuse(client, MT_PROTO_ERROR_INTERNAL, "out of memory");
        return;
    }
    struct mt_proto_writer writer;
    size_t length = 0;
    mt_proto_writer_begin(&writer, reply, REPLY_MAX, MT_PROTO_ID_RESPONSE);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_SPIFFE_ID, spiffe_id, strlen(spiffe_id));
    if (!mt_result_is_ok(mt_proto_writer_finish(&writer, &length))) {
        free(reply);
        client_refuse(client, MT_PROTO_ERROR_INTERNAL, "reply does not fit");
        return;
    }
    mt_log_info("told pid %ld uid %u exe %s its identity %s", (long)client->peer.pid,
                (unsigned)client->peer.uid, exe_text(&client->peer), spiffe_id);
    client_reply(client, reply, length);
}

static void handle_svid_request(struct mt_server *server, struct mt_server_client *client,
                                const struct mt_proto_frame *frame)
{
    struct mt_proto_svid_request request;
    if (!mt_result_is_ok(mt_proto_decode_svid_request(frame, &request))) {
        client_refuse(client, MT_PROTO_ERROR_MALFORMED, "SVID request malformed (needs one CSR)");
        return;
    }
    char spiffe_id[MT_SPIFFE_ID_MAX + 1];
    if (!client_identity(server, client, spiffe_id, sizeof(spiffe_id)))
        return;

    uint8_t leaf[MT_X509_CERT_DER_MAX];
    size_t leaf_length = 0;
    time_t not_after = 0;
    const struct mt_ca *ca = server->issuer->ca;
    mt_result result =
        mt_ca_issue(ca, request.csr.data, request.csr.length, spiffe_id, time(NULL),
                    server->config->lifetime_seconds, leaf, sizeof(leaf), &leaf_length, &not_after);
    if (!mt_result_is_ok(result)) {
        if (result.error == MT_ERR_CERT_PARSE)
            client_refuse(
                client, MT_PROTO_ERROR_BAD_CSR,
                "CSR rejected: unparsable, bad self-signature, or not an ECDSA P-256 key");
        else
            client_refuse(client, MT_PROTO_ERROR_INTERNAL, mt_error_message(result.error));
        return;
    }

    uint8_t *reply = malloc(REPLY_MAX);
    if (reply == NULL) {
        client_refuse(client, MT_PROTO_ERROR_INTERNAL, "out of memory");
        return;
    }
    struct mt_proto_writer writer;
    size_t length = 0;
    mt_proto_writer_begin(&writer, reply, REPLY_MAX, MT_PROTO_SVID_RESPONSE);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_SPIFFE_ID, spiffe_id, strlen(spiffe_id));
    mt_proto_writer_put(&writer, MT_PROTO_TAG_CERT, leaf, leaf_length);
    for (size_t i = 0; i < ca->chain_length; i++)
        mt_proto_writer_put(&writer, MT_PROTO_TAG_CERT, ca->chain[i].der, ca->chain[i].length);
    for (size_t i = 0; i < ca->anchor_count; i++)
        mt_proto_writer_put(&writer, MT_PROTO_TAG_BUNDLE, ca->anchors[i].der,
                            ca->anchors[i].length);
    mt_proto_writer_put_u64(&writer, MT_PROTO_TAG_EXPIRY, (uint64_t)not_after);
    if (!mt_result_is_ok(mt_proto_writer_finish(&writer, &length))) {
        free(reply);
        client_refuse(client, MT_PROTO_ERROR_INTERNAL, "reply does not fit");
        return;
    }
    char expires[32];
    format_utc(not_after, expires, sizeof(expires));
    mt_log_info("issued %s to pid %ld uid %u exe %s, expires %s", spiffe_id, (long)client->peer.pid,
                (unsigned)client->peer.uid, exe_text(&client->peer), expires);
    atomic_fetch_add(&mt_agent_stats.svids_issued, 1);
    remember_issued(server, &client->peer, spiffe_id, not_after);
    client_reply(client, reply, length);
}

/* Creates the caller's metrics file and sends it along with the reply (metrics/directory.h). */
static void handle_metrics_file_request(struct mt_server *server, struct mt_server_client *client)
{
    char text[PATH_MAX + 160];
    struct mt_text reason = mt_text_on(text, sizeof(text));
    int fd = -1;
    unsigned long long start_time = 0;
    mt_result result = mt_agent_metrics_file_create(&server->metrics_directory, &client->peer, &fd,
                                                    &start_time, &reason);
    if (!mt_result_is_ok(result)) {
        client_refuse(client,
                      result.error == MT_ERR_AGENT_REFUSED ? MT_PROTO_ERROR_DENIED
                                                           : MT_PROTO_ERROR_INTERNAL,
                      text);
        return;
    }
    uint8_t *reply = malloc(REPLY_MAX);
    struct mt_proto_writer writer;
    size_t length = 0;
    mt_proto_writer_begin(&writer, reply, REPLY_MAX, MT_PROTO_METRICS_FILE_RESPONSE);
    mt_proto_writer_put_u32(&writer, MT_PROTO_TAG_PID, (uint32_t)client->peer.pid);
    mt_proto_writer_put_u64(&writer, MT_PROTO_TAG_START_TIME, start_time);
    if (reply == NULL || !mt_result_is_ok(mt_proto_writer_finish(&writer, &length))) {
        free(reply);
        close(fd);
        client_refuse(client, MT_PROTO_ERROR_INTERNAL, "out of memory");
        return;
    }
    mt_log_info("gave pid %ld uid %u exe %s its metrics file %s/%ld-%llu.metrics",
                (long)client->peer.pid, (unsigned)client->peer.uid, exe_text(&client->peer),
                server->metrics_directory.path, (long)client->peer.pid, start_time);
    client->passed_fd = fd;
    client->has_passed_fd = true;
    client_reply(client, reply, length);
}

static void handle_frame(struct mt_server *server, struct mt_server_client *client,
                         const struct mt_proto_frame *frame)
{
    char text[64];
    switch (frame->type) {
    case MT_PROTO_SVID_REQUEST:
        handle_svid_request(server, client, frame);
        break;
    case MT_PROTO_ID_REQUEST:
        handle_id_request(server, client);
        break;
    case MT_PROTO_STATUS_REQUEST:
        handle_status_request(server, client);
        break;
    case MT_PROTO_METRICS_FILE_REQUEST:
        handle_metrics_file_request(server, client);
        break;
    default:
        snprintf(text, sizeof(text), "message type %u is not a request", (unsigned)frame->type);
        client_refuse(client, MT_PROTO_ERROR_UNSUPPORTED, text);
        break;
    }
}

/* A frame the codec rejected from its header: say why, then close. */
static void refuse_header(struct mt_server_client *client, enum mt_error error)
{
    char text[96];
    switch (error) {
    case MT_ERR_PROTO_VERSION:
        snprintf(text, sizeof(text), "protocol version %u not supported (this agent speaks %u)",
                 (unsigned)client->header[2], (unsigned)MT_PROTO_VERSION);
        client_refuse(client, MT_PROTO_ERROR_UNSUPPORTED, text);
        break;
    case MT_ERR_PROTO_OVERSIZED:
        snprintf(text, sizeof(text), "declared payload larger than %u bytes",
                 (unsigned)MT_PROTO_MAX_PAYLOAD);
        client_refuse(client, MT_PROTO_ERROR_MALFORMED, text);
        break;
    default:
        client_refuse(client, MT_PROTO_ERROR_MALFORMED, "not an agent protocol frame");
        break;
    }
}

/* The payload length from a header the codec has accepted (so it is within bounds). */
static size_t declared_frame_size(const uint8_t header[MT_PROTO_HEADER_SIZE])
{
    uint32_t payload = (uint32_t)header[4] << 24 | (uint32_t)header[5] << 16 |
                       (uint32_t)header[6] << 8 | (uint32_t)header[7];
    return MT_PROTO_HEADER_SIZE + (size_t)payload;
}

static void client_read(struct mt_server *server, struct mt_server_client *client)
{
    for (;;) {
        uint8_t *buffer = client->input != NULL ? client->input : client->header;
        size_t expected = client->input != NULL ? client->input_size : MT_PROTO_HEADER_SIZE;
        ssize_t got = recv(client->fd, buffer + client->received, expected - client->received, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (got <= 0) {
            if (client->received > 0 || got < 0)
                mt_log_limited(MT_LOG_WARN,
                               "closed connection from pid %ld uid %u: request truncated after "
                               "%zu bytes (%s)",
                               (long)client->peer.pid, (unsigned)client->peer.uid, client->received,
                               got < 0 ? strerror(errno) : "peer closed");
            client_close(client);
            return;
        }
        client->received += (size_t)got;

        struct mt_proto_frame frame;
        size_t consumed = 0;
        mt_result result = mt_proto_frame_parse(buffer, client->received, &frame, &consumed);
        if (!mt_result_is_ok(result)) {
            refuse_header(client, result.error);
            return;
        }
        if (consumed > 0) {
            handle_frame(server, client, &frame);
            return;
        }
        if (client->input == NULL && client->received == MT_PROTO_HEADER_SIZE) {
            client->input_size = declared_frame_size(client->header);
            client->input = malloc(client->input_size);
            if (client->input == NULL) {
                client_refuse(client, MT_PROTO_ERROR_INTERNAL, "out of memory");
                return;
            }
            memcpy(client->input, client->header, MT_PROTO_HEADER_SIZE);
        }
    }
}

/* A client past its deadline: a best-effort ERROR, a log line, and the connection closed. */
static void client_expire(struct mt_server_client *client)
{
    if (client->state == CLIENT_READING) {
        mt_log_limited(MT_LOG_WARN,
                       "closed connection from pid %ld uid %u exe %s: no complete request "
                       "within %d ms (%zu bytes received)",
                       (long)client->peer.pid, (unsigned)client->peer.uid, exe_text(&client->peer),
                       MT_SERVER_REQUEST_TIMEOUT_MS, client->received);
        uint8_t frame[128];
        size_t length = build_error(frame, sizeof(frame), MT_PROTO_ERROR_MALFORMED,
                                    "timed out waiting for a complete request");
        if (length > 0)
            (void)send(client->fd, frame, length, MSG_NOSIGNAL | MSG_DONTWAIT);
    } else {
        mt_log_limited(
            MT_LOG_WARN, "closed connection from pid %ld uid %u: reply not read within %d ms",
            (long)client->peer.pid, (unsigned)client->peer.uid, MT_SERVER_REQUEST_TIMEOUT_MS);
    }
    client_close(client);
}

/* Best effort, never blocking: tells a connection closed unread why, so its client can say so. */
static void send_refusal(int fd, const char *text)
{
    uint8_t frame[192];
    size_t length = build_error(frame, sizeof(frame), MT_PROTO_ERROR_DENIED, text);
    if (length > 0)
        (void)send(fd, frame, length, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/*
 * The slot for a new connection of uid, per the fair share (fair_share.h); NULL after refusing
 * it. An eviction closes the idle connection it displaces.
 */
static struct mt_server_client *fair_slot(struct mt_server *server, int fd,
                                          const struct ucred *credentials, long long now)
{
    struct mt_fair_share_slot view[MT_SERVER_CLIENTS_MAX];
    for (size_t i = 0; i < MT_SERVER_CLIENTS_MAX; i++) {
        const struct mt_server_client *client = &server->clients[i];
        view[i] = (struct mt_fair_share_slot){.used = client->state != CLIENT_FREE,
                                              .waiting = client->state == CLIENT_READING,
                                              .uid = client->peer.uid,
                                              .since_ms = client->accepted_ms};
    }
    struct mt_fair_share_choice choice;
    mt_fair_share_decide(view, MT_SERVER_CLIENTS_MAX, credentials->uid, &choice);
    char text[160];
    switch (choice.decision) {
    case MT_FAIR_SHARE_ADMIT:
        return &server->clients[choice.slot];
    case MT_FAIR_SHARE_EVICT: {
        struct mt_server_client *evicted = &server->clients[choice.slot];
        mt_log_limited(MT_LOG_WARN,
                       "closed the idle connection of pid %ld uid %u (uid %u holds %zu of %d "
                       "connections, %lld ms idle) to serve pid %ld uid %u",
                       (long)evicted->peer.pid, (unsigned)evicted->peer.uid,
                       (unsigned)choice.heaviest_uid, choice.heaviest_held, MT_SERVER_CLIENTS_MAX,
                       now - evicted->accepted_ms, (long)credentials->pid,
                       (unsigned)credentials->uid);
        snprintf(text, sizeof(text),
                 "closed unread: uid %u holds %zu of the agent's %d connections and another "
                 "user needed one; send the request at once after connecting",
                 (unsigned)choice.heaviest_uid, choice.heaviest_held, MT_SERVER_CLIENTS_MAX);
        send_refusal(evicted->fd, text);
        client_close(evicted);
        atomic_fetch_add(&mt_agent_stats.connections_refused[MT_AGENT_REFUSAL_EVICTED], 1);
        return evicted;
    }
    case MT_FAIR_SHARE_REFUSE_OVER_SHARE:
        mt_log_limited(MT_LOG_WARN,
                       "refused pid %ld uid %u: the agent's %d connections are in use and uid %u "
                       "holds %zu, its share; it is served as its own connections finish",
                       (long)credentials->pid, (unsigned)credentials->uid, MT_SERVER_CLIENTS_MAX,
                       (unsigned)credentials->uid, choice.held);
        snprintf(text, sizeof(text),
                 "agent busy: uid %u already holds %zu of its %d connections; retry after one "
                 "of them finishes",
                 (unsigned)credentials->uid, choice.held, MT_SERVER_CLIENTS_MAX);
        send_refusal(fd, text);
        atomic_fetch_add(&mt_agent_stats.connections_refused[MT_AGENT_REFUSAL_OVER_SHARE], 1);
        return NULL;
    case MT_FAIR_SHARE_REFUSE_FULL:
    default:
        mt_log_limited(MT_LOG_WARN, "refused pid %ld uid %u: all %d connections are in use",
                       (long)credentials->pid, (unsigned)credentials->uid, MT_SERVER_CLIENTS_MAX);
        snprintf(text, sizeof(text), "agent busy: all %d connections are in use; retry shortly",
                 MT_SERVER_CLIENTS_MAX);
        send_refusal(fd, text);
        atomic_fetch_add(&mt_agent_stats.connections_refused[MT_AGENT_REFUSAL_TABLE_FULL], 1);
        return NULL;
    }
}

static void accept_clients(struct mt_server *server)
{
    for (int burst = 0; burst < ACCEPT_BURST; burst++) {
        int fd = accept4(server->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            /* EMFILE and friends leave the listener readable; poll would spin without a pause. */
            mt_log_limited(MT_LOG_WARN, "cannot accept a connection: %s; pausing %d ms",
                           strerror(errno), ACCEPT_PAUSE_MS);
            server->accept_paused_until_ms = now_ms() + ACCEPT_PAUSE_MS;
            return;
        }
        /* Only SO_PEERCRED before a slot is granted: a flood must not cost a /proc walk each. */
        struct ucred credentials = {0};
        socklen_t length = sizeof(credentials);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) {
            mt_log_limited(MT_LOG_WARN,
                           "closed a connection whose peer credentials cannot be read: %s",
                           strerror(errno));
            close(fd);
            continue;
        }
        long long now = now_ms();
        struct mt_server_client *client = fair_slot(server, fd, &credentials, now);
        if (client == NULL) {
            close(fd);
            continue;
        }
        /* No hashing here: only a sha256 rule that fits the caller hashes, when it asks. */
        struct mt_attest_peer peer;
        if (!mt_result_is_ok(mt_attest_identify(fd, &peer))) {
            mt_log_limited(MT_LOG_WARN,
                           "closed a connection whose peer credentials cannot be read: %s",
                           strerror(errno));
            close(fd);
            continue;
        }
        client->fd = fd;
        client->state = CLIENT_READING;
        client->peer = peer;
        client->accepted_ms = now;
        client->deadline_ms = now + MT_SERVER_REQUEST_TIMEOUT_MS;
        mt_log_debug("connection from pid %ld uid %u exe %s", (long)peer.pid, (unsigned)peer.uid,
                     exe_text(&peer));
    }
}

/* ----------------------------------------------------------------------------------------- */
/* The loop */

static int poll_timeout(const struct mt_server *server, long long now)
{
    /* The issuer's files are polled, so the loop wakes at least that often. */
    long long earliest = now + mt_issuer_poll_timeout(server->issuer, now);
    if (server->next_sweep_ms < earliest)
        earliest = server->next_sweep_ms;
    if (server->accept_paused_until_ms > now)
        earliest = server->accept_paused_until_ms;
    for (size_t i = 0; i < MT_SERVER_CLIENTS_MAX; i++) {
        const struct mt_server_client *client = &server->clients[i];
        if (client->state != CLIENT_FREE && (earliest < 0 || client->deadline_ms < earliest))
            earliest = client->deadline_ms;
    }
    if (earliest < 0)
        return -1;
    return earliest <= now ? 0 : (int)(earliest - now);
}

/*
 * Removes the metrics files of dead processes and forgets what was issued to them. The sweep
 * works on the directory held open since startup: if its path was since renamed and replaced
 * (say by a symbolic link to the agent's state directory), the descriptor still names the real
 * directory and nothing at the new target is touched. That is said once, for the operator.
 */
static void sweep_metrics(struct mt_server *server, long long now)
{
    server->next_sweep_ms = now + MT_SERVER_SWEEP_MS;
    bool moved = server->metrics_directory.fd >= 0 &&
                 !mt_metrics_directory_is_at_path(&server->metrics_directory);
    if (moved && !server->metrics_directory_moved)
        mt_log_warn("metrics directory %s was moved or replaced while the agent ran (whoever can "
                    "write its parent did it): the agent keeps using the directory it created and "
                    "touches nothing at that path now; find out who changed it, restore it, and "
                    "restart the agent",
                    server->metrics_directory.path);
    server->metrics_directory_moved = moved;
    size_t removed = mt_metrics_sweep(&server->metrics_directory);
    if (removed > 0)
        mt_log_debug("removed %zu metrics file(s) of exited processes", removed);
    issued_sweep(server);
}

MT_RESULT mt_server_run(struct mt_server *server, int signal_fd, int *signal_number)
{
    MT_ENSURE_REF(server);
    MT_ENSURE_REF(signal_number);
    MT_ENSURE(server->clients != NULL, MT_ERR_INVALID_ARGUMENT);
    struct pollfd fds[2 + MT_SERVER_CLIENTS_MAX];
    struct mt_server_client *polled[2 + MT_SERVER_CLIENTS_MAX];

    for (;;) {
        long long now = now_ms();
        nfds_t count = 0;
        fds[count++] = (struct pollfd){.fd = signal_fd, .events = POLLIN};
        bool accepting = server->accept_paused_until_ms <= now;
        fds[count++] = (struct pollfd){.fd = accepting ? server->listen_fd : -1, .events = POLLIN};
        for (size_t i = 0; i < MT_SERVER_CLIENTS_MAX; i++) {
            struct mt_server_client *client = &server->clients[i];
            if (client->state == CLIENT_FREE)
                continue;
            short events = client->state == CLIENT_READING ? POLLIN : POLLOUT;
            polled[count] = client;
            fds[count++] = (struct pollfd){.fd = client->fd, .events = events};
        }

        int ready = poll(fds, count, poll_timeout(server, now));
        if (ready < 0 && errno == EINTR)
            continue;
        MT_ENSURE(ready >= 0, MT_ERR_IO);

        if (fds[0].revents & POLLIN) {
            struct signalfd_siginfo info;
            if (read(signal_fd, &info, sizeof(info)) == (ssize_t)sizeof(info)) {
                *signal_number = (int)info.ssi_signo;
                return MT_OK_RESULT;
            }
        }
        for (nfds_t i = 2; i < count; i++) {
            struct mt_server_client *client = polled[i];
            if (fds[i].revents == 0 || client->state == CLIENT_FREE)
                continue;
            if (client->state == CLIENT_READING)
                client_read(server, client);
            else
                client_write(client);
        }
        if (fds[1].revents & POLLIN)
            accept_clients(server);

        now = now_ms();
        for (size_t i = 0; i < MT_SERVER_CLIENTS_MAX; i++) {
            struct mt_server_client *client = &server->clients[i];
            if (client->state != CLIENT_FREE && client->deadline_ms <= now)
                client_expire(client);
        }
        mt_issuer_poll(server->issuer, now);
        mt_log_limits_flush(mt_sys_now_ms());
        if (now >= server->next_sweep_ms)
            sweep_metrics(server, now);
    }
}

void mt_server_close(struct mt_server *server)
{
    if (server == NULL)
        return;
    if (server->clients != NULL) {
        for (size_t i = 0; i < MT_SERVER_CLIENTS_MAX; i++)
            client_close(&server->clients[i]);
        free(server->clients);
        server->clients = NULL;
    }
    if (server->issued != NULL) {
        for (size_t i = 0; i < server->issued_count; i++)
            issued_clear(&server->issued[i]);
        free(server->issued);
        server->issued = NULL;
        server->issued_count = 0;
    }
    mt_metrics_directory_close(&server->metrics_directory);
    if (server->listen_fd >= 0) {
        close(server->listen_fd);
        server->listen_fd = -1;
        /* Another agent may have replaced the file since (judging ours stale); leave theirs. */
        struct stat status;
        if (lstat(server->socket_path, &status) == 0 && status.st_dev == server->socket_device &&
            status.st_ino == server->socket_inode)
            unlink(server->socket_path);
    }
}
