/*
 * Tests for util/error.c: every code has a message, a name and an errno, and codes outside the
 * list are answered safely instead of indexing past the table.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/error.h"
#include "util/result.h"

static void test_mt_error_message_every_code_has_distinct_text(void **state)
{
    (void)state;
    for (int code = 0; code < MT_ERROR_COUNT; code++) {
        const char *message = mt_error_message((enum mt_error)code);
        assert_non_null(message);
        assert_true(strlen(message) > 0);
        assert_string_not_equal(message, "unknown error");
        for (int other = 0; other < code; other++)
            assert_string_not_equal(message, mt_error_message((enum mt_error)other));
    }
}

static void test_mt_error_name_every_code_has_its_symbol(void **state)
{
    (void)state;
    assert_string_equal(mt_error_name(MT_OK), "MT_OK");
    assert_string_equal(mt_error_name(MT_ERR_TIMEOUT), "MT_ERR_TIMEOUT");
    assert_string_equal(mt_error_name(MT_ERR_NO_IDENTITY), "MT_ERR_NO_IDENTITY");
    for (int code = 1; code < MT_ERROR_COUNT; code++)
        assert_int_equal(strncmp(mt_error_name((enum mt_error)code), "MT_ERR_", 7), 0);
}

static void test_mt_error_message_unknown_code_is_not_out_of_bounds(void **state)
{
    (void)state;
    assert_string_equal(mt_error_message(MT_ERROR_COUNT), "unknown error");
    assert_string_equal(mt_error_message((enum mt_error) - 1), "unknown error");
    assert_string_equal(mt_error_name((enum mt_error)1000), "MT_ERR_UNKNOWN");
    assert_int_equal(mt_error_to_errno((enum mt_error)1000), EIO);
}

static void test_mt_error_to_errno_codes_map_to_the_errno_applications_expect(void **state)
{
    (void)state;
    static const struct {
        enum mt_error code;
        int errno_value;
    } cases[] = {
        {MT_ERR_WOULD_BLOCK, EAGAIN},
        {MT_ERR_INTERRUPTED, EINTR},
        {MT_ERR_TIMEOUT, ETIMEDOUT},
        {MT_ERR_POLICY_DENIED, ECONNREFUSED},
        {MT_ERR_HANDSHAKE, ECONNRESET},
        {MT_ERR_PROTO_MALFORMED, EPROTO},
        {MT_ERR_AGENT_UNREACHABLE, ECONNREFUSED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(mt_error_to_errno(cases[i].code), cases[i].errno_value);
}

/* MT_OK is not an error; an application must never see errno 0 with a -1 return. */
static void test_mt_error_to_errno_ok_is_never_zero(void **state)
{
    (void)state;
    assert_int_equal(mt_error_to_errno(MT_OK), EIO);
    for (int code = 1; code < MT_ERROR_COUNT; code++)
        assert_int_not_equal(mt_error_to_errno((enum mt_error)code), 0);
}

static mt_result guarded_chain(mt_result inner, bool *reached_end)
{
    MT_GUARD(inner);
    *reached_end = true;
    return MT_OK_RESULT;
}

static mt_result ensured(int value)
{
    MT_ENSURE(value > 0, MT_ERR_INVALID_ARGUMENT);
    return MT_OK_RESULT;
}

static void test_mt_guard_failure_returns_early_with_the_same_error(void **state)
{
    (void)state;
    bool reached_end = false;
    mt_result result = guarded_chain(mt_result_of(MT_ERR_TIMEOUT), &reached_end);
    assert_int_equal(result.error, MT_ERR_TIMEOUT);
    assert_false(reached_end);
    result = guarded_chain(MT_OK_RESULT, &reached_end);
    assert_true(mt_result_is_ok(result));
    assert_true(reached_end);
    assert_int_equal(ensured(0).error, MT_ERR_INVALID_ARGUMENT);
    assert_true(mt_result_is_ok(ensured(1)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt_error_message_every_code_has_distinct_text),
        cmocka_unit_test(test_mt_error_name_every_code_has_its_symbol),
        cmocka_unit_test(test_mt_error_message_unknown_code_is_not_out_of_bounds),
        cmocka_unit_test(test_mt_error_to_errno_codes_map_to_the_errno_applications_expect),
        cmocka_unit_test(test_mt_error_to_errno_ok_is_never_zero),
        cmocka_unit_test(test_mt_guard_failure_returns_early_with_the_same_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
