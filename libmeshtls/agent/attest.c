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
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../metrics/layout.h"
#include "../util/log.h"
#include "../util/sys.h"
#include "attest.h"
#include "hash_budget.h"

/* asm-generic/socket.h value on x86-64 and arm64; glibc 2.36's headers predate it. */
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* linux/magic.h values, spelled out so that no kernel header is needed. */
#define FUSE_SUPER_MAGIC_VALUE 0x65735546L
#define FUSECTL_SUPER_MAGIC_VALUE 0x65735543L

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
 * Filesystems whose files the agent never opens for hashing. FUSE hands every open, stat, statfs
 * and read to a user-space daemon, which may never answer: one such call would freeze the agent's
 * one event loop, and any user can mount FUSE inside a user and mount namespace of its own and
 * run a program from it (/proc/<pid>/exe still reaches the file). Of the other filesystems a user
 * may mount without privilege in a user namespace (tmpfs, ramfs, proc, sysfs, devpts, mqueue,
 * cgroup, binfmt_misc, overlay), only FUSE asks a process for its answers. Known gap: an overlay
 * whose lower layer is FUSE reports the overlay type yet reads through to FUSE; refusing overlay
 * would refuse every container, so it is not refused here.
 */
bool mt_attest_fs_magic_is_unread(long long f_type)
{
    return f_type == FUSE_SUPER_MAGIC_VALUE;
}

bool mt_attest_fs_name_is_unread(const char *fstype)
{
    return fstype != NULL && (strcmp(fstype, "fuse") == 0 || strcmp(fstype, "fuseblk") == 0 ||
                              strncmp(fstype, "fuse.", 5) == 0);
}

enum fs_verdict {
    FS_READABLE,    /* not a filesystem the agent refuses, as far as it can tell */
    FS_UNREAD,      /* FUSE: never opened */
    FS_CALLER_GONE, /* the caller's /proc entries are gone */
    FS_CANNOT_TELL, /* a temporary failure */
};

/*
 * Whether device (the st_dev attestation recorded for the executable) is a FUSE filesystem,
 * learned without a single call that reaches the filesystem itself: statfs and fstatfs ask the
 * FUSE daemon (FUSE_STATFS) before they report f_type, and open asks it too (FUSE_OPEN), so
 * none of them can be the check that keeps the agent away from FUSE.
 *
 * First the FUSE control filesystem: every FUSE connection, from whatever namespace, has a
 * directory /sys/fs/fuse/connections/<its device number, kernel encoding>. When that is not
 * mounted, the caller's /proc/<pid>/mountinfo: the line whose major:minor is device names the
 * filesystem type. A mount the caller detached (umount -l) after exec is in no mountinfo, so on
 * a node without the control filesystem that case is not caught here. Neither file is on FUSE.
 */
static enum fs_verdict exe_filesystem(pid_t pid, dev_t device)
{
    struct statfs control;
    if (statfs("/sys/fs/fuse/connections", &control) == 0 &&
        (long long)control.f_type == FUSECTL_SUPER_MAGIC_VALUE) {
        char path[96];
        struct stat entry;
        unsigned long long kernel_device =
            ((unsigned long long)major(device) << 20) | (unsigned long long)minor(device);
        snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%llu", kernel_device);
        if (stat(path, &entry) == 0)
            return FS_UNREAD;
        if (errno == ENOENT)
            return FS_READABLE;
        return FS_CANNOT_TELL;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/mountinfo", (long)pid);
    FILE *file = fopen(path, "re");
    if (file == NULL)
        return errno == ENOENT || errno == ESRCH ? FS_CALLER_GONE : FS_CANNOT_TELL;
    enum fs_verdict verdict = FS_READABLE;
    char *line = NULL;
    size_t capacity = 0;
    errno = 0;
    while (verdict == FS_READABLE && getline(&line, &capacity, file) >= 0) {
        unsigned mount_major;
        unsigned mount_minor;
        if (sscanf(line, "%*d %*d %u:%u", &mount_major, &mount_minor) != 2 ||
            makedev(mount_major, mount_minor) != device)
            continue;
        /* Root and mount point escape spaces (\040): the first " - " ends the optional fields. */
        char *rest = strstr(line, " - ");
        if (rest == NULL)
            continue;
        rest += 3;
        rest[strcspn(rest, " \n")] = '\0';
        if (mt_attest_fs_name_is_unread(rest))
            verdict = FS_UNREAD;
    }
    if (verdict == FS_READABLE && ferror(file))
        verdict = FS_CANNOT_TELL;
    free(line);
    fclose(file);
    return verdict;
}

/* True when errno (after a failed call on /proc/<pid>/...) says the process is gone. */
static bool caller_gone(int error)
{
    return error == ENOENT || error == ESRCH;
}

/*
 * Hashes the executable behind link (already identified by stat as device/inode) into peer,
 * from the cache or within the budget of peer's uid at now_ms. Outcomes other than
 * MT_ATTEST_HASH_TEMPORARY and MT_ATTEST_HASH_OVER_BUDGET are final for this file: too large,
 * on FUSE, changed since attestation, the caller gone.
 */
static enum mt_attest_hash_outcome hash_exe(const char *link, long long now_ms,
                                            struct mt_attest_peer *peer)
{
    switch (exe_filesystem(peer->pid, peer->exe_device)) {
    case FS_UNREAD:
        peer->exe_sha256_problem = "it is on a FUSE filesystem, which the agent does not read";
        return MT_ATTEST_HASH_FAILED;
    case FS_CALLER_GONE:
        peer->exe_sha256_problem = "the caller exited before its executable was hashed";
        return MT_ATTEST_HASH_FAILED;
    case FS_CANNOT_TELL:
        peer->exe_sha256_problem = "the agent could not tell which filesystem it is on";
        return MT_ATTEST_HASH_TEMPORARY;
    case FS_READABLE:
        break;
    }
    enum mt_attest_hash_outcome outcome = MT_ATTEST_HASH_TEMPORARY;
    int fd = open(link, O_RDONLY | O_CLOEXEC);
    struct stat file;
    struct statfs filesystem;
    if (fd < 0) {
        if (caller_gone(errno)) {
            peer->exe_sha256_problem = "the caller exited before its executable was hashed";
            return MT_ATTEST_HASH_FAILED;
        }
        /* EMFILE, ENFILE, ENOMEM, EINTR, EAGAIN and the like: the agent's, not the file's. */
        peer->exe_sha256_problem = "the agent cannot open it for now";
        return outcome;
    }
    if (fstat(fd, &file) != 0) {
        peer->exe_sha256_problem = "the agent cannot stat it for now";
        goto out;
    }
    /* An execve since identify would swap the file: hash only the one identify named. */
    if (file.st_dev != peer->exe_device || file.st_ino != peer->exe_inode ||
        !S_ISREG(file.st_mode)) {
        peer->exe_sha256_problem = "it changed while the agent looked at it";
        outcome = MT_ATTEST_HASH_FAILED;
        goto out;
    }
    /* Belt and braces for exe_filesystem: not reached for FUSE files it recognised. */
    if (fstatfs(fd, &filesystem) != 0) {
        peer->exe_sha256_problem = "the agent cannot tell which filesystem it is on";
        goto out;
    }
    if (mt_attest_fs_magic_is_unread((long long)filesystem.f_type)) {
        peer->exe_sha256_problem = "it is on a FUSE filesystem, which the agent does not read";
        outcome = MT_ATTEST_HASH_FAILED;
        goto out;
    }
    if (file.st_size < 0 || (uint64_t)file.st_size > MT_ATTEST_SHA256_MAX_BYTES) {
        peer->exe_sha256_problem = "it is larger than the 128 MiB the agent hashes";
        outcome = MT_ATTEST_HASH_FAILED;
        goto out;
    }
    struct sha256_entry *entry = sha256_cache_find(&file);
    outcome = MT_ATTEST_HASH_CACHED;
    if (entry == NULL) {
        uint64_t charged = (uint64_t)file.st_size;
        enum mt_hash_budget_decision decision =
            mt_hash_budget_charge(&hash_budget, peer->uid, charged, now_ms);
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
        uint8_t digest[MT_DIGEST_SHA256_SIZE];
        struct stat after;
        uint64_t read_bytes = 0;
        mt_log_debug("hashing %s (%lld bytes), the executable of pid %ld uid %u", peer->exe,
                     (long long)file.st_size, (long)peer->pid, (unsigned)peer->uid);
        /* Read no more than was charged: a file that returns more than its st_size said is not
         * hashed. The charge then becomes what was read (one byte more at most). */
        mt_result hashed = mt_digest_sha256_fd(fd, charged, digest, &read_bytes);
        if (read_bytes < charged)
            mt_hash_budget_refund(&hash_budget, peer->uid, charged - read_bytes, now_ms);
        if (hashed.error == MT_ERR_TOO_LONG) {
            peer->exe_sha256_problem = "its size changed while the agent hashed it";
            outcome = MT_ATTEST_HASH_FAILED;
            goto out;
        }
        if (!mt_result_is_ok(hashed)) {
            /* EIO, no memory for the buffer: nothing about the file is settled. */
            peer->exe_sha256_problem = "reading it failed for now";
            outcome = MT_ATTEST_HASH_TEMPORARY;
            goto out;
        }
        /* A write during the hash moves ctime: such a digest names no version of the file. */
        if (fstat(fd, &after) != 0) {
            peer->exe_sha256_problem = "the agent cannot stat it for now";
            outcome = MT_ATTEST_HASH_TEMPORARY;
            goto out;
        }
        if (after.st_size != file.st_size || read_bytes != charged ||
            !same_time(after.st_ctim, file.st_ctim)) {
            peer->exe_sha256_problem = "it changed while the agent hashed it";
            outcome = MT_ATTEST_HASH_FAILED;
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

/*
 * The device and inode of the file the magic link (/proc/<pid>/exe) leads to. The link is
 * followed without a lookup in the file's filesystem, and AT_STATX_DONT_SYNC makes FUSE answer
 * from what the kernel already holds instead of asking its daemon (which may never answer).
 */
static int stat_exe_link(const char *link, dev_t *device, ino_t *inode)
{
    struct statx file;
    if (statx(AT_FDCWD, link, AT_STATX_DONT_SYNC, STATX_INO, &file) != 0)
        return -1;
    *device = makedev(file.stx_dev_major, file.stx_dev_minor);
    *inode = (ino_t)file.stx_ino;
    return 0;
}

/* True when pid's mount namespace is not the agent's; false when it cannot tell. */
static bool in_other_mount_namespace(pid_t pid)
{
    char path[64];
    struct stat theirs;
    static struct stat ours;
    static bool have_ours;
    snprintf(path, sizeof(path), "/proc/%ld/ns/mnt", (long)pid);
    /* The agent's own namespace does not change while it runs: one stat of it is enough. */
    if (!have_ours)
        have_ours = stat("/proc/self/ns/mnt", &ours) == 0;
    if (!have_ours || stat(path, &theirs) != 0)
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
    if (length < 0 && (errno == EACCES || errno == EPERM))
        mt_log_limited(MT_LOG_WARN,
                       "cannot read %s of pid %ld uid %u: %s; rules naming exe or sha256 cannot "
                       "match it: give the agent CAP_SYS_PTRACE (in Kubernetes: hostPID and the "
                       "SYS_PTRACE capability)",
                       link, (long)pid, (unsigned)peer->uid, strerror(errno));
    if (length <= 0 || (size_t)length >= sizeof(peer->exe)) {
        peer->exe[0] = '\0';
        return false;
    }
    peer->exe[length] = '\0';
    /* stat follows the magic link to the file being run, not to what its name is for us. */
    if (stat_exe_link(link, &peer->exe_device, &peer->exe_inode) != 0)
        return false;
    peer->other_mount_namespace = in_other_mount_namespace(pid);
    return true;
}

/*
 * True while the process behind pidfd has not exited. EPERM (an agent without the right to signal
 * the caller) still proves the process exists; ESRCH means it is gone.
 */
bool mt_attest_pidfd_is_alive(int pidfd)
{
    if (mt_sys_pidfd_send_signal(pidfd, 0) == 0)
        return true;
    return errno == EPERM;
}

/* Field 22 of /proc/<pid>/stat, parsed by the one parser the metrics files are named with. */
static bool read_start_time(pid_t pid, unsigned long long *start_time)
{
    char path[64];
    char text[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    /* open, one read, close: the kernel makes the whole line in one read of a buffer this size
     * (the command name is at most 64 bytes), and stdio would add an fstat and a second read. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t length = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (length <= 0)
        return false;
    text[length] = '\0';
    return mt_metrics_stat_start_time(text, start_time);
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
    /* ESRCH: the caller has already exited, so /proc/<pid> may be someone else's. errno is
     * kept for callers that tell that from the agent's own shortages (EMFILE, ENOMEM). */
    int error = errno;
    mt_log_debug("SO_PEERPIDFD for pid %ld: %s", (long)pid, strerror(error));
    errno = error;
    return false;
}

/*
 * A pidfd of its own for peer: the subject's (a copy of the one its supervisor sent, so that
 * both paths close what they hold), else the socket's caller's (hold_caller).
 */
static bool hold_peer(int fd, const struct mt_attest_peer *peer, int *pidfd)
{
    if (peer->supervisor_pid == 0)
        return hold_caller(fd, peer->pid, pidfd);
    *pidfd = fcntl(peer->subject_pidfd, F_DUPFD_CLOEXEC, 0);
    if (*pidfd < 0)
        return false;
    if (mt_attest_pidfd_is_alive(*pidfd))
        return true;
    close(*pidfd);
    *pidfd = -1;
    errno = ESRCH;
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
        return mt_attest_pidfd_is_alive(pidfd);
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
    return mt_attest_identify_credentials(fd, &credentials, peer);
}

MT_RESULT mt_attest_identify_credentials(int fd, const struct ucred *credentials,
                                         struct mt_attest_peer *peer)
{
    MT_ENSURE_REF(credentials);
    MT_ENSURE_REF(peer);
    memset(peer, 0, sizeof(*peer));
    peer->pid = credentials->pid;
    peer->uid = credentials->uid;
    peer->gid = credentials->gid;
    if (peer->pid <= 0) {
        peer->exe_sha256_problem = "its pid is not visible to the agent (another pid namespace)";
        mt_log_limited(MT_LOG_WARN,
                       "a caller of uid %u is in a pid namespace the agent cannot see: rules "
                       "naming exe, sha256 or pods cannot match it; run the agent in the host's "
                       "pid namespace (in Kubernetes: hostPID)",
                       (unsigned)peer->uid);
        return MT_OK_RESULT;
    }
    int pidfd = -1;
    if (!hold_caller(fd, peer->pid, &pidfd))
        return MT_OK_RESULT;
    mt_attest_identify_held(pidfd, peer);
    if (pidfd >= 0)
        close(pidfd);
    return MT_OK_RESULT;
}

void mt_attest_identify_held(int pidfd, struct mt_attest_peer *peer)
{
    unsigned long long start_time = 0;
    bool has_start_time = read_start_time(peer->pid, &start_time);
    bool has_exe = has_start_time && read_exe(peer->pid, peer);
    bool tied = has_start_time && still_the_caller(pidfd, peer, start_time);
    peer->has_start_time = tied;
    peer->start_time = tied ? start_time : 0;
    peer->has_exe = tied && has_exe;
    if (!peer->has_exe) {
        peer->exe[0] = '\0';
        peer->exe_device = 0;
        peer->exe_inode = 0;
    }
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
    if (!hold_peer(fd, peer, &pidfd)) {
        /* Only ESRCH says the caller is gone; EMFILE, ENFILE, ENOMEM are the agent's. */
        if (errno != ESRCH) {
            peer->exe_sha256_problem = "the agent cannot hold the caller for now";
            peer->exe_sha256_later = true;
            return MT_ATTEST_HASH_TEMPORARY;
        }
        peer->exe_sha256_problem = "the caller exited before its executable was hashed";
        return MT_ATTEST_HASH_FAILED;
    }
    char link[64];
    snprintf(link, sizeof(link), "/proc/%ld/exe", (long)peer->pid);
    enum mt_attest_hash_outcome outcome = hash_exe(link, now_ms, peer);
    peer->exe_sha256_later =
        outcome == MT_ATTEST_HASH_TEMPORARY || outcome == MT_ATTEST_HASH_OVER_BUDGET;
    if (peer->has_exe_sha256) {
        /* The digest is of the file attestation named; the caller must still be running it
         * (an execve since would leave the pid alive with another file behind the link). */
        dev_t device = 0;
        ino_t inode = 0;
        if (stat_exe_link(link, &device, &inode) != 0 || device != peer->exe_device ||
            inode != peer->exe_inode) {
            peer->has_exe_sha256 = false;
            peer->exe_sha256_problem = "the caller no longer runs the file that was hashed";
            mt_log_limited(MT_LOG_INFO,
                           "pid %ld uid %u no longer runs %s after it was hashed: no sha256 "
                           "rule matches this request",
                           (long)peer->pid, (unsigned)peer->uid, peer->exe);
            if (outcome == MT_ATTEST_HASH_CACHED)
                outcome = MT_ATTEST_HASH_FAILED;
        }
    }
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

bool mt_attest_read_cgroup(int fd, const struct mt_attest_peer *peer, char *text, size_t capacity,
                           size_t *length, const char **problem)
{
    *length = 0;
    if (peer->pid <= 0 || !peer->has_start_time) {
        *problem = "its pid is not visible to the agent (run the agent in the host's pid "
                   "namespace: hostPID)";
        return false;
    }
    int pidfd = -1;
    if (!hold_peer(fd, peer, &pidfd)) {
        *problem = "the caller exited before its cgroup was read";
        return false;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/cgroup", (long)peer->pid);
    bool read_whole = false;
    int file = open(path, O_RDONLY | O_CLOEXEC);
    if (file >= 0) {
        ssize_t got;
        while (*length < capacity && (got = read(file, text + *length, capacity - *length)) != 0) {
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0)
                break;
            *length += (size_t)got;
        }
        read_whole = *length < capacity;
        close(file);
    } else {
        *problem = caller_gone(errno) ? "the caller exited before its cgroup was read"
                                      : "the agent cannot read /proc/<pid>/cgroup (give it "
                                        "CAP_SYS_PTRACE and the host's pid namespace)";
    }
    bool tied = file >= 0 && still_the_caller(pidfd, peer, peer->start_time);
    if (pidfd >= 0)
        close(pidfd);
    if (file >= 0 && !read_whole)
        *problem = "its /proc/<pid>/cgroup is larger than the agent reads";
    else if (file >= 0 && !tied)
        *problem = "the caller exited while its cgroup was read";
    return file >= 0 && read_whole && tied;
}
