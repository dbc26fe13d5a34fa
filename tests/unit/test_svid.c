/*
 * The SPIFFE standards, rule by rule: one table row per MUST and per explicit MAY of the
 * SPIFFE-ID standard (section 2) and of the X509-SVID standard (sections 2-5), each citing its
 * section (github.com/spiffe/spiffe, standards/SPIFFE-ID.md and standards/X509-SVID.md).
 *
 * SPIFFE IDs are tried as text through mt_spiffe_id_parse, and again inside certificates where the
 * rule concerns the certificate. Certificates come from tests/data/svid/make.sh (the openssl
 * command line), each breaking, or using the freedom of, exactly one rule; our own issuing code
 * could not make most of them. A certificate row is tried through the same functions a workload
 * (mt_x509_svid_check) and the agent (mt_x509_signing_check, mt_x509_leaf_issue) use, and every
 * signing-certificate row is also tried as the issuer of a leaf: the agent signs with it exactly
 * when the row says it is valid, so a check the issuance skips cannot pass.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/spiffe.h"
#include "tls/credentials.h"
#include "tls/tls.h"
#include "tls/x509.h"

#define FILE_MAX 8192

/* 2026-01-01T00:00:00Z: inside every fixture's validity. */
static const time_t base_time = 1767225600;

/* ----------------------------------------------------------------------------------------- */
/* SPIFFE-ID standard, section 2, on the text of an ID */

struct id_rule {
    const char *rule;
    const char *id;
    bool valid;
};

static const struct id_rule id_rules[] = {
    {"SPIFFE-ID 2: a valid ID is accepted", "spiffe://example.org/ns/web/sa/front-end_1.v2", true},
    {"SPIFFE-ID 2: the scheme MUST be spiffe", "https://example.org/web", false},
    {"SPIFFE-ID 2: the scheme MUST be spiffe (one spelling, lowercase)", "SPIFFE://example.org/web",
     false},
    {"SPIFFE-ID 2: the trust domain MUST NOT be empty", "spiffe:///web", false},
    {"SPIFFE-ID 2: no query component", "spiffe://example.org/web?x=1", false},
    {"SPIFFE-ID 2: no fragment component", "spiffe://example.org/web#x", false},
    {"SPIFFE-ID 2: the path is optional (a trust domain's own ID)", "spiffe://example.org", true},
    {"SPIFFE-ID 2.1: host MUST NOT be empty", "spiffe://", false},
    {"SPIFFE-ID 2.1: userinfo MUST be empty", "spiffe://user@example.org/web", false},
    {"SPIFFE-ID 2.1: port MUST be empty", "spiffe://example.org:8443/web", false},
    {"SPIFFE-ID 2.1: the ':' delimiter MUST NOT be present", "spiffe://example.org:/web", false},
    {"SPIFFE-ID 2.1: host MUST be lowercase", "spiffe://Example.org/web", false},
    {"SPIFFE-ID 2.1: host only [a-z0-9.-_]", "spiffe://exa$mple.org/web", false},
    {"SPIFFE-ID 2.1: host of [a-z0-9.-_] is accepted", "spiffe://a-b_c.9/web", true},
    {"SPIFFE-ID 2.1: host MUST NOT be percent-encoded", "spiffe://ex%61mple.org/web", false},
    {"SPIFFE-ID 2.1: IPv4 dotted quad is a trust domain like any", "spiffe://10.0.0.1/web", true},
    {"SPIFFE-ID 2.1: IPv6 is excluded", "spiffe://[::1]/web", false},
    {"SPIFFE-ID 2.2: path MUST NOT be percent-encoded", "spiffe://example.org/a%2Fb", false},
    {"SPIFFE-ID 2.2: no empty segment", "spiffe://example.org/a//b", false},
    {"SPIFFE-ID 2.2: no '.' segment", "spiffe://example.org/a/./b", false},
    {"SPIFFE-ID 2.2: no '..' segment", "spiffe://example.org/a/../b", false},
    {"SPIFFE-ID 2.2: dots inside a segment are letters", "spiffe://example.org/a..b/.c", true},
    {"SPIFFE-ID 2.2: no trailing '/'", "spiffe://example.org/web/", false},
    {"SPIFFE-ID 2.2: no trailing '/' on the trust domain", "spiffe://example.org/", false},
    {"SPIFFE-ID 2.2: segments only [a-zA-Z0-9.-_]", "spiffe://example.org/we b", false},
    {"SPIFFE-ID 2.2: segments MAY hold uppercase", "spiffe://example.org/Web/API", true},
    {"SPIFFE-ID 2.2: paths MAY be hierarchical", "spiffe://example.org/a/b/c/d", true},
};

static void test_spiffe_id_parse_each_rule_as_the_standard_says(void **state)
{
    (void)state;
    size_t failures = 0;
    for (size_t i = 0; i < sizeof(id_rules) / sizeof(id_rules[0]); i++) {
        const struct id_rule *row = &id_rules[i];
        struct mt_spiffe_id parsed;
        bool valid = mt_result_is_ok(mt_spiffe_id_parse(row->id, strlen(row->id), &parsed));
        if (valid != row->valid) {
            print_error("%s: %s was %s\n", row->rule, row->id, valid ? "accepted" : "refused");
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* SPIFFE-ID 2.3: IDs of 2048 bytes MUST be supported; host at most 255 (RFC 3986). */
static void test_spiffe_id_parse_length_limits_as_the_standard_says(void **state)
{
    (void)state;
    char id[MT_SPIFFE_ID_MAX + 2];
    int prefix = snprintf(id, sizeof(id), "spiffe://example.org/");
    memset(id + prefix, 'a', sizeof(id) - (size_t)prefix);
    struct mt_spiffe_id parsed;
    assert_true(mt_result_is_ok(mt_spiffe_id_parse(id, MT_SPIFFE_ID_MAX, &parsed)));
    char domain[MT_SPIFFE_TRUST_DOMAIN_MAX + 2];
    memset(domain, 'a', sizeof(domain));
    assert_true(mt_spiffe_is_valid_trust_domain(domain, MT_SPIFFE_TRUST_DOMAIN_MAX));
    assert_false(mt_spiffe_is_valid_trust_domain(domain, MT_SPIFFE_TRUST_DOMAIN_MAX + 1));
}

/* ----------------------------------------------------------------------------------------- */
/* X509-SVID standard, on certificates */

enum kind { LEAF, SIGNING };

struct cert_rule {
    const char *rule;
    enum kind kind;
    const char *file;
    const char *reason; /* NULL: the certificate is valid */
};

static const struct cert_rule cert_rules[] = {
    /* Leaves: what a workload accepts from a peer and from its agent. */
    {"X509-SVID 2: a leaf with exactly one URI SAN, a SPIFFE ID, is accepted", LEAF,
     "leaf-valid.pem", NULL},
    {"X509-SVID 2: MAY contain other SAN types, DNS SANs included", LEAF, "leaf-dns.pem", NULL},
    {"X509-SVID 2: more than one URI SAN MUST be rejected", LEAF, "leaf-two-uri.pem",
     "more than one URI SAN"},
    {"X509-SVID 2: MUST contain exactly one URI SAN (none)", LEAF, "leaf-no-uri.pem", "no URI SAN"},
    {"X509-SVID 5.2: the scheme MUST be spiffe", LEAF, "leaf-http-uri.pem",
     "URI SAN is not a valid SPIFFE ID"},
    {"X509-SVID 2 with SPIFFE-ID 2.2: no '..' segment", LEAF, "leaf-dot-dot.pem",
     "URI SAN is not a valid SPIFFE ID"},
    {"X509-SVID 2 with SPIFFE-ID 2.2: no percent-encoding", LEAF, "leaf-percent.pem",
     "URI SAN is not a valid SPIFFE ID"},
    {"X509-SVID 2 with SPIFFE-ID 2.1: trust domain lowercase", LEAF, "leaf-upper-domain.pem",
     "URI SAN is not a valid SPIFFE ID"},
    {"X509-SVID 3.1, 5.2: a leaf's SPIFFE ID MUST have a non-root path", LEAF, "leaf-root-id.pem",
     "SPIFFE ID has no path (only a signing certificate's ID may be the bare trust domain)"},
    {"X509-SVID 3.1: without a Subject, the URI SAN MUST be critical", LEAF, "leaf-no-subject.pem",
     "empty subject and a URI SAN not marked critical"},
    {"X509-SVID 3.1: the Subject is not required (with a critical SAN)", LEAF,
     "leaf-no-subject-critical.pem", NULL},
    {"X509-SVID 4.1, 5.2: a leaf MUST set cA to false", LEAF, "leaf-ca-true.pem", "marked CA"},
    {"X509-SVID 4.1 with RFC 5280 4.2.1.9: no basicConstraints is cA false", LEAF, "leaf-no-bc.pem",
     NULL},
    {"X509-SVID 4.3: the key usage extension MUST be set", LEAF, "leaf-no-ku.pem",
     "no keyUsage digitalSignature"},
    {"X509-SVID 4.3: the key usage extension MUST be critical", LEAF, "leaf-ku-not-critical.pem",
     "keyUsage not marked critical"},
    {"X509-SVID 4.3: a leaf MUST set digitalSignature", LEAF, "leaf-key-enc.pem",
     "no keyUsage digitalSignature"},
    {"X509-SVID 4.3: a leaf MAY set keyEncipherment and keyAgreement", LEAF,
     "leaf-ku-agreement.pem", NULL},
    {"X509-SVID 4.3, 5.2: a leaf MUST NOT set keyCertSign", LEAF, "leaf-cert-sign.pem",
     "keyUsage allows signing certificates or CRLs"},
    {"X509-SVID 4.3, 5.2: a leaf MUST NOT set cRLSign", LEAF, "leaf-crl-sign.pem",
     "keyUsage allows signing certificates or CRLs"},
    {"X509-SVID 4.4: an EKU MUST set id-kp-clientAuth", LEAF, "leaf-eku-server.pem",
     "extendedKeyUsage lacks serverAuth or clientAuth"},
    {"X509-SVID 4.4: an EKU MUST set id-kp-serverAuth", LEAF, "leaf-eku-client.pem",
     "extendedKeyUsage lacks serverAuth or clientAuth"},
    {"X509-SVID 4.4: anyExtendedKeyUsage does not stand in for clientAuth", LEAF,
     "leaf-eku-any.pem", "extendedKeyUsage lacks serverAuth or clientAuth"},
    {"X509-SVID 4.4: the EKU is a SHOULD; a leaf without one is valid", LEAF, "leaf-no-eku.pem",
     NULL},
    {"X509-SVID 4.4: the EKU MAY be marked critical", LEAF, "leaf-eku-critical.pem", NULL},
    {"X509-SVID 3.2: a signing certificate MUST NOT be used for authentication", LEAF,
     "ca-valid.pem", "marked CA"},

    /* Signing certificates: what the agent signs with, trusts, and sends after a leaf. */
    {"X509-SVID 3.2, 4.1, 4.3: CA, critical keyCertSign, SPIFFE ID without path: valid", SIGNING,
     "ca-valid.pem", NULL},
    {"X509-SVID 3.2, 4.3: cRLSign is a MAY; keyCertSign alone, no SPIFFE ID (a SHOULD)", SIGNING,
     "ca-cert-sign-only.pem", NULL},
    {"X509-SVID 4.1: a signing certificate MAY set pathLenConstraint", SIGNING,
     "ca-path-length.pem", NULL},
    {"X509-SVID 4.4: a signing certificate MAY include an EKU", SIGNING, "ca-eku.pem", NULL},
    {"X509-SVID 3.2: a signing certificate MAY be in another trust domain", SIGNING,
     "ca-other-domain.pem", NULL},
    {"X509-SVID 4.1: a signing certificate MUST set cA to true", SIGNING, "ca-not-ca.pem",
     "not marked CA (basicConstraints CA:TRUE is required)"},
    {"X509-SVID 4.1: a signing certificate MUST set cA (no basicConstraints)", SIGNING,
     "ca-no-bc.pem", "not marked CA (basicConstraints CA:TRUE is required)"},
    {"X509-SVID 3.2, 4.3: a signing certificate MUST set keyCertSign", SIGNING,
     "ca-no-cert-sign.pem", "no keyUsage keyCertSign"},
    {"X509-SVID 4.3: the key usage extension MUST be set on signing certificates", SIGNING,
     "ca-no-ku.pem", "no keyUsage keyCertSign"},
    {"X509-SVID 4.3: the key usage extension MUST be critical on signing certificates", SIGNING,
     "ca-ku-not-critical.pem", "keyUsage not marked critical"},
    {"X509-SVID 3.2: a signing certificate's SPIFFE ID MUST NOT have a path", SIGNING,
     "ca-id-with-path.pem",
     "SPIFFE ID has a path (a signing certificate's ID is the bare trust domain)"},
    {"X509-SVID 2: a signing certificate that is an SVID has exactly one URI SAN", SIGNING,
     "ca-two-uri.pem", "more than one URI SAN"},
    {"X509-SVID 3.2, 4.1: a leaf is not a signing certificate", SIGNING, "leaf-valid.pem",
     "not marked CA (basicConstraints CA:TRUE is required)"},
};

static size_t read_data(const char *name, uint8_t *buffer, size_t capacity)
{
    const char *directory = getenv("MESHTLS_TEST_DATA");
    assert_non_null(directory);
    char path[4096];
    snprintf(path, sizeof(path), "%s/svid/%s", directory, name);
    FILE *file = fopen(path, "rb");
    if (file == NULL)
        fail_msg("cannot open test data %s", path);
    size_t length = fread(buffer, 1, capacity, file);
    fclose(file);
    assert_true(length > 0 && length < capacity);
    buffer[length] = '\0';
    return length;
}

static size_t read_cert(const char *name, uint8_t *der, size_t capacity)
{
    char pem[FILE_MAX];
    size_t pem_length = read_data(name, (uint8_t *)pem, sizeof(pem));
    size_t length = 0;
    assert_true(mt_result_is_ok(mt_x509_cert_pem_to_der(pem, pem_length, der, capacity, &length)));
    return length;
}

/* The check a row names; its reason, or NULL when the certificate passed. */
static const char *check_row(const struct cert_rule *row, bool *passed)
{
    uint8_t der[MT_X509_CERT_DER_MAX];
    size_t length = read_cert(row->file, der, sizeof(der));
    const char *reason = NULL;
    mt_result result;
    if (row->kind == LEAF) {
        char id[MT_SPIFFE_ID_MAX + 1];
        result = mt_x509_svid_check(der, length, id, sizeof(id), &reason);
    } else {
        result = mt_x509_signing_check(der, length, &reason);
    }
    *passed = mt_result_is_ok(result);
    if (!*passed && result.error != MT_ERR_SVID)
        return "an error other than MT_ERR_SVID";
    return reason;
}

static void test_svid_checks_each_rule_as_the_standard_says(void **state)
{
    (void)state;
    size_t failures = 0;
    for (size_t i = 0; i < sizeof(cert_rules) / sizeof(cert_rules[0]); i++) {
        const struct cert_rule *row = &cert_rules[i];
        bool passed = false;
        const char *reason = check_row(row, &passed);
        bool expected_pass = row->reason == NULL;
        if (passed != expected_pass) {
            print_error("%s (%s): %s\n", row->rule, row->file,
                        passed           ? "accepted"
                        : reason != NULL ? reason
                                         : "refused");
            failures++;
        } else if (!passed && (reason == NULL || strcmp(reason, row->reason) != 0)) {
            print_error("%s (%s): refused as \"%s\", expected \"%s\"\n", row->rule, row->file,
                        reason != NULL ? reason : "(no reason)", row->reason);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* ----------------------------------------------------------------------------------------- */
/* The leaf rules in a handshake */

/* A workload presenting leaf_file (any leaf row: all certify leaf.key) under the fixture root. */
static struct mt_tls_context *fixture_context(const char *leaf_file)
{
    struct mt_credentials *credentials = NULL;
    assert_true(mt_result_is_ok(mt_credentials_new(&credentials)));
    char pem[FILE_MAX];
    size_t pem_length = read_data("leaf.key", (uint8_t *)pem, sizeof(pem));
    struct mt_x509_key *key = NULL;
    assert_true(mt_result_is_ok(mt_x509_key_from_pem(pem, pem_length, &key)));
    assert_true(mt_result_is_ok(mt_credentials_set_key(credentials, key)));
    mt_x509_key_free(key);
    uint8_t der[MT_X509_CERT_DER_MAX];
    size_t length = read_cert(leaf_file, der, sizeof(der));
    assert_true(mt_result_is_ok(mt_credentials_add_chain(credentials, der, length)));
    length = read_cert("root.pem", der, sizeof(der));
    assert_true(mt_result_is_ok(mt_credentials_add_anchor(credentials, der, length)));
    snprintf(credentials->spiffe_id, sizeof(credentials->spiffe_id), "%s",
             "spiffe://example.org/workload");
    snprintf(credentials->trust_domain, sizeof(credentials->trust_domain), "%s", "example.org");
    credentials->not_after = time(NULL) + 3600;
    struct mt_tls_context *context = NULL;
    assert_true(
        mt_result_is_ok(mt_tls_context_new(credentials, 0, MT_POST_QUANTUM_PREFER, &context)));
    mt_credentials_release(credentials);
    return context;
}

static bool is_decided(enum mt_tls_status status)
{
    return status == MT_TLS_OK || status == MT_TLS_ERROR || status == MT_TLS_CLOSED;
}

/*
 * A handshake between a client presenting leaf-valid.pem and a server presenting server_file;
 * the client's reason when it refused the server, NULL when it accepted it.
 */
static const char *client_refusal(const char *server_file, char *reason, size_t capacity)
{
    static const unsigned char destination[] = {2, 0x20, 0xfb, 127, 0, 0, 1};
    struct mt_tls_context *client_context = fixture_context("leaf-valid.pem");
    struct mt_tls_context *server_context = fixture_context(server_file);
    int pair[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    struct mt_tls_session *client = NULL;
    struct mt_tls_session *server = NULL;
    assert_true(
        mt_result_is_ok(mt_tls_session_new(client_context, MT_TLS_CLIENT, pair[0], &client)));
    assert_true(
        mt_result_is_ok(mt_tls_session_new(server_context, MT_TLS_SERVER, pair[1], &server)));
    mt_tls_session_set_destination(client, destination, sizeof(destination));
    enum mt_tls_status client_status = MT_TLS_WANT_READ;
    enum mt_tls_status server_status = MT_TLS_WANT_READ;
    for (int round = 0; round < 1000 && !(is_decided(client_status) && is_decided(server_status));
         round++) {
        if (!is_decided(client_status))
            client_status = mt_tls_handshake(client);
        if (!is_decided(server_status))
            server_status = mt_tls_handshake(server);
    }
    assert_true(is_decided(client_status));
    const char *result = NULL;
    if (client_status != MT_TLS_OK) {
        snprintf(reason, capacity, "%s", mt_tls_error_reason(client));
        result = reason;
    }
    mt_tls_session_free(client);
    mt_tls_session_free(server);
    close(pair[0]);
    close(pair[1]);
    mt_tls_context_release(client_context);
    mt_tls_context_release(server_context);
    return result;
}

/*
 * Every leaf row as the certificate a server presents: the client refuses it with the row's
 * reason, whichever of wolfSSL's parse and the workload's checks meets the broken rule first
 * (wolfSSL 5.9.2 refuses a leaf with keyCertSign while parsing it; 5.5.4 leaves it to the rules).
 */
static void test_handshake_each_leaf_rule_refused_with_its_reason(void **state)
{
    (void)state;
    size_t failures = 0;
    size_t tried = 0;
    for (size_t i = 0; i < sizeof(cert_rules) / sizeof(cert_rules[0]); i++) {
        const struct cert_rule *row = &cert_rules[i];
        if (row->kind != LEAF)
            continue;
        tried++;
        char reason[256];
        const char *refusal = client_refusal(row->file, reason, sizeof(reason));
        char expected[256];
        snprintf(expected, sizeof(expected), "peer certificate is not a valid X.509-SVID: %s",
                 row->reason != NULL ? row->reason : "");
        if ((refusal == NULL) != (row->reason == NULL) ||
            (refusal != NULL && strcmp(refusal, expected) != 0)) {
            print_error("%s (%s): %s\n", row->rule, row->file,
                        refusal != NULL ? refusal : "accepted");
            failures++;
        }
    }
    assert_true(tried >= 20);
    assert_int_equal(failures, 0);
}

/* ----------------------------------------------------------------------------------------- */
/* The agent's issuance */

static struct mt_x509_key *load_key(const char *name)
{
    char pem[FILE_MAX];
    size_t length = read_data(name, (uint8_t *)pem, sizeof(pem));
    struct mt_x509_key *key = NULL;
    assert_true(mt_result_is_ok(mt_x509_key_from_pem(pem, length, &key)));
    return key;
}

static void make_csr(struct mt_x509_key **key, uint8_t *csr, size_t capacity, size_t *length)
{
    assert_true(mt_result_is_ok(mt_x509_key_generate(key)));
    assert_true(mt_result_is_ok(mt_x509_csr_create(*key, csr, capacity, length)));
}

/* Every signing row as the issuer: the agent signs with it exactly when the row is valid. */
static void test_leaf_issue_each_signing_rule_as_the_standard_says(void **state)
{
    (void)state;
    struct mt_x509_key *signing_key = load_key("signing.key");
    struct mt_x509_key *workload_key = NULL;
    uint8_t csr[MT_X509_CSR_DER_MAX];
    size_t csr_length = 0;
    make_csr(&workload_key, csr, sizeof(csr), &csr_length);
    size_t failures = 0;
    size_t tried = 0;
    for (size_t i = 0; i < sizeof(cert_rules) / sizeof(cert_rules[0]); i++) {
        const struct cert_rule *row = &cert_rules[i];
        /* leaf-valid.pem is not signing.key's certificate: a key mismatch proves nothing. */
        if (row->kind != SIGNING || strncmp(row->file, "ca-", 3) != 0)
            continue;
        tried++;
        uint8_t issuer[MT_X509_CERT_DER_MAX];
        size_t issuer_length = read_cert(row->file, issuer, sizeof(issuer));
        uint8_t leaf[MT_X509_CERT_DER_MAX];
        size_t leaf_length = 0;
        bool issued = mt_result_is_ok(mt_x509_leaf_issue(
            csr, csr_length, "spiffe://example.org/workload", issuer, issuer_length, signing_key,
            base_time, base_time + 3600, leaf, sizeof(leaf), &leaf_length));
        if (issued != (row->reason == NULL)) {
            print_error("%s (%s): the agent %s\n", row->rule, row->file,
                        issued ? "signed with it" : "refused to sign with it");
            failures++;
        }
    }
    assert_true(tried >= 10);
    assert_int_equal(failures, 0);
    mt_x509_key_free(workload_key);
    mt_x509_key_free(signing_key);
}

/* X509-SVID 3.1: the agent never issues a leaf for a bare trust domain (the CA's own ID). */
static void test_leaf_issue_id_without_path_refused(void **state)
{
    (void)state;
    struct mt_x509_key *ca_key = NULL;
    assert_true(mt_result_is_ok(mt_x509_key_generate(&ca_key)));
    uint8_t ca[MT_X509_CERT_DER_MAX];
    size_t ca_length = 0;
    assert_true(mt_result_is_ok(mt_x509_ca_create(ca_key, "example.org", base_time,
                                                  base_time + 86400, ca, sizeof(ca), &ca_length)));
    struct mt_x509_key *workload_key = NULL;
    uint8_t csr[MT_X509_CSR_DER_MAX];
    size_t csr_length = 0;
    make_csr(&workload_key, csr, sizeof(csr), &csr_length);
    uint8_t leaf[MT_X509_CERT_DER_MAX];
    size_t leaf_length = 0;
    assert_int_equal(mt_x509_leaf_issue(csr, csr_length, "spiffe://example.org", ca, ca_length,
                                        ca_key, base_time, base_time + 3600, leaf, sizeof(leaf),
                                        &leaf_length)
                         .error,
                     MT_ERR_SPIFFE_ID);
    mt_x509_key_free(workload_key);
    mt_x509_key_free(ca_key);
}

/* What the agent makes meets every rule above: its dev CA and the leaves it signs with it. */
static void test_ca_create_and_leaf_issue_both_meet_the_standard(void **state)
{
    (void)state;
    struct mt_x509_key *ca_key = NULL;
    assert_true(mt_result_is_ok(mt_x509_key_generate(&ca_key)));
    uint8_t ca[MT_X509_CERT_DER_MAX];
    size_t ca_length = 0;
    assert_true(mt_result_is_ok(mt_x509_ca_create(ca_key, "example.org", base_time,
                                                  base_time + 86400, ca, sizeof(ca), &ca_length)));
    const char *reason = "not checked";
    assert_true(mt_result_is_ok(mt_x509_signing_check(ca, ca_length, &reason)));
    assert_null(reason);

    struct mt_x509_key *workload_key = NULL;
    uint8_t csr[MT_X509_CSR_DER_MAX];
    size_t csr_length = 0;
    make_csr(&workload_key, csr, sizeof(csr), &csr_length);
    uint8_t leaf[MT_X509_CERT_DER_MAX];
    size_t leaf_length = 0;
    assert_true(mt_result_is_ok(mt_x509_leaf_issue(csr, csr_length, "spiffe://example.org/a/b", ca,
                                                   ca_length, ca_key, base_time, base_time + 3600,
                                                   leaf, sizeof(leaf), &leaf_length)));
    char id[MT_SPIFFE_ID_MAX + 1];
    reason = "not checked";
    assert_true(mt_result_is_ok(mt_x509_svid_check(leaf, leaf_length, id, sizeof(id), &reason)));
    assert_null(reason);
    assert_string_equal(id, "spiffe://example.org/a/b");
    assert_false(mt_result_is_ok(mt_x509_signing_check(leaf, leaf_length, NULL)));
    mt_x509_key_free(workload_key);
    mt_x509_key_free(ca_key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spiffe_id_parse_each_rule_as_the_standard_says),
        cmocka_unit_test(test_spiffe_id_parse_length_limits_as_the_standard_says),
        cmocka_unit_test(test_svid_checks_each_rule_as_the_standard_says),
        cmocka_unit_test(test_handshake_each_leaf_rule_refused_with_its_reason),
        cmocka_unit_test(test_leaf_issue_each_signing_rule_as_the_standard_says),
        cmocka_unit_test(test_leaf_issue_id_without_path_refused),
        cmocka_unit_test(test_ca_create_and_leaf_issue_both_meet_the_standard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
