/*
 * Established sessions carried across exec through a sealed memfd (see handover.h).
 *
 * Owns the memfd's format: for each connection, the number of its fds, the fds, the length of
 * its export and the export (conn.h). Must never leave an export behind in memory or in the
 * memfd once it is used or abandoned: they hold the session's keys.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "../util/log.h"
#include "../util/sys.h"
#include "handover.h"
#include "intercept.h"

/* A connection's names: a handler usually gets it on stdin and stdout, and keeps the original. */
#define NAMES_MAX 8
/* The largest memfd the new program reads: this many sessions. */
#define SESSIONS_MAX 1024

struct handed {
    struct mt_conn *conn;
    int fds[NAMES_MAX];
    uint32_t fd_count;
    unsigned char *state;
    size_t length;
};

struct mt_handover {
    struct handed *sessions;
    size_t count;
    int memfd;
};

struct mt_handover *mt_handover_new(void)
{
    struct mt_handover *handover = calloc(1, sizeof(*handover));
    if (handover != NULL)
        handover->memfd = -1;
    return handover;
}

bool mt_handover_is_empty(const struct mt_handover *handover)
{
    return handover == NULL || handover->count == 0;
}

static struct handed *find(struct mt_handover *handover, const struct mt_conn *conn)
{
    for (size_t i = 0; i < handover->count; i++)
        if (handover->sessions[i].conn == conn)
            return &handover->sessions[i];
    return NULL;
}

bool mt_handover_add(struct mt_handover *handover, int fd, struct mt_conn *conn,
                     struct mt_text *why)
{
    struct handed *handed = find(handover, conn);
    if (handed != NULL) {
        if (handed->fd_count == NAMES_MAX) {
            mt_text_set(why, "more than %d of its fds would cross exec", NAMES_MAX);
            return false;
        }
        handed->fds[handed->fd_count++] = fd;
        return true;
    }
    if (handover->count == SESSIONS_MAX) {
        mt_text_set(why, "more than %d sessions would cross exec", SESSIONS_MAX);
        return false;
    }
    struct handed *grown =
        realloc(handover->sessions, (handover->count + 1) * sizeof(*handover->sessions));
    unsigned char *state = malloc(MT_CONN_EXPORT_MAX);
    if (grown != NULL)
        handover->sessions = grown;
    if (grown == NULL || state == NULL) {
        free(state);
        mt_text_set(why, "out of memory");
        return false;
    }
    size_t length = 0;
    mt_result result = mt_conn_export(conn, state, MT_CONN_EXPORT_MAX, &length);
    if (!mt_result_is_ok(result)) {
        explicit_bzero(state, MT_CONN_EXPORT_MAX);
        free(state);
        mt_text_set(why, "%s", mt_error_message(result.error));
        return false;
    }
    handover->sessions[handover->count++] =
        (struct handed){.conn = conn, .fds = {fd}, .fd_count = 1, .state = state, .length = length};
    return true;
}

/* Writes length bytes at *offset of the memfd. */
static bool put(int memfd, off_t *offset, const void *data, size_t length)
{
    size_t done = 0;
    while (done < length) {
        ssize_t n = mt_sys_pwrite(memfd, (const char *)data + done, length - done, *offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        done += (size_t)n;
        *offset += n;
    }
    return true;
}

/* Overwrites the memfd's size bytes with zeros (sealed against shrinking: not truncated). */
static void wipe_memfd(int memfd, size_t size)
{
    static const unsigned char zeros[4096];
    off_t offset = 0;
    while ((size_t)offset < size) {
        size_t chunk =
            size - (size_t)offset < sizeof(zeros) ? size - (size_t)offset : sizeof(zeros);
        if (!put(memfd, &offset, zeros, chunk))
            return;
    }
}

static void set_close_on_exec(const struct mt_handover *handover, bool close_on_exec)
{
    for (size_t i = 0; i < handover->count; i++) {
        for (uint32_t j = 0; j < handover->sessions[i].fd_count; j++) {
            int fd = handover->sessions[i].fds[j];
            int flags = mt_sys_fcntl(fd, F_GETFD, 0);
            if (flags != -1)
                (void)mt_sys_fcntl(fd, F_SETFD,
                                   close_on_exec ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC);
        }
    }
}

int mt_handover_seal(struct mt_handover *handover)
{
    /* Not close-on-exec: the new program inherits it, and it alone. */
    int memfd = memfd_create("meshtls-handover", MFD_ALLOW_SEALING);
    if (memfd < 0)
        return -1;
    off_t offset = 0;
    bool written = true;
    for (size_t i = 0; i < handover->count && written; i++) {
        const struct handed *handed = &handover->sessions[i];
        uint32_t length = (uint32_t)handed->length;
        written = put(memfd, &offset, &handed->fd_count, sizeof(handed->fd_count)) &&
                  put(memfd, &offset, handed->fds, handed->fd_count * sizeof(int)) &&
                  put(memfd, &offset, &length, sizeof(length)) &&
                  put(memfd, &offset, handed->state, handed->length);
    }
    if (!written ||
        mt_sys_fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        wipe_memfd(memfd, (size_t)offset);
        (void)mt_sys_close(memfd);
        return -1;
    }
    handover->memfd = memfd;
    set_close_on_exec(handover, false);
    return memfd;
}

void mt_handover_reset_all(struct mt_handover *handover, const char *program)
{
    char reason_text[256];
    struct mt_text reason = mt_text_on(reason_text, sizeof(reason_text));
    mt_text_set(&reason, "reset at exec of %s: its TLS session could not be written for it",
                program);
    for (size_t i = 0; i < handover->count; i++)
        mt_conn_reset(handover->sessions[i].conn, mt_text_string(&reason));
}

void mt_handover_abandon(struct mt_handover *handover)
{
    if (handover == NULL || handover->memfd < 0)
        return;
    set_close_on_exec(handover, true);
    struct stat status;
    if (fstat(handover->memfd, &status) == 0)
        wipe_memfd(handover->memfd, (size_t)status.st_size);
    (void)mt_sys_close(handover->memfd);
    handover->memfd = -1;
}

void mt_handover_free(struct mt_handover *handover)
{
    if (handover == NULL)
        return;
    for (size_t i = 0; i < handover->count; i++) {
        explicit_bzero(handover->sessions[i].state, handover->sessions[i].length);
        free(handover->sessions[i].state);
    }
    free(handover->sessions);
    free(handover);
}

/* Continues one session: state at its first fd, its other fds as further names. */
static void adopt_one(const int *fds, uint32_t fd_count, const unsigned char *state, size_t length)
{
    struct mt_conn *conn = mt_intercept_adopt_session(fds[0], state, length);
    if (conn == NULL) {
        /* Not even a failed connection could be recorded: the socket must not stay usable. */
        struct sockaddr unspecified = {.sa_family = AF_UNSPEC};
        (void)mt_sys_connect(fds[0], &unspecified, sizeof(unspecified));
        mt_log_warn("fd %d: reset: its TLS session could not be taken over (out of memory)",
                    fds[0]);
        return;
    }
    for (uint32_t i = 1; i < fd_count; i++)
        (void)mt_conn_add_alias(conn, fds[i]);
    mt_conn_release(conn);
}

void mt_handover_adopt(int memfd)
{
    struct stat status;
    if (fstat(memfd, &status) != 0 || status.st_size <= 0 ||
        (size_t)status.st_size > (size_t)SESSIONS_MAX * (MT_CONN_EXPORT_MAX + 64)) {
        mt_log_warn("inherited hand-over memfd %d unreadable: sessions not taken over", memfd);
        (void)mt_sys_close(memfd);
        return;
    }
    size_t size = (size_t)status.st_size;
    unsigned char *data = malloc(size);
    size_t got = 0;
    while (data != NULL && got < size) {
        ssize_t n = mt_sys_pread(memfd, data + got, size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    wipe_memfd(memfd, size);
    (void)mt_sys_close(memfd);
    size_t at = 0;
    while (data != NULL && got - at >= 2 * sizeof(uint32_t)) {
        uint32_t fd_count;
        memcpy(&fd_count, data + at, sizeof(fd_count));
        at += sizeof(fd_count);
        if (fd_count == 0 || fd_count > NAMES_MAX || got - at < fd_count * sizeof(int) + 4)
            break;
        int fds[NAMES_MAX];
        memcpy(fds, data + at, fd_count * sizeof(int));
        at += fd_count * sizeof(int);
        uint32_t length;
        memcpy(&length, data + at, sizeof(length));
        at += sizeof(length);
        if (length > got - at)
            break;
        adopt_one(fds, fd_count, data + at, length);
        at += length;
    }
    if (data != NULL)
        explicit_bzero(data, size);
    free(data);
}
