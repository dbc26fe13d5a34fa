/*
 * Facts of the mesh's TLS wire format, stated once: the code that speaks TLS (tls/) and the code
 * that recognises a mesh client's ClientHello in bytes peeked from a socket (policy/detect.c),
 * which sits below tls/ and cannot include it, must agree on them byte for byte; and so must
 * the configuration (config/, also below tls/) and tls/ on the key exchange.
 *
 * Constants and enumerations only: no code, no wolfSSL.
 */
#ifndef MT_UTIL_TLS_WIRE_H
#define MT_UTIL_TLS_WIRE_H

/*
 * The ALPN protocol (RFC 7301) mesh clients offer: it marks a connection as mesh traffic for
 * servers that must tell it from the application's own TLS (permissive ports).
 */
#define MT_TLS_MESH_ALPN "meshtls/1"

/* A record's header: content type, legacy version, length (RFC 8446 §5.1). */
#define MT_TLS_RECORD_HEADER_SIZE 5

/* The largest plaintext one TLS record carries: 2^14 bytes (RFC 8446 §5.1). */
#define MT_TLS_RECORD_MAX 16384

/* What protection may add to a record's plaintext: a TLSCiphertext is at most 2^14 + 256 (§5.2). */
#define MT_TLS_RECORD_EXPANSION_MAX 256

/* Record content types (RFC 8446 §5.1) a stream may start with. */
#define MT_TLS_CONTENT_ALERT 21
#define MT_TLS_CONTENT_HANDSHAKE 22

/*
 * The key exchange (configuration key post_quantum): PREFER offers and chooses the hybrid
 * X25519MLKEM768 first and serves classical peers classically; REQUIRE accepts hybrid groups
 * only; OFF classical groups only (tls/context.c has the lists).
 */
enum mt_post_quantum {
    MT_POST_QUANTUM_PREFER = 0,
    MT_POST_QUANTUM_REQUIRE = 1,
    MT_POST_QUANTUM_OFF = 2,
};

#endif
