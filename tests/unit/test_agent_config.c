/*
 * Tests for agent/agent_config.c and agent/rules.c: the agent's configuration file and the rules
 * that decide a caller's SPIFFE ID, read through the one libconfig reader (config/reader.h).
 *
 * Each configuration is written to a temporary file and loaded the way the agent loads it, so
 * the error messages are checked with the real file name and line numbers an operator would see.
 * Executables are real files in a temporary directory: a caller is described by the name its
 * mount namespace gives its executable and by the file it really runs, and the two can differ
 * (a bind mount in a namespace the caller built), as attestation reports them.
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

#include "agent/agent_config.h"

struct fixture {
    char path[64];
    char dir[64]; /* executables: sbin/nginx, bin/python3.11, bin/python3 -> python3.11, ... */
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
    snprintf(fixture->dir, sizeof(fixture->dir), "/tmp/test_agent_config.d.XXXXXX");
    assert_non_null(mkdtemp(fixture->dir));
    static const char *const files[] = {"sbin/nginx",  "sbin/nginx-debug", "bin/python3.11",
                                        "bin/python2", "bin/curl",         "other"};
    char path[128];
    snprintf(path, sizeof(path), "%s/sbin", fixture->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/bin", fixture->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", fixture->dir, files[i]);
        FILE *file = fopen(path, "w");
        assert_non_null(file);
        fprintf(file, "program %s\n", files[i]);
        fclose(file);
    }
    snprintf(path, sizeof(path), "%s/bin/python3", fixture->dir);
    assert_int_equal(symlink("python3.11", path), 0);
    mt_agent_config_init(&fixture->config);
    *state = fixture;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fixture = *state;
    mt_agent_config_cleanup(&fixture->config);
    unlink(fixture->path);
    char command[160];
    snprintf(command, sizeof(command), "rm -rf '%s'", fixture->dir);
    assert_int_equal(system(command), 0);
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
    return mt_agent_config_load_file(fixture->path, &fixture->config, MT_TEXT_ON(fixture->message));
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

static char name_buffer[256];
static char file_buffer[256];

/* "DIR/relative" for the fixture's executables; absolute paths are kept. */
static const char *in_dir(const struct fixture *fixture, const char *relative, char *buffer)
{
    if (relative == NULL || relative[0] == '/')
        return relative;
    snprintf(buffer, 256, "%s/%s", fixture->dir, relative);
    return buffer;
}

/*
 * A caller whose mount namespace names its executable name while it runs file (a path as the
 * agent sees it; a missing file gives an identity that matches nothing).
 */
static struct mt_agent_caller caller_of(uid_t uid, gid_t gid, const char *name, const char *file)
{
    struct mt_agent_caller caller = {.pid = 4242, .uid = uid, .gid = gid, .exe = name};
    struct stat status;
    if (file != NULL && stat(file, &status) == 0) {
        caller.exe_device = status.st_dev;
        caller.exe_inode = status.st_ino;
    }
    return caller;
}

/* Resolves a caller running name (the file it names, unless file says otherwise). */
static unsigned resolve_running(const struct fixture *fixture, uid_t uid, gid_t gid,
                                const char *name, const char *file, const char *expected)
{
    name = in_dir(fixture, name, name_buffer);
    file = file != NULL ? in_dir(fixture, file, file_buffer) : name;
    struct mt_agent_caller caller = caller_of(uid, gid, name, file);
    char id[MT_SPIFFE_ID_MAX + 1];
    struct mt_agent_match match;
    assert_true(mt_result_is_ok(
        mt_agent_config_resolve_id(&fixture->config, &caller, id, sizeof(id), &match)));
    assert_string_equal(id, expected);
    return match.exe_mismatches;
}

static void resolve(const struct fixture *fixture, uid_t uid, gid_t gid, const char *exe,
                    const char *expected)
{
    (void)resolve_running(fixture, uid, gid, exe, NULL, expected);
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

/* The example's rules with the fixture's executables, for resolving. */
static mt_result load_executables_example(struct fixture *fixture)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "trust_domain = \"example.org\";\n"
             "lifetime = 3600;\n"
             "rules = (\n"
             "  { uid = 33; exe = \"%s/sbin/nginx\"; id = \"ns/web/sa/nginx\"; },\n"
             "  { uid = 1000; id = \"ns/dev/sa/{uid}-{gid}\"; },\n"
             "  { uid = 7; exe = \"%s/bin/python3\"; id = \"ns/seven/sa/python\"; },\n"
             "  { exe = \"%s/bin/python3*\"; id = \"ns/py/sa/python\"; },\n"
             "  { gid = 50; id = \"ns/staff/sa/g{gid}\"; }\n"
             ");\n",
             fixture->dir, fixture->dir, fixture->dir);
    return load_text(fixture, text);
}

/* ----------------------------------------------------------------------------------------- */
/* Loading */

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

static void test_load_file_unknown_rule_key_rejected(void **state)
{
    expect_error(*state, "rules = (\n  { uid = 1; id = \"a\";\n    user = \"bob\"; }\n);\n", 3,
                 "rules[0]", "unknown key \"user\"; valid keys: uid, gid, exe, sha256, id");
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

/* ----------------------------------------------------------------------------------------- */
/* Resolving identities */

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

/* SHA-256 of "abc" (FIPS 180-2, appendix B.1). */
#define ABC_SHA256 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

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

/* ----------------------------------------------------------------------------------------- */
/* Command-line overrides */

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
        cmocka_unit_test_setup_teardown(test_load_file_directory_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_issuer_settings_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_bad_issuer_settings_rejected, setup,
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
        cmocka_unit_test_setup_teardown(test_resolve_id_exe_named_like_rule_but_other_file_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve_id_exe_same_file_under_another_name_matches,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve_id_exe_rule_symlink_names_its_target, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resolve_id_exe_rule_path_missing_never_matches, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_file_sha256_parsed_either_case, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_bad_sha256_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve_id_sha256_matches_contents_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resolve_id_sha256_hashes_only_when_rule_fits, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resolve_id_sha256_and_exe_both_required, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resolve_id_small_buffer_too_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_trust_domain_valid_applies_to_rules, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_set_trust_domain_invalid_rejected_unchanged, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_set_lifetime_parsed_and_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_trust_domain_too_long_for_a_rule_names_its_line,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
