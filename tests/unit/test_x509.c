/*
 * Tests for tls/x509.c: keys, CSRs, the dev CA, leaf issuance and the X.509-SVID checks.
 *
 * Certificates that break one SVID rule each were made with the openssl command line
 * (tests/data/agent/README.md), so the checks are tried on certificates our own issuing code
 * would never produce. Leaves issued here are checked through the same public functions a
 * workload uses, and their validity through the parsed dates, not through the inputs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "util/spiffe.h"
#include "tls/x509.h"

#define FILE_MAX 8192
#define TRUST_DOMAIN "meshtls.local"
#define AGENT_ID "spiffe://meshtls.local/uid/1000"

/* A fixed instant, so that expected dates are exact: 2026-01-01T00:00:00Z. */
static const time_t base_time = 1767225600;

struct fixture {
    struct mt_x509_key *ca_key;
    uint8_t ca_der[MT_X509_CERT_DER_MAX];
    size_t ca_length;
    struct mt_x509_key *workload_key;
    uint8_t csr[MT_X509_CSR_DER_MAX];
    size_t csr_length;
};

static size_t read_data(const char *name, uint8_t *buffer, size_t capacity)
{
    const char *directory = getenv("MESHTLS_TEST_DATA");
    assert_non_null(directory);
    char path[4096];
    snprintf(path, sizeof(path), "%s/agent/%s", directory, name);
    FILE *file = fopen(path, "rb");
    if (file == NULL)
        fail_msg("cannot open test data %s", path);
    size_t length = fread(buffer, 1, capacity, file);
    fclose(file);
    assert_true(length > 0 && length < capacity);
    return length;
}

static size_t read_cert_fixture(const char *name, uint8_t *der, size_t capacity)
{
    char pem[FILE_MAX];
    size_t pem_length = read_data(name, (uint8_t *)pem, sizeof(pem));
    size_t length = 0;
    assert_true(mt_result_is_ok(mt_x509_cert_pem_to_der(pem, pem_length, der, capacity, &length)));
    return length;
}

static int setup(void **state)
{
    struct fixture *fixture = calloc(1, sizeof(*fixture));
    assert_non_null(fixture);
    assert_true(mt_result_is_ok(mt_x509_key_generate(&fixture->ca_key)));
    assert_true(mt_result_is_ok(mt_x509_ca_create(fixture->ca_key, TRUST_DOMAIN, base_time,
                                                  base_time + 3650 * 86400L, fixture->ca_der,
                                                  sizeof(fixture->ca_der), &fixture->ca_length)));
    assert_true(mt_result_is_ok(mt_x509_key_generate(&fixture->workload_key)));
    assert_true(mt_result_is_ok(mt_x509_csr_create(fixture->workload_key, fixture->csr,
                                                   sizeof(fixture->csr), &fixture->csr_length)));
    *state = fixture;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fixture = *state;
    mt_x509_key_free(fixture->ca_key);
    mt_x509_key_free(fixture->workload_key);
    free(fixture);
    return 0;
}

static mt_result issue(const struct fixture *fixture, const uint8_t *csr, size_t csr_length,
                       const char *spiffe_id, uint8_t *der, size_t capacity, size_t *length)
{
    return mt_x509_leaf_issue(csr, csr_length, spiffe_id, fixture->ca_der, fixture->ca_length,
                              fixture->ca_key, base_time, base_time + 86400, der, capacity, length);
}

/* ----------------------------------------------------------------------------------------- */
/* Keys */

static void test_key_generate_twice_different_keys(void **state)
{
    struct fixture *fixture = *state;
    struct mt_x509_key *other = NULL;
    assert_true(mt_result_is_ok(mt_x509_key_generate(&other)));
    assert_true(mt_x509_key_matches_cert(fixture->ca_key, fixture->ca_der, fixture->ca_length));
    assert_false(mt_x509_key_matches_cert(other, fixture->ca_der, fixture->ca_length));
    mt_x509_key_free(other);
}

/*
 * The key and CSR made from one DRBG: the CSR is signed by that key (the agent's issuing code
 * checks the signature and certifies its public key), and two calls give two different keys.
 */
static void test_key_and_csr_create_csr_of_the_new_key_each_key_new(void **state)
{
    struct fixture *fixture = *state;
    struct mt_x509_key *keys[2] = {NULL, NULL};
    uint8_t leaves[2][MT_X509_CERT_DER_MAX];
    size_t leaf_lengths[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        uint8_t csr[MT_X509_CSR_DER_MAX];
        size_t csr_length = 0;
        assert_true(
            mt_result_is_ok(mt_x509_key_and_csr_create(&keys[i], csr, sizeof(csr), &csr_length)));
        assert_true(mt_result_is_ok(issue(fixture, csr, csr_length, AGENT_ID, leaves[i],
                                          sizeof(leaves[i]), &leaf_lengths[i])));
        assert_true(mt_x509_key_matches_cert(keys[i], leaves[i], leaf_lengths[i]));
    }
    assert_false(mt_x509_key_matches_cert(keys[0], leaves[1], leaf_lengths[1]));
    assert_false(mt_x509_key_matches_cert(keys[1], leaves[0], leaf_lengths[0]));
    mt_x509_key_free(keys[0]);
    mt_x509_key_free(keys[1]);
}

static void test_key_to_pem_read_back_same_key(void **state)
{
    struct fixture *fixture = *state;
    char pem[MT_X509_KEY_PEM_MAX];
    size_t length = 0;
    assert_true(mt_result_is_ok(mt_x509_key_to_pem(fixture->ca_key, pem, sizeof(pem), &length)));
    assert_int_equal(strlen(pem), length);
    assert_non_null(strstr(pem, "-----BEGIN EC PRIVATE KEY-----"));

    struct mt_x509_key *loaded = NULL;
    assert_true(mt_result_is_ok(mt_x509_key_from_pem(pem, length, &loaded)));
    assert_true(mt_x509_key_matches_cert(loaded, fixture->ca_der, fixture->ca_length));
    mt_x509_key_free(loaded);
}

static void test_key_to_pem_small_buffer_too_long(void **state)
{
    struct fixture *fixture = *state;
    char pem[64];
    size_t length = 0;
    assert_int_equal(mt_x509_key_to_pem(fixture->ca_key, pem, sizeof(pem), &length).error,
                     MT_ERR_TOO_LONG);
}

static void test_key_to_der_p256_sec1_encoding(void **state)
{
    struct fixture *fixture = *state;
    uint8_t der[MT_X509_KEY_DER_MAX];
    size_t length = 0;
    assert_true(mt_result_is_ok(mt_x509_key_to_der(fixture->ca_key, der, sizeof(der), &length)));
    /* SEC1 ECPrivateKey: SEQUENCE { INTEGER 1, OCTET STRING (32 bytes) ... } */
    assert_true(length > 40);
    assert_int_equal(der[0], 0x30);
    assert_memory_equal(der + 2, ((const uint8_t[]){0x02, 0x01, 0x01, 0x04, 0x20}), 5);
}

static void test_key_from_pem_pkcs8_accepted(void **state)
{
    (void)state;
    char pem[FILE_MAX];
    size_t length = read_data("p256-pkcs8.key", (uint8_t *)pem, sizeof(pem));
    struct mt_x509_key *key = NULL;
    assert_true(mt_result_is_ok(mt_x509_key_from_pem(pem, length, &key)));
    /* The fixture leaves were issued for this key. */
    uint8_t der[MT_X509_CERT_DER_MAX];
    size_t der_length = read_cert_fixture("leaf-uri-dns.pem", der, sizeof(der));
    assert_true(mt_x509_key_matches_cert(key, der, der_length));
    mt_x509_key_free(key);
}

static void test_key_from_pem_p384_rejected(void **state)
{
    (void)state;
    char pem[FILE_MAX];
    size_t length = read_data("p384-sec1.key", (uint8_t *)pem, sizeof(pem));
    struct mt_x509_key *key = NULL;
    assert_false(mt_result_is_ok(mt_x509_key_from_pem(pem, length, &key)));
    assert_null(key);
}

static void test_key_from_pem_garbage_rejected(void **state)
{
    (void)state;
    static const char garbage[] =
        "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
    struct mt_x509_key *key = NULL;
    assert_int_equal(mt_x509_key_from_pem(garbage, strlen(garbage), &key).error, MT_ERR_CERT_PARSE);
    assert_null(key);
}

/*
 * A failed load leaves NULL, whatever the pointer held before, and NULL is freed as nothing: the
 * caller's cleanup frees unconditionally. A load that left the old pointer (here the CA's key)
 * would have that cleanup free a key it does not own; a free that dereferenced NULL would crash.
 */
static void test_key_from_pem_failure_leaves_nothing_to_free(void **state)
{
    struct fixture *fixture = *state;
    static const char garbage[] = "-----BEGIN EC PRIVATE KEY-----\n-----END EC PRIVATE KEY-----\n";
    struct mt_x509_key *key = fixture->ca_key;
    assert_false(mt_result_is_ok(mt_x509_key_from_pem(garbage, strlen(garbage), &key)));
    assert_null(key);
    mt_x509_key_free(key);
}

/* ----------------------------------------------------------------------------------------- */
/* CA */

static void test_ca_create_valid_ca_names_trust_domain(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_x509_cert_is_ca(fixture->ca_der, fixture->ca_length));
    char id[MT_SPIFFE_ID_MAX + 1];
    assert_true(mt_result_is_ok(
        mt_x509_cert_spiffe_id(fixture->ca_der, fixture->ca_length, id, sizeof(id))));
    assert_string_equal(id, "spiffe://" TRUST_DOMAIN);

    time_t not_before = 0;
    time_t not_after = 0;
    assert_true(mt_result_is_ok(
        mt_x509_cert_validity(fixture->ca_der, fixture->ca_length, &not_before, &not_after)));
    assert_int_equal(not_before, base_time);
    assert_int_equal(not_after, base_time + 3650 * 86400L);
}

static void test_ca_create_invalid_trust_domain_rejected(void **state)
{
    struct fixture *fixture = *state;
    uint8_t der[MT_X509_CERT_DER_MAX];
    size_t length = 0;
    assert_false(mt_result_is_ok(mt_x509_ca_create(fixture->ca_key, "Example.ORG", base_time,
                                                   base_time + 86400, der, sizeof(der), &length)));
    assert_false(mt_result_is_ok(mt_x509_ca_create(fixture->ca_key, "", base_time,
                                                   base_time + 86400, der, sizeof(der), &length)));
}

static void test_ca_create_after_2049_generalized_time_exact(void **state)
{
    struct fixture *fixture = *state;
    /* 2060-06-01T12:34:56Z needs GeneralizedTime (RFC 5280 §4.1.2.5). */
    const time_t late = 2853318896;
    uint8_t der[MT_X509_CERT_DER_MAX];
    size_t length = 0;
    assert_true(mt_result_is_ok(mt_x509_ca_create(fixture->ca_key, TRUST_DOMAIN, base_time, late,
                                                  der, sizeof(der), &length)));
    time_t not_before = 0;
    time_t not_after = 0;
    assert_true(mt_result_is_ok(mt_x509_cert_validity(der, length, &not_before, &not_after)));
    assert_int_equal(not_before, base_time);
    assert_int_equal(not_after, late);
}

static void test_ca_create_reversed_validity_rejected(void **state)
{
    struct fixture *fixture = *state;
    uint8_t der[MT_X509_CERT_DER_MAX];
    size_t length = 0;
    assert_false(mt_result_is_ok(mt_x509_ca_create(fixture->ca_key, TRUST_DOMAIN, base_time,
                                                   base_time - 1, der, sizeof(der), &length)));
}

/* ----------------------------------------------------------------------------------------- */
/* Leaves */

static void test_leaf_issue_valid_csr_svid_for_given_id(void **state)
{
    struct fixture *fixture = *state;
    uint8_t leaf[MT_X509_CERT_DER_MAX];
    size_t length = 0;
    assert_true(mt_result_is_ok(
        issue(fixture, fixture->csr, fixture->csr_length, AGENT_ID, leaf, sizeof(leaf), &length)));

    char id[MT_SPIFFE_ID_MAX + 1];
    const char *reason = "unset";
    assert_true(mt_result_is_ok(mt_x509_svid_check(leaf, length, id, sizeof(id), &reason)));
    assert_string_equal(id, AGENT_ID);
    assert_null(reason);
    assert_false(mt_x509_cert_is_ca(leaf, length));
    assert_true(mt_x509_key_matches_cert(fixture->workload_key, leaf, length));
    assert_false(mt_x509_key_matches_cert(fixture->ca_key, leaf, length));

    time_t not_before = 0;
    time_t not_after = 0;
    assert_true(mt_result_is_ok(mt_x509_cert_validity(leaf, length, &not_before, &not_after)));
    assert_int_equal(not_before, base_time);
    assert_int_equal(not_after, base_time + 86400);
}

static void test_leaf_issue_csr_claiming_other_id_ignored(void **state)
{
    struct fixture *fixture = *state;
    uint8_t csr[MT_X509_CSR_DER_MAX];
    size_t csr_length = read_data("csr-claims-admin.der", csr, sizeof(csr));
    uint8_t leaf[MT_X509_CERT_DER_MAX];
    size_t length = 0;
    assert_true(
        mt_result_is_ok(issue(fixture, csr, csr_length, AGENT_ID, leaf, sizeof(leaf), &length)));
    char id[MT_SPIFFE_ID_MAX + 1];
    assert_true(mt_result_is_ok(mt_x509_svid_check(leaf, length, id, sizeof(id), NULL)));
    assert_string_equal(id, AGENT_ID);
    assert_null(memmem(leaf, length, "admin", 5));
}

static void test_leaf_issue_tampered_csr_rejected(void **state)
{
    struct fixture *fixture = *state;
    uint8_t csr[MT_X509_CSR_DER_MAX];
    memcpy(csr, fixture->csr, fixture->csr_length);
    /* A byte of the signature value, which ends the CSR. */
    csr[fixture->csr_length - 3] ^= 0x01;
    uint8_t leaf[MT_X509_CERT_DER_MAX];
    size_t length = 0;
    assert_int_equal(
        issue(fixture, csr, fixture->csr_length, AGENT_ID, leaf, sizeof(leaf), &length).error,
        MT_ERR_CERT_PARSE);
}

static void test_leaf_issue_csr_with_swapped_key_rejected(void **state)
{
    struct fixture *fixture = *state;
    /* The workload's CSR with another public key put in: a claim to a key it cannot prove. */
    struct mt_x509_key *other = NULL;
    uint8_t other_csr[MT_X509_CSR_DER_MAX];
    size_t other_length = 0;
    assert_true(mt_result_is_ok(mt_x509_key_generate(&other)));
    assert_true(
        mt_result_is_ok(mt_x509_csr_create(other, other_csr, sizeof(other_csr), &other_length)));
    uint8_t csr[MT_X509_CSR_DER_MAX];
    memcpy(csr, fixture->csr, fixture->csr_length);
    /* The public key is BIT STRING { 0 unused bits, 0x04 X Y }: 03 42 00 04, then 64 bytes. */
    static const uint8_t point_header[] = {0x03, 0x42, 0x00, 0x04};
    uint8_t *mine = memmem(csr, fixture->csr_length, point_header, sizeof(point_header));
    const uint8_t *theirs = memmem(other_csr, other_length, point_header, sizeof(point_header));
    assert_non_null(mine);
    assert_non_null(theirs);
    memcpy(mine + sizeof(point_header), theirs + sizeof(point_header), 64);
    uint8_t leaf[MT_X509_CERT_DER_MAX];
    size_t length = 0;
    assert_int_equal(
        issue(fixture, csr, fixture->csr_length, AGENT_ID, leaf, sizeof(leaf), &length).error,
        MT_ERR_CERT_PARSE);
    mt_x509_key_free(other);
}

static void test_leaf_issue_p384_csr_rejected(void **state)
{
    struct fixture *fixture = *state;
    uint8_t csr[MT_X509_CSR_DER_MAX];
    size_t csr_length = read_data("csr-p384.der", csr, sizeof(csr));
    uint8_t leaf[MT_X509_CERT_DER_MAX];
    size_t length = 0;
    assert_int_equal(issue(fixture, csr, csr_length, AGENT_ID, leaf, sizeof(leaf), &length).error,
                     MT_ERR_CERT_PARSE);
}

static void test_leaf_issue_garbage_csr_rejected(void **state)
{
    struct fixture *fixture = *state;
    static const uint8_t garbage[] = {0x30, 0x03, 0x02, 0x01, 0x00};
    uint8_t leaf[MT_X509_CERT_DER_MAX];
    size_t length = 0;
    assert_int_equal(
        issue(fixture, garbage, sizeof(garbage), AGENT_ID, leaf, sizeof(leaf), &length).error,
        MT_ERR_CERT_PARSE);
}

static void test_leaf_issue_invalid_spiffe_id_rejected(void **state)
{
    struct fixture *fixture = *state;
    uint8_t leaf[MT_X509_CERT_DER_MAX];
    size_t length = 0;
    assert_int_equal(issue(fixture, fixture->csr, fixture->csr_length, "https://example.org/a",
                           leaf, sizeof(leaf), &length)
                         .error,
                     MT_ERR_SPIFFE_ID);
    assert_int_equal(issue(fixture, fixture->csr, fixture->csr_length, "spiffe://meshtls.local/a/",
                           leaf, sizeof(leaf), &length)
                         .error,
                     MT_ERR_SPIFFE_ID);
}

static void test_leaf_issue_ca_key_not_matching_ca_rejected(void **state)
{
    struct fixture *fixture = *state;
    uint8_t leaf[MT_X509_CERT_DER_MAX];
    size_t length = 0;
    assert_false(mt_result_is_ok(mt_x509_leaf_issue(
        fixture->csr, fixture->csr_length, AGENT_ID, fixture->ca_der, fixture->ca_length,
        fixture->workload_key, base_time, base_time + 86400, leaf, sizeof(leaf), &length)));
}

static void test_leaf_issue_non_ca_issuer_rejected(void **state)
{
    struct fixture *fixture = *state;
    uint8_t leaf[MT_X509_CERT_DER_MAX];
    size_t leaf_length = 0;
    assert_true(mt_result_is_ok(issue(fixture, fixture->csr, fixture->csr_length, AGENT_ID, leaf,
                                      sizeof(leaf), &leaf_length)));
    /* A workload holding its own leaf and key must not be able to sign with them. */
    uint8_t grandchild[MT_X509_CERT_DER_MAX];
    size_t length = 0;
    assert_false(mt_result_is_ok(mt_x509_leaf_issue(
        fixture->csr, fixture->csr_length, AGENT_ID, leaf, leaf_length, fixture->workload_key,
        base_time, base_time + 86400, grandchild, sizeof(grandchild), &length)));
}

static void test_signer_issue_many_leaves_each_a_valid_svid_for_its_key(void **state)
{
    struct fixture *fixture = *state;
    struct mt_x509_signer *signer = NULL;
    assert_true(mt_result_is_ok(
        mt_x509_signer_new(fixture->ca_der, fixture->ca_length, fixture->ca_key, &signer)));
    uint8_t first[MT_X509_CERT_DER_MAX];
    size_t first_length = 0;
    for (int i = 0; i < 3; i++) {
        struct mt_x509_key *key = NULL;
        uint8_t csr[MT_X509_CSR_DER_MAX];
        size_t csr_length = 0;
        uint8_t leaf[MT_X509_CERT_DER_MAX];
        size_t length = 0;
        char id[MT_SPIFFE_ID_MAX + 1];
        assert_true(mt_result_is_ok(mt_x509_key_generate(&key)));
        assert_true(mt_result_is_ok(mt_x509_csr_create(key, csr, sizeof(csr), &csr_length)));
        assert_true(
            mt_result_is_ok(mt_x509_signer_issue(signer, csr, csr_length, AGENT_ID, base_time,
                                                 base_time + 86400, leaf, sizeof(leaf), &length)));
        assert_true(mt_result_is_ok(mt_x509_svid_check(leaf, length, id, sizeof(id), NULL)));
        assert_string_equal(id, AGENT_ID);
        assert_true(mt_x509_key_matches_cert(key, leaf, length));
        /* A generator kept between leaves still gives each its own serial and signature. */
        if (i == 0) {
            memcpy(first, leaf, length);
            first_length = length;
        } else {
            assert_false(length == first_length && memcmp(first, leaf, length) == 0);
        }
        mt_x509_key_free(key);
    }
    /* The CSR is checked on every leaf, as mt_x509_leaf_issue checks it. */
    uint8_t bad[MT_X509_CSR_DER_MAX];
    memcpy(bad, fixture->csr, fixture->csr_length);
    bad[fixture->csr_length - 1] ^= 0x01;
    uint8_t leaf[MT_X509_CERT_DER_MAX];
    size_t length = 0;
    assert_false(
        mt_result_is_ok(mt_x509_signer_issue(signer, bad, fixture->csr_length, AGENT_ID, base_time,
                                             base_time + 86400, leaf, sizeof(leaf), &length)));
    mt_x509_signer_free(signer);
}

static void test_signer_new_key_not_matching_ca_rejected(void **state)
{
    struct fixture *fixture = *state;
    struct mt_x509_signer *signer = NULL;
    assert_int_equal(
        mt_x509_signer_new(fixture->ca_der, fixture->ca_length, fixture->workload_key, &signer)
            .error,
        MT_ERR_INVALID_ARGUMENT);
    assert_null(signer);
}

static void test_leaf_issue_small_buffer_too_long(void **state)
{
    struct fixture *fixture = *state;
    uint8_t leaf[128];
    size_t length = 0;
    assert_int_equal(
        issue(fixture, fixture->csr, fixture->csr_length, AGENT_ID, leaf, sizeof(leaf), &length)
            .error,
        MT_ERR_TOO_LONG);
}

static void test_leaf_issue_longest_id_fits(void **state)
{
    struct fixture *fixture = *state;
    char id[MT_SPIFFE_ID_MAX + 1];
    int prefix = snprintf(id, sizeof(id), "spiffe://%s/", TRUST_DOMAIN);
    memset(id + prefix, 'a', MT_SPIFFE_ID_MAX - (size_t)prefix);
    id[MT_SPIFFE_ID_MAX] = '\0';
    uint8_t leaf[MT_X509_CERT_DER_MAX];
    size_t length = 0;
    assert_true(mt_result_is_ok(
        issue(fixture, fixture->csr, fixture->csr_length, id, leaf, sizeof(leaf), &length)));
    char read_back[MT_SPIFFE_ID_MAX + 1];
    assert_true(
        mt_result_is_ok(mt_x509_svid_check(leaf, length, read_back, sizeof(read_back), NULL)));
    assert_string_equal(read_back, id);
}

/* ----------------------------------------------------------------------------------------- */
/* SVID checks on certificates from elsewhere */

static void expect_svid_refused(const char *fixture_name, const char *expected_reason)
{
    uint8_t der[MT_X509_CERT_DER_MAX];
    size_t length = read_cert_fixture(fixture_name, der, sizeof(der));
    char id[MT_SPIFFE_ID_MAX + 1];
    const char *reason = NULL;
    assert_int_equal(mt_x509_svid_check(der, length, id, sizeof(id), &reason).error, MT_ERR_SVID);
    assert_non_null(reason);
    assert_string_equal(reason, expected_reason);
}

static void test_svid_check_two_uri_sans_rejected(void **state)
{
    (void)state;
    expect_svid_refused("leaf-two-uri.pem", "more than one URI SAN");
}

static void test_svid_check_no_uri_san_rejected(void **state)
{
    (void)state;
    expect_svid_refused("leaf-no-uri.pem", "no URI SAN");
}

static void test_svid_check_non_spiffe_uri_rejected(void **state)
{
    (void)state;
    expect_svid_refused("leaf-http-uri.pem", "URI SAN is not a valid SPIFFE ID");
}

static void test_svid_check_no_key_usage_rejected(void **state)
{
    (void)state;
    expect_svid_refused("leaf-no-ku.pem", "no keyUsage digitalSignature");
}

static void test_svid_check_key_encipherment_only_rejected(void **state)
{
    (void)state;
    expect_svid_refused("leaf-key-enc.pem", "no keyUsage digitalSignature");
}

static void test_svid_check_cert_sign_on_leaf_rejected(void **state)
{
    (void)state;
    expect_svid_refused("leaf-cert-sign.pem", "keyUsage allows signing certificates or CRLs");
}

static void test_svid_check_ca_rejected(void **state)
{
    struct fixture *fixture = *state;
    char id[MT_SPIFFE_ID_MAX + 1];
    const char *reason = NULL;
    assert_int_equal(
        mt_x509_svid_check(fixture->ca_der, fixture->ca_length, id, sizeof(id), &reason).error,
        MT_ERR_SVID);
    assert_string_equal(reason, "marked CA");
}

static void test_svid_check_uri_beside_dns_accepted(void **state)
{
    (void)state;
    uint8_t der[MT_X509_CERT_DER_MAX];
    size_t length = read_cert_fixture("leaf-uri-dns.pem", der, sizeof(der));
    char id[MT_SPIFFE_ID_MAX + 1];
    assert_true(mt_result_is_ok(mt_x509_svid_check(der, length, id, sizeof(id), NULL)));
    assert_string_equal(id, "spiffe://example.org/a");
}

static void test_svid_check_garbage_rejected(void **state)
{
    (void)state;
    static const uint8_t garbage[] = {0x30, 0x82, 0xff, 0xff, 0x01};
    char id[MT_SPIFFE_ID_MAX + 1];
    const char *reason = NULL;
    assert_false(
        mt_result_is_ok(mt_x509_svid_check(garbage, sizeof(garbage), id, sizeof(id), &reason)));
    assert_string_equal(reason, "certificate does not parse");
}

static void test_svid_check_small_id_buffer_too_long(void **state)
{
    struct fixture *fixture = *state;
    uint8_t leaf[MT_X509_CERT_DER_MAX];
    size_t length = 0;
    assert_true(mt_result_is_ok(
        issue(fixture, fixture->csr, fixture->csr_length, AGENT_ID, leaf, sizeof(leaf), &length)));
    char id[8];
    assert_int_equal(mt_x509_svid_check(leaf, length, id, sizeof(id), NULL).error, MT_ERR_TOO_LONG);
}

static void test_cert_spiffe_id_two_uris_rejected(void **state)
{
    (void)state;
    uint8_t der[MT_X509_CERT_DER_MAX];
    size_t length = read_cert_fixture("leaf-two-uri.pem", der, sizeof(der));
    char id[MT_SPIFFE_ID_MAX + 1];
    assert_int_equal(mt_x509_cert_spiffe_id(der, length, id, sizeof(id)).error, MT_ERR_SVID);
}

/* ----------------------------------------------------------------------------------------- */
/* Encodings */

static void test_cert_der_to_pem_round_trip_same_bytes(void **state)
{
    struct fixture *fixture = *state;
    char pem[MT_X509_CERT_PEM_MAX];
    size_t pem_length = 0;
    assert_true(mt_result_is_ok(mt_x509_cert_der_to_pem(fixture->ca_der, fixture->ca_length, pem,
                                                        sizeof(pem), &pem_length)));
    assert_int_equal(strlen(pem), pem_length);
    assert_non_null(strstr(pem, "-----BEGIN CERTIFICATE-----"));
    uint8_t der[MT_X509_CERT_DER_MAX];
    size_t length = 0;
    assert_true(
        mt_result_is_ok(mt_x509_cert_pem_to_der(pem, pem_length, der, sizeof(der), &length)));
    assert_int_equal(length, fixture->ca_length);
    assert_memory_equal(der, fixture->ca_der, length);
}

static void test_cert_pem_to_der_not_pem_rejected(void **state)
{
    (void)state;
    static const char text[] = "not a certificate\n";
    uint8_t der[MT_X509_CERT_DER_MAX];
    size_t length = 0;
    assert_false(
        mt_result_is_ok(mt_x509_cert_pem_to_der(text, strlen(text), der, sizeof(der), &length)));
}

static void test_cert_validity_garbage_rejected(void **state)
{
    (void)state;
    static const uint8_t garbage[] = {0x01, 0x02, 0x03};
    time_t not_before = 0;
    time_t not_after = 0;
    assert_false(
        mt_result_is_ok(mt_x509_cert_validity(garbage, sizeof(garbage), &not_before, &not_after)));
    assert_false(mt_x509_cert_is_ca(garbage, sizeof(garbage)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_generate_twice_different_keys),
        cmocka_unit_test(test_key_and_csr_create_csr_of_the_new_key_each_key_new),
        cmocka_unit_test(test_key_to_pem_read_back_same_key),
        cmocka_unit_test(test_key_to_pem_small_buffer_too_long),
        cmocka_unit_test(test_key_to_der_p256_sec1_encoding),
        cmocka_unit_test(test_key_from_pem_pkcs8_accepted),
        cmocka_unit_test(test_key_from_pem_p384_rejected),
        cmocka_unit_test(test_key_from_pem_garbage_rejected),
        cmocka_unit_test(test_key_from_pem_failure_leaves_nothing_to_free),
        cmocka_unit_test(test_ca_create_valid_ca_names_trust_domain),
        cmocka_unit_test(test_ca_create_invalid_trust_domain_rejected),
        cmocka_unit_test(test_ca_create_after_2049_generalized_time_exact),
        cmocka_unit_test(test_ca_create_reversed_validity_rejected),
        cmocka_unit_test(test_leaf_issue_valid_csr_svid_for_given_id),
        cmocka_unit_test(test_leaf_issue_csr_claiming_other_id_ignored),
        cmocka_unit_test(test_leaf_issue_tampered_csr_rejected),
        cmocka_unit_test(test_leaf_issue_csr_with_swapped_key_rejected),
        cmocka_unit_test(test_leaf_issue_p384_csr_rejected),
        cmocka_unit_test(test_leaf_issue_garbage_csr_rejected),
        cmocka_unit_test(test_leaf_issue_invalid_spiffe_id_rejected),
        cmocka_unit_test(test_leaf_issue_ca_key_not_matching_ca_rejected),
        cmocka_unit_test(test_leaf_issue_non_ca_issuer_rejected),
        cmocka_unit_test(test_leaf_issue_small_buffer_too_long),
        cmocka_unit_test(test_signer_issue_many_leaves_each_a_valid_svid_for_its_key),
        cmocka_unit_test(test_signer_new_key_not_matching_ca_rejected),
        cmocka_unit_test(test_leaf_issue_longest_id_fits),
        cmocka_unit_test(test_svid_check_two_uri_sans_rejected),
        cmocka_unit_test(test_svid_check_no_uri_san_rejected),
        cmocka_unit_test(test_svid_check_non_spiffe_uri_rejected),
        cmocka_unit_test(test_svid_check_no_key_usage_rejected),
        cmocka_unit_test(test_svid_check_key_encipherment_only_rejected),
        cmocka_unit_test(test_svid_check_cert_sign_on_leaf_rejected),
        cmocka_unit_test(test_svid_check_ca_rejected),
        cmocka_unit_test(test_svid_check_uri_beside_dns_accepted),
        cmocka_unit_test(test_svid_check_garbage_rejected),
        cmocka_unit_test(test_svid_check_small_id_buffer_too_long),
        cmocka_unit_test(test_cert_spiffe_id_two_uris_rejected),
        cmocka_unit_test(test_cert_der_to_pem_round_trip_same_bytes),
        cmocka_unit_test(test_cert_pem_to_der_not_pem_rejected),
        cmocka_unit_test(test_cert_validity_garbage_rejected),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
