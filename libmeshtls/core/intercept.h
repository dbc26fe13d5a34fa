/*
 * The one place that decides whether a socket becomes ours.
 *
 * A socket is intercepted when it is AF_INET or AF_INET6, SOCK_STREAM, IPPROTO_TCP (asked of the
 * kernel, never assumed from how it was created), and policy says mTLS for its destination
 * (connect) or its peer (accept). Everything else - Unix sockets, UDP, plain-policy TCP, sockets
 * of unknown type - is handed to libc untouched, errno included.
 *
 * When the configuration failed to load, no policy is known and every TCP connection is refused
 * with a log line: a broken config must never silently mean plaintext.
 *
 * The decision itself is mt_intercept_decide(), a pure function of what is known about the
 * socket; the functions around it gather those facts from the kernel and the runtime, and act.
 * An outbound verdict of auto never reaches it: the mesh membership turns it into mtls or plain
 * first (core/members.h).
 *
 *   direction  policy's verdict         flags               configuration  →  decision
 *   ---------  -----------------------  ------------------  -------------     ---------------------
 *   either     any                      any                 failed            REFUSE (config)
 *   either     plain, or port skipped   none                loaded            PASS
 *   either     plain, or port skipped   FORCE_MTLS/ADOPTED  loaded            MESH (mtls / strict)
 *   outbound   mtls                     any                 loaded            MESH (mtls)
 *   inbound    strict                   any                 loaded            MESH (strict)
 *   inbound    permissive               none or ADOPTED     loaded            MESH (permissive,
 *                                                                              detect unless
 * opaque) inbound    permissive               FORCE_MTLS          loaded            MESH (strict)
 *   inbound    anything but PASS, the peer reset before accept() returned     REFUSE (peer gone)
 *
 * A refused connect() fails at once (ECONNREFUSED); a refused accepted or adopted socket is handed
 * over failed, so that its first use reports the refusal and nothing reaches the application.
 */
#ifndef MT_CORE_INTERCEPT_H
#define MT_CORE_INTERCEPT_H

#include <stdbool.h>
#include <sys/socket.h>

#include "../policy/policy.h"

/* Who asks, besides the policy. */
enum mt_intercept_flags {
    MT_INTERCEPT_BY_POLICY = 0, /* the hooks: policy decides */
    /* The direct-link API: mTLS whatever policy says; policy still supplies the expected server
     * identity and the allow list, but neither plaintext nor permissive detection. */
    MT_INTERCEPT_FORCE_MTLS = 1u << 0,
    /* An fd whose connection already exists (inherited across exec, meshtls_wrap): what was
     * meshed stays meshed, so a plain verdict is overruled; permissive detection still applies. */
    MT_INTERCEPT_ADOPTED = 1u << 1,
    /* The direct-link API on a non-blocking socket: never wait for the agent. Without an
     * identity yet, a connect fails with EAGAIN before any SYN (retry later); an accepted
     * connection is refused, its reason saying the agent is still being asked. */
    MT_INTERCEPT_NO_WAIT = 1u << 2,
};

enum mt_intercept_direction {
    MT_INTERCEPT_OUTBOUND, /* connect: we are the TLS client */
    MT_INTERCEPT_INBOUND,  /* accept: we are the TLS server */
};

enum mt_intercept_action {
    MT_INTERCEPT_PASS,   /* not ours: libc handles the socket, errno untouched */
    MT_INTERCEPT_MESH,   /* ours: mTLS with the process's identity (permissive: detect first) */
    MT_INTERCEPT_REFUSE, /* ours, refused before a byte moves: refusal says why */
};

enum mt_intercept_refusal {
    MT_INTERCEPT_REFUSAL_NONE,
    MT_INTERCEPT_REFUSAL_CONFIG,    /* the configuration failed to load */
    MT_INTERCEPT_REFUSAL_PEER_GONE, /* the peer reset the connection before accept() returned */
};

/* What is known about a socket when it is decided. */
struct mt_intercept_facts {
    enum mt_intercept_direction direction;
    enum mt_intercept_flags flags;
    bool config_failed; /* no configuration, hence no verdict */
    bool peer_gone;     /* inbound: the peer reset before accept() returned */
    /* Policy's verdict for the direction (the other one is ignored). */
    struct mt_outbound_decision outbound;
    struct mt_inbound_decision inbound;
};

/*
 * MESH and REFUSE: what the connection is opened with (struct mt_conn_settings, conn.h). The
 * verdict of the decision's direction is policy's except for its mode, which is the mode the
 * connection runs in, as its log lines name it: outbound mtls; inbound strict or permissive.
 */
struct mt_intercept_decision {
    enum mt_intercept_action action;
    enum mt_intercept_refusal refusal;
    bool detect; /* inbound permissive (not opaque): look at the first bytes first */
    struct mt_outbound_decision outbound;
    struct mt_inbound_decision inbound;
};

/* The decision for a socket, from facts alone: no I/O, the same answer every time. */
struct mt_intercept_decision mt_intercept_decide(const struct mt_intercept_facts *facts);

/* connect(): flags MT_INTERCEPT_BY_POLICY (the hooks) or MT_INTERCEPT_FORCE_MTLS (the API). */
int mt_intercept_connect(int fd, const struct sockaddr *address, socklen_t length,
                         enum mt_intercept_flags flags);

/*
 * connect() with pinned_identity (a SPIFFE ID pattern, see mt_policy_identity_matches; NULL:
 * none) that the server's ID must match, besides what policy expects of it.
 */
int mt_intercept_connect_pinned(int fd, const struct sockaddr *address, socklen_t length,
                                enum mt_intercept_flags flags, const char *pinned_identity);

/* accept() and accept4() (socket_flags: SOCK_NONBLOCK, SOCK_CLOEXEC), flags as for connect. */
int mt_intercept_accept(int listener, struct sockaddr *address, socklen_t *length,
                        enum mt_intercept_flags flags);
int mt_intercept_accept4(int listener, struct sockaddr *address, socklen_t *length,
                         int socket_flags, enum mt_intercept_flags flags);

/*
 * Takes over fd, whose connection exists with its handshake not started (inherited across exec,
 * see inherit.h, or handed to meshtls_wrap): as the server side of an accepted connection
 * (inbound), or the client side of a connect to destination (outbound; the parent's view: the
 * connect may still be in flight; NULL: the kernel's peer address). flags: MT_INTERCEPT_NO_WAIT
 * or none (MT_INTERCEPT_ADOPTED is implied).
 */
void mt_intercept_adopt(int fd, enum mt_intercept_direction direction,
                        const struct sockaddr_storage *destination, enum mt_intercept_flags flags);

/*
 * Takes over fd, whose established session another process exported into state (an exec, see
 * inherit.h), with the configuration's settings for it. Returns the connection with a reference
 * for the caller (NULL without memory); a session that cannot be taken over leaves it FAILED,
 * its TCP connection reset.
 */
struct mt_conn *mt_intercept_adopt_session(int fd, const unsigned char *state, size_t length);

#endif
