/*
 * The `#!` line of a script, read as the kernel reads it (fs/binfmt_script.c): the interpreter is
 * the first word, the rest of the line (trimmed) is one optional argument. A script run through
 * `#!/usr/bin/env NAME` is run by the NAME env finds.
 */
#ifndef MT_EXEC_SCRIPT_H
#define MT_EXEC_SCRIPT_H

#include <stddef.h>

/*
 * Splits the #! line at the start of header (length bytes read from the file, starting "#!")
 * into its interpreter and its argument, each cut to its capacity.
 */
void mt_script_parse_line(const char *header, size_t length, char *interpreter,
                          size_t interpreter_capacity, char *argument, size_t argument_capacity);

/* For env's argument "-S python3 -u" or "python3": the command env will look up ("python3"). */
void mt_script_env_command(const char *argument, char *command, size_t capacity);

#endif
