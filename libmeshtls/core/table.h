/*
 * fd → connection table: which file descriptors are ours.
 *
 * An fd map (fd_map.h): lookups take no lock and never allocate, so every hook can ask "is this
 * fd ours?" at the cost of two loads, even from a signal handler writing to a self-pipe.
 *
 * Lifetime: the table holds one reference to each connection; mt_table_acquire() adds one for the
 * caller. Connection objects are type-stable (recycled through a free list, never returned to
 * malloc), so a lookup that races with close() may read a stale object's reference count but never
 * freed memory; it then sees the slot changed and retries.
 */
#ifndef MT_CORE_TABLE_H
#define MT_CORE_TABLE_H

#include "conn.h"

/* The connection on fd with a reference for the caller, or NULL when fd is not ours. */
struct mt_conn *mt_table_acquire(int fd);

/*
 * The connection whose started session is on the socket with this inode (mt_conn's
 * socket_inode), with a reference for the caller, or NULL. For a vfork child, whose fds are not
 * the table's (its dup2 is not recorded): no lock, no allocation.
 */
struct mt_conn *mt_table_acquire_by_socket(ino_t inode);

/* Publishes conn on fd; false when fd is out of range or no chunk could be allocated. */
bool mt_table_insert(int fd, struct mt_conn *conn);

/* Removes and returns fd's connection (the table's reference moves to the caller), or NULL. */
struct mt_conn *mt_table_remove(int fd);

/*
 * Whether the application wants fd kept open across exec while its session cannot cross it
 * (core/inherit.h): remembered with the fd, forgotten when the fd leaves the table. Setting it
 * is false when fd is not ours.
 */
bool mt_table_set_exec_wish(int fd, bool wish);
bool mt_table_exec_wish(int fd);

/* True when no fd is ours: lets poll skip its translation entirely in plain processes. */
bool mt_table_is_empty(void);

/*
 * Calls visit for every connection in the table, without a reference: it serves where none may be
 * taken (a fork child, where a reference another thread was dropping would never settle). Other
 * threads may run meanwhile (a fork's prepare handler, exit): connection objects are pooled, never
 * freed, so such a visit meets at worst a connection being recycled, and visitors judge it under
 * its lock.
 */
void mt_table_for_each(void (*visit)(struct mt_conn *conn, void *argument), void *argument);

/* Calls visit for every fd that is ours, with its connection (a dup'd one appears per fd). */
void mt_table_for_each_fd(void (*visit)(int fd, struct mt_conn *conn, void *argument),
                          void *argument);

/* Calls visit for every fd in [first, last] that is ours. */
void mt_table_for_each_in_range(unsigned first, unsigned last,
                                void (*visit)(int fd, void *argument), void *argument);

/* In a fork child: reinitialise the pool's lock, which another thread may have held. */
void mt_table_after_fork_child(void);

/* A zeroed connection object (references = 1) from the free list or malloc; NULL on ENOMEM. */
struct mt_conn *mt_table_conn_allocate(void);
/* Returns an object whose references reached 0 to the free list. */
void mt_table_conn_recycle(struct mt_conn *conn);

#endif
