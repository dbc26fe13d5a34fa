/*
 * The preload's start, and hooks of the calls that start a program: execve, execv, execvp,
 * execvpe, execl, execlp, execle, fexecve, posix_spawn, posix_spawnp, and the posix_spawn file
 * actions that name descriptors.
 *
 * Owns turning execl's argument lists into arrays. What crosses exec is core/inherit.c's
 * business: the environment that hands connections and sessions over, the warning for a program
 * the preload cannot follow, the spawn actions that put a connection on a new program's fd. Must
 * never leave an allocation behind when exec returns (it failed, and the program goes on), and
 * must never allocate on the way to exec from execve, execvpe or fexecve (a vfork child calls
 * them: what a start needs is on this stack).
 */
#include "hook.h"

#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>

#include "../core/inherit.h"
#include "../core/runtime.h"

extern char **environ;

/*
 * At load, while the environment is still the one the program was started with: programs such
 * as nginx replace their environment before their first connection, and a configuration looked
 * up only then would silently become the built-in defaults. Then take over the connections a
 * parent handed over, if any.
 */
__attribute__((constructor)) static void load_early(void)
{
    mt_real_init();
    (void)mt_runtime_config();
    if (getenv("MESHTLS_INHERIT") != NULL)
        mt_inherit_adopt();
}

/*
 * Starts a program with exec, its environment extended for the connections it gets; what the
 * start needs is on this stack (struct mt_inherit_exec).
 */
#define START_WITH(start, program, envp, call)                                                     \
    do {                                                                                           \
        struct mt_inherit_exec exec;                                                               \
        char **environment = mt_inherit_environment(&exec, program, start, NULL, envp);            \
        int result = call;                                                                         \
        MT_PRESERVING_ERRNO(mt_inherit_start_failed(&exec));                                       \
        return result;                                                                             \
    } while (0)

MT_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    mt_real_init();
    mt_inherit_check_program(path, false);
    START_WITH(MT_INHERIT_EXEC_PATH, path, envp, real_execve(path, argv, environment));
}

MT_EXPORT int execv(const char *path, char *const argv[])
{
    return execve(path, argv, environ);
}

MT_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    mt_real_init();
    mt_inherit_check_program(file, true);
    START_WITH(MT_INHERIT_EXEC_SEARCH, file, envp, real_execvpe(file, argv, environment));
}

MT_EXPORT int execvp(const char *file, char *const argv[])
{
    return execvpe(file, argv, environ);
}

MT_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    mt_real_init();
    START_WITH(MT_INHERIT_EXEC_FD, "(fexecve)", envp, real_fexecve(fd, argv, environment));
}

/* execl and friends: the variadic argument list as an argv array (with envp for execle). */
static char **gather_arguments(const char *first, va_list arguments, char *const **envp)
{
    size_t capacity = 16;
    size_t count = 0;
    char **argv = malloc(capacity * sizeof(char *));
    const char *argument = first;
    while (argv != NULL) {
        if (count + 1 >= capacity) {
            char **grown = realloc(argv, (capacity *= 2) * sizeof(char *));
            if (grown == NULL) {
                free(argv);
                return NULL;
            }
            argv = grown;
        }
        argv[count++] = (char *)argument;
        if (argument == NULL)
            break;
        argument = va_arg(arguments, const char *);
    }
    if (envp != NULL)
        *envp = va_arg(arguments, char *const *);
    return argv;
}

/* Runs exec with a gathered argv, which it frees again if exec returns (failed). */
static int exec_gathered(int (*exec)(const char *, char *const[], char *const[]),
                         const char *target, char **argv, char *const envp[])
{
    if (argv == NULL) {
        errno = ENOMEM;
        return -1;
    }
    int result = exec(target, argv, envp);
    MT_PRESERVING_ERRNO(free(argv));
    return result;
}

MT_EXPORT int execl(const char *path, const char *argument, ...)
{
    va_list arguments;
    va_start(arguments, argument);
    char **argv = gather_arguments(argument, arguments, NULL);
    va_end(arguments);
    return exec_gathered(execve, path, argv, environ);
}

MT_EXPORT int execlp(const char *file, const char *argument, ...)
{
    va_list arguments;
    va_start(arguments, argument);
    char **argv = gather_arguments(argument, arguments, NULL);
    va_end(arguments);
    return exec_gathered(execvpe, file, argv, environ);
}

MT_EXPORT int execle(const char *path, const char *argument, ...)
{
    char *const *envp = NULL;
    va_list arguments;
    va_start(arguments, argument);
    char **argv = gather_arguments(argument, arguments, &envp);
    va_end(arguments);
    return exec_gathered(execve, path, argv, envp);
}

/*
 * posix_spawn and posix_spawnp: the hand-over is prepared here, in the parent, as glibc's child
 * runs no hook; the sessions stay the new program's once it started (the pid is needed for the
 * log line of a copy used after it), or are taken back when the spawn failed.
 */
static int spawn_with(enum mt_inherit_start start, pid_t *pid, const char *program,
                      const posix_spawn_file_actions_t *actions,
                      const posix_spawnattr_t *attributes, char *const argv[], char *const envp[])
{
    mt_real_init();
    mt_inherit_check_program(program, start == MT_INHERIT_SPAWN_SEARCH);
    struct mt_inherit_exec exec;
    char **environment = mt_inherit_environment(&exec, program, start, actions, envp);
    pid_t child = 0;
    int result = start == MT_INHERIT_SPAWN_SEARCH
                     ? real_posix_spawnp(&child, program, actions, attributes, argv, environment)
                     : real_posix_spawn(&child, program, actions, attributes, argv, environment);
    MT_PRESERVING_ERRNO({
        if (result == 0)
            mt_inherit_spawned(&exec, child);
        else
            mt_inherit_start_failed(&exec);
    });
    if (result == 0 && pid != NULL)
        *pid = child;
    return result;
}

MT_EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                          const posix_spawnattr_t *attributes, char *const argv[],
                          char *const envp[])
{
    return spawn_with(MT_INHERIT_SPAWN_PATH, pid, path, actions, attributes, argv, envp);
}

MT_EXPORT int posix_spawn_file_actions_init(posix_spawn_file_actions_t *actions)
{
    mt_real_init();
    mt_inherit_spawn_actions_forget(actions);
    return real_posix_spawn_file_actions_init(actions);
}

MT_EXPORT int posix_spawn_file_actions_destroy(posix_spawn_file_actions_t *actions)
{
    mt_real_init();
    mt_inherit_spawn_actions_forget(actions);
    return real_posix_spawn_file_actions_destroy(actions);
}

MT_EXPORT int posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *actions, int fd,
                                               int target)
{
    mt_real_init();
    switch (mt_inherit_spawn_dup(actions, fd, target)) {
    case MT_INHERIT_SPAWN_CLOSE_TARGET:
        return posix_spawn_file_actions_addclose(actions, target);
    case MT_INHERIT_SPAWN_REFUSE:
        return ENOMEM;
    case MT_INHERIT_SPAWN_DUP:
    default:
        return real_posix_spawn_file_actions_adddup2(actions, fd, target);
    }
}

MT_EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                           const posix_spawnattr_t *attributes, char *const argv[],
                           char *const envp[])
{
    return spawn_with(MT_INHERIT_SPAWN_SEARCH, pid, file, actions, attributes, argv, envp);
}
