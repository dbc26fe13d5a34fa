/*
 * TLS 1.3 session resumption for one TLS context (one workload identity).
 *
 * A resumed handshake (RFC 8446 §2.2: a PSK from an earlier connection's NewSessionTicket, with a
 * fresh ECDHE share, psk_dhe_ke) sends no certificate. What the full handshake proved, the peer's
 * SPIFFE ID, must therefore be carried to the resumed connection, together with how long that
 * proof may still be relied on:
 *
 *   server  A ticket is sealed (AES-256-GCM) under a key that exists only in this context, so a
 *           ticket never outlives the identity and trust bundle it was issued under: rotation
 *           builds a new context, and every ticket of the old one is refused. The ticket's name
 *           (16 bytes, authenticated as associated data) is a slot in a bounded table binding the
 *           client's SPIFFE ID and an expiry; a forgotten slot, a mismatched name or a past expiry
 *           refuses the ticket and the client gets a full handshake.
 *   client  Sessions are kept by destination (address and port) with the server's SPIFFE ID and
 *           an expiry, in a bounded table; the caller re-applies its policy to that ID before a
 *           session is offered.
 *
 * The expiry is set by the full handshake, as the earliest of: its time plus the configured
 * lifetime, the peer's certificate's notAfter, our own certificate's notAfter. A resumed
 * connection inherits it: resuming never extends how long one full handshake is trusted.
 *
 * Thread-safe: one mutex for every context's tickets, one for their kept sessions.
 */
#ifndef MT_TLS_RESUMPTION_H
#define MT_TLS_RESUMPTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "../util/result.h"
#include "tls.h"

struct mt_tls_resumption;

/* The clock expiries are kept on: milliseconds, counting time suspended (CLOCK_BOOTTIME). */
long long mt_tls_resumption_now_ms(void);

/* In a fork child: the tables' locks, which another thread of the parent may have held. */
void mt_tls_resumption_after_fork_child(void);

/* Server ticket keys and client table for a context; lifetime_s > 0. */
MT_RESULT mt_tls_resumption_new(unsigned lifetime_s, struct mt_tls_resumption **resumption);
void mt_tls_resumption_free(struct mt_tls_resumption *resumption);
unsigned mt_tls_resumption_lifetime(const struct mt_tls_resumption *resumption);

/* ---- server: tickets ---- */

/*
 * Makes the context's ticket key if it has none: called when the context's server half is made,
 * at the first accepted connection, so that a child forked to handshake (and perhaps confined by
 * seccomp before its first ticket) never needs the calls making a key takes (locked mappings,
 * getrandom). A process that only connects never makes one.
 */
MT_RESULT mt_tls_resumption_prepare_server(struct mt_tls_resumption *resumption);

/*
 * Seals wolfSSL's ticket body (length bytes, in place) for a client proven to be peer_id, trusted
 * until expires_ms (mt_tls_resumption_now_ms clock). Fills name, iv and mac as wolfSSL's ticket
 * callback expects. renewed: on a resumed connection, the name of the ticket it resumed; the new
 * ticket takes that ticket's slot while the slot still binds it and peer_id (resumptions do not
 * evict other clients' tickets, and a slot never changes hands). False when the ticket cannot
 * be made.
 */
bool mt_tls_ticket_seal(struct mt_tls_resumption *resumption, const char *peer_id,
                        long long expires_ms, const unsigned char *renewed,
                        unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                        unsigned char iv[WOLFSSL_TICKET_IV_SZ],
                        unsigned char mac[WOLFSSL_TICKET_MAC_SZ], unsigned char *ticket,
                        size_t length);

/*
 * Opens a ticket (in place). True when it is ours, intact and not expired: peer_id then holds the
 * SPIFFE ID it binds (capacity bytes) and expires_ms the expiry it carries.
 */
bool mt_tls_ticket_open(struct mt_tls_resumption *resumption,
                        const unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                        const unsigned char iv[WOLFSSL_TICKET_IV_SZ],
                        const unsigned char mac[WOLFSSL_TICKET_MAC_SZ], unsigned char *ticket,
                        size_t length, char *peer_id, size_t capacity, long long *expires_ms);

/* ---- client: sessions by destination ---- */

/*
 * Keeps ssl's current session (with its ticket) for destination, as a session with peer_id
 * trusted until expires_ms; replaces what was kept for that destination.
 */
void mt_tls_client_keep(struct mt_tls_resumption *resumption, const unsigned char *destination,
                        size_t destination_length, WOLFSSL *ssl, const char *peer_id,
                        long long expires_ms);

/*
 * Offers the session kept for destination on ssl (before the handshake) when it has not expired
 * and admit(argument, its peer ID) agrees. True when offered: peer_id (capacity bytes) and
 * expires_ms then say what a resumed handshake inherits.
 */
bool mt_tls_client_offer(struct mt_tls_resumption *resumption, const unsigned char *destination,
                         size_t destination_length, WOLFSSL *ssl,
                         bool (*admit)(void *argument, const char *peer_id), void *argument,
                         char *peer_id, size_t capacity, long long *expires_ms);

/* Forgets destination's session (the server refused it). */
void mt_tls_client_forget(struct mt_tls_resumption *resumption, const unsigned char *destination,
                          size_t destination_length);

#endif
