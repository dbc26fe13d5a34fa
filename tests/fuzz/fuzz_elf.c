/*
 * libFuzzer target for the ELF reader (exec/elf.c): the headers, the program interpreter, Go's
 * marks, and the dynamic section and imports that tell io_uring use.
 *
 * The input is the file: it goes into a memfd of exactly its size, read through the same preads
 * as a program on disk. Beyond "no crash, no read past the end", it checks what the check relies
 * on: a read interpreter ends inside its buffer, the needed names are as many as counted and end
 * with an empty one, and reading the dynamic section with or without the imports gives the same
 * names.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "exec/elf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(bool condition)
{
    if (!condition)
        abort();
}

static uint32_t count_names(const struct mt_elf_dynamic *dynamic)
{
    uint32_t count = 0;
    const char *end = dynamic->needed + sizeof(dynamic->needed);
    for (const char *name = dynamic->needed; *name != '\0'; name += strlen(name) + 1) {
        require(memchr(name, '\0', (size_t)(end - name)) != NULL);
        count++;
    }
    return count;
}

static void read_all(int fd, off_t size)
{
    struct mt_elf_header header;
    static struct mt_elf_facts facts;
    static struct mt_elf_dynamic with_imports;
    static struct mt_elf_dynamic without;
    if (!mt_result_is_ok(mt_elf_read_header(fd, size, &header)))
        return;
    memset(&facts, 0, sizeof(facts));
    if (mt_result_is_ok(mt_elf_read_facts(fd, size, &header, &facts)) && facts.has_interpreter)
        require(memchr(facts.interpreter, '\0', sizeof(facts.interpreter)) != NULL);
    bool imports_read = mt_result_is_ok(
        mt_elf_read_dynamic(fd, size, &header, MT_ELF_SYMBOLS_IMPORTS, &with_imports));
    bool names_read =
        mt_result_is_ok(mt_elf_read_dynamic(fd, size, &header, MT_ELF_SYMBOLS_SKIP, &without));
    if (names_read)
        require(count_names(&without) == without.needed_count && !without.imports_io_uring);
    if (imports_read && names_read)
        require(memcmp(with_imports.needed, without.needed, sizeof(without.needed)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz_elf", MFD_CLOEXEC);
    require(fd >= 0);
    require(size == 0 || write(fd, data, size) == (ssize_t)size);
    read_all(fd, (off_t)size);
    close(fd);
    return 0;
}
