/*
 * Tests for util/sys.c, the kernel interface: the calls made on the application's behalf go
 * through the libc table installed (raw system calls until one is), libmeshtls's own calls never
 * do, and the system calls behind the preload's optional hooks do what libc's functions do.
 *
 * A fake libc table records which of its functions ran, so that each test states which path a
 * call took: a routing that ignored the table, or used it for the library's own I/O, would fail.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/sys.h"

#define FAKE_RESULT 4242

static unsigned fake_calls;

static int fake_connect(int fd, const struct sockaddr *address, socklen_t length)
{
    (void)fd, (void)address, (void)length;
    fake_calls++;
    return FAKE_RESULT;
}

static int fake_accept(int fd, struct sockaddr *address, socklen_t *length)
{
    (void)fd, (void)address, (void)length;
    fake_calls++;
    return FAKE_RESULT;
}

static int fake_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags)
{
    (void)fd, (void)address, (void)length, (void)flags;
    fake_calls++;
    return FAKE_RESULT;
}

static ssize_t fake_read(int fd, void *buffer, size_t length)
{
    (void)fd, (void)buffer, (void)length;
    fake_calls++;
    return FAKE_RESULT;
}

static ssize_t fake_write(int fd, const void *buffer, size_t length)
{
    (void)fd, (void)buffer, (void)length;
    fake_calls++;
    return FAKE_RESULT;
}

static ssize_t fake_readv(int fd, const struct iovec *vector, int count)
{
    (void)fd, (void)vector, (void)count;
    fake_calls++;
    return FAKE_RESULT;
}

static ssize_t fake_writev(int fd, const struct iovec *vector, int count)
{
    (void)fd, (void)vector, (void)count;
    fake_calls++;
    return FAKE_RESULT;
}

static int fake_shutdown(int fd, int how)
{
    (void)fd, (void)how;
    fake_calls++;
    return FAKE_RESULT;
}

static int fake_close(int fd)
{
    (void)fd;
    fake_calls++;
    return FAKE_RESULT;
}

static int fake_poll(struct pollfd *fds, nfds_t count, int timeout_ms)
{
    (void)fds, (void)count, (void)timeout_ms;
    fake_calls++;
    return FAKE_RESULT;
}

static int fake_epoll_ctl(int epfd, int operation, int fd, struct epoll_event *event)
{
    (void)epfd, (void)operation, (void)fd, (void)event;
    fake_calls++;
    return FAKE_RESULT;
}

static int fake_epoll_pwait(int epfd, struct epoll_event *events, int capacity, int timeout_ms,
                            const sigset_t *mask)
{
    (void)epfd, (void)events, (void)capacity, (void)timeout_ms, (void)mask;
    fake_calls++;
    return FAKE_RESULT;
}

static const struct mt_sys_libc fake_libc = {
    .connect = fake_connect,
    .accept = fake_accept,
    .accept4 = fake_accept4,
    .read = fake_read,
    .write = fake_write,
    .readv = fake_readv,
    .writev = fake_writev,
    .shutdown = fake_shutdown,
    .close = fake_close,
    .poll = fake_poll,
    .epoll_ctl = fake_epoll_ctl,
    .epoll_pwait = fake_epoll_pwait,
};

static int teardown(void **state)
{
    (void)state;
    mt_sys_use_libc(NULL);
    fake_calls = 0;
    return 0;
}

static bool is_open(int fd)
{
    return mt_sys_fcntl(fd, F_GETFD, 0) != -1;
}

static void test_mt_sys_app_read_nothing_installed_reads_the_kernel(void **state)
{
    (void)state;
    int ends[2];
    assert_int_equal(pipe(ends), 0);
    assert_int_equal(mt_sys_app_write(ends[1], "abc", 3), 3);
    char buffer[8] = "";
    assert_int_equal(mt_sys_app_read(ends[0], buffer, sizeof(buffer)), 3);
    assert_memory_equal(buffer, "abc", 3);
    assert_int_equal(mt_sys_app_close(ends[0]), 0);
    assert_false(is_open(ends[0]));
    assert_int_equal(mt_sys_close(ends[1]), 0);
    assert_int_equal(fake_calls, 0);
}

static void test_mt_sys_use_libc_table_installed_serves_every_app_call(void **state)
{
    (void)state;
    mt_sys_use_libc(&fake_libc);
    struct sockaddr_storage address;
    socklen_t length = sizeof(address);
    char buffer[4];
    struct pollfd entry = {.fd = -1};
    struct epoll_event event;
    assert_int_equal(mt_sys_app_connect(-1, (struct sockaddr *)&address, length), FAKE_RESULT);
    assert_int_equal(mt_sys_app_accept(-1, (struct sockaddr *)&address, &length), FAKE_RESULT);
    assert_int_equal(mt_sys_app_accept4(-1, (struct sockaddr *)&address, &length, 0), FAKE_RESULT);
    assert_int_equal(mt_sys_app_read(-1, buffer, sizeof(buffer)), FAKE_RESULT);
    assert_int_equal(mt_sys_app_write(-1, buffer, sizeof(buffer)), FAKE_RESULT);
    struct iovec vector = {buffer, sizeof(buffer)};
    assert_int_equal(mt_sys_app_readv(-1, &vector, 1), FAKE_RESULT);
    assert_int_equal(mt_sys_app_writev(-1, &vector, 1), FAKE_RESULT);
    assert_int_equal(mt_sys_app_shutdown(-1, SHUT_RDWR), FAKE_RESULT);
    assert_int_equal(mt_sys_app_close(-1), FAKE_RESULT);
    assert_int_equal(mt_sys_app_poll(&entry, 1, 0), FAKE_RESULT);
    assert_int_equal(mt_sys_app_epoll_ctl(-1, EPOLL_CTL_DEL, -1, NULL), FAKE_RESULT);
    assert_int_equal(mt_sys_app_epoll_pwait(-1, &event, 1, 0, NULL), FAKE_RESULT);
    assert_int_equal(fake_calls, 12);
}

static void test_mt_sys_use_libc_null_restores_the_system_calls(void **state)
{
    (void)state;
    mt_sys_use_libc(&fake_libc);
    mt_sys_use_libc(NULL);
    int ends[2];
    assert_int_equal(pipe(ends), 0);
    assert_int_equal(mt_sys_app_close(ends[0]), 0);
    assert_int_equal(mt_sys_app_close(ends[1]), 0);
    assert_false(is_open(ends[0]));
    assert_int_equal(fake_calls, 0);
}

/* libmeshtls's own I/O stays raw whatever libc is installed: these calls reach the kernel. */
static void test_mt_sys_own_io_table_installed_still_reaches_the_kernel(void **state)
{
    (void)state;
    mt_sys_use_libc(&fake_libc);
    int ends[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, ends), 0);
    assert_int_equal(mt_sys_write(ends[0], "x", 1), 1);
    assert_int_equal(mt_sys_send(ends[0], "y", 1, 0), 1);
    char buffer[2] = "";
    assert_int_equal(mt_sys_read(ends[1], buffer, 1), 1);
    assert_int_equal(mt_sys_recv(ends[1], buffer + 1, 1, 0), 1);
    assert_memory_equal(buffer, "xy", 2);
    struct pollfd entry = {.fd = ends[0], .events = POLLOUT};
    assert_int_equal(mt_sys_poll(&entry, 1, 0), 1);
    int copy = mt_sys_dup(ends[0]);
    assert_true(copy >= 0);
    assert_int_equal(mt_sys_close(copy), 0);
    assert_int_equal(mt_sys_close(ends[0]), 0);
    assert_int_equal(mt_sys_close(ends[1]), 0);
    assert_false(is_open(ends[0]));
    assert_false(is_open(ends[1]));
    assert_int_equal(fake_calls, 0);
}

/* Descriptors at fixed numbers far above what the test runner holds. */
static void open_at(const int *numbers, size_t count)
{
    int ends[2];
    assert_int_equal(pipe(ends), 0);
    for (size_t i = 0; i < count; i++)
        assert_int_equal(dup2(ends[0], numbers[i]), numbers[i]);
    mt_sys_close(ends[0]);
    mt_sys_close(ends[1]);
}

static void test_mt_sys_close_range_closes_the_range_only(void **state)
{
    (void)state;
    const int numbers[] = {800, 801, 802, 803};
    open_at(numbers, 4);
    assert_int_equal(mt_sys_close_range(801, 802, 0), 0);
    assert_true(is_open(800));
    assert_false(is_open(801));
    assert_false(is_open(802));
    assert_true(is_open(803));
    mt_sys_close(800);
    mt_sys_close(803);
}

static void test_mt_sys_closefrom_closes_from_lowest_up(void **state)
{
    (void)state;
    const int numbers[] = {899, 900, 901, 950};
    open_at(numbers, 4);
    mt_sys_closefrom(900);
    assert_true(is_open(899));
    assert_false(is_open(900));
    assert_false(is_open(901));
    assert_false(is_open(950));
    mt_sys_close(899);
}

static void test_mt_sys_epoll_pwait2_reports_readiness_as_the_kernel(void **state)
{
    (void)state;
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    int ends[2];
    assert_true(epfd >= 0);
    assert_int_equal(pipe(ends), 0);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = ends[0]};
    assert_int_equal(mt_sys_epoll_ctl(epfd, EPOLL_CTL_ADD, ends[0], &event), 0);
    struct timespec zero = {0, 0};
    struct epoll_event ready;
    int result = mt_sys_epoll_pwait2(epfd, &ready, 1, &zero, NULL);
    if (result == -1 && errno == ENOSYS)
        skip(); /* a kernel before 5.11 */
    assert_int_equal(result, 0);
    assert_int_equal(mt_sys_write(ends[1], "x", 1), 1);
    assert_int_equal(mt_sys_epoll_pwait2(epfd, &ready, 1, &zero, NULL), 1);
    assert_int_equal(ready.data.fd, ends[0]);
    mt_sys_close(ends[0]);
    mt_sys_close(ends[1]);
    mt_sys_close(epfd);
}

static void test_mt_sys_getpid_in_a_child_is_the_child(void **state)
{
    (void)state;
    pid_t parent = mt_sys_getpid();
    assert_int_equal(parent, getpid());
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
        _exit(mt_sys_getpid() != parent && mt_sys_getpid() == getpid() ? 0 : 1);
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_mt_sys_remaining_ms_deadlines_count_down_to_zero(void **state)
{
    (void)state;
    assert_int_equal(mt_sys_remaining_ms(-1), -1);
    long long now = mt_sys_now_ms();
    assert_int_equal(mt_sys_remaining_ms(now - 5), 0);
    int left = mt_sys_remaining_ms(now + 60000);
    assert_true(left > 59000 && left <= 60000);
    assert_true(mt_sys_now_us() / 1000 >= now);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_mt_sys_app_read_nothing_installed_reads_the_kernel,
                                  teardown),
        cmocka_unit_test_teardown(test_mt_sys_use_libc_table_installed_serves_every_app_call,
                                  teardown),
        cmocka_unit_test_teardown(test_mt_sys_use_libc_null_restores_the_system_calls, teardown),
        cmocka_unit_test_teardown(test_mt_sys_own_io_table_installed_still_reaches_the_kernel,
                                  teardown),
        cmocka_unit_test(test_mt_sys_close_range_closes_the_range_only),
        cmocka_unit_test(test_mt_sys_closefrom_closes_from_lowest_up),
        cmocka_unit_test(test_mt_sys_epoll_pwait2_reports_readiness_as_the_kernel),
        cmocka_unit_test(test_mt_sys_getpid_in_a_child_is_the_child),
        cmocka_unit_test(test_mt_sys_remaining_ms_deadlines_count_down_to_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
