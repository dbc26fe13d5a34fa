/*
 * The mesh membership set read from a mapping (membership.h): its checks and its lookup, and the
 * writing of a set, so that the layout is known in one file.
 *
 * Owns the meaning of the published layout. Pure functions over a buffer: no I/O, no
 * allocation, no logging, nothing read outside [base, base + size). It must never answer MEMBER
 * or REMOVED from bytes it has not checked, and never read the mapping twice where the answer
 * depends on both reads agreeing (the set is sealed, but the reader does not rely on it for its
 * own memory safety).
 */
#include <netinet/in.h>
#include <string.h>

#include "../util/spiffe.h"
#include "membership.h"

static const struct mt_membership_record *record_at(const struct mt_membership_view *view,
                                                    uint32_t index)
{
    return (const struct mt_membership_record *)(const void *)(view->base +
                                                               MT_MEMBERSHIP_HEADER_SIZE +
                                                               (size_t)index *
                                                                   MT_MEMBERSHIP_ENTRY_SIZE);
}

static unsigned address_bytes(unsigned family)
{
    return family == MT_MEMBERSHIP_FAMILY_IPV4 ? 4u : 16u;
}

static bool host_bits_are_zero(const uint8_t *address, unsigned family, unsigned prefix_length)
{
    unsigned length = address_bytes(family);
    for (unsigned bit = prefix_length; bit < length * 8; bit++) {
        if (address[bit / 8] & (0x80u >> (bit % 8)))
            return false;
    }
    return true;
}

/* What an entry says of its place: family, prefix, host bits, state and ports. */
static bool place_is_valid(unsigned family, unsigned prefix_length, const uint8_t *address,
                           unsigned state, uint16_t port_first, uint16_t port_last)
{
    if (family != MT_MEMBERSHIP_FAMILY_IPV4 && family != MT_MEMBERSHIP_FAMILY_IPV6)
        return false;
    if (prefix_length > address_bytes(family) * 8)
        return false;
    if (!host_bits_are_zero(address, family, prefix_length))
        return false;
    if (state != MT_MEMBERSHIP_STATE_LIVE && state != MT_MEMBERSHIP_STATE_REMOVED)
        return false;
    return port_first != 0 && port_first <= port_last;
}

static bool identity_is_valid(const char *identity, size_t length)
{
    if (length > MT_MEMBERSHIP_IDENTITY_MAX)
        return false;
    return length == 0 ||
           (memchr(identity, '\0', length) == NULL && mt_spiffe_is_valid_pattern(identity, length));
}

static bool entry_is_valid(const struct mt_membership_entry *entry)
{
    return place_is_valid(entry->family, entry->prefix_length, entry->address, entry->state,
                          entry->port_first, entry->port_last) &&
           identity_is_valid(entry->identity, entry->identity_length);
}

/* A published entry: its place, and its identity inside the view's identities. */
static bool record_is_valid(const struct mt_membership_view *view,
                            const struct mt_membership_record *record)
{
    if (!place_is_valid(record->family, record->prefix_length, record->address, record->state,
                        record->port_first, record->port_last))
        return false;
    if (record->identity_length == 0)
        return true;
    if (record->identity_offset > view->identities_size ||
        record->identity_length > view->identities_size - record->identity_offset)
        return false;
    return identity_is_valid(view->identities + record->identity_offset, record->identity_length);
}

static bool is_host(unsigned family, unsigned prefix_length)
{
    return prefix_length == address_bytes(family) * 8;
}

bool mt_membership_entry_is_host(const struct mt_membership_entry *entry)
{
    return is_host(entry->family, entry->prefix_length);
}

/* The order of (family, address, first port) keys; the address's unused bytes (12 of them for
 * IPv4) take no part, so they cannot make an ordered set look unordered. */
static int key_compare(unsigned family, const uint8_t *address, uint16_t port,
                       unsigned other_family, const uint8_t *other_address, uint16_t other_port)
{
    if (family != other_family)
        return family < other_family ? -1 : 1;
    int by_address = memcmp(address, other_address, address_bytes(family));
    if (by_address != 0)
        return by_address;
    if (port != other_port)
        return port < other_port ? -1 : 1;
    return 0;
}

int mt_membership_host_compare(const struct mt_membership_entry *a,
                               const struct mt_membership_entry *b)
{
    return key_compare(a->family, a->address, a->port_first, b->family, b->address, b->port_first);
}

/* The version 2 order (membership.h): CIDR entries, then host entries sorted. */
static bool records_are_ordered(const struct mt_membership_view *view)
{
    for (uint32_t i = 0; i < view->entry_count; i++) {
        const struct mt_membership_record *record = record_at(view, i);
        if (is_host(record->family, record->prefix_length) != (i >= view->host_first))
            return false;
        if (i > view->host_first) {
            const struct mt_membership_record *before = record_at(view, i - 1);
            if (key_compare(before->family, before->address, before->port_first, record->family,
                            record->address, record->port_first) > 0)
                return false;
        }
    }
    return true;
}

MT_RESULT mt_membership_view_open(const void *bytes, size_t size, struct mt_membership_view *view)
{
    MT_ENSURE_REF(bytes);
    MT_ENSURE_REF(view);
    MT_ENSURE(size >= MT_MEMBERSHIP_HEADER_SIZE, MT_ERR_MEMBERSHIP);
    struct mt_membership_header header;
    memcpy(&header, bytes, sizeof(header));
    MT_ENSURE(header.magic == MT_MEMBERSHIP_MAGIC, MT_ERR_MEMBERSHIP);
    MT_ENSURE(header.layout_version == MT_MEMBERSHIP_LAYOUT_VERSION, MT_ERR_MEMBERSHIP);
    MT_ENSURE(header.entry_count <= MT_MEMBERSHIP_ENTRIES_MAX, MT_ERR_MEMBERSHIP);
    MT_ENSURE((size - MT_MEMBERSHIP_HEADER_SIZE) / MT_MEMBERSHIP_ENTRY_SIZE >= header.entry_count,
              MT_ERR_MEMBERSHIP);
    MT_ENSURE(header.host_first <= header.entry_count, MT_ERR_MEMBERSHIP);
    size_t identities_at =
        MT_MEMBERSHIP_HEADER_SIZE + (size_t)header.entry_count * MT_MEMBERSHIP_ENTRY_SIZE;
    struct mt_membership_view checked = {
        .base = bytes,
        .size = size,
        .identities = (const char *)bytes + identities_at,
        .identities_size = size - identities_at,
        .generation = header.generation,
        .entry_count = header.entry_count,
        .host_first = header.host_first,
        .complete = (header.flags & MT_MEMBERSHIP_FLAG_COMPLETE) != 0,
    };
    for (uint32_t i = 0; i < checked.entry_count; i++)
        MT_ENSURE(record_is_valid(&checked, record_at(&checked, i)), MT_ERR_MEMBERSHIP);
    MT_ENSURE(records_are_ordered(&checked), MT_ERR_MEMBERSHIP);
    *view = checked;
    return MT_OK_RESULT;
}

static bool prefix_matches(const uint8_t *address, const uint8_t *network, unsigned prefix_length)
{
    unsigned whole_bytes = prefix_length / 8;
    if (memcmp(address, network, whole_bytes) != 0)
        return false;
    unsigned rest = prefix_length % 8;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (address[whole_bytes] & mask) == network[whole_bytes];
}

/* The destination as the layout names it; false for a family that is not IP. */
static bool destination_parts(const struct sockaddr_storage *destination, unsigned *family,
                              const uint8_t **address, uint16_t *port)
{
    if (destination->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)destination;
        *family = MT_MEMBERSHIP_FAMILY_IPV4;
        *address = (const uint8_t *)&v4->sin_addr;
        *port = ntohs(v4->sin_port);
        return true;
    }
    if (destination->ss_family != AF_INET6)
        return false;
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)destination;
    *port = ntohs(v6->sin6_port);
    /* What a dual-stack socket connects to when the program names an IPv4 address. */
    if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
        *family = MT_MEMBERSHIP_FAMILY_IPV4;
        *address = v6->sin6_addr.s6_addr + 12;
        return true;
    }
    *family = MT_MEMBERSHIP_FAMILY_IPV6;
    *address = v6->sin6_addr.s6_addr;
    return true;
}

static bool record_covers(const struct mt_membership_record *record, unsigned family,
                          const uint8_t *address, uint16_t port)
{
    return record->family == family && port >= record->port_first && port <= record->port_last &&
           prefix_matches(address, record->address, record->prefix_length);
}

/* What a search of some entries found: the first live entry covering, and whether a tombstone
 * covered. */
struct found {
    const struct mt_membership_record *live;
    bool removed;
};

static void consider(const struct mt_membership_record *record, struct found *found)
{
    if (record->state == MT_MEMBERSHIP_STATE_REMOVED)
        found->removed = true;
    else if (found->live == NULL)
        found->live = record;
}

/*
 * The host entries for the address: the first one not before (family, address, port 0) by binary
 * search, then forward while the address is the same and the first port not past the port
 * (entries there are ordered by first port, so none further can cover it).
 */
static void search_hosts(const struct mt_membership_view *view, unsigned family,
                         const uint8_t *address, uint16_t port, struct found *found)
{
    uint32_t low = view->host_first;
    uint32_t high = view->entry_count;
    while (low < high) {
        uint32_t middle = low + (high - low) / 2;
        const struct mt_membership_record *record = record_at(view, middle);
        if (key_compare(family, address, 0, record->family, record->address, record->port_first) >
            0)
            low = middle + 1;
        else
            high = middle;
    }
    for (uint32_t i = low; i < view->entry_count && found->live == NULL; i++) {
        const struct mt_membership_record *record = record_at(view, i);
        if (record->family != family ||
            memcmp(record->address, address, address_bytes(family)) != 0 ||
            record->port_first > port)
            break;
        if (port <= record->port_last)
            consider(record, found);
    }
}

static void scan_cidrs(const struct mt_membership_view *view, unsigned family,
                       const uint8_t *address, uint16_t port, struct found *found)
{
    for (uint32_t i = 0; i < view->host_first && found->live == NULL; i++) {
        const struct mt_membership_record *record = record_at(view, i);
        if (record_covers(record, family, address, port))
            consider(record, found);
    }
}

enum mt_membership_verdict mt_membership_lookup(const struct mt_membership_view *view,
                                                const struct sockaddr_storage *destination,
                                                const char **identity, size_t *identity_length)
{
    if (identity != NULL)
        *identity = NULL;
    if (identity_length != NULL)
        *identity_length = 0;
    unsigned family = 0;
    const uint8_t *address = NULL;
    uint16_t port = 0;
    if (view == NULL || view->base == NULL || destination == NULL ||
        !destination_parts(destination, &family, &address, &port))
        return MT_MEMBERSHIP_ABSENT;
    struct found found = {0};
    search_hosts(view, family, address, port, &found);
    /* The CIDRs only when no host entry answered: a host's identity is the more specific. */
    if (found.live == NULL)
        scan_cidrs(view, family, address, port, &found);
    if (found.live == NULL)
        return found.removed ? MT_MEMBERSHIP_REMOVED : MT_MEMBERSHIP_ABSENT;
    if (identity != NULL)
        *identity =
            found.live->identity_length > 0 ? view->identities + found.live->identity_offset : NULL;
    if (identity_length != NULL)
        *identity_length = found.live->identity_length;
    return MT_MEMBERSHIP_MEMBER;
}

bool mt_membership_is_superseded(const struct mt_membership_view *view)
{
    if (view == NULL || view->base == NULL)
        return false;
    const struct mt_membership_header *header = (const void *)view->base;
    return __atomic_load_n(&header->superseded, __ATOMIC_ACQUIRE) != 0;
}

bool mt_membership_entry_fill(struct mt_membership_entry *entry, enum mt_membership_state state,
                              unsigned family, const uint8_t *address, unsigned prefix_length,
                              uint16_t port_first, uint16_t port_last, const char *identity)
{
    memset(entry, 0, sizeof(*entry));
    if (family != MT_MEMBERSHIP_FAMILY_IPV4 && family != MT_MEMBERSHIP_FAMILY_IPV6)
        return false;
    size_t length = identity != NULL ? strlen(identity) : 0;
    if (length > MT_MEMBERSHIP_IDENTITY_MAX)
        return false;
    entry->family = (uint8_t)family;
    /* Kept out of range rather than wrapped into a valid length, so the check below refuses it. */
    entry->prefix_length = (uint8_t)(prefix_length > 128 ? 255 : prefix_length);
    entry->state = (uint8_t)state;
    entry->port_first = port_first;
    entry->port_last = port_last;
    memcpy(entry->address, address, address_bytes(family));
    entry->identity_length = (uint16_t)length;
    if (length > 0)
        memcpy(entry->identity, identity, length);
    return entry_is_valid(entry);
}

/* ---- writing a set ------------------------------------------------------------------------- */

/* Whether entries[i] shares the identity bytes of entries[i − 1] (the same pattern). */
static bool shares_identity(const struct mt_membership_entry *const *entries, size_t i)
{
    return i > 0 && entries[i]->identity_length > 0 &&
           entries[i]->identity_length == entries[i - 1]->identity_length &&
           memcmp(entries[i]->identity, entries[i - 1]->identity, entries[i]->identity_length) == 0;
}

size_t mt_membership_set_size(const struct mt_membership_entry *const *entries, size_t count)
{
    size_t size = MT_MEMBERSHIP_HEADER_SIZE + count * MT_MEMBERSHIP_ENTRY_SIZE;
    for (size_t i = 0; i < count; i++) {
        if (!shares_identity(entries, i))
            size += entries[i]->identity_length;
    }
    return size;
}

void mt_membership_set_write(void *set, uint64_t generation, uint32_t flags,
                             const struct mt_membership_entry *const *entries, size_t count,
                             uint32_t host_first)
{
    struct mt_membership_header header = {
        .magic = MT_MEMBERSHIP_MAGIC,
        .layout_version = MT_MEMBERSHIP_LAYOUT_VERSION,
        .generation = generation,
        .entry_count = (uint32_t)count,
        .flags = flags,
        .host_first = host_first,
    };
    uint8_t *bytes = set;
    memcpy(bytes, &header, sizeof(header));
    uint8_t *identities = bytes + MT_MEMBERSHIP_HEADER_SIZE + count * MT_MEMBERSHIP_ENTRY_SIZE;
    uint32_t written = 0;
    uint32_t offset = 0;
    for (size_t i = 0; i < count; i++) {
        const struct mt_membership_entry *entry = entries[i];
        if (entry->identity_length > 0 && !shares_identity(entries, i)) {
            offset = written;
            memcpy(identities + written, entry->identity, entry->identity_length);
            written += entry->identity_length;
        }
        struct mt_membership_record record = {
            .family = entry->family,
            .prefix_length = entry->prefix_length,
            .state = entry->state,
            .port_first = entry->port_first,
            .port_last = entry->port_last,
            .identity_offset = entry->identity_length > 0 ? offset : 0,
            .identity_length = entry->identity_length,
        };
        memcpy(record.address, entry->address, sizeof(record.address));
        memcpy(bytes + MT_MEMBERSHIP_HEADER_SIZE + i * MT_MEMBERSHIP_ENTRY_SIZE, &record,
               sizeof(record));
    }
}
