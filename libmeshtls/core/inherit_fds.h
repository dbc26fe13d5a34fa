/*
 * Between the two halves of exec inheritance (inherit.c, inherit_fds.c): core-internal.
 */
#ifndef MT_CORE_INHERIT_FDS_H
#define MT_CORE_INHERIT_FDS_H

#include <stdbool.h>

/* In a vfork child: fd names one of our connections, told by its socket (a vfork child's fds
 * are not the table's, vfork_fds.h). */
bool mt_inherit_vfork_connection_on(int fd);

#endif
