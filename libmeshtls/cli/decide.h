/*
 * `meshtls config decide [FILE] outbound|inbound ADDRESS:PORT`: the decision policy takes for one
 * connection under the configuration a program would load (FILE standing in for MESHTLS_CONFIG),
 * e.g. to see what a shipped configuration does with the API server's address before rolling it
 * out.
 */
#ifndef MT_CLI_DECIDE_H
#define MT_CLI_DECIDE_H

/* argv holds the arguments after "decide"; returns the exit status (0, 2 usage or config). */
int mt_cli_decide(int argc, char **argv);

#endif
