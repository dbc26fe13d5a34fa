/*
 * libFuzzer target for the certificates and keys the library and the agent read from outside:
 * tls/x509.c's DER and PEM parsing. The agent's SVID answer (a chain and a trust bundle, DER, in
 * an agent protocol frame) goes through the checks identity/client.c makes before adopting an
 * identity; an issuer's certificate and key files (PEM) go through what agent/ca.c reads.
 *
 * An input starting with "MT" is a frame: decoded as an SVID response, its leaf checked as an
 * X.509-SVID (ID, key, validity) and every certificate and anchor parsed. Any other input is
 * used as DER (every certificate query) and as PEM (certificate, then the DER it gives, and
 * private key). Beyond "no crash, no read past the end, no leak" it checks that an accepted
 * SPIFFE ID is NUL-terminated inside the buffer and that the DER from a PEM fits the buffer.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "identity/proto.h"
#include "util/spiffe.h"
#include "tls/x509.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mt_x509_key *key;

static void require(bool condition)
{
    if (!condition)
        abort();
}

static void check_certificate(const uint8_t *der, size_t length)
{
    char id[MT_SPIFFE_ID_MAX + 1];
    const char *reason = NULL;
    memset(id, 'x', sizeof(id));
    bool leaf = mt_result_is_ok(mt_x509_svid_check(der, length, id, sizeof(id), &reason));
    if (leaf) {
        require(reason == NULL && memchr(id, '\0', sizeof(id)) != NULL);
        struct mt_spiffe_id parsed;
        require(mt_result_is_ok(mt_spiffe_id_parse(id, strlen(id), &parsed)));
        /* X.509-SVID 3.1: a leaf's ID has a path. */
        require(parsed.path_length > 0);
    } else {
        require(reason != NULL);
    }
    /* Leaf and signing certificate are exclusive (CA:FALSE against CA:TRUE). */
    reason = NULL;
    bool signing = mt_result_is_ok(mt_x509_signing_check(der, length, &reason));
    require(signing ? reason == NULL : reason != NULL);
    require(!(leaf && signing));
    /* A buffer too small for any ID must be refused, never overrun. */
    char small[8];
    if (mt_result_is_ok(mt_x509_cert_spiffe_id(der, length, small, sizeof(small))))
        require(memchr(small, '\0', sizeof(small)) != NULL);
    if (mt_result_is_ok(mt_x509_cert_spiffe_id(der, length, id, sizeof(id))))
        require(memchr(id, '\0', sizeof(id)) != NULL);
    mt_x509_cert_is_ca(der, length);
    time_t not_before = 0;
    time_t not_after = 0;
    bool has_validity =
        mt_result_is_ok(mt_x509_cert_validity(der, length, &not_before, &not_after));
    (void)has_validity;
    if (key != NULL)
        mt_x509_key_matches_cert(key, der, length);
}

static void fuzz_svid_response(const uint8_t *data, size_t size)
{
    struct mt_proto_frame frame;
    size_t consumed = 0;
    if (!mt_result_is_ok(mt_proto_frame_parse(data, size, &frame, &consumed)) || consumed == 0)
        return;
    static struct mt_proto_svid_response svid;
    if (!mt_result_is_ok(mt_proto_decode_svid_response(&frame, &svid)))
        return;
    for (size_t i = 0; i < svid.cert_count; i++)
        check_certificate(svid.certs[i].data, svid.certs[i].length);
    for (size_t i = 0; i < svid.anchor_count; i++)
        check_certificate(svid.anchors[i].data, svid.anchors[i].length);
}

static void fuzz_pem(const uint8_t *data, size_t size)
{
    /* The PEM functions take text of a given length; give them exactly the input. */
    const char *pem = size > 0 ? (const char *)data : "";
    static uint8_t der[MT_X509_CERT_DER_MAX];
    size_t length = 0;
    if (mt_result_is_ok(mt_x509_cert_pem_to_der(pem, size, der, sizeof(der), &length))) {
        require(length > 0 && length <= sizeof(der));
        check_certificate(der, length);
        static char again[MT_X509_CERT_PEM_MAX];
        size_t again_length = 0;
        if (mt_result_is_ok(
                mt_x509_cert_der_to_pem(der, length, again, sizeof(again), &again_length)))
            require(again_length < sizeof(again));
    }
    struct mt_x509_key *loaded = NULL;
    if (mt_result_is_ok(mt_x509_key_from_pem(pem, size, &loaded)))
        mt_x509_key_free(loaded);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* One key for the life of the process, to compare certificates' public keys with. */
    if (key == NULL && !mt_result_is_ok(mt_x509_key_generate(&key)))
        abort();
    if (size >= 2 && data[0] == 'M' && data[1] == 'T') {
        fuzz_svid_response(data, size);
        return 0;
    }
    check_certificate(size > 0 ? data : (const uint8_t *)"", size);
    fuzz_pem(data, size);
    return 0;
}
