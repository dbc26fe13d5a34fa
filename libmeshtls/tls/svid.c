/*
 * The X.509-SVID standard's rules on certificates (github.com/spiffe/spiffe,
 * standards/X509-SVID.md, sections 2-5), for leaves and for signing certificates, and the SPIFFE ID
 * a certificate carries. Section numbers in comments are that document's.
 *
 * Owns the answer to "may this certificate identify a workload" and "may this certificate sign
 * identities". Signature, dates and the chain are RFC 5280 path validation's business (wolfSSL's);
 * what is checked here is what path validation does not know about SPIFFE. Must never log,
 * allocate beyond wolfCrypt's parse, or accept a certificate on a rule's SHOULD alone: a SHOULD is
 * not enforced, a MUST always is, and each refusal names the first rule broken.
 */
#include <wolfssl/options.h>

#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include <string.h>

#include "../util/spiffe.h"
#include "x509.h"
#include "x509_parsed.h"

/*
 * Parses a certificate for the rules below. wolfSSL 5.9.2 refuses in wc_ParseCert, even without
 * verification, a certificate that sets keyUsage keyCertSign without cA (RFC 5280 §4.2.1.9):
 * KEYUSAGE_E, once the whole certificate is decoded. 5.5.4 parses it. Such a certificate breaks an
 * X.509-SVID rule whichever it is meant to be (a leaf MUST NOT set keyCertSign, §4.3; a signing
 * certificate MUST set cA, §4.1), and the rules, not the parser, say which: it is kept decoded, and
 * parsed_not_refused() keeps it from ever passing.
 */
static MT_RESULT parse_for_rules(struct mt_x509_parsed *parsed, const uint8_t *der, size_t length)
{
    mt_result result = mt_x509_parse(parsed, der, length, CERT_TYPE, NO_VERIFY);
    if (!mt_result_is_ok(result) && parsed->wolfcrypt_error == KEYUSAGE_E)
        return MT_OK_RESULT;
    return result;
}

/* What wolfCrypt refused never passes, whatever the rules found. */
static MT_RESULT parsed_not_refused(const struct mt_x509_parsed *parsed, const char **reason)
{
    *reason = "certificate does not parse";
    MT_ENSURE(parsed->wolfcrypt_error == 0, MT_ERR_CERT_PARSE);
    *reason = NULL;
    return MT_OK_RESULT;
}

/*
 * The certificate's URI SANs: how many there are, and the first one. Other name types (DNS,
 * e-mail) are allowed beside it by the X.509-SVID specification and are not counted.
 */
static size_t parsed_uri_sans(const struct mt_x509_parsed *parsed, const DNS_entry **first)
{
    size_t count = 0;
    *first = NULL;
    for (const DNS_entry *name = parsed->decoded.altNames; name != NULL; name = name->next) {
        if (name->type != ASN_URI_TYPE)
            continue;
        if (count++ == 0)
            *first = name;
    }
    return count;
}

/*
 * Copies the certificate's only URI SAN when it is a valid SPIFFE ID; reason says why not.
 * id (may be NULL) receives the parsed form, pointing into spiffe_id.
 */
static MT_RESULT parsed_spiffe_id(const struct mt_x509_parsed *parsed, char *spiffe_id,
                                  size_t capacity, struct mt_spiffe_id *id, const char **reason)
{
    const DNS_entry *uri = NULL;
    size_t count = parsed_uri_sans(parsed, &uri);
    *reason = count == 0 ? "no URI SAN" : "more than one URI SAN";
    MT_ENSURE(count == 1, MT_ERR_SVID);

    *reason = "URI SAN is not a valid SPIFFE ID";
    struct mt_spiffe_id parsed_id;
    MT_ENSURE(uri->len > 0, MT_ERR_SVID);
    MT_ENSURE(mt_result_is_ok(mt_spiffe_id_parse(uri->name, (size_t)uri->len, &parsed_id)),
              MT_ERR_SVID);

    *reason = "SPIFFE ID longer than the buffer";
    MT_ENSURE((size_t)uri->len < capacity, MT_ERR_TOO_LONG);
    memcpy(spiffe_id, uri->name, (size_t)uri->len);
    spiffe_id[uri->len] = '\0';
    if (id != NULL)
        MT_GUARD(mt_spiffe_id_parse(spiffe_id, (size_t)uri->len, id));
    *reason = NULL;
    return MT_OK_RESULT;
}

/* An empty subject Name (SEQUENCE {}), whichever way wolfCrypt records its extent. */
static bool parsed_has_empty_subject(const struct mt_x509_parsed *parsed)
{
    const DecodedCert *cert = &parsed->decoded;
    return cert->subjectRawLen == 0 || (cert->subjectRawLen == 2 && cert->subjectRaw != NULL &&
                                        cert->subjectRaw[0] == 0x30 && cert->subjectRaw[1] == 0);
}

/*
 * The key usage rules both kinds share (X.509-SVID §4.3): the extension is present and critical.
 * The reasons name the missing usage first, which is what an operator has to add.
 */
static bool parsed_key_usage_is_critical(const struct mt_x509_parsed *parsed)
{
    return parsed->decoded.extKeyUsageSet && parsed->decoded.extKeyUsageCrit;
}

/*
 * The leaf rules of the X.509-SVID standard, in the order of its sections; reason names the first
 * one broken. Section numbers are those of standards/X509-SVID.md.
 */
static MT_RESULT parsed_leaf_check(const struct mt_x509_parsed *leaf, char *spiffe_id,
                                   size_t capacity, const char **reason)
{
    const DecodedCert *cert = &leaf->decoded;
    /* §4.1, §5.2: cA false; an absent basicConstraints is cA false (RFC 5280 §4.2.1.9). */
    *reason = "marked CA";
    MT_ENSURE(!cert->isCA, MT_ERR_SVID);
    /* §4.3: digitalSignature set, keyCertSign and cRLSign not, the extension critical. */
    *reason = "no keyUsage digitalSignature";
    MT_ENSURE(cert->extKeyUsageSet && (cert->extKeyUsage & KEYUSE_DIGITAL_SIG) != 0, MT_ERR_SVID);
    *reason = "keyUsage allows signing certificates or CRLs";
    MT_ENSURE((cert->extKeyUsage & (KEYUSE_KEY_CERT_SIGN | KEYUSE_CRL_SIGN)) == 0, MT_ERR_SVID);
    *reason = "keyUsage not marked critical";
    MT_ENSURE(parsed_key_usage_is_critical(leaf), MT_ERR_SVID);
    /* §4.4: the extension is optional (SHOULD); when present, both TLS purposes are set. */
    *reason = "extendedKeyUsage lacks serverAuth or clientAuth";
    MT_ENSURE(!cert->extExtKeyUsageSet || ((cert->extExtKeyUsage & EXTKEYUSE_SERVER_AUTH) != 0 &&
                                           (cert->extExtKeyUsage & EXTKEYUSE_CLIENT_AUTH) != 0),
              MT_ERR_SVID);
    /* §2, §5.2: exactly one URI SAN, a SPIFFE ID (SPIFFE-ID §2 syntax). */
    struct mt_spiffe_id id;
    MT_GUARD(parsed_spiffe_id(leaf, spiffe_id, capacity, &id, reason));
    /* §3.1, §5.2: a leaf's ID has a path; a bare trust domain names a signing certificate. */
    *reason = "SPIFFE ID has no path (only a signing certificate's ID may be the bare trust "
              "domain)";
    MT_ENSURE(id.path_length > 0, MT_ERR_SVID);
    /* §3.1 with RFC 5280 §4.1.2.6: without a subject, the SAN extension carries the name. */
    *reason = "empty subject and a URI SAN not marked critical";
    MT_ENSURE(!parsed_has_empty_subject(leaf) || cert->extSubjAltNameCrit, MT_ERR_SVID);
    *reason = NULL;
    return MT_OK_RESULT;
}

/* The signing certificate rules (X.509-SVID §3.2, §4.1, §4.3); reason names the first broken. */
static MT_RESULT parsed_signing_check(const struct mt_x509_parsed *signing, const char **reason)
{
    const DecodedCert *cert = &signing->decoded;
    *reason = "not marked CA (basicConstraints CA:TRUE is required)";
    MT_ENSURE(cert->isCA, MT_ERR_SVID);
    *reason = "no keyUsage keyCertSign";
    MT_ENSURE(cert->extKeyUsageSet && (cert->extKeyUsage & KEYUSE_KEY_CERT_SIGN) != 0, MT_ERR_SVID);
    *reason = "keyUsage not marked critical";
    MT_ENSURE(parsed_key_usage_is_critical(signing), MT_ERR_SVID);
    /* §3.2: a signing certificate SHOULD carry a SPIFFE ID; if it does, one without a path. */
    const DNS_entry *uri = NULL;
    if (parsed_uri_sans(signing, &uri) > 0) {
        char id_text[MT_SPIFFE_ID_MAX + 1];
        struct mt_spiffe_id id;
        MT_GUARD(parsed_spiffe_id(signing, id_text, sizeof(id_text), &id, reason));
        *reason = "SPIFFE ID has a path (a signing certificate's ID is the bare trust domain)";
        MT_ENSURE(id.path_length == 0, MT_ERR_SVID);
    }
    *reason = NULL;
    return MT_OK_RESULT;
}

MT_RESULT mt_x509_svid_check(const uint8_t *der, size_t length, char *spiffe_id, size_t capacity,
                             const char **reason)
{
    const char *ignored;
    if (reason == NULL)
        reason = &ignored;
    *reason = "invalid argument";
    MT_ENSURE_REF(der);
    MT_ENSURE_REF(spiffe_id);

    struct mt_x509_parsed leaf;
    mt_result result = parse_for_rules(&leaf, der, length);
    *reason = "certificate does not parse";
    if (mt_result_is_ok(result))
        result = parsed_leaf_check(&leaf, spiffe_id, capacity, reason);
    if (mt_result_is_ok(result))
        result = parsed_not_refused(&leaf, reason);
    mt_x509_parsed_free(&leaf);
    if (mt_result_is_ok(result))
        *reason = NULL;
    return result;
}

MT_RESULT mt_x509_signing_check(const uint8_t *der, size_t length, const char **reason)
{
    const char *ignored;
    if (reason == NULL)
        reason = &ignored;
    *reason = "invalid argument";
    MT_ENSURE_REF(der);

    struct mt_x509_parsed signing;
    mt_result result = parse_for_rules(&signing, der, length);
    *reason = "certificate does not parse";
    if (mt_result_is_ok(result))
        result = parsed_signing_check(&signing, reason);
    if (mt_result_is_ok(result))
        result = parsed_not_refused(&signing, reason);
    mt_x509_parsed_free(&signing);
    if (mt_result_is_ok(result))
        *reason = NULL;
    return result;
}

MT_RESULT mt_x509_cert_spiffe_id(const uint8_t *der, size_t length, char *spiffe_id,
                                 size_t capacity)
{
    MT_ENSURE_REF(der);
    MT_ENSURE_REF(spiffe_id);
    struct mt_x509_parsed cert;
    const char *reason;
    mt_result result = mt_x509_parse(&cert, der, length, CERT_TYPE, NO_VERIFY);
    if (mt_result_is_ok(result))
        result = parsed_spiffe_id(&cert, spiffe_id, capacity, NULL, &reason);
    mt_x509_parsed_free(&cert);
    return result;
}
