/*
 * Tests for preload/real.c, the resolution of the libc functions behind the hooks: a name
 * hooks.def marks optional falls back to its system call when libc lacks it, a missing required
 * name or one that resolves into libmeshtls itself aborts with a message, and what is resolved
 * serves util/sys.c's calls on the application's behalf.
 *
 * The lookup is the test's, so that it can play a libc without some names. This binary links
 * the mt_preload archive, which also holds the hooks: it must name no hooked function (read,
 * close, dup2...), or the linker would take that hook from the archive into the test. The
 * kernel is reached through util/sys.h and syscall() instead.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "preload/real.h"
#include "util/sys.h"

static void *libc_lookup(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

/* A glibc 2.34: the name hooks.def marks optional (epoll_pwait2, 2.35) is missing. */
static void *old_libc_lookup(const char *name)
{
    if (strcmp(name, "epoll_pwait2") == 0)
        return NULL;
    return dlsym(RTLD_NEXT, name);
}

static void *without_read_lookup(const char *name)
{
    return strcmp(name, "read") == 0 ? NULL : dlsym(RTLD_NEXT, name);
}

static int own_close(int fd)
{
    return fd;
}

/* "close" found in this very binary, as when libmeshtls is loaded twice. */
static void *self_lookup(const char *name)
{
    if (strcmp(name, "close") == 0) {
        int (*function)(int) = own_close;
        void *symbol;
        memcpy(&symbol, &function, sizeof(symbol));
        return symbol;
    }
    return dlsym(RTLD_NEXT, name);
}

/* close is fsync, a libc function of the same type that leaves the descriptor open. */
static void *close_is_fsync_lookup(const char *name)
{
    return dlsym(RTLD_NEXT, strcmp(name, "close") == 0 ? "fsync" : name);
}

static int teardown(void **state)
{
    (void)state;
    mt_sys_use_libc(NULL);
    return 0;
}

/* The value of a real_* pointer, to compare with what dlsym finds. */
static void *value_of(const void *pointer)
{
    void *value;
    memcpy(&value, pointer, sizeof(value));
    return value;
}

static void test_mt_real_resolve_optional_missing_falls_back_to_the_system_call(void **state)
{
    (void)state;
    mt_real_resolve(old_libc_lookup);
    assert_true(real_epoll_pwait2 == mt_sys_epoll_pwait2);
    /* The names this libc has are still its own. */
    assert_ptr_equal(value_of(&real_read), dlsym(RTLD_NEXT, "read"));
    assert_ptr_equal(value_of(&real_epoll_pwait), dlsym(RTLD_NEXT, "epoll_pwait"));
}

static void test_mt_real_resolve_optional_present_is_libc_function(void **state)
{
    (void)state;
    mt_real_resolve(libc_lookup);
    void *found = dlsym(RTLD_NEXT, "epoll_pwait2");
    if (found == NULL)
        skip(); /* this libc is older than 2.35 */
    assert_ptr_equal(value_of(&real_epoll_pwait2), found);
    assert_false(real_epoll_pwait2 == mt_sys_epoll_pwait2);
}

/* Runs resolution with lookup in a child; returns its stderr, and whether it aborted. */
static bool resolve_in_child(void *(*lookup)(const char *), char *output, size_t capacity)
{
    int ends[2];
    assert_int_equal(pipe(ends), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        syscall(SYS_dup3, ends[1], STDERR_FILENO, 0);
        mt_real_resolve(lookup);
        _exit(0);
    }
    mt_sys_close(ends[1]);
    size_t length = 0;
    ssize_t n;
    while (length + 1 < capacity &&
           (n = mt_sys_read(ends[0], output + length, capacity - 1 - length)) > 0)
        length += (size_t)n;
    output[length] = '\0';
    mt_sys_close(ends[0]);
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void test_mt_real_resolve_required_missing_aborts_with_its_name(void **state)
{
    (void)state;
    char output[512];
    assert_true(resolve_in_child(without_read_lookup, output, sizeof(output)));
    assert_non_null(strstr(output, "fatal: cannot resolve read: not found"));
    /* The same resolution with read present goes through. */
    assert_false(resolve_in_child(libc_lookup, output, sizeof(output)));
    assert_string_equal(output, "");
}

static void test_mt_real_resolve_name_in_libmeshtls_itself_aborts(void **state)
{
    (void)state;
    char output[512];
    assert_true(resolve_in_child(self_lookup, output, sizeof(output)));
    assert_non_null(strstr(output, "cannot resolve close: it resolves to libmeshtls itself"));
}

/* The application's calls go to what was resolved: here a "close" that leaves the fd open. */
static void test_mt_real_resolve_resolved_functions_serve_app_calls(void **state)
{
    (void)state;
    int ends[2];
    assert_int_equal(pipe(ends), 0);
    mt_real_resolve(close_is_fsync_lookup);
    (void)mt_sys_app_close(ends[0]);
    assert_true(mt_sys_fcntl(ends[0], F_GETFD, 0) != -1);
    mt_real_resolve(libc_lookup);
    assert_int_equal(mt_sys_app_close(ends[0]), 0);
    assert_int_equal(mt_sys_fcntl(ends[0], F_GETFD, 0), -1);
    mt_sys_close(ends[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(
            test_mt_real_resolve_optional_missing_falls_back_to_the_system_call, teardown),
        cmocka_unit_test_teardown(test_mt_real_resolve_optional_present_is_libc_function, teardown),
        cmocka_unit_test(test_mt_real_resolve_required_missing_aborts_with_its_name),
        cmocka_unit_test(test_mt_real_resolve_name_in_libmeshtls_itself_aborts),
        cmocka_unit_test_teardown(test_mt_real_resolve_resolved_functions_serve_app_calls,
                                  teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
