/*
 * Interception at connect(), accept() and adoption (see intercept.h for the table of decisions).
 *
 * Owns the decision whether a socket becomes ours, taken once per socket by mt_intercept_decide
 * from facts the callers gather (the kernel's view of the socket, the runtime's configuration,
 * policy's verdict), and the opening of the connection it decides. Must never decide anywhere but
 * in mt_intercept_decide, touch a socket that is not TCP over IP, nor change errno on a call it
 * passes through to libc. How an intercepted connection behaves afterwards is conn.c's.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "../policy/policy.h"
#include "../util/addr.h"
#include "../util/log.h"
#include "../util/sys.h"
#include "../util/text.h"
#include "conn.h"
#include "intercept.h"
#include "members.h"
#include "runtime.h"
#include "table.h"

/* Why a connection is refused, as its log line and meshtls_last_error() say it. */
#define REASON_MAX 600

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

static bool is_ours(int fd)
{
    struct mt_conn *existing = mt_table_acquire(fd);
    if (existing == NULL)
        return false;
    mt_conn_release(existing);
    return true;
}

/* ---- the decision -------------------------------------------------------------------------- */

/* The direct-link API asked for mTLS: neither plaintext nor permissive detection. */
static bool is_forced(const struct mt_intercept_facts *facts)
{
    return (facts->flags & MT_INTERCEPT_FORCE_MTLS) != 0;
}

/* A verdict for plaintext does not stand: the caller asked for mTLS, or it was meshed already. */
static bool overrules_plain(const struct mt_intercept_facts *facts)
{
    return (facts->flags & (MT_INTERCEPT_FORCE_MTLS | MT_INTERCEPT_ADOPTED)) != 0;
}

static struct mt_intercept_decision decide_outbound(const struct mt_intercept_facts *facts)
{
    struct mt_intercept_decision decision = {.action = MT_INTERCEPT_MESH};
    if (facts->config_failed) {
        decision.action = MT_INTERCEPT_REFUSE;
        decision.refusal = MT_INTERCEPT_REFUSAL_CONFIG;
        decision.outbound = (struct mt_outbound_decision){.mode = MT_OUTBOUND_MTLS, .rule = -1};
        return decision;
    }
    if (!overrules_plain(facts) &&
        (facts->outbound.skipped || facts->outbound.mode == MT_OUTBOUND_PLAIN))
        return (struct mt_intercept_decision){.action = MT_INTERCEPT_PASS};
    /* mTLS whatever the verdict said; only a verdict of mtls names an expected server identity. */
    decision.outbound = facts->outbound;
    decision.outbound.mode = MT_OUTBOUND_MTLS;
    return decision;
}

static struct mt_intercept_decision decide_inbound(const struct mt_intercept_facts *facts)
{
    struct mt_intercept_decision decision = {.action = MT_INTERCEPT_MESH};
    if (facts->config_failed) {
        decision.action = MT_INTERCEPT_REFUSE;
        decision.refusal = MT_INTERCEPT_REFUSAL_CONFIG;
        decision.inbound =
            (struct mt_inbound_decision){.mode = MT_INBOUND_STRICT, .rule_index = -1};
        return decision;
    }
    if (!overrules_plain(facts) &&
        (facts->inbound.skipped || facts->inbound.mode == MT_INBOUND_PLAIN))
        return (struct mt_intercept_decision){.action = MT_INTERCEPT_PASS};
    /* The verdict's rule (its allow list) applies whatever the mode becomes. */
    decision.inbound = facts->inbound;
    /* Opaque ports (servers that speak first) are never detected: mTLS from the start. */
    if (facts->inbound.mode == MT_INBOUND_PERMISSIVE && !is_forced(facts))
        decision.detect = !facts->inbound.opaque;
    else
        decision.inbound.mode = MT_INBOUND_STRICT;
    if (facts->peer_gone) {
        decision.action = MT_INTERCEPT_REFUSE;
        decision.refusal = MT_INTERCEPT_REFUSAL_PEER_GONE;
        decision.detect = false; /* refused outright, permissive or not */
    }
    return decision;
}

struct mt_intercept_decision mt_intercept_decide(const struct mt_intercept_facts *facts)
{
    if (facts->direction == MT_INTERCEPT_OUTBOUND)
        return decide_outbound(facts);
    return decide_inbound(facts);
}

/* ---- gathering the facts, acting on the decision ------------------------------------------- */

/*
 * The decision for a socket to or from peer (outbound: the destination; inbound: the address
 * policy decides for) on local. config_message gets the configuration's error when it failed.
 */
static struct mt_intercept_decision decide_socket(enum mt_intercept_direction direction,
                                                  enum mt_intercept_flags flags,
                                                  const struct sockaddr_storage *local,
                                                  const struct sockaddr_storage *peer,
                                                  bool peer_gone, const char **config_message)
{
    struct mt_intercept_facts facts = {
        .direction = direction,
        .flags = flags,
        .config_failed = mt_runtime_config_failed(config_message),
        .peer_gone = peer_gone,
    };
    if (!facts.config_failed && direction == MT_INTERCEPT_OUTBOUND) {
        facts.outbound = mt_policy_decide_outbound(mt_runtime_config(), peer);
        /* "auto": the mesh membership settles it here, before the table of intercept.h. */
        mt_members_decide(mt_runtime_config(), peer, &facts.outbound);
    } else if (!facts.config_failed)
        facts.inbound = mt_policy_decide_inbound(mt_runtime_config(), local, peer);
    return mt_intercept_decide(&facts);
}

/*
 * Opens the connection decided for fd, published in the table with a reference for the caller
 * (NULL when no object could be had). *meshable: it has an identity to handshake with (else it
 * starts failed, or, permissive, detects with plaintext as its only way on).
 */
/* What the caller asks of a connection besides the decision. */
struct opening {
    enum mt_intercept_flags flags;
    const char *pinned_identity; /* outbound: a pattern the server must match too, or NULL */
    bool outbound_may_retry;     /* NO_WAIT connect: no identity yet is EAGAIN, not a refusal */
    bool retry_later;            /* set when nothing was opened for that reason */
};

static struct mt_conn *open_decided(int fd, enum mt_intercept_direction direction,
                                    const struct mt_intercept_decision *decision,
                                    const struct sockaddr_storage *local,
                                    const struct sockaddr_storage *peer, const char *config_message,
                                    struct opening *opening, bool *meshable)
{
    char text[REASON_MAX];
    struct mt_text reason = mt_text_on(text, sizeof(text));
    struct mt_tls_context *context = NULL;
    bool pending = false;
    if (decision->refusal == MT_INTERCEPT_REFUSAL_CONFIG)
        mt_text_set(&reason, "configuration error: %s", config_message);
    else if (decision->refusal == MT_INTERCEPT_REFUSAL_PEER_GONE)
        mt_text_set(&reason, "peer reset the connection before accept() returned");
    else if (opening->flags & MT_INTERCEPT_NO_WAIT)
        context = mt_runtime_context_now(&reason, &pending);
    else
        context = mt_runtime_context(&reason);
    /* An outbound connection not yet started is not opened at all: the caller retries. */
    if (pending && direction == MT_INTERCEPT_OUTBOUND && opening->outbound_may_retry) {
        opening->retry_later = true;
        return NULL;
    }
    if (pending)
        mt_text_append(&reason, " (the agent is still being asked; meshtls_init waits for it)");
    /* The configuration in force: the defaults when it failed (a refused connection's). */
    const struct mt_config *config = mt_runtime_config();
    struct mt_conn_settings settings = {
        .mode = decision->inbound.mode, /* read for a server only */
        .detect = decision->detect,
        .outbound = decision->outbound,
        .pinned_identity = opening->pinned_identity,
        .inbound = decision->inbound,
        .config = config,
        .handshake_timeout_ms = config->handshake_timeout_ms,
        .detect_timeout_ms = config->detect_timeout_ms,
    };
    enum mt_tls_role role = direction == MT_INTERCEPT_OUTBOUND ? MT_TLS_CLIENT : MT_TLS_SERVER;
    struct mt_conn *conn =
        mt_conn_open(fd, role, context, local, peer, &settings, mt_text_string(&reason));
    if (meshable != NULL)
        *meshable = context != NULL;
    mt_tls_context_release(context);
    return conn;
}

int mt_intercept_connect(int fd, const struct sockaddr *address, socklen_t length,
                         enum mt_intercept_flags flags)
{
    return mt_intercept_connect_pinned(fd, address, length, flags, NULL);
}

int mt_intercept_connect_pinned(int fd, const struct sockaddr *address, socklen_t length,
                                enum mt_intercept_flags flags, const char *pinned_identity)
{
    struct sockaddr_storage destination;
    if (address == NULL || !mt_addr_copy(&destination, address, length) || !is_inet(&destination) ||
        !is_tcp_socket(fd))
        return mt_sys_app_connect(fd, address, length);
    /* A second connect() on a socket already ours asks the kernel how the first one went. */
    if (is_ours(fd))
        return mt_sys_app_connect(fd, address, length);

    const char *config_message = NULL;
    struct mt_intercept_decision decision =
        decide_socket(MT_INTERCEPT_OUTBOUND, flags, NULL, &destination, false, &config_message);
    if (decision.action == MT_INTERCEPT_PASS)
        return mt_sys_app_connect(fd, address, length);
    if (decision.action == MT_INTERCEPT_REFUSE) {
        /* Only a failed configuration refuses a connect: no mode is known. */
        char peer[MT_ADDR_TEXT_MAX];
        mt_addr_format(&destination, peer, sizeof(peer));
        mt_log_warn("refused outbound connection to %s (mode unknown): configuration error: %s",
                    peer, config_message);
        errno = ECONNREFUSED;
        return -1;
    }
    bool meshable = false;
    struct opening opening = {flags, pinned_identity, (flags & MT_INTERCEPT_NO_WAIT) != 0, false};
    struct mt_conn *conn = open_decided(fd, MT_INTERCEPT_OUTBOUND, &decision, NULL, &destination,
                                        config_message, &opening, &meshable);
    if (conn == NULL) {
        errno = opening.retry_later ? EAGAIN : ENOMEM;
        return -1;
    }
    /* Without an identity the connection is failed already: no SYN leaves. */
    int result = -1;
    int connect_errno = ECONNREFUSED;
    if (meshable) {
        result = mt_sys_app_connect(fd, address, length);
        connect_errno = errno;
    }
    result = mt_conn_after_connect(conn, result, connect_errno);
    MT_PRESERVING_ERRNO(mt_conn_release(conn));
    return result;
}

/*
 * Takes over fd, just accepted: returns fd (ours or passed by), or -1 when it could not be handed
 * over (then closed).
 */
static int take_accepted(int fd, enum mt_intercept_flags flags)
{
    struct sockaddr_storage local;
    struct sockaddr_storage peer;
    socklen_t local_length = sizeof(local);
    socklen_t peer_length = sizeof(peer);
    memset(&local, 0, sizeof(local));
    memset(&peer, 0, sizeof(peer));
    if (mt_sys_getsockname(fd, (struct sockaddr *)&local, &local_length) != 0 || !is_inet(&local) ||
        !is_tcp_socket(fd))
        return fd;
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
    struct mt_intercept_decision decision = decide_socket(MT_INTERCEPT_INBOUND, flags, &local,
                                                          &decided_for, peer_gone, &config_message);
    if (decision.action == MT_INTERCEPT_PASS)
        return fd;
    /* Even refused, the connection is handed over: its first read reports the failure. */
    struct opening opening = {flags, NULL, false, false};
    struct mt_conn *conn = open_decided(fd, MT_INTERCEPT_INBOUND, &decision, &local, &peer,
                                        config_message, &opening, NULL);
    if (conn == NULL) {
        mt_sys_close(fd);
        return -1;
    }
    mt_conn_release(conn);
    return fd;
}

int mt_intercept_accept(int listener, struct sockaddr *address, socklen_t *length,
                        enum mt_intercept_flags flags)
{
    int fd = mt_sys_app_accept(listener, address, length);
    if (fd < 0)
        return fd;
    MT_PRESERVING_ERRNO(fd = take_accepted(fd, flags));
    if (fd < 0)
        errno = ECONNABORTED;
    return fd;
}

int mt_intercept_accept4(int listener, struct sockaddr *address, socklen_t *length,
                         int socket_flags, enum mt_intercept_flags flags)
{
    int fd = mt_sys_app_accept4(listener, address, length, socket_flags);
    if (fd < 0)
        return fd;
    MT_PRESERVING_ERRNO(fd = take_accepted(fd, flags));
    if (fd < 0)
        errno = ECONNABORTED;
    return fd;
}

void mt_intercept_adopt(int fd, enum mt_intercept_direction direction,
                        const struct sockaddr_storage *destination, enum mt_intercept_flags flags)
{
    if (is_ours(fd) || !is_tcp_socket(fd))
        return;
    struct sockaddr_storage local;
    struct sockaddr_storage peer;
    socklen_t local_length = sizeof(local);
    socklen_t peer_length = sizeof(peer);
    memset(&local, 0, sizeof(local));
    memset(&peer, 0, sizeof(peer));
    (void)mt_sys_getsockname(fd, (struct sockaddr *)&local, &local_length);
    (void)mt_sys_getpeername(fd, (struct sockaddr *)&peer,
                             &peer_length); /* a connect may be in flight */
    if (direction == MT_INTERCEPT_OUTBOUND && destination != NULL)
        peer = *destination;

    /*
     * The parent decided this connection is mTLS (else it would not be handed over). The new
     * program takes the decision again from the same configuration, so the allow list, the
     * expected server identity and permissive detection still apply here; only a decision for
     * plaintext is overruled: what was meshed stays meshed.
     */
    const char *config_message = NULL;
    struct mt_intercept_decision decision =
        decide_socket(direction, MT_INTERCEPT_ADOPTED, &local, &peer, false, &config_message);
    struct opening opening = {MT_INTERCEPT_ADOPTED | flags, NULL, false, false};
    struct mt_conn *conn =
        open_decided(fd, direction, &decision, &local, &peer, config_message, &opening, NULL);
    if (conn != NULL) {
        mt_log_debug("adopted inherited connection on fd %d (%s side)", fd,
                     direction == MT_INTERCEPT_INBOUND ? "server" : "client");
        mt_conn_release(conn);
    }
}

struct mt_conn *mt_intercept_adopt_session(int fd, const unsigned char *state, size_t length)
{
    struct sockaddr_storage local;
    struct sockaddr_storage peer;
    socklen_t local_length = sizeof(local);
    socklen_t peer_length = sizeof(peer);
    memset(&local, 0, sizeof(local));
    memset(&peer, 0, sizeof(peer));
    (void)mt_sys_getsockname(fd, (struct sockaddr *)&local, &local_length);
    (void)mt_sys_getpeername(fd, (struct sockaddr *)&peer, &peer_length);
    enum mt_intercept_direction direction =
        mt_conn_export_is_server(state, length) ? MT_INTERCEPT_INBOUND : MT_INTERCEPT_OUTBOUND;
    /* The settings this program's configuration gives such a connection (its timeouts, its log
     * lines' mode); the peer was authorized when the session began. */
    const char *config_message = NULL;
    struct mt_intercept_decision decision =
        decide_socket(direction, MT_INTERCEPT_ADOPTED, &local, &peer, false, &config_message);
    char text[REASON_MAX];
    struct mt_text reason = mt_text_on(text, sizeof(text));
    struct mt_tls_context *context = mt_runtime_context(&reason);
    const struct mt_config *config = mt_runtime_config();
    struct mt_conn_settings settings = {
        .mode = decision.inbound.mode,
        .outbound = decision.outbound,
        .inbound = decision.inbound,
        .config = config,
        .handshake_timeout_ms = config->handshake_timeout_ms,
        .detect_timeout_ms = config->detect_timeout_ms,
    };
    struct mt_conn *conn = mt_conn_open_handed_over(fd, context, &local, &peer, &settings, state,
                                                    length, mt_text_string(&reason));
    mt_tls_context_release(context);
    return conn;
}
