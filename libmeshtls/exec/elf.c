/*
 * ELF headers (see elf.h): the file header, the program headers (PT_INTERP, PT_NOTE), for Go the
 * section headers and their names, and the dynamic section and dynamic symbols (DT_NEEDED, the
 * run path, imports of liburing's functions).
 *
 * Owns reading an ELF file the caller has opened; it never executes it, maps it or trusts a
 * number in it. Every read is of a fixed size at an offset checked against the file size (served
 * from the last pages read, see read_at), every count is bounded (PROGRAM_HEADERS_MAX,
 * SECTIONS_MAX, NOTE_SEGMENT_MAX, DYNAMIC_*_MAX), so a truncated or hostile file gives an error,
 * never a crash or an unbounded read. It runs in the preload of a program about to exec another:
 * no allocation, and the large buffers are static.
 */
#include <elf.h>
#include <string.h>
#include <unistd.h>

#include "elf.h"

#define PROGRAM_HEADERS_MAX 4096
#define SECTIONS_MAX 65536
#define NOTE_SEGMENT_MAX 65536
#define DYNAMIC_ENTRIES_MAX 65536
#define DYNAMIC_SYMBOLS_MAX (1u << 20)

/*
 * The last pages read, so that walking a table entry by entry (sections, dynamic entries,
 * symbols and their names, which alternate) costs a read per page, not per entry: python3's
 * imports alone took 3 000 preads without them. Replaced in turn. Every file's reading starts
 * with mt_elf_read_header, which forgets them: fd numbers are reused from file to file.
 */
#define WINDOWS 4
#define WINDOW_SIZE 4096
struct window {
    int fd; /* -1: empty */
    uint64_t start;
    size_t length;
    unsigned char bytes[WINDOW_SIZE];
};
static struct window windows[WINDOWS] = {{.fd = -1}, {.fd = -1}, {.fd = -1}, {.fd = -1}};
static unsigned next_window;

static void forget_windows(void)
{
    for (unsigned i = 0; i < WINDOWS; i++)
        windows[i].fd = -1;
}

static const struct window *window_holding(int fd, uint64_t offset, size_t length)
{
    for (unsigned i = 0; i < WINDOWS; i++) {
        const struct window *window = &windows[i];
        if (window->fd == fd && offset >= window->start &&
            offset - window->start <= window->length &&
            length <= window->length - (offset - window->start))
            return window;
    }
    return NULL;
}

static MT_RESULT read_at(int fd, off_t file_size, uint64_t offset, void *buffer, size_t length)
{
    MT_ENSURE(offset <= (uint64_t)file_size && length <= (uint64_t)file_size - offset, MT_ERR_IO);
    if (length > WINDOW_SIZE) {
        ssize_t got = pread(fd, buffer, length, (off_t)offset);
        MT_ENSURE(got >= 0 && (size_t)got == length, MT_ERR_IO);
        return MT_OK_RESULT;
    }
    const struct window *window = window_holding(fd, offset, length);
    if (window == NULL) {
        struct window *fresh = &windows[next_window];
        next_window = (next_window + 1) % WINDOWS;
        uint64_t available = (uint64_t)file_size - offset;
        size_t wanted = available < WINDOW_SIZE ? (size_t)available : WINDOW_SIZE;
        fresh->fd = -1;
        ssize_t got = pread(fd, fresh->bytes, wanted, (off_t)offset);
        MT_ENSURE(got >= 0 && (size_t)got >= length, MT_ERR_IO);
        fresh->fd = fd;
        fresh->start = offset;
        fresh->length = (size_t)got;
        window = fresh;
    }
    memcpy(buffer, window->bytes + (offset - window->start), length);
    return MT_OK_RESULT;
}

struct segment {
    uint32_t type;
    uint64_t offset;
    uint64_t size;
};

struct section {
    uint32_t name;
    uint32_t type;
    uint32_t link;
    uint64_t offset;
    uint64_t size;
    uint64_t entry_size;
};

MT_RESULT mt_elf_read_header(int fd, off_t size, struct mt_elf_header *header)
{
    forget_windows();
    unsigned char ident[EI_NIDENT];
    MT_GUARD(read_at(fd, size, 0, ident, sizeof(ident)));
    header->class = ident[EI_CLASS];
    if (header->class == ELFCLASS64) {
        Elf64_Ehdr raw;
        MT_GUARD(read_at(fd, size, 0, &raw, sizeof(raw)));
        *header = (struct mt_elf_header){
            ELFCLASS64,  raw.e_type,  raw.e_machine,   raw.e_phoff, raw.e_phentsize,
            raw.e_phnum, raw.e_shoff, raw.e_shentsize, raw.e_shnum, raw.e_shstrndx};
    } else if (header->class == ELFCLASS32) {
        Elf32_Ehdr raw;
        MT_GUARD(read_at(fd, size, 0, &raw, sizeof(raw)));
        *header = (struct mt_elf_header){
            ELFCLASS32,  raw.e_type,  raw.e_machine,   raw.e_phoff, raw.e_phentsize,
            raw.e_phnum, raw.e_shoff, raw.e_shentsize, raw.e_shnum, raw.e_shstrndx};
    } else {
        return mt_result_of(MT_ERR_INVALID_ARGUMENT);
    }
    return MT_OK_RESULT;
}

static MT_RESULT read_segment(int fd, off_t size, const struct mt_elf_header *header,
                              uint32_t index, struct segment *segment)
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

static MT_RESULT read_section(int fd, off_t size, const struct mt_elf_header *header,
                              uint32_t index, struct section *section)
{
    uint64_t offset = header->section_headers + (uint64_t)index * header->section_header_size;
    if (header->class == ELFCLASS64) {
        Elf64_Shdr raw;
        MT_ENSURE(header->section_header_size == sizeof(raw), MT_ERR_INVALID_ARGUMENT);
        MT_GUARD(read_at(fd, size, offset, &raw, sizeof(raw)));
        *section = (struct section){raw.sh_name,   raw.sh_type, raw.sh_link,
                                    raw.sh_offset, raw.sh_size, raw.sh_entsize};
    } else {
        Elf32_Shdr raw;
        MT_ENSURE(header->section_header_size == sizeof(raw), MT_ERR_INVALID_ARGUMENT);
        MT_GUARD(read_at(fd, size, offset, &raw, sizeof(raw)));
        *section = (struct section){raw.sh_name,   raw.sh_type, raw.sh_link,
                                    raw.sh_offset, raw.sh_size, raw.sh_entsize};
    }
    return MT_OK_RESULT;
}

/* PT_INTERP: a NUL-terminated path, the loader the kernel starts instead of the program. */
static MT_RESULT read_interpreter(int fd, off_t size, const struct segment *segment,
                                  struct mt_elf_facts *facts)
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
 * The number of sections and the index of their names' section. Section headers are optional for
 * running a program: without them the count is 0, which is no error.
 */
static MT_RESULT read_section_count(int fd, off_t size, const struct mt_elf_header *header,
                                    uint64_t *count, uint32_t *names_index)
{
    *count = 0;
    *names_index = 0;
    if (header->section_headers == 0)
        return MT_OK_RESULT;
    struct section first;
    MT_GUARD(read_section(fd, size, header, 0, &first));
    /* Extended numbering (ELF gABI): counts too large for the header live in section 0. */
    *count = header->section_count != 0 ? header->section_count : first.size;
    *names_index =
        header->section_names_index != SHN_XINDEX ? header->section_names_index : first.link;
    MT_ENSURE(*count <= SECTIONS_MAX && (*count == 0 || *names_index < *count),
              MT_ERR_INVALID_ARGUMENT);
    return MT_OK_RESULT;
}

/* Go puts its build information in .go.buildinfo and its build ID in .note.go.buildid, cgo or
 * not. */
static MT_RESULT read_go_sections(int fd, off_t size, const struct mt_elf_header *header,
                                  struct mt_elf_facts *facts)
{
    uint64_t count = 0;
    uint32_t names_index = 0;
    MT_GUARD(read_section_count(fd, size, header, &count, &names_index));
    if (count == 0)
        return MT_OK_RESULT;
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

MT_RESULT mt_elf_read_facts(int fd, off_t size, const struct mt_elf_header *header,
                            struct mt_elf_facts *facts)
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

/* ---- the dynamic section and the dynamic symbols ------------------------------------------- */

/*
 * Copies the NUL-terminated string at index of strings (a string table section) into
 * destination; false when it does not fit or does not end inside the table.
 */
static bool read_string(int fd, off_t size, const struct section *strings, uint64_t index,
                        char *destination, size_t capacity)
{
    if (index >= strings->size)
        return false;
    size_t length = capacity;
    if (length > strings->size - index)
        length = (size_t)(strings->size - index);
    if (!mt_result_is_ok(read_at(fd, size, strings->offset + index, destination, length)))
        return false;
    return memchr(destination, '\0', length) != NULL;
}

/* Appends a DT_NEEDED name to dynamic->needed; one that does not fit is an error (a damaged or
 * hostile file: no real program needs 4 KiB of library names). */
static MT_RESULT add_needed(struct mt_elf_dynamic *dynamic, size_t *used, const char *name)
{
    size_t length = strlen(name) + 1;
    MT_ENSURE(length > 1 && length < sizeof(dynamic->needed) - *used, MT_ERR_INVALID_ARGUMENT);
    memcpy(dynamic->needed + *used, name, length);
    *used += length;
    dynamic->needed[*used] = '\0';
    dynamic->needed_count++;
    return MT_OK_RESULT;
}

struct dynamic_entry {
    int64_t tag;
    uint64_t value;
};

static MT_RESULT read_dynamic_entry(int fd, off_t size, const struct mt_elf_header *header,
                                    const struct section *section, uint64_t index,
                                    struct dynamic_entry *entry)
{
    if (header->class == ELFCLASS64) {
        Elf64_Dyn raw;
        MT_GUARD(read_at(fd, size, section->offset + index * sizeof(raw), &raw, sizeof(raw)));
        *entry = (struct dynamic_entry){raw.d_tag, raw.d_un.d_val};
    } else {
        Elf32_Dyn raw;
        MT_GUARD(read_at(fd, size, section->offset + index * sizeof(raw), &raw, sizeof(raw)));
        *entry = (struct dynamic_entry){raw.d_tag, raw.d_un.d_val};
    }
    return MT_OK_RESULT;
}

/* SHT_DYNAMIC: the DT_NEEDED names and the run path, as strings of the table it links to. */
static MT_RESULT read_dynamic_section(int fd, off_t size, const struct mt_elf_header *header,
                                      const struct section *section, const struct section *strings,
                                      struct mt_elf_dynamic *dynamic)
{
    size_t entry_size = header->class == ELFCLASS64 ? sizeof(Elf64_Dyn) : sizeof(Elf32_Dyn);
    uint64_t count = section->size / entry_size;
    MT_ENSURE(count <= DYNAMIC_ENTRIES_MAX, MT_ERR_INVALID_ARGUMENT);
    size_t used = 0;
    bool has_run_path = false;
    for (uint64_t i = 0; i < count; i++) {
        struct dynamic_entry entry;
        MT_GUARD(read_dynamic_entry(fd, size, header, section, i, &entry));
        if (entry.tag == DT_NULL)
            break;
        char name[MT_ELF_NAME_MAX];
        if (entry.tag == DT_NEEDED) {
            MT_ENSURE(read_string(fd, size, strings, entry.value, name, sizeof(name)),
                      MT_ERR_INVALID_ARGUMENT);
            MT_GUARD(add_needed(dynamic, &used, name));
        } else if (entry.tag == DT_RUNPATH || (entry.tag == DT_RPATH && !has_run_path)) {
            /* DT_RUNPATH replaces DT_RPATH when both are present (ld.so(8)). */
            MT_ENSURE(read_string(fd, size, strings, entry.value, dynamic->run_path,
                                  sizeof(dynamic->run_path)),
                      MT_ERR_INVALID_ARGUMENT);
            has_run_path = entry.tag == DT_RUNPATH;
        }
    }
    return MT_OK_RESULT;
}

static bool is_io_uring_name(const char *name)
{
    return strncmp(name, "io_uring_", 9) == 0 || strncmp(name, "__io_uring_", 11) == 0;
}

struct symbol {
    uint32_t name;
    uint16_t section_index;
};

static MT_RESULT read_symbol(int fd, off_t size, const struct mt_elf_header *header,
                             const struct section *section, uint64_t index, struct symbol *symbol)
{
    if (header->class == ELFCLASS64) {
        Elf64_Sym raw;
        MT_GUARD(read_at(fd, size, section->offset + index * sizeof(raw), &raw, sizeof(raw)));
        *symbol = (struct symbol){raw.st_name, raw.st_shndx};
    } else {
        Elf32_Sym raw;
        MT_GUARD(read_at(fd, size, section->offset + index * sizeof(raw), &raw, sizeof(raw)));
        *symbol = (struct symbol){raw.st_name, raw.st_shndx};
    }
    return MT_OK_RESULT;
}

/*
 * SHT_DYNSYM: whether an undefined symbol (an import) is one of liburing's functions. Only
 * imports are read: a program's own exports can be thousands (python3), its imports hundreds.
 */
static MT_RESULT read_dynamic_symbols(int fd, off_t size, const struct mt_elf_header *header,
                                      const struct section *section, const struct section *strings,
                                      struct mt_elf_dynamic *dynamic)
{
    size_t entry_size = header->class == ELFCLASS64 ? sizeof(Elf64_Sym) : sizeof(Elf32_Sym);
    MT_ENSURE(section->entry_size == entry_size, MT_ERR_INVALID_ARGUMENT);
    uint64_t count = section->size / entry_size;
    MT_ENSURE(count <= DYNAMIC_SYMBOLS_MAX, MT_ERR_INVALID_ARGUMENT);
    for (uint64_t i = 1; i < count && !dynamic->imports_io_uring; i++) {
        struct symbol symbol;
        MT_GUARD(read_symbol(fd, size, header, section, i, &symbol));
        char name[sizeof(dynamic->io_uring_import)] = {0};
        if (symbol.section_index != SHN_UNDEF || symbol.name >= strings->size)
            continue;
        uint64_t available = strings->size - symbol.name;
        size_t length = available < sizeof(name) - 1 ? (size_t)available : sizeof(name) - 1;
        MT_GUARD(read_at(fd, size, strings->offset + symbol.name, name, length));
        if (is_io_uring_name(name)) {
            dynamic->imports_io_uring = true;
            memcpy(dynamic->io_uring_import, name, sizeof(name));
        }
    }
    return MT_OK_RESULT;
}

MT_RESULT mt_elf_read_dynamic(int fd, off_t size, const struct mt_elf_header *header,
                              enum mt_elf_symbols symbols, struct mt_elf_dynamic *dynamic)
{
    memset(dynamic, 0, sizeof(*dynamic));
    uint64_t count = 0;
    uint32_t names_index = 0;
    MT_GUARD(read_section_count(fd, size, header, &count, &names_index));
    for (uint32_t i = 1; i < count; i++) {
        struct section section;
        MT_GUARD(read_section(fd, size, header, i, &section));
        bool wanted = section.type == SHT_DYNAMIC ||
                      (section.type == SHT_DYNSYM && symbols == MT_ELF_SYMBOLS_IMPORTS);
        if (!wanted)
            continue;
        struct section strings;
        MT_ENSURE(section.link > 0 && section.link < count, MT_ERR_INVALID_ARGUMENT);
        MT_GUARD(read_section(fd, size, header, section.link, &strings));
        if (section.type == SHT_DYNAMIC)
            MT_GUARD(read_dynamic_section(fd, size, header, &section, &strings, dynamic));
        else
            MT_GUARD(read_dynamic_symbols(fd, size, header, &section, &strings, dynamic));
    }
    return MT_OK_RESULT;
}

const char *mt_elf_machine_name(uint16_t machine, unsigned char class)
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
