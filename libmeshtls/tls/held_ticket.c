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

/*
 * The held ticket, then buffer, in as many writes as the socket takes, until part of buffer has
 * gone or the kernel refuses. A short write is no EAGAIN: the socket may still be writable, and
 * an edge-triggered poller is woken only when it turns writable again. Reported as WANT_WRITE,
 * the rest waited for a wakeup that never came, and the reply stayed in the session (found by the
 * fault soak, tests/integration/test_soak_faults.py). wolfSSL itself writes on after a short
 * count, as here once the ticket is out: WANT_WRITE only ever follows the kernel's EAGAIN.
 */
int mt_tls_held_ticket_send_before(struct mt_tls_session *session, const char *buffer, int size)
{
    size_t ticket = session->held_ticket_length;
    size_t total = ticket + (size_t)size;
    unsigned char *both = malloc(total);
    if (both == NULL) {
        errno = ENOMEM;
        return mt_tls_record_send_failure(session);
    }
    memcpy(both, session->held_ticket, ticket);
    memcpy(both + ticket, buffer, (size_t)size);
    size_t sent = 0;
    int error = 0;
    while (sent <= ticket) {
        ssize_t n = mt_tls_record_send_now(session, both + sent, total - sent);
        if (n < 0) {
            error = errno;
            break;
        }
        sent += (size_t)n;
    }
    free(both);
    if (sent >= ticket) {
        mt_tls_held_ticket_drop(session);
    } else if (sent > 0) {
        /* Part of the ticket went: the rest stays in front of the record. */
        session->held_ticket_length = (uint16_t)(ticket - sent);
        memmove(session->held_ticket, session->held_ticket + sent, session->held_ticket_length);
    }
    if (sent > ticket)
        return (int)(sent - ticket);
    errno = error;
    return mt_tls_record_send_failure(session);
}
