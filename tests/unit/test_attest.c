/*
 * Tests for agent/attest.c on this very process: the peer of one end of a socketpair is the
 * test itself, so what attestation reports can be checked against what the kernel says directly.
 * The executable must be reported as a file (device and inode of the file being run), its name
 * only as a name, and its SHA-256 only when asked for.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/attest.h"

static int pair[2];

/*
 * Attestation confirms the caller alive with pidfd_send_signal; where that system call is missing
 * (valgrind 3.19 does not know it) no executable can be tied to a caller, by design, and the
 * tests that need one are skipped with a message rather than passed.
 */
static bool pidfds_work(void)
{
    int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (pidfd < 0)
        return false;
    bool works = syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0;
    close(pidfd);
    return works;
}

#define REQUIRE_PIDFDS()                                                                           \
    do {                                                                                           \
        if (!pidfds_work()) {                                                                      \
            print_message("pidfd_open/pidfd_send_signal unavailable here: skipped\n");             \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static int setup(void **state)
{
    (void)state;
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair);
}

static int teardown(void **state)
{
    (void)state;
    close(pair[0]);
    close(pair[1]);
    return 0;
}

static void test_attest_identify_self_reports_the_file_being_run(void **state)
{
    (void)state;
    REQUIRE_PIDFDS();
    struct mt_attest_peer peer;
    assert_true(mt_result_is_ok(mt_attest_identify(pair[0], false, &peer)));
    assert_int_equal(peer.pid, getpid());
    assert_int_equal(peer.uid, geteuid());
    assert_true(peer.has_exe);
    struct stat running;
    assert_int_equal(stat("/proc/self/exe", &running), 0);
    assert_int_equal(peer.exe_device, running.st_dev);
    assert_int_equal(peer.exe_inode, running.st_ino);
    /* The name is the one this namespace gives the file: it names the same file here. */
    struct stat named;
    assert_int_equal(stat(peer.exe, &named), 0);
    assert_int_equal(named.st_ino, running.st_ino);
    assert_false(peer.other_mount_namespace);
    assert_false(peer.has_exe_sha256);
}

static void test_attest_identify_sha256_only_when_asked_and_stable(void **state)
{
    (void)state;
    REQUIRE_PIDFDS();
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    uint8_t expected[MT_DIGEST_SHA256_SIZE];
    assert_true(mt_result_is_ok(mt_digest_sha256_fd(fd, MT_ATTEST_SHA256_MAX_BYTES, expected)));
    close(fd);
    struct mt_attest_peer peer;
    assert_true(mt_result_is_ok(mt_attest_identify(pair[0], true, &peer)));
    assert_true(peer.has_exe_sha256);
    assert_memory_equal(peer.exe_sha256, expected, sizeof(expected));
    /* The second time comes from the cache (same device, inode, size, mtime, ctime). */
    struct mt_attest_peer again;
    assert_true(mt_result_is_ok(mt_attest_identify(pair[1], true, &again)));
    assert_true(again.has_exe_sha256);
    assert_memory_equal(again.exe_sha256, expected, sizeof(expected));
}

static void test_attest_identify_not_a_socket_fails(void **state)
{
    (void)state;
    struct mt_attest_peer peer;
    assert_int_equal(mt_attest_identify(-1, false, &peer).error, MT_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_attest_identify_self_reports_the_file_being_run, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_attest_identify_sha256_only_when_asked_and_stable,
                                        setup, teardown),
        cmocka_unit_test(test_attest_identify_not_a_socket_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
