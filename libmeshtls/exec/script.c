/*
 * The #! line of a script (see script.h), split the way the kernel splits it.
 *
 * Owns only the text of that line: it never opens, reads or runs a file, and never writes past
 * the capacities it is given (a longer word is cut, as the kernel's BINPRM_BUF_SIZE cuts a line).
 */
#include <stdio.h>
#include <string.h>

#include "script.h"

void mt_script_parse_line(const char *header, size_t length, char *interpreter,
                          size_t interpreter_capacity, char *argument, size_t argument_capacity)
{
    const char *end = memchr(header, '\n', length);
    const char *line_end = end != NULL ? end : header + length;
    const char *cursor = header + 2;
    while (cursor < line_end && (*cursor == ' ' || *cursor == '\t'))
        cursor++;
    const char *word = cursor;
    while (cursor < line_end && *cursor != ' ' && *cursor != '\t')
        cursor++;
    snprintf(interpreter, interpreter_capacity, "%.*s", (int)(cursor - word), word);
    while (cursor < line_end && (*cursor == ' ' || *cursor == '\t'))
        cursor++;
    const char *rest_end = line_end;
    while (rest_end > cursor &&
           (rest_end[-1] == ' ' || rest_end[-1] == '\t' || rest_end[-1] == '\r'))
        rest_end--;
    snprintf(argument, argument_capacity, "%.*s", (int)(rest_end - cursor), cursor);
}

/* env's options come first ("-S", "-i"); its first word that is not one is the command. */
void mt_script_env_command(const char *argument, char *command, size_t capacity)
{
    const char *cursor = argument;
    while (*cursor == '-') {
        while (*cursor != '\0' && *cursor != ' ')
            cursor++;
        while (*cursor == ' ')
            cursor++;
    }
    size_t length = strcspn(cursor, " \t");
    snprintf(command, capacity, "%.*s", (int)length, cursor);
}
