/*
 * The fd-indexed two-level map (see fd_map.h). It owns the chunks and nothing they point to: it
 * must never take a lock, dereference a value, or free a chunk once published.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "fd_map.h"

static mt_fd_map_slot *chunk_of(struct mt_fd_map *map, unsigned index)
{
    return atomic_load_explicit(&map->chunks[index >> MT_FD_MAP_CHUNK_BITS], memory_order_acquire);
}

mt_fd_map_slot *mt_fd_map_slot_of(struct mt_fd_map *map, int index, bool create)
{
    if (index < 0 || (unsigned)index >= MT_FD_MAP_LIMIT)
        return NULL;
    unsigned position = (unsigned)index;
    mt_fd_map_slot *chunk = chunk_of(map, position);
    if (chunk == NULL && create) {
        mt_fd_map_slot *fresh = calloc(MT_FD_MAP_CHUNK_SIZE, sizeof(*fresh));
        if (fresh == NULL)
            return NULL;
        /* Another thread may have published this chunk first: use its chunk, drop ours. */
        mt_fd_map_slot *expected = NULL;
        if (atomic_compare_exchange_strong(&map->chunks[position >> MT_FD_MAP_CHUNK_BITS],
                                           &expected, fresh)) {
            chunk = fresh;
        } else {
            free(fresh);
            chunk = expected;
        }
    }
    return chunk != NULL ? &chunk[position & (MT_FD_MAP_CHUNK_SIZE - 1)] : NULL;
}

void *mt_fd_map_get(struct mt_fd_map *map, int index)
{
    mt_fd_map_slot *slot = mt_fd_map_slot_of(map, index, false);
    return slot != NULL ? atomic_load_explicit(slot, memory_order_acquire) : NULL;
}

int mt_fd_map_next(struct mt_fd_map *map, unsigned from, unsigned last)
{
    if (last >= MT_FD_MAP_LIMIT)
        last = MT_FD_MAP_LIMIT - 1;
    for (unsigned index = from; index <= last; index++) {
        mt_fd_map_slot *chunk = chunk_of(map, index);
        if (chunk == NULL) {
            index |= MT_FD_MAP_CHUNK_SIZE - 1; /* skip the whole missing chunk */
            continue;
        }
        if (atomic_load_explicit(&chunk[index & (MT_FD_MAP_CHUNK_SIZE - 1)],
                                 memory_order_acquire) != NULL)
            return (int)index;
    }
    return -1;
}
