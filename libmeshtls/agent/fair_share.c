/*
 * Fair shares of the agent's client slots (see fair_share.h).
 *
 * Owns the one decision "where does a new connection go": admit, evict someone else's idle
 * connection, or refuse. It must never evict a connection whose request is being answered (the
 * work is done; only the reply is left), never evict for a uid that already holds its share, and
 * never evict from a uid that would then hold fewer slots than the newcomer.
 */
#include <stdlib.h>

#include "fair_share.h"

size_t mt_fair_share_limit(size_t slots)
{
    size_t share = slots / 8;
    if (share < MT_FAIR_SHARE_MIN)
        share = MT_FAIR_SHARE_MIN;
    return share < slots ? share : slots;
}

static int compare_uids(const void *left, const void *right)
{
    uid_t a = *(const uid_t *)left;
    uid_t b = *(const uid_t *)right;
    return (a > b) - (a < b);
}

/* The uid holding the most used slots (the lowest uid among equals), by sorting a copy. */
static void find_heaviest(const struct mt_fair_share_slot *slots, size_t count,
                          struct mt_fair_share_choice *choice)
{
    choice->heaviest_held = 0;
    uid_t *uids = malloc(count * sizeof(*uids));
    if (uids == NULL)
        return;
    size_t used = 0;
    for (size_t i = 0; i < count; i++)
        if (slots[i].used)
            uids[used++] = slots[i].uid;
    qsort(uids, used, sizeof(*uids), compare_uids);
    for (size_t start = 0, end = 0; start < used; start = end) {
        while (end < used && uids[end] == uids[start])
            end++;
        if (end - start > choice->heaviest_held) {
            choice->heaviest_held = end - start;
            choice->heaviest_uid = uids[start];
        }
    }
    free(uids);
}

void mt_fair_share_decide(const struct mt_fair_share_slot *slots, size_t count, uid_t uid,
                          struct mt_fair_share_choice *choice)
{
    *choice = (struct mt_fair_share_choice){.decision = MT_FAIR_SHARE_REFUSE_FULL};
    choice->share = mt_fair_share_limit(count);
    bool has_free = false;
    for (size_t i = 0; i < count; i++) {
        if (!slots[i].used && !has_free) {
            has_free = true;
            choice->slot = i;
        }
        if (slots[i].used && slots[i].uid == uid)
            choice->held++;
    }
    if (has_free) {
        choice->decision = MT_FAIR_SHARE_ADMIT;
        return;
    }
    if (choice->held >= choice->share) {
        choice->decision = MT_FAIR_SHARE_REFUSE_OVER_SHARE;
        return;
    }
    find_heaviest(slots, count, choice);
    /* After the eviction the heaviest must still hold at least as many as the newcomer. */
    if (choice->heaviest_held < choice->held + 2)
        return;
    bool found = false;
    for (size_t i = 0; i < count; i++) {
        const struct mt_fair_share_slot *slot = &slots[i];
        if (!slot->used || !slot->waiting || slot->uid != choice->heaviest_uid)
            continue;
        if (!found || slot->since_ms < slots[choice->slot].since_ms) {
            choice->slot = i;
            found = true;
        }
    }
    if (found)
        choice->decision = MT_FAIR_SHARE_EVICT;
}
