/*
 * What the supervisor's files share: the supervised program, one notification being answered,
 * and the table of addresses the program must be told instead of the relays' (getsockname,
 * getpeername). Private to libmeshtls/supervisor/.
 *
 * Files: filter.c (seccomp filter, starting the program, handing the listener over),
 * notify.c (the notification loop, reading and writing the program's memory, answering),
 * outbound.c (connect), inbound.c (listen and the accept loops), accept.c (the program's
 * accept on such a listener), relay.c (bytes between a mesh
 * connection and the program's loopback end), addresses.c (getsockname/getpeername answers),
 * program.c (which programs can be supervised), supervise.c (mt_supervise: start, loop, exit
 * status).
 */
#ifndef MT_SUPERVISOR_INTERNAL_H
#define MT_SUPERVISOR_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "../config/config.h"

struct mt_supervisor {
    const struct mt_config *config;
    int listener; /* the seccomp user-notification fd */
    pid_t child;
    int child_pidfd;
};

/* One system call of the program, waiting for our answer. */
struct mt_supervisor_call {
    struct mt_supervisor *supervisor;
    uint64_t id;
    pid_t pid; /* the calling thread */
    int number;
    uint64_t args[6];
};

/* filter.c: installs the filter on the calling thread (no_new_privs must be set); the
 * notification fd, or -1 with errno. */
int mt_supervisor_install_filter(void);
/* filter.c: forks and starts program under the filter. 0, with *listener the notification fd,
 * *child and *pidfd the program's process; else the status to exit with, said on stderr. */
int mt_supervisor_start(char **program, int *listener, pid_t *child, int *pidfd);

/* program.c: 0 when program (a name as execvp takes it) can be supervised, else the status to
 * exit with, the reason said on stderr. */
int mt_supervisor_check_program(const char *program);

/* notify.c */
bool mt_supervisor_call_is_valid(const struct mt_supervisor_call *call);
/* Copies length bytes of the program's memory at address; 0 or -errno (ESRCH: call gone). */
int mt_supervisor_copy_in(const struct mt_supervisor_call *call, uint64_t address, void *buffer,
                          size_t length);
int mt_supervisor_copy_out(const struct mt_supervisor_call *call, uint64_t address,
                           const void *buffer, size_t length);
/* A copy of the program's descriptor target_fd in this process, or -errno. */
int mt_supervisor_take_fd(const struct mt_supervisor_call *call, int target_fd);
/* Whether the program's descriptor has FD_CLOEXEC (from /proc/PID/fdinfo). */
bool mt_supervisor_fd_is_cloexec(const struct mt_supervisor_call *call, int target_fd);
/* Puts our_fd in the program at target_fd (closing what was there); 0 or -errno. */
int mt_supervisor_replace_fd(const struct mt_supervisor_call *call, int our_fd, int target_fd,
                             bool cloexec);
/* The call returns value, or fails with error (a positive errno) when error is not 0. */
void mt_supervisor_answer(const struct mt_supervisor_call *call, int64_t value, int error);
/* The kernel runs the call as the program made it (only for calls no decision depends on). */
void mt_supervisor_continue(const struct mt_supervisor_call *call);
/* Answers one notification read from the listener; false when the listener is gone. */
bool mt_supervisor_handle_next(struct mt_supervisor *supervisor);

/* True for an AF_INET/AF_INET6 SOCK_STREAM TCP socket; *family set. */
bool mt_supervisor_is_tcp(int fd, int *family);
/* Runs function(argument) on a detached thread; false when none could be started. */
bool mt_supervisor_spawn(void *(*function)(void *), void *argument);

/* outbound.c: connect(fd, address, length). Takes ownership of call (heap). */
void mt_supervisor_connect(struct mt_supervisor_call *call);
/* inbound.c: listen(fd, backlog). */
void mt_supervisor_listen(struct mt_supervisor_call *call);
/* accept.c: accept/accept4(fd, address, length pointer[, flags]) */
void mt_supervisor_accept(struct mt_supervisor_call *call);

/* relay.c: carries bytes between mesh (a connection of the engine, or plain) and local (the
 * program's loopback end) until both directions end; closes both. what names it in log lines. */
void mt_supervisor_relay(int mesh, int local, const char *what);
/* Waits until no relay runs, or timeout_ms passed. */
void mt_supervisor_wait_relays(int timeout_ms);

/* addresses.c: the address getsockname (local) or getpeername (peer) must answer for the
 * program's socket with inode. */
enum mt_supervisor_side {
    MT_SUPERVISOR_LOCAL,
    MT_SUPERVISOR_PEER,
    MT_SUPERVISOR_SERVED, /* a real listener the supervisor accepts on (no address) */
};
void mt_supervisor_remember(ino_t inode, enum mt_supervisor_side side,
                            const struct sockaddr_storage *address, socklen_t length);
void mt_supervisor_forget(ino_t inode);
bool mt_supervisor_is_remembered(ino_t inode);
/* True for the program's side of a listener the supervisor moved behind itself. */
bool mt_supervisor_is_listener(ino_t inode);
/* True for a real listener the supervisor serves (the program may hold a duplicate of it). */
bool mt_supervisor_is_served(ino_t inode);
/* getsockname/getpeername(fd, address, length pointer) */
void mt_supervisor_name(struct mt_supervisor_call *call, enum mt_supervisor_side side);
/* Writes address into the call's (args[1], *args[2]) as the kernel would; 0 or -errno. */
int mt_supervisor_hand_out(const struct mt_supervisor_call *call,
                           const struct sockaddr_storage *address, socklen_t length);
/* Inbound relays, known by their end's address (the peer of the program's accepted socket). */
void mt_supervisor_remember_relay(const struct sockaddr_storage *end, socklen_t end_length,
                                  const struct sockaddr_storage *peer, socklen_t peer_length,
                                  const struct sockaddr_storage *local, socklen_t local_length);
void mt_supervisor_forget_relay(const struct sockaddr_storage *end, socklen_t end_length);
bool mt_supervisor_relayed_address(const struct sockaddr_storage *end, socklen_t end_length,
                                   enum mt_supervisor_side side, struct sockaddr_storage *address,
                                   socklen_t *length);
ino_t mt_supervisor_inode(int fd);

#endif
