"""Metrics of a workload in its own PID namespace, with the agent in the host's: a meshed
client started under `unshare --pid --fork --mount-proc` (it is pid 1 in its namespace, as in a
container) holds one connection to a meshed echo server on the host.

Its metrics file must be named by the pid the agent sees (the host pid), its series must show
under that pid while it runs, and it must survive the agent's sweeps (every 10 s) for as long as
the workload lives: the test waits through more than one sweep. `meshtls status` must list it
with its connection. Once it exits, the sweep removes its file.
"""

import os
import shutil
import time

from harness import MESHTLS, PYTHON, Mesh, check, free_port, main, port_listening, skip, wait_for
from lifecycle_common import (ECHO_CLIENT_SCRIPT, ECHO_SERVER_SCRIPT, log, parse_metrics, scrape,
                              start_agent, status_records)

SWEEP_SECONDS = 10  # MT_SERVER_SWEEP_MS


def start_time_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return int(text[text.rindex(")") + 2:].split()[19])


def total(samples, name, **labels):
    return sum(v for (n, l), v in samples.items()
               if n == name and all(dict(l).get(k) == str(w) for k, w in labels.items()))


def test():
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        skip("needs root and unshare(1) for a PID namespace")
    with Mesh("metrics-pidns") as mesh:
        sock, metrics_port = start_agent(mesh, ["--lifetime", "3600"], metrics=True)
        metrics_dir = os.path.join(os.path.dirname(sock), "metrics")
        port = free_port()
        server_script = os.path.join(mesh.dir, "echo_server.py")
        client_script = os.path.join(mesh.dir, "echo_client.py")
        with open(server_script, "w") as f:
            f.write(ECHO_SERVER_SCRIPT)
        with open(client_script, "w") as f:
            f.write(ECHO_CLIENT_SCRIPT)
        server = mesh.meshed("echo-server", [PYTHON, server_script, str(port)])
        wait_for(lambda: port_listening(port) or server.popen.poll() is not None, 20,
                 "the echo server to listen")
        stop_file = os.path.join(mesh.dir, "echo.stop")
        unshare = mesh.spawn("contained", [
            "unshare", "--pid", "--fork", "--mount-proc", MESHTLS, "run", "--config",
            mesh.configs["agent"], "--", PYTHON, client_script, str(port), stop_file, "0.2"])

        def children():
            path = f"/proc/{unshare.popen.pid}/task/{unshare.popen.pid}/children"
            try:
                with open(path) as f:
                    return [int(p) for p in f.read().split()]
            except OSError:
                return []
        wait_for(lambda: children() or unshare.popen.poll() is not None, 20,
                 "unshare to start the workload")
        check(children(), f"unshare failed:\n{unshare.stderr()}")
        host_pid = children()[0]
        with open(f"/proc/{host_pid}/status") as f:
            namespace_pids = [line.split()[1:] for line in f if line.startswith("NSpid:")][0]
        check(namespace_pids[-1] == "1", f"the workload is not pid 1 in its namespace: "
                                         f"NSpid {namespace_pids}")

        def round_trips():
            return unshare.stdout().decode(errors="replace").count("ok")
        wait_for(lambda: round_trips() >= 3 or unshare.popen.poll() is not None, 30,
                 "the contained client's round trips")
        check(round_trips() >= 3, f"the contained client failed:\n{unshare.stderr()[-3000:]}")
        name = f"{host_pid}-{start_time_of(host_pid)}.metrics"

        def shown():
            samples = parse_metrics(scrape(metrics_port))
            return (total(samples, "tcp_open_total", pid=host_pid, direction="outbound") == 1 and
                    total(samples, "tcp_open_connections", pid=host_pid, direction="outbound")
                    == 1)
        wait_for(shown, 10, f"the contained workload's series under host pid {host_pid}")
        check(os.path.exists(os.path.join(metrics_dir, name)),
              f"no {name} in {metrics_dir}: {os.listdir(metrics_dir)}")
        log(f"pid {namespace_pids} (host pid first): series shown, file {name}")

        # Through more than one sweep: the running workload's file must stay.
        deadline_rounds = SWEEP_SECONDS + 4
        for _ in range(deadline_rounds):
            check(os.path.exists(os.path.join(metrics_dir, name)),
                  f"the agent swept the running workload's file {name}")
            check(unshare.popen.poll() is None, f"the workload exited:\n{unshare.stderr()}")
            time.sleep(1)
        check(shown(), "the contained workload's series vanished after a sweep")
        records = status_records(sock)
        listed = [r for r in records if r[0] == "process" and int(r[1]) == host_pid]
        connections = [r for r in records if r[0] == "connection" and int(r[1]) == host_pid]
        check(listed and listed[0][7] == "1" and len(connections) == 1,
              f"STATUS does not show the contained workload with its connection: {records}")
        log(f"file kept through {deadline_rounds} s of sweeps; STATUS lists it")

        open(stop_file, "w").close()
        unshare.wait(30)
        wait_for(lambda: not os.path.exists(os.path.join(metrics_dir, name)),
                 SWEEP_SECONDS + 10, f"the sweep to remove {name} after the workload exited")
        log("removed by the sweep once the workload exited")


if __name__ == "__main__":
    main(test)
