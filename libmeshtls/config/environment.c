/*
 * The environment's part in the configuration: MESHTLS_CONFIG names the file; MESHTLS_AGENT_SOCKET,
 * MESHTLS_AGENT_UID and MESHTLS_LOG override agent_socket, agent_uid and log_level.
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

/* Every variable is judged before any is applied, so a bad one changes nothing. */
MT_RESULT mt_config_apply_environment(struct mt_config *config, struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    /* No file: a message names the variable alone ("MESHTLS_LOG: "trace" is not one of ..."). */
    const struct mt_config_reader variables = {.path = NULL, .reason = reason};
    char problem[160];
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

    if (socket_path != NULL)
        strcpy(config->agent_socket, socket_path);
    config->agent_uid = uid;
    config->log_level = level;
    return MT_OK_RESULT;
}
