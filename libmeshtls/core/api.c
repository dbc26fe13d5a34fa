/*
 * The public meshtls_* functions (meshtls.h): thin, documented entry points over the core.
 */
#include <errno.h>
#include <string.h>

#include "../include/meshtls.h"
#include "conn.h"
#include "table.h"

#define MESHTLS_EXPORT __attribute__((visibility("default")))

MESHTLS_EXPORT const char *meshtls_version(void)
{
    return "0.1.0";
}

MESHTLS_EXPORT int meshtls_peer_id(int fd, char *buffer, size_t capacity)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        errno = ENOTCONN;
        return -1;
    }
    char id[MT_SPIFFE_ID_MAX + 1];
    mt_conn_peer_id(conn, id, sizeof(id));
    mt_conn_release(conn);
    size_t length = strlen(id);
    if (length == 0) {
        errno = ENOTCONN;
        return -1;
    }
    if (buffer == NULL || length >= capacity) {
        errno = ERANGE;
        return -1;
    }
    memcpy(buffer, id, length + 1);
    return (int)length;
}
