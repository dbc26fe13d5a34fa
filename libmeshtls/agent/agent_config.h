/*
 * The agent's configuration (libconfig) and the rules that turn what the kernel says about a
 * caller into a SPIFFE ID.
 *
 *     trust_domain = "meshtls.local";
 *     lifetime = 86400;                      # seconds, 5 .. 30 days
 *     issuer_dir = "/etc/meshtls/issuer";     # tls.crt, tls.key, ca.crt; "" = the dev CA
 *     trust_anchors = ["old-root.pem"];       # extra anchors served in the bundle
 *     metrics_address = "127.0.0.1:4191";     # "off" disables the endpoint
 *     rules = (
 *       { uid = 33; exe = "/usr/sbin/nginx"; id = "ns/web/sa/nginx"; },
 *       { uid = 1000; id = "ns/dev/sa/{uid}"; }
 *     );
 *
 * A rule matches when every field it gives matches (uid, gid, exe); exe is an exact path, or an
 * fnmatch(3) pattern when it contains one of "*?[" ('*' does not cross '/'). The first matching
 * rule wins; with none, the identity is spiffe://<trust domain>/uid/<uid>. In id, {uid} and {gid}
 * are replaced by the caller's numbers. What a caller asks for never enters this decision.
 *
 * Errors are one line, "FILE:LINE: KEY: what is wrong (valid values)", and leave the
 * configuration as it was: a configuration that fails to load is never half-applied.
 */
#ifndef MT_AGENT_AGENT_CONFIG_H
#define MT_AGENT_AGENT_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../identity/spiffe.h"
#include "../util/result.h"

#define MT_AGENT_CONFIG_DEFAULT_TRUST_DOMAIN "meshtls.local"
#define MT_AGENT_CONFIG_DEFAULT_LIFETIME 86400u
/* Short lifetimes exist for rotation tests; production keeps hours. */
#define MT_AGENT_CONFIG_LIFETIME_MIN 5u
#define MT_AGENT_CONFIG_LIFETIME_MAX (30u * 24u * 3600u)
#define MT_AGENT_CONFIG_RULES_MAX 4096
#define MT_AGENT_CONFIG_MESSAGE_MAX 512
#define MT_AGENT_CONFIG_ANCHOR_FILES_MAX 8
#define MT_AGENT_CONFIG_DEFAULT_METRICS_ADDRESS "127.0.0.1:4191"
#define MT_AGENT_CONFIG_ADDRESS_MAX 128

struct mt_agent_rule {
    bool has_uid;
    uid_t uid;
    bool has_gid;
    gid_t gid;
    char *exe;        /* NULL: any executable */
    bool exe_is_glob; /* exe contains one of "*?[" and is matched with fnmatch(3) */
    char *id;         /* the ID's path, without leading slash; may hold {uid} and {gid} */
    unsigned line;    /* where the rule starts in the file, for logs */
};

struct mt_agent_config {
    char source[PATH_MAX]; /* the file read, "" when none */
    char trust_domain[MT_SPIFFE_TRUST_DOMAIN_MAX + 1];
    uint32_t lifetime_seconds;
    struct mt_agent_rule *rules;
    size_t rule_count;
    char issuer_dir[PATH_MAX]; /* "" = the dev CA in the state directory */
    char anchor_files[MT_AGENT_CONFIG_ANCHOR_FILES_MAX][PATH_MAX]; /* extra trust anchors */
    size_t anchor_file_count;
    char metrics_address[MT_AGENT_CONFIG_ADDRESS_MAX]; /* host:port, [v6]:port, or "off" */
};

/* What attestation established about a caller. exe is NULL when it could not be read. */
struct mt_agent_caller {
    uid_t uid;
    gid_t gid;
    const char *exe;
};

/* The defaults: trust domain meshtls.local, 24 h, no rules. */
void mt_agent_config_init(struct mt_agent_config *config);
/* Frees the rules; the configuration is then empty (call init to use it again). */
void mt_agent_config_cleanup(struct mt_agent_config *config);

/* Reads path over the values already in config; on error config is unchanged. */
MT_RESULT mt_agent_config_load_file(const char *path, struct mt_agent_config *config, char *message,
                                    size_t message_size);

/* Command-line overrides, validated like the file's values ("--trust-domain: ..."). */
MT_RESULT mt_agent_config_set_trust_domain(struct mt_agent_config *config, const char *trust_domain,
                                           char *message, size_t message_size);
MT_RESULT mt_agent_config_set_lifetime(struct mt_agent_config *config, const char *seconds,
                                       char *message, size_t message_size);

/* --issuer-dir, --extra-anchors (appended to the file's list) and --metrics-address. */
MT_RESULT mt_agent_config_set_issuer_dir(struct mt_agent_config *config, const char *directory,
                                         char *message, size_t message_size);
MT_RESULT mt_agent_config_add_anchor_file(struct mt_agent_config *config, const char *path,
                                          char *message, size_t message_size);
MT_RESULT mt_agent_config_set_metrics_address(struct mt_agent_config *config, const char *address,
                                              char *message, size_t message_size);

/*
 * The SPIFFE ID for caller: the first matching rule's, else spiffe://<td>/uid/<uid>. *rule (may be
 * NULL) receives the rule that matched, NULL for the default.
 */
MT_RESULT mt_agent_config_resolve_id(const struct mt_agent_config *config,
                                     const struct mt_agent_caller *caller, char *spiffe_id,
                                     size_t capacity, const struct mt_agent_rule **rule);

#endif
