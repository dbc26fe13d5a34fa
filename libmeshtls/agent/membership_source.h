// (Line comments: the patterns below contain a slash-star.)
// The mesh membership the agent publishes (policy/membership.h), from a static file for hosts
// outside Kubernetes, reloaded when the file changes:
//
//     membership = (
//       { cidr = "10.1.0.0/16"; ports = (8080, "9000-9100"); id = "ns/shop/sa/*"; },
//       { cidr = "2001:db8::7"; },
//     );
//
// cidr (required) an IPv4 or IPv6 address or CIDR with its host bits zero; ports (absent: every
// port) ports and "FIRST-LAST" ranges, a list ( ) to mix the two; id (absent: any identity of
// the trust domain) the server's identity path below the trust domain, or a whole spiffe://
// pattern, "/*" at the end for every identity below it.
//
// The file is polled like the issuer's (every MT_MEMBERSHIP_SOURCE_POLL_MS, a change of device,
// inode, size or modification time). A file that becomes malformed keeps the last good set
// published, with one error line naming file, line and key. Each good load is published as a new
// generation in a new sealed memfd; what was live before and is not any more becomes a
// tombstone (MT_MEMBERSHIP_STATE_REMOVED) in every later generation of this agent, so that a
// workload can tell "removed" from "not known" and only ever downgrades on the former.
//
// In Kubernetes the agent has a second source, the API server's pods and Services (kube_watch.h):
// each generation then holds the file's entries and the API server's, and what either drops
// becomes a tombstone; until the API server has listed both, the set is flagged not complete.
#ifndef MT_AGENT_MEMBERSHIP_SOURCE_H
#define MT_AGENT_MEMBERSHIP_SOURCE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "../policy/membership.h"
#include "../util/text.h"

#define MT_MEMBERSHIP_SOURCE_POLL_MS 2000
/* Tombstones kept (the oldest dropped first): a removal older than that reads as "unknown". */
#define MT_MEMBERSHIP_SOURCE_TOMBSTONES_MAX 4096

struct mt_membership_source {
    char path[PATH_MAX];
    char trust_domain[256];
    bool present; /* the file's signature when last loaded or tried */
    dev_t device;
    ino_t inode;
    off_t size;
    struct timespec modified;
    long long next_poll_ms;
    struct mt_membership_entry *live; /* published: the file's and the API server's */
    size_t live_count;
    struct mt_membership_entry *file_live; /* the file's last good load */
    size_t file_live_count;
    struct mt_membership_entry *kube_live; /* the API server's last set (kube_watch.h) */
    size_t kube_live_count;
    bool has_kube;      /* the API server is a source: the set is complete once it listed */
    bool kube_complete; /* it listed pods and Services whole at least once */
    struct mt_membership_entry *removed; /* tombstones, oldest first */
    size_t removed_count;
    uint64_t generation;
    int memfd;          /* the set published now; -1 before the first */
    uint8_t *published; /* its mapping, writable by the agent only (for `superseded`) */
    size_t published_size;
};

/* Loads path (entries' id within trust_domain) and publishes generation 1; an error says
 * FILE:LINE: KEY: what is wrong, and nothing is published. */
MT_RESULT mt_membership_source_open(struct mt_membership_source *source, const char *path,
                                    const char *trust_domain, long long now_ms,
                                    struct mt_text *reason);

/*
 * The same with the Kubernetes API server as a second source (path NULL: none but it):
 * generation 1 holds the file's entries, flagged not complete until mt_membership_source_set_kube
 * says the API server's lists were read whole.
 */
MT_RESULT mt_membership_source_open_kube(struct mt_membership_source *source, const char *path,
                                         const char *trust_domain, long long now_ms,
                                         struct mt_text *reason);

/*
 * Publishes the file's entries with entries (the API server's, taken over on success) as the
 * next generation; what either source no longer has becomes a tombstone. On error (too many
 * entries, no memory) the last set stays published and entries stay the caller's.
 */
MT_RESULT mt_membership_source_set_kube(struct mt_membership_source *source,
                                        struct mt_membership_entry *entries, size_t count,
                                        bool complete, struct mt_text *reason);

/* Reloads when the file changed and MT_MEMBERSHIP_SOURCE_POLL_MS have passed since the last look;
 * a source never opened does nothing. */
void mt_membership_source_poll(struct mt_membership_source *source, long long now_ms);

/* Milliseconds until the next poll is due, or INT_MAX without a source. */
int mt_membership_source_poll_timeout(const struct mt_membership_source *source, long long now_ms);

/* A new read-only descriptor of the set published now (close-on-exec), or -1 without one. */
int mt_membership_source_reader_fd(const struct mt_membership_source *source);

/* Marks the set published now superseded (its readers ask the next agent) and frees it all. */
void mt_membership_source_close(struct mt_membership_source *source);

#endif
