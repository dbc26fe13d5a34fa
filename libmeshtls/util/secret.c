/*
 * Memory for key material (see secret.h for what the kernel is told and why).
 *
 * Owns one anonymous mapping per buffer and the list of live buffers that the exit handler wipes.
 * Layout of a mapping: a header (size, links) in its first SECRET_HEADER_SPACE bytes, the
 * caller's bytes right after it; the mapping is whole pages, so MADV_DONTDUMP and mlock cover the
 * header and the data exactly. This file must never log (a log line next to a key is where keys
 * leak), never return a buffer to a free list unwiped, and never hide it when the kernel refused
 * to exclude a buffer from dumps (mt_secret_is_dump_excluded).
 */
#include <pthread.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "secret.h"

/* Marks a live header; anything else handed to mt_secret_free is a bug worth stopping for. */
#define SECRET_MAGIC UINT64_C(0x6d74736563726574) /* "mtsecret" */

struct secret_header {
    uint64_t magic;
    size_t size;         /* what the caller asked for */
    size_t mapping_size; /* whole pages, header included */
    bool locked;         /* mlock succeeded */
    bool dump_excluded;  /* madvise(MADV_DONTDUMP) succeeded */
    struct secret_header *previous;
    struct secret_header *next;
};

/* 64: keeps the caller's bytes aligned for any object (max_align_t is 16 here) and a cache line. */
#define SECRET_HEADER_SPACE 64
_Static_assert(sizeof(struct secret_header) <= SECRET_HEADER_SPACE, "secret header too large");
_Static_assert(SECRET_HEADER_SPACE % alignof(max_align_t) == 0, "secret data misaligned");

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct secret_header *live; /* under registry_lock */
static pid_t registry_pid;         /* the process whose buffers these are (see wipe_at_exit) */
static pthread_once_t fork_handlers_once = PTHREAD_ONCE_INIT;

/*
 * fork copies the list with the memory; only the forking thread survives in the child, so the
 * lock is taken around fork to keep the child from inheriting it held by a thread that is gone.
 */
static void before_fork(void)
{
    pthread_mutex_lock(&registry_lock);
}

static void after_fork_parent(void)
{
    pthread_mutex_unlock(&registry_lock);
}

static void after_fork_child(void)
{
    registry_pid = getpid();
    pthread_mutex_unlock(&registry_lock);
}

static void install_fork_handlers(void)
{
    registry_pid = getpid();
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

static struct secret_header *header_of(const void *data)
{
    struct secret_header *header =
        (struct secret_header *)(void *)((uint8_t *)(uintptr_t)data - SECRET_HEADER_SPACE);
    /* Not one of ours: unmapping it could take anything with it. */
    if (header->magic != SECRET_MAGIC)
        abort();
    return header;
}

static uint8_t *data_of(struct secret_header *header)
{
    return (uint8_t *)header + SECRET_HEADER_SPACE;
}

MT_RESULT mt_secret_alloc(size_t size, void **data)
{
    MT_ENSURE_REF(data);
    *data = NULL;
    MT_ENSURE(size > 0, MT_ERR_INVALID_ARGUMENT);
    pthread_once(&fork_handlers_once, install_fork_handlers);

    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    MT_ENSURE(size <= SIZE_MAX - SECRET_HEADER_SPACE - page, MT_ERR_TOO_LONG);
    size_t mapping_size = (SECRET_HEADER_SPACE + size + page - 1) / page * page;
    void *mapping =
        mmap(NULL, mapping_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    MT_ENSURE(mapping != MAP_FAILED, MT_ERR_NO_MEMORY);
    /*
     * Before a single byte of key is written: a dump taken at any later moment omits it. Linux
     * has had MADV_DONTDUMP since 3.4; where it is refused (EINVAL from a kernel or sandbox that
     * lacks it) the key is still kept, as it was before this file existed, rather than leaving
     * the process without an identity: mt_secret_is_dump_excluded tells.
     */
    bool dump_excluded = madvise(mapping, mapping_size, MADV_DONTDUMP) == 0;
    struct secret_header *header = mapping;
    *header = (struct secret_header){
        .magic = SECRET_MAGIC,
        .size = size,
        .mapping_size = mapping_size,
        /* Best effort: an unprivileged process may have a memlock limit of a few pages. */
        .locked = mlock(mapping, mapping_size) == 0,
        .dump_excluded = dump_excluded,
    };

    pthread_mutex_lock(&registry_lock);
    header->next = live;
    if (live != NULL)
        live->previous = header;
    live = header;
    pthread_mutex_unlock(&registry_lock);

    *data = data_of(header);
    return MT_OK_RESULT;
}

void mt_secret_free(void *data)
{
    if (data == NULL)
        return;
    struct secret_header *header = header_of(data);
    pthread_mutex_lock(&registry_lock);
    if (header->previous != NULL)
        header->previous->next = header->next;
    else
        live = header->next;
    if (header->next != NULL)
        header->next->previous = header->previous;
    pthread_mutex_unlock(&registry_lock);

    size_t mapping_size = header->mapping_size;
    bool locked = header->locked;
    /* The whole mapping, header included: munmap alone would leave the bytes in freed pages. */
    explicit_bzero(header, mapping_size);
    if (locked)
        munlock(header, mapping_size);
    munmap(header, mapping_size);
}

size_t mt_secret_size(const void *data)
{
    return header_of(data)->size;
}

bool mt_secret_is_locked(const void *data)
{
    return header_of(data)->locked;
}

bool mt_secret_is_dump_excluded(const void *data)
{
    return header_of(data)->dump_excluded;
}

void mt_secret_wipe_all(void)
{
    pthread_mutex_lock(&registry_lock);
    for (struct secret_header *header = live; header != NULL; header = header->next)
        explicit_bzero(data_of(header), header->size);
    pthread_mutex_unlock(&registry_lock);
}

/*
 * noinline: the scratch array must be a frame of its own, just below the caller's, where the
 * frames of the callee that handled the key were. no_sanitize_address: AddressSanitizer would
 * surround the array with redzones it never writes, leaving the bytes there unwiped. The empty
 * asm keeps the compiler from treating the array as dead (explicit_bzero already may not be
 * elided; this is belt and braces).
 */
__attribute__((noinline, no_sanitize_address)) void mt_secret_wipe_stack(void)
{
    unsigned char scratch[MT_SECRET_STACK_WIPE_SIZE];
    explicit_bzero(scratch, sizeof(scratch));
    __asm__ __volatile__("" : : "r"(scratch) : "memory");
}

/*
 * At exit every buffer still alive is wiped, not freed: another thread may still hold one, and
 * reading zeroes is safe where reading an unmapped page is not. A vfork child (or any clone
 * sharing our memory) that calls exit() would wipe its parent's keys: the pid tells it apart.
 */
__attribute__((destructor)) static void wipe_at_exit(void)
{
    if (registry_pid != 0 && getpid() == registry_pid)
        mt_secret_wipe_all();
}
