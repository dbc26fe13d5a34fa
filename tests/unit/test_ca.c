/* The tests' CA (see test_ca.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "test_ca.h"
#include "util/spiffe.h"

bool test_ca_make(struct test_ca *ca, const char *trust_domain, time_t not_before, time_t not_after)
{
    ca->key = NULL;
    return mt_result_is_ok(mt_x509_key_generate(&ca->key)) &&
           mt_result_is_ok(mt_x509_ca_create(ca->key, trust_domain, not_before, not_after, ca->der,
                                             sizeof(ca->der), &ca->length));
}

void test_ca_free(struct test_ca *ca)
{
    mt_x509_key_free(ca->key);
    ca->key = NULL;
}

struct mt_credentials *test_ca_issue(const struct test_ca *ca, const char *spiffe_id,
                                     time_t not_before, time_t not_after)
{
    struct mt_x509_key *key = NULL;
    uint8_t csr[MT_X509_CSR_DER_MAX];
    size_t csr_length = 0;
    uint8_t leaf[MT_X509_CERT_DER_MAX];
    size_t leaf_length = 0;
    assert_true(mt_result_is_ok(mt_x509_key_generate(&key)));
    assert_true(mt_result_is_ok(mt_x509_csr_create(key, csr, sizeof(csr), &csr_length)));
    assert_true(mt_result_is_ok(mt_x509_leaf_issue(csr, csr_length, spiffe_id, ca->der, ca->length,
                                                   ca->key, not_before, not_after, leaf,
                                                   sizeof(leaf), &leaf_length)));
    struct mt_credentials *credentials = NULL;
    assert_true(mt_result_is_ok(mt_credentials_new(&credentials)));
    assert_true(mt_result_is_ok(mt_credentials_add_chain(credentials, leaf, leaf_length)));
    assert_true(mt_result_is_ok(mt_credentials_add_anchor(credentials, ca->der, ca->length)));
    assert_true(mt_result_is_ok(mt_credentials_set_key(credentials, key)));
    mt_x509_key_free(key);
    struct mt_spiffe_id parsed;
    assert_true(mt_result_is_ok(mt_spiffe_id_parse(spiffe_id, strlen(spiffe_id), &parsed)));
    snprintf(credentials->spiffe_id, sizeof(credentials->spiffe_id), "%s", spiffe_id);
    snprintf(credentials->trust_domain, sizeof(credentials->trust_domain), "%.*s",
             (int)parsed.trust_domain_length, parsed.trust_domain);
    credentials->not_after = not_after;
    credentials->refresh_at = not_after;
    return credentials;
}
