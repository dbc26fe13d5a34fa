/*
 * Which Kubernetes pod and container a process runs in, read from the text of /proc/<pid>/cgroup.
 *
 * Pure and allocation-free in the shape of policy/detect.h: it is given the whole file's text (no
 * terminating NUL needed) and never reads past length. The answers:
 *
 *   HOST     no line names a pod: a process of the node itself.
 *   POD      the chosen line's path starts at the hierarchy's root with the kubelet's pod tree:
 *              systemd driver  /kubepods.slice[/kubepods-QOS.slice]/kubepods[-QOS]-pod<UID_>.slice
 *              cgroupfs driver /kubepods[/QOS]/pod<UID>
 *            (QOS burstable or besteffort; guaranteed pods have none), UID the 36-character pod
 *            UID (the systemd driver writes its '-' as '_'), then optionally the container's
 *            cgroup: cri-containerd-<ID>.scope, crio-<ID>.scope, docker-<ID>.scope, or <ID>
 *            alone (cgroupfs), ID 64 lowercase hexadecimal digits. Deeper cgroups a container
 *            made below its own belong to that container. A pod's cgroup whose next level is
 *            none of those (conmon, a runtime this reader does not know) is the pod without a
 *            container ID.
 *   OUTSIDE  the path starts with "/..": the process is outside the reader's cgroup namespace,
 *            whose root hides where the path begins; the reader must run in the host's cgroup
 *            namespace to tell pods from the node.
 *   UNKNOWN  no line of the form "N:controllers:/path" at all, or lines that disagree: another
 *            line names a pod while the chosen one names none or another pod (or another
 *            container of it). A runtime that placed the process in one hierarchy only cannot
 *            be told from a process of the node there, so the answer is no answer.
 *
 * Only a path anchored at the root counts: "kubepods" anywhere else (a cgroup subtree delegated to
 * a user, who may name its cgroups as it likes) is HOST, so that no one but the kubelet's runtime
 * can place a process in what reads as a pod.
 *
 * The line: the unified hierarchy's ("0::/path": cgroup v2, or hybrid, where systemd and the
 * runtimes place a container in the unified hierarchy too), else the "name=systemd" line (v1),
 * else the first v1 line. Every other line must agree with it (UNKNOWN above).
 */
#ifndef MT_AGENT_POD_CGROUP_H
#define MT_AGENT_POD_CGROUP_H

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

/* Classifies the cgroup file text[0 .. length); pod is filled for MT_POD_CGROUP_POD only. */
enum mt_pod_cgroup_result mt_pod_cgroup_parse(const char *text, size_t length,
                                              struct mt_pod_cgroup *pod);

/* "host", "pod", "outside the cgroup namespace", "unknown"; for log lines. */
const char *mt_pod_cgroup_result_name(enum mt_pod_cgroup_result result);

#endif
