/*
 * ClientHello detection for permissive ports: given the first bytes a server received, is this a
 * mesh TLS client, some other TLS client, or not TLS at all?
 *
 * Pure, allocation-free and incremental in the picohttpparser way: call it with everything
 * received so far (typically a MSG_PEEK of the socket) and, on MT_DETECT_NEED_MORE, again once
 * more has arrived. The answer for a prefix is either NEED_MORE or final: more bytes never
 * change a final answer. It never reads past length.
 *
 *   NOT_TLS     the bytes cannot start a TLS ClientHello (RFC 8446 section 5.1): the first
 *               record is not a handshake record (type 22) of version 3.x (x <= 4), its length
 *               is 0 or above 2^14, or its first handshake message is not a client_hello.
 *               Answered from the first byte that proves it: "GET / HTTP/1.1" after one byte.
 *   TLS_MESH    a complete ClientHello whose ALPN extension offers MT_TLS_MESH_ALPN.
 *   TLS_OTHER   any other ClientHello: without that ALPN protocol, malformed past its first
 *               handshake header, interrupted by a non-handshake record, or too large to examine
 *               within MT_DETECT_BYTES_MAX bytes (a mesh client's ClientHello is a few hundred
 *               bytes with classical key shares, ~4.3 KB with three post-quantum hybrid ones:
 *               a larger one is someone else's TLS).
 *   NEED_MORE   everything so far could still be any of the above.
 *
 * A ClientHello split across several handshake records is reassembled logically (without
 * copying). Given MT_DETECT_BYTES_MAX bytes or more, the answer is never NEED_MORE, so that is
 * the most a caller ever needs to peek.
 */
#ifndef MT_POLICY_DETECT_H
#define MT_POLICY_DETECT_H

#include <stddef.h>

#include "../util/tls_wire.h"

/* The most a caller ever needs to peek (see above): one record header and the largest body. */
#define MT_DETECT_BYTES_MAX (MT_TLS_RECORD_HEADER_SIZE + MT_TLS_RECORD_MAX)

enum mt_detect_result {
    MT_DETECT_NEED_MORE = 0,
    MT_DETECT_NOT_TLS,
    MT_DETECT_TLS_MESH,
    MT_DETECT_TLS_OTHER,
};

/* Classifies data[0 .. length); data may be NULL only when length is 0. */
enum mt_detect_result mt_detect_client_hello(const void *data, size_t length);

/* "need more", "not TLS", "mesh TLS", "other TLS"; for log lines. */
const char *mt_detect_result_name(enum mt_detect_result result);

#endif
