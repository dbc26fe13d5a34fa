/*
 * The peer's certificate chain, as wolfSSL's verify callback sees it during a full handshake.
 *
 * wolfSSL checks the chain against the bundle and validity dates; this callback then applies the
 * X.509-SVID rules to the peer's leaf (depth 0) and to what follows it, requires the peer's trust
 * domain to be ours, and asks the session's peer filter (authorization). Debian's wolfSSL is
 * built with WOLFSSL_ALWAYS_VERIFY_CB, so the callback sees every certificate, not only the
 * failing ones.
 *
 * Owns the answer to "who is the peer, proven by its certificate". Memory per idle connection is
 * kept small: the peer's leaf is read from the raw certificate buffers (no OpenSSL-compatibility
 * X509 object, so the bundled wolfSSL is built without KEEP_PEER_CERT) and only its SPIFFE ID is
 * kept. Must never accept a peer whose refusal it cannot explain, nor let a ticket's claim stand
 * in for a certificate (claim.c decides on resumed handshakes).
 */
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "../util/spiffe.h"
#include "internal.h"
#include "x509.h"

/*
 * wolfSSL reports chain errors as its own ASN_* codes, or, in builds with the OpenSSL
 * compatibility layer (Debian's), possibly as X509_V_ERR_* codes: accept both. ssl.h declares
 * the X509_V_ERR_* enum only in those builds (the bundled one has no compatibility layer).
 */
#if defined(OPENSSL_EXTRA) || defined(OPENSSL_EXTRA_X509_SMALL) || defined(HAVE_WEBSERVER)
#define X509_V_ERR_CASE(code) case code:
#else
#define X509_V_ERR_CASE(code)
#endif

static const char *chain_error_phrase(int error)
{
    switch (error) {
    case ASN_NO_SIGNER_E:
        X509_V_ERR_CASE(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT)
        X509_V_ERR_CASE(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY)
        X509_V_ERR_CASE(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT)
        X509_V_ERR_CASE(X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN)
        return "certificate not issued by a trusted anchor (foreign CA?)";
    case ASN_AFTER_DATE_E:
        X509_V_ERR_CASE(X509_V_ERR_CERT_HAS_EXPIRED)
        /* What wolfSSL 5.5.4's GetX509Error maps ASN_AFTER_DATE_E to (Debian's build). */
        X509_V_ERR_CASE(X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD)
        return "certificate expired";
    case ASN_BEFORE_DATE_E:
        X509_V_ERR_CASE(X509_V_ERR_CERT_NOT_YET_VALID)
        X509_V_ERR_CASE(X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD)
        return "certificate not yet valid";
    case ASN_SIG_CONFIRM_E:
        X509_V_ERR_CASE(X509_V_ERR_CERT_SIGNATURE_FAILURE)
        return "certificate signature invalid";
    default:
        return "certificate chain rejected";
    }
}

/*
 * The errors wolfSSL gives a certificate for its keyUsage or extendedKeyUsage, each of which
 * breaks an X.509-SVID rule too. wolfSSL 5.9.2 raises two that 5.5.4 does not: KEYUSAGE_E, as it
 * parses a certificate that sets keyCertSign without cA (RFC 5280 §4.2.1.9), and
 * KEYUSE_SIGNATURE_E for a TLS 1.3 peer's leaf without digitalSignature (RFC 8446 §4.4.2.4).
 * EXTKEYUSE_AUTH_E (an extendedKeyUsage without the peer's TLS purpose) both raise.
 */
static bool is_key_usage_error(int error)
{
    return error == KEYUSAGE_E || error == KEYUSE_SIGNATURE_E || error == EXTKEYUSE_AUTH_E;
}

/*
 * Why wolfSSL refused the chain. A key usage error comes before this callback could apply the
 * X.509-SVID rules to the certificate, as it does when wolfSSL passes it: the rule it breaks is
 * the reason, the same whichever wolfSSL meets it first.
 */
static void explain_chain_error(struct mt_tls_session *session, WOLFSSL_X509_STORE_CTX *store)
{
    int depth = store->error_depth;
    const char *why = NULL;
    if (is_key_usage_error(store->error) && store->certs != NULL && depth >= 0 &&
        depth < store->totalCerts && store->certs[depth].buffer != NULL) {
        const WOLFSSL_BUFFER_INFO *cert = &store->certs[depth];
        char id[MT_SPIFFE_ID_MAX + 1];
        if (depth == 0 && !mt_result_is_ok(mt_x509_svid_check(cert->buffer, cert->length, id,
                                                              sizeof(id), &why))) {
            mt_tls_failure_explain(session, "peer certificate is not a valid X.509-SVID: %s", why);
            return;
        }
        if (depth > 0 &&
            !mt_result_is_ok(mt_x509_signing_check(cert->buffer, cert->length, &why))) {
            mt_tls_failure_explain(session,
                                   "peer chain certificate %d is not an X.509-SVID signing "
                                   "certificate: %s",
                                   depth, why);
            return;
        }
    }
    mt_tls_failure_explain(session, "peer %s (error %d)", chain_error_phrase(store->error),
                           store->error);
}

/*
 * The store's fields are read directly (error, error_depth, certs): the X509_STORE_CTX accessors
 * and the X509 object exist only with the OpenSSL compatibility layer. certs[0] is the peer's
 * leaf as sent, in DER, in every build; it is checked here and only its SPIFFE ID is kept.
 */
int mt_tls_verify_peer(int preverified, WOLFSSL_X509_STORE_CTX *store)
{
    struct mt_tls_session *session = store->userCtx;
    if (session == NULL)
        return 0;
    if (!preverified) {
        explain_chain_error(session, store);
        return 0;
    }
    if (store->error_depth != 0)
        return 1;

    if (store->certs == NULL || store->totalCerts < 1 || store->certs[0].buffer == NULL ||
        store->certs[0].length == 0) {
        mt_tls_failure_explain(session, "peer certificate unreadable");
        return 0;
    }
    const char *why = "not an X.509-SVID";
    char id[MT_SPIFFE_ID_MAX + 1];
    if (!mt_result_is_ok(mt_x509_svid_check(store->certs[0].buffer, store->certs[0].length, id,
                                            sizeof(id), &why))) {
        mt_tls_failure_explain(session, "peer certificate is not a valid X.509-SVID: %s", why);
        return 0;
    }
    /* X.509-SVID §3.2: what the peer sends after its leaf are signing certificates, every one. */
    for (int i = 1; i < store->totalCerts; i++) {
        if (store->certs[i].buffer == NULL ||
            !mt_result_is_ok(
                mt_x509_signing_check(store->certs[i].buffer, store->certs[i].length, &why))) {
            mt_tls_failure_explain(session,
                                   "peer chain certificate %d is not an X.509-SVID signing "
                                   "certificate: %s",
                                   i, why);
            return 0;
        }
    }
    const char *trust_domain = session->context->credentials->trust_domain;
    if (!mt_spiffe_id_is_in_trust_domain(id, trust_domain)) {
        mt_tls_failure_replace(session, "peer identity %.80s is not in trust domain %.80s", id,
                               trust_domain);
        return 0;
    }
    char refusal[MT_TLS_REASON_CAPACITY];
    if (session->peer_filter != NULL &&
        !session->peer_filter(session->peer_filter_argument, id, MT_TLS_PEER_DECIDE,
                              MT_TEXT_ON(refusal))) {
        mt_tls_failure_replace(session, "%s", refusal);
        return 0;
    }
    free(session->peer_id);
    session->peer_id = strdup(id);
    if (session->peer_id == NULL) {
        mt_tls_failure_explain(session, "out of memory for the peer's identity");
        return 0;
    }
    session->verified = true;
    session->trusted_until_ms =
        mt_tls_claim_trusted_until(session, store->certs[0].buffer, store->certs[0].length);
    return 1;
}
