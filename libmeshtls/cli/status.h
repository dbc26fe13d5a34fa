/*
 * `meshtls status [--socket PATH]`: the processes using the agent, their identities and expiry,
 * and their open connections with peer identity and whether each is mTLS.
 */
#ifndef MT_CLI_STATUS_H
#define MT_CLI_STATUS_H

/* argv holds the arguments after "status"; returns the exit status (0, 1 agent error, 2 usage). */
int mt_cli_status(int argc, char **argv);

#endif
