/*
 * The agent's clients: accepting them under the fair share (fair_share.h), reading one request
 * frame from each, writing one reply or refusal, and the deadlines that end them.
 *
 * Owns the client table and every byte exchanged with a client. Callers are any local process,
 * so nothing here trusts a length or a state a client controls: a client's buffer is sized from a
 * header the codec has already bounded, each client has its own deadline, and no call blocks on
 * one client while others wait. It must never exit or stop serving others on a client's
 * behaviour; lines a client can cause are rate-limited (util/log.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../util/log.h"
#include "../util/sys.h"
#include "agent_metrics.h"
#include "fair_share.h"
#include "server_internal.h"

/* Accepts per wake-up, so that a connection flood cannot starve clients already being served. */
#define ACCEPT_BURST 64
#define ACCEPT_PAUSE_MS 100

const char *mt_server_client_exe(const struct mt_server_client *client)
{
    return client->peer.has_exe ? client->peer.exe : "unknown";
}

const char *mt_server_client_supervision(const struct mt_server_client *client, char *text,
                                         size_t capacity)
{
    if (client->peer.supervisor_pid == 0)
        return "";
    snprintf(text, capacity, " (supervised by pid %ld)", (long)client->peer.supervisor_pid);
    return text;
}

void mt_server_client_close(struct mt_server_client *client)
{
    if (client->state == MT_SERVER_CLIENT_FREE)
        return;
    close(client->fd);
    if (client->has_passed_fd)
        close(client->passed_fd);
    if (client->has_subject_fd)
        close(client->subject_fd);
    free(client->input);
    free(client->output);
    memset(client, 0, sizeof(*client));
    client->fd = -1;
}

/* send(), with the descriptor to pass attached to the first bytes that go out. */
static ssize_t client_send(struct mt_server_client *client)
{
    ssize_t sent = mt_sys_send_fd(client->fd, client->output + client->output_sent,
                                  client->output_length - client->output_sent,
                                  client->has_passed_fd ? client->passed_fd : -1, MSG_NOSIGNAL);
    if (sent > 0 && client->has_passed_fd) {
        close(client->passed_fd);
        client->has_passed_fd = false;
    }
    return sent;
}

/* Sends what is left of the reply; closes the client once all of it is out. */
void mt_server_client_write(struct mt_server_client *client)
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
            mt_server_client_close(client);
            return;
        }
        client->output_sent += (size_t)sent;
    }
    mt_server_client_close(client);
}

/* Takes over reply (a frame of length bytes, heap-allocated) and starts sending it. */
void mt_server_client_reply(struct mt_server_client *client, uint8_t *reply, size_t length)
{
    free(client->input);
    client->input = NULL;
    client->output = reply;
    client->output_length = length;
    client->output_sent = 0;
    client->state = MT_SERVER_CLIENT_WRITING;
    client->deadline_ms = mt_sys_now_ms() + MT_SERVER_REQUEST_TIMEOUT_MS;
    mt_server_client_write(client);
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
void mt_server_client_refuse(struct mt_server_client *client, enum mt_proto_error_code code,
                             const char *text)
{
    char supervision[48];
    mt_log_limited(MT_LOG_WARN, "refused pid %ld uid %u exe %s%s: %s", (long)client->peer.pid,
                   (unsigned)client->peer.uid, mt_server_client_exe(client),
                   mt_server_client_supervision(client, supervision, sizeof(supervision)), text);
    if (code >= MT_PROTO_ERROR_MALFORMED && code <= MT_PROTO_ERROR_INTERNAL)
        atomic_fetch_add(&mt_agent_stats.refused[code], 1);
    size_t capacity = MT_PROTO_HEADER_SIZE + 2 * MT_PROTO_TLV_HEADER_SIZE + 4 + strlen(text);
    uint8_t *reply = malloc(capacity);
    size_t length = reply != NULL ? build_error(reply, capacity, code, text) : 0;
    if (length == 0) {
        free(reply);
        mt_server_client_close(client);
        return;
    }
    mt_server_client_reply(client, reply, length);
}

/* A frame the codec rejected from its header: say why, then close. */
static void refuse_header(struct mt_server_client *client, enum mt_error error)
{
    char text[96];
    switch (error) {
    case MT_ERR_PROTO_VERSION:
        snprintf(text, sizeof(text),
                 "protocol version %u not supported (this agent speaks %u to %u)",
                 (unsigned)client->header[2], (unsigned)MT_PROTO_VERSION,
                 (unsigned)MT_PROTO_VERSION_MAX);
        mt_server_client_refuse(client, MT_PROTO_ERROR_UNSUPPORTED, text);
        break;
    case MT_ERR_PROTO_OVERSIZED:
        snprintf(text, sizeof(text), "declared payload larger than %u bytes",
                 (unsigned)MT_PROTO_MAX_PAYLOAD);
        mt_server_client_refuse(client, MT_PROTO_ERROR_MALFORMED, text);
        break;
    default:
        mt_server_client_refuse(client, MT_PROTO_ERROR_MALFORMED, "not an agent protocol frame");
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

/*
 * Keeps the first descriptor a request brings (a SUBJECT's pidfd: identity/proto.h) and closes
 * any other at once, counting it, so that no client can fill the agent's descriptor table.
 */
static void take_descriptors(struct mt_server_client *client, struct msghdr *message)
{
    if (message->msg_flags & MSG_CTRUNC)
        client->extra_fds++; /* the kernel closed those that did not fit */
    for (struct cmsghdr *header = CMSG_FIRSTHDR(message); header != NULL;
         header = CMSG_NXTHDR(message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof(fd));
            if (!client->has_subject_fd) {
                client->subject_fd = fd;
                client->has_subject_fd = true;
            } else {
                close(fd);
                client->extra_fds++;
            }
        }
    }
}

/* recv() of request bytes, with the descriptors that travel with them (take_descriptors). */
static ssize_t receive_request(struct mt_server_client *client, uint8_t *data, size_t length)
{
    union {
        struct cmsghdr header;
        char bytes[CMSG_SPACE(4 * sizeof(int))];
    } control;
    struct iovec vector = {data, length};
    struct msghdr message = {.msg_iov = &vector,
                             .msg_iovlen = 1,
                             .msg_control = control.bytes,
                             .msg_controllen = sizeof(control.bytes)};
    ssize_t got = recvmsg(client->fd, &message, MSG_CMSG_CLOEXEC);
    if (got >= 0)
        take_descriptors(client, &message);
    return got;
}

void mt_server_client_read(struct mt_server *server, struct mt_server_client *client)
{
    for (;;) {
        uint8_t *buffer = client->input != NULL ? client->input : client->header;
        size_t expected = client->input != NULL ? client->input_size : MT_PROTO_HEADER_SIZE;
        ssize_t got =
            receive_request(client, buffer + client->received, expected - client->received);
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
            mt_server_client_close(client);
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
            mt_server_request_handle(server, client, &frame);
            return;
        }
        if (client->input == NULL && client->received == MT_PROTO_HEADER_SIZE) {
            client->input_size = declared_frame_size(client->header);
            client->input = malloc(client->input_size);
            if (client->input == NULL) {
                mt_server_client_refuse(client, MT_PROTO_ERROR_INTERNAL, "out of memory");
                return;
            }
            memcpy(client->input, client->header, MT_PROTO_HEADER_SIZE);
        }
    }
}

/* A client past its deadline: a best-effort ERROR, a log line, and the connection closed. */
void mt_server_client_expire(struct mt_server_client *client)
{
    if (client->state == MT_SERVER_CLIENT_READING) {
        mt_log_limited(MT_LOG_WARN,
                       "closed connection from pid %ld uid %u exe %s: no complete request "
                       "within %d ms (%zu bytes received)",
                       (long)client->peer.pid, (unsigned)client->peer.uid,
                       mt_server_client_exe(client), MT_SERVER_REQUEST_TIMEOUT_MS,
                       client->received);
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
    mt_server_client_close(client);
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
        view[i] = (struct mt_fair_share_slot){.used = client->state != MT_SERVER_CLIENT_FREE,
                                              .waiting = client->state == MT_SERVER_CLIENT_READING,
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
        mt_server_client_close(evicted);
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

void mt_server_clients_accept(struct mt_server *server)
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
            server->accept_paused_until_ms = mt_sys_now_ms() + ACCEPT_PAUSE_MS;
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
        long long now = mt_sys_now_ms();
        struct mt_server_client *client = fair_slot(server, fd, &credentials, now);
        if (client == NULL) {
            close(fd);
            continue;
        }
        /* No hashing here: only a sha256 rule that fits the caller hashes, when it asks. */
        struct mt_attest_peer peer;
        if (!mt_result_is_ok(mt_attest_identify_credentials(fd, &credentials, &peer))) {
            mt_log_limited(MT_LOG_WARN,
                           "closed a connection whose peer credentials cannot be read: %s",
                           strerror(errno));
            close(fd);
            continue;
        }
        client->fd = fd;
        client->state = MT_SERVER_CLIENT_READING;
        client->peer = peer;
        client->accepted_ms = now;
        client->deadline_ms = now + MT_SERVER_REQUEST_TIMEOUT_MS;
        mt_log_debug("connection from pid %ld uid %u exe %s", (long)peer.pid, (unsigned)peer.uid,
                     mt_server_client_exe(client));
    }
}
