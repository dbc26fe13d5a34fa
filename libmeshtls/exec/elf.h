/*
 * What an ELF file's headers say about how it will run: its class, machine and type, its program
 * interpreter (the loader the kernel starts, or none for a static program), whether it is a
 * Go program (a build ID note, or Go's sections), and the libraries it needs and the liburing
 * functions it imports (its dynamic section and symbols).
 *
 * Read from an open file with pread at offsets checked against its size: a truncated or hostile
 * file gives an error (a damaged file), never a crash or an unbounded read.
 */
#ifndef MT_EXEC_ELF_H
#define MT_EXEC_ELF_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../util/result.h"

/* The ELF header fields the check needs, the same for both classes. */
struct mt_elf_header {
    unsigned char class; /* ELFCLASS32 or ELFCLASS64 */
    uint16_t type;       /* ET_EXEC, ET_DYN, ... */
    uint16_t machine;    /* EM_X86_64, ... */
    uint64_t program_headers;
    uint16_t program_header_size;
    uint32_t program_header_count;
    uint64_t section_headers;
    uint16_t section_header_size;
    uint32_t section_count;
    uint32_t section_names_index;
};

struct mt_elf_facts {
    bool has_interpreter;
    char interpreter[PATH_MAX]; /* PT_INTERP, when has_interpreter */
    bool is_go;
};

/* The header of the ELF file fd (size bytes long); an error when it is damaged. Call it first for
 * every file: the reads that follow are served from pages it forgets (fd numbers are reused). */
MT_RESULT mt_elf_read_header(int fd, off_t size, struct mt_elf_header *header);

/* Its program interpreter and whether it is Go; an error when its headers are damaged. */
MT_RESULT mt_elf_read_facts(int fd, off_t size, const struct mt_elf_header *header,
                            struct mt_elf_facts *facts);

/* A library name (DT_NEEDED) at most this long, NUL included. */
#define MT_ELF_NAME_MAX 256

/*
 * What the loader will load with a dynamically linked file, read from its section headers
 * (SHT_DYNAMIC, SHT_DYNSYM): a file without section headers reads as needing nothing.
 */
struct mt_elf_dynamic {
    char needed[4096]; /* DT_NEEDED names in order, each ending in NUL, an empty one last */
    uint32_t needed_count;
    char run_path[1024]; /* DT_RUNPATH, else DT_RPATH, unexpanded ("$ORIGIN/../lib"); "" for none */
    bool imports_io_uring;    /* an undefined dynamic symbol io_uring_* or __io_uring_* */
    char io_uring_import[40]; /* the first such symbol, perhaps cut short */
};

enum mt_elf_symbols {
    MT_ELF_SYMBOLS_SKIP,    /* DT_NEEDED and the run path only */
    MT_ELF_SYMBOLS_IMPORTS, /* and imports_io_uring */
};

/* The dynamic section (and, when asked, the imports) of the ELF file fd; an error when damaged. */
MT_RESULT mt_elf_read_dynamic(int fd, off_t size, const struct mt_elf_header *header,
                              enum mt_elf_symbols symbols, struct mt_elf_dynamic *dynamic);

/* "64-bit x86-64", "32-bit ARM", ...: a machine as a person names it. */
const char *mt_elf_machine_name(uint16_t machine, unsigned char class);

#endif
