/*
 * `meshtls status`: asks the agent (STATUS_REQUEST, identity/proto.h) and prints its answer.
 *
 * The agent, not this command, reads the per-process metrics files: it already checks each file
 * against the kernel (pid, start time, owner) and it alone knows which identity it issued to
 * which process, so the listing joins both; it also decides what the caller may see (root and
 * the agent's user: every process; others: their own). This file owns only the request and the
 * presentation; it must never trust the reply's shape (records are parsed field by field and
 * unknown kinds are skipped) and never print a control character from it.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../config/config.h"
#include "../identity/peer.h"
#include "../identity/proto.h"
#include "../util/sys.h"
#include "../util/text.h"
#include "status.h"

#define FIELDS_MAX 12
#define TIMEOUT_MS 5000

/* Waits for events on fd until deadline; false on timeout or error. */
static bool wait_for(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - mt_sys_now_ms();
        if (left <= 0)
            return false;
        struct pollfd entry = {.fd = fd, .events = events};
        int ready = poll(&entry, 1, (int)left);
        if (ready > 0)
            return true;
        if (ready < 0 && errno != EINTR)
            return false;
    }
}

/* Sends a STATUS_REQUEST and reads the whole reply frame into buffer. */
static bool request_status(const char *socket_path, uid_t agent_uid, uint8_t *buffer,
                           size_t capacity, size_t *length, struct mt_text *reason)
{
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(socket_path) >= sizeof(address.sun_path)) {
        mt_text_set(reason, "socket path %s is too long", socket_path);
        return false;
    }
    memcpy(address.sun_path, socket_path, strlen(socket_path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    bool ok = false;
    long long deadline = mt_sys_now_ms() + TIMEOUT_MS;
    uint8_t request[MT_PROTO_HEADER_SIZE];
    struct mt_proto_writer writer;
    size_t request_length = 0;
    mt_proto_writer_begin(&writer, request, sizeof(request), MT_PROTO_STATUS_REQUEST);
    if (fd < 0 || !mt_result_is_ok(mt_proto_writer_finish(&writer, &request_length))) {
        mt_text_set(reason, "cannot create a socket: %s", strerror(errno));
        goto out;
    }
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0 &&
        !(errno == EINPROGRESS && wait_for(fd, POLLOUT, deadline))) {
        mt_text_set(reason, "agent at %s unreachable: %s (is meshtls-agent running?)", socket_path,
                    strerror(errno));
        goto out;
    }
    /* Before the request: an impostor learns nothing and shows nothing (identity/peer.h). */
    if (!mt_result_is_ok(mt_identity_peer_check(fd, socket_path, agent_uid, reason)))
        goto out;
    if (send(fd, request, request_length, MSG_NOSIGNAL) != (ssize_t)request_length) {
        mt_text_set(reason, "cannot send to the agent at %s: %s", socket_path, strerror(errno));
        goto out;
    }
    *length = 0;
    for (;;) {
        struct mt_proto_frame frame;
        size_t consumed = 0;
        if (!mt_result_is_ok(mt_proto_frame_parse(buffer, *length, &frame, &consumed))) {
            mt_text_set(reason, "the agent at %s sent a malformed reply", socket_path);
            goto out;
        }
        if (consumed > 0)
            break;
        if (!wait_for(fd, POLLIN, deadline)) {
            mt_text_set(reason, "no reply from the agent at %s within %d ms", socket_path,
                        TIMEOUT_MS);
            goto out;
        }
        ssize_t got = recv(fd, buffer + *length, capacity - *length, 0);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got <= 0) {
            mt_text_set(reason,
                        "the agent at %s closed the connection (an agent "
                        "older than `meshtls status`?)",
                        socket_path);
            goto out;
        }
        *length += (size_t)got;
    }
    ok = true;

out:
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Splits a record into fields (in place, in a copy); control characters become '?'. */
static size_t split_record(const struct mt_proto_blob *record, char *copy, size_t capacity,
                           char *fields[FIELDS_MAX])
{
    size_t length = record->length < capacity - 1 ? record->length : capacity - 1;
    for (size_t i = 0; i < length; i++) {
        unsigned char c = record->data[i];
        copy[i] = c == '\t' ? '\t' : (c < 0x20 || c == 0x7f ? '?' : (char)c);
    }
    copy[length] = '\0';
    size_t count = 0;
    char *cursor = copy;
    while (count < FIELDS_MAX) {
        fields[count++] = cursor;
        char *tab = strchr(cursor, '\t');
        if (tab == NULL)
            break;
        *tab = '\0';
        cursor = tab + 1;
    }
    return count;
}

static void format_expiry(long long expiry, char *text, size_t capacity)
{
    if (expiry <= 0) {
        snprintf(text, capacity, "-");
        return;
    }
    time_t when = (time_t)expiry;
    struct tm utc;
    char stamp[32] = "?";
    if (gmtime_r(&when, &utc) != NULL)
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &utc);
    long long left = expiry - (long long)time(NULL);
    if (left >= 0)
        snprintf(text, capacity, "%s (in %llds)", stamp, left);
    else
        snprintf(text, capacity, "%s (EXPIRED %llds ago)", stamp, -left);
}

static void print_process(char **fields, size_t count)
{
    if (count < 8)
        return;
    char expiry[64];
    format_expiry(strtoll(fields[5], NULL, 10), expiry, sizeof(expiry));
    printf("%-8s %-6s %-44s %-36s %-8s %s\n", fields[1], fields[2], fields[4], expiry, fields[6],
           fields[3]);
    if (strcmp(fields[7], "1") != 0)
        printf("         (no metrics file: connections unknown)\n");
    /* Field 9 came later: an older agent does not send it. */
    if (count > 8 && strcmp(fields[8], "0") != 0)
        printf("         (supervised by pid %s, which holds this identity for it)\n", fields[8]);
}

static void print_connection(char **fields, size_t count)
{
    if (count < 11)
        return;
    bool inbound = strcmp(fields[3], "inbound") == 0;
    long long age = ((long long)time(NULL) * 1000 - strtoll(fields[8], NULL, 10)) / 1000;
    bool tls = strcmp(fields[4], "true") == 0;
    /* The key-exchange group (field 11) came later: an older agent does not send it. */
    const char *key_exchange = tls && count > 11 && fields[11][0] != '\0' ? fields[11] : "";
    printf(
        "         fd %-5s %-8s %-9s %s %s %s  peer %s  open %llds  read %s B  written %s B%s%s\n",
        fields[2], fields[3], tls ? "mTLS" : "plaintext", fields[5], inbound ? "<-" : "->",
        fields[6], fields[7], age < 0 ? 0 : age, fields[9], fields[10],
        key_exchange[0] != '\0' ? "  key exchange " : "", key_exchange);
}

/* From an agent older than the "destination" records: plaintext counts per port. */
static void print_plaintext(char **fields, size_t count)
{
    if (count < 5)
        return;
    printf("         %s plaintext to port %s: %s connection(s) (not in the mesh membership)\n",
           fields[2], fields[3], fields[4]);
}

static void print_destination(char **fields, size_t count)
{
    if (count < 5)
        return;
    bool tls = strcmp(fields[2], "true") == 0;
    bool other = strcmp(fields[3], "other") == 0;
    printf("         outbound %-9s to %-40s %s opened%s\n", tls ? "mTLS" : "plaintext",
           other ? "(every other destination)" : fields[3], fields[4],
           tls ? "" : "  (not yet mTLS)");
}

int mt_cli_status(int argc, char **argv)
{
    struct mt_config config;
    char message[MT_CONFIG_MESSAGE_MAX];
    struct mt_text reason = mt_text_on(message, sizeof(message));
    if (!mt_result_is_ok(mt_config_load(&config, &reason))) {
        fprintf(stderr, "meshtls: configuration error: %s\n", message);
        return 2;
    }
    const char *socket_path = config.agent_socket;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            socket_path = argv[++i];
        } else {
            fprintf(stderr, "usage: meshtls status [--socket PATH]\n");
            return 2;
        }
    }
    uint8_t *buffer = malloc(MT_PROTO_MAX_FRAME);
    struct mt_proto_status_response *response = malloc(sizeof(*response));
    int status = 1;
    size_t length = 0;
    struct mt_proto_frame frame;
    size_t consumed = 0;
    if (buffer == NULL || response == NULL) {
        fprintf(stderr, "meshtls: out of memory\n");
        goto out;
    }
    if (!request_status(socket_path, (uid_t)config.agent_uid, buffer, MT_PROTO_MAX_FRAME, &length,
                        &reason)) {
        fprintf(stderr, "meshtls: %s\n", message);
        goto out;
    }
    if (!mt_result_is_ok(mt_proto_frame_parse(buffer, length, &frame, &consumed)) || consumed == 0)
        goto out;
    if (frame.type == MT_PROTO_ERROR) {
        struct mt_proto_error_reply error;
        if (mt_result_is_ok(mt_proto_decode_error(&frame, &error)))
            fprintf(stderr, "meshtls: the agent refused: %.*s\n", (int)error.message.length,
                    (const char *)error.message.data);
        else
            fprintf(stderr, "meshtls: the agent refused the request\n");
        goto out;
    }
    if (!mt_result_is_ok(mt_proto_decode_status_response(&frame, response))) {
        fprintf(stderr, "meshtls: the agent's status reply is malformed\n");
        goto out;
    }
    printf("%-8s %-6s %-44s %-36s %-8s %s\n", "PID", "UID", "IDENTITY", "EXPIRES", "RENEWALS",
           "EXE");
    size_t processes = 0;
    for (size_t i = 0; i < response->record_count; i++) {
        char copy[8192];
        char *fields[FIELDS_MAX] = {NULL};
        size_t count = split_record(&response->records[i], copy, sizeof(copy), fields);
        if (strcmp(fields[0], "process") == 0) {
            print_process(fields, count);
            processes++;
        } else if (strcmp(fields[0], "connection") == 0) {
            print_connection(fields, count);
        } else if (strcmp(fields[0], "plaintext") == 0) {
            print_plaintext(fields, count);
        } else if (strcmp(fields[0], "destination") == 0) {
            print_destination(fields, count);
        } else if (strcmp(fields[0], "truncated") == 0 && count >= 2) {
            printf("(%s more records did not fit in one reply)\n", fields[1]);
        }
    }
    if (processes == 0)
        printf("(no process using the agent at %s)\n", socket_path);
    status = 0;

out:
    free(buffer);
    free(response);
    return status;
}
