"""File descriptors and processes under the preload, with plain Python peers: a forked child
serves a connection its parent accepted and closed (the parent's close must not end the child's
TLS session), an accepted connection handed to an exec'd program on stdin/stdout (inetd-style)
is meshed in that program, dup()/dup2() names share one connection and survive closing the original,
sendfile() of a multi-MB file arrives intact over TLS, sendmmsg() sends each message through TLS,
and FIONREAD counts decrypted bytes."""

import hashlib
import os

from harness import (PYTHON, Mesh, Relay, assert_tls13_wire, check, free_port, main, wait_for)

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fdpeers.py")


def server(mesh, name, *arguments):
    process = mesh.meshed(name, [PYTHON, PEERS, *arguments])
    wait_for(lambda: b"listening" in process.stdout() or process.popen.poll() is not None, 20,
             f"{name} to listen")
    check(process.popen.poll() is None, f"{name} exited:\n{process.stderr()}")
    return process


def client(mesh, name, *arguments):
    process = mesh.meshed(name, [PYTHON, PEERS, *arguments])
    status = process.wait(60)
    check(status == 0, f"{name} failed ({status}):\n{process.stderr()}")
    return process.stdout().decode().split("\n")


def test():
    with Mesh("fds") as mesh:
        mesh.start_agent()

        port = free_port()
        forker = server(mesh, "fork-server", "fork-server", str(port))
        for i in range(3):
            lines = client(mesh, f"fork-client-{i}", "line-client", str(port), f"hello {i}")
            check(lines[0] == f"HELLO {i}", f"forked child's reply: {lines}\n{forker.stderr()}")

        # inetd-style: accepted, handed to an exec'd program on stdin/stdout, meshed there.
        port = free_port()
        inetd = server(mesh, "inetd-server", "inetd-server", str(port))
        relay = Relay(port)
        lines = client(mesh, "inetd-client", "line-client", str(relay.port), "via inetd")
        relay.stop()
        check(lines[0] == "inetd: VIA INETD", f"inetd service replied {lines}\n{inetd.stderr()}")
        assert_tls13_wire(relay.client_bytes[0], relay.server_bytes[0], [b"VIA INETD", b"via"])

        # sendmmsg on a meshed connection: each message through TLS, the counts as the kernel's.
        port = free_port()
        server(mesh, "mmsg-server", "fork-server", str(port))
        relay = Relay(port)
        lines = client(mesh, "mmsg-client", "mmsg-client", str(relay.port), "several messages")
        relay.stop()
        check(lines[:2] == ["sent 2 16 1", "SEVERAL MESSAGES"], f"sendmmsg client: {lines}")
        assert_tls13_wire(relay.client_bytes[0], relay.server_bytes[0],
                          [b"several messages", b"SEVERAL MESSAGES"])

        port = free_port()
        duper = server(mesh, "dup-server", "dup-server", str(port))
        lines = client(mesh, "dup-client", "line-client", str(port), "first", "second")
        check(lines[:2] == ["FIRST", "SECOND"], f"dup/dup2 replies: {lines}\n{duper.stderr()}")

        path = os.path.join(mesh.dir, "payload.bin")
        payload = os.urandom(5 * 1024 * 1024 + 123)
        with open(path, "wb") as f:
            f.write(payload)
        port = free_port()
        server(mesh, "sendfile-server", "sendfile-server", str(port), path)
        relay = Relay(port)
        lines = client(mesh, "sendfile-client", "read-client", str(relay.port))
        relay.stop()
        check(lines[0] == f"{hashlib.sha256(payload).hexdigest()} {len(payload)}",
              f"sendfile delivered {lines[0]}")
        assert_tls13_wire(relay.client_bytes[0], relay.server_bytes[0], [payload[:64]])

        port = free_port()
        server(mesh, "fionread-server", "fionread-server", str(port))
        lines = client(mesh, "fionread-client", "line-client", str(port), "x" * 999)
        count, read = (int(v) for v in lines[0].split())
        check(count == 1000 and read == 1000, f"FIONREAD said {count}, read {read}: want 1000")
        print("fork, dup/dup2, sendfile (5 MiB) and FIONREAD over mTLS")


if __name__ == "__main__":
    main(test)
