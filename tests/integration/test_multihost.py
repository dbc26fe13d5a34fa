"""Multi-host: three "hosts" in network namespaces made by this test, each with its own agent.

    ns a (10.213.0.1)  agent A, issuer intA signed by rootA   meshed http.server
    ns b (10.213.0.2)  agent B, issuer intB signed by rootA   meshed clients, plaintext client, relay
    ns c (10.213.0.3)  agent C, issuer intX signed by rootX   meshed client (untrusted)

The hosts are joined by veth pairs to a bridge that lives in a fourth namespace; every link is
created directly inside the test's namespaces (never in the host's), and the addresses exist only
there, so no packet can leave them. Namespaces (and with them every link) are deleted at the end
and, when left over by a killed run, at the start.

Checks: b's meshed client fetches from a across the veth with mTLS (body checked, both SPIFFE IDs
logged on both sides), the bytes between them are TLS 1.3 records (a relay in ns b records them),
c's meshed client is refused (foreign root), and a plaintext client on b is refused by a's strict
server. Needs root (ip netns); skipped otherwise.
"""

import os
import re
import subprocess
import time

from harness import (AGENT, ASAN_RUNTIME, MESHTLS, PYTHON, Mesh, TestFailure, assert_tls13_wire,
                     base_env, check, main, random_token, skip, wait_agent_ready, wait_for)
from lifecycle_common import Pki, log

PREFIX = "mtmh-"
SUBNET = "10.213.0"
TRUST_DOMAIN = "meshtls.local"
PORT = 18480
RELAY_PORT = 18481
PLAIN_TIMEOUT = 30

HOSTS = {
    # name: (address, issuer, workload identity given by the host's agent to uid 0)
    "a": (f"{SUBNET}.1", "intA", "node/a/sa/web"),
    "b": (f"{SUBNET}.2", "intB", "node/b/sa/client"),
    "c": (f"{SUBNET}.3", "intX", "node/c/sa/intruder"),
}

FETCH_SCRIPT = r'''
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=20) as response:
        body = response.read()
except Exception as e:
    sys.stderr.write(f"fetch failed: {type(e).__name__}: {e}\n")
    sys.exit(1)
sys.stdout.buffer.write(body)
'''

PLAIN_SCRIPT = r'''
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
s.sendall(b"GET /payload.txt HTTP/1.0\r\nHost: a\r\n\r\n")
data = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except OSError as e:
    sys.stderr.write(f"plaintext client: {type(e).__name__}: {e}\n")
sys.stdout.buffer.write(data)
'''

# One-connection-at-a-time recording relay, run inside a namespace: listen, target, output prefix.
RELAY_SCRIPT = r'''
import socket, sys, threading
listen_host, listen_port, target_host, target_port, out = sys.argv[1:6]
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((listen_host, int(listen_port)))
listener.listen(8)
print("listening", flush=True)
n = 0
def pump(source, destination, record):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            record.extend(data)
            destination.sendall(data)
    except OSError:
        pass
    try:
        destination.shutdown(socket.SHUT_WR)
    except OSError:
        pass
while True:
    client, _ = listener.accept()
    upstream = socket.create_connection((target_host, int(target_port)), timeout=20)
    upstream.settimeout(None)
    c2s, s2c = bytearray(), bytearray()
    threads = [threading.Thread(target=pump, args=(client, upstream, c2s)),
               threading.Thread(target=pump, args=(upstream, client, s2c))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    client.close()
    upstream.close()
    for suffix, data in (("c2s", c2s), ("s2c", s2c)):
        with open(f"{out}-{n}.{suffix}.tmp", "wb") as f:
            f.write(data)
        import os
        os.replace(f"{out}-{n}.{suffix}.tmp", f"{out}-{n}.{suffix}")
    n += 1
'''


def run(*argv, check_status=True):
    result = subprocess.run(list(argv), capture_output=True, timeout=20)
    if check_status and result.returncode != 0:
        raise TestFailure(f"{' '.join(argv)} failed ({result.returncode}): "
                          f"{result.stderr.decode(errors='replace')}")
    return result


def list_namespaces():
    result = run("ip", "netns", "list", check_status=False)
    return [line.split()[0] for line in result.stdout.decode().splitlines() if line.strip()]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def delete_leftovers():
    """Deletes this test's namespaces left by a run that is no longer alive (or by this pid)."""
    for name in list_namespaces():
        match = re.fullmatch(re.escape(PREFIX) + r"(\d+)-[a-z]+", name)
        if match and (int(match.group(1)) == os.getpid() or not pid_alive(int(match.group(1)))):
            run("ip", "netns", "delete", name, check_status=False)


class Network:
    """Namespaces a, b, c and a switch namespace holding a bridge; veth pairs between them."""

    def __init__(self):
        base = f"{PREFIX}{os.getpid()}-"
        self.switch = base + "sw"
        self.ns = {host: base + host for host in HOSTS}
        self.created = []

    def create(self):
        for name in [self.switch] + list(self.ns.values()):
            run("ip", "netns", "add", name)
            self.created.append(name)
            run("ip", "-n", name, "link", "set", "lo", "up")
        run("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.switch, "link", "set", "br0", "up")
        for host, ns in self.ns.items():
            # Both ends are born inside the test's namespaces: port-<host> in the switch,
            # eth0 in the host's namespace. Nothing is created in the caller's namespace.
            port = f"port-{host}"
            run("ip", "-n", self.switch, "link", "add", port, "type", "veth",
                "peer", "name", "eth0", "netns", ns)
            run("ip", "-n", self.switch, "link", "set", port, "master", "br0")
            run("ip", "-n", self.switch, "link", "set", port, "up")
            run("ip", "-n", ns, "addr", "add", f"{HOSTS[host][0]}/24", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")

    def destroy(self):
        for name in reversed(self.created):
            run("ip", "netns", "delete", name, check_status=False)
        self.created = []
        left = [n for n in list_namespaces() if n.startswith(f"{PREFIX}{os.getpid()}-")]
        check(not left, f"namespaces left behind: {left}")

    def wrap(self, host, argv):
        return ["ip", "netns", "exec", self.ns[host]] + list(argv)


def listening_in(pid, port):
    """True when the network namespace of process pid has a socket listening on port."""
    try:
        with open(f"/proc/{pid}/net/tcp") as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    return True
    except OSError:
        return False
    return False


def start_agent(mesh, net, host, pki):
    address, issuer, identity = HOSTS[host]
    root = "rootX" if issuer == "intX" else "rootA"
    secret = pki.secret(os.path.join(mesh.dir, f"issuer-{host}"), issuer, [root])
    config = os.path.join(mesh.dir, f"agent-{host}.conf")
    with open(config, "w") as f:
        f.write(f'trust_domain = "{TRUST_DOMAIN}";\n'
                f'rules = ( {{ uid = {os.getuid()}; id = "{identity}"; }} );\n')
    sock = os.path.join(mesh.dir, f"agent-{host}.sock")
    argv = [AGENT, "--socket", sock, "--state-dir", os.path.join(mesh.dir, f"state-{host}"),
            "--metrics-address", "off", "--issuer-dir", secret, "--config", config]
    env = base_env()
    if ASAN_RUNTIME:
        env.pop("LD_PRELOAD", None)  # the agent links the sanitizer runtime itself
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
    process = mesh.spawn(f"agent-{host}", net.wrap(host, argv), env=env)
    wait_agent_ready(process, sock, f"agent {host}")
    # The workload config of every host, written out in full: non-loopback traffic is mTLS.
    workload = os.path.join(mesh.dir, f"workload-{host}.conf")
    with open(workload, "w") as f:
        f.write(f'agent_socket = "{sock}";\n'
                'outbound = { default = "mtls"; };\n'
                'inbound = { default = "strict"; };\n'
                'log_level = "info";\n')
    mesh.configs[host] = workload
    return process


def meshed(mesh, net, host, name, argv):
    return mesh.spawn(name, net.wrap(host, [MESHTLS, "run", "--config", mesh.configs[host], "--"]
                                     + list(argv)))


def spiffe(host):
    return f"spiffe://{TRUST_DOMAIN}/{HOSTS[host][2]}"


def test():
    if os.geteuid() != 0:
        skip("network namespaces need root")
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        skip("ip netns is not usable here")
    delete_leftovers()
    net = Network()
    try:
        net.create()
        with Mesh("multihost") as mesh:
            scenario(mesh, net)
    finally:
        net.destroy()


def scenario(mesh, net):
    started = time.monotonic()
    a_addr, b_addr, c_addr = (HOSTS[h][0] for h in "abc")

    # One shared root for nodes a and b (a per-node intermediate each), another for node c.
    pki = Pki(os.path.join(mesh.dir, "pki"))
    pki.root("rootA")
    pki.intermediate("intA", "rootA")
    pki.intermediate("intB", "rootA")
    pki.root("rootX")
    pki.intermediate("intX", "rootX")

    agents = {host: start_agent(mesh, net, host, pki) for host in "abc"}
    for host, agent in agents.items():
        check("1 trust anchor(s)" in agent.stderr(),
              f"agent {host} did not report its file issuer:\n{agent.stderr()}")

    secret = random_token()
    files = os.path.join(mesh.dir, "files")
    os.makedirs(files)
    with open(os.path.join(files, "payload.txt"), "w") as f:
        f.write(f"multihost {secret}\n" * 200)
    body = (f"multihost {secret}\n" * 200).encode()
    fetch_script = os.path.join(mesh.dir, "fetch.py")
    with open(fetch_script, "w") as f:
        f.write(FETCH_SCRIPT)

    server = meshed(mesh, net, "a", "server-a",
                    [PYTHON, "-m", "http.server", str(PORT), "--bind", a_addr,
                     "--directory", files])
    wait_for(lambda: listening_in(server.popen.pid, PORT) or server.popen.poll() is not None,
             20, "the server on a to listen")
    check(server.popen.poll() is None, f"server on a exited:\n{server.stderr()}")

    # 1. Across the veth: b's meshed client → a's meshed server, mTLS with both nodes' identities.
    client = meshed(mesh, net, "b", "client-b",
                    [PYTHON, fetch_script, f"http://{a_addr}:{PORT}/payload.txt"])
    status = client.wait(30)
    check(status == 0 and client.stdout() == body,
          f"b's fetch failed ({status}, {len(client.stdout())} bytes):\n{client.stderr()}")
    check(f"mtls outbound to {a_addr}:{PORT}: peer {spiffe('a')}, TLSv1.3" in client.stderr(),
          f"b's client does not log a's identity:\n{client.stderr()}")
    wait_for(lambda: f"mtls inbound from {b_addr}:" in server.stderr(), 10,
             "the server to log b's connection")
    check(re.search(rf"mtls inbound from {re.escape(b_addr)}:\d+ on :{PORT}: peer "
                    rf"{re.escape(spiffe('b'))}, TLSv1\.3", server.stderr()),
          f"a's server does not log b's identity:\n{server.stderr()}")
    check(f"issued {spiffe('a')}" in agents["a"].stderr() and
          f"issued {spiffe('b')}" in agents["b"].stderr(),
          "each node's agent did not issue its own workload's identity")
    log(f"b -> a: {len(body)} bytes over mTLS, {spiffe('b')} -> {spiffe('a')}")

    # 2. On the wire: the same fetch through a relay in ns b (on b's address, so still
    # "default" traffic) records TLS 1.3 records only, and never the body.
    relay_script = os.path.join(mesh.dir, "relay.py")
    with open(relay_script, "w") as f:
        f.write(RELAY_SCRIPT)
    record = os.path.join(mesh.dir, "wire")
    relay = mesh.spawn("relay-b", net.wrap("b", [PYTHON, relay_script, b_addr, str(RELAY_PORT),
                                                 a_addr, str(PORT), record]))
    wait_for(lambda: listening_in(relay.popen.pid, RELAY_PORT) or relay.popen.poll() is not None,
             20, "the relay to listen")
    check(relay.popen.poll() is None, f"relay exited:\n{relay.stderr()}")
    relayed = meshed(mesh, net, "b", "client-b-relayed",
                     [PYTHON, fetch_script, f"http://{b_addr}:{RELAY_PORT}/payload.txt"])
    status = relayed.wait(30)
    check(status == 0 and relayed.stdout() == body,
          f"relayed fetch failed ({status}):\n{relayed.stderr()}")
    wait_for(lambda: os.path.exists(record + "-0.s2c"), 20, "the relay to record the connection")
    with open(record + "-0.c2s", "rb") as f:
        c2s = f.read()
    with open(record + "-0.s2c", "rb") as f:
        s2c = f.read()
    counts = assert_tls13_wire(c2s, s2c, [secret.encode(), b"GET /payload.txt", b"HTTP/1."])
    log(f"wire b -> a: {counts[0]} + {counts[1]} TLS 1.3 records, no plaintext")

    # 3. Host c: its issuer chains to a root that a does not trust → refused, nothing served.
    foreign = meshed(mesh, net, "c", "client-c",
                     [PYTHON, fetch_script, f"http://{a_addr}:{PORT}/payload.txt"])
    status = foreign.wait(30)
    check(status != 0, "c's client (untrusted root) got an answer")
    check(secret.encode() not in foreign.stdout(), "c's client saw the file")
    check(f"refused outbound connection to {a_addr}:{PORT} (mode mtls): peer certificate "
          "not issued by a trusted anchor" in foreign.stderr(),
          f"c's client does not say why it was refused:\n{foreign.stderr()}")
    wait_for(lambda: f"refused inbound connection from {c_addr}:" in server.stderr(), 10,
             "a's server to log the refusal of c")
    log("c -> a refused: peer certificate not issued by a trusted anchor")

    # 4. A plaintext (unmeshed) client on b: a's strict server refuses it.
    plain_script = os.path.join(mesh.dir, "plain.py")
    with open(plain_script, "w") as f:
        f.write(PLAIN_SCRIPT)
    plain = mesh.spawn("plain-b", net.wrap("b", [PYTHON, plain_script, a_addr, str(PORT)]))
    plain.wait(PLAIN_TIMEOUT)
    check(b"HTTP/1." not in plain.stdout() and secret.encode() not in plain.stdout(),
          f"a's strict server answered plaintext: {plain.stdout()[:200]!r}")
    wait_for(lambda: re.search(rf"refused inbound connection from {re.escape(b_addr)}:\d+ on "
                               rf":{PORT} \(mode strict\): peer did not speak TLS",
                               server.stderr()), 10, "a's server to log the plaintext refusal")
    log("plaintext b -> a refused by the strict server")

    for host, agent in agents.items():
        check(agent.popen.poll() is None, f"agent {host} exited:\n{agent.stderr()}")
    check(server.popen.poll() is None, "server on a exited")
    print(f"3 hosts in namespaces: b -> a mTLS across the veth ({spiffe('b')} -> {spiffe('a')}), "
          f"TLS 1.3 on the wire, untrusted c and plaintext refused "
          f"in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main(test)
