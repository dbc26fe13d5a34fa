/*
 * A workload's credentials (see credentials.h): building them and their lifetime.
 *
 * Owns the memory of the key, the chain and the bundle. The key exists only in its secret buffer:
 * it is encoded there directly, never into a stack or heap copy of ours on the way, and the stack
 * that wolfCrypt used for it is wiped afterwards. (wc_EccKeyToDer itself frees a heap scratch copy
 * of the scalar without wiping it in wolfSSL 5.5.4 as Debian builds it, without the ASN template
 * code: in a workload that one is beyond our reach, and the agent has wolfSSL wipe every block
 * it frees, mt_tls_wipe_freed_memory. 5.9.2's template code writes the scalar straight into the
 * output.) Must never
 * log, and never check what a certificate says: that is the builder's business (x509.h).
 */
#include <stdlib.h>
#include <string.h>

#include "../util/secret.h"
#include "credentials.h"

MT_RESULT mt_credentials_new(struct mt_credentials **out)
{
    MT_ENSURE_REF(out);
    struct mt_credentials *credentials = calloc(1, sizeof(*credentials));
    *out = credentials;
    MT_ENSURE(credentials != NULL, MT_ERR_NO_MEMORY);
    atomic_init(&credentials->references, 1);
    return MT_OK_RESULT;
}

MT_RESULT mt_credentials_set_key(struct mt_credentials *credentials, const struct mt_x509_key *key)
{
    MT_ENSURE_REF(credentials);
    MT_ENSURE_REF(key);
    MT_ENSURE(credentials->key.data == NULL, MT_ERR_INVALID_ARGUMENT);
    void *buffer = NULL;
    MT_GUARD(mt_secret_alloc(MT_X509_KEY_DER_MAX, &buffer));
    size_t length = 0;
    mt_result result = mt_x509_key_to_der(key, buffer, MT_X509_KEY_DER_MAX, &length);
    /* Encoding leaves the scalar in wolfCrypt's dead stack frames (see secret.h). */
    mt_secret_wipe_stack();
    if (!mt_result_is_ok(result)) {
        mt_secret_free(buffer);
        return result;
    }
    credentials->key.data = buffer;
    credentials->key.length = length;
    return MT_OK_RESULT;
}

static MT_RESULT copy_der(struct mt_credentials_der *out, const uint8_t *der, size_t length)
{
    MT_ENSURE(der != NULL && length > 0, MT_ERR_INVALID_ARGUMENT);
    out->data = malloc(length);
    MT_ENSURE(out->data != NULL, MT_ERR_NO_MEMORY);
    memcpy(out->data, der, length);
    out->length = length;
    return MT_OK_RESULT;
}

MT_RESULT mt_credentials_add_chain(struct mt_credentials *credentials, const uint8_t *der,
                                   size_t length)
{
    MT_ENSURE_REF(credentials);
    MT_ENSURE(credentials->chain_length < MT_CREDENTIALS_CHAIN_MAX, MT_ERR_TOO_LONG);
    MT_GUARD(copy_der(&credentials->chain[credentials->chain_length], der, length));
    credentials->chain_length++;
    return MT_OK_RESULT;
}

MT_RESULT mt_credentials_add_anchor(struct mt_credentials *credentials, const uint8_t *der,
                                    size_t length)
{
    MT_ENSURE_REF(credentials);
    MT_ENSURE(credentials->anchor_count < MT_CREDENTIALS_ANCHORS_MAX, MT_ERR_TOO_LONG);
    MT_GUARD(copy_der(&credentials->anchors[credentials->anchor_count], der, length));
    credentials->anchor_count++;
    return MT_OK_RESULT;
}

struct mt_credentials *mt_credentials_acquire(struct mt_credentials *credentials)
{
    if (credentials != NULL)
        atomic_fetch_add(&credentials->references, 1);
    return credentials;
}

void mt_credentials_release(struct mt_credentials *credentials)
{
    if (credentials == NULL || atomic_fetch_sub(&credentials->references, 1) != 1)
        return;
    /* mt_secret_free wipes the whole buffer, whatever length the encoding took. */
    mt_secret_free(credentials->key.data);
    for (size_t i = 0; i < credentials->chain_length; i++)
        free(credentials->chain[i].data);
    for (size_t i = 0; i < credentials->anchor_count; i++)
        free(credentials->anchors[i].data);
    free(credentials);
}
