/*
 * Tests for agent/agent_config.c: the agent's configuration file and flags, read through the one
 * libconfig reader (config/reader.h). The rules have test_agent_rules.c, and the decision of a
 * caller's identity test_agent_config_resolve.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent_config_support.h"

static const char example[] =
    "trust_domain = \"example.org\";\n"
    "lifetime = 3600;\n"
    "rules = (\n"
    "  { uid = 33; exe = \"/usr/sbin/nginx\"; id = \"ns/web/sa/nginx\"; },\n"
    "  { uid = 1000; id = \"ns/dev/sa/{uid}-{gid}\"; },\n"
    "  { exe = \"/usr/bin/python3*\"; id = \"ns/py/sa/python\"; },\n"
    "  { gid = 50; id = \"ns/staff/sa/g{gid}\"; }\n"
    ");\n";

static void test_config_init_defaults_without_file(void **state)
{
    struct fixture *fixture = *state;
    assert_string_equal(fixture->config.trust_domain, "meshtls.local");
    assert_int_equal(fixture->config.lifetime_seconds, 86400);
    assert_int_equal(fixture->config.rule_count, 0);
    resolve(fixture, 1000, 1000, "bin/curl", "spiffe://meshtls.local/uid/1000");
}

static void test_load_file_example_all_values_read(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_text(fixture, example)));
    assert_string_equal(fixture->config.trust_domain, "example.org");
    assert_int_equal(fixture->config.lifetime_seconds, 3600);
    assert_int_equal(fixture->config.rule_count, 4);
    assert_string_equal(fixture->config.source, fixture->path);
    const struct mt_agent_rule *nginx = &fixture->config.rules[0];
    assert_true(nginx->has_uid);
    assert_int_equal(nginx->uid, 33);
    assert_false(nginx->has_gid);
    assert_string_equal(nginx->exe, "/usr/sbin/nginx");
    assert_false(nginx->exe_is_glob);
    assert_int_equal(nginx->line, 4);
    assert_true(fixture->config.rules[2].exe_is_glob);
}

static void test_load_file_empty_file_keeps_defaults(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_text(fixture, "# nothing set\n")));
    assert_string_equal(fixture->config.trust_domain, "meshtls.local");
    assert_int_equal(fixture->config.lifetime_seconds, 86400);
    assert_int_equal(fixture->config.rule_count, 0);
}

static void test_load_file_missing_file_names_path(void **state)
{
    struct fixture *fixture = *state;
    unlink(fixture->path);
    assert_int_equal(
        mt_agent_config_load_file(fixture->path, &fixture->config, MT_TEXT_ON(fixture->message))
            .error,
        MT_ERR_CONFIG);
    assert_non_null(strstr(fixture->message, fixture->path));
    assert_non_null(strstr(fixture->message, "No such file"));
}

static void test_load_file_syntax_error_names_line(void **state)
{
    expect_error(*state, "lifetime = 600;\nrules = (\n  { uid = = 1; id = \"a\"; }\n);\n", 3, NULL,
                 "syntax error");
}

static void test_load_file_unknown_top_level_key_rejected(void **state)
{
    expect_error(*state, "lifetime = 600;\n\nlifetme = 60;\n", 3, NULL,
                 "unknown key \"lifetme\"; valid keys: trust_domain, lifetime, rules, issuer_dir, "
                 "trust_anchors, metrics_address");
}

static void test_load_file_lifetime_wrong_type_rejected(void **state)
{
    expect_error(*state, "lifetime = \"1d\";\n", 1, "lifetime",
                 "expected an integer (5 .. 2592000 seconds), got a string");
}

static void test_load_file_lifetime_out_of_range_rejected(void **state)
{
    expect_error(*state, "lifetime = 4;\n", 1, "lifetime",
                 "4 is out of range; valid values: 5 .. 2592000 seconds");
    expect_error(*state, "lifetime = 2592001;\n", 1, "lifetime", "out of range");
}

static void test_load_file_lifetime_bounds_accepted(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_text(fixture, "lifetime = 5;\n")));
    assert_int_equal(fixture->config.lifetime_seconds, 5);
    assert_true(mt_result_is_ok(load_text(fixture, "lifetime = 2592000;\n")));
    assert_int_equal(fixture->config.lifetime_seconds, 2592000);
}

static void test_load_file_invalid_trust_domain_rejected(void **state)
{
    expect_error(*state, "lifetime = 600;\ntrust_domain = \"Example.org\";\n", 2, "trust_domain",
                 "\"Example.org\" is not a valid trust domain");
}

/* Read as a file, a directory would be an empty configuration: every default, silently. */
static void test_load_file_directory_rejected(void **state)
{
    struct fixture *fixture = *state;
    assert_int_equal(
        mt_agent_config_load_file(fixture->dir, &fixture->config, MT_TEXT_ON(fixture->message))
            .error,
        MT_ERR_CONFIG);
    char expected[128];
    snprintf(expected, sizeof(expected), "%s:0: cannot read: Is a directory", fixture->dir);
    assert_string_equal(fixture->message, expected);
    assert_string_equal(fixture->config.source, "");
}

static void test_load_file_issuer_settings_read(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_text(fixture, "issuer_dir = \"/etc/meshtls/issuer\";\n"
                                                   "trust_anchors = [\"a.pem\", \"b.pem\"];\n"
                                                   "metrics_address = \"[::1]:9000\";\n")));
    assert_string_equal(fixture->config.issuer_dir, "/etc/meshtls/issuer");
    assert_int_equal(fixture->config.anchor_file_count, 2);
    assert_string_equal(fixture->config.anchor_files[1], "b.pem");
    assert_string_equal(fixture->config.metrics_address, "[::1]:9000");
}

/* Each entry of trust_anchors is named by its index, at its own line. */
static void test_load_file_bad_issuer_settings_rejected(void **state)
{
    struct fixture *fixture = *state;
    expect_error(fixture, "trust_anchors = (\"a.pem\",\n  5);\n", 2, "trust_anchors[1]",
                 "expected a string (a PEM file path), got an integer");
    expect_error(fixture, "trust_anchors = \"a.pem\";\n", 1, "trust_anchors",
                 "expected an array of PEM file paths");
    expect_error(fixture, "issuer_dir = \"\";\n", 1, "issuer_dir",
                 "\"\" is empty or too long (a path)");
    expect_error(fixture, "metrics_address = \"localhost\";\n", 1, "metrics_address",
                 "\"localhost\" is not an address");
}

/* The API server of the mesh membership: a group of three, each error at its line and key, and
 * the flags' three go together. */
static void test_load_file_api_server_read_and_checked(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_text(fixture, "api_server = {\n"
                                                   "  url = \"https://10.96.0.1:443\";\n"
                                                   "  token_file = \"/run/token\";\n"
                                                   "  ca_file = \"/run/ca.crt\";\n"
                                                   "};\n")));
    assert_string_equal(fixture->config.api_server_url, "https://10.96.0.1:443");
    assert_string_equal(fixture->config.api_server_token_file, "/run/token");
    assert_string_equal(fixture->config.api_server_ca_file, "/run/ca.crt");
    expect_error(fixture,
                 "api_server = {\n  url = \"http://10.96.0.1\";\n  token_file = \"t\";\n"
                 "  ca_file = \"c\";\n};\n",
                 2, "api_server.url", "\"http://10.96.0.1\" is not a URL");
    expect_error(fixture, "api_server = {\n  url = \"https://10.96.0.1\";\n};\n", 1, "api_server",
                 "token_file");
    expect_error(fixture, "api_server = \"https://10.96.0.1\";\n", 1, "api_server", "a group");

    struct mt_agent_config config;
    mt_agent_config_init(&config);
    char message[512] = "";
    assert_true(mt_result_is_ok(
        mt_agent_config_set_api_server_url(&config, "https://10.96.0.1", MT_TEXT_ON(message))));
    assert_false(mt_result_is_ok(mt_agent_config_check_api_server(&config, MT_TEXT_ON(message))));
    assert_non_null(strstr(message, "the token file is missing"));
    assert_true(mt_result_is_ok(
        mt_agent_config_set_api_server_token_file(&config, "/t", MT_TEXT_ON(message))));
    assert_true(mt_result_is_ok(
        mt_agent_config_set_api_server_ca_file(&config, "/c", MT_TEXT_ON(message))));
    assert_true(mt_result_is_ok(mt_agent_config_check_api_server(&config, MT_TEXT_ON(message))));
    assert_false(mt_result_is_ok(
        mt_agent_config_set_api_server_url(&config, "10.96.0.1", MT_TEXT_ON(message))));
    assert_non_null(strstr(message, "--kube-api-url"));
    mt_agent_config_cleanup(&config);
}

static void test_load_file_error_leaves_config_unchanged(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_executables_example(fixture)));
    assert_int_equal(
        load_text(fixture,
                  "trust_domain = \"other.org\";\nlifetime = 60;\nrules = ( { id = \"a\"; } );\n")
            .error,
        MT_ERR_CONFIG);
    assert_string_equal(fixture->config.trust_domain, "example.org");
    assert_int_equal(fixture->config.lifetime_seconds, 3600);
    assert_int_equal(fixture->config.rule_count, 5);
    resolve(fixture, 33, 33, "sbin/nginx", "spiffe://example.org/ns/web/sa/nginx");
}

static void test_load_file_trust_domain_after_rules_applies_to_them(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(
        load_text(fixture, "rules = ( { uid = 7; id = \"a\"; } );\ntrust_domain = \"b.org\";\n")));
    resolve(fixture, 7, 7, NULL, "spiffe://b.org/a");
}

/* ---- command-line overrides ---------------------------------------------------------- */

static void test_set_trust_domain_valid_applies_to_rules(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_executables_example(fixture)));
    assert_true(mt_result_is_ok(mt_agent_config_set_trust_domain(&fixture->config, "prod.example",
                                                                 MT_TEXT_ON(fixture->message))));
    resolve(fixture, 33, 33, "sbin/nginx", "spiffe://prod.example/ns/web/sa/nginx");
    resolve(fixture, 9, 9, NULL, "spiffe://prod.example/uid/9");
}

static void test_set_trust_domain_invalid_rejected_unchanged(void **state)
{
    struct fixture *fixture = *state;
    assert_int_equal(mt_agent_config_set_trust_domain(&fixture->config, "spiffe://x.org",
                                                      MT_TEXT_ON(fixture->message))
                         .error,
                     MT_ERR_CONFIG);
    assert_non_null(strstr(fixture->message, "--trust-domain: \"spiffe://x.org\""));
    assert_string_equal(fixture->config.trust_domain, "meshtls.local");
}

static void test_set_lifetime_parsed_and_bounded(void **state)
{
    struct fixture *fixture = *state;
    char *message = fixture->message;
    struct mt_text reason = mt_text_on(message, sizeof(fixture->message));
    assert_true(mt_result_is_ok(mt_agent_config_set_lifetime(&fixture->config, "600", &reason)));
    assert_int_equal(fixture->config.lifetime_seconds, 600);
    static const char *const bad[] = {"4",   "2592001", "",     "10s",
                                      "-60", " 600",    "+600", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(mt_agent_config_set_lifetime(&fixture->config, bad[i], &reason).error,
                         MT_ERR_CONFIG);
        assert_non_null(strstr(message, "--lifetime"));
    }
    assert_int_equal(fixture->config.lifetime_seconds, 600);
}

/*
 * The rules were checked within the file's trust domain; a longer one from the flag can push an
 * ID past 2048 bytes. The message names the rule where the file has it, although the file is
 * closed by then.
 */
static void test_set_trust_domain_too_long_for_a_rule_names_its_line(void **state)
{
    struct fixture *fixture = *state;
    char text[4096];
    char id[2048];
    /* spiffe://meshtls.local/ is 23 bytes: with a 10-digit {uid} this ID just fits. */
    memset(id, 'a', 2048 - 23 - 10);
    id[2048 - 23 - 10] = '\0';
    snprintf(text, sizeof(text),
             "lifetime = 600;\nrules = (\n  { uid = 1; id = \"%s{uid}\"; }\n);\n", id);
    assert_true(mt_result_is_ok(load_text(fixture, text)));
    assert_int_equal(mt_agent_config_set_trust_domain(&fixture->config, "prod.example.com",
                                                      MT_TEXT_ON(fixture->message))
                         .error,
                     MT_ERR_CONFIG);
    char prefix[160];
    snprintf(prefix, sizeof(prefix), "%s:3: rules[0].id: \"aaaa", fixture->path);
    assert_memory_equal(fixture->message, prefix, strlen(prefix));
    assert_non_null(strstr(fixture->message, "aaaa\"... makes a SPIFFE ID longer than 2048 bytes"));
    assert_string_equal(fixture->config.trust_domain, "meshtls.local");
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_config_init_defaults_without_file),
        TEST(test_load_file_example_all_values_read),
        TEST(test_load_file_empty_file_keeps_defaults),
        TEST(test_load_file_missing_file_names_path),
        TEST(test_load_file_syntax_error_names_line),
        TEST(test_load_file_unknown_top_level_key_rejected),
        TEST(test_load_file_lifetime_wrong_type_rejected),
        TEST(test_load_file_lifetime_out_of_range_rejected),
        TEST(test_load_file_lifetime_bounds_accepted),
        TEST(test_load_file_invalid_trust_domain_rejected),
        TEST(test_load_file_directory_rejected),
        TEST(test_load_file_issuer_settings_read),
        TEST(test_load_file_bad_issuer_settings_rejected),
        TEST(test_load_file_api_server_read_and_checked),
        TEST(test_load_file_error_leaves_config_unchanged),
        TEST(test_load_file_trust_domain_after_rules_applies_to_them),
        TEST(test_set_trust_domain_valid_applies_to_rules),
        TEST(test_set_trust_domain_invalid_rejected_unchanged),
        TEST(test_set_lifetime_parsed_and_bounded),
        TEST(test_set_trust_domain_too_long_for_a_rule_names_its_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
