/*
 * Process-wide state of an intercepted process: its configuration and the TLS context (the
 * workload identity) new connections are opened with.
 *
 * Initialised lazily on the first connection that needs a decision, never in a constructor. The
 * identity is fetched from the agent on first use and renewed lazily by the first connection past
 * the identity's refresh time; no background thread is started in the application's process.
 * While the agent is unreachable, the cached identity keeps serving until it expires; after that,
 * connections that policy says must be mTLS fail, loudly, and never fall back to plaintext.
 */
#ifndef MT_CORE_RUNTIME_H
#define MT_CORE_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>

#include "../config/config.h"
#include "../tls/tls.h"
#include "../util/text.h"

/* The configuration in force (defaults when the config failed to load). */
const struct mt_config *mt_runtime_config(void);

/* True when the configuration could not be read: every TCP connection is then refused. */
bool mt_runtime_config_failed(const char **message);

/*
 * The context to open a new mTLS connection with, with a reference for the caller; NULL when no
 * valid identity can be had, with the reason in reason (NULL allowed).
 */
struct mt_tls_context *mt_runtime_context(struct mt_text *reason);

/*
 * mt_runtime_context for a caller that must not wait (a non-blocking socket of the direct-link
 * API): the agent is asked, or its reply taken, without waiting. NULL when no valid identity is
 * at hand now, with *pending true while one is awaited (a request is under way, or the first
 * identity's agent_wait_ms has not passed): asking again later may succeed.
 */
struct mt_tls_context *mt_runtime_context_now(struct mt_text *reason, bool *pending);

/* In a fork child: reinitialise the context lock, which another thread may have held. */
void mt_runtime_after_fork_child(void);

#endif
