/*
 * The checked result type and the four guard macros every layer uses.
 *
 * A function that can fail returns MT_RESULT (an mt_result marked warn_unused_result), so a
 * forgotten check is a compile error under -Werror. Each failure path is then one line:
 *
 *     MT_GUARD(mt_proto_write_header(&w, type));          propagate a failed mt_result
 *     MT_ENSURE(len <= MT_PROTO_MAX_PAYLOAD, MT_ERR_PROTO_OVERSIZED);
 *     MT_ENSURE_REF(buffer);                                null pointer → MT_ERR_INVALID_ARGUMENT
 *     MT_GUARD_POSIX(mt_sys_fcntl(fd, F_GETFL, 0), MT_ERR_IO);   -1 → error, errno kept
 *
 * A failure a person will read carries its reason in a struct mt_text (text.h: mt_result_explain).
 * The macros return from the enclosing function; functions that own resources use the forward
 * "goto out" pattern with mt_result_is_ok() instead.
 */
#ifndef MT_UTIL_RESULT_H
#define MT_UTIL_RESULT_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct mt_result {
    enum mt_error error;
} mt_result;

#define MT_RESULT __attribute__((warn_unused_result)) mt_result

static inline mt_result mt_result_of(enum mt_error error)
{
    return (mt_result){error};
}

#define MT_OK_RESULT mt_result_of(MT_OK)

static inline bool mt_result_is_ok(mt_result result)
{
    return result.error == MT_OK;
}

#define MT_GUARD(expression)                                                                       \
    do {                                                                                           \
        mt_result mt_guard_result_ = (expression);                                                 \
        if (!mt_result_is_ok(mt_guard_result_))                                                    \
            return mt_guard_result_;                                                               \
    } while (0)

#define MT_ENSURE(condition, error)                                                                \
    do {                                                                                           \
        if (!(condition))                                                                          \
            return mt_result_of(error);                                                            \
    } while (0)

#define MT_ENSURE_REF(pointer) MT_ENSURE((pointer) != NULL, MT_ERR_INVALID_ARGUMENT)

#define MT_GUARD_POSIX(expression, error) MT_ENSURE((expression) != -1, error)

#endif
