/*
 * One intercepted TCP connection: its TLS session and the state machine that makes it behave,
 * for the application, exactly like the plain socket it replaced.
 *
 *   CONNECTING ──(TCP up)──▶ HANDSHAKING ──▶ ESTABLISHED
 *                                 │               │
 *                                 └──▶ FAILED ◀───┘   (keeps the errno every later call returns)
 *   DETECTING ──(mesh ClientHello)──▶ HANDSHAKING      inbound permissive only
 *       └──(anything else, or the detection timeout)──▶ PLAIN (passed to the kernel as it is)
 *
 * Plain connections that policy leaves alone have no object at all: the hooks find nothing in the
 * table and pass the call to libc.
 *
 * The functions below are the emulated socket calls themselves, so unlike the rest of the core
 * they follow libc's convention: a count, or -1 with errno set to what the kernel would have said.
 * Every call makes progress without blocking first; it waits (outside the connection's lock) only
 * when the socket is blocking: an established connection in the application's own blocking read
 * or write (which the kernel bounds by SO_RCVTIMEO/SO_SNDTIMEO), a handshake in poll, bounded
 * by those and the handshake timeout.
 *
 * Whether the socket blocks, and its timeouts, are not asked of the kernel at each call: a
 * sandboxed child may not ask (fcntl and getsockopt kill it under seccomp). They are read once
 * when the connection opens, then kept in step by the hooks that change them in this process:
 * fcntl(F_SETFL), ioctl(FIONBIO), setsockopt(SO_RCVTIMEO/SO_SNDTIMEO). O_NONBLOCK belongs to the
 * file description, which dup, fork and SCM_RIGHTS share: a change made by another process (or
 * by a raw system call) is not seen here. That is trusted, because both ways it fails safe for
 * the stream: a socket thought blocking that is not makes the kernel's read or write say EAGAIN,
 * which the application gets as its own kernel would have told it; a socket thought
 * non-blocking that blocks makes a record transfer wait in the kernel until it completes (with
 * the connection's lock held, the one case where a writer can hold up a reader of this process).
 *
 * A connection reads nothing process-wide: what policy decided and the timeouts it keeps come in
 * struct mt_conn_settings when it opens, so that one can be driven alone, without a runtime, an
 * agent or a configuration file (tests/unit/test_conn.c). Its kernel calls all go through
 * util/sys.h.
 *
 * The engine is split by what each part does: conn.c the state machine and the connection's life,
 * conn_io.c the emulated transfers and the waits of a blocking socket, conn_poll.c the readiness
 * translation, conn_copy.c sendfile/splice, conn_log.c the lines the operator reads.
 */
#ifndef MT_CORE_CONN_H
#define MT_CORE_CONN_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "../metrics/metrics.h"
#include "../policy/policy.h"
#include "../tls/tls.h"
#include "../util/addr.h"
#include "../util/text.h"
#include "relay.h"

enum mt_conn_state {
    MT_CONN_CONNECTING,
    MT_CONN_DETECTING,
    MT_CONN_HANDSHAKING,
    MT_CONN_ESTABLISHED,
    MT_CONN_PLAIN,
    MT_CONN_FAILED,
};

/*
 * What a connection is told when it opens, and keeps unchanged: what policy decided for it at
 * connect() or accept(), and the configuration's timeouts. The caller fills it (core/intercept.c,
 * from the runtime's configuration).
 */
struct mt_conn_settings {
    /* A server's mode, as its log lines name it: MT_INBOUND_PERMISSIVE, else strict. A client's
     * is always mtls. */
    enum mt_inbound_mode mode;
    bool detect; /* inbound permissive (not opaque): look at the first bytes first */
    struct mt_outbound_decision outbound; /* client side: the expected server identity */
    /* Client side: a SPIFFE ID pattern (mt_policy_identity_matches) the server must match as
     * well as outbound's, from the direct-link API; NULL: none. mt_conn_open copies it. */
    const char *pinned_identity;
    struct mt_inbound_decision inbound; /* server side: the allow list */
    /* What inbound's allow list names its patterns in (mt_config_pattern); required for a
     * server (without it every peer is refused), and it outlives the connection. */
    const struct mt_config *config;
    unsigned handshake_timeout_ms; /* from the TCP connection up to the session established */
    unsigned detect_timeout_ms;    /* DETECTING: how long to wait for the first bytes */
};

struct mt_conn {
    atomic_uint references; /* the table's reference plus one per call in progress */
    struct mt_conn *next_free;
    pthread_mutex_t lock;

    int fd;
    enum mt_tls_role role;
    enum mt_conn_state state;
    enum mt_tls_status wants; /* what the TLS layer last asked for: WANT_READ or WANT_WRITE */
    bool write_closed;        /* shutdown(SHUT_WR): close_notify sent */
    bool peer_closed;         /* close_notify or EOF received */
    bool notify_pollers;      /* a change epoll waiters must look at (see epoll.h) */
    bool shared;              /* copied by fork and not claimed here (see process.h) */
    bool tls_started;         /* the TLS layer has seen the connection (see inherit.h) */
    bool held_across_exec;    /* its names were made close-on-exec (conn.c) */
    bool given_away;          /* exported to a new program: this copy is stale (see export) */
    bool shared_before_given; /* shared, as it was before it was given away */
    pid_t given_to;           /* that program's pid, once known (0 before), for the log line */
    ino_t socket_inode;       /* the socket's inode (0: unknown) */
    int *other_fds;           /* further names from dup/dup2/dup3/F_DUPFD; fd is the one in use */
    size_t other_fd_count;
    int failed_errno;
    /* Why it failed, for meshtls_last_error(), allocated then: the many connections that never
     * fail carry a pointer, not a buffer. NULL: not failed, failed in TCP, or no memory left. */
    char *failure_reason;
    struct mt_tls_context *context;
    struct mt_tls_session *tls;
    char *pinned_identity;      /* the connection's own copy of settings.pinned_identity */
    union mt_addr_compact peer; /* IPv4 or IPv6 only: the only families with a connection */
    union mt_addr_compact local;
    struct mt_conn_settings settings;
    struct mt_metrics_connection *metrics; /* counters once established (or passed as plain) */
    long long handshake_started_us;
    long long handshake_deadline_ms;
    long long detect_deadline_ms;
    /* A record's plaintext already handed to TLS and reported written, not yet fully sent. */
    uint8_t *unsent;
    size_t unsent_length;

    /*
     * What the hooks saw of the socket, so that a transfer asks the kernel nothing (see the top
     * of this file), and the kernel transfers made with the lock released (conn_io.c).
     */
    bool nonblocking;              /* O_NONBLOCK, as set through this process */
    long long receive_timeout_ms;  /* SO_RCVTIMEO; 0: none */
    long long send_timeout_ms;     /* SO_SNDTIMEO; 0: none */
    bool nagle_lifted;             /* TCP_NODELAY on for this write only (conn_nagle.c) */
    int application_nodelay;       /* meanwhile, the application's own TCP_NODELAY */
    pthread_cond_t kernel_io_done; /* a read or write made with the lock released has ended */

    /* Its record state's slot, when a fork made it shared while established (relay.h). */
    struct mt_relay_link relay;
};

/*
 * Creates the connection object for an outbound mTLS connection on fd (before the TCP connect)
 * or an accepted inbound one, and publishes it in the table. context may be NULL when no identity
 * could be had: the connection then starts FAILED with failure_reason (unless settings->detect:
 * then plaintext still passes and only a mesh client is refused). settings is copied; without
 * it, or without memory, the result is NULL. Returns with a reference for the caller (release
 * it), besides the table's.
 */
struct mt_conn *mt_conn_open(int fd, enum mt_tls_role role, struct mt_tls_context *context,
                             const struct sockaddr_storage *local,
                             const struct sockaddr_storage *peer,
                             const struct mt_conn_settings *settings, const char *failure_reason);

/* Called by connect() after the kernel's connect returned result (0 or -1 with errno). */
int mt_conn_after_connect(struct mt_conn *conn, int result, int connect_errno);

ssize_t mt_conn_recv(struct mt_conn *conn, void *buffer, size_t length, int flags);
ssize_t mt_conn_send(struct mt_conn *conn, const void *buffer, size_t length, int flags);
ssize_t mt_conn_recv_vector(struct mt_conn *conn, const struct iovec *vector, int count, int flags);
ssize_t mt_conn_send_vector(struct mt_conn *conn, const struct iovec *vector, int count, int flags);
/* shutdown(SHUT_WR/SHUT_RDWR) sends close_notify first, unless the connection is shared. */
int mt_conn_shutdown(struct mt_conn *conn, int how);
/* SO_ERROR: the connection's failure (once FAILED), else the kernel's pending error. */
int mt_conn_socket_error(struct mt_conn *conn);

/*
 * Readiness translation for poll-family waits.
 * prepare: makes progress, returns the events the app can be told now without waiting, sets
 * *kernel_events to what to ask the kernel for, and *deadline_ms to when a handshake in progress
 * times out (-1: none), so that the wait wakes up to report it. finish: given what the kernel
 * reported, makes progress and returns the events the app sees.
 */
short mt_conn_poll_prepare(struct mt_conn *conn, short app_events, short *kernel_events,
                           long long *deadline_ms);
short mt_conn_poll_finish(struct mt_conn *conn, short app_events, short kernel_asked,
                          short kernel_revents);

/*
 * For an event loop that drives the handshake itself (the direct-link API): makes the progress
 * the socket allows, never waiting whatever the socket's mode, and says what is left. WANTS_READ
 * and WANTS_WRITE: the socket must become readable or writable first; FAILED: *failed_errno is
 * what every later call returns.
 */
enum mt_conn_progress {
    MT_CONN_PROGRESS_DONE, /* established (or passed as plaintext): transfers may begin */
    MT_CONN_PROGRESS_WANTS_READ,
    MT_CONN_PROGRESS_WANTS_WRITE,
    MT_CONN_PROGRESS_FAILED,
};
enum mt_conn_progress mt_conn_handshake_progress(struct mt_conn *conn, int *failed_errno);

/*
 * fd, one of conn's names, is being closed (its table entry already removed; the reference the
 * table held passes to this call). When it was the last name, sends what is left unsent and
 * close_notify (time-bounded; not for a shared connection).
 */
void mt_conn_close(struct mt_conn *conn, int fd);

/* fd is a new name for conn (dup and friends): publishes it in the table. */
bool mt_conn_add_alias(struct mt_conn *conn, int fd);

/*
 * Resets the TCP connection (the peer sees RST) and fails it, with one log line saying why
 * (reason, a phrase). The fd stays open: the socket is left unconnected, and whatever writes to
 * it later gets an error, never a byte on the wire. For a session that cannot follow where its
 * fd goes (a new program that cannot be interposed).
 */
void mt_conn_reset(struct mt_conn *conn, const char *reason);

/* mt_conn_reset through fd, a name of conn's socket in this process: a vfork child's own, where
 * conn->fd is the parent's number and may name another file. */
void mt_conn_reset_on(struct mt_conn *conn, int fd, const char *reason);

/*
 * Hand-over to another process (conn_handover.c). mt_conn_export writes conn's whole state into
 * buffer (at most MT_CONN_EXPORT_MAX bytes; it holds key material: wipe it once used): only an
 * established connection, once what the TLS layer committed is sent (a bounded wait), else
 * MT_ERR_HANDOVER_STATE. From a successful export on, this copy is given away: the state is the
 * new program's, and a record sent from here would repeat its sequence numbers. Its close and
 * shutdown send nothing, and its next read or write fails (ECONNRESET, one log line), until
 * mt_conn_take_back (the program could not be started).
 *
 * from_vfork_child: the caller shares its parent's memory while other threads of the parent may
 * run (process.h). The lock is then only tried, for a bounded time (a holder keeps it for one
 * step of a transfer, never across a wait); nothing is allocated, nothing waits for the socket,
 * and a copy whose state is elsewhere (shared after fork, not claimed) is not exported. The
 * given-away mark is the one change it makes to the parent's memory, deliberately: the parent's
 * copy is stale once the new program runs.
 */
#define MT_CONN_EXPORT_MAX (MT_TLS_EXPORT_MAX + 64)
MT_RESULT mt_conn_export(struct mt_conn *conn, unsigned char *buffer, size_t capacity,
                         size_t *length, bool from_vfork_child);

/* The new program could not be started: the copy is this process's again, as it was. */
void mt_conn_take_back(struct mt_conn *conn);

/* The program conn was given to runs as pid (posix_spawn told it): named in the log line. */
void mt_conn_note_given_to(struct mt_conn *conn, pid_t pid);

/* Whether an export is a server's (the accepting side's) connection. */
bool mt_conn_export_is_server(const unsigned char *state, size_t length);

/*
 * Opens, on fd, the connection an export describes, established, and publishes it in the table
 * (with a reference for the caller). Without context, or when the state cannot be imported, the
 * connection is reset and FAILED (logged, with failure_reason when given): never usable in clear.
 */
struct mt_conn *mt_conn_open_handed_over(int fd, struct mt_tls_context *context,
                                         const struct sockaddr_storage *local,
                                         const struct sockaddr_storage *peer,
                                         const struct mt_conn_settings *settings,
                                         const unsigned char *state, size_t length,
                                         const char *failure_reason);

/* After fork: this copy must not send close_notify unless this process uses it (process.h). */
void mt_conn_mark_shared(struct mt_conn *conn);

/*
 * This process stops using conn (it exits): when it holds the stream's current state, the state
 * is given back to its relay slot for the next process that uses the connection (relay.h).
 * Takes the lock.
 */
void mt_conn_give_back(struct mt_conn *conn);

/* In a fork child: what the first handshake step needs of fcntl, done while it may be called. */
void mt_conn_hold_before_confinement(struct mt_conn *conn);

/* Initialises kernel_io_done (once per object, and again in a fork child). */
void mt_conn_init_condition(pthread_cond_t *condition);

/* fcntl(F_SETFL) or ioctl(FIONBIO) succeeded on one of conn's names. */
void mt_conn_note_nonblocking(struct mt_conn *conn, bool nonblocking);

/* setsockopt(SOL_SOCKET, SO_RCVTIMEO or SO_SNDTIMEO) succeeded on one of conn's names. */
void mt_conn_note_timeout(struct mt_conn *conn, int option, long long timeout_ms);

/*
 * setsockopt(IPPROTO_TCP, TCP_NODELAY, value) succeeded on one of conn's names: the value to put
 * back if a write has Nagle lifted now (conn_nagle.c).
 */
void mt_conn_note_nodelay(struct mt_conn *conn, int value);

/* getsockopt(IPPROTO_TCP, TCP_NODELAY) while a write has Nagle lifted: true, *value the
 * application's own setting; false otherwise (the kernel's answer is the application's). */
bool mt_conn_application_nodelay(struct mt_conn *conn, int *value);

/* FIONREAD: decrypted bytes readable now without blocking. */
int mt_conn_readable_bytes(struct mt_conn *conn);

/*
 * sendfile/splice into a meshed socket: reads from in_fd (at *offset when given, which is then
 * advanced; else at and advancing its file position) and sends through TLS. Never reads more
 * than the connection can take at once, so nothing read is lost when it would block.
 */
ssize_t mt_conn_send_from_fd(struct mt_conn *conn, int in_fd, off_t *offset, size_t count,
                             int flags);

/* splice out of a meshed socket into out_fd (a pipe or a file at *offset). */
ssize_t mt_conn_receive_to_fd(struct mt_conn *conn, int out_fd, off_t *offset, size_t count,
                              int flags);

/* Sets reason (NULL allowed) to why the connection failed: "" when it has not. */
void mt_conn_failure_reason(struct mt_conn *conn, struct mt_text *reason);

/* Copies the verified peer SPIFFE ID ("" when none yet). */
void mt_conn_peer_id(struct mt_conn *conn, char *buffer, size_t capacity);

void mt_conn_release(struct mt_conn *conn);

#endif
