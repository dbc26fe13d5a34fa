/*
 * Tests for config/environment.c: MESHTLS_AGENT_SOCKET, MESHTLS_AGENT_UID, MESHTLS_LOG and the
 * probe lists MESHTLS_PROBE_SOURCES / MESHTLS_PROBE_PORTS over a configuration, a bad one changing
 * nothing, and MESHTLS_CONFIG naming the file mt_config_load reads before them.
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
    setenv("MESHTLS_PROBE_SOURCES", "", 1);
    setenv("MESHTLS_PROBE_PORTS", "", 1);
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
    snprintf(
        expected, sizeof(expected),
        "%s:2: outbound.default: expected a string (one of \"mtls\", \"plain\", \"auto\"), got an "
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

/*
 * mt_config_load_fresh skips the memset a fresh (static, zero) structure does not need: the
 * result must be byte for byte mt_config_load's over a structure that held something else, for a
 * file with keys and rules, with an environment override, and after a failed load.
 */
static void assert_fresh_load_matches(mt_result expected)
{
    static struct mt_config fresh; /* zero, as the process's configuration is before loading */
    memset(&fresh, 0, sizeof(fresh));
    struct mt_config loaded;
    set_non_defaults(&loaded);
    char message[MT_CONFIG_MESSAGE_MAX];
    char fresh_message[MT_CONFIG_MESSAGE_MAX];
    assert_int_equal(mt_config_load(&loaded, MT_TEXT_ON(message)).error, expected.error);
    assert_int_equal(mt_config_load_fresh(&fresh, MT_TEXT_ON(fresh_message)).error, expected.error);
    assert_string_equal(fresh_message, message);
    assert_memory_equal(&fresh, &loaded, sizeof(loaded));
}

static void test_mt_config_load_fresh_zero_config_same_as_load(void **state)
{
    (void)state;
    const char *path = write_temp_file("agent_socket = \"/from/file.sock\";\n"
                                       "trust_domain = \"file.example\";\n"
                                       "handshake_timeout_ms = 250;\n"
                                       "outbound = { loopback = \"mtls\"; rules = (\n"
                                       "  { to = \"10.0.0.0/8\"; ports = [5432]; mode = \"mtls\";\n"
                                       "    identity = \"spiffe://example.com/ns/db/*\"; } ); };\n"
                                       "inbound = { rules = ( { port = 8080; mode = \"strict\";\n"
                                       "  allow = [\"spiffe://example.com/ns/web/*\"]; } ); };\n"
                                       "skip_ports = [53];\n");
    setenv("MESHTLS_CONFIG", path, 1);
    setenv("MESHTLS_LOG", "info", 1);
    assert_fresh_load_matches(MT_OK_RESULT);
    /* Nothing set: the built-in defaults, every one of them. */
    setenv("MESHTLS_CONFIG", write_temp_file("\n"), 1);
    unsetenv("MESHTLS_LOG");
    assert_fresh_load_matches(MT_OK_RESULT);
    /* A bad file leaves the defaults in both. */
    setenv("MESHTLS_CONFIG", write_temp_file("outbound = { default = 1; };\n"), 1);
    assert_fresh_load_matches(mt_result_of(MT_ERR_CONFIG));
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

/* The lists replace the file's; each entry is read as the file's would be. */
static void test_mt_config_apply_environment_probe_lists_replace_the_file(void **state)
{
    (void)state;
    struct mt_config config;
    set_non_defaults(&config);
    setenv("MESHTLS_PROBE_SOURCES", "10.0.3.7,fd00:1::/64", 1);
    setenv("MESHTLS_PROBE_PORTS", "8080,9000-9001", 1);
    char message[MT_CONFIG_MESSAGE_MAX];
    assert_int_equal(mt_config_apply_environment(&config, MT_TEXT_ON(message)).error, MT_OK);
    assert_int_equal(config.inbound.probe_source_count, 2);
    assert_int_equal(config.inbound.probe_sources[0].family, AF_INET);
    assert_int_equal(config.inbound.probe_sources[0].prefix_length, 32);
    assert_memory_equal(config.inbound.probe_sources[0].address, ((uint8_t[]){10, 0, 3, 7}), 4);
    assert_int_equal(config.inbound.probe_sources[1].family, AF_INET6);
    assert_int_equal(config.inbound.probe_sources[1].prefix_length, 64);
    assert_int_equal(config.inbound.probe_port_count, 2);
    assert_int_equal(config.inbound.probe_ports[0].first, 8080);
    assert_int_equal(config.inbound.probe_ports[0].last, 8080);
    assert_int_equal(config.inbound.probe_ports[1].first, 9000);
    assert_int_equal(config.inbound.probe_ports[1].last, 9001);
}

static void test_mt_config_apply_environment_bad_probe_list_names_the_variable(void **state)
{
    (void)state;
    static const struct {
        const char *sources;
        const char *ports;
        const char *message;
    } cases[] = {
        {"10.0.3.7,node", NULL,
         "MESHTLS_PROBE_SOURCES: \"10.0.3.7,node\" has an entry \"node\" that is not an IP "
         "address or CIDR (such as \"10.0.0.0/8\", \"2001:db8::/32\" or \"10.1.2.3\")"},
        {"10.0.3.7/24", NULL,
         "MESHTLS_PROBE_SOURCES: \"10.0.3.7/24\" has an entry \"10.0.3.7/24\" that has bits set "
         "beyond its /24 prefix; the network is \"10.0.3.0/24\""},
        {"10.0.3.7, 10.0.3.8", NULL,
         "MESHTLS_PROBE_SOURCES: \"10.0.3.7, 10.0.3.8\" has an entry \" 10.0.3.8\" that is not "
         "an IP address or CIDR (such as \"10.0.0.0/8\", \"2001:db8::/32\" or \"10.1.2.3\")"},
        {NULL, "8080,",
         "MESHTLS_PROBE_PORTS: \"8080,\" has an empty entry (entries are separated "
         "by one comma, no spaces)"},
        {NULL, "http",
         "MESHTLS_PROBE_PORTS: \"http\" has an entry \"http\" that is not a port or port range "
         "(such as 8080 or \"8000-8999\"; ports 1 .. 65535, FIRST <= LAST)"},
        /* The sources are valid, the ports are not: neither may be applied. */
        {"10.0.3.7", "0",
         "MESHTLS_PROBE_PORTS: \"0\" has an entry \"0\" that is not a port or port range (such "
         "as 8080 or \"8000-8999\"; ports 1 .. 65535, FIRST <= LAST)"},
        {NULL, "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17",
         "MESHTLS_PROBE_PORTS: \"1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17\" has too many "
         "entries; at most 16 ports or ranges"},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        teardown(NULL);
        if (cases[i].sources != NULL)
            setenv("MESHTLS_PROBE_SOURCES", cases[i].sources, 1);
        if (cases[i].ports != NULL)
            setenv("MESHTLS_PROBE_PORTS", cases[i].ports, 1);
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

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
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
        TEST(test_mt_config_load_fresh_zero_config_same_as_load),
        TEST(test_mt_config_apply_environment_probe_lists_replace_the_file),
        TEST(test_mt_config_apply_environment_bad_probe_list_names_the_variable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
