/*
 * The agent's certificate authority: a development root it creates on first start in the state
 * directory, or finds there on the next (DIR/ca.crt, PEM 0644, and DIR/ca.key, PEM 0600), and
 * the leaf X.509-SVIDs it signs. The trust domain is the CA's URI SAN, spiffe://<trust domain>.
 *
 * The CA key lives in memory only inside struct mt_ca and is wiped by mt_ca_cleanup.
 */
#ifndef MT_AGENT_CA_H
#define MT_AGENT_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../identity/spiffe.h"
#include "../tls/x509.h"
#include "../util/result.h"

/* How long a dev CA created here is valid. */
#define MT_CA_LIFETIME_SECONDS (10 * 365 * 24 * 3600L)
/* How far a leaf's notBefore is set in the past, for callers whose clocks run a little behind. */
#define MT_CA_BACKDATE_SECONDS 300

struct mt_ca {
    struct mt_x509_key *key;
    uint8_t cert_der[MT_X509_CERT_DER_MAX];
    size_t cert_length;
    time_t not_after;
    char trust_domain[MT_SPIFFE_TRUST_DOMAIN_MAX + 1];
    char cert_path[4096];
};

/*
 * Loads the CA in state_dir, or creates one for trust_domain when the directory holds none (the
 * directory itself is created 0700 when missing). Refuses, with a one-line message saying what to
 * do, a CA for another trust domain, an expired CA, a key that does not match the certificate,
 * a ca.key readable by anyone but its owner, and a directory holding only one of the two files.
 * *created tells which happened.
 */
MT_RESULT mt_ca_load_or_create(const char *state_dir, const char *trust_domain, time_t now,
                               struct mt_ca *ca, bool *created, char *message, size_t message_size);

/* Wipes the key; the struct can be loaded again. Safe on a zeroed or half-loaded struct. */
void mt_ca_cleanup(struct mt_ca *ca);

/*
 * Signs a leaf for spiffe_id with the CSR's key: valid from now − MT_CA_BACKDATE_SECONDS for
 * lifetime seconds, but never past the CA's own expiry. *not_after receives the leaf's expiry.
 * MT_ERR_CERT_PARSE means the CSR itself is bad (unparsable, bad signature, not P-256).
 */
MT_RESULT mt_ca_issue(const struct mt_ca *ca, const uint8_t *csr_der, size_t csr_length,
                      const char *spiffe_id, time_t now, uint32_t lifetime_seconds, uint8_t *der,
                      size_t capacity, size_t *length, time_t *not_after);

#endif
