/*
 * The mesh membership as the agent publishes it: a fixed, versioned binary layout in a sealed
 * memfd that workloads map read-only, and the lookup of a destination in it.
 *
 *     answer of mt_membership_lookup     when
 *     ------------------------------     ----------------------------------------------------
 *     MT_MEMBERSHIP_MEMBER               a live entry covers the address and port: the first
 *                                        live host entry (/32, /128) that does, in the set's
 *                                        order; else the first live CIDR entry that does. A
 *                                        host entry names one endpoint, so its identity
 *                                        pattern is more specific than a CIDR's and wins
 *     MT_MEMBERSHIP_REMOVED              no live entry does, a tombstone (host or CIDR) does:
 *                                        the agent saw the destination leave the mesh. A live
 *                                        entry anywhere wins over any tombstone
 *     MT_MEMBERSHIP_ABSENT               neither: never known to this set
 *
 * Layout version 2 (host byte order: the agent and its workloads share one kernel and one CPU):
 *
 *     header      32 bytes   magic "MTMB" | layout version u32 | generation u64 |
 *                            entry count u32 | flags u32 | superseded u32 | host first u32
 *     entries     entry count × 32 bytes, each
 *                            family u8 (4 or 6) | prefix length u8 | state u8 (1 live,
 *                            2 removed) | reserved u8 | first port u16 | last port u16 |
 *                            address 16 bytes (network order; 4 used for IPv4, host bits
 *                            zero) | identity offset u32 | identity length u16 (0: none) |
 *                            reserved u16
 *     identities the rest of the set: the entries' identity patterns (SPIFFE ID patterns, not
 *                            NUL-terminated), each at its offset from here; entries may share
 *
 * Entries are small and their identities apart so that a set of 65 536 entries is a few MiB, not
 * 34: every workload maps each generation and checks it whole, page by page.
 *
 * Order of the entries (version 2): [0, host first) are the CIDR entries (prefix shorter than
 * the address), in the order the agent's sources gave them; [host first, entry count) are the
 * host entries, sorted by family, then address (its 4 or 16 bytes, compared as unsigned
 * bytes), then first port, ties in any order. A destination is found among the host entries by
 * binary search (O(log n): with one entry per meshed pod and service the set holds 10 000+) and
 * among the CIDR entries, few, written by hand, by a scan. The reader refuses a set whose
 * entries are out of this order, as it refuses any other wrong byte.
 *
 * A set is never rewritten: the agent publishes each generation in a new memfd, sealed against
 * writing, growing and shrinking by anyone else (F_SEAL_FUTURE_WRITE), and then only ever
 * stores into the old one's `superseded` word, through the mapping it kept, to tell the readers
 * that a newer generation exists. So a reader never sees a half-written entry, and learns of a
 * change by one memory load, with no system call per connection.
 *
 * The reader trusts nothing in the bytes: mt_membership_view_open checks the header and every
 * entry against the size of the mapping before a lookup may use them, and refuses the set whole
 * when any of it is wrong (a set half believed could call a meshed destination absent).
 */
#ifndef MT_POLICY_MEMBERSHIP_H
#define MT_POLICY_MEMBERSHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../util/result.h"

#define MT_MEMBERSHIP_MAGIC 0x424d544du /* "MTMB" in a little-endian u32 */
#define MT_MEMBERSHIP_LAYOUT_VERSION 2u
#define MT_MEMBERSHIP_HEADER_SIZE 32u
#define MT_MEMBERSHIP_ENTRY_SIZE 32u
#define MT_MEMBERSHIP_IDENTITY_MAX 512u
/* 10 000+ pods and services, plus the agent's tombstones. */
#define MT_MEMBERSHIP_ENTRIES_MAX 65536u
#define MT_MEMBERSHIP_FAMILY_IPV4 4u
#define MT_MEMBERSHIP_FAMILY_IPV6 6u

/* flags: the set holds every meshed endpoint the agent knows (its sources all loaded). */
#define MT_MEMBERSHIP_FLAG_COMPLETE 1u

enum mt_membership_state {
    MT_MEMBERSHIP_STATE_LIVE = 1,
    MT_MEMBERSHIP_STATE_REMOVED = 2, /* a tombstone: was live in an earlier generation */
};

struct mt_membership_header {
    uint32_t magic;
    uint32_t layout_version;
    uint64_t generation;
    uint32_t entry_count;
    uint32_t flags;
    uint32_t superseded; /* 0, then 1 once a newer generation is published (agent only) */
    uint32_t host_first; /* index of the first host entry; entry_count when there is none */
};

/* An entry as published in a set (32 bytes, see above). */
struct mt_membership_record {
    uint8_t family; /* MT_MEMBERSHIP_FAMILY_IPV4 or _IPV6 */
    uint8_t prefix_length;
    uint8_t state; /* enum mt_membership_state */
    uint8_t reserved;
    uint16_t port_first;
    uint16_t port_last;
    uint8_t address[16];
    uint32_t identity_offset; /* from the start of the identities */
    uint16_t identity_length;
    uint16_t reserved_tail;
};

/* An entry as a writer builds it (the agent's sources, the tests): its identity held inline. */
struct mt_membership_entry {
    uint8_t family; /* MT_MEMBERSHIP_FAMILY_IPV4 or _IPV6 */
    uint8_t prefix_length;
    uint8_t state; /* enum mt_membership_state */
    uint8_t reserved;
    uint16_t port_first;
    uint16_t port_last;
    uint8_t address[16];
    uint16_t identity_length;
    uint8_t reserved_tail[6];
    char identity[MT_MEMBERSHIP_IDENTITY_MAX]; /* a SPIFFE ID pattern, not NUL-terminated */
};

_Static_assert(sizeof(struct mt_membership_header) == MT_MEMBERSHIP_HEADER_SIZE, "header size");
_Static_assert(sizeof(struct mt_membership_record) == MT_MEMBERSHIP_ENTRY_SIZE, "entry size");

enum mt_membership_verdict {
    MT_MEMBERSHIP_ABSENT = 0,
    MT_MEMBERSHIP_MEMBER = 1,
    MT_MEMBERSHIP_REMOVED = 2,
};

/* A set checked whole; points into the caller's mapping, valid as long as it is. */
struct mt_membership_view {
    const uint8_t *base;
    size_t size;
    const char *identities; /* base + header + entries */
    size_t identities_size;
    uint64_t generation;
    uint32_t entry_count;
    uint32_t host_first;
    bool complete;
};

/*
 * Checks the set in bytes[0 .. size): magic, layout version, entry count within size and
 * MT_MEMBERSHIP_ENTRIES_MAX, every entry (family, prefix length, host bits zero, state, port
 * range 1 <= first <= last, identity inside the identities and a valid SPIFFE ID pattern when
 * present) and the order
 * (CIDR entries before host first, host entries from it, sorted). MT_ERR_MEMBERSHIP for anything
 * else; view is then untouched.
 */
MT_RESULT mt_membership_view_open(const void *bytes, size_t size, struct mt_membership_view *view);

/*
 * Looks destination (AF_INET or AF_INET6; a v4-mapped IPv6 address is looked up as IPv4) up in
 * view. On MT_MEMBERSHIP_MEMBER, *identity (may be NULL) gets the entry's pattern and
 * *identity_length its length (0: none), pointing into the view's bytes.
 */
enum mt_membership_verdict mt_membership_lookup(const struct mt_membership_view *view,
                                                const struct sockaddr_storage *destination,
                                                const char **identity, size_t *identity_length);

/* Whether the agent has published a newer generation than view's (one memory load). */
bool mt_membership_is_superseded(const struct mt_membership_view *view);

/* Whether entry names one address (a /32 or a /128): it then belongs among the sorted entries. */
bool mt_membership_entry_is_host(const struct mt_membership_entry *entry);

/* The order of host entries in a set: negative, 0 or positive as a sorts before, with or after
 * b (family, address, first port). */
int mt_membership_host_compare(const struct mt_membership_entry *a,
                               const struct mt_membership_entry *b);

/* The bytes of a set of these entries: header, entries and their identities. */
size_t mt_membership_set_size(const struct mt_membership_entry *const *entries, size_t count);

/*
 * Writes a set of entries, given in the version 2 order (CIDR entries, then host entries sorted;
 * host_first the index of the first host entry), into set, of mt_membership_set_size bytes.
 * Entries with the same identity as the one before them share its bytes. superseded is 0.
 */
void mt_membership_set_write(void *set, uint64_t generation, uint32_t flags,
                             const struct mt_membership_entry *const *entries, size_t count,
                             uint32_t host_first);

/* Fills entry from its parts (the agent's writer and the tests); false when it would not pass
 * mt_membership_view_open. identity NULL or "" for none. */
bool mt_membership_entry_fill(struct mt_membership_entry *entry, enum mt_membership_state state,
                              unsigned family, const uint8_t *address, unsigned prefix_length,
                              uint16_t port_first, uint16_t port_last, const char *identity);

#endif
