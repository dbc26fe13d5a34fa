/*
 * Tests for util/secret.c: key buffers are zeroed, excluded from core dumps (the kernel shows
 * "dd" in the mapping's VmFlags, which is what both the kernel's dumper and gdb's gcore read),
 * gone from the address space once freed, wiped in place by the exit path, and still there in
 * a forked child (no MADV_WIPEONFORK, on purpose: see secret.h); and the stack wipe erases what
 * a returned callee left in its frame.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/secret.h"

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/*
 * The VmFlags of the mapping of /proc/self/smaps that contains address, copied into flags;
 * false when no mapping contains it.
 */
static bool mapping_flags(const void *address, char *flags, size_t capacity)
{
    FILE *smaps = fopen("/proc/self/smaps", "r");
    assert_non_null(smaps);
    char line[512];
    bool inside = false;
    bool found = false;
    uintptr_t target = (uintptr_t)address;
    while (fgets(line, sizeof(line), smaps) != NULL) {
        unsigned long start = 0;
        unsigned long end = 0;
        char dash = 0;
        /* A mapping's first line: "start-end perms offset dev inode path". */
        if (sscanf(line, "%lx%c%lx ", &start, &dash, &end) == 3 && dash == '-') {
            inside = target >= start && target < end;
            continue;
        }
        if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(flags, capacity, "%s", line + 8);
            found = true;
            break;
        }
    }
    fclose(smaps);
    return found;
}

static bool is_dontdump(const void *address)
{
    char flags[512];
    assert_true(mapping_flags(address, flags, sizeof(flags)));
    return strstr(flags, " dd") != NULL;
}

static bool is_mapped(const void *address)
{
    unsigned char residency = 0;
    void *page = (void *)((uintptr_t)address & ~(uintptr_t)(page_size() - 1));
    /* mincore fails with ENOMEM for a range that is not mapped at all. */
    if (mincore(page, page_size(), &residency) == 0)
        return true;
    assert_int_equal(errno, ENOMEM);
    return false;
}

static bool is_all_zero(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++)
        if (data[i] != 0)
            return false;
    return true;
}

static void test_mt_secret_alloc_small_returns_zeroed_aligned_writable_buffer(void **state)
{
    (void)state;
    uint8_t *data = NULL;
    assert_true(mt_result_is_ok(mt_secret_alloc(121, (void **)&data)));
    assert_non_null(data);
    assert_int_equal((uintptr_t)data % _Alignof(max_align_t), 0);
    assert_int_equal(mt_secret_size(data), 121);
    assert_true(is_all_zero(data, 121));
    memset(data, 0xA5, 121);
    assert_int_equal(data[120], 0xA5);
    mt_secret_free(data);
}

static void test_mt_secret_alloc_any_size_is_excluded_from_core_dumps(void **state)
{
    (void)state;
    /* Not on its own: a heap page must not be marked, or this test proves nothing. */
    void *heap = malloc(64);
    assert_non_null(heap);
    assert_false(is_dontdump(heap));
    free(heap);

    size_t sizes[] = {1, 200, page_size() - 64, page_size(), 3 * page_size() + 5};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t *data = NULL;
        assert_true(mt_result_is_ok(mt_secret_alloc(sizes[i], (void **)&data)));
        assert_true(mt_secret_is_dump_excluded(data));
        assert_true(is_dontdump(data));
        assert_true(is_dontdump(data + sizes[i] - 1));
        mt_secret_free(data);
    }
}

static void test_mt_secret_free_buffer_leaves_the_address_space(void **state)
{
    (void)state;
    uint8_t *data = NULL;
    assert_true(mt_result_is_ok(mt_secret_alloc(2 * page_size(), (void **)&data)));
    memset(data, 0x5A, 2 * page_size());
    assert_true(is_mapped(data));
    mt_secret_free(data);
    /* Unmapped, not returned to a free list: no later allocation or dump can see the bytes. */
    assert_false(is_mapped(data));
    assert_false(is_mapped(data + page_size()));
}

/*
 * Freeing NULL is allowed and touches nothing else: a live buffer keeps its bytes and stays on
 * the list the exit wipe walks (a free that unlinked the list's head for NULL would leave it
 * unwiped at exit, and fail here).
 */
static void test_mt_secret_free_null_leaves_live_buffers_alone(void **state)
{
    (void)state;
    uint8_t *data = NULL;
    assert_true(mt_result_is_ok(mt_secret_alloc(48, (void **)&data)));
    memset(data, 0x3C, 48);
    mt_secret_free(NULL);
    assert_int_equal(data[0], 0x3C);
    assert_int_equal(data[47], 0x3C);
    mt_secret_wipe_all();
    assert_true(is_all_zero(data, 48));
    mt_secret_free(data);
}

static void test_mt_secret_alloc_zero_or_null_out_is_refused(void **state)
{
    (void)state;
    void *data = (void *)1;
    mt_result result = mt_secret_alloc(0, &data);
    assert_int_equal(result.error, MT_ERR_INVALID_ARGUMENT);
    assert_null(data);
    assert_int_equal(mt_secret_alloc(16, NULL).error, MT_ERR_INVALID_ARGUMENT);
    assert_int_equal(mt_secret_alloc(SIZE_MAX, &data).error, MT_ERR_TOO_LONG);
}

static void test_mt_secret_wipe_all_live_buffers_are_zeroed_and_still_usable(void **state)
{
    (void)state;
    uint8_t *first = NULL;
    uint8_t *second = NULL;
    uint8_t *third = NULL;
    assert_true(mt_result_is_ok(mt_secret_alloc(32, (void **)&first)));
    assert_true(mt_result_is_ok(mt_secret_alloc(5000, (void **)&second)));
    assert_true(mt_result_is_ok(mt_secret_alloc(7, (void **)&third)));
    memset(first, 0x11, 32);
    memset(second, 0x22, 5000);
    memset(third, 0x33, 7);
    /* Freeing one from the middle of the list must keep the others reachable. */
    mt_secret_free(second);

    mt_secret_wipe_all();
    assert_true(is_all_zero(first, 32));
    assert_true(is_all_zero(third, 7));
    assert_int_equal(mt_secret_size(first), 32);
    first[31] = 1; /* still mapped and writable: another thread may still hold it at exit */
    mt_secret_free(first);
    mt_secret_free(third);
}

static void test_mt_secret_fork_child_keeps_the_contents(void **state)
{
    (void)state;
    uint8_t *data = NULL;
    assert_true(mt_result_is_ok(mt_secret_alloc(64, (void **)&data)));
    memset(data, 0x77, 64);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        /* The child may go on using the parent's identity: its key must still be there. */
        bool intact = data[0] == 0x77 && data[63] == 0x77 && is_dontdump(data);
        uint8_t *fresh = NULL;
        bool allocates = mt_result_is_ok(mt_secret_alloc(16, (void **)&fresh));
        mt_secret_free(fresh);
        mt_secret_free(data);
        _exit(intact && allocates ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The child's free wiped its own copy, not ours. */
    assert_int_equal(data[0], 0x77);
    mt_secret_free(data);
}

/* Where stand_in_for_wolfcrypt() put its array (an address is not returned: GCC would make
 * it NULL, a local's address being dead after the return). */
static volatile uintptr_t dead_frame;

#define DEAD_FRAME_SIZE 4096

/* Does what wolfCrypt does with a key: copies it into a local array and returns unwiped. */
__attribute__((noinline)) static void stand_in_for_wolfcrypt(void)
{
    volatile unsigned char key[DEAD_FRAME_SIZE];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (unsigned char)(0xA0 | (i & 0x0F));
    dead_frame = (uintptr_t)key;
}

/*
 * Counts the bytes of the dead frame that still hold the key, in whole aligned 8-byte pieces:
 * the wipe function's own frame (return address, saved registers) overlaps the dead one, and a
 * single byte of it can equal the pattern by chance; eight in a row cannot. Reads stack below
 * the caller's frame on purpose: exempt from the sanitizers, which would call that an underflow.
 */
__attribute__((noinline, no_sanitize_address, no_sanitize_thread)) static size_t
key_bytes_left(void)
{
    const volatile unsigned char *key = (const volatile unsigned char *)dead_frame;
    size_t left = 0;
    for (size_t piece = 0; piece < DEAD_FRAME_SIZE; piece += 8) {
        size_t same = 0;
        for (size_t i = piece; i < piece + 8; i++)
            same += key[i] == (unsigned char)(0xA0 | (i & 0x0F));
        left += same == 8 ? 8 : 0;
    }
    return left;
}

/* Valgrind's preload is mapped: memcheck reports every read of a dead stack frame, which is
 * the whole point of the next test. */
static bool is_under_valgrind(void)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    assert_non_null(maps);
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof(line), maps) != NULL)
        found = strstr(line, "vgpreload") != NULL;
    fclose(maps);
    return found;
}

static void test_mt_secret_wipe_stack_after_a_call_its_dead_frame_is_erased(void **state)
{
    (void)state;
    if (is_under_valgrind())
        skip();
    /* Without the wipe the key survives the return: otherwise this test could not fail. */
    stand_in_for_wolfcrypt();
    assert_true(key_bytes_left() > DEAD_FRAME_SIZE / 2);

    stand_in_for_wolfcrypt();
    mt_secret_wipe_stack();
    assert_int_equal(key_bytes_left(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt_secret_alloc_small_returns_zeroed_aligned_writable_buffer),
        cmocka_unit_test(test_mt_secret_alloc_any_size_is_excluded_from_core_dumps),
        cmocka_unit_test(test_mt_secret_free_buffer_leaves_the_address_space),
        cmocka_unit_test(test_mt_secret_free_null_leaves_live_buffers_alone),
        cmocka_unit_test(test_mt_secret_alloc_zero_or_null_out_is_refused),
        cmocka_unit_test(test_mt_secret_wipe_all_live_buffers_are_zeroed_and_still_usable),
        cmocka_unit_test(test_mt_secret_fork_child_keeps_the_contents),
        cmocka_unit_test(test_mt_secret_wipe_stack_after_a_call_its_dead_frame_is_erased),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
