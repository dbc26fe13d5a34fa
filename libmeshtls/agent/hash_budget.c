/*
 * The agent's hashing budget (see hash_budget.h).
 *
 * Owns the decision "may this executable be hashed now". It must never grant bytes beyond a
 * uid's or the node's window, never let a uid start a new window by pushing out another uid's
 * running one, never charge what it refused, and never keep charged what a refund says was not
 * read.
 */
#include <stddef.h>

#include "hash_budget.h"

static bool is_running(const struct mt_hash_budget_window *window, long long now_ms)
{
    return window->used && now_ms - window->start_ms < MT_HASH_BUDGET_WINDOW_MS &&
           now_ms >= window->start_ms;
}

/* The spent bytes of a window at now_ms: 0 once it has ended. */
static uint64_t spent_at(const struct mt_hash_budget_window *window, long long now_ms)
{
    return is_running(window, now_ms) ? window->spent : 0;
}

/* uid's window, or a free (or ended) entry for it; NULL when every entry runs for another uid. */
static struct mt_hash_budget_window *find_window(struct mt_hash_budget *budget, uid_t uid,
                                                 long long now_ms)
{
    struct mt_hash_budget_window *free_entry = NULL;
    for (size_t i = 0; i < MT_HASH_BUDGET_UIDS; i++) {
        struct mt_hash_budget_window *window = &budget->uids[i];
        if (window->used && window->uid == uid)
            return window;
        if (free_entry == NULL && !is_running(window, now_ms))
            free_entry = window;
    }
    return free_entry;
}

static void charge(struct mt_hash_budget_window *window, uid_t uid, uint64_t bytes,
                   long long now_ms)
{
    if (!is_running(window, now_ms))
        *window = (struct mt_hash_budget_window){
            .used = true, .uid = uid, .start_ms = now_ms, .spent = 0};
    window->spent += bytes;
}

enum mt_hash_budget_decision mt_hash_budget_charge(struct mt_hash_budget *budget, uid_t uid,
                                                   uint64_t bytes, long long now_ms)
{
    struct mt_hash_budget_window *window = find_window(budget, uid, now_ms);
    uint64_t uid_spent = window != NULL && window->uid == uid ? spent_at(window, now_ms) : 0;
    if (bytes > MT_HASH_BUDGET_UID_BYTES || uid_spent > MT_HASH_BUDGET_UID_BYTES - bytes)
        return MT_HASH_BUDGET_UID_SPENT;
    uint64_t node_spent = spent_at(&budget->node, now_ms);
    if (bytes > MT_HASH_BUDGET_NODE_BYTES || node_spent > MT_HASH_BUDGET_NODE_BYTES - bytes)
        return MT_HASH_BUDGET_NODE_SPENT;
    if (window == NULL)
        return MT_HASH_BUDGET_TOO_MANY_UIDS;
    if (window->uid != uid)
        window->used = false;
    charge(window, uid, bytes, now_ms);
    charge(&budget->node, 0, bytes, now_ms);
    return MT_HASH_BUDGET_GRANTED;
}

static void refund(struct mt_hash_budget_window *window, uint64_t bytes, long long now_ms)
{
    if (is_running(window, now_ms))
        window->spent -= bytes < window->spent ? bytes : window->spent;
}

void mt_hash_budget_refund(struct mt_hash_budget *budget, uid_t uid, uint64_t bytes,
                           long long now_ms)
{
    for (size_t i = 0; i < MT_HASH_BUDGET_UIDS; i++)
        if (budget->uids[i].used && budget->uids[i].uid == uid)
            refund(&budget->uids[i], bytes, now_ms);
    refund(&budget->node, bytes, now_ms);
}

uint64_t mt_hash_budget_spent(const struct mt_hash_budget *budget, uid_t uid, long long now_ms)
{
    for (size_t i = 0; i < MT_HASH_BUDGET_UIDS; i++)
        if (budget->uids[i].used && budget->uids[i].uid == uid)
            return spent_at(&budget->uids[i], now_ms);
    return 0;
}
