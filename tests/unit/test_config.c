/*
 * Tests for config/ (the library's configuration, read through config/reader.c): every key, the
 * exact text of every error message (file, line, key and the valid values), that a failed load
 * changes nothing, and the whole procedure. The environment, the rules and the description have
 * files of their own (test_config_environment.c, test_config_rules.c, test_config_describe.c).
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

/* post_quantum: "prefer" by default; each documented word reads as its value, and back. */
static void test_mt_config_load_file_post_quantum_each_word_parses(void **state)
{
    (void)state;
    static const struct {
        const char *word;
        enum mt_post_quantum value;
    } cases[] = {
        {"prefer", MT_POST_QUANTUM_PREFER},
        {"require", MT_POST_QUANTUM_REQUIRE},
        {"off", MT_POST_QUANTUM_OFF},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[64];
        snprintf(text, sizeof(text), "post_quantum = \"%s\";\n", cases[i].word);
        const char *path = write_temp_file(text);
        struct mt_config config;
        mt_config_set_defaults(&config);
        /* Some other value before, so that reading it is what sets it. */
        config.post_quantum =
            cases[i].value == MT_POST_QUANTUM_OFF ? MT_POST_QUANTUM_REQUIRE : MT_POST_QUANTUM_OFF;
        char message[MT_CONFIG_MESSAGE_MAX];
        assert_true(mt_result_is_ok(mt_config_load_file(path, &config, MT_TEXT_ON(message))));
        assert_int_equal(config.post_quantum, cases[i].value);
        assert_string_equal(mt_post_quantum_name(cases[i].value), cases[i].word);
    }
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
    assert_int_equal(config.post_quantum, MT_POST_QUANTUM_PREFER);
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
        remove_last_temp_file();
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
     "3: outbound.loopback: \"tls\" is not one of \"mtls\", \"plain\", \"auto\""},
    {"outbound = {\n  loopback = \"plain\";\n  default = \"TLS\";\n};\n",
     "3: outbound.default: \"TLS\" is not one of \"mtls\", \"plain\", \"auto\""},
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
     "resumption_s, skip_ports, post_quantum"},
    {"post_quantum = \"on\";\n",
     "1: post_quantum: \"on\" is not one of \"prefer\", \"require\", \"off\""},
    {"post_quantum = true;\n", "1: post_quantum: expected a string (one of \"prefer\", "
                               "\"require\", \"off\"), got a boolean"},
    {"outbound = {\n  default = \"mtls\";\n  loopbak = \"plain\";\n};\n",
     "3: outbound: unknown key \"loopbak\"; valid keys: loopback, default, rules"},
    {"inbound = { ports = 443; };\n",
     "1: inbound: unknown key \"ports\"; valid keys: loopback, default, rules, probe_sources, "
     "probe_ports"},
    {"inbound = {\n  probe_sources = [\"10.0.3.7\", \"node\"];\n};\n",
     "2: inbound.probe_sources[1]: \"node\" is not an IP address or CIDR (such as \"10.0.0.0/8\", "
     "\"2001:db8::/32\" or \"10.1.2.3\")"},
    {"inbound = { probe_sources = \"10.0.3.7\"; };\n",
     "1: inbound.probe_sources: expected an array of addresses or CIDRs (such as "
     "[\"10.0.3.7\"]), got a string"},
    {"inbound = {\n  probe_ports = [8080, 0];\n};\n",
     "2: inbound.probe_ports[1]: 0 is out of range; valid values: 1 .. 65535"},
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
     "1: outbound.default: \"a\\x0ab\\\"c\" is not one of \"mtls\", \"plain\", \"auto\""},
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
     "3: outbound.rules[1]: missing key mode (one of \"mtls\", \"plain\", \"auto\")"},
    {"outbound = { rules = ( { to = \"10.0.0.0/8\"; mode = \"tls\"; } ); };\n",
     "1: outbound.rules[0].mode: \"tls\" is not one of \"mtls\", \"plain\", \"auto\""},
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

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_mt_config_load_file_agent_wait_zero_and_bounds_accepted),
        TEST(test_mt_config_load_file_resumption_zero_and_maximum_accepted),
        TEST(test_mt_config_load_file_post_quantum_each_word_parses),
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
        TEST(test_mt_outbound_mode_name_every_mode_has_its_config_word),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
