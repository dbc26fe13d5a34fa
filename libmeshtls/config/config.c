/*
 * Configuration loading: libconfig text and environment variables → struct mt_config.
 *
 * Owns the meaning of every configuration key and every message about one. This code runs inside
 * arbitrary processes through LD_PRELOAD, so it must never print, exit, keep global state or
 * half-apply anything: each entry point fills a private copy and commits it only when everything
 * is valid, and every complaint is one line in the caller's buffer of the form
 * "FILE:LINE: KEY: what is wrong", naming the valid values so the fix is obvious.
 * Unknown keys are errors, because a misspelt key silently ignored is a policy nobody wrote.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>

#include "../util/spiffe.h"
#include "config.h"

#define TIMEOUT_MIN_MS 100
#define TIMEOUT_MAX_MS 600000
/* Values quoted in messages are cut here: a message is one readable line, not a dump. */
#define QUOTED_VALUE_MAX 80

/*
 * Appends value as a libconfig string literal: quotes and backslashes escaped, control bytes as
 * \xNN, so the result is one line and reads back as the same bytes. At most limit input bytes
 * are shown; a cut value is followed by "...".
 */
static void text_append_quoted(struct mt_text *text, const char *value, size_t limit)
{
    size_t length = strlen(value);
    size_t shown = length < limit ? length : limit;
    mt_text_append(text, "\"");
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c == '"' || c == '\\')
            mt_text_append(text, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            mt_text_append(text, "\\x%02x", c);
        else
            mt_text_append(text, "%c", c);
    }
    mt_text_append(text, "\"%s", shown < length ? "..." : "");
}

struct choice {
    const char *name;
    int value;
};

static const struct choice outbound_choices[] = {
    {"mtls", MT_OUTBOUND_MTLS},
    {"plain", MT_OUTBOUND_PLAIN},
};

static const struct choice inbound_choices[] = {
    {"strict", MT_INBOUND_STRICT},
    {"permissive", MT_INBOUND_PERMISSIVE},
    {"plain", MT_INBOUND_PLAIN},
};

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))

static const char *choice_name(const struct choice *choices, size_t count, int value)
{
    for (size_t i = 0; i < count; i++) {
        if (choices[i].value == value)
            return choices[i].name;
    }
    return "unknown";
}

static void text_append_choices(struct mt_text *text, const struct choice *choices, size_t count)
{
    for (size_t i = 0; i < count; i++)
        mt_text_append(text, "%s\"%s\"", i > 0 ? ", " : "", choices[i].name);
}

/*
 * Each value check below judges one value and, when it is wrong, appends to problem the words
 * that follow the quoted value ("is not one of ..."). Files and environment variables share
 * them, so a value means the same wherever it comes from.
 */
static bool check_choice(const char *value, const struct choice *choices, size_t count, int *chosen,
                         struct mt_text *problem)
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(value, choices[i].name) == 0) {
            *chosen = choices[i].value;
            return true;
        }
    }
    mt_text_append(problem, "is not one of ");
    text_append_choices(problem, choices, count);
    return false;
}

/* The level names belong to util/log.c; listing them from there keeps one spelling. */
static void text_append_log_levels(struct mt_text *text)
{
    for (int level = MT_LOG_ERROR; level <= MT_LOG_DEBUG; level++)
        mt_text_append(text, "%s\"%s\"", level > MT_LOG_ERROR ? ", " : "",
                       mt_log_level_name((enum mt_log_level)level));
}

static bool check_log_level(const char *value, enum mt_log_level *level, struct mt_text *problem)
{
    if (mt_log_level_parse(value, level))
        return true;
    mt_text_append(problem, "is not one of ");
    text_append_log_levels(problem);
    return false;
}

/*
 * A relative path would name a different socket in every working directory of every process the
 * library is loaded into, so only absolute paths are accepted.
 */
static bool check_socket_path(const char *value, struct mt_text *problem)
{
    size_t length = strlen(value);
    if (value[0] != '/') {
        mt_text_append(problem, "is not an absolute path");
        return false;
    }
    if (length >= MT_CONFIG_SOCKET_PATH_MAX) {
        mt_text_append(problem, "is %zu bytes long; a Unix socket path is at most %d bytes", length,
                       MT_CONFIG_SOCKET_PATH_MAX - 1);
        return false;
    }
    return true;
}

static bool check_trust_domain(const char *value, struct mt_text *problem)
{
    if (value[0] == '\0' || mt_spiffe_is_valid_trust_domain(value, strlen(value)))
        return true;
    mt_text_append(problem,
                   "is not a valid trust domain name (1 to %d characters of a-z, 0-9, "
                   "'.', '-', '_'; \"\" for the agent's)",
                   MT_SPIFFE_TRUST_DOMAIN_MAX);
    return false;
}

/*
 * The file being read and the copy being filled; committed by mt_config_load_file on success.
 * rule_key names the rule being read ("outbound.rules[3]") so that its keys can say where they
 * are; seen_keys records which keys that rule has set.
 */
struct load_context {
    const char *path;
    struct mt_config config;
    struct mt_text *message; /* the caller's reason; NULL allowed */
    char rule_key[40];
    unsigned seen_keys;
};

/* Starts a "FILE:LINE: KEY: " message for setting; key is NULL for the top level. */
static void begin_setting_message(struct load_context *context, const config_setting_t *setting,
                                  const char *key)
{
    const char *file = config_setting_source_file(setting);
    mt_text_clear(context->message);
    mt_text_append(context->message, "%s:%u: ", file != NULL ? file : context->path,
                   (unsigned)config_setting_source_line(setting));
    if (key != NULL)
        mt_text_append(context->message, "%s: ", key);
}

static const char *type_name(const config_setting_t *setting)
{
    switch (config_setting_type(setting)) {
    case CONFIG_TYPE_GROUP:
        return "a group";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a floating-point number";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a boolean";
    case CONFIG_TYPE_ARRAY:
        return "an array";
    case CONFIG_TYPE_LIST:
        return "a list";
    default:
        return "no value";
    }
}

/* The string value of setting, or an error "KEY: expected a string (EXPECTED), got TYPE". */
static MT_RESULT read_string(struct load_context *context, const config_setting_t *setting,
                             const char *key, const char *expected, const char **value)
{
    if (config_setting_type(setting) == CONFIG_TYPE_STRING) {
        *value = config_setting_get_string(setting);
        if (*value != NULL)
            return MT_OK_RESULT;
    }
    begin_setting_message(context, setting, key);
    mt_text_append(context->message, "expected a string (%s), got %s", expected,
                   type_name(setting));
    return mt_result_of(MT_ERR_CONFIG);
}

/* Reports "KEY: "VALUE" PROBLEM", the problem having been written by a check_* function. */
static mt_result fail_value(struct load_context *context, const config_setting_t *setting,
                            const char *key, const char *value, const char *problem)
{
    begin_setting_message(context, setting, key);
    text_append_quoted(context->message, value, QUOTED_VALUE_MAX);
    mt_text_append(context->message, " %s", problem);
    return mt_result_of(MT_ERR_CONFIG);
}

static MT_RESULT read_choice(struct load_context *context, const config_setting_t *setting,
                             const char *key, const struct choice *choices, size_t count,
                             int *chosen)
{
    char expected[128];
    struct mt_text expected_text;
    expected_text = mt_text_on(expected, sizeof(expected));
    mt_text_append(&expected_text, "one of ");
    text_append_choices(&expected_text, choices, count);

    const char *value;
    MT_GUARD(read_string(context, setting, key, expected, &value));
    char problem[128];
    struct mt_text problem_text;
    problem_text = mt_text_on(problem, sizeof(problem));
    if (!check_choice(value, choices, count, chosen, &problem_text))
        return fail_value(context, setting, key, value, problem);
    return MT_OK_RESULT;
}

static MT_RESULT read_bounded(struct load_context *context, const config_setting_t *setting,
                              const char *key, int minimum, int maximum, unsigned *result)
{
    /*
     * libconfig 1.5 silently wraps a decimal literal beyond 32 bits that lacks the L suffix
     * (4294967396 reads as 100); such a value cannot be told apart from the one it wraps to.
     */
    long long value;
    switch (config_setting_type(setting)) {
    case CONFIG_TYPE_INT:
        value = config_setting_get_int(setting);
        break;
    case CONFIG_TYPE_INT64:
        value = config_setting_get_int64(setting);
        break;
    default:
        begin_setting_message(context, setting, key);
        mt_text_append(context->message, "expected an integer (%d .. %d), got %s", minimum, maximum,
                       type_name(setting));
        return mt_result_of(MT_ERR_CONFIG);
    }
    if (value < minimum || value > maximum) {
        begin_setting_message(context, setting, key);
        mt_text_append(context->message, "%lld is out of range; valid values: %d .. %d", value,
                       minimum, maximum);
        return mt_result_of(MT_ERR_CONFIG);
    }
    *result = (unsigned)value;
    return MT_OK_RESULT;
}

static MT_RESULT read_duration(struct load_context *context, const config_setting_t *setting,
                               const char *key, int minimum_ms, unsigned *duration_ms)
{
    return read_bounded(context, setting, key, minimum_ms, TIMEOUT_MAX_MS, duration_ms);
}

static MT_RESULT read_timeout(struct load_context *context, const config_setting_t *setting,
                              const char *key, unsigned *timeout_ms)
{
    return read_duration(context, setting, key, TIMEOUT_MIN_MS, timeout_ms);
}

typedef mt_result (*key_reader)(struct load_context *context, const config_setting_t *setting);

struct key_rule {
    const char *name;
    key_reader read;
};

/*
 * Reads every child of group through the rule of the same name. group_key is the key of the
 * group in messages (NULL for the top level).
 */
static MT_RESULT read_group(struct load_context *context, const config_setting_t *group,
                            const char *group_key, const struct key_rule *rules, size_t rule_count)
{
    int count = config_setting_length(group);
    for (int i = 0; i < count; i++) {
        const config_setting_t *child = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(child);
        const struct key_rule *rule = NULL;
        for (size_t r = 0; r < rule_count && name != NULL; r++) {
            if (strcmp(name, rules[r].name) == 0)
                rule = &rules[r];
        }
        if (rule == NULL) {
            begin_setting_message(context, child, group_key);
            mt_text_append(context->message, "unknown key ");
            text_append_quoted(context->message, name != NULL ? name : "", QUOTED_VALUE_MAX);
            mt_text_append(context->message, "; valid keys: ");
            for (size_t r = 0; r < rule_count; r++)
                mt_text_append(context->message, "%s%s", r > 0 ? ", " : "", rules[r].name);
            return mt_result_of(MT_ERR_CONFIG);
        }
        MT_GUARD(rule->read(context, child));
    }
    return MT_OK_RESULT;
}

static MT_RESULT expect_group(struct load_context *context, const config_setting_t *setting,
                              const char *key, const char *example)
{
    if (config_setting_is_group(setting))
        return MT_OK_RESULT;
    begin_setting_message(context, setting, key);
    mt_text_append(context->message, "expected a group (%s), got %s", example, type_name(setting));
    return mt_result_of(MT_ERR_CONFIG);
}

static MT_RESULT read_agent_socket(struct load_context *context, const config_setting_t *setting)
{
    static const char key[] = "agent_socket";
    const char *value;
    MT_GUARD(read_string(context, setting, key, "an absolute path", &value));
    char problem[128];
    struct mt_text problem_text;
    problem_text = mt_text_on(problem, sizeof(problem));
    if (!check_socket_path(value, &problem_text))
        return fail_value(context, setting, key, value, problem);
    strcpy(context->config.agent_socket, value);
    return MT_OK_RESULT;
}

/* A uid, not a name: the preload must not call into NSS (files, LDAP) inside any process. */
static MT_RESULT read_agent_uid(struct load_context *context, const config_setting_t *setting)
{
    return read_bounded(context, setting, "agent_uid", 0, INT_MAX, &context->config.agent_uid);
}

static MT_RESULT read_outbound_loopback(struct load_context *context,
                                        const config_setting_t *setting)
{
    int mode;
    MT_GUARD(read_choice(context, setting, "outbound.loopback", outbound_choices,
                         COUNT_OF(outbound_choices), &mode));
    context->config.outbound.loopback = (enum mt_outbound_mode)mode;
    return MT_OK_RESULT;
}

static MT_RESULT read_outbound_default(struct load_context *context,
                                       const config_setting_t *setting)
{
    int mode;
    MT_GUARD(read_choice(context, setting, "outbound.default", outbound_choices,
                         COUNT_OF(outbound_choices), &mode));
    context->config.outbound.other = (enum mt_outbound_mode)mode;
    return MT_OK_RESULT;
}

static MT_RESULT read_inbound_loopback(struct load_context *context,
                                       const config_setting_t *setting)
{
    int mode;
    MT_GUARD(read_choice(context, setting, "inbound.loopback", inbound_choices,
                         COUNT_OF(inbound_choices), &mode));
    context->config.inbound.loopback = (enum mt_inbound_mode)mode;
    return MT_OK_RESULT;
}

static MT_RESULT read_inbound_default(struct load_context *context, const config_setting_t *setting)
{
    int mode;
    MT_GUARD(read_choice(context, setting, "inbound.default", inbound_choices,
                         COUNT_OF(inbound_choices), &mode));
    context->config.inbound.other = (enum mt_inbound_mode)mode;
    return MT_OK_RESULT;
}

/* ---- ports ---------------------------------------------------------------------------------- */

#define PORT_EXAMPLES "such as 8080 or \"8000-8999\""

/* Decimal digits only, 1 .. 65535: no sign, no spaces, no empty text. */
static bool parse_port_number(const char *text, size_t length, uint16_t *port)
{
    if (length == 0 || length > 5)
        return false;
    unsigned value = 0;
    for (size_t i = 0; i < length; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        value = value * 10 + (unsigned)(text[i] - '0');
    }
    if (value < 1 || value > 65535)
        return false;
    *port = (uint16_t)value;
    return true;
}

/* "8080" or "8000-8999". */
static bool parse_port_range(const char *text, struct mt_port_range *range)
{
    const char *dash = strchr(text, '-');
    size_t length = strlen(text);
    if (dash == NULL) {
        if (!parse_port_number(text, length, &range->first))
            return false;
        range->last = range->first;
        return true;
    }
    return parse_port_number(text, (size_t)(dash - text), &range->first) &&
           parse_port_number(dash + 1, length - (size_t)(dash - text) - 1, &range->last) &&
           range->first <= range->last;
}

/* A port as an integer (8080) or a string ("8080", "8000-8999"). */
static MT_RESULT read_port_range(struct load_context *context, const config_setting_t *setting,
                                 const char *key, struct mt_port_range *range)
{
    long long value;
    switch (config_setting_type(setting)) {
    case CONFIG_TYPE_INT:
        value = config_setting_get_int(setting);
        break;
    case CONFIG_TYPE_INT64:
        value = config_setting_get_int64(setting);
        break;
    case CONFIG_TYPE_STRING: {
        const char *text = config_setting_get_string(setting);
        if (text != NULL && parse_port_range(text, range))
            return MT_OK_RESULT;
        return fail_value(context, setting, key, text != NULL ? text : "",
                          "is not a port or port range (" PORT_EXAMPLES
                          "; ports 1 .. 65535, FIRST <= LAST)");
    }
    default:
        begin_setting_message(context, setting, key);
        mt_text_append(context->message, "expected a port (%s), got %s", PORT_EXAMPLES,
                       type_name(setting));
        return mt_result_of(MT_ERR_CONFIG);
    }
    if (value < 1 || value > 65535) {
        begin_setting_message(context, setting, key);
        mt_text_append(context->message, "%lld is out of range; valid values: 1 .. 65535", value);
        return mt_result_of(MT_ERR_CONFIG);
    }
    range->first = (uint16_t)value;
    range->last = (uint16_t)value;
    return MT_OK_RESULT;
}

static bool is_sequence(const config_setting_t *setting)
{
    return config_setting_is_array(setting) || config_setting_is_list(setting);
}

/*
 * An array or list of ports and ranges into ranges[0 .. *count). An empty one is refused unless
 * allow_empty: in a rule it would match nothing, which is never what was meant.
 */
static MT_RESULT read_port_list(struct load_context *context, const config_setting_t *setting,
                                const char *key, bool allow_empty, struct mt_port_range *ranges,
                                unsigned capacity, unsigned *count)
{
    if (!is_sequence(setting)) {
        begin_setting_message(context, setting, key);
        mt_text_append(
            context->message,
            "expected an array of ports (such as [5432, 6379] or [\"8000-8999\"]), got %s",
            type_name(setting));
        return mt_result_of(MT_ERR_CONFIG);
    }
    int length = config_setting_length(setting);
    if (length == 0 && !allow_empty) {
        begin_setting_message(context, setting, key);
        mt_text_append(context->message,
                       "an empty list matches no port; leave the key out to match every port");
        return mt_result_of(MT_ERR_CONFIG);
    }
    for (int i = 0; i < length; i++) {
        const config_setting_t *element = config_setting_get_elem(setting, (unsigned)i);
        char element_key[96];
        snprintf(element_key, sizeof(element_key), "%s[%d]", key, i);
        if ((unsigned)i >= capacity) {
            begin_setting_message(context, element, element_key);
            mt_text_append(context->message, "too many entries; at most %u ports or ranges",
                           capacity);
            return mt_result_of(MT_ERR_CONFIG);
        }
        MT_GUARD(read_port_range(context, element, element_key, &ranges[i]));
    }
    *count = (unsigned)length;
    return MT_OK_RESULT;
}

/* ---- addresses ------------------------------------------------------------------------------ */

#define CIDR_EXAMPLES "such as \"10.0.0.0/8\", \"2001:db8::/32\" or \"10.1.2.3\""

/* Clears the bits of address beyond prefix_length; true when any was set. */
static bool clear_host_bits(uint8_t *address, size_t size, unsigned prefix_length)
{
    bool any = false;
    for (size_t i = 0; i < size; i++) {
        unsigned first_bit = (unsigned)i * 8;
        uint8_t mask = 0xff;
        if (prefix_length >= first_bit + 8)
            continue;
        if (prefix_length > first_bit)
            mask = (uint8_t)(0xff >> (prefix_length - first_bit));
        if ((address[i] & mask) != 0)
            any = true;
        address[i] &= (uint8_t)~mask;
    }
    return any;
}

/*
 * "ADDRESS" or "ADDRESS/PREFIX" in the strict forms inet_pton accepts (dotted quad, RFC 4291
 * text), no zone index. Returns false for text that is neither; *host_bits_set says the address
 * had bits beyond the prefix (cidr then holds the network).
 */
static bool parse_cidr(const char *text, struct mt_cidr *cidr, bool *host_bits_set)
{
    char address[INET6_ADDRSTRLEN];
    const char *slash = strchr(text, '/');
    size_t address_length = slash != NULL ? (size_t)(slash - text) : strlen(text);
    if (address_length >= sizeof(address))
        return false;
    memcpy(address, text, address_length);
    address[address_length] = '\0';
    memset(cidr, 0, sizeof(*cidr));
    if (inet_pton(AF_INET, address, cidr->address) == 1)
        cidr->family = AF_INET;
    else if (inet_pton(AF_INET6, address, cidr->address) == 1)
        cidr->family = AF_INET6;
    else
        return false;
    unsigned maximum = cidr->family == AF_INET ? 32 : 128;
    unsigned prefix_length = maximum;
    if (slash != NULL) {
        const char *digits = slash + 1;
        size_t length = strlen(digits);
        if (length == 0 || length > 3)
            return false;
        prefix_length = 0;
        for (size_t i = 0; i < length; i++) {
            if (digits[i] < '0' || digits[i] > '9')
                return false;
            prefix_length = prefix_length * 10 + (unsigned)(digits[i] - '0');
        }
        if (prefix_length > maximum)
            return false;
    }
    cidr->prefix_length = (uint8_t)prefix_length;
    *host_bits_set = clear_host_bits(cidr->address, maximum / 8, prefix_length);
    return true;
}

/* "10.0.0.0/8"; a single address without its full-length prefix ("10.1.2.3"). */
static void text_append_cidr(struct mt_text *text, const struct mt_cidr *cidr)
{
    char address[INET6_ADDRSTRLEN];
    if (inet_ntop(cidr->family, cidr->address, address, sizeof(address)) == NULL) {
        mt_text_append(text, "?");
        return;
    }
    unsigned maximum = cidr->family == AF_INET ? 32 : 128;
    if (cidr->prefix_length == maximum)
        mt_text_append(text, "%s", address);
    else
        mt_text_append(text, "%s/%u", address, (unsigned)cidr->prefix_length);
}

/* ---- identity patterns ---------------------------------------------------------------------- */

#define PATTERN_EXPECTED                                                                           \
    "a SPIFFE ID such as \"spiffe://example.org/ns/db/sa/pg\", or one followed by \"/*\" for "     \
    "every ID below it"

static bool is_pattern_referenced(const struct mt_config *config, uint16_t offset)
{
    for (unsigned r = 0; r < config->outbound.rule_count; r++) {
        if (config->outbound.rules[r].identity == offset)
            return true;
    }
    for (unsigned r = 0; r < config->inbound.rule_count; r++) {
        const struct mt_inbound_rule *rule = &config->inbound.rules[r];
        for (unsigned a = 0; a < rule->allow_count; a++) {
            if (rule->allow[a] == offset)
                return true;
        }
    }
    return false;
}

static void rename_pattern(struct mt_config *config, uint16_t from, uint16_t to)
{
    for (unsigned r = 0; r < config->outbound.rule_count; r++) {
        if (config->outbound.rules[r].identity == from)
            config->outbound.rules[r].identity = to;
    }
    for (unsigned r = 0; r < config->inbound.rule_count; r++) {
        struct mt_inbound_rule *rule = &config->inbound.rules[r];
        for (unsigned a = 0; a < rule->allow_count; a++) {
            if (rule->allow[a] == from)
                rule->allow[a] = to;
        }
    }
}

/*
 * Drops the patterns no rule refers to any more (those of rules a file replaced), moving the
 * rest down. Patterns are stored in order and only ever move towards the start, so a reference
 * renamed here can never collide with one not yet visited.
 */
static void compact_patterns(struct mt_config *config)
{
    size_t kept = 0;
    size_t offset = 0;
    while (offset < config->pattern_text_length) {
        size_t size = strlen(config->pattern_text + offset) + 1;
        if (is_pattern_referenced(config, (uint16_t)offset)) {
            if (kept != offset) {
                memmove(config->pattern_text + kept, config->pattern_text + offset, size);
                rename_pattern(config, (uint16_t)offset, (uint16_t)kept);
            }
            kept += size;
        }
        offset += size;
    }
    config->pattern_text_length = kept;
}

/* The reference of value in the pattern text, added when it is not there yet; false when full. */
static bool intern_pattern(struct mt_config *config, const char *value, uint16_t *reference)
{
    size_t size = strlen(value) + 1;
    for (size_t offset = 0; offset < config->pattern_text_length;) {
        const char *stored = config->pattern_text + offset;
        size_t stored_size = strlen(stored) + 1;
        if (stored_size == size && memcmp(stored, value, size) == 0) {
            *reference = (uint16_t)offset;
            return true;
        }
        offset += stored_size;
    }
    if (size > sizeof(config->pattern_text) - config->pattern_text_length)
        compact_patterns(config);
    if (size > sizeof(config->pattern_text) - config->pattern_text_length)
        return false;
    memcpy(config->pattern_text + config->pattern_text_length, value, size);
    *reference = (uint16_t)config->pattern_text_length;
    config->pattern_text_length += size;
    return true;
}

static MT_RESULT read_pattern(struct load_context *context, const config_setting_t *setting,
                              const char *key, uint16_t *reference)
{
    const char *value;
    MT_GUARD(read_string(context, setting, key, PATTERN_EXPECTED, &value));
    size_t length = strlen(value);
    char problem[160];
    if (length > MT_CONFIG_PATTERN_MAX) {
        snprintf(problem, sizeof(problem), "is %zu bytes long; a pattern is at most %d bytes",
                 length, MT_CONFIG_PATTERN_MAX);
        return fail_value(context, setting, key, value, problem);
    }
    if (!mt_spiffe_is_valid_pattern(value, length))
        return fail_value(context, setting, key, value,
                          "is not an identity pattern (" PATTERN_EXPECTED ")");
    if (!intern_pattern(&context->config, value, reference)) {
        begin_setting_message(context, setting, key);
        mt_text_append(context->message,
                       "identity patterns take more than %d bytes in all; cover several IDs with "
                       "one \"/*\" pattern",
                       MT_CONFIG_PATTERN_TEXT_MAX);
        return mt_result_of(MT_ERR_CONFIG);
    }
    return MT_OK_RESULT;
}

/* ---- rules ---------------------------------------------------------------------------------- */

enum rule_key_bit {
    SEEN_MODE = 1u << 0,
    SEEN_PORT = 1u << 1,
};

/* "outbound.rules[3].to" for the rule being read. */
static const char *rule_member_key(struct load_context *context, const char *member, char *key,
                                   size_t capacity)
{
    snprintf(key, capacity, "%s.%s", context->rule_key, member);
    return key;
}

static struct mt_outbound_rule *current_outbound_rule(struct load_context *context)
{
    return &context->config.outbound.rules[context->config.outbound.rule_count - 1];
}

static struct mt_inbound_rule *current_inbound_rule(struct load_context *context)
{
    return &context->config.inbound.rules[context->config.inbound.rule_count - 1];
}

static MT_RESULT read_outbound_rule_to(struct load_context *context,
                                       const config_setting_t *setting)
{
    char key[64];
    rule_member_key(context, "to", key, sizeof(key));
    const char *value;
    MT_GUARD(read_string(context, setting, key, "an IP address or CIDR, " CIDR_EXAMPLES, &value));
    struct mt_cidr *cidr = &current_outbound_rule(context)->to;
    bool host_bits_set = false;
    if (!parse_cidr(value, cidr, &host_bits_set))
        return fail_value(context, setting, key, value,
                          "is not an IP address or CIDR (" CIDR_EXAMPLES ")");
    if (host_bits_set) {
        char problem[160];
        struct mt_text problem_text;
        problem_text = mt_text_on(problem, sizeof(problem));
        mt_text_append(&problem_text, "has bits set beyond its /%u prefix; the network is \"",
                       (unsigned)cidr->prefix_length);
        text_append_cidr(&problem_text, cidr);
        mt_text_append(&problem_text, "\"");
        return fail_value(context, setting, key, value, problem);
    }
    return MT_OK_RESULT;
}

static MT_RESULT read_outbound_rule_ports(struct load_context *context,
                                          const config_setting_t *setting)
{
    char key[64];
    struct mt_outbound_rule *rule = current_outbound_rule(context);
    return read_port_list(context, setting, rule_member_key(context, "ports", key, sizeof(key)),
                          false, rule->ports, MT_CONFIG_RULE_PORTS_MAX, &rule->port_count);
}

static MT_RESULT read_outbound_rule_mode(struct load_context *context,
                                         const config_setting_t *setting)
{
    char key[64];
    int mode;
    MT_GUARD(read_choice(context, setting, rule_member_key(context, "mode", key, sizeof(key)),
                         outbound_choices, COUNT_OF(outbound_choices), &mode));
    current_outbound_rule(context)->mode = (enum mt_outbound_mode)mode;
    context->seen_keys |= SEEN_MODE;
    return MT_OK_RESULT;
}

static MT_RESULT read_outbound_rule_identity(struct load_context *context,
                                             const config_setting_t *setting)
{
    char key[64];
    return read_pattern(context, setting, rule_member_key(context, "identity", key, sizeof(key)),
                        &current_outbound_rule(context)->identity);
}

static const struct key_rule outbound_rule_keys[] = {
    {"to", read_outbound_rule_to},
    {"ports", read_outbound_rule_ports},
    {"mode", read_outbound_rule_mode},
    {"identity", read_outbound_rule_identity},
};

static MT_RESULT read_inbound_rule_port(struct load_context *context,
                                        const config_setting_t *setting)
{
    char key[64];
    MT_GUARD(read_port_range(context, setting, rule_member_key(context, "port", key, sizeof(key)),
                             &current_inbound_rule(context)->port));
    context->seen_keys |= SEEN_PORT;
    return MT_OK_RESULT;
}

static MT_RESULT read_inbound_rule_mode(struct load_context *context,
                                        const config_setting_t *setting)
{
    char key[64];
    int mode;
    MT_GUARD(read_choice(context, setting, rule_member_key(context, "mode", key, sizeof(key)),
                         inbound_choices, COUNT_OF(inbound_choices), &mode));
    current_inbound_rule(context)->mode = (enum mt_inbound_mode)mode;
    context->seen_keys |= SEEN_MODE;
    return MT_OK_RESULT;
}

static MT_RESULT read_inbound_rule_allow(struct load_context *context,
                                         const config_setting_t *setting)
{
    char key[64];
    rule_member_key(context, "allow", key, sizeof(key));
    if (!is_sequence(setting)) {
        begin_setting_message(context, setting, key);
        mt_text_append(context->message,
                       "expected an array of identity patterns (such as "
                       "[\"spiffe://example.org/ns/web/*\"]), got %s",
                       type_name(setting));
        return mt_result_of(MT_ERR_CONFIG);
    }
    int length = config_setting_length(setting);
    if (length == 0) {
        begin_setting_message(context, setting, key);
        mt_text_append(context->message, "an empty list would refuse every peer; leave the key out "
                                         "to accept any peer of the trust domain");
        return mt_result_of(MT_ERR_CONFIG);
    }
    struct mt_inbound_rule *rule = current_inbound_rule(context);
    for (int i = 0; i < length; i++) {
        const config_setting_t *element = config_setting_get_elem(setting, (unsigned)i);
        char element_key[80];
        snprintf(element_key, sizeof(element_key), "%s[%d]", key, i);
        if (i >= MT_CONFIG_ALLOW_MAX) {
            begin_setting_message(context, element, element_key);
            mt_text_append(context->message, "too many entries; at most %d patterns per port",
                           MT_CONFIG_ALLOW_MAX);
            return mt_result_of(MT_ERR_CONFIG);
        }
        /* Counted first, so that compacting the patterns sees the ones read so far. */
        rule->allow[i] = MT_CONFIG_NO_PATTERN;
        rule->allow_count = (unsigned)i + 1;
        MT_GUARD(read_pattern(context, element, element_key, &rule->allow[i]));
    }
    return MT_OK_RESULT;
}

static MT_RESULT read_inbound_rule_opaque(struct load_context *context,
                                          const config_setting_t *setting)
{
    char key[64];
    rule_member_key(context, "opaque", key, sizeof(key));
    if (config_setting_type(setting) != CONFIG_TYPE_BOOL) {
        begin_setting_message(context, setting, key);
        mt_text_append(context->message, "expected a boolean (true or false), got %s",
                       type_name(setting));
        return mt_result_of(MT_ERR_CONFIG);
    }
    current_inbound_rule(context)->opaque = config_setting_get_bool(setting) != 0;
    return MT_OK_RESULT;
}

static const struct key_rule inbound_rule_keys[] = {
    {"port", read_inbound_rule_port},
    {"mode", read_inbound_rule_mode},
    {"allow", read_inbound_rule_allow},
    {"opaque", read_inbound_rule_opaque},
};

/* Reports "RULE: missing key NAME (EXPECTED)" at the line of the rule. */
static mt_result fail_missing_key(struct load_context *context, const config_setting_t *rule,
                                  const char *name, const char *expected)
{
    begin_setting_message(context, rule, context->rule_key);
    mt_text_append(context->message, "missing key %s (%s)", name, expected);
    return mt_result_of(MT_ERR_CONFIG);
}

/* Reports "RULE.MEMBER: PROBLEM" at the line of the member. */
static mt_result fail_member(struct load_context *context, const config_setting_t *rule,
                             const char *member, const char *problem)
{
    const config_setting_t *setting = config_setting_get_member(rule, member);
    char key[64];
    begin_setting_message(context, setting != NULL ? setting : rule,
                          rule_member_key(context, member, key, sizeof(key)));
    mt_text_append(context->message, "%s", problem);
    return mt_result_of(MT_ERR_CONFIG);
}

static MT_RESULT check_outbound_rule(struct load_context *context, const config_setting_t *group)
{
    const struct mt_outbound_rule *rule = current_outbound_rule(context);
    if ((context->seen_keys & SEEN_MODE) == 0)
        return fail_missing_key(context, group, "mode", "one of \"mtls\", \"plain\"");
    if (rule->mode != MT_OUTBOUND_MTLS && rule->identity != MT_CONFIG_NO_PATTERN)
        return fail_member(context, group, "identity",
                           "only a rule with mode \"mtls\" can expect a server identity");
    return MT_OK_RESULT;
}

static MT_RESULT check_inbound_rule(struct load_context *context, const config_setting_t *group)
{
    const struct mt_inbound_rule *rule = current_inbound_rule(context);
    if ((context->seen_keys & SEEN_PORT) == 0)
        return fail_missing_key(context, group, "port", PORT_EXAMPLES);
    if ((context->seen_keys & SEEN_MODE) == 0)
        return fail_missing_key(context, group, "mode",
                                "one of \"strict\", \"permissive\", \"plain\"");
    if (rule->mode == MT_INBOUND_PLAIN && rule->allow_count > 0)
        return fail_member(context, group, "allow",
                           "a port in mode \"plain\" has no peer identity to check; remove allow "
                           "or use \"strict\" or \"permissive\"");
    return MT_OK_RESULT;
}

/* Which list of rules is being read: its key, limits, and how to fill and check one rule. */
struct rule_list {
    const char *key;
    const char *example;
    unsigned capacity;
    unsigned *count;
    void (*start)(struct load_context *context, const config_setting_t *group);
    const struct key_rule *keys;
    size_t key_count;
    mt_result (*check)(struct load_context *context, const config_setting_t *group);
};

static void start_outbound_rule(struct load_context *context, const config_setting_t *group)
{
    struct mt_outbound_rule *rule = current_outbound_rule(context);
    memset(rule, 0, sizeof(*rule));
    rule->line = config_setting_source_line(group);
    rule->to.family = AF_UNSPEC;
    rule->identity = MT_CONFIG_NO_PATTERN;
}

static void start_inbound_rule(struct load_context *context, const config_setting_t *group)
{
    struct mt_inbound_rule *rule = current_inbound_rule(context);
    memset(rule, 0, sizeof(*rule));
    rule->line = config_setting_source_line(group);
}

/* A list of rule groups; the rules of the file replace those configured before. */
static MT_RESULT read_rules(struct load_context *context, const config_setting_t *setting,
                            const struct rule_list *list)
{
    bool empty_array = config_setting_is_array(setting) && config_setting_length(setting) == 0;
    if (!config_setting_is_list(setting) && !empty_array) {
        begin_setting_message(context, setting, list->key);
        mt_text_append(context->message, "expected a list of rules (%s = ( %s );), got %s",
                       list->key, list->example, type_name(setting));
        return mt_result_of(MT_ERR_CONFIG);
    }
    *list->count = 0;
    int length = config_setting_length(setting);
    for (int i = 0; i < length; i++) {
        const config_setting_t *group = config_setting_get_elem(setting, (unsigned)i);
        snprintf(context->rule_key, sizeof(context->rule_key), "%s[%d]", list->key, i);
        if ((unsigned)i >= list->capacity) {
            begin_setting_message(context, group, context->rule_key);
            mt_text_append(context->message, "too many rules; at most %u", list->capacity);
            return mt_result_of(MT_ERR_CONFIG);
        }
        if (!config_setting_is_group(group)) {
            begin_setting_message(context, group, context->rule_key);
            mt_text_append(context->message, "expected a group (%s), got %s", list->example,
                           type_name(group));
            return mt_result_of(MT_ERR_CONFIG);
        }
        *list->count = (unsigned)i + 1;
        list->start(context, group);
        context->seen_keys = 0;
        MT_GUARD(read_group(context, group, context->rule_key, list->keys, list->key_count));
        MT_GUARD(list->check(context, group));
    }
    return MT_OK_RESULT;
}

static MT_RESULT read_outbound_rules(struct load_context *context, const config_setting_t *setting)
{
    const struct rule_list list = {
        .key = "outbound.rules",
        .example = "{ to = \"10.0.0.0/8\"; ports = [5432]; mode = \"mtls\"; }",
        .capacity = MT_CONFIG_OUTBOUND_RULES_MAX,
        .count = &context->config.outbound.rule_count,
        .start = start_outbound_rule,
        .keys = outbound_rule_keys,
        .key_count = COUNT_OF(outbound_rule_keys),
        .check = check_outbound_rule,
    };
    return read_rules(context, setting, &list);
}

static MT_RESULT read_inbound_rules(struct load_context *context, const config_setting_t *setting)
{
    const struct rule_list list = {
        .key = "inbound.rules",
        .example = "{ port = 8080; mode = \"strict\"; }",
        .capacity = MT_CONFIG_INBOUND_RULES_MAX,
        .count = &context->config.inbound.rule_count,
        .start = start_inbound_rule,
        .keys = inbound_rule_keys,
        .key_count = COUNT_OF(inbound_rule_keys),
        .check = check_inbound_rule,
    };
    return read_rules(context, setting, &list);
}

static MT_RESULT read_skip_ports(struct load_context *context, const config_setting_t *setting)
{
    return read_port_list(context, setting, "skip_ports", true, context->config.skip_ports,
                          MT_CONFIG_SKIP_PORTS_MAX, &context->config.skip_port_count);
}

static MT_RESULT read_detect_timeout(struct load_context *context, const config_setting_t *setting)
{
    return read_timeout(context, setting, "detect_timeout_ms", &context->config.detect_timeout_ms);
}

static const struct key_rule outbound_rules[] = {
    {"loopback", read_outbound_loopback},
    {"default", read_outbound_default},
    {"rules", read_outbound_rules},
};

static const struct key_rule inbound_rules[] = {
    {"loopback", read_inbound_loopback},
    {"default", read_inbound_default},
    {"rules", read_inbound_rules},
};

static MT_RESULT read_outbound(struct load_context *context, const config_setting_t *setting)
{
    MT_GUARD(expect_group(context, setting, "outbound",
                          "outbound = { loopback = \"plain\"; default = \"mtls\"; };"));
    return read_group(context, setting, "outbound", outbound_rules, COUNT_OF(outbound_rules));
}

static MT_RESULT read_inbound(struct load_context *context, const config_setting_t *setting)
{
    MT_GUARD(expect_group(context, setting, "inbound",
                          "inbound = { loopback = \"plain\"; default = \"strict\"; };"));
    return read_group(context, setting, "inbound", inbound_rules, COUNT_OF(inbound_rules));
}

static MT_RESULT read_log_level(struct load_context *context, const config_setting_t *setting)
{
    static const char key[] = "log_level";
    char expected[128];
    struct mt_text expected_text;
    expected_text = mt_text_on(expected, sizeof(expected));
    mt_text_append(&expected_text, "one of ");
    text_append_log_levels(&expected_text);

    const char *value;
    MT_GUARD(read_string(context, setting, key, expected, &value));
    enum mt_log_level level;
    char problem[128];
    struct mt_text problem_text;
    problem_text = mt_text_on(problem, sizeof(problem));
    if (!check_log_level(value, &level, &problem_text))
        return fail_value(context, setting, key, value, problem);
    context->config.log_level = level;
    return MT_OK_RESULT;
}

static MT_RESULT read_trust_domain(struct load_context *context, const config_setting_t *setting)
{
    static const char key[] = "trust_domain";
    const char *value;
    MT_GUARD(read_string(context, setting, key,
                         "\"\" or a trust domain name such as \"example.org\"", &value));
    char problem[160];
    struct mt_text problem_text;
    problem_text = mt_text_on(problem, sizeof(problem));
    if (!check_trust_domain(value, &problem_text))
        return fail_value(context, setting, key, value, problem);
    strcpy(context->config.trust_domain, value);
    return MT_OK_RESULT;
}

static MT_RESULT read_handshake_timeout(struct load_context *context,
                                        const config_setting_t *setting)
{
    return read_timeout(context, setting, "handshake_timeout_ms",
                        &context->config.handshake_timeout_ms);
}

static MT_RESULT read_agent_timeout(struct load_context *context, const config_setting_t *setting)
{
    return read_timeout(context, setting, "agent_timeout_ms", &context->config.agent_timeout_ms);
}

static MT_RESULT read_agent_wait(struct load_context *context, const config_setting_t *setting)
{
    return read_duration(context, setting, "agent_wait_ms", 0, &context->config.agent_wait_ms);
}

static MT_RESULT read_resumption(struct load_context *context, const config_setting_t *setting)
{
    return read_bounded(context, setting, "resumption_s", 0, MT_CONFIG_RESUMPTION_MAX_S,
                        &context->config.resumption_s);
}

static const struct key_rule top_level_rules[] = {
    {"agent_socket", read_agent_socket},
    {"agent_uid", read_agent_uid},
    {"outbound", read_outbound},
    {"inbound", read_inbound},
    {"log_level", read_log_level},
    {"trust_domain", read_trust_domain},
    {"handshake_timeout_ms", read_handshake_timeout},
    {"detect_timeout_ms", read_detect_timeout},
    {"agent_timeout_ms", read_agent_timeout},
    {"agent_wait_ms", read_agent_wait},
    {"resumption_s", read_resumption},
    {"skip_ports", read_skip_ports},
};

void mt_config_set_defaults(struct mt_config *config)
{
    if (config == NULL)
        return;
    memset(config, 0, sizeof(*config));
    strcpy(config->agent_socket, MT_CONFIG_DEFAULT_AGENT_SOCKET);
    config->agent_uid = 0;
    config->log_level = MT_LOG_WARN;
    config->outbound.loopback = MT_OUTBOUND_PLAIN;
    config->outbound.other = MT_OUTBOUND_MTLS;
    config->inbound.loopback = MT_INBOUND_PLAIN;
    config->inbound.other = MT_INBOUND_STRICT;
    config->handshake_timeout_ms = 10000;
    config->detect_timeout_ms = 10000;
    config->agent_timeout_ms = 5000;
    config->agent_wait_ms = 5000;
    config->resumption_s = MT_CONFIG_RESUMPTION_DEFAULT_S;
}

/* A "FILE:0: what: strerror" message for a file that cannot be used at all. */
static mt_result fail_file(struct load_context *context, const char *what, int error)
{
    char buffer[128];
    mt_text_clear(context->message);
    mt_text_append(context->message, "%s:0: %s: %s", context->path, what,
                   strerror_r(error, buffer, sizeof(buffer)));
    return mt_result_of(MT_ERR_CONFIG);
}

MT_RESULT mt_config_load_file(const char *path, struct mt_config *config, struct mt_text *reason)
{
    MT_ENSURE_REF(path);
    MT_ENSURE_REF(config);

    struct load_context context = {.path = path, .config = *config};
    context.message = reason;
    config_t parsed;
    config_init(&parsed);
    mt_result result = MT_OK_RESULT;
    FILE *stream = NULL;

    if (strlen(path) >= sizeof(context.config.source)) {
        result = fail_file(&context, "cannot open", ENAMETOOLONG);
        goto out;
    }
    /* Close-on-exec: the host process may exec at any moment on another thread. */
    stream = fopen(path, "re");
    if (stream == NULL) {
        result = fail_file(&context, "cannot open", errno);
        goto out;
    }
    /* libconfig would read a directory as an empty, valid file: all defaults, silently. */
    struct stat status;
    if (fstat(fileno(stream), &status) != 0) {
        result = fail_file(&context, "cannot read", errno);
        goto out;
    }
    if (S_ISDIR(status.st_mode)) {
        result = fail_file(&context, "cannot read", EISDIR);
        goto out;
    }
    if (config_read(&parsed, stream) != CONFIG_TRUE) {
        const char *file = config_error_file(&parsed);
        const char *libconfig_text = config_error_text(&parsed);
        mt_text_append(context.message, "%s:%d: syntax error", file != NULL ? file : path,
                       config_error_line(&parsed));
        /* libconfig's text is often just "syntax error" again; say it once. */
        if (libconfig_text != NULL && strcmp(libconfig_text, "syntax error") != 0)
            mt_text_append(context.message, ": %s", libconfig_text);
        result = mt_result_of(MT_ERR_CONFIG);
        goto out;
    }
    /* A read error mid-file looks like end of file to libconfig; do not accept half a file. */
    if (ferror(stream)) {
        result = fail_file(&context, "cannot read", errno != 0 ? errno : EIO);
        goto out;
    }
    result = read_group(&context, config_root_setting(&parsed), NULL, top_level_rules,
                        COUNT_OF(top_level_rules));
    if (!mt_result_is_ok(result))
        goto out;

    strcpy(context.config.source, path);
    *config = context.config;
out:
    if (stream != NULL)
        fclose(stream);
    config_destroy(&parsed);
    return result;
}

/* Reports "VARIABLE: "VALUE" PROBLEM" for an environment variable. */
static mt_result fail_environment(struct mt_text *message, const char *variable, const char *value,
                                  const char *problem)
{
    mt_text_clear(message);
    mt_text_append(message, "%s: ", variable);
    text_append_quoted(message, value, QUOTED_VALUE_MAX);
    mt_text_append(message, " %s", problem);
    return mt_result_of(MT_ERR_CONFIG);
}

/* A decimal uid, 0 .. INT_MAX, nothing else (no sign, no spaces, no name). */
static bool parse_uid(const char *text, unsigned *uid)
{
    unsigned long long value = 0;
    size_t length = strlen(text);
    if (length == 0 || length > 10)
        return false;
    for (size_t i = 0; i < length; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        value = value * 10 + (unsigned)(text[i] - '0');
    }
    if (value > INT_MAX)
        return false;
    *uid = (unsigned)value;
    return true;
}

/*
 * secure_getenv: in a set-user-ID program the environment belongs to the caller, who must not be
 * able to point the library at another agent. An empty variable counts as unset.
 */
static const char *get_environment(const char *name)
{
    const char *value = secure_getenv(name);
    return value != NULL && value[0] != '\0' ? value : NULL;
}

/*
 * Both variables are judged before either is applied, so a bad one changes nothing. Nothing is
 * copied: the config is large and this may run on a small application thread stack.
 */
MT_RESULT mt_config_apply_environment(struct mt_config *config, struct mt_text *reason)
{
    MT_ENSURE_REF(config);

    char problem[160];
    struct mt_text problem_text;

    const char *socket_path = get_environment("MESHTLS_AGENT_SOCKET");
    if (socket_path != NULL) {
        problem_text = mt_text_on(problem, sizeof(problem));
        if (!check_socket_path(socket_path, &problem_text))
            return fail_environment(reason, "MESHTLS_AGENT_SOCKET", socket_path, problem);
    }

    const char *uid_text = get_environment("MESHTLS_AGENT_UID");
    unsigned uid = config->agent_uid;
    if (uid_text != NULL && !parse_uid(uid_text, &uid))
        return fail_environment(reason, "MESHTLS_AGENT_UID", uid_text,
                                "is not a uid (a decimal number 0 .. 2147483647, e.g. 0)");

    const char *level_name = get_environment("MESHTLS_LOG");
    enum mt_log_level level = config->log_level;
    if (level_name != NULL) {
        problem_text = mt_text_on(problem, sizeof(problem));
        if (!check_log_level(level_name, &level, &problem_text))
            return fail_environment(reason, "MESHTLS_LOG", level_name, problem);
    }

    if (socket_path != NULL)
        strcpy(config->agent_socket, socket_path);
    config->agent_uid = uid;
    config->log_level = level;
    return MT_OK_RESULT;
}

MT_RESULT mt_config_load(struct mt_config *config, struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    mt_config_set_defaults(config);

    const char *path = get_environment("MESHTLS_CONFIG");
    if (path == NULL && access(MT_CONFIG_DEFAULT_PATH, F_OK) == 0)
        path = MT_CONFIG_DEFAULT_PATH;

    /* Each step below changes config only when it succeeds. */
    mt_result result = MT_OK_RESULT;
    if (path != NULL) {
        result = mt_config_load_file(path, config, reason);
        if (!mt_result_is_ok(result))
            goto out;
    }
    result = mt_config_apply_environment(config, reason);
out:
    if (!mt_result_is_ok(result))
        mt_config_set_defaults(config);
    return result;
}

const char *mt_outbound_mode_name(enum mt_outbound_mode mode)
{
    return choice_name(outbound_choices, COUNT_OF(outbound_choices), (int)mode);
}

const char *mt_inbound_mode_name(enum mt_inbound_mode mode)
{
    return choice_name(inbound_choices, COUNT_OF(inbound_choices), (int)mode);
}

const char *mt_config_pattern(const struct mt_config *config, uint16_t reference)
{
    if (config == NULL || reference == MT_CONFIG_NO_PATTERN ||
        reference >= config->pattern_text_length ||
        config->pattern_text_length > sizeof(config->pattern_text))
        return NULL;
    return config->pattern_text + reference;
}

/* [5432, 6379] when every entry is one port, else every entry as a string: ["443", "8000-8999"]. */
static void text_append_ports(struct mt_text *out, const struct mt_port_range *ranges,
                              unsigned count)
{
    bool all_single = true;
    for (unsigned i = 0; i < count; i++)
        all_single = all_single && ranges[i].first == ranges[i].last;
    mt_text_append(out, "[");
    for (unsigned i = 0; i < count; i++) {
        const char *separator = i > 0 ? ", " : "";
        if (all_single)
            mt_text_append(out, "%s%u", separator, (unsigned)ranges[i].first);
        else if (ranges[i].first == ranges[i].last)
            mt_text_append(out, "%s\"%u\"", separator, (unsigned)ranges[i].first);
        else
            mt_text_append(out, "%s\"%u-%u\"", separator, (unsigned)ranges[i].first,
                           (unsigned)ranges[i].last);
    }
    mt_text_append(out, "]");
}

static void text_append_pattern(struct mt_text *out, const struct mt_config *config,
                                uint16_t reference)
{
    const char *pattern = mt_config_pattern(config, reference);
    text_append_quoted(out, pattern != NULL ? pattern : "", SIZE_MAX);
}

static void describe_outbound(struct mt_text *out, const struct mt_config *config)
{
    const char *loopback = mt_outbound_mode_name(config->outbound.loopback);
    const char *other = mt_outbound_mode_name(config->outbound.other);
    if (config->outbound.rule_count == 0) {
        mt_text_append(out, "outbound = { loopback = \"%s\"; default = \"%s\"; };\n", loopback,
                       other);
        return;
    }
    mt_text_append(out,
                   "outbound = {\n    loopback = \"%s\";\n    default = \"%s\";\n    rules = (\n",
                   loopback, other);
    for (unsigned r = 0; r < config->outbound.rule_count; r++) {
        const struct mt_outbound_rule *rule = &config->outbound.rules[r];
        mt_text_append(out, "        {");
        if (rule->to.family != AF_UNSPEC) {
            mt_text_append(out, " to = \"");
            text_append_cidr(out, &rule->to);
            mt_text_append(out, "\";");
        }
        if (rule->port_count > 0) {
            mt_text_append(out, " ports = ");
            text_append_ports(out, rule->ports, rule->port_count);
            mt_text_append(out, ";");
        }
        mt_text_append(out, " mode = \"%s\";", mt_outbound_mode_name(rule->mode));
        if (rule->identity != MT_CONFIG_NO_PATTERN) {
            mt_text_append(out, " identity = ");
            text_append_pattern(out, config, rule->identity);
            mt_text_append(out, ";");
        }
        mt_text_append(out, " }%s\n", r + 1 < config->outbound.rule_count ? "," : "");
    }
    mt_text_append(out, "    );\n};\n");
}

static void describe_inbound(struct mt_text *out, const struct mt_config *config)
{
    const char *loopback = mt_inbound_mode_name(config->inbound.loopback);
    const char *other = mt_inbound_mode_name(config->inbound.other);
    if (config->inbound.rule_count == 0) {
        mt_text_append(out, "inbound = { loopback = \"%s\"; default = \"%s\"; };\n", loopback,
                       other);
        return;
    }
    mt_text_append(out,
                   "inbound = {\n    loopback = \"%s\";\n    default = \"%s\";\n    rules = (\n",
                   loopback, other);
    for (unsigned r = 0; r < config->inbound.rule_count; r++) {
        const struct mt_inbound_rule *rule = &config->inbound.rules[r];
        if (rule->port.first == rule->port.last)
            mt_text_append(out, "        { port = %u;", (unsigned)rule->port.first);
        else
            mt_text_append(out, "        { port = \"%u-%u\";", (unsigned)rule->port.first,
                           (unsigned)rule->port.last);
        mt_text_append(out, " mode = \"%s\";", mt_inbound_mode_name(rule->mode));
        if (rule->allow_count > 0) {
            mt_text_append(out, " allow = [");
            for (unsigned a = 0; a < rule->allow_count; a++) {
                mt_text_append(out, "%s", a > 0 ? ", " : "");
                text_append_pattern(out, config, rule->allow[a]);
            }
            mt_text_append(out, "];");
        }
        if (rule->opaque)
            mt_text_append(out, " opaque = true;");
        mt_text_append(out, " }%s\n", r + 1 < config->inbound.rule_count ? "," : "");
    }
    mt_text_append(out, "    );\n};\n");
}

size_t mt_config_describe(const struct mt_config *config, char *text, size_t capacity)
{
    struct mt_text out = mt_text_on(text, capacity);
    if (config == NULL)
        return 0;
    mt_text_append(&out, "# meshtls configuration, from ");
    if (config->source[0] != '\0')
        text_append_quoted(&out, config->source, SIZE_MAX);
    else
        mt_text_append(&out, "built-in defaults");
    mt_text_append(&out, "\nagent_socket = ");
    text_append_quoted(&out, config->agent_socket, SIZE_MAX);
    mt_text_append(&out, ";\nagent_uid = %u;\n", config->agent_uid);
    describe_outbound(&out, config);
    describe_inbound(&out, config);
    mt_text_append(&out, "skip_ports = ");
    text_append_ports(&out, config->skip_ports, config->skip_port_count);
    mt_text_append(&out, ";\nlog_level = \"%s\";\n", mt_log_level_name(config->log_level));
    mt_text_append(&out, "trust_domain = ");
    text_append_quoted(&out, config->trust_domain, SIZE_MAX);
    mt_text_append(
        &out,
        ";\nhandshake_timeout_ms = %u;\ndetect_timeout_ms = %u;\nagent_timeout_ms = %u;\n"
        "agent_wait_ms = %u;\nresumption_s = %u;\n",
        config->handshake_timeout_ms, config->detect_timeout_ms, config->agent_timeout_ms,
        config->agent_wait_ms, config->resumption_s);
    return out.needed;
}
