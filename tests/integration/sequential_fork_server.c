/*
 * A privilege-separated server in miniature: one connection used by three processes in turn,
 * the shape of OpenSSH's sshd (the monitor, a pre-authentication child, a post-authentication
 * child), without exec.
 *
 *   sequential_fork_server PORT exit|_exit|sandbox|interleave|between
 *
 * Listens on 127.0.0.1:PORT (prints "listening"), accepts one connection and answers its first
 * line itself ("parent LINE"). Then it forks child 1, which answers each line ("child1 LINE";
 * "bulk N": N bytes of a pattern and a newline; any other line longer than 64 bytes: "got N")
 * until "next", which it answers "child1 done" before it ends with exit(0), or _exit(0) (mode
 * _exit), or exit(0) confined to read and write by a seccomp filter from before its first use of
 * the connection (mode sandbox). The parent waits for it ("child1 exited STATUS" on stdout), then
 * forks child 2, which answers the same way ("child2 ...") until "bye", answered "bye" before it
 * closes the connection and exits; the parent prints "child2 exited STATUS" and ends.
 *
 * Mode between: after child 1, the parent answers one line itself ("parent LINE") before it
 * forks child 2.
 *
 * Mode interleave: after child 1's first answer the parent writes to the connection itself while
 * child 1 is alive and uses it; it prints "parent write: OK" or "parent write: ERROR", then lets
 * child 1 go on, which then serves the whole conversation to "bye".
 *
 * A process that cannot read or write the connection prints "childN read: ERROR" or "childN
 * write: ERROR" and exits 3.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loopback_listener.h"

#define LINE_CAPACITY (256 * 1024)

static char line[LINE_CAPACITY];
static int ready_pipe = -1; /* interleave: child 1 says it has used the connection */
static char buffered[LINE_CAPACITY];
static size_t buffered_length;

/* What went wrong, on stdout (a pipe: write(2) is allowed in the sandbox too). */
static void say(const char *text, int length)
{
    if (write(STDOUT_FILENO, text, (size_t)length) != length)
        _exit(5);
}

static bool write_all(int fd, const char *data, size_t length)
{
    while (length > 0) {
        ssize_t n = write(fd, data, length);
        /* Interrupted calls are retried, as a real server must (and the fault soak injects). */
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            usleep(1000);
            continue;
        }
        if (n <= 0)
            return false;
        data += n;
        length -= (size_t)n;
    }
    return true;
}

/* One line without its newline into line[]; false at EOF or on an error (errno then set). */
static bool read_line(int fd)
{
    for (;;) {
        char *end = memchr(buffered, '\n', buffered_length);
        if (end != NULL) {
            size_t length = (size_t)(end - buffered);
            memcpy(line, buffered, length);
            line[length] = '\0';
            buffered_length -= length + 1;
            memmove(buffered, end + 1, buffered_length);
            return true;
        }
        if (buffered_length == sizeof(buffered)) {
            errno = EMSGSIZE;
            return false;
        }
        ssize_t n = read(fd, buffered + buffered_length, sizeof(buffered) - buffered_length);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            usleep(1000);
            continue;
        }
        if (n == 0)
            errno = 0;
        if (n <= 0)
            return false;
        buffered_length += (size_t)n;
    }
}

/* Allows what the conversation, malloc and exit need; anything else kills the process. */
static void confine(void)
{
    static const int allowed[] = {
        SCMP_SYS(read),         SCMP_SYS(write),    SCMP_SYS(exit),      SCMP_SYS(exit_group),
        SCMP_SYS(brk),          SCMP_SYS(mmap),     SCMP_SYS(munmap),    SCMP_SYS(mremap),
        SCMP_SYS(madvise),      SCMP_SYS(futex),    SCMP_SYS(getrandom), SCMP_SYS(clock_gettime),
        SCMP_SYS(rt_sigreturn), SCMP_SYS(mprotect), SCMP_SYS(getpid),
    };
    scmp_filter_ctx filter = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (filter == NULL)
        _exit(90);
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        seccomp_rule_add(filter, SCMP_ACT_ALLOW, allowed[i], 0);
#if defined(__SANITIZE_ADDRESS__)
    /* The sanitized build's AddressSanitizer runtime takes down its signal stack at exit. */
    seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(sigaltstack), 0);
#endif
    if (seccomp_load(filter) != 0)
        _exit(91);
}

static void reply(int fd, const char *who, const char *text)
{
    char answer[128];
    int length = snprintf(answer, sizeof(answer), "%s %s\n", who, text);
    if (!write_all(fd, answer, (size_t)length)) {
        char complaint[160];
        int n = snprintf(complaint, sizeof(complaint), "%s write: %s\n", who, strerror(errno));
        say(complaint, n);
        _exit(3);
    }
}

static void send_bulk(int fd, const char *who, size_t size)
{
    static char chunk[16384];
    for (size_t i = 0; i < sizeof(chunk); i++)
        chunk[i] = (char)('a' + i % 26);
    for (size_t sent = 0; sent < size;) {
        size_t n = size - sent < sizeof(chunk) ? size - sent : sizeof(chunk);
        if (!write_all(fd, chunk, n))
            reply(fd, who, "bulk failed"); /* exits, saying why */
        sent += n;
    }
    if (!write_all(fd, "\n", 1))
        reply(fd, who, "bulk failed");
}

/* Answers lines until last, which it answers "<who> done" (or "bye"). */
static void serve(int fd, const char *who, const char *last, int resume_pipe)
{
    bool first = true;
    while (read_line(fd)) {
        if (strcmp(line, last) == 0) {
            reply(fd, who, strcmp(last, "bye") == 0 ? "bye" : "done");
            return;
        }
        if (strncmp(line, "bulk ", 5) == 0) {
            send_bulk(fd, who, strtoul(line + 5, NULL, 10));
        } else if (strlen(line) > 64) {
            char count[32];
            snprintf(count, sizeof(count), "got %zu", strlen(line));
            reply(fd, who, count);
        } else {
            reply(fd, who, line);
        }
        if (first && resume_pipe >= 0) {
            /* Interleave: the parent writes now; go on once it has tried. */
            char go = 'r';
            if (write(ready_pipe, &go, 1) != 1 || read(resume_pipe, &go, 1) != 1)
                _exit(4);
        }
        first = false;
    }
    char complaint[160];
    int n = snprintf(complaint, sizeof(complaint), "%s read: %s\n", who,
                     errno != 0 ? strerror(errno) : "end of stream");
    say(complaint, n);
    _exit(3);
}

static int listen_on(int port)
{
    return listen_on_loopback(port, SOCK_STREAM, 4, "sequential_fork_server");
}

static int wait_child(pid_t pid, const char *name)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status))
        printf("%s exited %d\n", name, WEXITSTATUS(status));
    else
        printf("%s killed by signal %d\n", name, WTERMSIG(status));
    fflush(stdout);
    return status;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PORT exit|_exit|sandbox|interleave|between\n", argv[0]);
        return 2;
    }
    const char *mode = argv[2];
    bool interleave = strcmp(mode, "interleave") == 0;
    int listener = listen_on(atoi(argv[1]));
    int fd = accept(listener, NULL, NULL);
    if (fd < 0) {
        perror("accept");
        return 1;
    }
    close(listener);
    if (!read_line(fd)) {
        printf("parent read: %s\n", strerror(errno));
        return 1;
    }
    reply(fd, "parent", line);

    int resume[2] = {-1, -1};
    int ready[2] = {-1, -1};
    if (interleave && (pipe(resume) != 0 || pipe(ready) != 0))
        return 1;
    ready_pipe = ready[1];
    fflush(stdout);
    pid_t child1 = fork();
    if (child1 == 0) {
        if (strcmp(mode, "sandbox") == 0)
            confine();
        serve(fd, "child1", interleave ? "bye" : "next", resume[0]);
        if (strcmp(mode, "_exit") == 0)
            _exit(0);
        exit(0);
    }
    if (interleave) {
        /* Once child 1 has answered once (it uses the connection), write. */
        char note;
        if (read(ready[0], &note, 1) != 1)
            return 1;
        bool written = write_all(fd, "parent interleaves\n", 19);
        printf("parent write: %s\n", written ? "OK" : strerror(errno));
        fflush(stdout);
        if (write(resume[1], "g", 1) != 1)
            return 1;
        wait_child(child1, "child1");
        close(fd);
        return 0;
    }
    wait_child(child1, "child1");
    if (strcmp(mode, "between") == 0) {
        if (!read_line(fd)) {
            printf("parent read: %s\n", strerror(errno));
            return 1;
        }
        reply(fd, "parent", line);
    }
    fflush(stdout);
    pid_t child2 = fork();
    if (child2 == 0) {
        serve(fd, "child2", "bye", -1);
        close(fd);
        exit(0);
    }
    wait_child(child2, "child2");
    close(fd);
    return 0;
}
