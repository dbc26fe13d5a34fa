/*
 * The agent socket's server, as the kernel knows it (see peer.h).
 *
 * Owns the one comparison of SO_PEERCRED with agent_uid and the message that explains a refusal.
 * Must never let a failure to read the credentials pass as a match, and never send or read a byte
 * on the socket: it is called before anything is exchanged.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "../util/sys.h"
#include "peer.h"

MT_RESULT mt_identity_peer_check(int fd, const char *socket_path, uid_t agent_uid,
                                 struct mt_text *reason)
{
    MT_ENSURE_REF(socket_path);
    struct ucred credentials;
    socklen_t length = sizeof(credentials);
    if (mt_sys_getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0 ||
        length != sizeof(credentials)) {
        return mt_result_explain(reason, MT_ERR_AGENT_UNTRUSTED,
                                 "refusing the agent at %s: its credentials cannot be read (%s), "
                                 "so it cannot be told from an impostor",
                                 socket_path, strerror(errno));
    }
    if (credentials.uid == agent_uid)
        return MT_OK_RESULT;
    return mt_result_explain(
        reason, MT_ERR_AGENT_UNTRUSTED,
        "refusing the agent at %s: it is served by uid %u (pid %d), expected uid %u "
        "(agent_uid); another program may have taken the agent's socket: check who can write "
        "its directory and restart meshtls-agent, or, if the agent really runs as uid %u, set "
        "agent_uid = %u in the workload's configuration (or MESHTLS_AGENT_UID)",
        socket_path, (unsigned)credentials.uid, (int)credentials.pid, (unsigned)agent_uid,
        (unsigned)credentials.uid, (unsigned)credentials.uid);
}
