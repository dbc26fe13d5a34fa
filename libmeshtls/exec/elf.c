/*
 * ELF headers (see elf.h): the file header, the program headers (PT_INTERP, PT_NOTE) and, for Go,
 * the section headers and their names.
 *
 * Owns reading an ELF file the caller has opened; it never executes it, maps it or trusts a
 * number in it. Every read is a pread of a fixed size at an offset checked against the file size,
 * every count is bounded (PROGRAM_HEADERS_MAX, SECTIONS_MAX, NOTE_SEGMENT_MAX), so a truncated or
 * hostile file gives an error, never a crash or an unbounded read. It runs in the preload of a
 * program about to exec another: no allocation, and the one large buffer is static.
 */
#include <elf.h>
#include <string.h>
#include <unistd.h>

#include "elf.h"

#define PROGRAM_HEADERS_MAX 4096
#define SECTIONS_MAX 65536
#define NOTE_SEGMENT_MAX 65536

static MT_RESULT read_at(int fd, off_t file_size, uint64_t offset, void *buffer, size_t length)
{
    MT_ENSURE(offset <= (uint64_t)file_size && length <= (uint64_t)file_size - offset, MT_ERR_IO);
    ssize_t got = pread(fd, buffer, length, (off_t)offset);
    MT_ENSURE(got >= 0 && (size_t)got == length, MT_ERR_IO);
    return MT_OK_RESULT;
}

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

MT_RESULT mt_elf_read_header(int fd, off_t size, struct mt_elf_header *header)
{
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
 * Go puts its build information in .go.buildinfo and its build ID in .note.go.buildid, cgo or
 * not. Section headers are optional for running a program, so their absence is no error.
 */
static MT_RESULT read_go_sections(int fd, off_t size, const struct mt_elf_header *header,
                                  struct mt_elf_facts *facts)
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
