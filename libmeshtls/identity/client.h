/*
 * The workload side of the agent protocol: obtain an X.509-SVID for this process.
 *
 * The private key is generated here, in the workload's memory, and never leaves the process: the
 * agent receives only a CSR and decides the identity itself from what the kernel tells it about
 * the caller. The result is immutable, reference-counted credentials (tls/credentials.h);
 * rotation builds new ones and swaps them in, so live connections keep the identity they were
 * opened with.
 *
 * All I/O is raw system calls on a Unix socket (util/sys.h), bounded by a timeout.
 */
#ifndef MT_IDENTITY_CLIENT_H
#define MT_IDENTITY_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../tls/credentials.h"
#include "../util/text.h"

/*
 * The process every later identity and metrics-file request of this process is made for, named
 * by a pidfd (pidfd_open(2)) of it: a supervisor that runs a program no preload can enter
 * (`meshtls run` for a static or Go program) sets its child once it has forked it and before
 * its first request, and then holds the child's identity and metrics file, not its own. The
 * agent grants it only for a live child of this process under the same uid and gid
 * (agent/attest_subject.h); anything else is refused, never answered with this process's
 * identity. -1 (the default) makes requests for this process again.
 *
 * The descriptor stays the caller's: keep it open while it is set (each request sends a copy).
 * Process-wide and thread-safe; a child of fork inherits the setting, so a forked child that
 * asks for itself sets -1 first. Requests already started keep the subject they started with.
 */
void mt_identity_set_subject(int pidfd);
/* The pidfd set by mt_identity_set_subject, or -1. */
int mt_identity_subject(void);
/*
 * Opens a pidfd of child (pidfd_open(child, 0), close-on-exec) and sets it as the subject: the
 * one call a supervisor makes after fork. *pidfd is the descriptor, the caller's to close after
 * mt_identity_set_subject(-1). reason says why on failure (ENOSYS: a kernel before 5.3).
 */
MT_RESULT mt_identity_supervise(pid_t child, int *pidfd, struct mt_text *reason);

/*
 * Generates a key, sends a CSR to the agent at socket_path and builds credentials from the reply,
 * checking that the leaf is a valid X.509-SVID for the key just generated. reason receives a
 * one-line explanation on failure (e.g. "agent at /run/meshtls/agent.sock unreachable: No such
 * file or directory (is meshtls-agent running?)").
 *
 * Every exchange first checks that the socket is served by agent_uid (peer.h) and sends nothing
 * to anyone else: MT_ERR_AGENT_UNTRUSTED, reason "refusing the agent at ...".
 */
MT_RESULT mt_identity_fetch(const char *socket_path, uid_t agent_uid, int timeout_ms,
                            struct mt_credentials **credentials, struct mt_text *reason);

/*
 * The same, in two steps that never wait longer than asked: start generates the key and sends
 * the CSR; poll advances the exchange (wait_ms 0: only what is possible now) and returns OK with
 * *credentials once the reply is in, MT_ERR_WOULD_BLOCK while it is still under way, or the
 * failure with reason filled in. The request holds an open socket: free it (also after fork, in the
 * child, whose copy must not race its parent for the reply).
 */
struct mt_identity_request;
MT_RESULT mt_identity_request_start(const char *socket_path, uid_t agent_uid, int timeout_ms,
                                    struct mt_identity_request **request, struct mt_text *reason);
MT_RESULT mt_identity_request_poll(struct mt_identity_request *request, int wait_ms,
                                   struct mt_credentials **credentials, struct mt_text *reason);
void mt_identity_request_free(struct mt_identity_request *request);

/* Asks the agent which SPIFFE ID it would issue to this process (no key, no certificate). */
MT_RESULT mt_identity_query_id(const char *socket_path, uid_t agent_uid, int timeout_ms,
                               char *spiffe_id, size_t capacity, struct mt_text *reason);

/*
 * Asks the agent for this process's metrics file (metrics/layout.h): on success *fd is the file,
 * open for reading and writing, created and named by the agent after the pid and start time it
 * attested for this process. A child of fork asks again for its own.
 */
MT_RESULT mt_identity_metrics_file(const char *socket_path, uid_t agent_uid, int timeout_ms,
                                   int *fd, struct mt_text *reason);

/*
 * The same, in two steps, so that it can go out beside the first identity request instead of
 * after it: start connects, checks the agent (peer.h) and sends what the socket takes now, never
 * waiting; poll returns OK with *fd once the reply is in, MT_ERR_WOULD_BLOCK while it is still
 * under way after wait_ms, or the failure with reason filled in. Free the request in a fork child
 * too: the reply is its parent's.
 */
struct mt_identity_metrics_request;
MT_RESULT mt_identity_metrics_request_start(const char *socket_path, uid_t agent_uid,
                                            int timeout_ms,
                                            struct mt_identity_metrics_request **request,
                                            struct mt_text *reason);
MT_RESULT mt_identity_metrics_request_poll(struct mt_identity_metrics_request *request, int wait_ms,
                                           int *fd, struct mt_text *reason);
void mt_identity_metrics_request_free(struct mt_identity_metrics_request *request);

/*
 * Asks the agent for the node's mesh membership set (policy/membership.h): on success *fd is a
 * sealed memfd open read-only and *generation the set's generation. An agent without membership,
 * or one older than the request, answers with an error (MT_ERR_AGENT_REFUSED and the like).
 */
MT_RESULT mt_identity_membership_file(const char *socket_path, uid_t agent_uid, int timeout_ms,
                                      int *fd, uint64_t *generation, struct mt_text *reason);

#endif
