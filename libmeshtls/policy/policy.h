/*
 * Policy: which connections become mTLS and which stay plain. Pure functions over the config and
 * the addresses, no I/O, so every decision is unit-testable and the same in every process.
 *
 * The decision is taken once, at connect() or accept(), and never changes for that connection.
 */
#ifndef MT_POLICY_POLICY_H
#define MT_POLICY_POLICY_H

#include <sys/socket.h>

#include "../config/config.h"

/* Outbound: the mode for a connection to destination. */
enum mt_outbound_mode mt_policy_decide_outbound(const struct mt_config *config,
                                                const struct sockaddr_storage *destination);

/* Inbound: the mode for a connection accepted on local from peer. */
enum mt_inbound_mode mt_policy_decide_inbound(const struct mt_config *config,
                                              const struct sockaddr_storage *local,
                                              const struct sockaddr_storage *peer);

#endif
