/*
 * Attestation of a local caller from kernel facts only (see attest.h).
 *
 * Owns the race against pid reuse: between connect() and our read of /proc/<pid>/exe the caller
 * may exit and its pid be given to another process, whose executable we would then attribute to
 * the caller. With SO_PEERPIDFD (Linux 6.5+) we hold a pidfd for the very process that connected
 * and confirm it is still alive after reading /proc; a live process keeps its pid, so the /proc
 * entry we read was its own. Older kernels get the weaker check of the process start time read
 * before and after, plus the uid in /proc/<pid>/status. This file must never take anything from
 * the bytes a caller sends, and never report an executable it could not tie to the caller.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../util/log.h"
#include "attest.h"

/* asm-generic/socket.h value on x86-64 and arm64; glibc 2.36's headers predate it. */
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* Reads /proc/<pid>/exe into peer->exe; false when it cannot be read or does not fit. */
static bool read_exe(pid_t pid, struct mt_attest_peer *peer)
{
    char link[64];
    snprintf(link, sizeof(link), "/proc/%ld/exe", (long)pid);
    ssize_t length = readlink(link, peer->exe, sizeof(peer->exe));
    if (length <= 0 || (size_t)length >= sizeof(peer->exe)) {
        peer->exe[0] = '\0';
        return false;
    }
    peer->exe[length] = '\0';
    return true;
}

/*
 * True while the process behind pidfd has not exited. EPERM (an agent without the right to signal
 * the caller) still proves the process exists; ESRCH means it is gone.
 */
static bool pidfd_is_alive(int pidfd)
{
    if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0)
        return true;
    return errno == EPERM;
}

/* Field 22 of /proc/<pid>/stat: the start time in clock ticks after boot. */
static bool read_start_time(pid_t pid, unsigned long long *start_time)
{
    char path[64];
    char text[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    FILE *file = fopen(path, "re");
    if (file == NULL)
        return false;
    size_t length = fread(text, 1, sizeof(text) - 1, file);
    fclose(file);
    text[length] = '\0';
    /* The command name (field 2) may itself hold spaces and parentheses: skip to the last ')'. */
    char *cursor = strrchr(text, ')');
    if (cursor == NULL)
        return false;
    cursor++;
    for (int field = 3; field < 22; field++) {
        cursor = strchr(cursor + 1, ' ');
        if (cursor == NULL)
            return false;
    }
    char *end = NULL;
    errno = 0;
    *start_time = strtoull(cursor + 1, &end, 10);
    return errno == 0 && end != cursor + 1;
}

/* The effective uid on the "Uid:" line of /proc/<pid>/status (SO_PEERCRED reports the euid). */
static bool read_status_uid(pid_t pid, uid_t *uid)
{
    char path[64];
    char line[256];
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    FILE *file = fopen(path, "re");
    if (file == NULL)
        return false;
    bool found = false;
    while (!found && fgets(line, sizeof(line), file) != NULL) {
        unsigned long real_uid;
        unsigned long effective_uid;
        if (sscanf(line, "Uid: %lu %lu", &real_uid, &effective_uid) == 2) {
            *uid = (uid_t)effective_uid;
            found = true;
        }
    }
    fclose(file);
    return found;
}

/* The pre-pidfd check: same start time before and after the read, and the expected uid. */
static bool read_exe_by_start_time(struct mt_attest_peer *peer)
{
    unsigned long long before = 0;
    unsigned long long after = 0;
    uid_t status_uid = 0;
    if (!read_start_time(peer->pid, &before))
        return false;
    bool have_exe = read_exe(peer->pid, peer);
    if (!have_exe || !read_start_time(peer->pid, &after) || before != after ||
        !read_status_uid(peer->pid, &status_uid) || status_uid != peer->uid)
        return false;
    return true;
}

bool mt_attest_start_time(pid_t pid, unsigned long long *start_time)
{
    return pid > 0 && start_time != NULL && read_start_time(pid, start_time);
}

MT_RESULT mt_attest_identify(int fd, struct mt_attest_peer *peer)
{
    MT_ENSURE_REF(peer);
    memset(peer, 0, sizeof(*peer));
    struct ucred credentials;
    socklen_t length = sizeof(credentials);
    MT_GUARD_POSIX(getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length), MT_ERR_IO);
    peer->pid = credentials.pid;
    peer->uid = credentials.uid;
    peer->gid = credentials.gid;
    if (peer->pid <= 0)
        return MT_OK_RESULT;

    int pidfd = -1;
    length = sizeof(pidfd);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &length) == 0) {
        peer->has_exe = read_exe(peer->pid, peer) && pidfd_is_alive(pidfd);
        close(pidfd);
    } else if (errno == ENOPROTOOPT) {
        peer->has_exe = read_exe_by_start_time(peer);
    } else {
        /* ESRCH: the caller has already exited, so /proc/<pid> may be someone else's. */
        mt_log_debug("SO_PEERPIDFD for pid %ld: %s", (long)peer->pid, strerror(errno));
    }
    if (!peer->has_exe)
        peer->exe[0] = '\0';
    return MT_OK_RESULT;
}
