/*
 * A privilege-separated server in miniature, and its client: the server accepts, forks, and the
 * child confines itself with a seccomp filter (libseccomp, default action: kill the process)
 * before it serves the connection with read and write only, as OpenSSH's or vsftpd's children do.
 * Under the preload, a meshed connection must keep working inside the filter: any system call
 * the filter does not allow kills the child with SIGSYS, and the parent reports it.
 *
 *   sandbox_peer serve PORT MODE   listens on 127.0.0.1:PORT, serves one connection, prints
 *                                  "child exited 0" or "child killed by signal N".
 *     MODE blocking      the parent waits for the request (the handshake happens here), the
 *                        child allows only read, write and what malloc and TLS need (strict);
 *                        it answers with a bulk response on the blocking socket
 *     nonblocking        the same on an O_NONBLOCK socket, with poll and ppoll allowed
 *     handshake          the child gets the connection untouched (the handshake happens inside
 *                        the filter), with OpenSSH's pre-authentication list of calls
 *     duplex             as blocking, but the child's two threads read a bulk upload and write a
 *                        bulk download at once on the same blocking socket
 *     close              as blocking, close allowed too: the child closes the connection after
 *                        its response (close_notify goes out inside the filter) and exits
 *     shutdown           as blocking, shutdown allowed too: the child shuts its write side after
 *                        the response, then reads until the client's end
 *     keyupdate          as blocking (the strict list): after the request the child reads one
 *                        more line, before which the client sends a KeyUpdate that asks for one
 *                        back; the child answers it while it only reads
 *   sandbox_peer fetch PORT SIZE TOKEN [duplex|eof]
 *                                  connects, sends "GET SIZE TOKEN\n" (and with duplex uploads
 *                                  SIZE bytes at once from a second thread), reads TOKEN then
 *                                  SIZE bytes of the pattern (with eof, then a clean end of the
 *                                  stream, read returning 0), prints "fetched SIZE" or why not.
 *
 * The response is TOKEN followed by SIZE bytes where byte i is (i * 7 + i / 4096) % 251, so a
 * reordered, lost or repeated record shows. The upload uses the same pattern.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loopback_listener.h"

#define CHUNK 65536

static unsigned char pattern_byte(size_t i)
{
    return (unsigned char)((i * 7 + i / 4096) % 251);
}

/* Waits for fd to be ready on a non-blocking socket; a no-op on a blocking one. */
static void wait_ready(int fd, short events, bool nonblocking)
{
    if (!nonblocking)
        return;
    struct pollfd entry = {.fd = fd, .events = events};
    (void)poll(&entry, 1, 10000);
}

static bool write_all(int fd, const void *buffer, size_t length, bool nonblocking)
{
    size_t done = 0;
    while (done < length) {
        ssize_t n = write(fd, (const char *)buffer + done, length - done);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            wait_ready(fd, POLLOUT, nonblocking);
            continue;
        }
        if (n <= 0)
            return false;
        done += (size_t)n;
    }
    return true;
}

/* read() into buffer; 0 at EOF, -1 on an error other than EAGAIN/EINTR. */
static ssize_t read_some(int fd, void *buffer, size_t length, bool nonblocking)
{
    for (;;) {
        ssize_t n = read(fd, buffer, length);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            wait_ready(fd, POLLIN, nonblocking);
            continue;
        }
        return n;
    }
}

static bool send_pattern(int fd, size_t size, bool nonblocking)
{
    static unsigned char chunk[CHUNK];
    for (size_t sent = 0; sent < size;) {
        size_t n = size - sent < CHUNK ? size - sent : CHUNK;
        for (size_t i = 0; i < n; i++)
            chunk[i] = pattern_byte(sent + i);
        if (!write_all(fd, chunk, n, nonblocking))
            return false;
        sent += n;
    }
    return true;
}

/* Reads size bytes and checks them against the pattern; false on a mismatch or early EOF. */
static bool receive_pattern(int fd, size_t size, bool nonblocking)
{
    static _Thread_local unsigned char chunk[CHUNK];
    for (size_t got = 0; got < size;) {
        size_t want = size - got < CHUNK ? size - got : CHUNK;
        ssize_t n = read_some(fd, chunk, want, nonblocking);
        if (n <= 0)
            return false;
        for (ssize_t i = 0; i < n; i++)
            if (chunk[i] != pattern_byte(got + (size_t)i))
                return false;
        got += (size_t)n;
    }
    return true;
}

/* ---- the sandboxed child ------------------------------------------------------------------- */

static const int memory_and_tls[] = {
    SCMP_SYS(read),          SCMP_SYS(write),   SCMP_SYS(exit),   SCMP_SYS(exit_group),
    SCMP_SYS(rt_sigreturn),  SCMP_SYS(brk),     SCMP_SYS(mmap),   SCMP_SYS(munmap),
    SCMP_SYS(mremap),        SCMP_SYS(madvise), SCMP_SYS(futex),  SCMP_SYS(getrandom),
    SCMP_SYS(clock_gettime), SCMP_SYS(getpid),  SCMP_SYS(gettid), SCMP_SYS(mprotect),
};

/* OpenSSH's pre-authentication sandbox (sandbox-seccomp-filter.c), without its socket calls. */
static const int openssh_preauth[] = {
    SCMP_SYS(poll),         SCMP_SYS(ppoll),          SCMP_SYS(select), SCMP_SYS(pselect6),
    SCMP_SYS(gettimeofday), SCMP_SYS(rt_sigprocmask), SCMP_SYS(close),  SCMP_SYS(shutdown),
};

static void confine(const char *mode)
{
    scmp_filter_ctx filter = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (filter == NULL)
        _exit(90);
    for (size_t i = 0; i < sizeof(memory_and_tls) / sizeof(memory_and_tls[0]); i++)
        seccomp_rule_add(filter, SCMP_ACT_ALLOW, memory_and_tls[i], 0);
    if (strcmp(mode, "nonblocking") == 0) {
        seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(poll), 0);
        seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(ppoll), 0);
    }
    /* A thread that ends blocks its signals first (glibc's start_thread). */
    if (strcmp(mode, "duplex") == 0)
        seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(rt_sigprocmask), 0);
    if (strcmp(mode, "close") == 0)
        seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(close), 0);
    if (strcmp(mode, "shutdown") == 0)
        seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(shutdown), 0);
    if (strcmp(mode, "handshake") == 0)
        for (size_t i = 0; i < sizeof(openssh_preauth) / sizeof(openssh_preauth[0]); i++)
            seccomp_rule_add(filter, SCMP_ACT_ALLOW, openssh_preauth[i], 0);
#if defined(__SANITIZE_ADDRESS__)
    /* The sanitized build's AddressSanitizer runtime takes down its signal stack at exit. */
    seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(sigaltstack), 0);
#endif
    /* The child's threads are filtered too (duplex). */
    seccomp_attr_set(filter, SCMP_FLTATR_CTL_TSYNC, 1);
    if (seccomp_load(filter) != 0)
        _exit(91);
    /* The filter is in the kernel; the context's memory is left as it is: freeing is harmless
     * but there is nothing to gain. */
}

struct upload {
    int fd;
    size_t size;
    pthread_barrier_t *ready; /* the thread runs (its start-up calls are made) */
    pthread_barrier_t *start; /* the filter is in place */
    bool ok;
};

static void *receive_upload(void *argument)
{
    struct upload *upload = argument;
    pthread_barrier_wait(upload->ready);
    pthread_barrier_wait(upload->start);
    upload->ok = receive_pattern(upload->fd, upload->size, false);
    return NULL;
}

/* Reads "GET SIZE TOKEN\n"; false when it does not come. */
static bool read_request(int fd, size_t *size, char *token, size_t capacity, bool nonblocking)
{
    char line[256];
    size_t length = 0;
    while (length < sizeof(line) - 1) {
        ssize_t n = read_some(fd, line + length, 1, nonblocking);
        if (n <= 0)
            return false;
        if (line[length++] == '\n')
            break;
    }
    line[length] = '\0';
    char word[128];
    unsigned long long value = 0;
    if (sscanf(line, "GET %llu %127s", &value, word) != 2 || strlen(word) >= capacity)
        return false;
    *size = (size_t)value;
    memcpy(token, word, strlen(word) + 1);
    return true;
}

static int serve_child(int fd, const char *mode)
{
    bool nonblocking = strcmp(mode, "nonblocking") == 0;
    bool duplex = strcmp(mode, "duplex") == 0;
    if (nonblocking)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    pthread_barrier_t ready;
    pthread_barrier_t start;
    pthread_barrier_init(&ready, NULL, 2);
    pthread_barrier_init(&start, NULL, 2);
    struct upload upload = {.fd = fd, .ready = &ready, .start = &start};
    pthread_t reader;
    size_t size = 0;
    char token[128];
    /* duplex: the request is read before the filter, the threads made before it too. */
    if (duplex) {
        if (!read_request(fd, &size, token, sizeof(token), false))
            return 3;
        upload.size = size;
        if (pthread_create(&reader, NULL, receive_upload, &upload) != 0)
            return 4;
        pthread_barrier_wait(&ready);
    }
    confine(mode);
    if (!duplex && !read_request(fd, &size, token, sizeof(token), nonblocking))
        return 3;
    /* keyupdate: the KeyUpdate arrives while this read waits for the second line. */
    char line[16];
    if (strcmp(mode, "keyupdate") == 0 && read_some(fd, line, sizeof(line), false) <= 0)
        return 7;
    if (duplex)
        pthread_barrier_wait(&start);
    if (!write_all(fd, token, strlen(token), nonblocking) || !send_pattern(fd, size, nonblocking))
        return 5;
    if (duplex) {
        pthread_join(reader, NULL);
        if (!upload.ok)
            return 6;
    }
    if (strcmp(mode, "close") == 0)
        return close(fd) == 0 ? 0 : 8;
    if (strcmp(mode, "shutdown") == 0 && shutdown(fd, SHUT_WR) != 0)
        return 9;
    /* The client closes once it has everything: wait for that, then leave. */
    char rest[64];
    while (read_some(fd, rest, sizeof(rest), nonblocking) > 0)
        ;
    return 0;
}

static int serve(int port, const char *mode)
{
    int listener = listen_on_loopback(port, SOCK_STREAM, 8, "sandbox_peer");
    int fd = accept(listener, NULL, NULL);
    if (fd < 0) {
        perror("sandbox_peer: accept");
        return 1;
    }
    /* The pre-authentication shape hands the connection over untouched; the others wait for
     * the request first, as a parent that reads the first message would. */
    if (strcmp(mode, "handshake") != 0) {
        char first;
        if (recv(fd, &first, 1, MSG_PEEK) != 1) {
            printf("no request: %s\n", strerror(errno));
            return 1;
        }
    }
    fflush(stdout);
    pid_t child = fork();
    if (child == 0)
        _exit(serve_child(fd, mode));
    close(fd);
    int status = 0;
    waitpid(child, &status, 0);
    if (WIFSIGNALED(status))
        printf("child killed by signal %d\n", WTERMSIG(status));
    else
        printf("child exited %d\n", WEXITSTATUS(status));
    return 0;
}

/* ---- the client ---------------------------------------------------------------------------- */

static void *send_upload(void *argument)
{
    struct upload *upload = argument;
    upload->ok = send_pattern(upload->fd, upload->size, false);
    return NULL;
}

static int fetch(int port, size_t size, const char *token, const char *option)
{
    bool duplex = option != NULL && strcmp(option, "duplex") == 0;
    bool eof = option != NULL && strcmp(option, "eof") == 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        printf("connect: %s\n", strerror(errno));
        return 1;
    }
    char request[256];
    int length = snprintf(request, sizeof(request), "GET %zu %s\n", size, token);
    if (!write_all(fd, request, (size_t)length, false)) {
        printf("request: %s\n", strerror(errno));
        return 1;
    }
    struct upload upload = {.fd = fd, .size = size};
    pthread_t writer;
    if (duplex && pthread_create(&writer, NULL, send_upload, &upload) != 0)
        return 1;
    char head[128];
    size_t token_length = strlen(token);
    size_t got = 0;
    while (got < token_length) {
        ssize_t n = read_some(fd, head + got, token_length - got, false);
        if (n <= 0) {
            printf("no response: %s\n", n == 0 ? "EOF" : strerror(errno));
            return 1;
        }
        got += (size_t)n;
    }
    if (memcmp(head, token, token_length) != 0) {
        printf("wrong token\n");
        return 1;
    }
    if (!receive_pattern(fd, size, false)) {
        printf("response cut short or corrupted\n");
        return 1;
    }
    if (duplex) {
        pthread_join(writer, NULL);
        if (!upload.ok) {
            printf("upload failed: %s\n", strerror(errno));
            return 1;
        }
    }
    if (eof) {
        char after;
        ssize_t n = read(fd, &after, 1);
        if (n != 0) {
            printf("no clean end after the response: %s\n", n > 0 ? "more bytes" : strerror(errno));
            return 1;
        }
    }
    close(fd);
    printf("fetched %zu\n", size);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "serve") == 0)
        return serve(atoi(argv[2]), argv[3]);
    if ((argc == 5 || argc == 6) && strcmp(argv[1], "fetch") == 0)
        return fetch(atoi(argv[2]), (size_t)strtoull(argv[3], NULL, 10), argv[4],
                     argc == 6 ? argv[5] : NULL);
    fprintf(stderr, "usage: sandbox_peer serve PORT MODE | fetch PORT SIZE TOKEN [duplex|eof]\n");
    return 2;
}
