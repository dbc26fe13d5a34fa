/*
 * Tests for mt_intercept_decide (core/intercept.c): the one decision whether a socket becomes
 * ours, from the direction, the caller's flags, the configuration's state and policy's verdict.
 * Every input is tested in both orientations - the same facts with one input changed give a
 * different answer - so a decision that ignores an input cannot pass.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/intercept.h"

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))

#define OUT MT_INTERCEPT_OUTBOUND
#define IN MT_INTERCEPT_INBOUND
#define POLICY MT_INTERCEPT_BY_POLICY
#define FORCE MT_INTERCEPT_FORCE_MTLS
#define ADOPTED MT_INTERCEPT_ADOPTED
#define PASS MT_INTERCEPT_PASS
#define MESH MT_INTERCEPT_MESH
#define REFUSE MT_INTERCEPT_REFUSE
#define NONE MT_INTERCEPT_REFUSAL_NONE
#define CONFIG MT_INTERCEPT_REFUSAL_CONFIG
#define GONE MT_INTERCEPT_REFUSAL_PEER_GONE

/* A verdict of either direction: outbound modes are plain/mtls, inbound plain/strict/permissive. */
enum verdict { PLAIN, MTLS, STRICT, PERMISSIVE, SKIPPED, OPAQUE_PERMISSIVE };

static const char *const verdict_names[] = {"plain",      "mtls",    "strict",
                                            "permissive", "skipped", "opaque permissive"};

static const struct mt_inbound_rule some_rule = {.mode = MT_INBOUND_STRICT};

static struct mt_intercept_facts facts_for(enum mt_intercept_direction direction,
                                           enum mt_intercept_flags flags, bool config_failed,
                                           bool peer_gone, enum verdict verdict)
{
    struct mt_intercept_facts facts = {
        .direction = direction,
        .flags = flags,
        .config_failed = config_failed,
        .peer_gone = peer_gone,
        .outbound = {.mode = MT_OUTBOUND_PLAIN, .rule = -1},
        .inbound = {.mode = MT_INBOUND_PLAIN, .rule_index = -1},
    };
    switch (verdict) {
    case PLAIN:
        break;
    case MTLS:
        facts.outbound.mode = MT_OUTBOUND_MTLS;
        break;
    case STRICT:
        facts.inbound.mode = MT_INBOUND_STRICT;
        break;
    case PERMISSIVE:
        facts.inbound.mode = MT_INBOUND_PERMISSIVE;
        break;
    case OPAQUE_PERMISSIVE:
        facts.inbound.mode = MT_INBOUND_PERMISSIVE;
        facts.inbound.opaque = true;
        break;
    case SKIPPED:
        /* The port is in skip_ports. Policy then says plain too; here the mode is one that would
         * mesh, so that a decision reading only the mode cannot pass. */
        facts.outbound.mode = MT_OUTBOUND_MTLS;
        facts.outbound.skipped = true;
        facts.inbound.mode = MT_INBOUND_STRICT;
        facts.inbound.skipped = true;
        break;
    }
    return facts;
}

/* The mode a decision's connection runs in, named as its log lines name it. */
static const char *mode_of(enum mt_intercept_direction direction,
                           const struct mt_intercept_decision *decision)
{
    return direction == OUT ? mt_outbound_mode_name(decision->outbound.mode)
                            : mt_inbound_mode_name(decision->inbound.mode);
}

static const struct {
    enum mt_intercept_direction direction;
    enum mt_intercept_flags flags;
    bool config_failed;
    bool peer_gone;
    enum verdict verdict;
    enum mt_intercept_action action;
    enum mt_intercept_refusal refusal;
    const char *mode; /* NULL: passed, no connection */
    bool detect;
} rows[] = {
    /* Policy decides: plain (or a skipped port) passes; an mTLS verdict meshes. */
    {OUT, POLICY, false, false, PLAIN, PASS, NONE, NULL, false},
    {OUT, POLICY, false, false, SKIPPED, PASS, NONE, NULL, false},
    {OUT, POLICY, false, false, MTLS, MESH, NONE, "mtls", false},
    {IN, POLICY, false, false, PLAIN, PASS, NONE, NULL, false},
    {IN, POLICY, false, false, SKIPPED, PASS, NONE, NULL, false},
    {IN, POLICY, false, false, STRICT, MESH, NONE, "strict", false},
    {IN, POLICY, false, false, PERMISSIVE, MESH, NONE, "permissive", true},
    {IN, POLICY, false, false, OPAQUE_PERMISSIVE, MESH, NONE, "permissive", false},
    /* The direct-link API: mTLS whatever policy says, and no permissive detection. */
    {OUT, FORCE, false, false, PLAIN, MESH, NONE, "mtls", false},
    {OUT, FORCE, false, false, SKIPPED, MESH, NONE, "mtls", false},
    {OUT, FORCE, false, false, MTLS, MESH, NONE, "mtls", false},
    {IN, FORCE, false, false, PLAIN, MESH, NONE, "strict", false},
    {IN, FORCE, false, false, SKIPPED, MESH, NONE, "strict", false},
    {IN, FORCE, false, false, STRICT, MESH, NONE, "strict", false},
    {IN, FORCE, false, false, PERMISSIVE, MESH, NONE, "strict", false},
    /* Adopted: plain overruled, permissive detection kept. */
    {OUT, ADOPTED, false, false, PLAIN, MESH, NONE, "mtls", false},
    {OUT, ADOPTED, false, false, SKIPPED, MESH, NONE, "mtls", false},
    {IN, ADOPTED, false, false, PLAIN, MESH, NONE, "strict", false},
    {IN, ADOPTED, false, false, SKIPPED, MESH, NONE, "strict", false},
    {IN, ADOPTED, false, false, PERMISSIVE, MESH, NONE, "permissive", true},
    {IN, ADOPTED, false, false, OPAQUE_PERMISSIVE, MESH, NONE, "permissive", false},
    /* No configuration: every TCP connection refused, whatever else is true. */
    {OUT, POLICY, true, false, PLAIN, REFUSE, CONFIG, "mtls", false},
    {OUT, FORCE, true, false, MTLS, REFUSE, CONFIG, "mtls", false},
    {OUT, ADOPTED, true, false, PLAIN, REFUSE, CONFIG, "mtls", false},
    {IN, POLICY, true, false, PLAIN, REFUSE, CONFIG, "strict", false},
    {IN, POLICY, true, false, PERMISSIVE, REFUSE, CONFIG, "strict", false},
    {IN, FORCE, true, false, STRICT, REFUSE, CONFIG, "strict", false},
    {IN, ADOPTED, true, false, PERMISSIVE, REFUSE, CONFIG, "strict", false},
    {IN, POLICY, true, true, STRICT, REFUSE, CONFIG, "strict", false},
    /* The peer reset before accept() returned: refused unless policy passes the port. */
    {IN, POLICY, false, true, PLAIN, PASS, NONE, NULL, false},
    {IN, POLICY, false, true, SKIPPED, PASS, NONE, NULL, false},
    {IN, POLICY, false, true, STRICT, REFUSE, GONE, "strict", false},
    {IN, POLICY, false, true, PERMISSIVE, REFUSE, GONE, "permissive", false},
    {IN, FORCE, false, true, PLAIN, REFUSE, GONE, "strict", false},
};

static void test_mt_intercept_decide_table_each_input_changes_the_answer(void **state)
{
    (void)state;
    for (size_t r = 0; r < COUNT_OF(rows); r++) {
        struct mt_intercept_facts facts =
            facts_for(rows[r].direction, rows[r].flags, rows[r].config_failed, rows[r].peer_gone,
                      rows[r].verdict);
        struct mt_intercept_decision decision = mt_intercept_decide(&facts);
        if (decision.action != rows[r].action || decision.refusal != rows[r].refusal)
            fail_msg("row %zu (%s, flags %d, verdict %s): action %d refusal %d, expected %d %d", r,
                     rows[r].direction == OUT ? "outbound" : "inbound", (int)rows[r].flags,
                     verdict_names[rows[r].verdict], (int)decision.action, (int)decision.refusal,
                     (int)rows[r].action, (int)rows[r].refusal);
        if (rows[r].mode == NULL)
            continue;
        if (strcmp(mode_of(rows[r].direction, &decision), rows[r].mode) != 0 ||
            decision.detect != rows[r].detect)
            fail_msg("row %zu (verdict %s): mode %s detect %d, expected %s %d", r,
                     verdict_names[rows[r].verdict], mode_of(rows[r].direction, &decision),
                     decision.detect, rows[r].mode, rows[r].detect);
    }
}

static void test_mt_intercept_decide_direction_selects_the_verdict(void **state)
{
    (void)state;
    /* Outbound says plain, inbound says strict; then the other way round. */
    struct mt_intercept_facts facts = facts_for(OUT, POLICY, false, false, STRICT);
    assert_int_equal(mt_intercept_decide(&facts).action, PASS);
    facts.direction = IN;
    assert_int_equal(mt_intercept_decide(&facts).action, MESH);

    facts = facts_for(OUT, POLICY, false, false, MTLS);
    assert_int_equal(mt_intercept_decide(&facts).action, MESH);
    facts.direction = IN;
    assert_int_equal(mt_intercept_decide(&facts).action, PASS);
}

static void test_mt_intercept_decide_mesh_keeps_what_policy_checks_later(void **state)
{
    (void)state;
    /* The expected server identity and the allow list travel with the connection. */
    struct mt_intercept_facts facts = facts_for(OUT, POLICY, false, false, MTLS);
    facts.outbound.expected_identity = "spiffe://td/ns/db";
    facts.outbound.rule = 3;
    struct mt_intercept_decision decision = mt_intercept_decide(&facts);
    assert_int_equal(decision.action, MESH);
    assert_string_equal(decision.outbound.expected_identity, "spiffe://td/ns/db");
    assert_int_equal(decision.outbound.rule, 3);

    facts = facts_for(IN, FORCE, false, false, PERMISSIVE);
    facts.inbound.rule = &some_rule;
    facts.inbound.rule_index = 2;
    decision = mt_intercept_decide(&facts);
    assert_int_equal(decision.action, MESH);
    assert_ptr_equal(decision.inbound.rule, &some_rule);
    assert_int_equal(decision.inbound.rule_index, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt_intercept_decide_table_each_input_changes_the_answer),
        cmocka_unit_test(test_mt_intercept_decide_direction_selects_the_verdict),
        cmocka_unit_test(test_mt_intercept_decide_mesh_keeps_what_policy_checks_later),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
