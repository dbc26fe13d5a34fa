"""Kubernetes probes through a strict port, end to end on IPv4 loopback.

The kubelet probes a container from the node's address and speaks no mTLS; the injector tells the
library so with MESHTLS_PROBE_SOURCES (the node's IP) and MESHTLS_PROBE_PORTS (the probed ports).
Here 127.0.0.2 plays the node. An unmodified `python3 -m http.server` runs under the preload
with inbound strict for every peer (loopback too), MESHTLS_PROBE_SOURCES=127.0.0.2 and
MESHTLS_PROBE_PORTS=<its port>; a second one, on a port not in the list, has the same variables.
The test proves:

  (a) the probe: curl bound to 127.0.0.2 (`--interface`) gets HTTP 200 and the file in plaintext,
      and the server logs it at debug as a probe; a recording relay whose upstream side sends from
      127.0.0.2 sees the request and the body in clear; the agent's metrics count both as
      plaintext inbound connections on the probe port;
  (b) neither half alone is a probe: curl from 127.0.0.3 on the probe port, and curl from
      127.0.0.2 on the other port, are refused, the log line naming peer, port, mode and reason;
  (c) a meshed client from 127.0.0.2 on the probe port still gets mutual TLS: the server logs
      the client's identity, and the relay sees TLS 1.3 with none of the HTTP in clear;
  (d) `meshtls config decide` gives the same three decisions from the same variables, and a
      malformed MESHTLS_PROBE_PORTS is a configuration error naming the variable: the program is
      not started (`meshtls run` checks the configuration first).
"""

import http.client
import os
import socket
import subprocess
import threading

from harness import (AGENT, ASAN_RUNTIME, MESHTLS, PYTHON, Mesh, Relay, assert_tls13_wire,
                     base_env, check, free_port, http_client, main, port_listening, random_token,
                     wait_agent_ready, wait_for)
from lifecycle_common import parse_metrics, scrape
from policy_common import run, spiffe, wait_log, write_workload_config

NODE = "127.0.0.2"
POD = "127.0.0.3"


class SourceRelay(Relay):
    """A Relay whose upstream connections leave from source (the address the server sees)."""

    def __init__(self, target_port, source):
        self.source = source
        super().__init__(target_port)

    def serve(self):
        self.listener.settimeout(0.2)
        while not self.stopping:
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            upstream.bind((self.source, 0))
            upstream.connect(self.target)
            with self.lock:
                index = len(self.client_bytes)
                self.client_bytes.append(bytearray())
                self.server_bytes.append(bytearray())
            threading.Thread(target=self.pump, args=(client, upstream, self.client_bytes[index]),
                             daemon=True).start()
            threading.Thread(target=self.pump, args=(upstream, client, self.server_bytes[index]),
                             daemon=True).start()


def plain_get(source, port, path):
    """An unmeshed HTTP GET from source: (HTTP status or None, body, error text). curl with
    --interface; under a preloaded ASan runtime, where Debian's curl cannot start (fetch.py),
    Python's http.client bound to the same source."""
    if not ASAN_RUNTIME:
        result = subprocess.run(
            ["curl", "--silent", "--show-error", "--max-time", "20", "--interface", source,
             "--output", "-", "--write-out", "\n%{http_code}", f"http://127.0.0.1:{port}{path}"],
            capture_output=True, env=base_env(), timeout=30)
        body, _, code = result.stdout.rpartition(b"\n")
        status = int(code) if result.returncode == 0 and code.isdigit() else None
        return status, body, result.stderr.decode(errors="replace")
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20,
                                                source_address=(source, 0))
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read(), ""
    except (OSError, http.client.HTTPException) as error:
        return None, b"", f"{type(error).__name__}: {error}"


def start_agent_with_metrics(mesh, config):
    """Mesh.start_agent with a metrics endpoint: the port it serves on."""
    sock = os.path.join(mesh.dir, "agent.sock")
    path = os.path.join(mesh.dir, "agent.conf")
    with open(path, "w") as f:
        f.write(config)
    port = free_port()
    env = base_env()
    if ASAN_RUNTIME:
        env.pop("LD_PRELOAD", None)  # the agent links the sanitizer runtime itself
    agent = mesh.spawn("agent", [AGENT, "--socket", sock, "--state-dir",
                                 os.path.join(mesh.dir, "state"), "--config", path,
                                 "--metrics-address", f"127.0.0.1:{port}"], env=env)
    wait_agent_ready(agent, sock, "agent")
    mesh.agents["agent"] = sock
    return port


def opened(metrics_port, pid, port, tls):
    """tcp_open_total of pid's inbound connections on port, mTLS or plaintext."""
    samples = parse_metrics(scrape(metrics_port))
    return sum(value for (name, labels), value in samples.items()
               if name == "tcp_open_total" and dict(labels).get("pid") == str(pid) and
               dict(labels).get("direction") == "inbound" and
               dict(labels).get("port") == str(port) and dict(labels).get("tls") == tls)


def test():
    with Mesh("k8s-probes") as mesh:
        metrics_port = start_agent_with_metrics(mesh, (
            'rules = (\n'
            '  { exe = "/usr/bin/curl"; id = "ns/shop/sa/curl"; },\n'
            '  { exe = "/usr/bin/python3*"; id = "ns/web/sa/server"; }\n'
            ');\n'))
        server_id = spiffe("ns/web/sa/server")
        # Where curl cannot run (see fetch.py) the meshed HTTP client is /usr/bin/python3.
        client_id = server_id if ASAN_RUNTIME else spiffe("ns/shop/sa/curl")
        probe_port, other_port = free_port(), free_port()
        config = write_workload_config(mesh, "workload", """
outbound = { loopback = "mtls"; };
inbound = { loopback = "strict"; default = "strict"; };
""")
        root = os.path.join(mesh.dir, "www")
        os.mkdir(root)
        secret = random_token()
        body = (f"probe payload {secret}\n" * 100).encode()
        with open(os.path.join(root, "healthz"), "wb") as f:
            f.write(body)

        env = base_env()
        env.update(MESHTLS_PROBE_SOURCES=NODE, MESHTLS_PROBE_PORTS=str(probe_port),
                   MESHTLS_LOG="debug")
        servers = {}
        for name, port in (("probed", probe_port), ("other", other_port)):
            servers[port] = mesh.meshed(name, [PYTHON, "-m", "http.server", str(port), "--bind",
                                               "127.0.0.1", "--directory", root],
                                        config=config, env=env)
        wait_for(lambda: all(port_listening(p) for p in servers) or
                 any(s.popen.poll() is not None for s in servers.values()), 20,
                 "the servers to listen")
        for server in servers.values():
            check(server.popen.poll() is None, f"{server.name} exited:\n{server.stderr()}")
        probed = servers[probe_port]
        other = servers[other_port]

        # (a) the probe, straight and through a relay that sends from the node's address.
        status, out, err = plain_get(NODE, probe_port, "/healthz")
        check(status == 200 and out == body,
              f"a probe from {NODE} on the probe port: HTTP {status}, {len(out)} of {len(body)} "
              f"bytes:\n{err}")
        wait_log(probed, rf"plaintext inbound from {NODE}:\d+ on :{probe_port} \(mode permissive, "
                         r"probe source on a probe port\): not TLS")
        relay = SourceRelay(probe_port, NODE)
        status, out, err = plain_get("127.0.0.1", relay.port, "/healthz")
        relay.stop()
        check(status == 200 and out == body, f"a probe through the relay: HTTP {status}:\n{err}")
        check(len(relay.client_bytes) == 1, f"relay saw {len(relay.client_bytes)} connections")
        check(b"GET /healthz" in relay.client_bytes[0] and
              secret.encode() in relay.server_bytes[0],
              "the probe's request and answer are not plaintext on the wire")
        # Both probes are counted as plaintext inbound connections on the probe port.
        wait_for(lambda: opened(metrics_port, probed.popen.pid, probe_port, "false") == 2, 10,
                 "the two probes counted as plaintext inbound")

        # (b) a probe source on another port, another source on the probe port: refused.
        for source, port, server in ((POD, probe_port, probed), (NODE, other_port, other)):
            status, out, err = plain_get(source, port, "/healthz")
            check(status is None and secret.encode() not in out,
                  f"plaintext from {source} on :{port} was served (HTTP {status})")
            wait_log(server, rf"refused inbound connection from {source}:\d+ on :{port} "
                             r"\(mode strict\): \S")
        check(f"plaintext inbound from {POD}" not in probed.stderr() and
              f"plaintext inbound from {NODE}" not in other.stderr(),
              "a connection that is not a probe was let through in plaintext")

        # (c) a meshed client from the node's address on the probe port: still mTLS.
        relay = SourceRelay(probe_port, NODE)
        status, out, err = run(mesh, "mesh-client",
                               http_client(f"http://127.0.0.1:{relay.port}/healthz"),
                               config=config)
        relay.stop()
        check(status == 0 and out.encode() == body,
              f"a meshed client from {NODE} on the probe port ({status}):\n{err}")
        wait_log(probed, rf"mtls inbound from {NODE}:\d+ on :{probe_port}: peer {client_id}, "
                         r"TLSv1\.3")
        check(len(relay.client_bytes) == 1, f"relay saw {len(relay.client_bytes)} connections")
        assert_tls13_wire(relay.client_bytes[0], relay.server_bytes[0],
                          [secret.encode(), b"GET /healthz"])
        wait_for(lambda: opened(metrics_port, probed.popen.pid, probe_port, "true") == 1, 10,
                 "the meshed client counted as an mTLS inbound connection")
        check(opened(metrics_port, probed.popen.pid, probe_port, "false") == 2,
              "the meshed client was counted as plaintext")

        # `meshtls config decide` says the same, from the same variables.
        for peer, port, expected in ((NODE, probe_port, "permissive (inbound.loopback; probe "
                                                          "source on a probe port)"),
                                     (POD, probe_port, "strict (inbound.loopback)"),
                                     (NODE, other_port, "strict (inbound.loopback)")):
            result = subprocess.run([MESHTLS, "config", "decide", config, "inbound",
                                     f"{peer}:{port}"], capture_output=True, text=True, env=env,
                                    timeout=30)
            check(result.returncode == 0 and
                  result.stdout.strip() == f"inbound from {peer} on :{port}: {expected}",
                  f"meshtls config decide inbound {peer}:{port}: {result.stdout}{result.stderr}")

        # (d) a malformed list: a configuration error naming the variable, nothing started.
        bad = dict(env, MESHTLS_PROBE_PORTS=f"{probe_port},http")
        result = subprocess.run([MESHTLS, "run", "--config", config, "--", PYTHON, "-c",
                                 "print('started')"], capture_output=True, text=True, env=bad,
                                timeout=30)
        check(result.returncode != 0 and "started" not in result.stdout and
              'MESHTLS_PROBE_PORTS: ' in result.stderr and '"http"' in result.stderr,
              f"a malformed MESHTLS_PROBE_PORTS: exit {result.returncode}\n"
              f"{result.stdout}{result.stderr}")
    print(f"probe from {NODE} on :{probe_port} plaintext; {POD} and :{other_port} refused; "
          f"meshed client from {NODE} got mTLS")


if __name__ == "__main__":
    main(test)
