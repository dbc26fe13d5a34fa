/*
 * Keeping the agent's issuer current (see issuer.h).
 *
 * Owns the struct mt_ca in force and the decision to replace it. A replacement is loaded
 * completely, aside, and swapped in only when it passed every check that start-up applies; the
 * agent is single-threaded, so no request can see a half-swapped issuer. This file must never
 * leave the agent without an issuer once it has one, and never keep a rejected key in memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../util/log.h"
#include "../util/text.h"
#include "agent_metrics.h"
#include "issuer.h"

static void format_utc(time_t when, char *text, size_t capacity)
{
    struct tm utc;
    if (gmtime_r(&when, &utc) == NULL || strftime(text, capacity, "%Y-%m-%dT%H:%M:%SZ", &utc) == 0)
        snprintf(text, capacity, "%lld", (long long)when);
}

/* The watched inputs, in a fixed order: issuer dir files (when used), then anchor files. */
static size_t input_paths(const struct mt_issuer *issuer, char paths[][PATH_MAX + 16])
{
    static const char *const names[] = {"tls.crt", "tls.key", "ca.crt"};
    const struct mt_agent_config *config = issuer->config;
    size_t count = 0;
    if (config->issuer_dir[0] != '\0')
        for (size_t i = 0; i < 3; i++)
            snprintf(paths[count++], PATH_MAX + 16, "%s/%s", config->issuer_dir, names[i]);
    for (size_t i = 0; i < config->anchor_file_count; i++)
        snprintf(paths[count++], PATH_MAX + 16, "%s", config->anchor_files[i]);
    return count;
}

static void read_signatures(const struct mt_issuer *issuer,
                            struct mt_issuer_signature signatures[MT_ISSUER_INPUTS_MAX])
{
    char paths[MT_ISSUER_INPUTS_MAX][PATH_MAX + 16];
    size_t count = input_paths(issuer, paths);
    memset(signatures, 0, sizeof(struct mt_issuer_signature) * MT_ISSUER_INPUTS_MAX);
    for (size_t i = 0; i < count; i++) {
        struct stat status;
        if (stat(paths[i], &status) != 0)
            continue;
        signatures[i] = (struct mt_issuer_signature){
            .present = true,
            .device = status.st_dev,
            .inode = status.st_ino,
            .size = status.st_size,
            .modified = status.st_mtim,
        };
    }
}

static bool signatures_equal(const struct mt_issuer_signature *a,
                             const struct mt_issuer_signature *b)
{
    for (size_t i = 0; i < MT_ISSUER_INPUTS_MAX; i++)
        if (a[i].present != b[i].present || a[i].device != b[i].device ||
            a[i].inode != b[i].inode || a[i].size != b[i].size ||
            a[i].modified.tv_sec != b[i].modified.tv_sec ||
            a[i].modified.tv_nsec != b[i].modified.tv_nsec)
            return false;
    return true;
}

/* A complete new issuer from the inputs as they are now, or nothing and a message. */
static MT_RESULT load(const struct mt_issuer *issuer, time_t now, struct mt_ca **loaded,
                      bool *created, struct mt_text *reason)
{
    const struct mt_agent_config *config = issuer->config;
    struct mt_ca *ca = calloc(1, sizeof(*ca));
    MT_ENSURE(ca != NULL, MT_ERR_NO_MEMORY);
    bool was_created = false;
    mt_result result;
    if (config->issuer_dir[0] != '\0')
        result = mt_ca_load_issuer_dir(config->issuer_dir, config->trust_domain, now, ca, reason);
    else
        result = mt_ca_load_or_create(issuer->state_dir, config->trust_domain, now, ca,
                                      &was_created, reason);
    for (size_t i = 0; i < config->anchor_file_count && mt_result_is_ok(result); i++)
        result = mt_ca_add_anchor_file(ca, config->anchor_files[i], reason);
    if (!mt_result_is_ok(result)) {
        mt_ca_cleanup(ca);
        free(ca);
        return result;
    }
    if (created != NULL)
        *created = was_created;
    *loaded = ca;
    return MT_OK_RESULT;
}

static void publish_stats(const struct mt_ca *ca)
{
    atomic_store(&mt_agent_stats.issuer_not_after, (long long)ca->not_after);
    atomic_store(&mt_agent_stats.anchor_count, (unsigned)ca->anchor_count);
}

MT_RESULT mt_issuer_open(struct mt_issuer *issuer, const struct mt_agent_config *config,
                         const char *state_dir, time_t now, bool *created, struct mt_text *reason)
{
    MT_ENSURE_REF(issuer);
    MT_ENSURE_REF(config);
    MT_ENSURE_REF(state_dir);
    memset(issuer, 0, sizeof(*issuer));
    issuer->config = config;
    MT_ENSURE(strlen(state_dir) < sizeof(issuer->state_dir), MT_ERR_TOO_LONG);
    snprintf(issuer->state_dir, sizeof(issuer->state_dir), "%s", state_dir);
    /* Signatures first: a change while loading is then seen by the next poll. */
    read_signatures(issuer, issuer->signatures);
    MT_GUARD(load(issuer, now, &issuer->ca, created, reason));
    publish_stats(issuer->ca);
    return MT_OK_RESULT;
}

int mt_issuer_poll_timeout(const struct mt_issuer *issuer, long long now_ms)
{
    if (issuer->next_poll_ms <= now_ms)
        return 0;
    return (int)(issuer->next_poll_ms - now_ms);
}

void mt_issuer_describe(const struct mt_issuer *issuer, char *text, size_t capacity)
{
    const struct mt_ca *ca = issuer->ca;
    char expiry[32];
    format_utc(ca->not_after, expiry, sizeof(expiry));
    /* A description cut to capacity is still a useful log line. */
    if (snprintf(text, capacity,
                 "issuer %s for trust domain %s, %zu intermediate(s) sent, %zu trust "
                 "anchor(s), issuer expires %s",
                 ca->cert_path, ca->trust_domain, ca->chain_length, ca->anchor_count, expiry) < 0 &&
        capacity > 0)
        text[0] = '\0';
}

void mt_issuer_poll(struct mt_issuer *issuer, long long now_ms)
{
    if (issuer->ca == NULL || now_ms < issuer->next_poll_ms)
        return;
    issuer->next_poll_ms = now_ms + MT_ISSUER_POLL_MS;
    struct mt_issuer_signature current[MT_ISSUER_INPUTS_MAX];
    read_signatures(issuer, current);
    if (signatures_equal(current, issuer->signatures))
        return;
    memcpy(issuer->signatures, current, sizeof(current));

    char message[MT_AGENT_CONFIG_MESSAGE_MAX] = "";
    char description[PATH_MAX + 256];
    struct mt_text reason = mt_text_on(message, sizeof(message));
    struct mt_ca *replacement = NULL;
    if (!mt_result_is_ok(load(issuer, time(NULL), &replacement, NULL, &reason))) {
        atomic_fetch_add(&mt_agent_stats.reloads_failed, 1);
        mt_issuer_describe(issuer, description, sizeof(description));
        mt_log_warn("issuer files changed but were not loaded: %s; still signing with the "
                    "previous %s",
                    message, description);
        return;
    }
    mt_ca_cleanup(issuer->ca);
    free(issuer->ca);
    issuer->ca = replacement;
    publish_stats(replacement);
    atomic_fetch_add(&mt_agent_stats.reloads_succeeded, 1);
    mt_issuer_describe(issuer, description, sizeof(description));
    mt_log_info("reloaded: %s", description);
}

void mt_issuer_close(struct mt_issuer *issuer)
{
    if (issuer == NULL || issuer->ca == NULL)
        return;
    mt_ca_cleanup(issuer->ca);
    free(issuer->ca);
    issuer->ca = NULL;
}
