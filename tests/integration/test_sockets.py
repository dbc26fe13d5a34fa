"""Blocking-socket semantics under the preload, with plain Python peers that know nothing of TLS:
large transfers arrive intact in both directions, shutdown(SHUT_WR) reaches the peer as EOF
while the reply still flows back (half-close ↔ close_notify), and a server that speaks first is
heard by a client that sends nothing before reading. The wire carries only TLS records."""

import os

from harness import (PYTHON, Mesh, Relay, assert_tls13_wire, check, free_port, main, port_open,
                     wait_for)

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers.py")


def start(mesh, name, mode, port):
    server = mesh.meshed(name, [PYTHON, PEERS, mode, str(port)])
    wait_for(lambda: b"listening" in server.stdout() or server.popen.poll() is not None, 20,
             f"{name} to listen")
    check(server.popen.poll() is None, f"{name} exited:\n{server.stderr()}")
    return server


def test():
    with Mesh("sockets") as mesh:
        mesh.start_agent()

        port = free_port()
        start(mesh, "echo-server", "echo-server", port)
        relay = Relay(port)
        for size in (0, 1, 16384, 16385, 3 * 1024 * 1024 + 7):
            client = mesh.meshed(f"echo-client-{size}",
                                 [PYTHON, PEERS, "echo-client", str(relay.port), str(size)])
            status = client.wait(60)
            check(status == 0 and client.stdout().startswith(b"ok "),
                  f"echo of {size} bytes failed ({status}):\n{client.stderr()}")
        relay.stop()
        for up, down in zip(relay.client_bytes, relay.server_bytes):
            assert_tls13_wire(up, down, [b"echo mismatch"])
        check(len(relay.client_bytes) == 5, f"relay carried {len(relay.client_bytes)} connections")

        port = free_port()
        start(mesh, "greeter", "greeter", port)
        client = mesh.meshed("greet-client", [PYTHON, PEERS, "greet-client", str(port)])
        status = client.wait(30)
        lines = client.stdout().decode().splitlines()
        check(status == 0 and lines == ["220 greeter ready", "250 HELO meshtls"],
              f"server-speaks-first exchange failed ({status}): {lines}\n{client.stderr()}")
        # Non-blocking: EINPROGRESS, poll for POLLOUT, partial writes and EAGAIN while the
        # receiver is slow; every byte arrives, in order.
        port = free_port()
        start(mesh, "nb-sink", "nb-sink", port)
        size = 16 * 1024 * 1024 + 3
        source = mesh.meshed("nb-source", [PYTHON, PEERS, "nb-source", str(port), str(size)])
        status = source.wait(120)
        report = source.stdout().decode().strip()
        check(status == 0 and report.startswith("ok connect=Operation now in progress"),
              f"non-blocking transfer failed ({status}): {report}\n{source.stderr()}")
        counts = dict(item.split("=") for item in report.split()[1:] if "=" in item)
        check(int(counts["eagain"]) > 0 or int(counts["partial"]) > 0,
              f"the sender never saw a full socket buffer: {report}")
        print(f"non-blocking 16 MiB: {report}")
        print("bulk echo (0 B .. 3 MiB), half-close and server-speaks-first over mTLS")


if __name__ == "__main__":
    main(test)
