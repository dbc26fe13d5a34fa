/*
 * The HTTP/1.1 response of the kubelet client (https_get.h), read from the bytes received: pure,
 * for https_get.c, tests and a fuzz target.
 *
 * mt_http_response_read with join false only looks: *status is then 0 for a response whose end
 * only the closing connection tells (neither Content-Length nor chunked), and a chunked body is
 * walked by its sizes without being written. With join true it is mt_https_parse_response
 * (https_get.h).
 */
#ifndef MT_TLS_HTTP_RESPONSE_H
#define MT_TLS_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

#include "../util/result.h"

/* Headers longer than this make a response malformed. */
#define MT_HTTP_RESPONSE_HEADERS_MAX (64 * 1024)

MT_RESULT mt_http_response_read(char *data, size_t length, bool join, int *status, char **body,
                                size_t *body_length);

#endif
