/*
 * Connections that cross exec.
 *
 * An inetd-style server accepts a connection and execs a program that serves it on an inherited
 * fd (often stdin/stdout). A TLS session in progress cannot cross exec (Debian's wolfSSL cannot
 * export one), but a connection whose handshake has not started can: the exec hooks describe
 * every such fd that survives exec (no FD_CLOEXEC) in MESHTLS_INHERIT ("fd:s,fd:c" — server or
 * client side), and the preload in the new program adopts them when it loads, as if it had
 * accepted or connected them itself. The new environment keeps LD_PRELOAD pointing at libmeshtls
 * when it hands a connection over: a program without it would speak plaintext on a meshed socket.
 * A connection whose session already started is logged as lost to the new program.
 */
#ifndef MT_CORE_INHERIT_H
#define MT_CORE_INHERIT_H

#include <stdbool.h>

/*
 * The environment the new program should get: envp itself when nothing needs to change, else a
 * new array (free it with mt_inherit_environment_free if exec fails). program names it in logs.
 */
char **mt_inherit_environment(const char *program, char *const envp[]);
void mt_inherit_environment_free(char **environment, char *const envp[]);

/*
 * Before exec of program (looked up in $PATH when search is true, as execvp does): logs a warning
 * naming it when libmeshtls cannot be interposed into it (static, Go, musl, setuid/setgid, file
 * capabilities), since its connections would escape the mesh.
 */
void mt_inherit_check_program(const char *program, bool search);

/* In a freshly exec'd program: adopts the connections MESHTLS_INHERIT describes. */
void mt_inherit_adopt(void);

#endif
