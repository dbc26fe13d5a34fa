/*
 * The environment's part in the configuration: MESHTLS_CONFIG names the file; MESHTLS_AGENT_SOCKET,
 * MESHTLS_AGENT_UID and MESHTLS_LOG override agent_socket, agent_uid and log_level;
 * MESHTLS_PROBE_SOURCES and MESHTLS_PROBE_PORTS (comma-separated lists, which Kubernetes pods get
 * from the injector) replace inbound.probe_sources and inbound.probe_ports.
 *
 * Owns which variables count and how they are read. It must never let a set-user-ID program's
 * caller steer the library through them (secure_getenv), never apply one variable when another is
 * wrong, and never copy the config: this may run on a small application thread's stack.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/*
 * secure_getenv: in a set-user-ID program the environment belongs to the caller, who must not be
 * able to point the library at another agent. An empty variable counts as unset.
 */
const char *mt_config_environment(const char *name)
{
    const char *value = secure_getenv(name);
    return value != NULL && value[0] != '\0' ? value : NULL;
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
 * The next entry of a comma-separated list into entry; *cursor moves past it, to NULL after the
 * last. False, with the problem said, for an empty entry or one too long to be valid.
 */
static bool take_entry(const char **cursor, char *entry, size_t capacity, struct mt_text *problem)
{
    const char *comma = strchr(*cursor, ',');
    size_t length = comma != NULL ? (size_t)(comma - *cursor) : strlen(*cursor);
    if (length == 0) {
        mt_text_append(problem, "has an empty entry (entries are separated by one comma, no "
                                "spaces)");
        return false;
    }
    if (length >= capacity) {
        mt_text_append(problem, "has an entry longer than any valid one (%zu bytes)", length);
        return false;
    }
    memcpy(entry, *cursor, length);
    entry[length] = '\0';
    *cursor = comma != NULL ? comma + 1 : NULL;
    return true;
}

/* "10.0.3.7,fd00::/64": addresses and CIDRs, at most MT_CONFIG_PROBE_SOURCES_MAX. */
static bool parse_probe_sources(const char *value, struct mt_cidr *sources, unsigned *count,
                                struct mt_text *problem)
{
    unsigned taken = 0;
    for (const char *cursor = value; cursor != NULL; taken++) {
        char entry[64];
        if (!take_entry(&cursor, entry, sizeof(entry), problem))
            return false;
        if (taken == MT_CONFIG_PROBE_SOURCES_MAX) {
            mt_text_append(problem, "has too many entries; at most %u addresses or CIDRs",
                           MT_CONFIG_PROBE_SOURCES_MAX);
            return false;
        }
        mt_text_append(problem, "has an entry ");
        mt_config_append_quoted(problem, entry, MT_CONFIG_QUOTED_VALUE_MAX);
        mt_text_append(problem, " that ");
        if (!mt_config_check_cidr(entry, &sources[taken], problem))
            return false;
        mt_text_clear(problem);
    }
    *count = taken;
    return true;
}

/* "8080,9090" (ranges "8000-8999" too), at most MT_CONFIG_PROBE_PORTS_MAX. */
static bool parse_probe_ports(const char *value, struct mt_port_range *ports, unsigned *count,
                              struct mt_text *problem)
{
    unsigned taken = 0;
    for (const char *cursor = value; cursor != NULL; taken++) {
        char entry[16];
        if (!take_entry(&cursor, entry, sizeof(entry), problem))
            return false;
        if (taken == MT_CONFIG_PROBE_PORTS_MAX) {
            mt_text_append(problem, "has too many entries; at most %u ports or ranges",
                           MT_CONFIG_PROBE_PORTS_MAX);
            return false;
        }
        mt_text_append(problem, "has an entry ");
        mt_config_append_quoted(problem, entry, MT_CONFIG_QUOTED_VALUE_MAX);
        mt_text_append(problem, " that ");
        if (!mt_config_check_port_range(entry, &ports[taken], problem))
            return false;
        mt_text_clear(problem);
    }
    *count = taken;
    return true;
}

/* Every variable is judged before any is applied, so a bad one changes nothing. */
MT_RESULT mt_config_apply_environment(struct mt_config *config, struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    /* No file: a message names the variable alone ("MESHTLS_LOG: "trace" is not one of ..."). */
    const struct mt_config_reader variables = {.path = NULL, .reason = reason};
    char problem[320];
    struct mt_text problem_text;

    const char *socket_path = mt_config_environment("MESHTLS_AGENT_SOCKET");
    if (socket_path != NULL) {
        problem_text = mt_text_on(problem, sizeof(problem));
        if (!mt_config_check_socket_path(socket_path, &problem_text))
            return mt_config_reader_fail_value(&variables, NULL, "MESHTLS_AGENT_SOCKET",
                                               socket_path, "%s", problem);
    }

    const char *uid_text = mt_config_environment("MESHTLS_AGENT_UID");
    unsigned uid = config->agent_uid;
    if (uid_text != NULL && !parse_uid(uid_text, &uid))
        return mt_config_reader_fail_value(
            &variables, NULL, "MESHTLS_AGENT_UID", uid_text,
            "is not a uid (a decimal number 0 .. 2147483647, e.g. 0)");

    const char *level_name = mt_config_environment("MESHTLS_LOG");
    enum mt_log_level level = config->log_level;
    if (level_name != NULL) {
        problem_text = mt_text_on(problem, sizeof(problem));
        if (!mt_config_check_log_level(level_name, &level, &problem_text))
            return mt_config_reader_fail_value(&variables, NULL, "MESHTLS_LOG", level_name, "%s",
                                               problem);
    }

    const char *sources_text = mt_config_environment("MESHTLS_PROBE_SOURCES");
    struct mt_cidr sources[MT_CONFIG_PROBE_SOURCES_MAX];
    unsigned source_count = 0;
    if (sources_text != NULL) {
        problem_text = mt_text_on(problem, sizeof(problem));
        if (!parse_probe_sources(sources_text, sources, &source_count, &problem_text))
            return mt_config_reader_fail_value(&variables, NULL, "MESHTLS_PROBE_SOURCES",
                                               sources_text, "%s", problem);
    }

    const char *ports_text = mt_config_environment("MESHTLS_PROBE_PORTS");
    struct mt_port_range ports[MT_CONFIG_PROBE_PORTS_MAX];
    unsigned port_count = 0;
    if (ports_text != NULL) {
        problem_text = mt_text_on(problem, sizeof(problem));
        if (!parse_probe_ports(ports_text, ports, &port_count, &problem_text))
            return mt_config_reader_fail_value(&variables, NULL, "MESHTLS_PROBE_PORTS", ports_text,
                                               "%s", problem);
    }

    if (socket_path != NULL)
        strcpy(config->agent_socket, socket_path);
    if (sources_text != NULL) {
        memcpy(config->inbound.probe_sources, sources, source_count * sizeof(sources[0]));
        config->inbound.probe_source_count = source_count;
    }
    if (ports_text != NULL) {
        memcpy(config->inbound.probe_ports, ports, port_count * sizeof(ports[0]));
        config->inbound.probe_port_count = port_count;
    }
    config->agent_uid = uid;
    config->log_level = level;
    return MT_OK_RESULT;
}
