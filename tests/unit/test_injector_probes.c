/*
 * Tests for injector/probes.c: the ports a container's probes reach, which become
 * MESHTLS_PROBE_PORTS. A port left out would make the kubelet's plaintext probe meet a TLS-only
 * listener, a port added would serve a port in plaintext to the node for nothing: both
 * directions are checked, and named ports are resolved against the container's own ports only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "injector/probes.h"

static struct json_object *parse(const char *text)
{
    struct json_object *object = json_tokener_parse(text);
    assert_non_null(object);
    return object;
}

/* The ports of container (JSON) formatted, or NULL when reading them fails (reason kept). */
static const char *ports_of(const char *container_json, char *text, size_t capacity, char *reason,
                            size_t reason_capacity)
{
    struct json_object *container = parse(container_json);
    struct mt_injector_probe_ports ports;
    struct mt_text explanation = mt_text_on(reason, reason_capacity);
    mt_result result = mt_injector_probe_ports_of(container, &ports, &explanation);
    json_object_put(container);
    if (!mt_result_is_ok(result)) {
        assert_int_equal(result.error, MT_ERR_CONFIG);
        return NULL;
    }
    mt_injector_probe_ports_format(&ports, text, capacity);
    return text;
}

static void test_probe_ports_of_named_ports_resolve_sorted_without_duplicates(void **state)
{
    char text[32];
    char reason[256];
    const char *ports =
        ports_of("{\"name\": \"web\", \"ports\": [{\"name\": \"http\", \"containerPort\": 8080},"
                 " {\"name\": \"admin\", \"containerPort\": 9901}],"
                 " \"livenessProbe\": {\"httpGet\": {\"path\": \"/\", \"port\": \"admin\"}},"
                 " \"readinessProbe\": {\"httpGet\": {\"port\": \"http\"}},"
                 " \"startupProbe\": {\"tcpSocket\": {\"port\": 8080}}}",
                 text, sizeof(text), reason, sizeof(reason));
    assert_non_null(ports);
    assert_string_equal(ports, "8080,9901");
}

static void test_probe_ports_of_exec_and_no_probes_give_none(void **state)
{
    char text[32];
    char reason[256];
    assert_string_equal(ports_of("{\"name\": \"job\"}", text, sizeof(text), reason, sizeof(reason)),
                        "");
    assert_string_equal(ports_of("{\"name\": \"job\", \"ports\": [{\"containerPort\": 80}],"
                                 " \"livenessProbe\": {\"exec\": {\"command\": [\"true\"]}}}",
                                 text, sizeof(text), reason, sizeof(reason)),
                        "");
}

static void test_probe_ports_of_grpc_and_quoted_numbers_are_ports(void **state)
{
    char text[32];
    char reason[256];
    assert_string_equal(ports_of("{\"name\": \"api\","
                                 " \"livenessProbe\": {\"grpc\": {\"port\": 50051}},"
                                 " \"readinessProbe\": {\"tcpSocket\": {\"port\": \"9090\"}}}",
                                 text, sizeof(text), reason, sizeof(reason)),
                        "9090,50051");
}

static void test_probe_ports_of_unknown_name_fails_naming_it(void **state)
{
    char text[32];
    char reason[256];
    /* "metrics" is a port name of no port of this container. */
    assert_null(ports_of("{\"name\": \"web\", \"ports\": [{\"name\": \"http\","
                         " \"containerPort\": 8080}],"
                         " \"readinessProbe\": {\"httpGet\": {\"port\": \"metrics\"}}}",
                         text, sizeof(text), reason, sizeof(reason)));
    assert_non_null(strstr(reason, "container \"web\": readinessProbe.httpGet.port \"metrics\" "
                                   "names no port of the container"));
}

static void test_probe_ports_of_bad_numbers_and_types_fail(void **state)
{
    static const char *const containers[] = {
        "{\"name\": \"c\", \"livenessProbe\": {\"tcpSocket\": {\"port\": 0}}}",
        "{\"name\": \"c\", \"livenessProbe\": {\"tcpSocket\": {\"port\": 65536}}}",
        "{\"name\": \"c\", \"livenessProbe\": {\"tcpSocket\": {\"port\": -80}}}",
        "{\"name\": \"c\", \"livenessProbe\": {\"tcpSocket\": {\"port\": 80.5}}}",
        "{\"name\": \"c\", \"livenessProbe\": {\"tcpSocket\": {}}}",
        "{\"name\": \"c\", \"livenessProbe\": {\"tcpSocket\": \"80\"}}",
        "{\"name\": \"c\", \"livenessProbe\": 3}",
        /* grpc takes a number only: a name is not resolved. */
        "{\"name\": \"c\", \"ports\": [{\"name\": \"grpc\", \"containerPort\": 50051}],"
        " \"livenessProbe\": {\"grpc\": {\"port\": \"grpc\"}}}",
        /* One handler per probe, as the API server requires. */
        "{\"name\": \"c\", \"livenessProbe\": {\"tcpSocket\": {\"port\": 80},"
        " \"httpGet\": {\"port\": 81}}}",
    };
    for (size_t i = 0; i < sizeof(containers) / sizeof(containers[0]); i++) {
        char text[32];
        char reason[256];
        assert_null(ports_of(containers[i], text, sizeof(text), reason, sizeof(reason)));
        assert_non_null(strstr(reason, "container \"c\": livenessProbe"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_ports_of_named_ports_resolve_sorted_without_duplicates),
        cmocka_unit_test(test_probe_ports_of_exec_and_no_probes_give_none),
        cmocka_unit_test(test_probe_ports_of_grpc_and_quoted_numbers_are_ports),
        cmocka_unit_test(test_probe_ports_of_unknown_name_fails_naming_it),
        cmocka_unit_test(test_probe_ports_of_bad_numbers_and_types_fail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
