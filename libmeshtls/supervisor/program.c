/*
 * Which programs the filter can supervise: those whose system calls use the native numbering.
 * A 32-bit or foreign-architecture ELF (an i386 program on x86-64) would enter the kernel with
 * another architecture's numbers, which the filter fails with ENOSYS all at once: it is refused
 * before it starts, with the reason. Anything else (native ELF, a script, a name exec will not
 * find) is left to exec and its own errors.
 */
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../exec/elf.h"
#include "internal.h"

#if defined(__x86_64__)
#define NATIVE_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define NATIVE_MACHINE EM_AARCH64
#endif

/* name as execvp finds it: itself when it has a slash, else the first executable on PATH. */
static bool find_program(const char *name, char *path, size_t capacity)
{
    if (strchr(name, '/') != NULL) {
        snprintf(path, capacity, "%s", name);
        return true;
    }
    const char *search = getenv("PATH");
    if (search == NULL || search[0] == '\0')
        search = "/usr/local/bin:/bin:/usr/bin";
    while (*search != '\0') {
        size_t length = strcspn(search, ":");
        int written = snprintf(path, capacity, "%.*s/%s", (int)length, search, name);
        if (length > 0 && written > 0 && (size_t)written < capacity && access(path, X_OK) == 0)
            return true;
        search += length + (search[length] == ':' ? 1 : 0);
    }
    return false;
}

int mt_supervisor_check_program(const char *name)
{
    char path[PATH_MAX];
    if (!find_program(name, path, sizeof(path)))
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat status;
    unsigned char magic[SELFMAG];
    struct mt_elf_header header;
    bool is_elf = fstat(fd, &status) == 0 && pread(fd, magic, SELFMAG, 0) == SELFMAG &&
                  memcmp(magic, ELFMAG, SELFMAG) == 0 &&
                  mt_result_is_ok(mt_elf_read_header(fd, status.st_size, &header));
    close(fd);
    if (!is_elf || (header.class == ELFCLASS64 && header.machine == NATIVE_MACHINE))
        return 0;
    fprintf(stderr,
            "meshtls: not starting %s: it is a %s program, and the supervisor can only filter "
            "the system calls of %s programs; run a %s build of it\n",
            path, mt_elf_machine_name(header.machine, header.class),
            mt_elf_machine_name(NATIVE_MACHINE, ELFCLASS64),
            mt_elf_machine_name(NATIVE_MACHINE, ELFCLASS64));
    return 126;
}
