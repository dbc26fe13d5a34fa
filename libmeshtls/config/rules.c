/*
 * Outbound and inbound rules: outbound.rules and inbound.rules, lists of groups read into
 * struct mt_outbound_rule and struct mt_inbound_rule.
 *
 * Owns what makes a rule whole: its keys, the keys it must have, and the combinations that
 * cannot mean what was written (an identity expected of a plain connection, an allow list on a
 * port that sees no peer identity). It must never keep a rule it has not checked whole: a rule
 * half read would decide connections nobody configured. The rules of a file replace those
 * configured before, all of them, so two sources never mix into one first-match list.
 */
#include <stdio.h>
#include <string.h>

#include <sys/socket.h>

#include "internal.h"

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))

enum rule_key_bit {
    SEEN_MODE = 1u << 0,
    SEEN_PORT = 1u << 1,
};

/* "outbound.rules[3].to" for the rule being read. */
static const char *rule_member_key(const struct mt_config_load *load, const char *member, char *key,
                                   size_t capacity)
{
    snprintf(key, capacity, "%s.%s", load->rule_key, member);
    return key;
}

static struct mt_outbound_rule *current_outbound_rule(struct mt_config_load *load)
{
    return &load->config->outbound.rules[load->config->outbound.rule_count - 1];
}

static struct mt_inbound_rule *current_inbound_rule(struct mt_config_load *load)
{
    return &load->config->inbound.rules[load->config->inbound.rule_count - 1];
}

/* ---- outbound ----------------------------------------------------------------------------- */

static MT_RESULT read_outbound_rule_to(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    char key[64];
    return mt_config_read_cidr(&load->reader, setting,
                               rule_member_key(load, "to", key, sizeof(key)),
                               &current_outbound_rule(load)->to);
}

static MT_RESULT read_outbound_rule_ports(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    char key[64];
    struct mt_outbound_rule *rule = current_outbound_rule(load);
    return mt_config_read_port_list(&load->reader, setting,
                                    rule_member_key(load, "ports", key, sizeof(key)), false,
                                    rule->ports, MT_CONFIG_RULE_PORTS_MAX, &rule->port_count);
}

static MT_RESULT read_outbound_rule_mode(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    char key[64];
    MT_GUARD(mt_config_read_outbound_mode(&load->reader, setting,
                                          rule_member_key(load, "mode", key, sizeof(key)),
                                          &current_outbound_rule(load)->mode));
    load->seen_keys |= SEEN_MODE;
    return MT_OK_RESULT;
}

static MT_RESULT read_outbound_rule_identity(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    char key[64];
    return mt_config_read_pattern(load, setting,
                                  rule_member_key(load, "identity", key, sizeof(key)),
                                  &current_outbound_rule(load)->identity);
}

static const struct mt_config_key outbound_rule_keys[] = {
    {"to", read_outbound_rule_to},
    {"ports", read_outbound_rule_ports},
    {"mode", read_outbound_rule_mode},
    {"identity", read_outbound_rule_identity},
};

/* ---- inbound ------------------------------------------------------------------------------ */

static MT_RESULT read_inbound_rule_port(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    char key[64];
    MT_GUARD(mt_config_read_port_range(&load->reader, setting,
                                       rule_member_key(load, "port", key, sizeof(key)),
                                       &current_inbound_rule(load)->port));
    load->seen_keys |= SEEN_PORT;
    return MT_OK_RESULT;
}

static MT_RESULT read_inbound_rule_mode(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    char key[64];
    MT_GUARD(mt_config_read_inbound_mode(&load->reader, setting,
                                         rule_member_key(load, "mode", key, sizeof(key)),
                                         &current_inbound_rule(load)->mode));
    load->seen_keys |= SEEN_MODE;
    return MT_OK_RESULT;
}

static MT_RESULT read_inbound_rule_allow(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    const struct mt_config_reader *reader = &load->reader;
    char key[64];
    rule_member_key(load, "allow", key, sizeof(key));
    if (!mt_config_is_sequence(setting))
        return mt_config_reader_fail_type(
            reader, setting, key,
            "an array of identity patterns (such as [\"spiffe://example.org/ns/web/*\"])");
    int length = config_setting_length(setting);
    if (length == 0)
        return mt_config_reader_fail(reader, setting, key,
                                     "an empty list would refuse every peer; leave the key out "
                                     "to accept any peer of the trust domain");
    struct mt_inbound_rule *rule = current_inbound_rule(load);
    for (int i = 0; i < length; i++) {
        const config_setting_t *element = config_setting_get_elem(setting, (unsigned)i);
        char element_key[80];
        snprintf(element_key, sizeof(element_key), "%s[%d]", key, i);
        if (i >= MT_CONFIG_ALLOW_MAX)
            return mt_config_reader_fail(reader, element, element_key,
                                         "too many entries; at most %d patterns per port",
                                         MT_CONFIG_ALLOW_MAX);
        /* Counted first, so that compacting the patterns sees the ones read so far. */
        rule->allow[i] = MT_CONFIG_NO_PATTERN;
        rule->allow_count = (unsigned)i + 1;
        MT_GUARD(mt_config_read_pattern(load, element, element_key, &rule->allow[i]));
    }
    return MT_OK_RESULT;
}

static MT_RESULT read_inbound_rule_opaque(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    char key[64];
    return mt_config_read_bool(&load->reader, setting,
                               rule_member_key(load, "opaque", key, sizeof(key)),
                               &current_inbound_rule(load)->opaque);
}

static const struct mt_config_key inbound_rule_keys[] = {
    {"port", read_inbound_rule_port},
    {"mode", read_inbound_rule_mode},
    {"allow", read_inbound_rule_allow},
    {"opaque", read_inbound_rule_opaque},
};

/* ---- a rule whole ------------------------------------------------------------------------- */

/* Reports "RULE.MEMBER: PROBLEM" at the line of the member. */
static mt_result fail_member(struct mt_config_load *load, const config_setting_t *rule,
                             const char *member, const char *problem)
{
    const config_setting_t *setting = config_setting_get_member(rule, member);
    char key[64];
    return mt_config_reader_fail(&load->reader, setting != NULL ? setting : rule,
                                 rule_member_key(load, member, key, sizeof(key)), "%s", problem);
}

static MT_RESULT check_outbound_rule(struct mt_config_load *load, const config_setting_t *group)
{
    const struct mt_outbound_rule *rule = current_outbound_rule(load);
    if ((load->seen_keys & SEEN_MODE) == 0)
        return mt_config_reader_fail_missing(&load->reader, group, load->rule_key, "mode",
                                             MT_CONFIG_OUTBOUND_MODES);
    if (rule->mode != MT_OUTBOUND_MTLS && rule->identity != MT_CONFIG_NO_PATTERN)
        return fail_member(load, group, "identity",
                           "only a rule with mode \"mtls\" can expect a server identity");
    return MT_OK_RESULT;
}

static MT_RESULT check_inbound_rule(struct mt_config_load *load, const config_setting_t *group)
{
    const struct mt_inbound_rule *rule = current_inbound_rule(load);
    if ((load->seen_keys & SEEN_PORT) == 0)
        return mt_config_reader_fail_missing(&load->reader, group, load->rule_key, "port",
                                             MT_CONFIG_PORT_EXAMPLES);
    if ((load->seen_keys & SEEN_MODE) == 0)
        return mt_config_reader_fail_missing(&load->reader, group, load->rule_key, "mode",
                                             MT_CONFIG_INBOUND_MODES);
    if (rule->mode == MT_INBOUND_PLAIN && rule->allow_count > 0)
        return fail_member(load, group, "allow",
                           "a port in mode \"plain\" has no peer identity to check; remove allow "
                           "or use \"strict\" or \"permissive\"");
    return MT_OK_RESULT;
}

/* Which list of rules is being read: its key, limits, and how to fill and check one rule. */
struct rule_list {
    const char *key;
    const char *example;
    unsigned capacity;
    unsigned *count;
    void (*start)(struct mt_config_load *load, const config_setting_t *group);
    const struct mt_config_key *keys;
    size_t key_count;
    mt_result (*check)(struct mt_config_load *load, const config_setting_t *group);
};

static void start_outbound_rule(struct mt_config_load *load, const config_setting_t *group)
{
    struct mt_outbound_rule *rule = current_outbound_rule(load);
    memset(rule, 0, sizeof(*rule));
    rule->line = config_setting_source_line(group);
    rule->to.family = AF_UNSPEC;
    rule->identity = MT_CONFIG_NO_PATTERN;
}

static void start_inbound_rule(struct mt_config_load *load, const config_setting_t *group)
{
    struct mt_inbound_rule *rule = current_inbound_rule(load);
    memset(rule, 0, sizeof(*rule));
    rule->line = config_setting_source_line(group);
}

static MT_RESULT read_rules(struct mt_config_load *load, const config_setting_t *setting,
                            const struct rule_list *list)
{
    const struct mt_config_reader *reader = &load->reader;
    bool empty_array = config_setting_is_array(setting) && config_setting_length(setting) == 0;
    if (!config_setting_is_list(setting) && !empty_array)
        return mt_config_reader_fail_type(
            reader, setting, list->key, "a list of rules (%s = ( %s );)", list->key, list->example);
    *list->count = 0;
    int length = config_setting_length(setting);
    for (int i = 0; i < length; i++) {
        const config_setting_t *group = config_setting_get_elem(setting, (unsigned)i);
        snprintf(load->rule_key, sizeof(load->rule_key), "%s[%d]", list->key, i);
        if ((unsigned)i >= list->capacity)
            return mt_config_reader_fail(reader, group, load->rule_key,
                                         "too many rules; at most %u", list->capacity);
        if (!config_setting_is_group(group))
            return mt_config_reader_fail_type(reader, group, load->rule_key, "a group (%s)",
                                              list->example);
        *list->count = (unsigned)i + 1;
        list->start(load, group);
        load->seen_keys = 0;
        MT_GUARD(
            mt_config_read_group(reader, group, load->rule_key, list->keys, list->key_count, load));
        MT_GUARD(list->check(load, group));
    }
    return MT_OK_RESULT;
}

MT_RESULT mt_config_read_outbound_rules(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    const struct rule_list list = {
        .key = "outbound.rules",
        .example = "{ to = \"10.0.0.0/8\"; ports = [5432]; mode = \"mtls\"; }",
        .capacity = MT_CONFIG_OUTBOUND_RULES_MAX,
        .count = &load->config->outbound.rule_count,
        .start = start_outbound_rule,
        .keys = outbound_rule_keys,
        .key_count = COUNT_OF(outbound_rule_keys),
        .check = check_outbound_rule,
    };
    return read_rules(load, setting, &list);
}

MT_RESULT mt_config_read_inbound_rules(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    const struct rule_list list = {
        .key = "inbound.rules",
        .example = "{ port = 8080; mode = \"strict\"; }",
        .capacity = MT_CONFIG_INBOUND_RULES_MAX,
        .count = &load->config->inbound.rule_count,
        .start = start_inbound_rule,
        .keys = inbound_rule_keys,
        .key_count = COUNT_OF(inbound_rule_keys),
        .check = check_inbound_rule,
    };
    return read_rules(load, setting, &list);
}
