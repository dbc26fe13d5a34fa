"""Privilege-separated servers: a child that confines itself with a seccomp filter (default
action: kill the process) keeps using its meshed connection. sandbox_peer.c's child allows read,
write and what malloc and TLS need, and answers a request with a bulk response larger than the
socket buffers, so that its writes block: on a blocking socket (strict list), on a non-blocking
one (poll allowed), with the TLS handshake itself inside the filter (OpenSSH's pre-authentication
list), and with two threads reading an upload and writing a download at once on one blocking
socket. A system call the filter refuses kills the child with SIGSYS, which the parent reports.
Each response arrives whole and in order, the wire carries only TLS 1.3 records, and a plaintext
client is refused."""

import os
import socket

from harness import (BUILD, Mesh, Relay, assert_relay_tls13, check, free_port, main,
                     random_token, run_meshed, start_meshed_server, wait_for)

SANDBOX_PEER = os.path.join(BUILD, "tests", "integration", "sandbox_peer")
SIZE = 4 * 1024 * 1024  # far beyond loopback's socket buffers: the child's writes block


def serve_once(mesh, mode, duplex=False):
    port = free_port()
    server = start_meshed_server(mesh, f"server-{mode}", [SANDBOX_PEER, "serve", str(port), mode],
                                 port)
    relay = Relay(port)
    token = random_token(16)
    argv = [SANDBOX_PEER, "fetch", str(relay.port), str(SIZE), token] + (["duplex"] if duplex
                                                                          else [])
    status, output, errors = run_meshed(mesh, f"client-{mode}", argv, 60)
    server_status = server.wait(30)
    server_output = server.stdout().decode(errors="replace")
    check(status == 0 and output.strip() == f"fetched {SIZE}",
          f"{mode}: the client got {output.strip()!r} ({status})\n{errors[-2000:]}\n"
          f"server: {server_output}\n{server.stderr()[-3000:]}")
    check(server_status == 0 and "child exited 0" in server_output,
          f"{mode}: the sandboxed child did not finish cleanly: {server_output.strip()!r}\n"
          f"{server.stderr()[-3000:]}")
    assert_relay_tls13(relay, [token.encode()], expected_connections=1)


def plaintext_refused(mesh):
    port = free_port()
    server = start_meshed_server(mesh, "server-plain", [SANDBOX_PEER, "serve", str(port),
                                                        "handshake"], port)
    reply = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        plain.sendall(b"GET 100 plaintext\n")
        try:
            while True:
                chunk = plain.recv(4096)
                if not chunk:
                    break
                reply += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    check(b"plaintext" not in reply and not reply.startswith(b"\x17"),
          f"a plaintext client got an answer: {reply[:200]!r}")
    server.wait(30)
    check("child exited 0" not in server.stdout().decode(errors="replace"),
          "the sandboxed child served a plaintext client")


def test():
    with Mesh("sandbox") as mesh:
        mesh.start_agent()
        for mode in ("blocking", "nonblocking", "handshake"):
            serve_once(mesh, mode)
        serve_once(mesh, "duplex", duplex=True)
        plaintext_refused(mesh)
        print(f"blocking, non-blocking, handshake-inside and duplex children each served "
              f"{SIZE} bytes under a kill-by-default seccomp filter; TLS 1.3 on the wire; "
              f"plaintext refused")


if __name__ == "__main__":
    main(test)
