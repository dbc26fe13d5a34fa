/*
 * Connections that cross exec.
 *
 * An inetd-style server accepts a connection and starts a program that serves it on an inherited
 * fd (often stdin/stdout), before or after its TLS session started: by fork and exec, by vfork and
 * exec (Python's subprocess), or by posix_spawn with a dup2 file action.
 *
 * A connection whose handshake has not started: the exec hooks describe every such fd that
 * survives exec (no FD_CLOEXEC) in MESHTLS_INHERIT ("fd:s,fd:c@address" — server or client
 * side), and the preload in the new program adopts them when it loads, as if it had accepted or
 * connected them itself.
 *
 * An established session the new program gets (an fd the application did not make
 * close-on-exec, or the target of a posix_spawn dup2 action): when the preload will load into the
 * new program (exec/check.c), it is exported into a sealed memfd (handover.h) and continues there
 * ("fd:h" for each of its fds in the new program, "memfd:m"). From the export on, this process's
 * copy is given away (conn.h: mt_conn_export): it sends nothing, and a later read or write fails
 * closed with one log line; if the start fails, it is taken back as it was. Where it cannot
 * follow (the program cannot be interposed, the session is not established or cannot be
 * exported), the connection is reset before the start (mt_conn_reset), with one log line naming
 * the program, the fd, the peer and why: the new program could only write to it in clear. (An fd
 * that posix_spawn's new program would inherit as it is, without a dup2 action, is closed there
 * instead, and the caller keeps the connection.) The new environment keeps LD_PRELOAD pointing at
 * libmeshtls whenever it hands anything over, and names the build of libmeshtls the new program's
 * C library needs (variant.h) whenever it names this one.
 *
 * Where it runs:
 *  - exec in a process of its own (a fork child, or the program itself): the table says which
 *    fds are connections;
 *  - exec in a vfork child, which shares its parent's memory while the parent's other threads
 *    may run: nothing is allocated and no table changes. Its fds are not the table's (a dup2
 *    there is not recorded), so a session's fds are told by the socket's inode, and what the
 *    child asked for them (dup2, F_SETFD, FIONCLEX: to keep them open across exec) is noted in a
 *    small record of the vforking thread's own (thread-local, tagged with the child's pid). The
 *    one change to the parent's memory is deliberate: the given-away mark of each session
 *    handed over (undone if exec fails);
 *  - posix_spawn, whose child runs glibc's own dup2 and execve where no hook reaches: the hook
 *    decides in the parent, before the spawn, from the dup2 actions remembered for the actions
 *    object and the fds the application wants kept open; the memfd is inheritable for the
 *    spawn's duration only (another thread's fork in that window inherits it too).
 *
 * From its first handshake step on (core/conn.c), each fd of a started session is close-on-exec
 * in the kernel, so that the starts no hook sees (system, popen, a raw execve) give the new
 * program that fd closed; the hooks below keep it so, remember what the application asked for
 * each fd, report it back by fcntl(F_GETFD), and clear the flag only for the exec that carries
 * the session.
 */
#ifndef MT_CORE_INHERIT_H
#define MT_CORE_INHERIT_H

#include <limits.h>
#include <spawn.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "handover.h"

/* How a new program is started: found like execve or execvp, or unknown (fexecve); replacing
 * this process (exec), or beside it (posix_spawn, posix_spawnp). */
enum mt_inherit_start {
    MT_INHERIT_EXEC_PATH,
    MT_INHERIT_EXEC_SEARCH,
    MT_INHERIT_EXEC_FD,
    MT_INHERIT_SPAWN_PATH,
    MT_INHERIT_SPAWN_SEARCH,
};

/* MESHTLS_INHERIT's entries: room for every session's names is always kept. */
#define MT_INHERIT_LIST_MAX 8192
/* An environment of up to this many entries is extended on the stack; a larger one is
 * allocated, except in a vfork child, where the sessions it would carry are reset instead. */
#define MT_INHERIT_ROOM 512

/*
 * One start of a program, on the caller's stack: nothing is allocated on the way to exec (a vfork
 * child starts programs too).
 */
struct mt_inherit_exec {
    struct mt_handover handover;
    char list[MT_INHERIT_LIST_MAX]; /* "MESHTLS_INHERIT=fd:s,..." */
    size_t length;
    char preload[PATH_MAX + 16]; /* "LD_PRELOAD=...", when the environment lacked it */
    char variant[PATH_MAX + 64]; /* "LD_PRELOAD=...", naming the other build (variant.h) */
    char *room[MT_INHERIT_ROOM]; /* the new environment */
    char **allocated_room;       /* or this, for a larger one */
    const char *program;
};

/*
 * The environment the new program should get: envp itself when nothing needs to change, else a
 * new one in exec. program names it in logs; actions are a posix_spawn's (NULL otherwise). Each
 * started session the new program gets is handed over or reset first, as above. Call
 * mt_inherit_start_failed if the start fails, mt_inherit_spawned once posix_spawn succeeded.
 */
char **mt_inherit_environment(struct mt_inherit_exec *exec, const char *program,
                              enum mt_inherit_start start,
                              const posix_spawn_file_actions_t *actions, char *const envp[]);

/* exec or posix_spawn failed: the sessions carry on here (handover.h: abandon). */
void mt_inherit_start_failed(struct mt_inherit_exec *exec);

/* posix_spawn started the new program as pid: the sessions handed over stay its. */
void mt_inherit_spawned(struct mt_inherit_exec *exec, pid_t pid);

/*
 * Before exec of program (looked up in $PATH when search is true, as execvp does): logs a warning
 * naming it when libmeshtls cannot be interposed into it (static, Go, musl, setuid/setgid, file
 * capabilities), since its connections would escape the mesh.
 */
void mt_inherit_check_program(const char *program, bool search);

/*
 * fcntl(F_SETFD, flags): the flags the kernel must get for fd (FD_CLOEXEC kept while fd's session
 * cannot cross exec, the application's wish remembered).
 */
int mt_inherit_descriptor_flags_to_set(int fd, int flags);

/* fcntl(F_GETFD): the kernel's flags for fd as the application set them. */
int mt_inherit_descriptor_flags_seen(int fd, int flags);

/*
 * ioctl(FIONCLEX/FIOCLEX) on fd: true when fd's session cannot cross exec; the application's wish
 * is then remembered and FIONCLEX must not reach the kernel.
 */
bool mt_inherit_holds(int fd, bool keep_open);

/* copy was made from fd in a vfork child (dup, dup2, dup3, F_DUPFD): when it names a started
 * session it stays close-on-exec, and whether the application's call left it open across exec is
 * noted for the exec hook. */
void mt_inherit_hold_copy(int fd, int copy);

/* What posix_spawn_file_actions_adddup2(actions, fd, target) must do. */
enum mt_inherit_spawn_dup {
    MT_INHERIT_SPAWN_DUP,          /* add the action as asked (it is remembered for the spawn) */
    MT_INHERIT_SPAWN_CLOSE_TARGET, /* a vfork child's action on a started session: close target */
    MT_INHERIT_SPAWN_REFUSE,       /* it could not be remembered: refuse the action (ENOMEM) */
};
enum mt_inherit_spawn_dup mt_inherit_spawn_dup(const posix_spawn_file_actions_t *actions, int fd,
                                               int target);

/* posix_spawn_file_actions_init/destroy: what was remembered of actions goes. */
void mt_inherit_spawn_actions_forget(const posix_spawn_file_actions_t *actions);

/*
 * sendmsg/sendmmsg on a socket that is not ours: true (logged) when message's SCM_RIGHTS would
 * pass a meshed connection to another process, which could only read and write it in clear;
 * refuse the send.
 */
bool mt_inherit_message_passes_connection(const struct msghdr *message);

/* In a fork child: the lock of the remembered spawn actions, which another thread may have held. */
void mt_inherit_after_fork_child(void);

/* In a freshly exec'd program: adopts the connections MESHTLS_INHERIT describes. */
void mt_inherit_adopt(void);

#endif
