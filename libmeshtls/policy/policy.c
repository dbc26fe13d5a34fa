/*
 * Policy decisions: which mode a new TCP connection gets, from the config and its addresses, and
 * whether a peer's SPIFFE ID is one the matching rule accepts.
 *
 * Owns the meaning of skip_ports, of the outbound and inbound rules (first match wins), of the
 * probe exception, of CIDR and port-range matching and of identity patterns. Pure functions: no
 * I/O, no state, no logging, no allocation. They must never choose plaintext because an input is
 * missing; only a configured plain mode, a skipped port, a probe on an opaque port, a family that
 * is not IP at all, or mode auto for a destination membership does not know meshed yields plain.
 */
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>

#include "../util/spiffe.h"
#include "../util/addr.h"
#include "policy.h"

static bool is_inet(const struct sockaddr_storage *address)
{
    return address->ss_family == AF_INET || address->ss_family == AF_INET6;
}

static bool ranges_contain(const struct mt_port_range *ranges, unsigned count, uint16_t port)
{
    for (unsigned i = 0; i < count; i++) {
        if (port >= ranges[i].first && port <= ranges[i].last)
            return true;
    }
    return false;
}

static bool prefix_matches(const uint8_t *address, const uint8_t *network, unsigned prefix_length)
{
    unsigned whole_bytes = prefix_length / 8;
    if (memcmp(address, network, whole_bytes) != 0)
        return false;
    unsigned rest = prefix_length % 8;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (address[whole_bytes] & mask) == network[whole_bytes];
}

/*
 * An IPv4 block also covers the v4-mapped IPv6 form of its addresses (::ffff:a.b.c.d), which is
 * what a dual-stack AF_INET6 socket connects to when the program names an IPv4 address.
 */
static bool cidr_contains(const struct mt_cidr *cidr, const struct sockaddr_storage *address)
{
    if (cidr->family == AF_UNSPEC)
        return true;
    const uint8_t *bytes = NULL;
    if (address->ss_family == AF_INET) {
        if (cidr->family != AF_INET)
            return false;
        bytes = (const uint8_t *)&((const struct sockaddr_in *)address)->sin_addr;
    } else {
        const struct in6_addr *v6 = &((const struct sockaddr_in6 *)address)->sin6_addr;
        bytes = v6->s6_addr;
        if (cidr->family == AF_INET) {
            if (!IN6_IS_ADDR_V4MAPPED(v6))
                return false;
            bytes += 12;
        }
    }
    return prefix_matches(bytes, cidr->address, cidr->prefix_length);
}

static bool outbound_rule_matches(const struct mt_outbound_rule *rule,
                                  const struct sockaddr_storage *destination, uint16_t port)
{
    return cidr_contains(&rule->to, destination) &&
           (rule->port_count == 0 || ranges_contain(rule->ports, rule->port_count, port));
}

struct mt_outbound_decision mt_policy_decide_outbound(const struct mt_config *config,
                                                      const struct sockaddr_storage *destination)
{
    struct mt_outbound_decision decision = {.mode = MT_OUTBOUND_MTLS, .rule = -1};
    if (config == NULL || destination == NULL)
        return decision;
    if (!is_inet(destination)) {
        decision.mode = MT_OUTBOUND_PLAIN;
        return decision;
    }
    uint16_t port = mt_addr_port(destination);
    if (ranges_contain(config->skip_ports, config->skip_port_count, port)) {
        decision.mode = MT_OUTBOUND_PLAIN;
        decision.skipped = true;
        return decision;
    }
    for (unsigned r = 0; r < config->outbound.rule_count && r < MT_CONFIG_OUTBOUND_RULES_MAX; r++) {
        const struct mt_outbound_rule *rule = &config->outbound.rules[r];
        if (!outbound_rule_matches(rule, destination, port))
            continue;
        decision.mode = rule->mode;
        decision.rule = (int)r;
        if (rule->mode == MT_OUTBOUND_MTLS)
            decision.expected_identity = mt_config_pattern(config, rule->identity);
        return decision;
    }
    decision.mode =
        mt_addr_is_loopback(destination) ? config->outbound.loopback : config->outbound.other;
    return decision;
}

/* Both lists must hold the connection: the peer among the sources and the port among the ports. */
static bool is_probe(const struct mt_config *config, uint16_t port,
                     const struct sockaddr_storage *peer)
{
    unsigned port_count = config->inbound.probe_port_count;
    if (port_count > MT_CONFIG_PROBE_PORTS_MAX)
        port_count = MT_CONFIG_PROBE_PORTS_MAX;
    if (!ranges_contain(config->inbound.probe_ports, port_count, port))
        return false;
    for (unsigned s = 0; s < config->inbound.probe_source_count && s < MT_CONFIG_PROBE_SOURCES_MAX;
         s++) {
        if (cidr_contains(&config->inbound.probe_sources[s], peer))
            return true;
    }
    return false;
}

/*
 * The kubelet probes from the node's address and speaks no mTLS. Permissive rather than plain:
 * a meshed client on the node (hostNetwork) reaching the same port still gets mTLS and the
 * rule's allow list, and the plaintext probe is counted and logged like any plaintext inbound.
 */
static void apply_probe_exception(const struct mt_config *config, uint16_t port,
                                  const struct sockaddr_storage *peer,
                                  struct mt_inbound_decision *decision)
{
    if (decision->mode == MT_INBOUND_PLAIN || !is_probe(config, port, peer))
        return;
    decision->probe = true;
    decision->mode = decision->opaque ? MT_INBOUND_PLAIN : MT_INBOUND_PERMISSIVE;
}

/*
 * Without a rule for the port, the peer decides, not the local address: a listener on 0.0.0.0
 * receives both loopback and remote connections, and only the peer's address says whether the
 * bytes crossed the network.
 */
struct mt_inbound_decision mt_policy_decide_inbound(const struct mt_config *config,
                                                    const struct sockaddr_storage *local,
                                                    const struct sockaddr_storage *peer)
{
    struct mt_inbound_decision decision = {.mode = MT_INBOUND_STRICT, .rule_index = -1};
    if (config == NULL || local == NULL || peer == NULL)
        return decision;
    if (!is_inet(peer)) {
        decision.mode = MT_INBOUND_PLAIN;
        return decision;
    }
    uint16_t port = mt_addr_port(local);
    if (ranges_contain(config->skip_ports, config->skip_port_count, port)) {
        decision.mode = MT_INBOUND_PLAIN;
        decision.skipped = true;
        return decision;
    }
    for (unsigned r = 0; r < config->inbound.rule_count && r < MT_CONFIG_INBOUND_RULES_MAX; r++) {
        const struct mt_inbound_rule *rule = &config->inbound.rules[r];
        if (!ranges_contain(&rule->port, 1, port))
            continue;
        decision.mode = rule->mode;
        decision.rule = rule;
        decision.rule_index = (int)r;
        decision.opaque = rule->opaque;
        apply_probe_exception(config, port, peer, &decision);
        return decision;
    }
    decision.mode = mt_addr_is_loopback(peer) ? config->inbound.loopback : config->inbound.other;
    apply_probe_exception(config, port, peer, &decision);
    return decision;
}

struct mt_auto_decision mt_policy_decide_auto(enum mt_membership_verdict verdict, bool was_meshed)
{
    struct mt_auto_decision decision = {.mode = MT_OUTBOUND_PLAIN};
    switch (verdict) {
    case MT_MEMBERSHIP_MEMBER:
        decision.mode = MT_OUTBOUND_MTLS;
        decision.remember = true;
        break;
    case MT_MEMBERSHIP_REMOVED:
        decision.forget = true;
        break;
    case MT_MEMBERSHIP_ABSENT:
    default:
        decision.mode = was_meshed ? MT_OUTBOUND_MTLS : MT_OUTBOUND_PLAIN;
        break;
    }
    return decision;
}

bool mt_policy_identity_matches(const char *pattern, const char *spiffe_id)
{
    if (pattern == NULL || spiffe_id == NULL)
        return false;
    size_t pattern_length = strnlen(pattern, MT_SPIFFE_ID_MAX + 3);
    size_t id_length = strnlen(spiffe_id, MT_SPIFFE_ID_MAX + 1);
    struct mt_spiffe_id parsed;
    if (!mt_spiffe_is_valid_pattern(pattern, pattern_length) ||
        !mt_result_is_ok(mt_spiffe_id_parse(spiffe_id, id_length, &parsed)))
        return false;
    bool is_prefix = pattern_length >= 2 && pattern[pattern_length - 1] == '*';
    if (!is_prefix)
        return pattern_length == id_length && memcmp(pattern, spiffe_id, id_length) == 0;
    // "spiffe://td/ns/a/*": the ID must start with "spiffe://td/ns/a/" and go on. A valid ID has
    // no empty segment and no trailing slash, so whatever follows is one or more segments.
    size_t stem_length = pattern_length - 1;
    return id_length > stem_length && memcmp(pattern, spiffe_id, stem_length) == 0;
}

bool mt_policy_inbound_allows(const struct mt_config *config,
                              const struct mt_inbound_decision *decision, const char *spiffe_id)
{
    if (config == NULL || decision == NULL || spiffe_id == NULL)
        return false;
    const struct mt_inbound_rule *rule = decision->rule;
    if (rule == NULL || rule->allow_count == 0)
        return true;
    for (unsigned a = 0; a < rule->allow_count && a < MT_CONFIG_ALLOW_MAX; a++) {
        if (mt_policy_identity_matches(mt_config_pattern(config, rule->allow[a]), spiffe_id))
            return true;
    }
    return false;
}

bool mt_policy_outbound_allows(const struct mt_outbound_decision *decision, const char *spiffe_id)
{
    if (decision == NULL || spiffe_id == NULL)
        return false;
    return decision->expected_identity == NULL ||
           mt_policy_identity_matches(decision->expected_identity, spiffe_id);
}
