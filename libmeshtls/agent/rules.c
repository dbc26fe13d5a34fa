/*
 * The agent's identity rules (see rules.h): the `rules` list of its configuration file, each rule
 * read whole, and the ID template each rule carries.
 *
 * Owns what makes a rule valid: its keys (uid, gid, exe, sha256, the pod selectors namespace,
 * service_account, labels, container, image, and id), the condition it must have,
 * and an ID that is a valid SPIFFE ID for every caller it could name. It must never keep a rule
 * it has not checked whole, nor one without a condition (its ID would go to every local user),
 * because a rule silently ignored or misread would hand out identities nobody intended.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/spiffe.h"
#include "rules.h"

#define SHA256_VALUES "64 hexadecimal digits, as sha256sum prints them"
#define ID_VALUES                                                                                  \
    "a path such as \"ns/web/sa/nginx\": segments of A-Z a-z 0-9 . - _ separated by '/', "         \
    "placeholders {uid} {gid}"

/* The longest text a placeholder can expand to, so that validation covers every caller. */
#define LONGEST_ID_NUMBER 4294967294u
/* A long rule ID is quoted by its start, so that the reason still fits in the message. */
#define QUOTED_ID_MAX 64

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))

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

MT_RESULT mt_agent_rules_format_id(const char *trust_domain, const struct mt_agent_rule *rule,
                                   uid_t uid, gid_t gid, char *spiffe_id, size_t capacity)
{
    const char *problem;
    return format_rule_id(trust_domain, rule->id, uid, gid, spiffe_id, capacity, &problem);
}

/*
 * Checks that rule's ID is valid for any caller in trust_domain. The rule's line stands for its
 * setting: a new trust domain from a flag checks the rules again once the file is closed.
 */
MT_RESULT mt_agent_rules_check_id(const struct mt_config_reader *reader, const char *trust_domain,
                                  const struct mt_agent_rule *rule, size_t index)
{
    char spiffe_id[MT_SPIFFE_ID_MAX + 1];
    const char *problem = NULL;
    if (mt_result_is_ok(format_rule_id(trust_domain, rule->id, LONGEST_ID_NUMBER, LONGEST_ID_NUMBER,
                                       spiffe_id, sizeof(spiffe_id), &problem)))
        return MT_OK_RESULT;
    char key[48];
    snprintf(key, sizeof(key), "rules[%zu].id", index);
    mt_config_reader_begin_at_line(reader, rule->line, key);
    mt_config_append_quoted(reader->reason, rule->id, QUOTED_ID_MAX);
    mt_text_append(reader->reason, " %s (%s)", problem, ID_VALUES);
    return mt_result_of(MT_ERR_CONFIG);
}

void mt_agent_rules_free(struct mt_agent_rule *rules, size_t count)
{
    if (rules == NULL)
        return;
    for (size_t i = 0; i < count; i++) {
        free(rules[i].exe);
        free(rules[i].namespace_name);
        free(rules[i].service_account);
        for (size_t j = 0; j < rules[i].label_count; j++) {
            free(rules[i].label_keys[j]);
            free(rules[i].label_values[j]);
        }
        free(rules[i].label_keys);
        free(rules[i].label_values);
        free(rules[i].container);
        free(rules[i].image);
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

/* The rule being read: the context of its keys. */
struct rule_load {
    const struct mt_config_reader *reader;
    struct mt_agent_rule *rule;
    char key[48]; /* "rules[3]" */
};

/* "rules[3].uid" for the key of the rule being read. */
static const char *member_key(const struct rule_load *load, const config_setting_t *setting,
                              char *key, size_t capacity)
{
    snprintf(key, capacity, "%s.%s", load->key, config_setting_name(setting));
    return key;
}

/* (uid_t)-1 means "no change" to the kernel and never names a real caller. */
static MT_RESULT read_rule_number(const struct rule_load *load, const config_setting_t *setting,
                                  long long *number)
{
    char key[64];
    return mt_config_read_integer(load->reader, setting,
                                  member_key(load, setting, key, sizeof(key)), 0, LONGEST_ID_NUMBER,
                                  NULL, number);
}

static MT_RESULT read_rule_uid(void *context, const config_setting_t *setting)
{
    struct rule_load *load = context;
    long long number;
    MT_GUARD(read_rule_number(load, setting, &number));
    load->rule->has_uid = true;
    load->rule->uid = (uid_t)number;
    return MT_OK_RESULT;
}

static MT_RESULT read_rule_gid(void *context, const config_setting_t *setting)
{
    struct rule_load *load = context;
    long long number;
    MT_GUARD(read_rule_number(load, setting, &number));
    load->rule->has_gid = true;
    load->rule->gid = (gid_t)number;
    return MT_OK_RESULT;
}

static MT_RESULT read_rule_exe(void *context, const config_setting_t *setting)
{
    static const char valid[] = "an absolute path, or a glob such as \"/usr/bin/python3*\"";
    struct rule_load *load = context;
    char key[64];
    member_key(load, setting, key, sizeof(key));
    const char *text;
    MT_GUARD(mt_config_read_string(load->reader, setting, key, valid, &text));
    if (text[0] != '/')
        return mt_config_reader_fail_value(load->reader, setting, key, text, "is not absolute (%s)",
                                           valid);
    load->rule->exe = strdup(text);
    MT_ENSURE(load->rule->exe != NULL, MT_ERR_NO_MEMORY);
    load->rule->exe_is_glob = has_glob_characters(text);
    return MT_OK_RESULT;
}

static MT_RESULT read_rule_sha256(void *context, const config_setting_t *setting)
{
    struct rule_load *load = context;
    char key[64];
    member_key(load, setting, key, sizeof(key));
    const char *text;
    MT_GUARD(mt_config_read_string(load->reader, setting, key, SHA256_VALUES, &text));
    if (!parse_sha256(text, load->rule->sha256))
        return mt_config_reader_fail_value(load->reader, setting, key, text,
                                           "is not a SHA-256 (%s)", SHA256_VALUES);
    load->rule->has_sha256 = true;
    return MT_OK_RESULT;
}

static MT_RESULT read_rule_id(void *context, const config_setting_t *setting)
{
    struct rule_load *load = context;
    char key[64];
    const char *text;
    MT_GUARD(mt_config_read_string(load->reader, setting,
                                   member_key(load, setting, key, sizeof(key)), ID_VALUES, &text));
    load->rule->id = strdup(text);
    MT_ENSURE(load->rule->id != NULL, MT_ERR_NO_MEMORY);
    return MT_OK_RESULT;
}

/* A non-empty string into *destination (namespace, service_account, container, image). */
static MT_RESULT read_rule_text(struct rule_load *load, const config_setting_t *setting,
                                const char *valid, char **destination)
{
    char key[64];
    member_key(load, setting, key, sizeof(key));
    const char *text;
    MT_GUARD(mt_config_read_string(load->reader, setting, key, valid, &text));
    if (text[0] == '\0')
        return mt_config_reader_fail_value(load->reader, setting, key, text, "is empty (%s)",
                                           valid);
    free(*destination);
    *destination = strdup(text);
    MT_ENSURE(*destination != NULL, MT_ERR_NO_MEMORY);
    return MT_OK_RESULT;
}

static MT_RESULT read_rule_namespace(void *context, const config_setting_t *setting)
{
    struct rule_load *load = context;
    return read_rule_text(load, setting, "a Kubernetes namespace", &load->rule->namespace_name);
}

static MT_RESULT read_rule_service_account(void *context, const config_setting_t *setting)
{
    struct rule_load *load = context;
    return read_rule_text(load, setting, "a Kubernetes service account name",
                          &load->rule->service_account);
}

static MT_RESULT read_rule_container(void *context, const config_setting_t *setting)
{
    struct rule_load *load = context;
    return read_rule_text(load, setting, "a container name in the pod spec",
                          &load->rule->container);
}

static MT_RESULT read_rule_image(void *context, const config_setting_t *setting)
{
    struct rule_load *load = context;
    return read_rule_text(load, setting, "an image, or a glob such as \"registry/app:*\"",
                          &load->rule->image);
}

/*
 * labels = { app = "web"; tier = "front"; }, or ["app.kubernetes.io/name=web", "tier=front"] for
 * keys libconfig cannot name (a '.' or '/' in them): every pair must be on the pod.
 */
static MT_RESULT read_rule_labels(void *context, const config_setting_t *setting)
{
    static const char valid[] = "a group of label = \"value\" ({ app = \"web\"; }) or an array "
                                "of \"key=value\" ([\"app.kubernetes.io/name=web\"])";
    struct rule_load *load = context;
    char key[64];
    member_key(load, setting, key, sizeof(key));
    bool pairs = mt_config_is_sequence(setting);
    if ((!config_setting_is_group(setting) && !pairs) || config_setting_length(setting) == 0)
        return mt_config_reader_fail_type(load->reader, setting, key, valid);
    size_t count = (size_t)config_setting_length(setting);
    struct mt_agent_rule *rule = load->rule;
    rule->label_keys = calloc(count, sizeof(*rule->label_keys));
    rule->label_values = calloc(count, sizeof(*rule->label_values));
    MT_ENSURE(rule->label_keys != NULL && rule->label_values != NULL, MT_ERR_NO_MEMORY);
    for (size_t i = 0; i < count; i++) {
        const config_setting_t *label = config_setting_get_elem(setting, (unsigned)i);
        char label_key[128];
        if (pairs)
            snprintf(label_key, sizeof(label_key), "%s[%zu]", key, i);
        else
            snprintf(label_key, sizeof(label_key), "%s.%s", key, config_setting_name(label));
        const char *text;
        MT_GUARD(mt_config_read_string(load->reader, label, label_key, valid, &text));
        const char *equals = pairs ? strchr(text, '=') : NULL;
        if (pairs && (equals == NULL || equals == text))
            return mt_config_reader_fail_value(load->reader, label, label_key, text,
                                               "is not key=value (%s)", valid);
        rule->label_keys[i] =
            pairs ? strndup(text, (size_t)(equals - text)) : strdup(config_setting_name(label));
        rule->label_values[i] = strdup(pairs ? equals + 1 : text);
        rule->label_count = i + 1;
        MT_ENSURE(rule->label_keys[i] != NULL && rule->label_values[i] != NULL, MT_ERR_NO_MEMORY);
    }
    return MT_OK_RESULT;
}

static const struct mt_config_key rule_keys[] = {
    {"uid", read_rule_uid},
    {"gid", read_rule_gid},
    {"exe", read_rule_exe},
    {"sha256", read_rule_sha256},
    {"namespace", read_rule_namespace},
    {"service_account", read_rule_service_account},
    {"labels", read_rule_labels},
    {"container", read_rule_container},
    {"image", read_rule_image},
    {"id", read_rule_id},
};

static MT_RESULT read_rule(const struct mt_config_reader *reader, const config_setting_t *setting,
                           size_t index, const char *trust_domain, struct mt_agent_rule *rule)
{
    struct rule_load load = {.reader = reader, .rule = rule};
    snprintf(load.key, sizeof(load.key), "rules[%zu]", index);
    rule->line = config_setting_source_line(setting);
    if (!config_setting_is_group(setting))
        return mt_config_reader_fail_type(reader, setting, load.key,
                                          "a group ({ uid = 1000; id = \"ns/dev/sa/{uid}\"; })");
    MT_GUARD(
        mt_config_read_group(reader, setting, load.key, rule_keys, COUNT_OF(rule_keys), &load));
    if (rule->id == NULL)
        return mt_config_reader_fail_missing(reader, setting, load.key, "id", ID_VALUES);
    /* A rule without a condition would give its ID to every local user. */
    if (!rule->has_uid && !rule->has_gid && rule->exe == NULL && !rule->has_sha256 &&
        rule->namespace_name == NULL && rule->service_account == NULL && rule->label_count == 0 &&
        rule->container == NULL && rule->image == NULL)
        return mt_config_reader_fail(reader, setting, load.key,
                                     "matches every caller (give at least one of uid, gid, exe, "
                                     "sha256, namespace, service_account, labels, container, "
                                     "image)");
    return mt_agent_rules_check_id(reader, trust_domain, rule, index);
}

/* The file's rules, which replace any before them; checked within the trust domain read first. */

MT_RESULT mt_agent_rules_read(const struct mt_config_reader *reader,
                              const config_setting_t *setting, const char *trust_domain,
                              struct mt_agent_rule **rules, size_t *rule_count)
{
    if (!config_setting_is_list(setting))
        return mt_config_reader_fail_type(
            reader, setting, "rules",
            "a list of rules (rules = ( { uid = 1000; id = \"ns/dev/sa/{uid}\"; } );)");
    int count = config_setting_length(setting);
    if (count > MT_AGENT_CONFIG_RULES_MAX)
        return mt_config_reader_fail(reader, setting, "rules", "%d rules are too many (at most %d)",
                                     count, MT_AGENT_CONFIG_RULES_MAX);
    struct mt_agent_rule *read = calloc(count > 0 ? (size_t)count : 1, sizeof(*read));
    MT_ENSURE(read != NULL, MT_ERR_NO_MEMORY);
    mt_result result = MT_OK_RESULT;
    for (int i = 0; i < count && mt_result_is_ok(result); i++)
        result = read_rule(reader, config_setting_get_elem(setting, (unsigned)i), (size_t)i,
                           trust_domain, &read[i]);
    if (!mt_result_is_ok(result)) {
        mt_agent_rules_free(read, (size_t)count);
        return result;
    }
    *rules = read;
    *rule_count = (size_t)count;
    return MT_OK_RESULT;
}
