/*
 * Tests for policy/policy.c: every combination of configured modes against loopback, remote,
 * v4-mapped and non-IP addresses, for both directions; then tables of rules (overlapping CIDRs,
 * v4-mapped destinations, port ranges, skip_ports) written as configuration text and loaded the
 * way the library loads them, and a table of identity patterns.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy/policy.h"

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))

/* "unix" gives an AF_UNIX address; anything else is parsed as IPv4, then IPv6. */
static struct sockaddr_storage make_address(const char *host, uint16_t port)
{
    struct sockaddr_storage storage;
    memset(&storage, 0, sizeof(storage));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&storage;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&storage;
    if (strcmp(host, "unix") == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)&storage;
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, "/run/app.sock");
    } else if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
    } else {
        assert_int_equal(inet_pton(AF_INET6, host, &v6->sin6_addr), 1);
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
    }
    return storage;
}

/* Loopback and "default" modes set to different values, so the test sees which one was used. */
static struct mt_config config_with(enum mt_outbound_mode out_loopback,
                                    enum mt_outbound_mode out_other,
                                    enum mt_inbound_mode in_loopback, enum mt_inbound_mode in_other)
{
    struct mt_config config;
    memset(&config, 0, sizeof(config));
    config.outbound.loopback = out_loopback;
    config.outbound.other = out_other;
    config.inbound.loopback = in_loopback;
    config.inbound.other = in_other;
    return config;
}

static const struct {
    const char *host;
    bool loopback; /* for IP addresses: which configured mode applies */
} hosts[] = {
    {"127.0.0.1", true},        {"127.3.4.5", true},    {"::1", true},
    {"::ffff:127.0.0.1", true}, {"10.0.0.7", false},    {"192.168.1.1", false},
    {"0.0.0.0", true},          {"2001:db8::1", false}, {"::ffff:10.0.0.7", false},
    {"fe80::1", false},
};

static void test_mt_policy_decide_outbound_table_uses_loopback_or_default_mode(void **state)
{
    (void)state;
    /* Both orientations, so a decision that ignores the address cannot pass. */
    const struct mt_config configs[] = {
        config_with(MT_OUTBOUND_PLAIN, MT_OUTBOUND_MTLS, MT_INBOUND_PLAIN, MT_INBOUND_STRICT),
        config_with(MT_OUTBOUND_MTLS, MT_OUTBOUND_PLAIN, MT_INBOUND_STRICT, MT_INBOUND_PLAIN),
    };
    for (size_t c = 0; c < COUNT_OF(configs); c++) {
        for (size_t h = 0; h < COUNT_OF(hosts); h++) {
            struct sockaddr_storage destination = make_address(hosts[h].host, 443);
            enum mt_outbound_mode expected =
                hosts[h].loopback ? configs[c].outbound.loopback : configs[c].outbound.other;
            if (mt_policy_decide_outbound(&configs[c], &destination).mode != expected)
                fail_msg("config %zu, outbound to %s: expected %s", c, hosts[h].host,
                         mt_outbound_mode_name(expected));
        }
    }
}

static void test_mt_policy_decide_inbound_table_decides_by_peer_address(void **state)
{
    (void)state;
    const struct mt_config configs[] = {
        config_with(MT_OUTBOUND_PLAIN, MT_OUTBOUND_MTLS, MT_INBOUND_PLAIN, MT_INBOUND_STRICT),
        config_with(MT_OUTBOUND_MTLS, MT_OUTBOUND_PLAIN, MT_INBOUND_STRICT, MT_INBOUND_PLAIN),
    };
    static const char *const locals[] = {"0.0.0.0", "127.0.0.1", "10.0.0.1", "::", "::1"};
    for (size_t c = 0; c < COUNT_OF(configs); c++) {
        for (size_t l = 0; l < COUNT_OF(locals); l++) {
            struct sockaddr_storage local = make_address(locals[l], 80);
            for (size_t h = 0; h < COUNT_OF(hosts); h++) {
                struct sockaddr_storage peer = make_address(hosts[h].host, 51234);
                enum mt_inbound_mode expected =
                    hosts[h].loopback ? configs[c].inbound.loopback : configs[c].inbound.other;
                if (mt_policy_decide_inbound(&configs[c], &local, &peer).mode != expected)
                    fail_msg("config %zu, inbound from %s to %s: expected %s", c, hosts[h].host,
                             locals[l], mt_inbound_mode_name(expected));
            }
        }
    }
}

/* The case that motivates deciding by peer: a listener on 0.0.0.0 reached over loopback. */
static void test_mt_policy_decide_inbound_loopback_peer_to_wildcard_is_loopback(void **state)
{
    (void)state;
    struct mt_config config =
        config_with(MT_OUTBOUND_PLAIN, MT_OUTBOUND_MTLS, MT_INBOUND_PLAIN, MT_INBOUND_STRICT);
    struct sockaddr_storage local = make_address("0.0.0.0", 80);
    struct sockaddr_storage peer = make_address("127.0.0.1", 40000);
    assert_int_equal(mt_policy_decide_inbound(&config, &local, &peer).mode, MT_INBOUND_PLAIN);
    peer = make_address("10.1.2.3", 40000);
    assert_int_equal(mt_policy_decide_inbound(&config, &local, &peer).mode, MT_INBOUND_STRICT);
}

static void test_mt_policy_decide_non_inet_family_is_plain(void **state)
{
    (void)state;
    /* Every mode secure, so plain can only come from the family rule. */
    struct mt_config config =
        config_with(MT_OUTBOUND_MTLS, MT_OUTBOUND_MTLS, MT_INBOUND_STRICT, MT_INBOUND_STRICT);
    struct sockaddr_storage un = make_address("unix", 0);
    assert_int_equal(mt_policy_decide_outbound(&config, &un).mode, MT_OUTBOUND_PLAIN);
    assert_int_equal(mt_policy_decide_inbound(&config, &un, &un).mode, MT_INBOUND_PLAIN);
    struct sockaddr_storage unspecified;
    memset(&unspecified, 0, sizeof(unspecified));
    assert_int_equal(mt_policy_decide_outbound(&config, &unspecified).mode, MT_OUTBOUND_PLAIN);
}

/* A missing input is a bug upstream; it must not turn into a plaintext connection. */
static void test_mt_policy_decide_missing_input_fails_closed(void **state)
{
    (void)state;
    struct mt_config config =
        config_with(MT_OUTBOUND_PLAIN, MT_OUTBOUND_PLAIN, MT_INBOUND_PLAIN, MT_INBOUND_PLAIN);
    struct sockaddr_storage address = make_address("10.0.0.7", 80);
    assert_int_equal(mt_policy_decide_outbound(NULL, &address).mode, MT_OUTBOUND_MTLS);
    assert_int_equal(mt_policy_decide_outbound(&config, NULL).mode, MT_OUTBOUND_MTLS);
    assert_int_equal(mt_policy_decide_inbound(NULL, &address, &address).mode, MT_INBOUND_STRICT);
    assert_int_equal(mt_policy_decide_inbound(&config, &address, NULL).mode, MT_INBOUND_STRICT);
}

static void test_mt_policy_decide_built_in_defaults_protect_remote_traffic_only(void **state)
{
    (void)state;
    struct mt_config config;
    mt_config_set_defaults(&config);
    struct sockaddr_storage loopback = make_address("127.0.0.1", 80);
    struct sockaddr_storage remote = make_address("10.0.0.7", 80);
    assert_int_equal(mt_policy_decide_outbound(&config, &loopback).mode, MT_OUTBOUND_PLAIN);
    assert_int_equal(mt_policy_decide_outbound(&config, &remote).mode, MT_OUTBOUND_MTLS);
    assert_int_equal(mt_policy_decide_inbound(&config, &remote, &loopback).mode, MT_INBOUND_PLAIN);
    assert_int_equal(mt_policy_decide_inbound(&config, &loopback, &remote).mode, MT_INBOUND_STRICT);
}

/* Loads text as a configuration file (an in-memory file), failing the test with its message. */
static void load_config_text(const char *text, struct mt_config *config)
{
    int fd = memfd_create("test_policy", MFD_CLOEXEC);
    assert_true(fd >= 0);
    size_t length = strlen(text);
    assert_int_equal(write(fd, text, length), (ssize_t)length);
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    mt_config_set_defaults(config);
    char message[MT_CONFIG_MESSAGE_MAX];
    mt_result result = mt_config_load_file(path, config, MT_TEXT_ON(message));
    close(fd);
    if (!mt_result_is_ok(result))
        fail_msg("%s\n%s", message, text);
}

/*
 * Overlapping blocks in both families, written so that only the order of the rules tells them
 * apart: 10.1.0.0/16 comes before 10.0.0.0/8, and 10.1.2.3 after both (so it never decides).
 */
static const char outbound_rules_config[] =
    "outbound = {\n"
    "  loopback = \"plain\"; default = \"mtls\";\n"
    "  rules = (\n"
    "    { to = \"10.1.0.0/16\"; mode = \"plain\"; },\n" /* 0 */
    "    { to = \"10.0.0.0/8\"; ports = (5432, \"6000-6999\"); mode = \"mtls\";\n"
    "      identity = \"spiffe://td/ns/db/*\"; },\n"    /* 1 */
    "    { to = \"10.0.0.0/8\"; mode = \"plain\"; },\n" /* 2 */
    "    { to = \"10.1.2.3\"; mode = \"mtls\"; },\n"    /* 3 */
    "    { to = \"2001:db8:1::/48\"; mode = \"mtls\"; identity = \"spiffe://td/ns/v6\"; },\n" /* 4
                                                                                               */
    "    { to = \"2001:db8::/32\"; mode = \"plain\"; },\n"          /* 5 */
    "    { to = \"::ffff:192.168.0.0/112\"; mode = \"plain\"; },\n" /* 6 */
    "    { to = \"127.0.0.2\"; mode = \"mtls\"; },\n"               /* 7 */
    "    { ports = [\"8000-8999\"]; mode = \"plain\"; },\n"         /* 8 */
    "    { to = \"0.0.0.0/0\"; ports = [9999]; mode = \"mtls\"; identity = \"spiffe://td/x\"; }\n"
    "  );\n" /* 9 */
    "};\n"
    "skip_ports = (53, \"440-449\");\n";

static const struct {
    const char *host;
    uint16_t port;
    enum mt_outbound_mode mode;
    int rule;
    const char *identity;
    bool skipped;
} outbound_cases[] = {
    {"10.1.2.3", 5432, MT_OUTBOUND_PLAIN, 0, NULL, false}, /* /16 first, though /8 and /32 */
    {"10.2.0.1", 5432, MT_OUTBOUND_MTLS, 1, "spiffe://td/ns/db/*", false},
    {"10.2.0.1", 6000, MT_OUTBOUND_MTLS, 1, "spiffe://td/ns/db/*", false}, /* range start */
    {"10.2.0.1", 6999, MT_OUTBOUND_MTLS, 1, "spiffe://td/ns/db/*", false}, /* range end */
    {"10.2.0.1", 7000, MT_OUTBOUND_PLAIN, 2, NULL, false},                 /* past the range */
    {"10.2.0.1", 5999, MT_OUTBOUND_PLAIN, 2, NULL, false},
    {"10.255.255.255", 80, MT_OUTBOUND_PLAIN, 2, NULL, false},
    {"11.0.0.0", 80, MT_OUTBOUND_MTLS, -1, NULL, false}, /* just outside 10/8 */
    {"9.255.255.255", 80, MT_OUTBOUND_MTLS, -1, NULL, false},
    /* v4-mapped IPv6 destinations match IPv4 blocks. */
    {"::ffff:10.0.0.7", 5432, MT_OUTBOUND_MTLS, 1, "spiffe://td/ns/db/*", false},
    {"::ffff:10.1.0.1", 5432, MT_OUTBOUND_PLAIN, 0, NULL, false},
    {"::ffff:11.0.0.1", 5432, MT_OUTBOUND_MTLS, -1, NULL, false},
    /* An IPv4 block does not match an IPv6 address with the same low bits. */
    {"::10.0.0.7", 5432, MT_OUTBOUND_MTLS, -1, NULL, false},
    {"2001:db8:1:ffff::1", 443 + 100, MT_OUTBOUND_MTLS, 4, "spiffe://td/ns/v6", false},
    {"2001:db8:2::1", 80, MT_OUTBOUND_PLAIN, 5, NULL, false},
    {"2001:db9::1", 80, MT_OUTBOUND_MTLS, -1, NULL, false},
    /* A v4-mapped IPv6 block matches the mapped form, not the plain IPv4 address. */
    {"::ffff:192.168.3.4", 80, MT_OUTBOUND_PLAIN, 6, NULL, false},
    {"192.168.3.4", 80, MT_OUTBOUND_MTLS, -1, NULL, false},
    /* Rules come before the loopback mode, for loopback destinations too. */
    {"127.0.0.2", 80, MT_OUTBOUND_MTLS, 7, NULL, false},
    {"127.0.0.1", 80, MT_OUTBOUND_PLAIN, -1, NULL, false},
    {"::1", 80, MT_OUTBOUND_PLAIN, -1, NULL, false},
    /* A rule without `to` matches every address. */
    {"203.0.113.9", 8000, MT_OUTBOUND_PLAIN, 8, NULL, false},
    {"2001:db9::1", 8999, MT_OUTBOUND_PLAIN, 8, NULL, false},
    {"127.0.0.1", 8500, MT_OUTBOUND_PLAIN, 8, NULL, false},
    /* 0.0.0.0/0 is every IPv4 address, including v4-mapped ones, and no IPv6 one. */
    {"203.0.113.9", 9999, MT_OUTBOUND_MTLS, 9, "spiffe://td/x", false},
    {"::ffff:203.0.113.9", 9999, MT_OUTBOUND_MTLS, 9, "spiffe://td/x", false},
    {"2001:db9::1", 9999, MT_OUTBOUND_MTLS, -1, NULL, false},
    /* skip_ports wins over every rule and over the loopback mode. */
    {"10.2.0.1", 53, MT_OUTBOUND_PLAIN, -1, NULL, true},
    {"10.1.2.3", 440, MT_OUTBOUND_PLAIN, -1, NULL, true},
    {"2001:db8:1::1", 449, MT_OUTBOUND_PLAIN, -1, NULL, true},
    {"127.0.0.2", 445, MT_OUTBOUND_PLAIN, -1, NULL, true},
    {"203.0.113.9", 450, MT_OUTBOUND_MTLS, -1, NULL, false},
};

static void test_mt_policy_decide_outbound_rules_table_first_match_wins(void **state)
{
    (void)state;
    static struct mt_config config;
    load_config_text(outbound_rules_config, &config);
    for (size_t i = 0; i < COUNT_OF(outbound_cases); i++) {
        struct sockaddr_storage destination =
            make_address(outbound_cases[i].host, outbound_cases[i].port);
        struct mt_outbound_decision decision = mt_policy_decide_outbound(&config, &destination);
        const char *expected = outbound_cases[i].identity;
        bool identity_ok = expected == NULL ? decision.expected_identity == NULL
                                            : decision.expected_identity != NULL &&
                                                  strcmp(decision.expected_identity, expected) == 0;
        if (decision.mode != outbound_cases[i].mode || decision.rule != outbound_cases[i].rule ||
            decision.skipped != outbound_cases[i].skipped || !identity_ok)
            fail_msg("outbound to %s port %u: got mode %s rule %d skipped %d identity %s; "
                     "expected %s rule %d skipped %d identity %s",
                     outbound_cases[i].host, (unsigned)outbound_cases[i].port,
                     mt_outbound_mode_name(decision.mode), decision.rule, decision.skipped,
                     decision.expected_identity != NULL ? decision.expected_identity : "(none)",
                     mt_outbound_mode_name(outbound_cases[i].mode), outbound_cases[i].rule,
                     outbound_cases[i].skipped, expected != NULL ? expected : "(none)");
    }
}

static const char inbound_rules_config[] =
    "inbound = {\n"
    "  loopback = \"permissive\"; default = \"strict\";\n"
    "  rules = (\n"
    "    { port = 8080; mode = \"permissive\"; allow = [\"spiffe://td/ns/web/*\",\n"
    "                                                  \"spiffe://td/ns/api/sa/x\"]; },\n" /* 0 */
    "    { port = \"8000-8999\"; mode = \"plain\"; },\n"                                   /* 1 */
    "    { port = 3306; mode = \"strict\"; opaque = true; },\n"                            /* 2 */
    "    { port = \"3000-3999\"; mode = \"strict\"; allow = [\"spiffe://td/ns/db\"]; }\n"
    "  );\n" /* 3 */
    "};\n"
    "skip_ports = [53, 8081];\n";

static const struct {
    const char *local;
    uint16_t port;
    const char *peer;
    enum mt_inbound_mode mode;
    int rule;
    bool opaque;
    bool skipped;
} inbound_cases[] = {
    {"0.0.0.0", 8080, "10.0.0.7", MT_INBOUND_PERMISSIVE, 0, false, false},
    {"::", 8080, "::1", MT_INBOUND_PERMISSIVE, 0, false, false},
    {"10.0.0.1", 8000, "10.0.0.7", MT_INBOUND_PLAIN, 1, false, false},
    {"10.0.0.1", 8999, "127.0.0.1", MT_INBOUND_PLAIN, 1, false, false},
    {"10.0.0.1", 3306, "10.0.0.7", MT_INBOUND_STRICT, 2, true, false},
    {"::ffff:10.0.0.1", 3306, "::ffff:127.0.0.1", MT_INBOUND_STRICT, 2, true, false},
    {"10.0.0.1", 3307, "10.0.0.7", MT_INBOUND_STRICT, 3, false, false},
    /* No rule for the port: the peer's address chooses loopback or default. */
    {"0.0.0.0", 9000, "127.0.0.1", MT_INBOUND_PERMISSIVE, -1, false, false},
    {"0.0.0.0", 9000, "10.0.0.7", MT_INBOUND_STRICT, -1, false, false},
    {"::", 7999, "::1", MT_INBOUND_PERMISSIVE, -1, false, false},
    {"::", 7999, "2001:db8::7", MT_INBOUND_STRICT, -1, false, false},
    /* skip_ports goes by the local port, before the rules (8081 is inside rule 1's range). */
    {"0.0.0.0", 8081, "10.0.0.7", MT_INBOUND_PLAIN, -1, false, true},
    {"0.0.0.0", 53, "127.0.0.1", MT_INBOUND_PLAIN, -1, false, true},
    /* The peer's port is not the one that counts. */
    {"0.0.0.0", 9000, "10.0.0.53", MT_INBOUND_STRICT, -1, false, false},
};

static void test_mt_policy_decide_inbound_rules_table_local_port_selects_rule(void **state)
{
    (void)state;
    static struct mt_config config;
    load_config_text(inbound_rules_config, &config);
    for (size_t i = 0; i < COUNT_OF(inbound_cases); i++) {
        struct sockaddr_storage local = make_address(inbound_cases[i].local, inbound_cases[i].port);
        /* The peer port is 53, a skipped port, to show that only the local port counts. */
        struct sockaddr_storage peer = make_address(inbound_cases[i].peer, 53);
        struct mt_inbound_decision decision = mt_policy_decide_inbound(&config, &local, &peer);
        int expected_rule = inbound_cases[i].rule;
        if (decision.mode != inbound_cases[i].mode || decision.rule_index != expected_rule ||
            decision.opaque != inbound_cases[i].opaque ||
            decision.skipped != inbound_cases[i].skipped ||
            decision.rule != (expected_rule >= 0 ? &config.inbound.rules[expected_rule] : NULL))
            fail_msg("inbound on %s port %u from %s: got mode %s rule %d opaque %d skipped %d; "
                     "expected %s rule %d opaque %d skipped %d",
                     inbound_cases[i].local, (unsigned)inbound_cases[i].port, inbound_cases[i].peer,
                     mt_inbound_mode_name(decision.mode), decision.rule_index, decision.opaque,
                     decision.skipped, mt_inbound_mode_name(inbound_cases[i].mode), expected_rule,
                     inbound_cases[i].opaque, inbound_cases[i].skipped);
    }
}

static void test_mt_policy_inbound_allows_table_checks_the_rule_allow_list(void **state)
{
    (void)state;
    static struct mt_config config;
    load_config_text(inbound_rules_config, &config);
    static const struct {
        uint16_t port;
        const char *peer_id;
        bool allowed;
    } cases[] = {
        {8080, "spiffe://td/ns/web/sa/frontend", true},
        {8080, "spiffe://td/ns/web/a/b/c", true},
        {8080, "spiffe://td/ns/api/sa/x", true},
        {8080, "spiffe://td/ns/api/sa/y", false},
        {8080, "spiffe://td/ns/web", false},
        {8080, "spiffe://td/ns/webx/sa/frontend", false},
        {8080, "spiffe://other/ns/web/sa/frontend", false},
        {3307, "spiffe://td/ns/db", true},
        {3307, "spiffe://td/ns/db/sa/pg", false},
        /* Without an allow list, and without a rule, any peer is accepted here. */
        {3306, "spiffe://td/anything", true},
        {9000, "spiffe://td/anything", true},
    };
    struct sockaddr_storage peer = make_address("10.0.0.7", 40000);
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        struct sockaddr_storage local = make_address("10.0.0.1", cases[i].port);
        struct mt_inbound_decision decision = mt_policy_decide_inbound(&config, &local, &peer);
        if (mt_policy_inbound_allows(&config, &decision, cases[i].peer_id) != cases[i].allowed)
            fail_msg("port %u, peer %s: expected %s", (unsigned)cases[i].port, cases[i].peer_id,
                     cases[i].allowed ? "allowed" : "refused");
    }
    struct mt_inbound_decision decision = {.mode = MT_INBOUND_STRICT, .rule_index = -1};
    assert_false(mt_policy_inbound_allows(&config, &decision, NULL));
    assert_false(mt_policy_inbound_allows(NULL, &decision, "spiffe://td/x"));
}

static void test_mt_policy_outbound_allows_expected_identity_decides(void **state)
{
    (void)state;
    static struct mt_config config;
    load_config_text(outbound_rules_config, &config);
    struct sockaddr_storage database = make_address("10.2.0.1", 5432);
    struct mt_outbound_decision decision = mt_policy_decide_outbound(&config, &database);
    assert_true(mt_policy_outbound_allows(&decision, "spiffe://td/ns/db/sa/pg"));
    assert_false(mt_policy_outbound_allows(&decision, "spiffe://td/ns/web/sa/pg"));
    assert_false(mt_policy_outbound_allows(&decision, "spiffe://td/ns/db"));
    assert_false(mt_policy_outbound_allows(&decision, NULL));
    struct sockaddr_storage other = make_address("11.0.0.1", 5432);
    decision = mt_policy_decide_outbound(&config, &other);
    assert_null(decision.expected_identity);
    assert_true(mt_policy_outbound_allows(&decision, "spiffe://td/ns/web/sa/pg"));
}

static void test_mt_policy_identity_matches_table_exact_or_segments_below(void **state)
{
    (void)state;
    static const struct {
        const char *pattern;
        const char *id;
        bool matches;
    } cases[] = {
        {"spiffe://td/ns/a/*", "spiffe://td/ns/a/x", true},
        {"spiffe://td/ns/a/*", "spiffe://td/ns/a/x/y", true},
        {"spiffe://td/ns/a/*", "spiffe://td/ns/a", false},
        {"spiffe://td/ns/a/*", "spiffe://td/ns/ab", false},
        {"spiffe://td/ns/a/*", "spiffe://td/ns/ab/x", false},
        {"spiffe://td/ns/a/*", "spiffe://td/ns/a/", false}, /* not a valid ID */
        {"spiffe://td/ns/a/*", "spiffe://td/ns/a//x", false},
        {"spiffe://td/ns/a/*", "spiffe://tdx/ns/a/x", false},
        {"spiffe://td/ns/a/*", "spiffe://other/ns/a/x", false},
        {"spiffe://td/ns/a/*", "spiffe://td/ns/A/x", false}, /* paths are case-sensitive */
        {"spiffe://td/*", "spiffe://td/x", true},
        {"spiffe://td/*", "spiffe://td", false},
        {"spiffe://td/*", "spiffe://td.evil/x", false},
        {"spiffe://td/ns/a", "spiffe://td/ns/a", true},
        {"spiffe://td/ns/a", "spiffe://td/ns/a/x", false},
        {"spiffe://td/ns/a", "spiffe://td/ns/ab", false},
        {"spiffe://td/ns/a", "spiffe://td/ns", false},
        {"spiffe://td", "spiffe://td", true},
        /* Invalid patterns never match, not even themselves. */
        {"spiffe://td/ns/a*", "spiffe://td/ns/ab", false},
        {"spiffe://td/ns/*/x", "spiffe://td/ns/a/x", false},
        {"*", "spiffe://td/ns/a", false},
        {"", "", false},
        {"spiffe://td/ns/a/", "spiffe://td/ns/a/", false},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        if (mt_policy_identity_matches(cases[i].pattern, cases[i].id) != cases[i].matches)
            fail_msg("pattern \"%s\", ID \"%s\": expected %s", cases[i].pattern, cases[i].id,
                     cases[i].matches ? "a match" : "no match");
    }
    assert_false(mt_policy_identity_matches(NULL, "spiffe://td/x"));
    assert_false(mt_policy_identity_matches("spiffe://td/*", NULL));
}

static void test_mt_policy_decide_inbound_missing_local_fails_closed(void **state)
{
    (void)state;
    static struct mt_config config;
    load_config_text("inbound = { loopback = \"plain\"; default = \"plain\";\n"
                     "  rules = ( { port = 80; mode = \"plain\"; } ); };\n",
                     &config);
    struct sockaddr_storage peer = make_address("127.0.0.1", 40000);
    struct mt_inbound_decision decision = mt_policy_decide_inbound(&config, NULL, &peer);
    assert_int_equal(decision.mode, MT_INBOUND_STRICT);
    assert_null(decision.rule);
    assert_int_equal(decision.rule_index, -1);
    assert_false(decision.skipped);
}

/*
 * "auto" reaches only the destinations the configuration gives it: an mtls rule keeps mtls and its
 * identity (membership never decides it), a plain rule keeps plain, the rest get auto.
 */
static void test_mt_policy_decide_outbound_auto_never_replaces_an_mtls_rule(void **state)
{
    (void)state;
    static struct mt_config config;
    load_config_text("outbound = { loopback = \"auto\"; default = \"auto\";\n"
                     "  rules = ( { to = \"10.0.0.0/8\"; ports = [5432]; mode = \"mtls\";\n"
                     "              identity = \"spiffe://td/ns/db/*\"; },\n"
                     "            { to = \"10.0.0.9\"; mode = \"plain\"; } ); };\n",
                     &config);
    struct sockaddr_storage database = make_address("10.1.2.3", 5432);
    struct mt_outbound_decision decision = mt_policy_decide_outbound(&config, &database);
    assert_int_equal(decision.mode, MT_OUTBOUND_MTLS);
    assert_string_equal(decision.expected_identity, "spiffe://td/ns/db/*");
    /* The same address on another port, and another address on that port: auto. */
    struct sockaddr_storage web = make_address("10.1.2.3", 8080);
    assert_int_equal(mt_policy_decide_outbound(&config, &web).mode, MT_OUTBOUND_AUTO);
    assert_null(mt_policy_decide_outbound(&config, &web).expected_identity);
    struct sockaddr_storage outside = make_address("192.0.2.1", 5432);
    assert_int_equal(mt_policy_decide_outbound(&config, &outside).mode, MT_OUTBOUND_AUTO);
    struct sockaddr_storage plain = make_address("10.0.0.9", 80);
    assert_int_equal(mt_policy_decide_outbound(&config, &plain).mode, MT_OUTBOUND_PLAIN);
    struct sockaddr_storage loopback = make_address("127.0.0.1", 80);
    assert_int_equal(mt_policy_decide_outbound(&config, &loopback).mode, MT_OUTBOUND_AUTO);
    assert_string_equal(mt_outbound_mode_name(MT_OUTBOUND_AUTO), "auto");
}

/*
 * The probe exception: plaintext for a probe source on a probe port, nothing else. Every row is
 * one orientation of the pair, so a decision that looks at the port alone or the peer alone
 * cannot pass: 10.0.3.7 (a source) on 9000 (not a probe port) and 10.0.3.8 (not a source) on
 * 8080 (a probe port) both stay strict.
 */
static const char probe_config[] =
    "inbound = {\n"
    "  loopback = \"strict\"; default = \"strict\";\n"
    "  probe_sources = [\"10.0.3.7\", \"fd00:1::/64\"];\n"
    "  probe_ports = (8080, \"9100-9101\", 3306, 7000, 53);\n"
    "  rules = (\n"
    "    { port = 8080; mode = \"strict\"; allow = [\"spiffe://td/ns/web/*\"]; },\n" /* 0 */
    "    { port = 3306; mode = \"strict\"; opaque = true; },\n"                      /* 1 */
    "    { port = 7000; mode = \"plain\"; }\n"                                       /* 2 */
    "  );\n"
    "};\n"
    "outbound = { loopback = \"mtls\"; default = \"mtls\"; };\n"
    "skip_ports = [53];\n";

static const struct {
    const char *peer;
    uint16_t port;
    enum mt_inbound_mode mode;
    int rule;
    bool probe;
} probe_cases[] = {
    {"10.0.3.7", 8080, MT_INBOUND_PERMISSIVE, 0, true},  /* the pair: the rule is kept */
    {"10.0.3.7", 9100, MT_INBOUND_PERMISSIVE, -1, true}, /* by default mode, in a range */
    {"10.0.3.7", 9101, MT_INBOUND_PERMISSIVE, -1, true},
    {"::ffff:10.0.3.7", 8080, MT_INBOUND_PERMISSIVE, 0, true}, /* v4-mapped peer */
    {"fd00:1::9", 9100, MT_INBOUND_PERMISSIVE, -1, true},      /* inside the IPv6 block */
    {"10.0.3.7", 9000, MT_INBOUND_STRICT, -1, false},          /* source, not a probe port */
    {"10.0.3.7", 9102, MT_INBOUND_STRICT, -1, false},          /* just past the range */
    {"10.0.3.8", 8080, MT_INBOUND_STRICT, 0, false},           /* probe port, not a source */
    {"fd00:2::9", 9100, MT_INBOUND_STRICT, -1, false},         /* outside the IPv6 block */
    {"127.0.0.1", 8080, MT_INBOUND_STRICT, 0, false},          /* loopback is no source */
    {"10.0.3.7", 3306, MT_INBOUND_PLAIN, 1, true},             /* opaque: nothing waited for */
    {"10.0.3.8", 3306, MT_INBOUND_STRICT, 1, false},
    {"10.0.3.7", 7000, MT_INBOUND_PLAIN, 2, false}, /* plain already: nothing to except */
};

static void test_mt_policy_decide_inbound_probe_needs_source_and_port(void **state)
{
    (void)state;
    static struct mt_config config;
    load_config_text(probe_config, &config);
    for (size_t i = 0; i < COUNT_OF(probe_cases); i++) {
        struct sockaddr_storage local = make_address(
            strchr(probe_cases[i].peer, ':') != NULL ? "::" : "0.0.0.0", probe_cases[i].port);
        struct sockaddr_storage peer = make_address(probe_cases[i].peer, 40000);
        struct mt_inbound_decision decision = mt_policy_decide_inbound(&config, &local, &peer);
        if (decision.mode != probe_cases[i].mode || decision.rule_index != probe_cases[i].rule ||
            decision.probe != probe_cases[i].probe)
            fail_msg("inbound on port %u from %s: got mode %s rule %d probe %d; expected %s "
                     "rule %d probe %d",
                     (unsigned)probe_cases[i].port, probe_cases[i].peer,
                     mt_inbound_mode_name(decision.mode), decision.rule_index, decision.probe,
                     mt_inbound_mode_name(probe_cases[i].mode), probe_cases[i].rule,
                     probe_cases[i].probe);
    }
    /* skip_ports still comes first, and the source's outbound connections are not excepted. */
    struct sockaddr_storage skipped = make_address("0.0.0.0", 53);
    struct sockaddr_storage source = make_address("10.0.3.7", 40000);
    struct mt_inbound_decision decision = mt_policy_decide_inbound(&config, &skipped, &source);
    assert_true(decision.skipped);
    assert_false(decision.probe);
    struct sockaddr_storage destination = make_address("10.0.3.7", 8080);
    assert_int_equal(mt_policy_decide_outbound(&config, &destination).mode, MT_OUTBOUND_MTLS);
}

/* One list without the other is no exception at all. */
static void test_mt_policy_decide_inbound_probe_one_list_alone_is_no_exception(void **state)
{
    (void)state;
    static struct mt_config config;
    struct sockaddr_storage local = make_address("0.0.0.0", 8080);
    struct sockaddr_storage peer = make_address("10.0.3.7", 40000);
    load_config_text("inbound = { probe_sources = [\"10.0.3.7\"]; };\n", &config);
    assert_int_equal(mt_policy_decide_inbound(&config, &local, &peer).mode, MT_INBOUND_STRICT);
    load_config_text("inbound = { probe_ports = [8080]; };\n", &config);
    assert_int_equal(mt_policy_decide_inbound(&config, &local, &peer).mode, MT_INBOUND_STRICT);
    load_config_text("inbound = { probe_sources = [\"10.0.3.7\"]; probe_ports = [8080]; };\n",
                     &config);
    assert_int_equal(mt_policy_decide_inbound(&config, &local, &peer).mode, MT_INBOUND_PERMISSIVE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt_policy_decide_outbound_table_uses_loopback_or_default_mode),
        cmocka_unit_test(test_mt_policy_decide_inbound_table_decides_by_peer_address),
        cmocka_unit_test(test_mt_policy_decide_inbound_loopback_peer_to_wildcard_is_loopback),
        cmocka_unit_test(test_mt_policy_decide_non_inet_family_is_plain),
        cmocka_unit_test(test_mt_policy_decide_missing_input_fails_closed),
        cmocka_unit_test(test_mt_policy_decide_built_in_defaults_protect_remote_traffic_only),
        cmocka_unit_test(test_mt_policy_decide_outbound_rules_table_first_match_wins),
        cmocka_unit_test(test_mt_policy_decide_inbound_rules_table_local_port_selects_rule),
        cmocka_unit_test(test_mt_policy_inbound_allows_table_checks_the_rule_allow_list),
        cmocka_unit_test(test_mt_policy_outbound_allows_expected_identity_decides),
        cmocka_unit_test(test_mt_policy_identity_matches_table_exact_or_segments_below),
        cmocka_unit_test(test_mt_policy_decide_inbound_missing_local_fails_closed),
        cmocka_unit_test(test_mt_policy_decide_outbound_auto_never_replaces_an_mtls_rule),
        cmocka_unit_test(test_mt_policy_decide_inbound_probe_needs_source_and_port),
        cmocka_unit_test(test_mt_policy_decide_inbound_probe_one_list_alone_is_no_exception),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
