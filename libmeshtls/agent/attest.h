/*
 * Attestation: what the kernel says about the process at the other end of a Unix socket.
 *
 * The uid, gid and pid come from SO_PEERCRED (fixed when the peer called connect()); the
 * executable from /proc/<pid>/exe. Nothing the peer sends is consulted. When the executable
 * cannot be tied to the process that connected (it exited, its pid may have been reused, /proc is
 * not readable), has_exe is false and rules that name an executable cannot match.
 */
#ifndef MT_AGENT_ATTEST_H
#define MT_AGENT_ATTEST_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "../util/result.h"

struct mt_attest_peer {
    pid_t pid; /* 0 when the peer is in a pid namespace the agent cannot see */
    uid_t uid;
    gid_t gid;
    bool has_exe;
    char exe[PATH_MAX];
};

/* Identifies the peer of the connected Unix socket fd. Fails only when SO_PEERCRED fails. */
MT_RESULT mt_attest_identify(int fd, struct mt_attest_peer *peer);

/*
 * The start time of pid (field 22 of /proc/<pid>/stat, clock ticks after boot): with the pid, it
 * names one process for its whole life even after the pid is reused. False when pid is gone.
 */
bool mt_attest_start_time(pid_t pid, unsigned long long *start_time);

#endif
