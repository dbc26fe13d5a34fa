/*
 * Established sessions carried into a new program through a sealed memfd (see inherit.h, which
 * decides which ones).
 *
 * Before exec (or posix_spawn), each connection the new program gets is exported (conn.h:
 * mt_conn_export, which gives this process's copy away) straight into one memfd, sealed against
 * resizing (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), and the fds naming it are made to
 * survive exec. The memfd is the new program's only: close-on-exec until the start itself, named
 * in MESHTLS_INHERIT, and the preload in the new program reads it before main, wipes it, closes
 * it and continues each session on its fds. If the start fails, the fds are close-on-exec again,
 * the memfd is wiped and closed, and the connections are taken back: they carry on here as they
 * were.
 *
 * Allocation-free, so that a vfork child may use it (process.h): the caller owns the struct (on
 * its stack), the export passes through one mmap'd buffer, wiped and unmapped at seal, before
 * exec replaces the memory a vfork child shares with its parent.
 */
#ifndef MT_CORE_HANDOVER_H
#define MT_CORE_HANDOVER_H

#include <stdbool.h>
#include <sys/types.h>

#include "../util/text.h"
#include "conn.h"

/* The sessions one start carries, and the names each has in the new program. */
#define MT_HANDOVER_SESSIONS_MAX 32
#define MT_HANDOVER_NAMES_MAX 8

struct mt_handover_session {
    struct mt_conn *conn;
    int names[MT_HANDOVER_NAMES_MAX]; /* its fds in the new program */
    unsigned name_count;
    int own[MT_HANDOVER_NAMES_MAX]; /* fds of this process that cross as they are */
    unsigned own_count;
    off_t at; /* where its record starts in the memfd */
};

struct mt_handover {
    struct mt_handover_session sessions[MT_HANDOVER_SESSIONS_MAX];
    size_t count;
    int memfd;
    off_t size;
    unsigned char *scratch; /* one export, mapped at the first add, wiped and unmapped at seal */
    bool from_vfork_child;
};

void mt_handover_init(struct mt_handover *handover, bool from_vfork_child);

/*
 * conn goes to the new program on fd name (own: this process's fd that crosses as it is, made
 * inheritable at seal; -1 when the start itself puts it there, as a posix_spawn dup2 action
 * does). conn is exported at its first name and given away. False when it cannot be (why says
 * so): the caller must then reset it.
 */
bool mt_handover_add(struct mt_handover *handover, int name, int own, struct mt_conn *conn,
                     struct mt_text *why);

/* True when nothing was added. */
bool mt_handover_is_empty(const struct mt_handover *handover);

/*
 * Seals the memfd and lets it and the own fds cross exec. Returns the memfd, or -1 (the fds stay
 * close-on-exec; call mt_handover_reset_all).
 */
int mt_handover_seal(struct mt_handover *handover);

/* The memfd could not be sealed: every connection added is reset (mt_conn_reset), logged. */
void mt_handover_reset_all(struct mt_handover *handover, const char *program);

/* The start failed: every fd close-on-exec again, the memfd wiped and closed, the connections
 * taken back. */
void mt_handover_abandon(struct mt_handover *handover);

/* posix_spawn started the new program as pid: this process's copies stay given away to it; its
 * fd of the memfd is closed (the new program wipes the memfd once it has read it). */
void mt_handover_given(struct mt_handover *handover, pid_t pid);

/* Wipes and unmaps what is still mapped; nothing else (the memfd is the caller's concern). */
void mt_handover_cleanup(struct mt_handover *handover);

/* In the new program: continues every session the memfd holds, then wipes and closes it. */
void mt_handover_adopt(int memfd);

#endif
