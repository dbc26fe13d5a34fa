"""Plain-socket peers for the policy tests: ordinary Python programs that know nothing of the mesh.
Every address may be IPv4 or IPv6 (--host 127.0.0.1 or --host ::1); every wait is bounded.

  policy_peers.py serve --host H [--echo P]... [--greeter P]... [--tls P --cert C --key K]...
      One process listening on every port given, printing "listening" once all are bound:
        echo     read to EOF, reply "<sha256> <length>\\n" and the data back, close
        greeter  send "220 greeter ready\\r\\n" first, then read one line and reply "250 <line>"
        tls      the application's OWN TLS (python ssl, the given certificate): handshake, read
                 one line, reply "tls-echo <line>"
  policy_peers.py echo-client --host H PORT SIZE [--prefix HEX]
      send SIZE bytes (starting with the bytes HEX, then random), half-close, check the echo
      byte for byte; print "ok <sha256>".
  policy_peers.py greet-client --host H PORT
      send nothing; print "greeting <milliseconds> <line>" once the greeting arrives; then send a
      line and print the answer.
  policy_peers.py tls-client --host H PORT --cafile C [--alpn PROTO]
      a TLS client of its own (python ssl, verifying the server against C): send a line, print
      "tls <version> <alpn> <reply>".
"""

import argparse
import hashlib
import os
import socket
import ssl
import sys
import threading
import time

TIMEOUT = 20


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def listen(host, port):
    listener = socket.socket(family_of(host), socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(16)
    return listener


def read_line(connection):
    line = bytearray()
    while not line.endswith(b"\n"):
        chunk = connection.recv(1)
        if not chunk:
            break
        line.extend(chunk)
    return bytes(line)


def echo_handler(connection):
    data = bytearray()
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data.extend(chunk)
    connection.sendall(f"{hashlib.sha256(data).hexdigest()} {len(data)}\n".encode() + data)


def greeter_handler(connection):
    connection.sendall(b"220 greeter ready\r\n")
    connection.sendall(b"250 " + read_line(connection))


def tls_handler(context):
    def handler(connection):
        with context.wrap_socket(connection, server_side=True) as tls:
            tls.sendall(b"tls-echo " + read_line(tls))
    return handler


def accept_loop(listener, handler):
    while True:
        connection, _ = listener.accept()

        def run(connection=connection):
            try:
                connection.settimeout(TIMEOUT)
                handler(connection)
            except (OSError, ssl.SSLError) as error:
                sys.stderr.write(f"policy_peers: connection failed: {error}\n")
            finally:
                connection.close()
        threading.Thread(target=run, daemon=True).start()


def serve(arguments):
    servers = []
    for port in arguments.echo or []:
        servers.append((listen(arguments.host, port), echo_handler))
    for port in arguments.greeter or []:
        servers.append((listen(arguments.host, port), greeter_handler))
    if arguments.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(arguments.cert, arguments.key)
        context.set_alpn_protocols(["http/1.1"])  # so the client's ALPN offer is seen intact
        for port in arguments.tls:
            servers.append((listen(arguments.host, port), tls_handler(context)))
    for listener, handler in servers:
        threading.Thread(target=accept_loop, args=(listener, handler), daemon=True).start()
    print("listening", flush=True)
    while True:
        time.sleep(3600)


def connect(host, port):
    return socket.create_connection((host, port), timeout=TIMEOUT)


def echo_client(arguments):
    # Without a prefix, a plaintext stream that begins like no TLS record (0x14..0x17 would be
    # one: a random first byte made a permissive server see a broken TLS record 2 runs in 256).
    prefix = bytes.fromhex(arguments.prefix) if arguments.prefix else b"P"
    data = prefix + os.urandom(max(0, arguments.size - len(prefix)))
    with connect(arguments.host, arguments.port) as connection:
        connection.sendall(data)
        try:
            connection.shutdown(socket.SHUT_WR)
        except OSError as error:
            # A server that refuses us after the handshake resets the connection; if the reset
            # is here before our half-close, the kernel says ENOTCONN. Read on, as a client
            # would: the read meets the refusal (and libmeshtls logs why).
            print(f"policy_peers: shutdown: {error}", file=sys.stderr)
        reply = bytearray()
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            reply.extend(chunk)
    header, _, echoed = bytes(reply).partition(b"\n")
    digest = hashlib.sha256(data).hexdigest()
    if header.decode(errors="replace") != f"{digest} {len(data)}" or echoed != data:
        sys.exit(f"echo mismatch: header {header[:80]!r}, "
                 f"{len(echoed)} of {len(data)} bytes echoed")
    print(f"ok {digest}")


def greet_client(arguments):
    start = time.monotonic()
    with connect(arguments.host, arguments.port) as connection:
        greeting = read_line(connection)
        elapsed = (time.monotonic() - start) * 1000
        if not greeting:
            sys.exit("no greeting: the connection closed")
        print(f"greeting {elapsed:.0f} {greeting.decode().strip()}", flush=True)
        connection.sendall(b"HELO policy\r\n")
        print(read_line(connection).decode().strip())


def tls_client(arguments):
    context = ssl.create_default_context(cafile=arguments.cafile)
    context.check_hostname = False
    if arguments.alpn:
        context.set_alpn_protocols([arguments.alpn])
    with connect(arguments.host, arguments.port) as raw:
        with context.wrap_socket(raw) as tls:
            tls.sendall(b"hello over the application's own TLS\n")
            reply = read_line(tls)
            print(f"tls {tls.version()} {tls.selected_alpn_protocol()} {reply.decode().strip()}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["serve", "echo-client", "greet-client", "tls-client"])
    parser.add_argument("port", type=int, nargs="?")
    parser.add_argument("size", type=int, nargs="?")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--echo", type=int, action="append")
    parser.add_argument("--greeter", type=int, action="append")
    parser.add_argument("--tls", type=int, action="append")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--cafile")
    parser.add_argument("--alpn")
    parser.add_argument("--prefix")
    arguments = parser.parse_intermixed_args()
    {"serve": serve, "echo-client": echo_client, "greet-client": greet_client,
     "tls-client": tls_client}[arguments.command](arguments)


main()
