/*
 * Whether pidfds work here. The agent ties a caller to its start time (and so to its executable
 * and its metrics file) with pidfd_send_signal; where that system call is missing (valgrind 3.19
 * does not know it) no caller can be attested, by design, and the tests that need one are
 * skipped with a message rather than passed.
 */
#ifndef MT_TESTS_UNIT_PIDFD_SUPPORT_H
#define MT_TESTS_UNIT_PIDFD_SUPPORT_H

#include <stdbool.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline bool pidfds_work(void)
{
    int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (pidfd < 0)
        return false;
    bool works = syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0;
    close(pidfd);
    return works;
}

#define REQUIRE_PIDFDS()                                                                           \
    do {                                                                                           \
        if (!pidfds_work()) {                                                                      \
            print_message("pidfd_open/pidfd_send_signal unavailable here: skipped\n");             \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

#endif
