/*
 * Attestation of a local caller from kernel facts only (see attest.h).
 *
 * Owns the race against pid reuse: between connect() and our read of /proc/<pid>/exe the caller
 * may exit and its pid be given to another process, whose executable we would then attribute to
 * the caller. With SO_PEERPIDFD (Linux 6.5+) we hold a pidfd for the very process that connected
 * and confirm it is still alive after reading /proc (and hashing its executable); a live process
 * keeps its pid, so the /proc entry we read was its own. Older kernels get the weaker check of
 * the process start time read before and after, plus the uid in /proc/<pid>/status.
 *
 * Owns the executable hash cache too. This file must never take anything from the bytes a caller
 * sends, never report an executable it could not tie to the caller, and never let the name of
 * the executable stand for the file: the name comes from the caller's mount namespace.
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

#include "../util/log.h"
#include "attest.h"

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

/* Hashes the executable behind link (already identified by stat as device/inode) into peer. */
static void hash_exe(const char *link, struct mt_attest_peer *peer)
{
    int fd = open(link, O_RDONLY | O_CLOEXEC);
    struct stat file;
    if (fd < 0) {
        peer->exe_sha256_problem = "the agent cannot open it";
        return;
    }
    /* An execve between the stat and the open would swap the file: hash only the one named. */
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
    if (entry == NULL) {
        uint8_t digest[MT_DIGEST_SHA256_SIZE];
        struct stat after;
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
    }
    memcpy(peer->exe_sha256, entry->digest, sizeof(peer->exe_sha256));
    peer->has_exe_sha256 = true;

out:
    close(fd);
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
 * Reads what /proc/<pid>/exe names (into peer->exe) and is (device and inode; with want_sha256
 * its hash). False when it cannot be read or the name does not fit.
 */
static bool read_exe(pid_t pid, bool want_sha256, struct mt_attest_peer *peer)
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
    if (want_sha256)
        hash_exe(link, peer);
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
static bool read_exe_by_start_time(bool want_sha256, struct mt_attest_peer *peer)
{
    unsigned long long before = 0;
    unsigned long long after = 0;
    uid_t status_uid = 0;
    if (!read_start_time(peer->pid, &before))
        return false;
    bool have_exe = read_exe(peer->pid, want_sha256, peer);
    if (!have_exe || !read_start_time(peer->pid, &after) || before != after ||
        !read_status_uid(peer->pid, &status_uid) || status_uid != peer->uid)
        return false;
    return true;
}

bool mt_attest_start_time(pid_t pid, unsigned long long *start_time)
{
    return pid > 0 && start_time != NULL && read_start_time(pid, start_time);
}

MT_RESULT mt_attest_identify(int fd, bool want_sha256, struct mt_attest_peer *peer)
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
    length = sizeof(pidfd);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &length) == 0) {
        peer->has_exe = read_exe(peer->pid, want_sha256, peer) && pidfd_is_alive(pidfd);
        close(pidfd);
    } else if (errno == ENOPROTOOPT) {
        peer->has_exe = read_exe_by_start_time(want_sha256, peer);
    } else {
        /* ESRCH: the caller has already exited, so /proc/<pid> may be someone else's. */
        mt_log_debug("SO_PEERPIDFD for pid %ld: %s", (long)peer->pid, strerror(errno));
    }
    if (!peer->has_exe) {
        peer->exe[0] = '\0';
        peer->has_exe_sha256 = false;
        if (want_sha256 && peer->exe_sha256_problem == NULL)
            peer->exe_sha256_problem = "the agent cannot tie an executable to the caller";
    }
    return MT_OK_RESULT;
}
