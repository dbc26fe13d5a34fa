/*
 * Hooks of the calls that move bytes: read, write, readv, writev, recv, send, recvfrom, sendto,
 * recvmsg, sendmsg, sendmmsg, their fortified variants, sendfile, sendfile64 and splice.
 *
 * Owns only the translation between a call's shape and core/conn.h's (MSG_WAITALL, message
 * headers, a count of messages). On an fd that is not ours each passes the call to libc
 * untouched; on one of ours the connection moves the bytes through TLS. sendmsg and sendmmsg
 * also refuse to pass a connection's descriptor to another process (core/inherit.h). Must never
 * decide whether an fd is ours: the table says so.
 */
#include "hook.h"

#include <limits.h>
#include <sys/sendfile.h>
#include <sys/uio.h>

#include "../core/conn.h"
#include "../core/inherit.h"
#include "../core/table.h"

/* Releases the caller's reference without letting cleanup disturb the errno being returned. */
static ssize_t finish(struct mt_conn *conn, ssize_t result)
{
    MT_PRESERVING_ERRNO(mt_conn_release(conn));
    return result;
}

/* MSG_WAITALL: keep reading until the buffer is full, EOF, or an error (as the kernel does). */
static ssize_t receive(struct mt_conn *conn, void *buffer, size_t length, int flags)
{
    if ((flags & MSG_WAITALL) == 0 || (flags & (MSG_PEEK | MSG_DONTWAIT)) != 0)
        return mt_conn_recv(conn, buffer, length, flags & ~MSG_WAITALL);
    size_t total = 0;
    while (total < length) {
        ssize_t n =
            mt_conn_recv(conn, (char *)buffer + total, length - total, flags & ~MSG_WAITALL);
        if (n < 0)
            return total > 0 ? (ssize_t)total : -1;
        if (n == 0)
            break;
        total += (size_t)n;
    }
    return (ssize_t)total;
}

MT_EXPORT ssize_t read(int fd, void *buffer, size_t length)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        return real_read(fd, buffer, length);
    }
    return finish(conn, mt_conn_recv(conn, buffer, length, 0));
}

#ifdef __GLIBC__
MT_EXPORT ssize_t __read_chk(int fd, void *buffer, size_t length, size_t buffer_length)
{
    if (length > buffer_length)
        __chk_fail();
    return read(fd, buffer, length);
}
#endif

MT_EXPORT ssize_t write(int fd, const void *buffer, size_t length)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        return real_write(fd, buffer, length);
    }
    return finish(conn, mt_conn_send(conn, buffer, length, 0));
}

MT_EXPORT ssize_t readv(int fd, const struct iovec *vector, int count)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        return real_readv(fd, vector, count);
    }
    return finish(conn, mt_conn_recv_vector(conn, vector, count, 0));
}

MT_EXPORT ssize_t writev(int fd, const struct iovec *vector, int count)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        return real_writev(fd, vector, count);
    }
    return finish(conn, mt_conn_send_vector(conn, vector, count, 0));
}

MT_EXPORT ssize_t recv(int fd, void *buffer, size_t length, int flags)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        return real_recv(fd, buffer, length, flags);
    }
    return finish(conn, receive(conn, buffer, length, flags));
}

#ifdef __GLIBC__
MT_EXPORT ssize_t __recv_chk(int fd, void *buffer, size_t length, size_t buffer_length, int flags)
{
    if (length > buffer_length)
        __chk_fail();
    return recv(fd, buffer, length, flags);
}
#endif

MT_EXPORT ssize_t send(int fd, const void *buffer, size_t length, int flags)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        return real_send(fd, buffer, length, flags);
    }
    return finish(conn, mt_conn_send(conn, buffer, length, flags));
}

MT_EXPORT ssize_t recvfrom(int fd, void *buffer, size_t length, int flags, MT_SOCKADDR_ARG address,
                           socklen_t *address_length)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        return real_recvfrom(fd, buffer, length, flags, MT_SOCKADDR(address), address_length);
    }
    /* A connected TCP socket reports no source address (Linux sets the length to 0). */
    if (MT_SOCKADDR(address) != NULL && address_length != NULL)
        *address_length = 0;
    return finish(conn, receive(conn, buffer, length, flags));
}

#ifdef __GLIBC__
MT_EXPORT ssize_t __recvfrom_chk(int fd, void *buffer, size_t length, size_t buffer_length,
                                 int flags, struct sockaddr *address, socklen_t *address_length)
{
    if (length > buffer_length)
        __chk_fail();
    return recvfrom(fd, buffer, length, flags, address, address_length);
}
#endif

MT_EXPORT ssize_t sendto(int fd, const void *buffer, size_t length, int flags,
                         MT_CONST_SOCKADDR_ARG address, socklen_t address_length)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        return real_sendto(fd, buffer, length, flags, MT_SOCKADDR(address), address_length);
    }
    return finish(conn, mt_conn_send(conn, buffer, length, flags));
}

MT_EXPORT ssize_t recvmsg(int fd, struct msghdr *message, int flags)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        return real_recvmsg(fd, message, flags);
    }
    message->msg_namelen = 0;
    message->msg_controllen = 0;
    message->msg_flags = 0;
    return finish(conn, mt_conn_recv_vector(conn, message->msg_iov, (int)message->msg_iovlen,
                                            flags & ~MSG_WAITALL));
}

MT_EXPORT ssize_t sendmsg(int fd, const struct msghdr *message, int flags)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        if (message != NULL && message->msg_controllen > 0 &&
            mt_inherit_message_passes_connection(message)) {
            errno = EPERM;
            return -1;
        }
        return real_sendmsg(fd, message, flags);
    }
    return finish(conn,
                  mt_conn_send_vector(conn, message->msg_iov, (int)message->msg_iovlen, flags));
}

/*
 * sendmmsg: a meshed connection is a byte stream, so its messages go through TLS one after the
 * other as sendmsg sends each; the count of messages sent is returned, as the kernel does, and
 * the first that cannot be sent at all ends the call (its error when it is the first).
 */
static int send_messages(struct mt_conn *conn, struct mmsghdr *vector, unsigned int count,
                         int flags)
{
    unsigned int sent = 0;
    for (; sent < count && sent <= INT_MAX - 1; sent++) {
        const struct msghdr *message = &vector[sent].msg_hdr;
        ssize_t n = -1;
        /* After the first message a failure only ends the count: errno stays the caller's. */
        if (sent == 0)
            n = mt_conn_send_vector(conn, message->msg_iov, (int)message->msg_iovlen, flags);
        else
            MT_PRESERVING_ERRNO(
                n = mt_conn_send_vector(conn, message->msg_iov, (int)message->msg_iovlen, flags));
        if (n < 0)
            break;
        vector[sent].msg_len = (unsigned int)n;
    }
    return sent > 0 ? (int)sent : -1;
}

MT_EXPORT int sendmmsg(int fd, struct mmsghdr *vector, unsigned int count, MT_SENDMMSG_FLAGS flags)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    if (conn == NULL) {
        mt_real_init();
        for (unsigned int i = 0; vector != NULL && i < count; i++)
            if (vector[i].msg_hdr.msg_controllen > 0 &&
                mt_inherit_message_passes_connection(&vector[i].msg_hdr)) {
                errno = EPERM;
                return -1;
            }
        return real_sendmmsg(fd, vector, count, flags);
    }
    return (int)finish(conn, send_messages(conn, vector, count, flags));
}

MT_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    struct mt_conn *conn = mt_table_acquire(out_fd);
    if (conn == NULL) {
        mt_real_init();
        return real_sendfile(out_fd, in_fd, offset, count);
    }
    return finish(conn, mt_conn_send_from_fd(conn, in_fd, offset, count, 0));
}

MT_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off64_t *offset, size_t count)
{
    struct mt_conn *conn = mt_table_acquire(out_fd);
    if (conn == NULL) {
        mt_real_init();
        return real_sendfile64(out_fd, in_fd, offset, count);
    }
    return finish(conn, mt_conn_send_from_fd(conn, in_fd, (off_t *)offset, count, 0));
}

MT_EXPORT ssize_t splice(int in_fd, loff_t *in_offset, int out_fd, loff_t *out_offset,
                         size_t length, unsigned int flags)
{
    struct mt_conn *out = mt_table_acquire(out_fd);
    struct mt_conn *in = out == NULL ? mt_table_acquire(in_fd) : NULL;
    if (out == NULL && in == NULL) {
        mt_real_init();
        return real_splice(in_fd, in_offset, out_fd, out_offset, length, flags);
    }
    int send_flags = (flags & SPLICE_F_NONBLOCK) ? MSG_DONTWAIT : 0;
    if (out != NULL)
        return finish(out,
                      mt_conn_send_from_fd(out, in_fd, (off_t *)in_offset, length, send_flags));
    return finish(in, mt_conn_receive_to_fd(in, out_fd, (off_t *)out_offset, length, send_flags));
}
