/*
 * Tests for agent/fair_share.c: one uid filling the agent's client table must not keep another
 * uid out, and the eviction that lets the other in must take the filler's oldest idle connection,
 * never a connection being answered and never from a uid that holds no more than the newcomer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/fair_share.h"

#define SLOTS 256
#define ATTACKER 65534
#define VICTIM 1000

static struct mt_fair_share_slot table[SLOTS];

static int setup(void **state)
{
    (void)state;
    memset(table, 0, sizeof(table));
    return 0;
}

/* Fills slots [from, to) with waiting connections of uid, accepted at since, since + 1, ... */
static void fill(size_t from, size_t to, uid_t uid, long long since)
{
    for (size_t i = from; i < to; i++)
        table[i] = (struct mt_fair_share_slot){
            .used = true, .waiting = true, .uid = uid, .since_ms = since + (long long)(i - from)};
}

static void test_fair_share_limit_eighth_with_floor(void **state)
{
    (void)state;
    assert_int_equal(mt_fair_share_limit(256), 32);
    assert_int_equal(mt_fair_share_limit(16), MT_FAIR_SHARE_MIN);
    assert_int_equal(mt_fair_share_limit(4), 4);
}

static void test_fair_share_decide_room_admits_anyone(void **state)
{
    (void)state;
    /* Work-conserving: a uid far over its share still gets a free slot. */
    fill(0, 200, ATTACKER, 0);
    struct mt_fair_share_choice choice;
    mt_fair_share_decide(table, SLOTS, ATTACKER, &choice);
    assert_int_equal(choice.decision, MT_FAIR_SHARE_ADMIT);
    assert_int_equal(choice.slot, 200);
    assert_int_equal(choice.held, 200);
}

static void test_fair_share_decide_full_by_one_uid_evicts_its_oldest_for_another(void **state)
{
    (void)state;
    fill(0, SLOTS, ATTACKER, 1000);
    /* The oldest is in the middle of the table, so the choice is by age, not by position. */
    table[77].since_ms = 5;
    struct mt_fair_share_choice choice;
    mt_fair_share_decide(table, SLOTS, VICTIM, &choice);
    assert_int_equal(choice.decision, MT_FAIR_SHARE_EVICT);
    assert_int_equal(choice.slot, 77);
    assert_int_equal(choice.heaviest_uid, ATTACKER);
    assert_int_equal(choice.heaviest_held, SLOTS);
    assert_int_equal(choice.held, 0);
}

static void test_fair_share_decide_full_over_share_refused(void **state)
{
    (void)state;
    fill(0, SLOTS, ATTACKER, 0);
    struct mt_fair_share_choice choice;
    mt_fair_share_decide(table, SLOTS, ATTACKER, &choice);
    assert_int_equal(choice.decision, MT_FAIR_SHARE_REFUSE_OVER_SHARE);
    assert_int_equal(choice.share, 32);
}

static void test_fair_share_decide_never_evicts_a_connection_being_answered(void **state)
{
    (void)state;
    fill(0, SLOTS, ATTACKER, 0);
    for (size_t i = 0; i < SLOTS; i++)
        table[i].waiting = false;
    table[200].waiting = true;
    struct mt_fair_share_choice choice;
    mt_fair_share_decide(table, SLOTS, VICTIM, &choice);
    assert_int_equal(choice.decision, MT_FAIR_SHARE_EVICT);
    assert_int_equal(choice.slot, 200);
    table[200].waiting = false;
    mt_fair_share_decide(table, SLOTS, VICTIM, &choice);
    assert_int_equal(choice.decision, MT_FAIR_SHARE_REFUSE_FULL);
}

static void test_fair_share_decide_evicts_from_heaviest_uid_only(void **state)
{
    (void)state;
    /* uid 1 holds 100 (older), uid 2 holds 156 (newer): the heaviest loses, not the oldest. */
    fill(0, 100, 1, 0);
    fill(100, SLOTS, 2, 5000);
    struct mt_fair_share_choice choice;
    mt_fair_share_decide(table, SLOTS, VICTIM, &choice);
    assert_int_equal(choice.decision, MT_FAIR_SHARE_EVICT);
    assert_int_equal(choice.heaviest_uid, 2);
    assert_int_equal(choice.slot, 100);
}

static void test_fair_share_decide_balanced_table_refuses(void **state)
{
    (void)state;
    /* Eight uids at their share: nobody has more than a newcomer could fairly claim... */
    for (uid_t uid = 0; uid < 8; uid++)
        fill((size_t)uid * 32, (size_t)uid * 32 + 32, uid + 1, 0);
    struct mt_fair_share_choice choice;
    mt_fair_share_decide(table, SLOTS, VICTIM, &choice);
    /* ...but each holds 32 >= 0 + 2, so a newcomer with none still gets one. */
    assert_int_equal(choice.decision, MT_FAIR_SHARE_EVICT);
    /* A newcomer that holds 31 (just under its share) would leave the heaviest below itself. */
    fill(0, 31, VICTIM, 0);
    fill(31, 32, 1, 0);
    mt_fair_share_decide(table, SLOTS, VICTIM, &choice);
    assert_int_equal(choice.held, 31);
    assert_int_equal(choice.decision, MT_FAIR_SHARE_REFUSE_FULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_fair_share_limit_eighth_with_floor, setup),
        cmocka_unit_test_setup(test_fair_share_decide_room_admits_anyone, setup),
        cmocka_unit_test_setup(test_fair_share_decide_full_by_one_uid_evicts_its_oldest_for_another,
                               setup),
        cmocka_unit_test_setup(test_fair_share_decide_full_over_share_refused, setup),
        cmocka_unit_test_setup(test_fair_share_decide_never_evicts_a_connection_being_answered,
                               setup),
        cmocka_unit_test_setup(test_fair_share_decide_evicts_from_heaviest_uid_only, setup),
        cmocka_unit_test_setup(test_fair_share_decide_balanced_table_refuses, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
