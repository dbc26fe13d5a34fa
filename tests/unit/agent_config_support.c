/*
 * What the agent configuration tests share (agent_config_support.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent_config_support.h"

int setup(void **state)
{
    struct fixture *fixture = calloc(1, sizeof(*fixture));
    assert_non_null(fixture);
    snprintf(fixture->path, sizeof(fixture->path), "/tmp/test_agent_config.XXXXXX");
    int fd = mkstemp(fixture->path);
    assert_true(fd >= 0);
    close(fd);
    snprintf(fixture->dir, sizeof(fixture->dir), "/tmp/test_agent_config.d.XXXXXX");
    assert_non_null(mkdtemp(fixture->dir));
    static const char *const files[] = {"sbin/nginx",  "sbin/nginx-debug", "bin/python3.11",
                                        "bin/python2", "bin/curl",         "other"};
    char path[128];
    snprintf(path, sizeof(path), "%s/sbin", fixture->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/bin", fixture->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", fixture->dir, files[i]);
        FILE *file = fopen(path, "w");
        assert_non_null(file);
        fprintf(file, "program %s\n", files[i]);
        fclose(file);
    }
    snprintf(path, sizeof(path), "%s/bin/python3", fixture->dir);
    assert_int_equal(symlink("python3.11", path), 0);
    mt_agent_config_init(&fixture->config);
    *state = fixture;
    return 0;
}

int teardown(void **state)
{
    struct fixture *fixture = *state;
    mt_agent_config_cleanup(&fixture->config);
    unlink(fixture->path);
    char command[160];
    snprintf(command, sizeof(command), "rm -rf '%s'", fixture->dir);
    assert_int_equal(system(command), 0);
    free(fixture);
    return 0;
}

mt_result load_text(struct fixture *fixture, const char *text)
{
    FILE *file = fopen(fixture->path, "w");
    assert_non_null(file);
    assert_int_equal(fputs(text, file) >= 0, 1);
    fclose(file);
    fixture->message[0] = '\0';
    return mt_agent_config_load_file(fixture->path, &fixture->config, MT_TEXT_ON(fixture->message));
}

/* Loading text must fail with a message starting "PATH:LINE: KEY: " and containing detail. */
void expect_error(struct fixture *fixture, const char *text, int line, const char *key,
                  const char *detail)
{
    assert_int_equal(load_text(fixture, text).error, MT_ERR_CONFIG);
    char prefix[160];
    if (key != NULL)
        snprintf(prefix, sizeof(prefix), "%s:%d: %s: ", fixture->path, line, key);
    else
        snprintf(prefix, sizeof(prefix), "%s:%d: ", fixture->path, line);
    if (strncmp(fixture->message, prefix, strlen(prefix)) != 0)
        fail_msg("message \"%s\" does not start with \"%s\"", fixture->message, prefix);
    if (strstr(fixture->message, detail) == NULL)
        fail_msg("message \"%s\" does not contain \"%s\"", fixture->message, detail);
}

static char name_buffer[256];
static char file_buffer[256];

/* "DIR/relative" for the fixture's executables; absolute paths are kept. */
const char *in_dir(const struct fixture *fixture, const char *relative, char *buffer)
{
    if (relative == NULL || relative[0] == '/')
        return relative;
    snprintf(buffer, 256, "%s/%s", fixture->dir, relative);
    return buffer;
}

/*
 * A caller whose mount namespace names its executable name while it runs file (a path as the
 * agent sees it; a missing file gives an identity that matches nothing).
 */
struct mt_agent_caller caller_of(uid_t uid, gid_t gid, const char *name, const char *file)
{
    struct mt_agent_caller caller = {.pid = 4242, .uid = uid, .gid = gid, .exe = name};
    struct stat status;
    if (file != NULL && stat(file, &status) == 0) {
        caller.exe_device = status.st_dev;
        caller.exe_inode = status.st_ino;
    }
    return caller;
}

/* Resolves a caller running name (the file it names, unless file says otherwise). */
unsigned resolve_running(const struct fixture *fixture, uid_t uid, gid_t gid, const char *name,
                         const char *file, const char *expected)
{
    name = in_dir(fixture, name, name_buffer);
    file = file != NULL ? in_dir(fixture, file, file_buffer) : name;
    struct mt_agent_caller caller = caller_of(uid, gid, name, file);
    char id[MT_SPIFFE_ID_MAX + 1];
    struct mt_agent_match match;
    assert_true(mt_result_is_ok(
        mt_agent_config_resolve_id(&fixture->config, &caller, id, sizeof(id), &match)));
    assert_string_equal(id, expected);
    return match.exe_mismatches;
}

void resolve(const struct fixture *fixture, uid_t uid, gid_t gid, const char *exe,
             const char *expected)
{
    (void)resolve_running(fixture, uid, gid, exe, NULL, expected);
}

/* The example's rules with the fixture's executables, for resolving. */
mt_result load_executables_example(struct fixture *fixture)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "trust_domain = \"example.org\";\n"
             "lifetime = 3600;\n"
             "rules = (\n"
             "  { uid = 33; exe = \"%s/sbin/nginx\"; id = \"ns/web/sa/nginx\"; },\n"
             "  { uid = 1000; id = \"ns/dev/sa/{uid}-{gid}\"; },\n"
             "  { uid = 7; exe = \"%s/bin/python3\"; id = \"ns/seven/sa/python\"; },\n"
             "  { exe = \"%s/bin/python3*\"; id = \"ns/py/sa/python\"; },\n"
             "  { gid = 50; id = \"ns/staff/sa/g{gid}\"; }\n"
             ");\n",
             fixture->dir, fixture->dir, fixture->dir);
    return load_text(fixture, text);
}
