/*
 * The libconfig reader (see reader.h): opening and parsing a file, typed getters, the unknown key
 * check, and the words of every message about a setting.
 *
 * Owns how a configuration problem is said, not what any key means: the library's keys live in
 * the rest of config/, the agent's in agent/agent_config.c. It runs inside arbitrary processes
 * through LD_PRELOAD, so it must never print, exit or keep state: every complaint goes to the
 * caller's reason, and nothing is kept once the caller destroys what was parsed.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "reader.h"

const char *mt_config_type_name(const config_setting_t *setting)
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

bool mt_config_is_sequence(const config_setting_t *setting)
{
    return config_setting_is_array(setting) || config_setting_is_list(setting);
}

void mt_config_append_quoted(struct mt_text *text, const char *value, size_t limit)
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

/* ---- where a problem is ------------------------------------------------------------------- */

static void begin(const struct mt_config_reader *reader, const char *file, unsigned line,
                  const char *key)
{
    mt_text_clear(reader->reason);
    if (file != NULL)
        mt_text_append(reader->reason, "%s:%u: ", file, line);
    if (key != NULL)
        mt_text_append(reader->reason, "%s: ", key);
}

void mt_config_reader_begin(const struct mt_config_reader *reader, const config_setting_t *setting,
                            const char *key)
{
    if (setting == NULL || reader->path == NULL) {
        begin(reader, NULL, 0, key);
        return;
    }
    const char *file = config_setting_source_file(setting);
    begin(reader, file != NULL ? file : reader->path, (unsigned)config_setting_source_line(setting),
          key);
}

void mt_config_reader_begin_at_line(const struct mt_config_reader *reader, unsigned line,
                                    const char *key)
{
    begin(reader, reader->path, line, key);
}

mt_result mt_config_reader_fail(const struct mt_config_reader *reader,
                                const config_setting_t *setting, const char *key,
                                const char *format, ...)
{
    mt_config_reader_begin(reader, setting, key);
    va_list arguments;
    va_start(arguments, format);
    mt_text_append_va(reader->reason, format, arguments);
    va_end(arguments);
    return mt_result_of(MT_ERR_CONFIG);
}

mt_result mt_config_reader_fail_value(const struct mt_config_reader *reader,
                                      const config_setting_t *setting, const char *key,
                                      const char *value, const char *format, ...)
{
    mt_config_reader_begin(reader, setting, key);
    mt_config_append_quoted(reader->reason, value, MT_CONFIG_QUOTED_VALUE_MAX);
    mt_text_append(reader->reason, " ");
    va_list arguments;
    va_start(arguments, format);
    mt_text_append_va(reader->reason, format, arguments);
    va_end(arguments);
    return mt_result_of(MT_ERR_CONFIG);
}

mt_result mt_config_reader_fail_type(const struct mt_config_reader *reader,
                                     const config_setting_t *setting, const char *key,
                                     const char *expected_format, ...)
{
    mt_config_reader_begin(reader, setting, key);
    mt_text_append(reader->reason, "expected ");
    va_list arguments;
    va_start(arguments, expected_format);
    mt_text_append_va(reader->reason, expected_format, arguments);
    va_end(arguments);
    mt_text_append(reader->reason, ", got %s", mt_config_type_name(setting));
    return mt_result_of(MT_ERR_CONFIG);
}

mt_result mt_config_reader_fail_missing(const struct mt_config_reader *reader,
                                        const config_setting_t *group, const char *key,
                                        const char *name, const char *expected)
{
    return mt_config_reader_fail(reader, group, key, "missing key %s (%s)", name, expected);
}

/* ---- the file ----------------------------------------------------------------------------- */

/* The words of errno value error, thread-safely: glibc's strerror_r returns them (GNU), musl's
 * writes them into buffer (POSIX). */
static const char *error_words(int error, char *buffer, size_t size)
{
#ifdef __GLIBC__
    return strerror_r(error, buffer, size);
#else
    if (strerror_r(error, buffer, size) != 0)
        snprintf(buffer, size, "error %d", error);
    return buffer;
#endif
}

/* "FILE:0: WHAT: strerror", for a file that cannot be used at all. */
static mt_result fail_file(const struct mt_config_reader *reader, const char *what, int error)
{
    char buffer[128];
    return mt_result_explain(reader->reason, MT_ERR_CONFIG, "%s:0: %s: %s", reader->path, what,
                             error_words(error, buffer, sizeof(buffer)));
}

MT_RESULT mt_config_read_file(const struct mt_config_reader *reader, config_t *parsed)
{
    config_init(parsed);
    MT_ENSURE_REF(reader->path);
    if (strlen(reader->path) >= PATH_MAX)
        return fail_file(reader, "cannot open", ENAMETOOLONG);

    mt_result result = MT_OK_RESULT;
    /* Close-on-exec: the host process may exec at any moment on another thread. */
    FILE *stream = fopen(reader->path, "re");
    if (stream == NULL)
        return fail_file(reader, "cannot open", errno);
    /* libconfig would read a directory as an empty, valid file: all defaults, silently. */
    struct stat status;
    if (fstat(fileno(stream), &status) != 0) {
        result = fail_file(reader, "cannot read", errno);
        goto out;
    }
    if (S_ISDIR(status.st_mode)) {
        result = fail_file(reader, "cannot read", EISDIR);
        goto out;
    }
    if (config_read(parsed, stream) != CONFIG_TRUE) {
        const char *file = config_error_file(parsed);
        const char *libconfig_text = config_error_text(parsed);
        mt_text_set(reader->reason, "%s:%d: syntax error", file != NULL ? file : reader->path,
                    config_error_line(parsed));
        /* libconfig's text is often just "syntax error" again; say it once. */
        if (libconfig_text != NULL && strcmp(libconfig_text, "syntax error") != 0)
            mt_text_append(reader->reason, ": %s", libconfig_text);
        result = mt_result_of(MT_ERR_CONFIG);
        goto out;
    }
    /* A read error mid-file looks like end of file to libconfig; do not accept half a file. */
    if (ferror(stream))
        result = fail_file(reader, "cannot read", errno != 0 ? errno : EIO);
out:
    fclose(stream);
    return result;
}

/* ---- typed values ------------------------------------------------------------------------- */

MT_RESULT mt_config_read_string(const struct mt_config_reader *reader,
                                const config_setting_t *setting, const char *key,
                                const char *expected, const char **value)
{
    if (config_setting_type(setting) == CONFIG_TYPE_STRING) {
        *value = config_setting_get_string(setting);
        if (*value != NULL)
            return MT_OK_RESULT;
    }
    return mt_config_reader_fail_type(reader, setting, key, "a string (%s)", expected);
}

MT_RESULT mt_config_read_integer(const struct mt_config_reader *reader,
                                 const config_setting_t *setting, const char *key,
                                 long long minimum, long long maximum, const char *unit,
                                 long long *value)
{
    const char *space = unit != NULL ? " " : "";
    if (unit == NULL)
        unit = "";
    /*
     * libconfig 1.5 silently wraps a decimal literal beyond 32 bits that lacks the L suffix
     * (4294967396 reads as 100); such a value cannot be told apart from the one it wraps to.
     */
    long long read;
    switch (config_setting_type(setting)) {
    case CONFIG_TYPE_INT:
        read = config_setting_get_int(setting);
        break;
    case CONFIG_TYPE_INT64:
        read = config_setting_get_int64(setting);
        break;
    default:
        return mt_config_reader_fail_type(reader, setting, key, "an integer (%lld .. %lld%s%s)",
                                          minimum, maximum, space, unit);
    }
    if (read < minimum || read > maximum)
        return mt_config_reader_fail(reader, setting, key,
                                     "%lld is out of range; valid values: %lld .. %lld%s%s", read,
                                     minimum, maximum, space, unit);
    *value = read;
    return MT_OK_RESULT;
}

MT_RESULT mt_config_read_bool(const struct mt_config_reader *reader,
                              const config_setting_t *setting, const char *key, bool *value)
{
    if (config_setting_type(setting) != CONFIG_TYPE_BOOL)
        return mt_config_reader_fail_type(reader, setting, key, "a boolean (true or false)");
    *value = config_setting_get_bool(setting) != 0;
    return MT_OK_RESULT;
}

MT_RESULT mt_config_read_group(const struct mt_config_reader *reader, const config_setting_t *group,
                               const char *group_key, const struct mt_config_key *keys,
                               size_t key_count, void *context)
{
    int count = config_setting_length(group);
    for (int i = 0; i < count; i++) {
        const config_setting_t *child = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(child);
        const struct mt_config_key *key = NULL;
        for (size_t k = 0; k < key_count && name != NULL && key == NULL; k++) {
            if (strcmp(name, keys[k].name) == 0)
                key = &keys[k];
        }
        if (key == NULL) {
            mt_config_reader_begin(reader, child, group_key);
            mt_text_append(reader->reason, "unknown key ");
            mt_config_append_quoted(reader->reason, name != NULL ? name : "",
                                    MT_CONFIG_QUOTED_VALUE_MAX);
            mt_text_append(reader->reason, "; valid keys: ");
            for (size_t k = 0; k < key_count; k++)
                mt_text_append(reader->reason, "%s%s", k > 0 ? ", " : "", keys[k].name);
            return mt_result_of(MT_ERR_CONFIG);
        }
        MT_GUARD(key->read(context, child));
    }
    return MT_OK_RESULT;
}
