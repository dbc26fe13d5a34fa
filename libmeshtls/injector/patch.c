/*
 * The patch builder (see patch.h).
 *
 * Owns the pod's meshtls.io annotations that shape the patch and the RFC 6902 operations
 * themselves: "add" to an array or object that exists ("/-" or an escaped member name, RFC 6901
 * section 3), or of the whole array or object where the pod has none, since "add" below a
 * missing parent fails (RFC 6902 section 4.1). Only operations that append or set what we own,
 * plus the one "replace" of a container's LD_PRELOAD value, so that applying the patch keeps
 * every index the next operation names. Must never remove or reorder anything of the pod's, and
 * never decide whether a pod is injected (review.c does).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/json_member.h"
#include "patch.h"
#include "probes.h"

#define VOLUME_SOCKET "meshtls-socket"
#define VOLUME_LIB "meshtls-lib"
#define VOLUME_CONFIG "meshtls-config"
/* A JSON Pointer to a container ("/spec/initContainers/<index>"), and to one of its members
 * ("<container>/env/<index>/value"). */
#define CONTAINER_POINTER_MAX 64
#define POINTER_MAX (CONTAINER_POINTER_MAX + 64)
/* Kubernetes object names (DNS-1123 subdomains) are at most 253 characters. */
#define OBJECT_NAME_MAX 253

/*
 * Builds JSON values without checking every allocation on its own line: a failed allocation
 * (NULL) or insertion marks the builder failed, the value is put, and the caller checks once.
 */
struct builder {
    struct json_object *patch;
    bool failed;
};

static struct json_object *checked(struct builder *builder, struct json_object *value)
{
    if (value == NULL)
        builder->failed = true;
    return value;
}

static void set_member(struct builder *builder, struct json_object *object, const char *key,
                       struct json_object *value)
{
    if (object == NULL || value == NULL || json_object_object_add(object, key, value) != 0) {
        json_object_put(value);
        builder->failed = true;
    }
}

static void append(struct builder *builder, struct json_object *array, struct json_object *value)
{
    if (array == NULL || value == NULL || json_object_array_add(array, value) != 0) {
        json_object_put(value);
        builder->failed = true;
    }
}

static struct json_object *string(struct builder *builder, const char *text)
{
    return checked(builder, json_object_new_string(text));
}

static void operation(struct builder *builder, const char *op, const char *path,
                      struct json_object *value)
{
    struct json_object *entry = checked(builder, json_object_new_object());
    set_member(builder, entry, "op", string(builder, op));
    set_member(builder, entry, "path", string(builder, path));
    set_member(builder, entry, "value", value);
    append(builder, builder->patch, entry);
}

/* Writes a JSON Pointer; one that does not fit (it always does: container paths are short)
 * fails the patch rather than naming another member. */
__attribute__((format(printf, 4, 5))) static void point(struct builder *builder, char *pointer,
                                                        size_t capacity, const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    int length = vsnprintf(pointer, capacity, format, arguments);
    va_end(arguments);
    if (length < 0 || (size_t)length >= capacity)
        builder->failed = true;
}

/* name written as one JSON Pointer token: "~" → "~0", "/" → "~1" (RFC 6901 section 3). */
static void escape_token(const char *name, char *token, size_t capacity)
{
    struct mt_text out = mt_text_on(token, capacity);
    for (const char *c = name; *c != '\0'; c++) {
        if (*c == '~')
            mt_text_append(&out, "~0");
        else if (*c == '/')
            mt_text_append(&out, "~1");
        else
            mt_text_append(&out, "%c", *c);
    }
}

const char *mt_injector_pod_annotation(struct json_object *pod, const char *annotation)
{
    struct json_object *metadata = mt_json_member(pod, "metadata", json_type_object);
    return mt_json_string_member(mt_json_member(metadata, "annotations", json_type_object),
                                 annotation);
}

/* A DNS-1123 subdomain, what Kubernetes accepts as a ConfigMap's name. */
static bool is_object_name(const char *name)
{
    size_t length = strlen(name);
    if (length == 0 || length > OBJECT_NAME_MAX || !isalnum((unsigned char)name[0]) ||
        !isalnum((unsigned char)name[length - 1]))
        return false;
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(islower(c) || isdigit(c) || c == '-' || c == '.'))
            return false;
    }
    return true;
}

MT_RESULT mt_injector_patch_options_read(struct json_object *pod,
                                         struct mt_injector_pod_options *options,
                                         struct mt_text *reason)
{
    MT_ENSURE_REF(options);
    *options = (struct mt_injector_pod_options){.libc = MT_INJECTOR_LIBC_GLIBC};
    const char *libc = mt_injector_pod_annotation(pod, MT_INJECTOR_ANNOTATION_LIBC);
    if (libc != NULL && strcmp(libc, "musl") == 0)
        options->libc = MT_INJECTOR_LIBC_MUSL;
    else if (libc != NULL && strcmp(libc, "glibc") != 0)
        return mt_result_explain(
            reason, MT_ERR_CONFIG,
            "annotation " MT_INJECTOR_ANNOTATION_LIBC ": \"%s\" is neither musl nor glibc", libc);
    const char *config_map = mt_injector_pod_annotation(pod, MT_INJECTOR_ANNOTATION_CONFIG_MAP);
    if (config_map != NULL && !is_object_name(config_map))
        return mt_result_explain(reason, MT_ERR_CONFIG,
                                 "annotation " MT_INJECTOR_ANNOTATION_CONFIG_MAP
                                 ": \"%s\" is not a ConfigMap name (lower-case letters, digits, "
                                 "'-' and '.')",
                                 config_map);
    options->config_map = config_map;
    options->skip_containers = mt_injector_pod_annotation(pod, MT_INJECTOR_ANNOTATION_SKIP);
    return MT_OK_RESULT;
}

/* True when name is one of the comma-separated names of list (spaces around names ignored). */
static bool is_listed(const char *list, const char *name)
{
    if (list == NULL)
        return false;
    size_t length = strlen(name);
    const char *item = list;
    while (*item != '\0') {
        item += strspn(item, " \t");
        size_t item_length = strcspn(item, ",");
        size_t end = item_length;
        while (end > 0 && (item[end - 1] == ' ' || item[end - 1] == '\t'))
            end--;
        if (end == length && strncmp(item, name, length) == 0)
            return true;
        item += item_length;
        if (*item == ',')
            item++;
    }
    return false;
}

/* Fails when the pod already has a volume named like one of ours. */
static MT_RESULT check_volume_names(struct json_object *volumes, struct mt_text *reason)
{
    for (size_t i = 0; volumes != NULL && i < json_object_array_length(volumes); i++) {
        const char *name = mt_json_string_member(json_object_array_get_idx(volumes, i), "name");
        if (name != NULL && (strcmp(name, VOLUME_SOCKET) == 0 || strcmp(name, VOLUME_LIB) == 0 ||
                             strcmp(name, VOLUME_CONFIG) == 0))
            return mt_result_explain(reason, MT_ERR_CONFIG,
                                     "the pod already has a volume named \"%s\", which the "
                                     "injector adds",
                                     name);
    }
    return MT_OK_RESULT;
}

static struct json_object *host_path_volume(struct builder *builder, const char *name,
                                            const char *path)
{
    struct json_object *volume = checked(builder, json_object_new_object());
    struct json_object *host_path = checked(builder, json_object_new_object());
    set_member(builder, host_path, "path", string(builder, path));
    set_member(builder, host_path, "type", string(builder, "Directory"));
    set_member(builder, volume, "name", string(builder, name));
    set_member(builder, volume, "hostPath", host_path);
    return volume;
}

/* The ConfigMap's one key, mounted as a file: a ConfigMap without it keeps the pod from
 * starting (an event names the key) rather than running with no configuration. */
static struct json_object *config_map_volume(struct builder *builder, const char *config_map)
{
    struct json_object *volume = checked(builder, json_object_new_object());
    struct json_object *source = checked(builder, json_object_new_object());
    struct json_object *items = checked(builder, json_object_new_array());
    struct json_object *item = checked(builder, json_object_new_object());
    set_member(builder, item, "key", string(builder, MT_INJECTOR_CONFIG_MAP_KEY));
    set_member(builder, item, "path", string(builder, MT_INJECTOR_CONFIG_MAP_KEY));
    append(builder, items, item);
    set_member(builder, source, "name", string(builder, config_map));
    set_member(builder, source, "items", items);
    set_member(builder, volume, "name", string(builder, VOLUME_CONFIG));
    set_member(builder, volume, "configMap", source);
    return volume;
}

static void add_volumes(struct builder *builder, struct json_object *spec,
                        const struct mt_injector_pod_options *options)
{
    struct json_object *volumes[3];
    size_t count = 0;
    volumes[count++] = host_path_volume(builder, VOLUME_SOCKET, MT_INJECTOR_SOCKET_DIR);
    volumes[count++] = host_path_volume(builder, VOLUME_LIB, MT_INJECTOR_LIB_DIR);
    if (options->config_map != NULL)
        volumes[count++] = config_map_volume(builder, options->config_map);
    if (mt_json_member(spec, "volumes", json_type_array) != NULL) {
        for (size_t i = 0; i < count; i++)
            operation(builder, "add", "/spec/volumes/-", volumes[i]);
        return;
    }
    struct json_object *list = checked(builder, json_object_new_array());
    for (size_t i = 0; i < count; i++)
        append(builder, list, volumes[i]);
    operation(builder, "add", "/spec/volumes", list);
}

static struct json_object *mount(struct builder *builder, const char *name, const char *path)
{
    struct json_object *entry = checked(builder, json_object_new_object());
    set_member(builder, entry, "name", string(builder, name));
    set_member(builder, entry, "mountPath", string(builder, path));
    set_member(builder, entry, "readOnly", checked(builder, json_object_new_boolean(1)));
    return entry;
}

static MT_RESULT add_mounts(struct builder *builder, const char *container_path,
                            struct json_object *container, const char *container_name,
                            const struct mt_injector_pod_options *options, struct mt_text *reason)
{
    const char *paths[3] = {MT_INJECTOR_SOCKET_DIR, MT_INJECTOR_LIB_DIR,
                            MT_INJECTOR_CONFIG_MAP_DIR};
    const char *names[3] = {VOLUME_SOCKET, VOLUME_LIB, VOLUME_CONFIG};
    size_t count = options->config_map != NULL ? 3 : 2;
    struct json_object *existing = mt_json_member(container, "volumeMounts", json_type_array);
    for (size_t i = 0; existing != NULL && i < json_object_array_length(existing); i++) {
        const char *path =
            mt_json_string_member(json_object_array_get_idx(existing, i), "mountPath");
        for (size_t m = 0; path != NULL && m < count; m++)
            if (strcmp(path, paths[m]) == 0)
                return mt_result_explain(reason, MT_ERR_CONFIG,
                                         "container \"%s\" already mounts a volume at %s, where "
                                         "the injector mounts %s",
                                         container_name, path, names[m]);
    }
    char pointer[POINTER_MAX];
    if (existing != NULL) {
        point(builder, pointer, sizeof(pointer), "%s/volumeMounts/-", container_path);
        for (size_t m = 0; m < count; m++)
            operation(builder, "add", pointer, mount(builder, names[m], paths[m]));
        return MT_OK_RESULT;
    }
    struct json_object *list = checked(builder, json_object_new_array());
    for (size_t m = 0; m < count; m++)
        append(builder, list, mount(builder, names[m], paths[m]));
    point(builder, pointer, sizeof(pointer), "%s/volumeMounts", container_path);
    operation(builder, "add", pointer, list);
    return MT_OK_RESULT;
}

static struct json_object *variable(struct builder *builder, const char *name, const char *value)
{
    struct json_object *entry = checked(builder, json_object_new_object());
    set_member(builder, entry, "name", string(builder, name));
    set_member(builder, entry, "value", string(builder, value));
    return entry;
}

/* The node's address, the source of the kubelet's probes (the downward API). */
static struct json_object *host_ip_variable(struct builder *builder, const char *name)
{
    struct json_object *entry = checked(builder, json_object_new_object());
    struct json_object *value_from = checked(builder, json_object_new_object());
    struct json_object *field_ref = checked(builder, json_object_new_object());
    set_member(builder, field_ref, "apiVersion", string(builder, "v1"));
    set_member(builder, field_ref, "fieldPath", string(builder, "status.hostIP"));
    set_member(builder, value_from, "fieldRef", field_ref);
    set_member(builder, entry, "name", string(builder, name));
    set_member(builder, entry, "valueFrom", value_from);
    return entry;
}

/* The index of the container's variable named name in env; -1 when it has none. */
static long find_variable(struct json_object *env, const char *name)
{
    for (size_t i = 0; env != NULL && i < json_object_array_length(env); i++) {
        const char *existing = mt_json_string_member(json_object_array_get_idx(env, i), "name");
        if (existing != NULL && strcmp(existing, name) == 0)
            return (long)i;
    }
    return -1;
}

/*
 * Ours first, then the container's own list: the preload must be the first object loaded for
 * its hooks to come before any other library's. A value already starting with ours is kept.
 */
static MT_RESULT prepend_preload(struct builder *builder, const char *container_path,
                                 const char *container_name, struct json_object *existing,
                                 long index, const char *preload, struct mt_text *reason)
{
    const char *value = mt_json_string_member(existing, "value");
    if (value == NULL && mt_json_member(existing, "valueFrom", json_type_object) != NULL)
        return mt_result_explain(reason, MT_ERR_CONFIG,
                                 "container \"%s\" takes LD_PRELOAD from valueFrom, to which the "
                                 "injector cannot prepend %s (set it as a value, or name the "
                                 "container in " MT_INJECTOR_ANNOTATION_SKIP ")",
                                 container_name, preload);
    size_t preload_length = strlen(preload);
    if (value != NULL && strncmp(value, preload, preload_length) == 0 &&
        (value[preload_length] == '\0' || value[preload_length] == ':' ||
         value[preload_length] == ' '))
        return MT_OK_RESULT;
    char pointer[POINTER_MAX];
    point(builder, pointer, sizeof(pointer), "%s/env/%ld/value", container_path, index);
    if (value == NULL || value[0] == '\0') {
        /* "add" sets the member whether or not the container wrote "value": "" */
        operation(builder, "add", pointer, string(builder, preload));
        return MT_OK_RESULT;
    }
    size_t length = preload_length + 1 + strlen(value) + 1;
    char *joined = malloc(length);
    MT_ENSURE(joined != NULL, MT_ERR_NO_MEMORY);
    snprintf(joined, length, "%s:%s", preload, value);
    operation(builder, "replace", pointer, string(builder, joined));
    free(joined);
    return MT_OK_RESULT;
}

static MT_RESULT add_environment(struct builder *builder, const char *container_path,
                                 struct json_object *container, const char *container_name,
                                 const struct mt_injector_pod_options *options,
                                 struct mt_text *reason)
{
    struct mt_injector_probe_ports probe_ports;
    MT_GUARD(mt_injector_probe_ports_of(container, &probe_ports, reason));
    char ports_text[MT_INJECTOR_PROBES_MAX * 6 + 1];
    mt_injector_probe_ports_format(&probe_ports, ports_text, sizeof(ports_text));
    const char *preload = options->libc == MT_INJECTOR_LIBC_MUSL ? MT_INJECTOR_PRELOAD_MUSL
                                                                 : MT_INJECTOR_PRELOAD_GLIBC;
    const char *config = options->config_map != NULL ? MT_INJECTOR_CONFIG_MAP_DIR
                             "/" MT_INJECTOR_CONFIG_MAP_KEY
                                                     : MT_INJECTOR_NODE_CONFIG;

    struct json_object *env = mt_json_member(container, "env", json_type_array);
    struct json_object *added[5];
    size_t count = 0;
    long preload_index = find_variable(env, "LD_PRELOAD");
    if (preload_index >= 0)
        MT_GUARD(prepend_preload(builder, container_path, container_name,
                                 json_object_array_get_idx(env, (size_t)preload_index),
                                 preload_index, preload, reason));
    else
        added[count++] = variable(builder, "LD_PRELOAD", preload);
    /* The container's own value of any other of ours wins: its author set it on purpose. */
    if (find_variable(env, "MESHTLS_AGENT_SOCKET") < 0)
        added[count++] = variable(builder, "MESHTLS_AGENT_SOCKET", MT_INJECTOR_AGENT_SOCKET);
    if (find_variable(env, "MESHTLS_CONFIG") < 0)
        added[count++] = variable(builder, "MESHTLS_CONFIG", config);
    if (find_variable(env, "MESHTLS_PROBE_SOURCES") < 0)
        added[count++] = host_ip_variable(builder, "MESHTLS_PROBE_SOURCES");
    if (probe_ports.count > 0 && find_variable(env, "MESHTLS_PROBE_PORTS") < 0)
        added[count++] = variable(builder, "MESHTLS_PROBE_PORTS", ports_text);

    char pointer[POINTER_MAX];
    if (env != NULL) {
        point(builder, pointer, sizeof(pointer), "%s/env/-", container_path);
        for (size_t i = 0; i < count; i++)
            operation(builder, "add", pointer, added[i]);
        return MT_OK_RESULT;
    }
    struct json_object *list = checked(builder, json_object_new_array());
    for (size_t i = 0; i < count; i++)
        append(builder, list, added[i]);
    point(builder, pointer, sizeof(pointer), "%s/env", container_path);
    operation(builder, "add", pointer, list);
    return MT_OK_RESULT;
}

static MT_RESULT patch_containers(struct builder *builder, struct json_object *spec,
                                  const char *list_name,
                                  const struct mt_injector_pod_options *options,
                                  struct mt_injector_patch_summary *summary, struct mt_text *reason)
{
    struct json_object *containers = mt_json_member(spec, list_name, json_type_array);
    for (size_t i = 0; containers != NULL && i < json_object_array_length(containers); i++) {
        struct json_object *container = json_object_array_get_idx(containers, i);
        const char *name = mt_json_string_member(container, "name");
        if (name == NULL)
            return mt_result_explain(reason, MT_ERR_CONFIG, "spec.%s[%zu] has no name", list_name,
                                     i);
        if (is_listed(options->skip_containers, name)) {
            summary->skipped++;
            continue;
        }
        char container_path[CONTAINER_POINTER_MAX];
        snprintf(container_path, sizeof(container_path), "/spec/%s/%zu", list_name, i);
        MT_GUARD(add_mounts(builder, container_path, container, name, options, reason));
        MT_GUARD(add_environment(builder, container_path, container, name, options, reason));
        summary->injected++;
    }
    return MT_OK_RESULT;
}

static void add_injected_annotation(struct builder *builder, struct json_object *pod)
{
    struct json_object *metadata = mt_json_member(pod, "metadata", json_type_object);
    struct json_object *annotations = mt_json_member(metadata, "annotations", json_type_object);
    if (annotations != NULL) {
        char token[POINTER_MAX];
        escape_token(MT_INJECTOR_ANNOTATION_INJECTED, token, sizeof(token));
        char pointer[POINTER_MAX + 32];
        point(builder, pointer, sizeof(pointer), "/metadata/annotations/%s", token);
        operation(builder, "add", pointer, string(builder, "true"));
        return;
    }
    struct json_object *added = checked(builder, json_object_new_object());
    set_member(builder, added, MT_INJECTOR_ANNOTATION_INJECTED, string(builder, "true"));
    if (metadata != NULL) {
        operation(builder, "add", "/metadata/annotations", added);
        return;
    }
    struct json_object *new_metadata = checked(builder, json_object_new_object());
    set_member(builder, new_metadata, "annotations", added);
    operation(builder, "add", "/metadata", new_metadata);
}

MT_RESULT mt_injector_patch_build(struct json_object *pod,
                                  const struct mt_injector_pod_options *options,
                                  struct json_object **patch,
                                  struct mt_injector_patch_summary *summary, struct mt_text *reason)
{
    MT_ENSURE_REF(pod);
    MT_ENSURE_REF(options);
    MT_ENSURE_REF(patch);
    MT_ENSURE_REF(summary);
    *patch = NULL;
    *summary = (struct mt_injector_patch_summary){0};
    struct builder builder = {.patch = json_object_new_array()};
    MT_ENSURE(builder.patch != NULL, MT_ERR_NO_MEMORY);
    mt_result result = MT_OK_RESULT;
    struct json_object *spec = mt_json_member(pod, "spec", json_type_object);
    if (spec == NULL || mt_json_member(spec, "containers", json_type_array) == NULL) {
        result = mt_result_explain(reason, MT_ERR_CONFIG, "the pod has no spec.containers");
        goto out;
    }
    result = check_volume_names(mt_json_member(spec, "volumes", json_type_array), reason);
    if (!mt_result_is_ok(result))
        goto out;
    add_volumes(&builder, spec, options);
    result = patch_containers(&builder, spec, "initContainers", options, summary, reason);
    if (!mt_result_is_ok(result))
        goto out;
    result = patch_containers(&builder, spec, "containers", options, summary, reason);
    if (!mt_result_is_ok(result))
        goto out;
    add_injected_annotation(&builder, pod);
    if (builder.failed)
        result = mt_result_explain(reason, MT_ERR_NO_MEMORY, "out of memory building the patch");
out:
    if (mt_result_is_ok(result))
        *patch = builder.patch;
    else
        json_object_put(builder.patch);
    return result;
}
