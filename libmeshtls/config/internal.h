/*
 * What the files of config/ share and nobody else may use: the state of one load, and the
 * readers and writers of each kind of value, each defined in the file named for it.
 *
 *   config.c       defaults, the top-level keys, loading a file, the whole procedure
 *   values.c       modes, log levels, socket paths, trust domains: what a value means wherever
 *                  it comes from (the file or the environment)
 *   ports.c        ports and "FIRST-LAST" ranges
 *   cidr.c         addresses and CIDRs
 *   patterns.c     identity patterns, interned in the config's pattern text
 *   rules.c        outbound and inbound rules
 *   environment.c  MESHTLS_* variables
 *   describe.c     the effective configuration as libconfig text
 *
 * The key readers (struct mt_config_key, reader.h) take a struct mt_config_load as context.
 */
#ifndef MT_CONFIG_INTERNAL_H
#define MT_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libconfig.h>

#include "../util/text.h"
#include "config.h"
#include "reader.h"

#define MT_CONFIG_TIMEOUT_MIN_MS 100
#define MT_CONFIG_TIMEOUT_MAX_MS 600000

#define MT_CONFIG_PORT_EXAMPLES "such as 8080 or \"8000-8999\""
#define MT_CONFIG_OUTBOUND_MODES "one of \"mtls\", \"plain\", \"auto\""
#define MT_CONFIG_INBOUND_MODES "one of \"strict\", \"permissive\", \"plain\""

/*
 * The file being read and the configuration being filled: a copy that mt_config_load_file
 * commits only when everything is valid, or mt_config_load's own, which it resets to the
 * defaults on any error. rule_key names the rule being read ("outbound.rules[3]") so that its
 * keys can say where they are; seen_keys records which keys that rule has set.
 */
struct mt_config_load {
    struct mt_config_reader reader;
    struct mt_config *config;
    char rule_key[40];
    unsigned seen_keys;
};

/* ---- values.c ----------------------------------------------------------------------------- */

MT_RESULT mt_config_read_outbound_mode(const struct mt_config_reader *reader,
                                       const config_setting_t *setting, const char *key,
                                       enum mt_outbound_mode *mode);
MT_RESULT mt_config_read_post_quantum(const struct mt_config_reader *reader,
                                      const config_setting_t *setting, const char *key,
                                      enum mt_post_quantum *post_quantum);
MT_RESULT mt_config_read_inbound_mode(const struct mt_config_reader *reader,
                                      const config_setting_t *setting, const char *key,
                                      enum mt_inbound_mode *mode);
MT_RESULT mt_config_read_log_level(const struct mt_config_reader *reader,
                                   const config_setting_t *setting, const char *key,
                                   enum mt_log_level *level);
/* Into agent_socket[MT_CONFIG_SOCKET_PATH_MAX]. */
MT_RESULT mt_config_read_socket_path(const struct mt_config_reader *reader,
                                     const config_setting_t *setting, const char *key,
                                     char *agent_socket);
/* Into trust_domain, which has room for any valid name. */
MT_RESULT mt_config_read_trust_domain(const struct mt_config_reader *reader,
                                      const config_setting_t *setting, const char *key,
                                      char *trust_domain);

/*
 * Checks for values that come from elsewhere (the environment): false with the words that follow
 * the quoted value ("is not one of ...") appended to problem.
 */
bool mt_config_check_log_level(const char *value, enum mt_log_level *level,
                               struct mt_text *problem);
bool mt_config_check_socket_path(const char *value, struct mt_text *problem);

/* ---- ports.c ------------------------------------------------------------------------------ */

/* A port as an integer (8080) or a string ("8080", "8000-8999"). */
MT_RESULT mt_config_read_port_range(const struct mt_config_reader *reader,
                                    const config_setting_t *setting, const char *key,
                                    struct mt_port_range *range);

/*
 * An array or list of ports and ranges into ranges[0 .. *count). An empty one is refused unless
 * allow_empty: in a rule it would match nothing, which is never what was meant.
 */
MT_RESULT mt_config_read_port_list(const struct mt_config_reader *reader,
                                   const config_setting_t *setting, const char *key,
                                   bool allow_empty, struct mt_port_range *ranges,
                                   unsigned capacity, unsigned *count);

/* For a value from elsewhere (the environment), as mt_config_check_log_level. */
bool mt_config_check_port_range(const char *value, struct mt_port_range *range,
                                struct mt_text *problem);

/* [5432, 6379] when every entry is one port, else every entry as a string: ["443", "8000-8999"]. */
void mt_config_append_ports(struct mt_text *text, const struct mt_port_range *ranges,
                            unsigned count);

/* ---- cidr.c ------------------------------------------------------------------------------- */

/* "10.0.0.0/8", "2001:db8::/32" or a single address "10.1.2.3", with its host bits zero. */
MT_RESULT mt_config_read_cidr(const struct mt_config_reader *reader,
                              const config_setting_t *setting, const char *key,
                              struct mt_cidr *cidr);

/* An array or list of addresses and CIDRs into cidrs[0 .. *count); an empty one is allowed. */
MT_RESULT mt_config_read_cidr_list(const struct mt_config_reader *reader,
                                   const config_setting_t *setting, const char *key,
                                   struct mt_cidr *cidrs, unsigned capacity, unsigned *count);

/* For a value from elsewhere (the environment), as mt_config_check_log_level. */
bool mt_config_check_cidr(const char *value, struct mt_cidr *cidr, struct mt_text *problem);

/* "10.0.0.0/8"; a single address without its full-length prefix ("10.1.2.3"). */
void mt_config_append_cidr(struct mt_text *text, const struct mt_cidr *cidr);

/* ---- patterns.c --------------------------------------------------------------------------- */

/* An identity pattern, interned in load->config's pattern text; *reference names it. */
MT_RESULT mt_config_read_pattern(struct mt_config_load *load, const config_setting_t *setting,
                                 const char *key, uint16_t *reference);

/* ---- rules.c ------------------------------------------------------------------------------ */

/* Key readers for outbound.rules and inbound.rules: the file's rules replace those before. */
MT_RESULT mt_config_read_outbound_rules(void *context, const config_setting_t *setting);
MT_RESULT mt_config_read_inbound_rules(void *context, const config_setting_t *setting);

/* ---- environment.c ------------------------------------------------------------------------ */

/* The variable's value, or NULL when it is unset, empty, or the program is set-user-ID. */
const char *mt_config_environment(const char *name);

#endif
