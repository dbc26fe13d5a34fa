/*
 * Identity patterns in the configuration: an outbound rule's `identity`, an inbound rule's
 * `allow` entries.
 *
 * Owns the pattern text inside struct mt_config: every distinct pattern once, NUL-terminated,
 * referenced from rules by its offset, so that the struct stays a plain value that can be copied
 * and needs no freeing. It must never let a reference outlive its pattern: patterns are only
 * dropped when no rule refers to them, and every reference to a moved pattern is renamed.
 */
#include <string.h>

#include "../util/spiffe.h"
#include "internal.h"

#define PATTERN_EXPECTED                                                                           \
    "a SPIFFE ID such as \"spiffe://example.org/ns/db/sa/pg\", or one followed by \"/*\" for "     \
    "every ID below it"

static bool is_pattern_referenced(const struct mt_config *config, uint16_t offset)
{
    for (unsigned r = 0; r < config->outbound.rule_count; r++) {
        if (config->outbound.rules[r].identity == offset)
            return true;
    }
    for (unsigned r = 0; r < config->inbound.rule_count; r++) {
        const struct mt_inbound_rule *rule = &config->inbound.rules[r];
        for (unsigned a = 0; a < rule->allow_count; a++) {
            if (rule->allow[a] == offset)
                return true;
        }
    }
    return false;
}

static void rename_pattern(struct mt_config *config, uint16_t from, uint16_t to)
{
    for (unsigned r = 0; r < config->outbound.rule_count; r++) {
        if (config->outbound.rules[r].identity == from)
            config->outbound.rules[r].identity = to;
    }
    for (unsigned r = 0; r < config->inbound.rule_count; r++) {
        struct mt_inbound_rule *rule = &config->inbound.rules[r];
        for (unsigned a = 0; a < rule->allow_count; a++) {
            if (rule->allow[a] == from)
                rule->allow[a] = to;
        }
    }
}

/*
 * Drops the patterns no rule refers to any more (those of rules a file replaced), moving the
 * rest down. Patterns are stored in order and only ever move towards the start, so a reference
 * renamed here can never collide with one not yet visited.
 */
static void compact_patterns(struct mt_config *config)
{
    size_t kept = 0;
    size_t offset = 0;
    while (offset < config->pattern_text_length) {
        size_t size = strlen(config->pattern_text + offset) + 1;
        if (is_pattern_referenced(config, (uint16_t)offset)) {
            if (kept != offset) {
                memmove(config->pattern_text + kept, config->pattern_text + offset, size);
                rename_pattern(config, (uint16_t)offset, (uint16_t)kept);
            }
            kept += size;
        }
        offset += size;
    }
    config->pattern_text_length = kept;
}

/* The reference of value in the pattern text, added when it is not there yet; false when full. */
static bool intern_pattern(struct mt_config *config, const char *value, uint16_t *reference)
{
    size_t size = strlen(value) + 1;
    for (size_t offset = 0; offset < config->pattern_text_length;) {
        const char *stored = config->pattern_text + offset;
        size_t stored_size = strlen(stored) + 1;
        if (stored_size == size && memcmp(stored, value, size) == 0) {
            *reference = (uint16_t)offset;
            return true;
        }
        offset += stored_size;
    }
    if (size > sizeof(config->pattern_text) - config->pattern_text_length)
        compact_patterns(config);
    if (size > sizeof(config->pattern_text) - config->pattern_text_length)
        return false;
    memcpy(config->pattern_text + config->pattern_text_length, value, size);
    *reference = (uint16_t)config->pattern_text_length;
    config->pattern_text_length += size;
    return true;
}

MT_RESULT mt_config_read_pattern(struct mt_config_load *load, const config_setting_t *setting,
                                 const char *key, uint16_t *reference)
{
    const struct mt_config_reader *reader = &load->reader;
    const char *value;
    MT_GUARD(mt_config_read_string(reader, setting, key, PATTERN_EXPECTED, &value));
    size_t length = strlen(value);
    if (length > MT_CONFIG_PATTERN_MAX)
        return mt_config_reader_fail_value(reader, setting, key, value,
                                           "is %zu bytes long; a pattern is at most %d bytes",
                                           length, MT_CONFIG_PATTERN_MAX);
    if (!mt_spiffe_is_valid_pattern(value, length))
        return mt_config_reader_fail_value(reader, setting, key, value,
                                           "is not an identity pattern (" PATTERN_EXPECTED ")");
    if (!intern_pattern(load->config, value, reference))
        return mt_config_reader_fail(reader, setting, key,
                                     "identity patterns take more than %d bytes in all; cover "
                                     "several IDs with one \"/*\" pattern",
                                     MT_CONFIG_PATTERN_TEXT_MAX);
    return MT_OK_RESULT;
}

const char *mt_config_pattern(const struct mt_config *config, uint16_t reference)
{
    if (config == NULL || reference == MT_CONFIG_NO_PATTERN ||
        reference >= config->pattern_text_length ||
        config->pattern_text_length > sizeof(config->pattern_text))
        return NULL;
    return config->pattern_text + reference;
}
