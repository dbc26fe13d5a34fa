/*
 * The mesh membership as the agent publishes it: a fixed, versioned binary layout in a sealed
 * memfd that workloads map read-only, and the lookup of a destination in it.
 *
 *     answer of mt_membership_lookup     when
 *     ------------------------------     ----------------------------------------------------
 *     MT_MEMBERSHIP_MEMBER               a live entry covers the address and port (the first
 *                                        such entry in order; its identity pattern, if any)
 *     MT_MEMBERSHIP_REMOVED              no live entry does, a tombstone does: the agent saw
 *                                        the destination leave the mesh
 *     MT_MEMBERSHIP_ABSENT               neither: never known to this set
 *
 * Layout (host byte order: the agent and its workloads share one kernel and one CPU):
 *
 *     header   32 bytes   magic "MTMB" | layout version u32 | generation u64 |
 *                         entry count u32 | flags u32 | superseded u32 | reserved u32
 *     entries  entry count × 544 bytes, each
 *                         family u8 (4 or 6) | prefix length u8 | state u8 (1 live, 2 removed) |
 *                         reserved u8 | first port u16 | last port u16 | address 16 bytes
 *                         (network order; 4 used for IPv4, host bits zero) | identity length
 *                         u16 (0: none) | reserved 6 bytes | identity pattern 512 bytes
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
#define MT_MEMBERSHIP_LAYOUT_VERSION 1u
#define MT_MEMBERSHIP_HEADER_SIZE 32u
#define MT_MEMBERSHIP_ENTRY_SIZE 544u
#define MT_MEMBERSHIP_IDENTITY_MAX 512u
#define MT_MEMBERSHIP_ENTRIES_MAX 32768u
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
    uint32_t reserved;
};

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
_Static_assert(sizeof(struct mt_membership_entry) == MT_MEMBERSHIP_ENTRY_SIZE, "entry size");

enum mt_membership_verdict {
    MT_MEMBERSHIP_ABSENT = 0,
    MT_MEMBERSHIP_MEMBER = 1,
    MT_MEMBERSHIP_REMOVED = 2,
};

/* A set checked whole; points into the caller's mapping, valid as long as it is. */
struct mt_membership_view {
    const uint8_t *base;
    size_t size;
    uint64_t generation;
    uint32_t entry_count;
    bool complete;
};

/*
 * Checks the set in bytes[0 .. size): magic, layout version, entry count within size and
 * MT_MEMBERSHIP_ENTRIES_MAX, and every entry (family, prefix length, host bits zero, state, port
 * range 1 <= first <= last, identity a valid SPIFFE ID pattern when present). MT_ERR_MEMBERSHIP
 * for anything else; view is then untouched.
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

/* Fills entry from its parts (the agent's writer and the tests); false when it would not pass
 * mt_membership_view_open. identity NULL or "" for none. */
bool mt_membership_entry_fill(struct mt_membership_entry *entry, enum mt_membership_state state,
                              unsigned family, const uint8_t *address, unsigned prefix_length,
                              uint16_t port_first, uint16_t port_last, const char *identity);

#endif
