/*
 * Socket address helpers: formatting for log lines, the loopback test that policy relies on, the
 * port, a bounded copy into sockaddr_storage, and the compact form a connection keeps.
 *
 * Pure functions over the caller's memory: no allocation, no system calls, and never the resolver
 * (a log line or a policy decision must not wait on DNS).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

void mt_addr_format(const struct sockaddr_storage *address, char *text, size_t capacity)
{
    if (text == NULL || capacity == 0)
        return;
    char host[INET6_ADDRSTRLEN];
    if (address == NULL) {
        snprintf(text, capacity, "?");
    } else if (address->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)address;
        if (inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host)) == NULL)
            snprintf(text, capacity, "?");
        else
            snprintf(text, capacity, "%s:%u", host, (unsigned)ntohs(v4->sin_port));
    } else if (address->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)address;
        if (inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host)) == NULL)
            snprintf(text, capacity, "?");
        else
            snprintf(text, capacity, "[%s]:%u", host, (unsigned)ntohs(v6->sin6_port));
    } else if (address->ss_family == AF_UNIX) {
        snprintf(text, capacity, "unix");
    } else {
        snprintf(text, capacity, "?");
    }
}

bool mt_addr_is_loopback(const struct sockaddr_storage *address)
{
    if (address == NULL)
        return false;
    /* Linux delivers a connect() to the unspecified address (0.0.0.0, ::) to the local host,
     * where the server sees a loopback peer: both ends must choose the same mode. */
    if (address->ss_family == AF_INET) {
        uint32_t v4 = ntohl(((const struct sockaddr_in *)address)->sin_addr.s_addr);
        return (v4 >> 24) == 127 || v4 == INADDR_ANY;
    }
    if (address->ss_family == AF_INET6) {
        const struct in6_addr *v6 = &((const struct sockaddr_in6 *)address)->sin6_addr;
        /* A dual-stack socket sees IPv4 peers as ::ffff:a.b.c.d; they are still IPv4. */
        if (IN6_IS_ADDR_V4MAPPED(v6))
            return v6->s6_addr[12] == 127 ||
                   (v6->s6_addr[12] | v6->s6_addr[13] | v6->s6_addr[14] | v6->s6_addr[15]) == 0;
        return IN6_IS_ADDR_LOOPBACK(v6) || IN6_IS_ADDR_UNSPECIFIED(v6);
    }
    return false;
}

uint16_t mt_addr_port(const struct sockaddr_storage *address)
{
    if (address == NULL)
        return 0;
    if (address->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)address)->sin_port);
    if (address->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)address)->sin6_port);
    return 0;
}

void mt_addr_set_port(struct sockaddr_storage *address, uint16_t port)
{
    if (address->ss_family == AF_INET)
        ((struct sockaddr_in *)address)->sin_port = htons(port);
    else if (address->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)address)->sin6_port = htons(port);
}

bool mt_addr_copy(struct sockaddr_storage *storage, const struct sockaddr *address,
                  socklen_t length)
{
    if (storage == NULL || length > sizeof(*storage) || (address == NULL && length > 0))
        return false;
    memset(storage, 0, sizeof(*storage));
    if (length > 0)
        memcpy(storage, address, length);
    return true;
}

bool mt_addr_parse(const char *text, struct sockaddr_storage *address)
{
    char host[MT_ADDR_TEXT_MAX];
    const char *colon = text != NULL ? strrchr(text, ':') : NULL;
    if (colon == NULL || (size_t)(colon - text) >= sizeof(host) || colon[1] == '\0')
        return false;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end = NULL;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || port > 65535 || colon[1] == '-' || colon[1] == '+')
        return false;
    memset(address, 0, sizeof(*address));
    size_t length = strlen(host);
    if (length >= 2 && host[0] == '[' && host[length - 1] == ']') {
        host[length - 1] = '\0';
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)address;
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        return inet_pton(AF_INET6, host + 1, &v6->sin6_addr) == 1;
    }
    struct sockaddr_in *v4 = (struct sockaddr_in *)address;
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &v4->sin_addr) == 1;
}

void mt_addr_compact_store(union mt_addr_compact *compact, const struct sockaddr_storage *address)
{
    memset(compact, 0, sizeof(*compact));
    if (address->ss_family == AF_INET)
        memcpy(&compact->in, address, sizeof(compact->in));
    else if (address->ss_family == AF_INET6)
        memcpy(&compact->in6, address, sizeof(compact->in6));
}

struct sockaddr_storage mt_addr_compact_load(const union mt_addr_compact *compact)
{
    struct sockaddr_storage address;
    memset(&address, 0, sizeof(address));
    if (compact->family == AF_INET)
        memcpy(&address, &compact->in, sizeof(compact->in));
    else if (compact->family == AF_INET6)
        memcpy(&address, &compact->in6, sizeof(compact->in6));
    return address;
}

void mt_addr_compact_format(const union mt_addr_compact *compact, char *text, size_t capacity)
{
    struct sockaddr_storage address = mt_addr_compact_load(compact);
    mt_addr_format(&address, text, capacity);
}

uint16_t mt_addr_compact_port(const union mt_addr_compact *compact)
{
    struct sockaddr_storage address = mt_addr_compact_load(compact);
    return mt_addr_port(&address);
}
