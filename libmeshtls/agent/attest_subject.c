/*
 * Attestation of a subject named by a pidfd (see attest_subject.h).
 *
 * Owns the checks that let a caller hold the identity of another process: that process must be
 * its own live child, under the same uid and gid, and the pidfd must still name it once
 * everything about it has been read. The pid comes from the kernel (the pidfd's fdinfo), never
 * from the bytes of the request. This file must never attest a process it could not tie to the
 * pidfd, never accept a subject of another user (the caller could not run it as itself, so its
 * identity is not the caller's to hold), and never read anything but /proc.
 *
 * The caller's pid (SO_PEERCRED) needs no pidfd of its own here: if the caller exited, its child
 * was reparented at that moment (to init or a subreaper), and a process that was given the pid
 * later cannot be the parent of a process that already existed. So "PPid is the caller's pid",
 * read while the subject's pidfd proves the subject alive, is true only of the caller.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attest_subject.h"

/* /proc/<pid>/status is about 1.5 KiB; fdinfo is a few lines. */
#define PROC_TEXT_MAX 8192

/* Reads a small /proc file whole; false when it cannot be opened or read. */
static bool read_proc_text(const char *path, char *text, size_t capacity)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t length = 0;
    bool ok = true;
    while (length + 1 < capacity) {
        ssize_t got = read(fd, text + length, capacity - 1 - length);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            ok = false;
        if (got <= 0)
            break;
        length += (size_t)got;
    }
    close(fd);
    text[length] = '\0';
    return ok && length > 0;
}

/* The value after "name:" on the line of text that starts with it, or NULL. */
static const char *line_value(const char *text, const char *name)
{
    size_t name_length = strlen(name);
    for (const char *line = text; line != NULL && *line != '\0';) {
        if (strncmp(line, name, name_length) == 0 && line[name_length] == ':')
            return line + name_length + 1;
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return NULL;
}

static bool parse_long(const char *value, long *number)
{
    if (value == NULL)
        return false;
    char *end = NULL;
    errno = 0;
    long parsed = strtol(value, &end, 10);
    if (end == value || errno != 0 || (*end != '\n' && *end != '\0' && *end != ' ' && *end != '\t'))
        return false;
    *number = parsed;
    return true;
}

/* "Uid:" and "Gid:" carry four ids: real, effective, saved, filesystem. */
static bool parse_ids(const char *value, unsigned long ids[4])
{
    return value != NULL &&
           sscanf(value, "%lu %lu %lu %lu", &ids[0], &ids[1], &ids[2], &ids[3]) == 4;
}

bool mt_attest_status_parse(const char *text, struct mt_attest_status *status)
{
    if (text == NULL || status == NULL)
        return false;
    memset(status, 0, sizeof(*status));
    const char *state = line_value(text, "State");
    while (state != NULL && (*state == ' ' || *state == '\t'))
        state++;
    status->state = state != NULL && *state != '\n' ? *state : '\0';
    long number = 0;
    status->has_tgid = parse_long(line_value(text, "Tgid"), &number);
    status->tgid = status->has_tgid ? (pid_t)number : 0;
    status->has_ppid = parse_long(line_value(text, "PPid"), &number);
    status->ppid = status->has_ppid ? (pid_t)number : 0;
    unsigned long ids[4];
    status->has_uid = parse_ids(line_value(text, "Uid"), ids);
    for (int i = 0; status->has_uid && i < 4; i++)
        status->uid[i] = (uid_t)ids[i];
    status->has_gid = parse_ids(line_value(text, "Gid"), ids);
    for (int i = 0; status->has_gid && i < 4; i++)
        status->gid[i] = (gid_t)ids[i];
    return status->state != '\0' && status->has_tgid && status->has_ppid && status->has_uid &&
           status->has_gid;
}

bool mt_attest_fdinfo_pid(const char *text, long *pid)
{
    return text != NULL && pid != NULL && parse_long(line_value(text, "Pid"), pid);
}

bool mt_attest_subject_is_refused(pid_t caller_pid, uid_t caller_uid, gid_t caller_gid,
                                  pid_t subject_pid, const struct mt_attest_status *status,
                                  struct mt_text *reason)
{
    if (caller_pid <= 0) {
        mt_text_set(reason, "the caller's pid is not visible to the agent (another pid "
                            "namespace), so it cannot be shown to be the subject's parent");
        return true;
    }
    if (status->state == 'Z' || status->state == 'X') {
        mt_text_set(reason, "subject pid %ld has exited (a zombie not yet reaped)",
                    (long)subject_pid);
        return true;
    }
    if (!status->has_tgid || status->tgid != subject_pid) {
        mt_text_set(reason, "subject pid %ld is a thread of pid %ld, not a process",
                    (long)subject_pid, (long)status->tgid);
        return true;
    }
    if (!status->has_ppid || status->ppid != caller_pid) {
        mt_text_set(reason,
                    "subject pid %ld is not a child of the caller: its parent is pid %ld; only "
                    "the process that started a program may hold its identity",
                    (long)subject_pid, (long)status->ppid);
        return true;
    }
    /* The filesystem ids follow the effective ones; real, effective and saved must all match. */
    for (int i = 0; i < 3; i++) {
        if (!status->has_uid || status->uid[i] != caller_uid) {
            mt_text_set(reason,
                        "subject pid %ld runs as uid %u/%u/%u (real/effective/saved), not as the "
                        "caller's uid %u: never another user's identity",
                        (long)subject_pid, (unsigned)status->uid[0], (unsigned)status->uid[1],
                        (unsigned)status->uid[2], (unsigned)caller_uid);
            return true;
        }
        if (!status->has_gid || status->gid[i] != caller_gid) {
            mt_text_set(reason,
                        "subject pid %ld runs as gid %u/%u/%u (real/effective/saved), not as the "
                        "caller's gid %u",
                        (long)subject_pid, (unsigned)status->gid[0], (unsigned)status->gid[1],
                        (unsigned)status->gid[2], (unsigned)caller_gid);
            return true;
        }
    }
    return false;
}

/* Whether fd is a pidfd, and the pid it names in the agent's pid namespace (-1, 0: see .h). */
static bool pidfd_pid(int fd, long *pid)
{
    char path[64];
    char text[PROC_TEXT_MAX];
    char target[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t length = readlink(path, target, sizeof(target) - 1);
    if (length <= 0)
        return false;
    target[length] = '\0';
    if (strstr(target, "pidfd") == NULL)
        return false;
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
    return read_proc_text(path, text, sizeof(text)) && mt_attest_fdinfo_pid(text, pid);
}

/* Reads pid's status and judges it for the caller; true when it is refused (reason set). */
static bool judge(pid_t caller_pid, uid_t uid, gid_t gid, pid_t pid, struct mt_text *reason)
{
    char path[64];
    char text[PROC_TEXT_MAX];
    struct mt_attest_status status;
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    if (!read_proc_text(path, text, sizeof(text)) || !mt_attest_status_parse(text, &status)) {
        mt_text_set(reason, "subject pid %ld exited while the agent looked at it", (long)pid);
        return true;
    }
    return mt_attest_subject_is_refused(caller_pid, uid, gid, pid, &status, reason);
}

enum mt_attest_subject_outcome mt_attest_identify_subject(const struct mt_attest_peer *caller,
                                                          int pidfd, struct mt_attest_peer *subject,
                                                          struct mt_text *reason)
{
    memset(subject, 0, sizeof(*subject));
    long pid = 0;
    if (!pidfd_pid(pidfd, &pid)) {
        mt_text_set(reason, "the descriptor sent with the request is not a pidfd "
                            "(send pidfd_open(child, 0))");
        return MT_ATTEST_SUBJECT_NOT_PIDFD;
    }
    if (pid < 0) {
        mt_text_set(reason, "the subject's process has exited and been reaped");
        return MT_ATTEST_SUBJECT_REFUSED;
    }
    if (pid == 0) {
        mt_text_set(reason, "the subject is in a pid namespace the agent cannot see");
        return MT_ATTEST_SUBJECT_REFUSED;
    }
    subject->pid = (pid_t)pid;
    if (subject->pid == caller->pid)
        return MT_ATTEST_SUBJECT_IS_CALLER;
    if (caller->pid > 0 && !caller->has_start_time) {
        mt_text_set(reason, "the caller pid %ld itself could not be attested (it exited?)",
                    (long)caller->pid);
        return MT_ATTEST_SUBJECT_REFUSED;
    }
    if (judge(caller->pid, caller->uid, caller->gid, subject->pid, reason))
        return MT_ATTEST_SUBJECT_REFUSED;
    subject->uid = caller->uid;
    subject->gid = caller->gid;
    subject->supervisor_pid = caller->pid;
    subject->subject_pidfd = pidfd;
    /* The same reads as for a caller, tied by the pidfd: the status read above is too. */
    mt_attest_identify_held(pidfd, subject);
    if (!subject->has_start_time) {
        mt_text_set(reason, "subject pid %ld exited while it was attested", (long)subject->pid);
        return MT_ATTEST_SUBJECT_REFUSED;
    }
    return MT_ATTEST_SUBJECT_OK;
}

bool mt_attest_subject_still_there(const struct mt_attest_peer *subject, struct mt_text *reason)
{
    if (subject->supervisor_pid == 0)
        return true;
    if (judge(subject->supervisor_pid, subject->uid, subject->gid, subject->pid, reason))
        return false;
    /* After the status read: a process not reaped keeps its pid, so that status was its own. */
    if (!mt_attest_pidfd_is_alive(subject->subject_pidfd)) {
        mt_text_set(reason, "subject pid %ld exited before its answer was sent",
                    (long)subject->pid);
        return false;
    }
    return true;
}
