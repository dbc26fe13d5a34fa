/*
 * Agent client: key generation, CSR, one request/reply round trip, reply validation.
 *
 * Owns the key generated for a request until it goes into the credentials built from the reply
 * (tls/credentials.h, which keep it in a secret buffer). It never logs (callers decide how loud a
 * failure is), never keeps key material anywhere else, and never trusts the agent's reply
 * blindly: the leaf must be a valid X.509-SVID whose public key is the key generated here. Nor the
 * agent itself: nothing is sent before identity/peer.h has checked who serves the socket.
 *
 * Owns the process-wide subject too (mt_identity_set_subject): every request built while one is
 * set names it (identity/proto.h, SUBJECT) and carries a copy of its pidfd on its first byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "../util/secret.h"
#include "../util/text.h"
#include "../util/sys.h"
#include "../config/config.h"
#include "client.h"
#include "peer.h"
#include "proto.h"

/* Whatever a reply may carry fits the credentials built from it. */
_Static_assert(MT_PROTO_MAX_CERTS <= MT_CREDENTIALS_CHAIN_MAX, "a reply's chain fits");
_Static_assert(MT_PROTO_MAX_ANCHORS <= MT_CREDENTIALS_ANCHORS_MAX, "a reply's bundle fits");

/* The agent's reply carries a chain and a bundle; both fit well inside one maximal frame. */
#define REPLY_CAPACITY MT_PROTO_MAX_FRAME
/*
 * The reply buffer starts this small and grows (up to REPLY_CAPACITY) only for a reply that needs
 * it: an SVID with one anchor is about 1 KB, a metrics file reply 32 bytes. A 64 KB buffer for
 * each request put everything allocated after it on fresh heap pages, a page fault each on the
 * way to every process's first connection.
 */
#define REPLY_FIRST_CAPACITY 2048
/* A request without a body: the header, and room for the SUBJECT tag. */
#define EMPTY_REQUEST_CAPACITY (MT_PROTO_HEADER_SIZE + MT_PROTO_TLV_HEADER_SIZE + 4)

/* The pidfd of the process requests are made for; -1: this process. */
static atomic_int subject_pidfd = -1;

void mt_identity_set_subject(int pidfd)
{
    atomic_store(&subject_pidfd, pidfd < 0 ? -1 : pidfd);
}

int mt_identity_subject(void)
{
    return atomic_load(&subject_pidfd);
}

MT_RESULT mt_identity_supervise(pid_t child, int *pidfd, struct mt_text *reason)
{
    MT_ENSURE_REF(pidfd);
    *pidfd = mt_sys_pidfd_open(child);
    if (*pidfd < 0)
        return mt_result_explain(reason, MT_ERR_IO,
                                 "cannot open a pidfd of pid %ld to ask the agent for its "
                                 "identity: %s (pidfd_open needs Linux 5.3)",
                                 (long)child, strerror(errno));
    mt_identity_set_subject(*pidfd);
    return MT_OK_RESULT;
}

/*
 * Starts a request frame of type, naming the subject when one is set. *subject is a copy of its
 * pidfd to send with the frame (the caller's to close), -1 when none; a copy, so that the
 * frame and the descriptor agree even if the subject changes meanwhile.
 */
static MT_RESULT begin_request(struct mt_proto_writer *writer, uint8_t *buffer, size_t capacity,
                               enum mt_proto_type type, int *subject, struct mt_text *reason)
{
    *subject = -1;
    mt_proto_writer_begin(writer, buffer, capacity, type);
    int pidfd = mt_identity_subject();
    if (pidfd < 0)
        return MT_OK_RESULT;
    *subject = mt_sys_fcntl(pidfd, F_DUPFD_CLOEXEC, 0);
    if (*subject < 0)
        return mt_result_explain(reason, MT_ERR_IO,
                                 "the subject's pidfd %d cannot be sent to the agent: %s", pidfd,
                                 strerror(errno));
    mt_proto_writer_put_subject(writer);
    return MT_OK_RESULT;
}

/*
 * One request/reply exchange with the agent on a non-blocking Unix socket, advanced by
 * exchange_poll() without waiting longer than asked: a renewal can start in one call and finish
 * in a later one, so no caller ever waits for the agent while it still has a valid identity.
 */
struct exchange {
    int fd;
    char socket_path[MT_CONFIG_SOCKET_PATH_MAX];
    uid_t agent_uid;
    long long deadline;
    bool connected;
    bool peer_checked; /* nothing is sent before the socket's server is known (peer.h) */
    uint8_t *request;
    size_t request_length;
    size_t sent;
    uint8_t *reply;
    size_t reply_capacity; /* grows up to REPLY_CAPACITY */
    size_t received;
    bool wants_fd;   /* the reply carries a descriptor (SCM_RIGHTS) */
    int received_fd; /* -1 until it has come */
    int subject_fd;  /* sent with the request's first byte, then closed; -1: none */
};

static void exchange_free(struct exchange *exchange)
{
    if (exchange == NULL)
        return;
    if (exchange->fd >= 0)
        mt_sys_close(exchange->fd);
    if (exchange->received_fd >= 0)
        mt_sys_close(exchange->received_fd);
    if (exchange->subject_fd >= 0)
        mt_sys_close(exchange->subject_fd);
    free(exchange->request);
    free(exchange->reply);
    free(exchange);
}

/* Takes over subject (a pidfd to send with the request, or -1) whatever the outcome. */
static MT_RESULT exchange_start(const char *socket_path, uid_t agent_uid, int timeout_ms,
                                const uint8_t *request, size_t request_length, int subject,
                                struct exchange **out, struct mt_text *reason)
{
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    size_t path_length = strlen(socket_path);
    *out = NULL;
    if (path_length >= sizeof(address.sun_path)) {
        if (subject >= 0)
            mt_sys_close(subject);
        mt_text_set(reason, "agent socket path %s is longer than 107 bytes", socket_path);
        return mt_result_of(MT_ERR_TOO_LONG);
    }
    memcpy(address.sun_path, socket_path, path_length + 1);
    struct exchange *exchange = calloc(1, sizeof(*exchange));
    if (exchange == NULL && subject >= 0)
        mt_sys_close(subject);
    MT_ENSURE(exchange != NULL, MT_ERR_NO_MEMORY);
    exchange->fd = -1;
    exchange->received_fd = -1;
    exchange->subject_fd = subject;
    memcpy(exchange->socket_path, socket_path, path_length + 1);
    exchange->agent_uid = agent_uid;
    exchange->deadline = mt_sys_now_ms() + timeout_ms;
    exchange->request = malloc(request_length);
    exchange->reply = malloc(REPLY_FIRST_CAPACITY);
    exchange->reply_capacity = REPLY_FIRST_CAPACITY;
    mt_result result = MT_OK_RESULT;
    if (exchange->request == NULL || exchange->reply == NULL) {
        result = mt_result_of(MT_ERR_NO_MEMORY);
        goto out;
    }
    memcpy(exchange->request, request, request_length);
    exchange->request_length = request_length;
    exchange->fd = mt_sys_socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (exchange->fd < 0) {
        mt_text_set(reason, "cannot create a socket for the agent: %s", strerror(errno));
        result = mt_result_of(MT_ERR_IO);
        goto out;
    }
    if (mt_sys_connect(exchange->fd, (struct sockaddr *)&address, sizeof(address)) == 0) {
        exchange->connected = true;
    } else if (errno != EINPROGRESS && errno != EAGAIN) {
        mt_text_set(reason, "agent at %s unreachable: %s (is meshtls-agent running?)", socket_path,
                    strerror(errno));
        result = mt_result_of(MT_ERR_AGENT_UNREACHABLE);
    }
out:
    if (!mt_result_is_ok(result)) {
        exchange_free(exchange);
        exchange = NULL;
    }
    *out = exchange;
    return result;
}

/*
 * recv for a reply that carries a descriptor: keeps the first one that arrives and closes any
 * other (a reply never carries more), so that a peer cannot fill this process's fd table.
 */
static ssize_t receive_with_fd(struct exchange *exchange)
{
    struct iovec vector = {exchange->reply + exchange->received,
                           exchange->reply_capacity - exchange->received};
    union {
        struct cmsghdr header;
        char bytes[CMSG_SPACE(4 * sizeof(int))];
    } control;
    struct msghdr message = {.msg_iov = &vector,
                             .msg_iovlen = 1,
                             .msg_control = control.bytes,
                             .msg_controllen = sizeof(control.bytes)};
    ssize_t n = mt_sys_recvmsg(exchange->fd, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0)
        return n;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header != NULL;
         header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof(fd));
            if (exchange->received_fd < 0)
                exchange->received_fd = fd;
            else
                mt_sys_close(fd);
        }
    }
    return n;
}

/* A full reply buffer that may still be short of the frame: four times larger, at most the
 * largest frame (exchange_step refuses a reply longer than that). */
static MT_RESULT grow_reply(struct exchange *exchange)
{
    size_t capacity = exchange->reply_capacity * 4;
    if (capacity > REPLY_CAPACITY)
        capacity = REPLY_CAPACITY;
    uint8_t *grown = realloc(exchange->reply, capacity);
    MT_ENSURE(grown != NULL, MT_ERR_NO_MEMORY);
    exchange->reply = grown;
    exchange->reply_capacity = capacity;
    return MT_OK_RESULT;
}

/* send() of what is left of the request; the subject's pidfd rides on its first byte. */
static ssize_t send_request(struct exchange *exchange)
{
    ssize_t sent = mt_sys_send_fd(exchange->fd, exchange->request + exchange->sent,
                                  exchange->request_length - exchange->sent, exchange->subject_fd,
                                  MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent > 0 && exchange->subject_fd >= 0) {
        mt_sys_close(exchange->subject_fd);
        exchange->subject_fd = -1;
    }
    return sent;
}

/*
 * Does what the socket allows now; *done once the reply frame is complete. Only a refused agent
 * explains itself here (peer.h): exchange_poll explains the other failures.
 */
static MT_RESULT exchange_step(struct exchange *exchange, struct mt_proto_frame *frame, bool *done,
                               struct mt_text *reason)
{
    *done = false;
    if (!exchange->connected) {
        struct pollfd entry = {.fd = exchange->fd, .events = POLLOUT};
        if (mt_sys_poll(&entry, 1, 0) <= 0)
            return MT_OK_RESULT;
        int error = 0;
        socklen_t length = sizeof(error);
        if (mt_sys_getsockopt(exchange->fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0)
            error = errno;
        if (error != 0) {
            errno = error;
            return mt_result_of(MT_ERR_AGENT_UNREACHABLE);
        }
        exchange->connected = true;
    }
    if (!exchange->peer_checked) {
        MT_GUARD(mt_identity_peer_check(exchange->fd, exchange->socket_path, exchange->agent_uid,
                                        reason));
        exchange->peer_checked = true;
    }
    while (exchange->sent < exchange->request_length) {
        ssize_t n = send_request(exchange);
        if (n > 0) {
            exchange->sent += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return MT_OK_RESULT;
        return mt_result_of(MT_ERR_IO);
    }
    for (;;) {
        size_t consumed = 0;
        MT_GUARD(mt_proto_frame_parse(exchange->reply, exchange->received, frame, &consumed));
        if (consumed > 0) {
            *done = true;
            return MT_OK_RESULT;
        }
        MT_ENSURE(exchange->received < REPLY_CAPACITY, MT_ERR_PROTO_OVERSIZED);
        if (exchange->received == exchange->reply_capacity)
            MT_GUARD(grow_reply(exchange));
        ssize_t n = exchange->wants_fd
                        ? receive_with_fd(exchange)
                        : mt_sys_recv(exchange->fd, exchange->reply + exchange->received,
                                      exchange->reply_capacity - exchange->received, MSG_DONTWAIT);
        if (n > 0)
            exchange->received += (size_t)n;
        else if (n == 0)
            return mt_result_of(MT_ERR_PROTO_TRUNCATED);
        else if (errno == EAGAIN || errno == EINTR)
            return MT_OK_RESULT;
        else
            return mt_result_of(MT_ERR_IO);
    }
}

/*
 * Advances the exchange, waiting at most wait_ms (never past its deadline). Returns OK with
 * *frame once the reply is complete, MT_ERR_WOULD_BLOCK while it is still under way, or the
 * failure with reason filled in (an ERROR reply is MT_ERR_AGENT_REFUSED with its text).
 */
static MT_RESULT exchange_poll(struct exchange *exchange, int wait_ms, struct mt_proto_frame *frame,
                               struct mt_text *reason)
{
    long long until = mt_sys_now_ms() + wait_ms;
    if (until > exchange->deadline)
        until = exchange->deadline;
    mt_result result = MT_OK_RESULT;
    for (;;) {
        bool done = false;
        result = exchange_step(exchange, frame, &done, reason);
        if (!mt_result_is_ok(result) || done)
            break;
        int timeout = mt_sys_remaining_ms(until);
        if (timeout == 0) {
            if (mt_sys_remaining_ms(exchange->deadline) > 0)
                return mt_result_of(MT_ERR_WOULD_BLOCK);
            result = mt_result_of(MT_ERR_TIMEOUT);
            break;
        }
        bool writing = !exchange->connected || exchange->sent < exchange->request_length;
        struct pollfd entry = {.fd = exchange->fd, .events = writing ? POLLOUT : POLLIN};
        if (mt_sys_poll(&entry, 1, timeout) < 0 && errno != EINTR) {
            result = mt_result_of(MT_ERR_IO);
            break;
        }
    }
    if (!mt_result_is_ok(result)) {
        if (result.error == MT_ERR_AGENT_UNREACHABLE)
            mt_text_set(reason, "agent at %s unreachable: %s (is meshtls-agent running?)",
                        exchange->socket_path, strerror(errno));
        else if (result.error != MT_ERR_AGENT_UNTRUSTED) /* explained by the peer check */
            mt_text_set(reason, "agent at %s: %s", exchange->socket_path,
                        mt_error_message(result.error));
        return result;
    }
    if (frame->type == MT_PROTO_ERROR) {
        /* The agent's own words, cut at 255 bytes: it says why, in a line, not at length. */
        struct mt_proto_error_reply error;
        const char *said = "";
        int shown = 0;
        if (mt_result_is_ok(mt_proto_decode_error(frame, &error)) && error.message.length > 0) {
            said = (const char *)error.message.data;
            shown = error.message.length < 255 ? (int)error.message.length : 255;
        }
        return mt_result_explain(reason, MT_ERR_AGENT_REFUSED, "agent refused: %.*s", shown, said);
    }
    return MT_OK_RESULT;
}

/*
 * Advances a just-started exchange as far as the socket allows without waiting: the request is
 * sent (a Unix socket takes it at once), and a reply already there stays in the buffer for the
 * poll that reads it. OK unless the exchange failed.
 */
static MT_RESULT send_now(struct exchange *exchange, struct mt_text *reason)
{
    struct mt_proto_frame frame;
    mt_result result = exchange_poll(exchange, 0, &frame, reason);
    return result.error == MT_ERR_WOULD_BLOCK ? MT_OK_RESULT : result;
}

/* Copies the reply into credentials and checks it against the key this process generated. */
static MT_RESULT adopt_reply(struct mt_credentials *credentials,
                             const struct mt_proto_svid_response *svid,
                             const struct mt_x509_key *key, struct mt_text *reason)
{
    MT_ENSURE(svid->cert_count >= 1 && svid->anchor_count >= 1, MT_ERR_PROTO_MALFORMED);
    for (size_t i = 0; i < svid->cert_count; i++) {
        MT_ENSURE(svid->certs[i].length > 0, MT_ERR_PROTO_MALFORMED);
        MT_GUARD(mt_credentials_add_chain(credentials, svid->certs[i].data, svid->certs[i].length));
    }
    for (size_t i = 0; i < svid->anchor_count; i++) {
        MT_ENSURE(svid->anchors[i].length > 0, MT_ERR_PROTO_MALFORMED);
        MT_GUARD(
            mt_credentials_add_anchor(credentials, svid->anchors[i].data, svid->anchors[i].length));
    }

    const char *invalid = "";
    mt_result checked =
        mt_x509_svid_check(credentials->chain[0].data, credentials->chain[0].length,
                           credentials->spiffe_id, sizeof(credentials->spiffe_id), &invalid);
    if (!mt_result_is_ok(checked)) {
        mt_text_set(reason, "agent issued an invalid X.509-SVID: %s", invalid);
        return checked;
    }
    if (!mt_x509_key_matches_cert(key, credentials->chain[0].data, credentials->chain[0].length)) {
        mt_text_set(reason, "agent issued a certificate for another key (%s)",
                    credentials->spiffe_id);
        return mt_result_of(MT_ERR_SVID);
    }
    struct mt_spiffe_id parsed;
    MT_GUARD(mt_spiffe_id_parse(credentials->spiffe_id, strlen(credentials->spiffe_id), &parsed));
    memcpy(credentials->trust_domain, parsed.trust_domain, parsed.trust_domain_length);
    credentials->trust_domain[parsed.trust_domain_length] = '\0';

    time_t not_before = 0;
    MT_GUARD(mt_x509_cert_validity(credentials->chain[0].data, credentials->chain[0].length,
                                   &not_before, &credentials->not_after));
    MT_ENSURE(credentials->not_after > not_before, MT_ERR_SVID);
    /*
     * Renew at 70 % of the lifetime, as SPIRE and Linkerd do: room for an agent outage. Counted
     * from now, not from notBefore, which issuers backdate for clock skew (the agent by five
     * minutes): with a short lifetime that would put the refresh point in the past.
     */
    time_t now = time(NULL);
    time_t start = now > not_before ? now : not_before;
    credentials->refresh_at = start + (credentials->not_after - start) * 7 / 10;
    return MT_OK_RESULT;
}

struct mt_identity_request {
    struct exchange *exchange;
    struct mt_x509_key *key;
};

void mt_identity_request_free(struct mt_identity_request *request)
{
    if (request == NULL)
        return;
    exchange_free(request->exchange);
    mt_x509_key_free(request->key);
    free(request);
}

MT_RESULT mt_identity_request_start(const char *socket_path, uid_t agent_uid, int timeout_ms,
                                    struct mt_identity_request **out, struct mt_text *reason)
{
    MT_ENSURE_REF(socket_path);
    MT_ENSURE_REF(out);
    *out = NULL;
    struct mt_identity_request *request = calloc(1, sizeof(*request));
    MT_ENSURE(request != NULL, MT_ERR_NO_MEMORY);
    uint8_t frame[MT_X509_CSR_DER_MAX + 64];
    uint8_t csr[MT_X509_CSR_DER_MAX];
    size_t csr_length = 0;
    size_t frame_length = 0;
    mt_result result = mt_x509_key_and_csr_create(&request->key, csr, sizeof(csr), &csr_length);
    /* Key generation leaves the new scalar in wolfCrypt's dead stack frames (see secret.h). */
    mt_secret_wipe_stack();
    if (!mt_result_is_ok(result)) {
        mt_text_set(reason, "cannot create a key and CSR: %s", mt_error_message(result.error));
        goto out;
    }
    struct mt_proto_writer writer;
    int subject = -1;
    result = begin_request(&writer, frame, sizeof(frame), MT_PROTO_SVID_REQUEST, &subject, reason);
    if (!mt_result_is_ok(result))
        goto out;
    mt_proto_writer_put(&writer, MT_PROTO_TAG_CSR, csr, csr_length);
    result = mt_proto_writer_finish(&writer, &frame_length);
    if (mt_result_is_ok(result))
        result = exchange_start(socket_path, agent_uid, timeout_ms, frame, frame_length, subject,
                                &request->exchange, reason);
    else if (subject >= 0)
        mt_sys_close(subject);
    /* Sent now, so that the agent signs while this process does something else. */
    if (mt_result_is_ok(result))
        result = send_now(request->exchange, reason);
out:
    if (!mt_result_is_ok(result)) {
        mt_identity_request_free(request);
        request = NULL;
    }
    *out = request;
    return result;
}

MT_RESULT mt_identity_request_poll(struct mt_identity_request *request, int wait_ms,
                                   struct mt_credentials **out, struct mt_text *reason)
{
    MT_ENSURE_REF(request);
    MT_ENSURE_REF(out);
    *out = NULL;
    struct mt_proto_frame frame;
    MT_GUARD(exchange_poll(request->exchange, wait_ms, &frame, reason));

    struct mt_proto_svid_response svid;
    mt_result result = mt_proto_decode_svid_response(&frame, &svid);
    if (!mt_result_is_ok(result)) {
        mt_text_set(reason, "agent at %s sent a bad reply: %s", request->exchange->socket_path,
                    mt_error_message(result.error));
        return result;
    }
    struct mt_credentials *credentials = NULL;
    MT_GUARD(mt_credentials_new(&credentials));
    result = adopt_reply(credentials, &svid, request->key, reason);
    if (mt_result_is_ok(result))
        result = mt_credentials_set_key(credentials, request->key);
    mt_secret_wipe_stack();
    if (!mt_result_is_ok(result)) {
        mt_credentials_release(credentials);
        return result;
    }
    *out = credentials;
    return MT_OK_RESULT;
}

MT_RESULT mt_identity_fetch(const char *socket_path, uid_t agent_uid, int timeout_ms,
                            struct mt_credentials **out, struct mt_text *reason)
{
    struct mt_identity_request *request = NULL;
    MT_GUARD(mt_identity_request_start(socket_path, agent_uid, timeout_ms, &request, reason));
    mt_result result = mt_identity_request_poll(request, timeout_ms, out, reason);
    mt_identity_request_free(request);
    return result;
}

MT_RESULT mt_identity_query_id(const char *socket_path, uid_t agent_uid, int timeout_ms,
                               char *spiffe_id, size_t capacity, struct mt_text *reason)
{
    MT_ENSURE_REF(socket_path);
    MT_ENSURE(spiffe_id != NULL && capacity > 0, MT_ERR_INVALID_ARGUMENT);
    uint8_t request[EMPTY_REQUEST_CAPACITY];
    size_t request_length = 0;
    struct mt_proto_writer writer;
    int subject = -1;
    MT_GUARD(
        begin_request(&writer, request, sizeof(request), MT_PROTO_ID_REQUEST, &subject, reason));
    mt_result finished = mt_proto_writer_finish(&writer, &request_length);
    if (!mt_result_is_ok(finished) && subject >= 0)
        mt_sys_close(subject);
    MT_GUARD(finished);

    struct exchange *exchange = NULL;
    MT_GUARD(exchange_start(socket_path, agent_uid, timeout_ms, request, request_length, subject,
                            &exchange, reason));
    struct mt_proto_frame frame;
    struct mt_proto_blob id;
    mt_result result = exchange_poll(exchange, timeout_ms, &frame, reason);
    if (mt_result_is_ok(result))
        result = mt_proto_decode_id_response(&frame, &id);
    if (mt_result_is_ok(result) && id.length >= capacity)
        result = mt_result_of(MT_ERR_TOO_LONG);
    if (mt_result_is_ok(result)) {
        memcpy(spiffe_id, id.data, id.length);
        spiffe_id[id.length] = '\0';
    }
    exchange_free(exchange);
    return result;
}

/* A metrics-file request is an exchange whose reply carries the file. */
struct mt_identity_metrics_request {
    struct exchange *exchange;
};

void mt_identity_metrics_request_free(struct mt_identity_metrics_request *request)
{
    if (request == NULL)
        return;
    exchange_free(request->exchange);
    free(request);
}

MT_RESULT mt_identity_metrics_request_start(const char *socket_path, uid_t agent_uid,
                                            int timeout_ms,
                                            struct mt_identity_metrics_request **out,
                                            struct mt_text *reason)
{
    MT_ENSURE_REF(socket_path);
    MT_ENSURE_REF(out);
    *out = NULL;
    uint8_t request[EMPTY_REQUEST_CAPACITY];
    size_t request_length = 0;
    struct mt_proto_writer writer;
    int subject = -1;
    MT_GUARD(begin_request(&writer, request, sizeof(request), MT_PROTO_METRICS_FILE_REQUEST,
                           &subject, reason));
    mt_result finished = mt_proto_writer_finish(&writer, &request_length);
    if (!mt_result_is_ok(finished) && subject >= 0)
        mt_sys_close(subject);
    MT_GUARD(finished);

    struct mt_identity_metrics_request *started = calloc(1, sizeof(*started));
    if (started == NULL && subject >= 0)
        mt_sys_close(subject);
    MT_ENSURE(started != NULL, MT_ERR_NO_MEMORY);
    mt_result result = exchange_start(socket_path, agent_uid, timeout_ms, request, request_length,
                                      subject, &started->exchange, reason);
    if (!mt_result_is_ok(result)) {
        free(started);
        return result;
    }
    struct exchange *exchange = started->exchange;
    exchange->wants_fd = true;
    /* Sent now, so that the agent works on it while this process does something else. */
    result = send_now(exchange, reason);
    if (!mt_result_is_ok(result)) {
        mt_identity_metrics_request_free(started);
        return result;
    }
    *out = started;
    return MT_OK_RESULT;
}

MT_RESULT mt_identity_metrics_request_poll(struct mt_identity_metrics_request *request, int wait_ms,
                                           int *fd, struct mt_text *reason)
{
    MT_ENSURE_REF(request);
    MT_ENSURE_REF(fd);
    *fd = -1;
    struct exchange *exchange = request->exchange;
    struct mt_proto_frame frame;
    struct mt_proto_metrics_file_response response;
    MT_GUARD(exchange_poll(exchange, wait_ms, &frame, reason));
    mt_result result = mt_proto_decode_metrics_file_response(&frame, &response);
    if (!mt_result_is_ok(result))
        mt_text_set(reason, "agent at %s sent a bad metrics file reply: %s", exchange->socket_path,
                    mt_error_message(result.error));
    if (mt_result_is_ok(result) && exchange->received_fd < 0) {
        mt_text_set(reason, "agent at %s sent no metrics file with its reply",
                    exchange->socket_path);
        result = mt_result_of(MT_ERR_PROTO_MALFORMED);
    }
    if (mt_result_is_ok(result)) {
        *fd = exchange->received_fd;
        exchange->received_fd = -1;
    }
    return result;
}

MT_RESULT mt_identity_metrics_file(const char *socket_path, uid_t agent_uid, int timeout_ms,
                                   int *fd, struct mt_text *reason)
{
    MT_ENSURE_REF(fd);
    *fd = -1;
    struct mt_identity_metrics_request *request = NULL;
    MT_GUARD(
        mt_identity_metrics_request_start(socket_path, agent_uid, timeout_ms, &request, reason));
    mt_result result = mt_identity_metrics_request_poll(request, timeout_ms, fd, reason);
    mt_identity_metrics_request_free(request);
    return result;
}

MT_RESULT mt_identity_membership_file(const char *socket_path, uid_t agent_uid, int timeout_ms,
                                      int *fd, uint64_t *generation, struct mt_text *reason)
{
    MT_ENSURE_REF(socket_path);
    MT_ENSURE_REF(fd);
    MT_ENSURE_REF(generation);
    *fd = -1;
    uint8_t request[EMPTY_REQUEST_CAPACITY];
    size_t request_length = 0;
    struct mt_proto_writer writer;
    /* The set is the node's: never asked for a subject (identity/proto.h). */
    mt_proto_writer_begin(&writer, request, sizeof(request), MT_PROTO_MEMBERSHIP_REQUEST);
    MT_GUARD(mt_proto_writer_finish(&writer, &request_length));
    struct exchange *exchange = NULL;
    MT_GUARD(exchange_start(socket_path, agent_uid, timeout_ms, request, request_length, -1,
                            &exchange, reason));
    exchange->wants_fd = true;
    struct mt_proto_frame frame;
    mt_result result = exchange_poll(exchange, timeout_ms, &frame, reason);
    if (mt_result_is_ok(result)) {
        result = mt_proto_decode_membership_response(&frame, generation);
        if (!mt_result_is_ok(result))
            mt_text_set(reason, "agent at %s sent a bad membership reply: %s",
                        exchange->socket_path, mt_error_message(result.error));
    }
    if (mt_result_is_ok(result) && exchange->received_fd < 0) {
        mt_text_set(reason, "agent at %s sent no membership set with its reply",
                    exchange->socket_path);
        result = mt_result_of(MT_ERR_PROTO_MALFORMED);
    }
    if (mt_result_is_ok(result)) {
        *fd = exchange->received_fd;
        exchange->received_fd = -1;
    }
    exchange_free(exchange);
    return result;
}
