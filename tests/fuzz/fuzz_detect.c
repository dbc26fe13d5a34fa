/*
 * libFuzzer target for the ClientHello detector (policy/detect.c).
 *
 * Beyond "no crash, no read past the end" (the replay copies each input into an allocation of
 * exactly its size, and the detector is given exactly that length), it checks the contract a
 * permissive port relies on: the answer is one of the four results, input of
 * MT_DETECT_BYTES_MAX bytes or more is always answered, and no prefix of the input ever gives a
 * final answer other than the whole input's.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "policy/detect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(bool condition)
{
    if (!condition)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum mt_detect_result whole = mt_detect_client_hello(size > 0 ? data : NULL, size);
    require(whole == MT_DETECT_NEED_MORE || whole == MT_DETECT_NOT_TLS ||
            whole == MT_DETECT_TLS_MESH || whole == MT_DETECT_TLS_OTHER);
    require(size < MT_DETECT_BYTES_MAX || whole != MT_DETECT_NEED_MORE);
    /* Every prefix of short inputs; a spread of prefixes of long ones. */
    size_t step = size <= 1024 ? 1 : size / 512;
    for (size_t cut = 0; cut < size; cut += step) {
        enum mt_detect_result part = mt_detect_client_hello(cut > 0 ? data : NULL, cut);
        require(part == MT_DETECT_NEED_MORE || part == whole);
    }
    return 0;
}
