/*
 * The agent's configuration file and flags (see agent_config.h for the format); the decision
 * "which SPIFFE ID does this caller get" is config_resolve.c's.
 *
 * Owns the translation of libconfig text and flags into struct mt_agent_config, through the one
 * libconfig reader (config/reader.h); the rules themselves are read by rules.c. It must never
 * accept a value it has not checked: unknown keys, wrong types, out-of-range numbers and rule IDs
 * that cannot form a valid SPIFFE ID all stop the load with a message naming file, line and key,
 * because a rule silently ignored or misread would hand out identities nobody intended. It must
 * never consult anything the caller claims; the caller's description comes from attestation only.
 * It must never let a name stand for a file: the caller's name for its executable comes from a
 * mount namespace it may have built, so an exe rule matches only when the file the agent finds at
 * the rule's path is the caller's executable.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config/reader.h"
#include "../util/log.h"
#include "../util/text.h"
#include "agent_config.h"
#include "rules.h"

#define TRUST_DOMAIN_VALUES "lowercase letters, digits, '.', '-', '_'; at most 255 characters"
#define ADDRESS_VALUES "\"127.0.0.1:4191\", \"[::1]:4191\", or \"off\""
#define LIFETIME_UNIT "seconds"

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))

/* ---- reading the file -------------------------------------------------------------------- */

/* One load: where its messages go and the configuration it fills. */
struct load {
    struct mt_config_reader reader;
    struct mt_agent_config *loaded;
};

/* The file's rules, which replace any before them; checked within the trust domain read first. */
static MT_RESULT read_rules(void *context, const config_setting_t *setting)
{
    struct load *load = context;
    return mt_agent_rules_read(&load->reader, setting, load->loaded->trust_domain,
                               &load->loaded->rules, &load->loaded->rule_count);
}

static MT_RESULT check_trust_domain(const struct mt_config_reader *reader,
                                    const config_setting_t *setting, const char *key,
                                    const char *trust_domain)
{
    if (mt_spiffe_is_valid_trust_domain(trust_domain, strlen(trust_domain)))
        return MT_OK_RESULT;
    return mt_config_reader_fail_value(reader, setting, key, trust_domain,
                                       "is not a valid trust domain (%s)", TRUST_DOMAIN_VALUES);
}

static MT_RESULT read_trust_domain(struct load *load, const config_setting_t *setting)
{
    const char *text;
    MT_GUARD(
        mt_config_read_string(&load->reader, setting, "trust_domain", TRUST_DOMAIN_VALUES, &text));
    MT_GUARD(check_trust_domain(&load->reader, setting, "trust_domain", text));
    snprintf(load->loaded->trust_domain, sizeof(load->loaded->trust_domain), "%s", text);
    return MT_OK_RESULT;
}

/* Read before every other key by read_root, wherever it stands. */
static MT_RESULT read_trust_domain_first(void *context, const config_setting_t *setting)
{
    (void)context;
    (void)setting;
    return MT_OK_RESULT;
}

static MT_RESULT read_lifetime(void *context, const config_setting_t *setting)
{
    struct load *load = context;
    long long seconds;
    MT_GUARD(mt_config_read_integer(&load->reader, setting, "lifetime",
                                    MT_AGENT_CONFIG_LIFETIME_MIN, MT_AGENT_CONFIG_LIFETIME_MAX,
                                    LIFETIME_UNIT, &seconds));
    load->loaded->lifetime_seconds = (uint32_t)seconds;
    return MT_OK_RESULT;
}

/* setting NULL: a flag, named by key. */
static MT_RESULT store_path(const struct mt_config_reader *reader, const config_setting_t *setting,
                            const char *key, const char *value, char *destination, size_t capacity)
{
    if (value[0] == '\0' || strlen(value) >= capacity)
        return mt_config_reader_fail_value(reader, setting, key, value,
                                           "is empty or too long (a path)");
    snprintf(destination, capacity, "%s", value);
    return MT_OK_RESULT;
}

static MT_RESULT read_issuer_dir(void *context, const config_setting_t *setting)
{
    struct load *load = context;
    const char *text;
    MT_GUARD(mt_config_read_string(&load->reader, setting, "issuer_dir",
                                   "a directory holding tls.crt, tls.key, ca.crt", &text));
    return store_path(&load->reader, setting, "issuer_dir", text, load->loaded->issuer_dir,
                      sizeof(load->loaded->issuer_dir));
}

static MT_RESULT read_trust_anchors(void *context, const config_setting_t *setting)
{
    struct load *load = context;
    const struct mt_config_reader *reader = &load->reader;
    if (!mt_config_is_sequence(setting))
        return mt_config_reader_fail_type(
            reader, setting, "trust_anchors",
            "an array of PEM file paths (such as [\"a.pem\", \"b.pem\"])");
    int count = config_setting_length(setting);
    if (count > MT_AGENT_CONFIG_ANCHOR_FILES_MAX)
        return mt_config_reader_fail(reader, setting, "trust_anchors",
                                     "%d files are too many (at most %d)", count,
                                     MT_AGENT_CONFIG_ANCHOR_FILES_MAX);
    for (int i = 0; i < count; i++) {
        const config_setting_t *element = config_setting_get_elem(setting, (unsigned)i);
        char key[32];
        snprintf(key, sizeof(key), "trust_anchors[%d]", i);
        const char *text;
        MT_GUARD(mt_config_read_string(reader, element, key, "a PEM file path", &text));
        MT_GUARD(store_path(reader, element, key, text, load->loaded->anchor_files[i],
                            sizeof(load->loaded->anchor_files[i])));
    }
    load->loaded->anchor_file_count = (size_t)count;
    return MT_OK_RESULT;
}

/* "off", "host:port" or "[v6 address]:port" with a port in 1 .. 65535. */
static bool is_valid_address(const char *address)
{
    if (strcmp(address, "off") == 0)
        return true;
    const char *colon = strrchr(address, ':');
    if (colon == NULL || colon == address || colon[1] == '\0' ||
        strlen(address) >= MT_AGENT_CONFIG_ADDRESS_MAX)
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    return errno == 0 && *end == '\0' && colon[1] >= '0' && colon[1] <= '9' && port >= 1 &&
           port <= 65535;
}

/* setting NULL: the flag --metrics-address. */
static MT_RESULT store_address(const struct mt_config_reader *reader,
                               const config_setting_t *setting, const char *key,
                               const char *address, struct mt_agent_config *config)
{
    if (!is_valid_address(address))
        return mt_config_reader_fail_value(reader, setting, key, address, "is not an address (%s)",
                                           ADDRESS_VALUES);
    snprintf(config->metrics_address, sizeof(config->metrics_address), "%s", address);
    return MT_OK_RESULT;
}

static MT_RESULT read_metrics_address(void *context, const config_setting_t *setting)
{
    struct load *load = context;
    const char *text;
    MT_GUARD(
        mt_config_read_string(&load->reader, setting, "metrics_address", ADDRESS_VALUES, &text));
    return store_address(&load->reader, setting, "metrics_address", text, load->loaded);
}

#define KUBELET_URL_VALUES                                                                         \
    "https://HOST:PORT, the host an IP address or a DNS name (\"https://10.0.0.4:10250\")"

/* setting NULL: the flag --kubelet-url. */
static MT_RESULT store_kubelet_url(const struct mt_config_reader *reader,
                                   const config_setting_t *setting, const char *key,
                                   const char *url, struct mt_agent_config *config)
{
    if (strncmp(url, "https://", 8) != 0 || url[8] == '\0' ||
        strlen(url) >= sizeof(config->kubelet_url))
        return mt_config_reader_fail_value(reader, setting, key, url, "is not a URL (%s)",
                                           KUBELET_URL_VALUES);
    snprintf(config->kubelet_url, sizeof(config->kubelet_url), "%s", url);
    return MT_OK_RESULT;
}

static MT_RESULT read_kubelet_url(void *context, const config_setting_t *setting)
{
    struct load *load = context;
    const char *text;
    MT_GUARD(
        mt_config_read_string(&load->reader, setting, "kubelet.url", KUBELET_URL_VALUES, &text));
    return store_kubelet_url(&load->reader, setting, "kubelet.url", text, load->loaded);
}

static MT_RESULT read_kubelet_token_file(void *context, const config_setting_t *setting)
{
    struct load *load = context;
    const char *text;
    MT_GUARD(mt_config_read_string(&load->reader, setting, "kubelet.token_file",
                                   "a file holding the bearer token", &text));
    return store_path(&load->reader, setting, "kubelet.token_file", text,
                      load->loaded->kubelet_token_file, sizeof(load->loaded->kubelet_token_file));
}

static MT_RESULT read_kubelet_ca_file(void *context, const config_setting_t *setting)
{
    struct load *load = context;
    const char *text;
    MT_GUARD(mt_config_read_string(&load->reader, setting, "kubelet.ca_file",
                                   "a PEM file of the kubelet's CA", &text));
    return store_path(&load->reader, setting, "kubelet.ca_file", text,
                      load->loaded->kubelet_ca_file, sizeof(load->loaded->kubelet_ca_file));
}

static const struct mt_config_key kubelet_keys[] = {
    {"url", read_kubelet_url},
    {"token_file", read_kubelet_token_file},
    {"ca_file", read_kubelet_ca_file},
};

static MT_RESULT read_kubelet(void *context, const config_setting_t *setting)
{
    struct load *load = context;
    if (!config_setting_is_group(setting))
        return mt_config_reader_fail_type(
            &load->reader, setting, "kubelet",
            "a group ({ url = \"https://10.0.0.4:10250\"; token_file = ...; ca_file = ...; })");
    MT_GUARD(mt_config_read_group(&load->reader, setting, "kubelet", kubelet_keys,
                                  COUNT_OF(kubelet_keys), load));
    for (size_t i = 0; i < COUNT_OF(kubelet_keys); i++)
        if (config_setting_get_member(setting, kubelet_keys[i].name) == NULL)
            return mt_config_reader_fail_missing(&load->reader, setting, "kubelet",
                                                 kubelet_keys[i].name,
                                                 "url, token_file and ca_file go together");
    return MT_OK_RESULT;
}

#define API_SERVER_URL_VALUES                                                                      \
    "https://HOST[:PORT], the host an IP address or a DNS name (\"https://10.96.0.1:443\")"

/* setting NULL: the flag --kube-api-url. */
static MT_RESULT store_api_server_url(const struct mt_config_reader *reader,
                                      const config_setting_t *setting, const char *key,
                                      const char *url, struct mt_agent_config *config)
{
    if (strncmp(url, "https://", 8) != 0 || url[8] == '\0' ||
        strlen(url) >= sizeof(config->api_server_url))
        return mt_config_reader_fail_value(reader, setting, key, url, "is not a URL (%s)",
                                           API_SERVER_URL_VALUES);
    snprintf(config->api_server_url, sizeof(config->api_server_url), "%s", url);
    return MT_OK_RESULT;
}

static MT_RESULT read_api_server_url(void *context, const config_setting_t *setting)
{
    struct load *load = context;
    const char *text;
    MT_GUARD(mt_config_read_string(&load->reader, setting, "api_server.url", API_SERVER_URL_VALUES,
                                   &text));
    return store_api_server_url(&load->reader, setting, "api_server.url", text, load->loaded);
}

static MT_RESULT read_api_server_token_file(void *context, const config_setting_t *setting)
{
    struct load *load = context;
    const char *text;
    MT_GUARD(mt_config_read_string(&load->reader, setting, "api_server.token_file",
                                   "a file holding the bearer token", &text));
    return store_path(&load->reader, setting, "api_server.token_file", text,
                      load->loaded->api_server_token_file,
                      sizeof(load->loaded->api_server_token_file));
}

static MT_RESULT read_api_server_ca_file(void *context, const config_setting_t *setting)
{
    struct load *load = context;
    const char *text;
    MT_GUARD(mt_config_read_string(&load->reader, setting, "api_server.ca_file",
                                   "a PEM file of the cluster's CA", &text));
    return store_path(&load->reader, setting, "api_server.ca_file", text,
                      load->loaded->api_server_ca_file, sizeof(load->loaded->api_server_ca_file));
}

static const struct mt_config_key api_server_keys[] = {
    {"url", read_api_server_url},
    {"token_file", read_api_server_token_file},
    {"ca_file", read_api_server_ca_file},
};

static MT_RESULT read_api_server(void *context, const config_setting_t *setting)
{
    struct load *load = context;
    if (!config_setting_is_group(setting))
        return mt_config_reader_fail_type(
            &load->reader, setting, "api_server",
            "a group ({ url = \"https://10.96.0.1:443\"; token_file = ...; ca_file = ...; })");
    MT_GUARD(mt_config_read_group(&load->reader, setting, "api_server", api_server_keys,
                                  COUNT_OF(api_server_keys), load));
    for (size_t i = 0; i < COUNT_OF(api_server_keys); i++)
        if (config_setting_get_member(setting, api_server_keys[i].name) == NULL)
            return mt_config_reader_fail_missing(&load->reader, setting, "api_server",
                                                 api_server_keys[i].name,
                                                 "url, token_file and ca_file go together");
    return MT_OK_RESULT;
}

static MT_RESULT read_membership_file(void *context, const config_setting_t *setting)
{
    struct load *load = context;
    const char *text;
    MT_GUARD(mt_config_read_string(&load->reader, setting, "membership_file",
                                   "a file listing the meshed endpoints", &text));
    return store_path(&load->reader, setting, "membership_file", text,
                      load->loaded->membership_file, sizeof(load->loaded->membership_file));
}

static const struct mt_config_key top_level_keys[] = {
    {"trust_domain", read_trust_domain_first},
    {"lifetime", read_lifetime},
    {"rules", read_rules},
    {"issuer_dir", read_issuer_dir},
    {"trust_anchors", read_trust_anchors},
    {"metrics_address", read_metrics_address},
    {"kubelet", read_kubelet},
    {"membership_file", read_membership_file},
    {"api_server", read_api_server},
};

/*
 * Reads the file's top-level settings into load->loaded, whose rules it then owns if it read any.
 * The trust domain comes first wherever it stands, because every rule's ID is checked within it.
 */
static MT_RESULT read_root(struct load *load, const config_setting_t *root)
{
    const config_setting_t *trust_domain = config_setting_get_member(root, "trust_domain");
    if (trust_domain != NULL)
        MT_GUARD(read_trust_domain(load, trust_domain));
    return mt_config_read_group(&load->reader, root, NULL, top_level_keys, COUNT_OF(top_level_keys),
                                load);
}

void mt_agent_config_init(struct mt_agent_config *config)
{
    memset(config, 0, sizeof(*config));
    snprintf(config->trust_domain, sizeof(config->trust_domain), "%s",
             MT_AGENT_CONFIG_DEFAULT_TRUST_DOMAIN);
    config->lifetime_seconds = MT_AGENT_CONFIG_DEFAULT_LIFETIME;
    snprintf(config->metrics_address, sizeof(config->metrics_address), "%s",
             MT_AGENT_CONFIG_DEFAULT_METRICS_ADDRESS);
}

void mt_agent_config_cleanup(struct mt_agent_config *config)
{
    if (config == NULL)
        return;
    mt_agent_rules_free(config->rules, config->rule_count);
    config->rules = NULL;
    config->rule_count = 0;
}

MT_RESULT mt_agent_config_load_file(const char *path, struct mt_agent_config *config,
                                    struct mt_text *reason)
{
    MT_ENSURE_REF(path);
    MT_ENSURE_REF(config);
    struct mt_agent_config loaded = *config;
    /* Rules come only from this file: the caller's are kept unless the file has its own. */
    loaded.rules = NULL;
    loaded.rule_count = 0;
    struct load load = {.reader = {.path = path, .reason = reason}, .loaded = &loaded};
    config_t parsed;
    mt_result result = mt_config_read_file(&load.reader, &parsed);
    if (!mt_result_is_ok(result))
        goto out;
    result = read_root(&load, config_root_setting(&parsed));
    if (!mt_result_is_ok(result))
        goto out;

    snprintf(loaded.source, sizeof(loaded.source), "%s", path);
    if (config_lookup(&parsed, "rules") == NULL) {
        loaded.rules = config->rules;
        loaded.rule_count = config->rule_count;
    } else {
        mt_agent_rules_free(config->rules, config->rule_count);
    }
    *config = loaded;
    loaded.rules = NULL;
    loaded.rule_count = 0;

out:
    mt_agent_rules_free(loaded.rules, loaded.rule_count);
    config_destroy(&parsed);
    return result;
}

/* Flags have no file and no line: their messages start with the flag's name. */

MT_RESULT mt_agent_config_set_trust_domain(struct mt_agent_config *config, const char *trust_domain,
                                           struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    MT_ENSURE_REF(trust_domain);
    const struct mt_config_reader flag = {.path = NULL, .reason = reason};
    MT_GUARD(check_trust_domain(&flag, NULL, "--trust-domain", trust_domain));
    /* The rules were checked against the old trust domain; a longer one can push an ID past
     * 2048. They are named at their lines in the file they came from. */
    const struct mt_config_reader file = {.path = config->source, .reason = reason};
    for (size_t i = 0; i < config->rule_count; i++)
        MT_GUARD(mt_agent_rules_check_id(&file, trust_domain, &config->rules[i], i));
    snprintf(config->trust_domain, sizeof(config->trust_domain), "%s", trust_domain);
    return MT_OK_RESULT;
}

MT_RESULT mt_agent_config_set_lifetime(struct mt_agent_config *config, const char *seconds,
                                       struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    MT_ENSURE_REF(seconds);
    const struct mt_config_reader flag = {.path = NULL, .reason = reason};
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(seconds, &end, 10);
    if (seconds[0] < '0' || seconds[0] > '9' || end == seconds || *end != '\0' || errno != 0 ||
        value < MT_AGENT_CONFIG_LIFETIME_MIN || value > MT_AGENT_CONFIG_LIFETIME_MAX)
        return mt_config_reader_fail_value(
            &flag, NULL, "--lifetime", seconds, "is not a lifetime (%u .. %u %s)",
            MT_AGENT_CONFIG_LIFETIME_MIN, MT_AGENT_CONFIG_LIFETIME_MAX, LIFETIME_UNIT);
    config->lifetime_seconds = (uint32_t)value;
    return MT_OK_RESULT;
}

MT_RESULT mt_agent_config_set_issuer_dir(struct mt_agent_config *config, const char *directory,
                                         struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    MT_ENSURE_REF(directory);
    const struct mt_config_reader flag = {.path = NULL, .reason = reason};
    return store_path(&flag, NULL, "--issuer-dir", directory, config->issuer_dir,
                      sizeof(config->issuer_dir));
}

MT_RESULT mt_agent_config_set_membership_file(struct mt_agent_config *config, const char *path,
                                              struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    MT_ENSURE_REF(path);
    const struct mt_config_reader flag = {.path = NULL, .reason = reason};
    return store_path(&flag, NULL, "--membership-file", path, config->membership_file,
                      sizeof(config->membership_file));
}

MT_RESULT mt_agent_config_add_anchor_file(struct mt_agent_config *config, const char *path,
                                          struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    MT_ENSURE_REF(path);
    const struct mt_config_reader flag = {.path = NULL, .reason = reason};
    if (config->anchor_file_count >= MT_AGENT_CONFIG_ANCHOR_FILES_MAX)
        return mt_config_reader_fail(&flag, NULL, "--extra-anchors", "at most %d anchor files",
                                     MT_AGENT_CONFIG_ANCHOR_FILES_MAX);
    MT_GUARD(store_path(&flag, NULL, "--extra-anchors", path,
                        config->anchor_files[config->anchor_file_count],
                        sizeof(config->anchor_files[0])));
    config->anchor_file_count++;
    return MT_OK_RESULT;
}

MT_RESULT mt_agent_config_set_metrics_address(struct mt_agent_config *config, const char *address,
                                              struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    MT_ENSURE_REF(address);
    const struct mt_config_reader flag = {.path = NULL, .reason = reason};
    return store_address(&flag, NULL, "--metrics-address", address, config);
}

MT_RESULT mt_agent_config_set_kubelet_url(struct mt_agent_config *config, const char *url,
                                          struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    MT_ENSURE_REF(url);
    const struct mt_config_reader flag = {.path = NULL, .reason = reason};
    return store_kubelet_url(&flag, NULL, "--kubelet-url", url, config);
}

MT_RESULT mt_agent_config_set_kubelet_token_file(struct mt_agent_config *config, const char *path,
                                                 struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    MT_ENSURE_REF(path);
    const struct mt_config_reader flag = {.path = NULL, .reason = reason};
    return store_path(&flag, NULL, "--kubelet-token-file", path, config->kubelet_token_file,
                      sizeof(config->kubelet_token_file));
}

MT_RESULT mt_agent_config_set_kubelet_ca_file(struct mt_agent_config *config, const char *path,
                                              struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    MT_ENSURE_REF(path);
    const struct mt_config_reader flag = {.path = NULL, .reason = reason};
    return store_path(&flag, NULL, "--kubelet-ca-file", path, config->kubelet_ca_file,
                      sizeof(config->kubelet_ca_file));
}

MT_RESULT mt_agent_config_set_api_server_url(struct mt_agent_config *config, const char *url,
                                             struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    MT_ENSURE_REF(url);
    const struct mt_config_reader flag = {.path = NULL, .reason = reason};
    return store_api_server_url(&flag, NULL, "--kube-api-url", url, config);
}

MT_RESULT mt_agent_config_set_api_server_token_file(struct mt_agent_config *config,
                                                    const char *path, struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    MT_ENSURE_REF(path);
    const struct mt_config_reader flag = {.path = NULL, .reason = reason};
    return store_path(&flag, NULL, "--kube-api-token-file", path, config->api_server_token_file,
                      sizeof(config->api_server_token_file));
}

MT_RESULT mt_agent_config_set_api_server_ca_file(struct mt_agent_config *config, const char *path,
                                                 struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    MT_ENSURE_REF(path);
    const struct mt_config_reader flag = {.path = NULL, .reason = reason};
    return store_path(&flag, NULL, "--kube-api-ca-file", path, config->api_server_ca_file,
                      sizeof(config->api_server_ca_file));
}

MT_RESULT mt_agent_config_check_api_server(const struct mt_agent_config *config,
                                           struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    int given = (config->api_server_url[0] != '\0') + (config->api_server_token_file[0] != '\0') +
                (config->api_server_ca_file[0] != '\0');
    if (given == 0 || given == 3)
        return MT_OK_RESULT;
    mt_text_append(reason,
                   "--kube-api-url, --kube-api-token-file and --kube-api-ca-file (api_server.url, "
                   "token_file, ca_file) go together: %s is missing",
                   config->api_server_url[0] == '\0'          ? "the URL"
                   : config->api_server_token_file[0] == '\0' ? "the token file"
                                                              : "the CA file");
    return mt_result_of(MT_ERR_CONFIG);
}

MT_RESULT mt_agent_config_check_kubelet(const struct mt_agent_config *config,
                                        struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    int given = (config->kubelet_url[0] != '\0') + (config->kubelet_token_file[0] != '\0') +
                (config->kubelet_ca_file[0] != '\0');
    if (given == 0 || given == 3)
        return MT_OK_RESULT;
    mt_text_append(reason,
                   "--kubelet-url, --kubelet-token-file and --kubelet-ca-file (kubelet.url, "
                   "token_file, ca_file) go together: %s is missing",
                   config->kubelet_url[0] == '\0'          ? "the URL"
                   : config->kubelet_token_file[0] == '\0' ? "the token file"
                                                           : "the CA file");
    return mt_result_of(MT_ERR_CONFIG);
}
