/*
 * SHA-256 of a file's contents, for the agent's `sha256` rule selector (SPIRE's unix attestor
 * offers the same): an executable named by its bytes, whatever path or mount namespace it is
 * run from.
 *
 * Part of tls/, the only code that includes wolfSSL; the header exposes no wolfSSL type.
 */
#ifndef MT_TLS_DIGEST_H
#define MT_TLS_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "../util/result.h"

#define MT_DIGEST_SHA256_SIZE 32

/*
 * Hashes the contents of fd from offset 0 to its end (pread: the file offset is left alone),
 * hashing at most max_bytes: MT_ERR_TOO_LONG when there is more (found by reading one byte past
 * max_bytes, never further), MT_ERR_IO when a read fails, MT_ERR_NO_MEMORY without a buffer.
 * *bytes_read (when not NULL) is set to how many bytes were read, on success or failure.
 */
MT_RESULT mt_digest_sha256_fd(int fd, uint64_t max_bytes, uint8_t digest[MT_DIGEST_SHA256_SIZE],
                              uint64_t *bytes_read);

#endif
