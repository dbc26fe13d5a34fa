/*
 * The kubelet client's reading of an HTTP/1.1 response (see http_response.h): status line,
 * Content-Length and chunked bodies.
 *
 * Owns the bytes of one response, pure and allocation-free: it must never read past the length
 * it was given, never write outside the body it joins, and never take a response it had to guess
 * at (a Transfer-Encoding other than chunked, a length that is not a number).
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "http_response.h"
#include "https_get.h"

/* The value of header name (case-insensitive) in headers[0 .. length), or NULL. */
static const char *header_value(const char *headers, size_t length, const char *name,
                                size_t *value_length)
{
    size_t name_length = strlen(name);
    const char *line = memchr(headers, '\n', length); /* past the status line */
    const char *end = headers + length;
    while (line != NULL && line + 1 < end) {
        line++;
        const char *line_end = memchr(line, '\n', (size_t)(end - line));
        if (line_end == NULL)
            line_end = end;
        if ((size_t)(line_end - line) > name_length && line[name_length] == ':' &&
            strncasecmp(line, name, name_length) == 0) {
            const char *value = line + name_length + 1;
            while (value < line_end && (*value == ' ' || *value == '\t'))
                value++;
            const char *value_end = line_end;
            while (value_end > value && (value_end[-1] == '\r' || value_end[-1] == ' '))
                value_end--;
            *value_length = (size_t)(value_end - value);
            return value;
        }
        line = line_end < end ? line_end : NULL;
    }
    return NULL;
}

/*
 * Walks a chunked body at data[0 .. length): the total of its chunks in *total. With join, moves
 * the chunks together at data (the walk reads ahead of where it writes).
 */
static MT_RESULT walk_chunks(char *data, size_t length, bool join, size_t *total)
{
    size_t position = 0;
    size_t written = 0;
    for (;;) {
        const char *line_end = memchr(data + position, '\n', length - position);
        MT_ENSURE(line_end != NULL, MT_ERR_PROTO_TRUNCATED);
        size_t size = 0;
        size_t digits = 0;
        for (const char *cursor = data + position; cursor < line_end; cursor++, digits++) {
            int value = *cursor >= '0' && *cursor <= '9'   ? *cursor - '0'
                        : *cursor >= 'a' && *cursor <= 'f' ? *cursor - 'a' + 10
                        : *cursor >= 'A' && *cursor <= 'F' ? *cursor - 'A' + 10
                                                           : -1;
            if (value < 0)
                break;
            MT_ENSURE(size <= (SIZE_MAX >> 4) / 2, MT_ERR_PROTO_MALFORMED);
            size = size << 4 | (size_t)value;
        }
        MT_ENSURE(digits > 0, MT_ERR_PROTO_MALFORMED);
        position = (size_t)(line_end - data) + 1;
        if (size == 0)
            break;
        MT_ENSURE(size + 2 <= length - position, MT_ERR_PROTO_TRUNCATED);
        MT_ENSURE(data[position + size] == '\r' && data[position + size + 1] == '\n',
                  MT_ERR_PROTO_MALFORMED);
        if (join)
            memmove(data + written, data + position, size);
        written += size;
        position += size + 2;
    }
    /* Trailers, then the empty line. */
    for (;;) {
        const char *line_end = memchr(data + position, '\n', length - position);
        MT_ENSURE(line_end != NULL, MT_ERR_PROTO_TRUNCATED);
        size_t line_length = (size_t)(line_end - (data + position));
        position += line_length + 1;
        if (line_length == 0 || (line_length == 1 && line_end[-1] == '\r'))
            break;
    }
    *total = written;
    return MT_OK_RESULT;
}

MT_RESULT mt_http_response_read(char *data, size_t length, bool join, int *status, char **body,
                                size_t *body_length)
{
    MT_ENSURE_REF(status);
    MT_ENSURE_REF(body);
    MT_ENSURE_REF(body_length);
    MT_ENSURE(data != NULL && length > 0, MT_ERR_PROTO_TRUNCATED);
    const char *headers_end = memmem(data, length, "\r\n\r\n", 4);
    if (headers_end == NULL) {
        MT_ENSURE(length < MT_HTTP_RESPONSE_HEADERS_MAX, MT_ERR_PROTO_MALFORMED);
        /* Judge the status line as soon as it is there. */
        MT_ENSURE(length < 5 || memcmp(data, "HTTP/", 5) == 0, MT_ERR_PROTO_MALFORMED);
        return mt_result_of(MT_ERR_PROTO_TRUNCATED);
    }
    size_t headers_length = (size_t)(headers_end - data) + 2;
    char *content = (char *)headers_end + 4;
    size_t content_length = length - (size_t)(content - data);
    /* "HTTP/1.1 200 OK" */
    MT_ENSURE(headers_length >= 12 && memcmp(data, "HTTP/1.", 7) == 0 && data[8] == ' ',
              MT_ERR_PROTO_MALFORMED);
    int code = 0;
    for (int i = 9; i < 12; i++) {
        MT_ENSURE(data[i] >= '0' && data[i] <= '9', MT_ERR_PROTO_MALFORMED);
        code = code * 10 + (data[i] - '0');
    }
    MT_ENSURE(code >= 100, MT_ERR_PROTO_MALFORMED);
    size_t value_length = 0;
    const char *encoding = header_value(data, headers_length, "Transfer-Encoding", &value_length);
    if (encoding != NULL) {
        MT_ENSURE(value_length == 7 && strncasecmp(encoding, "chunked", 7) == 0,
                  MT_ERR_PROTO_MALFORMED);
        size_t total = 0;
        MT_GUARD(walk_chunks(content, content_length, false, &total));
        if (join)
            MT_GUARD(walk_chunks(content, content_length, true, &total));
        *status = code;
        *body = content;
        *body_length = total;
        return MT_OK_RESULT;
    }
    const char *declared = header_value(data, headers_length, "Content-Length", &value_length);
    if (declared != NULL) {
        size_t expected = 0;
        MT_ENSURE(value_length > 0 && value_length <= 15, MT_ERR_PROTO_MALFORMED);
        for (size_t i = 0; i < value_length; i++) {
            MT_ENSURE(declared[i] >= '0' && declared[i] <= '9', MT_ERR_PROTO_MALFORMED);
            expected = expected * 10 + (size_t)(declared[i] - '0');
        }
        MT_ENSURE(content_length >= expected, MT_ERR_PROTO_TRUNCATED);
        content_length = expected;
    }
    *status = declared != NULL || join ? code : 0;
    *body = content;
    *body_length = content_length;
    return MT_OK_RESULT;
}

MT_RESULT mt_https_parse_response(char *data, size_t length, int *status, char **body,
                                  size_t *body_length)
{
    return mt_http_response_read(data, length, true, status, body, body_length);
}
