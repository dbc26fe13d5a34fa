/*
 * `meshtls run [--config FILE] [--allow-plaintext] [--allow-io-uring] -- PROGRAM [ARGS...]`:
 * PROGRAM with its TCP connections meshed, or not at all.
 *
 * PROGRAM is examined (exec/check.h) before it is started:
 *
 *   glibc, dynamically linked          exec with LD_PRELOAD naming libmeshtls-preload.so
 *   musl, libmeshtls-preload-musl.so   exec with LD_PRELOAD naming that variant alone (an entry
 *     installed beside the glibc one   already there, such as a glibc sanitizer runtime, would
 *                                      make musl's loader fail)
 *   anything else (Go, static, musl    refused: "meshtls: not starting PROGRAM: <why>", what can
 *     without the variant, io_uring,   be done, exit 126, PROGRAM never started; with
 *     set-user-ID, capabilities, ...)  --allow-plaintext started with a warn line saying its
 *                                      connections are NOT protected
 *
 * An io_uring program may use io_uring for files only (MariaDB's InnoDB): --allow-io-uring starts
 * it with the preload its loader takes, and a warn line saying what io_uring would carry
 * unprotected. A program that cannot be found or executed is left to execvp, which says why
 * (127 or 126). Go and static programs are decided in start_under_supervisor() (run.c).
 */
#ifndef MT_CLI_RUN_H
#define MT_CLI_RUN_H

/* Exit status of a refused program, as a shell's for a command found but not executable. */
#define MT_CLI_RUN_REFUSED 126

/* argv holds the arguments after "run"; execs PROGRAM, or returns the exit status (2: usage or
 * configuration, 126: refused, 127: not found). */
int mt_cli_run(int argc, char **argv);

#endif
