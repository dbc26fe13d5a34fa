/*
 * A vfork child's descriptors (see vfork_fds.h).
 *
 * Owns the thread-local record of what a vfork child asked for its sessions' fds. Must never
 * allocate, take a lock, or change the connection table: it runs in the parent's memory while
 * the parent's other threads run.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "../util/sys.h"
#include "table.h"
#include "vfork_fds.h"

/* Enough for a child that puts one connection on stdin, stdout and stderr and passes a few
 * more; a wish beyond it is not noted, and that fd stays close-on-exec (closed, never clear). */
#define WISHES_MAX 16

struct wish {
    int fd;
    bool keep_open;
};

static _Thread_local struct {
    pid_t pid; /* the vfork child that made the record */
    unsigned count;
    struct wish wishes[WISHES_MAX];
} record;

/* The record, emptied first if another (earlier) child of this thread made it. */
static void claim_record(void)
{
    pid_t pid = mt_sys_getpid();
    if (record.pid != pid) {
        record.pid = pid;
        record.count = 0;
    }
}

struct mt_conn *mt_vfork_fds_session(int fd)
{
    struct stat status;
    if (fd < 0 || fstat(fd, &status) != 0 || !S_ISSOCK(status.st_mode))
        return NULL;
    return mt_table_acquire_by_socket(status.st_ino);
}

void mt_vfork_fds_note_wish(int fd, bool keep_open)
{
    claim_record();
    for (unsigned i = 0; i < record.count; i++) {
        if (record.wishes[i].fd == fd) {
            record.wishes[i].keep_open = keep_open;
            return;
        }
    }
    if (record.count < WISHES_MAX)
        record.wishes[record.count++] = (struct wish){fd, keep_open};
}

int mt_vfork_fds_wish(int fd)
{
    claim_record();
    for (unsigned i = 0; i < record.count; i++)
        if (record.wishes[i].fd == fd)
            return record.wishes[i].keep_open ? 1 : 0;
    return -1;
}

struct walk {
    void (*visit)(int fd, struct mt_conn *conn, void *argument);
    void *argument;
};

static void visit_session(struct walk *walk, int fd)
{
    struct mt_conn *conn = mt_vfork_fds_session(fd);
    if (conn != NULL)
        walk->visit(fd, conn, walk->argument);
    mt_conn_release(conn);
}

/* A table fd the parent wished kept open, and that the child left alone. */
static void visit_parent_wish(int fd, struct mt_conn *conn, void *argument)
{
    (void)conn;
    if (mt_table_exec_wish(fd) && mt_vfork_fds_wish(fd) == -1)
        visit_session(argument, fd);
}

void mt_vfork_fds_for_each_kept(void (*visit)(int fd, struct mt_conn *conn, void *argument),
                                void *argument)
{
    struct walk walk = {visit, argument};
    claim_record();
    for (unsigned i = 0; i < record.count; i++)
        if (record.wishes[i].keep_open)
            visit_session(&walk, record.wishes[i].fd);
    mt_table_for_each_fd(visit_parent_wish, &walk);
}
