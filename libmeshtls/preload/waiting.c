/*
 * Hooks of the calls that wait for readiness: poll, ppoll, select, pselect (and the fortified
 * poll and ppoll), epoll_create, epoll_create1, epoll_ctl, epoll_wait, epoll_pwait,
 * epoll_pwait2.
 *
 * Owns only the translation of timeouts into milliseconds and of select's leftover time. A wait
 * that holds none of our fds goes to libc untouched; one that does goes to core/readiness.c
 * (poll, select) or core/epoll.c (epoll), where a connection's own readiness (decrypted bytes
 * waiting, a handshake in progress) replaces the kernel's. Must never wait itself.
 */
#include "hook.h"

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/select.h>

#include "../core/epoll.h"
#include "../core/readiness.h"

static int timeout_to_ms(const struct timespec *timeout)
{
    if (timeout == NULL)
        return -1;
    long long ms = (long long)timeout->tv_sec * 1000 + (timeout->tv_nsec + 999999) / 1000000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

static int timeval_to_ms(const struct timeval *timeout)
{
    if (timeout == NULL)
        return -1;
    long long ms = (long long)timeout->tv_sec * 1000 + (timeout->tv_usec + 999) / 1000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

MT_EXPORT int poll(struct pollfd *fds, nfds_t count, int timeout_ms)
{
    mt_real_init();
    if (!mt_readiness_has_ours(fds, count))
        return real_poll(fds, count, timeout_ms);
    return mt_readiness_poll(fds, count, timeout_ms, NULL);
}

#ifdef __GLIBC__
MT_EXPORT int __poll_chk(struct pollfd *fds, nfds_t count, int timeout_ms, size_t fds_length)
{
    if (fds_length / sizeof(*fds) < count)
        __chk_fail();
    return poll(fds, count, timeout_ms);
}
#endif

MT_EXPORT int ppoll(struct pollfd *fds, nfds_t count, const struct timespec *timeout,
                    const sigset_t *mask)
{
    mt_real_init();
    if (!mt_readiness_has_ours(fds, count))
        return real_ppoll(fds, count, timeout, mask);
    return mt_readiness_poll(fds, count, timeout_to_ms(timeout), mask);
}

#ifdef __GLIBC__
MT_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t count, const struct timespec *timeout,
                          const sigset_t *mask, size_t fds_length)
{
    if (fds_length / sizeof(*fds) < count)
        __chk_fail();
    return ppoll(fds, count, timeout, mask);
}
#endif

MT_EXPORT int select(int count, fd_set *readable, fd_set *writable, fd_set *exceptional,
                     struct timeval *timeout)
{
    mt_real_init();
    if (!mt_readiness_select_has_ours(count, readable, writable, exceptional))
        return real_select(count, readable, writable, exceptional, timeout);
    long long start = mt_sys_now_ms();
    int timeout_ms = timeval_to_ms(timeout);
    int result = mt_readiness_select(count, readable, writable, exceptional, timeout_ms, NULL);
    /* Linux's select leaves the time not slept in *timeout. */
    if (timeout != NULL && timeout_ms >= 0) {
        long long left = timeout_ms - (mt_sys_now_ms() - start);
        if (left < 0)
            left = 0;
        timeout->tv_sec = (time_t)(left / 1000);
        timeout->tv_usec = (suseconds_t)(left % 1000) * 1000;
    }
    return result;
}

MT_EXPORT int pselect(int count, fd_set *readable, fd_set *writable, fd_set *exceptional,
                      const struct timespec *timeout, const sigset_t *mask)
{
    mt_real_init();
    if (!mt_readiness_select_has_ours(count, readable, writable, exceptional))
        return real_pselect(count, readable, writable, exceptional, timeout, mask);
    return mt_readiness_select(count, readable, writable, exceptional, timeout_to_ms(timeout),
                               mask);
}

MT_EXPORT int epoll_create(int size)
{
    mt_real_init();
    int epfd = real_epoll_create(size);
    if (epfd >= 0)
        mt_epoll_created(epfd);
    return epfd;
}

MT_EXPORT int epoll_create1(int flags)
{
    mt_real_init();
    int epfd = real_epoll_create1(flags);
    if (epfd >= 0)
        mt_epoll_created(epfd);
    return epfd;
}

MT_EXPORT int epoll_ctl(int epfd, int operation, int fd, struct epoll_event *event)
{
    mt_real_init();
    return mt_epoll_ctl(epfd, operation, fd, event);
}

MT_EXPORT int epoll_wait(int epfd, struct epoll_event *events, int capacity, int timeout_ms)
{
    mt_real_init();
    if (!mt_epoll_is_ours(epfd))
        return real_epoll_wait(epfd, events, capacity, timeout_ms);
    return mt_epoll_wait(epfd, events, capacity, timeout_ms, NULL);
}

MT_EXPORT int epoll_pwait(int epfd, struct epoll_event *events, int capacity, int timeout_ms,
                          const sigset_t *mask)
{
    mt_real_init();
    if (!mt_epoll_is_ours(epfd))
        return real_epoll_pwait(epfd, events, capacity, timeout_ms, mask);
    return mt_epoll_wait(epfd, events, capacity, timeout_ms, mask);
}

MT_EXPORT int epoll_pwait2(int epfd, struct epoll_event *events, int capacity,
                           const struct timespec *timeout, const sigset_t *mask)
{
    mt_real_init();
    if (!mt_epoll_is_ours(epfd))
        return real_epoll_pwait2(epfd, events, capacity, timeout, mask);
    return mt_epoll_wait(epfd, events, capacity, timeout_to_ms(timeout), mask);
}
