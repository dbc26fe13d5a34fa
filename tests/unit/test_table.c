/*
 * Tests for core/table.c: the fd → connection table over the fd map, and its connection pool.
 * References move as table.h says (the table holds one, acquire adds one, remove hands the
 * table's over), an fd's exec wish lives and dies with its slot, iteration visits what is ours in
 * the range asked, and connection objects are recycled whole, so a lookup racing with close()
 * never reads freed memory nor stale fields. The table is process-wide: each test leaves it empty.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/table.h"

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))

/* A connection object as mt_conn_open makes one: its only reference is the table's. */
static struct mt_conn *insert_new(int fd)
{
    struct mt_conn *conn = mt_table_conn_allocate();
    assert_non_null(conn);
    conn->fd = fd;
    assert_true(mt_table_insert(fd, conn));
    return conn;
}

/* Removes fd's connection and drops the table's reference. */
static void remove_and_release(int fd)
{
    struct mt_conn *conn = mt_table_remove(fd);
    assert_non_null(conn);
    mt_conn_release(conn);
}

static unsigned references(struct mt_conn *conn)
{
    return atomic_load(&conn->references);
}

static void test_mt_table_acquire_inserted_fd_adds_a_reference(void **state)
{
    (void)state;
    assert_true(mt_table_is_empty());
    struct mt_conn *conn = insert_new(7);
    assert_false(mt_table_is_empty());
    assert_int_equal(references(conn), 1);
    struct mt_conn *acquired = mt_table_acquire(7);
    assert_ptr_equal(acquired, conn);
    assert_int_equal(references(conn), 2);
    mt_conn_release(acquired);
    assert_int_equal(references(conn), 1);
    /* Only the fd it was published on is ours. */
    assert_null(mt_table_acquire(6));
    assert_null(mt_table_acquire(8));
    assert_null(mt_table_acquire(-1));
    remove_and_release(7);
}

static void test_mt_table_remove_hands_over_the_table_reference(void **state)
{
    (void)state;
    struct mt_conn *conn = insert_new(9);
    struct mt_conn *held = mt_table_acquire(9); /* a call in progress on another thread */
    struct mt_conn *removed = mt_table_remove(9);
    assert_ptr_equal(removed, conn);
    assert_null(mt_table_acquire(9));
    assert_null(mt_table_remove(9));
    assert_true(mt_table_is_empty());
    /* Both references are still out: the object is not recycled under the call in progress. */
    assert_int_equal(references(conn), 2);
    mt_conn_release(removed);
    assert_int_equal(references(conn), 1);
    assert_int_equal(conn->fd, 9);
    mt_conn_release(held);
}

static void test_mt_table_insert_over_a_stale_entry_drops_it(void **state)
{
    (void)state;
    /* fd 11 was closed behind the table's back and the kernel gave the number out again. */
    struct mt_conn *stale = insert_new(11);
    struct mt_conn *held = mt_table_acquire(11);
    struct mt_conn *fresh = insert_new(11);
    assert_int_equal(references(stale), 1); /* the table's reference was dropped */
    mt_conn_release(held);
    struct mt_conn *acquired = mt_table_acquire(11);
    assert_ptr_equal(acquired, fresh);
    mt_conn_release(acquired);
    /* Counted once: removing the one entry empties the table. */
    remove_and_release(11);
    assert_true(mt_table_is_empty());
}

static void test_mt_table_set_exec_wish_stays_with_the_fd(void **state)
{
    (void)state;
    assert_false(mt_table_set_exec_wish(13, true)); /* not ours */
    assert_false(mt_table_exec_wish(13));
    struct mt_conn *conn = insert_new(13);
    assert_true(mt_table_set_exec_wish(13, true));
    assert_true(mt_table_exec_wish(13));
    assert_false(mt_table_exec_wish(14));
    /* The wish is a tag on the slot: lookups still get the connection itself. */
    struct mt_conn *acquired = mt_table_acquire(13);
    assert_ptr_equal(acquired, conn);
    mt_conn_release(acquired);
    assert_true(mt_table_set_exec_wish(13, false));
    assert_false(mt_table_exec_wish(13));
    assert_true(mt_table_set_exec_wish(13, true));
    /* Gone with the fd: the next connection on that number starts without it. */
    struct mt_conn *removed = mt_table_remove(13);
    assert_ptr_equal(removed, conn);
    mt_conn_release(removed);
    insert_new(13);
    assert_false(mt_table_exec_wish(13));
    remove_and_release(13);
}

struct visits {
    int fds[8];
    size_t count;
};

static void note_fd(int fd, void *argument)
{
    struct visits *visits = argument;
    if (visits->count < COUNT_OF(visits->fds))
        visits->fds[visits->count] = fd;
    visits->count++;
}

static void test_mt_table_for_each_in_range_visits_only_fds_in_it(void **state)
{
    (void)state;
    const int ours[] = {3, 5, 1023, 1024, 5000};
    for (size_t i = 0; i < COUNT_OF(ours); i++)
        insert_new(ours[i]);

    struct visits visits = {.count = 0};
    mt_table_for_each_in_range(4, 1024, note_fd, &visits);
    assert_int_equal(visits.count, 3);
    assert_int_equal(visits.fds[0], 5);
    assert_int_equal(visits.fds[1], 1023);
    assert_int_equal(visits.fds[2], 1024);

    visits = (struct visits){.count = 0};
    mt_table_for_each_in_range(1025, UINT_MAX, note_fd, &visits); /* closefrom(1025) */
    assert_int_equal(visits.count, 1);
    assert_int_equal(visits.fds[0], 5000);

    visits = (struct visits){.count = 0};
    mt_table_for_each_in_range(6, 1022, note_fd, &visits);
    assert_int_equal(visits.count, 0);

    for (size_t i = 0; i < COUNT_OF(ours); i++)
        remove_and_release(ours[i]);
}

static void close_visited(int fd, void *argument)
{
    note_fd(fd, argument);
    remove_and_release(fd);
}

static void test_mt_table_for_each_in_range_closing_visitor_empties_the_table(void **state)
{
    (void)state;
    /* close_range(0, ~0U) as the hook runs it: each visit removes its fd. */
    const int ours[] = {4, 900, 2048, 100000};
    for (size_t i = 0; i < COUNT_OF(ours); i++)
        insert_new(ours[i]);
    struct visits visits = {.count = 0};
    mt_table_for_each_in_range(0, UINT_MAX, close_visited, &visits);
    assert_int_equal(visits.count, COUNT_OF(ours));
    for (size_t i = 0; i < COUNT_OF(ours); i++)
        assert_int_equal(visits.fds[i], ours[i]);
    assert_true(mt_table_is_empty());
}

struct pairs {
    int fds[4];
    struct mt_conn *conns[4];
    size_t count;
};

static void note_pair(int fd, struct mt_conn *conn, void *argument)
{
    struct pairs *pairs = argument;
    if (pairs->count < COUNT_OF(pairs->fds)) {
        pairs->fds[pairs->count] = fd;
        pairs->conns[pairs->count] = conn;
    }
    pairs->count++;
}

static void test_mt_table_for_each_fd_visits_every_name_of_a_connection(void **state)
{
    (void)state;
    /* fd 20 and its dup 2000 name one connection (mt_conn_add_alias publishes it so). */
    struct mt_conn *conn = insert_new(20);
    atomic_fetch_add(&conn->references, 1);
    assert_true(mt_table_insert(2000, conn));
    struct mt_conn *other = insert_new(21);

    struct pairs pairs = {.count = 0};
    mt_table_for_each_fd(note_pair, &pairs);
    assert_int_equal(pairs.count, 3);
    assert_int_equal(pairs.fds[0], 20);
    assert_ptr_equal(pairs.conns[0], conn);
    assert_int_equal(pairs.fds[1], 21);
    assert_ptr_equal(pairs.conns[1], other);
    assert_int_equal(pairs.fds[2], 2000);
    assert_ptr_equal(pairs.conns[2], conn);

    remove_and_release(20);
    remove_and_release(21);
    remove_and_release(2000);
    assert_true(mt_table_is_empty());
}

static void test_mt_table_conn_allocate_recycled_object_starts_afresh(void **state)
{
    (void)state;
    struct mt_conn *conn = mt_table_conn_allocate();
    assert_non_null(conn);
    conn->fd = 30;
    conn->state = MT_CONN_FAILED;
    conn->failed_errno = 111;
    conn->shared = true;
    conn->failure_reason = strdup("peer did not speak TLS"); /* the release frees it */
    mt_conn_release(conn); /* the last reference: back to the pool */

    /* The pool hands the same object out again (type-stable: a late lookup reads a count, never
     * freed memory), with nothing left of its last life. */
    struct mt_conn *again = mt_table_conn_allocate();
    assert_ptr_equal(again, conn);
    assert_int_equal(references(again), 1);
    assert_int_equal(again->fd, -1);
    assert_int_equal(again->state, MT_CONN_CONNECTING);
    assert_int_equal(again->failed_errno, 0);
    assert_false(again->shared);
    assert_null(again->failure_reason);
    mt_conn_release(again);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt_table_acquire_inserted_fd_adds_a_reference),
        cmocka_unit_test(test_mt_table_remove_hands_over_the_table_reference),
        cmocka_unit_test(test_mt_table_insert_over_a_stale_entry_drops_it),
        cmocka_unit_test(test_mt_table_set_exec_wish_stays_with_the_fd),
        cmocka_unit_test(test_mt_table_for_each_in_range_visits_only_fds_in_it),
        cmocka_unit_test(test_mt_table_for_each_in_range_closing_visitor_empties_the_table),
        cmocka_unit_test(test_mt_table_for_each_fd_visits_every_name_of_a_connection),
        cmocka_unit_test(test_mt_table_conn_allocate_recycled_object_starts_afresh),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
