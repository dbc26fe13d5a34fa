/*
 * Handing connections over across exec (see inherit.h).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../util/addr.h"
#include "../util/check.h"
#include "../util/log.h"
#include "../util/sys.h"
#include "conn.h"
#include "inherit.h"
#include "intercept.h"
#include "runtime.h"
#include "table.h"

#define VARIABLE "MESHTLS_INHERIT"
#define PRELOAD_VARIABLE "LD_PRELOAD"

struct collect {
    char *list; /* "fd:s,fd:c" */
    size_t length;
    size_t capacity;
    const char *program;
};

static void collect_one(int fd, struct mt_conn *conn, void *argument)
{
    struct collect *collect = argument;
    int descriptor_flags = mt_sys_fcntl(fd, F_GETFD, 0);
    if (descriptor_flags == -1 || (descriptor_flags & FD_CLOEXEC))
        return;
    pthread_mutex_lock(&conn->lock);
    bool fresh = !conn->tls_started && conn->state != MT_CONN_FAILED;
    char role = conn->role == MT_TLS_SERVER ? 's' : 'c';
    /* A client's destination travels along: its connect may still be in flight. */
    char destination[MT_ADDR_TEXT_MAX + 1] = "";
    if (conn->role == MT_TLS_CLIENT) {
        destination[0] = '@';
        mt_addr_format(&conn->peer, destination + 1, sizeof(destination) - 1);
    }
    pthread_mutex_unlock(&conn->lock);
    if (!fresh) {
        mt_log_warn("exec of %s: the mTLS session on fd %d cannot cross exec; the new program "
                    "will not be able to use it",
                    collect->program, fd);
        return;
    }
    char entry[32 + sizeof(destination)];
    int n = snprintf(entry, sizeof(entry), "%s%d:%c%s", collect->length > 0 ? "," : "", fd, role,
                     destination);
    if (n <= 0 || collect->length + (size_t)n + 1 > collect->capacity) {
        size_t capacity = collect->capacity * 2 + 64;
        char *grown = realloc(collect->list, capacity);
        if (grown == NULL)
            return;
        collect->list = grown;
        collect->capacity = capacity;
    }
    memcpy(collect->list + collect->length, entry, (size_t)n + 1);
    collect->length += (size_t)n;
}

/* The path of this library, for LD_PRELOAD in the new environment. */
static const char *own_path(void)
{
    static const char anchor = 0; /* any object of this library locates it */
    Dl_info info;
    if (dladdr(&anchor, &info) != 0 && info.dli_fname != NULL)
        return info.dli_fname;
    return NULL;
}

static bool names_variable(const char *entry, const char *name)
{
    size_t length = strlen(name);
    return strncmp(entry, name, length) == 0 && entry[length] == '=';
}

char **mt_inherit_environment(const char *program, char *const envp[])
{
    struct collect collect = {.program = program != NULL ? program : "?"};
    if (!mt_table_is_empty())
        mt_table_for_each_fd(collect_one, &collect);
    if (collect.length == 0) {
        free(collect.list);
        return (char **)envp;
    }
    size_t count = 0;
    while (envp != NULL && envp[count] != NULL)
        count++;
    char **environment = calloc(count + 3, sizeof(char *));
    char *inherit = malloc(strlen(VARIABLE) + collect.length + 2);
    const char *self = own_path();
    char *preload = NULL;
    if (environment == NULL || inherit == NULL) {
        free(environment);
        free(inherit);
        free(collect.list);
        return (char **)envp;
    }
    sprintf(inherit, "%s=%s", VARIABLE, collect.list);
    free(collect.list);
    size_t used = 0;
    bool has_preload = false;
    for (size_t i = 0; i < count; i++) {
        if (names_variable(envp[i], VARIABLE))
            continue;
        if (names_variable(envp[i], PRELOAD_VARIABLE) && self != NULL &&
            strstr(envp[i], self) != NULL)
            has_preload = true;
        environment[used++] = envp[i];
    }
    environment[used++] = inherit;
    if (!has_preload && self != NULL) {
        preload = malloc(strlen(PRELOAD_VARIABLE) + strlen(self) + 2);
        if (preload != NULL) {
            sprintf(preload, "%s=%s", PRELOAD_VARIABLE, self);
            /* Replace an LD_PRELOAD that lacks libmeshtls rather than add a second one. */
            for (size_t i = 0; i < used; i++) {
                if (names_variable(environment[i], PRELOAD_VARIABLE)) {
                    environment[i] = environment[--used];
                    break;
                }
            }
            environment[used++] = preload;
            mt_log_warn("exec of %s: its environment lacked libmeshtls; restored LD_PRELOAD so "
                        "the connections it inherits stay mTLS",
                        collect.program);
        }
    }
    environment[used] = NULL;
    return environment;
}

void mt_inherit_check_program(const char *program, bool search)
{
    if (program == NULL || !mt_log_is_enabled(MT_LOG_WARN))
        return;
    /* The report holds three paths: too large for the stack of every thread that execs. */
    struct mt_check_report *report = malloc(sizeof(*report));
    if (report == NULL)
        return;
    const char *path = search ? NULL : "";
    if (!mt_check_program(program, path, report) && report->verdict != MT_CHECK_NOT_FOUND &&
        report->verdict != MT_CHECK_NOT_EXECUTABLE)
        mt_log_warn("exec of %s: %s Its connections will not be meshed.",
                    report->path[0] != '\0' ? report->path : program, report->sentence);
    free(report);
}

void mt_inherit_environment_free(char **environment, char *const envp[])
{
    if (environment == NULL || environment == (char **)envp)
        return;
    /* Only the two strings this module allocated are ours; the rest belong to the caller. */
    for (size_t i = 0; environment[i] != NULL; i++) {
        bool borrowed = false;
        for (size_t j = 0; envp != NULL && envp[j] != NULL; j++)
            borrowed = borrowed || environment[i] == envp[j];
        if (!borrowed)
            free(environment[i]);
    }
    free(environment);
}

/* Names of one socket (stdin and stdout of an inetd service) become one connection again:
 * the kernel gives every socket its own inode, so equal (device, inode) means the same socket. */
struct alias_search {
    struct stat wanted;
    struct mt_conn *found;
};

static void find_same_socket(int fd, struct mt_conn *conn, void *argument)
{
    struct alias_search *search = argument;
    struct stat status;
    if (search->found == NULL && fstat(fd, &status) == 0 &&
        status.st_dev == search->wanted.st_dev && status.st_ino == search->wanted.st_ino)
        search->found = conn;
}

static void adopt_or_alias(int fd, bool server, const struct sockaddr_storage *destination)
{
    struct alias_search search = {.found = NULL};
    if (fstat(fd, &search.wanted) != 0 || !S_ISSOCK(search.wanted.st_mode))
        return;
    mt_table_for_each_fd(find_same_socket, &search);
    if (search.found != NULL)
        (void)mt_conn_add_alias(search.found, fd);
    else
        mt_intercept_adopt(fd, server, destination);
}

void mt_inherit_adopt(void)
{
    const char *list = getenv(VARIABLE);
    if (list == NULL || list[0] == '\0')
        return;
    char *copy = strdup(list);
    unsetenv(VARIABLE);
    if (copy == NULL)
        return;
    char *cursor = copy;
    while (cursor != NULL && *cursor != '\0') {
        char *next = strchr(cursor, ',');
        if (next != NULL)
            *next++ = '\0';
        char *end = NULL;
        long fd = strtol(cursor, &end, 10);
        struct sockaddr_storage destination;
        bool valid = end != NULL && *end == ':' && fd >= 0 && fd < 0x7fffffff;
        if (valid && end[1] == 's' && end[2] == '\0')
            adopt_or_alias((int)fd, true, NULL);
        else if (valid && end[1] == 'c' && end[2] == '@' && mt_addr_parse(end + 3, &destination))
            adopt_or_alias((int)fd, false, &destination);
        cursor = next;
    }
    free(copy);
}
