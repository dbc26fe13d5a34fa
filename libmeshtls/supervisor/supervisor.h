/*
 * The supervisor: meshes a program that no preload can enter (statically linked, Go), from
 * outside it. The program runs as a child under a seccomp filter whose socket system calls
 * (connect, listen, accept, getsockname, getpeername, io_uring_setup) come to this process as user
 * notifications; the supervisor answers them with the same policy and engine the preload uses,
 * and carries the meshed traffic through loopback relays.
 *
 *     int status = mt_supervise(program, &config);   // program: argv, NULL-terminated
 *
 * Returns the status to exit with: the program's exit status, 128 + signal when a signal ended
 * it, 127 when there is no such program, 126 when it was not started: it cannot be executed, it
 * is not a program the supervisor can filter (32-bit, another machine's), or this kernel cannot
 * supervise it (each said on stderr). A refused program never runs, so never unprotected.
 */
#ifndef MT_SUPERVISOR_SUPERVISOR_H
#define MT_SUPERVISOR_SUPERVISOR_H

#include "../config/config.h"

int mt_supervise(char **program, const struct mt_config *config);

/*
 * Called once, right after the program's process exists and before it runs: from here on,
 * identity and metrics-file requests of this process are made for pidfd's process (the
 * program), not for the supervisor (mt_identity_set_subject). pidfd stays open while the
 * program runs.
 */
void mt_supervisor_take_subject(int pidfd);

#endif
