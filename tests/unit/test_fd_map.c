/*
 * Tests for core/fd_map.c: the fd-indexed two-level map under the connection table and epoll.
 * Chunks appear only where something was stored, slots keep their address, indices outside the
 * map are refused, iteration finds exactly the values in its range (across chunk boundaries and
 * missing chunks), threads creating one chunk at once agree on it, and a fork child has the map
 * as the parent left it.
 */
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/fd_map.h"

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))

/* A distinct non-NULL value per index, never dereferenced by the map. */
static void *value_for(unsigned index)
{
    return (void *)(((uintptr_t)index + 1) << 4);
}

static void store(struct mt_fd_map *map, int index)
{
    mt_fd_map_slot *slot = mt_fd_map_slot_create(map, index);
    assert_non_null(slot);
    atomic_store(slot, value_for((unsigned)index));
}

static void test_mt_fd_map_get_empty_map_returns_null(void **state)
{
    (void)state;
    static struct mt_fd_map map; /* zeroed: how the table and epoll declare theirs */
    assert_null(mt_fd_map_get(&map, 0));
    assert_null(mt_fd_map_get(&map, (int)MT_FD_MAP_LIMIT - 1));
    assert_null(mt_fd_map_slot_of(&map, 0));
    assert_int_equal(mt_fd_map_next(&map, 0, UINT_MAX), -1);
}

static void test_mt_fd_map_slot_create_allocates_only_the_chunk_asked_for(void **state)
{
    (void)state;
    static struct mt_fd_map map;
    int first = (int)MT_FD_MAP_CHUNK_SIZE + 7;
    mt_fd_map_slot *slot = mt_fd_map_slot_create(&map, first);
    assert_non_null(slot);
    /* Its chunk exists now, for every index of it; the chunks around it do not. */
    assert_non_null(mt_fd_map_slot_of(&map, (int)MT_FD_MAP_CHUNK_SIZE));
    assert_non_null(mt_fd_map_slot_of(&map, 2 * (int)MT_FD_MAP_CHUNK_SIZE - 1));
    assert_null(mt_fd_map_slot_of(&map, (int)MT_FD_MAP_CHUNK_SIZE - 1));
    assert_null(mt_fd_map_slot_of(&map, 2 * (int)MT_FD_MAP_CHUNK_SIZE));
    /* A slot keeps its address: readers may hold it while others store. */
    assert_ptr_equal(mt_fd_map_slot_create(&map, first), slot);
    assert_ptr_equal(mt_fd_map_slot_of(&map, first), slot);
    assert_null(mt_fd_map_get(&map, first));
    atomic_store(slot, value_for((unsigned)first));
    assert_ptr_equal(mt_fd_map_get(&map, first), value_for((unsigned)first));
    assert_null(mt_fd_map_get(&map, first + 1));
}

static void test_mt_fd_map_slot_of_out_of_range_returns_null(void **state)
{
    (void)state;
    static struct mt_fd_map map;
    const int outside[] = {-1, INT_MIN, (int)MT_FD_MAP_LIMIT, INT_MAX};
    for (size_t i = 0; i < COUNT_OF(outside); i++) {
        assert_null(mt_fd_map_slot_create(&map, outside[i]));
        assert_null(mt_fd_map_get(&map, outside[i]));
    }
    /* The last index inside is a slot like any other (so the bound is not one too low). */
    store(&map, (int)MT_FD_MAP_LIMIT - 1);
    assert_ptr_equal(mt_fd_map_get(&map, (int)MT_FD_MAP_LIMIT - 1), value_for(MT_FD_MAP_LIMIT - 1));
}

static void test_mt_fd_map_next_removed_value_is_skipped(void **state)
{
    (void)state;
    static struct mt_fd_map map;
    store(&map, 10);
    store(&map, 20);
    assert_int_equal(mt_fd_map_next(&map, 0, UINT_MAX), 10);
    atomic_store(mt_fd_map_slot_of(&map, 10), NULL);
    assert_null(mt_fd_map_get(&map, 10));
    assert_int_equal(mt_fd_map_next(&map, 0, UINT_MAX), 20);
    /* The chunk stays (a reader may hold one of its slots): stored again, found again. */
    assert_non_null(mt_fd_map_slot_of(&map, 10));
    store(&map, 10);
    assert_int_equal(mt_fd_map_next(&map, 0, UINT_MAX), 10);
}

static void test_mt_fd_map_next_in_range_finds_exactly_the_values_in_it(void **state)
{
    (void)state;
    static struct mt_fd_map map;
    /* Both edges of a chunk, a chunk far away, and the last index of the map. */
    const int stored[] = {3, (int)MT_FD_MAP_CHUNK_SIZE - 1, (int)MT_FD_MAP_CHUNK_SIZE, 70000,
                          (int)MT_FD_MAP_LIMIT - 1};
    for (size_t i = 0; i < COUNT_OF(stored); i++)
        store(&map, stored[i]);

    size_t found = 0;
    for (int fd = mt_fd_map_next(&map, 0, UINT_MAX); fd >= 0;
         fd = mt_fd_map_next(&map, (unsigned)fd + 1, UINT_MAX)) {
        assert_true(found < COUNT_OF(stored));
        assert_int_equal(fd, stored[found]);
        found++;
    }
    assert_int_equal(found, COUNT_OF(stored));

    /* Both ends of a range are inclusive; nothing outside it is reported. */
    assert_int_equal(mt_fd_map_next(&map, 3, 3), 3);
    assert_int_equal(mt_fd_map_next(&map, 4, MT_FD_MAP_CHUNK_SIZE - 2), -1);
    assert_int_equal(mt_fd_map_next(&map, 4, MT_FD_MAP_CHUNK_SIZE - 1),
                     (int)MT_FD_MAP_CHUNK_SIZE - 1);
    assert_int_equal(mt_fd_map_next(&map, MT_FD_MAP_CHUNK_SIZE + 1, 69999), -1);
    assert_int_equal(mt_fd_map_next(&map, MT_FD_MAP_CHUNK_SIZE + 1, 70000), 70000);
    assert_int_equal(mt_fd_map_next(&map, 70001, UINT_MAX), (int)MT_FD_MAP_LIMIT - 1);
    assert_int_equal(mt_fd_map_next(&map, 70001, MT_FD_MAP_LIMIT - 2), -1);
    /* An empty range, and one past the map. */
    assert_int_equal(mt_fd_map_next(&map, 5, 4), -1);
    assert_int_equal(mt_fd_map_next(&map, MT_FD_MAP_LIMIT, UINT_MAX), -1);
}

#define RACERS 8
#define RACE_CHUNKS 64
#define RACE_ROUNDS 8

struct racer {
    struct mt_fd_map *map;
    pthread_barrier_t *start;
    unsigned offset; /* this thread's slot in every chunk */
};

static unsigned race_index(unsigned chunk, unsigned offset)
{
    return chunk * MT_FD_MAP_CHUNK_SIZE + offset;
}

static void *race(void *argument)
{
    struct racer *racer = argument;
    pthread_barrier_wait(racer->start);
    for (unsigned chunk = 0; chunk < RACE_CHUNKS; chunk++) {
        unsigned index = race_index(chunk, racer->offset);
        mt_fd_map_slot *slot = mt_fd_map_slot_create(racer->map, (int)index);
        if (slot == NULL)
            return NULL;
        atomic_store(slot, value_for(index));
    }
    return racer;
}

static void test_mt_fd_map_slot_create_concurrent_creation_keeps_every_store(void **state)
{
    (void)state;
    /*
     * All threads create the same chunks at once, each storing into its own slot of every chunk.
     * Two chunks published for one range would lose the stores made into the one that lost:
     * some value would then be missing below.
     */
    static struct mt_fd_map maps[RACE_ROUNDS];
    for (int round = 0; round < RACE_ROUNDS; round++) {
        pthread_barrier_t start;
        assert_int_equal(pthread_barrier_init(&start, NULL, RACERS), 0);
        pthread_t threads[RACERS];
        struct racer racers[RACERS];
        for (unsigned t = 0; t < RACERS; t++) {
            racers[t] = (struct racer){&maps[round], &start, t};
            assert_int_equal(pthread_create(&threads[t], NULL, race, &racers[t]), 0);
        }
        for (unsigned t = 0; t < RACERS; t++) {
            void *result = NULL;
            assert_int_equal(pthread_join(threads[t], &result), 0);
            assert_ptr_equal(result, &racers[t]);
        }
        pthread_barrier_destroy(&start);
        for (unsigned chunk = 0; chunk < RACE_CHUNKS; chunk++) {
            for (unsigned t = 0; t < RACERS; t++) {
                unsigned index = race_index(chunk, t);
                assert_ptr_equal(mt_fd_map_get(&maps[round], (int)index), value_for(index));
            }
        }
    }
}

static void test_mt_fd_map_fork_child_has_the_parent_map(void **state)
{
    (void)state;
    static struct mt_fd_map map;
    store(&map, 42);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        /* Connections survive fork (the child may use them): the map must not be reset. Nor
         * may it need anything the forking thread's siblings held: it stores without a lock. */
        bool intact =
            mt_fd_map_get(&map, 42) == value_for(42) && mt_fd_map_next(&map, 0, UINT_MAX) == 42;
        mt_fd_map_slot *slot = mt_fd_map_slot_create(&map, 5000);
        if (slot != NULL)
            atomic_store(slot, value_for(5000));
        _exit(intact && mt_fd_map_get(&map, 5000) == value_for(5000) ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The child's store is its own. */
    assert_null(mt_fd_map_get(&map, 5000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt_fd_map_get_empty_map_returns_null),
        cmocka_unit_test(test_mt_fd_map_slot_create_allocates_only_the_chunk_asked_for),
        cmocka_unit_test(test_mt_fd_map_slot_of_out_of_range_returns_null),
        cmocka_unit_test(test_mt_fd_map_next_removed_value_is_skipped),
        cmocka_unit_test(test_mt_fd_map_next_in_range_finds_exactly_the_values_in_it),
        cmocka_unit_test(test_mt_fd_map_slot_create_concurrent_creation_keeps_every_store),
        cmocka_unit_test(test_mt_fd_map_fork_child_has_the_parent_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
