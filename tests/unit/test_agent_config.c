/*
 * Tests for agent/agent_config.c: the agent's configuration file and the rules that decide a
 * caller's SPIFFE ID.
 *
 * Each configuration is written to a temporary file and loaded the way the agent loads it, so
 * the error messages are checked with the real file name and line numbers an operator would see.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/agent_config.h"

struct fixture {
    char path[64];
    char message[MT_AGENT_CONFIG_MESSAGE_MAX];
    struct mt_agent_config config;
};

static int setup(void **state)
{
    struct fixture *fixture = calloc(1, sizeof(*fixture));
    assert_non_null(fixture);
    snprintf(fixture->path, sizeof(fixture->path), "/tmp/test_agent_config.XXXXXX");
    int fd = mkstemp(fixture->path);
    assert_true(fd >= 0);
    close(fd);
    mt_agent_config_init(&fixture->config);
    *state = fixture;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fixture = *state;
    mt_agent_config_cleanup(&fixture->config);
    unlink(fixture->path);
    free(fixture);
    return 0;
}

static mt_result load_text(struct fixture *fixture, const char *text)
{
    FILE *file = fopen(fixture->path, "w");
    assert_non_null(file);
    assert_int_equal(fputs(text, file) >= 0, 1);
    fclose(file);
    fixture->message[0] = '\0';
    return mt_agent_config_load_file(fixture->path, &fixture->config, fixture->message,
                                     sizeof(fixture->message));
}

/* Loading text must fail with a message starting "PATH:LINE: KEY: " and containing detail. */
static void expect_error(struct fixture *fixture, const char *text, int line, const char *key,
                         const char *detail)
{
    assert_int_equal(load_text(fixture, text).error, MT_ERR_CONFIG);
    char prefix[160];
    if (key != NULL)
        snprintf(prefix, sizeof(prefix), "%s:%d: %s: ", fixture->path, line, key);
    else
        snprintf(prefix, sizeof(prefix), "%s:%d: ", fixture->path, line);
    if (strncmp(fixture->message, prefix, strlen(prefix)) != 0)
        fail_msg("message \"%s\" does not start with \"%s\"", fixture->message, prefix);
    if (strstr(fixture->message, detail) == NULL)
        fail_msg("message \"%s\" does not contain \"%s\"", fixture->message, detail);
}

static void resolve(const struct mt_agent_config *config, uid_t uid, gid_t gid, const char *exe,
                    const char *expected)
{
    struct mt_agent_caller caller = {.uid = uid, .gid = gid, .exe = exe};
    char id[MT_SPIFFE_ID_MAX + 1];
    assert_true(mt_result_is_ok(mt_agent_config_resolve_id(config, &caller, id, sizeof(id), NULL)));
    assert_string_equal(id, expected);
}

static const char example[] =
    "trust_domain = \"example.org\";\n"
    "lifetime = 3600;\n"
    "rules = (\n"
    "  { uid = 33; exe = \"/usr/sbin/nginx\"; id = \"ns/web/sa/nginx\"; },\n"
    "  { uid = 1000; id = \"ns/dev/sa/{uid}-{gid}\"; },\n"
    "  { exe = \"/usr/bin/python3*\"; id = \"ns/py/sa/python\"; },\n"
    "  { gid = 50; id = \"ns/staff/sa/g{gid}\"; }\n"
    ");\n";

/* ----------------------------------------------------------------------------------------- */
/* Loading */

static void test_config_init_defaults_without_file(void **state)
{
    struct fixture *fixture = *state;
    assert_string_equal(fixture->config.trust_domain, "meshtls.local");
    assert_int_equal(fixture->config.lifetime_seconds, 86400);
    assert_int_equal(fixture->config.rule_count, 0);
    resolve(&fixture->config, 1000, 1000, "/usr/bin/curl", "spiffe://meshtls.local/uid/1000");
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
    assert_int_equal(mt_agent_config_load_file(fixture->path, &fixture->config, fixture->message,
                                               sizeof(fixture->message))
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
    expect_error(
        *state, "lifetime = 600;\n\nlifetme = 60;\n", 3, "lifetme",
        "unknown key (valid keys: trust_domain, lifetime, rules, issuer_dir, trust_anchors, "
        "metrics_address)");
}

static void test_load_file_unknown_rule_key_rejected(void **state)
{
    expect_error(*state, "rules = (\n  { uid = 1; id = \"a\";\n    user = \"bob\"; }\n);\n", 3,
                 "rules[0].user", "unknown key (valid keys: uid, gid, exe, id)");
}

static void test_load_file_lifetime_wrong_type_rejected(void **state)
{
    expect_error(*state, "lifetime = \"1d\";\n", 1, "lifetime",
                 "expected an integer, not a string");
}

static void test_load_file_lifetime_out_of_range_rejected(void **state)
{
    expect_error(*state, "lifetime = 4;\n", 1, "lifetime", "4 is out of range (5 .. 2592000");
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

static void test_load_file_rules_not_a_list_rejected(void **state)
{
    expect_error(*state, "rules = { uid = 1; id = \"a\"; };\n", 1, "rules", "expected a list");
}

static void test_load_file_rule_not_a_group_rejected(void **state)
{
    expect_error(*state, "rules = ( \"ns/a\" );\n", 1, "rules[0]", "expected a group");
}

static void test_load_file_rule_without_id_rejected(void **state)
{
    expect_error(*state, "rules = (\n  { uid = 1; }\n);\n", 2, "rules[0]", "missing id");
}

static void test_load_file_rule_without_condition_rejected(void **state)
{
    expect_error(*state, "rules = (\n  { uid = 1; id = \"a\"; },\n  { id = \"everyone\"; }\n);\n",
                 3, "rules[1]", "matches every caller");
}

static void test_load_file_negative_uid_rejected(void **state)
{
    expect_error(*state, "rules = ( { uid = -1; id = \"a\"; } );\n", 1, "rules[0].uid",
                 "-1 is out of range (0 .. 4294967294)");
}

static void test_load_file_relative_exe_rejected(void **state)
{
    expect_error(*state, "rules = ( { exe = \"nginx\"; id = \"a\"; } );\n", 1, "rules[0].exe",
                 "\"nginx\" is not absolute");
}

static void test_load_file_bad_ids_rejected(void **state)
{
    struct fixture *fixture = *state;
    expect_error(fixture, "rules = ( { uid = 1; id = \"/ns/a\"; } );\n", 1, "rules[0].id",
                 "must not start with '/'");
    expect_error(fixture, "rules = ( { uid = 1; id = \"\"; } );\n", 1, "rules[0].id", "is empty");
    expect_error(fixture, "rules = ( { uid = 1; id = \"ns/{user}\"; } );\n", 1, "rules[0].id",
                 "unknown placeholder");
    expect_error(fixture, "rules = ( { uid = 1; id = \"ns//a\"; } );\n", 1, "rules[0].id",
                 "does not make a valid SPIFFE ID");
    expect_error(fixture, "rules = ( { uid = 1; id = \"ns/../a\"; } );\n", 1, "rules[0].id",
                 "does not make a valid SPIFFE ID");
    expect_error(fixture, "rules = ( { uid = 1; id = \"ns/a b\"; } );\n", 1, "rules[0].id",
                 "does not make a valid SPIFFE ID");
    expect_error(fixture, "rules = ( { uid = 1; id = \"ns/a/\"; } );\n", 1, "rules[0].id",
                 "does not make a valid SPIFFE ID");
}

static void test_load_file_id_too_long_for_any_uid_rejected(void **state)
{
    struct fixture *fixture = *state;
    /* spiffe://meshtls.local/ is 23 bytes; with {uid} as up to 10 digits this passes 2048. */
    char text[4096];
    char id[2048];
    memset(id, 'a', 2020);
    id[2020] = '\0';
    snprintf(text, sizeof(text), "rules = ( { uid = 1; id = \"%s{uid}\"; } );\n", id);
    expect_error(fixture, text, 1, "rules[0].id", "longer than 2048 bytes");
}

static void test_load_file_error_leaves_config_unchanged(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_text(fixture, example)));
    assert_int_equal(
        load_text(fixture,
                  "trust_domain = \"other.org\";\nlifetime = 60;\nrules = ( { id = \"a\"; } );\n")
            .error,
        MT_ERR_CONFIG);
    assert_string_equal(fixture->config.trust_domain, "example.org");
    assert_int_equal(fixture->config.lifetime_seconds, 3600);
    assert_int_equal(fixture->config.rule_count, 4);
    resolve(&fixture->config, 33, 33, "/usr/sbin/nginx", "spiffe://example.org/ns/web/sa/nginx");
}

static void test_load_file_trust_domain_after_rules_applies_to_them(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(
        load_text(fixture, "rules = ( { uid = 7; id = \"a\"; } );\ntrust_domain = \"b.org\";\n")));
    resolve(&fixture->config, 7, 7, NULL, "spiffe://b.org/a");
}

/* ----------------------------------------------------------------------------------------- */
/* Resolving identities */

static void test_resolve_id_all_fields_must_match(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_text(fixture, example)));
    resolve(&fixture->config, 33, 33, "/usr/sbin/nginx", "spiffe://example.org/ns/web/sa/nginx");
    /* Right uid, other executable; right executable, other uid. */
    resolve(&fixture->config, 33, 33, "/usr/bin/curl", "spiffe://example.org/uid/33");
    resolve(&fixture->config, 34, 34, "/usr/sbin/nginx", "spiffe://example.org/uid/34");
}

static void test_resolve_id_placeholders_substituted(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_text(fixture, example)));
    resolve(&fixture->config, 1000, 100, "/bin/sh", "spiffe://example.org/ns/dev/sa/1000-100");
    resolve(&fixture->config, 2000, 50, "/bin/sh", "spiffe://example.org/ns/staff/sa/g50");
}

static void test_resolve_id_first_match_wins(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_text(fixture, example)));
    /* uid 1000 running python matches rules 2 and 3; rule 2 comes first. */
    struct mt_agent_caller caller = {.uid = 1000, .gid = 1000, .exe = "/usr/bin/python3.11"};
    char id[MT_SPIFFE_ID_MAX + 1];
    const struct mt_agent_rule *rule = NULL;
    assert_true(mt_result_is_ok(
        mt_agent_config_resolve_id(&fixture->config, &caller, id, sizeof(id), &rule)));
    assert_string_equal(id, "spiffe://example.org/ns/dev/sa/1000-1000");
    assert_ptr_equal(rule, &fixture->config.rules[1]);
}

static void test_resolve_id_glob_matches_within_directory_only(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_text(fixture, example)));
    resolve(&fixture->config, 5, 5, "/usr/bin/python3.11", "spiffe://example.org/ns/py/sa/python");
    resolve(&fixture->config, 5, 5, "/usr/bin/python3", "spiffe://example.org/ns/py/sa/python");
    resolve(&fixture->config, 5, 5, "/usr/bin/python3.11/../../../tmp/evil",
            "spiffe://example.org/uid/5");
    resolve(&fixture->config, 5, 5, "/usr/bin/python2", "spiffe://example.org/uid/5");
}

static void test_resolve_id_unknown_exe_never_matches_exe_rule(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_text(fixture, example)));
    const struct mt_agent_rule *rule = &fixture->config.rules[0];
    struct mt_agent_caller caller = {.uid = 33, .gid = 33, .exe = NULL};
    char id[MT_SPIFFE_ID_MAX + 1];
    assert_true(mt_result_is_ok(
        mt_agent_config_resolve_id(&fixture->config, &caller, id, sizeof(id), &rule)));
    assert_string_equal(id, "spiffe://example.org/uid/33");
    assert_null(rule);
}

static void test_resolve_id_exact_exe_not_prefix(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_text(fixture, example)));
    resolve(&fixture->config, 33, 33, "/usr/sbin/nginx-debug", "spiffe://example.org/uid/33");
}

static void test_resolve_id_small_buffer_too_long(void **state)
{
    struct fixture *fixture = *state;
    struct mt_agent_caller caller = {.uid = 1, .gid = 1, .exe = NULL};
    char id[16];
    assert_int_equal(
        mt_agent_config_resolve_id(&fixture->config, &caller, id, sizeof(id), NULL).error,
        MT_ERR_TOO_LONG);
}

/* ----------------------------------------------------------------------------------------- */
/* Command-line overrides */

static void test_set_trust_domain_valid_applies_to_rules(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_text(fixture, example)));
    assert_true(mt_result_is_ok(mt_agent_config_set_trust_domain(
        &fixture->config, "prod.example", fixture->message, sizeof(fixture->message))));
    resolve(&fixture->config, 33, 33, "/usr/sbin/nginx", "spiffe://prod.example/ns/web/sa/nginx");
    resolve(&fixture->config, 9, 9, NULL, "spiffe://prod.example/uid/9");
}

static void test_set_trust_domain_invalid_rejected_unchanged(void **state)
{
    struct fixture *fixture = *state;
    assert_int_equal(mt_agent_config_set_trust_domain(&fixture->config, "spiffe://x.org",
                                                      fixture->message, sizeof(fixture->message))
                         .error,
                     MT_ERR_CONFIG);
    assert_non_null(strstr(fixture->message, "--trust-domain: \"spiffe://x.org\""));
    assert_string_equal(fixture->config.trust_domain, "meshtls.local");
}

static void test_set_lifetime_parsed_and_bounded(void **state)
{
    struct fixture *fixture = *state;
    char *message = fixture->message;
    size_t size = sizeof(fixture->message);
    assert_true(
        mt_result_is_ok(mt_agent_config_set_lifetime(&fixture->config, "600", message, size)));
    assert_int_equal(fixture->config.lifetime_seconds, 600);
    static const char *const bad[] = {"4",   "2592001", "",     "10s",
                                      "-60", " 600",    "+600", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            mt_agent_config_set_lifetime(&fixture->config, bad[i], message, size).error,
            MT_ERR_CONFIG);
        assert_non_null(strstr(message, "--lifetime"));
    }
    assert_int_equal(fixture->config.lifetime_seconds, 600);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_init_defaults_without_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_example_all_values_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_empty_file_keeps_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_missing_file_names_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_syntax_error_names_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_unknown_top_level_key_rejected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_file_unknown_rule_key_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_lifetime_wrong_type_rejected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_file_lifetime_out_of_range_rejected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_file_lifetime_bounds_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_invalid_trust_domain_rejected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_file_rules_not_a_list_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_rule_not_a_group_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_rule_without_id_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_rule_without_condition_rejected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_file_negative_uid_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_relative_exe_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_bad_ids_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_id_too_long_for_any_uid_rejected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_file_error_leaves_config_unchanged, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_file_trust_domain_after_rules_applies_to_them,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve_id_all_fields_must_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve_id_placeholders_substituted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve_id_first_match_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve_id_glob_matches_within_directory_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resolve_id_unknown_exe_never_matches_exe_rule, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resolve_id_exact_exe_not_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve_id_small_buffer_too_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_trust_domain_valid_applies_to_rules, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_set_trust_domain_invalid_rejected_unchanged, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_set_lifetime_parsed_and_bounded, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
