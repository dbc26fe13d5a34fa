/*
 * Attestation: what the kernel says about the process at the other end of a Unix socket.
 *
 * The uid, gid and pid come from SO_PEERCRED (fixed when the peer called connect()); the
 * executable from /proc/<pid>/exe, twice over: readlink gives the name the file has in the
 * caller's mount namespace (which the caller may have built itself: `unshare -Urm` and a bind
 * mount put any program at any path), stat and open give the file itself, which the magic link
 * reaches whatever namespace the caller is in. Rules match the file (agent_config.h); the name is
 * for logs and globs. Nothing the peer sends is consulted. When the executable cannot be tied to
 * the process that connected (it exited, its pid may have been reused, /proc is not readable),
 * has_exe is false and rules that name an executable cannot match. The executable's SHA-256 is
 * computed only when a rule needs it, and within a budget per uid (hash_budget.h).
 */
#ifndef MT_AGENT_ATTEST_H
#define MT_AGENT_ATTEST_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../tls/digest.h"
#include "../util/result.h"

struct ucred; /* <sys/socket.h> */

/* Executables larger than this are not hashed: one hash must not hold the agent for long. */
#define MT_ATTEST_SHA256_MAX_BYTES (128u * 1024u * 1024u)
/* Hashes remembered by file (device, inode, size, mtime, ctime), so a program is hashed once. */
#define MT_ATTEST_SHA256_CACHE 64

struct mt_attest_peer {
    pid_t pid; /* 0 when the peer is in a pid namespace the agent cannot see */
    uid_t uid;
    gid_t gid;
    /* The start time of the process that connected (clock ticks after boot, field 22 of
     * /proc/<pid>/stat), read while it was alive: with the pid it names that process. */
    bool has_start_time;
    unsigned long long start_time;
    bool has_exe;
    char exe[PATH_MAX]; /* the executable's name in the caller's mount namespace */
    dev_t exe_device;   /* the executable itself, as the agent sees it (valid with has_exe) */
    ino_t exe_inode;
    bool other_mount_namespace; /* the caller's mount namespace is not the agent's */
    bool sha256_attempted;      /* mt_attest_exe_sha256 ran: what follows is final */
    bool has_exe_sha256;
    uint8_t exe_sha256[MT_DIGEST_SHA256_SIZE];
    const char *exe_sha256_problem; /* why has_exe_sha256 is false after an attempt */
    bool exe_sha256_later; /* that problem is the agent's, for now: no rule may treat it as final */
    /* A subject (attest_subject.h): the process a supervising caller named by a pidfd. */
    pid_t supervisor_pid; /* the caller that supervises it; 0 when the peer is the caller */
    int subject_pidfd;    /* holds the subject (not owned here); valid when supervisor_pid != 0 */
};

/*
 * Identifies the peer of the connected Unix socket fd: credentials, start time and executable,
 * each tied to the process that connected. No hashing (see mt_attest_exe_sha256). Fails only
 * when SO_PEERCRED fails.
 */
MT_RESULT mt_attest_identify(int fd, struct mt_attest_peer *peer);
/* The same with fd's SO_PEERCRED read already (the kernel fixes them at connect). */
MT_RESULT mt_attest_identify_credentials(int fd, const struct ucred *credentials,
                                         struct mt_attest_peer *peer);

/*
 * Fills in the start time and executable of peer->pid (pid, uid and gid already set), each tied
 * to the process that pidfd holds (-1: none, then by its start time and uid), as identify does
 * for a caller. Subjects (attest_subject.c) are attested by this same code.
 */
void mt_attest_identify_held(int pidfd, struct mt_attest_peer *peer);

/* True while the process behind pidfd has not been reaped (EPERM still proves it exists). */
bool mt_attest_pidfd_is_alive(int pidfd);

/* What mt_attest_exe_sha256 did. */
enum mt_attest_hash_outcome {
    MT_ATTEST_HASH_CACHED,      /* the digest was remembered: no bytes read */
    MT_ATTEST_HASH_COMPUTED,    /* the file was read and hashed (see has_exe_sha256) */
    MT_ATTEST_HASH_OVER_BUDGET, /* not hashed: the caller's uid or the node spent its budget */
    MT_ATTEST_HASH_TEMPORARY,   /* not hashed for a passing reason of the agent's (out of file
                                 * descriptors or memory, EIO): exe_sha256_problem says which */
    MT_ATTEST_HASH_FAILED,      /* no digest, for good for this file or caller: too large, on
                                 * FUSE, changed since attestation, the caller gone */
    MT_ATTEST_HASH_ALREADY,     /* an earlier call settled it */
};

/*
 * The SHA-256 of the executable identify found for peer (the peer of fd), computed at most once
 * per peer, from the cache when the file is unchanged, else charged to the uid's hashing budget
 * (hash_budget.h) at now_ms. The digest counts only when the process that connected is still
 * alive afterwards and still runs that very file. Sets has_exe_sha256, or exe_sha256_problem
 * (and exe_sha256_later for MT_ATTEST_HASH_OVER_BUDGET and MT_ATTEST_HASH_TEMPORARY). Files on
 * FUSE are never opened.
 */
enum mt_attest_hash_outcome mt_attest_exe_sha256(int fd, long long now_ms,
                                                 struct mt_attest_peer *peer);

/*
 * Whether the agent refuses to read files on a filesystem of this statfs f_type (FUSE: its
 * daemon may never answer, and the agent has one event loop), or of this mountinfo type name.
 */
bool mt_attest_fs_magic_is_unread(long long f_type);
bool mt_attest_fs_name_is_unread(const char *fstype);

/* How much of /proc/<pid>/cgroup is read: one line per v1 hierarchy, each a path. */
#define MT_ATTEST_CGROUP_MAX 8192

/*
 * The text of the peer's /proc/<pid>/cgroup (for pod_cgroup.h), tied to the process attestation
 * named (its pidfd still alive after the read, or its start time and uid unchanged). False with
 * *problem saying why (the caller exited, /proc is not readable: the agent needs the host's pid
 * namespace).
 */
bool mt_attest_read_cgroup(int fd, const struct mt_attest_peer *peer, char *text, size_t capacity,
                           size_t *length, const char **problem);

/*
 * The start time of pid (field 22 of /proc/<pid>/stat, clock ticks after boot): with the pid, it
 * names one process for its whole life even after the pid is reused. False when pid is gone.
 */
bool mt_attest_start_time(pid_t pid, unsigned long long *start_time);

#endif
