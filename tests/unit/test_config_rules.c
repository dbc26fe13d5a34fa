/*
 * Tests for config/rules.c with ports.c, cidr.c and patterns.c: outbound and inbound rules read
 * into their fields, the limits exact to the entry, patterns stored once and dropped with the
 * rules that used them, and rules written back by mt_config_describe.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "config_support.h"

static const char rules_config[] =
    "outbound = {\n"
    "  loopback = \"mtls\";\n"
    "  rules = (\n"
    "    { to = \"10.0.0.0/8\"; ports = [5432, 6379]; mode = \"mtls\";\n"
    "      identity = \"spiffe://prod.example.com/ns/db/*\"; },\n"
    "    { to = \"2001:db8::/32\"; ports = (\"8000-8999\", 443); mode = \"plain\"; },\n"
    "    { to = \"10.1.2.3\"; mode = \"mtls\"; identity = "
    "\"spiffe://prod.example.com/ns/api/sa/x\"; "
    "},\n"
    "    { to = \"::ffff:10.0.0.0/104\"; mode = \"plain\"; },\n"
    "    { ports = [\"1-65535\"]; mode = \"mtls\"; }\n"
    "  );\n"
    "};\n"
    "inbound = {\n"
    "  default = \"permissive\";\n"
    "  rules = (\n"
    "    { port = 8080; mode = \"permissive\"; allow = [\"spiffe://prod.example.com/ns/web/*\",\n"
    "                                                 \"spiffe://prod.example.com/ns/api/sa/x\"]; "
    "},\n"
    "    { port = 3306; mode = \"strict\"; opaque = true;\n"
    "      allow = [\"spiffe://prod.example.com/ns/api/sa/x\"]; },\n"
    "    { port = \"9000-9099\"; mode = \"plain\"; opaque = false; }\n"
    "  );\n"
    "};\n"
    "skip_ports = [53, 443];\n"
    "detect_timeout_ms = 2500;\n";

static void test_mt_config_load_file_rules_set_their_fields(void **state)
{
    (void)state;
    static struct mt_config config;
    mt_config_set_defaults(&config);
    load_ok(rules_config, &config);
    assert_int_equal(config.outbound.loopback, MT_OUTBOUND_MTLS);
    assert_int_equal(config.outbound.other, MT_OUTBOUND_MTLS);
    assert_int_equal(config.outbound.rule_count, 5);
    const struct mt_outbound_rule *rule = &config.outbound.rules[0];
    static const uint8_t ten[16] = {10};
    assert_int_equal(rule->to.family, AF_INET);
    assert_int_equal(rule->to.prefix_length, 8);
    assert_memory_equal(rule->to.address, ten, 16);
    assert_int_equal(rule->port_count, 2);
    assert_int_equal(rule->ports[0].first, 5432);
    assert_int_equal(rule->ports[0].last, 5432);
    assert_int_equal(rule->ports[1].first, 6379);
    assert_int_equal(rule->mode, MT_OUTBOUND_MTLS);
    assert_string_equal(mt_config_pattern(&config, rule->identity),
                        "spiffe://prod.example.com/ns/db/*");
    assert_int_equal(rule->line, 3 + 1);
    rule = &config.outbound.rules[1];
    assert_int_equal(rule->to.family, AF_INET6);
    assert_int_equal(rule->to.prefix_length, 32);
    assert_int_equal(rule->port_count, 2);
    assert_int_equal(rule->ports[0].first, 8000);
    assert_int_equal(rule->ports[0].last, 8999);
    assert_int_equal(rule->ports[1].first, 443);
    assert_int_equal(rule->ports[1].last, 443);
    assert_int_equal(rule->mode, MT_OUTBOUND_PLAIN);
    assert_int_equal(rule->identity, MT_CONFIG_NO_PATTERN);
    assert_null(mt_config_pattern(&config, rule->identity));
    assert_int_equal(config.outbound.rules[2].to.prefix_length, 32);
    assert_int_equal(config.outbound.rules[3].to.family, AF_INET6);
    assert_int_equal(config.outbound.rules[3].to.prefix_length, 104);
    rule = &config.outbound.rules[4];
    assert_int_equal(rule->to.family, AF_UNSPEC);
    assert_int_equal(rule->ports[0].first, 1);
    assert_int_equal(rule->ports[0].last, 65535);

    assert_int_equal(config.inbound.loopback, MT_INBOUND_PLAIN);
    assert_int_equal(config.inbound.other, MT_INBOUND_PERMISSIVE);
    assert_int_equal(config.inbound.rule_count, 3);
    const struct mt_inbound_rule *in = &config.inbound.rules[0];
    assert_int_equal(in->port.first, 8080);
    assert_int_equal(in->port.last, 8080);
    assert_int_equal(in->mode, MT_INBOUND_PERMISSIVE);
    assert_false(in->opaque);
    assert_int_equal(in->allow_count, 2);
    assert_string_equal(mt_config_pattern(&config, in->allow[0]),
                        "spiffe://prod.example.com/ns/web/*");
    assert_string_equal(mt_config_pattern(&config, in->allow[1]),
                        "spiffe://prod.example.com/ns/api/sa/x");
    in = &config.inbound.rules[1];
    assert_int_equal(in->mode, MT_INBOUND_STRICT);
    assert_true(in->opaque);
    /* The same pattern in two places is stored once. */
    assert_int_equal(in->allow[0], config.inbound.rules[0].allow[1]);
    assert_int_equal(in->allow[0], config.outbound.rules[2].identity);
    in = &config.inbound.rules[2];
    assert_int_equal(in->port.first, 9000);
    assert_int_equal(in->port.last, 9099);
    assert_int_equal(in->mode, MT_INBOUND_PLAIN);
    assert_int_equal(in->allow_count, 0);

    assert_int_equal(config.skip_port_count, 2);
    assert_int_equal(config.skip_ports[0].first, 53);
    assert_int_equal(config.skip_ports[1].last, 443);
    assert_int_equal(config.detect_timeout_ms, 2500);
}

/* Builds "KEY = [...]" or a list of rules with count entries produced by entry(i). */
static void build_list(char *text, size_t capacity, const char *before, const char *after,
                       unsigned count, void (*entry)(char *, size_t, unsigned))
{
    size_t length = (size_t)snprintf(text, capacity, "%s", before);
    for (unsigned i = 0; i < count; i++) {
        char item[1024];
        entry(item, sizeof(item), i);
        length +=
            (size_t)snprintf(text + length, capacity - length, "%s%s", i > 0 ? ",\n" : "", item);
        assert_true(length < capacity);
    }
    length += (size_t)snprintf(text + length, capacity - length, "%s", after);
    assert_true(length < capacity);
}

static void port_entry(char *item, size_t capacity, unsigned i)
{
    snprintf(item, capacity, "%u", 1000 + i);
}

static void outbound_rule_entry(char *item, size_t capacity, unsigned i)
{
    snprintf(item, capacity, "{ to = \"10.%u.0.0/16\"; mode = \"mtls\"; }", i);
}

static void inbound_rule_entry(char *item, size_t capacity, unsigned i)
{
    snprintf(item, capacity, "{ port = %u; mode = \"strict\"; }", 1000 + i);
}

static void allow_entry(char *item, size_t capacity, unsigned i)
{
    snprintf(item, capacity, "\"spiffe://td/ns/n%u/*\"", i);
}

/* A rule whose one allow pattern is long: 512 bytes, all distinct by the rule's number. */
static void long_pattern_rule_entry(char *item, size_t capacity, unsigned i)
{
    char pattern[MT_CONFIG_PATTERN_MAX + 1];
    int prefix = snprintf(pattern, sizeof(pattern), "spiffe://td/n%04u/", i);
    memset(pattern + prefix, 'p', MT_CONFIG_PATTERN_MAX - (size_t)prefix);
    pattern[MT_CONFIG_PATTERN_MAX] = '\0';
    snprintf(item, capacity, "{ port = %u; mode = \"strict\"; allow = [\"%s\"]; }", 1000 + i,
             pattern);
}

static void test_mt_config_load_file_limits_are_exact(void **state)
{
    (void)state;
    static char text[64 * 1024];
    static struct mt_config config;
    static const struct {
        const char *before;
        const char *after;
        unsigned limit;
        void (*entry)(char *, size_t, unsigned);
        const char *message; /* for limit + 1 entries, after "FILE:" */
    } cases[] = {
        {"skip_ports = [", "];\n", MT_CONFIG_SKIP_PORTS_MAX, port_entry,
         "33: skip_ports[32]: too many entries; at most 32 ports or ranges"},
        {"outbound = { rules = ( { mode = \"mtls\"; ports = [", "]; } ); };\n",
         MT_CONFIG_RULE_PORTS_MAX, port_entry,
         "17: outbound.rules[0].ports[16]: too many entries; at most 16 ports or ranges"},
        {"outbound = { rules = (\n", "\n); };\n", MT_CONFIG_OUTBOUND_RULES_MAX, outbound_rule_entry,
         "66: outbound.rules[64]: too many rules; at most 64"},
        {"inbound = { rules = (\n", "\n); };\n", MT_CONFIG_INBOUND_RULES_MAX, inbound_rule_entry,
         "66: inbound.rules[64]: too many rules; at most 64"},
        {"inbound = { rules = ( { port = 1; mode = \"strict\"; allow = [\n", "\n]; } ); };\n",
         MT_CONFIG_ALLOW_MAX, allow_entry,
         "19: inbound.rules[0].allow[16]: too many entries; at most 16 patterns per port"},
        /* 31 patterns of 513 bytes fill 15903 of the 16384 bytes; the 32nd does not fit. */
        {"inbound = { rules = (\n", "\n); };\n", 31, long_pattern_rule_entry,
         "33: inbound.rules[31].allow[0]: identity patterns take more than 16384 bytes in all; "
         "cover several IDs with one \"/*\" pattern"},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        build_list(text, sizeof(text), cases[i].before, cases[i].after, cases[i].limit,
                   cases[i].entry);
        mt_config_set_defaults(&config);
        load_ok(text, &config);
        build_list(text, sizeof(text), cases[i].before, cases[i].after, cases[i].limit + 1,
                   cases[i].entry);
        assert_load_fails(text, cases[i].message);
        teardown(NULL);
    }
}

static void test_mt_config_load_file_long_pattern_is_refused(void **state)
{
    (void)state;
    char pattern[MT_CONFIG_PATTERN_MAX + 2];
    int prefix = snprintf(pattern, sizeof(pattern), "spiffe://td/");
    memset(pattern + prefix, 'p', sizeof(pattern) - 1 - (size_t)prefix);
    pattern[sizeof(pattern) - 1] = '\0';
    char content[1024];
    snprintf(content, sizeof(content),
             "outbound = { rules = ( { mode = \"mtls\"; identity = \"%s\"; } ); };\n", pattern);
    char expected[512];
    snprintf(expected, sizeof(expected),
             "1: outbound.rules[0].identity: \"%.80s\"... is 513 bytes long; a pattern is at "
             "most 512 bytes",
             pattern);
    assert_load_fails(content, expected);
    pattern[MT_CONFIG_PATTERN_MAX] = '\0';
    snprintf(content, sizeof(content),
             "outbound = { rules = ( { mode = \"mtls\"; identity = \"%s\"; } ); };\n", pattern);
    struct mt_config config;
    mt_config_set_defaults(&config);
    load_ok(content, &config);
    assert_string_equal(mt_config_pattern(&config, config.outbound.rules[0].identity), pattern);
}

/*
 * A file that sets rules replaces the rules loaded before, and the patterns only those used make
 * room: 31 long patterns, then 31 other long ones, fit although both sets together would not.
 */
static void test_mt_config_load_file_replaced_rules_free_their_patterns(void **state)
{
    (void)state;
    static char text[64 * 1024];
    static struct mt_config config;
    mt_config_set_defaults(&config);
    load_ok("outbound = { rules = ( { mode = \"mtls\"; identity = \"spiffe://td/kept\"; } ); };\n",
            &config);
    build_list(text, sizeof(text), "inbound = { rules = (\n", "\n); };\n", 31,
               long_pattern_rule_entry);
    load_ok(text, &config);
    /* The same rules again, with other patterns: each rule number shifted by 100. */
    char *cursor = text;
    while ((cursor = strstr(cursor, "spiffe://td/n00")) != NULL) {
        cursor[strlen("spiffe://td/n0")] = '1';
        cursor++;
    }
    load_ok(text, &config);
    assert_int_equal(config.inbound.rule_count, 31);
    assert_int_equal(config.outbound.rule_count, 1);
    assert_string_equal(mt_config_pattern(&config, config.outbound.rules[0].identity),
                        "spiffe://td/kept");
    const char *last = mt_config_pattern(&config, config.inbound.rules[30].allow[0]);
    assert_non_null(last);
    assert_memory_equal(last, "spiffe://td/n0130/", 18);
    assert_true(config.pattern_text_length < 16384);
}

static void test_mt_config_describe_rules_round_trip(void **state)
{
    (void)state;
    static struct mt_config config;
    mt_config_set_defaults(&config);
    load_ok(rules_config, &config);
    strcpy(config.source, "");
    describe_and_reload(&config);
}

static void test_mt_config_describe_rules_text_is_the_documented_form(void **state)
{
    (void)state;
    static struct mt_config config;
    mt_config_set_defaults(&config);
    load_ok(rules_config, &config);
    strcpy(config.source, "/etc/meshtls/meshtls.conf");
    char text[4096];
    size_t length = mt_config_describe(&config, text, sizeof(text));
    assert_int_equal(length, strlen(text));
    assert_string_equal(
        text,
        "# meshtls configuration, from \"/etc/meshtls/meshtls.conf\"\n"
        "agent_socket = \"/run/meshtls/agent.sock\";\n"
        "agent_uid = 0;\n"
        "outbound = {\n"
        "    loopback = \"mtls\";\n"
        "    default = \"mtls\";\n"
        "    rules = (\n"
        "        { to = \"10.0.0.0/8\"; ports = [5432, 6379]; mode = \"mtls\"; identity = "
        "\"spiffe://prod.example.com/ns/db/*\"; },\n"
        "        { to = \"2001:db8::/32\"; ports = [\"8000-8999\", \"443\"]; mode = \"plain\"; },\n"
        "        { to = \"10.1.2.3\"; mode = \"mtls\"; identity = "
        "\"spiffe://prod.example.com/ns/api/sa/x\"; },\n"
        "        { to = \"::ffff:10.0.0.0/104\"; mode = \"plain\"; },\n"
        "        { ports = [\"1-65535\"]; mode = \"mtls\"; }\n"
        "    );\n"
        "};\n"
        "inbound = {\n"
        "    loopback = \"plain\";\n"
        "    default = \"permissive\";\n"
        "    probe_sources = []; probe_ports = [];\n"
        "    rules = (\n"
        "        { port = 8080; mode = \"permissive\"; allow = "
        "[\"spiffe://prod.example.com/ns/web/*\", \"spiffe://prod.example.com/ns/api/sa/x\"]; },\n"
        "        { port = 3306; mode = \"strict\"; allow = "
        "[\"spiffe://prod.example.com/ns/api/sa/x\"]; opaque = true; },\n"
        "        { port = \"9000-9099\"; mode = \"plain\"; }\n"
        "    );\n"
        "};\n"
        "skip_ports = [53, 443];\n"
        "log_level = \"warn\";\n"
        "trust_domain = \"\";\n"
        "handshake_timeout_ms = 10000;\n"
        "detect_timeout_ms = 2500;\n"
        "agent_timeout_ms = 5000;\n"
        "agent_wait_ms = 5000;\n"
        "resumption_s = 600;\n"
        "post_quantum = \"prefer\";\n");
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_mt_config_load_file_rules_set_their_fields),
        TEST(test_mt_config_load_file_limits_are_exact),
        TEST(test_mt_config_load_file_long_pattern_is_refused),
        TEST(test_mt_config_load_file_replaced_rules_free_their_patterns),
        TEST(test_mt_config_describe_rules_round_trip),
        TEST(test_mt_config_describe_rules_text_is_the_documented_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
