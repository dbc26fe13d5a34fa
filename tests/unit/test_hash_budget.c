/*
 * Tests for agent/hash_budget.c: one uid that keeps changing its executable must run out of
 * hashing long before it can hold the agent's event loop, while another uid is still hashed; a
 * window must end, and a refused request must cost nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/hash_budget.h"

#define ATTACKER 65534
#define VICTIM 1000
#define MIB (1024ull * 1024)
/* The largest executable the agent hashes (attest.h). */
#define LARGEST (128 * MIB)

static struct mt_hash_budget budget;

static int setup(void **state)
{
    (void)state;
    memset(&budget, 0, sizeof(budget));
    return 0;
}

/* The attack: touch one's own 128 MiB executable, connect, ask; again and again in one minute. */
static void test_hash_budget_charge_one_uid_looping_refused_after_its_budget(void **state)
{
    (void)state;
    unsigned granted = 0;
    for (long long now = 1000; now < 1000 + 50000; now += 100)
        if (mt_hash_budget_charge(&budget, ATTACKER, LARGEST, now) == MT_HASH_BUDGET_GRANTED)
            granted++;
    /* 500 attempts, two granted: about a second of hashing in the minute, not 500 of them. */
    assert_int_equal(granted, MT_HASH_BUDGET_UID_BYTES / LARGEST);
    assert_int_equal(mt_hash_budget_charge(&budget, ATTACKER, 1, 50000), MT_HASH_BUDGET_UID_SPENT);
    assert_int_equal(mt_hash_budget_spent(&budget, ATTACKER, 50000), MT_HASH_BUDGET_UID_BYTES);
}

static void test_hash_budget_charge_other_uid_still_granted(void **state)
{
    (void)state;
    while (mt_hash_budget_charge(&budget, ATTACKER, LARGEST, 1000) == MT_HASH_BUDGET_GRANTED)
        ;
    assert_int_equal(mt_hash_budget_charge(&budget, VICTIM, LARGEST, 1001), MT_HASH_BUDGET_GRANTED);
    assert_int_equal(mt_hash_budget_spent(&budget, VICTIM, 1001), LARGEST);
}

static void test_hash_budget_charge_window_over_granted_again(void **state)
{
    (void)state;
    assert_int_equal(mt_hash_budget_charge(&budget, ATTACKER, MT_HASH_BUDGET_UID_BYTES, 1000),
                     MT_HASH_BUDGET_GRANTED);
    assert_int_equal(
        mt_hash_budget_charge(&budget, ATTACKER, 1, 1000 + MT_HASH_BUDGET_WINDOW_MS - 1),
        MT_HASH_BUDGET_UID_SPENT);
    assert_int_equal(
        mt_hash_budget_charge(&budget, ATTACKER, LARGEST, 1000 + MT_HASH_BUDGET_WINDOW_MS),
        MT_HASH_BUDGET_GRANTED);
    assert_int_equal(mt_hash_budget_spent(&budget, ATTACKER, 1000 + MT_HASH_BUDGET_WINDOW_MS),
                     LARGEST);
}

/* Refusals are free: a small file still fits after a large one was refused. */
static void test_hash_budget_charge_refused_costs_nothing(void **state)
{
    (void)state;
    assert_int_equal(mt_hash_budget_charge(&budget, ATTACKER, MT_HASH_BUDGET_UID_BYTES - MIB, 1),
                     MT_HASH_BUDGET_GRANTED);
    assert_int_equal(mt_hash_budget_charge(&budget, ATTACKER, 2 * MIB, 2),
                     MT_HASH_BUDGET_UID_SPENT);
    assert_int_equal(mt_hash_budget_charge(&budget, ATTACKER, MIB, 3), MT_HASH_BUDGET_GRANTED);
    assert_int_equal(mt_hash_budget_spent(&budget, ATTACKER, 3), MT_HASH_BUDGET_UID_BYTES);
}

/* Many uids (a user's subordinate uids, say) cannot add up to more than the node's budget. */
static void test_hash_budget_charge_many_uids_bounded_by_node(void **state)
{
    (void)state;
    uint64_t granted = 0;
    for (uid_t uid = 100000; uid < 100000 + 2 * MT_HASH_BUDGET_UIDS; uid++)
        for (int i = 0; i < 4; i++)
            if (mt_hash_budget_charge(&budget, uid, LARGEST, 5000 + i) == MT_HASH_BUDGET_GRANTED)
                granted += LARGEST;
    assert_int_equal(granted, MT_HASH_BUDGET_NODE_BYTES);
    assert_int_equal(mt_hash_budget_charge(&budget, VICTIM, MIB, 6000), MT_HASH_BUDGET_NODE_SPENT);
}

/* A full table refuses a newcomer rather than push out a running window (which would reset it). */
static void test_hash_budget_charge_full_table_refuses_newcomer(void **state)
{
    (void)state;
    for (uid_t uid = 1; uid <= MT_HASH_BUDGET_UIDS; uid++)
        assert_int_equal(mt_hash_budget_charge(&budget, uid, 1, 100), MT_HASH_BUDGET_GRANTED);
    assert_int_equal(mt_hash_budget_charge(&budget, VICTIM, 1, 200), MT_HASH_BUDGET_TOO_MANY_UIDS);
    assert_int_equal(mt_hash_budget_spent(&budget, 1, 200), 1);
    /* Once those windows are over, their entries serve others. */
    assert_int_equal(mt_hash_budget_charge(&budget, VICTIM, 1, 100 + MT_HASH_BUDGET_WINDOW_MS),
                     MT_HASH_BUDGET_GRANTED);
}

static void test_hash_budget_charge_larger_than_budget_refused(void **state)
{
    (void)state;
    assert_int_equal(mt_hash_budget_charge(&budget, VICTIM, MT_HASH_BUDGET_UID_BYTES + 1, 1),
                     MT_HASH_BUDGET_UID_SPENT);
    assert_int_equal(mt_hash_budget_spent(&budget, VICTIM, 1), 0);
}

/* A file that ended before its charged size: what stays charged is what was read. */
static void test_hash_budget_refund_leaves_what_was_read(void **state)
{
    (void)state;
    assert_int_equal(mt_hash_budget_charge(&budget, ATTACKER, LARGEST, 1000),
                     MT_HASH_BUDGET_GRANTED);
    mt_hash_budget_refund(&budget, ATTACKER, LARGEST - MIB, 1001);
    assert_int_equal(mt_hash_budget_spent(&budget, ATTACKER, 1002), MIB);
    assert_int_equal(budget.node.spent, MIB);
    /* Never below zero, and an ended window is not touched. */
    mt_hash_budget_refund(&budget, ATTACKER, LARGEST, 1003);
    assert_int_equal(mt_hash_budget_spent(&budget, ATTACKER, 1004), 0);
    assert_int_equal(mt_hash_budget_charge(&budget, ATTACKER, MIB, 1005), MT_HASH_BUDGET_GRANTED);
    mt_hash_budget_refund(&budget, ATTACKER, MIB, 1000 + MT_HASH_BUDGET_WINDOW_MS);
    assert_int_equal(budget.uids[0].spent, MIB);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_hash_budget_charge_one_uid_looping_refused_after_its_budget,
                               setup),
        cmocka_unit_test_setup(test_hash_budget_charge_other_uid_still_granted, setup),
        cmocka_unit_test_setup(test_hash_budget_charge_window_over_granted_again, setup),
        cmocka_unit_test_setup(test_hash_budget_charge_refused_costs_nothing, setup),
        cmocka_unit_test_setup(test_hash_budget_charge_many_uids_bounded_by_node, setup),
        cmocka_unit_test_setup(test_hash_budget_charge_full_table_refuses_newcomer, setup),
        cmocka_unit_test_setup(test_hash_budget_charge_larger_than_budget_refused, setup),
        cmocka_unit_test_setup(test_hash_budget_refund_leaves_what_was_read, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
