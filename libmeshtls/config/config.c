/*
 * Configuration loading: libconfig text and environment variables → struct mt_config.
 *
 * Owns the top-level keys, the defaults, and the procedure: defaults, then the file, then the
 * environment. The meaning of each kind of value lives in the file named for it (internal.h
 * lists them) and the words of every message in reader.c. This code runs inside arbitrary
 * processes through LD_PRELOAD, so it must never print, exit, keep global state or half-apply
 * anything: each entry point fills a private copy and commits it only when everything is valid,
 * and every complaint is one line in the caller's reason of the form "FILE:LINE: KEY: what is
 * wrong", naming the valid values so the fix is obvious.
 */
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))

static MT_RESULT read_bounded(struct mt_config_load *load, const config_setting_t *setting,
                              const char *key, long long minimum, long long maximum,
                              unsigned *result)
{
    long long value;
    MT_GUARD(mt_config_read_integer(&load->reader, setting, key, minimum, maximum, NULL, &value));
    *result = (unsigned)value;
    return MT_OK_RESULT;
}

static MT_RESULT read_timeout(struct mt_config_load *load, const config_setting_t *setting,
                              const char *key, unsigned *timeout_ms)
{
    return read_bounded(load, setting, key, MT_CONFIG_TIMEOUT_MIN_MS, MT_CONFIG_TIMEOUT_MAX_MS,
                        timeout_ms);
}

/* ---- outbound and inbound ----------------------------------------------------------------- */

static MT_RESULT read_outbound_loopback(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    return mt_config_read_outbound_mode(&load->reader, setting, "outbound.loopback",
                                        &load->config->outbound.loopback);
}

static MT_RESULT read_outbound_default(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    return mt_config_read_outbound_mode(&load->reader, setting, "outbound.default",
                                        &load->config->outbound.other);
}

static MT_RESULT read_inbound_loopback(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    return mt_config_read_inbound_mode(&load->reader, setting, "inbound.loopback",
                                       &load->config->inbound.loopback);
}

static MT_RESULT read_inbound_default(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    return mt_config_read_inbound_mode(&load->reader, setting, "inbound.default",
                                       &load->config->inbound.other);
}

static MT_RESULT read_probe_sources(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    return mt_config_read_cidr_list(
        &load->reader, setting, "inbound.probe_sources", load->config->inbound.probe_sources,
        MT_CONFIG_PROBE_SOURCES_MAX, &load->config->inbound.probe_source_count);
}

static MT_RESULT read_probe_ports(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    return mt_config_read_port_list(&load->reader, setting, "inbound.probe_ports", true,
                                    load->config->inbound.probe_ports, MT_CONFIG_PROBE_PORTS_MAX,
                                    &load->config->inbound.probe_port_count);
}

static const struct mt_config_key outbound_keys[] = {
    {"loopback", read_outbound_loopback},
    {"default", read_outbound_default},
    {"rules", mt_config_read_outbound_rules},
};

static const struct mt_config_key inbound_keys[] = {
    {"loopback", read_inbound_loopback},     {"default", read_inbound_default},
    {"rules", mt_config_read_inbound_rules}, {"probe_sources", read_probe_sources},
    {"probe_ports", read_probe_ports},
};

static MT_RESULT read_outbound(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    if (!config_setting_is_group(setting))
        return mt_config_reader_fail_type(
            &load->reader, setting, "outbound",
            "a group (outbound = { loopback = \"plain\"; default = \"mtls\"; };)");
    return mt_config_read_group(&load->reader, setting, "outbound", outbound_keys,
                                COUNT_OF(outbound_keys), load);
}

static MT_RESULT read_inbound(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    if (!config_setting_is_group(setting))
        return mt_config_reader_fail_type(
            &load->reader, setting, "inbound",
            "a group (inbound = { loopback = \"plain\"; default = \"strict\"; };)");
    return mt_config_read_group(&load->reader, setting, "inbound", inbound_keys,
                                COUNT_OF(inbound_keys), load);
}

/* ---- the other top-level keys ------------------------------------------------------------- */

static MT_RESULT read_agent_socket(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    return mt_config_read_socket_path(&load->reader, setting, "agent_socket",
                                      load->config->agent_socket);
}

/* A uid, not a name: the preload must not call into NSS (files, LDAP) inside any process. */
static MT_RESULT read_agent_uid(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    return read_bounded(load, setting, "agent_uid", 0, INT_MAX, &load->config->agent_uid);
}

static MT_RESULT read_log_level(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    return mt_config_read_log_level(&load->reader, setting, "log_level", &load->config->log_level);
}

static MT_RESULT read_trust_domain(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    return mt_config_read_trust_domain(&load->reader, setting, "trust_domain",
                                       load->config->trust_domain);
}

static MT_RESULT read_handshake_timeout(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    return read_timeout(load, setting, "handshake_timeout_ms", &load->config->handshake_timeout_ms);
}

static MT_RESULT read_detect_timeout(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    return read_timeout(load, setting, "detect_timeout_ms", &load->config->detect_timeout_ms);
}

static MT_RESULT read_agent_timeout(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    return read_timeout(load, setting, "agent_timeout_ms", &load->config->agent_timeout_ms);
}

static MT_RESULT read_agent_wait(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    return read_bounded(load, setting, "agent_wait_ms", 0, MT_CONFIG_TIMEOUT_MAX_MS,
                        &load->config->agent_wait_ms);
}

static MT_RESULT read_resumption(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    return read_bounded(load, setting, "resumption_s", 0, MT_CONFIG_RESUMPTION_MAX_S,
                        &load->config->resumption_s);
}

static MT_RESULT read_post_quantum(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    return mt_config_read_post_quantum(&load->reader, setting, "post_quantum",
                                       &load->config->post_quantum);
}

static MT_RESULT read_skip_ports(void *context, const config_setting_t *setting)
{
    struct mt_config_load *load = context;
    return mt_config_read_port_list(&load->reader, setting, "skip_ports", true,
                                    load->config->skip_ports, MT_CONFIG_SKIP_PORTS_MAX,
                                    &load->config->skip_port_count);
}

static const struct mt_config_key top_level_keys[] = {
    {"agent_socket", read_agent_socket},
    {"agent_uid", read_agent_uid},
    {"outbound", read_outbound},
    {"inbound", read_inbound},
    {"log_level", read_log_level},
    {"trust_domain", read_trust_domain},
    {"handshake_timeout_ms", read_handshake_timeout},
    {"detect_timeout_ms", read_detect_timeout},
    {"agent_timeout_ms", read_agent_timeout},
    {"agent_wait_ms", read_agent_wait},
    {"resumption_s", read_resumption},
    {"skip_ports", read_skip_ports},
    {"post_quantum", read_post_quantum},
};

/* ---- the procedure ------------------------------------------------------------------------ */

/* The defaults that are not zero, written over a structure that is all zero bytes. */
static void set_nonzero_defaults(struct mt_config *config)
{
    strcpy(config->agent_socket, MT_CONFIG_DEFAULT_AGENT_SOCKET);
    config->agent_uid = 0;
    config->log_level = MT_LOG_WARN;
    config->outbound.loopback = MT_OUTBOUND_PLAIN;
    config->outbound.other = MT_OUTBOUND_MTLS;
    config->inbound.loopback = MT_INBOUND_PLAIN;
    config->inbound.other = MT_INBOUND_STRICT;
    config->handshake_timeout_ms = 10000;
    config->detect_timeout_ms = 10000;
    config->agent_timeout_ms = 5000;
    config->agent_wait_ms = 5000;
    config->resumption_s = MT_CONFIG_RESUMPTION_DEFAULT_S;
    config->post_quantum = MT_POST_QUANTUM_PREFER;
}

void mt_config_set_defaults(struct mt_config *config)
{
    if (config == NULL)
        return;
    memset(config, 0, sizeof(*config));
    set_nonzero_defaults(config);
}

/* Reads path over what config holds, changing it even when the file turns out to be invalid. */
static mt_result read_file_over(const char *path, struct mt_config *config, struct mt_text *reason)
{
    struct mt_config_load load = {.reader = {.path = path, .reason = reason}, .config = config};
    config_t parsed;
    mt_result result = mt_config_read_file(&load.reader, &parsed);
    if (!mt_result_is_ok(result))
        goto out;
    result = mt_config_read_group(&load.reader, config_root_setting(&parsed), NULL, top_level_keys,
                                  COUNT_OF(top_level_keys), &load);
    if (!mt_result_is_ok(result))
        goto out;
    strcpy(config->source, path);
out:
    config_destroy(&parsed);
    return result;
}

MT_RESULT mt_config_load_file(const char *path, struct mt_config *config, struct mt_text *reason)
{
    MT_ENSURE_REF(path);
    MT_ENSURE_REF(config);

    struct mt_config copy = *config;
    mt_result result = read_file_over(path, &copy, reason);
    if (mt_result_is_ok(result))
        *config = copy;
    return result;
}

/* The procedure after the defaults are in place (mt_config_load, mt_config_load_fresh). */
static MT_RESULT load_over_defaults(struct mt_config *config, struct mt_text *reason)
{
    const char *path = mt_config_environment("MESHTLS_CONFIG");
    if (path == NULL && access(MT_CONFIG_DEFAULT_PATH, F_OK) == 0)
        path = MT_CONFIG_DEFAULT_PATH;

    /*
     * The file is read straight into config, which any error below resets to the defaults:
     * copying the 30 KB structure in and out, as mt_config_load_file must, cost every process
     * start a dozen page faults.
     */
    mt_result result = MT_OK_RESULT;
    if (path != NULL) {
        result = read_file_over(path, config, reason);
        if (!mt_result_is_ok(result))
            goto out;
    }
    result = mt_config_apply_environment(config, reason);
out:
    if (!mt_result_is_ok(result))
        mt_config_set_defaults(config);
    return result;
}

MT_RESULT mt_config_load(struct mt_config *config, struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    mt_config_set_defaults(config);
    return load_over_defaults(config, reason);
}

MT_RESULT mt_config_load_fresh(struct mt_config *config, struct mt_text *reason)
{
    MT_ENSURE_REF(config);
    /*
     * No memset: the structure is zero already, and writing zeros over its 30 KB would fault in
     * all eight of its pages at every process start, where the defaults and a short file touch
     * two or three.
     */
    set_nonzero_defaults(config);
    return load_over_defaults(config, reason);
}
