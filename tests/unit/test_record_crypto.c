/*
 * Tests for tls/record_crypto.c: AES-GCM of TLS records on VAES/AVX-512 through wolfSSL's crypto
 * callbacks. Each operation goes through wolfCrypt's own entry points (wc_AesGcmEncrypt and
 * wc_AesGcmDecrypt), once on an Aes bound to the VAES device and once on one bound to no device
 * (wolfSSL's code), exactly as the record layer calls them. Known answers from the GCM
 * specification's test cases (McGrew and Viega, both key sizes, with and without AAD, a length
 * that is not a multiple of the block), then both paths against each other on random records,
 * with tampered tags and AAD, and a key set again in the same object. The fast-path counter
 * proves that the VAES code ran: a test that silently fell back to wolfSSL's code cannot pass.
 *
 * Skipped (not passed) where the path is absent: a CPU without VAES+AVX-512, or a build without
 * libipsec-mb or crypto callbacks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "tls/internal.h"
#include "tls/tls.h"

#define TAG_LENGTH 16
#define MAX_RECORD (16384 + 256)

static size_t from_hex(const char *hex, uint8_t *out)
{
    assert_int_equal(strlen(hex) % 2, 0);
    size_t length = strlen(hex) / 2;
    for (size_t i = 0; i < length; i++) {
        unsigned byte = 0;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &byte), 1);
        out[i] = (uint8_t)byte;
    }
    return length;
}

static bool has_fast_path(void)
{
    return mt_tls_record_crypto_device() != INVALID_DEVID;
}

static int setup(void **state)
{
    (void)state;
    assert_true(mt_result_is_ok(mt_tls_global_init()));
    return 0;
}

/* An Aes with key, bound to the VAES device (fast) or to none (wolfSSL's code). */
static void aes_open(Aes *aes, const uint8_t *key, size_t key_length, bool fast)
{
    assert_int_equal(wc_AesInit(aes, NULL, fast ? mt_tls_record_crypto_device() : INVALID_DEVID),
                     0);
    assert_int_equal(wc_AesGcmSetKey(aes, key, (word32)key_length), 0);
}

struct vector {
    const char *key, *iv, *plaintext, *aad, *ciphertext, *tag;
};

/* The GCM specification's test cases 1-4 (AES-128) and 13-16 (AES-256). */
static const struct vector vectors[] = {
    {"00000000000000000000000000000000", "000000000000000000000000", "", "", "",
     "58e2fccefa7e3061367f1d57a4e7455a"},
    {"00000000000000000000000000000000", "000000000000000000000000",
     "00000000000000000000000000000000", "", "0388dace60b6a392f328c2b971b2fe78",
     "ab6e47d42cec13bdf53a67b21257bddf"},
    {"feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b"
     "525b16aedf5aa0de657ba637b391aafd255",
     "",
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84a"
     "a051ba30b396a0aac973d58e091473f5985",
     "4d5c2af327cd64a62cf35abd2ba6fab4"},
    {"feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b"
     "525b16aedf5aa0de657ba637b39",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84a"
     "a051ba30b396a0aac973d58e091",
     "5bc94fbc3221a5db94fae95ae7121a47"},
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "00000000000000000000000000000000", "", "cea7403d4d606b6e074ec5d3baf39d18",
     "d0d1c8a799996bf0265b98b5d48ab919"},
    {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b"
     "525b16aedf5aa0de657ba637b391aafd255",
     "",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828"
     "838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b"
     "525b16aedf5aa0de657ba637b39",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828"
     "838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

static void check_vector(const struct vector *vector, bool fast)
{
    uint8_t key[32], iv[12], plaintext[64], aad[20], expected[64], tag[TAG_LENGTH];
    uint8_t out[64], out_tag[TAG_LENGTH];
    size_t key_length = from_hex(vector->key, key);
    size_t iv_length = from_hex(vector->iv, iv);
    size_t length = from_hex(vector->plaintext, plaintext);
    size_t aad_length = from_hex(vector->aad, aad);
    assert_int_equal(from_hex(vector->ciphertext, expected), length);
    from_hex(vector->tag, tag);

    Aes aes;
    aes_open(&aes, key, key_length, fast);
    unsigned long before = mt_tls_record_crypto_fast_records();
    assert_int_equal(wc_AesGcmEncrypt(&aes, out, plaintext, (word32)length, iv, (word32)iv_length,
                                      out_tag, TAG_LENGTH, aad, (word32)aad_length),
                     0);
    assert_memory_equal(out, expected, length);
    assert_memory_equal(out_tag, tag, TAG_LENGTH);
    assert_int_equal(wc_AesGcmDecrypt(&aes, out, expected, (word32)length, iv, (word32)iv_length,
                                      tag, TAG_LENGTH, aad, (word32)aad_length),
                     0);
    assert_memory_equal(out, plaintext, length);
    assert_int_equal(mt_tls_record_crypto_fast_records() - before, fast ? 2 : 0);
    wc_AesFree(&aes);
}

static void test_aes_gcm_known_answers_both_paths_match(void **state)
{
    (void)state;
    if (!has_fast_path())
        skip();
    mt_tls_record_crypto_set_min_length(0);
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        check_vector(&vectors[i], true);
        check_vector(&vectors[i], false);
    }
    mt_tls_record_crypto_set_min_length(512);
}

static void random_bytes(uint8_t *out, size_t length)
{
    for (size_t i = 0; i < length; i++)
        out[i] = (uint8_t)random();
}

/* One random record through both paths, each decrypting the other's; then forgeries. */
static void cross_check_record(size_t key_length, size_t length, size_t aad_length)
{
    static uint8_t plaintext[MAX_RECORD], fast_out[MAX_RECORD], soft_out[MAX_RECORD],
        opened[MAX_RECORD];
    uint8_t key[32], iv[12], aad[64], fast_tag[TAG_LENGTH], soft_tag[TAG_LENGTH];
    random_bytes(key, key_length);
    random_bytes(iv, sizeof(iv));
    random_bytes(aad, aad_length);
    random_bytes(plaintext, length);
    Aes fast, soft;
    aes_open(&fast, key, key_length, true);
    aes_open(&soft, key, key_length, false);

    unsigned long before = mt_tls_record_crypto_fast_records();
    assert_int_equal(wc_AesGcmEncrypt(&fast, fast_out, plaintext, (word32)length, iv, sizeof(iv),
                                      fast_tag, TAG_LENGTH, aad, (word32)aad_length),
                     0);
    assert_int_equal(wc_AesGcmEncrypt(&soft, soft_out, plaintext, (word32)length, iv, sizeof(iv),
                                      soft_tag, TAG_LENGTH, aad, (word32)aad_length),
                     0);
    assert_int_equal(mt_tls_record_crypto_fast_records() - before, 1);
    assert_memory_equal(fast_out, soft_out, length);
    assert_memory_equal(fast_tag, soft_tag, TAG_LENGTH);

    assert_int_equal(wc_AesGcmDecrypt(&fast, opened, soft_out, (word32)length, iv, sizeof(iv),
                                      soft_tag, TAG_LENGTH, aad, (word32)aad_length),
                     0);
    assert_memory_equal(opened, plaintext, length);
    assert_int_equal(wc_AesGcmDecrypt(&soft, opened, fast_out, (word32)length, iv, sizeof(iv),
                                      fast_tag, TAG_LENGTH, aad, (word32)aad_length),
                     0);
    assert_memory_equal(opened, plaintext, length);

    /* A flipped bit in the tag, the ciphertext or the AAD: both fail with the same error. */
    uint8_t forged_tag[TAG_LENGTH];
    memcpy(forged_tag, fast_tag, TAG_LENGTH);
    forged_tag[random() % TAG_LENGTH] ^= (uint8_t)(1u << (random() % 8));
    memset(opened, 0x5a, length);
    assert_int_equal(wc_AesGcmDecrypt(&fast, opened, fast_out, (word32)length, iv, sizeof(iv),
                                      forged_tag, TAG_LENGTH, aad, (word32)aad_length),
                     AES_GCM_AUTH_E);
    for (size_t i = 0; i < length; i++)
        assert_int_equal(opened[i], 0); /* no plaintext of a forgery is left behind */
    assert_int_equal(wc_AesGcmDecrypt(&soft, opened, fast_out, (word32)length, iv, sizeof(iv),
                                      forged_tag, TAG_LENGTH, aad, (word32)aad_length),
                     AES_GCM_AUTH_E);
    fast_out[random() % length] ^= 1;
    assert_int_equal(wc_AesGcmDecrypt(&fast, opened, fast_out, (word32)length, iv, sizeof(iv),
                                      fast_tag, TAG_LENGTH, aad, (word32)aad_length),
                     AES_GCM_AUTH_E);
    if (aad_length > 0) {
        aad[random() % aad_length] ^= 0x80;
        assert_int_equal(wc_AesGcmDecrypt(&fast, opened, soft_out, (word32)length, iv, sizeof(iv),
                                          soft_tag, TAG_LENGTH, aad, (word32)aad_length),
                         AES_GCM_AUTH_E);
    }
    wc_AesFree(&fast);
    wc_AesFree(&soft);
}

static void test_aes_gcm_random_records_both_paths_agree(void **state)
{
    (void)state;
    if (!has_fast_path())
        skip();
    srandom(21);
    mt_tls_record_crypto_set_min_length(1);
    for (int i = 0; i < 400; i++) {
        size_t key_length = i % 2 == 0 ? 16 : 32;
        /* Every length up to a few blocks, then any up to a full record with its type byte. */
        size_t length = i < 100 ? (size_t)i + 1 : 1 + (size_t)random() % (16384 + 1);
        size_t aad_length = i % 3 == 0 ? 5 : (size_t)random() % 64; /* TLS 1.3: 5 bytes */
        cross_check_record(key_length, length, aad_length);
    }
    mt_tls_record_crypto_set_min_length(512);
}

static void test_aes_gcm_in_place_matches_wolfssl(void **state)
{
    (void)state;
    if (!has_fast_path())
        skip();
    /* The record layer encrypts and decrypts records where they lie (out == in). */
    static uint8_t record[16384], copy[16384];
    uint8_t key[16], iv[12], aad[5], tag[TAG_LENGTH], soft_tag[TAG_LENGTH];
    random_bytes(key, sizeof(key));
    random_bytes(iv, sizeof(iv));
    random_bytes(aad, sizeof(aad));
    random_bytes(record, sizeof(record));
    memcpy(copy, record, sizeof(record));
    Aes fast, soft;
    aes_open(&fast, key, sizeof(key), true);
    aes_open(&soft, key, sizeof(key), false);
    assert_int_equal(wc_AesGcmEncrypt(&fast, record, record, sizeof(record), iv, sizeof(iv), tag,
                                      TAG_LENGTH, aad, sizeof(aad)),
                     0);
    assert_int_equal(wc_AesGcmEncrypt(&soft, copy, copy, sizeof(copy), iv, sizeof(iv), soft_tag,
                                      TAG_LENGTH, aad, sizeof(aad)),
                     0);
    assert_memory_equal(record, copy, sizeof(record));
    assert_memory_equal(tag, soft_tag, TAG_LENGTH);
    wc_AesFree(&fast);
    wc_AesFree(&soft);
}

static void test_aes_gcm_key_set_again_uses_new_key(void **state)
{
    (void)state;
    if (!has_fast_path())
        skip();
    /* A second key in the same Aes without a free in between: the schedule must follow it. */
    static uint8_t plaintext[2048], fast_out[2048], soft_out[2048];
    uint8_t first[32], second[32], iv[12], tag[TAG_LENGTH], soft_tag[TAG_LENGTH];
    random_bytes(first, sizeof(first));
    random_bytes(second, sizeof(second));
    random_bytes(iv, sizeof(iv));
    random_bytes(plaintext, sizeof(plaintext));
    Aes fast, soft;
    aes_open(&fast, first, sizeof(first), true);
    assert_int_equal(wc_AesGcmEncrypt(&fast, fast_out, plaintext, sizeof(plaintext), iv, sizeof(iv),
                                      tag, TAG_LENGTH, NULL, 0),
                     0);
    assert_int_equal(wc_AesGcmSetKey(&fast, second, 16), 0); /* and another size */
    aes_open(&soft, second, 16, false);
    assert_int_equal(wc_AesGcmEncrypt(&fast, fast_out, plaintext, sizeof(plaintext), iv, sizeof(iv),
                                      tag, TAG_LENGTH, NULL, 0),
                     0);
    assert_int_equal(wc_AesGcmEncrypt(&soft, soft_out, plaintext, sizeof(plaintext), iv, sizeof(iv),
                                      soft_tag, TAG_LENGTH, NULL, 0),
                     0);
    assert_memory_equal(fast_out, soft_out, sizeof(plaintext));
    assert_memory_equal(tag, soft_tag, TAG_LENGTH);
    wc_AesFree(&fast);
    wc_AesFree(&soft);
}

static void test_aes_gcm_short_records_stay_with_wolfssl(void **state)
{
    (void)state;
    if (!has_fast_path())
        skip();
    /* Below the threshold no schedule is made (an idle connection's heap stays as it was). */
    uint8_t key[16] = {1}, iv[12] = {2}, data[511] = {3}, out[511], tag[TAG_LENGTH];
    Aes fast;
    aes_open(&fast, key, sizeof(key), true);
    unsigned long before = mt_tls_record_crypto_fast_records();
    assert_int_equal(
        wc_AesGcmEncrypt(&fast, out, data, sizeof(data), iv, sizeof(iv), tag, TAG_LENGTH, NULL, 0),
        0);
    assert_int_equal(mt_tls_record_crypto_fast_records(), before);
    assert_null(fast.devCtx);
    wc_AesFree(&fast);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aes_gcm_known_answers_both_paths_match),
        cmocka_unit_test(test_aes_gcm_random_records_both_paths_agree),
        cmocka_unit_test(test_aes_gcm_in_place_matches_wolfssl),
        cmocka_unit_test(test_aes_gcm_key_set_again_uses_new_key),
        cmocka_unit_test(test_aes_gcm_short_records_stay_with_wolfssl),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
