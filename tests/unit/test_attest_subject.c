/*
 * Tests for agent/attest_subject.c: who may be attested for whom by a pidfd.
 *
 * The parsers and the verdict are pure and are fed made-up /proc texts, each refusal beside its
 * control (the same status with the one fact changed back), so that a check that ignored the
 * fact could not pass. Then real processes: this test is the caller (the peer of a socketpair
 * end is itself) and forks the subjects: its child, itself, its parent, a grandchild, a zombie,
 * a reaped child, a child under another uid, and a descriptor that is not a pidfd.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pidfd_support.h"

#include "agent/attest_subject.h"

static const char status_text[] = "Name:\tworker\n"
                                  "State:\tS (sleeping)\n"
                                  "Tgid:\t200\n"
                                  "Ngid:\t0\n"
                                  "Pid:\t200\n"
                                  "PPid:\t100\n"
                                  "TracerPid:\t0\n"
                                  "Uid:\t1000\t1000\t1000\t1000\n"
                                  "Gid:\t1000\t1000\t1000\t1000\n";

static struct mt_attest_status child_status(void)
{
    struct mt_attest_status status;
    assert_true(mt_attest_status_parse(status_text, &status));
    return status;
}

static bool refused(const struct mt_attest_status *status, const char *expected)
{
    char text[256];
    struct mt_text reason = mt_text_on(text, sizeof(text));
    bool is_refused = mt_attest_subject_is_refused(100, 1000, 1000, 200, status, &reason);
    if (is_refused && expected != NULL && strstr(text, expected) == NULL)
        fail_msg("refused for \"%s\", expected \"%s\"", text, expected);
    return is_refused;
}

static void test_mt_attest_status_parse_reads_state_parent_and_ids(void **state)
{
    (void)state;
    struct mt_attest_status status = child_status();
    assert_int_equal(status.state, 'S');
    assert_int_equal(status.tgid, 200);
    assert_int_equal(status.ppid, 100);
    assert_int_equal(status.uid[0], 1000);
    assert_int_equal(status.gid[3], 1000);
    /* "TracerPid:" and "Ngid:" must not be taken for "PPid:" and "Gid:". */
    assert_true(mt_attest_status_parse("State:\tR\nTgid:\t5\nTracerPid:\t9\nPPid:\t4\n"
                                       "Uid:\t1 2 3 4\nNgid:\t7\nGid:\t5 6 7 8\n",
                                       &status));
    assert_int_equal(status.ppid, 4);
    assert_int_equal(status.uid[1], 2);
    assert_int_equal(status.gid[0], 5);
}

static void test_mt_attest_status_parse_missing_line_fails(void **state)
{
    (void)state;
    struct mt_attest_status status;
    assert_false(
        mt_attest_status_parse("State:\tS\nTgid:\t5\nUid:\t1 1 1 1\nGid:\t1 1 1 1\n", &status));
    assert_false(mt_attest_status_parse("State:\tS\nTgid:\t5\nPPid:\t4\nUid:\t1 1\n"
                                        "Gid:\t1 1 1 1\n",
                                        &status));
    assert_false(mt_attest_status_parse("", &status));
}

static void test_mt_attest_fdinfo_pid_reads_pid_not_nspid(void **state)
{
    (void)state;
    long pid = 0;
    assert_true(
        mt_attest_fdinfo_pid("pos:\t0\nflags:\t02000002\nPid:\t3598\nNSpid:\t3598\n", &pid));
    assert_int_equal(pid, 3598);
    assert_true(mt_attest_fdinfo_pid("pos:\t0\nPid:\t-1\nNSpid:\t-1\n", &pid));
    assert_int_equal(pid, -1);
    /* A regular file's fdinfo, and one that has only NSpid: not pidfds. */
    assert_false(mt_attest_fdinfo_pid("pos:\t0\nflags:\t02\nmnt_id:\t4\nino:\t9\n", &pid));
    assert_false(mt_attest_fdinfo_pid("pos:\t0\nNSpid:\t12\n", &pid));
}

static void test_mt_attest_subject_is_refused_own_child_same_ids_allowed(void **state)
{
    (void)state;
    struct mt_attest_status status = child_status();
    assert_false(refused(&status, NULL));
}

static void test_mt_attest_subject_is_refused_not_a_child_refused(void **state)
{
    (void)state;
    struct mt_attest_status status = child_status();
    status.ppid = 1;
    assert_true(refused(&status, "not a child of the caller: its parent is pid 1"));
    status.ppid = 200; /* itself as its parent: nonsense, still not the caller */
    assert_true(refused(&status, "not a child"));
}

static void test_mt_attest_subject_is_refused_each_other_id_refused(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++) {
        struct mt_attest_status status = child_status();
        status.uid[i] = 0;
        assert_true(refused(&status, "not as the caller's uid 1000"));
        status = child_status();
        status.gid[i] = 0;
        assert_true(refused(&status, "not as the caller's gid 1000"));
    }
}

static void test_mt_attest_subject_is_refused_zombie_thread_and_hidden_caller_refused(void **state)
{
    (void)state;
    struct mt_attest_status status = child_status();
    status.state = 'Z';
    assert_true(refused(&status, "zombie"));
    status = child_status();
    status.tgid = 150;
    assert_true(refused(&status, "thread of pid 150"));
    status = child_status();
    char text[256];
    struct mt_text reason = mt_text_on(text, sizeof(text));
    assert_true(mt_attest_subject_is_refused(0, 1000, 1000, 200, &status, &reason));
    assert_non_null(strstr(text, "another pid namespace"));
}

/* ---- real processes ---------------------------------------------------------------------- */

static int pair[2];
static struct mt_attest_peer caller;

static int setup(void **state)
{
    (void)state;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
        return -1;
    return mt_result_is_ok(mt_attest_identify(pair[0], &caller)) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    close(pair[0]);
    close(pair[1]);
    return 0;
}

static int pidfd_of(pid_t pid)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    assert_true(pidfd >= 0);
    return pidfd;
}

/* A child that waits for its pipe to close, then exits. */
static pid_t start_child(int *release)
{
    int pipe_fds[2];
    assert_int_equal(pipe(pipe_fds), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        char byte;
        close(pipe_fds[1]);
        while (read(pipe_fds[0], &byte, 1) < 0 && errno == EINTR) {
        }
        _exit(0);
    }
    close(pipe_fds[0]);
    *release = pipe_fds[1];
    return child;
}

static void end_child(pid_t child, int release)
{
    close(release);
    assert_int_equal(waitpid(child, NULL, 0), child);
}

static enum mt_attest_subject_outcome attest(int pidfd, struct mt_attest_peer *subject, char *text,
                                             size_t capacity)
{
    struct mt_text reason = mt_text_on(text, capacity);
    return mt_attest_identify_subject(&caller, pidfd, subject, &reason);
}

static void test_mt_attest_identify_subject_own_child_attested_and_held(void **state)
{
    (void)state;
    REQUIRE_PIDFDS();
    int release = -1;
    pid_t child = start_child(&release);
    int pidfd = pidfd_of(child);
    struct mt_attest_peer subject;
    char text[256];
    assert_int_equal(attest(pidfd, &subject, text, sizeof(text)), MT_ATTEST_SUBJECT_OK);
    assert_int_equal(subject.pid, child);
    assert_int_equal(subject.supervisor_pid, getpid());
    assert_int_equal(subject.uid, getuid());
    assert_true(subject.has_start_time);
    assert_true(subject.has_exe);
    unsigned long long start_time = 0;
    assert_true(mt_attest_start_time(child, &start_time));
    assert_int_equal(subject.start_time, start_time);
    struct mt_text reason = mt_text_on(text, sizeof(text));
    assert_true(mt_attest_subject_still_there(&subject, &reason));

    /* Exited, not yet reaped: a zombie is no longer there, though its pidfd still signals. */
    assert_int_equal(kill(child, SIGKILL), 0);
    siginfo_t info;
    assert_int_equal(waitid(P_PID, (id_t)child, &info, WEXITED | WNOWAIT), 0);
    assert_false(mt_attest_subject_still_there(&subject, &reason));
    assert_non_null(strstr(text, "zombie"));
    assert_int_equal(attest(pidfd, &subject, text, sizeof(text)), MT_ATTEST_SUBJECT_REFUSED);
    assert_non_null(strstr(text, "zombie"));

    /* Reaped: its pid may be anyone's now; the pidfd says so. */
    end_child(child, release);
    assert_int_equal(attest(pidfd, &subject, text, sizeof(text)), MT_ATTEST_SUBJECT_REFUSED);
    assert_non_null(strstr(text, "reaped"));
    close(pidfd);
}

static void test_mt_attest_identify_subject_own_pidfd_is_the_caller(void **state)
{
    (void)state;
    REQUIRE_PIDFDS();
    int pidfd = pidfd_of(getpid());
    struct mt_attest_peer subject;
    char text[256];
    assert_int_equal(attest(pidfd, &subject, text, sizeof(text)), MT_ATTEST_SUBJECT_IS_CALLER);
    close(pidfd);
}

static void test_mt_attest_identify_subject_parent_and_grandchild_refused(void **state)
{
    (void)state;
    REQUIRE_PIDFDS();
    struct mt_attest_peer subject;
    char text[256];
    int pidfd = pidfd_of(getppid());
    assert_int_equal(attest(pidfd, &subject, text, sizeof(text)), MT_ATTEST_SUBJECT_REFUSED);
    assert_non_null(strstr(text, "not a child of the caller"));
    close(pidfd);

    /* A grandchild: its parent is the child, not the caller. */
    int report[2];
    assert_int_equal(pipe(report), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        int release = -1;
        pid_t grandchild = start_child(&release);
        (void)!write(report[1], &grandchild, sizeof(grandchild));
        /* Until the test kills it; the grandchild then reads the end of its pipe and exits. */
        for (;;)
            pause();
    }
    pid_t grandchild = 0;
    assert_int_equal(read(report[0], &grandchild, sizeof(grandchild)), sizeof(grandchild));
    pidfd = pidfd_of(grandchild);
    assert_int_equal(attest(pidfd, &subject, text, sizeof(text)), MT_ATTEST_SUBJECT_REFUSED);
    assert_non_null(strstr(text, "not a child of the caller"));
    close(pidfd);
    kill(child, SIGKILL);
    assert_int_equal(waitpid(child, NULL, 0), child);
    close(report[0]);
    close(report[1]);
}

static void test_mt_attest_identify_subject_not_a_pidfd_refused(void **state)
{
    (void)state;
    int pipe_fds[2];
    assert_int_equal(pipe(pipe_fds), 0);
    struct mt_attest_peer subject;
    char text[256];
    assert_int_equal(attest(pipe_fds[0], &subject, text, sizeof(text)),
                     MT_ATTEST_SUBJECT_NOT_PIDFD);
    assert_int_equal(attest(pair[1], &subject, text, sizeof(text)), MT_ATTEST_SUBJECT_NOT_PIDFD);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
}

static void test_mt_attest_identify_subject_child_of_another_uid_refused(void **state)
{
    (void)state;
    REQUIRE_PIDFDS();
    if (geteuid() != 0) {
        print_message("starting a child under another uid needs root: skipped (the verdict "
                      "itself is tested without)\n");
        skip();
    }
    int pipe_fds[2];
    assert_int_equal(pipe(pipe_fds), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        char byte;
        close(pipe_fds[1]);
        if (setresuid(65534, 65534, 65534) != 0)
            _exit(1);
        (void)!read(pipe_fds[0], &byte, 1);
        _exit(0);
    }
    close(pipe_fds[0]);
    int pidfd = pidfd_of(child);
    struct mt_attest_peer subject;
    char text[256];
    enum mt_attest_subject_outcome outcome = MT_ATTEST_SUBJECT_OK;
    /* Bounded wait for the child's setresuid. */
    for (int i = 0; i < 200; i++) {
        outcome = attest(pidfd, &subject, text, sizeof(text));
        if (outcome == MT_ATTEST_SUBJECT_REFUSED)
            break;
        usleep(10000);
    }
    assert_int_equal(outcome, MT_ATTEST_SUBJECT_REFUSED);
    assert_non_null(strstr(text, "never another user's identity"));
    close(pipe_fds[1]);
    assert_int_equal(waitpid(child, NULL, 0), child);
    close(pidfd);
}

#define REAL(test) cmocka_unit_test_setup_teardown(test, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt_attest_status_parse_reads_state_parent_and_ids),
        cmocka_unit_test(test_mt_attest_status_parse_missing_line_fails),
        cmocka_unit_test(test_mt_attest_fdinfo_pid_reads_pid_not_nspid),
        cmocka_unit_test(test_mt_attest_subject_is_refused_own_child_same_ids_allowed),
        cmocka_unit_test(test_mt_attest_subject_is_refused_not_a_child_refused),
        cmocka_unit_test(test_mt_attest_subject_is_refused_each_other_id_refused),
        cmocka_unit_test(test_mt_attest_subject_is_refused_zombie_thread_and_hidden_caller_refused),
        REAL(test_mt_attest_identify_subject_own_child_attested_and_held),
        REAL(test_mt_attest_identify_subject_own_pidfd_is_the_caller),
        REAL(test_mt_attest_identify_subject_parent_and_grandchild_refused),
        REAL(test_mt_attest_identify_subject_not_a_pidfd_refused),
        REAL(test_mt_attest_identify_subject_child_of_another_uid_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
