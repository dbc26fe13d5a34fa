/*
 * SPIFFE ID syntax, exactly as the SPIFFE-ID standard states it (section 2: scheme, trust domain
 * and path), and nothing more lenient.
 *
 * Owns the answer to "is this text a SPIFFE ID, and in which trust domain". An identity is
 * compared byte for byte elsewhere, so there is one spelling per ID: the scheme is lowercase,
 * nothing is percent-decoded, and anything a general URI parser would accept but the standard
 * forbids (port, userinfo, query, fragment, empty or dot segments, trailing slash) is rejected.
 * Must never allocate, do I/O or normalise its input.
 */
#include <string.h>

#include "spiffe.h"

static const char scheme[] = "spiffe://";
#define SCHEME_LENGTH (sizeof(scheme) - 1)

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Section 2.1: trust domain characters; uppercase is invalid, not something to fold. */
static bool is_trust_domain_char(char c)
{
    return is_lower_alnum(c) || c == '.' || c == '-' || c == '_';
}

/* Section 2.2: path segment characters. */
static bool is_segment_char(char c)
{
    return is_trust_domain_char(c) || (c >= 'A' && c <= 'Z');
}

bool mt_spiffe_is_valid_trust_domain(const char *text, size_t length)
{
    if (text == NULL || length == 0 || length > MT_SPIFFE_TRUST_DOMAIN_MAX)
        return false;
    for (size_t i = 0; i < length; i++) {
        if (!is_trust_domain_char(text[i]))
            return false;
    }
    return true;
}

static bool is_valid_segment(const char *segment, size_t length)
{
    if (length == 0)
        return false;
    if ((length == 1 && segment[0] == '.') ||
        (length == 2 && segment[0] == '.' && segment[1] == '.'))
        return false;
    for (size_t i = 0; i < length; i++) {
        if (!is_segment_char(segment[i]))
            return false;
    }
    return true;
}

/* "a/b/c": one or more segments separated by single slashes, no slash at either end. */
static bool is_valid_segments(const char *text, size_t length)
{
    size_t start = 0;
    for (size_t i = 0; i <= length; i++) {
        if (i == length || text[i] == '/') {
            if (!is_valid_segment(text + start, i - start))
                return false;
            start = i + 1;
        }
    }
    return true;
}

/* "" or "/a/b/c". */
static bool is_valid_path(const char *text, size_t length)
{
    if (length == 0)
        return true;
    return text[0] == '/' && is_valid_segments(text + 1, length - 1);
}

MT_RESULT mt_spiffe_id_parse(const char *text, size_t length, struct mt_spiffe_id *id)
{
    MT_ENSURE_REF(text);
    MT_ENSURE_REF(id);
    MT_ENSURE(length <= MT_SPIFFE_ID_MAX, MT_ERR_SPIFFE_ID);
    MT_ENSURE(length > SCHEME_LENGTH && memcmp(text, scheme, SCHEME_LENGTH) == 0, MT_ERR_SPIFFE_ID);

    const char *trust_domain = text + SCHEME_LENGTH;
    size_t rest = length - SCHEME_LENGTH;
    const char *slash = memchr(trust_domain, '/', rest);
    size_t trust_domain_length = slash != NULL ? (size_t)(slash - trust_domain) : rest;
    MT_ENSURE(mt_spiffe_is_valid_trust_domain(trust_domain, trust_domain_length), MT_ERR_SPIFFE_ID);

    const char *path = trust_domain + trust_domain_length;
    size_t path_length = rest - trust_domain_length;
    MT_ENSURE(is_valid_path(path, path_length), MT_ERR_SPIFFE_ID);

    id->trust_domain = trust_domain;
    id->trust_domain_length = trust_domain_length;
    id->path = path;
    id->path_length = path_length;
    return MT_OK_RESULT;
}

bool mt_spiffe_is_valid_pattern(const char *text, size_t length)
{
    if (text == NULL)
        return false;
    struct mt_spiffe_id parsed;
    if (length >= 2 && text[length - 2] == '/' && text[length - 1] == '*')
        length -= 2;
    return mt_result_is_ok(mt_spiffe_id_parse(text, length, &parsed));
}

bool mt_spiffe_id_is_in_trust_domain(const char *id, const char *trust_domain)
{
    if (id == NULL || trust_domain == NULL)
        return false;
    /* strnlen bounds the scan: anything longer than the maximum is not an ID anyway. */
    size_t id_length = strnlen(id, MT_SPIFFE_ID_MAX + 1);
    struct mt_spiffe_id parsed;
    if (!mt_result_is_ok(mt_spiffe_id_parse(id, id_length, &parsed)))
        return false;
    size_t trust_domain_length = strnlen(trust_domain, MT_SPIFFE_TRUST_DOMAIN_MAX + 1);
    return mt_spiffe_is_valid_trust_domain(trust_domain, trust_domain_length) &&
           parsed.trust_domain_length == trust_domain_length &&
           memcmp(parsed.trust_domain, trust_domain, trust_domain_length) == 0;
}

MT_RESULT mt_spiffe_id_format(char *output, size_t capacity, const char *trust_domain,
                              const char *path)
{
    MT_ENSURE_REF(output);
    MT_ENSURE_REF(trust_domain);
    MT_ENSURE_REF(path);
    if (capacity > 0)
        output[0] = '\0';

    size_t trust_domain_length = strnlen(trust_domain, MT_SPIFFE_TRUST_DOMAIN_MAX + 1);
    size_t path_length = strnlen(path, MT_SPIFFE_ID_MAX + 1);
    MT_ENSURE(mt_spiffe_is_valid_trust_domain(trust_domain, trust_domain_length), MT_ERR_SPIFFE_ID);
    MT_ENSURE(path_length == 0 || is_valid_segments(path, path_length), MT_ERR_SPIFFE_ID);
    /* Both lengths are bounded above, so this sum cannot wrap. */
    size_t length = SCHEME_LENGTH + trust_domain_length + (path_length > 0 ? 1 + path_length : 0);
    MT_ENSURE(length <= MT_SPIFFE_ID_MAX, MT_ERR_SPIFFE_ID);
    MT_ENSURE(length < capacity, MT_ERR_TOO_LONG);

    char *cursor = output;
    memcpy(cursor, scheme, SCHEME_LENGTH);
    cursor += SCHEME_LENGTH;
    memcpy(cursor, trust_domain, trust_domain_length);
    cursor += trust_domain_length;
    if (path_length > 0) {
        *cursor++ = '/';
        memcpy(cursor, path, path_length);
        cursor += path_length;
    }
    *cursor = '\0';
    return MT_OK_RESULT;
}
