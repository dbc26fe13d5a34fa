/*
 * Address blocks in the configuration: an outbound rule's `to` and inbound.probe_sources (or
 * MESHTLS_PROBE_SOURCES), each an IPv4 or IPv6 address or CIDR.
 *
 * Owns the text forms of struct mt_cidr, reading and writing them back. It must never accept an
 * address with bits set beyond its prefix (the reader meant another network than the one that
 * would be matched: the message names the network instead), a zone index, or any form inet_pton
 * does not take strictly.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define CIDR_EXAMPLES "such as \"10.0.0.0/8\", \"2001:db8::/32\" or \"10.1.2.3\""

/* Clears the bits of address beyond prefix_length; true when any was set. */
static bool clear_host_bits(uint8_t *address, size_t size, unsigned prefix_length)
{
    bool any = false;
    for (size_t i = 0; i < size; i++) {
        unsigned first_bit = (unsigned)i * 8;
        uint8_t mask = 0xff;
        if (prefix_length >= first_bit + 8)
            continue;
        if (prefix_length > first_bit)
            mask = (uint8_t)(0xff >> (prefix_length - first_bit));
        if ((address[i] & mask) != 0)
            any = true;
        address[i] &= (uint8_t)~mask;
    }
    return any;
}

/*
 * "ADDRESS" or "ADDRESS/PREFIX" in the strict forms inet_pton accepts (dotted quad, RFC 4291
 * text), no zone index. Returns false for text that is neither; *host_bits_set says the address
 * had bits beyond the prefix (cidr then holds the network).
 */
static bool parse_cidr(const char *text, struct mt_cidr *cidr, bool *host_bits_set)
{
    char address[INET6_ADDRSTRLEN];
    const char *slash = strchr(text, '/');
    size_t address_length = slash != NULL ? (size_t)(slash - text) : strlen(text);
    if (address_length >= sizeof(address))
        return false;
    memcpy(address, text, address_length);
    address[address_length] = '\0';
    memset(cidr, 0, sizeof(*cidr));
    if (inet_pton(AF_INET, address, cidr->address) == 1)
        cidr->family = AF_INET;
    else if (inet_pton(AF_INET6, address, cidr->address) == 1)
        cidr->family = AF_INET6;
    else
        return false;
    unsigned maximum = cidr->family == AF_INET ? 32 : 128;
    unsigned prefix_length = maximum;
    if (slash != NULL) {
        const char *digits = slash + 1;
        size_t length = strlen(digits);
        if (length == 0 || length > 3)
            return false;
        prefix_length = 0;
        for (size_t i = 0; i < length; i++) {
            if (digits[i] < '0' || digits[i] > '9')
                return false;
            prefix_length = prefix_length * 10 + (unsigned)(digits[i] - '0');
        }
        if (prefix_length > maximum)
            return false;
    }
    cidr->prefix_length = (uint8_t)prefix_length;
    *host_bits_set = clear_host_bits(cidr->address, maximum / 8, prefix_length);
    return true;
}

bool mt_config_check_cidr(const char *value, struct mt_cidr *cidr, struct mt_text *problem)
{
    bool host_bits_set = false;
    if (!parse_cidr(value, cidr, &host_bits_set)) {
        mt_text_append(problem, "is not an IP address or CIDR (" CIDR_EXAMPLES ")");
        return false;
    }
    if (host_bits_set) {
        mt_text_append(problem, "has bits set beyond its /%u prefix; the network is \"",
                       (unsigned)cidr->prefix_length);
        mt_config_append_cidr(problem, cidr);
        mt_text_append(problem, "\"");
        return false;
    }
    return true;
}

MT_RESULT mt_config_read_cidr(const struct mt_config_reader *reader,
                              const config_setting_t *setting, const char *key,
                              struct mt_cidr *cidr)
{
    const char *value;
    MT_GUARD(mt_config_read_string(reader, setting, key, "an IP address or CIDR, " CIDR_EXAMPLES,
                                   &value));
    char problem[200];
    struct mt_text problem_text = mt_text_on(problem, sizeof(problem));
    if (!mt_config_check_cidr(value, cidr, &problem_text))
        return mt_config_reader_fail_value(reader, setting, key, value, "%s", problem);
    return MT_OK_RESULT;
}

MT_RESULT mt_config_read_cidr_list(const struct mt_config_reader *reader,
                                   const config_setting_t *setting, const char *key,
                                   struct mt_cidr *cidrs, unsigned capacity, unsigned *count)
{
    if (!mt_config_is_sequence(setting))
        return mt_config_reader_fail_type(
            reader, setting, key, "an array of addresses or CIDRs (such as [\"10.0.3.7\"])");
    int length = config_setting_length(setting);
    for (int i = 0; i < length; i++) {
        const config_setting_t *element = config_setting_get_elem(setting, (unsigned)i);
        char element_key[96];
        snprintf(element_key, sizeof(element_key), "%s[%d]", key, i);
        if ((unsigned)i >= capacity)
            return mt_config_reader_fail(reader, element, element_key,
                                         "too many entries; at most %u addresses or CIDRs",
                                         capacity);
        MT_GUARD(mt_config_read_cidr(reader, element, element_key, &cidrs[i]));
    }
    *count = (unsigned)length;
    return MT_OK_RESULT;
}

void mt_config_append_cidr(struct mt_text *text, const struct mt_cidr *cidr)
{
    char address[INET6_ADDRSTRLEN];
    if (inet_ntop(cidr->family, cidr->address, address, sizeof(address)) == NULL) {
        mt_text_append(text, "?");
        return;
    }
    unsigned maximum = cidr->family == AF_INET ? 32 : 128;
    if (cidr->prefix_length == maximum)
        mt_text_append(text, "%s", address);
    else
        mt_text_append(text, "%s/%u", address, (unsigned)cidr->prefix_length);
}
