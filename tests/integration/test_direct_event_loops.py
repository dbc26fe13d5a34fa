"""The direct-link API in real event loops: examples/echo_server_libevent (libevent, edge-
triggered) and examples/echo_client_libuv (libuv poll handle), both linked with libmeshtls (no
preload), each against a peer under the preload (`meshtls run`), through a relay that sees TLS 1.3
records only.

- The libevent server echoes a preloaded Python client's 256 KiB exactly (many records per read
  event: a loop that does not drain them stalls) and names the client's SPIFFE ID; a plaintext
  client is refused, and the server's meshtls_last_error() says why.
- The libuv client, pinned to the server's SPIFFE ID (meshtls_connect_pinned), gets its echo from
  a preloaded Python server and names it; pinned to another ID, it is refused with both named.
- With the agent not up yet (and agent_wait_ms long), the libuv client's first connect returns
  EAGAIN at once instead of waiting for the agent, and the loop carries on until the agent comes.
"""

import os
import socket

from harness import (BUILD, PYTHON, Mesh, Relay, assert_relay_tls13, base_env, check, free_port,
                     main, port_listening, wait_for)

SERVER = os.path.join(BUILD, "examples", "echo_server_libevent")
CLIENT = os.path.join(BUILD, "examples", "echo_client_libuv")

ECHO_SERVER = """
import socket, sys, threading
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen(16)
def serve(connection):
    with connection:
        while True:
            data = connection.recv(65536)
            if not data:
                break
            connection.sendall(data)
while True:
    connection, _ = listener.accept()
    threading.Thread(target=serve, args=(connection,), daemon=True).start()
"""

ECHO_CLIENT = """
import socket, sys, threading
port, size, marker = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode()
payload = (marker * (size // len(marker) + 1))[:size]
connection = socket.create_connection(("127.0.0.1", port), timeout=30)
def send():
    connection.sendall(payload)
    connection.shutdown(socket.SHUT_WR)
sender = threading.Thread(target=send)
sender.start()
echo = bytearray()
while True:
    data = connection.recv(65536)
    if not data:
        break
    echo += data
sender.join()
print("echo exact" if echo == payload else f"echo differs: {len(echo)} of {len(payload)} bytes")
"""


def libevent_server(mesh, env, identity):
    port = free_port()
    server = mesh.spawn("libevent server", [SERVER, str(port)], env=env)
    wait_for(lambda: b"listening" in server.stdout() or server.popen.poll() is not None, 20,
             "the libevent server")
    check(server.popen.poll() is None, f"libevent server exited:\n{server.stderr()}")

    relay = Relay(port)
    marker = "libevent-secret-51c2"
    client = mesh.meshed("preloaded client", [PYTHON, "-c", ECHO_CLIENT, str(relay.port),
                                              str(256 * 1024), marker])
    check(client.wait(60) == 0, f"preloaded client failed:\n{client.stderr()}")
    check(client.stdout().decode().strip() == "echo exact",
          f"preloaded client says {client.stdout()!r}")
    wait_for(lambda: f"client {identity}".encode() in server.stdout(), 10,
             "the libevent server to name its client")
    assert_relay_tls13(relay, [marker.encode()], expected_connections=1)

    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        plain.sendall(b"hello in clear\n")
        try:
            answer = plain.recv(100)
        except ConnectionResetError:
            answer = b""
    check(answer == b"", f"a plaintext client got an answer: {answer!r}")
    wait_for(lambda: "refused:" in server.stderr() and "peer did not speak TLS" in server.stderr(),
             10, "the libevent server's meshtls_last_error() for the plaintext client")
    check(server.popen.poll() is None, f"libevent server exited:\n{server.stderr()}")


def preloaded_server(mesh, name, agent="agent"):
    port = free_port()
    server = mesh.meshed(name, [PYTHON, "-c", ECHO_SERVER, str(port)], agent=agent)
    wait_for(lambda: port_listening(port) or server.popen.poll() is not None, 20,
             f"{name} to listen")
    check(server.popen.poll() is None, f"{name} exited:\n{server.stderr()}")
    return port


def libuv_client(mesh, env, identity):
    port = preloaded_server(mesh, "preloaded server")
    relay = Relay(port)
    message = "libuv-secret-0d7e"
    client = mesh.spawn("libuv client", [CLIENT, str(relay.port), message, identity], env=env)
    check(client.wait(30) == 0, f"libuv client failed:\n{client.stderr()}")
    lines = [line for line in client.stdout().decode().splitlines()
             if line != "waiting for the identity"]
    check(lines == [f"server {identity}", f"echo {message}"], f"libuv client printed {lines}")
    assert_relay_tls13(relay, [message.encode()], expected_connections=1)

    other = "spiffe://meshtls.local/someone/else"
    pinned = mesh.spawn("pinned client", [CLIENT, str(port), message, other], env=env)
    check(pinned.wait(30) == 1, f"a client pinned to {other} was not refused:\n{pinned.stdout()}")
    check(f"{identity} does not match {other} expected by the caller" in pinned.stderr(),
          f"the pinned client does not say why:\n{pinned.stderr()}")
    check(b"echo" not in pinned.stdout(), "the pinned client got an echo")


def agent_late(mesh):
    """The client starts before the agent: its connect must not wait for it."""
    sock = os.path.join(mesh.dir, "late.sock")
    config = mesh.write_config("late", sock, extra="agent_wait_ms = 60000;\n")
    port = preloaded_server(mesh, "late server", agent="late")
    env = base_env()
    env["MESHTLS_CONFIG"] = config
    client = mesh.spawn("late client", [CLIENT, str(port), "after the agent"], env=env)
    wait_for(lambda: b"waiting for the identity" in client.stdout() or
             client.popen.poll() is not None, 5,
             "the libuv client's connect to return EAGAIN while the agent is not up")
    check(client.popen.poll() is None, f"libuv client exited:\n{client.stderr()}")
    mesh.start_agent("late")
    check(client.wait(30) == 0, f"libuv client failed once the agent was up:\n{client.stderr()}")
    check(client.stdout().decode().splitlines()[-1] == "echo after the agent",
          f"libuv client printed {client.stdout()!r}")


def test():
    with Mesh("direct-event-loops") as mesh:
        mesh.start_agent()
        env = base_env()
        env["MESHTLS_CONFIG"] = mesh.configs["agent"]
        identity = f"spiffe://meshtls.local/uid/{os.getuid()}"
        libevent_server(mesh, env, identity)
        libuv_client(mesh, env, identity)
        agent_late(mesh)
        print("libevent server and libuv client over mTLS 1.3 with preloaded peers; plaintext "
              "and a wrong pinned identity refused; a connect before the agent does not wait")


if __name__ == "__main__":
    main(test)
