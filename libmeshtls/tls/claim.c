/*
 * Resumption, the session's side: who the peer of a resumed handshake is, and for how long that
 * is trusted (resumption.h says what tickets and kept sessions bind, and why).
 *
 * A resumed TLS 1.3 handshake sends no certificate: the peer is who the ticket (server) or the
 * kept session (client) claims, the claim of a full handshake that verify.c checked. Owns that
 * claim (struct mt_tls_claim), wolfSSL's ticket callback, and offering and keeping a client's
 * sessions. Must never believe a claim before wolfSSL reports that the handshake resumed, nor let
 * resuming extend how long one full handshake is trusted; the tables themselves, their keys and
 * locks are resumption.c's.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../util/spiffe.h"
#include "internal.h"
#include "x509.h"

long long mt_tls_claim_trusted_until(const struct mt_tls_session *session,
                                     const unsigned char *leaf, size_t length)
{
    const struct mt_tls_resumption *resumption = session->context->resumption;
    time_t not_before = 0;
    time_t not_after = 0;
    if (resumption == NULL ||
        !mt_result_is_ok(mt_x509_cert_validity(leaf, length, &not_before, &not_after)))
        return 0;
    time_t now = time(NULL);
    time_t until = now + (time_t)mt_tls_resumption_lifetime(resumption);
    if (not_after < until)
        until = not_after;
    if (session->context->credentials->not_after < until)
        until = session->context->credentials->not_after;
    return until > now ? mt_tls_resumption_now_ms() + (long long)(until - now) * 1000 : 0;
}

/*
 * Whether the session's policy still admits a peer ID that an earlier handshake proved. A preview:
 * its refusal only means a full handshake, so nobody reads why.
 */
static bool admits(void *argument, const char *peer_id)
{
    struct mt_tls_session *session = argument;
    if (!mt_spiffe_id_is_in_trust_domain(peer_id, session->context->credentials->trust_domain))
        return false;
    return session->peer_filter == NULL ||
           session->peer_filter(session->peer_filter_argument, peer_id, MT_TLS_PEER_PREVIEW, NULL);
}

void mt_tls_claim_clear(struct mt_tls_claim *claim)
{
    free(claim->peer_id);
    memset(claim, 0, sizeof(*claim));
}

static bool claim_set(struct mt_tls_claim *claim, const char *peer_id, long long expires_ms,
                      const unsigned char *name)
{
    mt_tls_claim_clear(claim);
    claim->peer_id = strdup(peer_id);
    if (claim->peer_id == NULL)
        return false;
    claim->expires_ms = expires_ms;
    if (name != NULL)
        memcpy(claim->name, name, sizeof(claim->name));
    return true;
}

/*
 * A handshake that wolfSSL says resumed: the peer is who the claim names, and is trusted as long
 * as the full handshake behind the ticket allowed; the policy decides on it as on a verified
 * certificate. False when there is no claim to adopt, when the peer also presented a
 * certificate (a resumed TLS 1.3 handshake has none), or when the policy refuses it.
 */
static bool adopt_claim(struct mt_tls_session *session)
{
    if (session->claim.peer_id == NULL || session->verified)
        return false;
    char refusal[MT_TLS_REASON_CAPACITY];
    if (session->peer_filter != NULL &&
        !session->peer_filter(session->peer_filter_argument, session->claim.peer_id,
                              MT_TLS_PEER_DECIDE, MT_TEXT_ON(refusal))) {
        mt_tls_failure_replace(session, "%s", refusal);
        return false;
    }
    free(session->peer_id);
    session->peer_id = session->claim.peer_id;
    session->trusted_until_ms = session->claim.expires_ms;
    session->claim.peer_id = NULL;
    return true;
}

/*
 * wolfSSL's ticket callback, on the server. Sealing binds the client this handshake proved: its
 * certificate's ID after a full handshake, or the claim of the ticket it resumed with, with the
 * expiry that ticket's full handshake set (the new ticket renews that one's slot). Opening only
 * records the ticket's claim (see struct mt_tls_claim); it refuses, and so leads to a full
 * handshake with certificates, when the ticket is not ours or has expired, or when this
 * connection's policy no longer admits the ID it binds: a refusal is then decided, and logged,
 * by the full handshake.
 */
static int ticket_callback(WOLFSSL *ssl, unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                           unsigned char iv[WOLFSSL_TICKET_IV_SZ],
                           unsigned char mac[WOLFSSL_TICKET_MAC_SZ], int seal,
                           unsigned char *ticket, int length, int *out_length, void *user)
{
    struct mt_tls_context *context = user;
    struct mt_tls_session *session = wolfSSL_GetIOReadCtx(ssl);
    if (context == NULL || context->resumption == NULL || session == NULL || length <= 0)
        return WOLFSSL_TICKET_RET_REJECT;
    if (seal) {
        /* wolfSSL seals after the client's Finished: whether it resumed is known. */
        bool resumed = wolfSSL_session_reused(ssl) != 0;
        const char *bound = resumed             ? session->claim.peer_id
                            : session->verified ? session->peer_id
                                                : NULL;
        long long expires_ms = resumed ? session->claim.expires_ms : session->trusted_until_ms;
        /* A failure here fails the handshake (wolfSSL 5.5.4 and 5.9.2): memory, randomness, or a
         * client that nothing proved (mt_tls_claim_finish_handshake would refuse it). */
        if (bound == NULL || !mt_tls_ticket_seal(context->resumption, bound, expires_ms,
                                                 resumed ? session->claim.name : NULL, name, iv,
                                                 mac, ticket, (size_t)length))
            return WOLFSSL_TICKET_RET_FATAL;
        *out_length = length;
        return WOLFSSL_TICKET_RET_OK;
    }
    /* A claim belongs to the last ticket opened, whatever became of the ones before it. */
    mt_tls_claim_clear(&session->claim);
    char peer_id[MT_SPIFFE_ID_MAX + 1];
    long long expires_ms = 0;
    if (!mt_tls_ticket_open(context->resumption, name, iv, mac, ticket, (size_t)length, peer_id,
                            sizeof(peer_id), &expires_ms) ||
        !admits(session, peer_id) || !claim_set(&session->claim, peer_id, expires_ms, name))
        return WOLFSSL_TICKET_RET_REJECT;
    *out_length = length;
    return WOLFSSL_TICKET_RET_OK;
}

/* Tickets and sessions: see resumption.h. Without resumption the server sends no ticket. */
MT_RESULT mt_tls_claim_configure(WOLFSSL_CTX *ctx, enum mt_tls_role role,
                                 struct mt_tls_context *context)
{
    if (role == MT_TLS_SERVER) {
        /* Stateless: the server keeps no session (a ticket carries it); nor does a client
         * without resumption. A client with it must not turn the cache off: wolfSSL_set_session
         * then refuses every session. */
        wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
        if (context->resumption == NULL)
            MT_ENSURE(wolfSSL_CTX_no_ticket_TLSv13(ctx) == 0, MT_ERR_CRYPTO);
    } else if (context->resumption == NULL) {
        wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
    } else {
        /* Kept sessions live in resumption.c's table only, not in wolfSSL's global cache. */
        wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_NO_INTERNAL_STORE);
    }
    if (context->resumption == NULL || role == MT_TLS_CLIENT)
        return MT_OK_RESULT;
    int lifetime = (int)mt_tls_resumption_lifetime(context->resumption);
    MT_ENSURE(wolfSSL_CTX_set_TicketEncCb(ctx, ticket_callback) == WOLFSSL_SUCCESS &&
                  wolfSSL_CTX_set_TicketEncCtx(ctx, context) == WOLFSSL_SUCCESS &&
                  wolfSSL_CTX_set_TicketHint(ctx, lifetime) == WOLFSSL_SUCCESS &&
                  /* Builds with WOLFSSL_ERROR_CODE_OPENSSL (Debian's) return the old value. */
                  wolfSSL_CTX_set_timeout(ctx, (unsigned)lifetime) >= 0,
              MT_ERR_CRYPTO);
#if LIBWOLFSSL_VERSION_HEX >= 0x05009000
    /*
     * A resumption only with a fresh key share (psk_dhe_ke), as libmeshtls clients always ask: a
     * client that offers psk_ke alone, whose resumed connection would have neither forward
     * secrecy nor the post-quantum share, is refused (PSK_KEY_ERROR). 5.5.4 has no such switch.
     */
    MT_ENSURE(wolfSSL_CTX_only_dhe_psk(ctx) == 0, MT_ERR_CRYPTO);
#endif
    return MT_OK_RESULT;
}

/* FNV-1a: tells a ticket from the one offered (not a security check). */
static uint64_t ticket_hash(const unsigned char *bytes, size_t length)
{
    uint64_t hash = 0xcbf29ce484222325u;
    for (size_t i = 0; i < length; i++)
        hash = (hash ^ bytes[i]) * 0x100000001b3u;
    return hash;
}

/* The client session's current ticket, hashed; 0 without one (or one longer than we keep). */
static uint64_t current_ticket(struct mt_tls_session *session)
{
    unsigned char ticket[512];
    word32 size = sizeof(ticket);
    if (wolfSSL_get_SessionTicket(session->ssl, ticket, &size) != WOLFSSL_SUCCESS || size == 0)
        return 0;
    return ticket_hash(ticket, size);
}

void mt_tls_claim_offer(struct mt_tls_session *session)
{
    struct mt_tls_resumption *resumption = session->context->resumption;
    if (resumption == NULL || session->destination_length == 0 || wolfSSL_is_server(session->ssl))
        return;
    char peer_id[MT_SPIFFE_ID_MAX + 1];
    long long expires_ms = 0;
    if (!mt_tls_client_offer(resumption, session->destination, session->destination_length,
                             session->ssl, admits, session, peer_id, sizeof(peer_id), &expires_ms))
        return;
    /* Out of memory, the session is offered with no claim: resuming it is then refused. */
    claim_set(&session->claim, peer_id, expires_ms, NULL);
    session->offered = true;
    session->offered_ticket = current_ticket(session);
}

void mt_tls_claim_keep_ticket(struct mt_tls_session *session)
{
    if (!session->want_ticket)
        return;
    uint64_t ticket = current_ticket(session);
    if (ticket == 0 || ticket == session->offered_ticket)
        return;
    session->want_ticket = false;
    if (session->trusted_until_ms > mt_tls_resumption_now_ms())
        mt_tls_client_keep(session->context->resumption, session->destination,
                           session->destination_length, session->ssl, session->peer_id,
                           session->trusted_until_ms);
}

/*
 * Who the peer is was proven now (verify.c) or by the full handshake a resumed one continues (the
 * claim of the ticket or kept session it resumed with). Anything else is refused. A claim the
 * handshake did not resume with is dropped unread.
 */
bool mt_tls_claim_finish_handshake(struct mt_tls_session *session)
{
    session->resumed = wolfSSL_session_reused(session->ssl) != 0;
    bool client = !wolfSSL_is_server(session->ssl);
    bool proven = session->resumed ? adopt_claim(session) : session->verified;
    mt_tls_claim_clear(&session->claim);
    if (!proven) {
        mt_tls_failure_explain(session, "peer was not authenticated");
        return false;
    }
    if (client && !session->resumed && session->context->resumption != NULL &&
        session->destination_length > 0) {
        if (session->offered) /* the server refused the session: it will send a new ticket */
            mt_tls_client_forget(session->context->resumption, session->destination,
                                 session->destination_length);
        session->want_ticket = true;
    }
    return true;
}
