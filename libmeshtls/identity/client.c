/*
 * Agent client: key generation, CSR, one request/reply round trip, reply validation.
 *
 * Owns the struct mt_identity lifecycle. It never logs (callers decide how loud a failure is),
 * never keeps key material outside struct mt_identity, and never trusts the agent's reply blindly:
 * the leaf must be a valid X.509-SVID whose public key is the key generated here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "../util/sys.h"
#include "client.h"

/* The agent's reply carries a chain and a bundle; both fit well inside one maximal frame. */
#define REPLY_CAPACITY MT_PROTO_MAX_FRAME

__attribute__((format(printf, 3, 4))) static void say(char *message, size_t size,
                                                      const char *format, ...)
{
    if (message == NULL || size == 0)
        return;
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(message, size, format, arguments);
    va_end(arguments);
}

static MT_RESULT connect_agent(const char *socket_path, int timeout_ms, int *fd_out,
                               long long *deadline, char *message, size_t message_size)
{
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(socket_path) >= sizeof(address.sun_path)) {
        say(message, message_size, "agent socket path %s is longer than 107 bytes", socket_path);
        return mt_result_of(MT_ERR_TOO_LONG);
    }
    memcpy(address.sun_path, socket_path, strlen(socket_path) + 1);
    *deadline = mt_sys_now_ms() + timeout_ms;
    int fd = mt_sys_socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        say(message, message_size, "cannot create a socket for the agent: %s", strerror(errno));
        return mt_result_of(MT_ERR_IO);
    }
    if (mt_sys_connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0 &&
        errno != EINPROGRESS && errno != EAGAIN) {
        say(message, message_size, "agent at %s unreachable: %s (is meshtls-agent running?)",
            socket_path, strerror(errno));
        mt_sys_close(fd);
        return mt_result_of(MT_ERR_AGENT_UNREACHABLE);
    }
    *fd_out = fd;
    return MT_OK_RESULT;
}

/* Waits for fd to be ready for events before the deadline; EINTR is retried (the call is ours). */
static MT_RESULT wait_ready(int fd, short events, long long deadline)
{
    for (;;) {
        struct pollfd entry = {.fd = fd, .events = events};
        int ready = mt_sys_poll(&entry, 1, mt_sys_remaining_ms(deadline));
        if (ready > 0)
            return MT_OK_RESULT;
        if (ready == 0)
            return mt_result_of(MT_ERR_TIMEOUT);
        if (errno != EINTR)
            return mt_result_of(MT_ERR_IO);
    }
}

static MT_RESULT send_all(int fd, const uint8_t *data, size_t length, long long deadline)
{
    size_t sent = 0;
    while (sent < length) {
        ssize_t n = mt_sys_send(fd, data + sent, length - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            MT_GUARD(wait_ready(fd, POLLOUT, deadline));
        } else {
            return mt_result_of(MT_ERR_IO);
        }
    }
    return MT_OK_RESULT;
}

/* Reads one whole frame into buffer. */
static MT_RESULT receive_frame(int fd, uint8_t *buffer, size_t capacity, long long deadline,
                               struct mt_proto_frame *frame)
{
    size_t have = 0;
    for (;;) {
        size_t consumed = 0;
        MT_GUARD(mt_proto_frame_parse(buffer, have, frame, &consumed));
        if (consumed > 0)
            return MT_OK_RESULT;
        MT_ENSURE(have < capacity, MT_ERR_PROTO_OVERSIZED);
        ssize_t n = mt_sys_recv(fd, buffer + have, capacity - have, 0);
        if (n > 0) {
            have += (size_t)n;
        } else if (n == 0) {
            return mt_result_of(MT_ERR_PROTO_TRUNCATED);
        } else if (errno == EAGAIN || errno == EINTR) {
            MT_GUARD(wait_ready(fd, POLLIN, deadline));
        } else {
            return mt_result_of(MT_ERR_IO);
        }
    }
}

/* Sends request and receives the reply frame; on an ERROR reply explains it in message. */
static MT_RESULT round_trip(const char *socket_path, int timeout_ms, const uint8_t *request,
                            size_t request_length, uint8_t *reply, struct mt_proto_frame *frame,
                            char *message, size_t message_size)
{
    int fd = -1;
    long long deadline = 0;
    MT_GUARD(connect_agent(socket_path, timeout_ms, &fd, &deadline, message, message_size));
    mt_result result = send_all(fd, request, request_length, deadline);
    if (mt_result_is_ok(result))
        result = receive_frame(fd, reply, REPLY_CAPACITY, deadline, frame);
    mt_sys_close(fd);
    if (!mt_result_is_ok(result)) {
        if (result.error == MT_ERR_IO && (errno == ECONNREFUSED || errno == ENOENT))
            result = mt_result_of(MT_ERR_AGENT_UNREACHABLE);
        say(message, message_size, "agent at %s: %s", socket_path, mt_error_message(result.error));
        return result;
    }
    if (frame->type == MT_PROTO_ERROR) {
        struct mt_proto_error_reply error;
        char text[256] = "";
        if (mt_result_is_ok(mt_proto_decode_error(frame, &error))) {
            size_t n =
                error.message.length < sizeof(text) - 1 ? error.message.length : sizeof(text) - 1;
            memcpy(text, error.message.data, n);
            text[n] = '\0';
        }
        say(message, message_size, "agent refused: %s", text);
        return mt_result_of(MT_ERR_AGENT_REFUSED);
    }
    return MT_OK_RESULT;
}

static MT_RESULT copy_der(struct mt_identity_der *out, const struct mt_proto_blob *blob)
{
    MT_ENSURE(blob->length > 0, MT_ERR_PROTO_MALFORMED);
    out->data = malloc(blob->length);
    MT_ENSURE(out->data != NULL, MT_ERR_NO_MEMORY);
    memcpy(out->data, blob->data, blob->length);
    out->length = blob->length;
    return MT_OK_RESULT;
}

static void free_der(struct mt_identity_der *der, bool secret)
{
    if (der->data != NULL && secret)
        explicit_bzero(der->data, der->length);
    free(der->data);
    der->data = NULL;
    der->length = 0;
}

/* Copies the reply into identity and checks it against the key this process generated. */
static MT_RESULT adopt_reply(struct mt_identity *identity,
                             const struct mt_proto_svid_response *svid,
                             const struct mt_x509_key *key, char *message, size_t message_size)
{
    MT_ENSURE(svid->cert_count >= 1 && svid->anchor_count >= 1, MT_ERR_PROTO_MALFORMED);
    for (size_t i = 0; i < svid->cert_count; i++)
        MT_GUARD(copy_der(&identity->chain[identity->chain_length++], &svid->certs[i]));
    for (size_t i = 0; i < svid->anchor_count; i++)
        MT_GUARD(copy_der(&identity->anchors[identity->anchor_count++], &svid->anchors[i]));

    const char *reason = "";
    mt_result checked =
        mt_x509_svid_check(identity->chain[0].data, identity->chain[0].length, identity->spiffe_id,
                           sizeof(identity->spiffe_id), &reason);
    if (!mt_result_is_ok(checked)) {
        say(message, message_size, "agent issued an invalid X.509-SVID: %s", reason);
        return checked;
    }
    if (!mt_x509_key_matches_cert(key, identity->chain[0].data, identity->chain[0].length)) {
        say(message, message_size, "agent issued a certificate for another key (%s)",
            identity->spiffe_id);
        return mt_result_of(MT_ERR_SVID);
    }
    struct mt_spiffe_id parsed;
    MT_GUARD(mt_spiffe_id_parse(identity->spiffe_id, strlen(identity->spiffe_id), &parsed));
    memcpy(identity->trust_domain, parsed.trust_domain, parsed.trust_domain_length);
    identity->trust_domain[parsed.trust_domain_length] = '\0';

    time_t not_before = 0;
    MT_GUARD(mt_x509_cert_validity(identity->chain[0].data, identity->chain[0].length, &not_before,
                                   &identity->not_after));
    MT_ENSURE(identity->not_after > not_before, MT_ERR_SVID);
    /* Renew at 70 % of the lifetime, as SPIRE and Linkerd do: room for an agent outage. */
    identity->refresh_at = not_before + (identity->not_after - not_before) * 7 / 10;
    return MT_OK_RESULT;
}

MT_RESULT mt_identity_fetch(const char *socket_path, int timeout_ms, struct mt_identity **out,
                            char *message, size_t message_size)
{
    MT_ENSURE_REF(socket_path);
    MT_ENSURE_REF(out);
    struct mt_x509_key *key = NULL;
    struct mt_identity *identity = NULL;
    uint8_t *reply = NULL;
    uint8_t request[MT_X509_CSR_DER_MAX + 64];
    uint8_t csr[MT_X509_CSR_DER_MAX];
    size_t csr_length = 0;
    size_t request_length = 0;
    struct mt_proto_frame frame;
    struct mt_proto_svid_response svid;

    mt_result result = mt_x509_key_generate(&key);
    if (mt_result_is_ok(result))
        result = mt_x509_csr_create(key, csr, sizeof(csr), &csr_length);
    if (!mt_result_is_ok(result)) {
        say(message, message_size, "cannot create a key and CSR: %s",
            mt_error_message(result.error));
        goto out;
    }
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, request, sizeof(request), MT_PROTO_SVID_REQUEST);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_CSR, csr, csr_length);
    result = mt_proto_writer_finish(&writer, &request_length);
    if (!mt_result_is_ok(result))
        goto out;

    reply = malloc(REPLY_CAPACITY);
    identity = calloc(1, sizeof(*identity));
    if (reply == NULL || identity == NULL) {
        result = mt_result_of(MT_ERR_NO_MEMORY);
        goto out;
    }
    atomic_init(&identity->references, 1);
    result = round_trip(socket_path, timeout_ms, request, request_length, reply, &frame, message,
                        message_size);
    if (!mt_result_is_ok(result))
        goto out;
    result = mt_proto_decode_svid_response(&frame, &svid);
    if (!mt_result_is_ok(result)) {
        say(message, message_size, "agent at %s sent a bad reply: %s", socket_path,
            mt_error_message(result.error));
        goto out;
    }
    result = adopt_reply(identity, &svid, key, message, message_size);
    if (!mt_result_is_ok(result))
        goto out;

    uint8_t key_der[MT_X509_KEY_DER_MAX];
    size_t key_length = 0;
    result = mt_x509_key_to_der(key, key_der, sizeof(key_der), &key_length);
    if (mt_result_is_ok(result)) {
        struct mt_proto_blob blob = {key_der, key_length};
        result = copy_der(&identity->key, &blob);
    }
    explicit_bzero(key_der, sizeof(key_der));

out:
    mt_x509_key_free(key);
    free(reply);
    if (!mt_result_is_ok(result)) {
        mt_identity_release(identity);
        identity = NULL;
    }
    *out = identity;
    return result;
}

MT_RESULT mt_identity_query_id(const char *socket_path, int timeout_ms, char *spiffe_id,
                               size_t capacity, char *message, size_t message_size)
{
    MT_ENSURE_REF(socket_path);
    MT_ENSURE(spiffe_id != NULL && capacity > 0, MT_ERR_INVALID_ARGUMENT);
    uint8_t request[MT_PROTO_HEADER_SIZE];
    size_t request_length = 0;
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, request, sizeof(request), MT_PROTO_ID_REQUEST);
    MT_GUARD(mt_proto_writer_finish(&writer, &request_length));

    uint8_t *reply = malloc(REPLY_CAPACITY);
    MT_ENSURE(reply != NULL, MT_ERR_NO_MEMORY);
    struct mt_proto_frame frame;
    struct mt_proto_blob id;
    mt_result result = round_trip(socket_path, timeout_ms, request, request_length, reply, &frame,
                                  message, message_size);
    if (mt_result_is_ok(result))
        result = mt_proto_decode_id_response(&frame, &id);
    if (mt_result_is_ok(result) && id.length >= capacity)
        result = mt_result_of(MT_ERR_TOO_LONG);
    if (mt_result_is_ok(result)) {
        memcpy(spiffe_id, id.data, id.length);
        spiffe_id[id.length] = '\0';
    }
    free(reply);
    return result;
}

struct mt_identity *mt_identity_acquire(struct mt_identity *identity)
{
    if (identity != NULL)
        atomic_fetch_add(&identity->references, 1);
    return identity;
}

void mt_identity_release(struct mt_identity *identity)
{
    if (identity == NULL || atomic_fetch_sub(&identity->references, 1) != 1)
        return;
    free_der(&identity->key, true);
    for (size_t i = 0; i < identity->chain_length; i++)
        free_der(&identity->chain[i], false);
    for (size_t i = 0; i < identity->anchor_count; i++)
        free_der(&identity->anchors[i], false);
    free(identity);
}
