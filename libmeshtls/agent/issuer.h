/*
 * The issuer the agent signs with, kept current: the dev CA or an issuer from files, plus extra
 * trust anchors, reloaded when the files change on disk.
 *
 * Files are watched by polling (every MT_ISSUER_POLL_MS from the agent's event loop): a change
 * of device, inode, size or modification time of any input triggers a reload. stat() follows
 * symbolic links, so cert-manager's atomic update of a mounted secret (a new timestamped
 * directory, then the "..data" link swapped) is seen as a change of every file at once. A reload
 * builds a complete new issuer and swaps it in only when every check passes; otherwise the
 * previous issuer keeps signing and one log line says why. Inputs that fail to load are not
 * retried until they change again.
 */
#ifndef MT_AGENT_ISSUER_H
#define MT_AGENT_ISSUER_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "../util/text.h"
#include "agent_config.h"
#include "ca.h"

#define MT_ISSUER_POLL_MS 2000
#define MT_ISSUER_INPUTS_MAX (3 + MT_AGENT_CONFIG_ANCHOR_FILES_MAX)

struct mt_issuer_signature {
    bool present;
    dev_t device;
    ino_t inode;
    off_t size;
    struct timespec modified;
};

struct mt_issuer {
    struct mt_ca *ca; /* the issuer in force; replaced on reload */
    const struct mt_agent_config *config;
    char state_dir[PATH_MAX];
    struct mt_issuer_signature signatures[MT_ISSUER_INPUTS_MAX];
    long long next_poll_ms;
};

/* Loads the issuer the configuration names; *created is true when a dev CA was just created. */
MT_RESULT mt_issuer_open(struct mt_issuer *issuer, const struct mt_agent_config *config,
                         const char *state_dir, time_t now, bool *created, struct mt_text *reason);

/* Reloads when an input changed and MT_ISSUER_POLL_MS have passed since the last look. */
void mt_issuer_poll(struct mt_issuer *issuer, long long now_ms);

/* Milliseconds until the next poll is due (for the event loop's timeout), at least 0. */
int mt_issuer_poll_timeout(const struct mt_issuer *issuer, long long now_ms);

void mt_issuer_close(struct mt_issuer *issuer);

/* A one-line description of the issuer for logs: source, trust domain, anchors, expiry. */
void mt_issuer_describe(const struct mt_issuer *issuer, char *text, size_t capacity);

#endif
