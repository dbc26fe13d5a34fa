/*
 * Message and errno tables generated from the MT_ERRORS list in error.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "error.h"
#include "result.h"

static const struct {
    const char *name;
    int errno_value;
    const char *message;
} error_table[MT_ERROR_COUNT] = {
#define MT_ERROR_ROW(name, errno_value, message) [name] = {#name, errno_value, message},
    MT_ERRORS(MT_ERROR_ROW)
#undef MT_ERROR_ROW
};

static bool is_known(enum mt_error code)
{
    return (unsigned)code < MT_ERROR_COUNT;
}

const char *mt_error_message(enum mt_error code)
{
    return is_known(code) ? error_table[code].message : "unknown error";
}

int mt_error_to_errno(enum mt_error code)
{
    return is_known(code) && code != MT_OK ? error_table[code].errno_value : EIO;
}

const char *mt_error_name(enum mt_error code)
{
    return is_known(code) ? error_table[code].name : "MT_ERR_UNKNOWN";
}
