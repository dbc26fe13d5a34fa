/*
 * Golden-signal metrics of an intercepted process, written to shared memory the agent reads.
 *
 * The data path (mt_metrics_bytes_read, mt_metrics_bytes_written) is one or two relaxed atomic
 * adds: no system call, no lock, no allocation. Everything else takes a process-wide mutex and
 * may make system calls only when it needs room the file does not have yet (the file itself on
 * first use, a new chunk when a table is full); it never blocks on anything but that mutex.
 * The layout is described in metrics/layout.h; the agent serves it in Prometheus text format.
 *
 * The file is the agent's: on the first event to record, the process asks the agent for it
 * (mt_metrics_init's source, a request on the agent socket, or one sent ahead of that event by
 * mt_metrics_ask_ahead) and receives it open, named after the pid and start time the agent
 * attested. Every function is safe from any thread, is a no-op when metrics are disabled (no
 * agent, an agent that refuses: logged once, asked again after a while), and is safe after
 * fork: a child notices on its next slow-path call and asks the agent for a file of its own,
 * which it writes from then on (the parent's file is named after the parent). A connection
 * inherited across fork keeps counting into the file of the process that opened it, and is
 * counted closed once, by whichever process closes it first. After an exec the new image asks
 * again and the agent replaces the file (same pid, same start time).
 *
 * Labels: direction inbound|outbound, tls true|false, port (inbound: local port; outbound:
 * destination port), peer identity (a SPIFFE ID, "" when there is none; cut to
 * MT_METRICS_PEER_ID_MAX − 1 bytes). Outbound opens are also counted per destination address and
 * port with tls, for at most MT_METRICS_DESTINATIONS_PER_PROCESS_MAX − 2 destinations and the
 * rest together (layout.h). Handshake failures are counted by a fixed reason class,
 * see mt_metrics_failure_reason_classify().
 */
#ifndef MT_METRICS_METRICS_H
#define MT_METRICS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "../util/text.h"
#include "layout.h"

struct mt_metrics_connection;

/*
 * Where this process's metrics file comes from: on success *fd is open for reading and writing,
 * sized to MT_METRICS_HEADER_SIZE with the header initialised (see layout.h); on failure message
 * says why. Called with the metrics lock held; while it fails it is called again after 10 s,
 * or after 10 min when it failed with MT_ERR_AGENT_REFUSED (an agent that answered no will
 * answer no again).
 */
typedef mt_result (*mt_metrics_file_source)(int *fd, struct mt_text *reason);

/*
 * Remembers the source of the metrics file. Lazy and idempotent: nothing is asked until the
 * first event to record. The first call wins.
 */
void mt_metrics_init(mt_metrics_file_source source);

/*
 * When the next event would ask the source for the file (none yet, not backing off), calls
 * ahead() first, with the metrics lock held: it may start a request that the source then
 * completes, so that the agent prepares the file while this process does something else (its
 * first identity request). Under the lock, no event asks the source in between, and a file
 * that is there already is never asked for twice (the agent would replace it).
 */
void mt_metrics_ask_ahead(void (*ahead)(void));

/*
 * In a fork child (its only thread), before it can confine itself: makes the child's own file
 * now, which a seccomp filter would forbid later (the request goes through the agent socket).
 * Called only for a child that will use a connection it inherited before its handshake.
 */
void mt_metrics_open_in_fork_child(void);

/*
 * A connection was established (after the handshake for mTLS): tcp_open_total++ and, derived,
 * tcp_open_connections++; for an outbound one, one more open to its destination (peer) with its
 * tls (outbound_destination_open_total). peer may be NULL (no destination is then counted),
 * peer_id NULL or "" when unknown. Returns a handle for the calls below, or NULL when metrics
 * are disabled (all functions accept NULL).
 */
struct mt_metrics_connection *mt_metrics_connection_open(bool inbound, bool tls, uint16_t port,
                                                         const struct sockaddr_storage *peer,
                                                         const char *peer_id);

/*
 * Optional, for `meshtls status`: the connection's fd, local address and TLS key-exchange group
 * (local and key_exchange may be NULL). Call right after open, from the thread that opened it.
 */
void mt_metrics_connection_describe(struct mt_metrics_connection *connection, int fd,
                                    const struct sockaddr_storage *local, const char *key_exchange);

/*
 * An outbound connection that mode "auto" sent in plaintext (core/members.h): libc's from its
 * connect() on, never seen again, so it is counted opened and closed at once, in the series of
 * its destination port (tcp_open_total{direction="outbound",tls="false",port=...}), and opened
 * to its destination (outbound_destination_open_total{destination=...,tls="false"}).
 */
void mt_metrics_outbound_plain(const struct sockaddr_storage *destination);

/* tcp_close_total++ (tcp_open_connections−−). A second close of the same handle is ignored. */
void mt_metrics_connection_close(struct mt_metrics_connection *connection);

/* Application (plaintext) bytes the program read or wrote: relaxed atomic adds only. */
void mt_metrics_bytes_read(struct mt_metrics_connection *connection, size_t bytes);
void mt_metrics_bytes_written(struct mt_metrics_connection *connection, size_t bytes);

/*
 * A handshake ended: success (failure_reason NULL) adds duration_us to the latency histogram,
 * and counts a resumed one; a failure counts one in its reason class.
 */
void mt_metrics_handshake(bool inbound, uint64_t duration_us, bool resumed,
                          const char *failure_reason);

/* An inbound authorization decision for peer_id on port (inbound_tcp_authz_allow/deny_total). */
void mt_metrics_authz(bool allowed, uint16_t port, const char *peer_id);

/*
 * The process got an identity valid until expiry (identity_cert_expiration_timestamp_seconds);
 * renewed is true for every identity after the first (identity_cert_refresh_count++).
 */
void mt_metrics_identity(time_t expiry, bool renewed);

/*
 * The reason class of a free-text failure reason, matched by the phrases libmeshtls's log lines
 * use (case-insensitive), first match wins; words holding "://" (the peer's and our SPIFFE IDs)
 * are ignored, so an identity's path never decides the class:
 *   policy        "allow list", "expected by"
 *   no_identity   "no workload identity", "no new one", "no identity"
 *   not_tls       "did not speak TLS", "not TLS", "plaintext"
 *   untrusted_ca  "trusted anchor", "foreign CA", "untrusted", "unknown CA"
 *   expired       "expired", "not yet valid"
 *   bad_svid      "SVID", "did not return a certificate", "trust domain"
 *   policy        "policy", "not allowed", "authoriz", "refused by"
 *   timeout       "timed out", "timeout"
 *   peer_rejected "alert", "peer closed", "reset", "rejected"
 *   other         anything else (and "" )
 */
enum mt_metrics_failure_reason mt_metrics_failure_reason_classify(const char *failure_reason);

/* The label text of a class ("untrusted_ca"); "other" for an out-of-range value. */
const char *mt_metrics_failure_reason_label(enum mt_metrics_failure_reason reason);

/* The metrics directory for an agent socket path: "<dirname>/metrics". False if it won't fit. */
bool mt_metrics_directory_for_socket(const char *agent_socket_path, char *directory,
                                     size_t capacity);

#endif
