/*
 * Policy decisions: which mode a new TCP connection gets, from the config and its addresses.
 *
 * The only question asked is "does this connection stay on this host": loopback traffic uses the
 * loopback mode, everything else the "default" mode. Pure functions: no I/O, no state, no
 * logging. They must never choose plaintext because an input is missing; only a configured
 * plain mode, or a family that is not IP at all, yields plain.
 */
#include <stddef.h>

#include "../util/addr.h"
#include "policy.h"

static bool is_inet(const struct sockaddr_storage *address)
{
    return address->ss_family == AF_INET || address->ss_family == AF_INET6;
}

enum mt_outbound_mode mt_policy_decide_outbound(const struct mt_config *config,
                                                const struct sockaddr_storage *destination)
{
    if (config == NULL || destination == NULL)
        return MT_OUTBOUND_MTLS;
    if (!is_inet(destination))
        return MT_OUTBOUND_PLAIN;
    return mt_addr_is_loopback(destination) ? config->outbound.loopback : config->outbound.other;
}

/*
 * The peer decides, not the local address: a listener on 0.0.0.0 receives both loopback and
 * remote connections, and only the peer's address says whether the bytes crossed the network.
 */
enum mt_inbound_mode mt_policy_decide_inbound(const struct mt_config *config,
                                              const struct sockaddr_storage *local,
                                              const struct sockaddr_storage *peer)
{
    (void)local;
    if (config == NULL || peer == NULL)
        return MT_INBOUND_STRICT;
    if (!is_inet(peer))
        return MT_INBOUND_PLAIN;
    return mt_addr_is_loopback(peer) ? config->inbound.loopback : config->inbound.other;
}
