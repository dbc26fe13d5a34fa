/*
 * poll()/ppoll() and select()/pselect() over a mix of intercepted and plain fds (see readiness.h).
 *
 * Owns the translation of one wait: what each connection asks of the kernel, what it adds without
 * the kernel, and the revents the application sees. Must never keep state between calls, hold a
 * connection past the call, nor change what a plain fd reports (its revents are the kernel's).
 */
#include <errno.h>
#include <stdlib.h>

#include "../util/sys.h"
#include "conn.h"
#include "readiness.h"
#include "table.h"

/* Waits of up to this many fds use the stack; larger ones allocate once per call. */
#define STACK_FDS 32

struct entry {
    struct mt_conn *conn;
    short asked;
    short ready;
};

bool mt_readiness_has_ours(const struct pollfd *fds, nfds_t count)
{
    if (mt_table_is_empty())
        return false;
    for (nfds_t i = 0; i < count; i++) {
        struct mt_conn *conn = mt_table_acquire(fds[i].fd);
        if (conn != NULL) {
            mt_conn_release(conn);
            return true;
        }
    }
    return false;
}

/*
 * After the kernel's wait (kernel_answered: it did not fail): sets each fd's revents to what the
 * application is told, releases the connections, and returns how many fds report something.
 */
static int report_round(struct pollfd *fds, const struct pollfd *kernel, struct entry *entries,
                        nfds_t count, bool kernel_answered)
{
    int reported = 0;
    for (nfds_t i = 0; i < count; i++) {
        struct mt_conn *conn = entries[i].conn;
        if (conn == NULL) {
            fds[i].revents = kernel_answered ? kernel[i].revents : 0;
        } else {
            fds[i].revents = entries[i].ready;
            if (kernel_answered)
                fds[i].revents |=
                    mt_conn_poll_finish(conn, fds[i].events, entries[i].asked, kernel[i].revents);
            mt_conn_release(conn);
        }
        if (fds[i].revents != 0)
            reported++;
    }
    return reported;
}

static int wait_round(struct pollfd *fds, struct pollfd *kernel, struct entry *entries,
                      nfds_t count, long long deadline, const sigset_t *mask, bool *done)
{
    int synthetic = 0;
    long long wake = deadline;
    for (nfds_t i = 0; i < count; i++) {
        kernel[i] = fds[i];
        kernel[i].revents = 0;
        entries[i] = (struct entry){mt_table_acquire(fds[i].fd), 0, 0};
        if (entries[i].conn == NULL)
            continue;
        long long handshake_deadline = -1;
        entries[i].ready = mt_conn_poll_prepare(entries[i].conn, fds[i].events, &entries[i].asked,
                                                &handshake_deadline);
        kernel[i].events = entries[i].asked;
        /* Wake for a handshake's deadline too: its timeout is an event the app must see. */
        if (handshake_deadline >= 0 && (wake < 0 || handshake_deadline < wake))
            wake = handshake_deadline;
        if (entries[i].ready != 0)
            synthetic++;
    }
    int timeout = synthetic > 0 ? 0 : mt_sys_remaining_ms(wake);
    int ready = mt_sys_ppoll(kernel, count, timeout, mask);
    int reported = 0;
    MT_PRESERVING_ERRNO(reported = report_round(fds, kernel, entries, count, ready >= 0));
    if (ready < 0 && reported == 0) {
        *done = true;
        return -1;
    }
    /* Handshake progress alone is invisible to the application: wait again until the deadline. */
    *done = reported > 0 || mt_sys_remaining_ms(deadline) == 0;
    return reported;
}

int mt_readiness_poll(struct pollfd *fds, nfds_t count, int timeout_ms, const sigset_t *mask)
{
    struct pollfd kernel_stack[STACK_FDS];
    struct entry entries_stack[STACK_FDS];
    struct pollfd *kernel = kernel_stack;
    struct entry *entries = entries_stack;
    if (count > STACK_FDS) {
        kernel = calloc(count, sizeof(*kernel));
        entries = calloc(count, sizeof(*entries));
        if (kernel == NULL || entries == NULL) {
            free(kernel);
            free(entries);
            errno = ENOMEM;
            return -1;
        }
    }
    int errno_on_entry = errno;
    long long deadline = timeout_ms < 0 ? -1 : mt_sys_now_ms() + timeout_ms;
    int result = 0;
    bool done = false;
    while (!done)
        result = wait_round(fds, kernel, entries, count, deadline, mask, &done);
    if (count > STACK_FDS)
        MT_PRESERVING_ERRNO(free(kernel); free(entries));
    return mt_sys_success_keeps_errno(result, errno_on_entry);
}

static bool in_set(const fd_set *set, int fd)
{
    return set != NULL && FD_ISSET(fd, set);
}

bool mt_readiness_select_has_ours(int count, const fd_set *readable, const fd_set *writable,
                                  const fd_set *exceptional)
{
    if (mt_table_is_empty())
        return false;
    for (int fd = 0; fd < count && fd < FD_SETSIZE; fd++) {
        if (!in_set(readable, fd) && !in_set(writable, fd) && !in_set(exceptional, fd))
            continue;
        struct mt_conn *conn = mt_table_acquire(fd);
        if (conn != NULL) {
            mt_conn_release(conn);
            return true;
        }
    }
    return false;
}

int mt_readiness_select(int count, fd_set *readable, fd_set *writable, fd_set *exceptional,
                        int timeout_ms, const sigset_t *mask)
{
    if (count < 0 || count > FD_SETSIZE) {
        errno = EINVAL;
        return -1;
    }
    struct pollfd fds[FD_SETSIZE];
    nfds_t used = 0;
    for (int fd = 0; fd < count; fd++) {
        short events =
            (short)((in_set(readable, fd) ? POLLIN : 0) | (in_set(writable, fd) ? POLLOUT : 0) |
                    (in_set(exceptional, fd) ? POLLPRI : 0));
        if (events != 0)
            fds[used++] = (struct pollfd){.fd = fd, .events = events};
    }
    int ready = mt_readiness_poll(fds, used, timeout_ms, mask);
    if (ready < 0)
        return -1;
    for (nfds_t i = 0; i < used; i++) {
        if (fds[i].revents & POLLNVAL) {
            errno = EBADF;
            return -1;
        }
    }
    int bits = 0;
    for (nfds_t i = 0; i < used; i++) {
        int fd = fds[i].fd;
        short revents = fds[i].revents;
        /* As the kernel's select: hang-up and error count as readable and writable. */
        if (in_set(readable, fd) && !(revents & (POLLIN | POLLHUP | POLLERR)))
            FD_CLR(fd, readable);
        if (in_set(writable, fd) && !(revents & (POLLOUT | POLLERR)))
            FD_CLR(fd, writable);
        if (in_set(exceptional, fd) && !(revents & POLLPRI))
            FD_CLR(fd, exceptional);
        bits += in_set(readable, fd) + in_set(writable, fd) + in_set(exceptional, fd);
    }
    return bits;
}
