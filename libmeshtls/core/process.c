/*
 * fork handlers and vfork detection (see process.h).
 *
 * Owns the pid cached at initialisation and after each fork, the page that tells a fork child
 * whose fork handlers never ran, and the order in which the other modules reset their state in a
 * fork child. Asks the kernel for the pid each time it compares (util/sys.h: never a cached
 * answer), because a vfork child shares the cache with its parent. Must never change a table
 * from a vfork child.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "../util/sys.h"
#include "conn.h"
#include "epoll.h"
#include "inherit.h"
#include "relay.h"
#include "process.h"
#include "members.h"
#include "runtime.h"
#include "table.h"

static pthread_once_t process_once = PTHREAD_ONCE_INIT;
/* Read by every thread's hooks, written by init_once and in a fork child: atomic. */
static _Atomic pid_t cached_pid;

/*
 * One byte, 1 in a process whose fork handlers ran, on a page the kernel empties in every child
 * that gets memory of its own (MADV_WIPEONFORK, Linux 4.14) and leaves as it is in a vfork
 * child, which shares it. A child made by the clone or fork system call rather than glibc's
 * fork (vsftpd isolates each session's processes with clone(CLONE_NEWPID | …)) runs no
 * pthread_atfork handler: by the pid alone it would pass for a vfork child, whose hooks leave the
 * tables alone, and its dup2(connection, 1) would go unrecorded and its writes to fd 1 leave in
 * clear. Such a child finds the byte 0 and runs the fork child's reset at its first hook. The
 * pointer is published by init_once while other threads' hooks may already read it (a hook that
 * finds no connection need not initialise the process first), hence atomic.
 */
static _Atomic unsigned char *_Atomic forked_here;

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
    mt_conn_init_condition(&conn->kernel_io_done);
    mt_conn_mark_shared(conn);
    mt_conn_hold_before_confinement(conn);
}

static void note_handshake_ahead(struct mt_conn *conn, void *argument)
{
    if (conn->tls != NULL && conn->state == MT_CONN_HANDSHAKING && !conn->tls_started)
        *(bool *)argument = true;
}

/* In the parent, before the child exists: so both inherit the relay slots (relay.h). */
static void before_fork(void)
{
    mt_relay_before_fork(cached_pid);
}

static void after_fork_parent(void)
{
    mt_table_for_each(mark_shared, NULL);
}

static void after_fork_child(void)
{
    _Atomic unsigned char *byte = atomic_load(&forked_here);
    if (byte != NULL)
        atomic_store(byte, 1);
    cached_pid = mt_sys_getpid();
    mt_table_after_fork_child();
    mt_runtime_after_fork_child();
    mt_members_after_fork_child();
    /* A privilege-separated server's child handshakes here, perhaps once it has confined itself
     * (seccomp): what the handshake needs of the agent is fetched now. */
    bool handshake_ahead = false;
    mt_table_for_each(note_handshake_ahead, &handshake_ahead);
    if (handshake_ahead)
        mt_metrics_open_in_fork_child();
    mt_epoll_after_fork_child();
    mt_inherit_after_fork_child();
    mt_table_for_each(child_reset, NULL);
}

static void give_back(struct mt_conn *conn, void *argument)
{
    (void)argument;
    mt_conn_give_back(conn);
}

/*
 * exit(): each connection this process holds the stream's state of goes back to its relay slot
 * for the next process. Memory only, besides a record still unsent: a sandboxed child (OpenSSH's
 * pre-authentication child calls exit(0) under seccomp) may make no other system call. Runs
 * before the library's destructors (secret.c wipes at exit), as atexit handlers do.
 */
static void give_back_at_exit(void)
{
    mt_table_for_each(give_back, NULL);
}

static void init_once(void)
{
    cached_pid = mt_sys_getpid();
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page != MAP_FAILED && madvise(page, 4096, MADV_WIPEONFORK) == 0) {
        atomic_store((_Atomic unsigned char *)page, 1);
        atomic_store(&forked_here, (_Atomic unsigned char *)page);
    } else if (page != MAP_FAILED) {
        (void)munmap(page, 4096); /* a kernel before 4.14: such children pass for vfork ones */
    }
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
    atexit(give_back_at_exit);
}

pid_t mt_process_pid(void)
{
    return cached_pid;
}

void mt_process_init(void)
{
    pthread_once(&process_once, init_once);
}

void mt_process_notice_unseen_fork(void)
{
    _Atomic unsigned char *byte = atomic_load_explicit(&forked_here, memory_order_acquire);
    if (byte != NULL && atomic_load_explicit(byte, memory_order_relaxed) == 0)
        after_fork_child();
}

bool mt_process_is_vfork_child(void)
{
    mt_process_notice_unseen_fork();
    return cached_pid != 0 && mt_sys_getpid() != cached_pid;
}
