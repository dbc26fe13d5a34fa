/*
 * Policy: which connections become mTLS, which stay plain, and which peers may take part. Pure
 * functions over the config and the addresses, no I/O, so every decision is unit-testable and
 * the same in every process.
 *
 * The decision is taken once, at connect() or accept(), and never changes for that connection.
 * The order is always: skip_ports, then the rules in the order written (first match wins), then
 * the loopback / default mode; inbound, the probe exception last (see mt_policy_decide_inbound).
 */
#ifndef MT_POLICY_POLICY_H
#define MT_POLICY_POLICY_H

#include <stdbool.h>
#include <sys/socket.h>

#include "../config/config.h"
#include "membership.h"

struct mt_outbound_decision {
    /* MT_OUTBOUND_AUTO: membership decides (mt_policy_decide_auto) before anything acts on it. */
    enum mt_outbound_mode mode;
    /*
     * The pattern the server's SPIFFE ID must match (mt_policy_identity_matches), or NULL: any
     * ID of the trust domain. Points into the config; only ever set with MT_OUTBOUND_MTLS.
     */
    const char *expected_identity;
    int rule;           /* index in config->outbound.rules, -1 when loopback/default decided */
    bool skipped;       /* destination port in skip_ports: never touched (mode is plain) */
    bool by_membership; /* mode auto, settled by the mesh membership (core/members.h) */
};

struct mt_inbound_decision {
    enum mt_inbound_mode mode;
    /* The rule that matched the local port (allow list, opaque), NULL for loopback/default. */
    const struct mt_inbound_rule *rule;
    int rule_index; /* index in config->inbound.rules, -1 when no rule matched */
    bool opaque;    /* the rule's opaque flag; false without a rule */
    bool skipped;   /* local port in skip_ports: never touched (mode is plain) */
    bool probe;     /* a probe source on a probe port: mode made permissive (opaque: plain) */
};

/*
 * Outbound: the decision for a connection to destination. A missing input gives mtls (never
 * plaintext by accident); a family other than IPv4/IPv6 gives plain.
 */
struct mt_outbound_decision mt_policy_decide_outbound(const struct mt_config *config,
                                                      const struct sockaddr_storage *destination);

/*
 * Inbound: the decision for a connection accepted on local from peer. The local port selects
 * the rule; without one, whether the peer is on loopback selects inbound.loopback or
 * inbound.default. A missing input gives strict; a peer family other than IP gives plain.
 *
 * Probes: when the local port is one of inbound.probe_ports and the peer one of
 * inbound.probe_sources (both lists non-empty), a mode that is not plain becomes permissive
 * (probe set): the kubelet's plaintext probe passes, and a mesh ClientHello from the same address
 * is still mTLS under the same rule's allow list. On an opaque port nothing may be waited for,
 * so the probe's connection is plain. Only the pair counts: a probe source on another port, or
 * another peer on a probe port, is decided as if there were no probe lists. Inbound only.
 */
struct mt_inbound_decision mt_policy_decide_inbound(const struct mt_config *config,
                                                    const struct sockaddr_storage *local,
                                                    const struct sockaddr_storage *peer);

/*
 * What mode "auto" means for one destination, from what the process knows of the mesh
 * membership (policy/membership.h):
 *
 *     membership set   lookup    once meshed here  →  mode    remember / forget
 *     --------------   -------   ----------------     -----   -----------------
 *     any              MEMBER    any                   mtls    remember
 *     any              REMOVED   any                   plain   forget
 *     any or none      ABSENT    yes                   mtls    -
 *     any or none      ABSENT    no                    plain   -
 *
 * A destination is never downgraded because it is merely missing (an agent that lost its
 * source, a set not yet had): only a removal the agent published makes it plaintext again.
 */
struct mt_auto_decision {
    enum mt_outbound_mode mode; /* MT_OUTBOUND_MTLS or MT_OUTBOUND_PLAIN */
    bool remember;              /* the destination is now known meshed in this process */
    bool forget;                /* the destination left the mesh: no longer known meshed */
};
struct mt_auto_decision mt_policy_decide_auto(enum mt_membership_verdict verdict, bool was_meshed);

// True when spiffe_id (a valid SPIFFE ID) matches pattern: equal to it, or, for a pattern ending
// in "/*", below it by one or more path segments. "spiffe://td/ns/a/*" matches
// "spiffe://td/ns/a/x" and "spiffe://td/ns/a/x/y", not "spiffe://td/ns/a" nor "spiffe://td/ns/ab".
// An invalid pattern or ID, or NULL, never matches.
bool mt_policy_identity_matches(const char *pattern, const char *spiffe_id);

/*
 * True when the peer spiffe_id may use the connection decision was made for: the rule has no
 * allow list, or one of its patterns matches. Trust-domain membership is checked elsewhere.
 */
bool mt_policy_inbound_allows(const struct mt_config *config,
                              const struct mt_inbound_decision *decision, const char *spiffe_id);

/* True when the server's spiffe_id is what decision expects (always, without a pattern). */
bool mt_policy_outbound_allows(const struct mt_outbound_decision *decision, const char *spiffe_id);

#endif
