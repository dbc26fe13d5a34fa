"""Statically linked programs, which no preload can enter, meshed by the supervisor.

`meshtls supervise` runs a static C client and server (static_peer.c) against peers meshed by
the preload, in both directions; a recording relay between them sees TLS 1.3 records only, the
supervisor logs the peer's SPIFFE ID, and the programs see the addresses they asked for
(getpeername, getsockname). A plaintext client is refused by the supervised server. Blocking and
non-blocking connects. What the supervisor refuses: io_uring_setup (ENOSYS, logged) and TCP Fast
Open sends (EOPNOTSUPP), both of which would reach the network past connect(). A static shell
that forks and execs a static wget: the grandchild is meshed too. A permissive port lets a
plaintext client through in clear, as under the preload; a listener the program closes is
released. Killed with SIGKILL, the supervisor takes its program with it, and a descendant that
outlives it cannot connect at all (ENOSYS): nothing reaches the wire in clear.
"""

import os
import signal
import socket

from harness import (MESHTLS, PYTHON, Mesh, Relay, assert_plaintext_refused, assert_relay_tls13,
                     check, free_port, main, port_listening, random_token, wait_for)
from supervisor_common import (build_static_peer, identity_rules, nothing_accepted, peer_id_logged, process_gone,
                               program_pid, supervised, wait_output)

ECHO_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
print("listening", flush=True)
for _ in range(int(sys.argv[2])):
    c, address = s.accept()
    print("accepted from %s:%d" % address, flush=True)
    data = b""
    while True:
        chunk = c.recv(65536)
        if not chunk:
            break
        data += chunk
    c.sendall(b"py-echo:" + data)
    c.close()
"""

CLIENT = """
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
c.sendall(sys.argv[2].encode())
c.shutdown(socket.SHUT_WR)
data = b""
while True:
    chunk = c.recv(65536)
    if not chunk:
        break
    data += chunk
print("got", data.decode())
"""

CLIENT_SAYING_PORT = """
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
print("local port", c.getsockname()[1], flush=True)
c.sendall(b"direct")
c.shutdown(socket.SHUT_WR)
print("got", c.recv(1000))
"""


def outbound(mesh):
    port = free_port()
    server = mesh.meshed("py-server", [PYTHON, "-c", ECHO_SERVER, str(port), "3"])
    wait_output(server, "listening")
    relay = Relay(port)
    for how in ("blocking", "nonblocking"):
        secret = f"STATIC-CLIENT-SECRET-{how}-{random_token()}"
        client = supervised(mesh, f"static-client-{how}",
                            [STATIC_PEER, "client", "127.0.0.1", str(relay.port), secret, how])
        status = client.wait(30)
        out = client.stdout().decode(errors="replace")
        check(status == 0 and f"reply: py-echo:{secret}" in out,
              f"{how}: no echo ({status}):\n{out}\n{client.stderr()[-3000:]}")
        # getpeername answers the destination the program asked for, not the relay's loopback.
        check(f"peer 127.0.0.1:{relay.port}" in out, f"{how}: getpeername said:\n{out}")
        peer = peer_id_logged(client, "outbound")
        check(peer is not None and peer.startswith("spiffe://"),
              f"{how}: the supervisor logged no peer identity:\n{client.stderr()}")
        check(f"connected to 127.0.0.1:{relay.port} (mtls, peer {peer})" in client.stderr(),
              f"{how}: no supervisor line for the connection:\n{client.stderr()}")
        check(peer == "spiffe://meshtls.local/test/python", f"{how}: peer {peer}")
        print(f"static client ({how}): echo through mTLS, peer {peer}")
    # The server saw the program's identity, attested by the agent through the supervisor's
    # pidfd of it, not the supervisor's own.
    check(peer_id_logged(server, "inbound") == "spiffe://meshtls.local/test/static-peer" and
          "test/supervisor-itself" not in server.stderr(),
          f"the server did not see the static program's identity:\n{server.stderr()[-2000:]}")
    print("the meshed server saw the supervised program's own identity: "
          "spiffe://meshtls.local/test/static-peer")
    count = assert_relay_tls13(relay, [b"STATIC-CLIENT-SECRET", b"py-echo:"], 2)
    print(f"outbound wire: {count} connections, TLS 1.3 records only")
    # Straight to the server: getsockname gives the program the address the server sees.
    client = supervised(mesh, "static-client-direct",
                        [STATIC_PEER, "client", "127.0.0.1", str(port), "direct"])
    check(client.wait(30) == 0, f"direct client failed:\n{client.stderr()[-2000:]}")
    local = client.stdout().decode().split("local ")[1].split()[0]
    wait_output(server, f"accepted from {local}")
    print(f"static client: getsockname gives the connection's own address ({local})")


def outbound_refused(mesh):
    """A meshed destination that does not speak mTLS, or nobody listening: the program's connect
    fails with ECONNREFUSED, and none of its bytes leave."""
    with socket.socket() as plain:
        plain.bind(("127.0.0.1", 0))
        plain.listen(4)
        plain.settimeout(20)
        secret = f"NEVER-IN-CLEAR-{random_token()}"
        client = supervised(mesh, "static-client-refused",
                            [STATIC_PEER, "client", "127.0.0.1", str(plain.getsockname()[1]),
                             secret])
        connection, _ = plain.accept()
        connection.settimeout(5)
        hello = connection.recv(65536)
        connection.close()  # not TLS: the handshake fails
        client.wait(30)
        out = client.stdout().decode(errors="replace")
        check("connect failed: Connection refused" in out,
              f"a refused meshed connect did not fail with ECONNREFUSED: {out!r}\n"
              f"{client.stderr()[-2000:]}")
        check(hello[:1] == b"\x16" and secret.encode() not in hello,
              f"the plain server got {hello[:40]!r}, not a ClientHello")
    closed_port = free_port()
    client = supervised(mesh, "static-client-closed",
                        [STATIC_PEER, "client", "127.0.0.1", str(closed_port), "x"])
    client.wait(30)
    check(b"connect failed: Connection refused" in client.stdout(),
          f"connect to a closed port: {client.stdout()!r}")
    print("static client: a peer that is not mTLS and a closed port both give ECONNREFUSED; "
          "only a ClientHello left")


def inbound(mesh):
    port = free_port()
    server = supervised(mesh, "static-server", [STATIC_PEER, "server", str(port), "4"])
    wait_output(server, "listening on")
    # getsockname answers the address the program listened on.
    check(f"listening on 127.0.0.1:{port}" in server.stdout().decode(),
          f"getsockname said: {server.stdout()!r}")
    relay = Relay(port)
    for i in range(2):
        secret = f"STATIC-SERVER-SECRET-{i}-{random_token()}"
        client = mesh.meshed(f"py-client-{i}", [PYTHON, "-c", CLIENT, str(relay.port), secret])
        status = client.wait(30)
        out = client.stdout().decode(errors="replace")
        check(status == 0 and f"got echo:{secret}" in out,
              f"meshed client {i}: no echo ({status}):\n{out}\n{client.stderr()[-2000:]}")
    # A client straight to the server: accept and getpeername give the program the client's
    # real address, not the relay's.
    direct = mesh.meshed("py-client-direct", [PYTHON, "-c", CLIENT_SAYING_PORT, str(port)])
    check(direct.wait(30) == 0, f"direct client failed:\n{direct.stderr()[-2000:]}")
    local_port = direct.stdout().decode().split("local port ")[1].split()[0]
    out = server.stdout().decode()
    check(f"accepted from 127.0.0.1:{local_port}" in out and
          f"getpeername 127.0.0.1:{local_port}" in out,
          f"the program was not told the client's address (port {local_port}):\n{out}")
    print(f"static server: accept and getpeername give the client's own address (:{local_port})")
    peer = peer_id_logged(server, "inbound")
    check(peer is not None, f"the supervisor logged no client identity:\n{server.stderr()}")
    check(f"relayed to the program (mtls, peer {peer})" in server.stderr(),
          f"no relay line:\n{server.stderr()}")
    count = assert_relay_tls13(relay, [b"STATIC-SERVER-SECRET", b"echo:"], 2)
    print(f"static server: 2 meshed clients answered, peer {peer}; wire: {count} connections, "
          "TLS 1.3 only")
    assert_plaintext_refused(port, server, b"PLAINTEXT-REQUEST\n")
    check(b"PLAINTEXT-REQUEST" not in server.stdout(), "the plaintext request reached the program")
    print("static server: a plaintext client is refused before the program sees a byte")


def permissive(mesh):
    """A port in permissive mode (a migration): the engine's detection decides per connection,
    plaintext clients reach the program in clear, mesh clients through mTLS."""
    config = os.path.join(mesh.dir, "permissive.conf")
    with open(mesh.configs["agent"]) as f:
        text = f.read().replace('inbound = { loopback = "strict"; }',
                                'inbound = { loopback = "permissive"; }')
    check("permissive" in text, f"cannot make a permissive configuration from:\n{text}")
    with open(config, "w") as f:
        f.write(text)
    port = free_port()
    server = mesh.spawn("permissive-server", [MESHTLS, "supervise", "--config", config, "--",
                                              STATIC_PEER, "server", str(port), "3"])
    wait_output(server, "listening on")
    with socket.create_connection(("127.0.0.1", port), timeout=20) as plain:
        plain.sendall(b"plain-request")
        plain.shutdown(socket.SHUT_WR)
        answer = plain.recv(4096)
    check(answer == b"echo:plain-request", f"the plaintext client got {answer!r}")
    client = mesh.meshed("permissive-client", [PYTHON, "-c", CLIENT, str(port), "tls-request"])
    check(client.wait(30) == 0 and b"got echo:tls-request" in client.stdout(),
          f"the mesh client: {client.stdout()!r}\n{client.stderr()[-2000:]}")
    log = server.stderr()
    check("(mode permissive): not TLS" in log and "relayed to the program (plain)" in log and
          "relayed to the program (mtls, peer spiffe://" in log,
          f"the permissive decisions were not logged:\n{log}")
    print("permissive port: a plaintext client in clear, a mesh client through mTLS")


def listener_closed(mesh):
    """A program that closes its listener and goes on: the supervisor releases the real port
    (a new server can bind it) instead of holding it for nobody."""
    port = free_port()
    server = supervised(mesh, "closing-server", [STATIC_PEER, "server", str(port), "1", "linger"])
    wait_output(server, "listening on")
    client = mesh.meshed("closing-client", [PYTHON, "-c", CLIENT, str(port), "last"])
    check(client.wait(30) == 0 and b"got echo:last" in client.stdout(),
          f"the closing server did not answer: {client.stdout()!r}\n{client.stderr()[-2000:]}")
    wait_output(server, "listener closed")
    wait_for(lambda: not port_listening(port), 10, f"port {port} to be released")
    check(f"no longer listens on :{port}; released" in server.stderr(),
          f"no log line for the released listener:\n{server.stderr()}")
    check(server.popen.poll() is None, "the program ended; nothing left to test")
    print("a program that closes its listener: the supervisor releases the port")


def forked_and_executed(mesh):
    """A shell that forks and execs another static program (busybox sh → busybox wget): the
    filter follows, and the grandchild's connection is meshed like the program's own."""
    token = f"BUSYBOX-TOKEN-{random_token()}"
    directory = os.path.join(mesh.dir, "www")
    os.mkdir(directory)
    with open(os.path.join(directory, "index.txt"), "w") as f:
        f.write(token)
    port = free_port()
    mesh.http_server("py-http", port, directory)
    relay = Relay(port)
    shell = supervised(mesh, "busybox-sh", [BUSYBOX, "sh", "-c",
                                            f"{BUSYBOX} wget -q -O - "
                                            f"http://127.0.0.1:{relay.port}/index.txt; "
                                            "echo \"wget status $?\""])
    shell.wait(30)
    out = shell.stdout().decode(errors="replace")
    check(token in out and "wget status 0" in out,
          f"busybox wget under busybox sh: {out!r}\n{shell.stderr()[-2000:]}")
    check(f"connected to 127.0.0.1:{relay.port} (mtls, peer spiffe://" in shell.stderr(),
          f"no meshed connection logged:\n{shell.stderr()}")
    count = assert_relay_tls13(relay, [token.encode(), b"index.txt"], 1)
    print(f"busybox sh → fork, exec busybox wget: fetched through mTLS ({count} connection)")


def refusals(mesh):
    uring = supervised(mesh, "uring", [STATIC_PEER, "uring"])
    uring.wait(20)
    check(b"io_uring_setup failed: Function not implemented" in uring.stdout(),
          f"io_uring_setup was not refused with ENOSYS: {uring.stdout()!r}")
    check("refused io_uring_setup of pid" in uring.stderr() and "bypass the mesh" in uring.stderr(),
          f"no log line for io_uring:\n{uring.stderr()}")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.settimeout(0.5)
        fast = supervised(mesh, "fastopen", [STATIC_PEER, "fastopen", "127.0.0.1",
                                            str(listener.getsockname()[1])])
        fast.wait(20)
        check(b"sendto MSG_FASTOPEN failed: Operation not supported" in fast.stdout(),
              f"a Fast Open send was not refused: {fast.stdout()!r}")
        nothing_accepted(listener, "a Fast Open send")
    print("io_uring_setup: ENOSYS and a log line; TCP Fast Open send: EOPNOTSUPP, nothing sent")
    # A descriptor duplicated before listen() still names the real listener, which the
    # supervisor serves: accepting through it would bypass the mesh.
    duplicate = supervised(mesh, "duplicate", [STATIC_PEER, "duplicate", str(free_port())])
    duplicate.wait(20)
    check(b"accept on the duplicate failed: Invalid argument" in duplicate.stdout() and
          "a duplicate of a listener the mesh serves" in duplicate.stderr(),
          f"accept on a duplicate was not refused: {duplicate.stdout()!r}\n{duplicate.stderr()}")
    print("accept on a duplicate of a served listener: EINVAL and a log line")


def supervisor_killed(mesh):
    # The program dies with its supervisor.
    port = free_port()
    server = supervised(mesh, "killed-server", [STATIC_PEER, "server", str(port), "1"])
    wait_output(server, "listening on")
    pid = program_pid(server)
    server.popen.send_signal(signal.SIGKILL)
    server.popen.wait(10)
    wait_for(lambda: process_gone(pid), 10, f"the program (pid {pid}) to die with its supervisor")
    print("supervisor killed: its program was killed too")
    # A descendant that outlives it (its parent, the program, died with the supervisor) cannot
    # connect: the filter stays, its listener is gone, connect fails with ENOSYS.
    trigger = os.path.join(mesh.dir, "orphan-trigger")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.settimeout(1)
        orphan = supervised(mesh, "orphan", [STATIC_PEER, "orphan", "127.0.0.1",
                                            str(listener.getsockname()[1]), trigger])
        wait_output(orphan, "child ")
        parent = program_pid(orphan)
        child = int(orphan.stdout().decode().split("child ")[1].split()[0])
        orphan.popen.send_signal(signal.SIGKILL)
        orphan.popen.wait(10)
        wait_for(lambda: process_gone(parent), 10, "the orphan's parent to die")
        check(not process_gone(child), "the orphan died too; nothing left to test")
        open(trigger, "w").close()
        wait_for(lambda: b"orphan connect failed" in orphan.stdout() or
                 b"orphan connected" in orphan.stdout(), 20, "the orphan to try")
        check(b"orphan connect failed: Function not implemented" in orphan.stdout(),
              f"the orphan was not refused: {orphan.stdout()!r}")
        nothing_accepted(listener, "the orphan's connection")
    print("a descendant outliving the supervisor: connect fails with ENOSYS, nothing sent")


STATIC_PEER = None
BUSYBOX = "/bin/busybox"  # busybox-static (packaging/install-deps.sh)


def test():
    global STATIC_PEER
    STATIC_PEER = build_static_peer()
    with Mesh("supervisor-static") as mesh:
        mesh.start_agent(config=identity_rules([(STATIC_PEER, "test/static-peer"),
                                                (PYTHON + "*", "test/python")]))
        outbound(mesh)
        outbound_refused(mesh)
        inbound(mesh)
        permissive(mesh)
        listener_closed(mesh)
        forked_and_executed(mesh)
        refusals(mesh)
        supervisor_killed(mesh)


if __name__ == "__main__":
    main(test)
