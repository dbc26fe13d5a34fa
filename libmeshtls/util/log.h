/*
 * Logging to stderr, one line per event, prefixed "meshtls[pid]:".
 *
 * The level is set once at initialisation (config log_level, MESHTLS_LOG overrides). Lines are
 * written with a single write(2), a raw system call (sys.h), so that a log line from an
 * intercepted process never re-enters the hooks and never interleaves with another line.
 * Logging must never log key material; callers pass identities, addresses and reasons only.
 */
#ifndef MT_UTIL_LOG_H
#define MT_UTIL_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "sys.h"

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

/* Installs the write function used for output (tests capture lines so). NULL restores the raw
 * write(2) of sys.h, which never goes through the preload's hooks. */
void mt_log_set_writer(ssize_t (*writer)(int fd, const void *buffer, size_t length));

/*
 * True, and lines formatted for the journal ("<priority>level: message", no tag or pid: the
 * journal adds them), when stderr is the journal stream that JOURNAL_STREAM names; false, and
 * the "tag[pid]: level: message" lines, otherwise. Called once at start-up, after the tag is set.
 */
bool mt_log_detect_journal(void);

bool mt_log_is_enabled(enum mt_log_level level);

void mt_log(enum mt_log_level level, const char *format, ...) __attribute__((format(printf, 2, 3)));

#define mt_log_error(...) mt_log(MT_LOG_ERROR, __VA_ARGS__)
#define mt_log_warn(...) mt_log(MT_LOG_WARN, __VA_ARGS__)
#define mt_log_info(...) mt_log(MT_LOG_INFO, __VA_ARGS__)
#define mt_log_debug(...) mt_log(MT_LOG_DEBUG, __VA_ARGS__)

/*
 * Rate-limited lines, for events another process can cause at will (a refused or timed-out
 * client, a rule an attacker's executable fails): each call site lets MT_LOG_LIMIT_BURST lines
 * through per MT_LOG_LIMIT_INTERVAL_MS and counts the rest. The first line of a later interval
 * ends with "(N similar lines suppressed)", and mt_log_limits_flush() reports a count nobody
 * followed, so that a flood is visible as one number instead of filling the disk.
 *
 *     mt_log_limited(MT_LOG_WARN, "refused pid %ld uid %u: %s", pid, uid, reason);
 *
 * Lock-free (C11 atomics), so it is safe from any thread of an intercepted program; the counts
 * are exact, the boundary between two intervals is approximate under contention.
 */
#define MT_LOG_LIMIT_BURST 10u
#define MT_LOG_LIMIT_INTERVAL_MS 10000

struct mt_log_limit {
    atomic_llong interval_start_ms; /* 0: nothing logged yet */
    atomic_uint emitted;            /* lines let through in this interval */
    atomic_ullong suppressed;       /* lines dropped in this interval */
    atomic_bool registered;         /* on the list mt_log_limits_flush walks */
    _Atomic(const char *) format;   /* the call site's format, to name suppressed lines */
    atomic_int level;               /* its level (enum mt_log_level) */
    struct mt_log_limit *next;
};

/*
 * True when a line at now_ms may be written through limit. *dropped receives the lines suppressed
 * in the interval that this call closed (0 when it closed none), for the line to report.
 */
bool mt_log_limit_admit(struct mt_log_limit *limit, long long now_ms, unsigned long long *dropped);

/*
 * mt_log through limit at time now_ms (CLOCK_MONOTONIC milliseconds). limit must have static
 * storage duration: once it suppresses a line it stays on the list mt_log_limits_flush reads.
 */
void mt_log_limited_at(struct mt_log_limit *limit, long long now_ms, enum mt_log_level level,
                       const char *format, ...) __attribute__((format(printf, 4, 5)));

/*
 * Writes one line per call site whose interval ended with lines suppressed and no line since:
 * "N similar lines suppressed in the last 10 s: <format>". The agent calls it from its loop.
 */
void mt_log_limits_flush(long long now_ms);

#define mt_log_limited(level, ...)                                                                 \
    do {                                                                                           \
        static struct mt_log_limit mt_log_limit_;                                                  \
        mt_log_limited_at(&mt_log_limit_, mt_sys_now_ms(), (level), __VA_ARGS__);                  \
    } while (0)

#endif
