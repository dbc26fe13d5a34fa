/*
 * `meshtls run` (see run.h): the configuration check, finding the preload, the decision how
 * PROGRAM can be protected, and the exec.
 *
 * Owns that decision; it never starts a program unprotected unless --allow-plaintext says so,
 * and then says so in a warn line. The examination is exec/check.c's, so `meshtls check
 * PROGRAM` tells beforehand what `meshtls run` will do.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../config/config.h"
#include "../exec/check.h"
#include "../supervisor/supervisor.h"
#include "../util/log.h"
#include "../util/text.h"
#include "run.h"

#define PRELOAD_NAME "libmeshtls-preload.so"
#define MUSL_PRELOAD_NAME "libmeshtls-preload-musl.so"

struct run {
    char **program; /* PROGRAM and its arguments */
    bool allow_plaintext;
    bool allow_io_uring;         /* its sockets do not go through io_uring: mesh the rest */
    char preload[PATH_MAX];      /* the glibc preload */
    char musl_preload[PATH_MAX]; /* its musl variant beside it; "" when not installed */
    struct mt_check_report report;
    const struct mt_config *config; /* loaded and checked: the supervisor's */
};

static int usage(void)
{
    fprintf(stderr,
            "usage: meshtls run [--config FILE] [--allow-plaintext] [--allow-io-uring] -- PROGRAM "
            "[ARGS...]\n"
            "       (meshtls help: every command)\n");
    return 2;
}

/* Finds the preload library relative to this executable; false when it is in neither place. */
static bool find_preload(char *path, size_t capacity)
{
    char self[PATH_MAX];
    ssize_t length = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (length <= 0)
        return false;
    self[length] = '\0';
    char *slash = strrchr(self, '/');
    if (slash == NULL)
        return false;
    *slash = '\0';
    const char *candidates[] = {"", "/" MESHTLS_PRELOAD_RELATIVE_DIR};
    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
        int n = snprintf(path, capacity, "%s%s/%s", self, candidates[i], PRELOAD_NAME);
        if (n > 0 && (size_t)n < capacity && access(path, R_OK) == 0) {
            char resolved[PATH_MAX];
            if (realpath(path, resolved) != NULL)
                snprintf(path, capacity, "%s", resolved);
            return true;
        }
    }
    return false;
}

/* The musl variant, installed in the same directory as the glibc preload; "" when absent. */
static void find_musl_preload(const char *preload, char *path, size_t capacity)
{
    const char *slash = strrchr(preload, '/');
    int n = snprintf(path, capacity, "%.*s/%s", (int)(slash - preload), preload, MUSL_PRELOAD_NAME);
    if (n <= 0 || (size_t)n >= capacity || access(path, R_OK) != 0)
        path[0] = '\0';
}

/* Keeps what is already preloaded (a sanitizer runtime must stay first), then the glibc preload. */
static void preload_for_glibc(const struct run *run)
{
    const char *existing = getenv("LD_PRELOAD");
    char value[2 * PATH_MAX + 2];
    if (existing != NULL && existing[0] != '\0' && strstr(existing, PRELOAD_NAME) == NULL)
        snprintf(value, sizeof(value), "%s:%s", existing, run->preload);
    else
        snprintf(value, sizeof(value), "%s", run->preload);
    setenv("LD_PRELOAD", value, 1);
}

/*
 * The musl variant alone: what is already in LD_PRELOAD was built for glibc (a sanitizer
 * runtime, or this preload itself from a meshed parent), and musl's loader stops the program
 * when it cannot load an entry.
 */
static void preload_for_musl(const struct run *run)
{
    setenv("LD_PRELOAD", run->musl_preload, 1);
}

static int exec_program(char **program)
{
    execvp(program[0], program);
    int error = errno;
    fprintf(stderr, "meshtls: cannot run %s: %s\n", program[0], strerror(error));
    return error == ENOENT ? 127 : 126;
}

/* What the user can do about a program nothing here can protect, for the refusal. */
static const char *remedy(const struct run *run, char *text, size_t capacity)
{
    switch (run->report.verdict) {
    case MT_CHECK_MUSL:
        snprintf(text, capacity,
                 "Install " MUSL_PRELOAD_NAME
                 " (the preload built against musl) in %.*s, beside " PRELOAD_NAME
                 ", or use a glibc build of the program.",
                 (int)(strrchr(run->preload, '/') - run->preload), run->preload);
        return text;
    case MT_CHECK_IO_URING:
        return "Configure it not to use io_uring for its sockets, or put a meshed proxy in front "
               "of it. If it uses io_uring for files only (MariaDB's InnoDB does), meshtls run "
               "--allow-io-uring meshes its sockets.";
    case MT_CHECK_SETUID:
    case MT_CHECK_SETGID:
    case MT_CHECK_CAPABILITIES:
        return "Start a copy without the set-user-ID/set-group-ID bits or file capabilities, as "
               "the user and with the capabilities it needs (a service manager can grant them).";
    default:
        return "Use a dynamically linked glibc build of the program for this machine.";
    }
}

/* Programs started by glibc's loader or by none: a glibc library in LD_PRELOAD does them no
 * harm. musl's loader, and perhaps an unknown one, stop the program with exit 127 on it. */
static bool is_glibc_loaded(enum mt_check_verdict verdict)
{
    return verdict != MT_CHECK_MUSL && verdict != MT_CHECK_UNKNOWN_LOADER &&
           verdict != MT_CHECK_FOREIGN;
}

/*
 * Nothing can protect the program: refused (exit 126, never started), or with --allow-plaintext
 * started anyway after a warn line. The glibc preload stays in LD_PRELOAD where it does no harm,
 * so the programs it starts in turn are meshed; for the other loaders LD_PRELOAD is emptied, as
 * a glibc entry in it (a sanitizer runtime too) would stop the program before it starts.
 */
static int refuse_or_start_plaintext(struct run *run)
{
    const char *program = run->program[0];
    if (!run->allow_plaintext) {
        char text[PATH_MAX + 200];
        fprintf(stderr,
                "meshtls: not starting %s: %s\n"
                "meshtls: %s\n"
                "meshtls: to start it anyway, its connections in plaintext: meshtls run "
                "--allow-plaintext -- %s\n",
                program, run->report.sentence, remedy(run, text, sizeof(text)), program);
        return MT_CLI_RUN_REFUSED;
    }
    mt_log_warn("starting %s with --allow-plaintext: its connections are NOT protected: %s",
                program, run->report.sentence);
    if (is_glibc_loaded(run->report.verdict))
        preload_for_glibc(run);
    else
        unsetenv("LD_PRELOAD");
    return exec_program(run->program);
}

static bool has_musl_loader(const struct mt_check_report *report)
{
    return strstr(report->interpreter, "ld-musl") != NULL;
}

/*
 * --allow-io-uring: the user vouches that the program's sockets do not go through io_uring, so
 * its socket calls are meshed like any program's; a warn line says what stays unprotected.
 */
static int start_io_uring(struct run *run)
{
    if (!run->allow_io_uring)
        return refuse_or_start_plaintext(run);
    if (has_musl_loader(&run->report) && run->musl_preload[0] == '\0') {
        /* Judged as musl now, whose refusal says what to install. */
        run->report.verdict = MT_CHECK_MUSL;
        return refuse_or_start_plaintext(run);
    }
    mt_log_warn("starting %s with --allow-io-uring: connections it drives through io_uring are "
                "NOT protected, its other socket calls are meshed: %s",
                run->program[0], run->report.sentence);
    if (has_musl_loader(&run->report))
        preload_for_musl(run);
    else
        preload_for_glibc(run);
    return exec_program(run->program);
}

/* Go and static programs: no loader ever loads a preload into them. */
static bool needs_supervisor(enum mt_check_verdict verdict)
{
    return verdict == MT_CHECK_GO || verdict == MT_CHECK_STATIC;
}

/*
 * Go and static programs run under the system-call supervisor (supervisor/), which meshes their
 * sockets from outside; this process stays as their supervisor and exits with their status. A
 * kernel that cannot supervise is said on stderr and the program is not started (exit 126):
 * --allow-plaintext does not apply, as the program can be run without `meshtls run`.
 */
static int start_under_supervisor(struct run *run)
{
    return mt_supervise(run->program, run->config);
}

static int start(struct run *run)
{
    mt_check_program(run->program[0], NULL, &run->report);
    switch (run->report.verdict) {
    case MT_CHECK_INTERPOSABLE:
        preload_for_glibc(run);
        return exec_program(run->program);
    case MT_CHECK_NOT_FOUND:
    case MT_CHECK_NOT_EXECUTABLE:
        /* execvp fails too, and says why. */
        return exec_program(run->program);
    case MT_CHECK_MUSL:
        if (run->musl_preload[0] == '\0')
            return refuse_or_start_plaintext(run);
        preload_for_musl(run);
        return exec_program(run->program);
    case MT_CHECK_IO_URING:
        return start_io_uring(run);
    default:
        if (needs_supervisor(run->report.verdict))
            return start_under_supervisor(run);
        return refuse_or_start_plaintext(run);
    }
}

enum parsed { PARSED, USAGE_ERROR, CONFIG_ERROR };

/* The options before "--", and where PROGRAM starts; a missing config file is said here. */
static enum parsed parse_options(int argc, char **argv, struct run *run, int *program_index)
{
    int i = 0;
    while (i < argc && strcmp(argv[i], "--") != 0) {
        if (strcmp(argv[i], "--allow-plaintext") == 0) {
            run->allow_plaintext = true;
            i++;
        } else if (strcmp(argv[i], "--allow-io-uring") == 0) {
            run->allow_io_uring = true;
            i++;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            char absolute[PATH_MAX];
            if (realpath(argv[i + 1], absolute) == NULL) {
                fprintf(stderr, "meshtls: config %s: %s\n", argv[i + 1], strerror(errno));
                return CONFIG_ERROR;
            }
            setenv("MESHTLS_CONFIG", absolute, 1);
            i += 2;
        } else {
            return USAGE_ERROR;
        }
    }
    if (i + 1 >= argc)
        return USAGE_ERROR;
    *program_index = i + 1;
    return PARSED;
}

int mt_cli_run(int argc, char **argv)
{
    /* Static: a report holds three paths, with the two preload paths beside them. */
    static struct run run;
    int program_index = 0;
    enum parsed parsed = parse_options(argc, argv, &run, &program_index);
    if (parsed != PARSED)
        return parsed == USAGE_ERROR ? usage() : 2;
    run.program = &argv[program_index];

    static struct mt_config config; /* loaded once, so zero until then */
    char message[MT_CONFIG_MESSAGE_MAX];
    struct mt_text reason = mt_text_on(message, sizeof(message));
    if (!mt_result_is_ok(mt_config_load_fresh(&config, &reason))) {
        fprintf(stderr, "meshtls: not starting %s: configuration error: %s\n", run.program[0],
                message);
        return 2;
    }
    mt_log_set_level(config.log_level);
    run.config = &config;
    if (!find_preload(run.preload, sizeof(run.preload))) {
        fprintf(stderr, "meshtls: cannot find %s next to this program or in ../%s\n", PRELOAD_NAME,
                MESHTLS_PRELOAD_RELATIVE_DIR);
        return 2;
    }
    find_musl_preload(run.preload, run.musl_preload, sizeof(run.musl_preload));
    return start(&run);
}
