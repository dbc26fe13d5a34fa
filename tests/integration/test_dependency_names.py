"""A program that exports functions named like libconfig's and wolfSSL's (config_init,
config_read, config_lookup_string, wolfSSL_read, ...), with signatures of its own that abort when
anyone but the program calls them, runs as a meshed server and a meshed client: both reach main,
their own functions work, the exchange arrives intact through a recording relay that sees only
TLS 1.3, and a plaintext client is refused. A preload that imports its dependencies by name has
its constructor's calls bound to the program's functions and dies before main: which is what
-Dwolfssl=system does (libwolfssl.so's names are imported), so that build skips the test (README,
"Building and testing by hand"; lint/dependencies skips likewise)."""

import os
import socket

from harness import (BUILD, SYSTEM_WOLFSSL, Mesh, Relay, assert_relay_tls13, check, free_port,
                     main, random_token, run_meshed, skip, start_meshed_server, wait_for)

PROGRAM = os.path.join(BUILD, "tests", "integration", "dependency_names")
MARKER = "was called from outside it"


def plaintext_refused(port):
    """A client without TLS gets no answer: the connection ends without a byte of the echo."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"plain\n")
        received = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                received += chunk
        except ConnectionResetError:
            pass
    check(b"echo" not in received, f"a plaintext client was answered: {received!r}")


def test():
    if SYSTEM_WOLFSSL:
        skip("-Dwolfssl=system imports wolfSSL's names from libwolfssl.so by choice: a program's "
             "own wolfSSL_* functions are bound in their place")
    with Mesh("dependency-names") as mesh:
        mesh.start_agent()
        port = free_port()
        server = start_meshed_server(mesh, "server", [PROGRAM, "serve", str(port)], port)
        relay = Relay(port)
        text = random_token(32)
        status, output, errors = run_meshed(
            mesh, "client", [PROGRAM, "connect", str(relay.port), text], 30)
        check(MARKER not in errors and MARKER not in server.stderr(),
              f"libmeshtls called the program's own functions:\n{errors}\n{server.stderr()}")
        check(status == 0 and output.strip() == f"echo: {text}",
              f"the client exited {status} with {output!r}:\n{errors}")
        check(f"mtls outbound to 127.0.0.1:{relay.port}" in errors,
              f"the client's connection was not meshed:\n{errors}")
        assert_relay_tls13(relay, [text.encode(), b"echo: "], expected_connections=1)
        plaintext_refused(port)
        wait_for(lambda: "peer did not speak TLS" in server.stderr(), 10,
                 "the server to log the refused plaintext client")
        check(server.popen.poll() is None, f"the server exited:\n{server.stderr()}")
        print("both sides reached main with their own config_*/wolfSSL_* functions; "
              "echo intact over TLS 1.3; plaintext refused")


if __name__ == "__main__":
    main(test)
