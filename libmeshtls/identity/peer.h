/*
 * Who serves the agent socket: the check a workload makes before it sends the agent anything or
 * believes anything the agent says.
 *
 * The agent's Unix socket is a path, and whoever can write its directory can put another socket
 * there (a hostPath mounted read-write in a pod, a root workload on the node). The kernel records
 * the credentials of the process that called listen() on the other end (SO_PEERCRED, fixed at
 * that moment, unforgeable by the server), so the workload compares that uid with the configured
 * agent_uid (root by default) and refuses any other, failing closed: an impostor never receives
 * a CSR or a request, and never hands out a trust bundle.
 *
 *   served by         | agent_uid | answer
 *   ------------------+-----------+-------------------------------------------------
 *   uid == agent_uid  | any       | OK
 *   any other uid     | any       | MT_ERR_AGENT_UNTRUSTED, message "refusing the agent at ..."
 *   SO_PEERCRED fails | any       | MT_ERR_AGENT_UNTRUSTED (nothing known is nothing trusted)
 */
#ifndef MT_IDENTITY_PEER_H
#define MT_IDENTITY_PEER_H

#include <stddef.h>
#include <sys/types.h>

#include "../util/text.h"

/*
 * Checks the connected Unix socket fd (to socket_path, for the message) against agent_uid.
 * message receives one line saying who serves the socket, who was expected, and what to do.
 */
MT_RESULT mt_identity_peer_check(int fd, const char *socket_path, uid_t agent_uid,
                                 struct mt_text *reason);

#endif
