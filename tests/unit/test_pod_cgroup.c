/*
 * Tests for agent/pod_cgroup.c with the /proc/<pid>/cgroup text of containerd, CRI-O and Docker
 * under the systemd and cgroupfs drivers, cgroup v1, hybrid and v2, and with near misses that
 * must read as the node's own processes: a UID one digit short or in capitals, "kubepods" below
 * a user's delegated subtree, a QoS level with the wrong pod slice. Then the same read from an
 * agent in its pod's own cgroup namespace (paths that climb first, "/../../..."): every QoS class
 * and driver, the node's services, the agent's own pod, pod names a delegated container nests
 * below its own, and depths that are wrong. Every input is placed against a PROT_NONE guard page,
 * so reading one byte past the given length crashes the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/pod_cgroup.h"

#define UID "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
#define UID_ "1b4e28ba_2fa1_11d2_883f_0016d3cca427"
#define CID "3f2a6c1e9b8d7f60a5c4e3d2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09876"

/*
 * Parses text, as read from a cgroup namespace root_depth levels below the host's, placed so that
 * its last byte is the last before a PROT_NONE page.
 */
static enum mt_pod_cgroup_result parse_guarded_at(const char *text, size_t root_depth,
                                                  struct mt_pod_cgroup *pod)
{
    size_t length = strlen(text);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (length + page - 1) / page + 1;
    size_t size = (data_pages + 1) * page;
    uint8_t *mapping = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(mapping != MAP_FAILED);
    uint8_t *guard = mapping + data_pages * page;
    assert_int_equal(mprotect(guard, page, PROT_NONE), 0);
    memcpy(guard - length, text, length);
    enum mt_pod_cgroup_result result = mt_pod_cgroup_parse(
        length > 0 ? (const char *)guard - length : NULL, length, root_depth, pod);
    munmap(mapping, size);
    return result;
}

static enum mt_pod_cgroup_result parse_guarded(const char *text, struct mt_pod_cgroup *pod)
{
    return parse_guarded_at(text, 0, pod);
}

static void expect_pod(const char *text, enum mt_pod_runtime runtime, const char *container_id)
{
    struct mt_pod_cgroup pod;
    memset(&pod, 0x5a, sizeof(pod));
    assert_int_equal(parse_guarded(text, &pod), MT_POD_CGROUP_POD);
    assert_string_equal(pod.uid, UID);
    assert_int_equal(pod.runtime, runtime);
    assert_string_equal(pod.container_id, container_id);
}

static void expect(const char *text, enum mt_pod_cgroup_result expected)
{
    struct mt_pod_cgroup pod;
    assert_int_equal(parse_guarded(text, &pod), expected);
}

static void expect_pod_at(const char *text, size_t root_depth, const char *uid,
                          enum mt_pod_runtime runtime, const char *container_id)
{
    struct mt_pod_cgroup pod;
    memset(&pod, 0x5a, sizeof(pod));
    assert_int_equal(parse_guarded_at(text, root_depth, &pod), MT_POD_CGROUP_POD);
    assert_string_equal(pod.uid, uid);
    assert_int_equal(pod.runtime, runtime);
    assert_string_equal(pod.container_id, container_id);
}

static void expect_at(const char *text, size_t root_depth, enum mt_pod_cgroup_result expected)
{
    struct mt_pod_cgroup pod;
    assert_int_equal(parse_guarded_at(text, root_depth, &pod), expected);
}

static void test_parse_v2_systemd_containerd_finds_pod_and_container(void **state)
{
    (void)state;
    expect_pod("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UID_
               ".slice/cri-containerd-" CID ".scope\n",
               MT_POD_RUNTIME_CONTAINERD, CID);
    expect_pod("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_
               ".slice/cri-containerd-" CID ".scope\n",
               MT_POD_RUNTIME_CONTAINERD, CID);
}

static void test_parse_v2_systemd_crio_and_docker_find_container(void **state)
{
    (void)state;
    expect_pod("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_
               ".slice/crio-" CID ".scope\n",
               MT_POD_RUNTIME_CRIO, CID);
    expect_pod("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UID_
               ".slice/docker-" CID ".scope\n",
               MT_POD_RUNTIME_DOCKER, CID);
}

static void test_parse_guaranteed_pods_without_qos_level_find_pod(void **state)
{
    (void)state;
    expect_pod("0::/kubepods.slice/kubepods-pod" UID_ ".slice/cri-containerd-" CID ".scope\n",
               MT_POD_RUNTIME_CONTAINERD, CID);
    expect_pod("0::/kubepods/pod" UID "/" CID "\n", MT_POD_RUNTIME_CGROUPFS, CID);
}

static void test_parse_cgroupfs_driver_finds_bare_and_crio_ids(void **state)
{
    (void)state;
    expect_pod("0::/kubepods/burstable/pod" UID "/" CID "\n", MT_POD_RUNTIME_CGROUPFS, CID);
    expect_pod("0::/kubepods/besteffort/pod" UID "/crio-" CID "\n", MT_POD_RUNTIME_CRIO, CID);
}

static void test_parse_v1_uses_systemd_line_whatever_its_position(void **state)
{
    (void)state;
    expect_pod("12:pids:/kubepods/burstable/pod" UID "/" CID "\n"
               "11:cpu,cpuacct:/kubepods/burstable/pod" UID "/" CID "\n"
               "1:name=systemd:/kubepods/burstable/pod" UID "/" CID "\n",
               MT_POD_RUNTIME_CGROUPFS, CID);
    /* Controller lines of the node beside a systemd line of the pod (a runtime that joins only
     * some controllers). */
    expect_pod("5:memory:/\n"
               "1:name=systemd:/kubepods.slice/kubepods-pod" UID_ ".slice/docker-" CID ".scope",
               MT_POD_RUNTIME_DOCKER, CID);
}

static void test_parse_v1_without_systemd_line_uses_first_v1_line(void **state)
{
    (void)state;
    expect_pod("4:memory:/kubepods/pod" UID "/" CID "\n3:cpu:/\n", MT_POD_RUNTIME_CGROUPFS, CID);
}

static void test_parse_hybrid_uses_unified_line(void **state)
{
    (void)state;
    expect_pod("9:name=systemd:/\n4:memory:/process_api/ef52\n0::/kubepods.slice/"
               "kubepods-burstable.slice/kubepods-burstable-pod" UID_ ".slice/cri-containerd-" CID
               ".scope\n",
               MT_POD_RUNTIME_CONTAINERD, CID);
    expect_pod("1:name=systemd:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_
               ".slice/cri-containerd-" CID ".scope\n0::/kubepods.slice/kubepods-burstable.slice/"
               "kubepods-burstable-pod" UID_ ".slice/cri-containerd-" CID ".scope\n",
               MT_POD_RUNTIME_CONTAINERD, CID);
}

static void test_parse_lines_that_disagree_on_the_pod_are_unknown(void **state)
{
    (void)state;
    /* A pod in v1, the node in the unified hierarchy: no answer rather than the node's. */
    expect("1:name=systemd:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_
           ".slice/cri-containerd-" CID ".scope\n0::/\n",
           MT_POD_CGROUP_UNKNOWN);
    expect("5:memory:/kubepods/pod" UID "/" CID "\n1:name=systemd:/user.slice\n",
           MT_POD_CGROUP_UNKNOWN);
    expect("4:memory:/\n3:cpu:/kubepods/pod" UID "/" CID "\n", MT_POD_CGROUP_UNKNOWN);
    /* Another pod, another container of the same pod. */
    expect("4:memory:/kubepods/pod2b4e28ba-2fa1-11d2-883f-0016d3cca427/" CID
           "\n0::/kubepods/pod" UID "/" CID "\n",
           MT_POD_CGROUP_UNKNOWN);
    expect("4:memory:/kubepods/pod" UID
           "/0000000000000000000000000000000000000000000000000000000000"
           "000000\n0::/kubepods/pod" UID "/" CID "\n",
           MT_POD_CGROUP_UNKNOWN);
}

static void test_parse_pod_without_known_container_level_has_no_container_id(void **state)
{
    (void)state;
    expect_pod("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_
               ".slice/crio-conmon-" CID ".scope\n",
               MT_POD_RUNTIME_NONE, "");
    expect_pod("0::/kubepods/pod" UID "\n", MT_POD_RUNTIME_NONE, "");
    /* A container ID one digit short is no container ID. */
    expect_pod("0::/kubepods/pod" UID
               "/cri-containerd-3f2a6c1e9b8d7f60a5c4e3d2b1a09f8e7d6c5b4a39281"
               "706f5e4d3c2b1a0987.scope\n",
               MT_POD_RUNTIME_NONE, "");
}

static void test_parse_cgroups_below_the_container_belong_to_it(void **state)
{
    (void)state;
    expect_pod("0::/kubepods.slice/kubepods-pod" UID_ ".slice/cri-containerd-" CID
               ".scope/init.scope\n",
               MT_POD_RUNTIME_CONTAINERD, CID);
}

/*
 * Under the kubelet's root every process is a pod's: a pod level that cannot be read is no pod the
 * agent can tell, and never the node (whose uid rules a container's root could otherwise match).
 */
static void test_parse_misshapen_pod_levels_are_unknown(void **state)
{
    (void)state;
    /* One digit short, one too many, upper case, '-' where the systemd driver writes '_'. */
    expect("0::/kubepods/pod1b4e28ba-2fa1-11d2-883f-0016d3cca42/" CID "\n", MT_POD_CGROUP_UNKNOWN);
    expect("0::/kubepods/pod" UID "7/" CID "\n", MT_POD_CGROUP_UNKNOWN);
    expect("0::/kubepods/pod1B4E28BA-2FA1-11D2-883F-0016D3CCA427/" CID "\n", MT_POD_CGROUP_UNKNOWN);
    expect("0::/kubepods.slice/kubepods-pod" UID ".slice/cri-containerd-" CID ".scope\n",
           MT_POD_CGROUP_UNKNOWN);
    expect("0::/kubepods/pod" UID_ "/" CID "\n", MT_POD_CGROUP_UNKNOWN);
    /* Dashes in the wrong places. */
    expect("0::/kubepods/pod1b4e28ba2-fa1-11d2-883f-0016d3cca427/" CID "\n", MT_POD_CGROUP_UNKNOWN);
    /* A QoS slice with another QoS's pod slice, a QoS level twice, no pod level at all. */
    expect("0::/kubepods.slice/kubepods-burstable.slice/kubepods-besteffort-pod" UID_ ".slice\n",
           MT_POD_CGROUP_UNKNOWN);
    expect("0::/kubepods/burstable/besteffort/pod" UID "\n", MT_POD_CGROUP_UNKNOWN);
    expect("0::/kubepods.slice/kubepods-burstable.slice\n", MT_POD_CGROUP_UNKNOWN);
    expect("0::/kubepods\n", MT_POD_CGROUP_UNKNOWN);
}

static void test_parse_kubepods_elsewhere_in_path_is_host(void **state)
{
    (void)state;
    /* A user's delegated subtree, named like the kubelet's. */
    expect("0::/user.slice/user-1000.slice/user@1000.service/kubepods.slice/kubepods-pod" UID_
           ".slice/cri-containerd-" CID ".scope\n",
           MT_POD_CGROUP_HOST);
    expect("0::/system.slice/kubepods/pod" UID "/" CID "\n", MT_POD_CGROUP_HOST);
    expect("0::/kubepods-pod" UID_ ".slice/cri-containerd-" CID ".scope\n", MT_POD_CGROUP_HOST);
    expect("0::/kubepodsx/pod" UID "/" CID "\n", MT_POD_CGROUP_HOST);
    expect("0::/\n", MT_POD_CGROUP_HOST);
    expect("0::/init.scope\n", MT_POD_CGROUP_HOST);
}

static void test_parse_path_outside_cgroup_namespace_is_outside(void **state)
{
    (void)state;
    expect("0::/../../kubepods-besteffort-pod" UID_ ".slice/cri-containerd-" CID ".scope\n",
           MT_POD_CGROUP_OUTSIDE);
    expect("0::/..\n", MT_POD_CGROUP_OUTSIDE);
}

static void test_parse_malformed_text_is_unknown(void **state)
{
    (void)state;
    expect("", MT_POD_CGROUP_UNKNOWN);
    expect("\n\n", MT_POD_CGROUP_UNKNOWN);
    expect("0:/kubepods/pod" UID "\n", MT_POD_CGROUP_UNKNOWN);
    expect("x::/kubepods/pod" UID "\n", MT_POD_CGROUP_UNKNOWN);
    expect("0::kubepods/pod" UID "\n", MT_POD_CGROUP_UNKNOWN);
    expect("0::\n", MT_POD_CGROUP_UNKNOWN);
    struct mt_pod_cgroup pod;
    assert_int_equal(mt_pod_cgroup_parse(NULL, 0, 0, &pod), MT_POD_CGROUP_UNKNOWN);
}

static void test_parse_every_truncation_stays_within_length(void **state)
{
    (void)state;
    static const char whole[] =
        "1:name=systemd:/kubepods.slice/kubepods-burstable.slice/"
        "kubepods-burstable-pod" UID_ ".slice/cri-containerd-" CID ".scope\n0::/\n";
    char cut[sizeof(whole)];
    for (size_t length = 0; length < sizeof(whole) - 1; length++) {
        memcpy(cut, whole, length);
        cut[length] = '\0';
        struct mt_pod_cgroup pod;
        enum mt_pod_cgroup_result result = parse_guarded(cut, &pod);
        assert_true(result == MT_POD_CGROUP_POD || result == MT_POD_CGROUP_HOST ||
                    result == MT_POD_CGROUP_UNKNOWN);
        /* A truncated container ID is never taken for one. */
        if (result == MT_POD_CGROUP_POD && pod.runtime != MT_POD_RUNTIME_NONE)
            assert_string_equal(pod.container_id, CID);
    }
}

/*
 * The agent in a private cgroup namespace: a burstable pod's container under either driver
 * (depth 4), or a guaranteed pod's (depth 3).
 *   systemd
 * /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<A>.slice/cri-containerd-<X>.scope
 *   cgroupfs  /kubepods/burstable/pod<A>/<X>
 */
#define SYSTEMD_AGENT_DEPTH 4
#define GUARANTEED_AGENT_DEPTH 3

static void test_namespace_pod_of_the_agents_qos_class_is_found(void **state)
{
    (void)state;
    expect_pod_at("0::/../../kubepods-burstable-pod" UID_ ".slice/cri-containerd-" CID ".scope\n",
                  SYSTEMD_AGENT_DEPTH, UID, MT_POD_RUNTIME_CONTAINERD, CID);
    expect_pod_at("0::/../../kubepods-burstable-pod" UID_ ".slice/crio-" CID ".scope\n",
                  SYSTEMD_AGENT_DEPTH, UID, MT_POD_RUNTIME_CRIO, CID);
    expect_pod_at("0::/../../pod" UID "/" CID "\n", SYSTEMD_AGENT_DEPTH, UID,
                  MT_POD_RUNTIME_CGROUPFS, CID);
    /* The pod's own cgroup (a process the runtime left there): the pod, no container. */
    expect_pod_at("0::/../../kubepods-burstable-pod" UID_ ".slice\n", SYSTEMD_AGENT_DEPTH, UID,
                  MT_POD_RUNTIME_NONE, "");
}

static void test_namespace_pod_of_another_qos_class_is_found(void **state)
{
    (void)state;
    expect_pod_at("0::/../../../kubepods-besteffort.slice/kubepods-besteffort-pod" UID_
                  ".slice/cri-containerd-" CID ".scope\n",
                  SYSTEMD_AGENT_DEPTH, UID, MT_POD_RUNTIME_CONTAINERD, CID);
    expect_pod_at("0::/../../../besteffort/pod" UID "/" CID "\n", SYSTEMD_AGENT_DEPTH, UID,
                  MT_POD_RUNTIME_CGROUPFS, CID);
    /* From a guaranteed agent, /kubepods.slice/kubepods-pod<A>.slice/cri-containerd-<X>.scope. */
    expect_pod_at("0::/../../kubepods-burstable.slice/kubepods-burstable-pod" UID_
                  ".slice/docker-" CID ".scope\n",
                  GUARANTEED_AGENT_DEPTH, UID, MT_POD_RUNTIME_DOCKER, CID);
    expect_pod_at("0::/../../burstable/pod" UID "/" CID "\n", GUARANTEED_AGENT_DEPTH, UID,
                  MT_POD_RUNTIME_CGROUPFS, CID);
}

static void test_namespace_guaranteed_pods_are_found(void **state)
{
    (void)state;
    expect_pod_at("0::/../../../kubepods-pod" UID_ ".slice/cri-containerd-" CID ".scope\n",
                  SYSTEMD_AGENT_DEPTH, UID, MT_POD_RUNTIME_CONTAINERD, CID);
    expect_pod_at("0::/../../../pod" UID "/" CID "\n", SYSTEMD_AGENT_DEPTH, UID,
                  MT_POD_RUNTIME_CGROUPFS, CID);
    expect_pod_at("0::/../../kubepods-pod" UID_ ".slice/cri-containerd-" CID ".scope\n",
                  GUARANTEED_AGENT_DEPTH, UID, MT_POD_RUNTIME_CONTAINERD, CID);
    expect_pod_at("0::/../../pod" UID "/" CID "\n", GUARANTEED_AGENT_DEPTH, UID,
                  MT_POD_RUNTIME_CGROUPFS, CID);
}

static void test_namespace_host_services_are_host(void **state)
{
    (void)state;
    expect_at("0::/../../../../system.slice/foo.service\n", SYSTEMD_AGENT_DEPTH,
              MT_POD_CGROUP_HOST);
    expect_at("0::/../../../../init.scope\n", SYSTEMD_AGENT_DEPTH, MT_POD_CGROUP_HOST);
    expect_at("0::/../../../..\n", SYSTEMD_AGENT_DEPTH, MT_POD_CGROUP_HOST);
    expect_at("0::/../../../system.slice/kubelet.service\n", GUARANTEED_AGENT_DEPTH,
              MT_POD_CGROUP_HOST);
    /* Rebased to the host's root, the usual rules: kubepods under a user's subtree is not a pod. */
    expect_at("0::/../../../../user.slice/user-1000.slice/user@1000.service/kubepods.slice/"
              "kubepods-pod" UID_ ".slice\n",
              SYSTEMD_AGENT_DEPTH, MT_POD_CGROUP_HOST);
    expect_pod_at("0::/../../../../kubepods.slice/kubepods-pod" UID_ ".slice/cri-containerd-" CID
                  ".scope\n",
                  SYSTEMD_AGENT_DEPTH, UID, MT_POD_RUNTIME_CONTAINERD, CID);
}

static void test_namespace_agents_own_pod_and_container_are_unknown(void **state)
{
    (void)state;
    /* In the agent's own container: the namespace root, below it. */
    expect_at("0::/\n", SYSTEMD_AGENT_DEPTH, MT_POD_CGROUP_UNKNOWN);
    expect_at("0::/worker\n", SYSTEMD_AGENT_DEPTH, MT_POD_CGROUP_UNKNOWN);
    /* The agent's pod, another container of it (its pod UID is in no level the path shows). */
    expect_at("0::/..\n", SYSTEMD_AGENT_DEPTH, MT_POD_CGROUP_UNKNOWN);
    expect_at("0::/../cri-containerd-" CID ".scope\n", SYSTEMD_AGENT_DEPTH, MT_POD_CGROUP_UNKNOWN);
    expect_at("0::/../" CID "\n", GUARANTEED_AGENT_DEPTH, MT_POD_CGROUP_UNKNOWN);
    /* Inside the kubepods tree but no pod level: never the node's. */
    expect_at("0::/../../..\n", SYSTEMD_AGENT_DEPTH, MT_POD_CGROUP_UNKNOWN);
    expect_at("0::/../../../system.slice/foo.service\n", SYSTEMD_AGENT_DEPTH,
              MT_POD_CGROUP_UNKNOWN);
    expect_at("0::/../../kubepods-burstable-pod" UID ".slice\n", SYSTEMD_AGENT_DEPTH,
              MT_POD_CGROUP_UNKNOWN);
    expect_at("0::/../../../kubepods-burstable.slice/conmon.scope\n", SYSTEMD_AGENT_DEPTH,
              MT_POD_CGROUP_UNKNOWN);
}

#define UID_B "6fa459ea-ee8a-3ca4-894e-db77e160355e"
#define UID_B_ "6fa459ea_ee8a_3ca4_894e_db77e160355e"
#define CID_B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/*
 * A container given cgroup delegation names cgroups below its own like another pod's: it stays
 * its own pod and container, and in the agent's own pod or container it is no pod at all.
 */
static void test_namespace_nested_pod_names_never_make_another_pod(void **state)
{
    (void)state;
    expect_pod_at("0::/../../kubepods-burstable-pod" UID_B_ ".slice/cri-containerd-" CID_B
                  ".scope/kubepods-burstable-pod" UID_ ".slice/cri-containerd-" CID ".scope\n",
                  SYSTEMD_AGENT_DEPTH, UID_B, MT_POD_RUNTIME_CONTAINERD, CID_B);
    expect_pod_at("0::/../../../kubepods-besteffort.slice/kubepods-besteffort-pod" UID_B_
                  ".slice/cri-containerd-" CID_B ".scope/kubepods.slice/kubepods-pod" UID_
                  ".slice/cri-containerd-" CID ".scope\n",
                  SYSTEMD_AGENT_DEPTH, UID_B, MT_POD_RUNTIME_CONTAINERD, CID_B);
    expect_pod_at("0::/../../pod" UID_B "/" CID_B "/pod" UID "/" CID "\n", SYSTEMD_AGENT_DEPTH,
                  UID_B, MT_POD_RUNTIME_CGROUPFS, CID_B);
    /* A pod level with no container level, then a forged one: the pod, its container unknown. */
    expect_pod_at("0::/../../kubepods-burstable-pod" UID_B_ ".slice/kubepods-burstable-pod" UID_
                  ".slice/cri-containerd-" CID ".scope\n",
                  SYSTEMD_AGENT_DEPTH, UID_B, MT_POD_RUNTIME_NONE, "");
    /* Below another container of the agent's pod, below the agent's own container. */
    expect_at("0::/../cri-containerd-" CID_B ".scope/kubepods-burstable-pod" UID_
              ".slice/cri-containerd-" CID ".scope\n",
              SYSTEMD_AGENT_DEPTH, MT_POD_CGROUP_UNKNOWN);
    expect_at("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_
              ".slice/cri-containerd-" CID ".scope\n",
              SYSTEMD_AGENT_DEPTH, MT_POD_CGROUP_UNKNOWN);
    expect_at("0::/../../../kubepods-pod" UID_B_ ".slice/cri-containerd-" CID_B
              ".scope/kubepods-besteffort.slice/kubepods-besteffort-pod" UID_ ".slice\n",
              SYSTEMD_AGENT_DEPTH + 1, MT_POD_CGROUP_UNKNOWN);
}

/* Paths read at depth 4 given a depth too small or too large: never a pod, never the node's. */
static void test_namespace_wrong_depths_never_name_pod_or_node(void **state)
{
    (void)state;
    static const char *const paths[] = {
        "0::/../../kubepods-burstable-pod" UID_ ".slice/cri-containerd-" CID ".scope\n",
        "0::/../../../kubepods-besteffort.slice/kubepods-besteffort-pod" UID_
        ".slice/cri-containerd-" CID ".scope\n",
        "0::/../../../kubepods-pod" UID_ ".slice/cri-containerd-" CID ".scope\n",
        "0::/../../../besteffort/pod" UID "/" CID "\n",
    };
    static const size_t wrong_depths[] = {2, 3, 5, 6};
    for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++) {
        for (size_t d = 0; d < sizeof(wrong_depths) / sizeof(wrong_depths[0]); d++) {
            struct mt_pod_cgroup pod;
            enum mt_pod_cgroup_result result = parse_guarded_at(paths[p], wrong_depths[d], &pod);
            /* A pod at all only by its own UID (cgroupfs names carry no QoS class to check). */
            if (result == MT_POD_CGROUP_POD)
                assert_string_equal(pod.uid, UID);
            else
                assert_true(result == MT_POD_CGROUP_UNKNOWN || result == MT_POD_CGROUP_OUTSIDE);
        }
    }
    expect_at("0::/../../kubepods-burstable-pod" UID_ ".slice/cri-containerd-" CID ".scope\n", 2,
              MT_POD_CGROUP_UNKNOWN);
    expect_at("0::/../../../kubepods-besteffort.slice/kubepods-besteffort-pod" UID_ ".slice\n", 3,
              MT_POD_CGROUP_UNKNOWN);
    /* Depth 1 makes another container of the agent's pod a level below the host's root. */
    expect_at("0::/../cri-containerd-" CID ".scope\n", 1, MT_POD_CGROUP_UNKNOWN);
    expect_at("0::/../" CID "\n", 1, MT_POD_CGROUP_UNKNOWN);
    /* Rebased into kubepods without a pod level read: not the node's either. */
    expect_at("0::/../../../../kubepods.slice/kubepods-burstable.slice\n", SYSTEMD_AGENT_DEPTH,
              MT_POD_CGROUP_UNKNOWN);
    expect_at("0::/../../../../kubepods/pod" UID_ "/" CID "\n", SYSTEMD_AGENT_DEPTH,
              MT_POD_CGROUP_UNKNOWN);
    expect_at("0::/../../../../system.slice/foo.service\n", 3, MT_POD_CGROUP_OUTSIDE);
    expect_at("0::/../../../../system.slice/foo.service\n", 5, MT_POD_CGROUP_UNKNOWN);
    expect_at("0::/../../kubepods-burstable-pod" UID_ ".slice\n", 0, MT_POD_CGROUP_OUTSIDE);
}

static void test_root_depth_counts_the_host_inits_levels(void **state)
{
    (void)state;
    static const char host[] = "0::/\n";
    static const char pod[] = "0::/../../../..\n";
    static const char hybrid[] = "1:name=systemd:/../..\n0::/../../..\n";
    size_t depth = 99;
    assert_true(mt_pod_cgroup_root_depth(host, strlen(host), &depth));
    assert_int_equal(depth, 0);
    assert_true(mt_pod_cgroup_root_depth(pod, strlen(pod), &depth));
    assert_int_equal(depth, 4);
    assert_true(mt_pod_cgroup_root_depth(hybrid, strlen(hybrid), &depth));
    assert_int_equal(depth, 3);
    /* systemd's init, in init.scope below the host's root. */
    static const char systemd_host[] = "0::/init.scope\n";
    static const char systemd_pod[] = "0::/../../../init.scope\n";
    assert_true(mt_pod_cgroup_root_depth(systemd_host, strlen(systemd_host), &depth));
    assert_int_equal(depth, 0);
    assert_true(mt_pod_cgroup_root_depth(systemd_pod, strlen(systemd_pod), &depth));
    assert_int_equal(depth, 3);
    /* pid 1 of a pod's own PID namespace, a name after the levels, not a level. */
    static const char *const not_the_host_init[] = {
        "0::/../cri-containerd-" CID ".scope\n",
        "0::/system.slice/foo.service\n",
        "0::/init.scope/..\n",
        "0::/../init.scope/x\n",
        "0::/..x\n",
        "0::/.\n",
        "0::\n",
        "",
    };
    for (size_t i = 0; i < sizeof(not_the_host_init) / sizeof(not_the_host_init[0]); i++)
        assert_false(
            mt_pod_cgroup_root_depth(not_the_host_init[i], strlen(not_the_host_init[i]), &depth));
    assert_false(mt_pod_cgroup_root_depth(NULL, 0, &depth));
}

static void test_namespace_every_truncation_stays_within_length(void **state)
{
    (void)state;
    static const char whole[] =
        "0::/../../../kubepods-besteffort.slice/kubepods-besteffort-pod" UID_
        ".slice/cri-containerd-" CID ".scope\n";
    char cut[sizeof(whole)];
    for (size_t length = 0; length < sizeof(whole) - 1; length++) {
        memcpy(cut, whole, length);
        cut[length] = '\0';
        struct mt_pod_cgroup pod;
        enum mt_pod_cgroup_result result = parse_guarded_at(cut, SYSTEMD_AGENT_DEPTH, &pod);
        assert_true(result == MT_POD_CGROUP_POD || result == MT_POD_CGROUP_UNKNOWN);
        if (result == MT_POD_CGROUP_POD && pod.runtime != MT_POD_RUNTIME_NONE)
            assert_string_equal(pod.container_id, CID);
        size_t depth;
        if (mt_pod_cgroup_root_depth(cut, length, &depth))
            assert_true(depth <= 3);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_v2_systemd_containerd_finds_pod_and_container),
        cmocka_unit_test(test_parse_v2_systemd_crio_and_docker_find_container),
        cmocka_unit_test(test_parse_guaranteed_pods_without_qos_level_find_pod),
        cmocka_unit_test(test_parse_cgroupfs_driver_finds_bare_and_crio_ids),
        cmocka_unit_test(test_parse_v1_uses_systemd_line_whatever_its_position),
        cmocka_unit_test(test_parse_v1_without_systemd_line_uses_first_v1_line),
        cmocka_unit_test(test_parse_hybrid_uses_unified_line),
        cmocka_unit_test(test_parse_lines_that_disagree_on_the_pod_are_unknown),
        cmocka_unit_test(test_parse_pod_without_known_container_level_has_no_container_id),
        cmocka_unit_test(test_parse_cgroups_below_the_container_belong_to_it),
        cmocka_unit_test(test_parse_misshapen_pod_levels_are_unknown),
        cmocka_unit_test(test_parse_kubepods_elsewhere_in_path_is_host),
        cmocka_unit_test(test_parse_path_outside_cgroup_namespace_is_outside),
        cmocka_unit_test(test_parse_malformed_text_is_unknown),
        cmocka_unit_test(test_parse_every_truncation_stays_within_length),
        cmocka_unit_test(test_namespace_pod_of_the_agents_qos_class_is_found),
        cmocka_unit_test(test_namespace_pod_of_another_qos_class_is_found),
        cmocka_unit_test(test_namespace_guaranteed_pods_are_found),
        cmocka_unit_test(test_namespace_host_services_are_host),
        cmocka_unit_test(test_namespace_agents_own_pod_and_container_are_unknown),
        cmocka_unit_test(test_namespace_nested_pod_names_never_make_another_pod),
        cmocka_unit_test(test_namespace_wrong_depths_never_name_pod_or_node),
        cmocka_unit_test(test_root_depth_counts_the_host_inits_levels),
        cmocka_unit_test(test_namespace_every_truncation_stays_within_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
