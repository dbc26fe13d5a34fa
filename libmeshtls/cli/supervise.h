/*
 * `meshtls supervise [--config FILE] -- PROGRAM [ARGS...]` (not in the usage text): runs PROGRAM
 * under the seccomp supervisor (libmeshtls/supervisor/), for programs no preload can enter
 * (static, Go). `meshtls run` is to choose it by itself for such programs.
 */
#ifndef MT_CLI_SUPERVISE_H
#define MT_CLI_SUPERVISE_H

/* argv holds the arguments after "supervise"; returns the exit status (the program's). */
int mt_cli_supervise(int argc, char **argv);

#endif
