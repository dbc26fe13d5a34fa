/*
 * Logging to stderr, one line per event, prefixed "meshtls[pid]:".
 *
 * The level is set once at initialisation (config log_level, MESHTLS_LOG overrides). Lines are
 * written with a single write(2) through the real libc function so that a log line from an
 * intercepted process never re-enters the hooks and never interleaves with another line.
 * Logging must never log key material; callers pass identities, addresses and reasons only.
 */
#ifndef MT_UTIL_LOG_H
#define MT_UTIL_LOG_H

#include <stdbool.h>
#include <sys/types.h>

enum mt_log_level {
    MT_LOG_ERROR = 0,
    MT_LOG_WARN = 1,
    MT_LOG_INFO = 2,
    MT_LOG_DEBUG = 3,
};

/* Sets the level below which lines are dropped. */
void mt_log_set_level(enum mt_log_level level);
enum mt_log_level mt_log_get_level(void);

/* Parses "error" | "warn" | "info" | "debug"; false for anything else. */
bool mt_log_level_parse(const char *text, enum mt_log_level *level);
const char *mt_log_level_name(enum mt_log_level level);

/* Sets the program tag printed after "meshtls" (e.g. "meshtls-agent"); the default is "meshtls". */
void mt_log_set_tag(const char *tag);

/*
 * Installs the write function used for output (the preload passes its real libc write so that
 * logging never goes through its own hooks). NULL restores write(2).
 */
void mt_log_set_writer(ssize_t (*writer)(int fd, const void *buffer, size_t length));

bool mt_log_is_enabled(enum mt_log_level level);

void mt_log(enum mt_log_level level, const char *format, ...) __attribute__((format(printf, 2, 3)));

#define mt_log_error(...) mt_log(MT_LOG_ERROR, __VA_ARGS__)
#define mt_log_warn(...) mt_log(MT_LOG_WARN, __VA_ARGS__)
#define mt_log_info(...) mt_log(MT_LOG_INFO, __VA_ARGS__)
#define mt_log_debug(...) mt_log(MT_LOG_DEBUG, __VA_ARGS__)

#endif
