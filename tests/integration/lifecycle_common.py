"""Shared machinery for the identity-lifecycle tests (test_lifecycle_*.py).

An operator PKI made with the openssl command line (roots, intermediates in the layout of a
cert-manager secret: tls.crt, tls.key, ca.crt), an agent started with arbitrary flags, a
long-lived meshed HTTP client that counts every request's outcome, and readers for the agent's
log, its metrics endpoint and its STATUS reply. Every wait is bounded.
"""

import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request

from harness import (AGENT, ASAN_RUNTIME, PYTHON, Mesh, TestFailure, base_env, check, free_port,
                     wait_agent_ready, wait_for)

CA_CONFIG = """\
[ca]
default_ca = issuer
[issuer]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[anything]
organizationName = optional
commonName = optional
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[intermediate]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = URI:spiffe://meshtls.local
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""

LONG_AGO = "20200101000000Z"
FAR_AHEAD = "20991231235959Z"


def openssl(*arguments, cwd=None):
    result = subprocess.run(["openssl"] + list(arguments), cwd=cwd, capture_output=True)
    if result.returncode != 0:
        raise TestFailure(f"openssl {' '.join(arguments)} failed: {result.stderr.decode()}")
    return result


class Pki:
    """A directory of openssl-made roots and intermediates, signed with `openssl ca`."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "ca.cnf"), "w") as f:
            f.write(CA_CONFIG)
        open(os.path.join(directory, "index.txt"), "w").close()
        with open(os.path.join(directory, "serial"), "w") as f:
            f.write("1000\n")

    def path(self, name):
        return os.path.join(self.dir, name)

    def key(self, name):
        old = os.umask(0o077)
        try:
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", self.path(name + ".key"))
        finally:
            os.umask(old)
        return self.path(name + ".key")

    def sign(self, name, issuer, extensions, start=LONG_AGO, end=FAR_AHEAD, key=None):
        """Makes name.crt for name.key (new unless key is given), signed by issuer (None:
        self-signed) with the [extensions] section of CA_CONFIG."""
        key = key or self.key(name)
        request = self.path(name + ".csr")
        openssl("req", "-new", "-key", key, "-subj", f"/O=operator/CN={name}", "-out", request)
        arguments = ["ca", "-batch", "-config", "ca.cnf", "-in", request, "-startdate", start,
                     "-enddate", end, "-notext", "-extensions", extensions,
                     "-out", self.path(name + ".crt")]
        if issuer is None:
            arguments += ["-selfsign", "-keyfile", key]
        else:
            arguments += ["-cert", self.path(issuer + ".crt"), "-keyfile",
                          self.path(issuer + ".key")]
        openssl(*arguments, cwd=self.dir)
        return self.path(name + ".crt")

    def adopt(self, name, cert_path, key_path):
        """Copies an existing CA (an agent's dev CA from its state directory) in as name, so that
        sign() and leaf() can use it as an issuer."""
        with open(cert_path, "rb") as source, open(self.path(name + ".crt"), "wb") as f:
            f.write(source.read())
        old = os.umask(0o077)
        try:
            with open(key_path, "rb") as source, open(self.path(name + ".key"), "wb") as f:
                f.write(source.read())
        finally:
            os.umask(old)
        return self.path(name + ".crt")

    def leaf(self, name, issuer, sans, start=LONG_AGO, end=FAR_AHEAD, is_ca=False,
             key_usage="critical,digitalSignature", eku="serverAuth,clientAuth"):
        """Makes name.crt for a new name.key, signed by issuer, with exactly the subjectAltName
        entries in sans ("URI:spiffe://td/x", "DNS:host"; empty: no SAN at all) and the given
        validity, basicConstraints and key usages: an X.509-SVID by default, or one that breaks
        exactly one of its rules."""
        lines = [f"basicConstraints = critical,CA:{'TRUE' if is_ca else 'FALSE'}",
                 f"keyUsage = {key_usage}", f"extendedKeyUsage = {eku}",
                 "subjectKeyIdentifier = hash", "authorityKeyIdentifier = keyid:always"]
        if sans:
            lines.append("subjectAltName = " + ",".join(sans))
        extensions = self.path(name + ".ext")
        with open(extensions, "w") as f:
            f.write("[svid]\n" + "\n".join(lines) + "\n")
        key = self.key(name)
        request = self.path(name + ".csr")
        openssl("req", "-new", "-key", key, "-subj", f"/O=attacker/CN={name}", "-out", request)
        openssl("ca", "-batch", "-config", "ca.cnf", "-in", request, "-startdate", start,
                "-enddate", end, "-notext", "-extfile", extensions, "-extensions", "svid",
                "-cert", self.path(issuer + ".crt"), "-keyfile", self.path(issuer + ".key"),
                "-out", self.path(name + ".crt"), cwd=self.dir)
        return self.path(name + ".crt")

    def root(self, name):
        return self.sign(name, None, "root")

    def intermediate(self, name, root, **kwargs):
        return self.sign(name, root, "intermediate", **kwargs)

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def secret(self, directory, issuer, anchors, chain_extra=(), key=None):
        """Writes directory/{tls.crt,tls.key,ca.crt} the way the kubelet projects a secret:
        files in a timestamped directory behind a "..data" symlink swapped atomically, with the
        packaged DaemonSet's defaultMode 0400 (the agent refuses a key others can read)."""
        os.makedirs(directory, exist_ok=True)
        stamp = os.path.join(directory, f"..{time.monotonic_ns()}")
        os.mkdir(stamp)
        with open(os.path.join(stamp, "tls.crt"), "wb") as f:
            f.write(self.read(issuer + ".crt") + b"".join(self.read(c + ".crt")
                                                          for c in chain_extra))
        with open(os.open(os.path.join(stamp, "tls.key"), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                          0o400), "wb") as f:
            f.write(self.read((key or issuer) + ".key"))
        with open(os.path.join(stamp, "ca.crt"), "wb") as f:
            f.write(b"".join(self.read(a + ".crt") for a in anchors))
        data = os.path.join(directory, "..data")
        temporary = os.path.join(directory, "..data_tmp")
        os.symlink(os.path.basename(stamp), temporary)
        os.replace(temporary, data)
        for name in ("tls.crt", "tls.key", "ca.crt"):
            link = os.path.join(directory, name)
            if not os.path.islink(link):
                os.symlink(os.path.join("..data", name), link)
        return directory

    def bundle(self, path, anchors):
        """Writes the PEM anchors to path atomically (rename over the old file)."""
        temporary = path + ".tmp"
        with open(temporary, "wb") as f:
            f.write(b"".join(self.read(a + ".crt") for a in anchors))
        os.replace(temporary, path)
        return path


def start_agent(mesh, arguments, name="agent", metrics=False, wait=True):
    """Starts meshtls-agent with extra arguments; returns (socket path, metrics port or None).
    Unlike Mesh.start_agent, the caller chooses issuer, lifetime and metrics flags."""
    state = os.path.join(mesh.dir, f"{name}-state")
    sock = os.path.join(mesh.dir, "run", f"{name}.sock")
    port = free_port() if metrics else None
    argv = [AGENT, "--socket", sock, "--state-dir", state,
            "--metrics-address", f"127.0.0.1:{port}" if metrics else "off"] + list(arguments)
    env = base_env()
    if ASAN_RUNTIME:
        env.pop("LD_PRELOAD", None)
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
    process = mesh.spawn(name, argv, env=env)
    if wait:
        wait_agent_ready(process, sock, name)
    mesh.agents[name] = sock
    mesh.write_config(name, sock)
    return sock, port


def run_agent_to_exit(arguments, workdir, timeout=20):
    """Runs the agent expecting it to refuse to start; returns (status, stderr)."""
    sock = os.path.join(workdir, "refused.sock")
    state = os.path.join(workdir, "refused-state")
    result = subprocess.run([AGENT, "--socket", sock, "--state-dir", state, "--metrics-address",
                             "off"] + list(arguments), capture_output=True, timeout=timeout,
                            env=base_env() if not ASAN_RUNTIME else
                            {k: v for k, v in base_env().items() if k != "LD_PRELOAD"})
    return result.returncode, result.stderr.decode(errors="replace")


# A long-lived meshed HTTP client: one process for the whole test (so that it renews its
# identity lazily, as a real service would), requests in a loop, each outcome on its own line.
CLIENT_SCRIPT = r'''
import http.client, sys, time
port, stop_file, keepalive = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
import os
kept = None
n = 0
while not os.path.exists(stop_file):
    n += 1
    started = time.monotonic()
    try:
        if keepalive:
            if kept is None:
                kept = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            kept.request("GET", "/payload.bin")
            body = kept.getresponse().read()
        else:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            c.request("GET", "/payload.bin")
            body = c.getresponse().read()
            c.close()
        elapsed = time.monotonic() - started
        print(f"ok {elapsed:.4f}" if len(body) == int(sys.argv[4]) else f"short {len(body)}",
              flush=True)
    except Exception as e:
        print(f"fail {n} {time.time():.3f} {type(e).__name__}: {e}", flush=True)
        kept = None
    time.sleep(float(sys.argv[5]))
print("done", flush=True)
'''


class TrafficClient:
    """A meshed Python client requesting /payload.bin from port until stop()."""

    def __init__(self, mesh, name, port, payload_size, agent="agent", keepalive=False,
                 interval=0.05, config=None):
        self.stop_file = os.path.join(mesh.dir, f"{name}.stop")
        script = os.path.join(mesh.dir, "traffic_client.py")
        with open(script, "w") as f:
            f.write(CLIENT_SCRIPT)
        self.process = mesh.meshed(name, [PYTHON, script, str(port), self.stop_file,
                                          "1" if keepalive else "0", str(payload_size),
                                          str(interval)], agent=agent, config=config)

    def lines(self):
        return self.process.stdout().decode(errors="replace").splitlines()

    def counts(self):
        lines = self.lines()
        return (sum(1 for line in lines if line.startswith("ok")),
                [line for line in lines if line.startswith(("fail", "short"))])

    def latencies(self):
        return sorted(float(line.split()[1]) for line in self.lines() if line.startswith("ok "))

    def stop(self, timeout=30):
        open(self.stop_file, "w").close()
        self.process.wait(timeout)
        check("done" in self.lines(), f"{self.process.name} did not finish cleanly")


# A long-lived connection: a meshed echo server, and a meshed client that keeps ONE connection
# for the whole test and round-trips a message on it every interval.
ECHO_SERVER_SCRIPT = r'''
import socketserver, sys
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)
class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
Server(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
'''

ECHO_CLIENT_SCRIPT = r'''
import os, socket, sys, time
port, stop_file, interval = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port), timeout=20)
n = 0
while not os.path.exists(stop_file):
    n += 1
    message = (f"message {n} " * 20).encode()
    try:
        s.sendall(message)
        got = b""
        while len(got) < len(message):
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            got += chunk
        print("ok" if got == message else f"fail {n} corrupted", flush=True)
    except Exception as e:
        print(f"fail {n} {type(e).__name__}: {e}", flush=True)
        break
    time.sleep(interval)
print("done", flush=True)
'''


class EchoPair:
    """A meshed echo server on port and a meshed client holding one connection to it."""

    def __init__(self, mesh, port, agent="agent", interval=0.1):
        from harness import port_listening
        server_script = os.path.join(mesh.dir, "echo_server.py")
        client_script = os.path.join(mesh.dir, "echo_client.py")
        with open(server_script, "w") as f:
            f.write(ECHO_SERVER_SCRIPT)
        with open(client_script, "w") as f:
            f.write(ECHO_CLIENT_SCRIPT)
        self.stop_file = os.path.join(mesh.dir, "echo.stop")
        self.server = mesh.meshed("echo-server", [PYTHON, server_script, str(port)], agent=agent)
        wait_for(lambda: port_listening(port) or self.server.popen.poll() is not None, 20,
                 "echo server to listen")
        self.client = mesh.meshed("echo-client", [PYTHON, client_script, str(port),
                                                  self.stop_file, str(interval)], agent=agent)

    def counts(self):
        lines = self.client.stdout().decode(errors="replace").splitlines()
        return (sum(1 for line in lines if line == "ok"),
                [line for line in lines if line.startswith("fail")])

    def stop(self, timeout=30):
        open(self.stop_file, "w").close()
        self.client.wait(timeout)


def serve_payload(mesh, name, port, size, agent="agent"):
    """A meshed python http.server with a payload.bin of size bytes."""
    directory = os.path.join(mesh.dir, f"{name}-files")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "payload.bin"), "wb") as f:
        # ASCII, so that a client's stdout decoded as text keeps its length.
        f.write(bytes(97 + b % 26 for b in os.urandom(size)))
    return mesh.http_server(name, port, directory, agent=agent)


def wait_renewed(agent_process, pids, timeout, what):
    """Waits until the agent has issued a new SVID to every pid (counted from now)."""
    before = {pid: issued_count(agent_process, pid) for pid in pids}
    wait_for(lambda: all(issued_count(agent_process, pid) > before[pid] for pid in pids), timeout,
             what)


def issued_count(agent_process, pid=None):
    """SVIDs the agent log says it issued (to pid, when given)."""
    marker = f" to pid {pid} " if pid is not None else " to pid "
    return sum(1 for line in agent_process.stderr().splitlines()
               if "issued spiffe://" in line and marker in line)


def meshed_pid(process):
    """The pid of the program `meshtls run` became (it execs, so the same pid)."""
    return process.popen.pid


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        check(response.status == 200, f"metrics endpoint answered {response.status}")
        content_type = response.headers.get("Content-Type", "")
        check(content_type.startswith("text/plain; version=0.0.4"),
              f"unexpected Content-Type {content_type!r}")
        return response.read().decode()


def parse_metrics(text):
    """Parses with the real Prometheus text parser; returns {(name, labels tuple): value}."""
    from prometheus_client.parser import text_string_to_metric_families
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def promtool_check(text):
    """`promtool check metrics` when installed; returns its output or None when absent."""
    try:
        result = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                                capture_output=True, timeout=30)
    except FileNotFoundError:
        return None
    return result.returncode, (result.stdout + result.stderr).decode()


def status_records(sock):
    """Sends a STATUS_REQUEST on the agent socket; returns the records as lists of fields."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(sock)
        s.sendall(b"MT\x01\x06\x00\x00\x00\x00")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    check(len(data) >= 8 and data[:3] == b"MT\x01", f"bad STATUS reply {data[:16]!r}")
    check(data[3] == 7, f"STATUS reply has type {data[3]}, not STATUS_RESPONSE")
    length = struct.unpack("!I", data[4:8])[0]
    payload = data[8:8 + length]
    records = []
    offset = 0
    while offset < len(payload):
        tag, size = struct.unpack("!HI", payload[offset:offset + 6])
        value = payload[offset + 6:offset + 6 + size]
        offset += 6 + size
        if tag == 8:
            records.append(value.decode().split("\t"))
    return records


def log(message):
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()
