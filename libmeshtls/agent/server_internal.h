/*
 * What the files of the agent's server share (server.h is the outside view):
 *
 *   server.c           the listening socket and the event loop
 *   server_clients.c   the client table: accepting under the fair share, reading one frame,
 *                      writing one reply or refusal, deadlines
 *   server_requests.c  SVID, ID and METRICS_FILE requests: what a client asked, what it gets
 *   server_status.c    what was issued to whom, and STATUS requests
 */
#ifndef MT_AGENT_SERVER_INTERNAL_H
#define MT_AGENT_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../identity/proto.h"
#include "attest.h"
#include "server.h"

/* The largest frame the protocol allows: a chain, several anchors, or a status listing. */
#define MT_SERVER_REPLY_MAX MT_PROTO_MAX_FRAME

enum mt_server_client_state {
    MT_SERVER_CLIENT_FREE = 0,
    MT_SERVER_CLIENT_READING,
    MT_SERVER_CLIENT_WRITING,
};

struct mt_server_client {
    int fd;
    enum mt_server_client_state state;
    long long accepted_ms; /* for the fair share: the oldest idle connection goes first */
    long long deadline_ms;
    struct mt_attest_peer peer;
    /* The header is read into place first; input is allocated once it announces a length. */
    uint8_t header[MT_PROTO_HEADER_SIZE];
    uint8_t *input;
    size_t input_size;
    size_t received;
    uint8_t *output;
    size_t output_length;
    size_t output_sent;
    int passed_fd; /* sent with the reply's first bytes (SCM_RIGHTS) when has_passed_fd */
    bool has_passed_fd;
    /* Descriptors that came with the request: the first is kept (a SUBJECT's pidfd), any other
     * is closed at once and counted, so that the request can be refused as malformed. */
    int subject_fd; /* valid when has_subject_fd */
    bool has_subject_fd;
    unsigned extra_fds;
};

/* ---- server_clients.c --------------------------------------------------------------------- */

/* The caller's executable for log lines: its name, or "unknown". */
const char *mt_server_client_exe(const struct mt_server_client *client);

/* " (supervised by pid N)" when the client's peer is a subject, else "": for log lines. */
const char *mt_server_client_supervision(const struct mt_server_client *client, char *text,
                                         size_t capacity);

/* Closes the connection (and a descriptor not passed yet) and frees the slot. */
void mt_server_client_close(struct mt_server_client *client);

/* Takes over reply (a frame of length bytes, heap-allocated) and starts sending it. */
void mt_server_client_reply(struct mt_server_client *client, uint8_t *reply, size_t length);

/* Logs the refusal and replies with an ERROR frame; without memory, just closes. */
void mt_server_client_refuse(struct mt_server_client *client, enum mt_proto_error_code code,
                             const char *text);

/* Reads what has arrived; a complete frame is handed to mt_server_request_handle. */
void mt_server_client_read(struct mt_server *server, struct mt_server_client *client);

/* Sends what is left of the reply; closes the client once all of it is out. */
void mt_server_client_write(struct mt_server_client *client);

/* A client past its deadline: a best-effort ERROR, a log line, and the connection closed. */
void mt_server_client_expire(struct mt_server_client *client);

/* Accepts what is waiting on the listener (a bounded burst), each under the fair share. */
void mt_server_clients_accept(struct mt_server *server);

/* ---- server_requests.c -------------------------------------------------------------------- */

/* Serves one complete request frame: a reply or a refusal is under way on return. */
void mt_server_request_handle(struct mt_server *server, struct mt_server_client *client,
                              const struct mt_proto_frame *frame);

/* ---- server_status.c ---------------------------------------------------------------------- */

/* Replies to a STATUS request. */
void mt_server_status_reply(struct mt_server *server, struct mt_server_client *client);

/* An empty table of what was issued, its liveness checks by /proc (attest.h). */
MT_RESULT mt_server_issued_init(struct mt_server *server);

/* Remembers that peer was issued spiffe_id until expiry, for STATUS. */
void mt_server_issued_remember(struct mt_server *server, const struct mt_attest_peer *peer,
                               const char *spiffe_id, time_t expiry);

/* Drops the entries of processes that have exited (or whose pid was reused). */
void mt_server_issued_sweep(struct mt_server *server);

/* Forgets every entry and frees the table. */
void mt_server_issued_free(struct mt_server *server);

#endif
