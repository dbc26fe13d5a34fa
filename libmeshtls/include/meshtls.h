/*
 * libmeshtls: transparent mutual TLS for TCP connections.
 *
 * Programs run under the preload (meshtls run -- PROGRAM) need nothing from this header; it is
 * for programs that want to know more about their meshed connections, and for C services that
 * link libmeshtls directly. Every function is safe to call from any thread.
 */
#ifndef MESHTLS_H
#define MESHTLS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MESHTLS_VERSION_MAJOR 0
#define MESHTLS_VERSION_MINOR 1
#define MESHTLS_VERSION_PATCH 0

/* The library's version, "MAJOR.MINOR.PATCH". */
const char *meshtls_version(void);

/*
 * Copies the verified SPIFFE ID of the peer on fd into buffer (NUL-terminated) and returns its
 * length. Returns -1 with errno ENOTCONN when fd is not a meshed connection or its handshake has
 * not completed, ERANGE when capacity is too small.
 */
int meshtls_peer_id(int fd, char *buffer, size_t capacity);

#ifdef __cplusplus
}
#endif

#endif
