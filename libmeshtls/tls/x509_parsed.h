/*
 * A certificate or CSR parsed by wolfCrypt, shared by the two files that read certificates:
 * tls/x509.c (keys, issuance) and tls/svid.c (the X.509-SVID rules). Private to tls/: it exposes
 * a wolfSSL type, which nothing outside tls/ may see.
 */
#ifndef MT_TLS_X509_PARSED_H
#define MT_TLS_X509_PARSED_H

#include <wolfssl/options.h>

#include <wolfssl/wolfcrypt/asn.h>

#include <stddef.h>
#include <stdint.h>

#include "../util/result.h"

/*
 * DecodedCert points into the DER it was given, so the DER must outlive it. wolfcrypt_error is what
 * wc_ParseCert returned (0 when it parsed): svid.c reads a certificate wolfSSL 5.9.2 decodes in
 * full and then refuses (KEYUSAGE_E), to name the X.509-SVID rule it breaks.
 */
struct mt_x509_parsed {
    DecodedCert decoded;
    int wolfcrypt_error;
};

/*
 * Parses der as type (CERT_TYPE, CERTREQ_TYPE), checking its signature when verify is VERIFY.
 * mt_x509_parsed_free is always safe after this was called, whatever it returned.
 */
MT_RESULT mt_x509_parse(struct mt_x509_parsed *parsed, const uint8_t *der, size_t length, int type,
                        int verify);
void mt_x509_parsed_free(struct mt_x509_parsed *parsed);

#endif
