/*
 * Attestation of a subject: the process a caller names by a pidfd (identity/proto.h, SUBJECT),
 * attested instead of the caller. A supervisor (`meshtls run` for a static or Go program) holds
 * the identity of the program it runs, not its own; nothing else may obtain another process's
 * identity this way.
 *
 *   the pidfd names                               answer
 *   the caller itself                             MT_ATTEST_SUBJECT_IS_CALLER: attest the caller
 *   a live child of the caller, same uid and gid  MT_ATTEST_SUBJECT_OK: attested like a caller
 *     (real, effective, saved)                      (attest.h), held by the pidfd
 *   a process that is not the caller's child      MT_ATTEST_SUBJECT_REFUSED
 *     (sibling, parent, grandchild, reparented)
 *   a child of another uid or gid (setuid exec)   MT_ATTEST_SUBJECT_REFUSED
 *   a zombie, a reaped process                    MT_ATTEST_SUBJECT_REFUSED
 *   a process outside the agent's pid namespace   MT_ATTEST_SUBJECT_REFUSED
 *   a thread's pidfd                              MT_ATTEST_SUBJECT_REFUSED
 *   any descriptor that is not a pidfd            MT_ATTEST_SUBJECT_NOT_PIDFD
 *
 * Race-safe against pid reuse the way attest.c is: everything read from /proc/<pid> counts only
 * when the pidfd's process is still alive afterwards, since a live process keeps its pid.
 */
#ifndef MT_AGENT_ATTEST_SUBJECT_H
#define MT_AGENT_ATTEST_SUBJECT_H

#include <stdbool.h>
#include <sys/types.h>

#include "../util/text.h"
#include "attest.h"

/* What /proc/<pid>/status says that a subject is judged by. */
struct mt_attest_status {
    char state;   /* 'R', 'S', 'Z'...; '\0' when missing */
    pid_t tgid;   /* the process the task belongs to */
    pid_t ppid;   /* its parent, in the pid namespace of the /proc it was read from */
    uid_t uid[4]; /* real, effective, saved, filesystem */
    gid_t gid[4];
    bool has_tgid, has_ppid, has_uid, has_gid;
};

/* Parses the text of /proc/<pid>/status; false when a needed line is missing or malformed. */
bool mt_attest_status_parse(const char *text, struct mt_attest_status *status);

/*
 * The "Pid:" line of /proc/self/fdinfo/<fd> text: false when there is none (not a pidfd). The
 * kernel writes -1 for a process that was reaped and 0 for one outside our pid namespace.
 */
bool mt_attest_fdinfo_pid(const char *text, long *pid);

/*
 * True when caller (its pid, uid and gid from SO_PEERCRED) may NOT be attested as subject pid
 * whose status this is, with reason saying why. Pure: the tests call it with made-up statuses.
 */
bool mt_attest_subject_is_refused(pid_t caller_pid, uid_t caller_uid, gid_t caller_gid,
                                  pid_t subject_pid, const struct mt_attest_status *status,
                                  struct mt_text *reason);

enum mt_attest_subject_outcome {
    MT_ATTEST_SUBJECT_OK,
    MT_ATTEST_SUBJECT_IS_CALLER,
    MT_ATTEST_SUBJECT_REFUSED,
    MT_ATTEST_SUBJECT_NOT_PIDFD,
};

/*
 * Attests the process behind pidfd for caller (a peer from mt_attest_identify). On
 * MT_ATTEST_SUBJECT_OK, *subject is filled as identify fills a caller's, with supervisor_pid =
 * caller->pid and subject_pidfd = pidfd (which must stay open while subject is used). Otherwise
 * reason says why, and subject->pid is the subject's pid when it was learned (else 0).
 */
enum mt_attest_subject_outcome mt_attest_identify_subject(const struct mt_attest_peer *caller,
                                                          int pidfd, struct mt_attest_peer *subject,
                                                          struct mt_text *reason);

/*
 * Asked again just before an answer goes out: the subject is still alive, not a zombie, still
 * the caller's child with the caller's credentials. False with reason otherwise.
 */
bool mt_attest_subject_still_there(const struct mt_attest_peer *subject, struct mt_text *reason);

#endif
