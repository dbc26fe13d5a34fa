/*
 * Bounded text building (see text.h). Owns no memory: every byte written is inside the caller's
 * buffer, and the buffer is NUL-terminated after every call, whatever was cut.
 */
#include <stdio.h>

#include "text.h"

struct mt_text mt_text_on(char *buffer, size_t capacity)
{
    struct mt_text text = {buffer, buffer != NULL ? capacity : 0, 0, 0};
    if (text.capacity > 0)
        text.data[0] = '\0';
    return text;
}

void mt_text_clear(struct mt_text *text)
{
    if (text == NULL)
        return;
    text->length = 0;
    text->needed = 0;
    if (text->capacity > 0)
        text->data[0] = '\0';
}

void mt_text_append_va(struct mt_text *text, const char *format, va_list arguments)
{
    if (text == NULL)
        return;
    size_t available = text->capacity > text->length ? text->capacity - text->length : 0;
    int written =
        vsnprintf(available > 0 ? text->data + text->length : NULL, available, format, arguments);
    if (written < 0) {
        if (available > 0)
            text->data[text->length] = '\0';
        return;
    }
    text->needed += (size_t)written;
    if (available > 0)
        text->length += (size_t)written < available ? (size_t)written : available - 1;
}

void mt_text_append(struct mt_text *text, const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    mt_text_append_va(text, format, arguments);
    va_end(arguments);
}

void mt_text_set(struct mt_text *text, const char *format, ...)
{
    mt_text_clear(text);
    va_list arguments;
    va_start(arguments, format);
    mt_text_append_va(text, format, arguments);
    va_end(arguments);
}

const char *mt_text_string(const struct mt_text *text)
{
    return text != NULL && text->capacity > 0 ? text->data : "";
}

mt_result mt_result_explain(struct mt_text *reason, enum mt_error error, const char *format, ...)
{
    mt_text_clear(reason);
    va_list arguments;
    va_start(arguments, format);
    mt_text_append_va(reason, format, arguments);
    va_end(arguments);
    return mt_result_of(error);
}
