"""Issuer from files: the agent signs with an intermediate CA from a cert-manager-style secret
(tls.crt, tls.key, ca.crt), serves the chain [leaf, intermediate] and the bundle ca.crt, refuses
to start on a bad issuer, reloads a changed secret, and keeps the old issuer on a bad reload.

Two meshed programs (python http.server and curl) talk mTLS with leaves from the intermediate,
so the verify side is checked end to end with a chain that is not a single self-signed root.
"""

import os
import time

from harness import Mesh, check, free_port, http_client, main, run_meshed, wait_for
from lifecycle_common import Pki, log, run_agent_to_exit, serve_payload, start_agent

PAYLOAD = 20000


def fetch(mesh, name, port):
    status, out, err = run_meshed(mesh, name, http_client(f"http://127.0.0.1:{port}/payload.bin"),
                                  timeout=60)
    return status, out, err


def test():
    with Mesh("issuer-files") as mesh:
        pki = Pki(os.path.join(mesh.dir, "pki"))
        pki.root("rootA")
        pki.intermediate("intA", "rootA")
        pki.intermediate("intA2", "rootA")
        pki.intermediate("expired", "rootA", start="20200101000000Z", end="20210101000000Z")
        pki.sign("notca", "rootA", "leaf")

        # Refusals at start-up, each with a message that says what is wrong.
        for label, issuer, key, expected in (
                ("mismatched key", "intA", "intA2", "their public keys differ"),
                ("expired issuer", "expired", None, "expired"),
                ("not a CA", "notca", None, "not an X.509-SVID signing certificate: not marked CA")):
            secret = pki.secret(os.path.join(mesh.dir, f"bad-{label.replace(' ', '-')}"), issuer,
                                ["rootA"], key=key)
            status, stderr = run_agent_to_exit(["--issuer-dir", secret], mesh.dir)
            check(status != 0 and expected in stderr,
                  f"{label}: agent did not refuse with '{expected}': status {status}, {stderr!r}")
            log(f"refused {label}: {stderr.strip().splitlines()[-1]}")

        secret = pki.secret(os.path.join(mesh.dir, "secret"), "intA", ["rootA"])
        start_agent(mesh, ["--issuer-dir", secret, "--lifetime", "3600"])
        agent = mesh.processes[-1]
        check("intermediate(s) sent, 1 trust anchor(s)" in agent.stderr(),
              f"agent did not report its issuer:\n{agent.stderr()}")

        port = free_port()
        serve_payload(mesh, "server", port, PAYLOAD)
        status, out, err = fetch(mesh, "client1", port)
        check(status == 0 and len(out) == PAYLOAD,
              f"meshed fetch with an intermediate issuer failed ({status}, {len(out)} bytes):\n{err}")

        # A new secret from the same root: reloaded, and new identities come from it.
        pki.secret(secret, "intA2", ["rootA"])
        wait_for(lambda: "reloaded: issuer" in agent.stderr(), 15, "the agent to reload")
        status, out, err = fetch(mesh, "client2", port)
        check(status == 0 and len(out) == PAYLOAD, f"fetch after reload failed:\n{err}")

        # A broken secret (key of another certificate): refused, the previous issuer kept.
        pki.secret(secret, "intA", ["rootA"], key="intA2")
        wait_for(lambda: "were not loaded" in agent.stderr(), 15, "the agent to refuse a reload")
        check("their public keys differ" in agent.stderr(), "bad reload not explained")
        status, out, err = fetch(mesh, "client3", port)
        check(status == 0 and len(out) == PAYLOAD, f"fetch after a refused reload failed:\n{err}")
        check(agent.popen.poll() is None, "agent exited on a bad reload")


if __name__ == "__main__":
    main(test)
