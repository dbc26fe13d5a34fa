/*
 * A CA made in the test, and workload credentials it issues: what test_tls, test_conn and
 * test_identity_client hand to the TLS layer. Every key is generated in the process; nothing is
 * read from disk.
 */
#ifndef MT_TESTS_UNIT_TEST_CA_H
#define MT_TESTS_UNIT_TEST_CA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "tls/credentials.h"
#include "tls/x509.h"

struct test_ca {
    struct mt_x509_key *key;
    uint8_t der[MT_X509_CERT_DER_MAX];
    size_t length;
};

/* A CA for trust_domain, valid from not_before to not_after; false when wolfCrypt fails. */
bool test_ca_make(struct test_ca *ca, const char *trust_domain, time_t not_before,
                  time_t not_after);

void test_ca_free(struct test_ca *ca);

/*
 * Credentials for spiffe_id (a SPIFFE ID in the CA's trust domain, or another to test refusals)
 * with a fresh key, a leaf issued by ca valid from not_before to not_after, and ca as the trust
 * bundle. Fails the running cmocka test on any error.
 */
struct mt_credentials *test_ca_issue(const struct test_ca *ca, const char *spiffe_id,
                                     time_t not_before, time_t not_after);

#endif
