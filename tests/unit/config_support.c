/*
 * What the config tests share (config_support.h): temporary files removed by the teardown, a
 * configuration unlike the defaults, comparison by meaning, and loads that must fail or succeed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config_support.h"

#define TEMP_PATH_MAX 64
#define MAX_TEMP_FILES 8

static const char *const environment_variables[] = {
    "MESHTLS_CONFIG", "MESHTLS_AGENT_SOCKET",  "MESHTLS_AGENT_UID",
    "MESHTLS_LOG",    "MESHTLS_PROBE_SOURCES", "MESHTLS_PROBE_PORTS",
};

/* Files created by the running test; the teardown removes them even when an assert fails. */
static char temp_files[MAX_TEMP_FILES][TEMP_PATH_MAX];
static size_t temp_file_count;

const char *write_temp_file(const char *content)
{
    assert_true(temp_file_count < MAX_TEMP_FILES);
    char *path = temp_files[temp_file_count];
    const char *directory = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
    assert_true(snprintf(path, TEMP_PATH_MAX, "%s/test_config.XXXXXX", directory) < TEMP_PATH_MAX);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    temp_file_count++;
    size_t length = strlen(content);
    assert_int_equal(write(fd, content, length), (ssize_t)length);
    assert_int_equal(close(fd), 0);
    return path;
}

void remove_last_temp_file(void)
{
    assert_true(temp_file_count > 0);
    temp_file_count--;
    unlink(temp_files[temp_file_count]);
}

int setup(void **state)
{
    (void)state;
    temp_file_count = 0;
    for (size_t i = 0; i < COUNT_OF(environment_variables); i++)
        unsetenv(environment_variables[i]);
    return 0;
}

int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < temp_file_count; i++)
        unlink(temp_files[i]);
    temp_file_count = 0;
    for (size_t i = 0; i < COUNT_OF(environment_variables); i++)
        unsetenv(environment_variables[i]);
    return 0;
}

/* A configuration unlike the defaults in every field, so "unchanged" and "reset" differ. */
void set_non_defaults(struct mt_config *config)
{
    mt_config_set_defaults(config);
    strcpy(config->source, "/previous.conf");
    strcpy(config->agent_socket, "/previous/agent.sock");
    config->log_level = MT_LOG_DEBUG;
    config->outbound.loopback = MT_OUTBOUND_MTLS;
    config->outbound.other = MT_OUTBOUND_PLAIN;
    config->inbound.loopback = MT_INBOUND_STRICT;
    config->inbound.other = MT_INBOUND_PLAIN;
    strcpy(config->trust_domain, "previous.example");
    config->handshake_timeout_ms = 1234;
    config->detect_timeout_ms = 2345;
    config->agent_timeout_ms = 4321;
    config->agent_wait_ms = 321;
    config->agent_uid = 999;
    config->resumption_s = 77;
    config->post_quantum = MT_POST_QUANTUM_OFF;
    config->skip_port_count = 1;
    config->skip_ports[0] = (struct mt_port_range){22, 22};
    config->inbound.probe_source_count = 1;
    config->inbound.probe_sources[0] =
        (struct mt_cidr){.family = AF_INET, .prefix_length = 24, .address = {192, 0, 2, 0}};
    config->inbound.probe_port_count = 2;
    config->inbound.probe_ports[0] = (struct mt_port_range){8081, 8081};
    config->inbound.probe_ports[1] = (struct mt_port_range){9000, 9010};
}

static void assert_patterns_equal(const struct mt_config *a, uint16_t a_reference,
                                  const struct mt_config *b, uint16_t b_reference)
{
    const char *a_pattern = mt_config_pattern(a, a_reference);
    const char *b_pattern = mt_config_pattern(b, b_reference);
    if (a_pattern == NULL || b_pattern == NULL)
        assert_true(a_pattern == NULL && b_pattern == NULL);
    else
        assert_string_equal(a_pattern, b_pattern);
}

static void assert_port_ranges_equal(const struct mt_port_range *a, const struct mt_port_range *b,
                                     unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        assert_int_equal(a[i].first, b[i].first);
        assert_int_equal(a[i].last, b[i].last);
    }
}

/* Rules compared by meaning: patterns by their text, wherever they are stored. */
static void assert_rules_equal(const struct mt_config *a, const struct mt_config *b)
{
    assert_int_equal(a->outbound.rule_count, b->outbound.rule_count);
    for (unsigned r = 0; r < a->outbound.rule_count; r++) {
        const struct mt_outbound_rule *x = &a->outbound.rules[r];
        const struct mt_outbound_rule *y = &b->outbound.rules[r];
        assert_int_equal(x->to.family, y->to.family);
        assert_int_equal(x->to.prefix_length, y->to.prefix_length);
        assert_memory_equal(x->to.address, y->to.address, sizeof(x->to.address));
        assert_int_equal(x->port_count, y->port_count);
        assert_port_ranges_equal(x->ports, y->ports, x->port_count);
        assert_int_equal(x->mode, y->mode);
        assert_patterns_equal(a, x->identity, b, y->identity);
    }
    assert_int_equal(a->inbound.rule_count, b->inbound.rule_count);
    for (unsigned r = 0; r < a->inbound.rule_count; r++) {
        const struct mt_inbound_rule *x = &a->inbound.rules[r];
        const struct mt_inbound_rule *y = &b->inbound.rules[r];
        assert_port_ranges_equal(&x->port, &y->port, 1);
        assert_int_equal(x->mode, y->mode);
        assert_int_equal(x->opaque, y->opaque);
        assert_int_equal(x->allow_count, y->allow_count);
        for (unsigned i = 0; i < x->allow_count; i++)
            assert_patterns_equal(a, x->allow[i], b, y->allow[i]);
    }
    assert_int_equal(a->skip_port_count, b->skip_port_count);
    assert_port_ranges_equal(a->skip_ports, b->skip_ports, a->skip_port_count);
    assert_int_equal(a->inbound.probe_source_count, b->inbound.probe_source_count);
    for (unsigned s = 0; s < a->inbound.probe_source_count; s++) {
        const struct mt_cidr *x = &a->inbound.probe_sources[s];
        const struct mt_cidr *y = &b->inbound.probe_sources[s];
        assert_int_equal(x->family, y->family);
        assert_int_equal(x->prefix_length, y->prefix_length);
        assert_memory_equal(x->address, y->address, sizeof(x->address));
    }
    assert_int_equal(a->inbound.probe_port_count, b->inbound.probe_port_count);
    assert_port_ranges_equal(a->inbound.probe_ports, b->inbound.probe_ports,
                             a->inbound.probe_port_count);
}

void assert_configs_equal(const struct mt_config *a, const struct mt_config *b)
{
    assert_string_equal(a->source, b->source);
    assert_string_equal(a->agent_socket, b->agent_socket);
    assert_int_equal(a->agent_uid, b->agent_uid);
    assert_int_equal(a->log_level, b->log_level);
    assert_int_equal(a->outbound.loopback, b->outbound.loopback);
    assert_int_equal(a->outbound.other, b->outbound.other);
    assert_int_equal(a->inbound.loopback, b->inbound.loopback);
    assert_int_equal(a->inbound.other, b->inbound.other);
    assert_string_equal(a->trust_domain, b->trust_domain);
    assert_int_equal(a->handshake_timeout_ms, b->handshake_timeout_ms);
    assert_int_equal(a->detect_timeout_ms, b->detect_timeout_ms);
    assert_int_equal(a->agent_timeout_ms, b->agent_timeout_ms);
    assert_int_equal(a->agent_wait_ms, b->agent_wait_ms);
    assert_int_equal(a->resumption_s, b->resumption_s);
    assert_int_equal(a->post_quantum, b->post_quantum);
    assert_rules_equal(a, b);
}

/* Loads content and expects exactly the message "<file>:<suffix>" with config untouched. */
void assert_load_fails(const char *content, const char *expected_suffix)
{
    const char *path = write_temp_file(content);
    struct mt_config config;
    set_non_defaults(&config);
    struct mt_config before;
    memcpy(&before, &config, sizeof(config));
    char message[MT_CONFIG_MESSAGE_MAX];
    mt_result result = mt_config_load_file(path, &config, MT_TEXT_ON(message));
    char expected[MT_CONFIG_MESSAGE_MAX];
    snprintf(expected, sizeof(expected), "%s:%s", path, expected_suffix);
    if (result.error != MT_ERR_CONFIG)
        fail_msg("config \"%s\": %s, message \"%s\"", content, mt_error_name(result.error),
                 message);
    assert_string_equal(message, expected);
    assert_memory_equal(&config, &before, sizeof(config));
}

void load_ok(const char *content, struct mt_config *config)
{
    const char *path = write_temp_file(content);
    char message[MT_CONFIG_MESSAGE_MAX];
    mt_result result = mt_config_load_file(path, config, MT_TEXT_ON(message));
    if (!mt_result_is_ok(result))
        fail_msg("%s\n%s", message, content);
}

void describe_and_reload(const struct mt_config *original)
{
    static char text[8192];
    mt_config_describe(original, text, sizeof(text));
    const char *path = write_temp_file(text);
    struct mt_config reloaded;
    set_non_defaults(&reloaded);
    char message[MT_CONFIG_MESSAGE_MAX];
    mt_result result = mt_config_load_file(path, &reloaded, MT_TEXT_ON(message));
    if (!mt_result_is_ok(result))
        fail_msg("describe output does not load: %s\n%s", message, text);
    struct mt_config expected = *original;
    strcpy(expected.source, path);
    assert_configs_equal(&reloaded, &expected);
}
