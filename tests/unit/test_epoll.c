/*
 * Tests for core/epoll.c across fork: a child shares its parent's epoll instances in the kernel,
 * and must never change a registration it did not make. Its close of an inherited fd (one fd, or
 * a range) leaves the parent's registration in place and the parent's wait still reports the fd;
 * what the child registers itself, or takes over with its own EPOLL_CTL_MOD, it removes when it
 * closes the fd, as the parent does with its own. Each test forks; the child reports by its exit
 * status, and checks the kernel directly: EPOLL_CTL_ADD of an fd answers EEXIST exactly while a
 * registration for it is there.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/epoll.h"

#define DATA 0x5eedf00dU

struct fixture {
    int epfd;
    int registered; /* one end of a socketpair, registered by the "parent" for EPOLLIN */
    int peer;       /* the other end: writing to it makes registered readable */
};

static void setup_fixture(struct fixture *fixture)
{
    int pair[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair), 0);
    fixture->registered = pair[0];
    fixture->peer = pair[1];
    fixture->epfd = epoll_create1(EPOLL_CLOEXEC);
    assert_true(fixture->epfd >= 0);
    mt_epoll_created(fixture->epfd);
    struct epoll_event event = {.events = EPOLLIN, .data.u32 = DATA};
    assert_int_equal(mt_epoll_ctl(fixture->epfd, EPOLL_CTL_ADD, fixture->registered, &event), 0);
}

static void teardown_fixture(struct fixture *fixture)
{
    mt_epoll_forget_fd(fixture->registered);
    close(fixture->registered);
    close(fixture->peer);
    mt_epoll_forget_fd(fixture->epfd);
    close(fixture->epfd);
}

/* The kernel's own answer, past the emulation: is a registration for fd in epfd? */
static bool kernel_has_registration(int epfd, int fd)
{
    struct epoll_event event = {.events = EPOLLIN};
    if (syscall(SYS_epoll_ctl, epfd, EPOLL_CTL_ADD, fd, &event) == 0) {
        (void)syscall(SYS_epoll_ctl, epfd, EPOLL_CTL_DEL, fd, NULL);
        return false;
    }
    return errno == EEXIST;
}

/* Runs child_body in a fork child (after the fork handler) and asserts it exited 0. */
static void in_child(int (*child_body)(struct fixture *), struct fixture *fixture)
{
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        mt_epoll_after_fork_child();
        _exit(child_body(fixture));
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* In the parent: the registered fd, made readable, is reported with the data it was given. */
static void assert_parent_still_notified(struct fixture *fixture)
{
    assert_true(kernel_has_registration(fixture->epfd, fixture->registered));
    assert_int_equal(write(fixture->peer, "x", 1), 1);
    struct epoll_event events[4];
    int count = mt_epoll_wait(fixture->epfd, events, 4, 2000, NULL);
    assert_int_equal(count, 1);
    assert_int_equal(events[0].data.u32, DATA);
    assert_true(events[0].events & EPOLLIN);
}

static int child_closes_one(struct fixture *fixture)
{
    mt_epoll_forget_fd(fixture->registered);
    close(fixture->registered);
    return 0;
}

static void test_mt_epoll_forget_fd_in_fork_child_keeps_the_parent_registration(void **state)
{
    (void)state;
    struct fixture fixture;
    setup_fixture(&fixture);
    in_child(child_closes_one, &fixture);
    assert_parent_still_notified(&fixture);
    teardown_fixture(&fixture);
}

static int child_closes_range(struct fixture *fixture)
{
    /* What close_range(3, ~0U) and closefrom(3) do: the epoll fd itself goes too, last. */
    mt_epoll_forget_range(3, ~0u);
    return 0;
}

static void test_mt_epoll_forget_range_in_fork_child_keeps_the_parent_registrations(void **state)
{
    (void)state;
    struct fixture fixture;
    setup_fixture(&fixture);
    in_child(child_closes_range, &fixture);
    assert_parent_still_notified(&fixture);
    teardown_fixture(&fixture);
}

static int child_closes_epoll_fd_after_the_fd(struct fixture *fixture)
{
    /* dup2 over the registered fd closes it as well (preload/descriptors.c). */
    mt_epoll_forget_fd(fixture->registered);
    if (dup2(fixture->peer, fixture->registered) != fixture->registered)
        return 1;
    mt_epoll_forget_fd(fixture->epfd);
    close(fixture->epfd);
    return 0;
}

static void test_mt_epoll_forget_fd_dup2_in_fork_child_keeps_the_parent_registration(void **state)
{
    (void)state;
    struct fixture fixture;
    setup_fixture(&fixture);
    in_child(child_closes_epoll_fd_after_the_fd, &fixture);
    assert_parent_still_notified(&fixture);
    teardown_fixture(&fixture);
}

static int child_registers_and_closes_its_own(struct fixture *fixture)
{
    int own = dup(fixture->registered); /* the same file: the kernel keeps what is not deleted */
    struct epoll_event event = {.events = EPOLLIN, .data.u32 = 7};
    if (own < 0 || mt_epoll_ctl(fixture->epfd, EPOLL_CTL_ADD, own, &event) != 0)
        return 1;
    if (!kernel_has_registration(fixture->epfd, own))
        return 2;
    mt_epoll_forget_fd(own);
    if (kernel_has_registration(fixture->epfd, own))
        return 3; /* the child's own registration outlived its close */
    close(own);
    return kernel_has_registration(fixture->epfd, fixture->registered) ? 0 : 4;
}

static void test_mt_epoll_forget_fd_in_fork_child_removes_its_own_registration(void **state)
{
    (void)state;
    struct fixture fixture;
    setup_fixture(&fixture);
    in_child(child_registers_and_closes_its_own, &fixture);
    assert_parent_still_notified(&fixture);
    teardown_fixture(&fixture);
}

static int child_modifies_then_closes(struct fixture *fixture)
{
    /* The application changes the shared registration itself: from then on it is the child's. */
    int keep = dup(fixture->registered);
    struct epoll_event event = {.events = EPOLLIN | EPOLLOUT, .data.u32 = 8};
    if (keep < 0 || mt_epoll_ctl(fixture->epfd, EPOLL_CTL_MOD, fixture->registered, &event) != 0)
        return 1;
    mt_epoll_forget_fd(fixture->registered);
    return kernel_has_registration(fixture->epfd, fixture->registered) ? 2 : 0;
}

static void test_mt_epoll_ctl_mod_in_fork_child_makes_the_registration_its_own(void **state)
{
    (void)state;
    struct fixture fixture;
    setup_fixture(&fixture);
    in_child(child_modifies_then_closes, &fixture);
    teardown_fixture(&fixture);
}

static void test_mt_epoll_forget_fd_without_fork_removes_the_registration(void **state)
{
    (void)state;
    struct fixture fixture;
    setup_fixture(&fixture);
    /* A dup keeps the file open: the kernel alone would keep reporting the closed fd. */
    int copy = dup(fixture.registered);
    assert_true(copy >= 0);
    mt_epoll_forget_fd(fixture.registered);
    assert_false(kernel_has_registration(fixture.epfd, fixture.registered));
    close(copy);
    teardown_fixture(&fixture);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt_epoll_forget_fd_in_fork_child_keeps_the_parent_registration),
        cmocka_unit_test(test_mt_epoll_forget_range_in_fork_child_keeps_the_parent_registrations),
        cmocka_unit_test(test_mt_epoll_forget_fd_dup2_in_fork_child_keeps_the_parent_registration),
        cmocka_unit_test(test_mt_epoll_forget_fd_in_fork_child_removes_its_own_registration),
        cmocka_unit_test(test_mt_epoll_ctl_mod_in_fork_child_makes_the_registration_its_own),
        cmocka_unit_test(test_mt_epoll_forget_fd_without_fork_removes_the_registration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
