"""A Go HTTP server and client, which make their system calls themselves (no libc, no preload),
meshed by the supervisor.

supervised_http.go is built with Debian's Go at test time. Under `meshtls supervise`, the Go
server answers curl meshed by the preload, and the Go client fetches from Python's http.server
meshed by the preload; a recording relay between them sees TLS 1.3 records only, the supervisor
logs the peer's SPIFFE ID, and a plaintext client is refused by the supervised Go server. Go's
runtime (threads, non-blocking connect with EINPROGRESS and SO_ERROR, getsockname after
listen, epoll, a dual-stack IPv6 listener) runs unmodified.
"""

import os

from harness import (PYTHON, Mesh, Relay, assert_plaintext_refused, assert_relay_tls13, check,
                     free_port, http_client, main, port_listening, random_token, wait_for)
from supervisor_common import (build_go_program, identity_rules, peer_id_logged, supervised,
                               wait_output)

GO_ID = "spiffe://meshtls.local/test/go-program"

DIRECT_GET = """
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
print("local port", c.getsockname()[1], flush=True)
c.sendall(b"GET /who HTTP/1.0\\r\\nHost: go\\r\\n\\r\\n")
print(c.recv(4096))
"""

GET_OVER_IPV6 = """
import socket, sys
c = socket.create_connection(("::1", int(sys.argv[1])), timeout=20)
c.sendall(b"GET /over-ipv6 HTTP/1.0\\r\\nHost: go\\r\\n\\r\\n")
data = b""
while True:
    chunk = c.recv(65536)
    if not chunk:
        break
    data += chunk
print(data.decode())
"""


def go_server(mesh, program):
    port = free_port()
    token = f"GO-SERVER-TOKEN-{random_token()}"
    # ":PORT": Go listens on a dual-stack IPv6 socket, for IPv4 and IPv6 clients alike.
    server = supervised(mesh, "go-server", [program, "server", f":{port}", token])
    wait_output(server, "listening on")
    check(f"listening on [::]:{port}" in server.stdout().decode(),
          f"Go's listener address (getsockname) is not the one it asked for: {server.stdout()!r}")
    v6 = mesh.meshed("client-v6", [PYTHON, "-c", GET_OVER_IPV6, str(port)])
    check(v6.wait(30) == 0 and f"hello {token} from go, path /over-ipv6".encode() in v6.stdout(),
          f"meshed client over IPv6: {v6.stdout()!r}\n{v6.stderr()[-2000:]}")
    wait_output(server, "served /over-ipv6 from [::1]:")
    print("Go server: dual-stack listener, a meshed IPv6 client answered")
    relay = Relay(port)
    for i in range(2):
        client = mesh.meshed(f"curl-{i}", http_client(f"http://127.0.0.1:{relay.port}/item-{i}"))
        status = client.wait(30)
        out = client.stdout().decode(errors="replace")
        check(status == 0 and f"hello {token} from go, path /item-{i}" in out,
              f"meshed curl {i}: {status} {out!r}\n{client.stderr()[-2000:]}")
    direct = mesh.meshed("py-direct", [PYTHON, "-c", DIRECT_GET, str(port)])
    check(direct.wait(30) == 0, f"direct client failed:\n{direct.stderr()[-2000:]}")
    local_port = direct.stdout().decode().split("local port ")[1].split()[0]
    wait_output(server, f"served /who from 127.0.0.1:{local_port}")
    print(f"Go server: r.RemoteAddr is the client's own address (:{local_port})")
    peer = peer_id_logged(server, "inbound")
    check(peer is not None and f"relayed to the program (mtls, peer {peer})" in server.stderr(),
          f"the supervisor logged no client identity:\n{server.stderr()}")
    count = assert_relay_tls13(relay, [token.encode(), b"/item-"], 2)
    print(f"Go server: meshed curl answered, peer {peer}; wire: {count} connections, TLS 1.3")
    # The clients saw the Go program's own identity, not the supervisor's.
    check(peer_id_logged(direct, "outbound") == GO_ID,
          f"the client did not see the Go program's identity:\n{direct.stderr()[-2000:]}")
    print(f"Go server: its clients saw the Go program's identity, {GO_ID}")
    # The dual-stack listener sees the IPv4 client as IPv4-mapped.
    assert_plaintext_refused(port, server, b"GET /plain HTTP/1.0\r\n\r\n",
                             "refused inbound connection from [::ffff:127.0.0.1]")
    check(b"/plain" not in server.stdout(), "the plaintext request reached the Go server")
    print("Go server: a plaintext client is refused before Go sees a byte")


def go_client(mesh, program):
    token = f"GO-CLIENT-TOKEN-{random_token()}"
    directory = os.path.join(mesh.dir, "www")
    os.mkdir(directory)
    with open(os.path.join(directory, "index.txt"), "w") as f:
        f.write(token)
    port = free_port()
    mesh.http_server("py-http", port, directory)
    wait_for(lambda: port_listening(port), 20, "the Python server to listen")
    relay = Relay(port)
    for i in range(2):
        client = supervised(mesh, f"go-client-{i}",
                            [program, "client", f"http://127.0.0.1:{relay.port}/index.txt"])
        status = client.wait(40)
        out = client.stdout().decode(errors="replace")
        check(status == 0 and "status 200" in out and f"answer: {token}" in out,
              f"Go client {i}: {status} {out!r}\n{client.stderr()[-3000:]}")
        peer = peer_id_logged(client, "outbound")
        check(peer is not None and
              f"connected to 127.0.0.1:{relay.port} (mtls, peer {peer})" in client.stderr(),
              f"Go client {i}: the supervisor logged no server identity:\n{client.stderr()}")
    # Many connections at once, from goroutines on several threads: each connect its own
    # notification, handshake and relay.
    many = supervised(mesh, "go-clients", [program, "clients",
                                          f"http://127.0.0.1:{relay.port}/index.txt", "24"])
    check(many.wait(60) == 0, f"Go clients failed:\n{many.stderr()[-3000:]}")
    out = many.stdout().decode(errors="replace")
    check(f"concurrent: 24 of 24 answered 200 {token}" in out,
          f"concurrent Go clients: {out}\n{many.stderr()[-3000:]}")
    count = assert_relay_tls13(relay, [token.encode(), b"index.txt"], 26)
    server = next(p for p in mesh.processes if p.name == "py-http")
    check(peer_id_logged(server, "inbound") == GO_ID and
          "test/supervisor-itself" not in server.stderr(),
          f"the server did not see the Go client's identity:\n{server.stderr()[-2000:]}")
    print(f"Go client: fetched through mTLS, peer {peer}, 24 connections at once too; wire: "
          f"{count} connections, TLS 1.3")


def test():
    program = build_go_program()
    with Mesh("supervisor-go") as mesh:
        mesh.start_agent(config=identity_rules([(program, "test/go-program")]))
        go_server(mesh, program)
        go_client(mesh, program)


if __name__ == "__main__":
    main(test)
