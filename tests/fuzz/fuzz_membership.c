/*
 * libFuzzer target for the mesh membership reader (policy/membership.c): the bytes a workload
 * maps from the agent.
 *
 * Beyond "no crash, no read past the end" (the replay copies each input into an allocation of
 * exactly its size), it checks what the "auto" decision relies on: a set that opens has a
 * header and entries that fit the size given; every lookup answers one of the three verdicts,
 * and a MEMBER's identity lies inside the set and is no longer than the layout allows.
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
        const uint8_t *entry =
            data + MT_MEMBERSHIP_HEADER_SIZE + (size_t)i * MT_MEMBERSHIP_ENTRY_SIZE;
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
