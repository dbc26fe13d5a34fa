/*
 * Tests for agent/attest.c on this very process: the peer of one end of a socketpair is the
 * test itself, so what attestation reports can be checked against what the kernel says directly.
 * The executable must be reported as a file (device and inode of the file being run), its name
 * only as a name, its SHA-256 only when asked for, and the start time of the very process.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pidfd_support.h"

#include "agent/attest.h"

static int pair[2];

/* The test binary is linked with --wrap=getsockopt: while set, SO_PEERPIDFD is unknown. */
static bool without_peerpidfd;
static unsigned peerpidfd_refused;

int __real_getsockopt(int fd, int level, int name, void *value, socklen_t *length);
int __wrap_getsockopt(int fd, int level, int name, void *value, socklen_t *length);

int __wrap_getsockopt(int fd, int level, int name, void *value, socklen_t *length)
{
    /* SO_PEERPIDFD: 77 on x86-64 and arm64 (attest.c). */
    if (without_peerpidfd && level == SOL_SOCKET && name == 77) {
        peerpidfd_refused++;
        errno = ENOPROTOOPT;
        return -1;
    }
    return __real_getsockopt(fd, level, name, value, length);
}

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
    assert_true(mt_result_is_ok(mt_attest_identify(pair[0], &peer)));
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

static void test_attest_exe_sha256_only_when_asked_and_stable(void **state)
{
    (void)state;
    REQUIRE_PIDFDS();
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    uint8_t expected[MT_DIGEST_SHA256_SIZE];
    assert_true(
        mt_result_is_ok(mt_digest_sha256_fd(fd, MT_ATTEST_SHA256_MAX_BYTES, expected, NULL)));
    close(fd);
    struct mt_attest_peer peer;
    assert_true(mt_result_is_ok(mt_attest_identify(pair[0], &peer)));
    assert_false(peer.has_exe_sha256);
    assert_int_equal(mt_attest_exe_sha256(pair[0], 1000, &peer), MT_ATTEST_HASH_COMPUTED);
    assert_true(peer.has_exe_sha256);
    assert_memory_equal(peer.exe_sha256, expected, sizeof(expected));
    /* Settled once per peer: asking again does no work. */
    assert_int_equal(mt_attest_exe_sha256(pair[0], 1001, &peer), MT_ATTEST_HASH_ALREADY);
    /* Another connection of the same program comes from the cache (same device, inode, size,
     * mtime, ctime), whatever the budget. */
    struct mt_attest_peer again;
    assert_true(mt_result_is_ok(mt_attest_identify(pair[1], &again)));
    assert_int_equal(mt_attest_exe_sha256(pair[1], 1002, &again), MT_ATTEST_HASH_CACHED);
    assert_true(again.has_exe_sha256);
    assert_memory_equal(again.exe_sha256, expected, sizeof(expected));
}

/* The start time is this process's, as /proc/self/stat gives it (what names its metrics file). */
static void test_attest_identify_records_the_callers_start_time(void **state)
{
    (void)state;
    REQUIRE_PIDFDS();
    struct mt_attest_peer peer;
    assert_true(mt_result_is_ok(mt_attest_identify(pair[0], &peer)));
    unsigned long long expected = 0;
    assert_true(mt_attest_start_time(getpid(), &expected));
    assert_true(expected > 0);
    assert_true(peer.has_start_time);
    assert_true(peer.start_time == expected);
}

/* A caller whose executable is unknown (another pid namespace) is never hashed. */
static void test_attest_exe_sha256_without_executable_fails(void **state)
{
    (void)state;
    struct mt_attest_peer peer = {.pid = 0, .uid = 65534, .has_exe = false};
    assert_int_equal(mt_attest_exe_sha256(pair[0], 1000, &peer), MT_ATTEST_HASH_FAILED);
    assert_false(peer.has_exe_sha256);
    assert_non_null(peer.exe_sha256_problem);
}

/*
 * Out of file descriptors, the agent can neither hold the caller nor open its executable: that
 * says nothing about the file, so the outcome is temporary (the rule stays undecided, the caller
 * is told "agent busy") and not a failure a later rule or the default identity could follow.
 * In a child: the limit would break the rest of the run.
 */
static void test_attest_exe_sha256_out_of_descriptors_is_temporary(void **state)
{
    (void)state;
    REQUIRE_PIDFDS();
    for (int extra = 0; extra < 3; extra++) {
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
            struct mt_attest_peer peer;
            if (!mt_result_is_ok(mt_attest_identify(pair[0], &peer)) || !peer.has_exe)
                _exit(3);
            int lowest = dup(0);
            if (lowest < 0)
                _exit(4);
            close(lowest);
            /* Descriptors from lowest + extra on cannot be had. */
            struct rlimit limit = {.rlim_cur = (rlim_t)(lowest + extra),
                                   .rlim_max = (rlim_t)(lowest + extra)};
            if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
                _exit(5);
            enum mt_attest_hash_outcome outcome = mt_attest_exe_sha256(pair[0], 1000, &peer);
            /* extra 2 with pidfds: the pidfd and one more fit, which may be enough to hash. */
            if (outcome == MT_ATTEST_HASH_COMPUTED || outcome == MT_ATTEST_HASH_CACHED)
                _exit(extra == 2 && peer.has_exe_sha256 ? 0 : 6);
            if (outcome != MT_ATTEST_HASH_TEMPORARY || !peer.exe_sha256_later ||
                peer.has_exe_sha256 || peer.exe_sha256_problem == NULL)
                _exit(7);
            _exit(0);
        }
        int status = 0;
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
}

/* FUSE (statfs f_type FUSE_SUPER_MAGIC, mountinfo types fuse, fuse.*, fuseblk) is never read. */
static void test_attest_fs_fuse_is_unread(void **state)
{
    (void)state;
    assert_true(mt_attest_fs_magic_is_unread(0x65735546));
    assert_false(mt_attest_fs_magic_is_unread(0xEF53));     /* ext4 */
    assert_false(mt_attest_fs_magic_is_unread(0x01021994)); /* tmpfs */
    assert_false(mt_attest_fs_magic_is_unread(0x794c7630)); /* overlay */
    assert_false(mt_attest_fs_magic_is_unread(0x65735543)); /* fusectl */
    assert_true(mt_attest_fs_name_is_unread("fuse"));
    assert_true(mt_attest_fs_name_is_unread("fuseblk"));
    assert_true(mt_attest_fs_name_is_unread("fuse.sshfs"));
    assert_false(mt_attest_fs_name_is_unread("fusectl"));
    assert_false(mt_attest_fs_name_is_unread("ext4"));
    assert_false(mt_attest_fs_name_is_unread("overlay"));
    assert_false(mt_attest_fs_name_is_unread(NULL));
}

/* An executable attestation did not name (an execve since) is not hashed, for good. */
static void test_attest_exe_sha256_other_file_fails(void **state)
{
    (void)state;
    REQUIRE_PIDFDS();
    struct mt_attest_peer peer;
    assert_true(mt_result_is_ok(mt_attest_identify(pair[0], &peer)));
    peer.exe_inode ^= 1;
    assert_int_equal(mt_attest_exe_sha256(pair[0], 1000, &peer), MT_ATTEST_HASH_FAILED);
    assert_false(peer.has_exe_sha256);
    assert_false(peer.exe_sha256_later);
}

/*
 * Before Linux 6.5 the caller is tied by its start time, read twice, and its effective uid in
 * /proc/<pid>/status. A non-dumpable process's /proc/<pid> files belong to root, whoever runs it
 * (on kernels of that age its directory too): an owner check would refuse every such caller.
 */
static void test_attest_identify_without_pidfds_non_dumpable_caller_has_start_time(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        print_message("needs root to run a caller as uid 65534: skipped\n");
        skip();
    }
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(listener >= 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    int name_length = snprintf(address.sun_path + 1, sizeof(address.sun_path) - 1,
                               "meshtls-test-attest-%ld", (long)getpid());
    socklen_t address_length =
        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)name_length);
    assert_int_equal(bind(listener, (struct sockaddr *)&address, address_length), 0);
    assert_int_equal(listen(listener, 1), 0);
    int release[2];
    assert_int_equal(pipe(release), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        char byte;
        close(release[1]);
        alarm(30);
        int caller = socket(AF_UNIX, SOCK_STREAM, 0);
        if (setgid(65534) != 0 || setuid(65534) != 0 || prctl(PR_SET_DUMPABLE, 0) != 0 ||
            connect(caller, (struct sockaddr *)&address, address_length) != 0)
            _exit(1);
        _exit(read(release[0], &byte, 1) == 1 ? 0 : 1);
    }
    close(release[0]);
    int fd = accept(listener, NULL, NULL);
    without_peerpidfd = true;
    struct mt_attest_peer peer;
    mt_result result = mt_attest_identify(fd, &peer);
    without_peerpidfd = false;
    unsigned long long expected = 0;
    bool has_expected = mt_attest_start_time(child, &expected);
    assert_int_equal(write(release[1], "x", 1), 1);
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    close(fd);
    close(listener);
    close(release[1]);

    assert_true(mt_result_is_ok(result));
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(peer.pid, child);
    assert_int_equal(peer.uid, 65534);
    assert_true(peerpidfd_refused > 0);
    assert_true(has_expected);
    assert_true(peer.has_start_time);
    assert_true(peer.start_time == expected);
}

static void test_attest_identify_not_a_socket_fails(void **state)
{
    (void)state;
    struct mt_attest_peer peer;
    assert_int_equal(mt_attest_identify(-1, &peer).error, MT_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_attest_identify_self_reports_the_file_being_run, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_attest_exe_sha256_only_when_asked_and_stable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_attest_identify_records_the_callers_start_time, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_attest_exe_sha256_without_executable_fails, setup,
                                        teardown),
        cmocka_unit_test(test_attest_identify_without_pidfds_non_dumpable_caller_has_start_time),
        cmocka_unit_test(test_attest_identify_not_a_socket_fails),
        cmocka_unit_test_setup_teardown(test_attest_exe_sha256_out_of_descriptors_is_temporary,
                                        setup, teardown),
        cmocka_unit_test(test_attest_fs_fuse_is_unread),
        cmocka_unit_test_setup_teardown(test_attest_exe_sha256_other_file_fails, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
