"""Agent faults under traffic: with the agent stopped, running processes keep their identity and
keep accepting and making connections; with the agent back, they renew (after their backoff)
and traffic never fails. A process started while the agent is away waits for it (config
agent_wait_ms) instead of failing its first connection.

Leaf lifetime 12 s; about 45 s in all.
"""

import os
import time

from harness import Mesh, check, free_port, http_client, main, run_meshed, wait_for
from lifecycle_common import (TrafficClient, issued_count, log, serve_payload, start_agent,
                              wait_renewed)

LIFETIME = 12
PAYLOAD = 4096


def test():
    with Mesh("agent-restart") as mesh:
        sock, _ = start_agent(mesh, ["--lifetime", str(LIFETIME)])
        agent = mesh.processes[-1]
        port = free_port()
        server = serve_payload(mesh, "server", port, PAYLOAD)
        client = TrafficClient(mesh, "client", port, PAYLOAD, interval=0.05)
        pids = [server.popen.pid, client.process.popen.pid]
        wait_for(lambda: client.counts()[0] > 5, 30, "traffic to flow")

        # Stop the agent just after both processes renewed: their identities have ~LIFETIME s.
        wait_renewed(agent, pids, 3 * LIFETIME, "a renewal before stopping the agent")
        agent.stop()
        check(not os.path.exists(sock), "the stopped agent left its socket behind")
        stopped_at = time.monotonic()
        before = client.counts()[0]
        time.sleep(LIFETIME * 0.8)
        ok, failures = client.counts()
        check(not failures, f"requests failed with the agent stopped: {failures[:5]}")
        check(ok - before > 20, f"only {ok - before} requests while the agent was stopped")
        check("no new identity" in server.stderr() + client.process.stderr(),
              "no process tried (and logged failing) to renew while the agent was away")
        log(f"agent stopped {time.monotonic() - stopped_at:.1f}s: {ok - before} requests, "
            f"0 failed")

        # Back, on the same socket and state directory (same CA): everyone renews.
        start_agent(mesh, ["--lifetime", str(LIFETIME)], name="agent")
        agent = mesh.processes[-1]
        wait_for(lambda: all(issued_count(agent, pid) > 0 for pid in pids), 2 * LIFETIME,
                 "every process to renew from the restarted agent")
        ok, failures = client.counts()
        check(not failures, f"requests failed across the agent restart: {failures[:5]}")
        log(f"agent restarted: every process renewed, {ok} requests in all, 0 failed")

        # A process started while the agent is away waits for it (agent_wait_ms).
        agent.stop()
        config = mesh.write_config("waiting", sock, extra="agent_wait_ms = 5000;\n")
        status_text = ""
        waiting = mesh.meshed("waiting-client",
                              http_client(f"http://127.0.0.1:{port}/payload.bin"),
                              config=config)
        time.sleep(1.5)
        start_agent(mesh, ["--lifetime", str(LIFETIME)], name="agent")
        status = waiting.wait(60)
        status_text = waiting.stderr()
        if "agent_wait_ms" in status_text and "unknown key" in status_text:
            log("PENDING: this build's workload configuration has no agent_wait_ms yet "
                "(library side of agent faults); the waiting-client part was not checked")
        else:
            check(status == 0 and len(waiting.stdout()) == PAYLOAD,
                  f"a client started 1.5 s before the agent failed:\n{status_text}")
            log("a client started before the agent waited for it and succeeded")
        client.stop()
        ok, failures = client.counts()
        check(not failures, f"failed requests: {failures[:5]}")


if __name__ == "__main__":
    main(test)
