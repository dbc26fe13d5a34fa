"""A resumption ticket never carries another client's identity.

A meshed server (examples-style, linked with libmeshtls directly) listens on two ports: one
admits any peer of the trust domain, the other only spiffe://…/ns/x. It answers every client
with the SPIFFE ID it took the client to be (meshtls_peer_id), and logs the same ID. The client
is tests/integration/ticket_client.c, a TLS 1.3 client on wolfSSL alone that holds three
certificates signed by the agent's CA (ns/x, ns/b, ns/c) and can offer any ticket it has
received inside any session's state: what a client that copied another's ticket off the wire
(it travels in clear in the ClientHello) can do. Such a ticket fails the server's ticket-age
check, so the server falls back to a full handshake with the offerer's own certificate.

1. The attack, step by step: x gets a ticket; b offers x's ticket (wrong age) with its own
   certificate, completes a full handshake, and gets a ticket; b resumes with that ticket on the
   port that admits only ns/x. The server must never take b for x: the resumed connection is
   b's (and refused by the allow list), and no line of the server names x for it.
2. The property, over a seeded random sequence of (certificate, offered ticket and the state it
   is offered in, port): every identity the server reports is the certificate's owner after a
   full handshake, or, after a resumption, the identity of the full handshake that minted the
   ticket the connection actually resumed with (followed through chains of resumptions); the
   ns/x-only port never serves anyone else; the server's log names the same identity for every
   connection it served. MESHTLS_TEST_SEED sets the seed (printed on failure).
"""

import os
import random
import time

from attack_peers import TicketClient
from harness import (BUILD, SYSTEM_WOLFSSL, Mesh, base_env, check, free_port, main,
                     port_listening, wait_for)
from lifecycle_common import Pki

CLIENT = os.path.join(BUILD, "tests", "integration", "ticket_client")
SERVER = os.path.join(BUILD, "tests", "integration", "peer_id_server")
TD = "meshtls.local"
NAMES = ("x", "b", "c")
STEPS = 90


def spiffe(name):
    return f"spiffe://{TD}/ns/{name}"


def served_lines(server, port):
    return [line for line in server.stderr().splitlines()
            if "mtls inbound" in line and f"on :{port}:" in line]


def attack(client, server, anyone, only_x):
    """Section 1: the ticket rebinding attack, step by step."""
    x = client.connect(anyone, 0)
    check(x["ok"] and x["ticket"] and x["reply"] == spiffe("x"), f"x's full handshake: {x}")
    b = client.connect(anyone, 1)
    check(b["ok"] and b["ticket"] and b["reply"] == spiffe("b"), f"b's full handshake: {b}")
    # b offers x's ticket inside its own session state: the age is wrong, the PSK is skipped.
    stolen = client.connect(anyone, 1, "0:1")
    check(stolen["ok"] and not stolen["resumed"] and stolen["reply"] == spiffe("b"),
          f"b offering x's ticket must get a full handshake as b: {stolen}")
    check(stolen["ticket"], f"the server sent b no ticket after its full handshake: {stolen}")
    before = len(served_lines(server, only_x))
    rebound = client.connect(only_x, 1, "2")
    check(not (rebound["ok"] and rebound["reply"] == spiffe("x")),
          f"b was taken for x on the ns/x-only port with the ticket of its own full handshake: "
          f"{rebound}\n" + "\n".join(served_lines(server, only_x)))
    check(not rebound["ok"], f"b was served on the ns/x-only port: {rebound}")
    time.sleep(0.2)
    check(len(served_lines(server, only_x)) == before,
          "the server logged a connection served on the ns/x-only port:\n" +
          "\n".join(served_lines(server, only_x)))
    # The same ticket, where b is admitted, resumes as b.
    again = client.connect(anyone, 1, "2")
    check(again["ok"] and again["resumed"] and again["reply"] == spiffe("b"),
          f"b's own ticket must resume as b: {again}")
    # b's own ticket for psk_ke alone: a resumption without a fresh key share (no forward
    # secrecy, no post-quantum share) is refused; Debian's 5.5.4 cannot refuse it.
    bare = client.connect(anyone, 1, "2!")
    if SYSTEM_WOLFSSL:
        check(bare["ok"] and bare["reply"] == spiffe("b"), f"psk_ke with 5.5.4: {bare}")
    else:
        check(not bare["ok"] and not bare["resumed"],
              f"a resumption without a fresh key share was accepted: {bare}")
    print("ticket rebinding: b offering x's ticket gets a full handshake and a ticket of its own; "
          + ("psk_ke alone is accepted by 5.5.4" if SYSTEM_WOLFSSL else
             "a resumption without a fresh key share is refused"))


def prove_property(client, server, anyone, only_x, seed, start):
    """Section 2: random sequences against the model of who minted each ticket."""
    rng = random.Random(seed)
    minted = {}  # connection index → identity the ticket it brought binds
    identities = {}  # connection index → certificate index used
    served = {anyone: [], only_x: []}
    for step in range(STEPS):
        index = start + step
        identity = rng.randrange(len(NAMES))
        port = rng.choice((anyone, anyone, only_x))
        holders = sorted(minted)
        offer, ticket_from = "-", None
        kind = rng.random()
        if holders and kind < 0.45:
            ticket_from = rng.choice(holders)
            offer = str(ticket_from)
        elif len(holders) > 1 and kind < 0.8:
            ticket_from, state_from = rng.sample(holders, 2)
            offer = f"{ticket_from}:{state_from}"
        result = client.connect(port, identity, offer)
        identities[index] = identity
        where = f"seed {seed}, connection {index} (identity {NAMES[identity]}, offer {offer}, " \
                f"port {'ns/x only' if port == only_x else 'any'}): {result}"
        if result["resumed"]:
            check(ticket_from is not None, f"resumed with nothing offered; {where}")
            expected = minted[ticket_from]
        else:
            expected = spiffe(NAMES[identity])
        if result["ok"]:
            check(result["reply"] == expected,
                  f"the server reported {result['reply']}, expected {expected}; {where}")
            check(port != only_x or expected == spiffe("x"),
                  f"the ns/x-only port served {expected}; {where}")
            served[port].append(expected)
            if result["ticket"]:
                minted[index] = expected
        else:
            check(not (port == anyone and offer == "-"),
                  f"a full handshake with a valid certificate failed; {where}")
    return served


def test():
    with Mesh("ticket-binding") as mesh:
        sock = mesh.start_agent()
        pki = Pki(os.path.join(mesh.dir, "pki"))
        state = os.path.join(mesh.dir, "agent-state")
        pki.adopt("agentca", os.path.join(state, "ca.crt"), os.path.join(state, "ca.key"))
        anyone, only_x = free_port(), free_port()
        config = os.path.join(mesh.dir, "server.conf")
        with open(config, "w") as f:
            f.write(f'agent_socket = "{sock}";\nlog_level = "info";\n'
                    f'inbound = {{ loopback = "strict"; rules = ('
                    f'{{ port = {only_x}; mode = "strict"; allow = ["{spiffe("x")}"]; }}); }};\n')
        env = base_env()
        env["MESHTLS_CONFIG"] = config
        server = mesh.spawn("peer_id_server", [SERVER, str(anyone), str(only_x)], env=env)
        wait_for(lambda: (port_listening(anyone) and port_listening(only_x)) or
                 server.popen.poll() is not None, 20, "the server to listen")
        check(server.popen.poll() is None, f"the server exited:\n{server.stderr()}")

        client = TicketClient(CLIENT, pki.path("agentca.crt"),
                              [(pki.leaf(name, "agentca", [f"URI:{spiffe(name)}"]),
                                pki.path(name + ".key")) for name in NAMES])
        try:
            attack(client, server, anyone, only_x)
            seed = int(os.environ.get("MESHTLS_TEST_SEED", "0") or 0) or 20261207
            lines_before = {port: len(served_lines(server, port)) for port in (anyone, only_x)}
            served = prove_property(client, server, anyone, only_x, seed, client.count)
        finally:
            client.close()
        # Every connection served is logged with the identity the server reported.
        for port, identities in served.items():
            def logged():
                return len(served_lines(server, port)) - lines_before[port] >= len(identities)
            wait_for(logged, 10, f"the server's lines for :{port}")
            lines = served_lines(server, port)[lines_before[port]:]
            named = [line.split(": peer ", 1)[1].split(",", 1)[0] for line in lines]
            check(named == identities, f"the server's log on :{port} names {named}, "
                                       f"it reported {identities} (seed {seed})")
        resumed = sum(line.endswith(", resumed") for line in server.stderr().splitlines())
        check(resumed >= 5, f"only {resumed} connections resumed: the sequence proves little")
        print(f"{STEPS} random connections (seed {seed}): every reported identity is the "
              f"certificate's, or the minter's of the ticket resumed ({resumed} resumed)")


if __name__ == "__main__":
    main(test)
