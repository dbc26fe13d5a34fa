/*
 * Fault injection for libmeshtls-preload-faults.so (see fault_hooks.h): spurious EINTR, EAGAIN,
 * short reads and writes, and peer resets in util/sys.c's transfers and waits (the library's own
 * recv, send, poll and ppoll, and the read, write, poll and epoll_pwait it makes on the
 * application's behalf), so a soak can show that none of them corrupts, loses or stalls a byte.
 *
 * MESHTLS_FAULTS="seed=N,rate=R,reset=P,kinds=K,report=DIR" (every part optional): each transfer
 * gets one of EINTR, EAGAIN or a short transfer with probability R, and a reset with
 * probability P; each wait with a timeout gets EINTR with probability R/3. kinds (for bisecting,
 * e.g. "eagain+short") limits which of eintr, eagain, short, reset are injected. Counts per kind
 * go to DIR/faults-<pid>.json, rewritten at most every 200 ms while faults happen and at exit.
 *
 * Each fault keeps the kernel's promises, so that what breaks is libmeshtls and not the test:
 *  - EAGAIN only where the kernel could say it (MSG_DONTWAIT or an O_NONBLOCK socket), and, as
 *    after a real EAGAIN, a wakeup follows once the socket is ready: an edge-triggered waiter
 *    would otherwise wait for an edge that was already spent. Setting SO_RCVLOWAT (receiving) or
 *    TCP_NOTSENT_LOWAT (sending) to its current value makes TCP signal readiness again if it is
 *    ready (tcp_set_rcvlowat → tcp_data_ready; do_tcp_setsockopt → sk_write_space). Never on a
 *    connection already reset (POLLERR or POLLHUP): the kernel fails or ends every call on it at
 *    once, and no wakeup would follow, since TCP re-signals data and a FIN but not a reset.
 *  - EINTR promises nothing: the caller must retry, and a zero-timeout poll is never interrupted.
 *  - a short transfer moves at least one byte.
 *  - transfers on sockets only: a file's read or write is never interrupted or shortened.
 *  - a reset is real: connect(AF_UNSPEC) aborts the TCP connection, the peer gets an RST, and this
 *    side's call fails with ECONNRESET as it would after the peer's RST. TCP sockets only.
 * Calls are made with raw system calls, like sys.c's, so they never re-enter the hooks.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fault_hooks.h"
#include "util/sys.h"

#define REPORT_INTERVAL_MS 200

enum kind { KIND_EINTR, KIND_EAGAIN, KIND_SHORT_READ, KIND_SHORT_WRITE, KIND_RESET, KIND_COUNT };

static const char *const kind_names[KIND_COUNT] = {"eintr", "eagain", "short_read", "short_write",
                                                   "reset"};

static struct {
    bool enabled;
    uint64_t seed;
    double rate;
    double reset;
    unsigned kinds; /* bit per enum kind; short_read and short_write go together */
    char report_dir[512];
} settings;

static pthread_once_t settings_once = PTHREAD_ONCE_INIT;
static atomic_ulong counts[KIND_COUNT];
static atomic_uint thread_ordinal;
static atomic_llong last_report_ms;
static atomic_flag reporting = ATOMIC_FLAG_INIT;
static _Thread_local uint64_t random_state;

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* xorshift64*, one stream per thread derived from the seed, the pid and the thread's ordinal. */
static uint64_t next_random(void)
{
    if (random_state == 0) {
        uint64_t mix =
            settings.seed ^ ((uint64_t)getpid() << 32) ^ atomic_fetch_add(&thread_ordinal, 1);
        random_state = splitmix64(mix) | 1;
    }
    random_state ^= random_state >> 12;
    random_state ^= random_state << 25;
    random_state ^= random_state >> 27;
    return random_state * 0x2545f4914f6cdd1dULL;
}

static double uniform(void)
{
    return (double)(next_random() >> 11) * 0x1.0p-53;
}

static long long now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void write_report(void)
{
    if (settings.report_dir[0] == '\0')
        return;
    char path[600];
    char temporary[620];
    snprintf(path, sizeof(path), "%s/faults-%d.json", settings.report_dir, (int)getpid());
    snprintf(temporary, sizeof(temporary), "%s.tmp", path);
    char text[512];
    int length = snprintf(text, sizeof(text), "{\"pid\": %d", (int)getpid());
    for (int kind = 0; kind < KIND_COUNT; kind++)
        length += snprintf(text + length, sizeof(text) - (size_t)length, ", \"%s\": %lu",
                           kind_names[kind], atomic_load(&counts[kind]));
    length += snprintf(text + length, sizeof(text) - (size_t)length, "}\n");
    MT_PRESERVING_ERRNO({
        int fd = (int)syscall(SYS_openat, AT_FDCWD, temporary,
                              O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            bool whole = syscall(SYS_write, fd, text, (size_t)length) == length;
            syscall(SYS_close, fd);
            if (whole)
                syscall(SYS_rename, temporary, path);
        }
    });
}

static void maybe_report(void)
{
    long long now = now_ms();
    if (now - atomic_load(&last_report_ms) < REPORT_INTERVAL_MS)
        return;
    if (atomic_flag_test_and_set(&reporting))
        return;
    atomic_store(&last_report_ms, now);
    write_report();
    atomic_flag_clear(&reporting);
}

__attribute__((destructor)) static void report_at_exit(void)
{
    if (settings.enabled)
        write_report();
}

/* A forked child counts its own faults, in its own file. */
static void reset_counts_in_child(void)
{
    for (int kind = 0; kind < KIND_COUNT; kind++)
        atomic_store(&counts[kind], 0);
    random_state = 0;
}

/* "eintr+eagain+short+reset": the kinds to inject (all when not given). */
static unsigned parse_kinds(const char *text)
{
    unsigned kinds = 0;
    if (strstr(text, "eintr") != NULL)
        kinds |= 1u << KIND_EINTR;
    if (strstr(text, "eagain") != NULL)
        kinds |= 1u << KIND_EAGAIN;
    if (strstr(text, "short") != NULL)
        kinds |= 1u << KIND_SHORT_READ | 1u << KIND_SHORT_WRITE;
    if (strstr(text, "reset") != NULL)
        kinds |= 1u << KIND_RESET;
    return kinds;
}

static bool is_wanted(enum kind kind)
{
    return (settings.kinds & (1u << kind)) != 0;
}

static void read_settings(void)
{
    const char *text = getenv("MESHTLS_FAULTS");
    if (text == NULL || text[0] == '\0')
        return;
    settings.kinds = ~0u;
    char copy[1024];
    snprintf(copy, sizeof(copy), "%s", text);
    char *cursor = NULL;
    for (char *part = strtok_r(copy, ",", &cursor); part != NULL;
         part = strtok_r(NULL, ",", &cursor)) {
        char *value = strchr(part, '=');
        if (value == NULL)
            continue;
        *value++ = '\0';
        if (strcmp(part, "seed") == 0)
            settings.seed = strtoull(value, NULL, 0);
        else if (strcmp(part, "rate") == 0)
            settings.rate = strtod(value, NULL);
        else if (strcmp(part, "reset") == 0)
            settings.reset = strtod(value, NULL);
        else if (strcmp(part, "kinds") == 0)
            settings.kinds = parse_kinds(value);
        else if (strcmp(part, "report") == 0)
            snprintf(settings.report_dir, sizeof(settings.report_dir), "%s", value);
    }
    settings.enabled = true;
    pthread_atfork(NULL, NULL, reset_counts_in_child);
}

static bool is_enabled(void)
{
    MT_PRESERVING_ERRNO(pthread_once(&settings_once, read_settings));
    return settings.enabled;
}

static void count(enum kind kind)
{
    atomic_fetch_add(&counts[kind], 1);
    maybe_report();
}

static bool is_socket(int fd)
{
    int type = 0;
    socklen_t length = sizeof(type);
    return syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0;
}

static bool is_tcp(int fd)
{
    int protocol = 0;
    socklen_t length = sizeof(protocol);
    return syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &length) == 0 &&
           protocol == IPPROTO_TCP;
}

static bool is_nonblocking(int fd)
{
    long flags = syscall(SYS_fcntl, fd, F_GETFL, 0);
    return flags != -1 && (flags & O_NONBLOCK) != 0;
}

/*
 * Reset, or shut both ways: an edge-triggered waiter has had the last edge this socket will give,
 * so an EAGAIN now would leave it waiting forever (SO_RCVLOWAT re-signals data or a FIN, not an
 * RST), where the kernel itself would have failed the call or returned EOF.
 */
static bool is_broken(int fd)
{
    struct pollfd entry = {.fd = fd, .events = POLLIN | POLLOUT};
    struct timespec zero = {0, 0};
    return syscall(SYS_ppoll, &entry, 1, &zero, NULL, 8) == 1 &&
           (entry.revents & (POLLERR | POLLHUP)) != 0;
}

/* Sets an option to the value it has: TCP re-checks readiness and wakes waiters if ready. */
static void signal_readiness_again(int fd, bool sending)
{
    int level = sending ? IPPROTO_TCP : SOL_SOCKET;
    int name = sending ? TCP_NOTSENT_LOWAT : SO_RCVLOWAT;
    int value = 0;
    socklen_t length = sizeof(value);
    if (syscall(SYS_getsockopt, fd, level, name, &value, &length) == 0)
        syscall(SYS_setsockopt, fd, level, name, &value, sizeof(value));
}

bool mt_fault_before_transfer(int fd, int flags, size_t *length, bool sending)
{
    if (!is_enabled())
        return false;
    /* A read or write made for the application may be on a file, which the kernel never
     * interrupts or shortens; libmeshtls's own transfers are on sockets. */
    bool on_socket = false;
    MT_PRESERVING_ERRNO(on_socket = is_socket(fd));
    if (!on_socket)
        return false;
    int saved = errno;
    if (is_wanted(KIND_RESET) && settings.reset > 0 && uniform() < settings.reset && is_tcp(fd)) {
        struct sockaddr unspecified = {.sa_family = AF_UNSPEC};
        if (syscall(SYS_connect, fd, &unspecified, sizeof(unspecified)) == 0) {
            count(KIND_RESET);
            errno = ECONNRESET;
            return true;
        }
    }
    if (settings.rate <= 0 || uniform() >= settings.rate) {
        errno = saved;
        return false;
    }
    switch (next_random() % 3) {
    case 0:
        if (!is_wanted(KIND_EINTR))
            break;
        count(KIND_EINTR);
        errno = EINTR;
        return true;
    case 1:
        if (is_wanted(KIND_EAGAIN) && ((flags & MSG_DONTWAIT) || is_nonblocking(fd)) &&
            !is_broken(fd)) {
            if (is_tcp(fd))
                signal_readiness_again(fd, sending);
            count(KIND_EAGAIN);
            errno = EAGAIN;
            return true;
        }
        /* A blocking call, or one on a reset connection, cannot say EAGAIN: shorten it instead. */
        __attribute__((fallthrough));
    default:
        if (is_wanted(KIND_SHORT_READ) && *length > 1) {
            *length = 1 + (size_t)(next_random() % (*length - 1));
            count(sending ? KIND_SHORT_WRITE : KIND_SHORT_READ);
        }
        break;
    }
    errno = saved;
    return false;
}

bool mt_fault_before_wait(int timeout_ms)
{
    if (timeout_ms == 0 || !is_enabled() || !is_wanted(KIND_EINTR) || settings.rate <= 0)
        return false;
    if (uniform() >= settings.rate / 3)
        return false;
    count(KIND_EINTR);
    errno = EINTR;
    return true;
}
