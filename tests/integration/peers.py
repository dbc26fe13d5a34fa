"""Plain-socket test peers: ordinary Python programs that know nothing of TLS.

  peers.py echo-server PORT          accept; per connection: read to EOF, reply sha256 + length,
                                     then the data back; close.  (exercises half-close)
  peers.py greeter PORT              accept; per connection: send a greeting first, then echo
                                     one line.  (a server that speaks first, like SMTP)
  peers.py echo-client PORT SIZE     send SIZE random bytes, shutdown(SHUT_WR), read the reply;
                                     verify hash, length and echo; print "ok <sha256>".
  peers.py greet-client PORT         read the greeting without sending anything first; send a
                                     line and read the echo; print both.
"""

import hashlib
import os
import socket
import sys
import threading


def serve(port, handler):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    print("listening", flush=True)
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=handler, args=(connection,), daemon=True).start()


def echo_handler(connection):
    with connection:
        data = bytearray()
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            data.extend(chunk)
        header = f"{hashlib.sha256(data).hexdigest()} {len(data)}\n".encode()
        connection.sendall(header + data)


def greeter_handler(connection):
    with connection:
        connection.sendall(b"220 greeter ready\r\n")
        line = connection.makefile("rb").readline()
        connection.sendall(b"250 " + line)


def echo_client(port, size):
    data = os.urandom(size)
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(data)
        connection.shutdown(socket.SHUT_WR)
        reply = bytearray()
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            reply.extend(chunk)
    header, _, echoed = bytes(reply).partition(b"\n")
    digest = hashlib.sha256(data).hexdigest()
    if header.decode() != f"{digest} {size}" or echoed != data:
        sys.stderr.write(f"echo mismatch: header {header[:80]!r}, {len(echoed)} bytes echoed\n")
        sys.exit(1)
    print(f"ok {digest}")


def greet_client(port):
    with socket.create_connection(("127.0.0.1", port)) as connection:
        reader = connection.makefile("rb")
        greeting = reader.readline()
        connection.sendall(b"HELO meshtls\r\n")
        answer = reader.readline()
    print(greeting.decode().strip())
    print(answer.decode().strip())


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "echo-server":
        serve(port, echo_handler)
    elif mode == "greeter":
        serve(port, greeter_handler)
    elif mode == "echo-client":
        echo_client(port, int(sys.argv[3]))
    elif mode == "greet-client":
        greet_client(port)


main()
