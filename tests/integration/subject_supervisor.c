/*
 * A supervisor as `meshtls run` is for a program no preload can enter (test_attest_subject.py):
 * it forks, the child execs the program, and the parent asks the agent, for the child, the
 * SPIFFE ID it would get, an X.509-SVID and its metrics file, through the identity client with
 * the child set as its subject (mt_identity_supervise).
 *
 *   subject_supervisor SOCKET AGENT_UID LEAF_PATH PROGRAM [ARGUMENT...]
 *
 * Prints "child <pid>", "id <spiffe id>", "svid <spiffe id>" (the leaf goes to LEAF_PATH in
 * DER, for openssl to read), "metrics <path of the file passed>", then "ready", and waits for
 * its stdin to close so that the test can ask the agent for its status meanwhile; then ends the
 * child. Any failure: the reason on stderr and exit status 2.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "identity/client.h"
#include "tls/credentials.h"

#define TIMEOUT_MS 10000

static int fail(const char *what, const char *reason)
{
    fprintf(stderr, "subject_supervisor: %s: %s\n", what, reason);
    return 2;
}

/* Forks the child; returns once it has exec'd (its close-on-exec pipe end closed). */
static pid_t start_program(char **argv)
{
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) != 0)
        return -1;
    pid_t child = fork();
    if (child == 0) {
        close(ready[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(ready[1]);
    char byte;
    while (child > 0 && read(ready[0], &byte, 1) < 0 && errno == EINTR) {
    }
    close(ready[0]);
    return child;
}

static int write_file(const char *path, const uint8_t *data, size_t length)
{
    FILE *file = fopen(path, "wb");
    if (file == NULL)
        return -1;
    size_t written = fwrite(data, 1, length, file);
    return fclose(file) == 0 && written == length ? 0 : -1;
}

static int ask_for(const char *socket_path, uid_t agent_uid, const char *leaf_path)
{
    char message[512];
    struct mt_text reason = mt_text_on(message, sizeof(message));
    char id[256];
    if (!mt_result_is_ok(
            mt_identity_query_id(socket_path, agent_uid, TIMEOUT_MS, id, sizeof(id), &reason)))
        return fail("ID request", message);
    printf("id %s\n", id);
    struct mt_credentials *credentials = NULL;
    if (!mt_result_is_ok(
            mt_identity_fetch(socket_path, agent_uid, TIMEOUT_MS, &credentials, &reason)))
        return fail("SVID request", message);
    printf("svid %s\n", credentials->spiffe_id);
    int written = write_file(leaf_path, credentials->chain[0].data, credentials->chain[0].length);
    mt_credentials_release(credentials);
    if (written != 0)
        return fail("writing the leaf", strerror(errno));
    int fd = -1;
    if (!mt_result_is_ok(
            mt_identity_metrics_file(socket_path, agent_uid, TIMEOUT_MS, &fd, &reason)))
        return fail("metrics file request", message);
    char link[64];
    char path[512];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t length = readlink(link, path, sizeof(path) - 1);
    close(fd);
    if (length <= 0)
        return fail("naming the metrics file", strerror(errno));
    path[length] = '\0';
    printf("metrics %s\n", path);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: subject_supervisor SOCKET AGENT_UID LEAF_PATH PROGRAM [ARG...]\n");
        return 2;
    }
    pid_t child = start_program(argv + 4);
    if (child < 0)
        return fail("fork", strerror(errno));
    printf("child %ld\n", (long)child);
    char message[256];
    int pidfd = -1;
    int status = 2;
    if (!mt_result_is_ok(mt_identity_supervise(child, &pidfd, MT_TEXT_ON(message))))
        status = fail("pidfd of the child", message);
    else
        status = ask_for(argv[1], (uid_t)strtoul(argv[2], NULL, 10), argv[3]);
    if (status == 0) {
        printf("ready\n");
        fflush(stdout);
        char byte;
        while (read(STDIN_FILENO, &byte, 1) > 0) {
        }
    }
    mt_identity_set_subject(-1);
    if (pidfd >= 0)
        close(pidfd);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    return status;
}
