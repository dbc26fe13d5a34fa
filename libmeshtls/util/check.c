/*
 * The interposability check (see check.h): execvp's lookup, #! interpreters, ELF headers, mode
 * bits and file capabilities, judged the way the kernel and glibc's loader will judge them.
 *
 * Owns only reading files and explaining them; it never executes the program. ELF parsing reads
 * fixed-size headers with pread at offsets checked against the file size, so a truncated or
 * hostile file gives "damaged", never a crash or an unbounded read. The verdict comes from the
 * first problem in this order: found and executable, script interpreters, ELF machine, Go,
 * static, loader, then secure-execution mode.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "result.h"
#include "check.h"

/*
 * exec_binprm in fs/exec.c gives up (ELOOP) after five rewrites: a chain of five #! scripts
 * runs, a sixth does not (checked on Linux 6.1).
 */
#define SCRIPTS_MAX 5
/* BINPRM_BUF_SIZE: the kernel reads this much of a script to find its #! line. */
#define SCRIPT_HEADER_MAX 256
#define DEFAULT_SEARCH_PATH "/bin:/usr/bin"
#define PROGRAM_HEADERS_MAX 4096
#define SECTIONS_MAX 65536
#define NOTE_SEGMENT_MAX 65536

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

static void report_set(struct mt_check_report *report, enum mt_check_verdict verdict,
                       const char *format, ...) __attribute__((format(printf, 3, 4)));

static void report_set(struct mt_check_report *report, enum mt_check_verdict verdict,
                       const char *format, ...)
{
    report->verdict = verdict;
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(report->sentence, sizeof(report->sentence), format, arguments);
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
static bool resolve(const char *name, const char *search_path, struct mt_check_report *report)
{
    if (name[0] == '\0') {
        report_set(report, MT_CHECK_NOT_FOUND, "An empty name names no program.");
        return false;
    }
    if (strchr(name, '/') == NULL) {
        bool permission_denied = false;
        if (search_path_for(name, search_path, report->path, sizeof(report->path),
                            &permission_denied))
            return true;
        if (permission_denied)
            report_set(report, MT_CHECK_NOT_EXECUTABLE,
                       "%s was found in PATH (%s) but may not be executed.", name, search_path);
        else
            report_set(report, MT_CHECK_NOT_FOUND, "%s was not found in PATH (%s).", name,
                       search_path);
        return false;
    }
    if (!copy_text(report->path, sizeof(report->path), name)) {
        report_set(report, MT_CHECK_NOT_FOUND, "The path is longer than %d bytes.", PATH_MAX - 1);
        return false;
    }
    return true;
}

/* ---- reading the file ----------------------------------------------------------------------- */

static MT_RESULT read_at(int fd, off_t file_size, uint64_t offset, void *buffer, size_t length)
{
    MT_ENSURE(offset <= (uint64_t)file_size && length <= (uint64_t)file_size - offset, MT_ERR_IO);
    ssize_t got = pread(fd, buffer, length, (off_t)offset);
    MT_ENSURE(got >= 0 && (size_t)got == length, MT_ERR_IO);
    return MT_OK_RESULT;
}

/* The ELF header fields this check needs, the same for both classes. */
struct elf_header {
    unsigned char class;
    uint16_t type;
    uint16_t machine;
    uint64_t program_headers;
    uint16_t program_header_size;
    uint32_t program_header_count;
    uint64_t section_headers;
    uint16_t section_header_size;
    uint32_t section_count;
    uint32_t section_names_index;
};

struct segment {
    uint32_t type;
    uint64_t offset;
    uint64_t size;
};

struct section {
    uint32_t name;
    uint32_t link;
    uint64_t offset;
    uint64_t size;
};

struct elf_facts {
    bool has_interpreter;
    char interpreter[PATH_MAX];
    bool is_go;
};

static MT_RESULT read_elf_header(int fd, off_t size, struct elf_header *header)
{
    unsigned char ident[EI_NIDENT];
    MT_GUARD(read_at(fd, size, 0, ident, sizeof(ident)));
    header->class = ident[EI_CLASS];
    if (header->class == ELFCLASS64) {
        Elf64_Ehdr raw;
        MT_GUARD(read_at(fd, size, 0, &raw, sizeof(raw)));
        *header = (struct elf_header){
            ELFCLASS64,  raw.e_type,  raw.e_machine,   raw.e_phoff, raw.e_phentsize,
            raw.e_phnum, raw.e_shoff, raw.e_shentsize, raw.e_shnum, raw.e_shstrndx};
    } else if (header->class == ELFCLASS32) {
        Elf32_Ehdr raw;
        MT_GUARD(read_at(fd, size, 0, &raw, sizeof(raw)));
        *header = (struct elf_header){
            ELFCLASS32,  raw.e_type,  raw.e_machine,   raw.e_phoff, raw.e_phentsize,
            raw.e_phnum, raw.e_shoff, raw.e_shentsize, raw.e_shnum, raw.e_shstrndx};
    } else {
        return mt_result_of(MT_ERR_INVALID_ARGUMENT);
    }
    return MT_OK_RESULT;
}

static MT_RESULT read_segment(int fd, off_t size, const struct elf_header *header, uint32_t index,
                              struct segment *segment)
{
    uint64_t offset = header->program_headers + (uint64_t)index * header->program_header_size;
    if (header->class == ELFCLASS64) {
        Elf64_Phdr raw;
        MT_ENSURE(header->program_header_size == sizeof(raw), MT_ERR_INVALID_ARGUMENT);
        MT_GUARD(read_at(fd, size, offset, &raw, sizeof(raw)));
        *segment = (struct segment){raw.p_type, raw.p_offset, raw.p_filesz};
    } else {
        Elf32_Phdr raw;
        MT_ENSURE(header->program_header_size == sizeof(raw), MT_ERR_INVALID_ARGUMENT);
        MT_GUARD(read_at(fd, size, offset, &raw, sizeof(raw)));
        *segment = (struct segment){raw.p_type, raw.p_offset, raw.p_filesz};
    }
    return MT_OK_RESULT;
}

static MT_RESULT read_section(int fd, off_t size, const struct elf_header *header, uint32_t index,
                              struct section *section)
{
    uint64_t offset = header->section_headers + (uint64_t)index * header->section_header_size;
    if (header->class == ELFCLASS64) {
        Elf64_Shdr raw;
        MT_ENSURE(header->section_header_size == sizeof(raw), MT_ERR_INVALID_ARGUMENT);
        MT_GUARD(read_at(fd, size, offset, &raw, sizeof(raw)));
        *section = (struct section){raw.sh_name, raw.sh_link, raw.sh_offset, raw.sh_size};
    } else {
        Elf32_Shdr raw;
        MT_ENSURE(header->section_header_size == sizeof(raw), MT_ERR_INVALID_ARGUMENT);
        MT_GUARD(read_at(fd, size, offset, &raw, sizeof(raw)));
        *section = (struct section){raw.sh_name, raw.sh_link, raw.sh_offset, raw.sh_size};
    }
    return MT_OK_RESULT;
}

/* PT_INTERP: a NUL-terminated path, the loader the kernel starts instead of the program. */
static MT_RESULT read_interpreter(int fd, off_t size, const struct segment *segment,
                                  struct elf_facts *facts)
{
    MT_ENSURE(segment->size > 1 && segment->size <= sizeof(facts->interpreter),
              MT_ERR_INVALID_ARGUMENT);
    MT_GUARD(read_at(fd, size, segment->offset, facts->interpreter, segment->size));
    MT_ENSURE(memchr(facts->interpreter, '\0', segment->size) != NULL, MT_ERR_INVALID_ARGUMENT);
    facts->has_interpreter = true;
    return MT_OK_RESULT;
}

/* True when a PT_NOTE segment holds the Go build ID note (name "Go", type 4). */
static bool has_go_note(int fd, off_t size, const struct segment *segment)
{
    static unsigned char notes[NOTE_SEGMENT_MAX];
    if (segment->size < sizeof(Elf64_Nhdr) || segment->size > sizeof(notes) ||
        !mt_result_is_ok(read_at(fd, size, segment->offset, notes, segment->size)))
        return false;
    size_t offset = 0;
    /* Elf32_Nhdr and Elf64_Nhdr are the same three 32-bit words; fields are 4-byte aligned. */
    while (offset + sizeof(Elf64_Nhdr) <= segment->size) {
        Elf64_Nhdr note;
        memcpy(&note, notes + offset, sizeof(note));
        size_t name_size = ((size_t)note.n_namesz + 3) & ~(size_t)3;
        size_t description_size = ((size_t)note.n_descsz + 3) & ~(size_t)3;
        size_t name_offset = offset + sizeof(note);
        if (name_size > segment->size - name_offset)
            return false;
        if (note.n_namesz == 3 && note.n_type == 4 && memcmp(notes + name_offset, "Go", 3) == 0)
            return true;
        if (description_size > segment->size - name_offset - name_size)
            return false;
        offset = name_offset + name_size + description_size;
    }
    return false;
}

static bool section_name_is(int fd, off_t size, const struct section *names, uint32_t name,
                            const char *wanted)
{
    char text[32];
    size_t length = strlen(wanted) + 1;
    if (name >= names->size || length > names->size - name || length > sizeof(text))
        return false;
    return mt_result_is_ok(read_at(fd, size, names->offset + name, text, length)) &&
           memcmp(text, wanted, length) == 0;
}

/*
 * Go puts its build information in .go.buildinfo and its build ID in .note.go.buildid, cgo or
 * not. Section headers are optional for running a program, so their absence is no error.
 */
static MT_RESULT read_go_sections(int fd, off_t size, struct elf_header *header,
                                  struct elf_facts *facts)
{
    if (header->section_headers == 0)
        return MT_OK_RESULT;
    struct section first;
    MT_GUARD(read_section(fd, size, header, 0, &first));
    /* Extended numbering (ELF gABI): counts too large for the header live in section 0. */
    uint64_t count = header->section_count != 0 ? header->section_count : first.size;
    uint32_t names_index =
        header->section_names_index != SHN_XINDEX ? header->section_names_index : first.link;
    MT_ENSURE(count <= SECTIONS_MAX && names_index < count, MT_ERR_INVALID_ARGUMENT);
    struct section names;
    MT_GUARD(read_section(fd, size, header, names_index, &names));
    for (uint32_t i = 1; i < count && !facts->is_go; i++) {
        struct section section;
        MT_GUARD(read_section(fd, size, header, i, &section));
        facts->is_go = section_name_is(fd, size, &names, section.name, ".go.buildinfo") ||
                       section_name_is(fd, size, &names, section.name, ".note.go.buildid");
    }
    return MT_OK_RESULT;
}

static MT_RESULT read_elf_facts(int fd, off_t size, struct elf_header *header,
                                struct elf_facts *facts)
{
    MT_ENSURE(header->program_header_count <= PROGRAM_HEADERS_MAX, MT_ERR_INVALID_ARGUMENT);
    for (uint32_t i = 0; i < header->program_header_count; i++) {
        struct segment segment;
        MT_GUARD(read_segment(fd, size, header, i, &segment));
        if (segment.type == PT_INTERP)
            MT_GUARD(read_interpreter(fd, size, &segment, facts));
        else if (segment.type == PT_NOTE && has_go_note(fd, size, &segment))
            facts->is_go = true;
    }
    if (!facts->is_go)
        MT_GUARD(read_go_sections(fd, size, header, facts));
    return MT_OK_RESULT;
}

/* ---- judging -------------------------------------------------------------------------------- */

static const char *machine_name(uint16_t machine, unsigned char class)
{
    switch (machine) {
    case EM_X86_64:
        return class == ELFCLASS64 ? "64-bit x86-64" : "x32 (x86-64 with 32-bit pointers)";
    case EM_386:
        return "32-bit x86";
    case EM_AARCH64:
        return "64-bit ARM";
    case EM_ARM:
        return "32-bit ARM";
    case EM_RISCV:
        return class == ELFCLASS64 ? "64-bit RISC-V" : "32-bit RISC-V";
    case EM_PPC64:
        return "64-bit POWER";
    case EM_S390:
        return "s390";
    default:
        return "another architecture";
    }
}

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
 * permission means mandatory locking, not set-group-ID.
 */
static bool judge_secure_execution(const char *path, const struct stat *status,
                                   struct mt_check_report *report)
{
    if ((status->st_mode & S_ISUID) != 0) {
        report_set(report, MT_CHECK_SETUID,
                   "%s cannot be interposed: it is set-user-ID (owner uid %u), so the loader runs "
                   "it in secure-execution mode and ignores LD_PRELOAD.",
                   path, (unsigned)status->st_uid);
        return true;
    }
    if ((status->st_mode & S_ISGID) != 0 && (status->st_mode & S_IXGRP) != 0) {
        report_set(report, MT_CHECK_SETGID,
                   "%s cannot be interposed: it is set-group-ID (group gid %u), so the loader "
                   "runs it in secure-execution mode and ignores LD_PRELOAD.",
                   path, (unsigned)status->st_gid);
        return true;
    }
    if (getxattr(path, "security.capability", NULL, 0) > 0) {
        report_set(report, MT_CHECK_CAPABILITIES,
                   "%s cannot be interposed: it has file capabilities (security.capability), so "
                   "the loader runs it in secure-execution mode and ignores LD_PRELOAD.",
                   path);
        return true;
    }
    return false;
}

static void judge_elf(const char *path, int fd, const struct stat *status,
                      struct mt_check_report *report)
{
    struct elf_header header;
    static struct elf_facts facts;
    memset(&facts, 0, sizeof(facts));
    if (!mt_result_is_ok(read_elf_header(fd, status->st_size, &header))) {
        report_set(report, MT_CHECK_NOT_PROGRAM,
                   "%s cannot be interposed: its ELF header is damaged.", path);
        return;
    }
    if (header.class != NATIVE_CLASS || header.machine != NATIVE_MACHINE) {
        report_set(report, MT_CHECK_FOREIGN,
                   "%s cannot be interposed: it is a %s program, and libmeshtls-preload.so is "
                   "%s.",
                   path, machine_name(header.machine, header.class),
                   machine_name(NATIVE_MACHINE, NATIVE_CLASS));
        return;
    }
    if (header.type != ET_EXEC && header.type != ET_DYN) {
        report_set(report, MT_CHECK_NOT_PROGRAM,
                   "%s cannot be interposed: it is an ELF file but not an executable (type %u).",
                   path, (unsigned)header.type);
        return;
    }
    if (!mt_result_is_ok(read_elf_facts(fd, status->st_size, &header, &facts))) {
        report_set(report, MT_CHECK_NOT_PROGRAM,
                   "%s cannot be interposed: its ELF program or section headers are damaged.",
                   path);
        return;
    }
    copy_text(report->interpreter, sizeof(report->interpreter),
              facts.has_interpreter ? facts.interpreter : "");
    if (facts.is_go) {
        report_set(report, MT_CHECK_GO,
                   "%s cannot be interposed: it is a Go program, and Go makes its socket calls as "
                   "raw system calls that no preload sees (with cgo too).",
                   path);
    } else if (!facts.has_interpreter) {
        report_set(report, MT_CHECK_STATIC,
                   "%s cannot be interposed: it is statically linked (no program interpreter), so "
                   "no preload is ever loaded into it.",
                   path);
    } else if (strstr(base_name(facts.interpreter), "ld-musl") != NULL) {
        report_set(report, MT_CHECK_MUSL,
                   "%s cannot be interposed: it is linked against musl (interpreter %s), and "
                   "libmeshtls-preload.so needs glibc.",
                   path, facts.interpreter);
    } else if (!is_glibc_loader(facts.interpreter)) {
        report_set(report, MT_CHECK_UNKNOWN_LOADER,
                   "%s cannot be interposed: its program interpreter %s is not glibc's loader.",
                   path, facts.interpreter);
    } else if (!judge_secure_execution(path, status, report)) {
        report_set(report, MT_CHECK_INTERPOSABLE,
                   "%s can be interposed: it is a dynamically linked glibc program (interpreter "
                   "%s).",
                   path, facts.interpreter);
    }
}

/*
 * The #! line as the kernel reads it: the interpreter is the first word, the rest (trimmed) is
 * one optional argument. For `#!/usr/bin/env NAME` the program that runs is NAME from PATH.
 */
static void parse_script_line(const char *header, size_t length, char *interpreter,
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

/* For env's argument "-S python3 -u" or "python3": the command env will look up. */
static void env_command(const char *argument, char *command, size_t capacity)
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

static void check_file(const char *path, const char *search_path, int depth,
                       struct mt_check_report *report);

/* A script is as interposable as the program that runs it; say so, then say why. */
static void judge_script(const char *path, const char *interpreter, const char *search_path,
                         int depth, struct mt_check_report *report)
{
    char script[PATH_MAX];
    copy_text(script, sizeof(script), path);
    check_file(interpreter, search_path, depth + 1, report);
    char explanation[sizeof(report->sentence)];
    copy_text(explanation, sizeof(explanation), report->sentence);
    snprintf(report->sentence, sizeof(report->sentence), "%s is a script run by %s; %s", script,
             interpreter, explanation);
}

static void check_file(const char *path, const char *search_path, int depth,
                       struct mt_check_report *report)
{
    copy_text(report->decided_by, sizeof(report->decided_by), path);
    report->interpreter[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat status;
    if (fd < 0 || fstat(fd, &status) != 0) {
        int error = errno;
        report_set(report, error == ENOENT ? MT_CHECK_NOT_FOUND : MT_CHECK_NOT_EXECUTABLE,
                   "%s cannot be run: %s.", path, strerror(error));
        goto out;
    }
    if (!S_ISREG(status.st_mode) || access(path, X_OK) != 0) {
        report_set(report, MT_CHECK_NOT_EXECUTABLE, "%s cannot be run: %s.", path,
                   S_ISDIR(status.st_mode)    ? "it is a directory"
                   : !S_ISREG(status.st_mode) ? "it is not a regular file"
                                              : "it is not executable (no execute permission)");
        goto out;
    }
    char header[SCRIPT_HEADER_MAX];
    ssize_t length = pread(fd, header, sizeof(header), 0);
    if (length >= SELFMAG && memcmp(header, ELFMAG, SELFMAG) == 0) {
        judge_elf(path, fd, &status, report);
        goto out;
    }
    if (depth >= SCRIPTS_MAX) {
        report_set(report, MT_CHECK_TOO_MANY_SCRIPTS,
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
        parse_script_line(header, (size_t)length, interpreter, sizeof(interpreter), argument,
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
        env_command(argument, command, sizeof(command));
        if (strchr(command, '/') != NULL)
            copy_text(resolved, sizeof(resolved), command);
        else if (!search_path_for(command, search_path, resolved, sizeof(resolved),
                                  &permission_denied))
            copy_text(resolved, sizeof(resolved), interpreter);
        copy_text(interpreter, sizeof(interpreter), resolved);
    }
    close(fd);
    fd = -1;
    judge_script(path, interpreter, search_path, depth, report);
out:
    if (fd >= 0)
        close(fd);
}

bool mt_check_program(const char *name, const char *search_path, struct mt_check_report *report)
{
    memset(report, 0, sizeof(*report));
    if (search_path == NULL)
        search_path = getenv("PATH");
    if (search_path == NULL)
        search_path = DEFAULT_SEARCH_PATH;
    if (name == NULL || !resolve(name, search_path, report))
        return false;
    check_file(report->path, search_path, 0, report);
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
    }
    return "unknown";
}
