/*
 * The reason class of a refused or failed connection (metrics.h): the tls_failure_total label
 * its failure text maps to, and the label's text.
 *
 * Owns the phrases that decide the class. It must never let the peer's words decide it: every
 * word of the text that holds "://" (an identity the peer chose) is blanked before the phrases
 * are looked for.
 */
#include <stdio.h>
#include <string.h>

#include "metrics.h"

struct reason_phrase {
    const char *phrase;
    enum mt_metrics_failure_reason reason;
};

/*
 * Order matters: "identity ... expired ... and no new one" is ours missing, not the peer's, and
 * "not in the allow list" is our policy even when the text also says "trust domain".
 */
static const struct reason_phrase reason_phrases[] = {
    {"allow list", MT_METRICS_FAILURE_POLICY},
    {"expected by", MT_METRICS_FAILURE_POLICY},
    {"no workload identity", MT_METRICS_FAILURE_NO_IDENTITY},
    {"no new one", MT_METRICS_FAILURE_NO_IDENTITY},
    {"no identity", MT_METRICS_FAILURE_NO_IDENTITY},
    {"did not speak tls", MT_METRICS_FAILURE_NOT_TLS},
    {"not tls", MT_METRICS_FAILURE_NOT_TLS},
    {"plaintext", MT_METRICS_FAILURE_NOT_TLS},
    {"trusted anchor", MT_METRICS_FAILURE_UNTRUSTED_CA},
    {"foreign ca", MT_METRICS_FAILURE_UNTRUSTED_CA},
    {"untrusted", MT_METRICS_FAILURE_UNTRUSTED_CA},
    {"unknown ca", MT_METRICS_FAILURE_UNTRUSTED_CA},
    {"expired", MT_METRICS_FAILURE_EXPIRED},
    {"not yet valid", MT_METRICS_FAILURE_EXPIRED},
    {"svid", MT_METRICS_FAILURE_BAD_SVID},
    {"did not return a certificate", MT_METRICS_FAILURE_BAD_SVID},
    {"trust domain", MT_METRICS_FAILURE_BAD_SVID},
    {"timed out", MT_METRICS_FAILURE_TIMEOUT},
    {"timeout", MT_METRICS_FAILURE_TIMEOUT},
    /* An alert names what the peer rejected, possibly "our policy": the peer decided. */
    {"alert", MT_METRICS_FAILURE_PEER_REJECTED},
    {"peer closed", MT_METRICS_FAILURE_PEER_REJECTED},
    {"reset", MT_METRICS_FAILURE_PEER_REJECTED},
    {"policy", MT_METRICS_FAILURE_POLICY},
    {"not allowed", MT_METRICS_FAILURE_POLICY},
    {"authoriz", MT_METRICS_FAILURE_POLICY},
    {"refused by", MT_METRICS_FAILURE_POLICY},
    {"rejected", MT_METRICS_FAILURE_PEER_REJECTED},
};

/* The longest reason classified; the phrases come early in every reason libmeshtls writes. */
#define REASON_TEXT_MAX 256

/*
 * Copies text with every word that holds "://" blanked out: identities are the peer's words, not
 * ours, and a peer named spiffe://td/expired-jobs must not turn a policy refusal into "expired".
 */
static void mask_uris(const char *text, char *masked, size_t capacity)
{
    snprintf(masked, capacity, "%s", text);
    char *word = masked;
    while (*word != '\0') {
        size_t length = strcspn(word, " \t");
        char *scheme = strstr(word, "://");
        if (scheme != NULL && scheme < word + length)
            memset(word, ' ', length);
        word += length;
        word += strspn(word, " \t");
    }
}

enum mt_metrics_failure_reason mt_metrics_failure_reason_classify(const char *failure_reason)
{
    if (failure_reason == NULL)
        return MT_METRICS_FAILURE_OTHER;
    char masked[REASON_TEXT_MAX];
    mask_uris(failure_reason, masked, sizeof(masked));
    for (size_t i = 0; i < sizeof(reason_phrases) / sizeof(reason_phrases[0]); i++)
        if (strcasestr(masked, reason_phrases[i].phrase) != NULL)
            return reason_phrases[i].reason;
    return MT_METRICS_FAILURE_OTHER;
}

const char *mt_metrics_failure_reason_label(enum mt_metrics_failure_reason reason)
{
    static const char *const labels[] = {
#define MT_METRICS_REASON_LABEL(name, label) label,
        MT_METRICS_FAILURE_REASONS(MT_METRICS_REASON_LABEL)
#undef MT_METRICS_REASON_LABEL
    };
    if ((unsigned)reason >= MT_METRICS_FAILURE_COUNT)
        return "other";
    return labels[reason];
}
