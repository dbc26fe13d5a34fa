/*
 * SPIFFE IDs (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md): parsing,
 * validation and trust-domain checks. Pure functions: no I/O, no allocation.
 *
 * A valid ID is "spiffe://" + trust domain + path, where the trust domain is 1..255 characters of
 * [a-z0-9.-_] (lowercase only), and the path is empty or a sequence of "/segment" with segments of
 * [A-Za-z0-9.-_], none empty, none "." or "..", no trailing slash; 2048 bytes at most in all.
 */
#ifndef MT_UTIL_SPIFFE_H
#define MT_UTIL_SPIFFE_H

#include <stdbool.h>
#include <stddef.h>

#include "../util/result.h"

#define MT_SPIFFE_ID_MAX 2048
#define MT_SPIFFE_TRUST_DOMAIN_MAX 255

struct mt_spiffe_id {
    const char *trust_domain; /* points into the parsed text, not terminated */
    size_t trust_domain_length;
    const char *path; /* "" or "/a/b", points into the parsed text */
    size_t path_length;
};

/* Validates text[0..length) as a SPIFFE ID; MT_ERR_SPIFFE_ID when it is not one. */
MT_RESULT mt_spiffe_id_parse(const char *text, size_t length, struct mt_spiffe_id *id);

/* Validates a bare trust domain name ("example.org"). */
bool mt_spiffe_is_valid_trust_domain(const char *text, size_t length);

// Validates text[0..length) as an identity pattern: a SPIFFE ID, or a SPIFFE ID followed by "/*"
// ("spiffe://example.org/ns/web/*", "spiffe://example.org/*"). Nothing else is a wildcard.
bool mt_spiffe_is_valid_pattern(const char *text, size_t length);

/* True when id (NUL-terminated) is a valid SPIFFE ID in trust_domain. */
bool mt_spiffe_id_is_in_trust_domain(const char *id, const char *trust_domain);

/*
 * Formats "spiffe://<trust_domain>/<path>" into output; path has no leading slash. Fails with
 * MT_ERR_SPIFFE_ID when the result is not a valid ID, MT_ERR_TOO_LONG when it does not fit.
 */
MT_RESULT mt_spiffe_id_format(char *output, size_t capacity, const char *trust_domain,
                              const char *path);

#endif
