/*
 * Load generator for the agent (tests/bench/run.py --only agent): SVIDs issued per second, the
 * agent's CPU per SVID, and the agent's memory while many processes hold identities.
 *
 * Every request is made with the library's own identity client (identity/client.h), exactly as
 * a workload makes it: a fresh P-256 key, a CSR, the agent's reply checked against the key. The
 * agent is a real meshtls-agent; AGENT_PID is only read (/proc/AGENT_PID/{stat,status,smaps}).
 *
 *   bench_agent svids SOCKET AGENT_PID CLIENTS SECONDS
 *       CLIENTS processes fetch SVIDs back to back for SECONDS; prints SVIDs per second, the
 *       agent's CPU time per SVID (utime + stime over the run) and the requests that failed
 *   bench_agent hold SOCKET AGENT_PID COUNT [CHECKPOINT...]
 *       forks COUNT processes, each fetching an SVID and its metrics file and then waiting; prints
 *       the agent's RSS, heap and open descriptors with none live and at each CHECKPOINT live
 *       processes (and at COUNT), and its CPU time over HOLD_IDLE_SECONDS idle with all of them
 *       live (one sweep of the dead falls in it), then ends every child
 *
 * Results go to stdout as JSON lines; errors to stderr. Every wait is bounded: a child that gets
 * no identity within its retries says so and exits, and every child dies with its parent.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "identity/client.h"
#include "tls/credentials.h"

#define TIMEOUT_MS 10000
/* A child of `hold` tries this often before it gives up (the agent may refuse when busy). */
#define HOLD_ATTEMPTS 20
/* Children of `hold` asking the agent at once: more would only be refused as "agent busy". */
#define HOLD_IN_FLIGHT 64
#define HOLD_SECONDS_MAX 600
/* Longer than the agent's sweep period (MT_SERVER_SWEEP_MS), so that one sweep falls in it. */
#define HOLD_IDLE_SECONDS 12

static const char *socket_path;
static pid_t agent_pid;

static void die(const char *what)
{
    fprintf(stderr, "bench_agent: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double now_seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* utime + stime of the agent in clock ticks (fields 14 and 15 of /proc/<pid>/stat). */
static unsigned long long agent_cpu_ticks(void)
{
    char path[64];
    char text[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)agent_pid);
    FILE *file = fopen(path, "re");
    if (file == NULL)
        die("reading the agent's stat");
    size_t length = fread(text, 1, sizeof(text) - 1, file);
    fclose(file);
    text[length] = '\0';
    const char *after_name = strrchr(text, ')');
    unsigned long long user = 0;
    unsigned long long system = 0;
    /* After ") ": state is field 3, utime field 14, stime field 15. */
    if (after_name == NULL ||
        sscanf(after_name + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &user,
               &system) != 2) {
        fprintf(stderr, "bench_agent: cannot parse /proc/%ld/stat\n", (long)agent_pid);
        exit(1);
    }
    return user + system;
}

/* A "Name: <n> kB" figure of /proc/<agent>/status or of one mapping in smaps, in KiB. */
static long long agent_kib(const char *file_name, const char *mapping, const char *field)
{
    char path[64];
    char line[512];
    snprintf(path, sizeof(path), "/proc/%ld/%s", (long)agent_pid, file_name);
    FILE *file = fopen(path, "re");
    if (file == NULL)
        die(path);
    long long kib = -1;
    bool in_mapping = mapping == NULL;
    while (fgets(line, sizeof(line), file) != NULL) {
        /* smaps: a mapping's header starts with its hex address range and ends with its name;
         * the fields that follow it start with a capitalised name. */
        if (mapping != NULL && isxdigit((unsigned char)line[0]) &&
            !isupper((unsigned char)line[0])) {
            in_mapping = strstr(line, mapping) != NULL;
            continue;
        }
        if (in_mapping && strncmp(line, field, strlen(field)) == 0) {
            kib = atoll(line + strlen(field));
            break;
        }
    }
    fclose(file);
    return kib;
}

static int agent_open_descriptors(void)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/fd", (long)agent_pid);
    DIR *directory = opendir(path);
    if (directory == NULL)
        return -1;
    int count = 0;
    while (readdir(directory) != NULL)
        count++;
    closedir(directory);
    return count - 2;
}

static bool fetch_svid(char *reason, size_t capacity)
{
    struct mt_text text = mt_text_on(reason, capacity);
    struct mt_credentials *credentials = NULL;
    mt_result result = mt_identity_fetch(socket_path, geteuid(), TIMEOUT_MS, &credentials, &text);
    if (!mt_result_is_ok(result))
        return false;
    mt_credentials_release(credentials);
    return true;
}

/* ---- svids ---------------------------------------------------------------------------------- */

struct worker_counts {
    unsigned long long issued;
    unsigned long long failed;
    double slowest_ms; /* the longest request, a sign of the agent's loop held up */
};

static void svid_worker(double deadline, int report_fd)
{
    struct worker_counts counts = {0, 0, 0};
    char reason[512] = "";
    char first_failure[512] = "";
    while (now_seconds() < deadline) {
        double started = now_seconds();
        bool fetched = fetch_svid(reason, sizeof(reason));
        double took_ms = (now_seconds() - started) * 1000;
        if (took_ms > counts.slowest_ms)
            counts.slowest_ms = took_ms;
        if (fetched) {
            counts.issued++;
        } else {
            if (counts.failed++ == 0)
                snprintf(first_failure, sizeof(first_failure), "%s", reason);
        }
    }
    if (first_failure[0] != '\0')
        fprintf(stderr, "bench_agent: pid %ld: %llu request(s) failed, the first: %s\n",
                (long)getpid(), counts.failed, first_failure);
    if (write(report_fd, &counts, sizeof(counts)) != (ssize_t)sizeof(counts))
        _exit(1);
    _exit(0);
}

static int run_svids(int clients, double seconds)
{
    int report[2];
    if (pipe(report) != 0)
        die("pipe");
    /* One untimed request first: the agent's first issuance loads nothing the others need. */
    char reason[512] = "";
    if (!fetch_svid(reason, sizeof(reason))) {
        fprintf(stderr, "bench_agent: the first request failed: %s\n", reason);
        return 1;
    }
    unsigned long long cpu_before = agent_cpu_ticks();
    double start = now_seconds();
    double deadline = start + seconds;
    for (int i = 0; i < clients; i++) {
        pid_t child = fork();
        if (child < 0)
            die("fork");
        if (child == 0) {
            close(report[0]);
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            svid_worker(deadline, report[1]);
        }
    }
    close(report[1]);
    struct worker_counts total = {0, 0, 0};
    struct worker_counts counts;
    int reported = 0;
    while (read(report[0], &counts, sizeof(counts)) == (ssize_t)sizeof(counts)) {
        total.issued += counts.issued;
        total.failed += counts.failed;
        if (counts.slowest_ms > total.slowest_ms)
            total.slowest_ms = counts.slowest_ms;
        reported++;
    }
    double elapsed = now_seconds() - start;
    unsigned long long cpu_after = agent_cpu_ticks();
    while (wait(NULL) > 0)
        ;
    double cpu_seconds = (double)(cpu_after - cpu_before) / (double)sysconf(_SC_CLK_TCK);
    printf("{\"mode\": \"svids\", \"clients\": %d, \"reported\": %d, \"seconds\": %.3f, "
           "\"svids\": %llu, \"failed\": %llu, \"svids_per_s\": %.1f, \"agent_cpu_s\": %.3f, "
           "\"agent_cpu_us_per_svid\": %.1f, \"agent_cpu_share\": %.3f, \"slowest_ms\": %.1f}\n",
           clients, reported, elapsed, total.issued, total.failed, (double)total.issued / elapsed,
           cpu_seconds, total.issued > 0 ? cpu_seconds * 1e6 / (double)total.issued : 0.0,
           cpu_seconds / elapsed, total.slowest_ms);
    return reported == clients ? 0 : 1;
}

/* ---- hold ----------------------------------------------------------------------------------- */

/* An identity and a metrics file, as a meshed process holds them, then wait for release. */
static void hold_child(int ready_fd, int release_fd)
{
    char reason[512] = "";
    struct mt_credentials *credentials = NULL;
    int metrics_fd = -1;
    bool ok = false;
    for (int attempt = 0; attempt < HOLD_ATTEMPTS && !ok; attempt++) {
        struct mt_text text = mt_text_on(reason, sizeof(reason));
        if (credentials == NULL && !mt_result_is_ok(mt_identity_fetch(
                                       socket_path, geteuid(), TIMEOUT_MS, &credentials, &text))) {
            credentials = NULL;
            usleep(50000);
            continue;
        }
        if (!mt_result_is_ok(
                mt_identity_metrics_file(socket_path, geteuid(), TIMEOUT_MS, &metrics_fd, &text))) {
            usleep(50000);
            continue;
        }
        ok = true;
    }
    if (!ok)
        fprintf(stderr, "bench_agent: pid %ld gave up: %s\n", (long)getpid(), reason);
    char mark = ok ? '+' : '-';
    if (write(ready_fd, &mark, 1) != 1)
        _exit(1);
    close(ready_fd);
    /* EOF when the parent closes its end (or dies): the process then exits. */
    char byte;
    while (read(release_fd, &byte, 1) < 0 && errno == EINTR)
        ;
    if (credentials != NULL)
        mt_credentials_release(credentials);
    _exit(ok ? 0 : 1);
}

static void print_memory(long live, long failed, double elapsed)
{
    printf("{\"mode\": \"hold\", \"live\": %ld, \"failed\": %ld, \"elapsed_s\": %.2f, "
           "\"agent_rss_kib\": %lld, \"agent_heap_kib\": %lld, \"agent_fds\": %d}\n",
           live, failed, elapsed, agent_kib("status", NULL, "VmRSS:"),
           agent_kib("smaps", "[heap]", "Rss:"), agent_open_descriptors());
    fflush(stdout);
}

static void raise_limits(long count)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NPROC, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
        limit.rlim_cur < (rlim_t)count + 256) {
        limit.rlim_cur = limit.rlim_max;
        (void)setrlimit(RLIMIT_NPROC, &limit);
    }
}

static int run_hold(long count, const long *checkpoints, int checkpoint_count)
{
    int ready[2];
    int release[2];
    if (pipe(ready) != 0 || pipe(release) != 0)
        die("pipe");
    raise_limits(count);
    double start = now_seconds();
    print_memory(0, 0, 0);
    double deadline = start + HOLD_SECONDS_MAX;
    long forked = 0;
    long live = 0;
    long failed = 0;
    int next_checkpoint = 0;
    while (live + failed < count && now_seconds() < deadline) {
        while (forked < count && forked - live - failed < HOLD_IN_FLIGHT) {
            pid_t child = fork();
            if (child < 0)
                die("fork");
            if (child == 0) {
                close(ready[0]);
                close(release[1]);
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                hold_child(ready[1], release[0]);
            }
            forked++;
        }
        struct pollfd waiting = {.fd = ready[0], .events = POLLIN};
        if (poll(&waiting, 1, 1000) <= 0)
            continue;
        char marks[HOLD_IN_FLIGHT];
        ssize_t got = read(ready[0], marks, sizeof(marks));
        for (ssize_t i = 0; i < got; i++) {
            if (marks[i] == '+')
                live++;
            else
                failed++;
            while (next_checkpoint < checkpoint_count && live == checkpoints[next_checkpoint]) {
                print_memory(live, failed, now_seconds() - start);
                next_checkpoint++;
            }
        }
    }
    print_memory(live, failed, now_seconds() - start);
    /* The agent's idle work with every process live: its periodic sweep of the dead. */
    unsigned long long idle_before = agent_cpu_ticks();
    sleep(HOLD_IDLE_SECONDS);
    printf("{\"mode\": \"idle\", \"live\": %ld, \"seconds\": %d, \"agent_cpu_ms\": %.0f}\n", live,
           HOLD_IDLE_SECONDS,
           (double)(agent_cpu_ticks() - idle_before) * 1000.0 / (double)sysconf(_SC_CLK_TCK));
    fflush(stdout);
    close(release[1]);
    /* Every child reads EOF and exits; one still asking dies with this process (PDEATHSIG). */
    double reap_deadline = now_seconds() + 60;
    while (now_seconds() < reap_deadline) {
        pid_t reaped = waitpid(-1, NULL, WNOHANG);
        if (reaped < 0)
            break;
        if (reaped == 0)
            usleep(10000);
    }
    return live == count ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && strcmp(argv[1], "svids") == 0) {
        socket_path = argv[2];
        agent_pid = (pid_t)atol(argv[3]);
        return run_svids(atoi(argv[4]), atof(argv[5]));
    }
    if (argc >= 5 && strcmp(argv[1], "hold") == 0) {
        socket_path = argv[2];
        agent_pid = (pid_t)atol(argv[3]);
        long checkpoints[16];
        int checkpoint_count = 0;
        for (int i = 5; i < argc && checkpoint_count < 16; i++)
            checkpoints[checkpoint_count++] = atol(argv[i]);
        return run_hold(atol(argv[4]), checkpoints, checkpoint_count);
    }
    fprintf(stderr, "usage: bench_agent svids SOCKET AGENT_PID CLIENTS SECONDS\n"
                    "       bench_agent hold SOCKET AGENT_PID COUNT [CHECKPOINT...]\n");
    return 2;
}
