/*
 * Outbound mode "auto" in a process: the node agent's mesh membership (policy/membership.h),
 * mapped read-only, and what this process has seen meshed.
 *
 * The set is asked of the agent at the first "auto" decision, waiting up to agent_wait_ms for an
 * agent that is not there yet, and asked again only when the set in hand says a newer one exists
 * (one memory load; an agent also marks its set so when it stops) or MT_MEMBERS_REFRESH_MS after
 * it was had (an agent that crashed could not mark it), never more than once per
 * MT_MEMBERS_RETRY_MS while the agent does not answer. An agent that cannot be reached leaves the
 * last set in force, never an empty one.
 *
 * Each destination (address, port) decided mTLS by membership is remembered for the life of the
 * process (and its fork children), and stays mTLS until a set the agent published lists it as
 * removed (mt_policy_decide_auto). No set at all: every destination not remembered is plaintext,
 * with one warning. A set the agent flags incomplete (a source, such as the Kubernetes API server,
 * not read yet) is asked for again every MT_MEMBERS_RETRY_MS, and the first destination it does
 * not list waits for it to complete, once per process and for at most agent_wait_ms; after that,
 * unlisted destinations are plaintext, with one warning. Each plaintext decision is logged at info
 * and counted (mt_metrics_outbound_plain).
 */
#ifndef MT_CORE_MEMBERS_H
#define MT_CORE_MEMBERS_H

#include <sys/socket.h>

#include "../config/config.h"
#include "../policy/policy.h"

#define MT_MEMBERS_REFRESH_MS 30000
#define MT_MEMBERS_RETRY_MS 1000
#define MT_MEMBERS_REMEMBERED_MAX 4096

/*
 * Turns decision (mode MT_OUTBOUND_AUTO, from mt_policy_decide_outbound for destination) into
 * mtls, with the membership entry's identity pattern as the expected server identity when it has
 * one, or plain, logged at info. Any other mode is left as it is.
 */
void mt_members_decide(const struct mt_config *config, const struct sockaddr_storage *destination,
                       struct mt_outbound_decision *decision);

/* In a fork child: reinitialise the lock, which another thread may have held. */
void mt_members_after_fork_child(void);

#endif
