/*
 * Tests for core/runtime.c's first identity: the process asks the agent for its metrics file
 * beside its first identity request, not after the reply, so that a process's way to its first
 * connection holds one round trip to the agent instead of two; and the file from that request
 * is the one the process then records into, asked for once.
 *
 * The agent is a fake one in a thread, which holds its answer to the identity request until the
 * metrics-file request has come (or 1.5 s have passed): a process that asks for the file only
 * after its identity is installed shows here as a metrics request that came after the reply.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/sys.h"

#include "test_ca.h"

#include "core/runtime.h"
#include "identity/proto.h"
#include "metrics/directory.h"
#include "metrics/layout.h"
#include "tls/tls.h"

#define WORKLOAD_ID "spiffe://example.org/ns/web"
#define DAY (24 * 60 * 60)
/* How long the fake agent holds the identity reply waiting for the metrics request. */
#define HOLD_MS 1500
/* Bounds the fake agent's whole life. */
#define SERVE_MS 8000
#define CLIENTS_MAX 4

struct fake_agent {
    char directory[64];
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int listener;
    pthread_t thread;
    struct mt_metrics_directory metrics;
    /* What the process asked, in which order. */
    int identity_requests;
    int metrics_requests;
    bool metrics_asked_before_identity_reply;
    int file; /* a copy of the metrics file handed out, -1 before */
    time_t not_after;
};

static struct test_ca ca;
static struct fake_agent agent;

static long long now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* The request frame, read whole (the process sends each in one write). */
static void read_request(int fd, uint8_t *buffer, size_t capacity, struct mt_proto_frame *frame)
{
    size_t received = 0;
    for (;;) {
        size_t consumed = 0;
        assert_true(mt_result_is_ok(mt_proto_frame_parse(buffer, received, frame, &consumed)));
        if (consumed > 0)
            return;
        ssize_t n = recv(fd, buffer + received, capacity - received, 0);
        assert_true(n > 0);
        received += (size_t)n;
    }
}

static size_t identity_reply(const struct mt_proto_frame *frame, uint8_t *reply, size_t capacity)
{
    struct mt_proto_svid_request request;
    assert_true(mt_result_is_ok(mt_proto_decode_svid_request(frame, &request)));
    time_t now = time(NULL);
    agent.not_after = now + DAY;
    uint8_t leaf[MT_X509_CERT_DER_MAX];
    size_t leaf_length = 0;
    assert_true(mt_result_is_ok(
        mt_x509_leaf_issue(request.csr.data, request.csr.length, WORKLOAD_ID, ca.der, ca.length,
                           ca.key, now - 300, agent.not_after, leaf, sizeof(leaf), &leaf_length)));
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, reply, capacity, MT_PROTO_SVID_RESPONSE);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_SPIFFE_ID, WORKLOAD_ID, strlen(WORKLOAD_ID));
    mt_proto_writer_put(&writer, MT_PROTO_TAG_CERT, leaf, leaf_length);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_BUNDLE, ca.der, ca.length);
    mt_proto_writer_put_u64(&writer, MT_PROTO_TAG_EXPIRY, (uint64_t)agent.not_after);
    size_t length = 0;
    assert_true(mt_result_is_ok(mt_proto_writer_finish(&writer, &length)));
    return length;
}

/* What the agent does: a file made for this process, passed with the reply (SCM_RIGHTS). */
static void give_metrics_file(int client)
{
    char text[256];
    struct mt_text reason = mt_text_on(text, sizeof(text));
    int file = -1;
    assert_true(mt_result_is_ok(
        mt_metrics_file_create(&agent.metrics, getpid(), getuid(), 1, &file, &reason)));
    uint8_t reply[64];
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, reply, sizeof(reply), MT_PROTO_METRICS_FILE_RESPONSE);
    mt_proto_writer_put_u32(&writer, MT_PROTO_TAG_PID, (uint32_t)getpid());
    mt_proto_writer_put_u64(&writer, MT_PROTO_TAG_START_TIME, 1);
    size_t length = 0;
    assert_true(mt_result_is_ok(mt_proto_writer_finish(&writer, &length)));
    assert_int_equal(mt_sys_send_fd(client, reply, length, file, MSG_NOSIGNAL), (ssize_t)length);
    agent.file = file;
}

static void *serve(void *argument)
{
    (void)argument;
    static uint8_t buffer[MT_PROTO_MAX_FRAME];
    static uint8_t held_reply[MT_PROTO_MAX_FRAME];
    size_t held_length = 0;
    int held_client = -1;
    long long hold_until = 0;
    bool identity_answered = false;
    int clients[CLIENTS_MAX];
    int client_count = 0;
    long long deadline = now_ms() + SERVE_MS;
    while (now_ms() < deadline && !(identity_answered && agent.metrics_requests > 0)) {
        struct pollfd entries[1 + CLIENTS_MAX] = {{.fd = agent.listener, .events = POLLIN}};
        for (int i = 0; i < client_count; i++)
            entries[1 + i] = (struct pollfd){.fd = clients[i], .events = POLLIN};
        (void)poll(entries, (nfds_t)(1 + client_count), 20);
        if ((entries[0].revents & POLLIN) && client_count < CLIENTS_MAX)
            clients[client_count++] = accept(agent.listener, NULL, NULL);
        for (int i = 0; i < client_count; i++) {
            if (clients[i] < 0 || !(entries[1 + i].revents & POLLIN))
                continue;
            struct mt_proto_frame frame;
            read_request(clients[i], buffer, sizeof(buffer), &frame);
            if (frame.type == MT_PROTO_SVID_REQUEST) {
                agent.identity_requests++;
                held_length = identity_reply(&frame, held_reply, sizeof(held_reply));
                held_client = clients[i];
                hold_until = now_ms() + HOLD_MS;
            } else {
                assert_int_equal(frame.type, MT_PROTO_METRICS_FILE_REQUEST);
                agent.metrics_requests++;
                agent.metrics_asked_before_identity_reply = !identity_answered;
                give_metrics_file(clients[i]);
                close(clients[i]);
            }
            clients[i] = -1;
        }
        if (held_client >= 0 && (agent.metrics_requests > 0 || now_ms() >= hold_until)) {
            assert_int_equal(send(held_client, held_reply, held_length, MSG_NOSIGNAL),
                             (ssize_t)held_length);
            close(held_client);
            held_client = -1;
            identity_answered = true;
        }
    }
    for (int i = 0; i < client_count; i++)
        if (clients[i] >= 0)
            close(clients[i]);
    return NULL;
}

static int agent_start(void **state)
{
    (void)state;
    time_t now = time(NULL);
    if (!test_ca_make(&ca, "example.org", now - DAY, now + 30 * DAY))
        return -1;
    memset(&agent, 0, sizeof(agent));
    agent.file = -1;
    snprintf(agent.directory, sizeof(agent.directory), "/tmp/meshtls-test-runtime-XXXXXX");
    if (mkdtemp(agent.directory) == NULL)
        return -1;
    snprintf(agent.path, sizeof(agent.path), "%s/agent.sock", agent.directory);
    snprintf(agent.metrics.path, sizeof(agent.metrics.path), "%s/metrics", agent.directory);
    agent.metrics.fd = -1;
    if (mkdir(agent.metrics.path, 0755) != 0 ||
        !mt_result_is_ok(mt_metrics_directory_open(&agent.metrics, NULL)))
        return -1;

    /* The process's configuration: read once, at its first use (runtime.h). */
    char config[sizeof(agent.directory) + 16];
    snprintf(config, sizeof(config), "%s/meshtls.conf", agent.directory);
    FILE *file = fopen(config, "w");
    if (file == NULL)
        return -1;
    fprintf(file, "agent_socket = \"%s\";\nagent_uid = %u;\n", agent.path, (unsigned)getuid());
    fclose(file);
    setenv("MESHTLS_CONFIG", config, 1);

    struct sockaddr_un address = {.sun_family = AF_UNIX};
    memcpy(address.sun_path, agent.path, strlen(agent.path) + 1);
    agent.listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (agent.listener < 0 ||
        bind(agent.listener, (struct sockaddr *)&address, sizeof(address)) != 0 ||
        listen(agent.listener, CLIENTS_MAX) != 0)
        return -1;
    return pthread_create(&agent.thread, NULL, serve, NULL) == 0 ? 0 : -1;
}

static int agent_stop(void **state)
{
    (void)state;
    close(agent.listener);
    if (agent.file >= 0)
        close(agent.file);
    mt_metrics_directory_close(&agent.metrics);
    char command[128];
    snprintf(command, sizeof(command), "rm -rf '%s'", agent.directory);
    int status = system(command);
    test_ca_free(&ca);
    return status == 0 ? 0 : -1;
}

static void test_mt_runtime_context_first_identity_asks_metrics_file_beside_it(void **state)
{
    (void)state;
    char text[600] = "";
    struct mt_text reason = mt_text_on(text, sizeof(text));
    struct mt_tls_context *context = mt_runtime_context(&reason);
    assert_non_null(context);
    assert_string_equal(mt_tls_context_credentials(context)->spiffe_id, WORKLOAD_ID);
    assert_int_equal(pthread_join(agent.thread, NULL), 0);

    /* Both requests were out before the agent answered the first: one round trip, not two. */
    assert_int_equal(agent.identity_requests, 1);
    assert_int_equal(agent.metrics_requests, 1);
    assert_true(agent.metrics_asked_before_identity_reply);

    /* The file handed out is the one in use: installing the identity recorded its expiry. */
    assert_true(agent.file >= 0);
    struct mt_metrics_file_header *header =
        mmap(NULL, MT_METRICS_HEADER_SIZE, PROT_READ, MAP_SHARED, agent.file, 0);
    assert_true(header != MAP_FAILED);
    assert_int_equal(__atomic_load_n(&header->identity_expiry, __ATOMIC_RELAXED), agent.not_after);
    munmap(header, MT_METRICS_HEADER_SIZE);
    mt_tls_context_release(context);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt_runtime_context_first_identity_asks_metrics_file_beside_it),
    };
    return cmocka_run_group_tests(tests, agent_start, agent_stop);
}
