/*
 * libFuzzer target for the mesh membership reader (policy/membership.c): the bytes a workload
 * maps from the agent.
 *
 * Beyond "no crash, no read past the end" (the replay copies each input into an allocation of
 * exactly its size), it checks what the "auto" decision relies on: a set that opens has a
 * header and entries that fit the size given; every lookup answers one of the three verdicts,
 * a MEMBER's identity lies inside the set and is no longer than the layout allows, and the
 * binary search answers what a plain scan of every entry with the documented precedence answers
 * (membership.h: a live host entry first, then a live CIDR entry, then any tombstone).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/membership.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(bool condition)
{
    if (!condition)
        abort();
}

static bool covers(const struct mt_membership_record *entry, unsigned family,
                   const uint8_t *address, uint16_t port)
{
    if (entry->family != family || port < entry->port_first || port > entry->port_last)
        return false;
    for (unsigned bit = 0; bit < entry->prefix_length; bit++) {
        uint8_t mask = (uint8_t)(0x80u >> (bit % 8));
        if ((address[bit / 8] & mask) != (entry->address[bit / 8] & mask))
            return false;
    }
    return true;
}

/* The precedence of membership.h by a scan of every entry, for an IPv4 or IPv6 destination. */
static enum mt_membership_verdict reference_lookup(const struct mt_membership_view *view,
                                                   const struct sockaddr_storage *destination,
                                                   const char **identity)
{
    unsigned family = MT_MEMBERSHIP_FAMILY_IPV4;
    const uint8_t *address = (const uint8_t *)&((const struct sockaddr_in *)destination)->sin_addr;
    uint16_t port = ntohs(((const struct sockaddr_in *)destination)->sin_port);
    if (destination->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)destination;
        family = MT_MEMBERSHIP_FAMILY_IPV6;
        address = v6->sin6_addr.s6_addr;
        port = ntohs(v6->sin6_port);
    }
    const struct mt_membership_record *live_host = NULL;
    const struct mt_membership_record *live_cidr = NULL;
    bool removed = false;
    for (uint32_t i = 0; i < view->entry_count; i++) {
        const struct mt_membership_record *entry =
            (const void *)(view->base + MT_MEMBERSHIP_HEADER_SIZE +
                           (size_t)i * MT_MEMBERSHIP_ENTRY_SIZE);
        bool host = entry->prefix_length == (entry->family == MT_MEMBERSHIP_FAMILY_IPV4 ? 32 : 128);
        if (!covers(entry, family, address, port))
            continue;
        if (entry->state == MT_MEMBERSHIP_STATE_REMOVED)
            removed = true;
        else if (host && live_host == NULL)
            live_host = entry;
        else if (!host && live_cidr == NULL)
            live_cidr = entry;
    }
    const struct mt_membership_record *live = live_host != NULL ? live_host : live_cidr;
    *identity =
        live != NULL && live->identity_length > 0 ? view->identities + live->identity_offset : NULL;
    if (live != NULL)
        return MT_MEMBERSHIP_MEMBER;
    return removed ? MT_MEMBERSHIP_REMOVED : MT_MEMBERSHIP_ABSENT;
}

static void look_up(const struct mt_membership_view *view, const uint8_t *data, size_t size,
                    const struct sockaddr_storage *destination)
{
    const char *identity = NULL;
    size_t length = 0;
    enum mt_membership_verdict verdict =
        mt_membership_lookup(view, destination, &identity, &length);
    require(verdict == MT_MEMBERSHIP_ABSENT || verdict == MT_MEMBERSHIP_MEMBER ||
            verdict == MT_MEMBERSHIP_REMOVED);
    require(length <= MT_MEMBERSHIP_IDENTITY_MAX);
    if (identity != NULL)
        require((const uint8_t *)identity >= data &&
                (const uint8_t *)identity + length <= data + size);
    const char *expected_identity = NULL;
    require(reference_lookup(view, destination, &expected_identity) == verdict);
    require(expected_identity == identity);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mt_membership_view view;
    if (size == 0 || !mt_result_is_ok(mt_membership_view_open(data, size, &view)))
        return 0;
    require(MT_MEMBERSHIP_HEADER_SIZE + (size_t)view.entry_count * MT_MEMBERSHIP_ENTRY_SIZE <=
            size);
    /* Destinations drawn from the set's own entries, so that lookups find something. */
    for (uint32_t i = 0; i < view.entry_count && i < 64; i++) {
        /* Drawn from the first entries and the last (the ends of the binary search). */
        uint32_t at = i % 2 == 0 ? i / 2 : view.entry_count - 1 - i / 2;
        const uint8_t *entry =
            data + MT_MEMBERSHIP_HEADER_SIZE + (size_t)at * MT_MEMBERSHIP_ENTRY_SIZE;
        struct sockaddr_storage destination;
        memset(&destination, 0, sizeof(destination));
        uint16_t port = 0;
        memcpy(&port, entry + 4, sizeof(port));
        if (entry[0] == MT_MEMBERSHIP_FAMILY_IPV4) {
            struct sockaddr_in *v4 = (struct sockaddr_in *)&destination;
            v4->sin_family = AF_INET;
            v4->sin_port = htons(port);
            memcpy(&v4->sin_addr, entry + 8, 4);
        } else {
            struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&destination;
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons(port);
            memcpy(&v6->sin6_addr, entry + 8, 16);
        }
        look_up(&view, data, size, &destination);
    }
    struct sockaddr_storage unknown;
    memset(&unknown, 0, sizeof(unknown));
    unknown.ss_family = AF_INET;
    look_up(&view, data, size, &unknown);
    (void)mt_membership_is_superseded(&view);
    return 0;
}
