"""A forked child that closes what it inherited leaves its parent's epoll loop alone.

fork_close_server (an epoll line-echo server, the listener and its meshed connections in one
epoll instance) forks, on a client's request, a child that closes every descriptor it inherited
(one close() each, or close_range) and lives on for a while. A child's close must not remove the
parent's registrations from the epoll instance they share: while the child lives and after it
exited, the two connections open since before the fork still echo, and new meshed clients are
accepted and served. Run for level- and edge-triggered connections, with close and close_range;
the connection carried by a recording relay shows only TLS 1.3 records, and a plaintext client is
refused.

The client is this file run as `test_fork_close.py client PORT RELAY_PORT SECRET CHILD_MS`, a
plain Python socket under `meshtls run`."""

import os
import sys
import time

from harness import (BUILD, LineClient, Mesh, PYTHON, Relay, assert_plaintext_refused,
                     assert_relay_tls13, check, fail_client, free_port, main, random_token,
                     run_meshed, wait_for)

SERVER = os.path.join(BUILD, "tests", "integration", "fork_close_server")
CHILD_MS = 1500
NEW_CLIENTS = 3


def client(port, relay_port, secret, child_ms):
    """Prints "ok" once old and new connections were served during and after the child's life."""
    old = LineClient(port, "old")
    relayed = LineClient(relay_port, "relayed")
    old.echo(f"before {secret}")
    relayed.echo(f"before {secret}")
    answer = old.ask("fork")
    if not answer.startswith("forked "):
        fail_client(f"fork answered {answer!r}")
    # The child is closing its copies now and then lives on for child_ms.
    time.sleep(0.2)
    for phase in ("while the child lives", "after the child exited"):
        for i in range(NEW_CLIENTS):
            new = LineClient(port, f"new client {i} {phase}")
            new.echo(f"new {i} {secret}")
            new.socket.close()
        old.echo(f"old {phase} {secret}")
        relayed.echo(f"relayed {phase} {secret}")
        if phase == "while the child lives":
            time.sleep(child_ms / 1000 + 0.3)
    print(f"ok {answer}")


def one_run(trigger, closing):
    with Mesh(f"fork-close-{trigger}-{closing}") as mesh:
        mesh.start_agent()
        port = free_port()
        server = mesh.meshed("fork_close_server",
                             [SERVER, str(port), trigger, closing, str(CHILD_MS)])
        wait_for(lambda: b"listening" in server.stdout() or server.popen.poll() is not None, 20,
                 "fork_close_server to listen")
        check(server.popen.poll() is None, f"fork_close_server exited:\n{server.stderr()}")
        relay = Relay(port)
        secret = random_token(16)
        status, output, errors = run_meshed(
            mesh, "client",
            [PYTHON, os.path.abspath(__file__), "client", str(port), str(relay.port), secret,
             str(CHILD_MS)], 60)
        check(status == 0 and output.startswith("ok forked "),
              f"{trigger}/{closing}: the client failed ({status}):\n{output}{errors}\n"
              f"server:\n{server.stderr()[-3000:]}")
        child = output.split()[2]
        wait_for(lambda: f"child {child} exited 0".encode() in server.stdout(), 10,
                 "the child to exit cleanly")
        assert_relay_tls13(relay, [secret.encode()], expected_connections=1)
        assert_plaintext_refused(port, server, b"plain line\n")
        check(server.popen.poll() is None, f"fork_close_server died:\n{server.stderr()}")
        print(f"{trigger}-triggered, child used {closing}: old and new clients served "
              f"during and after the child; TLS 1.3 on the wire; plaintext refused")


def test():
    for trigger, closing in (("level", "close"), ("edge", "close"), ("level", "close_range"),
                             ("edge", "close_range")):
        one_run(trigger, closing)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "client":
        client(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
    else:
        main(test)
