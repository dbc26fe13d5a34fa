/*
 * What a configuration value means wherever it comes from: the words of the modes, the log
 * levels, an agent socket path, a trust domain name.
 *
 * Owns the judgement of each value and the words that say what is wrong with it ("is not one of
 * "mtls", "plain""), shared by the file (the readers here) and the environment (environment.c),
 * so that a value means the same in both. It must never accept a value it has not checked, and
 * never name a valid value that is not accepted.
 */
#include <string.h>

#include "../util/spiffe.h"
#include "internal.h"

struct choice {
    const char *name;
    int value;
};

static const struct choice outbound_choices[] = {
    {"mtls", MT_OUTBOUND_MTLS},
    {"plain", MT_OUTBOUND_PLAIN},
    {"auto", MT_OUTBOUND_AUTO},
};

static const struct choice inbound_choices[] = {
    {"strict", MT_INBOUND_STRICT},
    {"permissive", MT_INBOUND_PERMISSIVE},
    {"plain", MT_INBOUND_PLAIN},
};

static const struct choice post_quantum_choices[] = {
    {"prefer", MT_POST_QUANTUM_PREFER},
    {"require", MT_POST_QUANTUM_REQUIRE},
    {"off", MT_POST_QUANTUM_OFF},
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

static void append_choices(struct mt_text *text, const struct choice *choices, size_t count)
{
    for (size_t i = 0; i < count; i++)
        mt_text_append(text, "%s\"%s\"", i > 0 ? ", " : "", choices[i].name);
}

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
    append_choices(problem, choices, count);
    return false;
}

static MT_RESULT read_choice(const struct mt_config_reader *reader, const config_setting_t *setting,
                             const char *key, const struct choice *choices, size_t count,
                             int *chosen)
{
    char expected[128];
    struct mt_text expected_text = mt_text_on(expected, sizeof(expected));
    mt_text_append(&expected_text, "one of ");
    append_choices(&expected_text, choices, count);

    const char *value;
    MT_GUARD(mt_config_read_string(reader, setting, key, expected, &value));
    char problem[128];
    struct mt_text problem_text = mt_text_on(problem, sizeof(problem));
    if (!check_choice(value, choices, count, chosen, &problem_text))
        return mt_config_reader_fail_value(reader, setting, key, value, "%s", problem);
    return MT_OK_RESULT;
}

MT_RESULT mt_config_read_outbound_mode(const struct mt_config_reader *reader,
                                       const config_setting_t *setting, const char *key,
                                       enum mt_outbound_mode *mode)
{
    int chosen;
    MT_GUARD(
        read_choice(reader, setting, key, outbound_choices, COUNT_OF(outbound_choices), &chosen));
    *mode = (enum mt_outbound_mode)chosen;
    return MT_OK_RESULT;
}

MT_RESULT mt_config_read_inbound_mode(const struct mt_config_reader *reader,
                                      const config_setting_t *setting, const char *key,
                                      enum mt_inbound_mode *mode)
{
    int chosen;
    MT_GUARD(
        read_choice(reader, setting, key, inbound_choices, COUNT_OF(inbound_choices), &chosen));
    *mode = (enum mt_inbound_mode)chosen;
    return MT_OK_RESULT;
}

MT_RESULT mt_config_read_post_quantum(const struct mt_config_reader *reader,
                                      const config_setting_t *setting, const char *key,
                                      enum mt_post_quantum *post_quantum)
{
    int chosen;
    MT_GUARD(read_choice(reader, setting, key, post_quantum_choices, COUNT_OF(post_quantum_choices),
                         &chosen));
    *post_quantum = (enum mt_post_quantum)chosen;
    return MT_OK_RESULT;
}

const char *mt_post_quantum_name(enum mt_post_quantum post_quantum)
{
    return choice_name(post_quantum_choices, COUNT_OF(post_quantum_choices), (int)post_quantum);
}

const char *mt_outbound_mode_name(enum mt_outbound_mode mode)
{
    return choice_name(outbound_choices, COUNT_OF(outbound_choices), (int)mode);
}

const char *mt_inbound_mode_name(enum mt_inbound_mode mode)
{
    return choice_name(inbound_choices, COUNT_OF(inbound_choices), (int)mode);
}

/* The level names belong to util/log.c; listing them from there keeps one spelling. */
static void append_log_levels(struct mt_text *text)
{
    for (int level = MT_LOG_ERROR; level <= MT_LOG_DEBUG; level++)
        mt_text_append(text, "%s\"%s\"", level > MT_LOG_ERROR ? ", " : "",
                       mt_log_level_name((enum mt_log_level)level));
}

bool mt_config_check_log_level(const char *value, enum mt_log_level *level, struct mt_text *problem)
{
    if (mt_log_level_parse(value, level))
        return true;
    mt_text_append(problem, "is not one of ");
    append_log_levels(problem);
    return false;
}

MT_RESULT mt_config_read_log_level(const struct mt_config_reader *reader,
                                   const config_setting_t *setting, const char *key,
                                   enum mt_log_level *level)
{
    char expected[128];
    struct mt_text expected_text = mt_text_on(expected, sizeof(expected));
    mt_text_append(&expected_text, "one of ");
    append_log_levels(&expected_text);

    const char *value;
    MT_GUARD(mt_config_read_string(reader, setting, key, expected, &value));
    char problem[128];
    struct mt_text problem_text = mt_text_on(problem, sizeof(problem));
    if (!mt_config_check_log_level(value, level, &problem_text))
        return mt_config_reader_fail_value(reader, setting, key, value, "%s", problem);
    return MT_OK_RESULT;
}

/*
 * A relative path would name a different socket in every working directory of every process the
 * library is loaded into, so only absolute paths are accepted.
 */
bool mt_config_check_socket_path(const char *value, struct mt_text *problem)
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

MT_RESULT mt_config_read_socket_path(const struct mt_config_reader *reader,
                                     const config_setting_t *setting, const char *key,
                                     char *agent_socket)
{
    const char *value;
    MT_GUARD(mt_config_read_string(reader, setting, key, "an absolute path", &value));
    char problem[128];
    struct mt_text problem_text = mt_text_on(problem, sizeof(problem));
    if (!mt_config_check_socket_path(value, &problem_text))
        return mt_config_reader_fail_value(reader, setting, key, value, "%s", problem);
    strcpy(agent_socket, value);
    return MT_OK_RESULT;
}

MT_RESULT mt_config_read_trust_domain(const struct mt_config_reader *reader,
                                      const config_setting_t *setting, const char *key,
                                      char *trust_domain)
{
    const char *value;
    MT_GUARD(mt_config_read_string(reader, setting, key,
                                   "\"\" or a trust domain name such as \"example.org\"", &value));
    if (value[0] != '\0' && !mt_spiffe_is_valid_trust_domain(value, strlen(value)))
        return mt_config_reader_fail_value(
            reader, setting, key, value,
            "is not a valid trust domain name (1 to %d characters of a-z, 0-9, '.', '-', '_'; "
            "\"\" for the agent's)",
            MT_SPIFFE_TRUST_DOMAIN_MAX);
    strcpy(trust_domain, value);
    return MT_OK_RESULT;
}
