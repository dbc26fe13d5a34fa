/*
 * Tests for config/ (the library's configuration, read through config/reader.c): every key, the
 * exact text of every error message (file, line, key and the valid values), that a failed load
 * changes nothing, the environment overrides, the limits on rules and patterns, and that
 * mt_config_describe writes text that loads back into the same configuration.
 *
 * Each test writes its configuration to a fresh mkstemp file, removed again by the teardown.
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

#include "config/config.h"

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))
#define TEMP_PATH_MAX 64
#define MAX_TEMP_FILES 8

static const char *const environment_variables[] = {"MESHTLS_CONFIG", "MESHTLS_AGENT_SOCKET",
                                                    "MESHTLS_AGENT_UID", "MESHTLS_LOG"};

/* Files created by the running test; the teardown removes them even when an assert fails. */
static char temp_files[MAX_TEMP_FILES][TEMP_PATH_MAX];
static size_t temp_file_count;

static const char *write_temp_file(const char *content)
{
    assert_true(temp_file_count < MAX_TEMP_FILES);
    char *path = temp_files[temp_file_count];
    const char *directory = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
    assert_true(snprintf(path, TEMP_PATH_MAX, "%s/test_config.XXXXXX", directory) < TEMP_PATH_MAX);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    temp_file_count++;
    size_t length = strlen(content);
    assert_int_equal(write(fd, content, length), (ssize_t)length);
    assert_int_equal(close(fd), 0);
    return path;
}

static int setup(void **state)
{
    (void)state;
    temp_file_count = 0;
    for (size_t i = 0; i < COUNT_OF(environment_variables); i++)
        unsetenv(environment_variables[i]);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < temp_file_count; i++)
        unlink(temp_files[i]);
    temp_file_count = 0;
    for (size_t i = 0; i < COUNT_OF(environment_variables); i++)
        unsetenv(environment_variables[i]);
    return 0;
}

/* A configuration unlike the defaults in every field, so "unchanged" and "reset" differ. */
static void set_non_defaults(struct mt_config *config)
{
    mt_config_set_defaults(config);
    strcpy(config->source, "/previous.conf");
    strcpy(config->agent_socket, "/previous/agent.sock");
    config->log_level = MT_LOG_DEBUG;
    config->outbound.loopback = MT_OUTBOUND_MTLS;
    config->outbound.other = MT_OUTBOUND_PLAIN;
    config->inbound.loopback = MT_INBOUND_STRICT;
    config->inbound.other = MT_INBOUND_PLAIN;
    strcpy(config->trust_domain, "previous.example");
    config->handshake_timeout_ms = 1234;
    config->detect_timeout_ms = 2345;
    config->agent_timeout_ms = 4321;
    config->agent_wait_ms = 321;
    config->agent_uid = 999;
    config->resumption_s = 77;
    config->skip_port_count = 1;
    config->skip_ports[0] = (struct mt_port_range){22, 22};
}

static void assert_patterns_equal(const struct mt_config *a, uint16_t a_reference,
                                  const struct mt_config *b, uint16_t b_reference)
{
    const char *a_pattern = mt_config_pattern(a, a_reference);
    const char *b_pattern = mt_config_pattern(b, b_reference);
    if (a_pattern == NULL || b_pattern == NULL)
        assert_true(a_pattern == NULL && b_pattern == NULL);
    else
        assert_string_equal(a_pattern, b_pattern);
}

static void assert_port_ranges_equal(const struct mt_port_range *a, const struct mt_port_range *b,
                                     unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        assert_int_equal(a[i].first, b[i].first);
        assert_int_equal(a[i].last, b[i].last);
    }
}

/* Rules compared by meaning: patterns by their text, wherever they are stored. */
static void assert_rules_equal(const struct mt_config *a, const struct mt_config *b)
{
    assert_int_equal(a->outbound.rule_count, b->outbound.rule_count);
    for (unsigned r = 0; r < a->outbound.rule_count; r++) {
        const struct mt_outbound_rule *x = &a->outbound.rules[r];
        const struct mt_outbound_rule *y = &b->outbound.rules[r];
        assert_int_equal(x->to.family, y->to.family);
        assert_int_equal(x->to.prefix_length, y->to.prefix_length);
        assert_memory_equal(x->to.address, y->to.address, sizeof(x->to.address));
        assert_int_equal(x->port_count, y->port_count);
        assert_port_ranges_equal(x->ports, y->ports, x->port_count);
        assert_int_equal(x->mode, y->mode);
        assert_patterns_equal(a, x->identity, b, y->identity);
    }
    assert_int_equal(a->inbound.rule_count, b->inbound.rule_count);
    for (unsigned r = 0; r < a->inbound.rule_count; r++) {
        const struct mt_inbound_rule *x = &a->inbound.rules[r];
        const struct mt_inbound_rule *y = &b->inbound.rules[r];
        assert_port_ranges_equal(&x->port, &y->port, 1);
        assert_int_equal(x->mode, y->mode);
        assert_int_equal(x->opaque, y->opaque);
        assert_int_equal(x->allow_count, y->allow_count);
        for (unsigned i = 0; i < x->allow_count; i++)
            assert_patterns_equal(a, x->allow[i], b, y->allow[i]);
    }
    assert_int_equal(a->skip_port_count, b->skip_port_count);
    assert_port_ranges_equal(a->skip_ports, b->skip_ports, a->skip_port_count);
}

static void assert_configs_equal(const struct mt_config *a, const struct mt_config *b)
{
    assert_string_equal(a->source, b->source);
    assert_string_equal(a->agent_socket, b->agent_socket);
    assert_int_equal(a->agent_uid, b->agent_uid);
    assert_int_equal(a->log_level, b->log_level);
    assert_int_equal(a->outbound.loopback, b->outbound.loopback);
    assert_int_equal(a->outbound.other, b->outbound.other);
    assert_int_equal(a->inbound.loopback, b->inbound.loopback);
    assert_int_equal(a->inbound.other, b->inbound.other);
    assert_string_equal(a->trust_domain, b->trust_domain);
    assert_int_equal(a->handshake_timeout_ms, b->handshake_timeout_ms);
    assert_int_equal(a->detect_timeout_ms, b->detect_timeout_ms);
    assert_int_equal(a->agent_timeout_ms, b->agent_timeout_ms);
    assert_int_equal(a->agent_wait_ms, b->agent_wait_ms);
    assert_int_equal(a->resumption_s, b->resumption_s);
    assert_rules_equal(a, b);
}

/* agent_wait_ms may be 0 (do not wait for the agent), unlike the timeouts. */
static void test_mt_config_load_file_agent_wait_zero_and_bounds_accepted(void **state)
{
    (void)state;
    char path[] = "/tmp/meshtls-test-wait-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "agent_wait_ms = 0;\n";
    assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
    close(fd);
    struct mt_config config;
    mt_config_set_defaults(&config);
    assert_int_equal(config.agent_wait_ms, 5000);
    char message[MT_CONFIG_MESSAGE_MAX];
    assert_true(mt_result_is_ok(mt_config_load_file(path, &config, MT_TEXT_ON(message))));
    assert_int_equal(config.agent_wait_ms, 0);
    unlink(path);
}

/* resumption_s: 600 by default; 0 (never resume) and the maximum are accepted. */
static void test_mt_config_load_file_resumption_zero_and_maximum_accepted(void **state)
{
    (void)state;
    static const char *const texts[] = {"resumption_s = 0;\n", "resumption_s = 86400;\n"};
    static const unsigned expected[] = {0, 86400};
    for (size_t i = 0; i < 2; i++) {
        char path[] = "/tmp/meshtls-test-resumption-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        size_t length = strlen(texts[i]);
        assert_int_equal(write(fd, texts[i], length), (ssize_t)length);
        close(fd);
        struct mt_config config;
        mt_config_set_defaults(&config);
        assert_int_equal(config.resumption_s, 600);
        char message[MT_CONFIG_MESSAGE_MAX];
        assert_true(mt_result_is_ok(mt_config_load_file(path, &config, MT_TEXT_ON(message))));
        assert_int_equal(config.resumption_s, expected[i]);
        unlink(path);
    }
}

/* Loads content and expects exactly the message "<file>:<suffix>" with config untouched. */
static void assert_load_fails(const char *content, const char *expected_suffix)
{
    const char *path = write_temp_file(content);
    struct mt_config config;
    set_non_defaults(&config);
    struct mt_config before;
    memcpy(&before, &config, sizeof(config));
    char message[MT_CONFIG_MESSAGE_MAX];
    mt_result result = mt_config_load_file(path, &config, MT_TEXT_ON(message));
    char expected[MT_CONFIG_MESSAGE_MAX];
    snprintf(expected, sizeof(expected), "%s:%s", path, expected_suffix);
    if (result.error != MT_ERR_CONFIG)
        fail_msg("config \"%s\": %s, message \"%s\"", content, mt_error_name(result.error),
                 message);
    assert_string_equal(message, expected);
    assert_memory_equal(&config, &before, sizeof(config));
}

static void test_mt_config_set_defaults_values_match_the_documentation(void **state)
{
    (void)state;
    struct mt_config config;
    memset(&config, 0x5a, sizeof(config));
    mt_config_set_defaults(&config);
    assert_string_equal(config.source, "");
    assert_string_equal(config.agent_socket, "/run/meshtls/agent.sock");
    assert_int_equal(config.agent_uid, 0);
    assert_int_equal(config.log_level, MT_LOG_WARN);
    assert_int_equal(config.outbound.loopback, MT_OUTBOUND_PLAIN);
    assert_int_equal(config.outbound.other, MT_OUTBOUND_MTLS);
    assert_int_equal(config.inbound.loopback, MT_INBOUND_PLAIN);
    assert_int_equal(config.inbound.other, MT_INBOUND_STRICT);
    assert_string_equal(config.trust_domain, "");
    assert_int_equal(config.handshake_timeout_ms, 10000);
    assert_int_equal(config.detect_timeout_ms, 10000);
    assert_int_equal(config.agent_timeout_ms, 5000);
    assert_int_equal(config.outbound.rule_count, 0);
    assert_int_equal(config.inbound.rule_count, 0);
    assert_int_equal(config.skip_port_count, 0);
}

static void test_mt_config_load_file_every_key_sets_its_field(void **state)
{
    (void)state;
    const char *path = write_temp_file("# every key, none at its default\n"
                                       "agent_socket = \"/var/run/mesh/agent.sock\";\n"
                                       "agent_uid = 998;\n"
                                       "outbound = { loopback = \"mtls\"; default = \"plain\"; };\n"
                                       "inbound = {\n"
                                       "    loopback = \"strict\";\n"
                                       "    default = \"plain\";\n"
                                       "};\n"
                                       "log_level = \"info\";\n"
                                       "trust_domain = \"prod.example.com\";\n"
                                       "handshake_timeout_ms = 100;\n"
                                       "agent_timeout_ms = 600000L;\n");
    struct mt_config config;
    mt_config_set_defaults(&config);
    char message[MT_CONFIG_MESSAGE_MAX];
    mt_result result = mt_config_load_file(path, &config, MT_TEXT_ON(message));
    if (!mt_result_is_ok(result))
        fail_msg("%s", message);
    assert_string_equal(message, "");
    assert_string_equal(config.source, path);
    assert_string_equal(config.agent_socket, "/var/run/mesh/agent.sock");
    assert_int_equal(config.agent_uid, 998);
    assert_int_equal(config.outbound.loopback, MT_OUTBOUND_MTLS);
    assert_int_equal(config.outbound.other, MT_OUTBOUND_PLAIN);
    assert_int_equal(config.inbound.loopback, MT_INBOUND_STRICT);
    assert_int_equal(config.inbound.other, MT_INBOUND_PLAIN);
    assert_int_equal(config.log_level, MT_LOG_INFO);
    assert_string_equal(config.trust_domain, "prod.example.com");
    assert_int_equal(config.handshake_timeout_ms, 100);
    assert_int_equal(config.agent_timeout_ms, 600000);
}

static void test_mt_config_load_file_log_levels_each_parse(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum mt_log_level level;
    } cases[] = {
        {"error", MT_LOG_ERROR},
        {"warn", MT_LOG_WARN},
        {"info", MT_LOG_INFO},
        {"debug", MT_LOG_DEBUG},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        char content[64];
        snprintf(content, sizeof(content), "log_level = \"%s\";\n", cases[i].name);
        const char *path = write_temp_file(content);
        struct mt_config config;
        set_non_defaults(&config);
        config.log_level = cases[i].level == MT_LOG_DEBUG ? MT_LOG_ERROR : MT_LOG_DEBUG;
        assert_int_equal(mt_config_load_file(path, &config, NULL).error, MT_OK);
        assert_int_equal(config.log_level, cases[i].level);
        unlink(path);
        temp_file_count--;
    }
}

static void test_mt_config_load_file_absent_keys_keep_previous_values(void **state)
{
    (void)state;
    const char *path = write_temp_file("# only one key\n\nlog_level = \"error\";\n");
    struct mt_config config;
    set_non_defaults(&config);
    struct mt_config expected = config;
    expected.log_level = MT_LOG_ERROR;
    strcpy(expected.source, path);
    assert_int_equal(mt_config_load_file(path, &config, NULL).error, MT_OK);
    assert_configs_equal(&config, &expected);

    const char *empty = write_temp_file("");
    set_non_defaults(&config);
    expected = config;
    strcpy(expected.source, empty);
    assert_int_equal(mt_config_load_file(empty, &config, NULL).error, MT_OK);
    assert_configs_equal(&config, &expected);
}

static void test_mt_config_load_file_boundary_values_are_accepted(void **state)
{
    (void)state;
    char socket_path[MT_CONFIG_SOCKET_PATH_MAX];
    memset(socket_path, 's', sizeof(socket_path) - 1);
    socket_path[0] = '/';
    socket_path[sizeof(socket_path) - 1] = '\0';
    static char trust_domain[255 + 1];
    memset(trust_domain, 'd', 255);
    char content[1024];
    snprintf(content, sizeof(content),
             "agent_socket = \"%s\";\ntrust_domain = \"%s\";\nhandshake_timeout_ms = 600000;\n"
             "agent_timeout_ms = 100;\n",
             socket_path, trust_domain);
    const char *path = write_temp_file(content);
    struct mt_config config;
    mt_config_set_defaults(&config);
    char message[MT_CONFIG_MESSAGE_MAX];
    mt_result result = mt_config_load_file(path, &config, MT_TEXT_ON(message));
    if (!mt_result_is_ok(result))
        fail_msg("%s", message);
    assert_int_equal(strlen(config.agent_socket), 107);
    assert_string_equal(config.agent_socket, socket_path);
    assert_string_equal(config.trust_domain, trust_domain);
    assert_int_equal(config.handshake_timeout_ms, 600000);
    assert_int_equal(config.agent_timeout_ms, 100);
}

static const struct {
    const char *content;
    const char *message; /* what follows "FILE:" */
} invalid_configs[] = {
    {"# comment\n\noutbound = { loopback = \"tls\"; };\n",
     "3: outbound.loopback: \"tls\" is not one of \"mtls\", \"plain\""},
    {"outbound = {\n  loopback = \"plain\";\n  default = \"TLS\";\n};\n",
     "3: outbound.default: \"TLS\" is not one of \"mtls\", \"plain\""},
    {"inbound = { loopback = \"mtls\"; };\n",
     "1: inbound.loopback: \"mtls\" is not one of \"strict\", \"permissive\", \"plain\""},
    {"inbound = { default = \"Permissive\"; };\n",
     "1: inbound.default: \"Permissive\" is not one of \"strict\", \"permissive\", \"plain\""},
    {"inbound = { default = 1; };\n",
     "1: inbound.default: expected a string (one of \"strict\", \"permissive\", \"plain\"), got "
     "an integer"},
    {"log_level = \"info\";\nlog_level = \"debug\";\n", "2: syntax error: duplicate setting name"},
    {"log_level = \"verbose\";\n",
     "1: log_level: \"verbose\" is not one of \"error\", \"warn\", \"info\", \"debug\""},
    {"log_level = \"\";\n",
     "1: log_level: \"\" is not one of \"error\", \"warn\", \"info\", \"debug\""},
    {"log_level = 3;\n", "1: log_level: expected a string (one of \"error\", \"warn\", \"info\", "
                         "\"debug\"), got an integer"},
    {"log_level = \"info\";\noutbund = { default = \"mtls\"; };\n",
     "2: unknown key \"outbund\"; valid keys: agent_socket, agent_uid, outbound, inbound, "
     "log_level, "
     "trust_domain, handshake_timeout_ms, detect_timeout_ms, agent_timeout_ms, agent_wait_ms, "
     "resumption_s, skip_ports"},
    {"outbound = {\n  default = \"mtls\";\n  loopbak = \"plain\";\n};\n",
     "3: outbound: unknown key \"loopbak\"; valid keys: loopback, default, rules"},
    {"inbound = { ports = 443; };\n",
     "1: inbound: unknown key \"ports\"; valid keys: loopback, default, rules"},
    {"outbound = \"mtls\";\n", "1: outbound: expected a group (outbound = { loopback = \"plain\"; "
                               "default = \"mtls\"; };), got a string"},
    {"inbound = ( \"plain\" );\n",
     "1: inbound: expected a group (inbound = { loopback = \"plain\"; "
     "default = \"strict\"; };), got a list"},
    {"agent_socket = \"run/agent.sock\";\n",
     "1: agent_socket: \"run/agent.sock\" is not an absolute path"},
    {"agent_socket = \"\";\n", "1: agent_socket: \"\" is not an absolute path"},
    {"agent_socket = 5;\n",
     "1: agent_socket: expected a string (an absolute path), got an integer"},
    {"agent_socket = [\"/a\"];\n",
     "1: agent_socket: expected a string (an absolute path), got an array"},
    {"trust_domain = \"Example.org\";\n",
     "1: trust_domain: \"Example.org\" is not a valid trust domain name (1 to 255 characters of "
     "a-z, 0-9, '.', '-', '_'; \"\" for the agent's)"},
    {"trust_domain = \"spiffe://example.org\";\n",
     "1: trust_domain: \"spiffe://example.org\" is not a valid trust domain name (1 to 255 "
     "characters of a-z, 0-9, '.', '-', '_'; \"\" for the agent's)"},
    {"trust_domain = true;\n", "1: trust_domain: expected a string (\"\" or a trust domain name "
                               "such as \"example.org\"), got a boolean"},
    {"handshake_timeout_ms = 99;\n",
     "1: handshake_timeout_ms: 99 is out of range; valid values: 100 .. 600000"},
    {"handshake_timeout_ms = 600001;\n",
     "1: handshake_timeout_ms: 600001 is out of range; valid values: 100 .. 600000"},
    {"handshake_timeout_ms = -1;\n",
     "1: handshake_timeout_ms: -1 is out of range; valid values: 100 .. 600000"},
    {"agent_wait_ms = -1;\n", "1: agent_wait_ms: -1 is out of range; valid values: 0 .. 600000"},
    {"agent_uid = -1;\n", "1: agent_uid: -1 is out of range; valid values: 0 .. 2147483647"},
    {"agent_uid = 4294967295L;\n",
     "1: agent_uid: 4294967295 is out of range; valid values: 0 .. 2147483647"},
    {"agent_uid = \"root\";\n",
     "1: agent_uid: expected an integer (0 .. 2147483647), got a string"},
    {"resumption_s = 86401;\n", "1: resumption_s: 86401 is out of range; valid values: 0 .. 86400"},
    {"resumption_s = \"10m\";\n",
     "1: resumption_s: expected an integer (0 .. 86400), got a string"},
    {"handshake_timeout_ms = 10.5;\n", "1: handshake_timeout_ms: expected an integer (100 .. "
                                       "600000), got a floating-point number"},
    {"agent_timeout_ms = \"5000\";\n",
     "1: agent_timeout_ms: expected an integer (100 .. 600000), got a string"},
    {"agent_timeout_ms = 10000000000L;\n",
     "1: agent_timeout_ms: 10000000000 is out of range; valid values: 100 .. 600000"},
    {"log_level = \"info\";\noutbound = { default = ; };\n", "2: syntax error"},
    {"log_level = \"info;\n", "2: syntax error"},
    {"# fine\nlog_level = \"info\";\n\n\n}\n", "5: syntax error"},
    /* A value quoted in a message stays on one line whatever bytes it holds. */
    {"outbound = { default = \"a\\nb\\\"c\"; };\n",
     "1: outbound.default: \"a\\x0ab\\\"c\" is not one of \"mtls\", \"plain\""},
    /* Rules, skip_ports and detect_timeout_ms. */
    {"detect_timeout_ms = 50;\n",
     "1: detect_timeout_ms: 50 is out of range; valid values: 100 .. 600000"},
    {"skip_ports = 53;\n", "1: skip_ports: expected an array of ports (such as [5432, 6379] or "
                           "[\"8000-8999\"]), got an integer"},
    {"skip_ports = [53,\n 0];\n", "2: skip_ports[1]: 0 is out of range; valid values: 1 .. 65535"},
    {"skip_ports = [65536];\n",
     "1: skip_ports[0]: 65536 is out of range; valid values: 1 .. 65535"},
    {"skip_ports = [\"53-\"];\n",
     "1: skip_ports[0]: \"53-\" is not a port or port range (such as 8080 or \"8000-8999\"; ports "
     "1 .. 65535, FIRST <= LAST)"},
    {"skip_ports = [\"90-80\"];\n",
     "1: skip_ports[0]: \"90-80\" is not a port or port range (such as 8080 or \"8000-8999\"; "
     "ports 1 .. 65535, FIRST <= LAST)"},
    {"skip_ports = [\" 80\"];\n",
     "1: skip_ports[0]: \" 80\" is not a port or port range (such as 8080 or \"8000-8999\"; ports "
     "1 .. 65535, FIRST <= LAST)"},
    {"skip_ports = [true];\n",
     "1: skip_ports[0]: expected a port (such as 8080 or \"8000-8999\"), got a boolean"},
    {"outbound = { rules = { to = \"10.0.0.0/8\"; }; };\n",
     "1: outbound.rules: expected a list of rules (outbound.rules = ( { to = \"10.0.0.0/8\"; ports "
     "= [5432]; mode = \"mtls\"; } );), got a group"},
    {"outbound = { rules = ( \"10.0.0.0/8\" ); };\n",
     "1: outbound.rules[0]: expected a group ({ to = \"10.0.0.0/8\"; ports = [5432]; mode = "
     "\"mtls\"; }), got a string"},
    {"outbound = { rules = (\n  { mode = \"mtls\"; },\n  { to = \"10.0.0.0/8\"; } ); };\n",
     "3: outbound.rules[1]: missing key mode (one of \"mtls\", \"plain\")"},
    {"outbound = { rules = ( { to = \"10.0.0.0/8\"; mode = \"tls\"; } ); };\n",
     "1: outbound.rules[0].mode: \"tls\" is not one of \"mtls\", \"plain\""},
    {"outbound = { rules = ( { to = \"10.0.0.0/8\"; port = 80; mode = \"mtls\"; } ); };\n",
     "1: outbound.rules[0]: unknown key \"port\"; valid keys: to, ports, mode, identity"},
    {"outbound = { rules = ( { to = \"10.0.0.1/8\"; mode = \"mtls\"; } ); };\n",
     "1: outbound.rules[0].to: \"10.0.0.1/8\" has bits set beyond its /8 prefix; the network is "
     "\"10.0.0.0/8\""},
    {"outbound = { rules = ( { to = \"2001:db8::1/32\"; mode = \"mtls\"; } ); };\n",
     "1: outbound.rules[0].to: \"2001:db8::1/32\" has bits set beyond its /32 prefix; the network "
     "is \"2001:db8::/32\""},
    {"outbound = { rules = ( { to = \"10.0.0.0/33\"; mode = \"mtls\"; } ); };\n",
     "1: outbound.rules[0].to: \"10.0.0.0/33\" is not an IP address or CIDR (such as "
     "\"10.0.0.0/8\", \"2001:db8::/32\" or \"10.1.2.3\")"},
    {"outbound = { rules = ( { to = \"10.0/8\"; mode = \"mtls\"; } ); };\n",
     "1: outbound.rules[0].to: \"10.0/8\" is not an IP address or CIDR (such as \"10.0.0.0/8\", "
     "\"2001:db8::/32\" or \"10.1.2.3\")"},
    {"outbound = { rules = ( { to = \"fe80::1%eth0\"; mode = \"mtls\"; } ); };\n",
     "1: outbound.rules[0].to: \"fe80::1%eth0\" is not an IP address or CIDR (such as "
     "\"10.0.0.0/8\", \"2001:db8::/32\" or \"10.1.2.3\")"},
    {"outbound = { rules = ( { to = \"10.0.0.0/\"; mode = \"mtls\"; } ); };\n",
     "1: outbound.rules[0].to: \"10.0.0.0/\" is not an IP address or CIDR (such as "
     "\"10.0.0.0/8\", \"2001:db8::/32\" or \"10.1.2.3\")"},
    {"outbound = { rules = ( { to = [\"10.0.0.0/8\"]; mode = \"mtls\"; } ); };\n",
     "1: outbound.rules[0].to: expected a string (an IP address or CIDR, such as \"10.0.0.0/8\", "
     "\"2001:db8::/32\" or \"10.1.2.3\"), got an array"},
    {"outbound = { rules = ( { ports = []; mode = \"mtls\"; } ); };\n",
     "1: outbound.rules[0].ports: an empty list matches no port; leave the key out to match every "
     "port"},
    {"outbound = { rules = ( { ports = [80, 70000]; mode = \"mtls\"; } ); };\n",
     "1: outbound.rules[0].ports[1]: 70000 is out of range; valid values: 1 .. 65535"},
    {"outbound = { rules = ( { mode = \"plain\";\n identity = \"spiffe://td/ns/db/*\"; } ); };\n",
     "2: outbound.rules[0].identity: only a rule with mode \"mtls\" can expect a server identity"},
    {"outbound = { rules = ( { mode = \"mtls\"; identity = \"spiffe://td/ns/db*\"; } ); };\n",
     "1: outbound.rules[0].identity: \"spiffe://td/ns/db*\" is not an identity pattern (a SPIFFE "
     "ID such as \"spiffe://example.org/ns/db/sa/pg\", or one followed by \"/*\" for every ID "
     "below it)"},
    {"outbound = { rules = ( { mode = \"mtls\"; identity = \"ns/db\"; } ); };\n",
     "1: outbound.rules[0].identity: \"ns/db\" is not an identity pattern (a SPIFFE ID such as "
     "\"spiffe://example.org/ns/db/sa/pg\", or one followed by \"/*\" for every ID below it)"},
    {"inbound = { rules = ( { mode = \"strict\"; } ); };\n",
     "1: inbound.rules[0]: missing key port (such as 8080 or \"8000-8999\")"},
    {"inbound = { rules = ( { port = 80; } ); };\n",
     "1: inbound.rules[0]: missing key mode (one of \"strict\", \"permissive\", \"plain\")"},
    {"inbound = { rules = ( { port = 80; mode = \"mtls\"; } ); };\n",
     "1: inbound.rules[0].mode: \"mtls\" is not one of \"strict\", \"permissive\", \"plain\""},
    {"inbound = { rules = ( { port = \"80-79\"; mode = \"strict\"; } ); };\n",
     "1: inbound.rules[0].port: \"80-79\" is not a port or port range (such as 8080 or "
     "\"8000-8999\"; ports 1 .. 65535, FIRST <= LAST)"},
    {"inbound = { rules = ( { port = 80; mode = \"strict\"; opaque = \"yes\"; } ); };\n",
     "1: inbound.rules[0].opaque: expected a boolean (true or false), got a string"},
    {"inbound = { rules = ( { port = 80; mode = \"strict\"; allow = []; } ); };\n",
     "1: inbound.rules[0].allow: an empty list would refuse every peer; leave the key out to "
     "accept any peer of the trust domain"},
    {"inbound = { rules = ( { port = 80; mode = \"strict\"; allow = \"spiffe://td/x\"; } ); };\n",
     "1: inbound.rules[0].allow: expected an array of identity patterns (such as "
     "[\"spiffe://example.org/ns/web/*\"]), got a string"},
    {"inbound = { rules = ( { port = 80; mode = \"strict\";\n"
     "  allow = [\"spiffe://td/x\",\n \"spiffe://td/*/x\"]; } ); };\n",
     "3: inbound.rules[0].allow[1]: \"spiffe://td/*/x\" is not an identity pattern (a SPIFFE ID "
     "such as \"spiffe://example.org/ns/db/sa/pg\", or one followed by \"/*\" for every ID below "
     "it)"},
    {"inbound = { rules = ( { port = 80; mode = \"strict\"; allow = [1]; } ); };\n",
     "1: inbound.rules[0].allow[0]: expected a string (a SPIFFE ID such as "
     "\"spiffe://example.org/ns/db/sa/pg\", or one followed by \"/*\" for every ID below it), got "
     "an integer"},
    {"inbound = { rules = ( { port = 80; mode = \"plain\";\n allow = [\"spiffe://td/x\"]; } ); "
     "};\n",
     "2: inbound.rules[0].allow: a port in mode \"plain\" has no peer identity to check; remove "
     "allow or use \"strict\" or \"permissive\""},
};

static void test_mt_config_load_file_invalid_config_reports_file_line_and_key(void **state)
{
    (void)state;
    for (size_t i = 0; i < COUNT_OF(invalid_configs); i++) {
        assert_load_fails(invalid_configs[i].content, invalid_configs[i].message);
        teardown(NULL);
    }
}

/* A valid key before the bad one must not be applied: the load is all or nothing. */
static void test_mt_config_load_file_error_after_valid_keys_changes_nothing(void **state)
{
    (void)state;
    assert_load_fails("agent_socket = \"/new.sock\";\nlog_level = \"error\";\n"
                      "outbound = { loopback = \"mtls\"; default = \"plain\"; };\n"
                      "trust_domain = \"new.example\";\nagent_timeout_ms = 1;\n",
                      "5: agent_timeout_ms: 1 is out of range; valid values: 100 .. 600000");
}

static void test_mt_config_load_file_long_socket_path_is_refused(void **state)
{
    (void)state;
    char socket_path[MT_CONFIG_SOCKET_PATH_MAX + 1];
    memset(socket_path, 'a', MT_CONFIG_SOCKET_PATH_MAX);
    socket_path[0] = '/';
    socket_path[MT_CONFIG_SOCKET_PATH_MAX] = '\0';
    char content[256];
    snprintf(content, sizeof(content), "\nagent_socket = \"%s\";\n", socket_path);
    /* The value is shown cut to its first 80 bytes. */
    char expected[256];
    snprintf(expected, sizeof(expected),
             "2: agent_socket: \"%.80s\"... is 108 bytes long; a Unix socket path is at most "
             "107 bytes",
             socket_path);
    assert_load_fails(content, expected);
}

static void test_mt_config_load_file_missing_file_says_cannot_open(void **state)
{
    (void)state;
    struct mt_config config;
    set_non_defaults(&config);
    struct mt_config before;
    memcpy(&before, &config, sizeof(config));
    char message[MT_CONFIG_MESSAGE_MAX];
    assert_int_equal(
        mt_config_load_file("/nonexistent/meshtls.conf", &config, MT_TEXT_ON(message)).error,
        MT_ERR_CONFIG);
    assert_string_equal(message, "/nonexistent/meshtls.conf:0: cannot open: No such file or "
                                 "directory");
    assert_memory_equal(&config, &before, sizeof(config));
}

/* libconfig alone would read a directory as an empty file and report success. */
static void test_mt_config_load_file_directory_is_refused(void **state)
{
    (void)state;
    struct mt_config config;
    set_non_defaults(&config);
    char message[MT_CONFIG_MESSAGE_MAX];
    assert_int_equal(mt_config_load_file("/", &config, MT_TEXT_ON(message)).error, MT_ERR_CONFIG);
    assert_string_equal(message, "/:0: cannot read: Is a directory");
    assert_string_equal(config.source, "/previous.conf");
}

static void test_mt_config_load_file_small_message_buffer_is_cut_and_terminated(void **state)
{
    (void)state;
    const char *path = write_temp_file("log_level = \"verbose\";\n");
    struct mt_config config;
    mt_config_set_defaults(&config);
    char message[24];
    memset(message, 'x', sizeof(message));
    assert_int_equal(mt_config_load_file(path, &config, &(struct mt_text){message, 10, 0, 0}).error,
                     MT_ERR_CONFIG);
    assert_int_equal(strlen(message), 9);
    assert_memory_equal(message, path, 9);
    assert_int_equal(message[10], 'x');
    /* No buffer at all is allowed: the caller only wants the result. */
    assert_int_equal(mt_config_load_file(path, &config, NULL).error, MT_ERR_CONFIG);
}

static void test_mt_config_apply_environment_variables_override(void **state)
{
    (void)state;
    struct mt_config config;
    mt_config_set_defaults(&config);
    setenv("MESHTLS_AGENT_SOCKET", "/tmp/other/agent.sock", 1);
    setenv("MESHTLS_AGENT_UID", "65534", 1);
    setenv("MESHTLS_LOG", "debug", 1);
    char message[MT_CONFIG_MESSAGE_MAX];
    assert_int_equal(mt_config_apply_environment(&config, MT_TEXT_ON(message)).error, MT_OK);
    assert_string_equal(config.agent_socket, "/tmp/other/agent.sock");
    assert_int_equal(config.agent_uid, 65534);
    assert_int_equal(config.log_level, MT_LOG_DEBUG);
}

static void test_mt_config_apply_environment_empty_variables_are_ignored(void **state)
{
    (void)state;
    struct mt_config config;
    set_non_defaults(&config);
    struct mt_config before = config;
    setenv("MESHTLS_AGENT_SOCKET", "", 1);
    setenv("MESHTLS_AGENT_UID", "", 1);
    setenv("MESHTLS_LOG", "", 1);
    assert_int_equal(mt_config_apply_environment(&config, NULL).error, MT_OK);
    assert_configs_equal(&config, &before);
}

static void test_mt_config_apply_environment_invalid_value_names_the_variable(void **state)
{
    (void)state;
    static const struct {
        const char *socket_path;
        const char *log_level;
        const char *message;
    } cases[] = {
        {NULL, "verbose",
         "MESHTLS_LOG: \"verbose\" is not one of \"error\", \"warn\", \"info\", \"debug\""},
        {NULL, "DEBUG",
         "MESHTLS_LOG: \"DEBUG\" is not one of \"error\", \"warn\", \"info\", \"debug\""},
        {"agent.sock", NULL, "MESHTLS_AGENT_SOCKET: \"agent.sock\" is not an absolute path"},
        /* The socket is valid, the level is not: neither may be applied. */
        {"/ok.sock", "loud",
         "MESHTLS_LOG: \"loud\" is not one of \"error\", \"warn\", \"info\", \"debug\""},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        teardown(NULL);
        if (cases[i].socket_path != NULL)
            setenv("MESHTLS_AGENT_SOCKET", cases[i].socket_path, 1);
        if (cases[i].log_level != NULL)
            setenv("MESHTLS_LOG", cases[i].log_level, 1);
        struct mt_config config;
        set_non_defaults(&config);
        struct mt_config before;
        memcpy(&before, &config, sizeof(config));
        char message[MT_CONFIG_MESSAGE_MAX];
        assert_int_equal(mt_config_apply_environment(&config, MT_TEXT_ON(message)).error,
                         MT_ERR_CONFIG);
        assert_string_equal(message, cases[i].message);
        assert_memory_equal(&config, &before, sizeof(config));
    }
}

/* MESHTLS_AGENT_UID is a decimal uid and nothing else; a bad one changes nothing. */
static void test_mt_config_apply_environment_bad_agent_uid_names_the_variable(void **state)
{
    (void)state;
    static const char *const values[] = {"root", "-1",         "+0",         " 0",
                                         "0x10", "2147483648", "99999999999"};
    for (size_t i = 0; i < COUNT_OF(values); i++) {
        teardown(NULL);
        setenv("MESHTLS_AGENT_UID", values[i], 1);
        setenv("MESHTLS_AGENT_SOCKET", "/ok.sock", 1);
        struct mt_config config;
        set_non_defaults(&config);
        struct mt_config before;
        memcpy(&before, &config, sizeof(config));
        char message[MT_CONFIG_MESSAGE_MAX];
        char expected[MT_CONFIG_MESSAGE_MAX];
        snprintf(expected, sizeof(expected),
                 "MESHTLS_AGENT_UID: \"%s\" is not a uid (a decimal number 0 .. 2147483647, "
                 "e.g. 0)",
                 values[i]);
        assert_int_equal(mt_config_apply_environment(&config, MT_TEXT_ON(message)).error,
                         MT_ERR_CONFIG);
        assert_string_equal(message, expected);
        assert_memory_equal(&config, &before, sizeof(config));
    }
    teardown(NULL);
    setenv("MESHTLS_AGENT_UID", "2147483647", 1);
    struct mt_config config;
    mt_config_set_defaults(&config);
    assert_int_equal(mt_config_apply_environment(&config, NULL).error, MT_OK);
    assert_int_equal(config.agent_uid, 2147483647);
}

static void test_mt_config_apply_environment_long_socket_path_is_refused(void **state)
{
    (void)state;
    char socket_path[200];
    memset(socket_path, 'b', sizeof(socket_path) - 1);
    socket_path[0] = '/';
    socket_path[sizeof(socket_path) - 1] = '\0';
    setenv("MESHTLS_AGENT_SOCKET", socket_path, 1);
    struct mt_config config;
    mt_config_set_defaults(&config);
    char message[MT_CONFIG_MESSAGE_MAX];
    assert_int_equal(mt_config_apply_environment(&config, MT_TEXT_ON(message)).error,
                     MT_ERR_CONFIG);
    char expected[MT_CONFIG_MESSAGE_MAX];
    snprintf(expected, sizeof(expected),
             "MESHTLS_AGENT_SOCKET: \"%.80s\"... is 199 bytes long; a Unix socket path is at "
             "most 107 bytes",
             socket_path);
    assert_string_equal(message, expected);
    assert_string_equal(config.agent_socket, MT_CONFIG_DEFAULT_AGENT_SOCKET);
}

static void test_mt_config_load_file_from_environment_then_overrides_apply(void **state)
{
    (void)state;
    const char *path =
        write_temp_file("agent_socket = \"/from/file.sock\";\n"
                        "log_level = \"error\";\ntrust_domain = \"file.example\";\n");
    setenv("MESHTLS_CONFIG", path, 1);
    setenv("MESHTLS_LOG", "info", 1);
    struct mt_config config;
    set_non_defaults(&config);
    char message[MT_CONFIG_MESSAGE_MAX];
    mt_result result = mt_config_load(&config, MT_TEXT_ON(message));
    if (!mt_result_is_ok(result))
        fail_msg("%s", message);
    assert_string_equal(config.source, path);
    assert_string_equal(config.agent_socket, "/from/file.sock");
    assert_int_equal(config.log_level, MT_LOG_INFO);
    assert_string_equal(config.trust_domain, "file.example");
    /* Keys the file does not set come from the defaults, not from what config held before. */
    assert_int_equal(config.outbound.other, MT_OUTBOUND_MTLS);
    assert_int_equal(config.handshake_timeout_ms, 10000);
}

static void test_mt_config_load_bad_file_gives_defaults_and_message(void **state)
{
    (void)state;
    const char *path = write_temp_file("log_level = \"info\";\noutbound = { default = 1; };\n");
    setenv("MESHTLS_CONFIG", path, 1);
    struct mt_config config;
    set_non_defaults(&config);
    char message[MT_CONFIG_MESSAGE_MAX];
    assert_int_equal(mt_config_load(&config, MT_TEXT_ON(message)).error, MT_ERR_CONFIG);
    char expected[MT_CONFIG_MESSAGE_MAX];
    snprintf(expected, sizeof(expected),
             "%s:2: outbound.default: expected a string (one of \"mtls\", \"plain\"), got an "
             "integer",
             path);
    assert_string_equal(message, expected);
    struct mt_config defaults;
    mt_config_set_defaults(&defaults);
    assert_configs_equal(&config, &defaults);
}

static void test_mt_config_load_missing_configured_file_is_an_error(void **state)
{
    (void)state;
    setenv("MESHTLS_CONFIG", "/nonexistent/mesh.conf", 1);
    struct mt_config config;
    char message[MT_CONFIG_MESSAGE_MAX];
    assert_int_equal(mt_config_load(&config, MT_TEXT_ON(message)).error, MT_ERR_CONFIG);
    assert_string_equal(message,
                        "/nonexistent/mesh.conf:0: cannot open: No such file or directory");
    assert_string_equal(config.agent_socket, MT_CONFIG_DEFAULT_AGENT_SOCKET);
}

static void test_mt_config_load_bad_environment_gives_defaults_and_message(void **state)
{
    (void)state;
    const char *path = write_temp_file("log_level = \"info\";\n");
    setenv("MESHTLS_CONFIG", path, 1);
    setenv("MESHTLS_LOG", "chatty", 1);
    struct mt_config config;
    set_non_defaults(&config);
    char message[MT_CONFIG_MESSAGE_MAX];
    assert_int_equal(mt_config_load(&config, MT_TEXT_ON(message)).error, MT_ERR_CONFIG);
    assert_string_equal(message,
                        "MESHTLS_LOG: \"chatty\" is not one of \"error\", \"warn\", \"info\", "
                        "\"debug\"");
    assert_int_equal(config.log_level, MT_LOG_WARN);
    assert_string_equal(config.source, "");
}

/* With MESHTLS_CONFIG unset or empty the default path decides; only testable where it is absent. */
static void test_mt_config_load_no_file_gives_defaults_with_overrides(void **state)
{
    (void)state;
    if (access(MT_CONFIG_DEFAULT_PATH, F_OK) == 0)
        skip();
    setenv("MESHTLS_CONFIG", "", 1);
    setenv("MESHTLS_AGENT_SOCKET", "/env/agent.sock", 1);
    struct mt_config config;
    set_non_defaults(&config);
    char message[MT_CONFIG_MESSAGE_MAX];
    assert_int_equal(mt_config_load(&config, MT_TEXT_ON(message)).error, MT_OK);
    struct mt_config expected;
    mt_config_set_defaults(&expected);
    strcpy(expected.agent_socket, "/env/agent.sock");
    assert_configs_equal(&config, &expected);
}

static void describe_and_reload(const struct mt_config *original)
{
    static char text[8192];
    mt_config_describe(original, text, sizeof(text));
    const char *path = write_temp_file(text);
    struct mt_config reloaded;
    set_non_defaults(&reloaded);
    char message[MT_CONFIG_MESSAGE_MAX];
    mt_result result = mt_config_load_file(path, &reloaded, MT_TEXT_ON(message));
    if (!mt_result_is_ok(result))
        fail_msg("describe output does not load: %s\n%s", message, text);
    struct mt_config expected = *original;
    strcpy(expected.source, path);
    assert_configs_equal(&reloaded, &expected);
}

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
                              "inbound = { loopback = \"plain\"; default = \"strict\"; };\n"
                              "skip_ports = [];\n"
                              "log_level = \"warn\";\n"
                              "trust_domain = \"\";\n"
                              "handshake_timeout_ms = 10000;\n"
                              "detect_timeout_ms = 10000;\n"
                              "agent_timeout_ms = 5000;\n"
                              "agent_wait_ms = 5000;\n"
                              "resumption_s = 600;\n");
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

static void test_mt_outbound_mode_name_every_mode_has_its_config_word(void **state)
{
    (void)state;
    assert_string_equal(mt_outbound_mode_name(MT_OUTBOUND_MTLS), "mtls");
    assert_string_equal(mt_outbound_mode_name(MT_OUTBOUND_PLAIN), "plain");
    assert_string_equal(mt_inbound_mode_name(MT_INBOUND_STRICT), "strict");
    assert_string_equal(mt_inbound_mode_name(MT_INBOUND_PLAIN), "plain");
    assert_string_equal(mt_inbound_mode_name(MT_INBOUND_PERMISSIVE), "permissive");
    assert_string_equal(mt_outbound_mode_name((enum mt_outbound_mode)7), "unknown");
}

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

static void load_ok(const char *content, struct mt_config *config)
{
    const char *path = write_temp_file(content);
    char message[MT_CONFIG_MESSAGE_MAX];
    mt_result result = mt_config_load_file(path, config, MT_TEXT_ON(message));
    if (!mt_result_is_ok(result))
        fail_msg("%s\n%s", message, content);
}

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
        "resumption_s = 600;\n");
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_mt_config_load_file_agent_wait_zero_and_bounds_accepted),
        TEST(test_mt_config_load_file_resumption_zero_and_maximum_accepted),
        TEST(test_mt_config_set_defaults_values_match_the_documentation),
        TEST(test_mt_config_load_file_every_key_sets_its_field),
        TEST(test_mt_config_load_file_log_levels_each_parse),
        TEST(test_mt_config_load_file_absent_keys_keep_previous_values),
        TEST(test_mt_config_load_file_boundary_values_are_accepted),
        TEST(test_mt_config_load_file_invalid_config_reports_file_line_and_key),
        TEST(test_mt_config_load_file_error_after_valid_keys_changes_nothing),
        TEST(test_mt_config_load_file_long_socket_path_is_refused),
        TEST(test_mt_config_load_file_missing_file_says_cannot_open),
        TEST(test_mt_config_load_file_directory_is_refused),
        TEST(test_mt_config_load_file_small_message_buffer_is_cut_and_terminated),
        TEST(test_mt_config_apply_environment_variables_override),
        TEST(test_mt_config_apply_environment_empty_variables_are_ignored),
        TEST(test_mt_config_apply_environment_invalid_value_names_the_variable),
        TEST(test_mt_config_apply_environment_bad_agent_uid_names_the_variable),
        TEST(test_mt_config_apply_environment_long_socket_path_is_refused),
        TEST(test_mt_config_load_file_from_environment_then_overrides_apply),
        TEST(test_mt_config_load_bad_file_gives_defaults_and_message),
        TEST(test_mt_config_load_missing_configured_file_is_an_error),
        TEST(test_mt_config_load_bad_environment_gives_defaults_and_message),
        TEST(test_mt_config_load_no_file_gives_defaults_with_overrides),
        TEST(test_mt_config_describe_defaults_round_trip),
        TEST(test_mt_config_describe_every_field_round_trips),
        TEST(test_mt_config_describe_text_is_the_documented_form),
        TEST(test_mt_config_describe_small_buffer_is_cut_and_terminated),
        TEST(test_mt_outbound_mode_name_every_mode_has_its_config_word),
        TEST(test_mt_config_load_file_rules_set_their_fields),
        TEST(test_mt_config_load_file_limits_are_exact),
        TEST(test_mt_config_load_file_long_pattern_is_refused),
        TEST(test_mt_config_load_file_replaced_rules_free_their_patterns),
        TEST(test_mt_config_describe_rules_round_trip),
        TEST(test_mt_config_describe_rules_text_is_the_documented_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
