/*
 * The one reader of libconfig files: the library's configuration (config.h) and the agent's
 * (agent/agent_config.h) are both read through it, so a value of the wrong type, out of range
 * or under an unknown key is reported in the same words wherever it is.
 *
 * Every message is one line that starts with where the problem is and names the valid values:
 *
 *     FILE:LINE: KEY: expected an integer (5 .. 2592000 seconds), got a string
 *     FILE:LINE: KEY: 4 is out of range; valid values: 5 .. 2592000 seconds
 *     FILE:LINE: GROUP: unknown key "lifetme"; valid keys: trust_domain, lifetime, rules
 *     FILE:LINE: KEY: "Example.org" is not a valid trust domain (...)
 *     FILE:LINE: syntax error: duplicate setting name
 *     FILE:0: cannot open: No such file or directory
 *
 * A value from a command-line flag or an environment variable has no file and no line: its
 * message starts "KEY: " (the flag or the variable), and says the rest in the same words.
 * A failure replaces the text of the caller's reason (NULL allowed) and returns MT_ERR_CONFIG.
 */
#ifndef MT_CONFIG_READER_H
#define MT_CONFIG_READER_H

#include <stdbool.h>
#include <stddef.h>

#include <libconfig.h>

#include "../util/text.h"

/* Values quoted in messages are cut here: a message is one readable line, not a dump. */
#define MT_CONFIG_QUOTED_VALUE_MAX 80

struct mt_config_reader {
    const char *path;       /* the file being read; NULL for a flag or an environment variable */
    struct mt_text *reason; /* the caller's; NULL allowed */
};

/*
 * Reads reader->path into parsed, which is initialised here in every case and which the caller
 * destroys (config_destroy) in every case. Refuses what libconfig would take for an empty,
 * valid file (a directory) and a file it could read only in part (a read error mid-file).
 */
MT_RESULT mt_config_read_file(const struct mt_config_reader *reader, config_t *parsed);

/* "a group", "an integer", "a string", ...: what a setting holds, for messages. */
const char *mt_config_type_name(const config_setting_t *setting);

/* An array or a list: what a key taking several values accepts. */
bool mt_config_is_sequence(const config_setting_t *setting);

/*
 * Appends value as a libconfig string literal: quotes and backslashes escaped, control bytes as
 * \xNN, so the result is one line and reads back as the same bytes. At most limit input bytes
 * are shown; a cut value is followed by "...".
 */
void mt_config_append_quoted(struct mt_text *text, const char *value, size_t limit);

/*
 * Starts the reason anew with "FILE:LINE: KEY: " for setting (its own file when it came from
 * an @include), "FILE:LINE: KEY: " for a line of reader's file (a value checked again after
 * loading), or "KEY: " when setting is NULL or reader has no file. key NULL leaves out "KEY: ".
 * For messages composed in several steps; the functions below do it in one.
 */
void mt_config_reader_begin(const struct mt_config_reader *reader, const config_setting_t *setting,
                            const char *key);
void mt_config_reader_begin_at_line(const struct mt_config_reader *reader, unsigned line,
                                    const char *key);

/* "FILE:LINE: KEY: PROBLEM". */
__attribute__((format(printf, 4, 5))) mt_result
mt_config_reader_fail(const struct mt_config_reader *reader, const config_setting_t *setting,
                      const char *key, const char *format, ...);

/* "FILE:LINE: KEY: "VALUE" PROBLEM", the value quoted and cut (mt_config_append_quoted). */
__attribute__((format(printf, 5, 6))) mt_result
mt_config_reader_fail_value(const struct mt_config_reader *reader, const config_setting_t *setting,
                            const char *key, const char *value, const char *format, ...);

/* "FILE:LINE: KEY: expected EXPECTED, got TYPE", e.g. expected "a group ({ port = 8080; })". */
__attribute__((format(printf, 4, 5))) mt_result
mt_config_reader_fail_type(const struct mt_config_reader *reader, const config_setting_t *setting,
                           const char *key, const char *expected_format, ...);

/* "FILE:LINE: KEY: missing key NAME (EXPECTED)", at the group that lacks it. */
mt_result mt_config_reader_fail_missing(const struct mt_config_reader *reader,
                                        const config_setting_t *group, const char *key,
                                        const char *name, const char *expected);

/* The string value of setting; else "expected a string (EXPECTED), got TYPE". */
MT_RESULT mt_config_read_string(const struct mt_config_reader *reader,
                                const config_setting_t *setting, const char *key,
                                const char *expected, const char **value);

/*
 * An integer in minimum .. maximum; else "expected an integer (MIN .. MAX UNIT), got TYPE" or
 * "N is out of range; valid values: MIN .. MAX UNIT". unit (NULL for none) names what the
 * number counts: "seconds".
 */
MT_RESULT mt_config_read_integer(const struct mt_config_reader *reader,
                                 const config_setting_t *setting, const char *key,
                                 long long minimum, long long maximum, const char *unit,
                                 long long *value);

/* true or false; else "expected a boolean (true or false), got TYPE". */
MT_RESULT mt_config_read_bool(const struct mt_config_reader *reader,
                              const config_setting_t *setting, const char *key, bool *value);

/* How one key of a group is read: context is what mt_config_read_group was given. */
struct mt_config_key {
    const char *name;
    mt_result (*read)(void *context, const config_setting_t *setting);
};

/*
 * Reads every child of group, in the file's order, through the key of the same name; a child no
 * key names is "GROUP: unknown key "NAME"; valid keys: A, B, C" (group_key NULL at the top
 * level), because a misspelt key silently ignored is a policy nobody wrote.
 */
MT_RESULT mt_config_read_group(const struct mt_config_reader *reader, const config_setting_t *group,
                               const char *group_key, const struct mt_config_key *keys,
                               size_t key_count, void *context);

#endif
