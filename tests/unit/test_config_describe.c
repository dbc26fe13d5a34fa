/*
 * Tests for config/describe.c: the effective configuration written as libconfig text loads back
 * into the same configuration, in the documented form, cut and terminated in a small buffer.
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

static void test_mt_config_describe_defaults_round_trip(void **state)
{
    (void)state;
    struct mt_config config;
    mt_config_set_defaults(&config);
    describe_and_reload(&config);
}

static void test_mt_config_describe_every_field_round_trips(void **state)
{
    (void)state;
    struct mt_config config;
    set_non_defaults(&config);
    /*
     * Characters that need escaping in a libconfig string must survive the trip; the backslash
     * is followed by 'n' so that an unescaped one would read back as a newline.
     */
    strcpy(config.agent_socket, "/run/odd \"name\"\\new\ttab.sock");
    strcpy(config.source, "/etc/meshtls/a\nb.conf");
    describe_and_reload(&config);
}

/* "auto" as a default and as a rule's mode reads back as written, never as mtls or plain. */
static void test_mt_config_describe_auto_mode_round_trips(void **state)
{
    (void)state;
    static struct mt_config config;
    set_non_defaults(&config);
    config.outbound.loopback = MT_OUTBOUND_AUTO;
    config.outbound.other = MT_OUTBOUND_AUTO;
    config.outbound.rule_count = 1;
    config.outbound.rules[0] = (struct mt_outbound_rule){
        .to = {.family = AF_INET, .prefix_length = 8, .address = {10}},
        .port_count = 1,
        .ports = {{8080, 8080}},
        .mode = MT_OUTBOUND_AUTO,
        .identity = MT_CONFIG_NO_PATTERN,
    };
    describe_and_reload(&config);
    char text[8192];
    mt_config_describe(&config, text, sizeof(text));
    assert_non_null(strstr(text, "default = \"auto\";"));
    assert_non_null(strstr(text, "mode = \"auto\";"));
}

static void test_mt_config_describe_text_is_the_documented_form(void **state)
{
    (void)state;
    struct mt_config config;
    mt_config_set_defaults(&config);
    char text[2048];
    mt_config_describe(&config, text, sizeof(text));
    assert_string_equal(text, "# meshtls configuration, from built-in defaults\n"
                              "agent_socket = \"/run/meshtls/agent.sock\";\n"
                              "agent_uid = 0;\n"
                              "outbound = { loopback = \"plain\"; default = \"mtls\"; };\n"
                              "inbound = { loopback = \"plain\"; default = \"strict\"; "
                              "probe_sources = []; probe_ports = []; };\n"
                              "skip_ports = [];\n"
                              "log_level = \"warn\";\n"
                              "trust_domain = \"\";\n"
                              "handshake_timeout_ms = 10000;\n"
                              "detect_timeout_ms = 10000;\n"
                              "agent_timeout_ms = 5000;\n"
                              "agent_wait_ms = 5000;\n"
                              "resumption_s = 600;\n"
                              "post_quantum = \"prefer\";\n");
}

static void test_mt_config_describe_small_buffer_is_cut_and_terminated(void **state)
{
    (void)state;
    struct mt_config config;
    mt_config_set_defaults(&config);
    char text[32];
    memset(text, 'x', sizeof(text));
    size_t needed = mt_config_describe(&config, text, 16);
    assert_int_equal(strlen(text), 15);
    assert_int_equal(text[16], 'x');
    /* The result is the length of the whole text, so the caller can size a buffer. */
    static char whole[4096];
    assert_int_equal(mt_config_describe(&config, whole, sizeof(whole)), needed);
    assert_int_equal(strlen(whole), needed);
    assert_int_equal(mt_config_describe(&config, NULL, 0), needed);
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_mt_config_describe_defaults_round_trip),
        TEST(test_mt_config_describe_every_field_round_trips),
        TEST(test_mt_config_describe_auto_mode_round_trips),
        TEST(test_mt_config_describe_text_is_the_documented_form),
        TEST(test_mt_config_describe_small_buffer_is_cut_and_terminated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
