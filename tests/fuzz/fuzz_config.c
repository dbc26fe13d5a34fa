/*
 * libFuzzer target for the configuration parser (config/: config.c and the readers it uses).
 *
 * The input becomes the content of an in-memory file (memfd), loaded through the same path a
 * real file takes. A load must either succeed or fail with a one-line message; a successful one
 * is described, and the description must load back to the same configuration. Inputs using
 * @include are skipped: they would make libconfig read arbitrary files of the fuzzing machine.
 * The same input, split at its first newline, is then given as MESHTLS_PROBE_SOURCES and
 * MESHTLS_PROBE_PORTS (the comma-separated lists of environment.c): they must apply or fail with
 * a one-line message naming the variable, and a failure must change nothing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/*
 * libconfig 1.5's scanner leaks the text of string literals when a syntax error follows them
 * (`key "value";` with no '=', or adjacent literals in the wrong place); the allocations are made
 * in libconfig_yylex and strbuf_append. The leak is in the dependency, at most once per failed
 * load, so LeakSanitizer ignores exactly those allocation sites. Settings that our code failed
 * to free would still be reported: they are allocated by the parser, not the scanner, and the
 * unit tests run without any suppression.
 */
__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void)
{
    return "leak:libconfig_yylex\nleak:strbuf_append\n";
}

static void require(bool condition)
{
    if (!condition)
        abort();
}

/* Writes bytes to a new memfd; its /proc path goes in path. -1 when the system refuses. */
static int memory_file(const void *bytes, size_t length, char *path, size_t capacity)
{
    int fd = memfd_create("meshtls-fuzz-config", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    const uint8_t *cursor = bytes;
    while (length > 0) {
        ssize_t written = write(fd, cursor, length);
        if (written <= 0) {
            close(fd);
            return -1;
        }
        cursor += written;
        length -= (size_t)written;
    }
    snprintf(path, capacity, "/proc/self/fd/%d", fd);
    return fd;
}

static bool patterns_equal(const struct mt_config *a, uint16_t a_reference,
                           const struct mt_config *b, uint16_t b_reference)
{
    const char *x = mt_config_pattern(a, a_reference);
    const char *y = mt_config_pattern(b, b_reference);
    return (x == NULL && y == NULL) || (x != NULL && y != NULL && strcmp(x, y) == 0);
}

static bool ranges_equal(const struct mt_port_range *a, const struct mt_port_range *b,
                         unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        if (a[i].first != b[i].first || a[i].last != b[i].last)
            return false;
    }
    return true;
}

static bool outbound_rules_equal(const struct mt_config *a, const struct mt_config *b)
{
    if (a->outbound.rule_count != b->outbound.rule_count)
        return false;
    for (unsigned r = 0; r < a->outbound.rule_count; r++) {
        const struct mt_outbound_rule *x = &a->outbound.rules[r];
        const struct mt_outbound_rule *y = &b->outbound.rules[r];
        if (x->to.family != y->to.family || x->to.prefix_length != y->to.prefix_length ||
            memcmp(x->to.address, y->to.address, sizeof(x->to.address)) != 0 ||
            x->port_count != y->port_count || !ranges_equal(x->ports, y->ports, x->port_count) ||
            x->mode != y->mode || !patterns_equal(a, x->identity, b, y->identity))
            return false;
    }
    return true;
}

static bool inbound_rules_equal(const struct mt_config *a, const struct mt_config *b)
{
    if (a->inbound.rule_count != b->inbound.rule_count)
        return false;
    for (unsigned r = 0; r < a->inbound.rule_count; r++) {
        const struct mt_inbound_rule *x = &a->inbound.rules[r];
        const struct mt_inbound_rule *y = &b->inbound.rules[r];
        if (!ranges_equal(&x->port, &y->port, 1) || x->mode != y->mode || x->opaque != y->opaque ||
            x->allow_count != y->allow_count)
            return false;
        for (unsigned i = 0; i < x->allow_count; i++) {
            if (!patterns_equal(a, x->allow[i], b, y->allow[i]))
                return false;
        }
    }
    return true;
}

static bool probes_equal(const struct mt_config *a, const struct mt_config *b)
{
    if (a->inbound.probe_source_count != b->inbound.probe_source_count ||
        a->inbound.probe_port_count != b->inbound.probe_port_count)
        return false;
    for (unsigned s = 0; s < a->inbound.probe_source_count; s++) {
        const struct mt_cidr *x = &a->inbound.probe_sources[s];
        const struct mt_cidr *y = &b->inbound.probe_sources[s];
        if (x->family != y->family || x->prefix_length != y->prefix_length ||
            memcmp(x->address, y->address, sizeof(x->address)) != 0)
            return false;
    }
    return ranges_equal(a->inbound.probe_ports, b->inbound.probe_ports,
                        a->inbound.probe_port_count);
}

static bool configs_equal(const struct mt_config *a, const struct mt_config *b)
{
    return strcmp(a->agent_socket, b->agent_socket) == 0 && a->log_level == b->log_level &&
           a->outbound.loopback == b->outbound.loopback && a->outbound.other == b->outbound.other &&
           a->inbound.loopback == b->inbound.loopback && a->inbound.other == b->inbound.other &&
           strcmp(a->trust_domain, b->trust_domain) == 0 &&
           a->handshake_timeout_ms == b->handshake_timeout_ms &&
           a->detect_timeout_ms == b->detect_timeout_ms &&
           a->agent_timeout_ms == b->agent_timeout_ms && outbound_rules_equal(a, b) &&
           inbound_rules_equal(a, b) && a->skip_port_count == b->skip_port_count &&
           ranges_equal(a->skip_ports, b->skip_ports, a->skip_port_count) && probes_equal(a, b);
}

/* The description of a loaded config must load back to the same config. */
static void check_describe_round_trip(const struct mt_config *loaded)
{
    size_t length = mt_config_describe(loaded, NULL, 0);
    char *text = malloc(length + 1);
    if (text == NULL)
        return;
    require(mt_config_describe(loaded, text, length + 1) == length);
    require(strlen(text) == length);
    char path[64];
    int fd = memory_file(text, length, path, sizeof(path));
    free(text);
    if (fd < 0)
        return;
    static struct mt_config reloaded;
    mt_config_set_defaults(&reloaded);
    char message[MT_CONFIG_MESSAGE_MAX];
    require(mt_result_is_ok(mt_config_load_file(path, &reloaded, MT_TEXT_ON(message))));
    require(configs_equal(loaded, &reloaded));
    close(fd);
}

/* The input as the two probe variables: up to the first newline, and after it. */
static void check_probe_variables(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return;
    memcpy(text, data, size);
    text[size] = '\0';
    char *newline = strchr(text, '\n');
    const char *ports = "";
    if (newline != NULL) {
        *newline = '\0';
        ports = newline + 1;
    }
    setenv("MESHTLS_PROBE_SOURCES", text, 1);
    setenv("MESHTLS_PROBE_PORTS", ports, 1);
    static struct mt_config config;
    static struct mt_config before;
    mt_config_set_defaults(&config);
    before = config;
    char message[MT_CONFIG_MESSAGE_MAX];
    mt_result result = mt_config_apply_environment(&config, MT_TEXT_ON(message));
    if (!mt_result_is_ok(result)) {
        require(result.error == MT_ERR_CONFIG);
        require(memcmp(&config, &before, sizeof(config)) == 0);
        require(strchr(message, '\n') == NULL);
        require(strncmp(message, "MESHTLS_PROBE_", 14) == 0);
    } else {
        require(config.inbound.probe_source_count <= MT_CONFIG_PROBE_SOURCES_MAX &&
                config.inbound.probe_port_count <= MT_CONFIG_PROBE_PORTS_MAX);
        check_describe_round_trip(&config);
    }
    unsetenv("MESHTLS_PROBE_SOURCES");
    unsetenv("MESHTLS_PROBE_PORTS");
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_probe_variables(data, size);
    if (memmem(data, size, "@include", 8) != NULL)
        return 0;
    char path[64];
    int fd = memory_file(data, size, path, sizeof(path));
    if (fd < 0)
        return 0;
    static struct mt_config config;
    static struct mt_config before;
    mt_config_set_defaults(&config);
    before = config;
    char message[MT_CONFIG_MESSAGE_MAX];
    mt_result result = mt_config_load_file(path, &config, MT_TEXT_ON(message));
    if (mt_result_is_ok(result)) {
        check_describe_round_trip(&config);
    } else {
        require(result.error == MT_ERR_CONFIG);
        require(configs_equal(&config, &before) && strcmp(config.source, before.source) == 0);
        require(strchr(message, '\n') == NULL);
        require(strncmp(message, path, strlen(path)) == 0 && message[strlen(path)] == ':');
    }
    close(fd);
    return 0;
}
