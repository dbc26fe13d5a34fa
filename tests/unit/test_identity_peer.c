/*
 * Tests for identity/peer.c and its use by identity/client.c: a workload trusts the agent socket
 * only when the kernel says agent_uid serves it, and sends nothing to any other server.
 *
 * Real sockets, no mocks: the credentials compared are the kernel's. The impostor test runs the
 * listener as uid 65534 in a child and is skipped when the test cannot change uid (not root).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "identity/client.h"
#include "identity/peer.h"

#define NOBODY 65534

static void test_mt_identity_peer_check_served_by_agent_uid_accepted(void **state)
{
    (void)state;
    int pair[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    char message[512] = "";
    assert_true(mt_result_is_ok(
        mt_identity_peer_check(pair[0], "/run/test.sock", getuid(), MT_TEXT_ON(message))));
    assert_string_equal(message, "");
    close(pair[0]);
    close(pair[1]);
}

/* Orientation matters: the same socket, another expected uid, is refused with both uids named. */
static void test_mt_identity_peer_check_served_by_another_uid_refused(void **state)
{
    (void)state;
    int pair[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    uid_t expected = getuid() + 1;
    char message[512] = "";
    assert_int_equal(
        mt_identity_peer_check(pair[0], "/run/test.sock", expected, MT_TEXT_ON(message)).error,
        MT_ERR_AGENT_UNTRUSTED);
    char served[128];
    snprintf(served, sizeof(served),
             "refusing the agent at /run/test.sock: it is served by uid %u (pid %d), expected "
             "uid %u (agent_uid)",
             (unsigned)getuid(), (int)getpid(), (unsigned)expected);
    assert_non_null(strstr(message, served));
    close(pair[0]);
    close(pair[1]);
}

/* Credentials that cannot be read are not a match: a pipe has none. */
static void test_mt_identity_peer_check_no_credentials_refused(void **state)
{
    (void)state;
    int pipe_fds[2];
    assert_int_equal(pipe(pipe_fds), 0);
    char message[512] = "";
    assert_int_equal(
        mt_identity_peer_check(pipe_fds[0], "/run/test.sock", getuid(), MT_TEXT_ON(message)).error,
        MT_ERR_AGENT_UNTRUSTED);
    assert_non_null(strstr(message, "its credentials cannot be read"));
    close(pipe_fds[0]);
    close(pipe_fds[1]);
}

/* A listener at path; the caller accepts from it. */
static int listen_at(const char *path)
{
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof(address.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(bind(fd, (struct sockaddr *)&address, sizeof(address)), 0);
    assert_int_equal(listen(fd, 4), 0);
    return fd;
}

/*
 * The client sends nothing to a server it does not trust: the listener accepts the connection the
 * client made and finds it closed without a byte, not even the request header.
 */
static void test_mt_identity_query_id_untrusted_server_receives_nothing(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof(path), "/tmp/test_identity_peer.%d.sock", (int)getpid());
    int listener = listen_at(path);
    char id[256];
    char message[512] = "";
    mt_result result =
        mt_identity_query_id(path, getuid() + 1, 2000, id, sizeof(id), MT_TEXT_ON(message));
    assert_int_equal(result.error, MT_ERR_AGENT_UNTRUSTED);
    assert_non_null(strstr(message, "refusing the agent at"));
    int connection = accept(listener, NULL, NULL);
    assert_true(connection >= 0);
    char byte;
    assert_int_equal(recv(connection, &byte, 1, 0), 0);
    close(connection);

    /* The same for a CSR: the request is started, and the poll refuses before sending it. */
    struct mt_identity_request *request = NULL;
    struct mt_credentials *identity = NULL;
    result = mt_identity_request_start(path, getuid() + 1, 2000, &request, MT_TEXT_ON(message));
    if (mt_result_is_ok(result))
        result = mt_identity_request_poll(request, 2000, &identity, MT_TEXT_ON(message));
    assert_int_equal(result.error, MT_ERR_AGENT_UNTRUSTED);
    assert_null(identity);
    mt_identity_request_free(request);
    connection = accept(listener, NULL, NULL);
    assert_true(connection >= 0);
    assert_int_equal(recv(connection, &byte, 1, 0), 0);
    close(connection);
    close(listener);
    unlink(path);
}

/*
 * The impostor: a listener run by uid 65534 in place of root's agent. SO_PEERCRED
 * reports whoever called listen(), which the impostor cannot choose.
 */
static void test_mt_identity_peer_check_impostor_listener_refused(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    char path[64];
    snprintf(path, sizeof(path), "/tmp/test_identity_peer.%d.impostor", (int)getpid());
    unlink(path);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        if (setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
            _exit(2);
        int fd = listen_at(path);
        if (write(ready[1], "r", 1) != 1)
            _exit(3);
        int connection = accept(fd, NULL, NULL);
        char byte;
        /* 0: the client closed without sending anything. */
        _exit(connection >= 0 && recv(connection, &byte, 1, 0) == 0 ? 0 : 4);
    }
    char signal_byte;
    assert_int_equal(read(ready[0], &signal_byte, 1), 1);
    char id[256];
    char message[512] = "";
    assert_int_equal(mt_identity_query_id(path, 0, 2000, id, sizeof(id), MT_TEXT_ON(message)).error,
                     MT_ERR_AGENT_UNTRUSTED);
    char served[160];
    snprintf(served, sizeof(served),
             "refusing the agent at %s: it is served by uid %d (pid %d), expected uid 0 "
             "(agent_uid)",
             path, NOBODY, (int)child);
    assert_non_null(strstr(message, served));
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(ready[0]);
    close(ready[1]);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt_identity_peer_check_served_by_agent_uid_accepted),
        cmocka_unit_test(test_mt_identity_peer_check_served_by_another_uid_refused),
        cmocka_unit_test(test_mt_identity_peer_check_no_credentials_refused),
        cmocka_unit_test(test_mt_identity_query_id_untrusted_server_receives_nothing),
        cmocka_unit_test(test_mt_identity_peer_check_impostor_listener_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
