/*
 * Ports and port ranges in the configuration: skip_ports, an outbound rule's ports, an inbound
 * rule's port, inbound.probe_ports (or MESHTLS_PROBE_PORTS).
 *
 * Owns the forms a port takes (8080, "8080", "8000-8999"), reading them and writing them back.
 * It must never accept port 0, a port beyond 65535, a range whose first port is above its last,
 * or text with anything but decimal digits and one dash: a port that reads as another is a rule
 * applied to the wrong service.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Decimal digits only, 1 .. 65535: no sign, no spaces, no empty text. */
static bool parse_port_number(const char *text, size_t length, uint16_t *port)
{
    if (length == 0 || length > 5)
        return false;
    unsigned value = 0;
    for (size_t i = 0; i < length; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        value = value * 10 + (unsigned)(text[i] - '0');
    }
    if (value < 1 || value > 65535)
        return false;
    *port = (uint16_t)value;
    return true;
}

/* "8080" or "8000-8999". */
static bool parse_port_range(const char *text, struct mt_port_range *range)
{
    const char *dash = strchr(text, '-');
    size_t length = strlen(text);
    if (dash == NULL) {
        if (!parse_port_number(text, length, &range->first))
            return false;
        range->last = range->first;
        return true;
    }
    return parse_port_number(text, (size_t)(dash - text), &range->first) &&
           parse_port_number(dash + 1, length - (size_t)(dash - text) - 1, &range->last) &&
           range->first <= range->last;
}

bool mt_config_check_port_range(const char *value, struct mt_port_range *range,
                                struct mt_text *problem)
{
    if (parse_port_range(value, range))
        return true;
    mt_text_append(problem, "is not a port or port range (" MT_CONFIG_PORT_EXAMPLES
                            "; ports 1 .. 65535, FIRST <= LAST)");
    return false;
}

MT_RESULT mt_config_read_port_range(const struct mt_config_reader *reader,
                                    const config_setting_t *setting, const char *key,
                                    struct mt_port_range *range)
{
    long long value;
    switch (config_setting_type(setting)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        MT_GUARD(mt_config_read_integer(reader, setting, key, 1, 65535, NULL, &value));
        range->first = (uint16_t)value;
        range->last = (uint16_t)value;
        return MT_OK_RESULT;
    case CONFIG_TYPE_STRING: {
        const char *text = config_setting_get_string(setting);
        if (text != NULL && parse_port_range(text, range))
            return MT_OK_RESULT;
        return mt_config_reader_fail_value(reader, setting, key, text != NULL ? text : "",
                                           "is not a port or port range (" MT_CONFIG_PORT_EXAMPLES
                                           "; ports 1 .. 65535, FIRST <= LAST)");
    }
    default:
        return mt_config_reader_fail_type(reader, setting, key, "a port (%s)",
                                          MT_CONFIG_PORT_EXAMPLES);
    }
}

MT_RESULT mt_config_read_port_list(const struct mt_config_reader *reader,
                                   const config_setting_t *setting, const char *key,
                                   bool allow_empty, struct mt_port_range *ranges,
                                   unsigned capacity, unsigned *count)
{
    if (!mt_config_is_sequence(setting))
        return mt_config_reader_fail_type(
            reader, setting, key, "an array of ports (such as [5432, 6379] or [\"8000-8999\"])");
    int length = config_setting_length(setting);
    if (length == 0 && !allow_empty)
        return mt_config_reader_fail(
            reader, setting, key,
            "an empty list matches no port; leave the key out to match every port");
    for (int i = 0; i < length; i++) {
        const config_setting_t *element = config_setting_get_elem(setting, (unsigned)i);
        char element_key[96];
        snprintf(element_key, sizeof(element_key), "%s[%d]", key, i);
        if ((unsigned)i >= capacity)
            return mt_config_reader_fail(reader, element, element_key,
                                         "too many entries; at most %u ports or ranges", capacity);
        MT_GUARD(mt_config_read_port_range(reader, element, element_key, &ranges[i]));
    }
    *count = (unsigned)length;
    return MT_OK_RESULT;
}

void mt_config_append_ports(struct mt_text *text, const struct mt_port_range *ranges,
                            unsigned count)
{
    bool all_single = true;
    for (unsigned i = 0; i < count; i++)
        all_single = all_single && ranges[i].first == ranges[i].last;
    mt_text_append(text, "[");
    for (unsigned i = 0; i < count; i++) {
        const char *separator = i > 0 ? ", " : "";
        if (all_single)
            mt_text_append(text, "%s%u", separator, (unsigned)ranges[i].first);
        else if (ranges[i].first == ranges[i].last)
            mt_text_append(text, "%s\"%u\"", separator, (unsigned)ranges[i].first);
        else
            mt_text_append(text, "%s\"%u-%u\"", separator, (unsigned)ranges[i].first,
                           (unsigned)ranges[i].last);
    }
    mt_text_append(text, "]");
}
