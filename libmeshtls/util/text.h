/*
 * The one carrier of a human-readable reason: a bounded text built over the caller's buffer.
 *
 * A function whose failure a person will read (a log line, the CLI, the agent's reply,
 * meshtls_last_error()) takes a `struct mt_text *reason` and fails in one line:
 *
 *     char buffer[256];
 *     struct mt_text reason = mt_text_on(buffer, sizeof(buffer));
 *     MT_GUARD(mt_config_load(path, &config, &reason));        the callee explains
 *     ...
 *     return mt_result_explain(reason, MT_ERR_CONFIG, "%s:%u: port: not a number", path, line);
 *
 * reason may be NULL (nobody wants the explanation); the text is always NUL-terminated, cut to
 * the buffer, and `needed` says how long it would have been, like snprintf's result. The text
 * never allocates: the owner of the buffer decides its lifetime.
 */
#ifndef MT_UTIL_TEXT_H
#define MT_UTIL_TEXT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "result.h"

struct mt_text {
    char *data;      /* the caller's buffer; NULL with capacity 0 for a text that only counts */
    size_t capacity; /* bytes of data, NUL included */
    size_t length;   /* bytes written, NUL excluded (< capacity) */
    size_t needed;   /* bytes the whole text would take, NUL excluded */
};

/* A text over buffer (capacity bytes), emptied. buffer may be NULL with capacity 0. */
struct mt_text mt_text_on(char *buffer, size_t capacity);

/*
 * A text over a char array, emptied, living as long as the enclosing block: for a call whose
 * reason the caller reads from the array, e.g. mt_config_load(&config, MT_TEXT_ON(message)).
 */
#define MT_TEXT_ON(array) ((array)[0] = '\0', &(struct mt_text){(array), sizeof(array), 0, 0})

/* Empties text (NULL allowed). */
void mt_text_clear(struct mt_text *text);

/* Appends to text (NULL allowed), cutting at the buffer's end. */
__attribute__((format(printf, 2, 3))) void mt_text_append(struct mt_text *text, const char *format,
                                                          ...);
__attribute__((format(printf, 2, 0))) void mt_text_append_va(struct mt_text *text,
                                                             const char *format, va_list arguments);

/* Replaces text's content (NULL allowed) with the formatted line. */
__attribute__((format(printf, 2, 3))) void mt_text_set(struct mt_text *text, const char *format,
                                                       ...);

/* The text so far: "" for an empty text or one without a buffer. */
const char *mt_text_string(const struct mt_text *text);

static inline bool mt_text_is_empty(const struct mt_text *text)
{
    return text == NULL || text->needed == 0;
}

/* True when the whole text did not fit in the buffer. */
static inline bool mt_text_is_cut(const struct mt_text *text)
{
    return text != NULL && text->needed > text->length;
}

/*
 * Fails with error after replacing reason's text (NULL allowed) with the one-line explanation:
 * for functions whose caller shows the reason to a person.
 */
__attribute__((format(printf, 3, 4))) mt_result
mt_result_explain(struct mt_text *reason, enum mt_error error, const char *format, ...);

#endif
