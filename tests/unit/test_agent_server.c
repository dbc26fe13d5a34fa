/*
 * Tests for the agent's server (agent/server*.c): a request in, the reply or the refusal out.
 *
 * The server runs in this process on a Unix socket in a scratch directory, with a dev CA made
 * there and the default configuration (every caller is spiffe://meshtls.local/uid/<uid>) unless
 * a test loads rules. The test is the client: it connects, writes bytes, and turns the server's
 * loop (mt_server_turn) until its socket has something to read, so every frame goes through the
 * real accept, attestation (this process's own credentials), reading, dispatch and writing. Frames
 * are built and read with identity/proto.h; the wire format is that of
 * tests/integration/agent_protocol.py.
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pidfd_support.h"

#include "agent/agent_config.h"
#include "agent/agent_metrics.h"
#include "agent/issuer.h"
#include "agent/server.h"
#include "identity/proto.h"
#include "tls/x509.h"
#include "util/log.h"

/* Turns enough for accept, then reading, then replying; a server that needs more is stuck. */
#define TURNS_MAX 20

struct fixture {
    char dir[64];
    char socket_path[96];
    char state_dir[96];
    char message[512];
    struct mt_agent_config config;
    struct mt_issuer issuer;
    struct mt_server server;
    bool server_open;
    uint8_t reply[MT_PROTO_MAX_FRAME];
    size_t reply_length;
    struct mt_proto_frame frame; /* the reply, parsed */
};

static int setup(void **state)
{
    struct fixture *fixture = calloc(1, sizeof(*fixture));
    assert_non_null(fixture);
    snprintf(fixture->dir, sizeof(fixture->dir), "/tmp/test_agent_server.XXXXXX");
    assert_non_null(mkdtemp(fixture->dir));
    snprintf(fixture->socket_path, sizeof(fixture->socket_path), "%s/agent.sock", fixture->dir);
    snprintf(fixture->state_dir, sizeof(fixture->state_dir), "%s/state", fixture->dir);
    mt_agent_config_init(&fixture->config);
    *state = fixture;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fixture = *state;
    if (fixture->server_open)
        mt_server_close(&fixture->server);
    mt_issuer_close(&fixture->issuer);
    mt_agent_config_cleanup(&fixture->config);
    char command[160];
    snprintf(command, sizeof(command), "rm -rf '%s'", fixture->dir);
    assert_int_equal(system(command), 0);
    free(fixture);
    return 0;
}

/* The server on its socket, with its dev CA; the order of the agent's main. */
static void start(struct fixture *fixture)
{
    struct mt_text reason = mt_text_on(fixture->message, sizeof(fixture->message));
    assert_true(mt_result_is_ok(mt_server_open(&fixture->server, fixture->socket_path,
                                               &fixture->config, &fixture->issuer, &reason)));
    fixture->server_open = true;
    bool created = false;
    if (!mt_result_is_ok(mt_issuer_open(&fixture->issuer, &fixture->config, fixture->state_dir,
                                        time(NULL), &created, &reason)))
        fail_msg("issuer: %s", fixture->message);
    assert_true(created);
}

/* Rules for the configuration, from a file as the agent reads them. */
static void load_rules(struct fixture *fixture, const char *text)
{
    char path[96];
    snprintf(path, sizeof(path), "%s/agent.conf", fixture->dir);
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    assert_true(fputs(text, file) >= 0);
    fclose(file);
    if (!mt_result_is_ok(
            mt_agent_config_load_file(path, &fixture->config, MT_TEXT_ON(fixture->message))))
        fail_msg("config: %s", fixture->message);
}

static int connect_client(const struct fixture *fixture)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof(address.sun_path), "%s", fixture->socket_path);
    assert_int_equal(connect(fd, (struct sockaddr *)&address, sizeof(address)), 0);
    return fd;
}

static void send_bytes(int fd, const void *bytes, size_t length)
{
    assert_int_equal(send(fd, bytes, length, MSG_NOSIGNAL), (ssize_t)length);
}

/* Turns the server's loop until fd has something to read (a reply, or the end of the stream). */
static void serve_until_readable(struct fixture *fixture, int fd)
{
    for (int turn = 0; turn < TURNS_MAX; turn++) {
        struct pollfd ready = {.fd = fd, .events = POLLIN};
        if (poll(&ready, 1, 0) == 1)
            return;
        int signal_number = -1;
        assert_true(mt_result_is_ok(mt_server_turn(&fixture->server, -1, &signal_number)));
        assert_int_equal(signal_number, 0);
    }
    fail_msg("the server sent nothing in %d turns", TURNS_MAX);
}

/* Reads one whole frame into fixture->reply and parses it; false at the end of the stream. */
static bool receive_frame(struct fixture *fixture, int fd, int *passed_fd)
{
    union {
        struct cmsghdr header;
        char bytes[CMSG_SPACE(sizeof(int))];
    } control;
    size_t length = 0;
    size_t expected = MT_PROTO_HEADER_SIZE;
    if (passed_fd != NULL)
        *passed_fd = -1;
    while (length < expected) {
        struct iovec vector = {fixture->reply + length, expected - length};
        struct msghdr message = {.msg_iov = &vector,
                                 .msg_iovlen = 1,
                                 .msg_control = control.bytes,
                                 .msg_controllen = sizeof(control.bytes)};
        ssize_t got = recvmsg(fd, &message, MSG_CMSG_CLOEXEC);
        assert_true(got >= 0);
        if (got == 0) {
            assert_int_equal(length, 0);
            return false;
        }
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        if (header != NULL && header->cmsg_type == SCM_RIGHTS) {
            assert_non_null(passed_fd);
            memcpy(passed_fd, CMSG_DATA(header), sizeof(int));
        }
        length += (size_t)got;
        if (length == MT_PROTO_HEADER_SIZE)
            expected += (size_t)fixture->reply[4] << 24 | (size_t)fixture->reply[5] << 16 |
                        (size_t)fixture->reply[6] << 8 | fixture->reply[7];
        assert_true(expected <= sizeof(fixture->reply));
    }
    fixture->reply_length = length;
    size_t consumed = 0;
    assert_true(
        mt_result_is_ok(mt_proto_frame_parse(fixture->reply, length, &fixture->frame, &consumed)));
    assert_int_equal(consumed, length);
    return true;
}

/* Sends request, serves it, and reads the reply (which must come). */
static void exchange(struct fixture *fixture, const uint8_t *request, size_t length, int *passed_fd)
{
    int fd = connect_client(fixture);
    send_bytes(fd, request, length);
    serve_until_readable(fixture, fd);
    assert_true(receive_frame(fixture, fd, passed_fd));
    close(fd);
}

/* A frame of type with at most one TLV (tag 0: none). */
static size_t build_request(uint8_t *frame, size_t capacity, enum mt_proto_type type,
                            enum mt_proto_tag tag, const void *value, size_t value_length)
{
    struct mt_proto_writer writer;
    size_t length = 0;
    mt_proto_writer_begin(&writer, frame, capacity, type);
    if (tag != 0)
        mt_proto_writer_put(&writer, tag, value, value_length);
    assert_true(mt_result_is_ok(mt_proto_writer_finish(&writer, &length)));
    return length;
}

/* The reply must be an ERROR with code, its message containing text. */
static void assert_refused(const struct fixture *fixture, enum mt_proto_error_code code,
                           const char *text)
{
    assert_int_equal(fixture->frame.type, MT_PROTO_ERROR);
    struct mt_proto_error_reply error;
    assert_true(mt_result_is_ok(mt_proto_decode_error(&fixture->frame, &error)));
    char message[256];
    snprintf(message, sizeof(message), "%.*s", (int)error.message.length,
             (const char *)error.message.data);
    if (error.code != code || strstr(message, text) == NULL)
        fail_msg("refused with %s \"%s\", expected %s \"...%s...\"",
                 mt_proto_error_code_name(error.code), message, mt_proto_error_code_name(code),
                 text);
}

static void expected_default_id(char *id, size_t capacity)
{
    snprintf(id, capacity, "spiffe://meshtls.local/uid/%u", (unsigned)getuid());
}

/* ---- requests ----------------------------------------------------------------------------- */

static void test_mt_server_turn_id_request_answers_the_callers_identity(void **state)
{
    struct fixture *fixture = *state;
    start(fixture);
    uint8_t request[64];
    size_t length = build_request(request, sizeof(request), MT_PROTO_ID_REQUEST, 0, NULL, 0);
    exchange(fixture, request, length, NULL);
    assert_int_equal(fixture->frame.type, MT_PROTO_ID_RESPONSE);
    struct mt_proto_blob id;
    assert_true(mt_result_is_ok(mt_proto_decode_id_response(&fixture->frame, &id)));
    char expected[64];
    expected_default_id(expected, sizeof(expected));
    assert_int_equal(id.length, strlen(expected));
    assert_memory_equal(id.data, expected, id.length);
}

/* A rule for another uid must not apply, the one for ours must: the server asks the rules with
 * the caller's attested uid, not any uid. */
static void test_mt_server_turn_id_request_follows_the_rules(void **state)
{
    struct fixture *fixture = *state;
    char rules[256];
    snprintf(rules, sizeof(rules),
             "rules = (\n  { uid = %u; id = \"ns/other\"; },\n  { uid = %u; id = "
             "\"ns/mine/{uid}\"; }\n);\n",
             (unsigned)getuid() + 1, (unsigned)getuid());
    load_rules(fixture, rules);
    start(fixture);
    uint8_t request[64];
    size_t length = build_request(request, sizeof(request), MT_PROTO_ID_REQUEST, 0, NULL, 0);
    exchange(fixture, request, length, NULL);
    struct mt_proto_blob id;
    assert_true(mt_result_is_ok(mt_proto_decode_id_response(&fixture->frame, &id)));
    char expected[64];
    snprintf(expected, sizeof(expected), "spiffe://meshtls.local/ns/mine/%u", (unsigned)getuid());
    assert_int_equal(id.length, strlen(expected));
    assert_memory_equal(id.data, expected, id.length);
}

static void test_mt_server_turn_svid_request_issues_a_leaf_for_the_csr(void **state)
{
    struct fixture *fixture = *state;
    start(fixture);
    struct mt_x509_key *key = NULL;
    assert_true(mt_result_is_ok(mt_x509_key_generate(&key)));
    uint8_t csr[1024];
    size_t csr_length = 0;
    assert_true(mt_result_is_ok(mt_x509_csr_create(key, csr, sizeof(csr), &csr_length)));
    static uint8_t request[2048];
    size_t length = build_request(request, sizeof(request), MT_PROTO_SVID_REQUEST, MT_PROTO_TAG_CSR,
                                  csr, csr_length);
    time_t asked = time(NULL);
    exchange(fixture, request, length, NULL);

    assert_int_equal(fixture->frame.type, MT_PROTO_SVID_RESPONSE);
    static struct mt_proto_svid_response response;
    assert_true(mt_result_is_ok(mt_proto_decode_svid_response(&fixture->frame, &response)));
    char expected[64];
    expected_default_id(expected, sizeof(expected));
    assert_int_equal(response.spiffe_id.length, strlen(expected));
    assert_memory_equal(response.spiffe_id.data, expected, response.spiffe_id.length);
    /* The leaf names the same identity, for the key of the CSR; the dev CA is the anchor. */
    assert_true(response.cert_count >= 1);
    char leaf_id[MT_SPIFFE_ID_MAX + 1];
    assert_true(mt_result_is_ok(mt_x509_svid_check(response.certs[0].data, response.certs[0].length,
                                                   leaf_id, sizeof(leaf_id), NULL)));
    assert_string_equal(leaf_id, expected);
    assert_true(mt_x509_key_matches_cert(key, response.certs[0].data, response.certs[0].length));
    assert_int_equal(response.anchor_count, 1);
    assert_true(mt_x509_cert_is_ca(response.anchors[0].data, response.anchors[0].length));
    /* The default lifetime, counted from when it was asked. */
    assert_in_range(response.expiry, (uint64_t)asked + MT_AGENT_CONFIG_DEFAULT_LIFETIME - 5,
                    (uint64_t)time(NULL) + MT_AGENT_CONFIG_DEFAULT_LIFETIME + 5);
    mt_x509_key_free(key);
}

static void test_mt_server_turn_svid_request_without_csr_refused_malformed(void **state)
{
    struct fixture *fixture = *state;
    start(fixture);
    uint8_t request[64];
    size_t length = build_request(request, sizeof(request), MT_PROTO_SVID_REQUEST, 0, NULL, 0);
    exchange(fixture, request, length, NULL);
    assert_refused(fixture, MT_PROTO_ERROR_MALFORMED, "SVID request malformed (needs one CSR)");
}

static void test_mt_server_turn_svid_request_bad_csr_refused(void **state)
{
    struct fixture *fixture = *state;
    start(fixture);
    static const uint8_t garbage[] = {0x30, 0x03, 0x02, 0x01, 0x00};
    uint8_t request[64];
    size_t length = build_request(request, sizeof(request), MT_PROTO_SVID_REQUEST, MT_PROTO_TAG_CSR,
                                  garbage, sizeof(garbage));
    exchange(fixture, request, length, NULL);
    assert_refused(fixture, MT_PROTO_ERROR_BAD_CSR, "CSR rejected");
}

/* A reply type sent as a request is no request. */
static void test_mt_server_turn_response_type_refused_unsupported(void **state)
{
    struct fixture *fixture = *state;
    start(fixture);
    uint8_t request[64];
    size_t length = build_request(request, sizeof(request), MT_PROTO_ID_RESPONSE, 0, NULL, 0);
    exchange(fixture, request, length, NULL);
    assert_refused(fixture, MT_PROTO_ERROR_UNSUPPORTED, "message type 5 is not a request");
}

/* ---- malformed frames --------------------------------------------------------------------- */

static void test_mt_server_turn_bad_magic_gets_the_error_reply(void **state)
{
    struct fixture *fixture = *state;
    start(fixture);
    static const uint8_t request[] = {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T'};
    exchange(fixture, request, sizeof(request), NULL);
    assert_refused(fixture, MT_PROTO_ERROR_MALFORMED, "not an agent protocol frame");
}

static void test_mt_server_turn_other_version_refused_unsupported(void **state)
{
    struct fixture *fixture = *state;
    start(fixture);
    static const uint8_t request[] = {'M', 'T', 3, MT_PROTO_ID_REQUEST, 0, 0, 0, 0};
    exchange(fixture, request, sizeof(request), NULL);
    assert_refused(fixture, MT_PROTO_ERROR_UNSUPPORTED,
                   "protocol version 3 not supported (this agent speaks 1 to 2)");
}

/* Refused from the header alone: the server never waits for (or allocates) the 16 MiB. */
static void test_mt_server_turn_oversized_declared_payload_refused(void **state)
{
    struct fixture *fixture = *state;
    start(fixture);
    static const uint8_t request[] = {
        'M', 'T', MT_PROTO_VERSION, MT_PROTO_SVID_REQUEST, 0x01, 0x00, 0x00, 0x00};
    exchange(fixture, request, sizeof(request), NULL);
    assert_refused(fixture, MT_PROTO_ERROR_MALFORMED, "declared payload larger than 65536 bytes");
}

/* One byte per turn: the header, then the payload it announces, are put together across reads. */
static void test_mt_server_turn_request_in_single_bytes_is_served(void **state)
{
    struct fixture *fixture = *state;
    start(fixture);
    static const char id[] = "spiffe://claimed/by/the/client";
    uint8_t request[128];
    /* A TLV the server ignores makes the payload more than nothing to reassemble. */
    size_t length = build_request(request, sizeof(request), MT_PROTO_ID_REQUEST,
                                  MT_PROTO_TAG_SPIFFE_ID, id, strlen(id));
    int fd = connect_client(fixture);
    for (size_t i = 0; i < length; i++) {
        send_bytes(fd, request + i, 1);
        int signal_number;
        assert_true(mt_result_is_ok(mt_server_turn(&fixture->server, -1, &signal_number)));
        if (i + 1 < length) {
            struct pollfd ready = {.fd = fd, .events = POLLIN};
            assert_int_equal(poll(&ready, 1, 0), 0);
        }
    }
    serve_until_readable(fixture, fd);
    assert_true(receive_frame(fixture, fd, NULL));
    close(fd);
    /* What the client claimed is not what it gets. */
    struct mt_proto_blob answer;
    assert_true(mt_result_is_ok(mt_proto_decode_id_response(&fixture->frame, &answer)));
    char expected[64];
    expected_default_id(expected, sizeof(expected));
    assert_int_equal(answer.length, strlen(expected));
    assert_memory_equal(answer.data, expected, answer.length);
}

/* A request cut short by the client gets no reply: the connection is closed. */
static void test_mt_server_turn_truncated_request_closed_without_reply(void **state)
{
    struct fixture *fixture = *state;
    start(fixture);
    uint8_t request[64];
    size_t length = build_request(request, sizeof(request), MT_PROTO_ID_REQUEST, 0, NULL, 0);
    int fd = connect_client(fixture);
    send_bytes(fd, request, length - 3);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    serve_until_readable(fixture, fd);
    assert_false(receive_frame(fixture, fd, NULL));
    close(fd);
}

/* ---- STATUS and METRICS_FILE -------------------------------------------------------------- */

/* What was issued to this process is listed for it afterwards. */
static void test_mt_server_turn_status_lists_what_was_issued(void **state)
{
    struct fixture *fixture = *state;
    REQUIRE_PIDFDS();
    start(fixture);
    struct mt_x509_key *key = NULL;
    assert_true(mt_result_is_ok(mt_x509_key_generate(&key)));
    uint8_t csr[1024];
    size_t csr_length = 0;
    assert_true(mt_result_is_ok(mt_x509_csr_create(key, csr, sizeof(csr), &csr_length)));
    mt_x509_key_free(key);
    static uint8_t request[2048];
    size_t length = build_request(request, sizeof(request), MT_PROTO_SVID_REQUEST, MT_PROTO_TAG_CSR,
                                  csr, csr_length);
    exchange(fixture, request, length, NULL);
    assert_int_equal(fixture->frame.type, MT_PROTO_SVID_RESPONSE);

    length = build_request(request, sizeof(request), MT_PROTO_STATUS_REQUEST, 0, NULL, 0);
    exchange(fixture, request, length, NULL);
    assert_int_equal(fixture->frame.type, MT_PROTO_STATUS_RESPONSE);
    static struct mt_proto_status_response status;
    assert_true(mt_result_is_ok(mt_proto_decode_status_response(&fixture->frame, &status)));
    char id[64];
    expected_default_id(id, sizeof(id));
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "process\t%ld\t%u\t", (long)getpid(), (unsigned)getuid());
    bool listed = false;
    for (size_t i = 0; i < status.record_count; i++) {
        char record[512];
        snprintf(record, sizeof(record), "%.*s", (int)status.records[i].length,
                 (const char *)status.records[i].data);
        listed = listed || (strncmp(record, prefix, strlen(prefix)) == 0 && strstr(record, id));
    }
    assert_true(listed);
}

/* The caller's metrics file comes with the reply, named by its attested pid. */
static void test_mt_server_turn_metrics_file_request_passes_the_file(void **state)
{
    struct fixture *fixture = *state;
    REQUIRE_PIDFDS();
    start(fixture);
    struct mt_text reason = mt_text_on(fixture->message, sizeof(fixture->message));
    if (!mt_result_is_ok(
            mt_agent_metrics_directory_create(&fixture->server.metrics_directory, &reason)))
        fail_msg("metrics directory: %s", fixture->message);
    uint8_t request[64];
    size_t length =
        build_request(request, sizeof(request), MT_PROTO_METRICS_FILE_REQUEST, 0, NULL, 0);
    int passed_fd = -1;
    exchange(fixture, request, length, &passed_fd);
    assert_int_equal(fixture->frame.type, MT_PROTO_METRICS_FILE_RESPONSE);
    struct mt_proto_metrics_file_response response;
    assert_true(mt_result_is_ok(mt_proto_decode_metrics_file_response(&fixture->frame, &response)));
    assert_int_equal(response.pid, (uint32_t)getpid());
    assert_true(passed_fd >= 0);
    struct stat passed;
    struct stat named;
    char path[192];
    snprintf(path, sizeof(path), "%s/metrics/%ld-%llu.metrics", fixture->dir, (long)getpid(),
             (unsigned long long)response.start_time);
    assert_int_equal(fstat(passed_fd, &passed), 0);
    assert_int_equal(stat(path, &named), 0);
    assert_true(passed.st_ino == named.st_ino && passed.st_dev == named.st_dev);
    close(passed_fd);
}

static size_t count_metrics_files(const struct fixture *fixture)
{
    size_t count = 0;
    char path[192];
    for (int i = 0; i < 300; i++) {
        snprintf(path, sizeof(path), "%s/metrics/9999%05d-1.metrics", fixture->dir, i);
        count += access(path, F_OK) == 0;
    }
    return count;
}

/* The files of 300 exited processes go in steps of MT_SERVER_SWEEP_STEP, requests served
 * between them: a node's thousands of files never hold the loop for the whole sweep. */
static void test_mt_server_turn_sweep_in_steps_between_requests(void **state)
{
    struct fixture *fixture = *state;
    REQUIRE_PIDFDS();
    start(fixture);
    if (!mt_result_is_ok(mt_agent_metrics_directory_create(&fixture->server.metrics_directory,
                                                           MT_TEXT_ON(fixture->message))))
        fail_msg("metrics directory: %s", fixture->message);
    char path[192];
    for (int i = 0; i < 300; i++) {
        /* Pids above any pid_max: none of these processes is alive. */
        snprintf(path, sizeof(path), "%s/metrics/9999%05d-1.metrics", fixture->dir, i);
        FILE *file = fopen(path, "w");
        assert_non_null(file);
        fclose(file);
    }
    fixture->server.next_sweep_ms = 0;
    int signal_number = 0;
    assert_true(mt_result_is_ok(mt_server_turn(&fixture->server, -1, &signal_number)));
    assert_true(fixture->server.sweeping);
    size_t left = count_metrics_files(fixture);
    assert_true(left >= 300 - MT_SERVER_SWEEP_STEP && left < 300);

    uint8_t request[64];
    size_t length = build_request(request, sizeof(request), MT_PROTO_ID_REQUEST, 0, NULL, 0);
    exchange(fixture, request, length, NULL);
    assert_int_equal(fixture->frame.type, MT_PROTO_ID_RESPONSE);

    for (int turn = 0; turn < 100 && fixture->server.sweeping; turn++)
        assert_true(mt_result_is_ok(mt_server_turn(&fixture->server, -1, &signal_number)));
    assert_false(fixture->server.sweeping);
    assert_int_equal(count_metrics_files(fixture), 0);
}

/* ---- the socket --------------------------------------------------------------------------- */

static void test_mt_server_open_live_agent_refused(void **state)
{
    struct fixture *fixture = *state;
    start(fixture);
    static struct mt_server second;
    assert_int_equal(mt_server_open(&second, fixture->socket_path, &fixture->config,
                                    &fixture->issuer, MT_TEXT_ON(fixture->message))
                         .error,
                     MT_ERR_IO);
    assert_non_null(strstr(fixture->message, "another meshtls-agent is already serving"));
    /* The first still serves. */
    uint8_t request[64];
    size_t length = build_request(request, sizeof(request), MT_PROTO_ID_REQUEST, 0, NULL, 0);
    exchange(fixture, request, length, NULL);
    assert_int_equal(fixture->frame.type, MT_PROTO_ID_RESPONSE);
}

static void test_mt_server_close_removes_its_socket(void **state)
{
    struct fixture *fixture = *state;
    start(fixture);
    struct stat status;
    assert_int_equal(lstat(fixture->socket_path, &status), 0);
    assert_true(S_ISSOCK(status.st_mode));
    assert_int_equal(status.st_mode & 0777, 0666);
    mt_server_close(&fixture->server);
    fixture->server_open = false;
    assert_int_equal(lstat(fixture->socket_path, &status), -1);
}

int main(void)
{
#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        TEST(test_mt_server_turn_id_request_answers_the_callers_identity),
        TEST(test_mt_server_turn_id_request_follows_the_rules),
        TEST(test_mt_server_turn_svid_request_issues_a_leaf_for_the_csr),
        TEST(test_mt_server_turn_svid_request_without_csr_refused_malformed),
        TEST(test_mt_server_turn_svid_request_bad_csr_refused),
        TEST(test_mt_server_turn_response_type_refused_unsupported),
        TEST(test_mt_server_turn_bad_magic_gets_the_error_reply),
        TEST(test_mt_server_turn_other_version_refused_unsupported),
        TEST(test_mt_server_turn_oversized_declared_payload_refused),
        TEST(test_mt_server_turn_request_in_single_bytes_is_served),
        TEST(test_mt_server_turn_truncated_request_closed_without_reply),
        TEST(test_mt_server_turn_status_lists_what_was_issued),
        TEST(test_mt_server_turn_metrics_file_request_passes_the_file),
        TEST(test_mt_server_turn_sweep_in_steps_between_requests),
        TEST(test_mt_server_open_live_agent_refused),
        TEST(test_mt_server_close_removes_its_socket),
    };
    mt_log_set_tag("test_agent_server");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
