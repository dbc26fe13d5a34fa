/*
 * Helpers of the config tests (test_config*.c): each test writes its configuration to a fresh
 * mkstemp file, removed again by the teardown, which also clears the MESHTLS_* variables.
 */
#ifndef TESTS_UNIT_CONFIG_SUPPORT_H
#define TESTS_UNIT_CONFIG_SUPPORT_H

#include "config/config.h"

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))

/* cmocka setup and teardown: no MESHTLS_* variable set, no temporary file left. */
int setup(void **state);
int teardown(void **state);

/* A new temporary file holding content; its path lives until the teardown. */
const char *write_temp_file(const char *content);

/* Removes the file write_temp_file made last, for a test that makes many in turn. */
void remove_last_temp_file(void);

/* A configuration unlike the defaults in every field, so "unchanged" and "reset" differ. */
void set_non_defaults(struct mt_config *config);

/* Equal by meaning: patterns compared by their text, wherever they are stored. */
void assert_configs_equal(const struct mt_config *a, const struct mt_config *b);

/* Loads content and expects exactly the message "<file>:<suffix>" with config untouched. */
void assert_load_fails(const char *content, const char *expected_suffix);

/* Loads content over config; the test fails with the message when it does not load. */
void load_ok(const char *content, struct mt_config *config);

/* Describes original, loads the text back, and expects the same configuration. */
void describe_and_reload(const struct mt_config *original);

#endif
