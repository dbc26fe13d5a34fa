/*
 * The table of what the agent issued to whom (see issued.h).
 *
 * Owns the entries, their strings and the hash index over them. The index holds positions in the
 * entry array, so it is rebuilt whenever the array is compacted (sweep) or moved (growth); both
 * already cost a pass over every entry. This file must never ask the kernel about a process
 * itself (the is_alive function does), never sweep more often than issued.h allows, and never
 * grow past MT_ISSUED_MAX entries.
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

void mt_issued_sweep(struct mt_issued_table *table)
{
    if (table == NULL || table->index == NULL)
        return;
    size_t kept = 0;
    for (size_t i = 0; i < table->count; i++) {
        struct mt_issued_entry *entry = &table->entries[i];
        if (!table->is_alive(entry->pid, entry->start_time)) {
            entry_clear(entry);
            continue;
        }
        if (kept != i) {
            table->entries[kept] = *entry;
            memset(entry, 0, sizeof(*entry));
        }
        kept++;
    }
    table->count = kept;
    table->remembered_since_sweep = 0;
    index_rebuild(table);
}

/* Makes room for one more entry per issued.h's table; false when there is none. */
static bool make_room(struct mt_issued_table *table)
{
    if (table->count < table->capacity)
        return true;
    if (table->remembered_since_sweep >= table->count / 2) {
        mt_issued_sweep(table);
        if (table->count < table->capacity * 3 / 4)
            return true;
    }
    if (table->capacity >= MT_ISSUED_MAX)
        return table->count < table->capacity;
    size_t capacity = table->capacity * 2 > MT_ISSUED_MAX ? MT_ISSUED_MAX : table->capacity * 2;
    return resize(table, capacity) || table->count < table->capacity;
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
        table->remembered_since_sweep++;
    }
    free(entry->exe);
    free(entry->spiffe_id);
    entry->uid = uid;
    entry->expiry = expiry;
    entry->exe = exe_copy;
    entry->spiffe_id = id_copy;
    return true;
}
