/*
 * The JSON Patch (RFC 6902) that meshes a pod: the node's socket and library directories
 * mounted read-only into every container, the preload and its settings in each one's
 * environment, and the mark that the pod is injected.
 *
 * What is added (the paths and names are fixed by the Kubernetes manifests and the node agent's
 * DaemonSet; packaging/kubernetes/README-injector.md lists them):
 *
 *   pod volumes        meshtls-socket  hostPath /run/meshtls (Directory)
 *                      meshtls-lib     hostPath /var/lib/meshtls (Directory)
 *                      meshtls-config  configMap NAME, key meshtls.conf (with
 * meshtls.io/config-map) each container     volumeMounts /run/meshtls, /var/lib/meshtls (and
 * /etc/meshtls/workload), and init container all readOnly not skipped        env LD_PRELOAD
 * (prepended to the container's own), MESHTLS_AGENT_SOCKET, MESHTLS_CONFIG, MESHTLS_PROBE_SOURCES
 * (status.hostIP), MESHTLS_PROBE_PORTS (only with probes on TCP ports) pod annotations
 * meshtls.io/injected: "true"
 *
 * An environment variable the container already sets keeps the container's value (the pod's
 * author decided it), except LD_PRELOAD, to which ours is prepended: the preload must be loaded
 * for the pod to be meshed, and the container's own libraries still load after it.
 */
#ifndef MT_INJECTOR_PATCH_H
#define MT_INJECTOR_PATCH_H

#include <json-c/json.h>
#include <stddef.h>

#include "../util/text.h"

#define MT_INJECTOR_SOCKET_DIR "/run/meshtls"
#define MT_INJECTOR_AGENT_SOCKET MT_INJECTOR_SOCKET_DIR "/agent.sock"
#define MT_INJECTOR_LIB_DIR "/var/lib/meshtls"
#define MT_INJECTOR_PRELOAD_GLIBC MT_INJECTOR_LIB_DIR "/lib/libmeshtls-preload.so"
#define MT_INJECTOR_PRELOAD_MUSL MT_INJECTOR_LIB_DIR "/lib/libmeshtls-preload-musl.so"
#define MT_INJECTOR_NODE_CONFIG MT_INJECTOR_LIB_DIR "/workload.conf"
#define MT_INJECTOR_CONFIG_MAP_DIR "/etc/meshtls/workload"
#define MT_INJECTOR_CONFIG_MAP_KEY "meshtls.conf"

#define MT_INJECTOR_ANNOTATION_INJECT "meshtls.io/inject"
#define MT_INJECTOR_ANNOTATION_INJECTED "meshtls.io/injected"
#define MT_INJECTOR_ANNOTATION_LIBC "meshtls.io/libc"
#define MT_INJECTOR_ANNOTATION_CONFIG_MAP "meshtls.io/config-map"
#define MT_INJECTOR_ANNOTATION_SKIP "meshtls.io/skip-containers"

enum mt_injector_libc {
    MT_INJECTOR_LIBC_GLIBC,
    MT_INJECTOR_LIBC_MUSL,
};

/* What the pod's annotations ask for; the strings point into the pod object. */
struct mt_injector_pod_options {
    enum mt_injector_libc libc;
    const char *config_map;      /* NULL: the node's workload.conf */
    const char *skip_containers; /* "a,b" or NULL */
};

struct mt_injector_patch_summary {
    size_t injected; /* containers and init containers given the preload */
    size_t skipped;  /* named in meshtls.io/skip-containers */
};

/*
 * The pod's value of annotation (a string), or NULL when it has none. The pod's metadata and
 * annotations may be absent.
 */
const char *mt_injector_pod_annotation(struct json_object *pod, const char *annotation);

/*
 * Reads meshtls.io/libc (musl or glibc), meshtls.io/config-map (a ConfigMap name) and
 * meshtls.io/skip-containers. MT_ERR_CONFIG with the annotation and its value in reason for a
 * value that is not one of those.
 */
MT_RESULT mt_injector_patch_options_read(struct json_object *pod,
                                         struct mt_injector_pod_options *options,
                                         struct mt_text *reason);

/*
 * The patch meshing pod, as a new JSON array the caller puts (json_object_put). MT_ERR_CONFIG
 * with the container and what is wrong in reason when the pod cannot be meshed as it is: a
 * volume or mount path of ours already taken, an LD_PRELOAD that comes from valueFrom, a probe
 * port that cannot be resolved; MT_ERR_NO_MEMORY.
 */
MT_RESULT mt_injector_patch_build(struct json_object *pod,
                                  const struct mt_injector_pod_options *options,
                                  struct json_object **patch,
                                  struct mt_injector_patch_summary *summary,
                                  struct mt_text *reason);

#endif
