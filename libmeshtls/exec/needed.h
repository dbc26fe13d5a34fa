/*
 * Does a dynamically linked program do its I/O through io_uring: does it import liburing's
 * functions, or does the loader load liburing for it, directly or for a library it needs.
 *
 * Socket I/O submitted through io_uring is performed by the kernel from the submission queue:
 * no send, recv, accept or connect call passes through a preload, so those connections would
 * leave in plaintext. The check names such programs (MT_CHECK_IO_URING).
 */
#ifndef MT_EXEC_NEEDED_H
#define MT_EXEC_NEEDED_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "elf.h"

/*
 * Examines the program at path (fd open on it, size bytes, header already read) and the
 * libraries it needs, found as the loader finds them: the program's DT_RUNPATH or DT_RPATH
 * ($ORIGIN expanded), LD_LIBRARY_PATH, then the system directories. True when io_uring is used;
 * how (one clause, e.g. "links liburing.so.2 (/usr/lib/x86_64-linux-gnu/liburing.so.2)") is
 * written to how.
 */
bool mt_needed_uses_io_uring(const char *path, int fd, off_t size,
                             const struct mt_elf_header *header, char *how, size_t capacity);

#endif
