/*
 * Tests for exec/ (check.c, elf.c, script.c) on real binaries: this test program and /usr/bin/curl
 * (dynamic glibc), programs built here with gcc (static, a Go-like one carrying Go's sections,
 * musl's and an unknown program interpreter, an object file), copies with set-user-ID, set-group-ID
 * and file capabilities, scripts (with #!, with env, without #!, nested too deep), hand-made ELF
 * headers for other machines and damaged files, execvp's PATH lookup, and io_uring: programs
 * importing liburing's functions (from a stub library built here, and from the real liburing),
 * linking liburing, or needing a library that links it. Cases whose tool is missing (gcc, libc.a,
 * setcap, liburing-dev) are skipped with a message, never passed silently.
 */
#include <elf.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "exec/check.h"
#include "exec/elf.h"

static char directory[64];
static char path_buffer[256];

static const char *temp_path(const char *name)
{
    snprintf(path_buffer, sizeof(path_buffer), "%s/%s", directory, name);
    return path_buffer;
}

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
    snprintf(directory, sizeof(directory), "%s/test_check.XXXXXX", base);
    return mkdtemp(directory) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char command[128];
    snprintf(command, sizeof(command), "rm -rf '%s'", directory);
    return system(command) == 0 ? 0 : -1;
}

static void write_file(const char *name, const void *content, size_t length, mode_t mode)
{
    FILE *stream = fopen(temp_path(name), "wb");
    assert_non_null(stream);
    assert_int_equal(fwrite(content, 1, length, stream), length);
    assert_int_equal(fclose(stream), 0);
    assert_int_equal(chmod(temp_path(name), mode), 0);
}

static void write_text(const char *name, const char *text, mode_t mode)
{
    write_file(name, text, strlen(text), mode);
}

/* Builds name from C source with gcc and flags; false when gcc cannot (then the test skips). */
static bool build(const char *name, const char *source, const char *flags)
{
    char source_name[128];
    snprintf(source_name, sizeof(source_name), "%s.c", name);
    write_text(source_name, source, 0644);
    char command[1024];
    snprintf(command, sizeof(command), "cc %s -o '%s/%s' '%s/%s' >/dev/null 2>&1", flags, directory,
             name, directory, source_name);
    return system(command) == 0;
}

static const char hello_source[] = "int main(void) { return 0; }\n";

static enum mt_check_verdict check(const char *name, const char *search_path)
{
    static struct mt_check_report report;
    bool interposable = mt_check_program(name, search_path, &report);
    assert_int_equal(interposable, report.verdict == MT_CHECK_INTERPOSABLE);
    assert_true(strlen(report.sentence) > 0);
    assert_null(strchr(report.sentence, '\n'));
    print_message("    %s\n", report.sentence);
    return report.verdict;
}

static void assert_verdict(const char *name, enum mt_check_verdict expected)
{
    enum mt_check_verdict verdict = check(name, "/usr/bin:/bin");
    if (verdict != expected)
        fail_msg("%s: got \"%s\", expected \"%s\"", name, mt_check_verdict_name(verdict),
                 mt_check_verdict_name(expected));
}

static void test_mt_check_program_dynamic_glibc_is_interposable(void **state)
{
    (void)state;
    struct mt_check_report report;
    assert_true(mt_check_program("/proc/self/exe", NULL, &report));
    assert_string_equal(report.interpreter, "/lib64/ld-linux-x86-64.so.2");
    if (access("/usr/bin/curl", X_OK) != 0)
        skip();
    assert_verdict("/usr/bin/curl", MT_CHECK_INTERPOSABLE);
    /* Found through PATH like execvp would. */
    assert_true(mt_check_program("curl", "/nonexistent:/usr/bin", &report));
    assert_string_equal(report.path, "/usr/bin/curl");
}

static void test_mt_check_program_static_binary_is_static(void **state)
{
    (void)state;
    if (access("/usr/lib/x86_64-linux-gnu/libc.a", R_OK) != 0 ||
        !build("static", hello_source, "-static")) {
        print_message("    skipped: cc -static does not work here (libc6-dev provides libc.a)\n");
        skip();
    }
    assert_verdict(temp_path("static"), MT_CHECK_STATIC);
    if (build("static-pie", hello_source, "-static-pie"))
        assert_verdict(temp_path("static-pie"), MT_CHECK_STATIC);
}

/*
 * A report is filled field by field, not zeroed (check.c): used again, it keeps nothing of the
 * program it described before, for a verdict that leaves its fields empty.
 */
static void test_mt_check_program_report_used_again_keeps_nothing_of_the_last(void **state)
{
    (void)state;
    static struct mt_check_report report;
    assert_true(mt_check_program("/proc/self/exe", NULL, &report));
    assert_string_equal(report.interpreter, "/lib64/ld-linux-x86-64.so.2");
    assert_false(mt_check_program("no-such-program-here", "/nonexistent", &report));
    assert_int_equal(report.verdict, MT_CHECK_NOT_FOUND);
    assert_string_equal(report.path, "");
    assert_string_equal(report.decided_by, "");
    assert_string_equal(report.interpreter, "");
    assert_null(strstr(report.sentence, "/proc/self/exe"));
    if (access("/usr/lib/x86_64-linux-gnu/libc.a", R_OK) != 0 ||
        !build("static-again", hello_source, "-static")) {
        print_message("    skipped: cc -static does not work here (libc6-dev provides libc.a)\n");
        skip();
    }
    assert_true(mt_check_program("/proc/self/exe", NULL, &report));
    assert_false(mt_check_program(temp_path("static-again"), NULL, &report));
    assert_int_equal(report.verdict, MT_CHECK_STATIC);
    assert_string_equal(report.interpreter, "");
    assert_string_equal(report.decided_by, temp_path("static-again"));
}

static void test_mt_check_program_go_sections_are_go(void **state)
{
    (void)state;
    static const char buildinfo[] =
        "__attribute__((section(\".go.buildinfo\"), used)) static const char info[32] =\n"
        "    \"\\xff Go buildinf:\";\n"
        "int main(void) { return 0; }\n";
    static const char note[] = "__asm__(\".section .note.go.buildid,\\\"a\\\",@note\\n\"\n"
                               "        \".balign 4\\n.long 3, 4, 4\\n.asciz \\\"Go\\\"\\n"
                               ".balign 4\\n.ascii \\\"abcd\\\"\\n.previous\\n\");\n"
                               "int main(void) { return 0; }\n";
    if (!build("go-buildinfo", buildinfo, "") || !build("go-note", note, "")) {
        print_message("    skipped: cc does not work here\n");
        skip();
    }
    /* Dynamically linked against glibc, as a cgo program is, and still Go. */
    assert_verdict(temp_path("go-buildinfo"), MT_CHECK_GO);
    assert_verdict(temp_path("go-note"), MT_CHECK_GO);
}

static void test_mt_check_program_other_loaders_are_refused(void **state)
{
    (void)state;
    if (!build("musl", hello_source, "-Wl,--dynamic-linker=/lib/ld-musl-x86_64.so.1") ||
        !build("android", hello_source, "-Wl,--dynamic-linker=/system/bin/linker64")) {
        print_message("    skipped: cc does not work here\n");
        skip();
    }
    struct mt_check_report report;
    assert_false(mt_check_program(temp_path("musl"), NULL, &report));
    assert_int_equal(report.verdict, MT_CHECK_MUSL);
    assert_string_equal(report.interpreter, "/lib/ld-musl-x86_64.so.1");
    assert_verdict(temp_path("android"), MT_CHECK_UNKNOWN_LOADER);
    /* musl's loader ignores LD_PRELOAD in secure-execution mode as well: that verdict wins, so
     * the musl build of the preload is never counted on for a set-user-ID musl program. */
    assert_int_equal(chmod(temp_path("musl"), 04755), 0);
    assert_verdict(temp_path("musl"), MT_CHECK_SETUID);
}

/*
 * A copy of this test program: dynamic glibc, so only the bits set on it decide. Copied by the
 * path /proc/self/exe names, read in this process: under valgrind a cp of /proc/PID/exe would copy
 * valgrind's static launcher, whose exe link the child sees.
 */
static void copy_self(const char *name, mode_t mode)
{
    char self[PATH_MAX];
    ssize_t length = readlink("/proc/self/exe", self, sizeof(self) - 1);
    assert_true(length > 0);
    self[length] = '\0';
    char command[2 * PATH_MAX];
    snprintf(command, sizeof(command), "cp '%s' '%s'", self, temp_path(name));
    assert_int_equal(system(command), 0);
    assert_int_equal(chmod(temp_path(name), mode), 0);
}

static void test_mt_check_program_secure_execution_is_refused(void **state)
{
    (void)state;
    copy_self("setuid", 04755);
    assert_verdict(temp_path("setuid"), MT_CHECK_SETUID);
    copy_self("setgid", 02755);
    assert_verdict(temp_path("setgid"), MT_CHECK_SETGID);
    /* Set-group-ID without group execute permission is mandatory locking, not set-group-ID. */
    copy_self("locking", 02745);
    assert_verdict(temp_path("locking"), MT_CHECK_INTERPOSABLE);
    if (access("/usr/bin/passwd", F_OK) == 0)
        assert_verdict("/usr/bin/passwd", MT_CHECK_SETUID);
}

static void test_mt_check_program_file_capabilities_are_refused(void **state)
{
    (void)state;
    copy_self("capable", 0755);
    char command[512];
    snprintf(command, sizeof(command), "setcap cap_net_bind_service+ep '%s' >/dev/null 2>&1",
             temp_path("capable"));
    if (system(command) != 0) {
        print_message("    skipped: setcap is missing or not permitted (package libcap2-bin, "
                      "CAP_SETFCAP)\n");
        skip();
    }
    assert_verdict(temp_path("capable"), MT_CHECK_CAPABILITIES);
}

static void test_mt_check_program_scripts_are_judged_by_their_interpreter(void **state)
{
    (void)state;
    struct mt_check_report report;
    write_text("sh-script", "#!/bin/sh\necho hello\n", 0755);
    assert_true(mt_check_program(temp_path("sh-script"), NULL, &report));
    assert_string_equal(report.decided_by, "/bin/sh");
    char expected[512];
    snprintf(expected, sizeof(expected), "%s is a script run by /bin/sh; /bin/sh can be interposed",
             temp_path("sh-script"));
    assert_memory_equal(report.sentence, expected, strlen(expected));

    /* No #! line: execvp runs the file with /bin/sh. */
    write_text("bare-script", "echo hello\n", 0755);
    assert_verdict(temp_path("bare-script"), MT_CHECK_INTERPOSABLE);

    write_text("missing-interpreter", "#! /nonexistent/interpreter -x\n", 0755);
    assert_verdict(temp_path("missing-interpreter"), MT_CHECK_NOT_FOUND);

    /* Four levels of scripts are followed, a fifth is more than the kernel allows. */
    write_text("level0", "#!/bin/sh\n", 0755);
    for (int level = 1; level <= 5; level++) {
        char name[16];
        char text[300];
        snprintf(name, sizeof(name), "level%d", level);
        snprintf(text, sizeof(text), "#!%s/level%d\n", directory, level - 1);
        write_text(name, text, 0755);
    }
    assert_verdict(temp_path("level4"), MT_CHECK_INTERPOSABLE);
    assert_verdict(temp_path("level5"), MT_CHECK_TOO_MANY_SCRIPTS);

    if (!build("static", hello_source, "-static")) {
        print_message("    skipped the static interpreter cases: cc -static does not work here\n");
        return;
    }
    char text[300];
    snprintf(text, sizeof(text), "#!%s/static\n", directory);
    write_text("static-script", text, 0755);
    assert_verdict(temp_path("static-script"), MT_CHECK_STATIC);
    /* env's argument is looked up in PATH, and that program decides. */
    write_text("env-script", "#!/usr/bin/env -S static --flag\n", 0755);
    char search_path[128];
    snprintf(search_path, sizeof(search_path), "/usr/bin:%s", directory);
    assert_false(mt_check_program(temp_path("env-script"), search_path, &report));
    assert_int_equal(report.verdict, MT_CHECK_STATIC);
}

static void test_mt_check_program_path_lookup_follows_execvp(void **state)
{
    (void)state;
    struct mt_check_report report;
    char first[128];
    char second[128];
    snprintf(first, sizeof(first), "%s/first", directory);
    snprintf(second, sizeof(second), "%s/second", directory);
    assert_int_equal(mkdir(first, 0755), 0);
    assert_int_equal(mkdir(second, 0755), 0);
    write_text("first/tool", "#!/bin/sh\n", 0644); /* not executable: skipped */
    write_text("second/tool", "#!/bin/sh\n", 0755);
    char search_path[300];
    snprintf(search_path, sizeof(search_path), "/nonexistent:%s:%s", first, second);
    assert_true(mt_check_program("tool", search_path, &report));
    snprintf(search_path, sizeof(search_path), "%s/tool", second);
    assert_string_equal(report.path, search_path);

    snprintf(search_path, sizeof(search_path), "%s", first);
    assert_false(mt_check_program("tool", search_path, &report));
    assert_int_equal(report.verdict, MT_CHECK_NOT_EXECUTABLE);
    assert_false(mt_check_program("no-such-tool", search_path, &report));
    assert_int_equal(report.verdict, MT_CHECK_NOT_FOUND);
    assert_string_equal(report.path, "");
    assert_false(mt_check_program("", search_path, &report));
    assert_int_equal(report.verdict, MT_CHECK_NOT_FOUND);
}

static void test_mt_check_program_non_programs_are_refused(void **state)
{
    (void)state;
    assert_verdict(directory, MT_CHECK_NOT_EXECUTABLE);
    write_text("data", "not a program\n", 0644);
    assert_verdict(temp_path("data"), MT_CHECK_NOT_EXECUTABLE);
    assert_verdict(temp_path("absent"), MT_CHECK_NOT_FOUND);
    if (!build("object.o", hello_source, "-c")) {
        print_message("    skipped the object file case: cc does not work here\n");
        return;
    }
    assert_int_equal(chmod(temp_path("object.o"), 0755), 0);
    assert_verdict(temp_path("object.o"), MT_CHECK_NOT_PROGRAM);
}

static void test_mt_check_program_foreign_and_damaged_elf_are_refused(void **state)
{
    (void)state;
    Elf32_Ehdr x86;
    memset(&x86, 0, sizeof(x86));
    memcpy(x86.e_ident, ELFMAG, SELFMAG);
    x86.e_ident[EI_CLASS] = ELFCLASS32;
    x86.e_ident[EI_DATA] = ELFDATA2LSB;
    x86.e_type = ET_EXEC;
    x86.e_machine = EM_386;
    write_file("x86", &x86, sizeof(x86), 0755);
    struct mt_check_report report;
    assert_false(mt_check_program(temp_path("x86"), NULL, &report));
    assert_int_equal(report.verdict, MT_CHECK_FOREIGN);
    assert_non_null(strstr(report.sentence, "32-bit x86 program"));

    Elf64_Ehdr arm;
    memset(&arm, 0, sizeof(arm));
    memcpy(arm.e_ident, ELFMAG, SELFMAG);
    arm.e_ident[EI_CLASS] = ELFCLASS64;
    arm.e_ident[EI_DATA] = ELFDATA2LSB;
    arm.e_type = ET_DYN;
    arm.e_machine = EM_AARCH64;
    write_file("arm64", &arm, sizeof(arm), 0755);
    assert_verdict(temp_path("arm64"), MT_CHECK_FOREIGN);

    /* Cut inside the header, program headers beyond the end, absurd counts and sizes. */
    write_file("cut", &arm, 20, 0755);
    assert_verdict(temp_path("cut"), MT_CHECK_NOT_PROGRAM);
    Elf64_Ehdr damaged = arm;
    damaged.e_machine = EM_X86_64;
    damaged.e_phoff = 1u << 30;
    damaged.e_phentsize = sizeof(Elf64_Phdr);
    damaged.e_phnum = 4;
    write_file("beyond", &damaged, sizeof(damaged), 0755);
    assert_verdict(temp_path("beyond"), MT_CHECK_NOT_PROGRAM);
    damaged.e_phoff = sizeof(damaged);
    damaged.e_phnum = 0xffff;
    write_file("many", &damaged, sizeof(damaged), 0755);
    assert_verdict(temp_path("many"), MT_CHECK_NOT_PROGRAM);
    damaged.e_phnum = 1;
    damaged.e_phentsize = 7;
    write_file("entry-size", &damaged, sizeof(damaged), 0755);
    assert_verdict(temp_path("entry-size"), MT_CHECK_NOT_PROGRAM);
    /* A PT_INTERP that claims more bytes than the file has. */
    struct {
        Elf64_Ehdr header;
        Elf64_Phdr interpreter;
    } file;
    memset(&file, 0, sizeof(file));
    file.header = damaged;
    file.header.e_phentsize = sizeof(Elf64_Phdr);
    file.interpreter.p_type = PT_INTERP;
    file.interpreter.p_offset = sizeof(file) - 4;
    file.interpreter.p_filesz = 64;
    write_file("interpreter", &file, sizeof(file), 0755);
    assert_verdict(temp_path("interpreter"), MT_CHECK_NOT_PROGRAM);
}

/* Builds name from source with flags before it and libraries after it (so --as-needed keeps
 * them only when used); false when cc cannot. */
static bool build_linked(const char *name, const char *source, const char *flags,
                         const char *libraries)
{
    char source_name[128];
    snprintf(source_name, sizeof(source_name), "%s.c", name);
    write_text(source_name, source, 0644);
    char command[2048];
    snprintf(command, sizeof(command), "cc %s -o '%s/%s' '%s/%s' %s >/dev/null 2>&1", flags,
             directory, name, directory, source_name, libraries);
    return system(command) == 0;
}

static void assert_sentence_has(const char *name, enum mt_check_verdict expected,
                                const char *wanted)
{
    static struct mt_check_report report;
    mt_check_program(name, NULL, &report);
    print_message("    %s\n", report.sentence);
    if (report.verdict != expected || strstr(report.sentence, wanted) == NULL)
        fail_msg("%s: got \"%s\" (%s), expected \"%s\" saying %s", name,
                 mt_check_verdict_name(report.verdict), report.sentence,
                 mt_check_verdict_name(expected), wanted);
}

/* A stub library exporting one liburing name and one other: only the liburing import counts.
 * The two programs are judged one after the other, on the same fd number: the bystander's verdict
 * also shows that nothing read from the first file is served for the second (elf.c's pages). */
static void test_mt_check_program_io_uring_imports_are_io_uring(void **state)
{
    (void)state;
    static const char stub[] = "int io_uring_queue_init(unsigned n, void *r, unsigned f)\n"
                               "{ (void)r; return (int)(n + f); }\n"
                               "int uring_like_helper(void) { return 0; }\n";
    static const char user[] = "int io_uring_queue_init(unsigned n, void *r, unsigned f);\n"
                               "int main(void) { return io_uring_queue_init(0, 0, 0); }\n";
    static const char bystander[] = "int uring_like_helper(void);\n"
                                    "int main(void) { return uring_like_helper(); }\n";
    char flags[256];
    snprintf(flags, sizeof(flags), "-L'%s' -Wl,-rpath,'%s'", directory, directory);
    if (!build_linked("libstub.so", stub, "-shared -fPIC", "") ||
        !build_linked("stub-user", user, flags, "-lstub") ||
        !build_linked("stub-bystander", bystander, flags, "-lstub")) {
        print_message("    skipped: cc cannot build a shared library here\n");
        skip();
    }
    assert_sentence_has(temp_path("stub-user"), MT_CHECK_IO_URING,
                        "imports liburing's io_uring_queue_init");
    assert_verdict(temp_path("stub-bystander"), MT_CHECK_INTERPOSABLE);
}

/* The real liburing: imported, needed without imports, and needed by a library the program
 * needs (found through the program's $ORIGIN run path, as the loader finds it). */
static void test_mt_check_program_liburing_is_io_uring(void **state)
{
    (void)state;
    static const char ring[] = "#include <liburing.h>\n"
                               "int main(void) { struct io_uring ring;\n"
                               "  if (io_uring_queue_init(8, &ring, 0) < 0) return 1;\n"
                               "  io_uring_queue_exit(&ring); return 0; }\n";
    static const char wrapper[] = "#include <liburing.h>\n"
                                  "int wrapped_ring(void) { struct io_uring ring;\n"
                                  "  return io_uring_queue_init(8, &ring, 0); }\n";
    static const char wrapped[] = "int wrapped_ring(void);\n"
                                  "int main(void) { return wrapped_ring() < 0; }\n";
    char flags[256];
    snprintf(flags, sizeof(flags), "-L'%s' -Wl,-rpath,'$ORIGIN'", directory);
    if (access("/usr/include/liburing.h", R_OK) != 0 ||
        !build_linked("ring", ring, "", "-luring") ||
        !build_linked("ring-unused", hello_source, "", "-Wl,--no-as-needed -luring") ||
        !build_linked("libwrapper.so", wrapper, "-shared -fPIC", "-luring") ||
        !build_linked("wrapped", wrapped, flags, "-lwrapper")) {
        print_message("    skipped: liburing cannot be linked here (liburing-dev provides it)\n");
        skip();
    }
    assert_sentence_has(temp_path("ring"), MT_CHECK_IO_URING, "imports liburing's io_uring_");
    assert_sentence_has(temp_path("ring-unused"), MT_CHECK_IO_URING, "links liburing.so.2 (/");
    assert_sentence_has(temp_path("wrapped"), MT_CHECK_IO_URING,
                        "needs liburing.so.2 through its library libwrapper.so");
}

static void test_mt_elf_read_dynamic_lists_needed_libraries(void **state)
{
    (void)state;
    static struct mt_elf_dynamic dynamic;
    int fd = open("/proc/self/exe", O_RDONLY);
    assert_true(fd >= 0);
    struct stat status;
    assert_int_equal(fstat(fd, &status), 0);
    struct mt_elf_header header;
    assert_true(mt_result_is_ok(mt_elf_read_header(fd, status.st_size, &header)));
    assert_true(mt_result_is_ok(
        mt_elf_read_dynamic(fd, status.st_size, &header, MT_ELF_SYMBOLS_IMPORTS, &dynamic)));
    close(fd);
    bool has_cmocka = false, has_libc = false;
    uint32_t count = 0;
    for (const char *name = dynamic.needed; *name != '\0'; name += strlen(name) + 1, count++) {
        has_cmocka = has_cmocka || strncmp(name, "libcmocka.so", 12) == 0;
        has_libc = has_libc || strcmp(name, "libc.so.6") == 0;
    }
    assert_true(has_cmocka && has_libc);
    assert_int_equal(count, dynamic.needed_count);
    assert_false(dynamic.imports_io_uring);
}

static void test_mt_check_verdict_name_every_verdict_has_a_name(void **state)
{
    (void)state;
    for (int verdict = MT_CHECK_INTERPOSABLE; verdict <= MT_CHECK_IO_URING; verdict++)
        assert_string_not_equal(mt_check_verdict_name((enum mt_check_verdict)verdict), "unknown");
    assert_string_equal(mt_check_verdict_name(MT_CHECK_STATIC), "static");
    assert_string_equal(mt_check_verdict_name(MT_CHECK_IO_URING), "io_uring");
    assert_string_equal(mt_check_verdict_name((enum mt_check_verdict)99), "unknown");
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_mt_check_program_dynamic_glibc_is_interposable),
        TEST(test_mt_check_program_static_binary_is_static),
        TEST(test_mt_check_program_go_sections_are_go),
        TEST(test_mt_check_program_other_loaders_are_refused),
        TEST(test_mt_check_program_secure_execution_is_refused),
        TEST(test_mt_check_program_file_capabilities_are_refused),
        TEST(test_mt_check_program_scripts_are_judged_by_their_interpreter),
        TEST(test_mt_check_program_path_lookup_follows_execvp),
        TEST(test_mt_check_program_non_programs_are_refused),
        TEST(test_mt_check_program_foreign_and_damaged_elf_are_refused),
        TEST(test_mt_check_program_io_uring_imports_are_io_uring),
        TEST(test_mt_check_program_liburing_is_io_uring),
        TEST(test_mt_check_program_report_used_again_keeps_nothing_of_the_last),
        TEST(test_mt_elf_read_dynamic_lists_needed_libraries),
        TEST(test_mt_check_verdict_name_every_verdict_has_a_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
