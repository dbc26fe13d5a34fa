/*
 * fork handlers and vfork detection (see process.h).
 */
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "conn.h"
#include "epoll.h"
#include "inherit.h"
#include "process.h"
#include "runtime.h"
#include "table.h"

static pthread_once_t process_once = PTHREAD_ONCE_INIT;
static pid_t cached_pid;

static pid_t kernel_pid(void)
{
    return (pid_t)syscall(SYS_getpid);
}

static void mark_shared(struct mt_conn *conn, void *argument)
{
    (void)argument;
    mt_conn_mark_shared(conn);
}

static void child_reset(struct mt_conn *conn, void *argument)
{
    (void)argument;
    /* Only the forking thread exists in the child: a lock another thread held is never freed. */
    pthread_mutex_init(&conn->lock, NULL);
    mt_conn_mark_shared(conn);
}

static void after_fork_parent(void)
{
    mt_table_for_each(mark_shared, NULL);
}

static void after_fork_child(void)
{
    cached_pid = kernel_pid();
    mt_table_after_fork_child();
    mt_runtime_after_fork_child();
    mt_epoll_after_fork_child();
    mt_inherit_after_fork_child();
    mt_table_for_each(child_reset, NULL);
}

static void init_once(void)
{
    cached_pid = kernel_pid();
    pthread_atfork(NULL, after_fork_parent, after_fork_child);
}

void mt_process_init(void)
{
    pthread_once(&process_once, init_once);
}

bool mt_process_is_vfork_child(void)
{
    return cached_pid != 0 && kernel_pid() != cached_pid;
}
