"""Each handshake flight leaves in one send: wolfSSL writing message by message lets Nagle hold
the second small segment until the peer's delayed ACK (40 ms on Linux), so every handshake
stalled (p50 connection time 44 ms instead of 1.5 ms). Counted, not timed: the server's system
calls are traced and the sends of its handshake flight on the accepted socket counted."""

import os
import re

from harness import MESHTLS, PYTHON, Mesh, check, free_port, main, wait_for

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers.py")


def test():
    with Mesh("flights") as mesh:
        mesh.start_agent()
        port = free_port()
        trace = os.path.join(mesh.dir, "server.trace")
        server = mesh.spawn("greeter", ["strace", "-f", "-e", "trace=accept4,accept,sendto,write",
                                        "-o", trace, MESHTLS, "run", "--config",
                                        mesh.configs["agent"], "--", PYTHON, PEERS, "greeter",
                                        str(port)])
        wait_for(lambda: b"listening" in server.stdout(), 30, "the greeter to listen")
        client = mesh.meshed("client", [PYTHON, PEERS, "greet-client", str(port)])
        check(client.wait(30) == 0, f"client failed:\n{client.stderr()}")
        server.stop()
        with open(trace) as f:
            lines = f.read().splitlines()
        accepted = [re.search(r"= (\d+)$", line) for line in lines if "accept" in line]
        fd = next(m.group(1) for m in accepted if m)
        sends = [line for line in lines
                 if re.search(rf"(sendto|write)\({fd},", line) and "= -1" not in line]
        # The handshake flight, the greeting record (with the session ticket), the reply record.
        check(len(sends) >= 3, f"expected at least 3 sends on fd {fd}: {sends}")
        flight = sends[0]
        check("220 greeter" not in flight and re.search(r"= (\d+)$", flight) and
              int(re.search(r"= (\d+)$", flight).group(1)) > 500,
              f"the first send on fd {fd} is not the whole handshake flight: {flight[:160]}")
        # The server's NewSessionTicket follows the client's Finished; sent alone it would be
        # the small segment in flight that makes Nagle hold the greeting (and a wake-up without
        # data for the client). It leaves in the greeting's send: no send more than without it.
        check(len(sends) <= 4, f"the handshake went out in pieces ({len(sends)} sends): "
                               + "\n".join(s[:120] for s in sends))
        print(f"server handshake flight in one send of {flight.rsplit('= ', 1)[1]} bytes; "
              f"{len(sends)} sends in all on the connection")


if __name__ == "__main__":
    main(test)
