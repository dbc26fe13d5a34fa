/*
 * The agent's certificate authority: a development root it creates on first start in the state
 * directory, or finds there on the next (DIR/ca.crt, PEM 0644, and DIR/ca.key, PEM 0600), and
 * the leaf X.509-SVIDs it signs. The trust domain is the CA's URI SAN, spiffe://<trust domain>.
 *
 * Or an issuer from files, the layout of a cert-manager Kubernetes secret: DIR/tls.crt (the
 * issuing CA certificate, optionally followed by its chain), DIR/tls.key (its P-256 key) and
 * DIR/ca.crt (the root or roots: trust anchors). Leaves are then served with the chain
 * [leaf, tls.crt's certificates that are not anchors] and the bundle ca.crt. Either way, extra
 * anchors (trust rotation) are appended to the bundle.
 *
 * The CA key lives in memory only inside struct mt_ca and is wiped by mt_ca_cleanup.
 */
#ifndef MT_AGENT_CA_H
#define MT_AGENT_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../util/spiffe.h"
#include "../tls/x509.h"
#include "../util/text.h"

/* How long a dev CA created here is valid. */
#define MT_CA_LIFETIME_SECONDS (10 * 365 * 24 * 3600L)
/* How far a leaf's notBefore is set in the past, for callers whose clocks run a little behind. */
#define MT_CA_BACKDATE_SECONDS 300

/* Certificates after the leaf in a served chain, and anchors in a bundle (protocol limits). */
#define MT_CA_CHAIN_MAX 3
#define MT_CA_ANCHORS_MAX 8

struct mt_ca_cert {
    uint8_t der[MT_X509_CERT_DER_MAX];
    size_t length;
};

struct mt_ca {
    struct mt_x509_key *key;
    struct mt_x509_signer *signer; /* key and cert_der, checked once per load (tls/x509.h) */
    uint8_t cert_der[MT_X509_CERT_DER_MAX]; /* the certificate that signs leaves */
    size_t cert_length;
    struct mt_ca_cert chain[MT_CA_CHAIN_MAX]; /* sent after the leaf (empty for the dev CA) */
    size_t chain_length;
    struct mt_ca_cert anchors[MT_CA_ANCHORS_MAX]; /* the trust bundle */
    size_t anchor_count;
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
                               struct mt_ca *ca, bool *created, struct mt_text *reason);

/*
 * Loads the issuer in directory (tls.crt, tls.key, ca.crt; see above). Refuses, with a one-line
 * message, a key that does not match the certificate, a certificate that is not a CA, one that
 * has expired or is not yet valid, one whose SPIFFE URI SAN names another trust domain, and more
 * certificates than the protocol carries.
 */
MT_RESULT mt_ca_load_issuer_dir(const char *directory, const char *trust_domain, time_t now,
                                struct mt_ca *ca, struct mt_text *reason);

/*
 * Appends every certificate of a PEM file to the bundle, skipping ones already there. A file
 * without any certificate is accepted only when the bundle already holds an anchor.
 */
MT_RESULT mt_ca_add_anchor_file(struct mt_ca *ca, const char *path, struct mt_text *reason);

/* Wipes the key and the signer; the struct can be loaded again. Safe on a zeroed or half-loaded
 * struct. */
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
