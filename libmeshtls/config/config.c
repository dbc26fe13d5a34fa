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
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>

#include "../identity/spiffe.h"
#include "config.h"

#define TIMEOUT_MIN_MS 100
#define TIMEOUT_MAX_MS 600000
/* Values quoted in messages are cut here: a message is one readable line, not a dump. */
#define QUOTED_VALUE_MAX 80

/* A bounded, always NUL-terminated text being appended to (the caller's message buffer). */
struct text {
    char *data;
    size_t capacity;
    size_t length;
};

static void text_init(struct text *text, char *data, size_t capacity)
{
    text->data = data;
    text->capacity = data != NULL ? capacity : 0;
    text->length = 0;
    if (text->capacity > 0)
        text->data[0] = '\0';
}

static void text_append(struct text *text, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void text_append(struct text *text, const char *format, ...)
{
    if (text->capacity == 0 || text->length >= text->capacity - 1)
        return;
    size_t available = text->capacity - text->length;
    va_list arguments;
    va_start(arguments, format);
    int written = vsnprintf(text->data + text->length, available, format, arguments);
    va_end(arguments);
    if (written < 0) {
        text->data[text->length] = '\0';
        return;
    }
    text->length += (size_t)written < available ? (size_t)written : available - 1;
}

/*
 * Appends value as a libconfig string literal: quotes and backslashes escaped, control bytes as
 * \xNN, so the result is one line and reads back as the same bytes. At most limit input bytes
 * are shown; a cut value is followed by "...".
 */
static void text_append_quoted(struct text *text, const char *value, size_t limit)
{
    size_t length = strlen(value);
    size_t shown = length < limit ? length : limit;
    text_append(text, "\"");
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c == '"' || c == '\\')
            text_append(text, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            text_append(text, "\\x%02x", c);
        else
            text_append(text, "%c", c);
    }
    text_append(text, "\"%s", shown < length ? "..." : "");
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

static void text_append_choices(struct text *text, const struct choice *choices, size_t count)
{
    for (size_t i = 0; i < count; i++)
        text_append(text, "%s\"%s\"", i > 0 ? ", " : "", choices[i].name);
}

/*
 * Each value check below judges one value and, when it is wrong, appends to problem the words
 * that follow the quoted value ("is not one of ..."). Files and environment variables share
 * them, so a value means the same wherever it comes from.
 */
static bool check_choice(const char *value, const struct choice *choices, size_t count, int *chosen,
                         struct text *problem)
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(value, choices[i].name) == 0) {
            *chosen = choices[i].value;
            return true;
        }
    }
    text_append(problem, "is not one of ");
    text_append_choices(problem, choices, count);
    return false;
}

/* The level names belong to util/log.c; listing them from there keeps one spelling. */
static void text_append_log_levels(struct text *text)
{
    for (int level = MT_LOG_ERROR; level <= MT_LOG_DEBUG; level++)
        text_append(text, "%s\"%s\"", level > MT_LOG_ERROR ? ", " : "",
                    mt_log_level_name((enum mt_log_level)level));
}

static bool check_log_level(const char *value, enum mt_log_level *level, struct text *problem)
{
    if (mt_log_level_parse(value, level))
        return true;
    text_append(problem, "is not one of ");
    text_append_log_levels(problem);
    return false;
}

/*
 * A relative path would name a different socket in every working directory of every process the
 * library is loaded into, so only absolute paths are accepted.
 */
static bool check_socket_path(const char *value, struct text *problem)
{
    size_t length = strlen(value);
    if (value[0] != '/') {
        text_append(problem, "is not an absolute path");
        return false;
    }
    if (length >= MT_CONFIG_SOCKET_PATH_MAX) {
        text_append(problem, "is %zu bytes long; a Unix socket path is at most %d bytes", length,
                    MT_CONFIG_SOCKET_PATH_MAX - 1);
        return false;
    }
    return true;
}

static bool check_trust_domain(const char *value, struct text *problem)
{
    if (value[0] == '\0' || mt_spiffe_is_valid_trust_domain(value, strlen(value)))
        return true;
    text_append(problem,
                "is not a valid trust domain name (1 to %d characters of a-z, 0-9, "
                "'.', '-', '_'; \"\" for the agent's)",
                MT_SPIFFE_TRUST_DOMAIN_MAX);
    return false;
}

/* The file being read and the copy being filled; committed by mt_config_load_file on success. */
struct load_context {
    const char *path;
    struct mt_config config;
    struct text message;
};

/* Starts a "FILE:LINE: KEY: " message for setting; key is NULL for the top level. */
static void begin_setting_message(struct load_context *context, const config_setting_t *setting,
                                  const char *key)
{
    const char *file = config_setting_source_file(setting);
    text_init(&context->message, context->message.data, context->message.capacity);
    text_append(&context->message, "%s:%u: ", file != NULL ? file : context->path,
                (unsigned)config_setting_source_line(setting));
    if (key != NULL)
        text_append(&context->message, "%s: ", key);
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
    text_append(&context->message, "expected a string (%s), got %s", expected, type_name(setting));
    return mt_result_of(MT_ERR_CONFIG);
}

/* Reports "KEY: "VALUE" PROBLEM", the problem having been written by a check_* function. */
static mt_result fail_value(struct load_context *context, const config_setting_t *setting,
                            const char *key, const char *value, const char *problem)
{
    begin_setting_message(context, setting, key);
    text_append_quoted(&context->message, value, QUOTED_VALUE_MAX);
    text_append(&context->message, " %s", problem);
    return mt_result_of(MT_ERR_CONFIG);
}

static MT_RESULT read_choice(struct load_context *context, const config_setting_t *setting,
                             const char *key, const struct choice *choices, size_t count,
                             int *chosen)
{
    char expected[128];
    struct text expected_text;
    text_init(&expected_text, expected, sizeof(expected));
    text_append(&expected_text, "one of ");
    text_append_choices(&expected_text, choices, count);

    const char *value;
    MT_GUARD(read_string(context, setting, key, expected, &value));
    char problem[128];
    struct text problem_text;
    text_init(&problem_text, problem, sizeof(problem));
    if (!check_choice(value, choices, count, chosen, &problem_text))
        return fail_value(context, setting, key, value, problem);
    return MT_OK_RESULT;
}

static MT_RESULT read_timeout(struct load_context *context, const config_setting_t *setting,
                              const char *key, unsigned *timeout_ms)
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
        text_append(&context->message, "expected an integer (%d .. %d), got %s", TIMEOUT_MIN_MS,
                    TIMEOUT_MAX_MS, type_name(setting));
        return mt_result_of(MT_ERR_CONFIG);
    }
    if (value < TIMEOUT_MIN_MS || value > TIMEOUT_MAX_MS) {
        begin_setting_message(context, setting, key);
        text_append(&context->message, "%lld is out of range; valid values: %d .. %d", value,
                    TIMEOUT_MIN_MS, TIMEOUT_MAX_MS);
        return mt_result_of(MT_ERR_CONFIG);
    }
    *timeout_ms = (unsigned)value;
    return MT_OK_RESULT;
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
            text_append(&context->message, "unknown key ");
            text_append_quoted(&context->message, name != NULL ? name : "", QUOTED_VALUE_MAX);
            text_append(&context->message, "; valid keys: ");
            for (size_t r = 0; r < rule_count; r++)
                text_append(&context->message, "%s%s", r > 0 ? ", " : "", rules[r].name);
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
    text_append(&context->message, "expected a group (%s), got %s", example, type_name(setting));
    return mt_result_of(MT_ERR_CONFIG);
}

static MT_RESULT read_agent_socket(struct load_context *context, const config_setting_t *setting)
{
    static const char key[] = "agent_socket";
    const char *value;
    MT_GUARD(read_string(context, setting, key, "an absolute path", &value));
    char problem[128];
    struct text problem_text;
    text_init(&problem_text, problem, sizeof(problem));
    if (!check_socket_path(value, &problem_text))
        return fail_value(context, setting, key, value, problem);
    strcpy(context->config.agent_socket, value);
    return MT_OK_RESULT;
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

static const struct key_rule outbound_rules[] = {
    {"loopback", read_outbound_loopback},
    {"default", read_outbound_default},
};

static const struct key_rule inbound_rules[] = {
    {"loopback", read_inbound_loopback},
    {"default", read_inbound_default},
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
    struct text expected_text;
    text_init(&expected_text, expected, sizeof(expected));
    text_append(&expected_text, "one of ");
    text_append_log_levels(&expected_text);

    const char *value;
    MT_GUARD(read_string(context, setting, key, expected, &value));
    enum mt_log_level level;
    char problem[128];
    struct text problem_text;
    text_init(&problem_text, problem, sizeof(problem));
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
    struct text problem_text;
    text_init(&problem_text, problem, sizeof(problem));
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

static const struct key_rule top_level_rules[] = {
    {"agent_socket", read_agent_socket},
    {"outbound", read_outbound},
    {"inbound", read_inbound},
    {"log_level", read_log_level},
    {"trust_domain", read_trust_domain},
    {"handshake_timeout_ms", read_handshake_timeout},
    {"agent_timeout_ms", read_agent_timeout},
};

void mt_config_set_defaults(struct mt_config *config)
{
    if (config == NULL)
        return;
    memset(config, 0, sizeof(*config));
    strcpy(config->agent_socket, MT_CONFIG_DEFAULT_AGENT_SOCKET);
    config->log_level = MT_LOG_WARN;
    config->outbound.loopback = MT_OUTBOUND_PLAIN;
    config->outbound.other = MT_OUTBOUND_MTLS;
    config->inbound.loopback = MT_INBOUND_PLAIN;
    config->inbound.other = MT_INBOUND_STRICT;
    config->handshake_timeout_ms = 10000;
    config->agent_timeout_ms = 5000;
}

/* A "FILE:0: what: strerror" message for a file that cannot be used at all. */
static mt_result fail_file(struct load_context *context, const char *what, int error)
{
    char buffer[128];
    text_init(&context->message, context->message.data, context->message.capacity);
    text_append(&context->message, "%s:0: %s: %s", context->path, what,
                strerror_r(error, buffer, sizeof(buffer)));
    return mt_result_of(MT_ERR_CONFIG);
}

MT_RESULT mt_config_load_file(const char *path, struct mt_config *config, char *message,
                              size_t message_size)
{
    MT_ENSURE_REF(path);
    MT_ENSURE_REF(config);

    struct load_context context = {.path = path, .config = *config};
    text_init(&context.message, message, message_size);
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
        const char *reason = config_error_text(&parsed);
        text_append(&context.message, "%s:%d: syntax error", file != NULL ? file : path,
                    config_error_line(&parsed));
        /* libconfig's text is often just "syntax error" again; say it once. */
        if (reason != NULL && strcmp(reason, "syntax error") != 0)
            text_append(&context.message, ": %s", reason);
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
static mt_result fail_environment(struct text *message, const char *variable, const char *value,
                                  const char *problem)
{
    text_init(message, message->data, message->capacity);
    text_append(message, "%s: ", variable);
    text_append_quoted(message, value, QUOTED_VALUE_MAX);
    text_append(message, " %s", problem);
    return mt_result_of(MT_ERR_CONFIG);
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

MT_RESULT mt_config_apply_environment(struct mt_config *config, char *message, size_t message_size)
{
    MT_ENSURE_REF(config);
    struct text text;
    text_init(&text, message, message_size);
    struct mt_config next = *config;
    char problem[160];
    struct text problem_text;

    const char *socket_path = get_environment("MESHTLS_AGENT_SOCKET");
    if (socket_path != NULL) {
        text_init(&problem_text, problem, sizeof(problem));
        if (!check_socket_path(socket_path, &problem_text))
            return fail_environment(&text, "MESHTLS_AGENT_SOCKET", socket_path, problem);
        strcpy(next.agent_socket, socket_path);
    }

    const char *level_name = get_environment("MESHTLS_LOG");
    if (level_name != NULL) {
        enum mt_log_level level;
        text_init(&problem_text, problem, sizeof(problem));
        if (!check_log_level(level_name, &level, &problem_text))
            return fail_environment(&text, "MESHTLS_LOG", level_name, problem);
        next.log_level = level;
    }

    *config = next;
    return MT_OK_RESULT;
}

MT_RESULT mt_config_load(struct mt_config *config, char *message, size_t message_size)
{
    MT_ENSURE_REF(config);
    struct mt_config next;
    mt_config_set_defaults(&next);

    const char *path = get_environment("MESHTLS_CONFIG");
    if (path == NULL && access(MT_CONFIG_DEFAULT_PATH, F_OK) == 0)
        path = MT_CONFIG_DEFAULT_PATH;

    mt_result result = MT_OK_RESULT;
    if (path != NULL) {
        result = mt_config_load_file(path, &next, message, message_size);
        if (!mt_result_is_ok(result))
            goto out;
    }
    result = mt_config_apply_environment(&next, message, message_size);
out:
    if (mt_result_is_ok(result))
        *config = next;
    else
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

void mt_config_describe(const struct mt_config *config, char *text, size_t capacity)
{
    struct text out;
    text_init(&out, text, capacity);
    if (config == NULL)
        return;
    text_append(&out, "# meshtls configuration, from ");
    if (config->source[0] != '\0')
        text_append_quoted(&out, config->source, SIZE_MAX);
    else
        text_append(&out, "built-in defaults");
    text_append(&out, "\nagent_socket = ");
    text_append_quoted(&out, config->agent_socket, SIZE_MAX);
    text_append(&out, ";\noutbound = { loopback = \"%s\"; default = \"%s\"; };\n",
                mt_outbound_mode_name(config->outbound.loopback),
                mt_outbound_mode_name(config->outbound.other));
    text_append(&out, "inbound = { loopback = \"%s\"; default = \"%s\"; };\n",
                mt_inbound_mode_name(config->inbound.loopback),
                mt_inbound_mode_name(config->inbound.other));
    text_append(&out, "log_level = \"%s\";\n", mt_log_level_name(config->log_level));
    text_append(&out, "trust_domain = ");
    text_append_quoted(&out, config->trust_domain, SIZE_MAX);
    text_append(&out, ";\nhandshake_timeout_ms = %u;\nagent_timeout_ms = %u;\n",
                config->handshake_timeout_ms, config->agent_timeout_ms);
}
