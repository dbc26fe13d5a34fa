/*
 * The agent's identity rules as read from its configuration file (agent_config.h gives the
 * format): reading the `rules` list, and the ID template each rule carries.
 *
 * A rule's id is a path template, "ns/web/sa/{uid}": {uid} and {gid} stand for the caller's
 * numbers, and the whole must make a valid SPIFFE ID in the trust domain for every caller, which
 * is checked when the rule is read (and again when a flag changes the trust domain).
 */
#ifndef MT_AGENT_RULES_H
#define MT_AGENT_RULES_H

#include <stddef.h>
#include <sys/types.h>

#include "../config/reader.h"
#include "agent_config.h"

/*
 * Reads the list setting into a new array of rules (*rules, *count; freed with
 * mt_agent_rules_free), each checked whole and its ID checked within trust_domain.
 */
MT_RESULT mt_agent_rules_read(const struct mt_config_reader *reader,
                              const config_setting_t *setting, const char *trust_domain,
                              struct mt_agent_rule **rules, size_t *count);

void mt_agent_rules_free(struct mt_agent_rule *rules, size_t count);

/*
 * Checks that the ID of rules[index] makes a valid SPIFFE ID in trust_domain for any caller;
 * else "FILE:LINE: rules[INDEX].id: "ID" PROBLEM (valid values)" at the rule's line.
 */
MT_RESULT mt_agent_rules_check_id(const struct mt_config_reader *reader, const char *trust_domain,
                                  const struct mt_agent_rule *rule, size_t index);

/* The SPIFFE ID the rule's template makes for a caller of uid and gid. */
MT_RESULT mt_agent_rules_format_id(const char *trust_domain, const struct mt_agent_rule *rule,
                                   uid_t uid, gid_t gid, char *spiffe_id, size_t capacity);

#endif
