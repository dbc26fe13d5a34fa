/*
 * How many bytes of executables the agent hashes for each uid, and for the node.
 *
 * Hashing runs in the agent's one event loop: a file of MT_ATTEST_SHA256_MAX_BYTES holds every
 * other caller for a large fraction of a second. A user who changes its own executable between
 * requests (touch moves ctime, so the cache misses) could ask for that again and again. Each uid
 * may therefore have MT_HASH_BUDGET_UID_BYTES hashed per window of MT_HASH_BUDGET_WINDOW_MS, and
 * all uids together MT_HASH_BUDGET_NODE_BYTES; a window starts at its first charge. Beyond that,
 * or when MT_HASH_BUDGET_UIDS uids already have a window running, the hash is not computed (the
 * caller's sha256 rules do not match) until the window ends. Cache hits cost nothing.
 *
 *   uid's window   node's window   table                    decision
 *   spent + n <= U spent + n <= N  uid has or gets an entry GRANTED (both charged n)
 *   spent + n > U  any             any                      UID_SPENT
 *   fits           spent + n > N   any                      NODE_SPENT
 *   fits           fits            no entry free            TOO_MANY_UIDS
 *
 * Pure functions over a table the caller keeps; no I/O, the clock is passed in.
 */
#ifndef MT_AGENT_HASH_BUDGET_H
#define MT_AGENT_HASH_BUDGET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define MT_HASH_BUDGET_WINDOW_MS 60000
/* Two hashes of the largest executable the agent hashes (attest.h), per uid and minute. */
#define MT_HASH_BUDGET_UID_BYTES (256ull * 1024 * 1024)
/* About a second or two of hashing per minute for the whole node, whoever asks. */
#define MT_HASH_BUDGET_NODE_BYTES (1024ull * 1024 * 1024)
#define MT_HASH_BUDGET_UIDS 64

struct mt_hash_budget_window {
    bool used;
    uid_t uid;
    long long start_ms;
    uint64_t spent;
};

struct mt_hash_budget {
    struct mt_hash_budget_window uids[MT_HASH_BUDGET_UIDS];
    struct mt_hash_budget_window node;
};

enum mt_hash_budget_decision {
    MT_HASH_BUDGET_GRANTED,
    MT_HASH_BUDGET_UID_SPENT,
    MT_HASH_BUDGET_NODE_SPENT,
    MT_HASH_BUDGET_TOO_MANY_UIDS,
};

/* Decides whether bytes more may be hashed for uid at now_ms, and charges them when granted. */
enum mt_hash_budget_decision mt_hash_budget_charge(struct mt_hash_budget *budget, uid_t uid,
                                                   uint64_t bytes, long long now_ms);

/*
 * Gives back bytes of a grant to uid at now_ms that were not read after all (the file ended
 * before the size it was charged for), so that what stays charged is what was read. Windows
 * that have ended since are left alone; never below zero.
 */
void mt_hash_budget_refund(struct mt_hash_budget *budget, uid_t uid, uint64_t bytes,
                           long long now_ms);

/* What uid has spent in its current window (0 when it has none running at now_ms). */
uint64_t mt_hash_budget_spent(const struct mt_hash_budget *budget, uid_t uid, long long now_ms);

#endif
