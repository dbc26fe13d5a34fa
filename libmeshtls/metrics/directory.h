/*
 * The agent's metrics directory: the agent alone creates, names and removes the files in it.
 *
 * <socket dir>/metrics, mode 0755, owned by the agent. For each process that asks (over the
 * agent socket), the agent creates <pid>-<start time>.metrics, named by the pid (as the agent's
 * PID namespace sees it) and start time it attested, owned by the agent, mode 0600, with the
 * header written, and hands the open file to the process. Because nobody else can create a file
 * here, a name is proof of who it belongs to; files whose process has exited are swept.
 */
#ifndef MT_METRICS_DIRECTORY_H
#define MT_METRICS_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "../util/result.h"
#include "reader.h"

/* The file name of a process: "<pid>-<start time>.metrics". */
#define MT_METRICS_FILE_NAME_MAX 48

/*
 * Creates the file for the attested process (replacing one of the same name: the process's
 * earlier image, before an exec) and returns it open for reading and writing in *fd, sized to
 * its header and initialised. message says what failed.
 */
MT_RESULT mt_metrics_file_create(const char *directory, pid_t pid, uid_t uid,
                                 unsigned long long start_time, int *fd, char *message,
                                 size_t message_size);

/*
 * Removes the files of exited processes, and anything the agent did not create (a file of
 * another owner, left from when the directory was world-writable). Returns how many.
 */
size_t mt_metrics_sweep(const char *directory);

enum mt_metrics_verdict {
    MT_METRICS_TRUSTED,
    MT_METRICS_SKIPPED, /* not a file the agent made, or malformed, or unreadable */
    MT_METRICS_STALE,   /* its process has exited */
};

/* Opens directory_fd/name, checks it against the kernel and loads it (see above). */
enum mt_metrics_verdict mt_metrics_process_open(int directory_fd, const char *name,
                                                enum mt_metrics_load what,
                                                struct mt_metrics_process *process);

/* The metrics file names in a directory, read once (at most MT_METRICS_PROCESSES_MAX). */
struct mt_metrics_listing {
    int directory_fd;                        /* -1 when the directory does not exist */
    char (*names)[MT_METRICS_FILE_NAME_MAX]; /* "<pid>-<start time>.metrics" */
    size_t count;
};

MT_RESULT mt_metrics_listing_read(const char *directory, struct mt_metrics_listing *listing);
void mt_metrics_listing_free(struct mt_metrics_listing *listing);

/* "<pid>-<start time>.metrics" → pid and start time; false for any other name. */
bool mt_metrics_file_name_parse(const char *name, pid_t *pid, unsigned long long *start_time);

/* Every trusted process of directory at once (see struct mt_metrics_collection). */
MT_RESULT mt_metrics_collect(const char *directory, struct mt_metrics_collection *collection);

#endif
