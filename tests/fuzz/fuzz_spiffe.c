// libFuzzer target for SPIFFE IDs and identity patterns: util/spiffe.c (IDs, trust domains,
// patterns, formatting) and the allow-pattern matching of policy/policy.c, which decide whose
// certificate a connection accepts. Their input comes from peers' certificates and the config.
//
// The input is split at its first NUL into a pattern and an ID (both the whole input when there
// is none); every function runs on the pieces and the whole. Beyond "no crash, no read past the
// end" it checks what the policy relies on:
//   - a parsed ID's trust domain and path lie inside the text and format back to the same ID;
//   - a valid ID is a valid pattern, and matches itself;
//   - a match needs a valid pattern and a valid ID; without "/*" it is equality, with it the ID
//     starts with the pattern's stem, is longer, and lies in the pattern's trust domain.
// Must never allocate per input or print. (Line comments: the patterns contain a slash-star.)
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/spiffe.h"
#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* NUL-terminated copies of the pieces; longer inputs are cut, as strnlen in the policy would. */
#define TEXT_MAX (MT_SPIFFE_ID_MAX + 16)
static char pattern[TEXT_MAX + 1];
static char id[TEXT_MAX + 1];
static char formatted[MT_SPIFFE_ID_MAX + 1];
static char trust_domain[MT_SPIFFE_TRUST_DOMAIN_MAX + 1];

static void require(bool condition)
{
    if (!condition)
        abort();
}

static size_t copy_text(char *output, const uint8_t *data, size_t size)
{
    size_t length = size < TEXT_MAX ? size : TEXT_MAX;
    memcpy(output, data, length);
    output[length] = '\0';
    return strlen(output);
}

/* Checks the contract of mt_spiffe_id_parse on text[0..length). */
static void check_id(const char *text, size_t length)
{
    struct mt_spiffe_id parsed;
    bool is_id = mt_result_is_ok(mt_spiffe_id_parse(text, length, &parsed));
    if (!is_id)
        return;
    require(length <= MT_SPIFFE_ID_MAX);
    require(parsed.trust_domain >= text && parsed.trust_domain_length >= 1 &&
            parsed.trust_domain_length <= MT_SPIFFE_TRUST_DOMAIN_MAX &&
            parsed.trust_domain + parsed.trust_domain_length <= text + length);
    require(parsed.path >= text && parsed.path + parsed.path_length <= text + length);
    require(mt_spiffe_is_valid_trust_domain(parsed.trust_domain, parsed.trust_domain_length));
    require(mt_spiffe_is_valid_pattern(text, length));
    if (memchr(text, '\0', length) != NULL)
        return;

    /* Formatting the pieces again gives the same ID. */
    memcpy(trust_domain, parsed.trust_domain, parsed.trust_domain_length);
    trust_domain[parsed.trust_domain_length] = '\0';
    char path[MT_SPIFFE_ID_MAX + 1];
    size_t path_length = parsed.path_length > 0 ? parsed.path_length - 1 : 0;
    memcpy(path, parsed.path_length > 0 ? parsed.path + 1 : "", path_length);
    path[path_length] = '\0';
    if (path_length > 0) {
        require(
            mt_result_is_ok(mt_spiffe_id_format(formatted, sizeof(formatted), trust_domain, path)));
        require(strlen(formatted) == length && memcmp(formatted, text, length) == 0);
    }
    /* The NUL-terminated forms agree with the length-delimited ones. */
    char copy[MT_SPIFFE_ID_MAX + 1];
    memcpy(copy, text, length);
    copy[length] = '\0';
    require(mt_spiffe_id_is_in_trust_domain(copy, trust_domain));
    require(mt_policy_identity_matches(copy, copy));
}

static void check_match(const char *pattern_text, const char *id_text)
{
    if (!mt_policy_identity_matches(pattern_text, id_text))
        return;
    size_t pattern_length = strlen(pattern_text);
    size_t id_length = strlen(id_text);
    struct mt_spiffe_id parsed;
    require(mt_spiffe_is_valid_pattern(pattern_text, pattern_length));
    require(mt_result_is_ok(mt_spiffe_id_parse(id_text, id_length, &parsed)));
    if (pattern_text[pattern_length - 1] != '*') {
        require(strcmp(pattern_text, id_text) == 0);
        return;
    }
    // "spiffe://td/a/*": the ID is "spiffe://td/a/" and at least one more character, in td.
    require(pattern_length >= 2 && pattern_text[pattern_length - 2] == '/');
    require(id_length > pattern_length - 1 &&
            memcmp(pattern_text, id_text, pattern_length - 1) == 0);
    memcpy(trust_domain, parsed.trust_domain, parsed.trust_domain_length);
    trust_domain[parsed.trust_domain_length] = '\0';
    size_t prefix_length = strlen("spiffe://") + parsed.trust_domain_length;
    require(pattern_length > prefix_length &&
            (pattern_text[prefix_length] == '/' || pattern_text[prefix_length] == '*'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = size > 0 ? (const char *)data : "";
    check_id(text, size);
    mt_spiffe_is_valid_trust_domain(text, size);
    mt_spiffe_is_valid_pattern(text, size);

    const uint8_t *separator = size > 0 ? memchr(data, '\0', size) : NULL;
    size_t split = separator != NULL ? (size_t)(separator - data) : size;
    copy_text(pattern, data, split);
    if (separator != NULL)
        copy_text(id, separator + 1, size - split - 1);
    else
        copy_text(id, data, size);
    check_id(id, strlen(id));
    check_match(pattern, id);
    check_match(id, pattern);
    mt_spiffe_id_is_in_trust_domain(id, pattern);

    /* The ID text used as a trust domain and the pattern text as a path. */
    if (mt_result_is_ok(mt_spiffe_id_format(formatted, sizeof(formatted), id, pattern)))
        check_id(formatted, strlen(formatted));
    return 0;
}
