/*
 * The application's Nagle setting around a client's first write after its handshake flight (see
 * mt_tls_sent_own_bytes).
 *
 * Under Nagle (TCP_NODELAY off, the default), the kernel holds a small segment while an earlier
 * small one is unacknowledged (Linux's Minshall variant), and the peer delays its ACK by up to
 * 40 ms when it has nothing to send. The client's Finished is such a segment, and the server,
 * which answers the Finished with nothing (its ticket leaves with its first reply), has nothing
 * to send: the client's request waited 40 ms on every new connection, where plain TCP sends it
 * at once. So that write goes with TCP_NODELAY on, and the application's setting is put back
 * before the call returns. A program that keeps Nagle off, or corks its writes (TCP_CORK, whose
 * holding it asked for), is left alone; the program sees its own value in getsockopt throughout,
 * and a value it sets meanwhile (another thread) is the one restored.
 *
 * Owns conn->nagle_lifted and conn->application_nodelay. Must never leave TCP_NODELAY on after
 * the call that lifted it, nor touch a connection libmeshtls does not terminate (it acts only on
 * an established client session; plaintext and passthrough connections never are one).
 */
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "../util/sys.h"
#include "conn_internal.h"

static bool socket_option_is_on(int fd, int name)
{
    int value = 0;
    socklen_t length = sizeof(value);
    /* Unknown counts as on: nothing is changed. */
    return mt_sys_getsockopt(fd, IPPROTO_TCP, name, &value, &length) != 0 || value != 0;
}

void mt_conn_lift_nagle(struct mt_conn *conn)
{
    if (conn->tls == NULL || conn->nagle_lifted || !mt_tls_sent_own_bytes(conn->tls))
        return;
    mt_tls_forget_own_bytes(conn->tls);
    if (socket_option_is_on(conn->fd, TCP_NODELAY) || socket_option_is_on(conn->fd, TCP_CORK))
        return;
    int on = 1;
    if (mt_sys_setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) != 0)
        return;
    conn->nagle_lifted = true;
    conn->application_nodelay = 0;
}

void mt_conn_restore_nagle(struct mt_conn *conn)
{
    if (!conn->nagle_lifted)
        return;
    conn->nagle_lifted = false;
    int value = conn->application_nodelay;
    (void)mt_sys_setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &value, sizeof(value));
}

void mt_conn_note_nodelay(struct mt_conn *conn, int value)
{
    pthread_mutex_lock(&conn->lock);
    if (conn->nagle_lifted)
        conn->application_nodelay = value != 0;
    pthread_mutex_unlock(&conn->lock);
}

bool mt_conn_application_nodelay(struct mt_conn *conn, int *value)
{
    pthread_mutex_lock(&conn->lock);
    bool lifted = conn->nagle_lifted;
    if (lifted)
        *value = conn->application_nodelay;
    pthread_mutex_unlock(&conn->lock);
    return lifted;
}
