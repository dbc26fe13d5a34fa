/*
 * Pods and Services from the API server's JSON into compact records, and the member entries
 * they make (kube_members.h).
 *
 * Owns the reading of v1 PodList, ServiceList and WatchEvent JSON (json-c) and the rule of what
 * is a member. It must never keep the JSON (10 000 pods of it would be hundreds of megabytes),
 * never call a pod a member on anything but its injected annotation, and never give a Service
 * an identity its pods' service accounts do not have: the identity pattern is what lets a
 * workload refuse a destination that is not who the cluster says it is.
 */
#include <arpa/inet.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/json_member.h"
#include "kube_members.h"

/* ---- JSON helpers ------------------------------------------------------------------------- */

/* One JSON document in json[0 .. length), nothing after it but white space; NULL otherwise. */
static struct json_object *parse_document(const char *json, size_t length, const char *what,
                                          struct mt_text *reason)
{
    if (length > (size_t)INT32_MAX) {
        mt_text_append(reason, "the %s is too long", what);
        return NULL;
    }
    struct json_tokener *tokener = json_tokener_new();
    if (tokener == NULL) {
        mt_text_append(reason, "out of memory");
        return NULL;
    }
    struct json_object *root = json_tokener_parse_ex(tokener, json, (int)length);
    enum json_tokener_error error = json_tokener_get_error(tokener);
    if (root == NULL || error != json_tokener_success) {
        /* json_tokener_continue: the document ended early. */
        mt_text_append(reason, "the %s is not JSON (%s)", what,
                       error == json_tokener_continue ? "truncated"
                                                      : json_tokener_error_desc(error));
        if (root != NULL)
            json_object_put(root);
        root = NULL;
        goto out;
    }
    for (size_t end = json_tokener_get_parse_end(tokener); end < length; end++) {
        if (json[end] == '\0' || strchr(" \t\r\n", json[end]) == NULL) {
            mt_text_append(reason, "the %s has bytes after its JSON document", what);
            json_object_put(root);
            root = NULL;
            goto out;
        }
    }
out:
    json_tokener_free(tokener);
    return root;
}

static bool copy_text(char *destination, size_t capacity, const char *text)
{
    size_t length = text != NULL ? strlen(text) : 0;
    if (length >= capacity)
        return false;
    memcpy(destination, text != NULL ? text : "", length);
    destination[length] = '\0';
    return true;
}

/* ---- records ------------------------------------------------------------------------------ */

static void free_labels(struct mt_kube_label *labels, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(labels[i].key);
        free(labels[i].value);
    }
    free(labels);
}

static void free_pod(struct mt_kube_pod *pod)
{
    free(pod->namespace_name);
    free(pod->name);
    free(pod->service_account);
    free_labels(pod->labels, pod->label_count);
    memset(pod, 0, sizeof(*pod));
}

static void free_service(struct mt_kube_service *service)
{
    free(service->namespace_name);
    free(service->name);
    free_labels(service->selector, service->selector_count);
    memset(service, 0, sizeof(*service));
}

void mt_kube_state_free(struct mt_kube_state *state)
{
    if (state == NULL)
        return;
    for (size_t i = 0; i < state->pod_count; i++)
        free_pod(&state->pods[i]);
    free(state->pods);
    for (size_t i = 0; i < state->service_count; i++)
        free_service(&state->services[i]);
    free(state->services);
    memset(state, 0, sizeof(*state));
}

void mt_kube_state_replace(struct mt_kube_state *state, struct mt_kube_state *source,
                           enum mt_kube_kind kind)
{
    if (kind == MT_KUBE_PODS) {
        for (size_t i = 0; i < state->pod_count; i++)
            free_pod(&state->pods[i]);
        free(state->pods);
        state->pods = source->pods;
        state->pod_count = source->pod_count;
        state->pod_capacity = source->pod_capacity;
        source->pods = NULL;
        source->pod_count = source->pod_capacity = 0;
        return;
    }
    for (size_t i = 0; i < state->service_count; i++)
        free_service(&state->services[i]);
    free(state->services);
    state->services = source->services;
    state->service_count = source->service_count;
    state->service_capacity = source->service_capacity;
    source->services = NULL;
    source->service_count = source->service_capacity = 0;
}

/* A string map (labels, a selector) into an array of copies; an empty or absent map gives none. */
static MT_RESULT read_map(struct json_object *map, struct mt_kube_label **labels, uint32_t *count)
{
    *labels = NULL;
    *count = 0;
    if (map == NULL || json_object_object_length(map) == 0)
        return MT_OK_RESULT;
    size_t capacity = (size_t)json_object_object_length(map);
    struct mt_kube_label *read = calloc(capacity, sizeof(*read));
    MT_ENSURE(read != NULL, MT_ERR_NO_MEMORY);
    uint32_t n = 0;
    json_object_object_foreach(map, key, value)
    {
        if (n >= capacity || !json_object_is_type(value, json_type_string))
            continue;
        read[n].key = strdup(key);
        read[n].value = strdup(json_object_get_string(value));
        if (read[n].key == NULL || read[n].value == NULL) {
            free_labels(read, n + 1);
            return mt_result_of(MT_ERR_NO_MEMORY);
        }
        n++;
    }
    *labels = read;
    *count = n;
    return MT_OK_RESULT;
}

/* An IP address (no zone, no prefix) added to addresses unless present or full; "" and "None"
 * are no address. */
static void add_address(struct mt_kube_address *addresses, uint8_t *count, const char *text)
{
    struct mt_kube_address address = {0};
    if (text == NULL || *count >= MT_KUBE_ADDRESSES_MAX)
        return;
    if (inet_pton(AF_INET, text, address.bytes) == 1)
        address.family = MT_MEMBERSHIP_FAMILY_IPV4;
    else if (inet_pton(AF_INET6, text, address.bytes) == 1)
        address.family = MT_MEMBERSHIP_FAMILY_IPV6;
    else
        return;
    for (uint8_t i = 0; i < *count; i++)
        if (addresses[i].family == address.family &&
            memcmp(addresses[i].bytes, address.bytes, sizeof(address.bytes)) == 0)
            return;
    addresses[(*count)++] = address;
}

/* metadata.namespace and .name, both required: an object without them is malformed. */
static MT_RESULT read_names(struct json_object *metadata, char **namespace_name, char **name,
                            const char *what, struct mt_text *reason)
{
    const char *namespace_text = mt_json_string_member(metadata, "namespace");
    const char *name_text = mt_json_string_member(metadata, "name");
    if (namespace_text == NULL || name_text == NULL || namespace_text[0] == '\0' ||
        name_text[0] == '\0') {
        mt_text_append(reason, "a %s without metadata.namespace and metadata.name", what);
        return mt_result_of(MT_ERR_PROTO_MALFORMED);
    }
    *namespace_name = strdup(namespace_text);
    *name = strdup(name_text);
    MT_ENSURE(*namespace_name != NULL && *name != NULL, MT_ERR_NO_MEMORY);
    return MT_OK_RESULT;
}

static MT_RESULT read_pod(struct json_object *object, struct mt_kube_pod *pod,
                          struct mt_text *reason)
{
    memset(pod, 0, sizeof(*pod));
    struct json_object *metadata = mt_json_member(object, "metadata", json_type_object);
    struct json_object *spec = mt_json_member(object, "spec", json_type_object);
    struct json_object *status = mt_json_member(object, "status", json_type_object);
    mt_result result = read_names(metadata, &pod->namespace_name, &pod->name, "pod", reason);
    if (!mt_result_is_ok(result))
        goto out;
    const char *account = mt_json_string_member(spec, "serviceAccountName");
    pod->service_account = strdup(account != NULL && account[0] != '\0' ? account : "default");
    if (pod->service_account == NULL) {
        result = mt_result_of(MT_ERR_NO_MEMORY);
        goto out;
    }
    result = read_map(mt_json_member(metadata, "labels", json_type_object), &pod->labels,
                      &pod->label_count);
    if (!mt_result_is_ok(result))
        goto out;
    const char *injected = mt_json_string_member(
        mt_json_member(metadata, "annotations", json_type_object), MT_KUBE_ANNOTATION_INJECTED);
    pod->injected = injected != NULL && strcmp(injected, "true") == 0;
    struct json_object *host_network = mt_json_member(spec, "hostNetwork", json_type_boolean);
    pod->host_network = host_network != NULL && json_object_get_boolean(host_network);
    const char *phase = mt_json_string_member(status, "phase");
    pod->terminal =
        phase != NULL && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0);
    pod->deleting = mt_json_member(metadata, "deletionTimestamp", json_type_string) != NULL;
    add_address(pod->addresses, &pod->address_count, mt_json_string_member(status, "podIP"));
    struct json_object *ips = mt_json_member(status, "podIPs", json_type_array);
    size_t ip_count = ips != NULL ? json_object_array_length(ips) : 0;
    for (size_t i = 0; i < ip_count; i++)
        add_address(pod->addresses, &pod->address_count,
                    mt_json_string_member(json_object_array_get_idx(ips, i), "ip"));
out:
    if (!mt_result_is_ok(result))
        free_pod(pod);
    return result;
}

static MT_RESULT read_service(struct json_object *object, struct mt_kube_service *service,
                              struct mt_text *reason)
{
    memset(service, 0, sizeof(*service));
    struct json_object *metadata = mt_json_member(object, "metadata", json_type_object);
    struct json_object *spec = mt_json_member(object, "spec", json_type_object);
    mt_result result =
        read_names(metadata, &service->namespace_name, &service->name, "Service", reason);
    if (!mt_result_is_ok(result))
        goto out;
    result = read_map(mt_json_member(spec, "selector", json_type_object), &service->selector,
                      &service->selector_count);
    if (!mt_result_is_ok(result))
        goto out;
    add_address(service->addresses, &service->address_count,
                mt_json_string_member(spec, "clusterIP"));
    struct json_object *ips = mt_json_member(spec, "clusterIPs", json_type_array);
    size_t ip_count = ips != NULL ? json_object_array_length(ips) : 0;
    for (size_t i = 0; i < ip_count; i++) {
        struct json_object *ip = json_object_array_get_idx(ips, i);
        add_address(service->addresses, &service->address_count,
                    json_object_is_type(ip, json_type_string) ? json_object_get_string(ip) : NULL);
    }
    struct json_object *ports = mt_json_member(spec, "ports", json_type_array);
    size_t port_count = ports != NULL ? json_object_array_length(ports) : 0;
    for (size_t i = 0; i < port_count && service->port_count < MT_KUBE_SERVICE_PORTS_MAX; i++) {
        struct json_object *port = json_object_array_get_idx(ports, i);
        struct json_object *number = mt_json_member(port, "port", json_type_int);
        const char *protocol = mt_json_string_member(port, "protocol");
        int64_t value = number != NULL ? json_object_get_int64(number) : 0;
        /* TCP is the default protocol; the mesh carries nothing else. */
        if (value < 1 || value > 65535 || (protocol != NULL && strcmp(protocol, "TCP") != 0))
            continue;
        service->ports[service->port_count++] = (uint16_t)value;
    }
out:
    if (!mt_result_is_ok(result))
        free_service(service);
    return result;
}

/* ---- the state ---------------------------------------------------------------------------- */

static MT_RESULT grow(void **array, size_t *capacity, size_t count, size_t size)
{
    if (count < *capacity)
        return MT_OK_RESULT;
    size_t next = *capacity > 0 ? *capacity * 2 : 64;
    void *grown = realloc(*array, next * size);
    MT_ENSURE(grown != NULL, MT_ERR_NO_MEMORY);
    *array = grown;
    *capacity = next;
    return MT_OK_RESULT;
}

static size_t find_pod(const struct mt_kube_state *state, const char *namespace_name,
                       const char *name)
{
    for (size_t i = 0; i < state->pod_count; i++)
        if (strcmp(state->pods[i].name, name) == 0 &&
            strcmp(state->pods[i].namespace_name, namespace_name) == 0)
            return i;
    return SIZE_MAX;
}

static size_t find_service(const struct mt_kube_state *state, const char *namespace_name,
                           const char *name)
{
    for (size_t i = 0; i < state->service_count; i++)
        if (strcmp(state->services[i].name, name) == 0 &&
            strcmp(state->services[i].namespace_name, namespace_name) == 0)
            return i;
    return SIZE_MAX;
}

/* object into state; replace: an object of the same namespace and name is replaced, or removed
 * when remove. */
static MT_RESULT store(struct mt_kube_state *state, enum mt_kube_kind kind,
                       struct json_object *object, bool replace, bool remove,
                       struct mt_text *reason)
{
    if (kind == MT_KUBE_PODS) {
        struct mt_kube_pod pod;
        MT_GUARD(read_pod(object, &pod, reason));
        size_t at = replace ? find_pod(state, pod.namespace_name, pod.name) : SIZE_MAX;
        if (at != SIZE_MAX) {
            free_pod(&state->pods[at]);
            state->pods[at] = state->pods[--state->pod_count];
        }
        if (remove) {
            free_pod(&pod);
            return MT_OK_RESULT;
        }
        mt_result result = grow((void **)&state->pods, &state->pod_capacity, state->pod_count,
                                sizeof(*state->pods));
        if (!mt_result_is_ok(result)) {
            free_pod(&pod);
            return result;
        }
        state->pods[state->pod_count++] = pod;
        return MT_OK_RESULT;
    }
    struct mt_kube_service service;
    MT_GUARD(read_service(object, &service, reason));
    size_t at = replace ? find_service(state, service.namespace_name, service.name) : SIZE_MAX;
    if (at != SIZE_MAX) {
        free_service(&state->services[at]);
        state->services[at] = state->services[--state->service_count];
    }
    if (remove) {
        free_service(&service);
        return MT_OK_RESULT;
    }
    mt_result result = grow((void **)&state->services, &state->service_capacity,
                            state->service_count, sizeof(*state->services));
    if (!mt_result_is_ok(result)) {
        free_service(&service);
        return result;
    }
    state->services[state->service_count++] = service;
    return MT_OK_RESULT;
}

MT_RESULT mt_kube_members_apply_list(struct mt_kube_state *state, enum mt_kube_kind kind,
                                     const char *json, size_t length, char *resource_version,
                                     char *continue_token, struct mt_text *reason)
{
    MT_ENSURE_REF(state);
    MT_ENSURE_REF(json);
    MT_ENSURE_REF(resource_version);
    MT_ENSURE_REF(continue_token);
    const char *expected = kind == MT_KUBE_PODS ? "PodList" : "ServiceList";
    struct json_object *root = parse_document(json, length, expected, reason);
    MT_ENSURE(root != NULL, MT_ERR_PROTO_MALFORMED);
    mt_result result = MT_OK_RESULT;
    const char *list_kind = mt_json_string_member(root, "kind");
    struct json_object *metadata = mt_json_member(root, "metadata", json_type_object);
    struct json_object *items = mt_json_member(root, "items", json_type_array);
    /* An empty list may come as "items": null, read as no items. */
    if (list_kind == NULL || strcmp(list_kind, expected) != 0 || metadata == NULL) {
        mt_text_append(reason, "the answer is not a v1 %s (kind %s)", expected,
                       list_kind != NULL ? list_kind : "missing");
        result = mt_result_of(MT_ERR_PROTO_MALFORMED);
        goto out;
    }
    if (!copy_text(resource_version, MT_KUBE_RESOURCE_VERSION_MAX,
                   mt_json_string_member(metadata, "resourceVersion")) ||
        resource_version[0] == '\0' ||
        !copy_text(continue_token, MT_KUBE_CONTINUE_MAX,
                   mt_json_string_member(metadata, "continue"))) {
        mt_text_append(reason, "the %s has no usable metadata.resourceVersion or continue",
                       expected);
        result = mt_result_of(MT_ERR_PROTO_MALFORMED);
        goto out;
    }
    size_t count = items != NULL ? json_object_array_length(items) : 0;
    for (size_t i = 0; i < count && mt_result_is_ok(result); i++)
        result = store(state, kind, json_object_array_get_idx(items, i), false, false, reason);
out:
    json_object_put(root);
    return result;
}

static bool parse_event_type(const char *text, enum mt_kube_event_type *type)
{
    static const struct {
        const char *name;
        enum mt_kube_event_type type;
    } types[] = {
        {"ADDED", MT_KUBE_EVENT_ADDED},     {"MODIFIED", MT_KUBE_EVENT_MODIFIED},
        {"DELETED", MT_KUBE_EVENT_DELETED}, {"BOOKMARK", MT_KUBE_EVENT_BOOKMARK},
        {"ERROR", MT_KUBE_EVENT_ERROR},
    };
    for (size_t i = 0; text != NULL && i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(text, types[i].name) == 0) {
            *type = types[i].type;
            return true;
        }
    }
    return false;
}

MT_RESULT mt_kube_members_apply_event(struct mt_kube_state *state, enum mt_kube_kind kind,
                                      const char *json, size_t length, struct mt_kube_event *event,
                                      struct mt_text *reason)
{
    MT_ENSURE_REF(state);
    MT_ENSURE_REF(json);
    MT_ENSURE_REF(event);
    memset(event, 0, sizeof(*event));
    struct json_object *root = parse_document(json, length, "watch event", reason);
    MT_ENSURE(root != NULL, MT_ERR_PROTO_MALFORMED);
    mt_result result = MT_OK_RESULT;
    const char *type = mt_json_string_member(root, "type");
    struct json_object *object = mt_json_member(root, "object", json_type_object);
    if (!parse_event_type(type, &event->type) || object == NULL) {
        mt_text_append(reason, "a watch event of type %s without an object",
                       type != NULL ? type : "missing");
        result = mt_result_of(MT_ERR_PROTO_MALFORMED);
        goto out;
    }
    if (event->type == MT_KUBE_EVENT_ERROR) {
        /* A v1 Status: code 410 is "too old a resourceVersion", any other an error. */
        struct json_object *code = mt_json_member(object, "code", json_type_int);
        event->error_code = code != NULL ? (int)json_object_get_int(code) : 0;
        const char *message = mt_json_string_member(object, "message");
        mt_text_append(reason, "the watch ended with an error (%d): %s", event->error_code,
                       message != NULL ? message : "no message");
        goto out;
    }
    const char *version = mt_json_string_member(
        mt_json_member(object, "metadata", json_type_object), "resourceVersion");
    if (!copy_text(event->resource_version, sizeof(event->resource_version), version)) {
        mt_text_append(reason, "a watch event's resourceVersion is too long");
        result = mt_result_of(MT_ERR_PROTO_MALFORMED);
        goto out;
    }
    if (event->type == MT_KUBE_EVENT_BOOKMARK)
        goto out;
    result = store(state, kind, object, true, event->type == MT_KUBE_EVENT_DELETED, reason);
    event->changed = mt_result_is_ok(result);
out:
    json_object_put(root);
    return result;
}

/* ---- the members -------------------------------------------------------------------------- */

struct entries {
    struct mt_membership_entry *array;
    size_t count;
    size_t capacity;
};

static MT_RESULT add_entry(struct entries *entries, const struct mt_kube_address *address,
                           uint16_t first, uint16_t last, const char *identity)
{
    MT_GUARD(grow((void **)&entries->array, &entries->capacity, entries->count,
                  sizeof(*entries->array)));
    unsigned prefix = address->family == MT_MEMBERSHIP_FAMILY_IPV4 ? 32 : 128;
    /* A name the API server let through that is no identity pattern makes no member. */
    if (mt_membership_entry_fill(&entries->array[entries->count], MT_MEMBERSHIP_STATE_LIVE,
                                 address->family, address->bytes, prefix, first, last, identity))
        entries->count++;
    return MT_OK_RESULT;
}

static bool pod_is_member(const struct mt_kube_pod *pod)
{
    return pod->injected && !pod->host_network && !pod->terminal && !pod->deleting &&
           pod->address_count > 0;
}

static bool has_label(const struct mt_kube_pod *pod, const struct mt_kube_label *wanted)
{
    for (uint32_t i = 0; i < pod->label_count; i++)
        if (strcmp(pod->labels[i].key, wanted->key) == 0 &&
            strcmp(pod->labels[i].value, wanted->value) == 0)
            return true;
    return false;
}

static bool selects(const struct mt_kube_service *service, const struct mt_kube_pod *pod)
{
    if (strcmp(service->namespace_name, pod->namespace_name) != 0)
        return false;
    for (uint32_t i = 0; i < service->selector_count; i++)
        if (!has_label(pod, &service->selector[i]))
            return false;
    return true;
}

/*
 * The identity of service's members into identity, or false when it has none: a pod it selects
 * is not injected (its strict inbound is absent, so plaintext is what reaches it), or it selects
 * no pod at all (nothing to say the destination is meshed).
 */
static bool service_identity(const struct mt_kube_state *state,
                             const struct mt_kube_service *service, const char *trust_domain,
                             char *identity, size_t capacity)
{
    const char *account = NULL;
    bool common = true;
    for (size_t i = 0; i < state->pod_count; i++) {
        const struct mt_kube_pod *pod = &state->pods[i];
        if (pod->terminal || !selects(service, pod))
            continue;
        if (!pod->injected || pod->host_network)
            return false;
        if (account == NULL)
            account = pod->service_account;
        else if (strcmp(account, pod->service_account) != 0)
            common = false;
    }
    if (account == NULL)
        return false;
    int length = snprintf(identity, capacity, "spiffe://%s/ns/%s/sa/%s", trust_domain,
                          service->namespace_name, common ? account : "*");
    return length > 0 && (size_t)length < capacity;
}

MT_RESULT mt_kube_members_compute(const struct mt_kube_state *state, const char *trust_domain,
                                  struct mt_membership_entry **entries, size_t *count)
{
    MT_ENSURE_REF(state);
    MT_ENSURE_REF(trust_domain);
    MT_ENSURE_REF(entries);
    MT_ENSURE_REF(count);
    struct entries out = {0};
    char identity[MT_MEMBERSHIP_IDENTITY_MAX + 1];
    mt_result result = MT_OK_RESULT;
    for (size_t i = 0; i < state->pod_count && mt_result_is_ok(result); i++) {
        const struct mt_kube_pod *pod = &state->pods[i];
        if (!pod_is_member(pod))
            continue;
        int length = snprintf(identity, sizeof(identity), "spiffe://%s/ns/%s/sa/%s", trust_domain,
                              pod->namespace_name, pod->service_account);
        if (length < 0 || (size_t)length >= sizeof(identity))
            continue;
        /* Every port: an injected pod's inbound is strict on all of them but its probes'. */
        for (uint8_t a = 0; a < pod->address_count && mt_result_is_ok(result); a++)
            result = add_entry(&out, &pod->addresses[a], 1, 65535, identity);
    }
    for (size_t i = 0; i < state->service_count && mt_result_is_ok(result); i++) {
        const struct mt_kube_service *service = &state->services[i];
        if (service->selector_count == 0 || service->address_count == 0 ||
            service->port_count == 0 ||
            !service_identity(state, service, trust_domain, identity, sizeof(identity)))
            continue;
        for (uint8_t a = 0; a < service->address_count && mt_result_is_ok(result); a++)
            for (uint16_t p = 0; p < service->port_count && mt_result_is_ok(result); p++)
                result = add_entry(&out, &service->addresses[a], service->ports[p],
                                   service->ports[p], identity);
    }
    if (!mt_result_is_ok(result)) {
        free(out.array);
        return result;
    }
    *entries = out.array;
    *count = out.count;
    return MT_OK_RESULT;
}
