/*
 * Concurrency test of the direct-link API (libmeshtls.so), for ThreadSanitizer and the plain
 * build: a real agent issues the identities, and many threads at once connect, accept, read,
 * write, poll, shut down and close meshed sockets in one process. That exercises the shared
 * state the library keeps for every process (fd table, identity and its refresh, TLS context,
 * metrics, epoll registry, per-thread errors) and the per-connection lock that lets one thread
 * read while another writes on the same connection.
 *
 * usage: test_threads AGENT_BINARY
 *   Makes a temporary directory with an agent and a configuration (loopback mtls/strict),
 *   then runs, all at the same time on one listening socket:
 *     - SERVER_THREADS threads accepting and echoing until end of stream, each checking the
 *       client's SPIFFE ID;
 *     - CLIENT_THREADS threads each making CONNECTIONS_PER_CLIENT blocking connections, every
 *       other one non-blocking (connect, then meshtls_poll for the handshake and the echo);
 *     - DUPLEX_PAIRS connections where one thread writes DUPLEX_BYTES while another reads the
 *       echo on the same fd, then the writer shuts down its side and the reader sees the end.
 *   Every echo must be exact and every peer ID the process's own. Exit status 0 when all is.
 *
 * Built a second time with MESHTLS_TEST_PRELOAD as test_threads_preload, a program that knows
 * nothing of libmeshtls and runs under LD_PRELOAD=libmeshtls-preload.so: the same clients with
 * plain connect/read/write/poll/shutdown/close, and servers that each wait in their own epoll
 * instance on the shared non-blocking listener and on their connections (level-triggered), so
 * the hooks' fd table and epoll emulation see many threads at once. No peer ID check there: a
 * program under the preload has no way to ask.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef MESHTLS_TEST_PRELOAD
#include <sys/epoll.h>
#include <sys/syscall.h>
/* Under the preload the plain calls are the meshed ones. */
#define meshtls_init() 0
#define meshtls_connect connect
#define meshtls_accept accept4
#define meshtls_read read
#define meshtls_write write
#define meshtls_shutdown shutdown
#define meshtls_close close
#define meshtls_poll poll
#define meshtls_last_error() strerror(errno)
#else
#include <meshtls.h>
#endif

#define SERVER_THREADS 4
#define CLIENT_THREADS 4
#define CONNECTIONS_PER_CLIENT 6
#define DUPLEX_PAIRS 2
#define DUPLEX_BYTES (512 * 1024)
#define CHUNK 16384
#define IO_TIMEOUT_MS 60000

static char directory[] = "/tmp/meshtls-threads-XXXXXX";
static pid_t agent_pid = -1;
static char expected_id[256];
static struct sockaddr_in server_address;
static atomic_int failures;
static atomic_int served;

__attribute__((format(printf, 1, 2))) static void fail(const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    fputs("test_threads: ", stderr);
    vfprintf(stderr, format, arguments);
    fputc('\n', stderr);
    va_end(arguments);
    atomic_fetch_add(&failures, 1);
}

static void cleanup(void)
{
    if (agent_pid > 0) {
        kill(agent_pid, SIGTERM);
        waitpid(agent_pid, NULL, 0);
        agent_pid = -1;
    }
    char command[sizeof(directory) + 16];
    snprintf(command, sizeof(command), "rm -rf '%s'", directory);
    if (system(command) != 0)
        fprintf(stderr, "test_threads: could not remove %s\n", directory);
}

/* The byte at offset of a stream: a pattern that shows a lost, repeated or reordered chunk. */
static unsigned char pattern_byte(size_t offset, unsigned seed)
{
    return (unsigned char)((offset * 131u + seed * 7u + (offset >> 12)) & 0xff);
}

static bool file_contains(const char *path, const char *text)
{
    FILE *file = fopen(path, "re");
    if (file == NULL)
        return false;
    char buffer[8192];
    size_t length = fread(buffer, 1, sizeof(buffer) - 1, file);
    fclose(file);
    buffer[length] = '\0';
    return strstr(buffer, text) != NULL;
}

/* Starts the agent with its output in DIRECTORY/agent.log and waits for its "serving" line. */
static bool start_agent(const char *binary)
{
    char socket_path[128], state[128], log_path[128], config[128];
    snprintf(socket_path, sizeof(socket_path), "%s/agent.sock", directory);
    snprintf(state, sizeof(state), "%s/state", directory);
    snprintf(log_path, sizeof(log_path), "%s/agent.log", directory);
    snprintf(config, sizeof(config), "%s/meshtls.conf", directory);
    FILE *file = fopen(config, "we");
    if (file == NULL)
        return false;
    fprintf(file,
            "agent_socket = \"%s\";\noutbound = { loopback = \"mtls\"; };\n"
            "inbound = { loopback = \"strict\"; };\nlog_level = \"warn\";\n",
            socket_path);
    fclose(file);
    setenv("MESHTLS_CONFIG", config, 1);

    agent_pid = fork();
    if (agent_pid < 0)
        return false;
    if (agent_pid == 0) {
        int log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (log_fd < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)
            _exit(127);
        /* The agent is its own program: no sanitizer options of ours, no preload. */
        unsetenv("LD_PRELOAD");
        execl(binary, binary, "--socket", socket_path, "--state-dir", state, "--metrics-address",
              "off", (char *)NULL);
        _exit(127);
    }
    char serving[160];
    snprintf(serving, sizeof(serving), "serving %s", socket_path);
    for (int i = 0; i < 600; i++) {
        if (file_contains(log_path, serving))
            return true;
        if (waitpid(agent_pid, NULL, WNOHANG) == agent_pid) {
            agent_pid = -1;
            fprintf(stderr, "test_threads: the agent exited at start-up (log: %s)\n", log_path);
            return false;
        }
        usleep(50 * 1000);
    }
    fprintf(stderr, "test_threads: the agent did not start serving in 30 s\n");
    return false;
}

/* Waits until fd is ready for events (meshtls_poll: handshakes progress inside). */
static bool wait_for(int fd, short events)
{
    struct pollfd entry = {.fd = fd, .events = events};
    int ready = meshtls_poll(&entry, 1, IO_TIMEOUT_MS);
    if (ready == 1 && (entry.revents & (events | POLLHUP | POLLERR)) != 0)
        return true;
    fail("fd %d: meshtls_poll for %#x gave %d (revents %#x): %s", fd, events, ready, entry.revents,
         meshtls_last_error());
    return false;
}

static bool write_all(int fd, const unsigned char *data, size_t length, bool nonblocking)
{
    for (size_t sent = 0; sent < length;) {
        ssize_t written = meshtls_write(fd, data + sent, length - sent);
        if (written > 0) {
            sent += (size_t)written;
        } else if (written < 0 && nonblocking && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!wait_for(fd, POLLOUT))
                return false;
        } else if (written < 0 && errno == EINTR) {
            continue;
        } else {
            fail("fd %d: write: %s", fd, meshtls_last_error());
            return false;
        }
    }
    return true;
}

/* Reads exactly length bytes (or to end of stream when length is 0): returns what it read. */
static ssize_t read_some(int fd, unsigned char *buffer, size_t capacity, bool nonblocking)
{
    for (;;) {
        if (nonblocking && !wait_for(fd, POLLIN))
            return -1;
        ssize_t got = meshtls_read(fd, buffer, capacity);
        if (got >= 0)
            return got;
        if (errno == EINTR || (nonblocking && (errno == EAGAIN || errno == EWOULDBLOCK)))
            continue;
        fail("fd %d: read: %s", fd, meshtls_last_error());
        return -1;
    }
}

static bool check_peer(int fd, const char *who)
{
#ifdef MESHTLS_TEST_PRELOAD
    (void)fd;
    (void)who;
    return true;
#else
    char peer[2049];
    int length = meshtls_peer_id(fd, peer, sizeof(peer));
    if (length <= 0 || strcmp(peer, expected_id) != 0) {
        fail("%s: peer ID %s, expected %s (%s)", who, length > 0 ? peer : "(none)", expected_id,
             meshtls_last_error());
        return false;
    }
    return true;
#endif
}

/* ---- the server --------------------------------------------------------------------------- */

#ifndef MESHTLS_TEST_PRELOAD
static void *server_thread(void *argument)
{
    int listener = *(int *)argument;
    unsigned char *buffer = malloc(CHUNK);
    if (buffer == NULL) {
        fail("out of memory");
        return NULL;
    }
    for (;;) {
        int fd = meshtls_accept(listener, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINVAL || errno == EBADF)
                break; /* the listener was shut down: the test is over */
            if (errno != EINTR && errno != ECONNABORTED)
                fail("accept: %s", meshtls_last_error());
            continue;
        }
        bool first = true;
        ssize_t got;
        while ((got = read_some(fd, buffer, CHUNK, false)) > 0) {
            if (first && !check_peer(fd, "server"))
                break;
            first = false;
            if (!write_all(fd, buffer, (size_t)got, false))
                break;
        }
        if (meshtls_close(fd) != 0)
            fail("server close: %s", meshtls_last_error());
        atomic_fetch_add(&served, 1);
    }
    free(buffer);
    return NULL;
}
#endif

#ifdef MESHTLS_TEST_PRELOAD
/* Reads what fd has (until EAGAIN) and echoes it; false once the connection is over. */
static bool echo_available(int fd, unsigned char *buffer)
{
    for (;;) {
        ssize_t got = read(fd, buffer, CHUNK);
        if (got > 0) {
            if (!write_all(fd, buffer, (size_t)got, true))
                return false;
            continue;
        }
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (got < 0 && errno == EINTR)
            continue;
        /* Reset: the plaintext client of plaintext_is_refused, refused by the library. A real
         * client that sees its connection reset reports it. */
        if (got < 0 && errno != ECONNRESET)
            fail("fd %d: read: %s", fd, strerror(errno));
        return false;
    }
}

/* Accepts one connection into epoll; false once the listener is shut down (end of test). */
static bool accept_into(int epoll, int listener, int *connections)
{
    int accepted = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (accepted < 0 && errno == EINVAL)
        return false;
    if (accepted < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
            fail("accept: %s", strerror(errno));
        return true;
    }
    struct epoll_event added = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = accepted};
    if (epoll_ctl(epoll, EPOLL_CTL_ADD, accepted, &added) != 0) {
        fail("epoll_ctl: %s", strerror(errno));
        close(accepted);
        return true;
    }
    (*connections)++;
    return true;
}

/* One epoll instance per thread over the shared listener and this thread's connections. */
static void *epoll_server_thread(void *argument)
{
    int listener = *(int *)argument;
    unsigned char *buffer = malloc(CHUNK);
    int epoll = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = listener};
    if (buffer == NULL || epoll < 0 || epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event) != 0) {
        fail("epoll set-up: %s", strerror(errno));
        goto out;
    }
    bool listening = true;
    int connections = 0;
    while (listening || connections > 0) {
        struct epoll_event events[16];
        int count = epoll_wait(epoll, events, 16, IO_TIMEOUT_MS);
        if (count < 0 && errno == EINTR)
            continue;
        if (count <= 0) {
            fail("epoll_wait gave %d (%s) with %d connections open", count,
                 count < 0 ? strerror(errno) : "timeout", connections);
            break;
        }
        for (int i = 0; i < count; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                if (!accept_into(epoll, listener, &connections)) {
                    epoll_ctl(epoll, EPOLL_CTL_DEL, listener, NULL);
                    listening = false;
                }
                continue;
            }
            if (echo_available(fd, buffer))
                continue;
            epoll_ctl(epoll, EPOLL_CTL_DEL, fd, NULL);
            if (close(fd) != 0)
                fail("server close: %s", strerror(errno));
            connections--;
            atomic_fetch_add(&served, 1);
        }
    }
out:
    if (epoll >= 0)
        close(epoll);
    free(buffer);
    return NULL;
}
#endif

#ifdef MESHTLS_TEST_PRELOAD
/*
 * Proof that the preload meshed the listener: a client that goes around the hooks (raw system
 * calls) and speaks plaintext must get no echo from the strict server. Returns true when so.
 */
static bool plaintext_is_refused(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval timeout = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    static const char hello[] = "hello in clear\n";
    char answer[64];
    long got = -1;
    if (fd >= 0 &&
        syscall(SYS_connect, fd, (const struct sockaddr *)&server_address,
                sizeof(server_address)) == 0 &&
        syscall(SYS_sendto, fd, hello, sizeof(hello) - 1, 0, NULL, 0) == (long)sizeof(hello) - 1)
        got = syscall(SYS_recvfrom, fd, answer, sizeof(answer), 0, NULL, NULL);
    if (fd >= 0)
        syscall(SYS_close, fd);
    if (got > 0)
        fail("a plaintext client got %ld bytes back: the listener is not meshed", got);
    return got <= 0;
}
#endif

/* ---- the clients -------------------------------------------------------------------------- */

static int connect_to_server(bool nonblocking)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) {
        fail("socket: %s", strerror(errno));
        return -1;
    }
    int connected =
        meshtls_connect(fd, (const struct sockaddr *)&server_address, sizeof(server_address));
    if (connected != 0 && !(nonblocking && errno == EINPROGRESS)) {
        fail("connect: %s", meshtls_last_error());
        meshtls_close(fd);
        return -1;
    }
    if (nonblocking && !wait_for(fd, POLLOUT)) {
        meshtls_close(fd);
        return -1;
    }
    return fd;
}

/* One connection: send size bytes, read the echo, compare, check the server's ID, close. */
static void echo_once(unsigned seed, size_t size, bool nonblocking)
{
    unsigned char *sent = malloc(size);
    unsigned char *echoed = malloc(size);
    int fd = -1;
    if (sent == NULL || echoed == NULL) {
        fail("out of memory");
        goto out;
    }
    for (size_t i = 0; i < size; i++)
        sent[i] = pattern_byte(i, seed);
    fd = connect_to_server(nonblocking);
    if (fd < 0)
        goto out;
    if (!write_all(fd, sent, size, nonblocking))
        goto out;
    size_t received = 0;
    while (received < size) {
        ssize_t got = read_some(fd, echoed + received, size - received, nonblocking);
        if (got <= 0) {
            fail("client %u: echo ended after %zu of %zu bytes", seed, received, size);
            goto out;
        }
        received += (size_t)got;
    }
    if (memcmp(sent, echoed, size) != 0)
        fail("client %u: the echo differs from what was sent", seed);
    check_peer(fd, "client");
out:
    if (fd >= 0 && meshtls_close(fd) != 0)
        fail("client close: %s", meshtls_last_error());
    free(sent);
    free(echoed);
}

static void *client_thread(void *argument)
{
    unsigned index = (unsigned)(size_t)argument;
    for (unsigned i = 0; i < CONNECTIONS_PER_CLIENT; i++) {
        unsigned seed = index * 100 + i;
        /* From one byte to several records, crossing the 16 KiB record size. */
        size_t size = 1 + ((size_t)seed * 7919) % (3 * CHUNK);
        echo_once(seed, size, i % 2 == 1);
    }
    return NULL;
}

/* ---- one connection, two threads ------------------------------------------------------------ */

struct duplex {
    int fd;
    unsigned seed;
};

static void *duplex_writer(void *argument)
{
    const struct duplex *duplex = argument;
    unsigned char chunk[4096];
    for (size_t offset = 0; offset < DUPLEX_BYTES; offset += sizeof(chunk)) {
        for (size_t i = 0; i < sizeof(chunk); i++)
            chunk[i] = pattern_byte(offset + i, duplex->seed);
        if (!write_all(duplex->fd, chunk, sizeof(chunk), false))
            return NULL;
    }
    if (meshtls_shutdown(duplex->fd, SHUT_WR) != 0)
        fail("duplex shutdown: %s", meshtls_last_error());
    return NULL;
}

static void *duplex_reader(void *argument)
{
    const struct duplex *duplex = argument;
    unsigned char buffer[CHUNK];
    size_t offset = 0;
    for (;;) {
        ssize_t got = read_some(duplex->fd, buffer, sizeof(buffer), false);
        if (got <= 0)
            break;
        for (ssize_t i = 0; i < got; i++, offset++) {
            if (buffer[i] != pattern_byte(offset, duplex->seed)) {
                fail("duplex %u: byte %zu of the echo is wrong", duplex->seed, offset);
                return NULL;
            }
        }
    }
    if (offset != DUPLEX_BYTES)
        fail("duplex %u: echo ended after %zu of %d bytes", duplex->seed, offset, DUPLEX_BYTES);
    return NULL;
}

static void *duplex_thread(void *argument)
{
    struct duplex duplex = {.fd = connect_to_server(false), .seed = (unsigned)(size_t)argument};
    if (duplex.fd < 0)
        return NULL;
    pthread_t writer, reader;
    if (pthread_create(&writer, NULL, duplex_writer, &duplex) != 0) {
        fail("pthread_create failed");
        meshtls_close(duplex.fd);
        return NULL;
    }
    if (pthread_create(&reader, NULL, duplex_reader, &duplex) == 0)
        pthread_join(reader, NULL);
    else
        fail("pthread_create failed");
    pthread_join(writer, NULL);
    check_peer(duplex.fd, "duplex client");
    if (meshtls_close(duplex.fd) != 0)
        fail("duplex close: %s", meshtls_last_error());
    return NULL;
}

/* The threads and their checks; the agent is running and MESHTLS_CONFIG names its config. */
static int run_workload(void)
{
    int status = 1;
    snprintf(expected_id, sizeof(expected_id), "spiffe://meshtls.local/uid/%u", (unsigned)getuid());
    if (meshtls_init() != 0) {
        fprintf(stderr, "test_threads: meshtls_init: %s\n", meshtls_last_error());
        goto out;
    }

#ifdef MESHTLS_TEST_PRELOAD
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    void *(*serve)(void *) = epoll_server_thread;
#else
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    void *(*serve)(void *) = server_thread;
#endif
    server_address.sin_family = AF_INET;
    server_address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(server_address);
    if (listener < 0 ||
        bind(listener, (struct sockaddr *)&server_address, sizeof(server_address)) != 0 ||
        listen(listener, 64) != 0 ||
        getsockname(listener, (struct sockaddr *)&server_address, &length) != 0) {
        perror("test_threads: listen");
        goto out;
    }

    pthread_t servers[SERVER_THREADS];
    pthread_t clients[CLIENT_THREADS + DUPLEX_PAIRS];
    for (size_t i = 0; i < SERVER_THREADS; i++)
        if (pthread_create(&servers[i], NULL, serve, &listener) != 0)
            abort();
    for (size_t i = 0; i < CLIENT_THREADS; i++)
        if (pthread_create(&clients[i], NULL, client_thread, (void *)i) != 0)
            abort();
    for (size_t i = 0; i < DUPLEX_PAIRS; i++)
        if (pthread_create(&clients[CLIENT_THREADS + i], NULL, duplex_thread, (void *)(1000 + i)) !=
            0)
            abort();
    for (size_t i = 0; i < CLIENT_THREADS + DUPLEX_PAIRS; i++)
        pthread_join(clients[i], NULL);

#ifdef MESHTLS_TEST_PRELOAD
    bool refused = plaintext_is_refused();
#endif
    /* shutdown(2) wakes every thread blocked in accept on the listener, with EINVAL. */
    shutdown(listener, SHUT_RDWR);
    for (size_t i = 0; i < SERVER_THREADS; i++)
        pthread_join(servers[i], NULL);
    close(listener);

    int expected = CLIENT_THREADS * CONNECTIONS_PER_CLIENT + DUPLEX_PAIRS;
#ifdef MESHTLS_TEST_PRELOAD
    /* The refused plaintext connection may reach the server's accept, or be dropped before. */
    if (refused && atomic_load(&served) == expected + 1)
        atomic_fetch_sub(&served, 1);
#endif
    if (atomic_load(&served) != expected)
        fail("the server finished %d connections, expected %d", atomic_load(&served), expected);
    printf("%d connections over %d client and %d server threads, %d failures\n", expected,
           CLIENT_THREADS + 2 * DUPLEX_PAIRS, SERVER_THREADS, atomic_load(&failures));
    status = atomic_load(&failures) == 0 ? 0 : 1;
out:
    return status;
}

/*
 * The preloaded library reads MESHTLS_CONFIG when it is loaded, before main: under the preload
 * the workload is this program again, started with the configuration in its environment.
 */
static int run_workload_process(char *program)
{
#ifdef MESHTLS_TEST_PRELOAD
    pid_t child = fork();
    if (child < 0)
        return 1;
    if (child == 0) {
        execl("/proc/self/exe", program, "--workload", (char *)NULL);
        _exit(127);
    }
    int status = 1;
    if (waitpid(child, &status, 0) != child)
        return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
#else
    (void)program;
    return run_workload();
#endif
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_threads AGENT_BINARY\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(argv[1], "--workload") == 0)
        return run_workload();
    if (mkdtemp(directory) == NULL) {
        perror("test_threads: mkdtemp");
        return 1;
    }
    int status = start_agent(argv[1]) ? run_workload_process(argv[0]) : 1;
    cleanup();
    return status;
}
