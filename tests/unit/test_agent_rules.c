/*
 * Tests for agent/rules.c: the `rules` list of the agent's configuration file, each rule read
 * whole, its keys typed and checked, and its ID a valid SPIFFE ID for any caller.
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

static void test_load_file_unknown_rule_key_rejected(void **state)
{
    expect_error(*state, "rules = (\n  { uid = 1; id = \"a\";\n    user = \"bob\"; }\n);\n", 3,
                 "rules[0]",
                 "unknown key \"user\"; valid keys: uid, gid, exe, sha256, namespace, "
                 "service_account, labels, container, image, id");
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
    expect_error(*state, "rules = (\n  { uid = 1; }\n);\n", 2, "rules[0]", "missing key id");
}

static void test_load_file_rule_without_condition_rejected(void **state)
{
    expect_error(*state, "rules = (\n  { uid = 1; id = \"a\"; },\n  { id = \"everyone\"; }\n);\n",
                 3, "rules[1]", "matches every caller");
}

static void test_load_file_negative_uid_rejected(void **state)
{
    expect_error(*state, "rules = ( { uid = -1; id = \"a\"; } );\n", 1, "rules[0].uid",
                 "-1 is out of range; valid values: 0 .. 4294967294");
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

static void test_load_file_sha256_parsed_either_case(void **state)
{
    struct fixture *fixture = *state;
    assert_false(mt_agent_config_has_sha256_rules(&fixture->config));
    assert_true(mt_result_is_ok(load_text(fixture, "rules = (\n"
                                                   "  { uid = 1; id = \"ns/one\"; },\n"
                                                   "  { sha256 = \"BA7816BF8F01CFEA414140DE5DAE2223"
                                                   "b00361a396177a9cb410ff61f20015ad\"; "
                                                   "id = \"ns/abc\"; }\n);\n")));
    const struct mt_agent_rule *rule = &fixture->config.rules[1];
    assert_true(rule->has_sha256);
    assert_int_equal(rule->sha256[0], 0xba);
    assert_int_equal(rule->sha256[31], 0xad);
    assert_false(fixture->config.rules[0].has_sha256);
    assert_true(mt_agent_config_has_sha256_rules(&fixture->config));
}

static void test_load_file_bad_sha256_rejected(void **state)
{
    static const char *const bad[] = {
        "abc",
        /* 63 digits, 65 digits, a non-hex digit */
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0",
        "za7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), "rules = ( { sha256 = \"%s\"; id = \"a\"; } );\n", bad[i]);
        expect_error(*state, text, 1, "rules[0].sha256",
                     "is not a SHA-256 (64 hexadecimal digits, as sha256sum prints them)");
    }
    expect_error(*state, "rules = ( { sha256 = 5; id = \"a\"; } );\n", 1, "rules[0].sha256",
                 "expected a string");
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_load_file_unknown_rule_key_rejected),
        TEST(test_load_file_rules_not_a_list_rejected),
        TEST(test_load_file_rule_not_a_group_rejected),
        TEST(test_load_file_rule_without_id_rejected),
        TEST(test_load_file_rule_without_condition_rejected),
        TEST(test_load_file_negative_uid_rejected),
        TEST(test_load_file_relative_exe_rejected),
        TEST(test_load_file_bad_ids_rejected),
        TEST(test_load_file_id_too_long_for_any_uid_rejected),
        TEST(test_load_file_sha256_parsed_either_case),
        TEST(test_load_file_bad_sha256_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
