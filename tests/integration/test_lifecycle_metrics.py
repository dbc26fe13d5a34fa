"""Metrics against known traffic: a meshed raw-socket client makes N HTTP/1.0 requests of known
size to a meshed server, holds one more connection open, and the agent's /metrics must show
exactly N+1 opens, N closes, 1 open connection and the exact application bytes on both sides;
the exposition must pass the Prometheus text parser (python3-prometheus-client) and, when
installed, `promtool check metrics`. STATUS (what `meshtls status` prints) must list both
processes with their identity and the held connection as mTLS.

An existing metrics directory is taken only when it is what an agent leaves (nothing in it but
metrics files, mode 0755, or 1777 from an older agent, narrowed): a directory of other files, of
another mode, or a symbolic link makes the agent refuse to start, naming the path.
"""

import os
import shutil
import subprocess

from harness import (AGENT, ASAN_RUNTIME, MESHTLS, PYTHON, Mesh, base_env, check, free_port,
                     main, wait_agent_ready, wait_for)
from lifecycle_common import (log, parse_metrics, promtool_check, run_agent_to_exit, scrape,
                              serve_payload, start_agent, status_records)

N = 5
PAYLOAD = 12345
REQUEST = b"GET /payload.bin HTTP/1.0\r\nHost: meshtls-test\r\n\r\n"

CLIENT_SCRIPT = r'''
import os, socket, sys, time
port, n, stop_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
request = b"GET /payload.bin HTTP/1.0\r\nHost: meshtls-test\r\n\r\n"
received = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(request)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    received.append(len(data))
held = socket.create_connection(("127.0.0.1", port), timeout=20)
print("received", " ".join(map(str, received)), flush=True)
while not os.path.exists(stop_file):
    time.sleep(0.05)
held.close()
'''


def promtool_accepts(status, output):
    """0, or 3 (lint only, no parse error) when every finding is about the one name the issue
    mandates and promtool's naming lint dislikes: identity_cert_refresh_count (Linkerd's name)."""
    if status == 0:
        return True
    findings = [line for line in output.splitlines() if line.strip()]
    return status == 3 and all(line.startswith("identity_cert_refresh_count ")
                               for line in findings)


def value(samples, name, **labels):
    matches = [v for (n, l), v in samples.items()
               if n == name and all(dict(l).get(k) == str(w) for k, w in labels.items())]
    return sum(matches) if matches else None


def test():
    with Mesh("metrics") as mesh:
        sock, metrics_port = start_agent(mesh, ["--lifetime", "3600"], metrics=True)
        metrics_dir = os.path.join(os.path.dirname(sock), "metrics")
        # The agent alone creates the files: the directory is 0755, the agent's own.
        check(os.stat(metrics_dir).st_mode & 0o7777 == 0o755 and
              os.stat(metrics_dir).st_uid == os.geteuid(),
              f"{metrics_dir} is not mode 0755 owned by the agent")
        port = free_port()
        server = serve_payload(mesh, "server", port, PAYLOAD)
        script = os.path.join(mesh.dir, "raw_client.py")
        with open(script, "w") as f:
            f.write(CLIENT_SCRIPT)
        stop_file = os.path.join(mesh.dir, "raw.stop")
        client = mesh.meshed("client", [PYTHON, script, str(port), str(N), stop_file])
        wait_for(lambda: b"received" in client.stdout() or client.popen.poll() is not None, 60,
                 "the client's requests")
        received = [int(x) for x in client.stdout().decode().split()[1:1 + N]]
        check(len(received) == N and all(r > PAYLOAD for r in received),
              f"client did not get {N} responses: {client.stdout()!r}\n{client.stderr()}")

        text = scrape(metrics_port)
        samples = parse_metrics(text)
        check(value(samples, "meshtls_agent_svids_issued_total") >= 2, "SVIDs not counted")
        check(value(samples, "meshtls_agent_trust_anchors") == 1, "anchor count wrong")
        promtool = promtool_check(text)
        if promtool is None:
            log("promtool not installed: only the Python parser checked the exposition")
        else:
            check(promtool_accepts(*promtool), f"promtool check metrics failed:\n{promtool[1]}")
            log("promtool check metrics: OK")

        records = status_records(sock)
        processes = {int(r[1]): r for r in records if r[0] == "process"}
        for process in (server, client):
            check(process.popen.pid in processes, f"STATUS does not list {process.name}: {records}")
            check(processes[process.popen.pid][4] == "spiffe://meshtls.local/uid/0",
                  f"STATUS shows the wrong identity for {process.name}")
        cli = subprocess.run([MESHTLS, "status", "--socket", sock], capture_output=True,
                             timeout=30)
        check(cli.returncode == 0 and str(server.popen.pid) in cli.stdout.decode() and
              "mTLS" in cli.stdout.decode(),
              f"`meshtls status` ({cli.returncode}) misses the server or its connection:\n"
              f"{cli.stdout.decode()}{cli.stderr.decode()}")
        check(any(name == "tcp_open_total" for name, _ in samples),
              f"the workloads wrote no metrics:\n{text[:2000]}")

        server_pid, client_pid = server.popen.pid, client.popen.pid
        peer = "spiffe://meshtls.local/uid/0"
        inbound = dict(pid=server_pid, direction="inbound", tls="true", port=port, peer_id=peer)
        outbound = dict(pid=client_pid, direction="outbound", tls="true", port=port, peer_id=peer)
        expected = {
            ("tcp_open_total", "in"): N + 1, ("tcp_close_total", "in"): N,
            ("tcp_open_connections", "in"): 1,
            ("tcp_read_bytes_total", "in"): N * len(REQUEST),
            ("tcp_write_bytes_total", "in"): sum(received),
            ("tcp_open_total", "out"): N + 1, ("tcp_close_total", "out"): N,
            ("tcp_open_connections", "out"): 1,
            ("tcp_write_bytes_total", "out"): N * len(REQUEST),
            ("tcp_read_bytes_total", "out"): sum(received),
        }
        for (name, side), want in expected.items():
            got = value(samples, name, **(inbound if side == "in" else outbound))
            check(got == want, f"{name} {side}bound: {got}, expected {want}")
        check(value(samples, "handshake_duration_seconds_count", pid=server_pid,
                    direction="inbound") == N + 1, "server handshakes not counted")
        check(value(samples, "handshake_duration_seconds_count", pid=client_pid,
                    direction="outbound") == N + 1, "client handshakes not counted")
        check(value(samples, "identity_cert_expiration_timestamp_seconds", pid=server_pid),
              "no identity expiry for the server")
        held = [r for r in records if r[0] == "connection" and int(r[1]) == client_pid]
        check(len(held) == 1 and held[0][3] == "outbound" and held[0][4] == "true"
              and held[0][7] == peer, f"STATUS does not show the held mTLS connection: {held}")
        open(stop_file, "w").close()
        client.wait(30)
        log(f"metrics exact for {N} requests + 1 held connection")
        existing_directories(mesh)


def existing_directories(mesh):
    """The agent refuses a metrics directory it cannot have made, and narrows an older agent's."""
    workdir = os.path.join(mesh.dir, "existing")
    metrics_dir = os.path.join(workdir, "metrics")
    elsewhere = os.path.join(mesh.dir, "elsewhere")
    os.makedirs(elsewhere)
    for name, prepare, expected in (
            ("other files", lambda: open(os.path.join(metrics_dir, "app.conf"), "w").close(),
             f'metrics directory {metrics_dir} holds "app.conf", which no agent creates'),
            ("another mode", lambda: os.chmod(metrics_dir, 0o750),
             f"metrics directory {metrics_dir} exists with mode 0750"),
            ("a symbolic link", lambda: (os.rmdir(metrics_dir), os.symlink(elsewhere, metrics_dir)),
             f"{metrics_dir} exists and is not a directory (or is a symbolic link)")):
        os.makedirs(workdir, exist_ok=True)
        os.mkdir(metrics_dir, 0o755)
        os.chmod(metrics_dir, 0o755)
        prepare()
        status, stderr = run_agent_to_exit([], workdir)
        check(status != 0 and expected in stderr,
              f"an existing metrics directory with {name}: exit {status}, expected the agent to "
              f"refuse with \"{expected}\":\n{stderr[-1500:]}")
        check(os.stat(metrics_dir).st_mode & 0o7777 == (0o750 if name == "another mode" else 0o755),
              f"the agent changed the mode of a metrics directory it refused ({name})")
        shutil.rmtree(workdir)
    # An older agent's: 1777, files of processes left in it; narrowed, and those stay.
    os.makedirs(metrics_dir)
    os.chmod(metrics_dir, 0o1777)
    left = os.path.join(metrics_dir, "999999990-1.metrics")
    open(left, "w").close()
    os.chown(left, 65534, 65534)
    sock = os.path.join(workdir, "agent.sock")
    agent = mesh.spawn("older-directory-agent",
                       [AGENT, "--socket", sock, "--state-dir", os.path.join(workdir, "state"),
                        "--metrics-address", "off"], env=agent_env())
    wait_agent_ready(agent, sock, "the agent given an older agent's metrics directory")
    check(os.stat(metrics_dir).st_mode & 0o7777 == 0o755,
          f"the agent did not narrow an older agent's 1777 {metrics_dir} to 0755")
    check(os.path.exists(left), "the agent removed a file another user left in the directory")
    check("narrowed metrics directory" in agent.stderr(),
          f"the agent did not say it narrowed {metrics_dir}:\n{agent.stderr()[-1500:]}")
    agent.popen.terminate()
    agent.popen.wait(20)
    log("an existing metrics directory is refused unless an agent left it")


def agent_env():
    env = base_env()
    if ASAN_RUNTIME:
        env.pop("LD_PRELOAD", None)
    return env


if __name__ == "__main__":
    main(test)
