/*
 * The supervisor's parts that need no agent: the filter (what the kernel does with the
 * program's calls once the supervisor is gone), the program's exit status, the table of
 * addresses getsockname/getpeername answer, and the relay's back-pressure and half-close.
 * tests/integration/test_supervisor_*.py run real programs meshed through it.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "supervisor/internal.h"
#include "supervisor/supervisor.h"

/* Valgrind 3.19 (Debian 12) emulates neither seccomp(2) nor pidfd_open(2) ("unhandled amd64-linux
 * syscall"): the tests that need the kernel's supervision skip under memcheck, and run in the
 * plain and sanitized builds. */
static bool is_under_valgrind(void)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    assert_non_null(maps);
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof(line), maps) != NULL)
        found = strstr(line, "vgpreload") != NULL;
    fclose(maps);
    return found;
}

/* Runs check in a child under the filter with its listener closed (the supervisor gone);
 * returns the child's exit status: 0 when every expectation held, else the failed step. */
static int under_filter_without_supervisor(int (*check)(void))
{
    pid_t child = fork();
    if (child == 0) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
            _exit(100);
        int listener = mt_supervisor_install_filter();
        if (listener < 0)
            _exit(101);
        close(listener);
        _exit(check());
    }
    int status = -1;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static int expect_failure(long result, int error)
{
    return result == -1 && errno == error;
}

static int socket_calls_fail(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(9)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!expect_failure(connect(fd, (struct sockaddr *)&address, sizeof(address)), ENOSYS))
        return 1;
    if (!expect_failure(listen(fd, 1), ENOSYS))
        return 2;
    socklen_t length = sizeof(address);
    if (!expect_failure(getsockname(fd, (struct sockaddr *)&address, &length), ENOSYS))
        return 3;
    if (!expect_failure(accept4(fd, NULL, NULL, 0), ENOSYS))
        return 6;
    if (!expect_failure(
            sendto(fd, "x", 1, MSG_FASTOPEN, (struct sockaddr *)&address, sizeof(address)),
            EOPNOTSUPP))
        return 4;
    int pair[2];
    /* What the filter leaves alone keeps working. */
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0 || send(pair[0], "x", 1, 0) != 1)
        return 5;
    /* Nor, with the supervisor gone, a listener of the program's own that could let calls run. */
    if (!expect_failure(mt_supervisor_install_filter(), EBUSY))
        return 7;
    return 0;
}

static void test_filter_without_supervisor_fails_socket_calls_with_enosys(void **state)
{
    (void)state;
    if (is_under_valgrind())
        skip();
    assert_int_equal(under_filter_without_supervisor(socket_calls_fail), 0);
}

static void note_signal(int number)
{
    (void)number;
}

/* A child under the filter whose connect waits for us: listener, the call, and the child. */
static pid_t child_waiting_in_connect(int *listener, struct mt_supervisor *supervisor,
                                      struct mt_supervisor_call *call, struct sockaddr_in *address)
{
    int channel[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, channel), 0);
    pid_t child = fork();
    if (child == 0) {
        close(channel[0]);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
            _exit(100);
        int fd = mt_supervisor_install_filter();
        char control[CMSG_SPACE(sizeof(int))] = {0};
        char byte = 'l';
        struct iovec data = {.iov_base = &byte, .iov_len = 1};
        struct msghdr message = {.msg_iov = &data,
                                 .msg_iovlen = 1,
                                 .msg_control = control,
                                 .msg_controllen = sizeof(control)};
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(header), &fd, sizeof(int));
        if (fd < 0 || sendmsg(channel[1], &message, 0) != 1)
            _exit(101);
        close(fd);
        /* No SA_RESTART: SIGUSR1 ends the waiting connect (EINTR) and the child lives on. */
        struct sigaction interrupting = {.sa_handler = note_signal};
        sigaction(SIGUSR1, &interrupting, NULL);
        int socket_fd = socket(AF_INET, SOCK_STREAM, 0);
        int result = connect(socket_fd, (struct sockaddr *)address, sizeof(*address));
        if (result == 0 || errno != EINTR)
            _exit(102);
        sleep(10);
        _exit(0);
    }
    close(channel[1]);
    char control[CMSG_SPACE(sizeof(int))];
    char byte;
    struct iovec data = {.iov_base = &byte, .iov_len = 1};
    struct msghdr message = {.msg_iov = &data,
                             .msg_iovlen = 1,
                             .msg_control = control,
                             .msg_controllen = sizeof(control)};
    assert_int_equal(recvmsg(channel[0], &message, 0), 1);
    memcpy(listener, CMSG_DATA(CMSG_FIRSTHDR(&message)), sizeof(int));
    close(channel[0]);
    supervisor->listener = *listener;
    struct seccomp_notif request;
    memset(&request, 0, sizeof(request));
    assert_int_equal(ioctl(*listener, SECCOMP_IOCTL_NOTIF_RECV, &request), 0);
    *call = (struct mt_supervisor_call){.supervisor = supervisor,
                                        .id = request.id,
                                        .pid = (pid_t)request.pid,
                                        .number = request.data.nr};
    memcpy(call->args, request.data.args, sizeof(call->args));
    return child;
}

static void test_copy_in_reads_the_arguments_then_refuses_once_the_call_ended(void **state)
{
    (void)state;
    if (is_under_valgrind())
        skip();
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(4242)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct mt_supervisor supervisor = {.listener = -1};
    struct mt_supervisor_call call;
    int listener;
    pid_t child = child_waiting_in_connect(&listener, &supervisor, &call, &address);
    assert_int_equal(call.number, __NR_connect);
    struct sockaddr_in copied;
    assert_int_equal(mt_supervisor_copy_in(&call, call.args[1], &copied, sizeof(copied)), 0);
    assert_memory_equal(&copied, &address, sizeof(address));
    /* A signal ended the call; the thread lives on, its memory and descriptors still there:
     * only the call's id says that nothing may be read or taken for it any more. */
    kill(child, SIGUSR1);
    for (int i = 0; i < 200 && mt_supervisor_call_is_valid(&call); i++)
        usleep(10 * 1000);
    assert_false(mt_supervisor_call_is_valid(&call));
    assert_int_equal(mt_supervisor_copy_in(&call, call.args[1], &copied, sizeof(copied)), -ESRCH);
    assert_int_equal(mt_supervisor_take_fd(&call, (int)call.args[0]), -ESRCH);
    kill(child, SIGKILL);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    close(listener);
}

static void test_filter_program_cannot_install_a_listener_of_its_own(void **state)
{
    (void)state;
    if (is_under_valgrind())
        skip();
    /* A second listener would get the calls first (the newest filter wins a tie) and could let
     * them run; the kernel allows one listener per task while ours lives. */
    pid_t child = fork();
    if (child == 0) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || mt_supervisor_install_filter() < 0)
            _exit(100);
        _exit(mt_supervisor_install_filter() < 0 && errno == EBUSY ? 0 : 1);
    }
    int status = -1;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static int supervise(const char *command)
{
    if (is_under_valgrind())
        skip();
    static struct mt_config config;
    mt_config_set_defaults(&config);
    char *program[] = {"/bin/sh", "-c", (char *)command, NULL};
    return mt_supervise(program, &config);
}

static void test_supervise_exit_status_is_the_programs(void **state)
{
    (void)state;
    assert_int_equal(supervise("exit 3"), 3);
    assert_int_equal(supervise("exit 0"), 0);
}

static void test_supervise_program_killed_by_signal_gives_128_plus_signal(void **state)
{
    (void)state;
    assert_int_equal(supervise("kill -9 $$"), 128 + 9);
}

static void *send_term_later(void *argument)
{
    (void)argument;
    usleep(500 * 1000); /* the program runs and mt_supervise's handler is in place by then */
    kill(getpid(), SIGTERM);
    return NULL;
}

static void test_supervise_passes_term_sent_to_it_to_the_program(void **state)
{
    (void)state;
    if (is_under_valgrind())
        skip();
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, send_term_later, NULL), 0);
    /* Without the handler the test itself would die of SIGTERM; with it the program's trap
     * decides the status. */
    assert_int_equal(supervise("trap 'exit 7' TERM; i=0; while [ $i -lt 100 ]; do sleep 0.1; "
                               "i=$((i+1)); done; exit 1"),
                     7);
    assert_int_equal(pthread_join(thread, NULL), 0);
}

static void test_supervise_missing_program_gives_127(void **state)
{
    (void)state;
    if (is_under_valgrind())
        skip();
    static struct mt_config config;
    mt_config_set_defaults(&config);
    char *program[] = {"/nonexistent/program", NULL};
    assert_int_equal(mt_supervise(program, &config), 127);
}

/* A 32-bit i386 ELF header: enough for the check, never run. */
static void write_i386_program(const char *path)
{
    unsigned char header[52] = {0x7f, 'E', 'L', 'F', 1 /* ELFCLASS32 */, 1, 1};
    header[16] = 2;  /* ET_EXEC */
    header[18] = 3;  /* EM_386 */
    header[20] = 1;  /* EV_CURRENT */
    header[40] = 52; /* e_ehsize */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, header, sizeof(header)), (ssize_t)sizeof(header));
    close(fd);
}

static void test_supervise_refuses_a_32_bit_program_before_it_starts(void **state)
{
    (void)state;
    char path[] = "/tmp/meshtls-test-i386-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_i386_program(path);
    static struct mt_config config;
    mt_config_set_defaults(&config);
    char *program[] = {path, NULL};
    /* Started, it would fail with ENOSYS on its first system call (this one, a header only,
     * would fail exec with 126 too): the reason on stderr tells a refusal. */
    char said_path[] = "/tmp/meshtls-test-said-XXXXXX";
    int said = mkstemp(said_path);
    assert_true(said >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(said, STDERR_FILENO);
    int status = mt_supervise(program, &config);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    char text[512] = "";
    assert_true(pread(said, text, sizeof(text) - 1, 0) > 0);
    close(said);
    unlink(said_path);
    unlink(path);
    assert_int_equal(status, 126);
    assert_non_null(strstr(text, "it is a 32-bit x86 program"));
}

static void test_remembered_address_is_answered_by_inode_until_forgotten(void **state)
{
    (void)state;
    struct sockaddr_storage address;
    memset(&address, 0, sizeof(address));
    address.ss_family = AF_INET;
    mt_supervisor_remember(4242, MT_SUPERVISOR_PEER, &address, sizeof(struct sockaddr_in));
    assert_true(mt_supervisor_is_remembered(4242));
    assert_false(mt_supervisor_is_remembered(4243));
    mt_supervisor_forget(4242);
    assert_false(mt_supervisor_is_remembered(4242));
}

struct relay_ends {
    int mesh, local;
};

static void *run_relay(void *argument)
{
    struct relay_ends *ends = argument;
    mt_supervisor_relay(ends->mesh, ends->local, "test relay");
    return NULL;
}

/* Writes into fd, non-blocking, until it would block; returns the bytes written. */
static size_t write_until_full(int fd, unsigned char seed)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    unsigned char chunk[4096];
    size_t total = 0;
    /* 8 MiB at most: far beyond what back-pressure lets through. */
    for (int round = 0; round < 2048; round++) {
        for (size_t i = 0; i < sizeof(chunk); i++)
            chunk[i] = (unsigned char)(seed + total + i);
        ssize_t put = write(fd, chunk, sizeof(chunk));
        if (put <= 0)
            break;
        total += (size_t)put;
        if (round % 64 == 63)
            usleep(1000); /* the relay moves what it can meanwhile */
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return total;
}

static void test_relay_stops_reading_a_peer_whose_reader_waits(void **state)
{
    (void)state;
    int mesh[2], local[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, mesh), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, local), 0);
    struct relay_ends ends = {.mesh = mesh[0], .local = local[0]};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, run_relay, &ends), 0);
    /* Nobody reads the program's end: the writer must come to a stop, the relay holding no
     * more than its buffer beyond what the kernel's two socket buffers take. */
    size_t written = write_until_full(mesh[1], 7);
    assert_true(written > 0);
    assert_true(written < 4u * 1024 * 1024);
    /* Everything arrives, in order, and the end of stream after it. */
    size_t received = 0;
    unsigned char byte[4096];
    shutdown(mesh[1], SHUT_WR);
    for (;;) {
        ssize_t got = read(local[1], byte, sizeof(byte));
        assert_true(got >= 0);
        if (got == 0)
            break;
        for (ssize_t i = 0; i < got; i++)
            assert_int_equal(byte[i], (unsigned char)(7 + received + (size_t)i));
        received += (size_t)got;
    }
    assert_int_equal(received, written);
    /* The other direction still works after the half-close, then ends the relay. */
    assert_int_equal(write(local[1], "reply", 5), 5);
    shutdown(local[1], SHUT_WR);
    char reply[16];
    assert_int_equal(read(mesh[1], reply, sizeof(reply)), 5);
    assert_memory_equal(reply, "reply", 5);
    assert_int_equal(read(mesh[1], reply, sizeof(reply)), 0);
    assert_int_equal(pthread_join(thread, NULL), 0);
    close(mesh[1]);
    close(local[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_without_supervisor_fails_socket_calls_with_enosys),
        cmocka_unit_test(test_filter_program_cannot_install_a_listener_of_its_own),
        cmocka_unit_test(test_copy_in_reads_the_arguments_then_refuses_once_the_call_ended),
        cmocka_unit_test(test_supervise_exit_status_is_the_programs),
        cmocka_unit_test(test_supervise_program_killed_by_signal_gives_128_plus_signal),
        cmocka_unit_test(test_supervise_passes_term_sent_to_it_to_the_program),
        cmocka_unit_test(test_supervise_missing_program_gives_127),
        cmocka_unit_test(test_supervise_refuses_a_32_bit_program_before_it_starts),
        cmocka_unit_test(test_remembered_address_is_answered_by_inode_until_forgotten),
        cmocka_unit_test(test_relay_stops_reading_a_peer_whose_reader_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
