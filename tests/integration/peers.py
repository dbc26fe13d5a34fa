"""Plain-socket test peers: ordinary Python programs that know nothing of TLS.

  peers.py echo-server PORT          accept; per connection: read to EOF, reply sha256 + length,
                                     then the data back; close.  (exercises half-close)
  peers.py greeter PORT              accept; per connection: send a greeting first, then echo
                                     one line.  (a server that speaks first, like SMTP)
  peers.py echo-client PORT SIZE     send SIZE random bytes, shutdown(SHUT_WR), read the reply;
                                     verify hash, length and echo; print "ok <sha256>".
  peers.py greet-client PORT         read the greeting without sending anything first; send a
                                     line and read the echo; print both.
  peers.py nb-sink PORT              one connection, non-blocking, poll() loop: read everything,
                                     slowly at first; reply with sha256 + length at EOF.
  peers.py nb-source PORT SIZE       non-blocking connect (EINPROGRESS) and poll(); send SIZE
                                     bytes with non-blocking send() (partial writes and EAGAIN
                                     expected), half-close, read the reply; print counts.
"""

import hashlib
import os
import select
import socket
import sys
import threading
import time


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


def nb_sink(port):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1)
    print("listening", flush=True)
    connection, _ = listener.accept()
    connection.setblocking(False)
    poller = select.poll()
    poller.register(connection, select.POLLIN)
    digest = hashlib.sha256()
    total = 0
    while True:
        if total < 4 * 1024 * 1024:
            time.sleep(0.005)  # read slowly at first so the sender's socket buffer fills up
        for _, events in poller.poll(10000):
            try:
                chunk = connection.recv(65536)
            except BlockingIOError:
                continue
            if not chunk:
                connection.setblocking(True)
                connection.sendall(f"{digest.hexdigest()} {total}\n".encode())
                connection.close()
                return
            digest.update(chunk)
            total += len(chunk)


def nb_source(port, size):
    data = os.urandom(size)
    connection = socket.socket()
    connection.setblocking(False)
    in_progress = connection.connect_ex(("127.0.0.1", port))
    poller = select.poll()
    poller.register(connection, select.POLLOUT)
    if not poller.poll(10000):
        sys.exit("connect did not complete")
    error = connection.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        sys.exit(f"connect failed: {os.strerror(error)}")
    sent = partial = would_block = 0
    while sent < size:
        try:
            n = connection.send(data[sent:sent + 256 * 1024])
        except BlockingIOError:
            would_block += 1
            if not poller.poll(10000):
                sys.exit(f"stalled at {sent} of {size} bytes")
            continue
        if n < min(256 * 1024, size - sent):
            partial += 1
        sent += n
    connection.shutdown(socket.SHUT_WR)
    poller.modify(connection, select.POLLIN)
    reply = b""
    while not reply.endswith(b"\n"):
        if not poller.poll(10000):
            sys.exit("no reply")
        reply += connection.recv(100)
    expected = f"{hashlib.sha256(data).hexdigest()} {size}"
    if reply.decode().strip() != expected:
        sys.exit(f"sink saw {reply!r}, expected {expected}")
    print(f"ok connect={os.strerror(in_progress)} partial={partial} eagain={would_block}")


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
    elif mode == "nb-sink":
        nb_sink(port)
    elif mode == "nb-source":
        nb_source(port, int(sys.argv[3]))


main()
