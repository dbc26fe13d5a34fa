"""TLS 1.3 resumption (config key resumption_s): what a resumed connection is, and what it must
never be able to do.

A meshed server listens on three ports (strict; allow [.../ns/a]; allow [.../ns/b]).

1. Meshed client, default config, four connections in one process through a recording relay:
   the first is a full handshake; the next three offer a PSK in the ClientHello and the server
   accepts it in the ServerHello (pre_shared_key, RFC 8446 §4.2.11; both hellos are cleartext),
   every byte after the hellos is encrypted, the application is served each time, and both
   logs name the same peer SPIFFE ID with ", resumed".
2. resumption_s = 0 on the client: no PSK is ever offered.
3. resumption_s = 1 on the client: a session older than that is not offered.
4. Python's own TLS client (OpenSSL) with an ns/a SVID: resumes on the ns/a port (interop; no
   certificate is sent, the ticket carries the identity); the same session offered to the ns/b
   port is not resumed and the connection is refused as ns/a, logged with the allow list.
5. A server with resumption_s = 1: a session older than that is not resumed (full handshake).
6. The server restarts (a new process: a new ticket key, as after a rotation) while a meshed
   client holds its session: the client offers it, the server declines it, the full handshake
   succeeds and is not logged as resumed, and the client's next connection resumes the new one.
Altered, swapped, expired and foreign tickets are refused in tests/unit/test_resumption.c.
"""

import os
import ssl
import socket
import struct
import time

from harness import (PYTHON, Mesh, Relay, assert_tls13_wire, check, free_port,
                     hello_extensions, main, port_listening, tls_records, wait_for)
from lifecycle_common import Pki

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "attack_peers.py")
TD = "meshtls.local"
PRE_SHARED_KEY = 41


def spiffe(path):
    return f"spiffe://{TD}/{path}"


def extensions(hello):
    """The extension types of a ClientHello (1) or ServerHello (2) handshake message."""
    return [kind for kind, _ in hello_extensions(hello)]


def hellos(relay, index):
    """(ClientHello extensions, ServerHello extensions) of the relay's index-th connection."""
    client = tls_records(bytes(relay.client_bytes[index]))
    server = tls_records(bytes(relay.server_bytes[index]))
    check(client[0][0] == 22 and client[0][2][0] == 1, f"connection {index}: no ClientHello")
    check(server[0][0] == 22 and server[0][2][0] == 2, f"connection {index}: no ServerHello")
    return extensions(client[0][2]), extensions(server[0][2])


def write_config(mesh, name, sock, extra=""):
    path = os.path.join(mesh.dir, f"{name}.conf")
    with open(path, "w") as f:
        f.write(f'agent_socket = "{sock}";\nlog_level = "info";\n'
                f'outbound = {{ loopback = "mtls"; }};\n' + extra)
    return path


def start_probe(mesh, name, config, ports, pause=0.0):
    """A meshed client process connecting once per port, in order, pausing in between."""
    lines = os.path.join(mesh.dir, f"{name}.in")
    with open(lines, "w") as f:
        f.write("".join(f"{port}\n" for port in ports))
    argv = [PYTHON, PEERS, "probe", str(pause)]
    with open(lines) as stdin:
        return mesh.meshed(name, argv, config=config, stdin=stdin)


def answers(client):
    """The prober's lines as "PORT ok TEXT" (attack_peers prints the answer in hex)."""
    lines = []
    for line in client.stdout().decode().splitlines():
        port, verdict, rest = (line.split(" ", 2) + ["", ""])[:3]
        if verdict == "ok":
            rest = bytes.fromhex(rest).decode(errors="replace").strip()
        lines.append(f"{port} {verdict} {rest}")
    return lines


def probe(mesh, name, config, ports, pause=0.0):
    """start_probe, to the end; returns the process and its answers."""
    client = start_probe(mesh, name, config, ports, pause)
    check(client.wait(60) == 0, f"{name} failed:\n{client.stderr()}")
    return client, answers(client)


def start_server(mesh, name, config, secret, ports):
    server = mesh.meshed(name, [PYTHON, PEERS, "serve", secret] + [str(p) for p in ports],
                         config=config)
    wait_for(lambda: all(port_listening(p) for p in ports) or server.popen.poll() is not None,
             20, f"{name} to listen")
    check(server.popen.poll() is None, f"{name} exited:\n{server.stderr()}")
    return server


def client_context(certificate):
    """Python's own TLS 1.3 client context (OpenSSL resumes only within one context)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(*certificate)
    return context


def tls_client(port, context, session=None, timeout=5.0):
    """One connection; returns (received bytes, session after reading, reused, error)."""
    received, new_session, reused, error = b"", None, None, None
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="resumption-test",
                                     session=session) as connection:
                reused = connection.session_reused
                connection.sendall(b"hello\n")
                while not received.endswith(b"\n"):
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    received += chunk
                new_session = connection.session
        except (ssl.SSLError, OSError) as failure:
            error = failure
    return received, new_session, reused, error


def count(text, needle):
    return sum(1 for line in text.splitlines() if needle in line)


def test():
    secret = "resumption-secret-7f3a"
    with Mesh("resume") as mesh:
        sock = mesh.start_agent()
        pki = Pki(os.path.join(mesh.dir, "pki"))
        state = os.path.join(mesh.dir, "agent-state")
        pki.adopt("agentca", os.path.join(state, "ca.crt"), os.path.join(state, "ca.key"))
        ns_a = (pki.leaf("ns-a", "agentca", [f"URI:{spiffe('ns/a')}"]), pki.path("ns-a.key"))

        strict, only_a, only_b = free_port(), free_port(), free_port()
        server_config = write_config(mesh, "server", sock, f"""inbound = {{
    loopback = "strict";
    rules = (
        {{ port = {only_a}; mode = "strict"; allow = ["{spiffe('ns/a')}"]; }},
        {{ port = {only_b}; mode = "strict"; allow = ["{spiffe('ns/b')}"]; }}
    );
}};
""")
        server = start_server(mesh, "server", server_config, secret, [strict, only_a, only_b])

        # 1. Meshed client: one full handshake, then three resumed ones.
        relay = Relay(strict)
        client, lines = probe(mesh, "client", write_config(mesh, "client", sock), [relay.port] * 4)
        check(len(lines) == 4 and all(f"ok {secret}" in line for line in lines),
              f"the meshed client was not served every time: {lines}")
        wait_for(lambda: len(relay.client_bytes) == 4, 10, "four relayed connections")
        for index in range(4):
            assert_tls13_wire(relay.client_bytes[index], relay.server_bytes[index],
                              [secret.encode(), b"hello\n"])
            offered, accepted = hellos(relay, index)
            if index == 0:
                check(PRE_SHARED_KEY not in offered, "the first connection offered a PSK")
                check(PRE_SHARED_KEY not in accepted, "the first connection was resumed")
            else:
                check(PRE_SHARED_KEY in offered, f"connection {index} offered no PSK")
                check(PRE_SHARED_KEY in accepted, f"connection {index}: the server did not resume")
        client_id = None
        for line in server.stderr().splitlines():
            if "mtls inbound" in line and f"on :{strict}:" in line:
                client_id = line.split("peer ", 1)[1].split(",", 1)[0]
                break
        check(client_id and client_id.startswith(f"spiffe://{TD}/"),
              f"no inbound line on :{strict}:\n{server.stderr()}")
        inbound = [line for line in server.stderr().splitlines()
                   if "mtls inbound" in line and f"on :{strict}:" in line]
        check(len(inbound) == 4 and all(f"peer {client_id}," in line for line in inbound),
              f"the four inbound lines do not all name {client_id}:\n" + "\n".join(inbound))
        check(sum(line.endswith(", resumed") for line in inbound) == 3,
              "the server did not log three resumed connections:\n" + "\n".join(inbound))
        outbound = [line for line in client.stderr().splitlines() if "mtls outbound" in line]
        check(len(outbound) == 4 and sum(line.endswith(", resumed") for line in outbound) == 3,
              "the client did not log one full and three resumed connections:\n"
              + "\n".join(outbound))
        print(f"1: one full handshake, three resumed (PSK offered and accepted on the wire, "
              f"peer {client_id} each time)")

        # 2. resumption_s = 0: never offered.
        relay_off = Relay(strict)
        _, lines = probe(mesh, "client-off",
                         write_config(mesh, "client-off", sock, "resumption_s = 0;\n"),
                         [relay_off.port] * 3)
        check(all(f"ok {secret}" in line for line in lines) and len(lines) == 3,
              f"client-off was not served: {lines}")
        wait_for(lambda: len(relay_off.client_bytes) == 3, 10, "three relayed connections")
        for index in range(3):
            offered, _ = hellos(relay_off, index)
            check(PRE_SHARED_KEY not in offered, f"resumption_s = 0 offered a PSK ({index})")
        print("2: resumption_s = 0: three full handshakes, no PSK offered")

        # 3. A client's session older than its resumption_s is not offered.
        relay_short = Relay(strict)
        _, lines = probe(mesh, "client-short",
                         write_config(mesh, "client-short", sock, "resumption_s = 1;\n"),
                         [relay_short.port] * 2, pause=2.2)
        check(all(f"ok {secret}" in line for line in lines) and len(lines) == 2,
              f"client-short was not served: {lines}")
        wait_for(lambda: len(relay_short.client_bytes) == 2, 10, "two relayed connections")
        offered, _ = hellos(relay_short, 1)
        check(PRE_SHARED_KEY not in offered, "a session past the client's resumption_s was offered")
        print("3: resumption_s = 1 on the client: a 2.2 s old session is not offered")

        # 4. OpenSSL client: interop, and the allow list applies to the identity a ticket carries.
        openssl_a = client_context(ns_a)
        received, session, reused, error = tls_client(only_a, openssl_a)
        check(secret.encode() in received and not reused,
              f"ns/a full handshake on :{only_a}: {received!r} {error!r}")
        check(session is not None and session.has_ticket, "the server sent no ticket")
        received, again, reused, error = tls_client(only_a, openssl_a, session)
        check(reused and secret.encode() in received,
              f"ns/a's session was not resumed on :{only_a}: reused {reused}, {error!r}")
        received, _, reused, error = tls_client(only_b, openssl_a, again)
        check(not reused and secret.encode() not in received,
              f"ns/a's session got through to :{only_b} (allow ns/b): {received!r} {reused}")
        refusal = f"client identity {spiffe('ns/a')} is not in the allow list"
        wait_for(lambda: any(f":{only_b}" in line and refusal in line
                             for line in server.stderr().splitlines()), 10,
                 f"the refusal on :{only_b} to be logged")
        print(f"4: OpenSSL resumed ns/a's session on :{only_a}; offered "
              f"to :{only_b} it was not resumed, and ns/a was refused by the allow list")

        # 5. A server's resumption_s bounds how long its tickets are honoured.
        short_port = free_port()
        short_config = write_config(mesh, "server-short", sock,
                                    'inbound = { loopback = "strict"; };\nresumption_s = 1;\n')
        start_server(mesh, "server-short", short_config, secret, [short_port])
        _, session, _, error = tls_client(short_port, openssl_a)
        check(session is not None and session.has_ticket, f"no ticket from server-short: {error!r}")
        received, _, reused, _ = tls_client(short_port, openssl_a, session)
        check(reused and secret.encode() in received, "server-short did not resume at once")
        time.sleep(2.2)
        received, _, reused, error = tls_client(short_port, openssl_a, session)
        check(not reused and secret.encode() in received,
              f"server-short resumed a 2.2 s old ticket with resumption_s = 1: {error!r}")
        print("5: resumption_s = 1 on the server: resumed at once, not after 2.2 s")

        # 6. The server restarts between two connections of one client.
        restart_port = free_port()
        restart_config = write_config(mesh, "server-restart", sock,
                                      'inbound = { loopback = "strict"; };\n')
        first = start_server(mesh, "server-restart", restart_config, secret, [restart_port])
        relay_restart = Relay(restart_port)
        client = start_probe(mesh, "client-restart", write_config(mesh, "client-restart", sock),
                             [relay_restart.port] * 3, pause=4.0)
        wait_for(lambda: b"\n" in client.stdout() or client.popen.poll() is not None, 20,
                 "the first connection before the restart")
        first.stop()
        second = start_server(mesh, "server-restart-2", restart_config, secret, [restart_port])
        check(client.wait(60) == 0, f"client-restart failed:\n{client.stderr()}")
        lines = answers(client)
        check(len(lines) == 3 and all(f"ok {secret}" in line for line in lines),
              f"client-restart was not served every time: {lines}")
        wait_for(lambda: len(relay_restart.client_bytes) == 3, 10, "three relayed connections")
        offered, accepted = hellos(relay_restart, 1)
        check(PRE_SHARED_KEY in offered and PRE_SHARED_KEY not in accepted,
              "after the restart: the old session was not offered, or it was accepted")
        offered, accepted = hellos(relay_restart, 2)
        check(PRE_SHARED_KEY in offered and PRE_SHARED_KEY in accepted,
              "the session from the new server was not resumed")
        outbound = [line for line in client.stderr().splitlines() if "mtls outbound" in line]
        check([line.endswith(", resumed") for line in outbound] == [False, False, True],
              "client-restart's log does not show full, full, resumed:\n" + "\n".join(outbound))
        inbound = [line for line in second.stderr().splitlines() if "mtls inbound" in line]
        check([line.endswith(", resumed") for line in inbound] == [False, True],
              "the restarted server's log does not show full, resumed:\n" + "\n".join(inbound))
        print("6: after a server restart the old session was offered and declined, the full "
              "handshake served, and the next connection resumed the new session")
        relay_restart.stop()
        relay.stop()
        relay_off.stop()
        relay_short.stop()


if __name__ == "__main__":
    main(test)
