"""Trust rotation with traffic running: add the new root to the bundle, switch the issuer to the
new intermediate, remove the old root, with zero failed requests across the whole sequence.

Operator sequence (README):
  1. Add the new root B to the bundle (--extra-anchors file or trust_anchors, or ca.crt holding
     both roots). Wait at least one leaf lifetime: every workload renews and trusts A and B.
  2. Make sure the old root A stays in the bundle (put it in the extra-anchors file if the new
     secret's ca.crt will not hold it), then switch the issuer (tls.crt/tls.key/ca.crt of B's
     intermediate). Wait at least one leaf lifetime: every leaf is now issued under B.
  3. Remove A from the extra anchors. After one more lifetime no workload trusts A.
Workloads pick up a bundle when they renew (lazily, at 70 % of the lifetime), hence the waits;
here the test waits until the agent has actually issued a new SVID to every process.

Leaf lifetime 6 s; the whole test takes about a minute.
"""

import os

from harness import Mesh, check, free_port, http_client, main, run_meshed, wait_for
from lifecycle_common import (Pki, TrafficClient, log, serve_payload, start_agent, wait_renewed)

LIFETIME = 6
PAYLOAD = 4096


def test():
    with Mesh("trust-rotation") as mesh:
        pki = Pki(os.path.join(mesh.dir, "pki"))
        for root in ("rootA", "rootB"):
            pki.root(root)
        pki.intermediate("intA", "rootA")
        pki.intermediate("intB", "rootB")
        secret = pki.secret(os.path.join(mesh.dir, "secret"), "intA", ["rootA"])
        extra = pki.bundle(os.path.join(mesh.dir, "extra-anchors.pem"), [])

        start_agent(mesh, ["--issuer-dir", secret, "--extra-anchors", extra,
                           "--lifetime", str(LIFETIME)])
        agent = mesh.processes[-1]
        port = free_port()
        server = serve_payload(mesh, "server", port, PAYLOAD)
        clients = [TrafficClient(mesh, f"client{i}", port, PAYLOAD, interval=0.05)
                   for i in range(2)]
        pids = [server.popen.pid] + [c.process.popen.pid for c in clients]
        wait_for(lambda: all(c.counts()[0] > 5 for c in clients), 30, "traffic to flow")
        wait_renewed(agent, pids, 3 * LIFETIME, "a first renewal of every process")

        def step(what, change, anchors):
            reloads = agent.stderr().count("reloaded: issuer")
            change()
            wait_for(lambda: agent.stderr().count("reloaded: issuer") > reloads, 15,
                     f"the agent to reload after: {what}")
            check(f"{anchors} trust anchor(s)" in agent.stderr().splitlines()[-1]
                  or any(f"{anchors} trust anchor(s)" in line
                         for line in agent.stderr().splitlines()[-5:]),
                  f"after '{what}' the bundle does not hold {anchors} anchors")
            wait_renewed(agent, pids, 3 * LIFETIME, f"every process to renew after: {what}")
            ok, failures = zip(*(c.counts() for c in clients))
            check(not any(failures), f"failed requests after '{what}': {failures}")
            log(f"{what}: {sum(ok)} requests so far, none failed")

        step("1. add root B", lambda: pki.bundle(extra, ["rootB"]), 2)
        step("2a. keep root A as an extra anchor", lambda: pki.bundle(extra, ["rootA", "rootB"]),
             2)
        step("2b. switch the issuer to B", lambda: pki.secret(secret, "intB", ["rootB"]), 2)
        step("3. remove root A", lambda: pki.bundle(extra, []), 1)

        # Every identity in play now chains to B only: a fresh client, whose bundle is {B},
        # still reaches the long-running server.
        status, out, err = run_meshed(mesh, "fresh", http_client(
            f"http://127.0.0.1:{port}/payload.bin"), timeout=60)
        check(status == 0 and len(out) == PAYLOAD, f"a client trusting only B failed:\n{err}")
        for client in clients:
            client.stop()
        ok, failures = zip(*(c.counts() for c in clients))
        check(not any(failures), f"failed requests: {failures}")
        check(sum(ok) > 100, f"only {sum(ok)} requests made")
        log(f"trust rotation done: {sum(ok)} requests, 0 failed")


if __name__ == "__main__":
    main(test)
