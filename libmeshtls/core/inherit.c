/*
 * Handing connections over to a new program (see inherit.h).
 *
 * Owns MESHTLS_INHERIT (written before exec, read once after it), the application's exec wishes
 * for fds whose sessions cannot cross exec, and the posix_spawn dup2 actions remembered until the
 * spawn. Must never let a started session reach a new program but through its hand-over (it
 * would carry the session's socket in clear), must never allocate on the way to exec (a vfork
 * child starts programs too), nor touch the parent's tables from a vfork child.
 */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../exec/check.h"
#include "../util/addr.h"
#include "../util/log.h"
#include "../util/sys.h"
#include "../util/text.h"
#include "conn.h"
#include "handover.h"
#include "inherit.h"
#include "inherit_fds.h"
#include "intercept.h"
#include "process.h"
#include "runtime.h"
#include "table.h"
#include "variant.h"
#include "vfork_fds.h"

#define VARIABLE "MESHTLS_INHERIT"
#define PRELOAD_VARIABLE "LD_PRELOAD"
/* "MESHTLS_INHERIT=", which the list of entries follows in the same string. */
#define PREFIX_LENGTH (sizeof(VARIABLE "=") - 1)

/* The fds a start closes because their sessions cannot cross it, for its one log line. */
#define CLOSED_TEXT_CAPACITY 160

/* The reason a reset at exec gives: the program's path and why it cannot be followed. */
#define RESET_REASON_MAX 1024

/* Why the loader cannot open libmeshtls for the new program: its path, the uid and the error. */
#define PRELOAD_REASON_MAX 512

/* What every session's "fd:h" entries and the memfd's take at most: never crowded out. */
#define SESSION_ENTRIES_ROOM (MT_HANDOVER_SESSIONS_MAX * MT_HANDOVER_NAMES_MAX * 12 + 32)

struct collect {
    struct mt_inherit_exec *exec;
    const char *program;
    enum mt_inherit_start start;
    bool from_vfork_child;
    struct mt_check_report *report; /* the program's (mmap'd), once a session needed it */
    bool report_failed;
    char unreadable_text[PRELOAD_REASON_MAX]; /* why the loader cannot open libmeshtls, or "" */
    char closed_text[CLOSED_TEXT_CAPACITY];
    struct mt_text closed; /* "0, 1", over closed_text */
    size_t closed_count;
};

static bool is_spawn(const struct collect *collect)
{
    return collect->start == MT_INHERIT_SPAWN_PATH || collect->start == MT_INHERIT_SPAWN_SEARCH;
}

/* fd is closed in the new program, against the application's wish: name it in the log line. */
static void note_closed(struct collect *collect, int fd)
{
    /* Whole numbers only: once the text is nearly full, further fds are counted, not named. */
    if (collect->closed.length + 16 < collect->closed.capacity)
        mt_text_append(&collect->closed, "%s%d", collect->closed_count > 0 ? ", " : "", fd);
    collect->closed_count++;
}

/*
 * The loader opens LD_PRELOAD's libraries with the credentials the new program starts with,
 * which are this process's (a set-user-ID program is judged by mt_check_program). A server that
 * drops to an unprivileged user before exec (Python's http.server runs CGI scripts as nobody)
 * may find libmeshtls unreadable: the loader then skips it with a message and starts the program
 * unmeshed. Says why in collect->unreadable_text.
 */
static void judge_preload_access(struct collect *collect)
{
    const char *self = mt_variant_own_path();
    if (self == NULL || faccessat(AT_FDCWD, self, R_OK, AT_EACCESS) == 0)
        return;
    int error = errno;
    snprintf(collect->unreadable_text, sizeof(collect->unreadable_text),
             "uid %d cannot read %s (%s), so the loader would start it without libmeshtls.",
             (int)geteuid(), self, strerror(error));
}

/*
 * The program's report, looked up once; NULL when it cannot be had (no memory, fexecve). Mapped,
 * not allocated: three paths are too large for the stack of every thread that execs, and a vfork
 * child may not call malloc.
 */
static const struct mt_check_report *program_report(struct collect *collect)
{
    if (collect->report != NULL || collect->report_failed || collect->start == MT_INHERIT_EXEC_FD)
        return collect->report;
    void *report = mmap(NULL, sizeof(*collect->report), PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (report == MAP_FAILED) {
        collect->report_failed = true;
        return NULL;
    }
    collect->report = report;
    bool search =
        collect->start == MT_INHERIT_EXEC_SEARCH || collect->start == MT_INHERIT_SPAWN_SEARCH;
    if (mt_check_program(collect->program, search ? NULL : "", collect->report))
        judge_preload_access(collect);
    return collect->report;
}

/* Why the new program will run without libmeshtls (a sentence), or NULL when it will load it or
 * cannot be judged (fexecve). */
static const char *unmeshed_because(struct collect *collect)
{
    const struct mt_check_report *report = program_report(collect);
    if (report == NULL)
        return NULL;
    if (mt_variant_is_other(report))
        return "it starts with the other C library, whose build of libmeshtls cannot take over "
               "a TLS session from this one.";
    if (report->verdict != MT_CHECK_INTERPOSABLE && !mt_variant_is_own_musl(report))
        return report->sentence;
    return collect->unreadable_text[0] != '\0' ? collect->unreadable_text : NULL;
}

/*
 * A start of a new program that will run: a session it would get and cannot follow is reset
 * first (a program that cannot be found or executed leaves the start failing, and this process
 * carrying on with its connections).
 */
static bool will_run(struct collect *collect)
{
    const struct mt_check_report *report = program_report(collect);
    return report == NULL ||
           (report->verdict != MT_CHECK_NOT_FOUND && report->verdict != MT_CHECK_NOT_EXECUTABLE);
}

/* Resets conn, which fd would carry into the new program, saying why in its one log line; own:
 * a name of it in this process (-1: the table's). */
static void reset_for_start(struct collect *collect, int fd, int own, struct mt_conn *conn,
                            const char *why)
{
    const struct mt_check_report *report = program_report(collect);
    const char *unmeshed = unmeshed_because(collect);
    char reason_text[RESET_REASON_MAX];
    struct mt_text reason = mt_text_on(reason_text, sizeof(reason_text));
    mt_text_set(&reason, "reset at %s of %s, which would get it on fd %d: ",
                is_spawn(collect) ? "posix_spawn" : "exec",
                report != NULL && report->path[0] != '\0' ? report->path : collect->program, fd);
    if (unmeshed != NULL)
        mt_text_append(&reason, "%s", unmeshed);
    else
        mt_text_append(&reason, "its TLS session cannot follow (%s).", why);
    mt_text_append(&reason, " Its bytes would leave in clear.");
    mt_conn_reset_on(conn, own, mt_text_string(&reason));
}

/*
 * Carries conn's session into the new program on fd name (own: this process's fd that crosses as
 * it is, or -1): an established session, into a program the preload loads into (exec/check.c).
 * False, with why, when it cannot.
 */
static bool hand_over(struct collect *collect, int name, int own, struct mt_conn *conn,
                      struct mt_text *why)
{
    const struct mt_check_report *report = program_report(collect);
    if (!mt_tls_handover_is_supported()) {
        mt_text_set(why, "this build's wolfSSL cannot export sessions");
        return false;
    }
    if (report == NULL || unmeshed_because(collect) != NULL) {
        mt_text_set(why, "the new program cannot be checked");
        return false;
    }
    return mt_handover_add(&collect->exec->handover, name, own, conn, why);
}

/* Appends an entry ("fd:s", "fd:c@address", "fd:h", "memfd:m") to MESHTLS_INHERIT's list;
 * reserve: the room to leave for the entries that must never be crowded out. */
static void append_entry(struct collect *collect, size_t reserve, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static void append_entry(struct collect *collect, size_t reserve, const char *format, ...)
{
    struct mt_inherit_exec *exec = collect->exec;
    char entry[32 + MT_ADDR_TEXT_MAX];
    size_t n = 0;
    if (exec->length > PREFIX_LENGTH)
        entry[n++] = ',';
    va_list arguments;
    va_start(arguments, format);
    int written = vsnprintf(entry + n, sizeof(entry) - n, format, arguments);
    va_end(arguments);
    if (written <= 0 || (size_t)written >= sizeof(entry) - n)
        return;
    n += (size_t)written;
    if (exec->length + n + 1 + reserve > sizeof(exec->list))
        return;
    memcpy(exec->list + exec->length, entry, n + 1);
    exec->length += n;
}

/*
 * A connection whose handshake has not started (true; false for any other): the new program
 * gets it on fd name and starts the handshake itself, in the role and towards the destination
 * written for it; own as in hand_over. When no libmeshtls will load into that program (a static
 * handler that inetd starts with the accepted connection, a program the loader cannot open
 * libmeshtls for), the connection is reset first: the program would speak to the peer in clear.
 * A vfork child's reset is its parent's too (one socket): the parent's copy was bound for the
 * same program.
 */
static bool pass_if_fresh(struct collect *collect, int name, int own, struct mt_conn *conn)
{
    pthread_mutex_lock(&conn->lock);
    bool fresh = !conn->tls_started && conn->state != MT_CONN_FAILED;
    char role = conn->role == MT_TLS_SERVER ? 's' : 'c';
    /* A client's destination travels along: its connect may still be in flight. */
    char destination[MT_ADDR_TEXT_MAX + 1] = "";
    if (conn->role == MT_TLS_CLIENT) {
        destination[0] = '@';
        mt_addr_compact_format(&conn->peer, destination + 1, sizeof(destination) - 1);
    }
    pthread_mutex_unlock(&conn->lock);
    if (!fresh)
        return false;
    if (will_run(collect) && unmeshed_because(collect) != NULL) {
        reset_for_start(collect, name, own, conn, "no session to carry");
        return true;
    }
    /* A vfork child's copies of a connection are held close-on-exec with the wish noted
     * (vfork_fds.h); one that is passed crosses as it is. */
    if (collect->from_vfork_child && own >= 0) {
        int flags = mt_sys_fcntl(own, F_GETFD, 0);
        if (flags != -1 && (flags & FD_CLOEXEC))
            (void)mt_sys_fcntl(own, F_SETFD, flags & ~FD_CLOEXEC);
    }
    append_entry(collect, SESSION_ENTRIES_ROOM, "%d:%c%s", name, role, destination);
    return true;
}

/*
 * A started session the new program gets on fd name: carried over, or (a program that will run
 * and cannot follow it) reset first. own as in hand_over.
 */
static void pass_session(struct collect *collect, int name, int own, struct mt_conn *conn)
{
    pthread_mutex_lock(&conn->lock);
    bool established = conn->state == MT_CONN_ESTABLISHED;
    bool started = conn->tls_started;
    pthread_mutex_unlock(&conn->lock);
    if (pass_if_fresh(collect, name, own, conn) || !started)
        return; /* passed, or failed before its handshake: nothing to carry */
    if (!will_run(collect))
        return;
    char why_text[160];
    struct mt_text why = mt_text_on(why_text, sizeof(why_text));
    mt_text_set(&why, "it is not established");
    if (established && hand_over(collect, name, own, conn, &why)) {
        append_entry(collect, 0, "%d:h", name);
        return;
    }
    reset_for_start(collect, name, own, conn, mt_text_string(&why));
}

static void collect_one(int fd, struct mt_conn *conn, void *argument)
{
    struct collect *collect = argument;
    int descriptor_flags = mt_sys_fcntl(fd, F_GETFD, 0);
    bool wished = mt_table_exec_wish(fd);
    if (descriptor_flags == -1 || ((descriptor_flags & FD_CLOEXEC) && !wished))
        return;
    if (pass_if_fresh(collect, fd, fd, conn))
        return;
    /* Held close-on-exec since its session started; made so now should anything (a raw system
     * call) have cleared it. */
    if (!(descriptor_flags & FD_CLOEXEC))
        (void)mt_sys_fcntl(fd, F_SETFD, descriptor_flags | FD_CLOEXEC);
    /* A vfork child's sessions are told by their sockets (collect_vfork_one). */
    if (collect->from_vfork_child)
        return;
    if (is_spawn(collect)) {
        /* The caller goes on: a program that cannot follow finds the fd closed. */
        char why_text[160];
        struct mt_text why = mt_text_on(why_text, sizeof(why_text));
        if (!hand_over(collect, fd, fd, conn, &why))
            note_closed(collect, fd);
        else
            append_entry(collect, 0, "%d:h", fd);
        return;
    }
    pass_session(collect, fd, fd, conn);
}

/* An fd of a vfork child that names a started session and is to be kept open across exec. */
static void collect_vfork_one(int fd, struct mt_conn *conn, void *argument)
{
    pass_session(argument, fd, fd, conn);
}

/*
 * The sessions to carry are exported: the memfd that holds them is named in the list, or, if it
 * could not be sealed, each of them is reset (their fds stay close-on-exec).
 */
static void seal_handover(struct collect *collect)
{
    struct mt_handover *handover = &collect->exec->handover;
    if (mt_handover_is_empty(handover)) {
        mt_handover_cleanup(handover);
        return;
    }
    int memfd = mt_handover_seal(handover);
    if (memfd >= 0) {
        append_entry(collect, 0, "%d:m", memfd);
        return;
    }
    mt_log_warn("start of %s: the sessions it would get could not be written for it (%s); "
                "resetting them",
                collect->program, strerror(errno));
    mt_handover_reset_all(handover, collect->program);
}

static bool names_variable(const char *entry, const char *name)
{
    size_t length = strlen(name);
    return strncmp(entry, name, length) == 0 && entry[length] == '=';
}

static void collect_spawn_dups(struct collect *collect, const posix_spawn_file_actions_t *actions);

/* The LD_PRELOAD entry of environment (NULL-terminated), or NULL. */
static char **preload_entry(char **environment)
{
    for (size_t i = 0; environment != NULL && environment[i] != NULL; i++)
        if (names_variable(environment[i], PRELOAD_VARIABLE))
            return &environment[i];
    return NULL;
}

/* The LD_PRELOAD entry the program of report needs instead of entry, in exec->variant (NULL:
 * entry is right). */
static const char *switched_preload(struct mt_inherit_exec *exec,
                                    const struct mt_check_report *report, const char *entry)
{
    if (report == NULL || entry == NULL)
        return NULL;
    return mt_variant_preload_entry(report, entry, exec->variant, sizeof(exec->variant));
}

/* envp with MESHTLS_INHERIT when it hands anything over (and LD_PRELOAD, when it lacks
 * libmeshtls), and with LD_PRELOAD naming the build of libmeshtls the program of report needs,
 * in room, which has room for two more entries and the end. */
static char **extend_environment(struct mt_inherit_exec *exec, char *const envp[], char **room,
                                 const struct mt_check_report *report)
{
    size_t used = 0;
    bool has_preload = false;
    const char *self = mt_variant_own_path();
    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++) {
        if (names_variable(envp[i], VARIABLE))
            continue;
        if (names_variable(envp[i], PRELOAD_VARIABLE) && self != NULL &&
            strstr(envp[i], self) != NULL)
            has_preload = true;
        room[used++] = envp[i];
    }
    bool hands_over = exec->length > PREFIX_LENGTH;
    if (hands_over)
        room[used++] = exec->list;
    if (hands_over && !has_preload && self != NULL &&
        snprintf(exec->preload, sizeof(exec->preload), "%s=%s", PRELOAD_VARIABLE, self) <
            (int)sizeof(exec->preload)) {
        /* Replace an LD_PRELOAD that lacks libmeshtls rather than add a second one. */
        for (size_t i = 0; i < used; i++) {
            if (names_variable(room[i], PRELOAD_VARIABLE)) {
                room[i] = room[--used];
                break;
            }
        }
        room[used++] = exec->preload;
        mt_log_warn("exec of %s: its environment lacked libmeshtls; restored LD_PRELOAD so "
                    "the connections it inherits stay mTLS",
                    exec->program);
    }
    room[used] = NULL;
    char **preload = preload_entry(room);
    const char *switched = switched_preload(exec, report, preload != NULL ? *preload : NULL);
    if (switched != NULL)
        *preload = (char *)switched;
    return room;
}

/* Room for envp and three more entries: exec's own, or allocated; NULL in a vfork child for an
 * environment too large (nothing may be allocated there). */
static char **environment_room(struct mt_inherit_exec *exec, char *const envp[],
                               bool from_vfork_child)
{
    size_t count = 0;
    while (envp != NULL && envp[count] != NULL)
        count++;
    if (count + 3 <= MT_INHERIT_ROOM)
        return exec->room;
    if (from_vfork_child)
        return NULL;
    exec->allocated_room = calloc(count + 3, sizeof(char *));
    return exec->allocated_room;
}

char **mt_inherit_environment(struct mt_inherit_exec *exec, const char *program,
                              enum mt_inherit_start start,
                              const posix_spawn_file_actions_t *actions, char *const envp[])
{
    bool from_vfork_child = mt_process_is_vfork_child();
    exec->program = program != NULL ? program : "?";
    exec->allocated_room = NULL;
    mt_handover_init(&exec->handover, from_vfork_child);
    memcpy(exec->list, VARIABLE "=", PREFIX_LENGTH + 1);
    exec->length = PREFIX_LENGTH;
    struct collect collect = {.exec = exec,
                              .program = exec->program,
                              .start = start,
                              .from_vfork_child = from_vfork_child};
    collect.closed = mt_text_on(collect.closed_text, sizeof(collect.closed_text));
    if (!mt_table_is_empty()) {
        mt_table_for_each_fd(collect_one, &collect);
        if (from_vfork_child)
            mt_vfork_fds_for_each_kept(collect_vfork_one, &collect);
        if (is_spawn(&collect) && actions != NULL)
            collect_spawn_dups(&collect, actions);
    }
    /* The program needs the other build of libmeshtls than the one its LD_PRELOAD names? */
    char **preload = preload_entry((char **)envp);
    bool switches = preload != NULL && start != MT_INHERIT_EXEC_FD &&
                    switched_preload(exec, program_report(&collect), *preload) != NULL;
    char **room = environment_room(exec, envp, from_vfork_child);
    if (room == NULL && !mt_handover_is_empty(&exec->handover)) {
        mt_log_warn("start of %s: its environment is too large to extend in a vfork child; "
                    "resetting the sessions it would get",
                    exec->program);
        mt_handover_reset_all(&exec->handover, exec->program);
    }
    seal_handover(&collect);
    if (collect.closed_count > 0)
        mt_log_warn("exec of %s: %s %s of %s cannot cross exec; closed in the new program, "
                    "which would otherwise write to %s in clear",
                    collect.program, collect.closed_count > 1 ? "fds" : "fd",
                    mt_text_string(&collect.closed),
                    collect.closed_count > 1 ? "mTLS sessions" : "an mTLS session",
                    collect.closed_count > 1 ? "them" : "it");
    char **environment = (char **)envp;
    if ((exec->length > PREFIX_LENGTH || switches) && room != NULL)
        environment = extend_environment(exec, envp, room, collect.report);
    if (collect.report != NULL)
        (void)munmap(collect.report, sizeof(*collect.report));
    return environment;
}

void mt_inherit_check_program(const char *program, bool search)
{
    if (program == NULL || !mt_log_is_enabled(MT_LOG_WARN))
        return;
    /* The report holds three paths: too large for the stack of every thread that execs, and a
     * vfork child may not call malloc. */
    struct mt_check_report *report =
        mmap(NULL, sizeof(*report), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (report == MAP_FAILED)
        return;
    const char *path = search ? NULL : "";
    if (!mt_check_program(program, path, report) && report->verdict != MT_CHECK_NOT_FOUND &&
        report->verdict != MT_CHECK_NOT_EXECUTABLE && !mt_variant_serves(report))
        mt_log_warn("exec of %s: %s Its connections will not be meshed.",
                    report->path[0] != '\0' ? report->path : program, report->sentence);
    (void)munmap(report, sizeof(*report));
}

void mt_inherit_start_failed(struct mt_inherit_exec *exec)
{
    /* The sessions carry on here. */
    mt_handover_abandon(&exec->handover);
    free(exec->allocated_room);
    exec->allocated_room = NULL;
}

void mt_inherit_spawned(struct mt_inherit_exec *exec, pid_t pid)
{
    mt_handover_given(&exec->handover, pid);
    free(exec->allocated_room);
    exec->allocated_room = NULL;
}

/*
 * posix_spawn file actions that put an fd on a new program's fd: the dup2 is glibc's own, in the
 * child, out of reach of any hook. Whatever the fd is when the action is added (a socket not yet
 * connected, a connection not yet started), it is at the spawn that it counts: a started session
 * then is handed over to the new program on the target fd, or reset (mt_inherit_environment).
 * Every dup2 action is remembered, until its actions object is initialised again or destroyed;
 * one that cannot be remembered is refused (ENOMEM), never let through unchecked.
 */
struct spawn_dup {
    const posix_spawn_file_actions_t *actions;
    int fd;
    int target;
};

static struct spawn_dup *spawn_dups;
static size_t spawn_dup_count;
static size_t spawn_dup_capacity;
static pthread_mutex_t spawn_lock = PTHREAD_MUTEX_INITIALIZER;

void mt_inherit_after_fork_child(void)
{
    pthread_mutex_init(&spawn_lock, NULL);
}

static bool remember_spawn_dup(const posix_spawn_file_actions_t *actions, int fd, int target)
{
    bool remembered = true;
    pthread_mutex_lock(&spawn_lock);
    if (spawn_dup_count == spawn_dup_capacity) {
        size_t capacity = spawn_dup_capacity * 2 + 8;
        struct spawn_dup *grown = realloc(spawn_dups, capacity * sizeof(*grown));
        if (grown == NULL) {
            remembered = false;
            goto out;
        }
        spawn_dups = grown;
        spawn_dup_capacity = capacity;
    }
    spawn_dups[spawn_dup_count++] = (struct spawn_dup){actions, fd, target};
out:
    pthread_mutex_unlock(&spawn_lock);
    return remembered;
}

enum mt_inherit_spawn_dup mt_inherit_spawn_dup(const posix_spawn_file_actions_t *actions, int fd,
                                               int target)
{
    /* A vfork child must leave the parent's memory alone: nothing can be remembered there. */
    if (mt_process_is_vfork_child()) {
        if (!mt_inherit_vfork_connection_on(fd))
            return MT_INHERIT_SPAWN_DUP;
        mt_log_warn("posix_spawn: the mTLS session on fd %d cannot be handed over from a vfork "
                    "child; fd %d is closed in the new program instead of carrying it in clear",
                    fd, target);
        return MT_INHERIT_SPAWN_CLOSE_TARGET;
    }
    return remember_spawn_dup(actions, fd, target) ? MT_INHERIT_SPAWN_DUP : MT_INHERIT_SPAWN_REFUSE;
}

void mt_inherit_spawn_actions_forget(const posix_spawn_file_actions_t *actions)
{
    if (mt_process_is_vfork_child())
        return;
    pthread_mutex_lock(&spawn_lock);
    size_t kept = 0;
    for (size_t i = 0; i < spawn_dup_count; i++)
        if (spawn_dups[i].actions != actions)
            spawn_dups[kept++] = spawn_dups[i];
    spawn_dup_count = kept;
    pthread_mutex_unlock(&spawn_lock);
}

/*
 * The dup2 actions of a spawn whose fd is a started session: each is passed to the new program on
 * its target, in the order of the actions (a session's several targets are names of one
 * hand-over). The lock is held throughout: no hook takes it while it holds a connection's.
 */
static void collect_spawn_dups(struct collect *collect, const posix_spawn_file_actions_t *actions)
{
    pthread_mutex_lock(&spawn_lock);
    for (size_t i = 0; i < spawn_dup_count; i++) {
        if (spawn_dups[i].actions != actions)
            continue;
        struct mt_conn *conn = mt_table_acquire(spawn_dups[i].fd);
        if (conn != NULL)
            pass_session(collect, spawn_dups[i].target, -1, conn);
        mt_conn_release(conn);
    }
    pthread_mutex_unlock(&spawn_lock);
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

static void adopt_or_alias(int fd, enum mt_intercept_direction direction,
                           const struct sockaddr_storage *destination)
{
    struct alias_search search = {.found = NULL};
    if (fstat(fd, &search.wanted) != 0 || !S_ISSOCK(search.wanted.st_mode))
        return;
    mt_table_for_each_fd(find_same_socket, &search);
    if (search.found != NULL)
        (void)mt_conn_add_alias(search.found, fd);
    else
        mt_intercept_adopt(fd, direction, destination, MT_INTERCEPT_BY_POLICY);
}

/*
 * fd was named as carrying a session ("fd:h") that the memfd did not give this program: its
 * socket must not stay usable in clear.
 */
static void reset_unclaimed(int fd)
{
    struct mt_conn *conn = mt_table_acquire(fd);
    mt_conn_release(conn);
    struct stat status;
    if (conn != NULL || fstat(fd, &status) != 0 || !S_ISSOCK(status.st_mode))
        return;
    struct sockaddr unspecified = {.sa_family = AF_UNSPEC};
    (void)mt_sys_connect(fd, &unspecified, sizeof(unspecified));
    mt_log_warn("fd %d: reset: the TLS session handed to this program for it was not found", fd);
}

/* The sessions carried across exec: the memfd first, then the fds it should have covered. */
static void adopt_sessions(const char *list)
{
    for (const char *cursor = list; cursor != NULL && *cursor != '\0';) {
        char *end = NULL;
        long fd = strtol(cursor, &end, 10);
        if (end != NULL && end[0] == ':' && end[1] == 'm' && fd >= 0 && fd < 0x7fffffff)
            mt_handover_adopt((int)fd);
        cursor = strchr(cursor, ',');
        cursor = cursor != NULL ? cursor + 1 : NULL;
    }
    for (const char *cursor = list; cursor != NULL && *cursor != '\0';) {
        char *end = NULL;
        long fd = strtol(cursor, &end, 10);
        if (end != NULL && end[0] == ':' && end[1] == 'h' && fd >= 0 && fd < 0x7fffffff)
            reset_unclaimed((int)fd);
        cursor = strchr(cursor, ',');
        cursor = cursor != NULL ? cursor + 1 : NULL;
    }
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
    adopt_sessions(copy);
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
            adopt_or_alias((int)fd, MT_INTERCEPT_INBOUND, NULL);
        else if (valid && end[1] == 'c' && end[2] == '@' && mt_addr_parse(end + 3, &destination))
            adopt_or_alias((int)fd, MT_INTERCEPT_OUTBOUND, &destination);
        cursor = next;
    }
    free(copy);
}
