/*
 * Established sessions carried across exec (see inherit.h, which decides which ones).
 *
 * Before exec, each connection the new program inherits is exported (conn.h: mt_conn_export)
 * into one memfd, sealed against resizing (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), and the
 * fds naming it are made to survive exec. The memfd is the new program's only: it is inherited
 * through the fd table of the process that execs, named in MESHTLS_INHERIT, and the preload in
 * the new program reads it before main, wipes it, closes it and continues each session on its
 * fds. If exec fails, the fds are close-on-exec again and the memfd is wiped and closed: the
 * connections carry on here as they were.
 */
#ifndef MT_CORE_HANDOVER_H
#define MT_CORE_HANDOVER_H

#include <stdbool.h>

#include "../util/text.h"
#include "conn.h"

struct mt_handover;

struct mt_handover *mt_handover_new(void);

/*
 * fd, a name of conn, goes to the new program: conn is exported at its first name. False when
 * it cannot be (why says so): the caller must then reset it.
 */
bool mt_handover_add(struct mt_handover *handover, int fd, struct mt_conn *conn,
                     struct mt_text *why);

/* True when nothing was added. */
bool mt_handover_is_empty(const struct mt_handover *handover);

/*
 * Writes the exports into a sealed memfd and lets their fds cross exec. Returns the memfd, or -1
 * (the exports could not be written; the fds stay close-on-exec).
 */
int mt_handover_seal(struct mt_handover *handover);

/* The memfd could not be written: every connection added is reset (mt_conn_reset), logged. */
void mt_handover_reset_all(struct mt_handover *handover, const char *program);

/* exec failed: every fd close-on-exec again, the memfd wiped and closed. */
void mt_handover_abandon(struct mt_handover *handover);

/* Wipes the exports and frees; NULL is allowed. */
void mt_handover_free(struct mt_handover *handover);

/* In the new program: continues every session the memfd holds, then wipes and closes it. */
void mt_handover_adopt(int memfd);

#endif
