/*
 * Tests for tls/resumption.c's tickets: a sealed ticket opens to the identity and expiry it was
 * sealed with, and to nothing once anything about it changed: a flipped bit in the body, the name,
 * the IV or the tag; two tickets' names swapped (a client taking over another's binding); another
 * context's key (rotation), or none yet; a past expiry; a slot reused by newer tickets; a claimed
 * length other than the sealed one. A resumed connection's ticket renews its own slot.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tls/resumption.h"

/* wolfSSL's ticket body is an InternalTicket; its size does not matter here. */
#define BODY_SIZE 96

struct ticket {
    unsigned char name[WOLFSSL_TICKET_NAME_SZ];
    unsigned char iv[WOLFSSL_TICKET_IV_SZ];
    unsigned char mac[WOLFSSL_TICKET_MAC_SZ];
    unsigned char body[BODY_SIZE];
};

static const char id_a[] = "spiffe://example.org/ns/a";
static const char id_b[] = "spiffe://example.org/ns/b";

static struct mt_tls_resumption *make(void)
{
    struct mt_tls_resumption *resumption = NULL;
    assert_true(mt_result_is_ok(mt_tls_resumption_new(600, &resumption)));
    assert_non_null(resumption);
    return resumption;
}

static void seal(struct mt_tls_resumption *resumption, const char *id, long long expires_ms,
                 struct ticket *ticket)
{
    for (size_t i = 0; i < BODY_SIZE; i++)
        ticket->body[i] = (unsigned char)(i * 7 + 1);
    assert_true(mt_tls_ticket_seal(resumption, id, expires_ms, NULL, ticket->name, ticket->iv,
                                   ticket->mac, ticket->body, BODY_SIZE));
}

/* Opens a copy, so that the ticket can be opened again. */
static bool open_copy(struct mt_tls_resumption *resumption, const struct ticket *ticket, char *id,
                      long long *expires_ms)
{
    struct ticket copy = *ticket;
    bool opened = mt_tls_ticket_open(resumption, copy.name, copy.iv, copy.mac, copy.body, BODY_SIZE,
                                     id, 256, expires_ms);
    if (opened)
        for (size_t i = 0; i < BODY_SIZE; i++)
            assert_int_equal(copy.body[i], (unsigned char)(i * 7 + 1));
    return opened;
}

static void test_round_trip(void **state)
{
    (void)state;
    struct mt_tls_resumption *resumption = make();
    long long expires = mt_tls_resumption_now_ms() + 60000;
    struct ticket ticket;
    seal(resumption, id_a, expires, &ticket);
    assert_int_not_equal(ticket.body[0], 1); /* encrypted */
    char id[256];
    long long expires_ms = 0;
    assert_true(open_copy(resumption, &ticket, id, &expires_ms));
    assert_string_equal(id, id_a);
    assert_int_equal(expires_ms, expires);
    mt_tls_resumption_free(resumption);
}

static void test_any_flipped_bit_refuses(void **state)
{
    (void)state;
    struct mt_tls_resumption *resumption = make();
    struct ticket ticket;
    seal(resumption, id_a, mt_tls_resumption_now_ms() + 60000, &ticket);
    char id[256];
    long long expires_ms;
    unsigned char *bytes = (unsigned char *)&ticket;
    size_t tag_end = offsetof(struct ticket, mac) + 16; /* the GCM tag; the rest is unused */
    for (size_t i = 0; i < sizeof(ticket); i++) {
        if (i >= tag_end && i < offsetof(struct ticket, body))
            continue;
        if (i >= offsetof(struct ticket, iv) + 12 && i < offsetof(struct ticket, mac))
            continue; /* the IV's last 4 bytes are not used by the 96-bit GCM nonce */
        bytes[i] ^= 0x10;
        assert_false(open_copy(resumption, &ticket, id, &expires_ms));
        bytes[i] ^= 0x10;
    }
    assert_true(open_copy(resumption, &ticket, id, &expires_ms));
    mt_tls_resumption_free(resumption);
}

static void test_swapped_names_refuse(void **state)
{
    (void)state;
    struct mt_tls_resumption *resumption = make();
    struct ticket a;
    struct ticket b;
    seal(resumption, id_a, mt_tls_resumption_now_ms() + 60000, &a);
    seal(resumption, id_b, mt_tls_resumption_now_ms() + 60000, &b);
    /* b's holder points its ticket at a's binding: the name is authenticated data. */
    memcpy(b.name, a.name, sizeof(b.name));
    char id[256];
    long long expires_ms;
    assert_false(open_copy(resumption, &b, id, &expires_ms));
    assert_true(open_copy(resumption, &a, id, &expires_ms));
    assert_string_equal(id, id_a);
    mt_tls_resumption_free(resumption);
}

static void test_other_context_refuses(void **state)
{
    (void)state;
    struct mt_tls_resumption *old = make();
    struct mt_tls_resumption *rotated = make();
    struct ticket ticket;
    seal(old, id_a, mt_tls_resumption_now_ms() + 60000, &ticket);
    /* Occupy the same slot in the new context, so that only the key differs. */
    struct ticket other;
    seal(rotated, id_a, mt_tls_resumption_now_ms() + 60000, &other);
    char id[256];
    long long expires_ms;
    assert_false(open_copy(rotated, &ticket, id, &expires_ms));
    mt_tls_resumption_free(old);
    mt_tls_resumption_free(rotated);
}

/* A context's ticket key is made at its first ticket: one that never sealed opens nothing. */
static void test_context_without_tickets_refuses(void **state)
{
    (void)state;
    struct mt_tls_resumption *sealer = make();
    struct mt_tls_resumption *fresh = make();
    struct ticket ticket;
    seal(sealer, id_a, mt_tls_resumption_now_ms() + 60000, &ticket);
    char id[256];
    long long expires_ms;
    assert_false(open_copy(fresh, &ticket, id, &expires_ms));
    /* Its first ticket makes its key, and opens. */
    struct ticket own;
    seal(fresh, id_b, mt_tls_resumption_now_ms() + 60000, &own);
    assert_true(open_copy(fresh, &own, id, &expires_ms));
    assert_string_equal(id, id_b);
    assert_false(open_copy(fresh, &ticket, id, &expires_ms));
    mt_tls_resumption_free(sealer);
    mt_tls_resumption_free(fresh);
}

static void test_expired_refuses(void **state)
{
    (void)state;
    struct mt_tls_resumption *resumption = make();
    struct ticket ticket;
    seal(resumption, id_a, mt_tls_resumption_now_ms() - 1, &ticket);
    char id[256];
    long long expires_ms;
    assert_false(open_copy(resumption, &ticket, id, &expires_ms));
    mt_tls_resumption_free(resumption);
}

static void test_reused_slot_refuses(void **state)
{
    (void)state;
    struct mt_tls_resumption *resumption = make();
    struct ticket first;
    seal(resumption, id_a, mt_tls_resumption_now_ms() + 60000, &first);
    struct ticket later;
    char id[256];
    long long expires_ms;
    size_t issued = 1;
    /* Newer tickets until one takes the first one's slot. */
    do {
        seal(resumption, id_b, mt_tls_resumption_now_ms() + 60000, &later);
        issued++;
    } while (memcmp(later.name, first.name, 4) != 0 && issued < 100000);
    assert_true(issued > 1 && issued < 100000);
    assert_false(open_copy(resumption, &first, id, &expires_ms));
    assert_true(open_copy(resumption, &later, id, &expires_ms));
    assert_string_equal(id, id_b);
    mt_tls_resumption_free(resumption);
}

/*
 * wolfSSL passes the body length read from the ticket itself (unauthenticated) and places the tag
 * that far in: a ticket claiming a longer body than was sealed is refused before any read past
 * what was received (found in review with valgrind: a 16-byte over-read).
 */
static void test_other_length_refuses(void **state)
{
    (void)state;
    struct mt_tls_resumption *resumption = make();
    struct ticket ticket;
    seal(resumption, id_a, mt_tls_resumption_now_ms() + 60000, &ticket);
    char id[256];
    long long expires_ms;
    struct ticket copy = ticket;
    assert_false(mt_tls_ticket_open(resumption, copy.name, copy.iv, copy.mac, copy.body,
                                    BODY_SIZE - 16, id, sizeof(id), &expires_ms));
    copy = ticket;
    assert_false(mt_tls_ticket_open(resumption, copy.name, copy.iv, copy.mac, copy.body,
                                    BODY_SIZE + 1, id, sizeof(id), &expires_ms));
    assert_true(open_copy(resumption, &ticket, id, &expires_ms));
    mt_tls_resumption_free(resumption);
}

/* A resumed connection's new ticket takes its old ticket's slot: it evicts nobody else's. */
static void test_renewed_ticket_keeps_its_slot(void **state)
{
    (void)state;
    struct mt_tls_resumption *resumption = make();
    long long expires = mt_tls_resumption_now_ms() + 60000;
    struct ticket first;
    seal(resumption, id_a, expires, &first);
    struct ticket renewed;
    for (size_t i = 0; i < BODY_SIZE; i++)
        renewed.body[i] = (unsigned char)(i * 7 + 1);
    /* The expiry given is ignored: the slot keeps the full handshake's. */
    assert_true(mt_tls_ticket_seal(resumption, id_a, expires + 99999, first.name, renewed.name,
                                   renewed.iv, renewed.mac, renewed.body, BODY_SIZE));
    assert_memory_equal(renewed.name, first.name, sizeof(first.name));
    assert_memory_not_equal(renewed.iv, first.iv, 12);
    char id[256];
    long long expires_ms = 0;
    assert_true(open_copy(resumption, &renewed, id, &expires_ms));
    assert_int_equal(expires_ms, expires);
    assert_true(open_copy(resumption, &first, id, &expires_ms));
    /* The next new ticket takes the slot after the first one: nothing was used up. */
    struct ticket next;
    seal(resumption, id_b, expires, &next);
    assert_int_equal(next.name[3], (unsigned char)(first.name[3] + 1));
    mt_tls_resumption_free(resumption);
}

/*
 * A slot is renewed only for the identity it binds: a ticket sealed for id_b that names id_a's
 * ticket as the one it renews takes a new slot and binds id_b, and id_a's ticket still opens to
 * id_a (the ticket rebinding attack: a client offers another's ticket, fails to resume with it,
 * and must not be handed a ticket bound to that other client).
 */
static void test_renewal_for_another_identity_takes_a_new_slot(void **state)
{
    (void)state;
    struct mt_tls_resumption *resumption = make();
    long long expires = mt_tls_resumption_now_ms() + 60000;
    struct ticket victim;
    seal(resumption, id_a, expires, &victim);
    struct ticket stolen;
    for (size_t i = 0; i < BODY_SIZE; i++)
        stolen.body[i] = (unsigned char)(i * 7 + 1);
    assert_true(mt_tls_ticket_seal(resumption, id_b, expires, victim.name, stolen.name, stolen.iv,
                                   stolen.mac, stolen.body, BODY_SIZE));
    assert_memory_not_equal(stolen.name, victim.name, sizeof(victim.name));
    char id[256];
    long long expires_ms = 0;
    assert_true(open_copy(resumption, &stolen, id, &expires_ms));
    assert_string_equal(id, id_b);
    assert_true(open_copy(resumption, &victim, id, &expires_ms));
    assert_string_equal(id, id_a);
    mt_tls_resumption_free(resumption);
}

static void test_no_identity_no_ticket(void **state)
{
    (void)state;
    struct mt_tls_resumption *resumption = make();
    struct ticket ticket;
    long long expires = mt_tls_resumption_now_ms() + 60000;
    assert_false(mt_tls_ticket_seal(resumption, NULL, expires, NULL, ticket.name, ticket.iv,
                                    ticket.mac, ticket.body, BODY_SIZE));
    assert_false(mt_tls_ticket_seal(resumption, "", expires, NULL, ticket.name, ticket.iv,
                                    ticket.mac, ticket.body, BODY_SIZE));
    struct mt_tls_resumption *none = NULL;
    assert_false(mt_result_is_ok(mt_tls_resumption_new(0, &none)));
    mt_tls_resumption_free(resumption);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_any_flipped_bit_refuses),
        cmocka_unit_test(test_swapped_names_refuse),
        cmocka_unit_test(test_other_context_refuses),
        cmocka_unit_test(test_context_without_tickets_refuses),
        cmocka_unit_test(test_expired_refuses),
        cmocka_unit_test(test_reused_slot_refuses),
        cmocka_unit_test(test_other_length_refuses),
        cmocka_unit_test(test_renewed_ticket_keeps_its_slot),
        cmocka_unit_test(test_renewal_for_another_identity_takes_a_new_slot),
        cmocka_unit_test(test_no_identity_no_ticket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
