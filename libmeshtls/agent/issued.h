/*
 * What the agent issued to whom: the last identity of each live process, for `meshtls status`.
 *
 * A node runs thousands of meshed processes, and every SVID issued is remembered here, so no
 * operation may cost more than a constant per request. Entries are found by (pid, start time)
 * through a hash index. Dead processes are forgotten by a sweep, which asks the kernel about every
 * entry: the server sweeps periodically, and remember sweeps only when the table is full and at
 * least half of it was remembered since the last sweep, so its cost stays a constant per request.
 * A table still mostly live after that sweep doubles, up to MT_ISSUED_MAX entries; beyond that a
 * new process is not remembered (its metrics file still lists it) until a sweep frees room.
 *
 *   table                  remembered since sweep   what remember does
 *   room                   any                      stores the entry
 *   full                   < half the table         grows (below the max), else drops the entry
 *   full                   >= half the table        sweeps; grows when still 3/4 full; stores
 *
 * No I/O of its own: whether a process is alive is asked of the function given to init.
 */
#ifndef MT_AGENT_ISSUED_H
#define MT_AGENT_ISSUED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "../util/result.h"

/* Entries a new table has room for; it doubles from there. */
#define MT_ISSUED_INITIAL 1024
/* The most live processes remembered (about 12 MiB with their names). */
#define MT_ISSUED_MAX 65536

struct mt_issued_entry {
    pid_t pid;
    uid_t uid;
    unsigned long long start_time;
    time_t expiry;
    char *exe;
    char *spiffe_id;
};

/* Whether the process pid that started at start_time is still running. */
typedef bool (*mt_issued_is_alive_fn)(pid_t pid, unsigned long long start_time);

struct mt_issued_table {
    struct mt_issued_entry *entries; /* [0 .. count) in use */
    size_t count;
    size_t capacity;
    uint32_t *index; /* open addressing, index_size = 2 * capacity: entry + 1, 0 when empty */
    size_t index_size;
    size_t remembered_since_sweep;
    mt_issued_is_alive_fn is_alive;
};

/* An empty table with room for MT_ISSUED_INITIAL entries. */
MT_RESULT mt_issued_init(struct mt_issued_table *table, mt_issued_is_alive_fn is_alive);

/* Forgets every entry and frees the table. */
void mt_issued_cleanup(struct mt_issued_table *table);

/*
 * Remembers that the process pid/start_time of uid running exe was issued spiffe_id until
 * expiry, replacing what it was issued before. False when it could not be remembered (table at
 * its maximum and live, or no memory): nothing else changes then.
 */
bool mt_issued_remember(struct mt_issued_table *table, pid_t pid, uid_t uid,
                        unsigned long long start_time, const char *exe, const char *spiffe_id,
                        time_t expiry);

/* The entry of pid/start_time, or NULL. Valid until the next remember or sweep. */
struct mt_issued_entry *mt_issued_find(const struct mt_issued_table *table, pid_t pid,
                                       unsigned long long start_time);

/* Drops the entries of processes that have exited (or whose pid was reused). */
void mt_issued_sweep(struct mt_issued_table *table);

#endif
