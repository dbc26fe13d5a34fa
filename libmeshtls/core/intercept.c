/*
 * Interception decisions at connect() and accept() (see intercept.h).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../policy/policy.h"
#include "../util/addr.h"
#include "../util/log.h"
#include "../util/sys.h"
#include "conn.h"
#include "intercept.h"
#include "table.h"
#include "runtime.h"

static int socket_option(int fd, int name)
{
    int value = -1;
    socklen_t length = sizeof(value);
    if (mt_sys_getsockopt(fd, SOL_SOCKET, name, &value, &length) != 0)
        return -1;
    return value;
}

static bool is_tcp_socket(int fd)
{
    int domain = socket_option(fd, SO_DOMAIN);
    return (domain == AF_INET || domain == AF_INET6) && socket_option(fd, SO_TYPE) == SOCK_STREAM &&
           socket_option(fd, SO_PROTOCOL) == IPPROTO_TCP;
}

static bool is_inet(const struct sockaddr_storage *address)
{
    return address->ss_family == AF_INET || address->ss_family == AF_INET6;
}

/* A connection's settings before policy decides: the configuration's timeouts, mode strict. */
static struct mt_conn_settings conn_settings(const struct mt_config *config)
{
    return (struct mt_conn_settings){
        .mode = MT_INBOUND_STRICT,
        .config = config,
        .handshake_timeout_ms = config->handshake_timeout_ms,
        .detect_timeout_ms = config->detect_timeout_ms,
    };
}

int mt_intercept_connect(int fd, const struct sockaddr *address, socklen_t length, bool always_mtls)
{
    struct sockaddr_storage destination;
    if (address == NULL || !mt_addr_copy(&destination, address, length) || !is_inet(&destination) ||
        !is_tcp_socket(fd))
        return mt_sys_app_connect(fd, address, length);
    /* A second connect() on a socket already ours asks the kernel how the first one went. */
    struct mt_conn *existing = mt_table_acquire(fd);
    if (existing != NULL) {
        mt_conn_release(existing);
        return mt_sys_app_connect(fd, address, length);
    }

    const char *config_message = NULL;
    char reason[600];
    struct mt_tls_context *context = NULL;
    if (mt_runtime_config_failed(&config_message)) {
        char peer[MT_ADDR_TEXT_MAX];
        mt_addr_format(&destination, peer, sizeof(peer));
        mt_log_warn("refused outbound connection to %s (mode unknown): configuration error: %s",
                    peer, config_message);
        errno = ECONNREFUSED;
        return -1;
    }
    const struct mt_config *config = mt_runtime_config();
    struct mt_conn_settings settings = conn_settings(config);
    settings.outbound = mt_policy_decide_outbound(config, &destination);
    if (!always_mtls && (settings.outbound.skipped || settings.outbound.mode == MT_OUTBOUND_PLAIN))
        return mt_sys_app_connect(fd, address, length);

    context = mt_runtime_context(reason, sizeof(reason));
    struct mt_conn *conn =
        mt_conn_open(fd, MT_TLS_CLIENT, context, NULL, &destination, &settings, reason);
    mt_tls_context_release(context);
    if (conn == NULL) {
        errno = ENOMEM;
        return -1;
    }
    int result = -1;
    int connect_errno = ECONNREFUSED;
    if (context != NULL) {
        result = mt_sys_app_connect(fd, address, length);
        connect_errno = errno;
    }
    result = mt_conn_after_connect(conn, result, connect_errno);
    int saved = errno;
    mt_conn_release(conn);
    errno = saved;
    return result;
}

int mt_intercept_accept(int listener, struct sockaddr *address, socklen_t *length, int flags,
                        bool use_accept4, bool always_mtls)
{
    int fd = use_accept4 ? mt_sys_app_accept4(listener, address, length, flags)
                         : mt_sys_app_accept(listener, address, length);
    if (fd < 0)
        return fd;
    int saved = errno;
    struct sockaddr_storage local;
    struct sockaddr_storage peer;
    socklen_t local_length = sizeof(local);
    socklen_t peer_length = sizeof(peer);
    memset(&local, 0, sizeof(local));
    memset(&peer, 0, sizeof(peer));
    if (mt_sys_getsockname(fd, (struct sockaddr *)&local, &local_length) != 0 || !is_inet(&local) ||
        !is_tcp_socket(fd)) {
        errno = saved;
        return fd;
    }
    /*
     * A peer that reset the connection before accept() returned has no address any more, yet
     * what it sent first can still be read. Policy is decided as for a peer on the same side of
     * loopback as the local address (a loopback address is reachable only from loopback), and a
     * connection that policy would not pass as plaintext is handed over failed: its first read
     * says ECONNRESET, and those bytes never reach the application as plaintext.
     */
    struct sockaddr_storage decided_for = local;
    bool peer_gone = mt_sys_getpeername(fd, (struct sockaddr *)&peer, &peer_length) != 0;
    if (peer_gone) {
        memset(&peer, 0, sizeof(peer)); /* logged as "?" */
        mt_addr_set_port(&decided_for, 0);
    } else {
        decided_for = peer;
    }

    const char *config_message = NULL;
    char reason[600];
    struct mt_tls_context *context = NULL;
    struct mt_conn_settings settings = conn_settings(mt_runtime_config());
    if (mt_runtime_config_failed(&config_message)) {
        snprintf(reason, sizeof(reason), "configuration error: %s", config_message);
    } else {
        settings.inbound = mt_policy_decide_inbound(mt_runtime_config(), &local, &decided_for);
        if (!always_mtls &&
            (settings.inbound.skipped || settings.inbound.mode == MT_INBOUND_PLAIN)) {
            errno = saved;
            return fd;
        }
        /* Opaque ports (servers that speak first) are never detected: mTLS from the start. */
        if (settings.inbound.mode == MT_INBOUND_PERMISSIVE && !always_mtls) {
            settings.mode = MT_INBOUND_PERMISSIVE;
            settings.detect = !settings.inbound.opaque;
        }
        if (peer_gone) {
            settings.detect = false; /* refused outright, permissive or not */
            snprintf(reason, sizeof(reason), "peer reset the connection before accept() returned");
        } else {
            context = mt_runtime_context(reason, sizeof(reason));
        }
    }
    /* Even refused, the connection is handed over: its first read reports the failure. */
    struct mt_conn *conn =
        mt_conn_open(fd, MT_TLS_SERVER, context, &local, &peer, &settings, reason);
    mt_tls_context_release(context);
    if (conn == NULL) {
        mt_sys_close(fd);
        errno = ECONNABORTED;
        return -1;
    }
    mt_conn_release(conn);
    errno = saved;
    return fd;
}

void mt_intercept_adopt(int fd, bool server, const struct sockaddr_storage *destination)
{
    struct mt_conn *existing = mt_table_acquire(fd);
    if (existing != NULL) {
        mt_conn_release(existing);
        return;
    }
    if (!is_tcp_socket(fd))
        return;
    struct sockaddr_storage local;
    struct sockaddr_storage peer;
    socklen_t local_length = sizeof(local);
    socklen_t peer_length = sizeof(peer);
    memset(&local, 0, sizeof(local));
    memset(&peer, 0, sizeof(peer));
    (void)mt_sys_getsockname(fd, (struct sockaddr *)&local, &local_length);
    /* A connect may be in flight. */
    (void)mt_sys_getpeername(fd, (struct sockaddr *)&peer, &peer_length);
    if (!server && destination != NULL)
        peer = *destination;

    /*
     * The parent decided this connection is mTLS (else it would not be handed over). The new
     * program takes the decision again from the same configuration, so the allow list, the
     * expected server identity and permissive detection still apply here; only a decision for
     * plaintext is overruled: what was meshed stays meshed.
     */
    const char *config_message = NULL;
    char reason[600];
    struct mt_tls_context *context = NULL;
    struct mt_conn_settings settings = conn_settings(mt_runtime_config());
    if (mt_runtime_config_failed(&config_message)) {
        snprintf(reason, sizeof(reason), "configuration error: %s", config_message);
    } else {
        const struct mt_config *config = mt_runtime_config();
        if (server) {
            settings.inbound = mt_policy_decide_inbound(config, &local, &peer);
            if (settings.inbound.mode == MT_INBOUND_PERMISSIVE) {
                settings.mode = MT_INBOUND_PERMISSIVE;
                settings.detect = !settings.inbound.opaque;
            }
        } else {
            settings.outbound = mt_policy_decide_outbound(config, &peer);
        }
        context = mt_runtime_context(reason, sizeof(reason));
    }
    struct mt_conn *conn = mt_conn_open(fd, server ? MT_TLS_SERVER : MT_TLS_CLIENT, context, &local,
                                        &peer, &settings, reason);
    mt_tls_context_release(context);
    if (conn != NULL) {
        mt_log_debug("adopted inherited connection on fd %d (%s side)", fd,
                     server ? "server" : "client");
        mt_conn_release(conn);
    }
}
