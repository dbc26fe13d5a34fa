/*
 * The agent's metrics directory (see directory.h): creating a process's file, finding and opening
 * the files of live processes, sweeping the rest.
 *
 * Owns the names in the directory and the check that a file belongs to a live process. Runs in
 * the agent only, as the agent's user: the files it creates are its own, so a file of another
 * owner was planted and is never read. This file must never follow a symbolic link in or to
 * the directory, never reach the directory through its path once it is open, never trust a name
 * the agent did not give, never remove anything but a regular file of the agent's with a metrics
 * file name, and never remove the file of a live process.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../util/sys.h"
#include "directory.h"

/* Field 22 of /proc/<pid>/stat; false when the process is gone. */
static bool read_start_time(pid_t pid, unsigned long long *start_time)
{
    char path[64];
    char text[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t length = mt_sys_read(fd, text, sizeof(text) - 1);
    mt_sys_close(fd);
    if (length <= 0)
        return false;
    text[length] = '\0';
    return mt_metrics_stat_start_time(text, start_time);
}

static bool is_alive(pid_t pid, unsigned long long start_time)
{
    unsigned long long actual = 0;
    return read_start_time(pid, &actual) && actual == start_time;
}

bool mt_metrics_file_name_parse(const char *name, pid_t *pid, unsigned long long *start_time)
{
    long long parsed_pid = 0;
    unsigned long long parsed_start = 0;
    int consumed = 0;
    if (sscanf(name, "%lld-%llu.metrics%n", &parsed_pid, &parsed_start, &consumed) != 2 ||
        name[consumed] != '\0' || parsed_pid <= 0 || parsed_pid > INT32_MAX)
        return false;
    char canonical[96];
    snprintf(canonical, sizeof(canonical), "%lld-%llu.metrics", parsed_pid, parsed_start);
    if (strcmp(canonical, name) != 0)
        return false;
    *pid = (pid_t)parsed_pid;
    *start_time = parsed_start;
    return true;
}

struct file_source {
    int fd;
};

static bool file_read_at(void *source, void *buffer, size_t length, uint64_t offset)
{
    const struct file_source *file = source;
    size_t total = 0;
    while (total < length) {
        ssize_t got =
            pread(file->fd, (uint8_t *)buffer + total, length - total, (off_t)(offset + total));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return false;
        total += (size_t)got;
    }
    return true;
}

/* The executable of pid, cut to the label limit ("" when it cannot be read). */
static void read_exe_label(pid_t pid, char *exe, size_t capacity)
{
    char path[64];
    char target[PATH_MAX];
    snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
    ssize_t length = readlink(path, target, sizeof(target) - 1);
    size_t kept = length > 0 ? (size_t)length : 0;
    if (kept > capacity - 1)
        kept = capacity - 1;
    memcpy(exe, target, kept);
    exe[kept] = '\0';
}

enum mt_metrics_verdict mt_metrics_process_open(int directory_fd, const char *name,
                                                enum mt_metrics_load what, const uid_t *owner,
                                                struct mt_metrics_process *process)
{
    pid_t pid = 0;
    unsigned long long start_time = 0;
    memset(process, 0, sizeof(*process));
    if (!mt_metrics_file_name_parse(name, &pid, &start_time))
        return MT_METRICS_SKIPPED;
    if (!is_alive(pid, start_time))
        return MT_METRICS_STALE;
    char proc_path[64];
    struct stat proc_status;
    snprintf(proc_path, sizeof(proc_path), "/proc/%ld", (long)pid);
    if (stat(proc_path, &proc_status) != 0)
        return MT_METRICS_STALE;
    /* Before the file is opened: a caller shown only its own processes costs no other's read. */
    if (owner != NULL && proc_status.st_uid != *owner)
        return MT_METRICS_SKIPPED;

    int fd = openat(directory_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return MT_METRICS_SKIPPED;
    struct stat status;
    enum mt_metrics_verdict verdict = MT_METRICS_SKIPPED;
    /* Only the agent creates files here, so a file of any other owner was planted. */
    if (fstat(fd, &status) != 0 || !S_ISREG(status.st_mode) || status.st_uid != geteuid())
        goto out;
    struct file_source source = {fd};
    if (!mt_result_is_ok(mt_metrics_process_load(file_read_at, &source, (uint64_t)status.st_size,
                                                 what, process)))
        goto out;
    process->pid = pid;
    process->uid = proc_status.st_uid;
    process->start_time = start_time;
    read_exe_label(pid, process->exe, sizeof(process->exe));
    /* The pid may have been reused while we read: then uid and exe were another process's. */
    verdict = is_alive(pid, start_time) ? MT_METRICS_TRUSTED : MT_METRICS_STALE;
    if (verdict != MT_METRICS_TRUSTED)
        mt_metrics_process_cleanup(process);

out:
    mt_sys_close(fd);
    return verdict;
}

/*
 * A descriptor of its own for the held directory: readdir moves the offset of an open file, and
 * the event loop and the HTTP thread list the same directory at the same time.
 */
static int reopen_directory(const struct mt_metrics_directory *directory)
{
    if (directory->fd < 0) {
        errno = ENOENT;
        return -1;
    }
    return openat(directory->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

MT_RESULT mt_metrics_listing_read(const struct mt_metrics_directory *directory,
                                  struct mt_metrics_listing *listing)
{
    MT_ENSURE_REF(directory);
    MT_ENSURE_REF(listing);
    memset(listing, 0, sizeof(*listing));
    listing->directory_fd = reopen_directory(directory);
    if (listing->directory_fd < 0)
        return errno == ENOENT ? MT_OK_RESULT : mt_result_of(MT_ERR_IO);
    int listing_fd = mt_sys_dup(listing->directory_fd);
    DIR *entries = listing_fd >= 0 ? fdopendir(listing_fd) : NULL;
    if (entries == NULL) {
        if (listing_fd >= 0)
            mt_sys_close(listing_fd);
        mt_metrics_listing_free(listing);
        return mt_result_of(MT_ERR_IO);
    }
    size_t capacity = 0;
    mt_result result = MT_OK_RESULT;
    struct dirent *entry;
    while ((entry = readdir(entries)) != NULL && listing->count < MT_METRICS_PROCESSES_MAX) {
        pid_t pid = 0;
        unsigned long long start_time = 0;
        if (strlen(entry->d_name) >= sizeof(listing->names[0]) ||
            !mt_metrics_file_name_parse(entry->d_name, &pid, &start_time))
            continue;
        if (listing->count == capacity) {
            size_t grown_capacity = capacity > 0 ? capacity * 2 : 64;
            void *grown = realloc(listing->names, grown_capacity * sizeof(listing->names[0]));
            if (grown == NULL) {
                result = mt_result_of(MT_ERR_NO_MEMORY);
                break;
            }
            listing->names = grown;
            capacity = grown_capacity;
        }
        snprintf(listing->names[listing->count++], sizeof(listing->names[0]), "%s", entry->d_name);
    }
    closedir(entries);
    if (!mt_result_is_ok(result))
        mt_metrics_listing_free(listing);
    return result;
}

void mt_metrics_listing_free(struct mt_metrics_listing *listing)
{
    if (listing == NULL)
        return;
    if (listing->directory_fd >= 0)
        mt_sys_close(listing->directory_fd);
    free(listing->names);
    memset(listing, 0, sizeof(*listing));
    listing->directory_fd = -1;
}

MT_RESULT mt_metrics_collect(const struct mt_metrics_directory *directory,
                             struct mt_metrics_collection *collection)
{
    MT_ENSURE_REF(collection);
    memset(collection, 0, sizeof(*collection));
    struct mt_metrics_listing listing;
    MT_GUARD(mt_metrics_listing_read(directory, &listing));
    if (listing.count > 0)
        collection->processes = calloc(listing.count, sizeof(*collection->processes));
    if (listing.count > 0 && collection->processes == NULL) {
        mt_metrics_listing_free(&listing);
        return mt_result_of(MT_ERR_NO_MEMORY);
    }
    for (size_t i = 0; i < listing.count; i++) {
        struct mt_metrics_process *process = &collection->processes[collection->count];
        if (mt_metrics_process_open(listing.directory_fd, listing.names[i], MT_METRICS_LOAD_ALL,
                                    NULL, process) == MT_METRICS_TRUSTED)
            collection->count++;
        else
            collection->skipped++;
    }
    mt_metrics_listing_free(&listing);
    return MT_OK_RESULT;
}

void mt_metrics_collection_free(struct mt_metrics_collection *collection)
{
    if (collection == NULL)
        return;
    for (size_t i = 0; i < collection->count; i++)
        mt_metrics_process_cleanup(&collection->processes[i]);
    free(collection->processes);
    memset(collection, 0, sizeof(*collection));
}

/* ---- the directory ------------------------------------------------------------------------ */

MT_RESULT mt_metrics_directory_open(struct mt_metrics_directory *directory, struct mt_text *reason)
{
    MT_ENSURE_REF(directory);
    directory->fd = -1;
    /* O_NOFOLLOW: a symbolic link in place of the directory is refused, not followed. */
    int fd = open(directory->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && (errno == ENOTDIR || errno == ELOOP))
        return mt_result_explain(
            reason, MT_ERR_IO,
            "%s exists and is not a directory (or is a symbolic link): remove it so that the "
            "agent can create the metrics directory, or choose another --socket",
            directory->path);
    if (fd < 0)
        return mt_result_explain(reason, MT_ERR_IO, "cannot open metrics directory %s: %s",
                                 directory->path, strerror(errno));
    struct stat status;
    if (fstat(fd, &status) != 0 || !S_ISDIR(status.st_mode)) {
        mt_sys_close(fd);
        return mt_result_explain(reason, MT_ERR_IO, "cannot check metrics directory %s: %s",
                                 directory->path, strerror(errno));
    }
    /* Whoever owns it could plant or replace the files the agent hands to processes. */
    if (status.st_uid != geteuid()) {
        mt_sys_close(fd);
        return mt_result_explain(reason, MT_ERR_IO,
                                 "metrics directory %s belongs to uid %u, not to the agent's uid "
                                 "%u: remove it so that the agent can create its own, or choose "
                                 "another --socket",
                                 directory->path, (unsigned)status.st_uid, (unsigned)geteuid());
    }
    directory->fd = fd;
    return MT_OK_RESULT;
}

void mt_metrics_directory_close(struct mt_metrics_directory *directory)
{
    if (directory == NULL || directory->fd < 0)
        return;
    mt_sys_close(directory->fd);
    directory->fd = -1;
}

/* A regular file with a metrics file name: the only kind of entry an agent ever makes. */
static bool is_metrics_file(int directory_fd, const char *name, struct stat *status)
{
    pid_t pid = 0;
    unsigned long long start_time = 0;
    return mt_metrics_file_name_parse(name, &pid, &start_time) &&
           fstatat(directory_fd, name, status, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISREG(status->st_mode);
}

bool mt_metrics_directory_holds_only_metrics_files(const struct mt_metrics_directory *directory,
                                                   char *foreign, size_t foreign_size)
{
    int listing_fd = reopen_directory(directory);
    DIR *entries = listing_fd >= 0 ? fdopendir(listing_fd) : NULL;
    if (entries == NULL) {
        if (listing_fd >= 0)
            mt_sys_close(listing_fd);
        snprintf(foreign, foreign_size, "(unreadable: %s)", strerror(errno));
        return false;
    }
    bool only = true;
    struct dirent *entry;
    while (only && (entry = readdir(entries)) != NULL) {
        struct stat status;
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        only = is_metrics_file(dirfd(entries), entry->d_name, &status);
        if (!only)
            snprintf(foreign, foreign_size, "%s", entry->d_name);
    }
    closedir(entries);
    return only;
}

bool mt_metrics_directory_is_at_path(const struct mt_metrics_directory *directory)
{
    struct stat held;
    struct stat named;
    return directory->fd >= 0 && fstat(directory->fd, &held) == 0 &&
           fstatat(AT_FDCWD, directory->path, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISDIR(named.st_mode) && named.st_dev == held.st_dev && named.st_ino == held.st_ino;
}

/* ---- creating and sweeping ----------------------------------------------------------------- */

static MT_RESULT write_header(int fd, pid_t pid, uid_t uid, unsigned long long start_time)
{
    struct mt_metrics_file_header header;
    memset(&header, 0, sizeof(header));
    memcpy(header.magic, MT_METRICS_MAGIC, sizeof(header.magic));
    header.version = MT_METRICS_LAYOUT_VERSION;
    header.header_size = MT_METRICS_HEADER_SIZE;
    header.chunk_size = MT_METRICS_CHUNK_SIZE;
    header.pid = (int32_t)pid;
    header.uid = (uint32_t)uid;
    header.start_time = start_time;
    header.created_at = (int64_t)time(NULL);
    MT_GUARD_POSIX(ftruncate(fd, MT_METRICS_HEADER_SIZE), MT_ERR_IO);
    ssize_t written = pwrite(fd, &header, sizeof(header), 0);
    MT_ENSURE(written == (ssize_t)sizeof(header), MT_ERR_IO);
    return MT_OK_RESULT;
}

/* A file the agent made (its owner, regular, a metrics name): the only kind it removes. */
static bool is_agent_file(int directory_fd, const char *name)
{
    struct stat status;
    return is_metrics_file(directory_fd, name, &status) && status.st_uid == geteuid();
}

MT_RESULT mt_metrics_file_create(const struct mt_metrics_directory *directory, pid_t pid, uid_t uid,
                                 unsigned long long start_time, int *fd, struct mt_text *reason)
{
    MT_ENSURE_REF(directory);
    MT_ENSURE_REF(fd);
    *fd = -1;
    MT_ENSURE(directory->fd >= 0, MT_ERR_INVALID_ARGUMENT);
    char name[MT_METRICS_FILE_NAME_MAX];
    snprintf(name, sizeof(name), "%ld-%llu.metrics", (long)pid, start_time);
    /*
     * Same pid and start time: the same process, asking again after an exec. Only the agent can
     * add or remove entries in its directory, so what was checked is what is unlinked; anything
     * else of that name stays and the creation below fails, naming it.
     */
    if (is_agent_file(directory->fd, name))
        (void)unlinkat(directory->fd, name, 0);
    int created =
        openat(directory->fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (created < 0) {
        int error = errno;
        return mt_result_explain(
            reason, MT_ERR_IO, "cannot create %s/%s: %s%s", directory->path, name, strerror(error),
            error == EEXIST ? " (an entry the agent did not make has this name: remove it)" : "");
    }
    /* The umask may have changed the mode; nobody but the agent opens the file by name. */
    mt_result result = fchmod(created, 0600) == 0 ? write_header(created, pid, uid, start_time)
                                                  : mt_result_of(MT_ERR_IO);
    if (!mt_result_is_ok(result)) {
        result = mt_result_explain(reason, MT_ERR_IO, "cannot initialise %s/%s: %s",
                                   directory->path, name, strerror(errno));
        mt_sys_close(created);
        (void)unlinkat(directory->fd, name, 0);
        return result;
    }
    *fd = created;
    return MT_OK_RESULT;
}

bool mt_metrics_sweep_begin(const struct mt_metrics_directory *directory,
                            struct mt_metrics_sweep *sweep)
{
    if (sweep == NULL)
        return false;
    sweep->listing = NULL;
    int listing_fd = directory != NULL ? reopen_directory(directory) : -1;
    DIR *listing = listing_fd >= 0 ? fdopendir(listing_fd) : NULL;
    if (listing == NULL) {
        if (listing_fd >= 0)
            mt_sys_close(listing_fd);
        return false;
    }
    sweep->listing = listing;
    return true;
}

bool mt_metrics_sweep_step(const struct mt_metrics_directory *directory,
                           struct mt_metrics_sweep *sweep, size_t budget, size_t *removed)
{
    if (directory == NULL || sweep == NULL || sweep->listing == NULL)
        return true;
    for (size_t examined = 0; examined < budget; examined++) {
        struct dirent *entry = readdir(sweep->listing);
        if (entry == NULL) {
            mt_metrics_sweep_end(sweep);
            return true;
        }
        pid_t pid = 0;
        unsigned long long start_time = 0;
        /* Never a directory (no AT_REMOVEDIR), never a name or an owner the agent did not give. */
        if (!is_agent_file(directory->fd, entry->d_name) ||
            !mt_metrics_file_name_parse(entry->d_name, &pid, &start_time) ||
            is_alive(pid, start_time))
            continue;
        if (unlinkat(directory->fd, entry->d_name, 0) == 0 && removed != NULL)
            (*removed)++;
    }
    return false;
}

void mt_metrics_sweep_end(struct mt_metrics_sweep *sweep)
{
    if (sweep == NULL || sweep->listing == NULL)
        return;
    closedir(sweep->listing);
    sweep->listing = NULL;
}

size_t mt_metrics_sweep(const struct mt_metrics_directory *directory)
{
    struct mt_metrics_sweep sweep;
    size_t removed = 0;
    if (mt_metrics_sweep_begin(directory, &sweep))
        (void)mt_metrics_sweep_step(directory, &sweep, SIZE_MAX, &removed);
    mt_metrics_sweep_end(&sweep);
    return removed;
}
