/*
 * The agent's configuration (libconfig) and the rules that turn what the kernel says about a
 * caller into a SPIFFE ID.
 *
 *     trust_domain = "meshtls.local";
 *     lifetime = 86400;                      # seconds, 5 .. 30 days
 *     issuer_dir = "/etc/meshtls/issuer";     # tls.crt, tls.key, ca.crt; "" = the dev CA
 *     trust_anchors = ["old-root.pem"];       # extra anchors served in the bundle
 *     metrics_address = "127.0.0.1:4191";     # "off" disables the endpoint
 *     kubelet = {                             # callers in pods: kubelet.h, pod_cgroup.h
 *       url = "https://10.0.0.4:10250";
 *       token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token";
 *       ca_file = "/etc/kubernetes/pki/kubelet-ca.crt";
 *     };
 *     membership_file = "/etc/meshtls/membership.conf";  # meshed endpoints for outbound "auto"
 *     api_server = {                          # meshed pods and Services: kube_watch.h
 *       url = "https://10.96.0.1:443";
 *       token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token";
 *       ca_file = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
 *     };
 *     rules = (
 *       { uid = 33; exe = "/usr/sbin/nginx"; id = "ns/web/sa/nginx"; },
 *       { sha256 = "9f86d0...(64 hex digits)"; id = "ns/tools/sa/report"; },
 *       { uid = 1000; id = "ns/dev/sa/{uid}"; }
 *     );
 *
 * A rule matches when every field it gives matches (uid, gid, exe, sha256). exe is a path, or an
 * fnmatch(3) pattern when it contains one of "*?[" ('*' does not cross '/'), and it names a file
 * as the agent sees it: the caller's executable must be that very file (same device and inode),
 * whatever the caller's mount namespace calls it, so a bind mount over the path in a namespace
 * of the caller's making matches nothing. A path that is a symbolic link names the file it
 * points to. A glob first matches the caller's name for its executable, and then the file the
 * agent finds at that name must be the caller's executable. sha256 names the executable's
 * contents (hex, as sha256sum prints it): the selector for programs in containers, whose files
 * the agent does not see at their paths. The first matching rule wins; with none, the identity
 * is spiffe://<trust domain>/uid/<uid>. In id, {uid} and {gid} are replaced by the caller's
 * numbers. What a caller asks for never enters this decision.
 *
 * With a kubelet, a caller whose cgroup is a pod's is described by the kubelet's pod list too,
 * and rules may also give namespace, service_account, labels (a group of key = "value", or an
 * array of "key=value" for keys such as app.kubernetes.io/name; all must match), container (its
 * name) and image (an fnmatch(3) pattern); a rule that gives
 * any of these never matches a process of the node. The default for a pod's caller is
 * spiffe://<trust domain>/ns/<namespace>/sa/<service account>. exe names a file inside the
 * caller's container (its /proc/<pid>/root) for a pod's caller.
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

#include "../util/spiffe.h"
#include "../tls/digest.h"
#include "../util/text.h"
#include "kubelet.h"

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
#define MT_AGENT_CONFIG_URL_MAX 512

struct mt_agent_rule {
    bool has_uid;
    uid_t uid;
    bool has_gid;
    gid_t gid;
    char *exe;        /* NULL: any executable */
    bool exe_is_glob; /* exe contains one of "*?[" and is matched with fnmatch(3) */
    bool has_sha256;  /* the executable's contents must hash to sha256 */
    uint8_t sha256[MT_DIGEST_SHA256_SIZE];
    /* Pod selectors (NULL / 0: any); a rule with one matches only callers in pods. */
    char *namespace_name;
    char *service_account;
    char **label_keys;
    char **label_values;
    size_t label_count;
    char *container;
    char *image;   /* fnmatch(3) pattern */
    char *id;      /* the ID's path, without leading slash; may hold {uid} and {gid} */
    unsigned line; /* where the rule starts in the file, for logs */
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
    char membership_file[PATH_MAX]; /* the mesh membership (membership_source.h); "" = none */
    /* The kubelet asked about callers in pods; all three or none ("" = none). */
    char kubelet_url[MT_AGENT_CONFIG_URL_MAX];
    char kubelet_token_file[PATH_MAX];
    char kubelet_ca_file[PATH_MAX];
    /* The API server listed and watched for the mesh membership (kube_watch.h); all or none. */
    char api_server_url[MT_AGENT_CONFIG_URL_MAX];
    char api_server_token_file[PATH_MAX];
    char api_server_ca_file[PATH_MAX];
};

/* What the kubelet says about a caller in a pod (kubelet.h). */
struct mt_agent_pod {
    const char *namespace_name;
    const char *name;
    const char *service_account;
    const char *workload; /* "deployment/web"; "" without a controller */
    const struct mt_kubelet_label *labels;
    size_t label_count;
    const char *container; /* NULL: the container is not in the pod's status */
    const char *image;
};

/* What attestation established about a caller (agent/attest.h). */
struct mt_agent_caller {
    pid_t pid; /* for log lines only */
    uid_t uid;
    gid_t gid;
    const char *exe;  /* its executable's name in its mount namespace; NULL: unknown */
    dev_t exe_device; /* the executable itself, as the agent sees it (valid when exe is set) */
    ino_t exe_inode;
    bool other_mount_namespace;     /* for log lines */
    const uint8_t *exe_sha256;      /* NULL when not computed */
    const char *exe_sha256_problem; /* why not, for log lines */
    /*
     * With exe_sha256 NULL, computes the digest when a sha256 rule needs it, that is once the
     * rule's uid, gid and exe fit the caller: hashing is costly, and a caller no sha256 rule
     * could name never pays for it nor makes the agent pay. Returns the digest, or NULL with
     * *problem saying why, and *later true when it can be had later (a hashing budget spent):
     * the rule is then undecided, and resolving refuses rather than fall through to another
     * rule or the default. NULL: exe_sha256 is all there is.
     */
    const uint8_t *(*hash_exe)(void *context, const char **problem, bool *later);
    void *hash_context;
    const struct mt_agent_pod *pod; /* NULL: a process of the node */
};

/* What resolving a caller found. */
struct mt_agent_match {
    const struct mt_agent_rule *rule; /* the rule that named the identity; NULL: the default */
    /* Rules whose exe the caller's executable is named like, but is another file (a bind mount
     * in the caller's namespace, a copy): each is logged as a warning. */
    unsigned exe_mismatches;
};

/* The defaults: trust domain meshtls.local, 24 h, no rules. */
void mt_agent_config_init(struct mt_agent_config *config);
/* Frees the rules; the configuration is then empty (call init to use it again). */
void mt_agent_config_cleanup(struct mt_agent_config *config);

/* Reads path over the values already in config; on error config is unchanged. */
MT_RESULT mt_agent_config_load_file(const char *path, struct mt_agent_config *config,
                                    struct mt_text *reason);

/* Command-line overrides, validated like the file's values ("--trust-domain: ..."). */
MT_RESULT mt_agent_config_set_trust_domain(struct mt_agent_config *config, const char *trust_domain,
                                           struct mt_text *reason);
MT_RESULT mt_agent_config_set_lifetime(struct mt_agent_config *config, const char *seconds,
                                       struct mt_text *reason);

/* --issuer-dir, --extra-anchors (appended to the file's list) and --metrics-address. */
MT_RESULT mt_agent_config_set_issuer_dir(struct mt_agent_config *config, const char *directory,
                                         struct mt_text *reason);
MT_RESULT mt_agent_config_add_anchor_file(struct mt_agent_config *config, const char *path,
                                          struct mt_text *reason);
/* --membership-file. */
MT_RESULT mt_agent_config_set_membership_file(struct mt_agent_config *config, const char *path,
                                              struct mt_text *reason);
MT_RESULT mt_agent_config_set_metrics_address(struct mt_agent_config *config, const char *address,
                                              struct mt_text *reason);
/* --kubelet-url, --kubelet-token-file, --kubelet-ca-file. */
MT_RESULT mt_agent_config_set_kubelet_url(struct mt_agent_config *config, const char *url,
                                          struct mt_text *reason);
MT_RESULT mt_agent_config_set_kubelet_token_file(struct mt_agent_config *config, const char *path,
                                                 struct mt_text *reason);
MT_RESULT mt_agent_config_set_kubelet_ca_file(struct mt_agent_config *config, const char *path,
                                              struct mt_text *reason);
/* --kube-api-url, --kube-api-token-file, --kube-api-ca-file. */
MT_RESULT mt_agent_config_set_api_server_url(struct mt_agent_config *config, const char *url,
                                             struct mt_text *reason);
MT_RESULT mt_agent_config_set_api_server_token_file(struct mt_agent_config *config,
                                                    const char *path, struct mt_text *reason);
MT_RESULT mt_agent_config_set_api_server_ca_file(struct mt_agent_config *config, const char *path,
                                                 struct mt_text *reason);
/* After the file and the flags: the API server's three settings are all given, or none. */
MT_RESULT mt_agent_config_check_api_server(const struct mt_agent_config *config,
                                           struct mt_text *reason);
/* After the file and the flags: the kubelet's three settings are all given, or none. */
MT_RESULT mt_agent_config_check_kubelet(const struct mt_agent_config *config,
                                        struct mt_text *reason);

/*
 * The SPIFFE ID for caller: the first matching rule's, else spiffe://<td>/uid/<uid> (for a
 * caller in a pod spiffe://<td>/ns/<namespace>/sa/<service account>). match (may
 * be NULL) receives what was found. Why a rule whose uid and gid fit did not match is logged
 * (rate-limited: debug for another program, info when the agent cannot examine the rule's path
 * or the executable was not hashed, warn when the executable has the rule's path but is another
 * file).
 */
MT_RESULT mt_agent_config_resolve_id(const struct mt_agent_config *config,
                                     const struct mt_agent_caller *caller, char *spiffe_id,
                                     size_t capacity, struct mt_agent_match *match);

/* True when a rule has a sha256 selector. */
bool mt_agent_config_has_sha256_rules(const struct mt_agent_config *config);

#endif
