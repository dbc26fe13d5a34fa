"""An agent in a pod's own cgroup namespace, as containerd and CRI-O start a DaemonSet on cgroup
v2, still names callers by their pod: real cgroups, the kubelet stand-in of test_k8s_pods.py.

The test's directory stands for the host's root. The agent runs as the container of a burstable
pod, in a cgroup namespace rooted at that container's cgroup (`unshare --cgroup` there), so it
reads every other cgroup as a path that climbs first ("/../../kubepods-burstable-pod<B>.slice/..."),
and is told its root is 4 levels deep (--cgroup-root-depth: /proc/1/cgroup counts from the
machine's real root, not the test's):

    <cgroup2>/meshtls-test-cgroupns-<pid>/   the "host's" root
        kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<M>.slice/
            cri-containerd-<64 hex>.scope     the agent (its cgroup namespace root)
            cri-containerd-<64 hex>.scope     another container of the agent's pod
        kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<B>.slice/
            cri-containerd-<64 hex>.scope     pod B: billing/ledger (the agent's QoS class)
                kubepods-besteffort-pod<A>.slice/cri-containerd-<A's ID>.scope
                                              a cgroup B's container made, named like pod A
        kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<A>.slice/
            cri-containerd-<64 hex>.scope     pod A: shop/cart (another QoS class)
        kubepods.slice/kubepods-pod<G>.slice/cri-containerd-<64 hex>.scope
                                              pod G: ops/gauge (guaranteed)
        kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<C>.slice/
            cri-containerd-<64 hex>.scope     pod C: not in the kubelet's list
        system.slice/host.scope               a process of the node

Checked: the agent is in a cgroup namespace of its own; pods A, B and G get their ns/sa identities;
the process in the cgroup B's container named like pod A gets B's, never A's; pod C and the
other container of the agent's pod get none; the node's process gets uid/0.
"""

import os
import uuid

from agent_protocol import make_csr
from harness import AGENT, ASAN_RUNTIME, base_env, check, main, wait_agent_ready
from test_k8s_pods import TOKEN, Client, pod, systemd_uid, with_pod_cgroups

TD = "spiffe://meshtls.local"
AGENT_DEPTH = 4


def burstable(uid, container_id):
    return ("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
            f"{systemd_uid(uid)}.slice/cri-containerd-{container_id}.scope")


def besteffort(uid, container_id):
    return ("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
            f"{systemd_uid(uid)}.slice/cri-containerd-{container_id}.scope")


def start_agent_in_own_namespace(mesh, cgroups, kubelet, leaf_agent):
    """The agent, moved into leaf_agent, then in a new cgroup namespace rooted there."""
    token_file = os.path.join(mesh.dir, "token")
    with open(token_file, "w") as f:
        f.write(TOKEN + "\n")
    sock = os.path.join(mesh.dir, "agent.sock")
    agent_argv = [AGENT, "--socket", sock, "--state-dir", os.path.join(mesh.dir, "state"),
                  "--metrics-address", "off", "--log-level", "debug",
                  "--kubelet-url", f"https://127.0.0.1:{kubelet.port}",
                  "--kubelet-token-file", token_file, "--kubelet-ca-file", kubelet.ca,
                  "--cgroup-root-depth", str(AGENT_DEPTH)]
    command = (f"echo $$ > {leaf_agent}/cgroup.procs && exec unshare --cgroup " +
               " ".join(f"'{argument}'" for argument in agent_argv))
    env = base_env()
    if ASAN_RUNTIME:
        env.pop("LD_PRELOAD", None)
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
    agent = mesh.spawn("agent", ["sh", "-c", command], env=env)
    wait_agent_ready(agent, sock)
    return agent, sock


def run_test(mesh, cgroups, kubelet):
    uid_m, uid_a, uid_b, uid_c, uid_g = (str(uuid.uuid4()) for _ in range(5))
    id_m, id_m2, id_a, id_b, id_c, id_g = (uuid.uuid4().hex + uuid.uuid4().hex for _ in range(6))
    leaf_agent = cgroups.make(burstable(uid_m, id_m))
    leaf_sibling = cgroups.make(burstable(uid_m, id_m2))
    leaf_b = cgroups.make(burstable(uid_b, id_b))
    # Below B's container: "kubepods-besteffort-pod<A>.slice/cri-containerd-<A's ID>.scope".
    leaf_forged = cgroups.make(burstable(uid_b, id_b) + "/" +
                               besteffort(uid_a, id_a).split("/", 2)[2])
    leaf_a = cgroups.make(besteffort(uid_a, id_a))
    leaf_g = cgroups.make(f"kubepods.slice/kubepods-pod{systemd_uid(uid_g)}.slice/"
                          f"cri-containerd-{id_g}.scope")
    leaf_c = cgroups.make(besteffort(uid_c, id_c))
    leaf_host = cgroups.make("system.slice/host.scope")
    owner = {"kind": "DaemonSet", "name": "x", "controller": True}
    kubelet.pods = [
        pod(uid_m, "meshtls", "agent-x", "meshtls-agent", id_m, {}, owner),
        pod(uid_a, "shop", "cart-0", "cart", id_a, {}, owner),
        pod(uid_b, "billing", "ledger-0", "ledger", id_b, {}, owner),
        pod(uid_g, "ops", "gauge-0", "gauge", id_g, {}, owner),
    ]

    agent, sock = start_agent_in_own_namespace(mesh, cgroups, kubelet, leaf_agent)
    check(os.readlink(f"/proc/{agent.popen.pid}/ns/cgroup") != os.readlink("/proc/self/ns/cgroup"),
          "the agent is not in a cgroup namespace of its own")
    with open(f"/proc/{agent.popen.pid}/cgroup") as f:
        check(f.read().strip().endswith(burstable(uid_m, id_m)), "the agent is not in its pod")
    check(f"cgroup namespace root is {AGENT_DEPTH} level(s) below the host's" in agent.stderr(),
          f"the agent did not log its cgroup namespace depth:\n{agent.stderr()}")

    _, csr = make_csr(mesh.dir, TD + "/ns/kube-system/sa/admin")
    csr_path = os.path.join(mesh.dir, "workload.csr")
    clients = []
    try:
        def ask_from(name, leaf):
            c = Client(name, sock, csr_path, mesh.dir)
            clients.append(c)
            cgroups.move(c.pid, leaf)
            return c, c.ask()

        expected = [("pod-b", leaf_b, f"ID {TD}/ns/billing/sa/ledger"),
                    ("pod-a", leaf_a, f"ID {TD}/ns/shop/sa/cart"),
                    ("pod-g", leaf_g, f"ID {TD}/ns/ops/sa/gauge"),
                    ("forged-a-in-b", leaf_forged, f"ID {TD}/ns/billing/sa/ledger"),
                    ("host", leaf_host, f"ID {TD}/uid/0")]
        for name, leaf, identity in expected:
            _, answer = ask_from(name, leaf)
            check(answer == identity, f"{name} got {answer!r}, expected {identity!r}:\n"
                  f"{agent.stderr()[-3000:]}")

        _, answer = ask_from("pod-c", leaf_c)
        check(answer.startswith("ERROR") and uid_c in answer,
              f"pod C (unknown to the kubelet) got {answer!r}")
        _, answer = ask_from("agent-pod-sibling", leaf_sibling)
        check(answer.startswith("ERROR") and "none whose pod the agent can tell" in answer,
              f"another container of the agent's pod got {answer!r}")
    finally:
        for client in clients:
            client.stop()


def test():
    with_pod_cgroups("k8s-pods-cgroupns", run_test)


if __name__ == "__main__":
    main(test)
