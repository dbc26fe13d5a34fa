"""The key exchange on the wire: mesh peers agree on the post-quantum hybrid X25519MLKEM768 in one
round trip, classical peers are still served classically, and the configuration key
post_quantum changes both as documented. Every group is read from the cleartext hellos a
recording relay saw (RFC 8446 §4.2.8 key_share, §4.1.4 HelloRetryRequest), not from logs alone.

1. An unmodified curl fetches from an unmodified `python3 -m http.server`, both meshed with the
   default configuration: the ClientHello carries exactly one key share, X25519MLKEM768 (1216
   bytes), the ServerHello answers with X25519MLKEM768 (1120 bytes) and is no HelloRetryRequest,
   the body arrives intact, nothing readable crosses the wire, and both logs name the group.
2. Python's own TLS client (OpenSSL 3.0, which knows no ML-KEM) with a mesh SVID: served in one
   round trip with the X25519 share it sent; and with only P-256 offered, with P-256.
3. A server with post_quantum = "require": the classical client is refused (logged with the
   reason), a meshed client is served with the hybrid.
4. A server with post_quantum = "off": a meshed client's hybrid share is declined with a
   HelloRetryRequest for X25519, and the retried handshake succeeds (one more round trip, only
   for this mixed pair); a client with post_quantum = "off" sends an X25519 share and is served
   in one round trip; a client with post_quantum = "require" is refused by it, and says why.
5. `meshtls status` names the group of an open connection on both sides; `meshtls version` names
   the key exchange.
A build whose wolfSSL has no ML-KEM (-Dwolfssl=system) runs 1, 2, 4 and 5 expecting classical
groups everywhere, and checks that post_quantum = "require" refuses to load an identity there.
"""

import hashlib
import os
import socket
import ssl
import struct
import subprocess

from harness import (MESHTLS, PYTHON, Mesh, Relay, assert_tls13_wire, check, free_port,
                     hello_extensions, http_client, main, port_listening, random_token,
                     tls_records, wait_for)
from lifecycle_common import Pki

TD = "meshtls.local"
KEY_SHARE = 51
SUPPORTED_GROUPS = 10
X25519MLKEM768 = 0x11EC
SECP256R1MLKEM768 = 0x11EB
X25519 = 0x001D
SECP256R1 = 0x0017
NAMES = {X25519MLKEM768: "X25519MLKEM768", X25519: "X25519", SECP256R1: "SECP256R1"}
# RFC 8446 §4.1.3: a ServerHello with this random is a HelloRetryRequest.
HELLO_RETRY_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()


def client_shares(hello):
    """[(group, key length)] of a ClientHello's key_share extension."""
    body = dict(hello_extensions(hello))[KEY_SHARE]
    shares, offset = [], 2
    while offset < len(body):
        group, length = struct.unpack("!HH", body[offset:offset + 4])
        shares.append((group, length))
        offset += 4 + length
    return shares


def supported_groups(hello):
    body = dict(hello_extensions(hello))[SUPPORTED_GROUPS]
    return [struct.unpack("!H", body[i:i + 2])[0] for i in range(2, len(body), 2)]


def server_hellos(server_bytes):
    """[(is_retry, group, key length)] of every ServerHello in a connection's server bytes: a
    HelloRetryRequest names only the group it wants (length None)."""
    hellos = []
    for content_type, _, body in tls_records(bytes(server_bytes)):
        if content_type != 22 or body[0] != 2:
            continue
        retry = body[6:38] == HELLO_RETRY_RANDOM
        share = dict(hello_extensions(body))[KEY_SHARE]
        group = struct.unpack("!H", share[:2])[0]
        hellos.append((retry, group, None if retry else struct.unpack("!H", share[2:4])[0]))
    return hellos


def client_hellos(client_bytes):
    return [body for content_type, _, body in tls_records(bytes(client_bytes))
            if content_type == 22 and body[0] == 1]


def write_config(mesh, name, sock, extra=""):
    path = os.path.join(mesh.dir, f"{name}.conf")
    with open(path, "w") as f:
        f.write(f'agent_socket = "{sock}";\nlog_level = "info";\n'
                f'outbound = {{ loopback = "mtls"; }};\ninbound = {{ loopback = "strict"; }};\n'
                + extra)
    return path


def start_http_server(mesh, name, config, directory):
    port = free_port()
    server = mesh.meshed(name, [PYTHON, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                "--directory", directory], config=config)
    wait_for(lambda: port_listening(port) or server.popen.poll() is not None, 20,
             f"{name} to listen")
    check(server.popen.poll() is None, f"{name} exited:\n{server.stderr()}")
    return server, port


def fetch(mesh, name, config, port, expected):
    """A meshed client fetches data.txt through a new relay; returns the relay."""
    relay = Relay(port)
    client = mesh.meshed(name, http_client(f"http://127.0.0.1:{relay.port}/data.txt"),
                         config=config)
    status = client.wait(30)
    relay.stop()
    check(status == 0 and client.stdout() == expected,
          f"{name} exited {status} with {len(client.stdout())} bytes:\n{client.stderr()}")
    check(len(relay.client_bytes) == 1, f"{name}: relay saw {len(relay.client_bytes)} connections")
    return relay, client


def python_client(port, certificate, curve=None):
    """One request by Python's own TLS client (OpenSSL); returns (answer, error)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(*certificate)
    if curve:
        context.set_ecdh_curve(curve)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw) as connection:
                connection.sendall(b"GET /data.txt HTTP/1.0\r\n\r\n")
                answer = b""
                while True:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return answer, None
                    answer += chunk
    except (ssl.SSLError, OSError) as failure:
        return b"", failure


def expect_one_round_trip(relay, group, what):
    hellos = server_hellos(relay.server_bytes[0])
    check(hellos and not hellos[0][0], f"{what}: a HelloRetryRequest was sent: {hellos}")
    check(hellos[0][1] == group,
          f"{what}: the ServerHello chose {hellos[0][1]:#06x}, expected {group:#06x}")
    return hellos[0]


def test():
    version = subprocess.run([MESHTLS, "version"], capture_output=True, text=True, timeout=10)
    check(version.returncode == 0, f"meshtls version failed: {version.stderr}")
    hybrid = "X25519MLKEM768 (post-quantum hybrid)" in version.stdout
    check(hybrid or "(this wolfSSL has no ML-KEM)" in version.stdout,
          f"meshtls version does not name the key exchange:\n{version.stdout}")
    mesh_group = X25519MLKEM768 if hybrid else X25519
    print(f"5: meshtls version: {version.stdout.splitlines()[-1]}")

    with Mesh("pq") as mesh:
        sock = mesh.start_agent()
        root = os.path.join(mesh.dir, "www")
        os.mkdir(root)
        secret = random_token()
        body = (f"quantum-safe payload {secret}\n" * 500).encode()
        with open(os.path.join(root, "data.txt"), "wb") as f:
            f.write(body)
        default = write_config(mesh, "default", sock)

        # 1. Mesh peers, default configuration.
        server, port = start_http_server(mesh, "server", default, root)
        relay, client = fetch(mesh, "curl", default, port, body)
        assert_tls13_wire(relay.client_bytes[0], relay.server_bytes[0],
                          [secret.encode(), b"GET /data.txt"])
        hello = client_hellos(relay.client_bytes[0])[0]
        shares = client_shares(hello)
        if hybrid:
            check(shares == [(X25519MLKEM768, 1216)],
                  f"the ClientHello's key shares are {shares}, expected one X25519MLKEM768")
            check(supported_groups(hello)[:4] == [X25519MLKEM768, SECP256R1MLKEM768, X25519,
                                                  SECP256R1],
                  f"supported_groups: {[hex(g) for g in supported_groups(hello)]}")
        else:
            check([group for group, _ in shares] == [X25519], f"key shares: {shares}")
        _, group, length = expect_one_round_trip(relay, mesh_group, "mesh peers")
        check(not hybrid or length == 1120, f"the server's hybrid share is {length} bytes")
        name = NAMES[mesh_group]
        check(f"TLSv1.3 TLS13-AES128-GCM-SHA256 {name}" in server.stderr(),
              f"the server's log does not name {name}:\n{server.stderr()}")
        check(f"TLSv1.3 TLS13-AES128-GCM-SHA256 {name}" in client.stderr(),
              f"the client's log does not name {name}:\n{client.stderr()}")
        print(f"1: curl <-> http.server: ClientHello shares {shares}, ServerHello {name} "
              f"({length} bytes), one round trip, body intact, logs name {name}")

        # 2. Classical clients: Python's OpenSSL, with its default groups, then P-256 only.
        pki = Pki(os.path.join(mesh.dir, "pki"))
        state = os.path.join(mesh.dir, "agent-state")
        pki.adopt("agentca", os.path.join(state, "ca.crt"), os.path.join(state, "ca.key"))
        svid = (pki.leaf("classical", "agentca", [f"URI:spiffe://{TD}/classical"]),
                pki.path("classical.key"))
        for curve, group in ((None, X25519), ("prime256v1", SECP256R1)):
            relay = Relay(port)
            answer, error = python_client(relay.port, svid, curve)
            relay.stop()
            check(error is None and answer.endswith(body),
                  f"the classical client ({curve or 'default groups'}) was not served: {error}")
            expect_one_round_trip(relay, group, f"OpenSSL client ({curve or 'default groups'})")
            check(f"peer spiffe://{TD}/classical, TLSv1.3 TLS13-AES128-GCM-SHA256 {NAMES[group]}"
                  in server.stderr(), f"the server's log does not name {NAMES[group]}")
        print("2: OpenSSL clients served in one round trip with X25519, then with P-256")

        # 3. post_quantum = "require".
        require = write_config(mesh, "require", sock, 'post_quantum = "require";\n')
        if hybrid:
            strict_server, strict_port = start_http_server(mesh, "require-server", require, root)
            answer, error = python_client(strict_port, svid)
            check(error is not None and not answer,
                  "a classical client was served by a post_quantum = \"require\" server")
            wait_for(lambda: f"refused inbound connection from 127.0.0.1" in
                     strict_server.stderr(), 10, "the refusal to be logged")
            refusal = [line for line in strict_server.stderr().splitlines()
                       if "refused inbound connection" in line][0]
            check("no post-quantum hybrid group in common" in refusal,
                  f"the refusal does not say why: {refusal}")
            relay, _ = fetch(mesh, "curl-require", default, strict_port, body)
            expect_one_round_trip(relay, X25519MLKEM768, "require server, mesh client")
            print(f"3: require: the classical client refused ({refusal.split('(mode strict): ')[-1]}); "
                  "the mesh client served with X25519MLKEM768")
        else:
            refused = mesh.meshed("require-client", http_client(f"http://127.0.0.1:{port}/"),
                                  config=require)
            check(refused.wait(60) != 0, "a require client was served by a classical build")
            check("has no ML-KEM key exchange" in refused.stderr(),
                  f"the require client does not say why:\n{refused.stderr()}")
            print("3: require on a build without ML-KEM: no identity is loaded, and it says why")

        # 4. post_quantum = "off", on either side.
        off = write_config(mesh, "off", sock, 'post_quantum = "off";\n')
        off_server, off_port = start_http_server(mesh, "off-server", off, root)
        relay, _ = fetch(mesh, "curl-to-off", default, off_port, body)
        hellos = server_hellos(relay.server_bytes[0])
        if hybrid:
            check([h[:2] for h in hellos] == [(True, X25519), (False, X25519)],
                  f"expected a HelloRetryRequest for X25519, then X25519: {hellos}")
            retried = client_hellos(relay.client_bytes[0])
            check(len(retried) == 2 and [g for g, _ in client_shares(retried[1])] == [X25519],
                  "the second ClientHello does not carry the X25519 share asked for")
        else:
            expect_one_round_trip(relay, X25519, "off server")
        check("TLS13-AES128-GCM-SHA256 X25519" in off_server.stderr(), "off server log")
        relay, _ = fetch(mesh, "curl-off", off, port, body)
        check([g for g, _ in client_shares(client_hellos(relay.client_bytes[0])[0])] == [X25519],
              "a post_quantum = \"off\" client sent another share than X25519")
        expect_one_round_trip(relay, X25519, "off client")
        if hybrid:
            refused = mesh.meshed("curl-require-to-off",
                                  http_client(f"http://127.0.0.1:{off_port}/data.txt"),
                                  config=require)
            check(refused.wait(30) != 0 and not refused.stdout(),
                  "a require client was served by an off server")
            check("no post-quantum hybrid group in common" in refused.stderr(),
                  f"the require client does not say why:\n{refused.stderr()}")
        print("4: off: a mesh client retries once with X25519 for an off server; an off client "
              "is served in one round trip with X25519; a require client is refused by it")

        # 5. meshtls status, with one connection held open by a meshed Python client.
        holder = mesh.meshed("holder", [PYTHON, "-c", (
            "import socket, sys, time\n"
            f"s = socket.create_connection(('127.0.0.1', {port}))\n"
            "s.sendall(b'GET /data.txt HTTP/1.0\\r\\n')\n"
            "print('sent', flush=True)\n"
            "time.sleep(20)\n")], config=default)
        wait_for(lambda: b"sent" in holder.stdout() or holder.popen.poll() is not None, 20,
                 "the holding client to connect")
        expected = f"key exchange {name}"

        def listed():
            status = subprocess.run([MESHTLS, "status", "--socket", sock], capture_output=True,
                                    text=True, timeout=30)
            lines = [line for line in status.stdout.splitlines() if "mTLS" in line
                     and expected in line and str(port) in line]
            return len([line for line in lines if "->" in line]) >= 1 and \
                len([line for line in lines if "<-" in line]) >= 1, status.stdout
        wait_for(lambda: listed()[0], 20, f"meshtls status to list both ends with {expected}")
        holder.stop()
        print(f"5: meshtls status lists both ends of an open connection with '{expected}'")


if __name__ == "__main__":
    main(test)
