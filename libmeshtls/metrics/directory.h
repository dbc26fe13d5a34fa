/*
 * The agent's metrics directory: the agent alone creates, names and removes the files in it.
 *
 * <socket dir>/metrics, mode 0755, owned by the agent. For each process that asks (over the
 * agent socket), the agent creates <pid>-<start time>.metrics, named by the pid (as the agent's
 * PID namespace sees it) and start time it attested, owned by the agent, mode 0600, with the
 * header written, and hands the open file to the process. Because nobody else can create a file
 * here, a name is proof of who it belongs to; files whose process has exited are swept.
 *
 * The directory is opened once (struct mt_metrics_directory) and every later operation goes
 * through that descriptor with *at calls, never through the path again: whoever can write the
 * socket's directory can rename the metrics directory and put a symbolic link in its place, and
 * the agent (often root) must not then create, list or remove files wherever the link points.
 */
#ifndef MT_METRICS_DIRECTORY_H
#define MT_METRICS_DIRECTORY_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "../util/text.h"
#include "reader.h"

/* The file name of a process: "<pid>-<start time>.metrics". */
#define MT_METRICS_FILE_NAME_MAX 48

/* The metrics directory, held open: path only names it in messages. */
struct mt_metrics_directory {
    int fd; /* -1 until opened */
    char path[PATH_MAX];
};

/*
 * Opens directory->path once, never through a symbolic link in its last component, and checks
 * on the open descriptor that it is a directory owned by the caller's effective uid. The mode is
 * the caller's decision (the agent's: agent_metrics.h). MT_ERR_IO with message naming the path
 * and what to do otherwise.
 */
MT_RESULT mt_metrics_directory_open(struct mt_metrics_directory *directory, struct mt_text *reason);
void mt_metrics_directory_close(struct mt_metrics_directory *directory);

/*
 * False when the directory holds an entry no agent leaves there (anything but a regular file
 * with a metrics file name); foreign is then its name. Startup only: it reads every entry.
 */
bool mt_metrics_directory_holds_only_metrics_files(const struct mt_metrics_directory *directory,
                                                   char *foreign, size_t foreign_size);

/* True while directory->path still leads to the directory held open (not moved or replaced). */
bool mt_metrics_directory_is_at_path(const struct mt_metrics_directory *directory);

/*
 * Creates the file for the attested process (replacing one of the same name that the agent
 * made: the process's earlier image, before an exec) and returns it open for reading and
 * writing in *fd, sized to its header and initialised. message says what failed.
 */
MT_RESULT mt_metrics_file_create(const struct mt_metrics_directory *directory, pid_t pid, uid_t uid,
                                 unsigned long long start_time, int *fd, struct mt_text *reason);

/*
 * Removes the files of exited processes: regular files owned by the agent with a metrics file
 * name whose process is gone. Nothing else is ever removed (not another owner's file, not a
 * directory, not another name). Returns how many.
 */
size_t mt_metrics_sweep(const struct mt_metrics_directory *directory);

/*
 * The same sweep a bounded step at a time, for a loop that must not stop for a directory of
 * thousands of files (a /proc read each): begin opens a listing (false when the directory cannot
 * be read: nothing to do), each step examines up to budget entries and adds the files it removed
 * to *removed, returning true (the listing closed) once the directory is done. end closes a
 * listing still open; harmless after the last step. Files created meanwhile may or may not be
 * seen, as with readdir; the next sweep sees them.
 */
struct mt_metrics_sweep {
    void *listing; /* DIR *, open between begin and the last step */
};
bool mt_metrics_sweep_begin(const struct mt_metrics_directory *directory,
                            struct mt_metrics_sweep *sweep);
bool mt_metrics_sweep_step(const struct mt_metrics_directory *directory,
                           struct mt_metrics_sweep *sweep, size_t budget, size_t *removed);
void mt_metrics_sweep_end(struct mt_metrics_sweep *sweep);

enum mt_metrics_verdict {
    MT_METRICS_TRUSTED,
    MT_METRICS_SKIPPED, /* not a file the agent made, or malformed, or unreadable */
    MT_METRICS_STALE,   /* its process has exited */
};

/*
 * Opens directory_fd/name, checks it against the kernel and loads it (see above). With owner
 * set, a process of any other uid is MT_METRICS_SKIPPED before its file is opened or read.
 */
enum mt_metrics_verdict mt_metrics_process_open(int directory_fd, const char *name,
                                                enum mt_metrics_load what, const uid_t *owner,
                                                struct mt_metrics_process *process);

/* The metrics file names in a directory, read once (at most MT_METRICS_PROCESSES_MAX). */
struct mt_metrics_listing {
    int directory_fd;                        /* -1 when the directory does not exist */
    char (*names)[MT_METRICS_FILE_NAME_MAX]; /* "<pid>-<start time>.metrics" */
    size_t count;
};

/* An unopened directory (fd -1) lists nothing. */
MT_RESULT mt_metrics_listing_read(const struct mt_metrics_directory *directory,
                                  struct mt_metrics_listing *listing);
void mt_metrics_listing_free(struct mt_metrics_listing *listing);

/* "<pid>-<start time>.metrics" → pid and start time; false for any other name. */
bool mt_metrics_file_name_parse(const char *name, pid_t *pid, unsigned long long *start_time);

/* Every trusted process of directory at once (see struct mt_metrics_collection). */
MT_RESULT mt_metrics_collect(const struct mt_metrics_directory *directory,
                             struct mt_metrics_collection *collection);

#endif
