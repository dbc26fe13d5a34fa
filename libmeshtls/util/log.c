/*
 * Line-at-a-time logging to stderr. Owns the level and the program tag; never allocates, so it
 * can run inside any hook, including from a signal handler's write path.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static enum mt_log_level current_level = MT_LOG_WARN;
static const char *current_tag = "meshtls";
static ssize_t (*current_writer)(int, const void *, size_t) = write;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

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
    current_writer = writer != NULL ? writer : write;
}

bool mt_log_is_enabled(enum mt_log_level level)
{
    return level <= current_level;
}

void mt_log(enum mt_log_level level, const char *format, ...)
{
    if (!mt_log_is_enabled(level))
        return;
    int saved_errno = errno;
    char line[1024];
    int prefix = snprintf(line, sizeof(line), "%s[%ld]: %s: ", current_tag, (long)getpid(),
                          mt_log_level_name(level));
    if (prefix < 0)
        prefix = 0;
    va_list arguments;
    va_start(arguments, format);
    int body = vsnprintf(line + prefix, sizeof(line) - (size_t)prefix, format, arguments);
    va_end(arguments);
    size_t length = (size_t)prefix + (body < 0 ? 0 : (size_t)body);
    /* A line cut by the buffer keeps its newline so the next line starts cleanly. */
    if (length > sizeof(line) - 2)
        length = sizeof(line) - 2;
    line[length++] = '\n';
    (void)current_writer(STDERR_FILENO, line, length);
    errno = saved_errno;
}
