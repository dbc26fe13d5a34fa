/*
 * The interposability check (see check.h): execvp's lookup, #! interpreters (script.c), ELF
 * headers (elf.c), mode bits and file capabilities, judged the way the kernel and glibc's loader
 * will judge them.
 *
 * Owns the verdict and the sentence that explains it; it never executes the program. The verdict
 * comes from the first problem in this order: found and executable, script interpreters, ELF
 * machine, Go, static, loader, secure-execution mode, io_uring (needed.c), then musl. It runs in
 * the preload of a program about to exec another (core/inherit.c), so it never allocates.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../util/sys.h"
#include "../util/text.h"
#include "check.h"
#include "elf.h"
#include "needed.h"
#include "script.h"

/*
 * exec_binprm in fs/exec.c gives up (ELOOP) after five rewrites: a chain of five #! scripts
 * runs, a sixth does not (checked on Linux 6.1).
 */
#define SCRIPTS_MAX 5
/* BINPRM_BUF_SIZE: the kernel reads this much of a script to find its #! line. */
#define SCRIPT_HEADER_MAX 256
#define DEFAULT_SEARCH_PATH "/bin:/usr/bin"

#if defined(__x86_64__)
#define NATIVE_MACHINE EM_X86_64
#define NATIVE_CLASS ELFCLASS64
#elif defined(__aarch64__)
#define NATIVE_MACHINE EM_AARCH64
#define NATIVE_CLASS ELFCLASS64
#elif defined(__i386__)
#define NATIVE_MACHINE EM_386
#define NATIVE_CLASS ELFCLASS32
#else
#error "meshtls check: add this machine's ELF constants"
#endif

/* The report being filled, and its sentence built in place. */
struct judgement {
    struct mt_check_report *report;
    struct mt_text sentence; /* over report->sentence */
};

/* Settles the verdict and says why, replacing what a check before it said. */
__attribute__((format(printf, 3, 4))) static void
decide(struct judgement *judgement, enum mt_check_verdict verdict, const char *format, ...)
{
    judgement->report->verdict = verdict;
    mt_text_clear(&judgement->sentence);
    va_list arguments;
    va_start(arguments, format);
    mt_text_append_va(&judgement->sentence, format, arguments);
    va_end(arguments);
}

static bool copy_text(char *destination, size_t capacity, const char *source)
{
    size_t length = strlen(source);
    if (length >= capacity)
        return false;
    memcpy(destination, source, length + 1);
    return true;
}

/* ---- finding the program -------------------------------------------------------------------- */

static bool is_executable_file(const char *path)
{
    struct stat status;
    return stat(path, &status) == 0 && S_ISREG(status.st_mode) && access(path, X_OK) == 0;
}

/*
 * execvp's search: each PATH entry in order (an empty entry is the current directory), the first
 * regular file that may be executed. Remembers a candidate refused for permission, as execvp
 * reports EACCES rather than ENOENT then.
 */
static bool search_path_for(const char *name, const char *search_path, char *found, size_t capacity,
                            bool *permission_denied)
{
    *permission_denied = false;
    const char *entry = search_path;
    while (entry != NULL) {
        const char *colon = strchr(entry, ':');
        size_t length = colon != NULL ? (size_t)(colon - entry) : strlen(entry);
        int written = length == 0 ? snprintf(found, capacity, "%s", name)
                                  : snprintf(found, capacity, "%.*s/%s", (int)length, entry, name);
        if (written > 0 && (size_t)written < capacity) {
            if (is_executable_file(found))
                return true;
            struct stat status;
            if (stat(found, &status) == 0 && S_ISREG(status.st_mode))
                *permission_denied = true;
        }
        entry = colon != NULL ? colon + 1 : NULL;
    }
    found[0] = '\0';
    return false;
}

/* Resolves name into report->path; false with the verdict set when there is nothing to run. */
static bool resolve(const char *name, const char *search_path, struct judgement *judgement)
{
    struct mt_check_report *report = judgement->report;
    if (name[0] == '\0') {
        decide(judgement, MT_CHECK_NOT_FOUND, "An empty name names no program.");
        return false;
    }
    if (strchr(name, '/') == NULL) {
        bool permission_denied = false;
        if (search_path_for(name, search_path, report->path, sizeof(report->path),
                            &permission_denied))
            return true;
        if (permission_denied)
            decide(judgement, MT_CHECK_NOT_EXECUTABLE,
                   "%s was found in PATH (%s) but may not be executed.", name, search_path);
        else
            decide(judgement, MT_CHECK_NOT_FOUND, "%s was not found in PATH (%s).", name,
                   search_path);
        return false;
    }
    if (!copy_text(report->path, sizeof(report->path), name)) {
        decide(judgement, MT_CHECK_NOT_FOUND, "The path is longer than %d bytes.", PATH_MAX - 1);
        return false;
    }
    return true;
}

/* ---- judging -------------------------------------------------------------------------------- */

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

/* glibc's loaders are ld-linux*.so.N (x86, ARM), ld64.so.N (POWER, s390x) and ld.so.1. */
static bool is_glibc_loader(const char *interpreter)
{
    const char *name = base_name(interpreter);
    return strncmp(name, "ld-linux", 8) == 0 || strncmp(name, "ld64.so.", 8) == 0 ||
           strcmp(name, "ld.so.1") == 0;
}

/*
 * The kernel sets AT_SECURE for these, and glibc's loader then ignores LD_PRELOAD entries with a
 * slash. (Strictly, only when the IDs change: a set-user-ID file run by its own owner is not
 * secure; the check answers for the general case.) A set-group-ID bit without group execute
 * permission means mandatory locking, not set-group-ID. musl's loader ignores LD_PRELOAD there.
 */
static bool judge_secure_execution(const char *path, const struct stat *status,
                                   struct judgement *judgement)
{
    if ((status->st_mode & S_ISUID) != 0) {
        decide(judgement, MT_CHECK_SETUID,
               "%s cannot be interposed: it is set-user-ID (owner uid %u), so the loader runs "
               "it in secure-execution mode and ignores LD_PRELOAD.",
               path, (unsigned)status->st_uid);
        return true;
    }
    if ((status->st_mode & S_ISGID) != 0 && (status->st_mode & S_IXGRP) != 0) {
        decide(judgement, MT_CHECK_SETGID,
               "%s cannot be interposed: it is set-group-ID (group gid %u), so the loader "
               "runs it in secure-execution mode and ignores LD_PRELOAD.",
               path, (unsigned)status->st_gid);
        return true;
    }
    if (getxattr(path, "security.capability", NULL, 0) > 0) {
        decide(judgement, MT_CHECK_CAPABILITIES,
               "%s cannot be interposed: it has file capabilities (security.capability), so "
               "the loader runs it in secure-execution mode and ignores LD_PRELOAD.",
               path);
        return true;
    }
    return false;
}

static bool is_musl_loader(const char *interpreter)
{
    return strstr(base_name(interpreter), "ld-musl") != NULL;
}

/*
 * A program a loader starts. io_uring is judged after the loader and secure-execution mode,
 * which no flag of `meshtls run` can get around, and before musl, which the musl preload can:
 * a musl program using io_uring is named for io_uring.
 */
static void judge_loaded(const char *path, int fd, const struct stat *status,
                         const struct mt_elf_header *header, const char *interpreter,
                         struct judgement *judgement)
{
    static char io_uring_use[PATH_MAX + 2 * MT_ELF_NAME_MAX];
    if (!is_musl_loader(interpreter) && !is_glibc_loader(interpreter))
        decide(judgement, MT_CHECK_UNKNOWN_LOADER,
               "%s cannot be interposed: its program interpreter %s is not glibc's loader.", path,
               interpreter);
    else if (judge_secure_execution(path, status, judgement))
        return;
    else if (mt_needed_uses_io_uring(path, fd, status->st_size, header, io_uring_use,
                                     sizeof(io_uring_use)))
        decide(judgement, MT_CHECK_IO_URING,
               "%s cannot be interposed: it %s, and socket I/O submitted through io_uring is "
               "carried out by the kernel without any call a preload sees, so those connections "
               "would leave in plaintext.",
               path, io_uring_use);
    else if (is_musl_loader(interpreter))
        decide(judgement, MT_CHECK_MUSL,
               "%s cannot be interposed: it is linked against musl (interpreter %s), and "
               "libmeshtls-preload.so needs glibc; `meshtls run` gives it "
               "libmeshtls-preload-musl.so where that build is installed beside it.",
               path, interpreter);
    else
        decide(judgement, MT_CHECK_INTERPOSABLE,
               "%s can be interposed: it is a dynamically linked glibc program (interpreter "
               "%s).",
               path, interpreter);
}

static void judge_elf(const char *path, int fd, const struct stat *status,
                      struct judgement *judgement)
{
    struct mt_elf_header header;
    /* Static: PATH_MAX bytes are too many for the stack of a thread about to exec. */
    static struct mt_elf_facts facts;
    /* Field by field: the interpreter is read only as a string, so one byte of its PATH_MAX. */
    facts.has_interpreter = false;
    facts.interpreter[0] = '\0';
    facts.is_go = false;
    if (!mt_result_is_ok(mt_elf_read_header(fd, status->st_size, &header))) {
        decide(judgement, MT_CHECK_NOT_PROGRAM,
               "%s cannot be interposed: its ELF header is damaged.", path);
        return;
    }
    if (header.class != NATIVE_CLASS || header.machine != NATIVE_MACHINE) {
        decide(judgement, MT_CHECK_FOREIGN,
               "%s cannot be interposed: it is a %s program, and libmeshtls-preload.so is "
               "%s.",
               path, mt_elf_machine_name(header.machine, header.class),
               mt_elf_machine_name(NATIVE_MACHINE, NATIVE_CLASS));
        return;
    }
    if (header.type != ET_EXEC && header.type != ET_DYN) {
        decide(judgement, MT_CHECK_NOT_PROGRAM,
               "%s cannot be interposed: it is an ELF file but not an executable (type %u).", path,
               (unsigned)header.type);
        return;
    }
    if (!mt_result_is_ok(mt_elf_read_facts(fd, status->st_size, &header, &facts))) {
        decide(judgement, MT_CHECK_NOT_PROGRAM,
               "%s cannot be interposed: its ELF program or section headers are damaged.", path);
        return;
    }
    copy_text(judgement->report->interpreter, sizeof(judgement->report->interpreter),
              facts.has_interpreter ? facts.interpreter : "");
    if (facts.is_go)
        decide(judgement, MT_CHECK_GO,
               "%s cannot be interposed: it is a Go program, and Go makes its socket calls as "
               "raw system calls that no preload sees (with cgo too); `meshtls run` meshes it "
               "through the system-call supervisor instead.",
               path);
    else if (!facts.has_interpreter)
        decide(judgement, MT_CHECK_STATIC,
               "%s cannot be interposed: it is statically linked (no program interpreter), so "
               "no preload is ever loaded into it; `meshtls run` meshes it through the "
               "system-call supervisor instead.",
               path);
    else
        judge_loaded(path, fd, status, &header, facts.interpreter, judgement);
}

static void check_file(const char *path, const char *search_path, int depth,
                       struct judgement *judgement);

/* A script is as interposable as the program that runs it; say so, then say why. */
static void judge_script(const char *path, const char *interpreter, const char *search_path,
                         int depth, struct judgement *judgement)
{
    char script[PATH_MAX];
    copy_text(script, sizeof(script), path);
    check_file(interpreter, search_path, depth + 1, judgement);
    char explanation[sizeof(judgement->report->sentence)];
    copy_text(explanation, sizeof(explanation), mt_text_string(&judgement->sentence));
    mt_text_set(&judgement->sentence, "%s is a script run by %s; %s", script, interpreter,
                explanation);
}

static void check_file(const char *path, const char *search_path, int depth,
                       struct judgement *judgement)
{
    struct mt_check_report *report = judgement->report;
    copy_text(report->decided_by, sizeof(report->decided_by), path);
    report->interpreter[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat status;
    if (fd < 0 || fstat(fd, &status) != 0) {
        int error = errno;
        decide(judgement, error == ENOENT ? MT_CHECK_NOT_FOUND : MT_CHECK_NOT_EXECUTABLE,
               "%s cannot be run: %s.", path, strerror(error));
        goto out;
    }
    if (!S_ISREG(status.st_mode) || access(path, X_OK) != 0) {
        decide(judgement, MT_CHECK_NOT_EXECUTABLE, "%s cannot be run: %s.", path,
               S_ISDIR(status.st_mode)    ? "it is a directory"
               : !S_ISREG(status.st_mode) ? "it is not a regular file"
                                          : "it is not executable (no execute permission)");
        goto out;
    }
    char header[SCRIPT_HEADER_MAX];
    ssize_t length = pread(fd, header, sizeof(header), 0);
    if (length >= SELFMAG && memcmp(header, ELFMAG, SELFMAG) == 0) {
        judge_elf(path, fd, &status, judgement);
        goto out;
    }
    if (depth >= SCRIPTS_MAX) {
        decide(judgement, MT_CHECK_TOO_MANY_SCRIPTS,
               "%s cannot be run there: it is a script too, and the kernel follows at most "
               "%d nested #! scripts.",
               path, SCRIPTS_MAX);
        goto out;
    }
    /* The kernel ignores set-user-ID bits on scripts, so only the interpreter counts. */
    /* On the stack, not static: judge_script comes back here for the interpreter. */
    char interpreter[PATH_MAX];
    char argument[PATH_MAX];
    if (length >= 2 && header[0] == '#' && header[1] == '!') {
        mt_script_parse_line(header, (size_t)length, interpreter, sizeof(interpreter), argument,
                             sizeof(argument));
    } else {
        /* No #! line: execvp runs the file with /bin/sh (ENOEXEC fallback). */
        copy_text(interpreter, sizeof(interpreter), "/bin/sh");
        argument[0] = '\0';
    }
    if (interpreter[0] == '\0')
        copy_text(interpreter, sizeof(interpreter), "/bin/sh");
    if (strcmp(base_name(interpreter), "env") == 0 && argument[0] != '\0') {
        char command[PATH_MAX];
        char resolved[PATH_MAX];
        bool permission_denied = false;
        mt_script_env_command(argument, command, sizeof(command));
        if (strchr(command, '/') != NULL)
            copy_text(resolved, sizeof(resolved), command);
        else if (!search_path_for(command, search_path, resolved, sizeof(resolved),
                                  &permission_denied))
            copy_text(resolved, sizeof(resolved), interpreter);
        copy_text(interpreter, sizeof(interpreter), resolved);
    }
    mt_sys_close(fd);
    fd = -1;
    judge_script(path, interpreter, search_path, depth, judgement);
out:
    if (fd >= 0)
        mt_sys_close(fd);
}

bool mt_check_program(const char *name, const char *search_path, struct mt_check_report *report)
{
    /* Field by field: its texts are read only as strings, and zeroing the 16 KB report touched
     * pages of its long sentence that no verdict fills. */
    report->verdict = MT_CHECK_INTERPOSABLE;
    report->path[0] = '\0';
    report->decided_by[0] = '\0';
    report->interpreter[0] = '\0';
    report->sentence[0] = '\0';
    struct judgement judgement = {report, mt_text_on(report->sentence, sizeof(report->sentence))};
    if (search_path == NULL)
        search_path = getenv("PATH");
    if (search_path == NULL)
        search_path = DEFAULT_SEARCH_PATH;
    if (name == NULL || !resolve(name, search_path, &judgement))
        return false;
    check_file(report->path, search_path, 0, &judgement);
    return report->verdict == MT_CHECK_INTERPOSABLE;
}

const char *mt_check_verdict_name(enum mt_check_verdict verdict)
{
    switch (verdict) {
    case MT_CHECK_INTERPOSABLE:
        return "interposable";
    case MT_CHECK_NOT_FOUND:
        return "not found";
    case MT_CHECK_NOT_EXECUTABLE:
        return "not executable";
    case MT_CHECK_NOT_PROGRAM:
        return "not a program";
    case MT_CHECK_FOREIGN:
        return "foreign architecture";
    case MT_CHECK_STATIC:
        return "static";
    case MT_CHECK_GO:
        return "go";
    case MT_CHECK_MUSL:
        return "musl";
    case MT_CHECK_UNKNOWN_LOADER:
        return "unknown loader";
    case MT_CHECK_SETUID:
        return "set-user-ID";
    case MT_CHECK_SETGID:
        return "set-group-ID";
    case MT_CHECK_CAPABILITIES:
        return "file capabilities";
    case MT_CHECK_TOO_MANY_SCRIPTS:
        return "too many interpreters";
    case MT_CHECK_IO_URING:
        return "io_uring";
    }
    return "unknown";
}
