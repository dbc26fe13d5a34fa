/*
 * Tests for core/variant.c: the LD_PRELOAD entry a new program gets when it starts with the other
 * C library than this build of libmeshtls (glibc here, as the unit tests are built), with the two
 * builds side by side in a directory of the test's own, one of them missing, other preloads in
 * the same entry (dropped), and a buffer too small.
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

#include "core/variant.h"

static char directory[64];
static char glibc_build[128];
static char musl_build[128];

static void touch(const char *path)
{
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    fclose(file);
}

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
    snprintf(directory, sizeof(directory), "%s/test_variant.XXXXXX", base);
    if (mkdtemp(directory) == NULL)
        return -1;
    snprintf(glibc_build, sizeof(glibc_build), "%s/libmeshtls-preload.so", directory);
    snprintf(musl_build, sizeof(musl_build), "%s/libmeshtls-preload-musl.so", directory);
    touch(glibc_build);
    touch(musl_build);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(glibc_build);
    unlink(musl_build);
    return rmdir(directory);
}

static struct mt_check_report *report_of(enum mt_check_verdict verdict)
{
    static struct mt_check_report report;
    memset(&report, 0, sizeof(report));
    report.verdict = verdict;
    snprintf(report.path, sizeof(report.path), "/usr/bin/program");
    snprintf(report.interpreter, sizeof(report.interpreter),
             verdict == MT_CHECK_MUSL ? "/lib/ld-musl-x86_64.so.1" : "/lib64/ld-linux-x86-64.so.2");
    return &report;
}

static void test_switch_entry_musl_program_gets_musl_build(void **state)
{
    (void)state;
    char entry[512];
    char expected[512];
    char buffer[512];
    snprintf(entry, sizeof(entry), "LD_PRELOAD=%s", glibc_build);
    snprintf(expected, sizeof(expected), "LD_PRELOAD=%s", musl_build);
    const char *switched = mt_variant_switch_entry(glibc_build, report_of(MT_CHECK_MUSL), entry,
                                                   buffer, sizeof(buffer));
    assert_non_null(switched);
    assert_string_equal(switched, expected);
}

static void test_switch_entry_glibc_program_keeps_entry(void **state)
{
    (void)state;
    char entry[512];
    char buffer[512];
    snprintf(entry, sizeof(entry), "LD_PRELOAD=%s", glibc_build);
    assert_null(mt_variant_switch_entry(glibc_build, report_of(MT_CHECK_INTERPOSABLE), entry,
                                        buffer, sizeof(buffer)));
    /* Nor for a program no build serves (static). */
    assert_null(mt_variant_switch_entry(glibc_build, report_of(MT_CHECK_STATIC), entry, buffer,
                                        sizeof(buffer)));
}

static void test_switch_entry_other_preloads_dropped(void **state)
{
    (void)state;
    /* Built for this process's C library, they would stop musl's loader. */
    char entry[512];
    char expected[512];
    char buffer[512];
    snprintf(entry, sizeof(entry), "LD_PRELOAD=/opt/first.so %s:/opt/last.so", glibc_build);
    snprintf(expected, sizeof(expected), "LD_PRELOAD=%s", musl_build);
    const char *switched = mt_variant_switch_entry(glibc_build, report_of(MT_CHECK_MUSL), entry,
                                                   buffer, sizeof(buffer));
    assert_non_null(switched);
    assert_string_equal(switched, expected);
}

static void test_switch_entry_not_naming_this_library_keeps_entry(void **state)
{
    (void)state;
    char buffer[512];
    assert_null(mt_variant_switch_entry(glibc_build, report_of(MT_CHECK_MUSL),
                                        "LD_PRELOAD=/opt/other.so", buffer, sizeof(buffer)));
}

static void test_switch_entry_missing_build_keeps_entry(void **state)
{
    (void)state;
    char entry[512];
    char buffer[512];
    snprintf(entry, sizeof(entry), "LD_PRELOAD=%s", glibc_build);
    unlink(musl_build);
    const char *switched = mt_variant_switch_entry(glibc_build, report_of(MT_CHECK_MUSL), entry,
                                                   buffer, sizeof(buffer));
    touch(musl_build);
    assert_null(switched);
}

static void test_switch_entry_too_long_keeps_entry(void **state)
{
    (void)state;
    char entry[512];
    char buffer[32];
    snprintf(entry, sizeof(entry), "LD_PRELOAD=%s", glibc_build);
    assert_null(mt_variant_switch_entry(glibc_build, report_of(MT_CHECK_MUSL), entry, buffer,
                                        sizeof(buffer)));
}

static void test_switch_entry_renamed_library_keeps_entry(void **state)
{
    (void)state;
    /* A copy under another name has no known sibling: nothing is guessed. */
    char buffer[512];
    assert_null(mt_variant_switch_entry("/opt/custom.so", report_of(MT_CHECK_MUSL),
                                        "LD_PRELOAD=/opt/custom.so", buffer, sizeof(buffer)));
}

static void test_serves_and_is_other_by_verdict(void **state)
{
    (void)state;
    assert_true(mt_variant_is_other(report_of(MT_CHECK_MUSL)));
    assert_false(mt_variant_is_other(report_of(MT_CHECK_INTERPOSABLE)));
    assert_false(mt_variant_is_own_musl(report_of(MT_CHECK_MUSL)));
    assert_false(mt_variant_serves(report_of(MT_CHECK_GO)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_switch_entry_musl_program_gets_musl_build),
        cmocka_unit_test(test_switch_entry_glibc_program_keeps_entry),
        cmocka_unit_test(test_switch_entry_other_preloads_dropped),
        cmocka_unit_test(test_switch_entry_not_naming_this_library_keeps_entry),
        cmocka_unit_test(test_switch_entry_missing_build_keeps_entry),
        cmocka_unit_test(test_switch_entry_too_long_keeps_entry),
        cmocka_unit_test(test_switch_entry_renamed_library_keeps_entry),
        cmocka_unit_test(test_serves_and_is_other_by_verdict),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
