/*
 * Unit tests for metrics/metrics.c (the process writer) and metrics/reader.c (the agent reader):
 * exact counts through the shared file, concurrent increments, growth past one chunk, fork,
 * hostile files, reason classes, outbound opens per destination (bounded, the rest as "other")
 * and the Prometheus rendering.
 *
 * Every test writes into the same per-process file (one process, one file), so each uses its own
 * port to keep its label sets apart. The file comes from a source that does what the agent does
 * (metrics/directory.h: create the file named by pid and start time, write the header).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "metrics/directory.h"
#include "metrics/metrics.h"
#include "metrics/reader.h"

static char directory[256];
static struct mt_metrics_directory metrics_directory = {.fd = -1};
static char socket_path[256];
static int files_given;

static unsigned long long own_start_time(void)
{
    char text[1024];
    FILE *file = fopen("/proc/self/stat", "r");
    size_t length = file != NULL ? fread(text, 1, sizeof(text) - 1, file) : 0;
    if (file != NULL)
        fclose(file);
    text[length] = '\0';
    unsigned long long start_time = 0;
    return mt_metrics_stat_start_time(text, &start_time) ? start_time : 0;
}

/* What the agent does for a process that asks: here the process is this one (or its child). */
static mt_result agent_like_source(int *fd, struct mt_text *reason)
{
    files_given++;
    return mt_metrics_file_create(&metrics_directory, getpid(), geteuid(), own_start_time(), fd,
                                  reason);
}

static int setup_directory(void **state)
{
    char template[] = "/tmp/meshtls-test-metrics-XXXXXX";
    if (mkdtemp(template) == NULL)
        return -1;
    snprintf(socket_path, sizeof(socket_path), "%s/agent.sock", template);
    snprintf(directory, sizeof(directory), "%s/metrics", template);
    if (mkdir(directory, 0755) != 0)
        return -1;
    snprintf(metrics_directory.path, sizeof(metrics_directory.path), "%s", directory);
    if (!mt_result_is_ok(mt_metrics_directory_open(&metrics_directory, NULL)))
        return -1;
    mt_metrics_init(agent_like_source);
    return 0;
}

static int remove_directory(void **state)
{
    mt_metrics_directory_close(&metrics_directory);
    char command[600];
    snprintf(command, sizeof(command), "rm -rf '%.*s'",
             (int)(strrchr(socket_path, '/') - socket_path), socket_path);
    return system(command) == 0 ? 0 : -1;
}

/* This process's file, read back as the agent reads it. */
static struct mt_metrics_collection collect_own(const struct mt_metrics_process **own)
{
    struct mt_metrics_collection collection;
    assert_true(mt_result_is_ok(mt_metrics_collect(&metrics_directory, &collection)));
    *own = NULL;
    for (size_t i = 0; i < collection.count; i++)
        if (collection.processes[i].pid == getpid())
            *own = &collection.processes[i];
    assert_non_null(*own);
    return collection;
}

static const struct mt_metrics_series_record *find_series(const struct mt_metrics_process *process,
                                                          bool inbound, bool tls, uint16_t port,
                                                          const char *peer_id)
{
    for (size_t i = 0; i < process->series_count; i++) {
        const struct mt_metrics_series_record *series = &process->series[i];
        if (series->inbound == inbound && series->tls == tls && series->port == port &&
            strcmp(series->peer_id, peer_id) == 0)
            return series;
    }
    return NULL;
}

static struct sockaddr_storage loopback(uint16_t port)
{
    struct sockaddr_storage address;
    memset(&address, 0, sizeof(address));
    struct sockaddr_in *ipv4 = (struct sockaddr_in *)&address;
    ipv4->sin_family = AF_INET;
    ipv4->sin_port = htons(port);
    ipv4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

static void test_connection_open_new_label_set_counts_exactly(void **state)
{
    struct sockaddr_storage peer = loopback(40001);
    struct mt_metrics_connection *first =
        mt_metrics_connection_open(false, true, 1001, &peer, "spiffe://td/a");
    struct mt_metrics_connection *second =
        mt_metrics_connection_open(false, true, 1001, &peer, "spiffe://td/a");
    assert_non_null(first);
    assert_non_null(second);
    mt_metrics_connection_describe(first, 7, &peer, "X25519MLKEM768");
    mt_metrics_bytes_written(first, 100);
    mt_metrics_bytes_read(first, 42);
    mt_metrics_bytes_written(second, 1);
    mt_metrics_connection_close(second);

    const struct mt_metrics_process *own;
    struct mt_metrics_collection collection = collect_own(&own);
    const struct mt_metrics_series_record *series =
        find_series(own, false, true, 1001, "spiffe://td/a");
    assert_non_null(series);
    assert_int_equal(series->open_total, 2);
    assert_int_equal(series->close_total, 1);
    assert_int_equal(mt_metrics_series_open_connections(series), 1);
    assert_int_equal(series->write_bytes, 101);
    assert_int_equal(series->read_bytes, 42);
    bool listed = false;
    for (size_t i = 0; i < own->connection_count; i++)
        if (own->connections[i].fd == 7) {
            listed = true;
            assert_string_equal(own->connections[i].peer, "127.0.0.1:40001");
            assert_string_equal(own->connections[i].peer_id, "spiffe://td/a");
            assert_string_equal(own->connections[i].key_exchange, "X25519MLKEM768");
            assert_int_equal(own->connections[i].write_bytes, 100);
        }
    assert_true(listed);
    mt_metrics_collection_free(&collection);
    mt_metrics_connection_close(first);
}

#define THREADS 8
#define ADDS_PER_THREAD 100000

static void *add_bytes(void *connection)
{
    for (int i = 0; i < ADDS_PER_THREAD; i++) {
        mt_metrics_bytes_read(connection, 3);
        mt_metrics_bytes_written(connection, 1);
    }
    return NULL;
}

static void test_bytes_read_concurrent_threads_exact_sum(void **state)
{
    struct mt_metrics_connection *connection =
        mt_metrics_connection_open(true, true, 1002, NULL, "spiffe://td/b");
    assert_non_null(connection);
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, add_bytes, connection), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    mt_metrics_connection_close(connection);

    const struct mt_metrics_process *own;
    struct mt_metrics_collection collection = collect_own(&own);
    const struct mt_metrics_series_record *series =
        find_series(own, true, true, 1002, "spiffe://td/b");
    assert_non_null(series);
    assert_int_equal(series->read_bytes, 3ull * THREADS * ADDS_PER_THREAD);
    assert_int_equal(series->write_bytes, 1ull * THREADS * ADDS_PER_THREAD);
    mt_metrics_collection_free(&collection);
}

struct opener {
    int index;
    struct mt_metrics_connection *connections[100];
};

static void *open_many(void *argument)
{
    struct opener *opener = argument;
    for (int i = 0; i < 100; i++) {
        char peer_id[64];
        snprintf(peer_id, sizeof(peer_id), "spiffe://td/grow/%d/%d", opener->index, i);
        opener->connections[i] = mt_metrics_connection_open(false, false, 1003, NULL, peer_id);
        mt_metrics_bytes_written(opener->connections[i], 1);
    }
    return NULL;
}

static void test_connection_open_past_one_chunk_grows_file(void **state)
{
    /* 800 label sets and 800 open connections: several chunks of each kind. */
    struct opener openers[8];
    pthread_t threads[8];
    for (int i = 0; i < 8; i++) {
        openers[i].index = i;
        assert_int_equal(pthread_create(&threads[i], NULL, open_many, &openers[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(threads[i], NULL);

    const struct mt_metrics_process *own;
    struct mt_metrics_collection collection = collect_own(&own);
    size_t series = 0;
    size_t open = 0;
    for (size_t i = 0; i < own->series_count; i++)
        if (own->series[i].port == 1003) {
            series++;
            assert_int_equal(own->series[i].open_total, 1);
            assert_int_equal(own->series[i].write_bytes, 1);
        }
    for (size_t i = 0; i < own->connection_count; i++)
        open += own->connections[i].port == 1003;
    assert_int_equal(series, 800);
    /* The status listing keeps a bounded number of a process's open connections. */
    assert_true(open <= MT_METRICS_CONNECTIONS_PER_PROCESS_MAX);
    assert_int_equal(own->connection_count, MT_METRICS_CONNECTIONS_PER_PROCESS_MAX);
    assert_true(own->header.chunk_count > 4);
    mt_metrics_collection_free(&collection);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 100; j++)
            mt_metrics_connection_close(openers[i].connections[j]);
}

static void test_connection_close_slot_reused_counts_once(void **state)
{
    struct mt_metrics_connection *connection =
        mt_metrics_connection_open(true, false, 1004, NULL, NULL);
    assert_non_null(connection);
    /* The slot is reused by the next connection; the old generation no longer counts there. */
    mt_metrics_connection_close(connection);
    struct mt_metrics_connection *reused =
        mt_metrics_connection_open(true, false, 1004, NULL, NULL);
    assert_non_null(reused);
    const struct mt_metrics_process *own;
    struct mt_metrics_collection collection = collect_own(&own);
    const struct mt_metrics_series_record *series = find_series(own, true, false, 1004, "");
    assert_non_null(series);
    assert_int_equal(series->open_total, 2);
    assert_int_equal(series->close_total, 1);
    mt_metrics_collection_free(&collection);
    mt_metrics_connection_close(reused);
}

static void test_handshake_outcomes_histogram_and_reasons(void **state)
{
    mt_metrics_handshake(true, 1500, false, NULL);    /* bucket 0.002 */
    mt_metrics_handshake(true, 20000000, true, NULL); /* +Inf, resumed */
    mt_metrics_handshake(false, 0, false, "peer did not speak TLS");
    mt_metrics_handshake(false, 0, false, "something new");
    mt_metrics_authz(false, 1005, "spiffe://td/intruder");
    mt_metrics_authz(true, 1005, "spiffe://td/friend");
    mt_metrics_identity(1700000000, false);
    mt_metrics_identity(1700000100, true);

    const struct mt_metrics_process *own;
    struct mt_metrics_collection collection = collect_own(&own);
    const struct mt_metrics_handshakes *inbound = &own->header.handshakes[MT_METRICS_INBOUND];
    const struct mt_metrics_handshakes *outbound = &own->header.handshakes[MT_METRICS_OUTBOUND];
    assert_int_equal(inbound->buckets[1], 1);
    assert_int_equal(inbound->buckets[MT_METRICS_BUCKET_COUNT], 1);
    assert_int_equal(inbound->success_count, 2);
    assert_int_equal(inbound->resumed_count, 1);
    assert_int_equal(outbound->resumed_count, 0);
    assert_int_equal(inbound->duration_sum_us, 20001500);
    assert_int_equal(outbound->failures[MT_METRICS_FAILURE_NOT_TLS], 1);
    assert_int_equal(outbound->failures[MT_METRICS_FAILURE_OTHER], 1);
    assert_int_equal(own->header.identity_expiry, 1700000100);
    assert_int_equal(own->header.identity_refresh_count, 1);
    const struct mt_metrics_series_record *denied =
        find_series(own, true, true, 1005, "spiffe://td/intruder");
    assert_non_null(denied);
    assert_int_equal(denied->authz_deny, 1);
    assert_int_equal(denied->authz_allow, 0);

    struct mt_metrics_text text = {0};
    mt_metrics_render(&collection, &text);
    assert_false(text.failed);
    assert_non_null(strstr(text.data, "# TYPE handshake_duration_seconds histogram\n"));
    assert_non_null(strstr(text.data, ",direction=\"inbound\",le=\"0.002\"} 1\n"));
    assert_non_null(strstr(text.data, ",direction=\"inbound\",le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(text.data, ",direction=\"outbound\",reason=\"not_tls\"} 1\n"));
    assert_non_null(strstr(text.data, "# TYPE handshakes_resumed_total counter\n"));
    assert_non_null(strstr(text.data, "handshakes_resumed_total{pid="));
    assert_non_null(strstr(text.data, ",direction=\"inbound\"} 1\n"));
    assert_non_null(strstr(text.data, ",port=\"1005\",peer_id=\"spiffe://td/intruder\"} 1\n"));
    assert_non_null(strstr(text.data, "identity_cert_expiration_timestamp_seconds{pid="));
    mt_metrics_text_free(&text);
    mt_metrics_collection_free(&collection);
}

static void test_connection_open_in_fork_child_writes_own_file(void **state)
{
    /* Static: the child inherits it and _exits without closing it (closing would count it
     * closed in the parent's file); memcheck then still finds it reachable, not lost. */
    static struct mt_metrics_connection *parent_connection;
    parent_connection = mt_metrics_connection_open(false, true, 1006, NULL, "spiffe://td/parent");
    assert_non_null(parent_connection);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct mt_metrics_connection *own_connection =
            mt_metrics_connection_open(false, true, 1006, NULL, "spiffe://td/child");
        mt_metrics_bytes_written(own_connection, 5);
        const struct mt_metrics_process *own = NULL;
        struct mt_metrics_collection collection;
        int status = 1;
        if (own_connection != NULL &&
            mt_result_is_ok(mt_metrics_collect(&metrics_directory, &collection))) {
            for (size_t i = 0; i < collection.count; i++)
                if (collection.processes[i].pid == getpid())
                    own = &collection.processes[i];
            if (own != NULL && own->series_count == 1 &&
                find_series(own, false, true, 1006, "spiffe://td/child") != NULL &&
                own->series[0].write_bytes == 5)
                status = 0;
            mt_metrics_collection_free(&collection);
        }
        /* What the child opened is released, so memcheck sees no leak in it either. */
        mt_metrics_connection_close(own_connection);
        _exit(status);
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    const struct mt_metrics_process *own;
    struct mt_metrics_collection collection = collect_own(&own);
    assert_null(find_series(own, false, true, 1006, "spiffe://td/child"));
    mt_metrics_collection_free(&collection);
    /* The child's file is now stale: the sweep removes it, and only it. */
    assert_int_equal(mt_metrics_sweep(&metrics_directory), 1);
    collection = collect_own(&own);
    assert_non_null(find_series(own, false, true, 1006, "spiffe://td/parent"));
    mt_metrics_collection_free(&collection);
    mt_metrics_connection_close(parent_connection);
}

static void test_process_parse_hostile_files_rejected(void **state)
{
    struct mt_metrics_process process;
    size_t size = MT_METRICS_HEADER_SIZE + MT_METRICS_CHUNK_SIZE;
    uint8_t *data = calloc(1, size);
    assert_non_null(data);
    assert_int_equal(mt_metrics_process_parse(data, size, &process).error, MT_ERR_PROTO_MALFORMED);
    struct mt_metrics_file_header *header = (void *)data;
    memcpy(header->magic, MT_METRICS_MAGIC, 8);
    header->version = MT_METRICS_LAYOUT_VERSION;
    header->header_size = MT_METRICS_HEADER_SIZE;
    header->chunk_size = MT_METRICS_CHUNK_SIZE;
    /* More chunks claimed than the file holds: only the one present is read, and it is bad. */
    header->chunk_count = 1000;
    struct mt_metrics_chunk_header *chunk = (void *)(data + MT_METRICS_HEADER_SIZE);
    chunk->kind = MT_METRICS_CHUNK_SERIES;
    chunk->record_size = sizeof(struct mt_metrics_series_record);
    chunk->capacity = (MT_METRICS_CHUNK_SIZE - MT_METRICS_CHUNK_HEADER_SIZE) / chunk->record_size;
    chunk->used = chunk->capacity + 1;
    assert_int_equal(mt_metrics_process_parse(data, size, &process).error, MT_ERR_PROTO_MALFORMED);
    chunk->used = 1;
    /* An unterminated label is cut inside its field. */
    struct mt_metrics_series_record *series = (void *)((uint8_t *)chunk + 64);
    memset(series->peer_id, 'x', sizeof(series->peer_id));
    assert_true(mt_result_is_ok(mt_metrics_process_parse(data, size, &process)));
    assert_int_equal(process.series_count, 1);
    assert_int_equal(strlen(process.series[0].peer_id), MT_METRICS_PEER_ID_MAX - 1);
    mt_metrics_process_cleanup(&process);
    free(data);
    uint8_t *small = calloc(1, 100);
    assert_int_equal(mt_metrics_process_parse(small, 100, &process).error, MT_ERR_PROTO_MALFORMED);
    free(small);
}

/*
 * An image of a metrics file: a header, then `chunks` chunks of kind, each with room for zeroed
 * records of record_size bytes; *size is the image's. The caller fills them (image_records).
 */
static uint8_t *image_of_chunks(size_t chunks, uint32_t kind, uint32_t record_size, size_t *size)
{
    *size = MT_METRICS_HEADER_SIZE + chunks * MT_METRICS_CHUNK_SIZE;
    uint8_t *data = calloc(1, *size);
    assert_non_null(data);
    struct mt_metrics_file_header *header = (void *)data;
    memcpy(header->magic, MT_METRICS_MAGIC, 8);
    header->version = MT_METRICS_LAYOUT_VERSION;
    header->header_size = MT_METRICS_HEADER_SIZE;
    header->chunk_size = MT_METRICS_CHUNK_SIZE;
    header->chunk_count = (uint32_t)chunks;
    for (size_t i = 0; i < chunks; i++) {
        struct mt_metrics_chunk_header *chunk =
            (void *)(data + MT_METRICS_HEADER_SIZE + i * MT_METRICS_CHUNK_SIZE);
        chunk->kind = kind;
        chunk->record_size = record_size;
        chunk->capacity = (MT_METRICS_CHUNK_SIZE - MT_METRICS_CHUNK_HEADER_SIZE) / record_size;
        /* Series are counted by used; connection slots by their own state. */
        if (kind == MT_METRICS_CHUNK_SERIES)
            chunk->used = chunk->capacity;
    }
    return data;
}

/* The records of chunk index of an image_of_chunks image. */
static void *image_records(uint8_t *data, size_t index)
{
    return data + MT_METRICS_HEADER_SIZE + index * MT_METRICS_CHUNK_SIZE +
           MT_METRICS_CHUNK_HEADER_SIZE;
}

/* An image of a metrics file: chunks of series filled with peer_id_length-byte identities of '"'
 * (each doubles when escaped), every series counted as opened once. */
static uint8_t *hostile_image(size_t series_chunks, size_t peer_id_length, size_t *size)
{
    uint8_t *data = image_of_chunks(series_chunks, MT_METRICS_CHUNK_SERIES,
                                    sizeof(struct mt_metrics_series_record), size);
    size_t capacity = (MT_METRICS_CHUNK_SIZE - MT_METRICS_CHUNK_HEADER_SIZE) /
                      sizeof(struct mt_metrics_series_record);
    for (size_t i = 0; i < series_chunks; i++) {
        struct mt_metrics_series_record *records = image_records(data, i);
        for (size_t j = 0; j < capacity; j++) {
            records[j].inbound = 1;
            records[j].tls = 1;
            records[j].port = (uint16_t)(i * capacity + j);
            memset(records[j].peer_id, '"', peer_id_length);
            records[j].open_total = 1;
        }
    }
    return data;
}

static size_t series_per_chunk(void)
{
    return (MT_METRICS_CHUNK_SIZE - MT_METRICS_CHUNK_HEADER_SIZE) /
           sizeof(struct mt_metrics_series_record);
}

static void test_process_parse_series_beyond_limit_dropped_and_counted(void **state)
{
    /* A full-size file: every chunk of series, ~53 500 of them; only the limit is kept. */
    size_t size = 0;
    uint8_t *data = hostile_image(MT_METRICS_CHUNKS_MAX, 0, &size);
    struct mt_metrics_process process;
    assert_true(mt_result_is_ok(mt_metrics_process_parse(data, size, &process)));
    size_t published = MT_METRICS_CHUNKS_MAX * series_per_chunk();
    assert_int_equal(process.series_count, MT_METRICS_SERIES_PER_PROCESS_MAX);
    assert_int_equal(process.series_dropped, published - MT_METRICS_SERIES_PER_PROCESS_MAX);
    /* The kept ones are the first, in the order they were published. */
    assert_int_equal(process.series[MT_METRICS_SERIES_PER_PROCESS_MAX - 1].port,
                     MT_METRICS_SERIES_PER_PROCESS_MAX - 1);
    mt_metrics_process_cleanup(&process);
    free(data);
}

static void test_process_parse_label_bytes_beyond_budget_dropped_and_counted(void **state)
{
    size_t size = 0;
    uint8_t *data = hostile_image(2, MT_METRICS_PEER_ID_MAX - 1, &size);
    struct mt_metrics_process process;
    assert_true(mt_result_is_ok(mt_metrics_process_parse(data, size, &process)));
    size_t kept = MT_METRICS_LABEL_BYTES_PER_PROCESS_MAX / (MT_METRICS_PEER_ID_MAX - 1);
    assert_int_equal(process.series_count, kept);
    assert_int_equal(process.series_dropped, 2 * series_per_chunk() - kept);
    /* What one process renders for one family is bounded by the limits, not by its file. */
    struct mt_metrics_collection collection = {&process, 1, 0};
    struct mt_metrics_text text = {0};
    mt_metrics_render(&collection, &text);
    assert_false(text.failed);
    size_t line_max = 200 + 2 * MT_METRICS_EXE_LABEL_MAX + 2 * MT_METRICS_PEER_ID_MAX;
    assert_true(text.length < 20 * 1024 + 7 * kept * line_max);
    mt_metrics_text_free(&text);
    mt_metrics_process_cleanup(&process);
    free(data);
}

struct counting_source {
    const uint8_t *data;
    size_t size;
    uint64_t furthest;
    uint64_t bytes;
};

static bool counting_read_at(void *source, void *buffer, size_t length, uint64_t offset)
{
    struct counting_source *counting = source;
    counting->bytes += length;
    if (offset + length > counting->furthest)
        counting->furthest = offset + length;
    /* Past the image the file is a hole of zeros, as a writer's ftruncate leaves it. */
    memset(buffer, 0, length);
    if (offset < counting->size)
        memcpy(buffer, counting->data + offset,
               offset + length <= counting->size ? length : counting->size - offset);
    return true;
}

static void test_process_load_file_grown_past_layout_reads_bounded(void **state)
{
    /* A writer holding the file can ftruncate it to any size and claim any chunk count. */
    size_t size = 0;
    uint8_t *data = hostile_image(MT_METRICS_CHUNKS_MAX, 0, &size);
    ((struct mt_metrics_file_header *)(void *)data)->chunk_count = UINT32_MAX;
    struct counting_source source = {data, size, 0, 0};
    struct mt_metrics_process process;
    assert_true(mt_result_is_ok(mt_metrics_process_load(counting_read_at, &source, 1ull << 40,
                                                        MT_METRICS_LOAD_ALL, &process)));
    assert_true(source.furthest <= MT_METRICS_FILE_SIZE_MAX);
    /* Headers, chunk headers and the kept series: far less than the file. */
    assert_true(source.bytes < 2 * MT_METRICS_HEADER_SIZE + MT_METRICS_CHUNKS_MAX * 64 +
                                   (MT_METRICS_SERIES_PER_PROCESS_MAX + series_per_chunk()) *
                                       sizeof(struct mt_metrics_series_record));
    mt_metrics_process_cleanup(&process);
    free(data);
}

/* A subdirectory of the test's directory, made and opened as the agent does. */
static struct mt_metrics_directory open_subdirectory(const char *name)
{
    struct mt_metrics_directory opened = {.fd = -1};
    snprintf(opened.path, sizeof(opened.path), "%s/%s", directory, name);
    assert_int_equal(mkdir(opened.path, 0755), 0);
    assert_true(mt_result_is_ok(mt_metrics_directory_open(&opened, NULL)));
    return opened;
}

static void make_file(const char *directory_path, const char *name)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", directory_path, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
}

static bool exists(const char *directory_path, const char *name)
{
    char path[PATH_MAX + 64];
    struct stat status;
    snprintf(path, sizeof(path), "%s/%s", directory_path, name);
    return lstat(path, &status) == 0;
}

static void test_file_create_agent_owned_named_by_attested_pid(void **state)
{
    struct mt_metrics_directory created_directory = open_subdirectory("create");
    int fd = -1;
    char message[256] = "";
    assert_true(mt_result_is_ok(
        mt_metrics_file_create(&created_directory, 4242, 1000, 987654, &fd, MT_TEXT_ON(message))));
    struct stat status;
    assert_int_equal(fstat(fd, &status), 0);
    assert_int_equal(status.st_mode & 07777, 0600);
    assert_int_equal(status.st_uid, geteuid());
    assert_int_equal(status.st_size, MT_METRICS_HEADER_SIZE);
    struct mt_metrics_file_header header;
    assert_int_equal(pread(fd, &header, sizeof(header), 0), sizeof(header));
    assert_memory_equal(header.magic, MT_METRICS_MAGIC, 8);
    assert_int_equal(header.pid, 4242);
    assert_int_equal(header.start_time, 987654);
    assert_int_equal(header.chunk_count, 0);
    close(fd);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/4242-987654.metrics", created_directory.path);
    assert_int_equal(stat(path, &status), 0);
    /* The same process asking again (after an exec) gets a new file in place of the old. */
    int old = open(path, O_RDWR);
    assert_true(old >= 0);
    assert_int_equal(pwrite(old, "old", 3, 512), 3);
    assert_true(mt_result_is_ok(
        mt_metrics_file_create(&created_directory, 4242, 1000, 987654, &fd, MT_TEXT_ON(message))));
    char marker[3] = "";
    assert_int_equal(pread(fd, marker, sizeof(marker), 512), 3);
    assert_memory_equal(marker, "\0\0\0", 3);
    close(fd);
    close(old);
    /* A directory under a process's name is not replaced: its creation fails, naming it. */
    snprintf(path, sizeof(path), "%s/4243-987654.metrics", created_directory.path);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_false(mt_result_is_ok(
        mt_metrics_file_create(&created_directory, 4243, 1000, 987654, &fd, MT_TEXT_ON(message))));
    assert_non_null(strstr(message, "did not make"));
    assert_int_equal(rmdir(path), 0);
    /* No such process: the sweep removes its file. */
    assert_int_equal(mt_metrics_sweep(&created_directory), 1);
    assert_false(exists(created_directory.path, "4242-987654.metrics"));
    mt_metrics_directory_close(&created_directory);
    assert_int_equal(rmdir(created_directory.path), 0);
}

/* A sweep in steps looks at no more entries per step than asked, and still removes every file
 * of a dead process: the agent's loop takes one step between requests. */
static void test_sweep_step_bounded_steps_remove_every_dead_file(void **state)
{
    (void)state;
    struct mt_metrics_directory swept = open_subdirectory("stepped");
    /* Pids above any pid_max: none of these processes is alive. */
    for (int i = 0; i < 10; i++) {
        char name[64];
        snprintf(name, sizeof(name), "99999998%d-1.metrics", i);
        make_file(swept.path, name);
    }
    make_file(swept.path, "canary");
    struct mt_metrics_sweep sweep;
    assert_true(mt_metrics_sweep_begin(&swept, &sweep));
    size_t removed = 0;
    size_t steps = 1;
    assert_false(mt_metrics_sweep_step(&swept, &sweep, 3, &removed));
    assert_true(removed <= 3);
    while (!mt_metrics_sweep_step(&swept, &sweep, 3, &removed))
        assert_true(++steps < 100);
    /* 10 files, a canary, "." and "..": four steps of three do not finish them. */
    assert_true(steps >= 4);
    assert_int_equal(removed, 10);
    assert_null(sweep.listing);
    mt_metrics_sweep_end(&sweep);
    for (int i = 0; i < 10; i++) {
        char name[64];
        snprintf(name, sizeof(name), "99999998%d-1.metrics", i);
        assert_false(exists(swept.path, name));
    }
    assert_true(exists(swept.path, "canary"));
    mt_metrics_directory_close(&swept);
}

static void test_sweep_foreign_entries_left_alone(void **state)
{
    struct mt_metrics_directory swept = open_subdirectory("sweep");
    char elsewhere[PATH_MAX];
    snprintf(elsewhere, sizeof(elsewhere), "%s/elsewhere", directory);
    assert_int_equal(mkdir(elsewhere, 0755), 0);
    make_file(elsewhere, "ca.key");
    /* Pids above any pid_max: none of these processes is alive. */
    make_file(swept.path, "999999990-1.metrics");      /* the agent's, of an exited process */
    make_file(swept.path, "canary");                   /* the agent's owner, another name */
    make_file(swept.path, "999999991-1.metrics.keep"); /* a metrics name, but not quite */
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/999999992-1.metrics", swept.path);
    assert_int_equal(mkdir(path, 0700), 0); /* an empty directory under a metrics name */
    snprintf(path, sizeof(path), "%s/999999993-1.metrics", swept.path);
    char target[PATH_MAX + 64];
    snprintf(target, sizeof(target), "%s/ca.key", elsewhere);
    assert_int_equal(symlink(target, path), 0);
    assert_int_equal(mt_metrics_sweep(&swept), 1);
    assert_false(exists(swept.path, "999999990-1.metrics"));
    assert_true(exists(swept.path, "canary"));
    assert_true(exists(swept.path, "999999991-1.metrics.keep"));
    assert_true(exists(swept.path, "999999992-1.metrics"));
    assert_true(exists(swept.path, "999999993-1.metrics"));
    assert_true(exists(elsewhere, "ca.key"));

    /* The directory renamed and its path made a symbolic link to another: the sweep stays in
     * the directory it holds, and the other's files (one of them a dead process's name) stay. */
    make_file(elsewhere, "999999994-1.metrics");
    make_file(swept.path, "999999995-1.metrics");
    char moved[PATH_MAX + 16];
    snprintf(moved, sizeof(moved), "%s.moved", swept.path);
    assert_true(mt_metrics_directory_is_at_path(&swept));
    assert_int_equal(rename(swept.path, moved), 0);
    assert_int_equal(symlink(elsewhere, swept.path), 0);
    assert_false(mt_metrics_directory_is_at_path(&swept));
    assert_int_equal(mt_metrics_sweep(&swept), 1);
    assert_false(exists(moved, "999999995-1.metrics"));
    assert_true(exists(elsewhere, "999999994-1.metrics"));
    assert_true(exists(elsewhere, "ca.key"));
    assert_true(exists(moved, "canary"));
    /* Opening it again through the path refuses the link. */
    struct mt_metrics_directory again = {.fd = -1};
    snprintf(again.path, sizeof(again.path), "%s", swept.path);
    char message[512] = "";
    assert_false(mt_result_is_ok(mt_metrics_directory_open(&again, MT_TEXT_ON(message))));
    assert_non_null(strstr(message, "symbolic link"));
    assert_int_equal(again.fd, -1);
    mt_metrics_directory_close(&swept);
}

/* An image of a metrics file of chunks full of open connections (the most a file can hold). */
static uint8_t *connections_image(size_t chunks, size_t *size)
{
    uint8_t *data = image_of_chunks(chunks, MT_METRICS_CHUNK_CONNECTIONS,
                                    sizeof(struct mt_metrics_connection_record), size);
    size_t capacity = (MT_METRICS_CHUNK_SIZE - MT_METRICS_CHUNK_HEADER_SIZE) /
                      sizeof(struct mt_metrics_connection_record);
    for (size_t i = 0; i < chunks; i++) {
        struct mt_metrics_connection_record *records = image_records(data, i);
        for (size_t j = 0; j < capacity; j++)
            records[j].state = MT_METRICS_CONNECTION_OPEN;
    }
    return data;
}

static void test_process_load_connections_beyond_limit_not_read(void **state)
{
    size_t size = 0;
    uint8_t *data = connections_image(MT_METRICS_CHUNKS_MAX, &size);
    struct counting_source source = {data, size, 0, 0};
    struct mt_metrics_process process;
    assert_true(mt_result_is_ok(
        mt_metrics_process_load(counting_read_at, &source, size, MT_METRICS_LOAD_ALL, &process)));
    assert_int_equal(process.connection_count, MT_METRICS_CONNECTIONS_PER_PROCESS_MAX);
    assert_true(process.connections_dropped > 0);
    /* The header, every chunk header, and the chunks until the limit: not the 16 MiB file. */
    size_t per_chunk = (MT_METRICS_CHUNK_SIZE - MT_METRICS_CHUNK_HEADER_SIZE) /
                       sizeof(struct mt_metrics_connection_record);
    size_t chunks_to_limit = (MT_METRICS_CONNECTIONS_PER_PROCESS_MAX + per_chunk - 1) / per_chunk;
    assert_true(source.bytes <= MT_METRICS_HEADER_SIZE +
                                    MT_METRICS_CHUNKS_MAX * MT_METRICS_CHUNK_HEADER_SIZE +
                                    chunks_to_limit * MT_METRICS_CHUNK_SIZE);
    mt_metrics_process_cleanup(&process);
    free(data);
}

static void test_process_open_other_owner_skipped_unread(void **state)
{
    struct mt_metrics_connection *connection =
        mt_metrics_connection_open(false, true, 1008, NULL, "spiffe://td/owner");
    assert_non_null(connection);
    char name[MT_METRICS_FILE_NAME_MAX];
    snprintf(name, sizeof(name), "%ld-%llu.metrics", (long)getpid(), own_start_time());
    uid_t own = geteuid();
    uid_t other = own + 1;
    struct mt_metrics_process process;
    assert_int_equal(
        mt_metrics_process_open(metrics_directory.fd, name, MT_METRICS_LOAD_ALL, &other, &process),
        MT_METRICS_SKIPPED);
    assert_null(process.series);
    assert_int_equal(process.header.pid, 0);
    assert_int_equal(
        mt_metrics_process_open(metrics_directory.fd, name, MT_METRICS_LOAD_ALL, &own, &process),
        MT_METRICS_TRUSTED);
    assert_int_equal(process.pid, getpid());
    mt_metrics_process_cleanup(&process);
    mt_metrics_connection_close(connection);
}

static void test_scrape_next_each_family_once_in_bounded_pieces(void **state)
{
    struct mt_metrics_connection *connection =
        mt_metrics_connection_open(false, true, 1007, NULL, "spiffe://td/scrape");
    assert_non_null(connection);
    struct mt_metrics_scrape *scrape = NULL;
    assert_true(mt_result_is_ok(mt_metrics_scrape_begin(&metrics_directory, NULL, &scrape)));
    struct mt_metrics_text piece = {0};
    struct mt_metrics_text all = {0};
    size_t pieces = 0;
    while (mt_metrics_scrape_next(scrape, &piece)) {
        assert_false(piece.failed);
        /* One family's header, or one process's share of one family. */
        assert_true(piece.length <
                    MT_METRICS_SERIES_PER_PROCESS_MAX *
                        (200 + 2 * MT_METRICS_EXE_LABEL_MAX + 2 * MT_METRICS_PEER_ID_MAX));
        mt_metrics_text_append(&all, "%.*s", (int)piece.length,
                               piece.data != NULL ? piece.data : "");
        piece.length = 0;
        pieces++;
    }
    assert_int_equal(mt_metrics_scrape_processes(scrape), 1);
    mt_metrics_scrape_free(scrape);
    assert_non_null(all.data);
    const char *first = strstr(all.data, "# TYPE tcp_open_total counter\n");
    assert_non_null(first);
    assert_null(strstr(first + 1, "# TYPE tcp_open_total counter\n"));
    assert_non_null(strstr(all.data, ",port=\"1007\",peer_id=\"spiffe://td/scrape\"} 1\n"));
    assert_non_null(strstr(all.data, "# TYPE identity_cert_refresh_count counter\n"));
    assert_true(pieces > 12);
    mt_metrics_text_free(&piece);
    mt_metrics_text_free(&all);
    mt_metrics_connection_close(connection);
}

static struct sockaddr_storage address_of(const char *host, uint16_t port)
{
    struct sockaddr_storage address;
    memset(&address, 0, sizeof(address));
    struct sockaddr_in *ipv4 = (struct sockaddr_in *)&address;
    struct sockaddr_in6 *ipv6 = (struct sockaddr_in6 *)&address;
    if (inet_pton(AF_INET, host, &ipv4->sin_addr) == 1) {
        ipv4->sin_family = AF_INET;
        ipv4->sin_port = htons(port);
    } else {
        assert_int_equal(inet_pton(AF_INET6, host, &ipv6->sin6_addr), 1);
        ipv6->sin6_family = AF_INET6;
        ipv6->sin6_port = htons(port);
    }
    return address;
}

/* The open count of the destination record "text" with tls; -1 when there is none. */
static long long destination_opens(const struct mt_metrics_process *process, const char *text,
                                   bool tls)
{
    for (size_t i = 0; i < process->destination_count; i++) {
        char formatted[MT_METRICS_ADDRESS_MAX];
        mt_metrics_destination_format(&process->destinations[i], formatted, sizeof(formatted));
        if (strcmp(formatted, text) == 0 && process->destinations[i].tls == tls)
            return (long long)process->destinations[i].open_total;
    }
    return -1;
}

/* Both orientations: the same port at another address, the same address at another port, and
 * the same destination with the other tls are each their own record. */
static void test_destination_open_counts_by_address_port_and_tls(void **state)
{
    struct sockaddr_storage meshed = address_of("10.0.0.1", 2001);
    struct sockaddr_storage meshed_other_port = address_of("10.0.0.1", 2002);
    struct sockaddr_storage plain = address_of("10.0.0.2", 2001);
    struct sockaddr_storage mapped = address_of("::ffff:10.0.0.3", 2003);
    struct sockaddr_storage ipv6 = address_of("2001:db8::5", 2004);
    struct sockaddr_storage caller = address_of("10.0.0.9", 2005);
    for (int i = 0; i < 2; i++)
        mt_metrics_connection_close(
            mt_metrics_connection_open(false, true, 2001, &meshed, "spiffe://td/m"));
    mt_metrics_connection_close(
        mt_metrics_connection_open(false, true, 2002, &meshed_other_port, "spiffe://td/m"));
    mt_metrics_connection_close(mt_metrics_connection_open(false, true, 2004, &ipv6, NULL));
    mt_metrics_connection_close(
        mt_metrics_connection_open(true, true, 2005, &caller, "spiffe://td/c"));
    for (int i = 0; i < 3; i++)
        mt_metrics_outbound_plain(&plain);
    mt_metrics_outbound_plain(&meshed);
    mt_metrics_outbound_plain(&mapped);

    const struct mt_metrics_process *own;
    struct mt_metrics_collection collection = collect_own(&own);
    assert_int_equal(destination_opens(own, "10.0.0.1:2001", true), 2);
    assert_int_equal(destination_opens(own, "10.0.0.1:2001", false), 1);
    assert_int_equal(destination_opens(own, "10.0.0.1:2002", true), 1);
    assert_int_equal(destination_opens(own, "10.0.0.2:2001", false), 3);
    assert_int_equal(destination_opens(own, "10.0.0.2:2001", true), -1);
    assert_int_equal(destination_opens(own, "10.0.0.3:2003", false), 1);
    assert_int_equal(destination_opens(own, "[2001:db8::5]:2004", true), 1);
    /* Inbound connections have no destination. */
    assert_int_equal(destination_opens(own, "10.0.0.9:2005", true), -1);
    const struct mt_metrics_series_record *series = find_series(own, false, false, 2001, "");
    assert_non_null(series);
    assert_int_equal(series->open_total, 4);
    struct mt_metrics_text text = {0};
    mt_metrics_render(&collection, &text);
    assert_false(text.failed);
    assert_non_null(strstr(text.data, "# TYPE outbound_destination_open_total counter\n"));
    assert_non_null(strstr(text.data, ",destination=\"10.0.0.2:2001\",tls=\"false\"} 3\n"));
    assert_non_null(strstr(text.data, ",destination=\"10.0.0.1:2001\",tls=\"true\"} 2\n"));
    assert_non_null(strstr(text.data, ",destination=\"[2001:db8::5]:2004\",tls=\"true\"} 1\n"));
    mt_metrics_text_free(&text);
    mt_metrics_collection_free(&collection);
}

/* Runs last: it fills the process's destination records. */
static void test_destination_open_past_limit_counted_as_other(void **state)
{
    const struct mt_metrics_process *own;
    struct mt_metrics_collection collection = collect_own(&own);
    size_t before = own->destination_count;
    mt_metrics_collection_free(&collection);
    enum { OPENS = MT_METRICS_DESTINATIONS_PER_PROCESS_MAX + 50 };
    char host[32];
    for (unsigned i = 0; i < OPENS; i++) {
        snprintf(host, sizeof(host), "10.1.%u.%u", i / 256, i % 256);
        struct sockaddr_storage destination = address_of(host, 3000);
        mt_metrics_outbound_plain(&destination);
    }
    struct sockaddr_storage first = address_of("10.1.0.0", 3000);
    mt_metrics_outbound_plain(&first);
    struct sockaddr_storage meshed = address_of("10.2.0.1", 3001);
    mt_metrics_connection_close(mt_metrics_connection_open(false, true, 3001, &meshed, NULL));

    collection = collect_own(&own);
    assert_int_equal(own->destination_count, MT_METRICS_DESTINATIONS_PER_PROCESS_MAX);
    assert_int_equal(own->destinations_dropped, 0);
    size_t kept = MT_METRICS_DESTINATIONS_PER_PROCESS_MAX - 2 - before;
    /* The first destinations have records of their own, and still count there. */
    assert_int_equal(destination_opens(own, "10.1.0.0:3000", false), 2);
    snprintf(host, sizeof(host), "10.1.%zu.%zu:3000", (kept - 1) / 256, (kept - 1) % 256);
    assert_int_equal(destination_opens(own, host, false), 1);
    snprintf(host, sizeof(host), "10.1.%zu.%zu:3000", kept / 256, kept % 256);
    assert_int_equal(destination_opens(own, host, false), -1);
    /* Every open is counted: the rest in "other", by tls. */
    assert_int_equal(destination_opens(own, "other", false), OPENS - kept);
    assert_int_equal(destination_opens(own, "other", true), 1);
    assert_int_equal(destination_opens(own, "10.2.0.1:3001", true), -1);
    struct mt_metrics_text text = {0};
    mt_metrics_render(&collection, &text);
    assert_non_null(strstr(text.data, ",destination=\"other\",tls=\"true\"} 1\n"));
    mt_metrics_text_free(&text);
    mt_metrics_collection_free(&collection);
}

/* Destination chunks as a hostile writer may leave them: bounded, families checked. */
static void test_process_parse_destinations_hostile_bounded(void **state)
{
    size_t size = 0;
    uint8_t *data = image_of_chunks(2, MT_METRICS_CHUNK_DESTINATIONS,
                                    sizeof(struct mt_metrics_destination_record), &size);
    size_t capacity = (MT_METRICS_CHUNK_SIZE - MT_METRICS_CHUNK_HEADER_SIZE) /
                      sizeof(struct mt_metrics_destination_record);
    struct mt_metrics_chunk_header *chunks[2];
    for (size_t c = 0; c < 2; c++) {
        chunks[c] = (void *)(data + MT_METRICS_HEADER_SIZE + c * MT_METRICS_CHUNK_SIZE);
        chunks[c]->used = (uint32_t)capacity;
        struct mt_metrics_destination_record *records = image_records(data, c);
        for (size_t i = 0; i < capacity; i++) {
            records[i].family = MT_METRICS_DESTINATION_IPV4;
            records[i].tls = 1;
            records[i].port = (uint16_t)(i + 1);
            records[i].open_total = 1;
        }
    }
    struct mt_metrics_destination_record *records = image_records(data, 0);
    records[0].family = 5;                            /* no such family: dropped */
    records[1].tls = 7;                               /* read as true */
    records[2].family = MT_METRICS_DESTINATION_OTHER; /* its port and address are ignored */
    memset(records[2].address, 0xff, sizeof(records[2].address));
    struct mt_metrics_process process;
    assert_true(mt_result_is_ok(mt_metrics_process_parse(data, size, &process)));
    /* The limit is kept across chunks: 255 of the first (one dropped), 1 of the second. */
    assert_int_equal(process.destination_count, MT_METRICS_DESTINATIONS_PER_PROCESS_MAX);
    assert_int_equal(process.destinations_dropped,
                     2 * capacity - MT_METRICS_DESTINATIONS_PER_PROCESS_MAX);
    assert_int_equal(process.destinations[0].tls, 1);
    char text[MT_METRICS_ADDRESS_MAX];
    mt_metrics_destination_format(&process.destinations[1], text, sizeof(text));
    assert_string_equal(text, "other");
    assert_int_equal(process.destinations[1].port, 0);
    mt_metrics_process_cleanup(&process);
    /* More records claimed than a chunk holds: the file is refused. */
    chunks[0]->used = (uint32_t)capacity + 1;
    assert_int_equal(mt_metrics_process_parse(data, size, &process).error, MT_ERR_PROTO_MALFORMED);
    free(data);
}

static void test_failure_reason_classify_known_phrases_mapped(void **state)
{
    static const struct {
        const char *text;
        enum mt_metrics_failure_reason reason;
    } cases[] = {
        {"peer did not speak TLS", MT_METRICS_FAILURE_NOT_TLS},
        {"peer certificate not issued by a trusted anchor (foreign CA?) (error -188)",
         MT_METRICS_FAILURE_UNTRUSTED_CA},
        {"peer certificate expired (error -151)", MT_METRICS_FAILURE_EXPIRED},
        {"peer certificate is not a valid X.509-SVID: marked CA", MT_METRICS_FAILURE_BAD_SVID},
        {"peer identity spiffe://a/b is not in trust domain c", MT_METRICS_FAILURE_BAD_SVID},
        {"peer sent TLS alert bad_certificate (it rejected our certificate or policy)",
         MT_METRICS_FAILURE_PEER_REJECTED},
        {"TLS handshake timed out after 10000 ms", MT_METRICS_FAILURE_TIMEOUT},
        {"identity spiffe://a/b expired at 2024 and no new one: agent unreachable",
         MT_METRICS_FAILURE_NO_IDENTITY},
        {"no workload identity: agent unreachable", MT_METRICS_FAILURE_NO_IDENTITY},
        {"peer spiffe://a/b not allowed on :8443 by policy", MT_METRICS_FAILURE_POLICY},
        {"client identity spiffe://td/ns/ab is not in the allow list of inbound.rules[0] (we are "
         "spiffe://td/ns/b)",
         MT_METRICS_FAILURE_POLICY},
        {"server identity spiffe://td/ns/ab does not match spiffe://td/ns/a expected by "
         "outbound.rules[0]",
         MT_METRICS_FAILURE_POLICY},
        /* The peer's identity never decides the class, whatever its path says. */
        {"client identity spiffe://td/expired/timeout/svid is not in the allow list of "
         "inbound.rules[1]",
         MT_METRICS_FAILURE_POLICY},
        {"peer identity spiffe://td/jobs/expired is not in trust domain other",
         MT_METRICS_FAILURE_BAD_SVID},
        {"peer did not return a certificate", MT_METRICS_FAILURE_BAD_SVID},
        {"incomplete TLS ClientHello at the detection timeout", MT_METRICS_FAILURE_TIMEOUT},
        {"", MT_METRICS_FAILURE_OTHER},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(mt_metrics_failure_reason_classify(cases[i].text), cases[i].reason);
    assert_string_equal(mt_metrics_failure_reason_label(MT_METRICS_FAILURE_UNTRUSTED_CA),
                        "untrusted_ca");
    assert_string_equal(mt_metrics_failure_reason_label(MT_METRICS_FAILURE_COUNT), "other");
}

static void test_stat_start_time_command_with_spaces_and_parentheses_parsed(void **state)
{
    (void)state;
    unsigned long long start = 0;
    /* Fields 3..21 after the name, then 22: the start time. */
    const char *stat = "4242 (a) b) (c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 0 0";
    assert_true(mt_metrics_stat_start_time(stat, &start));
    assert_int_equal(start, 987654);
    assert_false(mt_metrics_stat_start_time("4242 (short) S 1 2 3", &start));
    assert_false(mt_metrics_stat_start_time("no parenthesis at all", &start));
}

static void test_text_append_label_special_characters_escaped(void **state)
{
    struct mt_metrics_text text = {0};
    mt_metrics_text_append_label(&text, "a\"b\\c\nd");
    assert_string_equal(text.data, "a\\\"b\\\\c\\nd");
    mt_metrics_text_free(&text);
}

static void test_directory_for_socket_sibling_directory(void **state)
{
    char result[64];
    assert_true(mt_metrics_directory_for_socket("/run/meshtls/agent.sock", result, sizeof(result)));
    assert_string_equal(result, "/run/meshtls/metrics");
    assert_true(mt_metrics_directory_for_socket("/agent.sock", result, sizeof(result)));
    assert_string_equal(result, "/metrics");
    assert_false(mt_metrics_directory_for_socket("/a/very/long/path/agent.sock", result, 8));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connection_open_new_label_set_counts_exactly),
        cmocka_unit_test(test_bytes_read_concurrent_threads_exact_sum),
        cmocka_unit_test(test_connection_open_past_one_chunk_grows_file),
        cmocka_unit_test(test_connection_close_slot_reused_counts_once),
        cmocka_unit_test(test_handshake_outcomes_histogram_and_reasons),
        cmocka_unit_test(test_connection_open_in_fork_child_writes_own_file),
        cmocka_unit_test(test_process_parse_hostile_files_rejected),
        cmocka_unit_test(test_process_parse_series_beyond_limit_dropped_and_counted),
        cmocka_unit_test(test_process_parse_label_bytes_beyond_budget_dropped_and_counted),
        cmocka_unit_test(test_process_load_file_grown_past_layout_reads_bounded),
        cmocka_unit_test(test_file_create_agent_owned_named_by_attested_pid),
        cmocka_unit_test(test_sweep_step_bounded_steps_remove_every_dead_file),
        cmocka_unit_test(test_sweep_foreign_entries_left_alone),
        cmocka_unit_test(test_process_load_connections_beyond_limit_not_read),
        cmocka_unit_test(test_process_open_other_owner_skipped_unread),
        cmocka_unit_test(test_scrape_next_each_family_once_in_bounded_pieces),
        cmocka_unit_test(test_failure_reason_classify_known_phrases_mapped),
        cmocka_unit_test(test_text_append_label_special_characters_escaped),
        cmocka_unit_test(test_directory_for_socket_sibling_directory),
        cmocka_unit_test(test_stat_start_time_command_with_spaces_and_parentheses_parsed),
        cmocka_unit_test(test_destination_open_counts_by_address_port_and_tls),
        cmocka_unit_test(test_process_parse_destinations_hostile_bounded),
        cmocka_unit_test(test_destination_open_past_limit_counted_as_other),
    };
    return cmocka_run_group_tests(tests, setup_directory, remove_directory);
}
