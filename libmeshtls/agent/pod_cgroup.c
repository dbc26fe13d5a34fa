/*
 * The pod reader of /proc/<pid>/cgroup (see pod_cgroup.h): which line counts, and the kubelet's
 * cgroup names under the systemd and cgroupfs drivers.
 *
 * Owns the byte-level reading of the file: lines "N:controllers:/path" (cgroups(7)), path
 * segments, pod UIDs and container IDs, and the rebasing of a path written relative to the
 * reader's cgroup namespace onto the host's root. Must never allocate, keep state between calls,
 * read past the length it was given, or accept a pod anywhere but at the kubelet's pod level of
 * the host's hierarchy: a user with a delegated cgroup subtree (systemd's user@.service, a
 * container given cgroup delegation) names its cgroups as it likes, and a pod found there would
 * hand that user the pod's identity.
 */
#include <stdbool.h>
#include <string.h>

#include "pod_cgroup.h"

/* A piece of the text: never NUL-terminated. */
struct span {
    const char *start;
    size_t length;
};

static bool span_equals(struct span span, const char *text)
{
    size_t length = strlen(text);
    return span.length == length && memcmp(span.start, text, length) == 0;
}

static bool span_starts_with(struct span span, const char *prefix)
{
    size_t length = strlen(prefix);
    return span.length >= length && memcmp(span.start, prefix, length) == 0;
}

/* span without its first count bytes (count <= span.length). */
static struct span span_after(struct span span, size_t count)
{
    return (struct span){span.start + count, span.length - count};
}

static bool span_ends_with(struct span span, const char *suffix)
{
    size_t length = strlen(suffix);
    return span.length >= length && memcmp(span.start + span.length - length, suffix, length) == 0;
}

/* span without its last count bytes (count <= span.length). */
static struct span span_before_end(struct span span, size_t count)
{
    return (struct span){span.start, span.length - count};
}

/* The next piece of *rest up to separator (excluded), which *rest then starts after. */
static struct span take_until(struct span *rest, char separator)
{
    const char *end = memchr(rest->start, separator, rest->length);
    size_t length = end != NULL ? (size_t)(end - rest->start) : rest->length;
    struct span piece = {rest->start, length};
    *rest = end != NULL ? span_after(*rest, length + 1) : span_after(*rest, length);
    return piece;
}

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool is_decimal(struct span span)
{
    if (span.length == 0)
        return false;
    for (size_t i = 0; i < span.length; i++)
        if (span.start[i] < '0' || span.start[i] > '9')
            return false;
    return true;
}

/* ---- the line ----------------------------------------------------------------------------- */

/* The path of one line "N:controllers:/path"; false when the line has another shape. */
static bool line_path(struct span line, struct span *hierarchy, struct span *controllers,
                      struct span *path)
{
    struct span rest = line;
    *hierarchy = take_until(&rest, ':');
    if (hierarchy->length == line.length || !is_decimal(*hierarchy))
        return false;
    if (memchr(rest.start, ':', rest.length) == NULL)
        return false;
    *controllers = take_until(&rest, ':');
    *path = rest;
    return path->length > 0 && path->start[0] == '/';
}

/* True when the comma-separated controllers hold "name=systemd". */
static bool names_systemd(struct span controllers)
{
    struct span rest = controllers;
    while (rest.length > 0) {
        if (span_equals(take_until(&rest, ','), "name=systemd"))
            return true;
    }
    return false;
}

/*
 * The path pod_cgroup.h says counts: the unified hierarchy's ("0::"), else the name=systemd
 * line's, else the first v1 line's. False when no line has the shape of one.
 */
static bool choose_path(struct span text, struct span *chosen)
{
    enum { NONE, FIRST_V1, SYSTEMD, UNIFIED } rank = NONE;
    struct span rest = text;
    while (rest.length > 0) {
        struct span line = take_until(&rest, '\n');
        struct span hierarchy;
        struct span controllers;
        struct span path;
        if (!line_path(line, &hierarchy, &controllers, &path))
            continue;
        bool unified = span_equals(hierarchy, "0") && controllers.length == 0;
        if (unified && rank < UNIFIED) {
            *chosen = path;
            rank = UNIFIED;
        } else if (!unified && names_systemd(controllers) && rank < SYSTEMD) {
            *chosen = path;
            rank = SYSTEMD;
        } else if (!unified && rank < FIRST_V1) {
            *chosen = path;
            rank = FIRST_V1;
        }
    }
    return rank != NONE;
}

/* ---- the path ----------------------------------------------------------------------------- */

/* A pod UID: 8-4-4-4-12 lowercase hexadecimal digits, groups joined by separator. */
static bool is_pod_uid(struct span span, char separator)
{
    static const size_t dashes[] = {8, 13, 18, 23};
    if (span.length != MT_POD_UID_LENGTH)
        return false;
    size_t next_dash = 0;
    for (size_t i = 0; i < span.length; i++) {
        if (next_dash < sizeof(dashes) / sizeof(dashes[0]) && i == dashes[next_dash]) {
            if (span.start[i] != separator)
                return false;
            next_dash++;
        } else if (!is_lower_hex(span.start[i])) {
            return false;
        }
    }
    return true;
}

static void store_pod_uid(struct span span, struct mt_pod_cgroup *pod)
{
    for (size_t i = 0; i < MT_POD_UID_LENGTH; i++)
        pod->uid[i] = span.start[i] == '_' ? '-' : span.start[i];
    pod->uid[MT_POD_UID_LENGTH] = '\0';
}

static bool is_container_id(struct span span)
{
    if (span.length != MT_POD_CONTAINER_ID_LENGTH)
        return false;
    for (size_t i = 0; i < span.length; i++)
        if (!is_lower_hex(span.start[i]))
            return false;
    return true;
}

/* One level of a container's cgroup name: prefix, the ID, suffix ("" for none). */
struct container_form {
    const char *prefix;
    const char *suffix;
    enum mt_pod_runtime runtime;
};

static const struct container_form container_forms[] = {
    {"cri-containerd-", ".scope", MT_POD_RUNTIME_CONTAINERD},
    {"crio-", ".scope", MT_POD_RUNTIME_CRIO},
    {"crio-", "", MT_POD_RUNTIME_CRIO}, /* CRI-O under the cgroupfs driver */
    {"docker-", ".scope", MT_POD_RUNTIME_DOCKER},
    {"", "", MT_POD_RUNTIME_CGROUPFS},
};

/* The container a pod's next cgroup level names, if any. */
static void read_container(struct span segment, struct mt_pod_cgroup *pod)
{
    for (size_t i = 0; i < sizeof(container_forms) / sizeof(container_forms[0]); i++) {
        const struct container_form *form = &container_forms[i];
        size_t prefix = strlen(form->prefix);
        size_t suffix = strlen(form->suffix);
        if (segment.length < prefix + suffix || !span_starts_with(segment, form->prefix) ||
            !span_ends_with(segment, form->suffix))
            continue;
        struct span id = span_before_end(span_after(segment, prefix), suffix);
        if (!is_container_id(id))
            continue;
        memcpy(pod->container_id, id.start, MT_POD_CONTAINER_ID_LENGTH);
        pod->container_id[MT_POD_CONTAINER_ID_LENGTH] = '\0';
        pod->runtime = form->runtime;
        return;
    }
}

/* The systemd driver's pod slice: "kubepods-pod<UID_>.slice" or "kubepods-QOS-pod<UID_>.slice". */
static bool read_systemd_pod(struct span segment, const char *qos_prefix, struct mt_pod_cgroup *pod)
{
    if (!span_starts_with(segment, qos_prefix) || !span_ends_with(segment, ".slice"))
        return false;
    struct span rest = span_after(segment, strlen(qos_prefix));
    if (!span_starts_with(rest, "pod") || rest.length < strlen("pod") + strlen(".slice"))
        return false;
    struct span uid = span_before_end(span_after(rest, strlen("pod")), strlen(".slice"));
    if (!is_pod_uid(uid, '_'))
        return false;
    store_pod_uid(uid, pod);
    return true;
}

/* The cgroupfs driver's pod cgroup: "pod<UID>". */
static bool read_cgroupfs_pod(struct span segment, struct mt_pod_cgroup *pod)
{
    if (!span_starts_with(segment, "pod"))
        return false;
    struct span uid = span_after(segment, strlen("pod"));
    if (!is_pod_uid(uid, '-'))
        return false;
    store_pod_uid(uid, pod);
    return true;
}

/* The pod level below the root, past a QoS level if there is one. */
static bool read_pod_level(struct span *rest, bool systemd, struct mt_pod_cgroup *pod)
{
    struct span segment = take_until(rest, '/');
    if (systemd) {
        if (span_equals(segment, "kubepods-burstable.slice"))
            return read_systemd_pod(take_until(rest, '/'), "kubepods-burstable-", pod);
        if (span_equals(segment, "kubepods-besteffort.slice"))
            return read_systemd_pod(take_until(rest, '/'), "kubepods-besteffort-", pod);
        return read_systemd_pod(segment, "kubepods-", pod);
    }
    if (span_equals(segment, "burstable") || span_equals(segment, "besteffort"))
        segment = take_until(rest, '/');
    return read_cgroupfs_pod(segment, pod);
}

/* The level after a pod's cgroup, if any, names its container. */
static enum mt_pod_cgroup_result found_pod(struct span rest, struct mt_pod_cgroup found,
                                           struct mt_pod_cgroup *pod)
{
    if (rest.length > 0)
        read_container(take_until(&rest, '/'), &found);
    *pod = found;
    return MT_POD_CGROUP_POD;
}

/* A host-root level a node's own process never has: the kubelet's or a runtime's, misplaced. */
static bool looks_like_kubepods(struct span segment)
{
    struct mt_pod_cgroup container = {.runtime = MT_POD_RUNTIME_NONE};
    read_container(segment, &container);
    return span_starts_with(segment, "kubepods") || span_starts_with(segment, "pod") ||
           span_equals(segment, "burstable") || span_equals(segment, "besteffort") ||
           container.runtime != MT_POD_RUNTIME_NONE;
}

/*
 * rest: a path below the host's root. rebased: it was relative to a cgroup namespace below the
 * host's; a reader in a pod sees no caller in kubepods this way (they share its ancestors), so a
 * kubelet name there means a wrong depth: the caller is no pod the reader can tell, nor the node.
 */
static enum mt_pod_cgroup_result read_absolute(struct span rest, bool rebased,
                                               struct mt_pod_cgroup *pod)
{
    struct span root = take_until(&rest, '/');
    bool systemd = span_equals(root, "kubepods.slice");
    if (!systemd && !span_equals(root, "kubepods"))
        return rebased && looks_like_kubepods(root) ? MT_POD_CGROUP_UNKNOWN : MT_POD_CGROUP_HOST;
    struct mt_pod_cgroup found = {.runtime = MT_POD_RUNTIME_NONE};
    if (!read_pod_level(&rest, systemd, &found))
        return MT_POD_CGROUP_UNKNOWN;
    return found_pod(rest, found, pod);
}

/*
 * rest: a path below the reader's ancestor at host depth ancestor (1 .. its own depth - 1), an
 * ancestor of a pod's container, so a cgroup the kubelet made: only its pod level may follow
 * (pod_cgroup.h). Nothing else is a node's process.
 */
static enum mt_pod_cgroup_result read_below_ancestor(struct span rest, size_t ancestor,
                                                     struct mt_pod_cgroup *pod)
{
    struct mt_pod_cgroup found = {.runtime = MT_POD_RUNTIME_NONE};
    struct span after = rest;
    if (ancestor == 1) {
        /* The kubepods root: the QoS level or a guaranteed pod, in either driver's names. */
        if (read_pod_level(&after, true, &found))
            return found_pod(after, found, pod);
        after = rest;
        if (read_pod_level(&after, false, &found))
            return found_pod(after, found, pod);
    } else if (ancestor == 2) {
        /* A QoS level: its pods. A guaranteed pod's level holds containers, never these names. */
        struct span segment = take_until(&after, '/');
        if (read_systemd_pod(segment, "kubepods-burstable-", &found) ||
            read_systemd_pod(segment, "kubepods-besteffort-", &found) ||
            read_cgroupfs_pod(segment, &found))
            return found_pod(after, found, pod);
    }
    /* Deeper: the reader's own pod, whose UID the path does not say. */
    return MT_POD_CGROUP_UNKNOWN;
}

static enum mt_pod_cgroup_result read_path(struct span path, size_t root_depth,
                                           struct mt_pod_cgroup *pod)
{
    struct span rest = span_after(path, 1); /* the leading '/' */
    size_t up = 0;
    for (;;) {
        struct span after = rest;
        if (rest.length == 0 || !span_equals(take_until(&after, '/'), ".."))
            break;
        rest = after;
        up++;
    }
    if (up > root_depth)
        return MT_POD_CGROUP_OUTSIDE;
    if (up == root_depth)
        return read_absolute(rest, root_depth > 0, pod);
    if (up == 0)
        return MT_POD_CGROUP_UNKNOWN; /* inside the reader's own namespace: its own container */
    return read_below_ancestor(rest, root_depth - up, pod);
}

/*
 * True when every line that names a pod names the pod (and container) of the chosen path: a
 * hierarchy the runtime placed the process in while the chosen one says otherwise cannot be told
 * apart from a runtime that never joins the chosen one.
 */
static bool lines_agree(struct span text, size_t root_depth, enum mt_pod_cgroup_result chosen,
                        const struct mt_pod_cgroup *pod)
{
    struct span rest = text;
    while (rest.length > 0) {
        struct span line = take_until(&rest, '\n');
        struct span hierarchy;
        struct span controllers;
        struct span path;
        struct mt_pod_cgroup other;
        if (!line_path(line, &hierarchy, &controllers, &path) ||
            read_path(path, root_depth, &other) != MT_POD_CGROUP_POD)
            continue;
        if (chosen != MT_POD_CGROUP_POD || strcmp(other.uid, pod->uid) != 0)
            return false;
        if (other.runtime != MT_POD_RUNTIME_NONE && pod->runtime != MT_POD_RUNTIME_NONE &&
            strcmp(other.container_id, pod->container_id) != 0)
            return false;
    }
    return true;
}

enum mt_pod_cgroup_result mt_pod_cgroup_parse(const char *text, size_t length, size_t root_depth,
                                              struct mt_pod_cgroup *pod)
{
    if (text == NULL || length == 0 || pod == NULL)
        return MT_POD_CGROUP_UNKNOWN;
    struct span whole = {text, length};
    struct span path;
    if (!choose_path(whole, &path))
        return MT_POD_CGROUP_UNKNOWN;
    struct mt_pod_cgroup found;
    enum mt_pod_cgroup_result result = read_path(path, root_depth, &found);
    if (result == MT_POD_CGROUP_OUTSIDE)
        return result;
    if (!lines_agree(whole, root_depth, result, &found))
        return MT_POD_CGROUP_UNKNOWN;
    if (result == MT_POD_CGROUP_POD)
        *pod = found;
    return result;
}

bool mt_pod_cgroup_root_depth(const char *text, size_t length, size_t *depth)
{
    if (text == NULL || length == 0 || depth == NULL)
        return false;
    struct span path;
    if (!choose_path((struct span){text, length}, &path))
        return false;
    struct span rest = span_after(path, 1);
    size_t up = 0;
    while (rest.length > 0) {
        struct span segment = take_until(&rest, '/');
        /* systemd keeps the init in init.scope, a child of the host's root. */
        if (span_equals(segment, "init.scope") && rest.length == 0)
            break;
        if (!span_equals(segment, ".."))
            return false;
        up++;
    }
    *depth = up;
    return true;
}

const char *mt_pod_cgroup_result_name(enum mt_pod_cgroup_result result)
{
    switch (result) {
    case MT_POD_CGROUP_HOST:
        return "host";
    case MT_POD_CGROUP_POD:
        return "pod";
    case MT_POD_CGROUP_OUTSIDE:
        return "above the host's cgroup root";
    case MT_POD_CGROUP_UNKNOWN:
        return "unknown";
    }
    return "unknown";
}
