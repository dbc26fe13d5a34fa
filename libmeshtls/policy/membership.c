/*
 * The mesh membership set read from a mapping (membership.h): its checks and its lookup.
 *
 * Owns the meaning of the published layout for a reader. Pure functions over a buffer: no I/O,
 * no allocation, no logging, nothing read outside [base, base + size). It must never answer
 * MEMBER or REMOVED from bytes it has not checked, and never read the mapping twice where the
 * answer depends on both reads agreeing (the set is sealed, but the reader does not rely on it
 * for its own memory safety).
 */
#include <netinet/in.h>
#include <string.h>

#include "../util/spiffe.h"
#include "membership.h"

static const struct mt_membership_entry *entry_at(const struct mt_membership_view *view,
                                                  uint32_t index)
{
    return (
        const struct mt_membership_entry *)(const void *)(view->base + MT_MEMBERSHIP_HEADER_SIZE +
                                                          (size_t)index * MT_MEMBERSHIP_ENTRY_SIZE);
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

static bool entry_is_valid(const struct mt_membership_entry *entry)
{
    if (entry->family != MT_MEMBERSHIP_FAMILY_IPV4 && entry->family != MT_MEMBERSHIP_FAMILY_IPV6)
        return false;
    if (entry->prefix_length > address_bytes(entry->family) * 8)
        return false;
    if (!host_bits_are_zero(entry->address, entry->family, entry->prefix_length))
        return false;
    if (entry->state != MT_MEMBERSHIP_STATE_LIVE && entry->state != MT_MEMBERSHIP_STATE_REMOVED)
        return false;
    if (entry->port_first == 0 || entry->port_first > entry->port_last)
        return false;
    if (entry->identity_length > MT_MEMBERSHIP_IDENTITY_MAX)
        return false;
    if (entry->identity_length > 0 &&
        (memchr(entry->identity, '\0', entry->identity_length) != NULL ||
         !mt_spiffe_is_valid_pattern(entry->identity, entry->identity_length)))
        return false;
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
    struct mt_membership_view checked = {
        .base = bytes,
        .size = size,
        .generation = header.generation,
        .entry_count = header.entry_count,
        .complete = (header.flags & MT_MEMBERSHIP_FLAG_COMPLETE) != 0,
    };
    for (uint32_t i = 0; i < checked.entry_count; i++)
        MT_ENSURE(entry_is_valid(entry_at(&checked, i)), MT_ERR_MEMBERSHIP);
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

static bool entry_covers(const struct mt_membership_entry *entry, unsigned family,
                         const uint8_t *address, uint16_t port)
{
    return entry->family == family && port >= entry->port_first && port <= entry->port_last &&
           prefix_matches(address, entry->address, entry->prefix_length);
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
    bool removed = false;
    for (uint32_t i = 0; i < view->entry_count; i++) {
        const struct mt_membership_entry *entry = entry_at(view, i);
        if (!entry_covers(entry, family, address, port))
            continue;
        if (entry->state == MT_MEMBERSHIP_STATE_REMOVED) {
            removed = true;
            continue;
        }
        if (identity != NULL)
            *identity = entry->identity_length > 0 ? entry->identity : NULL;
        if (identity_length != NULL)
            *identity_length = entry->identity_length;
        return MT_MEMBERSHIP_MEMBER;
    }
    return removed ? MT_MEMBERSHIP_REMOVED : MT_MEMBERSHIP_ABSENT;
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
