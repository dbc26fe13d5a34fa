"""An unmodified redis-server keeps serving over mTLS while and after its BGSAVE and BGREWRITEAOF
children run: each child closes the listening sockets it inherited (redis's
closeChildUnusedResourceAfterFork) while the parent's event loop waits on the same epoll instance.

A client under `meshtls run` holds two connections open (one through a recording relay), writes
KEYS keys, and asks for BGSAVE and then BGREWRITEAOF; rdb-key-save-delay keeps each child alive
for about two seconds. While each child runs (redis's INFO says it is in progress) and after it
finished with success, new meshed clients connect and read back what was written, and the two
old connections still answer. The relayed connection shows only TLS 1.3 records, and a plaintext
client is refused.

The client is this file run as `test_real_redis_fork.py client PORT RELAY_PORT SECRET`, a plain
Python socket speaking RESP."""

import os
import socket
import sys
import time

from harness import (Mesh, PYTHON, Relay, assert_plaintext_refused, assert_relay_tls13, check,
                     fail_client, free_port, main, random_token, run_meshed, start_meshed_server)

KEYS = 20
KEY_SAVE_DELAY_US = 100_000  # per key: a child of about two seconds
NEW_CLIENTS = 3


class Resp:
    """Just enough RESP: commands as arrays of bulk strings, replies of every simple type."""

    def __init__(self, port, name):
        self.name = name
        try:
            self.socket = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError as error:
            fail_client(f"{name}: connect: {error}")
        self.buffer = b""

    def line(self):
        while b"\r\n" not in self.buffer:
            chunk = self.socket.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b":"):
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            while len(self.buffer) < size + 2:
                chunk = self.socket.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                self.buffer += chunk
            data, self.buffer = self.buffer[:size], self.buffer[size + 2:]
            return data.decode()
        raise RuntimeError(f"unexpected reply {line!r}")

    def command(self, *words):
        payload = f"*{len(words)}\r\n".encode()
        for word in words:
            data = str(word).encode()
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
        try:
            self.socket.sendall(payload)
            return self.reply()
        except (OSError, RuntimeError) as error:
            fail_client(f"{self.name}: {words[0]}: {type(error).__name__}: {error}")

    def info(self, section):
        text = self.command("INFO", section)
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def read_back(connection, secret):
    for i in range(0, KEYS, 7):
        value = connection.command("GET", f"key:{i}")
        if value != f"{secret}:{i}":
            fail_client(f"{connection.name}: GET key:{i} returned {value!r}")


def served(port, relayed, old, secret, when):
    """New clients connect and read back; the old connections still answer."""
    for i in range(NEW_CLIENTS):
        new = Resp(port, f"new client {i} {when}")
        read_back(new, secret)
        new.socket.close()
    read_back(old, secret)
    read_back(relayed, secret)


def child_run(port, relayed, old, secret, command, started, in_progress, status):
    answer = old.command(command)
    if started not in answer:
        fail_client(f"{command} answered {answer!r}")
    deadline = time.monotonic() + 0.5
    while old.info("persistence").get(in_progress) != "1":
        if time.monotonic() > deadline:
            fail_client(f"{command}: {in_progress} never showed the child running")
        time.sleep(0.02)
    served(port, relayed, old, secret, f"while the {command} child runs")
    if old.info("persistence").get(in_progress) != "1":
        fail_client(f"{command}: the child ended before the new clients were served; "
                    "raise rdb-key-save-delay")
    deadline = time.monotonic() + 30
    while (persistence := old.info("persistence")).get(in_progress) != "0":
        if time.monotonic() > deadline:
            fail_client(f"{command}: the child did not finish")
        time.sleep(0.05)
    if persistence.get(status) != "ok":
        fail_client(f"{command}: {status} is {persistence.get(status)!r}")
    served(port, relayed, old, secret, f"after the {command} child")


def client(port, relay_port, secret):
    old = Resp(port, "old")
    relayed = Resp(relay_port, "relayed")
    for i in range(KEYS):
        if old.command("SET", f"key:{i}", f"{secret}:{i}") != "OK":
            fail_client(f"SET key:{i} failed")
    read_back(relayed, secret)
    child_run(port, relayed, old, secret, "BGSAVE", "Background saving started",
              "rdb_bgsave_in_progress", "rdb_last_bgsave_status")
    child_run(port, relayed, old, secret, "BGREWRITEAOF", "rewriting started",
              "aof_rewrite_in_progress", "aof_last_bgrewrite_status")
    stats = old.info("stats")
    print(f"ok {stats.get('total_connections_received')} connections, "
          f"{stats.get('total_forks')} forks")


def test():
    with Mesh("redis-fork") as mesh:
        mesh.start_agent()
        port = free_port()
        server = start_meshed_server(
            mesh, "redis-server",
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", mesh.dir, "--rdb-key-save-delay",
             str(KEY_SAVE_DELAY_US)], port)
        relay = Relay(port)
        secret = random_token(16)
        status, output, errors = run_meshed(
            mesh, "client",
            [PYTHON, os.path.abspath(__file__), "client", str(port), str(relay.port), secret], 90)
        check(status == 0 and output.startswith("ok "),
              f"the client failed ({status}):\n{output}{errors}\n"
              f"redis:\n{server.stdout().decode(errors='replace')[-3000:]}\n"
              f"{server.stderr()[-3000:]}")
        log = server.stdout().decode(errors="replace")
        check("DB saved on disk" in log and "Background AOF rewrite terminated with success" in log,
              f"redis did not log both children's success:\n{log[-3000:]}")
        assert_relay_tls13(relay, [secret.encode()], expected_connections=1)

        assert_plaintext_refused(port, server, b"*2\r\n$3\r\nGET\r\n$5\r\nkey:0\r\n")
        check(server.popen.poll() is None, f"redis-server died:\n{server.stderr()}")
        print(f"redis BGSAVE and BGREWRITEAOF children came and went while old and new meshed "
              f"clients were served ({output.strip()[3:]}); TLS 1.3 on the wire; plaintext "
              f"refused")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "client":
        client(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        main(test)
