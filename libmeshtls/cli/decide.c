/*
 * `meshtls config decide`: one connection's policy decision, as a line an operator can read.
 *
 *   outbound to 10.96.0.1:443: plain (outbound.rules[0], line 12)
 *   outbound to 10.244.1.7:8080: mtls (outbound.rules[1], line 14), server identity any of the
 *       trust domain
 *   inbound from 10.0.3.7 on :8080: permissive (inbound.default; probe source on a probe port)
 *
 * Owns the wording of those lines only: the decision is policy's (mt_policy_decide_outbound and
 * mt_policy_decide_inbound, the functions the library calls at connect and accept), taken on the
 * configuration loaded by the library's own procedure. It must never decide anything itself.
 * Inbound, ADDRESS is the peer's and PORT the local (listening) port.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config/config.h"
#include "../policy/policy.h"
#include "../util/addr.h"
#include "../util/text.h"
#include "decide.h"

static int usage(void)
{
    fprintf(stderr, "usage: meshtls config decide [FILE] outbound|inbound ADDRESS:PORT\n"
                    "       (inbound: ADDRESS is the peer, PORT the local port)\n");
    return 2;
}

/* Which of the two modes without a rule applied: policy chooses by the same test. */
static const char *fallback_key(const struct sockaddr_storage *address)
{
    return mt_addr_is_loopback(address) ? "loopback" : "default";
}

static void print_outbound(const struct mt_config *config, const struct sockaddr_storage *address,
                           const char *text)
{
    struct mt_outbound_decision decision = mt_policy_decide_outbound(config, address);
    printf("outbound to %s: %s (", text, mt_outbound_mode_name(decision.mode));
    if (decision.skipped)
        printf("skip_ports");
    else if (decision.rule >= 0)
        printf("outbound.rules[%d], line %u", decision.rule,
               config->outbound.rules[decision.rule].line);
    else
        printf("outbound.%s", fallback_key(address));
    printf(")");
    if (decision.mode == MT_OUTBOUND_MTLS)
        printf(", server identity %s", decision.expected_identity != NULL
                                           ? decision.expected_identity
                                           : "any of the trust domain");
    printf("\n");
}

/* The local address is the wildcard of the peer's family: only its port counts. */
static void print_inbound(const struct mt_config *config, const struct sockaddr_storage *peer)
{
    struct sockaddr_storage local;
    memset(&local, 0, sizeof(local));
    local.ss_family = peer->ss_family;
    uint16_t port = mt_addr_port(peer);
    mt_addr_set_port(&local, port);
    struct sockaddr_storage peer_only = *peer;
    mt_addr_set_port(&peer_only, 0);
    char address[INET6_ADDRSTRLEN] = "?";
    const void *bytes = peer->ss_family == AF_INET
                            ? (const void *)&((const struct sockaddr_in *)peer)->sin_addr
                            : (const void *)&((const struct sockaddr_in6 *)peer)->sin6_addr;
    (void)inet_ntop(peer->ss_family, bytes, address, sizeof(address));

    struct mt_inbound_decision decision = mt_policy_decide_inbound(config, &local, &peer_only);
    printf("inbound from %s on :%u: %s (", address, (unsigned)port,
           mt_inbound_mode_name(decision.mode));
    if (decision.skipped)
        printf("skip_ports");
    else if (decision.rule_index >= 0)
        printf("inbound.rules[%d], line %u", decision.rule_index, decision.rule->line);
    else
        printf("inbound.%s", fallback_key(&peer_only));
    if (decision.probe)
        printf("; probe source on a probe port");
    printf(")\n");
}

int mt_cli_decide(int argc, char **argv)
{
    if (argc == 3 && setenv("MESHTLS_CONFIG", argv[0], 1) != 0)
        return usage();
    if (argc == 3) {
        argc--;
        argv++;
    }
    if (argc != 2)
        return usage();
    bool outbound = strcmp(argv[0], "outbound") == 0;
    if (!outbound && strcmp(argv[0], "inbound") != 0)
        return usage();
    struct sockaddr_storage address;
    if (!mt_addr_parse(argv[1], &address) || mt_addr_port(&address) == 0) {
        fprintf(stderr, "meshtls: %s is not ADDRESS:PORT (10.96.0.1:443, [fd00::1]:8080)\n",
                argv[1]);
        return 2;
    }
    static struct mt_config config;
    char message[MT_CONFIG_MESSAGE_MAX];
    struct mt_text reason = mt_text_on(message, sizeof(message));
    if (!mt_result_is_ok(mt_config_load(&config, &reason))) {
        fprintf(stderr, "meshtls: configuration error: %s\n", message);
        return 2;
    }
    if (outbound)
        print_outbound(&config, &address, argv[1]);
    else
        print_inbound(&config, &address);
    return 0;
}
