/*
 * A vfork child's descriptors: which of its fds name a started session, and which it asked to
 * keep open across exec.
 *
 * A vfork child (process.h) has a descriptor table of its own but its parent's memory: the
 * connection table describes the parent's fds, and the child's dup2 (Python's subprocess puts
 * the connection on stdout so) is not recorded there. A session's fds are told by the socket's
 * inode instead (mt_conn's socket_inode), and what the child asks for them (dup2, dup3, F_SETFD,
 * FIONCLEX: whether to keep them open across exec, which the hooks do not let reach the kernel)
 * is noted in a small record of the vforking thread's own: thread-local, so no other thread of
 * the parent reads or writes it, and tagged with the child's pid, so that a record a child left
 * (it exited without exec) means nothing to the next one. No lock, no allocation.
 */
#ifndef MT_CORE_VFORK_FDS_H
#define MT_CORE_VFORK_FDS_H

#include <stdbool.h>

#include "conn.h"

/* The started session on fd (by its socket's inode), with a reference for the caller, or NULL. */
struct mt_conn *mt_vfork_fds_session(int fd);

/* The child asked that fd, a started session's, be kept open across exec (keep_open) or not. */
void mt_vfork_fds_note_wish(int fd, bool keep_open);

/* What the child asked for fd: 1 keep open, 0 close at exec, -1 nothing. */
int mt_vfork_fds_wish(int fd);

/*
 * Calls visit for each fd of this vfork child that names a started session and that the
 * application wants kept open across exec (the child's own wish, else the parent's as the table
 * remembers it), with the session (a reference held during the call).
 */
void mt_vfork_fds_for_each_kept(void (*visit)(int fd, struct mt_conn *conn, void *argument),
                                void *argument);

#endif
