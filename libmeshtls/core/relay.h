/*
 * The record state of a connection that fork made shared, relayed between the processes that
 * use it one after the other (a privilege-separated server: the monitor handshakes, a sandboxed
 * pre-authentication child carries the stream on and exits, the post-authentication child
 * continues it).
 *
 * At a fork, each established connection not relayed yet gets a slot in a region of shared
 * memory (a memfd mapped MAP_SHARED) made for that fork in the parent, before the child exists,
 * so both inherit it; a region has one slot per such connection. A slot is an owner word (a pid,
 * or none), a generation and room for the connection's export (conn.h: mt_conn_export). Only
 * the slot's header is touched at use; a process that inherits a connection and never uses it
 * (redis's BGSAVE child) touches nothing.
 *
 *   generation g, owner none ──(a process claims: compare-and-swap none → its pid; imports the
 *        ▲                     slot's state first when g is newer than its own copy's)
 *        │                                   │
 *        └──(the owner stops using it: exit, or the state given back before exec fails:
 *            exports into the slot, g + 1, owner none)◀──┘
 *
 * A claim that finds another owner tells why it cannot be had: that process is alive (two
 * processes interleaving on one connection), or it ended without giving the state back (_exit,
 * a signal, a program exec'd with it): the state is lost. The caller fails the connection in its
 * own process, without a byte on the wire; the owner keeps working.
 *
 * Owns the regions, their slots and the atomics of the owner word. Must never be reached on the
 * path of a record once a process owns a slot (the connection's `shared` flag is then clear),
 * and must never leave a slot's state readable once it is superseded (it is overwritten by the
 * next export; a region is unmapped when the last connection of this process using it goes).
 */
#ifndef MT_CORE_RELAY_H
#define MT_CORE_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct mt_relay_region;

/* A connection's place in a region (all zero: not relayed). */
struct mt_relay_link {
    struct mt_relay_region *region;
    unsigned index;
    uint32_t generation; /* the generation this process's copy of the state is */
};

/*
 * In the forking process (pid), before fork: gives each established connection without one a
 * slot, and frees the slots it owns (parent and child then hold the same, current state).
 */
void mt_relay_before_fork(pid_t pid);

enum mt_relay_claim {
    MT_RELAY_CURRENT, /* claimed, and this process's copy is the newest state */
    MT_RELAY_NEWER,   /* claimed; import *state first (then mt_relay_imported) */
    MT_RELAY_BUSY,    /* *other, a live process, uses it now */
    MT_RELAY_LOST,    /* *other ended while it used it, without giving the state back */
};

/* Claims link's slot for this process (pid). */
enum mt_relay_claim mt_relay_claim(struct mt_relay_link *link, pid_t pid, pid_t *other,
                                   const unsigned char **state, size_t *length);

/* The slot's state was imported: this process's copy is now its generation. */
void mt_relay_imported(struct mt_relay_link *link);

/* Room for the export that gives the state back (the owner only), and how much. */
unsigned char *mt_relay_room(const struct mt_relay_link *link, size_t *capacity);

/*
 * Gives the state back: the export of length bytes is in the room, its generation follows this
 * copy's and the slot has no owner. A length of 0 means the export failed: the slot is marked
 * lost (by this pid), so the next user fails closed instead of importing stale state.
 */
void mt_relay_give_back(struct mt_relay_link *link, pid_t pid, size_t length);

/* Whether this process (pid) owns link's slot. */
bool mt_relay_is_owner(const struct mt_relay_link *link, pid_t pid);

/* The connection is gone from this process: its region is unmapped with its last one. */
void mt_relay_unlink(struct mt_relay_link *link);

#endif
