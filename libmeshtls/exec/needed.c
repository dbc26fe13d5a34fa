/*
 * io_uring use (see needed.h): the program's imports, then the libraries the loader will load,
 * breadth first, each found in the directories the loader searches and read for its own
 * DT_NEEDED entries.
 *
 * Owns the walk over a program's libraries; it never loads or maps one. The walk is bounded
 * (LIBRARIES_MAX libraries, each name looked up once) and it runs in the preload of a program
 * about to exec another (exec/check.c), so it never allocates: its tables are static. What the
 * loader would find through /etc/ld.so.cache alone, in a directory not listed here, is not seen.
 */
#include <elf.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/sys.h"
#include "needed.h"

/* Enough for the deepest dependency trees of a Debian system (a desktop program: about 60). */
#define LIBRARIES_MAX 96
#define PROGRAM_INDEX UINT32_MAX

/* glibc's built-in directories and Debian's multiarch ones, which /etc/ld.so.conf.d lists. */
#if defined(__x86_64__)
#define MULTIARCH "x86_64-linux-gnu"
#elif defined(__aarch64__)
#define MULTIARCH "aarch64-linux-gnu"
#elif defined(__i386__)
#define MULTIARCH "i386-linux-gnu"
#else
#error "meshtls check: add this machine's multiarch directory"
#endif
#define SYSTEM_LIBRARY_PATH                                                                        \
    "/lib/" MULTIARCH ":/usr/lib/" MULTIARCH ":/lib64:/usr/lib64:/lib:/usr/lib:/usr/local/lib"

/* The libraries met so far: the queue of the breadth-first walk and the set of names seen. */
struct walk {
    const struct mt_elf_header *program;
    char origin[PATH_MAX]; /* the program's directory, for $ORIGIN */
    char run_path[1024];   /* the program's DT_RUNPATH or DT_RPATH */
    char names[LIBRARIES_MAX][MT_ELF_NAME_MAX];
    uint32_t needed_by[LIBRARIES_MAX]; /* index of the library that needs it, or PROGRAM_INDEX */
    uint32_t count;
};

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

/* liburing.so.2, liburing-ffi.so.2 (the variant without inline functions), liburing.so. */
static bool is_liburing(const char *name)
{
    const char *base = base_name(name);
    return strncmp(base, "liburing", 8) == 0 && (base[8] == '.' || base[8] == '-');
}

static void add_library(struct walk *walk, const char *name, uint32_t needed_by)
{
    for (uint32_t i = 0; i < walk->count; i++)
        if (strcmp(walk->names[i], name) == 0)
            return;
    if (walk->count >= LIBRARIES_MAX || strlen(name) >= MT_ELF_NAME_MAX)
        return;
    snprintf(walk->names[walk->count], MT_ELF_NAME_MAX, "%s", name);
    walk->needed_by[walk->count] = needed_by;
    walk->count++;
}

static void add_needed_of(struct walk *walk, const struct mt_elf_dynamic *dynamic,
                          uint32_t needed_by)
{
    for (const char *name = dynamic->needed; *name != '\0'; name += strlen(name) + 1)
        add_library(walk, name, needed_by);
}

/* The length of a leading $ORIGIN or ${ORIGIN} (ld.so(8)) in a run path entry; 0 for none. */
static size_t origin_length(const char *directory, size_t length)
{
    if (length >= 7 && strncmp(directory, "$ORIGIN", 7) == 0)
        return 7;
    if (length >= 9 && strncmp(directory, "${ORIGIN}", 9) == 0)
        return 9;
    return 0;
}

/*
 * Opens directory/name when it is an ELF file for the program's machine and class (the loader
 * skips the others and searches on); -1 otherwise. $ORIGIN at the start of directory is the
 * program's directory.
 */
static int open_candidate(const struct walk *walk, const char *directory, size_t length,
                          const char *name, char *path, size_t capacity, off_t *size,
                          struct mt_elf_header *header)
{
    size_t origin = origin_length(directory, length);
    const char *prefix = origin > 0 ? walk->origin : "";
    directory += origin;
    length -= origin;
    int written = snprintf(path, capacity, "%s%.*s/%s", prefix, (int)length, directory, name);
    if (written <= 0 || (size_t)written >= capacity)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat status;
    if (fd < 0)
        return -1;
    if (fstat(fd, &status) == 0 && S_ISREG(status.st_mode) &&
        mt_result_is_ok(mt_elf_read_header(fd, status.st_size, header)) &&
        header->class == walk->program->class && header->machine == walk->program->machine) {
        *size = status.st_size;
        return fd;
    }
    mt_sys_close(fd);
    return -1;
}

/* The library name in the directories of search (a colon-separated list); -1 when absent. */
static int open_in(const struct walk *walk, const char *search, const char *name, char *path,
                   size_t capacity, off_t *size, struct mt_elf_header *header)
{
    for (const char *entry = search; entry != NULL && *entry != '\0';) {
        const char *colon = strchr(entry, ':');
        size_t length = colon != NULL ? (size_t)(colon - entry) : strlen(entry);
        if (length > 0) {
            int fd = open_candidate(walk, entry, length, name, path, capacity, size, header);
            if (fd >= 0)
                return fd;
        }
        entry = colon != NULL ? colon + 1 : NULL;
    }
    return -1;
}

/* Opens a needed library as the loader finds it (a name with a slash is a path); -1 if absent. */
static int open_library(const struct walk *walk, const char *name, char *path, size_t capacity,
                        off_t *size, struct mt_elf_header *header)
{
    /* A name with a slash is a path, relative to the working directory like open's. */
    if (name[0] == '/')
        return open_candidate(walk, "", 0, name + 1, path, capacity, size, header);
    if (strchr(name, '/') != NULL)
        return open_candidate(walk, ".", 1, name, path, capacity, size, header);
    int fd = open_in(walk, walk->run_path, name, path, capacity, size, header);
    if (fd < 0)
        fd = open_in(walk, getenv("LD_LIBRARY_PATH"), name, path, capacity, size, header);
    if (fd < 0)
        fd = open_in(walk, SYSTEM_LIBRARY_PATH, name, path, capacity, size, header);
    return fd;
}

/* Says how library index of the walk, liburing found at path ("" if not found), is loaded. */
static void describe_liburing(const struct walk *walk, uint32_t index, const char *path, char *how,
                              size_t capacity)
{
    const char *name = walk->names[index];
    char where[PATH_MAX + 3] = "";
    if (path[0] != '\0')
        snprintf(where, sizeof(where), " (%s)", path);
    if (walk->needed_by[index] == PROGRAM_INDEX)
        snprintf(how, capacity, "links %s%s", name, where);
    else
        snprintf(how, capacity, "needs %s through its library %s", name,
                 walk->names[walk->needed_by[index]]);
}

bool mt_needed_uses_io_uring(const char *path, int fd, off_t size,
                             const struct mt_elf_header *header, char *how, size_t capacity)
{
    static struct walk walk;
    static struct mt_elf_dynamic dynamic;
    static char library_path[PATH_MAX];
    /* Not a memset of the walk's 29 KB: only names[0..count) are read, and its two paths are
     * written below, so this touches the pages a walk uses, not eight at every `meshtls run`. */
    walk.program = header;
    walk.count = 0;
    walk.origin[0] = '\0';
    walk.run_path[0] = '\0';
    if (!mt_result_is_ok(mt_elf_read_dynamic(fd, size, header, MT_ELF_SYMBOLS_IMPORTS, &dynamic)))
        return false;
    if (dynamic.imports_io_uring) {
        snprintf(how, capacity, "imports liburing's %s", dynamic.io_uring_import);
        return true;
    }
    snprintf(walk.origin, sizeof(walk.origin), "%.*s", (int)(base_name(path) - path), path);
    if (walk.origin[0] == '\0')
        snprintf(walk.origin, sizeof(walk.origin), ".");
    else
        walk.origin[strlen(walk.origin) - 1] = '\0'; /* the slash */
    snprintf(walk.run_path, sizeof(walk.run_path), "%s", dynamic.run_path);
    add_needed_of(&walk, &dynamic, PROGRAM_INDEX);
    for (uint32_t i = 0; i < walk.count; i++) {
        struct mt_elf_header library;
        off_t library_size = 0;
        int library_fd = open_library(&walk, walk.names[i], library_path, sizeof(library_path),
                                      &library_size, &library);
        if (is_liburing(walk.names[i])) {
            if (library_fd < 0)
                library_path[0] = '\0';
            describe_liburing(&walk, i, library_path, how, capacity);
            if (library_fd >= 0)
                mt_sys_close(library_fd);
            return true;
        }
        if (library_fd < 0)
            continue;
        if (mt_result_is_ok(mt_elf_read_dynamic(library_fd, library_size, &library,
                                                MT_ELF_SYMBOLS_SKIP, &dynamic)))
            add_needed_of(&walk, &dynamic, i);
        mt_sys_close(library_fd);
    }
    return false;
}
