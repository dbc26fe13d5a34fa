/*
 * The effective configuration written back as libconfig text (`meshtls config check`).
 *
 * Owns the text form of a whole struct mt_config. It must never write anything that would not
 * load back into the same configuration (the config fuzz target checks that round trip), and
 * never hide a value: defaults are written out like any other, so what is printed is what runs.
 */
#include <stdint.h>
#include <sys/socket.h>

#include "internal.h"

static void append_pattern(struct mt_text *out, const struct mt_config *config, uint16_t reference)
{
    const char *pattern = mt_config_pattern(config, reference);
    mt_config_append_quoted(out, pattern != NULL ? pattern : "", SIZE_MAX);
}

static void describe_outbound(struct mt_text *out, const struct mt_config *config)
{
    const char *loopback = mt_outbound_mode_name(config->outbound.loopback);
    const char *other = mt_outbound_mode_name(config->outbound.other);
    if (config->outbound.rule_count == 0) {
        mt_text_append(out, "outbound = { loopback = \"%s\"; default = \"%s\"; };\n", loopback,
                       other);
        return;
    }
    mt_text_append(out,
                   "outbound = {\n    loopback = \"%s\";\n    default = \"%s\";\n    rules = (\n",
                   loopback, other);
    for (unsigned r = 0; r < config->outbound.rule_count; r++) {
        const struct mt_outbound_rule *rule = &config->outbound.rules[r];
        mt_text_append(out, "        {");
        if (rule->to.family != AF_UNSPEC) {
            mt_text_append(out, " to = \"");
            mt_config_append_cidr(out, &rule->to);
            mt_text_append(out, "\";");
        }
        if (rule->port_count > 0) {
            mt_text_append(out, " ports = ");
            mt_config_append_ports(out, rule->ports, rule->port_count);
            mt_text_append(out, ";");
        }
        mt_text_append(out, " mode = \"%s\";", mt_outbound_mode_name(rule->mode));
        if (rule->identity != MT_CONFIG_NO_PATTERN) {
            mt_text_append(out, " identity = ");
            append_pattern(out, config, rule->identity);
            mt_text_append(out, ";");
        }
        mt_text_append(out, " }%s\n", r + 1 < config->outbound.rule_count ? "," : "");
    }
    mt_text_append(out, "    );\n};\n");
}

/* " probe_sources = [...]; probe_ports = [...];", empty lists too: nothing is hidden. */
static void describe_probes(struct mt_text *out, const struct mt_config *config)
{
    mt_text_append(out, " probe_sources = [");
    for (unsigned s = 0; s < config->inbound.probe_source_count; s++) {
        mt_text_append(out, "%s\"", s > 0 ? ", " : "");
        mt_config_append_cidr(out, &config->inbound.probe_sources[s]);
        mt_text_append(out, "\"");
    }
    mt_text_append(out, "]; probe_ports = ");
    mt_config_append_ports(out, config->inbound.probe_ports, config->inbound.probe_port_count);
    mt_text_append(out, ";");
}

static void describe_inbound(struct mt_text *out, const struct mt_config *config)
{
    const char *loopback = mt_inbound_mode_name(config->inbound.loopback);
    const char *other = mt_inbound_mode_name(config->inbound.other);
    if (config->inbound.rule_count == 0) {
        mt_text_append(out, "inbound = { loopback = \"%s\"; default = \"%s\";", loopback, other);
        describe_probes(out, config);
        mt_text_append(out, " };\n");
        return;
    }
    mt_text_append(out, "inbound = {\n    loopback = \"%s\";\n    default = \"%s\";\n   ", loopback,
                   other);
    describe_probes(out, config);
    mt_text_append(out, "\n");
    mt_text_append(out, "    rules = (\n");
    for (unsigned r = 0; r < config->inbound.rule_count; r++) {
        const struct mt_inbound_rule *rule = &config->inbound.rules[r];
        if (rule->port.first == rule->port.last)
            mt_text_append(out, "        { port = %u;", (unsigned)rule->port.first);
        else
            mt_text_append(out, "        { port = \"%u-%u\";", (unsigned)rule->port.first,
                           (unsigned)rule->port.last);
        mt_text_append(out, " mode = \"%s\";", mt_inbound_mode_name(rule->mode));
        if (rule->allow_count > 0) {
            mt_text_append(out, " allow = [");
            for (unsigned a = 0; a < rule->allow_count; a++) {
                mt_text_append(out, "%s", a > 0 ? ", " : "");
                append_pattern(out, config, rule->allow[a]);
            }
            mt_text_append(out, "];");
        }
        if (rule->opaque)
            mt_text_append(out, " opaque = true;");
        mt_text_append(out, " }%s\n", r + 1 < config->inbound.rule_count ? "," : "");
    }
    mt_text_append(out, "    );\n};\n");
}

size_t mt_config_describe(const struct mt_config *config, char *text, size_t capacity)
{
    struct mt_text out = mt_text_on(text, capacity);
    if (config == NULL)
        return 0;
    mt_text_append(&out, "# meshtls configuration, from ");
    if (config->source[0] != '\0')
        mt_config_append_quoted(&out, config->source, SIZE_MAX);
    else
        mt_text_append(&out, "built-in defaults");
    mt_text_append(&out, "\nagent_socket = ");
    mt_config_append_quoted(&out, config->agent_socket, SIZE_MAX);
    mt_text_append(&out, ";\nagent_uid = %u;\n", config->agent_uid);
    describe_outbound(&out, config);
    describe_inbound(&out, config);
    mt_text_append(&out, "skip_ports = ");
    mt_config_append_ports(&out, config->skip_ports, config->skip_port_count);
    mt_text_append(&out, ";\nlog_level = \"%s\";\n", mt_log_level_name(config->log_level));
    mt_text_append(&out, "trust_domain = ");
    mt_config_append_quoted(&out, config->trust_domain, SIZE_MAX);
    mt_text_append(
        &out,
        ";\nhandshake_timeout_ms = %u;\ndetect_timeout_ms = %u;\nagent_timeout_ms = %u;\n"
        "agent_wait_ms = %u;\nresumption_s = %u;\npost_quantum = \"%s\";\n",
        config->handshake_timeout_ms, config->detect_timeout_ms, config->agent_timeout_ms,
        config->agent_wait_ms, config->resumption_s, mt_post_quantum_name(config->post_quantum));
    return out.needed;
}
