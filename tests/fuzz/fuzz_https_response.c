/*
 * libFuzzer target for the kubelet client's HTTP/1.1 response reader (tls/https_get.c,
 * mt_https_parse_response): what a kubelet, or whatever answers at its address, sends back.
 *
 * Beyond "no crash, no read past the end" (the parser writes a chunked body in place, so it is
 * given a copy of exactly the input's size), it checks that an accepted response has a
 * three-digit status and a body that lies within the input.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls/https_get.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(bool condition)
{
    if (!condition)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size > 0 ? size : 1);
    require(copy != NULL);
    if (size > 0)
        memcpy(copy, data, size);
    int status = 0;
    char *body = NULL;
    size_t body_length = 0;
    mt_result result =
        mt_https_parse_response(size > 0 ? copy : NULL, size, &status, &body, &body_length);
    if (mt_result_is_ok(result)) {
        require(status >= 100 && status <= 999);
        require(body >= copy && body <= copy + size && body_length <= size - (size_t)(body - copy));
    } else {
        require(result.error == MT_ERR_PROTO_MALFORMED || result.error == MT_ERR_PROTO_TRUNCATED);
    }
    free(copy);
    return 0;
}
