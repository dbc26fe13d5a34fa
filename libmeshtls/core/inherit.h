/*
 * Connections that cross exec.
 *
 * An inetd-style server accepts a connection and execs a program that serves it on an inherited
 * fd (often stdin/stdout), before or after its TLS session started.
 *
 * A connection whose handshake has not started: the exec hooks describe every such fd that
 * survives exec (no FD_CLOEXEC) in MESHTLS_INHERIT ("fd:s,fd:c@address" — server or client
 * side), and the preload in the new program adopts them when it loads, as if it had accepted or
 * connected them itself.
 *
 * An established session the new program inherits (the application did not ask for
 * close-on-exec): when the preload will load into the new program (exec/check.c), it is exported
 * into a sealed memfd (handover.h) and continues there ("fd:h" for each fd, "memfd:m"). Where it
 * cannot follow (the program cannot be interposed, the session is not established or cannot be
 * exported, a vfork child), the connection is reset before exec (mt_conn_reset), with one log
 * line naming the program, the fd, the peer and why: the new program could only write to it in
 * clear. The new environment keeps LD_PRELOAD pointing at libmeshtls whenever it hands anything
 * over.
 *
 * From its first handshake step on (core/conn.c), each fd of a started session is close-on-exec
 * in the kernel, so that the starts no hook sees (system, popen, posix_spawn's child) give the
 * new program that fd closed; the hooks below keep it so, remember what the application asked
 * for each fd, report it back by fcntl(F_GETFD), and clear the flag only for the exec that
 * carries the session. In a vfork child (which shares the parent's memory and must leave its
 * tables alone), only the kernel flag is kept.
 */
#ifndef MT_CORE_INHERIT_H
#define MT_CORE_INHERIT_H

#include <spawn.h>
#include <stdbool.h>
#include <sys/socket.h>

/* How a new program is started: found like execve or execvp, or unknown (fexecve); replacing
 * this process (exec), or beside it (posix_spawn). */
enum mt_inherit_start {
    MT_INHERIT_EXEC_PATH,
    MT_INHERIT_EXEC_SEARCH,
    MT_INHERIT_EXEC_FD,
    MT_INHERIT_SPAWN,
};

/*
 * The environment the new program should get: envp itself when nothing needs to change, else a
 * new array (free it with mt_inherit_environment_free if exec fails). program names it in logs.
 * An exec (not a spawn) of a program that will run resets, first, each started session that the
 * application wanted the new program to inherit (mt_conn_reset, one log line each): the new
 * program would write to it in clear.
 */
char **mt_inherit_environment(const char *program, enum mt_inherit_start start, char *const envp[]);
void mt_inherit_environment_free(char **environment, char *const envp[]);

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

/* copy was made from fd in a vfork child (dup, dup2, dup3, F_DUPFD): it stays close-on-exec
 * when fd's session cannot cross exec. */
void mt_inherit_hold_copy(int fd, int copy);

/* What posix_spawn_file_actions_adddup2(actions, fd, target) must do. */
enum mt_inherit_spawn_dup {
    MT_INHERIT_SPAWN_DUP,          /* add the action as asked (it is remembered for the spawn) */
    MT_INHERIT_SPAWN_CLOSE_TARGET, /* fd's session cannot cross exec: close target instead */
    MT_INHERIT_SPAWN_REFUSE,       /* it could not be remembered: refuse the action (ENOMEM) */
};
enum mt_inherit_spawn_dup mt_inherit_spawn_dup(const posix_spawn_file_actions_t *actions, int fd,
                                               int target);

/* posix_spawn_file_actions_init/destroy: what was remembered of actions goes. */
void mt_inherit_spawn_actions_forget(const posix_spawn_file_actions_t *actions);

/*
 * Before posix_spawn of program with actions: false (logged) when a dup2 action puts an fd on a
 * new program's fd and that fd is now a started session — the spawn must then be refused, as the
 * new program would get the session's raw socket. (A session that another thread starts between
 * this check and the spawn is not caught.)
 */
bool mt_inherit_spawn_allowed(const posix_spawn_file_actions_t *actions, const char *program);

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
