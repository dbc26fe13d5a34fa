/*
 * The probe ports of a container (see probes.h).
 *
 * Owns the reading of a Container's livenessProbe, readinessProbe and startupProbe handlers and
 * the resolution of named ports against the container's own `ports`, as the kubelet resolves
 * them (by name, in that container only). Must never guess: a port it cannot resolve is an
 * error for the caller to report, not a port left out, since a left-out port would make the
 * kubelet's plaintext probe meet a TLS-only listener and the pod restart in a loop.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "probes.h"

static const char *const PROBE_KINDS[MT_INJECTOR_PROBES_MAX] = {"livenessProbe", "readinessProbe",
                                                                "startupProbe"};
/* The handlers whose port the kubelet connects to; exec probes run inside the container. */
static const char *const HANDLERS[] = {"httpGet", "tcpSocket", "grpc"};

static const char *container_name(struct json_object *container)
{
    struct json_object *name;
    if (json_object_object_get_ex(container, "name", &name) &&
        json_object_is_type(name, json_type_string))
        return json_object_get_string(name);
    return "(unnamed)";
}

static bool is_port_number(int64_t number)
{
    return number >= 1 && number <= 65535;
}

/* The containerPort of the container's port named name; 0 when it has none so named. */
static int64_t named_port(struct json_object *container, const char *name)
{
    struct json_object *ports;
    if (!json_object_object_get_ex(container, "ports", &ports) ||
        !json_object_is_type(ports, json_type_array))
        return 0;
    for (size_t i = 0; i < json_object_array_length(ports); i++) {
        struct json_object *port = json_object_array_get_idx(ports, i);
        struct json_object *port_name;
        struct json_object *number;
        if (json_object_object_get_ex(port, "name", &port_name) &&
            json_object_is_type(port_name, json_type_string) &&
            strcmp(json_object_get_string(port_name), name) == 0 &&
            json_object_object_get_ex(port, "containerPort", &number) &&
            json_object_is_type(number, json_type_int))
            return json_object_get_int64(number);
    }
    return 0;
}

/* A decimal string of digits only ("8080" written quoted in YAML); -1 otherwise. */
static int64_t decimal_string(const char *text)
{
    if (text[0] == '\0' || strlen(text) > 5 || strspn(text, "0123456789") != strlen(text))
        return -1;
    return strtol(text, NULL, 10);
}

static MT_RESULT port_of_handler(struct json_object *container, const char *probe_kind,
                                 const char *handler_kind, struct json_object *handler,
                                 uint16_t *port, struct mt_text *reason)
{
    const char *name = container_name(container);
    struct json_object *value;
    if (!json_object_is_type(handler, json_type_object) ||
        !json_object_object_get_ex(handler, "port", &value))
        return mt_result_explain(reason, MT_ERR_CONFIG, "container \"%s\": %s.%s has no port", name,
                                 probe_kind, handler_kind);
    int64_t number = -1;
    if (json_object_is_type(value, json_type_int)) {
        number = json_object_get_int64(value);
    } else if (json_object_is_type(value, json_type_string)) {
        const char *text = json_object_get_string(value);
        number = decimal_string(text);
        /* grpc.port is a number in the API; only httpGet and tcpSocket take names. */
        if (number < 0 && strcmp(handler_kind, "grpc") != 0) {
            number = named_port(container, text);
            if (number == 0)
                return mt_result_explain(reason, MT_ERR_CONFIG,
                                         "container \"%s\": %s.%s.port \"%s\" names no port of "
                                         "the container",
                                         name, probe_kind, handler_kind, text);
        }
    }
    if (!is_port_number(number))
        return mt_result_explain(reason, MT_ERR_CONFIG,
                                 "container \"%s\": %s.%s.port is not a port number (1..65535)",
                                 name, probe_kind, handler_kind);
    *port = (uint16_t)number;
    return MT_OK_RESULT;
}

/* Inserts port in order; one probe adds at most one port, so three always fit. */
static void add_sorted(struct mt_injector_probe_ports *ports, uint16_t port)
{
    for (size_t i = 0; i < ports->count; i++)
        if (ports->ports[i] == port)
            return;
    if (ports->count == MT_INJECTOR_PROBES_MAX)
        return;
    size_t i = ports->count;
    for (; i > 0 && ports->ports[i - 1] > port; i--)
        ports->ports[i] = ports->ports[i - 1];
    ports->ports[i] = port;
    ports->count++;
}

MT_RESULT mt_injector_probe_ports_of(struct json_object *container,
                                     struct mt_injector_probe_ports *ports, struct mt_text *reason)
{
    MT_ENSURE_REF(container);
    MT_ENSURE_REF(ports);
    *ports = (struct mt_injector_probe_ports){0};
    for (size_t p = 0; p < MT_INJECTOR_PROBES_MAX; p++) {
        struct json_object *probe;
        if (!json_object_object_get_ex(container, PROBE_KINDS[p], &probe) ||
            json_object_is_type(probe, json_type_null))
            continue;
        if (!json_object_is_type(probe, json_type_object))
            return mt_result_explain(reason, MT_ERR_CONFIG, "container \"%s\": %s is not an object",
                                     container_name(container), PROBE_KINDS[p]);
        /* One handler per probe, as the API server validates: at most one port per probe. */
        bool have_handler = false;
        for (size_t h = 0; h < sizeof(HANDLERS) / sizeof(HANDLERS[0]); h++) {
            struct json_object *handler;
            if (!json_object_object_get_ex(probe, HANDLERS[h], &handler) ||
                json_object_is_type(handler, json_type_null))
                continue;
            if (have_handler)
                return mt_result_explain(reason, MT_ERR_CONFIG,
                                         "container \"%s\": %s has more than one handler",
                                         container_name(container), PROBE_KINDS[p]);
            have_handler = true;
            uint16_t port = 0;
            MT_GUARD(
                port_of_handler(container, PROBE_KINDS[p], HANDLERS[h], handler, &port, reason));
            add_sorted(ports, port);
        }
    }
    return MT_OK_RESULT;
}

void mt_injector_probe_ports_format(const struct mt_injector_probe_ports *ports, char *text,
                                    size_t capacity)
{
    struct mt_text out = mt_text_on(text, capacity);
    for (size_t i = 0; i < ports->count; i++)
        mt_text_append(&out, "%s%u", i == 0 ? "" : ",", (unsigned)ports->ports[i]);
}
