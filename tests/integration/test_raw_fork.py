"""A child made by the clone system call itself keeps its connection meshed.

raw_fork_server reads a request line, then makes a child with syscall(SYS_clone, SIGCHLD) —
fork semantics without glibc's fork, so no pthread_atfork handler runs there, as in vsftpd's
isolated session processes — which puts the connection on its stdout with dup2 and writes the
answer there. By the pid alone that child passes for a vfork child, whose hooks leave the tables
alone: its dup2 went unrecorded and its answer left in clear on an mTLS connection. The answer
must arrive through TLS (a meshed client reads it; a recording relay shows only TLS 1.3 records
and neither the request nor the answer in clear), and a plaintext client is refused."""

import os

from harness import (BUILD, Mesh, PYTHON, Relay, assert_plaintext_refused, assert_relay_tls13,
                     check, free_port, main, random_token, run_meshed, wait_for)

SERVER = os.path.join(BUILD, "tests", "integration", "raw_fork_server")
CLIENT = """
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as connection:
    connection.sendall(sys.argv[2].encode() + b"\\n")
    answer = b""
    while not answer.endswith(b"\\n"):
        chunk = connection.recv(4096)
        if not chunk:
            break
        answer += chunk
    print(answer.decode(errors="replace").strip())
"""


def test():
    with Mesh("raw-fork") as mesh:
        mesh.start_agent()
        port = free_port()
        server = mesh.meshed("raw_fork_server", [SERVER, str(port), "3"])
        wait_for(lambda: b"listening" in server.stdout() or server.popen.poll() is not None, 20,
                 "raw_fork_server to listen")
        relay = Relay(port)
        secrets = []
        for i, target in enumerate((port, relay.port)):
            secret = random_token(16)
            secrets.append(secret.encode())
            status, output, errors = run_meshed(mesh, f"client-{i}",
                                                [PYTHON, "-c", CLIENT, str(target), secret], 30)
            check(status == 0 and output.strip() == f"child got {secret}",
                  f"client {i}: status {status}, answer {output!r}\n{errors}\n"
                  f"server:\n{server.stderr()[-3000:]}")
        assert_relay_tls13(relay, secrets, expected_connections=1)
        assert_plaintext_refused(port, server, b"plain request\n")
        check(server.stdout().count(b"child exited 0") == 2,
              f"children failed:\n{server.stdout().decode()}\n{server.stderr()[-3000:]}")
        print("a child cloned by system call answered through TLS 1.3; plaintext refused")


if __name__ == "__main__":
    main(test)
