/*
 * Fair shares of the agent's client slots between uids.
 *
 * The agent serves every local user through one table of connections. While the table has room
 * anyone may take it (an idle table helps nobody). When it is full, a connection from a uid
 * holding fewer than its share (mt_fair_share_limit) takes the place of the oldest connection,
 * still waiting for its request, of the uid holding the most slots, provided that uid holds at
 * least two more than the newcomer's; otherwise the newcomer is refused. One uid holding idle
 * connections can then delay only its own requests, never another user's.
 *
 *   table  newcomer's uid holds  uid holding the most                   decision
 *   room   any                   any                                    ADMIT into a free slot
 *   full   >= its share          any                                    REFUSE_OVER_SHARE
 *   full   n < its share         m >= n + 2, one connection waiting     EVICT the oldest waiting
 *   full   n < its share         otherwise                              REFUSE_FULL
 *
 * Pure functions over a view of the table that the server builds; no I/O, no clock.
 */
#ifndef MT_AGENT_FAIR_SHARE_H
#define MT_AGENT_FAIR_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A uid's share is an eighth of the table, and never fewer than this many slots. */
#define MT_FAIR_SHARE_MIN 8

struct mt_fair_share_slot {
    bool used;
    bool waiting;       /* still reading its request (no work done for it yet): may be evicted */
    uid_t uid;          /* the connecting process's uid (SO_PEERCRED) */
    long long since_ms; /* when it was accepted */
};

enum mt_fair_share_decision {
    MT_FAIR_SHARE_ADMIT,
    MT_FAIR_SHARE_EVICT,
    MT_FAIR_SHARE_REFUSE_OVER_SHARE,
    MT_FAIR_SHARE_REFUSE_FULL,
};

struct mt_fair_share_choice {
    enum mt_fair_share_decision decision;
    size_t slot;          /* ADMIT: a free slot; EVICT: the slot to close and reuse */
    size_t held;          /* slots the newcomer's uid holds */
    size_t share;         /* what a uid may hold in a full table */
    uid_t heaviest_uid;   /* EVICT: whose connection is closed */
    size_t heaviest_held; /* and how many slots that uid holds */
};

/* The share of one uid in a table of slots: max(slots / 8, MT_FAIR_SHARE_MIN), at most slots. */
size_t mt_fair_share_limit(size_t slots);

/* Where a new connection of uid goes in the table slots[0 .. count). */
void mt_fair_share_decide(const struct mt_fair_share_slot *slots, size_t count, uid_t uid,
                          struct mt_fair_share_choice *choice);

#endif
