/*
 * The Kubernetes API server as a source of mesh membership: LIST then WATCH of /api/v1/pods and
 * /api/v1/services, cluster-wide, on a thread of its own, handing each new set of member entries
 * (kube_members.h) to the event loop, which publishes it (membership_source.h).
 *
 *     what happens                           what the watch does
 *     ------------------------------------   -----------------------------------------------
 *     start                                  LIST each kind in pages of MT_KUBE_WATCH_PAGE
 *                                            (limit/continue), then WATCH from the list's
 *                                            resourceVersion, bookmarks asked for
 *     an event (ADDED, MODIFIED, DELETED)    the state changes; the members are handed over at
 *                                            most every MT_KUBE_WATCH_COALESCE_MS
 *     BOOKMARK                               the resourceVersion moves on
 *     the watch ends (timeoutSeconds)        WATCH again from the last resourceVersion
 *     410 Gone (HTTP, or an ERROR event      LIST again and replace that kind's state whole:
 *     whose Status has code 410)             what vanished is a removal
 *     any other failure                      the same request again after a backoff of
 *                                            MT_KUBE_WATCH_BACKOFF_MIN_MS doubling to _MAX_MS;
 *                                            the last set stays published meanwhile
 *
 * Until both kinds have been listed once the hand-over says "not complete". The bearer token is
 * read from its file for every request (projected tokens rotate) and wiped after; the HTTPS
 * rules are the kubelet client's (kubelet.h: the CA file only, host verified, https only, no
 * proxy, no redirect). Each watch line is capped at MT_KUBE_WATCH_EVENT_MAX bytes and each list
 * page at MT_KUBE_WATCH_PAGE_BYTES_MAX.
 */
#ifndef MT_AGENT_KUBE_WATCH_H
#define MT_AGENT_KUBE_WATCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "../policy/membership.h"
#include "../util/result.h"
#include "../util/text.h"

#define MT_KUBE_WATCH_PAGE 500
#define MT_KUBE_WATCH_PAGE_BYTES_MAX (64u * 1024u * 1024u)
#define MT_KUBE_WATCH_EVENT_MAX (4u * 1024u * 1024u)
#define MT_KUBE_WATCH_TIMEOUT_SECONDS 300 /* the server ends a watch after this; we re-watch */
#define MT_KUBE_WATCH_LIST_TIMEOUT_MS 60000
#define MT_KUBE_WATCH_CONNECT_TIMEOUT_MS 10000
#define MT_KUBE_WATCH_COALESCE_MS 200
#define MT_KUBE_WATCH_BACKOFF_MIN_MS 500
#define MT_KUBE_WATCH_BACKOFF_MAX_MS 30000

struct mt_kube_watch {
    /* Set by mt_kube_watch_start, read-only after. */
    const char *url; /* https://host:port, the API server */
    const char *token_file;
    const char *ca_file;
    const char *trust_domain;
    int wake_fd; /* an eventfd the loop polls: readable when entries are ready */
    void *multi; /* the thread's CURLM; mt_kube_watch_stop wakes it */
    atomic_bool stopping;
    pthread_t thread;
    bool started;
    /* Shared with the thread, under lock. */
    pthread_mutex_t lock;
    struct mt_membership_entry *pending;
    size_t pending_count;
    bool has_pending;
    bool pending_complete; /* both kinds listed at least once */
};

/*
 * Starts the thread (the caller has blocked the signals it reads from a signalfd: the thread
 * inherits the mask). url, token_file, ca_file and trust_domain must outlive watch.
 */
MT_RESULT mt_kube_watch_start(struct mt_kube_watch *watch, const char *url, const char *token_file,
                              const char *ca_file, const char *trust_domain,
                              struct mt_text *reason);

/* The descriptor to poll for POLLIN, or -1 when not started. */
int mt_kube_watch_fd(const struct mt_kube_watch *watch);

/*
 * The newest entries the thread handed over, if any since the last call (the caller frees
 * *entries): true then, with *complete whether both kinds were listed.
 */
bool mt_kube_watch_take(struct mt_kube_watch *watch, struct mt_membership_entry **entries,
                        size_t *count, bool *complete);

/* Stops the thread (within about a second) and frees everything; a watch never started is
 * left alone. */
void mt_kube_watch_stop(struct mt_kube_watch *watch);

#endif
