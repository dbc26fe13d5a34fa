/*
 * sendfile and splice on a meshed socket (see conn.h): the kernel cannot copy between a file or
 * a pipe and a TLS session, so the copy is done here, through a buffer of one record.
 *
 * Owns the reads of the source (a file at an offset or its position, a pipe) and the writes to
 * the destination (a pipe, a file at an offset) that these calls make on the application's
 * behalf; the bytes themselves go through the connection's own recv and send (conn_io.c). It must
 * never read more than the connection can take at once, nor take more from TLS than the
 * destination can hold, so that nothing read is lost when a call would block.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../util/sys.h"
#include "conn_internal.h"
#include "table.h"

/* True when a send of one record would be taken now without waiting or failing. */
static bool can_take_record(struct mt_conn *conn)
{
    pthread_mutex_lock(&conn->lock);
    mt_conn_step(conn);
    bool ready = conn->state == MT_CONN_PLAIN || (conn->state == MT_CONN_ESTABLISHED &&
                                                  !mt_conn_has_unsent(conn) && !conn->write_closed);
    mt_conn_unlock_and_notify(conn);
    return ready;
}

/*
 * Reads from in_fd as the application's own read() of it would: when in_fd is a meshed
 * connection too, its decrypted bytes (the kernel refuses a socket as the source of sendfile, and
 * splice between two sockets; the emulation has always let them through), else the kernel's.
 */
static ssize_t read_source(int in_fd, void *buffer, size_t length)
{
    struct mt_conn *source = mt_table_acquire(in_fd);
    if (source == NULL)
        return mt_sys_read(in_fd, buffer, length);
    ssize_t n = mt_conn_recv(source, buffer, length, 0);
    MT_PRESERVING_ERRNO(mt_conn_release(source));
    return n;
}

ssize_t mt_conn_send_from_fd(struct mt_conn *conn, int in_fd, off_t *offset, size_t count,
                             int flags)
{
    char buffer[MT_TLS_RECORD_MAX];
    off_t position = offset != NULL ? *offset : mt_sys_lseek(in_fd, 0, SEEK_CUR);
    bool seekable = position != (off_t)-1;
    bool dont_wait = (flags & MSG_DONTWAIT) != 0 || mt_conn_is_nonblocking(conn);
    size_t total = 0;
    int error = 0;
    while (total < count) {
        /* Input that cannot be re-read (a pipe) is only read once the record can be sent. */
        if (!seekable && dont_wait && !can_take_record(conn)) {
            error = EAGAIN;
            break;
        }
        size_t chunk = count - total < sizeof(buffer) ? count - total : sizeof(buffer);
        ssize_t n = seekable ? mt_sys_pread(in_fd, buffer, chunk, position)
                             : read_source(in_fd, buffer, chunk);
        if (n <= 0) {
            error = n < 0 ? errno : 0;
            break;
        }
        ssize_t sent = mt_conn_send(conn, buffer, (size_t)n, flags);
        if (sent <= 0) {
            error = errno;
            break;
        }
        total += (size_t)sent;
        position += sent;
        if (sent < n)
            break;
    }
    if (offset != NULL)
        *offset = position;
    else if (seekable)
        (void)mt_sys_lseek(in_fd, position, SEEK_SET);
    if (total == 0 && error != 0) {
        errno = error;
        return -1;
    }
    return (ssize_t)total;
}

ssize_t mt_conn_receive_to_fd(struct mt_conn *conn, int out_fd, off_t *offset, size_t count,
                              int flags)
{
    char buffer[MT_TLS_RECORD_MAX];
    size_t room = count < sizeof(buffer) ? count : sizeof(buffer);
    /* Never take more from TLS than the pipe can hold at once: what is read must be written. */
    int pipe_size = mt_sys_fcntl(out_fd, F_GETPIPE_SZ, 0);
    if (pipe_size > 0 && offset == NULL) {
        int queued = 0;
        if (mt_sys_ioctl(out_fd, FIONREAD, &queued) == 0 && pipe_size - queued < (int)room)
            room = pipe_size > queued ? (size_t)(pipe_size - queued) : 0;
        if (room == 0) {
            errno = EAGAIN;
            return -1;
        }
    }
    ssize_t n = mt_conn_recv(conn, buffer, room, flags & MSG_DONTWAIT);
    if (n <= 0)
        return n;
    ssize_t written = 0;
    while (written < n) {
        ssize_t w = offset != NULL ? mt_sys_pwrite(out_fd, buffer + written, (size_t)(n - written),
                                                   *offset + written)
                                   : mt_sys_write(out_fd, buffer + written, (size_t)(n - written));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        written += w;
    }
    if (offset != NULL)
        *offset += written;
    return written > 0 ? written : -1;
}
