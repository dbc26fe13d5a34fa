/*
 * A session's failure: the errno the application sees, and the reason a log line shows.
 *
 * Owns the classes of failure (transport, a peer that does not speak TLS, an EOF, an alert the
 * peer sent, an old protocol version, whatever wolfSSL reports) and the one reason each session
 * keeps. The reason is allocated at the first failure, so that a session that goes well carries
 * none. Must never let a later, derived failure hide the first one (the root cause), except for a
 * refusal decided on the peer's identity, which replaces what came before it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>

#include "internal.h"

/* The session's reason, allocated at the first call; NULL out of memory. */
static struct mt_text *reason_text(struct mt_tls_session *session)
{
    if (session->reason == NULL) {
        session->reason = malloc(sizeof(*session->reason));
        if (session->reason == NULL)
            return NULL;
        session->reason->text =
            mt_text_on(session->reason->buffer, sizeof(session->reason->buffer));
    }
    return &session->reason->text;
}

void mt_tls_failure_explain(struct mt_tls_session *session, const char *format, ...)
{
    if (session->reason != NULL)
        return;
    struct mt_text *text = reason_text(session);
    if (text == NULL)
        return;
    va_list arguments;
    va_start(arguments, format);
    mt_text_append_va(text, format, arguments);
    va_end(arguments);
}

void mt_tls_failure_replace(struct mt_tls_session *session, const char *format, ...)
{
    struct mt_text *text = reason_text(session);
    if (text == NULL)
        return;
    mt_text_clear(text);
    va_list arguments;
    va_start(arguments, format);
    mt_text_append_va(text, format, arguments);
    va_end(arguments);
}

bool mt_tls_failure_is_explained(const struct mt_tls_session *session)
{
    return session->reason != NULL;
}

void mt_tls_failure_free(struct mt_tls_session *session)
{
    free(session->reason);
    session->reason = NULL;
}

/*
 * The alert's name as RFC 8446 §6 spells it (wolfSSL_alert_desc_string_long exists only with the
 * OpenSSL compatibility layer).
 */
static const struct {
    int code;
    const char *name;
} alert_names[] = {
    {0, "close_notify"},
    {10, "unexpected_message"},
    {20, "bad_record_mac"},
    {22, "record_overflow"},
    {40, "handshake_failure"},
    {42, "bad_certificate"},
    {43, "unsupported_certificate"},
    {44, "certificate_revoked"},
    {45, "certificate_expired"},
    {46, "certificate_unknown"},
    {47, "illegal_parameter"},
    {48, "unknown_ca"},
    {49, "access_denied"},
    {50, "decode_error"},
    {51, "decrypt_error"},
    {70, "protocol_version"},
    {71, "insufficient_security"},
    {80, "internal_error"},
    {86, "inappropriate_fallback"},
    {90, "user_canceled"},
    {109, "missing_extension"},
    {110, "unsupported_extension"},
    {112, "unrecognized_name"},
    {113, "bad_certificate_status_response"},
    {115, "unknown_psk_identity"},
    {116, "certificate_required"},
    {120, "no_application_protocol"},
};

static const char *alert_name(int code)
{
    for (size_t i = 0; i < sizeof(alert_names) / sizeof(alert_names[0]); i++)
        if (alert_names[i].code == code)
            return alert_names[i].name;
    return "unknown alert";
}

enum mt_tls_status mt_tls_failure_classify(struct mt_tls_session *session, int ret)
{
    int error = wolfSSL_get_error(session->ssl, ret);
    switch (error) {
    case WOLFSSL_ERROR_WANT_READ:
        return MT_TLS_WANT_READ;
    case WOLFSSL_ERROR_WANT_WRITE:
        return MT_TLS_WANT_WRITE;
    case WOLFSSL_ERROR_ZERO_RETURN:
        return MT_TLS_CLOSED;
    default:
        break;
    }
    if (session->handshake_done && session->transport_eof && session->transport_errno == 0)
        return MT_TLS_CLOSED;

    session->error_number = ECONNRESET;
    if (session->transport_errno != 0) {
        session->error_number = session->transport_errno;
        mt_tls_failure_explain(session, "%s", strerror(session->transport_errno));
    } else if (session->first_byte_not_tls) {
        mt_tls_failure_explain(session, "peer did not speak TLS");
    } else if (session->transport_eof) {
        mt_tls_failure_explain(session, "peer closed the connection %s",
                               session->handshake_done ? "abruptly" : "during the handshake");
    }
    WOLFSSL_ALERT_HISTORY alerts;
    int received = wolfSSL_get_alert_history(session->ssl, &alerts) == WOLFSSL_SUCCESS
                       ? alerts.last_rx.code
                       : 0;
    /*
     * post_quantum = "require" offers and accepts hybrid groups only, and a peer without one
     * fails without saying so: a server finds no common group and answers handshake_failure
     * (40); a client is sent a HelloRetryRequest for a group it never offered (wolfSSL 5.9.2
     * falls back to its own first group, against RFC 8446 §4.1.4) and answers
     * illegal_parameter (47), or, if it is wolfSSL, fails with BAD_KEY_SHARE_DATA.
     */
    if (!session->handshake_done && session->context->post_quantum == MT_POST_QUANTUM_REQUIRE &&
        (received == 40 || received == 47 || error == BAD_KEY_SHARE_DATA))
        mt_tls_failure_explain(session,
                               "no post-quantum hybrid group in common with the peer "
                               "(post_quantum = \"require\" accepts no classical one; peer "
                               "alert: %s)",
                               received > 0 ? alert_name(received) : "none");
    if (!mt_tls_failure_is_explained(session) && received > 0)
        mt_tls_failure_explain(session, "peer sent TLS alert %d (%s) (%s)", alerts.last_rx.code,
                               alert_name(alerts.last_rx.code),
                               alerts.last_rx.code == 70 ? "it does not speak TLS 1.3"
                                                         : "it rejected our certificate or policy");
    /* A ClientHello without TLS 1.3 in supported_versions (RFC 8446 §4.2.1). */
    if (error == VERSION_ERROR)
        mt_tls_failure_explain(session, "peer offered only TLS 1.2 or older; TLS 1.3 is required");
    if (!mt_tls_failure_is_explained(session)) {
        char text[WOLFSSL_MAX_ERROR_SZ];
        wolfSSL_ERR_error_string_n((unsigned long)error, text, sizeof(text));
        mt_tls_failure_explain(session, "%s", text);
    }
    return MT_TLS_ERROR;
}

int mt_tls_error_number(const struct mt_tls_session *session)
{
    return session->error_number != 0 ? session->error_number : ECONNRESET;
}

const char *mt_tls_error_reason(const struct mt_tls_session *session)
{
    return session->reason != NULL ? mt_text_string(&session->reason->text) : "TLS failure";
}
