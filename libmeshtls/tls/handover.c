/*
 * A live session's complete state, exported into a caller's buffer and imported into a new
 * session in another process (exec of a handler, the next child of a privilege-separated server).
 *
 * Owns the export format and the plaintext an imported session carries until the application
 * reads it. The state is wolfSSL's own export (wolfSSL_tls_export: keys, IVs, sequence numbers,
 * options) plus what that export leaves out (wolfSSL 5.5.4 and 5.9.2 alike: without the secrets
 * or the Finished flag below, the first KeyUpdate after an import fails) and libmeshtls holds
 * itself:
 *   - the TLS 1.3 application traffic secrets, from which each KeyUpdate derives the next keys
 *     (RFC 8446 §7.2), and that the peer's Finished was received (a KeyUpdate is refused as out
 *     of order without it): read and written at the places packaging/wolfssl/build.sh measured
 *     in struct WOLFSSL, since no API gives them (nor how much of a record wolfSSL holds);
 *   - decrypted plaintext the application has not read yet (wolfSSL's export drops it);
 *   - ciphertext read ahead (record.c), what the socket has not taken of close_notify, a
 *     server's held NewSessionTicket (already encrypted: it takes a sequence number);
 *   - the proven peer identity, and the flags of the session's life.
 * Must never export a session in the middle of a record (wolfSSL's export cannot carry a partial
 * record in its input buffer), and must never leave key material behind: every buffer that held
 * it is wiped, and a failed export wipes what it wrote.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#if defined(WOLFSSL_SESSION_EXPORT) && __has_include(<wolfssl/meshtls_secrets.h>)
#include <wolfssl/meshtls_secrets.h>
#define HANDOVER_SUPPORTED 1
#else
#define HANDOVER_SUPPORTED 0
#define MT_WOLFSSL_SECRET_LENGTH 64
#endif

/*
 * wolfSSL's export starts with 2 bytes of protocol and version, 2 of total length, 2 of the
 * options' length, then the options (internal.c, ExportOptions): processReply, the state of the
 * record being read, is the 49th. 0 (doProcessInit): between records. The same in 5.5.4 (export
 * format 4) and 5.9.2 (format 6, whose new options come after it).
 */
#define EXPORT_OPTIONS_AT 6
#define PROCESS_REPLY_IN_OPTIONS 48

enum flag {
    FLAG_HANDSHAKE_DONE = 1 << 0,
    FLAG_SHUTDOWN_SENT = 1 << 1,
    FLAG_TRANSPORT_EOF = 1 << 2,
    FLAG_RESUMED = 1 << 3,
    FLAG_VERIFIED = 1 << 4,
    FLAG_SERVER = 1 << 5,
};

/* The fixed part, before the variable-length fields in this order. */
struct header {
    unsigned char magic[4];
    uint32_t flags;
    uint32_t wolfssl_length;
    uint32_t peer_id_length;
    uint32_t ahead_length;
    uint32_t plaintext_length;
    uint32_t unsent_alert_length;
    uint32_t held_ticket_length;
    int64_t trusted_until_ms;
    char key_exchange[24]; /* the group's name (mt_tls_key_exchange), NUL-terminated */
    unsigned char client_secret[MT_WOLFSSL_SECRET_LENGTH];
    unsigned char server_secret[MT_WOLFSSL_SECRET_LENGTH];
};

/* wolfSSL's state and the peer's ID (4096), the read-ahead (4 records, record.c), the plaintext
 * wolfSSL has decrypted and not handed out (1 record), alerts and a held ticket (1024). */
_Static_assert(sizeof(struct header) + 4096 +
                       5 * (MT_TLS_RECORD_HEADER_SIZE + MT_TLS_RECORD_MAX +
                            MT_TLS_RECORD_EXPANSION_MAX) +
                       1024 <=
                   MT_TLS_EXPORT_MAX,
               "MT_TLS_EXPORT_MAX too small for a session's state");

static void wipe(void *data, size_t length)
{
    if (data != NULL && length > 0)
        explicit_bzero(data, length);
}

#if HANDOVER_SUPPORTED

/* "MTH" and a format version: an export from another build of libmeshtls is refused. */
static const unsigned char magic[4] = {'M', 'T', 'H', 2};

/* A field of struct WOLFSSL at an offset build.sh measured. */
static unsigned char *field_at(WOLFSSL *ssl, size_t offset)
{
    return (unsigned char *)ssl + offset;
}

/* wolfSSL's peer-address callbacks for export: TLS has no address to carry (the socket does). */
static int get_no_peer(WOLFSSL *ssl, char *ip, int *ip_length, unsigned short *port, int *family)
{
    (void)ssl;
    ip[0] = '\0';
    *ip_length = 0;
    *port = 0;
    *family = 0;
    return WOLFSSL_SUCCESS;
}

static int set_no_peer(WOLFSSL *ssl, char *ip, int ip_length, unsigned short port, int family)
{
    (void)ssl;
    (void)ip;
    (void)ip_length;
    (void)port;
    (void)family;
    return WOLFSSL_SUCCESS;
}

void mt_tls_handover_configure(WOLFSSL_CTX *ctx)
{
    /* Without these wolfSSL's defaults would call wolfSSL_set_fd on import, which replaces the
     * I/O callbacks' context (the session) with a pointer to its own fd. */
    wolfSSL_CTX_SetIOGetPeer(ctx, get_no_peer);
    wolfSSL_CTX_SetIOSetPeer(ctx, set_no_peer);
}

#else

void mt_tls_handover_configure(WOLFSSL_CTX *ctx)
{
    (void)ctx;
}

#endif

bool mt_tls_handover_is_supported(void)
{
    return HANDOVER_SUPPORTED;
}

size_t mt_tls_handover_take(struct mt_tls_session *session, void *buffer, size_t length, bool peek)
{
    size_t count = session->carried_length < length ? session->carried_length : length;
    memcpy(buffer, session->carried, count);
    if (peek || count == 0)
        return count;
    session->carried_length -= count;
    memmove(session->carried, session->carried + count, session->carried_length);
    if (session->carried_length == 0) {
        free(session->carried);
        session->carried = NULL;
    }
    return count;
}

void mt_tls_handover_free(struct mt_tls_session *session)
{
    wipe(session->carried, session->carried_length);
    free(session->carried);
    session->carried = NULL;
    session->carried_length = 0;
}

#if HANDOVER_SUPPORTED

/* Appends length bytes at *at within capacity; false when they do not fit. */
static bool put(unsigned char *buffer, size_t capacity, size_t *at, const void *data, size_t length)
{
    if (length > capacity - *at)
        return false;
    if (length > 0)
        memcpy(buffer + *at, data, length);
    *at += length;
    return true;
}

#endif

MT_RESULT mt_tls_session_export(struct mt_tls_session *session, unsigned char *buffer,
                                size_t capacity, size_t *length)
{
    MT_ENSURE_REF(session);
    MT_ENSURE_REF(buffer);
    MT_ENSURE_REF(length);
    *length = 0;
#if !HANDOVER_SUPPORTED
    (void)capacity;
    return mt_result_of(MT_ERR_UNSUPPORTED);
#else
    /* A handshake in progress, or a failed session, has no state worth carrying; a record half
     * sent is in wolfSSL's output buffer, which its export leaves out; records encrypted for a
     * blocking writer and not written yet, or a read-ahead buffer lent to a reader in the
     * kernel (record.c's transports), belong to a transfer still running. */
    uint32_t unsent_output;
    memcpy(&unsent_output, field_at(session->ssl, MT_WOLFSSL_OUTPUT_LENGTH_OFFSET),
           sizeof(unsent_output));
    MT_ENSURE(session->handshake_done && session->reason == NULL && unsent_output == 0 &&
                  session->outgoing_length == 0 && !session->outgoing_busy &&
                  !session->incoming_busy,
              MT_ERR_HANDOVER_STATE);
    struct header header = {.trusted_until_ms = session->trusted_until_ms};
    memcpy(header.magic, magic, sizeof(magic));
    header.flags = FLAG_HANDSHAKE_DONE | (session->shutdown_sent ? FLAG_SHUTDOWN_SENT : 0) |
                   (session->transport_eof ? FLAG_TRANSPORT_EOF : 0) |
                   (session->resumed ? FLAG_RESUMED : 0) | (session->verified ? FLAG_VERIFIED : 0) |
                   (wolfSSL_is_server(session->ssl) ? FLAG_SERVER : 0);
    memcpy(header.client_secret, field_at(session->ssl, MT_WOLFSSL_CLIENT_SECRET_OFFSET),
           sizeof(header.client_secret));
    memcpy(header.server_secret, field_at(session->ssl, MT_WOLFSSL_SERVER_SECRET_OFFSET),
           sizeof(header.server_secret));
    snprintf(header.key_exchange, sizeof(header.key_exchange), "%s", mt_tls_key_exchange(session));

    mt_result result = mt_result_of(MT_ERR_TOO_LONG);
    size_t at = sizeof(header);
    unsigned char *wolfssl = buffer + at;
    unsigned int wolfssl_length = capacity > at ? (unsigned int)(capacity - at) : 0;
    if (wolfSSL_tls_export(session->ssl, wolfssl, &wolfssl_length) <= 0)
        goto out;
    /* Between records only: a partial record in wolfSSL's input is not in its export. */
    uint32_t input_length;
    uint32_t input_index;
    memcpy(&input_length, field_at(session->ssl, MT_WOLFSSL_INPUT_LENGTH_OFFSET),
           sizeof(input_length));
    memcpy(&input_index, field_at(session->ssl, MT_WOLFSSL_INPUT_INDEX_OFFSET),
           sizeof(input_index));
    if (wolfssl_length <= EXPORT_OPTIONS_AT + PROCESS_REPLY_IN_OPTIONS ||
        wolfssl[EXPORT_OPTIONS_AT + PROCESS_REPLY_IN_OPTIONS] != 0 || input_index != input_length) {
        result = mt_result_of(MT_ERR_HANDOVER_STATE);
        goto out;
    }
    at += wolfssl_length;
    header.wolfssl_length = wolfssl_length;

    const char *peer_id = mt_tls_peer_id(session);
    header.peer_id_length = (uint32_t)strlen(peer_id);
    if (!put(buffer, capacity, &at, peer_id, header.peer_id_length))
        goto out;
    header.ahead_length = (uint32_t)(session->ahead_end - session->ahead_start);
    if (!put(buffer, capacity, &at, session->ahead + session->ahead_start, header.ahead_length))
        goto out;
    /* Decrypted and not read yet: what an earlier import carried, then wolfSSL's (peeked, so a
     * failed export leaves the session as it was). */
    if (!put(buffer, capacity, &at, session->carried, session->carried_length))
        goto out;
    int wolfssl_pending = wolfSSL_pending(session->ssl);
    size_t pending = wolfssl_pending > 0 ? (size_t)wolfssl_pending : 0;
    if (pending > capacity - at)
        goto out;
    if (pending > 0 && wolfSSL_peek(session->ssl, buffer + at, (int)pending) != (int)pending) {
        result = mt_result_of(MT_ERR_HANDOVER_STATE);
        goto out;
    }
    at += pending;
    header.plaintext_length = (uint32_t)(session->carried_length + pending);
    header.unsent_alert_length = session->unsent_alert_length;
    if (!put(buffer, capacity, &at, session->unsent_alert, session->unsent_alert_length))
        goto out;
    header.held_ticket_length = session->held_ticket_length;
    if (!put(buffer, capacity, &at, session->held_ticket, session->held_ticket_length))
        goto out;
    memcpy(buffer, &header, sizeof(header));
    *length = at;
    result = MT_OK_RESULT;
out:
    wipe(&header, sizeof(header));
    if (!mt_result_is_ok(result))
        wipe(buffer, capacity < at ? capacity : at);
    return result;
#endif
}

#if HANDOVER_SUPPORTED

/* Takes length bytes at *at of the export into a new allocation (NULL when length is 0). */
static bool take(const unsigned char *buffer, size_t size, size_t *at, size_t length,
                 unsigned char **copy)
{
    *copy = NULL;
    if (length > size - *at)
        return false;
    if (length == 0)
        return true;
    *copy = malloc(length);
    if (*copy == NULL)
        return false;
    memcpy(*copy, buffer + *at, length);
    *at += length;
    return true;
}

static MT_RESULT import_into(struct mt_tls_session *session, const struct header *header,
                             const unsigned char *buffer, size_t length)
{
    size_t at = sizeof(*header);
    MT_ENSURE(header->wolfssl_length <= length - at, MT_ERR_HANDOVER_STATE);
    MT_ENSURE(wolfSSL_tls_import(session->ssl, buffer + at, header->wolfssl_length) > 0,
              MT_ERR_HANDOVER_STATE);
    at += header->wolfssl_length;
    memcpy(field_at(session->ssl, MT_WOLFSSL_CLIENT_SECRET_OFFSET), header->client_secret,
           sizeof(header->client_secret));
    memcpy(field_at(session->ssl, MT_WOLFSSL_SERVER_SECRET_OFFSET), header->server_secret,
           sizeof(header->server_secret));
    /* The handshake finished in the exporting process: the peer's KeyUpdate is in order. */
    *field_at(session->ssl, MT_WOLFSSL_GOT_FINISHED_OFFSET) |= MT_WOLFSSL_GOT_FINISHED_MASK;

    unsigned char *peer_id = NULL;
    MT_ENSURE(header->peer_id_length <= 4096 &&
                  take(buffer, length, &at, header->peer_id_length, &peer_id),
              MT_ERR_HANDOVER_STATE);
    session->peer_id = calloc(1, (size_t)header->peer_id_length + 1);
    if (session->peer_id != NULL && peer_id != NULL)
        memcpy(session->peer_id, peer_id, header->peer_id_length);
    free(peer_id);
    MT_ENSURE(session->peer_id != NULL, MT_ERR_NO_MEMORY);
    session->key_exchange = strndup(header->key_exchange, sizeof(header->key_exchange) - 1);
    MT_ENSURE(session->key_exchange != NULL, MT_ERR_NO_MEMORY);

    /* Read into once drained: the buffer must have the read-ahead's whole capacity. */
    MT_ENSURE(header->ahead_length <= length - at &&
                  mt_tls_record_restore_ahead(session, buffer + at, header->ahead_length),
              MT_ERR_HANDOVER_STATE);
    at += header->ahead_length;
    unsigned char *carried = NULL;
    MT_ENSURE(take(buffer, length, &at, header->plaintext_length, &carried), MT_ERR_HANDOVER_STATE);
    session->carried = carried;
    session->carried_length = header->plaintext_length;
    unsigned char *alert = NULL;
    MT_ENSURE(header->unsent_alert_length <= UINT16_MAX &&
                  take(buffer, length, &at, header->unsent_alert_length, &alert),
              MT_ERR_HANDOVER_STATE);
    session->unsent_alert = alert;
    session->unsent_alert_length = (uint16_t)header->unsent_alert_length;
    unsigned char *ticket = NULL;
    MT_ENSURE(header->held_ticket_length <= UINT16_MAX &&
                  take(buffer, length, &at, header->held_ticket_length, &ticket),
              MT_ERR_HANDOVER_STATE);
    session->held_ticket = ticket;
    session->held_ticket_length = (uint16_t)header->held_ticket_length;
    MT_ENSURE(at == length, MT_ERR_HANDOVER_STATE);

    session->started = true;
    session->handshake_done = true;
    session->saw_first_byte = true;
    session->shutdown_sent = (header->flags & FLAG_SHUTDOWN_SENT) != 0;
    session->transport_eof = (header->flags & FLAG_TRANSPORT_EOF) != 0;
    session->resumed = (header->flags & FLAG_RESUMED) != 0;
    session->verified = (header->flags & FLAG_VERIFIED) != 0;
    session->trusted_until_ms = header->trusted_until_ms;
    /* A ticket arriving now would be bound to a resumption secret that did not cross: not kept. */
    session->want_ticket = false;
    return MT_OK_RESULT;
}

#endif

MT_RESULT mt_tls_session_import(struct mt_tls_context *context, int fd, const unsigned char *buffer,
                                size_t length, struct mt_tls_session **out)
{
    MT_ENSURE_REF(context);
    MT_ENSURE_REF(buffer);
    MT_ENSURE_REF(out);
    *out = NULL;
#if !HANDOVER_SUPPORTED
    (void)fd;
    (void)length;
    return mt_result_of(MT_ERR_UNSUPPORTED);
#else
    struct header header;
    MT_ENSURE(length >= sizeof(header), MT_ERR_HANDOVER_STATE);
    memcpy(&header, buffer, sizeof(header));
    mt_result result = mt_result_of(MT_ERR_HANDOVER_STATE);
    struct mt_tls_session *session = NULL;
    if (memcmp(header.magic, magic, sizeof(magic)) != 0 || !(header.flags & FLAG_HANDSHAKE_DONE))
        goto out;
    enum mt_tls_role role = (header.flags & FLAG_SERVER) ? MT_TLS_SERVER : MT_TLS_CLIENT;
    result = mt_tls_session_new(context, role, fd, &session);
    if (!mt_result_is_ok(result))
        goto out;
    result = import_into(session, &header, buffer, length);
out:
    wipe(&header, sizeof(header));
    if (!mt_result_is_ok(result)) {
        mt_tls_session_free(session);
        session = NULL;
    }
    *out = session;
    return result;
#endif
}
