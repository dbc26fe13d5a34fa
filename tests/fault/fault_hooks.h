/*
 * Fault injection into util/sys.c's system calls, for tests only.
 *
 * util/sys.c calls these only when compiled with MT_FAULT_INJECTION, which tests/fault/meson.build
 * does for libmeshtls-preload-faults.so (never installed); the production library contains neither
 * the calls nor this code. What is injected, and how often, comes from MESHTLS_FAULTS (see
 * fault.c); without it nothing is injected.
 */
#ifndef MT_FAULT_HOOKS_H
#define MT_FAULT_HOOKS_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Before a recv or read (sending false), or a send or write (sending true) on fd: true when the
 * call must not be made and -1 returned with errno set (EINTR, EAGAIN, ECONNRESET); otherwise the
 * call goes ahead, *length possibly shortened (never to 0).
 */
bool mt_fault_before_transfer(int fd, int flags, size_t *length, bool sending);

/* Before a wait (poll, ppoll, epoll_pwait): true when it must return -1 with errno EINTR without
 * waiting. */
bool mt_fault_before_wait(int timeout_ms);

#endif
