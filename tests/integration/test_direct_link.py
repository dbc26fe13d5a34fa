"""The direct-link API: a C echo server and client linked with libmeshtls (no preload, no
`meshtls run`) talk mutual TLS 1.3 with agent-issued identities; each names the other's SPIFFE
ID, the echo is exact, the relay between them sees TLS records only, and a plaintext client is
refused by the server with meshtls_last_error() saying why."""

import os
import socket

from harness import BUILD, Mesh, Relay, assert_tls13_wire, base_env, check, free_port, main, wait_for

SERVER = os.path.join(BUILD, "examples", "echo_server")
CLIENT = os.path.join(BUILD, "examples", "echo_client")


def test():
    with Mesh("direct-link") as mesh:
        mesh.start_agent()
        env = base_env()
        env["MESHTLS_CONFIG"] = mesh.configs["agent"]
        port = free_port()
        server = mesh.spawn("echo_server", [SERVER, str(port)], env=env)
        wait_for(lambda: b"listening" in server.stdout() or server.popen.poll() is not None, 20,
                 "the echo server")
        check(server.popen.poll() is None, f"echo server exited:\n{server.stderr()}")
        relay = Relay(port)
        message = "direct-link secret 8f3a"
        client = mesh.spawn("echo_client", [CLIENT, str(relay.port), message], env=env)
        check(client.wait(30) == 0, f"echo client failed:\n{client.stderr()}")
        relay.stop()
        lines = client.stdout().decode().splitlines()
        identity = f"spiffe://meshtls.local/uid/{os.getuid()}"
        check(lines == [f"server {identity}", f"echo {message}"], f"client printed {lines}")
        wait_for(lambda: f"client {identity}".encode() in server.stdout(), 10,
                 "the server to name the client")
        assert_tls13_wire(relay.client_bytes[0], relay.server_bytes[0], [message.encode()])

        with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
            plain.sendall(b"hello in clear\n")
            plain.settimeout(10)
            check(plain.recv(100) == b"", "a plaintext client got an answer")
        wait_for(lambda: "peer did not speak TLS" in server.stderr(), 10,
                 "the server's meshtls_last_error() for the plaintext client")
        print("direct-linked echo over mTLS; plaintext refused with the reason")


if __name__ == "__main__":
    main(test)
