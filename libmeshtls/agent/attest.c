/*
 * Attestation of a local caller from kernel facts only (see attest.h).
 *
 * Owns the race against pid reuse: between connect() and our read of /proc/<pid> the caller may
 * exit and its pid be given to another process, whose executable or start time we would then
 * attribute to the caller. With SO_PEERPIDFD (Linux 6.5+) we hold a pidfd for the very process
 * that connected and confirm it is still alive after reading /proc (and after hashing its
 * executable); a live process keeps its pid, so the /proc entry we read was its own. Older
 * kernels get the weaker check of the process start time read before and after, plus the
 * effective uid in /proc/<pid>/status (not the owner of /proc/<pid>: a non-dumpable process's
 * entries belong to root).
 *
 * Owns the executable hash cache and the hashing budget too: a hash is computed only when a
 * rule asks for it (mt_attest_exe_sha256), and a cache miss is charged to the caller's uid. This
 * file must never take anything from the bytes a caller sends, never report an executable or a
 * start time it could not tie to the caller, and never let the name of the executable stand for
 * the file: the name comes from the caller's mount namespace.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../metrics/layout.h"
#include "../util/log.h"
#include "attest.h"
#include "hash_budget.h"

/* asm-generic/socket.h value on x86-64 and arm64; glibc 2.36's headers predate it. */
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* One remembered hash. ctime is in the key because no user can set it: any write moves it. */
struct sha256_entry {
    bool used;
    dev_t device;
    ino_t inode;
    off_t size;
    struct timespec mtime;
    struct timespec ctime;
    uint8_t digest[MT_DIGEST_SHA256_SIZE];
};

static struct sha256_entry sha256_cache[MT_ATTEST_SHA256_CACHE];
static size_t sha256_cache_next;
static struct mt_hash_budget hash_budget;

static bool same_time(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static struct sha256_entry *sha256_cache_find(const struct stat *file)
{
    for (size_t i = 0; i < MT_ATTEST_SHA256_CACHE; i++) {
        struct sha256_entry *entry = &sha256_cache[i];
        if (entry->used && entry->device == file->st_dev && entry->inode == file->st_ino &&
            entry->size == file->st_size && same_time(entry->mtime, file->st_mtim) &&
            same_time(entry->ctime, file->st_ctim))
            return entry;
    }
    return NULL;
}

/* Why the budget refused a hash, for the caller's rule log lines. */
static const char *budget_problem(enum mt_hash_budget_decision decision)
{
    switch (decision) {
    case MT_HASH_BUDGET_UID_SPENT:
        return "its uid has used its hashing budget (256 MiB per minute); it is hashed again "
               "once the minute is over";
    case MT_HASH_BUDGET_NODE_SPENT:
        return "the agent has used its hashing budget for all users (1 GiB per minute); it is "
               "hashed again once the minute is over";
    default:
        return "64 other uids are within their hashing minute; it is hashed again once one is "
               "over";
    }
}

/*
 * Hashes the executable behind link (already identified by stat as device/inode) into peer,
 * from the cache or within the budget of peer's uid at now_ms.
 */
static enum mt_attest_hash_outcome hash_exe(const char *link, long long now_ms,
                                            struct mt_attest_peer *peer)
{
    enum mt_attest_hash_outcome outcome = MT_ATTEST_HASH_FAILED;
    int fd = open(link, O_RDONLY | O_CLOEXEC);
    struct stat file;
    if (fd < 0) {
        peer->exe_sha256_problem = "the agent cannot open it";
        return outcome;
    }
    /* An execve since identify would swap the file: hash only the one identify named. */
    if (fstat(fd, &file) != 0 || file.st_dev != peer->exe_device ||
        file.st_ino != peer->exe_inode || !S_ISREG(file.st_mode)) {
        peer->exe_sha256_problem = "it changed while the agent looked at it";
        goto out;
    }
    if ((uint64_t)file.st_size > MT_ATTEST_SHA256_MAX_BYTES) {
        peer->exe_sha256_problem = "it is larger than the 128 MiB the agent hashes";
        goto out;
    }
    struct sha256_entry *entry = sha256_cache_find(&file);
    outcome = MT_ATTEST_HASH_CACHED;
    if (entry == NULL) {
        enum mt_hash_budget_decision decision =
            mt_hash_budget_charge(&hash_budget, peer->uid, (uint64_t)file.st_size, now_ms);
        if (decision != MT_HASH_BUDGET_GRANTED) {
            peer->exe_sha256_problem = budget_problem(decision);
            mt_log_limited(
                MT_LOG_WARN,
                "did not hash %s (%lld bytes), the executable of pid %ld uid %u: %s "
                "(uid %u has had %llu bytes hashed this minute); sha256 rules do not "
                "match it meanwhile",
                peer->exe, (long long)file.st_size, (long)peer->pid, (unsigned)peer->uid,
                peer->exe_sha256_problem, (unsigned)peer->uid,
                (unsigned long long)mt_hash_budget_spent(&hash_budget, peer->uid, now_ms));
            outcome = MT_ATTEST_HASH_OVER_BUDGET;
            goto out;
        }
        outcome = MT_ATTEST_HASH_FAILED;
        uint8_t digest[MT_DIGEST_SHA256_SIZE];
        struct stat after;
        mt_log_debug("hashing %s (%lld bytes), the executable of pid %ld uid %u", peer->exe,
                     (long long)file.st_size, (long)peer->pid, (unsigned)peer->uid);
        if (!mt_result_is_ok(mt_digest_sha256_fd(fd, MT_ATTEST_SHA256_MAX_BYTES, digest))) {
            peer->exe_sha256_problem = "reading it failed";
            goto out;
        }
        /* A write during the hash moves ctime: such a digest names no version of the file. */
        if (fstat(fd, &after) != 0 || after.st_size != file.st_size ||
            !same_time(after.st_ctim, file.st_ctim)) {
            peer->exe_sha256_problem = "it changed while the agent hashed it";
            goto out;
        }
        entry = &sha256_cache[sha256_cache_next];
        sha256_cache_next = (sha256_cache_next + 1) % MT_ATTEST_SHA256_CACHE;
        *entry = (struct sha256_entry){.used = true,
                                       .device = file.st_dev,
                                       .inode = file.st_ino,
                                       .size = file.st_size,
                                       .mtime = file.st_mtim,
                                       .ctime = file.st_ctim};
        memcpy(entry->digest, digest, sizeof(digest));
        outcome = MT_ATTEST_HASH_COMPUTED;
    }
    memcpy(peer->exe_sha256, entry->digest, sizeof(peer->exe_sha256));
    peer->has_exe_sha256 = true;

out:
    close(fd);
    return outcome;
}

/* True when pid's mount namespace is not the agent's; false when it cannot tell. */
static bool in_other_mount_namespace(pid_t pid)
{
    char path[64];
    struct stat theirs;
    struct stat ours;
    snprintf(path, sizeof(path), "/proc/%ld/ns/mnt", (long)pid);
    if (stat(path, &theirs) != 0 || stat("/proc/self/ns/mnt", &ours) != 0)
        return false;
    return theirs.st_dev != ours.st_dev || theirs.st_ino != ours.st_ino;
}

/*
 * Reads what /proc/<pid>/exe names (into peer->exe) and is (device and inode). False when it
 * cannot be read or the name does not fit.
 */
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
    /* stat follows the magic link to the file being run, not to what its name is for us. */
    struct stat file;
    if (stat(link, &file) != 0)
        return false;
    peer->exe_device = file.st_dev;
    peer->exe_inode = file.st_ino;
    peer->other_mount_namespace = in_other_mount_namespace(pid);
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

/* Field 22 of /proc/<pid>/stat, parsed by the one parser the metrics files are named with. */
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
    return length > 0 && mt_metrics_stat_start_time(text, start_time);
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

/*
 * A pidfd for the process at the other end of fd in *pidfd (-1 on kernels without SO_PEERPIDFD,
 * whose callers get the start-time check). False when the process has already exited.
 */
static bool hold_caller(int fd, pid_t pid, int *pidfd)
{
    socklen_t length = sizeof(*pidfd);
    *pidfd = -1;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, pidfd, &length) == 0)
        return true;
    *pidfd = -1;
    if (errno == ENOPROTOOPT)
        return true;
    /* ESRCH: the caller has already exited, so /proc/<pid> may be someone else's. */
    mt_log_debug("SO_PEERPIDFD for pid %ld: %s", (long)pid, strerror(errno));
    return false;
}

/*
 * True when what was read from /proc/<pid> since start_time was read belongs to the process that
 * connected: its pidfd is still alive, or (no pidfd) pid still has that start time and the
 * peer's effective uid.
 */
static bool still_the_caller(int pidfd, const struct mt_attest_peer *peer,
                             unsigned long long start_time)
{
    if (pidfd >= 0)
        return pidfd_is_alive(pidfd);
    unsigned long long now = 0;
    uid_t status_uid = 0;
    return read_start_time(peer->pid, &now) && now == start_time &&
           read_status_uid(peer->pid, &status_uid) && status_uid == peer->uid;
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
    if (peer->pid <= 0) {
        peer->exe_sha256_problem = "its pid is not visible to the agent (another pid namespace)";
        return MT_OK_RESULT;
    }
    int pidfd = -1;
    if (!hold_caller(fd, peer->pid, &pidfd))
        return MT_OK_RESULT;
    unsigned long long start_time = 0;
    bool has_start_time = read_start_time(peer->pid, &start_time);
    bool has_exe = has_start_time && read_exe(peer->pid, peer);
    bool tied = has_start_time && still_the_caller(pidfd, peer, start_time);
    if (pidfd >= 0)
        close(pidfd);
    peer->has_start_time = tied;
    peer->start_time = tied ? start_time : 0;
    peer->has_exe = tied && has_exe;
    if (!peer->has_exe) {
        peer->exe[0] = '\0';
        peer->exe_device = 0;
        peer->exe_inode = 0;
    }
    return MT_OK_RESULT;
}

enum mt_attest_hash_outcome mt_attest_exe_sha256(int fd, long long now_ms,
                                                 struct mt_attest_peer *peer)
{
    if (peer == NULL)
        return MT_ATTEST_HASH_FAILED;
    if (peer->sha256_attempted)
        return MT_ATTEST_HASH_ALREADY;
    peer->sha256_attempted = true;
    if (!peer->has_exe) {
        if (peer->exe_sha256_problem == NULL)
            peer->exe_sha256_problem = "the agent cannot tie an executable to the caller";
        return MT_ATTEST_HASH_FAILED;
    }
    int pidfd = -1;
    if (!hold_caller(fd, peer->pid, &pidfd)) {
        peer->exe_sha256_problem = "the caller exited before its executable was hashed";
        return MT_ATTEST_HASH_FAILED;
    }
    char link[64];
    snprintf(link, sizeof(link), "/proc/%ld/exe", (long)peer->pid);
    enum mt_attest_hash_outcome outcome = hash_exe(link, now_ms, peer);
    if (peer->has_exe_sha256 && !still_the_caller(pidfd, peer, peer->start_time)) {
        peer->has_exe_sha256 = false;
        peer->exe_sha256_problem = "the caller exited while its executable was hashed";
        if (outcome == MT_ATTEST_HASH_CACHED)
            outcome = MT_ATTEST_HASH_FAILED;
    }
    if (pidfd >= 0)
        close(pidfd);
    return outcome;
}
