/*
 * What a connection tells the operator (see conn_internal.h): the one line for a refusal or a
 * failure, the line for an established session, and the line for plaintext let through.
 *
 * Each line names the direction, the peer, the local port inbound, the mode policy gave the
 * connection, and the reason, in words the integration tests and the operators' alerts match:
 *
 *     refused inbound connection from 10.0.0.7:51234 on :8443 (mode strict): peer did not speak TLS
 *     mtls connection outbound to 10.0.0.9:5432 (mode mtls): <what broke the session>
 *
 * It owns the wording only: it must never change a connection's state, and never log key
 * material (identities, addresses and reasons only).
 */
#include <stdbool.h>

#include "../util/addr.h"
#include "../util/log.h"
#include "conn_internal.h"

/* The mode named in log lines: a client's is mtls, a server's strict or permissive. */
static const char *mode_name(const struct mt_conn *conn)
{
    if (conn->role == MT_TLS_CLIENT)
        return mt_outbound_mode_name(MT_OUTBOUND_MTLS);
    return mt_inbound_mode_name(conn->settings.mode == MT_INBOUND_PERMISSIVE ? MT_INBOUND_PERMISSIVE
                                                                             : MT_INBOUND_STRICT);
}

void mt_conn_log_failure(const struct mt_conn *conn, const char *reason)
{
    /* Refused: never established. Failed: the session was up and broke afterwards. */
    bool refused = conn->state != MT_CONN_ESTABLISHED;
    const char *what = refused ? "refused" : "mtls connection";
    char peer[MT_ADDR_TEXT_MAX];
    mt_addr_compact_format(&conn->peer, peer, sizeof(peer));
    if (conn->role == MT_TLS_CLIENT)
        mt_log_warn("%s outbound %s %s (mode %s): %s", what, refused ? "connection to" : "to", peer,
                    mode_name(conn), reason);
    else
        mt_log_warn("%s inbound %s %s on :%u (mode %s): %s", what,
                    refused ? "connection from" : "from", peer, mt_addr_compact_port(&conn->local),
                    mode_name(conn), reason);
}

void mt_conn_log_established(struct mt_conn *conn)
{
    if (!mt_log_is_enabled(MT_LOG_INFO))
        return;
    char peer[MT_ADDR_TEXT_MAX];
    mt_addr_compact_format(&conn->peer, peer, sizeof(peer));
    const char *resumed = mt_tls_resumed(conn->tls) ? ", resumed" : "";
    if (conn->role == MT_TLS_CLIENT)
        mt_log_info("mtls outbound to %s: peer %s, %s %s %s%s", peer, mt_tls_peer_id(conn->tls),
                    mt_tls_version(conn->tls), mt_tls_cipher(conn->tls),
                    mt_tls_key_exchange(conn->tls), resumed);
    else
        mt_log_info("mtls inbound from %s on :%u: peer %s, %s %s %s%s", peer,
                    mt_addr_compact_port(&conn->local), mt_tls_peer_id(conn->tls),
                    mt_tls_version(conn->tls), mt_tls_cipher(conn->tls),
                    mt_tls_key_exchange(conn->tls), resumed);
}

/* A probe (policy's probe exception) at debug: the kubelet probes every few seconds. */
void mt_conn_log_plain(const struct mt_conn *conn, const char *why)
{
    bool probe = conn->settings.inbound.probe;
    if (!mt_log_is_enabled(probe ? MT_LOG_DEBUG : MT_LOG_INFO))
        return;
    char peer[MT_ADDR_TEXT_MAX];
    mt_addr_compact_format(&conn->peer, peer, sizeof(peer));
    if (probe)
        mt_log_debug("plaintext inbound from %s on :%u (mode %s, probe source on a probe port): "
                     "%s",
                     peer, mt_addr_compact_port(&conn->local), mode_name(conn), why);
    else
        mt_log_info("plaintext inbound from %s on :%u (mode %s): %s", peer,
                    mt_addr_compact_port(&conn->local), mode_name(conn), why);
}
