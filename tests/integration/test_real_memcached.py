"""An unmodified memcached (libevent worker threads, sendmsg replies, fortified poll) serves a
client speaking memcached's text protocol over mTLS, both under `meshtls run`: values from 1 byte
to half a megabyte are stored and read back equal (single and multi-key get, append, incr,
delete), the server's own statistics agree with what the client did, and the same client run
through a recording relay puts only TLS 1.3 records on the wire.

The client is this file run as `test_real_memcached.py client PORT SECRET` with a plain Python
socket: it knows nothing of TLS."""

import os
import random
import socket
import sys

from harness import (PYTHON, Mesh, Relay, assert_relay_tls13, check, free_port, main,
                     random_token, run_meshed, start_meshed_server)

SIZES = (1, 2, 100, 1000, 16383, 16384, 16385, 100_000, 500_000)


class TextClient:
    """Just enough of the memcached text protocol, with replies read in random-sized pieces."""

    def __init__(self, port):
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buffer = bytearray()

    def fill(self):
        chunk = self.socket.recv(random.randint(1, 65536))
        if not chunk:
            raise RuntimeError("server closed the connection")
        self.buffer.extend(chunk)

    def line(self):
        while b"\r\n" not in self.buffer:
            self.fill()
        end = self.buffer.index(b"\r\n")
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 2]
        return line.decode()

    def exactly(self, n):
        while len(self.buffer) < n + 2:
            self.fill()
        data = bytes(self.buffer[:n])
        if self.buffer[n:n + 2] != b"\r\n":
            raise RuntimeError("value not terminated by CRLF")
        del self.buffer[:n + 2]
        return data

    def command(self, text, data=None):
        payload = text.encode() + b"\r\n"
        if data is not None:
            payload += data + b"\r\n"
        self.socket.sendall(payload)
        return self.line()

    def get(self, *keys):
        self.socket.sendall(f"get {' '.join(keys)}\r\n".encode())
        values = {}
        while True:
            line = self.line()
            if line == "END":
                return values
            kind, key, flags, size = line.split()
            if kind != "VALUE":
                raise RuntimeError(f"unexpected reply {line!r}")
            values[key] = (int(flags), self.exactly(int(size)))

    def stats(self):
        self.socket.sendall(b"stats\r\n")
        stats = {}
        while (line := self.line()) != "END":
            _, name, value = line.split(" ", 2)
            stats[name] = value
        return stats


def client(port, secret):
    """Prints "ok" and the server's counters after every check passed; exits 1 naming the first
    mismatch."""
    connection = TextClient(port)
    stored = {}
    for size in SIZES:
        key = f"k{size}-{random_token(6)}"
        value = (secret.encode() + os.urandom(size))[:size]
        flags = random.randint(0, 65535)
        reply = connection.command(f"set {key} {flags} 0 {size}", value)
        if reply != "STORED":
            sys.exit(f"set {key} ({size} bytes): {reply!r}")
        stored[key] = (flags, value)
        if connection.get(key) != {key: (flags, value)}:
            sys.exit(f"get {key} ({size} bytes) returned a different value")
    if connection.get(*stored) != stored:
        sys.exit("multi-key get returned different values")
    key = next(iter(stored))
    if connection.command(f"append {key} 0 0 6", b"-tail-") != "STORED":
        sys.exit("append failed")
    if connection.get(key)[key][1] != stored[key][1] + b"-tail-":
        sys.exit("append did not append")
    if connection.command("set counter 0 0 2", b"40") != "STORED" or \
            connection.command("incr counter 2") != "42":
        sys.exit("incr did not give 42")
    if connection.command(f"delete {key}") != "DELETED" or connection.get(key) != {}:
        sys.exit("delete did not delete")
    stats = connection.stats()
    print(f"ok server_get_hits={stats['get_hits']} server_get_misses={stats['get_misses']} "
          f"server_curr_items={stats['curr_items']}")


def test():
    with Mesh("memcached") as mesh:
        mesh.start_agent()
        port = free_port()
        argv = ["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-t", "2",
                "-m", "64"]
        if os.geteuid() == 0:
            argv += ["-u", "root"]  # memcached refuses to run as root without naming a user
        start_meshed_server(mesh, "memcached", argv, port)

        me = os.path.abspath(__file__)
        secret = random_token()
        status, output, errors = run_meshed(
            mesh, "client", [PYTHON, me, "client", str(port), secret], 60)
        check(status == 0 and output.startswith("ok "),
              f"memcached client failed ({status}): {output}\n{errors}")
        counts = dict(item.split("=") for item in output.split()[1:])
        # One hit per single get, one per key of the multi-get, one after append, one miss after
        # delete; the counter replaces the deleted item.
        check(int(counts["server_get_hits"]) == len(SIZES) * 2 + 1 and
              int(counts["server_get_misses"]) == 1 and
              int(counts["server_curr_items"]) == len(SIZES),
              f"server statistics disagree with the client: {output}")

        relay = Relay(port)
        secret = random_token()
        status, output, errors = run_meshed(
            mesh, "client-relayed", [PYTHON, me, "client", str(relay.port), secret], 60)
        check(status == 0 and output.startswith("ok "),
              f"memcached client through the relay failed ({status}): {output}\n{errors}")
        assert_relay_tls13(relay, [secret.encode(), b"STORED", b"VALUE "],
                           expected_connections=1)
        print(f"memcached: {len(SIZES)} sizes 1 B .. 500 KB set/get equal, multi-get, append, "
              f"incr, delete; {output.strip()}; TLS 1.3 on the wire")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        client(int(sys.argv[2]), sys.argv[3])
    else:
        main(test)
