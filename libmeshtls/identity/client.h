/*
 * The workload side of the agent protocol: obtain an X.509-SVID for this process.
 *
 * The private key is generated here, in the workload's memory, and never leaves the process: the
 * agent receives only a CSR and decides the identity itself from what the kernel tells it about
 * the caller. The result is an immutable, reference-counted struct mt_identity; rotation builds
 * a new one and swaps it in, so live connections keep the identity they were opened with.
 *
 * All I/O is raw system calls on a Unix socket (util/sys.h), bounded by a timeout.
 */
#ifndef MT_IDENTITY_CLIENT_H
#define MT_IDENTITY_CLIENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "../tls/x509.h"
#include "../util/text.h"
#include "proto.h"
#include "../util/spiffe.h"

struct mt_identity_der {
    uint8_t *data;
    size_t length;
};

struct mt_identity {
    atomic_uint references;
    char spiffe_id[MT_SPIFFE_ID_MAX + 1];
    char trust_domain[MT_SPIFFE_TRUST_DOMAIN_MAX + 1];
    struct mt_identity_der key;                       /* SEC1 DER; wiped on free */
    struct mt_identity_der chain[MT_PROTO_MAX_CERTS]; /* leaf first */
    size_t chain_length;
    struct mt_identity_der anchors[MT_PROTO_MAX_ANCHORS]; /* the trust bundle */
    size_t anchor_count;
    time_t not_after;  /* the leaf's expiry */
    time_t refresh_at; /* ~70 % of the lifetime: renew lazily past this */
};

/*
 * Generates a key, sends a CSR to the agent at socket_path and builds an identity from the reply,
 * checking that the leaf is a valid X.509-SVID for the key just generated. message receives a
 * one-line explanation on failure (e.g. "agent at /run/meshtls/agent.sock unreachable: No such
 * file or directory (is meshtls-agent running?)").
 *
 * Every exchange first checks that the socket is served by agent_uid (peer.h) and sends nothing
 * to anyone else: MT_ERR_AGENT_UNTRUSTED, message "refusing the agent at ...".
 */
MT_RESULT mt_identity_fetch(const char *socket_path, uid_t agent_uid, int timeout_ms,
                            struct mt_identity **identity, struct mt_text *reason);

/*
 * The same, in two steps that never wait longer than asked: start generates the key and sends
 * the CSR; poll advances the exchange (wait_ms 0: only what is possible now) and returns OK with
 * *identity once the reply is in, MT_ERR_WOULD_BLOCK while it is still under way, or the failure
 * with message filled in. The request holds an open socket: free it (also after fork, in the
 * child, whose copy must not race its parent for the reply).
 */
struct mt_identity_request;
MT_RESULT mt_identity_request_start(const char *socket_path, uid_t agent_uid, int timeout_ms,
                                    struct mt_identity_request **request, struct mt_text *reason);
MT_RESULT mt_identity_request_poll(struct mt_identity_request *request, int wait_ms,
                                   struct mt_identity **identity, struct mt_text *reason);
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

struct mt_identity *mt_identity_acquire(struct mt_identity *identity);
/* Drops one reference; the last one wipes the key and frees everything. NULL is allowed. */
void mt_identity_release(struct mt_identity *identity);

#endif
