/*
 * The one decision "which SPIFFE ID does this caller get" (agent_config.h): the first rule of the
 * agent's configuration whose selectors all match the attested caller, or the pod's default.
 *
 * Owns the matching of each selector (uid, gid, exe, sha256, pod keys) against what attestation
 * found. It must never consult anything the caller claims, and never let a name stand for a file:
 * the caller's name for its executable comes from a mount namespace it may have built, so an exe
 * rule matches only when the file the agent finds at the rule's path is the caller's executable.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "../util/log.h"
#include "../util/text.h"
#include "agent_config.h"
#include "rules.h"

/* "rules[2] (FILE:LINE) exe PATH does not match pid P uid U: " is where every reason starts. */
#define MISMATCH_FORMAT "rules[%zu] (%s:%u) %s %s does not match pid %ld uid %u: "
#define MISMATCH_ARGUMENTS(config, index, selector, value, caller)                                 \
    (index), (config)->source, (config)->rules[index].line, (selector), (value),                   \
        (long)(caller)->pid, (unsigned)(caller)->uid

/* True when path names the same file as name, through symbolic links (the rule's path). */
static bool resolves_to(const char *path, const char *name)
{
    char resolved[PATH_MAX];
    return realpath(path, resolved) != NULL && strcmp(resolved, name) == 0;
}

/*
 * True when the rule's exe is the caller's executable: the file at the rule's path (or, for a
 * glob, at the caller's name when that name matches) is the very file the caller runs. Logs why
 * not, and counts an executable that bears the rule's name but is another file.
 */
static bool exe_matches(const struct mt_agent_config *config, size_t index,
                        const struct mt_agent_caller *caller, struct mt_agent_match *match)
{
    const struct mt_agent_rule *rule = &config->rules[index];
    /* An executable attestation could not read can never satisfy a rule that names one. */
    if (caller->exe == NULL) {
        mt_log_limited(MT_LOG_DEBUG, MISMATCH_FORMAT "its executable could not be read",
                       MISMATCH_ARGUMENTS(config, index, "exe", rule->exe, caller));
        return false;
    }
    const char *path = rule->exe;
    /*
     * FNM_PATHNAME keeps '*' within one directory ("/usr/bin/py*" does not match
     * "/usr/bin/py/tool"); FNM_PERIOD keeps it from matching hidden files.
     */
    if (rule->exe_is_glob) {
        if (fnmatch(rule->exe, caller->exe, FNM_PATHNAME | FNM_PERIOD) != 0)
            return false;
        path = caller->exe;
    }
    /* A container's files are where its root is: /proc/<pid>/root + the path. */
    char in_container[PATH_MAX + 32];
    if (caller->pod != NULL) {
        snprintf(in_container, sizeof(in_container), "/proc/%ld/root%s", (long)caller->pid, path);
        path = in_container;
    }
    struct stat file;
    if (stat(path, &file) != 0) {
        int error = errno;
        /* No CAP_SYS_PTRACE: the agent's setup to fix, not the caller's program. */
        if (error == EACCES || error == EPERM)
            mt_log_limited(MT_LOG_WARN,
                           MISMATCH_FORMAT "the agent may not examine %s (%s): give it "
                                           "CAP_SYS_PTRACE (in Kubernetes: hostPID and the "
                                           "SYS_PTRACE capability) to read callers' /proc entries",
                           MISMATCH_ARGUMENTS(config, index, "exe", rule->exe, caller), path,
                           strerror(error));
        else
            mt_log_limited(MT_LOG_INFO,
                           MISMATCH_FORMAT "the agent cannot examine %s (%s); exe names a file as "
                                           "the agent sees it (a workload in a container: use "
                                           "sha256)",
                           MISMATCH_ARGUMENTS(config, index, "exe", rule->exe, caller), path,
                           strerror(error));
        return false;
    }
    if (file.st_dev == caller->exe_device && file.st_ino == caller->exe_inode)
        return true;
    bool named_like_rule = rule->exe_is_glob || strcmp(rule->exe, caller->exe) == 0 ||
                           (caller->pod == NULL && resolves_to(rule->exe, caller->exe));
    if (!named_like_rule) {
        mt_log_limited(MT_LOG_DEBUG, MISMATCH_FORMAT "its executable %s is another file",
                       MISMATCH_ARGUMENTS(config, index, "exe", rule->exe, caller), caller->exe);
        return false;
    }
    if (match != NULL)
        match->exe_mismatches++;
    mt_log_limited(MT_LOG_WARN,
                   MISMATCH_FORMAT "its executable is named %s%s but is another file (device "
                                   "%u:%u inode %llu; the agent's %s is %u:%u inode %llu)",
                   MISMATCH_ARGUMENTS(config, index, "exe", rule->exe, caller), caller->exe,
                   caller->other_mount_namespace ? " in another mount namespace" : "",
                   major(caller->exe_device), minor(caller->exe_device),
                   (unsigned long long)caller->exe_inode, path, major(file.st_dev),
                   minor(file.st_dev), (unsigned long long)file.st_ino);
    return false;
}

/* Whether a rule names the caller; undecided while a digest it needs cannot be had yet. */
enum rule_verdict {
    RULE_NO,
    RULE_YES,
    RULE_UNDECIDED,
};

static enum rule_verdict sha256_matches(const struct mt_agent_config *config, size_t index,
                                        const struct mt_agent_caller *caller)
{
    const struct mt_agent_rule *rule = &config->rules[index];
    char hex[2 * MT_DIGEST_SHA256_SIZE + 1];
    for (size_t i = 0; i < MT_DIGEST_SHA256_SIZE; i++)
        snprintf(hex + 2 * i, 3, "%02x", rule->sha256[i]);
    const uint8_t *digest = caller->exe_sha256;
    const char *problem = caller->exe_sha256_problem;
    bool later = false;
    if (digest == NULL && caller->hash_exe != NULL)
        digest = caller->hash_exe(caller->hash_context, &problem, &later);
    if (digest == NULL) {
        mt_log_limited(MT_LOG_INFO, MISMATCH_FORMAT "its executable %s was not hashed%s: %s",
                       MISMATCH_ARGUMENTS(config, index, "sha256", hex, caller),
                       caller->exe != NULL ? caller->exe : "(unknown)", later ? " yet" : "",
                       problem != NULL ? problem : "not asked for");
        return later ? RULE_UNDECIDED : RULE_NO;
    }
    if (memcmp(digest, rule->sha256, MT_DIGEST_SHA256_SIZE) == 0)
        return RULE_YES;
    mt_log_limited(MT_LOG_DEBUG, MISMATCH_FORMAT "its executable %s has other contents",
                   MISMATCH_ARGUMENTS(config, index, "sha256", hex, caller),
                   caller->exe != NULL ? caller->exe : "(unknown)");
    return RULE_NO;
}

static bool rule_names_pod(const struct mt_agent_rule *rule)
{
    return rule->namespace_name != NULL || rule->service_account != NULL || rule->label_count > 0 ||
           rule->container != NULL || rule->image != NULL;
}

static bool has_label(const struct mt_agent_pod *pod, const char *key, const char *value)
{
    for (size_t i = 0; i < pod->label_count; i++)
        if (strcmp(pod->labels[i].key, key) == 0 && strcmp(pod->labels[i].value, value) == 0)
            return true;
    return false;
}

/*
 * The rule's pod selectors. A rule that names no pod key is a host rule: it never names a caller
 * in a pod, whose uid says nothing of its workload (most pods of a node run as the same few uids,
 * in every namespace). A pod rule fits when every key it gives fits the caller's pod.
 */
static bool pod_matches(const struct mt_agent_rule *rule, const struct mt_agent_caller *caller)
{
    if (!rule_names_pod(rule))
        return caller->pod == NULL;
    const struct mt_agent_pod *pod = caller->pod;
    if (pod == NULL)
        return false;
    if (rule->namespace_name != NULL && strcmp(rule->namespace_name, pod->namespace_name) != 0)
        return false;
    if (rule->service_account != NULL && strcmp(rule->service_account, pod->service_account) != 0)
        return false;
    for (size_t i = 0; i < rule->label_count; i++)
        if (!has_label(pod, rule->label_keys[i], rule->label_values[i]))
            return false;
    if (rule->container != NULL &&
        (pod->container == NULL || strcmp(rule->container, pod->container) != 0))
        return false;
    /* '/' is an ordinary character in an image reference ("registry/team/app:1.2"). */
    if (rule->image != NULL && (pod->image == NULL || fnmatch(rule->image, pod->image, 0) != 0))
        return false;
    return true;
}

static enum rule_verdict rule_matches(const struct mt_agent_config *config, size_t index,
                                      const struct mt_agent_caller *caller,
                                      struct mt_agent_match *match)
{
    const struct mt_agent_rule *rule = &config->rules[index];
    if (!pod_matches(rule, caller))
        return RULE_NO;
    if (rule->has_uid && rule->uid != caller->uid)
        return RULE_NO;
    if (rule->has_gid && rule->gid != caller->gid)
        return RULE_NO;
    if (rule->exe != NULL && !exe_matches(config, index, caller, match))
        return RULE_NO;
    /* Last: the only selector that may cost a hash of the executable. */
    return rule->has_sha256 ? sha256_matches(config, index, caller) : RULE_YES;
}

bool mt_agent_config_has_sha256_rules(const struct mt_agent_config *config)
{
    for (size_t i = 0; config != NULL && i < config->rule_count; i++)
        if (config->rules[i].has_sha256)
            return true;
    return false;
}

MT_RESULT mt_agent_config_resolve_id(const struct mt_agent_config *config,
                                     const struct mt_agent_caller *caller, char *spiffe_id,
                                     size_t capacity, struct mt_agent_match *match)
{
    MT_ENSURE_REF(config);
    MT_ENSURE_REF(caller);
    MT_ENSURE_REF(spiffe_id);
    if (match != NULL)
        *match = (struct mt_agent_match){.rule = NULL, .exe_mismatches = 0};
    for (size_t i = 0; i < config->rule_count; i++) {
        const struct mt_agent_rule *candidate = &config->rules[i];
        enum rule_verdict verdict = rule_matches(config, i, caller, match);
        /* Never a later rule or the default for a caller this rule may yet name. */
        if (verdict == RULE_UNDECIDED)
            return mt_result_of(MT_ERR_WOULD_BLOCK);
        if (verdict == RULE_NO)
            continue;
        if (match != NULL)
            match->rule = candidate;
        return mt_agent_rules_format_id(config->trust_domain, candidate, caller->uid, caller->gid,
                                        spiffe_id, capacity);
    }
    char path[MT_SPIFFE_ID_MAX + 1];
    if (caller->pod != NULL) {
        int length = snprintf(path, sizeof(path), "ns/%s/sa/%s", caller->pod->namespace_name,
                              caller->pod->service_account);
        MT_ENSURE(length > 0 && (size_t)length < sizeof(path), MT_ERR_TOO_LONG);
    } else {
        snprintf(path, sizeof(path), "uid/%u", (unsigned)caller->uid);
    }
    return mt_spiffe_id_format(spiffe_id, capacity, config->trust_domain, path);
}
