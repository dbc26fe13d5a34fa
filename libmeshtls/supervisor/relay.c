/*
 * The relay: bytes between a connection of the engine (mesh: mTLS, or plain where policy left it
 * so) and the program's loopback end (local), in both directions, until both have ended.
 *
 * Back-pressure: one bounded buffer per direction; a side is read only while its buffer is
 * empty, so a slow reader stops its writer through the kernel's windows, never through our
 * memory. An end of stream is passed on as a write shutdown (close_notify on the mesh side)
 * once the buffer is out; a failure on either side resets the other. Owns both descriptors.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../include/meshtls.h"
#include "../util/log.h"
#include "internal.h"

#define RELAY_BUFFER 16384

/* Relays still running: the program's last bytes may still be on their way when it exits. */
static pthread_mutex_t running_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t running_changed = PTHREAD_COND_INITIALIZER;
static unsigned running;

static void count_running(int change)
{
    pthread_mutex_lock(&running_lock);
    running = (unsigned)((int)running + change);
    pthread_cond_broadcast(&running_changed);
    pthread_mutex_unlock(&running_lock);
}

void mt_supervisor_wait_relays(int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&running_lock);
    while (running > 0 && pthread_cond_timedwait(&running_changed, &running_lock, &deadline) == 0)
        ;
    pthread_mutex_unlock(&running_lock);
}

struct direction {
    int from, to;
    char bytes[RELAY_BUFFER];
    size_t start, end;
    bool ended; /* from said end of stream */
    bool shut;  /* passed on to `to` */
};

static bool is_empty(const struct direction *d)
{
    return d->start == d->end;
}

/* Reads what from has into the empty buffer; false on a failure (errno set). */
static bool fill(struct direction *d)
{
    if (d->ended || !is_empty(d))
        return true;
    ssize_t got = meshtls_read(d->from, d->bytes, sizeof(d->bytes));
    if (got > 0) {
        d->start = 0;
        d->end = (size_t)got;
    } else if (got == 0) {
        d->ended = true;
    } else if (errno != EAGAIN && errno != EINTR) {
        return false;
    }
    return true;
}

/* Writes what the buffer holds, then the end of stream once it is empty. */
static bool drain(struct direction *d)
{
    while (!is_empty(d)) {
        ssize_t put = meshtls_write(d->to, d->bytes + d->start, d->end - d->start);
        if (put < 0)
            return errno == EAGAIN || errno == EINTR;
        d->start += (size_t)put;
    }
    if (d->ended && !d->shut) {
        d->shut = true;
        if (meshtls_shutdown(d->to, SHUT_WR) != 0 && errno != ENOTCONN)
            return false;
    }
    return true;
}

/* The events to wait for on fd: reading for the direction out of it, writing for the one into
 * it; the engine adds what TLS itself needs (meshtls_events). */
static short events_for(int fd, const struct direction *out, const struct direction *in)
{
    short wanted = 0;
    if (!out->ended && is_empty(out))
        wanted |= POLLIN;
    if (!is_empty(in))
        wanted |= POLLOUT;
    int events = meshtls_events(fd, wanted, NULL);
    return events < 0 ? (short)(POLLIN | POLLOUT) : (short)events;
}

static void set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static void reset(int fd)
{
    struct linger abort_now = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_now, sizeof(abort_now));
}

void mt_supervisor_relay(int mesh, int local, const char *what)
{
    struct direction up = {.from = local, .to = mesh};   /* program → peer */
    struct direction down = {.from = mesh, .to = local}; /* peer → program */
    count_running(1);
    set_nonblocking(mesh);
    set_nonblocking(local);
    bool failed = false;
    while (!(up.shut && down.shut)) {
        struct pollfd fds[2] = {
            {.fd = mesh, .events = events_for(mesh, &down, &up)},
            {.fd = local, .events = events_for(local, &up, &down)},
        };
        if (meshtls_poll(fds, 2, -1) < 0 && errno != EINTR) {
            failed = true;
            break;
        }
        if (!fill(&up) || !fill(&down) || !drain(&up) || !drain(&down)) {
            failed = true;
            break;
        }
    }
    if (failed) {
        mt_log_info("supervisor: %s: reset (%s)", what, strerror(errno));
        reset(local);
        reset(mesh);
    }
    meshtls_close(mesh);
    close(local);
    count_running(-1);
}
