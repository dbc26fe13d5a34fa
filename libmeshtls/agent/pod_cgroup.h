/*
 * Which Kubernetes pod and container a process runs in, read from the text of /proc/<pid>/cgroup.
 *
 * Pure and allocation-free in the shape of policy/detect.h: it is given the whole file's text (no
 * terminating NUL needed) and never reads past length. The answers:
 *
 *   HOST     no line names a pod: a process of the node itself. A path in the kubelet's root
 *            (/kubepods.slice, /kubepods) whose pod level cannot be read is never HOST but
 *            UNKNOWN: every process there is a pod's, and a node's uid rules must not name it.
 *   POD      the chosen line's path, from the host's root (below), is the kubelet's pod tree:
 *              systemd driver  /kubepods.slice[/kubepods-QOS.slice]/kubepods[-QOS]-pod<UID_>.slice
 *              cgroupfs driver /kubepods[/QOS]/pod<UID>
 *            (QOS burstable or besteffort; guaranteed pods have none), UID the 36-character pod
 *            UID (the systemd driver writes its '-' as '_'), then optionally the container's
 *            cgroup: cri-containerd-<ID>.scope, crio-<ID>.scope, docker-<ID>.scope, or <ID>
 *            alone (cgroupfs), ID 64 lowercase hexadecimal digits. Deeper cgroups a container
 *            made below its own belong to that container. A pod's cgroup whose next level is
 *            none of those (conmon, a runtime this reader does not know) is the pod without a
 *            container ID.
 *   OUTSIDE  the path climbs more levels ("..") than the reader's namespace root is deep: the
 *            depth the reader was given is wrong.
 *   UNKNOWN  no line of the form "N:controllers:/path" at all, or lines that disagree: another
 *            line names a pod while the chosen one names none or another pod (or another
 *            container of it). A runtime that placed the process in one hierarchy only cannot
 *            be told from a process of the node there, so the answer is no answer. Also a
 *            path whose pod level the reader cannot see from its namespace (below).
 *
 * Only a path anchored at the host's root counts: "kubepods" anywhere else (a cgroup subtree
 * delegated to a user, who may name its cgroups as it likes) is HOST, so that no one but the
 * kubelet's runtime can place a process in what reads as a pod.
 *
 * The reader in its own cgroup namespace. The kernel writes /proc/<pid>/cgroup relative to the
 * reading process's cgroup namespace root (cgroup_namespaces(7)); a caller can neither write nor
 * choose that text, only the cgroup it is in, and it can only create cgroups below its own (with
 * delegation). On cgroup v2 containerd and CRI-O give every container a private namespace rooted
 * at its own cgroup, so an agent run as a DaemonSet reads another pod's process as
 *     0::/../../kubepods-burstable-pod<UID_>.slice/cri-containerd-<ID>.scope
 * A path that starts with k ".." climbs k levels from the reader's root, then goes down. With
 * root_depth D, the host depth of the reader's namespace root (mt_pod_cgroup_root_depth reads it
 * from the host init's /proc/1/cgroup, D times "/.." then "/init.scope" under systemd or nothing,
 * as a reader with the host's PID namespace sees it; 0 in the host's namespace), the path's place
 * is known exactly:
 *   k == D   the rest is a path from the host's root: read as above, except that a rest in
 *            kubepods without a pod level read as one, or whose first level is another kubelet
 *            name (kubepods-..., pod<UID>, a QoS class) or a container's, is UNKNOWN, never
 *            HOST: a caller in the reader's kubepods tree shares its ancestors (k < D), so D is
 *            wrong.
 *   0<k<D    the rest is below the reader's ancestor at host depth a = D - k, a cgroup above the
 *            reader's container: the kubepods root (a = 1: a QoS level then a pod, or a
 *            guaranteed pod, in either driver's names), a QoS level (a = 2: a pod), or the
 *            reader's own pod (a >= 3) whose UID no path below it names: UNKNOWN. Such a
 *            caller is inside the reader's kubepods tree, so it is never HOST.
 *   k == 0<D the caller is inside the reader's own container: UNKNOWN.
 *   k > D    OUTSIDE.
 * In every case the level read as the pod is a child of a cgroup the kubelet made (the host's
 * root or kubepods root, a QoS level), never of a container's cgroup, so cgroups a delegated
 * container names like another pod below its own are read as its own container's: the
 * outermost pod level wins, and the container ID is the level right after it. A wrong D cannot
 * change that: the first level read is always a child of one of the reader's ancestors above its
 * own container (k >= 1), so of a cgroup the kubelet made, and a level is read further only below
 * one that carries a kubelet name. It makes callers UNKNOWN or OUTSIDE (a cgroupfs pod may still
 * be read as itself), never another pod, never the node. The rule assumes the reader itself runs
 * in a pod (a DaemonSet); a reader in a private namespace outside kubepods refuses its siblings.
 * One depth serves every line: on cgroup v1 runtimes do not make private namespaces.
 *
 * The line: the unified hierarchy's ("0::/path": cgroup v2, or hybrid, where systemd and the
 * runtimes place a container in the unified hierarchy too), else the "name=systemd" line (v1),
 * else the first v1 line. Every other line must agree with it (UNKNOWN above).
 */
#ifndef MT_AGENT_POD_CGROUP_H
#define MT_AGENT_POD_CGROUP_H

#include <stdbool.h>
#include <stddef.h>

#define MT_POD_UID_LENGTH 36
#define MT_POD_CONTAINER_ID_LENGTH 64

enum mt_pod_cgroup_result {
    MT_POD_CGROUP_HOST = 0,
    MT_POD_CGROUP_POD,
    MT_POD_CGROUP_OUTSIDE,
    MT_POD_CGROUP_UNKNOWN,
};

enum mt_pod_runtime {
    MT_POD_RUNTIME_NONE = 0, /* no container ID found */
    MT_POD_RUNTIME_CONTAINERD,
    MT_POD_RUNTIME_CRIO,
    MT_POD_RUNTIME_DOCKER,
    MT_POD_RUNTIME_CGROUPFS, /* a bare ID: containerd or Docker under the cgroupfs driver */
};

struct mt_pod_cgroup {
    char uid[MT_POD_UID_LENGTH + 1];                   /* canonical, with '-' */
    char container_id[MT_POD_CONTAINER_ID_LENGTH + 1]; /* "" with MT_POD_RUNTIME_NONE */
    enum mt_pod_runtime runtime;
};

/*
 * Classifies the cgroup file text[0 .. length) read from a cgroup namespace whose root is
 * root_depth levels below the host's; pod is filled for MT_POD_CGROUP_POD only.
 */
enum mt_pod_cgroup_result mt_pod_cgroup_parse(const char *text, size_t length, size_t root_depth,
                                              struct mt_pod_cgroup *pod);

/*
 * The host depth of the reader's cgroup namespace root, from the text of the host init's
 * /proc/1/cgroup as the reader sees it: its chosen line's path must be "/.." repeated (none or
 * more), then "/init.scope" (systemd's place for the init, below the host's root) or nothing.
 * False for any other text (a /proc/1 that is not the host's init: no host PID namespace).
 */
bool mt_pod_cgroup_root_depth(const char *text, size_t length, size_t *depth);

/* "host", "pod", "above the host's cgroup root", "unknown"; for log lines. */
const char *mt_pod_cgroup_result_name(enum mt_pod_cgroup_result result);

#endif
