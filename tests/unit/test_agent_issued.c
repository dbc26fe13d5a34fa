/*
 * Tests for agent/issued.c: the table of what the agent issued to whom must list every live
 * process of a node (thousands, not a fixed 4 096), check no liveness when remembering (a sweep of
 * every entry on each request made a node of 10 000 processes get about ten SVIDs a second),
 * forget the dead in sweeps of bounded steps, and never grow past its maximum.
 *
 * Liveness is a table of this test (alive[pid]), so the counts are exact and no process is forked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/issued.h"

#define PIDS (MT_ISSUED_MAX + 1024)
#define START_TIME 4242ull

static bool alive[PIDS];
static size_t liveness_checks;

static bool fake_is_alive(pid_t pid, unsigned long long start_time)
{
    liveness_checks++;
    return pid > 0 && pid < PIDS && alive[pid] && start_time == START_TIME;
}

static int setup(void **state)
{
    static struct mt_issued_table table;
    memset(alive, 0, sizeof(alive));
    liveness_checks = 0;
    assert_true(mt_result_is_ok(mt_issued_init(&table, fake_is_alive)));
    *state = &table;
    return 0;
}

static int teardown(void **state)
{
    mt_issued_cleanup(*state);
    return 0;
}

/* Remembers pids [from, to) as live processes, each with its own identity. */
static void remember_live(struct mt_issued_table *table, pid_t from, pid_t to)
{
    for (pid_t pid = from; pid < to; pid++) {
        char id[64];
        snprintf(id, sizeof(id), "spiffe://meshtls.local/pid/%ld", (long)pid);
        alive[pid] = true;
        assert_true(mt_issued_remember(table, pid, 1000, START_TIME, "/usr/bin/worker", id, 7));
    }
}

static void test_mt_issued_remember_ten_thousand_live_processes_all_found(void **state)
{
    struct mt_issued_table *table = *state;
    remember_live(table, 1, 10001);
    assert_int_equal(table->count, 10000);
    for (pid_t pid = 1; pid <= 10000; pid++) {
        struct mt_issued_entry *entry = mt_issued_find(table, pid, START_TIME);
        assert_non_null(entry);
        char id[64];
        snprintf(id, sizeof(id), "spiffe://meshtls.local/pid/%ld", (long)pid);
        assert_string_equal(entry->spiffe_id, id);
    }
    /* The same pid with another start time is another process: not this one's entry. */
    assert_null(mt_issued_find(table, 5, START_TIME + 1));
    assert_null(mt_issued_find(table, 10001, START_TIME));
}

/* Remembering never asks about liveness, however full the table. */
static void test_mt_issued_remember_full_table_checks_no_liveness(void **state)
{
    struct mt_issued_table *table = *state;
    remember_live(table, 1, 20001);
    assert_int_equal(liveness_checks, 0);
    assert_int_equal(table->count, 20000);
}

static void test_mt_issued_remember_again_replaces_the_entry(void **state)
{
    struct mt_issued_table *table = *state;
    remember_live(table, 1, 3);
    assert_true(mt_issued_remember(table, 2, 1000, START_TIME, "/usr/bin/other",
                                   "spiffe://meshtls.local/renamed", 9));
    assert_int_equal(table->count, 2);
    struct mt_issued_entry *entry = mt_issued_find(table, 2, START_TIME);
    assert_non_null(entry);
    assert_string_equal(entry->spiffe_id, "spiffe://meshtls.local/renamed");
    assert_string_equal(entry->exe, "/usr/bin/other");
    assert_int_equal(entry->expiry, 9);
}

/* A process that asks for itself after its supervisor did is no longer shown as supervised. */
static void test_mt_issued_remember_again_forgets_the_supervisor(void **state)
{
    struct mt_issued_table *table = *state;
    assert_true(mt_issued_remember(table, 2, 1000, START_TIME, "/usr/bin/program",
                                   "spiffe://meshtls.local/program", 9));
    struct mt_issued_entry *entry = mt_issued_find(table, 2, START_TIME);
    assert_int_equal(entry->supervisor_pid, 0);
    entry->supervisor_pid = 1;
    assert_true(mt_issued_remember(table, 2, 1000, START_TIME, "/usr/bin/program",
                                   "spiffe://meshtls.local/program", 10));
    entry = mt_issued_find(table, 2, START_TIME);
    assert_int_equal(entry->supervisor_pid, 0);
}

static void test_mt_issued_sweep_forgets_the_dead_keeps_the_live(void **state)
{
    struct mt_issued_table *table = *state;
    remember_live(table, 1, 101);
    for (pid_t pid = 1; pid <= 100; pid += 2)
        alive[pid] = false;
    mt_issued_sweep(table);
    assert_int_equal(table->count, 50);
    for (pid_t pid = 1; pid <= 100; pid++)
        assert_true((mt_issued_find(table, pid, START_TIME) != NULL) == alive[pid]);
}

/* A sweep in steps of at most budget checks: every dead entry goes, every live one stays
 * findable (removals move entries and their index slots). */
static void test_mt_issued_sweep_step_bounded_steps_keep_the_index_whole(void **state)
{
    struct mt_issued_table *table = *state;
    remember_live(table, 1, 5001);
    for (pid_t pid = 1; pid <= 5000; pid++)
        alive[pid] = pid % 3 != 0;
    size_t cursor = 0;
    size_t steps = 0;
    bool done = false;
    while (!done) {
        size_t before = liveness_checks;
        done = mt_issued_sweep_step(table, &cursor, 7);
        assert_true(liveness_checks - before <= 7);
        assert_true(++steps <= 5000);
    }
    assert_int_equal(liveness_checks, 5000);
    assert_int_equal(table->count, 5000 - 5000 / 3);
    for (pid_t pid = 1; pid <= 5000; pid++)
        assert_true((mt_issued_find(table, pid, START_TIME) != NULL) == alive[pid]);
}

/* Short-lived processes (cron, CGI) churning through, swept now and then: the table stays put. */
static void test_mt_issued_remember_churn_swept_does_not_grow(void **state)
{
    struct mt_issued_table *table = *state;
    for (pid_t pid = 1; pid <= 10 * MT_ISSUED_INITIAL; pid++) {
        remember_live(table, pid, pid + 1);
        alive[pid] = false;
        if (pid % (MT_ISSUED_INITIAL / 2) == 0)
            mt_issued_sweep(table);
    }
    assert_int_equal(table->capacity, MT_ISSUED_INITIAL);
}

static void test_mt_issued_remember_at_maximum_refuses_and_keeps_the_live(void **state)
{
    struct mt_issued_table *table = *state;
    remember_live(table, 1, MT_ISSUED_MAX + 1);
    assert_int_equal(table->count, MT_ISSUED_MAX);
    alive[MT_ISSUED_MAX + 1] = true;
    assert_false(mt_issued_remember(table, MT_ISSUED_MAX + 1, 1000, START_TIME, "/usr/bin/worker",
                                    "spiffe://meshtls.local/late", 7));
    assert_int_equal(table->capacity, MT_ISSUED_MAX);
    assert_non_null(mt_issued_find(table, MT_ISSUED_MAX, START_TIME));
    assert_null(mt_issued_find(table, MT_ISSUED_MAX + 1, START_TIME));
    /* Once processes exit, a sweep makes room again. */
    for (pid_t pid = 1; pid <= MT_ISSUED_MAX / 2; pid++)
        alive[pid] = false;
    mt_issued_sweep(table);
    assert_true(mt_issued_remember(table, MT_ISSUED_MAX + 1, 1000, START_TIME, "/usr/bin/worker",
                                   "spiffe://meshtls.local/late", 7));
    assert_non_null(mt_issued_find(table, MT_ISSUED_MAX + 1, START_TIME));
}

int main(void)
{
#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        TEST(test_mt_issued_remember_ten_thousand_live_processes_all_found),
        TEST(test_mt_issued_remember_full_table_checks_no_liveness),
        TEST(test_mt_issued_remember_again_replaces_the_entry),
        TEST(test_mt_issued_remember_again_forgets_the_supervisor),
        TEST(test_mt_issued_sweep_forgets_the_dead_keeps_the_live),
        TEST(test_mt_issued_sweep_step_bounded_steps_keep_the_index_whole),
        TEST(test_mt_issued_remember_churn_swept_does_not_grow),
        TEST(test_mt_issued_remember_at_maximum_refuses_and_keeps_the_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
