/*
 * A server's NewSessionTicket (what wolfSSL sends once the client's Finished is in), held to
 * leave in one send with the next record, the application's first bytes.
 *
 * Sent alone it would wake the client's poller with nothing to read: programs such as wrk count
 * the EAGAIN that follows readiness as a read error (test_real_nginx). Sent alone it would also be
 * the small segment in flight that makes Nagle hold a server-speaks-first greeting until the
 * client's delayed ACK (test_handshake_flights). A server that never writes never sends its
 * ticket: its clients do full handshakes.
 *
 * Owns the held bytes. Must never reorder them: what is held leaves before anything written after
 * it, or not at all.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int mt_tls_held_ticket_hold(struct mt_tls_session *session, const char *buffer, int size)
{
    size_t length = session->held_ticket_length + (size_t)size;
    unsigned char *held = length <= UINT16_MAX ? realloc(session->held_ticket, length) : NULL;
    if (held == NULL && session->held_ticket_length > 0) {
        errno = ENOMEM; /* what is held must go first */
        return mt_tls_record_send_failure(session);
    }
    if (held == NULL) {
        ssize_t n = mt_tls_record_send_now(session, buffer, (size_t)size);
        return n >= 0 ? (int)n : mt_tls_record_send_failure(session);
    }
    memcpy(held + session->held_ticket_length, buffer, (size_t)size);
    session->held_ticket = held;
    session->held_ticket_length = (uint16_t)length;
    return size;
}

void mt_tls_held_ticket_drop(struct mt_tls_session *session)
{
    free(session->held_ticket);
    session->held_ticket = NULL;
    session->held_ticket_length = 0;
}

int mt_tls_held_ticket_send_before(struct mt_tls_session *session, const char *buffer, int size)
{
    size_t ticket = session->held_ticket_length;
    unsigned char *both = malloc(ticket + (size_t)size);
    if (both == NULL) {
        errno = ENOMEM;
        return mt_tls_record_send_failure(session);
    }
    memcpy(both, session->held_ticket, ticket);
    memcpy(both + ticket, buffer, (size_t)size);
    ssize_t n = mt_tls_record_send_now(session, both, ticket + (size_t)size);
    free(both);
    if (n < 0)
        return mt_tls_record_send_failure(session);
    if ((size_t)n < ticket) {
        /* Part of the ticket went: keep the rest in front of the record. */
        session->held_ticket_length = (uint16_t)(ticket - (size_t)n);
        memmove(session->held_ticket, session->held_ticket + n, session->held_ticket_length);
        return WOLFSSL_CBIO_ERR_WANT_WRITE;
    }
    mt_tls_held_ticket_drop(session);
    return (size_t)n == ticket ? WOLFSSL_CBIO_ERR_WANT_WRITE : (int)((size_t)n - ticket);
}
