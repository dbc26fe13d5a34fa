/*
 * Tests for util/spiffe.c against the SPIFFE-ID standard: a table of IDs the standard allows
 * and forbids, trust-domain membership, and formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/spiffe.h"

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))

static const struct {
    const char *id;
    const char *trust_domain;
    const char *path;
} valid_ids[] = {
    {"spiffe://example.org", "example.org", ""},
    {"spiffe://example.org/workload", "example.org", "/workload"},
    {"spiffe://example.org/ns/default/sa/web", "example.org", "/ns/default/sa/web"},
    {"spiffe://a", "a", ""},
    {"spiffe://1.2.3.4/x", "1.2.3.4", "/x"},
    {"spiffe://trust_domain-1.example/Path_With.Dots-and_Under/A9", "trust_domain-1.example",
     "/Path_With.Dots-and_Under/A9"},
    {"spiffe://example.org/...", "example.org", "/..."},
    {"spiffe://example.org/.hidden/..x", "example.org", "/.hidden/..x"},
    {"spiffe://example.org/a/b/c/d/e/f/g/h", "example.org", "/a/b/c/d/e/f/g/h"},
};

static const struct {
    const char *id;
    const char *why;
} invalid_ids[] = {
    {"", "empty"},
    {"spiffe://", "no trust domain"},
    {"spiffe:///path", "empty trust domain"},
    {"SPIFFE://example.org", "uppercase scheme"},
    {"Spiffe://example.org", "mixed-case scheme"},
    {"http://example.org", "wrong scheme"},
    {"spiffe:example.org", "no authority"},
    {"spiffe:/example.org", "one slash"},
    {"//example.org/path", "no scheme"},
    {"example.org/path", "bare trust domain"},
    {"spiffe://Example.org", "uppercase trust domain"},
    {"spiffe://example.org/", "trailing slash, no path"},
    {"spiffe://example.org/path/", "trailing slash"},
    {"spiffe://example.org//path", "empty segment"},
    {"spiffe://example.org/a//b", "empty inner segment"},
    {"spiffe://example.org/.", "dot segment"},
    {"spiffe://example.org/..", "dot-dot segment"},
    {"spiffe://example.org/a/./b", "inner dot segment"},
    {"spiffe://example.org/a/../b", "inner dot-dot segment"},
    {"spiffe://example.org:8080/path", "port"},
    {"spiffe://user@example.org/path", "userinfo"},
    {"spiffe://user:pass@example.org", "userinfo with password"},
    {"spiffe://example.org/path?query=1", "query"},
    {"spiffe://example.org/path#fragment", "fragment"},
    {"spiffe://example.org?x", "query after trust domain"},
    {"spiffe://example.org#x", "fragment after trust domain"},
    {"spiffe://example.org/p%41th", "percent-encoding in path"},
    {"spiffe://ex%61mple.org", "percent-encoding in trust domain"},
    {"spiffe://example.org/a b", "space"},
    {"spiffe://example.org/caf\xc3\xa9", "non-ASCII"},
    {"spiffe://[::1]/path", "IP literal"},
    {"spiffe://exa*mple.org", "star in trust domain"},
    {"spiffe://example.org/a+b", "plus in path"},
    {"spiffe://example.org/a~b", "tilde in path"},
    {"spiffe://example.org/a:b", "colon in path"},
    {"spiffe://example.org\\path", "backslash"},
    {" spiffe://example.org", "leading space"},
    {"spiffe://example.org ", "trailing space"},
};

static void test_mt_spiffe_id_parse_valid_ids_split_into_domain_and_path(void **state)
{
    (void)state;
    for (size_t i = 0; i < COUNT_OF(valid_ids); i++) {
        const char *text = valid_ids[i].id;
        struct mt_spiffe_id id;
        mt_result result = mt_spiffe_id_parse(text, strlen(text), &id);
        if (!mt_result_is_ok(result))
            fail_msg("%s: rejected", text);
        assert_int_equal(id.trust_domain_length, strlen(valid_ids[i].trust_domain));
        assert_memory_equal(id.trust_domain, valid_ids[i].trust_domain, id.trust_domain_length);
        assert_int_equal(id.path_length, strlen(valid_ids[i].path));
        assert_memory_equal(id.path, valid_ids[i].path, id.path_length);
    }
}

static void test_mt_spiffe_id_parse_invalid_ids_are_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < COUNT_OF(invalid_ids); i++) {
        const char *text = invalid_ids[i].id;
        struct mt_spiffe_id id;
        memset(&id, 0x5a, sizeof(id));
        struct mt_spiffe_id before = id;
        mt_result result = mt_spiffe_id_parse(text, strlen(text), &id);
        if (result.error != MT_ERR_SPIFFE_ID)
            fail_msg("%s (%s): %s", text, invalid_ids[i].why, mt_error_name(result.error));
        assert_memory_equal(&id, &before, sizeof(id));
    }
}

/* The length given is the whole ID: a NUL inside it is a byte that is not allowed. */
static void test_mt_spiffe_id_parse_embedded_nul_is_refused(void **state)
{
    (void)state;
    static const char text[] = "spiffe://example.org/a\0b";
    struct mt_spiffe_id id;
    assert_int_equal(mt_spiffe_id_parse(text, sizeof(text) - 1, &id).error, MT_ERR_SPIFFE_ID);
    /* A shorter length stops before the NUL and is a valid ID. */
    assert_int_equal(mt_spiffe_id_parse(text, 22, &id).error, MT_OK);
    assert_int_equal(id.path_length, 2);
}

static void test_mt_spiffe_id_parse_length_limits_are_exact(void **state)
{
    (void)state;
    static char text[MT_SPIFFE_ID_MAX + 2];
    struct mt_spiffe_id id;

    /* A 255-character trust domain is the longest allowed; 256 is one too many. */
    memcpy(text, "spiffe://", 9);
    memset(text + 9, 'a', 256);
    assert_int_equal(mt_spiffe_id_parse(text, 9 + 255, &id).error, MT_OK);
    assert_int_equal(mt_spiffe_id_parse(text, 9 + 256, &id).error, MT_ERR_SPIFFE_ID);

    /* An ID of exactly MT_SPIFFE_ID_MAX bytes is allowed; one more byte is not. */
    memcpy(text, "spiffe://example.org/", 21);
    memset(text + 21, 'p', sizeof(text) - 21);
    assert_int_equal(mt_spiffe_id_parse(text, MT_SPIFFE_ID_MAX, &id).error, MT_OK);
    assert_int_equal(mt_spiffe_id_parse(text, MT_SPIFFE_ID_MAX + 1, &id).error, MT_ERR_SPIFFE_ID);
}

static void test_mt_spiffe_is_valid_trust_domain_table_matches_the_standard(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bool valid;
    } cases[] = {
        {"example.org", true},           {"a", true},
        {"my-domain_1.local", true},     {"", false},
        {"Example.org", false},          {"example.org/", false},
        {"example.org:443", false},      {"exa mple", false},
        {"spiffe://example.org", false}, {"caf\xc3\xa9", false},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        if (mt_spiffe_is_valid_trust_domain(cases[i].name, strlen(cases[i].name)) != cases[i].valid)
            fail_msg("\"%s\": expected valid=%d", cases[i].name, cases[i].valid);
    }
    assert_false(mt_spiffe_is_valid_trust_domain(NULL, 3));
}

static void test_mt_spiffe_id_is_in_trust_domain_compares_whole_names(void **state)
{
    (void)state;
    static const struct {
        const char *id;
        const char *trust_domain;
        bool member;
    } cases[] = {
        {"spiffe://example.org/web", "example.org", true},
        {"spiffe://example.org", "example.org", true},
        {"spiffe://example.org/web", "example.com", false},
        /* Neither a prefix nor a suffix of the trust domain is the trust domain. */
        {"spiffe://example.org.evil/web", "example.org", false},
        {"spiffe://evil-example.org/web", "example.org", false},
        {"spiffe://example.org/web", "example.or", false},
        {"spiffe://example.org/web", "", false},
        {"spiffe://example.org/web/", "example.org", false},
        {"SPIFFE://example.org/web", "example.org", false},
        {"spiffe://example.org/web", "Example.org", false},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        if (mt_spiffe_id_is_in_trust_domain(cases[i].id, cases[i].trust_domain) != cases[i].member)
            fail_msg("%s in %s: expected %d", cases[i].id, cases[i].trust_domain, cases[i].member);
    }
    assert_false(mt_spiffe_id_is_in_trust_domain(NULL, "example.org"));
    assert_false(mt_spiffe_id_is_in_trust_domain("spiffe://example.org", NULL));
}

static void test_mt_spiffe_id_format_valid_parts_give_the_id(void **state)
{
    (void)state;
    char output[64];
    assert_int_equal(mt_spiffe_id_format(output, sizeof(output), "example.org", "ns/a/sa/b").error,
                     MT_OK);
    assert_string_equal(output, "spiffe://example.org/ns/a/sa/b");
    assert_int_equal(mt_spiffe_id_format(output, sizeof(output), "example.org", "").error, MT_OK);
    assert_string_equal(output, "spiffe://example.org");
}

static void test_mt_spiffe_id_format_invalid_parts_are_refused(void **state)
{
    (void)state;
    static const struct {
        const char *trust_domain;
        const char *path;
    } cases[] = {
        {"", "web"},
        {"Example.org", "web"},
        {"example.org", "/web"},
        {"example.org", "web/"},
        {"example.org", "a//b"},
        {"example.org", "a/../b"},
        {"example.org", "a?b"},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        char output[64] = "unchanged";
        mt_result result =
            mt_spiffe_id_format(output, sizeof(output), cases[i].trust_domain, cases[i].path);
        if (result.error != MT_ERR_SPIFFE_ID)
            fail_msg("\"%s\" + \"%s\": %s", cases[i].trust_domain, cases[i].path,
                     mt_error_name(result.error));
        /* A failed format must never leave a usable-looking ID behind. */
        assert_string_equal(output, "");
    }
}

static void test_mt_spiffe_id_format_small_buffer_is_too_long(void **state)
{
    (void)state;
    const char *expected = "spiffe://example.org/web";
    char output[32];
    size_t exact = strlen(expected) + 1;
    assert_int_equal(mt_spiffe_id_format(output, exact, "example.org", "web").error, MT_OK);
    assert_string_equal(output, expected);
    memset(output, 'x', sizeof(output));
    assert_int_equal(mt_spiffe_id_format(output, exact - 1, "example.org", "web").error,
                     MT_ERR_TOO_LONG);
    assert_int_equal(output[0], '\0');
    assert_int_equal(output[exact - 1], 'x');
}

static void test_mt_spiffe_id_format_over_maximum_length_is_refused(void **state)
{
    (void)state;
    static char path[MT_SPIFFE_ID_MAX];
    static char output[MT_SPIFFE_ID_MAX + 64];
    /* "spiffe://" + "example.org" + "/" is 21 bytes, so this path makes exactly the maximum. */
    memset(path, 'p', MT_SPIFFE_ID_MAX - 21);
    path[MT_SPIFFE_ID_MAX - 21] = '\0';
    assert_int_equal(mt_spiffe_id_format(output, sizeof(output), "example.org", path).error, MT_OK);
    assert_int_equal(strlen(output), MT_SPIFFE_ID_MAX);
    path[MT_SPIFFE_ID_MAX - 21] = 'p';
    path[MT_SPIFFE_ID_MAX - 20] = '\0';
    assert_int_equal(mt_spiffe_id_format(output, sizeof(output), "example.org", path).error,
                     MT_ERR_SPIFFE_ID);
}

static void test_mt_spiffe_is_valid_pattern_table_accepts_ids_and_slash_star(void **state)
{
    (void)state;
    static const struct {
        const char *pattern;
        bool valid;
    } cases[] = {
        {"spiffe://example.org/ns/db/sa/pg", true},
        {"spiffe://example.org/ns/db/*", true},
        {"spiffe://example.org/*", true},
        {"spiffe://example.org", true},
        {"spiffe://example.org/ns/db*", false},
        {"spiffe://example.org/ns/*/sa/x", false},
        {"spiffe://example.org/ns/db/**", false},
        {"spiffe://example.org/ns/db/", false},
        {"spiffe://*", false},
        {"spiffe:///*", false},
        {"/*", false},
        {"*", false},
        {"", false},
        {"spiffe://Example.org/*", false},
        {"https://example.org/ns/*", false},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        if (mt_spiffe_is_valid_pattern(cases[i].pattern, strlen(cases[i].pattern)) !=
            cases[i].valid)
            fail_msg("pattern \"%s\": expected %s", cases[i].pattern,
                     cases[i].valid ? "valid" : "invalid");
    }
    assert_false(mt_spiffe_is_valid_pattern(NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt_spiffe_id_parse_valid_ids_split_into_domain_and_path),
        cmocka_unit_test(test_mt_spiffe_id_parse_invalid_ids_are_refused),
        cmocka_unit_test(test_mt_spiffe_id_parse_embedded_nul_is_refused),
        cmocka_unit_test(test_mt_spiffe_id_parse_length_limits_are_exact),
        cmocka_unit_test(test_mt_spiffe_is_valid_trust_domain_table_matches_the_standard),
        cmocka_unit_test(test_mt_spiffe_id_is_in_trust_domain_compares_whole_names),
        cmocka_unit_test(test_mt_spiffe_id_format_valid_parts_give_the_id),
        cmocka_unit_test(test_mt_spiffe_id_format_invalid_parts_are_refused),
        cmocka_unit_test(test_mt_spiffe_id_format_small_buffer_is_too_long),
        cmocka_unit_test(test_mt_spiffe_id_format_over_maximum_length_is_refused),
        cmocka_unit_test(test_mt_spiffe_is_valid_pattern_table_accepts_ids_and_slash_star),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
