/*
 * The table of what the agent issued to whom (see issued.h).
 *
 * Owns the entries, their strings and the hash index over them. The index holds positions in the
 * entry array: a removed entry's place is taken by the last one, and both index slots are fixed
 * at once, so a sweep step costs its liveness checks and nothing proportional to the table; only
 * growth rebuilds the index. This file must never ask the kernel about a process itself (the
 * is_alive function does), never check liveness outside a sweep, and never grow past
 * MT_ISSUED_MAX entries.
 */
#include <stdlib.h>
#include <string.h>

#include "issued.h"

static size_t slot_of(const struct mt_issued_table *table, pid_t pid)
{
    /* Fibonacci hashing: consecutive pids, as a fork storm makes, spread over the index. */
    uint64_t hash = (uint64_t)(uint32_t)pid * 11400714819323198485ull;
    return (size_t)(hash >> 32) & (table->index_size - 1);
}

static void index_insert(struct mt_issued_table *table, size_t position)
{
    size_t slot = slot_of(table, table->entries[position].pid);
    while (table->index[slot] != 0)
        slot = (slot + 1) & (table->index_size - 1);
    table->index[slot] = (uint32_t)(position + 1);
}

static void index_rebuild(struct mt_issued_table *table)
{
    memset(table->index, 0, table->index_size * sizeof(*table->index));
    for (size_t i = 0; i < table->count; i++)
        index_insert(table, i);
}

static void entry_clear(struct mt_issued_entry *entry)
{
    free(entry->exe);
    free(entry->spiffe_id);
    memset(entry, 0, sizeof(*entry));
}

/* Room for capacity entries and an index twice that (a power of two, so never over half full). */
static bool resize(struct mt_issued_table *table, size_t capacity)
{
    struct mt_issued_entry *entries = realloc(table->entries, capacity * sizeof(*entries));
    if (entries == NULL)
        return false;
    table->entries = entries;
    uint32_t *index = calloc(2 * capacity, sizeof(*index));
    if (index == NULL)
        return false;
    free(table->index);
    table->index = index;
    table->index_size = 2 * capacity;
    table->capacity = capacity;
    index_rebuild(table);
    return true;
}

MT_RESULT mt_issued_init(struct mt_issued_table *table, mt_issued_is_alive_fn is_alive)
{
    MT_ENSURE_REF(table);
    MT_ENSURE_REF(is_alive);
    memset(table, 0, sizeof(*table));
    table->is_alive = is_alive;
    if (!resize(table, MT_ISSUED_INITIAL)) {
        mt_issued_cleanup(table);
        return mt_result_of(MT_ERR_NO_MEMORY);
    }
    return MT_OK_RESULT;
}

void mt_issued_cleanup(struct mt_issued_table *table)
{
    if (table == NULL)
        return;
    for (size_t i = 0; i < table->count; i++)
        entry_clear(&table->entries[i]);
    free(table->entries);
    free(table->index);
    memset(table, 0, sizeof(*table));
}

struct mt_issued_entry *mt_issued_find(const struct mt_issued_table *table, pid_t pid,
                                       unsigned long long start_time)
{
    if (table == NULL || table->index == NULL)
        return NULL;
    for (size_t slot = slot_of(table, pid); table->index[slot] != 0;
         slot = (slot + 1) & (table->index_size - 1)) {
        struct mt_issued_entry *entry = &table->entries[table->index[slot] - 1];
        if (entry->pid == pid && entry->start_time == start_time)
            return entry;
    }
    return NULL;
}

/* The index slot that holds position (it is there: every entry is indexed). */
static size_t index_slot_of(const struct mt_issued_table *table, size_t position)
{
    size_t slot = slot_of(table, table->entries[position].pid);
    while (table->index[slot] != position + 1)
        slot = (slot + 1) & (table->index_size - 1);
    return slot;
}

/*
 * Empties slot and moves later entries of its probe run back into the hole, so that every entry
 * stays reachable from its home slot (deletion in linear probing, without tombstones).
 */
static void index_delete(struct mt_issued_table *table, size_t slot)
{
    size_t mask = table->index_size - 1;
    size_t hole = slot;
    for (size_t next = (hole + 1) & mask; table->index[next] != 0; next = (next + 1) & mask) {
        size_t home = slot_of(table, table->entries[table->index[next] - 1].pid);
        /* The entry at next may fill the hole when its home is not between the hole and it. */
        if (((next - home) & mask) >= ((next - hole) & mask)) {
            table->index[hole] = table->index[next];
            hole = next;
        }
    }
    table->index[hole] = 0;
}

/* Removes the entry at position: the last entry takes its place. */
static void entry_remove(struct mt_issued_table *table, size_t position)
{
    size_t last = table->count - 1;
    index_delete(table, index_slot_of(table, position));
    entry_clear(&table->entries[position]);
    if (position != last) {
        table->index[index_slot_of(table, last)] = (uint32_t)(position + 1);
        table->entries[position] = table->entries[last];
        memset(&table->entries[last], 0, sizeof(table->entries[last]));
    }
    table->count--;
}

bool mt_issued_sweep_step(struct mt_issued_table *table, size_t *cursor, size_t budget)
{
    if (table == NULL || table->index == NULL || cursor == NULL)
        return true;
    for (size_t checked = 0; checked < budget && *cursor < table->count; checked++) {
        const struct mt_issued_entry *entry = &table->entries[*cursor];
        if (table->is_alive(entry->pid, entry->start_time))
            (*cursor)++;
        else
            entry_remove(table, *cursor); /* the last entry moved here: look at it next */
    }
    return *cursor >= table->count;
}

void mt_issued_sweep(struct mt_issued_table *table)
{
    size_t cursor = 0;
    (void)mt_issued_sweep_step(table, &cursor, SIZE_MAX);
}

/* Makes room for one more entry (issued.h): grows, up to MT_ISSUED_MAX. */
static bool make_room(struct mt_issued_table *table)
{
    if (table->count < table->capacity)
        return true;
    if (table->capacity >= MT_ISSUED_MAX)
        return false;
    size_t capacity = table->capacity * 2 > MT_ISSUED_MAX ? MT_ISSUED_MAX : table->capacity * 2;
    return resize(table, capacity);
}

bool mt_issued_remember(struct mt_issued_table *table, pid_t pid, uid_t uid,
                        unsigned long long start_time, const char *exe, const char *spiffe_id,
                        time_t expiry)
{
    if (table == NULL || table->index == NULL || exe == NULL || spiffe_id == NULL)
        return false;
    char *exe_copy = strdup(exe);
    char *id_copy = strdup(spiffe_id);
    if (exe_copy == NULL || id_copy == NULL) {
        free(exe_copy);
        free(id_copy);
        return false;
    }
    struct mt_issued_entry *entry = mt_issued_find(table, pid, start_time);
    if (entry == NULL) {
        if (!make_room(table)) {
            free(exe_copy);
            free(id_copy);
            return false;
        }
        entry = &table->entries[table->count++];
        memset(entry, 0, sizeof(*entry));
        entry->pid = pid;
        entry->start_time = start_time;
        index_insert(table, table->count - 1);
    }
    free(entry->exe);
    free(entry->spiffe_id);
    entry->uid = uid;
    entry->expiry = expiry;
    entry->supervisor_pid = 0;
    entry->exe = exe_copy;
    entry->spiffe_id = id_copy;
    return true;
}
