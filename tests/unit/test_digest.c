/*
 * Tests for tls/digest.c: the SHA-256 behind the agent's sha256 rules, against the FIPS 180-2
 * vectors, over files larger than one read, and with the size bound the agent relies on to keep
 * one hash from holding its event loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tls/digest.h"

/* A temporary file holding length bytes produced by fill(i), opened for reading. */
static int file_with(size_t length, uint8_t (*fill)(size_t))
{
    char path[] = "/tmp/test_digest.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    uint8_t block[4096];
    for (size_t done = 0; done < length;) {
        size_t n = length - done < sizeof(block) ? length - done : sizeof(block);
        for (size_t i = 0; i < n; i++)
            block[i] = fill(done + i);
        assert_int_equal(write(fd, block, n), (ssize_t)n);
        done += n;
    }
    return fd;
}

static uint8_t abc(size_t i)
{
    return (uint8_t) "abc"[i];
}

static uint8_t letter_a(size_t i)
{
    (void)i;
    return 'a';
}

static void expect_digest(const uint8_t digest[MT_DIGEST_SHA256_SIZE], const char *hex)
{
    char text[2 * MT_DIGEST_SHA256_SIZE + 1];
    for (size_t i = 0; i < MT_DIGEST_SHA256_SIZE; i++)
        snprintf(text + 2 * i, 3, "%02x", digest[i]);
    assert_string_equal(text, hex);
}

static void test_digest_sha256_fd_abc_matches_fips_vector(void **state)
{
    (void)state;
    int fd = file_with(3, abc);
    uint8_t digest[MT_DIGEST_SHA256_SIZE];
    assert_true(mt_result_is_ok(mt_digest_sha256_fd(fd, 1024, digest, NULL)));
    expect_digest(digest, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    close(fd);
}

static void test_digest_sha256_fd_million_a_spans_reads_from_offset_zero(void **state)
{
    (void)state;
    int fd = file_with(1000000, letter_a);
    /* The file offset is at the end after writing: the hash must not depend on it. */
    uint8_t digest[MT_DIGEST_SHA256_SIZE];
    assert_true(mt_result_is_ok(mt_digest_sha256_fd(fd, 1000000, digest, NULL)));
    expect_digest(digest, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    close(fd);
}

static void test_digest_sha256_fd_over_bound_too_long(void **state)
{
    (void)state;
    int fd = file_with(1000000, letter_a);
    uint8_t digest[MT_DIGEST_SHA256_SIZE];
    assert_int_equal(mt_digest_sha256_fd(fd, 999999, digest, NULL).error, MT_ERR_TOO_LONG);
    assert_int_equal(mt_digest_sha256_fd(-1, 10, digest, NULL).error, MT_ERR_IO);
    close(fd);
}

/*
 * A file with more bytes than the limit (what a file that grew after fstat, or a FUSE file that
 * reports a smaller st_size, looks like): it fails after reading one byte past the limit, never
 * the rest, and says how much it read; exactly the limit hashes and reads the limit.
 */
static void test_digest_sha256_fd_limit_reads_one_byte_past_it_at_most(void **state)
{
    (void)state;
    int fd = file_with(1000000, letter_a);
    uint8_t digest[MT_DIGEST_SHA256_SIZE];
    uint64_t read_bytes = 12345;
    assert_int_equal(mt_digest_sha256_fd(fd, 100000, digest, &read_bytes).error, MT_ERR_TOO_LONG);
    assert_int_equal(read_bytes, 100001);
    assert_int_equal(mt_digest_sha256_fd(fd, 0, digest, &read_bytes).error, MT_ERR_TOO_LONG);
    assert_int_equal(read_bytes, 1);
    assert_true(mt_result_is_ok(mt_digest_sha256_fd(fd, 1000000, digest, &read_bytes)));
    assert_int_equal(read_bytes, 1000000);
    expect_digest(digest, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* A file shorter than the limit is hashed and read to its end only. */
    assert_true(mt_result_is_ok(mt_digest_sha256_fd(fd, 2000000, digest, &read_bytes)));
    assert_int_equal(read_bytes, 1000000);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest_sha256_fd_abc_matches_fips_vector),
        cmocka_unit_test(test_digest_sha256_fd_million_a_spans_reads_from_offset_zero),
        cmocka_unit_test(test_digest_sha256_fd_over_bound_too_long),
        cmocka_unit_test(test_digest_sha256_fd_limit_reads_one_byte_past_it_at_most),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
