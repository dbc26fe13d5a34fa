/*
 * meshtls_last_error()'s sentence (see error.h).
 *
 * Owns the thread-local buffer and how a failure is put into words. Must never change errno: the
 * caller's errno is the public result of the call.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../core/conn.h"
#include "../core/table.h"
#include "../util/sys.h"
#include "error.h"

static _Thread_local char last_error[256];

const char *mt_api_last_error(void)
{
    return last_error;
}

void mt_api_clear_error(void)
{
    last_error[0] = '\0';
}

void mt_api_say(const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    MT_PRESERVING_ERRNO(vsnprintf(last_error, sizeof(last_error), format, arguments));
    va_end(arguments);
}

/* Remembers why a call on fd failed with error: the connection's own reason when it has one. */
static void remember_failure(int fd, int error)
{
    char reason[200] = "";
    struct mt_conn *conn = fd >= 0 ? mt_table_acquire(fd) : NULL;
    if (conn != NULL) {
        mt_conn_failure_reason(conn, MT_TEXT_ON(reason));
        mt_conn_release(conn);
    }
    if (reason[0] != '\0')
        snprintf(last_error, sizeof(last_error), "%s (%s)", reason, strerror(error));
    else
        snprintf(last_error, sizeof(last_error), "%s", strerror(error));
}

int mt_api_failed(int fd, int result)
{
    MT_PRESERVING_ERRNO(remember_failure(fd, errno));
    return result;
}

ssize_t mt_api_checked(int fd, ssize_t result)
{
    if (result < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINPROGRESS)
        return mt_api_failed(fd, (int)result);
    last_error[0] = '\0';
    return result;
}
