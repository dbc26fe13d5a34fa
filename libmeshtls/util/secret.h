/*
 * Memory for key material: private keys and their DER/PEM encodings.
 *
 * A secret buffer is its own anonymous private mapping, never a piece of the malloc heap, so that
 * the kernel can be told things about exactly those pages:
 *   - MADV_DONTDUMP: the pages are left out of core dumps (the kernel's, and gdb's gcore, which
 *     honours the "dd" VmFlag of /proc/PID/smaps);
 *   - mlock, best effort: the pages are not written to swap (RLIMIT_MEMLOCK may forbid it;
 *     that is not an error);
 * and so that freeing it wipes the bytes and then returns the pages to the kernel: nothing of the
 * key is left behind in a free list for a later allocation, or a later dump, to find.
 *
 * Every live buffer is also wiped when the process exits normally (exit(), return from main):
 * keys do not outlive the code that used them, even when their owner never freed them.
 *
 * Fork: the buffers are NOT marked MADV_WIPEONFORK. After fork the child keeps using the parent's
 * identity (process.h: a shared connection may be used by one of the two processes, and new
 * connections in the child use the same TLS context, whose own copy of the key is in wolfSSL's
 * heap and would stay there anyway); wiping our copy in the child would break any code that
 * rebuilds a context from the identity there and protect nothing. A child that execs loses every
 * buffer with its address space.
 *
 * These are a few pages per key, allocated at start-up and on rotation, never per connection:
 * each buffer costs an mmap, an madvise and an mlock, and takes at least one page.
 */
#ifndef MT_UTIL_SECRET_H
#define MT_UTIL_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#include "result.h"

/*
 * A zeroed buffer of size bytes (at least 1), aligned for any object type, excluded from core
 * dumps where the kernel allows it (see mt_secret_is_dump_excluded). MT_ERR_NO_MEMORY, errno
 * set, when the mapping cannot be made.
 */
MT_RESULT mt_secret_alloc(size_t size, void **data);

/* Wipes the size bytes given at allocation, then unmaps the buffer. NULL is allowed. */
void mt_secret_free(void *data);

/* The size given at allocation. */
size_t mt_secret_size(const void *data);

/*
 * Wipes every live buffer in place, without freeing any (their owners may still hold them):
 * what the process does at exit. Also for a shutdown path that wants it earlier.
 */
void mt_secret_wipe_all(void);

/* True when mlock succeeded for this buffer (it cannot be swapped out). For tests and logs. */
bool mt_secret_is_locked(const void *data);

/*
 * True when the kernel accepted MADV_DONTDUMP for this buffer: always on Linux >= 3.4. Where it
 * refuses, the buffer is still returned (a process without its key would refuse every
 * connection) and is still wiped on free and at exit. For tests and logs.
 */
bool mt_secret_is_dump_excluded(const void *data);

/*
 * How deep below its caller mt_secret_wipe_stack() wipes. wolfSSL leaves copies of a P-256
 * private key in stack frames that have returned, without wiping them: the limbs of
 * wc_ecc_make_key_ex (little-endian) in 5.5.4 and 5.9.2; wc_EccPrivateKeyDecode's priv[]
 * (big-endian scalar), also under wolfSSL_CTX_use_PrivateKey_buffer, in 5.5.4 only (Debian's
 * build, for -Dwolfssl=system). Measured at up to ~8 KiB below the frame that called
 * mt_x509_key_from_pem, mt_x509_key_generate or wolfSSL_CTX_use_PrivateKey_buffer; twice that
 * for margin.
 */
#define MT_SECRET_STACK_WIPE_SIZE (16 * 1024)

/*
 * Wipes the MT_SECRET_STACK_WIPE_SIZE bytes of stack below the caller's frame: call it right
 * after a call that handled a private key, from the same function, to erase what that call's
 * frames left behind. Costs about a microsecond; uses that much stack for a moment.
 */
void mt_secret_wipe_stack(void);

#endif
