/*
 * What the agent issued to whom: the last identity of each live process, for `meshtls status`.
 *
 * A node runs thousands of meshed processes, and every SVID issued is remembered here, so nothing
 * a request does may cost in proportion to the table: entries are found by (pid, start time)
 * through a hash index, and remember never checks whether a process is alive. Dead processes are
 * forgotten by sweeps, which ask about every entry; the server runs them a bounded step at a time
 * between requests (mt_issued_sweep_step), so that 10 000 live processes (a /proc read each)
 * never hold the agent's loop for long.
 *
 *   table                  what remember does
 *   room                   stores the entry
 *   full, below the max    doubles, then stores the entry
 *   full, at MT_ISSUED_MAX refuses: the process is not remembered (its metrics file still lists
 *                          it in `meshtls status`) until a sweep frees room
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
    pid_t supervisor_pid; /* the process that holds this identity for it; 0: the process itself */
};

/* Whether the process pid that started at start_time is still running. */
typedef bool (*mt_issued_is_alive_fn)(pid_t pid, unsigned long long start_time);

struct mt_issued_table {
    struct mt_issued_entry *entries; /* [0 .. count) in use */
    size_t count;
    size_t capacity;
    uint32_t *index; /* open addressing, index_size = 2 * capacity: entry + 1, 0 when empty */
    size_t index_size;
    mt_issued_is_alive_fn is_alive;
};

/* An empty table with room for MT_ISSUED_INITIAL entries. */
MT_RESULT mt_issued_init(struct mt_issued_table *table, mt_issued_is_alive_fn is_alive);

/* Forgets every entry and frees the table. */
void mt_issued_cleanup(struct mt_issued_table *table);

/*
 * Remembers that the process pid/start_time of uid running exe was issued spiffe_id until
 * expiry, replacing what it was issued before (supervisor_pid becomes 0: the caller sets it on
 * the entry it finds afterwards, for a subject). False when it could not be remembered (table at
 * its maximum and live, or no memory): nothing else changes then.
 */
bool mt_issued_remember(struct mt_issued_table *table, pid_t pid, uid_t uid,
                        unsigned long long start_time, const char *exe, const char *spiffe_id,
                        time_t expiry);

/* The entry of pid/start_time, or NULL. Valid until the next remember or sweep. */
struct mt_issued_entry *mt_issued_find(const struct mt_issued_table *table, pid_t pid,
                                       unsigned long long start_time);

/*
 * Checks up to budget entries from *cursor (0 to start a sweep) and drops those of processes
 * that have exited (or whose pid was reused). True when the sweep has reached the end. Entries
 * remembered meanwhile are checked too; none is skipped.
 */
bool mt_issued_sweep_step(struct mt_issued_table *table, size_t *cursor, size_t budget);

/* A whole sweep at once. */
void mt_issued_sweep(struct mt_issued_table *table);

#endif
