/*
 * An fd-indexed map of atomic pointers: the one shape behind the connection table (table.c) and
 * epoll's instances and records (epoll.c).
 *
 *   index 0 .. MT_FD_MAP_LIMIT - 1 (the kernel's default nr_open, 1 048 576)
 *     → chunk index >> MT_FD_MAP_CHUNK_BITS, allocated by mt_fd_map_slot_create, never freed
 *       → slot  index & (MT_FD_MAP_CHUNK_SIZE - 1), one atomic pointer
 *
 * A lookup takes no lock and never allocates: two loads, so every hook can ask "is this fd
 * ours?", even from a signal handler. Chunks are never freed, so a slot pointer stays valid for
 * the life of the process; two threads creating the same chunk agree on one (the other is freed
 * before anyone sees it). A zeroed map (static storage) is an empty map, and a fork child has the
 * parent's map as it was, with no lock to reset.
 *
 * The map stores pointers only: what they point to, and what keeps an object alive while a
 * reader holds its pointer, belong to the user (type-stable objects and reference counts in
 * table.c, generations in epoll.c). The map must never dereference a value, nor free one.
 */
#ifndef MT_CORE_FD_MAP_H
#define MT_CORE_FD_MAP_H

#include <stdatomic.h>
#include <stddef.h>

#define MT_FD_MAP_CHUNK_BITS 10
#define MT_FD_MAP_CHUNK_SIZE (1u << MT_FD_MAP_CHUNK_BITS)
#define MT_FD_MAP_CHUNK_COUNT 1024u
#define MT_FD_MAP_LIMIT (MT_FD_MAP_CHUNK_SIZE * MT_FD_MAP_CHUNK_COUNT)

typedef void *_Atomic mt_fd_map_slot;

struct mt_fd_map {
    _Atomic(mt_fd_map_slot *) chunks[MT_FD_MAP_CHUNK_COUNT];
};

/*
 * index's slot, for the caller's atomic operations on it (load, store, exchange, compare and
 * exchange); NULL when index is out of range or its chunk does not exist yet. Inline: it is the
 * lookup every hook makes.
 */
static inline mt_fd_map_slot *mt_fd_map_slot_of(struct mt_fd_map *map, int index)
{
    if (index < 0 || (unsigned)index >= MT_FD_MAP_LIMIT)
        return NULL;
    mt_fd_map_slot *chunk = atomic_load_explicit(
        &map->chunks[(unsigned)index >> MT_FD_MAP_CHUNK_BITS], memory_order_acquire);
    return chunk != NULL ? &chunk[(unsigned)index & (MT_FD_MAP_CHUNK_SIZE - 1)] : NULL;
}

/* As mt_fd_map_slot_of, allocating the chunk first when needed: NULL out of range or memory. */
mt_fd_map_slot *mt_fd_map_slot_create(struct mt_fd_map *map, int index);

/* The value at index (an acquire load), NULL when the slot is empty or does not exist. */
static inline void *mt_fd_map_get(struct mt_fd_map *map, int index)
{
    mt_fd_map_slot *slot = mt_fd_map_slot_of(map, index);
    return slot != NULL ? atomic_load_explicit(slot, memory_order_acquire) : NULL;
}

/*
 * The first index in [from, last] whose slot holds a value, or -1 when none does (last is cut to
 * MT_FD_MAP_LIMIT - 1). Chunks never created are skipped whole. Walks every value in a range:
 *
 *     for (int fd = mt_fd_map_next(map, first, last); fd >= 0;
 *          fd = mt_fd_map_next(map, (unsigned)fd + 1, last))
 *
 * Values stored or removed meanwhile by other threads may or may not be seen.
 */
int mt_fd_map_next(struct mt_fd_map *map, unsigned from, unsigned last);

#endif
