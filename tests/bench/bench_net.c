/*
 * Plain-socket load generator and servers for the libmeshtls benchmarks (tests/bench/run.py).
 *
 * It knows nothing of TLS: run directly it measures plain TCP, through a stunnel pair it measures
 * the sidecar, and under `meshtls run` every connection it makes or accepts is mutual TLS. One
 * program for every case keeps the application's own work identical across them.
 *
 *   bench_net echo-server PORT [WORKERS]      accept; echo 64 B requests until EOF; close
 *   bench_net hold-server PORT                accept; answer one byte; keep the connection
 *   bench_net handshakes PORT SECONDS [THREADS]
 *       new connection, one 64 B round trip, close, in a loop; prints connections per second
 *   bench_net idle PORT COUNT                 open COUNT connections (one byte round trip each),
 *       print heap and RSS per connection as JSON, then hold them until stdin closes
 *   bench_net once PORT                       one connection, one round trip, exit
 *   bench_net sink-server PORT                accept; read until EOF; answer the byte count
 *   bench_net bulk PORT SECONDS               one connection, 128 KiB writes for SECONDS; prints
 *       Gbit/s counted by the server (what arrived, not what left the client's buffers)
 *   bench_net latency PORT COUNT              one connection, COUNT 64 B round trips; prints the
 *       median and 99th percentile of half the round trip in microseconds
 *
 * Every address is 127.0.0.1. Results go to stdout as one JSON object; errors to stderr.
 */
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loopback.h"

#define REQUEST_SIZE 64

static void die(const char *what)
{
    fprintf(stderr, "bench_net: %s: %s\n", what, strerror(errno));
    exit(1);
}

static bool read_exact(int fd, char *buffer, size_t length)
{
    size_t done = 0;
    while (done < length) {
        ssize_t n = read(fd, buffer + done, length - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        done += (size_t)n;
    }
    return true;
}

static bool write_all(int fd, const char *buffer, size_t length)
{
    size_t done = 0;
    while (done < length) {
        ssize_t n = write(fd, buffer + done, length - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        done += (size_t)n;
    }
    return true;
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in address = loopback(port);
    if (bind(fd, (struct sockaddr *)&address, sizeof(address)) != 0)
        die("bind");
    if (listen(fd, 4096) != 0)
        die("listen");
    return fd;
}

/* As many descriptors as the hard limit allows (root may raise the hard limit too). */
static void raise_fd_limit(rlim_t wanted)
{
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_max < wanted) {
        struct rlimit raised = {wanted, wanted};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            return;
    }
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
}

/* ---- servers ----------------------------------------------------------------------------------
 */

static void *echo_worker(void *argument)
{
    int listener = *(int *)argument;
    char buffer[REQUEST_SIZE];
    for (;;) {
        int fd = accept_next(listener);
        if (fd < 0)
            die("accept");
        while (read_exact(fd, buffer, sizeof(buffer)) && write_all(fd, buffer, sizeof(buffer)))
            ;
        close(fd);
    }
    return NULL;
}

static int echo_server(int port, int workers)
{
    int listener = listen_on(port);
    pthread_t threads[64];
    if (workers < 1 || workers > 64)
        workers = 1;
    for (int i = 1; i < workers; i++)
        if (pthread_create(&threads[i], NULL, echo_worker, &listener) != 0)
            die("pthread_create");
    echo_worker(&listener);
    return 0;
}

static size_t heap_in_use(void)
{
    struct mallinfo2 info = mallinfo2();
    return info.uordblks + info.hblkhd;
}

static long rss_kib(void)
{
    FILE *status = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (status != NULL && fgets(line, sizeof(line), status) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (status != NULL)
        fclose(status);
    return kib;
}

static void print_memory(const char *role, long count, size_t heap_before, long rss_before)
{
    size_t heap_after = heap_in_use();
    long rss_after = rss_kib();
    printf("{\"role\": \"%s\", \"connections\": %ld, \"heap_before\": %zu, \"heap_after\": %zu, "
           "\"heap_per_connection\": %.1f, \"rss_before_kib\": %ld, \"rss_after_kib\": %ld, "
           "\"rss_per_connection\": %.1f}\n",
           role, count, heap_before, heap_after,
           count > 0 ? (double)(heap_after - heap_before) / (double)count : 0.0, rss_before,
           rss_after, count > 0 ? (double)(rss_after - rss_before) * 1024.0 / (double)count : 0.0);
    fflush(stdout);
}

/* Holds every connection; prints its memory each time the count reaches a multiple of 1000. */
static int hold_server(int port)
{
    raise_fd_limit(65536);
    int listener = listen_on(port);
    size_t heap_before = heap_in_use();
    long rss_before = rss_kib();
    long count = 0;
    char byte;
    for (;;) {
        int fd = accept_next(listener);
        if (fd < 0)
            die("accept");
        if (!read_exact(fd, &byte, 1) || !write_all(fd, &byte, 1)) {
            close(fd);
            continue;
        }
        if (++count % 1000 == 0)
            print_memory("server", count, heap_before, rss_before);
    }
    return 0;
}

/* Counts what arrives on each connection; answers the 8-byte count once the client shuts down. */
static int sink_server(int port)
{
    int listener = listen_on(port);
    static char buffer[1 << 17];
    for (;;) {
        int fd = accept_next(listener);
        if (fd < 0)
            die("accept");
        unsigned long long total = 0;
        ssize_t n;
        while ((n = read(fd, buffer, sizeof(buffer))) > 0 || (n < 0 && errno == EINTR))
            total += n > 0 ? (unsigned long long)n : 0;
        (void)write_all(fd, (const char *)&total, sizeof(total));
        close(fd);
    }
    return 0;
}

/* ---- clients ----------------------------------------------------------------------------------
 */

struct load {
    int port;
    double deadline;
    atomic_long connections;
    atomic_long failures;
};

static bool round_trip(int port)
{
    char request[REQUEST_SIZE], reply[REQUEST_SIZE];
    memset(request, 'r', sizeof(request));
    int fd = connect_to(port);
    if (fd < 0)
        return false;
    bool ok = write_all(fd, request, sizeof(request)) && read_exact(fd, reply, sizeof(reply)) &&
              memcmp(request, reply, sizeof(reply)) == 0;
    close(fd);
    return ok;
}

static void *load_worker(void *argument)
{
    struct load *load = argument;
    while (now_seconds() < load->deadline) {
        if (round_trip(load->port))
            atomic_fetch_add(&load->connections, 1);
        else if (atomic_fetch_add(&load->failures, 1) > 100)
            break;
    }
    return NULL;
}

static int handshakes(int port, double seconds, int threads_wanted)
{
    struct load load = {.port = port};
    atomic_init(&load.connections, 0);
    atomic_init(&load.failures, 0);
    pthread_t threads[64];
    int threads_count = threads_wanted < 1 || threads_wanted > 64 ? 1 : threads_wanted;
    /* Warm-up: the first connection pays for the identity (key, CSR, agent round trip). */
    if (!round_trip(port)) {
        fprintf(stderr, "bench_net: first connection to port %d failed\n", port);
        return 1;
    }
    double start = now_seconds();
    load.deadline = start + seconds;
    for (int i = 0; i < threads_count; i++)
        if (pthread_create(&threads[i], NULL, load_worker, &load) != 0)
            die("pthread_create");
    for (int i = 0; i < threads_count; i++)
        pthread_join(threads[i], NULL);
    double elapsed = now_seconds() - start;
    long done = atomic_load(&load.connections);
    printf("{\"connections\": %ld, \"failures\": %ld, \"seconds\": %.3f, \"per_second\": %.1f, "
           "\"threads\": %d}\n",
           done, atomic_load(&load.failures), elapsed, (double)done / elapsed, threads_count);
    return atomic_load(&load.failures) > 0 ? 1 : 0;
}

static int idle(int port, long count)
{
    raise_fd_limit(65536);
    /* One connection first, so the identity and contexts are not counted per connection. */
    int first = connect_to(port);
    char byte = 'x';
    if (first < 0 || !write_all(first, &byte, 1) || !read_exact(first, &byte, 1)) {
        fprintf(stderr, "bench_net: first connection to port %d failed\n", port);
        return 1;
    }
    size_t heap_before = heap_in_use();
    long rss_before = rss_kib();
    for (long i = 1; i < count; i++) {
        int fd = connect_to(port);
        if (fd < 0 || !write_all(fd, &byte, 1) || !read_exact(fd, &byte, 1)) {
            fprintf(stderr, "bench_net: connection %ld failed: %s\n", i, strerror(errno));
            return 1;
        }
    }
    print_memory("client", count - 1, heap_before, rss_before);
    /* Hold the connections until the harness has read the server's figures. */
    char ignored[16];
    while (read(STDIN_FILENO, ignored, sizeof(ignored)) > 0)
        ;
    return 0;
}

static int bulk(int port, double seconds)
{
    static char buffer[1 << 17];
    memset(buffer, 'b', sizeof(buffer));
    int fd = connect_to(port);
    if (fd < 0)
        die("connect");
    double start = now_seconds();
    while (now_seconds() - start < seconds)
        if (!write_all(fd, buffer, sizeof(buffer)))
            die("write");
    if (shutdown(fd, SHUT_WR) != 0)
        die("shutdown");
    unsigned long long total = 0;
    if (!read_exact(fd, (char *)&total, sizeof(total))) {
        fprintf(stderr, "bench_net: no byte count from the server\n");
        return 1;
    }
    double elapsed = now_seconds() - start;
    close(fd);
    printf("{\"bytes\": %llu, \"seconds\": %.3f, \"gbit_per_s\": %.3f}\n", total, elapsed,
           (double)total * 8.0 / elapsed / 1e9);
    return 0;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int latency(int port, long count)
{
    if (count < 100 || count > 10000000)
        count = 100;
    double *half_rtt_us = malloc((size_t)count * sizeof(*half_rtt_us));
    char request[REQUEST_SIZE], reply[REQUEST_SIZE];
    memset(request, 'l', sizeof(request));
    int fd = connect_to(port);
    if (fd < 0 || half_rtt_us == NULL)
        die("connect");
    /* The first round trip carries the handshake: not counted. */
    if (!write_all(fd, request, sizeof(request)) || !read_exact(fd, reply, sizeof(reply)))
        die("first round trip");
    for (long i = 0; i < count; i++) {
        double start = now_seconds();
        if (!write_all(fd, request, sizeof(request)) || !read_exact(fd, reply, sizeof(reply)))
            die("round trip");
        half_rtt_us[i] = (now_seconds() - start) * 1e6 / 2;
    }
    close(fd);
    qsort(half_rtt_us, (size_t)count, sizeof(*half_rtt_us), compare_doubles);
    printf("{\"round_trips\": %ld, \"p50_us\": %.2f, \"p99_us\": %.2f}\n", count,
           half_rtt_us[count / 2], half_rtt_us[count * 99 / 100]);
    free(half_rtt_us);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "echo-server") == 0)
        return echo_server(atoi(argv[2]), argc >= 4 ? atoi(argv[3]) : 1);
    if (argc >= 3 && strcmp(argv[1], "hold-server") == 0)
        return hold_server(atoi(argv[2]));
    if (argc >= 4 && strcmp(argv[1], "handshakes") == 0)
        return handshakes(atoi(argv[2]), atof(argv[3]), argc >= 5 ? atoi(argv[4]) : 1);
    if (argc >= 4 && strcmp(argv[1], "idle") == 0)
        return idle(atoi(argv[2]), atol(argv[3]));
    if (argc >= 3 && strcmp(argv[1], "once") == 0)
        return round_trip(atoi(argv[2])) ? 0 : 1;
    if (argc >= 3 && strcmp(argv[1], "sink-server") == 0)
        return sink_server(atoi(argv[2]));
    if (argc >= 4 && strcmp(argv[1], "bulk") == 0)
        return bulk(atoi(argv[2]), atof(argv[3]));
    if (argc >= 4 && strcmp(argv[1], "latency") == 0)
        return latency(atoi(argv[2]), atol(argv[3]));
    fprintf(stderr, "usage: bench_net echo-server PORT [WORKERS] | hold-server PORT |\n"
                    "       handshakes PORT SECONDS [THREADS] | idle PORT COUNT | once PORT |\n"
                    "       sink-server PORT | bulk PORT SECONDS | latency PORT COUNT\n");
    return 2;
}
