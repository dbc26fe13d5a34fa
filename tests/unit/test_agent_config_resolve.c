/*
 * Tests for mt_agent_config_resolve_id (agent/agent_config.c): which SPIFFE ID a caller gets,
 * from its uid, gid, executable (the file itself, not its name) and the executable's digest,
 * hashed only when a rule that fits needs it.
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

/* A name for in_dir(), for tests that build a caller themselves. */
static char name_buffer[256];

static void test_resolve_id_all_fields_must_match(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_executables_example(fixture)));
    resolve(fixture, 33, 33, "sbin/nginx", "spiffe://example.org/ns/web/sa/nginx");
    /* Right uid, other executable; right executable, other uid. */
    resolve(fixture, 33, 33, "bin/curl", "spiffe://example.org/uid/33");
    resolve(fixture, 34, 34, "sbin/nginx", "spiffe://example.org/uid/34");
}

static void test_resolve_id_placeholders_substituted(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_executables_example(fixture)));
    resolve(fixture, 1000, 100, "/bin/sh", "spiffe://example.org/ns/dev/sa/1000-100");
    resolve(fixture, 2000, 50, "/bin/sh", "spiffe://example.org/ns/staff/sa/g50");
}

static void test_resolve_id_first_match_wins(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_executables_example(fixture)));
    /* uid 1000 running python matches rules 2 and 3; rule 2 comes first. */
    struct mt_agent_caller caller =
        caller_of(1000, 1000, in_dir(fixture, "bin/python3.11", name_buffer), name_buffer);
    char id[MT_SPIFFE_ID_MAX + 1];
    struct mt_agent_match match;
    assert_true(mt_result_is_ok(
        mt_agent_config_resolve_id(&fixture->config, &caller, id, sizeof(id), &match)));
    assert_string_equal(id, "spiffe://example.org/ns/dev/sa/1000-1000");
    assert_ptr_equal(match.rule, &fixture->config.rules[1]);
}

static void test_resolve_id_glob_matches_within_directory_only(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_executables_example(fixture)));
    resolve(fixture, 5, 5, "bin/python3.11", "spiffe://example.org/ns/py/sa/python");
    resolve(fixture, 5, 5, "bin/python3", "spiffe://example.org/ns/py/sa/python");
    resolve_running(fixture, 5, 5, "bin/python3.11/../../../tmp/evil", "other",
                    "spiffe://example.org/uid/5");
    resolve(fixture, 5, 5, "bin/python2", "spiffe://example.org/uid/5");
}

static void test_resolve_id_unknown_exe_never_matches_exe_rule(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_executables_example(fixture)));
    struct mt_agent_caller caller = {.uid = 33, .gid = 33, .exe = NULL};
    char id[MT_SPIFFE_ID_MAX + 1];
    struct mt_agent_match match;
    assert_true(mt_result_is_ok(
        mt_agent_config_resolve_id(&fixture->config, &caller, id, sizeof(id), &match)));
    assert_string_equal(id, "spiffe://example.org/uid/33");
    assert_null(match.rule);
}

static void test_resolve_id_exact_exe_not_prefix(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_executables_example(fixture)));
    resolve(fixture, 33, 33, "sbin/nginx-debug", "spiffe://example.org/uid/33");
}

/*
 * The namespace attack: in a user and mount namespace of its own, a caller bind-mounts any
 * program over the rule's path and runs it. Its namespace names the executable exactly as the
 * rule does; the file is another one, so the rule must not match, and the mismatch is counted.
 */
static void test_resolve_id_exe_named_like_rule_but_other_file_refused(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_executables_example(fixture)));
    assert_int_equal(
        resolve_running(fixture, 33, 33, "sbin/nginx", "other", "spiffe://example.org/uid/33"), 1);
    /* A glob is no weaker: the name matches "python3*", the file at that name is not this one. */
    assert_int_equal(resolve_running(fixture, 5, 5, "bin/python3.11", "bin/python2",
                                     "spiffe://example.org/uid/5"),
                     1);
    /* The real program under its own name still matches, and counts nothing. */
    assert_int_equal(resolve_running(fixture, 33, 33, "sbin/nginx", NULL,
                                     "spiffe://example.org/ns/web/sa/nginx"),
                     0);
}

/* The file decides, not the name: a hard link or a name from another namespace is the program. */
static void test_resolve_id_exe_same_file_under_another_name_matches(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_executables_example(fixture)));
    assert_int_equal(resolve_running(fixture, 33, 33, "/opt/container/usr/sbin/nginx", "sbin/nginx",
                                     "spiffe://example.org/ns/web/sa/nginx"),
                     0);
}

/* A rule's path that is a symbolic link (Debian's python3 -> python3.11) names its target. */
static void test_resolve_id_exe_rule_symlink_names_its_target(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_executables_example(fixture)));
    /* The kernel reports the target's name for a program started through the link. */
    resolve(fixture, 7, 7, "bin/python3.11", "spiffe://example.org/ns/seven/sa/python");
    /* Another file bind-mounted over the target is named like it: refused and counted. */
    assert_int_equal(
        resolve_running(fixture, 7, 7, "bin/python3.11", "other", "spiffe://example.org/uid/7"), 2);
}

/* The agent's namespace lacks the rule's path: nothing matches (a container's path, say). */
static void test_resolve_id_exe_rule_path_missing_never_matches(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_text(
        fixture, "rules = ( { exe = \"/nonexistent/meshtls/app\"; id = \"ns/app\"; } );\n")));
    resolve_running(fixture, 5, 5, "/nonexistent/meshtls/app", "other",
                    "spiffe://meshtls.local/uid/5");
}

static void test_resolve_id_sha256_matches_contents_only(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(
        load_text(fixture, "rules = ( { sha256 = \"" ABC_SHA256 "\"; id = \"ns/abc\"; } );\n")));
    uint8_t abc[MT_DIGEST_SHA256_SIZE] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
                                          0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
                                          0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
                                          0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    char id[MT_SPIFFE_ID_MAX + 1];
    /* Any name, any namespace: only the contents count. */
    struct mt_agent_caller caller = caller_of(9, 9, "/anything/at/all", NULL);
    caller.exe_sha256 = abc;
    assert_true(mt_result_is_ok(
        mt_agent_config_resolve_id(&fixture->config, &caller, id, sizeof(id), NULL)));
    assert_string_equal(id, "spiffe://meshtls.local/ns/abc");
    abc[31] ^= 1;
    assert_true(mt_result_is_ok(
        mt_agent_config_resolve_id(&fixture->config, &caller, id, sizeof(id), NULL)));
    assert_string_equal(id, "spiffe://meshtls.local/uid/9");
    /* Not hashed (too large, unreadable): never a match. */
    caller.exe_sha256 = NULL;
    caller.exe_sha256_problem = "it is larger than the 128 MiB the agent hashes";
    assert_true(mt_result_is_ok(
        mt_agent_config_resolve_id(&fixture->config, &caller, id, sizeof(id), NULL)));
    assert_string_equal(id, "spiffe://meshtls.local/uid/9");
}

static void test_resolve_id_sha256_and_exe_both_required(void **state)
{
    struct fixture *fixture = *state;
    char text[512];
    snprintf(text, sizeof(text),
             "rules = ( { exe = \"%s/sbin/nginx\"; sha256 = \"" ABC_SHA256
             "\"; id = \"ns/both\"; } );\n",
             fixture->dir);
    assert_true(mt_result_is_ok(load_text(fixture, text)));
    uint8_t abc[MT_DIGEST_SHA256_SIZE] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
                                          0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
                                          0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
                                          0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    char id[MT_SPIFFE_ID_MAX + 1];
    struct mt_agent_caller caller =
        caller_of(9, 9, in_dir(fixture, "sbin/nginx", name_buffer), name_buffer);
    assert_true(mt_result_is_ok(
        mt_agent_config_resolve_id(&fixture->config, &caller, id, sizeof(id), NULL)));
    assert_string_equal(id, "spiffe://meshtls.local/uid/9");
    caller.exe_sha256 = abc;
    assert_true(mt_result_is_ok(
        mt_agent_config_resolve_id(&fixture->config, &caller, id, sizeof(id), NULL)));
    assert_string_equal(id, "spiffe://meshtls.local/ns/both");
}

/* A hasher that counts its calls and gives the digest of "abc" (ABC_SHA256). */
struct counting_hasher {
    unsigned calls;
};

static const uint8_t *hash_abc(void *context, const char **problem, bool *later)
{
    (void)later;
    static const uint8_t abc[MT_DIGEST_SHA256_SIZE] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
        0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
        0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    struct counting_hasher *hasher = context;
    hasher->calls++;
    *problem = NULL;
    return abc;
}

/* A hasher whose budget is spent: no digest now, one later. */
static const uint8_t *hash_later(void *context, const char **problem, bool *later)
{
    struct counting_hasher *hasher = context;
    hasher->calls++;
    *problem = "its uid has used its hashing budget (256 MiB per minute)";
    *later = true;
    return NULL;
}

/*
 * Hashing is asked for only by a sha256 rule whose uid, gid and exe fit the caller: a caller that
 * no sha256 rule could name (another uid, another program) costs the agent no hash.
 */
static void test_resolve_id_sha256_hashes_only_when_rule_fits(void **state)
{
    struct fixture *fixture = *state;
    char text[512];
    snprintf(text, sizeof(text),
             "rules = (\n"
             "  { uid = 0; sha256 = \"" ABC_SHA256 "\"; id = \"ns/root\"; },\n"
             "  { gid = 7; sha256 = \"" ABC_SHA256 "\"; id = \"ns/seven\"; },\n"
             "  { exe = \"%s/sbin/nginx\"; sha256 = \"" ABC_SHA256 "\"; id = \"ns/nginx\"; },\n"
             "  { uid = 9; id = \"ns/nine\"; }\n);\n",
             fixture->dir);
    assert_true(mt_result_is_ok(load_text(fixture, text)));
    struct counting_hasher hasher = {.calls = 0};
    char id[MT_SPIFFE_ID_MAX + 1];
    struct mt_agent_caller caller =
        caller_of(9, 9, in_dir(fixture, "bin/other", name_buffer), NULL);
    caller.hash_exe = hash_abc;
    caller.hash_context = &hasher;
    assert_true(mt_result_is_ok(
        mt_agent_config_resolve_id(&fixture->config, &caller, id, sizeof(id), NULL)));
    assert_string_equal(id, "spiffe://meshtls.local/ns/nine");
    assert_int_equal(hasher.calls, 0);
    /* The same caller in gid 7: that rule fits, so its hash is asked for, and matches. */
    caller.gid = 7;
    assert_true(mt_result_is_ok(
        mt_agent_config_resolve_id(&fixture->config, &caller, id, sizeof(id), NULL)));
    assert_string_equal(id, "spiffe://meshtls.local/ns/seven");
    assert_int_equal(hasher.calls, 1);
    /* No digest and none to be had (too large, the caller gone): that sha256 rule does not match,
     * and the next rule that fits names the caller. */
    caller.hash_exe = NULL;
    caller.exe_sha256_problem = "larger than 128 MiB";
    assert_true(mt_result_is_ok(
        mt_agent_config_resolve_id(&fixture->config, &caller, id, sizeof(id), NULL)));
    assert_string_equal(id, "spiffe://meshtls.local/ns/nine");
    /* No digest yet (the hashing budget is spent): undecided, so no identity at all, never the
     * next rule's or the default: the caller retries once the budget renews. */
    caller.hash_exe = hash_later;
    caller.exe_sha256_problem = NULL;
    assert_int_equal(
        mt_agent_config_resolve_id(&fixture->config, &caller, id, sizeof(id), NULL).error,
        MT_ERR_WOULD_BLOCK);
    assert_int_equal(hasher.calls, 2);
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

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_resolve_id_all_fields_must_match),
        TEST(test_resolve_id_placeholders_substituted),
        TEST(test_resolve_id_first_match_wins),
        TEST(test_resolve_id_glob_matches_within_directory_only),
        TEST(test_resolve_id_unknown_exe_never_matches_exe_rule),
        TEST(test_resolve_id_exact_exe_not_prefix),
        TEST(test_resolve_id_exe_named_like_rule_but_other_file_refused),
        TEST(test_resolve_id_exe_same_file_under_another_name_matches),
        TEST(test_resolve_id_exe_rule_symlink_names_its_target),
        TEST(test_resolve_id_exe_rule_path_missing_never_matches),
        TEST(test_resolve_id_sha256_matches_contents_only),
        TEST(test_resolve_id_sha256_and_exe_both_required),
        TEST(test_resolve_id_sha256_hashes_only_when_rule_fits),
        TEST(test_resolve_id_small_buffer_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
