/*
 * Tests for policy/policy.c: every combination of configured modes against loopback, remote,
 * v4-mapped and non-IP addresses, for both directions.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/un.h>

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
            if (mt_policy_decide_outbound(&configs[c], &destination) != expected)
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
                if (mt_policy_decide_inbound(&configs[c], &local, &peer) != expected)
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
    assert_int_equal(mt_policy_decide_inbound(&config, &local, &peer), MT_INBOUND_PLAIN);
    peer = make_address("10.1.2.3", 40000);
    assert_int_equal(mt_policy_decide_inbound(&config, &local, &peer), MT_INBOUND_STRICT);
}

static void test_mt_policy_decide_non_inet_family_is_plain(void **state)
{
    (void)state;
    /* Every mode secure, so plain can only come from the family rule. */
    struct mt_config config =
        config_with(MT_OUTBOUND_MTLS, MT_OUTBOUND_MTLS, MT_INBOUND_STRICT, MT_INBOUND_STRICT);
    struct sockaddr_storage un = make_address("unix", 0);
    assert_int_equal(mt_policy_decide_outbound(&config, &un), MT_OUTBOUND_PLAIN);
    assert_int_equal(mt_policy_decide_inbound(&config, &un, &un), MT_INBOUND_PLAIN);
    struct sockaddr_storage unspecified;
    memset(&unspecified, 0, sizeof(unspecified));
    assert_int_equal(mt_policy_decide_outbound(&config, &unspecified), MT_OUTBOUND_PLAIN);
}

/* A missing input is a bug upstream; it must not turn into a plaintext connection. */
static void test_mt_policy_decide_missing_input_fails_closed(void **state)
{
    (void)state;
    struct mt_config config =
        config_with(MT_OUTBOUND_PLAIN, MT_OUTBOUND_PLAIN, MT_INBOUND_PLAIN, MT_INBOUND_PLAIN);
    struct sockaddr_storage address = make_address("10.0.0.7", 80);
    assert_int_equal(mt_policy_decide_outbound(NULL, &address), MT_OUTBOUND_MTLS);
    assert_int_equal(mt_policy_decide_outbound(&config, NULL), MT_OUTBOUND_MTLS);
    assert_int_equal(mt_policy_decide_inbound(NULL, &address, &address), MT_INBOUND_STRICT);
    assert_int_equal(mt_policy_decide_inbound(&config, &address, NULL), MT_INBOUND_STRICT);
}

static void test_mt_policy_decide_built_in_defaults_protect_remote_traffic_only(void **state)
{
    (void)state;
    struct mt_config config;
    mt_config_set_defaults(&config);
    struct sockaddr_storage loopback = make_address("127.0.0.1", 80);
    struct sockaddr_storage remote = make_address("10.0.0.7", 80);
    assert_int_equal(mt_policy_decide_outbound(&config, &loopback), MT_OUTBOUND_PLAIN);
    assert_int_equal(mt_policy_decide_outbound(&config, &remote), MT_OUTBOUND_MTLS);
    assert_int_equal(mt_policy_decide_inbound(&config, &remote, &loopback), MT_INBOUND_PLAIN);
    assert_int_equal(mt_policy_decide_inbound(&config, &loopback, &remote), MT_INBOUND_STRICT);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
