/*
 * Tests for identity/client.c against a fake agent: a thread listening on a Unix socket, served by
 * this process's own uid (so the peer check passes), that reads the CSR the client sends and
 * answers it as the test asks: a good X.509-SVID, a chain the client must refuse, or an ERROR.
 *
 * The fake agent issues with the real x509 code and a CA made in the test, so a good reply is
 * exactly what meshtls-agent would send; each bad reply breaks one thing the client checks.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_ca.h"

#include "identity/client.h"
#include "identity/proto.h"
#include "tls/tls.h"

#define WORKLOAD_ID "spiffe://example.org/ns/web"
#define DAY (24 * 60 * 60)

enum reply {
    REPLY_GOOD,
    REPLY_CA_AS_LEAF,  /* the CA's own certificate where the leaf goes */
    REPLY_OTHER_KEY,   /* a valid leaf, for a key the client did not generate */
    REPLY_LONG_ERROR,  /* an ERROR frame whose message is longer than a log line shows */
    REPLY_FULL_BUNDLE, /* a good reply with as many anchors as a bundle may hold: several KB */
};

struct fake_agent {
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int listener;
    enum reply reply;
    pthread_t thread;
    /* What it issued, for the test to compare with what the client kept. */
    uint8_t leaf[MT_X509_CERT_DER_MAX];
    size_t leaf_length;
    time_t not_after;
};

static struct test_ca ca;

static int make_ca(void **state)
{
    (void)state;
    time_t now = time(NULL);
    return test_ca_make(&ca, "example.org", now - DAY, now + 30 * DAY) ? 0 : -1;
}

static int free_ca(void **state)
{
    (void)state;
    test_ca_free(&ca);
    return 0;
}

/* The request frame, read whole. */
static size_t read_request(int fd, uint8_t *buffer, size_t capacity, struct mt_proto_frame *frame)
{
    size_t received = 0;
    for (;;) {
        size_t consumed = 0;
        assert_true(mt_result_is_ok(mt_proto_frame_parse(buffer, received, frame, &consumed)));
        if (consumed > 0)
            return consumed;
        ssize_t n = recv(fd, buffer + received, capacity - received, 0);
        assert_true(n > 0);
        received += (size_t)n;
    }
}

/* Issues a leaf for the CSR, or, for REPLY_OTHER_KEY, for a key of its own. */
static void issue(struct fake_agent *agent, const struct mt_proto_blob *csr)
{
    const uint8_t *request = csr->data;
    size_t request_length = csr->length;
    struct mt_x509_key *other = NULL;
    uint8_t other_csr[MT_X509_CSR_DER_MAX];
    if (agent->reply == REPLY_OTHER_KEY) {
        assert_true(mt_result_is_ok(mt_x509_key_generate(&other)));
        assert_true(mt_result_is_ok(
            mt_x509_csr_create(other, other_csr, sizeof(other_csr), &request_length)));
        request = other_csr;
    }
    time_t now = time(NULL);
    agent->not_after = now + DAY;
    assert_true(mt_result_is_ok(mt_x509_leaf_issue(
        request, request_length, WORKLOAD_ID, ca.der, ca.length, ca.key, now - 300,
        agent->not_after, agent->leaf, sizeof(agent->leaf), &agent->leaf_length)));
    mt_x509_key_free(other);
}

static void *serve(void *argument)
{
    struct fake_agent *agent = argument;
    int fd = accept(agent->listener, NULL, NULL);
    assert_true(fd >= 0);
    static uint8_t buffer[MT_PROTO_MAX_FRAME];
    struct mt_proto_frame frame;
    read_request(fd, buffer, sizeof(buffer), &frame);
    struct mt_proto_svid_request request;
    assert_true(mt_result_is_ok(mt_proto_decode_svid_request(&frame, &request)));

    static uint8_t reply[MT_PROTO_MAX_FRAME];
    struct mt_proto_writer writer;
    if (agent->reply == REPLY_LONG_ERROR) {
        char message[300];
        memset(message, 'x', sizeof(message));
        mt_proto_writer_begin(&writer, reply, sizeof(reply), MT_PROTO_ERROR);
        mt_proto_writer_put_u32(&writer, MT_PROTO_TAG_ERROR_CODE, MT_PROTO_ERROR_DENIED);
        mt_proto_writer_put(&writer, MT_PROTO_TAG_MESSAGE, message, sizeof(message));
    } else {
        issue(agent, &request.csr);
        const uint8_t *leaf = agent->reply == REPLY_CA_AS_LEAF ? ca.der : agent->leaf;
        size_t leaf_length = agent->reply == REPLY_CA_AS_LEAF ? ca.length : agent->leaf_length;
        mt_proto_writer_begin(&writer, reply, sizeof(reply), MT_PROTO_SVID_RESPONSE);
        mt_proto_writer_put(&writer, MT_PROTO_TAG_SPIFFE_ID, WORKLOAD_ID, strlen(WORKLOAD_ID));
        mt_proto_writer_put(&writer, MT_PROTO_TAG_CERT, leaf, leaf_length);
        int anchors = agent->reply == REPLY_FULL_BUNDLE ? MT_PROTO_MAX_ANCHORS : 1;
        for (int i = 0; i < anchors; i++)
            mt_proto_writer_put(&writer, MT_PROTO_TAG_BUNDLE, ca.der, ca.length);
        mt_proto_writer_put_u64(&writer, MT_PROTO_TAG_EXPIRY, (uint64_t)agent->not_after);
    }
    size_t length = 0;
    assert_true(mt_result_is_ok(mt_proto_writer_finish(&writer, &length)));
    assert_int_equal(send(fd, reply, length, MSG_NOSIGNAL), length);
    close(fd);
    return NULL;
}

static void agent_start(struct fake_agent *agent, enum reply reply)
{
    memset(agent, 0, sizeof(*agent));
    agent->reply = reply;
    snprintf(agent->path, sizeof(agent->path), "/tmp/test_identity_client.%d.sock", (int)getpid());
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    memcpy(address.sun_path, agent->path, strlen(agent->path) + 1);
    unlink(agent->path);
    agent->listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(agent->listener >= 0);
    assert_int_equal(bind(agent->listener, (struct sockaddr *)&address, sizeof(address)), 0);
    assert_int_equal(listen(agent->listener, 1), 0);
    assert_int_equal(pthread_create(&agent->thread, NULL, serve, agent), 0);
}

static void agent_stop(struct fake_agent *agent)
{
    assert_int_equal(pthread_join(agent->thread, NULL), 0);
    close(agent->listener);
    unlink(agent->path);
}

static mt_result fetch(struct fake_agent *agent, struct mt_credentials **credentials, char *reason,
                       size_t capacity)
{
    struct mt_text text = mt_text_on(reason, capacity);
    return mt_identity_fetch(agent->path, getuid(), 5000, credentials, &text);
}

/*
 * A client and a server session of context on a socketpair: true when both finish the
 * handshake, which each side's CertificateVerify (RFC 8446 §4.4.3) proves the key and the leaf
 * belong together (wolfSSL does not check it when a context loads them).
 */
static bool handshake_with_itself(struct mt_tls_context *context)
{
    int pair[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    struct mt_tls_session *client = NULL;
    struct mt_tls_session *server = NULL;
    assert_true(mt_result_is_ok(mt_tls_session_new(context, MT_TLS_CLIENT, pair[0], &client)));
    assert_true(mt_result_is_ok(mt_tls_session_new(context, MT_TLS_SERVER, pair[1], &server)));
    enum mt_tls_status client_status = MT_TLS_WANT_READ;
    enum mt_tls_status server_status = MT_TLS_WANT_READ;
    for (int round = 0; round < 100; round++) {
        if (client_status == MT_TLS_WANT_READ || client_status == MT_TLS_WANT_WRITE)
            client_status = mt_tls_handshake(client);
        if (server_status == MT_TLS_WANT_READ || server_status == MT_TLS_WANT_WRITE)
            server_status = mt_tls_handshake(server);
    }
    mt_tls_session_free(client);
    mt_tls_session_free(server);
    close(pair[0]);
    close(pair[1]);
    return client_status == MT_TLS_OK && server_status == MT_TLS_OK;
}

static void test_mt_identity_fetch_good_reply_credentials_usable_by_tls(void **state)
{
    (void)state;
    struct fake_agent agent;
    agent_start(&agent, REPLY_GOOD);
    struct mt_credentials *credentials = NULL;
    char reason[512] = "";
    assert_true(mt_result_is_ok(fetch(&agent, &credentials, reason, sizeof(reason))));
    agent_stop(&agent);
    assert_non_null(credentials);
    assert_string_equal(reason, "");
    /* What the leaf says, read from the leaf: not from the reply's SPIFFE_ID and EXPIRY fields. */
    assert_string_equal(credentials->spiffe_id, WORKLOAD_ID);
    assert_string_equal(credentials->trust_domain, "example.org");
    assert_int_equal(credentials->not_after, agent.not_after);
    time_t now = time(NULL);
    assert_true(credentials->refresh_at > now && credentials->refresh_at < agent.not_after);
    assert_int_equal(credentials->chain_length, 1);
    assert_int_equal(credentials->chain[0].length, agent.leaf_length);
    assert_memory_equal(credentials->chain[0].data, agent.leaf, agent.leaf_length);
    assert_int_equal(credentials->anchor_count, 1);
    assert_memory_equal(credentials->anchors[0].data, ca.der, ca.length);
    /* The key is the one the leaf certifies: a handshake signs with it, and the peer checks. */
    struct mt_tls_context *context = NULL;
    assert_true(
        mt_result_is_ok(mt_tls_context_new(credentials, 0, MT_POST_QUANTUM_PREFER, &context)));
    mt_credentials_release(credentials); /* the context holds its own reference */
    assert_true(handshake_with_itself(context));
    mt_tls_context_release(context);
}

static void test_mt_identity_fetch_ca_as_leaf_refused_with_reason(void **state)
{
    (void)state;
    struct fake_agent agent;
    agent_start(&agent, REPLY_CA_AS_LEAF);
    struct mt_credentials *credentials = NULL;
    char reason[512] = "";
    assert_int_equal(fetch(&agent, &credentials, reason, sizeof(reason)).error, MT_ERR_SVID);
    agent_stop(&agent);
    assert_null(credentials);
    assert_string_equal(reason, "agent issued an invalid X.509-SVID: marked CA");
}

static void test_mt_identity_fetch_leaf_for_other_key_refused_with_reason(void **state)
{
    (void)state;
    struct fake_agent agent;
    agent_start(&agent, REPLY_OTHER_KEY);
    struct mt_credentials *credentials = NULL;
    char reason[512] = "";
    assert_int_equal(fetch(&agent, &credentials, reason, sizeof(reason)).error, MT_ERR_SVID);
    agent_stop(&agent);
    assert_null(credentials);
    assert_string_equal(reason, "agent issued a certificate for another key (" WORKLOAD_ID ")");
}

/* The agent's words, cut at 255 bytes. */
static void test_mt_identity_fetch_error_reply_refused_with_its_text(void **state)
{
    (void)state;
    struct fake_agent agent;
    agent_start(&agent, REPLY_LONG_ERROR);
    struct mt_credentials *credentials = NULL;
    char reason[512] = "";
    assert_int_equal(fetch(&agent, &credentials, reason, sizeof(reason)).error,
                     MT_ERR_AGENT_REFUSED);
    agent_stop(&agent);
    assert_null(credentials);
    char expected[300] = "agent refused: ";
    memset(expected + strlen(expected), 'x', 255);
    assert_string_equal(reason, expected);
}

/*
 * The client's reply buffer starts at 2 KB and grows: a reply larger than that, sent at once,
 * is read whole, with every anchor in it.
 */
static void test_mt_identity_fetch_reply_larger_than_first_buffer_read_whole(void **state)
{
    (void)state;
    assert_true(ca.length * MT_PROTO_MAX_ANCHORS > 2048);
    struct fake_agent agent;
    agent_start(&agent, REPLY_FULL_BUNDLE);
    struct mt_credentials *credentials = NULL;
    char reason[512] = "";
    mt_result result = fetch(&agent, &credentials, reason, sizeof(reason));
    agent_stop(&agent);
    if (!mt_result_is_ok(result))
        fail_msg("%s", reason);
    assert_int_equal(credentials->anchor_count, MT_PROTO_MAX_ANCHORS);
    for (size_t i = 0; i < credentials->anchor_count; i++)
        assert_memory_equal(credentials->anchors[i].data, ca.der, ca.length);
    assert_memory_equal(credentials->chain[0].data, agent.leaf, agent.leaf_length);
    mt_credentials_release(credentials);
}

/* A listening socket at a fresh path, served by nobody: the test reads what arrives itself. */
static int silent_agent(char *path, size_t capacity)
{
    snprintf(path, capacity, "/tmp/test_identity_client.%d.silent.sock", (int)getpid());
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    memcpy(address.sun_path, path, strlen(path) + 1);
    unlink(path);
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(listener >= 0);
    assert_int_equal(bind(listener, (struct sockaddr *)&address, sizeof(address)), 0);
    assert_int_equal(listen(listener, 1), 0);
    return listener;
}

/*
 * The whole request frame is there already, without waiting for it: false when it is not.
 * *connection: the agent's end, left open.
 */
static bool request_arrived(int listener, enum mt_proto_type type, int *connection)
{
    int fd = accept(listener, NULL, NULL);
    assert_true(fd >= 0);
    *connection = fd;
    static uint8_t buffer[MT_PROTO_MAX_FRAME];
    ssize_t n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    struct mt_proto_frame frame;
    size_t consumed = 0;
    return n > 0 && mt_result_is_ok(mt_proto_frame_parse(buffer, (size_t)n, &frame, &consumed)) &&
           consumed > 0 && frame.type == type;
}

/* The agent signs while the process goes on: start sends the CSR, before any poll. */
static void test_mt_identity_request_start_csr_sent_before_any_poll(void **state)
{
    (void)state;
    char path[108];
    int listener = silent_agent(path, sizeof(path));
    struct mt_identity_request *request = NULL;
    char text[512] = "";
    struct mt_text reason = mt_text_on(text, sizeof(text));
    assert_true(
        mt_result_is_ok(mt_identity_request_start(path, getuid(), 5000, &request, &reason)));
    int connection = -1;
    assert_true(request_arrived(listener, MT_PROTO_SVID_REQUEST, &connection));
    mt_identity_request_free(request);
    close(connection);
    close(listener);
    unlink(path);
}

/* The same for the metrics file, asked beside the first identity request (core/runtime.c). */
static void test_mt_identity_metrics_request_start_sent_before_any_poll(void **state)
{
    (void)state;
    char path[108];
    int listener = silent_agent(path, sizeof(path));
    struct mt_identity_metrics_request *request = NULL;
    char text[512] = "";
    struct mt_text reason = mt_text_on(text, sizeof(text));
    assert_true(mt_result_is_ok(
        mt_identity_metrics_request_start(path, getuid(), 5000, &request, &reason)));
    int connection = -1;
    assert_true(request_arrived(listener, MT_PROTO_METRICS_FILE_REQUEST, &connection));
    /* No reply yet: poll says so instead of waiting past what it was given. */
    int fd = -1;
    assert_int_equal(mt_identity_metrics_request_poll(request, 0, &fd, &reason).error,
                     MT_ERR_WOULD_BLOCK);
    assert_int_equal(fd, -1);
    mt_identity_metrics_request_free(request);
    close(connection);
    close(listener);
    unlink(path);
}

/*
 * The frame and the descriptors one recvmsg brings from the client: *received_fd is the first
 * descriptor (-1: none), *count how many came.
 */
static void receive_request(int listener, struct mt_proto_frame *frame, int *received_fd,
                            size_t *count)
{
    static uint8_t buffer[MT_PROTO_MAX_FRAME];
    int fd = accept(listener, NULL, NULL);
    assert_true(fd >= 0);
    union {
        struct cmsghdr header;
        char bytes[CMSG_SPACE(4 * sizeof(int))];
    } control;
    struct iovec vector = {buffer, sizeof(buffer)};
    struct msghdr message = {.msg_iov = &vector,
                             .msg_iovlen = 1,
                             .msg_control = control.bytes,
                             .msg_controllen = sizeof(control.bytes)};
    ssize_t n = recvmsg(fd, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    assert_true(n > 0);
    size_t consumed = 0;
    assert_true(mt_result_is_ok(mt_proto_frame_parse(buffer, (size_t)n, frame, &consumed)));
    assert_int_equal(consumed, (size_t)n);
    *received_fd = -1;
    *count = 0;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header != NULL;
         header = CMSG_NXTHDR(&message, header)) {
        size_t in_header = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < in_header; i++) {
            int passed;
            memcpy(&passed, CMSG_DATA(header) + i * sizeof(int), sizeof(passed));
            if (*received_fd < 0)
                *received_fd = passed;
            else
                close(passed);
        }
        *count += in_header;
    }
    close(fd);
}

/* The pid a pidfd names, from its fdinfo. */
static long pidfd_names(int pidfd)
{
    char path[64];
    char line[128];
    long pid = 0;
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
    FILE *file = fopen(path, "re");
    assert_non_null(file);
    while (fgets(line, sizeof(line), file) != NULL)
        if (sscanf(line, "Pid: %ld", &pid) == 1)
            break;
    fclose(file);
    return pid;
}

/*
 * With a subject set, every request names it (version 2, SUBJECT) and carries its pidfd; set
 * back to -1, requests are this process's again: version 1, no descriptor.
 */
static void test_mt_identity_set_subject_requests_name_it_and_carry_its_pidfd(void **state)
{
    (void)state;
    /* Without pidfd_open (valgrind 3.19 does not emulate it; kernels before 5.3) there is no
     * subject to name: the plain and sanitized builds run this test. */
    int probe = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (probe < 0 && errno == ENOSYS)
        skip();
    if (probe >= 0)
        close(probe);
    char path[108];
    int listener = silent_agent(path, sizeof(path));
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        pause();
        _exit(0);
    }
    char text[512] = "";
    struct mt_text reason = mt_text_on(text, sizeof(text));
    int pidfd = -1;
    bool supervising = mt_result_is_ok(mt_identity_supervise(child, &pidfd, &reason));
    if (!supervising) {
        /* The paused child would outlive a failed test and hold its runner forever. */
        kill(child, SIGKILL);
        (void)waitpid(child, NULL, 0);
    }
    assert_true(supervising);
    assert_int_equal(mt_identity_subject(), pidfd);
    for (int subject = 1; subject >= 0; subject--) {
        struct mt_identity_request *request = NULL;
        assert_true(
            mt_result_is_ok(mt_identity_request_start(path, getuid(), 5000, &request, &reason)));
        struct mt_proto_frame frame;
        int received = -1;
        size_t count = 0;
        receive_request(listener, &frame, &received, &count);
        mt_identity_request_free(request);
        bool has_subject = !subject;
        assert_true(mt_result_is_ok(mt_proto_decode_subject(&frame, &has_subject)));
        assert_int_equal(has_subject, subject);
        assert_int_equal(frame.version, subject ? MT_PROTO_VERSION_SUBJECT : MT_PROTO_VERSION);
        assert_int_equal(count, subject ? 1 : 0);
        if (subject) {
            assert_int_equal(pidfd_names(received), child);
            close(received);
        }
        struct mt_proto_svid_request decoded;
        assert_true(mt_result_is_ok(mt_proto_decode_svid_request(&frame, &decoded)));
        mt_identity_set_subject(-1);
    }
    assert_int_equal(mt_identity_subject(), -1);
    kill(child, SIGKILL);
    assert_int_equal(waitpid(child, NULL, 0), child);
    close(pidfd);
    close(listener);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt_identity_fetch_good_reply_credentials_usable_by_tls),
        cmocka_unit_test(test_mt_identity_fetch_ca_as_leaf_refused_with_reason),
        cmocka_unit_test(test_mt_identity_fetch_leaf_for_other_key_refused_with_reason),
        cmocka_unit_test(test_mt_identity_fetch_error_reply_refused_with_its_text),
        cmocka_unit_test(test_mt_identity_fetch_reply_larger_than_first_buffer_read_whole),
        cmocka_unit_test(test_mt_identity_request_start_csr_sent_before_any_poll),
        cmocka_unit_test(test_mt_identity_metrics_request_start_sent_before_any_poll),
        cmocka_unit_test(test_mt_identity_set_subject_requests_name_it_and_carry_its_pidfd),
    };
    return cmocka_run_group_tests(tests, make_ca, free_ca);
}
