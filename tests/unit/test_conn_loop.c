/*
 * Tests for the engine's side of the direct-link API's event-loop calls (core/conn_poll.c
 * mt_conn_handshake_progress) and the per-connection pinned server identity (core/conn.c), on
 * the two-connection harness of conn_support.h: each side is driven as an application's loop
 * would, given bytes only when it said it waits for them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "conn_support.h"

#include "core/conn.h"
#include "util/text.h"

/* An event loop's view: each side says what it waits for, and only that is given to it. */
static void test_mt_conn_handshake_progress_answers_what_it_waits_for_until_done(void **state)
{
    struct pair *pair = *state;
    open_pair(pair);
    int failed_errno = 0;
    /* Neither side can move before the other's first flight: both wait to read. */
    assert_int_equal(mt_conn_handshake_progress(pair->client, &failed_errno),
                     MT_CONN_PROGRESS_WANTS_READ);
    assert_int_equal(mt_conn_handshake_progress(pair->server, &failed_errno),
                     MT_CONN_PROGRESS_WANTS_READ);
    enum mt_conn_progress client = MT_CONN_PROGRESS_WANTS_READ;
    enum mt_conn_progress server = MT_CONN_PROGRESS_WANTS_READ;
    int steps = 0;
    while (client != MT_CONN_PROGRESS_DONE || server != MT_CONN_PROGRESS_DONE) {
        assert_true(++steps < STEP_LIMIT);
        /* Bytes reach a side only when it said it waits to read. */
        if (server == MT_CONN_PROGRESS_WANTS_READ)
            forward(&pair->up, 1);
        if (client == MT_CONN_PROGRESS_WANTS_READ)
            forward(&pair->down, 1);
        client = mt_conn_handshake_progress(pair->client, &failed_errno);
        server = mt_conn_handshake_progress(pair->server, &failed_errno);
        assert_int_not_equal(client, MT_CONN_PROGRESS_FAILED);
        assert_int_not_equal(server, MT_CONN_PROGRESS_FAILED);
    }
    assert_true(both_established(pair));
    /* Done stays done: a loop may ask again. */
    assert_int_equal(mt_conn_handshake_progress(pair->client, &failed_errno),
                     MT_CONN_PROGRESS_DONE);
}

static bool client_progress_failed(struct pair *pair)
{
    int failed_errno = 0;
    return mt_conn_handshake_progress(pair->client, &failed_errno) == MT_CONN_PROGRESS_FAILED;
}

/* A pin the server does not match refuses it, although policy expects no particular ID. */
static void test_mt_conn_handshake_progress_pinned_identity_mismatch_fails_naming_both(void **state)
{
    struct pair *pair = *state;
    pair->client_settings.pinned_identity = "spiffe://example.org/ns/other";
    open_pair(pair);
    assert_true(drive(pair, 1, client_progress_failed));
    int failed_errno = 0;
    assert_int_equal(mt_conn_handshake_progress(pair->client, &failed_errno),
                     MT_CONN_PROGRESS_FAILED);
    assert_int_not_equal(failed_errno, 0);
    char reason[256];
    mt_conn_failure_reason(pair->client, MT_TEXT_ON(reason));
    assert_string_equal(
        reason, "server identity " SERVER_ID " does not match "
                "spiffe://example.org/ns/other expected by the caller (we are " CLIENT_ID ")");
}

/* The pin is the connection's own copy: the caller's buffer may change once open returned. */
static void test_mt_conn_open_pinned_pattern_copied_matching_server_establishes(void **state)
{
    struct pair *pair = *state;
    char pattern[64] = "spiffe://example.org/ns/*";
    pair->client_settings.pinned_identity = pattern;
    open_pair(pair);
    strcpy(pattern, "spiffe://example.org/elsewhere");
    assert_true(drive(pair, 1, both_established));
}

/* A pin narrows what policy expects, never widens it: both must hold. */
static void test_mt_conn_open_pinned_match_policy_mismatch_still_refused(void **state)
{
    struct pair *pair = *state;
    pair->client_settings.pinned_identity = SERVER_ID;
    pair->client_settings.outbound.expected_identity = "spiffe://example.org/ns/other";
    open_pair(pair);
    assert_true(drive(pair, 1, client_failed));
    char reason[256];
    mt_conn_failure_reason(pair->client, MT_TEXT_ON(reason));
    assert_non_null(strstr(reason, "spiffe://example.org/ns/other expected by the default"));
}

int main(void)
{
#define PAIR_TEST(name) cmocka_unit_test_setup_teardown(name, pair_setup, pair_teardown)
    const struct CMUnitTest tests[] = {
        PAIR_TEST(test_mt_conn_handshake_progress_answers_what_it_waits_for_until_done),
        PAIR_TEST(test_mt_conn_handshake_progress_pinned_identity_mismatch_fails_naming_both),
        PAIR_TEST(test_mt_conn_open_pinned_pattern_copied_matching_server_establishes),
        PAIR_TEST(test_mt_conn_open_pinned_match_policy_mismatch_still_refused),
    };
#undef PAIR_TEST
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
