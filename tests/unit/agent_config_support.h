/*
 * Helpers of the agent configuration tests (test_agent_config.c, test_agent_rules.c,
 * test_agent_config_resolve.c).
 *
 * Each configuration is written to a temporary file and loaded the way the agent loads it, so
 * the error messages are checked with the real file name and line numbers an operator would see.
 * Executables are real files in a temporary directory: a caller is described by the name its
 * mount namespace gives its executable and by the file it really runs, and the two can differ
 * (a bind mount in a namespace the caller built), as attestation reports them.
 */
#ifndef TESTS_UNIT_AGENT_CONFIG_SUPPORT_H
#define TESTS_UNIT_AGENT_CONFIG_SUPPORT_H

#include <sys/types.h>

#include "agent/agent_config.h"

/* SHA-256 of "abc" (FIPS 180-2, appendix B.1). */
#define ABC_SHA256 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

struct fixture {
    char path[64];
    char dir[64]; /* executables: sbin/nginx, bin/python3.11, bin/python3 -> python3.11, ... */
    char message[MT_AGENT_CONFIG_MESSAGE_MAX];
    struct mt_agent_config config;
};

/* cmocka setup and teardown: a fixture with its file, its executables and a default config. */
int setup(void **state);
int teardown(void **state);

/* Writes text to the fixture's file and loads it over fixture->config. */
mt_result load_text(struct fixture *fixture, const char *text);

/* Loading text must fail with a message starting "PATH:LINE: KEY: " and containing detail. */
void expect_error(struct fixture *fixture, const char *text, int line, const char *key,
                  const char *detail);

/* "DIR/relative" for the fixture's executables; absolute paths are kept. */
const char *in_dir(const struct fixture *fixture, const char *relative, char *buffer);

/*
 * A caller whose mount namespace names its executable name while it runs file (a path as the
 * agent sees it; a missing file gives an identity that matches nothing).
 */
struct mt_agent_caller caller_of(uid_t uid, gid_t gid, const char *name, const char *file);

/* Resolves a caller running name (the file it names, unless file says otherwise); returns the
 * count of exe mismatches found. */
unsigned resolve_running(const struct fixture *fixture, uid_t uid, gid_t gid, const char *name,
                         const char *file, const char *expected);

/* Resolves a caller running exe, which must get expected. */
void resolve(const struct fixture *fixture, uid_t uid, gid_t gid, const char *exe,
             const char *expected);

/* The example's rules with the fixture's executables, for resolving. */
mt_result load_executables_example(struct fixture *fixture);

#endif
