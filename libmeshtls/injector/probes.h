/*
 * The TCP ports of a container's probes, for MESHTLS_PROBE_PORTS.
 *
 * The kubelet probes a container from the node (status.hostIP) in plaintext: an injected
 * workload serves exactly these ports in plaintext to exactly that source. Answers:
 *
 *   probes of the container                         ports                     result
 *   none (or only exec probes)                      count 0                   ok
 *   httpGet/tcpSocket/grpc with a number            that number               ok
 *   httpGet/tcpSocket with a port name              the containerPort of the  ok
 *                                                   container's port so named
 *   a name no port of the container has             -                         MT_ERR_CONFIG
 *   a number outside 1..65535, a wrong JSON type    -                         MT_ERR_CONFIG
 *
 * The ports come sorted and without duplicates (three probes, at most three ports).
 */
#ifndef MT_INJECTOR_PROBES_H
#define MT_INJECTOR_PROBES_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/text.h"

/* liveness, readiness, startup: one handler each. */
#define MT_INJECTOR_PROBES_MAX 3

struct mt_injector_probe_ports {
    uint16_t ports[MT_INJECTOR_PROBES_MAX];
    size_t count;
};

/*
 * The probe ports of container (a Kubernetes Container object). On failure reason names the
 * container, the probe and what is wrong.
 */
MT_RESULT mt_injector_probe_ports_of(struct json_object *container,
                                     struct mt_injector_probe_ports *ports, struct mt_text *reason);

/* "8080,9090" into text (capacity bytes, NUL-terminated; "" for no ports). */
void mt_injector_probe_ports_format(const struct mt_injector_probe_ports *ports, char *text,
                                    size_t capacity);

#endif
