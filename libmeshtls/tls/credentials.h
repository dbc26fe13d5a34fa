/*
 * A workload's credentials: what a TLS context (tls.h) is built from. Its X.509-SVID chain, the
 * private key the leaf certifies, the trust bundle, and what was read from the leaf: the SPIFFE
 * ID, its trust domain, the expiry.
 *
 * The agent client (identity/client.h) builds them from the agent's reply and checks the leaf
 * before anyone uses them; the TLS layer only reads them. Once built they never change, and they
 * are reference counted: rotation builds new credentials and a new context, while live
 * connections keep the ones they were opened with.
 *
 * The key is encoded straight into a secret buffer (util/secret.h): out of core dumps, wiped when
 * the last reference goes and at exit.
 */
#ifndef MT_TLS_CREDENTIALS_H
#define MT_TLS_CREDENTIALS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../util/result.h"
#include "../util/spiffe.h"
#include "x509.h"

/* The longest chain (leaf first) and the largest trust bundle one set of credentials holds. */
#define MT_CREDENTIALS_CHAIN_MAX 4
#define MT_CREDENTIALS_ANCHORS_MAX 8

struct mt_credentials_der {
    uint8_t *data;
    size_t length;
};

struct mt_credentials {
    atomic_uint references;
    char spiffe_id[MT_SPIFFE_ID_MAX + 1];
    char trust_domain[MT_SPIFFE_TRUST_DOMAIN_MAX + 1];
    struct mt_credentials_der key;                             /* SEC1 DER, secret; wiped on free */
    struct mt_credentials_der chain[MT_CREDENTIALS_CHAIN_MAX]; /* leaf first */
    size_t chain_length;
    struct mt_credentials_der anchors[MT_CREDENTIALS_ANCHORS_MAX]; /* the trust bundle */
    size_t anchor_count;
    time_t not_after;  /* the leaf's expiry */
    time_t refresh_at; /* when to renew them, lazily (the agent client decides) */
};

/* Empty credentials holding one reference: the builder fills them, then hands them out. */
MT_RESULT mt_credentials_new(struct mt_credentials **credentials);

/*
 * Encodes key as the credentials' private key (SEC1 DER), directly into a secret buffer, and wipes
 * the stack wolfCrypt used for it. MT_ERR_INVALID_ARGUMENT when they have a key already.
 */
MT_RESULT mt_credentials_set_key(struct mt_credentials *credentials, const struct mt_x509_key *key);

/*
 * Appends a copy of a DER certificate to the chain (the leaf first) or to the trust bundle.
 * MT_ERR_INVALID_ARGUMENT for an empty one, MT_ERR_TOO_LONG past the maximum above.
 */
MT_RESULT mt_credentials_add_chain(struct mt_credentials *credentials, const uint8_t *der,
                                   size_t length);
MT_RESULT mt_credentials_add_anchor(struct mt_credentials *credentials, const uint8_t *der,
                                    size_t length);

struct mt_credentials *mt_credentials_acquire(struct mt_credentials *credentials);
/* Drops one reference; the last one wipes the key and frees everything. NULL is allowed. */
void mt_credentials_release(struct mt_credentials *credentials);

#endif
