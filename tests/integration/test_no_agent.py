"""Without an agent there is no identity, and policy that says mTLS fails closed: an outbound
connection is refused before any byte leaves (the listener sees nothing), an inbound one is
refused on first use, and both log why, naming the agent socket."""

import os
import socket

from harness import PYTHON, Mesh, check, main, wait_for

CLIENT = ("import socket, sys\n"
          "try:\n"
          "    socket.create_connection(('127.0.0.1', {port}), timeout=5)\n"
          "except OSError as error:\n"
          "    print(type(error).__name__); sys.exit(3)\n")

SERVER = ("import socket\n"
          "listener = socket.create_server(('127.0.0.1', {port}))\n"
          "print('listening', flush=True)\n"
          "connection, _ = listener.accept()\n"
          "try:\n"
          "    connection.recv(100)\n"
          "    print('read plaintext')\n"
          "except OSError as error:\n"
          "    print(type(error).__name__)\n")


def test():
    with Mesh("no-agent") as mesh:
        sock = os.path.join(mesh.dir, "absent.sock")
        # No waiting for an agent that will never come (agent_wait_ms is tested with a restart).
        mesh.write_config("agent", sock, extra="agent_wait_ms = 0;\n")

        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(1)
        port = listener.getsockname()[1]
        client = mesh.meshed("client", [PYTHON, "-c", CLIENT.format(port=port)])
        status = client.wait(30)
        check(status == 3 and client.stdout().strip() == b"ConnectionRefusedError",
              f"connect without an identity did not fail closed ({status}): {client.stdout()!r}")
        check(f"refused outbound connection to 127.0.0.1:{port} (mode mtls): no workload "
              f"identity: agent at {sock}" in client.stderr(), f"no reason:\n{client.stderr()}")
        try:
            listener.accept()
            raise AssertionError("the listener saw a connection from a process without identity")
        except socket.timeout:
            pass
        listener.close()

        server = mesh.meshed("server", [PYTHON, "-c", SERVER.format(port=port)])
        wait_for(lambda: b"listening" in server.stdout(), 20, "the server to listen")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
            plain.sendall(b"GET / HTTP/1.0\r\n\r\n")
            server.wait(30)
        check(server.stdout().splitlines()[-1] == b"ConnectionResetError",
              f"the server without identity read from its client: {server.stdout()!r}")
        check(f"refused inbound connection from 127.0.0.1:" in server.stderr() and
              f"on :{port} (mode strict): no workload identity" in server.stderr(),
              f"no inbound reason:\n{server.stderr()}")
        print("no agent: outbound and inbound mTLS refused with the reason, nothing in clear")


if __name__ == "__main__":
    main(test)
