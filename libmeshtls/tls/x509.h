/*
 * X.509 for workload identities: key pairs, CSRs, the agent's CA and leaf X.509-SVIDs.
 *
 * Owns every use of wolfCrypt's certificate API (tls/x509.c and tls/svid.c; tls/ is the only
 * code that includes wolfSSL). Keys are ECDSA P-256 and live only in memory inside struct
 * mt_x509_key, which is wiped before it is freed; the PEM form exists only for the agent's CA key
 * file.
 *
 * Certificates issued here follow the X.509-SVID rules: exactly one URI SAN holding the SPIFFE
 * ID, CA:FALSE, keyUsage digitalSignature (critical), extendedKeyUsage serverAuth+clientAuth,
 * SHA-256 with ECDSA. A leaf's identity is always the one the agent decides: whatever names the
 * CSR asks for are ignored.
 *
 * All DER/PEM outputs go to caller buffers; MT_ERR_TOO_LONG when they do not fit.
 */
#ifndef MT_TLS_X509_H
#define MT_TLS_X509_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../util/result.h"

/* Generous bounds for one P-256 certificate with a 2048-byte SPIFFE ID, and its PEM form. */
#define MT_X509_CERT_DER_MAX 4096
#define MT_X509_CERT_PEM_MAX 6144
#define MT_X509_KEY_DER_MAX 256
#define MT_X509_KEY_PEM_MAX 512
#define MT_X509_CSR_DER_MAX 4096

struct mt_x509_key;

MT_RESULT mt_x509_key_generate(struct mt_x509_key **key);
/* Reads an EC P-256 private key in PEM ("EC PRIVATE KEY" or PKCS#8 "PRIVATE KEY"). */
MT_RESULT mt_x509_key_from_pem(const char *pem, size_t length, struct mt_x509_key **key);
MT_RESULT mt_x509_key_to_pem(const struct mt_x509_key *key, char *pem, size_t capacity,
                             size_t *length);
/* The private key as DER (SEC1 ECPrivateKey), for wolfSSL_CTX_use_PrivateKey_buffer. */
MT_RESULT mt_x509_key_to_der(const struct mt_x509_key *key, uint8_t *der, size_t capacity,
                             size_t *length);
/* True when cert_der's public key is this key's public key. */
bool mt_x509_key_matches_cert(const struct mt_x509_key *key, const uint8_t *cert_der,
                              size_t cert_length);
/* Wipes and frees; NULL is allowed. */
void mt_x509_key_free(struct mt_x509_key *key);

/* A PKCS#10 CSR signed by key, with no subject names (the agent decides the identity). */
MT_RESULT mt_x509_csr_create(const struct mt_x509_key *key, uint8_t *der, size_t capacity,
                             size_t *length);
/* A new key and its CSR (mt_x509_key_generate, then mt_x509_csr_create), from one DRBG. */
MT_RESULT mt_x509_key_and_csr_create(struct mt_x509_key **key, uint8_t *der, size_t capacity,
                                     size_t *length);

/*
 * A self-signed root CA for trust_domain: CA:TRUE, keyCertSign+cRLSign, subject key id, subject
 * "O=meshtls, CN=meshtls dev CA <trust_domain>", and a URI SAN "spiffe://<trust_domain>".
 */
MT_RESULT mt_x509_ca_create(const struct mt_x509_key *ca_key, const char *trust_domain,
                            time_t not_before, time_t not_after, uint8_t *der, size_t capacity,
                            size_t *length);

/*
 * Checks csr_der's self-signature and key type (P-256), then issues a leaf X.509-SVID for
 * spiffe_id with the CSR's public key, signed by ca_key whose certificate is ca_der. Refuses an
 * ID without a path (MT_ERR_SPIFFE_ID) and an issuer that is not a valid signing certificate
 * (MT_ERR_INVALID_ARGUMENT); the leaf made passes mt_x509_svid_check.
 */
MT_RESULT mt_x509_leaf_issue(const uint8_t *csr_der, size_t csr_length, const char *spiffe_id,
                             const uint8_t *ca_der, size_t ca_length,
                             const struct mt_x509_key *ca_key, time_t not_before, time_t not_after,
                             uint8_t *der, size_t capacity, size_t *length);

/*
 * An issuer made ready for many leaves: its certificate and key checked once, as
 * mt_x509_leaf_issue checks them, and a random generator kept for its signatures (instead of one
 * seeded per leaf). It refers to ca_key, which must outlive it; one thread at a time.
 */
struct mt_x509_signer;
MT_RESULT mt_x509_signer_new(const uint8_t *ca_der, size_t ca_length,
                             const struct mt_x509_key *ca_key, struct mt_x509_signer **signer);
/* Wipes and frees; NULL is allowed. */
void mt_x509_signer_free(struct mt_x509_signer *signer);
/* mt_x509_leaf_issue with the signer's issuer: the same checks of the CSR and the ID. */
MT_RESULT mt_x509_signer_issue(struct mt_x509_signer *signer, const uint8_t *csr_der,
                               size_t csr_length, const char *spiffe_id, time_t not_before,
                               time_t not_after, uint8_t *der, size_t capacity, size_t *length);

/*
 * Checks every rule the X.509-SVID standard places on a leaf (its sections 2-5): CA false; keyUsage
 * present, critical, with digitalSignature and neither keyCertSign nor cRLSign; extendedKeyUsage,
 * when present, with serverAuth and clientAuth; exactly one URI SAN, a valid SPIFFE ID with a
 * path; a critical SAN when the subject is empty. Copies the ID into spiffe_id (NUL-terminated).
 * MT_ERR_SVID names no detail; reason (may be NULL) receives a short phrase such as
 * "more than one URI SAN" or "marked CA". Signature and dates are path validation's business.
 */
MT_RESULT mt_x509_svid_check(const uint8_t *der, size_t length, char *spiffe_id, size_t capacity,
                             const char **reason);

/*
 * Checks the rules on an X.509-SVID signing certificate (sections 3.2, 4.1, 4.3): CA true;
 * keyUsage present, critical, with keyCertSign; a URI SAN, if any, is one SPIFFE ID without a
 * path. MT_ERR_SVID, reason as above (e.g. "no keyUsage keyCertSign").
 */
MT_RESULT mt_x509_signing_check(const uint8_t *der, size_t length, const char **reason);

/*
 * The certificate's single URI SAN when it is a valid SPIFFE ID, whatever the certificate's kind
 * (the agent reads its CA's trust domain this way): MT_ERR_SVID when there is none, several, or
 * one that is not a SPIFFE ID.
 */
MT_RESULT mt_x509_cert_spiffe_id(const uint8_t *der, size_t length, char *spiffe_id,
                                 size_t capacity);

/* True when der is a CA certificate (basicConstraints CA:TRUE). */
bool mt_x509_cert_is_ca(const uint8_t *der, size_t length);

/* The certificate's notBefore/notAfter as seconds since the epoch. */
MT_RESULT mt_x509_cert_validity(const uint8_t *der, size_t length, time_t *not_before,
                                time_t *not_after);

/* PEM ("CERTIFICATE") ↔ DER for certificates. pem_to_der reads the first certificate only. */
MT_RESULT mt_x509_cert_pem_to_der(const char *pem, size_t pem_length, uint8_t *der, size_t capacity,
                                  size_t *length);
MT_RESULT mt_x509_cert_der_to_pem(const uint8_t *der, size_t der_length, char *pem, size_t capacity,
                                  size_t *length);

#endif
