/*
 * SHA-256 of a file (see digest.h), through wolfCrypt's streaming interface so that a large file
 * costs a fixed 64 KiB buffer, never its size in memory. This file must never read more
 * than one byte past max_bytes: the caller bounds how long one hash can hold the agent's event
 * loop.
 */
#include <wolfssl/options.h>

#include <wolfssl/wolfcrypt/sha256.h>

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "digest.h"

#define CHUNK (64 * 1024)

MT_RESULT mt_digest_sha256_fd(int fd, uint64_t max_bytes, uint8_t digest[MT_DIGEST_SHA256_SIZE],
                              uint64_t *bytes_read)
{
    if (bytes_read != NULL)
        *bytes_read = 0;
    MT_ENSURE_REF(digest);
    uint8_t *chunk = malloc(CHUNK);
    MT_ENSURE(chunk != NULL, MT_ERR_NO_MEMORY);
    wc_Sha256 sha;
    if (wc_InitSha256(&sha) != 0) {
        free(chunk);
        return mt_result_of(MT_ERR_CRYPTO);
    }
    mt_result result = MT_OK_RESULT;
    uint64_t offset = 0;
    for (;;) {
        /* One byte past max_bytes is enough to learn that there is more: never read further. */
        uint64_t left = max_bytes - offset;
        size_t want = left < CHUNK ? (size_t)left + 1 : CHUNK;
        ssize_t got = pread(fd, chunk, want, (off_t)offset);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            result = mt_result_of(MT_ERR_IO);
            goto out;
        }
        if (got == 0)
            break;
        if ((uint64_t)got > max_bytes - offset) {
            offset += (uint64_t)got;
            result = mt_result_of(MT_ERR_TOO_LONG);
            goto out;
        }
        if (wc_Sha256Update(&sha, chunk, (word32)got) != 0) {
            result = mt_result_of(MT_ERR_CRYPTO);
            goto out;
        }
        offset += (uint64_t)got;
    }
    if (wc_Sha256Final(&sha, digest) != 0)
        result = mt_result_of(MT_ERR_CRYPTO);

out:
    if (bytes_read != NULL)
        *bytes_read = offset;
    wc_Sha256Free(&sha);
    free(chunk);
    return result;
}
