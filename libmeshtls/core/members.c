/*
 * The mesh membership in this process (members.h): the set mapped from the agent, the
 * destinations remembered meshed, and the "auto" decision at connect().
 *
 * Owns the mapping and when it is replaced. It must never decide plaintext for a destination
 * remembered meshed unless a published set removed it, never treat an agent it cannot reach as
 * an empty set, never make a system call on a connect() that needs no new set (the checks are a
 * clock read from the vDSO and a memory load), and never keep a pointer into a mapping it may
 * unmap: identity patterns used by connections are copied into a text area that lives as long as
 * the process.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "../identity/client.h"
#include "../metrics/metrics.h"
#include "../policy/membership.h"
#include "../util/addr.h"
#include "../util/log.h"
#include "../util/sys.h"
#include "members.h"

#define FIRST_WAIT_RETRY_MS 100
#define PATTERN_TEXT_MAX 65536
#define REASON_MAX 600

struct remembered {
    unsigned family;
    uint8_t address[16];
    uint16_t port;
    const char *identity; /* in pattern_text, or NULL */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *mapping;
static size_t mapping_size;
static struct mt_membership_view view;
static long long fetched_ms;
static long long next_attempt_ms;
static bool asked_once;
static bool said_none;
static bool waited_complete; /* the one wait for an incomplete set to complete is spent */
static bool said_incomplete;
static struct remembered remembered[MT_MEMBERS_REMEMBERED_MAX];
static size_t remembered_count;
static bool said_full;
static char pattern_text[PATTERN_TEXT_MAX];
static size_t pattern_text_length;

/* ---- the set ------------------------------------------------------------------------------- */

/* A set only the agent could have written: sealed against writes and resizing by anyone. */
static bool is_sealed(int fd)
{
    int seals = mt_sys_fcntl(fd, F_GET_SEALS, 0);
    int needed = F_SEAL_SHRINK | F_SEAL_GROW;
    return seals >= 0 && (seals & needed) == needed &&
           (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) != 0;
}

/* With lock held: maps the set in fd (closed here) in place of the one in hand. */
static MT_RESULT adopt_locked(int fd, struct mt_text *reason)
{
    struct stat status;
    void *mapped = MAP_FAILED;
    size_t size = 0;
    mt_result result = mt_result_of(MT_ERR_MEMBERSHIP);
    if (!is_sealed(fd)) {
        mt_text_set(reason, "the membership set is not sealed against writing");
        goto out;
    }
    if (fstat(fd, &status) != 0 || status.st_size <= 0) {
        mt_text_set(reason, "the membership set has no size");
        goto out;
    }
    size = (size_t)status.st_size;
    mapped = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    if (mapped == MAP_FAILED) {
        mt_text_set(reason, "cannot map the membership set: %s", strerror(errno));
        result = mt_result_of(MT_ERR_IO);
        goto out;
    }
    struct mt_membership_view opened;
    result = mt_membership_view_open(mapped, size, &opened);
    if (!mt_result_is_ok(result)) {
        mt_text_set(reason, "the agent's membership set is malformed");
        goto out;
    }
    if (mapping != NULL)
        munmap(mapping, mapping_size);
    mapping = mapped;
    mapping_size = size;
    view = opened;
    mapped = MAP_FAILED;
out:
    if (mapped != MAP_FAILED)
        munmap(mapped, size);
    mt_sys_close(fd);
    return result;
}

/* With lock held: asks the agent for its set once; the set in hand stays on any failure. */
static MT_RESULT ask_locked(const struct mt_config *config, struct mt_text *reason)
{
    int fd = -1;
    uint64_t generation = 0;
    MT_GUARD(mt_identity_membership_file(config->agent_socket, (uid_t)config->agent_uid,
                                         (int)config->agent_timeout_ms, &fd, &generation, reason));
    MT_GUARD(adopt_locked(fd, reason));
    return MT_OK_RESULT;
}

static bool is_due_locked(long long now)
{
    if (now < next_attempt_ms)
        return false;
    if (mapping == NULL)
        return true;
    /* An incomplete set (the agent has not read all its sources yet) is asked for again sooner. */
    long long period = view.complete ? MT_MEMBERS_REFRESH_MS : MT_MEMBERS_RETRY_MS;
    return mt_membership_is_superseded(&view) || now - fetched_ms >= period;
}

/*
 * With lock held: a set as fresh as the rules of members.h ask. The first ask waits up to
 * agent_wait_ms for an agent that is not reachable yet; an agent that answers without a set
 * (none configured, or older than the request) is not waited for.
 */
static void refresh_locked(const struct mt_config *config)
{
    long long now = mt_sys_now_ms();
    if (!is_due_locked(now))
        return;
    char text[REASON_MAX] = "";
    struct mt_text reason = mt_text_on(text, sizeof(text));
    long long until = now + (asked_once ? 0 : (long long)config->agent_wait_ms);
    asked_once = true;
    uint64_t before = mapping != NULL ? view.generation : 0;
    mt_result result;
    for (;;) {
        result = ask_locked(config, &reason);
        if (mt_result_is_ok(result) || result.error != MT_ERR_AGENT_UNREACHABLE ||
            mt_sys_remaining_ms(until) <= 0)
            break;
        struct timespec pause = {0, FIRST_WAIT_RETRY_MS * 1000000L};
        nanosleep(&pause, NULL);
    }
    now = mt_sys_now_ms();
    if (mt_result_is_ok(result)) {
        fetched_ms = now;
        next_attempt_ms = 0;
        said_none = false;
        if (view.generation != before)
            mt_log_info("mesh membership generation %llu: %u entries",
                        (unsigned long long)view.generation, (unsigned)view.entry_count);
        return;
    }
    next_attempt_ms = now + MT_MEMBERS_RETRY_MS;
    if (mapping != NULL) {
        mt_log_debug("keeping mesh membership generation %llu: %s",
                     (unsigned long long)view.generation, text);
        /* Not asked again before the refresh period, unless the set says it is superseded. */
        fetched_ms = now;
        return;
    }
    if (!said_none)
        mt_log_warn("no mesh membership from the agent at %s: %s; outbound mode auto sends "
                    "plaintext to every destination not already reached over mTLS",
                    config->agent_socket, text);
    said_none = true;
}

/*
 * With lock held: before a destination the set in hand does not know is sent plaintext, a set
 * the agent flagged incomplete (its Kubernetes source has not listed yet) is waited on, once per
 * process and for at most agent_wait_ms, for the complete set that may list it. After that the
 * process goes on with what it has, with one warning: the same as an agent that has no set.
 */
static void await_complete_locked(const struct mt_config *config)
{
    if (mapping == NULL || view.complete || waited_complete)
        return;
    waited_complete = true;
    long long until = mt_sys_now_ms() + (long long)config->agent_wait_ms;
    char text[REASON_MAX] = "";
    struct mt_text reason = mt_text_on(text, sizeof(text));
    while (!view.complete && mt_sys_remaining_ms(until) > 0) {
        struct timespec pause = {0, FIRST_WAIT_RETRY_MS * 1000000L};
        nanosleep(&pause, NULL);
        if (mt_membership_is_superseded(&view) && mt_result_is_ok(ask_locked(config, &reason)))
            fetched_ms = mt_sys_now_ms();
    }
    if (view.complete) {
        mt_log_info("mesh membership generation %llu: complete, %u entries",
                    (unsigned long long)view.generation, (unsigned)view.entry_count);
        return;
    }
    if (!said_incomplete)
        mt_log_warn("the agent's mesh membership is still incomplete after %u ms (its sources "
                    "have not all been read); outbound mode auto sends plaintext to destinations "
                    "it does not list yet",
                    config->agent_wait_ms);
    said_incomplete = true;
}

/* ---- what this process remembers ---------------------------------------------------------- */

/* With lock held: pattern copied into pattern_text (once per distinct pattern), or NULL. */
static const char *intern_locked(const char *pattern, size_t length)
{
    for (size_t at = 0; at < pattern_text_length;) {
        size_t existing = strlen(pattern_text + at);
        if (existing == length && memcmp(pattern_text + at, pattern, length) == 0)
            return pattern_text + at;
        at += existing + 1;
    }
    if (pattern_text_length + length + 1 > sizeof(pattern_text))
        return NULL;
    char *copy = pattern_text + pattern_text_length;
    memcpy(copy, pattern, length);
    copy[length] = '\0';
    pattern_text_length += length + 1;
    return copy;
}

/* The destination as remembered: family, address (v4-mapped IPv6 as IPv4) and port. */
static bool destination_key(const struct sockaddr_storage *destination, struct remembered *key)
{
    memset(key, 0, sizeof(*key));
    key->port = mt_addr_port(destination);
    if (destination->ss_family == AF_INET) {
        key->family = MT_MEMBERSHIP_FAMILY_IPV4;
        memcpy(key->address, &((const struct sockaddr_in *)destination)->sin_addr, 4);
        return true;
    }
    if (destination->ss_family != AF_INET6)
        return false;
    const struct in6_addr *v6 = &((const struct sockaddr_in6 *)destination)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(v6)) {
        key->family = MT_MEMBERSHIP_FAMILY_IPV4;
        memcpy(key->address, v6->s6_addr + 12, 4);
    } else {
        key->family = MT_MEMBERSHIP_FAMILY_IPV6;
        memcpy(key->address, v6->s6_addr, 16);
    }
    return true;
}

static struct remembered *find_locked(const struct remembered *key)
{
    for (size_t i = 0; i < remembered_count; i++) {
        struct remembered *slot = &remembered[i];
        if (slot->family == key->family && slot->port == key->port &&
            memcmp(slot->address, key->address, sizeof(slot->address)) == 0)
            return slot;
    }
    return NULL;
}

static void remember_locked(const struct remembered *key, const char *identity)
{
    struct remembered *slot = find_locked(key);
    if (slot == NULL && remembered_count < MT_MEMBERS_REMEMBERED_MAX)
        slot = &remembered[remembered_count++];
    if (slot == NULL) {
        if (!said_full)
            mt_log_warn("more than %d destinations reached over mTLS by membership: the newest "
                        "are not remembered (a later removal or a lost agent may make them "
                        "plaintext)",
                        MT_MEMBERS_REMEMBERED_MAX);
        said_full = true;
        return;
    }
    *slot = *key;
    slot->identity = identity;
}

static void forget_locked(const struct remembered *key)
{
    struct remembered *slot = find_locked(key);
    if (slot != NULL)
        *slot = remembered[--remembered_count];
}

/* ---- the decision -------------------------------------------------------------------------- */

/* An identity pattern that matches no SPIFFE ID: a server is then refused, never unchecked. */
static const char unmatchable_identity[] = "";

void mt_members_decide(const struct mt_config *config, const struct sockaddr_storage *destination,
                       struct mt_outbound_decision *decision)
{
    if (config == NULL || destination == NULL || decision == NULL ||
        decision->mode != MT_OUTBOUND_AUTO)
        return;
    struct remembered key;
    if (!destination_key(destination, &key)) {
        decision->mode = MT_OUTBOUND_PLAIN;
        return;
    }
    pthread_mutex_lock(&lock);
    refresh_locked(config);
    const char *identity = NULL;
    size_t identity_length = 0;
    enum mt_membership_verdict verdict =
        mapping != NULL ? mt_membership_lookup(&view, destination, &identity, &identity_length)
                        : MT_MEMBERSHIP_ABSENT;
    if (verdict == MT_MEMBERSHIP_ABSENT && mapping != NULL && !view.complete && !waited_complete) {
        await_complete_locked(config);
        verdict = mt_membership_lookup(&view, destination, &identity, &identity_length);
    }
    struct remembered *known = find_locked(&key);
    struct mt_auto_decision chosen = mt_policy_decide_auto(verdict, known != NULL);
    const char *expected = known != NULL ? known->identity : NULL;
    if (verdict == MT_MEMBERSHIP_MEMBER) {
        expected = identity != NULL ? intern_locked(identity, identity_length) : NULL;
        /* Too many distinct patterns to keep: refuse the server rather than check nothing. */
        if (identity != NULL && expected == NULL)
            expected = unmatchable_identity;
    }
    if (chosen.remember)
        remember_locked(&key, expected);
    if (chosen.forget)
        forget_locked(&key);
    pthread_mutex_unlock(&lock);

    decision->mode = chosen.mode;
    decision->by_membership = true;
    decision->expected_identity = chosen.mode == MT_OUTBOUND_MTLS ? expected : NULL;
    if (chosen.mode == MT_OUTBOUND_PLAIN)
        mt_metrics_outbound_plain(destination);
    if (chosen.mode == MT_OUTBOUND_PLAIN && mt_log_is_enabled(MT_LOG_INFO)) {
        char peer[MT_ADDR_TEXT_MAX];
        mt_addr_format(destination, peer, sizeof(peer));
        mt_log_info("plaintext outbound to %s (mode auto): %s", peer,
                    chosen.forget ? "removed from the mesh membership"
                                  : "not in the mesh membership");
    }
}

void mt_members_after_fork_child(void)
{
    pthread_mutex_init(&lock, NULL);
}
