/*
 * TLS sessions: one intercepted socket's TLS 1.3 connection, from the handshake to close_notify.
 *
 * Owns a session's lifetime and the order of its steps: offering a kept session before the first
 * handshake step (claim.c), deciding who the peer is once the handshake is done (claim.c,
 * verify.c), reading, writing, and ending with close_notify. A session never blocks and never
 * waits: every call reports what it needs next (tls.h), and the bytes go through record.c, never
 * through libc. Must never report a peer that nothing proved.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The mesh's ALPN id: marks a connection as ours for servers that must tell mesh from app TLS. */
static const char mesh_alpn[] = MT_TLS_MESH_ALPN;

MT_RESULT mt_tls_session_new(struct mt_tls_context *context, enum mt_tls_role role, int fd,
                             struct mt_tls_session **out)
{
    MT_ENSURE_REF(context);
    MT_ENSURE_REF(out);
    struct mt_tls_session *session = calloc(1, sizeof(*session));
    MT_ENSURE(session != NULL, MT_ERR_NO_MEMORY);
    session->fd = fd;
    session->send_flags = MSG_NOSIGNAL;
    session->context = mt_tls_context_acquire(context);
    WOLFSSL_CTX *ctx = NULL;
    mt_result result = mt_tls_context_ctx(context, role, &ctx);
    if (!mt_result_is_ok(result))
        goto out;
    session->ssl = wolfSSL_new(ctx);
    if (session->ssl == NULL) {
        result = mt_result_of(MT_ERR_NO_MEMORY);
        goto out;
    }
    wolfSSL_SetIOReadCtx(session->ssl, session);
    wolfSSL_SetIOWriteCtx(session->ssl, session);
    wolfSSL_SetCertCbCtx(session->ssl, session);
    if (role == MT_TLS_CLIENT &&
        wolfSSL_UseALPN(session->ssl, (char *)mesh_alpn, sizeof(mesh_alpn) - 1,
                        WOLFSSL_ALPN_CONTINUE_ON_MISMATCH) != WOLFSSL_SUCCESS)
        result = mt_result_of(MT_ERR_CRYPTO);
out:
    if (!mt_result_is_ok(result)) {
        mt_tls_session_free(session);
        session = NULL;
    }
    *out = session;
    return result;
}

void mt_tls_session_set_peer_filter(struct mt_tls_session *session, mt_tls_peer_filter filter,
                                    void *argument)
{
    session->peer_filter = filter;
    session->peer_filter_argument = argument;
}

const char *mt_tls_own_id(const struct mt_tls_session *session)
{
    return session->context->credentials->spiffe_id;
}

void mt_tls_session_set_fd(struct mt_tls_session *session, int fd)
{
    session->fd = fd;
}

void mt_tls_session_set_destination(struct mt_tls_session *session,
                                    const unsigned char *destination, size_t length)
{
    if (length > sizeof(session->destination))
        length = 0;
    memcpy(session->destination, destination, length);
    session->destination_length = (uint8_t)length;
}

bool mt_tls_resumed(const struct mt_tls_session *session)
{
    return session->resumed;
}

void mt_tls_session_free(struct mt_tls_session *session)
{
    if (session == NULL)
        return;
    if (session->want_ticket)
        mt_tls_claim_keep_ticket(session);
    mt_tls_handover_free(session);
    free(session->ahead);
    free(session->outgoing);
    free(session->unsent_alert);
    free(session->held_ticket);
    wolfSSL_free(session->ssl);
    mt_tls_context_release(session->context);
    mt_tls_failure_free(session);
    free(session->peer_id);
    free(session->key_exchange);
    mt_tls_claim_clear(&session->claim);
    free(session);
}

enum mt_tls_status mt_tls_handshake(struct mt_tls_session *session)
{
    if (session->handshake_done)
        return MT_TLS_OK;
    if (!session->started) {
        session->started = true;
        mt_tls_claim_offer(session);
    }
    int ret = wolfSSL_is_server(session->ssl) ? wolfSSL_accept(session->ssl)
                                              : wolfSSL_connect(session->ssl);
    if (ret == WOLFSSL_SUCCESS) {
        if (!mt_tls_claim_finish_handshake(session)) {
            session->error_number = ECONNRESET;
            return MT_TLS_ERROR;
        }
        session->handshake_done = true;
        mt_tls_forget_handshake_extensions(session);
        mt_tls_record_release_idle_buffer(session);
        return MT_TLS_OK;
    }
    /*
     * wolfSSL before 5.6.4 (the system build's 5.5.4; the bundled 5.9.2 has the fixes) loses the
     * WANT_WRITE of a flight the socket did not take at once:
     * connect/accept fail with no error set (wolfSSL issues #5325 and #6678, fixed by PRs #6692
     * and #7001). The flight is still buffered and the next call sends it, so wait for
     * writability; the handshake timeout bounds the wait should the cause ever be another.
     * Found by the fault soak (tests/integration/test_soak_faults.py, injected EAGAIN).
     * A send that failed outright (a reset) is lost the same way: record.c kept its errno, and
     * waiting would only turn the reset into a handshake timeout.
     */
    if (wolfSSL_get_error(session->ssl, ret) == WOLFSSL_ERROR_NONE && session->transport_errno == 0)
        return MT_TLS_WANT_WRITE;
    enum mt_tls_status status = mt_tls_failure_classify(session, ret);
    /* The first byte already proves it (a TLS stream starts with 22): no need to wait for the
     * rest of a record header, or for the handshake timeout, to refuse a plaintext peer. */
    if (status == MT_TLS_WANT_READ && session->first_byte_not_tls) {
        session->error_number = ECONNRESET;
        mt_tls_failure_explain(session, "peer did not speak TLS");
        return MT_TLS_ERROR;
    }
    return status;
}

enum mt_tls_status mt_tls_read(struct mt_tls_session *session, void *buffer, size_t length,
                               size_t *count, bool peek)
{
    *count = 0;
    if (session->carried_length > 0 && length > 0) {
        /* What an earlier process decrypted comes first; the next call reads on. */
        *count = mt_tls_handover_take(session, buffer, length, peek);
        return MT_TLS_OK;
    }
    int size = length > 0x40000000 ? 0x40000000 : (int)length;
    int ret =
        peek ? wolfSSL_peek(session->ssl, buffer, size) : wolfSSL_read(session->ssl, buffer, size);
    if (ret > 0) {
        *count = (size_t)ret;
        if (session->want_ticket) {
            /* A ticket comes before the first data (ours leaves with the server's first bytes):
             * none by now means none at all, and later reads do not look again. */
            mt_tls_claim_keep_ticket(session);
            session->want_ticket = false;
        }
        if (!session->ahead_filled)
            mt_tls_record_release_idle_buffer(session);
        return MT_TLS_OK;
    }
    enum mt_tls_status status = mt_tls_failure_classify(session, ret);
    if (status == MT_TLS_WANT_READ)
        mt_tls_record_release_idle_buffer(session);
    return status;
}

enum mt_tls_status mt_tls_write(struct mt_tls_session *session, const void *buffer, size_t length)
{
    if (length > MT_TLS_RECORD_MAX)
        length = MT_TLS_RECORD_MAX;
    int ret = wolfSSL_write(session->ssl, buffer, (int)length);
    if (ret > 0)
        return MT_TLS_OK;
    return mt_tls_failure_classify(session, ret);
}

enum mt_tls_status mt_tls_shutdown(struct mt_tls_session *session)
{
    if (!session->handshake_done)
        return MT_TLS_OK;
    if (!session->shutdown_sent) {
        mt_tls_held_ticket_drop(session); /* ending before it wrote anything: no ticket */
        session->shutdown_sent = true;    /* record.c now keeps what the socket does not take */
        int ret = wolfSSL_shutdown(session->ssl);
        session->close_notify_queued = true;
        if (ret != WOLFSSL_SUCCESS && ret != WOLFSSL_SHUTDOWN_NOT_DONE) {
            /*
             * Not sent: the transport failed, or the session is over already (the peer's EOF or
             * a fatal alert), when wolfSSL sends nothing more.
             */
            enum mt_tls_status status = mt_tls_failure_classify(session, ret);
            return status == MT_TLS_ERROR ? MT_TLS_ERROR : MT_TLS_CLOSED;
        }
    }
    return mt_tls_record_send_unsent_alert(session);
}

const char *mt_tls_peer_id(const struct mt_tls_session *session)
{
    return session->peer_id != NULL ? session->peer_id : "";
}

const char *mt_tls_cipher(struct mt_tls_session *session)
{
    const char *name = wolfSSL_get_cipher_name(session->ssl);
    return name != NULL ? name : "?";
}

const char *mt_tls_key_exchange(struct mt_tls_session *session)
{
    /* wolfSSL's export does not carry the group: the exporting process's name for it does. */
    if (session->key_exchange != NULL)
        return session->key_exchange;
    const char *name = wolfSSL_get_curve_name(session->ssl);
    return name != NULL ? name : "?";
}

const char *mt_tls_version(struct mt_tls_session *session)
{
    const char *name = wolfSSL_get_version(session->ssl);
    return name != NULL ? name : "?";
}
