/*
 * Socket address helpers shared by policy, core and logging. Pure functions.
 */
#ifndef MT_UTIL_ADDR_H
#define MT_UTIL_ADDR_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* Big enough for "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535". */
#define MT_ADDR_TEXT_MAX 64

/* "10.0.0.7:8443", "[::1]:443", "unix" or "?" for anything unknown. Always NUL-terminates. */
void mt_addr_format(const struct sockaddr_storage *address, char *text, size_t capacity);

/*
 * 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104 (v4-mapped loopback), and the unspecified addresses
 * 0.0.0.0 and :: (a connect() to them reaches the local host).
 */
bool mt_addr_is_loopback(const struct sockaddr_storage *address);

/* The port in host order, 0 for families without one. */
uint16_t mt_addr_port(const struct sockaddr_storage *address);

/* Sets the port (host order) of an IPv4 or IPv6 address; other families are left as they are. */
void mt_addr_set_port(struct sockaddr_storage *address, uint16_t port);

/*
 * Parses what mt_addr_format writes for an IP address: "10.0.0.7:8443" or "[::1]:443".
 * False for anything else (a host name, a missing or out-of-range port).
 */
bool mt_addr_parse(const char *text, struct sockaddr_storage *address);

/* Copies a sockaddr of length length into storage, zero-filling; false when it does not fit. */
bool mt_addr_copy(struct sockaddr_storage *storage, const struct sockaddr *address,
                  socklen_t length);

/*
 * An IPv4 or IPv6 socket address in the room it needs: 28 bytes where sockaddr_storage takes 128,
 * for what is kept per connection (a process may hold thousands). Any other family is kept as
 * AF_UNSPEC.
 */
union mt_addr_compact {
    sa_family_t family;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

void mt_addr_compact_store(union mt_addr_compact *compact, const struct sockaddr_storage *address);
struct sockaddr_storage mt_addr_compact_load(const union mt_addr_compact *compact);
/* mt_addr_format and mt_addr_port of a compact address. */
void mt_addr_compact_format(const union mt_addr_compact *compact, char *text, size_t capacity);
uint16_t mt_addr_compact_port(const union mt_addr_compact *compact);

#endif
