/*
 * Established sessions carried into a new program through a sealed memfd (see handover.h).
 *
 * Owns the memfd's format: for each connection a record header (the number of its fds in the new
 * program, those fds, the length of its export) and the export (conn.h). Must never leave an
 * export behind in memory or in the memfd once it is used or abandoned (they hold the session's
 * keys), and must never allocate with malloc (a vfork child uses it).
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

struct record {
    uint32_t name_count;
    int32_t names[MT_HANDOVER_NAMES_MAX];
    uint32_t length;
};

/* The largest memfd the new program reads. */
#define MEMFD_MAX ((size_t)MT_HANDOVER_SESSIONS_MAX * (sizeof(struct record) + MT_CONN_EXPORT_MAX))

void mt_handover_init(struct mt_handover *handover, bool from_vfork_child)
{
    handover->count = 0;
    handover->memfd = -1;
    handover->size = 0;
    handover->scratch = NULL;
    handover->from_vfork_child = from_vfork_child;
}

bool mt_handover_is_empty(const struct mt_handover *handover)
{
    return handover == NULL || handover->count == 0;
}

static struct mt_handover_session *find(struct mt_handover *handover, const struct mt_conn *conn)
{
    for (size_t i = 0; i < handover->count; i++)
        if (handover->sessions[i].conn == conn)
            return &handover->sessions[i];
    return NULL;
}

/* Writes length bytes at offset of the memfd. */
static bool put(int memfd, off_t offset, const void *data, size_t length)
{
    size_t done = 0;
    while (done < length) {
        ssize_t n =
            mt_sys_pwrite(memfd, (const char *)data + done, length - done, offset + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        done += (size_t)n;
    }
    return true;
}

/* Overwrites the memfd's size bytes with zeros (sealed against shrinking: not truncated). */
static void wipe_memfd(int memfd, size_t size)
{
    static const unsigned char zeros[4096];
    for (size_t offset = 0; offset < size;) {
        size_t chunk = size - offset < sizeof(zeros) ? size - offset : sizeof(zeros);
        if (!put(memfd, (off_t)offset, zeros, chunk))
            return;
        offset += chunk;
    }
}

static void unmap_scratch(struct mt_handover *handover)
{
    if (handover->scratch == NULL)
        return;
    explicit_bzero(handover->scratch, MT_CONN_EXPORT_MAX);
    (void)munmap(handover->scratch, MT_CONN_EXPORT_MAX);
    handover->scratch = NULL;
}

/* The memfd (close-on-exec until the start) and the export buffer, made at the first add. */
static bool prepare(struct mt_handover *handover)
{
    if (handover->memfd < 0)
        handover->memfd = memfd_create("meshtls-handover", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (handover->scratch == NULL) {
        void *scratch = mmap(NULL, MT_CONN_EXPORT_MAX, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        handover->scratch = scratch != MAP_FAILED ? scratch : NULL;
    }
    return handover->memfd >= 0 && handover->scratch != NULL;
}

static bool write_record(struct mt_handover *handover, const struct mt_handover_session *session,
                         size_t length)
{
    struct record record = {.name_count = session->name_count, .length = (uint32_t)length};
    for (unsigned i = 0; i < session->name_count; i++)
        record.names[i] = session->names[i];
    return put(handover->memfd, session->at, &record, sizeof(record));
}

/* A further name of a session already exported: its record's header says so. */
static bool add_name(struct mt_handover *handover, struct mt_handover_session *session, int name,
                     int own, struct mt_text *why)
{
    if (session->name_count == MT_HANDOVER_NAMES_MAX) {
        mt_text_set(why, "more than %d of its fds would cross exec", MT_HANDOVER_NAMES_MAX);
        return false;
    }
    for (unsigned i = 0; i < session->name_count; i++)
        if (session->names[i] == name)
            return true;
    struct record record;
    ssize_t n = mt_sys_pread(handover->memfd, &record, sizeof(record), session->at);
    session->names[session->name_count++] = name;
    if (own >= 0)
        session->own[session->own_count++] = own;
    if (n != (ssize_t)sizeof(record) || !write_record(handover, session, record.length)) {
        mt_text_set(why, "its hand-over could not be written (%s)", strerror(errno));
        return false;
    }
    return true;
}

bool mt_handover_add(struct mt_handover *handover, int name, int own, struct mt_conn *conn,
                     struct mt_text *why)
{
    struct mt_handover_session *known = find(handover, conn);
    if (known != NULL)
        return add_name(handover, known, name, own, why);
    if (handover->count == MT_HANDOVER_SESSIONS_MAX) {
        mt_text_set(why, "more than %d sessions would cross exec", MT_HANDOVER_SESSIONS_MAX);
        return false;
    }
    if (!prepare(handover)) {
        mt_text_set(why, "no memfd for its hand-over (%s)", strerror(errno));
        return false;
    }
    size_t length = 0;
    mt_result result = mt_conn_export(conn, handover->scratch, MT_CONN_EXPORT_MAX, &length,
                                      handover->from_vfork_child);
    if (!mt_result_is_ok(result)) {
        mt_text_set(why, "%s", mt_error_message(result.error));
        return false;
    }
    struct mt_handover_session *session = &handover->sessions[handover->count];
    *session = (struct mt_handover_session){
        .conn = conn, .names = {name}, .name_count = 1, .at = handover->size};
    if (own >= 0)
        session->own[session->own_count++] = own;
    bool written =
        write_record(handover, session, length) &&
        put(handover->memfd, session->at + (off_t)sizeof(struct record), handover->scratch, length);
    explicit_bzero(handover->scratch, length);
    if (!written) {
        mt_conn_take_back(conn);
        mt_text_set(why, "its hand-over could not be written (%s)", strerror(errno));
        return false;
    }
    handover->size += (off_t)(sizeof(struct record) + length);
    handover->count++;
    return true;
}

static void set_close_on_exec(const struct mt_handover *handover, bool close_on_exec)
{
    for (size_t i = 0; i < handover->count; i++) {
        for (unsigned j = 0; j < handover->sessions[i].own_count; j++) {
            int fd = handover->sessions[i].own[j];
            int flags = mt_sys_fcntl(fd, F_GETFD, 0);
            if (flags != -1)
                (void)mt_sys_fcntl(fd, F_SETFD,
                                   close_on_exec ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC);
        }
    }
}

int mt_handover_seal(struct mt_handover *handover)
{
    unmap_scratch(handover);
    if (handover->count == 0 || handover->memfd < 0)
        return -1;
    if (mt_sys_fcntl(handover->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) !=
            0 ||
        mt_sys_fcntl(handover->memfd, F_SETFD, 0) != 0)
        return -1;
    set_close_on_exec(handover, false);
    return handover->memfd;
}

/* The memfd wiped and closed; the connections taken back. */
static void take_back_all(struct mt_handover *handover)
{
    unmap_scratch(handover);
    if (handover->memfd >= 0) {
        wipe_memfd(handover->memfd, (size_t)handover->size);
        (void)mt_sys_close(handover->memfd);
        handover->memfd = -1;
    }
    for (size_t i = 0; i < handover->count; i++)
        mt_conn_take_back(handover->sessions[i].conn);
}

void mt_handover_reset_all(struct mt_handover *handover, const char *program)
{
    take_back_all(handover);
    char reason_text[256];
    struct mt_text reason = mt_text_on(reason_text, sizeof(reason_text));
    mt_text_set(&reason, "reset at the start of %s: its TLS session could not be written for it",
                program);
    for (size_t i = 0; i < handover->count; i++) {
        const struct mt_handover_session *session = &handover->sessions[i];
        mt_conn_reset_on(session->conn, session->own_count > 0 ? session->own[0] : -1,
                         mt_text_string(&reason));
    }
    handover->count = 0;
}

void mt_handover_abandon(struct mt_handover *handover)
{
    if (handover == NULL)
        return;
    set_close_on_exec(handover, true);
    take_back_all(handover);
    handover->count = 0;
}

void mt_handover_given(struct mt_handover *handover, pid_t pid)
{
    unmap_scratch(handover);
    for (size_t i = 0; i < handover->count; i++)
        mt_conn_note_given_to(handover->sessions[i].conn, pid);
    set_close_on_exec(handover, true);
    if (handover->memfd >= 0)
        (void)mt_sys_close(handover->memfd);
    handover->memfd = -1;
    handover->count = 0;
}

void mt_handover_cleanup(struct mt_handover *handover)
{
    if (handover != NULL)
        unmap_scratch(handover);
}

/*
 * The names of a session that this program really got: open, and the same socket as the first
 * such (a start's file actions may have closed or replaced some, e.g. the fd that a posix_spawn
 * dup2 action copied from and then closed). Returns how many are left in fds.
 */
static uint32_t names_present(int32_t *fds, uint32_t fd_count)
{
    uint32_t kept = 0;
    ino_t inode = 0;
    for (uint32_t i = 0; i < fd_count; i++) {
        struct stat status;
        if (fstat(fds[i], &status) != 0 || !S_ISSOCK(status.st_mode) ||
            (kept > 0 && status.st_ino != inode))
            continue;
        inode = status.st_ino;
        fds[kept++] = fds[i];
    }
    return kept;
}

/* Continues one session: state at its first fd, its other fds as further names. */
static void adopt_one(int32_t *fds, uint32_t fd_count, const unsigned char *state, size_t length)
{
    fd_count = names_present(fds, fd_count);
    if (fd_count == 0) {
        mt_log_warn("a TLS session handed to this program is on none of its fds: not taken over");
        return;
    }
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
    if (fstat(memfd, &status) != 0 || status.st_size <= 0 || (size_t)status.st_size > MEMFD_MAX) {
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
    while (data != NULL && got - at >= sizeof(struct record)) {
        struct record record;
        memcpy(&record, data + at, sizeof(record));
        at += sizeof(record);
        if (record.name_count == 0 || record.name_count > MT_HANDOVER_NAMES_MAX ||
            record.length > got - at)
            break;
        adopt_one(record.names, record.name_count, data + at, record.length);
        at += record.length;
    }
    if (data != NULL)
        explicit_bzero(data, size);
    free(data);
}
