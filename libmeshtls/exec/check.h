/*
 * Can libmeshtls be interposed into a program, and if not, why: for `meshtls check PROGRAM` and
 * for the warning the exec hooks log before starting a program that would escape the mesh.
 *
 * Finds the program as execvp would, follows #! interpreters (and `#!/usr/bin/env NAME`), and
 * reads the ELF headers itself: the class and machine, the program interpreter (glibc's loader,
 * musl's, or none for a static program), Go's build-ID note and sections, the set-user-ID and
 * set-group-ID bits and file capabilities (which put the loader in secure-execution mode, where
 * it ignores LD_PRELOAD), and whether it or a library it needs uses liburing (needed.h). The
 * answer is a verdict and one sentence saying why.
 */
#ifndef MT_EXEC_CHECK_H
#define MT_EXEC_CHECK_H

#include <limits.h>
#include <stdbool.h>

enum mt_check_verdict {
    MT_CHECK_INTERPOSABLE = 0,
    MT_CHECK_NOT_FOUND,        /* not in PATH, or no such file */
    MT_CHECK_NOT_EXECUTABLE,   /* a directory, no execute permission, unreadable */
    MT_CHECK_NOT_PROGRAM,      /* an ELF file that is not an executable, or a damaged one */
    MT_CHECK_FOREIGN,          /* ELF for another machine or word size than the preload */
    MT_CHECK_STATIC,           /* no program interpreter: nothing loads a preload */
    MT_CHECK_GO,               /* Go: socket calls are raw system calls */
    MT_CHECK_MUSL,             /* musl's loader cannot load a glibc preload */
    MT_CHECK_UNKNOWN_LOADER,   /* a program interpreter that is neither glibc's nor musl's */
    MT_CHECK_SETUID,           /* secure-execution mode: LD_PRELOAD ignored */
    MT_CHECK_SETGID,           /* secure-execution mode: LD_PRELOAD ignored */
    MT_CHECK_CAPABILITIES,     /* secure-execution mode: LD_PRELOAD ignored */
    MT_CHECK_TOO_MANY_SCRIPTS, /* #! interpreters nested deeper than the kernel follows */
    MT_CHECK_IO_URING          /* liburing: socket I/O the kernel performs, no call to hook */
};

struct mt_check_report {
    enum mt_check_verdict verdict;
    char path[PATH_MAX];        /* the file the name resolved to; "" when not found */
    char decided_by[PATH_MAX];  /* the file whose headers decided (the last interpreter) */
    char interpreter[PATH_MAX]; /* that file's ELF program interpreter, "" for none */
    char sentence[3 * PATH_MAX + 256];
};

/*
 * Examines name (a path, or a command looked up in search_path like execvp does; NULL: $PATH,
 * or "/bin:/usr/bin" when unset) and fills report. True when the program can be interposed.
 */
bool mt_check_program(const char *name, const char *search_path, struct mt_check_report *report);

/* "interposable", "static", "go", ... for tests and scripts. */
const char *mt_check_verdict_name(enum mt_check_verdict verdict);

#endif
