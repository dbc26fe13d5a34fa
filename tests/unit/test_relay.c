/*
 * Tests for core/relay.c: the slots of shared memory that carry a forked connection's record
 * state from the process that stops using it to the next one. The protocol is checked across
 * real processes: where two are needed the test forks, and the child reports by its exit status
 * (each check it makes has its own code, named in the parent's failure), never through cmocka.
 *
 * The connections are objects from the table's pool, published in the table on one end of a
 * socketpair each, with a real TLS session (not handshaken) and marked established: what the
 * relay reads of a connection (mt_relay_before_fork links established ones with a session). The
 * states given back are test patterns written into the slot's room, as mt_conn_give_back writes
 * an export there; the relay only carries bytes. The fork hooks (core/process.c) are not
 * installed: the test calls mt_relay_before_fork itself where a fork would, with the pid of the
 * forking process. Whether a region is mapped is read from /proc/self/maps (its memfd's name).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_ca.h"

#include "core/conn.h"
#include "core/relay.h"
#include "core/table.h"

#define SERVER_ID "spiffe://example.org/ns/server"
#define CONN_COUNT 3
#define CHILD_SECONDS 20 /* a child's longest life */

static struct mt_tls_context *context;

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    struct test_ca ca;
    time_t now = time(NULL);
    assert_true(test_ca_make(&ca, "example.org", now - 60, now + 3600));
    struct mt_credentials *credentials = test_ca_issue(&ca, SERVER_ID, now - 60, now + 3600);
    assert_true(
        mt_result_is_ok(mt_tls_context_new(credentials, 0, MT_POST_QUANTUM_PREFER, &context)));
    mt_credentials_release(credentials);
    test_ca_free(&ca);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    mt_tls_context_release(context);
    return 0;
}

/* ---- connections in the table ------------------------------------------------------------- */

struct fixture {
    struct mt_conn *conns[CONN_COUNT];
    int fds[CONN_COUNT];   /* the connection's end of its socketpair */
    int peers[CONN_COUNT]; /* the other end */
};

/* A connection on a fresh socketpair, published in the table: established with a session. */
static struct mt_conn *add_conn(struct fixture *fixture, unsigned i, enum mt_conn_state state,
                                bool with_session)
{
    int ends[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, ends), 0);
    struct mt_conn *conn = mt_table_conn_allocate();
    assert_non_null(conn);
    conn->fd = ends[0];
    conn->role = MT_TLS_SERVER;
    conn->context = mt_tls_context_acquire(context);
    if (with_session)
        assert_true(
            mt_result_is_ok(mt_tls_session_new(context, MT_TLS_SERVER, ends[0], &conn->tls)));
    conn->state = state;
    assert_true(mt_table_insert(ends[0], conn));
    fixture->conns[i] = conn;
    fixture->fds[i] = ends[0];
    fixture->peers[i] = ends[1];
    return conn;
}

static int fixture_setup(void **state)
{
    struct fixture *fixture = calloc(1, sizeof(*fixture));
    assert_non_null(fixture);
    for (unsigned i = 0; i < CONN_COUNT; i++)
        fixture->fds[i] = fixture->peers[i] = -1;
    assert_true(mt_table_is_empty());
    *state = fixture;
    return 0;
}

/* Regions of the relay mapped in this process. */
static unsigned mapped_regions(void)
{
    FILE *maps = fopen("/proc/self/maps", "re");
    assert_non_null(maps);
    unsigned count = 0;
    char line[1024];
    while (fgets(line, sizeof(line), maps) != NULL)
        if (strstr(line, "memfd:meshtls-relay") != NULL)
            count++;
    fclose(maps);
    return count;
}

static void kill_children(void);

static int fixture_teardown(void **state)
{
    struct fixture *fixture = *state;
    kill_children();
    for (unsigned i = 0; i < CONN_COUNT; i++) {
        if (fixture->conns[i] == NULL)
            continue;
        struct mt_conn *removed = mt_table_remove(fixture->fds[i]);
        assert_ptr_equal(removed, fixture->conns[i]);
        mt_conn_release(removed);
        close(fixture->fds[i]);
        close(fixture->peers[i]);
    }
    assert_true(mt_table_is_empty());
    /* The last connection linked to a region took it along. */
    assert_int_equal(mapped_regions(), 0);
    free(fixture);
    return 0;
}

/* ---- processes ---------------------------------------------------------------------------- */

/* A one-way signal between two processes: a byte through a pipe. */
struct gate {
    int fds[2];
};

static void gate_open(struct gate *gate)
{
    assert_int_equal(pipe(gate->fds), 0);
}

static void gate_pass(struct gate *gate)
{
    if (write(gate->fds[1], "x", 1) != 1)
        abort();
}

/* Waits for the other process to pass (or to end: then false). */
static bool gate_wait(struct gate *gate)
{
    char byte;
    ssize_t n;
    do
        n = read(gate->fds[0], &byte, 1);
    while (n == -1 && errno == EINTR);
    return n == 1;
}

static void gate_close(struct gate *gate)
{
    close(gate->fds[0]);
    close(gate->fds[1]);
}

/* In a child: a check that fails ends it with its own code (cmocka belongs to the parent). */
#define CHILD_CHECK(condition, code)                                                               \
    do {                                                                                           \
        if (!(condition))                                                                          \
            _exit(code);                                                                           \
    } while (0)

/* Children not reaped yet: a test that fails leaves them to fixture_teardown. */
static pid_t children[4];

static pid_t fork_child(void)
{
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        alarm(CHILD_SECONDS); /* never outlives a parent that stopped answering */
        return 0;
    }
    for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++) {
        if (children[i] == 0) {
            children[i] = child;
            return child;
        }
    }
    fail_msg("more children than the test keeps track of");
    return -1;
}

static void forget_child(pid_t child)
{
    for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++)
        if (children[i] == child)
            children[i] = 0;
}

/* Ends and reaps the children a failed test left behind. */
static void kill_children(void)
{
    for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++) {
        if (children[i] == 0)
            continue;
        (void)kill(children[i], SIGKILL);
        (void)waitpid(children[i], NULL, 0);
        children[i] = 0;
    }
}

/* Reaps child and asserts it passed all its checks. */
static void assert_child_passed(pid_t child)
{
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    forget_child(child);
    if (!WIFEXITED(status))
        fail_msg("child %d did not exit (status %#x)", (int)child, status);
    if (WEXITSTATUS(status) != 0)
        fail_msg("child %d failed its check %d", (int)child, WEXITSTATUS(status));
}

/* Waits until child has exited, leaving it a zombie (not reaped). */
static void wait_zombie(pid_t child)
{
    siginfo_t info = {0};
    assert_int_equal(waitid(P_PID, (id_t)child, &info, WEXITED | WNOWAIT), 0);
    assert_int_equal(info.si_pid, child);
}

/* ---- what a process does with a slot ------------------------------------------------------ */

struct claim {
    enum mt_relay_claim result;
    pid_t other;
    const unsigned char *state;
    size_t length;
};

static struct claim claim(struct mt_conn *conn)
{
    struct claim claim = {.other = 0, .state = NULL, .length = 0};
    claim.result =
        mt_relay_claim(&conn->relay, getpid(), &claim.other, &claim.state, &claim.length);
    return claim;
}

static void fill_pattern(unsigned char *buffer, size_t length, unsigned seed)
{
    for (size_t i = 0; i < length; i++)
        buffer[i] = (unsigned char)(seed * 131u + i * 7u + (i >> 8));
}

static bool has_pattern(const unsigned char *buffer, size_t length, unsigned seed)
{
    for (size_t i = 0; i < length; i++)
        if (buffer[i] != (unsigned char)(seed * 131u + i * 7u + (i >> 8)))
            return false;
    return true;
}

/* The owner's export: length bytes of seed's pattern in the room, given back. */
static void give_back_pattern(struct mt_conn *conn, size_t length, unsigned seed)
{
    size_t capacity = 0;
    unsigned char *room = mt_relay_room(&conn->relay, &capacity);
    if (length > capacity)
        abort();
    fill_pattern(room, length, seed);
    mt_relay_give_back(&conn->relay, getpid(), length);
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_mt_relay_before_fork_links_established_sessions_only(void **state)
{
    struct fixture *fixture = *state;
    struct mt_conn *established = add_conn(fixture, 0, MT_CONN_ESTABLISHED, true);
    struct mt_conn *handshaking = add_conn(fixture, 1, MT_CONN_HANDSHAKING, true);
    struct mt_conn *plain = add_conn(fixture, 2, MT_CONN_ESTABLISHED, false);
    /* The same connection on a second fd (dup): visited twice, linked once. */
    assert_ptr_equal(mt_table_acquire(fixture->fds[0]), established);
    int duplicate = dup(fixture->fds[0]);
    assert_true(duplicate >= 0);
    assert_true(mt_table_insert(duplicate, established));

    mt_relay_before_fork(getpid());

    assert_int_equal(mapped_regions(), 1);
    assert_non_null(established->relay.region);
    assert_int_equal(established->relay.index, 0);
    assert_int_equal(established->relay.generation, 0);
    assert_null(handshaking->relay.region);
    assert_null(plain->relay.region);
    /* Linked already: a later fork leaves it in its region and makes none. */
    struct mt_relay_region *region = established->relay.region;
    mt_relay_before_fork(getpid());
    assert_ptr_equal(established->relay.region, region);
    assert_int_equal(mapped_regions(), 1);

    mt_conn_release(mt_table_remove(duplicate));
    close(duplicate);
}

static void test_mt_relay_before_fork_nothing_relayable_maps_nothing(void **state)
{
    struct fixture *fixture = *state;
    mt_relay_before_fork(getpid()); /* an empty table */
    add_conn(fixture, 0, MT_CONN_HANDSHAKING, true);
    add_conn(fixture, 1, MT_CONN_ESTABLISHED, false);
    mt_relay_before_fork(getpid());
    assert_int_equal(mapped_regions(), 0);
    assert_null(fixture->conns[0]->relay.region);
    assert_null(fixture->conns[1]->relay.region);
}

static void test_mt_relay_claim_fresh_slot_current_then_busy_for_a_live_other(void **state)
{
    struct fixture *fixture = *state;
    struct mt_conn *conn = add_conn(fixture, 0, MT_CONN_ESTABLISHED, true);
    mt_relay_before_fork(getpid());
    pid_t parent = getpid();

    struct claim first = claim(conn);
    assert_int_equal(first.result, MT_RELAY_CURRENT);
    assert_null(first.state); /* nothing to import */
    assert_true(mt_relay_is_owner(&conn->relay, parent));

    pid_t child = fork_child();
    if (child == 0) {
        CHILD_CHECK(!mt_relay_is_owner(&conn->relay, getpid()), 1);
        struct claim second = claim(conn);
        CHILD_CHECK(second.result == MT_RELAY_BUSY, 2);
        CHILD_CHECK(second.other == parent, 3);
        CHILD_CHECK(second.state == NULL, 4);
        /* Asking again changes nothing: the owner keeps it. */
        CHILD_CHECK(claim(conn).result == MT_RELAY_BUSY, 5);
        CHILD_CHECK(mt_relay_is_owner(&conn->relay, parent), 6);
        _exit(0);
    }
    assert_child_passed(child);
    assert_true(mt_relay_is_owner(&conn->relay, parent));
    assert_int_equal(claim(conn).result, MT_RELAY_CURRENT); /* the owner again */
}

static void test_mt_relay_give_back_export_next_user_imports_exact_bytes_in_turn(void **state)
{
    struct fixture *fixture = *state;
    struct mt_conn *conn = add_conn(fixture, 0, MT_CONN_ESTABLISHED, true);
    mt_relay_before_fork(getpid());
    pid_t parent = getpid();
    const size_t child_length = 777;
    const size_t parent_length = MT_CONN_EXPORT_MAX; /* a full room */
    struct gate to_parent;
    struct gate to_child;
    gate_open(&to_parent);
    gate_open(&to_child);

    pid_t child = fork_child();
    if (child == 0) {
        /* The child uses the connection first, and gives its state back. */
        CHILD_CHECK(claim(conn).result == MT_RELAY_CURRENT, 1);
        size_t capacity = 0;
        (void)mt_relay_room(&conn->relay, &capacity);
        CHILD_CHECK(capacity == MT_CONN_EXPORT_MAX, 2);
        give_back_pattern(conn, child_length, 1);
        CHILD_CHECK(!mt_relay_is_owner(&conn->relay, getpid()), 3);
        gate_pass(&to_parent);
        /* Its own copy is now older than the parent's: it must take the parent's. */
        CHILD_CHECK(gate_wait(&to_child), 4);
        struct claim again = claim(conn);
        CHILD_CHECK(again.result == MT_RELAY_NEWER, 5);
        CHILD_CHECK(again.length == parent_length, 6);
        CHILD_CHECK(has_pattern(again.state, again.length, 2), 7);
        mt_relay_imported(&conn->relay);
        give_back_pattern(conn, 3, 3);
        _exit(0);
    }
    assert_true(gate_wait(&to_parent));
    struct claim newer = claim(conn);
    assert_int_equal(newer.result, MT_RELAY_NEWER);
    assert_int_equal(newer.length, child_length);
    assert_non_null(newer.state);
    assert_true(has_pattern(newer.state, newer.length, 1));
    assert_true(mt_relay_is_owner(&conn->relay, parent));
    mt_relay_imported(&conn->relay);
    assert_int_equal(conn->relay.generation, 1);
    /* Claimed and imported: the owner's claim is current from now on. */
    assert_int_equal(claim(conn).result, MT_RELAY_CURRENT);
    give_back_pattern(conn, parent_length, 2);
    gate_pass(&to_child);
    assert_child_passed(child);

    /* The child's last state (generation 3) comes back here, exactly. */
    struct claim last = claim(conn);
    assert_int_equal(last.result, MT_RELAY_NEWER);
    assert_int_equal(last.length, 3);
    assert_true(has_pattern(last.state, last.length, 3));
    mt_relay_imported(&conn->relay);
    assert_int_equal(conn->relay.generation, 3);
    gate_close(&to_parent);
    gate_close(&to_child);
}

static void test_mt_relay_give_back_zero_length_next_user_lost_naming_giver(void **state)
{
    struct fixture *fixture = *state;
    struct mt_conn *conn = add_conn(fixture, 0, MT_CONN_ESTABLISHED, true);
    mt_relay_before_fork(getpid());
    struct gate to_parent;
    struct gate to_child;
    gate_open(&to_parent);
    gate_open(&to_child);

    pid_t child = fork_child();
    if (child == 0) {
        CHILD_CHECK(claim(conn).result == MT_RELAY_CURRENT, 1);
        mt_relay_give_back(&conn->relay, getpid(), 0); /* its export failed */
        CHILD_CHECK(!mt_relay_is_owner(&conn->relay, getpid()), 2);
        gate_pass(&to_parent);
        CHILD_CHECK(gate_wait(&to_child), 3); /* stays alive meanwhile */
        _exit(0);
    }
    assert_true(gate_wait(&to_parent));
    /* Lost even while the process that lost it lives on, and for good: nothing stale to use. */
    for (int attempt = 0; attempt < 2; attempt++) {
        struct claim lost = claim(conn);
        assert_int_equal(lost.result, MT_RELAY_LOST);
        assert_int_equal(lost.other, child);
        assert_false(mt_relay_is_owner(&conn->relay, getpid()));
    }
    gate_pass(&to_child);
    assert_child_passed(child);
    assert_int_equal(claim(conn).result, MT_RELAY_LOST);
    gate_close(&to_parent);
    gate_close(&to_child);
}

/* The child claims the connection and ends without giving it back. */
static pid_t child_claims_and_exits(struct mt_conn *conn)
{
    pid_t child = fork_child();
    if (child == 0) {
        CHILD_CHECK(claim(conn).result == MT_RELAY_CURRENT, 1);
        _exit(0);
    }
    return child;
}

static void test_mt_relay_claim_owner_ended_without_give_back_lost(void **state)
{
    struct fixture *fixture = *state;
    struct mt_conn *conn = add_conn(fixture, 0, MT_CONN_ESTABLISHED, true);
    mt_relay_before_fork(getpid());
    pid_t child = child_claims_and_exits(conn);
    assert_child_passed(child); /* reaped: the pid is gone */
    struct claim lost = claim(conn);
    assert_int_equal(lost.result, MT_RELAY_LOST);
    assert_int_equal(lost.other, child);
    assert_false(mt_relay_is_owner(&conn->relay, getpid()));
}

static void test_mt_relay_claim_zombie_owner_counts_as_ended(void **state)
{
    struct fixture *fixture = *state;
    struct mt_conn *conn = add_conn(fixture, 0, MT_CONN_ESTABLISHED, true);
    mt_relay_before_fork(getpid());
    pid_t child = child_claims_and_exits(conn);
    wait_zombie(child);
    assert_int_equal(kill(child, 0), 0); /* the pid still exists */
    struct claim lost = claim(conn);
    assert_int_equal(lost.result, MT_RELAY_LOST);
    assert_int_equal(lost.other, child);
    assert_child_passed(child);
}

static void test_mt_relay_before_fork_frees_owned_slot_child_claims_without_import(void **state)
{
    struct fixture *fixture = *state;
    struct mt_conn *conn = add_conn(fixture, 0, MT_CONN_ESTABLISHED, true);
    mt_relay_before_fork(getpid());
    assert_int_equal(claim(conn).result, MT_RELAY_CURRENT); /* the parent uses it */

    /* It forks: the hook frees its slot, and both hold the same, current state. */
    mt_relay_before_fork(getpid());
    assert_false(mt_relay_is_owner(&conn->relay, getpid()));
    assert_int_equal(conn->relay.generation, 1);
    pid_t child = fork_child();
    if (child == 0) {
        struct claim first = claim(conn);
        CHILD_CHECK(first.result == MT_RELAY_CURRENT, 1);
        CHILD_CHECK(first.state == NULL, 2);
        give_back_pattern(conn, 100, 4);
        _exit(0);
    }
    assert_child_passed(child);
    /* The parent takes what the child gave back. */
    struct claim newer = claim(conn);
    assert_int_equal(newer.result, MT_RELAY_NEWER);
    assert_int_equal(newer.length, 100);
    assert_true(has_pattern(newer.state, newer.length, 4));
}

static void test_mt_relay_before_fork_frees_owned_slot_parent_claims_without_import(void **state)
{
    struct fixture *fixture = *state;
    struct mt_conn *conn = add_conn(fixture, 0, MT_CONN_ESTABLISHED, true);
    mt_relay_before_fork(getpid());
    assert_int_equal(claim(conn).result, MT_RELAY_CURRENT);
    mt_relay_before_fork(getpid());
    pid_t child = fork_child();
    if (child == 0)
        _exit(0); /* never uses the connection (a BGSAVE child) */
    assert_child_passed(child);
    struct claim again = claim(conn);
    assert_int_equal(again.result, MT_RELAY_CURRENT);
    assert_null(again.state);
}

static void test_mt_relay_claim_copy_older_than_a_later_fork_busy_then_lost(void **state)
{
    struct fixture *fixture = *state;
    struct mt_conn *conn = add_conn(fixture, 0, MT_CONN_ESTABLISHED, true);
    mt_relay_before_fork(getpid());
    struct gate to_parent;
    struct gate to_child;
    gate_open(&to_parent);
    gate_open(&to_child);

    /* The child uses the connection, then forks itself: its copy moves on a generation. */
    pid_t child = fork_child();
    if (child == 0) {
        CHILD_CHECK(claim(conn).result == MT_RELAY_CURRENT, 1);
        mt_relay_before_fork(getpid());
        gate_pass(&to_parent);
        CHILD_CHECK(gate_wait(&to_child), 2);
        /* The parent's attempt left the slot free for the holders of the current state. */
        struct claim mine = claim(conn);
        CHILD_CHECK(mine.result == MT_RELAY_CURRENT, 3);
        CHILD_CHECK(mine.state == NULL, 4);
        /* It forks again, and ends: the generation of that fork goes with it. */
        mt_relay_before_fork(getpid());
        gate_pass(&to_parent);
        CHILD_CHECK(gate_wait(&to_child), 5);
        _exit(0);
    }
    assert_true(gate_wait(&to_parent));
    /* The parent's copy (generation 0) is older than the fork's, whose forker is alive. */
    struct claim busy = claim(conn);
    assert_int_equal(busy.result, MT_RELAY_BUSY);
    assert_int_equal(busy.other, child);
    assert_false(mt_relay_is_owner(&conn->relay, getpid()));
    gate_pass(&to_child);
    assert_true(gate_wait(&to_parent));
    gate_pass(&to_child);
    assert_child_passed(child);
    /* Its forker ended: the state of that generation went with the processes that held it. */
    struct claim lost = claim(conn);
    assert_int_equal(lost.result, MT_RELAY_LOST);
    assert_int_equal(lost.other, child);
    assert_false(mt_relay_is_owner(&conn->relay, getpid()));
    gate_close(&to_parent);
    gate_close(&to_child);
}

static void test_mt_relay_slots_of_one_region_are_independent(void **state)
{
    struct fixture *fixture = *state;
    struct mt_conn *first = add_conn(fixture, 0, MT_CONN_ESTABLISHED, true);
    struct mt_conn *second = add_conn(fixture, 1, MT_CONN_ESTABLISHED, true);
    mt_relay_before_fork(getpid());
    assert_ptr_equal(first->relay.region, second->relay.region);
    assert_int_not_equal(first->relay.index, second->relay.index);
    size_t capacity = 0;
    unsigned char *first_room = mt_relay_room(&first->relay, &capacity);
    unsigned char *second_room = mt_relay_room(&second->relay, &capacity);
    size_t apart = first_room < second_room ? (size_t)(second_room - first_room)
                                            : (size_t)(first_room - second_room);
    assert_true(apart >= capacity);

    pid_t child = fork_child();
    if (child == 0) {
        CHILD_CHECK(claim(first).result == MT_RELAY_CURRENT, 1);
        give_back_pattern(first, 50, 6);
        CHILD_CHECK(claim(second).result == MT_RELAY_CURRENT, 2);
        give_back_pattern(second, 60, 7);
        _exit(0);
    }
    assert_child_passed(child);
    struct claim one = claim(first);
    assert_int_equal(one.result, MT_RELAY_NEWER);
    assert_int_equal(one.length, 50);
    assert_true(has_pattern(one.state, one.length, 6));
    struct claim two = claim(second);
    assert_int_equal(two.result, MT_RELAY_NEWER);
    assert_int_equal(two.length, 60);
    assert_true(has_pattern(two.state, two.length, 7));
}

static void test_mt_relay_unlink_unmaps_with_the_last_linked_connection(void **state)
{
    struct fixture *fixture = *state;
    struct mt_conn *first = add_conn(fixture, 0, MT_CONN_ESTABLISHED, true);
    struct mt_conn *second = add_conn(fixture, 1, MT_CONN_ESTABLISHED, true);
    mt_relay_before_fork(getpid());
    /* A third, established after that fork, gets a region of its own at the next. */
    struct mt_conn *third = add_conn(fixture, 2, MT_CONN_ESTABLISHED, true);
    mt_relay_before_fork(getpid());
    assert_int_equal(mapped_regions(), 2);
    assert_ptr_not_equal(third->relay.region, first->relay.region);

    mt_relay_unlink(&first->relay);
    assert_null(first->relay.region);
    assert_int_equal(mapped_regions(), 2); /* the second still uses it */
    /* ... and its slot still works. */
    assert_int_equal(claim(second).result, MT_RELAY_CURRENT);
    give_back_pattern(second, 10, 8);
    mt_relay_unlink(&first->relay); /* not linked any more: nothing */
    assert_int_equal(mapped_regions(), 2);

    mt_relay_unlink(&second->relay);
    assert_int_equal(mapped_regions(), 1);
    assert_null(second->relay.region);
    /* The connection's own release unlinks the last one (fixture_teardown checks it). */
}

static void test_mt_relay_unlink_in_a_child_leaves_the_parent_its_region(void **state)
{
    struct fixture *fixture = *state;
    struct mt_conn *conn = add_conn(fixture, 0, MT_CONN_ESTABLISHED, true);
    mt_relay_before_fork(getpid());
    pid_t child = fork_child();
    if (child == 0) {
        CHILD_CHECK(claim(conn).result == MT_RELAY_CURRENT, 1);
        give_back_pattern(conn, 20, 9);
        mt_relay_unlink(&conn->relay); /* it closed the connection */
        CHILD_CHECK(mapped_regions() == 0, 2);
        _exit(0);
    }
    assert_child_passed(child);
    assert_int_equal(mapped_regions(), 1);
    struct claim newer = claim(conn);
    assert_int_equal(newer.result, MT_RELAY_NEWER);
    assert_true(has_pattern(newer.state, newer.length, 9));
}

#define FIXTURE_TEST(name) cmocka_unit_test_setup_teardown(name, fixture_setup, fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        FIXTURE_TEST(test_mt_relay_before_fork_links_established_sessions_only),
        FIXTURE_TEST(test_mt_relay_before_fork_nothing_relayable_maps_nothing),
        FIXTURE_TEST(test_mt_relay_claim_fresh_slot_current_then_busy_for_a_live_other),
        FIXTURE_TEST(test_mt_relay_give_back_export_next_user_imports_exact_bytes_in_turn),
        FIXTURE_TEST(test_mt_relay_give_back_zero_length_next_user_lost_naming_giver),
        FIXTURE_TEST(test_mt_relay_claim_owner_ended_without_give_back_lost),
        FIXTURE_TEST(test_mt_relay_claim_zombie_owner_counts_as_ended),
        FIXTURE_TEST(test_mt_relay_before_fork_frees_owned_slot_child_claims_without_import),
        FIXTURE_TEST(test_mt_relay_before_fork_frees_owned_slot_parent_claims_without_import),
        FIXTURE_TEST(test_mt_relay_claim_copy_older_than_a_later_fork_busy_then_lost),
        FIXTURE_TEST(test_mt_relay_slots_of_one_region_are_independent),
        FIXTURE_TEST(test_mt_relay_unlink_unmaps_with_the_last_linked_connection),
        FIXTURE_TEST(test_mt_relay_unlink_in_a_child_leaves_the_parent_its_region),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
