/*
 * The fd-indexed two-level map (see fd_map.h). It owns the chunks and nothing they point to: it
 * must never take a lock, dereference a value, or free a chunk once published.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "fd_map.h"

mt_fd_map_slot *mt_fd_map_slot_create(struct mt_fd_map *map, int index)
{
    mt_fd_map_slot *slot = mt_fd_map_slot_of(map, index);
    if (slot != NULL || index < 0 || (unsigned)index >= MT_FD_MAP_LIMIT)
        return slot;
    mt_fd_map_slot *fresh = calloc(MT_FD_MAP_CHUNK_SIZE, sizeof(*fresh));
    if (fresh == NULL)
        return NULL;
    /* Another thread may have published this chunk first: use its chunk, drop ours. */
    unsigned position = (unsigned)index;
    mt_fd_map_slot *chunk = NULL;
    if (atomic_compare_exchange_strong(&map->chunks[position >> MT_FD_MAP_CHUNK_BITS], &chunk,
                                       fresh)) {
        chunk = fresh;
    } else {
        free(fresh);
    }
    return &chunk[position & (MT_FD_MAP_CHUNK_SIZE - 1)];
}

int mt_fd_map_next(struct mt_fd_map *map, unsigned from, unsigned last)
{
    if (last >= MT_FD_MAP_LIMIT)
        last = MT_FD_MAP_LIMIT - 1;
    for (unsigned index = from; index <= last; index++) {
        mt_fd_map_slot *chunk =
            atomic_load_explicit(&map->chunks[index >> MT_FD_MAP_CHUNK_BITS], memory_order_acquire);
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
