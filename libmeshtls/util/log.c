/*
 * Line-at-a-time logging to stderr. Owns the level, the program tag and the call-site limits;
 * never allocates, so it can run inside any hook, including from a signal handler's write path.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "sys.h"

static enum mt_log_level current_level = MT_LOG_WARN;
static const char *current_tag = "meshtls";
static ssize_t (*current_writer)(int, const void *, size_t) = mt_sys_write;

static bool to_journal;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* syslog(3) priorities of the levels: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
static const int level_priorities[] = {3, 4, 6, 7};

void mt_log_set_level(enum mt_log_level level)
{
    current_level = level;
}

enum mt_log_level mt_log_get_level(void)
{
    return current_level;
}

bool mt_log_level_parse(const char *text, enum mt_log_level *level)
{
    for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (text != NULL && strcmp(text, level_names[i]) == 0) {
            *level = (enum mt_log_level)i;
            return true;
        }
    }
    return false;
}

const char *mt_log_level_name(enum mt_log_level level)
{
    return (unsigned)level < 4 ? level_names[level] : "unknown";
}

void mt_log_set_tag(const char *tag)
{
    current_tag = tag != NULL ? tag : "meshtls";
}

void mt_log_set_writer(ssize_t (*writer)(int, const void *, size_t))
{
    current_writer = writer != NULL ? writer : mt_sys_write;
}

/*
 * Under systemd, a service's stderr is a stream to the journal, which stamps each line with the
 * unit's identifier and pid itself and reads a "<N>" syslog priority at the start of a line
 * (SyslogLevelPrefix=, on by default). JOURNAL_STREAM ("DEVICE:INODE", systemd.exec(5)) names
 * that stream; when stderr is still it (not redirected by a shell or inherited by a child that
 * reopened it), lines carry the priority instead of our "tag[pid]: ", which the journal would
 * print twice.
 */
bool mt_log_detect_journal(void)
{
    const char *stream = getenv("JOURNAL_STREAM");
    unsigned long long device = 0;
    unsigned long long inode = 0;
    char extra = '\0';
    struct stat status;
    to_journal = stream != NULL && sscanf(stream, "%llu:%llu%c", &device, &inode, &extra) == 2 &&
                 fstat(STDERR_FILENO, &status) == 0 &&
                 (unsigned long long)status.st_dev == device &&
                 (unsigned long long)status.st_ino == inode;
    return to_journal;
}

bool mt_log_is_enabled(enum mt_log_level level)
{
    return level <= current_level;
}

/* Formats and writes one line; suffix (may be NULL) is appended to the message. */
__attribute__((format(printf, 3, 0))) static void
format_and_write(enum mt_log_level level, const char *suffix, const char *format, va_list arguments)
{
    char line[1024];
    /* Room is kept for the suffix and the newline: a count must survive a long message. */
    size_t suffix_length = suffix != NULL ? strlen(suffix) : 0;
    size_t capacity = sizeof(line) - 1 - suffix_length;
    int prefix = to_journal && (unsigned)level < 4
                     ? snprintf(line, capacity, "<%d>%s: ", level_priorities[level],
                                mt_log_level_name(level))
                     : snprintf(line, capacity, "%s[%ld]: %s: ", current_tag, (long)getpid(),
                                mt_log_level_name(level));
    if (prefix < 0 || (size_t)prefix >= capacity)
        prefix = 0;
    int body = vsnprintf(line + prefix, capacity - (size_t)prefix, format, arguments);
    size_t length = (size_t)prefix + (body < 0 ? 0 : (size_t)body);
    /* A line cut by the buffer keeps its newline so the next line starts cleanly. */
    if (length > capacity - 1)
        length = capacity - 1;
    memcpy(line + length, suffix != NULL ? suffix : "", suffix_length);
    length += suffix_length;
    line[length++] = '\n';
    (void)current_writer(STDERR_FILENO, line, length);
}

/* Logging never changes errno: a line is often written between a failure and its errno's use. */
__attribute__((format(printf, 3, 0))) static void
write_line(enum mt_log_level level, const char *suffix, const char *format, va_list arguments)
{
    MT_PRESERVING_ERRNO(format_and_write(level, suffix, format, arguments));
}

void mt_log(enum mt_log_level level, const char *format, ...)
{
    if (!mt_log_is_enabled(level))
        return;
    va_list arguments;
    va_start(arguments, format);
    write_line(level, NULL, format, arguments);
    va_end(arguments);
}

/* ----------------------------------------------------------------------------------------- */
/* Call-site limits */

/*
 * The limits that have suppressed a line, for mt_log_limits_flush; pushed lock-free, never popped
 * (they are static objects of their call sites).
 */
static _Atomic(struct mt_log_limit *) limits_with_suppressions;

static void limit_register(struct mt_log_limit *limit)
{
    if (atomic_exchange(&limit->registered, true))
        return;
    struct mt_log_limit *head = atomic_load(&limits_with_suppressions);
    do {
        limit->next = head;
    } while (!atomic_compare_exchange_weak(&limits_with_suppressions, &head, limit));
}

/* Starts a new interval at now_ms if the current one is over; returns what it suppressed. */
static unsigned long long limit_roll(struct mt_log_limit *limit, long long now_ms)
{
    long long start = atomic_load(&limit->interval_start_ms);
    if (start != 0 && now_ms - start < MT_LOG_LIMIT_INTERVAL_MS)
        return 0;
    /* One caller wins the new interval; the others count in it. */
    if (!atomic_compare_exchange_strong(&limit->interval_start_ms, &start, now_ms))
        return 0;
    atomic_store(&limit->emitted, 0);
    return atomic_exchange(&limit->suppressed, 0);
}

bool mt_log_limit_admit(struct mt_log_limit *limit, long long now_ms, unsigned long long *dropped)
{
    *dropped = limit_roll(limit, now_ms);
    if (atomic_fetch_add(&limit->emitted, 1) < MT_LOG_LIMIT_BURST)
        return true;
    atomic_fetch_add(&limit->suppressed, 1);
    limit_register(limit);
    return false;
}

void mt_log_limited_at(struct mt_log_limit *limit, long long now_ms, enum mt_log_level level,
                       const char *format, ...)
{
    if (!mt_log_is_enabled(level))
        return;
    atomic_store(&limit->format, format);
    atomic_store(&limit->level, (int)level);
    unsigned long long dropped = 0;
    if (!mt_log_limit_admit(limit, now_ms, &dropped))
        return;
    char suffix[64] = "";
    if (dropped > 0)
        snprintf(suffix, sizeof(suffix), " (%llu similar lines suppressed)", dropped);
    va_list arguments;
    va_start(arguments, format);
    write_line(level, dropped > 0 ? suffix : NULL, format, arguments);
    va_end(arguments);
}

/* The site's format is quoted as data: its conversions are shown, never expanded. */
static void report_suppressed(const struct mt_log_limit *limit, unsigned long long dropped)
{
    const char *format = atomic_load(&limit->format);
    mt_log((enum mt_log_level)atomic_load(&limit->level),
           "%llu similar lines suppressed in the last %d s: \"%.240s\"", dropped,
           MT_LOG_LIMIT_INTERVAL_MS / 1000, format != NULL ? format : "");
}

void mt_log_limits_flush(long long now_ms)
{
    for (struct mt_log_limit *limit = atomic_load(&limits_with_suppressions); limit != NULL;
         limit = limit->next) {
        if (atomic_load(&limit->suppressed) == 0)
            continue;
        unsigned long long dropped = limit_roll(limit, now_ms);
        if (dropped > 0)
            report_suppressed(limit, dropped);
    }
}
