"""Attackers, and the peers they attack, for test_attacks.py. Nothing here knows the mesh: the
attackers are Python's own `ssl` and raw sockets, so a bug in libmeshtls cannot hide itself.

Programs (run by the test):

  attack_peers.py serve SECRET PORT...
      Run under `meshtls run`: one process listening on 127.0.0.1 on every port, printing
      "listening" once all are bound. Per connection: one recv(), then the reply
      "<SECRET> <bytes received>\\n", close. Whatever reaches the application is answered with
      the secret, so an attacker that gets any application byte gets the secret.
  attack_peers.py probe [PAUSE]
      Run under `meshtls run`: a long-lived client reading one port per line on stdin. For each,
      it connects to 127.0.0.1:PORT, sends "hello\\n", reads the answer and prints
      "PORT ok HEX" or "PORT fail ERROR". Long-lived, so that its metrics stay readable (and its
      sessions kept); PAUSE seconds between two connections (default 0).
  attack_peers.py agent-request SOCKET
      Run as another user: a CSR (DER) on stdin, sent to the agent as an SVID_REQUEST, then an
      ID_REQUEST; prints one JSON object with what the agent answered to each.

In-process helpers: TLS and raw-socket attack clients, a real ClientHello to truncate, and
rogue TLS (or plaintext) servers presenting crafted certificates to a meshed client. Every
socket has a timeout; every thread is a daemon that ends with its listener.
"""

import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"


# --- Programs ----------------------------------------------------------------------------------

def serve(secret, ports):
    def handle(connection):
        with connection:
            try:
                connection.settimeout(30)
                data = connection.recv(65536)
                if data:
                    connection.sendall(f"{secret} {len(data)}\n".encode())
            except OSError:
                pass  # a refused handshake surfaces here as ECONNRESET / ETIMEDOUT

    def accept_loop(listener):
        while True:
            connection, _ = listener.accept()
            threading.Thread(target=handle, args=(connection,), daemon=True).start()

    listeners = []
    for port in ports:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, port))
        listener.listen(64)
        listeners.append(listener)
    for listener in listeners[1:]:
        threading.Thread(target=accept_loop, args=(listener,), daemon=True).start()
    print("listening", flush=True)
    accept_loop(listeners[0])


def probe(pause=0.0):
    for number, line in enumerate(sys.stdin):
        if number:
            time.sleep(pause)
        port = int(line)
        try:
            with socket.create_connection((HOST, port), timeout=10) as connection:
                connection.sendall(b"hello\n")
                data = b""
                while not data.endswith(b"\n"):
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            print(f"{port} ok {data.hex()}" if data else f"{port} fail closed without a byte",
                  flush=True)
        except OSError as error:
            print(f"{port} fail {type(error).__name__}: {error}", flush=True)


def agent_request(sock_path):
    from agent_protocol import (ID_REQUEST, SVID_REQUEST, TAG_CERT, TAG_MESSAGE, TAG_SPIFFE_ID,
                                TAG_CSR, frame, parse_frame, tlv)
    csr = sys.stdin.buffer.read()

    def exchange(data):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(sock_path)
            s.sendall(data)
            reply = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        message_type, fields = parse_frame(reply)
        return {"type": message_type,
                "spiffe_id": fields.get(TAG_SPIFFE_ID, [b""])[0].decode(errors="replace"),
                "cert": fields.get(TAG_CERT, [b""])[0].hex(),
                "message": fields.get(TAG_MESSAGE, [b""])[0].decode(errors="replace")}

    answer = {"uid": os.getuid(), "svid": exchange(frame(SVID_REQUEST, tlv(TAG_CSR, csr))),
              "id": exchange(frame(ID_REQUEST))}
    print(json.dumps(answer), flush=True)


# --- Attack clients ----------------------------------------------------------------------------

class Outcome:
    """What an attacker saw: its own port (to find the server's log line), the application
    bytes it received, the error that ended it, and how long until the server closed."""

    def __init__(self, local_port, raw=False):
        self.local_port = local_port
        self.raw = raw  # received is the bytes on the wire, not what TLS decrypted
        self.received = b""
        self.error = None
        self.closed_after = None  # seconds after the last send; None: still open at the deadline
        self.served_during = None  # (ok, prober line) when a meshed client was tried meanwhile

    def application_bytes(self):
        """What the attacker got beyond TLS alerts: a raw client may be sent an alert record
        (content type 21, RFC 8446 §6), which is a refusal, not the application's bytes."""
        if not self.raw:
            return self.received
        rest = self.received
        while len(rest) >= 7 and rest[0] == 21 and rest[1] == 3 and rest[3:5] == b"\x00\x02":
            rest = rest[7:]
        return rest

    def __repr__(self):
        return (f"Outcome(port {self.local_port}, received {self.received[:80]!r}, "
                f"error {self.error!r}, closed after {self.closed_after})")


class TicketClient:
    """tests/integration/ticket_client (a client on wolfSSL alone that can offer any ticket it
    has received, inside any session's state), one connection per call. identities: a list of
    (certificate, key) paths; anchor: the CA certificate the server's must chain to."""

    def __init__(self, program, anchor, identities):
        argv = [program, anchor] + [path for pair in identities for path in pair]
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env)
        self.count = 0

    def connect(self, port, identity, offer="-"):
        """One connection as identity (an index), offering "-", "K" or "K:J" (ticket_client.c);
        returns {ok, resumed, ticket, port, reply, seconds}."""
        started = time.monotonic()
        self.process.stdin.write(f"{port} {identity} {offer}\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline().rstrip("\n").split(" ", 5)
        if len(line) != 6:
            self.process.wait(10)
            raise OSError(f"ticket_client answered {line} to '{port} {identity} {offer}' "
                          f"(exit {self.process.poll()}): {self.process.stderr.read()}")
        if line[0] != str(self.count):
            raise OSError(f"ticket_client answered {line} as connection {self.count}")
        self.count += 1
        fields = dict(item.split("=", 1) for item in line[2:])
        return {"index": self.count - 1, "ok": line[1] == "ok", "resumed": fields["resumed"] == "1",
                "ticket": fields["ticket"] == "1", "port": int(fields["port"]),
                "reply": fields["reply"], "seconds": time.monotonic() - started}

    def close(self):
        self.process.stdin.close()
        self.process.wait(10)


def read_to_end(connection, outcome, deadline):
    """Reads until EOF, an error or the deadline (monotonic); fills outcome."""
    started = time.monotonic()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        connection.settimeout(remaining)
        try:
            chunk = connection.recv(65536)
        except socket.timeout:
            return
        except (ssl.SSLError, OSError) as error:
            outcome.error = error
            outcome.closed_after = time.monotonic() - started
            return
        if not chunk:
            outcome.closed_after = time.monotonic() - started
            return
        outcome.received += chunk


def tls_client(port, cert=None, key=None, alpn=None, minimum=None, maximum=None,
               ciphers=None, timeout=5.0):
    """A TLS client of Python's own: presents cert/key (or no certificate), does not verify the
    server, sends a line and reads until the server closes. The outcome's error is the handshake
    or read error (TLS 1.3: a refused client certificate arrives as an alert on the first read)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if ciphers:
        context.set_ciphers(ciphers)
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    if cert:
        context.load_cert_chain(cert, key)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    raw = socket.create_connection((HOST, port), timeout=timeout)
    outcome = Outcome(raw.getsockname()[1])
    deadline = time.monotonic() + timeout
    try:
        with context.wrap_socket(raw, server_hostname="meshtls-attacker") as connection:
            connection.sendall(b"hello\n")
            read_to_end(connection, outcome, deadline)
    except (ssl.SSLError, OSError) as error:
        outcome.error = error
        outcome.closed_after = 0.0
    finally:
        raw.close()
    return outcome


def raw_client(port, data, timeout=5.0, sent=None):
    """Sends data as it is over plain TCP, keeps the connection open, and reads until the
    server closes it or timeout seconds pass. sent (a threading.Event) is set once data is out."""
    with socket.create_connection((HOST, port), timeout=timeout) as connection:
        outcome = Outcome(connection.getsockname()[1], raw=True)
        connection.sendall(data)
        if sent is not None:
            sent.set()
        read_to_end(connection, outcome, time.monotonic() + timeout)
    return outcome


def client_hello(alpn=("meshtls/1",)):
    """The bytes of a real TLS 1.3 ClientHello, as Python's OpenSSL would send it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(list(alpn))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="meshtls-attacker")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    content_type, _, length = struct.unpack("!BHH", hello[:5])
    assert content_type == 22 and hello[5] == 1 and len(hello) == 5 + length
    return hello


def version_available(version):
    """True when the local OpenSSL will actually send a ClientHello limited to version (Debian
    builds may refuse TLS 1.0/1.1 even at security level 0)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        context.set_ciphers("ALL:@SECLEVEL=0")
        context.minimum_version = version
        context.maximum_version = version
        tls = context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO())
        tls.do_handshake()
    except ssl.SSLWantReadError:
        return True
    except (ssl.SSLError, ValueError):
        return False
    return False


# --- Rogue servers -----------------------------------------------------------------------------

class RogueServers:
    """Loopback servers a meshed client is sent to: each presents a crafted certificate (or
    speaks plaintext) and, if a handshake ever completes, sends the secret."""

    def __init__(self, secret):
        self.secret = secret.encode()
        self.listeners = []
        self.stopping = False

    def add(self, port, cert=None, key=None, maximum=None, plaintext=False):
        context = None
        if not plaintext:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            context.set_alpn_protocols(["meshtls/1"])
            if maximum is not None:
                context.maximum_version = maximum
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, port))
        listener.listen(16)
        listener.settimeout(0.2)
        self.listeners.append(listener)
        threading.Thread(target=self.accept_loop, args=(listener, context), daemon=True).start()
        return port

    def accept_loop(self, listener, context):
        while not self.stopping:
            try:
                connection, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.handle, args=(connection, context), daemon=True).start()

    def handle(self, connection, context):
        connection.settimeout(10)
        try:
            if context is None:
                connection.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + self.secret + b"\n")
            else:
                connection = context.wrap_socket(connection, server_side=True)
                connection.sendall(self.secret + b"\n")
            connection.recv(65536)
        except (ssl.SSLError, OSError):
            pass  # the meshed client refused us: that is the point
        finally:
            connection.close()

    def stop(self):
        self.stopping = True
        for listener in self.listeners:
            listener.close()


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "serve":
        serve(sys.argv[2], [int(p) for p in sys.argv[3:]])
    elif command == "probe":
        probe(float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
    elif command == "agent-request":
        agent_request(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
