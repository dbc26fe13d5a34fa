/*
 * Tests for the call-site limits of util/log.c: a flood of one line becomes MT_LOG_LIMIT_BURST
 * lines per interval and one number, never a silent loss and never a full disk.
 *
 * Time is passed explicitly (mt_log_limited_at), and lines are captured through the writer hook,
 * so each test states exactly which lines an operator would read.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/log.h"

static char captured[16384];
static size_t captured_length;
static pthread_mutex_t captured_lock = PTHREAD_MUTEX_INITIALIZER;

static ssize_t capture(int fd, const void *buffer, size_t length)
{
    (void)fd;
    pthread_mutex_lock(&captured_lock);
    size_t room = sizeof(captured) - 1 - captured_length;
    size_t copied = length < room ? length : room;
    memcpy(captured + captured_length, buffer, copied);
    captured_length += copied;
    captured[captured_length] = '\0';
    pthread_mutex_unlock(&captured_lock);
    return (ssize_t)length;
}

static size_t line_count(void)
{
    size_t lines = 0;
    for (size_t i = 0; i < captured_length; i++)
        lines += captured[i] == '\n';
    return lines;
}

static int setup(void **state)
{
    (void)state;
    captured_length = 0;
    captured[0] = '\0';
    mt_log_set_writer(capture);
    mt_log_set_tag("test");
    mt_log_set_level(MT_LOG_INFO);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mt_log_set_writer(NULL);
    return 0;
}

/* Every test uses its own limit, static as every call site's is (flush keeps a list of them). */
#define NEW_LIMIT(name) static struct mt_log_limit name

static void test_log_limit_admit_burst_then_suppresses(void **state)
{
    (void)state;
    NEW_LIMIT(limit);
    unsigned long long dropped = 99;
    for (unsigned i = 0; i < MT_LOG_LIMIT_BURST; i++) {
        assert_true(mt_log_limit_admit(&limit, 1000 + i, &dropped));
        assert_int_equal(dropped, 0);
    }
    assert_false(mt_log_limit_admit(&limit, 1500, &dropped));
    assert_false(mt_log_limit_admit(&limit, 1000 + MT_LOG_LIMIT_INTERVAL_MS - 1, &dropped));
    assert_int_equal(atomic_load(&limit.suppressed), 2);
}

static void test_log_limit_admit_next_interval_reports_dropped(void **state)
{
    (void)state;
    NEW_LIMIT(limit);
    unsigned long long dropped = 0;
    for (unsigned i = 0; i < MT_LOG_LIMIT_BURST + 7; i++)
        (void)mt_log_limit_admit(&limit, 1000, &dropped);
    assert_true(mt_log_limit_admit(&limit, 1000 + MT_LOG_LIMIT_INTERVAL_MS, &dropped));
    assert_int_equal(dropped, 7);
    /* The count is reported once: the next line of the same interval carries none. */
    assert_true(mt_log_limit_admit(&limit, 1001 + MT_LOG_LIMIT_INTERVAL_MS, &dropped));
    assert_int_equal(dropped, 0);
}

static void test_log_limited_at_flood_writes_burst_and_count(void **state)
{
    (void)state;
    NEW_LIMIT(limit);
    for (int i = 0; i < 1000; i++)
        mt_log_limited_at(&limit, 5000, MT_LOG_WARN, "refused uid %d", i);
    assert_int_equal(line_count(), MT_LOG_LIMIT_BURST);
    assert_non_null(strstr(captured, "test["));
    assert_non_null(strstr(captured, "]: warn: refused uid 0\n"));
    assert_null(strstr(captured, "refused uid 10\n"));
    mt_log_limited_at(&limit, 5000 + MT_LOG_LIMIT_INTERVAL_MS, MT_LOG_WARN, "refused uid %d", 1);
    assert_int_equal(line_count(), MT_LOG_LIMIT_BURST + 1);
    assert_non_null(strstr(captured, "warn: refused uid 1 (990 similar lines suppressed)\n"));
}

static void test_log_limits_flush_reports_count_nobody_followed(void **state)
{
    (void)state;
    NEW_LIMIT(limit);
    /* The earlier tests' limits are on the list too: report their counts first, out of sight. */
    const long long start = 1000000000000LL;
    mt_log_limits_flush(start - MT_LOG_LIMIT_INTERVAL_MS);
    captured_length = 0;
    for (int i = 0; i < 25; i++)
        mt_log_limited_at(&limit, start, MT_LOG_WARN, "closed connection from uid %d", i);
    size_t before = line_count();
    /* Not before the interval is over: the count is still growing. */
    mt_log_limits_flush(start + MT_LOG_LIMIT_INTERVAL_MS - 1);
    assert_int_equal(line_count(), before);
    mt_log_limits_flush(start + MT_LOG_LIMIT_INTERVAL_MS);
    assert_int_equal(line_count(), before + 1);
    assert_non_null(strstr(captured, "warn: 15 similar lines suppressed in the last 10 s: "
                                     "\"closed connection from uid %d\"\n"));
    /* Reported once. */
    mt_log_limits_flush(start + 3 * MT_LOG_LIMIT_INTERVAL_MS);
    assert_int_equal(line_count(), before + 1);
}

static void test_log_limited_at_disabled_level_neither_writes_nor_counts(void **state)
{
    (void)state;
    NEW_LIMIT(limit);
    for (int i = 0; i < 100; i++)
        mt_log_limited_at(&limit, 1000, MT_LOG_DEBUG, "debug %d", i);
    assert_int_equal(line_count(), 0);
    assert_int_equal(atomic_load(&limit.suppressed), 0);
}

static void test_log_limited_at_long_line_keeps_count_and_newline(void **state)
{
    (void)state;
    NEW_LIMIT(limit);
    char long_text[2000];
    memset(long_text, 'x', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    for (unsigned i = 0; i < MT_LOG_LIMIT_BURST + 11; i++)
        mt_log_limited_at(&limit, 1000, MT_LOG_WARN, "%s", long_text);
    captured_length = 0;
    mt_log_limited_at(&limit, 1000 + MT_LOG_LIMIT_INTERVAL_MS, MT_LOG_WARN, "%s", long_text);
    assert_int_equal(line_count(), 1);
    assert_true(captured_length <= 1024);
    assert_int_equal(captured[captured_length - 1], '\n');
    assert_non_null(strstr(captured, "xxx (11 similar lines suppressed)\n"));
}

struct flood {
    struct mt_log_limit *limit;
    int lines;
};

static void *flood_thread(void *argument)
{
    struct flood *flood = argument;
    for (int i = 0; i < flood->lines; i++)
        mt_log_limited_at(flood->limit, 2000, MT_LOG_WARN, "thread line %d", i);
    return NULL;
}

static void test_log_limited_at_threads_count_every_line(void **state)
{
    (void)state;
    NEW_LIMIT(limit);
    enum { THREADS = 4, LINES = 5000 };
    pthread_t threads[THREADS];
    struct flood flood = {&limit, LINES};
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, flood_thread, &flood), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    /* Within one interval: the burst was written, every other line counted, none lost. */
    assert_int_equal(line_count(), MT_LOG_LIMIT_BURST);
    assert_int_equal(atomic_load(&limit.suppressed) + MT_LOG_LIMIT_BURST, THREADS * LINES);
}

/* A line written to the journal stream carries its syslog priority, not a second tag and pid. */
static void test_log_journal_stream_lines_carry_priority_not_tag(void **state)
{
    (void)state;
    struct stat status;
    assert_int_equal(fstat(STDERR_FILENO, &status), 0);
    char stream[64];
    snprintf(stream, sizeof(stream), "%llu:%llu", (unsigned long long)status.st_dev,
             (unsigned long long)status.st_ino);
    assert_int_equal(setenv("JOURNAL_STREAM", stream, 1), 0);
    assert_true(mt_log_detect_journal());
    mt_log_info("identity %s", "spiffe://example.org/a");
    mt_log_warn("refused");
    mt_log_error("broken");
    assert_string_equal(captured, "<6>info: identity spiffe://example.org/a\n<4>warn: refused\n"
                                  "<3>error: broken\n");

    /* stderr is not the stream JOURNAL_STREAM names (redirected, or a child's): our own prefix. */
    snprintf(stream, sizeof(stream), "%llu:%llu", (unsigned long long)status.st_dev,
             (unsigned long long)status.st_ino + 1);
    assert_int_equal(setenv("JOURNAL_STREAM", stream, 1), 0);
    assert_false(mt_log_detect_journal());
    captured_length = 0;
    mt_log_info("plain");
    char expected[64];
    snprintf(expected, sizeof(expected), "test[%ld]: info: plain\n", (long)getpid());
    assert_string_equal(captured, expected);

    assert_int_equal(setenv("JOURNAL_STREAM", "not-a-stream", 1), 0);
    assert_false(mt_log_detect_journal());
    assert_int_equal(unsetenv("JOURNAL_STREAM"), 0);
    assert_false(mt_log_detect_journal());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_log_journal_stream_lines_carry_priority_not_tag, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_limit_admit_burst_then_suppresses, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_limit_admit_next_interval_reports_dropped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_limited_at_flood_writes_burst_and_count, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_limits_flush_reports_count_nobody_followed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_log_limited_at_disabled_level_neither_writes_nor_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_limited_at_long_line_keeps_count_and_newline,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_limited_at_threads_count_every_line, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
