"""Privilege-separated servers: a child that confines itself with a seccomp filter (default
action: kill the process) keeps using its meshed connection. sandbox_peer.c's child allows read,
write and what malloc and TLS need, and answers a request with a bulk response larger than the
socket buffers, so that its writes block: on a blocking socket (strict list), on a non-blocking
one (poll allowed), with the TLS handshake itself inside the filter (OpenSSH's pre-authentication
list), and with two threads reading an upload and writing a download at once on one blocking
socket. A system call the filter refuses kills the child with SIGSYS, which the parent reports.
Each response arrives whole and in order, the wire carries only TLS 1.3 records, and a plaintext
client is refused.

The library's own records must keep to the same calls: a child that closes its connection, or
shuts its write side, inside the filter sends close_notify with write (the client reads a clean
end, and the last record on the wire is the alert); a strict child that only reads when the
client's KeyUpdate asks for one back answers it with write, without touching its signal mask,
and its first write carries the server's held NewSessionTicket (openssl s_client with an SVID of
the mesh's CA shows both arriving).

With -Dwolfssl=system the handshake cannot run inside the filter: Debian's libwolfssl seeds a new
random generator from /dev/urandom (openat) for the peer's certificate key in every handshake
(its OpenSSL compatibility layer, wolfSSL_EVP_PKEY_new_ex), where the bundled build reads RDSEED.
The filter kills the child there: the test checks that it fails closed (killed, the client gets
no byte of the response, the wire only TLS records)."""

import os
import re
import socket
import subprocess
import time

from harness import (BUILD, SYSTEM_WOLFSSL, Mesh, Relay, assert_relay_tls13, check,
                     complete_records_prefix, free_port, main, random_token, run_meshed,
                     start_meshed_server, tls_records, wait_for)
from lifecycle_common import Pki

SANDBOX_PEER = os.path.join(BUILD, "tests", "integration", "sandbox_peer")
SIZE = 4 * 1024 * 1024  # far beyond loopback's socket buffers: the child's writes block


# TLS 1.3 hides an alert in an application_data record: its 2 bytes, the inner content type
# and the 16-byte AEAD tag make a body of 19 bytes (RFC 8446 §5.2), which no data record has.
ALERT_RECORD_BODY = 2 + 1 + 16


def serve_once(mesh, mode, option=None):
    port = free_port()
    server = start_meshed_server(mesh, f"server-{mode}", [SANDBOX_PEER, "serve", str(port), mode],
                                 port)
    relay = Relay(port)
    token = random_token(16)
    argv = [SANDBOX_PEER, "fetch", str(relay.port), str(SIZE), token] + ([option] if option
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
    down = bytes(relay.server_bytes[0]) if relay.server_bytes else b""
    assert_relay_tls13(relay, [token.encode()], expected_connections=1)
    if mode in ("close", "shutdown"):
        last = tls_records(down)[-1]
        check(last[0] == 23 and len(last[2]) == ALERT_RECORD_BODY,
              f"{mode}: the server's last record is not close_notify ({len(last[2])} bytes)")


def handshake_inside_fails_closed(mesh):
    """-Dwolfssl=system: the handshake's openat of /dev/urandom inside the filter kills the
    child (SIGSYS); the client gets nothing, the wire carries TLS records only."""
    port = free_port()
    server = start_meshed_server(mesh, "server-handshake", [SANDBOX_PEER, "serve", str(port),
                                                            "handshake"], port)
    relay = Relay(port)
    token = random_token(16)
    status, output, errors = run_meshed(
        mesh, "client-handshake", [SANDBOX_PEER, "fetch", str(relay.port), str(SIZE), token], 60)
    server.wait(30)
    relay.stop()
    server_output = server.stdout().decode(errors="replace")
    check(status != 0 and f"fetched {SIZE}" not in output,
          f"handshake: the client was served ({status}): {output.strip()!r}")
    check("child killed by signal 31" in server_output,
          f"handshake: the child was not stopped by the filter: {server_output.strip()!r}\n"
          f"{server.stderr()[-3000:]}")
    for up, down in zip(relay.client_bytes, relay.server_bytes):
        for data in (bytes(up), bytes(down)):
            check(token.encode() not in data, "handshake: the token crossed in clear")
            records = tls_records(complete_records_prefix(data))
            check(all(kind in (21, 22, 23) for kind, _, _ in records),
                  f"handshake: not TLS on the wire: {data[:80]!r}")
    print("handshake inside the filter (-Dwolfssl=system): the child was killed at the seed's "
          "openat; nothing reached the client")


def mesh_client_certificate(mesh):
    """An X.509-SVID for openssl s_client, signed by the agent's CA: the identity every process
    of the test has (uid 0's, or the user's)."""
    pki = Pki(os.path.join(mesh.dir, "pki"))
    state = os.path.join(mesh.dir, "agent-state")
    pki.adopt("agentca", os.path.join(state, "ca.crt"), os.path.join(state, "ca.key"))
    uri = f"URI:spiffe://meshtls.local/uid/{os.getuid()}"
    return pki.leaf("client", "agentca", [uri]), pki.path("client.key"), pki.path("agentca.crt")


def key_update_while_reading(mesh):
    """openssl s_client sends the request, then a KeyUpdate asking for one back ("K"), then a
    second line: the strict child reads it, answering the KeyUpdate with write, then writes its
    response, which carries the server's held NewSessionTicket."""
    certificate, key, authority = mesh_client_certificate(mesh)
    port = free_port()
    server = start_meshed_server(mesh, "server-keyupdate",
                                 [SANDBOX_PEER, "serve", str(port), "keyupdate"], port)
    relay = Relay(port)
    token = random_token(16)
    size = 1000
    client = subprocess.Popen(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{relay.port}", "-tls1_3", "-msg",
         "-cert", certificate, "-key", key, "-CAfile", authority, "-alpn", "meshtls/1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = bytearray()

    def read_until(marker, timeout):
        deadline = time.monotonic() + timeout
        os.set_blocking(client.stdout.fileno(), False)
        while marker not in output and time.monotonic() < deadline:
            chunk = client.stdout.read(65536)
            if chunk:
                output.extend(chunk)
            elif client.poll() is not None:
                break
            else:
                time.sleep(0.05)
        return marker in output

    try:
        handshake_done = read_until(b"Verify return code", 20)
        check(handshake_done,
              f"s_client did not complete the handshake:\n{output.decode(errors='replace')}")
        for line in (f"GET {size} {token}\n", "K\n", "GO\n"):
            try:
                client.stdin.write(line.encode())
                client.stdin.flush()
            except BrokenPipeError:
                break  # s_client is gone: the checks below say why
            time.sleep(0.3)  # s_client takes a command only as a read of its own
        got = read_until(token.encode(), 20)
        try:
            client.stdin.close()
        except BrokenPipeError:
            pass
        client.wait(20)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    text = output.decode(errors="replace")
    server.wait(30)
    server_output = server.stdout().decode(errors="replace")
    check("child exited 0" in server_output,
          f"keyupdate: the strict child did not finish cleanly: {server_output.strip()!r}\n"
          f"{server.stderr()[-3000:]}")
    check(got, f"keyupdate: s_client did not get the response:\n{text[-3000:]}")
    check(">>> TLS 1.3, Handshake [length 0005], KeyUpdate" in text,
          f"keyupdate: s_client sent no KeyUpdate:\n{text[-3000:]}")
    check("<<< TLS 1.3, Handshake [length 0005], KeyUpdate" in text,
          f"keyupdate: the child did not answer the KeyUpdate:\n{text[-3000:]}")
    check(re.search(r"<<< TLS 1\.3, Handshake \[length [0-9a-f]+\], NewSessionTicket", text),
          f"keyupdate: no NewSessionTicket from the child:\n{text[-3000:]}")
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
        for mode in ("blocking", "nonblocking"):
            serve_once(mesh, mode)
        if SYSTEM_WOLFSSL:
            handshake_inside_fails_closed(mesh)
        else:
            serve_once(mesh, "handshake")
        serve_once(mesh, "duplex", "duplex")
        for mode in ("close", "shutdown"):
            serve_once(mesh, mode, "eof")
        key_update_while_reading(mesh)
        plaintext_refused(mesh)
        inside = "" if SYSTEM_WOLFSSL else "handshake-inside "
        print(f"blocking, non-blocking, {inside}and duplex children each served "
              f"{SIZE} bytes under a kill-by-default seccomp filter; children that close and "
              f"shut down inside it sent close_notify; a strict child answered a KeyUpdate while "
              f"reading; TLS 1.3 on the wire; plaintext refused")


if __name__ == "__main__":
    main(test)
