/*
 * The agent's configuration file and its identity rules (see agent_config.h for the format).
 *
 * Owns the translation of libconfig text into struct mt_agent_config and the one decision "which
 * SPIFFE ID does this caller get". It must never accept a value it has not checked: unknown keys,
 * wrong types, out-of-range numbers and rule IDs that cannot form a valid SPIFFE ID all stop the
 * load with a message naming file, line and key, because a rule silently ignored or misread would
 * hand out identities nobody intended. It must never consult anything the caller claims; the
 * caller's description comes from attestation only. It must never let a name stand for a file:
 * the caller's name for its executable comes from a mount namespace it may have built, so an exe
 * rule matches only when the file the agent finds at the rule's path is the caller's executable.
 */
#include <errno.h>
#include <fnmatch.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "../util/log.h"
#include "../util/text.h"
#include "agent_config.h"

#define TOP_LEVEL_KEYS "trust_domain, lifetime, rules, issuer_dir, trust_anchors, metrics_address"
#define RULE_KEYS "uid, gid, exe, sha256, id"
#define SHA256_VALUES "64 hexadecimal digits, as sha256sum prints them"
#define TRUST_DOMAIN_VALUES "lowercase letters, digits, '.', '-', '_'; at most 255 characters"
#define ID_VALUES                                                                                  \
    "a path such as \"ns/web/sa/nginx\": segments of A-Z a-z 0-9 . - _ separated by '/', "         \
    "placeholders {uid} {gid}"
/* The longest text a placeholder can expand to, so that validation covers every caller. */
#define LONGEST_ID_NUMBER 4294967294u

/* Where errors are reported: path NULL for command-line flags, which have no file or line. */
struct loader {
    const char *path;
    struct mt_text *reason; /* the caller's; NULL allowed */
};

/* Writes "FILE:LINE: KEY: what" (or "KEY: what" for a flag, "FILE:LINE: what" without a key). */
__attribute__((format(printf, 5, 6))) static mt_result fail(const struct loader *loader,
                                                            unsigned line, const char *key,
                                                            enum mt_error error, const char *format,
                                                            ...)
{
    mt_text_clear(loader->reason);
    if (loader->path != NULL)
        mt_text_append(loader->reason, "%s:%u: ", loader->path, line);
    if (key != NULL)
        mt_text_append(loader->reason, "%s: ", key);
    va_list arguments;
    va_start(arguments, format);
    mt_text_append_va(loader->reason, format, arguments);
    va_end(arguments);
    return mt_result_of(error);
}

static unsigned line_of(const config_setting_t *setting)
{
    return config_setting_source_line(setting);
}

static const char *type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_GROUP:
        return "a group";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a float";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a boolean";
    case CONFIG_TYPE_ARRAY:
        return "an array";
    case CONFIG_TYPE_LIST:
        return "a list";
    default:
        return "an unknown type";
    }
}

static MT_RESULT read_integer(const struct loader *loader, const config_setting_t *setting,
                              const char *key, long long min, long long max, const char *valid,
                              long long *value)
{
    int type = config_setting_type(setting);
    if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
        return fail(loader, line_of(setting), key, MT_ERR_CONFIG,
                    "expected an integer, not %s (%s)", type_name(type), valid);
    long long read = config_setting_get_int64(setting);
    if (read < min || read > max)
        return fail(loader, line_of(setting), key, MT_ERR_CONFIG, "%lld is out of range (%s)", read,
                    valid);
    *value = read;
    return MT_OK_RESULT;
}

static MT_RESULT read_string(const struct loader *loader, const config_setting_t *setting,
                             const char *key, const char *valid, const char **value)
{
    int type = config_setting_type(setting);
    if (type != CONFIG_TYPE_STRING)
        return fail(loader, line_of(setting), key, MT_ERR_CONFIG, "expected a string, not %s (%s)",
                    type_name(type), valid);
    *value = config_setting_get_string(setting);
    return MT_OK_RESULT;
}

static bool is_valid_trust_domain(const char *text)
{
    return mt_spiffe_is_valid_trust_domain(text, strlen(text));
}

/*
 * Expands {uid} and {gid} in pattern into output. An unknown placeholder is an error here, not
 * left for the SPIFFE ID check, so that the message can name it.
 */
static MT_RESULT expand_id(const char *pattern, uid_t uid, gid_t gid, char *output, size_t capacity,
                           const char **problem)
{
    size_t length = 0;
    for (const char *cursor = pattern; *cursor != '\0';) {
        char number[16];
        const char *piece = cursor;
        size_t piece_length = 1;
        if (*cursor == '{') {
            if (strncmp(cursor, "{uid}", 5) == 0) {
                snprintf(number, sizeof(number), "%u", (unsigned)uid);
            } else if (strncmp(cursor, "{gid}", 5) == 0) {
                snprintf(number, sizeof(number), "%u", (unsigned)gid);
            } else {
                *problem = "has an unknown placeholder";
                return mt_result_of(MT_ERR_SPIFFE_ID);
            }
            piece = number;
            piece_length = strlen(number);
            cursor += 5;
        } else {
            cursor++;
        }
        MT_ENSURE(piece_length < capacity - length, MT_ERR_TOO_LONG);
        memcpy(output + length, piece, piece_length);
        length += piece_length;
    }
    output[length] = '\0';
    return MT_OK_RESULT;
}

/* The full ID for a rule's pattern and a caller; *problem says what is wrong on failure. */
static MT_RESULT format_rule_id(const char *trust_domain, const char *pattern, uid_t uid, gid_t gid,
                                char *spiffe_id, size_t capacity, const char **problem)
{
    char path[MT_SPIFFE_ID_MAX + 1];
    *problem = "must not start with '/'";
    MT_ENSURE(pattern[0] != '/', MT_ERR_SPIFFE_ID);
    *problem = "is empty";
    MT_ENSURE(pattern[0] != '\0', MT_ERR_SPIFFE_ID);
    *problem = "makes a SPIFFE ID longer than 2048 bytes";
    mt_result result = expand_id(pattern, uid, gid, path, sizeof(path), problem);
    if (!mt_result_is_ok(result))
        return result;
    /* "spiffe://" + trust domain + "/" + path; the formatter would only say "not valid". */
    MT_ENSURE(strlen("spiffe://") + strlen(trust_domain) + 1 + strlen(path) <= MT_SPIFFE_ID_MAX,
              MT_ERR_SPIFFE_ID);
    *problem = "does not make a valid SPIFFE ID";
    return mt_spiffe_id_format(spiffe_id, capacity, trust_domain, path);
}

/* Checks that rule's ID is valid for any caller in trust_domain. */
static MT_RESULT check_rule_id(const struct loader *loader, const char *trust_domain,
                               const struct mt_agent_rule *rule, size_t index)
{
    char spiffe_id[MT_SPIFFE_ID_MAX + 1];
    const char *problem = NULL;
    if (mt_result_is_ok(format_rule_id(trust_domain, rule->id, LONGEST_ID_NUMBER, LONGEST_ID_NUMBER,
                                       spiffe_id, sizeof(spiffe_id), &problem)))
        return MT_OK_RESULT;
    char key[48];
    snprintf(key, sizeof(key), "rules[%zu].id", index);
    /* A long ID is quoted by its start so that the reason still fits in the message. */
    bool long_id = strlen(rule->id) > 64;
    return fail(loader, rule->line, key, MT_ERR_CONFIG, "\"%.64s%s\" %s (%s)", rule->id,
                long_id ? "..." : "", problem, ID_VALUES);
}

static void rules_free(struct mt_agent_rule *rules, size_t count)
{
    if (rules == NULL)
        return;
    for (size_t i = 0; i < count; i++) {
        free(rules[i].exe);
        free(rules[i].id);
    }
    free(rules);
}

static bool has_glob_characters(const char *text)
{
    return strpbrk(text, "*?[") != NULL;
}

static int hex_value(char digit)
{
    if (digit >= '0' && digit <= '9')
        return digit - '0';
    if (digit >= 'a' && digit <= 'f')
        return digit - 'a' + 10;
    if (digit >= 'A' && digit <= 'F')
        return digit - 'A' + 10;
    return -1;
}

/* Exactly 64 hexadecimal digits, either case, into 32 bytes. */
static bool parse_sha256(const char *text, uint8_t digest[MT_DIGEST_SHA256_SIZE])
{
    if (strlen(text) != 2 * MT_DIGEST_SHA256_SIZE)
        return false;
    for (size_t i = 0; i < MT_DIGEST_SHA256_SIZE; i++) {
        int high = hex_value(text[2 * i]);
        int low = hex_value(text[2 * i + 1]);
        if (high < 0 || low < 0)
            return false;
        digest[i] = (uint8_t)(high << 4 | low);
    }
    return true;
}

static MT_RESULT read_rule_field(const struct loader *loader, const config_setting_t *field,
                                 const char *key, struct mt_agent_rule *rule)
{
    const char *name = config_setting_name(field);
    long long number = 0;
    const char *text = NULL;
    if (strcmp(name, "uid") == 0 || strcmp(name, "gid") == 0) {
        /* (uid_t)-1 means "no change" to the kernel and never names a real caller. */
        MT_GUARD(
            read_integer(loader, field, key, 0, LONGEST_ID_NUMBER, "0 .. 4294967294", &number));
        if (name[0] == 'u') {
            rule->has_uid = true;
            rule->uid = (uid_t)number;
        } else {
            rule->has_gid = true;
            rule->gid = (gid_t)number;
        }
        return MT_OK_RESULT;
    }
    if (strcmp(name, "exe") == 0) {
        const char *valid = "an absolute path, or a glob such as \"/usr/bin/python3*\"";
        MT_GUARD(read_string(loader, field, key, valid, &text));
        if (text[0] != '/')
            return fail(loader, line_of(field), key, MT_ERR_CONFIG, "\"%s\" is not absolute (%s)",
                        text, valid);
        rule->exe = strdup(text);
        MT_ENSURE(rule->exe != NULL, MT_ERR_NO_MEMORY);
        rule->exe_is_glob = has_glob_characters(text);
        return MT_OK_RESULT;
    }
    if (strcmp(name, "sha256") == 0) {
        MT_GUARD(read_string(loader, field, key, SHA256_VALUES, &text));
        if (!parse_sha256(text, rule->sha256))
            return fail(loader, line_of(field), key, MT_ERR_CONFIG,
                        "\"%.80s\" is not a SHA-256 (%s)", text, SHA256_VALUES);
        rule->has_sha256 = true;
        return MT_OK_RESULT;
    }
    if (strcmp(name, "id") == 0) {
        MT_GUARD(read_string(loader, field, key, ID_VALUES, &text));
        rule->id = strdup(text);
        MT_ENSURE(rule->id != NULL, MT_ERR_NO_MEMORY);
        return MT_OK_RESULT;
    }
    return fail(loader, line_of(field), key, MT_ERR_CONFIG, "unknown key (valid keys: %s)",
                RULE_KEYS);
}

static MT_RESULT read_rule(const struct loader *loader, const config_setting_t *setting,
                           size_t index, const char *trust_domain, struct mt_agent_rule *rule)
{
    char key[48];
    snprintf(key, sizeof(key), "rules[%zu]", index);
    rule->line = line_of(setting);
    if (!config_setting_is_group(setting))
        return fail(loader, rule->line, key, MT_ERR_CONFIG,
                    "expected a group such as { uid = 1000; id = \"ns/dev/sa/{uid}\"; }, not %s",
                    type_name(config_setting_type(setting)));
    int count = config_setting_length(setting);
    for (int i = 0; i < count; i++) {
        const config_setting_t *field = config_setting_get_elem(setting, (unsigned)i);
        char field_key[64];
        snprintf(field_key, sizeof(field_key), "%s.%s", key, config_setting_name(field));
        MT_GUARD(read_rule_field(loader, field, field_key, rule));
    }
    if (rule->id == NULL)
        return fail(loader, rule->line, key, MT_ERR_CONFIG, "missing id (%s)", ID_VALUES);
    /* A rule without a condition would give its ID to every local user. */
    if (!rule->has_uid && !rule->has_gid && rule->exe == NULL && !rule->has_sha256)
        return fail(loader, rule->line, key, MT_ERR_CONFIG,
                    "matches every caller (give at least one of uid, gid, exe, sha256)");
    return check_rule_id(loader, trust_domain, rule, index);
}

static MT_RESULT read_rules(const struct loader *loader, const config_setting_t *setting,
                            const char *trust_domain, struct mt_agent_rule **rules,
                            size_t *rule_count)
{
    if (!config_setting_is_list(setting))
        return fail(loader, line_of(setting), "rules", MT_ERR_CONFIG,
                    "expected a list ( { ... }, { ... } ), not %s",
                    type_name(config_setting_type(setting)));
    int count = config_setting_length(setting);
    if (count > MT_AGENT_CONFIG_RULES_MAX)
        return fail(loader, line_of(setting), "rules", MT_ERR_CONFIG,
                    "%d rules are too many (at most %d)", count, MT_AGENT_CONFIG_RULES_MAX);
    struct mt_agent_rule *read = calloc(count > 0 ? (size_t)count : 1, sizeof(*read));
    MT_ENSURE(read != NULL, MT_ERR_NO_MEMORY);
    mt_result result = MT_OK_RESULT;
    for (int i = 0; i < count && mt_result_is_ok(result); i++)
        result = read_rule(loader, config_setting_get_elem(setting, (unsigned)i), (size_t)i,
                           trust_domain, &read[i]);
    if (!mt_result_is_ok(result)) {
        rules_free(read, (size_t)count);
        return result;
    }
    *rules = read;
    *rule_count = (size_t)count;
    return MT_OK_RESULT;
}

static MT_RESULT read_trust_domain(const struct loader *loader, const config_setting_t *setting,
                                   struct mt_agent_config *loaded)
{
    const char *text = NULL;
    MT_GUARD(read_string(loader, setting, "trust_domain", TRUST_DOMAIN_VALUES, &text));
    if (!is_valid_trust_domain(text))
        return fail(loader, line_of(setting), "trust_domain", MT_ERR_CONFIG,
                    "\"%s\" is not a valid trust domain (%s)", text, TRUST_DOMAIN_VALUES);
    snprintf(loaded->trust_domain, sizeof(loaded->trust_domain), "%s", text);
    return MT_OK_RESULT;
}

static MT_RESULT store_path(const struct loader *loader, unsigned line, const char *key,
                            const char *value, char *destination, size_t capacity)
{
    if (value[0] == '\0' || strlen(value) >= capacity)
        return fail(loader, line, key, MT_ERR_CONFIG, "\"%.64s\" is empty or too long (a path)",
                    value);
    snprintf(destination, capacity, "%s", value);
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

#define ADDRESS_VALUES "\"127.0.0.1:4191\", \"[::1]:4191\", or \"off\""

static MT_RESULT read_issuer_setting(const struct loader *loader, const config_setting_t *setting,
                                     const char *name, struct mt_agent_config *loaded)
{
    const char *text = NULL;
    unsigned line = line_of(setting);
    if (strcmp(name, "issuer_dir") == 0) {
        MT_GUARD(read_string(loader, setting, name, "a directory holding tls.crt, tls.key, ca.crt",
                             &text));
        return store_path(loader, line, name, text, loaded->issuer_dir, sizeof(loaded->issuer_dir));
    }
    if (strcmp(name, "metrics_address") == 0) {
        MT_GUARD(read_string(loader, setting, name, ADDRESS_VALUES, &text));
        if (!is_valid_address(text))
            return fail(loader, line, name, MT_ERR_CONFIG, "\"%.64s\" is not an address (%s)", text,
                        ADDRESS_VALUES);
        snprintf(loaded->metrics_address, sizeof(loaded->metrics_address), "%s", text);
        return MT_OK_RESULT;
    }
    int type = config_setting_type(setting);
    if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
        return fail(loader, line, name, MT_ERR_CONFIG,
                    "expected an array of PEM file paths such as [\"a.pem\", \"b.pem\"], not %s",
                    type_name(type));
    int count = config_setting_length(setting);
    if (count > MT_AGENT_CONFIG_ANCHOR_FILES_MAX)
        return fail(loader, line, name, MT_ERR_CONFIG, "%d files are too many (at most %d)", count,
                    MT_AGENT_CONFIG_ANCHOR_FILES_MAX);
    for (int i = 0; i < count; i++) {
        const config_setting_t *element = config_setting_get_elem(setting, (unsigned)i);
        MT_GUARD(read_string(loader, element, name, "a PEM file path", &text));
        MT_GUARD(store_path(loader, line_of(element), name, text, loaded->anchor_files[i],
                            sizeof(loaded->anchor_files[i])));
    }
    loaded->anchor_file_count = (size_t)count;
    return MT_OK_RESULT;
}

/*
 * Reads the file's top-level settings into loaded, whose rules it then owns if it read any. The
 * trust domain comes first wherever it stands, because every rule's ID is checked within it.
 */
static MT_RESULT read_root(const struct loader *loader, const config_setting_t *root,
                           struct mt_agent_config *loaded)
{
    const config_setting_t *trust_domain = config_setting_get_member(root, "trust_domain");
    if (trust_domain != NULL)
        MT_GUARD(read_trust_domain(loader, trust_domain, loaded));
    int count = config_setting_length(root);
    for (int i = 0; i < count; i++) {
        const config_setting_t *setting = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(setting);
        long long number = 0;
        if (setting == trust_domain)
            continue;
        if (strcmp(name, "lifetime") == 0) {
            MT_GUARD(read_integer(loader, setting, name, MT_AGENT_CONFIG_LIFETIME_MIN,
                                  MT_AGENT_CONFIG_LIFETIME_MAX, "5 .. 2592000 seconds", &number));
            loaded->lifetime_seconds = (uint32_t)number;
        } else if (strcmp(name, "issuer_dir") == 0 || strcmp(name, "metrics_address") == 0 ||
                   strcmp(name, "trust_anchors") == 0) {
            MT_GUARD(read_issuer_setting(loader, setting, name, loaded));
        } else if (strcmp(name, "rules") == 0) {
            MT_GUARD(read_rules(loader, setting, loaded->trust_domain, &loaded->rules,
                                &loaded->rule_count));
        } else {
            return fail(loader, line_of(setting), name, MT_ERR_CONFIG,
                        "unknown key (valid keys: %s)", TOP_LEVEL_KEYS);
        }
    }
    return MT_OK_RESULT;
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
    rules_free(config->rules, config->rule_count);
    config->rules = NULL;
    config->rule_count = 0;
}

MT_RESULT mt_agent_config_load_file(const char *path, struct mt_agent_config *config,
                                    struct mt_text *reason)
{
    MT_ENSURE_REF(path);
    MT_ENSURE_REF(config);
    struct loader loader = {path, reason};
    if (strlen(path) >= sizeof(config->source))
        return fail(&loader, 0, "config", MT_ERR_CONFIG, "path too long");

    /* Opened here rather than by libconfig so that the message can carry errno's reason. */
    FILE *file = fopen(path, "re");
    if (file == NULL)
        return fail(&loader, 0, "config", MT_ERR_CONFIG, "cannot open: %s", strerror(errno));

    config_t parsed;
    config_init(&parsed);
    struct mt_agent_config loaded = *config;
    /* Rules come only from this file: the caller's are kept unless the file has its own. */
    loaded.rules = NULL;
    loaded.rule_count = 0;
    mt_result result = MT_OK_RESULT;

    if (config_read(&parsed, file) != CONFIG_TRUE) {
        result = fail(&loader, (unsigned)config_error_line(&parsed), NULL, MT_ERR_CONFIG,
                      "%s (libconfig syntax: key = value; lists in ( ), groups in { })",
                      config_error_text(&parsed));
        goto out;
    }
    result = read_root(&loader, config_root_setting(&parsed), &loaded);
    if (!mt_result_is_ok(result))
        goto out;

    snprintf(loaded.source, sizeof(loaded.source), "%s", path);
    if (config_lookup(&parsed, "rules") == NULL) {
        loaded.rules = config->rules;
        loaded.rule_count = config->rule_count;
    } else {
        rules_free(config->rules, config->rule_count);
    }
    *config = loaded;
    loaded.rules = NULL;
    loaded.rule_count = 0;

out:
    rules_free(loaded.rules, loaded.rule_count);
    config_destroy(&parsed);
    fclose(file);
    return result;
}

MT_RESULT mt_agent_config_set_trust_domain(struct mt_agent_config *config, const char *trust_domain,
                                           struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    MT_ENSURE_REF(trust_domain);
    struct loader flag = {NULL, reason};
    if (!is_valid_trust_domain(trust_domain))
        return fail(&flag, 0, "--trust-domain", MT_ERR_CONFIG,
                    "\"%s\" is not a valid trust domain (%s)", trust_domain, TRUST_DOMAIN_VALUES);
    /* The rules were checked against the old trust domain; a longer one can push an ID past 2048.
     */
    struct loader file = {config->source, reason};
    for (size_t i = 0; i < config->rule_count; i++)
        MT_GUARD(check_rule_id(&file, trust_domain, &config->rules[i], i));
    snprintf(config->trust_domain, sizeof(config->trust_domain), "%s", trust_domain);
    return MT_OK_RESULT;
}

MT_RESULT mt_agent_config_set_lifetime(struct mt_agent_config *config, const char *seconds,
                                       struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    MT_ENSURE_REF(seconds);
    struct loader flag = {NULL, reason};
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(seconds, &end, 10);
    if (seconds[0] < '0' || seconds[0] > '9' || end == seconds || *end != '\0' || errno != 0 ||
        value < MT_AGENT_CONFIG_LIFETIME_MIN || value > MT_AGENT_CONFIG_LIFETIME_MAX)
        return fail(&flag, 0, "--lifetime", MT_ERR_CONFIG,
                    "\"%s\" is not a lifetime (5 .. 2592000 seconds)", seconds);
    config->lifetime_seconds = (uint32_t)value;
    return MT_OK_RESULT;
}

MT_RESULT mt_agent_config_set_issuer_dir(struct mt_agent_config *config, const char *directory,
                                         struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    MT_ENSURE_REF(directory);
    struct loader flag = {NULL, reason};
    return store_path(&flag, 0, "--issuer-dir", directory, config->issuer_dir,
                      sizeof(config->issuer_dir));
}

MT_RESULT mt_agent_config_add_anchor_file(struct mt_agent_config *config, const char *path,
                                          struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    MT_ENSURE_REF(path);
    struct loader flag = {NULL, reason};
    if (config->anchor_file_count >= MT_AGENT_CONFIG_ANCHOR_FILES_MAX)
        return fail(&flag, 0, "--extra-anchors", MT_ERR_CONFIG, "at most %d anchor files",
                    MT_AGENT_CONFIG_ANCHOR_FILES_MAX);
    MT_GUARD(store_path(&flag, 0, "--extra-anchors", path,
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
    struct loader flag = {NULL, reason};
    if (!is_valid_address(address))
        return fail(&flag, 0, "--metrics-address", MT_ERR_CONFIG,
                    "\"%.64s\" is not an address (%s)", address, ADDRESS_VALUES);
    snprintf(config->metrics_address, sizeof(config->metrics_address), "%s", address);
    return MT_OK_RESULT;
}

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
    struct stat file;
    if (stat(path, &file) != 0) {
        mt_log_limited(MT_LOG_INFO,
                       MISMATCH_FORMAT "the agent cannot examine %s (%s); exe names a file as the "
                                       "agent sees it (a workload in a container: use sha256)",
                       MISMATCH_ARGUMENTS(config, index, "exe", rule->exe, caller), path,
                       strerror(errno));
        return false;
    }
    if (file.st_dev == caller->exe_device && file.st_ino == caller->exe_inode)
        return true;
    bool named_like_rule = rule->exe_is_glob || strcmp(rule->exe, caller->exe) == 0 ||
                           resolves_to(rule->exe, caller->exe);
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

static enum rule_verdict rule_matches(const struct mt_agent_config *config, size_t index,
                                      const struct mt_agent_caller *caller,
                                      struct mt_agent_match *match)
{
    const struct mt_agent_rule *rule = &config->rules[index];
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
        const char *problem;
        return format_rule_id(config->trust_domain, candidate->id, caller->uid, caller->gid,
                              spiffe_id, capacity, &problem);
    }
    char path[32];
    snprintf(path, sizeof(path), "uid/%u", (unsigned)caller->uid);
    return mt_spiffe_id_format(spiffe_id, capacity, config->trust_domain, path);
}
