/*
 * X.509 with wolfCrypt's native certificate API: P-256 keys, PKCS#10 CSRs, the agent's CA and
 * the leaf X.509-SVIDs it issues, and reading certificates (dates, keys, encodings). The
 * X.509-SVID rules a certificate is checked against are in tls/svid.c.
 *
 * With tls/svid.c, this file owns every use of wolfCrypt's certificate API outside the TLS
 * sessions; the header exposes no wolfSSL type.
 * It must never log or copy key material: private keys live only inside struct mt_x509_key, which
 * is a secret buffer (util/secret.h: out of core dumps, wiped when freed), and in short-lived
 * DER/PEM buffers that are wiped before they go out of scope; an issuer's kept random generator
 * (struct mt_x509_signer), from which its signatures' nonces come, is a secret buffer too. It must
 * never take an identity from a CSR: a leaf carries exactly the SPIFFE ID its caller decided on.
 *
 * wolfCrypt's functions are not const-correct (a key that is only read is passed as ecc_key *),
 * so const keys are cast once, in key_ecc().
 */
#include <wolfssl/options.h>

#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/spiffe.h"
#include "../util/log.h"
#include "../util/secret.h"
#include "x509.h"
#include "x509_parsed.h"

struct mt_x509_key {
    ecc_key ecc;
};

/* Big enough for the SEC1 DER of a P-256 key, with or without the PKCS#8 wrapper. */
#define KEY_DER_SCRATCH 512
/* P-256 uncompressed point: 0x04 || X || Y. */
#define P256_POINT_SIZE 65

static ecc_key *key_ecc(const struct mt_x509_key *key)
{
    return (ecc_key *)&key->ecc;
}

/* A wolfCrypt return value: negative is an error; BUFFER_E means the caller's buffer is short. */
static mt_result wolf_result(int code, enum mt_error otherwise)
{
    if (code >= 0)
        return MT_OK_RESULT;
    if (code == BUFFER_E)
        return mt_result_of(MT_ERR_TOO_LONG);
    mt_log_debug("wolfCrypt error %d: %s", code, wc_GetErrorString(code));
    return mt_result_of(otherwise);
}

static bool fits_int(size_t length)
{
    return length <= (size_t)INT_MAX;
}

/* ----------------------------------------------------------------------------------------- */
/* Keys */

static MT_RESULT key_new(struct mt_x509_key **key)
{
    /* Not the heap: the decoded scalar would be in every core dump (see util/secret.h). */
    struct mt_x509_key *created = NULL;
    MT_GUARD(mt_secret_alloc(sizeof(*created), (void **)&created));
    if (wc_ecc_init(&created->ecc) != 0) {
        mt_secret_free(created);
        return mt_result_of(MT_ERR_CRYPTO);
    }
    *key = created;
    return MT_OK_RESULT;
}

void mt_x509_key_free(struct mt_x509_key *key)
{
    if (key == NULL)
        return;
    /* wc_ecc_free zeroes the private scalar; mt_secret_free wipes everything else. */
    wc_ecc_free(&key->ecc);
    mt_secret_free(key);
}

/*
 * A wolfSSL built with HAVE_WOLF_BIGINT (Debian's 5.5.4) keeps, beside the scalar, a big-endian
 * copy of it in a heap block of its own (k.raw, for hardware accelerators), alive as long as the
 * key and outside our secret buffer, so in a core dump. Nothing here reads it: wipe and free it.
 */
static void drop_raw_scalar(ecc_key *ecc)
{
#ifdef HAVE_WOLF_BIGINT
    if (ecc->k.raw.buf != NULL) {
        explicit_bzero(ecc->k.raw.buf, ecc->k.raw.len);
        XFREE(ecc->k.raw.buf, ecc->k.raw.heap, DYNAMIC_TYPE_WOLF_BIGINT);
        ecc->k.raw.buf = NULL;
        ecc->k.raw.len = 0;
    }
#else
    (void)ecc;
#endif
}

/* A new P-256 key from rng. */
static MT_RESULT key_generate_with(WC_RNG *rng, struct mt_x509_key **key)
{
    struct mt_x509_key *created = NULL;
    MT_GUARD(key_new(&created));
    mt_result result =
        wolf_result(wc_ecc_make_key_ex(rng, 32, &created->ecc, ECC_SECP256R1), MT_ERR_CRYPTO);
    drop_raw_scalar(&created->ecc);
    if (!mt_result_is_ok(result)) {
        mt_x509_key_free(created);
        return result;
    }
    *key = created;
    return MT_OK_RESULT;
}

MT_RESULT mt_x509_key_generate(struct mt_x509_key **key)
{
    MT_ENSURE_REF(key);
    *key = NULL;
    WC_RNG rng;
    MT_ENSURE(wc_InitRng(&rng) == 0, MT_ERR_CRYPTO);
    mt_result result = key_generate_with(&rng, key);
    wc_FreeRng(&rng);
    return result;
}

/* A private key is accepted only on P-256 and only with its public point, which we compare. */
static MT_RESULT key_check_p256(struct mt_x509_key *key)
{
    MT_ENSURE(key->ecc.dp != NULL && key->ecc.dp->id == ECC_SECP256R1, MT_ERR_CERT_PARSE);
    MT_ENSURE(key->ecc.type == ECC_PRIVATEKEY, MT_ERR_CERT_PARSE);
    MT_GUARD(wolf_result(wc_ecc_check_key(&key->ecc), MT_ERR_CERT_PARSE));
    return MT_OK_RESULT;
}

MT_RESULT mt_x509_key_from_pem(const char *pem, size_t length, struct mt_x509_key **key)
{
    MT_ENSURE_REF(pem);
    MT_ENSURE_REF(key);
    MT_ENSURE(fits_int(length), MT_ERR_TOO_LONG);
    *key = NULL;

    uint8_t der[KEY_DER_SCRATCH];
    struct mt_x509_key *loaded = NULL;
    mt_result result = mt_result_of(MT_ERR_CERT_PARSE);

    int der_length =
        wc_KeyPemToDer((const unsigned char *)pem, (int)length, der, sizeof(der), NULL);
    if (der_length <= 0)
        goto out;
    /* wc_EccPrivateKeyDecode reads SEC1 only; a PKCS#8 "PRIVATE KEY" wraps it. */
    word32 index = 0;
    if (wc_GetPkcs8TraditionalOffset(der, &index, (word32)der_length) < 0)
        index = 0;
    result = key_new(&loaded);
    if (!mt_result_is_ok(result))
        goto out;
    result = wolf_result(wc_EccPrivateKeyDecode(der, &index, &loaded->ecc, (word32)der_length),
                         MT_ERR_CERT_PARSE);
    drop_raw_scalar(&loaded->ecc);
    if (!mt_result_is_ok(result))
        goto out;
    result = key_check_p256(loaded);
    if (!mt_result_is_ok(result))
        goto out;
    *key = loaded;
    loaded = NULL;

out:
    explicit_bzero(der, sizeof(der));
    mt_x509_key_free(loaded);
    return result;
}

MT_RESULT mt_x509_key_to_der(const struct mt_x509_key *key, uint8_t *der, size_t capacity,
                             size_t *length)
{
    MT_ENSURE_REF(key);
    MT_ENSURE_REF(der);
    MT_ENSURE_REF(length);
    word32 bounded = capacity > UINT32_MAX ? UINT32_MAX : (word32)capacity;
    int written = wc_EccKeyToDer(key_ecc(key), der, bounded);
    MT_GUARD(wolf_result(written, MT_ERR_CRYPTO));
    *length = (size_t)written;
    return MT_OK_RESULT;
}

/*
 * DER to PEM with a terminating NUL. wc_DerToPem answers a short buffer with BAD_FUNC_ARG, like
 * any other misuse, so the size is asked for first to tell "too long" apart.
 */
static MT_RESULT der_to_pem(const uint8_t *der, size_t der_length, int type, char *pem,
                            size_t capacity, size_t *length)
{
    MT_ENSURE(der_length <= UINT32_MAX, MT_ERR_TOO_LONG);
    int needed = wc_DerToPem(der, (word32)der_length, NULL, 0, type);
    MT_GUARD(wolf_result(needed, MT_ERR_CRYPTO));
    MT_ENSURE((size_t)needed < capacity, MT_ERR_TOO_LONG);
    int written = wc_DerToPem(der, (word32)der_length, (byte *)pem, (word32)needed, type);
    MT_GUARD(wolf_result(written, MT_ERR_CRYPTO));
    MT_ENSURE(written > 0 && written <= needed, MT_ERR_CRYPTO);
    pem[written] = '\0';
    *length = (size_t)written;
    return MT_OK_RESULT;
}

MT_RESULT mt_x509_key_to_pem(const struct mt_x509_key *key, char *pem, size_t capacity,
                             size_t *length)
{
    MT_ENSURE_REF(key);
    MT_ENSURE_REF(pem);
    MT_ENSURE_REF(length);
    MT_ENSURE(capacity > 0, MT_ERR_TOO_LONG);

    uint8_t der[KEY_DER_SCRATCH];
    size_t der_length = 0;
    mt_result result = mt_x509_key_to_der(key, der, sizeof(der), &der_length);
    if (!mt_result_is_ok(result))
        goto out;
    result = der_to_pem(der, der_length, ECC_PRIVATEKEY_TYPE, pem, capacity, length);

out:
    explicit_bzero(der, sizeof(der));
    return result;
}

/* The uncompressed public point of an ecc_key, for comparisons. */
static MT_RESULT public_point(ecc_key *ecc, uint8_t point[P256_POINT_SIZE])
{
    word32 size = P256_POINT_SIZE;
    MT_GUARD(wolf_result(wc_ecc_export_x963(ecc, point, &size), MT_ERR_CRYPTO));
    MT_ENSURE(size == P256_POINT_SIZE, MT_ERR_CRYPTO);
    return MT_OK_RESULT;
}

/* ----------------------------------------------------------------------------------------- */
/* Parsing certificates and CSRs */

MT_RESULT mt_x509_parse(struct mt_x509_parsed *parsed, const uint8_t *der, size_t length, int type,
                        int verify)
{
    /* Initialised before any check so that mt_x509_parsed_free() is valid on every path. */
    bool too_long = length > UINT32_MAX;
    wc_InitDecodedCert(&parsed->decoded, der, too_long ? 0 : (word32)length, NULL);
    parsed->wolfcrypt_error = 0;
    MT_ENSURE(!too_long, MT_ERR_TOO_LONG);
    parsed->wolfcrypt_error = wc_ParseCert(&parsed->decoded, type, verify, NULL);
    MT_GUARD(wolf_result(parsed->wolfcrypt_error, MT_ERR_CERT_PARSE));
    return MT_OK_RESULT;
}

void mt_x509_parsed_free(struct mt_x509_parsed *parsed)
{
    wc_FreeDecodedCert(&parsed->decoded);
}

static bool parsed_is_p256(const struct mt_x509_parsed *parsed)
{
    return parsed->decoded.keyOID == ECDSAk && parsed->decoded.pkCurveOID == ECC_SECP256R1_OID;
}

/* The subject public key of a parsed certificate or CSR, as a public-only ecc_key. */
static MT_RESULT parsed_public_key(struct mt_x509_parsed *parsed, ecc_key *ecc)
{
    MT_ENSURE(parsed_is_p256(parsed), MT_ERR_CERT_PARSE);
    uint8_t spki[256];
    word32 spki_length = sizeof(spki);
    MT_GUARD(wolf_result(wc_GetPubKeyDerFromCert(&parsed->decoded, spki, &spki_length),
                         MT_ERR_CERT_PARSE));
    word32 index = 0;
    MT_GUARD(wolf_result(wc_EccPublicKeyDecode(spki, &index, ecc, spki_length), MT_ERR_CERT_PARSE));
    MT_ENSURE(ecc->dp != NULL && ecc->dp->id == ECC_SECP256R1, MT_ERR_CERT_PARSE);
    return MT_OK_RESULT;
}

static bool parsed_matches_key(struct mt_x509_parsed *parsed, const struct mt_x509_key *key)
{
    ecc_key subject;
    if (wc_ecc_init(&subject) != 0)
        return false;
    uint8_t ours[P256_POINT_SIZE];
    uint8_t theirs[P256_POINT_SIZE];
    bool matches = mt_result_is_ok(parsed_public_key(parsed, &subject)) &&
                   mt_result_is_ok(public_point(key_ecc(key), ours)) &&
                   mt_result_is_ok(public_point(&subject, theirs)) &&
                   memcmp(ours, theirs, sizeof(ours)) == 0;
    wc_ecc_free(&subject);
    return matches;
}

/* ----------------------------------------------------------------------------------------- */
/* Building certificates */

/* Writes a DER length; returns the bytes used. length ≤ 0xffff is all a Cert field can hold. */
static size_t der_put_length(uint8_t *output, size_t length)
{
    if (length < 0x80) {
        output[0] = (uint8_t)length;
        return 1;
    }
    if (length <= 0xff) {
        output[0] = 0x81;
        output[1] = (uint8_t)length;
        return 2;
    }
    output[0] = 0x82;
    output[1] = (uint8_t)(length >> 8);
    output[2] = (uint8_t)length;
    return 3;
}

/*
 * Sets the certificate's subjectAltName to exactly one URI. wolfCrypt takes the GeneralNames
 * DER as is: SEQUENCE { [6] IA5String uri } (RFC 5280 §4.2.1.6, uniformResourceIdentifier).
 */
static MT_RESULT cert_set_uri_san(Cert *cert, const char *uri)
{
    size_t uri_length = strlen(uri);
    MT_ENSURE(uri_length <= MT_SPIFFE_ID_MAX, MT_ERR_TOO_LONG);
    uint8_t name_header[4];
    size_t name_header_length = 1 + der_put_length(name_header + 1, uri_length);
    name_header[0] = 0x86; /* context-specific, primitive, tag 6 */
    size_t sequence_content = name_header_length + uri_length;
    uint8_t sequence_header[4];
    size_t sequence_header_length = 1 + der_put_length(sequence_header + 1, sequence_content);
    sequence_header[0] = 0x30;
    size_t total = sequence_header_length + sequence_content;
    MT_ENSURE(total <= sizeof(cert->altNames), MT_ERR_TOO_LONG);

    uint8_t *cursor = cert->altNames;
    memcpy(cursor, sequence_header, sequence_header_length);
    cursor += sequence_header_length;
    memcpy(cursor, name_header, name_header_length);
    cursor += name_header_length;
    memcpy(cursor, uri, uri_length);
    cert->altNamesSz = (int)total;
    return MT_OK_RESULT;
}

/*
 * Encodes one validity time as the full DER TLV wolfCrypt copies into the certificate: UTCTime
 * for 1950–2049, GeneralizedTime otherwise (RFC 5280 §4.1.2.5).
 */
static MT_RESULT encode_time(time_t when, uint8_t output[CTC_DATE_SIZE], int *size)
{
    struct tm utc;
    MT_ENSURE(gmtime_r(&when, &utc) != NULL, MT_ERR_INVALID_ARGUMENT);
    int year = utc.tm_year + 1900;
    MT_ENSURE(year >= 1950 && year <= 9999, MT_ERR_INVALID_ARGUMENT);
    char text[24];
    int length;
    if (year < 2050) {
        output[0] = ASN_UTC_TIME;
        length = snprintf(text, sizeof(text), "%02d%02d%02d%02d%02d%02dZ", year % 100,
                          utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec);
    } else {
        output[0] = ASN_GENERALIZED_TIME;
        length = snprintf(text, sizeof(text), "%04d%02d%02d%02d%02d%02dZ", year, utc.tm_mon + 1,
                          utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec);
    }
    MT_ENSURE(length > 0 && length + 2 <= CTC_DATE_SIZE, MT_ERR_INVALID_ARGUMENT);
    output[1] = (uint8_t)length;
    memcpy(output + 2, text, (size_t)length);
    *size = length + 2;
    return MT_OK_RESULT;
}

/* Exact validity; wolfCrypt's daysValid would back-date notBefore by a day. */
static MT_RESULT cert_set_validity(Cert *cert, time_t not_before, time_t not_after)
{
    MT_ENSURE(not_before < not_after, MT_ERR_INVALID_ARGUMENT);
    MT_GUARD(encode_time(not_before, cert->beforeDate, &cert->beforeDateSz));
    MT_GUARD(encode_time(not_after, cert->afterDate, &cert->afterDateSz));
    return MT_OK_RESULT;
}

static void name_set(char field[CTC_NAME_SIZE], char *encoding, const char *value)
{
    /* CTC_NAME_SIZE keeps within RFC 5280's 64-character bound for CN and O; longer is cut. */
    size_t length = strnlen(value, CTC_NAME_SIZE - 1);
    memcpy(field, value, length);
    field[length] = '\0';
    *encoding = CTC_UTF8;
}

static MT_RESULT cert_new(Cert **cert)
{
    Cert *created = wc_CertNew(NULL);
    MT_ENSURE(created != NULL, MT_ERR_NO_MEMORY);
    created->sigType = CTC_SHA256wECDSA;
    *cert = created;
    return MT_OK_RESULT;
}

/* Encodes the body in der with make(), then signs it in place with signer. */
static MT_RESULT cert_sign(Cert *cert, int body_length, const struct mt_x509_key *signer,
                           WC_RNG *rng, uint8_t *der, word32 capacity, size_t *length)
{
    MT_GUARD(wolf_result(body_length, MT_ERR_CRYPTO));
    int signed_length =
        wc_SignCert_ex(body_length, cert->sigType, der, capacity, ECC_TYPE, key_ecc(signer), rng);
    MT_GUARD(wolf_result(signed_length, MT_ERR_CRYPTO));
    *length = (size_t)signed_length;
    return MT_OK_RESULT;
}

static word32 bounded_capacity(size_t capacity)
{
    return capacity > UINT32_MAX ? UINT32_MAX : (word32)capacity;
}

/* A CSR signed by key, the signature's nonce from rng. */
static MT_RESULT csr_create_with(WC_RNG *rng, const struct mt_x509_key *key, uint8_t *der,
                                 size_t capacity, size_t *length)
{
    Cert *request = NULL;
    MT_GUARD(cert_new(&request));
    /* PKCS#10 has only version 1 (value 0); wolfCrypt's default 2 is for certificates. */
    request->version = 0;
    word32 room = bounded_capacity(capacity);
    int body = wc_MakeCertReq_ex(request, der, room, ECC_TYPE, key_ecc(key));
    mt_result result = cert_sign(request, body, key, rng, der, room, length);
    wc_CertFree(request);
    return result;
}

MT_RESULT mt_x509_csr_create(const struct mt_x509_key *key, uint8_t *der, size_t capacity,
                             size_t *length)
{
    MT_ENSURE_REF(key);
    MT_ENSURE_REF(der);
    MT_ENSURE_REF(length);
    WC_RNG rng;
    MT_ENSURE(wc_InitRng(&rng) == 0, MT_ERR_CRYPTO);
    mt_result result = csr_create_with(&rng, key, der, capacity, length);
    wc_FreeRng(&rng);
    return result;
}

MT_RESULT mt_x509_key_and_csr_create(struct mt_x509_key **key, uint8_t *der, size_t capacity,
                                     size_t *length)
{
    MT_ENSURE_REF(key);
    MT_ENSURE_REF(der);
    MT_ENSURE_REF(length);
    *key = NULL;
    /*
     * One DRBG for both: each wc_InitRng reads the kernel's entropy and runs the DRBG's health
     * test, which a process paid twice on its way to its first connection. The key's scalar and
     * the signature's nonce still come from the same seeded Hash_DRBG, as two calls of one
     * generator (SP 800-90A), never from the same output.
     */
    WC_RNG rng;
    MT_ENSURE(wc_InitRng(&rng) == 0, MT_ERR_CRYPTO);
    struct mt_x509_key *created = NULL;
    mt_result result = key_generate_with(&rng, &created);
    if (mt_result_is_ok(result))
        result = csr_create_with(&rng, created, der, capacity, length);
    wc_FreeRng(&rng);
    if (!mt_result_is_ok(result)) {
        mt_x509_key_free(created);
        return result;
    }
    *key = created;
    return MT_OK_RESULT;
}

MT_RESULT mt_x509_ca_create(const struct mt_x509_key *ca_key, const char *trust_domain,
                            time_t not_before, time_t not_after, uint8_t *der, size_t capacity,
                            size_t *length)
{
    MT_ENSURE_REF(ca_key);
    MT_ENSURE_REF(trust_domain);
    MT_ENSURE_REF(der);
    MT_ENSURE_REF(length);
    MT_ENSURE(mt_spiffe_is_valid_trust_domain(trust_domain, strlen(trust_domain)),
              MT_ERR_SPIFFE_ID);

    char uri[MT_SPIFFE_ID_MAX + 1];
    char common_name[CTC_NAME_SIZE + 32];
    Cert *ca = NULL;
    WC_RNG rng;
    bool have_rng = false;
    mt_result result = mt_spiffe_id_format(uri, sizeof(uri), trust_domain, "");
    if (!mt_result_is_ok(result))
        goto out;
    result = cert_new(&ca);
    if (!mt_result_is_ok(result))
        goto out;

    snprintf(common_name, sizeof(common_name), "meshtls dev CA %s", trust_domain);
    name_set(ca->subject.org, &ca->subject.orgEnc, "meshtls");
    name_set(ca->subject.commonName, &ca->subject.commonNameEnc, common_name);
    ca->selfSigned = 1;
    ca->isCA = 1;
    /* The dev CA signs leaves directly; pathLen 0 forbids it from vouching for another CA. */
    ca->pathLen = 0;
    ca->pathLenSet = 1;
    result = cert_set_uri_san(ca, uri);
    if (!mt_result_is_ok(result))
        goto out;
    result = cert_set_validity(ca, not_before, not_after);
    if (!mt_result_is_ok(result))
        goto out;
    result = mt_result_of(MT_ERR_CRYPTO);
    if (wc_SetKeyUsage(ca, "keyCertSign,cRLSign") != 0 ||
        wc_SetSubjectKeyIdFromPublicKey_ex(ca, ECC_TYPE, key_ecc(ca_key)) != 0 ||
        wc_SetAuthKeyIdFromPublicKey_ex(ca, ECC_TYPE, key_ecc(ca_key)) != 0)
        goto out;
    if (wc_InitRng(&rng) != 0)
        goto out;
    have_rng = true;
    word32 room = bounded_capacity(capacity);
    int body = wc_MakeCert_ex(ca, der, room, ECC_TYPE, key_ecc(ca_key), &rng);
    result = cert_sign(ca, body, ca_key, &rng, der, room, length);

out:
    if (have_rng)
        wc_FreeRng(&rng);
    wc_CertFree(ca);
    return result;
}

/*
 * Checks the issuer side of a leaf: an X.509-SVID signing certificate (§3.2, §4.1, §4.3) whose key
 * is the one about to sign.
 */
static MT_RESULT check_issuer(const uint8_t *ca_der, size_t ca_length,
                              const struct mt_x509_key *ca_key)
{
    MT_ENSURE(mt_result_is_ok(mt_x509_signing_check(ca_der, ca_length, NULL)),
              MT_ERR_INVALID_ARGUMENT);
    struct mt_x509_parsed issuer;
    mt_result result = mt_x509_parse(&issuer, ca_der, ca_length, CERT_TYPE, NO_VERIFY);
    if (mt_result_is_ok(result) && !parsed_matches_key(&issuer, ca_key))
        result = mt_result_of(MT_ERR_INVALID_ARGUMENT);
    mt_x509_parsed_free(&issuer);
    return result;
}

/* What was just signed passes the workload's own check: the agent never issues a leaf it refuses.
 */
static MT_RESULT check_issued(const uint8_t *der, size_t length)
{
    char id[MT_SPIFFE_ID_MAX + 1];
    const char *reason = NULL;
    mt_result result = mt_x509_svid_check(der, length, id, sizeof(id), &reason);
    if (!mt_result_is_ok(result))
        mt_log_debug("issued leaf fails the X.509-SVID check: %s", reason);
    return result;
}

/*
 * The state kept between leaves. Out of the heap like a key (util/secret.h): whoever learned the
 * generator's state could predict the nonces of the issuer's signatures, and so its key.
 */
struct mt_x509_signer {
    const struct mt_x509_key *key;
    uint8_t ca_der[MT_X509_CERT_DER_MAX];
    word32 ca_length;
    WC_RNG rng;
};

MT_RESULT mt_x509_signer_new(const uint8_t *ca_der, size_t ca_length,
                             const struct mt_x509_key *ca_key, struct mt_x509_signer **signer)
{
    MT_ENSURE_REF(ca_der);
    MT_ENSURE_REF(ca_key);
    MT_ENSURE_REF(signer);
    MT_ENSURE(ca_length <= MT_X509_CERT_DER_MAX, MT_ERR_TOO_LONG);
    MT_GUARD(check_issuer(ca_der, ca_length, ca_key));
    struct mt_x509_signer *created = NULL;
    MT_GUARD(mt_secret_alloc(sizeof(*created), (void **)&created));
    if (wc_InitRng(&created->rng) != 0) {
        mt_secret_free(created);
        return mt_result_of(MT_ERR_CRYPTO);
    }
    created->key = ca_key;
    memcpy(created->ca_der, ca_der, ca_length);
    created->ca_length = (word32)ca_length;
    *signer = created;
    return MT_OK_RESULT;
}

void mt_x509_signer_free(struct mt_x509_signer *signer)
{
    if (signer == NULL)
        return;
    wc_FreeRng(&signer->rng);
    mt_secret_free(signer);
}

MT_RESULT mt_x509_signer_issue(struct mt_x509_signer *signer, const uint8_t *csr_der,
                               size_t csr_length, const char *spiffe_id, time_t not_before,
                               time_t not_after, uint8_t *der, size_t capacity, size_t *length)
{
    MT_ENSURE_REF(signer);
    MT_ENSURE_REF(csr_der);
    MT_ENSURE_REF(spiffe_id);
    MT_ENSURE_REF(der);
    MT_ENSURE_REF(length);
    struct mt_spiffe_id id;
    MT_GUARD(mt_spiffe_id_parse(spiffe_id, strlen(spiffe_id), &id));
    /* X.509-SVID §3.1: a leaf's ID has a path; the bare trust domain is the CA's. */
    MT_ENSURE(id.path_length > 0, MT_ERR_SPIFFE_ID);

    struct mt_x509_parsed request;
    bool have_request = false;
    ecc_key subject_key;
    bool have_subject_key = false;
    Cert *leaf = NULL;
    mt_result result = mt_result_of(MT_ERR_CRYPTO);

    /* VERIFY makes wolfCrypt check the CSR's self-signature: proof the caller holds the key. */
    have_request = true;
    result = mt_x509_parse(&request, csr_der, csr_length, CERTREQ_TYPE, VERIFY);
    if (!mt_result_is_ok(result))
        goto out;
    result = mt_result_of(MT_ERR_CRYPTO);
    if (wc_ecc_init(&subject_key) != 0)
        goto out;
    have_subject_key = true;
    result = parsed_public_key(&request, &subject_key);
    if (!mt_result_is_ok(result))
        goto out;

    result = cert_new(&leaf);
    if (!mt_result_is_ok(result))
        goto out;
    name_set(leaf->subject.org, &leaf->subject.orgEnc, "meshtls");
    leaf->isCA = 0;
    leaf->basicConstSet = 1; /* emit CA:FALSE explicitly rather than omitting basicConstraints */
    result = cert_set_uri_san(leaf, spiffe_id);
    if (!mt_result_is_ok(result))
        goto out;
    result = cert_set_validity(leaf, not_before, not_after);
    if (!mt_result_is_ok(result))
        goto out;
    result = mt_result_of(MT_ERR_CRYPTO);
    /* The issuer name is copied byte for byte so that path building matches it exactly. */
    if (wc_SetIssuerRaw(leaf, signer->ca_der, (int)signer->ca_length) != 0 ||
        wc_SetAuthKeyIdFromCert(leaf, signer->ca_der, (int)signer->ca_length) != 0 ||
        wc_SetSubjectKeyIdFromPublicKey_ex(leaf, ECC_TYPE, &subject_key) != 0 ||
        wc_SetKeyUsage(leaf, "digitalSignature") != 0 ||
        wc_SetExtKeyUsage(leaf, "serverAuth,clientAuth") != 0)
        goto out;
    word32 room = bounded_capacity(capacity);
    int body = wc_MakeCert_ex(leaf, der, room, ECC_TYPE, &subject_key, &signer->rng);
    result = cert_sign(leaf, body, signer->key, &signer->rng, der, room, length);
    if (mt_result_is_ok(result))
        result = check_issued(der, *length);

out:
    wc_CertFree(leaf);
    if (have_subject_key)
        wc_ecc_free(&subject_key);
    if (have_request)
        mt_x509_parsed_free(&request);
    return result;
}

MT_RESULT mt_x509_leaf_issue(const uint8_t *csr_der, size_t csr_length, const char *spiffe_id,
                             const uint8_t *ca_der, size_t ca_length,
                             const struct mt_x509_key *ca_key, time_t not_before, time_t not_after,
                             uint8_t *der, size_t capacity, size_t *length)
{
    struct mt_x509_signer *signer = NULL;
    MT_GUARD(mt_x509_signer_new(ca_der, ca_length, ca_key, &signer));
    mt_result result = mt_x509_signer_issue(signer, csr_der, csr_length, spiffe_id, not_before,
                                            not_after, der, capacity, length);
    mt_x509_signer_free(signer);
    return result;
}

/* ----------------------------------------------------------------------------------------- */
/* Reading certificates (the X.509-SVID rules are in svid.c) */

bool mt_x509_cert_is_ca(const uint8_t *der, size_t length)
{
    if (der == NULL)
        return false;
    struct mt_x509_parsed cert;
    bool is_ca = mt_result_is_ok(mt_x509_parse(&cert, der, length, CERT_TYPE, NO_VERIFY)) &&
                 cert.decoded.isCA;
    mt_x509_parsed_free(&cert);
    return is_ca;
}

bool mt_x509_key_matches_cert(const struct mt_x509_key *key, const uint8_t *cert_der,
                              size_t cert_length)
{
    if (key == NULL || cert_der == NULL)
        return false;
    struct mt_x509_parsed cert;
    bool matches =
        mt_result_is_ok(mt_x509_parse(&cert, cert_der, cert_length, CERT_TYPE, NO_VERIFY)) &&
        parsed_matches_key(&cert, key);
    mt_x509_parsed_free(&cert);
    return matches;
}

/* A certificate date (the TLV as DecodedCert records it) as seconds since the epoch, UTC. */
static MT_RESULT date_to_time(const byte *date, int date_length, time_t *when)
{
    const byte *value = NULL;
    byte format = 0;
    int value_length = 0;
    MT_ENSURE(date != NULL, MT_ERR_CERT_PARSE);
    MT_GUARD(wolf_result(wc_GetDateInfo(date, date_length, &value, &format, &value_length),
                         MT_ERR_CERT_PARSE));
    struct tm utc;
    memset(&utc, 0, sizeof(utc));
    MT_GUARD(wolf_result(wc_GetDateAsCalendarTime(value, value_length, format, &utc),
                         MT_ERR_CERT_PARSE));
    time_t converted = timegm(&utc);
    MT_ENSURE(converted != (time_t)-1, MT_ERR_CERT_PARSE);
    *when = converted;
    return MT_OK_RESULT;
}

MT_RESULT mt_x509_cert_validity(const uint8_t *der, size_t length, time_t *not_before,
                                time_t *not_after)
{
    MT_ENSURE_REF(der);
    MT_ENSURE_REF(not_before);
    MT_ENSURE_REF(not_after);
    struct mt_x509_parsed cert;
    time_t before = 0;
    time_t after = 0;
    mt_result result = mt_x509_parse(&cert, der, length, CERT_TYPE, NO_VERIFY);
    if (mt_result_is_ok(result))
        result = date_to_time(cert.decoded.beforeDate, cert.decoded.beforeDateLen, &before);
    if (mt_result_is_ok(result))
        result = date_to_time(cert.decoded.afterDate, cert.decoded.afterDateLen, &after);
    mt_x509_parsed_free(&cert);
    if (mt_result_is_ok(result)) {
        *not_before = before;
        *not_after = after;
    }
    return result;
}

MT_RESULT mt_x509_cert_pem_to_der(const char *pem, size_t pem_length, uint8_t *der, size_t capacity,
                                  size_t *length)
{
    MT_ENSURE_REF(pem);
    MT_ENSURE_REF(der);
    MT_ENSURE_REF(length);
    MT_ENSURE(fits_int(pem_length) && fits_int(capacity), MT_ERR_TOO_LONG);
    int written =
        wc_CertPemToDer((const unsigned char *)pem, (int)pem_length, der, (int)capacity, CERT_TYPE);
    MT_GUARD(wolf_result(written, MT_ERR_CERT_PARSE));
    MT_ENSURE(written > 0, MT_ERR_CERT_PARSE);
    *length = (size_t)written;
    return MT_OK_RESULT;
}

MT_RESULT mt_x509_cert_der_to_pem(const uint8_t *der, size_t der_length, char *pem, size_t capacity,
                                  size_t *length)
{
    MT_ENSURE_REF(der);
    MT_ENSURE_REF(pem);
    MT_ENSURE_REF(length);
    return der_to_pem(der, der_length, CERT_TYPE, pem, capacity, length);
}
