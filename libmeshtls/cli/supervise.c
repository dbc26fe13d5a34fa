/*
 * `meshtls supervise`: the configuration as `meshtls run` reads it, then mt_supervise. Never
 * starts a program whose configuration is broken.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config/config.h"
#include "../supervisor/supervisor.h"
#include "../util/text.h"
#include "supervise.h"

int mt_cli_supervise(int argc, char **argv)
{
    int i = 0;
    while (i < argc && strcmp(argv[i], "--") != 0) {
        if (strcmp(argv[i], "--config") != 0 || i + 1 >= argc) {
            fprintf(stderr, "usage: meshtls supervise [--config FILE] -- PROGRAM [ARGS...]\n");
            return 2;
        }
        char absolute[PATH_MAX];
        if (realpath(argv[i + 1], absolute) == NULL) {
            fprintf(stderr, "meshtls: config %s: %s\n", argv[i + 1], strerror(errno));
            return 2;
        }
        setenv("MESHTLS_CONFIG", absolute, 1);
        i += 2;
    }
    if (i + 1 >= argc) {
        fprintf(stderr, "usage: meshtls supervise [--config FILE] -- PROGRAM [ARGS...]\n");
        return 2;
    }
    char **program = &argv[i + 1];
    static struct mt_config config;
    char message[MT_CONFIG_MESSAGE_MAX];
    struct mt_text reason = mt_text_on(message, sizeof(message));
    if (!mt_result_is_ok(mt_config_load(&config, &reason))) {
        fprintf(stderr, "meshtls: not starting %s: configuration error: %s\n", program[0], message);
        return 2;
    }
    return mt_supervise(program, &config);
}
