"""Outbound mode "auto": the agent's mesh membership (a static file) decides at connect() which
destinations get mTLS, and a destination once meshed is never downgraded by anything but a
removal.

One client process (python3 under `meshtls run`, outbound.loopback = "auto") fetches from three
servers, each behind a recording relay, one new connection per fetch, as the test tells it:

  - A, meshed (strict), its relay port in the membership with the server's identity: TLS 1.3 on
    the wire; B, not meshed, not in the membership: plaintext HTTP on the wire, and the client
    logs the plaintext decision; C, meshed (permissive), not in the membership yet: plaintext;
  - the file becomes malformed: the agent names file, line and key, and A stays meshed;
  - the file gains C: the next fetch from C, by the same process, is TLS;
  - the file loses C: the next fetch is plaintext again (the agent published the removal);
  - C back in, then the agent is stopped: fetches from A and C stay TLS; C is taken out of the
    file while the agent is down and a new agent starts from that file: it never saw C leave, so
    C is merely absent, and the process, which knows C meshed, keeps it TLS;
  - the agent's metrics and `meshtls status` count the plaintext opens per destination port (B
    once, C twice, A never), and the opens per destination address and port with tls (B's relay
    listens on another loopback address, 127.0.0.2): A and C as mTLS, B and C as plaintext;
  - control: the membership entry of A names another identity in a second run of the client:
    the connection is refused, not sent in clear.
"""

import os
import re
import signal
import subprocess
import time

from harness import (AGENT, MESHTLS, PYTHON, Mesh, Relay, base_env, check, free_port, main, random_token,
                     tls_records, wait_agent_ready, wait_for)
from lifecycle_common import parse_metrics, scrape
from policy_common import start_server, write_workload_config

CLIENT = r"""
import http.client, sys
for line in sys.stdin:
    host, port = line.split()
    port = int(port)
    try:
        connection = http.client.HTTPConnection(host, port, timeout=10)
        connection.request("GET", "/data.txt")
        body = connection.getresponse().read().decode().strip()
        connection.close()
        print(f"{port} ok {body}", flush=True)
    except Exception as error:
        print(f"{port} failed {type(error).__name__}", flush=True)
"""


def is_tls(data):
    return len(data) > 0 and data[0] == 0x16 and len(tls_records(data)) > 0


def entries(*ports_and_ids):
    return "membership = (\n" + ",\n".join(
        f'  {{ cidr = "127.0.0.1"; ports = [{port}];'
        + (f' id = "{identity}";' if identity else "") + " }"
        for port, identity in ports_and_ids) + "\n);\n"


class Client:
    def __init__(self, mesh, name, config):
        script = os.path.join(mesh.dir, "auto_client.py")
        with open(script, "w") as f:
            f.write(CLIENT)
        self.process = mesh.meshed(name, [PYTHON, script], config=config, stdin=subprocess.PIPE)
        self.asked = 0

    def fetch(self, relay):
        before = len(relay.client_bytes)
        host = relay.listener.getsockname()[0]
        self.process.popen.stdin.write(f"{host} {relay.port}\n".encode())
        self.process.popen.stdin.flush()
        self.asked += 1
        wait_for(lambda: self.process.stdout().count(b"\n") >= self.asked or
                 self.process.popen.poll() is not None, 30, f"fetch {self.asked}")
        line = self.process.stdout().decode().splitlines()[self.asked - 1]
        check(len(relay.client_bytes) == before + 1, f"no new connection through {relay.port}")
        return line, bytes(relay.client_bytes[before]), bytes(relay.server_bytes[before])

    def expect(self, relay, tls, secret, what):
        line, up, down = self.fetch(relay)
        check(line == f"{relay.port} ok {secret}",
              f"{what}: {line}\n{self.process.stderr()[-3000:]}")
        if tls:
            check(is_tls(up) and is_tls(down) and secret.encode() not in down,
                  f"{what}: expected TLS on the wire, saw {up[:40]!r} / {down[:40]!r}")
        else:
            check(up.startswith(b"GET /data.txt HTTP/1.") and secret.encode() in down,
                  f"{what}: expected plaintext HTTP on the wire, saw {up[:40]!r}")


def write(path, text):
    # Written beside and renamed over, the way a deployment tool replaces a file.
    with open(path + ".new", "w") as f:
        f.write(text)
    os.rename(path + ".new", path)


def test():
    with Mesh("membership-auto") as mesh:
        membership = os.path.join(mesh.dir, "membership.conf")
        agent_config = f'membership_file = "{membership}";\n'
        identity = f"uid/{os.getuid()}"
        ports = {name: free_port() for name in "ABC"}
        # B's relay on another loopback address: destinations are told apart by address too.
        relays = {name: Relay(port, host="127.0.0.2" if name == "B" else "127.0.0.1")
                  for name, port in ports.items()}
        write(membership, entries((relays["A"].port, identity)))
        mesh.start_agent(config=agent_config)
        agent = mesh.processes[-1]

        server_config = write_workload_config(mesh, "server", f"""
outbound = {{ loopback = "plain"; }};
inbound = {{ loopback = "strict";
            rules = ( {{ port = {ports["C"]}; mode = "permissive"; }} ); }};
""")
        client_config = write_workload_config(mesh, "client", """
outbound = { loopback = "auto"; };
inbound = { loopback = "plain"; };
""")
        secrets = {}
        for name, port in ports.items():
            root = os.path.join(mesh.dir, f"www-{name}")
            os.mkdir(root)
            secrets[name] = f"{name}-{random_token()}"
            with open(os.path.join(root, "data.txt"), "w") as f:
                f.write(secrets[name] + "\n")
            argv = [PYTHON, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                    "--directory", root]
            start_server(mesh, f"server-{name}", argv, [port], config=server_config,
                         meshed=name != "B")

        client = Client(mesh, "client", client_config)
        A, B, C = relays["A"], relays["B"], relays["C"]
        client.expect(A, True, secrets["A"], "meshed A")
        client.expect(B, False, secrets["B"], "plain B")
        client.expect(C, False, secrets["C"], "C before it is in the membership")
        log = client.process.stderr()
        check(f"plaintext outbound to 127.0.0.2:{B.port} (mode auto): not in the mesh membership"
              in log, f"no info line for the plaintext decision:\n{log}")

        def reload(generation):
            wait_for(lambda: f"generation {generation}," in agent.stderr(), 20,
                     f"the agent to publish generation {generation}")

        # A file that stops loading keeps the set in force, and the agent says where it broke.
        write(membership, entries((A.port, identity)).replace("127.0.0.1", "127.0.0.256"))
        wait_for(lambda: "membership file changed but was not loaded" in agent.stderr(), 20,
                 "the agent to refuse the malformed file")
        check(f'{membership}:2: membership[0].cidr: "127.0.0.256"' in agent.stderr(),
              f"the error does not name file, line and key:\n{agent.stderr()[-2000:]}")
        client.expect(A, True, secrets["A"], "A with a malformed file")

        write(membership, entries((A.port, identity), (C.port, None)))
        reload(2)
        client.expect(C, True, secrets["C"], "C once in the membership")

        write(membership, entries((A.port, identity)))
        reload(3)
        client.expect(C, False, secrets["C"], "C once removed")

        write(membership, entries((A.port, identity), (C.port, None)))
        reload(4)
        client.expect(C, True, secrets["C"], "C back in")

        agent.signal_group(signal.SIGTERM)
        agent.wait(20)
        client.expect(A, True, secrets["A"], "A with the agent stopped")
        client.expect(C, True, secrets["C"], "C with the agent stopped")

        # C leaves while no agent watches: the next agent never saw it, so it is absent, not
        # removed, and the process keeps it meshed.
        write(membership, entries((A.port, identity)))
        # This one serves metrics, to read the client's counts at the end.
        metrics_port = free_port()
        agent_conf = os.path.join(mesh.dir, "agent-agent.conf")
        second_agent = mesh.spawn("agent2", [
            AGENT, "--socket", mesh.agents["agent"], "--state-dir",
            os.path.join(mesh.dir, "agent-state"), "--metrics-address",
            f"127.0.0.1:{metrics_port}", "--config", agent_conf], env=base_env())
        wait_agent_ready(second_agent, mesh.agents["agent"], "agent2")
        said = client.process.stderr().count("mesh membership generation 1:")
        for _ in range(20):
            client.expect(A, True, secrets["A"], "A after the agent restarted")
            if client.process.stderr().count("mesh membership generation 1:") > said:
                break
            time.sleep(0.5)
        check(client.process.stderr().count("mesh membership generation 1:") > said,
              f"the client never took the new agent's set:\n{client.process.stderr()[-3000:]}")
        client.expect(C, True, secrets["C"], "C absent from the new agent's set")

        # Control: an entry naming another identity refuses the server rather than trust it.
        write(membership, entries((A.port, "ns/elsewhere/sa/other")))
        wait_for(lambda: "generation 2," in second_agent.stderr(), 20,
                 "the new agent to publish generation 2")
        other = Client(mesh, "client-other", client_config)
        line, up, _ = other.fetch(A)
        check(" failed " in line,
              f"a server with another identity was used: {line}")
        check(not up.startswith(b"GET"), "plaintext went out to a meshed destination")
        check("does not match spiffe://meshtls.local/ns/elsewhere/sa/other expected by the mesh "
              "membership" in
              other.process.stderr(), f"no refusal naming the identity:\n"
              f"{other.process.stderr()[-3000:]}")
        # Visibility: the plaintext opens under auto are counted per destination port (B once,
        # C before it joined and after it left); A, always meshed, has none.
        samples = parse_metrics(scrape(metrics_port))

        def plaintext_opens(port):
            return sum(value for (name, labels), value in samples.items()
                       if name == "tcp_open_total" and
                       dict(labels).get("pid") == str(client.process.popen.pid) and
                       dict(labels).get("direction") == "outbound" and
                       dict(labels).get("tls") == "false" and dict(labels).get("port") == str(port))
        counts = {name: plaintext_opens(relays[name].port) for name in "ABC"}
        check(counts == {"A": 0, "B": 1, "C": 2},
              f"plaintext outbound opens per port: {counts}\n{sorted(samples)[:40]}")
        # Per destination: which went mTLS and which did not, by address and port.
        pid = str(client.process.popen.pid)
        opens = {}
        for (name, labels), value in samples.items():
            labels = dict(labels)
            if name == "outbound_destination_open_total" and labels.get("pid") == pid:
                opens[(labels["destination"], labels["tls"])] = value
        a, b, c = (f"127.0.0.1:{A.port}", f"127.0.0.2:{B.port}", f"127.0.0.1:{C.port}")
        # A: meshed, with the file malformed, with the agent stopped, after the restart (1+).
        check(opens.get((a, "true"), 0) >= 4 and (a, "false") not in opens,
              f"A's opens per destination: {opens}")
        check(opens.get((b, "false")) == 1 and (b, "true") not in opens,
              f"B's opens per destination: {opens}")
        check(f"127.0.0.1:{B.port}" not in {destination for destination, _ in opens},
              f"B counted at the wrong address: {opens}")
        # C: in, back in, with the agent stopped, absent from the new agent's set.
        check(opens.get((c, "false")) == 2 and opens.get((c, "true")) == 4,
              f"C's opens per destination: {opens}")
        status = subprocess.run([MESHTLS, "status", "--socket", mesh.agents["agent"]],
                                capture_output=True, text=True, timeout=30, env=base_env())
        shown = status.stdout + status.stderr

        def status_line(tls, destination, count):
            kind = "mTLS" if tls else "plaintext"
            return re.search(rf"outbound {kind} +to {re.escape(destination)} +{count} opened",
                             status.stdout) is not None
        check(status_line(False, b, 1) and status_line(False, c, 2) and status_line(True, c, 4),
              f"meshtls status does not show B and C per destination:\n{shown}")
        check(status_line(True, a, int(opens[(a, "true")])),
              f"meshtls status does not show A as mTLS:\n{shown}")
        check(re.search(rf"outbound plaintext +to {re.escape(a)} ", status.stdout) is None,
              f"meshtls status shows plaintext to the meshed A:\n{shown}")
        check(status.stdout.index(f"to {b} ") < status.stdout.index(f"to {a} "),
              f"the plaintext destinations are not listed first:\n{shown}")
        for relay in relays.values():
            relay.stop()


if __name__ == "__main__":
    main(test)
