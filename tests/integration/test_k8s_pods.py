"""Callers in Kubernetes pods are named by their pod: real cgroups, a kubelet stand-in over HTTPS.

No cluster: the test makes the kubelet's cgroup tree itself in the machine's cgroup v2 hierarchy,
below a directory of its own that the agent sees as the root of its cgroup namespace (the agent is
started under `unshare --cgroup` from there), so the agent reads the paths a node's agent reads:

    <cgroup2>/meshtls-test-<pid>/            the agent's cgroup namespace root
        agent.scope                           the agent
        system.slice/host.scope               a process of the node
        kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<A>.slice/
            cri-containerd-<64 hex>.scope     pod A: shop/cart
        kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<B>.slice/
            cri-containerd-<64 hex>.scope     pod B: billing/ledger, labels app=ledger
        kubepods.slice/kubepods-pod<C>.slice/cri-containerd-<64 hex>.scope
                                              pod C: not in the kubelet's list
        kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<D>.slice/
            cri-containerd-<64 hex>.scope     pod D: shop/worker

The kubelet is python's http.server behind ssl with an RSA 2048 certificate from a test RSA CA
made by openssl, as kubeadm makes them (and, at the end, an ECDSA CA and certificate), answering GET /pods with a v1 PodList when the bearer token is right, 401 otherwise.
Clients are Python processes of one uid (root), moved into their cgroups by pid, that ask the
agent for an SVID over its socket (identity/proto.h) whenever told to.

Checked: pods A and B get ns/shop/sa/cart (the default) and ns/billing/sa/ledger-main (a rule
on namespace, labels and container), pod D ns/shop/sa/worker-python (a rule on service account
and exe: the executable is found under the caller's /proc/<pid>/root, here the node's /); pod C gets no identity and the agent says why at warning with pid and
pod UID; the node's process keeps uid/0, and a rule that names a namespace does not match it;
pod churn: once the stand-in drops pod A, A's renewal is refused; a wrong token: the agent logs
the kubelet's 401 and refuses pod B, while the node's process is still served; the refusals are
counted in the agent's metrics; a meshed server in pod B (python http.server under `meshtls
run`) has namespace, pod and workload labels on its series, a meshed client of the node (curl,
or fetch.py under a sanitizer) none; a certificate of the kubelet's CA for another address (and
a DNS name and CN spelling 127.0.0.1) is refused before any request carries the token; an ECDSA
CA and certificate work as the RSA ones do; a URL with a host name (localhost) and a certificate
with its DNS SAN work.
"""

import json
import os
import shutil
import ssl
import struct
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agent_protocol import make_csr
from harness import (AGENT, ASAN_RUNTIME, MESHTLS, PYTHON, Mesh, base_env, check, free_port,
                     http_client, main, skip, wait_agent_ready, wait_for)
from lifecycle_common import parse_metrics, promtool_check, scrape

TD = "spiffe://meshtls.local"
PYTHON_EXE = os.path.realpath(PYTHON)
TOKEN = "kubelet-token-" + uuid.uuid4().hex
# MT_KUBELET_FRESH_MS is 5 s: a changed list is seen within that and one query interval.
CHANGE_SEEN_WITHIN = 20.0

CLIENT = r"""
import socket, struct, sys
sock_path, csr = sys.argv[1], open(sys.argv[2], "rb").read()
def read_exactly(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data
for line in sys.stdin:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(15)
    s.connect(sock_path)
    payload = struct.pack(">HI", 1, len(csr)) + csr
    s.sendall(b"MT" + bytes([1, 1]) + struct.pack(">I", len(payload)) + payload)
    header = read_exactly(s, 8)
    body = read_exactly(s, struct.unpack(">I", header[4:8])[0]) if len(header) == 8 else b""
    s.close()
    fields = {}
    while len(body) >= 6:
        tag, size = struct.unpack(">HI", body[:6])
        fields.setdefault(tag, body[6:6 + size])
        body = body[6 + size:]
    if len(header) == 8 and header[3] == 2:
        print("ID " + fields[2].decode(), flush=True)
    else:
        print("ERROR " + fields.get(7, b"").decode(errors="replace"), flush=True)
"""


def openssl(*arguments):
    subprocess.run(["openssl", *arguments], check=True, capture_output=True)


# Key types as openssl names them: kubeadm's CA and the kubelet's serving certificate are RSA 2048.
RSA = ("-newkey", "rsa:2048")
ECDSA = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")


def make_kubelet_ca(directory, key_type, name="ca"):
    ca_key, ca = os.path.join(directory, f"{name}.key"), os.path.join(directory, f"{name}.crt")
    openssl("req", "-x509", *key_type, "-nodes", "-keyout", ca_key, "-subj",
            f"/CN=test kubelet {name}", "-days", "2", "-out", ca)
    return ca, ca_key


def make_kubelet_certificate(directory, ca, ca_key, name, san, key_type):
    """A serving certificate with subjectAltName san (and the CN 127.0.0.1 always, so that only
    the SAN can tell a right certificate from a wrong one), signed by the CA."""
    key, csr = os.path.join(directory, f"{name}.key"), os.path.join(directory, f"{name}.csr")
    cert, ext = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.ext")
    openssl("req", "-new", *key_type, "-nodes", "-keyout", key, "-subj", "/CN=127.0.0.1",
            "-out", csr)
    with open(ext, "w") as f:
        f.write(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days",
            "2", "-extfile", ext, "-out", cert)
    return cert, key


def pod(uid, namespace, name, service_account, container_id, labels, owner):
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "labels": labels,
                     "ownerReferences": [owner]},
        "spec": {"serviceAccountName": service_account,
                 "containers": [{"name": "main", "image": "registry.test/app:1"}]},
        "status": {"containerStatuses": [{"name": "main", "image": "registry.test/app:1",
                                          "containerID": "containerd://" + container_id}]},
    }


class Kubelet:
    """GET /pods over HTTPS with a bearer token; pods can be changed while it runs."""

    def __init__(self, directory):
        self.directory = directory
        self.ca, self.ca_key = make_kubelet_ca(directory, RSA)
        cert, key = make_kubelet_certificate(directory, self.ca, self.ca_key, "kubelet",
                                             "IP:127.0.0.1", RSA)
        self.pods = []
        self.requests = []
        kubelet = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                authorization = self.headers.get("Authorization", "")
                kubelet.requests.append((self.path, authorization == f"Bearer {TOKEN}"))
                if authorization != f"Bearer {TOKEN}":
                    body, status = b"Unauthorized", 401
                elif self.path != "/pods":
                    body, status = b"404 page not found", 404
                else:
                    body = json.dumps({"kind": "PodList", "apiVersion": "v1",
                                       "metadata": {}, "items": list(kubelet.pods)}).encode()
                    status = 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *arguments):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.server.socket = self.context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def serve_certificate(self, name, san, key_type=RSA):
        """Later handshakes present a new certificate from the same CA."""
        cert, key = make_kubelet_certificate(self.directory, self.ca, self.ca_key, name, san,
                                             key_type)
        self.context.load_cert_chain(cert, key)

    def replace_ca(self, key_type):
        """A new CA, of key_type, written over the agent's CA file, serving a certificate of its
        own for 127.0.0.1: the agent reads the CA file at every query."""
        ca, self.ca_key = make_kubelet_ca(self.directory, key_type, "ca-again")
        shutil.copyfile(ca, self.ca + ".new")
        os.rename(self.ca + ".new", self.ca)
        self.serve_certificate("kubelet-ecdsa", "IP:127.0.0.1", key_type)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def cgroup2_mount():
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3 and fields[2] == "cgroup2":
                return fields[1]
    return None


def systemd_uid(pod_uid):
    return pod_uid.replace("-", "_")


class Cgroups:
    """The test's cgroup tree; removed (deepest first) by remove()."""

    def __init__(self, base):
        self.base = base
        self.created = []

    def make(self, relative):
        path = self.base
        for part in relative.split("/"):
            path = os.path.join(path, part)
            if not os.path.isdir(path):
                os.mkdir(path)
                self.created.append(path)
        return path

    def move(self, pid, leaf):
        with open(os.path.join(leaf, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def remove(self):
        for path in reversed(self.created):
            for _ in range(50):
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)  # a killed process leaves its cgroup once reaped


class Client:
    """A Python process that asks the agent for an SVID each time ask() is called."""

    def __init__(self, name, sock, csr_path, directory):
        self.name = name
        self.stderr_path = os.path.join(directory, f"{name}.err")
        self.stderr = open(self.stderr_path, "wb")
        self.popen = subprocess.Popen([PYTHON, "-c", CLIENT, sock, csr_path],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self.stderr, env=base_env())
        self.pid = self.popen.pid

    def ask(self):
        self.popen.stdin.write(b"ask\n")
        self.popen.stdin.flush()
        line = self.popen.stdout.readline().decode().strip()
        check(line != "", f"{self.name} gave no answer: "
              f"{open(self.stderr_path, errors='replace').read()}")
        return line

    def stop(self):
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()
        self.stderr.close()


def until(predicate, timeout, what):
    """The first value predicate returns that is not None, asked once a second at most."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value is not None:
            return value
        check(time.monotonic() < deadline, f"timed out waiting for {what}")
        time.sleep(1)


def check_metrics_labels(mesh, sock, leaf, leaf_host, metrics_port):
    """A meshed server in the pod's cgroup, a meshed client of the node: the server's series
    carry the pod's namespace, name and workload."""
    mesh.write_config("agent", sock)
    port = free_port()
    files = os.path.join(mesh.dir, "files")
    os.makedirs(files, exist_ok=True)
    with open(os.path.join(files, "index.html"), "w") as f:
        f.write("ledger\n")
    run = " ".join(f"'{argument}'" for argument in
                   [MESHTLS, "run", "--config", mesh.configs["agent"], "--", PYTHON, "-m",
                    "http.server", str(port), "--bind", "127.0.0.1", "--directory", files])
    server = mesh.spawn("pod-b-server", ["sh", "-c", f"echo $$ > {leaf}/cgroup.procs && exec {run}"])
    wait_for(lambda: "Serving HTTP" in server.stdout().decode(errors="replace")
             or server.popen.poll() is not None, 20, "the pod's meshed server")
    check(server.popen.poll() is None, f"the pod's server exited:\n{server.stderr()}")
    fetch = " ".join(f"'{argument}'" for argument in
                     [MESHTLS, "run", "--config", mesh.configs["agent"], "--"] +
                     http_client(f"http://127.0.0.1:{port}/index.html"))
    client = mesh.spawn("node-client",
                        ["sh", "-c", f"echo $$ > {leaf_host}/cgroup.procs && exec {fetch}"])
    check(client.wait(30) == 0 and client.stdout() == b"ledger\n",
          f"the node's client got {client.stdout()!r}:\n{client.stderr()}")
    text = scrape(metrics_port)
    samples = parse_metrics(text)
    labelled = [dict(labels) for (name, labels) in samples
                if dict(labels).get("pid") == str(server.popen.pid)]
    check(labelled, f"no series of the pod's server pid {server.popen.pid}:\n{text[-3000:]}")
    for labels in labelled:
        check(labels.get("namespace") == "billing" and labels.get("pod") == "ledger-0" and
              labels.get("workload") == "statefulset/ledger",
              f"a series of the pod's server lacks the pod labels: {labels}")
    client_series = [dict(labels) for (name, labels) in samples
                     if dict(labels).get("pid") == str(client.popen.pid)]
    check(all("namespace" not in labels for labels in client_series),
          f"the node's client has pod labels: {client_series}")
    # Exit 3 is promtool's naming lint only; identity_cert_refresh_count is Linkerd's name.
    promtool = promtool_check(text)
    check(promtool is None or promtool[0] == 0 or
          (promtool[0] == 3 and all(line.startswith("identity_cert_refresh_count ")
                                    for line in promtool[1].splitlines() if line.strip())),
          f"promtool check metrics: {promtool}")
    server.stop()


def run_test(mesh, cgroups, kubelet):
    uid_a, uid_b, uid_c, uid_d = (str(uuid.uuid4()) for _ in range(4))
    id_a, id_b, id_c, id_d = (uuid.uuid4().hex + uuid.uuid4().hex for _ in range(4))
    leaf_a = cgroups.make("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
                          f"{systemd_uid(uid_a)}.slice/cri-containerd-{id_a}.scope")
    leaf_b = cgroups.make("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
                          f"{systemd_uid(uid_b)}.slice/cri-containerd-{id_b}.scope")
    leaf_c = cgroups.make(f"kubepods.slice/kubepods-pod{systemd_uid(uid_c)}.slice/"
                          f"cri-containerd-{id_c}.scope")
    leaf_d = cgroups.make("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
                          f"{systemd_uid(uid_d)}.slice/cri-containerd-{id_d}.scope")
    leaf_host = cgroups.make("system.slice/host.scope")
    leaf_agent = cgroups.make("agent.scope")
    kubelet.pods = [
        pod(uid_a, "shop", "cart-7d9f8c6b5-x2x4z", "cart", id_a, {"app": "cart"},
            {"kind": "ReplicaSet", "name": "cart-7d9f8c6b5", "controller": True}),
        pod(uid_b, "billing", "ledger-0", "ledger", id_b, {"app": "ledger", "tier": "back"},
            {"kind": "StatefulSet", "name": "ledger", "controller": True}),
        pod(uid_d, "shop", "worker-x1", "worker", id_d, {"app": "worker"},
            {"kind": "Job", "name": "worker", "controller": True}),
    ]

    token_file = os.path.join(mesh.dir, "token")
    with open(token_file, "w") as f:
        f.write(TOKEN + "\n")
    config = os.path.join(mesh.dir, "agent.conf")
    with open(config, "w") as f:
        f.write('rules = (\n'
                '  { namespace = "billing"; labels = { app = "ledger"; }; container = "main";\n'
                '    id = "ns/billing/sa/ledger-main"; },\n'
                '  { namespace = "shop"; service_account = "nobody"; id = "ns/shop/sa/never"; },\n'
                # A container's exe is looked up under its /proc/<pid>/root (here the node's /).
                '  { namespace = "shop"; exe = "/no/such/python"; id = "ns/shop/sa/never-exe"; },\n'
                f'  {{ service_account = "worker"; exe = "{PYTHON_EXE}"; '
                'id = "ns/shop/sa/worker-python"; },\n'
                '  { uid = 4242; id = "ns/other/sa/uid4242"; }\n'
                ');\n')
    sock = os.path.join(mesh.dir, "agent.sock")
    metrics_port = free_port()
    agent_argv = [AGENT, "--socket", sock, "--state-dir", os.path.join(mesh.dir, "state"),
                  "--metrics-address", f"127.0.0.1:{metrics_port}", "--config", config,
                  "--log-level", "debug",
                  "--kubelet-url", f"https://127.0.0.1:{kubelet.port}",
                  "--kubelet-token-file", token_file, "--kubelet-ca-file", kubelet.ca,
                  # The test's directory stands for the host's root, /proc/1's is deeper.
                  "--cgroup-root-depth", "0"]
    # In the namespace root first (unshare makes the cgroup namespace there), then its leaf.
    inner = (f"echo $$ > {leaf_agent}/cgroup.procs && exec " +
             " ".join(f"'{argument}'" for argument in agent_argv))
    outer = (f"echo $$ > {cgroups.base}/cgroup.procs && exec unshare --cgroup "
             f"sh -c \"{inner}\"")
    env = base_env()
    if ASAN_RUNTIME:
        env.pop("LD_PRELOAD", None)
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
    agent = mesh.spawn("agent", ["sh", "-c", outer], env=env)
    wait_agent_ready(agent, sock)
    check(f"the kubelet at https://127.0.0.1:{kubelet.port} lists 3 pod(s) on this node"
          in agent.stderr(), f"the agent did not ask the kubelet at start:\n{agent.stderr()}")

    _, csr = make_csr(mesh.dir, TD + "/ns/kube-system/sa/admin")
    csr_path = os.path.join(mesh.dir, "workload.csr")
    clients = []
    try:
        def client(name, leaf):
            c = Client(name, sock, csr_path, mesh.dir)
            clients.append(c)
            cgroups.move(c.pid, leaf)
            return c

        a, b, c, d, host = (client("pod-a", leaf_a), client("pod-b", leaf_b),
                            client("pod-c", leaf_c), client("pod-d", leaf_d),
                            client("host", leaf_host))

        answer = a.ask()
        check(answer == f"ID {TD}/ns/shop/sa/cart", f"pod A got {answer!r}")
        answer = d.ask()
        check(answer == f"ID {TD}/ns/shop/sa/worker-python", f"pod D got {answer!r}")
        answer = b.ask()
        check(answer == f"ID {TD}/ns/billing/sa/ledger-main", f"pod B got {answer!r}")
        answer = host.ask()
        check(answer == f"ID {TD}/uid/0", f"the node's process got {answer!r}")

        check_metrics_labels(mesh, sock, leaf_b, leaf_host, metrics_port)

        answer = c.ask()
        check(answer.startswith("ERROR") and uid_c in answer,
              f"pod C (unknown to the kubelet) got {answer!r}")
        lines = [line for line in agent.stderr().splitlines()
                 if f"refused pid {c.pid} uid 0 in pod {uid_c}: the kubelet does not list this "
                    "pod" in line]
        check(len(lines) >= 1 and "warn" in lines[0],
              f"the agent did not warn about pod C's pid {c.pid}:\n{agent.stderr()[-3000:]}")

        # Pod churn: the stand-in drops pod A; A's renewal is refused once the agent's list is.
        kubelet.pods = [p for p in kubelet.pods if p["metadata"]["uid"] != uid_a]

        def a_refused():
            answer = a.ask()
            return answer if answer.startswith("ERROR") else None

        answer = until(a_refused, CHANGE_SEEN_WITHIN, "pod A's renewal to be refused")
        check(uid_a in answer and "does not list" in answer, f"pod A's refusal: {answer!r}")
        answer = b.ask()
        check(answer == f"ID {TD}/ns/billing/sa/ledger-main", f"pod B after churn: {answer!r}")

        # A wrong token: the kubelet answers 401; pod callers are refused, the node's are not.
        with open(token_file + ".new", "w") as f:
            f.write("not-the-token\n")
        os.rename(token_file + ".new", token_file)

        def b_refused():
            answer = b.ask()
            return answer if answer.startswith("ERROR") else None

        answer = until(b_refused, CHANGE_SEEN_WITHIN, "pod B to be refused with a wrong token")
        check("HTTP 401" in answer, f"pod B's refusal does not name the 401: {answer!r}")
        log = agent.stderr()
        check("kubelet query failed: the kubelet at https://127.0.0.1:" in log and
              "answered HTTP 401" in log, f"the agent did not log the kubelet's 401:\n{log[-3000:]}")
        check(any(not right for _, right in kubelet.requests),
              "the stand-in never saw the wrong token")
        answer = host.ask()
        check(answer == f"ID {TD}/uid/0", f"the node's process with a failing kubelet: {answer!r}")

        # The agent asks the kubelet no more than once per second whatever callers do.
        before = len(kubelet.requests)
        started = time.monotonic()
        for _ in range(10):
            check(c.ask().startswith("ERROR"), "pod C got an identity")
        elapsed = time.monotonic() - started
        asked = len(kubelet.requests) - before
        check(asked <= int(elapsed) + 2,
              f"{asked} kubelet queries for 10 requests in {elapsed:.1f}s")

        # The right token again, and a certificate of the kubelet's CA for another address (and a
        # DNS name 127.0.0.1): the agent refuses to talk to that server, then recovers.
        with open(token_file + ".new", "w") as f:
            f.write(TOKEN + "\n")
        os.rename(token_file + ".new", token_file)
        sent = len(kubelet.requests)
        kubelet.serve_certificate("other-node", "IP:127.0.0.2,DNS:127.0.0.1")
        def b_refused_for_address():
            reply = b.ask()
            return reply if "does not match target host name" in reply else None

        answer = until(b_refused_for_address, CHANGE_SEEN_WITHIN,
                       "pod B to be refused by a kubelet certificate for another address")
        check(answer.startswith("ERROR") and "127.0.0.1" in answer and
              "an IP address SAN" in answer,
              f"pod B with the other node's certificate: {answer!r}")
        check(len(kubelet.requests) == sent,
              f"{len(kubelet.requests) - sent} request(s) (with the token) reached the server "
              "whose certificate names another address")
        kubelet.serve_certificate("kubelet-again", "IP:127.0.0.1")
        def b_named():
            reply = b.ask()
            return reply if reply.startswith("ID") else None

        answer = until(b_named, CHANGE_SEEN_WITHIN, "pod B's identity once the kubelet is right")
        check(answer == f"ID {TD}/ns/billing/sa/ledger-main", f"pod B recovered with {answer!r}")

        # An ECDSA CA and serving certificate in place of the RSA ones: both kinds are verified.
        kubelet.replace_ca(ECDSA)
        served = len(kubelet.requests)
        def b_asked_over_ecdsa():
            reply = b.ask()
            return reply if len(kubelet.requests) > served else None

        answer = until(b_asked_over_ecdsa, CHANGE_SEEN_WITHIN,
                       "a kubelet query over the ECDSA certificate")
        check(answer == f"ID {TD}/ns/billing/sa/ledger-main",
              f"pod B with an ECDSA kubelet certificate: {answer!r}")

        samples = parse_metrics(scrape(metrics_port))
        refused = samples.get(("meshtls_agent_pod_callers_refused_total", ()), 0)
        check(refused >= 13, f"meshtls_agent_pod_callers_refused_total is {refused}, expected "
              "pod C's 11 refusals, A's renewal and B's")

        # A host name in the URL: curl looks it up within the query's deadline and matches the
        # certificate's DNS SAN (the stand-in now serves DNS:localhost and no IP SAN).
        kubelet.serve_certificate("kubelet-by-name", "DNS:localhost", ECDSA)
        by_name_sock = os.path.join(mesh.dir, "agent-by-name.sock")
        by_name = mesh.spawn("agent-by-name", [
            AGENT, "--socket", by_name_sock, "--state-dir", os.path.join(mesh.dir, "state-by-name"),
            "--metrics-address", f"127.0.0.1:{free_port()}",
            "--kubelet-url", f"https://localhost:{kubelet.port}",
            "--kubelet-token-file", token_file, "--kubelet-ca-file", kubelet.ca], env=env)
        wait_agent_ready(by_name, by_name_sock, "the agent given the kubelet's host name")
        check(f"the kubelet at https://localhost:{kubelet.port} lists 2 pod(s) on this node"
              in by_name.stderr(), f"the agent given a host name:\n{by_name.stderr()[-3000:]}")
    finally:
        for c in clients:
            c.stop()


def with_pod_cgroups(name, run_test):
    """Runs run_test(mesh, cgroups, kubelet) in a cgroup tree of its own under the machine's
    cgroup2 hierarchy (removed after) and a kubelet stand-in; skips where that cannot be made."""
    if os.geteuid() != 0:
        skip("needs root: the test creates cgroups and moves processes into them")
    mount = cgroup2_mount()
    if mount is None:
        skip("no cgroup2 hierarchy is mounted (/proc/mounts)")
    if shutil.which("unshare") is None:
        skip("unshare (util-linux) is not installed")
    base = os.path.join(mount, f"meshtls-test-{name}-{os.getpid()}")
    try:
        os.mkdir(base)
    except OSError as error:
        skip(f"the cgroup2 hierarchy at {mount} is not writable: {error}")
    cgroups = Cgroups(base)
    cgroups.created.append(base)
    with Mesh(name) as mesh:
        kubelet = Kubelet(mesh.dir)
        try:
            run_test(mesh, cgroups, kubelet)
        finally:
            for process in reversed(mesh.processes):
                process.stop()
            kubelet.stop()
            cgroups.remove()


def test():
    with_pod_cgroups("k8s-pods", run_test)


if __name__ == "__main__":
    main(test)
